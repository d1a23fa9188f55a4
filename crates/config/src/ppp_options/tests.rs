use super::*;
use crate::files::MemoryFiles;

const P: &str = "/etc/ppp/options.pptpd";

fn ok(text: &str) -> PppOptions {
    match PppOptions::parse(text, P) {
        Ok(p) => p.value,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn warnings(text: &str) -> Vec<String> {
    PppOptions::parse(text, P)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .warnings
        .into_iter()
        .map(|w| w.to_string())
        .collect()
}

fn err(text: &str) -> ConfigError {
    match PppOptions::parse(text, P) {
        Ok(p) => panic!("{text:?} parsed: {:?}", p.value),
        Err(e) => e,
    }
}

const SEED: &str = "name pptpd
refuse-pap
refuse-chap
refuse-mschap
require-mschap-v2
require-mppe-128
ms-dns 8.8.8.8
ms-dns 8.8.4.4
proxyarp
lock
nobsdcomp
novj
novjccomp
nologfd
";

#[test]
fn seed_options_parse_to_builtin_default() {
    let parsed = PppOptions::parse(SEED, P).unwrap();
    assert_eq!(parsed.value, PppOptions::builtin_default());
    let w: Vec<String> = parsed.warnings.iter().map(|w| w.message.clone()).collect();
    assert_eq!(w.len(), 5, "{w:?}");
    assert!(w[0].starts_with("option 'lock' ignored"));
    assert!(w[1].starts_with("option 'nobsdcomp' has no effect"));
    assert_eq!(parsed.warnings[4].line, 14);
}

#[test]
fn realpeer_options_also_parse() {
    // shared/realpeer/check-pptp.sh writes this (the seed plus nodefaultroute).
    let text = SEED.replace("proxyarp\n", "proxyarp\nnodefaultroute\n");
    let o = ok(&text);
    assert!(!o.defaultroute);
    assert_eq!(o.auth_policy().server_requests, [AuthMethod::MsChapV2]);
    assert_eq!(o.mppe, MppePolicy::STRONGEST);
}

#[test]
fn several_options_per_line_and_arguments_on_next_line() {
    let o = ok("name vpn mtu 1400 mru\n1450 proxyarp # trailing comment\nms-dns \"10.0.0.1\"");
    assert_eq!(o.name.as_deref(), Some("vpn"));
    assert_eq!(o.lcp.mtu, Some(1400));
    assert_eq!(o.lcp.mru, 1450);
    assert!(o.proxyarp);
    let dns = o.ms_dns.unwrap();
    assert_eq!(
        (dns.primary, dns.secondary),
        ([10, 0, 0, 1].into(), [10, 0, 0, 1].into())
    );
}

#[test]
fn quoted_and_escaped_names() {
    let cases: &[(&str, &str)] = &[
        ("name \"my server\"", "my server"),
        ("name 'a#b'", "a#b"),
        ("name a\\ b", "a b"),
        ("name \\x41\\102", "AB"),
        ("name ab\\\ncd", "abcd"),
        ("name \"\"\n", ""),
    ];
    for (text, want) in cases {
        assert_eq!(ok(text).name.as_deref(), Some(*want), "{text:?}");
    }
}

#[test]
fn defaults_of_an_empty_file() {
    let o = ok("# nothing\n");
    assert_eq!(o, PppOptions::default());
    assert_eq!(o.lcp.fsm.restart, Duration::from_secs(3));
    assert_eq!(o.lcp.fsm.max_configure, 10);
    assert_eq!(o.lcp.fsm.max_terminate, 2);
    assert_eq!(o.lcp.fsm.max_failure, 5);
    assert_eq!(o.lcp.mru, 1500);
    assert_eq!(o.lcp.mtu, None);
    assert_eq!(o.lcp.echo_interval, None);
    assert_eq!(o.chap.restart, Duration::from_secs(3));
    assert_eq!(o.chap.max_challenge, 10);
    assert_eq!(o.pap.timeout, Some(Duration::from_secs(30)));
    assert_eq!(o.mppe, MppePolicy::STRONGEST);
    let policy = o.auth_policy();
    assert_eq!(policy.server_requests, [AuthMethod::MsChapV2]);
    assert_eq!(policy.client_accepts, [AuthMethod::MsChapV2]);
}

#[test]
fn numeric_directives_table() {
    type Get = fn(&PppOptions) -> u64;
    let cases: &[(&str, Get, u64)] = &[
        ("mtu 1400", |o| o.lcp.mtu.map_or(0, u64::from), 1400),
        ("mru 0x500", |o| u64::from(o.lcp.mru), 1280),
        ("mru 02000", |o| u64::from(o.lcp.mru), 1024),
        (
            "lcp-echo-interval 30",
            |o| o.lcp.echo_interval.map_or(0, |d| d.as_secs()),
            30,
        ),
        ("lcp-echo-failure 4", |o| u64::from(o.lcp.echo_failure), 4),
        ("lcp-restart 5", |o| o.lcp.fsm.restart.as_secs(), 5),
        (
            "lcp-max-configure 7",
            |o| u64::from(o.lcp.fsm.max_configure),
            7,
        ),
        (
            "lcp-max-terminate 3",
            |o| u64::from(o.lcp.fsm.max_terminate),
            3,
        ),
        ("lcp-max-failure 9", |o| u64::from(o.lcp.fsm.max_failure), 9),
        ("ipcp-restart 4", |o| o.ipcp.restart.as_secs(), 4),
        (
            "ipcp-max-configure 8",
            |o| u64::from(o.ipcp.max_configure),
            8,
        ),
        (
            "ipcp-max-terminate 6",
            |o| u64::from(o.ipcp.max_terminate),
            6,
        ),
        ("ipcp-max-failure 2", |o| u64::from(o.ipcp.max_failure), 2),
        ("chap-restart 6", |o| o.chap.restart.as_secs(), 6),
        (
            "chap-max-challenge 3",
            |o| u64::from(o.chap.max_challenge),
            3,
        ),
        (
            "chap-interval 600",
            |o| o.chap.interval.map_or(0, |d| d.as_secs()),
            600,
        ),
        ("chap-timeout 20", |o| o.chap.timeout.as_secs(), 20),
        ("pap-restart 2", |o| o.pap.restart.as_secs(), 2),
        ("pap-max-authreq 4", |o| u64::from(o.pap.max_authreq), 4),
        (
            "pap-timeout 0",
            |o| o.pap.timeout.map_or(0, |d| d.as_secs()),
            0,
        ),
        ("idle 300", |o| o.idle.map_or(0, |d| d.as_secs()), 300),
        (
            "maxconnect 3600",
            |o| o.maxconnect.map_or(0, |d| d.as_secs()),
            3600,
        ),
        (
            "maxconnect 0",
            |o| o.maxconnect.map_or(0, |d| d.as_secs()),
            0,
        ),
        ("asyncmap 0xa0000", |o| u64::from(o.lcp.asyncmap), 0xa0000),
        (
            "asyncmap 20000 asyncmap 1",
            |o| u64::from(o.lcp.asyncmap),
            0x20001,
        ),
        (
            "default-asyncmap",
            |o| u64::from(o.lcp.asyncmap),
            0xffff_ffff,
        ),
    ];
    for (text, get, want) in cases {
        assert_eq!(get(&ok(text)), *want, "{text}");
    }
}

#[test]
fn boolean_directives_table() {
    type Get = fn(&PppOptions) -> bool;
    let cases: &[(&str, Get, bool)] = &[
        ("proxyarp", |o| o.proxyarp, true),
        ("proxyarp noproxyarp", |o| o.proxyarp, false),
        ("proxyarp -proxyarp", |o| o.proxyarp, false),
        ("defaultroute", |o| o.defaultroute, true),
        ("defaultroute nodefaultroute", |o| o.defaultroute, false),
        ("usepeerdns", |o| o.usepeerdns, true),
        ("noaccomp", |o| o.lcp.accomp, false),
        ("-pc", |o| o.lcp.pcomp, false),
        ("nomagic", |o| o.lcp.magic, false),
        ("default-mru", |o| o.lcp.negotiate_mru, false),
        ("default-asyncmap", |o| o.lcp.allow_asyncmap, false),
        ("asyncmap 0", |o| o.lcp.request_asyncmap, true),
        ("lcp-echo-adaptive", |o| o.lcp.echo_adaptive, true),
        ("chapms-strip-domain", |o| o.chap.strip_domain, true),
        ("refuse-eap", |o| o.auth.refuse_eap, true),
        ("nomppe noccp", |o| o.ccp, false),
    ];
    for (text, get, want) in cases {
        assert_eq!(get(&ok(text)), *want, "{text}");
    }
}

#[test]
fn negative_route_options_lock_the_positive_ones() {
    let e = err("noproxyarp\nproxyarp");
    assert_eq!((e.kind, e.line), (ErrorKind::Conflict, 2));
    assert!(
        e.message
            .contains(&format!("disabled by noproxyarp at {P}:1")),
        "{}",
        e.message
    );
    let e = err("-defaultroute defaultroute");
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(!ok("proxyarp noproxyarp").proxyarp);
}

#[test]
fn names_and_client_side_strings() {
    let o = ok("name srv user alice password \"s3cr et\" remotename corp chap-secrets secrets.txt");
    assert_eq!(o.name.as_deref(), Some("srv"));
    assert_eq!(o.user.as_deref(), Some("alice"));
    assert_eq!(o.password.as_deref(), Some("s3cr et"));
    assert_eq!(o.remotename.as_deref(), Some("corp"));
    assert_eq!(o.chap_secrets, Some(PathBuf::from("/etc/ppp/secrets.txt")));
    assert!(
        !format!("{o:?}").contains("s3cr"),
        "password must not be in Debug output"
    );
}

#[test]
fn auth_policy_table() {
    use AuthMethod::*;
    let cases: &[(&str, &[AuthMethod], &[AuthMethod])] = &[
        ("", &[MsChapV2], &[MsChapV2]),
        ("auth", &[MsChapV2], &[MsChapV2]),
        (
            "require-pap require-mschap-v2 nomppe",
            &[MsChapV2, Pap],
            &[MsChapV2],
        ),
        ("+chap +mschap nomppe", &[MsChap, ChapMd5], &[MsChapV2]),
        (
            "require-mschap require-mschap-v2",
            &[MsChapV2, MsChap],
            &[MsChapV2],
        ),
        ("refuse-pap", &[MsChapV2], &[MsChapV2, MsChap, ChapMd5]),
        ("-pap -chap -mschap", &[MsChapV2], &[MsChapV2]),
        (
            "refuse-mschap-v2 refuse-pap",
            &[MsChapV2],
            &[MsChap, ChapMd5],
        ),
        // refuse-* restrict the client only, as in pppd.
        (
            "refuse-pap refuse-chap refuse-mschap require-mschap-v2",
            &[MsChapV2],
            &[MsChapV2],
        ),
        ("require-chap nomppe", &[ChapMd5], &[MsChapV2]),
    ];
    for (text, server, client) in cases {
        let p = ok(text).auth_policy();
        assert_eq!(p.server_requests, *server, "{text}");
        assert_eq!(p.client_accepts, *client, "{text}");
    }
}

#[test]
fn mppe_policy_table() {
    let m = |required, a40, a56, a128, stateful| MppePolicy {
        required,
        allow_40: a40,
        allow_56: a56,
        allow_128: a128,
        stateful_allowed: stateful,
    };
    let cases: &[(&str, MppePolicy)] = &[
        ("", MppePolicy::STRONGEST),
        ("require-mppe", m(true, true, false, true, false)),
        ("+mppe", m(true, true, false, true, false)),
        ("require-mppe-128", m(true, false, false, true, false)),
        ("require-mppe-40", m(true, true, false, false, false)),
        (
            "require-mppe-40 require-mppe-128",
            m(true, true, false, true, false),
        ),
        ("require-mppe nomppe-40", m(true, false, false, true, false)),
        ("require-mppe -mppe-128", m(true, true, false, false, false)),
        ("require-mppe nomppe-40 nomppe-128", MppePolicy::OFF),
        ("nomppe", MppePolicy::OFF),
        ("require-mppe-128 nomppe", MppePolicy::OFF),
        (
            "nomppe require-mppe-128",
            m(true, false, false, true, false),
        ),
        // pppd: nomppe-40 alone leaves no MPPE (pppd's starting point has none).
        ("nomppe-40", MppePolicy::OFF),
        ("mppe-stateful", m(true, false, false, true, true)),
        (
            "mppe-stateful require-mppe",
            m(true, true, false, true, true),
        ),
        (
            "require-mppe mppe-stateful nomppe-stateful",
            m(true, true, false, true, false),
        ),
        // The older patch's form.
        ("mppe required,stateless", m(true, true, true, true, false)),
        (
            "mppe required,no40,no56,stateless",
            m(true, false, false, true, false),
        ),
        (
            "mppe required,no56,no128",
            m(true, true, false, false, true),
        ),
        ("mppe stateless", m(false, true, true, true, false)),
        ("mppe no40,no56,no128", MppePolicy::OFF),
        ("mppe required nomppe-40", m(true, false, true, true, true)),
        (
            "mppe required require-mppe",
            m(true, true, false, true, true),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(ok(text).mppe, *want, "{text}");
    }
}

#[test]
fn mppe_off_warns() {
    for text in ["nomppe", "nomppe-40", "require-chap nomppe", "nomppe noccp"] {
        let w = warnings(text);
        assert!(w.iter().any(|w| w.contains("MPPE is off")), "{text}: {w:?}");
    }
    assert!(!warnings("require-mppe")
        .iter()
        .any(|w| w.contains("MPPE is off")));
    let w = warnings("\nnomppe-40");
    assert!(
        w.iter()
            .any(|w| w.starts_with(&format!("{P}:2: warning: MPPE is off"))),
        "{w:?}"
    );
}

#[test]
fn ms_dns_and_wins_keep_the_last_two() {
    let o = ok("ms-dns 1.1.1.1 ms-dns 2.2.2.2 ms-dns 3.3.3.3 ms-wins 10.0.0.9");
    let dns = o.ms_dns.unwrap();
    assert_eq!(dns.primary, Ipv4Addr::new(2, 2, 2, 2));
    assert_eq!(dns.secondary, Ipv4Addr::new(3, 3, 3, 3));
    let wins = o.ms_wins.unwrap();
    assert_eq!(wins.primary, wins.secondary);
    let w = warnings("ms-dns 1.1.1.1\nms-dns 2.2.2.2\nms-dns 3.3.3.3");
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with(&format!("{P}:3: warning: more than two ms-dns")));
}

#[test]
fn address_pair_option() {
    let o = ok("10.0.0.1:10.0.0.2");
    assert_eq!(o.local_ip, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(o.remote_ip, Some(Ipv4Addr::new(10, 0, 0, 2)));
    let o = ok(":10.0.0.2");
    assert_eq!(
        (o.local_ip, o.remote_ip),
        (None, Some(Ipv4Addr::new(10, 0, 0, 2)))
    );
    let o = ok("10.0.0.1:");
    assert_eq!(
        (o.local_ip, o.remote_ip),
        (Some(Ipv4Addr::new(10, 0, 0, 1)), None)
    );
    let o = ok("0.0.0.0:10.0.0.2");
    assert_eq!(o.local_ip, None);
    assert_eq!(err("127.0.0.1:").kind, ErrorKind::InvalidValue);
    assert_eq!(err(":224.0.0.1").kind, ErrorKind::InvalidValue);
    assert_eq!(err("host.example:").kind, ErrorKind::InvalidValue);
}

#[test]
fn ignored_and_redundant_options_warn_and_consume_arguments() {
    let o = ok("logfile /var/log/ppp.log debug kdebug 7 holdoff 5 ifname ppp9 115200 lock name x");
    assert_eq!(o.name.as_deref(), Some("x"));
    let w = warnings("novj\nlogfd 2\nnoipv6\ndump\n38400");
    let expect = [
        "1: warning: option 'novj' has no effect",
        "2: warning: option 'logfd' ignored",
        "3: warning: option 'noipv6' has no effect",
        "4: warning: option 'dump' ignored",
        "5: warning: serial speed '38400' ignored",
    ];
    assert_eq!(w.len(), expect.len(), "{w:?}");
    for (got, want) in w.iter().zip(expect) {
        assert!(got.starts_with(&format!("{P}:{want}")), "{got}");
    }
}

#[test]
fn every_table_entry_is_classified_once() {
    let mut names: Vec<&str> = REDUNDANT.iter().map(|(n, _)| *n).collect();
    names.extend(IGNORED.iter().map(|(n, _, _)| *n));
    names.extend(REFUSED.iter().map(|(n, _)| *n));
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "an option is in two tables");
    // And none of them shadows an implemented option.
    for n in names {
        let text = format!("{n} 1");
        if let Ok(p) = PppOptions::parse(&text, P) {
            assert!(
                p.warnings.iter().any(|w| w.message.contains(n)),
                "{n} parsed without its warning"
            );
        }
    }
}

#[test]
fn refused_options_name_the_reason_and_line() {
    let cases: &[(&str, &str)] = &[
        ("noauth", "always authenticates"),
        ("require-eap", "no EAP"),
        ("plugin rp-pppoe.so", "only radius.so"),
        ("avpair Foo=1", "avpair"),
        ("ipcp-accept-remote", "choose addresses"),
        ("+ipv6", "IPv6CP"),
        ("login", "password database"),
        ("ip-up-script /x", "no scripts"),
        ("pty \"pptp host\"", "PPTP itself"),
        ("ms-lanman", "insecure"),
        ("/dev/ttyS0", "device"),
        ("allow-ip 10.0.0.1", "without authentication"),
        ("maxoctets 100", "traffic limits"),
    ];
    for (text, needle) in cases {
        let e = err(&format!("name ok\n\n{text}"));
        assert_eq!(e.kind, ErrorKind::Refused, "{text}");
        assert_eq!(e.line, 3, "{text}");
        assert!(e.message.contains(needle), "{text}: {}", e.message);
        assert!(e.to_string().starts_with(&format!("{P}:3: ")), "{e}");
    }
}

#[test]
fn unknown_options_are_refused_with_file_and_line() {
    let e = err("proxyarp\nrequire-mschapv2\n");
    assert_eq!(e.kind, ErrorKind::Unknown);
    assert_eq!(
        e.to_string(),
        format!("{P}:2: unrecognized option 'require-mschapv2' (pppd refuses it too); check the spelling or remove it")
    );
}

#[test]
fn bad_values_show_the_right_line() {
    let cases: &[(&str, u32, ErrorKind, &str)] = &[
        ("mtu", 1, ErrorKind::InvalidValue, "too few parameters"),
        (
            "proxyarp\n\nmru 99999",
            3,
            ErrorKind::InvalidValue,
            "between 128 and 16384",
        ),
        (
            "mru 127",
            1,
            ErrorKind::InvalidValue,
            "between 128 and 16384",
        ),
        (
            "mtu\n1400abc",
            2,
            ErrorKind::InvalidValue,
            "invalid number '1400abc'",
        ),
        (
            "lcp-echo-failure -1",
            1,
            ErrorKind::InvalidValue,
            "invalid number",
        ),
        ("lcp-restart 0", 1, ErrorKind::InvalidValue, ">= 1"),
        ("chap-restart 0", 1, ErrorKind::InvalidValue, ">= 1"),
        (
            "idle 99999999999",
            1,
            ErrorKind::InvalidValue,
            "invalid number",
        ),
        ("asyncmap xyz", 1, ErrorKind::InvalidValue, "hexadecimal"),
        (
            "\nms-dns dns.google",
            2,
            ErrorKind::InvalidValue,
            "host names",
        ),
        (
            "ms-wins 1.2.3",
            1,
            ErrorKind::InvalidValue,
            "invalid address",
        ),
        (
            "mppe required,no",
            1,
            ErrorKind::InvalidValue,
            "unknown mppe suboption 'no'",
        ),
        (
            "mppe required,no40,no56,no128",
            1,
            ErrorKind::Conflict,
            "every key length",
        ),
        ("name\n", 1, ErrorKind::InvalidValue, "too few parameters"),
        ("logfile", 1, ErrorKind::InvalidValue, "too few parameters"),
        ("x\n\"unterminated", 2, ErrorKind::Syntax, "never closed"),
    ];
    for (text, line, kind, needle) in cases {
        let e = err(text);
        assert_eq!((e.line, e.kind), (*line, *kind), "{text:?}: {e}");
        assert!(e.message.contains(needle), "{text:?}: {}", e.message);
    }
    let long = format!("name {}", "n".repeat(256));
    assert!(err(&long).message.contains("at most 255"));
}

#[test]
fn conflicts_between_mppe_and_authentication() {
    // Our default MPPE with CHAP-MD5 only: no keys.
    let e = err("\nrequire-chap");
    assert_eq!((e.kind, e.line), (ErrorKind::Conflict, 2));
    assert!(e.message.contains("add require-mschap-v2, or nomppe"));
    let e = err("require-pap require-mppe-128");
    assert_eq!(e.kind, ErrorKind::Conflict);
    // Mixed: allowed, with a warning about the PAP users.
    let w = warnings("require-pap require-mschap-v2");
    assert!(
        w.iter().any(|w| w.contains("PAP will be disconnected")),
        "{w:?}"
    );
    // noccp against required MPPE, explicit or by default.
    let e = err("require-mppe-128\nnoccp");
    assert_eq!((e.kind, e.line), (ErrorKind::Conflict, 2));
    assert!(e.message.contains(&format!("{P}:1")));
    let e = err("noccp");
    assert!(e
        .message
        .contains("virtgate requires unless told otherwise"));
    // Old optional form plus noccp: fine, MPPE off.
    assert_eq!(ok("mppe stateless noccp").mppe, MppePolicy::OFF);
}

#[test]
fn file_includes_nest_and_report_their_own_paths() {
    let mut files = MemoryFiles::new();
    files.insert("/etc/ppp/common", "ms-dns 1.1.1.1\nfile sub/more\n");
    files.insert("/etc/ppp/sub/more", "mtu 1400\n\nlock\n");
    let parsed = PppOptions::parse_with("name a\nfile common\nname b\n", P, &mut files).unwrap();
    assert_eq!(parsed.value.name.as_deref(), Some("b"));
    assert_eq!(parsed.value.lcp.mtu, Some(1400));
    assert!(parsed.value.ms_dns.is_some());
    assert_eq!(
        parsed.warnings[0].to_string(),
        "/etc/ppp/sub/more:3: warning: option 'lock' ignored: it locks a serial port and a PPTP link has none"
    );

    // An error inside an include names the include.
    files.insert("/etc/ppp/bad", "\nfrob\n");
    let e = PppOptions::parse_with("file bad", P, &mut files).unwrap_err();
    assert_eq!((e.path.as_path(), e.line), (Path::new("/etc/ppp/bad"), 2));

    // A missing include is an error at the `file` line.
    let e = PppOptions::parse_with("\nfile /nope", P, &mut files).unwrap_err();
    assert_eq!((e.kind, e.line), (ErrorKind::Io, 2));
    assert!(e.to_string().contains("cannot read options file /nope"));

    // Pure parse has no files.
    assert_eq!(err("file common").kind, ErrorKind::Io);
}

#[test]
fn include_loops_stop_at_the_depth_limit() {
    let mut files = MemoryFiles::new();
    files.insert("/loop", "mtu 1400\nfile /loop\n");
    let e = PppOptions::parse_with("file /loop", "/top", &mut files).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!((e.path.as_path(), e.line), (Path::new("/loop"), 2));
    assert!(e.message.contains("more than 8 deep"));
}

#[test]
fn c_number_parsing_matches_strtoul_where_it_accepts() {
    let cases: &[(&str, u32, Option<u32>)] = &[
        ("10", 0, Some(10)),
        ("+10", 0, Some(10)),
        ("0", 0, Some(0)),
        ("010", 0, Some(8)),
        ("0x1F", 0, Some(31)),
        ("0X1f", 0, Some(31)),
        ("08", 0, None),
        ("0x", 0, None),
        ("", 0, None),
        ("-1", 0, None),
        ("4294967295", 0, Some(u32::MAX)),
        ("4294967296", 0, None),
        ("ff", 16, Some(255)),
        ("0xff", 16, Some(255)),
        ("0", 16, Some(0)),
        ("g", 16, None),
    ];
    for (s, base, want) in cases {
        assert_eq!(parse_c_unsigned(s, *base), *want, "{s:?} base {base}");
    }
}

#[test]
fn random_input_never_panics() {
    let vocab = [
        "name",
        "mtu",
        "mru",
        "file",
        "ms-dns",
        "mppe",
        "require-mppe",
        "nomppe-40",
        "noccp",
        "require-chap",
        "1.2.3.4",
        ":",
        "#",
        "\"",
        "'",
        "\\",
        "\n",
        " ",
        "0x",
        "99999",
        "-",
        "refuse-pap",
        "auth",
        "lock",
        "a:b",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let mut s = String::new();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        for i in 0..(seed % 12) {
            let pick = (seed >> (i * 5)) as usize % vocab.len();
            s.push_str(vocab[pick]);
            if (seed >> i) & 1 == 1 {
                s.push(' ');
            }
        }
        let _ = PppOptions::parse(&s, P);
    }
    let bytes: Vec<u8> = (0..=255u8).collect();
    let _ = PppOptions::parse(&String::from_utf8_lossy(&bytes), P);
}

#[test]
fn radius_plugin_and_its_options() {
    let p = PppOptions::parse(
        "plugin radius.so\nradius-config-file /etc/rc.conf\nradius-order local-first\n",
        P,
    )
    .unwrap()
    .value;
    assert_eq!(
        p.radius,
        Some(RadiusPlugin {
            config_file: "/etc/rc.conf".into(),
            order: RadiusOrder::LocalFirst
        })
    );
    let p = PppOptions::parse("plugin /usr/lib/pppd/2.4.9/radius.so\n", P)
        .unwrap()
        .value;
    assert_eq!(
        p.radius,
        Some(RadiusPlugin {
            config_file: DEFAULT_RADIUS_CONFIG.into(),
            order: RadiusOrder::RadiusOnly
        })
    );
    assert_eq!(PppOptions::parse("name x\n", P).unwrap().value.radius, None);
    let e = err("name x\nradius-config-file /etc/rc.conf\n");
    assert_eq!((e.kind, e.line), (ErrorKind::Conflict, 2), "{e}");
    assert!(e.message.contains("plugin radius.so"), "{e}");
    let e = err("plugin radius.so\nradius-order sometimes\n");
    assert_eq!((e.kind, e.line), (ErrorKind::InvalidValue, 2), "{e}");
}
