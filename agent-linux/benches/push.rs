//! Host-layer overhead per record pushed from another thread than the
//! loop's, against a bare `Agent::push` under a mutex (what a C caller of
//! `ea_agent_push` with lock hooks pays). Both rings use DropOldest, so the
//! steady state is the same ring work; the host adds the monotonic clock
//! read, the stopping flag and the wake-up check. Allocations per record:
//! zero (tests/alloc.rs). Figures: BENCHMARKS.md.
//!
//! `cargo bench -p edge-agent-linux --bench push`

use agent_core::{Agent, AgentConfig, AgentStorage, Identity, Instant, OverflowPolicy, Record};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edge_agent_linux::{clock, Host, HostConfig, HostEvent};
use std::hint::black_box;
use std::sync::Mutex;

const PAYLOAD: [u8; 64] = [7; 64];

fn config() -> AgentConfig {
    let mut c = AgentConfig::default();
    c.ring.policy = OverflowPolicy::DropOldest;
    c
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("push_64B");
    g.throughput(Throughput::Elements(1));

    // Baseline: the bare agent under a lock, the caller's instant.
    let (mut ring, mut rx, mut ev) = (vec![0u8; 256 * 1024], vec![0u8; 65536], vec![0u8; 16384]);
    let storage = AgentStorage { ring: &mut ring, rx: &mut rx, events: &mut ev };
    let agent = Mutex::new(Agent::new(config(), Identity { agent_id: "bench", ..Identity::default() }, storage).unwrap());
    g.bench_function("agent_push_under_mutex", |b| {
        b.iter(|| {
            let mut a = agent.lock().unwrap();
            black_box(a.push(Instant(1000), &Record::new(2001, 1, black_box(&PAYLOAD))))
        })
    });
    g.bench_function("agent_push_under_mutex_with_clock", |b| {
        b.iter(|| {
            let now = clock::monotonic();
            let mut a = agent.lock().unwrap();
            black_box(a.push(now, &Record::new(2001, 1, black_box(&PAYLOAD))))
        })
    });

    // The host, its loop on its own thread (endpoint refused: it sits in
    // backoff, waking for its timers), pushes from this thread.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = HostConfig::new("bench", [format!("127.0.0.1:{port}")]);
    cfg.agent = config();
    cfg.host_stats = false;
    cfg.send_addresses = false;
    let host = Host::new(cfg, |_: &Host, _: &HostEvent<'_>| {}).unwrap();
    host.start().unwrap();
    g.bench_function("host_push_at", |b| b.iter(|| black_box(host.push_at(2001, 1, black_box(&PAYLOAD)))));
    g.bench_function("host_push_wall_clock", |b| b.iter(|| black_box(host.push(2001, black_box(&PAYLOAD)))));
    eprintln!("host loop during the bench: {:?}", host.loop_stats());
    let _ = host.stop(agent_core::Duration::ZERO);

    // Connected: a peer that accepts the handshake and reads everything but
    // never acks (the window fills; each push also checks the timer table).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 65536];
        let _ = s.read(&mut buf);
        let mut wire = [0u8; 64];
        let accept = agent_core::message::Accept { next_seq: 0, max_frame: 65536, retry_window_ms: 0 };
        let n = agent_core::message::Message::Accept(accept).encode(0, &mut wire).unwrap();
        s.write_all(&wire[..n]).unwrap();
        while s.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    let mut cfg = HostConfig::new("bench", [addr.to_string()]);
    cfg.agent = config();
    cfg.host_stats = false;
    cfg.send_addresses = false;
    let host = Host::new(cfg, |_: &Host, _: &HostEvent<'_>| {}).unwrap();
    host.start().unwrap();
    while host.state() != agent_core::StateKind::Connected {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    g.bench_function("host_push_at_connected", |b| b.iter(|| black_box(host.push_at(2001, 1, black_box(&PAYLOAD)))));
    g.finish();
    eprintln!("host loop during the connected bench: {:?}", host.loop_stats());
    let _ = host.stop(agent_core::Duration::ZERO);
}

criterion_group!(benches, bench);
criterion_main!(benches);
