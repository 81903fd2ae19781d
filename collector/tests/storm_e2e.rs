//! A reconnect storm end to end (issue 10: "the real collector over
//! loopback for the smaller sizes"): 200 real agents, each
//! `agent_core::Agent` at its default backoff driven by the `Driver` over
//! TCP in a thread of its own, connected to the collector binary admitting
//! 100 handshakes per second (N / R = 2 s). The collector is killed (-9),
//! stays down 3 s, and comes back on the same port and data dir. Measured
//! from its restart: the time until every agent is connected again, the
//! handshakes that cost (the fresh process's counters), the agents' own
//! attempts; afterwards every record pushed is in the sink exactly once.
//!
//! The same storm against `--admission-rate 0` (no pacing, no advice) is
//! the control: its numbers are printed for comparison, not held to the
//! targets; it is ignored by default (it alone can take longer than the
//! 40 s this file is allowed): `cargo test -p edge-collector --test
//! storm_e2e -- --include-ignored --nocapture`.

mod common;

use agent_core::driver::Driver;
use agent_core::{Agent, AgentConfig, AgentStats, AgentStorage, Duration as AgentDuration, Event, Identity, PushError, Record};
use common::agent::{text_of, StdClock, TcpConnector};
use common::{collector, http, json, sink_view, wait_for, Rng, TempDir};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Agents.
const N: usize = 200;
/// The paced collector's `--admission-rate`: N / R = 2 s.
const RATE: u64 = 100;
/// How long the collector stays down.
const OUTAGE: Duration = Duration::from_secs(3);
/// Records each agent pushes, one every [`EVERY`] from its start: they
/// span the first start, the outages and the restarts.
const RECORDS: u32 = 8;
const EVERY: Duration = Duration::from_millis(1500);
const TOKEN: &str = "api-token-for-tests";

/// Each storm takes most of the machine (200 agent threads and the
/// collector on two cores): the tests of this file run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One step of an agent, as its thread saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The agent asked for a connection (`Event::Connect`).
    Attempt,
    /// A handshake completed (`Event::Connected`).
    Connected,
    /// A failure (`Event::Disconnect`: a refused connect, a Reject, a lost
    /// connection), with the backoff's window and draw for the next
    /// attempt (a Busy slot may replace the draw).
    Disconnect { ceiling_ms: u64, delay_ms: u64 },
}

/// What an agent's thread shares while it runs: its steps, each with the
/// instant and the agent's `connect_failures` then, and whether everything
/// it pushed is acked.
#[derive(Default)]
struct Trace {
    steps: Mutex<Vec<(Instant, Step, u64)>>,
    drained: AtomicBool,
}

/// What an agent's thread returns.
struct AgentEnd {
    id: String,
    /// Indexes of the records the ring took.
    pushed: Vec<u32>,
    refused: u32,
    stats: AgentStats,
}

fn agent_id(i: usize) -> String {
    format!("storm-{i:03}")
}

/// One real agent at `AgentConfig::default()` (the default backoff: base
/// 500 ms, cap 60 s, no fleet window; only the jitter seed differs), with
/// the memory of the storm simulation's agents (4 KiB ring, 1 KiB receive
/// buffer, 512-byte event queue). Pushes [`RECORDS`] records, one every
/// [`EVERY`], and runs until `stop`.
fn storm_agent(i: usize, addr: SocketAddr, seed: u64, stop: &AtomicBool, trace: &Trace) -> AgentEnd {
    let id = agent_id(i);
    let (mut ring, mut rx, mut events) = (vec![0u8; 4096], vec![0u8; 1024], vec![0u8; 512]);
    let mut buf = vec![0u8; 8192 + 64];
    let identity = Identity { agent_id: &id, hostname: "storm-host", product: "edge-test", version: "1.0", ..Identity::default() };
    let cfg = AgentConfig { rng_seed: seed, ..AgentConfig::default() };
    let agent = Agent::new(cfg, identity, AgentStorage { ring: &mut ring, rx: &mut rx, events: &mut events }).expect("valid agent config");
    let mut driver = Driver::new(agent, StdClock(Instant::now()), TcpConnector(addr), &mut buf).expect("buffer");
    let mut on_event = |ev: Event<'_>, agent: &mut Agent<'_>, _| {
        let step = match ev {
            Event::Connect { .. } => Step::Attempt,
            Event::Connected { .. } => Step::Connected,
            Event::Disconnect { .. } => {
                let r = agent.last_retry();
                Step::Disconnect { ceiling_ms: r.map_or(0, |r| r.ceiling.as_millis()), delay_ms: r.map_or(0, |r| r.delay.as_millis()) }
            }
            _ => return,
        };
        trace.steps.lock().unwrap().push((Instant::now(), step, agent.stats().connect_failures));
    };
    let every = AgentDuration::from_millis(EVERY.as_millis() as u64);
    let mut next_push = driver.now();
    let (mut pushed, mut refused, mut n) = (Vec::new(), 0, 0);
    while !stop.load(Ordering::Relaxed) {
        if n < RECORDS && driver.now() >= next_push {
            let text = text_of(&id, n, 16);
            match driver.push(&Record::new(2001, 1_700_000_000_000 + u64::from(n), text.as_bytes())) {
                Ok(()) => pushed.push(n),
                Err(PushError::Full) => refused += 1,
                Err(e) => panic!("{id}: push: {e:?}"),
            }
            n += 1;
            next_push = next_push + every;
        }
        let wake = if n < RECORDS { next_push } else { driver.now() + AgentDuration::from_millis(100) };
        driver.run_until(wake, |_| stop.load(Ordering::Relaxed), &mut on_event);
        trace.drained.store(n == RECORDS && driver.agent().is_drained(), Ordering::Relaxed);
    }
    driver.close();
    let soon = driver.now() + AgentDuration::from_millis(200);
    driver.run_until(soon, |_| true, &mut on_event);
    let stats = driver.agent().stats();
    drop(driver);
    AgentEnd { id, pushed, refused, stats }
}

/// The agents, each in its thread; told to stop on drop.
struct Fleet {
    stop: Arc<AtomicBool>,
    traces: Vec<Arc<Trace>>,
    threads: Vec<JoinHandle<AgentEnd>>,
}

impl Fleet {
    fn start(addr: SocketAddr, seed: u64) -> Fleet {
        let stop = Arc::new(AtomicBool::new(false));
        let mut rng = Rng(seed);
        let traces: Vec<Arc<Trace>> = (0..N).map(|_| Arc::default()).collect();
        let threads = traces
            .iter()
            .enumerate()
            .map(|(i, trace)| {
                let (stop, trace, seed) = (stop.clone(), trace.clone(), rng.next());
                std::thread::Builder::new().stack_size(256 * 1024).spawn(move || storm_agent(i, addr, seed, &stop, &trace)).unwrap()
            })
            .collect();
        Fleet { stop, traces, threads }
    }

    /// Agents whose handshake completed at or after `since`.
    fn connected_since(&self, since: Instant) -> usize {
        let back = |t: &Arc<Trace>| t.steps.lock().unwrap().iter().any(|&(at, s, _)| at >= since && s == Step::Connected);
        self.traces.iter().filter(|t| back(t)).count()
    }

    fn drained(&self) -> bool {
        self.traces.iter().all(|t| t.drained.load(Ordering::Relaxed))
    }

    /// Stops every agent and joins its thread.
    fn stop(mut self) -> Vec<AgentEnd> {
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.threads).into_iter().map(|t| t.join().expect("an agent thread panicked")).collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A free loopback port below the ephemeral range. During an outage the
/// agents' refused connects take ephemeral source ports, and one that
/// happened to be the collector's port would connect to itself (Linux's
/// TCP self-connect) and hold the port, so that the restart could not
/// bind it.
fn port_below_ephemeral(rng: &mut Rng) -> u16 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let low: u64 = range.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(32768);
    assert!(low > 11000, "ephemeral ports from {low}");
    (0..100)
        .map(|_| (10000 + rng.below(low - 10000)) as u16)
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below the ephemeral range")
}

fn raise_open_files() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    assert!(hard >= 4 * N as u64, "the open-file limit {hard} is too low for this test");
}

/// Agents the collector's registry shows online.
fn online(api: SocketAddr) -> usize {
    let (status, body) = http(api, "GET", "/agents", Some(TOKEN), None);
    assert_eq!(status, 200, "{body}");
    json(&body)["agents"].as_array().unwrap().iter().filter(|a| a["status"] == "online").count()
}

/// The collector's metrics, by name without the `edge_collector_` prefix.
fn metrics(api: SocketAddr) -> HashMap<String, u64> {
    let (status, body) = http(api, "GET", "/metrics", Some(TOKEN), None);
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter_map(|l| l.strip_prefix("edge_collector_"))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// One restart, measured from the collector's ready line (`up`).
#[derive(Debug, Clone)]
struct Restart {
    /// Until the collector had sent N Accepts and every agent had its
    /// handshake (polled every 50 ms).
    back: Duration,
    /// Until its registry showed every agent online (flushed every 0.2 s).
    registry: Duration,
    /// The fresh process's counters once every agent was back.
    admissions: u64,
    paced: u64,
    connections: u64,
    claimed: u64,
    expired: u64,
    /// The longest sink commit (an fsync). An Accept waits for one only
    /// when its resume request shares a group with records being written.
    commit_max: Duration,
    agents: AgentSide,
}

impl Restart {
    /// Hellos the collector judged: admitted (at the rate or claiming a
    /// slot) or told Busy.
    fn handshakes(&self) -> u64 {
        self.admissions + self.paced
    }
}

/// The same restart by the agents' own account (their traces).
#[derive(Debug, Clone, Default)]
struct AgentSide {
    /// Until the last agent's handshake.
    back: Duration,
    /// Until the last agent's accepted attempt began (its connect, then
    /// its Hello): when the pacing let the last one in, before the
    /// collector's own work on the handshake.
    last_hello: Duration,
    /// Connect attempts while the collector was down.
    attempts_down: usize,
    /// Connect attempts from `up` until each agent was back, and the most
    /// by one agent.
    attempts_up: usize,
    attempts_up_max: usize,
    /// `connect_failures` over the same span.
    failures_up: u64,
    /// The last agent back: its last steps.
    slowest: String,
}

/// What the agents' traces say about the restart whose collector went
/// down at `down` and was back at `up`.
fn agent_side(fleet: &Fleet, down: Instant, up: Instant) -> AgentSide {
    let mut a = AgentSide::default();
    let mut slowest = 0;
    for (i, t) in fleet.traces.iter().enumerate() {
        let steps = t.steps.lock().unwrap();
        let c = steps.iter().position(|&(at, s, _)| at >= down && s == Step::Connected);
        let c = c.unwrap_or_else(|| panic!("{}: not back: {steps:?}", agent_id(i)));
        let (at, _, failures) = steps[c];
        if at.saturating_duration_since(up) > a.back {
            a.back = at.saturating_duration_since(up);
            slowest = i;
        }
        if let Some(&(hello, _, _)) = steps[..c].iter().rev().find(|&&(_, s, _)| s == Step::Attempt) {
            a.last_hello = a.last_hello.max(hello.saturating_duration_since(up));
        }
        a.attempts_down += steps.iter().filter(|&&(at, s, _)| at >= down && at < up && s == Step::Attempt).count();
        let mine: Vec<u64> = steps[..c].iter().filter(|&&(at, s, _)| at >= up && s == Step::Attempt).map(|&(_, _, f)| f).collect();
        a.attempts_up += mine.len();
        a.attempts_up_max = a.attempts_up_max.max(mine.len());
        a.failures_up += mine.first().map_or(0, |&f0| failures - f0);
    }
    a.slowest = last_steps(fleet, slowest, up);
    a
}

/// Milliseconds from `up` (negative before).
fn ms_from(up: Instant, at: Instant) -> i64 {
    if at >= up {
        at.duration_since(up).as_millis() as i64
    } else {
        -(up.duration_since(at).as_millis() as i64)
    }
}

/// Agent `i`'s last steps, ms from `up`, with its `connect_failures`.
fn last_steps(fleet: &Fleet, i: usize, up: Instant) -> String {
    let steps = fleet.traces[i].steps.lock().unwrap();
    let last: Vec<String> = steps.iter().rev().take(12).rev().map(|&(at, s, f)| format!("{}:{s:?}({f})", ms_from(up, at))).collect();
    format!("{}: {}", agent_id(i), last.join(" "))
}

/// The agents without a handshake since `down`, with their last steps,
/// for a failure message.
fn not_back(fleet: &Fleet, down: Instant, up: Instant) -> String {
    let mut out = format!("down at {} ms\n", ms_from(up, down));
    for (i, t) in fleet.traces.iter().enumerate() {
        if !t.steps.lock().unwrap().iter().any(|&(at, s, _)| at >= down && s == Step::Connected) {
            out.push_str(&last_steps(fleet, i, up));
            out.push('\n');
        }
    }
    out
}

/// A storm: the collector with `--admission-rate rate`, N agents
/// connected, then `restarts` times killed, down for [`OUTAGE`] and back.
/// Every agent must be back within `limit` of each restart, and every
/// record in the sink once at the end.
fn storm(label: &str, rate: u64, restarts: usize, limit: Duration) -> Vec<Restart> {
    raise_open_files();
    let seed = common::seed();
    let dir = TempDir::new(label);
    let listen = format!("127.0.0.1:{}", port_below_ephemeral(&mut Rng(seed)));
    let rate_arg = rate.to_string();
    let args = ["--admission-rate", &rate_arg, "--registry-flush", "0.2", "--api-token", TOKEN, "--api-listen", "127.0.0.1:0", "--listen", &listen];
    let mut col = collector().start(dir.path(), &args);
    let t0 = Instant::now();
    let fleet = Fleet::start(col.agents, seed);
    let api = col.api.unwrap();
    // Connected by the agents' account (the collector counts an Accept,
    // and its registry an agent online, before the Accept is written), and
    // online in the registry, which the restarted collector counts as its
    // fleet.
    let first = wait_for(limit, || (fleet.connected_since(t0) == N && online(api) == N).then(|| t0.elapsed()));
    let first = first.unwrap_or_else(|| panic!("{label}: {} of {N} connected {limit:?} after the start", fleet.connected_since(t0)));
    let m = metrics(api);
    eprintln!(
        "{label}: first start: all {N} connected after {:.2} s; {} handshakes ({} admitted, {} Busy); longest sink commit {} ms",
        first.as_secs_f64(),
        m["admissions_total"] + m["rejects_paced_total"],
        m["admissions_total"],
        m["rejects_paced_total"],
        m["sink_commit_micros_max"] / 1000,
    );
    let mut out = Vec::new();
    for k in 1..=restarts {
        col.kill9();
        let down = Instant::now();
        std::thread::sleep(OUTAGE);
        col = collector().start(dir.path(), &args);
        let up = Instant::now();
        let api = col.api.unwrap();
        // Back: the collector has sent N Accepts (each agent is accepted
        // once after the restart: checked at the end, one session per
        // start) and every agent has its handshake.
        let back = wait_for(limit, || (metrics(api)["accepts_total"] >= N as u64 && fleet.connected_since(down) == N).then(|| up.elapsed()));
        let back = back.unwrap_or_else(|| {
            let accepted = metrics(api)["accepts_total"];
            panic!("{label}: restart {k}: {accepted} of {N} accepted {limit:?} after it; not back (ms from up):\n{}", not_back(&fleet, down, up))
        });
        let registry = wait_for(Duration::from_secs(5), || (online(api) == N).then(|| up.elapsed()));
        let registry = registry.unwrap_or_else(|| panic!("{label}: restart {k}: {} of {N} online in the registry", online(api)));
        let m = metrics(api);
        let r = Restart {
            back,
            registry,
            admissions: m["admissions_total"],
            paced: m["rejects_paced_total"],
            connections: m["connections_total"],
            claimed: m["reservations_claimed_total"],
            expired: m["reservations_expired_total"],
            commit_max: Duration::from_micros(m["sink_commit_micros_max"]),
            agents: agent_side(&fleet, down, up),
        };
        let a = &r.agents;
        eprintln!(
            "{label}: restart {k}: all {N} back after {:.2} s (the agents: last accepted attempt {:.2} s, last handshake {:.2} s; \
             all online in the registry {:.2} s); {} handshakes = {} admitted + {} Busy ({} slots claimed, {} lapsed); \
             {} TCP connections; longest sink commit {} ms; the agents: {} attempts while down, {} from up until back \
             (at most {} by one), {} failures; the last back, ms from up: {}",
            r.back.as_secs_f64(),
            a.last_hello.as_secs_f64(),
            a.back.as_secs_f64(),
            r.registry.as_secs_f64(),
            r.handshakes(),
            r.admissions,
            r.paced,
            r.claimed,
            r.expired,
            r.connections,
            r.commit_max.as_millis(),
            a.attempts_down,
            a.attempts_up,
            a.attempts_up_max,
            a.failures_up,
            a.slowest,
        );
        out.push(r);
    }
    assert!(wait_for(Duration::from_secs(15), || fleet.drained().then_some(())).is_some(), "{label}: every record acked");
    let ends = fleet.stop();
    drop(col);
    let sink = sink_view(dir.path());
    for e in &ends {
        assert_eq!((e.refused, e.pushed.len()), (0, RECORDS as usize), "{}: every record taken", e.id);
        let mut texts = sink.texts.get(&e.id).cloned().unwrap_or_default();
        texts.sort();
        let mut want: Vec<String> = e.pushed.iter().map(|&n| text_of(&e.id, n, 16)).collect();
        want.sort();
        assert_eq!(texts, want, "{}: every record in the sink, once", e.id);
        assert_eq!(e.stats.connections, restarts as u64 + 1, "{}: one session per start of the collector", e.id);
    }
    out
}

/// The target for the time until every agent is back: 1.5 x N / R.
const TARGET_BACK: Duration = Duration::from_millis(1500 * N as u64 / RATE);

/// The targets for each restart (`storm/src/targets.rs`), on the
/// real collector over loopback, with the slack a real, loaded 2-core
/// machine needs (each stated with what was measured; BENCHMARKS.md,
/// "Reconnect storm (issue 10)").
///
/// The first restart follows a first start into an empty registry, where
/// each Accept's advice counted the connections open then (10 ms to 2 s),
/// the second one a fleet that had its full advice (2 s): both are held to
/// the targets.
#[test]
fn a_storm_of_real_agents_is_paced() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let restarts = storm("paced", RATE, 2, Duration::from_secs(20));
    for (k, r) in restarts.iter().enumerate() {
        let k = k + 1;
        // Paced: at the restart the fleet retries at about 2N / W = 2R per
        // second, so about half of the first Hellos find no room (measured:
        // 176-194 Busy of 200).
        assert!(r.paced > 0, "restart {k}: no Busy reject: {r:?}");
        // Each agent's first Hello after the restart is admitted or given a
        // slot, where it is admitted: at most 2N. Slack N / 20 for claims
        // judged again because they came more than 1 s late on a loaded
        // machine (measured: 376-394, never above 2N, also under load).
        assert!(r.handshakes() <= 2 * N as u64 + N as u64 / 20, "restart {k}: {} handshakes: {r:?}", r.handshakes());
        // The pacing let the last agent in within the target. Slack 0.5 s
        // for agent threads woken late on a loaded machine (measured: the
        // last accepted attempt began 1.96-2.05 s after the restart, also
        // with a build and busy loops alongside).
        let slack = Duration::from_millis(500);
        assert!(r.agents.last_hello <= TARGET_BACK + slack, "restart {k}: last accepted attempt {:?} after the restart: {r:?}", r.agents.last_hello);
        // Every agent back within the target, end to end. Slack 3 s: an
        // Accept waits for the commit thread (an fdatasync of the records
        // file when its group also writes records; a group of handshakes
        // alone skips it) and a registry read, which take seconds when the
        // disk is busy (measured, before handshake-only groups skipped the
        // fsync: all back after 2.03-2.07 s without a build running;
        // 2.01-4.77 s with a release build alongside, the longest sink
        // commit 3.0 s). The unpaced control takes 8-19 s.
        let slack = Duration::from_secs(3);
        assert!(
            r.back <= TARGET_BACK + slack,
            "restart {k}: back after {:?}, target {TARGET_BACK:?} + {slack:?} (longest sink commit {:?}): {r:?}",
            r.back,
            r.commit_max
        );
    }
}

/// The control: the same storm against a collector that does not pace
/// (`--admission-rate 0`: no Busy slots, no advice), so that the agents'
/// own exponential backoff decides when they come back: for the printed
/// numbers, held only to "all back" within a generous bound. Ignored by
/// default because that backoff makes it long, and by chance longer than
/// the file's 40-s budget (BENCHMARKS.md, "On the real collector", has the
/// times measured and modelled).
#[test]
#[ignore = "the control takes 10-60 s: run with --include-ignored"]
fn control_the_same_storm_unpaced() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let restarts = storm("unpaced", 0, 1, Duration::from_secs(60));
    assert_eq!(restarts[0].paced, 0);
}
