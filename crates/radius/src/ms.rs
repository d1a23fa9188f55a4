//! Microsoft vendor attributes (RFC 2548) as a NAS uses them: the MS-CHAP values it sends in
//! an Access-Request and what it takes from the answer (MS-CHAP2-Success, MS-CHAP-Error,
//! MS-MPPE-Send-Key / -Recv-Key, MS-MPPE-Encryption-Policy / -Types).

use crate::attr::ms;
use crate::crypto::{decrypt_mppe_key, CryptError};
use crate::packet::{Attr, Packet};

/// MS-CHAP-Challenge (RFC 2548 §2.3.1): the authenticator's challenge.
pub fn chap_challenge(challenge: &[u8]) -> Attr {
    Attr::vendor(ms::VENDOR_ID, ms::CHAP_CHALLENGE, challenge)
}

/// MS-CHAP2-Response (RFC 2548 §2.3.2): Ident, Flags, Peer-Challenge, 8 reserved zero
/// octets, NT-Response.
pub fn chap2_response(
    ident: u8,
    flags: u8,
    peer_challenge: &[u8; 16],
    nt_response: &[u8; 24],
) -> Attr {
    let mut v = Vec::with_capacity(50);
    v.push(ident);
    v.push(flags);
    v.extend_from_slice(peer_challenge);
    v.extend_from_slice(&[0u8; 8]);
    v.extend_from_slice(nt_response);
    Attr::vendor(ms::VENDOR_ID, ms::CHAP2_RESPONSE, &v)
}

/// MS-CHAP-Response (RFC 2548 §2.1.3): Ident, Flags (1 = use the NT-Response), LM-Response,
/// NT-Response.
pub fn chap_response(ident: u8, flags: u8, lm_response: &[u8; 24], nt_response: &[u8; 24]) -> Attr {
    let mut v = Vec::with_capacity(50);
    v.push(ident);
    v.push(flags);
    v.extend_from_slice(lm_response);
    v.extend_from_slice(nt_response);
    Attr::vendor(ms::VENDOR_ID, ms::CHAP_RESPONSE, &v)
}

/// What an Access-Accept or -Reject says in Microsoft attributes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MsReply {
    /// MS-CHAP2-Success text without its Ident octet: `S=<40 hex digits>` (and maybe ` M=...`).
    pub chap2_success: Option<String>,
    /// MS-CHAP-Error text without its Ident octet: `E=691 R=0 ...`.
    pub chap_error: Option<String>,
    /// MS-MPPE-Send-Key: the key the NAS sends with (the server's MasterSendKey).
    pub send_key: Option<Vec<u8>>,
    /// MS-MPPE-Recv-Key: the key the NAS receives with.
    pub recv_key: Option<Vec<u8>>,
    /// MS-MPPE-Encryption-Policy: 1 = encryption required, 0 = allowed.
    pub encryption_policy: Option<u32>,
    /// MS-MPPE-Encryption-Types bits ([`ms::TYPES_40`] ...).
    pub encryption_types: Option<u32>,
}

impl std::fmt::Debug for MsReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsReply")
            .field("chap2_success", &self.chap2_success)
            .field("chap_error", &self.chap_error)
            .field("send_key", &self.send_key.as_ref().map(|k| k.len()))
            .field("recv_key", &self.recv_key.as_ref().map(|k| k.len()))
            .field("encryption_policy", &self.encryption_policy)
            .field("encryption_types", &self.encryption_types)
            .finish()
    }
}

fn text_after_ident(v: &[u8]) -> String {
    String::from_utf8_lossy(v.get(1..).unwrap_or_default()).into_owned()
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

/// Reads the Microsoft attributes of a verified answer; `request_authenticator` is the
/// Access-Request's, which salts the MPPE keys.
pub fn parse_reply(
    packet: &Packet,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<MsReply, CryptError> {
    let v = |t| packet.vendor_value(ms::VENDOR_ID, t);
    let key = |t| {
        v(t).map(|k| decrypt_mppe_key(k, secret, request_authenticator))
            .transpose()
    };
    Ok(MsReply {
        chap2_success: v(ms::CHAP2_SUCCESS).map(text_after_ident),
        chap_error: v(ms::CHAP_ERROR).map(text_after_ident),
        send_key: key(ms::MPPE_SEND_KEY)?,
        recv_key: key(ms::MPPE_RECV_KEY)?,
        encryption_policy: v(ms::MPPE_ENCRYPTION_POLICY).and_then(be32),
        encryption_types: v(ms::MPPE_ENCRYPTION_TYPES).and_then(be32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr;
    use crate::crypto::{encrypt_mppe_key, sign_response, verify_response};
    use crate::packet::Code;

    #[test]
    fn chap2_response_layout() {
        let a = chap2_response(7, 0, &[1; 16], &[2; 24]);
        let (vendor, subs) = crate::packet::vendor_subattrs(&a.value).unwrap();
        assert_eq!(vendor, 311);
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].0, ms::CHAP2_RESPONSE);
        let d = subs[0].1;
        assert_eq!(d.len(), 50);
        assert_eq!((d[0], d[1]), (7, 0));
        assert_eq!(&d[2..18], &[1; 16]);
        assert_eq!(&d[18..26], &[0; 8]);
        assert_eq!(&d[26..], &[2; 24]);
    }

    #[test]
    fn accept_with_keys_and_success() {
        let ra = [5u8; 16];
        let secret = b"testing123";
        let mut p = Packet::new(Code::AccessAccept, 3);
        let mut s = vec![7u8];
        s.extend_from_slice(b"S=0123456789ABCDEF0123456789ABCDEF01234567");
        p.push(Attr::vendor(ms::VENDOR_ID, ms::CHAP2_SUCCESS, &s));
        p.push(Attr::vendor(
            ms::VENDOR_ID,
            ms::MPPE_SEND_KEY,
            &encrypt_mppe_key(&[0x33; 16], [0x80, 1], secret, &ra),
        ));
        p.push(Attr::vendor(
            ms::VENDOR_ID,
            ms::MPPE_RECV_KEY,
            &encrypt_mppe_key(&[0x44; 16], [0x80, 2], secret, &ra),
        ));
        p.push(Attr::vendor(
            ms::VENDOR_ID,
            ms::MPPE_ENCRYPTION_POLICY,
            &1u32.to_be_bytes(),
        ));
        p.push(Attr::vendor(
            ms::VENDOR_ID,
            ms::MPPE_ENCRYPTION_TYPES,
            &4u32.to_be_bytes(),
        ));
        p.push(Attr::u32(attr::SESSION_TIMEOUT, 60));
        let bytes = sign_response(&p, &ra, secret);
        let v = verify_response(&bytes, &ra, secret, false).unwrap();
        let r = parse_reply(&v, &ra, secret).unwrap();
        assert_eq!(
            r.chap2_success.as_deref(),
            Some("S=0123456789ABCDEF0123456789ABCDEF01234567")
        );
        assert_eq!(r.send_key.as_deref(), Some(&[0x33; 16][..]));
        assert_eq!(r.recv_key.as_deref(), Some(&[0x44; 16][..]));
        assert_eq!(r.encryption_policy, Some(1));
        assert_eq!(r.encryption_types, Some(ms::TYPES_128));
        assert!(r.chap_error.is_none());
    }
}
