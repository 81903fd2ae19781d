//! Server-paced admission against the collector binary: 150 raw clients
//! say Hello at once to a collector admitting 50 handshakes per second;
//! those beyond the burst get Reject 6 with slots of their own, spread
//! over about 3 s, and each is Accepted when it comes back at its slot.
//! After a restart, the advice counts the agents of the registry.

mod common;

use agent_core::message::Message;
use common::raw::{hello, Got, Raw};
use common::{collector, http, TempDir};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const AGENTS: usize = 150;
const RATE: u64 = 50;
const BURST_MS: u64 = 20;
const T: Duration = Duration::from_secs(5);

/// One Hello and its answer, times in ms since the common start.
#[derive(Debug, Clone)]
struct Try {
    sent: f64,
    got: Got,
    recv: f64,
    /// Clients holding an Accepted connection when this Hello was sent: a
    /// lower bound of the collector's open connections when it answered.
    held_before: usize,
}

fn ms_since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

/// Most of `times` (ms) within any window of `len` ms.
fn densest(times: &[f64], len: f64) -> usize {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..t.len() {
        while t[hi] - t[lo] > len {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[test]
fn a_storm_is_paced_into_slots() {
    let dir = TempDir::new("admission");
    let col = collector().start(
        dir.path(),
        &["--admission-rate", "50", "--admission-burst-ms", "20", "--registry-flush", "0.2", "--api-token", "api-token-for-tests", "--api-listen", "127.0.0.1:0"],
    );
    let addr = col.agents;
    let start = Arc::new(Barrier::new(AGENTS + 1));
    let held = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..AGENTS)
        .map(|i| {
            let (start, held) = (start.clone(), held.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let id = format!("storm-{i:03}");
                    let h = hello(&id, b"", 0, 0);
                    // Connected first, so that the Hellos go out together.
                    let mut c = Raw::connect(addr);
                    start.wait();
                    let mut tries = Vec::new();
                    loop {
                        let held_before = held.load(Ordering::SeqCst);
                        let sent = ms_since(t0);
                        c.send(&Message::Hello(h));
                        let got = c.recv_skipping(T);
                        let recv = ms_since(t0);
                        tries.push(Try { sent, got: got.clone(), recv, held_before });
                        match got {
                            Got::Accept { .. } => {
                                held.fetch_add(1, Ordering::SeqCst);
                                // Held open until the end: part of the fleet.
                                return (id, tries, c);
                            }
                            Got::Reject { code: 6, retry_after_ms, .. } if tries.len() < 4 => {
                                drop(c);
                                // Exactly as told, measured from the answer, as an agent does.
                                std::thread::sleep(Duration::from_millis(u64::from(retry_after_ms)));
                                c = Raw::connect(addr);
                            }
                            _ => return (id, tries, c),
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    start.wait();
    let t_start = ms_since(t0);
    let results: Vec<(String, Vec<Try>, Raw)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let storm_ms = ms_since(t0) - t_start;
    eprintln!("storm of {AGENTS} drained in {storm_ms:.0} ms");

    let firsts: Vec<&Try> = results.iter().map(|(_, t, _)| &t[0]).collect();
    let first_busy: Vec<(f64, u32)> = firsts
        .iter()
        .filter_map(|t| match t.got {
            Got::Reject { code: 6, retry_after_ms, .. } => Some((t.recv, retry_after_ms)),
            _ => None,
        })
        .collect();
    let first_accepted = firsts.iter().filter(|t| matches!(t.got, Got::Accept { .. })).count();
    assert_eq!(first_accepted + first_busy.len(), AGENTS, "every first answer is Accept or Busy: {firsts:?}");
    // The burst: in the span over which the first Hellos were answered, at
    // most RATE * (span + burst) + 1 fresh admissions.
    let span = firsts.iter().map(|t| t.recv).fold(0.0, f64::max) - firsts.iter().map(|t| t.sent).fold(f64::MAX, f64::min);
    let burst_bound = (RATE as f64 * (span + BURST_MS as f64) / 1000.0).floor() as usize + 1;
    eprintln!("first answers: {first_accepted} Accept, {} Busy, within {span:.0} ms", first_busy.len());
    assert!(first_accepted <= burst_bound, "{first_accepted} admitted at once, bound {burst_bound}");
    assert!(first_busy.len() >= AGENTS / 2, "most of the storm was told to come back");

    // Slots: retry_after_ms > 0, spread over about AGENTS / RATE = 3 s, 1/RATE apart.
    assert!(first_busy.iter().all(|&(_, r)| r > 0));
    let max_retry = first_busy.iter().map(|&(_, r)| r).max().unwrap();
    assert!((1500..=4500).contains(&max_retry), "the last slot {max_retry} ms out, for {} slots at {RATE}/s", first_busy.len());
    let slots: Vec<f64> = first_busy.iter().map(|&(recv, r)| recv + f64::from(r)).collect();
    let mut distinct: Vec<i64> = slots.iter().map(|&s| s.round() as i64).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() * 10 >= slots.len() * 9, "{} distinct slot times of {}", distinct.len(), slots.len());
    let dense = densest(&slots, 1000.0);
    assert!(dense <= RATE as usize + 2 + 5, "{dense} slots within one second");

    // Each client that came back when told was Accepted on that try; a
    // second Busy only for one that came early (a short remaining wait).
    let mut claimed = 0;
    let mut total_busy = 0;
    for (id, tries, _) in &results {
        let busy: Vec<u32> = tries
            .iter()
            .filter_map(|t| match t.got {
                Got::Reject { code: 6, retry_after_ms, .. } => Some(retry_after_ms),
                _ => None,
            })
            .collect();
        total_busy += busy.len();
        claimed += usize::from(!busy.is_empty());
        assert!(matches!(tries.last().unwrap().got, Got::Accept { .. }), "{id}: {tries:?}");
        assert!(busy.len() <= 2, "{id}: {} Busy answers: {tries:?}", busy.len());
        if busy.len() == 2 {
            assert!(busy[1] <= BURST_MS as u32 + 5, "{id}: told to wait {} ms more after coming back at its slot: {tries:?}", busy[1]);
        }
        // The advice: ceil(1000 * fleet / 50) = 20 * fleet, fleet at least
        // the connections open then.
        let accept = tries.last().unwrap();
        let Got::Accept { next_seq: 0, retry_window_ms, .. } = accept.got else { panic!("{id}: {accept:?}") };
        assert!(retry_window_ms > 0 && retry_window_ms % 20 == 0, "{id}: retry_window_ms {retry_window_ms}");
        let fleet = retry_window_ms as usize / 20;
        assert!(fleet > accept.held_before && fleet <= 2 * AGENTS, "{id}: fleet {fleet}, {} held before", accept.held_before);
    }
    eprintln!("{total_busy} Busy answers; {claimed} clients claimed a slot, {} of them after coming back early", total_busy - claimed);
    // Admissions happened at about the rate, not at once.
    let accepted_at: Vec<f64> = results.iter().map(|(_, t, _)| t.last().unwrap().recv).collect();
    let dense = densest(&accepted_at, 1000.0);
    assert!(dense <= RATE as usize + 2 + 8, "{dense} Accepts within one second");
    assert!(storm_ms < 8000.0, "drained in {storm_ms:.0} ms");

    let (status, m) = http(col.api.unwrap(), "GET", "/metrics", Some("api-token-for-tests"), None);
    assert_eq!(status, 200);
    for (name, want) in [
        ("admissions_total", AGENTS),
        ("accepts_total", AGENTS),
        ("rejects_paced_total", total_busy),
        ("reservations_claimed_total", claimed),
        ("reservations", 0),
        ("reservations_expired_total", 0),
        ("rejects_busy_total", 0),
    ] {
        assert!(m.contains(&format!("\nedge_collector_{name} {want}\n")), "{name} {want} in\n{m}");
    }
    drop(results);
}

#[test]
fn after_a_restart_the_advice_counts_the_registry() {
    let dir = TempDir::new("advice");
    let args = ["--admission-rate", "50", "--registry-flush", "0.2"];
    let mut col = collector().start(dir.path(), &args);
    for i in 0..5 {
        let id = format!("known-{i}");
        let (_, accept, _) = Raw::connect_admitted(col.agents, &hello(&id, b"", 0, 0), T, 3);
        assert!(matches!(accept, Got::Accept { .. }), "{accept:?}");
    }
    // Five Hellos in the registry (flushed every 0.2 s), then a crash.
    std::thread::sleep(Duration::from_millis(800));
    col.kill9();
    let col = collector().start(dir.path(), &args);
    let (_, accept, busy) = Raw::connect_admitted(col.agents, &hello("newcomer", b"", 0, 0), T, 0);
    assert_eq!(busy, 0);
    // One connection open, five agents seen within 24 h: ceil(1000 * 5 / 50).
    let Got::Accept { retry_window_ms, .. } = accept else { panic!("{accept:?}") };
    assert_eq!(retry_window_ms, 100, "the fleet is the registry's 5, not the 1 connection");
}
