//! Microsoft Point-to-Point Encryption: the CCP option bits (RFC 3078 §2), the packet header
//! (RFC 3078 §3.1), key derivation (RFC 3079 §2–§3, RFC 3078 §7.3) and the per-direction
//! encrypt/decrypt state with stateless and stateful key changes (RFC 3078 §7–§8).
//!
//! Use: derive [`StartKeys`] after authentication ([`mschapv2_start_keys`] or
//! [`mschapv1_start_keys`]), negotiate [`MppeBits`] in CCP, then build one [`MppeEncrypter`]
//! (send key) and one [`MppeDecrypter`] (receive key). Both work in place on the caller's
//! buffer and never allocate.
//!
//! Behaviour follows what Linux `ppp_mppe` and Windows put on the wire:
//! the sender always encrypts the uncompressed 2-octet protocol field, the first packet has
//! coherency count 0, in stateless mode every packet (the first one too) gets a fresh key and
//! the A bit, in stateful mode the first packet does not carry A (Linux would rekey on it).

mod engine;
mod keys;
mod rc4;

pub use engine::{MppeDecrypter, MppeEncrypter};
pub use keys::{
    change_key, get_asymmetric_start_key, get_master_key, get_new_key_from_sha, get_start_key,
    initial_session_key, mschapv1_start_keys, mschapv1_start_keys_nt, mschapv2_start_keys,
    mschapv2_start_keys_from_hash_hash, reduce_key, StartKey, StartKeys,
};

/// The PPP protocol number of an MPPE datagram (RFC 3078 §3).
pub const PROTOCOL: u16 = 0x00FD;
/// The CCP configuration option type for MPPE (RFC 3078 §2).
pub const CCP_OPTION: u8 = 18;
/// Octets the MPPE header adds in front of the encrypted data (RFC 3078 §3.1).
pub const HEADER_LEN: usize = 2;

/// Header bit A, "flushed": the sender (re)initialised its RC4 tables before this packet.
pub const FLAG_FLUSHED: u8 = 0x80;
/// Header bit B (MPPC history reset; meaningless for MPPE).
pub const FLAG_B: u8 = 0x40;
/// Header bit C (MPPC compressed; meaningless for MPPE, we never negotiate MPPC).
pub const FLAG_COMPRESSED: u8 = 0x20;
/// Header bit D: the packet is encrypted.
pub const FLAG_ENCRYPTED: u8 = 0x10;
/// The coherency count is 12 bits wide and wraps from 4095 to 0.
pub const COHERENCY_MASK: u16 = 0x0FFF;

/// The negotiated session key strength (RFC 3078 §2: L, M and S bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyLength {
    /// 40-bit effective strength: 8-octet keys, first 3 octets fixed to D1 26 9E.
    Bits40,
    /// 56-bit effective strength: 8-octet keys, first octet fixed to D1.
    Bits56,
    /// 128-bit: 16-octet keys.
    Bits128,
}

impl KeyLength {
    /// Length in octets of the session key (8 for 40/56-bit, 16 for 128-bit).
    pub const fn key_bytes(self) -> usize {
        match self {
            KeyLength::Bits40 | KeyLength::Bits56 => 8,
            KeyLength::Bits128 => 16,
        }
    }

    /// The CCP option 18 bit that stands for this strength.
    pub const fn bit(self) -> u32 {
        match self {
            KeyLength::Bits40 => MppeBits::L,
            KeyLength::Bits56 => MppeBits::M,
            KeyLength::Bits128 => MppeBits::S,
        }
    }
}

/// The 32-bit "Supported Bits" of CCP option 18 (RFC 3078 §2), most significant octet first
/// on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MppeBits(pub u32);

impl MppeBits {
    /// C: MPPC compression (RFC 2118), not MPPE.
    pub const C: u32 = 0x0000_0001;
    /// D: obsolete; "SHOULD NOT be accepted" (RFC 3078 §2).
    pub const D: u32 = 0x0000_0010;
    /// L: 40-bit keys.
    pub const L: u32 = 0x0000_0020;
    /// S: 128-bit keys.
    pub const S: u32 = 0x0000_0040;
    /// M: 56-bit keys.
    pub const M: u32 = 0x0000_0080;
    /// H: stateless mode (new key every packet).
    pub const H: u32 = 0x0100_0000;
    /// Every bit RFC 3078 defines.
    pub const DEFINED: u32 = Self::C | Self::D | Self::L | Self::S | Self::M | Self::H;

    /// The value for exactly one key strength, with or without stateless mode: what a
    /// responder Naks with and what the final Configure-Ack carries.
    pub const fn new(key: KeyLength, stateless: bool) -> Self {
        let h = if stateless { Self::H } else { 0 };
        MppeBits(key.bit() | h)
    }

    /// From the 4 option data octets (most significant first).
    pub const fn from_bytes(bytes: [u8; 4]) -> Self {
        MppeBits(u32::from_be_bytes(bytes))
    }

    /// The 4 option data octets.
    pub const fn to_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    /// From the option's data field (after type and length). It must be exactly 4 octets
    /// (option length 6).
    pub fn parse(data: &[u8]) -> Result<Self, MppeError> {
        let bytes: [u8; 4] = data
            .try_into()
            .map_err(|_| MppeError::BadOptionLength { len: data.len() })?;
        Ok(Self::from_bytes(bytes))
    }

    /// Whether every bit of `bits` is set.
    pub const fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }

    /// The H bit.
    pub const fn stateless(self) -> bool {
        self.contains(Self::H)
    }

    /// Whether `key` is offered.
    pub const fn offers(self, key: KeyLength) -> bool {
        self.contains(key.bit())
    }

    /// The strongest key length offered (S, then M, then L: RFC 3078 §2.1).
    pub const fn strongest(self) -> Option<KeyLength> {
        if self.offers(KeyLength::Bits128) {
            Some(KeyLength::Bits128)
        } else if self.offers(KeyLength::Bits56) {
            Some(KeyLength::Bits56)
        } else if self.offers(KeyLength::Bits40) {
            Some(KeyLength::Bits40)
        } else {
            None
        }
    }

    /// How many key lengths are offered (a final agreement has exactly one).
    pub const fn key_length_count(self) -> u32 {
        (self.0 & (Self::L | Self::M | Self::S)).count_ones()
    }

    /// Bits RFC 3078 reserves ("MUST be set to 0"); non-zero values are kept so the caller can
    /// Nak them away.
    pub const fn reserved(self) -> u32 {
        self.0 & !Self::DEFINED
    }
}

/// The two header octets in front of the encrypted data (RFC 3078 §3.1): flags A B C D and the
/// 12-bit coherency count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MppeHeader {
    /// The A/B/C/D bits (`FLAG_*`), in the high nibble.
    pub flags: u8,
    /// The coherency count, 0..=4095.
    pub count: u16,
}

impl MppeHeader {
    /// From the wire octets.
    pub const fn from_bytes(bytes: [u8; 2]) -> Self {
        MppeHeader {
            flags: bytes[0] & 0xF0,
            count: u16::from_be_bytes(bytes) & COHERENCY_MASK,
        }
    }

    /// The wire octets.
    pub const fn to_bytes(self) -> [u8; 2] {
        let c = (self.count & COHERENCY_MASK).to_be_bytes();
        [(self.flags & 0xF0) | c[0], c[1]]
    }

    /// Bit A.
    pub const fn flushed(self) -> bool {
        self.flags & FLAG_FLUSHED != 0
    }

    /// Bit D.
    pub const fn encrypted(self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }
}

/// Splits an MPPE datagram (the PPP information field of protocol 0x00FD) into its header
/// and the encrypted data, which [`MppeDecrypter::decrypt`] then decrypts in place.
pub fn split_header(datagram: &mut [u8]) -> Result<([u8; 2], &mut [u8]), MppeError> {
    match datagram {
        [a, b, rest @ ..] => Ok(([*a, *b], rest)),
        _ => Err(MppeError::Truncated {
            len: datagram.len(),
        }),
    }
}

/// Why a received MPPE packet was not decrypted. In every case the packet is dropped; the
/// variants tell the caller what else to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MppeError {
    /// Shorter than the 2-octet header.
    #[error("MPPE datagram of {len} octets is shorter than its header")]
    Truncated {
        /// Length received.
        len: usize,
    },
    /// The CCP option 18 data is not 4 octets.
    #[error("MPPE option data is {len} octets, expected 4")]
    BadOptionLength {
        /// Length received.
        len: usize,
    },
    /// Bit D clear: an unencrypted packet inside an encrypted link.
    #[error("MPPE packet without the encrypted (D) bit")]
    NotEncrypted,
    /// Stateful mode lost a packet: send a CCP Reset-Request (RFC 3078 §8.2). Packets are
    /// then dropped ([`MppeError::AwaitingFlush`]) until one arrives with the A bit.
    #[error("stateful MPPE lost a packet: send a CCP Reset-Request")]
    ResyncNeeded,
    /// Stateful mode is discarding packets until one with the A bit (the answer to our
    /// Reset-Request); drop silently.
    #[error("stateful MPPE is discarding packets until a flushed one")]
    AwaitingFlush,
    /// Stateless mode: the count is not ahead of the last one (duplicate, reordered or
    /// replayed packet; its key is gone). Drop.
    #[error("MPPE coherency count {received} is not ahead of {last}")]
    Stale {
        /// Count in the packet.
        received: u16,
        /// Count of the last packet decrypted.
        last: u16,
    },
    /// Stateless mode: catching up over this many lost packets would exceed the rekeying
    /// budget (see [`MppeDecrypter`]). Drop; the budget refills with every packet received.
    #[error("MPPE coherency count jumped over {lost} packets, beyond the rekeying budget")]
    TooManyLost {
        /// Packets the jump would skip.
        lost: u16,
    },
    /// Bit C set: an MPPC-compressed packet, which we never negotiate. The data was
    /// decrypted (to keep the key stream in step) but cannot be used.
    #[error("MPPC-compressed packet, but compression was not negotiated")]
    Compressed,
}
