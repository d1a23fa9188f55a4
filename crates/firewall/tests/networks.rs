//! Namespace tests for virtual networks (root, iproute2, nftables, python3): libvirt's rules
//! per forward mode, applied for real in throwaway namespaces. nft only ever runs through
//! `ip netns exec HOST`; sysctls are written inside the host namespace only.
//!
//! The lab, like check-vmnet.sh: a "host" namespace with bridge `vbr0` holding
//! 192.168.122.1/24 and an uplink `up0` (203.0.113.2/24, default route via 203.0.113.1); two
//! "guest" namespaces plugged into the bridge by veth (guest end `eth0` with 192.168.122.11
//! and .12, default route via .1; host end enslaved to `vbr0`); an "outside" namespace on the
//! uplink (203.0.113.1) that reports the peer address and port it sees.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Output};

use virtgate_firewall::{render, Applied, NetForward, Nft, Part, Ruleset};
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

/// TCP and UDP on ADDR:PORT; each answers with the peer's "address port" as it saw them.
const WHOAMI: &str = r#"
import socket, sys, threading
addr, port = sys.argv[1], int(sys.argv[2])
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((addr, port))
t.listen(16)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((addr, port))
def udp():
    while True:
        data, peer = u.recvfrom(100)
        u.sendto(("%s %d" % peer).encode(), peer)
threading.Thread(target=udp, daemon=True).start()
print("listening", flush=True)
while True:
    c, peer = t.accept()
    c.sendall(("%s %d\n" % peer).encode())
    c.close()
"#;

/// `PROTO HOST PORT SPORT`: asks a WHOAMI server from source port SPORT (0: any) and prints
/// its answer; exits non-zero with Python's error (e.g. "Connection refused") otherwise.
const ASK: &str = r#"
import socket, sys
proto, host, port, sport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.settimeout(3)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", sport))
if proto == "tcp":
    s.connect((host, port))
    print(s.recv(100).decode().strip())
else:
    s.sendto(b"who", (host, port))
    print(s.recvfrom(100)[0].decode().strip())
"#;

struct Lab {
    host: Netns,
    guests: [Netns; 2],
    outside: Netns,
}

const BRIDGE: &str = "vbr0";
const GUEST: [&str; 2] = ["192.168.122.11", "192.168.122.12"];

impl Lab {
    fn new(tag: &str) -> Lab {
        let host = Netns::new(&format!("{tag}h"));
        let guests = [
            Netns::new(&format!("{tag}a")),
            Netns::new(&format!("{tag}b")),
        ];
        let outside = Netns::new(&format!("{tag}o"));
        host.ip(&[
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ]);
        host.ip(&["addr", "add", "192.168.122.1/24", "dev", BRIDGE]);
        host.ip(&["link", "set", BRIDGE, "up"]);
        for (i, guest) in guests.iter().enumerate() {
            let port = format!("vg{i}");
            host.ip(&[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                guest.name(),
            ]);
            host.ip(&["link", "set", &port, "master", BRIDGE]);
            host.ip(&["link", "set", &port, "up"]);
            guest.ip(&["addr", "add", &format!("{}/24", GUEST[i]), "dev", "eth0"]);
            guest.ip(&["link", "set", "eth0", "up"]);
            guest.ip(&["route", "add", "default", "via", "192.168.122.1"]);
        }
        host.link_to(&outside, "up0", "203.0.113.2/24", "wan0", "203.0.113.1/24");
        host.ip(&["route", "add", "default", "via", "203.0.113.1"]);
        host.sh_ok("echo 1 > /proc/sys/net/ipv4/ip_forward");
        // Bridged frames through the IPv4 hooks, as on this project's hosts: without it the
        // guest-to-guest checks below would prove nothing.
        let brnf = "/proc/sys/net/bridge/bridge-nf-call-iptables";
        let set = host.sh(&format!("echo 1 > {brnf} && cat {brnf}"));
        assert_eq!(
            String::from_utf8_lossy(&set.stdout).trim(),
            "1",
            "these tests need br_netfilter (bridge-nf-call-iptables) in the host namespace: {}",
            String::from_utf8_lossy(&set.stderr)
        );
        Lab {
            host,
            guests,
            outside,
        }
    }

    fn nft(&self) -> Nft {
        Nft::with_command("ip", ["netns", "exec", self.host.name(), "nft"])
    }

    /// The outside host learns the way back to the guests (needed for routed mode, and to try
    /// connections from outside in NAT mode).
    fn route_back(&self) {
        self.outside
            .ip(&["route", "add", "192.168.122.0/24", "via", "203.0.113.2"]);
    }

    fn tables(&self) -> String {
        self.host.sh_ok("nft list tables").trim().to_string()
    }
}

/// A server process, killed and reaped when the test is done with it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts WHOAMI in `ns` on addr:port and waits until it listens.
fn whoami(ns: &Netns, addr: &str, port: u16) -> Server {
    let mut server = Server(ns.spawn("python3", &["-c", WHOAMI, addr, &port.to_string()]));
    let mut line = String::new();
    let out = server.0.stdout.take().expect("stdout");
    BufReader::new(out)
        .read_line(&mut line)
        .expect("whoami output");
    assert_eq!(
        line.trim(),
        "listening",
        "whoami on {addr}:{port} did not start"
    );
    server
}

fn ask(ns: &Netns, proto: &str, host: &str, port: u16, sport: u16) -> Output {
    ns.command("python3")
        .args([
            "-c",
            ASK,
            proto,
            host,
            &port.to_string(),
            &sport.to_string(),
        ])
        .output()
        .expect("spawn python3")
}

/// What the server saw: (address, port). Panics with the client's error when it got no answer.
fn seen(ns: &Netns, proto: &str, host: &str, port: u16, sport: u16) -> (String, u16) {
    let out = ask(ns, proto, host, port, sport);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{proto} to {host}:{port} from {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut it = text.split_whitespace();
    let addr = it.next().unwrap_or_default().to_string();
    let port = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (addr, port)
}

/// A TCP connection that our reject refuses at once (ICMP port unreachable -> ECONNREFUSED),
/// not one that times out or succeeds.
fn refused(ns: &Netns, host: &str, port: u16) {
    let out = ask(ns, "tcp", host, port, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Connection refused"),
        "tcp to {host}:{port} from {} should be refused: {}{err}",
        ns.name(),
        String::from_utf8_lossy(&out.stdout)
    );
}

fn ping(ns: &Netns, to: &str) -> bool {
    ns.sh(&format!("ping -c1 -W2 {to}")).status.success()
}

fn network(forward: NetForward) -> Part {
    Part::Network {
        name: "default".into(),
        bridge: BRIDGE.into(),
        subnet: Ipv4Addr::new(192, 168, 122, 1),
        prefix: 24,
        forward,
    }
}

fn nat() -> NetForward {
    NetForward::Nat {
        uplink: None,
        ports: None,
        addresses: None,
    }
}

/// A PPTP part and a second (isolated) network share the table, as in the daemon.
fn with_neighbours(part: Part) -> Ruleset {
    Ruleset::new(vec![
        Part::Pptp {
            listen: None,
            pool: (100..=200).map(|i| Ipv4Addr::new(192, 168, 0, i)).collect(),
            tun: "vgt0".into(),
            uplink: "up0".into(),
            mss: 1356,
        },
        part,
        Part::Network {
            name: "lab".into(),
            bridge: "vbr9".into(),
            subnet: Ipv4Addr::new(10, 9, 0, 1),
            prefix: 24,
            forward: NetForward::Isolated,
        },
    ])
}

fn remove_leaves_nothing(lab: &Lab, applied: Applied) {
    applied.remove().expect("remove");
    assert_eq!(lab.tables(), "", "a table was left behind");
}

#[test]
fn nat_masquerades_to_high_ports_guests_meet_and_outside_cannot_get_in() {
    if !require_root() {
        return;
    }
    require_nft();
    let lab = Lab::new("nn");
    let _outside = whoami(&lab.outside, "203.0.113.1", 7000);
    let _guest = whoami(&lab.guests[0], "0.0.0.0", 8080);
    let [a, b] = &lab.guests;

    let mut applied = lab
        .nft()
        .apply(&with_neighbours(network(nat())))
        .expect("apply");
    // The outside has no route to 192.168.122.0/24: answers come back only through NAT.
    // Guests ask from privileged source ports; libvirt's `masquerade to :1024-65535` moves
    // them up (plain masquerade would keep 555 and 556, the ports being free).
    let (addr, port) = seen(a, "tcp", "203.0.113.1", 7000, 555);
    assert_eq!(
        addr, "203.0.113.2",
        "outside sees the host's uplink address"
    );
    assert!(
        port >= 1024,
        "TCP source port {port} not mapped into 1024-65535"
    );
    let (addr, port) = seen(b, "udp", "203.0.113.1", 7000, 556);
    assert_eq!(addr, "203.0.113.2");
    assert!(
        port >= 1024,
        "UDP source port {port} not mapped into 1024-65535"
    );
    assert!(ping(a, "203.0.113.1"), "ICMP is masqueraded too");
    assert!(
        ping(a, GUEST[1]) && ping(b, GUEST[0]),
        "guests reach each other"
    );

    // The guest-to-guest rule is what lets them meet: without it our own "nothing else in"
    // reject catches the bridged frames.
    let script = render(&with_neighbours(network(nat()))).expect("render");
    let no_cross: String = script
        .lines()
        .filter(|l| !l.contains("net default: guest to guest"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(no_cross, script);
    let variant = lab
        .nft()
        .apply_script("virtgate", &no_cross)
        .expect("apply");
    assert!(
        !ping(a, GUEST[1]),
        "bridged frames do not pass our forward chain"
    );
    // And the port check above sees what the port range changes: plain masquerade keeps a
    // free privileged port.
    let plain = script.replace("masquerade to :1024-65535", "masquerade");
    assert_ne!(plain, script);
    let again = lab.nft().apply_script("virtgate", &plain).expect("apply");
    assert_eq!(seen(a, "tcp", "203.0.113.1", 7000, 557).1, 557);
    applied
        .replace(&with_neighbours(network(nat())))
        .expect("replace");
    assert!(ping(a, GUEST[1]));
    // All three handles name the same table: one remove at the end covers them.
    std::mem::forget(variant);
    std::mem::forget(again);

    // From outside, with a route: nothing gets in, refused at once by our reject; the same
    // connection works as soon as the network's rules are gone.
    lab.route_back();
    refused(&lab.outside, GUEST[0], 8080);
    applied
        .replace(&Ruleset::new(vec![]))
        .expect("replace with nothing");
    assert_eq!(
        seen(&lab.outside, "tcp", GUEST[0], 8080, 0).0,
        "203.0.113.1"
    );
    remove_leaves_nothing(&lab, applied);
}

#[test]
fn routed_network_keeps_guest_addresses_both_ways() {
    if !require_root() {
        return;
    }
    require_nft();
    let lab = Lab::new("nr");
    let _outside = whoami(&lab.outside, "203.0.113.1", 7000);
    let _guest = whoami(&lab.guests[0], "0.0.0.0", 8080);
    lab.route_back();
    let [a, b] = &lab.guests;

    let route = NetForward::Route {
        uplink: Some("up0".into()),
    };
    let applied = lab
        .nft()
        .apply(&with_neighbours(network(route)))
        .expect("apply");
    assert_eq!(
        seen(a, "tcp", "203.0.113.1", 7000, 555),
        (GUEST[0].to_string(), 555),
        "outside sees the guest itself"
    );
    assert_eq!(seen(b, "udp", "203.0.113.1", 7000, 556).0, GUEST[1]);
    assert_eq!(
        seen(&lab.outside, "tcp", GUEST[0], 8080, 0).0,
        "203.0.113.1",
        "routed in from the uplink"
    );
    assert!(ping(a, GUEST[1]), "guests reach each other");
    remove_leaves_nothing(&lab, applied);
}

#[test]
fn isolated_network_reaches_host_services_and_each_other_only() {
    if !require_root() {
        return;
    }
    require_nft();
    let lab = Lab::new("ni");
    let _outside = whoami(&lab.outside, "203.0.113.1", 7000);
    let _guest = whoami(&lab.guests[0], "0.0.0.0", 8080);
    // The host's DNS and DHCP ports, as the network's own servers would hold them.
    let _dns = whoami(&lab.host, "192.168.122.1", 53);
    let _dhcp = whoami(&lab.host, "0.0.0.0", 67);
    lab.route_back();
    let [a, b] = &lab.guests;
    // Before: forwarding is on and nothing filters, so the guest does reach the outside.
    assert_eq!(seen(a, "tcp", "203.0.113.1", 7000, 0).0, GUEST[0]);

    let applied = lab
        .nft()
        .apply(&with_neighbours(network(NetForward::Isolated)))
        .expect("apply");
    refused(a, "203.0.113.1", 7000);
    refused(&lab.outside, GUEST[0], 8080);
    assert!(!ping(b, "203.0.113.1"), "no ICMP out either");
    assert_eq!(
        seen(a, "udp", "192.168.122.1", 53, 40053),
        (GUEST[0].to_string(), 40053),
        "DNS over UDP to the host"
    );
    assert_eq!(seen(b, "tcp", "192.168.122.1", 53, 0).0, GUEST[1]);
    assert_eq!(seen(b, "udp", "192.168.122.1", 67, 68).0, GUEST[1]);
    assert!(ping(a, GUEST[1]) && ping(b, "192.168.122.1"));
    remove_leaves_nothing(&lab, applied);
}

#[test]
fn open_network_gets_no_rules_and_traffic_is_unfiltered() {
    if !require_root() {
        return;
    }
    require_nft();
    let lab = Lab::new("no");
    let _outside = whoami(&lab.outside, "203.0.113.1", 7000);
    let _guest = whoami(&lab.guests[0], "0.0.0.0", 8080);
    lab.route_back();

    let applied = lab
        .nft()
        .apply(&with_neighbours(network(NetForward::Open)))
        .expect("apply");
    let table = lab.host.sh_ok("nft list table inet virtgate");
    assert!(!table.contains(BRIDGE), "{table}");
    assert!(table.contains("vbr9"), "the other network keeps its rules");
    assert_eq!(
        seen(&lab.guests[0], "tcp", "203.0.113.1", 7000, 555),
        (GUEST[0].to_string(), 555)
    );
    assert_eq!(
        seen(&lab.outside, "tcp", GUEST[0], 8080, 0).0,
        "203.0.113.1"
    );
    remove_leaves_nothing(&lab, applied);
}

/// tests/data/networks.nft (PPTP plus NAT with uplink, ports and SNAT addresses, routed,
/// isolated, open) goes into the kernel in one transaction and `nft list` prints our table back
/// byte for byte; stopping networks is one replace; remove leaves nothing.
#[test]
fn every_mode_in_one_table_lists_back_byte_for_byte() {
    if !require_root() {
        return;
    }
    require_nft();
    let ns = Netns::new("nall");
    let nft = Nft::with_command("ip", ["netns", "exec", ns.name(), "nft"]);
    let golden = include_str!("data/networks.nft");
    let a = |s: &str| s.parse::<Ipv4Addr>().expect("address");
    let net = |name: &str, bridge: &str, subnet: &str, prefix, forward| Part::Network {
        name: name.into(),
        bridge: bridge.into(),
        subnet: a(subnet),
        prefix,
        forward,
    };
    let mut parts = vec![
        Part::Pptp {
            listen: None,
            pool: (100..=200).map(|i| Ipv4Addr::new(192, 168, 0, i)).collect(),
            tun: "vgt0".into(),
            uplink: "eth0".into(),
            mss: 1356,
        },
        net(
            "default",
            "virbr0",
            "192.168.122.1",
            24,
            NetForward::Nat {
                uplink: Some("eth0".into()),
                ports: Some((2000, 3000)),
                addresses: Some((a("203.0.113.5"), a("203.0.113.6"))),
            },
        ),
        net(
            "routed",
            "virbr1",
            "10.1.0.1",
            16,
            NetForward::Route { uplink: None },
        ),
        net("lan", "virbr2", "10.2.0.1", 24, NetForward::Isolated),
        net("open", "virbr3", "10.3.0.1", 24, NetForward::Open),
    ];
    let all = Ruleset::new(parts.clone());
    assert_eq!(render(&all).expect("render"), golden);
    let mut applied = nft.apply(&all).expect("apply");
    let table_text = |script: &str| {
        let at = script.find("table inet virtgate {").expect("table");
        script[at..].to_string()
    };
    assert_eq!(ns.sh_ok("nft list table inet virtgate"), table_text(golden));

    // "net stop routed": the daemon replaces the table with the remaining parts.
    parts.remove(2);
    let fewer = Ruleset::new(parts);
    applied.replace(&fewer).expect("replace");
    let listed = ns.sh_ok("nft list table inet virtgate");
    assert_eq!(listed, table_text(&render(&fewer).expect("render")));
    assert!(!listed.contains("virbr1") && listed.contains("virbr2"));
    applied.remove().expect("remove");
    assert_eq!(ns.sh_ok("nft list tables").trim(), "");
}
