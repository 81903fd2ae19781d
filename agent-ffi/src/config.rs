//! `ea_config`: every bound and interval of the agent as a flat C struct,
//! and the lock hooks.

use crate::result::{ea_result, Res};
use agent_core::backoff::BackoffConfig;
use agent_core::{AgentConfig, Duration, OverflowPolicy, RingConfig};
use core::ffi::c_void;

/// What the ring does when a record does not fit.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ea_overflow_policy {
    /// Refuse the new record (`EA_RING_FULL`, counted in `dropped_full`).
    EA_OVERFLOW_REJECT_NEW = 0,
    /// Evict the oldest never-sent records to make room (counted in
    /// `dropped_evicted`); records already sent are never evicted. A
    /// library built without it (the documented firmware build) refuses it
    /// at init with `EA_CONFIG_DROP_OLDEST_NOT_BUILT`.
    EA_OVERFLOW_DROP_OLDEST = 1,
}

/// A lock or unlock hook: called with the config's `lock_userdata`.
pub type ea_lock_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// Every bound and interval of the agent. Get the defaults from
/// `ea_config_default()`, then change what you need. All times are in
/// milliseconds. `ea_agent_init` refuses an impossible combination with an
/// `EA_CONFIG_*` result.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct ea_config {
    /// Largest record payload accepted, bytes (default 1024, at least 384).
    pub max_record: usize,
    /// `ea_overflow_policy` value (default `EA_OVERFLOW_REJECT_NEW`).
    pub overflow_policy: u32,
    /// Most records in one batch (default 256).
    pub batch_max_records: u32,
    /// Largest batch, bytes of record entries (default 4096).
    pub batch_max_bytes: usize,
    /// Most unacked bytes in flight (default 16384; at least
    /// `batch_max_bytes`).
    pub window_bytes: usize,
    /// Longest a pending record waits before a partial batch goes (default
    /// 100).
    pub flush_interval_ms: u64,
    /// Interval between heartbeat records (default 60000, at least 1000).
    pub heartbeat_interval_ms: u64,
    /// Time without any received frame before a Ping (default 15000).
    pub idle_timeout_ms: u64,
    /// Time to wait for any frame after a Ping (default 5000).
    pub pong_timeout_ms: u64,
    /// Longest records may stay in flight with no ack progress before the
    /// connection is deemed broken (default 30000).
    pub ack_timeout_ms: u64,
    /// Time for the caller to report the transport up (default 10000).
    pub connect_timeout_ms: u64,
    /// Time for the server to answer Hello (default 10000).
    pub handshake_timeout_ms: u64,
    /// Length of a healthy period: each one a connection stays up halves
    /// the backoff's failure weight (default 30000).
    pub healthy_after_ms: u64,
    /// Upper bound of the first reconnect wait (default 500).
    pub backoff_base_ms: u64,
    /// Upper bound of any reconnect wait (default 60000).
    pub backoff_cap_ms: u64,
    /// Number of endpoints the caller can open, indexed from 0 (default 1).
    pub endpoints: u8,
    /// Failed attempts on one endpoint before moving on (default 3).
    pub attempts_per_endpoint: u8,
    /// Give up after this many consecutive failures; 0 = never (default 0).
    pub give_up_after: u32,
    /// Window to spread reconnects over when the collector gives no pacing
    /// advice (`Accept.retry_window_ms` = 0): about the fleet's size divided
    /// by the collector's admission rate; 0 = none, the window grows
    /// exponentially from `backoff_base_ms` (default 0).
    pub backoff_fleet_window_ms: u64,
    /// Seed of the jitter PRNG; give each device its own (default 0).
    pub rng_seed: u64,
    /// Largest step agent time takes per input (default 3600000): a caller
    /// instant further ahead counts as this much time passing.
    pub max_clock_step_ms: u64,
    /// A caller instant at most this much earlier than the latest one is a
    /// stale reading (no time passes); one further back re-anchors the
    /// agent's clock (default 1000).
    pub clock_backstep_tolerance_ms: u64,
    /// Called before every call that touches the agent, on the calling
    /// thread; NULL for no locking (single-threaded use). Give both hooks or
    /// neither (`EA_INVALID_ARGUMENT`). Must not call back into the agent.
    pub lock: ea_lock_fn,
    /// Called after every such call; releases what `lock` took.
    pub unlock: ea_lock_fn,
    /// Passed to `lock` and `unlock`.
    pub lock_userdata: *mut c_void,
}

impl ea_config {
    /// The documented defaults.
    pub fn default_values() -> Self {
        let d = AgentConfig::default();
        ea_config {
            max_record: d.ring.max_record,
            overflow_policy: policy_to_c(d.ring.policy) as u32,
            batch_max_records: d.batch_max_records,
            batch_max_bytes: d.batch_max_bytes,
            window_bytes: d.window_bytes,
            flush_interval_ms: d.flush_interval.as_millis(),
            heartbeat_interval_ms: d.heartbeat_interval.as_millis(),
            idle_timeout_ms: d.idle_timeout.as_millis(),
            pong_timeout_ms: d.pong_timeout.as_millis(),
            ack_timeout_ms: d.ack_timeout.as_millis(),
            connect_timeout_ms: d.connect_timeout.as_millis(),
            handshake_timeout_ms: d.handshake_timeout.as_millis(),
            healthy_after_ms: d.healthy_after.as_millis(),
            backoff_base_ms: d.backoff.base.as_millis(),
            backoff_cap_ms: d.backoff.cap.as_millis(),
            endpoints: d.backoff.endpoints,
            attempts_per_endpoint: d.backoff.attempts_per_endpoint,
            give_up_after: d.backoff.give_up_after,
            backoff_fleet_window_ms: d.backoff.fleet_window.as_millis(),
            rng_seed: d.rng_seed,
            max_clock_step_ms: d.max_clock_step.as_millis(),
            clock_backstep_tolerance_ms: d.clock_backstep_tolerance.as_millis(),
            lock: None,
            unlock: None,
            lock_userdata: core::ptr::null_mut(),
        }
    }

    /// The core's configuration; `EA_INVALID_ARGUMENT` for an unknown
    /// policy or half-given lock hooks, `EA_CONFIG_DROP_OLDEST_NOT_BUILT`
    /// for a policy this build leaves out. Bounds are checked by the core.
    pub fn to_core(&self) -> Res<AgentConfig> {
        let policy = policy_from_c(self.overflow_policy)?;
        if self.lock.is_some() != self.unlock.is_some() {
            return Err(ea_result::EA_INVALID_ARGUMENT);
        }
        let ms = Duration::from_millis;
        Ok(AgentConfig {
            ring: RingConfig { max_record: self.max_record, policy },
            batch_max_bytes: self.batch_max_bytes,
            batch_max_records: self.batch_max_records,
            flush_interval: ms(self.flush_interval_ms),
            window_bytes: self.window_bytes,
            heartbeat_interval: ms(self.heartbeat_interval_ms),
            idle_timeout: ms(self.idle_timeout_ms),
            pong_timeout: ms(self.pong_timeout_ms),
            ack_timeout: ms(self.ack_timeout_ms),
            connect_timeout: ms(self.connect_timeout_ms),
            handshake_timeout: ms(self.handshake_timeout_ms),
            healthy_after: ms(self.healthy_after_ms),
            backoff: BackoffConfig {
                base: ms(self.backoff_base_ms),
                cap: ms(self.backoff_cap_ms),
                endpoints: self.endpoints,
                attempts_per_endpoint: self.attempts_per_endpoint,
                give_up_after: self.give_up_after,
                fleet_window: ms(self.backoff_fleet_window_ms),
            },
            rng_seed: self.rng_seed,
            max_clock_step: ms(self.max_clock_step_ms),
            clock_backstep_tolerance: ms(self.clock_backstep_tolerance_ms),
        })
    }
}

#[cfg(feature = "drop-oldest")]
fn policy_from_c(p: u32) -> Res<OverflowPolicy> {
    match p {
        0 => Ok(OverflowPolicy::RejectNew),
        1 => Ok(OverflowPolicy::DropOldest),
        _ => Err(ea_result::EA_INVALID_ARGUMENT),
    }
}

/// Without the `drop-oldest` feature: `EA_OVERFLOW_DROP_OLDEST` is a known
/// policy this build cannot apply, refused with its own result.
#[cfg(not(feature = "drop-oldest"))]
fn policy_from_c(p: u32) -> Res<OverflowPolicy> {
    match p {
        0 => Ok(OverflowPolicy::RejectNew),
        1 => Err(ea_result::EA_CONFIG_DROP_OLDEST_NOT_BUILT),
        _ => Err(ea_result::EA_INVALID_ARGUMENT),
    }
}

#[cfg(feature = "drop-oldest")]
fn policy_to_c(p: OverflowPolicy) -> ea_overflow_policy {
    match p {
        OverflowPolicy::RejectNew => ea_overflow_policy::EA_OVERFLOW_REJECT_NEW,
        OverflowPolicy::DropOldest => ea_overflow_policy::EA_OVERFLOW_DROP_OLDEST,
    }
}

#[cfg(not(feature = "drop-oldest"))]
fn policy_to_c(p: OverflowPolicy) -> ea_overflow_policy {
    match p {
        OverflowPolicy::RejectNew => ea_overflow_policy::EA_OVERFLOW_REJECT_NEW,
    }
}

/// The lock hooks of one agent, copied from its config at init.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LockHooks {
    pub(crate) lock: ea_lock_fn,
    pub(crate) unlock: ea_lock_fn,
    pub(crate) userdata: *mut c_void,
}

impl LockHooks {
    /// Takes the lock; released when the guard drops (also on a caught
    /// panic).
    pub(crate) fn take(&self) -> LockGuard<'_> {
        if let Some(lock) = self.lock {
            // SAFETY: the caller's hook, called as documented in ea_config.
            unsafe { lock(self.userdata) };
        }
        LockGuard(self)
    }

    /// The guard of a lock already taken with `take` (whose guard was
    /// forgotten): released when it drops.
    pub(crate) fn held(&self) -> LockGuard<'_> {
        LockGuard(self)
    }
}

/// Holds the agent's lock (if it has hooks) until dropped.
pub(crate) struct LockGuard<'a>(&'a LockHooks);

impl Drop for LockGuard<'_> {
    #[inline(never)] // one copy, not one in every entry point (flash)
    fn drop(&mut self) {
        if let Some(unlock) = self.0.unlock {
            // SAFETY: as in `LockHooks::take`.
            unsafe { unlock(self.0.userdata) };
        }
    }
}

/// The documented defaults: every bound and interval as listed on each
/// field of `ea_config`, no lock hooks.
#[no_mangle]
pub extern "C" fn ea_config_default() -> ea_config {
    ea_config::default_values()
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    fn with_policy(p: u32) -> Res<AgentConfig> {
        ea_config { overflow_policy: p, ..ea_config::default_values() }.to_core()
    }

    #[cfg(feature = "drop-oldest")]
    #[test]
    fn drop_oldest_is_taken_where_built() {
        assert_eq!(with_policy(1).map(|c| c.ring.policy), Ok(OverflowPolicy::DropOldest));
        assert_eq!(with_policy(2).map(|c| c.ring.policy), Err(ea_result::EA_INVALID_ARGUMENT));
    }

    /// The firmware build: the policy is known but not built, and refused
    /// with its own result, not taken for another.
    #[cfg(not(feature = "drop-oldest"))]
    #[test]
    fn drop_oldest_is_refused_with_its_own_result_where_left_out() {
        assert_eq!(with_policy(1).map(|c| c.ring.policy), Err(ea_result::EA_CONFIG_DROP_OLDEST_NOT_BUILT));
        assert_eq!(with_policy(2).map(|c| c.ring.policy), Err(ea_result::EA_INVALID_ARGUMENT));
        assert_eq!(with_policy(0).map(|c| c.ring.policy), Ok(OverflowPolicy::RejectNew));
    }
}
