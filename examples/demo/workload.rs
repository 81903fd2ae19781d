//! What every agent of the demo does and reports, whichever API drives it
//! (the Rust agents in `demo.rs`, the C ABI agent in `c_abi_agent.rs`):
//! [`READINGS`] readings [`READING_EVERY`] apart, their record type, the
//! deadline for the last acks, and the [`Report`] each hands back.

use agent_core::{AgentStats, Duration};
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

/// Readings each agent pushes.
pub(crate) const READINGS: u32 = 150;
/// Time between two readings.
pub(crate) const READING_EVERY: StdDuration = StdDuration::from_millis(20);
/// The demo's own record type (1000-1999 belong to the library).
pub(crate) const READING: u32 = 2001;
/// Agents stop waiting for their last acks this long after the start.
pub(crate) const AGENT_DEADLINE: Duration = Duration::from_secs(30);

/// What an agent thread reports when it is done.
pub(crate) struct Report {
    pub(crate) name: &'static str,
    pub(crate) pushed: u32,
    pub(crate) stats: AgentStats,
    pub(crate) finished: bool,
}

/// Milliseconds since the Unix epoch (a reading's timestamp).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
