//! The simulation's only source of randomness.
//!
//! Everything a seed decides (fleet, configurations, faults, traffic,
//! latencies) is drawn from one [`SplitMix`] in a fixed order; changing the
//! order of draws changes what every seed means.

/// The simulation's only source of randomness: agent-core's SplitMix64.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix(agent_core::rng::Rng);

impl SplitMix {
    /// A generator seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix(agent_core::rng::Rng::new(seed))
    }
    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in `0..n` (0 when `n == 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// Uniform in `lo..=hi`.
    pub(crate) fn range_usize(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as u64, hi as u64) as usize
    }
    /// True with probability `per_mille / 1000`.
    pub(crate) fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}
