//! DNS for virtgate's libvirt-style virtual networks, in place of the dnsmasq libvirt runs
//! (sans-IO; hickory-proto on the wire). See ARCHITECTURE.md and issue 4.
//!
//! One [`DnsServer`] per network answers the guests on the bridge address:
//! - names of the network itself — `dns/host` entries, `dhcp/host` reservations and the names
//!   DHCP clients give their leases — as A, AAAA and PTR records, bare and qualified with the
//!   network's domain ([`zone`]);
//! - everything else forwarded to the network's `<forwarder/>`s or the host's resolv.conf
//!   servers ([`resolv_conf`]), tried in order, with a fresh random id per query;
//! - the rules libvirt gives dnsmasq (local-only domain, `forwardPlainNames`, per-domain
//!   forwarders) through [`Config::from_libvirt`];
//! - forwarded answers kept in a bounded cache for their TTL ([`cache`]), as dnsmasq does.
//!
//! The core owns no sockets and no clock: the daemon passes each message and the current
//! time in and carries out the returned [`Action`]s. It works for UDP; for TCP the daemon
//! strips the 2-octet length prefix (RFC 7766 §8) from each incoming message, calls the same
//! functions with a [`Client`] of [`Transport::Tcp`], and prefixes each outgoing message with
//! its length.

pub mod cache;
pub mod config;
pub mod error;
mod name;
pub mod resolv_conf;
pub mod server;
pub mod zone;

pub use cache::CacheStats;
pub use config::{Config, DomainRule, Forwarder, NetworkDns, RuleTarget, DNS_PORT};
pub use error::{ConfigError, NameError};
pub use server::{Action, Client, DnsServer, Entropy, Stats, Transport};
pub use zone::{DnsHost, Reservation};
