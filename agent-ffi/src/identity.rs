//! `ea_identity`: who the agent is, as pointer+length pairs into caller
//! memory that outlives the agent.

use crate::args;
use crate::result::Res;
use agent_core::Identity;
use core::mem::MaybeUninit;
use core::mem::{offset_of, size_of};

/// Who the agent is, sent in every Hello. Strings are UTF-8, not
/// NUL-terminated, given as pointer + length; a NULL pointer is allowed with
/// length 0. **Every pointed-to byte must stay valid and unchanged until
/// `ea_agent_deinit`**: the agent keeps the pointers, not copies (string
/// literals and static arrays are the usual choice). The struct itself is
/// copied at init and may be discarded.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct ea_identity {
    /// Stable, unique agent id (e.g. a UUID).
    pub agent_id: *const u8,
    /// Bytes at `agent_id`.
    pub agent_id_len: usize,
    /// Host name.
    pub hostname: *const u8,
    /// Bytes at `hostname`.
    pub hostname_len: usize,
    /// Product name; tasks addressed to it (or to "") are for the agent.
    pub product: *const u8,
    /// Bytes at `product`.
    pub product_len: usize,
    /// Product version.
    pub version: *const u8,
    /// Bytes at `version`.
    pub version_len: usize,
    /// Packed private IPv4 addresses, 4 bytes each.
    pub intranet_ipv4: *const u8,
    /// Bytes at `intranet_ipv4` (a multiple of 4).
    pub intranet_ipv4_len: usize,
    /// Packed private IPv6 addresses, 16 bytes each.
    pub intranet_ipv6: *const u8,
    /// Bytes at `intranet_ipv6` (a multiple of 16).
    pub intranet_ipv6_len: usize,
    /// Packed public IPv4 addresses, 4 bytes each.
    pub extranet_ipv4: *const u8,
    /// Bytes at `extranet_ipv4` (a multiple of 4).
    pub extranet_ipv4_len: usize,
    /// Packed public IPv6 addresses, 16 bytes each.
    pub extranet_ipv6: *const u8,
    /// Bytes at `extranet_ipv6` (a multiple of 16).
    pub extranet_ipv6_len: usize,
    /// Credential for the server (opaque bytes); see also
    /// `ea_agent_set_auth_token`.
    pub auth_token: *const u8,
    /// Bytes at `auth_token`.
    pub auth_token_len: usize,
}

impl ea_identity {
    /// The core's identity, strings checked for UTF-8, written into `out`
    /// (by reference, not a value returned: no copy of it on the stack): the
    /// nine pairs checked and written by one loop over `FIELDS` (flash: a
    /// literal of nine checked fields keeps every value until the last,
    /// spilling most of them on a 32-bit MCU); on `Ok` every field of `out`
    /// is written.
    ///
    /// # Safety
    /// Every non-NULL pointer must satisfy the struct's contract for `'a`.
    pub(crate) unsafe fn write_core<'c, 'a>(&self, out: &'c mut MaybeUninit<Identity<'a>>) -> Res<&'c mut Identity<'a>> {
        let from = (self as *const ea_identity).cast::<u8>();
        let to = out.as_mut_ptr().cast::<u8>();
        // SAFETY: each entry of `FIELDS` is the offset of a pointer field
        // of `ea_identity` followed by its `usize` length, and of an
        // `Identity` field of the kind it names (`identity_fields!` checks
        // both), so every read and write is in bounds, aligned and of its
        // field's type; the assertion after `FIELDS` makes it every field
        // of `Identity`, so `out` is initialized at the end. The
        // pointers are checked (`args`) under the caller's contract.
        unsafe {
            for f in FIELDS {
                let ptr = from.add(f.from as usize).cast::<*const u8>().read();
                let len = from.add(f.from as usize + size_of::<*const u8>()).cast::<usize>().read();
                let at = to.add(f.to as usize);
                if f.text {
                    at.cast::<&'a str>().write(args::str(ptr, len)?);
                } else {
                    at.cast::<&'a [u8]>().write(args::bytes(ptr, len)?);
                }
            }
            Ok(out.assume_init_mut())
        }
    }
}

/// One field of `Identity` and its pair in `ea_identity`: the pair's byte
/// offset (its length follows the pointer), the field's byte offset, and
/// whether it is text (UTF-8, a `&str`) or bytes (a `&[u8]`).
struct Field {
    from: u8,
    to: u8,
    text: bool,
}

/// A `Field`, checked: offsets within a byte, and the length right after
/// the pointer in `ea_identity`.
const fn field(from: usize, len_at: usize, to: usize, text: bool) -> Field {
    assert!(from < 256 && to < 256 && len_at == from + size_of::<*const u8>());
    Field { from: from as u8, to: to as u8, text }
}

/// `FIELDS` from `field <- pointer, length as kind` lines, and a function
/// (never called) that converts each line with its kind's checker into its
/// field, so that each field has the type its kind writes.
macro_rules! identity_fields {
    ($($to:ident <- $ptr:ident, $len:ident as $kind:ident),* $(,)?) => {
        const FIELDS: &[Field] = &[$(
            field(offset_of!(ea_identity, $ptr), offset_of!(ea_identity, $len), offset_of!(Identity<'static>, $to), identity_fields!(@text $kind)),
        )*];

        #[allow(dead_code)]
        fn field_types(c: &ea_identity, o: &mut Identity<'static>) -> Res {
            // SAFETY: never called; it only has to compile.
            unsafe { $(o.$to = identity_fields!(@check $kind)(c.$ptr, c.$len)?;)* }
            Ok(())
        }
    };
    (@text text) => { true };
    (@text bytes) => { false };
    (@check text) => { args::str };
    (@check bytes) => { args::bytes };
}

identity_fields! {
    agent_id <- agent_id, agent_id_len as text,
    hostname <- hostname, hostname_len as text,
    product <- product, product_len as text,
    version <- version, version_len as text,
    intranet_ipv4 <- intranet_ipv4, intranet_ipv4_len as bytes,
    intranet_ipv6 <- intranet_ipv6, intranet_ipv6_len as bytes,
    extranet_ipv4 <- extranet_ipv4, extranet_ipv4_len as bytes,
    extranet_ipv6 <- extranet_ipv6, extranet_ipv6_len as bytes,
    auth_token <- auth_token, auth_token_len as bytes,
}

/// True when no two entries of `FIELDS` write the same field.
const fn distinct(f: &[Field]) -> bool {
    let mut i = 0;
    while i < f.len() {
        let mut j = i + 1;
        while j < f.len() {
            if f[i].to == f[j].to {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

// Every field of `Identity`, each written once: the entries write
// distinct fields, each a slice reference (`field_types`), and together
// they fill the struct's size exactly (every field of `Identity` is a
// slice reference, so a field left out would leave bytes over). This is
// what makes `write_core`'s `assume_init_mut` sound; `all_fields_written`
// makes a new field a compile error here as well.
const _: () = assert!(distinct(FIELDS) && FIELDS.len() * size_of::<&[u8]>() == size_of::<Identity<'static>>());

/// Never called: names every field of `Identity` (no `..`), so that a field
/// added there fails to compile here until `write_core` writes it.
#[allow(dead_code)]
fn all_fields_written(id: Identity<'_>) {
    let Identity { agent_id: _, hostname: _, product: _, version: _, intranet_ipv4: _, intranet_ipv6: _, extranet_ipv4: _, extranet_ipv6: _, auth_token: _ } = id;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each pair lands in its own field, with its own kind.
    #[test]
    fn every_pair_lands_in_its_own_field() {
        let names: [&[u8]; 9] = [b"id", b"host", b"prod", b"1.0", &[10, 0, 0, 1], &[0xfe; 16], &[1, 2, 3, 4], &[0x20; 16], b"token"];
        let p = |i: usize| (names[i].as_ptr(), names[i].len());
        let c = ea_identity {
            agent_id: p(0).0,
            agent_id_len: p(0).1,
            hostname: p(1).0,
            hostname_len: p(1).1,
            product: p(2).0,
            product_len: p(2).1,
            version: p(3).0,
            version_len: p(3).1,
            intranet_ipv4: p(4).0,
            intranet_ipv4_len: p(4).1,
            intranet_ipv6: p(5).0,
            intranet_ipv6_len: p(5).1,
            extranet_ipv4: p(6).0,
            extranet_ipv4_len: p(6).1,
            extranet_ipv6: p(7).0,
            extranet_ipv6_len: p(7).1,
            auth_token: p(8).0,
            auth_token_len: p(8).1,
        };
        let mut out = MaybeUninit::uninit();
        // SAFETY: every pointer is to a static array of its length.
        let id = unsafe { c.write_core(&mut out) }.unwrap();
        let got: [&[u8]; 9] = [
            id.agent_id.as_bytes(),
            id.hostname.as_bytes(),
            id.product.as_bytes(),
            id.version.as_bytes(),
            id.intranet_ipv4,
            id.intranet_ipv6,
            id.extranet_ipv4,
            id.extranet_ipv6,
            id.auth_token,
        ];
        assert_eq!(got, names);
        let bad = ea_identity { hostname: b"\xff".as_ptr(), hostname_len: 1, ..c };
        // SAFETY: as above.
        assert_eq!(unsafe { bad.write_core(&mut MaybeUninit::uninit()) }.map(|_| ()), Err(crate::result::ea_result::EA_INVALID_UTF8));
        let null = ea_identity { auth_token: core::ptr::null(), ..c };
        // SAFETY: as above; NULL with a length is refused, not read.
        assert_eq!(unsafe { null.write_core(&mut MaybeUninit::uninit()) }.map(|_| ()), Err(crate::result::ea_result::EA_NULL_PARAMETER));
    }
}
