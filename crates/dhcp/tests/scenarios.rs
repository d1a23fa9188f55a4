//! RFC 2131 §4.3 server behaviour on virtual time, with guests built by dhcproto the way ISC
//! dhclient builds its messages (see common/mod.rs).

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use common::*;
use virtgate_dhcp::dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use virtgate_dhcp::dhcproto::Decodable;
use virtgate_dhcp::{
    Config, Destination, LeaseEngine, LeaseEvent, LeaseFileError, LeaseTime, MacAddr, Range,
    StaticHost,
};

fn small_pool(start: &str, end: &str) -> Config {
    let mut c = libvirt_default();
    c.ranges = vec![Range::new(ip(start), ip(end))];
    c
}

fn nak_message(r: &virtgate_dhcp::Reply) -> String {
    let m = decode(r);
    assert_eq!(msg_type(&m), MessageType::Nak);
    assert_eq!(
        r.to,
        Destination::Broadcast,
        "NAKs are broadcast (RFC 2131 §4.1)"
    );
    assert!(m.flags().broadcast());
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        m.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    match m.opts().get(OptionCode::Message) {
        Some(DhcpOption::Message(s)) => s.clone(),
        other => panic!("no message in NAK: {other:?}"),
    }
}

#[test]
fn dora_with_the_realpeer_option_set() {
    let mut net = Net::new(libvirt_default());
    let g = Guest::dhclient([0x52, 0x54, 0, 0x77, 0, 0x20], "guest-a");

    let offer = net.send(&g.discover()).expect("offer");
    let o = decode(&offer);
    let a = o.yiaddr();
    assert_eq!(msg_type(&o), MessageType::Offer);
    let n = a.octets()[3];
    assert!(
        a.octets()[..3] == [192, 168, 122] && (2..=254).contains(&n) && n != 50,
        "{a}"
    );
    assert_eq!(
        offer.to,
        Destination::UnicastToHardware {
            ip: a,
            mac: MacAddr(g.mac)
        }
    );
    assert_eq!(o.xid(), g.xid);
    assert_eq!(o.chaddr(), &g.mac);
    assert_eq!(o.siaddr(), SERVER);
    assert_eq!(
        wire_option_order(&offer.bytes),
        vec![53, 54, 51, 58, 59, 1, 28, 3, 6],
        "no domain or MTU configured, host name only echoed in ACKs"
    );
    assert_eq!(
        lease_secs(&o),
        Some(3600),
        "libvirt/dnsmasq default: one hour"
    );
    assert_eq!(
        o.opts().get(OptionCode::Renewal),
        Some(&DhcpOption::Renewal(1800))
    );
    assert_eq!(
        o.opts().get(OptionCode::Rebinding),
        Some(&DhcpOption::Rebinding(3150))
    );
    assert_eq!(
        o.opts().get(OptionCode::Router),
        Some(&DhcpOption::Router(vec![SERVER]))
    );
    assert_eq!(
        o.opts().get(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![SERVER]))
    );
    assert_eq!(
        o.opts().get(OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(ip("255.255.255.0")))
    );
    assert_eq!(
        o.opts().get(OptionCode::BroadcastAddr),
        Some(&DhcpOption::BroadcastAddr(ip("192.168.122.255")))
    );
    assert!(offer.bytes.len() >= 300);
    assert!(net.events().is_empty());

    let ack = net.send(&g.request_selecting(SERVER, a)).expect("ack");
    let m = decode(&ack);
    assert_eq!(msg_type(&m), MessageType::Ack);
    assert_eq!(m.yiaddr(), a);
    assert_eq!(hostname_opt(&m), None, "12 is not in this PRL");
    assert_eq!(
        net.events(),
        vec![LeaseEvent::Added {
            mac: MacAddr(g.mac),
            ip: a,
            hostname: Some("guest-a".into())
        }]
    );
    let leases = net.engine.leases(net.now, net.wall_now());
    assert_eq!(leases.len(), 1);
    let l = &leases[0];
    assert_eq!(
        (l.ip, l.prefix_len, l.hostname.as_deref()),
        (a, 24, Some("guest-a"))
    );
    assert_eq!(l.expires, Some(net.wall_now() + secs(3600)));
    assert_eq!(
        (l.protocol(), l.client_id_string()),
        ("ipv4", "-".to_string())
    );
}

#[test]
fn options_follow_the_parameter_request_list() {
    let mut c = libvirt_default();
    c.domain = Some("example.lan".into());
    c.mtu = Some(1400);
    let mut net = Net::new(c);

    let mut g = Guest::numbered(1);
    g.prl = PRL_BUILTIN.to_vec(); // asks for 12 and 15, not 26
    let a = net.dora(&mut g);
    let ack = decode(&net.send(&g.request_init_reboot(a)).unwrap());
    assert_eq!(hostname_opt(&ack).as_deref(), Some("vm1"));
    assert_eq!(
        ack.opts().get(OptionCode::DomainName),
        Some(&DhcpOption::DomainName("example.lan".into()))
    );
    assert_eq!(ack.opts().get(OptionCode::InterfaceMtu), None);

    let mut g = Guest::numbered(2);
    g.prl = PRL_REALPEER.to_vec();
    let a = net.dora(&mut g);
    let raw = net.send(&g.request_init_reboot(a)).unwrap();
    assert_eq!(
        wire_option_order(&raw.bytes),
        vec![53, 54, 51, 58, 59, 1, 28, 3, 6, 15, 26]
    );
    assert_eq!(
        decode(&raw).opts().get(OptionCode::InterfaceMtu),
        Some(&DhcpOption::InterfaceMtu(1400))
    );

    // No PRL at all: everything (dnsmasq's in_list(NULL) rule).
    let mut g = Guest::numbered(3);
    g.prl.clear();
    let off = net.send(&{
        let mut m = virtgate_dhcp::parse_request(&g.discover()).unwrap().header;
        m.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Discover));
        encode(&m)
    });
    let order = wire_option_order(&off.unwrap().bytes);
    assert_eq!(order, vec![53, 54, 51, 58, 59, 1, 28, 3, 6, 15, 26]);
}

#[test]
fn reservation_is_honoured_and_never_given_to_others() {
    let mut net = Net::new(small_pool("192.168.122.49", "192.168.122.51"));
    // The reserved guest gets its address and its configured name, whatever it calls itself.
    let mut fixed = Guest::dhclient(FIXED_MAC, "something-else");
    fixed.prl = PRL_DEBIAN.to_vec();
    let off = decode(&net.send(&fixed.discover()).unwrap());
    assert_eq!(off.yiaddr(), FIXED_IP);
    assert_eq!(
        hostname_opt(&off),
        None,
        "client sent a different name: no name in the OFFER"
    );
    let ack = decode(
        &net.send(&fixed.request_selecting(SERVER, FIXED_IP))
            .unwrap(),
    );
    assert_eq!(ack.yiaddr(), FIXED_IP);
    assert_eq!(
        hostname_opt(&ack).as_deref(),
        Some("fixed"),
        "reservation names win"
    );
    assert_eq!(
        net.events(),
        vec![LeaseEvent::Added {
            mac: MacAddr(FIXED_MAC),
            ip: FIXED_IP,
            hostname: Some("fixed".into())
        }]
    );
    net.send_unicast(FIXED_IP, &fixed.release(SERVER, FIXED_IP));
    net.events();

    // Others never get .50, even when it is free and they ask for it.
    let mut got = HashSet::new();
    for n in 1..=2 {
        let g = Guest::numbered(n);
        let o = decode(&net.send(&g.discover_requesting(FIXED_IP)).unwrap());
        assert_ne!(o.yiaddr(), FIXED_IP);
        net.send(&g.request_selecting(SERVER, o.yiaddr())).unwrap();
        got.insert(o.yiaddr());
    }
    assert_eq!(
        got,
        HashSet::from([ip("192.168.122.49"), ip("192.168.122.51")])
    );
    let third = Guest::numbered(3);
    assert!(
        net.send(&third.discover()).is_none(),
        "pool exhausted; .50 stays reserved"
    );
    assert_eq!(net.engine.stats().exhausted, 1);
    let r = net.send(&third.request_init_reboot(FIXED_IP)).unwrap();
    assert_eq!(nak_message(&r), "address reserved");
    let r = net
        .send(&third.request_selecting(SERVER, FIXED_IP))
        .unwrap();
    assert_eq!(nak_message(&r), "address reserved");

    // The reserved guest comes back with no name of its own: its name is offered too.
    fixed.hostname = None;
    let off = decode(&net.send(&fixed.discover()).unwrap());
    assert_eq!(
        (off.yiaddr(), hostname_opt(&off).as_deref()),
        (FIXED_IP, Some("fixed"))
    );
}

#[test]
fn a_client_gets_its_address_back() {
    let mut c = libvirt_default();
    c.default_lease = LeaseTime::Finite(secs(600));
    let mut net = Net::new(c);
    let mut a = Guest::numbered(1);
    let first = net.dora(&mut a);

    // Same client, new DISCOVER while bound: same address.
    assert_eq!(net.dora(&mut a), first);
    // After a release.
    net.send_unicast(first, &a.release(SERVER, first));
    assert_eq!(net.dora(&mut a), first);
    // After expiry, with other clients arriving meanwhile.
    net.advance(secs(601));
    for n in 2..=20 {
        net.dora(&mut Guest::numbered(n));
    }
    assert_eq!(net.dora(&mut a), first);

    // Identified by client identifier (option 61) when it sends one: a new NIC, same address.
    let mut b = Guest::numbered(100);
    b.client_id = Some(b"\xffiaid-duid-of-b".to_vec());
    let b_addr = net.dora(&mut b);
    b.mac = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
    assert_eq!(net.dora(&mut b), b_addr);
    // ... and a different client identifier on the same MAC is a different client.
    let mut b2 = Guest::numbered(100);
    b2.mac = b.mac;
    b2.client_id = Some(b"other".to_vec());
    assert_ne!(net.dora(&mut b2), b_addr);

    // A lease taken without a client id is found again when the guest starts sending one
    // (dhclient → systemd-networkd): MAC match, as dnsmasq does.
    let mut c = Guest::numbered(200);
    let c_addr = net.dora(&mut c);
    c.client_id = Some(vec![1, 0x52, 0x54, 0, 0x10, 0, 200]);
    assert_eq!(net.dora(&mut c), c_addr);
    let leases = net.engine.leases(net.now, net.wall_now());
    let row = leases.iter().find(|l| l.ip == c_addr).unwrap();
    assert_eq!(row.client_id_string(), "01:52:54:00:10:00:c8");
}

#[test]
fn requested_address_is_offered_when_free_and_in_range() {
    let mut net = Net::new(libvirt_default());
    let a = Guest::numbered(1);
    let o = decode(
        &net.send(&a.discover_requesting(ip("192.168.122.77")))
            .unwrap(),
    );
    assert_eq!(o.yiaddr(), ip("192.168.122.77"));
    net.send(&a.request_selecting(SERVER, o.yiaddr())).unwrap();

    let b = Guest::numbered(2);
    for not_given in [
        "192.168.122.77",
        "192.168.122.1",
        "192.168.122.255",
        "10.0.0.9",
        "192.168.122.0",
    ] {
        let o = decode(&net.send(&b.discover_requesting(ip(not_given))).unwrap());
        assert_ne!(o.yiaddr(), ip(not_given));
        assert!(net.engine.config().ranges[0].contains(o.yiaddr()));
    }
}

#[test]
fn renewing_and_rebinding() {
    let mut net = Net::new(libvirt_default());
    let mut g = Guest::numbered(1);
    let a = net.dora(&mut g);
    net.events();

    // T1: unicast RENEW, answered to ciaddr; the lease runs from now again.
    net.advance(secs(1800));
    let r = net.send_unicast(a, &g.request_renew(a)).unwrap();
    assert_eq!(r.to, Destination::Unicast(a));
    let m = decode(&r);
    assert_eq!(
        (msg_type(&m), m.yiaddr(), m.ciaddr()),
        (MessageType::Ack, a, a)
    );
    assert_eq!(
        net.events(),
        vec![LeaseEvent::Renewed {
            mac: MacAddr(g.mac),
            ip: a,
            hostname: Some("vm1".into())
        }]
    );
    let l = &net.engine.leases(net.now, net.wall_now())[0];
    assert_eq!(l.expires, Some(net.wall_now() + secs(3600)));

    // T2: broadcast REBIND.
    net.advance(secs(3150));
    let r = net.send_broadcast_from(a, &g.request_renew(a)).unwrap();
    assert_eq!(r.to, Destination::Unicast(a));
    assert_eq!(msg_type(&decode(&r)), MessageType::Ack);

    // Renewing an address held by someone else: unicast → NAK.
    let mut h = Guest::numbered(2);
    let b = net.dora(&mut h);
    let r = net.send_unicast(b, &g.request_renew(b)).unwrap();
    assert_eq!(nak_message(&r), "lease not found");
    // ... broadcast (REBINDING, maybe another server's lease) → silence.
    assert!(net.send_broadcast_from(b, &g.request_renew(b)).is_none());
    // Our lease is untouched by those.
    assert!(net
        .engine
        .leases(net.now, net.wall_now())
        .iter()
        .any(|l| l.ip == a && l.mac == MacAddr(g.mac)));

    // Authoritative recovery: a client renewing an address we have no record of (lost leases
    // file) gets it if it is free.
    let stranger = Guest::numbered(3);
    let free = ip("192.168.122.201");
    let r = net
        .send_unicast(free, &stranger.request_renew(free))
        .unwrap();
    assert_eq!(msg_type(&decode(&r)), MessageType::Ack);
}

#[test]
fn non_authoritative_server_stays_silent_about_unknown_clients() {
    let mut c = libvirt_default();
    c.authoritative = false;
    let mut net = Net::new(c);
    let g = Guest::numbered(1);
    let x = ip("192.168.122.33");
    assert!(net.send(&g.request_init_reboot(x)).is_none());
    assert!(net.send_broadcast_from(x, &g.request_renew(x)).is_none());
    // Unicast to us about a lease we don't know: NAK (RFC 2131 §4.3.2 RENEWING).
    let r = net.send_unicast(x, &g.request_renew(x)).unwrap();
    assert_eq!(nak_message(&r), "lease not found");
    assert!(net.engine.leases(net.now, net.wall_now()).is_empty());
}

#[test]
fn expiry_and_reuse() {
    let mut c = libvirt_default();
    c.ranges = vec![Range {
        start: ip("192.168.122.10"),
        end: ip("192.168.122.10"),
        lease: finite(120),
    }];
    let mut net = Net::new(c);

    let mut a = Guest::numbered(1);
    let x = net.dora(&mut a);
    assert_eq!(x, ip("192.168.122.10"));
    net.events();
    assert_eq!(net.engine.poll_timeout(), Some(net.now + secs(120)));

    let mut b = Guest::numbered(2);
    assert!(net.send(&b.discover()).is_none(), "only address is leased");

    net.advance(secs(119));
    assert!(net.events().is_empty());
    net.advance(secs(1));
    assert_eq!(
        net.events(),
        vec![LeaseEvent::Expired {
            mac: MacAddr(a.mac),
            ip: x,
            hostname: Some("vm1".into())
        }]
    );
    assert!(net.engine.leases(net.now, net.wall_now()).is_empty());
    assert_eq!(net.engine.poll_timeout(), None);

    // The expired address goes to the next client...
    assert_eq!(net.dora(&mut b), x);
    // ... and its old holder is now refused it.
    let r = net.send(&a.request_init_reboot(x)).unwrap();
    assert_eq!(nak_message(&r), "address in use");
    assert!(net.send(&a.discover()).is_none());
}

#[test]
fn foreign_requests_are_naked() {
    let mut net = Net::new(libvirt_default());
    let mut a = Guest::numbered(1);
    let mut b = Guest::numbered(2);
    let xa = net.dora(&mut a);
    let xb = net.dora(&mut b);

    // A guest moved from another network.
    let stranger = Guest::numbered(3);
    let r = net
        .send(&stranger.request_init_reboot(ip("10.0.0.5")))
        .unwrap();
    assert_eq!(nak_message(&r), "wrong network");
    // A guest with a lease asking for another address (its neighbour's, or one elsewhere).
    let r = net.send(&a.request_init_reboot(xb)).unwrap();
    assert_eq!(nak_message(&r), "wrong address");
    let r = net.send(&a.request_init_reboot(ip("10.0.0.5"))).unwrap();
    assert_eq!(nak_message(&r), "wrong address");
    let r = net.send(&stranger.request_init_reboot(xb)).unwrap();
    assert_eq!(nak_message(&r), "address in use");
    let r = net.send(&stranger.request_selecting(SERVER, xa)).unwrap();
    assert_eq!(nak_message(&r), "address in use");
    // The server's own address and addresses outside the ranges are never leased.
    let r = net.send(&stranger.request_init_reboot(SERVER)).unwrap();
    assert_eq!(nak_message(&r), "address not available");
    let mut c = libvirt_default();
    c.ranges = vec![Range::new(ip("192.168.122.100"), ip("192.168.122.150"))];
    let mut net2 = Net::new(c);
    let r = net2
        .send(&stranger.request_init_reboot(ip("192.168.122.20")))
        .unwrap();
    assert_eq!(nak_message(&r), "address not available");

    // None of that disturbed the real leases.
    let leases: HashSet<_> = net
        .engine
        .leases(net.now, net.wall_now())
        .iter()
        .map(|l| (l.ip, l.mac))
        .collect();
    assert_eq!(
        leases,
        HashSet::from([(xa, MacAddr(a.mac)), (xb, MacAddr(b.mac))])
    );
    assert_eq!(net.engine.stats().naks, 6);
}

#[test]
fn choosing_another_server_frees_our_offer() {
    let mut net = Net::new(small_pool("192.168.122.10", "192.168.122.10"));
    let a = Guest::numbered(1);
    let b = Guest::numbered(2);
    let x = decode(&net.send(&a.discover()).unwrap()).yiaddr();
    assert!(net.send(&b.discover()).is_none(), "held for a");
    assert!(net
        .send(&a.request_selecting(ip("192.168.122.254"), x))
        .is_none());
    assert_eq!(net.engine.stats().for_other_server, 1);
    assert_eq!(decode(&net.send(&b.discover()).unwrap()).yiaddr(), x);
}

#[test]
fn offers_are_held_briefly() {
    let mut net = Net::new(small_pool("192.168.122.10", "192.168.122.10"));
    let a = Guest::numbered(1);
    let mut b = Guest::numbered(2);
    let x = decode(&net.send(&a.discover()).unwrap()).yiaddr();
    assert_eq!(net.engine.poll_timeout(), Some(net.now + secs(30)));
    net.advance(secs(29));
    assert!(net.send(&b.discover()).is_none());
    net.advance(secs(1));
    assert_eq!(net.engine.poll_timeout(), None);
    assert_eq!(net.dora(&mut b), x);
    // a's late REQUEST for it is refused.
    let r = net.send(&a.request_selecting(SERVER, x)).unwrap();
    assert_eq!(nak_message(&r), "address in use");
    assert!(net
        .events()
        .iter()
        .all(|e| matches!(e, LeaseEvent::Added { ip, .. } if *ip == x)));
}

#[test]
fn decline_quarantines_the_address() {
    let mut net = Net::new(libvirt_default());
    let mut a = Guest::numbered(1);
    let x = net.dora(&mut a);
    net.events();

    // Someone else can't decline a's address; a DECLINE naming another server is ignored.
    let other = Guest::numbered(2);
    assert!(net.send(&other.decline(SERVER, x)).is_none());
    assert!(net.send(&a.decline(ip("192.168.122.254"), x)).is_none());
    assert_eq!(net.engine.leases(net.now, net.wall_now()).len(), 1);

    assert!(net.send(&a.decline(SERVER, x)).is_none());
    assert_eq!(
        net.events(),
        vec![LeaseEvent::Released {
            mac: MacAddr(a.mac),
            ip: x,
            hostname: Some("vm1".into())
        }]
    );
    assert!(net.engine.leases(net.now, net.wall_now()).is_empty());
    assert_eq!(net.engine.poll_timeout(), Some(net.now + secs(600)));

    // a gets another address; nobody gets x for 10 minutes, even asking for it.
    let y = net.dora(&mut a);
    assert_ne!(y, x);
    let o = decode(&net.send(&other.discover_requesting(x)).unwrap());
    assert_ne!(o.yiaddr(), x);
    let r = net.send(&other.request_init_reboot(x)).unwrap();
    assert_eq!(nak_message(&r), "address not available");
    net.advance(secs(600));
    let o = decode(&net.send(&other.discover_requesting(x)).unwrap());
    assert_eq!(o.yiaddr(), x);
    assert_eq!(net.engine.stats().declines, 3);
}

#[test]
fn release_frees_the_address() {
    let mut net = Net::new(small_pool("192.168.122.10", "192.168.122.10"));
    let mut a = Guest::numbered(1);
    let mut b = Guest::numbered(2);
    let x = net.dora(&mut a);
    net.events();
    // Only the holder can release it.
    assert!(net.send_unicast(x, &b.release(SERVER, x)).is_none());
    assert!(net.events().is_empty());
    assert!(net.send_unicast(x, &a.release(SERVER, x)).is_none());
    assert_eq!(
        net.events(),
        vec![LeaseEvent::Released {
            mac: MacAddr(a.mac),
            ip: x,
            hostname: Some("vm1".into())
        }]
    );
    assert!(net.engine.leases(net.now, net.wall_now()).is_empty());
    assert_eq!(net.dora(&mut b), x);
    // Releasing twice, or an address not held: ignored.
    assert!(net.send_unicast(x, &a.release(SERVER, x)).is_none());
    assert!(net
        .events()
        .iter()
        .all(|e| matches!(e, LeaseEvent::Added { .. })));
    assert_eq!(net.engine.stats().ignored, 2);
}

#[test]
fn inform_gets_configuration_without_a_lease() {
    let mut c = libvirt_default();
    c.domain = Some("example.lan".into());
    let mut net = Net::new(c);
    let mut g = Guest::numbered(1);
    g.prl = PRL_DEBIAN.to_vec();
    let static_ip = ip("192.168.122.222"); // configured by hand, not leased
    let r = net.send_unicast(static_ip, &g.inform(static_ip)).unwrap();
    assert_eq!(r.to, Destination::Unicast(static_ip));
    let m = decode(&r);
    assert_eq!(
        (msg_type(&m), m.yiaddr(), m.ciaddr()),
        (MessageType::Ack, Ipv4Addr::UNSPECIFIED, static_ip)
    );
    for absent in [
        OptionCode::AddressLeaseTime,
        OptionCode::Renewal,
        OptionCode::Rebinding,
    ] {
        assert_eq!(
            m.opts().get(absent),
            None,
            "RFC 2131 §4.3.5: no lease parameters"
        );
    }
    assert_eq!(
        m.opts().get(OptionCode::Router),
        Some(&DhcpOption::Router(vec![SERVER]))
    );
    assert_eq!(
        m.opts().get(OptionCode::DomainName),
        Some(&DhcpOption::DomainName("example.lan".into()))
    );
    assert!(net.events().is_empty());
    assert!(net.engine.leases(net.now, net.wall_now()).is_empty());

    // BROADCAST flag set (Windows): broadcast reply.
    g.broadcast_flag = true;
    assert_eq!(
        net.send_unicast(static_ip, &g.inform(static_ip))
            .unwrap()
            .to,
        Destination::Broadcast
    );
    // No ciaddr or another subnet: nothing to say.
    assert!(net.send(&g.inform(Ipv4Addr::UNSPECIFIED)).is_none());
    assert!(net.send(&g.inform(ip("10.1.1.1"))).is_none());
    assert_eq!(net.engine.stats().informs, 4);
}

#[test]
fn broadcast_flag_gets_broadcast_replies() {
    let mut net = Net::new(libvirt_default());
    let mut g = Guest::numbered(1);
    g.broadcast_flag = true;
    let r = net.send(&g.discover()).unwrap();
    assert_eq!(r.to, Destination::Broadcast);
    assert!(decode(&r).flags().broadcast());
    let x = decode(&r).yiaddr();
    assert_eq!(
        net.send(&g.request_selecting(SERVER, x)).unwrap().to,
        Destination::Broadcast
    );
}

#[test]
fn exhaustion_across_several_ranges() {
    let mut c = libvirt_default();
    c.ranges = vec![
        Range::new(ip("192.168.122.10"), ip("192.168.122.12")),
        Range {
            start: ip("192.168.122.100"),
            end: ip("192.168.122.101"),
            lease: finite(300),
        },
    ];
    let mut net = Net::new(c);
    let mut got = HashSet::new();
    for n in 1..=5 {
        got.insert(net.dora(&mut Guest::numbered(n)));
    }
    let want: HashSet<Ipv4Addr> = [
        "192.168.122.10",
        "192.168.122.11",
        "192.168.122.12",
        "192.168.122.100",
        "192.168.122.101",
    ]
    .iter()
    .map(|s| ip(s))
    .collect();
    assert_eq!(got, want);
    let late = Guest::numbered(6);
    assert!(net.send(&late.discover()).is_none());
    assert!(net
        .send(&late.discover_requesting(ip("192.168.122.11")))
        .is_none());
    assert_eq!(net.engine.stats().exhausted, 2);
    // The second range's lease time applies to its addresses.
    let rows = net.engine.leases(net.now, net.wall_now());
    for l in rows {
        let want = if l.ip.octets()[3] >= 100 { 300 } else { 3600 };
        assert_eq!(l.expires, Some(net.wall_now() + secs(want)), "{}", l.ip);
    }
}

#[test]
fn lease_times() {
    let mut c = libvirt_default();
    c.hosts[0].lease = Some(LeaseTime::Infinite);
    c.default_lease = LeaseTime::Finite(secs(600));
    let mut net = Net::new(c);

    // Infinite: 0xffffffff and no T1/T2 (RFC 2132 §9.2, §9.11).
    let fixed = Guest::dhclient(FIXED_MAC, "fixed");
    let o = decode(&net.send(&fixed.discover()).unwrap());
    assert_eq!(lease_secs(&o), Some(u32::MAX));
    assert_eq!(o.opts().get(OptionCode::Renewal), None);
    net.send(&fixed.request_selecting(SERVER, FIXED_IP))
        .unwrap();
    let l = net.engine.leases(net.now, net.wall_now());
    assert_eq!(l[0].expires, None);
    assert_eq!(net.engine.poll_timeout(), None);

    // A client may ask for less (option 51), not below two minutes, not more than configured.
    let g = Guest::numbered(1);
    for (asked, got) in [(300u32, 300u32), (60, 120), (100_000, 600)] {
        let mut m = virtgate_dhcp::parse_request(&g.discover()).unwrap().header;
        m.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Discover));
        m.opts_mut().insert(DhcpOption::AddressLeaseTime(asked));
        let o = decode(&net.send(&encode(&m)).unwrap());
        assert_eq!(lease_secs(&o), Some(got), "asked {asked}");
    }
}

#[test]
fn host_names() {
    let mut c = libvirt_default();
    c.default_lease = LeaseTime::Finite(secs(600));
    let mut net = Net::new(c);

    let mut a = Guest::dhclient([0x52, 0x54, 0, 1, 1, 1], "My_Host.example.com");
    let xa = net.dora(&mut a);
    assert_eq!(
        net.events(),
        vec![LeaseEvent::Added {
            mac: MacAddr(a.mac),
            ip: xa,
            hostname: Some("my-host".into())
        }]
    );

    // A guest can't take the reserved host's name.
    let mut imp = Guest::dhclient([0x52, 0x54, 0, 1, 1, 2], "FIXED");
    let xi = net.dora(&mut imp);
    assert_eq!(
        net.events(),
        vec![LeaseEvent::Added {
            mac: MacAddr(imp.mac),
            ip: xi,
            hostname: None
        }]
    );

    // A newer lease takes the name from an older one (a re-created VM with a new MAC).
    let mut a2 = Guest::dhclient([0x52, 0x54, 0, 1, 1, 3], "my-host");
    let xa2 = net.dora(&mut a2);
    assert_eq!(
        net.events(),
        vec![
            LeaseEvent::Renewed {
                mac: MacAddr(a.mac),
                ip: xa,
                hostname: None
            },
            LeaseEvent::Added {
                mac: MacAddr(a2.mac),
                ip: xa2,
                hostname: Some("my-host".into())
            },
        ]
    );

    // A renewal without option 12 keeps the name; one with a new name changes it.
    a2.hostname = None;
    net.send_unicast(xa2, &a2.request_renew(xa2)).unwrap();
    assert_eq!(
        net.events(),
        vec![LeaseEvent::Renewed {
            mac: MacAddr(a2.mac),
            ip: xa2,
            hostname: Some("my-host".into())
        }]
    );
    a2.hostname = Some("renamed".into());
    net.send_unicast(xa2, &a2.request_renew(xa2)).unwrap();
    assert_eq!(
        net.events(),
        vec![LeaseEvent::Renewed {
            mac: MacAddr(a2.mac),
            ip: xa2,
            hostname: Some("renamed".into())
        }]
    );
}

#[test]
fn reservations_added_and_removed_at_run_time() {
    let mut net = Net::new(libvirt_default());
    let mut a = Guest::numbered(1);
    let mut b = Guest::numbered(2);
    let xa = net.dora(&mut a);
    let xb = net.dora(&mut b);
    let target = ip("192.168.122.60");
    net.engine
        .add_static_host(StaticHost {
            mac: MacAddr(a.mac),
            ip: target,
            name: Some("web".into()),
            lease: None,
        })
        .unwrap();
    // a's next renewal is NAKed so it DISCOVERs and lands on its reservation.
    let r = net.send_unicast(xa, &a.request_renew(xa)).unwrap();
    assert_eq!(nak_message(&r), "static lease available");
    assert_eq!(net.dora(&mut a), target);
    // The old lease went away with the move.
    let ips: HashSet<_> = net
        .engine
        .leases(net.now, net.wall_now())
        .iter()
        .map(|l| l.ip)
        .collect();
    assert_eq!(ips, HashSet::from([target, xb]));

    // Reserving b's current address for someone else: b is NAKed at renewal.
    net.engine
        .add_static_host(StaticHost {
            mac: MacAddr([2, 0, 0, 0, 0, 9]),
            ip: xb,
            name: None,
            lease: None,
        })
        .unwrap();
    let r = net.send_unicast(xb, &b.request_renew(xb)).unwrap();
    assert_eq!(nak_message(&r), "address reserved");
    // Invalid additions are refused and change nothing.
    let dup = StaticHost {
        mac: MacAddr([2, 0, 0, 0, 0, 10]),
        ip: target,
        name: None,
        lease: None,
    };
    assert!(net.engine.add_static_host(dup).is_err());
    assert!(net.engine.remove_static_host(MacAddr([2, 0, 0, 0, 0, 9])));
    assert!(!net.engine.remove_static_host(MacAddr([2, 0, 0, 0, 0, 9])));
    let r = net.send_unicast(xb, &b.request_renew(xb)).unwrap();
    assert_eq!(msg_type(&decode(&r)), MessageType::Ack);
}

#[test]
fn restart_from_the_leases_file() {
    let mut c = libvirt_default();
    c.hosts[0].lease = Some(LeaseTime::Infinite);
    let other_reserved = ip("192.168.122.51");
    c.hosts.push(StaticHost {
        mac: MacAddr([0x52, 0x54, 0, 0x77, 0, 0x22]),
        ip: other_reserved,
        name: Some("other".into()),
        lease: None,
    });
    let mut net = Net::new(c.clone());
    let mut a = Guest::dhclient([0x52, 0x54, 0, 0x77, 0, 0x20], "guest-a");
    let mut b = Guest::numbered(2);
    b.client_id = Some(vec![0xff, 0, 0, 0, 1, 0, 1]);
    let mut fixed = Guest::dhclient(FIXED_MAC, "fixed");
    let xa = net.dora(&mut a);
    let xb = net.dora(&mut b);
    assert_eq!(net.dora(&mut fixed), FIXED_IP);
    net.advance(secs(600));
    let mut gone = Guest::numbered(3);
    let xg = net.dora(&mut gone);
    assert!(net.send_unicast(xg, &gone.release(SERVER, xg)).is_none());

    let text = net.engine.to_leases_file(net.now, net.wall_now());
    let base = 1_700_000_000u64;
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert!(
        lines.contains(&format!("{} 52:54:00:77:00:20 {xa} guest-a *", base + 3600).as_str()),
        "{text}"
    );
    assert!(
        lines.contains(
            &format!(
                "{} 52:54:00:10:00:02 {xb} vm2 ff:00:00:00:01:00:01",
                base + 3600
            )
            .as_str()
        ),
        "{text}"
    );
    assert!(
        lines.contains(&format!("0 52:54:00:77:00:21 {FIXED_IP} fixed *").as_str()),
        "{text}"
    );
    assert_eq!(lines.len(), 3, "released leases are not written");

    // The daemon restarts 20 minutes later (new monotonic clock), with a stale and a broken line
    // appended and a lease for a reserved address that isn't the holder's.
    let mut file = text.clone();
    file.push_str("# comment\n\nduid 00:01:00:01\n");
    file.push_str(&format!(
        "{} 52:54:00:99:99:99 192.168.122.99 gone *\n",
        base + 100
    ));
    file.push_str("garbage line\n");
    file.push_str(&format!(
        "{} 52:54:00:99:99:98 {other_reserved} thief *\n",
        base + 9999
    ));
    file.push_str(&format!("{} 52:54:00:99:99:97 {xa} dup *\n", base + 9999));
    let restart_wall = net.wall_now() + secs(1200);
    let t1 = net.now + secs(5000); // the new process's Instant has nothing to do with the old one
    let (mut engine, problems) =
        LeaseEngine::from_leases_file(c.clone(), &file, t1, restart_wall).unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(matches!(
        problems[0],
        LeaseFileError::Syntax { line: 8, .. }
    ));
    assert!(matches!(
        problems[1],
        LeaseFileError::Refused {
            line: 9,
            reason: "address reserved",
            ..
        }
    ));
    assert!(matches!(
        problems[2],
        LeaseFileError::Refused { line: 10, .. }
    ));

    let events: Vec<_> = std::iter::from_fn(|| engine.poll_event()).collect();
    assert_eq!(events.len(), 3, "every restored lease is announced");
    assert!(events.contains(&LeaseEvent::Added {
        mac: MacAddr(a.mac),
        ip: xa,
        hostname: Some("guest-a".into())
    }));

    // Wall-clock expiries survive the restart.
    let rows = engine.leases(t1, restart_wall);
    let row_a = rows.iter().find(|l| l.ip == xa).unwrap();
    assert_eq!(
        row_a.expires,
        Some(std::time::UNIX_EPOCH + secs(base + 3600))
    );
    assert_eq!(
        rows.iter().find(|l| l.ip == FIXED_IP).unwrap().expires,
        None
    );
    assert_eq!(engine.poll_timeout(), Some(t1 + secs(3600 - 600 - 1200)));

    // Honoured: the holders get their addresses back, nobody else gets them.
    let mut net2 = Net {
        engine,
        t0: t1,
        now: t1,
        wall0: restart_wall,
    };
    let r = net2.send(&a.request_init_reboot(xa)).unwrap();
    assert_eq!(msg_type(&decode(&r)), MessageType::Ack);
    let r = net2.send_unicast(xb, &b.request_renew(xb)).unwrap();
    assert_eq!(msg_type(&decode(&r)), MessageType::Ack);
    for n in 10..60 {
        let got = net2.dora(&mut Guest::numbered(n));
        assert!(got != xa && got != xb && got != FIXED_IP);
    }
    let r = net2
        .send(&Guest::numbered(99).request_init_reboot(xb))
        .unwrap();
    assert_eq!(nak_message(&r), "address in use");

    // A leases file written now reads back to the same leases.
    let again = net2.engine.to_leases_file(net2.now, net2.wall_now());
    let (e3, problems) =
        LeaseEngine::from_leases_file(c, &again, net2.now, net2.wall_now()).unwrap();
    assert!(problems.is_empty());
    assert_eq!(
        e3.leases(net2.now, net2.wall_now()),
        net2.engine.leases(net2.now, net2.wall_now())
    );
}

#[test]
fn replies_and_server_messages_are_ignored() {
    let mut net = Net::new(libvirt_default());
    let mut g = Guest::numbered(1);
    let x = net.dora(&mut g);
    // Our own ACK looped back (a BOOTREPLY), and an OFFER type inside a BOOTREQUEST.
    let ack = net.send(&g.request_init_reboot(x)).unwrap();
    assert!(net.send(&ack.bytes).is_none());
    let mut m = virtgate_dhcp::parse_request(&g.discover()).unwrap().header;
    m.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Offer));
    assert!(net.send(&encode(&m)).is_none());
    // A relayed DISCOVER.
    let mut m = virtgate_dhcp::parse_request(&g.discover()).unwrap().header;
    m.set_giaddr(ip("10.9.9.9"));
    m.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    assert!(net.send(&encode(&m)).is_none());
    let s = net.engine.stats();
    assert_eq!((s.bootreplies, s.unexpected_type, s.relayed), (1, 1, 1));
}

#[test]
fn timers() {
    let mut net = Net::new(libvirt_default());
    assert_eq!(net.engine.poll_timeout(), None);
    let mut g = Guest::numbered(1);
    let t = net.now;
    net.send(&g.discover()).unwrap();
    assert_eq!(net.engine.poll_timeout(), Some(t + secs(30)));
    net.advance(secs(5));
    let x = decode(&net.send(&g.discover()).unwrap()).yiaddr();
    assert_eq!(
        net.engine.poll_timeout(),
        Some(t + secs(35)),
        "re-offer restarts the hold"
    );
    net.send(&g.request_selecting(SERVER, x)).unwrap();
    g.new_xid();
    assert_eq!(net.engine.poll_timeout(), Some(net.now + secs(3600)));
    // handle_packet runs due timers itself: a late packet sees the lease expired.
    net.now += secs(3601);
    let other = Guest::numbered(2);
    let r = net.send(&other.request_init_reboot(x)).unwrap();
    assert_eq!(msg_type(&decode(&r)), MessageType::Ack);
    let ev = net.events();
    assert!(
        matches!(
            ev[..],
            [
                LeaseEvent::Added { .. },
                LeaseEvent::Expired { .. },
                LeaseEvent::Added { .. }
            ]
        ),
        "{ev:?}"
    );
}

#[test]
fn replies_fit_what_the_client_accepts() {
    let mut c = libvirt_default();
    c.domain = Some(format!("{}.lan", "d".repeat(246)));
    let mut net = Net::new(c);
    let long = "h".repeat(63);
    let mut g = Guest::dhclient([0x52, 0x54, 0, 9, 9, 9], &long);
    g.prl = PRL_BUILTIN.to_vec();
    let x = net.dora(&mut g);

    // 576-octet datagrams by default (RFC 2131 §2): the host name, last in order, is dropped.
    let r = net.send(&g.request_init_reboot(x)).unwrap();
    assert!(r.bytes.len() <= 548, "{}", r.bytes.len());
    assert_eq!(
        wire_option_order(&r.bytes),
        vec![53, 54, 51, 58, 59, 1, 28, 3, 6, 15]
    );

    // A client announcing a larger maximum (option 57) gets everything.
    let mut m = virtgate_dhcp::parse_request(&g.request_init_reboot(x))
        .unwrap()
        .header;
    let full = virtgate_dhcp::dhcproto::v4::Message::from_bytes(&g.request_init_reboot(x)).unwrap();
    for (_, o) in full.opts().iter() {
        m.opts_mut().insert(o.clone());
    }
    m.opts_mut().insert(DhcpOption::MaxMessageSize(1500));
    let r = net.send(&encode(&m)).unwrap();
    assert_eq!(
        wire_option_order(&r.bytes),
        vec![53, 54, 51, 58, 59, 1, 28, 3, 6, 15, 12]
    );
    assert_eq!(hostname_opt(&decode(&r)), Some(long));
}
