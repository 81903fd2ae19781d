//! How fast agent ids never seen before may appear on connections that did
//! not prove their id, sans-IO: a token bucket on the caller's clock.
//!
//! Without per-agent credentials anyone with the port (or the shared token)
//! can invent ids, and every id costs a resume point, a registry row and a
//! line prefix forever. The bucket holds `burst` tokens, refilled at
//! `per_sec`; a new unproven id takes one. A Hello that finds it empty is
//! answered Reject 6 (Busy) with the time until the next token. Proven ids
//! (listed in the token file) never take one: the file bounds them.

use std::time::Duration;

/// The new-id budget.
#[derive(Debug, Clone)]
pub struct NewIds {
    per_sec: u32,
    burst: u32,
    /// Tokens, in millionths, as of `at`.
    micro_tokens: u64,
    at: Duration,
}

impl NewIds {
    /// A full bucket of `burst` tokens refilled at `per_sec` (0: unlimited).
    pub fn new(per_sec: u32, burst: u32) -> NewIds {
        NewIds { per_sec, burst, micro_tokens: u64::from(burst) * 1_000_000, at: Duration::ZERO }
    }

    /// Takes a token at `now` (time since some fixed origin, never going
    /// back): `Ok` if there was one, else `Err(ms)` until the next.
    pub fn take(&mut self, now: Duration) -> Result<(), u32> {
        if self.per_sec == 0 {
            return Ok(());
        }
        let now = now.max(self.at);
        let elapsed_us = (now - self.at).as_micros().min(u128::from(u64::MAX)) as u64;
        let full = u64::from(self.burst) * 1_000_000;
        self.micro_tokens = self.micro_tokens.saturating_add(elapsed_us.saturating_mul(u64::from(self.per_sec))).min(full);
        self.at = now;
        if self.micro_tokens >= 1_000_000 {
            self.micro_tokens -= 1_000_000;
            return Ok(());
        }
        let missing = 1_000_000 - self.micro_tokens;
        let wait_ms = missing.div_ceil(u64::from(self.per_sec)).div_ceil(1000);
        Err(wait_ms.clamp(1, u64::from(u32::MAX)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = NewIds::new(10, 3);
        let t = Duration::from_secs(1);
        assert!(b.take(t).is_ok() && b.take(t).is_ok() && b.take(t).is_ok());
        assert_eq!(b.take(t), Err(100), "one token per 100 ms");
        assert_eq!(b.take(t + Duration::from_millis(40)), Err(60));
        assert!(b.take(t + Duration::from_millis(100)).is_ok());
        assert!(b.take(t + Duration::from_secs(100)).is_ok(), "refills up to the burst only");
        assert!(b.take(t + Duration::from_secs(100)).is_ok() && b.take(t + Duration::from_secs(100)).is_ok());
        assert!(b.take(t + Duration::from_secs(100)).is_err());
        assert!(b.take(Duration::ZERO).is_err(), "a clock going back refills nothing");
        let mut open = NewIds::new(0, 0);
        assert!((0..1000).all(|_| open.take(Duration::ZERO).is_ok()));
    }
}
