//! virtgate's DHCPv4 server for libvirt-style virtual networks: a sans-IO lease engine (RFC 2131,
//! options of RFC 2132, dhcproto on the wire) that replaces the DHCP half of the dnsmasq libvirt
//! runs per network.
//!
//! - [`config`]: what the network's XML says (ranges, `<host>` reservations, lease times) plus
//!   router, DNS server, domain, MTU.
//! - [`wire`]: parsing client messages without trusting them, encoding replies, and
//!   [`Destination`]: how the daemon must send each reply (RFC 2131 §4.1).
//! - [`engine`]: [`LeaseEngine`], the RFC 2131 §4.3 server: `handle_packet(now, bytes, arrival)`
//!   → `Option<Reply>`, `poll_event()` for lease changes, `poll_timeout()`/`handle_timeout(now)`
//!   for expiry, `leases()` for `virtgate net leases`.
//! - [`leasefile`]: `to_leases_file`/`from_leases_file` in dnsmasq's leases format.
//! - [`hostname`]: client host names → DNS labels.
//!
//! Time is passed in (`std::time::Instant`); the engine has no clock, socket or randomness, so
//! tests run whole exchanges on virtual time.

pub mod config;
pub mod engine;
pub mod hostname;
pub mod leasefile;
pub mod wire;

pub use config::{Config, ConfigError, LeaseTime, MacAddr, Range, StaticHost};
pub use engine::{Arrival, LeaseEngine, LeaseEvent, LeaseInfo, Stats};
pub use leasefile::LeaseFileError;
pub use wire::{parse_request, Destination, ParseError, Reply, Request};

/// The wire library, re-exported so callers and tests build messages with the same version.
pub use dhcproto;
