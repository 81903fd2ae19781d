//! The collector's admission state machine (`edge_collector::admission`)
//! under any configuration and any sequence of Hellos, hints and clocks,
//! time going backwards included. Checks, after every call, the promises
//! its module docs state:
//!
//! * no panic, no overflow; every Busy `retry_after_ms` within
//!   `1 ..= max(1, ceil(max_wait))`;
//! * at most `max_reservations` reservations; `admitted + rejected` equals
//!   the decisions made;
//! * Hellos admitted without a reservation keep the GCRA bound: in any
//!   window of length `t` at most `R·(t + τ) + 1` (checked against every
//!   earlier such admission);
//! * a slot just promised is the one `retry_after_ms` points at, distinct
//!   from every other held slot; an agent that comes back at the promised
//!   time (within the grace) is admitted;
//! * with rate 0 every Hello is admitted;
//! * `retry_window_ms` is `ceil(1000 · fleet / R)`, saturating.

#![no_main]

use arbitrary::Arbitrary;
use edge_collector::admission::{Admission, AdmissionConfig, Decision};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::time::Duration;

const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u128 = 1_000_000_000;

#[derive(Arbitrary, Debug)]
struct Settings {
    rate: u16,
    unlimited: bool,
    burst_ms: u8,
    max_reservations: u8,
    forget_ms: u16,
    max_wait_ms: u32,
    seed: u64,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A Hello from agent `agent % 24` after `advance_us`.
    Hello { agent: u8, advance_us: u32 },
    /// The agent that was last given a slot comes back `late_us` after it
    /// (0: exactly at the promised time).
    Return { late_us: u16 },
    /// The caller's clock steps back (the state must treat it as now).
    Backwards { us: u32 },
    /// A connection-limit hint.
    Hint { floor_ms: u16 },
    /// The advice for a fleet.
    Window { fleet: u32 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    settings: Settings,
    ops: Vec<Op>,
}

struct Check {
    adm: Admission,
    cfg: AdmissionConfig,
    /// The caller's clock (may go back) and the latest seen (what the
    /// state uses).
    clock: u64,
    seen: u64,
    decisions: u64,
    /// When Hellos were admitted without a reservation (ns, seen-time).
    fresh: Vec<u64>,
    /// agent -> the instant its retry_after pointed at (ns).
    promised: HashMap<String, u64>,
    last_promised: Option<String>,
}

impl Check {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.clock)
    }

    fn hello(&mut self, id: &str) {
        let before = self.adm.stats();
        let held = self.adm.reservation(id);
        self.seen = self.seen.max(self.clock);
        let now = self.seen;
        let d = self.adm.decide(id, self.now());
        self.decisions += 1;
        let after = self.adm.stats();
        assert_eq!(after.admitted + after.rejected, self.decisions, "every decision counted once");
        assert!(after.reservations <= self.cfg.max_reservations, "{} reservations, max {}", after.reservations, self.cfg.max_reservations);
        let promised = self.promised.remove(id);
        if self.cfg.rate_per_sec == 0 {
            assert_eq!(d, Decision::Admit, "unlimited: every Hello admitted");
            return;
        }
        match d {
            Decision::Admit => {
                let claimed = after.claimed > before.claimed;
                if !claimed {
                    self.check_fresh_bound(now);
                    self.fresh.push(now);
                }
            }
            Decision::Busy { retry_after_ms } => {
                let max_wait_ms = u64::try_from(self.cfg.max_wait.as_nanos().div_ceil(u128::from(NS_PER_MS))).unwrap_or(u64::MAX);
                assert!(retry_after_ms >= 1, "retry_after_ms 0");
                assert!(u64::from(retry_after_ms) <= max_wait_ms.max(1), "retry_after_ms {retry_after_ms} beyond max_wait {max_wait_ms} ms");
                if let Some(slot) = self.adm.reservation(id) {
                    let slot = u64::try_from(slot.as_nanos()).unwrap();
                    if held.is_none() {
                        // A new slot: the answer points at it, and no other
                        // agent holds the same one.
                        assert!(slot > now, "slot {slot} not ahead of now {now}");
                        assert_eq!(u64::from(retry_after_ms), (slot - now).div_ceil(NS_PER_MS).max(1), "retry_after_ms points at the slot");
                    }
                    self.promised.insert(id.to_string(), now + u64::from(retry_after_ms) * NS_PER_MS);
                    self.last_promised = Some(id.to_string());
                }
            }
        }
        // Came back when told (the promised instant, within the grace, no
        // earlier Hello in between): admitted.
        if let Some(p) = promised {
            let grace = u64::try_from(self.cfg.forget_after.as_nanos()).unwrap_or(u64::MAX);
            if now >= p && now - p + NS_PER_MS <= grace {
                assert_eq!(d, Decision::Admit, "agent {id} came back {} ns after its promised time and was refused", now - p);
            }
        }
    }

    /// At most `R·(t + τ) + 1` fresh admissions in any window ending now.
    fn check_fresh_bound(&self, now: u64) {
        let r = u128::from(self.cfg.rate_per_sec);
        let tau = self.cfg.burst.as_nanos();
        for (i, &a) in self.fresh.iter().enumerate() {
            let count = (self.fresh.len() - i + 1) as u128; // a .. now, both ends
            let t = u128::from(now - a);
            assert!(count * NS_PER_S <= r * (t + tau) + NS_PER_S, "{count} fresh admissions within {t} ns (R {r}/s, τ {tau} ns)");
        }
    }
}

fuzz_target!(|input: Input| {
    let s = &input.settings;
    let cfg = AdmissionConfig {
        rate_per_sec: if s.unlimited { 0 } else { u32::from(s.rate).max(1) },
        burst: Duration::from_millis(u64::from(s.burst_ms)),
        max_reservations: usize::from(s.max_reservations % 32),
        forget_after: Duration::from_millis(u64::from(s.forget_ms % 3000)),
        max_wait: Duration::from_millis(u64::from(s.max_wait_ms % 90_000)),
    };
    let mut c = Check {
        adm: Admission::new(cfg.clone(), s.seed),
        cfg,
        clock: 1_000_000_000,
        seen: 0,
        decisions: 0,
        fresh: Vec::new(),
        promised: HashMap::new(),
        last_promised: None,
    };
    for op in input.ops.iter().take(400) {
        match *op {
            Op::Hello { agent, advance_us } => {
                c.clock += u64::from(advance_us) * 1000;
                c.hello(&format!("agent-{}", agent % 24));
            }
            Op::Return { late_us } => {
                let Some(id) = c.last_promised.take() else { continue };
                let Some(&p) = c.promised.get(&id) else { continue };
                c.clock = c.clock.max(p) + u64::from(late_us) * 1000;
                c.hello(&id);
            }
            Op::Backwards { us } => c.clock = c.clock.saturating_sub(u64::from(us) * 1000),
            Op::Hint { floor_ms } => {
                c.seen = c.seen.max(c.clock);
                let h = c.adm.busy_hint(c.now(), u32::from(floor_ms));
                assert!(h >= u32::from(floor_ms), "hint {h} below its floor {floor_ms}");
                // At least the floor and the time until the last promised
                // slot (at most max_wait + one interval + τ ahead), plus a
                // jitter below the floor.
                let max_wait_ms = c.cfg.max_wait.as_millis() as u64;
                let last = max_wait_ms + 1000 + c.cfg.burst.as_millis() as u64 + 1;
                let limit = u64::from(floor_ms).max(last) + u64::from(floor_ms);
                assert!(u64::from(h) <= limit, "hint {h} ms beyond {limit} ms");
            }
            Op::Window { fleet } => {
                let w = c.adm.retry_window_ms(fleet as usize);
                let r = c.cfg.rate_per_sec;
                let want = if r == 0 { 0 } else { u32::try_from((1000 * u128::from(fleet)).div_ceil(u128::from(r))).unwrap_or(u32::MAX) };
                assert_eq!(w, want);
            }
        }
    }
});
