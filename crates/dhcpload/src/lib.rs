//! A DHCPv4 load generator for `bench/vnet.sh`: how many leases per second a server completes
//! (DISCOVER/OFFER/REQUEST/ACK, RFC 2131 §3.1) for many distinct clients with a bounded number
//! of exchanges open, then DHCPRELEASE for each (§4.4.6). Debian 12 ships no `perfdhcp`, and
//! this one runs the same load against virtgate and dnsmasq.
//!
//! - [`load`]: the sans-IO generator ([`Load`]): `poll_transmit(now)`, `handle_reply(now, ..)`,
//!   `poll_timeout()`/`handle_timeout(now)`, [`Report`].
//! - [`msg`]: client messages encoded with dhcproto, server replies read with checked lengths.
//! - [`frame`]: Ethernet II + IPv4 + UDP frames, built and parsed.
//! - [`raw`]: the `AF_PACKET` socket the `dhcpload` binary drives them through.

pub mod frame;
pub mod load;
pub mod msg;
pub mod raw;

pub use load::{Load, LoadConfig, Report, Transmit};
