//! `virsh net-update` on a definition: `ip-dhcp-host` and `dns-host` with add, add-first,
//! delete and modify, matched the way libvirt matches them. A refused update changes nothing.

use std::net::{IpAddr, Ipv4Addr};

use virtgate_config::libvirt::{
    DhcpHost, DnsHost, Lease, MacAddr, NetworkDef, UpdateOp, UpdateSection,
};
use virtgate_config::ErrorKind;

use UpdateOp::{AddFirst, AddLast, Delete, Modify};
use UpdateSection::{DnsHost as Dns, IpDhcpHost as Dhcp};

fn mac(last: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, last])
}

fn v4(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 122, last)
}

fn hosts(def: &NetworkDef) -> Vec<(MacAddr, Option<String>, Ipv4Addr)> {
    def.ip
        .as_ref()
        .unwrap()
        .dhcp_hosts
        .iter()
        .map(|h| (h.mac, h.name.clone(), h.ip))
        .collect()
}

/// The default network with two reservations.
fn net() -> NetworkDef {
    let mut def = NetworkDef::libvirt_default();
    def.update(
        Dhcp,
        AddLast,
        "<host mac='52:54:00:00:00:21' name='vm1' ip='192.168.122.21'/>",
    )
    .unwrap();
    def.update(
        Dhcp,
        AddLast,
        "<host mac='52:54:00:00:00:22' name='vm2' ip='192.168.122.22'/>",
    )
    .unwrap();
    def
}

/// Asserts `update` fails with `kind` and `needle` and leaves the definition unchanged.
fn refused(
    def: &mut NetworkDef,
    s: UpdateSection,
    op: UpdateOp,
    xml: &str,
    kind: ErrorKind,
    needle: &str,
) {
    let before = def.clone();
    let e = def.update(s, op, xml).unwrap_err();
    assert_eq!(e.kind, kind, "{e}");
    assert!(e.message.contains(needle), "{e}");
    assert!(e.to_string().starts_with("network 'default':"), "{e}");
    assert_eq!(*def, before, "a refused update changed the definition");
}

#[test]
fn dhcp_host_add_last_and_first() {
    let mut def = net();
    assert_eq!(
        hosts(&def),
        vec![
            (mac(0x21), Some("vm1".into()), v4(21)),
            (mac(0x22), Some("vm2".into()), v4(22))
        ]
    );
    def.update(Dhcp, AddFirst, "<host mac='52:54:00:00:00:20' ip='192.168.122.20'>\n<lease expiry='1' unit='hours'/>\n</host>")
        .unwrap();
    let first = &def.ip.as_ref().unwrap().dhcp_hosts[0];
    assert_eq!((first.mac, first.ip), (mac(0x20), v4(20)));
    assert!(matches!(first.lease, Some(Lease::Finite { expiry: 1, .. })));
    // The result is a valid definition that survives dumpxml.
    assert_eq!(NetworkDef::parse(&def.to_xml(), "x").unwrap().value, def);
}

#[test]
fn dhcp_host_add_refuses_what_already_matches() {
    let mut def = net();
    refused(&mut def, Dhcp, AddLast, "<host mac='52:54:00:00:00:21' ip='192.168.122.30'/>",
        ErrorKind::Conflict, "there is an existing DHCP host in network 'default' that matches <host mac='52:54:00:00:00:21'");
    refused(
        &mut def,
        Dhcp,
        AddLast,
        "<host mac='52:54:00:00:00:30' ip='192.168.122.22'/>",
        ErrorKind::Conflict,
        "existing DHCP host",
    );
    refused(
        &mut def,
        Dhcp,
        AddLast,
        "<host mac='52:54:00:00:00:30' name='vm1' ip='192.168.122.30'/>",
        ErrorKind::Conflict,
        "existing DHCP host",
    );
    // Validation of the result: outside the subnet, on the bridge address.
    refused(
        &mut def,
        Dhcp,
        AddLast,
        "<host mac='52:54:00:00:00:30' ip='10.0.0.30'/>",
        ErrorKind::InvalidValue,
        "is not inside the network's subnet 192.168.122.0/24",
    );
    refused(
        &mut def,
        Dhcp,
        AddLast,
        "<host mac='52:54:00:00:00:30' ip='192.168.122.1'/>",
        ErrorKind::InvalidValue,
        "the bridge's own address",
    );
    // Incomplete or wrong elements.
    refused(
        &mut def,
        Dhcp,
        AddLast,
        "<host ip='192.168.122.30'/>",
        ErrorKind::Refused,
        "without mac=",
    );
    refused(
        &mut def,
        Dhcp,
        AddLast,
        "<host mac='52:54:00:00:00:30'/>",
        ErrorKind::InvalidValue,
        "<host> has no ip=",
    );
    refused(
        &mut def,
        Dhcp,
        AddLast,
        "<range start='192.168.122.2' end='192.168.122.9'/>",
        ErrorKind::InvalidValue,
        "unexpected element <range> for section ip-dhcp-host; expecting <host>",
    );
    refused(
        &mut def,
        Dhcp,
        AddLast,
        "<host mac='52:54:00:00:00:30' ip='192.168.122.30' frob='1'/>",
        ErrorKind::Refused,
        "attribute 'frob' of <host>",
    );
    refused(
        &mut def,
        Dhcp,
        AddLast,
        "<host mac='52:54:00:00:00:30'\n ip='192.168.122.30'",
        ErrorKind::Syntax,
        "malformed XML",
    );
}

#[test]
fn dhcp_host_delete_matches_every_given_attribute() {
    let mut def = net();
    // mac matches vm1 but ip is vm2's: no entry has both.
    refused(
        &mut def,
        Dhcp,
        Delete,
        "<host mac='52:54:00:00:00:21' ip='192.168.122.22'/>",
        ErrorKind::Conflict,
        "no DHCP host in network 'default' matches",
    );
    refused(
        &mut def,
        Dhcp,
        Delete,
        "<host/>",
        ErrorKind::InvalidValue,
        "needs at least one of mac=, name=, ip=",
    );
    def.update(Dhcp, Delete, "<host ip='192.168.122.22'/>")
        .unwrap();
    assert_eq!(hosts(&def), vec![(mac(0x21), Some("vm1".into()), v4(21))]);
    def.update(Dhcp, Delete, "<host mac='52:54:00:00:00:21' name='vm1'/>")
        .unwrap();
    assert!(hosts(&def).is_empty());
    // The XML no longer has a <dhcp> host section but the range is still there.
    assert!(!def.to_xml().contains("<host"));
    assert_eq!(def, NetworkDef::libvirt_default());
}

#[test]
fn dhcp_host_modify_replaces_the_entry_found_by_mac_ip_or_name() {
    let mut def = net();
    def.update(
        Dhcp,
        Modify,
        "<host mac='52:54:00:00:00:21' name='vm1' ip='192.168.122.41'/>",
    )
    .unwrap();
    assert_eq!(hosts(&def)[0], (mac(0x21), Some("vm1".into()), v4(41)));
    // Found by name: the MAC changes (a guest got a new NIC).
    def.update(
        Dhcp,
        Modify,
        "<host mac='52:54:00:00:00:42' name='vm2' ip='192.168.122.22'/>",
    )
    .unwrap();
    assert_eq!(hosts(&def)[1], (mac(0x42), Some("vm2".into()), v4(22)));
    refused(
        &mut def,
        Dhcp,
        Modify,
        "<host mac='52:54:00:00:00:99' name='vm9' ip='192.168.122.99'/>",
        ErrorKind::Conflict,
        "no DHCP host in network 'default' matches",
    );
    // A modification that would reserve one address twice is refused as a whole.
    refused(
        &mut def,
        Dhcp,
        Modify,
        "<host mac='52:54:00:00:00:42' ip='192.168.122.41'/>",
        ErrorKind::Conflict,
        "reserved twice",
    );
}

#[test]
fn dhcp_host_on_a_network_without_ip() {
    let mut def = NetworkDef::parse(
        "<network><name>hb</name><forward mode='bridge'/><bridge name='br0'/></network>",
        "hb",
    )
    .unwrap()
    .value;
    let e = def
        .update(
            Dhcp,
            AddLast,
            "<host mac='52:54:00:00:00:30' ip='192.168.122.30'/>",
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("network 'hb' has no <ip>"), "{e}");
}

#[test]
fn dns_host_add_delete() {
    let mut def = net();
    def.update(Dns, AddLast, "<host ip='192.168.122.50'>\n<hostname>printer</hostname>\n<hostname>lp</hostname>\n</host>")
        .unwrap();
    def.update(
        Dns,
        AddFirst,
        "<host ip='fd00::50'><hostname>printer</hostname></host>",
    )
    .unwrap();
    assert_eq!(
        def.dns.hosts,
        vec![
            DnsHost::new("fd00::50".parse().unwrap(), vec!["printer".into()]),
            DnsHost::new(IpAddr::V4(v4(50)), vec!["printer".into(), "lp".into()]),
        ]
    );
    assert_eq!(NetworkDef::parse(&def.to_xml(), "x").unwrap().value, def);

    // Adding a second record for an address is refused (names may repeat across records).
    refused(
        &mut def,
        Dns,
        AddLast,
        "<host ip='192.168.122.50'><hostname>other</hostname></host>",
        ErrorKind::Conflict,
        "already has a DNS host record for 192.168.122.50",
    );
    refused(
        &mut def,
        Dns,
        AddLast,
        "<host ip='192.168.122.51'/>",
        ErrorKind::InvalidValue,
        "has no <hostname>",
    );
    refused(
        &mut def,
        Dns,
        AddLast,
        "<host ip='192.168.122.51'><hostname>bad name</hostname></host>",
        ErrorKind::InvalidValue,
        "hostname 'bad name'",
    );
    // 'printer' is in both records: ambiguous.
    refused(
        &mut def,
        Dns,
        Delete,
        "<host><hostname>printer</hostname></host>",
        ErrorKind::Conflict,
        "2 DNS host records in network 'default' match; give ip= to pick one",
    );
    refused(
        &mut def,
        Dns,
        Delete,
        "<host ip='192.168.122.99'/>",
        ErrorKind::Conflict,
        "no DNS host record",
    );
    def.update(Dns, Delete, "<host><hostname>lp</hostname></host>")
        .unwrap();
    def.update(Dns, Delete, "<host ip='fd00::50'/>").unwrap();
    assert!(def.dns.hosts.is_empty());
    assert!(!def.to_xml().contains("<dns"));
}

#[test]
fn dns_host_modify_is_refused_as_in_libvirt() {
    let mut def = net();
    def.update(
        Dns,
        AddLast,
        "<host ip='192.168.122.50'><hostname>printer</hostname></host>",
    )
    .unwrap();
    refused(
        &mut def,
        Dns,
        Modify,
        "<host ip='192.168.122.50'><hostname>lp</hostname></host>",
        ErrorKind::Refused,
        "cannot be modified, only added or deleted",
    );
}

#[test]
fn dns_host_update_on_a_disabled_dns_is_refused() {
    let mut def = NetworkDef::libvirt_default();
    def.dns.enable = Some(false);
    let e = def
        .update(
            Dns,
            AddLast,
            "<host ip='192.168.122.50'><hostname>p</hostname></host>",
        )
        .unwrap_err();
    assert!(e.message.contains("<dns enable='no'> cannot have"), "{e}");
    assert!(def.dns.hosts.is_empty());
}

#[test]
fn section_and_command_words() {
    assert_eq!("ip-dhcp-host".parse::<UpdateSection>(), Ok(Dhcp));
    assert_eq!("dns-host".parse::<UpdateSection>(), Ok(Dns));
    let e = "ip-dhcp-range".parse::<UpdateSection>().unwrap_err();
    assert!(e.contains("cannot be updated live by virtgate"), "{e}");
    let e = "dns-hosts".parse::<UpdateSection>().unwrap_err();
    assert!(e.contains("unknown section 'dns-hosts'"), "{e}");
    assert_eq!("add".parse::<UpdateOp>(), Ok(AddLast));
    assert_eq!("add-last".parse::<UpdateOp>(), Ok(AddLast));
    assert_eq!("add-first".parse::<UpdateOp>(), Ok(AddFirst));
    assert_eq!("delete".parse::<UpdateOp>(), Ok(Delete));
    assert_eq!("modify".parse::<UpdateOp>(), Ok(Modify));
    assert!("remove".parse::<UpdateOp>().is_err());
    assert_eq!(Dhcp.to_string(), "ip-dhcp-host");
    assert_eq!(AddFirst.to_string(), "add-first");
}

#[test]
fn a_host_built_in_code_equals_the_parsed_one() {
    let mut def = NetworkDef::libvirt_default();
    def.update(
        Dhcp,
        AddLast,
        "<host mac='52:54:00:00:00:21' name='vm1' ip='192.168.122.21'/>",
    )
    .unwrap();
    assert_eq!(
        def.ip.as_ref().unwrap().dhcp_hosts,
        vec![DhcpHost::new(mac(0x21), Some("vm1".into()), v4(21))]
    );
}
