//! The command line (clap derive).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "virtgate",
    version,
    about = "PPTP VPN server (a drop-in for poptop pptpd + pppd) and client"
)]
pub struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter; RUST_LOG wins if set.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the PPTP server with pptpd's configuration files.
    Daemon(DaemonArgs),
    /// Inspect virtgate's firewall.
    Firewall {
        #[command(subcommand)]
        command: FirewallCommand,
    },
    /// Dial a PPTP server: bring up a local TUN with the address it assigns.
    Dial(DialArgs),
    /// Show the running daemon's version, uptime, listeners, session counts and counters.
    Status(StatusArgs),
    /// List the running daemon's sessions.
    Sessions(SessionsArgs),
    /// Hang sessions up politely (LCP Terminate, Call-Disconnect-Notify); their addresses go
    /// back to the pool.
    Terminate(TerminateArgs),
    /// Make the running daemon re-read chap-secrets, the options file and pptpd.conf (as
    /// SIGHUP); live sessions stay up, new settings apply to new sessions.
    Reload(ReloadArgs),
    /// Configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The running daemon's virtual networks (virsh's net-* commands).
    Net {
        #[command(subcommand)]
        command: crate::networks::NetCommand,
    },
    /// `port add|del|list`, `qemu-ifup`, `qemu-ifdown`: guests' ports (ports.rs).
    #[command(flatten)]
    Ports(crate::ports::PortsCommand),
    /// Print the NT hash of a password as a chap-secrets secret (`nthash:<32 hex>`), to store
    /// instead of the password. Reads the password from standard input (not echoed on a
    /// terminal); it works with MS-CHAPv1/v2 and PAP, not CHAP-MD5.
    HashPassword,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the files as `virtgate daemon` would read them, without starting anything.
    Check(ConfigCheckArgs),
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub const DEFAULT_SOCKET: &str = crate::control::DEFAULT_SOCKET;

/// Where the daemon's control socket is.
#[derive(Debug, Clone, Args)]
pub struct SocketArgs {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Only this user's sessions.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["user", "ip", "id", "all"])))]
pub struct TerminateArgs {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Every session of this user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// The session with this tunnel address.
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<Ipv4Addr>,
    /// The session with this id (the ID column of `virtgate sessions`).
    #[arg(long, value_name = "ID")]
    pub id: Option<u16>,
    /// Every session.
    #[arg(long)]
    pub all: bool,
    /// Print the daemon's JSON answer.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Print the daemon's JSON answer.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum FirewallCommand {
    /// Print the nftables ruleset `virtgate daemon` would apply, without applying it.
    Show(FirewallShowArgs),
}

/// The configuration files (shared by `daemon` and `firewall show`).
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// virtgate.toml: one file that can hold everything below and the daemon's settings
    /// (docs/configuration.md). Flags given on the command line win over the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// pptpd.conf; its `option` line names the pppd options file. If the default path does not
    /// exist, built-in defaults (localip 192.168.0.1, remoteip 192.168.0.100-200, MS-CHAPv2 +
    /// MPPE-128 required) are used.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_PPTPD_CONF)]
    pub pptpd_conf: PathBuf,

    /// pppd's chap-secrets.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CHAP_SECRETS)]
    pub chap_secrets: PathBuf,

    /// Name of the TUN interface carrying every session.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_TUN)]
    pub tun: String,

    /// Interface to masquerade clients toward (default: the interface of the default route).
    #[arg(long, value_name = "IFNAME")]
    pub uplink: Option<String>,
}

pub const DEFAULT_PPTPD_CONF: &str = "/etc/pptpd.conf";
pub const DEFAULT_CHAP_SECRETS: &str = "/etc/ppp/chap-secrets";
pub const DEFAULT_TUN: &str = "vgpptp0";

#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Do not touch the firewall or ip_forward (for admins who manage their own).
    #[arg(long)]
    pub no_firewall: bool,

    #[command(flatten)]
    pub networks: crate::networks::NetworkArgs,

    #[command(flatten)]
    pub socket: SocketArgs,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (off by default).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,

    /// Run this program when a session comes up, with pppd's ip-up arguments and environment.
    #[arg(long, value_name = "PATH")]
    pub ip_up: Option<PathBuf>,

    /// Run this program when a session that was up goes down (pppd's ip-down).
    #[arg(long, value_name = "PATH")]
    pub ip_down: Option<PathBuf>,

    #[command(flatten)]
    pub abuse: AbuseArgs,

    /// Keep every capability after start-up. By default only CAP_NET_ADMIN, CAP_NET_RAW and
    /// CAP_NET_BIND_SERVICE stay (also for nft, ovs-vsctl and the ip-up/ip-down hooks); use this
    /// when a hook needs more.
    #[arg(long)]
    pub keep_capabilities: bool,
}

/// A count where `0` or `off` turns the limit off.
fn limit_count(s: &str) -> Result<u32, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    s.parse()
        .map_err(|_| format!("{s:?}: give a whole number, or 0 / off to turn the limit off"))
}

/// Seconds where `0` or `off` turns the limit off.
fn limit_secs(s: &str) -> Result<u64, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    s.parse()
        .map_err(|_| format!("{s:?}: give seconds, or 0 / off to turn the limit off"))
}

/// Abuse limits of `virtgate daemon` (docs/security.md). Each is on by default; `0` or `off`
/// turns it off.
#[derive(Debug, Clone, Args)]
pub struct AbuseArgs {
    /// Lock a user name out after this many failed logins within --lockout-window.
    #[arg(long, value_name = "N", default_value = "5", value_parser = limit_count)]
    pub lockout_user: u32,
    /// Lock a source address out after this many failed logins (any user names) within
    /// --lockout-window; higher than --lockout-user because users behind one NAT share it.
    #[arg(long, value_name = "N", default_value = "20", value_parser = limit_count)]
    pub lockout_source: u32,
    /// The sliding window failed logins are counted in, in seconds.
    #[arg(long, value_name = "SECS", default_value = "600", value_parser = limit_secs)]
    pub lockout_window: u64,
    /// How long a lockout lasts, in seconds (0/off: no lockouts).
    #[arg(long, value_name = "SECS", default_value = "600", value_parser = limit_secs)]
    pub lockout_time: u64,
    /// New control connections a minute from one source address (accel-ppp's connlimit);
    /// connections over it are closed at once.
    #[arg(long, value_name = "PER_MIN", default_value = "60", value_parser = limit_count)]
    pub conn_rate: u32,
    /// New control connections one source address may open at once before --conn-rate applies.
    #[arg(long, value_name = "N", default_value = "40", value_parser = limit_count)]
    pub conn_burst: u32,
    /// Sessions at a time, all users together.
    #[arg(long, value_name = "N", default_value = "1000", value_parser = limit_count)]
    pub max_sessions: u32,
    /// Sessions of one user name at a time (high by default: accounts shared by a team).
    #[arg(long, value_name = "N", default_value = "64", value_parser = limit_count)]
    pub max_sessions_per_user: u32,
    /// A user's second session: allowed (off), refused (deny), or it replaces the first, which
    /// is hung up politely (replace).
    #[arg(long, value_enum, value_name = "POLICY", default_value = "off")]
    pub single_session: crate::settings::SingleSession,
}

impl AbuseArgs {
    pub fn limits(&self) -> crate::settings::AbuseLimits {
        crate::settings::AbuseLimits {
            user_failures: self.lockout_user,
            source_failures: self.lockout_source,
            fail_window: std::time::Duration::from_secs(self.lockout_window),
            lockout: std::time::Duration::from_secs(self.lockout_time),
            conn_rate_per_min: self.conn_rate,
            conn_burst: self.conn_burst,
            max_sessions: self.max_sessions,
            max_sessions_per_user: self.max_sessions_per_user,
            single_session: self.single_session,
            ..crate::settings::AbuseLimits::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct FirewallShowArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// The virtual networks whose rules the daemon would add.
    #[command(flatten)]
    pub networks: crate::networks::NetworkArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MppeArg {
    /// No session without MPPE-128 (default).
    Require,
    /// Use MPPE when the server offers it.
    Allow,
    /// Never encrypt.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthArg {
    Mschapv2,
    Mschap,
    Chap,
    Pap,
}

#[derive(Debug, Args)]
pub struct DialArgs {
    /// The server's IPv4 address.
    pub server: Ipv4Addr,
    /// User name (the chap-secrets client column).
    #[arg(long)]
    pub user: String,
    /// Password.
    #[arg(long)]
    pub password: String,
    /// Name of the local TUN interface.
    #[arg(long, value_name = "NAME", default_value = "vgdial0")]
    pub tun: String,
    /// MPPE policy.
    #[arg(long, value_enum, default_value_t = MppeArg::Require)]
    pub mppe: MppeArg,
    /// The only authentication method we accept from the server.
    #[arg(long, value_enum, default_value_t = AuthArg::Mschapv2)]
    pub auth: AuthArg,
    /// The MRU to ask the server for (pppd's `mru`).
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u16).range(128..=16384))]
    pub mru: u16,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// `virtgate dial --load N`: many sessions from one process, for benchmarks (dial_load.rs).
/// `Default` is what the flags default to (no load mode).
#[derive(Debug, Args, Clone)]
pub struct LoadArgs {
    /// Load mode: place N calls from this process (no TUN; the sessions stay up answering
    /// LCP echoes until SIGTERM/SIGINT or --hold runs out). Prints JSON lines on stdout.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=65535))]
    pub load: Option<u16>,
    /// Load mode: calls per control connection (RFC 2637 allows several; pptpd and virtgate
    /// serve one, as Windows and pptp-linux place one).
    #[arg(long, value_name = "K", default_value_t = 1, requires = "load",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub calls_per_connection: u16,
    /// Load mode: set-ups in flight at most.
    #[arg(long, value_name = "N", default_value_t = 256, requires = "load",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Load mode: set-ups started per second at most (0: as many as --concurrency allows).
    #[arg(long, value_name = "PER_S", default_value_t = 0, requires = "load")]
    pub rate: u32,
    /// Load mode: seconds a set-up may take before it counts as failed (timeout).
    #[arg(long, value_name = "SECS", default_value_t = 30, requires = "load")]
    pub setup_timeout: u64,
    /// Load mode: hang every session up this many seconds after the last set-up ended, then
    /// exit (default: on SIGTERM/SIGINT).
    #[arg(long, value_name = "SECS", requires = "load")]
    pub hold: Option<u64>,
    /// Load mode: the first N sessions each send an ICMP echo request to the server's tunnel
    /// address every second (replies are counted in the summary).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "load")]
    pub ping: u16,
    /// Load mode: our own LCP echo interval in seconds (default: none, as Windows clients;
    /// the server's echoes are answered either way).
    #[arg(long, value_name = "SECS", requires = "load")]
    pub lcp_echo: Option<u32>,
}

impl Default for LoadArgs {
    fn default() -> Self {
        LoadArgs {
            load: None,
            calls_per_connection: 1,
            concurrency: 256,
            rate: 0,
            setup_timeout: 30,
            hold: None,
            ping: 0,
            lcp_echo: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn daemon_defaults_are_pptpds_paths() {
        let c = Cli::try_parse_from(["virtgate", "daemon"]).unwrap();
        let Command::Daemon(d) = c.command else {
            panic!("not daemon")
        };
        assert_eq!(d.config.pptpd_conf, PathBuf::from("/etc/pptpd.conf"));
        assert_eq!(
            d.config.chap_secrets,
            PathBuf::from("/etc/ppp/chap-secrets")
        );
        assert_eq!(d.config.tun, "vgpptp0");
        assert!(!d.no_firewall);
        assert_eq!(d.config.uplink, None);
        assert_eq!(
            d.socket.socket,
            PathBuf::from("/run/virtgate/virtgate.sock")
        );
        assert_eq!(d.metrics, None);
        assert_eq!((d.ip_up, d.ip_down), (None, None));
        assert_eq!(d.abuse.limits(), crate::settings::AbuseLimits::default());
    }

    #[test]
    fn abuse_limits_parse_and_turn_off() {
        let c = Cli::try_parse_from([
            "virtgate",
            "daemon",
            "--lockout-user",
            "off",
            "--lockout-source",
            "3",
            "--lockout-time",
            "30",
            "--conn-rate",
            "0",
            "--max-sessions-per-user",
            "2",
            "--single-session",
            "replace",
        ])
        .unwrap();
        let Command::Daemon(d) = c.command else {
            panic!("not daemon")
        };
        let l = d.abuse.limits();
        assert_eq!((l.user_failures, l.source_failures), (0, 3));
        assert_eq!(l.lockout, std::time::Duration::from_secs(30));
        assert_eq!(l.conn_rate_per_min, 0);
        assert_eq!(l.max_sessions_per_user, 2);
        assert_eq!(l.single_session, crate::settings::SingleSession::Replace);
        assert!(Cli::try_parse_from(["virtgate", "daemon", "--lockout-user", "many"]).is_err());
        assert!(Cli::try_parse_from(["virtgate", "daemon", "--single-session", "yes"]).is_err());
    }

    #[test]
    fn control_commands_parse() {
        let c = Cli::try_parse_from([
            "virtgate",
            "terminate",
            "--user",
            "ann",
            "--socket",
            "/tmp/s",
        ])
        .unwrap();
        let Command::Terminate(t) = c.command else {
            panic!("not terminate")
        };
        assert_eq!(t.user.as_deref(), Some("ann"));
        assert_eq!(t.socket.socket, PathBuf::from("/tmp/s"));
        // Exactly one target.
        assert!(Cli::try_parse_from(["virtgate", "terminate"]).is_err());
        assert!(Cli::try_parse_from(["virtgate", "terminate", "--all", "--id", "3"]).is_err());
        let c = Cli::try_parse_from(["virtgate", "sessions", "--json", "--user", "bob"]).unwrap();
        let Command::Sessions(s) = c.command else {
            panic!("not sessions")
        };
        assert!(s.json);
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert!(Cli::try_parse_from(["virtgate", "config", "check", "--pptpd-conf", "x"]).is_ok());
        assert!(Cli::try_parse_from(["virtgate", "reload"]).is_ok());
        assert!(matches!(
            Cli::try_parse_from(["virtgate", "hash-password"]).map(|c| c.command),
            Ok(Command::HashPassword)
        ));
        let c = Cli::try_parse_from(["virtgate", "daemon", "--metrics", "127.0.0.1:9723"]).unwrap();
        let Command::Daemon(d) = c.command else {
            panic!("not daemon")
        };
        assert_eq!(d.metrics, Some("127.0.0.1:9723".parse().unwrap()));
    }

    #[test]
    fn dial_parses_its_options() {
        let c = Cli::try_parse_from([
            "virtgate",
            "dial",
            "10.0.0.1",
            "--user",
            "u",
            "--password",
            "p",
            "--mppe",
            "allow",
            "--auth",
            "chap",
            "--log-level",
            "debug",
        ])
        .unwrap();
        assert_eq!(c.log_level.as_deref(), Some("debug"));
        let Command::Dial(d) = c.command else {
            panic!("not dial")
        };
        assert_eq!(d.server, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(d.mppe, MppeArg::Allow);
        assert_eq!(d.auth, AuthArg::Chap);
        assert!(Cli::try_parse_from(["virtgate", "dial", "10.0.0.1"]).is_err());
    }
}
