//! Byte-exact tests against the real-peer captures (poptop pptpd server, pptp-linux client).

use std::net::Ipv4Addr;
use virtgate_fixtures::read_capture;
use virtgate_pptp::control::{
    message_type, ControlMessage, Deframer, OutgoingCallResult, StartResult, PROTOCOL_VERSION,
};
use virtgate_pptp::gre::GreHeader;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 20);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);
const ALL: [&str; 3] = [
    "mschapv2-mppe128-stateless.pcap",
    "chap-md5-no-mppe.pcap",
    "bad-password.pcap",
];

fn messages(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut d = Deframer::new();
    d.push(stream);
    let mut out = Vec::new();
    while let Some(m) = d.next_message().expect("captured stream frames cleanly") {
        out.push(m);
    }
    assert_eq!(d.buffered(), 0, "no partial message left");
    out
}

#[test]
fn every_captured_control_message_round_trips_byte_exact() {
    let mut seen = Vec::new();
    for name in ALL {
        let c = read_capture(name);
        for from in [CLIENT, SERVER] {
            for raw in messages(&c.control_stream(from)) {
                let msg = ControlMessage::parse(&raw)
                    .unwrap_or_else(|e| panic!("{name}: {e}: {raw:02x?}"));
                assert!(
                    !matches!(msg, ControlMessage::Unknown { .. }),
                    "{name}: all captured types are known"
                );
                assert_eq!(msg.emit(), raw, "{name}: {msg:?}");
                seen.push(msg.message_type());
            }
        }
    }
    seen.sort_unstable();
    seen.dedup();
    use message_type::*;
    assert_eq!(seen, [SCCRQ, SCCRP, OCRQ, OCRP, CCRQ]);
}

#[test]
fn captured_messages_have_the_expected_fields() {
    let c = read_capture("mschapv2-mppe128-stateless.pcap");
    let cli = messages(&c.control_stream(CLIENT));
    let srv = messages(&c.control_stream(SERVER));
    match ControlMessage::parse(&cli[0]) {
        Ok(ControlMessage::Sccrq(m)) => {
            assert_eq!(m.protocol_version, PROTOCOL_VERSION);
            assert_eq!(m.host_name.to_string(), "local");
            assert_eq!(m.vendor_string.to_string(), "cananian");
            assert_eq!((m.framing_capabilities, m.bearer_capabilities), (3, 3));
            assert_eq!(m.maximum_channels, 0xffff);
        }
        other => panic!("{other:?}"),
    }
    match ControlMessage::parse(&srv[0]) {
        Ok(ControlMessage::Sccrp(m)) => {
            assert_eq!(m.result, StartResult::Ok);
            assert_eq!(m.vendor_string.to_string(), "linux");
            assert_eq!(m.maximum_channels, 1);
        }
        other => panic!("{other:?}"),
    }
    match ControlMessage::parse(&cli[1]) {
        Ok(ControlMessage::Ocrq(m)) => {
            assert_eq!(m.call_id, 0x0191);
            assert_eq!((m.minimum_bps, m.maximum_bps), (2400, 10_000_000));
            assert_eq!(m.recv_window, 3);
            assert!(m.phone_number.is_empty());
        }
        other => panic!("{other:?}"),
    }
    match ControlMessage::parse(&srv[1]) {
        Ok(ControlMessage::Ocrp(m)) => {
            assert_eq!(m.result, OutgoingCallResult::Connected);
            assert_eq!((m.call_id, m.peer_call_id), (0, 0x0191));
            assert_eq!(m.connect_speed, 10_000_000);
        }
        other => panic!("{other:?}"),
    }
    let bad = read_capture("bad-password.pcap");
    let cli = messages(&bad.control_stream(CLIENT));
    assert_eq!(
        ControlMessage::parse(&cli[2]),
        Ok(ControlMessage::Ccrq { call_id: 0xb138 })
    );
}

#[test]
fn every_captured_gre_packet_parses_and_length_matches() {
    for name in ALL {
        let c = read_capture(name);
        let mut data = 0;
        let mut ack_only = 0;
        for (p, b) in c.gre() {
            let (h, hl) =
                GreHeader::parse(b).unwrap_or_else(|e| panic!("{name} #{}: {e}", p.index));
            assert_eq!(
                hl + usize::from(h.payload_len),
                b.len(),
                "{name} #{}",
                p.index
            );
            assert_eq!(h.len(), hl);
            // emit gives back the captured header bytes
            let mut out = [0u8; 16];
            assert_eq!(h.emit(&mut out), hl);
            assert_eq!(&out[..hl], &b[..hl], "{name} #{}", p.index);
            // keys: the receiver's call id (server's is 0 in these captures, client's from OCRQ)
            if p.dst == SERVER {
                assert_eq!(h.call_id, 0, "{name}");
            }
            if h.seq.is_some() {
                data += 1;
            } else {
                assert_eq!(h.payload_len, 0);
                assert!(h.ack.is_some());
                ack_only += 1;
            }
        }
        assert!(
            data > 10 && ack_only > 0,
            "{name}: {data} data, {ack_only} ack-only"
        );
    }
}

#[test]
fn captured_gre_sequences_through_a_channel_per_direction() {
    use std::time::{Duration, Instant};
    use virtgate_pptp::gre::{DropReason, GreChannel, RxVerdict};
    // Replay the client→server packets into a server-side channel (local id 0, peer 0x0191):
    // in order, no loss in the capture, so everything with payload is delivered.
    let c = read_capture("mschapv2-mppe128-stateless.pcap");
    let t0 = Instant::now();
    let first = c.packets[0].ts_micros;
    let mut server = GreChannel::new(0, 0x0191, 3);
    let mut delivered = 0;
    for (p, b) in c.gre().filter(|(p, _)| p.dst == SERVER) {
        let (h, _) = GreHeader::parse(b).expect("valid");
        let now = t0 + Duration::from_micros(p.ts_micros - first);
        match server.receive(now, &h) {
            RxVerdict::Deliver => delivered += 1,
            RxVerdict::Drop(DropReason::AckOnly) => {}
            other => panic!("#{}: {other:?}", p.index),
        }
    }
    let s = server.stats();
    assert_eq!(s.rx_duplicate + s.rx_late + s.rx_gaps, 0);
    assert_eq!(delivered as u64, s.rx_packets);
    assert!(delivered > 40);
    // The client acked sequence numbers we (acting as the server) never sent from this
    // channel, so they count as bad acks: the channel does not trust acks beyond its sends.
    assert!(s.rx_bad_ack > 0);
}
