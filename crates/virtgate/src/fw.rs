//! Glue to `virtgate-firewall` (issue 3): the seed's iptables steps as virtgate's own nftables
//! table, IPv4 forwarding on while we run, coexistence warnings. Virtual networks (issue 4)
//! add their parts to the same table (see `networks.rs`).

use virtgate_firewall::{
    uplink, Applied, Firewall, FirewallConfig, FirewallError, ForwardingGuard, Nft, Part, Ruleset,
};

use crate::error::DaemonError;
use crate::settings::Settings;

/// What is switched on while the daemon runs.
pub enum Active {
    /// Our table (accept, forward, masquerade, MSS clamp) and forwarding.
    Full(Firewall),
    /// No uplink to masquerade toward: forwarding only (clients still reach each other and
    /// the server's other networks).
    ForwardingOnly(ForwardingGuard),
}

impl Active {
    /// Removes the table and restores ip_forward; failures are logged (we are exiting).
    pub fn stop(self) {
        let r = match self {
            Active::Full(f) => f.stop(),
            Active::ForwardingOnly(g) => g.restore(),
        };
        match r {
            Ok(()) => tracing::info!("firewall removed, ip_forward restored"),
            Err(e) => tracing::warn!("firewall cleanup: {e}"),
        }
    }

    /// Our table, when there is one (to replace it as networks start and stop).
    pub fn table_mut(&mut self) -> Option<&mut Applied> {
        match self {
            Active::Full(f) => Some(f.applied_mut()),
            Active::ForwardingOnly(_) => None,
        }
    }
}

/// The ruleset for these settings; `Ok(None)` when there is no uplink (no default route and
/// none configured).
pub fn ruleset(s: &Settings, uplink_arg: Option<&str>) -> Result<Option<Ruleset>, DaemonError> {
    let uplink = match uplink::resolve(uplink_arg) {
        Ok(u) => u,
        Err(FirewallError::NoDefaultRoute) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some(Ruleset::new(vec![Part::Pptp {
        listen: s.listen,
        pool: s.firewall_pool(),
        tun: s.tun.clone(),
        uplink,
        mss: s.mss,
    }])))
}

/// Applies the ruleset (the PPTP part, then `networks`' parts) and switches forwarding on.
/// Returns the PPTP part too, for replacing the table when networks start or stop.
pub fn start(
    s: &Settings,
    uplink_arg: Option<&str>,
    networks: Vec<Part>,
) -> Result<(Active, Vec<Part>), DaemonError> {
    let pptp = ruleset(s, uplink_arg)?.map(|rs| rs.parts);
    if pptp.is_none() && !networks.is_empty() {
        tracing::warn!(
            "no IPv4 default route: PPTP clients are not masqueraded and reach only this host's \
             networks; pass --uplink IFNAME to masquerade them toward an interface"
        );
    }
    let rs = match (&pptp, networks.is_empty()) {
        (None, true) => None,
        (p, _) => Some(Ruleset::new(
            p.iter().flatten().cloned().chain(networks).collect(),
        )),
    };
    Ok((start_ruleset(s, uplink_arg, rs)?, pptp.unwrap_or_default()))
}

fn start_ruleset(
    s: &Settings,
    uplink_arg: Option<&str>,
    rs: Option<Ruleset>,
) -> Result<Active, DaemonError> {
    match rs {
        Some(rs) => {
            let cfg = FirewallConfig {
                enabled: true,
                uplink: uplink_arg.map(str::to_string),
            };
            let uplink = rs.parts.iter().find_map(|p| match p {
                Part::Pptp { uplink, .. } => Some(uplink.clone()),
                _ => None,
            });
            let networks = rs
                .parts
                .iter()
                .filter(|p| matches!(p, Part::Network { .. }))
                .count();
            match Firewall::start(&cfg, &Nft::new(), &rs)? {
                Some(f) => {
                    tracing::info!(
                        table = %rs.table,
                        uplink = uplink.as_deref().unwrap_or("?"),
                        networks,
                        "firewall applied: PPTP accepted, clients forwarded and masqueraded, MSS clamped to {}",
                        s.mss
                    );
                    Ok(Active::Full(f))
                }
                None => Ok(Active::ForwardingOnly(ForwardingGuard::enable()?)),
            }
        }
        None => {
            tracing::warn!(
                "no IPv4 default route: clients are not masqueraded and reach only this host's \
                 networks; pass --uplink IFNAME to masquerade them toward an interface"
            );
            Ok(Active::ForwardingOnly(ForwardingGuard::enable()?))
        }
    }
}

/// `--no-firewall`: a table an earlier run left (it crashed) is removed, nothing else is touched.
pub fn remove_leftover() {
    let cfg = FirewallConfig {
        enabled: false,
        uplink: None,
    };
    if let Err(e) = Firewall::start(&cfg, &Nft::new(), &Ruleset::new(Vec::new())) {
        tracing::warn!("removing a leftover virtgate table: {e}");
    }
}

/// `virtgate firewall show`: exactly the script `start` would apply, with the parts of the
/// virtual networks the daemon would start (`networks`).
pub fn show(
    s: &Settings,
    uplink_arg: Option<&str>,
    networks: Vec<Part>,
) -> Result<String, DaemonError> {
    let pptp = ruleset(s, uplink_arg)?.map(|rs| rs.parts);
    let mut out = String::new();
    if pptp.is_none() {
        out.push_str("# no IPv4 default route and no --uplink: no PPTP rules (forwarding only)\n");
        if networks.is_empty() {
            out.push_str("# and no virtual network: virtgate would apply no table\n");
            return Ok(out);
        }
    }
    let parts = pptp.into_iter().flatten().chain(networks).collect();
    out.push_str(&virtgate_firewall::render(&Ruleset::new(parts))?);
    Ok(out)
}
