//! MS-CHAPv1 (RFC 2433): the 49-octet Response Value (§5), NtChallengeResponse (A.5),
//! LmChallengeResponse (A.1) and the Failure message (§8).
//!
//! Server policy note: pppd's authenticator checks the NT response only; a Response with
//! "use Windows NT compatible challenge response" = 0 (LAN Manager only) is refused unless pppd
//! was built with MSLANMAN. [`verify_response`] does the same. The LM response is still
//! computed by [`Response::generate`] because it is cheap and Windows 9x peers expect a filled
//! field.

use super::{
    challenge_response, ct_eq, hex_lower, lm_password_hash, nt_password_hash, parse_hex,
    MsChapError,
};

/// Length of the MS-CHAPv1 Response Value (RFC 2433 §5).
pub const RESPONSE_LEN: usize = 49;

/// NtChallengeResponse (RFC 2433 A.5): ChallengeResponse over NtPasswordHash(password).
pub fn nt_challenge_response(challenge: &[u8; 8], password: &str) -> [u8; 24] {
    challenge_response(challenge, &nt_password_hash(password))
}

/// LmChallengeResponse (RFC 2433 A.1): ChallengeResponse over LmPasswordHash(password).
pub fn lm_challenge_response(challenge: &[u8; 8], password: &str) -> [u8; 24] {
    challenge_response(challenge, &lm_password_hash(password))
}

/// The MS-CHAPv1 Response Value (RFC 2433 §5): LM response, NT response, and the flag saying
/// which one to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// LAN Manager compatible challenge response (24 octets).
    pub lm_response: [u8; 24],
    /// Windows NT compatible challenge response (24 octets).
    pub nt_response: [u8; 24],
    /// The "use Windows NT compatible challenge response" flag (1 on the wire).
    pub use_nt: bool,
}

impl Response {
    /// The peer's response to `challenge`: both responses filled, the NT flag set (as Windows
    /// NT and pppd send).
    pub fn generate(challenge: &[u8; 8], password: &str) -> Self {
        Self {
            lm_response: lm_challenge_response(challenge, password),
            nt_response: nt_challenge_response(challenge, password),
            use_nt: true,
        }
    }

    /// Parses the Response Value (the CHAP Value field, without its Value-Size octet).
    /// Any flag octet other than 0 means "use NT", like pppd.
    pub fn parse(value: &[u8]) -> Result<Self, MsChapError> {
        let value: &[u8; RESPONSE_LEN] = value
            .try_into()
            .map_err(|_| MsChapError::ResponseLength { len: value.len() })?;
        let (lm, rest) = value.split_at(24);
        let (nt, flag) = rest.split_at(24);
        Ok(Self {
            lm_response: lm.try_into().unwrap_or_default(),
            nt_response: nt.try_into().unwrap_or_default(),
            use_nt: flag.first().is_some_and(|&f| f != 0),
        })
    }

    /// The 49-octet wire form.
    pub fn to_bytes(&self) -> [u8; RESPONSE_LEN] {
        let mut out = [0u8; RESPONSE_LEN];
        out[..24].copy_from_slice(&self.lm_response);
        out[24..48].copy_from_slice(&self.nt_response);
        out[48] = u8::from(self.use_nt);
        out
    }
}

/// Authenticator side: does the peer's response prove knowledge of `password`? Checks the NT
/// response only, in constant time; an LM-only response is refused (see the module notes).
pub fn verify_response(challenge: &[u8; 8], password: &str, response: &Response) -> bool {
    response.use_nt
        && ct_eq(
            &nt_challenge_response(challenge, password),
            &response.nt_response,
        )
}

/// The Failure message as pppd sends it for MS-CHAPv1: `E=<error> R=<0|1> C=<16 hex> V=0`
/// (no `M=`: RFC 2433 has none). pppd always includes the challenge (the one it will accept the
/// retry against, i.e. the current one) in lowercase hex; `V=0` says no password change.
pub fn failure_message(error: u32, retry: bool, challenge: &[u8; 8]) -> String {
    format!(
        "E={error} R={} C={} V=0",
        u8::from(retry),
        hex_lower(challenge)
    )
}

/// A parsed MS-CHAPv1 Failure message (RFC 2433 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The `E=` error code (see [`super::error_code`]).
    pub error: u32,
    /// `R=1`: the authenticator accepts another response.
    pub retry: bool,
    /// `C=`: the challenge for the retry. When absent, RFC 2433 §8 says the retry uses the
    /// previous challenge plus 23 in its first octet.
    pub challenge: Option<[u8; 8]>,
    /// `V=`: the MS-CHAP version the authenticator supports.
    pub version: Option<u32>,
    /// `M=`: text, if any (not in RFC 2433, but pppd tolerates it, and so do we).
    pub message: Option<String>,
}

/// Parses a Failure message (client side). Requires `E=`; a `C=` that is not 16 hex digits is
/// an error; unknown fields are ignored.
pub fn parse_failure(msg: &[u8]) -> Result<Failure, MsChapError> {
    let f = super::parse_failure_fields(msg)?;
    let challenge = match f.challenge {
        None => None,
        Some(hex) => Some(parse_hex::<8>(hex).ok_or(MsChapError::BadFailureMessage("C="))?),
    };
    Ok(Failure {
        error: f.error,
        retry: f.retry,
        challenge,
        version: f.version,
        message: f.message.map(|m| String::from_utf8_lossy(m).into_owned()),
    })
}

/// The challenge to answer on a retry when the Failure message carried none (RFC 2433 §8:
/// "the previous challenge value plus decimal 23 in the first octet").
pub fn implied_retry_challenge(previous: &[u8; 8]) -> [u8; 8] {
    let mut next = *previous;
    next[0] = next[0].wrapping_add(23);
    next
}
