//! Namespace integration tests (root): `virtgate daemon` in a server namespace, `virtgate dial`
//! in a client namespace, a veth between them. Ping and checksummed transfers both ways through
//! the tunnel, a wrong password, a clean SIGTERM stop that leaves no interface or nftables table,
//! and masquerading toward an "outside" namespace through an uplink.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;
use virtgate_testnet::{require_root, Netns};

/// The seed's configuration, written to `dir`.
fn seed_config(dir: &TempDir) -> (PathBuf, PathBuf) {
    let options = dir.write(
        "options.pptpd",
        "name pptpd\nrefuse-pap\nrefuse-chap\nrefuse-mschap\nrequire-mschap-v2\n\
         require-mppe-128\nms-dns 8.8.8.8\nms-dns 8.8.4.4\nproxyarp\nlock\nnobsdcomp\nnovj\n\
         novjccomp\nnologfd\n",
    );
    let conf = dir.write(
        "pptpd.conf",
        &format!(
            "option {}\nlocalip 192.168.0.1\nremoteip 192.168.0.100-200\n",
            options.display()
        ),
    );
    let secrets = dir.write(
        "chap-secrets",
        "# client\tserver\tsecret\t\tIP addresses\nuser1\tpptpd\tpassword1\t*\n",
    );
    let mut perm = std::fs::metadata(&secrets).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
    std::fs::set_permissions(&secrets, perm).unwrap();
    (conf, secrets)
}

/// A small TCP transfer tool run with python3 inside the namespaces: `U` uploads a file and
/// gets back the sha256 the receiver computed, `D` downloads a file and prints its sha256.
const XFER_PY: &str = r#"
import hashlib, socket, sys
mode = sys.argv[1]
if mode == "server":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[2], int(sys.argv[3]))); s.listen(4)
    data = open(sys.argv[4], "rb").read()
    for _ in range(int(sys.argv[5])):
        c, _ = s.accept(); c.settimeout(60)
        cmd = c.recv(1)
        if cmd == b"U":
            h = hashlib.sha256()
            while True:
                b = c.recv(65536)
                if not b: break
                h.update(b)
            c.sendall(h.hexdigest().encode())
        elif cmd == b"D":
            c.sendall(data)
        c.close()
else:
    host, port, cmd = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    c = socket.create_connection((host, port), timeout=60)
    if cmd == "U":
        c.sendall(b"U" + open(sys.argv[5], "rb").read()); c.shutdown(socket.SHUT_WR)
        print(c.recv(200).decode())
    else:
        c.sendall(b"D"); h = hashlib.sha256()
        while True:
            b = c.recv(65536)
            if not b: break
            h.update(b)
        print(h.hexdigest())
"#;

fn sha256_file(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn random_file(p: &Path, bytes: usize) {
    let out = Command::new("head")
        .args(["-c", &bytes.to_string(), "/dev/urandom"])
        .output()
        .unwrap();
    std::fs::write(p, out.stdout).unwrap();
}

fn nft_tables(ns: &Netns) -> String {
    ns.sh("nft list tables 2>/dev/null")
        .stdout
        .iter()
        .map(|&b| b as char)
        .collect()
}

/// Each test's daemon has its own state directory: daemons sharing one refuse to start (the
/// state directory's lock), and tests run in parallel.
fn state_dir(conf: &Path) -> PathBuf {
    conf.parent().unwrap().join("state")
}

fn daemon(ns: &Netns, conf: &Path, secrets: &Path, extra: &[&str]) -> Proc {
    // These tests are about PPTP; the built-in network has its own tests (vmnet_netns).
    let mut args = vec!["--no-default-network"];
    args.extend_from_slice(extra);
    wait_listening(ns, spawn_daemon(ns, conf, secrets, "debug", &args))
}

fn dial(ns: &Netns, server: &str, password: &str) -> Proc {
    dial_tun(ns, server, password, "vgdial0")
}

fn dial_tun(ns: &Netns, server: &str, password: &str, tun: &str) -> Proc {
    common::dial(ns, server, "user1", password, tun)
}

/// Stops the daemon with SIGTERM and checks it leaves nothing behind.
fn stop_and_check_clean(mut d: Proc, server: &Netns) {
    d.signal("TERM");
    let t0 = Instant::now();
    let status = d.wait(Duration::from_secs(5));
    assert!(
        status.is_some(),
        "daemon still running 5 s after SIGTERM:\n{}",
        d.log()
    );
    assert!(
        status.unwrap().success(),
        "daemon exit status {status:?}:\n{}",
        d.log()
    );
    eprintln!("daemon stopped in {:?}", t0.elapsed());
    let links = String::from_utf8_lossy(&server.ip(&["-o", "link", "show"]).stdout).into_owned();
    assert!(!links.contains("vgpptp0"), "TUN left behind: {links}");
    let tables = nft_tables(server);
    assert!(
        tables.trim().is_empty(),
        "nftables tables left behind: {tables}"
    );
}

#[test]
fn dial_ping_transfer_both_ways_and_clean_stop() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("e2e");
    let (conf, secrets) = seed_config(&dir);
    let server = Netns::new("srv");
    let client = Netns::new("cli");
    server.link_to(&client, "vs0", "10.99.0.1/24", "vc0", "10.99.0.2/24");

    let d = daemon(&server, &conf, &secrets, &[]);
    let c = dial(&client, "10.99.0.1", "password1");
    let up = c.wait_line("up ", Duration::from_secs(30));
    let Some(up) = up else {
        panic!(
            "no `up` line\n--- dial\n{}\n--- daemon\n{}",
            c.log(),
            d.log()
        );
    };
    assert!(up.contains("peer=192.168.0.1"), "{up}");
    assert!(up.contains("local=192.168.0.100"), "{up}");
    assert!(up.contains("mppe=128-stateless"), "{up}");

    client.sh_ok("ping -c 3 -i 0.2 -W 2 192.168.0.1");

    // 2 MiB each way, checksummed.
    let py = dir.write("xfer.py", XFER_PY);
    let data = dir.path("blob");
    random_file(&data, 2 << 20);
    let want = sha256_file(&data);
    let mut srv = server.spawn(
        "python3",
        &[
            py.to_str().unwrap(),
            "server",
            "192.168.0.1",
            "9000",
            data.to_str().unwrap(),
            "2",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let got_up = client.sh_ok(&format!(
        "timeout 60 python3 {} client 192.168.0.1 9000 U {}",
        py.display(),
        data.display()
    ));
    assert_eq!(got_up.trim(), want, "upload corrupted");
    let got_down = client.sh_ok(&format!(
        "timeout 60 python3 {} client 192.168.0.1 9000 D",
        py.display()
    ));
    assert_eq!(got_down.trim(), want, "download corrupted");
    let _ = srv.kill();
    let _ = srv.wait();

    // The client hangs up politely and exits 0.
    let mut c = c;
    c.signal("TERM");
    let st = c.wait(Duration::from_secs(5));
    assert!(
        st.is_some_and(|s| s.success()),
        "dial exit {st:?}:\n{}",
        c.log()
    );
    assert!(
        !String::from_utf8_lossy(&client.ip(&["-o", "link"]).stdout).contains("vgdial0"),
        "dial left its TUN behind"
    );
    // The server logged the session going down with byte counts.
    let end = Instant::now() + Duration::from_secs(5);
    while !d.log().contains("session down") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.log().contains("session down"), "{}", d.log());

    stop_and_check_clean(d, &server);
}

#[test]
fn wrong_password_fails_with_an_auth_error() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("badpw");
    let (conf, secrets) = seed_config(&dir);
    let server = Netns::new("srv");
    let client = Netns::new("cli");
    server.link_to(&client, "vs0", "10.99.1.1/24", "vc0", "10.99.1.2/24");
    let d = daemon(&server, &conf, &secrets, &[]);
    let mut c = dial(&client, "10.99.1.1", "wrong-password");
    let st = c.wait(Duration::from_secs(30));
    let Some(st) = st else {
        panic!("dial did not give up:\n{}\n{}", c.log(), d.log());
    };
    assert!(!st.success(), "dial succeeded with a wrong password");
    assert!(
        c.log().contains("authentication failed"),
        "no auth error in:\n{}",
        c.log()
    );
    assert!(c.wait_line("up ", Duration::from_millis(1)).is_none());
    stop_and_check_clean(d, &server);
}

#[test]
fn two_clients_behind_one_address_each_get_their_own_session() {
    if !require_root() {
        return;
    }
    // As behind a NAT: same source address, told apart by call id only.
    let dir = TempDir::new("nat");
    let (conf, secrets) = seed_config(&dir);
    let server = Netns::new("srv");
    let client = Netns::new("cli");
    server.link_to(&client, "vs0", "10.99.4.1/24", "vc0", "10.99.4.2/24");
    let d = daemon(&server, &conf, &secrets, &[]);
    let a = dial_tun(&client, "10.99.4.1", "password1", "vgd0");
    let ua = a.wait_line("up ", Duration::from_secs(30));
    let b = dial_tun(&client, "10.99.4.1", "password1", "vgd1");
    let ub = b.wait_line("up ", Duration::from_secs(30));
    let (Some(ua), Some(ub)) = (ua, ub) else {
        panic!("{}\n{}\n{}", a.log(), b.log(), d.log());
    };
    assert!(ua.contains("local=192.168.0.100"), "{ua}");
    assert!(ub.contains("local=192.168.0.101"), "{ub}");
    client.sh_ok("ping -c 2 -i 0.2 -W 2 -I vgd0 192.168.0.1");
    client.sh_ok("ping -c 2 -i 0.2 -W 2 -I vgd1 192.168.0.1");
    // The server reaches each client at its own address.
    server.sh_ok("ping -c 2 -i 0.2 -W 2 192.168.0.100");
    server.sh_ok("ping -c 2 -i 0.2 -W 2 192.168.0.101");
    drop(a);
    drop(b);
    stop_and_check_clean(d, &server);
}

#[test]
fn a_client_with_a_small_mru_gets_its_own_route_mtu() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("mru");
    let (conf, secrets) = seed_config(&dir);
    let server = Netns::new("srv");
    let client = Netns::new("cli");
    server.link_to(&client, "vs0", "10.99.5.1/24", "vc0", "10.99.5.2/24");
    let d = daemon(&server, &conf, &secrets, &[]);
    let c = Proc::spawn(
        &client,
        &[
            "dial",
            "10.99.5.1",
            "--user",
            "user1",
            "--password",
            "password1",
            "--mru",
            "1200",
        ],
        "debug",
    );
    assert!(
        c.wait_line("up ", Duration::from_secs(30)).is_some(),
        "{}\n{}",
        c.log(),
        d.log()
    );
    // The one TUN has MTU 1496; this client's route carries its own (MRU 1200 - MPPE 4).
    let end = Instant::now() + Duration::from_secs(5);
    let mut routes = String::new();
    while Instant::now() < end {
        routes = String::from_utf8_lossy(&server.ip(&["route", "show", "192.168.0.100"]).stdout)
            .into_owned();
        if routes.contains("mtu") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(routes.contains("mtu 1196"), "{routes}");
    // Larger packets still arrive: the kernel fragments them for this route.
    server.sh_ok("ping -c 2 -i 0.2 -W 2 -s 1300 192.168.0.100");
    drop(c);
    stop_and_check_clean(d, &server);
}

#[test]
fn sigterm_hangs_up_a_connected_client() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("term");
    let (conf, secrets) = seed_config(&dir);
    let server = Netns::new("srv");
    let client = Netns::new("cli");
    server.link_to(&client, "vs0", "10.99.2.1/24", "vc0", "10.99.2.2/24");
    let d = daemon(&server, &conf, &secrets, &[]);
    let mut c = dial(&client, "10.99.2.1", "password1");
    assert!(
        c.wait_line("up ", Duration::from_secs(30)).is_some(),
        "{}\n{}",
        c.log(),
        d.log()
    );
    stop_and_check_clean(d, &server);
    // The client saw the hang-up and went away by itself.
    let st = c.wait(Duration::from_secs(10));
    assert!(
        st.is_some(),
        "dial still running after the server stopped:\n{}",
        c.log()
    );
}

#[test]
fn uplink_masquerades_clients_to_the_outside() {
    if !require_root() {
        return;
    }
    masquerade_test(false);
}

#[test]
fn explicit_uplink_flag_works_without_a_default_route() {
    if !require_root() {
        return;
    }
    masquerade_test(true);
}

/// Client → server (uplink `uplink0` to an "outside" namespace) → outside host. With
/// `explicit`, the server has no default route and is told `--uplink uplink0`; otherwise the
/// uplink comes from the default route.
fn masquerade_test(explicit: bool) {
    if Command::new("nft").arg("--version").output().is_err() {
        panic!("nft is missing: install the nftables package (scripts/test.sh does)");
    }
    let dir = TempDir::new("uplink");
    let (conf, secrets) = seed_config(&dir);
    let server = Netns::new("srv");
    let client = Netns::new("cli");
    let outside = Netns::new("out");
    server.link_to(&client, "vs0", "10.99.3.1/24", "vc0", "10.99.3.2/24");
    server.link_to(
        &outside,
        "uplink0",
        "203.0.113.2/24",
        "wan0",
        "203.0.113.1/24",
    );
    outside.ip(&["addr", "add", "203.0.113.80/24", "dev", "wan0"]);
    if !explicit {
        server.ip(&["route", "add", "default", "via", "203.0.113.1"]);
    }
    // The outside host answers with the address it sees and the MSS of the connection.
    let who = dir.write(
        "whoami.py",
        r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("203.0.113.80", 8081)); s.listen(4)
while True:
    c, a = s.accept()
    mss = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    c.sendall(("%s %d" % (a[0], mss)).encode()); c.close()
"#,
    );
    let mut w = outside.spawn("python3", &[who.to_str().unwrap()]);

    let extra: &[&str] = if explicit {
        &["--uplink", "uplink0"]
    } else {
        &[]
    };
    let d = daemon(&server, &conf, &secrets, extra);
    let c = dial(&client, "10.99.3.1", "password1");
    assert!(
        c.wait_line("up ", Duration::from_secs(30)).is_some(),
        "{}\n{}",
        c.log(),
        d.log()
    );
    assert!(
        d.log().contains("uplink0"),
        "firewall did not use uplink0:\n{}",
        d.log()
    );
    client.sh_ok("ip route add 203.0.113.0/24 dev vgdial0");
    let out = client.sh_ok(
        "timeout 20 python3 -c 'import socket; c=socket.create_connection((\"203.0.113.80\",8081),timeout=10); print(c.recv(100).decode())'",
    );
    let mut it = out.split_whitespace();
    assert_eq!(it.next(), Some("203.0.113.2"), "not masqueraded: {out}");
    let mss: u16 = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    assert!(mss > 0 && mss <= 1356, "MSS not clamped: {out}");
    let _ = w.kill();
    let _ = w.wait();
    stop_and_check_clean(d, &server);
}

#[test]
fn idle_hangs_up_and_the_proxyarp_entry_follows_the_session() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("idle");
    let options = dir.write(
        "options.pptpd",
        "name pptpd\nrequire-mschap-v2\nrequire-mppe-128\nproxyarp\nidle 3\n",
    );
    let conf = dir.write(
        "pptpd.conf",
        &format!(
            "option {}\nlocalip 192.168.0.1\nremoteip 192.168.0.100-200\n",
            options.display()
        ),
    );
    let secrets = dir.write("chap-secrets", "user1 pptpd password1 *\n");
    let server = Netns::new("srv");
    let client = Netns::new("cli");
    server.link_to(&client, "vs0", "10.99.8.1/24", "vc0", "10.99.8.2/24");
    // The "LAN" the clients' addresses belong to: an Ethernet-like interface of the server.
    server.sh_ok(
        "ip link add lan0 type veth peer name lan1 && ip addr add 192.168.0.2/24 dev lan0 && ip link set lan1 up && ip link set lan0 up",
    );
    let d = daemon(&server, &conf, &secrets, &["--no-firewall"]);
    let mut c = dial(&client, "10.99.8.1", "password1");
    let Some(up) = c.wait_line("up ", Duration::from_secs(30)) else {
        panic!("no up line\n{}\n{}", c.log(), d.log());
    };
    assert!(up.contains("local=192.168.0.100"), "{up}");
    let proxy =
        |ns: &Netns| String::from_utf8_lossy(&ns.sh("ip neigh show proxy").stdout).into_owned();
    let end = Instant::now() + Duration::from_secs(3);
    while !proxy(&server).contains("192.168.0.100") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let p = proxy(&server);
    assert!(
        p.contains("192.168.0.100 dev lan0"),
        "proxy entries: {p}\n{}",
        d.log()
    );
    // Traffic keeps the session up past the idle time...
    client.sh_ok("ping -c 5 -i 0.8 -W 2 -I vgdial0 192.168.0.1");
    assert!(
        c.wait(Duration::from_millis(10)).is_none(),
        "hung up while busy\n{}",
        d.log()
    );
    // ...silence ends it within idle (3 s) plus a little.
    let status = c.wait(Duration::from_secs(6));
    assert!(
        status.is_some(),
        "dial still up after 6 idle seconds\n{}",
        d.log()
    );
    let log = d.log();
    assert!(log.contains("Idle timeout"), "{log}");
    let end = Instant::now() + Duration::from_secs(3);
    while proxy(&server).contains("192.168.0.100") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !proxy(&server).contains("192.168.0.100"),
        "proxy entry left: {}",
        proxy(&server)
    );
    stop_and_check_clean(d, &server);
}

// ---- operating the daemon (issue 6) ----------------------------------------------------------

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn operate_sessions_terminate_reload_metrics_hooks_and_stop() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("ops");
    let (conf, secrets) = seed_config(&dir);
    std::fs::write(
        &secrets,
        "alice pptpd pa *\nbob pptpd pb *\ncarol pptpd pc *\n",
    )
    .unwrap();
    let hooks_log = dir.path("hooks.log");
    let hook = |name: &str| {
        let p = dir.write(
            name,
            &format!(
                "#!/bin/sh\necho \"{name} $* PEERNAME=$PEERNAME IPLOCAL=$IPLOCAL IPREMOTE=$IPREMOTE DNS1=$DNS1 BYTES_SENT=$BYTES_SENT BYTES_RCVD=$BYTES_RCVD\" >> {}\n",
                hooks_log.display()
            ),
        );
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&p, perm).unwrap();
        p
    };
    let (ip_up, ip_down) = (hook("ip-up"), hook("ip-down"));
    let socket = ctl_socket(&conf);
    let server = Netns::new("srv");
    let client = Netns::new("cli");
    server.link_to(&client, "vs0", "10.99.9.1/24", "vc0", "10.99.9.2/24");
    let d = daemon(
        &server,
        &conf,
        &secrets,
        &[
            "--no-firewall",
            "--metrics",
            "127.0.0.1:9723",
            "--ip-up",
            ip_up.to_str().unwrap(),
            "--ip-down",
            ip_down.to_str().unwrap(),
        ],
    );
    // The control socket is private.
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);

    let mut dials = Vec::new();
    let mut addr = std::collections::HashMap::new();
    for (i, (user, pw)) in [("alice", "pa"), ("bob", "pb"), ("carol", "pc")]
        .into_iter()
        .enumerate()
    {
        let p = common::dial(&client, "10.99.9.1", user, pw, &format!("vgd{i}"));
        let Some(up) = p.wait_line("up ", Duration::from_secs(30)) else {
            panic!("{user}: no up line\n{}\n{}", p.log(), d.log());
        };
        addr.insert(user, up_address(&up));
        dials.push(p);
    }
    // A wrong password: an auth failure for the counters.
    let mut eve = common::dial(&client, "10.99.9.1", "alice", "wrong", "vgd9");
    assert!(eve
        .wait(Duration::from_secs(20))
        .is_some_and(|s| !s.success()));

    let s = sessions_json(&socket);
    assert_eq!(s.len(), 3, "{s:?}");
    for user in ["alice", "bob", "carol"] {
        let e = s
            .iter()
            .find(|e| e["user"] == user)
            .unwrap_or_else(|| panic!("{user}: {s:?}"));
        assert_eq!(e["address"], addr[user].as_str(), "{e}");
        assert_eq!(e["client"], "10.99.9.2");
        assert_eq!(e["state"], "active");
        assert_eq!(e["mppe"], "128-stateless");
    }
    let only = {
        let (ok, out, _) = ctl(&socket, &["sessions", "--json", "--user", "carol"]);
        assert!(ok);
        out
    };
    assert!(only.contains("carol") && !only.contains("alice"), "{only}");
    let (ok, table, _) = ctl(&socket, &["sessions"]);
    assert!(
        ok && table.starts_with("ID ") && table.lines().count() == 4,
        "{table}"
    );
    let (ok, status, err) = ctl(&socket, &["status"]);
    assert!(ok, "{err}");
    assert!(status.contains("3 active, 0 starting"), "{status}");

    // terminate --user bob: exactly bob's dial ends.
    let (ok, out, err) = ctl(&socket, &["terminate", "--user", "bob"]);
    assert!(ok && out.contains("1 session"), "{out}{err}");
    assert!(
        dials[1].wait(Duration::from_secs(5)).is_some(),
        "bob still dialled\n{}",
        d.log()
    );
    assert!(dials[0].wait(Duration::from_millis(10)).is_none());
    assert!(dials[2].wait(Duration::from_millis(10)).is_none());
    client.sh_ok("ping -c 2 -i 0.2 -W 2 -I vgd0 192.168.0.1");
    client.sh_ok("ping -c 2 -i 0.2 -W 2 -I vgd2 192.168.0.1");
    assert_eq!(sessions_json(&socket).len(), 2);
    let (ok, _, err) = ctl(&socket, &["terminate", "--user", "nobody"]);
    assert!(!ok && err.contains("no matching session"), "{err}");

    // Reload admits dave, who gets bob's address back from the pool.
    std::fs::write(
        &secrets,
        "alice pptpd pa *\nbob pptpd pb *\ncarol pptpd pc *\ndave pptpd pd *\n",
    )
    .unwrap();
    let (ok, out, err) = ctl(&socket, &["reload"]);
    assert!(ok, "{out}{err}\n{}", d.log());
    let dave = common::dial(&client, "10.99.9.1", "dave", "pd", "vgd3");
    let Some(up) = dave.wait_line("up ", Duration::from_secs(30)) else {
        panic!("dave: no up line\n{}\n{}", dave.log(), d.log());
    };
    assert_eq!(up_address(&up), addr["bob"], "{up}");
    client.sh_ok("ping -c 2 -i 0.2 -W 2 -I vgd0 192.168.0.1");

    // A broken chap-secrets is refused with its line; sessions stay.
    std::fs::write(&secrets, "alice pptpd pa *\n\"broken\n").unwrap();
    let (ok, _, err) = ctl(&socket, &["reload"]);
    assert!(!ok, "a broken file was accepted");
    assert!(
        err.contains(&format!("{}:2", secrets.display())),
        "no file:line in {err}"
    );
    // SIGHUP with the broken file: logged, still running.
    d.signal("HUP");
    client.sh_ok("ping -c 2 -i 0.2 -W 2 -I vgd0 192.168.0.1");
    client.sh_ok("ping -c 2 -i 0.2 -W 2 -I vgd3 192.168.0.1");
    assert_eq!(sessions_json(&socket).len(), 3);

    // Metrics agree with what happened.
    let m = String::from_utf8_lossy(
        &server
            .sh("curl -s --max-time 5 http://127.0.0.1:9723/metrics")
            .stdout,
    )
    .into_owned();
    assert_eq!(metric(&m, "virtgate_sessions{state=\"active\"}"), 3, "{m}");
    assert_eq!(metric(&m, "virtgate_session_setups_total"), 4, "{m}");
    assert_eq!(metric(&m, "virtgate_auth_failures_total"), 1, "{m}");
    assert_eq!(
        metric(
            &m,
            "virtgate_session_setup_failures_total{reason=\"auth_failed\"}"
        ),
        1,
        "{m}"
    );
    assert_eq!(metric(&m, "virtgate_reloads_total"), 1, "{m}");
    let live: u64 = sessions_json(&socket)
        .iter()
        .map(|e| e["rx_packets"].as_u64().unwrap())
        .sum();
    let total_in = metric(&m, "virtgate_packets_total{direction=\"in\"}");
    assert!(total_in >= live && total_in > 0, "{total_in} < {live}\n{m}");
    assert!(!m.contains("alice"), "no per-user labels");
    let not_found = server.sh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9723/");
    assert_eq!(String::from_utf8_lossy(&not_found.stdout), "404");

    // Hooks ran with pppd's arguments: 4 ups, bob's down with his byte counts.
    let log = std::fs::read_to_string(&hooks_log).unwrap_or_default();
    assert_eq!(log.matches("ip-up vgpptp0 ").count(), 4, "{log}");
    let bob_down = log
        .lines()
        .find(|l| l.starts_with("ip-down") && l.contains("PEERNAME=bob"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        bob_down.contains(&format!("192.168.0.1 {} 10.99.9.2", addr["bob"])),
        "{bob_down}"
    );
    assert!(
        bob_down.contains("DNS1=8.8.8.8") && !bob_down.contains("BYTES_SENT= "),
        "{bob_down}"
    );

    // SIGTERM hangs everybody up politely and cleans up.
    let mut others = vec![dials.swap_remove(2), dials.swap_remove(0), dave];
    stop_and_check_clean(d, &server);
    for p in &mut others {
        assert!(
            p.wait(Duration::from_secs(5)).is_some(),
            "a dial outlived the server"
        );
    }
    assert!(!socket.exists(), "control socket left behind");
}

#[test]
fn ready_is_notified_after_listeners_and_firewall_are_up() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("notify");
    let (conf, secrets) = seed_config(&dir);
    let server = Netns::new("srv");
    let client = Netns::new("cli");
    server.link_to(&client, "vs0", "10.99.10.1/24", "vc0", "10.99.10.2/24");
    server.sh_ok("ip route add default via 10.99.10.2");
    let notify = dir.path("notify");
    let rx = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let socket = ctl_socket(&conf);
    let mut child = server
        .command(BIN)
        .args(["daemon", "--pptpd-conf", conf.to_str().unwrap()])
        .args(["--chap-secrets", secrets.to_str().unwrap()])
        .args(["--socket", socket.to_str().unwrap()])
        .args(["--state-dir", state_dir(&conf).to_str().unwrap()])
        .arg("--no-default-network")
        .env("NOTIFY_SOCKET", &notify)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 128];
    let n = rx.recv(&mut buf).expect("no READY=1 within 10 s");
    assert_eq!(&buf[..n], b"READY=1");
    // At that moment everything is in place already.
    assert!(String::from_utf8_lossy(&server.sh("ss -ltn").stdout).contains(":1723"));
    assert!(
        nft_tables(&server).contains("virtgate"),
        "{}",
        nft_tables(&server)
    );
    assert!(socket.exists());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let n = rx.recv(&mut buf).expect("no STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let end = Instant::now() + Duration::from_secs(5);
    while child.try_wait().unwrap().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    assert!(child.wait().unwrap().success());
}
