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
//!   [`Agent::handle_timeout`], [`Agent::handle_blocked`] (the transport's
//!   write side full or free again); and **commands** at any time:
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
//! # A transport that will not take more (backpressure)
//!
//! When a write falls short (`EAGAIN`), keep the rest of that frame, call
//! [`Agent::handle_blocked`]`(true)` and stop calling `poll_transmit`; when
//! the rest is written, call `handle_blocked(false)` and go on. Meanwhile
//! `poll_timeout` names only deadlines `handle_timeout` serves (a flush is
//! not a timer while nothing can be written), so a loop waiting for
//! "writable, readable or the timeout" never spins, and needs a buffer of
//! one frame ([`Agent::transmit_len`]), never more. A blocked link on
//! which nothing arrives still dies by the liveness rules.
//!
//! # Commands from another thread
//!
//! A command (a push most of all) can move the deadline the loop sleeps on
//! earlier: from the idle Ping or a heartbeat far away to the flush
//! `flush_interval` after a push into an empty ring. A loop on another
//! thread sleeping until the old `poll_timeout` would send the record late,
//! not lose it. Compare `poll_timeout` after the command with the deadline
//! the loop sleeps on (under the same lock) and wake the loop when it is
//! earlier; the C API keeps that deadline for you (`ea_agent_wake_needed`).
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
//! | Connected    | up for each `healthy_after`                 | Connected    | backoff weight halved |
//! | any but Closed | `close()`                                 | Closed       | Close frame queued, `Disconnect` |
//! | Backoff      | give-up limit reached                       | GaveUp       | event `GaveUp` |
//! | GaveUp, Closed, Backoff | `reconnect_now()`                | Backoff (due now) | |
//!
//! Every failure goes through one path: the ring rewinds (at-least-once),
//! the decoder forgets partial frames, the backoff decides the next endpoint
//! and delay (see [`crate::backoff`]), and a `Disconnect` event tells the
//! caller to close the transport.
//!
//! A transport with no connect or disconnect signal (a UART to a serial
//! gateway) is declared with [`Agent::set_link`]`(`[`Link::Carrierless`]`)`:
//! the caller answers `Connect` with `handle_connected` at once, and the
//! agent writes no parting Close on failures (see [`Link`]).
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
//! transmit buffer given to each `poll_transmit`. Its own state,
//! `size_of::<Agent>()`, is checked against a 1.5 KiB budget by a unit test
//! (host) and a compile-time assertion in `size-probe` (target); the
//! measured sizes and the flash it links to are in NOTES.md
//! (`scripts/size-report.sh`).


use crate::backoff::{Backoff, Retry};
use crate::wire::decoder::{Feed, FrameDecoder};
use crate::events::{DisconnectReason, Event, EventQueue, TaskTarget, TransportError};
use crate::wire::frame::{self, Frame, Kind, OVERHEAD};
use crate::stats::{AgentStats, HeartbeatRecords, HostStats, MAX_HEARTBEAT_LEN};
use crate::wire::codec::{read_body, write_body};
use crate::wire::message::{self, task_status, CloseCode, DecodeError, TaskResult};
use crate::plugin::{PluginError, PluginHeartbeat, PluginId, PluginStatus, Plugins};
use crate::record::data_type;
use crate::ring::{PushError, Ring};
use crate::rng::Rng;
use crate::time::{AgentClock, Duration, Instant};
use crate::text::Text;
use crate::Record;
use core::fmt;

mod batch;
mod config;
mod heartbeat;
mod identity;
mod link;
mod recv;
mod ring_policy;
mod send;
mod timer;
mod timers;

pub use config::{
    hello_frame_max_len, min_peer_frame, min_transmit_len, validate, AgentConfig, ConfigError, StorageSizes,
    BATCH_HEADER_MAX, MAX_HELLO_FRAME,
};
use config::max_entry;
pub use ring_policy::{is_heartbeat_record, ring_entry_kind};
pub use identity::Identity;
pub use link::Link;
pub use timer::Timer;


/// Largest TaskResult record payload; longer messages are truncated.
pub const MAX_TASK_RESULT_LEN: usize = 256;
const _: () = assert!(MAX_TASK_RESULT_LEN < MAX_HEARTBEAT_LEN);
/// Configurations whose version the agent remembers (see `Event::Config`).
pub const MAX_CONFIGS: usize = 4;
/// Task tokens the agent remembers to ignore resent tasks.
pub const RECENT_TASKS: usize = 8;
/// Most halvings of batch and window after consecutive ack timeouts.
const MAX_SHRINK: u8 = 8;

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

impl AgentStorage<'_> {
    /// The buffers' lengths, as [`validate`] checks them.
    pub fn sizes(&self) -> StorageSizes {
        StorageSizes { ring: self.ring.len(), rx: self.rx.len(), events: self.events.len() }
    }
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
    /// `decay_at`: the end of the current healthy period (the first ends
    /// `healthy_after` after the Accept); `healthy` once the first ended.
    Connected { endpoint: u8, decay_at: Instant, healthy: bool },
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
    clock: AgentClock,
    clock_offset_ms: i64,
    max_frame_rx: u32,
    /// [`min_transmit_len`] of the configuration and identity given at init.
    tx_min: u32,
    /// The collector's Accept.max_frame (a `u32` on the wire).
    peer_max_frame: u32,
    tx_seq: u32,
    hello_pending: bool,
    close_pending: Option<CloseCode>,
    link: Link,
    pong_pending: Option<u64>,
    ping: Option<PingState>,
    last_rx: Instant,
    /// When in-flight records last saw progress (first sent, or acked).
    ack_progress: Instant,
    pending_since: Option<Instant>,
    /// When the next heartbeat is due, once `heartbeat_armed` (set at the
    /// first input; an `Option` would cost 8 B of the state budget).
    next_heartbeat: Instant,
    heartbeat_armed: bool,
    host: HostStats,
    plugins: Plugins<'a>,
    configs: [(u64, u64); MAX_CONFIGS],
    config_victim: u8,
    recent_tasks: [u64; RECENT_TASKS],
    /// Bit `i`: the task in `recent_tasks[i]` was answered (its result
    /// pushed, or refused).
    recent_answered: u8,
    recent_task_next: u8,
    delivered_pending: bool,
    /// `flush_now` was called: pending records go without waiting.
    flush_requested: bool,
    /// Halvings of batch and window after ack timeouts (see `batch_limit`).
    shrink: u8,
    reset_decoder: bool,
    /// The caller said the transport will not take more bytes now (see
    /// [`Agent::handle_blocked`]); cleared by it, and with the connection.
    blocked: bool,
    last_retry: Option<Retry>,
    last_transport_error: Option<TransportError>,
    stats: Counters,
}

/// The counters the session keeps itself (the ring, the decoder and the
/// clock keep theirs); [`Core::stats_with`] gathers them all.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    bytes_sent: u64,
    bytes_received: u64,
    frames_sent: u64,
    frames_received: u64,
    connections: u64,
    connect_failures: u64,
    last_rtt_ms: Option<u32>,
    unknown_kinds: u64,
    malformed: u64,
    events_dropped: u64,
    tasks_unroutable: u64,
    protocol_errors: u64,
    tasks_duplicate: u64,
    peer_incompatible: u64,
    ack_timeouts: u64,
}

impl<'a> Agent<'a> {
    /// An agent over `storage`, not yet connected: the first
    /// `handle_timeout` (due at once, see `poll_timeout`) asks the caller to
    /// connect to endpoint 0.
    pub fn new(cfg: AgentConfig, identity: Identity<'a>, storage: AgentStorage<'a>) -> Result<Self, ConfigError> {
        validate(&cfg, &identity, storage.sizes())?;
        let mut agent = Self::build(&cfg, &identity, storage);
        agent.core.id = identity;
        agent.seed();
        Ok(agent)
    }

    /// As [`Agent::new`], but the agent is built in `slot` and borrowed
    /// from there: for callers that keep it in static or caller-provided
    /// memory (the C API's `ea_agent_init`) and cannot afford a second
    /// copy of it on the stack. On an error `slot` is left as it was.
    pub fn new_in<'s>(
        slot: &'s mut core::mem::MaybeUninit<Agent<'a>>,
        cfg: AgentConfig,
        identity: Identity<'a>,
        storage: AgentStorage<'a>,
    ) -> Result<&'s mut Agent<'a>, ConfigError> {
        Self::new_in_from(slot, &cfg, &identity, storage)
    }

    /// As [`Agent::new_in`], with the configuration and identity read
    /// where they are (copied once, into the agent).
    pub fn new_in_from<'s>(
        slot: &'s mut core::mem::MaybeUninit<Agent<'a>>,
        cfg: &AgentConfig,
        identity: &Identity<'a>,
        storage: AgentStorage<'a>,
    ) -> Result<&'s mut Agent<'a>, ConfigError> {
        validate(cfg, identity, storage.sizes())?;
        let agent = Self::build(cfg, identity, storage);
        // Cleared first: most of a new agent is zero, and those stores
        // then need not be made one by one.
        *slot = core::mem::MaybeUninit::zeroed();
        let agent = slot.write(agent);
        agent.core.id.copy_from(identity);
        agent.seed();
        Ok(agent)
    }

    /// The agent of a validated configuration, its jitter generator not
    /// yet seeded: [`Agent::seed`] does that once the agent is in place.
    /// Its identity is empty: the caller copies `identity` in (sized for
    /// here, in the transmit buffer's minimum).
    #[inline(always)]
    fn build(cfg: &AgentConfig, identity: &Identity<'a>, storage: AgentStorage<'a>) -> Self {
        let tx_min = min_transmit_len(cfg, identity);
        let max_frame_rx = u32::try_from(storage.rx.len()).unwrap_or(u32::MAX);
        Agent {
            decoder: FrameDecoder::new(storage.rx),
            core: Core {
                cfg: *cfg,
                // Empty here, copied in by `new_in_from` once the agent
                // is in place (see `Identity::copy_from`).
                id: Identity::default(),
                ring: Ring::new(storage.ring, cfg.ring),
                events: EventQueue::new(storage.events),
                // Seeded by `seed`, from the agent's own copy of the
                // config: read here, the seed would split that copy in
                // three pieces (a memcpy each side of it).
                rng: Rng::new(0),
                backoff: Backoff::new(),
                state: State::Backoff { until: Instant::ZERO, endpoint: 0 },
                clock: AgentClock::default(),
                clock_offset_ms: 0,
                max_frame_rx,
                tx_min: u32::try_from(tx_min).unwrap_or(u32::MAX),
                peer_max_frame: frame::MIN_MAX_FRAME as u32,
                tx_seq: 0,
                hello_pending: false,
                close_pending: None,
                link: Link::Carrier,
                pong_pending: None,
                ping: None,
                last_rx: Instant::ZERO,
                ack_progress: Instant::ZERO,
                pending_since: None,
                next_heartbeat: Instant::ZERO,
                heartbeat_armed: false,
                host: HostStats::default(),
                plugins: Plugins::default(),
                // `Default::default()`, not `[(0, 0); MAX_CONFIGS]`: the
                // repeat expression is built on the stack and copied in.
                configs: Default::default(),
                config_victim: 0,
                recent_tasks: [0; RECENT_TASKS],
                recent_answered: 0,
                recent_task_next: 0,
                delivered_pending: false,
                flush_requested: false,
                shrink: 0,
                reset_decoder: false,
                blocked: false,
                last_retry: None,
                last_transport_error: None,
                // `last_rtt_ms` named: the compiler then clears the whole
                // struct in place instead of building it aside and copying.
                stats: Counters { last_rtt_ms: None, ..Counters::default() },
            },
        }
    }

    /// Seeds the jitter generator with the configuration's `rng_seed`
    /// (the second half of [`Agent::build`]).
    #[inline(always)]
    fn seed(&mut self) {
        self.core.rng = Rng::new(self.core.cfg.rng_seed);
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
        self.core.endpoint()
    }

    /// The library's counters (also sent in every heartbeat).
    pub fn stats(&self) -> AgentStats {
        self.core.stats_with(&self.decoder)
    }

    /// The agent's own heartbeat records among [`AgentStats`]' record
    /// counts (also sent in every heartbeat): subtract them to get the
    /// application's.
    pub fn heartbeat_records(&self) -> HeartbeatRecords {
        *self.core.ring.heartbeats()
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

    /// The transmit buffer every `poll_transmit` should be given, at least:
    /// [`min_transmit_len`] of the configuration and identity at init.
    pub fn transmit_len(&self) -> usize {
        self.core.tx_min as usize
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
    /// [`MAX_TASK_RESULT_LEN`] is truncated at a character boundary. The
    /// token is the event's [`Text`] as it came or a `&str`.
    pub fn task_result<'t>(
        &mut self,
        now: Instant,
        token: impl Into<Text<'t>>,
        status: u32,
        message: &str,
    ) -> Result<(), PushError> {
        let (now, token) = (self.core.advance(now), token.into());
        self.core.note_answered(token);
        self.core.push_task_result(now, token, status, message)
    }

    /// Replaces the credential sent in Hello (a rotating token, say), from
    /// the next Hello on; the connection up now and every record in the
    /// ring are untouched. Refused with [`ConfigError::HelloTooLarge`] when
    /// the Hello would no longer fit the transmit buffer prescribed at init
    /// ([`Agent::transmit_len`]) or [`MAX_HELLO_FRAME`].
    pub fn set_auth_token(&mut self, token: &'a [u8]) -> Result<(), ConfigError> {
        let id = Identity { auth_token: token, ..self.core.id };
        if hello_frame_max_len(&id) > self.transmit_len().min(MAX_HELLO_FRAME) {
            return Err(ConfigError::HelloTooLarge);
        }
        self.core.id = id;
        Ok(())
    }

    /// Sets the host stats carried by the following heartbeats.
    pub fn set_host_stats(&mut self, stats: HostStats) {
        self.core.host = stats;
    }

    /// The host stats carried by the following heartbeats, to change in
    /// place (field by field, without a whole [`HostStats`] built aside).
    pub fn host_stats_mut(&mut self) -> &mut HostStats {
        &mut self.core.host
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

    /// Says what kind of link the transport is (see [`Link`]); takes
    /// effect from the next failure or handshake. Set it once, after `new`.
    pub fn set_link(&mut self, link: Link) {
        self.core.link = link;
    }

    /// The kind of link set by [`Agent::set_link`].
    pub fn link(&self) -> Link {
        self.core.link
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

    /// Sends what is pending without waiting for `flush_interval` (within
    /// the window, as always): the next `poll_transmit` gives the batch.
    pub fn flush_now(&mut self, now: Instant) {
        self.core.advance(now);
        if self.core.ring.pending_records() > 0 {
            self.core.flush_requested = true;
        }
    }

    /// Pushes a heartbeat (and the plugin heartbeats) now; the next one
    /// follows `heartbeat_interval` later. Nothing happens while Closed.
    pub fn heartbeat_now(&mut self, now: Instant) {
        let now = self.core.advance(now);
        if !matches!(self.core.state, State::Closed) {
            self.core.next_heartbeat = now;
            self.core.heartbeat_armed = true;
            self.core.heartbeat_tick(now, &self.decoder);
        }
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
            c.blocked = false;
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
            self.core.fail(now, DisconnectReason::Transport, None, Hold::None);
        }
        self.sync_decoder();
    }

    /// The transport will not take more bytes now (`blocked`: a write
    /// returned `EAGAIN`, the caller holds the unwritten rest of a frame), or
    /// takes them again (`!blocked`: the rest is written). While blocked,
    /// [`Agent::poll_transmit`] hands out nothing, and the deadlines only a
    /// transmit can serve (the flush of pending records, the idle Ping) stop:
    /// [`Agent::poll_timeout`] names only what `handle_timeout` serves, so a
    /// loop that waits for "writable or timeout" sleeps instead of spinning.
    /// Liveness still holds: a blocked connection on which nothing arrives
    /// for `idle_timeout + pong_timeout` is dead (`Disconnect{PongTimeout}`,
    /// as if the Ping it could not send went unanswered), and in-flight
    /// records still have the ack timeout.
    ///
    /// So the caller never buffers more than one frame
    /// ([`Agent::transmit_len`] bytes): call `poll_transmit` only with the
    /// previous frame fully written, report `true` when a write falls short,
    /// and `false` once the rest is out. Ignored (`true`) unless a connection
    /// is up; every new connection starts unblocked.
    pub fn handle_blocked(&mut self, blocked: bool) {
        let up = matches!(self.core.state, State::Handshaking { .. } | State::Connected { .. });
        self.core.blocked = blocked && up;
    }

    /// True between `handle_blocked(true)` and `handle_blocked(false)` (or
    /// the end of the connection).
    pub fn is_blocked(&self) -> bool {
        self.core.blocked
    }

    /// Bytes arrived on the transport. Any chunking works. Bytes arriving
    /// while no connection is up are ignored (counted as skipped).
    pub fn handle_received(&mut self, now: Instant, bytes: &[u8]) {
        let now = self.core.advance(now);
        self.core.stats.bytes_received += bytes.len() as u64;
        if !matches!(self.core.state, State::Handshaking { .. } | State::Connected { .. }) {
            self.decoder.skip(bytes.len());
            return;
        }
        let mut input = bytes;
        loop {
            match self.decoder.feed(input) {
                Feed::Consumed => break,
                Feed::Frame { frame, remaining } => {
                    input = remaining;
                    let stale = self.core.on_frame(now, &frame);
                    if stale > 0 {
                        self.decoder.skip(stale);
                    }
                    if !matches!(self.core.state, State::Handshaking { .. } | State::Connected { .. }) {
                        self.decoder.skip(input.len());
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
    /// least [`Agent::transmit_len`] bytes (a full batch, and the Hello): a
    /// frame that does not fit waits, it is never lost. Always 0 while the
    /// caller reports the transport blocked ([`Agent::handle_blocked`]).
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

    /// The earliest running timer and when it fires (on the caller's
    /// clock, like [`Agent::poll_timeout`]): says why the agent wants to be
    /// woken. After `handle_timeout(now)` and draining `poll_transmit(now)`,
    /// it is later than `now`.
    pub fn next_timer(&self) -> Option<(Timer, Instant)> {
        self.core.next_timer().map(|(t, at)| (t, self.core.clock.to_caller(at)))
    }

    /// When `handle_timeout` must be called next; `None` when no timer runs
    /// (Closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.next_timeout().map(|t| self.core.clock.to_caller(t))
    }
}

/// FNV-1a, for remembering config names and versions in 16 bytes each.
// Inlined: as a call it costs Thumb flash (NOTES.md, "flash by function").
#[inline(always)]
fn fnv1a(s: Text<'_>) -> u64 {
    s.as_bytes().iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
impl<'a> Core<'a> {
    /// Turns the caller's instant into agent time (see [`AgentClock`]).
    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.clock.input(now, self.cfg.max_clock_step, self.cfg.clock_backstep_tolerance);
        if !self.heartbeat_armed {
            // The first heartbeat goes out at the first call.
            self.next_heartbeat = now;
            self.heartbeat_armed = true;
        }
        now
    }

    /// The timestamp of the agent's own records: the caller's latest
    /// instant plus the clock offset (agent time may differ from the
    /// caller's after a clock anomaly; timestamps follow the caller).
    // Out of line: inlined, it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(never)]
    fn wall(&self) -> u64 {
        self.clock.caller_now().as_millis().wrapping_add(self.clock_offset_ms as u64)
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
    // Inlined: as a call it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(always)]
    fn emit_droppable(&mut self, ev: Event<'_>) -> bool {
        let ok = self.events.push_keeping(&ev, crate::events::LIFECYCLE_RESERVE);
        if !ok {
            self.stats.events_dropped += 1;
        }
        ok
    }

    /// Every counter, gathered from the session, the ring, the decoder and
    /// the clock. Not inlined: its two callers (`stats`, the heartbeat)
    /// would each carry a copy of every field's gathering.
    #[inline(never)]
    fn stats_with(&self, decoder: &FrameDecoder<'_>) -> AgentStats {
        let r = self.ring.counters();
        let d = decoder.stats();
        let s = &self.stats;
        // Field by field, not one struct literal: a literal loads every
        // value before storing any, which spills most of them on a 32-bit
        // MCU. The pattern names every field, so none can be forgotten.
        let mut out = AgentStats::default();
        let AgentStats {
            pushed,
            acked,
            dropped_full,
            dropped_too_large,
            dropped_evicted,
            bytes_sent,
            bytes_received,
            frames_sent,
            frames_received,
            connections,
            connect_failures,
            last_rtt_ms,
            decoder_skipped_bytes,
            decoder_bad_crc,
            unknown_kinds,
            malformed,
            events_dropped,
            tasks_unroutable,
            protocol_errors,
            ring_used_bytes,
            ring_capacity,
            tasks_duplicate,
            decoder_oversized,
            clock_anomalies,
            peer_incompatible,
            ack_timeouts,
        } = &mut out;
        *pushed = r.pushed;
        *acked = r.acked;
        *dropped_full = r.dropped_full;
        *dropped_too_large = r.dropped_too_large;
        *dropped_evicted = r.dropped_evicted;
        *bytes_sent = s.bytes_sent;
        *bytes_received = s.bytes_received;
        *frames_sent = s.frames_sent;
        *frames_received = s.frames_received;
        *connections = s.connections;
        *connect_failures = s.connect_failures;
        *last_rtt_ms = s.last_rtt_ms;
        *decoder_skipped_bytes = d.skipped_bytes;
        *decoder_bad_crc = d.bad_crc;
        *unknown_kinds = s.unknown_kinds;
        *malformed = s.malformed;
        *events_dropped = s.events_dropped;
        *tasks_unroutable = s.tasks_unroutable;
        *protocol_errors = s.protocol_errors;
        *ring_used_bytes = u32::try_from(self.ring.used_bytes()).unwrap_or(u32::MAX);
        *ring_capacity = u32::try_from(self.ring.capacity()).unwrap_or(u32::MAX);
        *tasks_duplicate = s.tasks_duplicate;
        *decoder_oversized = d.oversized;
        *clock_anomalies = self.clock.anomalies();
        *peer_incompatible = s.peer_incompatible;
        *ack_timeouts = s.ack_timeouts;
        out
    }

    fn push(&mut self, now: Instant, rec: &Record<'_>) -> Result<(), PushError> {
        let was_idle = self.ring.pending_records() == 0;
        self.ring.push_as(rec, ring_entry_kind(rec.data_type), is_heartbeat_record)?;
        if was_idle || self.pending_since.is_none() {
            self.pending_since = Some(now);
        }
        Ok(())
    }

    fn push_task_result(&mut self, now: Instant, token: Text<'_>, status: u32, message: &str) -> Result<(), PushError> {
        // `max_record` >= MAX_HEARTBEAT_LEN > MAX_TASK_RESULT_LEN (checked
        // at init), so a result that fits `buf` fits the ring.
        let mut buf = crate::mem::Scratch::<MAX_TASK_RESULT_LEN>::zeroed();
        let buf = &mut buf.0;
        let mut msg = message;
        loop {
            let r = TaskResult { token, status, message: Text::new(msg) };
            if let Some(body) = write_body(&r, buf).and_then(|n| buf.get(..n)) {
                return self.push(now, &Record::new(data_type::TASK_RESULT, self.wall(), body));
            }
            if msg.is_empty() {
                // The token alone is too long: refused and counted like any
                // oversized record.
                self.ring.count_too_large();
                return Err(PushError::TooLarge);
            }
            let mut cut = msg.len().min(MAX_TASK_RESULT_LEN).saturating_sub(1);
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg = &msg[..cut];
        }
    }



    /// Forgets the connection: rewinds the ring, clears per-connection state.
    // Inlined into its two callers (fail_held and the shutdown): flash.
    #[inline(always)]
    fn drop_connection(&mut self) {
        self.ring.rewind();
        self.ping = None;
        self.pong_pending = None;
        self.hello_pending = false;
        self.blocked = false;
        self.reset_decoder = true;
        if self.ring.pending_records() > 0 {
            self.pending_since = Some(self.clock.now());
        }
    }

    fn endpoint(&self) -> Option<u8> {
        match self.state {
            State::Backoff { endpoint, .. }
            | State::Connecting { endpoint, .. }
            | State::Handshaking { endpoint, .. }
            | State::Connected { endpoint, .. } => Some(endpoint),
            State::GaveUp | State::Closed => None,
        }
    }

    /// The one failure path (see the module docs). `hold` (from a Reject's
    /// `retry_after_ms`) is the failing endpoint's word about itself: it
    /// applies only if the next attempt goes to the same endpoint.
    // Inlined: `hold` becomes plain values at each caller (flash; see `fail_held`).
    #[inline(always)]
    fn fail(&mut self, now: Instant, reason: DisconnectReason, close: Option<CloseCode>, hold: Hold) {
        let (floor_ms, exact) = match hold {
            Hold::None => (0, false),
            Hold::AtLeast(d) => (d, false),
            Hold::Exactly(d) => (d, true),
        };
        self.fail_held(close, reason, now, exact, floor_ms);
    }

    /// `fail` with its hold as plain values (an enum argument is built in
    /// memory at every caller): the wait is `floor_ms` if `exact`, else at
    /// least `floor_ms` (0: the backoff's own draw).
    // Out of line, one copy for every caller; the arguments' order (which
    // of them go in registers at each call) is the smallest measured.
    #[inline(never)]
    fn fail_held(&mut self, close: Option<CloseCode>, reason: DisconnectReason, now: Instant, exact: bool, floor_ms: u32) {
        let from = self.endpoint();
        // Without a carrier, a parting frame would lead the next stream.
        self.close_pending = if self.link == Link::Carrierless { None } else { close };
        self.stats.connect_failures += 1;
        self.drop_connection();
        self.emit(Event::Disconnect { reason });
        match self.backoff.on_failure(&self.cfg.backoff, now, &mut self.rng) {
            Some(r) => {
                self.last_retry = Some(r);
                // Another endpoint: no hold (a floor of 0, not exact).
                let (floor_ms, exact) = if Some(r.endpoint) == from { (floor_ms, exact) } else { (0, false) };
                let hold = Duration::from_millis(u64::from(floor_ms));
                let delay = if exact { hold } else { r.delay.max(hold) };
                self.state = State::Backoff { until: now + delay, endpoint: r.endpoint };
            }
            None => {
                self.last_retry = None;
                self.state = State::GaveUp;
                self.emit(Event::GaveUp);
            }
        }
    }

}


/// What a failure's cause says about the wait before retrying the same
/// endpoint (bounded by the caller; see [`crate::backoff`]).
#[derive(Clone, Copy, Debug)]
enum Hold {
    /// Nothing: the backoff's own draw.
    None,
    /// At least this many ms (a Reject's `retry_after_ms`, other than Busy).
    AtLeast(u32),
    /// Exactly this many ms (the slot of a Busy Reject).
    Exactly(u32),
}

impl fmt::Debug for Agent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent").field("state", &self.core.state).field("ring", &self.core.ring).finish()
    }
}

#[cfg(test)]
mod tests;
