//! `agent-5`: an agent driven only through the C ABI, in the call order a C
//! daemon uses (that of `include/edge_agent.h` and
//! `examples/c/bare_metal.c`), with a real `TcpStream` as its transport.
//!
//! 1. The caller declares every byte: an `ea_agent`, the ring, the receive
//!    buffer, the event queue and the transmit buffer, plain arrays on this
//!    thread's stack; the identity is pointer+length pairs into `'static`
//!    bytes.
//! 2. `ea_config_default`, a few fields changed (the same settings as the
//!    Rust agents), `ea_min_transmit_len`, `ea_agent_init`.
//! 3. The sans-IO loop: `ea_agent_handle_timeout` when
//!    `ea_agent_poll_timeout` is due; then every frame of
//!    `ea_agent_poll_transmit` written to the socket and every
//!    `ea_agent_poll_event` acted on (CONNECT: open the socket,
//!    `ea_agent_handle_connected`; DISCONNECT: drop it; TASK: answer),
//!    until neither gives anything; then wait in a socket read with a
//!    timeout no later than `ea_agent_timeout_delay`, and hand what arrives
//!    to `ea_agent_handle_received` (EOF or an error to
//!    `ea_agent_handle_disconnected`).
//! 4. `ea_agent_push` for each reading; at the end, wait for
//!    `ea_agent_is_drained`, `ea_agent_close`, `ea_agent_stats`,
//!    `ea_agent_deinit`.

use super::workload::{unix_ms, Report, AGENT_DEADLINE, READING, READINGS, READING_EVERY};
use agent_core::message::task_status;
use agent_core::AgentStats;
use edge_agent::event::ea_event_kind::{EA_EVENT_CONNECT, EA_EVENT_DISCONNECT, EA_EVENT_NONE, EA_EVENT_SHUTDOWN, EA_EVENT_TASK};
use edge_agent::event::ea_transport_error::{self, *};
use edge_agent::result::ea_result::{self, EA_OK, EA_RING_FULL};
use edge_agent::*;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

/// The longest wait in one read while a socket is open (the Rust driver's
/// `max_wait` plays the same part).
const MAX_WAIT_MS: u64 = 20;

static HOSTNAME: &[u8] = b"demo-host";
static PRODUCT: &[u8] = b"edge-demo";
static VERSION: &[u8] = env!("CARGO_PKG_VERSION").as_bytes();
static IPV4: [u8; 4] = [127, 0, 0, 1];
static PLUGIN: &[u8] = b"scanner";
static PLUGIN_VERSION: &[u8] = b"1.0";
static NOT_SUPPORTED: &[u8] = b"not supported by the demo";

/// Panics with the library's message unless `r` is `EA_OK`: in the demo a
/// refused call is a bug.
fn ok(r: ea_result, call: &str) {
    assert!(r == EA_OK, "{call}: {r}");
}

/// The demo's clock as the C ABI takes it: monotonic milliseconds since
/// `start` (the same instants the Rust agents use).
fn now_ms(start: StdInstant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// The transport error an I/O error is reported as.
fn transport_error(kind: ErrorKind) -> ea_transport_error {
    match kind {
        ErrorKind::ConnectionRefused => EA_TRANSPORT_REFUSED,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe | ErrorKind::NotConnected => EA_TRANSPORT_RESET,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => EA_TRANSPORT_TIMED_OUT,
        ErrorKind::UnexpectedEof | ErrorKind::WriteZero => EA_TRANSPORT_CLOSED,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable | ErrorKind::AddrNotAvailable | ErrorKind::NetworkDown => EA_TRANSPORT_UNREACHABLE,
        _ => EA_TRANSPORT_OTHER,
    }
}

/// One agent driven through `ea_*` calls: the caller's socket, buffers and
/// clock around the handle.
struct CAgent<'b> {
    agent: *mut ea_agent,
    tx: &'b mut [u8],
    rx_chunk: [u8; 4096],
    sock: Option<TcpStream>,
    collector: SocketAddr,
    start: StdInstant,
}

impl CAgent<'_> {
    fn now(&self) -> u64 {
        now_ms(self.start)
    }

    /// The socket failed or closed: drop it and tell the agent.
    fn lose(&mut self, kind: ErrorKind) {
        self.sock = None;
        // SAFETY: `self.agent` is the live handle initialized in `run`.
        ok(unsafe { ea_agent_handle_disconnected(self.agent, self.now(), transport_error(kind) as u32) }, "ea_agent_handle_disconnected");
    }

    /// Writes every frame `ea_agent_poll_transmit` has; true if there was one.
    fn transmit(&mut self) -> bool {
        let mut any = false;
        loop {
            let mut n = 0;
            // SAFETY: the live handle; `tx` is writable for its length; `n` is a local.
            ok(unsafe { ea_agent_poll_transmit(self.agent, self.now(), self.tx.as_mut_ptr(), self.tx.len(), &mut n) }, "ea_agent_poll_transmit");
            if n == 0 {
                return any;
            }
            any = true;
            // With no socket (lost a moment ago) the frame is dropped: the
            // agent resends what was in flight on the next connection.
            if let Some(s) = self.sock.as_mut() {
                if let Err(e) = s.write_all(&self.tx[..n]) {
                    self.lose(e.kind());
                }
            }
        }
    }

    /// Opens the socket an `EA_EVENT_CONNECT` asks for and reports the outcome.
    fn connect(&mut self) {
        let opened = TcpStream::connect_timeout(&self.collector, StdDuration::from_secs(1)).and_then(|s| {
            s.set_nodelay(true)?;
            // A write that blocks this long fails, and the agent reconnects.
            s.set_write_timeout(Some(StdDuration::from_secs(2)))?;
            Ok(s)
        });
        match opened {
            Ok(s) => {
                self.sock = Some(s);
                // SAFETY: the live handle.
                ok(unsafe { ea_agent_handle_connected(self.agent, self.now()) }, "ea_agent_handle_connected");
            }
            Err(e) => self.lose(e.kind()),
        }
    }

    /// Acts on every queued event; true if there was one.
    fn events(&mut self) -> bool {
        let mut any = false;
        loop {
            // SAFETY: `ea_event` is a plain C struct; all-zero is valid.
            let mut ev: ea_event = unsafe { std::mem::zeroed() };
            // SAFETY: the live handle; `ev` is a local.
            ok(unsafe { ea_agent_poll_event(self.agent, &mut ev) }, "ea_agent_poll_event");
            match ev.kind {
                k if k == EA_EVENT_NONE as u32 => return any,
                k if k == EA_EVENT_CONNECT as u32 => self.connect(),
                k if k == EA_EVENT_DISCONNECT as u32 => {
                    // Frames queued before it (a Close) go out first.
                    self.transmit();
                    self.sock = None;
                }
                k if k == EA_EVENT_TASK as u32 || k == EA_EVENT_SHUTDOWN as u32 => {
                    // The token stays valid until the next handle/poll call;
                    // a task result may be queued before that.
                    // SAFETY: the live handle; the token as the event gave it.
                    let r = unsafe {
                        ea_agent_task_result(
                            self.agent,
                            self.now(),
                            ev.token,
                            ev.token_len,
                            task_status::FAILED,
                            NOT_SUPPORTED.as_ptr(),
                            NOT_SUPPORTED.len(),
                        )
                    };
                    ok(r, "ea_agent_task_result");
                }
                _ => {} // CONNECTED, CONFIG, DELIVERED, GAVE_UP: nothing to do here
            }
            any = true;
        }
    }

    /// One turn without waiting: the timer if due, then transmits and events
    /// until neither gives anything.
    fn poll(&mut self) {
        let now = self.now();
        let mut due = 0;
        // SAFETY: the live handle; `due` is a local.
        ok(unsafe { ea_agent_poll_timeout(self.agent, &mut due) }, "ea_agent_poll_timeout");
        if due <= now {
            // SAFETY: the live handle.
            ok(unsafe { ea_agent_handle_timeout(self.agent, now) }, "ea_agent_handle_timeout");
        }
        while self.transmit() | self.events() {}
    }

    /// Waits until the agent's timer, `until` or bytes from the socket,
    /// whichever is first; received bytes go to `ea_agent_handle_received`.
    fn wait(&mut self, until: u64) {
        let now = self.now();
        let mut delay = 0u32;
        // SAFETY: the live handle; `delay` is a local.
        ok(unsafe { ea_agent_timeout_delay(self.agent, now, &mut delay) }, "ea_agent_timeout_delay");
        let mut ms = u64::from(delay).min(until.saturating_sub(now));
        let Some(s) = self.sock.as_mut() else {
            thread::sleep(StdDuration::from_millis(ms));
            return;
        };
        ms = ms.min(MAX_WAIT_MS);
        if ms == 0 {
            return;
        }
        let read = s.set_read_timeout(Some(StdDuration::from_millis(ms))).and_then(|()| s.read(&mut self.rx_chunk));
        match read {
            Ok(0) => self.lose(ErrorKind::UnexpectedEof),
            Ok(n) => {
                let now = self.now();
                // SAFETY: the live handle; `n` bytes of `rx_chunk` are readable.
                ok(unsafe { ea_agent_handle_received(self.agent, now, self.rx_chunk.as_ptr(), n) }, "ea_agent_handle_received");
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => self.lose(e.kind()),
        }
    }

    /// Polls and waits until `done()` holds after a poll (true) or the clock
    /// reaches `deadline` (false). Polls at least once.
    fn run_until(&mut self, deadline: u64, mut done: impl FnMut(*const ea_agent) -> bool) -> bool {
        loop {
            self.poll();
            if done(self.agent) {
                return true;
            }
            if self.now() >= deadline {
                return false;
            }
            self.wait(deadline);
        }
    }
}

fn is_drained(agent: *const ea_agent) -> bool {
    let mut drained = false;
    // SAFETY: the live handle; `drained` is a local.
    ok(unsafe { ea_agent_is_drained(agent, &mut drained) }, "ea_agent_is_drained");
    drained
}

/// Runs `name` through the C ABI against `collector` and reports like the
/// Rust agents do: 150 readings, 20 ms apart, then a quiet moment for a
/// Ping, then until every record is acked.
pub(crate) fn run(name: &'static str, collector: SocketAddr, start: StdInstant, seed: u64) -> Report {
    // Every byte the agent uses, declared by the caller.
    let mut agent = ea_agent { _opaque: [0; EA_AGENT_STORAGE_WORDS] };
    let mut ring = [0u8; 16 * 1024];
    let mut rx = [0u8; 4096];
    let mut events = [0u8; 2048];
    let mut tx = [0u8; 8192];

    let mut cfg = ea_config_default();
    cfg.heartbeat_interval_ms = 1000;
    cfg.flush_interval_ms = 50;
    cfg.ack_timeout_ms = 3000;
    cfg.idle_timeout_ms = 150;
    cfg.backoff_base_ms = 200;
    cfg.backoff_cap_ms = 1000;
    cfg.rng_seed = seed;
    // SAFETY: `ea_identity` is plain pointer+length pairs; all-zero (NULL,
    // 0) is valid.
    let mut id: ea_identity = unsafe { std::mem::zeroed() };
    (id.agent_id, id.agent_id_len) = (name.as_ptr(), name.len());
    (id.hostname, id.hostname_len) = (HOSTNAME.as_ptr(), HOSTNAME.len());
    (id.product, id.product_len) = (PRODUCT.as_ptr(), PRODUCT.len());
    (id.version, id.version_len) = (VERSION.as_ptr(), VERSION.len());
    (id.intranet_ipv4, id.intranet_ipv4_len) = (IPV4.as_ptr(), IPV4.len());

    let mut min_tx = 0;
    // SAFETY: `cfg`, `id` and `min_tx` are locals; the identity's bytes are 'static.
    ok(unsafe { ea_min_transmit_len(&cfg, &id, &mut min_tx) }, "ea_min_transmit_len");
    assert!(min_tx <= tx.len(), "transmit buffer: {} bytes, {min_tx} needed", tx.len());
    let a: *mut ea_agent = &mut agent;
    // SAFETY: the storage and the three buffers are this function's locals,
    // untouched until `ea_agent_deinit` below; the identity's bytes are 'static.
    let r = unsafe {
        ea_agent_init(
            a,
            size_of::<ea_agent>(),
            &cfg,
            &id,
            ring.as_mut_ptr(),
            ring.len(),
            rx.as_mut_ptr(),
            rx.len(),
            events.as_mut_ptr(),
            events.len(),
        )
    };
    ok(r, "ea_agent_init");
    let now = now_ms(start);
    // Heartbeats carry Unix-time timestamps.
    // SAFETY: the live handle.
    ok(unsafe { ea_agent_set_clock_offset(a, unix_ms() as i64 - now as i64) }, "ea_agent_set_clock_offset");
    let mut plugin = 0u8;
    // SAFETY: the live handle; the names are 'static; `plugin` is a local.
    ok(
        unsafe { ea_agent_register_plugin(a, PLUGIN.as_ptr(), PLUGIN.len(), PLUGIN_VERSION.as_ptr(), PLUGIN_VERSION.len(), &mut plugin) },
        "ea_agent_register_plugin",
    );
    // SAFETY: the live handle.
    ok(
        unsafe { ea_agent_set_plugin_status(a, plugin, std::process::id(), ea_plugin_status::EA_PLUGIN_RUNNING as u32) },
        "ea_agent_set_plugin_status",
    );

    let mut c = CAgent { agent: a, tx: &mut tx, rx_chunk: [0; 4096], sock: None, collector, start };
    let mut pushed = 0;
    for i in 0..READINGS {
        let reading = format!("{{\"reading\":{i},\"temp_c\":{:.1}}}", 20.0 + f64::from(i % 7) * 0.3);
        let now = c.now();
        // SAFETY: the live handle; `reading` is readable for its length.
        match unsafe { ea_agent_push(a, now, READING, unix_ms(), reading.as_ptr(), reading.len()) } {
            EA_OK => pushed += 1,
            EA_RING_FULL => {} // counted by the library in dropped_full
            r => ok(r, "ea_agent_push"),
        }
        c.run_until(now + READING_EVERY.as_millis() as u64, |_| false);
    }
    // A quiet moment: the agent pings, and the Pong gives its RTT.
    let quiet = c.now() + 400;
    c.run_until(quiet, |_| false);
    let deadline = AGENT_DEADLINE.as_millis();
    let finished = c.run_until(deadline, is_drained);
    // SAFETY: the live handle.
    ok(unsafe { ea_agent_close(a, c.now()) }, "ea_agent_close");
    c.run_until(deadline, |_| true);
    drop(c);

    let mut s = ea_stats::default();
    // SAFETY: the live handle; `s` is a local.
    ok(unsafe { ea_agent_stats(a, &mut s) }, "ea_agent_stats");
    // SAFETY: the live handle; nothing uses it afterwards.
    ok(unsafe { ea_agent_deinit(a) }, "ea_agent_deinit");
    let stats = AgentStats {
        pushed: s.pushed,
        acked: s.acked,
        dropped_full: s.dropped_full,
        dropped_too_large: s.dropped_too_large,
        dropped_evicted: s.dropped_evicted,
        bytes_sent: s.bytes_sent,
        bytes_received: s.bytes_received,
        frames_sent: s.frames_sent,
        frames_received: s.frames_received,
        connections: s.connections,
        connect_failures: s.connect_failures,
        last_rtt_ms: (s.has_last_rtt != 0).then_some(s.last_rtt_ms),
        ..AgentStats::default()
    };
    Report { name, pushed, stats, finished }
}
