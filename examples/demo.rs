//! The edge-agent demo: the real collector and five agents on loopback, no
//! setup, with faults.
//!
//! ```sh
//! cargo run --release --example demo              # from the workspace root
//! cargo run --release --example demo | jq -c .    # and the stored records, as JSON lines
//! ```
//!
//! What happens, in about five seconds:
//!
//! 1. **edge-collector** starts in this process on free loopback ports, with
//!    a temporary data directory: the JSON-lines file sink (fsync'd, group
//!    commit), the SQLite registry and the HTTP API with a bearer token.
//! 2. Five **agents**, one thread each: each pushes 150 readings, 20 ms
//!    apart, and heartbeats every second. `agent-1` to `agent-4` run
//!    `agent_core::driver::Driver` over `std::net::TcpStream`; `agent-1`
//!    and `agent-2` connect directly; `agent-3` goes through a proxy that
//!    **cuts** every connection after a few kilobytes; `agent-4` through a
//!    proxy that **corrupts** the byte stream (a flipped bit in about one
//!    chunk in thirty, both ways). `agent-5` connects directly and is driven
//!    only through the **C ABI** (the `ea_*` functions of `agent-ffi`, in a
//!    C daemon's call order, with caller-declared storage and its own
//!    socket loop: `demo/c_abi_agent.rs`).
//! 3. A **task** for `agent-1`'s `scanner` plugin goes in through the HTTP
//!    API (`POST /agents/agent-1/tasks`); the agent answers it, the answer
//!    travels back as a record, and `GET /tasks/{token}` shows the result.
//! 4. The collector is **restarted** once (a graceful stop and a start on
//!    the same port and data directory): the agents reconnect, and the
//!    Accept's resume point, rebuilt from the sink's file, tells each what
//!    is already stored.
//! 5. A **closing table**, from the sink's file: per agent, readings
//!    pushed, delivered exactly once, duplicates, dropped (by reason), lost,
//!    reconnects, heartbeats, last RTT, tasks round-tripped. The exit status
//!    is 1 on any loss or duplicate.
//!
//! Progress is told on **stderr**; stdout gets the stored records at the end
//! when it is not a terminal.

#[path = "demo/c_abi_agent.rs"]
mod c_abi_agent;
#[path = "demo/tcp_transport.rs"]
mod tcp_transport;
#[path = "demo/workload.rs"]
mod workload;

use tcp_transport::TcpTransport;
use workload::{unix_ms, Report, AGENT_DEADLINE, READING, READINGS, READING_EVERY};

use agent_core::backoff::BackoffConfig;
use agent_core::driver::{Clock, Connector, Driver, RunEnd};
use agent_core::message::task_status;
use agent_core::{Agent, AgentConfig, AgentStorage, Duration, Event, Identity, Instant};
use agent_core::{PluginStatus, Record, TaskTarget};
use edge_collector::config::Args;
use edge_collector::metrics::Metrics;
use edge_collector::Collector;
use std::collections::HashMap;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

const SCAN_TASK: u32 = 6001;
/// When the task is posted and when the collector restarts, from the start.
const TASK_AT: StdDuration = StdDuration::from_millis(700);
const RESTART_AT: StdDuration = StdDuration::from_millis(1800);
/// The whole demo is stopped with an error after this long.
const HARD_STOP: StdDuration = StdDuration::from_secs(50);
const API_TOKEN: &str = "demo-api-token-0001";

/// How an agent reaches the collector.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Path_ {
    Direct,
    Cutting,
    Corrupting,
}

/// What drives an agent.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    /// `agent_core::driver::Driver`, in Rust.
    Driver,
    /// The `ea_*` functions of the C ABI ([`c_abi_agent`]).
    CAbi,
}

const AGENTS: [(&str, Path_, Via); 5] = [
    ("agent-1", Path_::Direct, Via::Driver),
    ("agent-2", Path_::Direct, Via::Driver),
    ("agent-3", Path_::Cutting, Via::Driver),
    ("agent-4", Path_::Corrupting, Via::Driver),
    ("agent-5", Path_::Direct, Via::CAbi),
];

fn main() -> ExitCode {
    thread::spawn(|| {
        thread::sleep(HARD_STOP);
        eprintln!("\ndemo: still running after {} s; stopping with an error", HARD_STOP.as_secs());
        std::process::exit(2);
    });
    let data = TempDir::new();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let args = |listen: &str, api: &str| {
        Args {
            listen: Some(listen.parse().unwrap()),
            api_listen: Some(api.parse().unwrap()),
            api_token: Some(API_TOKEN.into()),
            data_dir: Some(data.0.clone()),
            heartbeat_interval: Some(1.0),
            registry_flush: Some(0.2),
            ..Args::default()
        }
        .resolve()
        .expect("demo settings")
    };
    let collector = rt.block_on(Collector::start(args("127.0.0.1:0", "127.0.0.1:0"))).expect("start the collector");
    let (addr, api) = (collector.agent_addr, collector.api_addr.expect("API"));
    let metrics = Arc::new(Mutex::new(vec![collector.shared.metrics.clone()]));
    let cutting = proxy(addr, Fault::Cut);
    let corrupting = proxy(addr, Fault::Corrupt);
    eprintln!("edge-agent demo: edge-collector on {addr} (API on {api}), data in {}", data.0.display());
    eprintln!("  agent-1, agent-2 direct; agent-3 through a cutting proxy ({cutting}); agent-4 through a corrupting proxy ({corrupting}); agent-5 direct, through the C ABI");

    let start = StdInstant::now();
    let progress_done = Arc::new(AtomicBool::new(false));
    let task_answered = Arc::new(AtomicBool::new(false));
    let agents: Vec<_> = AGENTS
        .iter()
        .enumerate()
        .map(|(i, &(name, path, via))| {
            let to = match path {
                Path_::Direct => addr,
                Path_::Cutting => cutting,
                Path_::Corrupting => corrupting,
            };
            let answered = task_answered.clone();
            let seed = 7 + i as u64;
            thread::spawn(move || match via {
                Via::Driver => run_agent(name, to, start, seed, answered),
                Via::CAbi => c_abi_agent::run(name, to, start, seed),
            })
        })
        .collect();
    let progress = {
        let (metrics, done) = (metrics.clone(), progress_done.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let m = metrics.lock().unwrap();
                let sum = |f: fn(&Metrics) -> &AtomicU64| m.iter().map(|x| Metrics::get(f(x))).sum::<u64>();
                eprint!(
                    "\r  t={:>4.1}s  stored {:>4} records  acks {:>4}  duplicates {:>3}  handshakes {:>3}  protocol errors {:>2}  bad CRC {:>2}   ",
                    start.elapsed().as_secs_f64(),
                    sum(|x| &x.records_stored_total),
                    sum(|x| &x.acks_total),
                    sum(|x| &x.records_duplicate_total),
                    sum(|x| &x.accepts_total),
                    sum(|x| &x.protocol_errors_total),
                    sum(|x| &x.decoder_bad_crc_total),
                );
                drop(m);
                thread::sleep(StdDuration::from_millis(200));
            }
            eprintln!();
        })
    };

    // The task, through the HTTP API.
    thread::sleep(TASK_AT.saturating_sub(start.elapsed()));
    let body = format!(r#"{{"object_name": "scanner", "data_type": {SCAN_TASK}, "payload": "/var/log"}}"#);
    let token = match http(api, "POST", "/agents/agent-1/tasks", Some(&body)) {
        (201, b) => serde_json::from_str::<serde_json::Value>(&b).ok().and_then(|v| v["token"].as_str().map(String::from)),
        (s, b) => {
            eprintln!("\n  POST /agents/agent-1/tasks: {s} {b}");
            None
        }
    };

    // One restart: graceful stop, start again on the same ports and data.
    thread::sleep(RESTART_AT.saturating_sub(start.elapsed()));
    rt.block_on(collector.shutdown());
    let collector = rt.block_on(Collector::start(args(&addr.to_string(), &api.to_string()))).expect("restart the collector");
    metrics.lock().unwrap().push(collector.shared.metrics.clone());
    eprintln!("\n  collector restarted at t={:.1}s; agents reconnect and resume", start.elapsed().as_secs_f64());

    let reports: Vec<Report> = agents.into_iter().map(|h| h.join().expect("agent thread")).collect();
    // The task's result, as the API tells it.
    let task = token.as_deref().and_then(|t| {
        let end = StdInstant::now() + StdDuration::from_secs(3);
        loop {
            let (s, b) = http(api, "GET", &format!("/tasks/{t}"), None);
            let v: serde_json::Value = serde_json::from_str(&b).unwrap_or_default();
            if s == 200 && v["state"] == "done" {
                return Some(v);
            }
            if StdInstant::now() > end {
                return None;
            }
            thread::sleep(StdDuration::from_millis(100));
        }
    });
    progress_done.store(true, Ordering::Relaxed);
    let _ = progress.join();
    rt.block_on(collector.shutdown());
    let code = summary(&reports, &data.0, token.as_deref(), task.as_ref(), start.elapsed());
    if !std::io::stdout().is_terminal() {
        for line in sink_lines(&data.0) {
            println!("{line}");
        }
    }
    code
}

// ---- the agents ----------------------------------------------------------------

fn run_agent(name: &'static str, collector: SocketAddr, start: StdInstant, seed: u64, answered: Arc<AtomicBool>) -> Report {
    let mut ring = [0u8; 16 * 1024];
    let mut rx = [0u8; 4096];
    let mut events = [0u8; 2048];
    let mut buf = [0u8; 4096 + 64];
    let id = Identity {
        agent_id: name,
        hostname: "demo-host",
        product: "edge-demo",
        version: env!("CARGO_PKG_VERSION"),
        intranet_ipv4: &[127, 0, 0, 1],
        ..Identity::default()
    };
    let cfg = AgentConfig {
        heartbeat_interval: Duration::from_secs(1),
        flush_interval: Duration::from_millis(50),
        ack_timeout: Duration::from_secs(3),
        // Short, so that the quiet moment at the end measures a round trip.
        idle_timeout: Duration::from_millis(150),
        backoff: BackoffConfig { base: Duration::from_millis(200), cap: Duration::from_secs(1), ..BackoffConfig::default() },
        rng_seed: seed,
        ..AgentConfig::default()
    };
    let storage = AgentStorage { ring: &mut ring, rx: &mut rx, events: &mut events };
    let mut agent = Agent::new(cfg, id, storage).expect("valid agent config");
    let mut clock = StdClock(start);
    // Heartbeats and task results carry Unix-time timestamps.
    agent.set_clock_offset(unix_ms() as i64 - clock.now().as_millis() as i64);
    let scanner = agent.register_plugin("scanner", "1.0").expect("plugin slot");
    agent.set_plugin_status(scanner, std::process::id(), PluginStatus::Running).expect("registered plugin");
    let mut driver = Driver::new(agent, clock, TcpConnector { collector }, &mut buf).expect("buffer large enough");

    let mut on_event = |ev: Event<'_>, agent: &mut Agent<'_>, now: Instant| match ev {
        Event::Task { target: TaskTarget::Plugin(_), payload, token, .. } => {
            let message = format!("scanned {}: 3 files", String::from_utf8_lossy(payload));
            let _ = agent.task_result(now, token, task_status::OK, &message);
            answered.store(true, Ordering::Relaxed);
        }
        Event::Task { token, .. } | Event::Shutdown { token } => {
            let _ = agent.task_result(now, token, task_status::FAILED, "not supported by the demo");
        }
        _ => {}
    };
    let mut pushed = 0;
    for i in 0..READINGS {
        let reading = format!("{{\"reading\":{i},\"temp_c\":{:.1}}}", 20.0 + f64::from(i % 7) * 0.3);
        if driver.push(&Record::new(READING, unix_ms(), reading.as_bytes())).is_ok() {
            pushed += 1;
        }
        let next = driver.now() + Duration::from_millis(READING_EVERY.as_millis() as u64);
        driver.run_until(next, |_| false, &mut on_event);
    }
    // A quiet moment: the agent pings, and the Pong gives its RTT.
    let quiet = driver.now() + Duration::from_millis(400);
    driver.run_until(quiet, |_| false, &mut on_event);
    let deadline = Instant::ZERO + AGENT_DEADLINE;
    let wait_task = name == "agent-1";
    let end = driver.run_until(deadline, |a| a.is_drained() && (!wait_task || answered.load(Ordering::Relaxed)), &mut on_event);
    driver.close();
    driver.run_until(deadline, |_| true, &mut on_event);
    let stats = driver.agent().stats();
    Report { name, pushed, stats, finished: end == RunEnd::Done }
}

struct StdClock(StdInstant);

impl Clock for StdClock {
    fn now(&mut self) -> Instant {
        Instant::from_millis(self.0.elapsed().as_millis() as u64)
    }
    fn sleep_until(&mut self, t: Instant) {
        let ms = t.saturating_since(self.now()).as_millis();
        thread::sleep(StdDuration::from_millis(ms));
    }
}

struct TcpConnector {
    collector: SocketAddr,
}

impl Connector for TcpConnector {
    type Transport = TcpTransport;
    type Error = std::io::Error;

    fn connect(&mut self, _endpoint: u8) -> Result<TcpTransport, std::io::Error> {
        let stream = TcpStream::connect_timeout(&self.collector, StdDuration::from_secs(1))?;
        stream.set_nodelay(true)?;
        // A write that blocks this long fails, and the driver reconnects.
        stream.set_write_timeout(Some(StdDuration::from_secs(2)))?;
        Ok(TcpTransport::new(stream))
    }
}

// ---- the faulty proxies ----------------------------------------------------------

#[derive(Clone, Copy)]
enum Fault {
    /// Cut each connection after 2-6 KiB (agent to collector).
    Cut,
    /// Flip one bit in about one chunk in thirty, both ways.
    Corrupt,
}

/// A proxy to `upstream` on a free loopback port.
fn proxy(upstream: SocketAddr, fault: Fault) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for client in l.incoming().flatten() {
            let Ok(server) = TcpStream::connect(upstream) else { continue };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            for (from, to, up) in [(client.try_clone(), server.try_clone(), true), (server.try_clone(), client.try_clone(), false)] {
                let (Ok(from), Ok(to)) = (from, to) else { continue };
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let s = seed;
                thread::spawn(move || pump(from, to, fault, up, s));
            }
        }
    });
    addr
}

fn pump(mut from: TcpStream, mut to: TcpStream, fault: Fault, up: bool, mut seed: u64) {
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut budget = 2048 + rand() % 4096;
    let mut buf = [0u8; 4096];
    loop {
        let mut n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut cut = false;
        match fault {
            Fault::Cut if up => {
                if n as u64 >= budget {
                    n = budget as usize;
                    cut = true;
                } else {
                    budget -= n as u64;
                }
            }
            Fault::Corrupt if rand() % 30 == 0 => {
                let i = (rand() % n as u64) as usize;
                buf[i] ^= 1 << (rand() % 8);
            }
            _ => {}
        }
        if to.write_all(&buf[..n]).is_err() || cut {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

// ---- the end -----------------------------------------------------------------------

fn summary(reports: &[Report], dir: &Path, token: Option<&str>, task: Option<&serde_json::Value>, took: StdDuration) -> ExitCode {
    // What the sink holds, per agent: readings by number, heartbeats,
    // and every (agent, seq) once.
    let mut readings: HashMap<String, HashMap<u64, u32>> = HashMap::new();
    let mut heartbeats: HashMap<String, u32> = HashMap::new();
    let mut seqs: HashMap<(String, u64), u32> = HashMap::new();
    let mut task_results: HashMap<String, u32> = HashMap::new();
    for line in sink_lines(dir) {
        let v: serde_json::Value = serde_json::from_str(&line).expect("the sink writes JSON lines");
        let agent = v["agent"].as_str().unwrap_or_default().to_string();
        *seqs.entry((agent.clone(), v["seq"].as_u64().unwrap_or(u64::MAX))).or_default() += 1;
        match v["type"].as_u64() {
            Some(1000) => *heartbeats.entry(agent).or_default() += 1,
            Some(1050) => *task_results.entry(agent).or_default() += 1,
            Some(2001) => {
                let n = v["text"].as_str().and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()).and_then(|r| r["reading"].as_u64());
                *readings.entry(agent).or_default().entry(n.unwrap_or(u64::MAX)).or_default() += 1;
            }
            _ => {}
        }
    }
    let dup_seqs = seqs.values().filter(|&&n| n > 1).count();
    let mut problems = Vec::new();
    eprintln!();
    eprintln!("agent     path        via     pushed  delivered once  duplicates  dropped (full/large/evicted)  lost  reconnects  heartbeats  rtt ms  task");
    for r in reports {
        let s = &r.stats;
        let got = readings.get(r.name).cloned().unwrap_or_default();
        let once = (0..u64::from(READINGS)).filter(|i| got.get(i) == Some(&1)).count();
        let dups: u32 = got.values().map(|&n| n.saturating_sub(1)).sum();
        let dropped = s.dropped_full + s.dropped_too_large + s.dropped_evicted;
        let lost = u64::from(r.pushed).saturating_sub(once as u64 + s.dropped_evicted);
        let agent = AGENTS.iter().find(|a| a.0 == r.name);
        let path = agent.map_or("?", |a| match a.1 {
            Path_::Direct => "direct",
            Path_::Cutting => "cutting",
            Path_::Corrupting => "corrupting",
        });
        let via = agent.map_or("?", |a| match a.2 {
            Via::Driver => "Driver",
            Via::CAbi => "C ABI",
        });
        let task_col = if r.name == "agent-1" { if task.is_some() { "1 of 1" } else { "0 of 1" } } else { "-" };
        eprintln!(
            "{:<9} {:<10}  {:<6}  {:>6}  {:>14}  {:>10}  {:>10} ({}/{}/{})          {:>4}  {:>10}  {:>10}  {:>6}  {}",
            r.name,
            path,
            via,
            r.pushed,
            once,
            dups,
            dropped,
            s.dropped_full,
            s.dropped_too_large,
            s.dropped_evicted,
            lost,
            s.connections.saturating_sub(1),
            heartbeats.get(r.name).copied().unwrap_or(0),
            s.last_rtt_ms.map_or("-".to_string(), |v| v.to_string()),
            task_col,
        );
        if lost > 0 {
            problems.push(format!("{}: {lost} readings lost", r.name));
        }
        if dups > 0 {
            problems.push(format!("{}: {dups} readings stored twice", r.name));
        }
        if !r.finished {
            problems.push(format!("{}: not everything acked within {} s", r.name, AGENT_DEADLINE.as_millis() / 1000));
        }
    }
    eprintln!();
    eprintln!("pushed: readings the agent's ring took; delivered once: readings in the sink's file exactly once;");
    eprintln!("reconnects: handshakes after the first; heartbeats: heartbeat records in the sink;");
    eprintln!("via: agent_core's Driver, or the C ABI's ea_* calls (the call order of a C daemon).");
    match (token, task) {
        (Some(t), Some(v)) => eprintln!(
            "task {t} (POST /agents/agent-1/tasks, plugin scanner): {} after {} send(s): status {}, \"{}\"",
            v["state"].as_str().unwrap_or("?"),
            v["sends"],
            v["result"]["status"],
            v["result"]["message"].as_str().unwrap_or("")
        ),
        _ => problems.push("the task did not round-trip through the API".into()),
    }
    if dup_seqs > 0 {
        problems.push(format!("{dup_seqs} (agent, seq) pairs stored more than once"));
    }
    eprintln!("took {:.1} s", took.as_secs_f64());
    if problems.is_empty() {
        eprintln!("ok: every reading pushed is in the sink exactly once, across cuts, a corrupted stream and a collector restart");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("FAILED: {p}");
        }
        ExitCode::FAILURE
    }
}

/// Every line of the sink's files, oldest file first.
fn sink_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().flat_map(|f| std::fs::read_to_string(f).unwrap_or_default().lines().map(String::from).collect::<Vec<_>>()).collect()
}

/// One HTTP/1.1 request to the API; status and body.
fn http(api: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&api, StdDuration::from_secs(2)) else { return (0, String::new()) };
    let _ = s.set_read_timeout(Some(StdDuration::from_secs(5)));
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {API_TOKEN}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut resp = String::new();
    if s.write_all(req.as_bytes()).is_err() || s.read_to_string(&mut resp).is_err() {
        return (0, String::new());
    }
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// A temporary data directory, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let d = std::env::temp_dir().join(format!("edge-demo-{}-{}", std::process::id(), unix_ms()));
        std::fs::create_dir_all(&d).expect("create a temporary directory");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
