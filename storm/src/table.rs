//! Markdown tables of reports: one table per strategy and collector, one
//! row per scenario, each cell `1st / 2nd` restart, the targets' columns
//! marked met or missed.

use std::fmt::Write;

use crate::report::{Report, RestartStats};
use crate::scenario::{ServerKind, Strategy};
use crate::targets::{self, Target};

/// `12345` as `12,345`.
pub fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds as seconds: two decimals below 10 s, one above.
pub fn seconds(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.2}", ms as f64 / 1000.0)
    } else {
        format!("{:.1}", ms as f64 / 1000.0)
    }
}

/// The title of a (strategy, collector) pair.
pub fn title(strategy: Strategy, server: ServerKind) -> String {
    match (strategy, server) {
        (Strategy::Agent, ServerKind::Paced) => "ours: agent + paced collector".into(),
        (Strategy::Agent, ServerKind::Unpaced) => "agent + unpaced collector (before issue 10)".into(),
        (s, k) => format!("{} + {} collector", s.name(), k.name()),
    }
}

fn per_restart(r: &Report, f: impl Fn(&RestartStats) -> String) -> String {
    r.restarts.iter().map(f).collect::<Vec<_>>().join(" / ")
}

fn back(s: &RestartStats, at: Option<u64>, n: usize) -> String {
    match at {
        Some(ms) => seconds(ms),
        None => format!("not all ({}/{})", thousands(s.back_count as u64), thousands(n as u64)),
    }
}

/// "met", or which restarts missed.
fn mark(r: &Report, targets: &[Target]) -> String {
    let checks = targets::check(r);
    let missed: Vec<String> = checks
        .iter()
        .filter(|c| targets.contains(&c.target) && !c.met())
        .map(|c| if r.restarts.len() > 1 { format!("{}", c.restart) } else { String::new() })
        .collect();
    if !checks.iter().any(|c| targets.contains(&c.target)) {
        "-".into()
    } else if missed.is_empty() {
        "met".into()
    } else if r.restarts.len() > 1 {
        let mut m = missed;
        m.dedup();
        format!("**missed** ({})", m.join(", "))
    } else {
        "**missed**".into()
    }
}

const HEADER: &str = "| N | R/s | outage s | attempts up | <= 2N | in outage | Busy | refused | peak /100 ms | peak /1 s | mean /s | peak/mean | back 99 % s | back 100 % s | N/R s | back/(N/R) | <= 1.5 N/R | max accepts /1 s | <= R+R/20+2 | 2nd <= 1st |\n|--:|--:|--:|--:|:-:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|:-:|:-:|\n";

/// One row per report (all of one strategy and collector).
pub fn rows(reports: &[&Report]) -> String {
    let mut out = String::from(HEADER);
    for r in reports {
        let sc = &r.scenario;
        let nr = sc.n_over_r_ms();
        let ratio = |s: &RestartStats| s.back_100_ms.map_or("-".into(), |b| format!("{:.2}", b as f64 / nr as f64));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(sc.agents as u64),
            thousands(u64::from(sc.rate)),
            sc.outage_ms / 1000,
            per_restart(r, |s| thousands(s.attempts_up)),
            mark(r, &[Target::Attempts]),
            per_restart(r, |s| thousands(s.attempts_outage)),
            per_restart(r, |s| thousands(s.busy)),
            per_restart(r, |s| thousands(s.refused)),
            per_restart(r, |s| thousands(u64::from(s.peak_100ms))),
            per_restart(r, |s| thousands(u64::from(s.peak_1s))),
            per_restart(r, |s| thousands(s.mean_per_s().round() as u64)),
            per_restart(r, |s| format!("{:.1}", s.peak_ratio())),
            per_restart(r, |s| back(s, s.back_99_ms, sc.agents)),
            per_restart(r, |s| back(s, s.back_100_ms, sc.agents)),
            seconds(nr),
            per_restart(r, ratio),
            mark(r, &[Target::BackWithin]),
            per_restart(r, |s| thousands(u64::from(s.max_accepts_1s))),
            mark(r, &[Target::AcceptRate]),
            mark(r, &[Target::SecondAttempts, Target::SecondBack]),
        );
    }
    out
}

/// Every report, grouped by strategy and collector in order of first
/// appearance, each group under its own heading.
pub fn markdown(reports: &[Report]) -> String {
    let mut groups: Vec<(Strategy, ServerKind)> = Vec::new();
    for r in reports {
        let key = (r.scenario.strategy, r.scenario.server);
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    let mut out = String::new();
    for (strategy, server) in groups {
        let mine: Vec<&Report> = reports.iter().filter(|r| (r.scenario.strategy, r.scenario.server) == (strategy, server)).collect();
        let _ = writeln!(out, "#### {}\n", title(strategy, server));
        out.push_str(&rows(&mine));
        out.push('\n');
    }
    out
}

/// The key numbers side by side: for fleets of `agents` and the given
/// outages, one row per strategy, rate and outage.
pub fn summary(reports: &[Report], agents: usize, outages_ms: &[u64]) -> String {
    let mut out = String::from(
        "| strategy + collector | R/s | outage s | attempts up | in outage | refused + Busy | peak /1 s | back 100 % s | max accepts /1 s | targets |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|\n",
    );
    let mut chosen: Vec<&Report> =
        reports.iter().filter(|r| r.scenario.agents == agents && outages_ms.contains(&r.scenario.outage_ms)).collect();
    chosen.sort_by_key(|r| (r.scenario.outage_ms, r.scenario.rate));
    for r in chosen {
        let sc = &r.scenario;
        let checks = targets::check(r);
        let missed = checks.iter().filter(|c| !c.met()).count();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            title(sc.strategy, sc.server),
            thousands(u64::from(sc.rate)),
            sc.outage_ms / 1000,
            per_restart(r, |s| thousands(s.attempts_up)),
            per_restart(r, |s| thousands(s.attempts_outage)),
            per_restart(r, |s| thousands(s.refused + s.busy)),
            per_restart(r, |s| thousands(u64::from(s.peak_1s))),
            per_restart(r, |s| back(s, s.back_100_ms, sc.agents)),
            per_restart(r, |s| thousands(u64::from(s.max_accepts_1s))),
            if missed == 0 { "all met".to_string() } else { format!("{missed} of {} missed", checks.len()) },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(seconds(1234), "1.23");
        assert_eq!(seconds(20_345), "20.3");
    }
}
