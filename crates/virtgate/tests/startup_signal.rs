//! Namespace tests (root): a stop signal that arrives while `virtgate daemon` is still starting
//! its virtual networks — before the daemon's own signal handlers exist — stops what was
//! started (bridges, the nftables table, `ip_forward`) and the process exits 0. Before, the
//! signal's default action ended the process and left the bridges and the table behind.
//!
//! The daemon gets many networks, so start-up takes a while; the signal is sent as soon as the
//! first bridge exists, or again and again from the moment the process is spawned.

mod common;

use std::time::{Duration, Instant};

use common::{host_ns, write_config, Proc, TempDir};
use virtgate_testnet::{require_root, Netns};

/// Networks per daemon: enough that start-up is still going when the first bridge appears.
const NETWORKS: u8 = 24;

/// `virtgate daemon` arguments with [`NETWORKS`] NAT networks `sig0..` on bridges `vgsig0..`.
fn daemon_args(dir: &TempDir) -> Vec<String> {
    let (conf, secrets) = write_config(
        dir,
        "remoteip 192.168.0.100-200\n",
        "",
        "user1\tpptpd\tpassword1\t*\n",
    );
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let mut args: Vec<String> = vec![
        "daemon".into(),
        "--pptpd-conf".into(),
        s(&conf),
        "--chap-secrets".into(),
        s(&secrets),
        "--socket".into(),
        s(&dir.path("virtgate.sock")),
        "--state-dir".into(),
        s(&dir.path("state")),
        "--no-default-network".into(),
    ];
    for i in 0..NETWORKS {
        let xml = format!(
            "<network>\n  <name>sig{i}</name>\n  <forward mode='nat'/>\n  \
             <bridge name='vgsig{i}' stp='off' delay='0'/>\n  \
             <ip address='10.90.{i}.1' netmask='255.255.255.0'>\n    <dhcp>\n      \
             <range start='10.90.{i}.10' end='10.90.{i}.50'/>\n    </dhcp>\n  </ip>\n\
             </network>\n"
        );
        let path = dir.write(&format!("sig{i}.xml"), &xml);
        args.push("--network-xml".into());
        args.push(s(&path));
    }
    args
}

/// Names of the bridges in `ns`.
fn bridges(ns: &Netns) -> Vec<String> {
    let o = ns.sh("ip -o link show type bridge");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

fn table_exists(ns: &Netns) -> bool {
    ns.sh("nft list table inet virtgate").status.success()
}

fn ip_forward(ns: &Netns) -> String {
    ns.sh_ok("cat /proc/sys/net/ipv4/ip_forward")
}

/// Waits for the exit and checks that nothing is left in `ns`.
fn assert_exited_clean(ns: &Netns, d: &mut Proc, forward_before: &str) {
    let st = d
        .wait(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("daemon did not exit after the signal:\n{}", d.log()));
    assert!(
        st.success(),
        "daemon ended with {st} (killed by the signal?):\n{}",
        d.log()
    );
    assert_eq!(
        bridges(ns),
        Vec::<String>::new(),
        "bridges left:\n{}",
        d.log()
    );
    assert!(!table_exists(ns), "table inet virtgate left:\n{}", d.log());
    assert_eq!(ip_forward(ns), forward_before, "ip_forward not restored");
}

/// Waits (polling every 2 ms) until the daemon has created its first bridge.
fn wait_first_bridge(ns: &Netns, d: &mut Proc) {
    let end = Instant::now() + Duration::from_secs(20);
    while bridges(ns).is_empty() {
        assert!(Instant::now() < end, "no bridge appeared:\n{}", d.log());
        if let Ok(Some(st)) = d.child.try_wait() {
            panic!("daemon exited ({st}) before its first bridge:\n{}", d.log());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A daemon with [`NETWORKS`] networks spawned in a fresh namespace, and `ip_forward` before.
fn spawn_daemon(tag: &str) -> (Netns, TempDir, Proc, String) {
    let ns = host_ns(tag);
    let dir = TempDir::new(tag);
    let args = daemon_args(&dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let forward_before = ip_forward(&ns);
    let d = Proc::spawn(&ns, &args, "info");
    (ns, dir, d, forward_before)
}

fn signal_once_the_first_bridge_exists(sig: &str, tag: &str) {
    let (ns, _dir, mut d, forward_before) = spawn_daemon(tag);
    wait_first_bridge(&ns, &mut d);
    d.signal(sig);
    assert_exited_clean(&ns, &mut d, &forward_before);
    // The signal came while networks were starting, and that is what the log says.
    assert_eq!(
        d.count(&format!("{sig} during start-up: stopping what was started")),
        1,
        "{}",
        d.log()
    );
    assert_eq!(d.count("virtgate PPTP server up"), 0, "{}", d.log());
}

#[test]
fn sigterm_while_networks_start_removes_what_was_started_and_exits_0() {
    if !require_root() {
        return;
    }
    signal_once_the_first_bridge_exists("TERM", "sigterm-start");
}

#[test]
fn sigint_while_networks_start_removes_what_was_started_and_exits_0() {
    if !require_root() {
        return;
    }
    signal_once_the_first_bridge_exists("INT", "sigint-start");
}

/// Whether process `pid` blocks or catches SIGTERM (`SigBlk`/`SigCgt` in /proc/PID/status):
/// from then on the signal can no longer end it where it stands.
fn sigterm_held(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = 1u64 << (15 - 1);
    status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("SigBlk:")
                .or_else(|| l.strip_prefix("SigCgt:"))
        })
        .filter_map(|v| u64::from_str_radix(v.trim(), 16).ok())
        .any(|mask| mask & bit != 0)
}

/// SIGTERM every few milliseconds from the moment the process holds it (its first lines of
/// main): whichever phase each one lands in (reading the configuration, between networks,
/// around the firewall, while the PPTP side binds its sockets, after), the daemon exits 0 and
/// leaves nothing.
#[test]
fn sigterm_again_and_again_from_spawn_leaves_nothing() {
    if !require_root() {
        return;
    }
    let (ns, _dir, mut d, forward_before) = spawn_daemon("sigterm-storm");
    let end = Instant::now() + Duration::from_secs(30);
    while !sigterm_held(d.child.id()) {
        assert!(Instant::now() < end, "SIGTERM never held:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(1));
    }
    while d.child.try_wait().ok().flatten().is_none() && Instant::now() < end {
        d.signal("TERM");
        std::thread::sleep(Duration::from_millis(3));
    }
    assert_exited_clean(&ns, &mut d, &forward_before);
}

/// SIGHUP (reload) during start-up is not a reason to end: the daemon comes up, and its
/// SIGTERM then removes everything as usual.
#[test]
fn sighup_while_networks_start_is_ignored() {
    if !require_root() {
        return;
    }
    let (ns, _dir, mut d, forward_before) = spawn_daemon("sighup-start");
    wait_first_bridge(&ns, &mut d);
    d.signal("HUP");
    assert!(
        d.wait_count("virtgate PPTP server up", 1, Duration::from_secs(30)),
        "daemon did not come up after SIGHUP during start-up:\n{}",
        d.log()
    );
    assert_eq!(bridges(&ns).len(), usize::from(NETWORKS), "{}", d.log());
    assert!(table_exists(&ns));
    d.signal("TERM");
    assert_exited_clean(&ns, &mut d, &forward_before);
}
