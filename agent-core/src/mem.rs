//! Moving bytes within one buffer, without `memmove`.
//!
//! `slice::copy_within` links compiler-builtins' `memmove`, flash on a
//! Cortex-M4 that most firmware would not otherwise carry (measured in
//! NOTES.md). The byte loop here is slower per byte but only moves bytes
//! still waiting: the decoder's leftovers on resynchronization and after a
//! frame, and the event queue's entries not yet polled, moved to its front
//! before every push (nothing to move when the loop polls events until
//! none are left, as it should). (Ring eviction moves bytes in
//! non-overlapping chunks instead, see `ring.rs`.)

use core::ops::Range;

/// Copies `buf[src]` to `buf[dst..]`, handling overlap like `copy_within`.
/// Out-of-range arguments copy nothing (never panic): the callers compute
/// them from their own invariants.
pub(crate) fn move_within(buf: &mut [u8], src: Range<usize>, dst: usize) {
    let len = src.end.saturating_sub(src.start);
    if src.end > buf.len() || dst.saturating_add(len) > buf.len() {
        debug_assert!(false, "move_within out of range");
        return;
    }
    if dst < src.start {
        for i in 0..len {
            buf[dst + i] = buf[src.start + i];
        }
    } else {
        for i in (0..len).rev() {
            buf[dst + i] = buf[src.start + i];
        }
    }
}

/// A zeroed scratch buffer of `N` bytes on an 8-byte boundary, for
/// encoding a record body before it is pushed.
///
/// The alignment is for flash on 32-bit Arm: the compiler clears a buffer
/// it knows to be 8-aligned with `__aeabi_memclr8`, the helper the agent's
/// construction links anyway; a byte array lands on a 4-byte boundary and
/// links `__aeabi_memclr4`, a second copy of the same loop.
#[repr(C, align(8))]
pub(crate) struct Scratch<const N: usize>(pub(crate) [u8; N]);

impl<const N: usize> Scratch<N> {
    pub(crate) fn zeroed() -> Self {
        Scratch([0; N])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_moves_match_copy_within() {
        for (src, dst) in [(0..5, 2), (2..7, 0), (0..8, 0), (3..3, 1), (1..4, 5)] {
            let mut a: [u8; 8] = core::array::from_fn(|i| i as u8);
            let mut b = a;
            move_within(&mut a, src.clone(), dst);
            b.copy_within(src, dst);
            assert_eq!(a, b);
        }
    }
}
