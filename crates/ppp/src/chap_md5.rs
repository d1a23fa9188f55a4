//! CHAP with MD5 (RFC 1994 §4.1, algorithm 5): the Response Value is
//! `MD5(Identifier || secret || Challenge Value)`.
//!
//! Pure functions; the packet exchange lives with the CHAP state machine.

use md5::{Digest, Md5};

/// Length of a CHAP-MD5 Response Value (RFC 1994 §4.1: "the MD5 Value-Size is 16").
pub const RESPONSE_LEN: usize = 16;

/// The Response Value for a Challenge: `MD5(id || secret || challenge)` (RFC 1994 §4.1).
pub fn response(id: u8, secret: &[u8], challenge: &[u8]) -> [u8; RESPONSE_LEN] {
    let mut md5 = Md5::new();
    md5.update([id]);
    md5.update(secret);
    md5.update(challenge);
    md5.finalize().into()
}

/// Authenticator side: does `received` (the peer's Response Value, straight from the wire)
/// match what `secret` gives? A wrong length is simply "no". The comparison of equal-length
/// values does not stop at the first differing byte.
pub fn verify(id: u8, secret: &[u8], challenge: &[u8], received: &[u8]) -> bool {
    let expected = response(id, secret, challenge);
    received.len() == RESPONSE_LEN && crate::mschap::ct_eq(&expected, received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_accepts_own_response_and_rejects_others() {
        let challenge = [7u8; 16];
        let r = response(3, b"secret", &challenge);
        assert!(verify(3, b"secret", &challenge, &r));
        assert!(!verify(4, b"secret", &challenge, &r));
        assert!(!verify(3, b"Secret", &challenge, &r));
        assert!(!verify(3, b"secret", &challenge, &r[..15]));
        assert!(!verify(3, b"secret", &challenge, &[]));
    }
}
