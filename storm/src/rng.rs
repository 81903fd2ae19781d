//! SplitMix64, the simulation's only source of randomness: every draw of a
//! run comes from the scenario's seed, so a run replays exactly.

/// SplitMix64 (Steele, Lea, Flood 2014): agent-core's generator, the one
/// the agents and the collector's admission draw from too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64(agent_core::rng::Rng);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(agent_core::rng::Rng::new(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    /// Uniform in `lo..=hi` (`lo` when `hi <= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_ranges_hold() {
        let (mut a, mut b) = (SplitMix64::new(5), SplitMix64::new(5));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let r = a.range(3, 7);
            assert!((3..=7).contains(&r));
            b.range(3, 7);
        }
        assert_eq!(a.below(0), 0);
        assert_eq!(a.range(9, 9), 9);
        assert_eq!(a.range(9, 2), 9);
    }
}
