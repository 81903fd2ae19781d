//! Opt-in SIGTERM / SIGINT handling: the handler only sets a flag and writes
//! the loop's wake-up fd (both async-signal-safe); the loop then starts the
//! clean stop. One host at a time may own the signals; the previous
//! handlers come back when it stops.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
static REQUESTED: AtomicBool = AtomicBool::new(false);
static PREVIOUS: Mutex<Option<(SigAction, SigAction)>> = Mutex::new(None);

extern "C" fn on_signal(_: nix::libc::c_int) {
    REQUESTED.store(true, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: write(2) is async-signal-safe; the buffer is 8 valid bytes.
        unsafe { nix::libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

/// Installs the handlers, which wake `wake_fd`. False when another host
/// owns them already (or sigaction failed).
pub fn install(wake_fd: RawFd) -> bool {
    let mut prev = PREVIOUS.lock().unwrap_or_else(|p| p.into_inner());
    if prev.is_some() {
        return false;
    }
    REQUESTED.store(false, Ordering::SeqCst);
    WAKE_FD.store(wake_fd, Ordering::SeqCst);
    let act = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handler is async-signal-safe (an atomic store and write(2)).
    let olds = unsafe { (sigaction(Signal::SIGTERM, &act), sigaction(Signal::SIGINT, &act)) };
    match olds {
        (Ok(t), Ok(i)) => {
            *prev = Some((t, i));
            true
        }
        _ => {
            WAKE_FD.store(-1, Ordering::SeqCst);
            false
        }
    }
}

/// True once SIGTERM or SIGINT arrived since [`install`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Puts the previous handlers back (when this process's host installed
/// them). The handler stops writing the fd first, so the fd may be closed
/// afterwards.
pub fn restore(wake_fd: RawFd) {
    let mut prev = PREVIOUS.lock().unwrap_or_else(|p| p.into_inner());
    if WAKE_FD.load(Ordering::SeqCst) != wake_fd {
        return;
    }
    if let Some((t, i)) = prev.take() {
        // SAFETY: restoring the actions sigaction gave us.
        unsafe {
            let _ = sigaction(Signal::SIGTERM, &t);
            let _ = sigaction(Signal::SIGINT, &i);
        }
    }
    WAKE_FD.store(-1, Ordering::SeqCst);
}
