//! `ea_agent`: the opaque storage a C caller declares, and the one path by
//! which every entry point reaches the agent inside it (checks, lock, panic
//! boundary).

use crate::config::LockHooks;
use crate::panic;
use crate::result::{code, ea_result, Res};
use agent_core::time::Tick32;
use agent_core::Agent;
use core::cell::UnsafeCell;
use core::mem::{align_of, size_of};

/// Bytes of an `ea_agent` on 32-bit targets (Cortex-M, RISC-V 32): what
/// the agent needs there, within its 1.5 KiB budget
/// (`ea_agent_storage_size()` says how much of it is used).
#[cfg(target_pointer_width = "32")]
pub const EA_AGENT_STORAGE_SIZE: usize = 1536;
/// Bytes of an `ea_agent` on 64-bit targets.
#[cfg(not(target_pointer_width = "32"))]
pub const EA_AGENT_STORAGE_SIZE: usize = 2048;
/// `EA_AGENT_STORAGE_SIZE` in 8-byte words.
pub const EA_AGENT_STORAGE_WORDS: usize = EA_AGENT_STORAGE_SIZE / 8;
/// Alignment an `ea_agent` needs (that of `uint64_t` on the supported
/// targets; `ea_agent` itself has it).
pub const EA_AGENT_STORAGE_ALIGN: usize = 8;

/// Storage for one agent, in caller memory: declare it static, on the stack
/// or in a pool, pass it to `ea_agent_init`, and to every other `ea_agent_*`
/// call afterwards. Its contents are private. It must not be moved or copied
/// while initialized (the agent keeps no pointer into it, but a copy is not
/// a second agent).
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct ea_agent {
    /// Private.
    pub _opaque: [u64; EA_AGENT_STORAGE_WORDS],
}

/// Written at init, cleared at deinit: tells an initialized handle from
/// zeroed or stale memory.
const MAGIC: u32 = 0xEA_A6_E7_01;

/// What lives in an `ea_agent`. The header is written once at init and only
/// read afterwards (also concurrently, before the lock is taken); the state
/// is touched only under the lock.
#[repr(C)]
pub(crate) struct Inner {
    magic: u32,
    hooks: LockHooks,
    state: UnsafeCell<State>,
}

/// The agent and what the C API keeps beside it.
pub(crate) struct State {
    /// Set when a panic was caught: the agent may be inconsistent.
    poisoned: bool,
    /// Extends `uint32_t` ticks for the `_tick` entry points.
    pub(crate) ticks: Tick32,
    /// The deadline the loop last read (`ea_agent_poll_timeout` /
    /// `_timeout_delay`, `Some(None)` for "never"), for
    /// `ea_agent_wake_needed`; `None` before the first read.
    pub(crate) slept_until: Option<Option<agent_core::Instant>>,
    /// The agent; its buffers and identity are the caller's, valid until
    /// `ea_agent_deinit` by the contract in the header.
    pub(crate) agent: Agent<'static>,
}

// The storage holds the agent on every target we build for (CI builds
// x86_64, thumbv7em-none-eabihf and riscv32imac-unknown-none-elf; the
// header picks the size by UINTPTR_MAX, see cbindgen.toml).
const _: () = assert!(size_of::<Inner>() <= size_of::<ea_agent>(), "EA_AGENT_STORAGE_SIZE too small");
const _: () = assert!(align_of::<Inner>() <= EA_AGENT_STORAGE_ALIGN, "Inner over-aligned");
const _: () = assert!(align_of::<ea_agent>() >= EA_AGENT_STORAGE_ALIGN || cfg!(target_pointer_width = "16"));
const _: () = assert!(size_of::<ea_agent>() == EA_AGENT_STORAGE_SIZE);

/// Checks `ptr` is a usable handle address: non-NULL and aligned.
pub(crate) fn check_addr(ptr: *const ea_agent) -> Res<*mut Inner> {
    if ptr.is_null() {
        return Err(ea_result::EA_NULL_PARAMETER);
    }
    if !(ptr as usize).is_multiple_of(EA_AGENT_STORAGE_ALIGN) {
        return Err(ea_result::EA_STORAGE_MISALIGNED);
    }
    Ok(ptr as *mut Inner)
}

/// True when `p` holds an initialized agent.
///
/// # Safety
/// `p` must be non-NULL, aligned, and point to at least
/// `size_of::<Inner>()` readable bytes.
pub(crate) unsafe fn is_live(p: *const Inner) -> bool {
    // SAFETY: the caller's contract; the magic is only written by init and
    // deinit, which must not run concurrently with other calls.
    unsafe { core::ptr::addr_of!((*p).magic).read() == MAGIC }
}

/// Builds a new agent in the storage at `p`, in place (no copy of the
/// agent on the stack: `ea_agent_init`'s stack stays small); the storage
/// becomes live only when the agent was built. On an error nothing is
/// written.
///
/// # Safety
/// `p` non-NULL, aligned, with `EA_AGENT_STORAGE_SIZE` writable bytes that
/// no other call is using.
pub(crate) unsafe fn install(
    p: *mut Inner,
    hooks: LockHooks,
    cfg: &agent_core::AgentConfig,
    id: &agent_core::Identity<'static>,
    storage: agent_core::AgentStorage<'static>,
) -> Res {
    // SAFETY: the caller's contract; every field is written through raw
    // pointers before anything reads it, and the magic (what makes the
    // storage live) last. `UnsafeCell<State>` has the layout of `State`,
    // and `MaybeUninit<Agent>` that of `Agent`.
    unsafe {
        let state = core::ptr::addr_of_mut!((*p).state).cast::<State>();
        let slot = &mut *core::ptr::addr_of_mut!((*state).agent).cast::<core::mem::MaybeUninit<Agent<'static>>>();
        // First, so that a refused configuration writes nothing at all.
        Agent::new_in_from(slot, cfg, id, storage)?;
        core::ptr::addr_of_mut!((*state).poisoned).write(false);
        core::ptr::addr_of_mut!((*state).ticks).write(Tick32::default());
        core::ptr::addr_of_mut!((*state).slept_until).write(None);
        core::ptr::addr_of_mut!((*p).hooks).write(hooks);
        core::ptr::addr_of_mut!((*p).magic).write(MAGIC);
    }
    Ok(())
}

/// Ends the agent behind `handle` (poisoned or not) under its lock: clears
/// the magic, so the storage and buffers can be reused.
///
/// # Safety
/// As for [`with`], and no other call on this agent may start afterwards.
pub(crate) unsafe fn end(handle: *mut ea_agent) -> Res {
    let p = check_addr(handle)?;
    // SAFETY: non-NULL and aligned; the memory is the caller's.
    if !unsafe { is_live(p) } {
        return Err(ea_result::EA_NOT_INITIALIZED);
    }
    // SAFETY: a live handle: the header is initialized.
    let hooks = unsafe { core::ptr::addr_of!((*p).hooks).read() };
    let _guard = hooks.take();
    // `Agent` owns nothing to drop (it borrows all its memory); clearing the
    // magic is what ends it.
    // SAFETY: the caller's contract; under the agent's lock.
    unsafe { core::ptr::addr_of_mut!((*p).magic).write(0) };
    Ok(())
}

/// Runs `f` on the agent behind `handle`: refuses NULL, misaligned and
/// uninitialized handles and poisoned agents, takes the agent's lock (if it
/// has hooks) for the duration, and turns a panic into `EA_PANICKED`
/// (poisoning the agent). Returns `f`'s result as a C result.
///
/// # Safety
/// `handle` is NULL or points to `EA_AGENT_STORAGE_SIZE` bytes of memory
/// that is an `ea_agent` (initialized or not) for the call's duration.
pub(crate) unsafe fn with(handle: *const ea_agent, f: impl FnOnce(&mut State) -> Res) -> ea_result {
    // SAFETY: forwarded.
    let inner = match unsafe { enter(handle) } {
        Ok(inner) => inner,
        Err(e) => return e,
    };
    // SAFETY: the state is only reached under the lock (or from one thread,
    // by the contract in the header when there are no hooks), so this is
    // the only reference to it.
    let state = unsafe { &mut *inner.state.get() };
    leave(inner, panic::catch(|| f(state)))
}

/// `with`'s end, once for all entry points rather than inlined into each
/// (flash): poisons the agent if the body panicked (`Err(())`), releases
/// the lock `enter` took, and gives the body's result as a C result.
#[inline(never)]
fn leave(inner: &Inner, r: Result<Res, ()>) -> ea_result {
    let _guard = inner.hooks.held();
    match r {
        Ok(r) => code(r),
        Err(()) => {
            // SAFETY: under the lock; the body's borrow of the state ended
            // with the panic.
            unsafe { (*inner.state.get()).poisoned = true };
            ea_result::EA_PANICKED
        }
    }
}

/// `with`'s checks and lock, once for all entry points rather than inlined
/// into each (flash on a microcontroller; a direct call, so the static
/// stack bound follows it): the live header, its lock taken, and the
/// state checked not poisoned (the lock released again if it is). On
/// success the lock stays taken: `leave` releases it with a guard from
/// `LockHooks::held` (returning the guard itself costs more code).
///
/// # Safety
/// As for `with`.
#[inline(never)]
unsafe fn enter<'h>(handle: *const ea_agent) -> Res<&'h Inner> {
    let p = check_addr(handle)?;
    // SAFETY: `p` is non-NULL and aligned; the memory is the caller's.
    if !unsafe { is_live(p) } {
        return Err(ea_result::EA_NOT_INITIALIZED);
    }
    // SAFETY: a live handle: the header is initialized and immutable.
    let inner: &Inner = unsafe { &*p };
    let guard = inner.hooks.take();
    // SAFETY: under the lock; the reference ends here.
    if unsafe { (*inner.state.get()).poisoned } {
        return Err(ea_result::EA_PANICKED);
    }
    core::mem::forget(guard);
    Ok(inner)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::result::ea_result::*;
    use core::ffi::c_void;
    use core::sync::atomic::{AtomicI32, Ordering};
    use std::vec;

    static HELD: AtomicI32 = AtomicI32::new(0);
    unsafe extern "C" fn lock(_: *mut c_void) {
        HELD.fetch_add(1, Ordering::SeqCst);
    }
    unsafe extern "C" fn unlock(_: *mut c_void) {
        HELD.fetch_sub(1, Ordering::SeqCst);
    }

    #[test]
    fn a_panic_is_caught_poisons_the_agent_and_releases_the_lock() {
        let mut agent = std::boxed::Box::new(ea_agent { _opaque: [0; EA_AGENT_STORAGE_WORDS] });
        let (mut ring, mut rx, mut events) = (vec![0u8; 4096], vec![0u8; 1024], vec![0u8; 256]);
        let mut cfg = crate::ea_config_default();
        (cfg.lock, cfg.unlock) = (Some(lock as unsafe extern "C" fn(*mut c_void)), Some(unlock as unsafe extern "C" fn(*mut c_void)));
        // SAFETY: all-zero is a valid ea_identity.
        let id: crate::ea_identity = unsafe { core::mem::zeroed() };
        let a = &mut *agent as *mut ea_agent;
        // SAFETY: every buffer outlives the agent (deinit below).
        unsafe {
            let r = crate::ea_agent_init(a, size_of::<ea_agent>(), &cfg, &id, ring.as_mut_ptr(), ring.len(), rx.as_mut_ptr(), rx.len(), events.as_mut_ptr(), events.len());
            assert_eq!(r, EA_OK);
            let quiet = std::panic::take_hook();
            std::panic::set_hook(std::boxed::Box::new(|_| {}));
            let r = with(a, |_| panic!("a bug"));
            std::panic::set_hook(quiet);
            assert_eq!(r, EA_PANICKED);
            assert_eq!(HELD.load(Ordering::SeqCst), 0, "the lock was released during the unwind");
            assert_eq!(crate::ea_agent_push(a, 0, 2001, 0, core::ptr::null(), 0), EA_PANICKED, "poisoned");
            assert_eq!(crate::ea_agent_handle_timeout(a, 0), EA_PANICKED);
            assert_eq!(HELD.load(Ordering::SeqCst), 0);
            // A poisoned agent can still be ended and its storage reused.
            assert_eq!(crate::ea_agent_deinit(a), EA_OK);
            assert_eq!(HELD.load(Ordering::SeqCst), 0);
            let r = crate::ea_agent_init(a, size_of::<ea_agent>(), &cfg, &id, ring.as_mut_ptr(), ring.len(), rx.as_mut_ptr(), rx.len(), events.as_mut_ptr(), events.len());
            assert_eq!(r, EA_OK);
            assert_eq!(crate::ea_agent_push(a, 0, 2001, 0, core::ptr::null(), 0), EA_OK, "a fresh agent");
            assert_eq!(crate::ea_agent_deinit(a), EA_OK);
        }
    }
}
