//! `ea_identity`: who the agent is, as pointer+length pairs into caller
//! memory that outlives the agent.

use crate::args;
use crate::result::Res;
use agent_core::Identity;

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
        // SAFETY: forwarded contract, field by field.
        unsafe {
            Ok(Identity {
                agent_id: args::str(self.agent_id, self.agent_id_len)?,
                hostname: args::str(self.hostname, self.hostname_len)?,
                product: args::str(self.product, self.product_len)?,
                version: args::str(self.version, self.version_len)?,
                intranet_ipv4: args::bytes(self.intranet_ipv4, self.intranet_ipv4_len)?,
                intranet_ipv6: args::bytes(self.intranet_ipv6, self.intranet_ipv6_len)?,
                extranet_ipv4: args::bytes(self.extranet_ipv4, self.extranet_ipv4_len)?,
                extranet_ipv6: args::bytes(self.extranet_ipv6, self.extranet_ipv6_len)?,
                auth_token: args::bytes(self.auth_token, self.auth_token_len)?,
            })
        }
    }
}
