//! MPPE key derivation: start keys from MS-CHAPv2 (RFC 3079 §3.3–§3.4) and MS-CHAPv1
//! (RFC 3079 §2.1–§2.4), the initial session key, and the key change of RFC 3078 §7.3.
//!
//! These are the reference (straightforward) forms, used once per session; the per-packet
//! path in `engine.rs` computes the same thing with precomputed SHA-1 blocks.

use rc4::{KeyInit, Rc4, StreamCipher};
use sha1::{Digest, Sha1};

use super::KeyLength;
use crate::mschap::{hash_nt_password_hash, lm_password_hash, nt_password_hash};

/// SHApad1 (RFC 3078 §7.3, RFC 3079 §3.4): 40 zero octets.
pub(crate) const SHA_PAD1: [u8; 40] = [0x00; 40];
/// SHApad2 (RFC 3078 §7.3, RFC 3079 §3.4): 40 octets of 0xF2.
pub(crate) const SHA_PAD2: [u8; 40] = [0xF2; 40];

/// "This is the MPPE Master Key" (RFC 3079 §3.4 Magic1).
const MAGIC1: &[u8; 27] = b"This is the MPPE Master Key";
/// RFC 3079 §3.4 Magic2: the client's send key, the server's receive key.
const MAGIC2: &[u8; 84] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
/// RFC 3079 §3.4 Magic3: the client's receive key, the server's send key.
const MAGIC3: &[u8; 84] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";

/// A "master session key" for one direction (RFC 3079: MasterSendKey / MasterReceiveKey; the
/// StartKey of RFC 3078 §7.3). Always 16 octets: 40- and 56-bit sessions use the first 8,
/// which is exactly what the RFC's 8-octet derivations produce (they are prefixes of the
/// 16-octet ones). `Debug` does not print the key.
#[derive(Clone, PartialEq, Eq)]
pub struct StartKey(pub [u8; 16]);

impl StartKey {
    /// The key octets used for `key_len` (8 or 16 of them).
    pub fn for_length(&self, key_len: KeyLength) -> &[u8] {
        self.0.get(..key_len.key_bytes()).unwrap_or(&self.0)
    }
}

impl core::fmt::Debug for StartKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StartKey(..)")
    }
}

/// The start keys of one end of the link: `send` encrypts what this end sends, `recv`
/// decrypts what it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartKeys {
    /// For this end's [`super::MppeEncrypter`].
    pub send: StartKey,
    /// For this end's [`super::MppeDecrypter`].
    pub recv: StartKey,
}

/// GetMasterKey (RFC 3079 §3.4): `SHA1(PasswordHashHash || NTResponse || Magic1)[..16]`.
pub fn get_master_key(password_hash_hash: &[u8; 16], nt_response: &[u8; 24]) -> [u8; 16] {
    let mut sha = Sha1::new();
    sha.update(password_hash_hash);
    sha.update(nt_response);
    sha.update(MAGIC1);
    first16(&sha.finalize())
}

/// GetAsymmetricStartKey (RFC 3079 §3.4) for 16 octets; 8-octet keys are its first half.
/// The server's send key is the client's receive key (Magic3), and the other way round (Magic2).
pub fn get_asymmetric_start_key(master_key: &[u8; 16], is_send: bool, is_server: bool) -> StartKey {
    let magic = if is_send == is_server { MAGIC3 } else { MAGIC2 };
    let mut sha = Sha1::new();
    sha.update(master_key);
    sha.update(SHA_PAD1);
    sha.update(magic);
    sha.update(SHA_PAD2);
    StartKey(first16(&sha.finalize()))
}

/// Both start keys from MS-CHAPv2 credentials (RFC 3079 §3.1–§3.3): the password and the
/// NT-Response of the (first) successful authentication. `is_server` is true on the
/// authenticator (PPTP server), false on the peer. The key length is applied later, by the
/// encrypter and decrypter.
pub fn mschapv2_start_keys(password: &str, nt_response: &[u8; 24], is_server: bool) -> StartKeys {
    let hash_hash = hash_nt_password_hash(&nt_password_hash(password));
    mschapv2_start_keys_from_hash_hash(&hash_hash, nt_response, is_server)
}

/// [`mschapv2_start_keys`] from a stored PasswordHashHash (MD4(MD4(password))).
pub fn mschapv2_start_keys_from_hash_hash(
    password_hash_hash: &[u8; 16],
    nt_response: &[u8; 24],
    is_server: bool,
) -> StartKeys {
    let master = get_master_key(password_hash_hash, nt_response);
    StartKeys {
        send: get_asymmetric_start_key(&master, true, is_server),
        recv: get_asymmetric_start_key(&master, false, is_server),
    }
}

/// Get_Start_Key (RFC 3079 §2.4): `SHA1(NtPasswordHashHash || NtPasswordHashHash ||
/// Challenge)[..16]`, the MS-CHAPv1 128-bit start key.
pub fn get_start_key(challenge: &[u8; 8], password_hash_hash: &[u8; 16]) -> [u8; 16] {
    let mut sha = Sha1::new();
    sha.update(password_hash_hash);
    sha.update(password_hash_hash);
    sha.update(challenge);
    first16(&sha.finalize())
}

/// Start keys from MS-CHAPv1 credentials as RFC 3079 §2 specifies them (Windows NT/9x):
/// 40- and 56-bit keys come from the LAN Manager hash of the password (§2.1, §2.2), 128-bit
/// keys from Get_Start_Key over the NT hash and the authenticator's challenge (§2.3). Both
/// directions use the same key.
///
/// pppd/Linux derive 40-bit keys from the NT hash instead; for a Linux peer use
/// [`mschapv1_start_keys_nt`]. The two agree for 128-bit keys.
pub fn mschapv1_start_keys(password: &str, challenge: &[u8; 8], key_len: KeyLength) -> StartKeys {
    let key = match key_len {
        KeyLength::Bits40 | KeyLength::Bits56 => StartKey(lm_password_hash(password)),
        KeyLength::Bits128 => return mschapv1_start_keys_nt(password, challenge),
    };
    StartKeys {
        send: key.clone(),
        recv: key,
    }
}

/// Start keys from MS-CHAPv1 credentials as pppd derives them for every key length
/// (`mppe_set_chapv1`): Get_Start_Key over the NT hash and the challenge; 40/56-bit sessions
/// use its first 8 octets. Same key in both directions.
pub fn mschapv1_start_keys_nt(password: &str, challenge: &[u8; 8]) -> StartKeys {
    let hash_hash = hash_nt_password_hash(&nt_password_hash(password));
    let key = StartKey(get_start_key(challenge, &hash_hash));
    StartKeys {
        send: key.clone(),
        recv: key,
    }
}

/// GetNewKeyFromSHA (RFC 3078 §7.3; Get_Key in RFC 3079 §2.4):
/// `SHA1(StartKey || SHApad1 || SessionKey || SHApad2)`, first `key_len` octets (the rest of
/// the returned array is zero).
pub fn get_new_key_from_sha(
    start_key: &StartKey,
    session_key: &[u8; 16],
    key_len: KeyLength,
) -> [u8; 16] {
    let n = key_len.key_bytes();
    let mut sha = Sha1::new();
    sha.update(start_key.for_length(key_len));
    sha.update(SHA_PAD1);
    sha.update(session_key.get(..n).unwrap_or(session_key));
    sha.update(SHA_PAD2);
    let digest = sha.finalize();
    let mut key = [0u8; 16];
    if let (Some(dst), Some(src)) = (key.get_mut(..n), digest.get(..n)) {
        dst.copy_from_slice(src);
    }
    key
}

/// Reduces the effective strength of a session key (RFC 3078 §7.3, RFC 3079 §3.1–§3.2): for
/// 40-bit keys the first three octets become D1 26 9E, for 56-bit keys the first becomes D1;
/// 128-bit keys are unchanged.
pub fn reduce_key(key: &mut [u8; 16], key_len: KeyLength) {
    match key_len {
        KeyLength::Bits40 => key[..3].copy_from_slice(&[0xD1, 0x26, 0x9E]),
        KeyLength::Bits56 => key[0] = 0xD1,
        KeyLength::Bits128 => {}
    }
}

/// The initial session key (RFC 3079 §3.1–§3.3 and §2.1–§2.3):
/// `GetNewKeyFromSHA(StartKey, StartKey)`, reduced for 40/56-bit keys.
pub fn initial_session_key(start_key: &StartKey, key_len: KeyLength) -> [u8; 16] {
    let mut key = get_new_key_from_sha(start_key, &start_key.0, key_len);
    reduce_key(&mut key, key_len);
    key
}

/// One key change (RFC 3078 §7.3): the interim key from GetNewKeyFromSHA, RC4-encrypted with
/// itself, reduced for 40/56-bit keys.
pub fn change_key(start_key: &StartKey, session_key: &[u8; 16], key_len: KeyLength) -> [u8; 16] {
    let interim = get_new_key_from_sha(start_key, session_key, key_len);
    let mut key = interim;
    let n = key_len.key_bytes();
    let mut rc4 = rc4_with_key(&interim, key_len);
    if let Some(part) = key.get_mut(..n) {
        rc4.apply_keystream(part);
    }
    reduce_key(&mut key, key_len);
    key
}

/// RC4 keyed with the first `key_len` octets of `key`.
///
/// The rc4 crate's fixed key size is 32 octets. RC4's key schedule reads the key cyclically,
/// so an 8- or 16-octet key repeated to 32 octets gives exactly the same state: no fallible
/// variable-length constructor is needed.
pub(crate) fn rc4_with_key(key: &[u8; 16], key_len: KeyLength) -> Rc4 {
    let mut key32 = [0u8; 32];
    let n = key_len.key_bytes();
    for (i, b) in key32.iter_mut().enumerate() {
        *b = key[i % n];
    }
    Rc4::new(&key32.into())
}

fn first16(digest: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Some(src) = digest.get(..16) {
        out.copy_from_slice(src);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_key_gives_the_same_rc4_as_the_short_key() {
        let key: [u8; 16] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(5));
        for key_len in [KeyLength::Bits40, KeyLength::Bits128] {
            let n = key_len.key_bytes();
            let mut a = [0u8; 64];
            let mut b = [0u8; 64];
            rc4_with_key(&key, key_len).apply_keystream(&mut a);
            let mut short = Rc4::new_from_slice(&key[..n]).expect("valid key length");
            short.apply_keystream(&mut b);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn magic_constants_have_the_rfc_lengths_and_differ() {
        assert_eq!(MAGIC1.len(), 27);
        assert_eq!(MAGIC2.len(), 84);
        assert_eq!(MAGIC3.len(), 84);
        assert_ne!(MAGIC2, MAGIC3);
    }
}
