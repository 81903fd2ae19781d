//! Reconnect timing: exponential backoff with full jitter, and endpoint
//! rotation.
//!
//! After the `n`-th consecutive failure (n = 1, 2, ...) the wait is uniform in
//! `[0, min(cap, base * 2^(n-1))]` ("full jitter"). The failure count resets
//! only when a connection has stayed up for `healthy_after` (the session
//! calls [`Backoff::reset`] then), so a server that accepts and then kicks
//! cannot cause a tight loop.
//!
//! Endpoints are tried in the caller's order: `attempts_per_endpoint` tries
//! on one, then the next, wrapping around. With `give_up_after` set, that
//! many consecutive failures end the retrying ([`Backoff::on_failure`]
//! returns `None`).

use crate::rng::Rng;
use crate::time::Duration;

/// Backoff settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Upper bound of the first wait.
    pub base: Duration,
    /// Upper bound of any wait.
    pub cap: Duration,
    /// Number of endpoints (at least 1).
    pub endpoints: u8,
    /// Consecutive failed attempts on one endpoint before moving on (>= 1).
    pub attempts_per_endpoint: u8,
    /// Give up after this many consecutive failures; 0 = never.
    pub give_up_after: u32,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
            endpoints: 1,
            attempts_per_endpoint: 3,
            give_up_after: 0,
        }
    }
}

/// The next attempt decided after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Endpoint to try.
    pub endpoint: u8,
    /// How long to wait first.
    pub delay: Duration,
    /// The jitter window the delay was drawn from: `[0, ceiling]`.
    pub ceiling: Duration,
}

/// Backoff state: failures so far and the current endpoint. The settings
/// are passed to each call rather than kept (the agent holds them once).
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    failures: u32,
    endpoint: u8,
    endpoint_failures: u8,
}

impl Backoff {
    /// Fresh state: endpoint 0, no failures.
    pub fn new() -> Self {
        Backoff::default()
    }

    /// The endpoint the next attempt goes to.
    pub fn endpoint(&self) -> u8 {
        self.endpoint
    }

    /// Consecutive failures since the last healthy connection.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Forgets the failures, keeping the endpoint: a connection stayed
    /// healthy, or the caller asked to retry now (`Agent::reconnect_now`).
    pub fn reset(&mut self) {
        self.failures = 0;
        self.endpoint_failures = 0;
    }

    /// The ceiling of the jitter window after `failures` failures.
    pub fn ceiling(cfg: &BackoffConfig, failures: u32) -> Duration {
        // `base * 2^(failures - 1)`, saturating, by doubling: no 64-bit
        // shift by a variable amount (a library call on 32-bit MCUs).
        let cap = cfg.cap.as_millis();
        let mut grown = cfg.base.as_millis();
        for _ in 1..failures.min(64) {
            if grown >= cap {
                break;
            }
            grown = grown.saturating_add(grown);
        }
        Duration(grown.min(cap))
    }

    /// Records a failed attempt (or a lost connection that was not yet
    /// healthy) and decides the next one; `None` when the give-up limit is
    /// reached.
    pub fn on_failure(&mut self, cfg: &BackoffConfig, rng: &mut Rng) -> Option<Retry> {
        self.failures = self.failures.saturating_add(1);
        if cfg.give_up_after != 0 && self.failures >= cfg.give_up_after {
            return None;
        }
        self.endpoint_failures = self.endpoint_failures.saturating_add(1);
        if self.endpoint_failures >= cfg.attempts_per_endpoint.max(1) {
            self.endpoint_failures = 0;
            self.endpoint = (self.endpoint + 1) % cfg.endpoints.max(1);
        }
        let ceiling = Backoff::ceiling(cfg, self.failures);
        Some(Retry { endpoint: self.endpoint, delay: Duration(rng.up_to(ceiling.as_millis())), ceiling })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_within_growing_ceiling() {
        let cfg = BackoffConfig {
            base: Duration(100),
            cap: Duration(1000),
            endpoints: 3,
            attempts_per_endpoint: 2,
            give_up_after: 0,
        };
        let mut b = Backoff::new();
        let mut rng = Rng::new(1);
        let expect_ceiling = [100, 200, 400, 800, 1000, 1000, 1000];
        let expect_endpoint = [0, 1, 1, 2, 2, 0, 0];
        for i in 0..7 {
            let r = b.on_failure(&cfg, &mut rng).unwrap();
            assert_eq!(r.ceiling, Duration(expect_ceiling[i]));
            assert!(r.delay <= r.ceiling);
            assert_eq!(r.endpoint, expect_endpoint[i], "attempt {i}");
        }
        b.reset();
        assert_eq!(b.on_failure(&cfg, &mut rng).unwrap().ceiling, Duration(100));
    }

    #[test]
    fn gives_up_and_never_overflows() {
        let cfg = BackoffConfig { give_up_after: 3, cap: Duration(u64::MAX), ..Default::default() };
        let mut b = Backoff::new();
        let mut rng = Rng::new(9);
        assert!(b.on_failure(&cfg, &mut rng).is_some());
        assert!(b.on_failure(&cfg, &mut rng).is_some());
        assert!(b.on_failure(&cfg, &mut rng).is_none());
        assert_eq!(Backoff::ceiling(&cfg, 200), Duration(u64::MAX));
        assert_eq!(Backoff::ceiling(&cfg, 1), Duration(500));
    }
}
