//! The panic boundary: a panic never unwinds into C.
//!
//! * **std builds** (feature `std`, the default) run every entry point's body
//!   under `catch_unwind`. A caught panic returns `EA_PANICKED` and poisons
//!   the handle: every later call on it returns `EA_PANICKED` too. This needs
//!   a library built with `panic = "unwind"` (the dev profile); a library
//!   built with `panic = "abort"` (the workspace's release profile) aborts
//!   the process at the panic instead, which is equally unable to corrupt
//!   the caller's memory.
//! * **no_std builds** (`--no-default-features`, bare metal) have no
//!   unwinding: the panic handler below traps (`udf` on Arm, `unimp` on
//!   RISC-V: a HardFault / illegal-instruction exception the firmware's
//!   fault handler sees), and spins if the architecture has neither.
//!
//! The agent is written not to panic; the boundary is the seat belt.

/// Runs `f`, turning a panic into `Err(())` (std builds). Without std, a
/// panic never returns here (the handler traps), so this is a plain call.
#[cfg(feature = "std")]
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, ()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| ())
}

/// See the std version.
#[cfg(not(feature = "std"))]
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, ()> {
    Ok(f())
}

/// Runs a body that touches no agent: a panic becomes `EA_PANICKED`.
pub(crate) fn guard(f: impl FnOnce() -> crate::result::Res) -> crate::result::Res {
    catch(f).unwrap_or(Err(crate::result::ea_result::EA_PANICKED))
}

/// The no_std panic handler: traps at once (documented in the header).
#[cfg(all(not(feature = "std"), not(test)))]
#[panic_handler]
fn on_panic(_: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(any(target_arch = "arm", target_arch = "aarch64"))]
    // SAFETY: `udf` only raises the undefined-instruction exception.
    unsafe {
        core::arch::asm!("udf #0", options(noreturn, nomem, nostack));
    }
    #[cfg(any(target_arch = "riscv32", target_arch = "riscv64"))]
    // SAFETY: `unimp` only raises the illegal-instruction exception.
    unsafe {
        core::arch::asm!("unimp", options(noreturn, nomem, nostack));
    }
    #[allow(unreachable_code)]
    loop {
        core::hint::spin_loop();
    }
}
