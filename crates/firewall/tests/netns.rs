//! Namespace tests (root, iproute2, nftables, python3): the ruleset applied for real, in
//! throwaway network namespaces only. Nothing here runs nft or touches a sysctl in the namespace
//! the test process itself lives in: nft is run through `ip netns exec`, and the forwarding
//! guard runs in a copy of this test binary started inside the server namespace
//! (`server_helper`).

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use virtgate_firewall::{
    coexistence_warnings, render, Firewall, FirewallConfig, FirewallError, Nft, Part, Ruleset,
};
use virtgate_testnet::{require_root, Netns};

/// Fails loudly when nft is missing (CI installs it through scripts/test.sh).
fn require_nft() {
    let ok = Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "nft is missing: these tests need the nftables package (apt-get install -y nftables; \
         scripts/test.sh installs it)"
    );
}

fn nft_in(ns: &Netns) -> Nft {
    Nft::with_command("ip", ["netns", "exec", ns.name(), "nft"])
}

fn pool() -> Vec<Ipv4Addr> {
    (100..=200).map(|i| Ipv4Addr::new(192, 168, 0, i)).collect()
}

fn pptp(tun: &str, uplink: &str) -> Ruleset {
    Ruleset::new(vec![Part::Pptp {
        listen: None,
        pool: pool(),
        tun: tun.into(),
        uplink: uplink.into(),
        mss: 1356,
    }])
}

/// What the "outside" host saw for one connection from the client: (peer address, MSS).
fn fetch_from_client(client: &Netns) -> (String, u32) {
    let out = client.sh_ok(
        "python3 -c 'import socket; c = socket.create_connection((\"203.0.113.1\", 8080), \
         timeout=5); print(c.recv(100).decode().strip())'",
    );
    let mut it = out.split_whitespace();
    let peer = it.next().unwrap_or_default().to_string();
    let mss = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    (peer, mss)
}

const OUTSIDE_SERVER: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("203.0.113.1", 8080))
s.listen(8)
print("listening", flush=True)
for _ in range(20):
    c, a = s.accept()
    mss = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    c.sendall(("%s %d\n" % (a[0], mss)).encode())
    c.close()
"#;

/// client (192.168.0.100, default route via the server) -> server (our ruleset, tun = the veth
/// toward the client, uplink = the veth toward outside, found from the default route) ->
/// outside (203.0.113.1, no route back to 192.168.0.0/24: only masquerade lets replies return).
#[test]
fn client_reaches_outside_masqueraded_with_clamped_mss_and_stop_leaves_nothing() {
    if !require_root() {
        return;
    }
    require_nft();
    let client = Netns::new("fwc");
    let server = Netns::new("fws");
    let outside = Netns::new("fwo");
    client.link_to(
        &server,
        "eth0",
        "192.168.0.100/24",
        "vgtun0",
        "192.168.0.1/24",
    );
    server.link_to(&outside, "up0", "203.0.113.2/24", "wan0", "203.0.113.1/24");
    client.ip(&["link", "set", "eth0", "mtu", "1500"]);
    client.ip(&["route", "add", "default", "via", "192.168.0.1"]);
    server.ip(&["route", "add", "default", "via", "203.0.113.1"]);
    server.sh_ok("echo 0 > /proc/sys/net/ipv4/ip_forward");

    let mut listener = outside.spawn("python3", &["-c", OUTSIDE_SERVER]);
    let mut line = String::new();
    let mut out = BufReader::new(listener.stdout.take().expect("stdout"));
    out.read_line(&mut line).expect("outside server output");
    assert_eq!(line.trim(), "listening");

    // Before: no forwarding, no masquerade -> the client cannot reach the outside.
    let before = client.sh(
        "python3 -c 'import socket; socket.create_connection((\"203.0.113.1\", 8080), timeout=2)'",
    );
    assert!(
        !before.status.success(),
        "reachable without virtgate's rules"
    );

    let exe = std::env::current_exe().expect("test binary");
    let mut helper = server
        .command(exe.to_str().expect("utf-8 path"))
        .args(["server_helper", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env("VGT_FW_HELPER", "1")
        .env("VGT_FW_TUN", "vgtun0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn helper");
    // Lines of the helper's stdout, read on a thread so a stuck helper fails the test instead
    // of hanging it. libtest prints "test server_helper ... " before the helper's own output on
    // the same line, so tags are searched, not expected at the start.
    let helper_out = helper.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in BufReader::new(helper_out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let wait_for = |tag: &str| -> String {
        let mut seen = String::new();
        loop {
            match rx.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(l) => {
                    if let Some(at) = l.find(tag) {
                        return l[at + tag.len()..].trim().to_string();
                    }
                    seen.push_str(&l);
                    seen.push('\n');
                }
                Err(e) => panic!("no {tag} from the helper ({e}); its output:\n{seen}"),
            }
        }
    };
    let ready = wait_for("VGT-READY");
    assert_eq!(ready, "uplink=up0 warnings=0");
    assert_eq!(
        server.sh_ok("cat /proc/sys/net/ipv4/ip_forward").trim(),
        "1"
    );
    assert_eq!(
        server.sh_ok("nft list tables").trim(),
        "table inet virtgate"
    );

    let (peer, mss) = fetch_from_client(&client);
    assert_eq!(
        peer, "203.0.113.2",
        "outside sees the server's uplink address"
    );
    // The SYN left the client with MSS 1460 (MTU 1500); the outside's segment size is what the
    // clamp left (1356, less 12 bytes when TCP timestamps are on).
    assert!((1300..=1356).contains(&mss), "MSS seen outside: {mss}");

    // A client announcing less keeps its value: nothing raises it to 1356 (our rule only
    // matches larger values; the kernel's exthdr code also refuses to raise an MSS, so this
    // guards the behaviour rather than our comparison alone).
    client.ip(&["link", "set", "eth0", "mtu", "1200"]);
    let (_, small) = fetch_from_client(&client);
    assert!(
        (1100..=1160).contains(&small),
        "small MSS seen outside: {small}"
    );

    let mut stdin = helper.stdin.take().expect("stdin");
    stdin.write_all(b"stop\n").expect("tell helper to stop");
    drop(stdin);
    wait_for("VGT-DONE");
    let status = helper.wait().expect("helper exit");
    assert!(status.success(), "helper failed");

    assert_eq!(server.sh_ok("nft list tables").trim(), "", "no table left");
    assert_eq!(
        server.sh_ok("cat /proc/sys/net/ipv4/ip_forward").trim(),
        "0",
        "forwarding back to its old value"
    );
    let _ = listener.kill();
    let _ = listener.wait();
}

/// Runs inside the server namespace, started by the test above: the daemon's calls,
/// `Firewall::start` (uplink from the default route, forwarding on) and `Firewall::stop`.
#[test]
#[ignore = "started inside a namespace by client_reaches_outside_..."]
fn server_helper() {
    if std::env::var("VGT_FW_HELPER").as_deref() != Ok("1") {
        return;
    }
    let tun = std::env::var("VGT_FW_TUN").expect("VGT_FW_TUN");
    let config = FirewallConfig::default();
    let uplink = config.uplink().expect("uplink from the default route");
    let ruleset = pptp(&tun, &uplink);
    let fw = Firewall::start(&config, &Nft::new(), &ruleset)
        .expect("start")
        .expect("enabled");
    println!("VGT-READY uplink={uplink} warnings={}", fw.warnings().len());
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    fw.stop().expect("stop");
    println!("VGT-DONE");
}

/// The kernel refuses one rule (masquerade in a filter chain) after nft parsed it: the whole
/// batch is aborted, so a fresh namespace has no table, and an older table stays as it was.
#[test]
fn refused_rule_leaves_no_table_and_keeps_the_old_one() {
    if !require_root() {
        return;
    }
    require_nft();
    let ns = Netns::new("fwbad");
    let nft = nft_in(&ns);
    let rs = pptp("vgt0", "eth0");
    let good = render(&rs).expect("render");
    let anchor = "type filter hook forward priority filter; policy accept;\n";
    let at = good.find(anchor).expect("forward chain") + anchor.len();
    let bad = format!(
        "{}\t\toifname \"eth0\" masquerade\n{}",
        &good[..at],
        &good[at..]
    );
    let bad_line = bad[..at].lines().count() + 1;

    let err = nft.apply_script(&rs.table, &bad).unwrap_err();
    match &err {
        FirewallError::Rejected { line, rule, .. } => {
            assert_eq!(*line, Some(bad_line));
            assert_eq!(rule.as_deref(), Some("oifname \"eth0\" masquerade"));
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.contains("or disable virtgate's firewall with --no-firewall"),
        "{text}"
    );
    assert_eq!(ns.sh_ok("nft list tables").trim(), "", "half-applied table");

    let applied = nft.apply(&rs).expect("good ruleset");
    let before = ns.sh_ok("nft list ruleset");
    assert!(before.contains("masquerade comment \"pptp: masquerade\""));
    assert!(nft.apply_script(&rs.table, &bad).is_err());
    assert_eq!(ns.sh_ok("nft list ruleset"), before, "old table changed");
    applied.remove().expect("remove");
    assert_eq!(ns.sh_ok("nft list tables").trim(), "");
}

/// Docker's table is there: apply and remove leave it byte-identical, the live coexistence
/// check asks for exactly the rules that silence it, and a table left by a "crash" is removed
/// by `remove_table` at the next start.
#[test]
fn other_tables_untouched_warnings_fixable_and_stale_table_removed() {
    if !require_root() {
        return;
    }
    require_nft();
    let ns = Netns::new("fwco");
    let nft = nft_in(&ns);
    let docker = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/docker.nft");
    ns.sh_ok(&format!("nft -f {docker}"));
    let foreign = || ns.sh_ok("nft list table ip filter; nft list table ip nat");
    let docker_before = foreign();

    let rs = pptp("vc0", "up0");
    let applied = nft.apply(&rs).expect("apply");
    let json = nft.list_ruleset_json().expect("list");
    let warnings = coexistence_warnings(&json, &rs).expect("parse");
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    for w in &warnings {
        assert_eq!((w.table.as_str(), w.chain.as_str()), ("filter", "FORWARD"));
        let cmd = &w.fix[0];
        assert!(
            cmd.starts_with("nft insert rule ip filter DOCKER-USER "),
            "{cmd}"
        );
        ns.sh_ok(cmd);
    }
    let json = nft.list_ruleset_json().expect("list");
    let after_fix = coexistence_warnings(&json, &rs).expect("parse");
    assert!(after_fix.is_empty(), "{after_fix:#?}");
    ns.sh_ok(
        "nft flush chain ip filter DOCKER-USER; nft add rule ip filter DOCKER-USER counter return",
    );

    // Re-applying replaces our table (no duplicate rules), the foreign ones are as they were.
    let once = ns.sh_ok("nft list table inet virtgate");
    let applied_again = nft.apply(&rs).expect("apply again");
    assert_eq!(ns.sh_ok("nft list table inet virtgate"), once);
    std::mem::forget(applied);
    std::mem::forget(applied_again); // a crash: nothing removed our table

    assert!(ns.sh_ok("nft list tables").contains("table inet virtgate"));
    nft.remove_table(&rs.table).expect("remove stale");
    nft.remove_table(&rs.table).expect("removing twice is fine");
    let tables = ns.sh_ok("nft list tables");
    assert_eq!(tables.trim(), "table ip filter\ntable ip nat");
    // DOCKER-USER was changed and put back by hand above; everything else is untouched.
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("counter packets"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&foreign()), strip(&docker_before));
}
