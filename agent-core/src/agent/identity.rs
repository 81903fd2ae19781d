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
