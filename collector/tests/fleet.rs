//! 1,000 agents connected at once, each storing and acking its batches,
//! all in the registry afterwards.

mod common;

use common::raw::{hello, Got, Raw};
use common::{collector, http, json, sink_view, wait_for, TempDir};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

const AGENTS: usize = 1000;
const T: Duration = Duration::from_secs(20);

#[test]
fn a_thousand_concurrent_agents() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    assert!(hard >= 2 * AGENTS as u64, "the open-file limit {hard} is too low for this test");
    let dir = TempDir::new("fleet");
    let col = collector().start(dir.path(), &["--api-token", "api-token-for-tests", "--api-listen", "127.0.0.1:0", "--registry-flush", "0.2"]);
    let addr = col.agents;
    let all_connected = Arc::new(Barrier::new(AGENTS));
    let all_acked = Arc::new(Barrier::new(AGENTS));
    let busy = Arc::new(AtomicU64::new(0));
    let hs: Vec<_> = (0..AGENTS)
        .map(|i| {
            let (b1, b2, busy) = (all_connected.clone(), all_acked.clone(), busy.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let id = format!("fleet-{i:04}");
                    // 1,000 Hellos at once are beyond the default
                    // admission burst: most come back at their slot.
                    let (mut c, accept, b) = Raw::connect_admitted(addr, &hello(&id, b"", 0, 0), T, 3);
                    busy.fetch_add(u64::from(b), Ordering::Relaxed);
                    assert!(matches!(accept, Got::Accept { next_seq: 0, .. }), "{id}");
                    b1.wait();
                    c.batch("f", 0, 5);
                    assert_eq!(c.recv_skipping(T), Got::Ack(4), "{id}");
                    c.batch("f", 5, 5);
                    assert_eq!(c.recv_skipping(T), Got::Ack(9), "{id}");
                    b2.wait();
                })
                .unwrap()
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let api = col.api.unwrap();
    let online = wait_for(Duration::from_secs(10), || {
        let (_, b) = http(api, "GET", "/agents", Some("api-token-for-tests"), None);
        let v = json(&b);
        let n = v["agents"].as_array().unwrap().len();
        (n == AGENTS).then_some(n)
    });
    assert_eq!(online, Some(AGENTS), "every agent in the registry");
    let (_, m) = http(api, "GET", "/metrics", Some("api-token-for-tests"), None);
    assert!(m.contains(&format!("edge_collector_records_stored_total {}\n", AGENTS * 10)), "{m}");
    let busy = busy.load(Ordering::Relaxed);
    eprintln!("{busy} Busy answers from the admission rate before {AGENTS} Accepts");
    assert!(m.contains(&format!("edge_collector_admissions_total {AGENTS}\n")), "{m}");
    assert!(m.contains(&format!("edge_collector_rejects_paced_total {busy}\n")), "{m}");
    let commits: u64 = m.lines().find_map(|l| l.strip_prefix("edge_collector_sink_commits_total ")).unwrap().parse().unwrap();
    eprintln!("{} batches in {commits} sink commits (group commit)", AGENTS * 2);
    drop(col);
    let v = sink_view(dir.path());
    assert_eq!(v.seqs.len(), AGENTS);
    assert!(v.seqs.values().all(|s| *s == (0..10).collect::<Vec<_>>()));
}
