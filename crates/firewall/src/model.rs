//! The typed ruleset: what virtgate wants from the firewall, one [`Part`] per feature.
//!
//! A part says what it needs in words of its own configuration (a PPTP address pool, a tun
//! device, an uplink); [`crate::render`] turns all parts into the rules of virtgate's single
//! table. A new feature (issue 4's libvirt-style NAT networks) is a new `Part` variant plus one
//! function in `render.rs` that lists its sets and rules — the table, the base chains, the
//! atomic replace and the coexistence check stay as they are.

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
}

impl Part {
    /// A short name for messages and rule comments.
    pub fn kind(&self) -> &'static str {
        match self {
            Part::Pptp { .. } => "pptp",
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
        }
    }
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
}
