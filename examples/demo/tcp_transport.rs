//! A `std::net::TcpStream` as an `embedded_io` transport for
//! `agent_core::driver::Driver`: `ReadReady` is a non-blocking peek, so the
//! driver never blocks in a read. Shared by the demo and the collector's
//! end-to-end tests (included with `#[path]`), until the Linux host layer
//! provides one.

use embedded_io_adapters::std::FromStd;
use std::net::TcpStream;

/// A connected stream, ready for the driver.
pub struct TcpTransport(FromStd<TcpStream>);

impl TcpTransport {
    /// Wraps a connected stream (its timeouts and options set by the caller).
    pub fn new(stream: TcpStream) -> TcpTransport {
        TcpTransport(FromStd::new(stream))
    }
}

impl embedded_io::ErrorType for TcpTransport {
    type Error = std::io::Error;
}

impl embedded_io::Read for TcpTransport {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, std::io::Error> {
        embedded_io::Read::read(&mut self.0, buf)
    }
}

impl embedded_io::Write for TcpTransport {
    fn write(&mut self, buf: &[u8]) -> Result<usize, std::io::Error> {
        embedded_io::Write::write(&mut self.0, buf)
    }
    fn flush(&mut self) -> Result<(), std::io::Error> {
        embedded_io::Write::flush(&mut self.0)
    }
}

impl embedded_io::ReadReady for TcpTransport {
    fn read_ready(&mut self) -> Result<bool, std::io::Error> {
        let stream = self.0.inner();
        stream.set_nonblocking(true)?;
        let peeked = stream.peek(&mut [0u8; 1]);
        stream.set_nonblocking(false)?;
        match peeked {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}
