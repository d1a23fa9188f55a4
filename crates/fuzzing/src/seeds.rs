//! The seed corpora in `fuzz/corpus/<target>/`, made from real bytes: every control message and
//! GRE packet of the real-peer captures (`virtgate-fixtures`), the control streams and GRE
//! exchanges replayed as scripts for the state-machine targets (with the capture's timing), and
//! the seed's configuration files with variations.
//!
//! `cargo run -p virtgate-fuzzing --example gen_corpus` writes them; `tests/replay.rs` checks
//! that the committed corpus still holds every one of them.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use virtgate_fixtures::{read_capture, Capture, PacketKind, PPTP_PORT};
use virtgate_pptp::control::{
    defined_length, message_type, Deframer, HEADER_LEN, MAGIC_COOKIE, PPTP_MESSAGE_CONTROL,
};
use virtgate_pptp::{ControlMessage, GreHeader};

use crate::net::{dhcp_config, DhcpScript, DnsScript};
use crate::ppp::{AuthScript, MppeScript, NegScript, SessionScript};
use crate::pptp::{ConnScript, GreScript};
use virtgate_ppp::frame::{FrameHeader, Protocol};

/// The captures in `shared/realpeer/captures`, by file stem.
pub const CAPTURES: [&str; 3] = [
    "mschapv2-mppe128-stateless",
    "chap-md5-no-mppe",
    "bad-password",
];
/// The addresses in the captures (see their README).
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 20);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);

/// One seed file: `fuzz/corpus/<target>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Every seed, for every target that has seeds here.
pub fn all() -> Vec<Seed> {
    let captures: Vec<(&str, Capture)> = CAPTURES
        .iter()
        .map(|stem| (*stem, read_capture(&format!("{stem}.pcap"))))
        .collect();
    let mut out = Vec::new();
    for (stem, cap) in &captures {
        control_seeds(stem, cap, &mut out);
        gre_seeds(stem, cap, &mut out);
        ppp_seeds(stem, cap, &mut out);
    }
    session_seeds(&mut out);
    dhcp_seeds(&mut out);
    dns_seeds(&mut out);
    radius_seeds(&mut out);
    synthetic_control_seeds(&mut out);
    config_seeds(&mut out);
    control_request_seeds(&mut out);
    dedupe(out)
}

/// Keeps the first of seeds with the same target and bytes.
fn dedupe(seeds: Vec<Seed>) -> Vec<Seed> {
    let mut seen = BTreeSet::new();
    seeds
        .into_iter()
        .filter(|s| seen.insert((s.target, s.bytes.clone())))
        .collect()
}

fn seed(target: &'static str, name: impl Into<String>, bytes: Vec<u8>) -> Seed {
    Seed {
        target,
        name: name.into(),
        bytes,
    }
}

fn short_name(msg: &ControlMessage) -> &'static str {
    use message_type::*;
    match msg.message_type() {
        SCCRQ => "sccrq",
        SCCRP => "sccrp",
        STOP_CCRQ => "stopccrq",
        STOP_CCRP => "stopccrp",
        ECHO_REQUEST => "echorq",
        ECHO_REPLY => "echorp",
        OCRQ => "ocrq",
        OCRP => "ocrp",
        ICRQ => "icrq",
        ICRP => "icrp",
        ICCN => "iccn",
        CCRQ => "ccrq",
        CDN => "cdn",
        WEN => "wen",
        SLI => "sli",
        _ => "unknown",
    }
}

fn messages(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut d = Deframer::new();
    d.push(stream);
    let mut out = Vec::new();
    while let Ok(Some(m)) = d.next_message() {
        out.push(m);
    }
    out
}

/// New TCP payload from `from` to or from the PPTP port, in capture order, retransmitted
/// bytes removed, with each segment's timestamp (µs).
fn segments(cap: &Capture, from: Ipv4Addr) -> Vec<(u64, Vec<u8>)> {
    let mut next: Option<u32> = None;
    let mut out = Vec::new();
    for p in &cap.packets {
        if p.src != from {
            continue;
        }
        let PacketKind::Tcp {
            src_port,
            dst_port,
            seq,
            payload,
            ..
        } = &p.kind
        else {
            continue;
        };
        if (*src_port != PPTP_PORT && *dst_port != PPTP_PORT) || payload.is_empty() {
            continue;
        }
        let start = next.unwrap_or(*seq);
        let skip = start.wrapping_sub(*seq) as usize;
        if (start.wrapping_sub(*seq) as i32) < 0 || skip >= payload.len() {
            continue; // a gap (cannot happen in these captures) or a pure retransmission
        }
        out.push((p.ts_micros, payload[skip..].to_vec()));
        next = Some(seq.wrapping_add(payload.len() as u32));
    }
    out
}

fn control_seeds(stem: &str, cap: &Capture, out: &mut Vec<Seed>) {
    for (dir, from) in [("c2s", CLIENT), ("s2c", SERVER)] {
        let stream = cap.control_stream(from);
        for (i, m) in messages(&stream).into_iter().enumerate() {
            let name = match ControlMessage::parse(&m) {
                Ok(msg) => short_name(&msg),
                Err(_) => "bad",
            };
            out.push(seed(
                "pptp_control_roundtrip",
                format!("{stem}-{dir}-{i:02}-{name}"),
                m,
            ));
        }
        let mut d = vec![(stream.len() % 251) as u8];
        d.extend_from_slice(&stream);
        out.push(seed("pptp_deframer", format!("{stem}-{dir}"), d));
    }

    let client_msgs: Vec<ControlMessage> = messages(&cap.control_stream(CLIENT))
        .iter()
        .filter_map(|m| ControlMessage::parse(m).ok())
        .collect();
    let server_msgs: Vec<ControlMessage> = messages(&cap.control_stream(SERVER))
        .iter()
        .filter_map(|m| ControlMessage::parse(m).ok())
        .collect();
    let server_call_id = server_msgs
        .iter()
        .find_map(|m| match m {
            ControlMessage::Ocrp(o) => Some(o.call_id),
            _ => None,
        })
        .unwrap_or(0x4000);
    let client_call_id = client_msgs
        .iter()
        .find_map(|m| match m {
            ControlMessage::Ocrq(o) => Some(o.call_id),
            _ => None,
        })
        .unwrap_or(1);

    // Server: the client's bytes as they came off the wire, with the capture's timing; the
    // daemon accepts the call as pptpd did (same call id).
    let mut s = ConnScript::new(1);
    let mut d = Deframer::new();
    let mut last_ts: Option<u64> = None;
    for (ts, bytes) in segments(cap, CLIENT) {
        if let Some(prev) = last_ts {
            s.advance(Duration::from_micros(ts.saturating_sub(prev)));
        }
        last_ts = Some(ts);
        s.feed(&bytes);
        d.push(&bytes);
        while let Ok(Some(m)) = d.next_message() {
            if let Ok(ControlMessage::Ocrq(_)) = ControlMessage::parse(&m) {
                s.accept(server_call_id);
            }
        }
    }
    out.push(seed("pptp_control_server", stem.to_string(), s.finish()));
    // ... or the daemon stops the connection and the peer never answers.
    let mut stop = s.clone();
    stop.stop(1).jump();
    out.push(seed(
        "pptp_control_server",
        format!("{stem}-stop"),
        stop.finish(),
    ));
    // ... or the timers run out: echo, echo timeout.
    s.jump().jump().jump();
    out.push(seed(
        "pptp_control_server",
        format!("{stem}-timeouts"),
        s.finish(),
    ));

    // Client: placed the call before the server answered (pptp-linux does), then the server's
    // bytes with the capture's timing.
    let mut c = ConnScript::new(1);
    c.accept(client_call_id);
    let mut last_ts: Option<u64> = None;
    for (ts, bytes) in segments(cap, SERVER) {
        if let Some(prev) = last_ts {
            c.advance(Duration::from_micros(ts.saturating_sub(prev)));
        }
        last_ts = Some(ts);
        c.feed(&bytes);
    }
    out.push(seed("pptp_control_client", stem.to_string(), c.finish()));
    let mut clear = c.clone();
    clear.clear_known(0).jump().jump();
    out.push(seed(
        "pptp_control_client",
        format!("{stem}-clear"),
        clear.finish(),
    ));
}

/// A control message with a valid header and a zero body of the type's defined length (12
/// bytes of body for unknown types).
fn zero_message(ctrl_type: u16) -> Vec<u8> {
    let len = defined_length(ctrl_type).unwrap_or(HEADER_LEN + 12);
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    m.extend_from_slice(&PPTP_MESSAGE_CONTROL.to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m.extend_from_slice(&ctrl_type.to_be_bytes());
    m.resize(len, 0);
    m
}

/// Message types the captures do not have, and scripts that take each machine through every
/// message it handles (call ids and versions set, other fields zero).
fn synthetic_control_seeds(out: &mut Vec<Seed>) {
    for t in 1..=16u16 {
        out.push(seed(
            "pptp_control_roundtrip",
            format!("synthetic-type-{t:02}"),
            zero_message(t),
        ));
    }
    out.push(seed(
        "pptp_control_server",
        "synthetic-all-messages",
        server_tour(),
    ));
    out.push(seed(
        "pptp_control_client",
        "synthetic-all-messages",
        client_tour(),
    ));
}

/// Server: start, a call, link info, WAN errors, echoes both ways, an incoming call (refused),
/// a management message, a second call refused by the daemon, the peer's call clear, the peer's
/// stop.
pub fn server_tour() -> Vec<u8> {
    use message_type::*;
    let t = |x: u16| x as u8;
    let mut s = ConnScript::new(2);
    s.message(t(SCCRQ), &[1, 0])
        .message(t(OCRQ), &[0x12, 0x34])
        .accept(0x0042)
        .message(t(SLI), &[0x00, 0x42, 0, 0, 0xff, 0xff, 0xff, 0xff])
        .message(t(WEN), &[0x00, 0x42, 0, 0, 0, 0, 0, 1])
        .message(t(ECHO_REQUEST), &[0, 0, 0, 9])
        .advance(Duration::from_secs(61))
        .message(t(ECHO_REPLY), &[0, 0, 0, 1, 1])
        .message(t(ICRQ), &[0x55, 0x55])
        .message(0x80 | t(SCCRQ), &[1, 0])
        .message(t(OCRQ), &[0x12, 0x35])
        .reject(7)
        .message(t(CCRQ), &[0x12, 0x34])
        .message(t(STOP_CCRQ), &[1]);
    s.finish()
}

/// Client: a call placed before start, start, the call connected, link info, the server's
/// disconnect, a refused call, our stop and the server's reply.
pub fn client_tour() -> Vec<u8> {
    use message_type::*;
    let t = |x: u16| x as u8;
    let mut s = ConnScript::new(1);
    s.accept(7)
        .message(t(SCCRP), &[1, 0, 1])
        .message(t(OCRP), &[0, 0x99, 0, 7, 1])
        .message(t(SLI), &[0, 7])
        .message(t(WEN), &[0, 7])
        .message(t(CDN), &[0, 0x99, 3])
        .accept(8)
        .message(t(OCRP), &[0, 0x9a, 0, 8, 2])
        .stop(1)
        .message(t(STOP_CCRP), &[1]);
    s.finish()
}

fn gre_seeds(stem: &str, cap: &Capture, out: &mut Vec<Seed>) {
    let gre: Vec<(Ipv4Addr, u64, &[u8])> =
        cap.gre().map(|(p, b)| (p.src, p.ts_micros, b)).collect();
    // Header round trip: one packet per direction, header shape and PPP protocol (with the code,
    // for control protocols): every kind of packet in the captures,
    // without 60 near-identical MPPE data packets each. The GRE channel scripts below replay
    // every packet.
    let mut shapes = BTreeSet::new();
    for (i, (src, _, b)) in gre.iter().enumerate() {
        let dir = if *src == CLIENT { "c2s" } else { "s2c" };
        let (kind, hlen) = match GreHeader::parse(b) {
            Ok((h, hlen)) => match (h.seq.is_some(), h.ack.is_some()) {
                (true, true) => ("seq-ack", hlen),
                (true, false) => ("seq", hlen),
                (false, true) => ("ack", hlen),
                (false, false) => ("bare", hlen),
            },
            Err(_) => ("bad", 0),
        };
        let head = b.get(hlen..).unwrap_or(&[]);
        if !shapes.insert((dir, kind, ppp_kind(head))) {
            continue;
        }
        out.push(seed(
            "pptp_gre_header_roundtrip",
            format!("{stem}-{i:03}-{dir}-{kind}"),
            b.to_vec(),
        ));
    }
    // The keys: packets to the server carry the server's call id, and the other way round.
    let key_to = |dst_is_server: bool| {
        gre.iter()
            .filter(|(src, _, _)| (*src == CLIENT) == dst_is_server)
            .find_map(|(_, _, b)| GreHeader::parse(b).ok().map(|(h, _)| h.call_id))
            .unwrap_or(0)
    };
    let (server_id, client_id) = (key_to(true), key_to(false));
    for (view, local, peer, incoming) in [
        ("server", server_id, client_id, CLIENT),
        ("client", client_id, server_id, SERVER),
    ] {
        let mut s = GreScript::new(local, peer, 64, 15);
        let mut last_ts: Option<u64> = None;
        for (src, ts, b) in &gre {
            if let Some(prev) = last_ts {
                let ms = ts.saturating_sub(prev) / 1000;
                s.advance(u16::try_from(ms).unwrap_or(u16::MAX));
            }
            last_ts = Some(*ts);
            if *src == incoming {
                s.recv_raw(b);
            } else {
                let payload = GreHeader::parse(b).map_or(0, |(h, _)| h.payload_len);
                s.send(u8::try_from(payload).unwrap_or(u8::MAX));
            }
        }
        s.jump().peer_ack_all();
        out.push(seed(
            "pptp_gre_channel",
            format!("{stem}-{view}"),
            s.finish(),
        ));
    }
}

/// The PPP frames (GRE payloads) of a capture in order, with the sender.
fn ppp_frames(cap: &Capture) -> Vec<(Ipv4Addr, Vec<u8>)> {
    cap.gre()
        .filter_map(|(p, b)| {
            let (h, hlen) = GreHeader::parse(b).ok()?;
            let payload = b.get(hlen..hlen + usize::from(h.payload_len))?;
            (!payload.is_empty()).then(|| (p.src, payload.to_vec()))
        })
        .collect()
}

/// The control packet (information field) of a frame of `protocol`.
fn control_of(frame: &[u8], protocol: Protocol) -> Option<Vec<u8>> {
    let h = FrameHeader::parse(frame).ok()?;
    (h.protocol == protocol).then(|| frame[h.len..].to_vec())
}

fn ppp_seeds(stem: &str, cap: &Capture, out: &mut Vec<Seed>) {
    let frames = ppp_frames(cap);
    let mut kinds = BTreeSet::new();
    for (i, (src, f)) in frames.iter().enumerate() {
        let dir = if *src == CLIENT { "c2s" } else { "s2c" };
        if kinds.insert((dir, ppp_kind(f))) {
            out.push(seed(
                "ppp_frame_roundtrip",
                format!("{stem}-{i:03}-{dir}"),
                f.clone(),
            ));
        }
    }

    // Each negotiation as one end saw it: the peer's packets of that protocol, and an Ack of
    // our own request after each (the peer did ack them in the capture).
    for (name, protocol, server_machine) in [
        ("lcp", Protocol::Lcp, 0u8),
        ("ipcp", Protocol::Ipcp, 2),
        ("ccp", Protocol::Ccp, 4),
    ] {
        for (view, from, machine) in [
            ("server", CLIENT, server_machine),
            ("client", SERVER, server_machine + 1),
        ] {
            let mut s = NegScript::new(if protocol == Protocol::Ccp && view == "client" {
                5
            } else {
                machine
            });
            let mut any = false;
            for (src, f) in &frames {
                if *src != from {
                    continue;
                }
                if let Some(p) = control_of(f, protocol) {
                    s.packet(&p).ack_ours();
                    any = true;
                }
            }
            if any {
                s.advance(3000).advance(3000);
                out.push(seed(
                    "ppp_negotiation",
                    format!("{stem}-{name}-{view}"),
                    s.finish(),
                ));
            }
        }
    }

    // Authentication as captured: the server's challenge becomes our entropy, so the client's
    // real response verifies (or not, in bad-password) against the daemon's secret.
    let chap: Vec<(Ipv4Addr, Vec<u8>)> = frames
        .iter()
        .filter_map(|(src, f)| control_of(f, Protocol::Chap).map(|p| (*src, p)))
        .collect();
    let challenge = chap
        .iter()
        .find(|(src, p)| *src == SERVER && p.first() == Some(&1));
    let response = chap
        .iter()
        .find(|(src, p)| *src == CLIENT && p.first() == Some(&2));
    let success = chap
        .iter()
        .find(|(src, p)| *src == SERVER && matches!(p.first(), Some(3 | 4)));
    if let (Some((_, ch)), Some((_, rsp))) = (challenge, response) {
        let method = if ch.get(4) == Some(&16) && rsp.get(4) == Some(&49) {
            0
        } else {
            2
        };
        let value = |p: &Vec<u8>| -> Vec<u8> {
            let n = usize::from(p.get(4).copied().unwrap_or(0));
            p.get(5..5 + n).unwrap_or_default().to_vec()
        };
        let (ch_value, rsp_value) = (value(ch), value(rsp));
        for (suffix, secret) in [
            ("right-secret", Some("password1")),
            ("wrong-secret", Some("password2")),
            ("unknown-user", None),
        ] {
            let mut s = AuthScript::new(true, method, false, ch[1], &ch_value);
            s.reply(rsp[0], &rsp[4..]).secret(secret).jump();
            out.push(seed(
                "ppp_auth",
                format!("{stem}-server-{suffix}"),
                s.finish(),
            ));
        }
        // The right password stored as its NT hash (CHAP-MD5 must refuse it).
        let mut s = AuthScript::new(true, method, false, ch[1], &ch_value);
        s.reply(rsp[0], &rsp[4..]).secret_hashed("password1").jump();
        out.push(seed(
            "ppp_auth",
            format!("{stem}-server-right-secret-nthash"),
            s.finish(),
        ));
        // The client, with the capture's peer challenge as entropy: its response is the
        // captured one, and the captured Success must verify (mutual authentication).
        let peer_challenge = if method == 0 {
            rsp_value.get(..16).unwrap_or_default().to_vec()
        } else {
            Vec::new()
        };
        let mut s = AuthScript::new(false, method, false, 1, &peer_challenge);
        s.packet(ch[0], ch[1], &ch[4..]);
        if let Some((_, ok)) = success {
            s.packet(ok[0], ok[1], &ok[4..]);
        }
        s.jump();
        out.push(seed("ppp_auth", format!("{stem}-client"), s.finish()));

        // MPPE with the keys this exchange yields (RFC 3079): the server's packets, as the
        // client decrypts them, after a few packets of the fuzz sender.
        if method == 0 {
            if let Ok(r) = virtgate_ppp::mschap::v2::Response::parse(&rsp_value) {
                let keys =
                    virtgate_ppp::mppe::mschapv2_start_keys("password1", &r.nt_response, false);
                let mut m = MppeScript::new(0, &keys.recv.0);
                m.deliver(b"first").lose(b"lost").deliver(b"after a loss");
                let mut st = MppeScript::new(4, &keys.recv.0);
                st.deliver(b"in step")
                    .lose(b"lost")
                    .deliver(b"out of step")
                    .op(mppe_op_reset())
                    .deliver(b"flushed");
                out.push(seed("ppp_mppe", format!("{stem}-stateful"), st.finish()));
                let mut n = 0;
                for (src, f) in &frames {
                    if *src != SERVER {
                        continue;
                    }
                    let Ok(h) = FrameHeader::parse(f) else {
                        continue;
                    };
                    if h.protocol != Protocol::Compressed || f.len() < h.len + 2 {
                        continue;
                    }
                    m.inject([f[h.len], f[h.len + 1]], &f[h.len + 2..]);
                    n += 1;
                    if n == 8 {
                        break;
                    }
                }
                out.push(seed("ppp_mppe", format!("{stem}-stateless"), m.finish()));
                let _ = ch_value;
            }
        }
    }
}

fn mppe_op_reset() -> u8 {
    crate::ppp::mppe_op::RESET
}

/// Full sessions between the two `Session`s, one per interesting configuration.
fn session_seeds(out: &mut Vec<Seed>) {
    let ping = [
        0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0, 0, 192, 168, 0, 100, 192, 168, 0, 1, 8, 0, 0xf7,
        0xff, 0, 0, 0, 0,
    ];
    let configs: &[(&str, u8)] = &[
        ("mschapv2-mppe128", 0x00),
        ("mschapv2-mppe128-stateful", 0x80),
        ("wrong-secret", 0x01),
        ("unknown-user", 0x02),
        ("no-address", 0x04),
        ("all-methods-mppe-optional", 0x08 | 0x20),
        ("chap-md5-no-mppe", 0x10 | 0x40),
        ("pap-no-mppe", 0x10 | 0x60),
    ];
    for (name, cfg) in configs {
        let mut s = SessionScript::new(*cfg);
        // With MPPE required the server starts IPCP only after CCP (as pppd); a client that
        // does not require MPPE sends its IPCP request earlier, which is discarded and
        // retransmitted after the restart timer: let that timer run before the data.
        s.exchange(40)
            .time(0)
            .exchange(20)
            .data(false, &ping)
            .data(true, &ping)
            .exchange(10)
            .op(crate::ppp::session_op::DROP_C2S)
            .data(false, &ping)
            .data(false, &ping)
            .exchange(10)
            .time(0)
            .exchange(10)
            .time(30_000)
            .exchange(10);
        out.push(seed("ppp_session", *name, s.finish()));
    }
}

/// The real ISC dhclient datagrams the dhcp crate's tests replay (tests/fixtures/*.hex, with
/// dnsmasq's replies beside them), by fixture name.
fn dhclient_fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dhcp/tests/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".hex"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| {
            let text = std::fs::read_to_string(dir.join(&n)).ok()?;
            let hex: String = text.lines().filter(|l| !l.starts_with('#')).collect();
            let hex: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
            let bytes = hex
                .chunks(2)
                .filter_map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
                .collect();
            Some((n.trim_end_matches(".hex").to_owned(), bytes))
        })
        .collect()
}

fn dhcp_seeds(out: &mut Vec<Seed>) {
    let fixtures = dhclient_fixtures();
    let requests: Vec<&(String, Vec<u8>)> = fixtures
        .iter()
        .filter(|(n, _)| {
            ["discover", "request", "release"]
                .iter()
                .any(|k| n.contains(k))
        })
        .collect();
    // The whole dhclient session as the capture has it, a minute apart.
    let mut s = DhcpScript::new();
    for (n, b) in &requests {
        s.packet(n.contains("renewing") || n.contains("release"), b)
            .advance(60);
    }
    out.push(seed("dhcp_lease_engine", "dhclient-session", s.finish()));
    // ... with a restart in the middle and the lease running out at the end.
    let mut r = DhcpScript::new();
    for (i, (n, b)) in requests.iter().enumerate() {
        r.packet(n.contains("renewing") || n.contains("release"), b);
        if i == 3 {
            r.restart();
        }
    }
    r.advance(4000).restart();
    out.push(seed(
        "dhcp_lease_engine",
        "dhclient-restart-expiry",
        r.finish(),
    ));
    // Each datagram on its own, dnsmasq's replies included (BOOTREPLYs must be ignored).
    for (n, b) in &fixtures {
        let mut one = DhcpScript::new();
        one.packet(false, b);
        out.push(seed("dhcp_lease_engine", n.clone(), one.finish()));
    }

    // Leases files: what the engine writes after the session, and dnsmasq's own line forms.
    let engine_file = {
        let mut e = virtgate_dhcp::LeaseEngine::new(dhcp_config()).ok();
        let now = std::time::Instant::now();
        let wall = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        if let Some(e) = e.as_mut() {
            for (n, b) in &requests {
                if n.contains("release") {
                    continue;
                }
                let from = std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 68);
                let _ = e.handle_packet(now, b, virtgate_dhcp::Arrival::new(from));
            }
        }
        e.map(|e| e.to_leases_file(now, wall)).unwrap_or_default()
    };
    out.push(seed(
        "dhcp_leasefile",
        "engine-after-dhclient",
        engine_file.into_bytes(),
    ));
    out.push(seed(
        "dhcp_leasefile",
        "dnsmasq-forms",
        b"1800003600 52:54:00:77:00:20 192.168.122.5 guest01 ff:00:77:00:20:00:01:00:01:2c:1f:5a:00:52:54:00:77:00:20\n0 52:54:00:00:00:01 192.168.122.50 fixed *\n1800000100 52:54:00:aa:bb:cc 192.168.122.6 * *\n1700000000 52:54:00:aa:bb:cd 192.168.122.7 expired *\n1800003600 52:54:00:aa:bb:ce 10.0.0.9 elsewhere *\nduid 00:01:00:01:2c:1f:5a:00:52:54:00:77:00:20\n"
            .to_vec(),
    ));
}

/// A DNS query (RFC 1035 §4.1): one question, recursion desired, optionally an OPT record
/// (RFC 6891) advertising `edns` octets.
fn dns_query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if let Some(size) = edns {
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    m
}

fn dns_seeds(out: &mut Vec<Seed>) {
    let mut local = DnsScript::new();
    local
        .query(false, &dns_query(1, "web.example.lan", 1, None))
        .query(false, &dns_query(2, "www", 1, Some(1232)))
        .query(true, &dns_query(3, "fixed.example.lan", 28, None))
        .query(
            false,
            &dns_query(4, "10.122.168.192.in-addr.arpa", 12, None),
        )
        .query(false, &dns_query(5, "nothere.example.lan", 1, None));
    out.push(seed("dns_server", "local-names", local.finish()));

    let mut fwd = DnsScript::new();
    // An A record for example.com: name pointer to the question, type A, class IN, TTL, 4 bytes.
    let answer = [
        0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 215, 14,
    ];
    fwd.query(false, &dns_query(10, "example.com", 1, None))
        .answer(0, 0, 1, &answer)
        .query(false, &dns_query(11, "example.org", 1, Some(4096)))
        .answer(1, 2, 0, &[])
        .advance(3500)
        .query(true, &dns_query(12, "big.example.net", 16, None))
        .advance(3500)
        .advance(3500);
    out.push(seed("dns_server", "forwarding", fwd.finish()));

    // The cache of forwarded answers: an answer with a TTL of 300 s, then the same question
    // (another id, other letter case, over UDP and TCP) answered from it; then it ages.
    let mut cache = DnsScript::new();
    let answer = [
        0xc0, 12, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 93, 184, 215, 14,
    ];
    cache
        .query(false, &dns_query(20, "cached.example.com", 1, None))
        .answer(0, 0, 1, &answer)
        .query(false, &dns_query(21, "CACHED.example.com", 1, None))
        .advance(60_000)
        .query(true, &dns_query(22, "cached.example.COM", 1, None))
        .query(false, &dns_query(23, "cached.example.com", 1, Some(1232)));
    out.push(seed("dns_server", "cache", cache.finish()));
}

/// RADIUS datagrams: an Access-Accept with MS-CHAP2-Success and MPPE keys, an
/// Access-Reject with MS-CHAP-Error, an Accounting-Response (each signed for the fuzz
/// client's identifiers 0 and 1), a Disconnect-Request and a CoA-Request, and RFC 2865 §7.1's
/// Access-Request.
fn radius_seeds(out: &mut Vec<Seed>) {
    use virtgate_radius::attr::{self, ms};
    use virtgate_radius::crypto::{encrypt_mppe_key, sign_request, sign_response};
    use virtgate_radius::{Attr, Code, Packet};

    use crate::radius::{RADIUS_AUTHENTICATOR as RA, RADIUS_SECRET as S};
    let t = "radius_packet";
    let mut accept = Packet::new(Code::AccessAccept, 0);
    accept.push(virtgate_radius::crypto::message_authenticator_placeholder());
    let mut succ = vec![1u8];
    succ.extend_from_slice(b"S=0123456789ABCDEF0123456789ABCDEF01234567");
    accept
        .push(Attr::vendor(ms::VENDOR_ID, ms::CHAP2_SUCCESS, &succ))
        .push(Attr::vendor(
            ms::VENDOR_ID,
            ms::MPPE_SEND_KEY,
            &encrypt_mppe_key(&[1; 16], [0x80, 1], S, &RA),
        ))
        .push(Attr::vendor(
            ms::VENDOR_ID,
            ms::MPPE_RECV_KEY,
            &encrypt_mppe_key(&[2; 16], [0x80, 2], S, &RA),
        ))
        .push(Attr::vendor(
            ms::VENDOR_ID,
            ms::MPPE_ENCRYPTION_POLICY,
            &1u32.to_be_bytes(),
        ))
        .push(Attr::vendor(
            ms::VENDOR_ID,
            ms::MPPE_ENCRYPTION_TYPES,
            &4u32.to_be_bytes(),
        ))
        .push(Attr::ipv4(
            attr::FRAMED_IP_ADDRESS,
            [192, 168, 0, 150].into(),
        ))
        .push(Attr::u32(attr::SESSION_TIMEOUT, 3600))
        .push(Attr::u32(attr::IDLE_TIMEOUT, 600))
        .push(Attr::new(attr::FILTER_ID, b"std.in".to_vec()))
        .push(Attr::new(attr::CLASS, b"c1".to_vec()));
    out.push(seed(
        t,
        "access-accept-mschapv2",
        sign_response(&accept, &RA, S),
    ));
    let mut reject = Packet::new(Code::AccessReject, 0);
    reject.push(virtgate_radius::crypto::message_authenticator_placeholder());
    reject.push(Attr::vendor(
        ms::VENDOR_ID,
        ms::CHAP_ERROR,
        b"\x01E=691 R=0 C=00000000000000000000000000000000 V=3",
    ));
    out.push(seed(
        t,
        "access-reject-mschap-error",
        sign_response(&reject, &RA, S),
    ));
    let mut acct = Packet::new(Code::AccountingResponse, 1);
    acct.authenticator = RA;
    out.push(seed(t, "accounting-response", acct.encode()));
    for (name, code) in [
        ("disconnect-request", Code::DisconnectRequest),
        ("coa-request", Code::CoaRequest),
    ] {
        let mut p = Packet::new(code, 7);
        p.push(Attr::new(attr::USER_NAME, b"user1".to_vec()))
            .push(Attr::new(attr::ACCT_SESSION_ID, b"0000000A".to_vec()))
            .push(Attr::u32(attr::SESSION_TIMEOUT, 30));
        out.push(seed(t, name, sign_request(&p, S)));
    }
    let rfc = "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee0406c0a80110050600000003";
    let bytes = (0..rfc.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&rfc[i..i + 2], 16).unwrap_or(0))
        .collect();
    out.push(seed(t, "rfc2865-access-request", bytes));
}

/// What kind of PPP frame `frame` is: its protocol field (after an optional FF 03, one byte
/// when compressed) and, for control protocols (0x8000 and up), the code byte.
fn ppp_kind(frame: &[u8]) -> Vec<u8> {
    let f = frame.strip_prefix(&[0xff, 0x03]).unwrap_or(frame);
    match f {
        [p, ..] if p & 1 == 1 => vec![*p],
        [p0, p1, code, ..] if p0 & 0x80 != 0 => vec![*p0, *p1, *code],
        [p0, p1, ..] => vec![*p0, *p1],
        other => other.to_vec(),
    }
}

/// The seed's files as shared/realpeer/check-pptp.sh writes them.
const SEED_PPTPD_CONF: &str =
    "option /etc/ppp/options.pptpd\nlocalip 192.168.0.1\nremoteip 192.168.0.100-200\n";
const SEED_OPTIONS: &str = "name pptpd
refuse-pap
refuse-chap
refuse-mschap
require-mschap-v2
require-mppe-128
ms-dns 8.8.8.8
ms-dns 8.8.4.4
proxyarp
nodefaultroute
lock
nobsdcomp
novj
novjccomp
nologfd
";
const SEED_SECRETS: &str = "# client\tserver\tsecret\t\tIP addresses\nuser1\tpptpd\tpassword1\t*\n";

/// The control socket: every request the CLI sends (as `encode` writes it), a connection with
/// several requests, and lines the daemon refuses.
fn control_request_seeds(out: &mut Vec<Seed>) {
    use virtgate_control::{encode, NetRequest, Request, Target};
    let net = |r: NetRequest| Request::Net(r);
    let reqs: Vec<(&str, Request)> = vec![
        ("status", Request::Status),
        ("sessions", Request::Sessions { user: None }),
        (
            "sessions-user",
            Request::Sessions {
                user: Some("ann".into()),
            },
        ),
        (
            "terminate-user",
            Request::Terminate {
                target: Target::User("DOM\\ann".into()),
            },
        ),
        (
            "terminate-ip",
            Request::Terminate {
                target: Target::Ip(Ipv4Addr::new(192, 168, 0, 100)),
            },
        ),
        (
            "terminate-id",
            Request::Terminate {
                target: Target::Id(4711),
            },
        ),
        (
            "terminate-all",
            Request::Terminate {
                target: Target::All,
            },
        ),
        ("reload", Request::Reload),
        ("net-list", net(NetRequest::List)),
        (
            "net-start",
            net(NetRequest::Start {
                name: "default".into(),
            }),
        ),
        (
            "net-stop",
            net(NetRequest::Stop {
                name: "default".into(),
            }),
        ),
        (
            "net-define",
            net(NetRequest::Define {
                xml: "<network>\n  <name>n\u{e9}t</name>\n  <bridge name='virbr1'/>\n</network>\n"
                    .into(),
                origin: "/etc/virtgate/net.xml".into(),
            }),
        ),
        (
            "net-undefine",
            net(NetRequest::Undefine { name: "n".into() }),
        ),
        (
            "net-autostart",
            net(NetRequest::Autostart {
                name: "n".into(),
                enable: false,
            }),
        ),
        (
            "net-dumpxml",
            net(NetRequest::Dumpxml {
                name: "n".into(),
                inactive: true,
            }),
        ),
        ("net-leases", net(NetRequest::Leases { name: "n".into() })),
        (
            "net-update",
            net(NetRequest::Update {
                name: "default".into(),
                command: "add-last".into(),
                section: "ip-dhcp-host".into(),
                xml: "<host mac='52:54:00:00:00:01' ip='192.168.122.5'/>".into(),
            }),
        ),
    ];
    let mut all = String::new();
    for (name, r) in &reqs {
        let line = encode(r);
        all.push_str(&line);
        out.push(seed("control_request", *name, line.into_bytes()));
    }
    out.push(seed("control_request", "connection", all.into_bytes()));
    let bad: &[(&str, &[u8])] = &[
        ("bad-version", b"{\"v\":2,\"cmd\":\"status\"}\n"),
        ("no-version", b"{\"cmd\":\"status\"}\n"),
        ("unknown-cmd", b"{\"v\":1,\"cmd\":\"launch\"}\n"),
        (
            "bad-ip",
            b"{\"v\":1,\"cmd\":\"terminate\",\"target\":{\"ip\":\"300.1.1.1\"}}\n",
        ),
        ("not-json", b"status\n"),
        (
            "not-utf8",
            b"{\"v\":1,\"cmd\":\"sessions\",\"user\":\"\xff\"}\n",
        ),
        (
            "escapes",
            b"{\"v\":1,\"cmd\":\"sessions\",\"user\":\"a\\u0000\\n\\ud83d\\ude00\"}\r\n",
        ),
        (
            "duplicate-keys",
            b"{\"v\":1,\"cmd\":\"status\",\"cmd\":\"reload\",\"v\":1}\n",
        ),
        ("no-newline", b"{\"v\":1,\"cmd\":\"reload\"}"),
    ];
    for (name, b) in bad {
        out.push(seed("control_request", *name, b.to_vec()));
    }
}

fn config_seeds(out: &mut Vec<Seed>) {
    let conf: &[(&str, &str)] = &[
        ("seed", SEED_PPTPD_CONF),
        (
            "all-directives",
            "# every directive once\noption options.pptpd\nlocalip 10.0.0.1,10.0.0.2-3\nremoteip 10.0.1.10-12\nlisten 192.0.2.1\nstimeout 30\nconnections 3\ndebug\nlogwtmp\nbcrelay eth1\nnoipparam\npidfile /run/pptpd.pid\nspeed 115200\nppp /usr/sbin/pppd\n",
        ),
        ("delegate", "delegate\nconnections 5\r\nlocalip 10.0.0.1\n"),
        ("defaults", "# nothing but comments\n\n"),
        ("duplicate", "localip 10.0.0.1\nlocalip 10.0.0.2\nremoteip 10.0.0.3-5\nremoteip 10.0.0.1\n"),
        ("range-second-octet", "localip 10.0.0.1\nremoteip 10.1-3.0.9\nconnections 0\n"),
        ("indented", "localip 10.0.0.1\n  remoteip 10.0.0.5\n"),
        ("vrf", "vrf blue\n"),
    ];
    for (name, text) in conf {
        out.push(seed("config_pptpd_conf", *name, text.as_bytes().to_vec()));
    }

    let opts: &[(&str, String)] = &[
        ("seed", SEED_OPTIONS.to_owned()),
        (
            "include",
            "name pptpd\nfile /etc/ppp/inc1\nms-dns 10.0.0.53\0require-mschap-v2\nfile inc2\0require-mppe-40\nmppe-stateful\n"
                .to_owned(),
        ),
        ("include-loop", "file /etc/ppp/inc1\0file /etc/ppp/inc1\n".to_owned()),
        (
            "lcp-ipcp-timers",
            "mtu 1400 mru 1400 asyncmap 0xa0000 noaccomp nopcomp nomagic\nlcp-echo-interval 30 lcp-echo-failure 4 lcp-echo-adaptive\nlcp-restart 2 lcp-max-configure 5 lcp-max-terminate 3 lcp-max-failure 4\nipcp-restart 2 ipcp-max-configure 5 ipcp-max-failure 3\nchap-restart 2 chap-max-challenge 4 chap-interval 60 chapms-strip-domain\npap-restart 2 pap-max-authreq 3 pap-timeout 20\nidle 600 maxconnect 3600 10.0.0.1:10.0.0.2\n"
                .to_owned(),
        ),
        (
            "quoting",
            "name \"pptp server\"  # comment\nuser 'DOMAIN\\\\bob' password p\\x41ss\\sword\nremotename r\\n2\nms-wins 10.0.0.9 ms-wins 10.0.0.10\n"
                .to_owned(),
        ),
        (
            "old-mppe-form",
            "require-chap\nmppe required,stateless,no40,no56\n+mschap-v2\n-pap\nusepeerdns defaultroute\n".to_owned(),
        ),
        ("noccp-conflict", "noccp\n".to_owned()),
        ("nomppe", "nomppe\nrequire-pap\nnoccp\n".to_owned()),
        ("refused", "noauth\nplugin foo.so\n".to_owned()),
    ];
    for (name, text) in opts {
        out.push(seed("config_ppp_options", *name, text.as_bytes().to_vec()));
    }

    let secrets: &[(&str, &str)] = &[
        ("seed", SEED_SECRETS),
        (
            "seed-lookups",
            "user1 pptpd password1 *\n\0\0\0user1 pptpd\nuser2 pptpd\nuser1 other\n",
        ),
        (
            "precedence",
            "*      *      wild-wild      *\nuser1  *      exact-wild     *\n*      pptpd  wild-exact     10.0.0.0/24 !10.0.0.7\nuser1  pptpd  exact-exact    10.0.0.5\n\0\0\0user1 pptpd\nbob pptpd\nbob other\n",
        ),
        (
            "addresses",
            "alice pptpd s1 10.0.0.5 10.0.1.0/24 !10.0.1.1 127.0.0.1 -\nbob pptpd s2 -\ncarol pptpd s3\n\"dave smith\" * \"a b\" *\n",
        ),
        (
            "indirect",
            "erin pptpd @/etc/ppp/inc1 *\nfrank pptpd @/etc/ppp/missing *\n\0erins-secret\n",
        ),
        (
            "nthash",
            "ann pptpd nthash:5835048ce94ad0564e29a924a03510ef *\nbob * NTHASH:5835048CE94AD0564E29A924A03510EF *\ncy pptpd @/etc/ppp/inc1 *\n\0nthash:5835048CE94AD0564E29A924A03510EF\n",
        ),
    ];
    for (name, text) in secrets {
        out.push(seed("config_chap_secrets", *name, text.as_bytes().to_vec()));
    }

    // virtgate.toml: inline tables, file references, a broken file.
    let toml: &[(&str, &str)] = &[
        (
            "inline",
            "[daemon]\ntun = \"vg0\"\nmetrics = \"127.0.0.1:9477\"\nfirewall = false\n\n[pptp]\nlocalip = \"10.0.0.1\"\nremoteip = [\"10.0.0.100-110\", \"10.0.0.120\"]\n\n[ppp]\nname = \"gw\"\nrequire-mschap-v2 = true\nrequire-mppe-128 = true\nms-dns = [\"10.0.0.1\", \"10.0.0.2\"]\nidle = 600\n\n[[users]]\nname = \"ann\"\nsecret = 'a \"b\" c'\nip = \"10.0.0.150\"\n\n[[users]]\nname = \"bob\"\nserver = \"gw\"\nsecret = \"x\"\nip = [\"10.0.0.0/24\", \"!10.0.0.1\"]\n\n[networks]\nxml = \"lab.xml\"\ndefault = false\n",
        ),
        (
            "files",
            "[pptp]\npptpd_conf = \"/etc/ppp/inc1\"\n[secrets]\nchap_secrets = \"/etc/ppp/inc3\"\n\0option /etc/ppp/inc2\nlocalip 10.1.0.1\nremoteip 10.1.0.5-9\n\0name srv\nrequire-mschap-v2\n\0carol srv pw *\n",
        ),
        (
            "include",
            "[ppp]\nfile = \"/etc/ppp/inc1\"\nms-dns = \"1.1.1.1\"\n\0require-mschap-v2\nrequire-mppe-128\n",
        ),
        ("broken", "[ppp]\nrequire-mppe-129 = true\n[[users]]\nname = \"a\"\n"),
    ];
    for (name, text) in toml {
        out.push(seed("config_toml", *name, text.as_bytes().to_vec()));
    }

    // libvirt network XML: the config crate's fixtures (virsh net-dumpxml output), and the
    // default network with a `net-update` fragment for each section.
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/tests/data/libvirt");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".xml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    for n in names {
        if let Ok(text) = std::fs::read(dir.join(&n)) {
            out.push(seed(
                "config_libvirt_network",
                n.trim_end_matches(".xml").to_owned(),
                text,
            ));
        }
    }
    if let Ok(default) = std::fs::read(dir.join("default.xml")) {
        for (name, update) in [
            (
                "update-dhcp-host",
                "\x00<host mac='52:54:00:12:34:56' name='guest' ip='192.168.122.77'/>",
            ),
            (
                "update-dns-host",
                "\x04<host ip='192.168.122.78'><hostname>svc</hostname></host>",
            ),
        ] {
            let mut b = default.clone();
            b.push(0);
            b.extend_from_slice(update.as_bytes());
            out.push(seed("config_libvirt_network", name, b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pptp::{gre_channel_stats, pptp_control_events};
    use virtgate_pptp::{CloseReason, ControlEvent, Role};

    fn seed_bytes(target: &str, name: &str) -> Vec<u8> {
        all()
            .into_iter()
            .find(|s| s.target == target && s.name == name)
            .unwrap_or_else(|| panic!("no seed {target}/{name}"))
            .bytes
    }

    fn kinds(evs: &[ControlEvent]) -> Vec<String> {
        evs.iter()
            .map(|e| {
                format!("{e:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn capture_scripts_set_up_the_call_like_the_real_server() {
        for stem in CAPTURES {
            let ev = pptp_control_events(Role::Server, &seed_bytes("pptp_control_server", stem));
            assert_eq!(
                kinds(&ev[..3]),
                ["Established", "CallRequest", "CallEstablished"],
                "{stem}"
            );
            let ev = pptp_control_events(Role::Client, &seed_bytes("pptp_control_client", stem));
            assert_eq!(kinds(&ev), ["Established", "CallEstablished"], "{stem}");
            let ev = pptp_control_events(
                Role::Server,
                &seed_bytes("pptp_control_server", &format!("{stem}-timeouts")),
            );
            assert_eq!(
                ev.last(),
                Some(&ControlEvent::Closed {
                    reason: CloseReason::EchoTimeout
                })
            );
            let ev = pptp_control_events(
                Role::Server,
                &seed_bytes("pptp_control_server", &format!("{stem}-stop")),
            );
            assert_eq!(
                ev.last(),
                Some(&ControlEvent::Closed {
                    reason: CloseReason::LocalStop {
                        acknowledged: false
                    }
                })
            );
        }
        // The client in bad-password hangs up (CCRQ): the server reports it.
        let ev = pptp_control_events(
            Role::Server,
            &seed_bytes("pptp_control_server", "bad-password"),
        );
        assert_eq!(
            kinds(&ev),
            [
                "Established",
                "CallRequest",
                "CallEstablished",
                "CallCleared"
            ]
        );
    }

    #[test]
    fn tours_reach_every_event() {
        let ev = pptp_control_events(Role::Server, &server_tour());
        assert_eq!(
            kinds(&ev),
            [
                "Established",
                "CallRequest",
                "CallEstablished",
                "SetLinkInfo",
                "WanErrorNotify",
                "CallRequest",
                "CallCleared",
                "Closed"
            ]
        );
        let ev = pptp_control_events(Role::Client, &client_tour());
        assert_eq!(
            kinds(&ev),
            [
                "Established",
                "CallEstablished",
                "SetLinkInfo",
                "WanErrorNotify",
                "CallCleared",
                "CallRejected",
                "Closed"
            ]
        );
        assert_eq!(
            ev.last(),
            Some(&ControlEvent::Closed {
                reason: CloseReason::LocalStop { acknowledged: true }
            })
        );
    }

    #[test]
    fn gre_scripts_replay_every_packet_in_order() {
        for stem in CAPTURES {
            let cap = read_capture(&format!("{stem}.pcap"));
            let to_server = cap.gre().filter(|(p, _)| p.src == CLIENT).count() as u64;
            let st = gre_channel_stats(&seed_bytes("pptp_gre_channel", &format!("{stem}-server")))
                .unwrap();
            // Every packet from the client is data or ack-only, none is late or lost (plus
            // the script's final ack-only packet).
            assert_eq!(st.rx_packets + st.rx_ack_only, to_server + 1, "{stem}");
            assert_eq!(
                (st.rx_duplicate, st.rx_late, st.rx_gaps, st.rx_wrong_call_id),
                (0, 0, 0, 0)
            );
            assert!(
                st.tx_packets > 0 && st.tx_acks_piggybacked > 0,
                "{stem}: {st:?}"
            );
        }
    }

    #[test]
    fn ppp_seeds_reach_the_end_of_each_exchange() {
        use crate::ppp::{auth_outcome, negotiation_outcome, session_outcome};
        use virtgate_ppp::fsm::State;
        let stem = "mschapv2-mppe128-stateless";
        for name in ["lcp", "ipcp", "ccp"] {
            for view in ["server", "client"] {
                let s = seed_bytes("ppp_negotiation", &format!("{stem}-{name}-{view}"));
                assert_eq!(
                    negotiation_outcome(&s),
                    Some(State::Opened),
                    "{name} {view}"
                );
            }
        }
        let auth = |n: &str| auth_outcome(&seed_bytes("ppp_auth", &format!("{stem}-{n}")));
        assert_eq!(auth("server-right-secret"), Some(true));
        // The same password stored as its NT hash: the captured MS-CHAPv2 response verifies.
        assert_eq!(auth("server-right-secret-nthash"), Some(true));
        assert_eq!(auth("server-wrong-secret"), Some(false));
        assert_eq!(auth("server-unknown-user"), Some(false));
        // The client recomputes the captured response and verifies pppd's S=.
        assert_eq!(auth("client"), Some(true));
        assert_eq!(
            auth_outcome(&seed_bytes("ppp_auth", "bad-password-server-right-secret")),
            Some(false)
        );
        assert_eq!(
            auth_outcome(&seed_bytes(
                "ppp_auth",
                "chap-md5-no-mppe-server-right-secret"
            )),
            Some(true)
        );
        // CHAP-MD5 cannot use a hash: refused.
        assert_eq!(
            auth_outcome(&seed_bytes(
                "ppp_auth",
                "chap-md5-no-mppe-server-right-secret-nthash"
            )),
            Some(false)
        );
        for (name, up) in [
            ("mschapv2-mppe128", true),
            ("mschapv2-mppe128-stateful", true),
            ("all-methods-mppe-optional", true),
            ("chap-md5-no-mppe", true),
            ("pap-no-mppe", true),
            ("wrong-secret", false),
            ("unknown-user", false),
            ("no-address", false),
        ] {
            let o = session_outcome(&seed_bytes("ppp_session", name));
            assert_eq!((o.server_up, o.client_up), (up, up), "{name}: {o:?}");
            if up {
                assert!(o.ip_delivered >= 3, "{name}: {o:?}");
            }
        }
    }

    #[test]
    fn dhclient_session_gets_its_replies_and_a_lease() {
        let (replies, most) =
            crate::net::dhcp_outcome(&seed_bytes("dhcp_lease_engine", "dhclient-session"));
        assert!(
            replies >= 5 && most == 1,
            "{replies} replies, {most} leases"
        );
    }

    #[test]
    fn libvirt_seeds_parse_and_update() {
        use virtgate_config::libvirt::{UpdateOp, UpdateSection};
        let mut ok = 0;
        for s in all()
            .iter()
            .filter(|s| s.target == "config_libvirt_network")
        {
            let xml = s.bytes.split(|b| *b == 0).next().unwrap_or_default();
            if virtgate_config::NetworkDef::parse(&String::from_utf8_lossy(xml), "x.xml").is_ok() {
                ok += 1;
            }
        }
        assert!(ok >= 10, "only {ok} libvirt seeds parse");
        let b = seed_bytes("config_libvirt_network", "update-dhcp-host");
        let mut parts = b.splitn(2, |x| *x == 0);
        let xml = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
        let frag = String::from_utf8_lossy(&parts.next().unwrap()[1..]).into_owned();
        let mut def = virtgate_config::NetworkDef::parse(&xml, "x.xml")
            .unwrap()
            .value;
        def.update(UpdateSection::IpDhcpHost, UpdateOp::AddLast, &frag)
            .unwrap();
    }
}
