//! pppd options files (`/etc/ppp/options.pptpd`, pppd(8) "OPTIONS FILES") → [`PppOptions`].
//!
//! The syntax is pppd's: a file is a sequence of [words](#word-syntax); an option name is
//! followed by its argument words, any number of options per line (an argument may even be on
//! the next line, as in pppd). Later options override earlier ones, as all options from files
//! have the same priority in pppd. `file FILE` reads further options from FILE (relative names
//! resolve against the including file's directory; includes nest at most
//! [`MAX_INCLUDE_DEPTH`] deep, pppd has no limit).
//!
//! # Word syntax
//!
//! pppd's `getword` (pppd/options.c), shared with chap-secrets:
//!
//! * words are separated by white space; `#` outside quotes starts a comment to the end of the
//!   line, and also ends an unquoted word (`abc#x` is `abc` then a comment);
//! * `"` or `'` quote part of a word: inside, white space and `#` are ordinary and only the same
//!   quote ends it; quoted and unquoted parts join (`a"b c"d` is `ab cd`); `""` is an empty
//!   word; a quoted part may run over several lines;
//! * `\` escapes the next character, inside quotes too: `\a \b \f \n \r \t` are the C
//!   control characters, `\s` a space, `\ddd` up to three octal digits, `\xhh` up to two hex
//!   digits, anything else stands for itself; backslash-newline is dropped, so a line continues.
//!
//! Where pppd only warns we refuse, with the line: a word over 1023 bytes (pppd truncates it),
//! a quote still open at the end of the file (pppd takes the rest of the file), a NUL byte in a
//! word (from `\0`; pppd's C strings would cut it there), escapes that give bytes which are not
//! UTF-8.
//!
//! # How each pppd option is treated
//!
//! Every option pppd 2.5 knows falls in exactly one class; anything else is refused as
//! `unrecognized option`, as pppd does.
//!
//! * **Implemented** (a field of [`PppOptions`]): `name`, `user`, `password`, `remotename`,
//!   `chap-secrets`, `auth`, `require-pap`/`+pap`, `require-chap`/`+chap`,
//!   `require-mschap`/`+mschap`, `require-mschap-v2`/`+mschap-v2`, `refuse-pap`/`-pap`,
//!   `refuse-chap`/`-chap`, `refuse-mschap`/`-mschap`, `refuse-mschap-v2`/`-mschap-v2`,
//!   `refuse-eap`, `require-mppe`/`+mppe`, `require-mppe-40`/`+mppe-40`,
//!   `require-mppe-128`/`+mppe-128`, `nomppe`/`-mppe`, `nomppe-40`/`-mppe-40`,
//!   `nomppe-128`/`-mppe-128`, `mppe-stateful`, `nomppe-stateful`, the older
//!   `mppe required,stateless,no40,no56,no128` form, `noccp`/`-ccp`, `ms-dns`, `ms-wins`,
//!   `mtu`, `mru`, `default-mru`/`-mru`, `asyncmap`/`-as`, `default-asyncmap`/`-am`,
//!   `noaccomp`/`-ac`, `nopcomp`/`-pc`, `nomagic`/`-mn`, `lcp-echo-interval`,
//!   `lcp-echo-failure`, `lcp-echo-adaptive`, `lcp-restart`, `lcp-max-configure`,
//!   `lcp-max-terminate`, `lcp-max-failure`, `ipcp-restart`, `ipcp-max-configure`,
//!   `ipcp-max-terminate`, `ipcp-max-failure`, `chap-restart`, `chap-max-challenge`,
//!   `chap-interval`, `chap-timeout`, `chapms-strip-domain`, `pap-restart`, `pap-max-authreq`,
//!   `pap-timeout`, `proxyarp`, `noproxyarp`/`-proxyarp`, `defaultroute`,
//!   `nodefaultroute`/`-defaultroute`, `usepeerdns`, `idle`, `maxconnect`, `file`, the
//!   `local:remote` address pair, and pppd's radius plugin: `plugin radius.so`,
//!   `radius-config-file FILE` (a radiusclient.conf, read by [`crate::radius`]) and
//!   virtgate's `radius-order radius-only|local-first|radius-first`; `map-to-ifname` and
//!   `map-to-ttyname` are ignored with a warning.
//! * **Already virtgate's behaviour** (accepted, a warning says it has no effect): `novj`/`-vj`,
//!   `novjccomp`/`-vjccomp`, `nobsdcomp`/`-bsdcomp`, `nodeflate`/`-deflate`, `nodeflatedraft`,
//!   `nopredictor1`/`-predictor1`, `nomppc`, `noipx`, `noipv6`/`-ipv6`, `nomultilink`/`nomp`,
//!   `nompshortseq`, `noendpoint`, `noipdefault`, `noresolvconf`, `nodefaultroute6`/
//!   `-defaultroute6`, `noreplacedefaultroute`, `nocrtscts`/`-crtscts`, `nocdtrcts`, `nolock`.
//! * **Harmless, ignored with a warning** (logging, serial lines, process management, and
//!   compression virtgate does not have, which only means the link runs uncompressed): `lock`,
//!   `debug`/`-d`, `kdebug`, `dump`, `logfile`, `logfd`, `nolog`, `nologfd`, `linkname`,
//!   `ipparam`, `nodetach`/`-detach`, `updetach`, `up_sdnotify`, `master_detach`, `persist`,
//!   `nopersist`, `holdoff`, `maxfail`, `ktune`, `noktune`, `connect-delay`, `child-timeout`,
//!   `ifname`, `unit`, `hide-password`, `show-password`, `lcp-rtt-file`, `crtscts`, `cdtrcts`,
//!   `xonxoff`, `modem`, `local`, `receive-all`, `passive`/`-p`, `silent`, `bsdcomp`, `deflate`,
//!   `predictor1`, `vj-max-slots`, `mppc`, `usepeerwins`, and a bare number (pppd's serial
//!   speed).
//! * **Refused** (an error): every other pppd option, because each would change who may connect,
//!   which addresses they get, or what runs on the host, and virtgate does not implement it —
//!   `noauth`, `require-eap`, `login`, `papcrypt`, `allow-ip`, `plugin` (except `radius.so`),
//!   the radius plugin's `avpair`, the `*-script` options,
//!   `ipcp-accept-remote`, `+ipv6`, multilink, EAP-TLS, filters, traffic limits, pty/serial
//!   channel options, and so on. The error names the option and says why.
//!
//! # virtgate's defaults versus pppd's
//!
//! * **Authentication is always required.** pppd started by pptpd runs as root, and a root pppd
//!   does not require the peer to authenticate unless told to (`auth` or a `require-*` option);
//!   virtgate always does, and refuses `noauth`. With no `require-*` option the server asks only
//!   for MS-CHAPv2 (pppd would offer EAP, MS-CHAPv2, MS-CHAP, CHAP-MD5 and PAP); with no
//!   `refuse-*` option the client role also only agrees to MS-CHAPv2.
//! * **MPPE-128, stateless, is required** unless an MPPE option (`require-mppe*`, `nomppe*`,
//!   `mppe ...`) says otherwise; once one does, pppd's own rules apply from pppd's starting point
//!   (no MPPE), so `nomppe-40` alone means "no MPPE", exactly as in pppd (a warning says so).
//! * Secrets for every method, PAP included, come from chap-secrets (pppd reads PAP secrets
//!   from pap-secrets).
//! * pppd reads `/etc/ppp/options` and `~/.ppprc` before the file pptpd names; virtgate reads
//!   only the file named.
//! * The name defaults to the host name in pppd; here [`PppOptions::name`] stays `None` and the
//!   caller decides.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{ConfigError, ErrorKind, Parsed, Warning};
use crate::files::{self, FileSource, Filesystem, NoFiles};
use crate::words::{self, Word};

/// How deep `file` includes may nest (pppd has no limit and recurses until it runs out of
/// file descriptors on a loop).
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// pppd's `MAXNAMELEN - 1`: the longest name pppd keeps.
const MAX_NAME_LEN: usize = 255;
/// pppd's `MAXSECRETLEN - 1`.
const MAX_SECRET_LEN: usize = 255;
/// pppd's `MINMRU` and `MAXMRU`, the limits for `mru` and `mtu`.
const MIN_MRU: u32 = 128;
const MAX_MRU: u32 = 16384;

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

/// An authentication protocol. The declaration order is pppd's server preference: the
/// strongest first (pppd's `CHAP_DIGEST` picks MS-CHAPv2, then MS-CHAP, then MD5; PAP last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthMethod {
    /// MS-CHAP version 2 (RFC 2759), CHAP algorithm 0x81.
    MsChapV2,
    /// MS-CHAP version 1 (RFC 2433), CHAP algorithm 0x80.
    MsChap,
    /// CHAP with MD5 (RFC 1994), algorithm 5.
    ChapMd5,
    /// PAP (RFC 1334).
    Pap,
}

impl AuthMethod {
    /// All methods, strongest first.
    pub const ALL: [AuthMethod; 4] = [
        AuthMethod::MsChapV2,
        AuthMethod::MsChap,
        AuthMethod::ChapMd5,
        AuthMethod::Pap,
    ];

    /// Whether this method yields MPPE key material (only the MS-CHAP variants do, RFC 3079).
    pub fn provides_mppe_keys(self) -> bool {
        matches!(self, AuthMethod::MsChapV2 | AuthMethod::MsChap)
    }

    fn bit(self) -> u8 {
        match self {
            AuthMethod::MsChapV2 => 1,
            AuthMethod::MsChap => 2,
            AuthMethod::ChapMd5 => 4,
            AuthMethod::Pap => 8,
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMethod::MsChapV2 => "MS-CHAPv2",
            AuthMethod::MsChap => "MS-CHAP",
            AuthMethod::ChapMd5 => "CHAP-MD5",
            AuthMethod::Pap => "PAP",
        })
    }
}

/// A set of [`AuthMethod`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AuthMethods(u8);

impl AuthMethods {
    /// The empty set.
    pub const NONE: AuthMethods = AuthMethods(0);
    /// All four methods.
    pub const ALL: AuthMethods = AuthMethods(0x0f);

    /// A set with one method.
    pub fn only(m: AuthMethod) -> AuthMethods {
        AuthMethods(m.bit())
    }
    /// Whether `m` is in the set.
    pub fn contains(self, m: AuthMethod) -> bool {
        self.0 & m.bit() != 0
    }
    /// Adds `m`.
    pub fn insert(&mut self, m: AuthMethod) {
        self.0 |= m.bit();
    }
    /// Removes `m`.
    pub fn remove(&mut self, m: AuthMethod) {
        self.0 &= !m.bit();
    }
    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The members, strongest first.
    pub fn to_vec(self) -> Vec<AuthMethod> {
        AuthMethod::ALL
            .into_iter()
            .filter(|m| self.contains(*m))
            .collect()
    }
}

/// The authentication options as written (pppd's `require-*` / `refuse-*` state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AuthOptions {
    /// Methods named by `require-*` (or `+pap`, `+chap`, ...): what the server asks the peer
    /// to authenticate with.
    pub require: AuthMethods,
    /// Methods named by `refuse-*` (or `-pap`, ...): what we will *not* use to authenticate
    /// ourselves to the peer (client role). In pppd these do not restrict the server.
    pub refuse: AuthMethods,
    /// `refuse-eap` was given (virtgate never does EAP, so this only records it).
    pub refuse_eap: bool,
}

/// Which methods each role may use, derived by [`PppOptions::auth_policy`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthPolicy {
    /// Server role: methods we ask the peer to authenticate with, strongest first. LCP's
    /// Configure-Request proposes the first; the others are acceptable if the peer Naks with
    /// one of them. Never empty: virtgate always authenticates peers.
    pub server_requests: Vec<AuthMethod>,
    /// Client role: methods we agree to authenticate ourselves with, strongest first.
    pub client_accepts: Vec<AuthMethod>,
}

// ---------------------------------------------------------------------------------------------
// MPPE
// ---------------------------------------------------------------------------------------------

/// The MPPE (RFC 3078) policy, for both directions (pppd's MPPE options are symmetrical).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MppePolicy {
    /// The link must be encrypted: if CCP cannot agree on MPPE, the link is closed.
    /// `false` with some key length allowed means MPPE is optional (only the older
    /// `mppe ...` form without `required` gives that).
    pub required: bool,
    /// 40-bit session keys are allowed.
    pub allow_40: bool,
    /// 56-bit session keys are allowed (only the older `mppe ...` form can allow these; pppd
    /// 2.4.5 and later never negotiate 56-bit).
    pub allow_56: bool,
    /// 128-bit session keys are allowed.
    pub allow_128: bool,
    /// Stateful mode may be accepted (we always request stateless; pppd's `mppe-stateful`).
    pub stateful_allowed: bool,
}

impl MppePolicy {
    /// No MPPE at all: CCP rejects it and the link runs unencrypted.
    pub const OFF: MppePolicy = MppePolicy {
        required: false,
        allow_40: false,
        allow_56: false,
        allow_128: false,
        stateful_allowed: false,
    };

    /// virtgate's default: MPPE required, 128-bit keys only, stateless only.
    pub const STRONGEST: MppePolicy = MppePolicy {
        required: true,
        allow_40: false,
        allow_56: false,
        allow_128: true,
        stateful_allowed: false,
    };

    /// Whether MPPE may be negotiated at all.
    pub fn enabled(&self) -> bool {
        self.allow_40 || self.allow_56 || self.allow_128
    }
}

// ---------------------------------------------------------------------------------------------
// The options
// ---------------------------------------------------------------------------------------------

/// Two server addresses handed to the peer (IPCP options 129/131 or 130/132, RFC 1877).
///
/// pppd keeps the last two values given: the second-last is the primary, the last the
/// secondary; a single value is both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrPair {
    /// Primary server.
    pub primary: Ipv4Addr,
    /// Secondary server.
    pub secondary: Ipv4Addr,
}

/// Restart timer and counters of one RFC 1661 automaton (LCP or IPCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsmOptions {
    /// Restart timer (`*-restart`, RFC 1661 §4.6), default 3 s.
    pub restart: Duration,
    /// Max-Configure (`*-max-configure`), default 10.
    pub max_configure: u32,
    /// Max-Terminate (`*-max-terminate`), default 2.
    pub max_terminate: u32,
    /// Max-Failure (`*-max-failure`), default 5.
    pub max_failure: u32,
}

impl Default for FsmOptions {
    fn default() -> FsmOptions {
        FsmOptions {
            restart: Duration::from_secs(3),
            max_configure: 10,
            max_terminate: 2,
            max_failure: 5,
        }
    }
}

/// LCP options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LcpOptions {
    /// MRU we ask for (`mru`), default 1500. Only sent when it differs from 1500, as in pppd.
    pub mru: u16,
    /// MRU negotiation allowed (`default-mru` turns it off).
    pub negotiate_mru: bool,
    /// Cap on our MTU (`mtu`); `None` means pppd's 16384, i.e. the peer's MRU rules.
    pub mtu: Option<u16>,
    /// Async control character map we ask for (`asyncmap`, OR-ed over all occurrences;
    /// `default-asyncmap` ORs in all ones). Meaningless on PPTP, kept for completeness.
    pub asyncmap: u32,
    /// `asyncmap` was given, so the ACCM is requested.
    pub request_asyncmap: bool,
    /// The peer may negotiate an ACCM (`default-asyncmap` turns this off).
    pub allow_asyncmap: bool,
    /// Address/Control field compression negotiated (`noaccomp` turns it off).
    pub accomp: bool,
    /// Protocol field compression negotiated (`nopcomp` turns it off).
    pub pcomp: bool,
    /// Magic-number negotiation (`nomagic` turns it off).
    pub magic: bool,
    /// `lcp-echo-interval`: seconds between LCP Echo-Requests; `None` (0) means no echoes.
    pub echo_interval: Option<Duration>,
    /// `lcp-echo-failure`: unanswered echoes before the link is declared dead; 0 means never.
    pub echo_failure: u32,
    /// `lcp-echo-adaptive`: skip the echo when traffic arrived since the last one.
    pub echo_adaptive: bool,
    /// Automaton timers and counters.
    pub fsm: FsmOptions,
}

impl Default for LcpOptions {
    fn default() -> LcpOptions {
        LcpOptions {
            mru: 1500,
            negotiate_mru: true,
            mtu: None,
            asyncmap: 0,
            request_asyncmap: false,
            allow_asyncmap: true,
            accomp: true,
            pcomp: true,
            magic: true,
            echo_interval: None,
            echo_failure: 0,
            echo_adaptive: false,
            fsm: FsmOptions::default(),
        }
    }
}

/// CHAP / MS-CHAP timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChapOptions {
    /// Server: seconds before a Challenge is resent (`chap-restart`), default 3 s.
    pub restart: Duration,
    /// Server: Challenges sent before giving up (`chap-max-challenge`), default 10.
    pub max_challenge: u32,
    /// Server: re-challenge the peer every this often (`chap-interval`), default never.
    pub interval: Option<Duration>,
    /// Client: how long to wait for the server's Challenge (`chap-timeout`), default 60 s.
    pub timeout: Duration,
    /// `chapms-strip-domain`: strip a `DOMAIN\` prefix from MS-CHAP user names before the
    /// secrets lookup.
    pub strip_domain: bool,
}

impl Default for ChapOptions {
    fn default() -> ChapOptions {
        ChapOptions {
            restart: Duration::from_secs(3),
            max_challenge: 10,
            interval: None,
            timeout: Duration::from_secs(60),
            strip_domain: false,
        }
    }
}

/// PAP timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PapOptions {
    /// Client: seconds before an Authenticate-Request is resent (`pap-restart`), default 3 s.
    pub restart: Duration,
    /// Client: Authenticate-Requests sent before giving up (`pap-max-authreq`), default 10.
    pub max_authreq: u32,
    /// Server: how long to wait for the peer's Authenticate-Request (`pap-timeout`),
    /// default 30 s; `None` (0) means no limit.
    pub timeout: Option<Duration>,
}

impl Default for PapOptions {
    fn default() -> PapOptions {
        PapOptions {
            restart: Duration::from_secs(3),
            max_authreq: 10,
            timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// The options of one PPP link, as pppd would read them from an options file.
///
/// Build one with [`PppOptions::read`] (a file on disk), [`PppOptions::parse`] (a string),
/// or [`PppOptions::builtin_default`]. See the [module docs](self) for how every pppd option
/// is treated and where virtgate's defaults differ from pppd's.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PppOptions {
    /// `name`: our name for authentication (the chap-secrets *server* column). pppd defaults
    /// to the host name; `None` here leaves that to the caller.
    pub name: Option<String>,
    /// `user`: the name we authenticate ourselves with (client role); pppd defaults it to
    /// `name`.
    pub user: Option<String>,
    /// `password`: the secret we authenticate ourselves with (client role); otherwise it comes
    /// from chap-secrets.
    pub password: Option<String>,
    /// `remotename`: the peer's name for the secrets lookup (client role).
    pub remotename: Option<String>,
    /// `chap-secrets FILE`: where the secrets are (pppd default `/etc/ppp/chap-secrets`).
    pub chap_secrets: Option<PathBuf>,
    /// Authentication options as written; see [`PppOptions::auth_policy`] for what they mean.
    pub auth: AuthOptions,
    /// The MPPE policy after all options (and `noccp`) are applied.
    pub mppe: MppePolicy,
    /// CCP is run (`noccp` turns it off, and with it MPPE).
    pub ccp: bool,
    /// `ms-dns`: DNS servers handed to the peer.
    pub ms_dns: Option<AddrPair>,
    /// `ms-wins`: WINS servers handed to the peer.
    pub ms_wins: Option<AddrPair>,
    /// Local address from a `local:remote` option. pptpd's `localip` overrides it unless
    /// pptpd.conf has `delegate`, as pptpd passes its own pair on pppd's command line.
    pub local_ip: Option<Ipv4Addr>,
    /// Remote address from a `local:remote` option (same precedence as `local_ip`).
    pub remote_ip: Option<Ipv4Addr>,
    /// `proxyarp`: answer ARP for the peer's address on the LAN interface.
    pub proxyarp: bool,
    /// `defaultroute`: route everything through the link once IPCP is up.
    pub defaultroute: bool,
    /// `usepeerdns` (client role): use the DNS servers the peer hands out.
    pub usepeerdns: bool,
    /// LCP options.
    pub lcp: LcpOptions,
    /// IPCP automaton timers and counters (`ipcp-*`).
    pub ipcp: FsmOptions,
    /// CHAP timers.
    pub chap: ChapOptions,
    /// PAP timers.
    pub pap: PapOptions,
    /// `idle`: close the link after this long without data packets; `None` means never.
    pub idle: Option<Duration>,
    /// `maxconnect`: close the link after this long; `None` (0) means no limit.
    pub maxconnect: Option<Duration>,
    /// `plugin radius.so` (with `radius-config-file` and `radius-order`): authenticate and
    /// account through RADIUS (see [`crate::radius`]).
    pub radius: Option<RadiusPlugin>,
}

/// pppd's radius plugin default `radius-config-file`.
pub const DEFAULT_RADIUS_CONFIG: &str = "/etc/radiusclient/radiusclient.conf";

/// `plugin radius.so` and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusPlugin {
    /// `radius-config-file FILE`: the radiusclient.conf (default
    /// [`DEFAULT_RADIUS_CONFIG`]).
    pub config_file: PathBuf,
    /// `radius-order` (virtgate's own option): whether chap-secrets is asked too, and first.
    pub order: RadiusOrder,
}

/// Which user database decides, in what order (`radius-order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RadiusOrder {
    /// `radius-only` (default, what pppd's radius plugin does): chap-secrets is not asked.
    #[default]
    RadiusOnly,
    /// `local-first`: a user with a chap-secrets entry is checked against it; others go to
    /// RADIUS.
    LocalFirst,
    /// `radius-first`: RADIUS decides; when no server answers, chap-secrets is asked.
    RadiusFirst,
}

impl fmt::Debug for PppOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PppOptions")
            .field("name", &self.name)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("remotename", &self.remotename)
            .field("chap_secrets", &self.chap_secrets)
            .field("auth", &self.auth)
            .field("mppe", &self.mppe)
            .field("ccp", &self.ccp)
            .field("ms_dns", &self.ms_dns)
            .field("ms_wins", &self.ms_wins)
            .field("local_ip", &self.local_ip)
            .field("remote_ip", &self.remote_ip)
            .field("proxyarp", &self.proxyarp)
            .field("defaultroute", &self.defaultroute)
            .field("usepeerdns", &self.usepeerdns)
            .field("lcp", &self.lcp)
            .field("ipcp", &self.ipcp)
            .field("chap", &self.chap)
            .field("pap", &self.pap)
            .field("idle", &self.idle)
            .field("maxconnect", &self.maxconnect)
            .field("radius", &self.radius)
            .finish()
    }
}

impl Default for PppOptions {
    /// What an empty options file gives: pppd's defaults, except for virtgate's stronger
    /// authentication and MPPE defaults (see the [module docs](self)).
    fn default() -> PppOptions {
        PppOptions {
            name: None,
            user: None,
            password: None,
            remotename: None,
            chap_secrets: None,
            auth: AuthOptions::default(),
            mppe: MppePolicy::STRONGEST,
            ccp: true,
            ms_dns: None,
            ms_wins: None,
            local_ip: None,
            remote_ip: None,
            proxyarp: false,
            defaultroute: false,
            usepeerdns: false,
            lcp: LcpOptions::default(),
            ipcp: FsmOptions::default(),
            chap: ChapOptions::default(),
            pap: PapOptions::default(),
            idle: None,
            maxconnect: None,
            radius: None,
        }
    }
}

impl PppOptions {
    /// The options the seed's `/etc/ppp/options.pptpd` gives (poptop's sample file):
    /// `name pptpd`, `refuse-pap`, `refuse-chap`, `refuse-mschap`, `require-mschap-v2`,
    /// `require-mppe-128`, `ms-dns 8.8.8.8`, `ms-dns 8.8.4.4`, `proxyarp`, `lock`,
    /// `nobsdcomp`, `novj`, `novjccomp`, `nologfd`. What the daemon uses when pptpd.conf
    /// names no options file.
    pub fn builtin_default() -> PppOptions {
        let mut refuse = AuthMethods::only(AuthMethod::Pap);
        refuse.insert(AuthMethod::ChapMd5);
        refuse.insert(AuthMethod::MsChap);
        PppOptions {
            name: Some("pptpd".to_owned()),
            auth: AuthOptions {
                require: AuthMethods::only(AuthMethod::MsChapV2),
                refuse,
                refuse_eap: false,
            },
            mppe: MppePolicy::STRONGEST,
            ms_dns: Some(AddrPair {
                primary: Ipv4Addr::new(8, 8, 8, 8),
                secondary: Ipv4Addr::new(8, 8, 4, 4),
            }),
            proxyarp: true,
            ..PppOptions::default()
        }
    }

    /// Parses an options file's text. `path` names it in errors and warnings. `file`
    /// includes are refused (no file access); use [`PppOptions::read`] or
    /// [`PppOptions::parse_with`] for those. Never panics, whatever the input.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Parsed<PppOptions>, ConfigError> {
        PppOptions::parse_with(text, path, &mut NoFiles)
    }

    /// Parses an options file's text, reading `file` includes from `files`.
    pub fn parse_with(
        text: &str,
        path: impl AsRef<Path>,
        files: &mut dyn FileSource,
    ) -> Result<Parsed<PppOptions>, ConfigError> {
        let mut p = Parser {
            opts: PppOptions::default(),
            warnings: Vec::new(),
            files,
            mppe_explicit: None,
            mppe_off_by: None,
            noccp_at: None,
            proxyarp_disabled: None,
            defaultroute_disabled: None,
            require_at: None,
            dns: Vec::new(),
            wins: Vec::new(),
            radius_plugin: false,
            radius_config: None,
            radius_order: None,
        };
        p.parse_file(text, path.as_ref(), 0)?;
        p.finish(path.as_ref())
    }

    /// Reads and parses the options file at `path`, with its `file` includes.
    pub fn read(path: impl AsRef<Path>) -> Result<Parsed<PppOptions>, ConfigError> {
        let path = path.as_ref();
        let text = read_text(&mut Filesystem, path, path, 0, "options file")?;
        PppOptions::parse_with(&text, path, &mut Filesystem)
    }

    /// The effective authentication policy for both roles.
    ///
    /// Server: the `require-*` methods, strongest first; with none, MS-CHAPv2 only (pppd would
    /// ask for all). `refuse-*` options do not restrict the server, as in pppd.
    /// Client: all methods minus the `refuse-*` ones; with no `refuse-*` option at all,
    /// MS-CHAPv2 only (pppd would agree to any).
    pub fn auth_policy(&self) -> AuthPolicy {
        let server = if self.auth.require.is_empty() {
            vec![AuthMethod::MsChapV2]
        } else {
            self.auth.require.to_vec()
        };
        let client = if self.auth.refuse.is_empty() {
            vec![AuthMethod::MsChapV2]
        } else {
            AuthMethods(AuthMethods::ALL.0 & !self.auth.refuse.0).to_vec()
        };
        AuthPolicy {
            server_requests: server,
            client_accepts: client,
        }
    }
}

/// Reads a file through `files`, turning failure into an error at `at:line`.
pub(crate) fn read_text(
    files: &mut dyn FileSource,
    target: &Path,
    at: &Path,
    line: u32,
    what: &str,
) -> Result<String, ConfigError> {
    files.read_to_string(target).map_err(|e| {
        let message = if e.kind() == std::io::ErrorKind::InvalidData {
            format!(
                "{} is not UTF-8 text; save it as UTF-8 (plain ASCII is fine)",
                target.display()
            )
        } else if line == 0 {
            format!("cannot read this {what}: {e}; check that it exists and is readable")
        } else {
            format!(
                "cannot read {what} {}: {e}; fix the path or remove this line",
                target.display()
            )
        };
        ConfigError::new(at, line, ErrorKind::Io, message)
    })
}

// ---------------------------------------------------------------------------------------------
// Option tables
// ---------------------------------------------------------------------------------------------

/// Options that describe what virtgate already does.
const REDUNDANT: &[(&str, &str)] = &[
    (
        "novj",
        "virtgate never negotiates Van Jacobson header compression",
    ),
    (
        "-vj",
        "virtgate never negotiates Van Jacobson header compression",
    ),
    (
        "novjccomp",
        "virtgate never negotiates Van Jacobson header compression",
    ),
    (
        "-vjccomp",
        "virtgate never negotiates Van Jacobson header compression",
    ),
    ("nobsdcomp", "virtgate never negotiates BSD-Compress"),
    ("-bsdcomp", "virtgate never negotiates BSD-Compress"),
    ("nodeflate", "virtgate never negotiates Deflate compression"),
    ("-deflate", "virtgate never negotiates Deflate compression"),
    (
        "nodeflatedraft",
        "virtgate never negotiates Deflate compression",
    ),
    (
        "nopredictor1",
        "virtgate never negotiates Predictor-1 compression",
    ),
    (
        "-predictor1",
        "virtgate never negotiates Predictor-1 compression",
    ),
    ("nomppc", "virtgate never negotiates MPPC compression"),
    ("noipx", "pppd itself no longer has IPX"),
    ("noipv6", "virtgate has no IPv6CP"),
    ("-ipv6", "virtgate has no IPv6CP"),
    ("nodefaultroute6", "virtgate has no IPv6CP"),
    ("-defaultroute6", "virtgate has no IPv6CP"),
    ("nomultilink", "virtgate has no multilink PPP"),
    ("nomp", "virtgate has no multilink PPP"),
    ("nompshortseq", "virtgate has no multilink PPP"),
    ("noendpoint", "virtgate has no multilink PPP"),
    (
        "noipdefault",
        "virtgate never derives an address from the host name",
    ),
    ("noresolvconf", "virtgate never writes resolv.conf"),
    (
        "noreplacedefaultroute",
        "virtgate never replaces the default route",
    ),
    ("nocrtscts", "a PPTP link has no serial port"),
    ("-crtscts", "a PPTP link has no serial port"),
    ("nocdtrcts", "a PPTP link has no serial port"),
    ("nolock", "a PPTP link has no serial port to lock"),
];

/// Harmless options ignored with a warning: (name, takes an argument, why).
const IGNORED: &[(&str, bool, &str)] = &[
    (
        "lock",
        false,
        "it locks a serial port and a PPTP link has none",
    ),
    (
        "debug",
        false,
        "use virtgate's log level for protocol traces",
    ),
    ("-d", false, "use virtgate's log level for protocol traces"),
    ("kdebug", true, "there is no ppp kernel driver to debug"),
    (
        "dump",
        false,
        "virtgate does not print the options it parsed",
    ),
    ("logfile", true, "virtgate logs through its own logger"),
    ("logfd", true, "virtgate logs through its own logger"),
    ("nolog", false, "virtgate logs through its own logger"),
    ("nologfd", false, "virtgate logs through its own logger"),
    ("linkname", true, "virtgate writes no per-link pid files"),
    ("ipparam", true, "virtgate runs no ip-up scripts"),
    ("nodetach", false, "virtgate manages its own process"),
    ("-detach", false, "virtgate manages its own process"),
    ("updetach", false, "virtgate manages its own process"),
    ("up_sdnotify", false, "virtgate manages its own process"),
    ("master_detach", false, "virtgate manages its own process"),
    (
        "persist",
        false,
        "redialing is decided by virtgate's dial command",
    ),
    (
        "nopersist",
        false,
        "redialing is decided by virtgate's dial command",
    ),
    (
        "holdoff",
        true,
        "redialing is decided by virtgate's dial command",
    ),
    (
        "maxfail",
        true,
        "redialing is decided by virtgate's dial command",
    ),
    (
        "ktune",
        false,
        "virtgate sets ip_forward itself where it is configured to",
    ),
    (
        "noktune",
        false,
        "virtgate sets ip_forward itself where it is configured to",
    ),
    ("connect-delay", true, "virtgate runs no connect script"),
    ("child-timeout", true, "virtgate runs no child processes"),
    ("ifname", true, "virtgate names its own tunnel interface"),
    ("unit", true, "virtgate names its own tunnel interface"),
    ("hide-password", false, "virtgate never logs passwords"),
    ("show-password", false, "virtgate never logs passwords"),
    (
        "lcp-rtt-file",
        true,
        "virtgate records no echo round-trip times",
    ),
    ("crtscts", false, "a PPTP link has no serial port"),
    ("cdtrcts", false, "a PPTP link has no serial port"),
    ("xonxoff", false, "a PPTP link has no serial port"),
    ("modem", false, "a PPTP link has no serial port"),
    ("local", false, "a PPTP link has no serial port"),
    (
        "receive-all",
        false,
        "PPTP carries frames without async HDLC control characters",
    ),
    (
        "passive",
        false,
        "virtgate's server waits for the peer's first LCP request anyway",
    ),
    (
        "-p",
        false,
        "virtgate's server waits for the peer's first LCP request anyway",
    ),
    (
        "silent",
        false,
        "virtgate's server waits for the peer's first LCP request anyway",
    ),
    (
        "bsdcomp",
        true,
        "virtgate has no BSD-Compress; the link runs uncompressed",
    ),
    (
        "deflate",
        true,
        "virtgate has no Deflate compression; the link runs uncompressed",
    ),
    (
        "predictor1",
        false,
        "virtgate has no Predictor-1; the link runs uncompressed",
    ),
    (
        "vj-max-slots",
        true,
        "virtgate has no VJ header compression",
    ),
    (
        "mppc",
        false,
        "virtgate has no MPPC compression; the link runs uncompressed",
    ),
    ("usepeerwins", false, "virtgate does not use WINS servers"),
];

/// pppd options virtgate refuses: (name, why and what to do).
const REFUSED: &[(&str, &str)] = &[
    ("noauth", "it would let peers connect without a password; virtgate always authenticates peers, so remove it and list who may connect in chap-secrets"),
    ("require-eap", "virtgate has no EAP; use require-mschap-v2"),
    ("login", "checking passwords against the system password database is not supported; put the secrets in chap-secrets"),
    ("enable-session", "session accounting through the system login database is not supported; remove it"),
    ("papcrypt", "crypt()-hashed PAP secrets are not supported; put the plain secret in chap-secrets"),
    ("+ua", "reading the user name and password from a file is not supported; use user and password"),
    ("usehostname", "set the name explicitly with the name option"),
    ("domain", "write the full name with the name option"),
    ("pap-secrets", "virtgate takes PAP secrets from chap-secrets; remove it"),
    ("privgroup", "there is no privileged-option group in virtgate; remove it"),
    ("allow-ip", "addresses usable without authentication are not supported; peers always authenticate"),
    ("remotenumber", "telephone numbers do not apply to PPTP; remove it"),
    ("allow-number", "telephone numbers do not apply to PPTP; remove it"),
    ("ca", "EAP-TLS is not supported"),
    ("capath", "EAP-TLS is not supported"),
    ("crl-dir", "EAP-TLS is not supported"),
    ("crl", "EAP-TLS is not supported"),
    ("max-tls-version", "EAP-TLS is not supported"),
    ("tls-verify-key-usage", "EAP-TLS is not supported"),
    ("tls-verify-method", "EAP-TLS is not supported"),
    ("cert", "EAP-TLS is not supported"),
    ("key", "EAP-TLS is not supported"),
    ("pkcs12", "EAP-TLS is not supported"),
    ("need-peer-eap", "EAP is not supported"),
    ("eap-restart", "EAP is not supported"),
    ("eap-max-sreq", "EAP is not supported"),
    ("eap-timeout", "EAP is not supported"),
    ("eap-max-rreq", "EAP is not supported"),
    ("eap-interval", "EAP is not supported"),
    ("srp-interval", "EAP-SRP is not supported"),
    ("srp-lwreco", "EAP-SRP is not supported"),
    ("srp-pn", "EAP-SRP is not supported"),
    ("srp-use-pseudonym", "EAP-SRP is not supported"),
    ("ms-lanman", "LAN Manager password hashes are insecure and not supported"),
    ("mschap-challenge", "a fixed MS-CHAP challenge (a pppd test aid) would make authentication replayable"),
    ("mschap2-peer-challenge", "a fixed MS-CHAP peer challenge (a pppd test aid) would make authentication replayable"),
    ("call", "peer files (/etc/ppp/peers) are not supported; use file with a path"),
    ("avpair", "the radius plugin's avpair is not supported; put the attributes in the RADIUS server's reply instead"),
    ("pass-filter", "packet filters are not supported; use the firewall"),
    ("active-filter", "packet filters are not supported; use the firewall"),
    ("maxoctets", "traffic limits are not supported"),
    ("mo", "traffic limits are not supported"),
    ("mo-direction", "traffic limits are not supported"),
    ("mo-timeout", "traffic limits are not supported"),
    ("multilink", "multilink PPP is not supported"),
    ("mp", "multilink PPP is not supported"),
    ("bundle", "multilink PPP is not supported"),
    ("mrru", "multilink PPP is not supported"),
    ("mpshortseq", "multilink PPP is not supported"),
    ("endpoint", "multilink PPP is not supported"),
    ("demand", "dial on demand is not supported"),
    ("noip", "virtgate carries IPv4 and always runs IPCP"),
    ("-ip", "virtgate carries IPv4 and always runs IPCP"),
    ("ipcp-accept-local", "letting the peer choose addresses is not supported; addresses come from pptpd.conf and chap-secrets"),
    ("ipcp-accept-remote", "letting the peer choose addresses is not supported; addresses come from pptpd.conf and chap-secrets"),
    ("ipcp-no-addresses", "IPCP address negotiation cannot be turned off"),
    ("ipcp-no-address", "IPCP address negotiation cannot be turned off"),
    ("noremoteip", "the peer always gets an address"),
    ("nosendip", "IPCP address negotiation cannot be turned off"),
    ("netmask", "the tunnel interface netmask is not configurable"),
    ("defaultroute-metric", "default-route metrics are not supported"),
    ("replacedefaultroute", "replacing the default route is not supported"),
    ("+ipv6", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("ipv6", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("ipv6cp-accept-local", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("ipv6cp-accept-remote", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("defaultroute6", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("defaultroute6-metric", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("ipv6cp-use-ipaddr", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("ipv6cp-use-persistent", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("ipv6cp-use-remotenumber", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("ipv6cp-noremote", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("ipv6cp-nosend", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("ipv6cp-restart", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("ipv6cp-max-terminate", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("ipv6cp-max-configure", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("ipv6cp-max-failure", "virtgate has no IPv6CP (IPv6 over PPP)"),
    ("set", "virtgate runs no scripts, so script environment variables do not apply"),
    ("unset", "virtgate runs no scripts, so script environment variables do not apply"),
    ("net-init-script", "virtgate runs no scripts"),
    ("net-pre-up-script", "virtgate runs no scripts"),
    ("net-down-script", "virtgate runs no scripts"),
    ("auth-up-script", "virtgate runs no scripts"),
    ("auth-down-script", "virtgate runs no scripts"),
    ("ip-up-script", "virtgate runs no scripts"),
    ("ip-down-script", "virtgate runs no scripts"),
    ("ip-pre-up-script", "virtgate runs no scripts"),
    ("ipv6-up-script", "virtgate runs no scripts"),
    ("ipv6-down-script", "virtgate runs no scripts"),
    ("vrf", "VRFs are not supported"),
    ("init", "virtgate carries PPP over PPTP itself; serial and pty channel options do not apply"),
    ("connect", "virtgate carries PPP over PPTP itself; serial and pty channel options do not apply"),
    ("disconnect", "virtgate carries PPP over PPTP itself; serial and pty channel options do not apply"),
    ("welcome", "virtgate carries PPP over PPTP itself; serial and pty channel options do not apply"),
    ("pty", "virtgate carries PPP over PPTP itself; serial and pty channel options do not apply"),
    ("notty", "virtgate carries PPP over PPTP itself; serial and pty channel options do not apply"),
    ("socket", "virtgate carries PPP over PPTP itself; serial and pty channel options do not apply"),
    ("record", "virtgate carries PPP over PPTP itself; serial and pty channel options do not apply"),
    ("sync", "virtgate carries PPP over PPTP itself; serial and pty channel options do not apply"),
    ("datarate", "virtgate carries PPP over PPTP itself; serial and pty channel options do not apply"),
    ("escape", "virtgate carries PPP over PPTP itself; serial and pty channel options do not apply"),
    ("stop-bits", "virtgate carries PPP over PPTP itself; serial and pty channel options do not apply"),
    ("-all", "turning off every LCP option is not supported"),
    ("dryrun", "it is a pppd command-line action, not a link option"),
    ("show-options", "it is a pppd command-line action, not a link option"),
    ("--version", "it is a pppd command-line action, not a link option"),
    ("-v", "it is a pppd command-line action, not a link option"),
    ("--help", "it is a pppd command-line action, not a link option"),
    ("-h", "it is a pppd command-line action, not a link option"),
];

// ---------------------------------------------------------------------------------------------
// The parser
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct At {
    path: PathBuf,
    line: u32,
}

struct Parser<'f> {
    opts: PppOptions,
    warnings: Vec<Warning>,
    files: &'f mut dyn FileSource,
    /// Where the first option selecting MPPE behaviour was (pppd's rules apply from there).
    mppe_explicit: Option<At>,
    /// The last option that left MPPE with no key length, for the "unencrypted" warning.
    mppe_off_by: Option<At>,
    noccp_at: Option<At>,
    proxyarp_disabled: Option<At>,
    defaultroute_disabled: Option<At>,
    require_at: Option<At>,
    dns: Vec<Ipv4Addr>,
    wins: Vec<Ipv4Addr>,
    /// `plugin radius.so` seen.
    radius_plugin: bool,
    radius_config: Option<(PathBuf, At)>,
    radius_order: Option<(RadiusOrder, At)>,
}

/// The words of one file, consumed in order.
struct Cursor<'a> {
    words: &'a [Word],
    next: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self) -> Option<&'a Word> {
        let w = self.words.get(self.next)?;
        self.next += 1;
        Some(w)
    }
}

impl Parser<'_> {
    fn parse_file(&mut self, text: &str, path: &Path, depth: usize) -> Result<(), ConfigError> {
        let words = words::split(text, path)?;
        let mut cur = Cursor {
            words: &words,
            next: 0,
        };
        while let Some(opt) = cur.take() {
            self.option(opt, &mut cur, path, depth)?;
        }
        Ok(())
    }

    fn warn(&mut self, path: &Path, line: u32, message: String) {
        self.warnings.push(Warning::new(path, line, message));
    }

    fn option(
        &mut self,
        opt: &Word,
        cur: &mut Cursor<'_>,
        path: &Path,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let name = opt.text.as_str();
        let line = opt.line;
        let at = At {
            path: path.to_path_buf(),
            line,
        };
        let err = |kind: ErrorKind, msg: String| ConfigError::new(path, line, kind, msg);
        // Fetches the option's argument: the next word, wherever it is (pppd reads on across
        // lines).
        let mut arg = || -> Result<&Word, ConfigError> {
            cur.take().ok_or_else(|| {
                ConfigError::new(
                    path,
                    line,
                    ErrorKind::InvalidValue,
                    format!("too few parameters for option '{name}': it takes one argument"),
                )
            })
        };

        match name {
            // --- names and secrets -------------------------------------------------------
            "name" | "user" | "remotename" | "password" => {
                let a = arg()?;
                let max = if name == "password" {
                    MAX_SECRET_LEN
                } else {
                    MAX_NAME_LEN
                };
                if a.text.len() > max {
                    return Err(ConfigError::new(
                        path,
                        a.line,
                        ErrorKind::InvalidValue,
                        format!(
                            "the {name} value is {} bytes; pppd keeps at most {max}, so shorten it",
                            a.text.len()
                        ),
                    ));
                }
                let v = Some(a.text.clone());
                match name {
                    "name" => self.opts.name = v,
                    "user" => self.opts.user = v,
                    "remotename" => self.opts.remotename = v,
                    _ => self.opts.password = v,
                }
            }
            "chap-secrets" => {
                let a = arg()?;
                self.opts.chap_secrets = Some(files::resolve(path, Path::new(&a.text)));
            }

            // --- RADIUS (pppd's radius plugin) ----------------------------------------
            "plugin" => {
                let a = arg()?;
                let base = Path::new(&a.text).file_name().and_then(|n| n.to_str());
                if base != Some("radius.so") {
                    return Err(err(
                        ErrorKind::Refused,
                        format!("pppd plugin '{}' is not supported: virtgate implements only radius.so (RADIUS); remove this line", a.text),
                    ));
                }
                self.radius_plugin = true;
            }
            "radius-config-file" => {
                let a = arg()?;
                self.radius_config = Some((files::resolve(path, Path::new(&a.text)), at));
            }
            "radius-order" => {
                let a = arg()?;
                let order = match a.text.as_str() {
                    "radius-only" => RadiusOrder::RadiusOnly,
                    "local-first" => RadiusOrder::LocalFirst,
                    "radius-first" => RadiusOrder::RadiusFirst,
                    other => {
                        return Err(err(
                            ErrorKind::InvalidValue,
                            format!("radius-order '{other}' is not one of radius-only, local-first, radius-first"),
                        ))
                    }
                };
                self.radius_order = Some((order, at));
            }
            "map-to-ifname" | "map-to-ttyname" => self.warn(
                path,
                line,
                format!("option '{name}' ignored: virtgate sends NAS-Port as the call's number"),
            ),

            // --- authentication -------------------------------------------------------
            // `auth` is what virtgate always does; nothing to change.
            "auth" => {}
            "require-pap" | "+pap" => self.require(AuthMethod::Pap, at),
            "require-chap" | "+chap" => self.require(AuthMethod::ChapMd5, at),
            "require-mschap" | "+mschap" => self.require(AuthMethod::MsChap, at),
            "require-mschap-v2" | "+mschap-v2" => self.require(AuthMethod::MsChapV2, at),
            "refuse-pap" | "-pap" => self.opts.auth.refuse.insert(AuthMethod::Pap),
            "refuse-chap" | "-chap" => self.opts.auth.refuse.insert(AuthMethod::ChapMd5),
            "refuse-mschap" | "-mschap" => self.opts.auth.refuse.insert(AuthMethod::MsChap),
            "refuse-mschap-v2" | "-mschap-v2" => self.opts.auth.refuse.insert(AuthMethod::MsChapV2),
            "refuse-eap" => self.opts.auth.refuse_eap = true,

            // --- MPPE / CCP -----------------------------------------------------------
            "require-mppe" | "+mppe" => {
                self.mppe_select(&at);
                // pppd assigns exactly {40, 128} here (it has no 56-bit).
                let m = &mut self.opts.mppe;
                m.allow_40 = true;
                m.allow_56 = false;
                m.allow_128 = true;
                m.required = true;
                self.mppe_off_by = None;
            }
            "require-mppe-40" | "+mppe-40" => {
                self.mppe_select(&at);
                self.opts.mppe.allow_40 = true;
                self.opts.mppe.required = true;
                self.mppe_off_by = None;
            }
            "require-mppe-128" | "+mppe-128" => {
                self.mppe_select(&at);
                self.opts.mppe.allow_128 = true;
                self.opts.mppe.required = true;
                self.mppe_off_by = None;
            }
            "nomppe" | "-mppe" => {
                self.mppe_select(&at);
                let stateful = self.opts.mppe.stateful_allowed;
                self.opts.mppe = MppePolicy {
                    stateful_allowed: stateful,
                    ..MppePolicy::OFF
                };
                self.mppe_off_by = Some(at);
            }
            "nomppe-40" | "-mppe-40" => {
                self.mppe_select(&at);
                self.opts.mppe.allow_40 = false;
                self.mppe_recheck(at);
            }
            "nomppe-128" | "-mppe-128" => {
                self.mppe_select(&at);
                self.opts.mppe.allow_128 = false;
                self.mppe_recheck(at);
            }
            "mppe-stateful" => self.opts.mppe.stateful_allowed = true,
            "nomppe-stateful" => self.opts.mppe.stateful_allowed = false,
            "mppe" => {
                let a = arg()?;
                self.old_mppe(a, path, &at)?;
            }
            "noccp" | "-ccp" => {
                self.opts.ccp = false;
                self.noccp_at = Some(at);
            }

            // --- IPCP -------------------------------------------------------------------
            "ms-dns" | "ms-wins" => {
                let a = arg()?;
                let ip = parse_ipv4(&a.text).ok_or_else(|| {
                    ConfigError::new(
                        path,
                        a.line,
                        ErrorKind::InvalidValue,
                        format!(
                            "invalid address '{}' for {name}: write an IPv4 address such as 8.8.8.8 (virtgate does not look up host names)",
                            a.text
                        ),
                    )
                })?;
                let list = if name == "ms-dns" {
                    &mut self.dns
                } else {
                    &mut self.wins
                };
                list.push(ip);
                if list.len() == 3 {
                    self.warn(
                        path,
                        a.line,
                        format!("more than two {name} options: as in pppd only the last two are used (the second-last as primary)"),
                    );
                }
            }
            // pppd: once `noproxyarp`/`nodefaultroute` is given, the positive option is
            // refused ("option is disabled"), so an administrator can lock it off.
            "proxyarp" => {
                self.check_enabled(
                    name,
                    "noproxyarp",
                    self.proxyarp_disabled.clone(),
                    path,
                    line,
                )?;
                self.opts.proxyarp = true;
            }
            "noproxyarp" | "-proxyarp" => {
                self.opts.proxyarp = false;
                self.proxyarp_disabled = Some(at);
            }
            "defaultroute" => {
                self.check_enabled(
                    name,
                    "nodefaultroute",
                    self.defaultroute_disabled.clone(),
                    path,
                    line,
                )?;
                self.opts.defaultroute = true;
            }
            "nodefaultroute" | "-defaultroute" => {
                self.opts.defaultroute = false;
                self.defaultroute_disabled = Some(at);
            }
            "usepeerdns" => self.opts.usepeerdns = true,
            "ipcp-restart" => {
                self.opts.ipcp.restart = secs(self.number(arg()?, name, path, 1, None)?)
            }
            "ipcp-max-configure" => {
                self.opts.ipcp.max_configure = self.number(arg()?, name, path, 0, None)?
            }
            "ipcp-max-terminate" => {
                self.opts.ipcp.max_terminate = self.number(arg()?, name, path, 0, None)?
            }
            "ipcp-max-failure" => {
                self.opts.ipcp.max_failure = self.number(arg()?, name, path, 0, None)?
            }

            // --- LCP --------------------------------------------------------------------
            "mru" => {
                let v = self.number(arg()?, name, path, MIN_MRU, Some(MAX_MRU))?;
                self.opts.lcp.mru = u16::try_from(v).unwrap_or(u16::MAX);
                self.opts.lcp.negotiate_mru = true;
            }
            "default-mru" | "-mru" => self.opts.lcp.negotiate_mru = false,
            "mtu" => {
                let v = self.number(arg()?, name, path, MIN_MRU, Some(MAX_MRU))?;
                self.opts.lcp.mtu = Some(u16::try_from(v).unwrap_or(u16::MAX));
            }
            "asyncmap" | "-as" => {
                let a = arg()?;
                let v = parse_c_unsigned(&a.text, 16).ok_or_else(|| {
                    invalid_number(
                        path,
                        a,
                        name,
                        "a hexadecimal 32-bit map such as 0 or 0xa0000",
                    )
                })?;
                self.opts.lcp.asyncmap |= v;
                self.opts.lcp.request_asyncmap = true;
            }
            "default-asyncmap" | "-am" => {
                self.opts.lcp.asyncmap = u32::MAX;
                self.opts.lcp.allow_asyncmap = false;
            }
            "noaccomp" | "-ac" => self.opts.lcp.accomp = false,
            "nopcomp" | "-pc" => self.opts.lcp.pcomp = false,
            "nomagic" | "-mn" => self.opts.lcp.magic = false,
            "lcp-echo-interval" => {
                let v = self.number(arg()?, name, path, 0, None)?;
                self.opts.lcp.echo_interval = (v != 0).then(|| secs(v));
            }
            "lcp-echo-failure" => {
                self.opts.lcp.echo_failure = self.number(arg()?, name, path, 0, None)?
            }
            "lcp-echo-adaptive" => self.opts.lcp.echo_adaptive = true,
            "lcp-restart" => {
                self.opts.lcp.fsm.restart = secs(self.number(arg()?, name, path, 1, None)?)
            }
            "lcp-max-configure" => {
                self.opts.lcp.fsm.max_configure = self.number(arg()?, name, path, 0, None)?
            }
            "lcp-max-terminate" => {
                self.opts.lcp.fsm.max_terminate = self.number(arg()?, name, path, 0, None)?
            }
            "lcp-max-failure" => {
                self.opts.lcp.fsm.max_failure = self.number(arg()?, name, path, 0, None)?
            }

            // --- CHAP / PAP ----------------------------------------------------------------
            "chap-restart" => {
                self.opts.chap.restart = secs(self.number(arg()?, name, path, 1, None)?)
            }
            "chap-max-challenge" => {
                self.opts.chap.max_challenge = self.number(arg()?, name, path, 0, None)?
            }
            "chap-interval" => {
                self.opts.chap.interval = Some(secs(self.number(arg()?, name, path, 1, None)?))
            }
            "chap-timeout" => {
                self.opts.chap.timeout = secs(self.number(arg()?, name, path, 1, None)?)
            }
            "chapms-strip-domain" => self.opts.chap.strip_domain = true,
            "pap-restart" => {
                self.opts.pap.restart = secs(self.number(arg()?, name, path, 1, None)?)
            }
            "pap-max-authreq" => {
                self.opts.pap.max_authreq = self.number(arg()?, name, path, 0, None)?
            }
            "pap-timeout" => {
                let v = self.number(arg()?, name, path, 0, None)?;
                self.opts.pap.timeout = (v != 0).then(|| secs(v));
            }

            // --- link limits -------------------------------------------------------------
            "idle" => {
                let v = self.number(arg()?, name, path, 0, None)?;
                self.opts.idle = (v != 0).then(|| secs(v));
            }
            "maxconnect" => {
                let v = self.number(arg()?, name, path, 0, None)?;
                self.opts.maxconnect = (v != 0).then(|| secs(v));
            }

            // --- includes ----------------------------------------------------------------
            "file" => {
                let a = arg()?;
                if depth + 1 > MAX_INCLUDE_DEPTH {
                    return Err(err(
                        ErrorKind::Conflict,
                        format!(
                            "'file {}' nests includes more than {MAX_INCLUDE_DEPTH} deep; look for a file that includes itself",
                            a.text
                        ),
                    ));
                }
                let target = files::resolve(path, Path::new(&a.text));
                let text = read_text(self.files, &target, path, a.line, "options file")?;
                self.parse_file(&text, &target, depth + 1)?;
            }

            _ => return self.other(opt, cur, path),
        }
        Ok(())
    }

    /// Options outside the implemented set: the tables, the address pair, a speed, or unknown.
    fn other(&mut self, opt: &Word, cur: &mut Cursor<'_>, path: &Path) -> Result<(), ConfigError> {
        let name = opt.text.as_str();
        let line = opt.line;
        if let Some((_, why)) = REDUNDANT.iter().find(|(n, _)| *n == name) {
            self.warn(path, line, format!("option '{name}' has no effect: {why}"));
            return Ok(());
        }
        if let Some((_, takes_arg, why)) = IGNORED.iter().find(|(n, _, _)| *n == name) {
            if *takes_arg && cur.take().is_none() {
                return Err(ConfigError::new(
                    path,
                    line,
                    ErrorKind::InvalidValue,
                    format!("too few parameters for option '{name}': it takes one argument"),
                ));
            }
            self.warn(path, line, format!("option '{name}' ignored: {why}"));
            return Ok(());
        }
        if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == name) {
            return Err(ConfigError::new(
                path,
                line,
                ErrorKind::Refused,
                format!("pppd option '{name}' is not supported: {why}"),
            ));
        }
        if let Some(colon) = name.find(':') {
            return self.address_pair(name, colon, path, line);
        }
        // pppd's tty speed: a word strtol reads whole as a non-zero number.
        if parse_c_unsigned(name, 0).is_some_and(|n| n != 0) {
            self.warn(
                path,
                line,
                format!("serial speed '{name}' ignored: a PPTP link has no serial port"),
            );
            return Ok(());
        }
        if name.starts_with('/') {
            return Err(ConfigError::new(
                path,
                line,
                ErrorKind::Refused,
                format!("device '{name}' is not supported: virtgate carries PPP over PPTP itself, so remove it"),
            ));
        }
        Err(ConfigError::new(
            path,
            line,
            ErrorKind::Unknown,
            format!("unrecognized option '{name}' (pppd refuses it too); check the spelling or remove it"),
        ))
    }

    /// pppd's `local:remote` wildcard option; either side may be empty.
    fn address_pair(
        &mut self,
        word: &str,
        colon: usize,
        path: &Path,
        line: u32,
    ) -> Result<(), ConfigError> {
        let (local, remote) = (
            word.get(..colon).unwrap_or(""),
            word.get(colon + 1..).unwrap_or(""),
        );
        let parse_side = |s: &str, which: &str| -> Result<Option<Ipv4Addr>, ConfigError> {
            if s.is_empty() {
                return Ok(None);
            }
            let ip = parse_ipv4(s).ok_or_else(|| {
                ConfigError::new(
                    path,
                    line,
                    ErrorKind::InvalidValue,
                    format!("invalid {which} address '{s}' in '{word}': write local:remote with IPv4 addresses (virtgate does not look up host names)"),
                )
            })?;
            if bad_ip(ip) {
                return Err(ConfigError::new(
                    path,
                    line,
                    ErrorKind::InvalidValue,
                    format!("bad {which} IP address {ip}: loopback, multicast and reserved addresses cannot be used on a link"),
                ));
            }
            // pppd ignores 0.0.0.0 ("not set").
            Ok((!ip.is_unspecified()).then_some(ip))
        };
        let l = parse_side(local, "local")?;
        let r = parse_side(remote, "remote")?;
        if l.is_some() {
            self.opts.local_ip = l;
        }
        if r.is_some() {
            self.opts.remote_ip = r;
        }
        Ok(())
    }

    fn check_enabled(
        &self,
        name: &str,
        by: &str,
        disabled: Option<At>,
        path: &Path,
        line: u32,
    ) -> Result<(), ConfigError> {
        match disabled {
            None => Ok(()),
            Some(at) => Err(ConfigError::new(
                path,
                line,
                ErrorKind::Conflict,
                format!(
                    "{name} option is disabled by {by} at {}:{} (as in pppd); remove one of them",
                    at.path.display(),
                    at.line
                ),
            )),
        }
    }

    fn require(&mut self, m: AuthMethod, at: At) {
        self.opts.auth.require.insert(m);
        if self.require_at.is_none() {
            self.require_at = Some(at);
        }
    }

    /// The first MPPE-selecting option switches from virtgate's default to pppd's starting
    /// point (no MPPE), keeping the stateful setting.
    fn mppe_select(&mut self, at: &At) {
        if self.mppe_explicit.is_none() {
            self.mppe_explicit = Some(at.clone());
            let stateful = self.opts.mppe.stateful_allowed;
            self.opts.mppe = MppePolicy {
                stateful_allowed: stateful,
                ..MppePolicy::OFF
            };
        }
    }

    /// After `nomppe-40`/`nomppe-128`: in pppd MPPE is required exactly when a key length is
    /// left.
    fn mppe_recheck(&mut self, at: At) {
        let m = &mut self.opts.mppe;
        m.required = m.enabled();
        if !m.enabled() {
            self.mppe_off_by = Some(at);
        }
    }

    /// The older MPPE patch's `mppe required,stateless,no40,no56,no128` form. Without
    /// `required` MPPE is optional (negotiated if the peer asks); without `stateless`,
    /// stateful mode is accepted.
    fn old_mppe(&mut self, a: &Word, path: &Path, at: &At) -> Result<(), ConfigError> {
        self.mppe_select(at);
        let mut p = MppePolicy {
            required: false,
            allow_40: true,
            allow_56: true,
            allow_128: true,
            stateful_allowed: true,
        };
        for sub in a.text.split(',') {
            match sub {
                "required" => p.required = true,
                "stateless" => p.stateful_allowed = false,
                "no40" => p.allow_40 = false,
                "no56" => p.allow_56 = false,
                "no128" => p.allow_128 = false,
                other => {
                    return Err(ConfigError::new(
                        path,
                        a.line,
                        ErrorKind::InvalidValue,
                        format!("unknown mppe suboption '{other}': use a comma list of required, stateless, no40, no56, no128 (or the require-mppe-128 style options)"),
                    ));
                }
            }
        }
        if !p.enabled() {
            if p.required {
                return Err(ConfigError::new(
                    path,
                    a.line,
                    ErrorKind::Conflict,
                    "mppe requires encryption but excludes every key length; drop one of no40, no56, no128",
                ));
            }
            self.mppe_off_by = Some(at.clone());
        } else {
            self.mppe_off_by = None;
        }
        self.opts.mppe = p;
        Ok(())
    }

    /// An unsigned number in C `strtoul(.., 0)` notation (`0x1f`, `017`, `15`), within limits.
    fn number(
        &self,
        a: &Word,
        name: &str,
        path: &Path,
        min: u32,
        max: Option<u32>,
    ) -> Result<u32, ConfigError> {
        let v = parse_c_unsigned(&a.text, 0).ok_or_else(|| {
            invalid_number(
                path,
                a,
                name,
                "a whole number of zero or more (decimal, 0x hex or 0 octal)",
            )
        })?;
        if v < min || max.is_some_and(|m| v > m) {
            let range = match max {
                Some(m) => format!("between {min} and {m}"),
                None => format!(">= {min}"),
            };
            return Err(ConfigError::new(
                path,
                a.line,
                ErrorKind::InvalidValue,
                format!("{name} value must be {range}, not {v}"),
            ));
        }
        Ok(v)
    }

    fn finish(mut self, top: &Path) -> Result<Parsed<PppOptions>, ConfigError> {
        if self.radius_plugin {
            self.opts.radius = Some(RadiusPlugin {
                config_file: self
                    .radius_config
                    .take()
                    .map(|c| c.0)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_RADIUS_CONFIG)),
                order: self.radius_order.take().map(|o| o.0).unwrap_or_default(),
            });
        } else if let Some(at) = self
            .radius_config
            .as_ref()
            .map(|c| c.1.clone())
            .or_else(|| self.radius_order.as_ref().map(|o| o.1.clone()))
        {
            return Err(ConfigError::new(
                &at.path,
                at.line,
                ErrorKind::Conflict,
                "this radius option needs 'plugin radius.so' in the options; add it or remove this line",
            ));
        }
        self.opts.ms_dns = pair(&self.dns);
        self.opts.ms_wins = pair(&self.wins);

        // CCP off means no MPPE.
        if let Some(at) = self.noccp_at.clone() {
            if self.opts.mppe.required {
                let msg = match &self.mppe_explicit {
                    Some(m) => format!(
                        "noccp turns CCP off, so the MPPE encryption required at {}:{} can never be negotiated; remove noccp, or add nomppe to run unencrypted",
                        m.path.display(),
                        m.line
                    ),
                    None => "noccp turns CCP off and with it MPPE, which virtgate requires unless told otherwise; remove noccp, or add nomppe to run unencrypted".to_owned(),
                };
                return Err(ConfigError::new(
                    &at.path,
                    at.line,
                    ErrorKind::Conflict,
                    msg,
                ));
            }
            if self.opts.mppe.enabled() {
                self.mppe_off_by = Some(at);
            }
            self.opts.mppe = MppePolicy::OFF;
        }

        if !self.opts.mppe.enabled() {
            // Without a key length the other fields mean nothing; keep one canonical "off".
            self.opts.mppe = MppePolicy::OFF;
            let at = self.mppe_off_by.clone().or(self.mppe_explicit.clone());
            let (p, l) = at.map_or((top.to_path_buf(), 0), |a| (a.path, a.line));
            let hint = if self
                .mppe_explicit
                .as_ref()
                .is_some_and(|_| self.noccp_at.is_none())
            {
                " (as in pppd, MPPE is only used when a require-mppe option is left in effect)"
            } else {
                ""
            };
            self.warn(
                &p,
                l,
                format!("MPPE is off: traffic through the tunnel will not be encrypted{hint}"),
            );
        }

        // MPPE keys come from MS-CHAP: a required MPPE with no MS-CHAP method can never work.
        let policy = self.opts.auth_policy();
        if self.opts.mppe.required {
            let keyed: Vec<AuthMethod> = policy
                .server_requests
                .iter()
                .copied()
                .filter(|m| m.provides_mppe_keys())
                .collect();
            let (p, l) = self
                .require_at
                .clone()
                .map_or((top.to_path_buf(), 0), |a| (a.path, a.line));
            if keyed.is_empty() {
                let asked: Vec<String> = policy
                    .server_requests
                    .iter()
                    .map(|m| m.to_string())
                    .collect();
                return Err(ConfigError::new(
                    &p,
                    l,
                    ErrorKind::Conflict,
                    format!(
                        "MPPE is required but the server may only ask for {}, which yields no MPPE keys (RFC 3079 keys come from MS-CHAP); add require-mschap-v2, or nomppe to run unencrypted",
                        asked.join(", ")
                    ),
                ));
            }
            let unkeyed: Vec<String> = policy
                .server_requests
                .iter()
                .filter(|m| !m.provides_mppe_keys())
                .map(|m| m.to_string())
                .collect();
            if !unkeyed.is_empty() {
                self.warn(
                    &p,
                    l,
                    format!(
                        "peers that authenticate with {} will be disconnected: MPPE is required and only MS-CHAP yields its keys",
                        unkeyed.join(" or ")
                    ),
                );
            }
        }

        Ok(Parsed {
            value: self.opts,
            warnings: self.warnings,
        })
    }
}

fn secs(v: u32) -> Duration {
    Duration::from_secs(u64::from(v))
}

fn pair(list: &[Ipv4Addr]) -> Option<AddrPair> {
    match list {
        [] => None,
        [only] => Some(AddrPair {
            primary: *only,
            secondary: *only,
        }),
        [.., a, b] => Some(AddrPair {
            primary: *a,
            secondary: *b,
        }),
    }
}

fn invalid_number(path: &Path, a: &Word, name: &str, want: &str) -> ConfigError {
    ConfigError::new(
        path,
        a.line,
        ErrorKind::InvalidValue,
        format!(
            "invalid number '{}' for option '{name}': write {want}",
            a.text
        ),
    )
}

/// Parses an unsigned number as C's `strtoul(s, .., base)` does for base 0 (decimal, `0x` hex,
/// leading-`0` octal) or 16 (hex, optional `0x`), with an optional `+`. Unlike pppd, trailing
/// text is an error rather than silently dropped (`mtu 1400abc`), as are negative numbers
/// (pppd would wrap them) and values above 32 bits.
pub(crate) fn parse_c_unsigned(s: &str, base: u32) -> Option<u32> {
    let s = s.strip_prefix('+').unwrap_or(s);
    let has_hex_prefix = s.len() > 2 && (s.starts_with("0x") || s.starts_with("0X"));
    let (digits, radix) = match base {
        16 if has_hex_prefix => (s.get(2..)?, 16),
        16 => (s, 16),
        _ if has_hex_prefix => (s.get(2..)?, 16),
        _ if s.len() > 1 && s.starts_with('0') => (s.get(1..)?, 8),
        _ => (s, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// A dotted-quad IPv4 address (host names are not looked up: the parsers are pure).
pub(crate) fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

/// pppd's `ppp_bad_ip_addr`: loopback (127/8), multicast (224/4) and class E (240/4).
pub(crate) fn bad_ip(ip: Ipv4Addr) -> bool {
    let o = ip.octets()[0];
    o == 127 || o >= 224
}

#[cfg(test)]
mod tests;
