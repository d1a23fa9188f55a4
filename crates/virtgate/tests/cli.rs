//! The command line without root: `firewall show`, configuration errors, built-in defaults.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_virtgate");

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("virtgate-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn firewall_show_prints_the_ruleset_for_the_configured_pool() {
    let d = Dir::new("show");
    let opts = d.write(
        "options",
        "name pptpd\nrequire-mschap-v2\nrequire-mppe-128\nmtu 1400\n",
    );
    let conf = d.write(
        "pptpd.conf",
        &format!("option {opts}\nlocalip 10.8.0.1\nremoteip 10.8.0.10-20,10.8.0.40\n"),
    );
    let secrets = d.write("chap-secrets", "u pptpd p *\n");
    let (code, out, err) = run(&[
        "firewall",
        "show",
        "--pptpd-conf",
        &conf,
        "--chap-secrets",
        &secrets,
        "--uplink",
        "wan7",
        "--tun",
        "vgt9",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("table inet virtgate"), "{out}");
    assert!(out.contains("10.8.0.10-10.8.0.20"), "{out}");
    assert!(out.contains("10.8.0.40"), "{out}");
    assert!(out.contains("oifname \"wan7\""), "{out}");
    assert!(out.contains("iifname \"vgt9\""), "{out}");
    // mtu 1400 in the options: the clamp is 1400 - 40.
    assert!(out.contains("maxseg size set 1360"), "{out}");
}

#[test]
fn a_config_error_is_one_line_with_file_and_line() {
    let d = Dir::new("err");
    let conf = d.write(
        "pptpd.conf",
        "# comment\nlocalip 192.168.0.1\nremoteip 192.168.0.100-xyz\n",
    );
    let secrets = d.write("chap-secrets", "");
    let (code, out, err) = run(&[
        "daemon",
        "--pptpd-conf",
        &conf,
        "--chap-secrets",
        &secrets,
        "--no-firewall",
    ]);
    assert_ne!(code, 0);
    assert!(out.is_empty());
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with(&format!("{conf}:3: ")), "{err}");
}

#[test]
fn an_unknown_pppd_option_names_the_options_file() {
    let d = Dir::new("opt");
    let opts = d.write("options.pptpd", "name pptpd\nfrobnicate-harder\n");
    let conf = d.write("pptpd.conf", &format!("option {opts}\n"));
    let secrets = d.write("chap-secrets", "");
    let (code, _, err) = run(&[
        "firewall",
        "show",
        "--pptpd-conf",
        &conf,
        "--chap-secrets",
        &secrets,
        "--uplink",
        "eth0",
    ]);
    assert_ne!(code, 0);
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with(&format!("{opts}:2: ")), "{err}");
}

#[test]
fn a_missing_explicit_pptpd_conf_is_an_error() {
    let (code, _, err) = run(&[
        "firewall",
        "show",
        "--pptpd-conf",
        "/nonexistent/pptpd.conf",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/pptpd.conf"), "{err}");
}

#[test]
fn without_pptpd_conf_the_seed_defaults_apply() {
    if std::path::Path::new("/etc/pptpd.conf").exists() {
        eprintln!("skipping: this machine has an /etc/pptpd.conf");
        return;
    }
    let d = Dir::new("def");
    let secrets = d.write("chap-secrets", "");
    let (code, out, err) = run(&[
        "firewall",
        "show",
        "--chap-secrets",
        &secrets,
        "--uplink",
        "eth0",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("192.168.0.100-192.168.0.200"), "{out}");
    assert!(out.contains("maxseg size set 1356"), "{out}");
}

#[test]
fn a_missing_default_chap_secrets_is_a_loud_warning_not_an_error() {
    if std::path::Path::new("/etc/ppp/chap-secrets").exists() {
        eprintln!("skipping: this machine has an /etc/ppp/chap-secrets");
        return;
    }
    let d = Dir::new("nosec");
    let conf = d.write(
        "pptpd.conf",
        "localip 192.168.0.1\nremoteip 192.168.0.100-200\n",
    );
    let (code, _, err) = run(&[
        "firewall",
        "show",
        "--pptpd-conf",
        &conf,
        "--uplink",
        "eth0",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("NOBODY CAN LOG IN"), "{err}");
}

#[test]
fn config_check_validates_without_starting() {
    let d = Dir::new("check");
    let opts = d.write("options", "name pptpd\nrequire-mschap-v2\n");
    let conf = d.write(
        "pptpd.conf",
        &format!("option {opts}\nlocalip 10.1.0.1\nremoteip 10.1.0.10-19\n"),
    );
    let secrets = d.write("chap-secrets", "ann pptpd pw *\nbob pptpd pw2 *\n");
    let (code, out, err) = run(&[
        "config",
        "check",
        "--pptpd-conf",
        &conf,
        "--chap-secrets",
        &secrets,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("configuration OK: 2 users"), "{out}");
    assert!(out.contains("10 pool addresses"), "{out}");
    // A broken secrets file: exit 2, file:line.
    let bad = d.write("bad-secrets", "ann pptpd pw *\n\"unterminated\n");
    let (code, _, err) = run(&[
        "config",
        "check",
        "--pptpd-conf",
        &conf,
        "--chap-secrets",
        &bad,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with(&format!("{bad}:2: ")), "{err}");
    // defaultroute is refused naming the options file.
    d.write("options", "name pptpd\nrequire-mschap-v2\ndefaultroute\n");
    let (code, _, err) = run(&[
        "config",
        "check",
        "--pptpd-conf",
        &conf,
        "--chap-secrets",
        &secrets,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{opts}: option 'defaultroute' refused")),
        "{err}"
    );
}

#[test]
fn control_commands_without_a_daemon_say_so() {
    let d = Dir::new("nosock");
    let sock = d.0.join("none.sock");
    let (code, out, err) = run(&["status", "--socket", sock.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("is `virtgate daemon` running"), "{err}");
}

#[test]
fn one_toml_file_holds_the_whole_configuration() {
    let d = Dir::new("toml");
    let net = d.write(
        "lab.xml",
        "<network><name>lab</name><bridge name='vglab0'/><ip address='10.9.0.1' \
         netmask='255.255.255.0'/></network>\n",
    );
    let toml = d.write(
        "virtgate.toml",
        &format!(
            "[daemon]\nuplink = \"eth7\"\n\n[pptp]\nlocalip = \"10.1.0.1\"\n\
             remoteip = \"10.1.0.10-19\"\n\n[ppp]\nname = \"gw\"\nrequire-mschap-v2 = true\n\
             require-mppe-128 = true\nms-dns = \"10.1.0.1\"\n\n[[users]]\nname = \"ann\"\n\
             secret = \"pw\"\n\n[[users]]\nname = \"bob\"\nsecret = \"pw2\"\nip = \"10.1.0.15\"\n\n\
             [networks]\nxml = [\"{net}\"]\ndefault = false\n"
        ),
    );
    let (code, out, err) = run(&["config", "check", "--config", &toml]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("configuration OK: 2 users"), "{out}");
    assert!(out.contains(&format!("in {toml}")), "{out}");
    assert!(
        out.contains("10 pool addresses, server address 10.1.0.1"),
        "{out}"
    );
    assert!(
        out.contains("networks: 1 libvirt XML file(s) OK\n"),
        "{out}"
    );

    // firewall show uses the file's pool and uplink.
    let (code, out, err) = run(&["firewall", "show", "--config", &toml]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("10.1.0.10-10.1.0.19"), "{out}");
    assert!(out.contains("\"eth7\""), "{out}");
    assert!(out.contains("vglab0"), "{out}");

    // An unknown pppd option in [ppp]: exit 2, the TOML's file:line.
    let bad = d.write(
        "bad.toml",
        "[pptp]\nlocalip = \"10.1.0.1\"\n\n[ppp]\nrequire-mschap-v2 = true\nrequire-mppe-129 = true\n",
    );
    let (code, _, err) = run(&["config", "check", "--config", &bad]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with(&format!("{bad}:6: ")), "{err}");
    assert!(err.contains("require-mppe-129"), "{err}");

    // A broken network XML named by the file is refused too.
    let badnet = d.write(
        "badnet.xml",
        "<network><name>x</name>\n<bogus/></network>\n",
    );
    let t2 = d.write(
        "t2.toml",
        &format!("[networks]\nxml = \"{badnet}\"\n[[users]]\nname = \"a\"\nsecret = \"b\"\n"),
    );
    let (code, _, err) = run(&["config", "check", "--config", &t2]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains(&badnet), "{err}");
}

#[test]
fn the_sample_toml_in_contrib_is_valid() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contrib/virtgate.toml");
    let (code, out, err) = run(&["config", "check", "--config", sample]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("configuration OK: 2 users"), "{out}");
    assert!(out.contains("101 pool addresses"), "{out}");
}
