//! Namespace tests (root) for virtual networks in `virtgate daemon` (issue 4): the daemon in a
//! namespace of its own with `--no-default-network --network-xml FILE` creates the bridge, and
//! its one nftables table holds the PPTP part and the network's part; SIGTERM removes both. The
//! `virtgate net ...` commands over the control socket (list, define, start, dumpxml, update,
//! leases with ISC dhclient as the guest, stop, undefine, autostart across restarts), the
//! built-in `default` network (started, stored once, same MAC after a restart; giving way to a
//! virbr0 or a subnet someone else holds), and a bad XML file refused with its line before
//! anything is touched. Issue 6 for networks: DHCP and DNS counters in `status` and `/metrics`
//! equal to what a dhclient guest and dig did, and `reload` of network definitions.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{host_ns, wait_until};
use virtgate_testnet::{require_root, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_virtgate");

/// A throwaway directory: configuration files, state directory, control socket.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("virtgate-vmnet-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn s(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// pptpd.conf + options + chap-secrets (the PPTP side runs beside the networks).
fn pptp_config(dir: &TempDir) -> Vec<String> {
    let options = dir.write(
        "options.pptpd",
        "name pptpd\nrefuse-pap\nrefuse-chap\nrefuse-mschap\nrequire-mschap-v2\nrequire-mppe-128\n",
    );
    dir.write(
        "pptpd.conf",
        &format!(
            "option {}\nlocalip 192.168.0.1\nremoteip 192.168.0.100-200\n",
            options.display()
        ),
    );
    let secrets = dir.write("chap-secrets", "user1\tpptpd\tpassword1\t*\n");
    let mut perm = std::fs::metadata(&secrets).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
    std::fs::set_permissions(&secrets, perm).unwrap();
    vec![
        "--pptpd-conf".into(),
        dir.s("pptpd.conf"),
        "--chap-secrets".into(),
        dir.s("chap-secrets"),
        "--socket".into(),
        dir.s("virtgate.sock"),
        "--state-dir".into(),
        dir.s("state"),
    ]
}

/// A NAT network on `bridge` with `subnet` = "10.N.0" (gateway .1, DHCP .10-.50).
fn nat_xml(name: &str, bridge: &str, subnet: &str) -> String {
    format!(
        "<network>\n  <name>{name}</name>\n  <forward mode='nat'/>\n  \
         <bridge name='{bridge}' stp='off' delay='0'/>\n  \
         <ip address='{subnet}.1' netmask='255.255.255.0'>\n    <dhcp>\n      \
         <range start='{subnet}.10' end='{subnet}.50'/>\n    </dhcp>\n  </ip>\n</network>\n"
    )
}

/// The daemon, its log collected in the background; killed on drop if still running.
struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn spawn(ns: &Netns, args: &[String]) -> Daemon {
        let mut child = ns
            .command(BIN)
            .arg("daemon")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn virtgate daemon");
        let log = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        Daemon { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(needle))
    }

    /// SIGTERM, then the exit status (panics after 15 s).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return st;
            }
            assert!(
                Instant::now() < end,
                "daemon did not stop on SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn bridge_has(ns: &Netns, bridge: &str, cidr: &str) -> bool {
    let o = ns.sh(&format!("ip -4 addr show dev {bridge}"));
    o.status.success() && String::from_utf8_lossy(&o.stdout).contains(&format!("inet {cidr} "))
}

fn link_exists(ns: &Netns, name: &str) -> bool {
    ns.sh(&format!("ip link show dev {name}")).status.success()
}

fn our_table(ns: &Netns) -> Option<String> {
    let o = ns.sh("nft list table inet virtgate");
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// `virtgate net ARGS... --socket SOCK` inside the namespace.
fn net(ns: &Netns, dir: &TempDir, args: &[&str]) -> Output {
    ns.command(BIN)
        .arg("net")
        .args(args)
        .arg("--socket")
        .arg(dir.path("virtgate.sock"))
        .output()
        .expect("run virtgate net")
}

fn net_ok(ns: &Netns, dir: &TempDir, args: &[&str]) -> String {
    let o = net(ns, dir, args);
    assert!(o.status.success(), "virtgate net {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn daemon_runs_a_network_with_both_firewall_parts_and_sigterm_removes_everything() {
    if !require_root() {
        return;
    }
    let ns = host_ns("vmnet");
    let dir = TempDir::new("one");
    let mut args = pptp_config(&dir);
    let xml = dir.write("lab.xml", &nat_xml("lab", "vgtlab0", "10.71.0"));
    args.extend([
        "--no-default-network".into(),
        "--network-xml".into(),
        xml.to_str().unwrap().into(),
    ]);
    let forward = || ns.sh_ok("cat /proc/sys/net/ipv4/ip_forward");
    let forward_before = forward();
    let mut d = Daemon::spawn(&ns, &args);
    assert!(
        wait_until(Duration::from_secs(15), || bridge_has(
            &ns,
            "vgtlab0",
            "10.71.0.1/24"
        )),
        "bridge never got its address:\n{}",
        d.log()
    );
    assert!(
        d.wait_log("virtgate PPTP server up", Duration::from_secs(10)),
        "{}",
        d.log()
    );
    // No built-in default network.
    assert!(!link_exists(&ns, "virbr0"));
    assert_eq!(forward().trim(), "1");
    let table = our_table(&ns).expect("our nftables table");
    for part in [
        "tcp dport 1723 accept comment \"pptp: control connections\"",
        "comment \"pptp: masquerade\"",
        "iifname \"vgtlab0\" udp dport 67 accept comment \"net lab: DHCP to the host\"",
        "masquerade to :1024-65535",
    ] {
        assert!(table.contains(part), "missing {part:?} in\n{table}");
    }
    // The definition is stored as `net define` would.
    assert!(dir.path("state/networks/lab.xml").is_file());

    // A second daemon on the same state directory is refused before it touches the network
    // (adopting the bridge and failing on its ports would remove it under the first).
    let mut second = args.clone();
    let at = second.iter().position(|a| a == "--socket").unwrap();
    second[at + 1] = dir.s("second.sock");
    let o = ns
        .command(BIN)
        .arg("daemon")
        .args(&second)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("another virtgate daemon uses the state directory"),
        "{}",
        text(&o)
    );
    assert!(bridge_has(&ns, "vgtlab0", "10.71.0.1/24"));
    assert_eq!(our_table(&ns).as_deref(), Some(table.as_str()));

    let st = d.terminate();
    assert!(st.success(), "exit {st:?}:\n{}", d.log());
    assert!(
        !link_exists(&ns, "vgtlab0"),
        "bridge left behind:\n{}",
        d.log()
    );
    assert_eq!(our_table(&ns), None, "table left behind:\n{}", d.log());
    assert!(!link_exists(&ns, "vgpptp0"), "TUN left behind");
    assert_eq!(forward(), forward_before, "ip_forward not restored");
    // Leases and definitions stay for the next start.
    assert!(dir.path("state/networks/lab.xml").is_file());
}

#[test]
fn net_commands_over_the_control_socket() {
    if !require_root() {
        return;
    }
    let ns = host_ns("vmnetcli");
    let dir = TempDir::new("cli");
    let mut args = pptp_config(&dir);
    let a_xml = dir.write("a.xml", &nat_xml("neta", "vgta0", "10.72.0"));
    let b_xml = dir.write(
        "b.xml",
        "<network>\n  <name>netb</name>\n  <bridge name='vgtb0'/>\n  \
         <ip address='10.73.0.1' prefix='24'/>\n</network>\n",
    );
    args.extend([
        "--no-default-network".into(),
        "--network-xml".into(),
        a_xml.to_str().unwrap().into(),
    ]);
    let mut d = Daemon::spawn(&ns, &args);
    assert!(
        wait_until(Duration::from_secs(15), || dir
            .path("virtgate.sock")
            .exists()
            && bridge_has(&ns, "vgta0", "10.72.0.1/24")),
        "{}",
        d.log()
    );

    // list: the running network, JSON and text.
    let l = json(&net_ok(&ns, &dir, &["list", "--json"]));
    assert_eq!(l["result"], "net");
    assert_eq!(l["net"], "list");
    assert_eq!(l["networks"][0]["name"], "neta");
    assert_eq!(l["networks"][0]["active"], true);
    assert_eq!(l["networks"][0]["bridge"], "vgta0");
    assert_eq!(l["networks"].as_array().unwrap().len(), 1);
    let t = net_ok(&ns, &dir, &["list"]);
    assert!(t.starts_with(" Name "), "{t}");
    assert!(t.contains(" neta ") && t.contains("active"), "{t}");

    // define + start: a second bridge, its rules added to the same table.
    let out = net_ok(&ns, &dir, &["define", b_xml.to_str().unwrap()]);
    assert!(out.contains("Network netb defined"), "{out}");
    let l = json(&net_ok(&ns, &dir, &["list", "--json"]));
    assert_eq!(l["networks"][1]["name"], "netb");
    assert_eq!(l["networks"][1]["active"], false);
    assert!(!link_exists(&ns, "vgtb0"));
    let s = json(&net_ok(&ns, &dir, &["start", "netb", "--json"]));
    assert_eq!(s["net"], "started");
    assert_eq!(s["bridge"], "vgtb0");
    assert!(bridge_has(&ns, "vgtb0", "10.73.0.1/24"));
    let table = our_table(&ns).unwrap();
    assert!(
        table.contains("net neta:") && table.contains("net netb:"),
        "{table}"
    );
    assert!(table.contains("pptp: control connections"), "{table}");
    // Starting it twice is refused, and so is an unknown network.
    let o = net(&ns, &dir, &["start", "netb"]);
    assert!(
        !o.status.success() && text(&o).contains("already running"),
        "{}",
        text(&o)
    );
    let o = net(&ns, &dir, &["start", "nosuch"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("no network named 'nosuch'"),
        "{}",
        text(&o)
    );

    // dumpxml: the running definition, with what was generated at define time.
    let x = net_ok(&ns, &dir, &["dumpxml", "netb"]);
    assert!(
        x.contains("<name>netb</name>") && x.contains("<uuid>"),
        "{x}"
    );
    assert!(x.contains("<mac address='52:54:00:"), "{x}");
    let j = json(&net_ok(&ns, &dir, &["dumpxml", "netb", "--json"]));
    assert_eq!(j["xml"].as_str().unwrap().trim_end(), x.trim_end());

    // update: a reservation on the running network and in the stored definition.
    let host = "<host mac='52:54:00:aa:bb:cc' name='resv' ip='10.72.0.60'/>";
    let u = json(&net_ok(
        &ns,
        &dir,
        &["update", "neta", "add", "ip-dhcp-host", host, "--json"],
    ));
    assert_eq!(
        (u["live"].clone(), u["config"].clone()),
        (true.into(), true.into())
    );
    let x = net_ok(&ns, &dir, &["dumpxml", "neta"]);
    assert!(x.contains("name='resv'"), "{x}");
    let x = net_ok(&ns, &dir, &["dumpxml", "neta", "--inactive"]);
    assert!(x.contains("name='resv'"), "{x}");
    let dns_host = dir.write(
        "dns-host.xml",
        "<host ip='10.72.0.99'><hostname>printer</hostname></host>",
    );
    let out = net_ok(
        &ns,
        &dir,
        &[
            "update",
            "neta",
            "add",
            "dns-host",
            dns_host.to_str().unwrap(),
        ],
    );
    assert!(out.contains("live state and persistent config"), "{out}");
    // The DNS server answers the new name at once.
    let o = ns.sh("dig +short +time=2 +tries=1 @10.72.0.1 printer");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "10.72.0.99",
        "{}",
        text(&o)
    );
    // A bad section is refused by the command line, a duplicate by the daemon.
    let o = net(&ns, &dir, &["update", "neta", "add", "ip-dhcp-range", host]);
    assert!(!o.status.success() && text(&o).contains("cannot be updated live"));
    let o = net(&ns, &dir, &["update", "neta", "add", "ip-dhcp-host", host]);
    assert!(!o.status.success(), "{}", text(&o));
    let u = net_ok(
        &ns,
        &dir,
        &["update", "neta", "delete", "ip-dhcp-host", host],
    );
    assert!(u.contains("Updated network neta"), "{u}");
    assert!(!net_ok(&ns, &dir, &["dumpxml", "neta"]).contains("resv"));

    // leases: ISC dhclient as a guest on neta's bridge.
    let guest = Netns::new("vmnetg");
    Command::new("ip")
        .args([
            "link",
            "add",
            "eth0",
            "netns",
            guest.name(),
            "address",
            "52:54:00:12:34:56",
            "type",
            "veth",
            "peer",
            "name",
            "vgtport0",
            "netns",
            ns.name(),
        ])
        .status()
        .unwrap();
    ns.ip(&["link", "set", "vgtport0", "master", "vgta0"]);
    ns.ip(&["link", "set", "vgtport0", "up"]);
    guest.ip(&["link", "set", "eth0", "up"]);
    let gdir = TempDir::new("guest");
    gdir.write("dhclient.conf", "send host-name \"guest1\";\ntimeout 30;\n");
    gdir.write("script", "#!/bin/sh\nexit 0\n");
    Command::new("chmod")
        .args(["755", &gdir.s("script")])
        .status()
        .unwrap();
    let o = guest
        .command("dhclient")
        .args([
            "-4",
            "-1",
            "-cf",
            &gdir.s("dhclient.conf"),
            "-lf",
            &gdir.s("leases"),
        ])
        .args(["-pf", &gdir.s("pid"), "-sf", &gdir.s("script"), "eth0"])
        .output()
        .expect("dhclient");
    let _ = guest
        .command("dhclient")
        .args(["-x", "-pf", &gdir.s("pid")])
        .output();
    assert!(o.status.success(), "dhclient: {}\n{}", text(&o), d.log());
    let l = json(&net_ok(&ns, &dir, &["leases", "neta", "--json"]));
    let leases = l["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 1, "{l}");
    assert_eq!(leases[0]["mac"], "52:54:00:12:34:56");
    assert_eq!(leases[0]["hostname"], "guest1");
    assert_eq!(leases[0]["protocol"], "ipv4");
    let ip = leases[0]["ip_address"].as_str().unwrap();
    assert!(ip.starts_with("10.72.0.") && ip.ends_with("/24"), "{ip}");
    let t = net_ok(&ns, &dir, &["leases", "neta"]);
    assert!(t.starts_with(" Expiry Time "), "{t}");
    assert!(
        t.contains("52:54:00:12:34:56") && t.contains(ip) && t.contains("guest1"),
        "{t}"
    );
    let o = net(&ns, &dir, &["leases", "netb-nope"]);
    assert!(!o.status.success() && text(&o).contains("not running"));

    // stop: bridge gone, its rules gone, the other network untouched.
    let out = net_ok(&ns, &dir, &["stop", "netb"]);
    assert!(out.contains("Network netb destroyed"), "{out}");
    assert!(!link_exists(&ns, "vgtb0"));
    let table = our_table(&ns).unwrap();
    assert!(
        !table.contains("net netb:") && table.contains("net neta:"),
        "{table}"
    );
    // undefine: by name, or by the file that defined it.
    let out = net_ok(&ns, &dir, &["undefine", b_xml.to_str().unwrap()]);
    assert!(out.contains("Network netb has been undefined"), "{out}");
    let l = json(&net_ok(&ns, &dir, &["list", "--json"]));
    assert_eq!(l["networks"].as_array().unwrap().len(), 1, "{l}");
    assert!(!dir.path("state/networks/netb.xml").exists());

    let st = d.terminate();
    assert!(st.success(), "{}", d.log());
    assert!(!link_exists(&ns, "vgta0"));
    assert_eq!(our_table(&ns), None);
    // The lease outlives the daemon, in dnsmasq's format.
    let leases = std::fs::read_to_string(dir.path("state/neta.leases")).unwrap();
    assert!(leases.contains("52:54:00:12:34:56"), "{leases}");
}

#[test]
fn builtin_default_gives_way_to_a_virbr0_or_subnet_held_by_someone_else() {
    if !require_root() {
        return;
    }
    for (what, setup) in [
        // As libvirt's own virbr0 would be: a bridge virtgate did not create.
        ("bridge", "ip link add virbr0 type bridge"),
        (
            "subnet",
            "ip link add other0 type veth peer name other1 && \
             ip addr add 192.168.122.7/24 dev other0 && ip link set other1 up && \
             ip link set other0 up",
        ),
    ] {
        let ns = host_ns("vmnetdef");
        ns.sh_ok(setup);
        let dir = TempDir::new(&format!("def-{what}"));
        let args = pptp_config(&dir);
        let mut d = Daemon::spawn(&ns, &args);
        assert!(
            d.wait_log("virtgate PPTP server up", Duration::from_secs(15)),
            "{what}: {}",
            d.log()
        );
        let log = d.log();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("built-in network 'default' is not started"))
            .collect();
        assert_eq!(warnings.len(), 1, "{what}: {log}");
        let expect = match what {
            "bridge" => "bridge name 'virbr0' is already taken by a bridge virtgate did not create",
            _ => "subnet 192.168.122.0/24 is already in use by interface other0",
        };
        assert!(warnings[0].contains(expect), "{what}: {}", warnings[0]);
        // Nothing of the default network was made or stored; the PPTP part is in place.
        assert!(!dir.path("state/networks/default.xml").exists(), "{what}");
        let table = our_table(&ns).unwrap();
        assert!(table.contains("pptp: control connections") && !table.contains("net default"));
        let l = json(&net_ok(&ns, &dir, &["list", "--json"]));
        assert_eq!(l["networks"].as_array().unwrap().len(), 0, "{l}");
        assert!(d.terminate().success(), "{}", d.log());
        // The other party's interface is left alone.
        assert!(link_exists(
            &ns,
            if what == "bridge" { "virbr0" } else { "other0" }
        ));
    }
}

#[test]
fn builtin_default_starts_and_is_stored_once() {
    if !require_root() {
        return;
    }
    let ns = host_ns("vmnetdef2");
    let dir = TempDir::new("def-ok");
    let args = pptp_config(&dir);
    let mac = |dir: &TempDir| {
        let x = std::fs::read_to_string(dir.path("state/networks/default.xml")).unwrap();
        let at = x.find("<mac address='").expect("stored MAC");
        x[at..at + 31].to_string()
    };
    let mut first = String::new();
    for round in 0..2 {
        let mut d = Daemon::spawn(&ns, &args);
        assert!(
            wait_until(Duration::from_secs(15), || bridge_has(
                &ns,
                "virbr0",
                "192.168.122.1/24"
            )),
            "{}",
            d.log()
        );
        // The firewall is applied after the networks' bridges are up: wait for the server.
        assert!(
            d.wait_log("virtgate PPTP server up", Duration::from_secs(10)),
            "{}",
            d.log()
        );
        let table = our_table(&ns).unwrap();
        assert!(table.contains("net default: DHCP to the host"), "{table}");
        // The bridge keeps its generated MAC across restarts.
        let m = mac(&dir);
        let link = ns.sh_ok("ip link show dev virbr0");
        assert!(link.contains(&m[14..31]), "{m} vs {link}");
        if round == 0 {
            first = m;
        } else {
            assert_eq!(m, first);
        }
        assert!(d.terminate().success(), "{}", d.log());
        assert!(!link_exists(&ns, "virbr0"));
        assert_eq!(our_table(&ns), None);
    }
}

#[test]
fn autostart_networks_start_with_the_daemon() {
    if !require_root() {
        return;
    }
    let ns = host_ns("vmnetauto");
    let dir = TempDir::new("auto");
    let mut args = pptp_config(&dir);
    args.push("--no-default-network".into());
    let c_xml = dir.write("c.xml", &nat_xml("netc", "vgtc0", "10.74.0"));
    let up = |d: &Daemon| {
        assert!(
            d.wait_log("virtgate PPTP server up", Duration::from_secs(15)),
            "{}",
            d.log()
        );
    };

    // Defined, not marked: the next daemon does not start it.
    let mut d = Daemon::spawn(&ns, &args);
    up(&d);
    net_ok(&ns, &dir, &["define", c_xml.to_str().unwrap()]);
    assert!(d.terminate().success());
    let mut d = Daemon::spawn(&ns, &args);
    up(&d);
    assert!(!link_exists(&ns, "vgtc0"), "{}", d.log());
    let out = net_ok(&ns, &dir, &["autostart", "netc"]);
    assert_eq!(out, "Network netc marked as autostarted\n");
    let l = json(&net_ok(&ns, &dir, &["list", "--json"]));
    assert_eq!(l["networks"][0]["autostart"], true, "{l}");
    assert_eq!(l["networks"][0]["active"], false, "{l}");
    assert!(d.terminate().success());

    // Marked: started with the daemon, its rules in the table.
    let mut d = Daemon::spawn(&ns, &args);
    assert!(
        wait_until(Duration::from_secs(15), || bridge_has(
            &ns,
            "vgtc0",
            "10.74.0.1/24"
        )),
        "{}",
        d.log()
    );
    up(&d);
    assert!(our_table(&ns).unwrap().contains("net netc:"));
    let j = json(&net_ok(
        &ns,
        &dir,
        &["autostart", "netc", "--disable", "--json"],
    ));
    assert_eq!(j["enabled"], false, "{j}");
    assert!(d.terminate().success());
    assert!(!link_exists(&ns, "vgtc0"));

    // Unmarked again.
    let mut d = Daemon::spawn(&ns, &args);
    up(&d);
    assert!(!link_exists(&ns, "vgtc0"), "{}", d.log());
    let o = net(&ns, &dir, &["autostart", "nosuch"]);
    assert!(!o.status.success() && text(&o).contains("no network named 'nosuch'"));
    assert!(d.terminate().success());
}

/// `firewall show` (no root, nothing applied): the PPTP part and the parts of the networks the
/// daemon would start.
#[test]
fn firewall_show_includes_the_networks_the_daemon_would_start() {
    let dir = TempDir::new("show");
    let mut base = pptp_config(&dir);
    // `firewall show` takes no --socket.
    let at = base.iter().position(|a| a == "--socket").unwrap();
    base.drain(at..at + 2);
    base.extend(["--uplink".into(), "wan9".into()]);
    let show = |extra: &[&str]| {
        let o = Command::new(BIN)
            .args(["firewall", "show"])
            .args(&base)
            .args(extra)
            .output()
            .expect("run firewall show");
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let lab = dir.write("lab.xml", &nat_xml("lab", "vgtlab0", "10.71.0"));
    let lab = lab.to_str().unwrap();

    let out = show(&[]);
    assert!(out.contains("comment \"pptp: masquerade\""), "{out}");
    assert!(
        out.contains(
            "iifname \"virbr0\" udp dport 67 accept comment \"net default: DHCP to the host\""
        ),
        "{out}"
    );
    let out = show(&["--no-default-network"]);
    assert!(
        out.contains("pptp: control connections") && !out.contains("\"net "),
        "{out}"
    );
    let out = show(&["--no-default-network", "--network-xml", lab]);
    assert!(
        out.contains("net lab:") && !out.contains("net default"),
        "{out}"
    );
    assert!(
        out.contains("192.168.0.") && out.contains("10.71.0.0/24"),
        "{out}"
    );
    // Nothing was created: no state directory, no table (this runs outside any namespace).
    assert!(!dir.path("state").exists());
    // A stored network marked autostart is shown too; the built-in default's stored
    // definition replaces libvirt's.
    std::fs::create_dir_all(dir.path("state/networks/autostart")).unwrap();
    dir.write(
        "state/networks/auto.xml",
        &nat_xml("auto", "vgtauto0", "10.75.0"),
    );
    std::os::unix::fs::symlink("../auto.xml", dir.path("state/networks/autostart/auto.xml"))
        .unwrap();
    dir.write(
        "state/networks/default.xml",
        &nat_xml("default", "virbr5", "192.168.150"),
    );
    let out = show(&[]);
    assert!(
        out.contains("net auto:") && out.contains("10.75.0.0/24"),
        "{out}"
    );
    assert!(
        out.contains("iifname \"virbr5\"") && !out.contains("\"virbr0\""),
        "{out}"
    );
    let out = show(&["--no-default-network"]);
    assert!(
        out.contains("net auto:") && !out.contains("net default"),
        "{out}"
    );
    // A bad file is refused with its line, as by the daemon.
    let bad = dir.write(
        "bad.xml",
        "<network>\n<name>b</name>\n<frob/>\n</network>\n",
    );
    let o = Command::new(BIN)
        .args(["firewall", "show"])
        .args(&base)
        .args(["--network-xml", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with(&format!("{}:3:", bad.display())));
}

#[test]
fn a_bad_network_file_is_refused_with_its_line_before_anything_starts() {
    if !require_root() {
        return;
    }
    let ns = host_ns("vmnetbad");
    let dir = TempDir::new("bad");
    let mut args = pptp_config(&dir);
    let bad = dir.write(
        "bad.xml",
        "<network>\n  <name>bad</name>\n  <bridge name='vgtbad0'/>\n  <bandwidth/>\n</network>\n",
    );
    args.extend(["--network-xml".into(), bad.to_str().unwrap().into()]);
    let o = ns
        .command(BIN)
        .arg("daemon")
        .args(&args)
        .output()
        .expect("run daemon");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with(&format!("{}:4: ", bad.display())) && err.contains("bandwidth"),
        "{err}"
    );
    assert!(!link_exists(&ns, "vgtbad0") && !link_exists(&ns, "virbr0"));
    assert!(!link_exists(&ns, "vgpptp0"));
    assert_eq!(our_table(&ns), None);
    assert!(!Path::new(&dir.path("state/networks")).exists());
}

/// A guest namespace whose `eth0` (MAC `mac`) is a port (`port`) of `bridge` in `host`.
fn guest_on(host: &Netns, bridge: &str, mac: &str, port: &str, tag: &str) -> Netns {
    let guest = Netns::new(tag);
    let st = Command::new("ip")
        .args(["link", "add", "eth0", "netns", guest.name(), "address", mac])
        .args(["type", "veth", "peer", "name", port, "netns", host.name()])
        .status()
        .unwrap();
    assert!(st.success());
    host.ip(&["link", "set", port, "master", bridge]);
    host.ip(&["link", "set", port, "up"]);
    guest.ip(&["link", "set", "eth0", "up"]);
    guest
}

/// ISC dhclient in `guest`, once (`-1`), sending `hostname`; stopped (without a release)
/// once it has its lease. Returns its output.
fn dhclient(guest: &Netns, dir: &TempDir, hostname: &str) -> Output {
    dir.write(
        "dhclient.conf",
        &format!("send host-name \"{hostname}\";\ntimeout 30;\n"),
    );
    // Configures the leased address (the tests' networks are /24s).
    dir.write(
        "script",
        "#!/bin/sh\ncase \"$reason\" in BOUND|RENEW|REBIND|REBOOT)\n  \
         ip -4 addr flush dev \"$interface\"\n  \
         ip addr add \"$new_ip_address/24\" dev \"$interface\";;\nesac\nexit 0\n",
    );
    Command::new("chmod")
        .args(["755", &dir.s("script")])
        .status()
        .unwrap();
    let o = guest
        .command("dhclient")
        .args(["-4", "-1", "-cf", &dir.s("dhclient.conf")])
        .args(["-lf", &dir.s("leases"), "-pf", &dir.s("pid")])
        .args(["-sf", &dir.s("script"), "eth0"])
        .output()
        .expect("dhclient");
    let _ = guest
        .command("dhclient")
        .args(["-x", "-pf", &dir.s("pid")])
        .output();
    o
}

/// `dig +short` in `ns` against `server`: the first line of the answer.
fn dig(ns: &Netns, server: &str, name: &str) -> String {
    let o = ns.sh(&format!("dig +short +time=5 +tries=1 @{server} {name}"));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// `virtgate CMD ARGS... --socket SOCK` inside the namespace.
fn ctl(ns: &Netns, dir: &TempDir, cmd: &str, args: &[&str]) -> Output {
    ns.command(BIN)
        .arg(cmd)
        .args(args)
        .arg("--socket")
        .arg(dir.path("virtgate.sock"))
        .output()
        .expect("run virtgate")
}

/// The network of the operations test: NAT, DNS forwarded to 198.51.100.1, DHCP .10-.50,
/// with `extra_dhcp` and `extra_dns` inside `<dhcp>` and `<dns>`, and STP `stp`.
fn ops_xml(stp: &str, extra_dhcp: &str, extra_dns: &str) -> String {
    format!(
        "<network>\n  <name>ops</name>\n  <forward mode='nat'/>\n  \
         <bridge name='vgtops0' stp='{stp}' delay='0'/>\n  \
         <dns>\n    <forwarder addr='198.51.100.1'/>\n    {extra_dns}\n  </dns>\n  \
         <ip address='10.74.0.1' netmask='255.255.255.0'>\n    <dhcp>\n      \
         <range start='10.74.0.10' end='10.74.0.50'/>\n      {extra_dhcp}\n    </dhcp>\n  \
         </ip>\n</network>\n"
    )
}

/// Issue 6 for networks: the DHCP and DNS counters in `status --json`, the status text and
/// `/metrics` equal what a dhclient guest and dig did; `reload` adds a DHCP host and a DNS host
/// to the running network live, refuses a broken file (with its line) while DHCP keeps
/// serving, says which change needs `net stop`/`net start`, and starts a new autostart network.
#[test]
fn network_counters_and_reload_of_definitions() {
    if !require_root() {
        return;
    }
    let ns = host_ns("vmnetops");
    let dir = TempDir::new("ops");
    // The upstream DNS server: dnsmasq on 198.51.100.1 in the same namespace, answering
    // *.example.test with TTL 300 (so the answer may be cached) and refusing the rest.
    ns.ip(&["addr", "add", "198.51.100.1/32", "dev", "up0peer"]);
    let mut upstream = ns.spawn(
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=198.51.100.1",
            "--address=/example.test/203.0.113.80",
            "--local-ttl=300",
            "--pid-file=",
        ],
    );
    let mut args = pptp_config(&dir);
    let xml = dir.write("ops.xml", &ops_xml("off", "", ""));
    args.extend([
        "--no-default-network".into(),
        "--network-xml".into(),
        xml.to_str().unwrap().into(),
        "--metrics".into(),
        "127.0.0.1:9478".into(),
    ]);
    let mut d = Daemon::spawn(&ns, &args);
    assert!(
        wait_until(Duration::from_secs(15), || dir
            .path("virtgate.sock")
            .exists()
            && bridge_has(&ns, "vgtops0", "10.74.0.1/24")),
        "{}",
        d.log()
    );

    // What a guest does: one lease, a local name, a forwarded name twice (the second from the
    // cache), a name the upstream refuses, one malformed datagram.
    let g1 = guest_on(&ns, "vgtops0", "52:54:00:12:34:56", "vgtopsp1", "opsg1");
    let g1dir = TempDir::new("opsg1");
    let o = dhclient(&g1, &g1dir, "guest1");
    assert!(o.status.success(), "dhclient: {}\n{}", text(&o), d.log());
    let g1_ip = g1.sh_ok("ip -4 -o addr show dev eth0");
    assert!(g1_ip.contains("inet 10.74.0."), "{g1_ip}");
    assert!(dig(&g1, "10.74.0.1", "guest1").starts_with("10.74.0."));
    assert_eq!(dig(&g1, "10.74.0.1", "www.example.test"), "203.0.113.80");
    assert_eq!(dig(&g1, "10.74.0.1", "www.example.test"), "203.0.113.80");
    assert_eq!(dig(&g1, "10.74.0.1", "nosuch.other.test"), "");
    g1.sh_ok("bash -c 'printf xxxx > /dev/udp/10.74.0.1/53'");
    let st = wait_until(Duration::from_secs(5), || {
        let o = ctl(&ns, &dir, "status", &["--json"]);
        json(&String::from_utf8_lossy(&o.stdout))["networks"][0]["dns_malformed"] == 1
    });
    assert!(st, "the malformed datagram was not counted:\n{}", d.log());

    let o = ctl(&ns, &dir, "status", &["--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = json(&String::from_utf8_lossy(&o.stdout));
    let n = &s["networks"][0];
    assert_eq!(s["networks"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(
        (n["name"].as_str(), n["bridge"].as_str()),
        (Some("ops"), Some("vgtops0"))
    );
    let count = |k: &str| {
        n[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {n}"))
    };
    assert_eq!(count("dhcp_leases_active"), 1, "{n}");
    assert_eq!(count("dhcp_acks"), 1, "{n}");
    assert!(count("dhcp_offers") >= 1, "{n}");
    assert_eq!(count("dhcp_naks"), 0, "{n}");
    assert_eq!(count("dhcp_malformed"), 0, "{n}");
    assert_eq!(count("dns_answered"), 1, "{n}");
    assert_eq!(count("dns_forwarded"), 2, "{n}");
    assert_eq!(count("dns_cache_hits"), 1, "{n}");
    assert_eq!(count("dns_failed"), 1, "{n}");
    assert_eq!(count("dns_malformed"), 1, "{n}");
    let offers = count("dhcp_offers");

    let o = ctl(&ns, &dir, "status", &[]);
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        t.contains(&format!(
            "ops (vgtops0): DHCP 1 leases, {offers} offers, 1 acks, 0 naks, 0 malformed; DNS 1 \
             local, 2 forwarded, 1 from cache, 1 failed, 1 malformed"
        )),
        "{t}"
    );
    let m = ns.sh_ok("curl -s --max-time 5 http://127.0.0.1:9478/metrics");
    for line in [
        "virtgate_dhcp_leases_active{network=\"ops\"} 1".to_string(),
        format!("virtgate_dhcp_offers_total{{network=\"ops\"}} {offers}"),
        "virtgate_dhcp_acks_total{network=\"ops\"} 1".into(),
        "virtgate_dhcp_naks_total{network=\"ops\"} 0".into(),
        "virtgate_dns_answered_total{network=\"ops\"} 1".into(),
        "virtgate_dns_forwarded_total{network=\"ops\"} 2".into(),
        "virtgate_dns_cache_hits_total{network=\"ops\"} 1".into(),
        "virtgate_dns_failed_total{network=\"ops\"} 1".into(),
        "virtgate_dns_malformed_total{network=\"ops\"} 1".into(),
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
    }

    // Reload with a DHCP host and a DNS host added to the file: applied live.
    let reserved = "<host mac='52:54:00:12:34:57' name='fixedguest' ip='10.74.0.40'/>";
    let printer = "<host ip='10.74.0.99'><hostname>printer</hostname></host>";
    dir.write("ops.xml", &ops_xml("off", reserved, printer));
    let o = ctl(&ns, &dir, "reload", &[]);
    assert!(o.status.success(), "{}\n{}", text(&o), d.log());
    assert!(!text(&o).contains("warning"), "{}", text(&o));
    assert_eq!(dig(&g1, "10.74.0.1", "printer"), "10.74.0.99");
    assert_eq!(dig(&g1, "10.74.0.1", "fixedguest"), "10.74.0.40");
    assert!(net_ok(&ns, &dir, &["dumpxml", "ops"]).contains("fixedguest"));
    let g2 = guest_on(&ns, "vgtops0", "52:54:00:12:34:57", "vgtopsp2", "opsg2");
    let g2dir = TempDir::new("opsg2");
    let o = dhclient(&g2, &g2dir, "guest2");
    assert!(o.status.success(), "dhclient: {}\n{}", text(&o), d.log());
    let g2_ip = g2.sh_ok("ip -4 -o addr show dev eth0");
    assert!(g2_ip.contains("inet 10.74.0.40/24"), "{g2_ip}");

    // A broken file: the whole reload is refused with file:line, nothing changes, DHCP serves.
    dir.write(
        "ops.xml",
        "<network>\n  <name>ops</name>\n  <bridge name='vgtops0'\n</network>\n",
    );
    let before = net_ok(&ns, &dir, &["dumpxml", "ops", "--inactive"]);
    let o = ctl(&ns, &dir, "reload", &[]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = text(&o);
    assert!(err.contains("reload refused"), "{err}");
    assert!(err.contains(&format!("{}:", xml.display())), "{err}");
    assert!(
        d.wait_log("reload refused", Duration::from_secs(5)),
        "{}",
        d.log()
    );
    assert_eq!(net_ok(&ns, &dir, &["dumpxml", "ops", "--inactive"]), before);
    let g3 = guest_on(&ns, "vgtops0", "52:54:00:12:34:58", "vgtopsp3", "opsg3");
    let g3dir = TempDir::new("opsg3");
    let o = dhclient(&g3, &g3dir, "guest3");
    assert!(o.status.success(), "dhclient: {}\n{}", text(&o), d.log());
    let l = json(&net_ok(&ns, &dir, &["leases", "ops", "--json"]));
    assert_eq!(l["leases"].as_array().unwrap().len(), 3, "{l}");
    assert_eq!(dig(&g3, "10.74.0.1", "printer"), "10.74.0.99");

    // A change beyond hosts (STP) is stored but waits for net stop/start, and says so; a new
    // autostart definition in the state directory starts.
    dir.write("ops.xml", &ops_xml("on", reserved, printer));
    std::fs::write(
        dir.path("state/networks/extra.xml"),
        "<network>\n  <name>extra</name>\n  <bridge name='vgtextra0'/>\n  \
         <ip address='10.75.0.1' prefix='24'/>\n</network>\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path("state/networks/autostart")).unwrap();
    std::os::unix::fs::symlink(
        "../extra.xml",
        dir.path("state/networks/autostart/extra.xml"),
    )
    .unwrap();
    let o = ctl(&ns, &dir, "reload", &[]);
    assert!(o.status.success(), "{}\n{}", text(&o), d.log());
    assert!(
        text(&o).contains("network 'ops'") && text(&o).contains("virtgate net stop ops"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("network 'extra'"), "{}", text(&o));
    assert!(net_ok(&ns, &dir, &["dumpxml", "ops"]).contains("stp='off'"));
    assert!(net_ok(&ns, &dir, &["dumpxml", "ops", "--inactive"]).contains("stp='on'"));
    assert!(bridge_has(&ns, "vgtextra0", "10.75.0.1/24"), "{}", d.log());
    let o = ctl(&ns, &dir, "status", &["--json"]);
    let s = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(s["networks"].as_array().unwrap().len(), 2, "{s}");

    // SIGHUP does the same: the DNS host moves live, although the STP change still waits.
    let moved = "<host ip='10.74.0.98'><hostname>printer</hostname></host>";
    dir.write("ops.xml", &ops_xml("on", reserved, moved));
    let st = Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        wait_until(Duration::from_secs(10), || dig(&g3, "10.74.0.1", "printer")
            == "10.74.0.98"),
        "{}",
        d.log()
    );
    assert!(
        d.log().contains("SIGHUP: network definitions reloaded"),
        "{}",
        d.log()
    );

    let st = d.terminate();
    assert!(st.success(), "{}", d.log());
    assert!(!link_exists(&ns, "vgtops0") && !link_exists(&ns, "vgtextra0"));
    let _ = upstream.kill();
    let _ = upstream.wait();
}
