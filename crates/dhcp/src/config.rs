//! The lease engine's configuration: what libvirt's `<ip>`/`<dhcp>` elements say (ranges with
//! `<lease expiry unit>`, `<host mac name ip>`) plus the options the server hands out.
//!
//! Defaults follow what libvirt gets from dnsmasq: a one-hour lease, router and DNS server = the
//! bridge address, authoritative. Validation refuses what dnsmasq would refuse or misbehave on
//! (a range outside the subnet, overlapping ranges, a reservation on the server's own address).

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

/// A 48-bit Ethernet hardware address (the only `htype` a libvirt bridge carries).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = ConfigError;

    /// `52:54:00:77:00:21` (also `-` as separator; case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::BadMac(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// How long a lease lasts: libvirt's `<lease expiry='N' unit='seconds|minutes|hours'/>`, where
/// `expiry='0'` means infinite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseTime {
    /// A lease that expires (at least 1 s; the wire carries whole seconds up to 2^32-2).
    Finite(Duration),
    /// Never expires (option 51 = 0xffffffff, RFC 2132 §9.2).
    Infinite,
}

impl LeaseTime {
    /// The value of option 51 (RFC 2132 §9.2): seconds, 0xffffffff for infinity.
    pub fn wire_secs(self) -> u32 {
        match self {
            LeaseTime::Infinite => u32::MAX,
            // 0xffffffff is reserved for infinity, so a finite lease tops out one below it.
            LeaseTime::Finite(d) => u32::try_from(d.as_secs())
                .unwrap_or(u32::MAX - 1)
                .clamp(1, u32::MAX - 1),
        }
    }
}

/// One `<range start end>` with its optional `<lease>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    /// `None`: the network's default lease time.
    pub lease: Option<LeaseTime>,
}

impl Range {
    pub fn new(start: Ipv4Addr, end: Ipv4Addr) -> Self {
        Range {
            start,
            end,
            lease: None,
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }

    /// Number of addresses in the range (inclusive).
    pub fn len(&self) -> u32 {
        u32::from(self.end)
            .saturating_sub(u32::from(self.start))
            .saturating_add(1)
    }

    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }
}

/// One `<host mac name ip>` reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticHost {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// The host's DNS name; it wins over the name the client sends.
    pub name: Option<String>,
    /// `None`: the network's default lease time.
    pub lease: Option<LeaseTime>,
}

/// Everything one network's DHCP server needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The server's own address on the bridge: server identifier (option 54).
    pub server: Ipv4Addr,
    /// Prefix length of the subnet the server address is in (libvirt `prefix`/`netmask`).
    pub prefix_len: u8,
    pub ranges: Vec<Range>,
    pub hosts: Vec<StaticHost>,
    /// Lease time where neither range nor host says (libvirt/dnsmasq default: 1 hour).
    pub default_lease: LeaseTime,
    /// Option 3; libvirt networks route through the bridge address.
    pub router: Option<Ipv4Addr>,
    /// Option 6; libvirt's dnsmasq answers DNS on the bridge address.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 15 (libvirt `<domain name>`).
    pub domain: Option<String>,
    /// Option 26 (libvirt `<mtu size>`); not sent when `None`.
    pub mtu: Option<u16>,
    /// NAK requests for addresses we have no record of (dnsmasq `--dhcp-authoritative`, which
    /// libvirt always passes).
    pub authoritative: bool,
    /// How long an offered address is held for the client before others may get it.
    pub offer_hold: Duration,
    /// How long an address a client DECLINEd stays unusable (dnsmasq's DECLINE_BACKOFF: 10 min).
    pub decline_hold: Duration,
}

impl Config {
    /// libvirt's defaults for a network whose bridge holds `server/prefix_len`: router and DNS
    /// server are the bridge address, one-hour leases, authoritative; no ranges, no hosts.
    pub fn new(server: Ipv4Addr, prefix_len: u8) -> Self {
        Config {
            server,
            prefix_len,
            ranges: Vec::new(),
            hosts: Vec::new(),
            default_lease: LeaseTime::Finite(Duration::from_secs(3600)),
            router: Some(server),
            dns_servers: vec![server],
            domain: None,
            mtu: None,
            authoritative: true,
            // A choice RFC 2131 §4.3.1 leaves open ("the server SHOULD reserve..."): 30 s covers
            // a slow guest's SELECTING; dnsmasq holds nothing, ISC dhcpd holds for its own timer.
            offer_hold: Duration::from_secs(30),
            decline_hold: Duration::from_secs(600),
        }
    }

    /// The subnet mask as a number.
    pub fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len.min(32)))
        }
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.server) & self.mask())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.server) | !self.mask())
    }

    /// Whether `ip` is on this network's subnet (network and broadcast addresses included).
    pub fn in_subnet(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.server) & self.mask()
    }

    /// Refuse configurations that can't work, with a message naming the culprit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.prefix_len > 30 || self.prefix_len < 8 {
            // /31 and /32 leave no host address to lease; shorter than /8 is no bridge subnet.
            return Err(ConfigError::BadPrefix(self.prefix_len));
        }
        let reserved = |ip: Ipv4Addr| ip == self.network() || ip == self.broadcast();
        if reserved(self.server) {
            return Err(ConfigError::BadServer(self.server));
        }
        for (i, r) in self.ranges.iter().enumerate() {
            if r.is_empty() || !self.in_subnet(r.start) || !self.in_subnet(r.end) {
                return Err(ConfigError::RangeOutsideSubnet {
                    start: r.start,
                    end: r.end,
                });
            }
            check_lease(r.lease)?;
            for other in &self.ranges[..i] {
                if r.start <= other.end && other.start <= r.end {
                    return Err(ConfigError::RangesOverlap {
                        a: (other.start, other.end),
                        b: (r.start, r.end),
                    });
                }
            }
        }
        let mut macs = HashSet::new();
        let mut ips = HashSet::new();
        for h in &self.hosts {
            if !self.in_subnet(h.ip) || reserved(h.ip) || h.ip == self.server {
                return Err(ConfigError::HostAddress {
                    mac: h.mac,
                    ip: h.ip,
                });
            }
            if !macs.insert(h.mac) {
                return Err(ConfigError::DuplicateHostMac(h.mac));
            }
            if !ips.insert(h.ip) {
                return Err(ConfigError::DuplicateHostIp(h.ip));
            }
            check_lease(h.lease)?;
            if let Some(n) = &h.name {
                // One token of printable ASCII: it goes into DNS and the leases file's columns.
                if n.is_empty() || n.len() > 253 || n.bytes().any(|b| b <= b' ' || b > b'~') {
                    return Err(ConfigError::BadHostName(n.clone()));
                }
            }
        }
        check_lease(Some(self.default_lease))?;
        // Bounded so `Instant + hold` cannot overflow; a day is already far beyond any use.
        const DAY: Duration = Duration::from_secs(86_400);
        if self.offer_hold > DAY || self.decline_hold > DAY {
            return Err(ConfigError::HoldTooLong);
        }
        if let Some(d) = &self.domain {
            if d.is_empty() || d.len() > 253 || d.bytes().any(|b| b <= b' ' || b > b'~') {
                return Err(ConfigError::BadDomain(d.clone()));
            }
        }
        if let Some(mtu) = self.mtu {
            // RFC 2132 §5.1: the minimum legal MTU is 68.
            if mtu < 68 {
                return Err(ConfigError::BadMtu(mtu));
            }
        }
        Ok(())
    }
}

fn check_lease(l: Option<LeaseTime>) -> Result<(), ConfigError> {
    match l {
        Some(LeaseTime::Finite(d)) if d.as_secs() == 0 => Err(ConfigError::ZeroLease),
        _ => Ok(()),
    }
}

/// What a configuration can be refused for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("prefix length /{0} is not usable for a DHCP subnet (8..=30)")]
    BadPrefix(u8),
    #[error("server address {0} is the subnet's network or broadcast address")]
    BadServer(Ipv4Addr),
    #[error("DHCP range {start}-{end} is empty or outside the subnet")]
    RangeOutsideSubnet { start: Ipv4Addr, end: Ipv4Addr },
    #[error("DHCP ranges {}-{} and {}-{} overlap", a.0, a.1, b.0, b.1)]
    RangesOverlap {
        a: (Ipv4Addr, Ipv4Addr),
        b: (Ipv4Addr, Ipv4Addr),
    },
    #[error("DHCP host {mac}: address {ip} is outside the subnet or is the server/network/broadcast address")]
    HostAddress { mac: MacAddr, ip: Ipv4Addr },
    #[error("DHCP host MAC {0} appears twice")]
    DuplicateHostMac(MacAddr),
    #[error("DHCP host address {0} is reserved twice")]
    DuplicateHostIp(Ipv4Addr),
    #[error("DHCP host name {0:?} is not a printable DNS name")]
    BadHostName(String),
    #[error("offer and decline hold times are limited to one day")]
    HoldTooLong,
    #[error("a finite lease time must be at least one second")]
    ZeroLease,
    #[error("domain name {0:?} is not a printable DNS name")]
    BadDomain(String),
    #[error("MTU {0} is below the minimum of 68 (RFC 2132 §5.1)")]
    BadMtu(u16),
    #[error("{0:?} is not a MAC address (expected six hex bytes separated by ':')")]
    BadMac(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn libvirt_default() -> Config {
        let mut c = Config::new(ip("192.168.122.1"), 24);
        c.ranges
            .push(Range::new(ip("192.168.122.2"), ip("192.168.122.254")));
        c.hosts.push(StaticHost {
            mac: "52:54:00:77:00:21".parse().unwrap(),
            ip: ip("192.168.122.50"),
            name: Some("fixed".into()),
            lease: None,
        });
        c
    }

    #[test]
    fn libvirt_default_network_is_valid() {
        let c = libvirt_default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.netmask(), ip("255.255.255.0"));
        assert_eq!(c.network(), ip("192.168.122.0"));
        assert_eq!(c.broadcast(), ip("192.168.122.255"));
        assert_eq!(c.ranges[0].len(), 253);
        assert_eq!(
            c.default_lease,
            LeaseTime::Finite(Duration::from_secs(3600))
        );
    }

    #[test]
    fn refuses_bad_configs() {
        let mut c = libvirt_default();
        c.ranges
            .push(Range::new(ip("192.168.123.2"), ip("192.168.123.9")));
        assert!(matches!(
            c.validate(),
            Err(ConfigError::RangeOutsideSubnet { .. })
        ));

        let mut c = libvirt_default();
        c.ranges
            .push(Range::new(ip("192.168.122.200"), ip("192.168.122.210")));
        assert!(matches!(
            c.validate(),
            Err(ConfigError::RangesOverlap { .. })
        ));

        let mut c = libvirt_default();
        c.ranges[0] = Range::new(ip("192.168.122.9"), ip("192.168.122.2"));
        assert!(matches!(
            c.validate(),
            Err(ConfigError::RangeOutsideSubnet { .. })
        ));

        let mut c = libvirt_default();
        c.hosts[0].ip = ip("192.168.122.1");
        assert!(matches!(c.validate(), Err(ConfigError::HostAddress { .. })));

        let mut c = libvirt_default();
        let mut dup = c.hosts[0].clone();
        dup.ip = ip("192.168.122.51");
        c.hosts.push(dup);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::DuplicateHostMac(_))
        ));

        let mut c = libvirt_default();
        c.prefix_len = 31;
        assert_eq!(c.validate(), Err(ConfigError::BadPrefix(31)));

        let mut c = libvirt_default();
        c.hosts[0].name = Some("two words".into());
        assert!(matches!(c.validate(), Err(ConfigError::BadHostName(_))));

        let mut c = libvirt_default();
        c.mtu = Some(67);
        assert_eq!(c.validate(), Err(ConfigError::BadMtu(67)));

        let mut c = libvirt_default();
        c.decline_hold = Duration::from_secs(86_401);
        assert_eq!(c.validate(), Err(ConfigError::HoldTooLong));

        let mut c = libvirt_default();
        c.default_lease = LeaseTime::Finite(Duration::ZERO);
        assert_eq!(c.validate(), Err(ConfigError::ZeroLease));
    }

    #[test]
    fn mac_parse_and_display() {
        let m: MacAddr = "52:54:00:77:00:2F".parse().unwrap();
        assert_eq!(m.0, [0x52, 0x54, 0, 0x77, 0, 0x2f]);
        assert_eq!(m.to_string(), "52:54:00:77:00:2f");
        for bad in [
            "",
            "52:54:00:77:00",
            "52:54:00:77:00:21:22",
            "5254:00:77:00:21:2",
            "zz:54:00:77:00:21",
            "123:54:00:77:00:21",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lease_time_on_the_wire() {
        assert_eq!(LeaseTime::Infinite.wire_secs(), u32::MAX);
        assert_eq!(
            LeaseTime::Finite(Duration::from_secs(3600)).wire_secs(),
            3600
        );
        assert_eq!(
            LeaseTime::Finite(Duration::from_secs(u64::from(u32::MAX))).wire_secs(),
            u32::MAX - 1
        );
    }
}
