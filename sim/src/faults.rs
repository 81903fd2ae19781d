//! Faults: what goes wrong and when (crate docs, *Faults*). Faults are
//! drawn once per seed, all before the end of the fault phase; a seed in
//! five is fault-free. [`Faults`] answers which are active; how a fault
//! acts when it starts (cuts, restarts, stalls) is `world/faults.rs`, the
//! others act on each write or connect while active.

use agent_core::frame::{MAGIC, VERSION};

use crate::link::Dir;
use crate::plan::Plan;
use crate::rng::SplitMix;
use crate::server::RETRY_AFTER_MAX;

#[derive(Clone, Copy, Debug)]
/// What a fault does (crate docs, *Faults*).
pub(crate) enum FaultKind {
    Cut { agent: usize, notify: Option<u64> },
    Refuse { agent: usize, endpoint: Option<u8>, blackhole: bool },
    Corrupt { agent: usize, dir: Option<Dir>, per_mille: u64 },
    Stall { agent: usize, dir: Option<Dir> },
    Restart { lose_index: bool, blackhole: bool },
    Busy { retry_after: u32 },
}

#[derive(Clone, Copy, Debug)]
/// A fault, active from `start` until `end` (a cut acts once: `end ==
/// start`; a restart cuts once, then refuses connects until `end`).
pub(crate) struct Fault {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) kind: FaultKind,
}

/// Draws the run's faults, sorted by start, each starting at least 500 ms
/// inside the fault phase and ending by `fault_end`: 0 to 4 per 10 s of
/// fault phase, times 1 to 3 (0: a fault-free run).
pub(crate) fn gen_faults(rng: &mut SplitMix, plans: &[Plan], fault_end: u64) -> Vec<Fault> {
    let chaos = rng.below(5); // 0: a fault-free run
    let count = chaos * (fault_end / 10_000) * rng.range(1, 3);
    let n = plans.len() as u64;
    let mut faults = Vec::new();
    for _ in 0..count {
        let start = rng.range(500, fault_end - 500);
        let agent = rng.below(n) as usize;
        let dir = match rng.below(3) {
            0 => Some(Dir::Up),
            1 => Some(Dir::Down),
            _ => None,
        };
        let (kind, dur) = match rng.below(100) {
            0..=29 => (FaultKind::Cut { agent, notify: rng.chance(700).then(|| rng.range(1, 100)) }, 0),
            30..=44 => {
                let eps = u64::from(plans[agent].cfg.backoff.endpoints);
                let endpoint = rng.chance(500).then(|| rng.below(eps) as u8);
                (FaultKind::Refuse { agent, endpoint, blackhole: rng.chance(300) }, rng.range(500, 15_000))
            }
            45..=59 => (FaultKind::Corrupt { agent, dir, per_mille: rng.range(50, 500) }, rng.range(200, 10_000)),
            60..=74 => (FaultKind::Stall { agent, dir }, rng.range(200, 12_000)),
            75..=86 => (
                FaultKind::Restart { lose_index: rng.chance(400), blackhole: rng.chance(300) },
                rng.range(100, 5000),
            ),
            _ => (FaultKind::Busy { retry_after: rng.range(0, RETRY_AFTER_MAX) as u32 }, rng.range(500, 5000)),
        };
        faults.push(Fault { start, end: (start + dur).min(fault_end), kind });
    }
    faults.sort_by_key(|f| f.start);
    faults
}

/// Flips bits or inserts garbage (sometimes a fake frame header).
pub(crate) fn corrupt_bytes(rng: &mut SplitMix, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    if rng.chance(600) {
        for _ in 0..rng.range(1, 2) {
            let i = rng.below(bytes.len() as u64) as usize;
            bytes[i] ^= 1 << rng.below(8);
        }
    } else {
        let mut junk: Vec<u8> = (0..rng.range(1, 16)).map(|_| rng.next_u64() as u8).collect();
        if rng.chance(500) {
            let mut fake = vec![MAGIC[0], MAGIC[1], VERSION, 4, 0];
            fake.extend_from_slice(&(rng.range(0, 3000) as u32).to_le_bytes());
            fake.append(&mut junk);
            junk = fake;
        }
        let at = rng.range_usize(0, bytes.len());
        bytes.splice(at..at, junk);
    }
}

/// The run's faults by start time, and how far the clock has got through
/// them: only a fault that has started (and not ended) acts.
pub(crate) struct Faults {
    /// Every fault of the run, by start time.
    all: Vec<Fault>,
    /// The first fault not started yet.
    next: usize,
}

impl Faults {
    /// `all`, sorted by start ([`gen_faults`]), none started yet.
    pub(crate) fn new(all: Vec<Fault>) -> Faults {
        Faults { all, next: 0 }
    }

    /// How many faults the run has.
    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// When the next fault starts.
    pub(crate) fn next_start(&self) -> Option<u64> {
        self.all.get(self.next).map(|f| f.start)
    }

    /// The next fault, if it starts by `now`: it counts as started from here on.
    pub(crate) fn start_due(&mut self, now: u64) -> Option<Fault> {
        let f = *self.all.get(self.next).filter(|f| f.start <= now)?;
        self.next += 1;
        Some(f)
    }

    /// The faults started and not yet ended at `t`.
    fn active(&self, t: u64) -> impl Iterator<Item = &Fault> {
        self.all[..self.next.min(self.all.len())].iter().filter(move |f| f.start <= t && t < f.end)
    }

    /// Whether a connect to `endpoint` is refused now: `Some(blackhole)`.
    pub(crate) fn refused(&self, a: usize, endpoint: u8, t: u64) -> Option<bool> {
        self.active(t).find_map(|f| match f.kind {
            FaultKind::Restart { blackhole, .. } => Some(blackhole),
            FaultKind::Refuse { agent, endpoint: e, blackhole } if agent == a && e.is_none_or(|e| e == endpoint) => {
                Some(blackhole)
            }
            _ => None,
        })
    }

    /// The `retry_after_ms` of a busy fault active at `t`.
    pub(crate) fn busy(&self, t: u64) -> Option<u32> {
        self.active(t).find_map(|f| match f.kind {
            FaultKind::Busy { retry_after } => Some(retry_after),
            _ => None,
        })
    }

    /// The per-mille chance of corrupting a write on agent `a`'s link in `dir` at `t`.
    pub(crate) fn corrupt(&self, a: usize, dir: Dir, t: u64) -> Option<u64> {
        self.active(t).find_map(|f| match f.kind {
            FaultKind::Corrupt { agent, dir: d, per_mille } if agent == a && d.is_none_or(|d| d == dir) => Some(per_mille),
            _ => None,
        })
    }

    /// Until when agent `a`'s link in `dir` delivers nothing (0: not stalled).
    pub(crate) fn stall_until(&self, a: usize, dir: Dir, t: u64) -> u64 {
        self.active(t)
            .filter_map(|f| match f.kind {
                FaultKind::Stall { agent, dir: d } if agent == a && d.is_none_or(|d| d == dir) => Some(f.end),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }
}
