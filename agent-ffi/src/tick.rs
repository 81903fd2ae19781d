//! Stand-in for `agent_core::time::Tick32` until it lands on main: a
//! wrapping 32-bit millisecond tick extended to a monotonic 64-bit instant.

use agent_core::Instant;

/// A wrapping 32-bit millisecond tick read as the nearest 64-bit instant to
/// the previous one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tick32 {
    started: bool,
    last: u32,
    now: u64,
}

impl Tick32 {
    /// The instant of `tick`.
    pub(crate) fn instant(&mut self, tick: u32) -> Instant {
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
