//! From pptpd's files to what the daemon runs with: pptpd.conf (and the pppd options file it
//! names with `option`), chap-secrets; built-in defaults equal to the seed when pptpd.conf is
//! absent at its default path. Also the per-session configurations handed to `virtgate-ppp`.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use virtgate_config::{ChapSecrets, ConfigFile, PppOptions, PptpdConf};
use virtgate_ppp::auth::{AuthMethod, AuthPolicy};
use virtgate_ppp::ccp::{MppeMode, MppePolicy};
use virtgate_ppp::fsm::FsmPolicy;
use virtgate_ppp::ipcp::IpcpPolicy;
use virtgate_ppp::lcp::LcpPolicy;
use virtgate_ppp::mppe::KeyLength;
use virtgate_ppp::{Entropy, Role, SessionConfig};
use virtgate_pptp::conn::ControlConfig;

use crate::cli::{
    AuthArg, ConfigArgs, DialArgs, MppeArg, DEFAULT_CHAP_SECRETS, DEFAULT_PPTPD_CONF, DEFAULT_TUN,
};
use crate::error::DaemonError;
use crate::mss::{mss_for_mtu, DEFAULT_MSS};

/// MPPE's growth per frame (pppd's MPPE_PAD). The TUN MTU is the PPP MTU (pppd's 1500, or
/// `mtu`) minus this when MPPE may be used: the PPP Information field then holds the MPPE
/// header (2) and the encrypted protocol field (2) in front of the IP packet, so a 1496-byte IP
/// packet exactly fits the peer's default 1500-byte MRU — the reduction pppd's ccp.c applies
/// (and the Linux ppp_mppe module accounts as comp_extra).
pub const MPPE_PAD: u16 = 4;

/// Randomness for challenges and magic numbers: the OS generator.
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        if getrandom::fill(buf).is_err() {
            // getrandom only fails when the kernel has no entropy source at all; refuse to
            // continue with predictable challenges.
            eprintln!("virtgate: the OS random generator failed; cannot create challenges");
            std::process::abort();
        }
    }
}

/// Everything the server runs with.
pub struct Settings {
    pub tun: String,
    pub local_ip: Ipv4Addr,
    pub pool: Vec<Ipv4Addr>,
    pub listen: Option<Ipv4Addr>,
    pub stimeout: Duration,
    pub connections: usize,
    pub our_name: String,
    /// TUN MTU.
    pub mtu: u16,
    /// TCP MSS clamp.
    pub mss: u16,
    pub ppp: PppOptions,
    pub secrets: ChapSecrets,
    /// `idle`: hang up after this long without data packets either way.
    pub idle: Option<Duration>,
    /// `maxconnect`: hang up after this long.
    pub maxconnect: Option<Duration>,
    /// `proxyarp`: a proxy neighbour entry for each client on the Ethernet-like interface whose
    /// subnet holds its address.
    pub proxyarp: bool,
    /// pptpd.conf `noipparam`: hooks get an empty ipparam instead of the client's address.
    pub noipparam: bool,
    /// `plugin radius.so`: the radius config file's settings (with `radius-order`).
    pub radius: Option<virtgate_config::RadiusConfig>,
    /// The virtgate.toml these settings came from (`--config`), for its daemon-wide sections.
    pub file: Option<ConfigFile>,
}

/// Abuse limits (issue 7), set by `virtgate daemon` flags; every limit is on by default and
/// `0` turns it off. The defaults leave normal use alone: several clients behind one NAT
/// address, a client reconnecting at once, a few dozen dial-ins from one address in a burst.
/// See docs/security.md for how each is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbuseLimits {
    /// Failed authentications of one user name within `fail_window` that lock it out.
    pub user_failures: u32,
    /// Failed authentications from one source address within `fail_window` that lock it out.
    pub source_failures: u32,
    /// The sliding window failures are counted in.
    pub fail_window: Duration,
    /// How long a lockout lasts (zero: no lockouts at all).
    pub lockout: Duration,
    /// New control connections per minute from one source address (the sustained rate).
    pub conn_rate_per_min: u32,
    /// New control connections one source address may open at once before the rate applies.
    pub conn_burst: u32,
    /// Sessions (authenticated, starting or up) at a time, all users together.
    pub max_sessions: u32,
    /// Sessions of one user name at a time.
    pub max_sessions_per_user: u32,
    /// What a second session of a user does to the first.
    pub single_session: SingleSession,
    /// Addresses and user names tracked per table (failures, rates); beyond it the idlest are
    /// forgotten, so a flood from many sources cannot grow memory without bound.
    pub max_tracked: usize,
}

/// accel-ppp's `single-session`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SingleSession {
    /// A user may have several sessions (up to `max_sessions_per_user`).
    #[default]
    Off,
    /// A user's second session is refused while the first is on.
    Deny,
    /// A user's new session replaces the old one, which is hung up politely.
    Replace,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        AbuseLimits {
            user_failures: 5,
            source_failures: 20,
            fail_window: Duration::from_secs(600),
            lockout: Duration::from_secs(600),
            conn_rate_per_min: 60,
            conn_burst: 40,
            max_sessions: 1000,
            max_sessions_per_user: 64,
            single_session: SingleSession::Off,
            max_tracked: 65_536,
        }
    }
}

/// The per-session time limits (`idle`, `maxconnect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub idle: Option<Duration>,
    pub maxconnect: Option<Duration>,
}

/// Where an option came from, for messages: the pppd options file pptpd.conf names, or the
/// built-in defaults.
fn options_file(conf: &PptpdConf) -> String {
    conf.option.as_ref().map_or_else(
        || "built-in pppd options".into(),
        |p| p.display().to_string(),
    )
}

/// Options the configuration crate parses that virtgate cannot honour: refused (with the file
/// and the option, the configuration crate keeps no line for them) or warned about, never
/// silently ignored.
fn check_unsupported(
    args: &ConfigArgs,
    conf: &PptpdConf,
    ppp: &PppOptions,
) -> Result<(), DaemonError> {
    let conf_file = args.pptpd_conf.display().to_string();
    if ppp.defaultroute {
        return Err(DaemonError::Refused {
            file: options_file(conf),
            option: "defaultroute".into(),
            reason: "on a server it would point the host's default route into a client's \
                     tunnel; remove it (pptpd installations should not have it)"
                .into(),
        });
    }
    if let Some(iface) = &conf.bcrelay {
        return Err(DaemonError::Refused {
            file: conf_file,
            option: format!("bcrelay {iface}"),
            reason: "broadcast relaying to clients is not supported by virtgate; remove the \
                     line (Windows clients find LAN services through DNS/WINS instead)"
                .into(),
        });
    }
    if conf.logwtmp {
        tracing::warn!(
            "{conf_file}: logwtmp has no effect: virtgate records sessions in its log \
             (\"session up\"/\"session down\" lines), not in wtmp"
        );
    }
    let opts = options_file(conf);
    if conf.debug {
        tracing::warn!(
            "{conf_file}: debug has no effect: use --log-level debug (or RUST_LOG=debug)"
        );
    }
    if let Some(p) = &conf.pidfile {
        tracing::warn!(
            "{conf_file}: pidfile {} has no effect: virtgate writes no pid file (systemd tracks \
             the process; the control socket answers `virtgate status`)",
            p.display()
        );
    }
    if ppp.chap.interval.is_some() {
        tracing::warn!(
            "{opts}: chap-interval has no effect: virtgate does not re-challenge an \
             authenticated peer"
        );
    }
    if ppp.ipcp != ppp.lcp.fsm {
        tracing::warn!(
            "{opts}: ipcp-restart/ipcp-max-* differ from the lcp-* values; virtgate runs every \
             protocol (LCP, CCP, IPCP) with the lcp-* timers and counters"
        );
    }
    if ppp.local_ip.is_some() || ppp.remote_ip.is_some() {
        tracing::warn!(
            "{opts}: the local:remote address option has no effect: as with pptpd, localip \
             and remoteip (or, with delegate, chap-secrets) give the addresses"
        );
    }
    for (set, name) in [
        (ppp.usepeerdns, "usepeerdns"),
        (ppp.user.is_some(), "user"),
        (ppp.password.is_some(), "password"),
        (ppp.remotename.is_some(), "remotename"),
    ] {
        if set {
            tracing::warn!(
                "{opts}: {name} has no effect: it is a client-side option (see `virtgate dial`)"
            );
        }
    }
    if ppp.lcp.echo_adaptive {
        tracing::warn!(
            "{}: lcp-echo-adaptive has no effect: virtgate sends LCP Echo-Requests every \
             lcp-echo-interval whatever the traffic",
            options_file(conf)
        );
    }
    Ok(())
}

fn log_warnings(w: &[virtgate_config::Warning]) {
    for w in w {
        tracing::warn!("{w}");
    }
}

/// Reads the files (see the module docs); warnings are logged, errors returned. With
/// `--config`, the virtgate.toml and what it names (see [`load_file`]).
pub fn load(args: &ConfigArgs) -> Result<Settings, DaemonError> {
    if let Some(path) = &args.config {
        return load_file(args, path);
    }
    let conf = if args.pptpd_conf == Path::new(DEFAULT_PPTPD_CONF) && !args.pptpd_conf.exists() {
        tracing::info!(
            "{DEFAULT_PPTPD_CONF} not found: using built-in defaults (localip 192.168.0.1, \
             remoteip 192.168.0.100-200, MS-CHAPv2 + MPPE-128 required)"
        );
        PptpdConf::builtin_default()
    } else {
        let (c, w) = PptpdConf::read(&args.pptpd_conf)?.into_parts();
        log_warnings(&w);
        c
    };
    let (ppp, w) = conf.read_ppp_options()?.into_parts();
    log_warnings(&w);
    // pppd's `chap-secrets FILE` option names the file when the command line does not.
    let mut args = args.clone();
    if let Some(p) = &ppp.chap_secrets {
        if args.chap_secrets == Path::new(DEFAULT_CHAP_SECRETS) {
            args.chap_secrets = p.clone();
        } else if &args.chap_secrets != p {
            tracing::warn!(
                "{}: chap-secrets {} is overridden by --chap-secrets {}",
                options_file(&conf),
                p.display(),
                args.chap_secrets.display()
            );
        }
    }
    let secrets = read_secrets(&args, &ppp)?;
    let s = Settings::new(&args, &conf, ppp, secrets)?;
    warn_nt_hashes_without_chap_md5(&s);
    Ok(s)
}

/// The warning for chap-secrets lines holding NT hashes when the options allow CHAP-MD5.
fn warn_nt_hashes_without_chap_md5(s: &Settings) {
    for who in s.nt_hash_users_without_chap_md5() {
        tracing::warn!(
            "{who}: the secret is an NT hash, which CHAP-MD5 (allowed by the options) cannot \
             use: this user can log in with MS-CHAP or PAP only"
        );
    }
}

/// `--config FILE`: pptpd.conf, the pppd options and the secrets come from the virtgate.toml
/// (its tables, or the classic files they name); `--tun`/`--chap-secrets` given on the command
/// line win over it. The daemon-wide sections are kept in [`Settings::file`].
fn load_file(args: &ConfigArgs, path: &Path) -> Result<Settings, DaemonError> {
    let (file, w) = ConfigFile::read(path)?.into_parts();
    log_warnings(&w);
    let mut args = args.clone();
    if args.tun == DEFAULT_TUN {
        if let Some(t) = &file.daemon.tun {
            args.tun = t.clone();
        }
    }
    if args.uplink.is_none() {
        args.uplink = file.daemon.uplink.clone();
    }
    args.pptpd_conf = file.pptpd_source.clone();
    let secrets = match (&file.secrets, args.chap_secrets.as_path()) {
        (Some(s), p) if p == Path::new(DEFAULT_CHAP_SECRETS) => {
            args.chap_secrets = s.path().to_path_buf();
            s.clone()
        }
        // No secrets in the file, or --chap-secrets given: the classic lookup.
        _ => {
            let mut a = args.clone();
            if let Some(p) = file.ppp.chap_secrets.clone() {
                if a.chap_secrets == Path::new(DEFAULT_CHAP_SECRETS) {
                    a.chap_secrets = p;
                }
            }
            args.chap_secrets = a.chap_secrets.clone();
            read_secrets(&a, &file.ppp)?
        }
    };
    if secrets.entries().is_empty() {
        tracing::warn!("{}: no users: nobody can log in", path.display());
    }
    let mut s = Settings::new(&args, &file.pptpd, file.ppp.clone(), secrets)?;
    warn_nt_hashes_without_chap_md5(&s);
    s.file = Some(file);
    Ok(s)
}

/// The secrets file the arguments name (missing at the default path: nobody can log in).
fn read_secrets(args: &ConfigArgs, ppp: &PppOptions) -> Result<ChapSecrets, DaemonError> {
    if args.chap_secrets == Path::new(DEFAULT_CHAP_SECRETS) && !args.chap_secrets.exists() {
        tracing::warn!(
            "{DEFAULT_CHAP_SECRETS} not found: NOBODY CAN LOG IN until it exists \
             (one line per user: `user1 {} password1 *`)",
            ppp.name.as_deref().unwrap_or("*")
        );
        return Ok(ChapSecrets::parse("", &args.chap_secrets)?.value);
    }
    let (s, w) = ChapSecrets::read(&args.chap_secrets)?.into_parts();
    log_warnings(&w);
    if s.entries().is_empty() {
        tracing::warn!(
            "{}: no secrets: nobody can log in",
            args.chap_secrets.display()
        );
    }
    Ok(s)
}

impl Settings {
    /// Combines parsed configuration into settings.
    pub fn new(
        args: &ConfigArgs,
        conf: &PptpdConf,
        ppp: PppOptions,
        secrets: ChapSecrets,
    ) -> Result<Settings, DaemonError> {
        let local_ip = conf
            .localip
            .first()
            .copied()
            .unwrap_or(Ipv4Addr::new(192, 168, 0, 1));
        if conf.localip.len() > 1 {
            // One TUN carries one server address; pptpd's per-client localip pairing is not
            // needed for routing (each client has its own /32), so the first serves all.
            tracing::warn!(
                "pptpd.conf lists {} localip addresses; virtgate uses {local_ip} for every client",
                conf.localip.len()
            );
        }
        check_unsupported(args, conf, &ppp)?;
        // `plugin radius.so`: its radiusclient.conf (and servers file) are read here.
        let radius = match &ppp.radius {
            Some(plugin) => {
                let (mut r, w) =
                    virtgate_config::RadiusConfig::read(&plugin.config_file)?.into_parts();
                log_warnings(&w);
                r.order = plugin.order;
                Some(r)
            }
            None => None,
        };
        let pool = if conf.delegate {
            // pptpd's `delegate` hands address allocation to pppd (and its radius plugin);
            // virtgate's pppd part has no other source than chap-secrets.
            tracing::info!(
                "{}: delegate: client addresses come only from chap-secrets (a user without \
                 a single pinned address there gets no address); remoteip is not used",
                args.pptpd_conf.display()
            );
            Vec::new()
        } else {
            conf.remoteip.clone()
        };
        let mppe = ppp.mppe.enabled() && ppp.ccp;
        let link_mtu = ppp.lcp.mtu.unwrap_or(1500);
        let mtu = if mppe {
            link_mtu.saturating_sub(MPPE_PAD)
        } else {
            link_mtu
        };
        let mru = (ppp.lcp.mru != 1500).then_some(ppp.lcp.mru);
        let mss = match (ppp.lcp.mtu, mru) {
            (None, None) => DEFAULT_MSS,
            (a, b) => mss_for_mtu(a.unwrap_or(u16::MAX).min(b.unwrap_or(u16::MAX))),
        };
        Ok(Settings {
            tun: args.tun.clone(),
            local_ip,
            pool,
            listen: conf.listen,
            stimeout: conf.stimeout,
            connections: conf.max_clients().max(1),
            our_name: ppp.name.clone().unwrap_or_else(|| "pptpd".into()),
            mtu,
            mss,
            idle: ppp.idle.filter(|d| !d.is_zero()),
            maxconnect: ppp.maxconnect.filter(|d| !d.is_zero()),
            proxyarp: ppp.proxyarp,
            noipparam: conf.noipparam,
            radius,
            ppp,
            secrets,
            file: None,
        })
    }

    pub fn limits(&self) -> Limits {
        Limits {
            idle: self.idle,
            maxconnect: self.maxconnect,
        }
    }

    pub fn control_config(&self) -> ControlConfig {
        ControlConfig {
            start_timeout: self.stimeout,
            ..control_config_default()
        }
    }

    /// The PPP session configuration of the server role, from the pppd options.
    pub fn server_session_config(&self) -> SessionConfig {
        let o = &self.ppp;
        let auth = AuthPolicy {
            methods: o
                .auth_policy()
                .server_requests
                .into_iter()
                .map(auth_method)
                .collect(),
            restart: o.chap.restart,
            max_transmits: o.chap.max_challenge,
            // pppd's `pap-timeout 0` means no limit; a day stands for it.
            pap_wait: o.pap.timeout.unwrap_or(Duration::from_secs(86_400)),
            ..AuthPolicy::default()
        };
        let pair = |p: Option<virtgate_config::AddrPair>| match p {
            Some(p) => [Some(p.primary), Some(p.secondary)],
            None => [None, None],
        };
        SessionConfig {
            role: Role::Server,
            our_name: self.our_name.clone(),
            lcp: lcp_policy(o),
            auth,
            mppe: mppe_policy(o),
            ipcp: IpcpPolicy {
                local: self.local_ip,
                dns: pair(o.ms_dns),
                wins: pair(o.ms_wins),
                ..IpcpPolicy::default()
            },
            fsm: fsm_policy(o.lcp.fsm),
        }
    }

    /// The chap-secrets entry of `client` for our name (pppd's lookup; with
    /// `chapms-strip-domain` a `DOMAIN\` prefix is dropped first).
    fn entry(&self, client: &str) -> Option<&virtgate_config::Secret> {
        let client = if self.ppp.chap.strip_domain {
            client.rsplit_once('\\').map_or(client, |(_, u)| u)
        } else {
            client
        };
        self.secrets.lookup(client, &self.our_name)
    }

    /// The secret of `client`, or `None` (unknown user, or a line that allows no address:
    /// pppd refuses those too).
    pub fn secret_for(&self, client: &str) -> Option<virtgate_ppp::auth::Secret> {
        let e = self.entry(client)?;
        if e.addrs.is_none() {
            return None;
        }
        Some(match e.nt_hash {
            Some(h) => virtgate_ppp::auth::Secret::NtHash(h),
            None => virtgate_ppp::auth::Secret::Plain(e.secret.clone()),
        })
    }

    /// When the options let clients use CHAP-MD5: `FILE:LINE: USER` of every chap-secrets line
    /// whose secret is an NT hash (CHAP-MD5 needs the password; those users must use MS-CHAP
    /// or PAP).
    pub fn nt_hash_users_without_chap_md5(&self) -> Vec<String> {
        if !self
            .server_session_config()
            .auth
            .methods
            .contains(&AuthMethod::ChapMd5)
        {
            return Vec::new();
        }
        self.secrets
            .entries()
            .iter()
            .filter(|e| e.nt_hash.is_some())
            .map(|e| format!("{}:{}: {}", self.secrets.path().display(), e.line, e.client))
            .collect()
    }

    /// The address chap-secrets pins for `client`, if any.
    pub fn pinned_address(&self, client: &str) -> Option<Ipv4Addr> {
        self.entry(client)?.addrs.pinned()
    }

    /// The addresses chap-secrets allows `client` (`None`: no entry, any pool address).
    pub fn allowed_addrs(&self, client: &str) -> Option<&virtgate_config::AllowedAddrs> {
        self.entry(client).map(|e| &e.addrs)
    }

    /// The addresses the firewall treats as clients: the pool plus every address pinned in
    /// chap-secrets.
    pub fn firewall_pool(&self) -> Vec<Ipv4Addr> {
        let mut v = self.pool.clone();
        for e in self.secrets.entries() {
            if let Some(p) = e.addrs.pinned() {
                if !v.contains(&p) {
                    v.push(p);
                }
            }
        }
        v
    }
}

fn auth_method(m: virtgate_config::AuthMethod) -> AuthMethod {
    match m {
        virtgate_config::AuthMethod::MsChapV2 => AuthMethod::MsChapV2,
        virtgate_config::AuthMethod::MsChap => AuthMethod::MsChapV1,
        virtgate_config::AuthMethod::ChapMd5 => AuthMethod::ChapMd5,
        virtgate_config::AuthMethod::Pap => AuthMethod::Pap,
    }
}

fn fsm_policy(f: virtgate_config::FsmOptions) -> FsmPolicy {
    FsmPolicy {
        restart: f.restart,
        max_configure: f.max_configure,
        max_terminate: f.max_terminate,
        max_failure: f.max_failure,
    }
}

fn lcp_policy(o: &PppOptions) -> LcpPolicy {
    let l = &o.lcp;
    LcpPolicy {
        mru: l.mru,
        mtu: l.mtu.unwrap_or(1500),
        accm: if l.request_asyncmap {
            Some(l.asyncmap)
        } else {
            LcpPolicy::default().accm
        },
        pfc: l.pcomp,
        acfc: l.accomp,
        magic: l.magic,
        echo_interval: l.echo_interval,
        echo_failure: l.echo_failure,
    }
}

fn mppe_policy(o: &PppOptions) -> MppePolicy {
    if !o.ccp {
        return MppePolicy {
            required: false,
            allow_40: false,
            allow_56: false,
            allow_128: false,
            allow_stateful: false,
        };
    }
    let m = o.mppe;
    MppePolicy {
        required: m.required,
        allow_40: m.allow_40,
        allow_56: m.allow_56,
        allow_128: m.allow_128,
        allow_stateful: m.stateful_allowed,
    }
}

pub fn control_config_default() -> ControlConfig {
    ControlConfig {
        hostname: "virtgate".into(),
        vendor: "virtgate".into(),
        ..ControlConfig::default()
    }
}

/// The client role's session configuration for `virtgate dial`.
pub fn client_session_config(args: &DialArgs) -> SessionConfig {
    let method = match args.auth {
        AuthArg::Mschapv2 => AuthMethod::MsChapV2,
        AuthArg::Mschap => AuthMethod::MsChapV1,
        AuthArg::Chap => AuthMethod::ChapMd5,
        AuthArg::Pap => AuthMethod::Pap,
    };
    let mppe = match args.mppe {
        MppeArg::Require => MppePolicy {
            required: true,
            allow_40: false,
            allow_56: false,
            allow_128: true,
            allow_stateful: false,
        },
        MppeArg::Allow => MppePolicy::default(),
        MppeArg::Refuse => MppePolicy {
            required: false,
            allow_40: false,
            allow_56: false,
            allow_128: false,
            allow_stateful: false,
        },
    };
    SessionConfig {
        role: Role::Client {
            user: args.user.clone(),
            password: args.password.clone(),
        },
        our_name: args.user.clone(),
        lcp: LcpPolicy {
            mru: args.mru,
            ..LcpPolicy::default()
        },
        auth: AuthPolicy {
            methods: vec![method],
            ..AuthPolicy::default()
        },
        mppe,
        ipcp: IpcpPolicy {
            request_dns: true,
            ..IpcpPolicy::default()
        },
        fsm: FsmPolicy::default(),
    }
}

/// `128-stateless`, `40-stateful`, ... or `none`, as `dial` prints it.
pub fn mppe_name(m: Option<MppeMode>) -> String {
    match m {
        None => "none".into(),
        Some(m) => {
            let bits = match m.key_length {
                KeyLength::Bits40 => 40,
                KeyLength::Bits56 => 56,
                KeyLength::Bits128 => 128,
            };
            let mode = if m.stateless { "stateless" } else { "stateful" };
            format!("{bits}-{mode}")
        }
    }
}

pub fn stop_reason_shutdown() -> virtgate_pptp::control::StopReason {
    virtgate_pptp::control::StopReason::LocalShutdown
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plaintext of a secret (`None` for none or a hash).
    fn plain(s: Option<virtgate_ppp::auth::Secret>) -> Option<String> {
        match s? {
            virtgate_ppp::auth::Secret::Plain(p) => Some(p),
            _ => None,
        }
    }
    use std::path::PathBuf;

    fn settings(conf: &str, opts: &str, secrets: &str) -> Settings {
        try_settings(conf, opts, secrets).unwrap()
    }

    fn try_settings(conf: &str, opts: &str, secrets: &str) -> Result<Settings, DaemonError> {
        let args = ConfigArgs {
            config: None,
            pptpd_conf: PathBuf::from("pptpd.conf"),
            chap_secrets: PathBuf::from("chap-secrets"),
            tun: "vgtest0".into(),
            uplink: None,
        };
        let conf = PptpdConf::parse(conf, "pptpd.conf").unwrap().value;
        let ppp = PppOptions::parse(opts, "options").unwrap().value;
        let secrets = ChapSecrets::parse(secrets, "chap-secrets").unwrap().value;
        Settings::new(&args, &conf, ppp, secrets)
    }

    #[test]
    fn idle_maxconnect_and_proxyarp_are_carried_to_the_engine() {
        let s = settings(
            SEED_CONF,
            &format!("{SEED_OPTS}idle 30\nmaxconnect 3600\nproxyarp\n"),
            "",
        );
        assert_eq!(s.idle, Some(Duration::from_secs(30)));
        assert_eq!(s.maxconnect, Some(Duration::from_secs(3600)));
        assert!(s.proxyarp);
        let s = settings(SEED_CONF, SEED_OPTS, "");
        assert_eq!((s.idle, s.maxconnect, s.proxyarp), (None, None, false));
    }

    #[test]
    fn defaultroute_and_bcrelay_are_refused_naming_file_and_option() {
        let e = try_settings(SEED_CONF, &format!("{SEED_OPTS}defaultroute\n"), "")
            .err()
            .unwrap();
        let m = e.to_string();
        assert!(
            m.starts_with("built-in pppd options: option 'defaultroute' refused"),
            "{m}"
        );
        let e = try_settings(&format!("{SEED_CONF}bcrelay eth1\n"), SEED_OPTS, "")
            .err()
            .unwrap();
        let m = e.to_string();
        assert!(
            m.starts_with("pptpd.conf: option 'bcrelay eth1' refused"),
            "{m}"
        );
        // logwtmp is only warned about; nodefaultroute is fine.
        assert!(try_settings(&format!("{SEED_CONF}logwtmp\n"), SEED_OPTS, "").is_ok());
        assert!(try_settings(SEED_CONF, &format!("{SEED_OPTS}nodefaultroute\n"), "").is_ok());
    }

    #[test]
    fn pap_timeout_is_the_servers_wait_for_an_authenticate_request() {
        let s = settings(
            SEED_CONF,
            "name pptpd\nrequire-pap\nnomppe\npap-timeout 12\n",
            "",
        );
        assert_eq!(
            s.server_session_config().auth.pap_wait,
            Duration::from_secs(12)
        );
        let s = settings(
            SEED_CONF,
            "name pptpd\nrequire-pap\nnomppe\npap-timeout 0\n",
            "",
        );
        assert_eq!(
            s.server_session_config().auth.pap_wait,
            Duration::from_secs(86_400)
        );
    }

    #[test]
    fn the_options_files_chap_secrets_is_used_unless_the_flag_names_one() {
        let dir = std::env::temp_dir().join(format!("vg-secrets-opt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let secrets = dir.join("my-secrets");
        std::fs::write(&secrets, "ann pptpd pw *\n").unwrap();
        let opts = dir.join("options");
        std::fs::write(
            &opts,
            format!("name pptpd\nchap-secrets {}\n", secrets.display()),
        )
        .unwrap();
        let conf = dir.join("pptpd.conf");
        std::fs::write(
            &conf,
            format!(
                "option {}\nlocalip 10.0.0.1\nremoteip 10.0.0.2-3\n",
                opts.display()
            ),
        )
        .unwrap();
        let mut args = ConfigArgs {
            config: None,
            pptpd_conf: conf,
            chap_secrets: PathBuf::from(DEFAULT_CHAP_SECRETS),
            tun: "t".into(),
            uplink: None,
        };
        let s = load(&args).unwrap();
        assert_eq!(plain(s.secret_for("ann")).as_deref(), Some("pw"));
        // An explicit flag wins.
        let other = dir.join("other");
        std::fs::write(&other, "bob pptpd pb *\n").unwrap();
        args.chap_secrets = other;
        let s = load(&args).unwrap();
        assert_eq!(s.secret_for("ann"), None);
        assert_eq!(plain(s.secret_for("bob")).as_deref(), Some("pb"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn delegate_means_addresses_only_from_chap_secrets() {
        let s = settings("delegate\n", SEED_OPTS, "a pptpd x 10.0.0.11\n");
        assert!(s.pool.is_empty());
        assert_eq!(s.firewall_pool(), vec![Ipv4Addr::new(10, 0, 0, 11)]);
    }

    const SEED_CONF: &str = "localip 192.168.0.1\nremoteip 192.168.0.100-200\n";
    const SEED_OPTS: &str = "name pptpd\nrefuse-pap\nrefuse-chap\nrefuse-mschap\n\
        require-mschap-v2\nrequire-mppe-128\nms-dns 8.8.8.8\nms-dns 8.8.4.4\n";

    #[test]
    fn seed_values() {
        let s = settings(SEED_CONF, SEED_OPTS, "user1 pptpd password1 *\n");
        assert_eq!(s.local_ip, Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(s.pool.len(), 101);
        assert_eq!(s.mtu, 1496, "pppd's 1500 minus MPPE_PAD");
        assert_eq!(s.mss, 1356);
        assert_eq!(s.connections, 100);
        assert_eq!(s.our_name, "pptpd");
        let c = s.server_session_config();
        assert_eq!(c.role, Role::Server);
        assert_eq!(c.our_name, "pptpd");
        assert_eq!(c.auth.methods, vec![AuthMethod::MsChapV2]);
        assert!(c.mppe.required && c.mppe.allow_128 && !c.mppe.allow_40);
        assert!(!c.mppe.allow_stateful);
        assert_eq!(c.ipcp.local, s.local_ip);
        assert_eq!(
            c.ipcp.dns,
            [
                Some(Ipv4Addr::new(8, 8, 8, 8)),
                Some(Ipv4Addr::new(8, 8, 4, 4))
            ]
        );
        assert_eq!(c.ipcp.wins, [None, None]);
    }

    #[test]
    fn mtu_and_mru_set_the_tun_mtu_and_the_clamp() {
        let s = settings(SEED_CONF, &format!("{SEED_OPTS}mtu 1400\n"), "");
        assert_eq!((s.mtu, s.mss), (1396, 1360));
        let s = settings(SEED_CONF, &format!("{SEED_OPTS}mru 1300\n"), "");
        assert_eq!((s.mtu, s.mss), (1496, 1260));
        let s = settings(SEED_CONF, &format!("{SEED_OPTS}mtu 1400\nmru 1380\n"), "");
        assert_eq!(s.mss, 1340);
        // No MPPE: no pad.
        let s = settings(SEED_CONF, "name pptpd\nrequire-chap\nnomppe\n", "");
        assert_eq!(s.mtu, 1500);
        assert!(!s.server_session_config().mppe.required);
    }

    #[test]
    fn secrets_are_looked_up_for_our_name_with_pinned_addresses() {
        let s = settings(
            SEED_CONF,
            SEED_OPTS,
            "user1 pptpd password1 *\n\
             user2 otherserver secret2 *\n\
             user3 * secret3 192.168.0.150\n\
             user4 pptpd secret4 -\n",
        );
        assert_eq!(plain(s.secret_for("user1")).as_deref(), Some("password1"));
        assert_eq!(s.secret_for("user2"), None, "line for another server");
        assert_eq!(s.secret_for("nobody"), None);
        assert_eq!(plain(s.secret_for("user3")).as_deref(), Some("secret3"));
        assert_eq!(
            s.pinned_address("user3"),
            Some(Ipv4Addr::new(192, 168, 0, 150))
        );
        assert_eq!(s.pinned_address("user1"), None);
        let a = Ipv4Addr::new(192, 168, 0, 100);
        assert!(s.allowed_addrs("user1").is_some_and(|x| x.permits(a)));
        assert!(s.allowed_addrs("user3").is_some_and(|x| !x.permits(a)));
        assert!(s.allowed_addrs("nobody").is_none());
        assert_eq!(
            s.secret_for("user4"),
            None,
            "'-' allows no address: pppd refuses"
        );
    }

    #[test]
    fn nt_hash_secrets_reach_the_authenticator_as_hashes() {
        let h = "5835048ce94ad0564e29a924a03510ef";
        let s = settings(
            SEED_CONF,
            SEED_OPTS,
            &format!("ann pptpd nthash:{h} *\nbob pptpd pb *\n"),
        );
        let Some(virtgate_ppp::auth::Secret::NtHash(x)) = s.secret_for("ann") else {
            panic!("not a hash")
        };
        assert_eq!(x, virtgate_ppp::mschap::nt_password_hash("password1"));
        assert_eq!(plain(s.secret_for("bob")).as_deref(), Some("pb"));
        assert_eq!(s.nt_hash_users_without_chap_md5(), Vec::<String>::new());
        // Options that allow CHAP-MD5: the hashed users are named (the daemon warns).
        let s = settings(
            SEED_CONF,
            "name pptpd\nrequire-chap\nrequire-mschap-v2\n",
            &format!("ann pptpd nthash:{h} *\nbob pptpd pb *\n"),
        );
        assert_eq!(s.nt_hash_users_without_chap_md5().len(), 1);
        assert!(s.nt_hash_users_without_chap_md5()[0].contains(":1: ann"));
    }

    #[test]
    fn strip_domain_drops_a_windows_domain_prefix() {
        let s = settings(
            SEED_CONF,
            &format!("{SEED_OPTS}chapms-strip-domain\n"),
            "user1 pptpd password1 *\n",
        );
        assert_eq!(
            plain(s.secret_for("CORP\\user1")).as_deref(),
            Some("password1")
        );
        let s = settings(SEED_CONF, SEED_OPTS, "user1 pptpd password1 *\n");
        assert_eq!(s.secret_for("CORP\\user1"), None);
    }

    #[test]
    fn firewall_pool_includes_pinned_addresses_outside_remoteip() {
        let s = settings(
            "localip 10.0.0.1\nremoteip 10.0.0.10-11\n",
            SEED_OPTS,
            "a pptpd x 10.0.0.11\nb pptpd y 10.9.9.9\n",
        );
        assert_eq!(
            s.firewall_pool(),
            vec![
                Ipv4Addr::new(10, 0, 0, 10),
                Ipv4Addr::new(10, 0, 0, 11),
                Ipv4Addr::new(10, 9, 9, 9)
            ]
        );
    }

    #[test]
    fn mppe_names_as_dial_prints_them() {
        let m = |k, s| {
            Some(MppeMode {
                key_length: k,
                stateless: s,
            })
        };
        assert_eq!(mppe_name(m(KeyLength::Bits128, true)), "128-stateless");
        assert_eq!(mppe_name(m(KeyLength::Bits40, false)), "40-stateful");
        assert_eq!(mppe_name(None), "none");
    }

    #[test]
    fn dial_policies_follow_the_flags() {
        let a = DialArgs {
            server: Ipv4Addr::new(10, 0, 0, 1),
            user: "u".into(),
            password: "p".into(),
            tun: "t".into(),
            mppe: MppeArg::Refuse,
            auth: AuthArg::Chap,
            mru: 1400,
            load: Default::default(),
        };
        let c = client_session_config(&a);
        assert_eq!(c.auth.methods, vec![AuthMethod::ChapMd5]);
        assert!(!c.mppe.any_allowed());
        assert!(matches!(c.role, Role::Client { ref user, .. } if user == "u"));
        assert_eq!(c.lcp.mru, 1400);
        let c = client_session_config(&DialArgs {
            mppe: MppeArg::Require,
            auth: AuthArg::Mschapv2,
            ..a
        });
        assert!(c.mppe.required && c.mppe.allow_128 && !c.mppe.allow_40);
    }
}
