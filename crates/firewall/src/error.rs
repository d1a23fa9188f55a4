//! The firewall layer's errors. Each one displays as a single line that names what failed and
//! what the admin can do about it.

use std::path::PathBuf;

/// What an admin can do when nftables cannot be used: said at the end of every nft error.
pub const FIX: &str =
    "install the nftables package, or disable virtgate's firewall with --no-firewall";

/// Errors of the firewall module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// The `nft` program could not be started.
    #[error("cannot run `{program}` ({source}); fix: {FIX}")]
    NftMissing {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// nft (its parser or the kernel) refused the script; nothing was applied.
    #[error("{}", rejected_line(.line, .rule, .message))]
    Rejected {
        /// 1-based line of the script that nft named, when it named one.
        line: Option<usize>,
        /// That line of the script, trimmed.
        rule: Option<String>,
        /// nft's own message (first error only).
        message: String,
    },
    /// Talking to the `nft` process failed after it started.
    #[error("running nft failed: {0}; fix: {FIX}")]
    NftIo(#[source] std::io::Error),
    /// An interface name that cannot be a Linux interface (or could break the script).
    #[error("invalid interface name {name:?} for the firewall: {reason}")]
    InvalidInterface { name: String, reason: &'static str },
    /// A table name that is not a plain nft identifier.
    #[error(
        "invalid nftables table name {0:?}: use letters, digits and '_', starting with a letter"
    )]
    InvalidTable(String),
    /// A part whose address pool is empty.
    #[error("the {part} part has an empty address pool")]
    EmptyPool { part: &'static str },
    /// A network name that virtgate-config would not accept either (it goes into comments).
    #[error("invalid network name {name:?} for the firewall: {reason}")]
    InvalidNetworkName { name: String, reason: &'static str },
    /// A network's prefix length outside 1-32.
    #[error("network {network:?}: prefix length /{prefix} out of range (1-32)")]
    InvalidPrefix { network: String, prefix: u8 },
    /// A NAT port range that starts at 0 or ends before it starts.
    #[error(
        "network {network:?}: NAT port range {first}-{last} must be within 1-65535, first <= last"
    )]
    InvalidPortRange {
        network: String,
        first: u16,
        last: u16,
    },
    /// A NAT address range that ends before it starts.
    #[error("network {network:?}: NAT address range {first}-{last} ends before it starts")]
    InvalidAddressRange {
        network: String,
        first: std::net::Ipv4Addr,
        last: std::net::Ipv4Addr,
    },
    /// An MSS outside what TCP over IPv4 can use.
    #[error("TCP MSS {0} out of range (536..=65495)")]
    InvalidMss(u16),
    /// There is no IPv4 default route to take the uplink from.
    #[error("no IPv4 default route in /proc/net/route: configure the uplink interface explicitly")]
    NoDefaultRoute,
    /// Reading /proc/net/route failed.
    #[error("cannot read {path}: {source}")]
    RouteTable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the ip_forward sysctl failed.
    #[error("cannot {action} {path}: {source}")]
    Forwarding {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The ip_forward file held something other than a number.
    #[error("unexpected content {content:?} in {path}")]
    ForwardingValue { path: PathBuf, content: String },
    /// `nft -j list ruleset` printed something that is not the JSON we know.
    #[error("cannot read nft's JSON ruleset: {0}")]
    Json(String),
}

fn rejected_line(line: &Option<usize>, rule: &Option<String>, message: &str) -> String {
    let hint = if message.contains("Operation not permitted") {
        " (virtgate needs root or CAP_NET_ADMIN)"
    } else if message.contains("Operation not supported")
        || message.contains("No such file or directory")
    {
        " (the kernel lacks the nf_tables support this rule needs)"
    } else {
        ""
    };
    let at = match (line, rule) {
        (Some(l), Some(r)) => format!(" at line {l} `{r}`"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    };
    format!("nft refused virtgate's ruleset{at}: {message}{hint}; nothing was applied; fix: {FIX}")
}
