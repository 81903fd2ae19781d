//! The session: one [`Agent`] that keeps a connection to a collector alive,
//! delivers records at least once, reports heartbeats and hands server
//! commands to its caller, with no clock, no heap and no blocking inside.
//!
//! # Call order
//!
//! The agent is sans-IO: the caller owns the transport (a TCP socket, a
//! UART, ...) and the clock, and drives the agent with four kinds of calls.
//!
//! * **Inputs** `handle_*`: [`Agent::handle_connected`],
//!   [`Agent::handle_received`], [`Agent::handle_disconnected`],
//!   [`Agent::handle_timeout`]; and **commands** at any time:
//!   [`Agent::push`], [`Agent::task_result`], [`Agent::close`], ...
//! * **Outputs**, after every input: first [`Agent::poll_transmit`] until it
//!   returns 0 (write each frame to the transport), then
//!   [`Agent::poll_event`] until `None` (act on each event), then
//!   [`Agent::poll_timeout`]: call `handle_timeout` no later than that.
//!
//! ```text
//! loop {
//!     wait for: readable transport, or poll_timeout(), or new records
//!     handle_received(now, bytes) / handle_timeout(now) / push(now, rec)
//!     while n = poll_transmit(now, buf) > 0 { write buf[..n] }
//!     while let Some(ev) = poll_event() { Connect{i} => open endpoint i ... }
//! }
//! ```
//!
//! Every input takes the caller's monotonic [`Instant`]; an instant earlier
//! than one seen before counts as no time passing.
//!
//! # States
//!
//! | from         | on                                          | to           | effect |
//! |--------------|---------------------------------------------|--------------|--------|
//! | Backoff      | timeout reaches the backoff deadline        | Connecting   | event `Connect{endpoint}` |
//! | Connecting   | `handle_connected`                          | Handshaking  | Hello queued for transmit |
//! | Connecting   | `handle_disconnected`, `connect_timeout`    | Backoff      | failure counted, event `Disconnect` |
//! | Handshaking  | Accept (compatible)                         | Connected    | resume point applied, event `Connected` |
//! | Handshaking  | Reject, Close, timeout, disconnect, Accept with a too small frame | Backoff | failure, `Disconnect` |
//! | Connected    | disconnect, Close, pong or ack timeout, bad version | Backoff | in-flight rewound, `Disconnect` |
//! | Connected    | up for `healthy_after`                      | Connected    | backoff failures reset |
//! | any but Closed | `close()`                                 | Closed       | Close frame queued, `Disconnect` |
//! | Backoff      | give-up limit reached                       | GaveUp       | event `GaveUp` |
//! | GaveUp, Closed, Backoff | `reconnect_now()`                | Backoff (due now) | |
//!
//! Every failure goes through one path: the ring rewinds (at-least-once),
//! the decoder forgets partial frames, the backoff decides the next endpoint
//! and delay (see [`crate::backoff`]), and a `Disconnect` event tells the
//! caller to close the transport.
//!
//! # Batching, acks, liveness, heartbeats
//!
//! * A batch is sent when a full batch is pending (`batch_max_bytes` or
//!   `batch_max_records`), when records are awaiting resend after a
//!   reconnect, or when pending records have waited `flush_interval`,
//!   provided fewer than `window_bytes` are unacked. No record waits longer
//!   than `flush_interval` for its first send while the window is open.
//! * Acks free ring space; Accept's resume point acks what the server
//!   already has, so it is not sent again.
//! * After `idle_timeout` with no frame received, one Ping goes out; if no
//!   frame at all arrives within `pong_timeout`, the connection is dead. Any
//!   received frame counts as life, and `last_rx` is updated for every frame,
//!   so a healthy link sends exactly one Ping per idle period.
//! * Records in flight with no ack progress for `ack_timeout` mean a broken
//!   connection even if pings are answered (a lost batch or ack): the agent
//!   closes and resends on a new one.
//! * Every `heartbeat_interval` (connected or not) a heartbeat record and one
//!   record per registered plugin are pushed.
//!
//! # Memory
//!
//! The `Agent` holds no buffer of its own: the ring, the receive buffer and
//! the event queue are the caller's ([`AgentStorage`]), and so is the
//! transmit buffer given to each `poll_transmit`. Its own state is
//! `size_of::<Agent>()` = 1304 bytes on a 32-bit Cortex-M4 and 1512 bytes on
//! x86_64, checked against a 1.5 KiB budget by a unit test (host) and a
//! compile-time assertion in `size-probe` (target). The whole sans-IO agent
//! links to about 18 KiB of code on `thumbv7em-none-eabihf` at opt-level
//! "z", plus the CRC table chosen by feature (see `scripts/size-report.sh`).

use crate::backoff::{Backoff, BackoffConfig, Retry};
use crate::decoder::{Feed, FrameDecoder};
use crate::events::{DisconnectReason, Event, EventQueue, TaskTarget, TransportError};
use crate::frame::{self, Frame, Kind, OVERHEAD};
use crate::heartbeat::{AgentHeartbeat, AgentStats, HostStats, MAX_HEARTBEAT_LEN};
use crate::body::{read_body, write_body, write_frame};
use crate::message::{self, task_status, Close, CloseCode, DecodeError, Hello, Ping, Pong, TaskResult};
use crate::plugin::{PluginError, PluginHeartbeat, PluginId, PluginStatus, Plugins};
use crate::record::{data_type, MAX_ENTRY_HEADER};
use crate::ring::{PushError, Ring, RingConfig};
use crate::rng::Rng;
use crate::time::{Duration, Instant};
use crate::varint;
use crate::Record;
use core::fmt;

/// Bytes a Batch body needs beyond its entries: four varints.
pub const BATCH_HEADER_MAX: usize = 10 + 10 + 5 + 5;
/// Largest TaskResult record payload; longer messages are truncated.
pub const MAX_TASK_RESULT_LEN: usize = 256;
const _: () = assert!(MAX_TASK_RESULT_LEN < MAX_HEARTBEAT_LEN);
/// Configurations whose version the agent remembers (see `Event::Config`).
pub const MAX_CONFIGS: usize = 4;
/// Task tokens the agent remembers to ignore resent tasks.
pub const RECENT_TASKS: usize = 8;

/// Who the agent is, as sent in Hello. Borrowed for the agent's lifetime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity<'a> {
    /// Stable, unique agent id.
    pub agent_id: &'a str,
    /// Host name.
    pub hostname: &'a str,
    /// Product name; tasks addressed to it (or to "") are for the agent.
    pub product: &'a str,
    /// Product version.
    pub version: &'a str,
    /// Packed private IPv4 addresses (4 bytes each).
    pub intranet_ipv4: &'a [u8],
    /// Packed private IPv6 addresses (16 bytes each).
    pub intranet_ipv6: &'a [u8],
    /// Packed public IPv4 addresses.
    pub extranet_ipv4: &'a [u8],
    /// Packed public IPv6 addresses.
    pub extranet_ipv6: &'a [u8],
    /// Credential for the server.
    pub auth_token: &'a [u8],
}

/// Every bound and interval of the session. `Default` gives the documented
/// defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// Ring settings (largest record, overflow policy).
    pub ring: RingConfig,
    /// Largest batch, in bytes of record entries (default 4096).
    pub batch_max_bytes: usize,
    /// Most records in one batch (default 256).
    pub batch_max_records: u32,
    /// Longest a pending record waits before a partial batch is sent
    /// (default 100 ms).
    pub flush_interval: Duration,
    /// Most unacked bytes in flight (default 16 KiB).
    pub window_bytes: usize,
    /// Interval between heartbeats (default 60 s, at least 1 s).
    pub heartbeat_interval: Duration,
    /// Time without any received frame before a Ping (default 15 s).
    pub idle_timeout: Duration,
    /// Time to wait for any frame after a Ping (default 5 s).
    pub pong_timeout: Duration,
    /// Longest time records may stay in flight without any ack making
    /// progress before the connection is deemed broken and records are
    /// resent on a new one (default 30 s). Catches a peer that answers
    /// pings but lost a batch or an ack; on slow links, allow for the time
    /// one window takes to transmit.
    pub ack_timeout: Duration,
    /// Time for the caller to report the transport up (default 10 s).
    pub connect_timeout: Duration,
    /// Time for the server to answer Hello (default 10 s).
    pub handshake_timeout: Duration,
    /// Time a connection must stay up before backoff failures reset
    /// (default 30 s).
    pub healthy_after: Duration,
    /// Reconnect timing and endpoint rotation.
    pub backoff: BackoffConfig,
    /// Seed of the jitter PRNG; give each device its own.
    pub rng_seed: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            ring: RingConfig::default(),
            batch_max_bytes: 4096,
            batch_max_records: 256,
            flush_interval: Duration::from_millis(100),
            window_bytes: 16 * 1024,
            heartbeat_interval: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            healthy_after: Duration::from_secs(30),
            backoff: BackoffConfig::default(),
            rng_seed: 0,
        }
    }
}

/// Why [`Agent::new`] refused a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ConfigError {
    /// `batch_max_bytes` cannot hold one record of `max_record` bytes.
    BatchTooSmall = 1,
    /// `window_bytes` is smaller than `batch_max_bytes`.
    WindowTooSmall = 2,
    /// The receive buffer is smaller than [`frame::MIN_MAX_FRAME`].
    RxBufferTooSmall = 3,
    /// `heartbeat_interval` is below 1 s.
    HeartbeatTooFrequent = 4,
    /// No endpoints, zero attempts per endpoint, or zero records per batch.
    ZeroLimit = 5,
    /// An interval that must be positive is zero.
    ZeroInterval = 6,
    /// `max_record` is below [`MAX_HEARTBEAT_LEN`]: heartbeats might not fit.
    MaxRecordTooSmall = 8,
    /// An identity address list's length is not a multiple of 4 (IPv4) or
    /// 16 (IPv6) bytes; the server would reject the Hello as malformed.
    BadAddressList = 7,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::BatchTooSmall => "batch_max_bytes cannot hold a record of max_record bytes",
            ConfigError::WindowTooSmall => "window_bytes is smaller than batch_max_bytes",
            ConfigError::RxBufferTooSmall => "receive buffer smaller than the minimum frame size",
            ConfigError::HeartbeatTooFrequent => "heartbeat_interval below 1 s",
            ConfigError::ZeroLimit => "an endpoint, attempt or batch-record limit is zero",
            ConfigError::ZeroInterval => "an interval that must be positive is zero",
            ConfigError::BadAddressList => "an address list is not a whole number of addresses",
            ConfigError::MaxRecordTooSmall => "max_record is smaller than the largest heartbeat",
        })
    }
}

/// Caller memory the agent works in.
pub struct AgentStorage<'a> {
    /// The send ring (records until acked). Its length is the ring capacity.
    pub ring: &'a mut [u8],
    /// The receive buffer. Its length is the largest frame accepted, and is
    /// announced to the server in Hello.
    pub rx: &'a mut [u8],
    /// The event queue (tasks, configs, connection events).
    pub events: &'a mut [u8],
}

/// Where the session is (see the state table in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StateKind {
    /// Waiting before the next attempt.
    Backoff = 0,
    /// Waiting for the caller to open the transport.
    Connecting = 1,
    /// Hello sent, waiting for Accept.
    Handshaking = 2,
    /// Records flow.
    Connected = 3,
    /// The give-up limit was reached.
    GaveUp = 4,
    /// Closed by the caller.
    Closed = 5,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Backoff { until: Instant, endpoint: u8 },
    Connecting { endpoint: u8, deadline: Instant },
    Handshaking { endpoint: u8, deadline: Instant },
    Connected { endpoint: u8, since: Instant, healthy: bool },
    GaveUp,
    Closed,
}

#[derive(Clone, Copy, Debug)]
struct PingState {
    nonce: u64,
    sent: Instant,
}

/// The session state machine. See the module docs for the call order.
pub struct Agent<'a> {
    decoder: FrameDecoder<'a>,
    core: Core<'a>,
}

/// Everything but the decoder, so a decoded frame (borrowing the decoder)
/// can be handled while the rest is mutated.
struct Core<'a> {
    cfg: AgentConfig,
    id: Identity<'a>,
    ring: Ring<'a>,
    events: EventQueue<'a>,
    rng: Rng,
    backoff: Backoff,
    state: State,
    now: Instant,
    clock_offset_ms: i64,
    max_frame_rx: u32,
    peer_max_frame: usize,
    tx_seq: u32,
    hello_pending: bool,
    close_pending: Option<CloseCode>,
    pong_pending: Option<u64>,
    ping: Option<PingState>,
    last_rx: Instant,
    /// When in-flight records last saw progress (first sent, or acked).
    ack_progress: Instant,
    pending_since: Option<Instant>,
    next_heartbeat: Option<Instant>,
    host: HostStats,
    plugins: Plugins<'a>,
    configs: [(u64, u64); MAX_CONFIGS],
    config_victim: u8,
    recent_tasks: [u64; RECENT_TASKS],
    recent_task_next: u8,
    delivered_pending: bool,
    reset_decoder: bool,
    last_retry: Option<Retry>,
    last_transport_error: Option<TransportError>,
    stats: AgentStats,
}

impl<'a> Agent<'a> {
    /// An agent over `storage`, not yet connected: the first
    /// `handle_timeout` (due at once, see `poll_timeout`) asks the caller to
    /// connect to endpoint 0.
    pub fn new(cfg: AgentConfig, identity: Identity<'a>, storage: AgentStorage<'a>) -> Result<Self, ConfigError> {
        validate(&cfg, storage.rx.len())?;
        let v4 = [identity.intranet_ipv4, identity.extranet_ipv4];
        let v6 = [identity.intranet_ipv6, identity.extranet_ipv6];
        if v4.iter().any(|l| l.len() % 4 != 0) || v6.iter().any(|l| l.len() % 16 != 0) {
            return Err(ConfigError::BadAddressList);
        }
        let max_frame_rx = u32::try_from(storage.rx.len()).unwrap_or(u32::MAX);
        Ok(Agent {
            decoder: FrameDecoder::new(storage.rx),
            core: Core {
                cfg,
                id: identity,
                ring: Ring::new(storage.ring, cfg.ring),
                events: EventQueue::new(storage.events),
                rng: Rng::new(cfg.rng_seed),
                backoff: Backoff::new(cfg.backoff),
                state: State::Backoff { until: Instant::ZERO, endpoint: 0 },
                now: Instant::ZERO,
                clock_offset_ms: 0,
                max_frame_rx,
                peer_max_frame: frame::MIN_MAX_FRAME,
                tx_seq: 0,
                hello_pending: false,
                close_pending: None,
                pong_pending: None,
                ping: None,
                last_rx: Instant::ZERO,
                ack_progress: Instant::ZERO,
                pending_since: None,
                next_heartbeat: None,
                host: HostStats::default(),
                plugins: Plugins::default(),
                configs: [(0, 0); MAX_CONFIGS],
                config_victim: 0,
                recent_tasks: [0; RECENT_TASKS],
                recent_task_next: 0,
                delivered_pending: false,
                reset_decoder: false,
                last_retry: None,
                last_transport_error: None,
                stats: AgentStats::default(),
            },
        })
    }

    // ---- getters -------------------------------------------------------

    /// The current state.
    pub fn state(&self) -> StateKind {
        match self.core.state {
            State::Backoff { .. } => StateKind::Backoff,
            State::Connecting { .. } => StateKind::Connecting,
            State::Handshaking { .. } => StateKind::Handshaking,
            State::Connected { .. } => StateKind::Connected,
            State::GaveUp => StateKind::GaveUp,
            State::Closed => StateKind::Closed,
        }
    }

    /// The endpoint being tried or used (the next one while in Backoff).
    pub fn endpoint(&self) -> Option<u8> {
        match self.core.state {
            State::Backoff { endpoint, .. }
            | State::Connecting { endpoint, .. }
            | State::Handshaking { endpoint, .. }
            | State::Connected { endpoint, .. } => Some(endpoint),
            State::GaveUp | State::Closed => None,
        }
    }

    /// The library's counters (also sent in every heartbeat).
    pub fn stats(&self) -> AgentStats {
        self.core.stats_with(&self.decoder)
    }

    /// The send ring (read-only).
    pub fn ring(&self) -> &Ring<'a> {
        &self.core.ring
    }

    /// What the caller last reported in `handle_disconnected`.
    pub fn last_transport_error(&self) -> Option<TransportError> {
        self.core.last_transport_error
    }

    /// The last reconnect decision (endpoint, delay and its jitter window).
    pub fn last_retry(&self) -> Option<Retry> {
        self.core.last_retry
    }

    /// The configuration given at init.
    pub fn config(&self) -> &AgentConfig {
        &self.core.cfg
    }

    /// True when every pushed record is acked or dropped.
    pub fn is_drained(&self) -> bool {
        self.core.ring.is_empty()
    }

    // ---- commands ------------------------------------------------------

    /// Queues a record for delivery; works in every state. See
    /// [`Ring::push`] for what happens when the ring is full.
    pub fn push(&mut self, now: Instant, rec: &Record<'_>) -> Result<(), PushError> {
        let now = self.core.advance(now);
        self.core.push(now, rec)
    }

    /// Answers a task: pushes a `TASK_RESULT` record carrying
    /// `(token, status, message)`. A message too long for
    /// [`MAX_TASK_RESULT_LEN`] is truncated at a character boundary.
    pub fn task_result(&mut self, now: Instant, token: &str, status: u32, message: &str) -> Result<(), PushError> {
        let now = self.core.advance(now);
        self.core.push_task_result(now, token, status, message)
    }

    /// Sets the host stats carried by the following heartbeats.
    pub fn set_host_stats(&mut self, stats: HostStats) {
        self.core.host = stats;
    }

    /// Sets the offset added to the monotonic clock to timestamp the
    /// agent's own records (heartbeats, task results): pass
    /// `wall_clock_ms - now_ms` to get Unix-time timestamps. Default 0.
    pub fn set_clock_offset(&mut self, offset_ms: i64) {
        self.core.clock_offset_ms = offset_ms;
    }

    /// Registers a plugin (tasks for `name` are routed to it; it gets a
    /// heartbeat record at every tick).
    pub fn register_plugin(&mut self, name: &'a str, version: &'a str) -> Result<PluginId, PluginError> {
        self.core.plugins.register(name, version)
    }

    /// Updates a plugin's pid and status for its next heartbeats.
    pub fn set_plugin_status(&mut self, id: PluginId, pid: u32, status: PluginStatus) -> Result<(), PluginError> {
        self.core.plugins.set_status(id, pid, status)
    }

    /// Removes a plugin.
    pub fn unregister_plugin(&mut self, id: PluginId) -> Result<(), PluginError> {
        self.core.plugins.unregister(id)
    }

    /// Closes for good: a Close frame is queued (if a transport is up), the
    /// caller gets `Disconnect{Shutdown}`, and no reconnect follows until
    /// [`Agent::reconnect_now`]. Unacked records stay in the ring: for a
    /// clean shutdown, keep driving the agent until [`Agent::is_drained`]
    /// (everything acked or dropped), then close.
    pub fn close(&mut self, now: Instant) {
        self.core.advance(now);
        let c = &mut self.core;
        if matches!(c.state, State::Closed) {
            return;
        }
        if matches!(c.state, State::Handshaking { .. } | State::Connected { .. }) {
            c.close_pending = Some(CloseCode::Shutdown);
        }
        if matches!(c.state, State::Connecting { .. } | State::Handshaking { .. } | State::Connected { .. }) {
            c.emit(Event::Disconnect { reason: DisconnectReason::Shutdown });
        }
        c.drop_connection();
        self.decoder.reset();
        c.reset_decoder = false;
        c.state = State::Closed;
    }

    /// Leaves GaveUp, Closed or Backoff: the next attempt is due now, with
    /// the failure count reset.
    pub fn reconnect_now(&mut self, now: Instant) {
        let now = self.core.advance(now);
        let c = &mut self.core;
        let endpoint = match c.state {
            State::Backoff { endpoint, .. } => endpoint,
            State::GaveUp | State::Closed => c.backoff.endpoint(),
            _ => return,
        };
        c.backoff.reset();
        c.state = State::Backoff { until: now, endpoint };
    }

    // ---- inputs --------------------------------------------------------

    /// The transport asked for by the last `Connect` event is up. Ignored
    /// in any state but Connecting (for example after `connect_timeout`
    /// fired: the caller has been told to drop that transport).
    pub fn handle_connected(&mut self, now: Instant) {
        let now = self.core.advance(now);
        let c = &mut self.core;
        if let State::Connecting { endpoint, .. } = c.state {
            c.state = State::Handshaking { endpoint, deadline: now + c.cfg.handshake_timeout };
            c.hello_pending = true;
            c.tx_seq = 0;
            c.last_rx = now;
            self.decoder.reset();
        }
    }

    /// The transport failed, could not be opened, or was closed by the peer
    /// (`error` says which). Ignored unless a connection is being made or is
    /// up. Every cause is handled the same way (the failure path in the
    /// module docs); the cause is kept for diagnostics.
    pub fn handle_disconnected(&mut self, now: Instant, error: TransportError) {
        let now = self.core.advance(now);
        self.core.last_transport_error = Some(error);
        if matches!(self.core.state, State::Connecting { .. } | State::Handshaking { .. } | State::Connected { .. }) {
            self.core.fail(now, DisconnectReason::Transport, None, Duration::ZERO);
        }
        self.sync_decoder();
    }

    /// Bytes arrived on the transport. Any chunking works. Bytes arriving
    /// while no connection is up are ignored (counted as skipped).
    pub fn handle_received(&mut self, now: Instant, bytes: &[u8]) {
        let now = self.core.advance(now);
        self.core.stats.bytes_received += bytes.len() as u64;
        if !matches!(self.core.state, State::Handshaking { .. } | State::Connected { .. }) {
            self.core.stats.decoder_skipped_bytes += bytes.len() as u64;
            return;
        }
        let mut input = bytes;
        loop {
            match self.decoder.feed(input) {
                Feed::Consumed => break,
                Feed::Frame { frame, remaining } => {
                    input = remaining;
                    self.core.on_frame(now, &frame);
                    if !matches!(self.core.state, State::Handshaking { .. } | State::Connected { .. }) {
                        self.core.stats.decoder_skipped_bytes += input.len() as u64;
                        break;
                    }
                }
            }
        }
        self.sync_decoder();
    }

    /// Time has passed: fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.core.advance(now);
        self.core.on_timeout(now, &self.decoder);
        self.sync_decoder();
    }

    fn sync_decoder(&mut self) {
        if self.core.reset_decoder {
            self.core.reset_decoder = false;
            self.decoder.reset();
        }
    }

    // ---- outputs -------------------------------------------------------

    /// Writes the next frame to send into `out` and returns its length; 0
    /// when there is nothing to send now. Frames are never larger than
    /// `out.len()` nor the server's announced maximum; `out` should hold at
    /// least `batch_max_bytes + 64` bytes (and the Hello).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> usize {
        let now = self.core.advance(now);
        self.core.transmit(now, out)
    }

    /// The next event, if any. It borrows the agent until the next call.
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        let c = &mut self.core;
        if c.events.is_empty() && c.delivered_pending {
            c.delivered_pending = false;
            let counters = c.ring.counters();
            return Some(Event::Delivered { acked_total: counters.acked, first_unacked_seq: c.ring.first_unacked_seq() });
        }
        c.events.pop()
    }

    /// When `handle_timeout` must be called next; `None` when no timer runs
    /// (Closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.next_timeout()
    }
}

fn validate(cfg: &AgentConfig, rx_len: usize) -> Result<(), ConfigError> {
    if cfg.backoff.endpoints == 0 || cfg.backoff.attempts_per_endpoint == 0 || cfg.batch_max_records == 0 {
        return Err(ConfigError::ZeroLimit);
    }
    if cfg.heartbeat_interval < Duration::from_secs(1) {
        return Err(ConfigError::HeartbeatTooFrequent);
    }
    let intervals = [cfg.idle_timeout, cfg.pong_timeout, cfg.ack_timeout, cfg.connect_timeout, cfg.handshake_timeout];
    if intervals.contains(&Duration::ZERO) {
        return Err(ConfigError::ZeroInterval);
    }
    if cfg.ring.max_record < MAX_HEARTBEAT_LEN {
        return Err(ConfigError::MaxRecordTooSmall);
    }
    if cfg.batch_max_bytes < max_entry(cfg) {
        return Err(ConfigError::BatchTooSmall);
    }
    if cfg.window_bytes < cfg.batch_max_bytes {
        return Err(ConfigError::WindowTooSmall);
    }
    if rx_len < frame::MIN_MAX_FRAME {
        return Err(ConfigError::RxBufferTooSmall);
    }
    Ok(())
}

/// The smallest frame limit a server may announce: one Batch holding a
/// record of `max_record` bytes (sent in Hello as `min_frame`).
pub fn min_peer_frame(cfg: &AgentConfig) -> u32 {
    u32::try_from(OVERHEAD + BATCH_HEADER_MAX + max_entry(cfg)).unwrap_or(u32::MAX)
}

/// Largest entry a record of `max_record` bytes can take.
fn max_entry(cfg: &AgentConfig) -> usize {
    cfg.ring.max_record.saturating_add(MAX_ENTRY_HEADER)
}

/// FNV-1a, for remembering config names and versions in 16 bytes each.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl<'a> Core<'a> {
    fn advance(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        if self.next_heartbeat.is_none() {
            // The first heartbeat goes out at the first call.
            self.next_heartbeat = Some(self.now);
        }
        self.now
    }

    fn wall(&self, now: Instant) -> u64 {
        now.as_millis().wrapping_add(self.clock_offset_ms as u64)
    }

    fn emit(&mut self, ev: Event<'_>) -> bool {
        let ok = self.events.push(&ev);
        if !ok {
            self.stats.events_dropped += 1;
        }
        ok
    }

    /// Emits a task, shutdown or config event, leaving room for the
    /// connection events the same input may still raise (a full queue must
    /// not swallow a `Disconnect`).
    fn emit_droppable(&mut self, ev: Event<'_>) -> bool {
        let ok = self.events.push_keeping(&ev, crate::events::LIFECYCLE_RESERVE);
        if !ok {
            self.stats.events_dropped += 1;
        }
        ok
    }

    fn stats_with(&self, decoder: &FrameDecoder<'_>) -> AgentStats {
        let r = self.ring.counters();
        let d = decoder.stats();
        AgentStats {
            pushed: r.pushed,
            acked: r.acked,
            dropped_full: r.dropped_full,
            dropped_too_large: r.dropped_too_large + self.stats.dropped_too_large,
            dropped_evicted: r.dropped_evicted,
            decoder_skipped_bytes: self.stats.decoder_skipped_bytes + d.skipped_bytes,
            decoder_bad_crc: d.bad_crc,
            ring_used_bytes: u32::try_from(self.ring.used_bytes()).unwrap_or(u32::MAX),
            ring_capacity: u32::try_from(self.ring.capacity()).unwrap_or(u32::MAX),
            ..self.stats
        }
    }

    fn push(&mut self, now: Instant, rec: &Record<'_>) -> Result<(), PushError> {
        let was_idle = self.ring.pending_records() == 0;
        self.ring.push(rec)?;
        if was_idle || self.pending_since.is_none() {
            self.pending_since = Some(now);
        }
        Ok(())
    }

    fn push_task_result(&mut self, now: Instant, token: &str, status: u32, message: &str) -> Result<(), PushError> {
        // `max_record` >= MAX_HEARTBEAT_LEN > MAX_TASK_RESULT_LEN (checked
        // at init), so a result that fits `buf` fits the ring.
        let mut buf = [0u8; MAX_TASK_RESULT_LEN];
        let mut msg = message;
        loop {
            let r = TaskResult { token, status, message: msg };
            if let Some(n) = write_body(&r, &mut buf) {
                return self.push(now, &Record::new(data_type::TASK_RESULT, self.wall(now), &buf[..n]));
            }
            if msg.is_empty() {
                // The token alone is too long: refused and counted like any
                // oversized record.
                self.stats.dropped_too_large += 1;
                return Err(PushError::TooLarge);
            }
            let mut cut = msg.len().min(MAX_TASK_RESULT_LEN).saturating_sub(1);
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg = &msg[..cut];
        }
    }

    // ---- timers --------------------------------------------------------

    fn on_timeout(&mut self, now: Instant, decoder: &FrameDecoder<'_>) {
        match self.state {
            State::Backoff { until, endpoint } if now >= until => {
                self.state = State::Connecting { endpoint, deadline: now + self.cfg.connect_timeout };
                self.close_pending = None;
                self.emit(Event::Connect { endpoint });
            }
            State::Connecting { deadline, .. } if now >= deadline => {
                self.fail(now, DisconnectReason::ConnectTimeout, None, Duration::ZERO);
            }
            State::Handshaking { deadline, .. } if now >= deadline => {
                self.fail(now, DisconnectReason::HandshakeTimeout, Some(CloseCode::Timeout), Duration::ZERO);
            }
            State::Connected { endpoint, since, healthy } => {
                if !healthy && now >= since + self.cfg.healthy_after {
                    self.backoff.reset();
                    self.state = State::Connected { endpoint, since, healthy: true };
                }
                if self.ring.inflight_records() > 0 && now >= self.ack_progress + self.cfg.ack_timeout {
                    self.fail(now, DisconnectReason::AckTimeout, Some(CloseCode::Timeout), Duration::ZERO);
                    return self.heartbeat_tick(now, decoder);
                }
                if let Some(p) = self.ping {
                    if now >= p.sent + self.cfg.pong_timeout {
                        if self.last_rx > p.sent {
                            // The peer is alive; the pong is just late or lost.
                            self.ping = None;
                        } else {
                            self.fail(now, DisconnectReason::PongTimeout, Some(CloseCode::Timeout), Duration::ZERO);
                        }
                    }
                }
            }
            _ => {}
        }
        self.heartbeat_tick(now, decoder);
    }

    fn heartbeat_tick(&mut self, now: Instant, decoder: &FrameDecoder<'_>) {
        if let Some(due) = self.next_heartbeat {
            if now >= due && !matches!(self.state, State::Closed) {
                self.heartbeat(now, self.stats_with(decoder));
                let next = due + self.cfg.heartbeat_interval;
                self.next_heartbeat = Some(if next > now { next } else { now + self.cfg.heartbeat_interval });
            }
        }
    }

    fn heartbeat(&mut self, now: Instant, lib: AgentStats) {
        let mut buf = [0u8; MAX_HEARTBEAT_LEN];
        let ts = self.wall(now);
        if let Some(bytes) = (AgentHeartbeat { host: self.host, lib }).encode(&mut buf) {
            let n = bytes.len();
            let _ = self.push(now, &Record::new(data_type::AGENT_HEARTBEAT, ts, &buf[..n]));
        }
        for i in 0..crate::plugin::MAX_PLUGINS {
            let Some(p) = self.plugins.iter().nth(i).copied() else { break };
            let phb = PluginHeartbeat { name: p.name, version: p.version, pid: p.pid, status: p.status };
            if let Some(n) = write_body(&phb, &mut buf) {
                let _ = self.push(now, &Record::new(data_type::PLUGIN_HEARTBEAT, ts, &buf[..n]));
            }
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        let state_timer = match self.state {
            State::Backoff { until, .. } => Some(until),
            State::Connecting { deadline, .. } | State::Handshaking { deadline, .. } => Some(deadline),
            State::Connected { since, healthy, .. } => {
                let mut t = match self.ping {
                    Some(p) => p.sent + self.cfg.pong_timeout,
                    None => self.last_rx + self.cfg.idle_timeout,
                };
                if !healthy {
                    t = t.min(since + self.cfg.healthy_after);
                }
                if self.ring.inflight_records() > 0 {
                    t = t.min(self.ack_progress + self.cfg.ack_timeout);
                }
                if let Some(flush) = self.flush_deadline() {
                    t = t.min(flush);
                }
                Some(t)
            }
            State::GaveUp => None,
            State::Closed => return None,
        };
        match (state_timer, self.next_heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When pending records must be flushed, if the window lets a batch go.
    fn flush_deadline(&self) -> Option<Instant> {
        let since = self.pending_since?;
        if self.ring.pending_records() == 0 || !self.window_open() {
            return None;
        }
        if self.ring.has_resends() {
            // Records awaiting resend go at once.
            return Some(self.now);
        }
        Some(since + self.cfg.flush_interval)
    }

    /// True when the next pending record fits the unacked window (and a
    /// batch slot is free). Checked exactly, not just "window not full", so
    /// a flush deadline is never reported while nothing can be sent: that
    /// would make the caller's loop spin until the next ack.
    fn window_open(&self) -> bool {
        let Some(next) = self.ring.next_pending_len() else { return false };
        self.ring.inflight_batches() < crate::ring::MAX_INFLIGHT_BATCHES
            && self.ring.inflight_bytes() + next <= self.cfg.window_bytes
    }

    // ---- failures --------------------------------------------------------

    /// Forgets the connection: rewinds the ring, clears per-connection state.
    fn drop_connection(&mut self) {
        self.ring.rewind();
        self.ping = None;
        self.pong_pending = None;
        self.hello_pending = false;
        self.reset_decoder = true;
        if self.ring.pending_records() > 0 {
            self.pending_since = Some(self.now);
        }
    }

    /// The one failure path (see the module docs).
    fn fail(&mut self, now: Instant, reason: DisconnectReason, close: Option<CloseCode>, min_delay: Duration) {
        self.close_pending = close;
        self.stats.connect_failures += 1;
        self.drop_connection();
        self.emit(Event::Disconnect { reason });
        match self.backoff.on_failure(&mut self.rng) {
            Some(r) => {
                self.last_retry = Some(r);
                let delay = if r.delay > min_delay { r.delay } else { min_delay };
                self.state = State::Backoff { until: now + delay, endpoint: r.endpoint };
            }
            None => {
                self.last_retry = None;
                self.state = State::GaveUp;
                self.emit(Event::GaveUp);
            }
        }
    }

    // ---- received frames -------------------------------------------------

    fn on_frame(&mut self, now: Instant, frame: &Frame<'_>) {
        self.stats.frames_received += 1;
        self.last_rx = now;
        if frame.version != frame::VERSION {
            self.fail(now, DisconnectReason::Incompatible, Some(CloseCode::Incompatible), Duration::ZERO);
            return;
        }
        let Some(kind) = Kind::from_u8(frame.kind) else {
            self.stats.unknown_kinds += 1;
            return;
        };
        if self.on_message(now, kind, frame.body).is_err() {
            self.stats.malformed += 1;
        }
    }

    /// Handles one downlink message. Only the kinds an agent can receive
    /// are decoded here, by the hand-written readers of [`crate::body`]; a
    /// kind that is
    /// unexpected in the current state is an error, counted as malformed.
    fn on_message(&mut self, now: Instant, kind: Kind, body: &[u8]) -> Result<(), DecodeError> {
        let handshaking = matches!(self.state, State::Handshaking { .. });
        let connected = matches!(self.state, State::Connected { .. });
        match kind {
            Kind::Ping => self.pong_pending = Some(read_body::<Ping>(body)?.nonce),
            Kind::Pong => {
                let nonce = read_body::<Pong>(body)?.nonce;
                if let Some(ping) = self.ping.filter(|ping| ping.nonce == nonce) {
                    let rtt = now.saturating_since(ping.sent).as_millis();
                    self.stats.last_rtt_ms = Some(u32::try_from(rtt).unwrap_or(u32::MAX));
                    self.ping = None;
                }
            }
            Kind::Close => {
                // Even an unreadable Close means the peer is going away.
                let _ = read_body::<Close<'_>>(body);
                self.fail(now, DisconnectReason::PeerClosed, None, Duration::ZERO);
            }
            // An Accept before our Hello went out answers nothing: ignored
            // (counted), the handshake waits for a real one.
            Kind::Accept if handshaking && !self.hello_pending => {
                if let State::Handshaking { endpoint, .. } = self.state {
                    self.on_accept(now, endpoint, read_body(body)?);
                }
            }
            Kind::Reject if handshaking => {
                let r = read_body::<message::Reject<'_>>(body)?;
                self.fail(now, DisconnectReason::Rejected, None, Duration::from_millis(u64::from(r.retry_after_ms)));
            }
            Kind::Ack if connected => {
                let out = self.ring.ack(read_body::<message::Ack>(body)?.up_to);
                if out.beyond_sent {
                    self.stats.protocol_errors += 1;
                }
                if out.acked > 0 {
                    self.delivered_pending = true;
                    self.ack_progress = now;
                }
            }
            Kind::Task if connected => self.on_task(now, read_body(body)?),
            Kind::Config if connected => self.on_config(read_body(body)?),
            _ => return Err(DecodeError::Malformed),
        }
        Ok(())
    }

    fn on_accept(&mut self, now: Instant, endpoint: u8, a: message::Accept) {
        // The server must take a batch holding the largest record.
        if a.max_frame < min_peer_frame(&self.cfg) {
            self.fail(now, DisconnectReason::Incompatible, Some(CloseCode::Incompatible), Duration::ZERO);
            return;
        }
        self.peer_max_frame = a.max_frame as usize;
        if a.next_seq > crate::ring::MAX_RESUME_SEQ {
            self.stats.protocol_errors += 1;
        }
        self.ring.resume(a.next_seq);
        self.stats.connections += 1;
        self.state = State::Connected { endpoint, since: now, healthy: false };
        if self.ring.pending_records() > 0 {
            self.pending_since = Some(now);
        }
        self.emit(Event::Connected { endpoint });
    }

    fn on_task(&mut self, now: Instant, t: message::Task<'_>) {
        // A server that saw no result (the connection dropped) resends the
        // task; the result is already in the ring, so the task is not run
        // twice. Tokens are remembered as 64-bit hashes, the last 8.
        if !t.token.is_empty() {
            let h = fnv1a(t.token).max(1);
            if self.recent_tasks.contains(&h) {
                self.stats.tasks_duplicate += 1;
                return;
            }
            let i = usize::from(self.recent_task_next);
            self.recent_tasks[i] = h;
            self.recent_task_next = ((i + 1) % RECENT_TASKS) as u8;
        }
        let for_agent = t.object_name.is_empty() || t.object_name == self.id.product;
        let target = if for_agent {
            TaskTarget::Agent
        } else if let Some(id) = self.plugins.find(t.object_name) {
            TaskTarget::Plugin(id)
        } else {
            self.stats.tasks_unroutable += 1;
            let _ = self.push_task_result(now, t.token, task_status::UNKNOWN_TARGET, "no such plugin");
            return;
        };
        let queued = if for_agent && t.data_type == data_type::SHUTDOWN_TASK {
            self.emit_droppable(Event::Shutdown { token: t.token })
        } else {
            self.emit_droppable(Event::Task {
                target,
                object_name: t.object_name,
                data_type: t.data_type,
                payload: t.payload,
                token: t.token,
            })
        };
        if !queued {
            let _ = self.push_task_result(now, t.token, task_status::DROPPED, "agent event queue full");
        }
    }

    fn on_config(&mut self, c: message::Config<'_>) {
        let (name, version) = (fnv1a(c.name), fnv1a(c.version));
        let slot = self.configs.iter().position(|(n, _)| *n == name);
        if let Some(i) = slot {
            if self.configs[i].1 == version {
                return;
            }
        }
        if self.emit_droppable(Event::Config { name: c.name, version: c.version, payload: c.payload }) {
            let i = slot.unwrap_or_else(|| {
                let v = usize::from(self.config_victim);
                self.config_victim = ((v + 1) % MAX_CONFIGS) as u8;
                v
            });
            self.configs[i] = (name, version);
        }
    }

    // ---- transmit ----------------------------------------------------------

    fn transmit(&mut self, now: Instant, out: &mut [u8]) -> usize {
        let seq = self.tx_seq;
        let limit = out.len().min(match self.state {
            State::Connected { .. } => self.peer_max_frame,
            _ => usize::MAX,
        });
        let out = &mut out[..limit];
        // A pending control frame stays pending until it was written, so a
        // too small `out` delays it rather than losing it.
        let written = if let Some(code) = self.close_pending {
            let r = write_frame(Kind::Close, seq, &Close { code: code as u16, reason: "" }, out);
            if r.is_ok() {
                self.close_pending = None;
            }
            r
        } else if !matches!(self.state, State::Handshaking { .. } | State::Connected { .. }) {
            return 0;
        } else if self.hello_pending {
            let id = self.id;
            let hello = Hello {
                agent_id: id.agent_id,
                hostname: id.hostname,
                product: id.product,
                version: id.version,
                intranet_ipv4: id.intranet_ipv4,
                intranet_ipv6: id.intranet_ipv6,
                extranet_ipv4: id.extranet_ipv4,
                extranet_ipv6: id.extranet_ipv6,
                auth_token: id.auth_token,
                first_unacked_seq: self.ring.first_unacked_seq(),
                next_seq: self.ring.next_seq(),
                max_frame: self.max_frame_rx,
                min_frame: min_peer_frame(&self.cfg),
            };
            let r = write_frame(Kind::Hello, seq, &hello, out);
            self.hello_pending = r.is_err();
            r
        } else if let Some(nonce) = self.pong_pending {
            let r = write_frame(Kind::Pong, seq, &Pong { nonce }, out);
            if r.is_ok() {
                self.pong_pending = None;
            }
            r
        } else if !matches!(self.state, State::Connected { .. }) {
            return 0;
        } else if self.ping.is_none() && now >= self.last_rx + self.cfg.idle_timeout {
            let nonce = self.rng.next_u64();
            let r = write_frame(Kind::Ping, seq, &Ping { nonce }, out);
            if r.is_ok() {
                self.ping = Some(PingState { nonce, sent: now });
            }
            r
        } else {
            return self.transmit_batch(now, out);
        };
        match written {
            Ok(n) => self.sent(n),
            Err(_) => 0,
        }
    }

    fn transmit_batch(&mut self, now: Instant, out: &mut [u8]) -> usize {
        let pending = self.ring.pending_records();
        if pending == 0 || !self.window_open() {
            return 0;
        }
        let room = out.len().saturating_sub(OVERHEAD + BATCH_HEADER_MAX);
        let window = self.cfg.window_bytes - self.ring.inflight_bytes();
        let max_bytes = self.cfg.batch_max_bytes.min(room).min(window.max(1));
        // Decide before planning (planning walks the batch's records): a
        // batch is full when the records pending would not fit one batch
        // with room for one more record of the largest size.
        let full = pending >= u64::from(self.cfg.batch_max_records)
            || self.ring.pending_bytes() + max_entry(&self.cfg) > max_bytes;
        let resend = self.ring.has_resends();
        let due = self.pending_since.is_some_and(|s| now >= s + self.cfg.flush_interval);
        if !(full || resend || due) {
            return 0;
        }
        let Some(plan) = self.ring.plan_batch(max_bytes, self.cfg.batch_max_records) else { return 0 };
        let seq = self.tx_seq;
        let ring = &self.ring;
        let written = frame::encode_with(Kind::Batch, 0, seq, out, |body| {
            let mut n = 0;
            for v in [plan.first_seq, plan.base_ts, u64::from(plan.count), plan.len as u64] {
                n += varint::encode_u64(v, body.get_mut(n..)?)?;
            }
            let dst = body.get_mut(n..n + plan.len)?;
            ring.copy_batch(&plan, dst).then_some(n + plan.len)
        });
        let Ok(n) = written else { return 0 };
        if self.ring.inflight_records() == 0 {
            self.ack_progress = now;
        }
        self.ring.commit_batch(&plan);
        if self.ring.pending_records() == 0 {
            self.pending_since = None;
        }
        self.sent(n)
    }

    fn sent(&mut self, n: usize) -> usize {
        self.tx_seq = self.tx_seq.wrapping_add(1);
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += n as u64;
        n
    }
}

impl fmt::Debug for Agent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent").field("state", &self.core.state).field("ring", &self.core.ring).finish()
    }
}

#[cfg(test)]
mod tests;
