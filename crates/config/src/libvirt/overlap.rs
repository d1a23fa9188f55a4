//! Checks a set of network definitions against each other, as libvirt does when a network is
//! defined or started: names, UUIDs and bridge names must be unique, and no two networks may
//! share IPv4 addresses (their routes and DHCP servers would fight).

use std::net::Ipv4Addr;

use super::{NetworkDef, Uuid};

/// Two definitions that cannot both exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkConflict {
    /// Two networks with one name.
    #[error("two networks are named '{name}'; network names must be unique")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// Two networks with one UUID.
    #[error("networks '{first}' and '{second}' have the same UUID {uuid}; remove one <uuid> and a new one is generated")]
    DuplicateUuid {
        /// The network listed first.
        first: String,
        /// The other network.
        second: String,
        /// The shared UUID.
        uuid: Uuid,
    },
    /// Two networks naming one bridge.
    #[error("networks '{first}' and '{second}' both use bridge '{bridge}'; give each network its own bridge")]
    DuplicateBridge {
        /// The network listed first.
        first: String,
        /// The other network.
        second: String,
        /// The bridge name.
        bridge: String,
    },
    /// Two networks whose subnets share addresses.
    #[error("the subnets of networks '{first}' ({first_subnet}) and '{second}' ({second_subnet}) overlap; give each network its own range of addresses")]
    OverlappingSubnets {
        /// The network listed first.
        first: String,
        /// Its subnet, `address/prefix`.
        first_subnet: String,
        /// The other network.
        second: String,
        /// Its subnet.
        second_subnet: String,
    },
}

/// Checks every pair of `defs`: duplicate names, UUIDs and bridge names, and overlapping
/// IPv4 subnets. Returns the first conflict in list order (pairs `(i, j)` with `i < j`), so a
/// daemon that checks `existing + [new]` gets the conflict with the earliest existing network.
pub fn check_overlaps(defs: &[NetworkDef]) -> Result<(), NetworkConflict> {
    for (j, b) in defs.iter().enumerate() {
        for a in defs.iter().take(j) {
            check_pair(a, b)?;
        }
    }
    Ok(())
}

fn check_pair(a: &NetworkDef, b: &NetworkDef) -> Result<(), NetworkConflict> {
    if a.name == b.name {
        return Err(NetworkConflict::DuplicateName {
            name: a.name.clone(),
        });
    }
    if let (Some(ua), Some(ub)) = (a.uuid, b.uuid) {
        if ua == ub {
            return Err(NetworkConflict::DuplicateUuid {
                first: a.name.clone(),
                second: b.name.clone(),
                uuid: ua,
            });
        }
    }
    if let (Some(ba), Some(bb)) = (&a.bridge.name, &b.bridge.name) {
        if ba == bb {
            return Err(NetworkConflict::DuplicateBridge {
                first: a.name.clone(),
                second: b.name.clone(),
                bridge: ba.clone(),
            });
        }
    }
    if let (Some(ia), Some(ib)) = (&a.ip, &b.ip) {
        if subnets_overlap(ia.network(), ia.prefix, ib.network(), ib.prefix) {
            return Err(NetworkConflict::OverlappingSubnets {
                first: a.name.clone(),
                first_subnet: format!("{}/{}", ia.network(), ia.prefix),
                second: b.name.clone(),
                second_subnet: format!("{}/{}", ib.network(), ib.prefix),
            });
        }
    }
    Ok(())
}

/// Two prefixes overlap exactly when one contains the other: compare under the shorter mask.
fn subnets_overlap(a: Ipv4Addr, a_len: u8, b: Ipv4Addr, b_len: u8) -> bool {
    let mask = u32::from(super::prefix_mask(a_len.min(b_len)));
    u32::from(a) & mask == u32::from(b) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_overlap_rule() {
        let n = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(subnets_overlap(n("10.0.0.0"), 8, n("10.1.0.0"), 16));
        assert!(subnets_overlap(n("10.1.0.0"), 16, n("10.0.0.0"), 8));
        assert!(!subnets_overlap(
            n("192.168.122.0"),
            24,
            n("192.168.123.0"),
            24
        ));
        assert!(subnets_overlap(
            n("192.168.122.0"),
            23,
            n("192.168.123.0"),
            24
        ));
        assert!(!subnets_overlap(
            n("192.168.124.0"),
            23,
            n("192.168.123.0"),
            24
        ));
    }
}
