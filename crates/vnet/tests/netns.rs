//! Namespace tests (root): a network started from libvirt XML in a "host" namespace, served to
//! "guest" namespaces running ISC dhclient and dig, with dnsmasq in a "wan" namespace as the
//! upstream DNS server. Each test builds its namespaces and removes them (the testnet guards),
//! and touches nothing outside them.

mod common;

use std::fs;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use virtgate_config::libvirt::{UpdateOp, UpdateSection};
use virtgate_config::NetworkDef;
use virtgate_testnet::{require_root, Netns};
use virtgate_vnet::{Network, NetworkOptions, RunningNetwork, Store, VnetError, MAX_TCP_CLIENTS};

const BRIDGE: &str = "virbr-test";
const GUEST_A_MAC: &str = "52:54:00:aa:00:0a";
const FIXED_MAC: &str = "52:54:00:aa:00:0b";

fn test_network_xml(stp: &str) -> String {
    format!(
        "<network>
  <name>vtest</name>
  <forward mode='nat'/>
  <bridge name='{BRIDGE}' stp='{stp}' delay='0'/>
  <domain name='test.lan'/>
  <dns>
    <host ip='192.168.150.7'><hostname>printer</hostname></host>
  </dns>
  <ip address='192.168.150.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.150.100' end='192.168.150.199'/>
      <host mac='{FIXED_MAC}' name='fixed' ip='192.168.150.50'/>
    </dhcp>
  </ip>
</network>"
    )
}

fn parse(xml: &str) -> NetworkDef {
    NetworkDef::parse(xml, "test.xml").expect("test XML").value
}

/// The network's options with a resolv.conf naming the fake upstream.
fn options(dir: &TempDir) -> NetworkOptions {
    let resolv = dir.path().join("resolv.conf");
    fs::write(&resolv, format!("nameserver {UPSTREAM_IP}\n")).unwrap();
    NetworkOptions::default().with_resolv_conf(resolv)
}

fn in_range(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[..3] == [192, 168, 150] && (100..=199).contains(&o[3])
}

fn link_exists(host: &Netns, name: &str) -> bool {
    host.sh(&format!("ip link show dev {name}"))
        .status
        .success()
}

/// The main scenario: DORA for a dynamic and a reserved guest, names forward and reverse,
/// forwarding to the upstream over UDP and TCP, counters, stop (bridge gone, leases kept),
/// restart (leases and names restored, the guest keeps its address).
#[test]
fn guests_lease_resolve_and_keep_addresses_across_restart() {
    if !require_root() {
        return;
    }
    ensure_tools();
    let host = Netns::new("vhost");
    let wan = Wan::new(&host);
    let guest_a = Guest::new("vga", &host, "vh-a", GUEST_A_MAC);
    let fixed = Guest::new("vgb", &host, "vh-b", FIXED_MAC);
    let state = TempDir::new("state");
    let opts = options(&state);
    let state_dir = state.path().to_path_buf();
    let host_ref = std::sync::Arc::new(host);
    let h = host_ref.clone();
    let guests = std::sync::Arc::new((guest_a, fixed));
    let g = guests.clone();
    let _keep = wan;
    in_netns(&host_ref, move || {
        let rt = runtime();
        rt.block_on(async move {
            // The daemon's way: define (MAC and UUID generated and stored), then start.
            let links = virtgate_links::Links::new().unwrap();
            let store = Store::open(&state_dir).unwrap();
            let def = store
                .define(parse(&test_network_xml("off")), &links)
                .await
                .expect("define");
            let mac = def.mac.expect("generated MAC");
            let net = Network::start(def.clone(), &state_dir, opts.clone())
                .await
                .expect("start");
            assert_eq!(net.def().mac, Some(mac));
            assert_eq!(net.bridge(), BRIDGE);
            let out = h.sh(&format!("ip -4 addr show dev {BRIDGE}"));
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("inet 192.168.150.1/24"),
                "bridge address: {}",
                String::from_utf8_lossy(&out.stdout)
            );

            let (a, b) = (&g.0, &g.1);
            a.plug(&h, BRIDGE);
            b.plug(&h, BRIDGE);
            let (ga, gb) = {
                let g2 = g.clone();
                tokio::task::spawn_blocking(move || {
                    (
                        g2.0.dhclient(Some("guest-a"), true),
                        g2.1.dhclient(Some("someone"), true),
                    )
                })
                .await
                .unwrap()
            };
            let ga = ga.expect("guest-a got no lease");
            let gb = gb.expect("fixed got no lease");
            assert!(in_range(ga.ip), "guest-a got {}", ga.ip);
            assert_eq!(gb.ip, Ipv4Addr::new(192, 168, 150, 50), "reservation");
            assert_eq!(ga.mask, "255.255.255.0");
            assert_eq!(ga.routers, "192.168.150.1");
            assert_eq!(ga.dns, "192.168.150.1");
            assert_eq!(ga.domain, "test.lan");

            // The OFFER went unicast to the client's MAC through a neighbour entry.
            let neigh = h.sh(&format!("ip neigh show dev {BRIDGE}"));
            let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
            assert!(
                neigh.contains(&format!("{} lladdr {GUEST_A_MAC}", ga.ip)),
                "neighbour table: {neigh}"
            );

            let leases = net.leases().await.unwrap();
            assert_eq!(leases.len(), 2, "{leases:?}");
            let la = leases.iter().find(|l| l.ip == ga.ip).expect("a's lease");
            assert_eq!(la.mac.to_string(), GUEST_A_MAC);
            assert_eq!(la.hostname.as_deref(), Some("guest-a"));
            let lb = leases.iter().find(|l| l.ip == gb.ip).expect("b's lease");
            // The reservation's name wins over the one the client sent.
            assert_eq!(lb.hostname.as_deref(), Some("fixed"));

            let ip_a = ga.ip.to_string();
            let g2 = g.clone();
            let answers = tokio::task::spawn_blocking(move || {
                let b = &g2.1;
                vec![
                    b.dig("@192.168.150.1 guest-a"),
                    b.dig("@192.168.150.1 guest-a.test.lan"),
                    b.dig("@192.168.150.1 fixed"),
                    b.dig("@192.168.150.1 printer"),
                    b.dig(&format!("@192.168.150.1 -x {ip_a}")),
                    b.dig("@192.168.150.1 -x 192.168.150.50"),
                    b.dig("@192.168.150.1 www.example.test"),
                    b.dig("@192.168.150.1 +tcp www.example.test"),
                    b.dig("@192.168.150.1 +tcp guest-a"),
                    g2.0.dig("@192.168.150.1 fixed"),
                ]
            })
            .await
            .unwrap();
            let want = [
                ga.ip.to_string(),
                ga.ip.to_string(),
                "192.168.150.50".to_string(),
                "192.168.150.7".to_string(),
                "guest-a.test.lan.".to_string(),
                "fixed.test.lan.".to_string(),
                OUTSIDE_IP.to_string(),
                OUTSIDE_IP.to_string(),
                ga.ip.to_string(),
                "192.168.150.50".to_string(),
            ];
            assert_eq!(answers, want);

            let stats = net.stats().await.unwrap();
            assert_eq!(stats.leases_active, 2);
            assert!(stats.dhcp_offered() >= 2, "{stats:?}");
            assert!(stats.dns_answered() >= 8, "{stats:?}");
            assert!(stats.dns_forwarded() >= 2, "{stats:?}");
            assert_eq!(stats.dns_failed(), 0, "{stats:?}");
            assert_eq!(stats.neighbour_fallbacks, 0);
            assert_eq!(stats.lease_file_errors, 0);
            assert!(stats.lease_file_writes >= 2);

            let leases_path = net.leases_path().to_path_buf();
            let file = fs::read_to_string(&leases_path).unwrap();
            assert!(
                file.contains(&format!("{GUEST_A_MAC} {} guest-a", ga.ip)),
                "leases file: {file}"
            );
            assert!(file.contains(&format!("{FIXED_MAC} 192.168.150.50 fixed")));

            net.stop().await.expect("stop");
            assert!(!link_exists(&h, BRIDGE), "bridge left behind");
            assert_eq!(fs::read_to_string(&leases_path).unwrap(), file);

            // Restart: the leases come back from the file, with their names.
            // Same bridge MAC as before: the guests' ARP caches stay right.
            let def = store.get("vtest").unwrap().def;
            assert_eq!(def.mac, Some(mac));
            let net = Network::start(def, &state_dir, opts)
                .await
                .expect("restart");
            let restored = net.leases().await.unwrap();
            assert_eq!(restored.len(), 2, "{restored:?}");
            a.plug(&h, BRIDGE);
            b.plug(&h, BRIDGE);
            let g2 = g.clone();
            let (name_after, again) = tokio::task::spawn_blocking(move || {
                let name = g2.1.dig("@192.168.150.1 guest-a");
                // A client that forgot its lease starts over with DISCOVER: the server must
                // still hold its address for it (and give it nobody else).
                (name, g2.0.dhclient(Some("guest-a"), true))
            })
            .await
            .unwrap();
            assert_eq!(name_after, ga.ip.to_string());
            assert_eq!(again.expect("lease after restart").ip, ga.ip);
            net.stop().await.expect("stop");
        });
    });
    drop(guests);
}

/// Definitions store: define fills UUID, MAC and bridge name; foreign bridge names and
/// overlapping subnets are refused; a started network has the bridge the definition asks for
/// (MAC, STP, MTU, our marker) and writes a generated MAC back to the stored definition.
#[test]
fn store_and_bridge_settings() {
    if !require_root() {
        return;
    }
    let host = Netns::new("vstore");
    host.ip(&["link", "add", "br-foreign", "type", "bridge"]);
    host.ip(&[
        "link", "add", "veth7", "type", "veth", "peer", "name", "veth7p",
    ]);
    let state = TempDir::new("store");
    let state_dir = state.path().to_path_buf();
    let h = std::sync::Arc::new(host);
    let hh = h.clone();
    in_netns(&h, move || {
        let rt = runtime();
        rt.block_on(async move {
            let links = virtgate_links::Links::new().unwrap();
            let store = Store::open(&state_dir).unwrap();
            let first = store
                .define(
                    parse(
                        "<network><name>one</name><forward/>
                           <ip address='10.71.0.1' prefix='24'/></network>",
                    ),
                    &links,
                )
                .await
                .unwrap();
            // libvirt's define-time defaults.
            assert_eq!(first.bridge.name.as_deref(), Some("virbr0"));
            let mac = first.mac.expect("generated MAC");
            assert_eq!(&mac.0[..3], &[0x52, 0x54, 0x00]);
            assert!(first.uuid.is_some());
            let second = store
                .define(
                    parse(
                        "<network><name>two</name><mtu size='1400'/>
                           <bridge stp='on' delay='0'/>
                           <ip address='10.72.0.1' prefix='24'/></network>",
                    ),
                    &links,
                )
                .await
                .unwrap();
            assert_eq!(second.bridge.name.as_deref(), Some("virbr1"));

            // Redefining keeps UUID and MAC; another UUID is refused.
            let again = store
                .define(
                    parse(
                        "<network><name>one</name><forward/><bridge name='virbr0'/>
                           <ip address='10.71.0.1' prefix='24'/></network>",
                    ),
                    &links,
                )
                .await
                .unwrap();
            assert_eq!((again.uuid, again.mac), (first.uuid, first.mac));
            let e = store
                .define(
                    parse(
                        "<network><name>one</name><uuid>11111111-2222-4333-8444-555555555555</uuid>
                           <ip address='10.71.0.1' prefix='24'/></network>",
                    ),
                    &links,
                )
                .await
                .unwrap_err();
            assert!(matches!(e, VnetError::UuidMismatch { .. }), "{e}");

            for (xml, what) in [
                (
                    "<network><name>three</name><bridge name='br-foreign'/>
                       <ip address='10.73.0.1' prefix='24'/></network>",
                    "a bridge virtgate did not create",
                ),
                (
                    "<network><name>three</name><bridge name='veth7'/>
                       <ip address='10.73.0.1' prefix='24'/></network>",
                    "a veth interface",
                ),
            ] {
                let e = store.define(parse(xml), &links).await.unwrap_err();
                assert!(
                    matches!(&e, VnetError::BridgeTaken { holder, .. } if holder == what),
                    "{e}"
                );
            }
            let e = store
                .define(
                    parse(
                        "<network><name>three</name><bridge name='virbr9'/>
                           <ip address='10.71.0.129' prefix='25'/></network>",
                    ),
                    &links,
                )
                .await
                .unwrap_err();
            assert!(matches!(e, VnetError::Conflict(_)), "{e}");
            assert!(e.to_string().contains("overlap"), "{e}");

            let names: Vec<_> = store
                .list()
                .unwrap()
                .into_iter()
                .map(|s| s.def.name)
                .collect();
            assert_eq!(names, vec!["one".to_string(), "two".to_string()]);
            store.set_autostart("two", true).unwrap();
            assert!(store.get("two").unwrap().autostart);
            assert!(!store.get("one").unwrap().autostart);
            store.set_autostart("two", false).unwrap();
            assert!(!store.get("two").unwrap().autostart);
            store.set_autostart("two", true).unwrap();
            let updated = store
                .update(
                    "two",
                    UpdateSection::DnsHost,
                    UpdateOp::AddLast,
                    "<host ip='10.72.0.9'><hostname>nine</hostname></host>",
                )
                .unwrap();
            assert_eq!(updated.dns.hosts.len(), 1);
            assert_eq!(store.get("two").unwrap().def, updated);

            // Starting the stored network gives the bridge it describes.
            let stored = store.get("two").unwrap().def;
            let net = Network::start(stored.clone(), &state_dir, NetworkOptions::default())
                .await
                .unwrap();
            let shown = hh.sh("ip -d link show dev virbr1");
            let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
            let want_mac = stored.mac.unwrap().to_string();
            assert!(shown.contains(&format!("link/ether {want_mac}")), "{shown}");
            assert!(shown.contains("mtu 1400"), "{shown}");
            assert!(shown.contains("stp_state 1"), "{shown}");
            assert!(shown.contains("alias virtgate:bridge:two"), "{shown}");
            assert!(
                shown.contains("state UP") || shown.contains(",UP"),
                "{shown}"
            );
            // A bridge of ours named for another network is not taken over.
            let mut clash = parse(
                "<network><name>other</name><bridge name='virbr1'/>
                   <ip address='10.74.0.1' prefix='24'/></network>",
            );
            clash.mac = None;
            let e = Network::start(clash, &state_dir, NetworkOptions::default())
                .await
                .unwrap_err();
            assert!(matches!(e, VnetError::BridgeTaken { .. }), "{e}");
            net.stop().await.unwrap();
            assert!(!link_exists(&hh, "virbr1"));

            // A foreign bridge is refused at start too, and left alone.
            let e = Network::start(
                parse(
                    "<network><name>four</name><bridge name='br-foreign'/>
                       <ip address='10.75.0.1' prefix='24'/></network>",
                ),
                &state_dir,
                NetworkOptions::default(),
            )
            .await
            .unwrap_err();
            assert!(matches!(e, VnetError::BridgeTaken { .. }), "{e}");
            assert!(link_exists(&hh, "br-foreign"));

            // A stored definition without a MAC gets the one the started bridge uses.
            let path = store.path_of("five");
            fs::write(
                &path,
                "<network><name>five</name><bridge name='virbr5'/>
                   <ip address='10.76.0.1' prefix='24'/></network>",
            )
            .unwrap();
            let def = store.get("five").unwrap().def;
            assert!(def.mac.is_none());
            let net = Network::start(def, &state_dir, NetworkOptions::default())
                .await
                .unwrap();
            let mac = net.def().mac.expect("generated MAC");
            assert_eq!(store.get("five").unwrap().def.mac, Some(mac));
            let shown = hh.sh("ip link show dev virbr5");
            assert!(String::from_utf8_lossy(&shown.stdout).contains(&format!("link/ether {mac}")));
            net.stop().await.unwrap();
            // Started again from XML without a MAC (the daemon's --network-xml), the bridge
            // takes the stored one.
            let net = Network::start(
                parse(
                    "<network><name>five</name><bridge name='virbr5'/>
                       <ip address='10.76.0.1' prefix='24'/></network>",
                ),
                &state_dir,
                NetworkOptions::default(),
            )
            .await
            .unwrap();
            assert_eq!(net.def().mac, Some(mac));
            net.stop().await.unwrap();

            store.undefine("two").unwrap();
            assert!(matches!(
                store.get("two").unwrap_err(),
                VnetError::NotFound { .. }
            ));
            assert!(!store.path_of("two").exists());
            let names: Vec<_> = store
                .list()
                .unwrap()
                .into_iter()
                .map(|s| s.def.name)
                .collect();
            assert_eq!(names, vec!["five".to_string(), "one".to_string()]);
            assert!(matches!(
                store.get("../etc/passwd").unwrap_err(),
                VnetError::NotFound { .. }
            ));
        });
    });
}

/// Sends `count` datagrams of junk (random lengths and bytes, truncated headers) to
/// `dest` from inside the guest namespace.
fn spray(guest: &Netns, src: &str, dest: &'static str, count: usize) {
    let src: std::net::SocketAddr = src.parse().unwrap();
    in_netns(guest, move || {
        let s = UdpSocket::bind(src).unwrap();
        s.set_broadcast(true).unwrap();
        let mut x: u32 = 0x1234_5678;
        for i in 0..count {
            if i % 20 == 0 {
                // Paced, so the server's receive buffer is not what drops them.
                std::thread::sleep(Duration::from_millis(2));
            }
            // xorshift: reproducible junk.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let len = (x as usize) % 700;
            let mut buf: Vec<u8> = (0..len).map(|j| (x >> (j % 24)) as u8 ^ j as u8).collect();
            if i % 7 == 0 {
                // A BOOTREQUEST header with a bad cookie, or a DNS header alone.
                buf = vec![1, 1, 6, 0, 0, 0, 0, 1];
                buf.resize(240, 0);
            }
            if i % 11 == 0 {
                buf = vec![0, 1, 1, 0, 0, 1];
            }
            let _ = s.send_to(&buf, dest);
        }
    });
}

/// Junk on one network's DHCP and DNS ports is dropped and counted, and that network and its
/// neighbour keep serving; a lease written with an expiry runs out on the network's timer and
/// leaves the leases file; upstreams that never answer give SERVFAIL; `net-update` changes a
/// running network.
#[test]
fn malformed_packets_timers_and_live_updates() {
    if !require_root() {
        return;
    }
    ensure_tools();
    let host = Netns::new("vmal");
    let ga = Guest::new("vma", &host, "vh-ma", "52:54:00:aa:01:0a");
    let gb = Guest::new("vmb", &host, "vh-mb", "52:54:00:aa:02:0a");
    let late = Guest::new("vml", &host, "vh-ml", "52:54:00:aa:01:0c");
    ga.ns.ip(&["addr", "add", "10.61.0.9/24", "dev", "eth0"]);
    gb.ns.ip(&["addr", "add", "10.62.0.9/24", "dev", "eth0"]);
    let state = TempDir::new("mal");
    let state_dir = state.path().to_path_buf();
    // Both networks are isolated: no upstreams at all.
    let opts = NetworkOptions::default();
    // A lease due in 3 s and one that never ends, as an earlier run left them.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    fs::write(
        state.path().join("neta.leases"),
        format!(
            "{} 52:54:00:aa:01:99 10.61.0.150 shortlived *\n\
             0 52:54:00:aa:01:98 10.61.0.151 forever 01:52:54:00:aa:01:98\n\
             this line is damaged\n",
            now + 3
        ),
    )
    .unwrap();

    let host = std::sync::Arc::new(host);
    let guests = std::sync::Arc::new((ga, gb, late));
    let h = host.clone();
    let g = guests.clone();
    in_netns(&host, move || {
        let rt = runtime();
        rt.block_on(async move {
            let a = Network::start(
                parse(
                    "<network><name>neta</name><bridge name='virbr-a' stp='off'/>
                       <ip address='10.61.0.1' prefix='24'>
                         <dhcp><range start='10.61.0.100' end='10.61.0.199'/></dhcp>
                       </ip></network>",
                ),
                &state_dir,
                opts.clone(),
            )
            .await
            .unwrap();
            let b = Network::start(
                parse(
                    "<network><name>netb</name><bridge name='virbr-b' stp='off'/>
                       <dns><host ip='10.62.0.7'><hostname>bee</hostname></host></dns>
                       <ip address='10.62.0.1' prefix='24'>
                         <dhcp><range start='10.62.0.100' end='10.62.0.199'/></dhcp>
                       </ip></network>",
                ),
                &state_dir,
                opts,
            )
            .await
            .unwrap();
            g.0.plug(&h, "virbr-a");
            g.2.plug(&h, "virbr-a");
            g.1.plug(&h, "virbr-b");

            // Restored leases, names included; the damaged line is skipped.
            let leases = a.leases().await.unwrap();
            assert_eq!(leases.len(), 2, "{leases:?}");
            let g2 = g.clone();
            let before = tokio::task::spawn_blocking(move || {
                (
                    g2.0.dig("@10.61.0.1 shortlived"),
                    g2.0.dig("@10.61.0.1 forever"),
                )
            })
            .await
            .unwrap();
            assert_eq!(before, ("10.61.0.150".into(), "10.61.0.151".into()));

            // Junk at network A.
            let g2 = g.clone();
            tokio::task::spawn_blocking(move || {
                spray(&g2.0.ns, "10.61.0.9:6800", "10.61.0.1:53", 500);
                spray(&g2.0.ns, "10.61.0.9:68", "255.255.255.255:67", 500);
                spray(&g2.0.ns, "10.61.0.9:6801", "10.61.0.1:67", 200);
                // TCP: a frame of junk, a frame longer than what follows, then hang up.
                g2.0.ns
                    .sh("printf '\\000\\005junk!\\000\\377abc' | timeout 3 \
                     bash -c 'cat > /dev/tcp/10.61.0.1/53' || true");
            })
            .await
            .unwrap();
            let sa = a.stats().await.unwrap();
            let (da, na) = (sa.dhcp.unwrap(), sa.dns.unwrap());
            assert!(da.received >= 650, "{da:?}");
            assert!(da.malformed >= 100, "{da:?}");
            assert_eq!(da.offers + da.acks + da.naks, 0, "{da:?}");
            assert!(na.queries >= 450, "{na:?}");
            assert!(na.malformed >= 40, "{na:?}");
            let sb = b.stats().await.unwrap();
            assert_eq!(
                sb.dhcp.unwrap().received,
                0,
                "junk reached network B: {sb:?}"
            );
            assert_eq!(sb.dns.unwrap().queries, 0, "junk reached network B: {sb:?}");

            // Both still serve.
            let g2 = g.clone();
            let (bee, lease_a) = tokio::task::spawn_blocking(move || {
                let bee = g2.1.dig("@10.62.0.1 bee");
                g2.0.ns.ip(&["addr", "flush", "dev", "eth0"]);
                (bee, g2.0.dhclient(Some("after-junk"), true))
            })
            .await
            .unwrap();
            assert_eq!(bee, "10.62.0.7");
            let lease_a = lease_a.expect("network A still leases");
            // Isolated: no default route offered (libvirt's `dhcp-option=3`).
            assert_eq!(lease_a.routers, "");
            assert!(a.is_running() && b.is_running());

            // The short lease runs out on the network's own timer.
            let expired = wait_timeout(Duration::from_secs(8), || async {
                let l = a.leases().await.unwrap();
                (!l.iter().any(|l| l.ip == Ipv4Addr::new(10, 61, 0, 150))).then_some(())
            })
            .await;
            assert!(expired.is_some(), "the lease did not expire");
            let file = fs::read_to_string(a.leases_path()).unwrap();
            assert!(!file.contains("10.61.0.150"), "{file}");
            assert!(
                file.contains("0 52:54:00:aa:01:98 10.61.0.151 forever"),
                "{file}"
            );
            let g2 = g.clone();
            let status =
                tokio::task::spawn_blocking(move || g2.0.dig_status("@10.61.0.1 shortlived"))
                    .await
                    .unwrap();
            // Isolated network, single label, no upstreams: REFUSED like dnsmasq with no-resolv;
            // what matters is that the name no longer answers.
            assert_ne!(status, "NOERROR");

            // Live updates on A: a reservation and a DNS host, then removing the DNS host.
            let def = a
                .update(
                    UpdateSection::IpDhcpHost,
                    UpdateOp::AddLast,
                    "<host mac='52:54:00:aa:01:0c' name='late' ip='10.61.0.60'/>",
                )
                .await
                .unwrap();
            assert_eq!(def.ip.as_ref().unwrap().dhcp_hosts.len(), 1);
            a.update(
                UpdateSection::DnsHost,
                UpdateOp::AddLast,
                "<host ip='10.61.0.8'><hostname>newhost</hostname></host>",
            )
            .await
            .unwrap();
            let e = a
                .update(
                    UpdateSection::IpDhcpHost,
                    UpdateOp::AddLast,
                    "<host mac='52:54:00:aa:01:0d' name='bad' ip='10.99.0.60'/>",
                )
                .await
                .unwrap_err();
            assert!(matches!(e, VnetError::Definition(_)), "{e}");
            assert_eq!(a.def().ip.as_ref().unwrap().dhcp_hosts.len(), 1);
            let g2 = g.clone();
            let (late_lease, late_name, newhost) = tokio::task::spawn_blocking(move || {
                let l = g2.2.dhclient(None, true);
                (
                    l,
                    g2.0.dig("@10.61.0.1 late"),
                    g2.0.dig("@10.61.0.1 newhost"),
                )
            })
            .await
            .unwrap();
            assert_eq!(
                late_lease.expect("late lease").ip,
                Ipv4Addr::new(10, 61, 0, 60)
            );
            assert_eq!(late_name, "10.61.0.60");
            assert_eq!(newhost, "10.61.0.8");
            a.update(
                UpdateSection::DnsHost,
                UpdateOp::Delete,
                "<host ip='10.61.0.8'/>",
            )
            .await
            .unwrap();
            let g2 = g.clone();
            let gone = tokio::task::spawn_blocking(move || g2.0.dig("@10.61.0.1 newhost"))
                .await
                .unwrap();
            assert_eq!(gone, "");

            b.stop().await.unwrap();
            a.stop().await.unwrap();
        });
    });
    drop(guests);
}

/// An upstream that never answers: the guest gets SERVFAIL after the DNS core's timeout, on
/// the network's timer.
#[test]
fn silent_upstream_gives_servfail() {
    if !require_root() {
        return;
    }
    ensure_tools();
    let host = Netns::new("vsil");
    // A route to the upstream exists, but nothing answers there (not even ARP).
    host.ip(&[
        "link", "add", "void0", "type", "veth", "peer", "name", "void1",
    ]);
    host.ip(&["addr", "add", "198.51.100.1/24", "dev", "void0"]);
    host.ip(&["link", "set", "void0", "up"]);
    host.ip(&["link", "set", "void1", "up"]);
    let guest = Guest::new("vsg", &host, "vh-s", "52:54:00:aa:03:0a");
    guest.ns.ip(&["addr", "add", "10.63.0.9/24", "dev", "eth0"]);
    let state = TempDir::new("sil");
    let state_dir: PathBuf = state.path().to_path_buf();
    let host = std::sync::Arc::new(host);
    let guest = std::sync::Arc::new(guest);
    let h = host.clone();
    let g = guest.clone();
    in_netns(&host, move || {
        let rt = runtime();
        rt.block_on(async move {
            let net: RunningNetwork = Network::start(
                parse(
                    "<network><name>sil</name><forward/><bridge name='virbr-s' stp='off'/>
                       <dns><forwarder addr='198.51.100.53'/>
                         <host ip='10.63.0.5'><hostname>five</hostname></host></dns>
                       <ip address='10.63.0.1' prefix='24'/></network>",
                ),
                &state_dir,
                NetworkOptions::default(),
            )
            .await
            .unwrap();
            g.plug(&h, "virbr-s");
            let g2 = g.clone();
            let t0 = std::time::Instant::now();
            let status =
                tokio::task::spawn_blocking(move || g2.dig_status("@10.63.0.1 www.example.test"))
                    .await
                    .unwrap();
            assert_eq!(status, "SERVFAIL");
            assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
            let s = net.stats().await.unwrap();
            assert_eq!((s.dns_forwarded(), s.dns_failed()), (1, 1), "{s:?}");
            // No DHCP on a network without ranges or hosts.
            assert!(s.dhcp.is_none());

            // TCP connections beyond the limit are closed at once; the others are served.
            let g2 = g.clone();
            let conns = tokio::task::spawn_blocking(move || {
                in_netns(&g2.ns, || {
                    let conns: Vec<_> = (0..MAX_TCP_CLIENTS + 8)
                        .map(|_| std::net::TcpStream::connect("10.63.0.1:53").unwrap())
                        .collect();
                    std::thread::sleep(Duration::from_millis(500));
                    conns
                })
            })
            .await
            .unwrap();
            assert_eq!(net.stats().await.unwrap().dns_tcp_refused, 8);
            drop(conns);
            let g2 = g.clone();
            let five = tokio::task::spawn_blocking(move || {
                wait_for(Duration::from_secs(5), || {
                    let a = g2.dig("@10.63.0.1 +tcp five");
                    (a == "10.63.0.5").then_some(a)
                })
            })
            .await
            .unwrap();
            assert_eq!(five.as_deref(), Some("10.63.0.5"));

            // A bridge removed behind the network's back does not make stop fail.
            h.ip(&["link", "del", "virbr-s"]);
            net.stop().await.unwrap();
        });
    });
}

async fn wait_timeout<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
