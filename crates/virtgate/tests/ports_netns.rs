//! Guests' ports from the command line (root, namespaces): `virtgate port add|del|list` and
//! `virtgate qemu-ifup|qemu-ifdown` run inside a throwaway namespace with `ip netns exec`, the
//! network definitions in a scratch state directory, no daemon. A network "running" on a bridge
//! of virtgate's is that bridge carrying virtgate's mark (what the daemon leaves on it). Each
//! test builds its own namespace and removes it (testnet's guards).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use virtgate_testnet::{require_root, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_virtgate");
const NOBODY: u32 = 65534;

/// A scratch state directory (and device directory), removed on drop.
struct State(PathBuf);

impl State {
    fn new(tag: &str) -> State {
        let p = std::env::temp_dir().join(format!("vgt-ports-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("networks")).unwrap();
        std::fs::create_dir_all(p.join("dev")).unwrap();
        State(p)
    }

    /// Stores a definition as `virtgate net define` would (the store reads plain libvirt XML).
    fn define(&self, name: &str, body: &str) {
        let xml = format!("<network>\n  <name>{name}</name>\n{body}</network>\n");
        std::fs::write(self.0.join("networks").join(format!("{name}.xml")), xml).unwrap();
    }

    fn dir(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn dev(&self) -> String {
        self.0.join("dev").display().to_string()
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary inside `ns` with `args` and `env`.
fn vg(ns: &Netns, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = ns.command(BIN);
    c.args(args).env_remove("RUST_LOG");
    for k in [
        "VIRTGATE_NETWORK",
        "VIRTGATE_MAC",
        "VIRTGATE_VM_UUID",
        "VIRTGATE_STATE_DIR",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run virtgate")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs and insists on success; stdout.
fn ok(ns: &Netns, args: &[&str], env: &[(&str, &str)]) -> String {
    let o = vg(ns, args, env);
    let (out, err) = text(&o);
    assert!(o.status.success(), "virtgate {args:?} failed:\n{out}{err}");
    out
}

/// Runs and insists on failure; stderr.
fn refused(ns: &Netns, args: &[&str], env: &[(&str, &str)]) -> String {
    let o = vg(ns, args, env);
    let (out, err) = text(&o);
    assert!(!o.status.success(), "virtgate {args:?} succeeded:\n{out}");
    err
}

fn sysfs(ns: &Netns, path: &str) -> String {
    ns.sh(&format!("cat /sys/class/net/{path} 2>/dev/null"))
        .stdout
        .iter()
        .map(|&b| b as char)
        .collect::<String>()
        .trim()
        .to_string()
}

fn master(ns: &Netns, ifname: &str) -> Option<String> {
    let out = ns.sh(&format!("readlink /sys/class/net/{ifname}/master"));
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    s.rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

fn exists(ns: &Netns, ifname: &str) -> bool {
    ns.sh(&format!("test -e /sys/class/net/{ifname}"))
        .status
        .success()
}

fn alias(ns: &Netns, ifname: &str) -> String {
    sysfs(ns, &format!("{ifname}/ifalias"))
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// A Linux bridge marked as virtgate's bridge of `network` (what a running network has).
fn running_bridge(ns: &Netns, bridge: &str, network: &str) {
    ns.ip(&["link", "add", bridge, "type", "bridge"]);
    ns.ip(&[
        "link",
        "set",
        bridge,
        "alias",
        &format!("virtgate:bridge:{network}"),
    ]);
    ns.ip(&["link", "set", bridge, "mtu", "1400", "up"]);
}

#[test]
fn tap_port_on_a_nat_network_attached_owned_listed_and_deleted() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("ptap");
    let st = State::new("tap");
    st.define(
        "natp",
        "  <forward mode='nat'/>\n  <bridge name='virbr-pt'/>\n  \
         <ip address='192.168.151.1' netmask='255.255.255.0'/>\n",
    );
    let sd = ["--state-dir", st.dir()];
    let add = |extra: &[&'static str]| {
        let mut a = vec!["port", "add", "natp"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&sd);
        a
    };

    // Not running (no bridge of virtgate's for it): refused, nothing made.
    let err = refused(&ns, &add(&[]), &[]);
    assert!(err.contains("network 'natp' is not running"), "{err}");
    // A bridge of that name that virtgate did not make is not the network running either.
    ns.ip(&["link", "add", "virbr-pt", "type", "bridge"]);
    let err = refused(&ns, &add(&[]), &[]);
    assert!(err.contains("not running"), "{err}");
    ns.ip(&["link", "del", "virbr-pt"]);
    assert!(!exists(&ns, "vnet0"));
    // Unknown network: named, with the state directory.
    let err = refused(
        &ns,
        &["port", "add", "nosuch", "--state-dir", st.dir()],
        &[],
    );
    assert!(
        err.contains("no network named 'nosuch'") && err.contains(st.dir()),
        "{err}"
    );

    running_bridge(&ns, "virbr-pt", "natp");
    let out = ok(
        &ns,
        &add(&["--owner", "nobody", "--mac", "52:54:00:12:34:56"]),
        &[],
    );
    let name = out.lines().last().unwrap().to_string();
    assert_eq!(name, "vnet0", "{out}");
    assert!(
        out.contains("ifname=vnet0,script=no,downscript=no"),
        "{out}"
    );
    assert_eq!(master(&ns, "vnet0").as_deref(), Some("virbr-pt"));
    assert_eq!(sysfs(&ns, "vnet0/owner"), NOBODY.to_string());
    // Host side: libvirt's fe: form of the guest's MAC; the bridge's MTU.
    assert_eq!(sysfs(&ns, "vnet0/address"), "fe:54:00:12:34:56");
    assert_eq!(sysfs(&ns, "vnet0/mtu"), "1400");
    assert_eq!(alias(&ns, "vnet0"), "virtgate:tap:natp");
    assert!(sysfs(&ns, "vnet0/flags").ends_with('3'), "not up"); // IFF_UP|IFF_BROADCAST

    // --json: one object; a chosen name; a random 52:54:00 MAC.
    let j = json(&ok(
        &ns,
        &add(&["--json", "--name", "guest2", "--owner", "65534"]),
        &[],
    ));
    assert_eq!(j["interface"], "guest2");
    assert_eq!(j["network"], "natp");
    assert_eq!(j["kind"], "tap");
    assert_eq!(j["attached_to"], "virbr-pt");
    assert_eq!(j["device"], "/dev/net/tun");
    assert_eq!(j["owner"], NOBODY);
    let mac = j["mac"].as_str().unwrap().to_string();
    assert!(mac.starts_with("52:54:00:"), "{mac}");
    assert_eq!(
        j["qemu_args"],
        serde_json::json!([
            "-netdev",
            "tap,id=n0,ifname=guest2,script=no,downscript=no",
            "-device",
            format!("virtio-net-pci,netdev=n0,mac={mac}")
        ])
    );
    let xml = j["libvirt_xml"].as_str().unwrap();
    assert!(
        xml.contains("<interface type='ethernet'>")
            && xml.contains(&format!("<mac address='{mac}'/>"))
            && xml.contains("<target dev='guest2' managed='no'/>"),
        "{xml}"
    );
    assert_eq!(master(&ns, "guest2").as_deref(), Some("virbr-pt"));
    // A name that is taken: refused.
    let err = refused(&ns, &add(&["--name", "guest2"]), &[]);
    assert!(err.contains("guest2"), "{err}");
    let err = refused(&ns, &add(&["--mac", "01:00:5e:00:00:01"]), &[]);
    assert!(err.contains("unicast"), "{err}");
    let err = refused(&ns, &add(&["--owner", "no-such-user-here"]), &[]);
    assert!(err.contains("no-such-user-here"), "{err}");

    // port list: both, with network, MAC, mode, owner.
    let listed = json(&ok(&ns, &["port", "list", "--json"], &[]));
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    assert_eq!(rows[0]["interface"], "vnet0");
    assert_eq!(rows[0]["network"], "natp");
    assert_eq!(rows[0]["mac"], "fe:54:00:12:34:56");
    assert_eq!(rows[0]["mode"], "tap");
    assert_eq!(rows[0]["attached_to"], "virbr-pt");
    assert_eq!(rows[0]["owner"], NOBODY);
    assert_eq!(rows[0]["owner_name"], "nobody");
    assert_eq!(rows[1]["interface"], "guest2");
    let table = ok(&ns, &["port", "list", "natp"], &[]);
    let line = table.lines().find(|l| l.starts_with("vnet0")).unwrap();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        [
            "vnet0",
            "natp",
            "fe:54:00:12:34:56",
            "tap",
            "virbr-pt",
            "nobody"
        ]
    );
    assert_eq!(ok(&ns, &["port", "list", "other"], &[]).lines().count(), 1);

    // port del: gone; interfaces virtgate did not make are refused and kept.
    assert!(ok(&ns, &["port", "del", "vnet0"], &[]).contains("vnet0 deleted"));
    assert!(!exists(&ns, "vnet0"));
    let err = refused(&ns, &["port", "del", "virbr-pt"], &[]);
    assert!(err.contains("bridge"), "{err}");
    ns.ip(&["tuntap", "add", "dev", "foreign0", "mode", "tap"]);
    let err = refused(&ns, &["port", "del", "foreign0"], &[]);
    assert!(err.contains("not created by virtgate"), "{err}");
    assert!(exists(&ns, "foreign0") && exists(&ns, "virbr-pt"));
    ok(&ns, &["port", "del", "guest2"], &[]);
    assert!(!exists(&ns, "guest2"));
    let rows = json(&ok(&ns, &["port", "list", "--json"], &[]));
    assert_eq!(rows, serde_json::json!([]));
}

#[test]
fn tap_port_on_a_host_bridge() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("phost");
    let st = State::new("host");
    st.define(
        "lan",
        "  <forward mode='bridge'/>\n  <bridge name='br-lan'/>\n",
    );
    let args = [
        "port",
        "add",
        "lan",
        "--owner",
        "nobody",
        "--state-dir",
        st.dir(),
    ];
    let err = refused(&ns, &args, &[]);
    assert!(err.contains("host bridge 'br-lan' does not exist"), "{err}");
    ns.ip(&[
        "link", "add", "br-lan", "type", "veth", "peer", "name", "br-lanx",
    ]);
    let err = refused(&ns, &args, &[]);
    assert!(err.contains("not a Linux bridge"), "{err}");
    ns.ip(&["link", "del", "br-lan"]);
    // The host's own bridge (no mark of virtgate's): guests attach to it as it is.
    ns.ip(&["link", "add", "br-lan", "type", "bridge"]);
    ns.ip(&["link", "set", "br-lan", "up"]);
    let name = ok(&ns, &args, &[]).lines().last().unwrap().to_string();
    assert_eq!(master(&ns, &name).as_deref(), Some("br-lan"));
    assert_eq!(alias(&ns, &name), "virtgate:tap:lan");
    assert_eq!(
        alias(&ns, "br-lan"),
        "",
        "the host's bridge is left unmarked"
    );
    ok(&ns, &["port", "del", &name], &[]);
    assert!(!exists(&ns, &name) && exists(&ns, "br-lan"));
}

fn char_dev_owner(path: &Path) -> Option<u32> {
    let md = std::fs::symlink_metadata(path).ok()?;
    md.file_type().is_char_device().then(|| md.uid())
}

#[test]
fn macvtap_ports_on_a_pool_and_passthrough_is_one_guest_per_parent() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("pmvt");
    let st = State::new("mvt");
    for p in ["up0", "up1"] {
        ns.ip(&[
            "link",
            "add",
            p,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{p}x"),
        ]);
        ns.ip(&["link", "set", p, "up"]);
    }
    st.define(
        "direct",
        "  <forward mode='bridge'>\n    <interface dev='up0'/>\n  </forward>\n",
    );
    st.define("pt", "  <forward mode='passthrough' dev='up1'/>\n");
    let dev = st.dev();
    let add = |net: &'static str, extra: &[&'static str]| {
        let mut a: Vec<String> = ["port", "add", net, "--json", "--state-dir", st.dir()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(["--dev-dir".to_string(), dev.clone()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        json(&ok(&ns, &a, &[]))
    };

    let a = run(add(
        "direct",
        &["--owner", "nobody", "--mac", "52:54:00:0c:00:01"],
    ));
    assert_eq!(a["kind"], "macvtap");
    assert_eq!(a["mode"], "macvtap-bridge");
    assert_eq!(a["attached_to"], "up0");
    let name_a = a["interface"].as_str().unwrap().to_string();
    assert!(name_a.starts_with("macvtap"), "{a}");
    let ifindex = sysfs(&ns, &format!("{name_a}/ifindex"));
    let device = format!("{dev}/tap{ifindex}");
    assert_eq!(a["device"], device.as_str());
    assert_eq!(char_dev_owner(Path::new(&device)), Some(NOBODY));
    // The macvtap is the guest's NIC: it carries the guest's MAC; QEMU gets it on fd 3.
    assert_eq!(
        sysfs(&ns, &format!("{name_a}/address")),
        "52:54:00:0c:00:01"
    );
    assert_eq!(a["qemu_args"][1], "tap,id=n0,fd=3");
    assert!(
        a["qemu_command_line"]
            .as_str()
            .unwrap()
            .ends_with(&format!(" 3<>{device}")),
        "{a}"
    );
    assert!(a["libvirt_xml"]
        .as_str()
        .unwrap()
        .contains(&format!("<target dev='{name_a}' managed='no'/>")));
    assert_eq!(alias(&ns, &name_a), "virtgate:macvtap:direct");
    // A second guest in bridge mode shares the parent.
    let b = run(add("direct", &[]));
    assert_eq!(b["attached_to"], "up0");
    let name_b = b["interface"].as_str().unwrap().to_string();

    // Passthrough: the first takes up1, a second is refused naming the holder.
    let p = run(add("pt", &[]));
    assert_eq!(p["mode"], "macvtap-passthrough");
    assert_eq!(p["attached_to"], "up1");
    let holder = p["interface"].as_str().unwrap().to_string();
    let args = add("pt", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = refused(&ns, &args, &[]);
    assert!(
        err.contains("up1") && err.contains(&holder) && err.contains("passthrough"),
        "{err}"
    );

    // A tap of QEMU's has no place on a macvtap network.
    ns.ip(&["tuntap", "add", "dev", "qt0", "mode", "tap"]);
    let err = refused(
        &ns,
        &[
            "qemu-ifup",
            "qt0",
            "--network",
            "direct",
            "--state-dir",
            st.dir(),
        ],
        &[],
    );
    assert!(err.contains("macvtap"), "{err}");

    let listed = json(&ok(
        &ns,
        &["port", "list", "direct", "--json", "--dev-dir", &dev],
        &[],
    ));
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["interface"].as_str().unwrap())
        .collect();
    assert_eq!(names, [name_a.as_str(), name_b.as_str()]);
    assert_eq!(listed[0]["mac"], "52:54:00:0c:00:01");
    assert_eq!(listed[0]["owner_name"], "nobody");

    for n in [&name_a, &name_b, &holder] {
        ok(&ns, &["port", "del", n, "--dev-dir", &dev], &[]);
        assert!(!exists(&ns, n));
    }
    assert!(
        !Path::new(&device).exists(),
        "device node removed with its port"
    );
    // up1 is free again: passthrough works.
    let p = run(add("pt", &[]));
    ok(
        &ns,
        &[
            "port",
            "del",
            p["interface"].as_str().unwrap(),
            "--dev-dir",
            &dev,
        ],
        &[],
    );
}

#[test]
fn qemu_ifup_attaches_the_tap_qemu_made_and_ifdown_detaches_it() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("pifup");
    let st = State::new("ifup");
    st.define("iso", "  <bridge name='virbr-q'/>\n");
    running_bridge(&ns, "virbr-q", "iso");
    // What QEMU does with script=: the tap exists (not persistent in QEMU's case), down.
    ns.ip(&["tuntap", "add", "dev", "qtap0", "mode", "tap"]);
    let env = [("VIRTGATE_STATE_DIR", st.dir())];

    // No network named anywhere: refused, saying how to name it.
    let err = refused(&ns, &["qemu-ifup", "qtap0"], &env);
    assert!(err.contains("VIRTGATE_NETWORK"), "{err}");
    assert_eq!(master(&ns, "qtap0"), None);

    ok(
        &ns,
        &["qemu-ifup", "qtap0"],
        &[
            ("VIRTGATE_NETWORK", "iso"),
            ("VIRTGATE_STATE_DIR", st.dir()),
        ],
    );
    assert_eq!(master(&ns, "qtap0").as_deref(), Some("virbr-q"));
    assert_eq!(sysfs(&ns, "qtap0/mtu"), "1400");
    assert_eq!(alias(&ns, "qtap0"), "virtgate:tap:iso");
    assert!(sysfs(&ns, "qtap0/flags").ends_with('3'), "not up");
    let listed = json(&ok(&ns, &["port", "list", "iso", "--json"], &[]));
    assert_eq!(listed[0]["interface"], "qtap0");

    // The per-network wrapper: a link named virtgate-ifup@iso, QEMU's script= as it is.
    ns.ip(&["tuntap", "add", "dev", "qtap1", "mode", "tap"]);
    let up = st.0.join("virtgate-ifup@iso");
    let down = st.0.join("virtgate-ifdown@iso");
    std::os::unix::fs::symlink(BIN, &up).unwrap();
    std::os::unix::fs::symlink(BIN, &down).unwrap();
    let o = ns
        .command(up.to_str().unwrap())
        .arg("qtap1")
        .env("VIRTGATE_STATE_DIR", st.dir())
        .env("VIRTGATE_MAC", "52:54:00:0f:00:01")
        .env_remove("VIRTGATE_NETWORK")
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(master(&ns, "qtap1").as_deref(), Some("virbr-q"));
    // With the guest's MAC known, the tap gets libvirt's host side of it.
    assert_eq!(sysfs(&ns, "qtap1/address"), "fe:54:00:0f:00:01");

    // ifdown: out of the bridge and down; a tap already gone is fine.
    ok(&ns, &["qemu-ifdown", "qtap0"], &[]);
    assert_eq!(master(&ns, "qtap0"), None);
    assert!(!sysfs(&ns, "qtap0/flags").ends_with('3'));
    let o = ns
        .command(down.to_str().unwrap())
        .arg("qtap1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(master(&ns, "qtap1"), None);
    ns.ip(&["link", "del", "qtap1"]);
    ok(&ns, &["qemu-ifdown", "qtap1"], &[]);
    // Something not made for a network by us: refused, untouched.
    ns.ip(&["tuntap", "add", "dev", "other0", "mode", "tap"]);
    ns.ip(&["link", "set", "other0", "master", "virbr-q"]);
    let err = refused(&ns, &["qemu-ifdown", "other0"], &[]);
    assert!(err.contains("not created by virtgate"), "{err}");
    assert_eq!(master(&ns, "other0").as_deref(), Some("virbr-q"));
    // Not a tap: refused.
    ns.ip(&[
        "link", "add", "dum0", "type", "veth", "peer", "name", "dum0x",
    ]);
    let err = refused(
        &ns,
        &[
            "qemu-ifup",
            "dum0",
            "--network",
            "iso",
            "--state-dir",
            st.dir(),
        ],
        &[],
    );
    assert!(err.contains("not the tap QEMU created"), "{err}");
}

// ---------------------------------------------------------------- Open vSwitch

fn program(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn ovs_installed() -> bool {
    [
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "ovsdb-tool",
        "ovs-appctl",
    ]
    .iter()
    .all(|p| program(p).is_absolute())
        && Path::new("/usr/share/openvswitch/vswitch.ovsschema").exists()
}

/// ovsdb-server and ovs-vswitchd of this test (private database and run directory, inside the
/// test's namespace), stopped on drop — as crates/links/tests/ovs.rs runs them.
struct Ovs<'a> {
    ns: &'a Netns,
    dir: PathBuf,
}

impl<'a> Ovs<'a> {
    fn start(ns: &'a Netns, dir: &Path) -> Ovs<'a> {
        let d = dir.display().to_string();
        let run = |prog: &str, args: Vec<String>| {
            let mut c = ns.command(program(prog).to_str().unwrap());
            c.args(&args);
            for k in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
                c.env(k, &d);
            }
            let out = c.output().expect("spawn ovs program");
            assert!(
                out.status.success(),
                "{prog} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(
            "ovsdb-tool",
            vec![
                "create".into(),
                format!("{d}/conf.db"),
                "/usr/share/openvswitch/vswitch.ovsschema".into(),
            ],
        );
        run(
            "ovsdb-server",
            vec![
                format!("{d}/conf.db"),
                format!("--remote=punix:{d}/db.sock"),
                format!("--pidfile={d}/ovsdb-server.pid"),
                format!("--unixctl={d}/ovsdb-server.ctl"),
                format!("--log-file={d}/ovsdb-server.log"),
                "--detach".into(),
                "--no-chdir".into(),
            ],
        );
        let ovs = Ovs {
            ns,
            dir: dir.to_path_buf(),
        };
        run(
            "ovs-vsctl",
            vec![
                format!("--db=unix:{d}/db.sock"),
                "--no-wait".into(),
                "init".into(),
            ],
        );
        run(
            "ovs-vswitchd",
            vec![
                format!("unix:{d}/db.sock"),
                format!("--pidfile={d}/ovs-vswitchd.pid"),
                format!("--unixctl={d}/ovs-vswitchd.ctl"),
                format!("--log-file={d}/ovs-vswitchd.log"),
                "--detach".into(),
                "--no-chdir".into(),
            ],
        );
        ovs
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let out = self
            .ns
            .command(program("ovs-vsctl").to_str().unwrap())
            .arg(format!("--db=unix:{}/db.sock", self.dir.display()))
            .arg("--timeout=10")
            .args(args)
            .output()
            .expect("ovs-vsctl");
        assert!(
            out.status.success(),
            "ovs-vsctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn external_id(&self, port: &str, key: &str) -> String {
        self.vsctl(&["get", "Interface", port, &format!("external_ids:{key}")])
            .trim_matches('"')
            .to_string()
    }
}

impl Drop for Ovs<'_> {
    fn drop(&mut self) {
        let pids: Vec<String> = ["ovs-vswitchd.pid", "ovsdb-server.pid"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.join(f)).ok())
            .map(|s| s.trim().to_string())
            .collect();
        for ctl in ["ovs-vswitchd.ctl", "ovsdb-server.ctl"] {
            let _ = Command::new(program("ovs-appctl"))
                .arg("-t")
                .arg(self.dir.join(ctl))
                .arg("exit")
                .output();
        }
        let end = Instant::now() + Duration::from_secs(5);
        while pids.iter().any(|p| Path::new("/proc").join(p).exists()) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        // The namespace's guard kills whatever is left in it.
    }
}

const IFACE_ID: &str = "668033d2-06a4-4aaa-aca5-30cde245e477";
const VM_ID: &str = "c7a5fdbd-cdaf-9455-926a-d65c16db1809";

#[test]
fn open_vswitch_ports_and_hooks_carry_libvirts_external_ids() {
    if !require_root() {
        return;
    }
    if !ovs_installed() {
        eprintln!(
            "SKIPPED: Open vSwitch is not installed (crates/links/tests/ovs.rs installs \
             openvswitch-switch)"
        );
        return;
    }
    let ns = Netns::new("povs");
    let st = State::new("ovs");
    let run_dir = st.0.join("ovs");
    std::fs::create_dir_all(&run_dir).unwrap();
    let ovs = Ovs::start(&ns, &run_dir);
    ovs.vsctl(&[
        "add-br",
        "obr",
        "--",
        "set",
        "Bridge",
        "obr",
        "datapath_type=netdev",
    ]);
    st.define(
        "ovsnet",
        &format!(
            "  <forward mode='bridge'/>\n  <bridge name='obr'/>\n  \
             <virtualport type='openvswitch'>\n    <parameters interfaceid='{IFACE_ID}'/>\n  \
             </virtualport>\n"
        ),
    );
    st.define(
        "nobr",
        "  <forward mode='bridge'/>\n  <bridge name='nosuchbr'/>\n  \
         <virtualport type='openvswitch'/>\n",
    );
    // ovs-vsctl finds this test's database through OVS_RUNDIR, as it does the system's.
    let rd = run_dir.display().to_string();
    let env = [("OVS_RUNDIR", rd.as_str())];

    let j = json(&ok(
        &ns,
        &[
            "port",
            "add",
            "ovsnet",
            "--json",
            "--owner",
            "nobody",
            "--mac",
            "52:54:00:0d:00:01",
            "--vm-uuid",
            VM_ID,
            "--state-dir",
            st.dir(),
        ],
        &env,
    ));
    let port = j["interface"].as_str().unwrap().to_string();
    assert_eq!(j["kind"], "ovs");
    assert_eq!(j["attached_to"], "obr");
    assert_eq!(j["owner"], NOBODY);
    assert_eq!(ovs.vsctl(&["port-to-br", &port]), "obr");
    assert_eq!(ovs.external_id(&port, "attached-mac"), "52:54:00:0d:00:01");
    assert_eq!(ovs.external_id(&port, "iface-id"), IFACE_ID);
    assert_eq!(ovs.external_id(&port, "vm-id"), VM_ID);
    assert_eq!(ovs.external_id(&port, "iface-status"), "active");
    assert_eq!(alias(&ns, &port), "virtgate:ovs:ovsnet");

    // A bridge Open vSwitch does not have: refused in ovs-vsctl's words, nothing left.
    let err = refused(
        &ns,
        &[
            "port",
            "add",
            "nobr",
            "--name",
            "badtap",
            "--state-dir",
            st.dir(),
        ],
        &env,
    );
    assert!(err.contains("nosuchbr"), "{err}");
    assert!(!exists(&ns, "badtap"));

    // The seed's ovs-ifup/ovs-ifdown, replaced: a tap of QEMU's joins obr with the ids.
    ns.ip(&["tuntap", "add", "dev", "qovs0", "mode", "tap"]);
    ok(
        &ns,
        &["qemu-ifup", "qovs0"],
        &[
            ("OVS_RUNDIR", rd.as_str()),
            ("VIRTGATE_NETWORK", "ovsnet"),
            ("VIRTGATE_STATE_DIR", st.dir()),
            ("VIRTGATE_MAC", "52:54:00:0d:00:02"),
        ],
    );
    assert_eq!(ovs.vsctl(&["port-to-br", "qovs0"]), "obr");
    assert_eq!(
        ovs.external_id("qovs0", "attached-mac"),
        "52:54:00:0d:00:02"
    );
    assert_eq!(ovs.external_id("qovs0", "iface-id"), IFACE_ID);
    assert!(sysfs(&ns, "qovs0/flags").ends_with('3'), "not up");
    let listed = json(&ok(&ns, &["port", "list", "ovsnet", "--json"], &env));
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    ok(&ns, &["qemu-ifdown", "qovs0"], &env);
    assert_eq!(ovs.vsctl(&["list-ports", "obr"]), port);

    ok(&ns, &["port", "del", &port], &env);
    assert!(!exists(&ns, &port));
    assert_eq!(ovs.vsctl(&["list-ports", "obr"]), "");
    drop(ovs);
}
