//! Namespace test (root): `virtgate net list` of a running macvtap ("direct") network shows its
//! pool of parent devices and mode (libvirt's `net-info` has no bridge for it), in the table
//! and as an added `direct` object in `--json`; a bridge network's row keeps its shape.

mod common;

use std::time::{Duration, Instant};

use common::{add_veths, write_config, Proc, TempDir, BIN};
use virtgate_testnet::{require_root, Netns};

#[test]
fn net_list_of_a_running_macvtap_network_shows_its_devices() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("netlist");
    add_veths(&ns, &["up0", "up1"]);
    let dir = TempDir::new("netlist");
    let (conf, secrets) =
        write_config(&dir, "remoteip 192.168.0.100-200\n", "", "u\tpptpd\tp\t*\n");
    let direct = dir.write(
        "direct.xml",
        "<network>\n  <name>direct</name>\n  <forward mode='vepa'>\n    \
         <interface dev='up0'/>\n    <interface dev='up1'/>\n  </forward>\n</network>\n",
    );
    let iso = dir.write(
        "iso.xml",
        "<network>\n  <name>iso</name>\n  <bridge name='vgiso0' stp='off' delay='0'/>\n  \
         <ip address='10.93.0.1' prefix='24'/>\n</network>\n",
    );
    let socket = dir.path("virtgate.sock");
    let state = dir.path("state");
    let p = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let args = [
        "daemon".to_string(),
        "--pptpd-conf".into(),
        p(&conf),
        "--chap-secrets".into(),
        p(&secrets),
        "--socket".into(),
        p(&socket),
        "--state-dir".into(),
        p(&state),
        "--no-default-network".into(),
        "--no-firewall".into(),
        "--network-xml".into(),
        p(&direct),
        "--network-xml".into(),
        p(&iso),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut d = Proc::spawn(&ns, &args, "info");
    assert!(
        d.wait_count("virtgate PPTP server up", 1, Duration::from_secs(20)),
        "{}",
        d.log()
    );
    let net = |extra: &[&str]| {
        let o = ns
            .command(BIN)
            .arg("net")
            .arg("list")
            .args(extra)
            .arg("--socket")
            .arg(&socket)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    let table = net(&[]);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{table}"))
            .trim_end()
            .to_string()
    };
    assert!(
        row("direct").ends_with("  up0,up1 (macvtap vepa)"),
        "{table}"
    );
    assert!(row("direct").contains(" active "), "{table}");
    assert!(row("iso").ends_with("  vgiso0"), "{table}");

    let j: serde_json::Value = serde_json::from_str(net(&["--json"]).trim()).unwrap();
    let nets = j["networks"].as_array().unwrap();
    let by = |name: &str| nets.iter().find(|n| n["name"] == name).unwrap().clone();
    let direct = by("direct");
    assert_eq!(direct["direct"]["mode"], "vepa", "{j}");
    assert_eq!(
        direct["direct"]["devices"],
        serde_json::json!(["up0", "up1"]),
        "{j}"
    );
    assert!(direct["bridge"].is_null(), "{j}");
    let iso = by("iso");
    assert_eq!(iso["bridge"], "vgiso0", "{j}");
    assert!(iso.get("direct").is_none(), "{j}");

    d.signal("TERM");
    let end = Instant::now() + Duration::from_secs(15);
    assert!(
        d.wait(end - Instant::now()).is_some_and(|s| s.success()),
        "{}",
        d.log()
    );
}
