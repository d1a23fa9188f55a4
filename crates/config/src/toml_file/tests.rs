use super::*;
use crate::MemoryFiles;

fn parse(text: &str) -> Result<Parsed<ConfigFile>, ConfigError> {
    ConfigFile::parse_with(text, "/etc/virtgate/virtgate.toml", &mut MemoryFiles::new())
}

fn parse_files(text: &str, files: &mut MemoryFiles) -> Result<Parsed<ConfigFile>, ConfigError> {
    ConfigFile::parse_with(text, "/etc/virtgate/virtgate.toml", files)
}

#[test]
fn empty_file_is_the_built_in_server() {
    let c = parse("").unwrap().value;
    assert_eq!(c.pptpd, PptpdConf::builtin_default());
    assert_eq!(c.ppp, PppOptions::builtin_default());
    assert!(c.secrets.is_none());
    assert_eq!(c.daemon, DaemonSection::default());
    assert_eq!(c.networks, NetworksSection::default());
}

#[test]
fn inline_tables_equal_the_classic_files() {
    let toml = r#"
[daemon]
tun = "vpn0"
uplink = "eth1"
firewall = false
socket = "/run/vg.sock"
metrics = "127.0.0.1:9477"
ip_up = "/etc/ppp/ip-up"
log = "debug"

[pptp]
localip = "10.0.0.1"
remoteip = ["10.0.0.100-110", "10.0.0.120"]
connections = 20
noipparam = true
logwtmp = false

[ppp]
name = "gw"
require-mschap-v2 = true
require-mppe-128 = true
ms-dns = ["10.0.0.1", "10.0.0.2"]
idle = 600
proxyarp = false

[[users]]
name = "alice"
secret = 'pa"ss wo\rd'
ip = "10.0.0.150"

[[users]]
name = "bob"
server = "gw"
secret = "hunter2"

[networks]
xml = ["lab.xml", "/srv/other.xml"]
state_dir = "/var/lib/vg"
default = false
"#;
    let c = parse(toml).unwrap().value;
    let conf = PptpdConf::parse(
        "localip 10.0.0.1\nremoteip 10.0.0.100-110,10.0.0.120\nconnections 20\nnoipparam\n",
        "x",
    )
    .unwrap()
    .value;
    assert_eq!(c.pptpd.localip, conf.localip);
    assert_eq!(c.pptpd.remoteip, conf.remoteip);
    assert_eq!(c.pptpd.remoteip.len(), 12);
    assert_eq!(c.pptpd.max_clients(), conf.max_clients());
    assert!(c.pptpd.noipparam);
    assert!(!c.pptpd.logwtmp);
    let ppp = PppOptions::parse(
        "name gw\nrequire-mschap-v2\nrequire-mppe-128\nms-dns 10.0.0.1\nms-dns 10.0.0.2\nidle 600\n",
        "x",
    )
    .unwrap()
    .value;
    assert_eq!(c.ppp, ppp);
    let s = c.secrets.unwrap();
    assert_eq!(s.path(), Path::new("/etc/virtgate/virtgate.toml"));
    let alice = s.lookup("alice", "gw").unwrap();
    assert_eq!(alice.secret, "pa\"ss wo\\rd");
    assert_eq!(alice.addrs.pinned(), Some("10.0.0.150".parse().unwrap()));
    assert_eq!(s.lookup("bob", "gw").unwrap().secret, "hunter2");
    assert!(s.lookup("bob", "other").is_none());
    assert_eq!(c.daemon.tun.as_deref(), Some("vpn0"));
    assert_eq!(c.daemon.uplink.as_deref(), Some("eth1"));
    assert_eq!(c.daemon.firewall, Some(false));
    assert_eq!(c.daemon.socket, Some(PathBuf::from("/run/vg.sock")));
    assert_eq!(c.daemon.metrics, Some("127.0.0.1:9477".parse().unwrap()));
    assert_eq!(c.daemon.log.as_deref(), Some("debug"));
    assert_eq!(
        c.networks.xml,
        vec![
            PathBuf::from("/etc/virtgate/lab.xml"),
            PathBuf::from("/srv/other.xml")
        ]
    );
    assert_eq!(c.networks.default, Some(false));
}

#[test]
fn tables_can_name_the_classic_files() {
    let mut files = MemoryFiles::new();
    files.insert(
        "/etc/pptpd.conf",
        "option /etc/ppp/options.pptpd\nlocalip 192.168.9.1\nremoteip 192.168.9.10-20\n",
    );
    files.insert(
        "/etc/ppp/options.pptpd",
        "name srv\nrequire-mschap-v2\nms-dns 1.1.1.1\n",
    );
    files.insert("/etc/ppp/chap-secrets", "carol srv s3cret *\n");
    let toml = "[pptp]\npptpd_conf = \"/etc/pptpd.conf\"\n[secrets]\nchap_secrets = \"/etc/ppp/chap-secrets\"\n";
    let c = parse_files(toml, &mut files).unwrap().value;
    assert_eq!(c.pptpd.remoteip.len(), 11);
    assert_eq!(c.ppp.name.as_deref(), Some("srv"));
    assert_eq!(c.ppp_source, PathBuf::from("/etc/ppp/options.pptpd"));
    let s = c.secrets.unwrap();
    assert_eq!(s.path(), Path::new("/etc/ppp/chap-secrets"));
    assert_eq!(s.lookup("carol", "srv").unwrap().secret, "s3cret");
}

#[test]
fn ppp_file_option_includes_a_file() {
    let mut files = MemoryFiles::new();
    files.insert("/etc/ppp/common", "require-mschap-v2\nrequire-mppe-128\n");
    let c = parse_files(
        "[ppp]\nfile = \"/etc/ppp/common\"\nms-dns = \"9.9.9.9\"\n",
        &mut files,
    )
    .unwrap()
    .value;
    assert!(c.ppp.mppe.enabled());
    assert_eq!(
        c.ppp.ms_dns.map(|p| p.primary),
        Some("9.9.9.9".parse().unwrap())
    );
}

fn err(text: &str) -> ConfigError {
    parse(text).unwrap_err()
}

#[test]
fn errors_point_at_the_toml_line() {
    // An unknown pppd option: the pppd parser's error, at the TOML line of the key.
    let e = err("[ppp]\nrequire-mschap-v2 = true\n\nfrobnicate = true\n");
    assert_eq!(e.line, 4, "{e}");
    assert_eq!(e.path, PathBuf::from("/etc/virtgate/virtgate.toml"));
    assert!(
        e.to_string().starts_with("/etc/virtgate/virtgate.toml:4: "),
        "{e}"
    );
    assert!(e.to_string().contains("frobnicate"), "{e}");

    // A bad pptpd.conf value.
    let e = err("# comment\n[pptp]\nlocalip = \"10.0.0.1\"\nremoteip = \"not-an-address\"\n");
    assert_eq!(e.line, 4, "{e}");

    // pppd refuses what virtgate refuses, by the same rule.
    let e = err("[ppp]\nrequire-mppe-128 = true\nrequire-pap = true\nrefuse-mschap-v2 = true\nrefuse-mschap = true\n");
    assert_eq!((e.kind, e.line), (ErrorKind::Conflict, 3), "{e}");

    // TOML syntax.
    let e = err("[daemon]\ntun = \"a\"\nsocket = \n");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.line, 3, "{e}");

    // Unknown keys and tables.
    let e = err("[daemon]\ntun = \"a\"\nsokcet = \"/x\"\n");
    assert_eq!((e.kind, e.line), (ErrorKind::Unknown, 3), "{e}");
    let e = err("\n[pptpd]\nlocalip = \"1.2.3.4\"\n");
    assert_eq!((e.kind, e.line), (ErrorKind::Unknown, 2), "{e}");

    // Types.
    let e = err("[daemon]\nfirewall = \"no\"\n");
    assert_eq!((e.kind, e.line), (ErrorKind::InvalidValue, 2), "{e}");
    let e = err("[daemon]\nmetrics = \"localhost\"\n");
    assert_eq!(e.line, 2, "{e}");

    // A user without a secret, a secret that would name a file.
    let e = err("[[users]]\nname = \"a\"\n");
    assert_eq!(e.line, 1, "{e}");
    let e = err("[[users]]\nname = \"a\"\nsecret = \"@/etc/shadow\"\n");
    assert_eq!(e.line, 3, "{e}");

    // Both a file and inline settings.
    let e = err("[pptp]\npptpd_conf = \"/etc/pptpd.conf\"\nlocalip = \"1.2.3.4\"\n");
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
}

#[test]
fn a_chap_secrets_error_points_at_the_user_table() {
    let e = err("[[users]]\nname = \"a\"\nsecret = \"x\"\n\n[[users]]\nname = \"b\"\nsecret = \"y\"\nip = \"300.1.1.1\"\n");
    assert_eq!(e.line, 5, "{e}");
}

#[test]
fn options_keep_file_order() {
    // pppd: the later of two contradicting options wins; the TOML's order must be kept.
    let c = parse("[ppp]\nnomppe = true\nrequire-mppe-128 = true\n")
        .unwrap()
        .value;
    let d = PppOptions::parse("nomppe\nrequire-mppe-128\n", "x")
        .unwrap()
        .value;
    assert_eq!(c.ppp.mppe, d.mppe);
}

#[test]
fn garbage_never_panics() {
    for text in [
        "[ppp]\n\"\" = 1\n",
        "[ppp]\nx = 1.5\n",
        "[ppp]\nx = [[1]]\n",
        "users = 3\n",
        "users = [1]\n",
        "[pptp]\nlocalip = 0x10\n",
        "[ppp]\nname = \"a\\nb\"\n",
        "[[users]]\nname = \"a\"\nsecret = \"b\"\nip = [1]\n",
        "[daemon]\nlog = 1\n",
        "[networks]\nxml = [\"\"]\n",
        "\u{0}",
    ] {
        assert!(parse(text).is_err(), "{text:?} accepted");
    }
}

#[test]
fn limits_table() {
    let c = parse(
        "[limits]\nlockout_user = 3\nlockout_source = \"off\"\nlockout_window = 60\n\
         lockout_time = false\nconn_rate = 0\nconn_burst = 10\nmax_sessions = 10_000\n\
         max_sessions_per_user = 1\nsingle_session = \"replace\"\n[daemon]\nkeep_capabilities = true\n",
    )
    .unwrap()
    .value;
    let l = c.limits;
    assert_eq!(l.lockout_user, Some(3));
    assert_eq!(l.lockout_source, Some(0));
    assert_eq!(l.lockout_window, Some(60));
    assert_eq!(l.lockout_time, Some(0));
    assert_eq!(l.conn_rate, Some(0));
    assert_eq!(l.conn_burst, Some(10));
    assert_eq!(l.max_sessions, Some(10_000));
    assert_eq!(l.max_sessions_per_user, Some(1));
    assert_eq!(l.single_session.as_deref(), Some("replace"));
    assert_eq!(c.daemon.keep_capabilities, Some(true));
    let e = err("[limits]\nsingle_session = \"sometimes\"\n");
    assert_eq!((e.kind, e.line), (ErrorKind::InvalidValue, 2), "{e}");
    let e = err("[limits]\n\nmax_sessions = -1\n");
    assert_eq!((e.kind, e.line), (ErrorKind::InvalidValue, 3), "{e}");
    let e = err("[limits]\nmax_sessions = 99999999999\n");
    assert_eq!(e.line, 2, "{e}");
    let e = err("[limits]\nlockout = 3\n");
    assert_eq!((e.kind, e.line), (ErrorKind::Unknown, 2), "{e}");
}
