//! Reconnect timing: full-jitter backoff that spreads a fleet, and endpoint
//! rotation.
//!
//! After each failure the wait is uniform in `[0, ceiling]` ("full jitter"),
//! with (PROTOCOL.md, *Reconnect*, states the same rule for other
//! implementations):
//!
//! ```text
//! W       = min(cap, advice) if the server gave advice, else min(cap, fleet_window)
//! floor   = max(W, base)                      if W > 0
//!         = min(cap, base * 2^(weight - 1))   if W = 0
//! ceiling = min(cap, max(floor, (failing_for - 5 min) / 32))
//! ```
//!
//! * `weight` counts failures, +1 each; a connection that stays healthy
//!   halves it once per healthy period ([`Backoff::on_healthy_period`])
//!   rather than zeroing it, so a collector that restarts again soon does
//!   not meet a fleet that has forgotten its spread.
//! * `failing_for` is the time since the first failure after the last
//!   healthy period: the window grows with time as well as with attempts,
//!   once an outage has lasted [`FAILING_TIME_GRACE`] (5 minutes: a
//!   collector restarted in a deploy is back sooner, and until then a fleet
//!   with advice keeps retrying over `W`, so it is back about `W` after the
//!   collector, however long the outage was).
//! * `advice` is the server's `Accept.retry_window_ms`, the time it needs to
//!   admit its whole fleet; with it (or with `fleet_window` configured), the
//!   first retry after losing a healthy connection is already spread over a
//!   window sized for the fleet, and the window does not grow
//!   exponentially past it.
//!
//! A Busy Reject with a `retry_after_ms` is a slot the server keeps for this
//! agent: [`Backoff::busy_slot`] bounds it to `[MIN_BUSY_WAIT, cap]` and the
//! agent waits exactly that long.
//!
//! Endpoints are tried in the caller's order: `attempts_per_endpoint` tries
//! on one, then the next, wrapping around. With `give_up_after` set, that
//! many consecutive failures (counted apart from the weight, and reset by a
//! healthy period) end the retrying ([`Backoff::on_failure`] returns
//! `None`).

use crate::rng::Rng;
use crate::time::{Duration, Instant};

/// The shortest wait a Busy Reject's `retry_after_ms` can impose: a
/// mistaken or hostile value cannot make the agent reconnect in a tight
/// loop.
pub const MIN_BUSY_WAIT: Duration = Duration(50);

/// `failing_for` beyond [`FAILING_TIME_GRACE`] is divided by this to give
/// the time-grown part of the window: with a 60-s cap, 32 minutes past the
/// grace reach the cap whatever the attempts.
pub const FAILING_TIME_DIVISOR: u64 = 32;

/// How long an outage lasts before the time spent failing starts to widen
/// the window.
pub const FAILING_TIME_GRACE: Duration = Duration(5 * 60 * 1000);

/// Backoff settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Upper bound of the first wait, and the smallest window.
    pub base: Duration,
    /// Upper bound of any wait.
    pub cap: Duration,
    /// Number of endpoints (at least 1).
    pub endpoints: u8,
    /// Consecutive failed attempts on one endpoint before moving on (>= 1).
    pub attempts_per_endpoint: u8,
    /// Give up after this many consecutive failures; 0 = never.
    pub give_up_after: u32,
    /// The window to spread retries over when the server gives no advice
    /// (`Accept.retry_window_ms` = 0): about the fleet's size divided by the
    /// rate its server admits handshakes at. 0 = none: the window grows
    /// exponentially from `base`.
    pub fleet_window: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
            endpoints: 1,
            attempts_per_endpoint: 3,
            give_up_after: 0,
            fleet_window: Duration::ZERO,
        }
    }
}

/// The next attempt decided after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Endpoint to try.
    pub endpoint: u8,
    /// How long to wait first (the agent's own draw; a Busy Reject's slot
    /// replaces it for the same endpoint, see [`Backoff::busy_slot`]).
    pub delay: Duration,
    /// The jitter window the delay was drawn from: `[0, ceiling]`.
    pub ceiling: Duration,
}

/// Backoff state: the failure weight, the failing streak, the server's
/// advice and the current endpoint. The settings are passed to each call
/// rather than kept (the agent holds them once).
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    weight: u32,
    consecutive: u32,
    endpoint: u8,
    endpoint_failures: u8,
    failing_since: Option<Instant>,
    advice_ms: u32,
}

impl Backoff {
    /// Fresh state: endpoint 0, no failures, no advice.
    pub fn new() -> Self {
        Backoff::default()
    }

    /// The endpoint the next attempt goes to.
    pub fn endpoint(&self) -> u8 {
        self.endpoint
    }

    /// The failure weight: +1 per failure, halved per healthy period.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Consecutive failures since the last healthy period (the count
    /// `give_up_after` applies to).
    pub fn consecutive(&self) -> u32 {
        self.consecutive
    }

    /// The server's last advice, in ms (0: none).
    pub fn advice_ms(&self) -> u32 {
        self.advice_ms
    }

    /// Keeps the server's pacing advice (`Accept.retry_window_ms`) for the
    /// failures to come; 0 forgets it.
    pub fn set_advice(&mut self, retry_window_ms: u32) {
        self.advice_ms = retry_window_ms;
    }

    /// A connection stayed healthy for one more period: the weight halves;
    /// after the first period the failing streak is over.
    pub fn on_healthy_period(&mut self) {
        self.weight /= 2;
        self.consecutive = 0;
        self.endpoint_failures = 0;
        self.failing_since = None;
    }

    /// Forgets every failure, keeping the endpoint and the advice: the
    /// caller asked to retry now (`Agent::reconnect_now`).
    pub fn reset(&mut self) {
        self.weight = 0;
        self.consecutive = 0;
        self.endpoint_failures = 0;
        self.failing_since = None;
    }

    /// The fleet window in ms: the advice, else the configured one, at most
    /// the cap (0: none).
    pub fn window_ms(&self, cfg: &BackoffConfig) -> u64 {
        let w = if self.advice_ms > 0 { u64::from(self.advice_ms) } else { cfg.fleet_window.as_millis() };
        w.min(cfg.cap.as_millis())
    }

    /// The ceiling of the jitter window for a failure of weight `weight`,
    /// `failing_for` into the streak, with fleet window `window_ms` (see the
    /// module docs).
    pub fn ceiling(cfg: &BackoffConfig, weight: u32, failing_for: Duration, window_ms: u64) -> Duration {
        Backoff::ceiling_past_grace(cfg, weight, failing_for.as_millis().saturating_sub(FAILING_TIME_GRACE.as_millis()), window_ms)
    }

    /// [`Backoff::ceiling`] with `failing_for` given less the grace
    /// (saturating at 0), as `past_grace` ms.
    // Inlined into on_failure, its one caller in the agent (flash).
    #[inline(always)]
    fn ceiling_past_grace(cfg: &BackoffConfig, weight: u32, past_grace: u64, window_ms: u64) -> Duration {
        let cap = cfg.cap.as_millis();
        let floor = if window_ms > 0 {
            window_ms.max(cfg.base.as_millis())
        } else {
            // `base * 2^(weight - 1)`, saturating, by doubling: no 64-bit
            // shift by a variable amount (a library call on 32-bit MCUs).
            let mut grown = cfg.base.as_millis();
            for _ in 1..weight.min(64) {
                if grown >= cap {
                    break;
                }
                grown = grown.saturating_add(grown);
            }
            grown
        };
        let grown = past_grace / FAILING_TIME_DIVISOR;
        Duration(floor.max(grown).min(cap))
    }

    /// The wait a Busy Reject's `retry_after_ms` imposes on a retry of the
    /// same endpoint: exactly that, bounded to `[MIN_BUSY_WAIT, cap]`.
    pub fn busy_slot(cfg: &BackoffConfig, retry_after_ms: u32) -> Duration {
        Duration(u64::from(retry_after_ms).max(MIN_BUSY_WAIT.as_millis()).min(cfg.cap.as_millis()))
    }

    /// Records a failed attempt at `now` (or a lost connection) and decides
    /// the next one; `None` when the give-up limit is reached.
    pub fn on_failure(&mut self, cfg: &BackoffConfig, now: Instant, rng: &mut Rng) -> Option<Retry> {
        self.weight = self.weight.saturating_add(1);
        self.consecutive = self.consecutive.saturating_add(1);
        if cfg.give_up_after != 0 && self.consecutive >= cfg.give_up_after {
            return None;
        }
        let since = *self.failing_since.get_or_insert(now);
        self.endpoint_failures = self.endpoint_failures.saturating_add(1);
        if self.endpoint_failures >= cfg.attempts_per_endpoint.max(1) {
            self.endpoint_failures = 0;
            self.endpoint = (self.endpoint + 1) % cfg.endpoints.max(1);
        }
        // `now - since - grace`, saturating, as `now - (since + grace)`: the
        // grace added by the shared out-of-line `Instant + Duration` (it
        // saturates too: the same difference).
        let past_grace = now.saturating_since(since + FAILING_TIME_GRACE).as_millis();
        let ceiling = Backoff::ceiling_past_grace(cfg, self.weight, past_grace, self.window_ms(cfg));
        Some(Retry { endpoint: self.endpoint, delay: Duration(rng.up_to(ceiling.as_millis())), ceiling })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackoffConfig {
        BackoffConfig {
            base: Duration(100),
            cap: Duration(1000),
            endpoints: 3,
            attempts_per_endpoint: 2,
            give_up_after: 0,
            fleet_window: Duration::ZERO,
        }
    }

    /// `on_failure` takes the time past the grace as `now - (since +
    /// grace)`; the ceiling took it as `(now - since) - grace`: both
    /// saturate, so they agree at every boundary.
    #[test]
    fn time_past_the_grace_is_taken_as_before() {
        let g = FAILING_TIME_GRACE.as_millis();
        let edges = [0, 1, g - 1, g, g + 1, 2 * g, u64::MAX - g - 1, u64::MAX - g, u64::MAX - g + 1, u64::MAX - 1, u64::MAX];
        for now in edges {
            for since in edges {
                let old = now.saturating_sub(since).saturating_sub(g);
                assert_eq!(Instant(now).saturating_since(Instant(since) + FAILING_TIME_GRACE).as_millis(), old, "{now} {since}");
            }
        }
    }

    #[test]
    fn jitter_within_growing_ceiling() {
        let cfg = cfg();
        let mut b = Backoff::new();
        let mut rng = Rng::new(1);
        let expect_ceiling = [100, 200, 400, 800, 1000, 1000, 1000];
        let expect_endpoint = [0, 1, 1, 2, 2, 0, 0];
        for i in 0..7 {
            let r = b.on_failure(&cfg, Instant(0), &mut rng).unwrap();
            assert_eq!(r.ceiling, Duration(expect_ceiling[i]));
            assert!(r.delay <= r.ceiling);
            assert_eq!(r.endpoint, expect_endpoint[i], "attempt {i}");
        }
        b.reset();
        assert_eq!(b.on_failure(&cfg, Instant(0), &mut rng).unwrap().ceiling, Duration(100));
    }

    #[test]
    fn healthy_periods_halve_the_weight_instead_of_zeroing_it() {
        let cfg = BackoffConfig { cap: Duration(100_000), ..cfg() };
        let mut b = Backoff::new();
        let mut rng = Rng::new(2);
        for _ in 0..5 {
            b.on_failure(&cfg, Instant(0), &mut rng);
        }
        assert_eq!((b.weight(), b.consecutive()), (5, 5));
        b.on_healthy_period();
        assert_eq!((b.weight(), b.consecutive()), (2, 0));
        // The next failure has weight 3: the window starts at base * 4.
        assert_eq!(b.on_failure(&cfg, Instant(10), &mut rng).unwrap().ceiling, Duration(400));
        b.on_healthy_period();
        b.on_healthy_period();
        assert_eq!(b.weight(), 0);
        assert_eq!(b.on_failure(&cfg, Instant(20), &mut rng).unwrap().ceiling, Duration(100));
    }

    #[test]
    fn window_grows_with_time_spent_failing() {
        let cfg = BackoffConfig { cap: Duration(60_000), ..cfg() };
        let mut b = Backoff::new();
        let mut rng = Rng::new(3);
        assert_eq!(b.on_failure(&cfg, Instant(1_000), &mut rng).unwrap().ceiling, Duration(100));
        b.weight = 1; // as if Rejects had set the pace, not attempts
        // Within the 5-minute grace time adds nothing...
        assert_eq!(b.on_failure(&cfg, Instant(301_000), &mut rng).unwrap().ceiling, Duration(200));
        b.weight = 1;
        // ...940 s into the streak: (940 - 300) s / 32 = 20 s, above base * 2.
        assert_eq!(b.on_failure(&cfg, Instant(941_000), &mut rng).unwrap().ceiling, Duration(20_000));
        // ...and never above the cap.
        assert_eq!(b.on_failure(&cfg, Instant(10_000_000), &mut rng).unwrap().ceiling, Duration(60_000));
        // A healthy period ends the streak.
        b.on_healthy_period();
        b.weight = 0;
        assert_eq!(b.on_failure(&cfg, Instant(20_000_000), &mut rng).unwrap().ceiling, Duration(100));
    }

    #[test]
    fn advice_sets_a_flat_fleet_window_from_the_first_retry() {
        let cfg = BackoffConfig { cap: Duration(60_000), ..cfg() };
        let mut b = Backoff::new();
        let mut rng = Rng::new(4);
        b.set_advice(5_000);
        for i in 0..20 {
            let r = b.on_failure(&cfg, Instant(i * 2_000), &mut rng).unwrap();
            assert_eq!(r.ceiling, Duration(5_000), "failure {i}: flat at the advice");
        }
        // Flat through any outage shorter than the grace plus 32 windows...
        let r = b.on_failure(&cfg, Instant(460_000), &mut rng).unwrap();
        assert_eq!(r.ceiling, Duration(5_000));
        // ...then time takes over: (620 - 300) s / 32 = 10 s.
        let r = b.on_failure(&cfg, Instant(620_000), &mut rng).unwrap();
        assert_eq!(r.ceiling, Duration(10_000));
        // Advice is bounded: at least base, at most cap.
        b.reset();
        b.set_advice(3);
        assert_eq!(b.on_failure(&cfg, Instant(0), &mut rng).unwrap().ceiling, Duration(100));
        b.set_advice(u32::MAX);
        assert_eq!(b.on_failure(&cfg, Instant(0), &mut rng).unwrap().ceiling, Duration(60_000));
        // Without advice, the configured fleet window; advice wins over it.
        let with_window = BackoffConfig { fleet_window: Duration(7_000), ..cfg };
        b.set_advice(0);
        b.reset();
        assert_eq!(b.on_failure(&with_window, Instant(0), &mut rng).unwrap().ceiling, Duration(7_000));
        b.set_advice(2_000);
        assert_eq!(b.on_failure(&with_window, Instant(0), &mut rng).unwrap().ceiling, Duration(2_000));
    }

    #[test]
    fn busy_slot_is_bounded() {
        let cfg = cfg();
        assert_eq!(Backoff::busy_slot(&cfg, 0), MIN_BUSY_WAIT);
        assert_eq!(Backoff::busy_slot(&cfg, 1), MIN_BUSY_WAIT);
        assert_eq!(Backoff::busy_slot(&cfg, 700), Duration(700));
        assert_eq!(Backoff::busy_slot(&cfg, u32::MAX), Duration(1000));
    }

    #[test]
    fn gives_up_and_never_overflows() {
        let cfg = BackoffConfig { give_up_after: 3, cap: Duration(u64::MAX), ..Default::default() };
        let mut b = Backoff::new();
        let mut rng = Rng::new(9);
        assert!(b.on_failure(&cfg, Instant(0), &mut rng).is_some());
        assert!(b.on_failure(&cfg, Instant(0), &mut rng).is_some());
        assert!(b.on_failure(&cfg, Instant(u64::MAX), &mut rng).is_none());
        assert_eq!(Backoff::ceiling(&cfg, 1, Duration(u64::MAX), 0), Duration((u64::MAX - 300_000) / 32));
        assert_eq!(Backoff::ceiling(&cfg, 200, Duration::ZERO, 0), Duration(u64::MAX));
        assert_eq!(Backoff::ceiling(&cfg, 1, Duration::ZERO, 0), Duration(500));
    }

    #[test]
    fn give_up_counts_consecutive_failures_not_the_weight() {
        let cfg = BackoffConfig { give_up_after: 4, ..cfg() };
        let mut b = Backoff::new();
        let mut rng = Rng::new(5);
        for _ in 0..3 {
            assert!(b.on_failure(&cfg, Instant(0), &mut rng).is_some());
        }
        b.on_healthy_period(); // weight 1, consecutive 0
        for _ in 0..3 {
            assert!(b.on_failure(&cfg, Instant(0), &mut rng).is_some());
        }
        assert!(b.on_failure(&cfg, Instant(0), &mut rng).is_none());
    }
}
