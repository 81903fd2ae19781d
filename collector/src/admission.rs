//! Server-paced admission (PROTOCOL.md, "Pacing"): which Hellos get an
//! Accept now, and which are told to come back at a slot of their own.
//!
//! [`Admission`] is a deterministic state machine: no clock, no I/O, no
//! global randomness. The caller passes the time with every call (`now`, a
//! [`Duration`] since any origin it likes) and a seed for the jitter at
//! [`Admission::new`], so a simulation drives it on a fake clock and a
//! failure replays exactly. A `now` below the latest one seen is taken as
//! the latest (time never goes backwards here; nothing underflows or
//! panics, whatever the input).
//!
//! ```
//! use edge_collector::admission::{Admission, AdmissionConfig, Decision};
//! use std::time::Duration;
//! let cfg = AdmissionConfig { rate_per_sec: 10, burst: Duration::ZERO, ..AdmissionConfig::default() };
//! let mut adm = Admission::new(cfg, 7);
//! let t0 = Duration::from_secs(100);
//! assert_eq!(adm.decide("a", t0), Decision::Admit);
//! // The next Hello in the same instant does not fit: it gets a slot 100..200 ms ahead.
//! let Decision::Busy { retry_after_ms } = adm.decide("b", t0) else { panic!() };
//! assert!((100..=200).contains(&retry_after_ms));
//! // Coming back when told, it is admitted without taking capacity again.
//! let back = t0 + Duration::from_millis(u64::from(retry_after_ms));
//! assert_eq!(adm.decide("b", back), Decision::Admit);
//! ```
//!
//! # The algorithm
//!
//! A GCRA (the "virtual scheduling" form of a token bucket) with emission
//! interval `T = 1/R` and tolerance `τ` (`burst`) keeps one instant, `tat`
//! (theoretical arrival time). A Hello from an agent without a reservation
//! is admitted iff `tat <= now + τ`, and then `tat = max(tat, now) + T`.
//! Otherwise the agent is promised the slot `s = max(tat, now) + j`, `j`
//! uniform in `[0, T)`, `tat` advances by `T` as if it had been admitted at
//! its slot, and the answer is Busy with `retry_after_ms = ceil(s - now)`.
//! A Hello from an agent holding a reservation is admitted (without
//! touching `tat`: its capacity was counted when it was promised) when
//! `s - τ <= now <= s + forget_after`; earlier, it is told the time still
//! to wait (same slot); later, the reservation has lapsed and the Hello is
//! judged like a new one.
//!
//! # Promises
//!
//! With `R = rate_per_sec > 0`, `τ = burst`, `F = forget_after`, for any
//! window of length `t`:
//!
//! * Hellos admitted without a reservation: at most `R·(t + τ) + 1`.
//! * All Hellos admitted (claims included): at most `R·(t + τ + F) + 2`.
//!   `F` appears because a
//!   reservation is honoured up to `F` after its slot without taking
//!   capacity again, so claims that come late *together* (agents cut off
//!   after they were given their slots) are admitted together: up to
//!   `R·F` at once. Lateness that is not correlated keeps to the first
//!   bound in practice (the random trace of the tests does); a claim
//!   later than `F` is judged like a new Hello.
//! * Slots are distinct and promised in increasing order: the `k`-th slot
//!   promised after the rate was last idle lies in `[b + k·T, b + (k+1)·T)`,
//!   so consecutive slots are less than `2T` apart and a storm of `N`
//!   agents that each come back when told drains in about `N / R` with
//!   about `2N` decisions.
//! * An agent that comes back at its slot (at most `τ` early, at most `F`
//!   late) is admitted. A second Hello while reserved never gets a second
//!   slot.
//! * No slot is promised more than `max_wait` ahead, and every
//!   `retry_after_ms` is within `1 ..= ceil(max_wait)` ms.
//! * At most `max_reservations` reservations are held. When the table is
//!   full, or the next slot would be more than `max_wait` ahead, the answer
//!   is Busy with `min(tat - now, max_wait)` (about the time until the last
//!   promised slot) and no reservation; `tat` does not move.
//! * Each call does `O(log n)` work in the `n` reservations held: it sweeps
//!   at most [`SWEEP_PER_DECIDE`] lapsed reservations (one more when the
//!   table is full), which keeps up since each call adds at most one.
//! * `R = 0`: every Hello is admitted, nothing is held.
//!
//! Memory: two copies of the agent id and about 100 bytes per reservation
//! held (100,000 reservations of 36-byte ids: about 17 MB).

use agent_core::rng::Rng;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Most lapsed reservations one [`Admission::decide`] sweeps (one more when
/// the table is full): more than the one a call can add, so the table is
/// never full of lapsed reservations for long.
pub const SWEEP_PER_DECIDE: usize = 4;

const NANOS_PER_MS: u64 = 1_000_000;

/// Settings of [`Admission`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Handshakes admitted per second, `R`; 0 = unlimited.
    pub rate_per_sec: u32,
    /// Burst tolerance `τ`: how far ahead of the rate a Hello may come and
    /// still be admitted (about `R·τ` Hellos at once), and how early an
    /// agent may claim its slot. Zero is strict.
    pub burst: Duration,
    /// Most reservations held at once; 0: none (a Hello that does not fit
    /// is told the time until the last promised slot).
    pub max_reservations: usize,
    /// How long after its slot a reservation is honoured; then it lapses
    /// (swept, and a later Hello from that agent is judged afresh). It adds
    /// to the burst a bunch of late claims can make (see the module docs).
    pub forget_after: Duration,
    /// Never promise a slot further out than this.
    pub max_wait: Duration,
}

impl Default for AdmissionConfig {
    /// 2000 handshakes/s, τ = 50 ms, 100,000 reservations, honoured up to
    /// 1 s after their slot (network delay and a busy agent host; a longer
    /// grace would let late claims that come together burst), at most 60 s
    /// ahead.
    fn default() -> Self {
        AdmissionConfig {
            rate_per_sec: 2000,
            burst: Duration::from_millis(50),
            max_reservations: 100_000,
            forget_after: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// The answer to one Hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Accept it now.
    Admit,
    /// Reject it with code 6 (Busy) and this `retry_after_ms` (at least 1).
    Busy {
        /// When to come back, in milliseconds from now.
        retry_after_ms: u32,
    },
}

/// Counts since [`Admission::new`], and the reservations held now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Reservations held now.
    pub reservations: usize,
    /// Hellos admitted (claims included).
    pub admitted: u64,
    /// Hellos answered Busy.
    pub rejected: u64,
    /// Reservations claimed: the agent came back in time and was admitted.
    pub claimed: u64,
    /// Reservations that lapsed unclaimed (swept, or their agent came back
    /// more than `forget_after` late).
    pub expired: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Whole milliseconds, rounded up, saturating.
fn ceil_ms(ns: u64) -> u32 {
    u32::try_from(ns.div_ceil(NANOS_PER_MS)).unwrap_or(u32::MAX)
}

/// The admission state of one collector: see the module docs.
#[derive(Debug, Clone)]
pub struct Admission {
    cfg: AdmissionConfig,
    /// `T` in ns, rounded up (never faster than `R`); 0 when unlimited.
    interval: u64,
    tau: u64,
    forget: u64,
    max_wait: u64,
    /// Theoretical arrival time, ns.
    tat: u64,
    /// The latest `now` seen, ns.
    last_now: u64,
    by_agent: HashMap<Box<str>, u64>,
    /// The same reservations by slot (slots are distinct), oldest first.
    by_slot: BTreeMap<u64, Box<str>>,
    /// Jitter within a slot's interval: agent-core's SplitMix64.
    rng: Rng,
    stats: AdmissionStats,
}

impl Admission {
    /// A fresh state: nothing promised, the whole burst available.
    pub fn new(cfg: AdmissionConfig, seed: u64) -> Admission {
        let interval = if cfg.rate_per_sec == 0 { 0 } else { 1_000_000_000u64.div_ceil(u64::from(cfg.rate_per_sec)) };
        Admission {
            interval,
            tau: nanos(cfg.burst),
            forget: nanos(cfg.forget_after),
            max_wait: nanos(cfg.max_wait),
            cfg,
            tat: 0,
            last_now: 0,
            by_agent: HashMap::new(),
            by_slot: BTreeMap::new(),
            rng: Rng::new(seed),
            stats: AdmissionStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AdmissionConfig {
        &self.cfg
    }

    /// Counts so far.
    pub fn stats(&self) -> AdmissionStats {
        AdmissionStats { reservations: self.by_agent.len(), ..self.stats }
    }

    /// The slot reserved for `agent_id`, if any (lapsed ones included until
    /// they are swept).
    pub fn reservation(&self, agent_id: &str) -> Option<Duration> {
        self.by_agent.get(agent_id).map(|&s| Duration::from_nanos(s))
    }

    /// `now` in ns, never below the latest seen.
    fn clock(&mut self, now: Duration) -> u64 {
        self.last_now = self.last_now.max(nanos(now));
        self.last_now
    }

    /// Judges the Hello of `agent_id` (already authenticated) arriving at
    /// `now`; see the module docs for the rules and promises.
    pub fn decide(&mut self, agent_id: &str, now: Duration) -> Decision {
        let now = self.clock(now);
        if self.interval == 0 {
            self.stats.admitted += 1;
            return Decision::Admit;
        }
        self.sweep(now);
        if let Some(&slot) = self.by_agent.get(agent_id) {
            if now.saturating_add(self.tau) < slot {
                self.stats.rejected += 1;
                return Decision::Busy { retry_after_ms: ceil_ms(slot - now).max(1) };
            }
            self.by_agent.remove(agent_id);
            self.by_slot.remove(&slot);
            if now <= slot.saturating_add(self.forget) {
                self.stats.claimed += 1;
                self.stats.admitted += 1;
                return Decision::Admit;
            }
            // Too late: judged like a new Hello.
            self.stats.expired += 1;
        }
        let base = self.tat.max(now);
        if self.tat <= now.saturating_add(self.tau) {
            self.tat = base.saturating_add(self.interval);
            self.stats.admitted += 1;
            return Decision::Admit;
        }
        self.stats.rejected += 1;
        let slot = base.saturating_add(self.rng.below(self.interval));
        let full = self.by_agent.len() >= self.cfg.max_reservations || self.by_slot.contains_key(&slot);
        if full || slot - now > self.max_wait {
            let wait = (self.tat - now).min(self.max_wait);
            return Decision::Busy { retry_after_ms: ceil_ms(wait).max(1) };
        }
        let id: Box<str> = agent_id.into();
        self.by_slot.insert(slot, id.clone());
        self.by_agent.insert(id, slot);
        self.tat = base.saturating_add(self.interval);
        Decision::Busy { retry_after_ms: ceil_ms(slot - now).max(1) }
    }

    /// Drops reservations more than `forget_after` past their slot, oldest
    /// first: at most [`SWEEP_PER_DECIDE`], or one more while the table is full.
    fn sweep(&mut self, now: u64) {
        let mut swept = 0;
        while let Some((&slot, _)) = self.by_slot.first_key_value() {
            let lapsed = slot.saturating_add(self.forget) < now;
            if !lapsed || (swept >= SWEEP_PER_DECIDE && self.by_agent.len() < self.cfg.max_reservations) {
                break;
            }
            if let Some((_, id)) = self.by_slot.pop_first() {
                self.by_agent.remove(&id);
            }
            self.stats.expired += 1;
            swept += 1;
        }
    }

    /// The advice for Accept's `retry_window_ms`: the time to admit `fleet`
    /// agents at the rate, `ceil(1000 · fleet / R)` ms, saturating at
    /// `u32::MAX`; 0 when the rate is unlimited.
    pub fn retry_window_ms(&self, fleet: usize) -> u32 {
        if self.cfg.rate_per_sec == 0 {
            return 0;
        }
        let ms = (1000 * fleet as u128).div_ceil(u128::from(self.cfg.rate_per_sec));
        u32::try_from(ms).unwrap_or(u32::MAX)
    }

    /// `retry_after_ms` for a Busy Reject that is not a decision of this
    /// state (the connection limit): at least `floor_ms`, at least the time
    /// until the last promised slot, plus a uniform jitter in
    /// `[0, floor_ms)` so that those agents do not return together. Takes
    /// no capacity and promises no slot.
    pub fn busy_hint(&mut self, now: Duration, floor_ms: u32) -> u32 {
        let now = self.clock(now);
        let until_last = ceil_ms(self.tat.saturating_sub(now));
        let jitter = self.rng.below(u64::from(floor_ms)) as u32;
        floor_ms.max(until_last).saturating_add(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    const MS: u64 = 1000; // in µs, the simulations' unit

    fn us(t: u64) -> Duration {
        Duration::from_micros(t)
    }

    fn cfg(rate: u32, burst_ms: u64) -> AdmissionConfig {
        AdmissionConfig { rate_per_sec: rate, burst: Duration::from_millis(burst_ms), ..AdmissionConfig::default() }
    }

    fn busy(d: Decision) -> u32 {
        match d {
            Decision::Busy { retry_after_ms } => retry_after_ms,
            Decision::Admit => panic!("expected Busy, got Admit"),
        }
    }

    /// Asserts `count(window) <= rate · (len + extra) + plus` over every
    /// window spanned by two of the sorted admission times `at` (µs).
    fn assert_bound(at: &[u64], rate: u64, extra_us: u64, plus: u64, what: &str) {
        for i in 0..at.len() {
            for j in i..at.len() {
                let n = (j - i + 1) as u64;
                let len = at[j] - at[i];
                assert!(
                    n * 1_000_000 <= rate * (len + extra_us) + plus * 1_000_000,
                    "{what}: {n} admissions within {len} µs (from {} µs)",
                    at[i]
                );
            }
        }
    }

    impl Admission {
        /// Both indexes hold the same reservations.
        fn consistent(&self) -> bool {
            self.by_agent.len() == self.by_slot.len() && self.by_slot.iter().all(|(s, id)| self.by_agent.get(id) == Some(s))
        }
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Kind {
        /// Comes back when told (plus up to 2 ms of latency).
        OnTime,
        /// Comes back at a random point before it was told to.
        Early,
        /// Comes back up to 3 `forget_after` late.
        Late,
        /// Never comes back.
        Never,
    }

    #[test]
    fn the_rate_holds_over_a_random_trace() {
        const R: u64 = 200;
        let (tau, forget) = (50 * MS, 300 * MS);
        let c = AdmissionConfig { forget_after: us(forget), ..cfg(R as u32, 50) };
        for seed in [1u64, 2, 3] {
            let mut adm = Admission::new(c.clone(), seed);
            let mut rng = Rng::new(seed ^ 0xABCD);
            let agents = 4000;
            let kinds: Vec<Kind> = (0..agents).map(|_| [Kind::OnTime, Kind::OnTime, Kind::Early, Kind::Late, Kind::Never][rng.below(5) as usize]).collect();
            let ids: Vec<String> = (0..agents).map(|i| format!("agent-{i}")).collect();
            // Half in a storm at 1 s, half spread over 20 s.
            let mut queue: BinaryHeap<Reverse<(u64, usize)>> =
                (0..agents).map(|i| Reverse((if i % 2 == 0 { 1_000 * MS + rng.below(MS) } else { rng.below(20_000 * MS) }, i))).collect();
            let (mut all, mut fresh) = (Vec::new(), Vec::new());
            let mut attempts = vec![0u32; agents];
            let mut admitted = vec![false; agents];
            let mut promised = 0u64;
            while let Some(Reverse((t, i))) = queue.pop() {
                attempts[i] += 1;
                let had = adm.reservation(&ids[i]);
                let claimed = adm.stats().claimed;
                match adm.decide(&ids[i], us(t)) {
                    Decision::Admit => {
                        admitted[i] = true;
                        all.push(t);
                        if adm.stats().claimed == claimed {
                            fresh.push(t);
                        }
                    }
                    Decision::Busy { retry_after_ms } => {
                        assert!((1..=60_000).contains(&retry_after_ms));
                        let has = adm.reservation(&ids[i]);
                        promised += u64::from(has.is_some() && has != had);
                        if let Some(s) = has {
                            let s = s.as_micros() as u64;
                            assert!(t + u64::from(retry_after_ms) * MS >= s && s > t, "told to come at or after its slot");
                        }
                        let told = t + u64::from(retry_after_ms) * MS;
                        let back = match kinds[i] {
                            Kind::OnTime => told + rng.below(2 * MS),
                            Kind::Early => t + rng.below(told - t),
                            Kind::Late => told + rng.below(3 * forget),
                            Kind::Never => continue,
                        };
                        queue.push(Reverse((back, i)));
                    }
                }
            }
            assert_bound(&fresh, R, tau, 1, "fresh admissions");
            assert_bound(&all, R, tau + forget, 2, "all admissions");
            for i in 0..agents {
                match kinds[i] {
                    Kind::Never => {}
                    Kind::OnTime => assert!(admitted[i] && attempts[i] <= 2, "{}: {} attempts", ids[i], attempts[i]),
                    _ => assert!(admitted[i], "{} ({:?})", ids[i], kinds[i]),
                }
            }
            let s = adm.stats();
            assert_eq!(promised, s.claimed + s.expired + s.reservations as u64, "every promise is claimed, expired or held");
            assert!(s.claimed > 1000 && s.expired > 100, "{s:?}: the trace exercised claims and expiry");
            assert_eq!(s.admitted, all.len() as u64);
        }
    }

    #[test]
    fn late_claims_that_come_together_are_bounded_by_forget_after() {
        const R: u64 = 100; // T = 10 ms
        let forget = 2_000 * MS;
        let mut adm = Admission::new(AdmissionConfig { forget_after: us(forget), ..cfg(R as u32, 0) }, 8);
        let t0 = 1_000 * MS;
        let ids: Vec<String> = (0..301).map(|i| format!("cut-{i}")).collect();
        for id in &ids {
            adm.decide(id, us(t0));
        }
        // Slots over t0 .. t0 + 3 s; nobody comes back until t0 + 3.5 s, then all at once.
        let back = t0 + 3_500 * MS;
        let admitted: Vec<u64> = ids[1..].iter().filter(|id| adm.decide(id, us(back)) == Decision::Admit).map(|_| back).collect();
        // Those whose slot is at most F old: about R·F of them, at one instant.
        assert!(admitted.len() > 150, "{}", admitted.len());
        assert_bound(&admitted, R, forget, 2, "late claims");
        // All claims but one: the first lapsed one fits the idle rate.
        assert_eq!(adm.stats().claimed as usize, admitted.len() - 1);
        assert!(adm.consistent());
    }

    #[test]
    fn a_storm_drains_at_the_rate_in_two_rounds() {
        const N: usize = 3000;
        const R: u64 = 1000;
        let mut adm = Admission::new(cfg(R as u32, 10), 42);
        let t0 = 5_000 * MS;
        let ids: Vec<String> = (0..N).map(|i| format!("storm-{i}")).collect();
        let mut back = Vec::new();
        let mut slots = Vec::new();
        let mut admitted_at = Vec::new();
        for id in &ids {
            match adm.decide(id, us(t0)) {
                Decision::Admit => admitted_at.push(t0),
                Decision::Busy { retry_after_ms } => {
                    slots.push(adm.reservation(id).unwrap().as_micros() as u64);
                    back.push((t0 + u64::from(retry_after_ms) * MS, id));
                }
            }
        }
        // The burst: floor(τ / T) + 1 at once.
        assert_eq!(admitted_at.len(), 11);
        // Slot k in [b + kT, b + (k+1)T), b where the burst ended.
        let b = t0 + 11 * MS;
        for (k, &s) in slots.iter().enumerate() {
            let k = k as u64;
            assert!((b + k * MS..b + (k + 1) * MS).contains(&s), "slot {k} at {s}");
        }
        assert!(slots.windows(2).all(|w| w[0] < w[1] && w[1] - w[0] < 2 * MS), "distinct, increasing, under 2T apart");
        back.sort();
        for (t, id) in back {
            assert_eq!(adm.decide(id, us(t)), Decision::Admit, "{id} came back when told");
            admitted_at.push(t);
        }
        let s = adm.stats();
        assert_eq!((s.admitted, s.rejected, s.claimed, s.reservations), (N as u64, N as u64 - 11, N as u64 - 11, 0));
        let drained = admitted_at.iter().max().unwrap() - t0;
        assert!((N as u64 - 11) * MS <= drained && drained <= (N as u64 + 1) * MS, "drained in {drained} µs, N/R = {} ms", N as u64 * 1000 / R);
    }

    #[test]
    fn early_claims_wait_and_never_get_a_second_slot() {
        let ms = Duration::from_millis;
        let ceil = |d: Duration| d.as_nanos().div_ceil(1_000_000) as u32;
        let mut adm = Admission::new(cfg(10, 20), 3); // T = 100 ms
        let t0 = Duration::from_secs(1);
        assert_eq!(adm.decide("a", t0), Decision::Admit);
        let r = busy(adm.decide("b", t0));
        let s = adm.reservation("b").unwrap();
        assert!((t0 + ms(100)..t0 + ms(200)).contains(&s));
        assert_eq!(r, ceil(s - t0));
        // Early: the time still to wait, same slot, no capacity taken.
        let half = t0 + (s - t0) / 2;
        assert_eq!(busy(adm.decide("b", half)), ceil(s - half));
        assert_eq!(adm.reservation("b"), Some(s));
        assert_eq!(adm.stats().reservations, 1);
        // A third agent's slot is the next one: b's second Hello took nothing.
        busy(adm.decide("c", half));
        let sc = adm.reservation("c").unwrap();
        assert!((t0 + ms(200)..t0 + ms(300)).contains(&sc), "{sc:?}");
        // Just before s - τ: still Busy, and told to wait past s; at s - τ: admitted.
        let r = busy(adm.decide("b", s - ms(20) - Duration::from_nanos(1)));
        assert_eq!(r, 21);
        assert_eq!(adm.decide("b", s - ms(20)), Decision::Admit);
        assert_eq!(adm.reservation("b"), None);
        assert_eq!(adm.stats().claimed, 1);
    }

    #[test]
    fn the_table_is_bounded_and_lapsed_slots_are_forgotten() {
        let c = AdmissionConfig { max_reservations: 5, forget_after: us(500 * MS), ..cfg(10, 0) }; // T = 100 ms
        let mut adm = Admission::new(c, 9);
        let t0 = 10_000 * MS;
        assert_eq!(adm.decide("first", us(t0)), Decision::Admit);
        for i in 0..5 {
            busy(adm.decide(&format!("r{i}"), us(t0)));
        }
        assert_eq!(adm.stats().reservations, 5);
        // Full: the time until the last promised slot (tat = t0 + 600 ms), no slot.
        assert_eq!(adm.decide("late", us(t0)), Decision::Busy { retry_after_ms: 600 });
        assert_eq!(adm.reservation("late"), None);
        assert_eq!(adm.stats().reservations, 5);
        // Nobody claims: once past slot + forget_after, each decide sweeps
        // SWEEP_PER_DECIDE of them.
        let later = t0 + 1_200 * MS;
        assert_eq!(adm.decide("x", us(later)), Decision::Admit);
        assert_eq!((adm.stats().reservations, adm.stats().expired), (1, 4));
        busy(adm.decide("y", us(later)));
        assert_eq!(adm.stats().expired, 5);
        assert!(adm.consistent());
        // A claim later than forget_after is judged afresh (here: a new slot).
        let mut adm = Admission::new(AdmissionConfig { forget_after: us(500 * MS), ..cfg(10, 0) }, 9);
        assert_eq!(adm.decide("a", us(t0)), Decision::Admit);
        assert!(busy(adm.decide("b", us(t0))) <= 200);
        let s = adm.reservation("b").unwrap();
        for id in ["c", "d", "e", "f", "g", "h"] {
            busy(adm.decide(id, us(t0))); // keeps the rate busy past b's slot
        }
        let too_late = s + us(500 * MS) + Duration::from_nanos(1);
        busy(adm.decide("b", too_late));
        assert!(adm.reservation("b").unwrap() > too_late, "a new slot, after those promised since");
        assert_eq!(adm.stats().expired, 1);
        assert!(adm.consistent());
    }

    #[test]
    fn no_slot_beyond_max_wait() {
        let c = AdmissionConfig { max_wait: us(250 * MS), ..cfg(10, 0) };
        let mut adm = Admission::new(c, 5);
        let t0 = 50 * MS;
        assert_eq!(adm.decide("a", us(t0)), Decision::Admit);
        let (mut slotted, mut refused) = (0, 0);
        for i in 0..20 {
            let id = format!("w{i}");
            let r = busy(adm.decide(&id, us(t0)));
            assert!(r <= 250, "{r}");
            match adm.reservation(&id) {
                Some(s) => {
                    assert!(s <= us(t0 + 250 * MS));
                    slotted += 1;
                }
                None => refused += 1,
            }
        }
        assert!((1..=2).contains(&slotted) && refused >= 18, "{slotted} {refused}");
    }

    #[test]
    fn unlimited_admits_everything() {
        let mut adm = Admission::new(AdmissionConfig { rate_per_sec: 0, ..AdmissionConfig::default() }, 1);
        for i in 0..10_000 {
            assert_eq!(adm.decide(&format!("u{}", i % 7), us(1)), Decision::Admit);
        }
        assert_eq!(adm.stats(), AdmissionStats { admitted: 10_000, ..AdmissionStats::default() });
        assert_eq!(adm.retry_window_ms(1_000_000), 0);
        let h = adm.busy_hint(us(1), 100);
        assert!((100..200).contains(&h), "{h}");
        assert_eq!(adm.busy_hint(us(1), 0), 0);
    }

    #[test]
    fn retry_window_arithmetic() {
        let w = |rate, fleet| Admission::new(cfg(rate, 50), 0).retry_window_ms(fleet);
        assert_eq!(w(50, 150), 3000);
        assert_eq!(w(50, 1), 20);
        assert_eq!(w(50, 0), 0);
        assert_eq!(w(3, 1), 334);
        assert_eq!(w(2000, 1), 1);
        assert_eq!(w(2000, 10_000), 5000);
        assert_eq!(w(u32::MAX, 1), 1);
        assert_eq!(w(1, usize::MAX), u32::MAX);
        assert_eq!(w(1, 4_294_967), 4_294_967_000);
        assert_eq!(w(1, 4_294_968), u32::MAX);
    }

    #[test]
    fn busy_hint_covers_the_promised_slots() {
        let mut adm = Admission::new(cfg(100, 0), 11); // T = 10 ms
        let t0 = 1_000 * MS;
        for i in 0..301 {
            adm.decide(&format!("h{i}"), us(t0));
        }
        // tat = t0 + 3010 ms.
        for _ in 0..100 {
            let h = adm.busy_hint(us(t0), 500);
            assert!((3010..3510).contains(&h), "{h}");
        }
        let h = adm.busy_hint(us(t0 + 10_000 * MS), 500);
        assert!((500..1000).contains(&h), "{h}");
        assert_eq!(adm.stats().reservations, 300, "hints promise nothing");
    }

    #[test]
    fn time_going_backwards_is_the_last_time_seen() {
        let mut adm = Admission::new(cfg(10, 0), 4);
        let t = 10_000 * MS;
        assert_eq!(adm.decide("a", us(t)), Decision::Admit);
        let r = busy(adm.decide("b", us(t)));
        // Earlier readings are the latest one: the same wait, no underflow.
        assert_eq!(busy(adm.decide("b", us(1))), r);
        assert_eq!(busy(adm.decide("b", Duration::ZERO)), r);
        assert!(adm.busy_hint(Duration::ZERO, 10) >= r);
        // Extremes do not panic.
        let mut adm = Admission::new(cfg(u32::MAX, u64::MAX / 2_000_000), u64::MAX);
        for now in [Duration::MAX, Duration::ZERO, Duration::MAX] {
            for id in ["x", "y", "z"] {
                let _ = adm.decide(id, now);
            }
            let _ = adm.busy_hint(now, u32::MAX);
        }
        // Slots that saturate at the end of time are never shared.
        let mut adm = Admission::new(AdmissionConfig { max_wait: Duration::MAX, forget_after: Duration::MAX, ..cfg(1, 0) }, 0);
        let near = Duration::from_nanos(u64::MAX - 1_500_000_000);
        for (round, now) in [near, near, Duration::MAX, Duration::ZERO].into_iter().enumerate() {
            for id in ["w", "x", "y", "z"] {
                let _ = adm.decide(id, now);
            }
            assert!(adm.consistent());
            if round == 0 {
                assert!(adm.stats().reservations >= 1);
            }
        }
    }

    #[test]
    fn same_seed_same_slots() {
        let run = |seed| {
            let mut adm = Admission::new(cfg(100, 5), seed);
            (0..200).map(|i| adm.decide(&format!("d{i}"), us(7 * MS))).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
