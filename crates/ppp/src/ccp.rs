//! The Compression Control Protocol (RFC 1962) carrying only MPPE (RFC 3078 §2, option 18).
//!
//! - Our Configure-Request offers every key length the policy allows plus H (stateless),
//!   like pppd with `require-mppe-128` (S+H) or `require-mppe` (S+L+H). CCP options describe
//!   what the sender will *receive* (RFC 1962 §1): what the peer acks of our request governs
//!   the peer → us direction, what we ack of the peer's request governs us → peer.
//! - The peer's request is Nak'ed down to exactly one key length (the strongest both allow)
//!   and one mode (H unless stateful is allowed and asked for); reserved, C (MPPC) and D bits
//!   are Nak'ed away (RFC 3078 §2). When MPPE is required and the peer's request has no
//!   option 18, we Nak suggesting it (RFC 1661 §5.3).
//! - Every other option (Predictor 1/2, BSD-Compress 21, Deflate 26 and draft 24, MPPC-only,
//!   unknown) is Configure-Rejected: MPPE is the only "compression" we do.
//! - Reset-Request (14) / Reset-Ack (15) (RFC 1962 §2.1-§2.2) are extension codes handled by
//!   the session (stateful MPPE resynchronisation, RFC 3078 §8.2).
//!
//! Choices: a peer Nak proposing stateful mode when stateful is not allowed, or only key
//! lengths we do not allow, ends MPPE negotiation (pppd: "MPPE required but peer negotiation
//! failed"); when MPPE is required the session then terminates LCP. Stateful mode is off by
//! default, as in pppd (`mppe-stateful` enables it): it breaks on every lost packet.

use crate::frame::{push_option, Code, RawOption};
use crate::fsm::{ConfigProtocol, Fsm, FsmPolicy, NegotiationFailure, ReplyBuilder};
use crate::mppe::{KeyLength, MppeBits};

/// CCP option 18 (RFC 3078 §2).
pub const OPTION_MPPE: u8 = crate::mppe::CCP_OPTION;

/// MPPE settings (pppd option names in brackets). `Default` = pppd's defaults: MPPE allowed
/// with 40- and 128-bit keys, not required, stateless only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MppePolicy {
    /// Terminate the link unless MPPE is negotiated \[require-mppe, require-mppe-128\].
    pub required: bool,
    /// \[require-mppe-40 / nomppe-40\]
    pub allow_40: bool,
    /// 56-bit keys (Windows supports them; pppd does not).
    pub allow_56: bool,
    /// \[require-mppe-128 / nomppe-128\]
    pub allow_128: bool,
    /// Accept stateful mode when the peer insists \[mppe-stateful\].
    pub allow_stateful: bool,
}

impl Default for MppePolicy {
    fn default() -> Self {
        MppePolicy {
            required: false,
            allow_40: true,
            allow_56: false,
            allow_128: true,
            allow_stateful: false,
        }
    }
}

impl MppePolicy {
    /// The key-length bits we allow.
    pub fn allowed_bits(&self) -> u32 {
        let mut b = 0;
        if self.allow_40 {
            b |= MppeBits::L;
        }
        if self.allow_56 {
            b |= MppeBits::M;
        }
        if self.allow_128 {
            b |= MppeBits::S;
        }
        b
    }

    /// Any key length allowed at all.
    pub fn any_allowed(&self) -> bool {
        self.allowed_bits() != 0
    }
}

/// The MPPE mode both directions agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MppeMode {
    pub key_length: KeyLength,
    pub stateless: bool,
}

impl MppeMode {
    /// The one mode described by option bits with exactly one key length.
    pub fn from_bits(bits: MppeBits) -> Option<MppeMode> {
        if bits.key_length_count() != 1 {
            return None;
        }
        Some(MppeMode {
            key_length: bits.strongest()?,
            stateless: bits.stateless(),
        })
    }

    pub fn bits(self) -> MppeBits {
        MppeBits::new(self.key_length, self.stateless)
    }
}

fn strongest_of(bits: u32) -> Option<KeyLength> {
    MppeBits(bits).strongest()
}

/// CCP's option knowledge.
#[derive(Debug, Clone)]
pub struct CcpOptions {
    policy: MppePolicy,
    /// What we request now (`None`: the peer rejected MPPE, or we gave up).
    req: Option<MppeBits>,
    /// What the peer acked of our request: the peer → us direction.
    acked: Option<MppeBits>,
    /// What the peer requested in its last request: the us → peer direction once acked.
    his: Option<MppeBits>,
}

impl CcpOptions {
    pub fn new(policy: MppePolicy) -> Self {
        let mut o = CcpOptions {
            policy,
            req: None,
            acked: None,
            his: None,
        };
        o.reset();
        o
    }

    fn initial_request(&self) -> Option<MppeBits> {
        let keys = self.policy.allowed_bits();
        (keys != 0).then_some(MppeBits(keys | MppeBits::H))
    }

    /// Receive direction (peer → us), as acked.
    pub fn receive_bits(&self) -> Option<MppeBits> {
        self.acked
    }

    /// Send direction (us → peer), as the peer requested and we acked.
    pub fn send_bits(&self) -> Option<MppeBits> {
        self.his
    }

    /// The agreed mode, when both directions carry MPPE with the same single key length and
    /// the same H bit; `Err` describes a mismatch; `Ok(None)` means no MPPE either way.
    pub fn agreed_mode(&self) -> Result<Option<MppeMode>, &'static str> {
        match (self.acked, self.his) {
            (None, None) => Ok(None),
            (Some(a), Some(b)) => match (MppeMode::from_bits(a), MppeMode::from_bits(b)) {
                (Some(x), Some(y)) if x == y => Ok(Some(x)),
                _ => Err("MPPE directions disagree"),
            },
            _ => Err("MPPE negotiated in one direction only"),
        }
    }

    /// What we Nak the peer's MPPE bits to, or `None` if they are acceptable as they are.
    fn judge(&self, bits: MppeBits) -> Option<MppeBits> {
        let allowed = self.policy.allowed_bits();
        let offered = bits.0 & (MppeBits::L | MppeBits::M | MppeBits::S);
        let mut nak = false;
        // Reserved, C and D bits: Nak them away.
        if bits.0 & !(MppeBits::L | MppeBits::M | MppeBits::S | MppeBits::H) != 0 {
            nak = true;
        }
        let mut stateless = bits.stateless();
        if !stateless && !self.policy.allow_stateful {
            stateless = true;
            nak = true;
        }
        // Prefer the length the other direction already settled on, so both agree.
        let settled = self
            .acked
            .and_then(MppeMode::from_bits)
            .map(|m| m.key_length.bit());
        let key = match settled {
            Some(k) if allowed & k != 0 => Some(k),
            _ => strongest_of(offered & allowed)
                .or_else(|| strongest_of(allowed))
                .map(KeyLength::bit),
        };
        let key = key?;
        if offered != key {
            nak = true;
        }
        if let Some(m) = self.acked.and_then(MppeMode::from_bits) {
            if m.stateless != stateless && (stateless || self.policy.allow_stateful) {
                stateless = m.stateless;
                nak = true;
            }
        }
        let h = if stateless { MppeBits::H } else { 0 };
        nak.then_some(MppeBits(key | h))
    }
}

impl ConfigProtocol for CcpOptions {
    fn reset(&mut self) {
        self.req = self.initial_request();
        self.acked = None;
        // `his` belongs to the peer's request, judged in check_request (see LcpOptions).
    }

    fn build_request(&mut self, out: &mut Vec<u8>) {
        if let Some(b) = self.req {
            push_option(out, OPTION_MPPE, &b.to_bytes());
        }
    }

    fn check_request(&mut self, options: &[RawOption<'_>], reply: &mut ReplyBuilder) {
        self.his = None;
        let mut saw_mppe = false;
        for raw in options {
            if raw.kind != OPTION_MPPE || !self.policy.any_allowed() {
                reply.reject(raw);
                continue;
            }
            let Ok(bits) = MppeBits::parse(raw.data) else {
                reply.reject(raw);
                continue;
            };
            saw_mppe = true;
            match self.judge(bits) {
                Some(suggest) => reply.nak(raw, &suggest.to_bytes()),
                None => self.his = Some(bits),
            }
        }
        if !saw_mppe && self.policy.required {
            if let Some(b) = self.initial_request() {
                reply.nak_missing(OPTION_MPPE, &b.to_bytes());
            }
        }
    }

    fn ack_received(&mut self, options: &[RawOption<'_>]) {
        self.acked = options
            .iter()
            .find(|o| o.kind == OPTION_MPPE)
            .and_then(|o| MppeBits::parse(o.data).ok());
    }

    fn nak_received(
        &mut self,
        options: &[RawOption<'_>],
        treat_as_reject: bool,
    ) -> Result<(), NegotiationFailure> {
        let Some(raw) = options.iter().find(|o| o.kind == OPTION_MPPE) else {
            return Ok(());
        };
        if self.req.is_none() {
            return Ok(()); // We did not ask; a suggestion we do not take.
        }
        let fail = || NegotiationFailure("MPPE required but peer negotiation failed".into());
        let Ok(bits) = MppeBits::parse(raw.data) else {
            return Err(fail());
        };
        let keys = bits.0 & self.policy.allowed_bits();
        let stateful_refused = !bits.stateless() && !self.policy.allow_stateful;
        if treat_as_reject || stateful_refused || keys == 0 {
            // pppd: the peer proposes something we did not offer.
            self.req = None;
            return Err(fail());
        }
        let key = strongest_of(keys).map(KeyLength::bit).unwrap_or(keys);
        let h = if bits.stateless() { MppeBits::H } else { 0 };
        self.req = Some(MppeBits(key | h));
        Ok(())
    }

    fn reject_received(&mut self, options: &[RawOption<'_>]) -> Result<(), NegotiationFailure> {
        if options.iter().any(|o| o.kind == OPTION_MPPE) {
            self.req = None;
            if self.policy.required {
                return Err(NegotiationFailure("MPPE required but peer refused".into()));
            }
        }
        Ok(())
    }

    fn extension_code(&self, code: Code) -> bool {
        matches!(code, Code::ResetRequest | Code::ResetAck)
    }
}

/// CCP: the automaton and the MPPE option.
#[derive(Debug, Clone)]
pub struct Ccp {
    pub fsm: Fsm,
    pub options: CcpOptions,
}

impl Ccp {
    pub fn new(policy: MppePolicy, fsm: FsmPolicy) -> Ccp {
        Ccp {
            fsm: Fsm::new(fsm),
            options: CcpOptions::new(policy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{emit_control, ControlPacket};
    use crate::fsm::{FsmOutput, Input, State};
    use std::time::Instant;

    fn sends(out: &[FsmOutput]) -> Vec<Vec<u8>> {
        out.iter()
            .filter_map(|o| match o {
                FsmOutput::Send(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    fn started(policy: MppePolicy) -> (Ccp, Vec<Vec<u8>>) {
        let t0 = Instant::now();
        let mut c = Ccp::new(policy, FsmPolicy::default());
        c.fsm.open(t0, &mut c.options);
        c.fsm.up(t0, &mut c.options);
        let out = sends(&c.fsm.drain());
        (c, out)
    }

    fn feed(c: &mut Ccp, bytes: &[u8]) -> Vec<FsmOutput> {
        let r = c.fsm.input(
            Instant::now(),
            &mut c.options,
            ControlPacket::parse(bytes).unwrap(),
        );
        assert!(!matches!(r, Input::Discarded(_)), "{r:?}");
        c.fsm.drain()
    }

    const REQUIRE_128: MppePolicy = MppePolicy {
        required: true,
        allow_40: false,
        allow_56: false,
        allow_128: true,
        allow_stateful: false,
    };

    #[test]
    fn request_matches_reference() {
        // pppd's CCP request in the reference capture: 01 01 00 0a 12 06 01 00 00 40.
        let (_, out) = started(REQUIRE_128);
        assert_eq!(
            out,
            vec![vec![
                0x01, 0x01, 0x00, 0x0a, 0x12, 0x06, 0x01, 0x00, 0x00, 0x40
            ]]
        );
        let (_, out) = started(MppePolicy::default());
        assert_eq!(&out[0][6..10], &[0x01, 0x00, 0x00, 0x60]);
    }

    #[test]
    fn reference_exchange_opens_with_128_stateless() {
        let (mut c, _) = started(REQUIRE_128);
        // The client's request and its Ack of ours, as in the capture.
        let out = feed(
            &mut c,
            &[0x01, 0x01, 0x00, 0x0a, 0x12, 0x06, 0x01, 0x00, 0x00, 0x40],
        );
        assert_eq!(
            sends(&out),
            vec![vec![
                0x02, 0x01, 0x00, 0x0a, 0x12, 0x06, 0x01, 0x00, 0x00, 0x40
            ]]
        );
        let out = feed(
            &mut c,
            &[0x02, 0x01, 0x00, 0x0a, 0x12, 0x06, 0x01, 0x00, 0x00, 0x40],
        );
        assert!(out.contains(&FsmOutput::Up));
        assert_eq!(
            c.options.agreed_mode(),
            Ok(Some(MppeMode {
                key_length: KeyLength::Bits128,
                stateless: true
            }))
        );
    }

    #[test]
    fn peer_offering_everything_is_naked_to_one_length_and_stateless() {
        let (mut c, _) = started(MppePolicy {
            allow_56: true,
            ..MppePolicy::default()
        });
        // Windows-style: S+M+L, no H (stateful), plus the obsolete D bit.
        let req = emit_control(
            Code::ConfigureRequest,
            5,
            &[0x12, 0x06, 0x00, 0x00, 0x00, 0xf0],
        );
        let out = feed(&mut c, &req);
        assert_eq!(
            sends(&out),
            vec![emit_control(
                Code::ConfigureNak,
                5,
                &[0x12, 0x06, 0x01, 0x00, 0x00, 0x40]
            )]
        );
        // Stateful allowed: the H bit is left alone.
        let (mut c, _) = started(MppePolicy {
            allow_stateful: true,
            ..MppePolicy::default()
        });
        let req = emit_control(
            Code::ConfigureRequest,
            6,
            &[0x12, 0x06, 0x00, 0x00, 0x00, 0x60],
        );
        let out = feed(&mut c, &req);
        assert_eq!(
            sends(&out),
            vec![emit_control(
                Code::ConfigureNak,
                6,
                &[0x12, 0x06, 0x00, 0x00, 0x00, 0x40]
            )]
        );
        // A length we do not allow: Nak to ours.
        let (mut c, _) = started(REQUIRE_128);
        let req = emit_control(
            Code::ConfigureRequest,
            7,
            &[0x12, 0x06, 0x01, 0x00, 0x00, 0x20],
        );
        let out = feed(&mut c, &req);
        assert_eq!(
            sends(&out),
            vec![emit_control(
                Code::ConfigureNak,
                7,
                &[0x12, 0x06, 0x01, 0x00, 0x00, 0x40]
            )]
        );
    }

    #[test]
    fn other_compression_is_rejected() {
        let (mut c, _) = started(REQUIRE_128);
        // The chap-md5 capture's client request: Deflate 26, Deflate draft 24, BSD 21.
        let req = [
            0x01, 0x01, 0x00, 0x0f, 0x1a, 0x04, 0x78, 0x00, 0x18, 0x04, 0x78, 0x00, 0x15, 0x03,
            0x2f,
        ];
        let out = feed(&mut c, &req);
        assert_eq!(
            sends(&out),
            vec![vec![
                0x04, 0x01, 0x00, 0x0f, 0x1a, 0x04, 0x78, 0x00, 0x18, 0x04, 0x78, 0x00, 0x15, 0x03,
                0x2f
            ]]
        );
        // Then an empty request while MPPE is required: Nak suggesting MPPE.
        let out = feed(&mut c, &[0x01, 0x02, 0x00, 0x04]);
        assert_eq!(
            sends(&out),
            vec![vec![
                0x03, 0x02, 0x00, 0x0a, 0x12, 0x06, 0x01, 0x00, 0x00, 0x40
            ]]
        );
        // Not required: an empty request is acked.
        let (mut c, _) = started(MppePolicy::default());
        let out = feed(&mut c, &[0x01, 0x02, 0x00, 0x04]);
        assert_eq!(sends(&out), vec![vec![0x02, 0x02, 0x00, 0x04]]);
    }

    #[test]
    fn naks_of_our_request() {
        // We offer 40+128; the peer Naks to 40 only: we request 40.
        let (mut c, _) = started(MppePolicy::default());
        let id = c.fsm.request_id();
        let out = feed(
            &mut c,
            &emit_control(
                Code::ConfigureNak,
                id,
                &[0x12, 0x06, 0x01, 0x00, 0x00, 0x20],
            ),
        );
        assert_eq!(&sends(&out)[0][4..], &[0x12, 0x06, 0x01, 0x00, 0x00, 0x20]);
        // The peer proposes stateful, which we refuse: negotiation fails.
        let (mut c, _) = started(REQUIRE_128);
        let id = c.fsm.request_id();
        let out = feed(
            &mut c,
            &emit_control(
                Code::ConfigureNak,
                id,
                &[0x12, 0x06, 0x00, 0x00, 0x00, 0x40],
            ),
        );
        assert!(matches!(&out[0], FsmOutput::Failed(r) if r.contains("MPPE")));
        assert_eq!(c.fsm.state(), State::Closing);
        // The peer rejects MPPE while it is required: failure.
        let (mut c, _) = started(REQUIRE_128);
        let id = c.fsm.request_id();
        let out = feed(
            &mut c,
            &emit_control(
                Code::ConfigureReject,
                id,
                &[0x12, 0x06, 0x01, 0x00, 0x00, 0x40],
            ),
        );
        assert!(matches!(&out[0], FsmOutput::Failed(r) if r.contains("refused")));
    }

    #[test]
    fn stateful_is_agreed_when_allowed_and_the_peer_insists() {
        let policy = MppePolicy {
            allow_stateful: true,
            ..REQUIRE_128
        };
        let (mut c, _) = started(policy);
        // The peer Naks our S+H down to S (stateful): accepted, we ask for S.
        let id = c.fsm.request_id();
        let out = feed(
            &mut c,
            &emit_control(
                Code::ConfigureNak,
                id,
                &[0x12, 0x06, 0x00, 0x00, 0x00, 0x40],
            ),
        );
        assert_eq!(&sends(&out)[0][4..], &[0x12, 0x06, 0x00, 0x00, 0x00, 0x40]);
        let id = c.fsm.request_id();
        feed(
            &mut c,
            &emit_control(
                Code::ConfigureAck,
                id,
                &[0x12, 0x06, 0x00, 0x00, 0x00, 0x40],
            ),
        );
        // Its own stateful request is acked as is.
        let out = feed(
            &mut c,
            &emit_control(
                Code::ConfigureRequest,
                9,
                &[0x12, 0x06, 0x00, 0x00, 0x00, 0x40],
            ),
        );
        assert_eq!(
            sends(&out),
            vec![emit_control(
                Code::ConfigureAck,
                9,
                &[0x12, 0x06, 0x00, 0x00, 0x00, 0x40]
            )]
        );
        assert!(out.contains(&FsmOutput::Up));
        assert_eq!(
            c.options.agreed_mode(),
            Ok(Some(MppeMode {
                key_length: KeyLength::Bits128,
                stateless: false
            }))
        );
        // Without allow_stateful the same Nak ends MPPE.
        let (mut c, _) = started(REQUIRE_128);
        let id = c.fsm.request_id();
        let out = feed(
            &mut c,
            &emit_control(
                Code::ConfigureNak,
                id,
                &[0x12, 0x06, 0x00, 0x00, 0x00, 0x40],
            ),
        );
        assert!(matches!(&out[0], FsmOutput::Failed(_)));
    }

    #[test]
    fn directions_must_agree() {
        let mut o = CcpOptions::new(MppePolicy::default());
        o.acked = Some(MppeBits(MppeBits::S | MppeBits::H));
        o.his = Some(MppeBits(MppeBits::L | MppeBits::H));
        assert!(o.agreed_mode().is_err());
        o.his = None;
        assert!(o.agreed_mode().is_err());
        o.acked = None;
        assert_eq!(o.agreed_mode(), Ok(None));
        // Having settled on 128 one way, we Nak the other way to 128 too.
        o.acked = Some(MppeBits(MppeBits::S | MppeBits::H));
        assert_eq!(
            o.judge(MppeBits(MppeBits::L | MppeBits::H)),
            Some(MppeBits(MppeBits::S | MppeBits::H))
        );
        assert_eq!(o.judge(MppeBits(MppeBits::S | MppeBits::H)), None);
    }
}
