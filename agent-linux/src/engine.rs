//! One turn of the loop, under the engine's lock: complete a connect, read
//! what arrived, fire due timers, move frames from the agent into the out
//! buffer and from there to the socket, act on the agent's events, and say
//! when to wake next. No allocation after init (but rustls' own, over TLS);
//! no waiting inside.

use crate::clock;
use crate::config::{HostConfig, HostError};
use crate::connect::{self, Conn};
use crate::event::EventCopy;
use crate::memory::Memory;
use crate::netinfo;
use crate::outbuf::{Flush, OutBuf};
use crate::stats::StatsReader;
use crate::tls::{self, TlsClient, TlsFailure, TlsSink};
use agent_core::agent::Timer;
use agent_core::{Agent, AgentStats, AgentStorage, Duration, Event, Identity, Instant, TransportError};
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use rustls::ClientConnection;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;

/// epoll data of the wake-up fd.
pub(crate) const TOKEN_WAKE: u64 = 1;
/// epoll data of the socket.
pub(crate) const TOKEN_SOCKET: u64 = 2;
/// Reads per turn at most, so one busy peer cannot hold the loop.
const READS_PER_TURN: usize = 16;

/// Counters of the loop itself (the agent's are in [`AgentStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Times the loop returned from waiting (own thread) or `process` ran.
    pub wakeups: u64,
    /// Wake-ups caused by the wake-up fd (a push, a stop, a signal).
    pub woken_by_push: u64,
    /// Times the agent's next deadline was already due after a full turn
    /// because the socket would not take more: the loop then waited for
    /// writable (or one flush interval) instead of spinning.
    pub deferred_timeouts: u64,
    /// Writes that left bytes in the out buffer (socket full).
    pub blocked_writes: u64,
    /// Connection attempts started.
    pub connects: u64,
    /// Host stats readings taken.
    pub stats_readings: u64,
    /// Connections lost, or attempts failed, for a network reason (resolve,
    /// connect, read or write errors, end of stream). The agent's own
    /// timeouts are in its stats.
    pub network_failures: u64,
    /// TLS sessions that failed: a refused certificate (either side), an
    /// alert, a protocol error. Never counted in `network_failures`.
    pub tls_failures: u64,
    /// What the last of `tls_failures` was.
    pub last_tls_failure: Option<TlsFailure>,
}

/// What happened to the records of a stopped host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopReport {
    /// Every record was acked (or dropped and counted) before Close.
    pub drained: bool,
    /// Records still unacked at Close (lost unless the program pushes them
    /// again elsewhere). Includes the agent's own heartbeats.
    pub unacked: u64,
    /// The agent's counters at Close.
    pub stats: AgentStats,
}

/// The agent, its socket and buffers.
pub(crate) struct Engine {
    // Declared first: dropped before the memory it borrows.
    pub(crate) agent: Agent<'static>,
    _memory: Memory,
    endpoints: Vec<String>,
    conn: Option<Conn>,
    /// The TLS client (when configured) and the session on `conn`.
    tls_client: Option<TlsClient>,
    tls: Option<ClientConnection>,
    /// The endpoint index of `conn`.
    current_endpoint: usize,
    /// `handle_connected` was called for `conn` (after the TLS handshake).
    session_up: bool,
    want_write: bool,
    out: OutBuf,
    tx_len: usize,
    read_chunk: Vec<u8>,
    stats: Option<StatsReader>,
    send_buffer: Option<usize>,
    flush_interval: Duration,
    heartbeat_interval: Duration,
    last_stats: Option<Instant>,
    /// When the loop means to wake next; `None` while it is awake.
    pub(crate) sleep_until: Option<Instant>,
    last_timeout: Option<Instant>,
    pub(crate) stop_at: Option<Instant>,
    pub(crate) report: Option<StopReport>,
    pub(crate) loop_stats: LoopStats,
}

impl Engine {
    pub(crate) fn new(cfg: &HostConfig) -> Result<Engine, HostError> {
        if cfg.endpoints.is_empty() || cfg.endpoints.len() > 255 {
            return Err(HostError::Endpoints);
        }
        if !cfg.endpoints.iter().all(|e| crate::config::is_endpoint(e)) {
            return Err(HostError::BadEndpoint);
        }
        if cfg.read_chunk == 0 {
            return Err(HostError::OutBufferTooSmall);
        }
        let mut acfg = cfg.agent;
        acfg.backoff.endpoints = cfg.endpoints.len() as u8;
        if acfg.rng_seed == 0 {
            acfg.rng_seed = clock::jitter_seed();
        }
        let mut mem = Memory::default();
        let hostname = cfg.hostname.clone().unwrap_or_else(netinfo::hostname);
        let addrs = match (&cfg.addresses, cfg.send_addresses) {
            (Some(given), _) => given.clone(),
            (None, true) => netinfo::addresses(),
            (None, false) => netinfo::Addresses::default(),
        };
        let id = Identity {
            agent_id: mem.str(&cfg.agent_id),
            hostname: mem.str(&hostname),
            product: mem.str(&cfg.product),
            version: mem.str(&cfg.version),
            intranet_ipv4: mem.bytes(&addrs.private_v4),
            intranet_ipv6: mem.bytes(&addrs.private_v6),
            extranet_ipv4: mem.bytes(&addrs.public_v4),
            extranet_ipv6: mem.bytes(&addrs.public_v6),
            auth_token: mem.bytes(&cfg.auth_token),
        };
        let tx_len = agent_core::agent::min_transmit_len(&acfg, &id);
        let out_bytes = if cfg.out_bytes == 0 { 2 * tx_len } else { cfg.out_bytes };
        if out_bytes < tx_len {
            return Err(HostError::OutBufferTooSmall);
        }
        // Validate before allocating the big buffers.
        agent_core::agent::validate(
            &acfg,
            &id,
            agent_core::agent::StorageSizes { ring: cfg.ring_bytes, rx: cfg.rx_bytes, events: cfg.event_bytes },
        )?;
        let storage = AgentStorage {
            ring: mem.buffer(cfg.ring_bytes),
            rx: mem.buffer(cfg.rx_bytes),
            events: mem.buffer(cfg.event_bytes),
        };
        let tls_client = match &cfg.tls {
            Some(t) => Some(TlsClient::new(t, &cfg.endpoints, out_bytes).map_err(HostError::Tls)?),
            None => None,
        };
        let mut agent = Agent::new(acfg, id, storage)?;
        agent.set_clock_offset(clock::wall_offset_ms());
        Ok(Engine {
            agent,
            _memory: mem,
            endpoints: cfg.endpoints.clone(),
            conn: None,
            tls_client,
            tls: None,
            current_endpoint: 0,
            session_up: false,
            want_write: false,
            out: OutBuf::new(out_bytes),
            tx_len,
            read_chunk: vec![0; cfg.read_chunk],
            stats: cfg.host_stats.then(|| StatsReader::new(16 * 1024)),
            send_buffer: cfg.socket_send_buffer,
            flush_interval: acfg.flush_interval,
            heartbeat_interval: acfg.heartbeat_interval,
            last_stats: None,
            sleep_until: None,
            last_timeout: None,
            stop_at: None,
            report: None,
            loop_stats: LoopStats::default(),
        })
    }

    /// The socket cannot take a whole frame more: the out buffer lacks room.
    fn blocked(&mut self) -> bool {
        self.conn.is_some() && self.out.room(self.tx_len).is_none()
    }

    /// One turn. `ready`: what epoll said about the socket. Returns true
    /// when an event was copied into `copy` for the handler: call again
    /// (with no readiness) after the handler ran.
    pub(crate) fn turn(&mut self, epoll: &Epoll, now: Instant, ready: EpollFlags, copy: &mut EventCopy) -> bool {
        if !ready.is_empty() {
            self.on_socket(epoll, now, ready);
        }
        if let Some(at) = self.stop_at {
            if self.report.is_none() && (self.agent.is_drained() || now >= at) {
                self.finish(epoll, now);
                return false;
            }
            self.agent.flush_now(now);
        }
        self.fire_timers(now);
        loop {
            self.transmit(epoll, now);
            match self.events(epoll, now, copy) {
                Pump::Copied => return true,
                Pump::Acted => continue,
                Pump::Idle => break,
            }
        }
        false
    }

    fn on_socket(&mut self, epoll: &Epoll, now: Instant, ready: EpollFlags) {
        let Some(conn) = self.conn.as_mut() else { return };
        if conn.connecting {
            if ready.intersects(EpollFlags::EPOLLOUT | EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP) {
                let old = std::os::fd::AsRawFd::as_raw_fd(&conn.stream);
                match conn.on_writable() {
                    Ok(()) => {
                        if std::os::fd::AsRawFd::as_raw_fd(&conn.stream) != old || conn.connecting {
                            // Another address is being tried on a new socket.
                            let _ = epoll.add(conn.stream.as_fd(), interest(true));
                            self.want_write = true;
                        } else {
                            self.set_write_interest(epoll, false);
                            self.tcp_connected(epoll, now);
                        }
                    }
                    Err(e) => self.lost(now, e),
                }
            }
            return;
        }
        if ready.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
            if self.tls.is_some() {
                return self.read_tls(epoll, now);
            }
            for _ in 0..READS_PER_TURN {
                let Some(conn) = self.conn.as_mut() else { return };
                match conn.stream.read(&mut self.read_chunk) {
                    Ok(0) => return self.lost(now, TransportError::Closed),
                    Ok(n) => {
                        self.agent.handle_received(now, &self.read_chunk[..n]);
                        if n < self.read_chunk.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return self.lost(now, connect::from_io(&e)),
                }
            }
        }
    }

    /// TCP is connected: start the TLS handshake, or tell the agent.
    fn tcp_connected(&mut self, epoll: &Epoll, now: Instant) {
        let Some(client) = self.tls_client.as_ref() else {
            self.session_up = true;
            return self.agent.handle_connected(now);
        };
        let index = self.current_endpoint;
        match client.session(index) {
            Ok(session) => {
                self.tls = Some(session);
                self.write_out(epoll, now);
            }
            Err(f) => self.tls_lost(now, f),
        }
    }

    /// Readable on a TLS session: ciphertext into rustls, records decrypted,
    /// plaintext to the agent; the handshake's end tells the agent it is
    /// connected. A rustls error is a TLS failure, not a network one.
    fn read_tls(&mut self, epoll: &Epoll, now: Instant) {
        for _ in 0..READS_PER_TURN {
            let (Some(conn), Some(tls)) = (self.conn.as_mut(), self.tls.as_mut()) else { return };
            let eof = match tls.read_tls(&mut conn.stream) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return self.lost(now, connect::from_io(&e)),
            };
            let state = match tls.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // Best effort: send our alert, if any.
                    let _ = tls::push_ciphertext(tls, &conn.stream);
                    return self.tls_lost(now, TlsFailure::from(&e));
                }
            };
            let mut left = state.plaintext_bytes_to_read();
            let peer_closed = state.peer_has_closed();
            if !self.session_up && !tls.is_handshaking() {
                self.session_up = true;
                self.agent.handle_connected(now);
            }
            while left > 0 {
                let Some(tls) = self.tls.as_mut() else { return };
                match tls.reader().read(&mut self.read_chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        left = left.saturating_sub(n);
                        self.agent.handle_received(now, &self.read_chunk[..n]);
                    }
                    Err(_) => break,
                }
            }
            if eof || peer_closed {
                return self.lost(now, TransportError::Closed);
            }
        }
        // Handshake messages or alerts to send, or written plaintext.
        self.write_out(epoll, now);
    }

    /// Fires the agent's due timers; reads host stats first when a
    /// heartbeat is due. While the socket is blocked, at most once per
    /// flush interval (a deadline only a write can serve must not spin).
    fn fire_timers(&mut self, now: Instant) {
        let Some(due) = self.agent.poll_timeout() else { return };
        if due > now {
            return;
        }
        if self.blocked() && self.last_timeout.is_some_and(|t| now < t + self.flush_interval) {
            return;
        }
        // A heartbeat due first, or one heartbeat interval since the last
        // reading (a heartbeat due behind another timer).
        let heartbeat_first = matches!(self.agent.next_timer(), Some((Timer::Heartbeat, at)) if at <= now);
        let stale = self.last_stats.is_none_or(|t| now >= t + self.heartbeat_interval);
        if let Some(r) = self.stats.as_mut() {
            if heartbeat_first || stale {
                self.agent.set_host_stats(r.read(now));
                self.agent.set_clock_offset(clock::wall_offset_ms());
                self.loop_stats.stats_readings += 1;
                self.last_stats = Some(now);
            }
        }
        self.agent.handle_timeout(now);
        self.last_timeout = Some(now);
    }

    fn transmit(&mut self, epoll: &Epoll, now: Instant) {
        let Some(conn) = self.conn.as_ref() else { return };
        if conn.connecting {
            return;
        }
        while let Some(room) = self.out.room(self.tx_len).filter(|_| self.session_up) {
            let n = self.agent.poll_transmit(now, room);
            if n == 0 {
                break;
            }
            self.out.commit(n);
        }
        self.write_out(epoll, now);
    }

    fn write_out(&mut self, epoll: &Epoll, now: Instant) {
        if self.conn.is_none() {
            return;
        }
        if self.out.is_empty() && !self.tls.as_ref().is_some_and(|t| t.wants_write()) {
            return self.set_write_interest(epoll, false);
        }
        match self.flush() {
            Ok(Flush::Empty) => self.set_write_interest(epoll, false),
            Ok(Flush::Blocked) => {
                self.loop_stats.blocked_writes += 1;
                self.set_write_interest(epoll, true);
            }
            Err(e) => self.lost(now, connect::from_io(&e)),
        }
    }

    /// Writes the out buffer (through rustls on a TLS session) as far as
    /// the socket takes it.
    fn flush(&mut self) -> std::io::Result<Flush> {
        let Some(conn) = self.conn.as_ref() else { return Ok(Flush::Empty) };
        let Some(tls) = self.tls.as_mut() else { return self.out.flush_to(&conn.stream) };
        let r = self.out.flush_to(TlsSink { tls: &mut *tls, sock: &conn.stream })?;
        if r == Flush::Empty && !tls::push_ciphertext(tls, &conn.stream)? {
            return Ok(Flush::Blocked);
        }
        Ok(r)
    }

    /// A TLS session failed: counted apart from network failures.
    fn tls_lost(&mut self, now: Instant, f: TlsFailure) {
        self.loop_stats.tls_failures += 1;
        self.loop_stats.last_tls_failure = Some(f);
        self.drop_conn();
        self.agent.handle_disconnected(now, TransportError::Other);
    }

    fn drop_conn(&mut self) {
        self.conn = None;
        self.tls = None;
        self.session_up = false;
        self.out.clear();
        self.want_write = false;
    }

    fn set_write_interest(&mut self, epoll: &Epoll, on: bool) {
        if self.want_write == on {
            return;
        }
        if let Some(c) = self.conn.as_ref() {
            let _ = epoll.modify(c.stream.as_fd(), &mut interest(on));
        }
        self.want_write = on;
    }

    /// The transport failed: tell the agent, drop the socket.
    fn lost(&mut self, now: Instant, e: TransportError) {
        self.loop_stats.network_failures += 1;
        self.drop_conn();
        self.agent.handle_disconnected(now, e);
    }

    fn events(&mut self, epoll: &Epoll, now: Instant, copy: &mut EventCopy) -> Pump {
        let Some(ev) = self.agent.poll_event() else { return Pump::Idle };
        match ev {
            Event::Connect { endpoint } => {
                self.open(epoll, now, endpoint);
                Pump::Acted
            }
            Event::Disconnect { .. } => {
                let copied = copy.set(&ev);
                // Send what is queued (the Close), best effort, then drop.
                if let Some(tls) = self.tls.as_mut() {
                    tls.send_close_notify();
                }
                let _ = self.flush();
                self.drop_conn();
                if copied { Pump::Copied } else { Pump::Acted }
            }
            ev => {
                if copy.set(&ev) {
                    Pump::Copied
                } else {
                    Pump::Acted
                }
            }
        }
    }

    fn open(&mut self, epoll: &Epoll, now: Instant, endpoint: u8) {
        self.drop_conn();
        self.current_endpoint = usize::from(endpoint);
        self.loop_stats.connects += 1;
        let name = self.endpoints.get(usize::from(endpoint)).map(String::as_str).unwrap_or("");
        match connect::resolve(name).and_then(|a| Conn::open(a, self.send_buffer)) {
            Ok(conn) => {
                let connecting = conn.connecting;
                if epoll.add(conn.stream.as_fd(), interest(connecting)).is_err() {
                    return self.agent.handle_disconnected(now, TransportError::Other);
                }
                self.want_write = connecting;
                self.conn = Some(conn);
                if !connecting {
                    self.tcp_connected(epoll, now);
                }
            }
            Err(e) => {
                self.loop_stats.network_failures += 1;
                self.agent.handle_disconnected(now, e)
            }
        }
    }

    /// When the loop should wake next (never "now" twice in a row).
    pub(crate) fn next_wake(&mut self, now: Instant) -> Option<Instant> {
        let mut due = self.agent.poll_timeout();
        if let Some(d) = due {
            if d <= now {
                // Only a write can serve it (blocked socket): wait for
                // writable, or one flush interval.
                self.loop_stats.deferred_timeouts += 1;
                due = Some(now + self.flush_interval.max(Duration::from_millis(1)));
            }
        }
        if let Some(at) = self.stop_at {
            if self.report.is_none() {
                due = Some(due.map_or(at, |d| d.min(at)));
            }
        }
        if self.report.is_some() {
            due = None;
        }
        self.sleep_until = due;
        due
    }

    /// The stop deadline passed or everything is acked: Close, flush it
    /// (waiting at most 200 ms for the socket), drop the connection.
    fn finish(&mut self, epoll: &Epoll, now: Instant) {
        let drained = self.agent.is_drained();
        let unacked = self.agent.ring().len();
        self.agent.close(now);
        if self.session_up {
            while let Some(room) = self.out.room(self.tx_len) {
                let n = self.agent.poll_transmit(now, room);
                if n == 0 {
                    break;
                }
                self.out.commit(n);
            }
            if let Some(tls) = self.tls.as_mut() {
                tls.send_close_notify();
            }
            for _ in 0..20 {
                if !matches!(self.flush(), Ok(Flush::Blocked)) {
                    break;
                }
                let Some(c) = self.conn.as_ref() else { break };
                let mut fds = [nix::poll::PollFd::new(c.stream.as_fd(), nix::poll::PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut fds, 10u16);
            }
        }
        while self.agent.poll_event().is_some() {}
        if let Some(c) = self.conn.as_ref() {
            let _ = epoll.delete(c.stream.as_fd());
        }
        self.drop_conn();
        self.report = Some(StopReport { drained, unacked, stats: self.agent.stats() });
    }
}

enum Pump {
    Copied,
    Acted,
    Idle,
}

fn interest(write: bool) -> EpollEvent {
    let mut f = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
    if write {
        f |= EpollFlags::EPOLLOUT;
    }
    EpollEvent::new(f, TOKEN_SOCKET)
}
