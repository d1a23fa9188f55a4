//! Errors of the virtual-network runtime: each wraps the layer below (definition, links,
//! DHCP/DNS configuration, I/O) with what virtgate was doing, in words an operator can act on.

use std::io;

/// Everything starting, running, storing or changing a network can fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VnetError {
    /// The definition does not validate (or a `net-update` does not apply).
    #[error(transparent)]
    Definition(#[from] virtgate_config::ConfigError),

    /// The definition clashes with another defined network (name, UUID, bridge, subnet).
    #[error(transparent)]
    Conflict(#[from] virtgate_config::NetworkConflict),

    /// Bridges, addresses, links.
    #[error(transparent)]
    Links(#[from] virtgate_links::LinksError),

    /// The DHCP server refused the configuration made from the definition.
    #[error("network '{network}': DHCP: {source}")]
    Dhcp {
        network: String,
        #[source]
        source: virtgate_dhcp::ConfigError,
    },

    /// The DNS server refused the configuration made from the definition.
    #[error("network '{network}': DNS: {source}")]
    Dns {
        network: String,
        #[source]
        source: virtgate_dns::ConfigError,
    },

    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// A netlink request other than the links layer's (neighbour entries) failed.
    #[error("{context}: {source}")]
    Netlink {
        context: String,
        #[source]
        source: rtnetlink::Error,
    },

    /// The bridge name belongs to an interface virtgate did not create.
    #[error("network '{network}': bridge name '{bridge}' is already taken by {holder}; choose another <bridge name>")]
    BridgeTaken {
        network: String,
        bridge: String,
        holder: String,
    },

    /// `virbr0` to `virbr255` are all in use.
    #[error("network '{network}': no free bridge name virbr0..virbr255; give the network a <bridge name>")]
    NoFreeBridgeName { network: String },

    /// A network with a bridge of virtgate's that has no bridge name yet (never defined or
    /// started): guests have nothing to attach to.
    #[error("network '{network}' has no bridge yet; define it (net-define) or start it first")]
    NoBridge { network: String },

    /// What the network attaches guests to is not usable (a host bridge that does not exist,
    /// no parent device of the pool present, a tap of QEMU's on a macvtap network, ...).
    #[error("network '{network}': {reason}")]
    Unusable { network: String, reason: String },

    /// No definition of that name in the store.
    #[error("no network named '{name}' is defined")]
    NotFound { name: String },

    /// A redefinition with another UUID than the stored one (libvirt refuses it too).
    #[error("network '{name}' is already defined with UUID {existing}; use that UUID or leave <uuid> out")]
    UuidMismatch { name: String, existing: String },

    /// The network's task is gone (it was stopped, or it failed and logged why).
    #[error("network '{network}' is not running")]
    NotRunning { network: String },
}

impl VnetError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> VnetError {
        let context = context.into();
        move |source| VnetError::Io { context, source }
    }
}
