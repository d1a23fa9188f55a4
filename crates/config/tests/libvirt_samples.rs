//! libvirt network XML samples (tests/data/libvirt/*.xml): libvirt's default network, one
//! network per forward mode, and what `virsh net-dumpxml` prints for a running network. Each
//! parses to the expected value, and parse → to_xml → parse gives the same value back.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use virtgate_config::libvirt::{
    Bridge, DhcpHost, DhcpRange, DnsForwarder, DnsHost, Domain, Forward, ForwardMode, IpDef, Lease,
    LeaseUnit, MacAddr, MacTableManager, MaskSyntax, NetworkDef, PortRange, Uuid, VirtualPort,
    DEFAULT_NAT_PORTS,
};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/libvirt")
        .join(name)
}

fn read(name: &str) -> NetworkDef {
    let parsed = NetworkDef::read(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        parsed.warnings.is_empty(),
        "{name}: unexpected warnings {:?}",
        parsed.warnings
    );
    parsed.value
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

const SAMPLES: &[&str] = &[
    "default.xml",
    "default-running.xml",
    "nat-full.xml",
    "route.xml",
    "open.xml",
    "isolated.xml",
    "host-bridge.xml",
    "openvswitch.xml",
    "macvtap-bridge.xml",
    "vepa.xml",
    "private.xml",
    "passthrough.xml",
];

#[test]
fn every_sample_round_trips() {
    for name in SAMPLES {
        let def = read(name);
        let xml = def.to_xml();
        let again = NetworkDef::parse(&xml, "dump.xml")
            .unwrap_or_else(|e| panic!("{name}: output does not parse: {e}\n{xml}"));
        assert_eq!(
            again.value, def,
            "{name}: round trip changed the value\n{xml}"
        );
        assert!(again.warnings.is_empty(), "{name}: {:?}", again.warnings);
        // The output is canonical: formatting it again gives the same text.
        assert_eq!(again.value.to_xml(), xml, "{name}: output is not stable");
    }
}

#[test]
fn libvirt_default_network() {
    let def = read("default.xml");
    assert_eq!(def, NetworkDef::libvirt_default());
    assert_eq!(def.name, "default");
    assert_eq!(def.uuid, None);
    assert_eq!(def.forward_mode(), Some(ForwardMode::Nat));
    assert_eq!(def.bridge, Bridge::named("virbr0"));
    assert!(def.bridge.stp);
    assert_eq!(def.bridge.delay, 0);
    assert!(def.owns_bridge());
    assert!(!def.uses_macvtap());
    let nat = &def.forward.as_ref().unwrap().nat;
    assert_eq!(nat.ports, None);
    assert_eq!(
        nat.effective_ports(),
        PortRange {
            start: 1024,
            end: 65535
        }
    );
    let v4 = def.ip.as_ref().unwrap();
    assert_eq!(v4.address, ip("192.168.122.1"));
    assert_eq!(v4.prefix, 24);
    assert_eq!(v4.netmask(), ip("255.255.255.0"));
    assert_eq!(v4.network(), ip("192.168.122.0"));
    assert_eq!(v4.broadcast(), ip("192.168.122.255"));
    assert_eq!(
        v4.dhcp_ranges,
        vec![DhcpRange::new(ip("192.168.122.2"), ip("192.168.122.254"))]
    );
    assert!(def.dns.enabled());
    NetworkDef::libvirt_default().validate().unwrap();
}

#[test]
fn default_network_prints_like_virsh() {
    let expected = std::fs::read_to_string(data("default.canonical.xml")).unwrap();
    assert_eq!(NetworkDef::libvirt_default().to_xml(), expected);
}

#[test]
fn running_network_dump_is_accepted() {
    // `connections` (runtime state) is dropped; the explicit default NAT ports are kept.
    let def = read("default-running.xml");
    assert_eq!(
        def.uuid,
        Some(
            "6a8b2c3d-1e4f-4a5b-9c6d-7e8f9a0b1c2d"
                .parse::<Uuid>()
                .unwrap()
        )
    );
    assert_eq!(def.mac, Some(mac("52:54:00:3a:9c:11")));
    assert_eq!(
        def.forward.as_ref().unwrap().nat.ports,
        Some(DEFAULT_NAT_PORTS)
    );
    assert!(!def.to_xml().contains("connections"));
    let mut plain = def.clone();
    plain.uuid = None;
    plain.mac = None;
    plain.forward.as_mut().unwrap().nat.ports = None;
    assert_eq!(plain, NetworkDef::libvirt_default());
}

#[test]
fn nat_network_with_everything() {
    let def = read("nat-full.xml");
    assert_eq!(def.name, "lab");
    assert_eq!(
        def.uuid.unwrap().to_string(),
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    );
    assert_eq!(def.title.as_deref(), Some("Lab network & test guests"));
    assert!(def.description.as_deref().unwrap().contains("NATed out"));
    let fwd = def.forward.as_ref().unwrap();
    assert_eq!(fwd.mode, ForwardMode::Nat);
    assert_eq!(fwd.interfaces, vec!["eth1".to_string()]);
    let addrs = fwd.nat.addresses.unwrap();
    assert_eq!(
        (addrs.start, addrs.end),
        (ip("203.0.113.10"), ip("203.0.113.20"))
    );
    assert_eq!(
        fwd.nat.ports,
        Some(PortRange {
            start: 20000,
            end: 29999
        })
    );
    assert_eq!(def.bridge.name.as_deref(), Some("virbr7"));
    assert!(!def.bridge.stp);
    assert_eq!(def.bridge.delay, 2);
    assert_eq!(def.bridge.mac_table_manager, Some(MacTableManager::Kernel));
    assert_eq!(def.mtu, Some(9000));
    assert_eq!(def.mac, Some(MacAddr([0x52, 0x54, 0, 0xab, 0xcd, 1])));
    let domain = def.domain.as_ref().unwrap();
    assert_eq!(domain.name, "lab.example");
    assert_eq!(domain.local_only, Some(true));
    assert_eq!(def.dns.enable, Some(true));
    assert_eq!(def.dns.forward_plain_names, Some(false));
    assert_eq!(
        def.dns.forwarders,
        vec![
            DnsForwarder::to("198.51.100.53".parse().unwrap()),
            DnsForwarder::new(
                Some("10.0.0.53".parse().unwrap()),
                Some("corp.example".into())
            ),
            DnsForwarder::new(None, Some("local.lab.example".into())),
        ]
    );
    assert_eq!(
        def.dns.hosts,
        vec![
            DnsHost::new(
                IpAddr::V4(ip("10.77.0.50")),
                vec!["printer".into(), "printer.lab.example".into()]
            ),
            DnsHost::new("2001:db8::50".parse().unwrap(), vec!["printer".into()]),
        ]
    );
    let v4 = def.ip.as_ref().unwrap();
    assert_eq!(v4.mask_syntax, MaskSyntax::Prefix);
    assert_eq!(v4.prefix, 24);
    let two_hours = Lease::Finite {
        expiry: 2,
        unit: LeaseUnit::Hours,
    };
    assert_eq!(v4.dhcp_ranges[0].lease, Some(two_hours));
    assert_eq!(two_hours.duration(), Some(Duration::from_secs(7200)));
    assert_eq!(v4.dhcp_ranges[1].lease, None);
    assert_eq!(
        v4.dhcp_hosts[0],
        DhcpHost::new(
            mac("52:54:00:00:00:21"),
            Some("web".into()),
            ip("10.77.0.21")
        )
    );
    assert_eq!(v4.dhcp_hosts[1].lease, Some(Lease::Infinite));
    assert_eq!(Lease::Infinite.duration(), None);
    // No unit: minutes (libvirt's default).
    assert_eq!(
        v4.dhcp_hosts[2].lease.unwrap().duration(),
        Some(Duration::from_secs(30 * 60))
    );
    assert_eq!(v4.dhcp_hosts[2].name, None);
}

#[test]
fn nat_network_prints_byte_exact() {
    let expected = std::fs::read_to_string(data("nat-full.canonical.xml")).unwrap();
    assert_eq!(read("nat-full.xml").to_xml(), expected);
}

#[test]
fn routed_open_and_isolated() {
    let route = read("route.xml");
    assert_eq!(route.forward_mode(), Some(ForwardMode::Route));
    assert_eq!(route.forward.as_ref().unwrap().interfaces, vec!["eth0"]);
    assert_eq!(route.ip.as_ref().unwrap().prefix, 25);
    assert!(route.owns_bridge());

    let open = read("open.xml");
    assert_eq!(open.forward, Some(Forward::new(ForwardMode::Open)));
    let v4 = open.ip.as_ref().unwrap();
    assert_eq!((v4.prefix, v4.mask_syntax), (16, MaskSyntax::Prefix));
    assert!(!v4.dhcp_enabled());

    let iso = read("isolated.xml");
    assert_eq!(iso.forward, None);
    assert_eq!(iso.forward_mode(), None);
    assert!(iso.owns_bridge());
    assert_eq!(iso.domain, Some(Domain::new("iso.internal")));
}

#[test]
fn bridge_mode_on_a_host_bridge() {
    let def = read("host-bridge.xml");
    assert_eq!(def.forward, Some(Forward::new(ForwardMode::Bridge)));
    assert_eq!(def.bridge.name.as_deref(), Some("br0"));
    assert!(!def.owns_bridge());
    assert!(!def.uses_macvtap());
    assert_eq!(def.ip, None);
    // libvirt prints only the name for a bridge it does not create.
    assert!(
        def.to_xml().contains("  <bridge name='br0'/>\n"),
        "{}",
        def.to_xml()
    );
}

#[test]
fn open_vswitch_bridge() {
    let def = read("openvswitch.xml");
    assert_eq!(def.forward_mode(), Some(ForwardMode::Bridge));
    assert_eq!(def.bridge.name.as_deref(), Some("ovsbr0"));
    assert_eq!(
        def.virtualport,
        Some(VirtualPort::OpenVswitch {
            interface_id: Some("09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f".parse().unwrap())
        })
    );
    let without_id = NetworkDef::parse(
        "<network><name>o</name><forward mode='bridge'/><bridge name='ovsbr0'/>\
         <virtualport type='openvswitch'/></network>",
        "o.xml",
    )
    .unwrap()
    .value;
    assert_eq!(
        without_id.virtualport,
        Some(VirtualPort::OpenVswitch { interface_id: None })
    );
}

#[test]
fn macvtap_modes() {
    let bridge = read("macvtap-bridge.xml");
    assert_eq!(bridge.forward_mode(), Some(ForwardMode::Bridge));
    assert_eq!(
        bridge.forward.as_ref().unwrap().interfaces,
        vec!["eth2", "eth3"]
    );
    assert_eq!(bridge.bridge.name, None);
    assert!(bridge.uses_macvtap());
    assert!(!bridge.owns_bridge());
    // libvirt writes the first interface as dev= too.
    assert!(bridge
        .to_xml()
        .contains("<forward dev='eth2' mode='bridge'>"));

    for (file, mode, parents) in [
        ("vepa.xml", ForwardMode::Vepa, &["eth2", "eth3"][..]),
        ("private.xml", ForwardMode::Private, &["eth2"][..]),
        (
            "passthrough.xml",
            ForwardMode::Passthrough,
            &["eth4", "eth5"][..],
        ),
    ] {
        let def = read(file);
        assert_eq!(def.forward_mode(), Some(mode), "{file}");
        assert_eq!(def.forward.as_ref().unwrap().interfaces, parents, "{file}");
        assert!(def.uses_macvtap(), "{file}");
        assert!(!def.owns_bridge(), "{file}");
        // Nothing bridge-ish is printed for macvtap networks.
        assert!(!def.to_xml().contains("<bridge"), "{file}");
    }
}

#[test]
fn built_in_code_matches_parsed_xml() {
    // A definition built in code validates and prints XML that parses back to it.
    let mut def = NetworkDef::new("coded");
    def.forward = Some(Forward::new(ForwardMode::Route));
    def.bridge = Bridge::named("virbr3");
    let mut v4 = IpDef::new(ip("10.3.0.1"), 24);
    v4.dhcp_ranges
        .push(DhcpRange::new(ip("10.3.0.10"), ip("10.3.0.20")));
    def.ip = Some(v4);
    def.validate().unwrap();
    assert_eq!(NetworkDef::parse(&def.to_xml(), "x").unwrap().value, def);
}

#[test]
fn missing_netmask_uses_the_address_class_with_a_warning() {
    let parsed = NetworkDef::parse(
        "<network>\n<name>c</name>\n<ip address='10.9.0.1'/>\n</network>",
        "c.xml",
    )
    .unwrap();
    assert_eq!(parsed.value.ip.as_ref().unwrap().prefix, 8);
    assert_eq!(parsed.warnings.len(), 1);
    assert_eq!(parsed.warnings[0].line, 3);
    assert!(parsed.warnings[0].message.contains("/8"));
}

#[test]
fn escaping_survives_the_round_trip() {
    let xml = "<network><name>esc</name><title>a &lt;b&gt; &quot;c&quot; 'd' &amp; e</title>\
               <description><![CDATA[x < y & z]]></description></network>";
    let def = NetworkDef::parse(xml, "e.xml").unwrap().value;
    assert_eq!(def.title.as_deref(), Some("a <b> \"c\" 'd' & e"));
    assert_eq!(def.description.as_deref(), Some("x < y & z"));
    assert_eq!(NetworkDef::parse(&def.to_xml(), "e2").unwrap().value, def);
}

#[test]
fn damaged_samples_are_errors_not_panics() {
    // Every prefix of every sample, and every sample with one byte replaced by each of a few
    // troublesome characters: parse must return (Ok or Err), never panic, and every error
    // must point inside the document.
    for name in SAMPLES {
        let text = std::fs::read_to_string(data(name)).unwrap();
        let lines = u32::try_from(text.lines().count()).unwrap() + 1;
        let check = |doc: &str| {
            if let Err(e) = NetworkDef::parse(doc, "d.xml") {
                assert!(
                    e.line <= lines,
                    "{name}: line {} beyond the end: {e}",
                    e.line
                );
            }
        };
        for end in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
            check(&text[..end]);
        }
        for (i, _) in text.char_indices() {
            for c in ['<', '&', '\'', '/', '0', '\u{0}', 'é'] {
                let mut doc = String::with_capacity(text.len() + 2);
                doc.push_str(&text[..i]);
                doc.push(c);
                let rest = &text[i..];
                let skip = rest.chars().next().map_or(0, char::len_utf8);
                doc.push_str(&rest[skip..]);
                check(&doc);
            }
        }
    }
}
