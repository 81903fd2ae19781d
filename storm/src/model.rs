//! The model clients the agent is compared with: a connect, a Hello, an
//! Accept or a Busy Reject, and a reconnect delay from a textbook strategy.
//! They use the same network and the same collector as the agents (a Hello
//! that reaches it is judged by the same `Admission`), and:
//!
//! * honour a Busy `retry_after_ms` as a minimum: `max(own delay, retry_after)`;
//! * count failures since the last successful connect (an Accept resets
//!   the count and the decorrelated strategy's previous sleep);
//! * carry no records and send nothing but the Hello (they are never lost
//!   but by a restart).
//!
//! The delays, `base` = 500 ms, `cap` = 60 s, `n` = failures before this one:
//!
//! | strategy | delay |
//! |---|---|
//! | `NoJitter` | `min(cap, base * 2^n)` |
//! | `Fixed5s` | 5 s |
//! | `Decorrelated` | `min(cap, uniform(base, prev * 3))`, `prev` starting at `base` |
//! | `EqualJitter` | `c = min(cap, base * 2^n)`; `c/2 + uniform(0, c/2)` |

use agent_core::TransportError;

use crate::client::Clients;
use crate::net::{Net, Payload};
use crate::rng::SplitMix64;
use crate::scenario::Strategy;
use crate::server::Answer;

/// The models' `base`, ms.
pub const BASE_MS: u64 = 500;
/// The models' `cap`, ms.
pub const CAP_MS: u64 = 60_000;
/// The fixed strategy's period, ms.
pub const FIXED_MS: u64 = 5_000;

/// `min(cap, base * 2^n)`.
fn exponential(n: u32) -> u64 {
    (BASE_MS << n.min(20)).min(CAP_MS)
}

/// The reconnect state of one model client.
#[derive(Clone, Debug)]
pub struct Backoff {
    strategy: Strategy,
    failures: u32,
    prev_ms: u64,
    rng: SplitMix64,
}

impl Backoff {
    /// Fresh state for `strategy` (a model strategy, not `Agent`).
    pub fn new(strategy: Strategy, seed: u64) -> Backoff {
        assert_ne!(strategy, Strategy::Agent, "the agent is not a model");
        Backoff { strategy, failures: 0, prev_ms: BASE_MS, rng: SplitMix64::new(seed) }
    }

    /// A connect succeeded: the count starts again.
    pub fn on_success(&mut self) {
        self.failures = 0;
        self.prev_ms = BASE_MS;
    }

    /// A failure: the delay before the next attempt, ms.
    pub fn on_failure(&mut self) -> u64 {
        let n = self.failures;
        self.failures = self.failures.saturating_add(1);
        match self.strategy {
            Strategy::NoJitter => exponential(n),
            Strategy::Fixed5s => FIXED_MS,
            Strategy::Decorrelated => {
                let d = self.rng.range(BASE_MS, self.prev_ms.saturating_mul(3)).min(CAP_MS);
                self.prev_ms = d;
                d
            }
            Strategy::EqualJitter => {
                let c = exponential(n);
                c / 2 + self.rng.range(0, c / 2)
            }
            Strategy::Agent => unreachable!("checked in new"),
        }
    }
}

/// `N` model clients of one strategy.
pub struct Models {
    clients: Vec<Backoff>,
}

impl Models {
    /// One client per seed.
    pub fn new(strategy: Strategy, seeds: &[u64]) -> Models {
        Models { clients: seeds.iter().map(|&s| Backoff::new(strategy, s)).collect() }
    }

    fn fail(&mut self, i: usize, now: u64, hold_ms: u64, net: &mut Net) {
        net.close(i);
        let delay = self.clients[i].on_failure().max(hold_ms);
        net.set_timer(i, Some(now + delay));
    }
}

impl Clients for Models {
    fn on_timer(&mut self, i: usize, now: u64, net: &mut Net) {
        net.connect(now, i);
    }

    fn on_connect(&mut self, i: usize, now: u64, ok: bool, net: &mut Net) {
        if ok {
            net.send(now, i, Payload::Hello);
        } else {
            self.fail(i, now, 0, net);
        }
    }

    fn on_payload(&mut self, i: usize, now: u64, payload: Payload, net: &mut Net) {
        match payload {
            Payload::Answer(Answer::Accept { .. }) => self.clients[i].on_success(),
            Payload::Answer(Answer::Busy { retry_after_ms }) => self.fail(i, now, u64::from(retry_after_ms), net),
            _ => {}
        }
    }

    fn on_lost(&mut self, i: usize, now: u64, _error: TransportError, net: &mut Net) {
        self.fail(i, now, 0, net);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(strategy: Strategy, n: usize) -> Vec<u64> {
        let mut b = Backoff::new(strategy, 3);
        (0..n).map(|_| b.on_failure()).collect()
    }

    #[test]
    fn each_strategy_follows_its_formula() {
        assert_eq!(delays(Strategy::NoJitter, 9), [500, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
        assert_eq!(delays(Strategy::Fixed5s, 3), [5000; 3]);
        let mut prev = BASE_MS;
        for d in delays(Strategy::Decorrelated, 50) {
            assert!(BASE_MS <= d && d <= (prev * 3).min(CAP_MS), "{d} after {prev}");
            prev = d;
        }
        for (n, d) in delays(Strategy::EqualJitter, 12).into_iter().enumerate() {
            let c = exponential(n as u32);
            assert!(c / 2 <= d && d <= c, "{d} for c = {c}");
        }
        let mut b = Backoff::new(Strategy::NoJitter, 1);
        b.on_failure();
        b.on_failure();
        b.on_success();
        assert_eq!(b.on_failure(), 500, "a success resets the count");
    }
}
