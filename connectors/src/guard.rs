//! The SSRF guard: which destinations a delivery may reach.
//!
//! A tenant chooses its destination URL, so without a guard a tenant could
//! make the connector call the Lambda's own environment: the instance
//! metadata service, VPC-internal services, localhost. The guard has two
//! rules, both lifted by `ALLOW_PRIVATE_DESTINATIONS=true`:
//!
//! - the URL must be `https`;
//! - every address connected to must be public. An IP literal in the URL is
//!   checked directly; a host name is checked on the addresses DNS returns,
//!   inside the HTTP client's resolver ([`PublicOnlyResolver`]), so the
//!   check applies to the very addresses the connection uses. A name that
//!   resolves to a public address when a URL is checked and to a private
//!   one at connect time (DNS rebinding) is still refused.
//!
//! Redirects are never followed (the client is built without them), and
//! proxies are off, so no other host is ever contacted.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether the guard is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardRules {
    /// Only `https` URLs.
    pub https_only: bool,
    /// Only public addresses.
    pub public_only: bool,
}

impl GuardRules {
    /// Both rules on, or both off when private destinations are allowed.
    pub fn new(allow_private_destinations: bool) -> Self {
        Self {
            https_only: !allow_private_destinations,
            public_only: !allow_private_destinations,
        }
    }
}

/// Why a destination was refused. Never contains the URL: hook URLs often
/// carry tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAllowed {
    /// Not a valid absolute URL with a host.
    #[error("the destination URL is not a valid http(s) URL")]
    InvalidUrl,
    /// `http://` with the guard on, or another scheme.
    #[error("the destination URL must use https")]
    NotHttps,
    /// The URL names, or DNS returned, only non-public addresses.
    #[error("the destination resolves only to non-public addresses")]
    NonPublicAddress,
}

/// Checks a parsed URL's scheme and, for an IP literal, its address. Host
/// names are checked when they are resolved.
pub fn check(url: &Url, rules: GuardRules) -> Result<(), NotAllowed> {
    match url.scheme() {
        "https" => {}
        "http" if !rules.https_only => {}
        "http" => return Err(NotAllowed::NotHttps),
        _ => return Err(NotAllowed::InvalidUrl),
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or(NotAllowed::InvalidUrl)?;
    // The URL parser normalises literals ("2130706433", "0x7f.1" become
    // "127.0.0.1"); the client never resolves them, so check them here.
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(ip) if rules.public_only && !is_public(ip) => Err(NotAllowed::NonPublicAddress),
        _ => Ok(()),
    }
}

/// True for addresses on the public internet; false for loopback, private
/// (RFC 1918, unique local), shared (CGNAT), link-local (which holds the
/// instance metadata service), multicast, documentation, benchmarking,
/// reserved and unspecified ranges, and for IPv6 forms that embed one of
/// those IPv4 addresses (mapped, NAT64, 6to4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = a == 0 // "this network"
        || a == 10 // private
        || a == 127 // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local, metadata at 169.254.169.254
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // private
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224; // multicast, reserved, broadcast
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let blocked = ip.is_unspecified()
        || ip.is_loopback()
        || s[0] & 0xfe00 == 0xfc00 // unique local (AWS metadata fd00:ec2::254)
        || s[0] & 0xffc0 == 0xfe80 // link-local
        || s[0] & 0xffc0 == 0xfec0 // site-local (deprecated)
        || s[0] & 0xff00 == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: tunnels to any IPv4
        || (s[0] == 0x2001 && s[1] & 0xfff0 == 0x0010) // ORCHID
        || (s[0] == 0x2001 && s[1] & 0xfff0 == 0x0020) // ORCHIDv2
        || (s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0) // benchmarking
        || (s[0] == 0x3fff && s[1] & 0xf000 == 0) // documentation (3fff::/20)
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
        || s[0] & 0xe000 != 0x2000; // outside global unicast 2000::/3
    !blocked
}

/// The IPv4 address inside IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), well-known NAT64 (`64:ff9b::a.b.c.d`) and 6to4
/// (`2002:aabb:ccdd::`) addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail()),
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail()),
        [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail()),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Where names are looked up before the filter: the system resolver, and
/// optionally a fixed table consulted first (like `/etc/hosts`; for tests
/// and local set-ups). The table's answers are filtered like any other.
#[derive(Debug, Clone, Default)]
pub struct Hosts(HashMap<String, Vec<IpAddr>>);

impl Hosts {
    /// No fixed entries: every name goes to the system resolver.
    pub fn system() -> Self {
        Self::default()
    }

    /// Adds a fixed answer for `name`.
    pub fn with(mut self, name: &str, addrs: &[IpAddr]) -> Self {
        self.0.insert(name.to_ascii_lowercase(), addrs.to_vec());
        self
    }
}

/// The HTTP client's resolver: looks names up, then drops every non-public
/// address (when the guard is on) and fails when none is left.
#[derive(Debug, Clone)]
pub struct PublicOnlyResolver {
    hosts: Arc<Hosts>,
    public_only: bool,
}

impl PublicOnlyResolver {
    /// A resolver that filters when `public_only`.
    pub fn new(hosts: Hosts, public_only: bool) -> Self {
        Self {
            hosts: Arc::new(hosts),
            public_only,
        }
    }
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let host = name.as_str();
            let found: Vec<SocketAddr> = match this.hosts.0.get(&host.to_ascii_lowercase()) {
                Some(fixed) => fixed.iter().map(|ip| SocketAddr::new(*ip, 0)).collect(),
                None => tokio::net::lookup_host((host, 0)).await?.collect(),
            };
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| !this.public_only || is_public(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(NotAllowed::NonPublicAddress) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn refuses_every_non_public_range() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::1",
            "2002:c0a8:0101::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "2001:10::1",
            "2001:20::1",
            "2001:2::1",
            "3fff::1",
            "100::1",
            "4000::1",
        ] {
            assert!(!public(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn accepts_public_addresses() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "52.94.236.248",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "3ffe:1000::1",
            "3fff:1000::1",
            "2a05:d018::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(public(ip), "{ip} must be allowed");
        }
    }

    fn check_url(url: &str, rules: GuardRules) -> Result<Url, NotAllowed> {
        let url = Url::parse(url).map_err(|_| NotAllowed::InvalidUrl)?;
        check(&url, rules).map(|()| url)
    }

    #[test]
    fn checks_scheme_and_literal_addresses() {
        let on = GuardRules::new(false);
        let off = GuardRules::new(true);
        assert!(check_url("https://hooks.example.com/x?token=1", on).is_ok());
        assert!(check_url("https://8.8.8.8/", on).is_ok());
        assert_eq!(
            check_url("http://hooks.example.com/", on),
            Err(NotAllowed::NotHttps)
        );
        assert!(check_url("http://hooks.example.com/", off).is_ok());
        for private in [
            "https://127.0.0.1/",
            "https://[::1]:8443/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::ffff:10.0.0.1]/",
            "https://2130706433/", // 127.0.0.1 as one decimal number
            "https://0x7f.1/",     // and in hex
        ] {
            assert_eq!(
                check_url(private, on),
                Err(NotAllowed::NonPublicAddress),
                "{private}"
            );
            assert!(check_url(private, off).is_ok(), "{private}");
        }
        for bad in [
            "",
            "hooks.example.com",
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://",
        ] {
            assert!(
                matches!(check_url(bad, off), Err(NotAllowed::InvalidUrl)),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_resolver_drops_non_public_answers() {
        let hosts = Hosts::system()
            .with("rebind.test", &["127.0.0.1".parse().unwrap()])
            .with(
                "mixed.test",
                &["10.0.0.1".parse().unwrap(), "8.8.8.8".parse().unwrap()],
            );
        let guarded = PublicOnlyResolver::new(hosts.clone(), true);
        let err = guarded
            .resolve("rebind.test".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert_eq!(err.to_string(), NotAllowed::NonPublicAddress.to_string());
        let mixed: Vec<_> = guarded
            .resolve("mixed.test".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(mixed, vec!["8.8.8.8:0".parse().unwrap()]);
        // "localhost" goes to the system resolver and is refused too.
        assert!(guarded.resolve("localhost".parse().unwrap()).await.is_err());

        let open = PublicOnlyResolver::new(hosts, false);
        let any: Vec<_> = open
            .resolve("rebind.test".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(any, vec!["127.0.0.1:0".parse().unwrap()]);
    }
}
