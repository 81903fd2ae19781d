//! The targets of issue 10 on the simulation (`edge_storm::targets`), at
//! N = 1000: every outage of the matrix (5, 10, 60, 120 s) at both rates
//! (500/s, 2000/s), two restarts, for ours (the real agent at its defaults
//! against the paced collector).
//!
//! Every target is asserted as stated. (Before the agent's time-grown
//! window waited for a 5-minute grace, it was missed at N = 1000 after
//! 60-120 s outages: the window `D / 32` passed `1.5 N / R`; see
//! BENCHMARKS.md, "Reconnect storm".)
//!
//! Also: the fleet was up before each restart, the agents saw no protocol
//! anomaly, the agent against the collector of before issue 10 reproduces
//! the problem, and a run is a function of its seed.

use std::sync::OnceLock;

use edge_storm::targets;
use edge_storm::{run, Report, Scenario, ServerKind, Strategy};

const N: usize = 1000;
const OUTAGES_S: [u64; 4] = [5, 10, 60, 120];
const RATES: [u32; 2] = [500, 2000];
fn scenario(outage_s: u64, rate: u32, strategy: Strategy, server: ServerKind) -> Scenario {
    Scenario { agents: N, outage_ms: outage_s * 1000, rate, restarts: 2, strategy, server, seed: 1 }
}

/// Runs the scenarios two at a time (the machines have two cores).
fn run_all(scenarios: &[Scenario]) -> Vec<Report> {
    let mut out: Vec<Option<Report>> = vec![None; scenarios.len()];
    std::thread::scope(|s| {
        for (chunk, slots) in scenarios.chunks(scenarios.len().div_ceil(2)).zip(out.chunks_mut(scenarios.len().div_ceil(2))) {
            s.spawn(move || {
                for (sc, slot) in chunk.iter().zip(slots) {
                    *slot = Some(run(sc));
                }
            });
        }
    });
    out.into_iter().map(|r| r.expect("ran")).collect()
}

/// Ours over the matrix, computed once for all the tests.
fn ours() -> &'static [Report] {
    static OURS: OnceLock<Vec<Report>> = OnceLock::new();
    OURS.get_or_init(|| {
        let scenarios: Vec<Scenario> = RATES
            .iter()
            .flat_map(|&r| OUTAGES_S.iter().map(move |&o| scenario(o, r, Strategy::Agent, ServerKind::Paced)))
            .collect();
        run_all(&scenarios)
    })
}

fn describe(r: &Report) -> String {
    let s: Vec<String> = r
        .restarts
        .iter()
        .map(|s| format!("attempts {} back {:?} ms max accepts/1s {}", s.attempts_up, s.back_100_ms, s.max_accepts_1s))
        .collect();
    format!("{}: {}", r.scenario, s.join("; "))
}

#[test]
fn ours_meets_the_targets_of_issue_10() {
    for r in ours() {
        eprintln!("{}", describe(r));
        for c in targets::check(r) {
            assert!(c.met(), "{}: {:?} restart {}: {} > {}\n{}", r.scenario, c.target, c.restart, c.value, c.limit, describe(r));
        }
    }
}

#[test]
fn the_fleet_was_up_before_each_restart_and_the_agents_saw_no_anomaly() {
    for r in ours() {
        assert_eq!(r.boot_back, N, "{}: the whole fleet was admitted before the first restart", r.scenario);
        assert_eq!(r.anomalies, 0, "{}", r.scenario);
        for s in &r.restarts {
            assert_eq!(s.back_count, N, "{}", r.scenario);
            assert_eq!(s.refused, 0, "{}: the paced collector refuses nothing once up", r.scenario);
            // Every agent gets at most one Busy (it then comes back at its
            // slot): attempts = N + Busy.
            assert_eq!(s.attempts_up, N as u64 + s.busy, "{}", r.scenario);
        }
    }
}

#[test]
fn the_unpaced_collector_reproduces_the_problem() {
    let sc = scenario(10, 500, Strategy::Agent, ServerKind::Unpaced);
    let unpaced = run(&sc);
    let paced = ours().iter().find(|r| r.scenario == Scenario { server: ServerKind::Paced, ..sc }).expect("in the matrix");
    eprintln!("{}\n{}", describe(&unpaced), describe(paced));
    assert_eq!(unpaced.anomalies, 0);
    for (u, p) in unpaced.restarts.iter().zip(&paced.restarts) {
        let (ub, pb) = (u.back_100_ms.expect("all back"), p.back_100_ms.expect("all back"));
        // No advice: the agents' windows grow exponentially; the last one
        // is back long after N/R.
        assert!(ub > 10 * pb && ub > 10 * sc.n_over_r_ms(), "unpaced back in {ub} ms, paced in {pb} ms");
        assert_eq!(u.busy, 0);
    }
    assert!(!targets::check(&unpaced).iter().all(|c| c.met()));
}

#[test]
fn same_seed_same_report() {
    let sc = Scenario { agents: 300, outage_ms: 10_000, rate: 200, restarts: 2, strategy: Strategy::Agent, server: ServerKind::Paced, seed: 7 };
    let model = Scenario { strategy: Strategy::Decorrelated, ..sc };
    let reports = run_all(&[sc, sc, Scenario { seed: 8, ..sc }, model, model]);
    assert_eq!(reports[0], reports[1]);
    assert_ne!(reports[0].series, reports[2].series, "another seed, another run");
    assert_eq!(reports[3], reports[4]);
}

#[test]
fn one_restart_ends_when_the_last_agent_is_back() {
    let sc = Scenario { agents: 200, outage_ms: 5_000, rate: 100, restarts: 1, strategy: Strategy::Agent, server: ServerKind::Paced, seed: 3 };
    let r = run(&sc);
    assert_eq!((r.boot_back, r.restarts.len(), r.anomalies), (200, 1, 0));
    let s = &r.restarts[0];
    assert_eq!(s.back_count, 200);
    let back = s.back_100_ms.expect("all back");
    assert_eq!(r.end_ms, s.up_ms + back, "the run stops at the last admission");
    assert!(targets::check(&r).iter().all(|c| c.met()), "{:?}", targets::check(&r));
}
