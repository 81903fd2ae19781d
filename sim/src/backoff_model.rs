//! The reconnect backoff of PROTOCOL.md, computed independently of
//! agent-core: what the simulation expects each `last_retry()` to say.

use agent_core::backoff::BackoffConfig;

/// The backoff rule of PROTOCOL.md (*Reconnect*), computed independently
/// of the crate: `min(cap, max(floor, (failing_for - 5 min) / 32))` with the floor the
/// fleet window (at least base) or `base * 2^(weight-1)`.
pub(crate) fn expected_ceiling(b: &BackoffConfig, weight: u32, failing_for: u64, advice: u32) -> u64 {
    let (base, cap) = (u128::from(b.base.as_millis()), u128::from(b.cap.as_millis()));
    let window = if advice > 0 { u128::from(advice) } else { u128::from(b.fleet_window.as_millis()) }.min(cap);
    let floor = if window > 0 {
        window.max(base)
    } else {
        let mut c = base;
        for _ in 1..weight {
            if c >= cap {
                break;
            }
            c *= 2;
        }
        c
    };
    floor.max(u128::from(failing_for.saturating_sub(5 * 60 * 1000)) / 32).min(cap) as u64
}
