//! Small AEABI memory helpers for bare-metal Arm builds (flash).
//!
//! LLVM lowers copies and clears of 4- and 8-byte aligned values to
//! `__aeabi_memcpy4` / `__aeabi_memcpy8` and `__aeabi_memclr4` /
//! `__aeabi_memclr8`. compiler_builtins (shipped in the same archive)
//! defines them weak, each as a loop of its own: 156 + 156 + 174 + 174 B
//! in a C image that has no libc. The ones here are strong, so the linker
//! takes them instead: the copies forward to `__aeabi_memcpy` (compiler_builtins'
//! `memcpy`, which the image links anyway), the clears are one word loop.
//! The AEABI allows exactly that (the aligned forms are entry points for
//! speed, not different semantics). newlib's `libc.a` defines the same names
//! for its `memcpy` / `memset`; those archive members are simply not linked
//! once these are defined. A firmware *object* (not an archive member) that
//! defines one of the four names itself gets a duplicate-definition error
//! at link time: it should drop its own. Measured in NOTES.md ("Firmware
//! flash and the C image's stack bound").
//!
//! Only with `--no-default-features` (no `std`) on 32-bit Arm, and not in
//! unit tests.

extern "C" {
    fn __aeabi_memcpy(dest: *mut u8, src: *const u8, n: usize);
}

/// `memcpy` for a 4-byte aligned `dest` and `src`.
///
/// # Safety
/// As `memcpy`: `n` bytes readable at `src`, writable at `dest`, no overlap.
#[no_mangle]
pub unsafe extern "C" fn __aeabi_memcpy4(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's contract, forwarded.
    unsafe { __aeabi_memcpy(dest, src, n) }
}

/// `memcpy` for an 8-byte aligned `dest` and `src`.
///
/// # Safety
/// As `__aeabi_memcpy4`.
#[no_mangle]
pub unsafe extern "C" fn __aeabi_memcpy8(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's contract, forwarded.
    unsafe { __aeabi_memcpy(dest, src, n) }
}

/// Zeroes `n` bytes at a 4-byte aligned `dest`.
///
/// # Safety
/// `dest` 4-byte aligned and `n` bytes writable there.
#[no_mangle]
pub unsafe extern "C" fn __aeabi_memclr4(dest: *mut u8, n: usize) {
    // SAFETY: the caller's contract.
    unsafe { clear_aligned(dest, n) }
}

/// Zeroes `n` bytes at an 8-byte aligned `dest`.
///
/// # Safety
/// `dest` 8-byte aligned and `n` bytes writable there.
#[no_mangle]
pub unsafe extern "C" fn __aeabi_memclr8(dest: *mut u8, n: usize) {
    // SAFETY: the caller's contract (8-aligned is 4-aligned).
    unsafe { clear_aligned(dest, n) }
}

/// Words, then the last bytes. Volatile stores: LLVM would otherwise see a
/// `memset` in the loop and turn it into a call to the very function being
/// defined.
#[inline(always)]
unsafe fn clear_aligned(dest: *mut u8, n: usize) {
    let words = n / 4;
    let mut i = 0;
    while i < words {
        // SAFETY: `dest` is 4-aligned, `4 * i + 4 <= n`.
        unsafe { dest.cast::<u32>().add(i).write_volatile(0) };
        i += 1;
    }
    let mut j = words * 4;
    while j < n {
        // SAFETY: `j < n`.
        unsafe { dest.add(j).write_volatile(0) };
        j += 1;
    }
}
