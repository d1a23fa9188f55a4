//! poptop's `/etc/pptpd.conf` (pptpd.conf(5)) → [`PptpdConf`].
//!
//! The syntax is pptpd's `read_config_file`: one directive per line, `keyword value`, the value
//! being the rest of the line after the blanks that follow the keyword (trailing blanks are
//! dropped). A line whose first character is `#` is a comment; there are no comments after a
//! value. Keywords are case-sensitive. pptpd looks each keyword up separately and takes its
//! **first** occurrence, so later duplicates have no effect (we warn).
//!
//! Where pptpd would misbehave quietly we refuse, with the line: an unknown keyword (pptpd
//! ignores it), a line starting with a blank (pptpd logs an error and ignores it), and anything
//! after an address list (pptpd would try to resolve it and exit). Host names are not resolved
//! (the parser is pure): `listen`, `localip` and `remoteip` take IPv4 addresses. We also strip
//! a trailing carriage return (pptpd would keep it in the value).
//!
//! Address lists (`localip`, `remoteip`, pptpd's `processIPStr`): comma-separated entries, each
//! an address (`192.168.0.245`) or a range in one octet (`192.168.0.234-238`,
//! `192.168.0-255.2`), expanded in order and kept whole. pptpd only uses the first
//! `connections` of them; [`PptpdConf::max_clients`] gives that limit and
//! [`crate::AddressPool::from_conf`] builds the pool from exactly those. One `localip` address
//! serves every client; several are paired with the `remoteip` addresses in order. We refuse a `remoteip` list that names an address twice
//! or names a `localip` address (pptpd would hand out one address twice).
//!
//! Without `localip`/`remoteip` pptpd uses its built-in lists, `192.168.0.1-100` and
//! `192.168.1.1-100`; so do we, with a warning. With `delegate`, pptpd leaves client addresses
//! to pppd (chap-secrets) and ignores both lists.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{ConfigError, ErrorKind, Parsed, Warning};
use crate::files::{self, FileSource, Filesystem};
use crate::ppp_options::{read_text, PppOptions};

/// pptpd's `CONNECTIONS_DEFAULT`.
pub const DEFAULT_CONNECTIONS: u32 = 100;
/// pptpd's `STIMEOUT_DEFAULT`.
pub const DEFAULT_STIMEOUT: Duration = Duration::from_secs(10);
/// pptpd's `DEFAULT_LOCAL_IP_LIST`, used when the file has no `localip`.
pub const PPTPD_DEFAULT_LOCALIP: &str = "192.168.0.1-100";
/// pptpd's `DEFAULT_REMOTE_IP_LIST`, used when the file has no `remoteip`.
pub const PPTPD_DEFAULT_REMOTEIP: &str = "192.168.1.1-100";

/// The directives of a pptpd.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PptpdConf {
    /// `option FILE`: the pppd options file. Relative names are resolved against the
    /// directory of pptpd.conf (pptpd hands the name to pppd unchanged). `None`: virtgate
    /// uses [`PppOptions::builtin_default`] (pppd would read `/etc/ppp/options`).
    pub option: Option<PathBuf>,
    /// `localip`: our end of the tunnels, expanded. One address serves every client; several
    /// are paired with `remoteip` in order (see [`PptpdConf::local_ip_for`]).
    pub localip: Vec<Ipv4Addr>,
    /// `remoteip`: the client addresses, expanded in order.
    pub remoteip: Vec<Ipv4Addr>,
    /// `listen`: the address to accept PPTP (TCP 1723) on; `None` means all.
    pub listen: Option<Ipv4Addr>,
    /// `stimeout`: how long a new connection may take to send its first PPTP message
    /// (default 10 s).
    pub stimeout: Duration,
    /// `connections`: the most clients at once (default 100); also limited by the address
    /// lists, see [`PptpdConf::max_clients`].
    pub connections: u32,
    /// `debug`: verbose logging.
    pub debug: bool,
    /// `logwtmp`: record logins in wtmp.
    pub logwtmp: bool,
    /// `bcrelay IFACE`: relay broadcasts from IFACE to the clients.
    pub bcrelay: Option<String>,
    /// `noipparam`: do not pass the client's public address to ip-up scripts.
    pub noipparam: bool,
    /// `delegate`: client addresses come from pppd (chap-secrets), not from `remoteip`;
    /// `localip` and `remoteip` are then ignored.
    pub delegate: bool,
    /// `pidfile FILE` (pptpd's default is `/var/run/pptpd.pid`).
    pub pidfile: Option<PathBuf>,
    /// Where `option` was written (for errors when that file cannot be read).
    option_at: Option<(PathBuf, u32)>,
}

impl Default for PptpdConf {
    /// The seed's configuration; same as [`PptpdConf::builtin_default`].
    fn default() -> PptpdConf {
        PptpdConf::builtin_default()
    }
}

/// Directives pptpd.conf knows, with whether they take a value.
const KEYWORDS: &[(&str, Value)] = &[
    ("option", Value::Required),
    ("localip", Value::Required),
    ("remoteip", Value::Required),
    ("listen", Value::Required),
    ("stimeout", Value::Required),
    ("connections", Value::Required),
    ("debug", Value::Flag),
    ("logwtmp", Value::Flag),
    ("bcrelay", Value::Required),
    ("noipparam", Value::Flag),
    ("delegate", Value::Flag),
    ("pidfile", Value::Required),
    ("speed", Value::Ignored),
    ("ppp", Value::Ignored),
    ("vrf", Value::Refused),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Required,
    Flag,
    Ignored,
    Refused,
}

impl PptpdConf {
    /// The seed's pptpd.conf: `localip 192.168.0.1`, `remoteip 192.168.0.100-200`, no
    /// `option` file (so [`PppOptions::builtin_default`] applies), pptpd's defaults otherwise.
    pub fn builtin_default() -> PptpdConf {
        PptpdConf {
            option: None,
            localip: vec![Ipv4Addr::new(192, 168, 0, 1)],
            remoteip: (100..=200).map(|n| Ipv4Addr::new(192, 168, 0, n)).collect(),
            listen: None,
            stimeout: DEFAULT_STIMEOUT,
            connections: DEFAULT_CONNECTIONS,
            debug: false,
            logwtmp: false,
            bcrelay: None,
            noipparam: false,
            delegate: false,
            pidfile: None,
            option_at: None,
        }
    }

    /// Parses pptpd.conf text. `path` names it in errors and warnings. Never panics.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Parsed<PptpdConf>, ConfigError> {
        parse(text, path.as_ref())
    }

    /// Reads and parses the pptpd.conf at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Parsed<PptpdConf>, ConfigError> {
        let path = path.as_ref();
        let text = read_text(&mut Filesystem, path, path, 0, "pptpd configuration")?;
        parse(&text, path)
    }

    /// Reads the pppd options this configuration names (`option`) from disk, or returns
    /// [`PppOptions::builtin_default`] when it names none.
    pub fn read_ppp_options(&self) -> Result<Parsed<PppOptions>, ConfigError> {
        self.ppp_options_with(&mut Filesystem)
    }

    /// Like [`PptpdConf::read_ppp_options`], reading files from `files`.
    pub fn ppp_options_with(
        &self,
        files: &mut dyn FileSource,
    ) -> Result<Parsed<PppOptions>, ConfigError> {
        let Some(option) = &self.option else {
            return Ok(Parsed {
                value: PppOptions::builtin_default(),
                warnings: Vec::new(),
            });
        };
        let text = match &self.option_at {
            Some((conf, line)) => read_text(files, option, conf, *line, "pppd options file")?,
            None => read_text(files, option, option, 0, "pppd options file")?,
        };
        PppOptions::parse_with(&text, option, files)
    }

    /// How many clients may be connected at once: `connections`, further limited (unless
    /// `delegate`) by the number of `remoteip` addresses and, when several are given, of
    /// `localip` addresses — pptpd's rule.
    pub fn max_clients(&self) -> usize {
        let mut n = usize::try_from(self.connections).unwrap_or(usize::MAX);
        if !self.delegate {
            n = n.min(self.remoteip.len());
            if self.localip.len() > 1 {
                n = n.min(self.localip.len());
            }
        }
        n
    }

    /// Our address for the client given `remoteip[index]`: the one `localip` address, or the
    /// `localip` address at the same position.
    pub fn local_ip_for(&self, index: usize) -> Option<Ipv4Addr> {
        match self.localip.as_slice() {
            [one] => Some(*one),
            many => many.get(index).copied(),
        }
    }
}

struct Line<'a> {
    number: u32,
    value: &'a str,
}

fn parse(text: &str, path: &Path) -> Result<Parsed<PptpdConf>, ConfigError> {
    let mut warnings = Vec::new();
    let mut seen: Vec<(&'static str, Line<'_>)> = Vec::new();

    for (i, raw) in text.split('\n').enumerate() {
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line = line.trim_end_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            return Err(ConfigError::new(
                path,
                number,
                ErrorKind::Syntax,
                "line starts with white space, which pptpd rejects (it ignores the line); remove the indentation",
            ));
        }
        let (keyword, value) = match line.find([' ', '\t']) {
            Some(at) => (
                line.get(..at).unwrap_or(""),
                line.get(at..).unwrap_or("").trim_start_matches([' ', '\t']),
            ),
            None => (line, ""),
        };
        let Some(&(known, kind)) = KEYWORDS.iter().find(|(k, _)| *k == keyword) else {
            let names: Vec<&str> = KEYWORDS
                .iter()
                .filter(|(_, v)| *v != Value::Refused)
                .map(|(k, _)| *k)
                .collect();
            return Err(ConfigError::new(
                path,
                number,
                ErrorKind::Unknown,
                format!(
                    "unknown directive '{keyword}' (pptpd would silently ignore it); the directives are {}",
                    names.join(", ")
                ),
            ));
        };
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == known) {
            warnings.push(Warning::new(
                path,
                number,
                format!(
                    "duplicate '{known}' has no effect: pptpd uses the first one, on line {}",
                    first.number
                ),
            ));
            continue;
        }
        match kind {
            Value::Refused => {
                return Err(ConfigError::new(
                    path,
                    number,
                    ErrorKind::Refused,
                    format!("'{known}' is not supported by virtgate (VRFs are not implemented); remove it"),
                ));
            }
            Value::Required if value.is_empty() => {
                return Err(ConfigError::new(
                    path,
                    number,
                    ErrorKind::InvalidValue,
                    format!("'{known}' needs a value"),
                ));
            }
            Value::Flag if !value.is_empty() => {
                if known == "delegate" {
                    return Err(ConfigError::new(
                        path,
                        number,
                        ErrorKind::InvalidValue,
                        format!("'delegate' takes no value, but pptpd turns it on whatever follows ('{value}'); write just 'delegate', or remove the line"),
                    ));
                }
                warnings.push(Warning::new(
                    path,
                    number,
                    format!("'{known}' takes no value: pptpd turns it on whatever follows, so '{value}' is ignored"),
                ));
            }
            Value::Ignored => {
                let why = if known == "speed" {
                    "a PPTP link has no serial speed"
                } else {
                    "virtgate does not start pppd"
                };
                warnings.push(Warning::new(
                    path,
                    number,
                    format!("'{known}' ignored: {why}"),
                ));
            }
            _ => {}
        }
        seen.push((known, Line { number, value }));
    }

    let get = |k: &str| seen.iter().find(|(n, _)| *n == k).map(|(_, l)| l);
    let mut conf = PptpdConf {
        localip: Vec::new(),
        remoteip: Vec::new(),
        ..PptpdConf::builtin_default()
    };

    if let Some(l) = get("connections") {
        conf.connections = match positive(l, "connections", path)? {
            Some(n) => n,
            None => {
                warnings.push(Warning::new(
                    path,
                    l.number,
                    format!("connections {} is not positive; as pptpd does, the default {DEFAULT_CONNECTIONS} applies", l.value),
                ));
                DEFAULT_CONNECTIONS
            }
        };
    }
    if let Some(l) = get("stimeout") {
        conf.stimeout = match positive(l, "stimeout", path)? {
            Some(n) => Duration::from_secs(u64::from(n)),
            None => {
                warnings.push(Warning::new(
                    path,
                    l.number,
                    format!("stimeout {} is not positive; as pptpd does, the default 10 seconds applies", l.value),
                ));
                DEFAULT_STIMEOUT
            }
        };
    }
    conf.debug = get("debug").is_some();
    conf.logwtmp = get("logwtmp").is_some();
    conf.noipparam = get("noipparam").is_some();
    conf.delegate = get("delegate").is_some();
    conf.bcrelay = get("bcrelay").map(|l| l.value.to_owned());
    conf.pidfile = get("pidfile").map(|l| PathBuf::from(l.value));
    if let Some(l) = get("option") {
        conf.option = Some(files::resolve(path, Path::new(l.value)));
        conf.option_at = Some((path.to_path_buf(), l.number));
    }
    if let Some(l) = get("listen") {
        conf.listen = Some(l.value.parse().map_err(|_| {
            ConfigError::new(
                path,
                l.number,
                ErrorKind::InvalidValue,
                format!("listen '{}' is not an IPv4 address (like 10.0.0.1); virtgate does not look up host names", l.value),
            )
        })?);
    }

    let list = |key: &str, default: &str, warnings: &mut Vec<Warning>| {
        let (spec, number) = match get(key) {
            Some(l) => (l.value, l.number),
            None => {
                if !conf.delegate {
                    warnings.push(Warning::new(
                        path,
                        0,
                        format!("no {key}: pptpd's built-in list {default} applies"),
                    ));
                }
                (default, 0)
            }
        };
        Ok::<_, ConfigError>((ip_list(spec, key, path, number)?, number))
    };
    let (remote, remote_line) = list("remoteip", PPTPD_DEFAULT_REMOTEIP, &mut warnings)?;
    let (local, local_line) = list("localip", PPTPD_DEFAULT_LOCALIP, &mut warnings)?;

    if !conf.delegate {
        let locals: HashSet<Ipv4Addr> = local.iter().copied().collect();
        let mut seen_remote = HashSet::with_capacity(remote.len());
        for ip in &remote {
            if !seen_remote.insert(*ip) {
                return Err(ConfigError::new(
                    path,
                    remote_line,
                    ErrorKind::Conflict,
                    format!("remoteip names {ip} twice, so two clients would get the same address; list each address once"),
                ));
            }
            if locals.contains(ip) {
                return Err(ConfigError::new(
                    path,
                    remote_line,
                    ErrorKind::Conflict,
                    format!("remoteip {ip} is also a localip address (line {local_line}); a client must not get the server's own tunnel address"),
                ));
            }
        }
    } else if get("localip").is_some() || get("remoteip").is_some() {
        warnings.push(Warning::new(
            path,
            get("remoteip").or(get("localip")).map_or(0, |l| l.number),
            "with delegate, pptpd ignores localip and remoteip: client addresses come from chap-secrets",
        ));
    }
    conf.remoteip = remote;
    conf.localip = local;

    Ok(Parsed {
        value: conf,
        warnings,
    })
}

/// A pptpd number (`connections`, `stimeout`): `Some(n)` when positive, `None` when zero or
/// negative (pptpd then uses its default), an error when not a whole number (pptpd's `atoi`
/// would quietly read 0 or a prefix).
fn positive(l: &Line<'_>, key: &str, path: &Path) -> Result<Option<u32>, ConfigError> {
    let v: i64 = l.value.parse().map_err(|_| {
        ConfigError::new(
            path,
            l.number,
            ErrorKind::InvalidValue,
            format!(
                "{key} '{}' is not a whole number; write e.g. '{key} 100'",
                l.value
            ),
        )
    })?;
    if v <= 0 {
        return Ok(None);
    }
    u32::try_from(v).map(Some).map_err(|_| {
        ConfigError::new(
            path,
            l.number,
            ErrorKind::InvalidValue,
            format!("{key} {v} is too large"),
        )
    })
}

/// Expands a pptpd address list (`192.168.0.234-238,192.168.0.245`).
fn ip_list(spec: &str, key: &str, path: &Path, line: u32) -> Result<Vec<Ipv4Addr>, ConfigError> {
    let err = |msg: String| ConfigError::new(path, line, ErrorKind::InvalidValue, msg);
    let mut out = Vec::new();
    for entry in spec.split(',') {
        if entry.is_empty() {
            return Err(err(format!(
                "{key} has an empty entry in '{spec}'; separate addresses with single commas and no spaces"
            )));
        }
        if let Some(bad) = entry.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')) {
            let rest = entry.get(bad..).unwrap_or("");
            return Err(err(format!(
                "{key} entry '{entry}' has unexpected text '{rest}'; write addresses like 192.168.0.2 or ranges like 192.168.0.100-200 (pptpd.conf has no comments after a value, and host names are not looked up)"
            )));
        }
        if !entry.contains('-') {
            let ip: Ipv4Addr = entry.parse().map_err(|_| {
                err(format!(
                    "{key} entry '{entry}' is not an IPv4 address; write it like 192.168.0.2"
                ))
            })?;
            out.push(ip);
            continue;
        }
        let parts: Vec<&str> = entry.split('.').collect();
        let ranged: Vec<usize> = (0..parts.len())
            .filter(|&i| parts.get(i).is_some_and(|p| p.contains('-')))
            .collect();
        let shape_ok = parts.len() == 4 && ranged.len() == 1 && entry.matches('-').count() == 1;
        let octet = |s: &str| -> Option<u8> {
            if s.is_empty() || s.len() > 3 {
                None
            } else {
                s.parse().ok()
            }
        };
        let bad_range = || {
            err(format!(
                "{key} entry '{entry}' is not a valid range: write four dotted numbers from 0 to 255 with one of them a range low-high, like 192.168.0.100-200"
            ))
        };
        if !shape_ok {
            return Err(bad_range());
        }
        let Some(&at) = ranged.first() else {
            return Err(bad_range());
        };
        let mut fixed = [0u8; 4];
        for (i, p) in parts.iter().enumerate() {
            if i != at {
                let slot = fixed.get_mut(i).ok_or_else(bad_range)?;
                *slot = octet(p).ok_or_else(bad_range)?;
            }
        }
        let (lo, hi) = parts
            .get(at)
            .and_then(|p| p.split_once('-'))
            .ok_or_else(bad_range)?;
        let (lo, hi) = (
            octet(lo).ok_or_else(bad_range)?,
            octet(hi).ok_or_else(bad_range)?,
        );
        if hi < lo {
            return Err(err(format!(
                "{key} range '{entry}' runs backwards ({lo} to {hi}); write the lower number first"
            )));
        }
        for n in lo..=hi {
            let mut o = fixed;
            if let Some(slot) = o.get_mut(at) {
                *slot = n;
            }
            out.push(Ipv4Addr::from(o));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
