//! Fuzz targets for `virtgate-config`: pptpd.conf, pppd options files (with `file` includes)
//! and chap-secrets (with `@/path` secrets and lookups).
//!
//! The parsers have no emitter, so the targets check what the parsed value promises instead:
//! parsing is deterministic (same text, same value, same warnings, same error), every error and
//! warning points at a line that exists in a file that was read, and the typed result keeps the
//! rules the parser enforces (no address handed out twice, MPPE only with MS-CHAP keys, the
//! most specific chap-secrets line wins, permitted addresses are permitted).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use virtgate_config::{
    AddressPool, ChapSecrets, ConfigError, MemoryFiles, Parsed, PppOptions, PptpdConf, Warning,
};

const PPTPD_CONF: &str = "/etc/pptpd.conf";
const OPTIONS: &str = "/etc/ppp/options.pptpd";
const SECRETS: &str = "/etc/ppp/chap-secrets";
const TOML: &str = "/etc/virtgate/virtgate.toml";
/// Files a fuzz input can provide besides the main one (`file /etc/ppp/inc1`, `@/etc/ppp/inc1`).
const INCLUDES: [&str; 3] = ["/etc/ppp/inc1", "/etc/ppp/inc2", "/etc/ppp/inc3"];

/// Splits the input at NUL bytes: the main file's text, then up to three included files'.
/// Config text is UTF-8; invalid sequences become U+FFFD (the `read` helpers refuse non-UTF-8
/// files before the parser sees them).
fn texts(data: &[u8]) -> (String, MemoryFiles, Vec<(PathBuf, String)>) {
    let mut parts = data.splitn(1 + INCLUDES.len(), |b| *b == 0);
    let main = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
    let mut files = MemoryFiles::new();
    let mut list = Vec::new();
    for (name, part) in INCLUDES.iter().zip(parts) {
        let text = String::from_utf8_lossy(part).into_owned();
        files.insert(*name, text.clone());
        list.push((PathBuf::from(name), text));
    }
    (main, files, list)
}

/// Number of lines of `text` as the parsers count them (a final line without `\n` counts).
fn line_count(text: &str) -> u32 {
    u32::try_from(text.split('\n').count()).unwrap_or(u32::MAX)
}

/// Every error and warning names one of `files` (path, text) and a line within it.
fn check_located(files: &[(PathBuf, String)], path: &Path, line: u32, what: &str) {
    let Some((_, text)) = files.iter().find(|(p, _)| p == path) else {
        panic!("{what} names {} which was not read", path.display());
    };
    assert!(
        line <= line_count(text),
        "{what} at {}:{line}, past the last line ({})",
        path.display(),
        line_count(text)
    );
}

fn check_result<T>(r: &Result<Parsed<T>, ConfigError>, files: &[(PathBuf, String)]) {
    match r {
        Ok(p) => {
            for w in &p.warnings {
                check_warning(w, files);
            }
        }
        Err(e) => {
            check_located(files, &e.path, e.line, "error");
            let shown = e.to_string();
            assert!(
                shown.starts_with(&e.path.display().to_string()),
                "error display {shown:?} does not start with the path"
            );
            assert!(!e.message.is_empty(), "error without a message");
        }
    }
}

fn check_warning(w: &Warning, files: &[(PathBuf, String)]) {
    check_located(files, &w.path, w.line, "warning");
    assert!(w.to_string().contains("warning: "), "warning display");
}

/// `PptpdConf::parse`. On success: no `remoteip` address twice or shared with `localip`
/// (unless `delegate`), `max_clients` within `connections` and the address list, the pool
/// built from it holds exactly `max_clients` addresses, and each client has a local address.
pub fn config_pptpd_conf(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let r = PptpdConf::parse(&text, PPTPD_CONF);
    assert_eq!(r, PptpdConf::parse(&text, PPTPD_CONF), "not deterministic");
    check_result(&r, &[(PathBuf::from(PPTPD_CONF), text.to_string())]);
    let Ok(parsed) = r else { return };
    let conf = parsed.value;
    assert!(conf.stimeout.as_secs() > 0, "stimeout 0");
    assert!(conf.connections > 0, "connections 0");
    let max = conf.max_clients();
    assert!(max <= usize::try_from(conf.connections).unwrap_or(usize::MAX));
    let pool = AddressPool::from_conf(&conf);
    if conf.delegate {
        assert!(pool.is_empty(), "delegate but a pool");
        return;
    }
    assert!(max <= conf.remoteip.len());
    assert_eq!(pool.len(), max, "pool size vs max_clients");
    let mut seen = std::collections::HashSet::new();
    for ip in &conf.remoteip {
        assert!(seen.insert(*ip), "remoteip {ip} twice");
        assert!(!conf.localip.contains(ip), "remoteip {ip} is also local");
    }
    for i in 0..max {
        assert!(
            conf.local_ip_for(i).is_some(),
            "client {i} has no local address"
        );
    }
}

/// `PppOptions::parse_with` over the main file and up to three includes (input split at NUL:
/// `file /etc/ppp/inc1` reaches the second part). On success: the MRU/MTU are in pppd's
/// range, the server always authenticates, a required MPPE has an MS-CHAP method to key it,
/// MPPE off is one canonical value, and `noccp` means no MPPE.
pub fn config_ppp_options(data: &[u8]) {
    let (main, mut files, mut list) = texts(data);
    let r = PppOptions::parse_with(&main, OPTIONS, &mut files);
    assert_eq!(
        r,
        PppOptions::parse_with(&main, OPTIONS, &mut files.clone()),
        "not deterministic"
    );
    list.push((PathBuf::from(OPTIONS), main.clone()));
    check_result(&r, &list);
    let Ok(parsed) = r else { return };
    let o = parsed.value;
    assert!((128..=16384).contains(&o.lcp.mru), "mru {}", o.lcp.mru);
    if let Some(mtu) = o.lcp.mtu {
        assert!((128..=16384).contains(&mtu), "mtu {mtu}");
    }
    let policy = o.auth_policy();
    assert!(
        !policy.server_requests.is_empty(),
        "the server must authenticate"
    );
    for m in &policy.server_requests {
        assert!(o.auth.require.is_empty() || o.auth.require.contains(*m));
    }
    for m in &policy.client_accepts {
        assert!(!o.auth.refuse.contains(*m), "client accepts refused {m}");
    }
    if o.mppe.required {
        assert!(o.mppe.enabled(), "MPPE required with no key length");
        assert!(
            policy
                .server_requests
                .iter()
                .any(|m| m.provides_mppe_keys()),
            "MPPE required but no MS-CHAP method"
        );
    }
    if !o.mppe.enabled() {
        assert_eq!(
            o.mppe,
            virtgate_config::MppePolicy::OFF,
            "MPPE off is not canonical"
        );
    }
    if !o.ccp {
        assert!(!o.mppe.enabled(), "noccp with MPPE");
    }
    // Text that cannot spell `file` (no quotes or escapes to build it from pieces) reads no
    // other file: the pure entry point gives the same result.
    if !main.contains("file") && !main.contains(['\\', '"', '\'']) {
        let plain = PppOptions::parse(&main, OPTIONS);
        assert_eq!(
            plain.map(|p| p.value).ok(),
            Some(o),
            "result depends on files never named"
        );
    }
}

/// `ChapSecrets::parse_with` (input split at NUL: the secrets text, then files for `@/path`
/// secrets, the last part also lists `client server` name pairs to look up, one per line).
/// Every lookup answer matches both names (exactly or by `*`) and no other matching line is more
/// specific or earlier at the same specificity; every entry can be found by its own names; an
/// address list only pins or chooses addresses it permits, never loopback or multicast.
pub fn config_chap_secrets(data: &[u8]) {
    let (main, mut files, mut list) = texts(data);
    let r = ChapSecrets::parse_with(&main, SECRETS, &mut files);
    assert_eq!(
        r,
        ChapSecrets::parse_with(&main, SECRETS, &mut files.clone()),
        "not deterministic"
    );
    let names: Vec<String> = list
        .last()
        .map(|(_, t)| t.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    list.push((PathBuf::from(SECRETS), main.clone()));
    check_result(&r, &list);
    let Ok(parsed) = r else { return };
    let s = parsed.value;
    let mut queries: Vec<(Option<String>, Option<String>)> = names
        .iter()
        .map(|l| {
            let mut w = l.split_whitespace().map(str::to_owned);
            (w.next(), w.next())
        })
        .collect();
    for e in s.entries() {
        assert!(
            e.secret.len() <= 256,
            "secret longer than pppd's MAXSECRETLEN"
        );
        assert!(!e.secret.contains('\0'), "NUL in a secret");
        // An NT hash exactly when the secret says so (and then it round-trips).
        assert_eq!(
            e.nt_hash.is_some(),
            e.secret
                .starts_with(virtgate_config::chap_secrets::NT_HASH_PREFIX),
            "nthash: secret without a hash, or a hash without the prefix"
        );
        if let Some(h) = e.nt_hash {
            assert_eq!(
                virtgate_config::chap_secrets::nt_hash_secret(&h),
                e.secret.to_ascii_lowercase(),
            );
        }
        queries.push((Some(e.client.clone()), Some(e.server.clone())));
        let found = s.lookup(&e.client, &e.server);
        assert!(
            found.is_some(),
            "entry {e:?} cannot be found by its own names"
        );
        check_addrs(&e.addrs);
    }
    for (c, sv) in &queries {
        check_lookup(&s, c.as_deref(), sv.as_deref());
    }
}

fn specificity(client: &str, server: &str) -> u8 {
    (if client == "*" { 0 } else { 2 }) | u8::from(server != "*")
}

fn check_lookup(s: &ChapSecrets, client: Option<&str>, server: Option<&str>) {
    let matches = |e: &virtgate_config::Secret| {
        client.is_none_or(|c| e.client == c || e.client == "*")
            && server.is_none_or(|v| e.server == v || e.server == "*")
    };
    let best = s.entries().iter().filter(|e| matches(e)).fold(
        None::<&virtgate_config::Secret>,
        |best, e| match best {
            Some(b) if specificity(&b.client, &b.server) >= specificity(&e.client, &e.server) => {
                Some(b)
            }
            _ => Some(e),
        },
    );
    let got = s.lookup_with(client, server);
    assert_eq!(
        got.map(|e| e.line),
        best.map(|e| e.line),
        "lookup({client:?}, {server:?})"
    );
    if let Some(sv) = server {
        assert_eq!(
            s.usable_for_server(sv),
            s.lookup_with(None, Some(sv))
                .is_some_and(|e| !e.addrs.is_none())
        );
    }
}

fn check_addrs(a: &virtgate_config::AllowedAddrs) {
    for bad in [
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(240, 0, 0, 1),
    ] {
        assert!(!a.permits(bad), "permits {bad}");
    }
    if let Some(p) = a.pinned() {
        assert!(a.permits(p), "pins {p} it does not permit");
    }
    for r in a.rules() {
        assert!(r.prefix_len <= 32);
        for offered in [Some(r.network), None] {
            if let Some(ip) = a.choose(offered) {
                assert!(a.permits(ip), "chooses {ip} it does not permit");
            }
        }
    }
    if a.is_none() {
        for r in a.rules() {
            assert!(!a.permits(r.network), "is_none but permits {}", r.network);
        }
    }
}

/// `NetworkDef::parse` (libvirt network XML; input split at NUL: the network, then an XML
/// fragment for `update`). On success the definition validates, its `to_xml` parses back to the
/// same definition and is canonical (emitting again gives the same text); an `update` that
/// succeeds leaves a definition that still validates and round-trips.
pub fn config_libvirt_network(data: &[u8]) {
    use virtgate_config::libvirt::{UpdateOp, UpdateSection};
    use virtgate_config::NetworkDef;
    const PATH: &str = "/etc/libvirt/qemu/networks/fuzz.xml";
    let mut parts = data.splitn(2, |b| *b == 0);
    let xml = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
    let update = parts
        .next()
        .map(|u| String::from_utf8_lossy(u).into_owned());
    let r = NetworkDef::parse(&xml, PATH);
    assert_eq!(r, NetworkDef::parse(&xml, PATH), "not deterministic");
    // XML 1.0 §2.11: CR LF and a lone CR are line ends too.
    let lines = xml.replace("\r\n", "\n").replace('\r', "\n");
    check_result(&r, &[(PathBuf::from(PATH), lines)]);
    let Ok(parsed) = r else { return };
    let mut def = parsed.value;
    let round_trip = |def: &NetworkDef| {
        if let Err(e) = def.validate() {
            panic!("a parsed definition does not validate: {e}");
        }
        let out = def.to_xml();
        let again = match NetworkDef::parse(&out, PATH) {
            Ok(p) => p.value,
            Err(e) => panic!("to_xml output does not parse: {e}\n{out}"),
        };
        assert_eq!(&again, def, "parse(to_xml(d)) != d\n{out}");
        assert_eq!(again.to_xml(), out, "to_xml is not canonical");
    };
    round_trip(&def);
    if let Some(u) = update {
        let (section, op) = match u.as_bytes().first().map_or(0, |b| b % 8) {
            0 => (UpdateSection::IpDhcpHost, UpdateOp::AddLast),
            1 => (UpdateSection::IpDhcpHost, UpdateOp::AddFirst),
            2 => (UpdateSection::IpDhcpHost, UpdateOp::Delete),
            3 => (UpdateSection::IpDhcpHost, UpdateOp::Modify),
            4 => (UpdateSection::DnsHost, UpdateOp::AddLast),
            5 => (UpdateSection::DnsHost, UpdateOp::AddFirst),
            6 => (UpdateSection::DnsHost, UpdateOp::Delete),
            _ => (UpdateSection::DnsHost, UpdateOp::Modify),
        };
        let fragment = u.get(1..).unwrap_or("");
        let before = def.clone();
        match def.update(section, op, fragment) {
            Ok(()) => round_trip(&def),
            Err(_) => assert_eq!(def, before, "a refused update changed the definition"),
        }
    }
}

/// `ConfigFile::parse_with` (input split at NUL: the virtgate.toml text, then the files it may
/// name as `/etc/ppp/inc1`..`inc3`). Deterministic; errors and warnings located in a file that
/// exists, at a line it has; an accepted file's users can each be found by their own names.
pub fn config_toml(data: &[u8]) {
    let (main, mut files, mut list) = texts(data);
    let r = virtgate_config::ConfigFile::parse_with(&main, TOML, &mut files);
    assert_eq!(
        r,
        virtgate_config::ConfigFile::parse_with(&main, TOML, &mut files.clone()),
        "not deterministic"
    );
    list.push((PathBuf::from(TOML), main.clone()));
    check_result(&r, &list);
    let Ok(parsed) = r else { return };
    let c = parsed.value;
    if let Some(s) = &c.secrets {
        for e in s.entries() {
            assert!(
                s.lookup(&e.client, &e.server).is_some(),
                "user {e:?} cannot be found by its own names"
            );
        }
    }
}
