//! Operation sequences on `agent_core::Agent`, the whole session.
//!
//! A configuration (mostly valid: bounds derived so `Agent::new` accepts
//! them), an identity, then any sequence of: push, time passing (forwards,
//! backwards, or jumping), `handle_connected`, `handle_disconnected`,
//! `handle_received` with arbitrary bytes or with well-formed frames built
//! from arbitrary message fields (Accept answering the last Hello, Ack of
//! what was sent, Ping, Pong, Task, Config, Close, Reject, any message, any
//! header) in arbitrary chunks, `poll_transmit` into a buffer of any size,
//! `poll_event`, `close`, `reconnect_now`, `task_result`, plugins, clock
//! offset. Checks after every operation:
//!
//! * no panic; `pushed == acked + dropped_evicted + ring().len()`;
//!   in-flight bytes within the window; `poll_timeout()` is called;
//! * every frame `poll_transmit` gives fits the buffer, comes out of a
//!   `FrameDecoder` whole, decodes with `Message::decode`, carries the next
//!   per-connection frame counter, and is legal in the agent's state: the
//!   Hello is frame 0 of its connection and sent once, Batch / Ping / Pong
//!   only after it, Batch and Ping only when connected, Close only after
//!   the connection was dropped; batches hold exactly `count` well-formed
//!   entries within the batch limits and the server's `max_frame`, never
//!   resend acked records, and a sequence number always carries the same
//!   record (resends are identical);
//! * `Settle`: at the latest instant seen, calling `handle_timeout` and
//!   draining the outputs must push `poll_timeout()` past now within a few
//!   rounds (no busy loop for a caller that follows the call order);
//! * the harness models what it can of the agent's reaction to its own
//!   well-formed Task, Config and Pong frames, as long as it knows the
//!   decoder held nothing (no garbage, corruption or raw bytes before) and
//!   no frame of unknown content (`RecvRaw`, `Any`, `Frame`, garbage) was
//!   processed since the model was last exact:
//!   - a Task is routed to the agent (object name "" or the product), to the
//!     plugin the harness registered under that name (`TaskTarget::Plugin`
//!     with its slot), or counted in `tasks_unroutable`; a Task resent with a
//!     token among the last `RECENT_TASKS` recorded is ignored and counted in
//!     `tasks_duplicate` (a new token is not, once the model is exact);
//!   - a Config whose (name, version) is the one the agent holds yields no
//!     event (a new version does, unless the queue is full);
//!   - the events `poll_event` gives are exactly the modeled Task, Shutdown
//!     and Config events, in order (a subsequence, when unknown frames may
//!     have added some);
//!   - a Pong answering the outstanding Ping sets `last_rtt_ms` to the
//!     round trip; any other (late: answered, timed out, superseded; or a
//!     nonce never sent) changes neither the state nor `last_rtt_ms`;
//!   - plugin registration, removal and status follow a model of the slots;
//! * at the end, after a network reset, an honest server (connect when
//!   asked, Accept the Hello, ack every batch, answer pings) must get every
//!   record pushed so far acked or evicted within `flush_interval` + 10 s;
//!   then the application's records the server saw, in sequence order, are
//!   exactly those pushed (`RejectNew`) or an in-order subset (`DropOldest`).
//!
//! `AGENT_OPS_TRACE=1` prints every operation, frame and event.

#![no_main]
// Fuzzer inputs: variant sizes do not matter.
#![allow(clippy::large_enum_variant)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::LazyLock;

use agent_core::agent::{MAX_CONFIGS, RECENT_TASKS};
use agent_core::backoff::BackoffConfig;
use agent_core::decoder::{Feed, FrameDecoder};
use agent_core::frame::VERSION;
use agent_core::heartbeat::MAX_HEARTBEAT_LEN;
use agent_core::message::{Accept, Ack, Close, Config, Message, Ping, Pong, Reject, Task};
use agent_core::plugin::{PluginError, MAX_PLUGINS};
use agent_core::record::data_type;
use agent_core::{
    Agent, AgentConfig, AgentStats, AgentStorage, Duration, Event, Identity, Instant, OverflowPolicy, PluginId,
    PluginStatus, Record, RingConfig, StateKind, TaskTarget, TransportError,
};
use agent_core_fuzz::{check_entries, encode_message, raw_frame, OwnedMessage};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

// ---- input -------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct Setup<'a> {
    ring_len: u16,
    rx_len: u16,
    events_len: u16,
    max_record: u16,
    drop_oldest: bool,
    batch_extra: u16,
    batch_max_records: u8,
    window_extra: u16,
    flush_ms: u16,
    heartbeat_ms: u16,
    idle_ms: u16,
    pong_ms: u16,
    connect_ms: u16,
    handshake_ms: u16,
    healthy_ms: u16,
    backoff_base_ms: u16,
    backoff_cap_ms: u16,
    endpoints: u8,
    attempts: u8,
    give_up: u8,
    rng_seed: u64,
    start_ms: u32,
    agent_id: &'a str,
    hostname: &'a str,
    auth_token: &'a [u8],
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum DataType {
    Heartbeat,
    TaskResult,
    App(u8),
    Any(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum SeqTo {
    /// The agent's first unacked sequence number (the Hello's resume point).
    Hello,
    /// Between the agent's first unacked and next sequence numbers.
    InRange(u64),
    /// Past what the agent numbered.
    Ahead(u16),
    Any(u64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum MaxFrame {
    /// Large enough for any batch.
    Roomy,
    Any(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Obj {
    Agent,
    Product,
    /// `plugin_name(i)` (registered or not), or any name from 200 on.
    Plugin(u8),
    /// One of the plugins the harness registered (by index among them).
    Registered(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Token<'a> {
    Any(&'a str),
    /// "t0" .. "t15": few enough that tokens repeat, within the agent's
    /// memory of `RECENT_TASKS` and beyond it.
    Few(u8),
}

#[derive(Arbitrary, Debug)]
enum Down<'a> {
    Accept {
        next: SeqTo,
        max_frame: MaxFrame,
        retry_window_ms: u32,
    },
    Reject {
        code: u16,
        reason: &'a str,
        retry_after_ms: u16,
    },
    Ack {
        up_to: SeqTo,
    },
    /// Ack the last record sent, or `back` before it.
    AckSent {
        back: u8,
    },
    Ping {
        nonce: u64,
    },
    /// Echo the last Ping (or any nonce).
    Pong {
        echo: bool,
        nonce: u64,
    },
    Task {
        obj: Obj,
        name: &'a str,
        shutdown: bool,
        data_type: u32,
        payload: &'a [u8],
        token: Token<'a>,
    },
    Config {
        name: u8,
        version: &'a str,
        payload: &'a [u8],
    },
    Close {
        code: u16,
        reason: &'a str,
    },
    Any(OwnedMessage),
    /// Any header values, valid CRC.
    Frame {
        version: u8,
        kind: u8,
        flags: u8,
        body: &'a [u8],
    },
    /// A Pong with the nonce of an earlier Ping (`back` pings ago): late
    /// once that ping was answered, timed out or the connection dropped.
    PongPast {
        back: u8,
    },
    /// A Task with the token of an earlier modeled one (`back` tokens ago):
    /// a resend while among the agent's last `RECENT_TASKS`.
    TaskAgain {
        back: u8,
        obj: Obj,
        data_type: u32,
        payload: &'a [u8],
    },
    /// A Config with the (name, version) of an earlier one the agent took
    /// (`back` ago; 0 is the latest).
    ConfigAgain {
        back: u8,
        payload: &'a [u8],
    },
}

#[derive(Arbitrary, Debug)]
enum Op<'a> {
    Push {
        data_type: DataType,
        ts: i32,
        len: u16,
        fill: u8,
    },
    /// Time passes (ms), then `handle_timeout`.
    Advance(u16),
    AdvanceLong(u32),
    /// Time goes backwards (ms), then `handle_timeout`.
    Back(u16),
    /// Time jumps anywhere, then `handle_timeout`.
    Jump(u64),
    /// Advance to `poll_timeout()` (if later) and `handle_timeout`.
    ToDeadline,
    Connected,
    /// Shortcut to Connected: the backoff deadline, `handle_connected`,
    /// transmit, and an Accept of the Hello (each step only if due).
    Handshake,
    /// `handle_disconnected` with a `TransportError` (by number).
    Disconnected(u8),
    RecvRaw(&'a [u8]),
    Recv {
        msg: Down<'a>,
        seq: u32,
        garbage: &'a [u8],
        split: u16,
        corrupt: Option<u16>,
    },
    Transmit {
        buf: u16,
    },
    TransmitAll,
    Events,
    Settle,
    Close,
    ReconnectNow,
    TaskResult {
        token: &'a str,
        status: u32,
        message: &'a str,
    },
    RegisterPlugin(u8),
    UnregisterPlugin(u8),
    SetPluginStatus {
        id: u8,
        pid: u32,
        status: u8,
    },
    SetClockOffset(i64),
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    setup: Setup<'a>,
    ops: Vec<Op<'a>>,
}

// ---- harness -----------------------------------------------------------------

const PRODUCT: &str = "edge";
/// Data types the harness pushes as the application (the agent's own
/// records are 1000, 1001, 1050).
const APP_TYPES: std::ops::Range<u32> = 2000..2008;
/// (data_type, timestamp, payload).
type AppRecord = (u32, u64, Vec<u8>);
static LONG_NAME: LazyLock<String> = LazyLock::new(|| "p".repeat(400));

fn plugin_name(i: u8) -> &'static str {
    match i % 6 {
        0 => "scanner",
        1 => "collector",
        2 => PRODUCT,
        3 => "",
        4 => "s",
        _ => &LONG_NAME,
    }
}

/// Times above this are left out of the liveness checks: deadlines saturate
/// at `u64::MAX` there, so every timer is due at every instant.
const SANE_TIME: u64 = 1 << 62;

/// `AGENT_OPS_TRACE=1` prints every step (for reading a crash input).
static TRACE: LazyLock<bool> = LazyLock::new(|| std::env::var_os("AGENT_OPS_TRACE").is_some());

macro_rules! trace {
    ($($t:tt)*) => {
        if *TRACE {
            eprintln!($($t)*);
        }
    };
}

/// Transmit buffer of `Settle`, `TransmitAll` and the drain, and the
/// `max_frame` of the harness's Accept: larger than any frame.
const BIG_BUF: usize = 1 << 16;

/// What the harness knows of a downlink frame it built.
enum Known {
    Task(OwnedTask),
    Config {
        name: &'static str,
        version: String,
        payload: Vec<u8>,
    },
    Pong(u64),
    /// Built by the harness, no effect on the models (Accept, Ack, Ping, ...).
    Inert,
    /// Content unknown to the models (`Any`, `Frame`, raw bytes).
    Opaque,
}

struct OwnedTask {
    object_name: String,
    data_type: u32,
    payload: Vec<u8>,
    token: String,
}

/// A task, shutdown or config event, owned.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Task { target: TaskTarget, object_name: String, data_type: u32, payload: Vec<u8>, token: String },
    Shutdown { token: String },
    Config { name: String, version: String, payload: Vec<u8> },
}

impl Expected {
    fn of(ev: &Event<'_>) -> Option<Expected> {
        Some(match *ev {
            Event::Task { target, object_name, data_type, payload, token } => Expected::Task {
                target,
                object_name: object_name.as_str().into(),
                data_type,
                payload: payload.into(),
                token: token.as_str().into(),
            },
            Event::Shutdown { token } => Expected::Shutdown { token: token.as_str().into() },
            Event::Config { name, version, payload } => {
                Expected::Config { name: name.as_str().into(), version: version.as_str().into(), payload: payload.into() }
            }
            _ => return None,
        })
    }
}

/// The agent's hash for task tokens and config names and versions.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn live(s: StateKind) -> bool {
    matches!(s, StateKind::Handshaking | StateKind::Connected)
}

/// Logs kept for the `*Again` / `PongPast` ops: the latest entries.
const LOG_LEN: usize = 64;

fn log_push<T>(log: &mut VecDeque<T>, v: T) {
    if log.len() == LOG_LEN {
        log.pop_front();
    }
    log.push_back(v);
}

fn log_back<T>(log: &VecDeque<T>, back: u8) -> Option<&T> {
    let n = log.len();
    (n > 0).then(|| &log[n - 1 - usize::from(back) % n])
}

struct Harness<'a> {
    cfg: AgentConfig,
    id: Identity<'a>,
    rx_len: usize,
    /// The caller's clock, and the latest instant given to the agent.
    now: u64,
    max_now: u64,
    /// The frame counter the next frame must carry (None: unknown).
    tx_seq: Option<u32>,
    /// The `max_frame` of the Accept that connected the agent, if ours.
    peer_max: Option<usize>,
    last_hello: Option<(u64, u64)>,
    /// A Hello went out on the current connection.
    hello_sent: bool,
    last_ping: Option<u64>,
    /// Highest record sequence number sent in a batch.
    max_sent: Option<u64>,
    /// Every record sent in a batch, by sequence number.
    seq_log: BTreeMap<u64, AppRecord>,
    /// The records of `APP_TYPES` pushed successfully, in order.
    app_pushed: Vec<AppRecord>,
    /// Replies an honest server owes (used by the final drain).
    replies: Vec<Vec<u8>>,
    out: Vec<u8>,
    store: Vec<u8>,
    // ---- models of what the agent does with the harness's own frames ----
    /// The agent's decoder holds no partial frame.
    rx_clean: bool,
    /// The plugin slots, as registered.
    plugins: [Option<&'static str>; MAX_PLUGINS],
    /// Token hashes the agent recorded last, oldest first (at most
    /// `RECENT_TASKS`): all of them while `tasks_exact`, else the latest.
    recent_tasks: VecDeque<u64>,
    tasks_exact: bool,
    /// Tokens of modeled tasks the agent recorded (for `TaskAgain`).
    token_log: VecDeque<String>,
    /// The agent's config table and victim slot, while `configs_exact`.
    configs: [(u64, u64); MAX_CONFIGS],
    config_victim: usize,
    configs_exact: bool,
    /// The last (name, version) stored by the agent, if known.
    last_config: Option<(&'static str, String)>,
    /// Configs the agent holds or held (for `ConfigAgain`).
    config_log: VecDeque<(&'static str, String)>,
    /// Task, shutdown and config events queued, in order, not yet polled.
    expect: VecDeque<Expected>,
    /// Events of unknown frames may be queued too.
    queue_tainted: bool,
    /// The agent's outstanding Ping (nonce, sent at); exact unless an
    /// unknown frame arrived since it was sent (it may have answered it).
    ping_out: Option<(u64, u64)>,
    ping_exact: bool,
    /// Every Ping sent, with what became of it (for `PongPast` and traces).
    ping_log: VecDeque<(u64, &'static str)>,
}

impl<'a> Harness<'a> {
    fn resolve(&self, agent: &Agent<'_>, to: SeqTo) -> u64 {
        let (first, next) = (agent.ring().first_unacked_seq(), agent.ring().next_seq());
        match to {
            SeqTo::Hello => self.last_hello.map_or(first, |h| h.0),
            SeqTo::InRange(r) => first + r % (next - first + 1),
            SeqTo::Ahead(k) => next + u64::from(k),
            SeqTo::Any(v) => v,
        }
    }

    /// Everything that holds after any operation.
    fn check(&self, agent: &Agent<'_>) {
        let s = agent.stats();
        let ring = agent.ring();
        assert_eq!(s.pushed, s.acked + s.dropped_evicted + ring.len(), "pushed == acked + evicted + len");
        assert_eq!(ring.used_bytes() + ring.free_bytes(), ring.capacity());
        assert!(ring.inflight_bytes() <= self.cfg.window_bytes, "in flight beyond the window");
        assert!(ring.first_unacked_seq() <= ring.next_seq());
        if let Some(e) = agent.endpoint() {
            assert!(e < self.cfg.backoff.endpoints, "endpoint {e} out of range");
        }
        match agent.state() {
            StateKind::Connected => {}
            _ => assert_eq!(ring.inflight_records(), 0, "records in flight while not connected"),
        }
        let _ = agent.poll_timeout();
    }

    fn handle_timeout(&mut self, agent: &mut Agent<'_>) {
        self.max_now = self.max_now.max(self.now);
        agent.handle_timeout(Instant(self.now));
        // Still connected at or after the pong deadline: the peer was alive
        // (a frame arrived after the Ping), the ping is forgotten.
        if let Some((nonce, sent)) = self.ping_out {
            let deadline = sent.saturating_add(self.cfg.pong_timeout.as_millis());
            if agent.state() == StateKind::Connected && self.max_now >= deadline {
                self.ping_out = None;
                self.ping_fate(nonce, "timed out, peer alive");
            }
        }
    }

    fn ping_fate(&mut self, nonce: u64, fate: &'static str) {
        if let Some(p) = self.ping_log.iter_mut().rev().find(|p| p.0 == nonce) {
            p.1 = fate;
        }
    }

    /// After every operation: what a lost connection ends.
    fn sync(&mut self, agent: &Agent<'_>) {
        if agent.state() != StateKind::Connected {
            if let Some((nonce, _)) = self.ping_out.take() {
                self.ping_fate(nonce, "connection dropped");
            }
        }
        if !live(agent.state()) {
            // The agent resets its decoder whenever it leaves these states.
            self.rx_clean = true;
        }
    }

    /// A frame of unknown content was processed: the models lose track.
    fn taint(&mut self) {
        trace!("  models: a frame of unknown content was processed");
        self.tasks_exact = false;
        self.recent_tasks.clear();
        self.configs_exact = false;
        self.last_config = None;
        self.queue_tainted = true;
        self.ping_exact = false;
    }

    /// `handle_received` with `chunks` in turn. `whole`: they are one
    /// frame, unchanged, that fits the receive buffer; `known`: what the
    /// harness knows of that frame.
    fn deliver(&mut self, agent: &mut Agent<'_>, chunks: [&[u8]; 2], accept: Option<usize>, whole: bool, known: &Known) {
        let (state0, s0) = (agent.state(), agent.stats());
        let exact = whole && self.rx_clean && live(state0);
        for c in chunks {
            self.receive(agent, c, accept);
        }
        let s1 = agent.stats();
        let frames = s1.frames_received - s0.frames_received;
        if live(state0) {
            if exact {
                assert_eq!(frames, 1, "one whole frame into an empty decoder");
            }
            self.rx_clean = exact;
        }
        self.sync(agent);
        if frames == 0 {
            return;
        }
        if !exact {
            self.taint();
            return;
        }
        let connected = state0 == StateKind::Connected;
        match known {
            Known::Inert => {}
            Known::Opaque => self.taint(),
            Known::Task(_) | Known::Config { .. } if !connected => {
                assert_eq!(s1.malformed, s0.malformed + 1, "task or config while {state0:?}");
            }
            Known::Task(t) => self.check_task(&s0, &s1, t),
            Known::Config { name, version, payload } => self.check_config(&s0, &s1, name, version, payload),
            Known::Pong(_) if !connected => {}
            Known::Pong(nonce) => {
                assert_eq!(agent.state(), StateKind::Connected, "a Pong changed the state");
                self.check_pong(&s0, &s1, *nonce);
            }
        }
    }

    fn check_task(&mut self, s0: &AgentStats, s1: &AgentStats, t: &OwnedTask) {
        let dup = s1.tasks_duplicate - s0.tasks_duplicate;
        let unroutable = s1.tasks_unroutable - s0.tasks_unroutable;
        let dropped = s1.events_dropped - s0.events_dropped;
        let hash = (!t.token.is_empty()).then(|| fnv1a(&t.token).max(1));
        match hash {
            None => assert_eq!(dup, 0, "a task without a token counted as resent"),
            Some(x) if self.recent_tasks.contains(&x) => {
                assert_eq!(dup, 1, "task with token {:?}, among the last {RECENT_TASKS} seen, not ignored", t.token)
            }
            Some(_) if self.tasks_exact => {
                assert_eq!(dup, 0, "task with new token {:?} counted as resent", t.token)
            }
            Some(_) => assert!(dup <= 1),
        }
        if dup == 1 {
            assert_eq!((unroutable, dropped, s1.pushed), (0, 0, s0.pushed), "a resent task had an effect");
            trace!("  check: resent task (token {:?}) ignored, tasks_duplicate {}", t.token, s1.tasks_duplicate);
            return;
        }
        // The agent remembers a token only once the task was handed over
        // (queued) or answered (a result record pushed); a task it could do
        // neither with is handled afresh when resent.
        let answered = s1.pushed > s0.pushed;
        let queued = dropped == 0 && unroutable == 0;
        if let Some(x) = hash.filter(|_| queued || answered) {
            self.recent_tasks.push_back(x);
            if self.recent_tasks.len() > RECENT_TASKS {
                self.recent_tasks.pop_front();
            }
            if self.recent_tasks.len() == RECENT_TASKS {
                self.tasks_exact = true;
            }
            log_push(&mut self.token_log, t.token.clone());
        }
        let name = t.object_name.as_str();
        let for_agent = name.is_empty() || name == PRODUCT;
        let target = if for_agent {
            Some(TaskTarget::Agent)
        } else {
            self.plugins.iter().position(|p| *p == Some(name)).map(|i| TaskTarget::Plugin(PluginId(i as u8)))
        };
        let Some(target) = target else {
            assert_eq!((unroutable, dropped), (1, 0), "task for {name:?}, no such plugin: unroutable");
            trace!("  check: task for {name:?}: no such plugin, unroutable");
            return;
        };
        assert_eq!(unroutable, 0, "task for {target:?} counted as unroutable");
        assert!(dropped <= 1);
        if dropped == 1 {
            trace!("  check: task for {target:?} dropped (event queue full)");
            return;
        }
        trace!("  check: task for {target:?} ({name:?}) queued");
        self.expect.push_back(if for_agent && t.data_type == data_type::SHUTDOWN_TASK {
            Expected::Shutdown { token: t.token.clone() }
        } else {
            Expected::Task {
                target,
                object_name: t.object_name.clone(),
                data_type: t.data_type,
                payload: t.payload.clone(),
                token: t.token.clone(),
            }
        });
    }

    fn check_config(&mut self, s0: &AgentStats, s1: &AgentStats, name: &'static str, version: &str, payload: &[u8]) {
        let dropped = s1.events_dropped - s0.events_dropped;
        assert!(dropped <= 1);
        let (n, v) = (fnv1a(name), fnv1a(version));
        let slot = self.configs.iter().position(|c| c.0 == n);
        let held = if self.configs_exact {
            Some(slot.is_some_and(|i| self.configs[i].1 == v))
        } else if self.last_config.as_ref().is_some_and(|(ln, lv)| *ln == name && lv == version) {
            Some(true)
        } else {
            None
        };
        match held {
            Some(true) => {
                // No event: in an untainted queue, an unexpected Config
                // event fails in `events`.
                assert_eq!(dropped, 0, "config {name:?} {version:?} held already, yet an event was dropped");
                trace!("  check: config {name:?} version {version:?} unchanged: no event");
                return;
            }
            Some(false) if dropped == 0 => {
                trace!("  check: config {name:?} version {version:?} new: event queued");
                self.expect.push_back(Expected::Config {
                    name: name.into(),
                    version: version.into(),
                    payload: payload.into(),
                });
                let i = slot.unwrap_or_else(|| {
                    let v = self.config_victim;
                    self.config_victim = (v + 1) % MAX_CONFIGS;
                    v
                });
                self.configs[i] = (n, v);
            }
            // An event, or none because the agent held that version.
            None if dropped == 0 => self.queue_tainted = true,
            _ => return,
        }
        self.last_config = Some((name, version.into()));
        log_push(&mut self.config_log, (name, version.into()));
    }

    fn check_pong(&mut self, s0: &AgentStats, s1: &AgentStats, nonce: u64) {
        match self.ping_out {
            Some((n, sent)) if n == nonce => {
                self.ping_out = None;
                self.ping_fate(nonce, "answered");
                if self.ping_exact {
                    let rtt = u32::try_from(self.max_now - sent).unwrap_or(u32::MAX);
                    assert_eq!(s1.last_rtt_ms, Some(rtt), "round trip of the answered Ping");
                    trace!("  check: pong answers the outstanding ping, rtt {rtt} ms");
                }
            }
            _ => {
                assert_eq!(s1.last_rtt_ms, s0.last_rtt_ms, "a Pong answering no outstanding Ping changed last_rtt_ms");
                let fate = self.ping_log.iter().rev().find(|p| p.0 == nonce).map_or("never sent", |p| p.1);
                trace!("  check: pong {nonce:#x} ignored (ping {fate})");
            }
        }
    }

    fn connected(&mut self, agent: &mut Agent<'_>) {
        let before = agent.state();
        self.max_now = self.max_now.max(self.now);
        agent.handle_connected(Instant(self.now));
        if before == StateKind::Connecting {
            assert_eq!(agent.state(), StateKind::Handshaking);
            self.tx_seq = Some(0);
            self.peer_max = None;
            self.hello_sent = false;
        } else {
            assert_eq!(agent.state(), before, "handle_connected outside Connecting changed the state");
        }
    }

    fn receive(&mut self, agent: &mut Agent<'_>, bytes: &[u8], accept: Option<usize>) {
        let before = agent.state();
        self.max_now = self.max_now.max(self.now);
        agent.handle_received(Instant(self.now), bytes);
        if before != StateKind::Connected && agent.state() == StateKind::Connected {
            // Connected by our Accept (its max_frame), or by an Accept the
            // fuzzer built by hand (unknown).
            self.peer_max = accept;
        }
    }

    /// One `poll_transmit` into `buf_len` bytes, with every check on the frame.
    fn transmit(&mut self, agent: &mut Agent<'_>, buf_len: usize) -> usize {
        let state = agent.state();
        let (first_before, next_before) = (agent.ring().first_unacked_seq(), agent.ring().next_seq());
        // Reused buffers: zeroing 64 KiB per call would dominate the run time.
        let mut out = std::mem::take(&mut self.out);
        let n = self.transmit_into(agent, state, (first_before, next_before), &mut out[..buf_len]);
        self.out = out;
        n
    }

    fn transmit_into(
        &mut self,
        agent: &mut Agent<'_>,
        state: StateKind,
        seqs_before: (u64, u64),
        out: &mut [u8],
    ) -> usize {
        let buf_len = out.len();
        self.max_now = self.max_now.max(self.now);
        let n = agent.poll_transmit(Instant(self.now), out);
        assert_eq!(agent.state(), state, "poll_transmit changed the state");
        if n == 0 {
            return 0;
        }
        assert!(n <= buf_len, "frame of {n} bytes in a {buf_len}-byte buffer");
        let wire = &out[..n];
        let mut store = std::mem::take(&mut self.store);
        store.resize(n, 0);
        self.check_frame(agent, state, seqs_before, wire, &mut store);
        self.store = store;
        n
    }

    /// Checks one frame from `poll_transmit` (sent in `state`, when the
    /// ring's first unacked and next sequence numbers were `seqs_before`).
    fn check_frame(
        &mut self,
        agent: &Agent<'_>,
        state: StateKind,
        seqs_before: (u64, u64),
        wire: &[u8],
        store: &mut [u8],
    ) {
        let (first_before, next_before) = seqs_before;
        let n = wire.len();
        let mut dec = FrameDecoder::new(store);
        let Feed::Frame { frame, remaining } = dec.feed(wire) else {
            panic!("poll_transmit gave {n} bytes that are not a frame: {wire:02x?}")
        };
        assert!(remaining.is_empty());
        assert_eq!(frame.version, VERSION);
        if let Some(seq) = self.tx_seq {
            assert_eq!(frame.seq, seq, "frame counter");
        }
        self.tx_seq = Some(frame.seq.wrapping_add(1));
        let msg = Message::decode(&frame).unwrap_or_else(|e| panic!("uplink frame does not decode: {e:?}: {frame:?}"));
        trace!("  t={} tx {n} B in {state:?}: {msg:?}", self.now);
        let connected = state == StateKind::Connected;
        if matches!(msg, Message::Batch(_) | Message::Ping(_) | Message::Pong(_)) {
            assert!(self.hello_sent, "{:?} before the Hello", msg.kind());
        }
        match msg {
            Message::Hello(h) => {
                // First frame of the connection, once. (Usually while
                // handshaking; a server that sends Accept before it got
                // the Hello sees the Hello after its Accept, still first.)
                assert!(matches!(state, StateKind::Handshaking | StateKind::Connected), "Hello while {state:?}");
                assert_eq!(frame.seq, 0, "Hello is not the first frame of the connection");
                assert!(!self.hello_sent, "second Hello on one connection");
                self.hello_sent = true;
                assert_eq!(
                    (h.agent_id.as_str(), h.hostname.as_str(), h.product.as_str(), h.auth_token),
                    (self.id.agent_id, self.id.hostname, PRODUCT, self.id.auth_token)
                );
                assert_eq!((h.first_unacked_seq, h.next_seq), (first_before, next_before), "Hello resume point");
                assert_eq!(h.max_frame as usize, self.rx_len);
                self.last_hello = Some((h.first_unacked_seq, h.next_seq));
                let accept = Message::Accept(Accept { next_seq: h.first_unacked_seq, max_frame: BIG_BUF as u32, retry_window_ms: 0 });
                self.replies.push(encode_message(&accept, 0));
            }
            Message::Batch(b) => {
                assert!(connected, "Batch while {state:?}");
                if let Some(max) = self.peer_max {
                    assert!(n <= max, "batch frame of {n} bytes over the server's max_frame {max}");
                }
                assert!(b.count >= 1 && b.count <= self.cfg.batch_max_records, "batch of {} records", b.count);
                assert!(b.records.len() <= self.cfg.batch_max_bytes, "batch of {} bytes", b.records.len());
                let (recs, err) = check_entries(b.records, b.base_ts);
                assert!(!err, "malformed entry in a batch");
                assert_eq!(recs.len() as u64, u64::from(b.count), "batch count");
                // A sequence number always names the same record (resends
                // are identical).
                for (seq, r) in (b.first_seq..).zip(&recs) {
                    let rec = (r.data_type, r.timestamp_ms, r.payload.to_vec());
                    match self.seq_log.get(&seq) {
                        Some(old) => assert_eq!(old, &rec, "seq {seq} sent as two different records"),
                        None => {
                            self.seq_log.insert(seq, rec);
                        }
                    }
                }
                assert!(b.first_seq >= first_before, "batch resends acked records");
                let last = b.first_seq + u64::from(b.count) - 1;
                assert!(last < agent.ring().next_seq(), "batch beyond next_seq");
                self.max_sent = Some(self.max_sent.map_or(last, |m| m.max(last)));
                self.replies.push(encode_message(&Message::Ack(Ack { up_to: last }), 0));
            }
            Message::Ping(p) => {
                assert!(connected, "Ping while {state:?}");
                self.last_ping = Some(p.nonce);
                self.ping_out = Some((p.nonce, self.max_now));
                self.ping_exact = true;
                if let Some(prev) = self.ping_log.back_mut() {
                    if prev.1 == "outstanding" {
                        prev.1 = "superseded";
                    }
                }
                log_push(&mut self.ping_log, (p.nonce, "outstanding"));
                self.replies.push(encode_message(&Message::Pong(Pong { nonce: p.nonce }), 0));
            }
            Message::Pong(_) => {
                assert!(connected || state == StateKind::Handshaking, "Pong while {state:?}");
            }
            Message::Close(_) => {
                assert!(
                    matches!(state, StateKind::Backoff | StateKind::GaveUp | StateKind::Closed),
                    "Close while {state:?}"
                );
            }
            other => panic!("the agent sent a {:?}", other.kind()),
        }
    }

    fn transmit_all(&mut self, agent: &mut Agent<'_>) -> usize {
        let mut frames = 0;
        while self.transmit(agent, BIG_BUF) > 0 {
            frames += 1;
            assert!(frames < 10_000, "poll_transmit never returns 0");
        }
        frames
    }

    fn events(&mut self, agent: &mut Agent<'_>) -> usize {
        let mut n = 0;
        loop {
            let endpoints = self.cfg.backoff.endpoints;
            let ev = agent.poll_event();
            trace!("  event {ev:?}");
            let got = ev.as_ref().and_then(Expected::of);
            let delivered = match ev {
                None => {
                    assert!(self.expect.is_empty(), "modeled events never came: {:?}", self.expect);
                    self.queue_tainted = false;
                    break;
                }
                Some(Event::Connect { endpoint } | Event::Connected { endpoint }) => {
                    assert!(endpoint < endpoints);
                    None
                }
                Some(Event::Delivered { acked_total, first_unacked_seq }) => Some((acked_total, first_unacked_seq)),
                Some(_) => None,
            };
            if let Some(got) = got {
                if self.expect.front() == Some(&got) {
                    self.expect.pop_front();
                } else {
                    assert!(self.queue_tainted, "event {got:?}, expected {:?}", self.expect.front());
                }
            }
            if let Some((acked_total, first)) = delivered {
                assert_eq!(acked_total, agent.stats().acked, "Delivered.acked_total");
                assert_eq!(first, agent.ring().first_unacked_seq(), "Delivered.first_unacked_seq");
            }
            n += 1;
            assert!(n < 100_000);
        }
        n
    }

    /// A caller that follows the call order at the latest instant must see
    /// `poll_timeout()` move past now.
    fn settle(&mut self, agent: &mut Agent<'_>) {
        self.now = self.max_now;
        if self.now >= SANE_TIME {
            return;
        }
        for _ in 0..32 {
            self.handle_timeout(agent);
            self.transmit_all(agent);
            self.events(agent);
            match agent.poll_timeout() {
                Some(t) if t.as_millis() <= self.now => {}
                _ => return,
            }
        }
        panic!(
            "busy loop: poll_timeout() = {:?} <= now = {} after 32 rounds; state {:?}, ring {:?}",
            agent.poll_timeout(),
            self.now,
            agent.state(),
            agent.ring()
        );
    }

    /// An honest server and network, until every record pushed before is
    /// acked or evicted. False if it ran out of steps before that.
    fn drain(&mut self, agent: &mut Agent<'_>) -> bool {
        self.now = self.max_now;
        if self.now >= SANE_TIME / 2 {
            return false;
        }
        let target = agent.stats().pushed;
        let start = self.now;
        // The network resets: whatever was in flight is resent on a fresh
        // connection, and replies owed on the old one are lost.
        self.replies.clear();
        agent.handle_disconnected(Instant(self.now), TransportError::Reset);
        agent.reconnect_now(Instant(self.now));
        // Connecting, the handshake and resends take no time here; records
        // never sent wait at most `flush_interval`.
        let limit = self.now + self.cfg.flush_interval.as_millis() + 10_000;
        for step in 0..3_000 {
            let s = agent.stats();
            if s.acked + s.dropped_evicted >= target {
                return true;
            }
            if self.now > limit {
                break;
            }
            if matches!(agent.state(), StateKind::GaveUp | StateKind::Closed) {
                agent.reconnect_now(Instant(self.now));
            }
            self.settle(agent);
            if agent.state() == StateKind::Connecting {
                self.connected(agent);
                continue;
            }
            if !self.replies.is_empty() {
                for r in std::mem::take(&mut self.replies) {
                    trace!("  t={} rx kind {}", self.now, r[3]);
                    let accept = (r[3] == 2).then_some(BIG_BUF);
                    self.receive(agent, &r, accept);
                }
                self.check(agent);
                continue;
            }
            trace!(
                "drain step {step}: t={} {:?} timeout {:?} ring {:?}",
                self.now,
                agent.state(),
                agent.poll_timeout(),
                agent.ring()
            );
            match agent.poll_timeout() {
                Some(t) => self.now = t.as_millis().max(self.now),
                None => panic!("drain step {step}: no timer in state {:?}", agent.state()),
            }
            self.handle_timeout(agent);
        }
        if self.now <= limit {
            // Out of steps, not of time (a tiny idle_timeout means a ping
            // per millisecond): no verdict.
            return false;
        }
        let s = agent.stats();
        panic!(
            "records not delivered by an honest server within {} ms: pushed {} before the drain, acked {}, evicted {}; state {:?}, ring {:?}",
            limit - start,
            target,
            s.acked,
            s.dropped_evicted,
            agent.state(),
            agent.ring()
        );
    }
}

fn config(s: &Setup<'_>) -> AgentConfig {
    // The agent's own heartbeat must fit a record (ConfigError::MaxRecordTooSmall).
    let max_record = MAX_HEARTBEAT_LEN + usize::from(s.max_record % 600);
    let batch_max_bytes = max_record + 25 + usize::from(s.batch_extra % 3000);
    AgentConfig {
        ring: RingConfig {
            max_record,
            policy: if s.drop_oldest { OverflowPolicy::DropOldest } else { OverflowPolicy::RejectNew },
        },
        batch_max_bytes,
        batch_max_records: u32::from(s.batch_max_records.max(1)),
        flush_interval: Duration(u64::from(s.flush_ms)),
        window_bytes: batch_max_bytes + usize::from(s.window_extra % 8192),
        heartbeat_interval: Duration(1000 + 4 * u64::from(s.heartbeat_ms)),
        idle_timeout: Duration(1 + u64::from(s.idle_ms)),
        pong_timeout: Duration(1 + u64::from(s.pong_ms)),
        connect_timeout: Duration(1 + u64::from(s.connect_ms)),
        handshake_timeout: Duration(1 + u64::from(s.handshake_ms)),
        healthy_after: Duration(u64::from(s.healthy_ms)),
        backoff: BackoffConfig {
            base: Duration(u64::from(s.backoff_base_ms)),
            cap: Duration(u64::from(s.backoff_cap_ms)),
            endpoints: 1 + s.endpoints % 4,
            attempts_per_endpoint: 1 + s.attempts % 4,
            give_up_after: u32::from(s.give_up % 8),
            fleet_window: Duration(u64::from(s.backoff_cap_ms) * u64::from(s.give_up % 3)),
        },
        rng_seed: s.rng_seed,
        // Fields added later keep their defaults until the harness varies them.
        ..AgentConfig::default()
    }
}

fn object_name<'n>(h: &Harness<'_>, obj: Obj, name: &'n str) -> &'n str {
    match obj {
        Obj::Agent => "",
        Obj::Product => PRODUCT,
        Obj::Plugin(i) if i < 200 => plugin_name(i),
        Obj::Plugin(_) => name,
        Obj::Registered(i) => {
            let registered: Vec<&'static str> = h.plugins.iter().flatten().copied().collect();
            match registered.len() {
                0 => plugin_name(i),
                n => registered[usize::from(i) % n],
            }
        }
    }
}

fn task_bytes(seq: u32, object_name: &str, data_type: u32, payload: &[u8], token: &str) -> (Vec<u8>, Known) {
    let bytes = encode_message(&Message::Task(Task { object_name: object_name.into(), data_type, payload, token: token.into() }), seq);
    let known = Known::Task(OwnedTask {
        object_name: object_name.into(),
        data_type,
        payload: payload.into(),
        token: token.into(),
    });
    (bytes, known)
}

fn config_bytes(seq: u32, name: &'static str, version: &str, payload: &[u8]) -> (Vec<u8>, Known) {
    let bytes = encode_message(&Message::Config(Config { name: name.into(), version: version.into(), payload }), seq);
    (bytes, Known::Config { name, version: version.into(), payload: payload.into() })
}

/// The frame of a downlink op, the `max_frame` if it is an Accept, and
/// what the harness knows of it.
fn down_bytes(h: &Harness<'_>, agent: &Agent<'_>, msg: &Down<'_>, seq: u32) -> (Vec<u8>, Option<usize>, Known) {
    let enc = |m: Message<'_>| encode_message(&m, seq);
    match *msg {
        Down::Accept { next, max_frame, retry_window_ms } => {
            let max_frame = match max_frame {
                MaxFrame::Roomy => BIG_BUF as u32,
                MaxFrame::Any(v) => v,
            };
            let accept = Message::Accept(Accept { next_seq: h.resolve(agent, next), max_frame, retry_window_ms });
            (enc(accept), Some(max_frame as usize), Known::Inert)
        }
        Down::Reject { code, reason, retry_after_ms } => {
            let reject = Message::Reject(Reject { code, reason: reason.into(), retry_after_ms: u32::from(retry_after_ms) });
            (enc(reject), None, Known::Inert)
        }
        Down::Ack { up_to } => (enc(Message::Ack(Ack { up_to: h.resolve(agent, up_to) })), None, Known::Inert),
        Down::AckSent { back } => {
            let up_to = h.max_sent.unwrap_or(0).saturating_sub(u64::from(back));
            (enc(Message::Ack(Ack { up_to })), None, Known::Inert)
        }
        Down::Ping { nonce } => (enc(Message::Ping(Ping { nonce })), None, Known::Inert),
        Down::Pong { echo, nonce } => {
            let nonce = if echo { h.last_ping.unwrap_or(nonce) } else { nonce };
            (enc(Message::Pong(Pong { nonce })), None, Known::Pong(nonce))
        }
        Down::PongPast { back } => {
            let nonce = log_back(&h.ping_log, back).map_or(0, |p| p.0);
            (enc(Message::Pong(Pong { nonce })), None, Known::Pong(nonce))
        }
        Down::Task { obj, name, shutdown, data_type, payload, token } => {
            let data_type = if shutdown { data_type::SHUTDOWN_TASK } else { data_type };
            let few;
            let token = match token {
                Token::Any(t) => t,
                Token::Few(i) => {
                    few = format!("t{}", i % 16);
                    few.as_str()
                }
            };
            let (bytes, known) = task_bytes(seq, object_name(h, obj, name), data_type, payload, token);
            (bytes, None, known)
        }
        Down::TaskAgain { back, obj, data_type, payload } => {
            let token = log_back(&h.token_log, back).map_or("t", String::as_str);
            let (bytes, known) = task_bytes(seq, object_name(h, obj, "nobody"), data_type, payload, token);
            (bytes, None, known)
        }
        Down::Config { name, version, payload } => {
            let name = ["net", "log", "scan", "a", "b", "c"][usize::from(name % 6)];
            let (bytes, known) = config_bytes(seq, name, version, payload);
            (bytes, None, known)
        }
        Down::ConfigAgain { back, payload } => {
            let (name, version) = log_back(&h.config_log, back).map_or(("net", ""), |(n, v)| (*n, v.as_str()));
            let (bytes, known) = config_bytes(seq, name, version, payload);
            (bytes, None, known)
        }
        Down::Close { code, reason } => (enc(Message::Close(Close { code, reason: reason.into() })), None, Known::Inert),
        Down::Any(ref m) => {
            let msg = m.msg();
            let accept = match msg {
                Message::Accept(a) => Some(a.max_frame as usize),
                _ => None,
            };
            (enc(msg), accept, Known::Opaque)
        }
        Down::Frame { version, kind, flags, body } => (raw_frame(version, kind, flags, seq, body), None, Known::Opaque),
    }
}

fn run(input: &Input<'_>) {
    let s = &input.setup;
    let cfg = config(s);
    let rx_len = 64 + usize::from(s.rx_len % 4033);
    let mut ring = vec![0u8; usize::from(s.ring_len % 8193)];
    let mut rx = vec![0u8; rx_len];
    let mut events = vec![0u8; usize::from(s.events_len % 1025)];
    let id = Identity {
        agent_id: s.agent_id,
        hostname: s.hostname,
        product: PRODUCT,
        version: "0.1",
        intranet_ipv4: &[10, 0, 0, 1],
        intranet_ipv6: &[],
        extranet_ipv4: &[],
        extranet_ipv6: &[],
        auth_token: s.auth_token,
    };
    let storage = AgentStorage { ring: &mut ring, rx: &mut rx, events: &mut events };
    let Ok(mut agent) = Agent::new(cfg, id, storage) else { return };
    let start = u64::from(s.start_ms);
    let mut h = Harness {
        cfg,
        id,
        rx_len,
        now: start,
        max_now: start,
        tx_seq: None,
        peer_max: None,
        last_hello: None,
        hello_sent: false,
        last_ping: None,
        max_sent: None,
        seq_log: BTreeMap::new(),
        app_pushed: Vec::new(),
        replies: Vec::new(),
        out: vec![0u8; BIG_BUF],
        store: Vec::new(),
        rx_clean: true,
        plugins: [None; MAX_PLUGINS],
        recent_tasks: VecDeque::new(),
        tasks_exact: true,
        token_log: VecDeque::new(),
        configs: [(0, 0); MAX_CONFIGS],
        config_victim: 0,
        configs_exact: true,
        last_config: None,
        config_log: VecDeque::new(),
        expect: VecDeque::new(),
        queue_tainted: false,
        ping_out: None,
        ping_exact: true,
        ping_log: VecDeque::new(),
    };
    let mut last_ts = start;
    let mut payload = Vec::new();
    for op in input.ops.iter().take(300) {
        trace!("t={} {:?}: {op:?}", h.now, agent.state());
        match *op {
            Op::Push { data_type: dt, ts, len, fill } => {
                let dt = match dt {
                    DataType::Heartbeat => data_type::AGENT_HEARTBEAT,
                    DataType::TaskResult => data_type::TASK_RESULT,
                    DataType::App(t) => 2000 + u32::from(t % 8),
                    DataType::Any(t) => t,
                };
                last_ts = last_ts.wrapping_add(ts as i64 as u64);
                payload.clear();
                payload.extend((0..usize::from(len) % (cfg.ring.max_record + 8)).map(|i| fill ^ i as u8));
                h.max_now = h.max_now.max(h.now);
                if agent.push(Instant(h.now), &Record::new(dt, last_ts, &payload)).is_ok() && APP_TYPES.contains(&dt) {
                    h.app_pushed.push((dt, last_ts, payload.clone()));
                }
            }
            Op::Advance(d) => {
                h.now = h.now.saturating_add(u64::from(d));
                h.handle_timeout(&mut agent);
            }
            Op::AdvanceLong(d) => {
                h.now = h.now.saturating_add(u64::from(d));
                h.handle_timeout(&mut agent);
            }
            Op::Back(d) => {
                h.now = h.now.saturating_sub(u64::from(d));
                h.handle_timeout(&mut agent);
            }
            Op::Jump(t) => {
                h.now = t;
                h.handle_timeout(&mut agent);
            }
            Op::ToDeadline => {
                if let Some(t) = agent.poll_timeout() {
                    h.now = h.now.max(t.as_millis());
                }
                h.handle_timeout(&mut agent);
            }
            Op::Connected => h.connected(&mut agent),
            Op::Handshake => {
                if agent.state() == StateKind::Backoff {
                    if let Some(t) = agent.poll_timeout() {
                        h.now = h.now.max(t.as_millis());
                    }
                    h.handle_timeout(&mut agent);
                }
                if agent.state() == StateKind::Connecting {
                    h.connected(&mut agent);
                }
                if agent.state() == StateKind::Handshaking {
                    h.transmit_all(&mut agent);
                    if let Some((first, _)) = h.last_hello {
                        let accept = Message::Accept(Accept { next_seq: first, max_frame: BIG_BUF as u32, retry_window_ms: 0 });
                        let bytes = encode_message(&accept, 0);
                        h.deliver(&mut agent, [&bytes, &[]], Some(BIG_BUF), true, &Known::Inert);
                    }
                }
            }
            Op::Disconnected(e) => {
                let error = match e % 6 {
                    0 => TransportError::Closed,
                    1 => TransportError::Refused,
                    2 => TransportError::Reset,
                    3 => TransportError::TimedOut,
                    4 => TransportError::Unreachable,
                    _ => TransportError::Other,
                };
                h.max_now = h.max_now.max(h.now);
                agent.handle_disconnected(Instant(h.now), error);
                assert_eq!(agent.last_transport_error(), Some(error));
            }
            Op::RecvRaw(bytes) => h.deliver(&mut agent, [bytes, &[]], None, false, &Known::Opaque),
            Op::Recv { ref msg, seq, garbage, split, corrupt } => {
                let (mut bytes, accept, known) = down_bytes(&h, &agent, msg, seq);
                // The frame alone and unchanged, and the decoder takes it.
                let whole = garbage.is_empty() && corrupt.is_none() && bytes.len() <= h.rx_len;
                if let Some(c) = corrupt {
                    let i = usize::from(c) % bytes.len();
                    bytes[i] ^= 0x5A;
                }
                let mut wire = garbage.to_vec();
                wire.extend_from_slice(&bytes);
                let cut = usize::from(split) % (wire.len() + 1);
                h.deliver(&mut agent, [&wire[..cut], &wire[cut..]], accept, whole, &known);
            }
            Op::Transmit { buf } => {
                h.transmit(&mut agent, usize::from(buf));
            }
            Op::TransmitAll => {
                h.transmit_all(&mut agent);
            }
            Op::Events => {
                h.events(&mut agent);
            }
            Op::Settle => h.settle(&mut agent),
            Op::Close => {
                h.max_now = h.max_now.max(h.now);
                agent.close(Instant(h.now));
                assert_eq!(agent.state(), StateKind::Closed);
            }
            Op::ReconnectNow => {
                h.max_now = h.max_now.max(h.now);
                agent.reconnect_now(Instant(h.now));
            }
            Op::TaskResult { token, status, message } => {
                h.max_now = h.max_now.max(h.now);
                let _ = agent.task_result(Instant(h.now), token, status, message);
            }
            Op::RegisterPlugin(i) => {
                let name = plugin_name(i);
                let free = h.plugins.iter().position(Option::is_none);
                // A plugin heartbeat is name, version (length-prefixed), pid
                // (up to 5 bytes) and status (1): it must fit 384 bytes.
                let field = |n: usize| if n < 128 { 1 + n } else { 2 + n };
                let too_long = field(name.len()) + field("1.0".len()) + 5 + 1 > 384;
                let want = if h.plugins.contains(&Some(name)) {
                    Err(PluginError::Duplicate)
                } else if too_long {
                    Err(PluginError::TooLong)
                } else {
                    free.map(|i| PluginId(i as u8)).ok_or(PluginError::Full)
                };
                assert_eq!(agent.register_plugin(name, "1.0"), want, "register_plugin({name:?})");
                if let Ok(PluginId(i)) = want {
                    h.plugins[usize::from(i)] = Some(name);
                }
            }
            Op::UnregisterPlugin(i) => {
                let slot = h.plugins.get_mut(usize::from(i % 6));
                let want = if slot.as_ref().is_some_and(|s| s.is_some()) { Ok(()) } else { Err(PluginError::UnknownId) };
                assert_eq!(agent.unregister_plugin(PluginId(i % 6)), want, "unregister_plugin({})", i % 6);
                if let Some(s) = slot {
                    *s = None;
                }
            }
            Op::SetPluginStatus { id, pid, status } => {
                let status = match status % 5 {
                    0 => PluginStatus::Starting,
                    1 => PluginStatus::Running,
                    2 => PluginStatus::Stopping,
                    3 => PluginStatus::Stopped,
                    _ => PluginStatus::Error,
                };
                let known = h.plugins.get(usize::from(id % 6)).is_some_and(Option::is_some);
                let want = if known { Ok(()) } else { Err(PluginError::UnknownId) };
                assert_eq!(agent.set_plugin_status(PluginId(id % 6), pid, status), want);
            }
            Op::SetClockOffset(o) => agent.set_clock_offset(o),
        }
        h.sync(&agent);
        h.check(&agent);
    }
    if h.drain(&mut agent) {
        // At least once, in order: the application's records as the server
        // saw them (by sequence number) are the ones pushed, all of them
        // unless the ring evicted some.
        let delivered: Vec<&AppRecord> = h.seq_log.values().filter(|r| APP_TYPES.contains(&r.0)).collect();
        let pushed: Vec<&AppRecord> = h.app_pushed.iter().collect();
        trace!("drained: {} app records pushed, {} delivered", pushed.len(), delivered.len());
        if cfg.ring.policy == OverflowPolicy::RejectNew {
            assert_eq!(delivered, pushed, "records delivered != records pushed");
        } else {
            let mut it = pushed.iter();
            for d in &delivered {
                assert!(it.any(|p| p == d), "delivered record {d:?} not pushed, or out of order");
            }
        }
    }
    h.check(&agent);
}

fuzz_target!(|input: Input<'_>| run(&input));
