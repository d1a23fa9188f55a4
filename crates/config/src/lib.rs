//! Reads the files a pptpd administrator already has — `pptpd.conf`, the pppd options file it
//! names, and `chap-secrets` — into typed configuration, with pppd's and pptpd's own syntax and
//! semantics.
//!
//! The parsers are pure: each takes `&str` and never panics, whatever the input. The `read`
//! helpers read a file from disk and call the parser. Files named *inside* a configuration
//! (`option FILE`, `file FILE`, `@/path` secrets) are fetched through a [`FileSource`], so the
//! pure entry points have none and tests can use [`MemoryFiles`].
//!
//! Every problem is a [`ConfigError`] that prints as `path:line: message`; every parse also
//! returns [`Warning`]s (options that have no effect in virtgate, duplicates, lines pppd would
//! skip) for the caller to log.
//!
//! | file | type | reference |
//! |---|---|---|
//! | `/etc/pptpd.conf` | [`PptpdConf`] | poptop pptpd.conf(5), `configfile.c`, `pptpd.c` |
//! | `/etc/ppp/options.pptpd` | [`PppOptions`] | pppd(8), `options.c`, `auth.c`, `lcp.c`, `ipcp.c`, `ccp.c`, `chap.c`, `upap.c` |
//! | `/etc/ppp/chap-secrets` | [`ChapSecrets`] | pppd(8) "AUTHENTICATION", `auth.c` (`scan_authfile`, `set_allowed_addrs`) |
//! | `/etc/virtgate/virtgate.toml` (all of the above in one file) | [`ConfigFile`] | `docs/configuration.md` |
//! | libvirt network XML (`virsh net-dumpxml`) | [`NetworkDef`] | libvirt `formatnetwork.html`, `network.rng`, `network_conf.c` |
//!
//! ```
//! use virtgate_config::{ChapSecrets, PppOptions, PptpdConf};
//!
//! let conf = PptpdConf::parse("localip 192.168.0.1\nremoteip 192.168.0.100-200\n", "pptpd.conf")?.value;
//! assert_eq!(conf.remoteip.len(), 101);
//!
//! let opts = PppOptions::builtin_default();
//! let secrets = ChapSecrets::parse("user1 pptpd password1 *\n", "chap-secrets")?.value;
//! let server = opts.name.as_deref().unwrap_or("pptpd");
//! let s = secrets.lookup("user1", server).expect("user1 has a secret");
//! assert_eq!(s.secret, "password1");
//! assert!(s.addrs.permits(conf.remoteip[0]));
//! # Ok::<(), virtgate_config::ConfigError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chap_secrets;
mod error;
mod files;
pub mod libvirt;
pub mod pool;
pub mod ppp_options;
pub mod pptpd_conf;
pub mod radius;
pub mod toml_file;
mod words;

pub use chap_secrets::{AddrRule, AllowedAddrs, ChapSecrets, Secret};
pub use error::{ConfigError, ErrorKind, Parsed, Warning};
pub use files::{FileSource, Filesystem, MemoryFiles, NoFiles};
pub use libvirt::{check_overlaps, NetworkConflict, NetworkDef};
pub use pool::{AddressPool, PoolError};
pub use ppp_options::{
    AddrPair, AuthMethod, AuthMethods, AuthOptions, AuthPolicy, ChapOptions, FsmOptions,
    LcpOptions, MppePolicy, PapOptions, PppOptions, RadiusOrder, RadiusPlugin,
};
pub use pptpd_conf::PptpdConf;
pub use radius::{DaeClientConfig, RadiusConfig, RadiusServer};
pub use toml_file::{ConfigFile, DaemonSection, LimitsSection, NetworksSection};
