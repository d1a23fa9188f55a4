//! virtgate's firewall: the seed's iptables steps (accept PPTP, forward, masquerade, clamp the
//! MSS, switch IPv4 forwarding on), done in one nftables table that virtgate owns
//! (`table inet virtgate`), never touching anyone else's.
//!
//! - [`Ruleset`] / [`Part`]: what the features need; [`render`] makes the nft script
//!   (`virtgate firewall show` prints it); [`apply`] / [`Nft::apply`] run `nft -f -` once, one
//!   kernel transaction, and return an [`Applied`] whose [`Applied::remove`] deletes only our
//!   table; [`remove_stale`] clears a table a crashed run left. Text for `nft -f` rather than
//!   the `nftables` crate's JSON: same atomicity, and what is shown is byte for byte what is
//!   applied (the reasons are in [`render`]'s module).
//! - [`uplink`]: the interface of the IPv4 default route.
//! - [`ForwardingGuard`]: `net.ipv4.ip_forward=1` while running, the old value back on stop.
//! - [`coexistence_warnings`]: which other tables (Docker, firewalld, a hand-made firewall)
//!   would drop our traffic, with the rule the admin should add. Never touches them.
//! - [`FirewallConfig`] + [`Firewall::start`]: the daemon's one call (with the `--no-firewall`
//!   switch) and [`Firewall::stop`].
//!
//! - [`Part::Network`]: a libvirt virtual network (issue 4) with libvirt's rules for its
//!   [`NetForward`] mode (NAT, route, open, isolated). Several networks and the PPTP part live
//!   in the same table and are applied in one transaction; the daemon starts or stops a network
//!   by [`Applied::replace`]-ing the whole table with the new list of parts.
//!
//! ```no_run
//! use virtgate_firewall::{Firewall, FirewallConfig, Nft, Part, Ruleset};
//! let config = FirewallConfig::default(); // --no-firewall: `enabled: false`
//! let ruleset = Ruleset::new(vec![Part::Pptp {
//!     listen: None,
//!     pool: (100..=200).map(|i| std::net::Ipv4Addr::new(192, 168, 0, i)).collect(),
//!     tun: "vgt0".into(),
//!     uplink: config.uplink()?,
//!     mss: 1356,
//! }]);
//! print!("{}", virtgate_firewall::render(&ruleset)?); // `virtgate firewall show`
//! let firewall = Firewall::start(&config, &Nft::new(), &ruleset)?;
//! // ... on SIGTERM / SIGINT:
//! if let Some(fw) = firewall {
//!     fw.stop()?;
//! }
//! # Ok::<(), virtgate_firewall::FirewallError>(())
//! ```

mod coexist;
mod error;
mod forwarding;
mod model;
mod nft;
mod render;
pub mod uplink;

pub use coexist::{coexistence_warnings, Warning};
pub use error::{FirewallError, FIX};
pub use forwarding::{ForwardingGuard, FORWARD_MEMO_DIR, IPV4_FORWARD};
pub use model::{
    compact_pool, network_address, validate_ifname, validate_network_name, AddrRange, NetForward,
    Part, Ruleset, DEFAULT_NAT_PORTS, DEFAULT_TABLE, MAX_NETWORK_NAME,
};
pub use nft::{apply, remove_stale, Applied, Nft};
pub use render::render;

/// The daemon's firewall settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallConfig {
    /// `false` (the daemon's `--no-firewall`): virtgate creates no table and leaves
    /// `ip_forward` alone — for admins who manage their own firewall.
    pub enabled: bool,
    /// The uplink interface; `None`: the interface of the IPv4 default route.
    pub uplink: Option<String>,
}

impl Default for FirewallConfig {
    fn default() -> FirewallConfig {
        FirewallConfig {
            enabled: true,
            uplink: None,
        }
    }
}

impl FirewallConfig {
    /// The uplink to put into parts: the configured one, or the default route's interface.
    pub fn uplink(&self) -> Result<String, FirewallError> {
        uplink::resolve(self.uplink.as_deref())
    }
}

/// The firewall while the daemon runs: our table and forwarding switched on.
#[derive(Debug)]
pub struct Firewall {
    applied: Applied,
    forwarding: ForwardingGuard,
    warnings: Vec<Warning>,
}

impl Firewall {
    /// Start-up. Disabled: removes a table an earlier run may have left (if nft is installed)
    /// and returns `None`. Enabled: applies `ruleset` in one transaction (a leftover table is
    /// replaced), switches IPv4 forwarding on, then reads the other tables and logs a warning
    /// for each chain that would drop our traffic. On error nothing stays changed.
    pub fn start(
        config: &FirewallConfig,
        nft: &Nft,
        ruleset: &Ruleset,
    ) -> Result<Option<Firewall>, FirewallError> {
        if !config.enabled {
            match nft.remove_table(&ruleset.table) {
                Ok(()) | Err(FirewallError::NftMissing { .. }) => {}
                Err(e) => tracing::warn!("firewall disabled; removing a leftover table: {e}"),
            }
            return Ok(None);
        }
        let applied = nft.apply(ruleset)?;
        let forwarding = ForwardingGuard::enable()?;
        let warnings = match nft.list_ruleset_json() {
            Ok(json) => coexistence_warnings(&json, ruleset).unwrap_or_else(|e| {
                tracing::warn!("coexistence check skipped: {e}");
                Vec::new()
            }),
            Err(e) => {
                tracing::warn!("coexistence check skipped: {e}");
                Vec::new()
            }
        };
        for w in &warnings {
            tracing::warn!("{w}");
        }
        Ok(Some(Firewall {
            applied,
            forwarding,
            warnings,
        }))
    }

    /// What the coexistence check found at start.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Our table, e.g. to [`Applied::replace`] it when the configuration changes.
    pub fn applied_mut(&mut self) -> &mut Applied {
        &mut self.applied
    }

    /// Removes our table and puts `ip_forward` back; both are attempted, the first error is
    /// returned.
    pub fn stop(self) -> Result<(), FirewallError> {
        let table = self.applied.remove();
        let forwarding = self.forwarding.restore();
        table.and(forwarding)
    }
}
