//! Exactly once, end to end: real agents (agent_core's driver over TCP)
//! through a chaos proxy, across `kill -9` of the collector binary, and a
//! burst bigger than the ring under each overflow policy.

mod common;

use agent_core::OverflowPolicy;
use common::agent::{run_agent, text_of, AgentReport, AgentSpec};
use common::proxy::{self, Chaos};
use common::{collector, sink_view, Rng, SinkView, TempDir};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Every record an agent's ring took is in the sink exactly once, and
/// nothing else of type 2001 is (`sink_view` already refused any (agent,
/// seq) twice). `evicted` records may be missing (DropOldest).
fn check_exactly_once(v: &SinkView, r: &AgentReport, spec_len: usize) {
    let texts = v.texts.get(&r.id).cloned().unwrap_or_default();
    let mut count: HashMap<&str, u32> = HashMap::new();
    for t in &texts {
        *count.entry(t).or_default() += 1;
    }
    assert!(count.values().all(|&n| n == 1), "{}: a record written twice", r.id);
    let want: Vec<String> = r.accepted.iter().map(|&i| text_of(&r.id, i, spec_len)).collect();
    let missing: Vec<&String> = want.iter().filter(|t| !count.contains_key(t.as_str())).collect();
    assert_eq!(missing.len() as u64, r.stats.dropped_evicted, "{}: missing records not explained by evictions: {:?}", r.id, &missing[..missing.len().min(5)]);
    assert_eq!(texts.len() + missing.len(), want.len(), "{}: a record in the sink the agent never pushed", r.id);
    assert!(r.drained, "{}: not everything acked at the end: {:?}", r.id, r.stats);
}

fn run_fleet(specs: Vec<AgentSpec>, addr: SocketAddr) -> Vec<AgentReport> {
    let hs: Vec<_> = specs.into_iter().map(|s| std::thread::spawn(move || run_agent(s, addr))).collect();
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn chaos_proxy_cuts_stalls_flips_and_refusals() {
    let seed = common::seed();
    let dir = TempDir::new("chaos");
    let col = collector().start(dir.path(), &[]);
    let chaos = Chaos {
        cut_below: Some(6_000),
        flip_up: 15,
        flip_down: 5,
        stall_per_mille: 10,
        stall: Duration::from_millis(300),
        refuse_every: 4,
    };
    let p = proxy::start(col.agents, chaos, seed);
    let specs: Vec<AgentSpec> = (0..4)
        .map(|i| AgentSpec { seed: seed + i, every: Duration::from_millis(4), ..AgentSpec::new(&format!("chaos-{i}"), 500) })
        .collect();
    let reports = run_fleet(specs, p.addr);
    let v = sink_view(dir.path());
    for r in &reports {
        assert_eq!(r.refused, 0);
        check_exactly_once(&v, r, 16);
    }
    let st = &p.stats;
    let (cuts, flips, refused) = (st.cuts.load(std::sync::atomic::Ordering::Relaxed), st.flips.load(std::sync::atomic::Ordering::Relaxed), st.refused.load(std::sync::atomic::Ordering::Relaxed));
    eprintln!("proxy: {cuts} cuts, {flips} flips, {refused} refused; agents reconnected {:?} times", reports.iter().map(|r| r.connects).collect::<Vec<_>>());
    assert!(cuts >= 4 && refused > 0 && flips > 0, "the chaos happened");
}

#[test]
fn kill_9_at_random_moments_then_exactly_once() {
    let seed = common::seed();
    let mut rng = Rng(seed);
    let dir = TempDir::new("kill9");
    let mut col = collector().start(dir.path(), &["--rotate-bytes", "16384"]);
    let addr = col.agents;
    let listen = addr.to_string();
    let specs: Vec<AgentSpec> = (0..4)
        .map(|i| AgentSpec { seed: seed + i, every: Duration::from_millis(5), ..AgentSpec::new(&format!("k9-{i}"), 600) })
        .collect();
    let fleet = std::thread::spawn(move || run_fleet(specs, addr));
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(200 + rng.below(700)));
        col.kill9();
        eprintln!("kill -9 #{round}");
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        col = collector().start(dir.path(), &["--listen", &listen, "--rotate-bytes", "16384"]);
    }
    let reports = fleet.join().unwrap();
    drop(col);
    let v = sink_view(dir.path());
    for r in &reports {
        check_exactly_once(&v, r, 16);
        assert!(r.connects >= 2, "{}: reconnected across the kills", r.id);
    }
    let rotated = std::fs::read_dir(dir.path()).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("records-")).count();
    assert!(rotated > 0, "rotation happened during the run");
}

#[test]
fn burst_bigger_than_the_ring_under_each_policy() {
    let dir = TempDir::new("burst");
    // A port with nothing behind it yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let listen = addr.to_string();
    let specs = vec![
        AgentSpec { ring_bytes: 8192, payload_len: 64, every: Duration::ZERO, policy: OverflowPolicy::RejectNew, ..AgentSpec::new("burst-reject", 600) },
        AgentSpec { ring_bytes: 8192, payload_len: 64, every: Duration::ZERO, policy: OverflowPolicy::DropOldest, ..AgentSpec::new("burst-drop", 600) },
    ];
    let fleet = std::thread::spawn(move || run_fleet(specs, addr));
    std::thread::sleep(Duration::from_millis(1000));
    let col = collector().start(dir.path(), &["--listen", &listen]);
    let reports = fleet.join().unwrap();
    drop(col);
    let v = sink_view(dir.path());
    let (reject, drop_oldest) = (&reports[0], &reports[1]);
    // dropped_full also counts heartbeats the full ring refused.
    assert!(reject.refused > 0 && reject.stats.dropped_full >= u64::from(reject.refused), "{:?}", reject.stats);
    assert!(drop_oldest.refused == 0 && drop_oldest.stats.dropped_evicted > 0, "{:?}", drop_oldest.stats);
    for r in &reports {
        check_exactly_once(&v, r, 64);
    }
    // DropOldest keeps the newest records.
    let texts = &v.texts["burst-drop"];
    assert!(texts.contains(&text_of("burst-drop", 599, 64)));
}
