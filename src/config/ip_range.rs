//! CIDR ranges for `federation.ip_range_denylist`, the guard that keeps the server from
//! being used to reach addresses inside its own network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 or IPv6 network such as `10.0.0.0/8` or `fc00::/7`; a bare address is a
/// network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Whether `ip` is inside this range. An IPv6 address that carries an IPv4 address
    /// (see [`embedded_ipv4`]) also counts as that IPv4 address, so a v4 range catches
    /// `::ffff:127.0.0.1`, `64:ff9b::a00:1` and `2002:c0a8:101::` too.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V4(net), IpAddr::V6(ip)) => embedded_ipv4(ip)
                .is_some_and(|ip| prefix_eq(&net.octets(), &ip.octets(), self.prefix)),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

/// The IPv4 address an IPv6 address stands for, when it is one of the forms that carry
/// one in a fixed place: IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`, the
/// deprecated form; not `::` and `::1`), NAT64's well-known prefix (`64:ff9b::/96`,
/// RFC 6052) and 6to4 (`2002::/16`, RFC 3056, the address in bits 16 to 47). A
/// connection to one of them may reach that IPv4 address (through the host's own
/// stack, a NAT64 gateway or a 6to4 relay), so it is judged as that address.
/// NAT64's local-use prefix (`64:ff9b:1::/48`, RFC 8215) puts the address wherever
/// the network's operator chose, so it is denied as a whole instead (see the default
/// list).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let s = ip.segments();
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(last),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last),
        [0x2002, _, _, _, _, _, _, _] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

/// Why a range did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP range like 10.0.0.0/8 or fc00::/7")]
pub struct IpRangeError(String);

impl FromStr for IpRange {
    type Err = IpRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || IpRangeError(text.to_owned());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| err())?
            }
            Some(_) => return Err(err()),
        };
        if prefix > max {
            return Err(err());
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for IpRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> IpRange {
    IpRange {
        network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        prefix,
    }
}

const fn v6(segments: [u16; 8], prefix: u8) -> IpRange {
    let [a, b, c, d, e, f, g, h] = segments;
    IpRange {
        network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
        prefix,
    }
}

/// Synapse's default `ip_range_blacklist`, plus the unspecified addresses: every range
/// that is not a public unicast address somebody else's server could live at.
pub fn default_ip_range_denylist() -> Vec<IpRange> {
    vec![
        v4(0, 0, 0, 0, 8),       // "this network", includes the unspecified 0.0.0.0
        v4(10, 0, 0, 0, 8),      // private
        v4(100, 64, 0, 0, 10),   // carrier-grade NAT
        v4(127, 0, 0, 0, 8),     // loopback
        v4(169, 254, 0, 0, 16),  // link-local
        v4(172, 16, 0, 0, 12),   // private
        v4(192, 0, 0, 0, 24),    // IETF protocol assignments
        v4(192, 0, 2, 0, 24),    // documentation
        v4(192, 88, 99, 0, 24),  // 6to4 relay anycast (deprecated)
        v4(192, 168, 0, 0, 16),  // private
        v4(198, 18, 0, 0, 15),   // benchmarking
        v4(198, 51, 100, 0, 24), // documentation
        v4(203, 0, 113, 0, 24),  // documentation
        v4(224, 0, 0, 0, 4),     // multicast
        v4(240, 0, 0, 0, 4),     // reserved and broadcast
        v6([0, 0, 0, 0, 0, 0, 0, 0], 128), // unspecified
        v6([0, 0, 0, 0, 0, 0, 0, 1], 128), // loopback
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), // link-local
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), // unique local
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
        v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), // multicast
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), // site-local (deprecated)
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // NAT64 local use (RFC 8215)
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> IpRange {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_print() {
        assert_eq!(range("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(range("fc00::/7").to_string(), "fc00::/7");
        assert_eq!(range("192.0.2.1").to_string(), "192.0.2.1/32");
        assert_eq!(range("::1").to_string(), "::1/128");
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0/8",
            "example.org",
            "",
        ] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn membership_follows_the_prefix() {
        let r = range("172.16.0.0/12");
        assert!(r.contains(ip("172.16.0.1")));
        assert!(r.contains(ip("172.31.255.255")));
        assert!(!r.contains(ip("172.32.0.0")));
        assert!(!r.contains(ip("172.15.255.255")));
        assert!(!r.contains(ip("::1")));
        let r = range("100.64.0.0/10");
        assert!(r.contains(ip("100.127.1.1")));
        assert!(!r.contains(ip("100.128.0.0")));
        let r = range("0.0.0.0/0");
        assert!(r.contains(ip("8.8.8.8")));
        let r = range("fc00::/7");
        assert!(r.contains(ip("fd12:3456::1")));
        assert!(!r.contains(ip("fe00::1")));
        assert!(range("203.0.113.7").contains(ip("203.0.113.7")));
        assert!(!range("203.0.113.7").contains(ip("203.0.113.8")));
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_ranges() {
        let r = range("127.0.0.0/8");
        assert!(r.contains(ip("::ffff:127.0.0.1")));
        assert!(!r.contains(ip("::ffff:8.8.8.8")));
        // An IPv6 range still judges the address as written.
        assert!(range("::ffff:0:0/96").contains(ip("::ffff:8.8.8.8")));
    }

    #[test]
    fn embedded_ipv4_addresses_are_judged_as_the_address_they_carry() {
        let v4 = |text: &str| Some(text.parse::<Ipv4Addr>().unwrap());
        let embedded = |text: &str| embedded_ipv4(text.parse().unwrap());
        assert_eq!(embedded("::ffff:10.0.0.1"), v4("10.0.0.1"));
        assert_eq!(embedded("::10.0.0.1"), v4("10.0.0.1"));
        assert_eq!(embedded("64:ff9b::10.0.0.1"), v4("10.0.0.1"));
        assert_eq!(embedded("64:ff9b::a9fe:a9fe"), v4("169.254.169.254"));
        assert_eq!(embedded("2002:c0a8:0101::"), v4("192.168.1.1"));
        assert_eq!(embedded("2002:7f00:1:1234:5678::9"), v4("127.0.0.1"));
        for none in [
            "::",
            "::1",
            "2606:4700:4700::1111",
            "64:ff9b:1::a00:1",
            "fe80::1",
        ] {
            assert_eq!(embedded(none), None, "{none}");
        }
        let r = range("10.0.0.0/8");
        assert!(r.contains(ip("64:ff9b::10.1.2.3")));
        assert!(r.contains(ip("2002:0a01:0203::1")));
        assert!(r.contains(ip("::10.1.2.3")));
        assert!(!r.contains(ip("64:ff9b::8.8.8.8")));
        assert!(!r.contains(ip("2002:0808:0808::1")));
    }

    #[test]
    fn the_default_denylist_covers_internal_addresses_only() {
        let list = default_ip_range_denylist();
        let denied = |text: &str| list.iter().any(|r| r.contains(ip(text)));
        for internal in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.100",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b::192.168.0.1",
            "64:ff9b::169.254.169.254",
            "2002:7f00:1::",
            "2002:0a00:0001::1",
            "2002:c0a8:0101:1::1",
            "2002:a9fe:a9fe::",
            "64:ff9b:1::a00:1",
            "64:ff9b:1:ffff::8.8.8.8",
            "192.88.99.1",
        ] {
            assert!(denied(internal), "{internal} should be denied");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "64:ff9b::1.1.1.1",
            "2002:0808:0808::1",
        ] {
            assert!(!denied(public), "{public} should be allowed");
        }
    }
}
