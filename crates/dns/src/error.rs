//! Errors of the DNS crate: bad names (from configuration or from DHCP clients) and bad
//! configuration. Wire input never produces an error value: a bad query is answered (FORMERR,
//! NOTIMP) or dropped, and counted in [`crate::Stats`].

use std::net::IpAddr;

/// A host name that cannot go into the local zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Nothing left after trimming (`""`, `"."`).
    #[error("empty host name")]
    Empty,
    /// Longer than 253 characters, or a label longer than 63 (RFC 1035 §2.3.4).
    #[error("host name {name:?} is too long")]
    TooLong { name: String },
    /// A label that is empty, starts or ends with `-`, or holds a character other than
    /// letters, digits, `-` and `_` (RFC 1035 §2.3.1, RFC 1123 §2.1).
    #[error("{name:?} is not a valid host name")]
    Invalid { name: String },
    /// A DHCP client asked for a name that the configuration (`dns/host`, `dhcp/host`) already
    /// gives to another address. dnsmasq refuses it the same way.
    #[error("host name {name:?} already belongs to {owner}")]
    Taken { name: String, owner: IpAddr },
}

/// Configuration that cannot make a DNS server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A name in the configuration is not a valid host or domain name.
    #[error("{what}: {source}")]
    Name {
        what: &'static str,
        #[source]
        source: NameError,
    },
    /// A `<forwarder/>` with neither `domain` nor `addr` (libvirt refuses it too).
    #[error("a DNS forwarder needs a domain, an address, or both")]
    EmptyForwarder,
    /// A `dns/host` entry without any host name.
    #[error("DNS host {ip} has no host name")]
    HostWithoutName { ip: IpAddr },
    /// `localPtr='yes'` on a network whose prefix does not end on an octet (IPv4) or a nibble
    /// (IPv6) boundary: there is no single reverse zone for it (libvirt refuses it too).
    #[error("no reverse zone for {addr}/{prefix}: the prefix must be a multiple of 8 (IPv4) or 4 (IPv6)")]
    PtrPrefix { addr: IpAddr, prefix: u8 },
}
