//! Checked conversions of C arguments: pointer+length pairs into slices and
//! strings, and small integers into core enums. Nothing here dereferences a
//! NULL pointer.

use crate::result::{ea_result, Res};
use agent_core::text::is_utf8;

/// The bytes `ptr[0..len]`. NULL is accepted only with `len == 0`.
///
/// # Safety
/// Unless NULL, `ptr` must point to `len` readable bytes that stay valid and
/// unmodified for `'a`.
#[inline(never)] // one copy for every argument: flash
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Res<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(ea_result::EA_NULL_PARAMETER);
    }
    if len > isize::MAX as usize {
        return Err(ea_result::EA_INVALID_ARGUMENT);
    }
    // SAFETY: non-NULL, length bounded, validity is the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// The writable bytes `ptr[0..len]`. NULL is accepted only with `len == 0`.
///
/// # Safety
/// Unless NULL, `ptr` must point to `len` writable bytes, valid and not
/// accessed by anyone else for `'a`.
#[inline(never)] // one copy for every argument: flash
pub(crate) unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize) -> Res<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(ea_result::EA_NULL_PARAMETER);
    }
    if len > isize::MAX as usize {
        return Err(ea_result::EA_INVALID_ARGUMENT);
    }
    // SAFETY: as in `bytes`.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// The UTF-8 string `ptr[0..len]` (not NUL-terminated), checked by
/// agent-core's [`is_utf8`] (the rules of `core::str::from_utf8`, whose
/// code and table a firmware image then does not link); `EA_INVALID_UTF8`
/// if it is not UTF-8.
///
/// # Safety
/// As for [`bytes`].
#[inline(never)] // one copy for every argument: flash
pub(crate) unsafe fn str<'a>(ptr: *const u8, len: usize) -> Res<&'a str> {
    // SAFETY: forwarded contract.
    let b = unsafe { bytes(ptr, len) }?;
    if !is_utf8(b) {
        return Err(ea_result::EA_INVALID_UTF8);
    }
    // SAFETY: `is_utf8` accepts exactly what `core::str::from_utf8` accepts
    // (agent-core's `tests/text_props.rs` compares the two exhaustively on
    // short inputs and at random on long ones), so `b` is UTF-8.
    Ok(unsafe { core::str::from_utf8_unchecked(b) })
}

/// `&*ptr`, or `EA_NULL_PARAMETER`.
///
/// # Safety
/// Unless NULL, `ptr` must point to a valid, aligned `T` for `'a`.
pub(crate) unsafe fn read<'a, T>(ptr: *const T) -> Res<&'a T> {
    // SAFETY: the caller's contract; NULL is refused by `as_ref`.
    unsafe { ptr.as_ref() }.ok_or(ea_result::EA_NULL_PARAMETER)
}

/// Writes `value` to `*out` (only called on success).
///
/// # Safety
/// `out` must be non-NULL (checked by the caller before any work), aligned
/// and writable.
pub(crate) unsafe fn write<T>(out: *mut T, value: T) {
    // SAFETY: the caller's contract. `write` does not drop the old value,
    // which may be uninitialized C memory.
    unsafe { out.write(value) }
}

/// Refuses a NULL output pointer before any work is done.
/// Zeroes `*out` in place (one `memset`, no value built aside and copied):
/// for the output structs whose all-zero value is their empty value.
pub(crate) unsafe fn zero<T>(out: *mut T) {
    // SAFETY: the caller's contract (`out` valid for writes).
    unsafe { out.write_bytes(0, 1) }
}

pub(crate) fn out<T>(ptr: *mut T) -> Res<*mut T> {
    if ptr.is_null() {
        Err(ea_result::EA_NULL_PARAMETER)
    } else {
        Ok(ptr)
    }
}
