//! Definitions that are well-formed libvirt XML but cannot work are refused at definition,
//! with the line of the element at fault and a message that says what to change; and a set of
//! networks is checked against each other (`check_overlaps`).

use std::net::Ipv4Addr;

use virtgate_config::libvirt::{
    check_overlaps, Bridge, DhcpHost, Forward, ForwardMode, IpDef, MacAddr, NetworkConflict,
    NetworkDef,
};
use virtgate_config::ErrorKind;

/// A NAT network on 10.1.0.1/24 (line 4) whose `<dhcp>` holds `dhcp` from line 6 on.
fn with_dhcp(dhcp: &str) -> String {
    format!(
        "<network>\n<name>t</name>\n<forward/>\n<ip address='10.1.0.1' netmask='255.255.255.0'>\n<dhcp>\n{dhcp}\n</dhcp>\n</ip>\n</network>\n"
    )
}

/// `body` inside `<network>`, first line of `body` = line 2.
fn net(body: &str) -> String {
    format!("<network>\n{body}\n</network>\n")
}

fn expect(what: &str, xml: &str, line: u32, kind: ErrorKind, needle: &str) -> Option<String> {
    match NetworkDef::parse(xml, "v.xml") {
        Ok(p) => Some(format!("{what}: accepted {:?}", p.value)),
        Err(e) if e.line == line && e.kind == kind && e.message.contains(needle) => None,
        Err(e) => Some(format!(
            "{what}: got line {} {:?} '{}'; want line {line} {kind:?} containing '{needle}'",
            e.line, e.kind, e.message
        )),
    }
}

fn run(cases: &[(&str, String, u32, ErrorKind, &str)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(what, xml, line, kind, needle)| expect(what, xml, *line, *kind, needle))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn dhcp_ranges_and_hosts_must_fit_the_subnet() {
    use ErrorKind::{Conflict, InvalidValue};
    run(&[
        (
            "range outside the subnet",
            with_dhcp("<range start='10.1.0.100' end='10.1.1.20'/>"),
            6,
            InvalidValue,
            "DHCP range 10.1.0.100-10.1.1.20 is not inside the network's subnet 10.1.0.0/24",
        ),
        (
            "range containing the bridge address",
            with_dhcp("<range start='10.1.0.2' end='10.1.0.9'/>\n<range start='10.1.0.1' end='10.1.0.1'/>"),
            7,
            InvalidValue,
            "contains 10.1.0.1, the bridge's own address",
        ),
        (
            "range containing the network address",
            with_dhcp("<range start='10.1.0.0' end='10.1.0.9'/>"),
            6,
            InvalidValue,
            "contains 10.1.0.0, the subnet's network address",
        ),
        (
            "range containing the broadcast address",
            with_dhcp("<range start='10.1.0.200' end='10.1.0.255'/>"),
            6,
            InvalidValue,
            "contains 10.1.0.255, the subnet's broadcast address",
        ),
        (
            "range backwards",
            with_dhcp("<range start='10.1.0.20' end='10.1.0.10'/>"),
            6,
            InvalidValue,
            "ends before it starts",
        ),
        (
            "overlapping ranges",
            with_dhcp("<range start='10.1.0.10' end='10.1.0.20'/>\n\n<range start='10.1.0.20' end='10.1.0.30'/>"),
            8,
            Conflict,
            "overlaps DHCP range 10.1.0.10-10.1.0.20",
        ),
        (
            "host outside the subnet",
            with_dhcp("<host mac='52:54:00:00:00:01' ip='10.2.0.5'/>"),
            6,
            InvalidValue,
            "DHCP host 10.2.0.5 (52:54:00:00:00:01) is not inside the network's subnet",
        ),
        (
            "host on the bridge address",
            with_dhcp("<host mac='52:54:00:00:00:01' ip='10.1.0.1'/>"),
            6,
            InvalidValue,
            "is the bridge's own address",
        ),
        (
            "host on the broadcast address",
            with_dhcp("<host mac='52:54:00:00:00:01' ip='10.1.0.255'/>"),
            6,
            InvalidValue,
            "broadcast address",
        ),
        (
            "duplicate host MAC",
            with_dhcp("<host mac='52:54:00:00:00:01' ip='10.1.0.5'/>\n<host mac='52:54:00:00:00:01' ip='10.1.0.6'/>"),
            7,
            Conflict,
            "DHCP host MAC 52:54:00:00:00:01 is reserved twice",
        ),
        (
            "duplicate host MAC, other case",
            with_dhcp("<host mac='52:54:00:aa:00:01' ip='10.1.0.5'/>\n<host mac='52:54:00:AA:00:01' ip='10.1.0.6'/>"),
            7,
            Conflict,
            "reserved twice",
        ),
        (
            "duplicate host IP",
            with_dhcp("<host mac='52:54:00:00:00:01' ip='10.1.0.5'/>\n<host mac='52:54:00:00:00:02' ip='10.1.0.5'/>"),
            7,
            Conflict,
            "DHCP host address 10.1.0.5 is reserved twice (the second time for 52:54:00:00:00:02)",
        ),
        (
            "multicast host MAC",
            with_dhcp("<host mac='01:00:5e:00:00:01' ip='10.1.0.5'/>"),
            6,
            InvalidValue,
            "multicast",
        ),
        (
            "malformed host MAC",
            with_dhcp("<host mac='52:54:00:00:00' ip='10.1.0.5'/>"),
            6,
            InvalidValue,
            "'52:54:00:00:00' is not a MAC address",
        ),
        (
            "host name starting with a dash",
            with_dhcp("<host mac='52:54:00:00:00:01' name='-vm' ip='10.1.0.5'/>"),
            6,
            InvalidValue,
            "host name '-vm': must start with a letter or digit",
        ),
        (
            "host name with a space",
            with_dhcp("<host mac='52:54:00:00:00:01' name='my vm' ip='10.1.0.5'/>"),
            6,
            InvalidValue,
            "not allowed in a DNS name",
        ),
        (
            "lease under two minutes",
            with_dhcp("<range start='10.1.0.2' end='10.1.0.9'>\n<lease expiry='90' unit='seconds'/>\n</range>"),
            7,
            InvalidValue,
            "shorter than the two-minute minimum",
        ),
        (
            "lease of one minute (default unit)",
            with_dhcp("<host mac='52:54:00:00:00:01' ip='10.1.0.5'>\n<lease expiry='1'/>\n</host>"),
            7,
            InvalidValue,
            "lease of 1 minutes is shorter",
        ),
        (
            "lease beyond 32 bits of seconds",
            with_dhcp("<range start='10.1.0.2' end='10.1.0.9'>\n<lease expiry='1193047' unit='hours'/>\n</range>"),
            7,
            InvalidValue,
            "longer than DHCP can express",
        ),
        (
            "lease with an unknown unit",
            with_dhcp("<range start='10.1.0.2' end='10.1.0.9'>\n<lease expiry='1' unit='days'/>\n</range>"),
            7,
            InvalidValue,
            "unit='days' must be seconds, minutes or hours",
        ),
    ]);
}

#[test]
fn subnet_and_address_syntax() {
    use ErrorKind::{Conflict, InvalidValue};
    run(&[
        (
            "prefix 31",
            net("<name>t</name>\n<ip address='10.1.0.1' prefix='31'/>"),
            3,
            InvalidValue,
            "/31 and /32 leave no address for guests",
        ),
        (
            "non-contiguous netmask",
            net("<name>t</name>\n<ip address='10.1.0.1' netmask='255.0.255.0'/>"),
            3,
            InvalidValue,
            "netmask='255.0.255.0' is not contiguous",
        ),
        (
            "netmask and prefix",
            net("<name>t</name>\n<ip address='10.1.0.1' netmask='255.255.255.0' prefix='24'/>"),
            3,
            Conflict,
            "both netmask= and prefix=",
        ),
        (
            "bridge on the network address",
            net("<name>t</name>\n<ip address='10.1.0.0' prefix='24'/>"),
            3,
            InvalidValue,
            "10.1.0.0 is the network address of 10.1.0.0/24",
        ),
        (
            "not an address",
            net("<name>t</name>\n<ip address='10.1.0.300' prefix='24'/>"),
            3,
            InvalidValue,
            "address='10.1.0.300' is not an IPv4 address",
        ),
        (
            "class D without a mask",
            net("<name>t</name>\n<ip address='224.1.0.1'/>"),
            3,
            InvalidValue,
            "needs netmask= or prefix=",
        ),
    ]);
}

#[test]
fn names() {
    use ErrorKind::{InvalidValue, Syntax};
    let long = format!("<name>{}</name>", "n".repeat(65));
    run(&[
        ("missing name", net("<bridge name='virbr1'/>"), 1, InvalidValue, "<network> has no <name>"),
        ("empty name", net("<name></name>"), 2, InvalidValue, "<name> is empty"),
        ("slash in name", net("<name>a/b</name>"), 2, InvalidValue, "contains '/'"),
        ("space in name", net("<name>my net</name>"), 2, InvalidValue, "contains ' '"),
        ("leading dash", net("<name>-x</name>"), 2, InvalidValue, "may not start with '-'"),
        ("dot-dot", net("<name>..</name>"), 2, InvalidValue, "may not start with"),
        ("too long", net(&long), 2, InvalidValue, "longer than 64 characters"),
        (
            "two names",
            net("<name>a</name>\n<name>b</name>"),
            3,
            Syntax,
            "<name> appears more than once in <network>",
        ),
        (
            "title with a newline",
            net("<name>t</name>\n<title>one\ntwo</title>"),
            3,
            InvalidValue,
            "<title> must be one line",
        ),
        (
            "bad uuid",
            net("<name>t</name>\n<uuid>81ff0d90-c91e-6742-64da</uuid>"),
            3,
            InvalidValue,
            "is not a UUID",
        ),
        (
            "bridge name of 16 bytes",
            net("<name>t</name>\n<bridge name='virbr0123456789a'/>"),
            3,
            InvalidValue,
            "is 16 bytes; Linux allows at most 15",
        ),
        (
            "slash in bridge name",
            net("<name>t</name>\n<bridge name='br/0'/>"),
            3,
            InvalidValue,
            "bridge name 'br/0' contains '/'",
        ),
        (
            "whitespace in bridge name",
            net("<name>t</name>\n<bridge name='br 0'/>"),
            3,
            InvalidValue,
            "contains ' '",
        ),
        (
            "bridge name template",
            net("<name>t</name>\n<bridge name='virbr%d'/>"),
            3,
            InvalidValue,
            "contains '%'",
        ),
        (
            "interface name too long",
            net("<name>t</name>\n<forward mode='private'>\n<interface dev='enp0s31f6abcdefg'/>\n</forward>"),
            4,
            InvalidValue,
            "forward interface name 'enp0s31f6abcdefg' is 16 bytes",
        ),
        (
            "domain name",
            net("<name>t</name>\n<domain name='bad_domain-.example'/>"),
            3,
            InvalidValue,
            "may not start or end with '-'",
        ),
        (
            "not network XML",
            "<domain type='kvm'>\n<name>vm</name>\n</domain>".into(),
            1,
            Syntax,
            "the root element is <domain>",
        ),
        (
            "malformed XML",
            "<network>\n<name>t</name>\n<bridge name='virbr1'>\n</network>".into(),
            4,
            Syntax,
            "malformed XML",
        ),
        (
            "unquoted attribute",
            "<network>\n<name>t</name>\n<bridge name=virbr1/>\n</network>".into(),
            3,
            Syntax,
            "malformed attribute",
        ),
    ]);
}

#[test]
fn forward_modes_and_what_they_need() {
    use ErrorKind::{Conflict, InvalidValue};
    run(&[
        (
            "nat without ip",
            net("<name>t</name>\n<forward mode='nat'/>"),
            3,
            Conflict,
            "forward mode='nat' needs an <ip> element",
        ),
        (
            "route without ip",
            net("<name>t</name>\n<forward mode='route'/>"),
            3,
            Conflict,
            "forward mode='route' needs an <ip>",
        ),
        (
            "open without ip",
            net("<name>t</name>\n<forward mode='open'/>"),
            3,
            Conflict,
            "forward mode='open' needs an <ip>",
        ),
        (
            "route through two interfaces",
            net("<name>t</name>\n<forward mode='route'>\n<interface dev='eth0'/>\n<interface dev='eth1'/>\n</forward>\n<ip address='10.1.0.1' prefix='24'/>"),
            5,
            Conflict,
            "takes at most one forward interface",
        ),
        (
            "open with dev",
            net("<name>t</name>\n<forward mode='open' dev='eth0'/>\n<ip address='10.1.0.1' prefix='24'/>"),
            3,
            Conflict,
            "forward mode='open' takes no dev",
        ),
        (
            "vepa without parents",
            net("<name>t</name>\n<forward mode='vepa'/>"),
            3,
            Conflict,
            "forward mode='vepa' needs the parent device(s)",
        ),
        (
            "private without parents",
            net("<name>t</name>\n<forward mode='private'/>"),
            3,
            Conflict,
            "forward mode='private' needs the parent device(s)",
        ),
        (
            "passthrough without parents",
            net("<name>t</name>\n<forward mode='passthrough'/>"),
            3,
            Conflict,
            "forward mode='passthrough' needs the parent device(s)",
        ),
        (
            "bridge mode with neither",
            net("<name>t</name>\n<forward mode='bridge'/>"),
            3,
            Conflict,
            "forward mode='bridge' needs <bridge name='br0'/>",
        ),
        (
            "bridge mode with both",
            net("<name>t</name>\n<forward mode='bridge' dev='eth0'/>\n<bridge name='br0'/>"),
            4,
            Conflict,
            "not both",
        ),
        (
            "passthrough with an ip",
            net("<name>t</name>\n<forward mode='passthrough' dev='eth0'/>\n\n<ip address='10.1.0.1' prefix='24'/>"),
            5,
            Conflict,
            "<ip> is not allowed with forward mode='passthrough'",
        ),
        (
            "private with dns",
            net("<name>t</name>\n<forward mode='private' dev='eth0'/>\n<dns>\n<forwarder addr='8.8.8.8'/>\n</dns>"),
            4,
            Conflict,
            "<dns> is not allowed with forward mode='private'",
        ),
        (
            "vepa with a domain",
            net("<name>t</name>\n<forward mode='vepa' dev='eth0'/>\n<domain name='x.example'/>"),
            4,
            Conflict,
            "<domain> is not allowed",
        ),
        (
            "host bridge with an mtu",
            net("<name>t</name>\n<forward mode='bridge'/>\n<bridge name='br0'/>\n<mtu size='9000'/>"),
            5,
            Conflict,
            "<mtu> is not allowed with forward mode='bridge'",
        ),
        (
            "host bridge with a mac",
            net("<name>t</name>\n<forward mode='bridge'/>\n<bridge name='br0'/>\n<mac address='52:54:00:00:00:01'/>"),
            5,
            Conflict,
            "<mac> is not allowed",
        ),
        (
            "bridge name in vepa mode",
            net("<name>t</name>\n<forward mode='vepa' dev='eth0'/>\n<bridge name='br0'/>"),
            4,
            Conflict,
            "a bridge name is not allowed in forward mode='vepa'",
        ),
        (
            "stp in bridge mode (even the default)",
            net("<name>t</name>\n<forward mode='bridge'/>\n<bridge name='br0' stp='on'/>"),
            4,
            Conflict,
            "bridge stp/delay only apply to bridges virtgate creates",
        ),
        (
            "forward dev differs from the first interface",
            net("<name>t</name>\n<forward mode='vepa' dev='eth0'>\n<interface dev='eth1'/>\n</forward>"),
            4,
            Conflict,
            "<forward dev='eth0'> must name the first <interface dev='eth1'/>",
        ),
        (
            "interface listed twice",
            net("<name>t</name>\n<forward mode='vepa'>\n<interface dev='eth1'/>\n<interface dev='eth1'/>\n</forward>"),
            5,
            Conflict,
            "interface 'eth1' is listed twice",
        ),
        (
            "interface without dev",
            net("<name>t</name>\n<forward mode='vepa'>\n<interface/>\n</forward>"),
            4,
            InvalidValue,
            "<interface> has no dev= attribute",
        ),
        (
            "nat in route mode",
            net("<name>t</name>\n<forward mode='route'>\n<nat><port start='1024' end='2047'/></nat>\n</forward>\n<ip address='10.1.0.1' prefix='24'/>"),
            4,
            Conflict,
            "<nat> is only allowed in <forward mode='nat'>, not mode='route'",
        ),
        (
            "unknown forward mode",
            net("<name>t</name>\n<forward mode='masquerade'/>"),
            3,
            InvalidValue,
            "unknown forward mode 'masquerade'",
        ),
        (
            "openvswitch on a NAT network",
            net("<name>t</name>\n<forward/>\n<ip address='10.1.0.1' prefix='24'/>\n<virtualport type='openvswitch'/>"),
            5,
            Conflict,
            "<virtualport> is for networks on an existing bridge",
        ),
        (
            "openvswitch without a bridge name",
            net("<name>t</name>\n<forward mode='bridge' dev='eth0'/>\n<virtualport type='openvswitch'/>"),
            4,
            Conflict,
            "<virtualport type='openvswitch'> needs <bridge name>",
        ),
        (
            "virtualport without type",
            net("<name>t</name>\n<forward mode='bridge'/>\n<bridge name='ovsbr0'/>\n<virtualport/>"),
            5,
            InvalidValue,
            "needs type=",
        ),
    ]);
}

#[test]
fn nat_ports_addresses_mtu_mac_dns() {
    use ErrorKind::{Conflict, InvalidValue};
    let nat = |inner: &str| {
        net(&format!(
            "<name>t</name>\n<forward mode='nat'>\n<nat>\n{inner}\n</nat>\n</forward>\n<ip address='10.1.0.1' prefix='24'/>"
        ))
    };
    run(&[
        ("port 0", nat("<port start='0' end='1023'/>"), 5, InvalidValue, "start='0' must be a port number 1-65535"),
        ("port 65536", nat("<port start='1024' end='65536'/>"), 5, InvalidValue, "end='65536' must be a port number"),
        ("ports backwards", nat("<port start='2000' end='1999'/>"), 5, InvalidValue, "NAT port range 2000-1999 ends before it starts"),
        ("port without end", nat("<port start='2000'/>"), 5, InvalidValue, "<port> has no end= attribute"),
        ("addresses backwards", nat("<address start='203.0.113.9' end='203.0.113.1'/>"), 5, InvalidValue, "ends before it starts"),
        ("two port elements", nat("<port start='1' end='2'/>\n<port start='3' end='4'/>"), 6, ErrorKind::Syntax, "<port> appears more than once in <nat>"),
        ("mtu too small", net("<name>t</name>\n<mtu size='50'/>"), 3, InvalidValue, "mtu size 50 is outside 68-65535"),
        ("mtu too big", net("<name>t</name>\n<mtu size='65536'/>"), 3, InvalidValue, "outside 68-65535"),
        ("mtu not a number", net("<name>t</name>\n<mtu size='jumbo'/>"), 3, InvalidValue, "mtu size 'jumbo' is not a number"),
        ("multicast bridge mac", net("<name>t</name>\n<mac address='33:33:00:00:00:01'/>"), 3, InvalidValue, "bridge MAC 33:33:00:00:00:01 is a multicast address"),
        ("stp neither on nor off", net("<name>t</name>\n<bridge stp='yes'/>"), 3, InvalidValue, "stp='yes' must be 'on' or 'off'"),
        ("negative delay", net("<name>t</name>\n<bridge delay='-1'/>"), 3, InvalidValue, "delay='-1' is not a number"),
        (
            "disabled dns with hosts",
            net("<name>t</name>\n<dns enable='no'>\n<host ip='10.1.0.5'><hostname>a</hostname></host>\n</dns>"),
            3,
            Conflict,
            "<dns enable='no'> cannot have forwarders or hosts",
        ),
        ("dns enable maybe", net("<name>t</name>\n<dns enable='maybe'/>"), 3, InvalidValue, "enable='maybe' must be 'yes' or 'no'"),
        ("empty forwarder", net("<name>t</name>\n<dns>\n<forwarder/>\n</dns>"), 4, InvalidValue, "<forwarder> needs addr= or domain="),
        ("forwarder addr", net("<name>t</name>\n<dns>\n<forwarder addr='dns.example'/>\n</dns>"), 4, InvalidValue, "forwarder addr='dns.example' is not an IP address"),
        ("dns host without names", net("<name>t</name>\n<dns>\n<host ip='10.1.0.5'/>\n</dns>"), 4, InvalidValue, "has no <hostname>"),
        ("dns host without ip", net("<name>t</name>\n<dns>\n<host><hostname>a</hostname></host>\n</dns>"), 4, InvalidValue, "DNS <host> has no ip="),
        (
            "dns host ip twice",
            net("<name>t</name>\n<dns>\n<host ip='10.1.0.5'><hostname>a</hostname></host>\n<host ip='10.1.0.5'><hostname>b</hostname></host>\n</dns>"),
            5,
            Conflict,
            "DNS host 10.1.0.5 appears twice",
        ),
        (
            "bad hostname",
            net("<name>t</name>\n<dns>\n<host ip='10.1.0.5'>\n<hostname>a..b</hostname>\n</host>\n</dns>"),
            4,
            InvalidValue,
            "hostname 'a..b'",
        ),
        (
            "text where none belongs",
            net("<name>t</name>\n<bridge name='virbr1'>\n  virbr2\n</bridge>"),
            4,
            ErrorKind::Syntax,
            "unexpected text inside <bridge>",
        ),
    ]);
}

#[test]
fn validate_in_code_names_the_network() {
    let mut def = NetworkDef::libvirt_default();
    def.ip.as_mut().unwrap().dhcp_hosts.push(DhcpHost::new(
        MacAddr([0x52, 0x54, 0, 0, 0, 1]),
        None,
        Ipv4Addr::new(10, 0, 0, 5),
    ));
    let e = def.validate().unwrap_err();
    assert_eq!(e.line, 0);
    assert_eq!(e.kind, ErrorKind::InvalidValue);
    assert!(
        e.to_string()
            .starts_with("network 'default': DHCP host 10.0.0.5 (52:54:00:00:00:01) is not inside"),
        "{e}"
    );

    // What parse refuses by attribute presence is also refused when built in code.
    let mut def = NetworkDef::new("hb");
    def.forward = Some(Forward::new(ForwardMode::Bridge));
    def.bridge = Bridge::named("br0");
    def.validate().unwrap();
    def.bridge.stp = false;
    let e = def.validate().unwrap_err();
    assert!(e.message.contains("stp/delay"), "{e}");
}

// --- check_overlaps ------------------------------------------------------------------------

fn routed(name: &str, bridge: &str, addr: [u8; 4], prefix: u8) -> NetworkDef {
    let mut def = NetworkDef::new(name);
    def.forward = Some(Forward::new(ForwardMode::Nat));
    def.bridge = Bridge::named(bridge);
    def.ip = Some(IpDef::new(Ipv4Addr::from(addr), prefix));
    def.validate().unwrap();
    def
}

#[test]
fn disjoint_networks_pass() {
    let nets = [
        NetworkDef::libvirt_default(),
        routed("lab", "virbr1", [192, 168, 123, 1], 24),
        routed("big", "virbr2", [10, 0, 0, 1], 16),
        {
            let mut d = NetworkDef::new("hostbr");
            d.forward = Some(Forward::new(ForwardMode::Bridge));
            d.bridge = Bridge::named("br0");
            d
        },
        {
            let mut d = NetworkDef::new("direct");
            let mut f = Forward::new(ForwardMode::Vepa);
            f.interfaces.push("eth1".into());
            d.forward = Some(f);
            d
        },
    ];
    check_overlaps(&nets).unwrap();
    check_overlaps(&[]).unwrap();
}

#[test]
fn overlapping_subnets_are_refused() {
    let a = routed("a", "virbr1", [10, 0, 0, 1], 16);
    let b = routed("b", "virbr2", [10, 0, 5, 1], 24);
    let e = check_overlaps(&[a.clone(), b.clone()]).unwrap_err();
    assert_eq!(
        e,
        NetworkConflict::OverlappingSubnets {
            first: "a".into(),
            first_subnet: "10.0.0.0/16".into(),
            second: "b".into(),
            second_subnet: "10.0.5.0/24".into(),
        }
    );
    assert_eq!(
        e.to_string(),
        "the subnets of networks 'a' (10.0.0.0/16) and 'b' (10.0.5.0/24) overlap; give each \
         network its own range of addresses"
    );
    // Same subnet, other host address: still one subnet.
    let c = routed("c", "virbr3", [10, 0, 5, 2], 24);
    assert!(matches!(
        check_overlaps(&[b, c]),
        Err(NetworkConflict::OverlappingSubnets { .. })
    ));
    // Adjacent subnets do not overlap.
    check_overlaps(&[
        routed("x", "virbr4", [192, 168, 122, 1], 24),
        routed("y", "virbr5", [192, 168, 123, 1], 24),
    ])
    .unwrap();
}

#[test]
fn duplicate_names_bridges_and_uuids_are_refused() {
    let a = routed("a", "virbr1", [10, 1, 0, 1], 24);
    let same_name = routed("a", "virbr2", [10, 2, 0, 1], 24);
    assert_eq!(
        check_overlaps(&[a.clone(), same_name]),
        Err(NetworkConflict::DuplicateName { name: "a".into() })
    );

    let same_bridge = routed("b", "virbr1", [10, 2, 0, 1], 24);
    let e = check_overlaps(&[a.clone(), same_bridge]).unwrap_err();
    assert_eq!(
        e,
        NetworkConflict::DuplicateBridge {
            first: "a".into(),
            second: "b".into(),
            bridge: "virbr1".into(),
        }
    );
    assert!(e.to_string().contains("both use bridge 'virbr1'"));

    let uuid = "81ff0d90-c91e-6742-64da-4a736edb9a9b".parse().unwrap();
    let mut u1 = routed("u1", "virbr3", [10, 3, 0, 1], 24);
    let mut u2 = routed("u2", "virbr4", [10, 4, 0, 1], 24);
    u1.uuid = Some(uuid);
    u2.uuid = Some(uuid);
    assert_eq!(
        check_overlaps(&[a, u1, u2]),
        Err(NetworkConflict::DuplicateUuid {
            first: "u1".into(),
            second: "u2".into(),
            uuid,
        })
    );
}

#[test]
fn a_new_network_is_checked_against_the_default() {
    // What the daemon does with --network-xml: existing definitions plus the new one.
    let new = NetworkDef::parse(
        "<network><name>clash</name><bridge name='virbr9'/>\
         <ip address='192.168.122.200' netmask='255.255.255.128'>\
         <dhcp><range start='192.168.122.201' end='192.168.122.250'/></dhcp></ip></network>",
        "clash.xml",
    )
    .unwrap()
    .value;
    let e = check_overlaps(&[NetworkDef::libvirt_default(), new]).unwrap_err();
    assert!(
        matches!(e, NetworkConflict::OverlappingSubnets { ref first, .. } if first == "default")
    );
}
