//! Secrets stored as NT hashes (chap-secrets `nthash:<32 hex>`): an in-memory server/client
//! pair on virtual time with deterministic randomness gives exactly the same wire bytes — the
//! same authenticator response and the same MPPE keys, hence the same ciphertext — as with the
//! plaintext password, for MS-CHAPv2, MS-CHAPv1 (128-bit MPPE) and PAP. CHAP-MD5 cannot use a
//! hash and fails with a reason; MS-CHAPv1 40-bit MPPE cannot either (it needs the LAN Manager
//! hash) and ends the link with a reason instead of using wrong keys.

mod harness;

use std::net::Ipv4Addr;

use harness::*;
use virtgate_ppp::auth::{Secret, CHAP_MD5_NEEDS_PLAINTEXT};
use virtgate_ppp::mschap::nt_password_hash;
use virtgate_ppp::{AuthMethod, DownReason, MppePolicy, SessionConfig, SessionEvent};

/// Dials with `secret` on the server, sends IP both ways; returns every frame's bytes.
fn wire(server: SessionConfig, secret: Secret) -> Vec<(Side, Vec<u8>)> {
    let mut p = Pair::new(server, client_config("password1"));
    p.secrets.insert("user1".into(), secret);
    p.connect();
    for i in 0..20u8 {
        let up = ipv4_packet(CLIENT_IP, Ipv4Addr::new(8, 8, 8, 8), 40 + usize::from(i), i);
        p.roundtrip_ip(Side::Client, &up);
        let down = ipv4_packet(Ipv4Addr::new(8, 8, 8, 8), CLIENT_IP, 300, i);
        p.roundtrip_ip(Side::Server, &down);
    }
    p.log.iter().map(|s| (s.from, s.bytes.clone())).collect()
}

fn server(m: AuthMethod) -> SessionConfig {
    let mut s = server_config();
    s.auth.methods = vec![m];
    s
}

#[test]
fn an_nt_hash_secret_gives_the_same_exchange_and_keys_as_the_password() {
    let hash = Secret::NtHash(nt_password_hash("password1"));
    // What `virtgate hash-password` prints for it (and the config tests use).
    assert_eq!(
        nt_password_hash("password1"),
        *b"\x58\x35\x04\x8c\xe9\x4a\xd0\x56\x4e\x29\xa9\x24\xa0\x35\x10\xef"
    );
    for m in [AuthMethod::MsChapV2, AuthMethod::MsChapV1, AuthMethod::Pap] {
        let plain = wire(server(m), "password1".into());
        let hashed = wire(server(m), hash.clone());
        assert!(plain.len() > 10, "{m}");
        assert_eq!(
            plain, hashed,
            "{m}: the wire differs with an NT-hash secret"
        );
    }
    // With MPPE required, MS-CHAPv2 with a hash comes up encrypted.
    let mut s = server(AuthMethod::MsChapV2);
    s.mppe = MppePolicy {
        required: true,
        ..s.mppe
    };
    let mut p = Pair::new(s, client_config("password1"));
    p.secrets.insert("user1".into(), hash);
    p.connect();
    assert!(p
        .server_events
        .iter()
        .any(|e| matches!(e, SessionEvent::Up { mppe: Some(_), .. })));
}

#[test]
fn chap_md5_and_40_bit_ms_chapv1_refuse_a_hash_with_a_reason() {
    let hash = Secret::NtHash(nt_password_hash("password1"));
    let mut p = Pair::new(server(AuthMethod::ChapMd5), client_config("password1"));
    p.secrets.insert("user1".into(), hash.clone());
    p.open();
    p.run_until(std::time::Duration::from_secs(30), |p| {
        has_down(&p.server_events)
    });
    assert_eq!(
        down_reason(&p.server_events),
        Some(&DownReason::AuthFailed(CHAP_MD5_NEEDS_PLAINTEXT.into())),
        "{:?}",
        p.server_events
    );

    let mut s = server(AuthMethod::MsChapV1);
    s.mppe = MppePolicy {
        required: true,
        allow_128: false,
        ..s.mppe
    };
    let mut p = Pair::new(s, client_config("password1"));
    p.secrets.insert("user1".into(), hash);
    p.open();
    p.run_until(std::time::Duration::from_secs(30), |p| {
        has_down(&p.server_events)
    });
    match down_reason(&p.server_events) {
        Some(DownReason::MppeRequired(why)) => assert!(why.contains("NT hash"), "{why}"),
        other => panic!("{other:?}: {:?}", p.server_events),
    }
}
