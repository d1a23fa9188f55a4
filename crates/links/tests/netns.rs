//! Namespace tests (root): bridges, taps and macvtap ports made by `Links` inside throwaway
//! namespaces, with traffic from guests played on the tap and macvtap descriptors.
//!
//! Each test creates its namespaces in the parent process, then re-runs itself inside the
//! host-side namespace H (`ip netns exec`, so sysfs is H's) where the body runs; the far side
//! S, when there is one, is an external Linux bridge `sbr` reached over a veth (`hp` in H,
//! `sp` in S). Nothing touches the root namespace.

mod common;

use std::net::Ipv4Addr;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use common::*;
use virtgate_links::*;
use virtgate_testnet::{require_root, Netns};

const WAIT: Duration = Duration::from_secs(3);
const MAC_A: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0x00, 0x01];
const MAC_B: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0x00, 0x02];
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 55, 0, 11);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 55, 0, 12);
const IP_S: Ipv4Addr = Ipv4Addr::new(10, 55, 0, 254);

fn name(s: &str) -> IfName {
    IfName::new(s).unwrap()
}

fn options(dir: &ScratchDir) -> LinksOptions {
    LinksOptions {
        dev_dir: dir.0.clone(),
        ..LinksOptions::default()
    }
}

fn s_ns() -> String {
    std::env::var("VGT_NS_S").expect("VGT_NS_S")
}

/// H with the given parents, each a veth to S where all are ports of bridge `sbr`
/// (10.55.0.254/24, STP off, hairpin off).
fn world(tag: &str, parents: &[&str]) -> (Netns, Netns) {
    let h = Netns::new(&format!("{tag}h"));
    let s = Netns::new(&format!("{tag}s"));
    s.ip(&["link", "add", "sbr", "type", "bridge"]);
    s.ip(&["addr", "add", "10.55.0.254/24", "dev", "sbr"]);
    s.ip(&["link", "set", "sbr", "up"]);
    for (i, p) in parents.iter().enumerate() {
        let far = format!("sp{i}");
        let out = std::process::Command::new("ip")
            .args([
                "link",
                "add",
                p,
                "netns",
                h.name(),
                "type",
                "veth",
                "peer",
                "name",
            ])
            .args([far.as_str(), "netns", s.name()])
            .output()
            .expect("ip");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.ip(&["link", "set", &far, "master", "sbr"]);
        s.ip(&["link", "set", &far, "up"]);
        h.ip(&["link", "set", p, "up"]);
    }
    (h, s)
}

fn run(tag: &str, test: &str, parents: &[&str]) {
    if !require_root() {
        return;
    }
    let (h, s) = world(tag, parents);
    run_child_in(&h, test, &[("VGT_NS_S", s.name().to_string())]);
}

fn hairpin(on: bool) {
    let state = if on { "on" } else { "off" };
    sh(&format!(
        "ip -n {} link set dev sp0 type bridge_slave hairpin {state}",
        s_ns()
    ));
}

fn spec(parents: &[&str], mode: MacvtapMode, mac: [u8; 6]) -> MacvtapSpec {
    MacvtapSpec {
        parents: parents.iter().map(|p| name(p)).collect(),
        mode,
        guest_mac: Mac(mac),
        name: None,
        owner: None,
        group: None,
        label: Some(Label::new("direct-net").unwrap()),
    }
}

fn guest(port: &PortInfo, mac: [u8; 6], ip: Ipv4Addr) -> Guest {
    let dev = port.device().expect("macvtap device");
    Guest::new(open_macvtap(dev).expect("open macvtap device"), mac, ip)
}

/// Whether a raw frame written by `a` (to `dst`) comes out of `b`'s descriptor.
fn crosses(a: &mut Guest, b: &mut Guest, dst: [u8; 6]) -> bool {
    drain(&mut b.file);
    let marker = b"virtgate-links-crossing";
    let src = a.mac;
    a.send(&ether(dst, src, ETH_EXPERIMENTAL, marker));
    saw(&mut b.file, Duration::from_millis(800), |f| {
        f.get(6..12) == Some(&src[..]) && f.windows(marker.len()).any(|w| w == marker)
    })
}

/// Checks a macvtap port's device node against the kernel's numbers.
fn check_device(port: &PortInfo) {
    let dev = port.device().expect("device");
    assert_eq!(
        dev.file_name().unwrap().to_str().unwrap(),
        format!("tap{}", port.ifindex)
    );
    let md = std::fs::symlink_metadata(dev).expect("device node made");
    assert!(md.file_type().is_char_device());
    let want = sysfs(&format!("{}/macvtap/tap{}/dev", port.name, port.ifindex)).unwrap();
    let (maj, min) = want.split_once(':').unwrap();
    assert_eq!(
        md.rdev(),
        libc::makedev(maj.parse().unwrap(), min.parse().unwrap())
    );
}

// ============================================================================ bridges

#[test]
fn bridge_created_with_the_settings_asked_adopted_and_deleted() {
    const T: &str = "bridge_created_with_the_settings_asked_adopted_and_deleted";
    if is_child(T) {
        return runtime().block_on(async {
            let links = Links::new().unwrap();
            let mut spec = BridgeSpec::new(name("vbr0"));
            spec.mac = Some("52:54:00:0a:cd:21".parse().unwrap());
            spec.stp = false;
            spec.forward_delay = Duration::from_secs(7);
            spec.mtu = Some(1400);
            spec.label = Some(Label::new("net one").unwrap());
            let e = links.ensure_bridge(&spec).await.unwrap();
            assert!(e.created);
            assert_eq!(sysfs("vbr0/address").unwrap(), "52:54:00:0a:cd:21");
            assert_eq!(sysfs("vbr0/mtu").unwrap(), "1400");
            assert_eq!(sysfs("vbr0/bridge/stp_state").unwrap(), "0");
            assert_eq!(sysfs("vbr0/bridge/forward_delay").unwrap(), "700");
            assert_eq!(sysfs("vbr0/ifalias").unwrap(), "virtgate:bridge:net one");
            assert!(sh("ip -o link show vbr0").contains(",UP"));
            assert_eq!(e.info.mac, spec.mac);
            assert_eq!(e.info.mtu, Some(1400));
            assert!(!e.info.stp);
            assert_eq!(e.info.forward_delay, Duration::from_secs(7));
            assert_eq!(e.info.label.as_deref(), Some("net one"));

            links
                .add_ipv4(&spec.name, Ipv4Addr::new(10, 9, 0, 1), 24)
                .await
                .unwrap();
            // Again: already there is fine.
            links
                .add_ipv4(&spec.name, Ipv4Addr::new(10, 9, 0, 1), 24)
                .await
                .unwrap();
            assert!(sh("ip -o -4 addr show dev vbr0").contains("inet 10.9.0.1/24"));

            // Adopt: ours already, settings applied again.
            spec.stp = true;
            spec.forward_delay = Duration::from_secs(15);
            spec.mtu = Some(1450);
            let e = links.ensure_bridge(&spec).await.unwrap();
            assert!(!e.created);
            assert_eq!(sysfs("vbr0/bridge/stp_state").unwrap(), "1");
            assert_eq!(sysfs("vbr0/bridge/forward_delay").unwrap(), "1500");
            assert_eq!(sysfs("vbr0/mtu").unwrap(), "1450");
            assert!(e.info.stp);

            // libvirt's default network: STP on with delay 0. The kernel keeps delays within
            // 2..=30 s while STP runs; what we report is what the kernel keeps.
            spec.forward_delay = Duration::ZERO;
            let e = links.ensure_bridge(&spec).await.unwrap();
            let kernel_cs: u64 = sysfs("vbr0/bridge/forward_delay").unwrap().parse().unwrap();
            assert_eq!(e.info.forward_delay, Duration::from_millis(kernel_cs * 10));
            assert_eq!(
                kernel_cs, 200,
                "STP on raises a 0 s delay to the 2 s minimum"
            );
            // STP off with delay 0: kept as asked.
            spec.stp = false;
            let e = links.ensure_bridge(&spec).await.unwrap();
            assert_eq!(sysfs("vbr0/bridge/forward_delay").unwrap(), "0");
            assert_eq!(e.info.forward_delay, Duration::ZERO);

            let listed = links.list_bridges().await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].name, "vbr0");
            assert!(matches!(
                links.delete_port(&spec.name).await,
                Err(LinksError::WrongKind { .. })
            ));

            // A new handle (a restarted daemon) still knows the bridge is ours.
            drop(links);
            let links = Links::new().unwrap();
            assert!(!links.ensure_bridge(&spec).await.unwrap().created);

            links.delete_bridge(&spec.name).await.unwrap();
            assert!(!exists("vbr0"));
            assert!(matches!(
                links.delete_bridge(&spec.name).await,
                Err(LinksError::NotFound { .. })
            ));
        });
    }
    if !require_root() {
        return;
    }
    let h = Netns::new("lbr");
    run_child_in(&h, T, &[]);
}

#[test]
fn names_taken_by_others_are_refused_and_left_alone() {
    const T: &str = "names_taken_by_others_are_refused_and_left_alone";
    if is_child(T) {
        return runtime().block_on(async {
            sh("ip link add taken0 type veth peer name taken0p && ip link add fbr0 type bridge");
            let links = Links::new().unwrap();
            match links.ensure_bridge(&BridgeSpec::new(name("taken0"))).await {
                Err(LinksError::NameTaken { name, kind }) => {
                    assert_eq!((name.as_str(), kind.as_str()), ("taken0", "veth"));
                }
                other => panic!("{other:?}"),
            }
            let e = links
                .ensure_bridge(&BridgeSpec::new(name("fbr0")))
                .await
                .unwrap_err();
            assert!(matches!(e, LinksError::ForeignBridge { .. }), "{e}");
            assert!(e.to_string().contains("not created by virtgate"), "{e}");
            // Not adopted: no marker was put on it.
            assert_eq!(sysfs("fbr0/ifalias").unwrap_or_default(), "");
            assert!(matches!(
                links.delete_bridge(&name("fbr0")).await,
                Err(LinksError::NotOurs { .. })
            ));
            assert!(matches!(
                links.delete_bridge(&name("taken0")).await,
                Err(LinksError::NotABridge { .. })
            ));
            assert!(matches!(
                links.delete_port(&name("taken0")).await,
                Err(LinksError::NotOurs { .. })
            ));
            assert!(exists("fbr0") && exists("taken0"));

            // Taps: a taken name, a bridge that is not one.
            let mut tap = TapSpec::new(Mac(MAC_A));
            tap.name = Some(name("taken0"));
            assert!(matches!(
                links.create_tap(&tap).await,
                Err(LinksError::NameTaken { .. })
            ));
            tap.name = None;
            tap.bridge = Some(name("taken0"));
            assert!(matches!(
                links.create_tap(&tap).await,
                Err(LinksError::NotABridge { .. })
            ));
            tap.bridge = Some(name("nosuchbr"));
            assert!(matches!(
                links.create_tap(&tap).await,
                Err(LinksError::NotFound { .. })
            ));
            // Multicast guest MAC and unknown owner are refused before anything is made.
            tap.bridge = Some(name("fbr0"));
            tap.guest_mac = "01:00:5e:00:00:01".parse().unwrap();
            assert!(matches!(
                links.create_tap(&tap).await,
                Err(LinksError::InvalidGuestMac { .. })
            ));
            tap.guest_mac = Mac(MAC_A);
            tap.owner = Some("no-such-user-vgt".parse().unwrap());
            assert!(matches!(
                links.create_tap(&tap).await,
                Err(LinksError::UnknownUser { .. })
            ));
            assert!(!exists("vnet0"), "nothing left behind");
            // Attaching a tap to a foreign bridge is allowed (forward mode='bridge').
            tap.owner = None;
            let p = links.create_tap(&tap).await.unwrap();
            assert_eq!(
                p.kind,
                PortKind::Tap {
                    bridge: Some("fbr0".into())
                }
            );
            links.delete_port(&name(&p.name)).await.unwrap();
            assert!(exists("fbr0"));
        });
    }
    if !require_root() {
        return;
    }
    let h = Netns::new("ltk");
    run_child_in(&h, T, &[]);
}

// ============================================================================ taps

#[test]
fn taps_attached_owned_and_passing_traffic() {
    const T: &str = "taps_attached_owned_and_passing_traffic";
    if is_child(T) {
        let dir = ScratchDir::new("tap");
        let tun = tun_node(&dir.0);
        return runtime().block_on(async {
            let links = Links::new().unwrap();
            let mut br = BridgeSpec::new(name("vbr1"));
            br.stp = false;
            br.mtu = Some(1400);
            br.mac = Some("52:54:00:00:99:01".parse().unwrap());
            links.ensure_bridge(&br).await.unwrap();
            links
                .add_ipv4(&br.name, Ipv4Addr::new(10, 20, 0, 1), 24)
                .await
                .unwrap();
            let label = Label::new("tapnet").unwrap();

            let nobody = uid_of("nobody");
            let mut a = TapSpec::new(Mac(MAC_A));
            a.bridge = Some(br.name.clone());
            a.owner = Some("nobody".parse().unwrap());
            a.label = Some(label.clone());
            let pa = links.create_tap(&a).await.unwrap();
            assert_eq!(pa.name, "vnet0", "kernel-chosen vnetN");

            let mut b = TapSpec::new(Mac(MAC_B));
            b.name = Some(name("vtapb"));
            b.bridge = Some(br.name.clone());
            b.owner = Some(UserRef::Id(4321));
            b.group = Some(GroupRef::Id(4322));
            b.label = Some(label.clone());
            let pb = links.create_tap(&b).await.unwrap();

            for (p, mac, owner) in [(&pa, MAC_A, nobody), (&pb, MAC_B, 4321)] {
                let n = &p.name;
                let master = std::fs::read_link(format!("/sys/class/net/{n}/master")).unwrap();
                assert_eq!(master.file_name().unwrap(), "vbr1");
                assert_eq!(sysfs(&format!("{n}/owner")).unwrap(), owner.to_string());
                assert_eq!(sysfs(&format!("{n}/mtu")).unwrap(), "1400", "bridge MTU");
                let host = Mac(mac).host_side();
                assert_eq!(sysfs(&format!("{n}/address")).unwrap(), host.to_string());
                assert!(host.to_string().starts_with("fe:"));
                let flags = u32::from_str_radix(
                    sysfs(&format!("{n}/tun_flags"))
                        .unwrap()
                        .trim_start_matches("0x"),
                    16,
                )
                .unwrap();
                assert_eq!(flags & 0x0002, 0x0002, "IFF_TAP");
                assert_eq!(flags & 0x0800, 0x0800, "IFF_PERSIST");
                assert_eq!(
                    p.kind,
                    PortKind::Tap {
                        bridge: Some("vbr1".into())
                    }
                );
                assert_eq!(p.owner, Some(owner));
                assert_eq!(p.mac, Some(host));
                assert_eq!(p.label.as_deref(), Some("tapnet"));
                assert!(p.up);
            }
            assert_eq!(sysfs("vtapb/group").unwrap(), "4322");
            assert_eq!(pb.group, Some(4322));

            // The owner opens it without privileges; another user cannot.
            assert_eq!(open_tap_as(&tun, nobody, 65534, "vnet0"), Ok(()));
            assert_eq!(open_tap_as(&tun, 4321, 4321, "vnet0"), Err(libc::EPERM));
            assert_eq!(open_tap_as(&tun, nobody, 65534, "vtapb"), Err(libc::EPERM));
            // With both owner and group set, the kernel wants both: the owner's uid and the
            // group as the egid (tun_not_capable).
            assert_eq!(open_tap_as(&tun, 4321, 4322, "vtapb"), Ok(()));
            assert_eq!(open_tap_as(&tun, 4321, 4321, "vtapb"), Err(libc::EPERM));
            assert_eq!(open_tap_as(&tun, 4400, 4322, "vtapb"), Err(libc::EPERM));

            // Two guests on the bridge reach each other and the host's address.
            let ga = Guest::new(
                open_tap("vnet0").unwrap(),
                MAC_A,
                Ipv4Addr::new(10, 20, 0, 2),
            );
            let gb = Guest::new(
                open_tap("vtapb").unwrap(),
                MAC_B,
                Ipv4Addr::new(10, 20, 0, 3),
            );
            let responder = gb.serve();
            let mut ga = ga;
            ga.ping(Ipv4Addr::new(10, 20, 0, 3), WAIT).unwrap();
            ga.ping(Ipv4Addr::new(10, 20, 0, 1), WAIT).unwrap();
            drop(responder);
            drop(ga);

            // Multi-queue taps for QEMU's queues=N.
            let mut mq = TapSpec::new([0x52, 0x54, 0, 0xaa, 0, 9].into());
            mq.name = Some(name("vtapmq"));
            mq.multi_queue = true;
            links.create_tap(&mq).await.unwrap();
            let flags = sysfs("vtapmq/tun_flags").unwrap();
            let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap();
            assert_eq!(flags & 0x0100, 0x0100, "IFF_MULTI_QUEUE");
            assert_eq!(
                sysfs("vtapmq/mtu").unwrap(),
                "1500",
                "no bridge, no MTU asked"
            );
            links.delete_port(&name("vtapmq")).await.unwrap();

            let listed = links.list_ports().await.unwrap();
            let names: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names, ["vnet0", "vtapb"]);

            let gone = links.delete_ports_labelled(&label).await.unwrap();
            assert_eq!(gone, ["vnet0", "vtapb"]);
            assert!(!exists("vnet0") && !exists("vtapb"));
            assert!(links.list_ports().await.unwrap().is_empty());
            // The bridge stays until it is deleted itself.
            assert!(exists("vbr1"));
            links.delete_bridge(&br.name).await.unwrap();
        });
    }
    if !require_root() {
        return;
    }
    let h = Netns::new("ltap");
    run_child_in(&h, T, &[]);
}

// ============================================================================ macvtap

#[test]
fn macvtap_bridge_mode_ports_reach_each_other_locally() {
    const T: &str = "macvtap_bridge_mode_ports_reach_each_other_locally";
    if is_child(T) {
        let dir = ScratchDir::new("mvbr");
        return runtime().block_on(async {
            let links = Links::with_options(options(&dir)).unwrap();
            let pa = links
                .create_macvtap(&spec(&["hp"], MacvtapMode::Bridge, MAC_A))
                .await
                .unwrap();
            let pb = links
                .create_macvtap(&spec(&["hp"], MacvtapMode::Bridge, MAC_B))
                .await
                .unwrap();
            assert_eq!(
                (pa.name.as_str(), pb.name.as_str()),
                ("macvtap0", "macvtap1")
            );
            for (p, mac) in [(&pa, MAC_A), (&pb, MAC_B)] {
                check_device(p);
                assert_eq!(p.mac, Some(Mac(mac)), "a macvtap carries the guest's MAC");
                assert_eq!(
                    p.kind,
                    PortKind::Macvtap {
                        mode: Some(MacvtapMode::Bridge),
                        parent: Some("hp".into()),
                        device: dir.0.join(format!("tap{}", p.ifindex)),
                    }
                );
                assert!(p.up);
                assert!(sh(&format!("ip -d link show {}", p.name)).contains("macvtap mode bridge"));
            }
            let mut a = guest(&pa, MAC_A, IP_A);
            let mut b = guest(&pb, MAC_B, IP_B);
            // Hairpin is off on the external bridge: whatever crosses, crosses inside H.
            assert!(crosses(&mut a, &mut b, MAC_B), "unicast A->B");
            assert!(crosses(&mut a, &mut b, BROADCAST), "broadcast A->B");
            assert!(crosses(&mut b, &mut a, MAC_A), "unicast B->A");
            let rb = b.serve();
            a.ping(IP_S, WAIT).expect("A reaches the outside");
            a.ping(IP_B, WAIT).expect("A reaches B locally");
            drop(rb);
            drop(a);
            for p in [&pa, &pb] {
                links.delete_port(&name(&p.name)).await.unwrap();
                assert!(!exists(&p.name));
                assert!(!p.device().unwrap().exists(), "device node removed");
            }
        });
    }
    run("mvb", T, &["hp"]);
}

#[test]
fn macvtap_vepa_reaches_a_sibling_only_through_a_hairpin() {
    const T: &str = "macvtap_vepa_reaches_a_sibling_only_through_a_hairpin";
    if is_child(T) {
        let dir = ScratchDir::new("mvvepa");
        return runtime().block_on(async {
            let links = Links::with_options(options(&dir)).unwrap();
            let pa = links
                .create_macvtap(&spec(&["hp"], MacvtapMode::Vepa, MAC_A))
                .await
                .unwrap();
            let pb = links
                .create_macvtap(&spec(&["hp"], MacvtapMode::Vepa, MAC_B))
                .await
                .unwrap();
            assert!(sh("ip -d link show macvtap0").contains("macvtap mode vepa"));
            let mut a = guest(&pa, MAC_A, IP_A);
            let mut b = guest(&pb, MAC_B, IP_B);

            hairpin(false);
            assert!(!crosses(&mut a, &mut b, MAC_B), "unicast without hairpin");
            assert!(
                !crosses(&mut a, &mut b, BROADCAST),
                "broadcast without hairpin"
            );
            let rb = b.serve();
            a.ping(IP_S, WAIT).expect("A reaches the external bridge");
            assert!(
                a.ping(IP_B, Duration::from_secs(2)).is_err(),
                "no hairpin, no B"
            );
            let mut b = rb.stop();

            hairpin(true);
            assert!(crosses(&mut a, &mut b, MAC_B), "unicast with hairpin");
            assert!(crosses(&mut a, &mut b, BROADCAST), "broadcast with hairpin");
            let rb = b.serve();
            a.ping(IP_B, WAIT).expect("hairpin on: A reaches B");
            drop(rb);
        });
    }
    run("mvv", T, &["hp"]);
}

#[test]
fn macvtap_private_never_reaches_a_sibling() {
    const T: &str = "macvtap_private_never_reaches_a_sibling";
    if is_child(T) {
        let dir = ScratchDir::new("mvpriv");
        return runtime().block_on(async {
            let links = Links::with_options(options(&dir)).unwrap();
            let pa = links
                .create_macvtap(&spec(&["hp"], MacvtapMode::Private, MAC_A))
                .await
                .unwrap();
            let pb = links
                .create_macvtap(&spec(&["hp"], MacvtapMode::Private, MAC_B))
                .await
                .unwrap();
            assert!(sh("ip -d link show macvtap1").contains("macvtap mode private"));
            let mut a = guest(&pa, MAC_A, IP_A);
            let mut b = guest(&pb, MAC_B, IP_B);
            for on in [false, true] {
                hairpin(on);
                assert!(
                    !crosses(&mut a, &mut b, BROADCAST),
                    "broadcast from a sibling, hairpin {on}"
                );
                let rb = b.serve();
                a.ping(IP_S, WAIT).expect("A reaches the external bridge");
                assert!(
                    a.ping(IP_B, Duration::from_secs(2)).is_err(),
                    "private: B unreachable with hairpin {on}"
                );
                b = rb.stop();
            }
            // What the kernel's private mode filters is a sibling's broadcast and multicast
            // (macvlan_handle_frame); a unicast frame the external switch hairpins back is
            // still delivered. A guest cannot learn its sibling's MAC (ARP is broadcast), so
            // no IP traffic flows, as above; a guest that already knows the MAC can send it
            // raw frames through a hairpinning switch.
            hairpin(true);
            assert!(
                crosses(&mut a, &mut b, MAC_B),
                "kernel behaviour changed: hairpinned unicast between private ports"
            );
            hairpin(false);
            assert!(!crosses(&mut a, &mut b, MAC_B));
        });
    }
    run("mvp", T, &["hp"]);
}

#[test]
fn macvtap_passthrough_is_one_guest_per_parent() {
    const T: &str = "macvtap_passthrough_is_one_guest_per_parent";
    if is_child(T) {
        let dir = ScratchDir::new("mvpt");
        return runtime().block_on(async {
            let links = Links::with_options(options(&dir)).unwrap();
            let pa = links
                .create_macvtap(&spec(&["hp"], MacvtapMode::Passthrough, MAC_A))
                .await
                .unwrap();
            assert!(sh("ip -d link show macvtap0").contains("macvtap mode passthru"));
            check_device(&pa);
            let mut a = guest(&pa, MAC_A, IP_A);
            a.ping(IP_S, WAIT)
                .expect("the passthrough guest reaches the outside");

            for mode in [
                MacvtapMode::Passthrough,
                MacvtapMode::Bridge,
                MacvtapMode::Vepa,
            ] {
                match links.create_macvtap(&spec(&["hp"], mode, MAC_B)).await {
                    Err(e @ LinksError::PassthroughTaken { .. }) => {
                        let text = e.to_string();
                        assert!(text.contains("hp") && text.contains("macvtap0"), "{text}");
                    }
                    other => panic!("{mode}: {other:?}"),
                }
            }
            let shim = ShimSpec {
                parent: name("hp"),
                name: name("vgshim0"),
                mac: None,
                label: None,
            };
            assert!(matches!(
                links.create_shim(&shim).await,
                Err(LinksError::PassthroughTaken { .. })
            ));
            assert!(!exists("macvtap1"), "nothing made by the refusals");

            // Once the holder goes, the parent is free again.
            drop(a);
            links.delete_port(&name("macvtap0")).await.unwrap();
            let pb = links
                .create_macvtap(&spec(&["hp"], MacvtapMode::Passthrough, MAC_B))
                .await
                .unwrap();
            // A passthrough parent with a port cannot take a shim either, nor a passthrough
            // port on a parent with a shim:
            links.delete_port(&name(&pb.name)).await.unwrap();
            links.create_shim(&shim).await.unwrap();
            assert!(matches!(
                links
                    .create_macvtap(&spec(&["hp"], MacvtapMode::Passthrough, MAC_B))
                    .await,
                Err(LinksError::ParentBusy { .. })
            ));
            links.delete_port(&name("vgshim0")).await.unwrap();
        });
    }
    run("mvt", T, &["hp"]);
}

#[test]
fn macvtap_pool_picks_the_least_used_parent_and_lists_ports() {
    const T: &str = "macvtap_pool_picks_the_least_used_parent_and_lists_ports";
    if is_child(T) {
        let dir = ScratchDir::new("mvpool");
        return runtime().block_on(async {
            let links = Links::with_options(options(&dir)).unwrap();
            let pool = ["hp1", "hp2"];
            let nobody = uid_of("nobody");
            let mut first = spec(&pool, MacvtapMode::Bridge, MAC_A);
            first.owner = Some("nobody".parse().unwrap());
            let p0 = links.create_macvtap(&first).await.unwrap();
            let p1 = links
                .create_macvtap(&spec(&pool, MacvtapMode::Bridge, MAC_B))
                .await
                .unwrap();
            let p2 = links
                .create_macvtap(&spec(&pool, MacvtapMode::Vepa, [0x52, 0x54, 0, 0xaa, 0, 3]))
                .await
                .unwrap();
            let mut named = spec(&pool, MacvtapMode::Bridge, [0x52, 0x54, 0, 0xaa, 0, 4]);
            named.name = Some(name("guestx0"));
            let p3 = links.create_macvtap(&named).await.unwrap();
            let parent = |p: &PortInfo| match &p.kind {
                PortKind::Macvtap { parent, .. } => parent.clone().unwrap(),
                k => panic!("{k:?}"),
            };
            assert_eq!(
                [parent(&p0), parent(&p1), parent(&p2), parent(&p3)],
                ["hp1", "hp2", "hp1", "hp2"]
            );
            assert_eq!(p3.name, "guestx0");

            // The device node belongs to the owner, who opens it; others cannot.
            assert_eq!(p0.owner, Some(nobody));
            assert_eq!(open_node_as(nobody, 65534, p0.device().unwrap()), Ok(()));
            assert_eq!(
                open_node_as(4321, 4321, p0.device().unwrap()),
                Err(libc::EACCES)
            );
            assert_eq!(p1.owner, Some(0));

            let listed = links.list_ports().await.unwrap();
            assert_eq!(listed, vec![p0.clone(), p1.clone(), p2.clone(), p3.clone()]);
            assert_eq!(
                listed[2].kind,
                PortKind::Macvtap {
                    mode: Some(MacvtapMode::Vepa),
                    parent: Some("hp1".into()),
                    device: dir.0.join(format!("tap{}", p2.ifindex)),
                }
            );

            // Passthrough needs a parent to itself: none left in the pool.
            let e = links
                .create_macvtap(&spec(
                    &pool,
                    MacvtapMode::Passthrough,
                    [0x52, 0x54, 0, 0xaa, 0, 5],
                ))
                .await
                .unwrap_err();
            assert!(matches!(e, LinksError::NoFreeParent { .. }), "{e}");
            let text = e.to_string();
            assert!(text.contains("hp1") && text.contains("hp2"), "{text}");

            // Names: taken by the parent itself; pools: empty, missing parents.
            let mut bad = spec(&pool, MacvtapMode::Bridge, [0x52, 0x54, 0, 0xaa, 0, 6]);
            bad.name = Some(name("hp1"));
            assert!(matches!(
                links.create_macvtap(&bad).await,
                Err(LinksError::NameTaken { kind, .. }) if kind == "veth"
            ));
            assert!(matches!(
                links
                    .create_macvtap(&spec(&[], MacvtapMode::Bridge, MAC_A))
                    .await,
                Err(LinksError::EmptyPool)
            ));
            assert!(matches!(
                links
                    .create_macvtap(&spec(&["nosuch0"], MacvtapMode::Bridge, MAC_A))
                    .await,
                Err(LinksError::NotFound { .. })
            ));

            let gone = links
                .delete_ports_labelled(&Label::new("direct-net").unwrap())
                .await
                .unwrap();
            assert_eq!(gone.len(), 4);
            for p in [&p0, &p1, &p2, &p3] {
                assert!(!exists(&p.name));
                assert!(!p.device().unwrap().exists());
            }
            assert!(exists("hp1") && exists("hp2"), "parents untouched");
        });
    }
    run("mvl", T, &["hp1", "hp2"]);
}

#[test]
fn shim_lets_the_host_reach_its_bridge_mode_guests() {
    const T: &str = "shim_lets_the_host_reach_its_bridge_mode_guests";
    if is_child(T) {
        let dir = ScratchDir::new("mvshim");
        return runtime().block_on(async {
            let links = Links::with_options(options(&dir)).unwrap();
            let pb = links
                .create_macvtap(&spec(&["hp"], MacvtapMode::Bridge, MAC_B))
                .await
                .unwrap();
            let responder = guest(&pb, MAC_B, IP_B).serve();

            // The host on the parent itself: it reaches the outside, not its own guest.
            sh("ip addr add 10.55.0.1/24 dev hp");
            assert!(
                sh_status("ping -c1 -W2 10.55.0.254"),
                "control: outside reachable"
            );
            assert!(
                !sh_status("ping -c2 -W1 10.55.0.12"),
                "parent cannot reach macvtap guests"
            );
            sh("ip addr del 10.55.0.1/24 dev hp && ip neigh flush dev hp");

            let shim = links
                .create_shim(&ShimSpec {
                    parent: name("hp"),
                    name: name("vgshim0"),
                    mac: Some("52:54:00:5e:00:01".parse().unwrap()),
                    label: Some(Label::new("direct-net").unwrap()),
                })
                .await
                .unwrap();
            assert_eq!(
                shim.kind,
                PortKind::Shim {
                    parent: Some("hp".into())
                }
            );
            assert!(sh("ip -d link show vgshim0").contains("macvlan mode bridge"));
            links
                .add_ipv4(&name("vgshim0"), Ipv4Addr::new(10, 55, 0, 1), 24)
                .await
                .unwrap();
            assert!(
                sh_status("ping -c3 -W2 10.55.0.12"),
                "the shim reaches the guest"
            );
            drop(responder);

            let listed = links.list_ports().await.unwrap();
            assert_eq!(listed.len(), 2);
            links.delete_port(&name("vgshim0")).await.unwrap();
            links.delete_port(&name(&pb.name)).await.unwrap();
            assert!(!exists("vgshim0"));
        });
    }
    run("mvs", T, &["hp"]);
}

#[test]
fn device_nodes_left_stale_are_replaced() {
    const T: &str = "device_nodes_left_stale_are_replaced";
    if is_child(T) {
        let dir = ScratchDir::new("mvstale");
        return runtime().block_on(async {
            let links = Links::with_options(options(&dir)).unwrap();
            // Guess the next ifindex by making and deleting a link, then leave junk at its
            // node path: a regular file standing where /dev/tapN will be.
            sh("ip link add probe0 type bridge");
            let idx: u32 = sysfs("probe0/ifindex").unwrap().parse().unwrap();
            sh("ip link del probe0");
            let junk = dir.0.join(format!("tap{}", idx + 1));
            std::fs::write(&junk, b"junk").unwrap();
            let p = links
                .create_macvtap(&spec(&["hp"], MacvtapMode::Bridge, MAC_A))
                .await
                .unwrap();
            assert_eq!(p.device(), Some(Path::new(&junk)), "ifindex guess");
            check_device(&p);
            open_macvtap(p.device().unwrap()).expect("the replaced node opens the port");
            links.delete_port(&name(&p.name)).await.unwrap();
        });
    }
    run("mvd", T, &["hp"]);
}
