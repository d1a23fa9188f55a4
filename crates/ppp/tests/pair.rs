//! Whole dial-ups between our server and our client Session, in memory on virtual time:
//! every authentication method, every MPPE mode, lost frames, wrong passwords, Nak loops,
//! keepalive, address exhaustion, and IP both ways.

mod harness;

use std::net::Ipv4Addr;
use std::time::Duration;

use harness::*;
use virtgate_ppp::frame::Protocol;
use virtgate_ppp::{
    AuthMethod, Decap, DownReason, DropReason, KeyLength, MppeMode, MppePolicy, Phase, Session,
    SessionEvent,
};

fn with_method(m: AuthMethod) -> (virtgate_ppp::SessionConfig, virtgate_ppp::SessionConfig) {
    let mut s = server_config();
    s.auth.methods = vec![m];
    let c = client_config("password1");
    (s, c)
}

fn ip_both_ways(p: &mut Pair, n: usize) {
    ip_both_ways_with(p, n, 10, 0x80);
}

fn up_event(events: &[SessionEvent]) -> Option<SessionEvent> {
    events
        .iter()
        .find(|e| matches!(e, SessionEvent::Up { .. }))
        .cloned()
}

#[test]
fn dialup_with_each_auth_method() {
    for m in [
        AuthMethod::Pap,
        AuthMethod::ChapMd5,
        AuthMethod::MsChapV1,
        AuthMethod::MsChapV2,
    ] {
        let (s, c) = with_method(m);
        let mut p = Pair::new(s, c);
        p.connect();
        assert!(p.server_events.contains(&SessionEvent::SecretRequest {
            peer_name: "user1".into()
        }));
        assert!(p.server_events.contains(&SessionEvent::Authenticated {
            peer_name: "user1".into(),
            method: m
        }));
        assert!(p.server_events.contains(&SessionEvent::AddressRequest {
            peer_name: "user1".into()
        }));
        // MPPE (default policy: 40/128 allowed, stateless) exactly when MS-CHAP gives keys.
        let want_mppe = m.provides_mppe_keys().then_some(MppeMode {
            key_length: KeyLength::Bits128,
            stateless: true,
        });
        assert_eq!(
            up_event(&p.server_events),
            Some(SessionEvent::Up {
                local: SERVER_IP,
                peer: CLIENT_IP,
                dns: [
                    Some(Ipv4Addr::new(8, 8, 8, 8)),
                    Some(Ipv4Addr::new(8, 8, 4, 4))
                ],
                mppe: want_mppe,
                mtu: if want_mppe.is_some() { 1496 } else { 1500 },
            }),
            "{m}"
        );
        assert_eq!(
            up_event(&p.client_events),
            Some(SessionEvent::Up {
                local: CLIENT_IP,
                peer: SERVER_IP,
                dns: [
                    Some(Ipv4Addr::new(8, 8, 8, 8)),
                    Some(Ipv4Addr::new(8, 8, 4, 4))
                ],
                mppe: want_mppe,
                mtu: if want_mppe.is_some() { 1496 } else { 1500 },
            }),
            "{m}"
        );
        assert_eq!(p.server.state(), Phase::Network);
        assert_eq!(p.server.mppe_mode(), want_mppe);
        // No frame was lost, so no retransmission was needed: up at time 0.
        assert_eq!(p.elapsed(), Duration::ZERO, "{m}");
        ip_both_ways(&mut p, 20);
        assert_eq!(p.server.stats().rx_ip_packets, 20);
        assert_eq!(p.client.stats().rx_ip_packets, 20);
        // A polite close ends both sides.
        p.server.close(p.now, "admin");
        assert!(p.run_until(Duration::from_secs(30), |p| p.both_down()));
        assert_eq!(
            down_reason(&p.server_events),
            Some(&DownReason::LocalClose("admin".into()))
        );
        assert_eq!(
            down_reason(&p.client_events),
            Some(&DownReason::PeerTerminated("admin".into()))
        );
    }
}

#[test]
fn every_mppe_key_length() {
    // The server allows exactly one key length; the client offers all three (S+M+L+H) and
    // is Nak'ed down to the server's; both directions agree. (Stateful mode only arises with
    // a peer that asks for it — ours never does, like pppd — see the CCP unit tests and the
    // session's stateful data-path test.)
    for key in [KeyLength::Bits40, KeyLength::Bits56, KeyLength::Bits128] {
        let (mut s, mut c) = with_method(AuthMethod::MsChapV2);
        s.mppe = MppePolicy {
            required: true,
            allow_40: key == KeyLength::Bits40,
            allow_56: key == KeyLength::Bits56,
            allow_128: key == KeyLength::Bits128,
            allow_stateful: false,
        };
        c.mppe = MppePolicy {
            required: true,
            allow_40: true,
            allow_56: true,
            allow_128: true,
            allow_stateful: true,
        };
        let mut p = Pair::new(s, c);
        p.connect();
        let want = Some(MppeMode {
            key_length: key,
            stateless: true,
        });
        assert_eq!(p.server.mppe_mode(), want, "{key:?}");
        assert_eq!(p.client.mppe_mode(), want, "{key:?}");
        // The agreed option as it went over the wire: exactly one key bit and H, both ways.
        let acks: Vec<Vec<u8>> = p
            .log
            .iter()
            .filter(|f| f.protocol() == Protocol::Ccp && f.control().0 == 2)
            .map(|f| f.control().2)
            .collect();
        let bit = match key {
            KeyLength::Bits40 => 0x20,
            KeyLength::Bits56 => 0x80,
            KeyLength::Bits128 => 0x40,
        };
        assert_eq!(
            acks,
            vec![vec![0x12, 0x06, 0x01, 0x00, 0x00, bit]; 2],
            "{key:?}"
        );
        // Enough packets to cross several 256-packet key-change boundaries.
        ip_both_ways(&mut p, 600);
    }
}

#[test]
fn mppe_not_used_when_not_possible_and_not_required() {
    // CHAP-MD5 gives no keys: CCP is not run, the client's CCP is Protocol-Rejected, IP is
    // in clear.
    let (s, c) = with_method(AuthMethod::ChapMd5);
    let mut p = Pair::new(s, c);
    p.connect();
    assert_eq!(p.server.mppe_mode(), None);
    assert_eq!(p.client.mppe_mode(), None);
    // Neither side runs CCP without key material (the Protocol-Reject of a peer's CCP is
    // checked against the reference client's frames in capture_replay.rs).
    assert!(!p.log.iter().any(|f| f.protocol() == Protocol::Ccp));
    ip_both_ways(&mut p, 5);

    // MPPE disallowed on the server with MS-CHAPv2: same.
    let (mut s, c) = with_method(AuthMethod::MsChapV2);
    s.mppe = MppePolicy {
        required: false,
        allow_40: false,
        allow_56: false,
        allow_128: false,
        allow_stateful: false,
    };
    let mut p = Pair::new(s, c);
    p.connect();
    assert_eq!(p.server.mppe_mode(), None);
    assert_eq!(p.client.mppe_mode(), None);
    ip_both_ways(&mut p, 5);
}

#[test]
fn mppe_required_but_impossible_terminates() {
    // Server requires MPPE but authenticates with CHAP-MD5: no keys, link terminated.
    let (mut s, c) = with_method(AuthMethod::ChapMd5);
    s.mppe.required = true;
    let mut p = Pair::new(s, c);
    p.open();
    assert!(p.run_until(Duration::from_secs(60), |p| p.both_down()));
    assert_eq!(
        down_reason(&p.server_events),
        Some(&DownReason::MppeRequired(
            "MPPE required but not available".into()
        ))
    );
    assert!(!p
        .server_events
        .iter()
        .any(|e| matches!(e, SessionEvent::Up { .. })));

    // Client requires MPPE, server has it disabled: the client gives up.
    let (mut s, mut c) = with_method(AuthMethod::MsChapV2);
    s.mppe = MppePolicy {
        required: false,
        allow_40: false,
        allow_56: false,
        allow_128: false,
        allow_stateful: false,
    };
    c.mppe.required = true;
    let mut p = Pair::new(s, c);
    p.open();
    assert!(p.run_until(Duration::from_secs(60), |p| p.both_down()));
    assert!(
        matches!(
            down_reason(&p.client_events),
            Some(DownReason::MppeRequired(_))
        ),
        "{:?}",
        p.client_events
    );
    assert!(!p
        .client_events
        .iter()
        .any(|e| matches!(e, SessionEvent::Up { .. })));

    // Key lengths that do not overlap (server 128 only, client 40 only): no agreement.
    let (mut s, mut c) = with_method(AuthMethod::MsChapV2);
    s.mppe = MppePolicy {
        required: true,
        allow_40: false,
        ..MppePolicy::default()
    };
    c.mppe = MppePolicy {
        required: true,
        allow_128: false,
        ..MppePolicy::default()
    };
    let mut p = Pair::new(s, c);
    p.open();
    assert!(p.run_until(Duration::from_secs(120), |p| p.both_down()));
    assert!(matches!(
        down_reason(&p.server_events),
        Some(DownReason::MppeRequired(_))
    ));
    assert!(!p
        .server_events
        .iter()
        .any(|e| matches!(e, SessionEvent::Up { .. })));
}

#[test]
fn lost_frames_are_recovered_by_the_restart_timer() {
    for (ds, dc) in [(1, 0), (0, 1), (3, 2), (5, 5)] {
        let (s, c) = with_method(AuthMethod::MsChapV2);
        let mut p = Pair::new(s, c);
        p.drop_server_first = ds;
        p.drop_client_first = dc;
        p.connect();
        let dropped = p.log.iter().filter(|f| f.dropped).count();
        assert_eq!(dropped, ds + dc);
        // Recovery needed at least one restart interval.
        assert!(
            p.elapsed() >= Duration::from_secs(3),
            "{ds}/{dc}: {:?}",
            p.elapsed()
        );
        assert!(
            p.elapsed() < Duration::from_secs(40),
            "{ds}/{dc}: {:?}",
            p.elapsed()
        );
        ip_both_ways(&mut p, 3);
    }
}

#[test]
fn lost_auth_frames_are_recovered() {
    // (what is lost, CHAP code): the Challenge, the Response, the Success.
    for (from, code) in [(Side::Server, 1u8), (Side::Client, 2), (Side::Server, 3)] {
        for m in [
            AuthMethod::ChapMd5,
            AuthMethod::MsChapV1,
            AuthMethod::MsChapV2,
        ] {
            let (s, c) = with_method(m);
            let mut p = Pair::new(s, c);
            let mut done = false;
            p.drop_if = Some(Box::new(move |f: &Sent| {
                let hit = !done
                    && f.from == from
                    && f.protocol() == Protocol::Chap
                    && f.control().0 == code;
                done |= hit;
                hit
            }));
            p.connect();
            assert_eq!(
                p.log.iter().filter(|f| f.dropped).count(),
                1,
                "{m} {from:?} {code}"
            );
            assert!(p.elapsed() >= Duration::from_secs(3));
            ip_both_ways(&mut p, 2);
        }
    }
    // PAP: the Authenticate-Request and the Ack.
    for (from, code) in [(Side::Client, 1u8), (Side::Server, 2)] {
        let (s, c) = with_method(AuthMethod::Pap);
        let mut p = Pair::new(s, c);
        let mut done = false;
        p.drop_if = Some(Box::new(move |f: &Sent| {
            let hit =
                !done && f.from == from && f.protocol() == Protocol::Pap && f.control().0 == code;
            done |= hit;
            hit
        }));
        p.connect();
        assert_eq!(p.log.iter().filter(|f| f.dropped).count(), 1);
    }
}

#[test]
fn wrong_password_fails_with_pppd_messages() {
    for m in [
        AuthMethod::Pap,
        AuthMethod::ChapMd5,
        AuthMethod::MsChapV1,
        AuthMethod::MsChapV2,
    ] {
        let mut s = server_config();
        s.auth.methods = vec![m];
        let c = client_config("not-the-password");
        let mut p = Pair::new(s, c);
        p.open();
        assert!(
            p.run_until(Duration::from_secs(30), |p| p.both_down()),
            "{m}"
        );
        assert!(p.server_events.contains(&SessionEvent::AuthFailed {
            peer_name: "user1".into(),
            method: m
        }));
        assert!(p
            .client_events
            .iter()
            .any(|e| matches!(e, SessionEvent::AuthFailed { method, .. } if *method == m)));
        assert!(
            matches!(
                down_reason(&p.server_events),
                Some(DownReason::AuthFailed(_))
            ),
            "{m}"
        );
        assert!(
            matches!(
                down_reason(&p.client_events),
                Some(DownReason::AuthFailed(_))
            ),
            "{m}"
        );
        // The verdict as pppd words it.
        let failure = p
            .log
            .iter()
            .find(|f| {
                f.from == Side::Server
                    && matches!(f.protocol(), Protocol::Chap | Protocol::Pap)
                    && f.control().0 != 1
            })
            .expect("a failure packet");
        let (code, _, data) = failure.control();
        let text = String::from_utf8_lossy(&data).to_string();
        match m {
            AuthMethod::Pap => assert_eq!((code, text.as_str()), (3, "\x0fLogin incorrect")),
            AuthMethod::ChapMd5 => assert_eq!((code, text.as_str()), (4, "Access denied")),
            AuthMethod::MsChapV1 => {
                assert_eq!(code, 4);
                assert!(
                    text.starts_with("E=691 R=0 C=") && text.ends_with(" V=0"),
                    "{text}"
                );
            }
            AuthMethod::MsChapV2 => {
                assert_eq!(code, 4);
                assert!(
                    text.starts_with("E=691 R=0 C=") && text.ends_with(" V=0 M=Access denied"),
                    "{text}"
                );
            }
        }
        // Then LCP Terminate-Request "Authentication failed", as pppd.
        let term = p
            .log
            .iter()
            .find(|f| f.from == Side::Server && f.protocol() == Protocol::Lcp && f.control().0 == 5)
            .expect("terminate");
        assert_eq!(term.control().2, b"Authentication failed");
        assert!(!p
            .server_events
            .iter()
            .any(|e| matches!(e, SessionEvent::Up { .. })));
    }
}

#[test]
fn unknown_user_fails() {
    let (s, c) = with_method(AuthMethod::MsChapV2);
    let mut p = Pair::new(s, c);
    p.secrets.clear();
    p.open();
    assert!(p.run_until(Duration::from_secs(30), |p| p.both_down()));
    assert!(matches!(
        down_reason(&p.server_events),
        Some(DownReason::AuthFailed(_))
    ));
}

fn ipcp_address_answers(p: &Pair) -> Vec<u8> {
    // The server's answers to the client's IPCP requests that carried an IP-Address.
    let mut out = Vec::new();
    for f in p.log.iter().filter(|f| f.protocol() == Protocol::Ipcp) {
        let (code, _, data) = f.control();
        if f.from == Side::Server && matches!(code, 2..=4) && data.first() == Some(&3) {
            out.push(code);
        }
    }
    out
}

#[test]
fn nak_loop_is_ended_by_max_failure() {
    // The client insists on 10.9.9.9 (no ipcp-accept-local); the server assigns another.
    // The client's Max-Failure ends it: after 5 Naks it treats the Nak as a Reject and stops
    // asking for an address; the server then uses the one it assigned.
    let (s, mut c) = with_method(AuthMethod::MsChapV2);
    c.ipcp.local = Ipv4Addr::new(10, 9, 9, 9);
    c.ipcp.accept_local = false;
    let mut p = Pair::new(s, c);
    p.connect();
    assert_eq!(ipcp_address_answers(&p), vec![3, 3, 3, 3, 3], "5 Naks");
    let last_client_req = p
        .log
        .iter()
        .rev()
        .find(|f| f.from == Side::Client && f.protocol() == Protocol::Ipcp && f.control().0 == 1)
        .unwrap()
        .control();
    assert!(
        !last_client_req.2.chunks(6).any(|o| o[0] == 3),
        "address option dropped"
    );
    assert!(
        matches!(up_event(&p.server_events), Some(SessionEvent::Up { peer, .. }) if peer == CLIENT_IP)
    );

    // A client that never gives up (its Max-Failure raised): the server's Max-Failure ends
    // it, turning the sixth Nak into a Configure-Reject of the option.
    let (s, mut c) = with_method(AuthMethod::MsChapV2);
    c.ipcp.local = Ipv4Addr::new(10, 9, 9, 9);
    c.ipcp.accept_local = false;
    c.fsm.max_failure = 100;
    let mut p = Pair::new(s, c);
    p.connect();
    assert_eq!(
        ipcp_address_answers(&p),
        vec![3, 3, 3, 3, 3, 4],
        "5 Naks then a Reject"
    );
    assert!(
        matches!(up_event(&p.server_events), Some(SessionEvent::Up { peer, .. }) if peer == CLIENT_IP)
    );
}

#[test]
fn keepalive_declares_a_silent_peer_dead() {
    let (mut s, c) = with_method(AuthMethod::MsChapV2);
    s.lcp.echo_interval = Some(Duration::from_secs(30));
    s.lcp.echo_failure = 4;
    let mut p = Pair::new(s, c);
    p.connect();
    let up_at = p.elapsed();
    // The client answers echoes while it is there.
    assert!(!p.run_until(Duration::from_secs(200), |p| has_down(&p.server_events)));
    let echoes = p
        .log
        .iter()
        .filter(|f| f.from == Side::Client && f.protocol() == Protocol::Lcp && f.control().0 == 10)
        .count();
    assert!(echoes >= 6, "{echoes}");
    // Now it goes silent.
    p.mute = Some(Side::Client);
    let silent_at = p.elapsed();
    assert!(p.run_until(Duration::from_secs(600), |p| has_down(&p.server_events)));
    assert_eq!(
        down_reason(&p.server_events),
        Some(&DownReason::PeerNotResponding)
    );
    // pppd semantics: 4 unanswered echoes 30 s apart, dead when the 5th is due, then the
    // Terminate-Request times out (2 × 3 s).
    let dead_after = p.elapsed() - silent_at;
    assert!(
        dead_after >= Duration::from_secs(120) && dead_after <= Duration::from_secs(160),
        "{dead_after:?}"
    );
    let _ = up_at;
}

#[test]
fn client_keepalive_too() {
    let (s, mut c) = with_method(AuthMethod::MsChapV2);
    c.lcp.echo_interval = Some(Duration::from_secs(10));
    c.lcp.echo_failure = 3;
    let mut p = Pair::new(s, c);
    p.connect();
    p.mute = Some(Side::Server);
    assert!(p.run_until(Duration::from_secs(600), |p| has_down(&p.client_events)));
    assert_eq!(
        down_reason(&p.client_events),
        Some(&DownReason::PeerNotResponding)
    );
}

#[test]
fn pool_exhausted_terminates_cleanly() {
    let (s, c) = with_method(AuthMethod::MsChapV2);
    let mut p = Pair::new(s, c);
    p.pool = None;
    p.open();
    assert!(p.run_until(Duration::from_secs(30), |p| p.both_down()));
    assert_eq!(
        down_reason(&p.server_events),
        Some(&DownReason::AddressPoolExhausted)
    );
    assert_eq!(
        down_reason(&p.client_events),
        Some(&DownReason::PeerTerminated(
            "No IP address available".into()
        ))
    );
    assert!(!p
        .server_events
        .iter()
        .any(|e| matches!(e, SessionEvent::Up { .. })));
    // Terminate-Request acked: no timeout needed.
    assert!(p.elapsed() < Duration::from_secs(4), "{:?}", p.elapsed());
}

#[test]
fn data_before_up_and_clear_data_under_mppe_are_dropped() {
    let (mut s, c) = with_method(AuthMethod::MsChapV2);
    s.mppe.required = true;
    let mut p = Pair::new(s, c);
    p.open();
    // Not up yet (nothing delivered): encapsulate refuses, decapsulate drops clear IP.
    let pkt = ipv4_packet(CLIENT_IP, SERVER_IP, 40, 9);
    let mut buf = vec![0u8; 8 + pkt.len()];
    assert_eq!(
        p.server.encapsulate(&mut buf, 8, pkt.len()),
        Err(virtgate_ppp::DataError::NotUp)
    );
    p.connect();
    assert!(p.server.mppe_mode().is_some());
    // A clear IPv4 frame while MPPE is in use: dropped and counted.
    let mut frame = vec![0x21];
    frame.extend_from_slice(&pkt);
    let l = frame.len();
    assert_eq!(
        p.server.decapsulate(p.now, &mut frame, 0, l),
        Decap::Dropped(DropReason::ClearWhileEncrypted)
    );
    assert_eq!(p.server.stats().dropped_clear, 1);
    // Headroom and MTU are checked.
    let mut small = pkt.clone();
    let l = small.len();
    assert!(matches!(
        p.server.encapsulate(&mut small, 0, l),
        Err(virtgate_ppp::DataError::Headroom { .. })
    ));
    let big = vec![0x45u8; 8 + 1497];
    let mut b = big.clone();
    assert!(matches!(
        p.server.encapsulate(&mut b, 8, 1497),
        Err(virtgate_ppp::DataError::TooLarge { .. })
    ));
    // Garbage frames never panic.
    for junk in [
        &[][..],
        &[0xff][..],
        &[0xff, 0x03][..],
        &[0xc0, 0x21, 1][..],
        &[0xfd, 0x90][..],
        &[0x80, 0x21, 1, 1, 0, 200][..],
    ] {
        let mut j = junk.to_vec();
        let l = j.len();
        let r = p.server.decapsulate(p.now, &mut j, 0, l);
        assert!(
            matches!(r, Decap::Dropped(_) | Decap::Consumed),
            "{junk:02x?}: {r:?}"
        );
    }
    assert!(p.server.is_up());
    ip_both_ways(&mut p, 3);
}

#[test]
fn ipv6cp_and_unknown_protocols_are_protocol_rejected() {
    let (s, c) = with_method(AuthMethod::MsChapV2);
    let mut p = Pair::new(s, c);
    p.connect();
    // IPV6CP Configure-Request as pppd sends it (captured).
    let mut f = hex("8057 0101000e010ac1b8be3963e57592");
    let l = f.len();
    assert_eq!(p.server.decapsulate(p.now, &mut f, 0, l), Decap::Consumed);
    let out = p.server.poll_transmit().unwrap();
    // LCP (always FF 03 + two-octet protocol) Protocol-Reject, Length 20, rejected protocol
    // and the rejected information field.
    assert_eq!(&out[0..5], &hex("ff03c02108"));
    assert_eq!(&out[6..8], &[0x00, 0x14]);
    assert_eq!(&out[8..], &hex("8057 0101000e010ac1b8be3963e57592")[..]);
    // Clear IPv6 data (0x0057) too.
    let mut f = hex("0057 6000000000000000");
    let l = f.len();
    assert_eq!(p.server.decapsulate(p.now, &mut f, 0, l), Decap::Consumed);
    assert_eq!(&p.server.poll_transmit().unwrap()[8..10], &[0x00, 0x57]);
    // The link is unaffected.
    assert!(p.both_up());
    ip_both_ways(&mut p, 2);
}

#[test]
fn lcp_renegotiation_brings_the_link_back() {
    let (s, c) = with_method(AuthMethod::MsChapV2);
    let mut p = Pair::new(s, c);
    p.connect();
    // The client's LCP restarts (Configure-Request while Opened): RFC 1661 renegotiation.
    let mut f = hex("ff03c021 0163 000e 0506 01020304 0702 0802");
    let l = f.len();
    assert_eq!(p.server.decapsulate(p.now, &mut f, 0, l), Decap::Consumed);
    assert!(!p.server.is_up());
    assert!(p.run_until(Duration::from_secs(60), |p| p.both_up()));
    let ups = p
        .server_events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Up { .. }))
        .count();
    assert_eq!(ups, 2);
    ip_both_ways(&mut p, 3);
}

#[test]
fn lower_layer_down_reports_down_once() {
    let (s, c) = with_method(AuthMethod::MsChapV2);
    let mut p = Pair::new(s, c);
    p.connect();
    p.server.lower_layer_down(p.now);
    p.server.close(p.now, "again");
    let downs: Vec<_> = std::iter::from_fn(|| p.server.poll_event())
        .filter(|e| matches!(e, SessionEvent::Down { .. }))
        .collect();
    assert_eq!(
        downs,
        vec![SessionEvent::Down {
            reason: DownReason::LowerLayerDown
        }]
    );
    assert_eq!(p.server.state(), Phase::Dead);
    assert_eq!(p.server.poll_timeout(), None);
}

#[test]
fn close_before_open_reports_down() {
    let (s, _) = with_method(AuthMethod::MsChapV2);
    let mut sess = virtgate_ppp::Session::new(std::time::Instant::now(), s, Box::new(Seeded(5)));
    sess.close(std::time::Instant::now(), "never mind");
    assert_eq!(
        sess.poll_event(),
        Some(SessionEvent::Down {
            reason: DownReason::LocalClose("never mind".into())
        })
    );
}

#[test]
fn silent_peer_during_establish_times_out() {
    let (s, c) = with_method(AuthMethod::MsChapV2);
    let mut p = Pair::new(s, c);
    p.mute = Some(Side::Client);
    p.open();
    assert!(p.run_until(Duration::from_secs(120), |p| has_down(&p.server_events)));
    // Max-Configure (10) requests, 3 s apart: Stopped after 30 s.
    assert_eq!(p.elapsed(), Duration::from_secs(30));
    let reqs = p
        .log
        .iter()
        .filter(|f| f.from == Side::Server && f.protocol() == Protocol::Lcp && f.control().0 == 1)
        .count();
    assert_eq!(reqs, 10);
    assert!(matches!(
        down_reason(&p.server_events),
        Some(DownReason::NegotiationFailed {
            protocol: Protocol::Lcp,
            ..
        })
    ));
}

#[test]
fn session_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<virtgate_ppp::Session>();
}

/// Random and mutated frames at every phase: never a panic, never IP out of control bytes.
#[test]
fn garbage_never_panics() {
    use virtgate_ppp::Entropy;
    let mut rng = Seeded(0xdead_beef);
    let protocols: [&[u8]; 9] = [
        &[0xc0, 0x21],
        &[0xff, 0x03, 0xc0, 0x21],
        &[0xc2, 0x23],
        &[0xc0, 0x23],
        &[0x80, 0xfd],
        &[0x80, 0x21],
        &[0xfd],
        &[0x21],
        &[0x80, 0x57],
    ];
    for round in 0..40u32 {
        let (s, c) = with_method(
            [
                AuthMethod::Pap,
                AuthMethod::ChapMd5,
                AuthMethod::MsChapV1,
                AuthMethod::MsChapV2,
            ][round as usize % 4],
        );
        let mut p = Pair::new(s, c);
        p.open();
        // Stop at a different point of the dial-up each round.
        let steps = round % 8;
        for _ in 0..steps {
            p.step();
        }
        for _ in 0..300 {
            let mut b = [0u8; 3];
            rng.fill(&mut b);
            let proto = protocols[usize::from(b[0]) % protocols.len()];
            let len = usize::from(b[1]) % 64;
            let mut frame = proto.to_vec();
            // A plausible control header half of the time.
            if b[2] & 1 == 0 {
                let mut h = [0u8; 2];
                rng.fill(&mut h);
                frame.extend_from_slice(&[1 + h[0] % 16, h[1], 0, (4 + len) as u8]);
            }
            let mut body = vec![0u8; len];
            rng.fill(&mut body);
            frame.extend_from_slice(&body);
            let l = frame.len();
            let target = if b[2] & 2 == 0 {
                &mut p.server
            } else {
                &mut p.client
            };
            let _ = target.decapsulate(p.now, &mut frame, 0, l);
            while target.poll_transmit().is_some() {}
            while target.poll_event().is_some() {}
        }
        // Time still works afterwards.
        let t = p.now + Duration::from_secs(100);
        p.server.handle_timeout(t);
        p.client.handle_timeout(t);
    }
}

#[test]
fn close_after_peer_terminate_keeps_the_peer_reason() {
    let (s, c) = with_method(AuthMethod::MsChapV2);
    let mut p = Pair::new(s, c);
    p.connect();
    p.client.close(p.now, "user hung up");
    p.step();
    // The server acked and waits one restart interval (zrc) before reporting Down; the
    // daemon closes meanwhile.
    assert!(!has_down(&p.server_events));
    p.server.close(p.now, "call cleared");
    assert!(p.run_until(Duration::from_secs(30), |p| p.both_down()));
    assert_eq!(
        down_reason(&p.server_events),
        Some(&DownReason::PeerTerminated("user hung up".into()))
    );
    assert_eq!(
        down_reason(&p.client_events),
        Some(&DownReason::LocalClose("user hung up".into()))
    );
}

/// pppd's rule (auth.c start_networks/continue_networks): with MPPE required, no network
/// protocol starts before CCP is up. A pppd peer whose IPCP is still closed answers an early
/// IPCP Configure-Request with Terminate-Ack, which cost the real-peer dial-up a 3 s restart.
#[test]
fn mppe_required_holds_ipcp_until_ccp_is_up() {
    let mut s = server_config();
    s.mppe.required = true;
    let mut c = client_config("password1");
    c.mppe.required = true;
    let mut p = Pair::new(s, c);
    p.connect();
    assert!(p.both_up());
    assert_eq!(p.elapsed(), Duration::ZERO);
    for side in [Side::Server, Side::Client] {
        let sent: Vec<&Sent> = p.log.iter().filter(|f| f.from == side).collect();
        // CCP code 2 = Configure-Ack: ours to the peer's request, and the peer's to ours.
        let our_ccp_ack = sent
            .iter()
            .position(|f| f.protocol() == Protocol::Ccp && f.control().0 == 2)
            .expect("we ack the peer's CCP request");
        let first_ipcp = sent
            .iter()
            .position(|f| f.protocol() == Protocol::Ipcp)
            .expect("IPCP is negotiated");
        assert!(
            first_ipcp > our_ccp_ack,
            "{side:?} sent IPCP (frame {first_ipcp}) before CCP was up (ack at {our_ccp_ack})"
        );
        let peer_ccp_ack_at = p
            .log
            .iter()
            .position(|f| f.from != side && f.protocol() == Protocol::Ccp && f.control().0 == 2)
            .expect("the peer acks our CCP request");
        let first_ipcp_at = p
            .log
            .iter()
            .position(|f| f.from == side && f.protocol() == Protocol::Ipcp)
            .unwrap();
        assert!(
            first_ipcp_at > peer_ccp_ack_at,
            "{side:?}: IPCP before the peer's CCP ack"
        );
    }
}

/// More than 2047 stateless MPPE packets lost in a row put the coherency count out of reach:
/// the receiver can never decrypt again. Like Linux's ppp_mppe (SANITY_MAX, then a fatal
/// decompression error), the link must end instead of staying up and passing nothing.
#[test]
fn stateless_mppe_out_of_step_after_a_long_loss_ends_the_link() {
    let (s, c) = with_method(AuthMethod::MsChapV2);
    let mut p = Pair::new(s, c);
    p.connect();
    assert!(p.both_up());
    let pkt = ipv4_packet(CLIENT_IP, Ipv4Addr::new(8, 8, 8, 8), 40, 1);
    p.roundtrip_ip(Side::Client, &pkt);
    // 2,100 packets from the client never arrive.
    for _ in 0..2100 {
        let mut buf = vec![0u8; Session::HEADROOM + pkt.len()];
        buf[Session::HEADROOM..].copy_from_slice(&pkt);
        p.client
            .encapsulate(&mut buf, Session::HEADROOM, pkt.len())
            .expect("encapsulate");
    }
    // What arrives afterwards cannot be used; a few hundred is not yet fatal...
    let mut delivered = 0;
    for _ in 0..100 {
        if matches!(p.send_ip(Side::Client, &pkt), Decap::Ip { .. }) {
            delivered += 1;
        }
    }
    assert_eq!(delivered, 0, "keys out of step cannot decrypt");
    assert!(p.server.is_up());
    // ...but MPPE_SANITY_MAX in a row ends the link with a reason.
    for _ in 0..virtgate_ppp::MPPE_SANITY_MAX {
        let _ = p.send_ip(Side::Client, &pkt);
    }
    assert!(p.run_until(Duration::from_secs(30), |p| p.both_down()));
    assert!(
        matches!(
            down_reason(&p.server_events),
            Some(DownReason::MppeRequired(text)) if text.contains("out of step")
        ),
        "{:?}",
        down_reason(&p.server_events)
    );
}
