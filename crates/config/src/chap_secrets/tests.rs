use super::*;
use crate::files::MemoryFiles;

const P: &str = "/etc/ppp/chap-secrets";

fn parse(text: &str) -> Parsed<ChapSecrets> {
    ChapSecrets::parse(text, P).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn secrets(text: &str) -> ChapSecrets {
    parse(text).value
}

fn err(text: &str) -> ConfigError {
    match ChapSecrets::parse(text, P) {
        Ok(p) => panic!("{text:?} parsed: {:?}", p.value),
        Err(e) => e,
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn seed_file() {
    let p = parse(
        "# client        server  secret                  IP addresses\nuser1 pptpd password1 *\n",
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let s = p.value.lookup("user1", "pptpd").unwrap();
    assert_eq!(
        (s.client.as_str(), s.server.as_str(), s.secret.as_str()),
        ("user1", "pptpd", "password1")
    );
    assert_eq!(s.line, 2);
    assert_eq!(s.addrs, AllowedAddrs::any());
    assert!(s.addrs.permits(ip("192.168.0.150")));
    assert_eq!(s.addrs.pinned(), None);
    assert!(p.value.lookup("user2", "pptpd").is_none());
    assert!(p.value.lookup("user1", "other").is_none());
    assert!(
        p.value.lookup("User1", "pptpd").is_none(),
        "names are case-sensitive"
    );
    assert!(p.value.usable_for_server("pptpd"));
    // The realpeer harness writes the same line with tabs.
    let tabs = secrets("# client\tserver\tsecret\t\tIP addresses\nuser1\tpptpd\tpassword1\t*\n");
    assert_eq!(tabs.entries(), p.value.entries());
}

#[test]
fn precedence_fewest_wildcards_then_first_line() {
    let text = "\
*      *      wild-wild      *
user1  *      exact-wild     *
*      pptpd  wild-exact     *
user1  pptpd  exact-exact    *
user1  pptpd  exact-exact-2  *
*      *      wild-wild-2    *
";
    let s = secrets(text);
    let cases: &[(&str, &str, &str)] = &[
        ("user1", "pptpd", "exact-exact"),
        ("user1", "other", "exact-wild"),
        ("bob", "pptpd", "wild-exact"),
        ("bob", "other", "wild-wild"),
    ];
    for (client, server, want) in cases {
        assert_eq!(
            s.lookup(client, server).unwrap().secret,
            *want,
            "{client}/{server}"
        );
    }
    // Reversed file: precedence does not depend on order, ties do.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.reverse();
    let r = secrets(&lines.join("\n"));
    assert_eq!(r.lookup("user1", "pptpd").unwrap().secret, "exact-exact-2");
    assert_eq!(r.lookup("bob", "other").unwrap().secret, "wild-wild-2");
    assert_eq!(r.lookup("user1", "other").unwrap().secret, "exact-wild");
    // Unknown names (pppd's NULL) match every line; exact words still rank higher.
    assert_eq!(
        s.lookup_with(None, Some("pptpd")).unwrap().secret,
        "exact-exact"
    );
    assert_eq!(
        s.lookup_with(Some("bob"), None).unwrap().secret,
        "wild-exact"
    );
}

#[test]
fn client_exact_outranks_server_exact() {
    let s = secrets("* pptpd by-server *\nuser1 * by-client *\n");
    assert_eq!(s.lookup("user1", "pptpd").unwrap().secret, "by-client");
}

#[test]
fn quoting_escapes_and_continuations() {
    let s = secrets(
        "\"user one\" pptpd 'pass word' *\n\
         user2 pptpd \\\n    pass2 10.0.0.2\n\
         user3 \"*\" \"\" *\n\
         user4 pptpd p\\x41ss\\#4 * # comment\n\
         'user#5' pptpd \"multi\nline\" *\n",
    );
    assert_eq!(s.lookup("user one", "pptpd").unwrap().secret, "pass word");
    let u2 = s.lookup("user2", "pptpd").unwrap();
    assert_eq!((u2.secret.as_str(), u2.line), ("pass2", 2));
    assert!(u2.addrs.permits(ip("10.0.0.2")));
    // A quoted "*" is still the wildcard, as pppd compares the word after quote removal.
    assert_eq!(s.lookup("user3", "anything").unwrap().secret, "");
    assert_eq!(s.lookup("user4", "pptpd").unwrap().secret, "pAss#4");
    assert_eq!(s.lookup("user#5", "pptpd").unwrap().secret, "multi\nline");
    assert_eq!(s.entries().len(), 5);
}

#[test]
fn short_lines_are_skipped_with_a_warning() {
    let p = parse("lonely\nuser1 pptpd\nuser2 pptpd pw2 *\n");
    assert_eq!(p.value.entries().len(), 1);
    assert_eq!(p.value.lookup("user2", "pptpd").unwrap().line, 3);
    assert!(p.value.lookup("user1", "pptpd").is_none());
    let lines: Vec<u32> = p.warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines, [1, 2]);
    assert!(p.warnings[1]
        .to_string()
        .starts_with(&format!("{P}:2: warning: line has no secret")));
}

#[test]
fn address_column_table() {
    // (address words, permitted, refused, pinned)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], Option<&'a str>);
    let cases: &[Case] = &[
        (
            "*",
            &["10.0.0.1", "192.168.0.200", "0.0.0.1"],
            &["127.0.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255"],
            None,
        ),
        ("", &[], &["10.0.0.1"], None),
        ("-", &[], &["10.0.0.1"], None),
        ("- 10.0.0.1", &[], &["10.0.0.1"], None),
        (
            "10.0.0.1 - 10.0.0.2",
            &["10.0.0.1"],
            &["10.0.0.2"],
            Some("10.0.0.1"),
        ),
        (
            "192.168.0.150",
            &["192.168.0.150"],
            &["192.168.0.151"],
            Some("192.168.0.150"),
        ),
        (
            "10.0.0.9/32",
            &["10.0.0.9"],
            &["10.0.0.8"],
            Some("10.0.0.9"),
        ),
        (
            "10.0.0.0/24",
            &["10.0.0.7", "10.0.0.255"],
            &["10.0.1.1"],
            None,
        ),
        ("10.0.0.5/24", &["10.0.0.77"], &["10.0.1.77"], None),
        ("!10.0.0.5 10.0.0.0/24", &["10.0.0.6"], &["10.0.0.5"], None),
        ("10.0.0.0/24 !10.0.0.5", &["10.0.0.5"], &["10.0.1.5"], None),
        ("!10.0.0.5 *", &["10.0.0.6", "8.8.8.8"], &["10.0.0.5"], None),
        (
            "!10.0.0.1 10.0.0.1 10.0.0.2",
            &["10.0.0.2"],
            &["10.0.0.1"],
            Some("10.0.0.2"),
        ),
        ("!10.0.0.0/8", &[], &["10.1.1.1", "11.0.0.1"], None),
        (
            "10.0.0.1 10.0.0.3",
            &["10.0.0.1", "10.0.0.3"],
            &["10.0.0.2"],
            Some("10.0.0.1"),
        ),
        ("127.0.0.1", &[], &["127.0.0.1"], None),
        (
            "0.0.0.0/1",
            &["10.0.0.1"],
            &["128.0.0.1", "127.0.0.1"],
            None,
        ),
    ];
    for (words, yes, no, pinned) in cases {
        let s = secrets(&format!("u s pw {words}\n"));
        let a = &s.lookup("u", "s").unwrap().addrs;
        for y in *yes {
            assert!(a.permits(ip(y)), "{words:?} should permit {y}");
        }
        for n in *no {
            assert!(!a.permits(ip(n)), "{words:?} should refuse {n}");
        }
        assert_eq!(a.pinned(), pinned.map(ip), "{words:?} pinned");
        let allowing_word = words
            .split_whitespace()
            .take_while(|w| *w != "-")
            .any(|w| !w.starts_with('!'));
        assert_eq!(a.is_none(), !allowing_word, "{words:?} is_none");
    }
}

#[test]
fn missing_address_column_warns_and_allows_nothing() {
    let p = parse("\nuser1 pptpd password1\n");
    let s = p.value.lookup("user1", "pptpd").unwrap();
    assert!(s.addrs.is_none());
    assert!(!s.addrs.permits(ip("192.168.0.100")));
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0]
        .to_string()
        .starts_with(&format!("{P}:2: warning: no IP address column")));
    assert!(!p.value.usable_for_server("pptpd"));
}

#[test]
fn choose_follows_pppd() {
    let pinned = secrets("u s pw 10.0.0.9\n").entries()[0].addrs.clone();
    assert_eq!(
        pinned.choose(Some(ip("192.168.0.100"))),
        Some(ip("10.0.0.9"))
    );
    assert_eq!(pinned.choose(None), Some(ip("10.0.0.9")));
    let any = AllowedAddrs::any();
    assert_eq!(
        any.choose(Some(ip("192.168.0.100"))),
        Some(ip("192.168.0.100"))
    );
    assert_eq!(any.choose(None), None);
    let both = secrets("u s pw 192.168.0.0/24 10.0.0.9\n").entries()[0]
        .addrs
        .clone();
    assert_eq!(
        both.choose(Some(ip("192.168.0.100"))),
        Some(ip("192.168.0.100"))
    );
    assert_eq!(AllowedAddrs::none().choose(Some(ip("192.168.0.100"))), None);
}

#[test]
fn words_after_star_or_dash_warn() {
    let p = parse("u s pw * 10.0.0.1\nv s pw - 10.0.0.2\n");
    let lines: Vec<u32> = p.warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines, [1, 2]);
    assert!(p.warnings[0].message.contains("after '*'"));
}

#[test]
fn errors_show_the_right_line() {
    let cases: &[(&str, u32, ErrorKind, &str)] = &[
        (
            "a b c *\n\nu s pw 10.0.0.0/33",
            3,
            ErrorKind::InvalidValue,
            "prefix length from 1 to 32",
        ),
        (
            "u s pw 10.0.0.0/0",
            1,
            ErrorKind::InvalidValue,
            "prefix length",
        ),
        (
            "u s pw 10.0.0.0/x",
            1,
            ErrorKind::InvalidValue,
            "prefix length",
        ),
        (
            "\nu s pw vpn.example.com",
            2,
            ErrorKind::InvalidValue,
            "host names",
        ),
        (
            "u s pw !*",
            1,
            ErrorKind::InvalidValue,
            "not an IPv4 address",
        ),
        ("u s pw 10.0.0.0/24+", 1, ErrorKind::Refused, "/n+ form"),
        ("u s pw * -- mtu 1400", 1, ErrorKind::Refused, "after '--'"),
        (
            "u s @/etc/ppp/pw *",
            1,
            ErrorKind::Refused,
            "ChapSecrets::read",
        ),
        ("x\nu s \"open", 2, ErrorKind::Syntax, "never closed"),
    ];
    for (text, line, kind, needle) in cases {
        let e = err(text);
        assert_eq!((e.line, e.kind), (*line, *kind), "{text:?}: {e}");
        assert!(e.message.contains(needle), "{text:?}: {}", e.message);
        assert!(e.to_string().starts_with(&format!("{P}:{line}: ")));
    }
    // "--" at the start of a line is that line's client name, not options.
    let p = parse("u s pw\n-- x");
    assert_eq!(p.value.entries().len(), 1);
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    let long = format!("u s {} *", "p".repeat(257));
    assert!(err(&long).message.contains("at most 256"));
    assert!(ChapSecrets::parse(&format!("u s {} *", "p".repeat(256)), P).is_ok());
}

#[test]
fn indirect_secrets_through_a_file_source() {
    let mut files = MemoryFiles::new();
    files.insert("/etc/ppp/pw-user1", "  \"from file\" ignored words\n");
    files.insert_with_mode("/etc/ppp/pw-open", "open-secret\n", 0o644);
    files.insert("/etc/ppp/pw-empty", "# nothing\n");
    let text = "\
user1 pptpd @/etc/ppp/pw-user1 *
user2 pptpd @/etc/ppp/pw-open *
user3 *     fallback3 *
user3 pptpd @/etc/ppp/missing *
user4 pptpd @/etc/ppp/pw-empty *
user5 pptpd @relative *
";
    let p = ChapSecrets::parse_with(text, P, &mut files).unwrap();
    let s = &p.value;
    assert_eq!(s.lookup("user1", "pptpd").unwrap().secret, "from file");
    assert_eq!(s.lookup("user2", "pptpd").unwrap().secret, "open-secret");
    // pppd skips a line whose secret file is unreadable, so the wildcard line is used.
    assert_eq!(s.lookup("user3", "pptpd").unwrap().secret, "fallback3");
    assert!(s.lookup("user4", "pptpd").is_none());
    // Only "@/" is indirection.
    assert_eq!(s.lookup("user5", "pptpd").unwrap().secret, "@relative");
    let w: Vec<String> = p.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w[0].starts_with(
        "/etc/ppp/pw-open: warning: secret file has group and/or other access (mode 644)"
    ));
    assert!(w[1].starts_with(&format!(
        "{P}:4: warning: can't open indirect secret file /etc/ppp/missing"
    )));
    assert!(w[2].starts_with(&format!(
        "{P}:5: warning: no secret in indirect secret file"
    )));
}

#[test]
fn read_from_disk_warns_about_loose_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("virtgate-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chap-secrets");
    std::fs::write(&path, "user1 pptpd password1 *\n").unwrap();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let p = ChapSecrets::read(&path).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.value.path(), path.as_path());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let p = ChapSecrets::read(&path).unwrap();
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].message.contains("mode 640"));

    let e = ChapSecrets::read(dir.join("missing")).unwrap_err();
    assert_eq!((e.kind, e.line), (ErrorKind::Io, 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn debug_output_hides_the_secret() {
    let s = secrets("user1 pptpd hunter2 *\n");
    let dbg = format!("{:?}", s);
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(dbg.contains("user1"));
}

#[test]
fn random_input_never_panics() {
    let vocab = [
        "u", "*", "-", "--", "!", "/", "24", "10.0.0.1", "@/", "\"", "'", "\\", "\n", " ", "#",
        "+", "0.0.0.0", "/33",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..3000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut s = String::new();
        for i in 0..(seed % 14) {
            s.push_str(vocab[(seed >> (i * 4)) as usize % vocab.len()]);
        }
        if let Ok(p) = ChapSecrets::parse(&s, P) {
            for e in p.value.entries() {
                let _ = e.addrs.pinned();
                let _ = e.addrs.permits(Ipv4Addr::new(10, 0, 0, 1));
            }
            let _ = p.value.lookup("u", "u");
        }
    }
}

#[test]
fn nt_hash_secrets_parse_and_bad_ones_are_refused_with_their_line() {
    // NtPasswordHash("password1"), RFC 2759 style: MD4 of UTF-16LE.
    const H: &str = "5835048ce94ad0564e29a924a03510ef";
    let text = format!(
        "# comment\nann pptpd nthash:{H} *\nbob pptpd nthash:{} 10.0.0.5\n\
         cy pptpd NTHASH:{H} *\ndee pptpd \"nthash:{H}\" *\n",
        H.to_uppercase()
    );
    let s = secrets(&text);
    let ann = s.lookup("ann", "pptpd").unwrap();
    let want: [u8; 16] = [
        0x58, 0x35, 0x04, 0x8c, 0xe9, 0x4a, 0xd0, 0x56, 0x4e, 0x29, 0xa9, 0x24, 0xa0, 0x35, 0x10,
        0xef,
    ];
    assert_eq!((ann.nt_hash, ann.line), (Some(want), 2));
    assert_eq!(ann.secret, format!("nthash:{H}"));
    // Upper-case hex is the same hash; the prefix itself is exact (anything else is a
    // password), quoting changes nothing.
    assert_eq!(s.lookup("bob", "pptpd").unwrap().nt_hash, Some(want));
    let cy = s.lookup("cy", "pptpd").unwrap();
    assert_eq!(cy.nt_hash, None);
    assert_eq!(cy.secret, format!("NTHASH:{H}"));
    assert_eq!(s.lookup("dee", "pptpd").unwrap().nt_hash, Some(want));
    // A plain password has none.
    assert_eq!(secrets("u s pw *").entries()[0].nt_hash, None);
    assert_eq!(nt_hash_secret(&want), format!("nthash:{H}"));
    // The Debug output hides it.
    assert!(!format!("{ann:?}").contains(H));

    for (text, line) in [
        (format!("a b c *\nu s nthash:{} *", &H[..31]), 2),
        (format!("\n\nu s nthash:{H}0 *"), 3),
        (format!("u s nthash:{}zz *", &H[..30]), 1),
        ("x y z *\nu s nthash: *".to_string(), 2),
        // 32 characters, but not all ASCII hex (a multi-byte character).
        (format!("u s nthash:{}é *", &H[..30]), 1),
    ] {
        let e = err(&text);
        assert_eq!(
            (e.line, e.kind),
            (line, ErrorKind::InvalidValue),
            "{text:?}: {e}"
        );
        assert!(e.message.contains("32 hex digits"), "{}", e.message);
        assert!(e.to_string().starts_with(&format!("{P}:{line}: ")), "{e}");
    }
}

#[test]
fn nt_hash_secrets_through_an_indirect_file() {
    let mut files = MemoryFiles::new();
    files.insert(
        "/etc/ppp/ann.hash",
        "nthash:5835048ce94ad0564e29a924a03510ef\n",
    );
    let s = ChapSecrets::parse_with("ann pptpd @/etc/ppp/ann.hash *\n", P, &mut files)
        .unwrap()
        .value;
    assert!(s.lookup("ann", "pptpd").unwrap().nt_hash.is_some());
}
