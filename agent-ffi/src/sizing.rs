//! Versions and sizing queries: what a C caller checks and computes before
//! `ea_agent_init`.

use crate::args;
use crate::config::ea_config;
use crate::handle;
use crate::identity::ea_identity;
use crate::result::{code, ea_result};
use agent_core::agent::StorageSizes;
use core::ffi::c_char;
use core::mem::MaybeUninit;

/// The ABI version of this header and library. Bumped whenever a function
/// signature, a struct layout or an enum number changes incompatibly;
/// compare it with `ea_abi_version()` at run time.
pub const EA_ABI_VERSION: u32 = 3;

/// Smallest event queue `ea_agent_init` accepts, bytes. A queue this small
/// holds connection events only; tasks and configs need room for their
/// payloads (a few hundred bytes is typical).
pub const EA_MIN_EVENT_QUEUE: usize = 24;
const _: () = assert!(EA_MIN_EVENT_QUEUE == agent_core::events::MIN_EVENT_QUEUE);

/// The library's version, e.g. "0.1.0" (static, NUL-terminated).
#[no_mangle]
pub extern "C" fn ea_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The library's `EA_ABI_VERSION`: refuse to run if it differs from the
/// header's.
#[no_mangle]
pub extern "C" fn ea_abi_version() -> u32 {
    EA_ABI_VERSION
}

/// Bytes the agent needs in its storage (`<= sizeof(ea_agent)`), for
/// callers that carve storage out of a pool.
#[no_mangle]
pub extern "C" fn ea_agent_storage_size() -> usize {
    core::mem::size_of::<handle::Inner>()
}

/// Alignment the agent's storage needs (`EA_AGENT_STORAGE_ALIGN`).
#[no_mangle]
pub extern "C" fn ea_agent_storage_align() -> usize {
    handle::EA_AGENT_STORAGE_ALIGN
}

/// Checks `config` and `identity` as `ea_agent_init` would, for a ring of
/// `ring_len`, a receive buffer of `rx_len` and an event queue of
/// `events_len` bytes, without creating anything: `EA_OK` or the result
/// init would return.
///
/// Pointers: `config` and `identity` point to readable structs, the
/// identity's bytes valid during the call (NULL: `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_config_validate(
    config: *const ea_config,
    identity: *const ea_identity,
    ring_len: usize,
    rx_len: usize,
    events_len: usize,
) -> ea_result {
    let r = crate::panic::guard(|| {
        let mut core_id = MaybeUninit::uninit();
        // SAFETY: the caller's contract.
        let (cfg, id) = unsafe { (args::read(config)?, args::read(identity)?.write_core(&mut core_id)?) };
        let sizes = StorageSizes { ring: ring_len, rx: rx_len, events: events_len };
        Ok(agent_core::agent::validate(cfg.write_core(&mut MaybeUninit::uninit())?, id, sizes)?)
    });
    code(r)
}

/// Writes to `*len` the smallest transmit buffer `ea_agent_poll_transmit`
/// accepts for this config and identity: every frame (a full batch, the
/// Hello) fits it.
///
/// Pointers: `config` and `identity` point to readable structs, the
/// identity's bytes valid during the call; `len` to a writable `size_t`
/// (NULL: `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_min_transmit_len(config: *const ea_config, identity: *const ea_identity, len: *mut usize) -> ea_result {
    let r = crate::panic::guard(|| {
        let out = args::out(len)?;
        let mut core_id = MaybeUninit::uninit();
        // SAFETY: the caller's contract.
        let (cfg, id) = unsafe { (args::read(config)?, args::read(identity)?.write_core(&mut core_id)?) };
        let n = agent_core::agent::min_transmit_len(cfg.write_core(&mut MaybeUninit::uninit())?, id);
        // SAFETY: checked non-NULL.
        unsafe { args::write(out, n) };
        Ok(())
    });
    code(r)
}
