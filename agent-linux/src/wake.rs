//! The wake-up fd: an `eventfd` the loop watches beside the socket, written
//! by a push from another thread (only when the push moves the deadline the
//! loop sleeps on), by a stop request and by the signal handler.

use nix::sys::eventfd::{EfdFlags, EventFd};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// A non-blocking, close-on-exec eventfd.
#[derive(Debug)]
pub struct Wake(EventFd);

impl Wake {
    /// A fresh eventfd.
    pub fn new() -> nix::Result<Self> {
        EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).map(Wake)
    }

    /// Makes the fd readable (a full counter already is: the error is moot).
    pub fn wake(&self) {
        let _ = self.0.write(1);
    }

    /// Makes the fd quiet again; true when it had been woken.
    pub fn drain(&self) -> bool {
        self.0.read().is_ok()
    }

    /// The fd, for the loop's epoll set.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// The raw fd (for the signal handler).
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
