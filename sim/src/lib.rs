//! Deterministic fleet simulation: several [`Agent`](agent_core::agent::Agent)s against the real
//! collector's sans-IO code (`edge_collector::{session, ledger, admission}`
//! and its line writer, wired as `conn.rs` wires them: [`collector`]) or,
//! with `EDGE_SIM_COLLECTOR=peer`, against the shared test collector
//! (`edge_testkit::peer`, the same peer the agent and
//! driver tests use: [`peer`]), over a faulty simulated network, on one
//! simulated clock. It is a crate of its own because it depends on both
//! agent-core and edge-collector; its tests (`tests/simulation.rs`,
//! `tests/digest.rs`) run it.
//!
//! # Where what lives
//!
//! State types at the bottom, each with the methods that need only it; the
//! steps that touch several of them (an agent's frame written on a link and
//! delivered to the collector, say) are the world's, one level up. No
//! module imports one that imports it (`scripts/module-cycles.py`).
//!
//! | module | what it models |
//! |---|---|
//! | `rng` | the one seeded generator every draw comes from |
//! | `app` | the app on an agent: names, record payloads, answer delay |
//! | `plan` | one agent's configuration and environment; its drain bound |
//! | `agent` | one agent under test and the driver's model of it |
//! | `backoff_model` | the reconnect backoff of PROTOCOL.md, computed independently |
//! | `link` | connections: two byte streams of queued chunks each |
//! | `faults` | fault generation; which faults are active |
//! | [`collector`] | the real collector's sans-IO core behind the peer's interface |
//! | [`backend`] | either collector |
//! | `server` | the collector side: the collector and what is checked about it |
//! | `invariants` | the checks after every push and round, per stored record, at the end |
//! | `world` | the clock and the event-driven main loop; its children, the steps: |
//! | `world/agent.rs` | the agents driven in the documented call order, events checked |
//! | `world/app.rs` | pushes, task answers, `reconnect_now` |
//! | `world/link.rs` | latency, jitter, chunking, corruption, stalls, deliveries, cuts |
//! | `world/faults.rs` | how each fault acts when it starts |
//! | `world/server.rs` | frames to the collector and checked, tasks and configs sent |
//! | `world/drain.rs`, `world/final_phase.rs` | the drain bound; task resends at the end of a run |
//! | [`seed`](run_seed), [`fleet`](run_fleet) | one seed's run; many seeds on threads |
//! | [`Summary`], [`SeedRun`], [`digest`] | what a run did; the regression digest |
//!
//! # Model
//!
//! * **Clock.** One `u64` millisecond clock per run. Nothing reads the OS
//!   clock. The driver is event-driven: it jumps straight to the earliest of
//!   every agent's `poll_timeout()`, the next network delivery, connect
//!   outcome, fault, app push or task answer. It never steps or spins.
//! * **Agents.** 3 to 8 per seed, each with its own configuration drawn from
//!   the seed: both [`OverflowPolicy`](agent_core::ring::OverflowPolicy) values, small (one to a few records)
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
//!   ([`Collector`](collector::Collector)): `first_frame` judges the Hello, the `Admission` (its
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
//! * **Collector (`EDGE_SIM_COLLECTOR=peer`).** The test peer ([`Peer`](peer::Peer)), which follows PROTOCOL.md
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
//!   [`Note`](peer::Note) the simulation checks (below); a protocol error by the agent
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
//!   `poll_timeout()` may be `<= t` at most `SAME_INSTANT_TIMEOUTS` (3) times
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
//! events. `EDGE_SIM_KEEP_GOING=1` runs every seed despite failures;
//! `EDGE_SIM_DIGEST=<file>` writes each passed seed's [`SeedRun::digest_line`]
//! there, one line per seed in seed order (to compare two versions of the
//! simulation seed by seed). 2000 seeds take about 10 s in release on two
//! idle cores.
//!
//! `tests/digest.rs` pins the first seeds: a fixed [`digest`] of their
//! lines, against both collectors, recorded before the simulation was split
//! into these modules. A change that alters what a seed draws or does fails
//! it; update its constants only for a change meant to alter the runs.

#![forbid(unsafe_code)]

mod agent;
mod app;
pub mod backend;
mod backoff_model;
pub mod collector;
mod faults;
mod fleet;
mod invariants;
mod link;
mod options;
mod plan;
mod rng;
mod seed;
mod server;
mod summary;
mod world;

// The test peer from the test kit, the same collector the agent's unit,
// driver and pair tests use.
pub use edge_testkit::peer;

pub use fleet::{run_fleet, FleetOutcome};
pub use options::{env_u64, CollectorKind, Options};
pub use seed::run_seed;
pub use summary::{digest, SeedRun, Summary};
