//! The typed ruleset: what virtgate wants from the firewall, one [`Part`] per feature.
//!
//! A part says what it needs in words of its own configuration (a PPTP address pool, a tun
//! device, an uplink; a libvirt network's bridge, subnet and forward mode); [`crate::render`]
//! turns all parts into the rules of virtgate's single table. A new feature is a new `Part`
//! variant plus one function in `render.rs` that lists its sets and rules — the table, the base
//! chains, the atomic replace and the coexistence check stay as they are.

use std::net::Ipv4Addr;

use crate::error::FirewallError;

/// The table virtgate owns when nothing else is configured: `table inet virtgate`.
pub const DEFAULT_TABLE: &str = "virtgate";

/// Everything virtgate's table holds: the table's name and the parts, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// Name of the `inet` table (see [`DEFAULT_TABLE`]).
    pub table: String,
    /// The features whose rules the table holds.
    pub parts: Vec<Part>,
}

impl Ruleset {
    /// A ruleset for `table inet virtgate`.
    pub fn new(parts: Vec<Part>) -> Ruleset {
        Ruleset {
            table: DEFAULT_TABLE.to_string(),
            parts,
        }
    }

    /// Checks every name and value that goes into the script, so a rendered script only ever
    /// fails in the kernel, never because of what a config file said.
    pub fn validate(&self) -> Result<(), FirewallError> {
        validate_table(&self.table)?;
        for part in &self.parts {
            part.validate()?;
        }
        Ok(())
    }
}

/// One feature's needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The PPTP server (the seed's iptables lines): accept TCP 1723 and GRE to the server,
    /// forward between the client pool on `tun` and `uplink` (new flows out, replies in),
    /// masquerade the pool toward `uplink`, clamp the MSS of clients' SYNs to `mss`.
    Pptp {
        /// The address the server listens on (pptpd's `listen`); `None`: any address.
        listen: Option<Ipv4Addr>,
        /// The client addresses (pptpd's `remoteip`), in any order; rendered as a compact
        /// interval set.
        pool: Vec<Ipv4Addr>,
        /// The interface client packets come from (virtgate's TUN).
        tun: String,
        /// The interface toward the rest of the world (see [`crate::uplink`]).
        uplink: String,
        /// The largest TCP MSS a client's SYN may announce (the seed: 1356).
        mss: u16,
    },
    /// A libvirt virtual network (issue 4) with the rules libvirt's nftables backend gives it
    /// (`src/network/network_nftables.c`): guests on `bridge` reach each other; forwarding
    /// in and out of the bridge as `forward` says, everything else into or out of the bridge
    /// rejected; for NAT, masquerade toward the outside. DHCP and DNS to the host are accepted
    /// in input. No rule matches traffic that does not enter or leave `bridge`.
    Network {
        /// libvirt's `<name>`; only used in rule comments (see [`validate_network_name`]).
        name: String,
        /// `<bridge name>`: the bridge the guests' taps are plugged into.
        bridge: String,
        /// `<ip address>`: the bridge's own address (192.168.122.1) or any other address of the
        /// network; rules use the network address (192.168.122.0/24).
        subnet: Ipv4Addr,
        /// `<ip prefix>` (or the netmask as a prefix length), 1-32.
        prefix: u8,
        /// `<forward mode>`, or [`NetForward::Isolated`] without `<forward>`.
        forward: NetForward,
    },
}

/// How a [`Part::Network`] reaches beyond its bridge (libvirt's `<forward mode>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetForward {
    /// `mode='nat'`: guests' traffic leaves masqueraded (or SNATed to `addresses`); from
    /// outside only replies come in.
    Nat {
        /// `<forward dev=>`: the only interface guests' traffic may leave through; `None`: any.
        uplink: Option<String>,
        /// `<nat><port start end>`: the source ports TCP and UDP are mapped to; `None`:
        /// libvirt's default 1024-65535 (never a privileged port, which NFS servers trust).
        ports: Option<(u16, u16)>,
        /// `<nat><address start end>`: SNAT to these addresses (first, last) instead of
        /// masquerading to the uplink's address.
        addresses: Option<(Ipv4Addr, Ipv4Addr)>,
    },
    /// `mode='route'`: forwarded both ways without NAT (the outside needs a route back).
    Route {
        /// `<forward dev=>`, as for NAT.
        uplink: Option<String>,
    },
    /// `mode='open'`: libvirt adds no firewall rules at all, and neither do we.
    Open,
    /// No `<forward>`: guests reach the host (DHCP, DNS) and each other, nothing beyond.
    Isolated,
}

impl NetForward {
    /// libvirt's word for the mode (`isolated` for a network without `<forward>`).
    pub fn mode(&self) -> &'static str {
        match self {
            NetForward::Nat { .. } => "nat",
            NetForward::Route { .. } => "route",
            NetForward::Open => "open",
            NetForward::Isolated => "isolated",
        }
    }

    /// The `<forward dev=>` interface, when the mode has one.
    pub fn uplink(&self) -> Option<&str> {
        match self {
            NetForward::Nat { uplink, .. } | NetForward::Route { uplink } => uplink.as_deref(),
            NetForward::Open | NetForward::Isolated => None,
        }
    }
}

/// libvirt's NAT source ports when `<nat><port>` is absent.
pub const DEFAULT_NAT_PORTS: (u16, u16) = (1024, 65535);

impl Part {
    /// A short name for messages and rule comments.
    pub fn kind(&self) -> &'static str {
        match self {
            Part::Pptp { .. } => "pptp",
            Part::Network { .. } => "network",
        }
    }

    fn validate(&self) -> Result<(), FirewallError> {
        match self {
            Part::Pptp {
                pool,
                tun,
                uplink,
                mss,
                ..
            } => {
                validate_ifname(tun)?;
                validate_ifname(uplink)?;
                if pool.is_empty() {
                    return Err(FirewallError::EmptyPool { part: "pptp" });
                }
                // RFC 1122 §3.3.3 / RFC 879: 536 is the smallest MSS every IPv4 host must
                // accept; 65495 is what the loopback MTU (65535) allows.
                if !(536..=65495).contains(mss) {
                    return Err(FirewallError::InvalidMss(*mss));
                }
                Ok(())
            }
            Part::Network {
                name,
                bridge,
                prefix,
                forward,
                ..
            } => {
                validate_network_name(name)?;
                validate_ifname(bridge)?;
                if !(1..=32).contains(prefix) {
                    return Err(FirewallError::InvalidPrefix {
                        network: name.clone(),
                        prefix: *prefix,
                    });
                }
                if let Some(uplink) = forward.uplink() {
                    validate_ifname(uplink)?;
                }
                if let NetForward::Nat {
                    ports, addresses, ..
                } = forward
                {
                    // libvirt itself wants start < end; a single port is a valid nft mapping and
                    // virtgate-config accepts it, so only order and port 0 are refused here.
                    if let Some((first, last)) = *ports {
                        if first == 0 || first > last {
                            return Err(FirewallError::InvalidPortRange {
                                network: name.clone(),
                                first,
                                last,
                            });
                        }
                    }
                    if let Some((first, last)) = *addresses {
                        if first > last {
                            return Err(FirewallError::InvalidAddressRange {
                                network: name.clone(),
                                first,
                                last,
                            });
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// The network address of `addr/prefix` (host bits cleared); `prefix` above 32 counts as 32.
pub fn network_address(addr: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(u32::from(addr) & mask)
}

/// Longest network name, as virtgate-config allows (libvirt sets no limit).
pub const MAX_NETWORK_NAME: usize = 64;

/// libvirt network names as virtgate-config accepts them: 1 to 64 characters, letters (any
/// script), digits and `-_.+:@`, not starting with `-` or `.`. The name only reaches rule
/// comments, so this also keeps quotes, backslashes and control characters out of the script.
pub fn validate_network_name(name: &str) -> Result<(), FirewallError> {
    let bad = |reason| {
        Err(FirewallError::InvalidNetworkName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.chars().count() > MAX_NETWORK_NAME {
        return bad("longer than 64 characters");
    }
    if name.starts_with('-') || name.starts_with('.') {
        return bad("starts with '-' or '.'");
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | ':' | '@'))
    {
        return bad("only letters, digits and - _ . + : @");
    }
    Ok(())
}

/// Linux interface names: 1 to 15 bytes (IFNAMSIZ 16 with the NUL), no '/', ':' or
/// whitespace (`dev_valid_name`). We also refuse '"' and '\\' (they would end or escape the nft
/// string) and '*' (nft reads it as a wildcard), and everything outside printable ASCII.
pub fn validate_ifname(name: &str) -> Result<(), FirewallError> {
    let bad = |reason| {
        Err(FirewallError::InvalidInterface {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 15 {
        return bad("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("not a device name");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b':' | b'"' | b'\\' | b'*'))
    {
        return bad("only printable ASCII without / : \" \\ * or spaces");
    }
    Ok(())
}

/// nft identifiers: a letter, then letters, digits and '_' (we allow no more than that).
pub fn validate_table(name: &str) -> Result<(), FirewallError> {
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(FirewallError::InvalidTable(name.to_string()))
    }
}

/// An inclusive range of IPv4 addresses (`first == last` for a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl std::fmt::Display for AddrRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Sorts and de-duplicates `pool` and merges consecutive addresses into ranges:
/// `.100 .101 .102 .105` becomes `[.100-.102, .105]`. Works for any list, however unordered.
pub fn compact_pool(pool: &[Ipv4Addr]) -> Vec<AddrRange> {
    let mut addrs: Vec<u32> = pool.iter().map(|a| u32::from(*a)).collect();
    addrs.sort_unstable();
    addrs.dedup();
    let mut out: Vec<AddrRange> = Vec::new();
    for a in addrs {
        match out.last_mut() {
            Some(r) if u32::from(r.last).checked_add(1) == Some(a) => r.last = Ipv4Addr::from(a),
            _ => out.push(AddrRange {
                first: Ipv4Addr::from(a),
                last: Ipv4Addr::from(a),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn show(pool: &[Ipv4Addr]) -> String {
        compact_pool(pool)
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[test]
    fn pool_range_becomes_one_interval() {
        let pool: Vec<Ipv4Addr> = (100..=200).map(|i| Ipv4Addr::new(192, 168, 0, i)).collect();
        assert_eq!(show(&pool), "192.168.0.100-192.168.0.200");
    }

    #[test]
    fn pool_list_unordered_with_duplicates() {
        let pool = [
            a("10.0.0.7"),
            a("10.0.0.1"),
            a("10.0.0.5"),
            a("10.0.0.6"),
            a("10.0.0.5"),
            a("10.0.0.9"),
        ];
        assert_eq!(show(&pool), "10.0.0.1, 10.0.0.5-10.0.0.7, 10.0.0.9");
    }

    #[test]
    fn pool_ranges_across_octets_and_the_top_address() {
        let pool = [
            a("10.0.0.255"),
            a("10.0.1.0"),
            a("255.255.255.254"),
            a("255.255.255.255"),
            a("0.0.0.0"),
        ];
        assert_eq!(
            show(&pool),
            "0.0.0.0, 10.0.0.255-10.0.1.0, 255.255.255.254-255.255.255.255"
        );
        assert_eq!(show(&[]), "");
    }

    #[test]
    fn interface_names() {
        for ok in [
            "eth0",
            "ppp+x",
            "vgt-tun.1",
            "a",
            "enp0s31f6",
            "123456789012345",
        ] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1234567890123456",
            "eth 0",
            "eth0\"; flush ruleset",
            "a/b",
            "a:b",
            "ppp*",
            "..",
            "é",
            "x\n",
        ] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn table_names() {
        assert!(validate_table("virtgate").is_ok());
        assert!(validate_table("vg_test2").is_ok());
        for bad in ["", "2vg", "vg-x", "vg x", "vg;"] {
            assert!(validate_table(bad).is_err(), "{bad:?}");
        }
    }

    fn pptp(pool: Vec<Ipv4Addr>, uplink: &str, mss: u16) -> Ruleset {
        Ruleset::new(vec![Part::Pptp {
            listen: None,
            pool,
            tun: "vgt0".into(),
            uplink: uplink.into(),
            mss,
        }])
    }

    #[test]
    fn pptp_part_checks() {
        assert!(pptp(vec![a("192.168.0.100")], "eth0", 1356)
            .validate()
            .is_ok());
        let e = pptp(vec![], "eth0", 1356)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty address pool"), "{e}");
        let e = pptp(vec![a("192.168.0.100")], "eth0", 100)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("MSS 100"), "{e}");
        let e = pptp(vec![a("192.168.0.100")], "eth0\" accept", 1356)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid interface name"), "{e}");
        let mut bad_table = pptp(vec![a("192.168.0.100")], "eth0", 1356);
        bad_table.table = "x y".into();
        assert!(bad_table.validate().is_err());
    }

    fn network(name: &str, bridge: &str, prefix: u8, forward: NetForward) -> Ruleset {
        Ruleset::new(vec![Part::Network {
            name: name.into(),
            bridge: bridge.into(),
            subnet: a("192.168.122.1"),
            prefix,
            forward,
        }])
    }

    fn nat(
        uplink: Option<&str>,
        ports: Option<(u16, u16)>,
        addresses: Option<(&str, &str)>,
    ) -> NetForward {
        NetForward::Nat {
            uplink: uplink.map(str::to_string),
            ports,
            addresses: addresses.map(|(f, l)| (a(f), a(l))),
        }
    }

    #[test]
    fn network_names() {
        for ok in [
            "default",
            "net-1_a.b+c:d@e",
            "réseau",
            "сеть",
            "9lives",
            &"n".repeat(64),
        ] {
            assert!(validate_network_name(ok).is_ok(), "{ok}");
            assert!(network(ok, "virbr0", 24, NetForward::Isolated)
                .validate()
                .is_ok());
        }
        for bad in [
            "",
            &"n".repeat(65),
            "-net",
            ".net",
            "my net",
            "a\"b",
            "a\\b",
            "a/b",
            "a\nb",
            "a*",
        ] {
            let e = network(bad, "virbr0", 24, NetForward::Isolated)
                .validate()
                .unwrap_err();
            assert!(
                matches!(e, FirewallError::InvalidNetworkName { .. }),
                "{bad:?}: {e}"
            );
        }
        let e = validate_network_name("my net").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid network name \"my net\" for the firewall: only letters, digits and - _ . + : @"
        );
    }

    #[test]
    fn network_prefix_bridge_and_uplink() {
        for ok in [1, 8, 24, 31, 32] {
            assert!(network("n", "virbr0", ok, NetForward::Isolated)
                .validate()
                .is_ok());
        }
        for bad in [0, 33, 255] {
            let e = network("n", "virbr0", bad, NetForward::Isolated)
                .validate()
                .unwrap_err();
            assert!(
                matches!(e, FirewallError::InvalidPrefix { prefix, .. } if prefix == bad),
                "{e}"
            );
        }
        assert_eq!(
            network("n", "virbr0", 40, NetForward::Open)
                .validate()
                .unwrap_err()
                .to_string(),
            "network \"n\": prefix length /40 out of range (1-32)"
        );
        let e = network("n", "vir br0", 24, NetForward::Open).validate();
        assert!(matches!(e, Err(FirewallError::InvalidInterface { .. })));
        let e = network("n", "virbr0", 24, nat(Some("eth0\";"), None, None)).validate();
        assert!(matches!(e, Err(FirewallError::InvalidInterface { .. })));
        let route = NetForward::Route {
            uplink: Some("x".repeat(16)),
        };
        let e = network("n", "virbr0", 24, route).validate();
        assert!(matches!(e, Err(FirewallError::InvalidInterface { .. })));
    }

    #[test]
    fn nat_ports_and_addresses_are_checked() {
        let ok = [
            nat(None, None, None),
            nat(Some("eth0"), Some((1024, 65535)), None),
            nat(None, Some((1, 1)), Some(("203.0.113.5", "203.0.113.5"))),
            nat(None, None, Some(("203.0.113.5", "203.0.113.9"))),
        ];
        for f in ok {
            assert!(
                network("n", "virbr0", 24, f.clone()).validate().is_ok(),
                "{f:?}"
            );
        }
        for ports in [(0, 100), (2000, 1999)] {
            let e = network("n", "virbr0", 24, nat(None, Some(ports), None))
                .validate()
                .unwrap_err();
            assert!(matches!(e, FirewallError::InvalidPortRange { .. }), "{e}");
        }
        let e = network(
            "n",
            "virbr0",
            24,
            nat(None, None, Some(("203.0.113.9", "203.0.113.5"))),
        )
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "network \"n\": NAT address range 203.0.113.9-203.0.113.5 ends before it starts"
        );
    }

    #[test]
    fn network_addresses_and_modes() {
        assert_eq!(network_address(a("192.168.122.1"), 24), a("192.168.122.0"));
        assert_eq!(network_address(a("10.1.2.3"), 8), a("10.0.0.0"));
        assert_eq!(network_address(a("10.1.2.3"), 32), a("10.1.2.3"));
        assert_eq!(network_address(a("10.1.2.3"), 31), a("10.1.2.2"));
        assert_eq!(network_address(a("10.1.2.3"), 0), a("0.0.0.0"));
        assert_eq!(network_address(a("10.1.2.3"), 200), a("10.1.2.3"));
        let n = nat(Some("eth0"), None, None);
        assert_eq!((n.mode(), n.uplink()), ("nat", Some("eth0")));
        assert_eq!(NetForward::Isolated.mode(), "isolated");
        assert_eq!(NetForward::Open.uplink(), None);
        let part = &network("n", "virbr0", 24, NetForward::Open).parts[0];
        assert_eq!(part.kind(), "network");
    }
}
