//! Errors of the links layer: what was refused and why, in words an operator can act on.

use std::io;
use std::path::PathBuf;

use crate::types::Mac;

/// Everything the links layer can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinksError {
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("invalid MAC address {text:?} (expected aa:bb:cc:dd:ee:ff)")]
    InvalidMac { text: String },

    #[error("{mac} cannot be an interface's MAC address: it must be unicast and non-zero")]
    InvalidGuestMac { mac: Mac },

    #[error("invalid label {text:?}: 1 to 200 bytes without control characters")]
    InvalidLabel { text: String },

    #[error("invalid macvtap mode {text:?} (vepa, bridge, private or passthrough)")]
    InvalidMode { text: String },

    #[error("invalid UUID {text:?}")]
    InvalidUuid { text: String },

    #[error("invalid setting: {what}")]
    InvalidSetting { what: String },

    #[error("no such user {user:?}")]
    UnknownUser { user: String },

    #[error("no such group {group:?}")]
    UnknownGroup { group: String },

    /// The name is used by an interface of another kind.
    #[error("interface name {name} is already taken by a {kind} interface")]
    NameTaken { name: String, kind: String },

    /// A bridge of that name exists but virtgate did not create it.
    #[error("bridge {name} exists and was not created by virtgate; refusing to take it over")]
    ForeignBridge { name: String },

    /// Deleting something virtgate did not create.
    #[error("{name} was not created by virtgate; not deleting it")]
    NotOurs { name: String },

    #[error("no interface named {name}")]
    NotFound { name: String },

    #[error("{name} is a {kind} interface, not a bridge")]
    NotABridge { name: String, kind: String },

    #[error("{name} is a {kind}, not a port; {hint}")]
    WrongKind {
        name: String,
        kind: String,
        hint: &'static str,
    },

    /// A passthrough port holds the parent: nothing else can use it.
    #[error(
        "{parent} is taken by passthrough port {holder}: one guest per parent in passthrough mode"
    )]
    PassthroughTaken { parent: String, holder: String },

    /// Passthrough needs a parent nobody uses yet.
    #[error("passthrough needs {parent} to itself, but it already carries {}", ports.join(", "))]
    ParentBusy { parent: String, ports: Vec<String> },

    #[error("no parent in the pool can take a {mode} port: {}", reasons.join("; "))]
    NoFreeParent { mode: String, reasons: Vec<String> },

    #[error("the pool of parent interfaces is empty")]
    EmptyPool,

    #[error("no free name {prefix}N after {tries} tries")]
    NoFreeName { prefix: &'static str, tries: u32 },

    /// The kernel did not show a character device for a macvtap.
    #[error("no character device found for macvtap {name} under {path}")]
    NoCharDevice { name: String, path: PathBuf },

    #[error("{context}: {source}")]
    Netlink {
        context: String,
        #[source]
        source: rtnetlink::Error,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// The handle was made outside a tokio runtime.
    #[error("Links needs a tokio runtime to run its netlink connection")]
    NoRuntime,

    /// `ovs-vsctl` failed or could not be run.
    #[error("ovs-vsctl {args} failed: {reason}")]
    Ovs { args: String, reason: String },
}

impl LinksError {
    /// The errno a netlink or I/O failure carries, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LinksError::Netlink { source, .. } => netlink_errno(source),
            LinksError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The (positive) errno of a netlink NACK.
pub(crate) fn netlink_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| c.get().saturating_abs()),
        _ => None,
    }
}

pub(crate) fn nl(context: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LinksError {
    let context = context.into();
    move |source| LinksError::Netlink { context, source }
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> LinksError {
    let context = context.into();
    move |source| LinksError::Io { context, source }
}
