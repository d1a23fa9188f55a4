//! Real bytes: the reference dial-ups (pptp-linux + pppd 2.4.9 client against poptop +
//! pppd 2.4.9 server) replayed against our Session.
//!
//! - every captured PPP frame parses (header, control packet, options);
//! - the CLIENT's frames are fed to our server Session (with the captured CHAP challenge
//!   injected through the entropy source) and our answers are compared with pppd's: identical
//!   where pppd's answer is determined (Acks, Naks, Rejects, CHAP Success/Failure), sensible
//!   where we differ by design (Protocol-Reject of IPV6CP, R=0); the MPPE keys we derive
//!   decrypt the client's captured data to valid IPv4;
//! - our server's first Configure-Requests carry what the reference client accepted;
//! - the SERVER's frames are fed to our client Session (with the captured peer challenge):
//!   our MS-CHAPv2 Response equals the captured one, pppd's authenticator response passes our
//!   mutual authentication, and the server's captured MPPE data decrypts.
//!
//! Where the reference acks a request we cannot reproduce byte for byte (its LCP
//! Configure-Request has its own magic number), the captured Ack is checked against ours
//! option by option and then re-addressed to our request.

mod harness;

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use harness::{hex, Scripted, Seeded};
use virtgate_fixtures::{read_capture, Capture};
use virtgate_ppp::frame::{parse_options, ControlPacket, FrameHeader, HeaderCompression, Protocol};
use virtgate_ppp::lcp::LcpOption;
use virtgate_ppp::{
    AuthMethod, Decap, DownReason, DropReason, IpcpPolicy, KeyLength, MppeMode, MppePolicy, Role,
    Session, SessionConfig, SessionEvent,
};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 20);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);

/// The PPP frame inside an enhanced GRE packet (RFC 2637 §4.1), `None` for ack-only packets.
fn gre_payload(gre: &[u8]) -> Option<Vec<u8>> {
    let flags = *gre.first()?;
    let ver = *gre.get(1)?;
    let len = usize::from(u16::from_be_bytes([*gre.get(4)?, *gre.get(5)?]));
    let hl = 8 + if flags & 0x10 != 0 { 4 } else { 0 } + if ver & 0x80 != 0 { 4 } else { 0 };
    let p = gre.get(hl..hl + len)?;
    (!p.is_empty()).then(|| p.to_vec())
}

/// The PPP frames of one direction, in capture order.
fn frames(cap: &Capture, from: Ipv4Addr) -> Vec<Vec<u8>> {
    cap.gre()
        .filter(|(p, _)| p.src == from)
        .filter_map(|(_, g)| gre_payload(g))
        .collect()
}

fn split(frame: &[u8]) -> (Protocol, Vec<u8>) {
    let h = FrameHeader::parse(frame).unwrap();
    (h.protocol, frame[h.len..].to_vec())
}

/// The Internet checksum of an IPv4 header is valid.
fn ipv4_ok(p: &[u8]) -> bool {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return false;
    }
    let hl = usize::from(p[0] & 0x0f) * 4;
    let Some(h) = p.get(..hl) else { return false };
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff && usize::from(u16::from_be_bytes([p[2], p[3]])) == p.len()
}

#[test]
fn every_captured_frame_parses() {
    let mut control = 0;
    let mut data = 0;
    for name in [
        "mschapv2-mppe128-stateless.pcap",
        "chap-md5-no-mppe.pcap",
        "bad-password.pcap",
    ] {
        let cap = read_capture(name);
        for from in [CLIENT, SERVER] {
            for f in frames(&cap, from) {
                let h = FrameHeader::parse(&f).unwrap_or_else(|e| panic!("{name}: {e}: {f:02x?}"));
                let info = &f[h.len..];
                if !h.protocol.is_control() {
                    data += 1;
                    continue;
                }
                control += 1;
                let pkt =
                    ControlPacket::parse(info).unwrap_or_else(|e| panic!("{name}: {e}: {f:02x?}"));
                if h.protocol != Protocol::Chap
                    && h.protocol != Protocol::Pap
                    && matches!(pkt.code.number(), 1..=4)
                {
                    let opts =
                        parse_options(pkt.data).unwrap_or_else(|e| panic!("{name}: {e}: {f:02x?}"));
                    if h.protocol == Protocol::Lcp {
                        for o in &opts {
                            assert!(
                                !matches!(LcpOption::parse(o), LcpOption::Invalid { .. }),
                                "{name}: {o:?}"
                            );
                        }
                    }
                }
                // Re-emitting the parsed packet gives the same bytes.
                assert_eq!(pkt.to_vec(), info, "{name}");
            }
        }
    }
    assert!(control >= 60, "{control}");
    assert!(data >= 60, "{data}");
}

fn server_config(
    method: AuthMethod,
    mppe: MppePolicy,
    dns: [Option<Ipv4Addr>; 2],
) -> SessionConfig {
    SessionConfig {
        role: Role::Server,
        our_name: "pptpd".into(),
        auth: virtgate_ppp::AuthPolicy {
            methods: vec![method],
            ..Default::default()
        },
        mppe,
        ipcp: IpcpPolicy {
            local: Ipv4Addr::new(192, 168, 0, 1),
            dns,
            ..Default::default()
        },
        ..SessionConfig::default()
    }
}

const REQUIRE_MPPE_128: MppePolicy = MppePolicy {
    required: true,
    allow_40: false,
    allow_56: false,
    allow_128: true,
    allow_stateful: false,
};

/// Entropy that makes our authenticator send the captured Challenge: Session::new draws an
/// 8-byte magic seed, LCP-up the CHAP Identifier, the CHAP server the challenge.
fn scripted(id: u8, challenge: &str) -> Box<Scripted> {
    Box::new(Scripted {
        chunks: VecDeque::from(vec![vec![0u8; 8], vec![id], hex(challenge)]),
        rest: Seeded(7),
    })
}

/// Our side of a replay: feeds frames, answers events, keeps what we sent.
struct Replay {
    s: Session,
    now: std::time::Instant,
    sent: Vec<(Protocol, Vec<u8>)>,
    events: Vec<SessionEvent>,
    secret: &'static str,
    address: Ipv4Addr,
}

impl Replay {
    fn new(cfg: SessionConfig, entropy: Box<dyn virtgate_ppp::Entropy>) -> Replay {
        let now = std::time::Instant::now();
        let mut r = Replay {
            s: Session::new(now, cfg, entropy),
            now,
            sent: Vec::new(),
            events: Vec::new(),
            secret: "password1",
            address: Ipv4Addr::new(192, 168, 0, 100),
        };
        r.s.open(now);
        r.drain();
        r
    }

    fn drain(&mut self) {
        loop {
            let mut progress = false;
            while let Some(f) = self.s.poll_transmit() {
                progress = true;
                self.sent.push(split(&f));
            }
            while let Some(e) = self.s.poll_event() {
                progress = true;
                match &e {
                    SessionEvent::SecretRequest { .. } => {
                        self.s.provide_secret(self.now, Some(self.secret.into()))
                    }
                    SessionEvent::AddressRequest { .. } => {
                        self.s.assign_address(self.now, Some(self.address))
                    }
                    _ => {}
                }
                self.events.push(e);
            }
            if !progress {
                return;
            }
        }
    }

    fn feed(&mut self, frame: &[u8]) -> (Decap, Vec<u8>) {
        let mut buf = frame.to_vec();
        let len = buf.len();
        let r = self.s.decapsulate(self.now, &mut buf, 0, len);
        self.drain();
        (r, buf)
    }

    /// The last Configure-Request we sent for `protocol`: (id, options).
    fn our_request(&self, protocol: Protocol) -> (u8, Vec<u8>) {
        let (_, info) = self
            .sent
            .iter()
            .rev()
            .find(|(p, i)| *p == protocol && i[0] == 1)
            .expect("a Configure-Request");
        let pkt = ControlPacket::parse(info).unwrap();
        (pkt.id, pkt.data.to_vec())
    }

    fn sent_info(&self, protocol: Protocol) -> Vec<Vec<u8>> {
        self.sent
            .iter()
            .filter(|(p, _)| *p == protocol)
            .map(|(_, i)| i.clone())
            .collect()
    }
}

/// `theirs` (options a reference peer acked or sent) has the same options as `ours`, in the
/// same order, with the same values except the magic number.
fn same_lcp_options_but_magic(theirs: &[u8], ours: &[u8]) {
    let a = parse_options(theirs).unwrap();
    let b = parse_options(ours).unwrap();
    assert_eq!(a.len(), b.len(), "{theirs:02x?} vs {ours:02x?}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.kind, y.kind);
        if x.kind != 5 {
            assert_eq!(x.data, y.data, "option {}", x.kind);
        }
    }
}

/// Re-addresses a captured LCP Configure-Ack (of the reference's request) to our request.
fn readdress_lcp_ack(r: &Replay, info: &[u8]) -> Vec<u8> {
    let pkt = ControlPacket::parse(info).unwrap();
    let (id, ours) = r.our_request(Protocol::Lcp);
    same_lcp_options_but_magic(pkt.data, &ours);
    HeaderCompression::NONE.frame(
        Protocol::Lcp,
        &virtgate_ppp::frame::emit_control(pkt.code, id, &ours),
    )
}

#[test]
fn server_replays_the_reference_client_mschapv2_mppe128() {
    let cap = read_capture("mschapv2-mppe128-stateless.pcap");
    let cfg = server_config(
        AuthMethod::MsChapV2,
        REQUIRE_MPPE_128,
        [
            Some(Ipv4Addr::new(8, 8, 8, 8)),
            Some(Ipv4Addr::new(8, 8, 4, 4)),
        ],
    );
    let mut r = Replay::new(cfg, scripted(0xe8, "b2bde04883817d588877d2832205b026"));

    let mut ipv4 = 0;
    let mut ipv6_dropped = 0;
    for f in frames(&cap, CLIENT) {
        let (proto, info) = split(&f);
        let frame = if proto == Protocol::Lcp && info[0] == 2 {
            readdress_lcp_ack(&r, &info)
        } else {
            f.clone()
        };
        let (res, buf) = r.feed(&frame);
        match (proto, res) {
            (Protocol::Compressed, Decap::Ip { start, len }) => {
                assert!(
                    ipv4_ok(&buf[start..start + len]),
                    "decrypted packet {ipv4} is not valid IPv4"
                );
                ipv4 += 1;
            }
            (Protocol::Compressed, Decap::Dropped(DropReason::UnsupportedProtocol(0x57))) => {
                ipv6_dropped += 1
            }
            (Protocol::Compressed, other) => panic!("MPPE frame: {other:?}"),
            (_, Decap::Consumed) => {}
            (p, other) => panic!("{p}: {other:?} for {f:02x?}"),
        }
    }
    // All of the client's data decrypts with the keys we derived (RFC 3079) from the
    // captured exchange: 30 IPv4 packets and the IPv6 router solicitation.
    assert_eq!((ipv4, ipv6_dropped), (30, 1));

    // Our answers, compared with pppd's in the capture.
    let theirs: Vec<(Protocol, Vec<u8>)> = frames(&cap, SERVER).iter().map(|f| split(f)).collect();
    let identical = |p: Protocol, code: u8| -> Vec<Vec<u8>> {
        theirs
            .iter()
            .filter(|(q, i)| *q == p && i[0] == code)
            .map(|(_, i)| i.clone())
            .collect()
    };
    let ours_lcp = r.sent_info(Protocol::Lcp);
    // LCP: the Configure-Ack of the client's request is byte-identical.
    for ack in identical(Protocol::Lcp, 2) {
        assert!(ours_lcp.contains(&ack), "LCP Ack {ack:02x?}");
    }
    // CHAP: Challenge and Success byte-identical (S= is the same authenticator response).
    let ours_chap = r.sent_info(Protocol::Chap);
    assert_eq!(
        ours_chap,
        [identical(Protocol::Chap, 1), identical(Protocol::Chap, 3)].concat()
    );
    // CCP: Configure-Request and -Ack byte-identical (01 00 00 40: 128-bit, stateless).
    assert_eq!(
        r.sent_info(Protocol::Ccp),
        theirs
            .iter()
            .filter(|(p, _)| *p == Protocol::Ccp)
            .map(|(_, i)| i.clone())
            .collect::<Vec<_>>()
    );
    // IPCP: request, Reject of VJ, Nak with address and DNS, final Ack: byte-identical.
    assert_eq!(
        r.sent_info(Protocol::Ipcp),
        theirs
            .iter()
            .filter(|(p, _)| *p == Protocol::Ipcp)
            .map(|(_, i)| i.clone())
            .collect::<Vec<_>>()
    );
    // IPV6CP: pppd (+ipv6) negotiated it; we Protocol-Reject it (and its Ack of pppd's).
    let prej: Vec<_> = ours_lcp.iter().filter(|i| i[0] == 8).collect();
    assert_eq!(prej.len(), 2);
    assert!(prej.iter().all(|i| i[4..6] == [0x80, 0x57]));
    // Echo-Requests answered.
    assert!(ours_lcp.iter().any(|i| i[0] == 10));

    assert_eq!(
        r.events
            .iter()
            .find(|e| matches!(e, SessionEvent::Up { .. })),
        Some(&SessionEvent::Up {
            local: Ipv4Addr::new(192, 168, 0, 1),
            peer: Ipv4Addr::new(192, 168, 0, 100),
            dns: [
                Some(Ipv4Addr::new(8, 8, 8, 8)),
                Some(Ipv4Addr::new(8, 8, 4, 4))
            ],
            mppe: Some(MppeMode {
                key_length: KeyLength::Bits128,
                stateless: true
            }),
            mtu: 1496,
        })
    );
    assert!(r.events.contains(&SessionEvent::Authenticated {
        peer_name: "user1".into(),
        method: AuthMethod::MsChapV2
    }));
    assert_eq!(r.s.stats().rx_ip_packets, 30);
}

#[test]
fn our_first_requests_are_what_the_reference_client_accepted() {
    let cap = read_capture("mschapv2-mppe128-stateless.pcap");
    let cfg = server_config(AuthMethod::MsChapV2, REQUIRE_MPPE_128, [None, None]);
    let r = Replay::new(cfg, Box::new(Seeded(99)));
    // The reference server's LCP Configure-Request, which the client acked as is.
    let theirs: Vec<(Protocol, Vec<u8>)> = frames(&cap, SERVER).iter().map(|f| split(f)).collect();
    let (_, their_req) = theirs
        .iter()
        .find(|(p, i)| *p == Protocol::Lcp && i[0] == 1)
        .unwrap();
    let (_, client_ack) = frames(&cap, CLIENT)
        .iter()
        .map(|f| split(f))
        .find(|(p, i)| *p == Protocol::Lcp && i[0] == 2)
        .unwrap();
    assert_eq!(
        &their_req[1..],
        &client_ack[1..],
        "the client acked pppd's request unchanged"
    );
    let (id, ours) = r.our_request(Protocol::Lcp);
    assert_eq!(id, 1);
    // ACCM 0, MS-CHAPv2, magic, PFC, ACFC: same options, same order, same values but magic.
    same_lcp_options_but_magic(&their_req[4..], &ours);
}

#[test]
fn server_replays_the_bad_password_dialup() {
    let cap = read_capture("bad-password.pcap");
    let cfg = server_config(AuthMethod::MsChapV2, REQUIRE_MPPE_128, [None, None]);
    let mut r = Replay::new(cfg, scripted(0x3f, "dc8805f8024e7d2ec123a6e9fe019832"));
    for f in frames(&cap, CLIENT) {
        let (proto, info) = split(&f);
        let frame = if proto == Protocol::Lcp && info[0] == 2 {
            readdress_lcp_ack(&r, &info)
        } else {
            f.clone()
        };
        r.feed(&frame);
    }
    // pppd: "E=691 R=1 C=dc88... V=0 M=Access denied"; we allow no retry and say so (R=0).
    let failure = r
        .sent_info(Protocol::Chap)
        .into_iter()
        .find(|i| i[0] == 4)
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&failure[4..]),
        "E=691 R=0 C=dc8805f8024e7d2ec123a6e9fe019832 V=0 M=Access denied"
    );
    // Then the same Terminate-Request text as pppd, and an Ack of the client's.
    let lcp = r.sent_info(Protocol::Lcp);
    let term = lcp.iter().find(|i| i[0] == 5).unwrap();
    assert_eq!(&term[4..], b"Authentication failed");
    assert!(lcp.iter().any(|i| i[0] == 6));
    assert!(r.events.contains(&SessionEvent::AuthFailed {
        peer_name: "user1".into(),
        method: AuthMethod::MsChapV2
    }));
    assert_eq!(
        r.events.last(),
        Some(&SessionEvent::Down {
            reason: DownReason::AuthFailed("Authentication failed".into())
        })
    );
}

#[test]
fn server_replays_the_chap_md5_dialup() {
    let cap = read_capture("chap-md5-no-mppe.pcap");
    let dns = Some(Ipv4Addr::new(10, 9, 9, 53));
    let cfg = server_config(AuthMethod::ChapMd5, MppePolicy::default(), [dns, dns]);
    let mut r = Replay::new(cfg, scripted(0x6a, "4d26732967419d3b760f2dbd99e857c7"));
    let mut clear_ip = 0;
    let mut compressed = 0;
    for f in frames(&cap, CLIENT) {
        let (proto, info) = split(&f);
        let frame = if proto == Protocol::Lcp && info[0] == 2 {
            readdress_lcp_ack(&r, &info)
        } else {
            f.clone()
        };
        let (res, buf) = r.feed(&frame);
        match (proto, res) {
            (Protocol::Ipv4, Decap::Ip { start, len }) => {
                assert!(ipv4_ok(&buf[start..start + len]));
                clear_ip += 1;
            }
            // pppd and the reference client agreed on Deflate; we never do compression.
            (Protocol::Compressed, Decap::Dropped(DropReason::NoMppe)) => compressed += 1,
            (p, Decap::Consumed) if p.is_control() => {}
            (p, other) => panic!("{p}: {other:?}"),
        }
    }
    // The client sent two pings in clear before the Deflate-compressed traffic began.
    assert_eq!(clear_ip, 2);
    assert!(compressed >= 20, "{compressed}");
    let theirs: Vec<(Protocol, Vec<u8>)> = frames(&cap, SERVER).iter().map(|f| split(f)).collect();
    // CHAP-MD5 Challenge and "Access granted" Success as pppd.
    let their_chap: Vec<_> = theirs
        .iter()
        .filter(|(p, _)| *p == Protocol::Chap)
        .map(|(_, i)| i.clone())
        .collect();
    assert_eq!(r.sent_info(Protocol::Chap), their_chap);
    // No MPPE without MS-CHAP: the client's CCP (Deflate, BSD) is Protocol-Rejected, not
    // negotiated, and nothing of CCP is sent by us.
    assert!(r.sent_info(Protocol::Ccp).is_empty());
    let lcp = r.sent_info(Protocol::Lcp);
    assert!(lcp.iter().any(|i| i[0] == 8 && i[4..6] == [0x80, 0xfd]));
    // IPCP exactly as pppd (ms-dns 10.9.9.53).
    let their_ipcp: Vec<_> = theirs
        .iter()
        .filter(|(p, _)| *p == Protocol::Ipcp)
        .map(|(_, i)| i.clone())
        .collect();
    assert_eq!(r.sent_info(Protocol::Ipcp), their_ipcp);
    assert!(matches!(
        r.events
            .iter()
            .find(|e| matches!(e, SessionEvent::Up { .. })),
        Some(SessionEvent::Up {
            mppe: None,
            mtu: 1500,
            ..
        })
    ));
}

#[test]
fn client_replays_the_reference_server() {
    let cap = read_capture("mschapv2-mppe128-stateless.pcap");
    let cfg = SessionConfig {
        role: Role::Client {
            user: "user1".into(),
            password: "password1".into(),
        },
        our_name: "user1".into(),
        mppe: REQUIRE_MPPE_128,
        ipcp: IpcpPolicy {
            request_dns: true,
            ..Default::default()
        },
        ..SessionConfig::default()
    };
    // Session::new seed, LCP-up identifier, then the MS-CHAPv2 peer challenge of the capture.
    let entropy = Box::new(Scripted {
        chunks: VecDeque::from(vec![
            vec![0u8; 8],
            vec![0],
            hex("72953313130bf4478af31fdc64506a60"),
        ]),
        rest: Seeded(3),
    });
    let mut r = Replay::new(cfg, entropy);
    let mut ipv4 = 0;
    let mut ipv6_dropped = 0;
    for f in frames(&cap, SERVER) {
        let (proto, info) = split(&f);
        let frame = match (proto, info[0]) {
            (Protocol::Lcp, 2) => readdress_lcp_ack(&r, &info),
            // The reference client asked for VJ first; we do not, so its Reject does not
            // apply to us, and the later replies are re-addressed to our requests.
            (Protocol::Ipcp, 4) => continue,
            (Protocol::Ipcp, 2 | 3) => {
                let pkt = ControlPacket::parse(&info).unwrap();
                let (id, ours) = r.our_request(Protocol::Ipcp);
                if pkt.code.number() == 2 {
                    assert_eq!(pkt.data, &ours[..], "the reference acks what we ask");
                }
                let p = virtgate_ppp::frame::emit_control(pkt.code, id, pkt.data);
                HeaderCompression::NONE.frame(Protocol::Ipcp, &p)
            }
            _ => f.clone(),
        };
        let (res, buf) = r.feed(&frame);
        match (proto, res) {
            (Protocol::Compressed, Decap::Ip { start, len }) => {
                assert!(ipv4_ok(&buf[start..start + len]));
                ipv4 += 1;
            }
            (Protocol::Compressed, Decap::Dropped(DropReason::UnsupportedProtocol(0x57))) => {
                ipv6_dropped += 1
            }
            (Protocol::Compressed, other) => panic!("{other:?}"),
            _ => {}
        }
    }
    // Our Response is the captured one, byte for byte (same peer challenge, same password).
    let theirs_client: Vec<(Protocol, Vec<u8>)> =
        frames(&cap, CLIENT).iter().map(|f| split(f)).collect();
    let their_resp: Vec<_> = theirs_client
        .iter()
        .filter(|(p, _)| *p == Protocol::Chap)
        .map(|(_, i)| i.clone())
        .collect();
    assert_eq!(r.sent_info(Protocol::Chap), their_resp);
    // pppd's S= passed our mutual authentication; MPPE came up; the server's data decrypts.
    assert!(r.events.contains(&SessionEvent::Authenticated {
        peer_name: "pptpd".into(),
        method: AuthMethod::MsChapV2
    }));
    assert!(matches!(
        r.events.iter().find(|e| matches!(e, SessionEvent::Up { .. })),
        Some(SessionEvent::Up { local, peer, mppe: Some(_), .. })
            if *local == Ipv4Addr::new(192, 168, 0, 100) && *peer == Ipv4Addr::new(192, 168, 0, 1)
    ));
    assert_eq!(ipv6_dropped, 1);
    // Every server→client MPPE frame after the IPv6 one is IPv4 (pings and HTTP replies).
    assert_eq!(ipv4, 30);
}
