//! The clocks: `CLOCK_MONOTONIC` is the agent's clock; the wall clock is read
//! only for the offset that timestamps records; the jitter seed mixes the
//! machine id, the pid and the time so no two devices draw alike.

use agent_core::Instant;
use nix::time::{clock_gettime, ClockId};

/// Milliseconds on `CLOCK_MONOTONIC` (never steps; the agent's clock).
pub fn monotonic() -> Instant {
    Instant(millis(ClockId::CLOCK_MONOTONIC))
}

/// Milliseconds since the Unix epoch on `CLOCK_REALTIME`.
pub fn wall_ms() -> u64 {
    millis(ClockId::CLOCK_REALTIME)
}

/// `wall - monotonic`, in ms: added to the agent's clock it gives Unix time
/// (the agent's `set_clock_offset`). Re-read at every heartbeat, so a wall
/// clock set by NTP after boot is picked up.
pub fn wall_offset_ms() -> i64 {
    let mono = monotonic().as_millis() as i64;
    (wall_ms() as i64).wrapping_sub(mono)
}

fn millis(id: ClockId) -> u64 {
    // clock_gettime on these two clocks cannot fail on Linux; a zero reading
    // would only freeze the agent's time, never panic.
    clock_gettime(id).map_or(0, |t| (t.tv_sec() as u64).saturating_mul(1000) + (t.tv_nsec() as u64) / 1_000_000)
}

/// A per-device, per-start seed for the agent's jitter: `/etc/machine-id`
/// (or `/var/lib/dbus/machine-id`), the pid and the wall clock in ns, mixed.
/// Two devices started in the same millisecond still draw differently.
pub fn jitter_seed() -> u64 {
    let mut h = Mix::default();
    for path in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Ok(id) = std::fs::read(path) {
            h.bytes(&id);
            break;
        }
    }
    h.word(u64::from(std::process::id()));
    let t = clock_gettime(ClockId::CLOCK_REALTIME).map_or(0, |t| (t.tv_sec() as u64) << 30 ^ t.tv_nsec() as u64);
    h.word(t);
    h.word(clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| t.tv_nsec() as u64));
    h.finish()
}

/// FNV-1a over bytes, finished with splitmix64 (good enough for a seed).
struct Mix(u64);

impl Default for Mix {
    fn default() -> Self {
        Mix(0xcbf2_9ce4_8422_2325)
    }
}

impl Mix {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn word(&mut self, w: u64) {
        self.bytes(&w.to_le_bytes());
    }
    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_wall_agree_with_std() {
        let a = monotonic();
        let std_wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let off = wall_offset_ms();
        let b = monotonic();
        assert!(b >= a);
        let wall = (b.as_millis() as i64 + off) as u64;
        assert!(wall.abs_diff(std_wall) < 2_000, "offset gives Unix time: {wall} vs {std_wall}");
    }

    #[test]
    fn seeds_differ_between_calls() {
        assert_ne!(jitter_seed(), jitter_seed(), "the time is mixed in");
    }
}
