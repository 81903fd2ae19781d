//! The registry, tasks and configs shared through JetStream KV (issue 18),
//! against a real nats-server (see `common/nats.rs` for where the binary
//! comes from) and three real collectors on it: an agent held by one
//! collector gets tasks posted to another and configs put on a third,
//! every collector's API shows the same agent and results, a task sent but
//! not answered before its collector is `kill -9`'d is resent by the next
//! one and answered once, and a nats-server restart is survived.

mod common;
#[path = "common/nats.rs"]
mod nats;

use agent_core::message::{Batch, Message, Pong, TaskResult};
use common::raw::{entries, hello, Got, Raw};
use common::{http, json, wait_for, CollectorProc, TempDir};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
const TOKEN: &str = "kv-test-api-token-0123456789";

struct Node {
    _dir: TempDir,
    proc: Option<CollectorProc>,
    agents: SocketAddr,
    api: SocketAddr,
}

fn collector(name: &str, url: &str) -> Node {
    collector_with(name, url, "KVT", &[])
}

/// A collector on buckets `<kv_prefix>_*`, with `extra` flags.
fn collector_with(name: &str, url: &str, kv_prefix: &str, extra: &[&str]) -> Node {
    let dir = TempDir::new(name);
    let mut args = vec![
        "--sink", url, "--nats-stream", "KVFLEET", "--nats-subject-prefix", "kv.rec", "--nats-kv-prefix", kv_prefix, "--nats-ack-timeout", "2",
        "--idle-timeout", "6", "--admission-rate", "0", "--registry-flush", "0.2", "--api-listen", "127.0.0.1:0", "--api-token", TOKEN,
    ];
    args.extend_from_slice(extra);
    let proc = common::collector().start(dir.path(), &args);
    let (agents, api) = (proc.agents, proc.api.expect("the API's address in the ready line"));
    Node { _dir: dir, proc: Some(proc), agents, api }
}

fn get(api: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http(api, "GET", path, Some(TOKEN), None);
    (status, if body.is_empty() { serde_json::Value::Null } else { json(&body) })
}

/// The next Task or Config frame, answering Pings and skipping Acks;
/// panics on anything else.
fn next_command(raw: &mut Raw, limit: Duration) -> Got {
    let end = Instant::now() + limit;
    loop {
        match raw.recv(end.saturating_duration_since(Instant::now())) {
            Got::Ping(nonce) => raw.send(&Message::Pong(Pong { nonce })),
            Got::Ack(_) | Got::Pong(_) => {}
            g @ (Got::Task { .. } | Got::Config { .. }) => return g,
            g => panic!("expected a task or a config, got {g:?}"),
        }
    }
}

/// The task with `token`, skipping configs and other tasks (collected in
/// `others`).
fn task(raw: &mut Raw, token: &str, others: &mut Vec<Got>) -> Got {
    let end = Instant::now() + T;
    loop {
        let g = next_command(raw, end.saturating_duration_since(Instant::now()));
        match &g {
            Got::Task { token: t, .. } if t == token => return g,
            _ => others.push(g),
        }
    }
}

fn answer(raw: &mut Raw, token: &str, status: u32, message: &str) {
    raw.send(&Message::TaskResult(TaskResult { token: token.into(), status, message: message.into() }));
}

fn post_task(api: SocketAddr, agent: &str, payload: &str) -> String {
    let body = format!(r#"{{"object_name":"","data_type":6001,"payload":"{payload}"}}"#);
    let (status, resp) = http(api, "POST", &format!("/agents/{agent}/tasks"), Some(TOKEN), Some(&body));
    assert_eq!(status, 201, "POST task: {resp}");
    json(&resp)["token"].as_str().unwrap().to_string()
}

/// The value of metric `edge_collector_<name>` in `GET /metrics` of `api`.
fn metric(api: SocketAddr, name: &str) -> u64 {
    let (status, body) = http(api, "GET", "/metrics", Some(TOKEN), None);
    assert_eq!(status, 200);
    let prefix = format!("edge_collector_{name} ");
    body.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no metric {name}")).parse().unwrap()
}

/// Waits until `GET /tasks/{token}` on `api` shows it done; the task.
fn done_on(api: SocketAddr, token: &str) -> serde_json::Value {
    wait_for(T, || {
        let (s, t) = get(api, &format!("/tasks/{token}"));
        (s == 200 && t["state"] == "done").then_some(t)
    })
    .unwrap_or_else(|| panic!("task {token} not done on {api}: {:?}", get(api, &format!("/tasks/{token}"))))
}

/// Waits until `GET /agents` on `api` lists `agent` held by the collector
/// whose agent port is `port`.
fn held_by(api: SocketAddr, agent: &str, port: u16) -> serde_json::Value {
    wait_for(T, || {
        let (s, list) = get(api, "/agents");
        if s != 200 {
            return None;
        }
        list["agents"].as_array()?.iter().find(|a| a["id"] == agent && a["collector"].as_str().is_some_and(|c| c.ends_with(&format!(":{port}")))).cloned()
    })
    .unwrap_or_else(|| panic!("{api} does not list {agent} held by :{port}: {:?}", get(api, "/agents")))
}

#[test]
fn tasks_and_configs_reach_the_agent_through_any_collector_and_survive_failover_and_a_server_restart() {
    let Some(mut server) = nats::single() else { return };
    let url = server.url();
    let a = collector("kv-a", &url);
    let mut b = collector("kv-b", &url);
    let c = collector("kv-c", &url);
    let id = "kv-agent-1";

    // The agent on B; every collector lists it, held by B.
    let (mut raw, accept, _) = Raw::connect_admitted(b.agents, &hello(id, b"", 0, 0), T, 10);
    assert!(matches!(accept, Got::Accept { next_seq: 0, .. }), "{accept:?}");
    raw.batch("r", 0, 3);
    assert_eq!(raw.recv_answering(T), Got::Ack(2), "the records are in the stream");
    for api in [a.api, c.api] {
        let entry = held_by(api, id, b.agents.port());
        assert_eq!(entry["status"], "online");
        assert_eq!(entry["hostname"], "raw-host");
    }
    let (s, one) = get(c.api, &format!("/agents/{id}"));
    assert_eq!((s, &one["id"]), (200, &serde_json::json!(id)));
    assert_eq!(get(a.api, "/agents/nobody").0, 404);
    assert_eq!(http(a.api, "POST", "/agents/nobody/tasks", Some(TOKEN), Some(r#"{"data_type":1}"#)).0, 404, "unknown agents get no tasks");

    // A task posted to A reaches the agent on B; its result shows on A and C.
    let posted = Instant::now();
    let t1 = post_task(a.api, id, "first");
    let mut others = Vec::new();
    let got = task(&mut raw, &t1, &mut others);
    // A figure for NOTES.md, not a bound.
    eprintln!("measured: POST on A to the Task frame on B: {:?}", posted.elapsed());
    assert!(matches!(&got, Got::Task { data_type: 6001, payload, .. } if payload == b"first"), "{got:?}");
    let answered = Instant::now();
    answer(&mut raw, &t1, 0, "ok-1");
    done_on(c.api, &t1);
    eprintln!("measured: TaskResult on B to done on C: {:?}", answered.elapsed());
    for api in [a.api, c.api] {
        let t = done_on(api, &t1);
        assert_eq!((t["agent_id"].as_str(), t["sends"].as_u64(), &t["result"]), (Some(id), Some(1), &serde_json::json!({"status": 0, "message": "ok-1"})));
    }

    // A config put on C reaches the agent on B.
    let (s, body) = http(c.api, "PUT", "/configs/sampling", Some(TOKEN), Some(r#"{"version":"v7","payload":"rate=5"}"#));
    assert_eq!(s, 200, "{body}");
    let cfg = wait_for(T, || match next_command(&mut raw, T) {
        g @ Got::Config { .. } => Some(g),
        g => {
            others.push(g);
            None
        }
    });
    assert_eq!(cfg, Some(Got::Config { name: "sampling".into(), version: "v7".into() }));

    // A task posted to C is sent by B but not answered; B is kill -9'd; the
    // agent fails over to A, which resends it (with the config); the
    // agent answers (twice: the first result wins) and every collector shows
    // one result.
    let t2 = post_task(c.api, id, "second");
    task(&mut raw, &t2, &mut others);
    wait_for(T, || (get(a.api, &format!("/tasks/{t2}")).1["state"] == "sent").then_some(())).expect("task 2 marked sent by B");
    b.proc.take().unwrap().kill9();
    drop(raw);
    let (mut raw, accept, _) = Raw::connect_admitted(a.agents, &hello(id, b"", 3, 3), T, 10);
    assert!(matches!(accept, Got::Accept { next_seq: 3, .. }), "the resume point from the stream: {accept:?}");
    let mut on_hello = Vec::new();
    task(&mut raw, &t2, &mut on_hello);
    assert!(on_hello.contains(&Got::Config { name: "sampling".into(), version: "v7".into() }), "the config on Hello at A: {on_hello:?}");
    assert!(!on_hello.iter().any(|g| matches!(g, Got::Task { token, .. } if *token == t1)), "a task with a result is not resent: {on_hello:?}");
    answer(&mut raw, &t2, 0, "ok-2");
    answer(&mut raw, &t2, 1, "a repeat");
    for api in [a.api, c.api] {
        let t = done_on(api, &t2);
        assert_eq!((t["sends"].as_u64(), &t["result"]), (Some(2), &serde_json::json!({"status": 0, "message": "ok-2"})), "on {api}");
    }
    held_by(c.api, id, a.agents.port());

    // The nats-server restarts: the collectors and their watchers come back;
    // a task posted to C reaches the agent (reconnected to A if A closed it).
    server.restart();
    assert!(server.wait_healthy(T), "nats-server back");
    let t3 = wait_for(T, || {
        let body = r#"{"object_name":"","data_type":6001,"payload":"third"}"#;
        let (s, resp) = http(c.api, "POST", &format!("/agents/{id}/tasks"), Some(TOKEN), Some(body));
        if s == 201 {
            return Some(json(&resp)["token"].as_str().unwrap().to_string());
        }
        std::thread::sleep(Duration::from_millis(200));
        None
    })
    .expect("C takes tasks again after the restart");
    let end = Instant::now() + T;
    let mut seq = 3;
    'delivered: loop {
        assert!(Instant::now() < end, "task 3 not delivered after the server restart");
        loop {
            match raw.recv(Duration::from_millis(500)) {
                Got::Ping(nonce) => raw.send(&Message::Pong(Pong { nonce })),
                Got::Task { token, .. } if token == t3 => {
                    answer(&mut raw, &t3, 0, "ok-3");
                    break 'delivered;
                }
                Got::Eof | Got::Close { .. } => break,
                Got::Timeout => {
                    // Traffic, so a dead connection shows.
                    let records = entries("r", seq, 1);
                    raw.send(&Message::Batch(Batch { first_seq: seq, base_ts: 1000, count: 1, records: &records }));
                    seq += 1;
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        let h = hello(id, b"", 0, 0);
        let mut r = Raw::connect(a.agents);
        r.send(&Message::Hello(h));
        match r.recv_skipping(T) {
            Got::Accept { next_seq, .. } => {
                eprintln!("the agent reconnected to A after the nats-server restart");
                seq = next_seq;
                raw = r;
            }
            g => eprintln!("reconnect to A: {g:?}"),
        }
    }
    done_on(a.api, &t3);
    assert_eq!(done_on(c.api, &t3)["result"], serde_json::json!({"status": 0, "message": "ok-3"}));

    // The metrics show the registry's traffic and the followers started
    // again after the server's restart.
    for api in [a.api, c.api] {
        let (reads, writes, total, max) = (metric(api, "kv_reads_total"), metric(api, "kv_writes_total"), metric(api, "kv_micros_total"), metric(api, "kv_micros_max"));
        eprintln!("measured: {api}: {reads} KV reads, {writes} writes, mean {} us, longest {max} us, {} follower restarts, {} errors", total / (reads + writes).max(1), metric(api, "kv_follow_restarts_total"), metric(api, "kv_errors_total"));
        assert!(reads > 0 && writes > 0 && max > 0 && total >= max, "{api}: {reads} {writes} {total} {max}");
        assert!(metric(api, "kv_follow_restarts_total") >= 1, "{api}: the followers came back after the restart");
        assert!(metric(api, "kv_listings_total") >= 1, "{api}: GET /agents listed the bucket");
    }
    // Nothing else of task 1 or 2 came again.
    assert!(!others.iter().any(|g| matches!(g, Got::Task { token, .. } if *token == t1)), "{others:?}");
}

#[test]
fn an_agent_s_open_tasks_are_bounded_and_unknown_tasks_are_404() {
    let Some(server) = nats::single() else { return };
    let url = server.url();
    let dir = TempDir::new("kv-bound");
    let args = [
        "--sink", &url, "--nats-stream", "KVB", "--nats-subject-prefix", "kvb.rec", "--nats-kv-prefix", "KVB", "--nats-max-open-tasks", "3",
        "--admission-rate", "0", "--registry-flush", "0.2", "--api-listen", "127.0.0.1:0", "--api-token", TOKEN,
    ];
    let c = common::collector().start(dir.path(), &args);
    let api = c.api.unwrap();
    let (mut raw, _, _) = Raw::connect_admitted(c.agents, &hello("bounded", b"", 0, 0), T, 10);
    raw.batch("r", 0, 1);
    assert_eq!(raw.recv_answering(T), Got::Ack(0));
    wait_for(T, || (get(api, "/agents/bounded").0 == 200).then_some(())).expect("the agent in the shared registry");
    drop(raw);
    let tokens: Vec<String> = (0..3).map(|i| post_task(api, "bounded", &format!("p{i}"))).collect();
    let (s, body) = http(api, "POST", "/agents/bounded/tasks", Some(TOKEN), Some(r#"{"data_type":1}"#));
    assert_eq!(s, 429, "the fourth open task is refused: {body}");
    assert_eq!(get(api, "/tasks/nope").0, 404);
    assert_eq!(get(api, "/tasks/a%20b").0, 404);
    // The agent comes back: all three in order; answering one frees a place.
    let (mut raw, _, _) = Raw::connect_admitted(c.agents, &hello("bounded", b"", 1, 1), T, 10);
    let got: Vec<String> = (0..3)
        .map(|_| match next_command(&mut raw, T) {
            Got::Task { token, .. } => token,
            g => panic!("{g:?}"),
        })
        .collect();
    assert_eq!(got, tokens, "open tasks resent oldest first");
    answer(&mut raw, &tokens[0], 0, "ok");
    done_on(api, &tokens[0]);
    let t = wait_for(T, || {
        let (s, resp) = http(api, "POST", "/agents/bounded/tasks", Some(TOKEN), Some(r#"{"data_type":1}"#));
        (s == 201).then(|| json(&resp)["token"].as_str().unwrap().to_string())
    })
    .expect("a place freed by the result");
    assert!(matches!(next_command(&mut raw, T), Got::Task { token, .. } if token == t));
}

/// Endpoint `i` of the agent's list is `addrs[i]`.
struct ListConnector(Vec<SocketAddr>);

impl agent_core::driver::Connector for ListConnector {
    type Transport = common::tcp_transport::TcpTransport;
    type Error = std::io::Error;
    fn connect(&mut self, endpoint: u8) -> Result<Self::Transport, std::io::Error> {
        let addr = self.0[endpoint as usize % self.0.len()];
        let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        s.set_nodelay(true)?;
        Ok(common::tcp_transport::TcpTransport::new(s))
    }
}

/// A real agent (`agent_core`'s driver) with `endpoints` in its list: a
/// record every 20 ms whose text names the version of config `sampling`
/// it holds (`cfg=<version>`), every task answered `done:<payload>`,
/// until `stop`; then it waits (bounded) for every record to be acked.
/// The number of records pushed, and whether all were acked.
fn config_following_agent(id: &'static str, endpoints: Vec<SocketAddr>, stop: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<(u64, bool)> {
    use agent_core::driver::Driver;
    use agent_core::{Agent, AgentConfig, AgentStorage, Duration as AgentDuration, Event, Identity, Instant as AgentInstant, Record};
    std::thread::spawn(move || {
        let mut ring = vec![0u8; 256 * 1024];
        let mut rx = vec![0u8; 8192];
        let mut events = vec![0u8; 4096];
        let mut buf = vec![0u8; 8192 + 64];
        let identity = Identity { agent_id: id, hostname: "kv-host", product: "edge-test", version: "1.0", intranet_ipv4: &[127, 0, 0, 1], ..Identity::default() };
        let cfg = AgentConfig {
            heartbeat_interval: AgentDuration::from_secs(1),
            flush_interval: AgentDuration::from_millis(20),
            backoff: agent_core::backoff::BackoffConfig { base: AgentDuration::from_millis(50), cap: AgentDuration::from_millis(400), endpoints: endpoints.len() as u8, ..Default::default() },
            ack_timeout: AgentDuration::from_secs(5),
            rng_seed: 7,
            ..AgentConfig::default()
        };
        let agent = Agent::new(cfg, identity, AgentStorage { ring: &mut ring, rx: &mut rx, events: &mut events }).expect("valid agent config");
        let mut driver = Driver::new(agent, common::agent::StdClock(Instant::now()), ListConnector(endpoints), &mut buf).expect("buffer");
        let version = std::cell::RefCell::new(String::from("none"));
        let mut on_event = |ev: Event<'_>, agent: &mut Agent<'_>, now: AgentInstant| match ev {
            Event::Config { name, version: v, .. } if name == "sampling" => *version.borrow_mut() = v.to_string(),
            Event::Task { token, payload, .. } => {
                let _ = agent.task_result(now, token, 0, &format!("done:{}", String::from_utf8_lossy(payload)));
            }
            _ => {}
        };
        let mut pushed = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let text = format!("cfg={}", version.borrow());
            if driver.push(&Record::new(2001, 1_700_000_000_000 + pushed, text.as_bytes())).is_ok() {
                pushed += 1;
            }
            let next = driver.now() + AgentDuration::from_millis(20);
            driver.run_until(next, |_| false, &mut on_event);
        }
        let deadline = driver.now() + AgentDuration::from_secs(20);
        driver.run_until(deadline, |a| a.is_drained(), &mut on_event);
        let drained = driver.agent().is_drained();
        driver.close();
        (pushed, drained)
    })
}

/// Every record of `stream`, parsed, in stream order.
fn read_stream(url: &str, stream: &str) -> Vec<serde_json::Value> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let out = rt.block_on(async {
        let ctx = async_nats::jetstream::new(async_nats::connect(url).await.expect("connect to NATS"));
        let mut out = Vec::new();
        edge_collector::jetstream::consume::consume(&ctx, stream, "kvcheck", &mut out, Duration::from_secs(2), false).await.expect("consume");
        out
    });
    String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_real_agent_applies_a_config_put_on_another_collector_and_answers_tasks_across_a_failover() {
    let Some(server) = nats::single() else { return };
    let url = server.url();
    let a = collector("kv-ra", &url);
    let mut b = collector("kv-rb", &url);
    let c = collector("kv-rc", &url);
    let id = "kv-real-1";
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let agent = config_following_agent(id, vec![b.agents, a.agents], stop.clone());
    held_by(a.api, id, b.agents.port());

    // A config put on C, a task posted to A: both reach the agent on B.
    let (s, body) = http(c.api, "PUT", "/configs/sampling", Some(TOKEN), Some(r#"{"version":"v2","payload":"rate=2"}"#));
    assert_eq!(s, 200, "{body}");
    let t1 = post_task(a.api, id, "one");
    assert_eq!(done_on(c.api, &t1)["result"], serde_json::json!({"status": 0, "message": "done:one"}));

    // B is kill -9'd: the agent fails over to A; a task posted to C reaches it there.
    b.proc.take().unwrap().kill9();
    held_by(c.api, id, a.agents.port());
    let t2 = post_task(c.api, id, "two");
    assert_eq!(done_on(a.api, &t2)["result"], serde_json::json!({"status": 0, "message": "done:two"}));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (pushed, drained) = agent.join().unwrap();
    assert!(drained, "every record acked");

    // The stream: every record once in order; the config applied in every
    // record after the first that names it.
    let lines: Vec<_> = read_stream(&url, "KVFLEET").into_iter().filter(|l| l["agent"] == id && l["type"] == 2001).collect();
    assert_eq!(lines.len() as u64, pushed, "every pushed record in the stream once");
    let texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    let first = texts.iter().position(|t| *t == "cfg=v2").expect("records after the config carry its version");
    assert!(first > 0 && texts[..first].iter().all(|t| *t == "cfg=none"), "before: {:?}", &texts[..first]);
    assert!(texts[first..].iter().all(|t| *t == "cfg=v2"), "after the config: {:?}", &texts[first..]);
}

fn kv_settings(url: &str, prefix: &str, name: &str, max_open_tasks: usize) -> edge_collector::config::NatsSettings {
    edge_collector::config::NatsSettings {
        urls: vec![url.to_string()],
        stream: "UNUSED".into(),
        subject_prefix: "unused".into(),
        replicas: 1,
        sync: edge_collector::config::NatsSync::Always,
        max_age: Duration::ZERO,
        duplicate_window: Duration::from_secs(120),
        ack_timeout: Duration::from_secs(2),
        max_message_bytes: 786_432,
        partitions: 1,
        kv_prefix: prefix.into(),
        collector_name: Some(name.into()),
        max_open_tasks,
        task_retention: Duration::from_secs(86_400),
    }
}

fn snapshot(id: &str, status: &str, connected_since: Option<u64>, last_seen: u64) -> serde_json::Value {
    serde_json::json!({
        "id": id, "hostname": "h", "product": "p", "version": "1", "addresses": [], "status": status,
        "first_seen": last_seen, "last_seen": last_seen, "connected_since": connected_since, "endpoint": "127.0.0.1:1",
        "last_heartbeat": {"at": null, "host": null, "lib": null}, "plugins": [],
    })
}

/// Two collectors writing one agent's entry, and many posting tasks for
/// one agent at once, straight through the KV layer against a real server.
#[test]
fn races_on_the_buckets_resolve_by_the_documented_rules() {
    use edge_collector::jetstream::kv::{Kv, TaskRefused};
    use edge_collector::registry::TaskRow;
    let Some(server) = nats::single() else { return };
    let url = server.url();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let metrics = Arc::new(edge_collector::metrics::Metrics::default());
        let x = Kv::connect(&kv_settings(&url, "RACE", "x", 5), 1, metrics.clone()).await.unwrap();
        let y = Kv::connect(&kv_settings(&url, "RACE", "y", 5), 2, metrics.clone()).await.unwrap();
        let now = 1_000_000u64;

        // X held the agent since 100; Y's session since 200 is newer.
        x.publish_agent("ag", snapshot("ag", "online", Some(100), 150), true).await.unwrap();
        y.publish_agent("ag", snapshot("ag", "online", Some(200), 250), true).await.unwrap();
        // X's stale session writes again, then ends: neither covers Y's.
        x.publish_agent("ag", snapshot("ag", "online", Some(100), 300), true).await.unwrap();
        x.publish_agent("ag", snapshot("ag", "offline", None, 310), false).await.unwrap();
        let e = y.agent("ag", 0).await.unwrap().unwrap();
        assert_eq!((e["collector"].as_str(), e["status"].as_str(), e["connected_since"].as_u64()), (Some("y"), Some("online"), Some(200)), "{e}");
        assert_eq!(e["first_seen"], 150, "the earliest any collector saw");
        assert_eq!(x.agent("ag", 260).await.unwrap().unwrap()["status"], "stale", "silent since 250 < 260 reads stale");
        // Y's own disconnect is written.
        y.publish_agent("ag", snapshot("ag", "offline", None, 400), false).await.unwrap();
        assert_eq!(x.agent("ag", 0).await.unwrap().unwrap()["status"], "offline");
        assert_eq!(x.agents(0).await.unwrap().len(), 1);

        // Twelve tasks for one agent posted at once through both: exactly
        // the bound (5) is taken, the rest refused as Full, and the open
        // list holds exactly the taken ones.
        let mut posts = tokio::task::JoinSet::new();
        for i in 0..12 {
            let kv = if i % 2 == 0 { x.clone() } else { y.clone() };
            posts.spawn(async move {
                let t = TaskRow {
                    token: format!("race-{i}"), agent_id: "ag".into(), object_name: String::new(), data_type: 1, payload: vec![i as u8],
                    state: "queued".into(), sends: 0, result_status: None, result_message: None,
                };
                (t.token.clone(), kv.create_task(&t, now).await)
            });
        }
        let mut taken = Vec::new();
        let mut full = 0;
        while let Some(r) = posts.join_next().await {
            match r.unwrap() {
                (token, Ok(())) => taken.push(token),
                (_, Err(TaskRefused::Full)) => full += 1,
                (_, Err(e)) => panic!("{e}"),
            }
        }
        assert_eq!((taken.len(), full), (5, 7));
        let mut open: Vec<String> = x.open_tasks("ag").await.unwrap().into_iter().map(|t| t.token).collect();
        open.sort();
        taken.sort();
        assert_eq!(open, taken);
        // Two results for one task from two collectors at once: one is
        // written, the other finds it done and is dropped.
        let r = |m: &str, s| edge_collector::session::ResultInfo { token: taken[0].clone(), status: s, message: m.into() };
        tokio::join!(x.write_result("ag", r("from-x", 0)), y.write_result("ag", r("from-y", 1)));
        let t = y.task(&taken[0]).await.unwrap().unwrap();
        let first = (t.result_status, t.result_message.clone());
        assert!(first == (Some(0), Some("from-x".into())) || first == (Some(1), Some("from-y".into())), "{t:?}");
        x.write_result("ag", r("later", 2)).await;
        y.write_result("other-agent", edge_collector::session::ResultInfo { token: taken[1].clone(), status: 2, message: "not its task".into() }).await;
        y.write_result("ag", edge_collector::session::ResultInfo { token: "race-unknown".into(), status: 1, message: "no such task".into() }).await;
        let t = x.task(&taken[0]).await.unwrap().unwrap();
        assert_eq!((t.state.as_str(), t.sends, (t.result_status, t.result_message)), ("done", 0, first), "the first result stays");
        assert_eq!(x.task(&taken[1]).await.unwrap().unwrap().state, "queued", "another agent's result is not taken");
        assert_eq!(y.open_tasks("ag").await.unwrap().len(), 4, "the answered task left the open list");
        assert!(y.task("race-unknown").await.unwrap().is_none());
    });
}

/// More tasks than a fetch (50) and a subscription (64) hold, posted one
/// after another to a live agent: every one reaches it through the
/// follower, none twice.
#[test]
fn a_run_of_tasks_beyond_the_fetch_size_all_reach_a_live_agent() {
    let Some(server) = nats::single() else { return };
    let url = server.url();
    let c = collector("kv-run", &url);
    let id = "kv-run-1";
    let (mut raw, _, _) = Raw::connect_admitted(c.agents, &hello(id, b"", 0, 0), T, 10);
    raw.batch("r", 0, 1);
    assert_eq!(raw.recv_answering(T), Got::Ack(0));
    let tokens: Vec<String> = (0..150).map(|i| post_task(c.api, id, &format!("p{i}"))).collect();
    let mut got = Vec::new();
    let end = Instant::now() + T;
    while got.len() < tokens.len() {
        assert!(Instant::now() < end, "{} of {} tasks arrived", got.len(), tokens.len());
        match next_command(&mut raw, end.saturating_duration_since(Instant::now())) {
            Got::Task { token, .. } => got.push(token),
            g => panic!("{g:?}"),
        }
    }
    assert_eq!(got, tokens, "every task once, in the order posted");
}

/// The size of stream `name` (a KV bucket is stream `KV_<bucket>`): messages
/// and bytes.
fn stream_size(rt: &tokio::runtime::Runtime, ctx: &async_nats::jetstream::Context, name: &str) -> (u64, u64) {
    rt.block_on(async {
        let info = ctx.get_stream(name).await.expect("the stream").get_info().await.expect("stream info");
        (info.state.messages, info.state.bytes)
    })
}

/// Finished tasks expire `--nats-task-retention` after their result:
/// within it every collector reads the result, after it the task is gone
/// (404, not in the bucket); an open task never expires; under a steady
/// run of tasks the bucket holds about the retention's worth, not every
/// task ever posted. The tasks bucket was made before retention existed
/// (no per-message TTL): the collectors let it take TTLs. The metrics show
/// the registry's traffic and the bucket's size.
#[test]
fn finished_tasks_expire_after_the_retention_and_the_tasks_bucket_stays_bounded() {
    const RETENTION: Duration = Duration::from_secs(10);
    // Expiry may lag the TTL a little (the server's timers); and a result
    // lands within about a second of the post here.
    const SLACK: Duration = Duration::from_secs(3);
    let Some(server) = nats::single() else { return };
    let url = server.url();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ctx = rt.block_on(async { async_nats::jetstream::new(async_nats::connect(&url).await.expect("connect to NATS")) });
    rt.block_on(async {
        let old = async_nats::jetstream::kv::Config { bucket: "KVR_TASKS".into(), history: 1, ..Default::default() };
        let store = ctx.create_key_value(old).await.expect("an old tasks bucket");
        assert!(!store.stream.cached_info().config.allow_message_ttl);
    });
    let retention = RETENTION.as_secs().to_string();
    let a = collector_with("kv-ret-a", &url, "KVR", &["--nats-task-retention", &retention]);
    let b = collector_with("kv-ret-b", &url, "KVR", &["--nats-task-retention", &retention]);
    let ttl_allowed = rt.block_on(async { ctx.get_stream("KV_KVR_TASKS").await.unwrap().get_info().await.unwrap().config.allow_message_ttl });
    assert!(ttl_allowed, "the old bucket now takes per-message TTLs");

    // An agent that is offline with one open task.
    let idle = "kv-ret-idle";
    let (mut raw, _, _) = Raw::connect_admitted(a.agents, &hello(idle, b"", 0, 0), T, 10);
    raw.batch("r", 0, 1);
    assert_eq!(raw.recv_answering(T), Got::Ack(0));
    wait_for(T, || (get(b.api, &format!("/agents/{idle}")).0 == 200).then_some(())).expect("the idle agent in the shared registry");
    drop(raw);
    let waiting = post_task(b.api, idle, "waits");

    // A live agent on B answers tasks posted to A, about 10 a second, for
    // more than twice the retention.
    let id = "kv-ret-1";
    let (mut raw, _, _) = Raw::connect_admitted(b.agents, &hello(id, b"", 0, 0), T, 10);
    raw.batch("r", 0, 1);
    assert_eq!(raw.recv_answering(T), Got::Ack(0));
    held_by(a.api, id, b.agents.port());
    let started = Instant::now();
    let mut posted: Vec<(Instant, String)> = Vec::new();
    let mut answered = 0usize;
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let mut gauge_max = 0;
    let mut next_sample = started;
    while started.elapsed() < 2 * RETENTION + Duration::from_secs(4) {
        let t = post_task(a.api, id, &format!("p{}", posted.len()));
        posted.push((Instant::now(), t));
        loop {
            match raw.recv(Duration::from_millis(30)) {
                Got::Ping(nonce) => raw.send(&Message::Pong(Pong { nonce })),
                Got::Task { token, .. } => {
                    answer(&mut raw, &token, 0, "ok");
                    answered += 1;
                }
                Got::Timeout => break,
                Got::Ack(_) | Got::Pong(_) | Got::Config { .. } => {}
                g => panic!("{g:?}"),
            }
        }
        if Instant::now() >= next_sample {
            samples.push((Instant::now(), stream_size(&rt, &ctx, "KV_KVR_TASKS").0));
            gauge_max = gauge_max.max(metric(a.api, "kv_task_entries"));
            next_sample += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The last task: answered on B, read on A within the retention.
    let (_, last) = posted.last().cloned().unwrap();
    let end = Instant::now() + T;
    while answered < posted.len() {
        assert!(Instant::now() < end, "{answered} of {} tasks answered", posted.len());
        match raw.recv(Duration::from_millis(200)) {
            Got::Ping(nonce) => raw.send(&Message::Pong(Pong { nonce })),
            Got::Task { token, .. } => {
                answer(&mut raw, &token, 0, "ok");
                answered += 1;
            }
            _ => {}
        }
    }
    done_on(a.api, &last);
    let done_at = Instant::now();
    let max_entries = samples.iter().map(|s| s.1).max().unwrap();
    eprintln!("measured: {} tasks in {:?}; the tasks bucket held at most {max_entries} entries (gauge at most {gauge_max})", posted.len(), started.elapsed());
    for &(at, entries) in &samples {
        // Open tasks (the idle agent's, any not answered yet) and the
        // finished ones posted within the retention (plus slack) before.
        let recent = posted.iter().filter(|(p, _)| *p + RETENTION + SLACK >= at && *p <= at).count() as u64;
        assert!(entries <= recent + 1, "at {:?}: {entries} entries, {recent} posted within the retention", at - started);
    }
    assert!((max_entries as usize) * 3 < posted.len() * 2, "the bucket held at most {max_entries} of {} tasks", posted.len());
    assert!(gauge_max > 0 && gauge_max <= max_entries + 20, "kv_task_entries {gauge_max}");

    // Within the retention, both collectors read the result.
    std::thread::sleep(RETENTION - Duration::from_secs(3));
    for api in [a.api, b.api] {
        let (s, t) = get(api, &format!("/tasks/{last}"));
        assert_eq!((s, &t["state"], &t["result"]), (200, &serde_json::json!("done"), &serde_json::json!({"status": 0, "message": "ok"})), "{api} within the retention");
    }
    // After it: gone on both, and from the bucket: only the open task is left.
    wait_for(RETENTION + SLACK, || (get(a.api, &format!("/tasks/{last}")).0 == 404).then_some(())).expect("the finished task expired");
    assert!(done_at.elapsed() >= RETENTION - Duration::from_secs(1), "not before the retention: {:?}", done_at.elapsed());
    assert_eq!(get(b.api, &format!("/tasks/{last}")).0, 404);
    assert_eq!(get(a.api, &format!("/tasks/{}", posted[0].1)).0, 404);
    let (entries, bytes) = wait_for(SLACK, || Some(stream_size(&rt, &ctx, "KV_KVR_TASKS")).filter(|s| s.0 == 1)).expect("only the open task left");
    eprintln!("measured: after the retention the tasks bucket holds {entries} entry, {bytes} bytes");
    let (s, t) = get(a.api, &format!("/tasks/{waiting}"));
    assert_eq!((s, t["state"].as_str()), (200, Some("queued")), "an open task does not expire");

    // The open task still reaches its agent when it comes back.
    let (mut raw, _, _) = Raw::connect_admitted(a.agents, &hello(idle, b"", 1, 1), T, 10);
    assert!(matches!(next_command(&mut raw, T), Got::Task { token, .. } if token == waiting));

    // The metrics: the registry's traffic on A, no errors; the gauge follows the bucket.
    let (reads, writes, total, max) = (metric(a.api, "kv_reads_total"), metric(a.api, "kv_writes_total"), metric(a.api, "kv_micros_total"), metric(a.api, "kv_micros_max"));
    eprintln!("measured: A: {reads} KV reads, {writes} writes, {} conflicts, mean {} us, longest {max} us", metric(a.api, "kv_conflicts_total"), total / (reads + writes).max(1));
    assert!(reads as usize >= posted.len() && writes as usize >= 2 * posted.len(), "each POST reads the open list and writes it and the task: {reads} {writes}");
    assert!(max > 0 && total >= max);
    assert_eq!((metric(a.api, "kv_errors_total"), metric(a.api, "kv_updates_dropped_total")), (0, 0));
    wait_for(T, || (metric(a.api, "kv_task_entries") <= 1).then_some(())).expect("kv_task_entries follows the bucket");
}

#[test]
fn a_result_record_is_done_in_the_shared_registry_before_its_ack() {
    let Some(server) = nats::single() else { return };
    let url = server.url();
    let a = collector("kv-ack-a", &url);
    let b = collector("kv-ack-b", &url);
    let id = "kv-ack-agent";
    let (mut raw, accept, _) = Raw::connect_admitted(a.agents, &hello(id, b"", 0, 0), T, 10);
    assert!(matches!(accept, Got::Accept { next_seq: 0, .. }), "{accept:?}");
    held_by(b.api, id, a.agents.port());
    let mut others = Vec::new();
    for seq in 0..5u64 {
        let token = post_task(b.api, id, "x");
        task(&mut raw, &token, &mut others);
        // The result as the library sends it: a record of type 1050.
        let mut body = [0u8; 128];
        let n = agent_core::message::encode_task_result(&TaskResult { token: token.as_str().into(), status: 0, message: "ran".into() }, &mut body).unwrap();
        let (h, hl) = agent_core::record::EntryHeader::new(agent_core::data_type::TASK_RESULT, agent_core::record::ts_delta(1000, 1000), n).encode();
        let records = [&h[..hl], &body[..n]].concat();
        raw.send(&Message::Batch(Batch { first_seq: seq, base_ts: 1000, count: 1, records: &records }));
        assert_eq!(raw.recv_answering(T), Got::Ack(seq));
        // Read once, right after the Ack, on the other collector: a collector
        // killed now must not leave the task open to be sent and run again.
        let (s, t) = get(b.api, &format!("/tasks/{token}"));
        assert_eq!((s, t["state"].as_str()), (200, Some("done")), "task {token} at its Ack: {t}");
    }
}
