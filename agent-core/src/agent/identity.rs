//! Who the agent is: the identity it sends in Hello.

/// Who the agent is, as sent in Hello. Borrowed for the agent's lifetime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity<'a> {
    /// Stable, unique agent id.
    pub agent_id: &'a str,
    /// Host name.
    pub hostname: &'a str,
    /// Product name; tasks addressed to it (or to "") are for the agent.
    pub product: &'a str,
    /// Product version.
    pub version: &'a str,
    /// Packed private IPv4 addresses (4 bytes each).
    pub intranet_ipv4: &'a [u8],
    /// Packed private IPv6 addresses (16 bytes each).
    pub intranet_ipv6: &'a [u8],
    /// Packed public IPv4 addresses.
    pub extranet_ipv4: &'a [u8],
    /// Packed public IPv6 addresses.
    pub extranet_ipv6: &'a [u8],
    /// Credential for the server.
    pub auth_token: &'a [u8],
}

impl<'a> Identity<'a> {
    /// Makes `self` a copy of `from`, field by field. Not `*self = *from`:
    /// copied as one 72-B block, the identity links `__aeabi_memcpy4` on
    /// 32-bit Arm, a runtime helper of its own that nothing else in a
    /// firmware image needs; field by field it is a few loads and stores.
    #[inline(never)]
    pub(crate) fn copy_from(&mut self, from: &Identity<'a>) {
        self.agent_id = from.agent_id;
        self.hostname = from.hostname;
        self.product = from.product;
        self.version = from.version;
        self.intranet_ipv4 = from.intranet_ipv4;
        self.intranet_ipv6 = from.intranet_ipv6;
        self.extranet_ipv4 = from.extranet_ipv4;
        self.extranet_ipv6 = from.extranet_ipv6;
        self.auth_token = from.auth_token;
    }
}
