//! Known-answer tests from the RFCs (RFC 1994, RFC 2433 Appendix B, RFC 2759 §9.2–§9.3,
//! RFC 3079 §2.5 and §3.5), message formats as pppd sends them, and MPPE round trips in
//! stateless and stateful mode with loss, resets and coherency-count wrap.

use md5::{Digest, Md5};
use rc4::{KeyInit, Rc4, StreamCipher};
use virtgate_ppp::chap_md5;
use virtgate_ppp::mppe::{
    self, change_key, get_asymmetric_start_key, get_master_key, get_new_key_from_sha,
    get_start_key, initial_session_key, mschapv1_start_keys, mschapv1_start_keys_nt,
    mschapv2_start_keys, reduce_key, KeyLength, MppeBits, MppeDecrypter, MppeEncrypter, MppeError,
    MppeHeader, StartKey,
};
use virtgate_ppp::mschap::{
    self, des_key_with_parity, error_code, hash_nt_password_hash, lm_password_hash,
    nt_password_hash, v1, v2, MsChapError,
};

/// Hex with optional spaces, as the RFCs print it.
fn hex<const N: usize>(s: &str) -> [u8; N] {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert_eq!(digits.len(), 2 * N, "hex length for {s}");
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(digits.chunks(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
    }
    out
}

// ---------------------------------------------------------------- RFC 2759 §9.2 / RFC 3079 §3.5

const USER: &str = "User";
const PASSWORD: &str = "clientPass";

fn auth_challenge() -> [u8; 16] {
    hex("5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28")
}
fn peer_challenge() -> [u8; 16] {
    hex("21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E")
}
fn nt_response() -> [u8; 24] {
    hex("82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF")
}

#[test]
fn rfc2759_nt_password_hash_and_hash_hash() {
    let hash = nt_password_hash(PASSWORD);
    assert_eq!(hash, hex("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE"));
    assert_eq!(
        hash_nt_password_hash(&hash),
        hex("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F")
    );
}

#[test]
fn rfc2759_challenge_hash_and_domain_stripping() {
    let expected: [u8; 8] = hex("D0 2E 43 86 BC E9 12 26");
    assert_eq!(
        v2::challenge_hash(&peer_challenge(), &auth_challenge(), USER),
        expected
    );
    // RFC 2759 §8.2: a DOMAIN\ prefix is not hashed (pppd strips up to the last backslash).
    assert_eq!(
        v2::challenge_hash(&peer_challenge(), &auth_challenge(), "CORP\\User"),
        expected
    );
    assert_eq!(
        v2::challenge_hash(
            &peer_challenge(),
            &auth_challenge(),
            b"A\\B\\User".as_slice()
        ),
        expected
    );
    assert_ne!(
        v2::challenge_hash(&peer_challenge(), &auth_challenge(), "user"),
        expected
    );
}

#[test]
fn rfc2759_nt_response_and_verification() {
    let r = v2::generate_nt_response(&auth_challenge(), &peer_challenge(), USER, PASSWORD);
    assert_eq!(r, nt_response());
    assert!(v2::verify_nt_response(
        &auth_challenge(),
        &peer_challenge(),
        USER,
        PASSWORD,
        &nt_response()
    ));
    assert!(!v2::verify_nt_response(
        &auth_challenge(),
        &peer_challenge(),
        USER,
        "clientpass",
        &nt_response()
    ));
    let mut flipped = nt_response();
    flipped[23] ^= 1;
    assert!(!v2::verify_nt_response(
        &auth_challenge(),
        &peer_challenge(),
        USER,
        PASSWORD,
        &flipped
    ));
}

#[test]
fn rfc2759_authenticator_response_and_success_message() {
    let auth = v2::generate_authenticator_response(
        PASSWORD,
        &nt_response(),
        &peer_challenge(),
        &auth_challenge(),
        USER,
    );
    assert_eq!(
        v2::success_message(&auth, ""),
        "S=407A5589115FD0D6209F510FE9C04566932CDA56"
    );
    assert_eq!(
        v2::success_message(&auth, "Access granted"),
        "S=407A5589115FD0D6209F510FE9C04566932CDA56 M=Access granted"
    );
    let parsed = v2::parse_success(v2::success_message(&auth, "Hi there").as_bytes()).unwrap();
    assert_eq!(parsed.auth_response, auth);
    assert_eq!(parsed.message.as_deref(), Some("Hi there"));
    assert!(v2::authenticator_response_matches(
        &auth,
        &parsed.auth_response
    ));
}

#[test]
fn rfc2759_response_value_round_trip() {
    let r = v2::Response::generate(&auth_challenge(), &peer_challenge(), USER, PASSWORD);
    let bytes = r.to_bytes();
    assert_eq!(&bytes[..16], &peer_challenge());
    assert_eq!(&bytes[16..24], &[0u8; 8]);
    assert_eq!(&bytes[24..48], &nt_response());
    assert_eq!(bytes[48], 0);
    assert_eq!(v2::Response::parse(&bytes).unwrap(), r);
    assert_eq!(
        v2::Response::parse(&bytes[..48]),
        Err(MsChapError::ResponseLength { len: 48 })
    );
    assert!(v2::Response::parse(&[0u8; 50]).is_err());
}

#[test]
fn rfc2759_des_key_parity_example() {
    // RFC 2759 §9.3 (the same example as RFC 2433 B.3).
    let hash = nt_password_hash("MyPw");
    assert_eq!(hash, hex("FC 15 6A F7 ED CD 6C 0E DD E3 33 7D 42 7F 4E AC"));
    assert_eq!(
        des_key_with_parity(&hex("FC 15 6A F7 ED CD 6C")),
        hex("FD 0B 5B 5E 7F 6E 34 D9")
    );
    assert_eq!(
        des_key_with_parity(&hex("0E DD E3 33 7D 42 7F")),
        hex("0E 6E 79 67 37 EA 08 FE")
    );
}

// ---------------------------------------------------------------------------- RFC 2433 B.2

#[test]
fn rfc2433_nt_challenge_response() {
    let challenge = hex("10 2D B5 DF 08 5D 30 41");
    let expected: [u8; 24] =
        hex("4E 9D 3C 8F 9C FD 38 5D 5B F4 D3 24 67 91 95 6C A4 C3 51 AB 40 9A 3D 61");
    assert_eq!(v1::nt_challenge_response(&challenge, "MyPw"), expected);

    let response = v1::Response::generate(&challenge, "MyPw");
    assert_eq!(response.nt_response, expected);
    assert_eq!(
        response.lm_response,
        v1::lm_challenge_response(&challenge, "MyPw")
    );
    let wire = response.to_bytes();
    assert_eq!(wire[48], 1);
    assert_eq!(v1::Response::parse(&wire).unwrap(), response);
    assert!(v1::verify_response(&challenge, "MyPw", &response));
    assert!(!v1::verify_response(&challenge, "MyPW", &response));
    // LM-only responses are refused, as pppd's server does.
    let lm_only = v1::Response {
        use_nt: false,
        ..response
    };
    assert!(!v1::verify_response(&challenge, "MyPw", &lm_only));
}

#[test]
fn rfc2433_lm_password_hash_is_case_insensitive_and_cut_at_14() {
    // RFC 3079 §2.5.1 gives LmPasswordHash("clientPass").
    let expected: [u8; 16] = hex("76 a1 52 93 60 96 d7 83 0e 23 90 22 74 04 af d2");
    assert_eq!(lm_password_hash(PASSWORD), expected);
    assert_eq!(lm_password_hash("CLIENTPASS"), expected);
    assert_eq!(
        lm_password_hash("ABCDEFGHIJKLMN"),
        lm_password_hash("abcdefghijklmnopq")
    );
    assert_ne!(
        lm_password_hash("ABCDEFGHIJKLM"),
        lm_password_hash("ABCDEFGHIJKLMN")
    );
}

#[test]
fn mschap_v1_failure_message_and_parse() {
    let challenge = hex("10 2D B5 DF 08 5D 30 41");
    let msg = v1::failure_message(error_code::AUTHENTICATION_FAILURE, true, &challenge);
    assert_eq!(msg, "E=691 R=1 C=102db5df085d3041 V=0");
    let f = v1::parse_failure(msg.as_bytes()).unwrap();
    assert_eq!(f.error, 691);
    assert!(f.retry);
    assert_eq!(f.challenge, Some(challenge));
    assert_eq!(f.version, Some(0));
    assert_eq!(f.message, None);
    // Windows NT sends no C=: the retry answers the old challenge + 23 in its first octet.
    let f = v1::parse_failure(b"E=691 R=1 V=2").unwrap();
    assert_eq!(f.challenge, None);
    assert_eq!(
        v1::implied_retry_challenge(&challenge),
        hex("27 2D B5 DF 08 5D 30 41")
    );
}

// ------------------------------------------------------------------- MS-CHAPv2 message parsing

#[test]
fn mschap_v2_failure_message_is_what_pppd_sends() {
    let challenge = hex("dc8805f8024e7d2ec123a6e9fe019832");
    // Byte for byte the Failure message in bad-password.pcap (pppd as the authenticator).
    assert_eq!(
        v2::failure_message(691, true, &challenge, "Access denied"),
        "E=691 R=1 C=dc8805f8024e7d2ec123a6e9fe019832 V=0 M=Access denied"
    );
    assert_eq!(
        v2::failure_message(error_code::PASSWD_EXPIRED, false, &challenge, ""),
        "E=648 R=0 C=dc8805f8024e7d2ec123a6e9fe019832 V=0 M="
    );
}

#[test]
fn mschap_v2_failure_parsing() {
    let f = v2::parse_failure(b"E=691 R=1 C=dc8805f8024e7d2ec123a6e9fe019832 V=0 M=Access denied")
        .unwrap();
    assert_eq!(f.error, error_code::AUTHENTICATION_FAILURE);
    assert!(f.retry);
    assert_eq!(f.challenge, Some(hex("dc8805f8024e7d2ec123a6e9fe019832")));
    assert_eq!(f.version, Some(0));
    assert_eq!(f.message.as_deref(), Some("Access denied"));

    // Windows style: uppercase hex, V=3, a message with spaces and '=' in it.
    let f = v2::parse_failure(
        b"E=648 R=0 C=00112233445566778899AABBCCDDEEFF V=3 M=Password expired: a=b",
    )
    .unwrap();
    assert_eq!(f.error, 648);
    assert!(!f.retry);
    assert_eq!(f.version, Some(3));
    assert_eq!(f.message.as_deref(), Some("Password expired: a=b"));

    // Only E= is mandatory; unknown fields are skipped.
    let f = v2::parse_failure(b"E=649 X=7").unwrap();
    assert_eq!(
        (f.error, f.retry, f.challenge, f.version),
        (649, false, None, None)
    );

    for bad in [
        &b""[..],
        b"R=1 C=00",
        b"E= R=1",
        b"E=69x",
        b"E=691 R=2",
        b"E=691 C=0011",
        b"E=691 C=zz112233445566778899aabbccddeeff",
        b"E=691 V=three",
    ] {
        assert!(
            matches!(
                v2::parse_failure(bad),
                Err(MsChapError::BadFailureMessage(_))
            ),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn mschap_v2_success_parsing() {
    let s = v2::parse_success(b"S=407a5589115fd0d6209f510fe9c04566932cda56").unwrap();
    assert_eq!(
        s.auth_response,
        hex("407A5589115FD0D6209F510FE9C04566932CDA56")
    );
    assert_eq!(s.message, None);
    let s = v2::parse_success(b"S=407A5589115FD0D6209F510FE9C04566932CDA56M=ok").unwrap();
    assert_eq!(s.message.as_deref(), Some("ok"));
    for bad in [
        &b""[..],
        b"S=",
        b"S=407A5589115FD0D6209F510FE9C04566932CDA5",
        b"S=407A5589115FD0D6209F510FE9C04566932CDA5G",
        b"S=407A5589115FD0D6209F510FE9C04566932CDA56 X=1",
        b"E=691 R=1",
    ] {
        assert_eq!(v2::parse_success(bad), Err(MsChapError::BadSuccessMessage));
    }
}

// ---------------------------------------------------------------------------- RFC 1994 CHAP-MD5

#[test]
fn chap_md5_is_md5_of_id_secret_challenge() {
    let challenge = hex::<16>("0102030405060708090a0b0c0d0e0f10");
    let mut md5 = Md5::new();
    md5.update([0x2a]);
    md5.update(b"s3cret");
    md5.update(challenge);
    let expected: [u8; 16] = md5.finalize().into();
    assert_eq!(chap_md5::response(0x2a, b"s3cret", &challenge), expected);
    // A fixed value: MD5 of 01 "pass" "challenge", computed independently (Python hashlib).
    assert_eq!(
        chap_md5::response(1, b"pass", b"challenge"),
        expected_md5_fixed()
    );
    assert!(chap_md5::verify(
        1,
        b"pass",
        b"challenge",
        &expected_md5_fixed()
    ));
    assert!(!chap_md5::verify(
        2,
        b"pass",
        b"challenge",
        &expected_md5_fixed()
    ));
}

fn expected_md5_fixed() -> [u8; 16] {
    // MD5(01 70 61 73 73 63 68 61 6c 6c 65 6e 67 65)
    hex("0e c1 48 1a 16 4a b6 4a 98 f6 24 6a e2 c8 48 4f")
}

// ------------------------------------------------------------------------ RFC 3079 §3.5 (MS-CHAPv2)

fn master_key() -> [u8; 16] {
    hex("FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31")
}

#[test]
fn rfc3079_master_key_and_start_keys() {
    let hash_hash = hash_nt_password_hash(&nt_password_hash(PASSWORD));
    assert_eq!(get_master_key(&hash_hash, &nt_response()), master_key());
    // GetAsymmetricStartKey(MasterKey, 16, IsSend=TRUE, IsServer=TRUE).
    let send = get_asymmetric_start_key(&master_key(), true, true);
    assert_eq!(
        send.0,
        hex("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB")
    );
    // The 8-octet start key of §3.5.1/§3.5.2 is the prefix.
    assert_eq!(
        send.for_length(KeyLength::Bits40),
        &hex::<8>("8B 7C DC 14 9B 99 3A 1B")
    );
    // The server's send key is the client's receive key and the other way round.
    let server = mschapv2_start_keys(PASSWORD, &nt_response(), true);
    let client = mschapv2_start_keys(PASSWORD, &nt_response(), false);
    assert_eq!(server.send, send);
    assert_eq!(server.send, client.recv);
    assert_eq!(server.recv, client.send);
    assert_ne!(server.send, server.recv);
    assert_eq!(format!("{send:?}"), "StartKey(..)");
}

#[test]
fn rfc3079_initial_session_keys_40_56_128() {
    let send = get_asymmetric_start_key(&master_key(), true, true);
    let cases = [
        (KeyLength::Bits40, "D1 26 9E C4 9F A6 2E 3E"),
        (KeyLength::Bits56, "D1 5C 00 C4 9F A6 2E 3E"),
    ];
    for (len, expected) in cases {
        let key = initial_session_key(&send, len);
        assert_eq!(&key[..8], &hex::<8>(expected), "{len:?}");
        assert_eq!(&key[8..], &[0u8; 8]);
    }
    assert_eq!(
        initial_session_key(&send, KeyLength::Bits128),
        hex("40 5C B2 24 7A 79 56 E6 E2 11 00 7A E2 7B 22 D4")
    );
}

#[test]
fn rfc3079_sample_encrypted_messages() {
    // The first stateful packet (count 0) is encrypted with the initial session key, so the
    // encrypter reproduces the RFC's rc4(SendSessionKey, "test message").
    let send = get_asymmetric_start_key(&master_key(), true, true);
    let cases = [
        (KeyLength::Bits40, "92 91 37 91 7E 58 03 D6 68 D7 58 98"),
        // The RFC prints the last octet as 58; RC4 with SendSessionKey56 gives B8 (checked
        // below with the rc4 crate directly).
        (KeyLength::Bits56, "3F 10 68 33 FA 44 8D A8 42 BC 57 B8"),
        (KeyLength::Bits128, "81 84 83 17 DF 68 84 62 72 FB 5A BE"),
    ];
    for (len, expected) in cases {
        let mut enc = MppeEncrypter::new(&send, len, false);
        let mut msg = *b"test message";
        let header = enc.encrypt(&mut msg);
        assert_eq!(msg, hex::<12>(expected), "{len:?}");
        assert_eq!(
            header,
            [0x10, 0x00],
            "D bit, count 0, no A on the first stateful packet"
        );

        let session = initial_session_key(&send, len);
        let mut direct = *b"test message";
        Rc4::new_from_slice(&session[..len.key_bytes()])
            .unwrap()
            .apply_keystream(&mut direct);
        assert_eq!(direct, msg);
    }
}

// ------------------------------------------------------------------------ RFC 3079 §2.5 (MS-CHAPv1)

#[test]
fn rfc3079_mschapv1_40_and_56_bit_keys_from_the_lm_hash() {
    let lm = lm_password_hash(PASSWORD);
    let start = StartKey(lm);
    // Step 3: GetKey(PasswordHash, SessionKey, 8) before reduction.
    let unreduced = get_new_key_from_sha(&start, &lm, KeyLength::Bits40);
    assert_eq!(&unreduced[..8], &hex::<8>("d8 08 01 53 8c ec 4a 08"));
    let mut k40 = unreduced;
    reduce_key(&mut k40, KeyLength::Bits40);
    assert_eq!(&k40[..8], &hex::<8>("d1 26 9e 53 8c ec 4a 08"));
    let mut k56 = unreduced;
    reduce_key(&mut k56, KeyLength::Bits56);
    assert_eq!(&k56[..8], &hex::<8>("d1 08 01 53 8c ec 4a 08"));

    let challenge = hex("10 2d b5 df 08 5d 30 41");
    for len in [KeyLength::Bits40, KeyLength::Bits56] {
        let keys = mschapv1_start_keys(PASSWORD, &challenge, len);
        assert_eq!(keys.send, start);
        assert_eq!(keys.recv, start);
    }
    assert_eq!(initial_session_key(&start, KeyLength::Bits40), k40);
    assert_eq!(initial_session_key(&start, KeyLength::Bits56), k56);
}

#[test]
fn rfc3079_mschapv1_128_bit_key() {
    let challenge = hex("10 2d b5 df 08 5d 30 41");
    let hash_hash = hash_nt_password_hash(&nt_password_hash(PASSWORD));
    let start = get_start_key(&challenge, &hash_hash);
    // §2.5.3 Step 3 prints InitialSessionKey as "... ac ca d1 ...", Step 4 copies it as
    // "... ac c1 d1 ...": Step 3 has the typo, Get_Start_Key gives ac c1 (and Step 5's
    // CurrentSessionKey follows from that value).
    assert_eq!(
        start,
        hex("a8 94 78 50 cf c0 ac c1 d1 78 9f b6 2d dc dd b0")
    );
    let start = StartKey(start);
    assert_eq!(
        get_new_key_from_sha(&start, &start.0, KeyLength::Bits128),
        hex("59 d1 59 bc 09 f7 6f 1d a2 a8 6a 28 ff ec 0b 1e")
    );
    assert_eq!(
        initial_session_key(&start, KeyLength::Bits128),
        hex("59 d1 59 bc 09 f7 6f 1d a2 a8 6a 28 ff ec 0b 1e")
    );
    let rfc = mschapv1_start_keys(PASSWORD, &challenge, KeyLength::Bits128);
    let nt = mschapv1_start_keys_nt(PASSWORD, &challenge);
    assert_eq!(rfc.send, start);
    assert_eq!(nt.send, start);
    assert_eq!(nt.recv, start);
}

#[test]
fn change_key_follows_rfc3078_7_3() {
    // GetNewKeyFromSHA, then the interim key RC4-encrypted with itself, then reduction.
    let start = get_asymmetric_start_key(&master_key(), true, true);
    for len in [KeyLength::Bits40, KeyLength::Bits56, KeyLength::Bits128] {
        let n = len.key_bytes();
        let session = initial_session_key(&start, len);
        let interim = get_new_key_from_sha(&start, &session, len);
        let mut expected = interim;
        Rc4::new_from_slice(&interim[..n])
            .unwrap()
            .apply_keystream(&mut expected[..n]);
        reduce_key(&mut expected, len);
        assert_eq!(change_key(&start, &session, len), expected, "{len:?}");
    }
}

// -------------------------------------------------------------------------- CCP option 18 bits

#[test]
fn mppe_bits_parse_emit_and_choose() {
    // What pppd acks in the capture: stateless, 128-bit.
    let acked = MppeBits::parse(&[0x01, 0x00, 0x00, 0x40]).unwrap();
    assert!(acked.stateless());
    assert_eq!(acked.strongest(), Some(KeyLength::Bits128));
    assert_eq!(acked, MppeBits::new(KeyLength::Bits128, true));
    assert_eq!(acked.to_bytes(), [0x01, 0x00, 0x00, 0x40]);
    assert_eq!(acked.key_length_count(), 1);
    assert_eq!(acked.reserved(), 0);

    let offer = MppeBits(MppeBits::H | MppeBits::L | MppeBits::M | MppeBits::S | MppeBits::D);
    assert_eq!(offer.to_bytes(), [0x01, 0x00, 0x00, 0xF0]);
    assert_eq!(offer.key_length_count(), 3);
    assert_eq!(offer.strongest(), Some(KeyLength::Bits128));
    assert_eq!(
        MppeBits(MppeBits::L | MppeBits::M).strongest(),
        Some(KeyLength::Bits56)
    );
    assert_eq!(MppeBits(MppeBits::L).strongest(), Some(KeyLength::Bits40));
    assert_eq!(MppeBits(MppeBits::C).strongest(), None);
    assert!(MppeBits(MppeBits::C).contains(MppeBits::C));
    assert_eq!(MppeBits(0x8000_0002).reserved(), 0x8000_0002);
    assert_eq!(
        MppeBits::parse(&[1, 2, 3]),
        Err(MppeError::BadOptionLength { len: 3 })
    );
    assert!(MppeBits::parse(&[0; 5]).is_err());
    assert_eq!(KeyLength::Bits40.key_bytes(), 8);
    assert_eq!(KeyLength::Bits56.key_bytes(), 8);
    assert_eq!(KeyLength::Bits128.key_bytes(), 16);
}

#[test]
fn mppe_header_round_trip() {
    let h = MppeHeader::from_bytes([0x90, 0x1e]);
    assert!(h.flushed() && h.encrypted());
    assert_eq!(h.count, 30);
    assert_eq!(h.to_bytes(), [0x90, 0x1e]);
    let h = MppeHeader {
        flags: mppe::FLAG_ENCRYPTED,
        count: 0x0FFF,
    };
    assert_eq!(h.to_bytes(), [0x1F, 0xFF]);
    let mut short = [0x90u8];
    assert_eq!(
        mppe::split_header(&mut short),
        Err(MppeError::Truncated { len: 1 })
    );
    let mut datagram = [0x90, 0x01, 0xAA, 0xBB];
    let (hdr, body) = mppe::split_header(&mut datagram).unwrap();
    assert_eq!(hdr, [0x90, 0x01]);
    assert_eq!(body, &mut [0xAA, 0xBB]);
}

// ------------------------------------------------------------------------------ Round trips

fn keys() -> mppe::StartKeys {
    mschapv2_start_keys(PASSWORD, &nt_response(), true)
}

/// A recognisable plaintext: uncompressed protocol 0x0021 and a payload that depends on `i`.
fn packet(i: usize) -> Vec<u8> {
    let mut p = vec![0x00, 0x21];
    p.extend((0..40 + i % 50).map(|k| (k * 7 + i) as u8));
    p
}

fn pair(len: KeyLength, stateless: bool) -> (MppeEncrypter, MppeDecrypter) {
    let server = keys();
    let client = mschapv2_start_keys(PASSWORD, &nt_response(), false);
    (
        MppeEncrypter::new(&server.send, len, stateless),
        MppeDecrypter::new(&client.recv, len, stateless),
    )
}

#[test]
fn stateless_round_trip_with_loss_and_wrap() {
    for len in [KeyLength::Bits40, KeyLength::Bits56, KeyLength::Bits128] {
        let (mut enc, mut dec) = pair(len, true);
        let mut delivered = 0;
        for i in 0..5000usize {
            let plain = packet(i);
            let mut buf = plain.clone();
            let header = enc.encrypt(&mut buf);
            let h = MppeHeader::from_bytes(header);
            assert!(h.flushed() && h.encrypted());
            assert_eq!(
                usize::from(h.count),
                i % 4096,
                "counts run 0..=4095 then wrap"
            );
            assert_ne!(buf, plain);
            // Lose a few single packets, a burst of 300, and the packets around the wrap.
            let lost = i % 97 == 5 || (1000..1300).contains(&i) || (4094..4097).contains(&i);
            if lost {
                continue;
            }
            dec.decrypt(header, &mut buf).unwrap();
            assert_eq!(buf, plain, "{len:?} packet {i}");
            delivered += 1;
        }
        assert!(delivered > 4500);
    }
}

#[test]
fn stateless_rejects_late_duplicate_and_unencrypted_packets() {
    let (mut enc, mut dec) = pair(KeyLength::Bits128, true);
    let mut frames = Vec::new();
    for i in 0..4 {
        let mut buf = packet(i);
        let h = enc.encrypt(&mut buf);
        frames.push((h, buf));
    }
    let (h0, b0) = frames[0].clone();
    let (h2, b2) = frames[2].clone();
    let mut buf = b2.clone();
    dec.decrypt(h2, &mut buf).unwrap();
    assert_eq!(buf, packet(2));
    // Packet 0 arrives late, packet 2 again: both are behind.
    let mut buf = b0.clone();
    assert_eq!(
        dec.decrypt(h0, &mut buf),
        Err(MppeError::Stale {
            received: 0,
            last: 2
        })
    );
    let mut buf = b2.clone();
    assert!(matches!(
        dec.decrypt(h2, &mut buf),
        Err(MppeError::Stale { .. })
    ));
    // D bit clear.
    let (h3, b3) = frames[3].clone();
    let mut buf = b3.clone();
    assert_eq!(
        dec.decrypt([h3[0] & !mppe::FLAG_ENCRYPTED, h3[1]], &mut buf),
        Err(MppeError::NotEncrypted)
    );
    // None of that disturbed the state: packet 3 still decrypts.
    let mut buf = b3;
    dec.decrypt(h3, &mut buf).unwrap();
    assert_eq!(buf, packet(3));
}

#[test]
fn stateless_rekey_budget_bounds_far_jumps_and_recovers() {
    let (mut enc, mut dec) = pair(KeyLength::Bits128, true);
    let send = |enc: &mut MppeEncrypter, i: usize| {
        let mut buf = packet(i);
        let h = enc.encrypt(&mut buf);
        (h, buf)
    };
    // The first jump of 2000 lost packets is within the full budget (2048).
    for i in 0..2000 {
        send(&mut enc, i);
    }
    let (h, mut buf) = send(&mut enc, 2000);
    dec.decrypt(h, &mut buf).unwrap();
    assert_eq!(buf, packet(2000));
    // Another jump of 1000 right away is over budget (48 + 8 left): dropped, state kept.
    for i in 2001..3001 {
        send(&mut enc, i);
    }
    let (h, mut buf) = send(&mut enc, 3001);
    assert_eq!(
        dec.decrypt(h, &mut buf),
        Err(MppeError::TooManyLost { lost: 1000 })
    );
    // Every packet refills 8 and the gap grows by 1: the receiver catches up by itself.
    let mut recovered_at = None;
    for i in 3002..3400 {
        let (h, mut buf) = send(&mut enc, i);
        match dec.decrypt(h, &mut buf) {
            Ok(()) => {
                assert_eq!(buf, packet(i));
                recovered_at = Some(i);
                break;
            }
            Err(MppeError::TooManyLost { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let at = recovered_at.expect("receiver must catch up");
    assert!(at < 3200, "caught up at {at}");
    for i in at + 1..at + 10 {
        let (h, mut buf) = send(&mut enc, i);
        dec.decrypt(h, &mut buf).unwrap();
        assert_eq!(buf, packet(i));
    }
}

#[test]
fn stateful_round_trip_with_flag_packets_and_wrap() {
    for len in [KeyLength::Bits40, KeyLength::Bits56, KeyLength::Bits128] {
        let (mut enc, mut dec) = pair(len, false);
        for i in 0..4200usize {
            let plain = packet(i);
            let mut buf = plain.clone();
            let header = enc.encrypt(&mut buf);
            let h = MppeHeader::from_bytes(header);
            assert_eq!(usize::from(h.count), i % 4096);
            assert_eq!(
                h.flushed(),
                h.count & 0xFF == 0xFF,
                "A exactly on flag packets"
            );
            dec.decrypt(header, &mut buf).unwrap();
            assert_eq!(buf, plain, "{len:?} packet {i}");
        }
    }
}

#[test]
fn stateful_loss_reset_and_resync() {
    let (mut enc, mut dec) = pair(KeyLength::Bits128, false);
    let mut next = 0usize;
    let mut send = |enc: &mut MppeEncrypter| {
        let plain = packet(next);
        next += 1;
        let mut buf = plain.clone();
        let h = enc.encrypt(&mut buf);
        (h, buf, plain)
    };
    for _ in 0..10 {
        let (h, mut buf, plain) = send(&mut enc);
        dec.decrypt(h, &mut buf).unwrap();
        assert_eq!(buf, plain);
    }
    // Packet 10 is lost; 11 shows the gap.
    send(&mut enc);
    let (h, mut buf, _) = send(&mut enc);
    assert_eq!(dec.decrypt(h, &mut buf), Err(MppeError::ResyncNeeded));
    assert!(dec.discarding());
    // Until the peer reacts, packets are dropped silently.
    let (h, mut buf, _) = send(&mut enc);
    assert_eq!(dec.decrypt(h, &mut buf), Err(MppeError::AwaitingFlush));
    // The Reset-Request reaches the sender (twice: counted once).
    enc.reset();
    enc.reset();
    let (h, mut buf, plain) = send(&mut enc);
    let hdr = MppeHeader::from_bytes(h);
    assert!(hdr.flushed());
    assert_eq!(hdr.count, 0x0FF, "the answer jumps to the next flag count");
    dec.decrypt(h, &mut buf).unwrap();
    assert_eq!(buf, plain);
    assert!(!dec.discarding());
    for _ in 0..600 {
        let (h, mut buf, plain) = send(&mut enc);
        dec.decrypt(h, &mut buf).unwrap();
        assert_eq!(buf, plain);
    }
}

#[test]
fn stateful_loss_of_flag_packets_is_caught_up() {
    let (mut enc, mut dec) = pair(KeyLength::Bits40, false);
    let mut i = 0usize;
    let mut send = |enc: &mut MppeEncrypter| {
        let plain = packet(i);
        i += 1;
        let mut buf = plain.clone();
        let h = enc.encrypt(&mut buf);
        (h, buf, plain)
    };
    let (h, mut buf, _) = send(&mut enc);
    dec.decrypt(h, &mut buf).unwrap();
    // Lose 700 packets, two flag packets (0x0FF, 0x1FF) among them.
    for _ in 0..700 {
        send(&mut enc);
    }
    let (h, mut buf, _) = send(&mut enc);
    assert_eq!(dec.decrypt(h, &mut buf), Err(MppeError::ResyncNeeded));
    enc.reset();
    let (h, mut buf, plain) = send(&mut enc);
    assert_eq!(MppeHeader::from_bytes(h).count, 0x2FF);
    dec.decrypt(h, &mut buf).unwrap();
    assert_eq!(buf, plain);
}

/// A stateful sender modelled from the two behaviours seen in the wild, built from the public
/// key functions: it answers a Reset-Request at the next count, the way Windows (RFC 3078
/// §8.2: RC4 re-initialised with the current key) or Linux ppp_mppe (a key change) do.
struct ModelSender {
    start: StartKey,
    len: KeyLength,
    session: [u8; 16],
    rc4: Rc4,
    count: u16,
    flush: bool,
    linux: bool,
}

impl ModelSender {
    fn new(start: &StartKey, len: KeyLength, linux: bool) -> Self {
        let session = initial_session_key(start, len);
        ModelSender {
            start: start.clone(),
            len,
            session,
            rc4: Rc4::new_from_slice(&session[..len.key_bytes()]).unwrap(),
            count: 0x0FFF,
            flush: false,
            linux,
        }
    }

    fn rekey(&mut self) {
        self.session = change_key(&self.start, &self.session, self.len);
        self.reinit();
    }

    fn reinit(&mut self) {
        self.rc4 = Rc4::new_from_slice(&self.session[..self.len.key_bytes()]).unwrap();
    }

    fn encrypt(&mut self, buf: &mut [u8]) -> [u8; 2] {
        self.count = (self.count + 1) & 0x0FFF;
        let flag = self.count & 0xFF == 0xFF;
        let mut flags = mppe::FLAG_ENCRYPTED;
        if self.flush || flag {
            flags |= mppe::FLAG_FLUSHED;
            if flag || self.linux {
                self.rekey();
            } else {
                self.reinit();
            }
            self.flush = false;
        }
        self.rc4.apply_keystream(buf);
        MppeHeader {
            flags,
            count: self.count,
        }
        .to_bytes()
    }
}

#[test]
fn stateful_receiver_accepts_both_windows_and_linux_reset_answers() {
    let client = mschapv2_start_keys(PASSWORD, &nt_response(), false);
    let server = keys();
    for linux in [false, true] {
        for len in [KeyLength::Bits40, KeyLength::Bits128] {
            let mut peer = ModelSender::new(&server.send, len, linux);
            let mut dec = MppeDecrypter::new(&client.recv, len, false);
            let mut i = 0usize;
            // Three rounds of loss + reset, one of them across a flag packet and the wrap.
            for (lose, keep) in [(1usize, 40usize), (300, 3500), (5, 700)] {
                for _ in 0..keep {
                    let plain = packet(i);
                    i += 1;
                    let mut buf = plain.clone();
                    let h = peer.encrypt(&mut buf);
                    dec.decrypt(h, &mut buf).unwrap();
                    assert_eq!(buf, plain, "linux={linux} {len:?} packet {i}");
                }
                for _ in 0..lose {
                    let mut buf = packet(i);
                    i += 1;
                    peer.encrypt(&mut buf);
                }
                let mut buf = packet(i);
                i += 1;
                let h = peer.encrypt(&mut buf);
                let r = dec.decrypt(h, &mut buf);
                // Unless the first packet after the loss happens to be a flag packet.
                if r.is_err() {
                    assert_eq!(r, Err(MppeError::ResyncNeeded));
                    peer.flush = true;
                }
            }
            assert!(i > 4096, "the test crossed the count wrap");
        }
    }
}

#[test]
fn our_reset_answer_is_understood_by_both_kinds_of_receiver() {
    // An RFC receiver (re-init on a flushed non-flag packet) and a Linux one (key change on
    // every flushed packet) disagree about flushed packets at ordinary counts, but agree on
    // flag counts: one key change. Our answer to a Reset-Request lands on a flag count, so a
    // receiver that last saw count 19 decrypts it after exactly one key change.
    let client = mschapv2_start_keys(PASSWORD, &nt_response(), false);
    let len = KeyLength::Bits128;
    let mut enc = MppeEncrypter::new(&keys().send, len, false);
    for i in 0..20 {
        enc.encrypt(&mut packet(i));
    }
    enc.reset();
    let mut buf = packet(99);
    let h = enc.encrypt(&mut buf);
    let hdr = MppeHeader::from_bytes(h);
    assert_eq!((hdr.count, hdr.flushed()), (0x0FF, true));
    let session = change_key(&client.recv, &initial_session_key(&client.recv, len), len);
    Rc4::new_from_slice(&session[..16])
        .unwrap()
        .apply_keystream(&mut buf);
    assert_eq!(buf, packet(99));
}

#[test]
fn compressed_bit_is_refused_after_keeping_the_stream_in_step() {
    let (mut enc, mut dec) = pair(KeyLength::Bits128, false);
    let mut buf = packet(0);
    let h = enc.encrypt(&mut buf);
    assert_eq!(
        dec.decrypt([h[0] | mppe::FLAG_COMPRESSED, h[1]], &mut buf),
        Err(MppeError::Compressed)
    );
    let mut buf = packet(1);
    let h = enc.encrypt(&mut buf);
    dec.decrypt(h, &mut buf).unwrap();
    assert_eq!(buf, packet(1));
}

#[test]
fn module_reexports_are_consistent() {
    // mschap::nt_password_hash is the same function v1/v2 build on.
    let ch = [9u8; 8];
    assert_eq!(
        v1::nt_challenge_response(&ch, "pw"),
        mschap::challenge_response(&ch, &nt_password_hash("pw"))
    );
}
