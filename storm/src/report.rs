//! The numbers of one run: per restart, what the storm cost the collector
//! and how long the fleet took to come back; and the series for plotting.
//!
//! Times are relative to the restart's `up` (the collector taking
//! connections again). The recovery window of restart `k` runs from its
//! `up` to the next restart's `down` (or the end of the run).

use crate::record::{Bucket, Recorder, BUCKET_MS};
use crate::scenario::Scenario;

/// What one restart cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartStats {
    /// When the collector went down, ms.
    pub down_ms: u64,
    /// When it came back, ms.
    pub up_ms: u64,
    /// Attempts (Hellos that reached the collector, refused connects)
    /// during the outage: all refused connects.
    pub attempts_outage: u64,
    /// Attempts from `up` on.
    pub attempts_up: u64,
    /// Busy Rejects from `up` on.
    pub busy: u64,
    /// Refusals from `up` on (unpaced: Hellos beyond the rate).
    pub refused: u64,
    /// Accepts from `up` on.
    pub accepts: u64,
    /// Most attempts in one 100-ms bucket from `up` on.
    pub peak_100ms: u32,
    /// Most attempts in a 1-s window (10 buckets, stepped by 100 ms) from
    /// `up` on.
    pub peak_1s: u32,
    /// From `up` until every agent was back, or until the end of the
    /// recovery window if not all came back, ms: the span of the mean rate.
    pub span_ms: u64,
    /// When 99 % of the agents were back, ms after `up`.
    pub back_99_ms: Option<u64>,
    /// When every agent was back, ms after `up`; `None`: not all came back
    /// within the recovery window.
    pub back_100_ms: Option<u64>,
    /// Agents back within the recovery window.
    pub back_count: usize,
    /// Most Accepts in any 1-s window (sliding, 1-ms resolution: any `t0`,
    /// Accepts at `t0 <= t < t0 + 1000`), from `up` on.
    pub max_accepts_1s: u32,
}

impl RestartStats {
    /// Mean attempts per second over [`RestartStats::span_ms`].
    pub fn mean_per_s(&self) -> f64 {
        self.attempts_up as f64 * 1000.0 / self.span_ms.max(1) as f64
    }

    /// `peak_1s / mean_per_s`: 1 is a flat storm.
    pub fn peak_ratio(&self) -> f64 {
        let mean = self.mean_per_s();
        if mean > 0.0 {
            f64::from(self.peak_1s) / mean
        } else {
            0.0
        }
    }
}

/// Everything one run measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// What was run.
    pub scenario: Scenario,
    /// Agents admitted before the first restart (all of them: the fleet
    /// was up when the collector went down).
    pub boot_back: usize,
    /// One entry per restart.
    pub restarts: Vec<RestartStats>,
    /// Attempts, Accepts, Busy and refusals per 100 ms over the whole run.
    pub series: Vec<Bucket>,
    /// Where the run stopped, ms.
    pub end_ms: u64,
    /// Events the simulation processed.
    pub events: u64,
    /// The clients' protocol anomalies at the end ([`crate::client::Clients::anomalies`]): 0.
    pub anomalies: u64,
}

impl Report {
    /// The numbers of a finished run.
    pub fn new(scenario: Scenario, rec: &Recorder, end_ms: u64, events: u64, anomalies: u64) -> Report {
        let n = scenario.agents;
        let timeline = rec.timeline().clone();
        let restarts = timeline
            .restarts
            .iter()
            .enumerate()
            .map(|(i, &(down, up))| {
                let k = i + 1;
                let end = timeline.phase_end(k).min(end_ms.max(up));
                let buckets = |from: u64, to: u64| {
                    let (a, b) = ((from / BUCKET_MS) as usize, (to.div_ceil(BUCKET_MS)) as usize);
                    let b = b.min(rec.buckets.len());
                    rec.buckets.get(a.min(b)..b).unwrap_or(&[])
                };
                let outage = buckets(down, up);
                let after = buckets(up, end);
                let sum = |bs: &[Bucket], f: fn(&Bucket) -> u32| bs.iter().map(|b| u64::from(f(b))).sum::<u64>();
                let mut times: Vec<u64> = rec.back[k].iter().flatten().map(|&t| t - up).collect();
                times.sort_unstable();
                let at_count = |count: usize| if count > 0 && times.len() >= count { Some(times[count - 1]) } else { None };
                let back_100_ms = at_count(n);
                RestartStats {
                    down_ms: down,
                    up_ms: up,
                    attempts_outage: sum(outage, |b| b.attempts),
                    attempts_up: sum(after, |b| b.attempts),
                    busy: sum(after, |b| b.busy),
                    refused: sum(after, |b| b.refused),
                    accepts: sum(after, |b| b.accepts),
                    peak_100ms: after.iter().map(|b| b.attempts).max().unwrap_or(0),
                    peak_1s: (0..after.len()).map(|i| after[i..(i + 10).min(after.len())].iter().map(|b| b.attempts).sum()).max().unwrap_or(0),
                    span_ms: back_100_ms.map_or(end - up, |t| t.max(1)),
                    back_99_ms: at_count((n * 99).div_ceil(100)),
                    back_100_ms,
                    back_count: times.len(),
                    max_accepts_1s: max_in_window(&rec.accepts[k], 1000),
                }
            })
            .collect();
        Report { scenario, boot_back: rec.back_count(0), restarts, series: rec.buckets.clone(), end_ms, events, anomalies }
    }
}

/// Most of the sorted instants `times` within any window `[t0, t0 + width)`.
pub fn max_in_window(times: &[u64], width: u64) -> u32 {
    let (mut best, mut lo) = (0, 0);
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= width {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_counts() {
        assert_eq!(max_in_window(&[], 1000), 0);
        assert_eq!(max_in_window(&[5], 1000), 1);
        assert_eq!(max_in_window(&[0, 999, 1000, 1998, 1999], 1000), 3);
        assert_eq!(max_in_window(&[7, 7, 7], 1), 3);
    }
}
