//! The host layer against the real collector (loopback, the
//! `edge-collector` binary): records from two threads all acked exactly
//! once across two `kill -9` restarts, a dead endpoint first in the list, a
//! task round trip through the HTTP API, a config applied, host stats and
//! identity in the registry, the clean stop; the caller's-loop shape; the
//! idle wake-ups counted; a blocked socket that does not spin.


mod blocked;

use agent_core::message::{Accept, Message};
use agent_core::Duration;
use edge_testkit::collector::*;
use edge_agent_linux::{Host, HostConfig, HostEvent, Progress};
use std::io::Read;
use std::sync::{Arc, Mutex};

fn quick(cfg: &mut HostConfig) {
    cfg.agent.backoff.base = Duration::from_millis(50);
    cfg.agent.backoff.cap = Duration::from_millis(400);
    cfg.agent.backoff.attempts_per_endpoint = 1;
    cfg.agent.heartbeat_interval = Duration::from_secs(1);
}

#[derive(Default)]
struct Seen {
    configs: Vec<(String, String, String)>,
    tasks: Vec<String>,
    connected: u32,
}

/// A handler that answers tasks with "done:<payload>" and keeps configs.
fn handler(seen: Arc<Mutex<Seen>>) -> impl FnMut(&Host, &HostEvent<'_>) + Send {
    move |host: &Host, ev: &HostEvent<'_>| {
        let mut s = seen.lock().unwrap();
        match *ev {
            HostEvent::Task { token, payload, .. } => {
                let p = String::from_utf8_lossy(payload).to_string();
                host.task_result(token, 0, &format!("done:{p}")).unwrap();
                s.tasks.push(p);
            }
            HostEvent::Config { name, version, payload } => {
                s.configs.push((name.into(), version.into(), String::from_utf8_lossy(payload).into()))
            }
            HostEvent::Connected { .. } => s.connected += 1,
            _ => {}
        }
    }
}

#[test]
fn two_threads_a_task_a_config_and_two_kill9_restarts_exactly_once() {
    let dir = TempDir::new("e2e");
    let mut col = host::start(dir.path(), "127.0.0.1:0");
    let (s, b) = host::http(&col, "PUT", "/configs/sampling", Some(r#"{"version": "v3", "payload": "every=50ms"}"#));
    assert_eq!(s, 200, "{b}");

    // A dead endpoint first; the live one by name (localhost may resolve to
    // ::1 first, where nobody listens: the next address is tried).
    let live = format!("localhost:{}", col.agents.port());
    let mut cfg = HostConfig::new("host-e2e", [format!("127.0.0.1:{}", dead_port()), live]);
    quick(&mut cfg);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let host = Host::new(cfg, handler(seen.clone())).unwrap();
    host.start().unwrap();

    const PER_THREAD: usize = 1500;
    let pushers: Vec<_> = (0..2)
        .map(|t| {
            let host = host.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    host.push(2001, format!("t{t}-{i}").as_bytes()).unwrap();
                    if i % 50 == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            })
        })
        .collect();

    // The task round trip, while records flow.
    wait_for(std::time::Duration::from_secs(20), || (seen.lock().unwrap().connected > 0).then_some(())).expect("connected");
    let (s, b) = host::http(&col, "POST", "/agents/host-e2e/tasks", Some(r#"{"data_type": 6001, "payload": "ping-7"}"#));
    assert_eq!(s, 201, "{b}");
    let token = json(&b)["token"].as_str().unwrap().to_string();
    let done = wait_for(std::time::Duration::from_secs(20), || {
        let (_, t) = host::http(&col, "GET", &format!("/tasks/{token}"), None);
        let t = json(&t);
        (t["state"] == "done").then_some(t)
    })
    .expect("the task's result reaches the collector");
    assert_eq!(done["result"]["message"], "done:ping-7");

    // kill -9 twice while the threads push.
    for round in 2..=3 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let agents = col.agents;
        col.kill9();
        std::thread::sleep(std::time::Duration::from_millis(200));
        col = host::restart(dir.path(), agents);
        wait_for(std::time::Duration::from_secs(20), || (seen.lock().unwrap().connected >= round).then_some(()))
            .unwrap_or_else(|| panic!("reconnected to collector {round}"));
    }
    for p in pushers {
        p.join().unwrap();
    }
    let report = host.stop(Duration::from_secs(30)).unwrap();
    assert!(report.drained, "everything acked before Close: {report:?}");
    assert_eq!(report.unacked, 0);
    assert_eq!(host.push(2001, b"late"), Err(edge_agent_linux::HostError::Stopping));

    let got = texts(dir.path(), "host-e2e", 2001);
    for t in 0..2 {
        for i in 0..PER_THREAD {
            let k = format!("t{t}-{i}");
            assert_eq!(got.get(&k).copied(), Some(1), "{k}: exactly once");
        }
    }
    assert_eq!(got.len(), 2 * PER_THREAD, "nothing else of type 2001");
    let s = seen.lock().unwrap();
    assert!(s.configs.contains(&("sampling".into(), "v3".into(), "every=50ms".into())), "config applied: {:?}", s.configs);
    assert_eq!(s.tasks, ["ping-7"]);
    assert!(s.connected >= 3, "three collectors, three connections: {}", s.connected);
    let st = host.stats();
    assert!(st.connect_failures >= 1, "the dead endpoint failed first");

    // The registry has the identity and the host stats of a heartbeat.
    let a = wait_for(std::time::Duration::from_secs(5), || {
        let (_, a) = host::http(&col, "GET", "/agents/host-e2e", None);
        let a = json(&a);
        a["last_heartbeat"]["host"]["rss_bytes"].as_u64().is_some().then_some(a)
    })
    .expect("a heartbeat with host stats");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(a["hostname"], hostname.trim());
    // The interface addresses went in the Hello.
    let ours = edge_agent_linux::netinfo::addresses();
    let listed: Vec<String> = a["addresses"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    for v4 in ours.private_v4.chunks(4).chain(ours.public_v4.chunks(4)) {
        let ip = std::net::Ipv4Addr::new(v4[0], v4[1], v4[2], v4[3]).to_string();
        assert!(listed.contains(&ip), "{ip} in {listed:?}");
    }
    let h = &a["last_heartbeat"]["host"];
    assert!(h["mem_total_bytes"].as_u64().unwrap() > 0, "{h}");
    assert!(h["open_fds"].as_u64().unwrap() > 2, "{h}");
}

#[test]
fn the_callers_loop_shape_delivers_and_stops() {
    let dir = TempDir::new("loop");
    let col = host::start(dir.path(), "127.0.0.1:0");
    let mut cfg = HostConfig::new("host-loop", [col.agents.to_string()]);
    quick(&mut cfg);
    let host = Host::new(cfg, |_: &Host, _: &HostEvent<'_>| {}).unwrap();
    for i in 0..200 {
        host.push(2001, format!("r{i}").as_bytes()).unwrap();
    }
    let mut stopping = false;
    let started = std::time::Instant::now();
    let report = loop {
        let mut fds = [nix::poll::PollFd::new(host.fd(), nix::poll::PollFlags::POLLIN)];
        let ms = host.next_timeout_ms();
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::try_from(ms.clamp(-1, 1000)).unwrap());
        match host.process() {
            Progress::Stopped(r) => break r,
            Progress::Running { .. } => {}
        }
        if !stopping && host.stats().acked >= 200 {
            host.begin_stop(Duration::from_secs(10));
            stopping = true;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "stuck: {:?}", host.stats());
    };
    assert!(report.drained);
    let got = texts(dir.path(), "host-loop", 2001);
    assert_eq!(got.len(), 200);
    assert!(got.values().all(|&n| n == 1));
}

#[test]
fn an_idle_agent_wakes_only_for_its_timers() {
    let dir = TempDir::new("idle");
    let col = host::start(dir.path(), "127.0.0.1:0");
    let mut cfg = HostConfig::new("host-idle", [col.agents.to_string()]);
    quick(&mut cfg);
    cfg.agent.idle_timeout = Duration::from_secs(120);
    let host = Host::new(cfg, |_: &Host, _: &HostEvent<'_>| {}).unwrap();
    host.start().unwrap();
    wait_for(std::time::Duration::from_secs(20), || (host.stats().connections > 0 && host.stats().acked > 0).then_some(()))
        .expect("connected, first heartbeat acked");
    let before = host.loop_stats();
    let hb_before = host.stats().pushed;
    std::thread::sleep(std::time::Duration::from_secs(4));
    let after = host.loop_stats();
    let heartbeats = host.stats().pushed - hb_before;
    let wakeups = after.wakeups - before.wakeups;
    eprintln!("idle 4 s: {wakeups} wake-ups for {heartbeats} heartbeats");
    // Each heartbeat: its timer, its flush, its ack (3 wake-ups); nothing else.
    assert!((3..=5).contains(&heartbeats), "{heartbeats} heartbeats in 4 s at 1 s");
    assert!(wakeups <= 3 * heartbeats + 2, "{wakeups} wake-ups for {heartbeats} heartbeats: more than the timers");
    assert_eq!(after.woken_by_push, before.woken_by_push, "nobody pushed");
    host.stop(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_blocked_socket_does_not_spin() {
    // A peer that accepts the handshake and then never reads.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _ = nix::sys::socket::setsockopt(&listener, nix::sys::socket::sockopt::RcvBuf, &4096);
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut hello = [0u8; 4096];
        let _ = s.read(&mut hello).unwrap();
        let mut wire = [0u8; 64];
        let n = Message::Accept(Accept { next_seq: 0, max_frame: 65536, retry_window_ms: 0 }).encode(0, &mut wire).unwrap();
        std::io::Write::write_all(&mut s, &wire[..n]).unwrap();
        std::thread::sleep(std::time::Duration::from_secs(8));
        drop(s);
    });
    let mut cfg = HostConfig::new("host-blocked", [addr.to_string()]);
    quick(&mut cfg);
    cfg.agent.window_bytes = 4 << 20;
    cfg.ring_bytes = 8 << 20;
    cfg.socket_send_buffer = Some(4096);
    cfg.host_stats = false;
    let host = Host::new(cfg, |_: &Host, _: &HostEvent<'_>| {}).unwrap();
    host.start().unwrap();
    blocked::assert_a_blocked_host_waits(&host, "plain");
    let report = host.stop(Duration::from_millis(200)).unwrap();
    assert!(!report.drained && report.unacked > 0, "what stayed unacked is reported: {report:?}");
    peer.join().unwrap();
}
