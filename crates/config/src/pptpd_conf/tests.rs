use super::*;
use crate::files::MemoryFiles;

const P: &str = "/etc/pptpd.conf";

fn parse(text: &str) -> Parsed<PptpdConf> {
    PptpdConf::parse(text, P).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn conf(text: &str) -> PptpdConf {
    parse(text).value
}

fn err(text: &str) -> ConfigError {
    match PptpdConf::parse(text, P) {
        Ok(p) => panic!("{text:?} parsed: {:?}", p.value),
        Err(e) => e,
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ips(list: &[&str]) -> Vec<Ipv4Addr> {
    list.iter().map(|s| ip(s)).collect()
}

#[test]
fn seed_conf_equals_builtin_default() {
    let p = parse("localip 192.168.0.1\nremoteip 192.168.0.100-200\n");
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.value, PptpdConf::builtin_default());
    assert_eq!(p.value.remoteip.len(), 101);
    assert_eq!(p.value.remoteip.first(), Some(&ip("192.168.0.100")));
    assert_eq!(p.value.remoteip.last(), Some(&ip("192.168.0.200")));
    assert_eq!(p.value.max_clients(), 100);
    assert_eq!(p.value.local_ip_for(57), Some(ip("192.168.0.1")));
}

#[test]
fn realpeer_conf_names_the_options_file() {
    let mut files = MemoryFiles::new();
    files.insert(
        "/run/rp/options.pptpd",
        "name pptpd\nrefuse-pap\nrefuse-chap\nrefuse-mschap\nrequire-mschap-v2\nrequire-mppe-128\nms-dns 8.8.8.8\nms-dns 8.8.4.4\nproxyarp\nlock\nnobsdcomp\nnovj\nnovjccomp\nnologfd\n",
    );
    let c = conf("option /run/rp/options.pptpd\nlocalip 192.168.0.1\nremoteip 192.168.0.100-200\n");
    assert_eq!(c.option, Some(PathBuf::from("/run/rp/options.pptpd")));
    let opts = c.ppp_options_with(&mut files).unwrap();
    assert_eq!(opts.value, PppOptions::builtin_default());
    // Without `option` the built-in options apply.
    let none = PptpdConf::builtin_default()
        .ppp_options_with(&mut files)
        .unwrap();
    assert_eq!(none.value, PppOptions::builtin_default());
    // A missing options file is reported at the `option` line of pptpd.conf.
    let c = conf("localip 10.0.0.1\nremoteip 10.0.0.2-3\noption missing\n");
    let e = c.ppp_options_with(&mut files).unwrap_err();
    assert_eq!(
        (e.path.as_path(), e.line, e.kind),
        (Path::new(P), 3, ErrorKind::Io)
    );
    assert!(e.message.contains("/etc/missing"), "{}", e.message);
}

#[test]
fn address_lists_table() {
    let cases: &[(&str, &[&str])] = &[
        ("192.168.0.5", &["192.168.0.5"]),
        (
            "192.168.0.234-238,192.168.0.245",
            &[
                "192.168.0.234",
                "192.168.0.235",
                "192.168.0.236",
                "192.168.0.237",
                "192.168.0.238",
                "192.168.0.245",
            ],
        ),
        (
            "192.168.0.245,192.168.0.1-2",
            &["192.168.0.245", "192.168.0.1", "192.168.0.2"],
        ),
        ("10.0.0-2.7", &["10.0.0.7", "10.0.1.7", "10.0.2.7"]),
        ("10.1-2.0.1", &["10.1.0.1", "10.2.0.1"]),
        ("9-10.0.0.1", &["9.0.0.1", "10.0.0.1"]),
        ("10.0.0.4-4", &["10.0.0.4"]),
        ("10.0.0.254-255", &["10.0.0.254", "10.0.0.255"]),
    ];
    for (spec, want) in cases {
        let c = conf(&format!("localip 172.16.0.1\nremoteip {spec}\n"));
        assert_eq!(c.remoteip, ips(want), "{spec}");
    }
    let c = conf("localip 192.168.1.2-254\nremoteip 192.168.0.2-254");
    assert_eq!(c.localip.len(), 253);
    assert_eq!(c.local_ip_for(3), Some(ip("192.168.1.5")));
    assert_eq!(c.max_clients(), 100);
}

#[test]
fn bad_address_lists_are_refused_with_the_line() {
    let cases: &[(&str, &str)] = &[
        ("192.168.0.200-100", "runs backwards"),
        ("192.168.0.1-2-3", "not a valid range"),
        ("192.168-169.0.1-2", "not a valid range"),
        ("192.168.0.1-256", "not a valid range"),
        ("192.168.0-.1", "not a valid range"),
        ("192.168.1-3", "not a valid range"),
        ("192.168.0.1,,192.168.0.2", "empty entry"),
        ("192.168.0.1,", "empty entry"),
        ("192.168.0.300", "not an IPv4 address"),
        ("192.168.0.1 # the gateway", "no comments after a value"),
        ("192.168.0.1, 192.168.0.2", "unexpected text"),
        ("vpn.example.com", "host names"),
    ];
    for (spec, needle) in cases {
        let e = err(&format!("# comment\nlocalip 10.9.9.9\nremoteip {spec}\n"));
        assert_eq!(
            (e.line, e.kind),
            (3, ErrorKind::InvalidValue),
            "{spec}: {e}"
        );
        assert!(e.message.contains(needle), "{spec}: {}", e.message);
        assert!(
            e.to_string().starts_with(&format!("{P}:3: remoteip")),
            "{e}"
        );
    }
}

#[test]
fn duplicate_or_overlapping_addresses_are_refused() {
    let e = err("localip 10.0.0.1\nremoteip 10.0.0.2-5,10.0.0.3");
    assert_eq!((e.line, e.kind), (2, ErrorKind::Conflict));
    assert!(e.message.contains("10.0.0.3 twice"));
    let e = err("remoteip 10.0.0.1-5\nlocalip 10.0.0.1");
    assert_eq!((e.line, e.kind), (1, ErrorKind::Conflict));
    assert!(e.message.contains("line 2"));
}

#[test]
fn directives_table() {
    let c = conf(
        "option /etc/ppp/options.pptpd\n\
         debug\n\
         logwtmp\n\
         noipparam\n\
         bcrelay eth1\n\
         listen 10.1.2.3\n\
         stimeout 30\n\
         connections 20\n\
         pidfile /run/virtgate.pid\n\
         localip 10.0.0.1\n\
         remoteip 10.0.0.10-50\n",
    );
    assert_eq!(c.option, Some(PathBuf::from("/etc/ppp/options.pptpd")));
    assert!(c.debug && c.logwtmp && c.noipparam && !c.delegate);
    assert_eq!(c.bcrelay.as_deref(), Some("eth1"));
    assert_eq!(c.listen, Some(ip("10.1.2.3")));
    assert_eq!(c.stimeout, Duration::from_secs(30));
    assert_eq!(c.connections, 20);
    assert_eq!(c.max_clients(), 20);
    assert_eq!(c.pidfile, Some(PathBuf::from("/run/virtgate.pid")));
    assert_eq!(c.remoteip.len(), 41);

    let c = conf("option options.pptpd\nlocalip 1.1.1.1\nremoteip 1.1.1.2");
    assert_eq!(
        c.option,
        Some(PathBuf::from("/etc/options.pptpd")),
        "relative to pptpd.conf"
    );
    let d = PptpdConf::builtin_default();
    assert_eq!((d.stimeout, d.connections), (Duration::from_secs(10), 100));
    assert!(d.option.is_none() && d.listen.is_none() && d.pidfile.is_none());
}

#[test]
fn pptpd_line_syntax() {
    // Trailing blanks and CR are dropped; blanks between keyword and value are skipped.
    let c = conf("localip\t \t10.0.0.1  \t\r\n#remoteip 1.1.1.1\n\nremoteip 10.0.0.2-3\n");
    assert_eq!(c.localip, ips(&["10.0.0.1"]));
    assert_eq!(c.remoteip, ips(&["10.0.0.2", "10.0.0.3"]));
    // Indented lines are an error, as are unknown or valueless directives.
    let e = err("localip 10.0.0.1\n  remoteip 10.0.0.2\n");
    assert_eq!((e.line, e.kind), (2, ErrorKind::Syntax));
    let e = err("\n\nLocalIP 10.0.0.1");
    assert_eq!((e.line, e.kind), (3, ErrorKind::Unknown));
    assert!(e
        .to_string()
        .starts_with(&format!("{P}:3: unknown directive 'LocalIP'")));
    let e = err("localip\n");
    assert_eq!((e.line, e.kind), (1, ErrorKind::InvalidValue));
    let e = err("option");
    assert!(e.message.contains("needs a value"));
    let e = err("localip 10.0.0.1\nvrf blue\n");
    assert_eq!((e.line, e.kind), (2, ErrorKind::Refused));
}

#[test]
fn first_occurrence_wins_like_pptpd() {
    let p = parse("localip 10.0.0.1\nremoteip 10.0.0.2\nlocalip 10.0.0.9\n");
    assert_eq!(p.value.localip, ips(&["10.0.0.1"]));
    assert_eq!(p.warnings.len(), 1);
    assert_eq!(
        p.warnings[0].to_string(),
        format!("{P}:3: warning: duplicate 'localip' has no effect: pptpd uses the first one, on line 1")
    );
}

#[test]
fn numbers_follow_pptpd() {
    let p = parse("connections 0\nstimeout -5\nlocalip 1.1.1.1\nremoteip 1.1.1.2");
    assert_eq!(
        (p.value.connections, p.value.stimeout),
        (100, Duration::from_secs(10))
    );
    let lines: Vec<u32> = p.warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines, [1, 2]);
    let e = err("localip 1.1.1.1\nstimeout 10s");
    assert_eq!((e.line, e.kind), (2, ErrorKind::InvalidValue));
    let e = err("connections many");
    assert_eq!((e.line, e.kind), (1, ErrorKind::InvalidValue));
    let e = err("connections 99999999999");
    assert!(e.message.contains("too large"));
    let c = conf("connections 2\nlocalip 1.1.1.1\nremoteip 1.1.1.2-9");
    assert_eq!(c.max_clients(), 2);
    assert_eq!(c.remoteip.len(), 8, "the list is kept whole");
    let c = conf("localip 1.1.1.1-3\nremoteip 1.1.1.10-19");
    assert_eq!(
        c.max_clients(),
        3,
        "several localip addresses pair with remoteip"
    );
    assert_eq!(c.local_ip_for(2), Some(ip("1.1.1.3")));
    assert_eq!(c.local_ip_for(3), None);
}

#[test]
fn flags_with_values_and_ignored_directives() {
    let p = parse("debug 0\nspeed 115200\nppp /usr/sbin/pppd\nlocalip 1.1.1.1\nremoteip 1.1.1.2\n");
    assert!(p.value.debug, "pptpd turns debug on whatever follows");
    let w: Vec<String> = p.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w[0].starts_with(&format!("{P}:1: warning: 'debug' takes no value")));
    assert!(w[1].starts_with(&format!("{P}:2: warning: 'speed' ignored")));
    assert!(w[2].starts_with(&format!("{P}:3: warning: 'ppp' ignored")));
    let e = err("delegate no");
    assert_eq!((e.line, e.kind), (1, ErrorKind::InvalidValue));
    let e = err("listen vpn.example.com");
    assert!(e.message.contains("host names"));
}

#[test]
fn missing_lists_use_pptpds_builtin_ones() {
    let p = parse("option /etc/ppp/options.pptpd\nlogwtmp\n");
    assert_eq!(p.value.localip.len(), 100);
    assert_eq!(p.value.localip.first(), Some(&ip("192.168.0.1")));
    assert_eq!(p.value.remoteip.first(), Some(&ip("192.168.1.1")));
    assert_eq!(p.value.remoteip.last(), Some(&ip("192.168.1.100")));
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(p
        .warnings
        .iter()
        .all(|w| w.line == 0 && w.message.contains("built-in list")));
}

#[test]
fn delegate_ignores_the_lists() {
    let p = parse("delegate\n");
    assert!(p.value.delegate);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let p = parse("delegate\nremoteip 10.0.0.1,10.0.0.1\n");
    assert_eq!(p.warnings.len(), 1);
    assert_eq!(p.warnings[0].line, 2);
    assert_eq!(p.value.max_clients(), 100);
}

#[test]
fn random_input_never_panics() {
    let vocab = [
        "localip ",
        "remoteip ",
        "connections ",
        "stimeout ",
        "listen ",
        "option ",
        "delegate",
        "1",
        "-",
        ".",
        ",",
        "255",
        "256",
        " ",
        "\t",
        "\n",
        "#",
        "\r",
        "0",
        "999999999999",
    ];
    let mut seed: u64 = 0xdead_beef_cafe_f00d;
    for _ in 0..3000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut s = String::new();
        for i in 0..(seed % 16) {
            s.push_str(vocab[(seed >> (i * 4)) as usize % vocab.len()]);
        }
        if let Ok(p) = PptpdConf::parse(&s, P) {
            let _ = p.value.max_clients();
            let _ = p.value.local_ip_for(3);
        }
    }
}
