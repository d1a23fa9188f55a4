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
fn replaying_the_server_side_reproduces_pptpds_sequence_numbers() {
    use std::time::{Duration, Instant};
    use virtgate_pptp::gre::{DropReason, GreChannel, RxVerdict, GRE_HEADROOM};
    // Act as the server of the capture: packets from the client go into `receive`, packets the
    // reference server sent are re-encapsulated from their payload. Our sequence numbers must
    // match pptpd's (both start at 0), every ack we piggyback must name the last client packet
    // seen, and the client's acks must all be for packets we sent.
    for name in ["mschapv2-mppe128-stateless.pcap", "chap-md5-no-mppe.pcap"] {
        let c = read_capture(name);
        let t0 = Instant::now();
        let first = c.packets[0].ts_micros;
        // the client's call id (from its OCRQ) keys the server's packets
        let peer_call_id = c
            .gre()
            .find(|(p, _)| p.dst == CLIENT)
            .map(|(_, b)| GreHeader::parse(b).expect("valid").0.call_id)
            .expect("server packets");
        let mut ch = GreChannel::new(0, peer_call_id, 3);
        let (mut delivered, mut sent) = (0u64, 0u64);
        for (p, b) in c.gre() {
            let (h, hl) = GreHeader::parse(b).expect("valid");
            let now = t0 + Duration::from_micros(p.ts_micros - first);
            if p.dst == SERVER {
                match ch.receive(now, &h) {
                    RxVerdict::Deliver => delivered += 1,
                    RxVerdict::Drop(DropReason::AckOnly) => {}
                    other => panic!("{name} #{}: {other:?}", p.index),
                }
                continue;
            }
            let Some(seq) = h.seq else { continue }; // pptpd's own ack-only packets
            let payload = &b[hl..];
            let mut buf = vec![0u8; GRE_HEADROOM + payload.len()];
            buf[GRE_HEADROOM..].copy_from_slice(payload);
            let (s, l) = ch.encapsulate(now, &mut buf, GRE_HEADROOM, payload.len());
            let (ours, _) = GreHeader::parse(&buf[s..s + l]).expect("we emit valid headers");
            assert_eq!(ours.seq, Some(seq), "{name} #{}", p.index);
            assert_eq!((ours.call_id, ours.payload_len), (h.call_id, h.payload_len));
            if let Some(a) = ours.ack {
                assert_eq!(Some(a), ch.last_received_seq(), "{name} #{}", p.index);
            }
            sent += 1;
        }
        let s = ch.stats();
        assert_eq!(
            s.rx_duplicate + s.rx_late + s.rx_gaps,
            0,
            "{name}: clean capture"
        );
        assert_eq!(
            s.rx_bad_ack, 0,
            "{name}: every client ack is for a packet we sent"
        );
        assert_eq!((s.rx_packets, s.tx_packets), (delivered, sent));
        assert!(delivered > 40 && sent > 40, "{name}: {delivered} / {sent}");
        assert!(ch.peer_ack().is_some());
    }
}
