//! The binary's errors: each displays as one line saying what failed and what to do.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// A configuration file is wrong (`path:line: what — how to fix`).
    #[error("{0}")]
    Config(#[from] virtgate_config::ConfigError),
    /// A setting virtgate will not run with (the configuration crate keeps no line for it).
    #[error("{file}: option '{option}' refused: {reason}")]
    Refused {
        file: String,
        option: String,
        reason: String,
    },
    #[error("cannot create TUN interface {name}: {source} — run as root (CAP_NET_ADMIN), check that /dev/net/tun exists and that the name is free")]
    Tun {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the raw GRE socket: {0} — run as root (CAP_NET_RAW)")]
    GreSocket(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source} — is pptpd (or another virtgate) still running? check `listen` in pptpd.conf")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot talk to the kernel over netlink: {0} — run as root (CAP_NET_ADMIN)")]
    Netlink(#[source] std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot open the RADIUS sockets: {0} — check bindaddr and dae_listen in the radius config file")]
    Radius(#[source] std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signal(#[source] std::io::Error),
    #[error("firewall: {0}")]
    Firewall(#[from] virtgate_firewall::FirewallError),
    #[error("{0}")]
    Dial(#[from] DialError),
    #[error("{0}")]
    Control(#[from] crate::control::ControlError),
    #[error("cannot create the control socket {path}: {source} — is another virtgate running? use --socket PATH for a second one")]
    ControlSocket {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serve metrics on {addr}: {source} — pick a free ADDR:PORT for --metrics")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// `terminate` matched no session.
    #[error("no matching session")]
    NothingMatched,
}

/// Why `virtgate dial` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    #[error("cannot connect to {addr}: {source} — is the server running and TCP 1723 open?")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the server closed the control connection ({0})")]
    ControlClosed(String),
    #[error("the server rejected the call (Outgoing-Call-Reply result {0})")]
    CallRejected(u8),
    #[error("authentication failed ({0}) — check the user name and password")]
    AuthFailed(String),
    #[error("the link went down: {0}")]
    LinkDown(String),
    #[error("no link after {0} s — the server did not complete PPP negotiation")]
    Timeout(u64),
    #[error("load mode: {0}")]
    Load(String),
}
