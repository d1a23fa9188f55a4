//! Per-direction MPPE state: in-place encryption and decryption, stateless and stateful key
//! changes (RFC 3078 §7) and receiver synchronisation (RFC 3078 §8).
//!
//! The per-packet cost in stateless mode is one key change: SHA-1 over
//! `StartKey || SHApad1 || SessionKey || SHApad2` (two compression-function calls on blocks
//! that are laid out once per session, only the session key is rewritten) and two RC4 key
//! schedules (`rc4.rs`). Nothing here allocates.

use super::keys::{initial_session_key, reduce_key, SHA_PAD1, SHA_PAD2};
use super::rc4::Rc4;
use super::{
    KeyLength, MppeError, MppeHeader, StartKey, COHERENCY_MASK, FLAG_COMPRESSED, FLAG_ENCRYPTED,
    FLAG_FLUSHED,
};

/// SHA-1 initial hash value (FIPS 180-4 §5.3.1).
const SHA1_H0: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// The coherency count space (12 bits).
const COUNT_SPACE: u16 = COHERENCY_MASK + 1;

/// Stateless receiver: the most packets a single jump may skip. A count further ahead than
/// half the space is taken as a late (reordered or replayed) packet, as newer Linux kernels
/// do ("ppp: mppe: discard late packet in stateless mode").
const MAX_FORWARD_JUMP: u16 = COUNT_SPACE / 2 - 1;

/// Stateless receiver: the rekeying budget, in key changes for skipped packets. A jump over
/// `n` lost packets costs `n` key changes (about 1 µs each) and spends `n` units; every packet
/// received adds [`REKEY_REFILL`], up to this cap. A full budget covers the longest jump at
/// once, so a real burst of loss is always caught up; a peer (or a spoofer, GRE is not
/// authenticated) that keeps sending far-ahead counts gets at most `REKEY_REFILL` extra key
/// changes per packet on average instead of 2047.
const REKEY_BUDGET: u32 = MAX_FORWARD_JUMP as u32 + 1;
/// Budget regained per received packet (see [`REKEY_BUDGET`]).
const REKEY_REFILL: u32 = 8;

/// The session key and the SHA-1 input of GetNewKeyFromSHA, laid out once.
#[derive(Clone)]
struct KeySchedule {
    key_len: KeyLength,
    /// `StartKey || SHApad1 || SessionKey || SHApad2 || SHA-1 padding`: 96 or 112 message
    /// octets plus padding fill exactly two 64-octet blocks for both key sizes.
    blocks: [[u8; 64]; 2],
    session: [u8; 16],
    /// The session key after the next key change, when already computed: the stateless
    /// key change computes it one packet ahead, in the same loop as the current key's RC4
    /// schedule ([`KeySchedule::change_and_key`]).
    ahead: Option<[u8; 16]>,
}

impl KeySchedule {
    fn new(start: &StartKey, key_len: KeyLength) -> Self {
        let n = key_len.key_bytes();
        let msg_len = 2 * n + SHA_PAD1.len() + SHA_PAD2.len();
        let mut flat = [0u8; 128];
        let parts: [&[u8]; 4] = [
            start.for_length(key_len),
            &SHA_PAD1,
            &start.0[..n],
            &SHA_PAD2,
        ];
        let mut at = 0;
        for part in parts {
            if let Some(dst) = flat.get_mut(at..at + part.len()) {
                dst.copy_from_slice(part);
            }
            at += part.len();
        }
        if let Some(b) = flat.get_mut(msg_len) {
            *b = 0x80;
        }
        flat[120..].copy_from_slice(&((msg_len as u64) * 8).to_be_bytes());
        let mut blocks = [[0u8; 64]; 2];
        blocks[0].copy_from_slice(&flat[..64]);
        blocks[1].copy_from_slice(&flat[64..]);
        KeySchedule {
            key_len,
            blocks,
            session: initial_session_key(start, key_len),
            ahead: None,
        }
    }

    /// GetNewKeyFromSHA(StartKey, session) on the prepared blocks.
    fn new_key_from_sha(&self, session: &[u8; 16]) -> [u8; 16] {
        let mut blocks = self.blocks;
        match self.key_len {
            KeyLength::Bits128 => {
                blocks[0][56..].copy_from_slice(&session[..8]);
                blocks[1][..8].copy_from_slice(&session[8..]);
            }
            KeyLength::Bits40 | KeyLength::Bits56 => {
                blocks[0][48..56].copy_from_slice(&session[..8]);
            }
        }
        let mut state = SHA1_H0;
        sha1::block_api::compress(&mut state, &blocks);
        let mut key = [0u8; 16];
        for (dst, word) in key.chunks_exact_mut(4).zip(state) {
            dst.copy_from_slice(&word.to_be_bytes());
        }
        if self.key_len != KeyLength::Bits128 {
            key[8..].fill(0);
        }
        key
    }

    /// The session key after one key change (RFC 3078 §7.3), without applying it.
    fn next_session(&self) -> [u8; 16] {
        match self.ahead {
            Some(k) => k,
            None => self.compute_next_session(),
        }
    }

    fn compute_next_session(&self) -> [u8; 16] {
        let interim = self.new_key_from_sha(&self.session);
        let mut next = interim;
        let n = self.key_len.key_bytes();
        Rc4::new(&interim, self.key_len).apply_keystream(&mut next[..n]);
        reduce_key(&mut next, self.key_len);
        next
    }

    /// One key change (RFC 3078 §7.3).
    fn change(&mut self) {
        self.session = self.next_session();
        self.ahead = None;
    }

    /// Replaces the session key (a stateful peer's reset answered Linux-style).
    fn set_session(&mut self, key: [u8; 16]) {
        self.session = key;
        self.ahead = None;
    }

    /// One key change, then `rc4` keyed with the new session key: the stateless per-packet
    /// step. The following key change's work (SHA-1, the interim key's RC4 schedule, 16
    /// octets of its keystream) is done now too, its RC4 schedule interleaved with `rc4`'s:
    /// the two serial swap chains are independent and overlap in the CPU.
    fn change_and_key(&mut self, rc4: &mut Rc4) {
        self.session = self.next_session();
        let interim = self.new_key_from_sha(&self.session);
        let mut chain = Rc4::unkeyed();
        Rc4::set_keys_pair(rc4, &self.session, &mut chain, &interim, self.key_len);
        let mut next = interim;
        let n = self.key_len.key_bytes();
        chain.apply_keystream(&mut next[..n]);
        reduce_key(&mut next, self.key_len);
        self.ahead = Some(next);
    }

    /// RC4 tables initialised with the current session key.
    fn cipher(&self) -> Rc4 {
        Rc4::new(&self.session, self.key_len)
    }

    /// Re-initialises `rc4` with the current session key, in place.
    fn key_cipher(&self, rc4: &mut Rc4) {
        rc4.set_key(&self.session, self.key_len);
    }
}

fn is_flag_count(count: u16) -> bool {
    count & 0xFF == 0xFF
}

/// How many "flag" counts (low octet 0xFF) lie in `[from, from + len)`, modulo 4096.
fn flag_counts_in(from: u16, len: u16) -> u32 {
    let from = u32::from(from);
    (from + u32::from(len)) / 256 - from / 256
}

/// The sending half of MPPE for one direction: encrypts in place and says which header to put
/// in front.
pub struct MppeEncrypter {
    keys: KeySchedule,
    rc4: Rc4,
    stateless: bool,
    /// Coherency count of the last packet sent (4095 before the first, so it starts at 0).
    count: u16,
    /// A CCP Reset-Request arrived; the next packet must carry the A bit.
    flush_pending: bool,
}

impl MppeEncrypter {
    /// State for the send direction: `start_key` is this end's send start key
    /// ([`super::StartKeys::send`]), `key_len` and `stateless` what CCP agreed on.
    pub fn new(start_key: &StartKey, key_len: KeyLength, stateless: bool) -> Self {
        let keys = KeySchedule::new(start_key, key_len);
        let rc4 = keys.cipher();
        MppeEncrypter {
            keys,
            rc4,
            stateless,
            count: COHERENCY_MASK,
            flush_pending: false,
        }
    }

    /// Encrypts `buf` in place and returns the 2-octet MPPE header to write in front of it.
    ///
    /// `buf` is the PPP protocol field, uncompressed (2 octets, as Linux `ppp_mppe` always
    /// sends it), followed by the payload; the caller sends protocol 0x00FD, the header, then
    /// `buf`. Only protocols 0x0021..=0x00FA are to be encrypted (RFC 3078 §3).
    pub fn encrypt(&mut self, buf: &mut [u8]) -> [u8; 2] {
        let mut count = (self.count + 1) & COHERENCY_MASK;
        let mut flags = FLAG_ENCRYPTED;
        if self.stateless {
            // RFC 3078 §7.1: a new key before every packet, the first one included.
            self.keys.change_and_key(&mut self.rc4);
            flags |= FLAG_FLUSHED;
        } else {
            if self.flush_pending {
                // Answering a Reset-Request. RFC 3078 §8.2 (Windows) re-initialises RC4 with
                // the current key; Linux ppp_mppe changes the key instead, and each expects
                // the same from its peer. Jumping to the next "flag" count satisfies both: a
                // flag packet changes the key under either rule, and a receiver waiting for
                // the A bit accounts for skipped counts anyway.
                count |= 0xFF;
                self.flush_pending = false;
            }
            if is_flag_count(count) {
                // RFC 3078 §7.2: new key on every count whose low octet is 0xFF.
                self.keys.change();
                self.keys.key_cipher(&mut self.rc4);
                flags |= FLAG_FLUSHED;
            }
        }
        self.count = count;
        self.rc4.apply_keystream(buf);
        MppeHeader { flags, count }.to_bytes()
    }

    /// The peer sent a CCP Reset-Request (answer it with a Reset-Ack): the next packet is
    /// sent "flushed" so the peer's decrypter resynchronises. Only stateful mode needs it;
    /// in stateless mode every packet is flushed already. Several resets before the next
    /// packet count as one, like Linux.
    pub fn reset(&mut self) {
        if !self.stateless {
            self.flush_pending = true;
        }
    }

    /// The coherency count of the last packet sent (4095 before the first one).
    pub fn coherency_count(&self) -> u16 {
        self.count
    }

    /// The negotiated key length.
    pub fn key_length(&self) -> KeyLength {
        self.keys.key_len
    }

    /// Whether this is stateless mode.
    pub fn stateless(&self) -> bool {
        self.stateless
    }
}

/// Which way a stateful peer answers our Reset-Request (see [`MppeDecrypter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetStyle {
    /// RFC 3078 §8.2 (Windows): RC4 re-initialised with the current key.
    Reinit,
    /// Linux ppp_mppe: a key change.
    ChangeKey,
}

/// The receiving half of MPPE for one direction: decrypts in place, keeping the keys in step
/// with the sender's coherency count.
///
/// Stateless mode: a packet `n` counts ahead of the expected one costs `n + 1` key changes
/// (RFC 3078 §8.1). Counts more than 2047 ahead are late packets ([`MppeError::Stale`]).
/// Catching up is paid from a rekeying budget (2048 key changes, refilled by 8 per packet
/// received), so a far-jumping sender cannot make us rekey thousands of times per packet;
/// over budget the packet is dropped ([`MppeError::TooManyLost`]) and later packets catch up
/// once the budget allows.
///
/// Stateful mode: a missing count means [`MppeError::ResyncNeeded`] (send a CCP
/// Reset-Request), then [`MppeError::AwaitingFlush`] until a packet with the A bit. On that
/// packet the key is changed once for every flag count (low octet 0xFF) the sender passed,
/// and once more if the packet is itself a flag packet. A flushed packet at another count is
/// the answer to a Reset-Request, which Windows (RFC 3078 §8.2: RC4 re-initialised with the
/// current key) and Linux (a key change) produce differently; both candidates are tried on
/// the first two octets and the one that decrypts to a PPP protocol number in
/// 0x0021..=0x00FA wins (ties go to the style seen before, else to the RFC).
pub struct MppeDecrypter {
    keys: KeySchedule,
    rc4: Rc4,
    stateless: bool,
    /// The coherency count expected next.
    next: u16,
    /// Stateful: a packet was lost, waiting for the A bit.
    discarding: bool,
    /// Stateless: remaining key changes allowed for skipped packets.
    budget: u32,
    /// Stateful: how the peer answered a Reset-Request before, once known.
    reset_style: Option<ResetStyle>,
}

impl MppeDecrypter {
    /// State for the receive direction: `start_key` is this end's receive start key
    /// ([`super::StartKeys::recv`]).
    pub fn new(start_key: &StartKey, key_len: KeyLength, stateless: bool) -> Self {
        let keys = KeySchedule::new(start_key, key_len);
        let rc4 = keys.cipher();
        MppeDecrypter {
            keys,
            rc4,
            stateless,
            next: 0,
            discarding: false,
            budget: REKEY_BUDGET,
            reset_style: None,
        }
    }

    /// Decrypts `buf` (the data after the 2-octet MPPE header) in place. On success `buf`
    /// starts with the PPP protocol field: two octets, or one if the sender compressed it.
    /// On error the packet is to be dropped, see [`MppeError`] for what else to do.
    pub fn decrypt(&mut self, header: [u8; 2], buf: &mut [u8]) -> Result<(), MppeError> {
        let header = MppeHeader::from_bytes(header);
        if !header.encrypted() {
            return Err(MppeError::NotEncrypted);
        }
        if self.stateless {
            self.sync_stateless(header.count)?;
        } else {
            self.sync_stateful(header, buf)?;
        }
        self.next = (header.count + 1) & COHERENCY_MASK;
        self.rc4.apply_keystream(buf);
        if header.flags & FLAG_COMPRESSED != 0 {
            return Err(MppeError::Compressed);
        }
        Ok(())
    }

    /// RFC 3078 §8.1. The A bit is not required: the count alone says how many key changes
    /// to make (Linux drops such packets, FreeBSD accepts them in sequence; both senders
    /// always set A).
    fn sync_stateless(&mut self, count: u16) -> Result<(), MppeError> {
        self.budget = (self.budget + REKEY_REFILL).min(REKEY_BUDGET);
        let skipped = count.wrapping_sub(self.next) & COHERENCY_MASK;
        if skipped > MAX_FORWARD_JUMP {
            return Err(MppeError::Stale {
                received: count,
                last: self.next.wrapping_sub(1) & COHERENCY_MASK,
            });
        }
        if u32::from(skipped) > self.budget {
            return Err(MppeError::TooManyLost { lost: skipped });
        }
        self.budget -= u32::from(skipped);
        for _ in 0..skipped {
            self.keys.change();
        }
        self.keys.change_and_key(&mut self.rc4);
        Ok(())
    }

    /// RFC 3078 §7.2 and §8.2, with the Linux/Windows difference described on the type.
    fn sync_stateful(&mut self, header: MppeHeader, buf: &[u8]) -> Result<(), MppeError> {
        let count = header.count;
        if !header.flushed() {
            if self.discarding {
                return Err(MppeError::AwaitingFlush);
            }
            if count != self.next {
                self.discarding = true;
                return Err(MppeError::ResyncNeeded);
            }
            if is_flag_count(count) {
                // A flag packet without A: Linux drops it, the RFC says the key changes on
                // every flag packet; we follow the RFC.
                self.keys.change();
                self.keys.key_cipher(&mut self.rc4);
            }
            return Ok(());
        }
        let skipped = count.wrapping_sub(self.next) & COHERENCY_MASK;
        for _ in 0..flag_counts_in(self.next, skipped) {
            self.keys.change();
        }
        if is_flag_count(count) {
            self.keys.change();
        } else {
            self.resolve_reset_style(buf);
        }
        self.keys.key_cipher(&mut self.rc4);
        self.discarding = false;
        Ok(())
    }

    /// A flushed packet at a non-flag count: keep the key (RFC) or change it (Linux),
    /// whichever decrypts the protocol field to a plausible value.
    fn resolve_reset_style(&mut self, buf: &[u8]) {
        let changed = self.keys.next_session();
        let style = match buf {
            [a, b, ..] => {
                let mut as_rfc = [*a, *b];
                self.keys.cipher().apply_keystream(&mut as_rfc);
                let mut as_linux = [*a, *b];
                Rc4::new(&changed, self.keys.key_len).apply_keystream(&mut as_linux);
                let (rfc, linux) = (protocol_score(as_rfc), protocol_score(as_linux));
                if rfc == 2 && linux < 2 {
                    self.reset_style = Some(ResetStyle::Reinit);
                } else if linux == 2 && rfc < 2 {
                    self.reset_style = Some(ResetStyle::ChangeKey);
                }
                if linux > rfc {
                    ResetStyle::ChangeKey
                } else if rfc > linux {
                    ResetStyle::Reinit
                } else {
                    self.reset_style.unwrap_or(ResetStyle::Reinit)
                }
            }
            _ => self.reset_style.unwrap_or(ResetStyle::Reinit),
        };
        if style == ResetStyle::ChangeKey {
            self.keys.set_session(changed);
        }
    }

    /// Stateful mode: whether packets are being dropped until the peer answers a
    /// Reset-Request (a caller may repeat the Reset-Request on its timer while this holds).
    pub fn discarding(&self) -> bool {
        self.discarding
    }

    /// The coherency count expected next.
    pub fn expected_count(&self) -> u16 {
        self.next
    }

    /// The negotiated key length.
    pub fn key_length(&self) -> KeyLength {
        self.keys.key_len
    }

    /// Whether this is stateless mode.
    pub fn stateless(&self) -> bool {
        self.stateless
    }
}

/// How plausible two decrypted octets are as the start of an MPPE payload: 2 for an
/// uncompressed protocol number in 0x0021..=0x00FA (what Linux and Windows send), 1 for a
/// protocol-field-compressed one, 0 otherwise.
fn protocol_score(octets: [u8; 2]) -> u8 {
    let in_range = |p: u8| (0x21..=0xFA).contains(&p) && p & 1 == 1;
    match octets {
        [0x00, p] if in_range(p) => 2,
        [p, _] if in_range(p) => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::{change_key, get_new_key_from_sha};
    use super::*;

    fn start() -> StartKey {
        StartKey(core::array::from_fn(|i| {
            (i as u8).wrapping_mul(17).wrapping_add(3)
        }))
    }

    #[test]
    fn prepared_blocks_match_the_reference_get_new_key_from_sha() {
        for key_len in [KeyLength::Bits40, KeyLength::Bits56, KeyLength::Bits128] {
            let keys = KeySchedule::new(&start(), key_len);
            let session: [u8; 16] = core::array::from_fn(|i| 0xA0 ^ i as u8);
            let mut session = session;
            if key_len != KeyLength::Bits128 {
                session[8..].fill(0);
            }
            assert_eq!(
                keys.new_key_from_sha(&session),
                get_new_key_from_sha(&start(), &session, key_len),
                "{key_len:?}"
            );
            assert_eq!(
                keys.next_session(),
                change_key(&start(), &keys.session, key_len),
                "{key_len:?}"
            );
        }
    }

    #[test]
    fn flag_counts_are_counted_modulo_the_block() {
        assert_eq!(flag_counts_in(0, 0), 0);
        assert_eq!(flag_counts_in(0, 255), 0);
        assert_eq!(flag_counts_in(0, 256), 1);
        assert_eq!(flag_counts_in(0xFF, 1), 1);
        assert_eq!(flag_counts_in(0x100, 255), 0);
        assert_eq!(flag_counts_in(0xFF0, 0x20), 1); // wraps past 4095: 0xFFF counted once
        assert_eq!(flag_counts_in(0, 4095), 15);
        assert_eq!(flag_counts_in(1, 4095), 16);
    }

    #[test]
    fn protocol_scores() {
        assert_eq!(protocol_score([0x00, 0x21]), 2);
        assert_eq!(protocol_score([0x00, 0x57]), 2);
        assert_eq!(protocol_score([0x00, 0x20]), 0);
        assert_eq!(protocol_score([0x00, 0xFD]), 0);
        assert_eq!(protocol_score([0x21, 0x45]), 1);
        assert_eq!(protocol_score([0xC0, 0x21]), 0);
    }
}
