//! Who this host is, for the Hello: its hostname and its interface
//! addresses, sorted into private and public, IPv4 and IPv6. Read once, when
//! the host layer is created.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The host's addresses, packed as the Hello carries them (4 bytes per IPv4
/// address, 16 per IPv6 address). Loopback addresses are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addresses {
    /// Private IPv4: 10/8, 172.16/12, 192.168/16, 100.64/10 (shared CGN
    /// space) and 169.254/16 (link-local).
    pub private_v4: Vec<u8>,
    /// Private IPv6: fc00::/7 (unique local) and fe80::/10 (link-local).
    pub private_v6: Vec<u8>,
    /// Every other IPv4 address.
    pub public_v4: Vec<u8>,
    /// Every other IPv6 address.
    pub public_v6: Vec<u8>,
}

/// At most this many addresses of each kind are kept (the Hello must stay
/// under `agent_core::agent::MAX_HELLO_FRAME`).
pub const MAX_ADDRESSES_PER_KIND: usize = 16;

/// The host name (`gethostname`), or "" when it cannot be read.
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default()
}

/// Every interface address of the host (`getifaddrs`), sorted by kind,
/// each kind in interface order without duplicates.
pub fn addresses() -> Addresses {
    let mut a = Addresses::default();
    let Ok(ifs) = nix::ifaddrs::getifaddrs() else { return a };
    for ifa in ifs {
        let Some(addr) = ifa.address else { continue };
        if let Some(v4) = addr.as_sockaddr_in() {
            a.add_v4(v4.ip());
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            a.add_v6(v6.ip());
        }
    }
    a
}

impl Addresses {
    /// Files one IPv4 address under its kind (loopback and unspecified skipped).
    pub fn add_v4(&mut self, ip: Ipv4Addr) {
        if ip.is_loopback() || ip.is_unspecified() {
            return;
        }
        let o = ip.octets();
        let private = ip.is_private() || ip.is_link_local() || (o[0] == 100 && (o[1] & 0xC0) == 64);
        add(if private { &mut self.private_v4 } else { &mut self.public_v4 }, &o);
    }

    /// Files one IPv6 address under its kind (loopback and unspecified skipped).
    pub fn add_v6(&mut self, ip: Ipv6Addr) {
        if ip.is_loopback() || ip.is_unspecified() {
            return;
        }
        let s = ip.segments();
        let private = (s[0] & 0xFE00) == 0xFC00 || (s[0] & 0xFFC0) == 0xFE80;
        add(if private { &mut self.private_v6 } else { &mut self.public_v6 }, &ip.octets());
    }
}

fn add(list: &mut Vec<u8>, addr: &[u8]) {
    let n = addr.len();
    if list.len() / n >= MAX_ADDRESSES_PER_KIND || list.chunks(n).any(|c| c == addr) {
        return;
    }
    list.extend_from_slice(addr);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_sorted_by_kind() {
        let mut a = Addresses::default();
        for ip in ["127.0.0.1", "10.1.2.3", "192.168.0.9", "100.64.0.1", "8.8.8.8", "10.1.2.3"] {
            a.add_v4(ip.parse().unwrap());
        }
        for ip in ["::1", "fe80::1", "fd00::2", "2001:db8::5"] {
            a.add_v6(ip.parse().unwrap());
        }
        assert_eq!(a.private_v4, [10, 1, 2, 3, 192, 168, 0, 9, 100, 64, 0, 1]);
        assert_eq!(a.public_v4, [8, 8, 8, 8]);
        assert_eq!(a.private_v6.len(), 32);
        assert_eq!(a.public_v6, "2001:db8::5".parse::<Ipv6Addr>().unwrap().octets());
    }

    #[test]
    fn hostname_matches_the_kernel() {
        let k = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname(), k.trim());
    }
}
