//! Replays a real ISC dhclient 4.4.3 session (tests/fixtures/dhclient-*.hex, captured by
//! tests/fixtures/capture-dhclient.sh against dnsmasq 2.90 set up as libvirt sets it up, with
//! 2-minute leases) and compares our replies byte for byte with dnsmasq's.
//!
//! The engine's pool is the one address dnsmasq picked (192.168.122.115), so both servers choose
//! the same yiaddr; everything else on the wire (fixed fields, option order and values, padding)
//! must match dnsmasq's replies exactly. dnsmasq randomises T1/T2 on renewals ("fuzz"), which we
//! don't; that one reply is compared with T1/T2 set to RFC 2131 §4.4.5's defaults.

mod common;

use std::time::Duration;

use common::*;
use virtgate_dhcp::dhcproto::v4::MessageType;
use virtgate_dhcp::{Config, Destination, LeaseEvent, LeaseTime, MacAddr, Range};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/dhclient-{name}.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

const GUEST: Ipv4 = Ipv4::new(192, 168, 122, 115);
type Ipv4 = std::net::Ipv4Addr;
const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x77, 0, 0x20]);

fn capture_net() -> Net {
    let mut c: Config = libvirt_default();
    c.ranges = vec![Range::new(GUEST, GUEST)];
    c.default_lease = LeaseTime::Finite(Duration::from_secs(120));
    Net::new(c)
}

/// Set the values of options 58 and 59 in an encoded reply.
fn set_t1_t2(bytes: &mut [u8], t1: u32, t2: u32) {
    let mut i = 240;
    while i + 1 < bytes.len() && bytes[i] != 255 {
        let len = usize::from(bytes[i + 1]);
        match bytes[i] {
            58 => bytes[i + 2..i + 6].copy_from_slice(&t1.to_be_bytes()),
            59 => bytes[i + 2..i + 6].copy_from_slice(&t2.to_be_bytes()),
            _ => {}
        }
        i += 2 + len;
    }
}

#[test]
fn dhclient_session_matches_dnsmasq_byte_for_byte() {
    let mut net = capture_net();
    let unicast_hw = Destination::UnicastToHardware {
        ip: GUEST,
        mac: MAC,
    };

    // INIT → SELECTING: dhclient broadcasts with flags 0, so the OFFER goes unicast to the MAC.
    let offer = net.send(&fixture("01-discover")).expect("offer");
    assert_eq!(offer.msg_type, MessageType::Offer);
    assert_eq!(offer.to, unicast_hw);
    assert_eq!(offer.bytes, fixture("02-offer"));
    assert!(net.events().is_empty(), "an offer is not a lease");

    net.advance(Duration::from_secs(3));
    let ack = net.send(&fixture("03-request-selecting")).expect("ack");
    assert_eq!(ack.to, unicast_hw);
    assert_eq!(ack.bytes, fixture("04-ack-selecting"));
    assert_eq!(
        net.events(),
        vec![LeaseEvent::Added {
            mac: MAC,
            ip: GUEST,
            hostname: Some("guest-a".into())
        }]
    );

    // dhclient restarted: INIT-REBOOT (requested address, no server id), twice.
    net.advance(Duration::from_secs(1));
    let ack = net.send(&fixture("05-request-init-reboot")).expect("ack");
    assert_eq!(ack.bytes, fixture("06-ack-init-reboot"));
    net.advance(Duration::from_secs(1));
    let ack = net.send(&fixture("07-request-init-reboot-2")).expect("ack");
    assert_eq!(ack.bytes, fixture("08-ack-init-reboot-2"));
    assert!(matches!(
        net.events()[..],
        [LeaseEvent::Renewed { .. }, LeaseEvent::Renewed { .. }]
    ));

    // RENEWING at T1 (60 s): unicast from the bound address, answered to ciaddr.
    net.advance(Duration::from_secs(60));
    let ack = net
        .send_unicast(GUEST, &fixture("09-request-renewing"))
        .expect("ack");
    assert_eq!(ack.to, Destination::Unicast(GUEST));
    let mut want = fixture("10-ack-renewing");
    set_t1_t2(&mut want, 60, 105);
    assert_eq!(ack.bytes, want);

    // dhclient -r.
    net.advance(Duration::from_secs(11));
    assert!(net.send_unicast(GUEST, &fixture("11-release")).is_none());
    assert!(matches!(
        net.events()[..],
        [
            LeaseEvent::Renewed { .. },
            LeaseEvent::Released { ip: GUEST, .. }
        ]
    ));
    assert!(net.engine.leases(net.now, net.wall_now()).is_empty());

    // Debian's stock dhclient.conf: a longer PRL that includes host-name (12), which dnsmasq
    // echoes in the ACK but not in the OFFER.
    net.advance(Duration::from_secs(1));
    let offer = net
        .send(&fixture("12-discover-debian-default"))
        .expect("offer");
    assert_eq!(offer.bytes, fixture("13-offer-debian-default"));
    net.advance(Duration::from_secs(3));
    let ack = net
        .send(&fixture("14-request-selecting-debian-default"))
        .expect("ack");
    assert_eq!(ack.bytes, fixture("15-ack-debian-default"));
    net.advance(Duration::from_secs(1));
    let ack = net
        .send(&fixture("16-request-init-reboot-debian-default"))
        .expect("ack");
    assert_eq!(ack.bytes, fixture("17-ack-init-reboot-debian-default"));

    let s = net.engine.stats();
    assert_eq!((s.discovers, s.requests, s.releases), (2, 6, 1));
    assert_eq!((s.offers, s.acks, s.naks, s.malformed), (2, 6, 0, 0));
}

/// Our parser reads what dhclient sent the way dnsmasq did.
#[test]
fn parses_dhclient_messages() {
    let d = virtgate_dhcp::parse_request(&fixture("01-discover")).unwrap();
    assert_eq!(d.msg_type, MessageType::Discover);
    assert_eq!(d.mac, MAC);
    assert_eq!(d.hostname.as_deref(), Some("guest-a"));
    assert_eq!(d.prl.as_deref(), Some(PRL_REALPEER));
    assert_eq!(d.client_id, None);
    assert!(!d.broadcast_flag());

    let d = virtgate_dhcp::parse_request(&fixture("12-discover-debian-default")).unwrap();
    assert_eq!(d.prl.as_deref(), Some(PRL_DEBIAN));

    let r = virtgate_dhcp::parse_request(&fixture("03-request-selecting")).unwrap();
    assert_eq!(r.server_id, Some(SERVER));
    assert_eq!(r.requested_ip, Some(GUEST));

    let r = virtgate_dhcp::parse_request(&fixture("09-request-renewing")).unwrap();
    assert_eq!((r.server_id, r.requested_ip), (None, None));
    assert_eq!(r.ciaddr(), GUEST);

    // dnsmasq's replies are BOOTREPLYs: a server must ignore them.
    assert!(matches!(
        virtgate_dhcp::parse_request(&fixture("02-offer")),
        Err(virtgate_dhcp::ParseError::NotRequest(2))
    ));
}

/// The dhcproto-built messages of the harness carry the same options as the real ones.
#[test]
fn harness_builds_what_dhclient_sends() {
    let g = Guest::dhclient(MAC.0, "guest-a");
    let ours = virtgate_dhcp::parse_request(&g.discover()).unwrap();
    let real = virtgate_dhcp::parse_request(&fixture("01-discover")).unwrap();
    assert_eq!(
        (
            ours.msg_type,
            ours.mac,
            ours.hostname,
            ours.prl,
            ours.client_id
        ),
        (
            real.msg_type,
            real.mac,
            real.hostname,
            real.prl,
            real.client_id
        )
    );
    let ours = virtgate_dhcp::parse_request(&g.request_selecting(SERVER, GUEST)).unwrap();
    let real = virtgate_dhcp::parse_request(&fixture("03-request-selecting")).unwrap();
    assert_eq!(
        (ours.server_id, ours.requested_ip, ours.ciaddr()),
        (real.server_id, real.requested_ip, real.ciaddr())
    );
    let ours = virtgate_dhcp::parse_request(&g.release(SERVER, GUEST)).unwrap();
    let real = virtgate_dhcp::parse_request(&fixture("11-release")).unwrap();
    assert_eq!(
        (ours.msg_type, ours.server_id, ours.ciaddr(), ours.prl),
        (real.msg_type, real.server_id, real.ciaddr(), real.prl)
    );
}
