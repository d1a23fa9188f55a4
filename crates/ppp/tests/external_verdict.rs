//! The server's external-verdict path (what the daemon uses for RADIUS): the session hands out
//! the peer's authentication data and takes accept (Success text, MPPE start keys given
//! directly) or reject (Failure text) instead of a secret. The verdicts here are computed the
//! way a RADIUS server computes them (FreeRADIUS rlm_mschap: NT-Response check, authenticator
//! response, MS-MPPE-Send-Key = the server's MasterSendKey).

mod harness;

use std::net::Ipv4Addr;
use std::time::Duration;

use harness::*;
use virtgate_ppp::auth::{ExternalVerdict, PeerCredentials};
use virtgate_ppp::frame::Protocol;
use virtgate_ppp::mppe::mschapv2_start_keys;
use virtgate_ppp::mschap::v2;
use virtgate_ppp::{AuthMethod, Decap, DownReason, KeyLength, MppeMode, MppePolicy, SessionEvent};

const PASSWORD: &str = "password1";

fn mppe128_pair(method: AuthMethod) -> Pair {
    let mut s = server_config();
    s.auth.methods = vec![method];
    let mut c = client_config(PASSWORD);
    if method == AuthMethod::MsChapV2 {
        s.mppe = MppePolicy {
            required: true,
            allow_40: false,
            allow_56: false,
            allow_128: true,
            allow_stateful: false,
        };
        c.mppe = s.mppe;
    } else {
        s.mppe.required = false;
        c.mppe.required = false;
    }
    Pair::new(s, c)
}

/// A RADIUS server's answer to MS-CHAPv2 credentials for `user1`/`password`; `key_tweak`
/// spoils the keys it gives.
fn radius_like(password: &'static str, key_tweak: u8) -> VerdictFn {
    Box::new(move |creds| {
        let PeerCredentials::MsChapV2 {
            user,
            challenge,
            peer_challenge,
            nt_response,
            ..
        } = creds
        else {
            panic!("expected MS-CHAPv2 credentials, got {creds:?}");
        };
        assert_eq!(user, b"user1");
        if !v2::verify_nt_response(&challenge, &peer_challenge, &user, password, &nt_response) {
            return ExternalVerdict::Reject {
                message: Some(format!(
                    "E=691 R=0 C={} V=3 M=Authentication rejected",
                    "00".repeat(16)
                )),
            };
        }
        let auth = v2::generate_authenticator_response(
            password,
            &nt_response,
            &peer_challenge,
            &challenge,
            &user,
        );
        let s = v2::success_message(&auth, "");
        let s = s.trim_end().trim_end_matches(" M=").to_string();
        let keys = mschapv2_start_keys(password, &nt_response, true);
        let mut send = keys.send.0;
        send[0] ^= key_tweak;
        ExternalVerdict::Accept {
            message: Some(s),
            mppe_keys: Some((send, keys.recv.0)),
        }
    })
}

fn ip_both_ways(p: &mut Pair, n: usize) {
    ip_both_ways_with(p, n, 20, 0);
}

#[test]
fn mschapv2_mppe128_through_the_external_path_gives_a_working_encrypted_link() {
    let mut p = mppe128_pair(AuthMethod::MsChapV2);
    p.secrets.clear(); // no local secret: only the verdict can let the peer in
    p.verdict = Some(radius_like(PASSWORD, 0));
    p.connect();
    let want = Some(MppeMode {
        key_length: KeyLength::Bits128,
        stateless: true,
    });
    assert_eq!(p.server.mppe_mode(), want);
    assert_eq!(p.client.mppe_mode(), want);
    // The Success went out with the authenticator response and pppd's M= text; the client
    // checked S= (mutual authentication) and came up.
    let success = p
        .log
        .iter()
        .find(|f| f.protocol() == Protocol::Chap && f.control().0 == 3)
        .expect("a CHAP Success")
        .control()
        .2;
    let text = String::from_utf8(success).unwrap();
    assert!(
        text.starts_with("S=") && text.ends_with(" M=Access granted"),
        "{text}"
    );
    ip_both_ways(&mut p, 600);
}

#[test]
fn wrong_keys_from_the_verdict_give_a_link_that_passes_nothing() {
    let mut p = mppe128_pair(AuthMethod::MsChapV2);
    p.verdict = Some(radius_like(PASSWORD, 0x01));
    p.connect();
    let pkt = ipv4_packet(CLIENT_IP, Ipv4Addr::new(8, 8, 8, 8), 100, 1);
    // Client → server uses the (right) recv key: passes. Server → client: garbage.
    assert!(matches!(p.send_ip(Side::Client, &pkt), Decap::Ip { .. }));
    let r = p.send_ip(Side::Server, &pkt);
    assert!(matches!(r, Decap::Dropped(_)), "{r:?}");
    assert!(p.client.stats().dropped_mppe + p.client.stats().dropped_unsupported > 0);
}

#[test]
fn reject_sends_the_given_failure_and_ends_the_link() {
    let mut p = mppe128_pair(AuthMethod::MsChapV2);
    p.verdict = Some(radius_like("not-the-password", 0));
    p.open();
    assert!(p.run_until(Duration::from_secs(60), |p| p.both_down()));
    let failure = p
        .log
        .iter()
        .find(|f| f.protocol() == Protocol::Chap && f.control().0 == 4)
        .expect("a CHAP Failure")
        .control()
        .2;
    assert!(String::from_utf8(failure)
        .unwrap()
        .ends_with("V=3 M=Authentication rejected"));
    assert!(p
        .server_events
        .iter()
        .any(|e| matches!(e, SessionEvent::AuthFailed { .. })));
    assert!(matches!(
        down_reason(&p.server_events),
        Some(DownReason::AuthFailed(_))
    ));
}

#[test]
fn mschapv2_accept_without_authenticator_response_is_a_failure() {
    let mut p = mppe128_pair(AuthMethod::MsChapV2);
    p.verdict = Some(Box::new(|_| ExternalVerdict::Accept {
        message: Some("Welcome".into()),
        mppe_keys: Some(([1; 16], [2; 16])),
    }));
    p.open();
    assert!(p.run_until(Duration::from_secs(60), |p| p.both_down()));
    assert!(!p
        .server_events
        .iter()
        .any(|e| matches!(e, SessionEvent::Authenticated { .. })));
}

#[test]
fn pap_and_chap_md5_credentials_reach_the_verdict() {
    for method in [AuthMethod::Pap, AuthMethod::ChapMd5] {
        let mut p = mppe128_pair(method);
        p.secrets.clear();
        p.verdict = Some(Box::new(move |creds| {
            let ok = match creds {
                PeerCredentials::Pap { user, password } => {
                    user == b"user1" && password == PASSWORD.as_bytes()
                }
                PeerCredentials::ChapMd5 {
                    user,
                    id,
                    challenge,
                    response,
                } => {
                    user == b"user1"
                        && virtgate_ppp::chap_md5::verify(
                            id,
                            PASSWORD.as_bytes(),
                            &challenge,
                            &response,
                        )
                }
                other => panic!("{other:?}"),
            };
            if ok {
                ExternalVerdict::Accept {
                    message: None,
                    mppe_keys: None,
                }
            } else {
                ExternalVerdict::Reject { message: None }
            }
        }));
        p.connect();
        assert_eq!(p.server.mppe_mode(), None, "{method}");
        ip_both_ways(&mut p, 3);
    }
}
