//! `virtgate.toml`: one file that can hold the whole configuration.
//!
//! The file does not invent a second vocabulary. Its `[pptp]` table holds pptpd.conf's
//! directives, its `[ppp]` table pppd's options, its `[[users]]` chap-secrets' columns, each
//! under the name the admin already knows; this module turns each table into the text of the
//! file it stands for and hands it to the same parser ([`PptpdConf`], [`PppOptions`],
//! [`ChapSecrets`]), so every option behaves, warns and is refused exactly as in the classic
//! files. Errors and warnings point at the line of `virtgate.toml` that holds the key.
//! Any of the tables can instead name the classic file (`pptpd_conf`, `file`, `chap_secrets`).
//!
//! ```toml
//! [daemon]
//! metrics = "127.0.0.1:9477"
//!
//! [pptp]                      # pptpd.conf directives
//! localip = "192.168.0.1"
//! remoteip = "192.168.0.100-200"
//!
//! [ppp]                       # pppd options: `true` for a switch, a list repeats the option
//! require-mschap-v2 = true
//! require-mppe-128 = true
//! ms-dns = ["192.168.0.1"]
//!
//! [[users]]                   # chap-secrets lines
//! name = "alice"
//! secret = "correct horse"
//! ip = "192.168.0.150"
//!
//! [networks]
//! xml = ["/etc/virtgate/networks/lab.xml"]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{ConfigError, ErrorKind, Parsed, Warning};
use crate::files::FileSource;
use crate::ppp_options::read_text;
use crate::{ChapSecrets, PppOptions, PptpdConf};

/// Everything a `virtgate.toml` holds, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigFile {
    /// The file itself.
    pub path: PathBuf,
    /// `[daemon]`.
    pub daemon: DaemonSection,
    /// pptpd.conf: from `[pptp]`, from the file `[pptp] pptpd_conf` names, or the built-in
    /// defaults when the table is absent.
    pub pptpd: PptpdConf,
    /// Where [`ConfigFile::pptpd`] came from (for messages).
    pub pptpd_source: PathBuf,
    /// The pppd options: from `[ppp]`, from pptpd.conf's `option`, or the built-in defaults.
    pub ppp: PppOptions,
    /// Where [`ConfigFile::ppp`] came from (for messages).
    pub ppp_source: PathBuf,
    /// The secrets: from `[[users]]` (then [`ChapSecrets::path`] is this file) or from the
    /// file `[secrets] chap_secrets` names; `None` when the file names neither (the daemon then
    /// uses the pppd options' `chap-secrets` or `/etc/ppp/chap-secrets`).
    pub secrets: Option<ChapSecrets>,
    /// `[networks]`.
    pub networks: NetworksSection,
    /// `[limits]`: the abuse limits.
    pub limits: LimitsSection,
}

/// `[limits]`: the daemon's abuse limits (docs/security.md), named as its flags are
/// (`lockout_user` = `--lockout-user`). A count or a number of seconds; `0`, `"off"` or `false`
/// turns a limit off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitsSection {
    /// `lockout_user`: failed logins of one user name within the window that lock it out.
    pub lockout_user: Option<u32>,
    /// `lockout_source`: failed logins from one address within the window.
    pub lockout_source: Option<u32>,
    /// `lockout_window`: seconds failures are counted in.
    pub lockout_window: Option<u64>,
    /// `lockout_time`: seconds a lockout lasts.
    pub lockout_time: Option<u64>,
    /// `conn_rate`: new control connections a minute from one address.
    pub conn_rate: Option<u32>,
    /// `conn_burst`: connections one address may open at once before the rate applies.
    pub conn_burst: Option<u32>,
    /// `max_sessions`: sessions at a time, all users together.
    pub max_sessions: Option<u32>,
    /// `max_sessions_per_user`: sessions of one user name at a time.
    pub max_sessions_per_user: Option<u32>,
    /// `single_session`: `"off"`, `"deny"` or `"replace"`.
    pub single_session: Option<String>,
}

/// `[daemon]`: what `virtgate daemon`'s flags say; a flag given on the command line wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DaemonSection {
    /// `tun`: the TUN interface carrying every session.
    pub tun: Option<String>,
    /// `uplink`: the interface to masquerade clients toward.
    pub uplink: Option<String>,
    /// `firewall = false`: leave nftables and ip_forward alone (`--no-firewall`).
    pub firewall: Option<bool>,
    /// `socket`: the control socket.
    pub socket: Option<PathBuf>,
    /// `metrics`: serve Prometheus metrics here.
    pub metrics: Option<SocketAddr>,
    /// `ip_up`: run on session up (pppd's ip-up).
    pub ip_up: Option<PathBuf>,
    /// `ip_down`: run on session down (pppd's ip-down).
    pub ip_down: Option<PathBuf>,
    /// `log`: the log filter (`info`, `debug`, `virtgate=debug,warn`...), unless `RUST_LOG`.
    pub log: Option<String>,
    /// `keep_capabilities = true`: keep every capability after start-up.
    pub keep_capabilities: Option<bool>,
}

/// `[networks]`: the virtual networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetworksSection {
    /// `xml`: libvirt network XML files to define and start (`--network-xml`).
    pub xml: Vec<PathBuf>,
    /// `state_dir`: definitions and leases (`--state-dir`).
    pub state_dir: Option<PathBuf>,
    /// `default = false`: do not start the built-in `default` network.
    pub default: Option<bool>,
}

impl ConfigFile {
    /// Reads and parses the file at `path`, with the files it names.
    pub fn read(path: impl AsRef<Path>) -> Result<Parsed<ConfigFile>, ConfigError> {
        let path = path.as_ref();
        // Secrets in the file itself: warned about as a chap-secrets file is.
        crate::chap_secrets::read_secret_file(
            path,
            "virtgate configuration",
            |text, fs| ConfigFile::parse_with(text, path, fs),
            |c| c.secrets.as_ref().is_some_and(|s| s.path() == path),
        )
    }

    /// Parses a `virtgate.toml`'s text, reading the files it names from `files`. `path` names
    /// it in errors and warnings. Never panics, whatever the input.
    pub fn parse_with(
        text: &str,
        path: impl AsRef<Path>,
        files: &mut dyn FileSource,
    ) -> Result<Parsed<ConfigFile>, ConfigError> {
        let path = path.as_ref();
        let lines = LineIndex::new(text);
        let root = DeTable::parse(text).map_err(|e| {
            let line = e.span().map_or(0, |s| lines.line(s.start));
            let msg = e.message().trim().replace('\n', "; ");
            ConfigError::new(
                path,
                line,
                ErrorKind::Syntax,
                format!("not valid TOML: {msg}"),
            )
        })?;
        let cx = Cx {
            path,
            lines: &lines,
        };
        let mut warnings = Vec::new();

        let mut daemon = DaemonSection::default();
        let mut networks = NetworksSection::default();
        let mut limits = LimitsSection::default();
        let mut pptp: Option<&Spanned<DeValue>> = None;
        let mut ppp: Option<&Spanned<DeValue>> = None;
        let mut secrets_table: Option<&Spanned<DeValue>> = None;
        let mut users: Option<&Spanned<DeValue>> = None;
        for (key, value) in root.get_ref() {
            match key.get_ref().as_ref() {
                "daemon" => daemon = cx.daemon(value)?,
                "networks" => networks = cx.networks(value)?,
                "limits" => limits = cx.limits(value)?,
                "pptp" => pptp = Some(value),
                "ppp" => ppp = Some(value),
                "secrets" => secrets_table = Some(value),
                "users" => users = Some(value),
                other => {
                    return Err(cx.err(
                        key.span().start,
                        ErrorKind::Unknown,
                        format!(
                            "unknown table or key `{other}`; a virtgate.toml has [daemon], \
                             [pptp], [ppp], [secrets], [[users]], [networks] and [limits]"
                        ),
                    ))
                }
            }
        }

        // pptpd.conf
        let (pptpd, pptpd_source) = match pptp {
            None => (
                PptpdConf::builtin_default(),
                PathBuf::from("built-in defaults"),
            ),
            Some(v) => {
                let t = &cx.table(v, "pptp")?;
                if let Some(file) = cx.file_key(t, "pptpd_conf")? {
                    let text = read_text(
                        files,
                        &file,
                        path,
                        cx.line_of(t, "pptpd_conf"),
                        "pptpd configuration",
                    )?;
                    let p = PptpdConf::parse(&text, &file)?;
                    warnings.extend(p.warnings);
                    (p.value, file)
                } else {
                    let gen = cx.render(t, Syntax::Pptpd)?;
                    let p = gen.remap(PptpdConf::parse(&gen.text, path), &cx)?;
                    warnings.extend(p.warnings);
                    (p.value, path.to_path_buf())
                }
            }
        };

        // pppd options
        let (ppp, ppp_source) = match (ppp, &pptpd.option) {
            (Some(v), Some(option)) => {
                return Err(cx.err(
                    v.span().start,
                    ErrorKind::Conflict,
                    format!(
                        "[ppp] and pptpd.conf's `option {}` both give the pppd options; keep \
                         one (put `file = \"{}\"` in [ppp] to include that file)",
                        option.display(),
                        option.display()
                    ),
                ))
            }
            (Some(v), None) => {
                let t = &cx.table(v, "ppp")?;
                let gen = cx.render(t, Syntax::Pppd)?;
                let p = gen.remap(PppOptions::parse_with(&gen.text, path, files), &cx)?;
                warnings.extend(p.warnings);
                (p.value, path.to_path_buf())
            }
            (None, Some(option)) => {
                let p = pptpd.ppp_options_with(files)?;
                warnings.extend(p.warnings);
                (p.value, option.clone())
            }
            (None, None) => (
                PppOptions::builtin_default(),
                PathBuf::from("built-in pppd options"),
            ),
        };

        // chap-secrets
        let secrets = match (secrets_table, users) {
            (Some(s), Some(u)) => {
                let t = &cx.table(s, "secrets")?;
                if t.get_ref().contains_key("chap_secrets") {
                    return Err(cx.err(
                        u.span().start,
                        ErrorKind::Conflict,
                        "[[users]] and [secrets] chap_secrets both give the secrets; keep one",
                    ));
                }
                Some(cx.users(u, files, &mut warnings)?)
            }
            (Some(s), None) => {
                let t = &cx.table(s, "secrets")?;
                for (k, _) in t.get_ref() {
                    if k.get_ref().as_ref() != "chap_secrets" {
                        return Err(cx.err(
                            k.span().start,
                            ErrorKind::Unknown,
                            format!(
                                "unknown key `{}` in [secrets]; it has `chap_secrets` (users \
                                 go in [[users]] tables)",
                                k.get_ref()
                            ),
                        ));
                    }
                }
                match cx.file_key(t, "chap_secrets")? {
                    Some(file) => {
                        let text = read_text(
                            files,
                            &file,
                            path,
                            cx.line_of(t, "chap_secrets"),
                            "secrets file",
                        )?;
                        let mut p = ChapSecrets::parse_with(&text, &file, files)?;
                        if let Some(w) = crate::chap_secrets::access_warning(files, &file) {
                            p.warnings.insert(0, w);
                        }
                        warnings.extend(p.warnings);
                        Some(p.value)
                    }
                    None => None,
                }
            }
            (None, Some(u)) => Some(cx.users(u, files, &mut warnings)?),
            (None, None) => None,
        };

        Ok(Parsed {
            value: ConfigFile {
                path: path.to_path_buf(),
                daemon,
                pptpd,
                pptpd_source,
                ppp,
                ppp_source,
                secrets,
                networks,
                limits,
            },
            warnings,
        })
    }
}

/// Byte offset → 1-based line.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line(&self, offset: usize) -> u32 {
        let n = match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// `keyword value` to the end of the line; lists joined with commas.
    Pptpd,
    /// pppd words: values quoted; a list repeats the option.
    Pppd,
}

/// Text made from a table, and which line of the TOML each of its lines came from.
struct Generated {
    text: String,
    origin: Vec<u32>,
}

impl Generated {
    fn push(&mut self, line: String, origin: u32) {
        self.text.push_str(&line);
        self.text.push('\n');
        self.origin.push(origin);
    }

    /// Errors and warnings about the generated text point at the TOML's lines; those about
    /// files it includes keep their own place.
    fn remap<T>(
        &self,
        r: Result<Parsed<T>, ConfigError>,
        cx: &Cx<'_>,
    ) -> Result<Parsed<T>, ConfigError> {
        let map = |p: &PathBuf, line: u32| -> u32 {
            if p == cx.path && line > 0 {
                self.origin.get(line as usize - 1).copied().unwrap_or(line)
            } else {
                line
            }
        };
        match r {
            Ok(mut p) => {
                for w in &mut p.warnings {
                    w.line = map(&w.path, w.line);
                }
                Ok(p)
            }
            Err(mut e) => {
                e.line = map(&e.path, e.line);
                Err(e)
            }
        }
    }
}

struct Cx<'a> {
    path: &'a Path,
    lines: &'a LineIndex,
}

type Table<'i> = Spanned<DeTable<'i>>;

impl Cx<'_> {
    fn err(&self, offset: usize, kind: ErrorKind, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path, self.lines.line(offset), kind, msg)
    }

    fn line_of(&self, t: &Table<'_>, key: &str) -> u32 {
        t.get_ref()
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map_or(0, |(k, _)| self.lines.line(k.span().start))
    }

    fn table<'i>(&self, v: &Spanned<DeValue<'i>>, name: &str) -> Result<Table<'i>, ConfigError> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(Spanned::new(v.span(), t.clone())),
            _ => Err(self.err(
                v.span().start,
                ErrorKind::InvalidValue,
                format!("`{name}` must be a table ([{name}])"),
            )),
        }
    }

    fn string(&self, key: &str, v: &Spanned<DeValue<'_>>) -> Result<String, ConfigError> {
        match v.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            _ => Err(self.err(
                v.span().start,
                ErrorKind::InvalidValue,
                format!("`{key}` must be a string in quotes"),
            )),
        }
    }

    fn bool(&self, key: &str, v: &Spanned<DeValue<'_>>) -> Result<bool, ConfigError> {
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.err(
                v.span().start,
                ErrorKind::InvalidValue,
                format!("`{key}` must be true or false"),
            )),
        }
    }

    fn path_value(&self, key: &str, v: &Spanned<DeValue<'_>>) -> Result<PathBuf, ConfigError> {
        let s = self.string(key, v)?;
        if s.is_empty() {
            return Err(self.err(
                v.span().start,
                ErrorKind::InvalidValue,
                format!("`{key}` is an empty path"),
            ));
        }
        Ok(self.relative(PathBuf::from(s)))
    }

    /// Relative paths are relative to the directory of this file, as an admin reading it
    /// would expect.
    fn relative(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            return p;
        }
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
            _ => p,
        }
    }

    fn file_key(&self, t: &Table<'_>, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        let mut found = None;
        for (k, v) in t.get_ref() {
            if k.get_ref().as_ref() == key {
                found = Some(self.path_value(key, v)?);
            }
        }
        if found.is_some() {
            if let Some((k, _)) = t
                .get_ref()
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() != key)
            {
                return Err(self.err(
                    k.span().start,
                    ErrorKind::Conflict,
                    format!(
                        "`{}` next to `{key}`: the table either names a file or holds the \
                         settings itself, not both",
                        k.get_ref()
                    ),
                ));
            }
        }
        Ok(found)
    }

    fn daemon(&self, v: &Spanned<DeValue<'_>>) -> Result<DaemonSection, ConfigError> {
        let t = self.table(v, "daemon")?;
        let mut d = DaemonSection::default();
        for (k, v) in t.get_ref() {
            let key = k.get_ref().as_ref();
            match key {
                "tun" => d.tun = Some(self.string(key, v)?),
                "uplink" => d.uplink = Some(self.string(key, v)?),
                "firewall" => d.firewall = Some(self.bool(key, v)?),
                "socket" => d.socket = Some(self.path_value(key, v)?),
                "ip_up" => d.ip_up = Some(self.path_value(key, v)?),
                "ip_down" => d.ip_down = Some(self.path_value(key, v)?),
                "log" => d.log = Some(self.string(key, v)?),
                "keep_capabilities" => d.keep_capabilities = Some(self.bool(key, v)?),
                "metrics" => {
                    let s = self.string(key, v)?;
                    d.metrics = Some(s.parse().map_err(|_| {
                        self.err(
                            v.span().start,
                            ErrorKind::InvalidValue,
                            format!(
                                "metrics = \"{s}\" is not ADDRESS:PORT (e.g. \"127.0.0.1:9477\")"
                            ),
                        )
                    })?);
                }
                other => {
                    return Err(self.err(
                        k.span().start,
                        ErrorKind::Unknown,
                        format!(
                            "unknown key `{other}` in [daemon]; it has tun, uplink, firewall, \
                             socket, metrics, ip_up, ip_down, log, keep_capabilities"
                        ),
                    ))
                }
            }
        }
        Ok(d)
    }

    fn networks(&self, v: &Spanned<DeValue<'_>>) -> Result<NetworksSection, ConfigError> {
        let t = self.table(v, "networks")?;
        let mut n = NetworksSection::default();
        for (k, v) in t.get_ref() {
            let key = k.get_ref().as_ref();
            match key {
                "state_dir" => n.state_dir = Some(self.path_value(key, v)?),
                "default" => n.default = Some(self.bool(key, v)?),
                "xml" => match v.get_ref() {
                    DeValue::Array(a) => {
                        for item in a.iter() {
                            n.xml.push(self.path_value(key, item)?);
                        }
                    }
                    _ => n.xml.push(self.path_value(key, v)?),
                },
                other => {
                    return Err(self.err(
                        k.span().start,
                        ErrorKind::Unknown,
                        format!(
                            "unknown key `{other}` in [networks]; it has xml (libvirt network \
                             XML files), state_dir, default"
                        ),
                    ))
                }
            }
        }
        Ok(n)
    }

    /// A limit: a whole number, or `0` / `"off"` / `false` for off.
    fn limit(&self, key: &str, v: &Spanned<DeValue<'_>>) -> Result<u64, ConfigError> {
        let bad = || {
            self.err(
                v.span().start,
                ErrorKind::InvalidValue,
                format!("`{key}` must be a whole number, or 0 / \"off\" / false to turn it off"),
            )
        };
        match v.get_ref() {
            DeValue::Boolean(false) => Ok(0),
            DeValue::String(s) if s.eq_ignore_ascii_case("off") => Ok(0),
            DeValue::Integer(i) if i.radix() == 10 => {
                i.as_str().replace('_', "").parse().map_err(|_| bad())
            }
            _ => Err(bad()),
        }
    }

    fn limits(&self, v: &Spanned<DeValue<'_>>) -> Result<LimitsSection, ConfigError> {
        let t = self.table(v, "limits")?;
        let mut l = LimitsSection::default();
        for (k, v) in t.get_ref() {
            let key = k.get_ref().as_ref();
            let count = |n: u64| {
                u32::try_from(n).map_err(|_| {
                    self.err(
                        v.span().start,
                        ErrorKind::InvalidValue,
                        format!("`{key}` is too large"),
                    )
                })
            };
            match key {
                "lockout_user" => l.lockout_user = Some(count(self.limit(key, v)?)?),
                "lockout_source" => l.lockout_source = Some(count(self.limit(key, v)?)?),
                "lockout_window" => l.lockout_window = Some(self.limit(key, v)?),
                "lockout_time" => l.lockout_time = Some(self.limit(key, v)?),
                "conn_rate" => l.conn_rate = Some(count(self.limit(key, v)?)?),
                "conn_burst" => l.conn_burst = Some(count(self.limit(key, v)?)?),
                "max_sessions" => l.max_sessions = Some(count(self.limit(key, v)?)?),
                "max_sessions_per_user" => {
                    l.max_sessions_per_user = Some(count(self.limit(key, v)?)?)
                }
                "single_session" => {
                    let s = self.string(key, v)?;
                    if !["off", "deny", "replace"].contains(&s.as_str()) {
                        return Err(self.err(
                            v.span().start,
                            ErrorKind::InvalidValue,
                            format!(
                                "single_session = \"{s}\": write \"off\", \"deny\" or \"replace\""
                            ),
                        ));
                    }
                    l.single_session = Some(s);
                }
                other => {
                    return Err(self.err(
                        k.span().start,
                        ErrorKind::Unknown,
                        format!(
                            "unknown key `{other}` in [limits]; it has lockout_user, \
                             lockout_source, lockout_window, lockout_time, conn_rate, conn_burst, \
                             max_sessions, max_sessions_per_user, single_session"
                        ),
                    ))
                }
            }
        }
        Ok(l)
    }

    /// One scalar as option text.
    fn scalar(
        &self,
        key: &str,
        v: &Spanned<DeValue<'_>>,
        syntax: Syntax,
    ) -> Result<Option<String>, ConfigError> {
        let text = match v.get_ref() {
            DeValue::String(s) => {
                if s.contains(['\n', '\r']) {
                    return Err(self.err(
                        v.span().start,
                        ErrorKind::InvalidValue,
                        format!("`{key}`: a value cannot span lines"),
                    ));
                }
                match syntax {
                    Syntax::Pptpd => s.to_string(),
                    Syntax::Pppd => quote(s),
                }
            }
            DeValue::Integer(i) => {
                let s = i.as_str();
                if i.radix() != 10 {
                    return Err(self.err(
                        v.span().start,
                        ErrorKind::InvalidValue,
                        format!("`{key}`: write the number in decimal"),
                    ));
                }
                s.replace('_', "")
            }
            DeValue::Boolean(true) => return Ok(Some(String::new())),
            DeValue::Boolean(false) => return Ok(None),
            _ => {
                return Err(self.err(
                    v.span().start,
                    ErrorKind::InvalidValue,
                    format!("`{key}` must be a string, a whole number, true or false"),
                ))
            }
        };
        Ok(Some(text))
    }

    /// A table of options as the text of the file it stands for.
    fn render(&self, t: &Table<'_>, syntax: Syntax) -> Result<Generated, ConfigError> {
        let mut g = Generated {
            text: String::new(),
            origin: Vec::new(),
        };
        for (k, v) in t.get_ref() {
            let key = k.get_ref().as_ref();
            let line = self.lines.line(k.span().start);
            if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == '#' || c == '"') {
                return Err(self.err(
                    k.span().start,
                    ErrorKind::Unknown,
                    format!("`{key}` is not an option name"),
                ));
            }
            let values: Vec<&Spanned<DeValue<'_>>> = match v.get_ref() {
                DeValue::Array(a) => a.iter().collect(),
                _ => vec![v],
            };
            let mut texts = Vec::new();
            for item in values {
                if let Some(s) = self.scalar(key, item, syntax)? {
                    texts.push(s);
                }
            }
            if matches!(v.get_ref(), DeValue::Array(_)) && syntax == Syntax::Pptpd {
                if !texts.is_empty() {
                    g.push(format!("{key} {}", texts.join(",")), line);
                }
                continue;
            }
            for s in texts {
                if s.is_empty() {
                    g.push(key.to_string(), line);
                } else {
                    g.push(format!("{key} {s}"), line);
                }
            }
        }
        Ok(g)
    }

    /// `[[users]]` as chap-secrets lines.
    fn users(
        &self,
        v: &Spanned<DeValue<'_>>,
        files: &mut dyn FileSource,
        warnings: &mut Vec<Warning>,
    ) -> Result<ChapSecrets, ConfigError> {
        let DeValue::Array(list) = v.get_ref() else {
            return Err(self.err(
                v.span().start,
                ErrorKind::InvalidValue,
                "`users` must be a list of tables: write each user as a [[users]] table",
            ));
        };
        let mut g = Generated {
            text: String::new(),
            origin: Vec::new(),
        };
        for item in list.iter() {
            let t = self.table(item, "[users]")?;
            let line = self.lines.line(item.span().start);
            let (mut name, mut server, mut secret, mut ips) = (None, None, None, Vec::new());
            for (k, v) in t.get_ref() {
                let key = k.get_ref().as_ref();
                match key {
                    "name" => name = Some(self.string(key, v)?),
                    "server" => server = Some(self.string(key, v)?),
                    "secret" => {
                        let s = self.string(key, v)?;
                        if s.starts_with('@') {
                            return Err(self.err(
                                v.span().start,
                                ErrorKind::InvalidValue,
                                "a secret starting with `@` would name a file in chap-secrets; \
                                 use `secret_file = \"/path\"` for that",
                            ));
                        }
                        secret = Some(quote(&s));
                    }
                    "secret_file" => {
                        let p = self.path_value(key, v)?;
                        secret = Some(quote(&format!("@{}", p.display())));
                    }
                    "ip" => match v.get_ref() {
                        DeValue::Array(a) => {
                            for i in a.iter() {
                                ips.push(quote(&self.string(key, i)?));
                            }
                        }
                        _ => ips.push(quote(&self.string(key, v)?)),
                    },
                    other => {
                        return Err(self.err(
                            k.span().start,
                            ErrorKind::Unknown,
                            format!(
                                "unknown key `{other}` in [[users]]; a user has name, secret (or \
                                 secret_file), server and ip, the columns of chap-secrets"
                            ),
                        ))
                    }
                }
            }
            let Some(name) = name else {
                return Err(self.err(
                    item.span().start,
                    ErrorKind::InvalidValue,
                    "a [[users]] table without `name`",
                ));
            };
            let Some(secret) = secret else {
                return Err(self.err(
                    item.span().start,
                    ErrorKind::InvalidValue,
                    format!("user `{name}` has no `secret`"),
                ));
            };
            for s in [&name, server.as_deref().unwrap_or("*")] {
                if s.contains(['\n', '\r']) {
                    return Err(self.err(
                        item.span().start,
                        ErrorKind::InvalidValue,
                        "a name cannot span lines",
                    ));
                }
            }
            let ips = if ips.is_empty() {
                "*".to_string()
            } else {
                ips.join(" ")
            };
            g.push(
                format!(
                    "{} {} {} {}",
                    quote(&name),
                    quote(server.as_deref().unwrap_or("*")),
                    secret,
                    ips
                ),
                line,
            );
        }
        let p = g.remap(ChapSecrets::parse_with(&g.text, self.path, files), self)?;
        warnings.extend(p.warnings);
        Ok(p.value)
    }
}

/// A pppd word in double quotes (pppd's `getword` takes `\\` and `\"` inside).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
