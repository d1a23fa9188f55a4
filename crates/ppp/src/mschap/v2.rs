//! MS-CHAPv2 (RFC 2759): the 49-octet Response Value (§4), ChallengeHash (§8.2),
//! GenerateNTResponse (§8.1), GenerateAuthenticatorResponse (§8.7), the Success message (§5)
//! and the Failure message (§6).
//!
//! Message texts follow what pppd sends (checked against a capture of pppd 2.4/2.5):
//! success `S=<40 UPPERCASE HEX> M=Access granted`, failure
//! `E=691 R=1 C=<32 lowercase hex> V=0 M=Access denied`.

use sha1::{Digest, Sha1};

use super::{
    challenge_response, ct_eq, hash_nt_password_hash, hex_lower, hex_upper, nt_password_hash,
    parse_hex, MsChapError,
};

/// Length of the MS-CHAPv2 Response Value (RFC 2759 §4).
pub const RESPONSE_LEN: usize = 49;

/// The password-change protocol version we announce in `V=`: 0, none. RFC 2759 §6 says an
/// MS-CHAPv2 authenticator SHOULD send 3, but we do not implement Change-Password (§7); pppd
/// sends 0 for the same reason, and Windows clients accept it.
pub const CHANGE_PASSWORD_VERSION: u32 = 0;

/// "Magic server to client signing constant" (RFC 2759 §8.7 Magic1).
const MAGIC1: &[u8; 39] = b"Magic server to client signing constant";
/// "Pad to make it do more than one iteration" (RFC 2759 §8.7 Magic2).
const MAGIC2: &[u8; 41] = b"Pad to make it do more than one iteration";

/// The user name as it enters ChallengeHash: without a `DOMAIN\` prefix (RFC 2759 §8.2; like
/// pppd, everything up to the last backslash is dropped).
pub fn strip_domain(username: &[u8]) -> &[u8] {
    match username.iter().rposition(|&b| b == b'\\') {
        Some(i) => username.get(i + 1..).unwrap_or_default(),
        None => username,
    }
}

/// ChallengeHash (RFC 2759 §8.2): the first 8 octets of
/// `SHA1(PeerChallenge || AuthenticatorChallenge || UserName)`, the user name without domain.
/// `username` is the CHAP Name as bytes (a `&str` works too).
pub fn challenge_hash(
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    username: impl AsRef<[u8]>,
) -> [u8; 8] {
    let mut sha = Sha1::new();
    sha.update(peer_challenge);
    sha.update(auth_challenge);
    sha.update(strip_domain(username.as_ref()));
    let digest = sha.finalize();
    let mut challenge = [0u8; 8];
    challenge.copy_from_slice(&digest[..8]);
    challenge
}

/// GenerateNTResponse (RFC 2759 §8.1).
pub fn generate_nt_response(
    auth_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    username: impl AsRef<[u8]>,
    password: &str,
) -> [u8; 24] {
    generate_nt_response_from_hash(
        auth_challenge,
        peer_challenge,
        username,
        &nt_password_hash(password),
    )
}

/// GenerateNTResponse from a stored NtPasswordHash instead of the password.
pub fn generate_nt_response_from_hash(
    auth_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    username: impl AsRef<[u8]>,
    password_hash: &[u8; 16],
) -> [u8; 24] {
    let challenge = challenge_hash(peer_challenge, auth_challenge, username);
    challenge_response(&challenge, password_hash)
}

/// Authenticator side: is `nt_response` the right answer for `password`? Compared in constant
/// time.
pub fn verify_nt_response(
    auth_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    username: impl AsRef<[u8]>,
    password: &str,
    nt_response: &[u8; 24],
) -> bool {
    let expected = generate_nt_response(auth_challenge, peer_challenge, username, password);
    ct_eq(&expected, nt_response)
}

/// GenerateAuthenticatorResponse (RFC 2759 §8.7): the 20-octet digest that the Success message
/// carries as `S=<40 hex>`.
pub fn generate_authenticator_response(
    password: &str,
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    username: impl AsRef<[u8]>,
) -> [u8; 20] {
    let hash_hash = hash_nt_password_hash(&nt_password_hash(password));
    generate_authenticator_response_from_hash_hash(
        &hash_hash,
        nt_response,
        peer_challenge,
        auth_challenge,
        username,
    )
}

/// GenerateAuthenticatorResponse from a stored PasswordHashHash (MD4(MD4(password))).
pub fn generate_authenticator_response_from_hash_hash(
    password_hash_hash: &[u8; 16],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    username: impl AsRef<[u8]>,
) -> [u8; 20] {
    let mut sha = Sha1::new();
    sha.update(password_hash_hash);
    sha.update(nt_response);
    sha.update(MAGIC1);
    let digest = sha.finalize();
    let challenge = challenge_hash(peer_challenge, auth_challenge, username);
    let mut sha = Sha1::new();
    sha.update(digest);
    sha.update(challenge);
    sha.update(MAGIC2);
    sha.finalize().into()
}

/// Constant-time comparison of two authenticator responses (CheckAuthenticatorResponse,
/// RFC 2759 §8.8, for the peer side).
pub fn authenticator_response_matches(expected: &[u8; 20], received: &[u8; 20]) -> bool {
    ct_eq(expected, received)
}

/// The MS-CHAPv2 Response Value (RFC 2759 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The peer's 16-octet random challenge.
    pub peer_challenge: [u8; 16],
    /// The 24-octet NT-Response.
    pub nt_response: [u8; 24],
    /// The Flags octet: MUST be 0 (RFC 2759 §4), but Windows 98 sends 4; pppd then leaves
    /// `M=` out of the Success message, and the caller may do the same.
    pub flags: u8,
}

impl Response {
    /// The peer's response (flags 0).
    pub fn generate(
        auth_challenge: &[u8; 16],
        peer_challenge: &[u8; 16],
        username: impl AsRef<[u8]>,
        password: &str,
    ) -> Self {
        Self {
            peer_challenge: *peer_challenge,
            nt_response: generate_nt_response(auth_challenge, peer_challenge, username, password),
            flags: 0,
        }
    }

    /// Parses the Response Value (the CHAP Value field without its Value-Size octet). The 8
    /// reserved octets are not checked (RFC 2759 says they MUST be zero; pppd ignores them).
    pub fn parse(value: &[u8]) -> Result<Self, MsChapError> {
        let value: &[u8; RESPONSE_LEN] = value
            .try_into()
            .map_err(|_| MsChapError::ResponseLength { len: value.len() })?;
        let (peer, rest) = value.split_at(16);
        let (_reserved, rest) = rest.split_at(8);
        let (nt, flags) = rest.split_at(24);
        Ok(Self {
            peer_challenge: peer.try_into().unwrap_or_default(),
            nt_response: nt.try_into().unwrap_or_default(),
            flags: flags.first().copied().unwrap_or_default(),
        })
    }

    /// The 49-octet wire form (reserved octets zero).
    pub fn to_bytes(&self) -> [u8; RESPONSE_LEN] {
        let mut out = [0u8; RESPONSE_LEN];
        out[..16].copy_from_slice(&self.peer_challenge);
        out[24..48].copy_from_slice(&self.nt_response);
        out[48] = self.flags;
        out
    }
}

/// The Success message text: `S=<40 uppercase hex>` then ` M=<message>` (RFC 2759 §5), as
/// pppd sends it. An empty `message` leaves the ` M=` part out, which is what pppd does for
/// peers that set the Flags octet (Windows 98 treats `M=` as an error).
pub fn success_message(auth_resp: &[u8; 20], message: &str) -> String {
    let mut s = format!("S={}", hex_upper(auth_resp));
    if !message.is_empty() {
        s.push_str(" M=");
        s.push_str(message);
    }
    s
}

/// The Failure message text: `E=<error> R=<0|1> C=<32 hex> V=0 M=<message>` (RFC 2759 §6).
/// Byte-for-byte what pppd sends: lowercase hex challenge (pppd's `%B`), `V=0` (see
/// [`CHANGE_PASSWORD_VERSION`]). `challenge` is the challenge a retry must answer; pppd reuses
/// the current one.
pub fn failure_message(error: u32, retry: bool, challenge: &[u8; 16], message: &str) -> String {
    format!(
        "E={error} R={} C={} V={CHANGE_PASSWORD_VERSION} M={message}",
        u8::from(retry),
        hex_lower(challenge)
    )
}

/// A parsed Success message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Success {
    /// The authenticator response from `S=`.
    pub auth_response: [u8; 20],
    /// The `M=` text, if present.
    pub message: Option<String>,
}

/// Parses a Success message (client side): `S=` and 40 hex digits (either case), then nothing,
/// ` M=<text>` or `M=<text>` (pppd accepts the form without the space, so do we).
pub fn parse_success(msg: &[u8]) -> Result<Success, MsChapError> {
    let hex = msg
        .strip_prefix(b"S=")
        .and_then(|rest| rest.get(..40))
        .ok_or(MsChapError::BadSuccessMessage)?;
    let auth_response = parse_hex::<20>(hex).ok_or(MsChapError::BadSuccessMessage)?;
    let rest = msg.get(42..).unwrap_or_default();
    let message = if rest.is_empty() {
        None
    } else {
        let text = rest
            .strip_prefix(b" M=")
            .or_else(|| rest.strip_prefix(b"M="))
            .ok_or(MsChapError::BadSuccessMessage)?;
        Some(String::from_utf8_lossy(text).into_owned())
    };
    Ok(Success {
        auth_response,
        message,
    })
}

/// A parsed MS-CHAPv2 Failure message (RFC 2759 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The `E=` error code (see [`super::error_code`]).
    pub error: u32,
    /// `R=1`: the authenticator accepts another response (to `challenge`).
    pub retry: bool,
    /// `C=`: the authenticator challenge for the retry. RFC 2759 makes it mandatory; a missing
    /// one is tolerated (None), a malformed one is an error.
    pub challenge: Option<[u8; 16]>,
    /// `V=`: the password-change protocol version the authenticator supports.
    pub version: Option<u32>,
    /// `M=`: the human-readable text.
    pub message: Option<String>,
}

/// Parses a Failure message (client side).
pub fn parse_failure(msg: &[u8]) -> Result<Failure, MsChapError> {
    let f = super::parse_failure_fields(msg)?;
    let challenge = match f.challenge {
        None => None,
        Some(hex) => Some(parse_hex::<16>(hex).ok_or(MsChapError::BadFailureMessage("C="))?),
    };
    Ok(Failure {
        error: f.error,
        retry: f.retry,
        challenge,
        version: f.version,
        message: f.message.map(|m| String::from_utf8_lossy(m).into_owned()),
    })
}
