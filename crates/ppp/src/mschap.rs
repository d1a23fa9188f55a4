//! Microsoft CHAP: the hashes and responses of MS-CHAPv1 (RFC 2433, Appendix A) and
//! MS-CHAPv2 (RFC 2759 §4–§8), named after the RFCs' pseudocode functions.
//!
//! This module holds what both versions share (NtPasswordHash, HashNtPasswordHash,
//! ChallengeResponse, DesEncrypt, LmPasswordHash, the Failure-message grammar);
//! [`v1`] and [`v2`] hold the version-specific functions and the Response / Success /
//! Failure value formats. Everything here is a pure function of its inputs: the CHAP packet
//! exchange (identifiers, retries, timers) lives with the CHAP state machine.
//!
//! Passwords are `&str` and are hashed as UTF-16LE, as Windows does. pppd widens each byte of
//! the secret to 16 bits instead (Latin-1); the two agree for ASCII passwords only.

use des::cipher::{BlockCipherEncrypt, KeyInit};
use des::Des;
use md4::{Digest, Md4};

pub mod v1;
pub mod v2;

/// Errors from parsing MS-CHAP values and messages received from the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsChapError {
    /// A Response Value whose length is not the fixed 49 octets (RFC 2433 §5, RFC 2759 §4).
    #[error("MS-CHAP response value is {len} octets, expected 49")]
    ResponseLength {
        /// The length received.
        len: usize,
    },
    /// A Success message that is not `S=<40 hex digits>` optionally followed by ` M=<text>`
    /// (RFC 2759 §5).
    #[error("malformed MS-CHAPv2 success message")]
    BadSuccessMessage,
    /// A Failure message that does not start with `E=<decimal>` or has a malformed field
    /// (RFC 2433 §8, RFC 2759 §6).
    #[error("malformed MS-CHAP failure message: {0}")]
    BadFailureMessage(&'static str),
}

/// The error codes of the Failure message (RFC 2433 §8, RFC 2759 §6). Other codes can occur and
/// are kept as numbers.
pub mod error_code {
    /// ERROR_RESTRICTED_LOGON_HOURS
    pub const RESTRICTED_LOGON_HOURS: u32 = 646;
    /// ERROR_ACCT_DISABLED
    pub const ACCT_DISABLED: u32 = 647;
    /// ERROR_PASSWD_EXPIRED
    pub const PASSWD_EXPIRED: u32 = 648;
    /// ERROR_NO_DIALIN_PERMISSION
    pub const NO_DIALIN_PERMISSION: u32 = 649;
    /// ERROR_AUTHENTICATION_FAILURE (what a wrong password gives)
    pub const AUTHENTICATION_FAILURE: u32 = 691;
    /// ERROR_CHANGING_PASSWORD
    pub const CHANGING_PASSWORD: u32 = 709;
}

/// NtPasswordHash (RFC 2759 §8.3, RFC 2433 A.6): MD4 of the password in UTF-16LE, without a
/// terminating zero.
pub fn nt_password_hash(password: &str) -> [u8; 16] {
    let mut md4 = Md4::new();
    // Feed the UTF-16LE encoding in chunks: no allocation for the password copy.
    let mut chunk = [0u8; 64];
    let mut used = 0;
    for unit in password.encode_utf16() {
        if used == chunk.len() {
            md4.update(chunk);
            used = 0;
        }
        let [lo, hi] = unit.to_le_bytes();
        if let Some(slot) = chunk.get_mut(used..used + 2) {
            slot.copy_from_slice(&[lo, hi]);
        }
        used += 2;
    }
    md4.update(chunk.get(..used).unwrap_or_default());
    md4.finalize().into()
}

/// HashNtPasswordHash (RFC 2759 §8.4): MD4 of the 16-octet password hash.
pub fn hash_nt_password_hash(password_hash: &[u8; 16]) -> [u8; 16] {
    Md4::digest(password_hash).into()
}

/// The DES key for a 7-octet "raw" key: the 56 bits spread over 8 octets, each octet's low bit
/// set for odd parity (RFC 2759 §9.3, RFC 2433 B.3). DES ignores the parity bits; setting them
/// makes the keys match the RFC examples byte for byte.
pub fn des_key_with_parity(key7: &[u8; 7]) -> [u8; 8] {
    let bits = key7.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let mut key = [0u8; 8];
    for (i, out) in key.iter_mut().enumerate() {
        // Octet i carries bits 55-7i ..= 49-7i of the 56-bit key, in its top seven bits.
        let seven = ((bits >> (49 - 7 * i)) & 0x7f) as u8;
        let byte = seven << 1;
        *out = byte | u8::from(byte.count_ones().is_multiple_of(2));
    }
    key
}

/// DesEncrypt (RFC 2759 §8.6, RFC 2433 A.4): one DES-ECB block with a 7-octet key.
pub fn des_encrypt(clear: &[u8; 8], key7: &[u8; 7]) -> [u8; 8] {
    let des = Des::new(&des_key_with_parity(key7).into());
    let mut block = (*clear).into();
    des.encrypt_block(&mut block);
    block.into()
}

/// ChallengeResponse (RFC 2759 §8.5, RFC 2433 A.7): the password hash, zero-padded to 21
/// octets, is three DES keys; each encrypts the 8-octet challenge.
pub fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; 24] {
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(password_hash);
    let mut response = [0u8; 24];
    for (out, key) in response.chunks_exact_mut(8).zip(z.chunks_exact(7)) {
        let key: [u8; 7] = key.try_into().unwrap_or_default();
        out.copy_from_slice(&des_encrypt(challenge, &key));
    }
    response
}

/// LmPasswordHash (RFC 2433 A.2): the password uppercased and zero-padded (or cut) to 14
/// octets, each 7-octet half used as a DES key to encrypt "KGS!@#$%" (DesHash, A.3).
///
/// The RFC uppercases in the OEM code page; this takes the UTF-8 bytes and uppercases ASCII
/// only, which is exact for ASCII passwords (the LAN Manager hash is legacy: MS-CHAPv1 only).
pub fn lm_password_hash(password: &str) -> [u8; 16] {
    const STD_TEXT: &[u8; 8] = b"KGS!@#$%";
    let mut ucase = [0u8; 14];
    for (dst, src) in ucase.iter_mut().zip(password.bytes()) {
        *dst = src.to_ascii_uppercase();
    }
    let mut hash = [0u8; 16];
    for (out, half) in hash.chunks_exact_mut(8).zip(ucase.chunks_exact(7)) {
        let key: [u8; 7] = half.try_into().unwrap_or_default();
        out.copy_from_slice(&des_encrypt(STD_TEXT, &key));
    }
    hash
}

/// Compares two byte strings in time that depends on their lengths only, not on where they
/// differ (for comparing responses and authenticators).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// Uppercase hex of `bytes` (the `S=` authenticator, as Windows and pppd print it).
pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    hex_with(bytes, b"0123456789ABCDEF")
}

/// Lowercase hex of `bytes` (the `C=` challenge, as pppd prints it with `%B`).
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    hex_with(bytes, b"0123456789abcdef")
}

fn hex_with(bytes: &[u8], digits: &[u8; 16]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(digits[usize::from(b >> 4)]));
        s.push(char::from(digits[usize::from(b & 0x0f)]));
    }
    s
}

/// Parses exactly `2 * N` hex digits (either case) into `N` bytes.
pub(crate) fn parse_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// The fields of a Failure message, `E=e R=r C=c V=v M=m` (RFC 2433 §8, RFC 2759 §6), still
/// borrowed from the packet. `M=` runs to the end of the message (it may contain spaces).
pub(crate) struct FailureFields<'a> {
    pub error: u32,
    pub retry: bool,
    pub challenge: Option<&'a [u8]>,
    pub version: Option<u32>,
    pub message: Option<&'a [u8]>,
}

pub(crate) fn parse_failure_fields(msg: &[u8]) -> Result<FailureFields<'_>, MsChapError> {
    let mut fields = FailureFields {
        error: 0,
        retry: false,
        challenge: None,
        version: None,
        message: None,
    };
    let mut seen_error = false;
    let mut rest = msg;
    while !rest.is_empty() {
        if let Some(text) = rest.strip_prefix(b"M=") {
            fields.message = Some(text);
            break;
        }
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let (token, tail) = rest.split_at(end);
        rest = tail.strip_prefix(b" ").unwrap_or(tail);
        match token {
            [b'E', b'=', digits @ ..] => {
                fields.error = parse_decimal(digits).ok_or(MsChapError::BadFailureMessage("E="))?;
                seen_error = true;
            }
            [b'R', b'=', flag @ ..] => {
                fields.retry = match flag {
                    b"0" => false,
                    b"1" => true,
                    _ => return Err(MsChapError::BadFailureMessage("R=")),
                };
            }
            [b'C', b'=', hex @ ..] => fields.challenge = Some(hex),
            [b'V', b'=', digits @ ..] => {
                fields.version =
                    Some(parse_decimal(digits).ok_or(MsChapError::BadFailureMessage("V="))?);
            }
            // Unknown or empty tokens (double spaces) are skipped: later versions may add
            // fields, and the RFCs ask to deal with unexpected content gracefully.
            _ => {}
        }
    }
    if !seen_error {
        return Err(MsChapError::BadFailureMessage("no E= field"));
    }
    Ok(fields)
}

fn parse_decimal(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn hex_round_trip() {
        let bytes = [0x00, 0x9f, 0xa0, 0xff];
        assert_eq!(hex_upper(&bytes), "009FA0FF");
        assert_eq!(hex_lower(&bytes), "009fa0ff");
        assert_eq!(parse_hex::<4>(b"009FA0ff"), Some(bytes));
        assert_eq!(parse_hex::<4>(b"009FA0f"), None);
        assert_eq!(parse_hex::<4>(b"009FA0fg"), None);
        assert_eq!(parse_hex::<1>(b"+1"), None);
    }

    #[test]
    fn nt_password_hash_handles_long_and_non_ascii_passwords() {
        // Longer than the 64-octet chunk: must equal a straightforward MD4 of UTF-16LE.
        let pw: String = "pässwörd€".repeat(9);
        let utf16: Vec<u8> = pw.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let expected: [u8; 16] = Md4::digest(&utf16).into();
        assert_eq!(nt_password_hash(&pw), expected);
        let empty: [u8; 16] = Md4::digest([]).into();
        assert_eq!(nt_password_hash(""), empty);
    }

    #[test]
    fn decimal_parsing_rejects_junk() {
        assert_eq!(parse_decimal(b"691"), Some(691));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"6a1"), None);
        assert_eq!(parse_decimal(b"99999999999"), None);
        assert_eq!(parse_decimal(b"4294967296"), None);
    }
}
