//! `ea_identity`: who the agent is, as pointer+length pairs into caller
//! memory that outlives the agent.

use crate::args;
use crate::result::Res;
use agent_core::Identity;
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

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
    /// The core's identity, strings checked for UTF-8.
    ///
    /// # Safety
    /// Every non-NULL pointer must satisfy the struct's contract for `'a`.
    // By reference, though `Copy`: by value it is a 72-B copy (flash).
    #[allow(clippy::wrong_self_convention)]
    pub(crate) unsafe fn to_core<'a>(&self) -> Res<Identity<'a>> {
        let mut id = MaybeUninit::uninit();
        // SAFETY: forwarded contract.
        Ok(*unsafe { self.write_core(&mut id) }?)
    }

    /// `to_core` into `out`, each field written as soon as it is checked
    /// (flash: one struct literal of nine checked fields keeps every
    /// checked value until the last, spilling most of them on a 32-bit
    /// MCU, and is then copied); on `Ok` every field of `out` is written.
    ///
    /// # Safety
    /// As for `to_core`.
    pub(crate) unsafe fn write_core<'c, 'a>(&self, out: &'c mut MaybeUninit<Identity<'a>>) -> Res<&'c mut Identity<'a>> {
        let o = out.as_mut_ptr();
        // SAFETY: forwarded contract, field by field; each write goes to a
        // field of `out` (no reference to the uninitialized value), and the
        // pattern in `all_fields_written` names every field of `Identity`,
        // so all nine are written before `assume_init_mut`.
        unsafe {
            addr_of_mut!((*o).agent_id).write(args::str(self.agent_id, self.agent_id_len)?);
            addr_of_mut!((*o).hostname).write(args::str(self.hostname, self.hostname_len)?);
            addr_of_mut!((*o).product).write(args::str(self.product, self.product_len)?);
            addr_of_mut!((*o).version).write(args::str(self.version, self.version_len)?);
            addr_of_mut!((*o).intranet_ipv4).write(args::bytes(self.intranet_ipv4, self.intranet_ipv4_len)?);
            addr_of_mut!((*o).intranet_ipv6).write(args::bytes(self.intranet_ipv6, self.intranet_ipv6_len)?);
            addr_of_mut!((*o).extranet_ipv4).write(args::bytes(self.extranet_ipv4, self.extranet_ipv4_len)?);
            addr_of_mut!((*o).extranet_ipv6).write(args::bytes(self.extranet_ipv6, self.extranet_ipv6_len)?);
            addr_of_mut!((*o).auth_token).write(args::bytes(self.auth_token, self.auth_token_len)?);
            Ok(out.assume_init_mut())
        }
    }
}

/// Never called: names every field of `Identity` (no `..`), so that a field
/// added there fails to compile here until `write_core` writes it.
#[allow(dead_code)]
fn all_fields_written(id: Identity<'_>) {
    let Identity { agent_id: _, hostname: _, product: _, version: _, intranet_ipv4: _, intranet_ipv6: _, extranet_ipv4: _, extranet_ipv6: _, auth_token: _ } = id;
}
