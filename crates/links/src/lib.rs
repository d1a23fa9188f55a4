//! Kernel links for virtgate's virtual networks and guest ports (issues 4 and 5).
//!
//! One [`Links`] handle per network namespace (the daemon's: the host's) wraps an rtnetlink
//! connection and does what libvirt does for KVM guests, the netavark way (netlink, no `ip`
//! commands):
//!
//! - **Bridges** ([`Links::ensure_bridge`]): name, MAC, STP, forward delay, MTU, up; IPv4
//!   addresses ([`Links::add_ipv4`]); [`Links::delete_bridge`]. A name held by a non-bridge, or
//!   by a bridge virtgate did not create, is refused.
//! - **Taps** ([`Links::create_tap`]): persistent, owned by a user/group so an unprivileged
//!   QEMU opens them, host-side MAC `fe:` + the guest's last five bytes, the bridge's MTU,
//!   attached and up.
//! - **macvtap "direct" ports** ([`Links::create_macvtap`]): `macvtapN` on the least-used
//!   parent of a pool, in vepa/bridge/private/passthrough mode, with the guest's MAC, up, and
//!   `/dev/tapIFINDEX` (made with mknod when udev has not). One passthrough port per parent.
//!   [`Links::create_shim`] adds a host-side macvlan so the host reaches bridge-mode guests.
//! - **Open vSwitch ports** ([`Links::create_ovs_port`]): a tap added with libvirt's
//!   `ovs-vsctl --may-exist add-port` and external-ids; removed with `--if-exists del-port`.
//! - **Listing and removal**: [`Links::list_ports`], [`Links::delete_port`],
//!   [`Links::delete_ports_labelled`].
//!
//! # Which links are ours
//! Every link created here carries the alias (`IFLA_IFALIAS`) `virtgate:ROLE[:LABEL]`, where
//! LABEL is the caller's (the daemon's network name). The kernel keeps it, so after a daemon
//! restart virtgate still knows which bridges and ports it made, and never deletes or adopts
//! anything else. `ip link show` shows it as `alias virtgate:tap:default`.
//!
//! # Example (the daemon's usage)
//! ```no_run
//! # async fn demo() -> Result<(), virtgate_links::LinksError> {
//! use std::time::Duration;
//! use virtgate_links::*;
//!
//! let links = Links::new()?; // inside a tokio runtime
//! let mut br = BridgeSpec::new(IfName::new("virbr0")?);
//! br.mac = Some("52:54:00:0a:cd:21".parse()?);
//! br.forward_delay = Duration::ZERO;
//! br.label = Some(Label::new("default")?);
//! links.ensure_bridge(&br).await?;
//! links.add_ipv4(&br.name, "192.168.122.1".parse().unwrap(), 24).await?;
//!
//! let mut tap = TapSpec::new("52:54:00:12:34:56".parse()?);
//! tap.bridge = Some(br.name.clone());
//! tap.owner = Some("qemu".parse()?);
//! tap.label = br.label.clone();
//! let port = links.create_tap(&tap).await?; // vnet0: -netdev tap,ifname=vnet0,script=no
//! links.delete_port(&IfName::new(&port.name)?).await?;
//! # Ok(()) }
//! ```

mod devnode;
mod error;
mod links;
pub mod ovs;
mod tun;
mod types;
mod user;
mod view;

pub use error::LinksError;
pub use links::{
    BridgeInfo, BridgeSpec, EnsuredBridge, Links, LinksOptions, MacvtapSpec, OvsPortSpec, PortInfo,
    PortKind, ShimSpec, TapSpec,
};
pub use ovs::{OvsConfig, OvsExternalIds};
pub use types::{check_uuid, GroupRef, IfName, Label, Mac, MacvtapMode, UserRef, IFNAME_MAX};
pub use user::{resolve_group, resolve_user};
