//! The keyed parts of RADIUS: User-Password hiding (RFC 2865 §5.2), Request and Response
//! Authenticators (RFC 2865 §3, RFC 2866 §3, RFC 5176 §2.3), Message-Authenticator (RFC 3579
//! §3.2, HMAC-MD5) and the salted encryption of MS-MPPE-Send-Key / -Recv-Key (RFC 2548
//! §2.4.2).
//!
//! Comparisons of authenticators are constant-time.

use hmac::{KeyInit, Mac};
use md5::{Digest, Md5};

use crate::attr;
use crate::packet::{attr_ranges, packet_length, Code, DecodeError, Packet, HEADER_LEN};

type HmacMd5 = hmac::Hmac<Md5>;

/// Why a packet failed an authenticator check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("RADIUS {0} has a wrong authenticator (shared secret mismatch?)")]
    Authenticator(Code),
    #[error("RADIUS {0} has a wrong Message-Authenticator (shared secret mismatch?)")]
    MessageAuthenticator(Code),
    #[error("RADIUS {0} lacks the Message-Authenticator this client requires")]
    MissingMessageAuthenticator(Code),
}

/// Why an encrypted attribute could not be recovered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptError {
    #[error("encrypted attribute of {0} octets is not salt + a multiple of 16 octets")]
    BadLength(usize),
    #[error("encrypted key's salt lacks its high bit (RFC 2548 §2.4.2)")]
    BadSalt,
    #[error("decrypted key length {0} exceeds the attribute")]
    BadKeyLength(usize),
    #[error("password of {0} octets exceeds 128")]
    TooLong(usize),
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Constant-time equality.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The MD5 chain shared by User-Password and the MPPE keys: `c(i) = p(i) xor b(i)`,
/// `b(1) = MD5(secret || first)`, `b(i) = MD5(secret || c(i-1))`. In place; `data` is a
/// multiple of 16.
fn chain(data: &mut [u8], secret: &[u8], first: &[&[u8]], encrypt: bool) {
    let mut seed: Vec<u8> = first.concat();
    for block in data.chunks_mut(16) {
        let b = md5(&[secret, &seed]);
        let cipher: Vec<u8> = if encrypt {
            block.iter_mut().zip(b).for_each(|(p, k)| *p ^= k);
            block.to_vec()
        } else {
            let c = block.to_vec();
            block.iter_mut().zip(b).for_each(|(p, k)| *p ^= k);
            c
        };
        seed = cipher;
    }
}

/// Hides a User-Password (RFC 2865 §5.2): padded with zeros to a multiple of 16 (at least
/// 16, at most 128 octets).
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<Vec<u8>, CryptError> {
    if password.len() > 128 {
        return Err(CryptError::TooLong(password.len()));
    }
    let padded = password.len().div_ceil(16).max(1) * 16;
    let mut v = password.to_vec();
    v.resize(padded, 0);
    chain(&mut v, secret, &[authenticator], true);
    Ok(v)
}

/// Recovers a hidden User-Password (trailing zero padding removed).
pub fn unhide_password(
    hidden: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<Vec<u8>, CryptError> {
    if hidden.is_empty() || !hidden.len().is_multiple_of(16) || hidden.len() > 128 {
        return Err(CryptError::BadLength(hidden.len()));
    }
    let mut v = hidden.to_vec();
    chain(&mut v, secret, &[authenticator], false);
    while v.last() == Some(&0) {
        v.pop();
    }
    Ok(v)
}

/// Encrypts an MS-MPPE-Send-Key / -Recv-Key value (RFC 2548 §2.4.2): Salt (2 octets, high bit
/// set) then the encrypted String (key length, key, zero padding to a multiple of 16).
/// `authenticator` is the Request Authenticator of the Access-Request answered.
pub fn encrypt_mppe_key(
    key: &[u8],
    salt: [u8; 2],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Vec<u8> {
    let salt = [salt[0] | 0x80, salt[1]];
    let mut plain = vec![key.len().min(255) as u8];
    plain.extend_from_slice(key);
    let padded = plain.len().div_ceil(16) * 16;
    plain.resize(padded, 0);
    chain(&mut plain, secret, &[authenticator, &salt], true);
    let mut out = salt.to_vec();
    out.extend_from_slice(&plain);
    out
}

/// Decrypts an MS-MPPE-Send-Key / -Recv-Key value; returns the key.
pub fn decrypt_mppe_key(
    value: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<Vec<u8>, CryptError> {
    let (salt, cipher) = match value.split_at_checked(2) {
        Some(x) => x,
        None => return Err(CryptError::BadLength(value.len())),
    };
    if cipher.is_empty() || !cipher.len().is_multiple_of(16) {
        return Err(CryptError::BadLength(value.len()));
    }
    if salt.first().is_none_or(|s| s & 0x80 == 0) {
        return Err(CryptError::BadSalt);
    }
    let mut plain = cipher.to_vec();
    chain(&mut plain, secret, &[authenticator, salt], false);
    let klen = usize::from(plain.first().copied().unwrap_or(0));
    plain
        .get(1..1 + klen)
        .map(<[u8]>::to_vec)
        .ok_or(CryptError::BadKeyLength(klen))
}

/// Offset of the Message-Authenticator value in a packet, if it holds one of 16 octets.
fn message_authenticator_offset(packet: &[u8]) -> Result<Option<usize>, DecodeError> {
    for r in attr_ranges(packet) {
        let (typ, start, end) = r?;
        if typ == attr::MESSAGE_AUTHENTICATOR {
            return Ok((end - start == 16).then_some(start));
        }
    }
    Ok(None)
}

/// HMAC-MD5 over the packet with the Message-Authenticator zeroed and `authenticator` in the
/// header (RFC 3579 §3.2).
fn hmac_over(packet: &[u8], offset: usize, authenticator: &[u8; 16], secret: &[u8]) -> [u8; 16] {
    let mut copy = packet.to_vec();
    copy[4..HEADER_LEN].copy_from_slice(authenticator);
    copy[offset..offset + 16].fill(0);
    let mut mac = <HmacMd5 as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&copy);
    mac.finalize().into_bytes().into()
}

/// Fills the Message-Authenticator placeholder (if any) in an encoded packet, computing it
/// with `authenticator` in the header.
fn fill_message_authenticator(packet: &mut [u8], authenticator: &[u8; 16], secret: &[u8]) {
    if let Ok(Some(off)) = message_authenticator_offset(packet) {
        let m = hmac_over(packet, off, authenticator, secret);
        packet[off..off + 16].copy_from_slice(&m);
    }
}

/// A Message-Authenticator placeholder (16 zero octets), to put in a packet before signing.
pub fn message_authenticator_placeholder() -> crate::packet::Attr {
    crate::packet::Attr::new(attr::MESSAGE_AUTHENTICATOR, vec![0u8; 16])
}

/// Encodes and signs a request. Access-Request and Status-Server keep `packet.authenticator`
/// (random, from the caller); Accounting-, Disconnect- and CoA-Requests get
/// `MD5(Code+Identifier+Length+16 zero octets+Attributes+Secret)` (RFC 2866 §3). A
/// Message-Authenticator placeholder is filled in (RFC 3579 §3.2, computed with the
/// authenticator zeroed for the computed kinds, as FreeRADIUS does).
pub fn sign_request(packet: &Packet, secret: &[u8]) -> Vec<u8> {
    let mut p = packet.clone();
    if p.code.has_computed_request_authenticator() {
        p.authenticator = [0; 16];
    }
    let mut bytes = p.encode();
    fill_message_authenticator(&mut bytes, &p.authenticator, secret);
    if p.code.has_computed_request_authenticator() {
        let a = md5(&[&bytes, secret]);
        bytes[4..HEADER_LEN].copy_from_slice(&a);
    }
    bytes
}

/// Encodes and signs a response to a request with `request_authenticator`: the
/// Message-Authenticator (if a placeholder is present) over the packet with the Request
/// Authenticator, then the Response Authenticator `MD5(Code+ID+Length+RequestAuth+Attributes
/// +Secret)` (RFC 2865 §3).
pub fn sign_response(packet: &Packet, request_authenticator: &[u8; 16], secret: &[u8]) -> Vec<u8> {
    let mut p = packet.clone();
    p.authenticator = *request_authenticator;
    let mut bytes = p.encode();
    fill_message_authenticator(&mut bytes, request_authenticator, secret);
    let a = md5(&[&bytes, secret]);
    bytes[4..HEADER_LEN].copy_from_slice(&a);
    bytes
}

/// Checks a response against the request it answers (Response Authenticator, and the
/// Message-Authenticator when present or `require_message_authenticator`), then decodes it.
pub fn verify_response(
    bytes: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
    require_message_authenticator: bool,
) -> Result<Packet, VerifyError> {
    verify(bytes, secret, require_message_authenticator, |_| {
        Some(*request_authenticator)
    })
}

/// Checks a request whose authenticator is computed (Accounting-, Disconnect-, CoA-Request)
/// and its Message-Authenticator if present (or `require_message_authenticator`); for
/// Access-Request / Status-Server only the Message-Authenticator can be checked.
pub fn verify_request(
    bytes: &[u8],
    secret: &[u8],
    require_message_authenticator: bool,
) -> Result<Packet, VerifyError> {
    // Computed over the packet with 16 zero octets in its place; so is the
    // Message-Authenticator of such a packet (as FreeRADIUS does).
    verify(bytes, secret, require_message_authenticator, |p| {
        p.code
            .has_computed_request_authenticator()
            .then_some([0u8; 16])
    })
}

/// Decodes the packet in `bytes` (up to its Length) and checks it. `header` gives what the
/// Authenticator field held when the Authenticator was computed, `None` for a random one
/// that cannot be checked; the Message-Authenticator is computed with that in the header
/// (with the packet's own Authenticator for a random one).
fn verify(
    bytes: &[u8],
    secret: &[u8],
    require_message_authenticator: bool,
    header: impl FnOnce(&Packet) -> Option<[u8; 16]>,
) -> Result<Packet, VerifyError> {
    let len = packet_length(bytes)?;
    let bytes = &bytes[..len];
    let packet = Packet::decode(bytes)?;
    let auth = match header(&packet) {
        Some(header) => {
            let mut copy = bytes.to_vec();
            copy[4..HEADER_LEN].copy_from_slice(&header);
            let expect = md5(&[&copy, secret]);
            if !ct_eq(&expect, &packet.authenticator) {
                return Err(VerifyError::Authenticator(packet.code));
            }
            header
        }
        None => packet.authenticator,
    };
    match message_authenticator_offset(bytes)? {
        Some(off) => {
            let m = hmac_over(bytes, off, &auth, secret);
            if !ct_eq(&m, &bytes[off..off + 16]) {
                return Err(VerifyError::MessageAuthenticator(packet.code));
            }
        }
        None if require_message_authenticator => {
            return Err(VerifyError::MissingMessageAuthenticator(packet.code))
        }
        None => {}
    }
    Ok(packet)
}

/// CHAP-Password value (RFC 2865 §5.3): CHAP Ident then the 16-octet response.
pub fn chap_password(ident: u8, response: &[u8]) -> Vec<u8> {
    let mut v = vec![ident];
    v.extend_from_slice(response);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Attr;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // RFC 2865 §7.1: "nemo" / "arctangent", shared secret "xyzzy5461".
    const RFC2865_REQ: &str = "01000038 0f403f9473978057bd83d5cb98f4227a 01066e656d6f
        02120dbe708d93d413ce3196e43f782a0aee 0406c0a80110 050600000003";
    const RFC2865_ACCEPT: &str = "02000026 86fe220e7624ba2a1005f6bf9b55e0b2 060600000001
        0f0600000000 0e06c0a80103";
    const SECRET: &[u8] = b"xyzzy5461";

    #[test]
    fn rfc2865_7_1_access_request_encodes_to_the_rfc_bytes() {
        let req = unhex(RFC2865_REQ);
        let auth: [u8; 16] = req[4..20].try_into().unwrap();
        let mut p = Packet::new(Code::AccessRequest, 0);
        p.authenticator = auth;
        p.push(Attr::new(attr::USER_NAME, b"nemo".to_vec()));
        p.push(Attr::new(
            attr::USER_PASSWORD,
            hide_password(b"arctangent", SECRET, &auth).unwrap(),
        ));
        p.push(Attr::ipv4(attr::NAS_IP_ADDRESS, [192, 168, 1, 16].into()));
        p.push(Attr::u32(attr::NAS_PORT, 3));
        assert_eq!(sign_request(&p, SECRET), req);
        let d = Packet::decode(&req).unwrap();
        assert_eq!(d, p);
        let hidden = &d.get(attr::USER_PASSWORD).unwrap().value;
        assert_eq!(
            unhide_password(hidden, SECRET, &auth).unwrap(),
            b"arctangent"
        );
    }

    #[test]
    fn rfc2865_7_1_access_accept_verifies_and_signs_to_the_rfc_bytes() {
        let req = unhex(RFC2865_REQ);
        let auth: [u8; 16] = req[4..20].try_into().unwrap();
        let acc = unhex(RFC2865_ACCEPT);
        let p = verify_response(&acc, &auth, SECRET, false).unwrap();
        assert_eq!(p.code, Code::AccessAccept);
        assert_eq!(p.get_u32(attr::SERVICE_TYPE), Some(1));
        assert_eq!(
            p.get_ipv4(14),
            Some(std::net::Ipv4Addr::new(192, 168, 1, 3))
        );
        assert_eq!(sign_response(&p, &auth, SECRET), acc);
        // A wrong secret or a changed octet fails.
        assert_eq!(
            verify_response(&acc, &auth, b"xyzzy5462", false),
            Err(VerifyError::Authenticator(Code::AccessAccept))
        );
        let mut bad = acc.clone();
        bad[37] ^= 1;
        assert!(verify_response(&bad, &auth, SECRET, false).is_err());
        // Without Message-Authenticator, a client that requires one refuses it.
        assert_eq!(
            verify_response(&acc, &auth, SECRET, true),
            Err(VerifyError::MissingMessageAuthenticator(Code::AccessAccept))
        );
    }

    // RFC 5997 §6: Status-Server with Message-Authenticator, and its Access-Accept.
    const RFC5997_REQ: &str =
        "0cda00268a54f4686fb394c52866e302185d062350125a665e2e1e8411f3e243822097c84fa3";
    const RFC5997_ACCEPT: &str = "02da0014ef0d552a4bf2d693ec2b6fe8b5411d66";

    #[test]
    fn rfc5997_status_server_message_authenticator() {
        let req = unhex(RFC5997_REQ);
        let p = verify_request(&req, SECRET, true).unwrap();
        assert_eq!(p.code, Code::StatusServer);
        // Re-signing from a zeroed placeholder gives the same HMAC-MD5 (RFC 3579 §3.2).
        let mut q = p.clone();
        q.attributes[0] = message_authenticator_placeholder();
        assert_eq!(sign_request(&q, SECRET), req);
        let mut bad = req.clone();
        bad[25] ^= 1;
        assert_eq!(
            verify_request(&bad, SECRET, true),
            Err(VerifyError::MessageAuthenticator(Code::StatusServer))
        );
        let acc = unhex(RFC5997_ACCEPT);
        let r = verify_response(&acc, &p.authenticator, SECRET, false).unwrap();
        assert_eq!(r.code, Code::AccessAccept);
        assert_eq!(r.identifier, 0xda);
    }

    #[test]
    fn accounting_request_authenticator_roundtrip() {
        let mut p = Packet::new(Code::AccountingRequest, 7);
        p.push(message_authenticator_placeholder());
        p.push(Attr::u32(attr::ACCT_STATUS_TYPE, attr::status::START));
        p.push(Attr::new(attr::ACCT_SESSION_ID, b"abc".to_vec()));
        let bytes = sign_request(&p, b"s3cret");
        let v = verify_request(&bytes, b"s3cret", true).unwrap();
        assert_eq!(v.get_string(attr::ACCT_SESSION_ID).as_deref(), Some("abc"));
        assert!(matches!(
            verify_request(&bytes, b"other", false),
            Err(VerifyError::Authenticator(_))
        ));
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] ^= 0x40;
        assert!(verify_request(&bad, b"s3cret", false).is_err());
    }

    #[test]
    fn password_lengths() {
        let a = [9u8; 16];
        for len in [0usize, 1, 15, 16, 17, 100, 128] {
            let pw = vec![b'x'; len];
            let h = hide_password(&pw, b"k", &a).unwrap();
            assert_eq!(h.len(), len.div_ceil(16).max(1) * 16);
            assert_eq!(unhide_password(&h, b"k", &a).unwrap(), pw);
        }
        assert_eq!(
            hide_password(&[1; 129], b"k", &a),
            Err(CryptError::TooLong(129))
        );
        assert!(unhide_password(&[0; 15], b"k", &a).is_err());
        assert!(unhide_password(&[], b"k", &a).is_err());
    }

    #[test]
    fn mppe_key_salt_roundtrip_and_layout() {
        let a = [0x11u8; 16];
        let key = [0xabu8; 16];
        let v = encrypt_mppe_key(&key, [0x01, 0x02], b"secret", &a);
        // Salt (high bit forced) + 32 octets (1 + 16 padded to 32).
        assert_eq!(v.len(), 34);
        assert_eq!(v[0], 0x81);
        assert_eq!(decrypt_mppe_key(&v, b"secret", &a).unwrap(), key);
        // The first block is MD5(secret || authenticator || salt) xor (16, key[..15]).
        let b1 = md5(&[b"secret", &a, &v[..2]]);
        assert_eq!(v[2] ^ b1[0], 16);
        // Wrong secret: garbage key length or garbage key, never a panic.
        let w = decrypt_mppe_key(&v, b"wrong", &a);
        assert_ne!(w.ok(), Some(key.to_vec()));
        assert_eq!(
            decrypt_mppe_key(&v[..33], b"secret", &a),
            Err(CryptError::BadLength(33))
        );
        let mut nosalt = v.clone();
        nosalt[0] = 0x01;
        assert_eq!(
            decrypt_mppe_key(&nosalt, b"secret", &a),
            Err(CryptError::BadSalt)
        );
    }
}
