//! Opening a connection to one `host:port` endpoint: resolved when used
//! (`getaddrinfo`), a non-blocking socket, `connect` that returns at once,
//! completion learned when the socket turns writable, and every errno turned
//! into the agent's [`TransportError`].
//!
//! The loop never waits here: the agent's `connect_timeout` bounds an
//! attempt (its `Disconnect` event makes the loop drop the socket).

use agent_core::TransportError;
use nix::errno::Errno;
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};

/// Addresses of one endpoint tried in one attempt, in resolver order.
pub const MAX_ADDRESSES: usize = 4;

/// An attempt in progress, or a connection.
#[derive(Debug)]
pub struct Conn {
    /// The socket (non-blocking, close-on-exec).
    pub stream: TcpStream,
    /// `connect` has not completed yet (wait for writable).
    pub connecting: bool,
    addrs: [Option<SocketAddr>; MAX_ADDRESSES],
    next: usize,
    send_buffer: Option<usize>,
}

/// Resolves `endpoint` (`host:port`, `[v6]:port`) into at most
/// [`MAX_ADDRESSES`] addresses.
pub fn resolve(endpoint: &str) -> Result<[Option<SocketAddr>; MAX_ADDRESSES], TransportError> {
    let mut out = [None; MAX_ADDRESSES];
    let iter = endpoint.to_socket_addrs().map_err(|_| TransportError::Unreachable)?;
    for (slot, a) in out.iter_mut().zip(iter) {
        *slot = Some(a);
    }
    if out[0].is_none() {
        return Err(TransportError::Unreachable);
    }
    Ok(out)
}

impl Conn {
    /// Starts connecting to the first of `addrs` that accepts a `connect`
    /// call. `send_buffer` sets `SO_SNDBUF` (tests use a tiny one).
    pub fn open(addrs: [Option<SocketAddr>; MAX_ADDRESSES], send_buffer: Option<usize>) -> Result<Conn, TransportError> {
        let mut err = TransportError::Unreachable;
        for i in 0..MAX_ADDRESSES {
            let Some(addr) = addrs[i] else { break };
            match start(addr, send_buffer) {
                Ok((stream, connecting)) => return Ok(Conn { stream, connecting, addrs, next: i + 1, send_buffer }),
                Err(e) => err = e,
            }
        }
        Err(err)
    }

    /// The socket turned writable (or errored) while connecting: `Ok(())`
    /// once connected. On failure the next resolved address is tried
    /// (`Ok` with `connecting` still set), and only when none is left the
    /// error is returned.
    pub fn on_writable(&mut self) -> Result<(), TransportError> {
        if !self.connecting {
            return Ok(());
        }
        let e = socket::getsockopt(&self.stream.as_fd(), sockopt::SocketError).unwrap_or(Errno::EIO as i32);
        if e == 0 {
            self.connecting = false;
            let _ = socket::setsockopt(&self.stream.as_fd(), sockopt::TcpNoDelay, &true);
            return Ok(());
        }
        let mut err = from_errno(Errno::from_raw(e));
        while self.next < MAX_ADDRESSES {
            let Some(addr) = self.addrs[self.next] else { break };
            self.next += 1;
            match start(addr, self.send_buffer) {
                Ok((stream, connecting)) => {
                    self.stream = stream;
                    self.connecting = connecting;
                    return Ok(());
                }
                Err(e) => err = e,
            }
        }
        Err(err)
    }
}

fn start(addr: SocketAddr, send_buffer: Option<usize>) -> Result<(TcpStream, bool), TransportError> {
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd: OwnedFd = socket::socket(family, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)
        .map_err(from_errno)?;
    if let Some(n) = send_buffer {
        let _ = socket::setsockopt(&fd, sockopt::SndBuf, &n);
    }
    let sa = SockaddrStorage::from(addr);
    let connecting = match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &sa) {
        Ok(()) => false,
        Err(Errno::EINPROGRESS) | Err(Errno::EINTR) => true,
        Err(e) => return Err(from_errno(e)),
    };
    let stream = TcpStream::from(fd);
    if !connecting {
        let _ = stream.set_nodelay(true);
    }
    Ok((stream, connecting))
}

/// The agent's name for what an errno says about the transport.
pub fn from_errno(e: Errno) -> TransportError {
    match e {
        Errno::ECONNREFUSED => TransportError::Refused,
        Errno::ECONNRESET | Errno::ECONNABORTED | Errno::EPIPE => TransportError::Reset,
        Errno::ETIMEDOUT => TransportError::TimedOut,
        Errno::ENETUNREACH | Errno::EHOSTUNREACH | Errno::ENETDOWN | Errno::EADDRNOTAVAIL | Errno::EHOSTDOWN => {
            TransportError::Unreachable
        }
        _ => TransportError::Other,
    }
}

/// As [`from_errno`], for a `std::io::Error` from a read or write.
pub fn from_io(e: &std::io::Error) -> TransportError {
    e.raw_os_error().map_or(TransportError::Other, |n| from_errno(Errno::from_raw(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_port_is_reported_refused() {
        // A port nobody listens on: bind, learn it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addrs = resolve(&format!("127.0.0.1:{port}")).unwrap();
        match Conn::open(addrs, None) {
            Err(e) => assert_eq!(e, TransportError::Refused),
            Ok(mut c) => {
                let mut fds = [nix::poll::PollFd::new(c.stream.as_fd(), nix::poll::PollFlags::POLLOUT)];
                nix::poll::poll(&mut fds, 5000u16).unwrap();
                assert_eq!(c.on_writable(), Err(TransportError::Refused));
            }
        }
    }

    #[test]
    fn an_endpoint_without_a_port_is_unreachable() {
        assert_eq!(resolve("no port").unwrap_err(), TransportError::Unreachable);
    }
}
