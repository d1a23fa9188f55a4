//! The bodies of virtgate's fuzz targets (test-only, not published).
//!
//! Each target is a `pub fn <name>(data: &[u8])` that panics when an invariant breaks. Two
//! drivers call them:
//! - `fuzz/fuzz_targets/<name>.rs` (cargo-fuzz, libFuzzer; run by `scripts/fuzz.sh`), outside
//!   the workspace because it needs sanitizer flags;
//! - `tests/replay.rs` in this crate, which `cargo test --workspace` (and so CI, on the stable
//!   toolchain) runs: it replays `fuzz/corpus/<name>/` and `fuzz/regressions/<name>/` plus a few
//!   thousand seeded pseudo-random inputs per target.
//!
//! Targets that drive a state machine read their input as a script (see [`input`] and the
//! `*Script` builders, which the seed-corpus generator uses), on virtual time.
//!
//! [`TARGETS`] lists every target; the replay test checks that each has a cargo-fuzz binary and
//! a seed corpus.

pub mod config;
pub mod control;
pub mod input;
pub mod net;
pub mod ppp;
pub mod pptp;
pub mod radius;
pub mod seeds;

pub use config::{
    config_chap_secrets, config_libvirt_network, config_ppp_options, config_pptpd_conf, config_toml,
};
pub use control::control_request;
pub use net::{dhcp_lease_engine, dhcp_leasefile, dns_server};
pub use ppp::{ppp_auth, ppp_frame_roundtrip, ppp_mppe, ppp_negotiation, ppp_session};
pub use pptp::{
    pptp_control_client, pptp_control_roundtrip, pptp_control_server, pptp_deframer,
    pptp_gre_channel, pptp_gre_header_roundtrip,
};
pub use radius::radius_packet;

/// A fuzz target: its name (the cargo-fuzz binary and corpus directory) and its body.
#[derive(Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        /// Every fuzz target, in the order `scripts/fuzz.sh` runs them.
        pub const TARGETS: &[Target] = &[$(Target { name: stringify!($name), run: $name }),*];
    };
}

targets!(
    pptp_control_roundtrip,
    pptp_deframer,
    pptp_control_server,
    pptp_control_client,
    pptp_gre_header_roundtrip,
    pptp_gre_channel,
    config_pptpd_conf,
    config_ppp_options,
    config_chap_secrets,
    config_libvirt_network,
    config_toml,
    ppp_frame_roundtrip,
    ppp_negotiation,
    ppp_auth,
    ppp_mppe,
    ppp_session,
    dhcp_lease_engine,
    dhcp_leasefile,
    dns_server,
    radius_packet,
    control_request,
);

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}
