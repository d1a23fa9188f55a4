//! Networks and their guests' ports (root, namespaces): networks on something that exists (a
//! host bridge, a macvtap pool) start without creating or serving anything, and stopping any
//! network removes the ports marked as its own — taps made by `add_port`, taps of QEMU's
//! attached by `attach_tap`, macvtaps — and nothing else.

mod common;

use std::fs;

use common::*;
use virtgate_config::libvirt::{UpdateOp, UpdateSection};
use virtgate_config::NetworkDef;
use virtgate_links::{IfName, Links, LinksOptions, Mac};
use virtgate_testnet::{require_root, Netns};
use virtgate_vnet::ports::{self, Attachment, HookGuest, PortRequest};
use virtgate_vnet::{Network, NetworkOptions, VnetError};

fn parse(xml: &str) -> NetworkDef {
    NetworkDef::parse(xml, "test.xml").expect("test XML").value
}

fn exists(ns: &Netns, ifname: &str) -> bool {
    ns.sh(&format!("test -e /sys/class/net/{ifname}"))
        .status
        .success()
}

fn master(ns: &Netns, ifname: &str) -> Option<String> {
    let out = ns.sh(&format!("readlink /sys/class/net/{ifname}/master"));
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    s.rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

fn options(dir: &TempDir) -> NetworkOptions {
    let resolv = dir.path().join("resolv.conf");
    fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
    let mut opts = NetworkOptions::default().with_resolv_conf(resolv);
    // Device nodes of macvtaps go to a scratch directory, never the host's /dev.
    let dev = dir.path().join("dev");
    fs::create_dir_all(&dev).unwrap();
    opts.links = LinksOptions {
        dev_dir: dev,
        ..LinksOptions::default()
    };
    opts
}

const MAC: Mac = Mac([0x52, 0x54, 0x00, 0x0e, 0x00, 0x01]);

#[test]
fn host_bridge_network_starts_on_the_hosts_bridge_and_stop_takes_only_its_ports() {
    if !require_root() {
        return;
    }
    let ns = std::sync::Arc::new(Netns::new("vph"));
    let dir = TempDir::new("ports-host");
    let state = dir.path().join("state");
    let opts = options(&dir);
    let n = ns.clone();
    in_netns(&ns, move || {
        runtime().block_on(async move {
            let def = parse(
                "<network><name>lan</name><forward mode='bridge'/><bridge name='br-h'/></network>",
            );
            let e = Network::start(def.clone(), &state, opts.clone())
                .await
                .unwrap_err();
            assert!(
                matches!(e, VnetError::Unusable { .. }) && e.to_string().contains("br-h"),
                "{e}"
            );
            n.ip(&["link", "add", "br-h", "type", "bridge"]);
            n.ip(&["link", "set", "br-h", "up"]);
            let net = Network::start(def.clone(), &state, opts.clone())
                .await
                .unwrap();
            assert_eq!(net.bridge(), "br-h");
            assert_eq!(
                net.attachment(),
                &Attachment::HostBridge {
                    bridge: "br-h".into()
                }
            );
            assert!(net.is_running());
            assert!(net.leases().await.unwrap().is_empty());
            assert!(net.firewall_part().is_none());
            // No DNS of virtgate's to change live.
            let e = net
                .update(
                    UpdateSection::DnsHost,
                    UpdateOp::AddLast,
                    "<host ip='10.0.0.9'><hostname>nine</hostname></host>",
                )
                .await
                .unwrap_err();
            assert!(e.to_string().contains("no DHCP or DNS"), "{e}");

            let links = Links::with_options(opts.links.clone()).unwrap();
            let mut req = PortRequest::new(MAC);
            req.name = Some(IfName::new("gtap0").unwrap());
            let port = ports::add_port(&links, &def, &req).await.unwrap();
            assert_eq!(port.name, "gtap0");
            // A tap of QEMU's, attached by the hook; and one nobody marked.
            n.ip(&["tuntap", "add", "dev", "qtap0", "mode", "tap"]);
            n.ip(&["tuntap", "add", "dev", "other0", "mode", "tap"]);
            n.ip(&["link", "set", "other0", "master", "br-h"]);
            let tap = IfName::new("qtap0").unwrap();
            ports::attach_tap(&def, &tap, &HookGuest::default(), &opts.links.ovs)
                .await
                .unwrap();
            for t in ["gtap0", "qtap0", "other0"] {
                assert_eq!(master(&n, t).as_deref(), Some("br-h"), "{t}");
            }

            net.stop().await.unwrap();
            assert!(!exists(&n, "gtap0") && !exists(&n, "qtap0"));
            assert!(exists(&n, "other0"), "a tap virtgate did not mark stays");
            assert!(exists(&n, "br-h"), "the host's bridge stays");
        })
    });
}

#[test]
fn macvtap_network_needs_a_parent_and_stop_removes_its_macvtaps() {
    if !require_root() {
        return;
    }
    let ns = std::sync::Arc::new(Netns::new("vpm"));
    let dir = TempDir::new("ports-mvt");
    let state = dir.path().join("state");
    let opts = options(&dir);
    let n = ns.clone();
    in_netns(&ns, move || {
        runtime().block_on(async move {
            let def = parse(
                "<network><name>direct</name><forward mode='vepa'>\
                 <interface dev='up9'/><interface dev='up0'/></forward></network>",
            );
            let e = Network::start(def.clone(), &state, opts.clone())
                .await
                .unwrap_err();
            assert!(e.to_string().contains("up9, up0"), "{e}");
            n.ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up0x"]);
            n.ip(&["link", "set", "up0", "up"]);
            let net = Network::start(def.clone(), &state, opts.clone())
                .await
                .unwrap();
            assert_eq!(net.bridge(), "");
            assert!(matches!(
                net.attachment(),
                Attachment::Macvtap { parents, .. } if parents == &["up9", "up0"]
            ));
            // Guests' macvtaps as virtgate marks them: this network's and another's.
            for (name, label) in [("mv0", "direct"), ("mv1", "direct"), ("mv2", "other")] {
                n.ip(&[
                    "link", "add", name, "link", "up0", "type", "macvtap", "mode", "vepa",
                ]);
                n.ip(&[
                    "link",
                    "set",
                    name,
                    "alias",
                    &format!("virtgate:macvtap:{label}"),
                ]);
            }
            net.stop().await.unwrap();
            assert!(!exists(&n, "mv0") && !exists(&n, "mv1"));
            assert!(exists(&n, "mv2") && exists(&n, "up0"));
        })
    });
}

#[test]
fn nat_network_stop_removes_its_guests_taps_with_the_bridge() {
    if !require_root() {
        return;
    }
    let ns = std::sync::Arc::new(Netns::new("vpn"));
    let dir = TempDir::new("ports-nat");
    let state = dir.path().join("state");
    let opts = options(&dir);
    let n = ns.clone();
    in_netns(&ns, move || {
        runtime().block_on(async move {
            let def = parse(
                "<network><name>natx</name><forward/><bridge name='virbr-px' stp='off'/>\
                 <ip address='10.64.0.1' prefix='24'/></network>",
            );
            let links = Links::with_options(opts.links.clone()).unwrap();
            let req = PortRequest::new(MAC);
            let e = ports::add_port(&links, &def, &req).await.unwrap_err();
            assert!(matches!(e, VnetError::NotRunning { .. }), "{e}");
            let net = Network::start(def.clone(), &state, opts.clone())
                .await
                .unwrap();
            let port = ports::add_port(&links, &net.def(), &req).await.unwrap();
            assert_eq!(master(&n, &port.name).as_deref(), Some("virbr-px"));
            net.stop().await.unwrap();
            assert!(
                !exists(&n, &port.name),
                "the guest's tap went with the network"
            );
            assert!(!exists(&n, "virbr-px"));
        })
    });
}
