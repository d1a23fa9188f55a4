//! Everything libvirt's network XML can say that virtgate does not implement is refused with
//! the element's (or attribute's) name and its line — never silently ignored. Names libvirt
//! does not know either are reported as unknown.

use virtgate_config::libvirt::NetworkDef;
use virtgate_config::ErrorKind;

/// `body` placed inside a network whose `<name>` is on line 2: the first line of `body` is
/// line 3.
fn net(body: &str) -> String {
    format!("<network>\n<name>t</name>\n{body}\n</network>\n")
}

/// A NAT network with a subnet; the first line of `body` is line 5.
fn nat(body: &str) -> String {
    format!(
        "<network>\n<name>t</name>\n<forward/>\n<ip address='10.1.0.1' prefix='24'/>\n{body}\n</network>\n"
    )
}

struct Case {
    what: &'static str,
    xml: String,
    line: u32,
    kind: ErrorKind,
    needle: &'static str,
}

fn case(what: &'static str, xml: String, line: u32, kind: ErrorKind, needle: &'static str) -> Case {
    Case {
        what,
        xml,
        line,
        kind,
        needle,
    }
}

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    let total = cases.len();
    for c in cases {
        match NetworkDef::parse(&c.xml, "net.xml") {
            Ok(p) => failures.push(format!("{}: accepted: {:?}", c.what, p.value)),
            Err(e) => {
                if e.line != c.line || e.kind != c.kind || !e.message.contains(c.needle) {
                    failures.push(format!(
                        "{}: got line {} {:?} '{}'; want line {} {:?} containing '{}'",
                        c.what, e.line, e.kind, e.message, c.line, c.kind, c.needle
                    ));
                }
                assert_eq!(e.path, std::path::Path::new("net.xml"));
                assert!(e.to_string().starts_with(&format!("net.xml:{}: ", e.line)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn unsupported_elements_are_refused_by_name_and_line() {
    use ErrorKind::Refused;
    run(vec![
        case(
            "macTableManager='libvirt'",
            nat("<bridge name='virbr9' macTableManager='libvirt'/>"),
            5,
            Refused,
            "macTableManager='libvirt' is not supported by virtgate",
        ),
        case(
            "portgroup",
            net("<forward mode='bridge'/>\n<bridge name='br0'/>\n<portgroup name='a'/>"),
            5,
            Refused,
            "element <portgroup> is not supported by virtgate",
        ),
        case(
            "bandwidth",
            nat("<bandwidth>\n<inbound average='1000'/>\n</bandwidth>"),
            5,
            Refused,
            "element <bandwidth> is not supported by virtgate",
        ),
        case(
            "vlan",
            nat("<vlan><tag id='42'/></vlan>"),
            5,
            Refused,
            "element <vlan> is not supported",
        ),
        case(
            "route",
            nat("\n<route address='10.2.0.0' prefix='24' gateway='10.1.0.2'/>"),
            6,
            Refused,
            "element <route> is not supported",
        ),
        case(
            "port isolated",
            nat("<port isolated='yes'/>"),
            5,
            Refused,
            "element <port> is not supported",
        ),
        case(
            "metadata",
            net("<metadata>\n<app:x xmlns:app='urn:x'/>\n</metadata>"),
            3,
            Refused,
            "element <metadata> is not supported",
        ),
        case(
            "dnsmasq options element",
            nat("<dnsmasq:options>\n<dnsmasq:option value='foo=bar'/>\n</dnsmasq:options>"),
            5,
            Refused,
            "element <dnsmasq:options> is not supported",
        ),
        case(
            "dnsmasq namespace declaration",
            "<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>\n<name>t</name>\n</network>".into(),
            1,
            Refused,
            "attribute 'xmlns:dnsmasq' of <network> is not supported",
        ),
        case(
            "IPv6 ip by family",
            nat("<ip family='ipv6' address='2001:db8::1' prefix='64'/>"),
            5,
            Refused,
            "IPv6 <ip> is not supported by virtgate",
        ),
        case(
            "IPv6 ip by address",
            nat("<ip address='fd00::1' prefix='64'/>"),
            5,
            Refused,
            "IPv6 <ip> is not supported",
        ),
        case(
            "second IPv4 ip",
            nat("<ip address='10.9.0.1' prefix='24'/>"),
            5,
            Refused,
            "a second IPv4 <ip> is not supported by virtgate",
        ),
        case(
            "tftp",
            net("<ip address='10.1.0.1' prefix='24'>\n<tftp root='/srv/tftp'/>\n</ip>"),
            4,
            Refused,
            "element <tftp> is not supported",
        ),
        case(
            "bootp",
            net("<ip address='10.1.0.1' prefix='24'>\n<dhcp>\n<range start='10.1.0.2' end='10.1.0.9'/>\n<bootp file='pxelinux.0'/>\n</dhcp>\n</ip>"),
            6,
            Refused,
            "element <bootp> is not supported",
        ),
        case(
            "dns txt",
            nat("<dns>\n<txt name='example' value='v'/>\n</dns>"),
            6,
            Refused,
            "element <txt> is not supported",
        ),
        case(
            "dns srv",
            nat("<dns>\n<srv service='name' protocol='tcp'/>\n</dns>"),
            6,
            Refused,
            "element <srv> is not supported",
        ),
        case(
            "forward hostdev",
            net("<forward mode='hostdev' managed='yes'>\n<pf dev='eth0'/>\n</forward>"),
            3,
            Refused,
            "forward mode='hostdev' (SR-IOV PCI passthrough) is not supported",
        ),
        case(
            "forward pf",
            net("<forward mode='passthrough'>\n<pf dev='eth0'/>\n</forward>"),
            4,
            Refused,
            "element <pf> is not supported",
        ),
        case(
            "forward address",
            net("<forward mode='passthrough'>\n\n<address type='pci' domain='0' bus='4' slot='0' function='1'/>\n</forward>"),
            5,
            Refused,
            "element <address> is not supported",
        ),
        case(
            "forward driver",
            net("<forward mode='passthrough'>\n<driver name='vfio'/>\n<interface dev='eth0'/>\n</forward>"),
            4,
            Refused,
            "element <driver> is not supported",
        ),
        case(
            "forward managed",
            net("<forward mode='passthrough' managed='yes'>\n<interface dev='eth0'/>\n</forward>"),
            3,
            Refused,
            "attribute 'managed' of <forward> is not supported",
        ),
        case(
            "nat ipv6",
            net("<forward mode='nat'>\n<nat ipv6='yes'/>\n</forward>\n<ip address='10.1.0.1' prefix='24'/>"),
            4,
            Refused,
            "attribute 'ipv6' of <nat> is not supported",
        ),
        case(
            "bridge zone",
            net("<bridge name='virbr1' zone='trusted'/>"),
            3,
            Refused,
            "attribute 'zone' of <bridge> is not supported",
        ),
        case(
            "ip localPtr",
            net("\n<ip address='10.1.0.1' prefix='24' localPtr='yes'/>"),
            4,
            Refused,
            "attribute 'localPtr' of <ip> is not supported",
        ),
        case(
            "domain register",
            nat("<domain name='example.org' register='yes'/>"),
            5,
            Refused,
            "attribute 'register' of <domain> is not supported",
        ),
        case(
            "trustGuestRxFilters",
            "<network trustGuestRxFilters='yes'>\n<name>t</name>\n</network>".into(),
            1,
            Refused,
            "attribute 'trustGuestRxFilters' of <network> is not supported",
        ),
        case(
            "network ipv6=yes",
            "<network ipv6='yes'>\n<name>t</name>\n</network>".into(),
            1,
            Refused,
            "attribute 'ipv6' of <network>",
        ),
        case(
            "dhcp host by name only",
            net("<ip address='10.1.0.1' prefix='24'>\n<dhcp>\n<host name='vm1' ip='10.1.0.5'/>\n</dhcp>\n</ip>"),
            5,
            Refused,
            "<host> without mac= (matching the client by host name) is not supported",
        ),
        case(
            "dhcp host id (DUID)",
            net("<ip address='10.1.0.1' prefix='24'>\n<dhcp>\n<host id='0:4:7e:7d:f0:7d:a8:bc:c5:d2:13:32:11:ed:16:ea:84:63' ip='10.1.0.5'/>\n</dhcp>\n</ip>"),
            5,
            Refused,
            "attribute 'id' of <host> is not supported",
        ),
        case(
            "IPv6 dhcp range",
            net("<ip address='10.1.0.1' prefix='24'>\n<dhcp>\n<range start='fd00::2' end='fd00::9'/>\n</dhcp>\n</ip>"),
            5,
            Refused,
            "IPv6 DHCP range",
        ),
        case(
            "virtualport 802.1Qbg",
            net("<forward mode='vepa'>\n<interface dev='eth1'/>\n</forward>\n<virtualport type='802.1Qbg'>\n<parameters managerid='11'/>\n</virtualport>"),
            6,
            Refused,
            "<virtualport type='802.1Qbg'> is not supported",
        ),
        case(
            "virtualport profileid",
            net("<forward mode='bridge'/>\n<bridge name='ovsbr0'/>\n<virtualport type='openvswitch'>\n<parameters profileid='p'/>\n</virtualport>"),
            6,
            Refused,
            "attribute 'profileid' of <parameters> is not supported",
        ),
        case(
            "DOCTYPE",
            "<!DOCTYPE network>\n<network><name>t</name></network>".into(),
            1,
            Refused,
            "<!DOCTYPE>",
        ),
    ]);
}

#[test]
fn unknown_names_are_reported_as_unknown() {
    run(vec![
        case(
            "typo in element",
            net("<brige name='virbr1'/>"),
            3,
            ErrorKind::Unknown,
            "unknown element <brige> in <network>",
        ),
        case(
            "element in the wrong place",
            net("<bridge name='virbr1'>\n<stp/>\n</bridge>"),
            4,
            ErrorKind::Unknown,
            "unknown element <stp> in <bridge>",
        ),
        case(
            "unknown attribute",
            net("<ip address='10.1.0.1' prefix='24'>\n<dhcp>\n<range start='10.1.0.2' end='10.1.0.9' lease='60'/>\n</dhcp>\n</ip>"),
            5,
            ErrorKind::Refused,
            "attribute 'lease' of <range> is not supported",
        ),
    ]);
}

#[test]
fn runtime_state_attributes_are_dropped() {
    // `connections` is what libvirt prints for a running network; it is not configuration.
    let xml = "<network connections='3'>\n<name>p</name>\n<forward mode='private'>\n\
               <interface dev='eth1' connections='3'/>\n</forward>\n</network>";
    let def = NetworkDef::parse(xml, "p.xml").unwrap();
    assert!(def.warnings.is_empty());
    assert!(!def.value.to_xml().contains("connections"));
    // ipv6='no' is libvirt's default and changes nothing.
    let def = NetworkDef::parse("<network ipv6='no'><name>n</name></network>", "n.xml").unwrap();
    assert_eq!(def.value, NetworkDef::new("n"));
}
