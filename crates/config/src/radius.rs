//! The RADIUS client's configuration, in the files pppd's radius plugin reads: the
//! radiusclient.conf named by `radius-config-file` and the `servers` file it names (host and
//! shared secret per line). See docs/radius.md.
//!
//! radiusclient.conf keys read: `authserver` and `acctserver` (`host[:port[:secret]]`, several
//! per line separated by commas or blanks, or several lines; order is preference), `servers`,
//! `radius_timeout` (seconds per try, default 10), `radius_retries` (tries per server,
//! default 3), `radius_deadtime` (seconds a silent server is skipped, default 0),
//! `nas_identifier` / `nas-identifier`, `bindaddr` (`*` or an IPv4 address, also sent as
//! NAS-IP-Address). virtgate's own keys: `dae_listen ADDR[:PORT]` (Disconnect/CoA listener,
//! port 3799 by default; off when absent), `dae_client HOST [SECRET]` (allowed DAE clients;
//! secret from the servers file when left out), `acct_interim_interval SECONDS` (used when the
//! server sends no Acct-Interim-Interval), `require_message_authenticator yes|no` (default
//! no). radiusclient keys that concern login programs
//! (`auth_order`, `login_tries`, `dictionary`, `seqfile`, ...) are accepted with a warning.
//!
//! Host names other than `localhost` are refused: the parser is pure and resolves nothing,
//! and a RADIUS secret belongs to an address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{ConfigError, ErrorKind, Parsed, Warning};
use crate::files::{self, FileSource, Filesystem};
pub use crate::ppp_options::RadiusOrder;

/// Default authentication port (RFC 2865).
pub const AUTH_PORT: u16 = 1812;
/// Default accounting port (RFC 2866).
pub const ACCT_PORT: u16 = 1813;
/// Default Dynamic Authorization port (RFC 5176).
pub const DAE_PORT: u16 = 3799;

/// One server.
#[derive(Clone, PartialEq, Eq)]
pub struct RadiusServer {
    /// Address and port.
    pub addr: SocketAddr,
    /// Shared secret.
    pub secret: String,
}

impl std::fmt::Debug for RadiusServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RadiusServer({})", self.addr)
    }
}

/// A client allowed to send Disconnect/CoA requests.
#[derive(Clone, PartialEq, Eq)]
pub struct DaeClientConfig {
    /// The only source address accepted.
    pub addr: IpAddr,
    /// Shared secret.
    pub secret: String,
}

impl std::fmt::Debug for DaeClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DaeClientConfig({})", self.addr)
    }
}

/// Everything the daemon's RADIUS glue runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusConfig {
    /// Authentication servers, in order of preference.
    pub auth_servers: Vec<RadiusServer>,
    /// Accounting servers (none: no accounting).
    pub acct_servers: Vec<RadiusServer>,
    /// Wait per try.
    pub timeout: Duration,
    /// Tries per server.
    pub retries: u32,
    /// How long a server that did not answer is skipped.
    pub deadtime: Duration,
    /// NAS-Identifier (the daemon uses the host name when absent).
    pub nas_identifier: Option<String>,
    /// Source address of requests, also sent as NAS-IP-Address.
    pub bind_addr: Option<Ipv4Addr>,
    /// Disconnect/CoA listener.
    pub dae_listen: Option<SocketAddr>,
    /// Who may send Disconnect/CoA requests.
    pub dae_clients: Vec<DaeClientConfig>,
    /// Interim accounting when the server sends no Acct-Interim-Interval.
    pub interim_interval: Option<Duration>,
    /// chap-secrets and RADIUS: who decides first (from the options file's `radius-order`).
    pub order: RadiusOrder,
    /// `require_message_authenticator yes`: drop Access-Accept/-Reject without a
    /// Message-Authenticator (FreeRADIUS >= 3.2.5 always sends one; older ones do not for
    /// PAP/CHAP/MS-CHAP, hence the default `no`). One that is present is always checked.
    pub require_message_authenticator: bool,
}

impl Default for RadiusConfig {
    fn default() -> Self {
        RadiusConfig {
            auth_servers: Vec::new(),
            acct_servers: Vec::new(),
            timeout: Duration::from_secs(10),
            retries: 3,
            deadtime: Duration::ZERO,
            nas_identifier: None,
            bind_addr: None,
            dae_listen: None,
            dae_clients: Vec::new(),
            interim_interval: None,
            order: RadiusOrder::RadiusOnly,
            require_message_authenticator: false,
        }
    }
}

/// radiusclient keys with no meaning for virtgate.
const IGNORED: &[&str] = &[
    "auth_order",
    "login_tries",
    "login_timeout",
    "nologin",
    "issue",
    "dictionary",
    "login_radius",
    "seqfile",
    "mapfile",
    "default_realm",
    "login_local",
    "clientdebug",
];

/// A server as written, before its secret is known.
struct Pending {
    host: String,
    addr: SocketAddr,
    secret: Option<String>,
    line: u32,
}

impl RadiusConfig {
    /// Reads radiusclient.conf at `path` and the servers file it names.
    pub fn read(path: impl AsRef<Path>) -> Result<Parsed<RadiusConfig>, ConfigError> {
        let path = path.as_ref();
        let text =
            crate::ppp_options::read_text(&mut Filesystem, path, path, 0, "radius config file")?;
        RadiusConfig::parse_with(&text, path, &mut Filesystem)
    }

    /// Parses radiusclient.conf text; the servers file is read through `files`.
    pub fn parse_with(
        text: &str,
        path: impl AsRef<Path>,
        files: &mut dyn FileSource,
    ) -> Result<Parsed<RadiusConfig>, ConfigError> {
        let path = path.as_ref();
        let mut cfg = RadiusConfig::default();
        let mut warnings = Vec::new();
        let mut auth = Vec::new();
        let mut acct = Vec::new();
        let mut dae = Vec::new();
        let mut servers_file: Option<(PathBuf, u32)> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = (i + 1) as u32;
            let body = raw.split('#').next().unwrap_or("").trim();
            if body.is_empty() {
                continue;
            }
            let (key, value) = match body.split_once(char::is_whitespace) {
                Some((k, v)) => (k, v.trim()),
                None => (body, ""),
            };
            let err = |kind, msg: String| ConfigError::new(path, line, kind, msg);
            let need = |what: &str| {
                if value.is_empty() {
                    Err(err(
                        ErrorKind::InvalidValue,
                        format!("{key} needs a value ({what})"),
                    ))
                } else {
                    Ok(())
                }
            };
            let secs = |v: &str| -> Result<u64, ConfigError> {
                v.parse::<u64>().map_err(|_| {
                    err(
                        ErrorKind::InvalidValue,
                        format!("{key} '{v}' is not a whole number of seconds"),
                    )
                })
            };
            match key {
                "authserver" | "acctserver" => {
                    need("host[:port[:secret]]")?;
                    let port = if key == "authserver" {
                        AUTH_PORT
                    } else {
                        ACCT_PORT
                    };
                    for item in value.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
                        let p = parse_server(item, port).map_err(|m| err(ErrorKind::InvalidValue, m))?;
                        let p = Pending { line, ..p };
                        if key == "authserver" {
                            auth.push(p)
                        } else {
                            acct.push(p)
                        }
                    }
                }
                "servers" => {
                    need("a file")?;
                    servers_file = Some((files::resolve(path, Path::new(value)), line));
                }
                "radius_timeout" => {
                    need("seconds")?;
                    let s = secs(value)?;
                    if s == 0 {
                        return Err(err(ErrorKind::InvalidValue, "radius_timeout must be at least 1 second".into()));
                    }
                    cfg.timeout = Duration::from_secs(s);
                }
                "radius_retries" => {
                    need("a count")?;
                    let n = secs(value)?;
                    if n == 0 || n > 100 {
                        return Err(err(ErrorKind::InvalidValue, format!("radius_retries {n} is outside 1..=100")));
                    }
                    cfg.retries = n as u32;
                }
                "radius_deadtime" => {
                    need("seconds")?;
                    cfg.deadtime = Duration::from_secs(secs(value)?);
                }
                "acct_interim_interval" => {
                    need("seconds")?;
                    let s = secs(value)?;
                    if s != 0 && s < 60 {
                        return Err(err(ErrorKind::InvalidValue, format!("acct_interim_interval {s} is below 60 seconds (RFC 2869 §2.1); use 0 for none")));
                    }
                    cfg.interim_interval = (s != 0).then(|| Duration::from_secs(s));
                }
                "require_message_authenticator" => {
                    cfg.require_message_authenticator = match value {
                        "yes" => true,
                        "no" => false,
                        v => {
                            return Err(err(
                                ErrorKind::InvalidValue,
                                format!("require_message_authenticator '{v}' is not yes or no"),
                            ))
                        }
                    };
                }
                "nas_identifier" | "nas-identifier" => {
                    need("a name")?;
                    cfg.nas_identifier = Some(value.to_string());
                }
                "bindaddr" => {
                    need("* or an IPv4 address")?;
                    cfg.bind_addr = match value {
                        "*" => None,
                        v => Some(v.parse().map_err(|_| {
                            err(ErrorKind::InvalidValue, format!("bindaddr '{v}' is not * or an IPv4 address"))
                        })?),
                    };
                }
                "dae_listen" => {
                    need("ADDR[:PORT]")?;
                    let p = parse_server(value, DAE_PORT).map_err(|m| err(ErrorKind::InvalidValue, m))?;
                    if p.secret.is_some() {
                        return Err(err(ErrorKind::InvalidValue, "dae_listen takes ADDR[:PORT]; secrets go on dae_client lines".into()));
                    }
                    cfg.dae_listen = Some(p.addr);
                }
                "dae_client" => {
                    need("HOST [SECRET]")?;
                    let mut it = value.split_whitespace();
                    let host = it.next().unwrap_or_default();
                    let ip = parse_host(host).map_err(|m| err(ErrorKind::InvalidValue, m))?;
                    let secret = it.next().map(str::to_string);
                    if it.next().is_some() {
                        return Err(err(ErrorKind::InvalidValue, "dae_client takes HOST [SECRET]".into()));
                    }
                    dae.push(Pending {
                        host: host.to_string(),
                        addr: SocketAddr::new(ip, 0),
                        secret,
                        line,
                    });
                }
                k if IGNORED.contains(&k) => warnings.push(Warning::new(
                    path,
                    line,
                    format!("radiusclient option '{k}' ignored: it concerns login programs, not PPP"),
                )),
                other => {
                    return Err(err(
                        ErrorKind::Unknown,
                        format!("unknown radiusclient option '{other}'; see docs/radius.md for the supported ones"),
                    ))
                }
            }
        }
        if auth.is_empty() {
            return Err(ConfigError::new(
                path,
                0,
                ErrorKind::InvalidValue,
                "no authserver line; add 'authserver ADDRESS' (RADIUS needs an authentication server)",
            ));
        }
        if dae.is_empty() != cfg.dae_listen.is_none() {
            return Err(ConfigError::new(
                path,
                0,
                ErrorKind::Conflict,
                "dae_listen and dae_client go together: a listener needs allowed clients and clients need a listener",
            ));
        }
        // Secrets from the servers file for entries without one.
        let need_file = auth
            .iter()
            .chain(&acct)
            .chain(&dae)
            .any(|p| p.secret.is_none());
        let secrets = match (&servers_file, need_file) {
            (Some((file, line)), true) => {
                let text = crate::ppp_options::read_text(files, file, path, *line, "servers file")?;
                parse_servers_file(&text, file)?
            }
            (None, true) => {
                let first = auth
                    .iter()
                    .chain(&acct)
                    .chain(&dae)
                    .find(|p| p.secret.is_none());
                return Err(ConfigError::new(
                    path,
                    first.map(|p| p.line).unwrap_or(0),
                    ErrorKind::InvalidValue,
                    "this server has no secret and there is no 'servers FILE' line; add one (lines 'HOST SECRET') or write host:port:secret",
                ));
            }
            _ => Vec::new(),
        };
        let resolve = |p: Pending| -> Result<RadiusServer, ConfigError> {
            let secret = match p.secret {
                Some(s) => s,
                None => secrets
                    .iter()
                    .find(|(h, ip, _)| *h == p.host || *ip == Some(p.addr.ip()))
                    .map(|s| s.2.clone())
                    .ok_or_else(|| {
                        ConfigError::new(
                            path,
                            p.line,
                            ErrorKind::InvalidValue,
                            format!(
                                "no secret for '{}' in the servers file {}; add a line '{} SECRET'",
                                p.host,
                                servers_file
                                    .as_ref()
                                    .map(|f| f.0.display().to_string())
                                    .unwrap_or_default(),
                                p.host
                            ),
                        )
                    })?,
            };
            Ok(RadiusServer {
                addr: p.addr,
                secret,
            })
        };
        cfg.auth_servers = auth.into_iter().map(resolve).collect::<Result<_, _>>()?;
        cfg.acct_servers = acct.into_iter().map(resolve).collect::<Result<_, _>>()?;
        cfg.dae_clients = dae
            .into_iter()
            .map(|p| {
                resolve(p).map(|s| DaeClientConfig {
                    addr: s.addr.ip(),
                    secret: s.secret,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Parsed {
            value: cfg,
            warnings,
        })
    }
}

/// `host` as an address: an IP literal or `localhost`.
fn parse_host(host: &str) -> Result<IpAddr, String> {
    if host == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.parse().map_err(|_| {
        format!("'{host}' is not an IP address; virtgate does not resolve host names here, so write the address")
    })
}

/// `host[:port[:secret]]` (IPv6 in brackets).
fn parse_server(item: &str, default_port: u16) -> Result<Pending, String> {
    let (host, rest) = if let Some(r) = item.strip_prefix('[') {
        let (h, rest) = r
            .split_once(']')
            .ok_or_else(|| format!("'{item}': unclosed '['"))?;
        (h, rest.strip_prefix(':').unwrap_or(rest))
    } else {
        match item.split_once(':') {
            Some((h, r)) => (h, r),
            None => (item, ""),
        }
    };
    let ip = parse_host(host)?;
    let (port, secret) = match rest.split_once(':') {
        Some((p, s)) => (p, Some(s.to_string())),
        None => (rest, None),
    };
    let port = if port.is_empty() {
        default_port
    } else {
        port.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("'{item}': port '{port}' is not 1..=65535"))?
    };
    if secret.as_deref() == Some("") {
        return Err(format!("'{item}': empty secret"));
    }
    Ok(Pending {
        host: host.to_string(),
        addr: SocketAddr::new(ip, port),
        secret,
        line: 0,
    })
}

/// The servers file: `HOST SECRET` per line, `#` comments. Returns (host as written, its
/// address when it is one, secret).
fn parse_servers_file(
    text: &str,
    path: &Path,
) -> Result<Vec<(String, Option<IpAddr>, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let body = raw.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let mut it = body.split_whitespace();
        let (Some(host), Some(secret), None) = (it.next(), it.next(), it.next()) else {
            return Err(ConfigError::new(
                path,
                (i + 1) as u32,
                ErrorKind::Syntax,
                "a servers line is 'HOST SECRET' (the secret without blanks)",
            ));
        };
        let host = host.split(':').next().unwrap_or(host);
        out.push((host.to_string(), parse_host(host).ok(), secret.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::MemoryFiles;

    const CONF: &str = "/etc/radiusclient/radiusclient.conf";

    fn parse(text: &str, servers: &str) -> Result<Parsed<RadiusConfig>, ConfigError> {
        let mut f = MemoryFiles::new();
        f.insert("/etc/radiusclient/servers", servers);
        RadiusConfig::parse_with(text, CONF, &mut f)
    }

    #[test]
    fn pppd_style_config_with_servers_file() {
        let p = parse(
            "# radiusclient.conf\nauth_order radius\nauthserver 10.0.0.1 10.0.0.2:1645\nacctserver 10.0.0.1\nservers /etc/radiusclient/servers\ndictionary /etc/radiusclient/dictionary\nradius_timeout 3\nradius_retries 2\nradius_deadtime 30\nnas-identifier gw1\nbindaddr 10.0.0.9\n",
            "10.0.0.1 s1\n10.0.0.2\ts2 # second\n",
        )
        .unwrap();
        let c = p.value;
        assert_eq!(
            c.auth_servers,
            vec![
                RadiusServer {
                    addr: "10.0.0.1:1812".parse().unwrap(),
                    secret: "s1".into()
                },
                RadiusServer {
                    addr: "10.0.0.2:1645".parse().unwrap(),
                    secret: "s2".into()
                },
            ]
        );
        assert_eq!(c.acct_servers[0].addr, "10.0.0.1:1813".parse().unwrap());
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert_eq!(c.retries, 2);
        assert_eq!(c.deadtime, Duration::from_secs(30));
        assert_eq!(c.nas_identifier.as_deref(), Some("gw1"));
        assert_eq!(c.bind_addr, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert_eq!(p.warnings[0].line, 2);
    }

    #[test]
    fn inline_secrets_dae_and_localhost() {
        let c = parse(
            "authserver localhost:1812:abc,127.0.0.2::xyz\ndae_listen 127.0.0.1\ndae_client 127.0.0.1 daesecret\nacct_interim_interval 300\n",
            "",
        )
        .unwrap()
        .value;
        assert_eq!(c.auth_servers.len(), 2);
        assert_eq!(c.auth_servers[1].addr, "127.0.0.2:1812".parse().unwrap());
        assert_eq!(c.auth_servers[1].secret, "xyz");
        assert_eq!(c.dae_listen, Some("127.0.0.1:3799".parse().unwrap()));
        assert_eq!(c.dae_clients[0].secret, "daesecret");
        assert_eq!(c.interim_interval, Some(Duration::from_secs(300)));
        assert!(c.acct_servers.is_empty());
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases: &[(&str, &str, u32, &str)] = &[
            (
                "authserver radius.example.com\n",
                "",
                1,
                "not an IP address",
            ),
            (
                "authserver 10.0.0.1\nservers /etc/radiusclient/servers\n",
                "10.0.0.9 x\n",
                1,
                "no secret for '10.0.0.1'",
            ),
            ("authserver 10.0.0.1\n", "", 1, "no 'servers FILE'"),
            ("authserver 10.0.0.1:x:s\n", "", 1, "port"),
            (
                "authserver 10.0.0.1::s\nradius_timeout soon\n",
                "",
                2,
                "whole number",
            ),
            (
                "authserver 10.0.0.1::s\nfrobnicate 1\n",
                "",
                2,
                "unknown radiusclient option",
            ),
            (
                "authserver 10.0.0.1::s\nacct_interim_interval 10\n",
                "",
                2,
                "below 60",
            ),
            ("radius_timeout 3\n", "", 0, "no authserver"),
            (
                "authserver 10.0.0.1::s\ndae_listen 127.0.0.1\n",
                "",
                0,
                "go together",
            ),
            (
                "authserver 10.0.0.1\nservers /etc/radiusclient/servers\n",
                "10.0.0.1\n",
                1,
                "HOST SECRET",
            ),
        ];
        for (text, servers, line, needle) in cases {
            let e = parse(text, servers).unwrap_err();
            assert_eq!(e.line, *line, "{text}: {e}");
            assert!(e.message.contains(needle), "{text}: {e}");
        }
        let e = parse("authserver 10.0.0.1\nservers /nope\n", "").unwrap_err();
        assert_eq!((e.line, e.kind), (2, ErrorKind::Io), "{e}");
        assert!(e.to_string().starts_with(&format!("{CONF}:2: ")), "{e}");
    }
}

#[cfg(test)]
mod toml_tests {
    use crate::{ConfigFile, MemoryFiles, RadiusOrder, RadiusPlugin};

    #[test]
    fn radius_plugin_in_virtgate_toml() {
        let text = "[ppp]\nrequire-mschap-v2 = true\nplugin = \"radius.so\"\nradius-config-file = \"/etc/rc.conf\"\nradius-order = \"local-first\"\n";
        let c =
            ConfigFile::parse_with(text, "/etc/virtgate/virtgate.toml", &mut MemoryFiles::new())
                .unwrap()
                .value;
        assert_eq!(
            c.ppp.radius,
            Some(RadiusPlugin {
                config_file: "/etc/rc.conf".into(),
                order: RadiusOrder::LocalFirst
            })
        );
    }
}
