//! Time as the caller gives it: a monotonic millisecond count.
//!
//! `agent-core` never reads a clock. Every input that depends on time takes an
//! [`Instant`] from the caller, whose origin is the caller's business (boot,
//! process start, a simulation's zero). Only differences matter.
//!
//! Callers' clocks misbehave: they step backwards, jump far ahead once, or
//! are 32-bit millisecond ticks that wrap every 49.7 days. [`AgentClock`] turns
//! the instants a caller passes into the agent's own monotonic time with
//! bounded steps, and [`Tick32`] extends a wrapping 32-bit tick into an
//! [`Instant`].

use core::fmt;
use core::ops::{Add, Sub};

/// A point on the caller's monotonic clock, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

/// A span of time in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

impl Instant {
    /// The origin of the caller's clock.
    pub const ZERO: Instant = Instant(0);

    /// An instant from milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the caller's origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later (a clock
    /// that went backwards counts as no time passing).
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Duration {
    /// No time.
    pub const ZERO: Duration = Duration(0);

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms)
    }

    /// A duration of `s` seconds (saturating).
    pub const fn from_secs(s: u64) -> Self {
        Duration(s.saturating_mul(1000))
    }

    /// The length in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates at `u64::MAX` ms instead of overflowing.
    // Out of line: inlined, it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(never)]
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating: an earlier `self` gives zero.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// The agent's time, made from the caller's instants.
///
/// Promises, whatever the caller passes:
/// * agent time never goes backwards;
/// * it advances by at most `max_step` per input, so one bogus far-future
///   instant (say `u64::MAX`) costs at most one spurious round of timers;
/// * a caller instant at most `backstep_tolerance` earlier than the latest
///   one seen is a stale reading: no time passes, and nothing else changes;
/// * a caller instant earlier than that re-anchors the clock: agent time
///   goes on from there (a wrapped 32-bit tick, a clock stepped back), rather
///   than freezing until the caller catches up.
///
/// With a well-behaved clock agent time equals caller time exactly.
/// [`AgentClock::to_caller`] maps an agent deadline back onto the caller's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct AgentClock {
    started: bool,
    caller: Instant,
    agent: Instant,
    anomalies: u64,
}

impl AgentClock {
    /// Feeds one caller instant; returns agent time.
    pub fn input(&mut self, t: Instant, max_step: Duration, backstep_tolerance: Duration) -> Instant {
        if !self.started {
            self.started = true;
            self.caller = t;
            self.agent = t;
        } else if t >= self.caller {
            let step = t - self.caller;
            if step > max_step {
                self.anomalies += 1;
            }
            self.agent = self.agent + step.min(max_step);
            self.caller = t;
        } else if self.caller - t > backstep_tolerance {
            self.anomalies += 1;
            self.caller = t;
        }
        self.agent
    }

    /// Agent time now.
    pub fn now(&self) -> Instant {
        self.agent
    }

    /// The latest caller instant the clock is anchored to.
    pub fn caller_now(&self) -> Instant {
        self.caller
    }

    /// The caller instant at which agent time reaches `deadline`
    /// (`caller_now()` if it already has).
    pub fn to_caller(&self, deadline: Instant) -> Instant {
        self.caller + (deadline - self.agent)
    }

    /// Inputs that were clamped (a step over `max_step`) or re-anchored (a
    /// step back over the tolerance).
    pub fn anomalies(&self) -> u64 {
        self.anomalies
    }
}

/// A wrapping 32-bit millisecond tick (`HAL_GetTick()`-style) extended to a
/// 64-bit [`Instant`]. Ticks may wrap any number of times; each new tick is
/// read as the nearest instant to the previous one (up to 2^31 ms, 24.8
/// days, either way), so a stale tick reads as slightly earlier, not as 49.7
/// days later. Call it at least once every 24 days.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tick32 {
    started: bool,
    last: u32,
    now: u64,
}

impl Tick32 {
    /// The instant of `tick`.
    pub fn instant(&mut self, tick: u32) -> Instant {
        if !self.started {
            self.started = true;
            self.now = u64::from(tick);
        } else {
            let delta = tick.wrapping_sub(self.last) as i32;
            self.now = self.now.wrapping_add_signed(i64::from(delta));
        }
        self.last = tick;
        Instant(self.now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration(3_600_000);
    const BACK: Duration = Duration(1_000);

    #[test]
    fn clock_follows_a_sane_caller_exactly() {
        let mut c = AgentClock::default();
        for t in [5, 5, 10, 4_000, 3_000_000] {
            assert_eq!(c.input(Instant(t), STEP, BACK), Instant(t));
        }
        assert_eq!(c.anomalies(), 0);
        assert_eq!(c.to_caller(Instant(3_000_100)), Instant(3_000_100));
    }

    #[test]
    fn clock_ignores_stale_and_reanchors_on_big_steps_back() {
        let mut c = AgentClock::default();
        c.input(Instant(10_000), STEP, BACK);
        // Stale by 500 ms: no time passes, and the later reading counts
        // from the newest instant, not from the stale one.
        assert_eq!(c.input(Instant(9_500), STEP, BACK), Instant(10_000));
        assert_eq!(c.input(Instant(10_001), STEP, BACK), Instant(10_001));
        // Stepped back by an hour: re-anchored, time goes on.
        assert_eq!(c.input(Instant(100), STEP, BACK), Instant(10_001));
        assert_eq!(c.input(Instant(1_100), STEP, BACK), Instant(11_001));
        assert_eq!(c.to_caller(Instant(12_001)), Instant(2_100));
        assert_eq!(c.to_caller(Instant(5)), Instant(1_100));
        assert_eq!(c.anomalies(), 1);
    }

    #[test]
    fn clock_bounds_one_bogus_far_future_instant() {
        let mut c = AgentClock::default();
        c.input(Instant(1_000), STEP, BACK);
        assert_eq!(c.input(Instant(u64::MAX), STEP, BACK), Instant(1_000) + STEP);
        // The next sane reading re-anchors; time goes on normally.
        assert_eq!(c.input(Instant(2_000), STEP, BACK), Instant(1_000) + STEP);
        assert_eq!(c.input(Instant(3_000), STEP, BACK), Instant(2_000) + STEP);
        assert_eq!(c.anomalies(), 2);
    }

    #[test]
    fn tick32_extends_across_wraps_and_tolerates_stale_ticks() {
        let mut t = Tick32::default();
        assert_eq!(t.instant(u32::MAX - 10), Instant(u64::from(u32::MAX - 10)));
        assert_eq!(t.instant(5), Instant(u64::from(u32::MAX) + 6));
        assert_eq!(t.instant(3), Instant(u64::from(u32::MAX) + 4));
        // Three wraps later, one call per 2^30 ms.
        let mut tick = 3u32;
        let mut expect = u64::from(u32::MAX) + 4;
        for _ in 0..12 {
            tick = tick.wrapping_add(1 << 30);
            expect += 1 << 30;
            assert_eq!(t.instant(tick), Instant(expect));
        }
    }

    #[test]
    fn backwards_time_is_no_time() {
        assert_eq!(Instant(5) - Instant(10), Duration::ZERO);
        assert_eq!(Instant(10) - Instant(5), Duration(5));
        assert_eq!(Instant(u64::MAX) + Duration(1), Instant(u64::MAX));
        assert_eq!(Duration::from_secs(3), Duration(3000));
    }
}
