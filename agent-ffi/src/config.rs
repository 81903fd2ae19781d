//! `ea_config`: every bound and interval of the agent as a flat C struct,
//! and the lock hooks.

use crate::result::{ea_result, Res};
use agent_core::backoff::BackoffConfig;
use agent_core::{AgentConfig, Duration, OverflowPolicy, RingConfig};
use core::ffi::c_void;
use core::mem::MaybeUninit;

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
            // Opaque to the optimizer: without it, the zero fields from here
            // to `rng_seed` (20 B) would be cleared by a call to
            // `__aeabi_memclr4` on Arm, a runtime helper nothing else in a
            // firmware image needs. The value is the same.
            give_up_after: core::hint::black_box(d.backoff.give_up_after),
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
        let mut c = MaybeUninit::uninit();
        Ok(*self.write_core(&mut c)?)
    }

    /// `to_core` into `out` (the C API's entry points: no second copy of
    /// the config on the stack); on `Ok` every field of `out` is written.
    pub(crate) fn write_core<'c>(&self, out: &'c mut MaybeUninit<AgentConfig>) -> Res<&'c mut AgentConfig> {
        let policy = policy_from_c(self.overflow_policy)?;
        if self.lock.is_some() != self.unlock.is_some() {
            return Err(ea_result::EA_INVALID_ARGUMENT);
        }
        let to = out.as_mut_ptr();
        // SAFETY: `CARRIED` covers every field of `AgentConfig` but the
        // policy (`all_fields_carried` fails to compile otherwise), each
        // with its offset in both structs and its size, taken from fields
        // of the same integer type (`carried_types`); an entry of
        // `CARRIED` is one field or a run of fields adjacent in both
        // structs (`runs`); the policy is written next. So every field
        // holds a valid value before `assume_init_mut`.
        unsafe {
            let from = (self as *const ea_config).cast::<u8>();
            for f in CARRIED {
                core::ptr::copy_nonoverlapping(from.add(f.from as usize), to.cast::<u8>().add(f.to as usize), f.len as usize);
            }
            core::ptr::addr_of_mut!((*to).ring.policy).write(policy);
            Ok(out.assume_init_mut())
        }
    }
}

/// A field `ea_config` carries unchanged into `AgentConfig` (the same
/// integer: a count as a count, milliseconds as a `Duration`'s
/// milliseconds): its byte offsets in `AgentConfig` and `ea_config`, and
/// its size. One table and one loop instead of a copy per field (flash: a
/// struct literal of 22 fields loads every value before storing any, which
/// spills most of them on a 32-bit MCU).
#[derive(Clone, Copy)]
struct Carried {
    to: u8,
    from: u8,
    len: u8,
}

/// The size of the field `_f` returns (a way to name a field's type in a
/// constant).
const fn field_size<S, T>(_f: fn(&S) -> &T) -> usize {
    core::mem::size_of::<T>()
}

/// A `Carried` entry, its offsets and size checked to fit a byte.
const fn carried(to: usize, from: usize, len: usize) -> Carried {
    assert!(to < 256 && from < 256 && len < 256);
    Carried { to: to as u8, from: from as u8, len: len as u8 }
}

/// `CARRIED` from `AgentConfig` field <- `ea_config` field pairs, and a
/// function (never called) that assigns each pair, so that both sides of
/// every pair have the same type.
macro_rules! carried_fields {
    ($($to:ident $(. $sub:tt)* <- $from:ident),* $(,)?) => {
        const FIELDS: &[Carried] = &[$(
            carried(core::mem::offset_of!(AgentConfig, $to $(. $sub)*), core::mem::offset_of!(ea_config, $from), field_size(|c: &ea_config| &c.$from)),
        )*];

        #[allow(dead_code)]
        fn carried_types(c: &ea_config, a: &mut AgentConfig) {
            $(a.$to $(. $sub)* = c.$from;)*
        }
    };
}

carried_fields! {
    ring.max_record <- max_record,
    batch_max_bytes <- batch_max_bytes,
    batch_max_records <- batch_max_records,
    flush_interval.0 <- flush_interval_ms,
    window_bytes <- window_bytes,
    heartbeat_interval.0 <- heartbeat_interval_ms,
    idle_timeout.0 <- idle_timeout_ms,
    pong_timeout.0 <- pong_timeout_ms,
    ack_timeout.0 <- ack_timeout_ms,
    connect_timeout.0 <- connect_timeout_ms,
    handshake_timeout.0 <- handshake_timeout_ms,
    healthy_after.0 <- healthy_after_ms,
    backoff.base.0 <- backoff_base_ms,
    backoff.cap.0 <- backoff_cap_ms,
    backoff.endpoints <- endpoints,
    backoff.attempts_per_endpoint <- attempts_per_endpoint,
    backoff.give_up_after <- give_up_after,
    backoff.fleet_window.0 <- backoff_fleet_window_ms,
    rng_seed <- rng_seed,
    max_clock_step.0 <- max_clock_step_ms,
    clock_backstep_tolerance.0 <- clock_backstep_tolerance_ms,
}

/// Fields of `FIELDS`.
const N_FIELDS: usize = FIELDS.len();

/// `FIELDS` in the order of `AgentConfig`, each field that follows the one
/// before it in both structs (without a gap) merged into one entry with
/// it: one copy per run instead of one per field. The entries in use, then
/// their number.
const RUNS: ([Carried; N_FIELDS], usize) = runs(FIELDS);

/// Entries of `RUNS` in use.
const N_RUNS: usize = RUNS.1;

/// What `write_core` copies: the runs of `RUNS` (an array of their own
/// length, so that the image holds no unused entries).
const CARRIED: &[Carried] = &{
    let mut c = [Carried { to: 0, from: 0, len: 0 }; N_RUNS];
    let mut i = 0;
    while i < N_RUNS {
        c[i] = RUNS.0[i];
        i += 1;
    }
    c
};

/// `RUNS` of `fields`.
const fn runs(fields: &[Carried]) -> ([Carried; N_FIELDS], usize) {
    let mut f = [Carried { to: 0, from: 0, len: 0 }; N_FIELDS];
    let mut i = 0;
    while i < N_FIELDS {
        f[i] = fields[i];
        i += 1;
    }
    // Sorted by the offset in `AgentConfig` (insertion sort).
    i = 1;
    while i < N_FIELDS {
        let mut j = i;
        while j > 0 && f[j - 1].to > f[j].to {
            let t = f[j - 1];
            f[j - 1] = f[j];
            f[j] = t;
            j -= 1;
        }
        i += 1;
    }
    let mut n = 0;
    i = 0;
    while i < N_FIELDS {
        let next = f[i];
        if n > 0 {
            let last = f[n - 1];
            let (to_end, from_end) = (last.to as usize + last.len as usize, last.from as usize + last.len as usize);
            if to_end == next.to as usize && from_end == next.from as usize && (last.len as usize + next.len as usize) < 256 {
                f[n - 1].len += next.len;
                i += 1;
                continue;
            }
        }
        f[n] = next;
        n += 1;
        i += 1;
    }
    (f, n)
}

/// Never called: names every field of `AgentConfig` (no `..`), so that a
/// field added there fails to compile here until `CARRIED` (or
/// `to_core`'s policy write) covers it; `to_core`'s `assume_init` relies
/// on that. Each `Duration` is a plain count of milliseconds.
#[allow(dead_code)]
fn all_fields_carried(a: AgentConfig) {
    let AgentConfig {
        ring: RingConfig { max_record: _, policy: _ },
        batch_max_bytes: _,
        batch_max_records: _,
        flush_interval: Duration(_),
        window_bytes: _,
        heartbeat_interval: Duration(_),
        idle_timeout: Duration(_),
        pong_timeout: Duration(_),
        ack_timeout: Duration(_),
        connect_timeout: Duration(_),
        handshake_timeout: Duration(_),
        healthy_after: Duration(_),
        backoff: BackoffConfig { base: Duration(_), cap: Duration(_), endpoints: _, attempts_per_endpoint: _, give_up_after: _, fleet_window: Duration(_) },
        rng_seed: _,
        max_clock_step: Duration(_),
        clock_backstep_tolerance: Duration(_),
    } = a;
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
mod carried_tests {
    use super::*;

    /// Every field arrives in its own place: each gets a value no other
    /// field has (the top bytes too, where the type has them), checked
    /// against the conversion written out field by field.
    #[test]
    fn every_field_is_carried_to_its_own_place() {
        let mut n = 0x0102_0304_0506_0700u64;
        let mut next = || {
            n += 0x1111_1111_1111_1111 / 37;
            n
        };
        let c = ea_config {
            max_record: next() as usize,
            overflow_policy: 0,
            batch_max_records: next() as u32,
            batch_max_bytes: next() as usize,
            window_bytes: next() as usize,
            flush_interval_ms: next(),
            heartbeat_interval_ms: next(),
            idle_timeout_ms: next(),
            pong_timeout_ms: next(),
            ack_timeout_ms: next(),
            connect_timeout_ms: next(),
            handshake_timeout_ms: next(),
            healthy_after_ms: next(),
            backoff_base_ms: next(),
            backoff_cap_ms: next(),
            endpoints: next() as u8,
            attempts_per_endpoint: next() as u8,
            give_up_after: next() as u32,
            backoff_fleet_window_ms: next(),
            rng_seed: next(),
            max_clock_step_ms: next(),
            clock_backstep_tolerance_ms: next(),
            lock: None,
            unlock: None,
            lock_userdata: core::ptr::null_mut(),
        };
        let ms = Duration::from_millis;
        let want = AgentConfig {
            ring: RingConfig { max_record: c.max_record, policy: OverflowPolicy::RejectNew },
            batch_max_bytes: c.batch_max_bytes,
            batch_max_records: c.batch_max_records,
            flush_interval: ms(c.flush_interval_ms),
            window_bytes: c.window_bytes,
            heartbeat_interval: ms(c.heartbeat_interval_ms),
            idle_timeout: ms(c.idle_timeout_ms),
            pong_timeout: ms(c.pong_timeout_ms),
            ack_timeout: ms(c.ack_timeout_ms),
            connect_timeout: ms(c.connect_timeout_ms),
            handshake_timeout: ms(c.handshake_timeout_ms),
            healthy_after: ms(c.healthy_after_ms),
            backoff: BackoffConfig {
                base: ms(c.backoff_base_ms),
                cap: ms(c.backoff_cap_ms),
                endpoints: c.endpoints,
                attempts_per_endpoint: c.attempts_per_endpoint,
                give_up_after: c.give_up_after,
                fleet_window: ms(c.backoff_fleet_window_ms),
            },
            rng_seed: c.rng_seed,
            max_clock_step: ms(c.max_clock_step_ms),
            clock_backstep_tolerance: ms(c.clock_backstep_tolerance_ms),
        };
        assert_eq!(c.to_core(), Ok(want));
        // Every byte of `AgentConfig` written: into storage filled with
        // one pattern and then another (every bit pattern is a valid
        // integer, and the policy is written), a field `CARRIED` left out
        // would keep the fill and differ from `want` in one of the two.
        for fill in [0x00u8, 0xff] {
            let mut out = MaybeUninit::<AgentConfig>::uninit();
            // SAFETY: bytes written within the value's own storage.
            unsafe { out.as_mut_ptr().cast::<u8>().write_bytes(fill, core::mem::size_of::<AgentConfig>()) };
            assert_eq!(c.write_core(&mut out).copied(), Ok(want), "storage filled with {fill:#x}");
        }
        assert_eq!(FIELDS.len(), 21, "every field but the policy");
        let bytes = |t: &[Carried]| t.iter().map(|f| f.len as usize).sum::<usize>();
        assert_eq!(bytes(CARRIED), bytes(FIELDS), "the runs cover the fields");
        assert!(CARRIED.len() < FIELDS.len(), "some fields merged");
    }
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
