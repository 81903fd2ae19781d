//! The JetStream sink against real nats-servers (started here on free
//! loopback ports with temporary stores; see `common/nats.rs` for where
//! the binary comes from): several collectors on one stream, agents that
//! fail over between them, collectors `kill -9`'d and restarted, the
//! nats-server restarted, two collectors racing for one agent, and a
//! three-node cluster with replicas 3 losing a node. Each test ends by
//! reading the whole stream back and checking: per agent, every record
//! the agent's ring took is there exactly once, in sequence order; and
//! the messages themselves keep the layout (one message per writer round:
//! the file sink's lines, `Edge-First-Seq`/`Edge-Last-Seq`, `Nats-Msg-Id`
//! `<token>:<first>-<last>`, contiguous ranges per subject, within
//! `--nats-max-message-bytes`).

mod common;
#[path = "common/nats.rs"]
mod nats;

use agent_core::backoff::BackoffConfig;
use agent_core::driver::{Connector, Driver};
use agent_core::ring::RingConfig;
use agent_core::{Agent, AgentConfig, AgentStorage, Duration as AgentDuration, Identity, Instant as AgentInstant, OverflowPolicy, PushError, Record};
use common::agent::{text_of, StdClock};
use common::raw::{hello, Got, Raw};
use common::tcp_transport::TcpTransport;
use common::{collector, CollectorProc, Rng, TempDir};
use edge_collector::config::DEFAULT_NATS_MAX_MESSAGE_BYTES;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// Reads every record of `stream` (its `partitions` streams; through fresh
/// durable consumers) as parsed JSON lines, in stream order.
fn read_stream(url: &str, stream: &str, partitions: usize) -> Vec<serde_json::Value> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let out = rt.block_on(async {
        let client = async_nats::connect(url).await.expect("connect to NATS");
        let ctx = async_nats::jetstream::new(client);
        let mut out = Vec::new();
        let durable = format!("check{}", common::Rng(std::process::id() as u64).next() % 1_000_000);
        let streams: Vec<String> = (0..partitions).map(|i| edge_collector::jetstream::subject::stream_name(stream, partitions, i)).collect();
        edge_collector::jetstream::consume::consume_all(&ctx, &streams, &durable, &mut out, Duration::from_secs(2), false).await.expect("consume");
        out
    });
    String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l}"))).collect()
}

/// One message of the stream, as stored.
#[derive(Debug)]
struct StreamMsg {
    subject: String,
    first: u64,
    last: u64,
    msg_id: String,
    payload: Vec<u8>,
}

/// Reads every message of `stream` (its `partitions` streams, one after
/// the other) raw through fresh durable consumers, in stream order.
fn read_messages(url: &str, stream: &str, partitions: usize) -> Vec<StreamMsg> {
    use edge_collector::jetstream::message::{FIRST_SEQ_HEADER, LAST_SEQ_HEADER};
    use futures_util::StreamExt as _;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let ctx = async_nats::jetstream::new(async_nats::connect(url).await.expect("connect to NATS"));
        let mut out = Vec::new();
        for i in 0..partitions {
        let s = ctx.get_stream(edge_collector::jetstream::subject::stream_name(stream, partitions, i)).await.expect("stream");
        let durable = format!("raw{}", common::Rng(std::process::id() as u64 ^ 0x5eed).next() % 1_000_000);
        let config = async_nats::jetstream::consumer::pull::Config { durable_name: Some(durable.clone()), ..Default::default() };
        let consumer = s.get_or_create_consumer(&durable, config).await.expect("consumer");
        // A fetch may fail for a while after a node loss (503 until the
        // consumer has a leader): retried for up to 30 s. A message seen
        // again (its ack lost with the failure) is skipped by its stream
        // sequence.
        let mut seen = std::collections::HashSet::new();
        let mut failing_since: Option<std::time::Instant> = None;
        loop {
            let before = out.len();
            let mut failed = None;
            match consumer.fetch().max_messages(1000).expires(Duration::from_secs(2)).messages().await {
                Err(e) => failed = Some(e.to_string()),
                Ok(mut batch) => {
                    while let Some(m) = batch.next().await {
                        let m = match m {
                            Ok(m) => m,
                            Err(e) => {
                                failed = Some(e.to_string());
                                break;
                            }
                        };
                        let at = m.info().expect("a JetStream message").stream_sequence;
                        if seen.insert(at) {
                            let h = m.headers.clone().unwrap_or_default();
                            let num = |name: &str| h.get(name).unwrap_or_else(|| panic!("{name} missing on {}", m.subject)).as_str().parse::<u64>().unwrap();
                            out.push(StreamMsg {
                                subject: m.subject.to_string(),
                                first: num(FIRST_SEQ_HEADER),
                                last: num(LAST_SEQ_HEADER),
                                msg_id: h.get("Nats-Msg-Id").map(|v| v.as_str().to_string()).unwrap_or_default(),
                                payload: m.payload.to_vec(),
                            });
                        }
                        let _ = m.ack().await;
                    }
                }
            }
            match failed {
                Some(e) => {
                    let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                    assert!(since.elapsed() < Duration::from_secs(30), "fetch failing for 30 s: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                None if out.len() == before => break,
                None => failing_since = None,
            }
        }
        }
        out
    })
}

/// Checks the layout of every message: per subject the ranges run 0, 1,
/// 2, ... without gap or overlap; `Nats-Msg-Id` is `<token>:<first>-<last>`;
/// the payload is `last - first + 1` lines, each ending with `\n`, each a
/// sound line (its CRC matches) of that agent with the sequence number its
/// position says; no payload exceeds `max_bytes`. Returns (messages,
/// records).
fn check_layout(msgs: &[StreamMsg], prefix: &str, partitions: usize, max_bytes: usize) -> (usize, u64) {
    use edge_collector::line::{check, Checked};
    let mut next: HashMap<&str, u64> = HashMap::new();
    let mut records = 0;
    for m in msgs {
        let rest = m.subject.strip_prefix(prefix).and_then(|t| t.strip_prefix('.')).unwrap_or_else(|| panic!("subject {}", m.subject));
        let token = if partitions == 1 { rest } else { rest.split_once('.').unwrap_or_else(|| panic!("subject {}", m.subject)).1 };
        let want = next.entry(&m.subject).or_insert(0);
        assert_eq!((m.first, m.last >= m.first), (*want, true), "{}: ranges not contiguous at {}..={}", m.subject, m.first, m.last);
        *want = m.last + 1;
        assert_eq!(m.msg_id, format!("{token}:{}-{}", m.first, m.last));
        assert!(m.payload.len() <= max_bytes, "{} bytes, above the bound {max_bytes}", m.payload.len());
        assert_eq!(m.payload.last(), Some(&b'\n'));
        let lines: Vec<&[u8]> = m.payload.split_inclusive(|&b| b == b'\n').collect();
        assert_eq!(lines.len() as u64, m.last - m.first + 1, "{}: line count against the headers", m.msg_id);
        for (i, l) in lines.iter().enumerate() {
            match check(l) {
                Checked::Sound(k) => {
                    assert_eq!(k.seq, m.first + i as u64, "{}: line {i}", m.msg_id);
                    assert_eq!(edge_collector::jetstream::subject::token(&k.agent), token);
                    assert_eq!(edge_collector::jetstream::subject::subject(prefix, partitions, &k.agent), m.subject, "the agent's partition");
                }
                _ => panic!("{}: line {i} is not a sound line: {}", m.msg_id, String::from_utf8_lossy(l)),
            }
        }
        records += m.last - m.first + 1;
    }
    (msgs.len(), records)
}

/// Checks exactly once in order: per agent, the sequence numbers in stream
/// order are 0, 1, 2, ... with no repeat or gap, and the texts of its test
/// records (type 2001) are exactly those of `accepted[agent]`, in order.
fn check_exactly_once(lines: &[serde_json::Value], accepted: &HashMap<String, Vec<u32>>, payload_len: usize) {
    let mut seqs: HashMap<String, Vec<u64>> = HashMap::new();
    let mut texts: HashMap<String, Vec<String>> = HashMap::new();
    for l in lines {
        let agent = l["agent"].as_str().unwrap().to_string();
        seqs.entry(agent.clone()).or_default().push(l["seq"].as_u64().unwrap());
        if l["type"] == 2001 {
            texts.entry(agent).or_default().push(l["text"].as_str().unwrap().to_string());
        }
    }
    for (agent, acc) in accepted {
        let s = seqs.get(agent).unwrap_or_else(|| panic!("{agent}: nothing in the stream"));
        for (i, seq) in s.iter().enumerate() {
            assert_eq!(*seq, i as u64, "{agent}: stream order broken at position {i} (a repeat, a gap or a reorder): {:?}", &s[i.saturating_sub(3)..(i + 3).min(s.len())]);
        }
        let want: Vec<String> = acc.iter().map(|&i| text_of(agent, i, payload_len)).collect();
        assert_eq!(texts.get(agent).cloned().unwrap_or_default(), want, "{agent}: the records in the stream are not the ones pushed");
    }
}

/// Endpoint `i` of the agent's list is `addrs[i]`.
struct ListConnector(Vec<SocketAddr>);

impl Connector for ListConnector {
    type Transport = TcpTransport;
    type Error = std::io::Error;
    fn connect(&mut self, endpoint: u8) -> Result<TcpTransport, std::io::Error> {
        let addr = self.0[endpoint as usize % self.0.len()];
        let s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        s.set_nodelay(true)?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        Ok(TcpTransport::new(s))
    }
}

struct Pushed {
    accepted: Vec<u32>,
    refused: u32,
    drained: bool,
    connects: u32,
}

/// A real agent whose endpoint list names every collector: pushes
/// `records` test records, one every `every`, then waits (until
/// `deadline`) for every one to be acked.
fn run_listed_agent(id: &str, seed: u64, endpoints: Vec<SocketAddr>, records: u32, every: Duration, payload_len: usize, deadline: Duration) -> Pushed {
    let mut ring = vec![0u8; 256 * 1024];
    let mut rx = vec![0u8; 8192];
    let mut events = vec![0u8; 4096];
    let mut buf = vec![0u8; 8192 + 64];
    let identity = Identity { agent_id: id, hostname: "js-host", product: "edge-test", version: "1.0", intranet_ipv4: &[127, 0, 0, 1], ..Identity::default() };
    let n = endpoints.len() as u8;
    let cfg = AgentConfig {
        ring: RingConfig { max_record: 1024, policy: OverflowPolicy::RejectNew },
        heartbeat_interval: AgentDuration::from_secs(1),
        flush_interval: AgentDuration::from_millis(20),
        backoff: BackoffConfig { base: AgentDuration::from_millis(50), cap: AgentDuration::from_millis(400), endpoints: n, ..BackoffConfig::default() },
        ack_timeout: AgentDuration::from_secs(5),
        rng_seed: seed,
        ..AgentConfig::default()
    };
    let storage = AgentStorage { ring: &mut ring, rx: &mut rx, events: &mut events };
    let agent = Agent::new(cfg, identity, storage).expect("valid agent config");
    let mut driver = Driver::new(agent, StdClock(Instant::now()), ListConnector(endpoints), &mut buf).expect("buffer");
    let mut connects = 0u32;
    let mut on_event = |ev: agent_core::Event<'_>, _: &mut Agent<'_>, _: AgentInstant| {
        if let agent_core::Event::Connected { .. } = ev {
            connects += 1;
        }
    };
    let deadline = AgentInstant::from_millis(deadline.as_millis() as u64);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..records {
        match driver.push(&Record::new(2001, 1_700_000_000_000 + u64::from(i), text_of(id, i, payload_len).as_bytes())) {
            Ok(()) => accepted.push(i),
            Err(PushError::Full) => refused += 1,
            Err(e) => panic!("push: {e:?}"),
        }
        let next = driver.now() + AgentDuration::from_millis(every.as_millis() as u64);
        driver.run_until(next.min(deadline), |_| false, &mut on_event);
    }
    driver.run_until(deadline, |a| a.is_drained(), &mut on_event);
    let drained = driver.agent().is_drained();
    driver.close();
    let soon = driver.now() + AgentDuration::from_millis(200);
    driver.run_until(soon, |_| true, &mut on_event);
    drop(driver);
    Pushed { accepted, refused, drained, connects }
}

/// A collector on a fixed port (so that it comes back where the agents'
/// lists say), JetStream sink.
struct Slot {
    dir: TempDir,
    port: u16,
    args: Vec<String>,
    proc: Option<CollectorProc>,
}

impl Slot {
    fn new(name: &str, args: Vec<String>) -> Slot {
        let mut s = Slot { dir: TempDir::new(name), port: nats::free_port(), args, proc: None };
        s.start();
        s
    }
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
    fn start(&mut self) {
        let listen = format!("127.0.0.1:{}", self.port);
        let mut args: Vec<&str> = vec!["--listen", &listen];
        args.extend(self.args.iter().map(String::as_str));
        self.proc = Some(collector().start(self.dir.path(), &args));
    }
    fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }
}

fn sink_args(urls: &str, stream: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["--sink", urls, "--nats-stream", stream, "--nats-subject-prefix", "t.rec", "--nats-ack-timeout", "2", "--idle-timeout", "6", "--admission-rate", "0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn three_collectors_kill9_failover_and_a_server_restart_keep_exactly_once() {
    let Some(mut server) = nats::single() else { return };
    let seed = common::seed();
    let url = server.url();
    // The agents spread over three streams (`--nats-partitions 3`).
    let args = sink_args(&url, "FLEET", &["--nats-partitions", "3"]);
    let slots: Vec<Arc<Mutex<Slot>>> = (0..3).map(|i| Arc::new(Mutex::new(Slot::new(&format!("js-c{i}"), args.clone())))).collect();
    let endpoints: Vec<SocketAddr> = slots.iter().map(|s| s.lock().unwrap().addr()).collect();
    const AGENTS: usize = 6;
    const RECORDS: u32 = 800;
    const PAYLOAD: usize = 24;
    let agents: Vec<_> = (0..AGENTS)
        .map(|i| {
            // Each agent starts at a different collector of its list.
            let mut list = endpoints.clone();
            list.rotate_left(i % 3);
            std::thread::spawn(move || {
                let id = format!("js-agent-{i}");
                let p = run_listed_agent(&id, seed ^ i as u64, list, RECORDS, Duration::from_millis(12), PAYLOAD, Duration::from_secs(120));
                (id, p)
            })
        })
        .collect();
    // Faults while the agents push: a collector kill -9'd at a random
    // moment and restarted a little later, over and over; once, midway,
    // the nats-server itself.
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (slots, stop) = (slots.clone(), stop.clone());
        let mut rng = Rng(seed);
        std::thread::spawn(move || {
            let mut kills = 0;
            let mut server_restarted = false;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(400 + rng.below(800)));
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if !server_restarted && start.elapsed() > Duration::from_secs(3) {
                    server.kill9();
                    std::thread::sleep(Duration::from_millis(300));
                    server.restart();
                    assert!(server.wait_healthy(Duration::from_secs(30)), "nats-server back");
                    server_restarted = true;
                    eprintln!("chaos: nats-server kill -9'd and restarted");
                    continue;
                }
                let i = rng.below(3) as usize;
                slots[i].lock().unwrap().kill9();
                kills += 1;
                std::thread::sleep(Duration::from_millis(100 + rng.below(500)));
                slots[i].lock().unwrap().start();
            }
            (kills, server_restarted, server)
        })
    };
    let mut accepted = HashMap::new();
    let mut refused = 0;
    let mut connects = 0;
    let mut undrained = Vec::new();
    for h in agents {
        let (id, p) = h.join().unwrap();
        refused += p.refused;
        connects += p.connects;
        if !p.drained {
            undrained.push(id.clone());
        }
        accepted.insert(id, p.accepted);
    }
    stop.store(true, Ordering::Relaxed);
    let (kills, server_restarted, server) = chaos.join().unwrap();
    eprintln!("{kills} collector kills, server restarted: {server_restarted}, {connects} agent connects, {refused} pushes refused (ring full, counted)");
    assert!(undrained.is_empty(), "agents with records never acked: {undrained:?}");
    assert!(server_restarted && kills >= 3, "the faults ran ({kills} kills)");
    assert!(connects as usize > AGENTS, "agents failed over");
    let lines = read_stream(&server.url(), "FLEET", 3);
    check_exactly_once(&lines, &accepted, PAYLOAD);
    let msgs = read_messages(&server.url(), "FLEET", 3);
    let (messages, records) = check_layout(&msgs, "t.rec", 3, DEFAULT_NATS_MAX_MESSAGE_BYTES);
    let used: std::collections::HashSet<&str> = msgs.iter().map(|m| m.subject.split('.').nth(2).unwrap()).collect();
    assert!(used.len() >= 2, "the agents landed in one partition only: {used:?}");
    assert_eq!(records, lines.len() as u64);
    eprintln!("{records} records in {messages} messages");
    drop(slots);
}

#[test]
fn two_collectors_racing_for_one_agent_never_write_twice_or_out_of_order() {
    let Some(server) = nats::single() else { return };
    let url = server.url();
    // A short duplicate window: the fence, not Nats-Msg-Id, must stop the
    // losing collector.
    let args = sink_args(&url, "RACE", &["--nats-duplicate-window", "0.5"]);
    let a = Slot::new("race-a", args.clone());
    let b = Slot::new("race-b", args);
    let (mut ra, acc) = Raw::connect_admitted(a.addr(), &hello("racer", b"", 0, 0), T, 0).into_tuple();
    assert_eq!(acc, Got::Accept { next_seq: 0, max_frame: 65536, retry_window_ms: 0 });
    // The same agent id on B (a stale connection and a new one).
    let (mut rb, acc) = Raw::connect_admitted(b.addr(), &hello("racer", b"", 0, 0), T, 0).into_tuple();
    assert!(matches!(acc, Got::Accept { next_seq: 0, .. }), "{acc:?}");
    ra.batch("r", 0, 10);
    assert_eq!(ra.recv_skipping(T), Got::Ack(9));
    std::thread::sleep(Duration::from_millis(800));
    // B still believes the subject is empty: JetStream refuses its write.
    rb.batch("r", 0, 20);
    match rb.recv_skipping(T) {
        Got::Close { code: 7, reason } => assert!(reason.contains("another collector"), "{reason}"),
        g => panic!("the losing collector must close with code 7 (Conflict), got {g:?}"),
    }
    // Reconnecting to B: the resume point comes from the stream.
    let (mut rb, acc) = Raw::connect_admitted(b.addr(), &hello("racer", b"", 0, 0), T, 0).into_tuple();
    assert!(matches!(acc, Got::Accept { next_seq: 10, .. }), "{acc:?}");
    rb.batch("r", 10, 10);
    assert_eq!(rb.recv_skipping(T), Got::Ack(19));
    // A's stale session loses now.
    ra.batch("r", 10, 5);
    assert!(matches!(ra.recv_skipping(T), Got::Close { code: 7, .. }));
    // Repeats far older than the duplicate window: dropped against the
    // resume point, only the new tail written.
    std::thread::sleep(Duration::from_millis(800));
    let (mut rc, acc) = Raw::connect_admitted(a.addr(), &hello("racer", b"", 0, 0), T, 0).into_tuple();
    assert!(matches!(acc, Got::Accept { next_seq: 20, .. }), "{acc:?}");
    rc.batch("r", 5, 20);
    assert_eq!(rc.recv_skipping(T), Got::Ack(24));
    let lines = read_stream(&url, "RACE", 1);
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..25).collect::<Vec<_>>(), "exactly once, in order");
    let texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(texts[12], "r12");
    // One message per round, the overlapping one trimmed to its new tail.
    let msgs = read_messages(&url, "RACE", 1);
    check_layout(&msgs, "t.rec", 1, DEFAULT_NATS_MAX_MESSAGE_BYTES);
    assert_eq!(msgs.iter().map(|m| (m.first, m.last)).collect::<Vec<_>>(), [(0, 9), (10, 19), (20, 24)]);
}

#[test]
fn a_three_node_cluster_with_replicas_3_loses_a_node_mid_stream() {
    let Some(mut nodes) = nats::cluster3() else { return };
    let seed = common::seed();
    let urls: Vec<String> = nodes.iter().map(nats::NatsNode::url).collect();
    let all = urls.join(",");
    let args = sink_args(&all, "CLUSTER", &["--nats-replicas", "3", "--nats-sync", "interval"]);
    let slots: Vec<Slot> = (0..2).map(|i| Slot::new(&format!("cl-c{i}"), args.clone())).collect();
    let endpoints: Vec<SocketAddr> = slots.iter().map(Slot::addr).collect();
    const AGENTS: usize = 4;
    const RECORDS: u32 = 400;
    const PAYLOAD: usize = 20;
    let agents: Vec<_> = (0..AGENTS)
        .map(|i| {
            let mut list = endpoints.clone();
            list.rotate_left(i % 2);
            std::thread::spawn(move || {
                let id = format!("cl-agent-{i}");
                let p = run_listed_agent(&id, seed ^ i as u64, list, RECORDS, Duration::from_millis(10), PAYLOAD, Duration::from_secs(120));
                (id, p)
            })
        })
        .collect();
    // Mid-stream, the stream's leader is kill -9'd.
    std::thread::sleep(Duration::from_secs(2));
    let leader = stream_leader(&urls[0], "CLUSTER");
    let victim = nodes.iter().position(|n| n.name == leader).unwrap_or(0);
    nodes[victim].kill9();
    eprintln!("cluster: killed {} (the stream leader: {leader})", nodes[victim].name);
    let mut accepted = HashMap::new();
    for h in agents {
        let (id, p) = h.join().unwrap();
        assert!(p.drained, "{id}: records never acked");
        accepted.insert(id, p.accepted);
    }
    let alive = nodes.iter().position(|n| n.name != nodes[victim].name).unwrap();
    let lines = read_stream(&urls[alive], "CLUSTER", 1);
    check_exactly_once(&lines, &accepted, PAYLOAD);
    let (_, records) = check_layout(&read_messages(&urls[alive], "CLUSTER", 1), "t.rec", 1, DEFAULT_NATS_MAX_MESSAGE_BYTES);
    assert_eq!(records, lines.len() as u64);
    drop(slots);
}

/// The name of the server leading `stream`.
fn stream_leader(url: &str, stream: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let ctx = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let mut s = ctx.get_stream(stream).await.unwrap();
        s.info().await.unwrap().cluster.as_ref().and_then(|c| c.leader.clone()).unwrap_or_default()
    })
}

trait IntoTuple {
    fn into_tuple(self) -> (Raw, Got);
}

impl IntoTuple for (Raw, Got, u32) {
    fn into_tuple(self) -> (Raw, Got) {
        (self.0, self.1)
    }
}

#[test]
fn a_round_longer_than_the_message_bound_is_split_and_the_bound_and_partitions_are_checked_at_start() {
    let Some(server) = nats::single() else { return };
    let url = server.url();
    // Refused at start: a bound the server's max_payload (1 MiB) cannot
    // take with the headers, and one below the longest record line.
    let dir = TempDir::new("js-bound");
    for (bound, why) in [("1048576", "max_payload"), ("1000", "--nats-max-message-bytes must be within")] {
        let args = sink_args(&url, "BOUND", &["--nats-max-message-bytes", bound]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = collector().command(dir.path(), &args).output().expect("run edge-collector");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{bound}: {:?} {err}", out.status);
    }
    // Another partition count than the streams were made for.
    // (Its own subject prefix: its streams' subjects must not overlap SPLIT's.)
    let part_args = |n: &str| sink_args(&url, "PART", &["--nats-partitions", n]).into_iter().map(|a| if a == "t.rec" { "t.part".to_string() } else { a }).collect::<Vec<_>>();
    drop(Slot::new("js-part2", part_args("2")));
    let args = part_args("3");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = collector().command(dir.path(), &args).output().expect("run edge-collector");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("was made for --nats-partitions 2"), "{:?} {err}", out.status);
    // Small frames and identities make the longest line, and so the
    // smallest bound, small; records of 2,000 bytes: 12 lines a message.
    let bound = edge_collector::bounds::line_max(4096, 16, 16);
    let bound_arg = bound.to_string();
    let args = sink_args(&url, "SPLIT", &["--max-frame", "4096", "--max-agent-id-bytes", "16", "--max-identity-bytes", "16", "--max-inflight", "64", "--nats-max-message-bytes", &bound_arg]);
    let c = Slot::new("js-split", args);
    let (mut r, acc) = Raw::connect_admitted(c.addr(), &hello("splitter", b"", 0, 0), T, 0).into_tuple();
    assert!(matches!(acc, Got::Accept { next_seq: 0, .. }), "{acc:?}");
    let text = "x".repeat(2000);
    r.batch(&text, 0, 1);
    assert_eq!(r.recv_skipping(T), Got::Ack(0));
    // The server stopped: the next round waits for its ack while 39
    // batches queue behind it, so the round after is about 86 KB.
    const BATCHES: u64 = 40;
    let pid = server.pid().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    for seq in 1..BATCHES {
        r.batch(&text, seq, 1);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let end = Instant::now() + T;
    loop {
        match r.recv_skipping(end.saturating_duration_since(Instant::now())) {
            Got::Ack(s) if s == BATCHES - 1 => break,
            Got::Ack(_) => {}
            g => panic!("waiting for the last ack: {g:?}"),
        }
    }
    let msgs = read_messages(&url, "SPLIT", 1);
    let (messages, records) = check_layout(&msgs, "t.rec", 1, bound);
    assert_eq!(records, BATCHES);
    let widest = msgs.iter().map(|m| m.last - m.first + 1).max().unwrap();
    eprintln!("split: {records} records in {messages} messages of at most {bound} bytes, at most {widest} records each");
    assert!(widest >= 2 && messages >= 4 && (messages as u64) < BATCHES, "{messages} messages, at most {widest} records each");
    let seqs: Vec<u64> = read_stream(&url, "SPLIT", 1).iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..BATCHES).collect::<Vec<_>>());
}

#[test]
fn max_agents_bounds_the_streams_subjects_for_new_unproven_ids() {
    let Some(server) = nats::single() else { return };
    let url = server.url();
    let c = Slot::new("js-max-agents", sink_args(&url, "MAXAG", &["--max-agents", "2"]));
    // A new id without records is admitted (nothing in the stream yet)...
    let (idle, acc) = Raw::connect_admitted(c.addr(), &hello("idle", b"", 0, 0), T, 0).into_tuple();
    assert!(matches!(acc, Got::Accept { next_seq: 0, .. }), "{acc:?}");
    drop(idle);
    // ... two that write fill the stream's two places ...
    for id in ["one", "two"] {
        let (mut r, acc) = Raw::connect_admitted(c.addr(), &hello(id, b"", 0, 0), T, 0).into_tuple();
        assert!(matches!(acc, Got::Accept { next_seq: 0, .. }), "{acc:?}");
        r.batch(id, 0, 3);
        assert_eq!(r.recv_skipping(T), Got::Ack(2));
    }
    // ... and a third new id is refused, Busy, as with the local table.
    let mut third = Raw::connect(c.addr());
    third.send(&agent_core::message::Message::Hello(hello("three", b"", 0, 0)));
    match third.recv_skipping(T) {
        Got::Reject { code: 6, reason, .. } => assert!(reason.contains("agent table full"), "{reason}"),
        g => panic!("a new id beyond --max-agents must be refused with Reject 6, got {g:?}"),
    }
    // A known agent (its subject has records) is still taken.
    let (mut r, acc) = Raw::connect_admitted(c.addr(), &hello("one", b"", 0, 0), T, 0).into_tuple();
    assert!(matches!(acc, Got::Accept { next_seq: 3, .. }), "{acc:?}");
    r.batch("one", 3, 2);
    assert_eq!(r.recv_skipping(T), Got::Ack(4));
    let seqs: Vec<(String, u64)> = read_stream(&url, "MAXAG", 1).iter().map(|l| (l["agent"].as_str().unwrap().to_string(), l["seq"].as_u64().unwrap())).collect();
    assert_eq!(seqs.iter().filter(|(a, _)| a == "one").count(), 5);
    assert!(seqs.iter().all(|(a, _)| a == "one" || a == "two"), "{seqs:?}");
}

/// `consume_all` with `follow` over several streams takes turns: a stream
/// with thousands of messages waiting delays another by at most one fetch
/// (before, it was drained first), and the wait on an empty stream is
/// bounded. The streams are made here (in memory) with messages in the
/// sink's layout.
#[test]
fn following_several_streams_takes_turns() {
    use async_nats::jetstream::stream::{Config, StorageType};
    use edge_collector::jetstream::consume::{consume_all, FETCH};
    use edge_collector::jetstream::message::{FIRST_SEQ_HEADER, LAST_SEQ_HEADER};
    const BUSY: u64 = 3 * FETCH as u64;
    let Some(server) = nats::single() else { return };
    let url = server.url();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let ctx = async_nats::jetstream::new(async_nats::connect(&url).await.expect("connect to NATS"));
        let streams: Vec<String> = (0..2).map(|i| edge_collector::jetstream::subject::stream_name("FAIR", 2, i)).collect();
        for (i, name) in streams.iter().enumerate() {
            ctx.create_stream(Config { name: name.clone(), subjects: vec![format!("fair.{i}.>")], storage: StorageType::Memory, ..Default::default() }).await.unwrap();
        }
        let publish = |subject: String, seq: u64, text: String| {
            let ctx = ctx.clone();
            async move {
                let mut h = async_nats::HeaderMap::new();
                h.insert(FIRST_SEQ_HEADER, seq.to_string().as_str());
                h.insert(LAST_SEQ_HEADER, seq.to_string().as_str());
                ctx.publish_with_headers(subject, h, format!("{text}\n").into()).await.unwrap()
            }
        };
        let mut acks = Vec::new();
        for seq in 0..BUSY {
            acks.push(publish("fair.0.busy".into(), seq, format!("busy {seq}")).await);
        }
        acks.push(publish("fair.1.quiet".into(), 0, "quiet 0".into()).await);
        for a in acks {
            a.await.unwrap();
        }
        let mut out = Vec::new();
        // Follows forever: stopped once everything is surely read.
        let r = tokio::time::timeout(Duration::from_secs(5), consume_all(&ctx, &streams, "fair", &mut out, Duration::from_secs(2), true)).await;
        assert!(r.is_err(), "following ends only by an error: {r:?}");
        let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
        assert_eq!(lines.len() as u64, BUSY + 1, "every message once");
        let quiet = lines.iter().position(|l| *l == "quiet 0").unwrap();
        assert!(quiet <= FETCH, "the quiet stream's message after {quiet} lines of the busy one: at most one fetch ({FETCH})");
        // A message on the quiet stream after both have been idle for a
        // while arrives within about the idle time (2 s), not one idle per
        // stream in turn; nothing read before comes again.
        let mut out = FirstWrite(Vec::new(), None);
        let publisher = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let at = Instant::now();
            publish("fair.1.quiet".into(), 1, "quiet 1".into()).await.await.unwrap();
            at
        };
        let follow = tokio::time::timeout(Duration::from_secs(7), consume_all(&ctx, &streams, "fair", &mut out, Duration::from_secs(2), true));
        let (published, _) = tokio::join!(publisher, follow);
        assert_eq!(std::str::from_utf8(&out.0).unwrap(), "quiet 1\n", "only the new message: the consumers resume where they acked");
        let latency = out.1.unwrap() - published;
        eprintln!("measured: a message on an idle stream of two written {latency:?} after its publish (idle 2 s)");
        assert!(latency < Duration::from_millis(2500), "{latency:?}");
    });
}

/// A writer that notes when it was first written to.
struct FirstWrite(Vec<u8>, Option<Instant>);

impl std::io::Write for FirstWrite {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if !b.is_empty() && self.1.is_none() {
            self.1 = Some(Instant::now());
        }
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
