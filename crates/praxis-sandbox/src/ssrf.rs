//! The address guard of the `http` tool: which resolved addresses a request may connect to.
//! Only globally routable unicast addresses pass; IPv4 embedded in IPv6 (mapped,
//! compatible, NAT64, 6to4) is judged as the IPv4 address it carries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    Loopback,
    Private,
    LinkLocal,
    SharedAddressSpace,
    Multicast,
    Broadcast,
    Unspecified,
    Reserved,
    UniqueLocal,
}

impl Blocked {
    pub fn describe(self) -> &'static str {
        match self {
            Blocked::Loopback => "a loopback address",
            Blocked::Private => "a private-network address",
            Blocked::LinkLocal => {
                "a link-local address (this range holds cloud metadata endpoints)"
            }
            Blocked::SharedAddressSpace => "a carrier-grade NAT (100.64.0.0/10) address",
            Blocked::Multicast => "a multicast address",
            Blocked::Broadcast => "the broadcast address",
            Blocked::Unspecified => "the unspecified address",
            Blocked::Reserved => "a reserved or documentation address",
            Blocked::UniqueLocal => "an IPv6 unique-local (private) address",
        }
    }
}

/// Refuses every address that is not public unicast.
pub fn check_ip(ip: IpAddr) -> Result<(), Blocked> {
    match ip {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

fn check_v4(ip: Ipv4Addr) -> Result<(), Blocked> {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        return Err(Blocked::Unspecified);
    }
    if ip.is_loopback() {
        return Err(Blocked::Loopback);
    }
    if ip.is_private() {
        return Err(Blocked::Private);
    }
    if ip.is_link_local() {
        return Err(Blocked::LinkLocal);
    }
    if a == 100 && (b & 0xc0) == 64 {
        return Err(Blocked::SharedAddressSpace);
    }
    if ip.is_broadcast() {
        return Err(Blocked::Broadcast);
    }
    if ip.is_multicast() {
        return Err(Blocked::Multicast);
    }
    let reserved = a >= 240 // 240.0.0.0/4
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || (a == 192 && b == 88 && c == 99); // 6to4 relay anycast
    if reserved {
        return Err(Blocked::Reserved);
    }
    Ok(())
}

fn check_v6(ip: Ipv6Addr) -> Result<(), Blocked> {
    if ip.is_unspecified() {
        return Err(Blocked::Unspecified);
    }
    if ip.is_loopback() {
        return Err(Blocked::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return check_v4(v4);
    }
    let seg = ip.segments();
    if seg[0] & 0xfe00 == 0xfc00 {
        return Err(Blocked::UniqueLocal);
    }
    if seg[0] & 0xffc0 == 0xfe80 || seg[0] & 0xffc0 == 0xfec0 {
        // fe80::/10 link-local; fec0::/10 the deprecated site-local.
        return Err(Blocked::LinkLocal);
    }
    if seg[0] & 0xff00 == 0xff00 {
        return Err(Blocked::Multicast);
    }
    let reserved = (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x0100 && seg[1] == 0 && seg[2] == 0 && seg[3] == 0) // discard
        || (seg[0] == 0x2001 && seg[1] == 0) // Teredo: tunnels to arbitrary IPv4
        || (seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 0x0001) // local-use NAT64
        || seg[0] & 0xe000 != 0x2000; // outside 2000::/3, the global unicast space
    if reserved {
        return Err(Blocked::Reserved);
    }
    Ok(())
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let tail = || {
        Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        )
    };
    if seg[..5] == [0, 0, 0, 0, 0] && (seg[5] == 0xffff || seg[5] == 0) {
        return Some(tail());
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail());
    }
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        ));
    }
    None
}

/// The guard's settings. Only loopback may be opened, only for exact `ip:port` pairs, and
/// only by an operator or a test; the default opens nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AddressGuard {
    /// Loopback socket addresses allowed anyway (local tests). Anything else in this list
    /// is ignored: private, link-local and metadata addresses cannot be opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_loopback: Vec<SocketAddr>,
}

impl AddressGuard {
    /// Checks one resolved address; the message names the host, the address and why.
    pub fn check(&self, host: &str, addr: SocketAddr) -> Result<(), String> {
        match check_ip(addr.ip()) {
            Ok(()) => Ok(()),
            Err(Blocked::Loopback) if self.allow_loopback.contains(&addr) => Ok(()),
            Err(why) => Err(format!(
                "refused: `{host}` resolves to {}, {}; requests to non-public addresses are \
                 blocked",
                addr.ip(),
                why.describe()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(s: &str) -> Option<Blocked> {
        check_ip(s.parse().unwrap()).err()
    }

    #[test]
    fn ipv4_ranges() {
        assert_eq!(blocked("127.0.0.1"), Some(Blocked::Loopback));
        assert_eq!(blocked("127.255.0.9"), Some(Blocked::Loopback));
        assert_eq!(blocked("10.1.2.3"), Some(Blocked::Private));
        assert_eq!(blocked("172.16.0.1"), Some(Blocked::Private));
        assert_eq!(blocked("172.31.255.255"), Some(Blocked::Private));
        assert_eq!(blocked("172.32.0.1"), None);
        assert_eq!(blocked("192.168.1.1"), Some(Blocked::Private));
        assert_eq!(blocked("169.254.169.254"), Some(Blocked::LinkLocal));
        assert_eq!(blocked("100.64.0.1"), Some(Blocked::SharedAddressSpace));
        assert_eq!(
            blocked("100.127.255.255"),
            Some(Blocked::SharedAddressSpace)
        );
        assert_eq!(blocked("100.128.0.1"), None);
        assert_eq!(blocked("224.0.0.1"), Some(Blocked::Multicast));
        assert_eq!(blocked("255.255.255.255"), Some(Blocked::Broadcast));
        assert_eq!(blocked("0.0.0.0"), Some(Blocked::Unspecified));
        assert_eq!(blocked("0.1.2.3"), Some(Blocked::Unspecified));
        assert_eq!(blocked("192.0.2.10"), Some(Blocked::Reserved));
        assert_eq!(blocked("240.0.0.1"), Some(Blocked::Reserved));
        assert_eq!(blocked("93.184.216.34"), None);
        assert_eq!(blocked("8.8.8.8"), None);
    }

    #[test]
    fn ipv6_ranges_and_embedded_ipv4() {
        assert_eq!(blocked("::1"), Some(Blocked::Loopback));
        assert_eq!(blocked("::"), Some(Blocked::Unspecified));
        assert_eq!(blocked("fc00::1"), Some(Blocked::UniqueLocal));
        assert_eq!(blocked("fd12:3456::1"), Some(Blocked::UniqueLocal));
        assert_eq!(blocked("fe80::1"), Some(Blocked::LinkLocal));
        assert_eq!(blocked("ff02::1"), Some(Blocked::Multicast));
        assert_eq!(blocked("::ffff:127.0.0.1"), Some(Blocked::Loopback));
        assert_eq!(blocked("::ffff:169.254.169.254"), Some(Blocked::LinkLocal));
        assert_eq!(blocked("::ffff:10.0.0.1"), Some(Blocked::Private));
        assert_eq!(blocked("64:ff9b::a9fe:a9fe"), Some(Blocked::LinkLocal));
        assert_eq!(blocked("64:ff9b::7f00:1"), Some(Blocked::Loopback));
        assert_eq!(blocked("2002:7f00:0001::1"), Some(Blocked::Loopback));
        assert_eq!(blocked("2001:db8::1"), Some(Blocked::Reserved));
        assert_eq!(blocked("::ffff:8.8.8.8"), None);
        assert_eq!(blocked("64:ff9b::808:808"), None);
        assert_eq!(blocked("2606:4700:4700::1111"), None);
    }

    #[test]
    fn guard_opens_only_listed_loopback_pairs() {
        let open: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let guard = AddressGuard {
            allow_loopback: vec![open, "169.254.169.254:80".parse().unwrap()],
        };
        assert!(guard.check("h", open).is_ok());
        assert!(guard.check("h", "127.0.0.1:8081".parse().unwrap()).is_err());
        let err = guard
            .check("metadata", "169.254.169.254:80".parse().unwrap())
            .unwrap_err();
        assert!(err.contains("link-local"), "{err}");
        assert!(err.contains("`metadata`"), "{err}");
        assert!(
            AddressGuard::default()
                .check("h", open)
                .unwrap_err()
                .contains("loopback")
        );
    }
}
