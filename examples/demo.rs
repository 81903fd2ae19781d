//! The edge-agent demo: a collector and three agents on loopback, no setup.
//!
//! ```sh
//! cargo run --release --example demo           # from the workspace root
//! cargo run --release --example demo | jq .    # the records, pretty
//! ```
//!
//! What happens, in about three seconds:
//!
//! 1. A small **collector** listens on 127.0.0.1 (a port the OS picks). It
//!    speaks the wire protocol of PROTOCOL.md with `agent_core`'s codec:
//!    Accept with the resume point, an Ack per batch, Pongs. It sends each
//!    agent one Task for its `scanner` plugin and one Config, and prints
//!    every record it stores as one JSON line on **stdout**.
//! 2. Three **agents**, one thread each, run `agent_core::driver::Driver`
//!    over a `std::net::TcpStream` (through `embedded-io-adapters`): each
//!    pushes 40 readings, 50 ms apart, and answers the task from its event
//!    callback with `task_result`. Heartbeats go out every second.
//! 3. After one second the collector **kills every connection** at once.
//!    The agents reconnect (after a random backoff), the collector's Accept
//!    tells each agent what it already has, and the rest is sent again.
//! 4. A **summary** per agent: records pushed, acked and dropped by the
//!    agent, stored and seen twice by the collector, readings missing. The
//!    exit status is 1 if any reading was lost.
//!
//! What is happening is told on **stderr**, so stdout stays JSON.

use agent_core::decoder::{Feed, FrameDecoder};
use agent_core::driver::{Clock, Connector, Driver, RunEnd};
use agent_core::heartbeat::AgentHeartbeat;
use agent_core::message::{self, task_status, Accept, Ack, Config, Message, Pong, Task, TaskResult};
use agent_core::plugin::PluginHeartbeat;
use agent_core::{data_type, Agent, AgentConfig, AgentStats, AgentStorage, DisconnectReason, Duration, Event, Identity, Instant};
use agent_core::{PluginStatus, Record, TaskTarget};
use embedded_io_adapters::std::FromStd;
use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

const AGENTS: [&str; 3] = ["agent-1", "agent-2", "agent-3"];
const READINGS_PER_AGENT: u32 = 40;
const READING_INTERVAL: Duration = Duration::from_millis(50);
/// When the collector kills every connection, from the start.
const KILL_AT: StdDuration = StdDuration::from_millis(1000);
/// Each agent gives up waiting for its last acks this long after the start.
const AGENT_DEADLINE: Duration = Duration::from_secs(15);
/// The whole demo is stopped with an error after this long.
const HARD_STOP: StdDuration = StdDuration::from_secs(20);

/// The demo's own record type (types 1000-1999 belong to the library).
const READING: u32 = 2001;
/// The task the collector sends to each agent's `scanner` plugin.
const SCAN_TASK: u32 = 6001;

fn main() -> ExitCode {
    thread::spawn(|| {
        thread::sleep(HARD_STOP);
        eprintln!("demo: still running after {} s; stopping with an error", HARD_STOP.as_secs());
        std::process::exit(2);
    });

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    eprintln!("edge-agent demo: a collector on {addr} and {} agents; records on stdout as JSON lines", AGENTS.len());

    let collector = Arc::new(Collector::default());
    let c = Arc::clone(&collector);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let c = Arc::clone(&c);
            thread::spawn(move || c.serve(stream));
        }
    });

    let start = StdInstant::now();
    let agents: Vec<_> = AGENTS
        .iter()
        .enumerate()
        .map(|(i, &name)| thread::spawn(move || run_agent(name, addr, start, 1000 + i as u64)))
        .collect();

    thread::sleep(KILL_AT.saturating_sub(start.elapsed()));
    collector.kill_all();

    let reports: Vec<Report> = agents.into_iter().map(|h| h.join().expect("agent thread")).collect();
    summary(&reports, &collector)
}

// ---- the agent side --------------------------------------------------------

/// What an agent thread reports when it is done.
struct Report {
    name: &'static str,
    readings_pushed: u32,
    stats: AgentStats,
    finished: bool,
    task_answered: bool,
}

/// One agent: pushes readings, answers the task, waits until everything is
/// acked, closes. All its memory is on this thread's stack.
fn run_agent(name: &'static str, collector: SocketAddr, start: StdInstant, seed: u64) -> Report {
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

    let task_answered = Cell::new(false);
    let mut on_event = |ev: Event<'_>, agent: &mut Agent<'_>, now: Instant| match ev {
        Event::Connected { .. } => {
            let waiting = agent.ring().pending_records();
            say(name, &format!("connected; {waiting} records waiting to be sent"));
        }
        Event::Disconnect { reason: DisconnectReason::Shutdown } => say(name, "closed"),
        Event::Disconnect { reason } => say(name, &format!("connection lost ({reason:?}); reconnecting after a backoff")),
        Event::Task { target: TaskTarget::Plugin(_), object_name, payload, token, .. } => {
            // The plugin "scans" and answers; the result is a record, acked
            // and resent like any other.
            let message = format!("scanned {}: 3 files", String::from_utf8_lossy(payload));
            let _ = agent.task_result(now, token, task_status::OK, &message);
            say(name, &format!("task {token} for plugin {object_name}: answered \"{message}\""));
            task_answered.set(true);
        }
        Event::Task { token, .. } | Event::Shutdown { token } => {
            let _ = agent.task_result(now, token, task_status::FAILED, "not supported by the demo");
        }
        Event::Config { name: config, version, payload } => {
            say(name, &format!("config {config} {version}: {}", String::from_utf8_lossy(payload)));
        }
        _ => {}
    };

    let mut pushed = 0;
    for i in 0..READINGS_PER_AGENT {
        let reading = format!("{{\"reading\":{i},\"temp_c\":{:.1}}}", 20.0 + f64::from(i % 7) * 0.3);
        match driver.push(&Record::new(READING, unix_ms(), reading.as_bytes())) {
            Ok(()) => pushed += 1,
            Err(e) => say(name, &format!("reading {i} refused: {e:?}")),
        }
        let next = driver.now() + READING_INTERVAL;
        driver.run_until(next, |_| false, &mut on_event);
    }

    // Wait until the collector has acked everything, task result included.
    let deadline = Instant::ZERO + AGENT_DEADLINE;
    let end = driver.run_until(deadline, |a| a.is_drained() && task_answered.get(), &mut on_event);
    driver.close();
    driver.run_until(deadline, |_| true, &mut on_event); // one poll: sends Close, drops the socket
    let stats = driver.agent().stats();
    drop(driver);
    Report { name, readings_pushed: pushed, stats, finished: end == RunEnd::Done, task_answered: task_answered.get() }
}

/// Milliseconds since the demo started, and `thread::sleep`.
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

/// Opens TCP connections to the collector (the demo has one endpoint).
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
        Ok(TcpTransport(FromStd::new(stream)))
    }
}

/// A `TcpStream` as an `embedded_io` transport: `FromStd` gives `Read` and
/// `Write`; `ReadReady` is a non-blocking peek, so the driver never blocks
/// in a read.
struct TcpTransport(FromStd<TcpStream>);

impl embedded_io::ErrorType for TcpTransport {
    type Error = std::io::Error;
}

impl embedded_io::Read for TcpTransport {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, std::io::Error> {
        self.0.read(buf)
    }
}

impl embedded_io::Write for TcpTransport {
    fn write(&mut self, buf: &[u8]) -> Result<usize, std::io::Error> {
        self.0.write(buf)
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
            // Bytes, or end of stream (0): either way `read` returns at once.
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

// ---- the collector ---------------------------------------------------------

/// What the collector knows of one agent.
#[derive(Default)]
struct Ledger {
    /// The resume point: every record below it is stored.
    next_seq: u64,
    stored: u64,
    duplicates: u64,
    gaps: u64,
    readings: BTreeSet<u32>,
    connections: u32,
    task_result: Option<String>,
}

#[derive(Default)]
struct Collector {
    ledgers: Mutex<HashMap<String, Ledger>>,
    /// Every accepted connection, so they can be killed at once.
    connections: Mutex<Vec<TcpStream>>,
}

impl Collector {
    /// Serves one connection until the agent closes it or it is killed.
    fn serve(&self, mut stream: TcpStream) {
        if let Ok(clone) = stream.try_clone() {
            self.connections.lock().unwrap().push(clone);
        }
        let _ = stream.set_nodelay(true);
        let mut frame_buf = vec![0u8; 64 * 1024];
        let mut decoder = FrameDecoder::new(&mut frame_buf);
        let mut agent: Option<String> = None;
        let mut input = [0u8; 4096];
        loop {
            let n = match stream.read(&mut input) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut bytes = &input[..n];
            let mut out = Vec::new();
            let mut open = true;
            while let Feed::Frame { frame, remaining } = decoder.feed(bytes) {
                bytes = remaining;
                if let Ok(msg) = Message::decode(&frame) {
                    open &= self.on_message(&mut agent, msg, &mut out);
                }
            }
            if stream.write_all(&out).is_err() || !open {
                return;
            }
        }
    }

    /// Handles one message from an agent, appending replies to `out`.
    /// False when the agent closed the connection.
    fn on_message(&self, agent: &mut Option<String>, msg: Message<'_>, out: &mut Vec<u8>) -> bool {
        let mut ledgers = self.ledgers.lock().unwrap();
        if let Message::Hello(h) = msg {
            let known = ledgers.contains_key(h.agent_id);
            let l = ledgers.entry(h.agent_id.to_string()).or_default();
            if !known {
                // A collector that knows nothing of an agent resumes where
                // the agent's unacked records start.
                l.next_seq = h.first_unacked_seq;
            }
            l.connections += 1;
            send(out, Message::Accept(Accept { next_seq: l.next_seq, max_frame: 64 * 1024 }));
            let mut told = format!("connection {} from {}: resume at seq {}", l.connections, h.agent_id, l.next_seq);
            if l.task_result.is_none() {
                // Tasks are not acked: resend until a result comes back.
                let token = format!("scan-{}-1", h.agent_id);
                let task = Task { object_name: "scanner", data_type: SCAN_TASK, payload: b"/var/log", token: &token };
                send(out, Message::Task(task));
                let _ = write!(told, ", task {token} sent");
            }
            // The same version every time: agents act on it once.
            send(out, Message::Config(Config { name: "sampling", version: "v1", payload: b"{\"interval_ms\":50}" }));
            say("collector", &told);
            *agent = Some(h.agent_id.to_string());
            return true;
        }
        let Some(name) = agent.as_deref() else { return true };
        let Some(l) = ledgers.get_mut(name) else { return true };
        match msg {
            Message::Batch(b) => {
                let records: Result<Vec<_>, _> = b.iter().collect();
                let Ok(records) = records else { return true }; // malformed: not acked
                for (i, rec) in records.iter().enumerate() {
                    let seq = b.first_seq + i as u64;
                    if seq < l.next_seq {
                        l.duplicates += 1;
                        continue;
                    }
                    if seq > l.next_seq {
                        l.gaps += 1;
                    }
                    l.next_seq = seq + 1;
                    l.stored += 1;
                    println!("{}", json_line(name, seq, rec.data_type, rec.timestamp_ms, rec.payload, l));
                }
                if b.count > 0 {
                    send(out, Message::Ack(Ack { up_to: b.first_seq + u64::from(b.count) - 1 }));
                }
            }
            Message::Ping(p) => send(out, Message::Pong(Pong { nonce: p.nonce })),
            Message::Close(_) => return false,
            _ => {}
        }
        true
    }

    /// Shuts down every connection at once.
    fn kill_all(&self) {
        let conns: Vec<TcpStream> = self.connections.lock().unwrap().drain(..).collect();
        let live = conns.iter().filter(|s| s.shutdown(Shutdown::Both).is_ok()).count();
        say("collector", &format!("killing all connections ({live} open)"));
    }
}

fn send(out: &mut Vec<u8>, msg: Message<'_>) {
    let mut frame = [0u8; 1024];
    let n = msg.encode(0, &mut frame).expect("reply fits 1 KiB");
    out.extend_from_slice(&frame[..n]);
}

/// One stored record as a JSON line; notes readings and task results in the
/// ledger.
fn json_line(agent: &str, seq: u64, ty: u32, ts: u64, payload: &[u8], l: &mut Ledger) -> String {
    let mut line = format!("{{\"agent\":{},\"seq\":{seq},\"type\":{ty},\"ts\":{ts},", json_str(agent));
    match ty {
        READING => {
            // The demo's agents write their readings as JSON.
            let text = String::from_utf8_lossy(payload);
            if let Some(n) = text.strip_prefix("{\"reading\":").and_then(|r| r.split(',').next()?.parse().ok()) {
                l.readings.insert(n);
            }
            let _ = write!(line, "\"data\":{text}");
        }
        data_type::AGENT_HEARTBEAT => match AgentHeartbeat::decode(payload) {
            Some(hb) => {
                let s = hb.lib;
                let _ = write!(
                    line,
                    "\"heartbeat\":{{\"pushed\":{},\"acked\":{},\"connections\":{},\"ring_used_bytes\":{}}}",
                    s.pushed, s.acked, s.connections, s.ring_used_bytes
                );
            }
            None => line.push_str("\"heartbeat\":null"),
        },
        data_type::PLUGIN_HEARTBEAT => match message::decode_body::<PluginHeartbeat<'_>>(payload) {
            Ok(p) => {
                let _ = write!(
                    line,
                    "\"plugin\":{{\"name\":{},\"version\":{},\"pid\":{},\"status\":\"{:?}\"}}",
                    json_str(p.name),
                    json_str(p.version),
                    p.pid,
                    p.status
                );
            }
            Err(_) => line.push_str("\"plugin\":null"),
        },
        data_type::TASK_RESULT => match message::decode_body::<TaskResult<'_>>(payload) {
            Ok(r) => {
                let _ = write!(
                    line,
                    "\"task_result\":{{\"token\":{},\"status\":{},\"message\":{}}}",
                    json_str(r.token),
                    r.status,
                    json_str(r.message)
                );
                l.task_result = Some(format!("{} (status {})", r.message, r.status));
            }
            Err(_) => line.push_str("\"task_result\":null"),
        },
        _ => {
            let _ = write!(line, "\"payload_len\":{}", payload.len());
        }
    }
    line.push('}');
    line
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---- the end -----------------------------------------------------------------

fn summary(reports: &[Report], collector: &Collector) -> ExitCode {
    let ledgers = collector.ledgers.lock().unwrap();
    let mut lost = 0;
    let mut problems = Vec::new();
    eprintln!();
    eprintln!("          --------------- agent ---------------   ------------- collector --------------");
    eprintln!("agent     readings  records  acked  dropped            stored  duplicates  missing  connections");
    for r in reports {
        let s = &r.stats;
        let dropped = s.dropped_full + s.dropped_too_large + s.dropped_evicted;
        let empty = Ledger::default();
        let l = ledgers.get(r.name).unwrap_or(&empty);
        let missing = (0..r.readings_pushed).filter(|i| !l.readings.contains(i)).count();
        eprintln!(
            "{:<9} {:>8}  {:>7}  {:>5}  {:>7}            {:>6}  {:>10}  {:>7}  {:>11}",
            r.name, r.readings_pushed, s.pushed, s.acked, dropped, l.stored, l.duplicates, missing, l.connections
        );
        lost += missing as u64 + dropped;
        if !r.finished {
            problems.push(format!("{}: not everything was acked within {} s", r.name, AGENT_DEADLINE.as_millis() / 1000));
        }
        if !r.task_answered || l.task_result.is_none() {
            problems.push(format!("{}: the task result did not reach the collector", r.name));
        }
        if l.gaps > 0 {
            problems.push(format!("{}: {} gaps in sequence numbers", r.name, l.gaps));
        }
        if r.readings_pushed != READINGS_PER_AGENT {
            problems.push(format!("{}: only {} of {READINGS_PER_AGENT} readings pushed", r.name, r.readings_pushed));
        }
    }
    eprintln!();
    eprintln!("records: readings + heartbeats + task results, as the agent counts them; missing: readings");
    eprintln!("pushed by an agent that the collector never stored; connections: handshakes the collector saw.");
    eprintln!();
    if lost > 0 {
        problems.push(format!("{lost} records lost"));
    }
    if problems.is_empty() {
        eprintln!("ok: every record pushed was stored by the collector and acked, across one forced reconnect of every agent");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("FAILED: {p}");
        }
        ExitCode::FAILURE
    }
}

fn say(who: &str, what: &str) {
    eprintln!("[{who:>9}] {what}");
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
