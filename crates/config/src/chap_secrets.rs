//! pppd secrets files (`/etc/ppp/chap-secrets`, pppd(8) "AUTHENTICATION") → [`ChapSecrets`].
//!
//! Syntax: pppd's [words](crate::ppp_options#word-syntax) (white space, `#` comments,
//! `"..."`/`'...'`, backslash escapes, backslash-newline continues a line). A line is
//! `client server secret [address ...]`; a line starts with the first word after an unescaped
//! newline.
//!
//! Matching, as pppd's `scan_authfile`: `*` (after quote removal) as client or server matches
//! any name; names are compared case-sensitively. Of the lines that match, the one with the
//! fewest wildcards wins — exact client and server, then exact client with `*` server, then
//! `*` client with exact server, then `*` for both — and among equally good lines the
//! **first** wins. Lines with fewer than three words never match (pppd skips them; we warn).
//!
//! Addresses, as pppd's `set_allowed_addrs` / `auth_ip_addr`: the words after the secret are
//! checked in order and the first that covers an address decides. `a.b.c.d` is one address,
//! `a.b.c.d/n` a subnet (n from 1 to 32), `!` in front excludes instead of allowing, `*` allows
//! any address and ends the list, `-` ends the list. An address no word covers is refused, and
//! so is every address when the line has **no address words** (only three words) or starts with
//! `-`: such a client authenticates but IPCP will give it no address (we warn). Loopback,
//! multicast and class E addresses are never allowed, whatever the line says.
//!
//! Our choices where pppd's behaviour would be silent or impossible for a pure parser:
//! * `@/path` secrets (the secret is the first word of that file) are read through the
//!   [`FileSource`]: [`ChapSecrets::read`] reads them from disk; if the file cannot be read the
//!   line is skipped with a warning, as pppd does. The pure [`ChapSecrets::parse`] has no files
//!   and refuses such lines.
//! * Words pppd would look up as host or network names, malformed `/n` lengths and the `/n+`
//!   per-unit form are errors (pppd warns and skips the word, quietly changing who may use what).
//! * Options after `--` (pppd applies them to that client) are refused.
//! * A secret longer than pppd's 256 bytes is refused (pppd truncates it).
//!
//! NT hashes instead of passwords (virtgate's extension, accel-ppp's `encrypted=1` idea): a
//! secret of the form `nthash:` followed by 32 hexadecimal digits is the MD4 hash of the
//! password in UTF-16LE ([`NT_HASH_PREFIX`]; `virtgate hash-password` prints one), kept in
//! [`Secret::nt_hash`]. It serves MS-CHAPv1/v2 (whose responses and MPPE keys derive from that
//! hash) and PAP (the offered password is hashed and compared), never CHAP-MD5, which needs the
//! password itself. A secret that starts with `nthash:` but is not 32 hex digits is an error
//! with its line, so a password can never be mistaken for a hash or the other way round (a
//! plaintext password that really starts with `nthash:` cannot be written: hash it instead).

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, ErrorKind, Parsed, Warning};
use crate::files::{FileSource, Filesystem, NoFiles};
use crate::ppp_options::{bad_ip, parse_ipv4, read_text};
use crate::words::{self, Word};

/// pppd's `MAXSECRETLEN`.
const MAX_SECRET_LEN: usize = 256;

/// The prefix of a secret stored as an NT hash (see the module notes).
pub const NT_HASH_PREFIX: &str = "nthash:";

/// One rule of an address list: `network/prefix_len`, allowing or (`!`) excluding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRule {
    /// `true` for an allowing word, `false` for a `!` word.
    pub permit: bool,
    /// The network (host bits cleared, as pppd masks them).
    pub network: Ipv4Addr,
    /// Prefix length, 0 (only from `*`) to 32.
    pub prefix_len: u8,
}

impl AddrRule {
    fn mask(&self) -> u32 {
        match self.prefix_len {
            0 => 0,
            n => u32::MAX << (32 - u32::from(n.min(32))),
        }
    }

    /// Whether `ip` falls in this rule's network.
    pub fn covers(&self, ip: Ipv4Addr) -> bool {
        let mask = self.mask();
        u32::from(ip) & mask == u32::from(self.network) & mask
    }
}

/// The addresses one chap-secrets line lets its client use (pppd's permitted-IP list).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowedAddrs {
    rules: Vec<AddrRule>,
}

impl AllowedAddrs {
    /// No address at all (a line with only three words, or `-`).
    pub fn none() -> AllowedAddrs {
        AllowedAddrs::default()
    }

    /// Any address (`*`).
    pub fn any() -> AllowedAddrs {
        AllowedAddrs {
            rules: vec![AddrRule {
                permit: true,
                network: Ipv4Addr::UNSPECIFIED,
                prefix_len: 0,
            }],
        }
    }

    /// Builds a list from rules checked in order (the first covering rule decides).
    pub fn from_rules(rules: Vec<AddrRule>) -> AllowedAddrs {
        AllowedAddrs { rules }
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[AddrRule] {
        &self.rules
    }

    /// Whether the client may use `ip` (pppd's `auth_ip_addr`): never loopback, multicast or
    /// class E; otherwise the first rule covering `ip` decides, and no rule means no.
    pub fn permits(&self, ip: Ipv4Addr) -> bool {
        if bad_ip(ip) {
            return false;
        }
        self.rules
            .iter()
            .find(|r| r.covers(ip))
            .is_some_and(|r| r.permit)
    }

    /// Whether the line has no allowing address word at all (the negation of pppd's
    /// `some_ip_ok`, which decides whether a secret is "usable"). A list can still permit
    /// nothing without being `is_none`, e.g. when its only allowing word is a loopback address.
    pub fn is_none(&self) -> bool {
        !self.rules.iter().any(|r| r.permit)
    }

    /// The single address to hand this client, if the line names one: the first
    /// single-address word (`a.b.c.d` or `a.b.c.d/32`) that the list permits.
    ///
    /// (pppd takes the first single-address word even when it is a `!` exclusion, which then
    /// fails IPCP; we skip words the list does not permit.)
    pub fn pinned(&self) -> Option<Ipv4Addr> {
        self.rules
            .iter()
            .filter(|r| r.permit && r.prefix_len == 32 && !r.network.is_unspecified())
            .map(|r| r.network)
            .find(|ip| self.permits(*ip))
    }

    /// The address pppd would give the client, `offered` being the one the server picked
    /// (pptpd's next `remoteip`): `offered` if permitted, otherwise the pinned address; with
    /// neither, `None` (IPCP must fail).
    pub fn choose(&self, offered: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        match offered {
            Some(ip) if self.permits(ip) => Some(ip),
            _ => self.pinned(),
        }
    }
}

/// One usable chap-secrets line.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Secret {
    /// The client name (`*` matches any).
    pub client: String,
    /// The server name (`*` matches any); compared with our `name`.
    pub server: String,
    /// The secret (after `@/path` indirection), as written.
    pub secret: String,
    /// The NT password hash when the secret is written as `nthash:<32 hex>`; then `secret`
    /// holds that text, not a password.
    pub nt_hash: Option<[u8; 16]>,
    /// The addresses the client may use.
    pub addrs: AllowedAddrs,
    /// The line the entry starts on.
    pub line: u32,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("client", &self.client)
            .field("server", &self.server)
            .field("secret", &"<redacted>")
            .field("nt_hash", &self.nt_hash.map(|_| "<redacted>"))
            .field("addrs", &self.addrs)
            .field("line", &self.line)
            .finish()
    }
}

/// A parsed chap-secrets file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChapSecrets {
    path: PathBuf,
    entries: Vec<Secret>,
}

fn is_wild(word: &str) -> bool {
    word == "*"
}

impl ChapSecrets {
    /// Parses a secrets file's text. `path` names it in errors and warnings. Lines with an
    /// `@/path` secret are refused (no file access); use [`ChapSecrets::read`] or
    /// [`ChapSecrets::parse_with`]. Never panics, whatever the input.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Parsed<ChapSecrets>, ConfigError> {
        ChapSecrets::parse_with(text, path, &mut NoFiles)
    }

    /// Reads and parses the secrets file at `path`, reading `@/path` secrets from disk. Warns,
    /// as pppd does, when the file (or an indirect secret file) is accessible by group or others.
    pub fn read(path: impl AsRef<Path>) -> Result<Parsed<ChapSecrets>, ConfigError> {
        let path = path.as_ref();
        read_secret_file(
            path,
            "secrets file",
            |text, fs| ChapSecrets::parse_with(text, path, fs),
            |_| true,
        )
    }

    /// Parses a secrets file's text, reading `@/path` secrets from `files`.
    pub fn parse_with(
        text: &str,
        path: impl AsRef<Path>,
        files: &mut dyn FileSource,
    ) -> Result<Parsed<ChapSecrets>, ConfigError> {
        let path = path.as_ref();
        let words = words::split(text, path)?;
        let mut warnings = Vec::new();
        let mut entries = Vec::new();

        // Group the words into lines: a line starts at the first word and at every word that
        // follows an unescaped newline.
        let mut lines: Vec<&[Word]> = Vec::new();
        let mut start = 0;
        for i in 1..=words.len() {
            if i == words.len() || words.get(i).is_some_and(|w| w.starts_line) {
                if let Some(l) = words.get(start..i) {
                    if !l.is_empty() {
                        lines.push(l);
                    }
                }
                start = i;
            }
        }

        for line in lines {
            if let Some(e) = entry(line, path, files, &mut warnings)? {
                entries.push(e);
            }
        }
        Ok(Parsed {
            value: ChapSecrets {
                path: path.to_path_buf(),
                entries,
            },
            warnings,
        })
    }

    /// The file these secrets came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All usable entries, in file order.
    pub fn entries(&self) -> &[Secret] {
        &self.entries
    }

    /// The secret for `client` authenticating to `server` (our `name`), chosen as pppd does:
    /// fewest wildcards, then first in the file.
    pub fn lookup(&self, client: &str, server: &str) -> Option<&Secret> {
        self.lookup_with(Some(client), Some(server))
    }

    /// Like [`ChapSecrets::lookup`], where `None` stands for a name not known yet (pppd's NULL:
    /// every line matches on that column, and exact names still count as more specific).
    pub fn lookup_with(&self, client: Option<&str>, server: Option<&str>) -> Option<&Secret> {
        let mut best: Option<(u8, &Secret)> = None;
        for e in &self.entries {
            if let Some(c) = client {
                if e.client != c && !is_wild(&e.client) {
                    continue;
                }
            }
            if let Some(s) = server {
                if e.server != s && !is_wild(&e.server) {
                    continue;
                }
            }
            let flag = (if is_wild(&e.client) { 0 } else { 2 }) | u8::from(!is_wild(&e.server));
            if best.is_none_or(|(b, _)| flag > b) {
                best = Some((flag, e));
            }
        }
        best.map(|(_, e)| e)
    }

    /// pppd's start-up check (`have_chap_secret(NULL, name, need_ip)`): whether the best line
    /// for `server` with any client lets that client use some address. When it does not, pppd
    /// refuses to start: "couldn't find any suitable secret".
    pub fn usable_for_server(&self, server: &str) -> bool {
        self.lookup_with(None, Some(server))
            .is_some_and(|e| !e.addrs.is_none())
    }
}

/// Reads the file at `path` (`what` it is, for errors) from disk and parses it with `parse`;
/// when `holds_secrets` says it does, [`access_warning`] comes first among the warnings.
pub(crate) fn read_secret_file<T>(
    path: &Path,
    what: &str,
    parse: impl FnOnce(&str, &mut dyn FileSource) -> Result<Parsed<T>, ConfigError>,
    holds_secrets: impl FnOnce(&T) -> bool,
) -> Result<Parsed<T>, ConfigError> {
    let mut fs = Filesystem;
    let text = read_text(&mut fs, path, path, 0, what)?;
    let mut parsed = parse(&text, &mut fs)?;
    if holds_secrets(&parsed.value) {
        if let Some(w) = access_warning(&mut fs, path) {
            parsed.warnings.insert(0, w);
        }
    }
    Ok(parsed)
}

/// pppd's `check_access` warning for a secrets file readable or writable by group or others.
pub(crate) fn access_warning(files: &mut dyn FileSource, path: &Path) -> Option<Warning> {
    let mode = files.mode(path)?;
    (mode & 0o077 != 0).then(|| {
        Warning::new(
            path,
            0,
            format!(
                "secret file has group and/or other access (mode {:03o}); run chmod 600 on it",
                mode & 0o777
            ),
        )
    })
}

fn entry(
    line: &[Word],
    path: &Path,
    files: &mut dyn FileSource,
    warnings: &mut Vec<Warning>,
) -> Result<Option<Secret>, ConfigError> {
    let (client, server, secret, rest) = match line {
        [c, s, k, rest @ ..] => (c, s, k, rest),
        [c, ..] => {
            warnings.push(Warning::new(
                path,
                c.line,
                "line has no secret (it needs client, server and secret); pppd ignores it",
            ));
            return Ok(None);
        }
        [] => return Ok(None),
    };
    let lineno = client.line;

    let secret_text = if let Some(file) =
        secret.text.strip_prefix('@').filter(|f| f.starts_with('/'))
    {
        let target = Path::new(file);
        match files.read_to_string(target) {
            Ok(text) => {
                if let Some(w) = access_warning(files, target) {
                    warnings.push(w);
                }
                match words::split(&text, target)?.into_iter().next() {
                    Some(w) => w.text,
                    None => {
                        warnings.push(Warning::new(
                            path,
                            secret.line,
                            format!("no secret in indirect secret file {file}; pppd skips this line, and so do we"),
                        ));
                        return Ok(None);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                return Err(ConfigError::new(
                    path,
                    secret.line,
                    ErrorKind::Refused,
                    format!("the secret is read from {file}, which needs file access; load this file with ChapSecrets::read"),
                ));
            }
            Err(e) => {
                warnings.push(Warning::new(
                    path,
                    secret.line,
                    format!("can't open indirect secret file {file} ({e}); pppd skips this line, and so do we"),
                ));
                return Ok(None);
            }
        }
    } else {
        secret.text.clone()
    };
    if secret_text.len() > MAX_SECRET_LEN {
        return Err(ConfigError::new(
            path,
            secret.line,
            ErrorKind::InvalidValue,
            format!(
                "secret is {} bytes; pppd uses at most {MAX_SECRET_LEN}, so shorten it",
                secret_text.len()
            ),
        ));
    }

    let nt_hash = match secret_text.strip_prefix(NT_HASH_PREFIX) {
        Some(hex) => Some(parse_nt_hash(hex).ok_or_else(|| {
            ConfigError::new(
                path,
                secret.line,
                ErrorKind::InvalidValue,
                format!(
                    "a secret starting with '{NT_HASH_PREFIX}' must be an NT hash: \
                     {NT_HASH_PREFIX} and 32 hex digits (`virtgate hash-password` prints one); \
                     this one has {} characters after the prefix",
                    hex.chars().count()
                ),
            )
        })?),
        None => None,
    };

    if let Some(dashes) = rest.iter().find(|w| w.text == "--") {
        return Err(ConfigError::new(
            path,
            dashes.line,
            ErrorKind::Refused,
            "per-client pppd options after '--' are not supported; remove them",
        ));
    }

    let addrs = addresses(rest, path, warnings)?;
    if rest.is_empty() {
        warnings.push(Warning::new(
            path,
            lineno,
            format!(
                "no IP address column: as in pppd, '{}' may use no IP address and its link will fail at IPCP; add * to allow any address",
                client.text
            ),
        ));
    }
    Ok(Some(Secret {
        client: client.text.clone(),
        server: server.text.clone(),
        secret: secret_text,
        nt_hash,
        addrs,
        line: lineno,
    }))
}

/// 32 hex digits (either case) → 16 octets.
fn parse_nt_hash(hex: &str) -> Option<[u8; 16]> {
    let b = hex.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16);
        *o = u8::try_from(digit(*pair.first()?)? << 4 | digit(*pair.get(1)?)?).ok()?;
    }
    Some(out)
}

/// The `nthash:` text of an NT hash (lowercase hex), as chap-secrets takes it.
pub fn nt_hash_secret(hash: &[u8; 16]) -> String {
    let mut s = String::from(NT_HASH_PREFIX);
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn addresses(
    words: &[Word],
    path: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<AllowedAddrs, ConfigError> {
    let mut rules = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let word = w.text.as_str();
        let stop = match word {
            "-" => true,
            "*" => {
                rules.push(AddrRule {
                    permit: true,
                    network: Ipv4Addr::UNSPECIFIED,
                    prefix_len: 0,
                });
                true
            }
            _ => false,
        };
        if stop {
            if let Some(extra) = words.get(i + 1) {
                warnings.push(Warning::new(
                    path,
                    extra.line,
                    format!("address words after '{word}' are ignored (pppd stops there)"),
                ));
            }
            break;
        }
        rules.push(rule(w, path)?);
    }
    Ok(AllowedAddrs { rules })
}

fn rule(w: &Word, path: &Path) -> Result<AddrRule, ConfigError> {
    let err = |msg: String| ConfigError::new(path, w.line, ErrorKind::InvalidValue, msg);
    let (permit, body) = match w.text.strip_prefix('!') {
        Some(b) => (false, b),
        None => (true, w.text.as_str()),
    };
    let (addr, prefix_len) = match body.split_once('/') {
        None => (body, 32u8),
        Some((addr, bits)) => {
            if bits.ends_with('+') {
                return Err(ConfigError::new(
                    path,
                    w.line,
                    ErrorKind::Refused,
                    format!("'{}': the /n+ form (an address chosen by ppp unit number) is not supported; list the address itself", w.text),
                ));
            }
            let n: u8 = bits
                .parse()
                .ok()
                .filter(|n| (1..=32).contains(n))
                .ok_or_else(|| {
                    err(format!(
                        "invalid address length '/{bits}' in '{}': use a prefix length from 1 to 32, or * for any address",
                        w.text
                    ))
                })?;
            (addr, n)
        }
    };
    let ip = parse_ipv4(addr).ok_or_else(|| {
        err(format!(
            "'{}' is not an IPv4 address or subnet (like 192.168.0.150 or 10.0.0.0/24); virtgate does not look up host names",
            w.text
        ))
    })?;
    let mask = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len))
    };
    Ok(AddrRule {
        permit,
        network: Ipv4Addr::from(u32::from(ip) & mask),
        prefix_len,
    })
}

#[cfg(test)]
mod tests;
