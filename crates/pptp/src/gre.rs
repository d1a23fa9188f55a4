//! Enhanced GRE for PPTP (RFC 2637 §4.1 header, §4.2 sliding window and acknowledgements).
//!
//! Header layout (RFC 2637 §4.1, a variant of RFC 1701 GRE):
//!
//! ```text
//! byte 0: C R K S s Recur(3)      C=0 R=0 K=1 s=0 Recur=0; S = sequence number present
//! byte 1: A Flags(4) Ver(3)       A = acknowledgement present, Flags=0, Ver=1
//! 2..4   Protocol Type 0x880B (PPP)
//! 4..6   Key (high): payload length      6..8   Key (low): call id of the RECEIVER
//! [4 bytes sequence number if S] [4 bytes acknowledgement number if A]
//! ```
//!
//! [`GreChannel`] keeps one call's sequencing state. Choices the RFC leaves open:
//! - **Receive**: a data packet is accepted only if its sequence number is newer than the last
//!   accepted one (serial-number arithmetic, RFC 1982 style, wrapping at 2^32); duplicates and
//!   late (reordered) packets are dropped and counted. No reorder buffer: the Linux kernel
//!   `pptp` module does the same, and MPPE/PPP above cope with loss.
//! - **Send window**: the sender does *not* stop when the peer's advertised receive window is
//!   full (pptpd and the Linux `pptp` module don't either); it counts
//!   [`GreStats::tx_beyond_peer_window`] so the daemon can report it. Stalling the data path on a
//!   lost ack would hurt far more than a window overrun, which peers handle by dropping.
//! - **Acks**: an owed ack rides on the next data packet. Otherwise an ack-only packet is sent
//!   [`GreConfig::ack_delay`] (100 ms) after the first unacknowledged packet arrived, or at once
//!   when [`GreConfig::ack_every`] packets are unacknowledged. pptpd waits 50 ms, pptp-linux
//!   500 ms for a single pending ack (and acks at once when more are pending); 100 ms lets the
//!   usual reply traffic carry the ack, while a window-limited sender (Windows honours our
//!   window) never waits long for one.
//! - **First sequence number** sent is 0, as the reference server (pptpd) does; peers accept any
//!   first number.

use std::time::{Duration, Instant};

/// GRE Protocol Type for PPP (RFC 2637 §4.1).
pub const GRE_PROTOCOL_PPP: u16 = 0x880B;
/// Largest enhanced GRE header (8 + sequence + acknowledgement): the room a caller leaves in
/// front of a PPP frame for [`GreChannel::encapsulate`].
pub const GRE_HEADROOM: usize = 16;
/// Length of an ack-only packet (header with A and no S).
pub const GRE_ACK_ONLY_LEN: usize = 12;

const FLAG_C: u8 = 0x80;
const FLAG_R: u8 = 0x40;
const FLAG_K: u8 = 0x20;
const FLAG_S: u8 = 0x10;
const FLAG_STRICT: u8 = 0x08;
const RECUR_MASK: u8 = 0x07;
const FLAG_A: u8 = 0x80;
const VER_FLAGS_MASK: u8 = 0x78;
const VER_MASK: u8 = 0x07;
const GRE_VERSION: u8 = 1;

/// Errors from [`GreHeader::parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GreError {
    #[error("GRE packet truncated: header needs {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("GRE version {0}, PPTP uses version 1")]
    Version(u8),
    #[error("GRE protocol type {0:#06x}, PPTP uses 0x880b")]
    Protocol(u16),
    #[error("GRE key bit not set")]
    NoKey,
    #[error("GRE flags {0:#04x} {1:#04x}: C, R, s, recursion and reserved flags must be 0")]
    Flags(u8, u8),
    #[error("GRE payload length {declared} but only {available} bytes follow the header")]
    PayloadTruncated { declared: usize, available: usize },
}

/// A parsed enhanced GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreHeader {
    /// The receiver's call id (key low half).
    pub call_id: u16,
    /// Length of the payload after the header (key high half); 0 for ack-only packets.
    pub payload_len: u16,
    pub seq: Option<u32>,
    pub ack: Option<u32>,
}

impl GreHeader {
    /// Parses and checks the header at the start of `buf` (the IP payload). Checks version 1,
    /// protocol 0x880B, K set, C/R/s/recursion/flags clear, and that `payload_len` bytes follow
    /// the header (extra trailing bytes are allowed). Returns the header and its length; the
    /// payload is `buf[hlen..hlen + payload_len]`.
    pub fn parse(buf: &[u8]) -> Result<(GreHeader, usize), GreError> {
        let truncated = |need| GreError::Truncated {
            need,
            have: buf.len(),
        };
        let Some(fixed) = buf.get(..8) else {
            return Err(truncated(8));
        };
        let (b0, b1) = (fixed[0], fixed[1]);
        if b1 & VER_MASK != GRE_VERSION {
            return Err(GreError::Version(b1 & VER_MASK));
        }
        let proto = u16::from_be_bytes([fixed[2], fixed[3]]);
        if proto != GRE_PROTOCOL_PPP {
            return Err(GreError::Protocol(proto));
        }
        if b0 & FLAG_K == 0 {
            return Err(GreError::NoKey);
        }
        if b0 & (FLAG_C | FLAG_R | FLAG_STRICT | RECUR_MASK) != 0 || b1 & VER_FLAGS_MASK != 0 {
            return Err(GreError::Flags(b0, b1));
        }
        let payload_len = u16::from_be_bytes([fixed[4], fixed[5]]);
        let call_id = u16::from_be_bytes([fixed[6], fixed[7]]);
        let mut at = 8;
        let mut word = || -> Result<u32, GreError> {
            let w = buf.get(at..at + 4).ok_or_else(|| truncated(at + 4))?;
            at += 4;
            Ok(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        };
        let seq = if b0 & FLAG_S != 0 {
            Some(word()?)
        } else {
            None
        };
        let ack = if b1 & FLAG_A != 0 {
            Some(word()?)
        } else {
            None
        };
        let available = buf.len() - at;
        if usize::from(payload_len) > available {
            return Err(GreError::PayloadTruncated {
                declared: usize::from(payload_len),
                available,
            });
        }
        Ok((
            GreHeader {
                call_id,
                payload_len,
                seq,
                ack,
            },
            at,
        ))
    }

    /// Header length on the wire: 8, 12 or 16.
    pub fn len(&self) -> usize {
        8 + if self.seq.is_some() { 4 } else { 0 } + if self.ack.is_some() { 4 } else { 0 }
    }

    /// Always false: a header is at least 8 bytes (provided for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header at the start of `out` and returns its length.
    ///
    /// # Panics
    /// If `out` is shorter than [`GreHeader::len`] (a caller bug: size buffers with
    /// [`GRE_HEADROOM`]).
    pub fn emit(&self, out: &mut [u8]) -> usize {
        let len = self.len();
        assert!(out.len() >= len, "GRE header needs {len} bytes");
        out[0] = FLAG_K | if self.seq.is_some() { FLAG_S } else { 0 };
        out[1] = GRE_VERSION | if self.ack.is_some() { FLAG_A } else { 0 };
        out[2..4].copy_from_slice(&GRE_PROTOCOL_PPP.to_be_bytes());
        out[4..6].copy_from_slice(&self.payload_len.to_be_bytes());
        out[6..8].copy_from_slice(&self.call_id.to_be_bytes());
        let mut at = 8;
        for v in [self.seq, self.ack].into_iter().flatten() {
            out[at..at + 4].copy_from_slice(&v.to_be_bytes());
            at += 4;
        }
        at
    }
}

/// Why [`GreChannel::receive`] did not deliver a packet's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Ack-only packet (no sequence number, no payload): its ack was processed.
    AckOnly,
    /// Sequence number equal to the last accepted one.
    Duplicate,
    /// Sequence number older than the last accepted one (reordered or very late).
    Late,
    /// The key's call id is not this channel's local call id.
    WrongCallId,
    /// A payload without a sequence number (RFC 2637 §4.1 requires S with payload).
    NoSequence,
    /// A sequenced packet with an empty payload: sequence accepted, nothing to deliver.
    Empty,
    /// Sequence number more than [`GreConfig::max_seq_jump`] ahead of the last accepted one:
    /// most likely spoofed (GRE has no authentication; one accepted far-ahead packet would make
    /// every genuine packet after it "late"). Accepted only as a run of consecutive numbers.
    OutOfWindow,
}

/// Verdict of [`GreChannel::receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxVerdict {
    /// Hand the payload (`payload_len` bytes after the header) to PPP.
    Deliver,
    Drop(DropReason),
}

/// Acknowledgement timing (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreConfig {
    /// How long an owed ack may wait for a data packet to ride on.
    pub ack_delay: Duration,
    /// Unacknowledged received packets that make an ack due at once.
    pub ack_every: u32,
    /// The largest forward jump of the receive sequence number accepted from one packet.
    /// Beyond it a packet is dropped ([`DropReason::OutOfWindow`]) unless
    /// [`GreConfig::resync_run`] consecutive sequence numbers arrive out there, which is
    /// what a genuine peer after a long outage sends and random spoofing never does.
    pub max_seq_jump: u32,
    /// Consecutive far-ahead sequence numbers that move the window (see `max_seq_jump`).
    pub resync_run: u8,
}

impl Default for GreConfig {
    fn default() -> Self {
        GreConfig {
            ack_delay: Duration::from_millis(100),
            ack_every: 16,
            // Far more than a PPTP peer has in flight (its window is 64 or less) or loses in a
            // burst that the link survives.
            max_seq_jump: 4096,
            resync_run: 4,
        }
    }
}

/// Counters of one call's GRE traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GreStats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_ack_only: u64,
    pub tx_acks_piggybacked: u64,
    /// Data packets sent while the peer's receive window was already full.
    pub tx_beyond_peer_window: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_ack_only: u64,
    pub rx_duplicate: u64,
    pub rx_late: u64,
    /// Sequence numbers skipped over by accepted packets (lost or still in flight).
    pub rx_gaps: u64,
    pub rx_wrong_call_id: u64,
    pub rx_no_sequence: u64,
    pub rx_empty: u64,
    /// Packets too far ahead of the receive window (dropped; see [`GreConfig::max_seq_jump`]).
    pub rx_out_of_window: u64,
    /// Times a run of consecutive far-ahead packets moved the window.
    pub rx_resync: u64,
    /// Acks for sequence numbers we never sent (ignored).
    pub rx_bad_ack: u64,
}

/// One call's GRE sequencing state (RFC 2637 §4.2).
#[derive(Debug, Clone)]
pub struct GreChannel {
    local_call_id: u16,
    peer_call_id: u16,
    peer_recv_window: u16,
    cfg: GreConfig,
    /// Sequence number of the next data packet.
    next_seq: u32,
    /// Sequence number of the first data packet we sent (acks below it are bogus).
    first_seq: u32,
    /// Highest sequence number the peer acknowledged.
    peer_ack: Option<u32>,
    /// Highest sequence number accepted from the peer.
    last_rx: Option<u32>,
    /// A run of consecutive out-of-window sequence numbers: (last of the run, its length).
    far_run: Option<(u32, u8)>,
    /// Last value we put in an acknowledgement field.
    last_acked: Option<u32>,
    /// When the oldest not-yet-acknowledged accepted packet arrived.
    ack_owed_since: Option<Instant>,
    unacked: u32,
    stats: GreStats,
}

/// `a` is newer than `b` in 32-bit serial-number arithmetic.
fn seq_newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl GreChannel {
    /// A channel for a call we know as `local_call_id` (the key of packets we receive) and the
    /// peer knows as `peer_call_id` (the key of packets we send).
    pub fn new(local_call_id: u16, peer_call_id: u16, peer_recv_window: u16) -> Self {
        Self::with_config(
            local_call_id,
            peer_call_id,
            peer_recv_window,
            GreConfig::default(),
        )
    }

    pub fn with_config(
        local_call_id: u16,
        peer_call_id: u16,
        peer_recv_window: u16,
        cfg: GreConfig,
    ) -> Self {
        GreChannel {
            local_call_id,
            peer_call_id,
            peer_recv_window,
            cfg,
            next_seq: 0,
            first_seq: 0,
            peer_ack: None,
            last_rx: None,
            far_run: None,
            last_acked: None,
            ack_owed_since: None,
            unacked: 0,
            stats: GreStats::default(),
        }
    }

    pub fn local_call_id(&self) -> u16 {
        self.local_call_id
    }
    pub fn peer_call_id(&self) -> u16 {
        self.peer_call_id
    }
    /// Sequence number the next data packet will carry.
    pub fn next_send_seq(&self) -> u32 {
        self.next_seq
    }
    /// Highest sequence number accepted from the peer.
    pub fn last_received_seq(&self) -> Option<u32> {
        self.last_rx
    }
    /// Highest of our sequence numbers the peer acknowledged.
    pub fn peer_ack(&self) -> Option<u32> {
        self.peer_ack
    }
    /// Data packets sent and not yet acknowledged by the peer.
    pub fn in_flight(&self) -> u32 {
        let oldest = self.peer_ack.map_or(self.first_seq, |a| a.wrapping_add(1));
        self.next_seq.wrapping_sub(oldest)
    }

    fn ack_owed(&self) -> bool {
        self.last_rx.is_some() && self.last_rx != self.last_acked
    }

    fn take_ack(&mut self) -> Option<u32> {
        if !self.ack_owed() {
            return None;
        }
        self.last_acked = self.last_rx;
        self.ack_owed_since = None;
        self.unacked = 0;
        self.last_rx
    }

    /// Puts the GRE header in front of the PPP frame at `buf[start..start + len]`: key = payload
    /// length and the PEER's call id, the next sequence number, and the owed ack if any.
    /// Returns the packet's `(start, len)` within `buf`.
    ///
    /// # Panics
    /// If `start < GRE_HEADROOM`, `start + len > buf.len()` or `len > 65535` (caller bugs: a PPP
    /// frame is bounded by the negotiated MRU).
    pub fn encapsulate(
        &mut self,
        _now: Instant,
        buf: &mut [u8],
        start: usize,
        len: usize,
    ) -> (usize, usize) {
        assert!(
            start >= GRE_HEADROOM,
            "encapsulate needs GRE_HEADROOM bytes"
        );
        assert!(start + len <= buf.len(), "payload range outside the buffer");
        let payload_len = u16::try_from(len).expect("GRE payload over 65535 bytes");
        if self.in_flight() >= u32::from(self.peer_recv_window) {
            self.stats.tx_beyond_peer_window += 1;
        }
        let ack = self.take_ack();
        if ack.is_some() {
            self.stats.tx_acks_piggybacked += 1;
        }
        let hdr = GreHeader {
            call_id: self.peer_call_id,
            payload_len,
            seq: Some(self.next_seq),
            ack,
        };
        let hlen = hdr.len();
        let new_start = start - hlen;
        hdr.emit(&mut buf[new_start..start]);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += len as u64;
        (new_start, hlen + len)
    }

    /// Processes a header the caller parsed (it needed `call_id` to find this channel):
    /// updates the peer's ack and our receive sequence, and says whether to deliver the payload.
    pub fn receive(&mut self, now: Instant, hdr: &GreHeader) -> RxVerdict {
        if hdr.call_id != self.local_call_id {
            self.stats.rx_wrong_call_id += 1;
            return RxVerdict::Drop(DropReason::WrongCallId);
        }
        if let Some(ack) = hdr.ack {
            self.process_ack(ack);
        }
        let Some(seq) = hdr.seq else {
            if hdr.payload_len == 0 {
                self.stats.rx_ack_only += 1;
                return RxVerdict::Drop(DropReason::AckOnly);
            }
            self.stats.rx_no_sequence += 1;
            return RxVerdict::Drop(DropReason::NoSequence);
        };
        if let Some(last) = self.last_rx {
            if seq == last {
                self.stats.rx_duplicate += 1;
                return RxVerdict::Drop(DropReason::Duplicate);
            }
            if !seq_newer(seq, last) {
                self.stats.rx_late += 1;
                return RxVerdict::Drop(DropReason::Late);
            }
            let jump = seq.wrapping_sub(last);
            if jump > self.cfg.max_seq_jump {
                let run = match self.far_run {
                    Some((prev, n)) if seq == prev.wrapping_add(1) => n.saturating_add(1),
                    _ => 1,
                };
                if run < self.cfg.resync_run.max(1) {
                    self.far_run = Some((seq, run));
                    self.stats.rx_out_of_window += 1;
                    return RxVerdict::Drop(DropReason::OutOfWindow);
                }
                self.stats.rx_resync += 1;
            }
            self.far_run = None;
            self.stats.rx_gaps += u64::from(jump - 1);
        }
        self.last_rx = Some(seq);
        self.unacked = self.unacked.saturating_add(1);
        self.ack_owed_since.get_or_insert(now);
        if hdr.payload_len == 0 {
            self.stats.rx_empty += 1;
            return RxVerdict::Drop(DropReason::Empty);
        }
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += u64::from(hdr.payload_len);
        RxVerdict::Deliver
    }

    fn process_ack(&mut self, ack: u32) {
        // Valid acks lie in [first_seq, next_seq - 1]; anything else acknowledges a packet we
        // never sent.
        let sent = self.next_seq.wrapping_sub(self.first_seq);
        if ack.wrapping_sub(self.first_seq) >= sent {
            self.stats.rx_bad_ack += 1;
            return;
        }
        match self.peer_ack {
            Some(prev) if !seq_newer(ack, prev) => {} // old or repeated ack
            _ => self.peer_ack = Some(ack),
        }
    }

    /// When an ack is owed and no data packet carried it in time: writes an ack-only packet
    /// (12 bytes, A set, no S, no payload) into `out` and returns its length. Returns `None`
    /// when nothing is due or `out` is shorter than [`GRE_ACK_ONLY_LEN`].
    pub fn poll_ack(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        let due = self.poll_timeout()?;
        if now < due || out.len() < GRE_ACK_ONLY_LEN {
            return None;
        }
        let ack = self.take_ack()?;
        let hdr = GreHeader {
            call_id: self.peer_call_id,
            payload_len: 0,
            seq: None,
            ack: Some(ack),
        };
        self.stats.tx_ack_only += 1;
        Some(hdr.emit(out))
    }

    /// When [`GreChannel::poll_ack`] will have an ack-only packet to send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.ack_owed() {
            return None;
        }
        let since = self.ack_owed_since?;
        if self.unacked >= self.cfg.ack_every {
            Some(since)
        } else {
            Some(since + self.cfg.ack_delay)
        }
    }

    pub fn stats(&self) -> &GreStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(call_id: u16, len: u16, seq: Option<u32>, ack: Option<u32>) -> GreHeader {
        GreHeader {
            call_id,
            payload_len: len,
            seq,
            ack,
        }
    }

    #[test]
    fn spoofed_far_ahead_sequence_numbers_do_not_hijack_the_window() {
        let t = Instant::now();
        let mut ch = GreChannel::new(7, 9, 64);
        assert_eq!(
            ch.receive(t, &hdr(7, 10, Some(100), None)),
            RxVerdict::Deliver
        );
        // Random far-ahead numbers (what a flood spoofing the client's address sends):
        // every one dropped, and the genuine stream goes on unharmed.
        let mut x = 0x9e37_79b9u32;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let seq = 100u32.wrapping_add(4097 + x % 0x7fff_0000);
            let v = ch.receive(t, &hdr(7, 10, Some(seq), None));
            assert_eq!(v, RxVerdict::Drop(DropReason::OutOfWindow), "seq {seq}");
        }
        assert_eq!(ch.last_received_seq(), Some(100));
        for seq in 101..110 {
            assert_eq!(
                ch.receive(t, &hdr(7, 10, Some(seq), None)),
                RxVerdict::Deliver
            );
        }
        // A jump within the window (a burst of loss) is accepted at once.
        assert_eq!(
            ch.receive(t, &hdr(7, 10, Some(109 + 4096), None)),
            RxVerdict::Deliver
        );
        assert_eq!(ch.stats().rx_out_of_window, 10_000);
        assert_eq!(ch.stats().rx_resync, 0);
    }

    #[test]
    fn a_genuine_stream_after_a_long_outage_resynchronises() {
        let t = Instant::now();
        let mut ch = GreChannel::new(7, 9, 64);
        assert_eq!(
            ch.receive(t, &hdr(7, 10, Some(5), None)),
            RxVerdict::Deliver
        );
        // The peer went on sending while nothing arrived: 20,000 packets later it is heard
        // again. Three consecutive packets are held back, the fourth moves the window.
        for seq in 20_005..20_008 {
            let v = ch.receive(t, &hdr(7, 10, Some(seq), None));
            assert_eq!(v, RxVerdict::Drop(DropReason::OutOfWindow));
        }
        assert_eq!(
            ch.receive(t, &hdr(7, 10, Some(20_008), None)),
            RxVerdict::Deliver
        );
        assert_eq!(
            ch.receive(t, &hdr(7, 10, Some(20_009), None)),
            RxVerdict::Deliver
        );
        assert_eq!(ch.stats().rx_resync, 1);
        // A broken run starts over.
        assert_eq!(
            ch.receive(t, &hdr(7, 10, Some(50_000), None)),
            RxVerdict::Drop(DropReason::OutOfWindow)
        );
        assert_eq!(
            ch.receive(t, &hdr(7, 10, Some(50_002), None)),
            RxVerdict::Drop(DropReason::OutOfWindow)
        );
        assert_eq!(ch.last_received_seq(), Some(20_009));
    }

    #[test]
    fn header_round_trips_in_all_four_shapes() {
        for (seq, ack, len) in [
            (None, None, 8),
            (Some(7), None, 12),
            (None, Some(0xffff_ffff), 12),
            (Some(1), Some(2), 16),
        ] {
            let h = hdr(0x0191, 0, seq, ack);
            let mut buf = [0u8; 16];
            assert_eq!(h.emit(&mut buf), len);
            assert_eq!(h.len(), len);
            assert_eq!(GreHeader::parse(&buf[..len]), Ok((h, len)));
        }
    }

    #[test]
    fn header_bytes_match_rfc_layout() {
        let h = hdr(0x0191, 0x0018, Some(1), Some(2));
        let mut buf = [0u8; 16 + 0x18];
        h.emit(&mut buf);
        assert_eq!(
            buf[..16],
            [0x30, 0x81, 0x88, 0x0b, 0x00, 0x18, 0x01, 0x91, 0, 0, 0, 1, 0, 0, 0, 2]
        );
        // an ack-only packet puts the ack where the sequence number would be
        let mut b = [0u8; 12];
        hdr(5, 0, None, Some(9)).emit(&mut b);
        assert_eq!(b, [0x20, 0x81, 0x88, 0x0b, 0, 0, 0, 5, 0, 0, 0, 9]);
    }

    #[test]
    fn parse_rejects_bad_headers() {
        let mut good = [0u8; 12];
        hdr(1, 0, Some(1), None).emit(&mut good);
        assert!(GreHeader::parse(&good).is_ok());
        let cases: [(usize, u8, GreError); 7] = [
            (1, 0x00, GreError::Version(0)),
            (3, 0x00, GreError::Protocol(0x8800)),
            (0, 0x10, GreError::NoKey),
            (0, 0xb0, GreError::Flags(0xb0, 0x01)),
            (0, 0x31, GreError::Flags(0x31, 0x01)),
            (0, 0x38, GreError::Flags(0x38, 0x01)),
            (1, 0x09, GreError::Flags(0x30, 0x09)),
        ];
        for (at, v, err) in cases {
            let mut b = good;
            b[at] = v;
            assert_eq!(GreHeader::parse(&b), Err(err), "byte {at} = {v:#x}");
        }
        assert_eq!(
            GreHeader::parse(&good[..10]),
            Err(GreError::Truncated { need: 12, have: 10 })
        );
        assert_eq!(
            GreHeader::parse(&good[..3]),
            Err(GreError::Truncated { need: 8, have: 3 })
        );
        let mut b = [0u8; 14];
        hdr(1, 3, Some(1), None).emit(&mut b);
        assert_eq!(
            GreHeader::parse(&b),
            Err(GreError::PayloadTruncated {
                declared: 3,
                available: 2
            })
        );
        // trailing bytes beyond the payload are tolerated
        let mut b = [0u8; 20];
        hdr(1, 3, Some(1), None).emit(&mut b);
        assert_eq!(GreHeader::parse(&b).map(|(_, l)| l), Ok(12));
    }

    #[test]
    fn parse_never_panics_on_short_or_random_input() {
        let mut x: u32 = 12345;
        for n in 0..2000usize {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let len = n % 24;
            let mut b: Vec<u8> = (0..len).map(|i| (x >> (i % 24)) as u8 ^ i as u8).collect();
            if len >= 4 && n % 2 == 0 {
                b[0] = 0x30;
                b[1] = 0x81;
                b[2] = 0x88;
                b[3] = 0x0b;
            }
            let _ = GreHeader::parse(&b);
        }
    }

    #[test]
    fn encapsulate_writes_header_in_front() {
        let t0 = Instant::now();
        let mut ch = GreChannel::new(0x0191, 0x0000, 3);
        let mut buf = vec![0u8; GRE_HEADROOM + 4];
        buf[GRE_HEADROOM..].copy_from_slice(&[0xc0, 0x21, 1, 2]);
        let (s, l) = ch.encapsulate(t0, &mut buf, GRE_HEADROOM, 4);
        assert_eq!((s, l), (4, 16));
        let (h, hl) = GreHeader::parse(&buf[s..s + l]).expect("valid");
        assert_eq!(h, hdr(0x0000, 4, Some(0), None));
        assert_eq!(&buf[s + hl..s + l], &[0xc0, 0x21, 1, 2]);
        // after receiving a packet, the next data packet carries the ack
        assert_eq!(
            ch.receive(t0, &hdr(0x0191, 10, Some(77), None)),
            RxVerdict::Deliver
        );
        let (s, l) = ch.encapsulate(t0, &mut buf, GRE_HEADROOM, 4);
        assert_eq!((s, l), (0, 20));
        let (h, _) = GreHeader::parse(&buf[s..s + l]).expect("valid");
        assert_eq!(h, hdr(0x0000, 4, Some(1), Some(77)));
        assert_eq!(ch.poll_timeout(), None, "ack was piggybacked");
        assert_eq!(ch.stats().tx_acks_piggybacked, 1);
    }

    #[test]
    fn receive_accepts_newer_drops_duplicates_and_late() {
        let t0 = Instant::now();
        let mut ch = GreChannel::new(1, 2, 64);
        let rx = |ch: &mut GreChannel, seq| ch.receive(t0, &hdr(1, 5, Some(seq), None));
        assert_eq!(rx(&mut ch, 10), RxVerdict::Deliver); // first packet: any number
        assert_eq!(rx(&mut ch, 11), RxVerdict::Deliver);
        assert_eq!(rx(&mut ch, 11), RxVerdict::Drop(DropReason::Duplicate));
        assert_eq!(rx(&mut ch, 14), RxVerdict::Deliver); // 12, 13 lost
        assert_eq!(rx(&mut ch, 12), RxVerdict::Drop(DropReason::Late));
        assert_eq!(rx(&mut ch, 15), RxVerdict::Deliver);
        let s = ch.stats();
        assert_eq!(
            (
                s.rx_packets,
                s.rx_duplicate,
                s.rx_late,
                s.rx_gaps,
                s.rx_bytes
            ),
            (4, 1, 1, 2, 20)
        );
        assert_eq!(ch.last_received_seq(), Some(15));
        assert_eq!(
            ch.receive(t0, &hdr(9, 5, Some(16), None)),
            RxVerdict::Drop(DropReason::WrongCallId)
        );
        assert_eq!(
            ch.receive(t0, &hdr(1, 5, None, None)),
            RxVerdict::Drop(DropReason::NoSequence)
        );
        assert_eq!(
            ch.receive(t0, &hdr(1, 0, Some(16), None)),
            RxVerdict::Drop(DropReason::Empty)
        );
        assert_eq!(ch.last_received_seq(), Some(16));
    }

    #[test]
    fn receive_sequence_wraps_at_2_pow_32() {
        let t0 = Instant::now();
        let mut ch = GreChannel::new(1, 2, 64);
        let rx = |ch: &mut GreChannel, seq| ch.receive(t0, &hdr(1, 1, Some(seq), None));
        assert_eq!(rx(&mut ch, u32::MAX - 1), RxVerdict::Deliver);
        assert_eq!(rx(&mut ch, u32::MAX), RxVerdict::Deliver);
        assert_eq!(rx(&mut ch, 0), RxVerdict::Deliver);
        assert_eq!(rx(&mut ch, 1), RxVerdict::Deliver);
        assert_eq!(rx(&mut ch, u32::MAX), RxVerdict::Drop(DropReason::Late));
        assert_eq!(rx(&mut ch, 1), RxVerdict::Drop(DropReason::Duplicate));
        // half the sequence space ahead counts as behind
        assert_eq!(
            rx(&mut ch, 1 + 0x8000_0000),
            RxVerdict::Drop(DropReason::Late)
        );
        // just under half ahead is "newer" in serial arithmetic, but far out of the window
        assert_eq!(
            rx(&mut ch, 0x8000_0000),
            RxVerdict::Drop(DropReason::OutOfWindow)
        );
        // with the window opened all the way, serial arithmetic alone decides
        let wide = GreConfig {
            max_seq_jump: u32::MAX,
            ..GreConfig::default()
        };
        let mut ch = GreChannel::with_config(1, 2, 64, wide);
        assert_eq!(rx(&mut ch, 1), RxVerdict::Deliver);
        assert_eq!(rx(&mut ch, 0x8000_0000), RxVerdict::Deliver);
    }

    #[test]
    fn send_sequence_wraps_and_peer_ack_follows() {
        let t0 = Instant::now();
        let mut ch = GreChannel::new(1, 2, 64);
        ch.next_seq = u32::MAX - 1;
        ch.first_seq = u32::MAX - 1;
        let mut buf = [0u8; 32];
        let mut seqs = Vec::new();
        for _ in 0..4 {
            let (s, l) = ch.encapsulate(t0, &mut buf, GRE_HEADROOM, 0);
            seqs.push(GreHeader::parse(&buf[s..s + l]).expect("ok").0.seq);
        }
        assert_eq!(seqs, [Some(u32::MAX - 1), Some(u32::MAX), Some(0), Some(1)]);
        assert_eq!(ch.in_flight(), 4);
        ch.receive(t0, &hdr(1, 0, None, Some(0)));
        assert_eq!(ch.peer_ack(), Some(0));
        assert_eq!(ch.in_flight(), 1);
        ch.receive(t0, &hdr(1, 0, None, Some(u32::MAX))); // older ack: ignored
        assert_eq!(ch.peer_ack(), Some(0));
        ch.receive(t0, &hdr(1, 0, None, Some(2))); // never sent
        assert_eq!(ch.peer_ack(), Some(0));
        assert_eq!(ch.stats().rx_bad_ack, 1);
        assert_eq!(ch.stats().rx_ack_only, 3);
    }

    #[test]
    fn ack_before_anything_sent_is_bad() {
        let mut ch = GreChannel::new(1, 2, 64);
        let v = ch.receive(Instant::now(), &hdr(1, 0, None, Some(0)));
        assert_eq!(v, RxVerdict::Drop(DropReason::AckOnly));
        assert_eq!(ch.peer_ack(), None);
        assert_eq!(ch.stats().rx_bad_ack, 1);
    }

    #[test]
    fn window_overrun_is_counted_not_blocking() {
        let t0 = Instant::now();
        let mut ch = GreChannel::new(1, 2, 2);
        let mut buf = [0u8; 32];
        for _ in 0..4 {
            ch.encapsulate(t0, &mut buf, GRE_HEADROOM, 1);
        }
        assert_eq!(ch.stats().tx_packets, 4);
        assert_eq!(ch.stats().tx_beyond_peer_window, 2);
        ch.receive(t0, &hdr(1, 0, None, Some(3)));
        ch.encapsulate(t0, &mut buf, GRE_HEADROOM, 1);
        assert_eq!(ch.stats().tx_beyond_peer_window, 2);
    }

    #[test]
    fn ack_only_after_delay_when_no_data_goes_out() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut ch = GreChannel::new(1, 0x0191, 64);
        let mut out = [0u8; 16];
        assert_eq!(ch.poll_timeout(), None);
        assert_eq!(ch.poll_ack(t0, &mut out), None);
        ch.receive(t0, &hdr(1, 5, Some(3), None));
        ch.receive(t0 + ms(40), &hdr(1, 5, Some(4), None));
        // due 100 ms after the FIRST unacknowledged packet
        assert_eq!(ch.poll_timeout(), Some(t0 + ms(100)));
        assert_eq!(ch.poll_ack(t0 + ms(99), &mut out), None);
        assert_eq!(
            ch.poll_ack(t0 + ms(100), &mut out[..11]),
            None,
            "short buffer"
        );
        assert_eq!(ch.poll_ack(t0 + ms(100), &mut out), Some(12));
        assert_eq!(
            GreHeader::parse(&out[..12]),
            Ok((hdr(0x0191, 0, None, Some(4)), 12))
        );
        assert_eq!(ch.poll_timeout(), None);
        assert_eq!(ch.poll_ack(t0 + ms(500), &mut out), None, "nothing owed");
        // a duplicate does not create a new ack obligation
        ch.receive(t0 + ms(600), &hdr(1, 5, Some(4), None));
        assert_eq!(ch.poll_timeout(), None);
        assert_eq!(ch.stats().tx_ack_only, 1);
    }

    #[test]
    fn ack_due_at_once_after_ack_every_packets() {
        let t0 = Instant::now();
        let cfg = GreConfig {
            ack_delay: Duration::from_millis(100),
            ack_every: 3,
            ..GreConfig::default()
        };
        let mut ch = GreChannel::with_config(1, 2, 64, cfg);
        let t1 = t0 + Duration::from_millis(10);
        ch.receive(t0, &hdr(1, 5, Some(0), None));
        ch.receive(t1, &hdr(1, 5, Some(1), None));
        assert_eq!(ch.poll_timeout(), Some(t0 + Duration::from_millis(100)));
        ch.receive(t1, &hdr(1, 5, Some(2), None));
        assert_eq!(ch.poll_timeout(), Some(t0));
        let mut out = [0u8; 12];
        assert_eq!(ch.poll_ack(t1, &mut out), Some(12));
    }
}
