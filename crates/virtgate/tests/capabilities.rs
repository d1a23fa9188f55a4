//! After start-up the daemon keeps only CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE
//! (issue 7, "secure defaults"), as a namespace test against the real daemon (root), with its
//! firewall on: every task of the process shows exactly those three in /proc/PID/task/*/status
//! (effective, permitted, bounding, inheritable, ambient), and what the daemon does after
//! start-up still works — a reload that adds a user, a network started over the control socket
//! (bridge and address over netlink, DHCP/DNS sockets on ports 67/53, its nftables part through
//! `nft`), a session with an ip-up hook that itself changes an address, and a clean stop.

mod common;

use std::time::Duration;

use common::*;
use virtgate_testnet::{require_root, Netns};

/// CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13), as /proc prints a set.
const KEPT: &str = "0000000000003400";

/// The capability lines of every task of `pid`.
fn task_caps(pid: u32) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        out.push(caps_of(&status));
    }
    out
}

fn caps_of(status: &str) -> Vec<(String, String)> {
    status
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.starts_with("Cap")
                .then(|| (k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The value of capability set `set` (`CapEff`, ...) in `caps`.
fn cap<'a>(caps: &'a [(String, String)], set: &str) -> Option<&'a str> {
    caps.iter().find(|(k, _)| k == set).map(|(_, v)| v.as_str())
}

#[test]
fn daemon_keeps_only_the_network_capabilities_and_still_reloads_starts_networks_and_runs_hooks() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("caps");
    let (conf, secrets) =
        write_config(&dir, "remoteip 192.168.0.100-200\n", "", "ann pptpd pa *\n");
    let out = dir.path("hook.out");
    let hook = dir.write(
        "ip-up",
        &format!(
            "#!/bin/sh\ngrep '^Cap' /proc/self/status > {o}.caps\n\
             ip addr add 10.201.0.1/32 dev lo && echo added > {o}\n",
            o = out.display()
        ),
    );
    let mut perm = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&hook, perm).unwrap();
    let net_xml = dir.write(
        "capnet.xml",
        "<network>\n  <name>capnet</name>\n  <forward mode='nat'/>\n  \
         <bridge name='vgcap0' stp='off' delay='0'/>\n  \
         <ip address='10.74.0.1' netmask='255.255.255.0'>\n    <dhcp>\n      \
         <range start='10.74.0.10' end='10.74.0.50'/>\n    </dhcp>\n  </ip>\n</network>\n",
    );

    // An uplink with a default route (the firewall's PPTP part masquerades toward it), leading
    // nowhere, and the client's link.
    let server = host_ns("csrv");
    let client = Netns::new("ccli");
    server.link_to(&client, "vs0", "10.97.8.1/24", "vc0", "10.97.8.2/24");

    let socket = ctl_socket(&conf);
    let d = spawn_daemon(
        &server,
        &conf,
        &secrets,
        "info",
        &["--no-default-network", "--ip-up", hook.to_str().unwrap()],
    );
    assert!(
        d.wait_count("capabilities dropped", 1, Duration::from_secs(15)),
        "{}",
        d.log()
    );
    let pid = d.child.id();

    // Every task: exactly the three, in every set.
    let tasks = task_caps(pid);
    assert!(!tasks.is_empty());
    for caps in &tasks {
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(
                cap(caps, set),
                Some(KEPT),
                "{set} of a task of {pid}: {caps:?}"
            );
        }
    }

    // A reload (files re-read as the daemon's reduced self) that adds a user.
    std::fs::write(&secrets, "ann pptpd pa *\nbob pptpd pb *\n").unwrap();
    let (ok, o, e) = ctl(&socket, &["reload"]);
    assert!(ok, "{o}{e}\n{}", d.log());

    // A network started now: bridge, address, DHCP on 67 and DNS on 53, its nftables part.
    for args in [
        &["net", "define", net_xml.to_str().unwrap()][..],
        &["net", "start", "capnet"],
    ] {
        let (ok, o, e) = ctl(&socket, args);
        assert!(ok, "{args:?}: {o}{e}\n{}", d.log());
    }
    let addr =
        String::from_utf8_lossy(&server.sh("ip -4 addr show dev vgcap0").stdout).into_owned();
    assert!(addr.contains("inet 10.74.0.1/24"), "{addr}");
    let ss = String::from_utf8_lossy(&server.sh("ss -lnup").stdout).into_owned();
    assert!(
        ss.contains("10.74.0.1:53") || ss.contains(":67"),
        "no DHCP/DNS socket: {ss}"
    );
    let table =
        String::from_utf8_lossy(&server.sh("nft list table inet virtgate").stdout).into_owned();
    assert!(table.contains("net capnet:"), "{table}\n{}", d.log());

    // The new user dials in; the ip-up hook runs with the three and changes an address.
    let (c, _) = dial_up(&client, "10.97.8.1", "bob", "pb", "vgd0", &d);
    assert!(
        wait_until(Duration::from_secs(10), || out.exists()),
        "the hook did not add its address:\n{}",
        d.log()
    );
    let hook_caps = caps_of(&std::fs::read_to_string(dir.path("hook.out.caps")).unwrap());
    for set in ["CapEff", "CapBnd"] {
        assert_eq!(
            cap(&hook_caps, set),
            Some(KEPT),
            "{set} of the hook: {hook_caps:?}"
        );
    }
    let lo = String::from_utf8_lossy(&server.sh("ip -4 addr show dev lo").stdout).into_owned();
    assert!(lo.contains("10.201.0.1/32"), "{lo}");
    hang_up(c);

    // Stopping the network and the daemon still works (bridge and table removed).
    let (ok, o, e) = ctl(&socket, &["net", "stop", "capnet"]);
    assert!(ok, "{o}{e}\n{}", d.log());
    assert!(!server.sh("ip link show dev vgcap0").status.success());
    stop(d);
    assert!(
        !server.sh("nft list table inet virtgate").status.success(),
        "the table outlived the daemon"
    );
}
