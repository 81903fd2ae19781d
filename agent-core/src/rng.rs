//! The caller-seeded PRNG behind backoff jitter and ping nonces.
//!
//! SplitMix64: one `u64` of state, every seed (zero too) gives a full-period
//! sequence. Not cryptographic; it only spreads a fleet's reconnects. Seed
//! each device differently (a serial number, a MAC, a boot-time counter) so
//! devices do not retry in lockstep; the same seed replays the same run.

/// A small deterministic random number generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`.
    pub const fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value uniform in `0..n` (multiply-shift: the high 64 bits of
    /// `next_u64() * n`); 0 when `n` is 0 (a draw is consumed either way).
    /// The collector's pacing and the simulations draw from it too.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A value uniform in `0..=max` ([`Rng::below`]`(max + 1)`; bias below
    /// 2^-32 for the ranges used here).
    pub fn up_to(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        self.below(max + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // The first outputs for seed 0 of the reference SplitMix64
        // (Steele, Lea, Flood 2014; Vigna's splitmix64.c).
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
        let mut r = Rng::new(0);
        assert_eq!(r.below(1 << 32), 0xE220_A839, "the high bits of the draw");
        assert_eq!(r.below(0), 0, "a draw is consumed even for n = 0");
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn up_to_is_below_one_more() {
        let (mut a, mut b) = (Rng::new(11), Rng::new(11));
        for max in [0, 1, 9, 1 << 40, u64::MAX - 1] {
            assert_eq!(a.up_to(max), ((u128::from(b.next_u64()) * (u128::from(max) + 1)) >> 64) as u64);
        }
        assert_eq!(a.up_to(u64::MAX), b.next_u64());
    }

    #[test]
    fn deterministic_and_bounded() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let x = a.up_to(10);
            assert_eq!(x, b.up_to(10));
            assert!(x <= 10);
        }
        assert_eq!(Rng::new(1).up_to(0), 0);
        let mut seen = [false; 5];
        for _ in 0..200 {
            seen[a.up_to(4) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
