//! Deterministic fleet simulation: several [`Agent`]s against the real
//! collector's sans-IO code (`edge_collector::{session, ledger, admission}`
//! and its line writer, wired as `conn.rs` wires them:
//! `support/collector.rs`) or, with `EDGE_SIM_COLLECTOR=peer`, against the
//! shared test collector (agent-core's `tests/support/peer.rs`, the same
//! peer the agent and driver tests use), over a faulty simulated network, on
//! one simulated clock.
//!
//! # Model
//!
//! * **Clock.** One `u64` millisecond clock per run. Nothing reads the OS
//!   clock. The driver is event-driven: it jumps straight to the earliest of
//!   every agent's `poll_timeout()`, the next network delivery, connect
//!   outcome, fault, app push or task answer. It never steps or spins.
//! * **Agents.** 3 to 8 per seed, each with its own configuration drawn from
//!   the seed: both [`OverflowPolicy`] values, small (one to a few records)
//!   and large (8-64 KiB) rings, `max_record` 384-1024, batch, window and
//!   flush settings, heartbeat interval 1-5 s, idle/pong/connect/handshake
//!   timeouts, backoff base/cap, 1-3 endpoints, sometimes a give-up limit
//!   (the app then calls `reconnect_now` after a while), 0-2 plugins, event
//!   queues from 48 bytes (a couple of tasks) up. Each is driven in the documented call order: one input,
//!   then `poll_transmit` until 0, then `poll_event` until `None`, then
//!   `poll_timeout`. Apps push records with unique, self-describing payloads
//!   at random times (sometimes in bursts, sometimes too large, sometimes
//!   with timestamps going backwards) and answer every task after 0-500 ms.
//! * **Network.** Each connection carries two byte streams. A write arrives
//!   after the link's latency plus jitter, in order, sometimes split into
//!   chunks delivered a millisecond apart; everything due at one instant is
//!   handed over in one `handle_received` (so frames also merge).
//! * **Collector (default: real).** edge-collector's own code
//!   ([`Collector`]): `first_frame` judges the Hello, the `Admission` (its
//!   settings drawn per seed: 2-40 handshakes/s or unlimited, up to 16
//!   reservations, slots at most 2 s ahead) answers Busy with a slot or
//!   admits, the ledger's `raise` gives the Accept's resume point,
//!   `Session::on_frame` judges every later frame (a gap: Close 1), the
//!   ledger's `plan` decides what of a Batch is written (duplicates
//!   skipped) and the written JSON lines are parsed back into the sink
//!   model, checked against what the agent sent; only then the cumulative
//!   Ack, and every Ack is checked against the sink (all records up to it
//!   are there). A newer connection of an agent replaces an older one
//!   (Close 0). A restart rebuilds the ledger from the sink (the file
//!   sink) or, when it loses the index, starts it empty (the stdout sink:
//!   the agent resends, the lines are written again, checked identical).
//!   It has neither of the peer's habits below, so it is the naive case;
//!   Busy faults do nothing to it (its admission decides). Not modeled:
//!   its own Ping/idle timers, group commit latency, the registry.
//! * **Collector (`EDGE_SIM_COLLECTOR=peer`).** The test peer ([`Peer`]), which follows PROTOCOL.md
//!   literally: one [`FrameDecoder`](agent_core::decoder::FrameDecoder) per
//!   connection (a few slots per agent; when all are taken the oldest
//!   lingering connection is reset); answers Hello with Accept (its stored
//!   resume point for that agent, its `max_frame`), or with Reject(Busy,
//!   `retry_after_ms`) while a busy fault lasts; Ping with Pong; stores a
//!   Batch's records if `first_seq <= next expected` (lower sequence numbers
//!   are duplicates: dropped; the simulation checks them byte-identical) and
//!   acks up to the highest contiguous sequence number; a Batch beyond that
//!   is a gap: the collector closes the connection (Close, protocol error).
//!   Now and then the simulation has it send Tasks (to the agent, a plugin or
//!   an unknown target) and Configs, sometimes several at once; after every
//!   Accept (with either collector) it resends each task whose result it has
//!   not stored, in the order first sent, as the collector's registry
//!   does. What it
//!   stored survives restarts. Every frame it receives comes back as a
//!   [`Note`] the simulation checks (below); a protocol error by the agent
//!   fails the run.
//!
//!   Two collector habits (the peer's `close_on_damage` and
//!   `repeat_ack_after_pong`) speed recovery from corruption, which breaks
//!   the protocol's premise of a reliable stream: it closes a connection whose
//!   uplink showed damage (bytes skipped or a bad CRC in its decoder: a frame
//!   may be lost), and it repeats its latest Ack after every Pong (acks are
//!   cumulative). `EDGE_SIM_NAIVE_COLLECTOR=1` turns both off: then a lost
//!   Batch or Ack is found by the agent's own `ack_timeout` (before that
//!   timeout existed, such an agent waited forever on a connection that
//!   answered its Pings, e.g. seed 187), and the drain bound grows by one
//!   `ack_timeout` for an agent whose last connection was damaged. CI runs
//!   the real collector and the peer with its habits (the real collector
//!   is naive in both respects).
//!
//! # Faults (only before `F`, the end of the fault phase, 30-120 s)
//!
//! * **cut**: the agent's connection dies; the agent is told after 1-100 ms
//!   (RST) or never (it must notice by itself: ping/pong timeout);
//! * **refuse**: connects to one or all endpoints of an agent are refused
//!   (RST) or black-holed (the agent's `connect_timeout` must fire);
//! * **corrupt**: writes on a link (either direction) get bits flipped or
//!   garbage inserted (sometimes starting with the frame magic);
//! * **stall**: a link direction delivers nothing until the stall ends,
//!   then everything queued;
//! * **restart**: every collector connection dies (RST or silently), the
//!   collector refuses or black-holes connects for 0.1-5 s; sometimes it
//!   comes back having lost its resume index, so its next Accept to each
//!   agent names the agent's own `first_unacked_seq` and the agent resends
//!   records the collector already has;
//! * **busy**: the collector answers Hello with Reject(Busy,
//!   `retry_after_ms` 0-2000).
//!
//! Connections closed by the agent still deliver what was written before
//! the close (like TCP's orderly close), so batches of an old connection can
//! reach the collector after a new connection started: the source of
//! legitimate duplicates.
//!
//! # What is asserted
//!
//! * After every call: `pushed == acked + dropped_evicted + ring.len()`;
//!   every `push`/`task_result` changes exactly the counter its result says
//!   (`Ok`: pushed, `Full`: dropped_full, `TooLarge`: dropped_too_large);
//!   `ring.first_unacked_seq() <= collector's next <= ring.next_seq()`; no
//!   ack beyond what was sent (`protocol_errors == 0`); a frame is only
//!   written when a transport is up, and never above the collector's
//!   `max_frame`; lifecycle events match the state.
//! * The collector receives each agent's batches in order with dense
//!   sequence numbers (on a connection without injected corruption every
//!   Batch starts where the previous one ended, or at most where the
//!   latest Ack on it pointed (it may free records not yet resent here),
//!   frame counters count 0, 1,
//!   2, ...; a gap only happens after corruption); a duplicate is only ever
//!   received on another connection than the original and is identical;
//!   every stored record is one the agent pushed (app records are checked
//!   against the driver's log byte for byte, app records and app task
//!   results arrive in push order, heartbeats decode, task results answer
//!   tasks the collector sent, with the right status; a task has a second
//!   result only if it was resent, after the agent forgot its token: it
//!   remembers the last 8, counted as `double_results`).
//! * Every Ack the real collector sends is durable: every record up to it
//!   is in the sink model, parsed back from the lines the ledger wrote, each
//!   line checked against the record the agent sent under that number.
//! * Tasks (issue 15, item 8): when the run would end, a final phase resends
//!   every task still without a stored result, one at a time per agent (a
//!   small ring holds one answer), up to 5 times each, 1 s plus two link
//!   latencies apart; each must be answered. A result evicted under
//!   `DropOldest` or refused in a full ring before it was sent must not
//!   leave its task unanswered for good (before the fix the agent ignored
//!   such resends: seeds 1 and 2 fail). Drops during this phase are allowed
//!   (its answers may fill a small ring); the drain and heartbeat checks
//!   below end where it starts.
//! * Heartbeats: every agent (and plugin) heartbeat timestamp lies on the
//!   agent's schedule `boot + k * interval`; two heartbeats stored one after
//!   the other are exactly one interval apart unless the agent refused or
//!   evicted a record in between (then a whole number of intervals). After
//!   the drain, no record is dropped and every scheduled heartbeat arrives.
//! * Backoff: after every failure `last_retry()` has
//!   `ceiling == min(cap, base * 2^(n-1))` for the `n`-th consecutive failure
//!   (the count kept by the driver, reset after `healthy_after` connected),
//!   `delay <= ceiling`, the endpoint rotation the config implies, and the
//!   next `Connect` event comes exactly `max(delay, retry_after)` later;
//!   `GaveUp` exactly at the give-up limit.
//! * Timers: after `handle_timeout(t)` and draining `poll_transmit(t)`, no
//!   timer is due at `t` (`Agent::next_timer` is later, or names the
//!   timer that broke it).
//! * No busy loop: after `handle_timeout(t)` and its outputs,
//!   `poll_timeout()` may be `<= t` at most [`SAME_INSTANT_TIMEOUTS`] times
//!   in a row (a zero jitter draw legitimately makes a backoff deadline due
//!   at once); one round of `poll_transmit` yields at most
//!   `MAX_INFLIGHT_BATCHES + 4` frames (Close, Hello, Pong, Ping, batches);
//!   and within any simulated second an agent gets at most
//!   `16 + 1000 / flush_interval_ms + 2 * (inputs this second and the one
//!   before)` timeouts: periodic timers (heartbeat, idle ping, pong, healthy,
//!   flush) fire at most that often, and every other deadline is armed by an
//!   input (push, received bytes, connect, disconnect) or by a timeout chain
//!   (connect timeout, then backoff) whose links are at least 500 ms apart;
//!   `poll_transmit` calls in a second are at most `MAX_FRAMES_PER_ROUND + 1`
//!   per input or timeout of that second.
//! * Drain: once faults stop at `F`, every agent must be connected with an
//!   empty ring, no task answer pending and everything it accepted at the
//!   collector (or, under `DropOldest`, counted evicted) within
//!
//!   ```text
//!   D = detect + wait + attempt + drain + lat + k * cycle
//!   cycle   = idle + 2*pong + 2*lat
//!   detect  = max(cycle, connect_timeout, handshake_timeout,
//!                 heartbeat + flush + 2*rtt)
//!   wait    = max(backoff cap, 2000 (max retry_after), the app's give-up delay)
//!   attempt = connect latency + rtt
//!   drain   = (rounds + 2) * (flush + rtt + 1) + 500 (task answer delay)
//!   rounds  = ring capacity / bytes one round trip surely carries
//!             (min of window - max_entry, 8 batches, 8 * batch_max_records
//!              of the smallest record)
//!   ```
//!
//!   with `lat` the link's worst one-way latency, `rtt = 2*lat + 1`, and `k`
//!   the number of corrupted writes on the downlink of the connection the
//!   agent holds at `F` (usually 0).
//!   Why: at `F` an agent is either connected (a dead link is noticed within
//!   `idle + 2*pong` of the last frame, a lost Ack is repeated after the next
//!   Ping, a gap left by corruption shows within one heartbeat interval),
//!   connecting, handshaking (timeouts), in backoff (at most `cap` or
//!   `retry_after`) or gave up (the app reconnects after its delay); after
//!   that one failure the next attempt succeeds, and the ring drains one
//!   window per round trip. The `k` term: a corrupted length field makes the
//!   agent's decoder wait for up to `max_frame` bytes, holding back the real
//!   frames behind it; when enough bytes arrive they come out late and count
//!   as proof of life, so each such bogus header can postpone the detection
//!   of a dead link by one liveness cycle.
//!
//! # Running and replaying
//!
//! `cargo test -p edge-sim --release --test simulation` runs
//! `EDGE_SIM_SEEDS` seeds (default 200; CI uses 2000) on up to
//! `EDGE_SIM_THREADS` threads (default: available parallelism, at most 4).
//! Each seed fully determines its run (agent-core's SplitMix64, the agents'
//! `rng_seed` drawn from it). A failing seed prints `EDGE_SIM_SEED=<n>`;
//! `EDGE_SIM_SEED=<n> cargo test -p edge-sim --release --test simulation
//! -- --nocapture` replays exactly that seed and prints its summary; add
//! `EDGE_SIM_TRACE=<agent index>` to print that agent's inputs, frames and
//! events. `EDGE_SIM_KEEP_GOING=1` runs every seed despite failures. 2000
//! seeds take about 10 s in release on two cores.

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use agent_core::agent::{Agent, AgentConfig, AgentStorage, Identity, StateKind, BATCH_HEADER_MAX, MAX_TASK_RESULT_LEN};
use agent_core::backoff::BackoffConfig;
use agent_core::events::{DisconnectReason, Event, TaskTarget, TransportError};
use agent_core::frame::{MAGIC, OVERHEAD, VERSION};
use agent_core::heartbeat::{AgentHeartbeat, AgentStats, MAX_HEARTBEAT_LEN};
use agent_core::message::{task_status, CloseCode, TaskResult};
use agent_core::plugin::{PluginHeartbeat, PluginId, PluginStatus};
use agent_core::record::{data_type, MAX_ENTRY_HEADER};
use agent_core::ring::{OverflowPolicy, PushError, RingConfig, MAX_INFLIGHT_BATCHES};
use agent_core::{Duration, Instant, Record};

mod support;
use edge_collector::admission::AdmissionConfig;
use support::collector::{Backend, Collector, CollectorConfig};
use support::peer::{Answer, BatchOutcome, Note, Peer, PeerConfig, Push};

const DEFAULT_SEEDS: u64 = 200;
const PRODUCT: &str = "edge";
const PLUGIN_NAMES: [&str; 2] = ["scanner", "updater"];
/// App records use data types from here up (never reserved ones).
const APP_TYPE_BASE: u32 = 2000;
/// An app record's payload starts with its index (8 bytes) and the agent's.
const APP_HEADER: usize = 9;
/// Longest time the app takes to answer a task.
const ANSWER_DELAY_MAX: u64 = 500;
/// Resends of one task in the final phase before it counts as unanswered.
const FINAL_RESENDS: u32 = 5;
/// Wait after a final-phase resend (plus two link latencies): the app's
/// answer delay, a flush interval (at most 200 ms) and room.
const FINAL_RESEND_WAIT: u64 = ANSWER_DELAY_MAX + 200 + 300;
/// Largest `Reject.retry_after_ms` the collector sends.
const RETRY_AFTER_MAX: u64 = 2000;
/// Smallest entry any record of this simulation takes (a task result).
const MIN_ENTRY: usize = 10;
/// A round of `poll_transmit`: Close, Hello, Pong, Ping and a window of batches.
const MAX_FRAMES_PER_ROUND: usize = MAX_INFLIGHT_BATCHES + 4;
/// `handle_timeout` calls allowed at one instant before it counts as a busy loop.
const SAME_INSTANT_TIMEOUTS: u32 = 3;
/// Collector-side connection slots (decoders) per agent.
const SLOTS_PER_AGENT: usize = 4;
/// Steps after which a run counts as not terminating.
const MAX_STEPS: u64 = 20_000_000;

// ---- deterministic randomness ---------------------------------------------

/// The simulation's only source of randomness: agent-core's SplitMix64.
#[derive(Clone, Debug)]
struct SplitMix(agent_core::rng::Rng);

impl SplitMix {
    fn new(seed: u64) -> Self {
        SplitMix(agent_core::rng::Rng::new(seed))
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in `0..n` (0 when `n == 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn range_usize(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as u64, hi as u64) as usize
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

// ---- per-agent plan ---------------------------------------------------------

#[derive(Clone, Debug)]
struct Plan {
    cfg: AgentConfig,
    ring_cap: usize,
    rx_len: usize,
    ev_len: usize,
    boot: u64,
    clock_offset: u64,
    /// Base one-way latency and jitter of the agent's links.
    lat: u64,
    jitter: u64,
    /// Longest time a connect takes to succeed or be refused.
    conn_lat: u64,
    /// Mean gap between app pushes.
    push_gap: u64,
    plugins: usize,
    /// How long the app waits after `GaveUp` before `reconnect_now`.
    gaveup_delay: u64,
}

impl Plan {
    fn random(rng: &mut SplitMix) -> Plan {
        let max_record = rng.range_usize(MAX_HEARTBEAT_LEN, 1024);
        let max_entry = max_record + MAX_ENTRY_HEADER;
        let policy = if rng.chance(500) { OverflowPolicy::DropOldest } else { OverflowPolicy::RejectNew };
        let ring_cap = if rng.chance(500) { rng.range_usize(max_entry, 2048) } else { rng.range_usize(8192, 65536) };
        let batch_max_bytes = rng.range_usize(max_entry, 4096);
        let batch_max_records = [1u32, 3, 16, 64, 256][rng.below(5) as usize];
        let window_bytes = batch_max_bytes * rng.range_usize(1, 4);
        let base = rng.range(20, 500);
        let give_up_after = if rng.chance(200) { rng.range(3, 10) as u32 } else { 0 };
        let cfg = AgentConfig {
            ring: RingConfig { max_record, policy },
            batch_max_bytes,
            batch_max_records,
            flush_interval: Duration(rng.range(10, 200)),
            window_bytes,
            heartbeat_interval: Duration(rng.range(1000, 5000)),
            idle_timeout: Duration(rng.range(1500, 10_000)),
            pong_timeout: Duration(rng.range(500, 3000)),
            ack_timeout: Duration(rng.range(3000, 20_000)),
            connect_timeout: Duration(rng.range(500, 3000)),
            handshake_timeout: Duration(rng.range(1000, 3000)),
            healthy_after: Duration(rng.range(1000, 10_000)),
            backoff: BackoffConfig {
                base: Duration(base),
                cap: Duration(rng.range(base.max(1000), 5000)),
                endpoints: rng.range(1, 3) as u8,
                attempts_per_endpoint: rng.range(1, 3) as u8,
                give_up_after,
                fleet_window: Duration(if rng.chance(300) { rng.range(100, 10_000) } else { 0 }),
            },
            rng_seed: rng.next_u64(),
            ..AgentConfig::default()
        };
        Plan {
            cfg,
            ring_cap,
            rx_len: rng.range_usize(256, 2048),
            ev_len: if rng.chance(300) { rng.range_usize(48, 160) } else { rng.range_usize(160, 1024) },
            boot: rng.range(0, 2000),
            clock_offset: 1_700_000_000_000 + rng.range(0, 1_000_000_000),
            lat: rng.range(1, 80),
            jitter: rng.range(0, 20),
            conn_lat: rng.range(1, 100),
            push_gap: rng.range(30, 1000),
            plugins: rng.range_usize(0, 2),
            gaveup_delay: rng.range(0, 2000),
        }
    }

    /// Worst one-way latency of a byte on an unstalled link.
    fn lat_max(&self) -> u64 {
        self.lat + self.jitter + 2
    }

    /// Longest a connection that receives nothing takes to be declared dead.
    fn liveness_cycle(&self) -> u64 {
        let c = &self.cfg;
        c.idle_timeout.as_millis() + 2 * c.pong_timeout.as_millis() + 2 * self.lat_max()
    }

    /// The drain bound `D` of the module docs, in ms after the faults stop.
    fn drain_bound(&self, server_max: usize) -> u64 {
        let c = &self.cfg;
        let ms = |d: Duration| d.as_millis();
        let lat = self.lat_max();
        let rtt = 2 * lat + 1;
        let flush = ms(c.flush_interval);
        let detect = self
            .liveness_cycle()
            .max(ms(c.connect_timeout))
            .max(ms(c.handshake_timeout))
            .max(ms(c.heartbeat_interval) + flush + 2 * rtt);
        let wait = ms(c.backoff.cap).max(RETRY_AFTER_MAX).max(self.gaveup_delay);
        let attempt = self.conn_lat + rtt;
        let max_entry = c.ring.max_record + MAX_ENTRY_HEADER;
        let batch_bytes = c.batch_max_bytes.min(server_max - OVERHEAD - BATCH_HEADER_MAX);
        let per_round = c
            .window_bytes
            .saturating_sub(max_entry)
            .min(MAX_INFLIGHT_BATCHES * (batch_bytes + 1 - max_entry))
            .min(MAX_INFLIGHT_BATCHES * c.batch_max_records as usize * MIN_ENTRY)
            .max(MIN_ENTRY);
        let rounds = (self.ring_cap / per_round) as u64;
        let drain = (rounds + 2) * (flush + rtt + 1) + ANSWER_DELAY_MAX;
        detect + wait + attempt + drain + lat
    }
}

/// The payload of app record `n` of agent `a`, `len` bytes long.
fn app_payload(a: usize, n: u64, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[..8].copy_from_slice(&n.to_le_bytes());
    p[8] = a as u8;
    for (i, b) in p.iter_mut().enumerate().skip(APP_HEADER) {
        *b = (n.wrapping_mul(131) as usize + i * 7 + a) as u8;
    }
    p
}

/// The backoff rule of PROTOCOL.md (*Reconnect*), computed independently
/// of the crate: `min(cap, max(floor, (failing_for - 5 min) / 32))` with the floor the
/// fleet window (at least base) or `base * 2^(weight-1)`.
fn expected_ceiling(b: &BackoffConfig, weight: u32, failing_for: u64, advice: u32) -> u64 {
    let (base, cap) = (u128::from(b.base.as_millis()), u128::from(b.cap.as_millis()));
    let window = if advice > 0 { u128::from(advice) } else { u128::from(b.fleet_window.as_millis()) }.min(cap);
    let floor = if window > 0 {
        window.max(base)
    } else {
        let mut c = base;
        for _ in 1..weight {
            if c >= cap {
                break;
            }
            c *= 2;
        }
        c
    };
    floor.max(u128::from(failing_for.saturating_sub(5 * 60 * 1000)) / 32).min(cap) as u64
}

// ---- faults -----------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// Agent to server.
    Up,
    /// Server to agent.
    Down,
}

#[derive(Clone, Copy, Debug)]
enum FaultKind {
    Cut { agent: usize, notify: Option<u64> },
    Refuse { agent: usize, endpoint: Option<u8>, blackhole: bool },
    Corrupt { agent: usize, dir: Option<Dir>, per_mille: u64 },
    Stall { agent: usize, dir: Option<Dir> },
    Restart { lose_index: bool, blackhole: bool },
    Busy { retry_after: u32 },
}

#[derive(Clone, Copy, Debug)]
struct Fault {
    start: u64,
    end: u64,
    kind: FaultKind,
}

fn gen_faults(rng: &mut SplitMix, plans: &[Plan], fault_end: u64) -> Vec<Fault> {
    let chaos = rng.below(5); // 0: a fault-free run
    let count = chaos * (fault_end / 10_000) * rng.range(1, 3);
    let n = plans.len() as u64;
    let mut faults = Vec::new();
    for _ in 0..count {
        let start = rng.range(500, fault_end - 500);
        let agent = rng.below(n) as usize;
        let dir = match rng.below(3) {
            0 => Some(Dir::Up),
            1 => Some(Dir::Down),
            _ => None,
        };
        let (kind, dur) = match rng.below(100) {
            0..=29 => (FaultKind::Cut { agent, notify: rng.chance(700).then(|| rng.range(1, 100)) }, 0),
            30..=44 => {
                let eps = u64::from(plans[agent].cfg.backoff.endpoints);
                let endpoint = rng.chance(500).then(|| rng.below(eps) as u8);
                (FaultKind::Refuse { agent, endpoint, blackhole: rng.chance(300) }, rng.range(500, 15_000))
            }
            45..=59 => (FaultKind::Corrupt { agent, dir, per_mille: rng.range(50, 500) }, rng.range(200, 10_000)),
            60..=74 => (FaultKind::Stall { agent, dir }, rng.range(200, 12_000)),
            75..=86 => (
                FaultKind::Restart { lose_index: rng.chance(400), blackhole: rng.chance(300) },
                rng.range(100, 5000),
            ),
            _ => (FaultKind::Busy { retry_after: rng.range(0, RETRY_AFTER_MAX) as u32 }, rng.range(500, 5000)),
        };
        faults.push(Fault { start, end: (start + dur).min(fault_end), kind });
    }
    faults.sort_by_key(|f| f.start);
    faults
}

// ---- network ------------------------------------------------------------------

#[derive(Default)]
struct Link {
    q: VecDeque<(u64, Vec<u8>)>,
    last_at: u64,
}

impl Link {
    fn head(&self) -> Option<u64> {
        self.q.front().map(|c| c.0)
    }
    /// Everything due at `now`, concatenated.
    fn take_due(&mut self, now: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while self.q.front().is_some_and(|c| c.0 <= now) {
            out.extend_from_slice(&self.q.pop_front().unwrap().1);
        }
        out
    }
    fn postpone(&mut self, until: u64) {
        for c in &mut self.q {
            c.0 = c.0.max(until);
        }
        self.last_at = self.last_at.max(until);
    }
}

struct Conn {
    id: u64,
    agent: usize,
    endpoint: u8,
    up: Link,
    down: Link,
    /// The agent's transport (`Sim::conn` names this connection).
    agent_open: bool,
    /// The collector holds the socket (and a decoder slot).
    server_open: bool,
    /// Cut: nothing is delivered any more, either way.
    dead: bool,
    /// The agent closed: the collector sees EOF once `up` is drained.
    up_fin: bool,
    /// When the agent learns the transport is gone (RST or EOF).
    notify_at: Option<u64>,
    /// The collector accepted the Hello, resuming at `accept_next` (the
    /// collector's own session state is the peer's: `Peer::conn`).
    accepted: bool,
    accept_next: u64,
    up_corrupted: bool,
    /// Writes corrupted on the downlink (each may leave a bogus frame
    /// header in the agent's decoder).
    down_corruptions: u64,
    next_unsolicited: u64,
}

// ---- collector ------------------------------------------------------------------

/// What the simulation checks about one agent's stored records beyond
/// what the peer keeps (records, duplicates, gaps: [`Peer::agent`]).
#[derive(Default)]
struct Checks {
    /// Tasks sent: token -> whether the target exists on the agent.
    tasks: HashMap<String, bool>,
    /// Tasks sent whose result the collector has not stored yet, in the
    /// order sent: resent after every Accept (as the collector's registry
    /// does) and once more after the drain.
    open: Vec<(String, Push)>,
    /// Tokens resent at least once.
    resent: HashSet<String>,
    /// Results stored for a task that already had one (a resend after the
    /// agent forgot the token: it remembers the last 8).
    double_results: u64,
    results: HashSet<String>,
    ok_results: HashSet<String>,
    app_seen: HashSet<u64>,
    last_ord: Option<u64>,
    /// Generation instants (agent clock) of the agent heartbeats stored.
    hb_gens: Vec<u64>,
    plugin_hbs: u64,
}

struct Server<'a> {
    /// The collector itself: the real collector's sans-IO core
    /// (`support/collector.rs`), or with `EDGE_SIM_COLLECTOR=peer` the
    /// shared test peer (`agent-core/tests/support/peer.rs`).
    collector: Backend<'a>,
    max_frame: usize,
    checks: Vec<Checks>,
    task_seq: u64,
    task_gap: u64,
    /// Neither repeat acks nor close damaged connections (shows the agent
    /// stalling on a lost ack or batch): the real collector, or the peer
    /// with `EDGE_SIM_NAIVE_COLLECTOR=1` (its two habits are set from it).
    naive: bool,
}

// ---- agents under test ------------------------------------------------------------

struct AppRec {
    data_type: u32,
    ts: u64,
    len: usize,
    ord: u64,
    accepted: bool,
}

struct Sim<'a> {
    agent: Agent<'a>,
    plan: Plan,
    name: &'a str,
    plugin_ids: Vec<PluginId>,
    booted: bool,
    conn: Option<u64>,
    attempt: Option<(u64, u8)>,
    // Backoff model.
    /// The backoff model: failure weight (halved per healthy period),
    /// consecutive failures, start of the failing streak, server advice.
    failures: u32,
    consecutive: u32,
    failing_since: Option<u64>,
    advice: u32,
    ep: u8,
    ep_fail: u8,
    connected_since: Option<u64>,
    expect_connect: Option<u64>,
    expect_gaveup: bool,
    /// (code, retry_after_ms) of the Reject that ended the attempt.
    reject_retry: Option<(u16, u32)>,
    reconnect_at: Option<u64>,
    // The app.
    next_push: u64,
    apps: Vec<AppRec>,
    ord: u64,
    answers: Vec<(u64, String, String)>,
    answered: HashMap<String, (u64, String)>,
    // Accounting.
    last: AgentStats,
    drop_times: Vec<u64>,
    last_delivered: u64,
    failures_after_drain: u64,
    // Busy-loop detection.
    bucket: u64,
    bucket_timeouts: u64,
    bucket_polls: u64,
    bucket_inputs: u64,
    prev_bucket_inputs: u64,
    instant: u64,
    instant_timeouts: u32,
    max_timeouts_per_sec: u64,
    max_polls_per_sec: u64,
    // Drain.
    drain_bound: u64,
    /// Downlink corruptions on the connection the agent held when the
    /// faults stopped (see `Plan::drain_bound`); set at that moment.
    backlog: Option<u64>,
    drained_at: Option<u64>,
    /// Downlink writes corrupted on any of the agent's connections: each may
    /// cost one protocol error (a lost Accept makes the next Task one).
    down_corruptions: u64,
    /// Answers the app gave again for a token it had answered (a resend
    /// handed over again): token -> (order, message), the later ones.
    reanswered: HashMap<String, Vec<(u64, String)>>,
    /// The final phase: when the next open task is resent, which one was
    /// resent last and how often.
    final_due: Option<u64>,
    final_token: Option<(String, u32)>,
}

/// An event, copied out of the agent.
#[derive(Debug)]
enum Ev {
    Connect(u8),
    Disconnect(DisconnectReason),
    Connected(u8),
    Task { target: TaskTarget, object: String, token: String },
    Shutdown,
    Config,
    Delivered { acked_total: u64, first_unacked: u64 },
    GaveUp,
}

impl Ev {
    fn from(ev: &Event<'_>) -> Ev {
        match *ev {
            Event::Connect { endpoint } => Ev::Connect(endpoint),
            Event::Disconnect { reason } => Ev::Disconnect(reason),
            Event::Connected { endpoint } => Ev::Connected(endpoint),
            Event::Task { target, object_name, token, .. } => {
                Ev::Task { target, object: object_name.into(), token: token.into() }
            }
            Event::Shutdown { .. } => Ev::Shutdown,
            Event::Config { .. } => Ev::Config,
            Event::Delivered { acked_total, first_unacked_seq } => {
                Ev::Delivered { acked_total, first_unacked: first_unacked_seq }
            }
            Event::GaveUp => Ev::GaveUp,
        }
    }
}

/// What one seed did, for the summary line.
#[derive(Clone, Copy, Debug, Default)]
struct Summary {
    agents: u64,
    sim_ms: u64,
    faults: u64,
    connections: u64,
    failures: u64,
    records: u64,
    dups: u64,
    gaps: u64,
    damaged_closes: u64,
    /// Hellos the real collector's admission answered Busy.
    busy_rejects: u64,
    /// Connections the real collector closed for a newer one of the agent.
    replaced: u64,
    /// Tasks answered twice (resent after the agent forgot the token).
    double_results: u64,
    evicted: u64,
    refused: u64,
    max_drain_ms: u64,
    /// Largest drain time as per mille of its bound.
    max_drain_permille: u64,
    max_timeouts_per_sec: u64,
    max_polls_per_sec: u64,
}

struct World<'a> {
    trace: Option<usize>,
    rng: SplitMix,
    now: u64,
    fault_end: u64,
    end: u64,
    /// When the final phase starts (the run's end without it) and when it
    /// started: every task still without a result is resent, one at a time
    /// per agent, until it is answered.
    final_start: Option<u64>,
    final_resend_at: Option<u64>,
    steps: u64,
    faults: Vec<Fault>,
    next_fault: usize,
    sims: Vec<Sim<'a>>,
    server: Server<'a>,
    conns: Vec<Conn>,
    next_conn_id: u64,
    tx: Vec<u8>,
}

impl<'a> World<'a> {
    // ---- main loop ------------------------------------------------------

    /// `EDGE_SIM_TRACE=<agent>` prints that agent's inputs and outputs.
    fn trace(&self, a: usize, what: std::fmt::Arguments<'_>) {
        if self.trace == Some(a) {
            println!("t={} agent {a}: {what}", self.now);
        }
    }

    fn run(&mut self) {
        loop {
            let t = self.next_time();
            if t > self.end {
                break;
            }
            assert!(t >= self.now, "time went backwards: {t} < {}", self.now);
            self.now = t;
            self.steps += 1;
            assert!(self.steps < MAX_STEPS, "simulation does not terminate (t={t})");
            self.step();
        }
        self.final_checks();
    }

    fn next_time(&self) -> u64 {
        let now = self.now;
        let mut t = u64::MAX;
        let mut at = |x: u64| t = t.min(x.max(now));
        for s in &self.sims {
            if !s.booted {
                at(s.plan.boot);
                continue;
            }
            if let Some(x) = s.agent.poll_timeout() {
                at(x.as_millis());
            }
            if let Some((x, _)) = s.attempt {
                at(x);
            }
            if let Some(x) = s.reconnect_at {
                at(x);
            }
            if s.next_push < self.fault_end {
                at(s.next_push);
            }
            for (x, _, _) in &s.answers {
                at(*x);
            }
            if s.drained_at.is_none() {
                at(self.fault_end + s.drain_bound + 1);
            }
            if let Some(x) = s.final_due {
                at(x);
            }
        }
        for c in &self.conns {
            if let Some(x) = c.notify_at {
                at(x);
            }
            if let Some(x) = c.up.head() {
                at(x);
            }
            if let Some(x) = c.down.head() {
                at(x);
            }
            if c.accepted && c.server_open && !c.dead && c.next_unsolicited < self.fault_end {
                at(c.next_unsolicited);
            }
        }
        if let Some(f) = self.faults.get(self.next_fault) {
            at(f.start);
        }
        if let (Some(x), None) = (self.final_start, self.final_resend_at) {
            at(x);
        }
        at(self.end.saturating_add(1));
        t
    }

    fn step(&mut self) {
        let now = self.now;
        for a in 0..self.sims.len() {
            if !self.sims[a].booted && self.sims[a].plan.boot <= now {
                self.boot(a);
            }
        }
        // Timers first, so that at one instant a due timer is seen before
        // other inputs (the backoff model relies on this order).
        for a in 0..self.sims.len() {
            let s = &self.sims[a];
            if s.booted && s.agent.poll_timeout().is_some_and(|x| x.as_millis() <= now) {
                self.timeout(a);
            }
        }
        while self.faults.get(self.next_fault).is_some_and(|f| f.start <= now) {
            let f = self.faults[self.next_fault];
            self.next_fault += 1;
            self.apply_fault(f);
        }
        for a in 0..self.sims.len() {
            if self.sims[a].attempt.is_some_and(|(x, _)| x <= now) {
                self.resolve_attempt(a);
            }
        }
        let ids: Vec<u64> = self.conns.iter().map(|c| c.id).collect();
        for id in ids {
            self.conn_step(id);
        }
        for a in 0..self.sims.len() {
            self.app_step(a);
        }
        self.conns.retain(|c| {
            c.agent_open || c.server_open || c.notify_at.is_some() || !c.up.q.is_empty() || !c.down.q.is_empty()
        });
        self.drain_checks();
    }

    // ---- agent inputs -------------------------------------------------------

    fn boot(&mut self, a: usize) {
        let now = self.now;
        let s = &mut self.sims[a];
        s.booted = true;
        s.agent.set_clock_offset(s.plan.clock_offset as i64);
        s.expect_connect = Some(now);
        s.next_push = now + s.plan.push_gap;
        self.timeout(a);
    }

    fn count_input(&mut self, a: usize) {
        let now = self.now;
        let s = &mut self.sims[a];
        s.roll_bucket(now);
        s.bucket_inputs += 1;
    }

    fn timeout(&mut self, a: usize) {
        self.trace(a, format_args!("timeout"));
        let now = self.now;
        let s = &mut self.sims[a];
        s.roll_bucket(now);
        if s.instant == now {
            s.instant_timeouts += 1;
            assert!(
                s.instant_timeouts <= SAME_INSTANT_TIMEOUTS,
                "t={now} agent {a}: busy loop: poll_timeout() stays at {:?} after {} handle_timeout calls at this \
                 instant (state {:?}, ring {:?})",
                s.agent.poll_timeout(),
                s.instant_timeouts - 1,
                s.agent.state(),
                s.agent.ring()
            );
        } else {
            s.instant = now;
            s.instant_timeouts = 1;
        }
        s.bucket_timeouts += 1;
        s.max_timeouts_per_sec = s.max_timeouts_per_sec.max(s.bucket_timeouts);
        let bound = 16 + 1000 / s.plan.cfg.flush_interval.as_millis() + 2 * (s.bucket_inputs + s.prev_bucket_inputs);
        assert!(
            s.bucket_timeouts <= bound,
            "t={now} agent {a}: {} handle_timeout calls this second, bound {bound}",
            s.bucket_timeouts
        );
        s.agent.handle_timeout(Instant(now));
        self.drive_checked(a, true);
    }

    /// The documented outputs after an input: transmit until 0, then events.
    fn drive(&mut self, a: usize) {
        self.drive_checked(a, false)
    }

    /// `drive`; after a `handle_timeout` (`timed_out`) also checks the timer
    /// invariant: once the transmits are drained, no timer is due at `now`.
    fn drive_checked(&mut self, a: usize, timed_out: bool) {
        let now = self.now;
        let mut frames = 0;
        loop {
            let n = self.sims[a].agent.poll_transmit(Instant(now), &mut self.tx);
            let s = &mut self.sims[a];
            s.roll_bucket(now);
            s.bucket_polls += 1;
            s.max_polls_per_sec = s.max_polls_per_sec.max(s.bucket_polls);
            let rounds = s.bucket_timeouts + s.bucket_inputs;
            assert!(
                s.bucket_polls <= (MAX_FRAMES_PER_ROUND as u64 + 1) * rounds,
                "t={now} agent {a}: {} poll_transmit calls this second for {rounds} inputs",
                s.bucket_polls
            );
            if n == 0 {
                break;
            }
            frames += 1;
            let s = &self.sims[a];
            assert!(frames <= MAX_FRAMES_PER_ROUND, "t={now} agent {a}: more than {MAX_FRAMES_PER_ROUND} frames in one round");
            if s.agent.state() == StateKind::Connected {
                assert!(n <= self.server.max_frame, "t={now} agent {a}: {n}-byte frame, collector max {}", self.server.max_frame);
            }
            let Some(id) = s.conn else {
                panic!("t={now} agent {a}: wrote a frame with no transport up (state {:?})", s.agent.state())
            };
            let bytes = self.tx[..n].to_vec();
            self.trace(a, format_args!("tx kind {} len {n} state {:?}", bytes[3], self.sims[a].agent.state()));
            self.send(id, Dir::Up, bytes);
        }
        if timed_out {
            let agent = &self.sims[a].agent;
            if let Some((timer, at)) = agent.next_timer() {
                assert!(
                    at > Instant(now),
                    "t={now} agent {a}: timer {timer:?} still due at {at:?} after handle_timeout and poll_transmit \
                     (state {:?}, ring {:?})",
                    agent.state(),
                    agent.ring()
                );
            }
        }
        let mut evs = Vec::new();
        while let Some(ev) = self.sims[a].agent.poll_event() {
            evs.push(Ev::from(&ev));
        }
        // The state after the round; an event followed by a Disconnect in
        // the same round (say Connected, then a Close in the same chunk)
        // describes a state already left.
        let last_disconnect = evs.iter().rposition(|e| matches!(e, Ev::Disconnect(_)));
        for (i, ev) in evs.into_iter().enumerate() {
            self.trace(a, format_args!("event {ev:?}"));
            let superseded = last_disconnect.is_some_and(|d| d > i);
            self.on_event(a, ev, superseded);
        }
        self.check_agent(a);
    }

    fn on_event(&mut self, a: usize, ev: Ev, superseded: bool) {
        let now = self.now;
        let state = self.sims[a].agent.state();
        match ev {
            Ev::Connect(e) => {
                let s = &mut self.sims[a];
                assert!(superseded || state == StateKind::Connecting, "t={now} agent {a}: Connect event in state {state:?}");
                assert!(s.conn.is_none() && s.attempt.is_none(), "t={now} agent {a}: Connect while a transport is open");
                assert_eq!(s.expect_connect, Some(now), "t={now} agent {a}: Connect not at the drawn backoff time");
                assert_eq!(e, s.ep, "t={now} agent {a}: Connect to an unexpected endpoint");
                s.expect_connect = None;
                let lat = s.plan.conn_lat;
                let at = now + self.rng.range(1, lat);
                self.sims[a].attempt = Some((at, e));
            }
            Ev::Disconnect(reason) => {
                if let Some(id) = self.sims[a].conn.take() {
                    self.close_by_agent(id);
                }
                let s = &mut self.sims[a];
                s.attempt = None;
                if s.drained_at.is_some() {
                    s.failures_after_drain += 1;
                }
                assert_ne!(reason, DisconnectReason::Shutdown, "t={now} agent {a}: nobody called close()");
                let reject = if reason == DisconnectReason::Rejected {
                    Some(s.reject_retry.take().unwrap_or_else(|| panic!("t={now} agent {a}: Rejected without a Reject")))
                } else {
                    None
                };
                let c = s.plan.cfg;
                if let Some(since) = s.connected_since.take() {
                    // One halving per healthy period the connection lived.
                    let periods = (now - since) / c.healthy_after.as_millis();
                    for _ in 0..periods.min(64) {
                        s.failures /= 2;
                    }
                    if periods > 0 {
                        s.consecutive = 0;
                        s.ep_fail = 0;
                        s.failing_since = None;
                    }
                }
                s.failures += 1;
                s.consecutive += 1;
                let give_up = c.backoff.give_up_after;
                if give_up != 0 && s.consecutive >= give_up {
                    assert_eq!(s.agent.last_retry(), None, "t={now} agent {a}: retry drawn past the give-up limit");
                    s.expect_gaveup = true;
                } else {
                    let failing_for = now - *s.failing_since.get_or_insert(now);
                    let failed_ep = s.ep;
                    s.ep_fail += 1;
                    if s.ep_fail >= c.backoff.attempts_per_endpoint {
                        s.ep_fail = 0;
                        s.ep = (s.ep + 1) % c.backoff.endpoints;
                    }
                    let r = s.agent.last_retry().unwrap_or_else(|| panic!("t={now} agent {a}: failure without a retry"));
                    let ceiling = expected_ceiling(&c.backoff, s.failures, failing_for, s.advice);
                    assert_eq!(
                        r.ceiling.as_millis(),
                        ceiling,
                        "t={now} agent {a}: ceiling at weight {}, {failing_for} ms failing, advice {}",
                        s.failures,
                        s.advice
                    );
                    assert!(r.delay <= r.ceiling, "t={now} agent {a}: delay {:?} above ceiling {:?}", r.delay, r.ceiling);
                    assert_eq!(r.endpoint, s.ep, "t={now} agent {a}: endpoint rotation");
                    // A Reject's retry_after applies only to a retry of the
                    // same endpoint: a Busy one is a slot, kept exactly
                    // (within 50 ms .. cap), any other a minimum (at most cap).
                    let cap = c.backoff.cap.as_millis();
                    let wait = match reject {
                        Some((code, ra)) if s.ep == failed_ep && code == CloseCode::Busy as u16 && ra > 0 => {
                            u64::from(ra).clamp(50, cap)
                        }
                        Some((_, ra)) if s.ep == failed_ep => r.delay.as_millis().max(u64::from(ra).min(cap)),
                        _ => r.delay.as_millis(),
                    };
                    s.expect_connect = Some(now + wait);
                }
            }
            Ev::Connected(e) => {
                assert!(superseded || state == StateKind::Connected, "t={now} agent {a}: Connected event in state {state:?}");
                let s = &self.sims[a];
                let id = s.conn.unwrap_or_else(|| panic!("t={now} agent {a}: Connected without a transport"));
                let c = self.conn(id).unwrap();
                assert_eq!(c.endpoint, e, "t={now} agent {a}: Connected to another endpoint");
                assert!(
                    s.agent.ring().first_unacked_seq() >= c.accept_next,
                    "t={now} agent {a}: resume point {} not applied: {:?}",
                    c.accept_next,
                    s.agent.ring()
                );
                let advice = self.server.collector.retry_window_ms();
                let s = &mut self.sims[a];
                s.connected_since = Some(now);
                s.advice = advice;
            }
            Ev::Task { target, object, token } => {
                let s = &mut self.sims[a];
                let want = if object.is_empty() || object == PRODUCT {
                    TaskTarget::Agent
                } else {
                    let k = PLUGIN_NAMES[..s.plan.plugins].iter().position(|p| *p == object);
                    let k = k.unwrap_or_else(|| panic!("t={now} agent {a}: task for unknown {object:?} delivered"));
                    TaskTarget::Plugin(s.plugin_ids[k])
                };
                assert_eq!(target, want, "t={now} agent {a}: task routed wrong");
                let due = now + self.rng.range(0, ANSWER_DELAY_MAX);
                let mut msg = String::new();
                for _ in 0..self.rng.range(0, 150) {
                    msg.push(if self.rng.chance(100) { 'é' } else { 'x' });
                }
                self.sims[a].answers.push((due, token, msg));
            }
            Ev::Shutdown => panic!("t={now} agent {a}: Shutdown event, but no shutdown task was sent"),
            Ev::Config => {}
            Ev::Delivered { acked_total, first_unacked } => {
                let s = &mut self.sims[a];
                assert_eq!(acked_total, s.agent.stats().acked, "t={now} agent {a}: Delivered total");
                assert_eq!(first_unacked, s.agent.ring().first_unacked_seq());
                assert!(acked_total > s.last_delivered, "t={now} agent {a}: Delivered without new acks");
                s.last_delivered = acked_total;
            }
            Ev::GaveUp => {
                let s = &mut self.sims[a];
                assert_eq!(state, StateKind::GaveUp, "t={now} agent {a}: GaveUp event in state {state:?}");
                assert!(s.expect_gaveup, "t={now} agent {a}: gave up after {} failures", s.failures);
                s.expect_gaveup = false;
                s.reconnect_at = Some(now + s.plan.gaveup_delay);
            }
        }
    }

    /// Invariants checked after every round of outputs.
    fn check_agent(&mut self, a: usize) {
        let now = self.now;
        let s = &mut self.sims[a];
        let st = s.agent.stats();
        let ring = s.agent.ring();
        assert_eq!(
            st.pushed,
            st.acked + st.dropped_evicted + ring.len(),
            "t={now} agent {a}: record accounting broken: {st:?}, ring {ring:?}"
        );
        // An honest collector never breaks the protocol; a corrupted downlink
        // can make it look so (a lost Accept, then a Task).
        assert!(
            st.protocol_errors <= s.down_corruptions,
            "t={now} agent {a}: {} protocol errors, {} downlink corruptions",
            st.protocol_errors,
            s.down_corruptions
        );
        if s.plan.cfg.ring.policy == OverflowPolicy::RejectNew {
            assert_eq!(st.dropped_evicted, 0, "t={now} agent {a}: eviction under RejectNew");
        }
        let have = self.server.collector.next(s.name);
        assert!(
            ring.first_unacked_seq() <= have && have <= ring.next_seq(),
            "t={now} agent {a}: collector holds {have} records, agent acked below {} and numbered below {}",
            ring.first_unacked_seq(),
            ring.next_seq()
        );
        assert!(!s.expect_gaveup, "t={now} agent {a}: give-up limit reached without GaveUp");
        let open = matches!(s.agent.state(), StateKind::Handshaking | StateKind::Connected);
        assert_eq!(open, s.conn.is_some(), "t={now} agent {a}: state {:?} but transport {:?}", s.agent.state(), s.conn);
        let drops = (st.dropped_full, st.dropped_too_large, st.dropped_evicted);
        let before = (s.last.dropped_full, s.last.dropped_too_large, s.last.dropped_evicted);
        if drops != before {
            // Answers to the final phase's resends may evict or be refused
            // in a small ring: that phase resends until each is answered.
            assert!(
                s.drained_at.is_none() || self.final_resend_at.is_some(),
                "t={now} agent {a}: dropped after the drain (at {:?}): (full, too large, evicted) {before:?} -> {drops:?}, \
                 state {:?}, ring {:?}",
                s.drained_at,
                s.agent.state(),
                s.agent.ring()
            );
            s.drop_times.push(now);
        }
        s.last = st;
    }

    fn resolve_attempt(&mut self, a: usize) {
        let now = self.now;
        let (_, endpoint) = self.sims[a].attempt.take().unwrap();
        self.count_input(a);
        match self.refused(a, endpoint, now) {
            Some(true) => {} // black hole: the agent's connect_timeout decides
            Some(false) => {
                self.sims[a].agent.handle_disconnected(Instant(now), TransportError::Refused);
                self.drive(a);
            }
            None => {
                let id = self.open_conn(a, endpoint);
                let s = &mut self.sims[a];
                s.conn = Some(id);
                s.reject_retry = None;
                s.agent.handle_connected(Instant(now));
                self.drive(a);
            }
        }
    }

    fn app_step(&mut self, a: usize) {
        let now = self.now;
        if !self.sims[a].booted {
            return;
        }
        if self.sims[a].reconnect_at.is_some_and(|x| x <= now) {
            let s = &mut self.sims[a];
            s.reconnect_at = None;
            s.failures = 0;
            s.consecutive = 0;
            s.failing_since = None;
            s.ep_fail = 0;
            s.expect_connect = Some(now);
            s.agent.reconnect_now(Instant(now));
            self.count_input(a);
            self.drive(a);
        }
        while let Some(i) = self.sims[a].answers.iter().position(|x| x.0 <= now) {
            let (_, token, msg) = self.sims[a].answers.remove(i);
            let s = &mut self.sims[a];
            let before = s.agent.stats();
            let r = s.agent.task_result(Instant(now), &token, task_status::OK, &msg);
            check_push_delta(a, now, &before, &s.agent.stats(), r, s.plan.cfg.ring.policy);
            // Documented: a long message is truncated; only a token too long
            // to fit is refused as too large (ours are short).
            assert_ne!(r, Err(PushError::TooLarge), "t={now} agent {a}: task result of {} bytes refused", msg.len());
            if r.is_ok() {
                match s.answered.get(&token) {
                    None => {
                        s.answered.insert(token, (s.ord, msg));
                    }
                    Some(_) => s.reanswered.entry(token).or_default().push((s.ord, msg)),
                }
                s.ord += 1;
            }
            self.count_input(a);
            self.drive(a);
        }
        if self.sims[a].next_push <= now && now < self.fault_end {
            let burst = if self.rng.chance(30) { self.rng.range(5, 30) } else { 1 };
            for _ in 0..burst {
                let max_record = self.sims[a].plan.cfg.ring.max_record;
                let len = if self.rng.chance(20) {
                    max_record + self.rng.range_usize(1, 40)
                } else {
                    self.rng.range_usize(APP_HEADER, max_record)
                };
                let back = if self.rng.chance(100) { self.rng.range(0, 5000) } else { 0 };
                let s = &mut self.sims[a];
                let n = s.apps.len() as u64;
                let dt = APP_TYPE_BASE + (n % 50) as u32;
                let ts = now + s.plan.clock_offset - back;
                let payload = app_payload(a, n, len);
                let before = s.agent.stats();
                let r = s.agent.push(Instant(now), &Record::new(dt, ts, &payload));
                check_push_delta(a, now, &before, &s.agent.stats(), r, s.plan.cfg.ring.policy);
                s.apps.push(AppRec { data_type: dt, ts, len, ord: s.ord, accepted: r.is_ok() });
                if r.is_ok() {
                    s.ord += 1;
                }
                self.count_input(a);
                self.drive(a);
            }
            let gap = self.sims[a].plan.push_gap;
            self.sims[a].next_push = now + self.rng.range(1, 2 * gap);
        }
    }

    fn drain_checks(&mut self) {
        let now = self.now;
        if now < self.fault_end {
            return;
        }
        for (a, s) in self.sims.iter_mut().enumerate() {
            if s.backlog.is_none() {
                let c = s.conn.and_then(|id| self.conns.iter().find(|c| c.id == id));
                let k = c.map_or(0, |c| c.down_corruptions);
                s.backlog = Some(k);
                s.drain_bound += k * s.plan.liveness_cycle();
                // A naive collector neither closes a damaged connection nor
                // repeats acks: a batch or ack lost to corruption is then
                // found by the agent's ack timeout, once (the next
                // connection is clean).
                let damaged = c.is_some_and(|c| c.up_corrupted || c.down_corruptions > 0);
                if self.server.naive && damaged {
                    s.drain_bound += s.plan.cfg.ack_timeout.as_millis() + 2 * s.plan.lat_max() + 1;
                }
            }
            if s.drained_at.is_some() {
                continue;
            }
            // Bytes written before the faults stopped (a task, say) have all
            // arrived by `fault_end + lat_max`.
            let settled = now > self.fault_end + s.plan.lat_max();
            if settled && s.agent.state() == StateKind::Connected && s.agent.is_drained() && s.answers.is_empty() {
                s.drained_at = Some(now);
                continue;
            }
            let limit = self.fault_end + s.drain_bound;
            if now > limit {
                if let Some(c) = s.conn.and_then(|id| self.conns.iter().find(|c| c.id == id)) {
                    eprintln!(
                        "conn {}: agent_open {} server_open {} dead {} up_fin {} notify {:?} accepted {} up {} down {} \
                         corrupted {} next_unsolicited {}; agent poll_timeout {:?}, cfg {:?}",
                        c.id, c.agent_open, c.server_open, c.dead, c.up_fin, c.notify_at, c.accepted, c.up.q.len(),
                        c.down.q.len(), c.up_corrupted, c.next_unsolicited, s.agent.poll_timeout(), s.plan.cfg
                    );
                }
            }
            assert!(
                now <= limit,
                "t={now} agent {a}: not drained {} ms after the faults stopped (bound {} ms): state {:?}, ring {:?}, \
                 stats {:?}",
                now - self.fault_end,
                s.drain_bound,
                s.agent.state(),
                s.agent.ring(),
                s.agent.stats()
            );
        }
        if self.sims.iter().all(|s| s.drained_at.is_some()) {
            let last = self.sims.iter().filter_map(|s| s.drained_at).max().unwrap();
            let tail = self.sims.iter().map(|s| s.plan.cfg.heartbeat_interval.as_millis()).max().unwrap() * 3 + 1000;
            self.end = self.end.min(last + tail);
            self.final_phase();
        }
    }

    /// The final phase (issue 15, item 8): when the run would end, every
    /// task still without a result at the collector is resent, one at a
    /// time per agent (a small ring holds one result at a time), until it is
    /// answered: at most [`FINAL_RESENDS`] times each, [`FINAL_RESEND_WAIT`]
    /// plus two link latencies apart. A result evicted (DropOldest) or
    /// refused (ring full) must not leave its task unanswered for good.
    fn final_phase(&mut self) {
        let now = self.now;
        let last = self.sims.iter().filter_map(|s| s.drained_at).max().unwrap();
        let tail = self.sims.iter().map(|s| s.plan.cfg.heartbeat_interval.as_millis()).max().unwrap() * 3 + 1000;
        let start = *self.final_start.get_or_insert(last + tail);
        if now < start {
            return;
        }
        if self.final_resend_at.is_none() {
            self.final_resend_at = Some(now);
            for s in &mut self.sims {
                s.final_due = Some(now);
            }
        }
        for a in 0..self.sims.len() {
            let Some(due) = self.sims[a].final_due else { continue };
            if due > now {
                continue;
            }
            let Some((token, p)) = self.server.checks[a].open.first().cloned() else {
                self.sims[a].final_due = None;
                continue;
            };
            let s = &mut self.sims[a];
            let tries = match &s.final_token {
                Some((t, n)) if *t == token => n + 1,
                _ => 1,
            };
            assert!(
                tries <= FINAL_RESENDS,
                "t={now} agent {a}: task {token} unanswered after {FINAL_RESENDS} resends in the final phase"
            );
            s.final_token = Some((token.clone(), tries));
            s.final_due = Some(now + FINAL_RESEND_WAIT + 2 * s.plan.lat_max());
            if let Some(id) = s.conn {
                self.server.checks[a].resent.insert(token);
                self.server.collector.push(id, &p);
                self.server_flush(id);
            }
        }
        if let Some(due) = self.sims.iter().filter_map(|s| s.final_due).max() {
            self.end = self.end.max(due + 1);
        }
    }

    // ---- network ------------------------------------------------------------

    fn conn(&self, id: u64) -> Option<&Conn> {
        self.conns.iter().find(|c| c.id == id)
    }

    fn conn_mut(&mut self, id: u64) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    fn open_conn(&mut self, a: usize, endpoint: u8) -> u64 {
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        if !self.server.collector.open(id) {
            // Out of collector sockets: the oldest lingering connection of
            // any agent is reset to make room.
            let victim = self
                .conns
                .iter()
                .filter(|c| c.server_open && !c.agent_open)
                .map(|c| c.id)
                .min()
                .expect("collector out of decoder slots with no lingering connection");
            self.cut(victim, None);
            assert!(self.server.collector.open(id));
        }
        let mut c = Conn {
            id,
            agent: a,
            endpoint,
            up: Link::default(),
            down: Link::default(),
            agent_open: true,
            server_open: true,
            dead: false,
            up_fin: false,
            notify_at: None,
            accepted: false,
            accept_next: 0,
            up_corrupted: false,
            down_corruptions: 0,
            next_unsolicited: 0,
        };
        c.up.last_at = self.now;
        c.down.last_at = self.now;
        self.conns.push(c);
        id
    }

    /// Writes `bytes` on a connection: latency, jitter, stalls, corruption
    /// and chunking are applied here.
    fn send(&mut self, id: u64, dir: Dir, mut bytes: Vec<u8>) {
        let now = self.now;
        let Some(c) = self.conn(id) else { return };
        let a = c.agent;
        let writable = !c.dead
            && match dir {
                Dir::Up => c.agent_open && !c.up_fin,
                Dir::Down => c.server_open,
            };
        if !writable {
            return;
        }
        let mut corrupted = false;
        if let Some(pm) = self.corrupt(a, dir, now) {
            if self.rng.chance(pm) {
                corrupted = true;
                corrupt_bytes(&mut self.rng, &mut bytes);
            }
        }
        let stall = self.stall_until(a, dir, now);
        let (lat, jitter) = (self.sims[a].plan.lat, self.sims[a].plan.jitter);
        let earliest = now + lat + self.rng.range(0, jitter);
        let parts = match self.rng.below(10) {
            0..=6 => 1,
            7 | 8 => 2,
            _ => 3,
        }
        .min(bytes.len());
        let mut cuts: Vec<usize> = (1..parts).map(|_| self.rng.range_usize(1, bytes.len() - 1)).collect();
        cuts.sort_unstable();
        let spread: Vec<u64> = (0..parts).map(|_| self.rng.range(0, 1)).collect();
        if corrupted && dir == Dir::Down {
            self.sims[a].down_corruptions += 1;
        }
        let c = self.conn_mut(id).unwrap();
        if corrupted && dir == Dir::Up {
            c.up_corrupted = true;
        }
        if corrupted && dir == Dir::Down {
            c.down_corruptions += 1;
        }
        let link = match dir {
            Dir::Up => &mut c.up,
            Dir::Down => &mut c.down,
        };
        let busy = link.last_at > earliest;
        let mut at = earliest.max(link.last_at).max(stall);
        let mut from = 0;
        for (i, end) in cuts.into_iter().chain([bytes.len()]).enumerate() {
            if i > 0 && !busy {
                at += spread[i];
            }
            link.q.push_back((at, bytes[from..end].to_vec()));
            from = end;
        }
        link.last_at = at;
    }

    fn conn_step(&mut self, id: u64) {
        let now = self.now;
        let Some(c) = self.conn(id) else { return };
        let a = c.agent;
        if c.notify_at.is_some_and(|x| x <= now) {
            let open = c.agent_open;
            self.conn_mut(id).unwrap().notify_at = None;
            if open && self.sims[a].conn == Some(id) {
                self.count_input(a);
                self.sims[a].agent.handle_disconnected(Instant(now), TransportError::Reset);
                self.drive(a);
            }
        }
        let c = self.conn_mut(id).unwrap();
        if c.up.head().is_some_and(|x| x <= now) {
            let bytes = c.up.take_due(now);
            if c.server_open && !c.dead {
                self.server_rx(id, &bytes);
            }
            let c = self.conn_mut(id).unwrap();
            if c.up_fin && c.up.q.is_empty() && c.server_open {
                self.server_release(id);
            }
        }
        let c = self.conn_mut(id).unwrap();
        if c.down.head().is_some_and(|x| x <= now) {
            let bytes = c.down.take_due(now);
            let open = c.agent_open && !c.dead;
            if open && self.sims[a].conn == Some(id) {
                self.count_input(a);
                self.trace(a, format_args!("rx {} bytes", bytes.len()));
                self.sims[a].agent.handle_received(Instant(now), &bytes);
                let st = self.sims[a].agent.stats();
                self.trace(a, format_args!(
                    "  -> frames {} skipped {} bad_crc {} malformed {} unknown {} bytes {:02x?}",
                    st.frames_received, st.decoder_skipped_bytes, st.decoder_bad_crc, st.malformed, st.unknown_kinds, bytes
                ));
                self.drive(a);
            }
        }
        let c = self.conn(id).unwrap();
        if c.accepted && c.server_open && !c.dead && c.next_unsolicited <= now && now < self.fault_end {
            self.unsolicited(id);
        }
    }

    /// The agent closed its transport (after a Disconnect event): what it
    /// wrote still reaches the collector, then EOF.
    fn close_by_agent(&mut self, id: u64) {
        let c = self.conn_mut(id).unwrap();
        c.agent_open = false;
        c.down.q.clear();
        c.notify_at = None;
        if c.dead {
            return;
        }
        c.up_fin = true;
        if c.up.q.is_empty() && c.server_open {
            self.server_release(id);
        }
    }

    /// The connection dies at once in both directions (RST, restart, cable).
    fn cut(&mut self, id: u64, notify: Option<u64>) {
        let now = self.now;
        let c = self.conn_mut(id).unwrap();
        c.dead = true;
        c.up.q.clear();
        c.down.q.clear();
        if c.agent_open {
            c.notify_at = notify.map(|d| now + d);
        }
        if c.server_open {
            self.server_release(id);
        }
    }

    /// The collector drops its side: socket closed, decoder slot freed.
    fn server_release(&mut self, id: u64) {
        let c = self.conn_mut(id).unwrap();
        c.server_open = false;
        c.up.q.clear();
        self.server.collector.release(id);
    }

    /// The collector closes after its last frame: the agent sees EOF after it.
    fn server_close(&mut self, id: u64) {
        let now = self.now;
        self.server_release(id);
        let c = self.conn_mut(id).unwrap();
        if c.agent_open && c.notify_at.is_none() {
            c.notify_at = Some(c.down.last_at.max(now) + 1);
        }
    }

    // ---- faults ---------------------------------------------------------------

    fn apply_fault(&mut self, f: Fault) {
        match f.kind {
            FaultKind::Cut { agent, notify } => {
                if let Some(id) = self.sims[agent].conn {
                    self.cut(id, notify);
                }
            }
            FaultKind::Restart { lose_index, .. } => {
                let ids: Vec<u64> = self.conns.iter().filter(|c| !c.dead).map(|c| c.id).collect();
                for id in ids {
                    let notify = self.rng.chance(700).then(|| self.rng.range(1, 100));
                    self.cut(id, notify);
                }
                let names: Vec<&str> = self.sims.iter().map(|s| s.name).collect();
                self.server.collector.restart(lose_index, &names);
            }
            FaultKind::Stall { agent, dir } => {
                for c in self.conns.iter_mut().filter(|c| c.agent == agent) {
                    if dir != Some(Dir::Down) {
                        c.up.postpone(f.end);
                    }
                    if dir != Some(Dir::Up) {
                        c.down.postpone(f.end);
                    }
                }
            }
            FaultKind::Refuse { .. } | FaultKind::Corrupt { .. } | FaultKind::Busy { .. } => {}
        }
    }

    fn active(&self, t: u64) -> impl Iterator<Item = &Fault> {
        self.faults[..self.next_fault.min(self.faults.len())].iter().filter(move |f| f.start <= t && t < f.end)
    }

    /// Whether a connect to `endpoint` is refused now: `Some(blackhole)`.
    fn refused(&self, a: usize, endpoint: u8, t: u64) -> Option<bool> {
        self.active(t).find_map(|f| match f.kind {
            FaultKind::Restart { blackhole, .. } => Some(blackhole),
            FaultKind::Refuse { agent, endpoint: e, blackhole } if agent == a && e.is_none_or(|e| e == endpoint) => {
                Some(blackhole)
            }
            _ => None,
        })
    }

    fn busy(&self, t: u64) -> Option<u32> {
        self.active(t).find_map(|f| match f.kind {
            FaultKind::Busy { retry_after } => Some(retry_after),
            _ => None,
        })
    }

    fn corrupt(&self, a: usize, dir: Dir, t: u64) -> Option<u64> {
        self.active(t).find_map(|f| match f.kind {
            FaultKind::Corrupt { agent, dir: d, per_mille } if agent == a && d.is_none_or(|d| d == dir) => Some(per_mille),
            _ => None,
        })
    }

    fn stall_until(&self, a: usize, dir: Dir, t: u64) -> u64 {
        self.active(t)
            .filter_map(|f| match f.kind {
                FaultKind::Stall { agent, dir: d } if agent == a && d.is_none_or(|d| d == dir) => Some(f.end),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    // ---- collector --------------------------------------------------------------

    /// Writes every frame the peer has for the agent, one write each.
    fn server_flush(&mut self, id: u64) {
        while let Some(frame) = self.server.collector.poll_transmit(id) {
            self.send(id, Dir::Down, frame);
        }
    }

    fn server_rx(&mut self, id: u64, bytes: &[u8]) {
        let now = self.now;
        let c = self.conn(id).unwrap();
        let (a, up_corrupted) = (c.agent, c.up_corrupted);
        let busy = self.busy(now);
        let collector = &mut self.server.collector;
        let notes = collector.handle_received(id, bytes, now, busy);
        if !up_corrupted {
            let skips = collector.frame_seq_skips(id).expect("open collector connection");
            assert_eq!(skips, 0, "t={now} agent {a}: frame counter skipped on a clean link");
        }
        let mut agent_closed = false;
        for note in notes {
            agent_closed |= matches!(note, Note::Close(_));
            self.server_note(id, note);
        }
        self.server_flush(id);
        if !self.server.collector.is_open(id) {
            if agent_closed {
                self.server_release(id);
            } else {
                // Reject, gap or damage: the collector closed after its frame.
                self.server_close(id);
            }
        }
        // An older connection of the agent, replaced by this one (the real
        // collector's rule): Close 0 went out on it; then it is closed.
        for old in self.server.collector.take_closed_elsewhere() {
            if self.conn(old).is_some_and(|c| c.server_open) {
                self.server_flush(old);
                self.server_close(old);
            }
        }
    }

    /// Checks what the collector saw and did with one frame.
    fn server_note(&mut self, id: u64, note: Note) {
        let now = self.now;
        let c = self.conn(id).unwrap();
        let a = c.agent;
        match note {
            Note::Hello { agent_id, first_unacked_seq, next_seq, max_frame, stored_next, answer, .. } => {
                assert_eq!(agent_id, self.sims[a].name);
                assert_eq!(max_frame as usize, self.sims[a].plan.rx_len, "t={now} agent {a}: Hello.max_frame");
                let have = stored_next;
                assert!(
                    first_unacked_seq <= have && have <= next_seq,
                    "t={now} agent {a}: Hello resume {first_unacked_seq}..{next_seq} but the collector holds {have}"
                );
                match answer {
                    Answer::Reject { code, retry_after_ms } => {
                        if self.sims[a].conn == Some(id) {
                            self.sims[a].reject_retry = Some((code, retry_after_ms));
                        }
                    }
                    Answer::Accept { next_seq: resume } => {
                        let gap = self.server.task_gap;
                        let next = now + self.rng.range(1, 2 * gap);
                        let c = self.conn_mut(id).unwrap();
                        c.accepted = true;
                        c.accept_next = resume;
                        c.next_unsolicited = next;
                        self.resend_open_tasks(id, a);
                    }
                }
            }
            Note::Batch { first_seq, conn_next, ack_next, outcome, .. } => {
                assert!(
                    first_seq >= conn_next,
                    "t={now} agent {a}: batch from {first_seq} behind this connection's {conn_next}"
                );
                // The agent may skip ahead up to the latest Ack sent here
                // (records acked because an older connection's late batch
                // stored them), even before resending them here; until that
                // Ack arrives it may also go on from `conn_next`.
                assert!(
                    c.up_corrupted || first_seq <= conn_next.max(ack_next),
                    "t={now} agent {a}: batch from {first_seq} but this clean connection is at {conn_next} (acked to \
                     {ack_next})"
                );
                let BatchOutcome::Stored { new, dups, .. } = outcome else {
                    // A gap: frames were lost to corruption. Only a broken
                    // transport does that; the peer closed the connection.
                    return;
                };
                for d in dups {
                    let seq = d.seq;
                    let (first_conn, same) = d.earlier.expect("the collector stores every record below its resume point");
                    assert!(same, "t={now} agent {a}: seq {seq} received twice with different content");
                    assert_ne!(first_conn, id, "t={now} agent {a}: seq {seq} duplicated on one connection");
                }
                for seq in new {
                    let r = self.server.collector.record(self.sims[a].name, seq).unwrap();
                    let (dt, ts, payload) = (r.data_type, r.ts, r.payload.clone());
                    self.validate_new(a, dt, ts, &payload);
                }
            }
            Note::Ping(_) | Note::Close(_) => {}
            n => panic!("t={now} agent {a}: agent broke the protocol: {n:?}"),
        }
    }

    /// Resends on `id` every task of agent `a` without a stored result, in
    /// the order first sent (what the collector does after an Accept).
    fn resend_open_tasks(&mut self, id: u64, a: usize) {
        let open = self.server.checks[a].open.clone();
        for (token, p) in open {
            self.server.checks[a].resent.insert(token);
            self.server.collector.push(id, &p);
        }
    }

    fn unsolicited(&mut self, id: u64) {
        let now = self.now;
        let a = self.conn(id).unwrap().agent;
        let gap = self.server.task_gap;
        self.conn_mut(id).unwrap().next_unsolicited = now + self.rng.range(1, 2 * gap);
        let burst = if self.rng.chance(200) { self.rng.range(2, 6) } else { 1 };
        for _ in 0..burst {
            if self.rng.chance(800) {
                let object = ["", PRODUCT, PLUGIN_NAMES[0], PLUGIN_NAMES[1], "nosuch"][self.rng.below(5) as usize];
                let known =
                    object.is_empty() || object == PRODUCT || PLUGIN_NAMES[..self.sims[a].plan.plugins].contains(&object);
                self.server.task_seq += 1;
                let token = format!("T{a}-{}", self.server.task_seq);
                let payload: Vec<u8> = (0..self.rng.range(0, 32)).map(|i| i as u8).collect();
                self.server.checks[a].tasks.insert(token.clone(), known);
                let p = Push::task(object, 6000, &payload, &token);
                self.server.checks[a].open.push((token, p.clone()));
                self.server.collector.push(id, &p);
            } else {
                let name = ["rules", "limits"][self.rng.below(2) as usize];
                let version = ["1", "2", "3"][self.rng.below(3) as usize];
                let payload = vec![b'x'; self.rng.range_usize(2, 64)];
                self.server.collector.push(id, &Push::config(name, version, &payload));
            }
            self.server_flush(id);
        }
    }

    /// Checks a record the collector stores for the first time.
    fn validate_new(&mut self, a: usize, dt: u32, ts: u64, payload: &[u8]) {
        let now = self.now;
        let s = &self.sims[a];
        let store = &mut self.server.checks[a];
        let hb = s.plan.cfg.heartbeat_interval.as_millis();
        let gen = ts.wrapping_sub(s.plan.clock_offset);
        let on_schedule = gen >= s.plan.boot && (gen - s.plan.boot).is_multiple_of(hb) && gen <= now;
        let check_order = |last: &mut Option<u64>, ord: u64| {
            assert!(last.is_none_or(|o| o < ord), "t={now} agent {a}: records out of push order");
            *last = Some(ord);
        };
        match dt {
            data_type::AGENT_HEARTBEAT => {
                assert!(AgentHeartbeat::decode(payload).is_some(), "t={now} agent {a}: heartbeat does not decode");
                assert!(on_schedule, "t={now} agent {a}: heartbeat at {gen} is off its schedule");
                if let Some(&prev) = store.hb_gens.last() {
                    assert!(gen > prev, "t={now} agent {a}: heartbeats out of order");
                    let lossy = s.drop_times.partition_point(|&x| x < prev) < s.drop_times.len();
                    assert!(
                        lossy || gen - prev == hb,
                        "t={now} agent {a}: heartbeats at {prev} and {gen}, {hb} ms apart expected, nothing dropped"
                    );
                }
                store.hb_gens.push(gen);
            }
            data_type::PLUGIN_HEARTBEAT => {
                let p: PluginHeartbeat<'_> = postcard::from_bytes(payload).expect("plugin heartbeat decodes");
                assert!(PLUGIN_NAMES[..s.plan.plugins].contains(&p.name), "t={now} agent {a}: unknown plugin");
                assert_eq!(p.status, PluginStatus::Running);
                assert!(on_schedule, "t={now} agent {a}: plugin heartbeat off its schedule");
                store.plugin_hbs += 1;
            }
            data_type::TASK_RESULT => {
                let r: TaskResult<'_> = postcard::from_bytes(payload).expect("task result decodes");
                let known = *store.tasks.get(r.token).unwrap_or_else(|| panic!("t={now} agent {a}: result for unsent task"));
                store.open.retain(|(t, _)| t != r.token);
                if !store.results.insert(r.token.into()) {
                    // Only a resent task is answered twice, and only once the
                    // agent forgot its token (it remembers the last 8; a
                    // resend of a remembered token is ignored while its
                    // result is in the ring, and such a result was not
                    // delivered before).
                    assert!(store.resent.contains(r.token), "t={now} agent {a}: two results for {}", r.token);
                    store.double_results += 1;
                }
                match r.status {
                    task_status::OK => {
                        // Truncated only to fit a record: then it fills one.
                        let limit = s.plan.cfg.ring.max_record.min(MAX_TASK_RESULT_LEN);
                        let first = s.answered.get(r.token).expect("OK result the app gave");
                        let again = s.reanswered.get(r.token).into_iter().flatten();
                        // Of the app's answers to this token that match (two
                        // can be alike), the oldest one not yet stored.
                        let last = store.last_ord;
                        let (ord, _) = std::iter::once(first)
                            .chain(again)
                            .filter(|(_, msg)| {
                                msg.starts_with(r.message) && (r.message.len() == msg.len() || payload.len() + 3 >= limit)
                            })
                            .filter(|(o, _)| last.is_none_or(|l| *o > l))
                            .min_by_key(|(o, _)| *o)
                            .unwrap_or_else(|| panic!("t={now} agent {a}: task result message altered or out of push order"));
                        check_order(&mut store.last_ord, *ord);
                        store.ok_results.insert(r.token.into());
                    }
                    task_status::UNKNOWN_TARGET => assert!(!known, "t={now} agent {a}: known target reported unknown"),
                    task_status::DROPPED => assert!(known, "t={now} agent {a}: unknown target reported dropped"),
                    st => panic!("t={now} agent {a}: task status {st}"),
                }
            }
            dt if dt >= APP_TYPE_BASE => {
                assert!(payload.len() >= APP_HEADER, "t={now} agent {a}: short app record");
                let n = u64::from_le_bytes(payload[..8].try_into().unwrap());
                assert_eq!(payload[8] as usize, a, "t={now} agent {a}: another agent's record");
                let rec = s.apps.get(n as usize).unwrap_or_else(|| panic!("t={now} agent {a}: app record {n} never pushed"));
                assert!(rec.accepted, "t={now} agent {a}: app record {n} was refused but arrived");
                assert!(
                    rec.data_type == dt && rec.ts == ts && payload == app_payload(a, n, rec.len),
                    "t={now} agent {a}: app record {n} altered"
                );
                check_order(&mut store.last_ord, rec.ord);
                assert!(store.app_seen.insert(n));
            }
            dt => panic!("t={now} agent {a}: unexpected data type {dt}"),
        }
    }

    // ---- end of run -----------------------------------------------------------------

    fn final_checks(&mut self) {
        let now = self.now;
        for (a, s) in self.sims.iter().enumerate() {
            let drained = s.drained_at.unwrap_or_else(|| panic!("agent {a}: never drained"));
            let st = s.agent.stats();
            let store = &self.server.checks[a];
            assert_eq!(st.pushed, st.acked + st.dropped_evicted + s.agent.ring().len());
            let missing_apps = s.apps.iter().enumerate().filter(|(n, r)| r.accepted && !store.app_seen.contains(&(*n as u64))).count();
            let missing_answers = s.answered.keys().filter(|t| !store.ok_results.contains(*t)).count();
            let unanswered: Vec<&str> = store.open.iter().map(|(t, _)| t.as_str()).collect();
            assert!(unanswered.is_empty(), "agent {a}: tasks never answered, though resent in the final phase: {unanswered:?}");
            let missing = (missing_apps + missing_answers) as u64;
            if s.plan.cfg.ring.policy == OverflowPolicy::RejectNew {
                assert_eq!(missing, 0, "agent {a}: {missing_apps} app records, {missing_answers} answers lost");
            } else {
                assert!(
                    missing <= st.dropped_evicted,
                    "agent {a}: {missing} accepted records missing, only {} evicted",
                    st.dropped_evicted
                );
            }
            let horizon = self.final_resend_at.unwrap_or(now);
            assert!(
                s.drop_times.iter().rfind(|&&t| t < horizon).is_none_or(|&t| t <= drained),
                "agent {a}: a record was dropped after the drain (drained at {drained}, drops at {:?}): {st:?}",
                &s.drop_times[s.drop_times.len().saturating_sub(5)..]
            );
            // Every heartbeat scheduled after the drain arrived, one interval apart.
            let hb = s.plan.cfg.heartbeat_interval.as_millis();
            let flight = s.plan.cfg.flush_interval.as_millis() + 2 * s.plan.lat_max() + 2;
            // Until the final phase (whose answers may evict heartbeats).
            if s.failures_after_drain == 0 && horizon > drained + hb + flight {
                // Strictly after: a heartbeat refused at the drain instant is a drop before it.
                let first = s.plan.boot + ((drained - s.plan.boot) / hb + 1) * hb;
                let expect: Vec<u64> = (first..horizon - flight).step_by(hb as usize).collect();
                let got: Vec<u64> = store.hb_gens.iter().copied().filter(|&g| g >= first && g < horizon - flight).collect();
                assert_eq!(got, expect, "agent {a}: heartbeats after the drain");
            }
        }
    }

    fn summary(&self) -> Summary {
        let mut sm = Summary {
            agents: self.sims.len() as u64,
            sim_ms: self.now,
            faults: self.faults.len() as u64,
            damaged_closes: self.server.collector.damaged_closes(),
            busy_rejects: self.server.collector.busy_rejects(),
            double_results: self.server.checks.iter().map(|c| c.double_results).sum(),
            replaced: self.server.collector.replaced(),
            ..Default::default()
        };
        for s in &self.sims {
            let st = s.agent.stats();
            let store = self.server.collector.agent(s.name);
            sm.connections += st.connections;
            sm.failures += st.connect_failures;
            sm.records += store.records.len() as u64;
            sm.dups += store.dups;
            sm.gaps += store.gaps;
            sm.evicted += st.dropped_evicted;
            sm.refused += st.dropped_full;
            let d = s.drained_at.unwrap_or(self.now) - self.fault_end;
            sm.max_drain_ms = sm.max_drain_ms.max(d);
            sm.max_drain_permille = sm.max_drain_permille.max(d * 1000 / s.drain_bound);
            sm.max_timeouts_per_sec = sm.max_timeouts_per_sec.max(s.max_timeouts_per_sec);
            sm.max_polls_per_sec = sm.max_polls_per_sec.max(s.max_polls_per_sec);
        }
        sm
    }
}

impl Sim<'_> {
    fn roll_bucket(&mut self, now: u64) {
        let b = now / 1000;
        if b != self.bucket {
            self.prev_bucket_inputs = if b == self.bucket + 1 { self.bucket_inputs } else { 0 };
            self.bucket = b;
            self.bucket_timeouts = 0;
            self.bucket_polls = 0;
            self.bucket_inputs = 0;
        }
    }
}

fn check_push_delta(a: usize, now: u64, b: &AgentStats, s: &AgentStats, r: Result<(), PushError>, policy: OverflowPolicy) {
    let d = |x: u64, y: u64| y - x;
    let got = (d(b.pushed, s.pushed), d(b.dropped_full, s.dropped_full), d(b.dropped_too_large, s.dropped_too_large));
    let want = match r {
        Ok(()) => (1, 0, 0),
        Err(PushError::Full) => (0, 1, 0),
        Err(PushError::TooLarge) => (0, 0, 1),
    };
    assert_eq!(got, want, "t={now} agent {a}: push returned {r:?} but counters moved by {got:?}");
    assert_eq!(b.acked, s.acked, "t={now} agent {a}: push acked records");
    if r.is_err() || policy == OverflowPolicy::RejectNew {
        assert_eq!(b.dropped_evicted, s.dropped_evicted, "t={now} agent {a}: push evicted (result {r:?})");
    }
}

/// Flips bits or inserts garbage (sometimes a fake frame header).
fn corrupt_bytes(rng: &mut SplitMix, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    if rng.chance(600) {
        for _ in 0..rng.range(1, 2) {
            let i = rng.below(bytes.len() as u64) as usize;
            bytes[i] ^= 1 << rng.below(8);
        }
    } else {
        let mut junk: Vec<u8> = (0..rng.range(1, 16)).map(|_| rng.next_u64() as u8).collect();
        if rng.chance(500) {
            let mut fake = vec![MAGIC[0], MAGIC[1], VERSION, 4, 0];
            fake.extend_from_slice(&(rng.range(0, 3000) as u32).to_le_bytes());
            fake.append(&mut junk);
            junk = fake;
        }
        let at = rng.range_usize(0, bytes.len());
        bytes.splice(at..at, junk);
    }
}

struct Mem {
    ring: Vec<u8>,
    rx: Vec<u8>,
    events: Vec<u8>,
}

fn run_seed(seed: u64) -> Summary {
    let mut rng = SplitMix::new(seed ^ 0xED6E_A6E7_51A0_0001);
    let n = rng.range_usize(3, 8);
    let fault_end = rng.range(30_000, 120_000);
    let plans: Vec<Plan> = (0..n).map(|_| Plan::random(&mut rng)).collect();
    let need = plans.iter().map(|p| OVERHEAD + BATCH_HEADER_MAX + p.cfg.ring.max_record + MAX_ENTRY_HEADER).max().unwrap();
    let server_max = rng.range_usize(need, 8192);
    let task_gap = if rng.chance(300) { rng.range(100, 1000) } else { rng.range(1000, 20_000) };
    let faults = gen_faults(&mut rng, &plans, fault_end);
    let names: Vec<String> = (0..n).map(|i| format!("agent-{i}")).collect();
    let mut mems: Vec<Mem> = plans
        .iter()
        .map(|p| Mem { ring: vec![0; p.ring_cap], rx: vec![0; p.rx_len], events: vec![0; p.ev_len] })
        .collect();
    let mut slots = support::peer::storage(n * SLOTS_PER_AGENT, server_max as u32);
    let sims: Vec<Sim<'_>> = mems
        .iter_mut()
        .zip(&plans)
        .zip(&names)
        .map(|((m, p), name)| {
            let id = Identity {
                agent_id: name,
                hostname: "sim-host",
                product: PRODUCT,
                version: "1.0",
                intranet_ipv4: &[10, 0, 0, 1],
                intranet_ipv6: &[],
                extranet_ipv4: &[],
                extranet_ipv6: &[],
                auth_token: b"token",
            };
            let storage = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
            let mut agent = Agent::new(p.cfg, id, storage).expect("valid config");
            let plugin_ids = PLUGIN_NAMES[..p.plugins]
                .iter()
                .map(|name| {
                    let id = agent.register_plugin(name, "1.0").unwrap();
                    agent.set_plugin_status(id, 4242, PluginStatus::Running).unwrap();
                    id
                })
                .collect();
            Sim {
                agent,
                plan: p.clone(),
                name,
                plugin_ids,
                booted: false,
                conn: None,
                attempt: None,
                failures: 0,
                consecutive: 0,
                failing_since: None,
                advice: 0,
                ep: 0,
                ep_fail: 0,
                connected_since: None,
                expect_connect: None,
                expect_gaveup: false,
                reject_retry: None,
                reconnect_at: None,
                next_push: 0,
                apps: Vec::new(),
                ord: 0,
                answers: Vec::new(),
                answered: HashMap::new(),
                last: AgentStats::default(),
                drop_times: Vec::new(),
                last_delivered: 0,
                failures_after_drain: 0,
                bucket: 0,
                bucket_timeouts: 0,
                bucket_polls: 0,
                bucket_inputs: 0,
                prev_bucket_inputs: 0,
                instant: u64::MAX,
                instant_timeouts: 0,
                max_timeouts_per_sec: 0,
                max_polls_per_sec: 0,
                drain_bound: p.drain_bound(server_max),
                backlog: None,
                drained_at: None,
                down_corruptions: 0,
                reanswered: HashMap::new(),
                final_due: None,
                final_token: None,
            }
        })
        .collect();
    let max_bound = sims.iter().map(|s| s.drain_bound).max().unwrap();
    let max_hb = plans.iter().map(|p| p.cfg.heartbeat_interval.as_millis()).max().unwrap();
    let real = collector_is_real();
    let naive = real || env_u64("EDGE_SIM_NAIVE_COLLECTOR").is_some_and(|v| v != 0);
    let cfg = PeerConfig {
        max_frame: server_max as u32,
        repeat_ack_after_pong: !naive,
        close_on_damage: !naive,
        retry_window_ms: if rng.chance(500) { rng.range(100, 8000) as u32 } else { 0 },
        ..PeerConfig::default()
    };
    let collector = if real {
        // Drawn from a generator of their own, so the rest of the run draws
        // as it does against the peer (a seed is the same fleet, faults and
        // traffic for both collectors).
        let mut own = SplitMix::new(seed ^ 0xC011_EC70_0000_0002);
        Backend::Real(Collector::new(real_config(&mut own, server_max as u32, n), &mut slots))
    } else {
        Backend::Peer(Peer::new(cfg, &mut slots))
    };
    let server = Server {
        collector,
        max_frame: server_max,
        checks: (0..n).map(|_| Checks::default()).collect(),
        task_seq: 0,
        task_gap,
        naive,
    };
    let mut w = World {
        trace: env_u64("EDGE_SIM_TRACE").map(|a| a as usize),
        rng,
        now: 0,
        fault_end,
        end: fault_end + max_bound + 3 * max_hb + 1000,
        final_start: None,
        final_resend_at: None,
        steps: 0,
        faults,
        next_fault: 0,
        sims,
        server,
        conns: Vec::new(),
        next_conn_id: 0,
        tx: vec![0; 16 * 1024],
    };
    w.run();
    w.summary()
}

/// Whether the run is against the real collector (the default) or the test
/// peer (`EDGE_SIM_COLLECTOR=peer`).
fn collector_is_real() -> bool {
    match std::env::var("EDGE_SIM_COLLECTOR").as_deref() {
        Err(_) | Ok("real") | Ok("") => true,
        Ok("peer") => false,
        Ok(v) => panic!("EDGE_SIM_COLLECTOR={v:?}: `real` (default) or `peer`"),
    }
}

/// The real collector's settings for one seed: its `max_frame`, and an
/// admission rate from 2 to 40 handshakes a second (a restart's reconnect
/// of 3-8 agents meets Busy answers with slots), burst tolerance 0-200 ms,
/// 0-16 reservations, slots honoured 0.2-1 s late, at most `RETRY_AFTER_MAX`
/// ahead (the drain bound's wait); the Accept advises the time to admit
/// the `fleet`.
fn real_config(rng: &mut SplitMix, max_frame: u32, fleet: usize) -> CollectorConfig {
    let rate_per_sec = if rng.chance(200) { 0 } else { rng.range(2, 40) as u32 };
    CollectorConfig {
        max_frame,
        admission: AdmissionConfig {
            rate_per_sec,
            burst: std::time::Duration::from_millis(rng.range(0, 200)),
            max_reservations: rng.range_usize(0, 16),
            forget_after: std::time::Duration::from_millis(rng.range(200, 1000)),
            max_wait: std::time::Duration::from_millis(RETRY_AFTER_MAX),
        },
        seed: rng.next_u64(),
        fleet,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

#[test]
fn fleet_simulation() {
    let seeds: Vec<u64> = match env_u64("EDGE_SIM_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("EDGE_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    };
    let threads = env_u64("EDGE_SIM_THREADS")
        .map(|t| t.max(1) as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)));
    // EDGE_SIM_KEEP_GOING=1 runs every seed even after a failure.
    let keep_going = env_u64("EDGE_SIM_KEEP_GOING").is_some_and(|v| v != 0);
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failed = Mutex::new(Vec::new());
    let total = Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= seeds.len() || stop.load(Ordering::Relaxed) {
                    return;
                }
                let seed = seeds[i];
                match panic::catch_unwind(AssertUnwindSafe(|| run_seed(seed))) {
                    Ok(s) => {
                        let mut t = total.lock().unwrap();
                        t.agents += s.agents;
                        t.sim_ms += s.sim_ms;
                        t.faults += s.faults;
                        t.connections += s.connections;
                        t.failures += s.failures;
                        t.records += s.records;
                        t.dups += s.dups;
                        t.gaps += s.gaps;
                        t.damaged_closes += s.damaged_closes;
                        t.busy_rejects += s.busy_rejects;
                        t.replaced += s.replaced;
                        t.double_results += s.double_results;
                        t.evicted += s.evicted;
                        t.refused += s.refused;
                        t.max_drain_ms = t.max_drain_ms.max(s.max_drain_ms);
                        t.max_drain_permille = t.max_drain_permille.max(s.max_drain_permille);
                        t.max_timeouts_per_sec = t.max_timeouts_per_sec.max(s.max_timeouts_per_sec);
                        t.max_polls_per_sec = t.max_polls_per_sec.max(s.max_polls_per_sec);
                        if seeds.len() == 1 {
                            println!("seed {seed}: {s:?}");
                        }
                    }
                    Err(_) => {
                        eprintln!("simulation failed: replay with EDGE_SIM_SEED={seed}");
                        failed.lock().unwrap().push(seed);
                        stop.store(!keep_going, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap();
    let t = total.into_inner().unwrap();
    println!("{} seeds: {t:?}", seeds.len());
    assert!(failed.is_empty(), "simulation failed for EDGE_SIM_SEED={failed:?}");
}
