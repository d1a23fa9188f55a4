//! The runtime of libvirt-style virtual networks (issue 4): what libvirt's network driver and
//! its per-network dnsmasq do, as a library the daemon calls. Thin tokio glue: the protocol
//! work is in the sans-IO crates (`virtgate-dhcp`, `virtgate-dns`), the kernel work in
//! `virtgate-links`, the firewall in `virtgate-firewall`.
//!
//! - [`Network::start`] → [`RunningNetwork`]: bridge (MAC, STP, delay, MTU), IPv4 address,
//!   DHCP on UDP 67 and DNS on UDP/TCP 53 of the bridge, leases persisted to
//!   `STATE/NAME.leases` after changes (before the replies that acknowledge them) and restored
//!   at start; [`RunningNetwork::leases`], [`RunningNetwork::stats`],
//!   [`RunningNetwork::update`] (`net-update --live`), [`RunningNetwork::apply`] (reload),
//!   [`RunningNetwork::stop`] (removes the guests' ports and the bridge, keeps the leases).
//!   Networks on something that exists already — a host bridge (`forward mode='bridge'`), an
//!   Open vSwitch bridge, a macvtap pool — start too: their bridge or parents are checked, and
//!   nothing is created or served.
//! - [`ports`]: guest ports (issue 5) — what a network attaches guests to
//!   ([`ports::Attachment`]), [`ports::add_port`] (tap, Open vSwitch port or macvtap, marked
//!   with the network's name) and QEMU's hooks [`ports::attach_tap`] / [`ports::detach_tap`].
//! - [`Store`]: `STATE/networks/NAME.xml` and autostart marks (`net-define`, `net-undefine`,
//!   `net-autostart`, `net-update --config`), with libvirt's checks.
//! - [`convert`]: the definition → the DHCP and DNS servers' configurations.
//!
//! Each network runs in a task of its own ([`service`](crate::service) module docs), so
//! malformed packets on one network never reach another's servers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), virtgate_vnet::VnetError> {
//! use std::path::Path;
//! use virtgate_config::NetworkDef;
//! use virtgate_vnet::{Network, NetworkOptions};
//!
//! let def = NetworkDef::libvirt_default();
//! let net = Network::start(def, Path::new("/var/lib/virtgate"), NetworkOptions::default()).await?;
//! for lease in net.leases().await? {
//!     println!("{} {} {:?}", lease.mac, lease.ip, lease.hostname);
//! }
//! net.stop().await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod convert;
mod dns_io;
mod error;
mod files;
mod network;
pub mod ports;
mod service;
mod sockets;
mod store;
mod upstream;

pub use error::VnetError;
pub use network::{Network, NetworkOptions, RunningNetwork};
pub use service::{NetworkStats, MAX_TCP_CLIENTS};
pub use store::{leases_path, Store, StoredNetwork};

#[cfg(test)]
mod tests {
    #[test]
    fn handles_can_be_shared_between_the_daemons_tasks() {
        fn shared<T: Send + Sync>() {}
        shared::<crate::RunningNetwork>();
        shared::<crate::Store>();
        shared::<crate::VnetError>();
        shared::<crate::NetworkStats>();
    }
}
