//! The memory the agent borrows (ring, receive buffer, event queue, the
//! identity's strings), allocated once at init and freed when the host is
//! dropped, after the agent.

/// Owns boxed byte buffers handed out as `'static` borrows.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    blocks: Vec<*mut [u8]>,
}

// SAFETY: the blocks are plain bytes, owned here and borrowed only by the
// agent that lives in the same `Engine`; moving them between threads is fine.
unsafe impl Send for Memory {}

impl Memory {
    /// A zeroed buffer of `len` bytes, valid until `self` is dropped.
    pub(crate) fn buffer(&mut self, len: usize) -> &'static mut [u8] {
        self.keep(vec![0u8; len].into_boxed_slice())
    }

    /// A copy of `s`, valid until `self` is dropped.
    pub(crate) fn str(&mut self, s: &str) -> &'static str {
        let b = self.keep(s.as_bytes().to_vec().into_boxed_slice());
        // The bytes were a `str`.
        std::str::from_utf8(b).unwrap_or("")
    }

    /// A copy of `b`, valid until `self` is dropped.
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &'static [u8] {
        self.keep(b.to_vec().into_boxed_slice())
    }

    fn keep(&mut self, b: Box<[u8]>) -> &'static mut [u8] {
        let p = Box::into_raw(b);
        self.blocks.push(p);
        // SAFETY: `p` is a live allocation freed only in `drop`; the one
        // who holds the borrow (the agent) is dropped before `Memory` (field
        // order in `Engine`).
        unsafe { &mut *p }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        for p in self.blocks.drain(..) {
            // SAFETY: each pointer came from `Box::into_raw` and is freed once.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}
