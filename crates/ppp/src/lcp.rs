//! The Link Control Protocol (RFC 1661 §5-§6) on top of the shared automaton.
//!
//! Options (RFC 1661 §6, RFC 1662 §7.1 for ACCM, RFC 1994 §3 / RFC 2433 / RFC 2759 for the CHAP
//! algorithms): MRU (1), ACCM (2), Authentication-Protocol (3), Magic-Number (5), PFC (7),
//! ACFC (8). Everything else (Quality-Protocol 4, Callback 13 which Windows asks for,
//! multilink MRRU 17 / short sequence 18 / endpoint discriminator 19, and unknown types) is
//! Configure-Rejected; malformed known options too (as pppd does).
//!
//! Extension codes (RFC 1661 §5.7-§5.9, RFC 1570 §2-§3): Protocol-Reject, Echo-Request/Reply,
//! Discard-Request, and Identification (12) / Time-Remaining (13), which Windows sends and
//! which are accepted and ignored silently, as pppd does.
//!
//! Keepalive (pppd `lcp-echo-interval` / `lcp-echo-failure`): the first Echo-Request goes out
//! when LCP opens, then one per interval; when an Echo-Request is due and `echo_failure`
//! requests are still unanswered, the peer is declared dead. Any Echo-Reply clears the count.
//!
//! Choices the RFC leaves open:
//! - We request MRU only when ours differs from 1500, and ACCM 0 like pppd (meaningless over
//!   GRE, but what pppd and Windows expect to see); PFC and ACFC are requested and, when the
//!   policy allows them, acked.
//! - The server never authenticates itself to the client: an Authentication-Protocol option
//!   in the client's request is rejected (pppd does the same without secrets for that).
//! - A Nak of our Authentication-Protocol switches to the suggested method if our policy
//!   allows it, else to the next allowed method; a Reject, or running out of methods, ends
//!   LCP ("peer refused to authenticate", as pppd).
//! - Magic-Number loop detection (§6.4): a request carrying our own magic is Nak'ed with a
//!   fresh random value and we pick a new one ourselves; after `LOOPBACK_LIMIT` (10, pppd's
//!   `lcp-loopbackfail` default) such events the link is declared looped back.
//! - Received MRU below 128 is Nak'ed to 128 (pppd's MINMRU).

use std::time::{Duration, Instant};

use crate::auth::AuthMethod;
use crate::frame::{push_option, Code, ControlPacket, HeaderCompression, Protocol, RawOption};
use crate::fsm::{ConfigProtocol, Fsm, FsmPolicy, Input, NegotiationFailure, ReplyBuilder};

/// LCP option types (RFC 1661 §6 and the IANA registry).
pub mod kind {
    pub const MRU: u8 = 1;
    pub const ACCM: u8 = 2;
    pub const AUTH_PROTOCOL: u8 = 3;
    pub const QUALITY_PROTOCOL: u8 = 4;
    pub const MAGIC_NUMBER: u8 = 5;
    pub const PFC: u8 = 7;
    pub const ACFC: u8 = 8;
    pub const CALLBACK: u8 = 13;
    pub const MRRU: u8 = 17;
    pub const SHORT_SEQUENCE: u8 = 18;
    pub const ENDPOINT_DISCRIMINATOR: u8 = 19;
}

/// The default MRU (RFC 1661 §6.1).
pub const DEFAULT_MRU: u16 = 1500;
/// Smallest MRU we accept from a peer (pppd's MINMRU).
pub const MIN_MRU: u16 = 128;
/// Magic-number collisions before the link is declared looped back (pppd lcp-loopbackfail).
pub const LOOPBACK_LIMIT: u32 = 10;

/// One LCP option, parsed. Malformed known options come out as [`LcpOption::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LcpOption<'a> {
    Mru(u16),
    Accm(u32),
    AuthProtocol {
        protocol: u16,
        data: &'a [u8],
    },
    MagicNumber(u32),
    Pfc,
    Acfc,
    /// A known type with a wrong length.
    Invalid {
        kind: u8,
        data: &'a [u8],
    },
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

impl<'a> LcpOption<'a> {
    pub fn parse(raw: &RawOption<'a>) -> LcpOption<'a> {
        let d = raw.data;
        let invalid = LcpOption::Invalid {
            kind: raw.kind,
            data: d,
        };
        match raw.kind {
            kind::MRU => match d {
                [a, b] => LcpOption::Mru(u16::from_be_bytes([*a, *b])),
                _ => invalid,
            },
            kind::ACCM => match d {
                [a, b, c, e] => LcpOption::Accm(u32::from_be_bytes([*a, *b, *c, *e])),
                _ => invalid,
            },
            kind::AUTH_PROTOCOL => match d {
                [a, b, rest @ ..] => LcpOption::AuthProtocol {
                    protocol: u16::from_be_bytes([*a, *b]),
                    data: rest,
                },
                _ => invalid,
            },
            kind::MAGIC_NUMBER => match d {
                [a, b, c, e] => LcpOption::MagicNumber(u32::from_be_bytes([*a, *b, *c, *e])),
                _ => invalid,
            },
            kind::PFC if d.is_empty() => LcpOption::Pfc,
            kind::ACFC if d.is_empty() => LcpOption::Acfc,
            kind::PFC | kind::ACFC => invalid,
            k => LcpOption::Unknown { kind: k, data: d },
        }
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        match self {
            LcpOption::Mru(v) => push_option(out, kind::MRU, &v.to_be_bytes()),
            LcpOption::Accm(v) => push_option(out, kind::ACCM, &v.to_be_bytes()),
            LcpOption::AuthProtocol { protocol, data } => {
                let mut d = protocol.to_be_bytes().to_vec();
                d.extend_from_slice(data);
                push_option(out, kind::AUTH_PROTOCOL, &d);
            }
            LcpOption::MagicNumber(v) => push_option(out, kind::MAGIC_NUMBER, &v.to_be_bytes()),
            LcpOption::Pfc => push_option(out, kind::PFC, &[]),
            LcpOption::Acfc => push_option(out, kind::ACFC, &[]),
            LcpOption::Invalid { kind, data } | LcpOption::Unknown { kind, data } => {
                push_option(out, *kind, data)
            }
        }
    }
}

/// The Authentication-Protocol option value for `m`.
pub fn auth_option(m: AuthMethod) -> LcpOption<'static> {
    match m {
        AuthMethod::Pap => LcpOption::AuthProtocol {
            protocol: 0xc023,
            data: &[],
        },
        AuthMethod::ChapMd5 => LcpOption::AuthProtocol {
            protocol: 0xc223,
            data: &[0x05],
        },
        AuthMethod::MsChapV1 => LcpOption::AuthProtocol {
            protocol: 0xc223,
            data: &[0x80],
        },
        AuthMethod::MsChapV2 => LcpOption::AuthProtocol {
            protocol: 0xc223,
            data: &[0x81],
        },
    }
}

/// The method an Authentication-Protocol option names, if we know it.
pub fn auth_method(protocol: u16, data: &[u8]) -> Option<AuthMethod> {
    match (protocol, data) {
        (0xc023, []) => Some(AuthMethod::Pap),
        (0xc223, [0x05]) => Some(AuthMethod::ChapMd5),
        (0xc223, [0x80]) => Some(AuthMethod::MsChapV1),
        (0xc223, [0x81]) => Some(AuthMethod::MsChapV2),
        _ => None,
    }
}

/// LCP settings (pppd option names in brackets). `Default` = pppd's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcpPolicy {
    /// MRU we ask for \[mru\]; requested only when it differs from 1500.
    pub mru: u16,
    /// Upper bound for what we send \[mtu\]; the link MTU is min(mtu, peer's MRU).
    pub mtu: u16,
    /// ACCM to request \[asyncmap\]; `None` = do not request.
    pub accm: Option<u32>,
    /// Request and accept Protocol-Field-Compression \[nopcomp disables\].
    pub pfc: bool,
    /// Request and accept Address-and-Control-Field-Compression \[noaccomp disables\].
    pub acfc: bool,
    /// Negotiate a Magic-Number \[nomagic disables\].
    pub magic: bool,
    /// Keepalive interval \[lcp-echo-interval\]; `None` = no keepalive (pppd default 0).
    pub echo_interval: Option<Duration>,
    /// Unanswered Echo-Requests before the peer is declared dead \[lcp-echo-failure\];
    /// 0 = never (pppd default).
    pub echo_failure: u32,
}

impl Default for LcpPolicy {
    fn default() -> Self {
        LcpPolicy {
            mru: DEFAULT_MRU,
            mtu: DEFAULT_MRU,
            accm: Some(0),
            pfc: true,
            acfc: true,
            magic: true,
            echo_interval: None,
            echo_failure: 0,
        }
    }
}

/// Which side of authentication LCP negotiates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LcpRole {
    /// We are the authenticator: request the first method of `methods` (strongest first).
    Authenticator { methods: Vec<AuthMethod> },
    /// We are the authenticatee: accept these methods when the peer asks (first = preferred
    /// in a Nak).
    Authenticatee { methods: Vec<AuthMethod> },
}

/// A small non-cryptographic generator for Magic-Numbers (SplitMix64), seeded from the
/// session's entropy. Magic numbers must be unlikely to collide, not secret.
#[derive(Debug, Clone)]
pub struct MagicSource(u64);

impl MagicSource {
    pub fn new(seed: u64) -> Self {
        MagicSource(seed)
    }

    /// A non-zero 32-bit value (zero is illegal, RFC 1661 §6.4).
    pub fn next_magic(&mut self) -> u32 {
        loop {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let v = (z >> 32) as u32;
            if v != 0 {
                return v;
            }
        }
    }
}

/// What we request (our "want/got" options) and what the peer requested (its options).
#[derive(Debug, Clone)]
pub struct LcpOptions {
    policy: LcpPolicy,
    role: LcpRole,
    magic_source: MagicSource,
    // Ours, for the current negotiation.
    req_mru: Option<u16>,
    req_accm: Option<u32>,
    /// Index into the authenticator's method list.
    req_auth: Option<usize>,
    req_magic: Option<u32>,
    req_pfc: bool,
    req_acfc: bool,
    // The peer's, from its last request.
    his_mru: u16,
    his_auth: Option<AuthMethod>,
    his_magic: Option<u32>,
    his_pfc: bool,
    his_acfc: bool,
    loops: u32,
}

impl LcpOptions {
    pub fn new(policy: LcpPolicy, role: LcpRole, magic_source: MagicSource) -> Self {
        let mut o = LcpOptions {
            policy,
            role,
            magic_source,
            req_mru: None,
            req_accm: None,
            req_auth: None,
            req_magic: None,
            req_pfc: false,
            req_acfc: false,
            his_mru: DEFAULT_MRU,
            his_auth: None,
            his_magic: None,
            his_pfc: false,
            his_acfc: false,
            loops: 0,
        };
        o.reset();
        o
    }

    fn methods(&self) -> &[AuthMethod] {
        match &self.role {
            LcpRole::Authenticator { methods } | LcpRole::Authenticatee { methods } => methods,
        }
    }

    /// The method we require from the peer (authenticator role), as negotiated.
    pub fn auth_we_require(&self) -> Option<AuthMethod> {
        match &self.role {
            LcpRole::Authenticator { methods } => {
                self.req_auth.and_then(|i| methods.get(i).copied())
            }
            LcpRole::Authenticatee { .. } => None,
        }
    }

    /// The method the peer requires from us (authenticatee role), as negotiated.
    pub fn auth_peer_requires(&self) -> Option<AuthMethod> {
        self.his_auth
    }

    /// The peer's MRU: the largest frame we may send.
    pub fn peer_mru(&self) -> u16 {
        self.his_mru
    }

    /// Our MRU as negotiated.
    pub fn our_mru(&self) -> u16 {
        self.req_mru.unwrap_or(DEFAULT_MRU)
    }

    /// Header compression for frames we send (what the peer asked for and we acked).
    pub fn tx_compression(&self) -> HeaderCompression {
        HeaderCompression {
            acfc: self.his_acfc,
            pfc: self.his_pfc,
        }
    }

    /// Our magic number (0 if not negotiated).
    pub fn our_magic(&self) -> u32 {
        self.req_magic.unwrap_or(0)
    }

    pub fn peer_magic(&self) -> u32 {
        self.his_magic.unwrap_or(0)
    }

    /// The link looks looped back (our magic number came back too often).
    pub fn looped_back(&self) -> bool {
        self.loops >= LOOPBACK_LIMIT
    }
}

impl ConfigProtocol for LcpOptions {
    fn reset(&mut self) {
        self.req_mru = (self.policy.mru != DEFAULT_MRU).then_some(self.policy.mru);
        self.req_accm = self.policy.accm;
        self.req_auth = match &self.role {
            LcpRole::Authenticator { methods } if !methods.is_empty() => Some(0),
            _ => None,
        };
        self.req_magic = self.policy.magic.then(|| self.magic_source.next_magic());
        self.req_pfc = self.policy.pfc;
        self.req_acfc = self.policy.acfc;
        // The peer's values are not touched: `check_request` replaces them with each request
        // (scr can follow the judging of a request, e.g. RCR+ in Opened or Stopped).
    }

    fn build_request(&mut self, out: &mut Vec<u8>) {
        // Same order as pppd (by option type), so our request reads like the reference's.
        if let Some(mru) = self.req_mru {
            LcpOption::Mru(mru).emit(out);
        }
        if let Some(accm) = self.req_accm {
            LcpOption::Accm(accm).emit(out);
        }
        if let Some(m) = self.auth_we_require() {
            auth_option(m).emit(out);
        }
        if let Some(magic) = self.req_magic {
            LcpOption::MagicNumber(magic).emit(out);
        }
        if self.req_pfc {
            LcpOption::Pfc.emit(out);
        }
        if self.req_acfc {
            LcpOption::Acfc.emit(out);
        }
    }

    fn check_request(&mut self, options: &[RawOption<'_>], reply: &mut ReplyBuilder) {
        self.his_mru = DEFAULT_MRU;
        self.his_auth = None;
        self.his_magic = None;
        self.his_pfc = false;
        self.his_acfc = false;
        for raw in options {
            match LcpOption::parse(raw) {
                LcpOption::Mru(v) if v < MIN_MRU => reply.nak(raw, &MIN_MRU.to_be_bytes()),
                LcpOption::Mru(v) => self.his_mru = v,
                // ACCM means nothing over GRE; any value is fine.
                LcpOption::Accm(_) => {}
                LcpOption::AuthProtocol { protocol, data } => match &self.role {
                    LcpRole::Authenticator { .. } => reply.reject(raw),
                    LcpRole::Authenticatee { methods } => match auth_method(protocol, data) {
                        Some(m) if methods.contains(&m) => self.his_auth = Some(m),
                        _ => match methods.first() {
                            Some(&pref) => {
                                let mut d = Vec::new();
                                auth_option(pref).emit(&mut d);
                                reply.nak(raw, d.get(2..).unwrap_or_default());
                            }
                            None => reply.reject(raw),
                        },
                    },
                },
                LcpOption::MagicNumber(v) => {
                    let looped = self.req_magic == Some(v);
                    if v == 0 || looped {
                        if looped {
                            self.loops = self.loops.saturating_add(1);
                            // Pick a new one for ourselves too (RFC 1661 §6.4).
                            self.req_magic = Some(self.magic_source.next_magic());
                        }
                        let suggestion = self.magic_source.next_magic();
                        reply.nak(raw, &suggestion.to_be_bytes());
                    } else {
                        self.his_magic = Some(v);
                    }
                }
                LcpOption::Pfc if self.policy.pfc => self.his_pfc = true,
                LcpOption::Acfc if self.policy.acfc => self.his_acfc = true,
                LcpOption::Pfc | LcpOption::Acfc => reply.reject(raw),
                LcpOption::Invalid { .. } | LcpOption::Unknown { .. } => reply.reject(raw),
            }
        }
    }

    fn nak_received(
        &mut self,
        options: &[RawOption<'_>],
        treat_as_reject: bool,
    ) -> Result<(), NegotiationFailure> {
        for raw in options {
            match LcpOption::parse(raw) {
                LcpOption::Mru(v) => {
                    if treat_as_reject || v < MIN_MRU {
                        self.req_mru = None;
                    } else {
                        self.req_mru = Some(v);
                    }
                }
                LcpOption::Accm(v) => {
                    // pppd: the union of both maps.
                    self.req_accm = if treat_as_reject {
                        None
                    } else {
                        Some(self.req_accm.unwrap_or(0) | v)
                    };
                }
                LcpOption::AuthProtocol { protocol, data } => {
                    let Some(cur) = self.req_auth else {
                        continue; // We did not ask; the peer cannot make us.
                    };
                    if treat_as_reject {
                        return Err(NegotiationFailure("peer refused to authenticate".into()));
                    }
                    let methods = self.methods().to_vec();
                    let suggested = auth_method(protocol, data)
                        .and_then(|m| methods.iter().position(|&x| x == m));
                    match suggested {
                        Some(i) if i != cur => self.req_auth = Some(i),
                        _ if cur + 1 < methods.len() => self.req_auth = Some(cur + 1),
                        _ => return Err(NegotiationFailure("peer refused to authenticate".into())),
                    }
                }
                LcpOption::MagicNumber(_) if self.req_magic.is_some() => {
                    self.loops = self.loops.saturating_add(1);
                    self.req_magic = if treat_as_reject {
                        None
                    } else {
                        Some(self.magic_source.next_magic())
                    };
                }
                LcpOption::Pfc => self.req_pfc = false,
                LcpOption::Acfc => self.req_acfc = false,
                _ => {}
            }
        }
        Ok(())
    }

    fn reject_received(&mut self, options: &[RawOption<'_>]) -> Result<(), NegotiationFailure> {
        for raw in options {
            match raw.kind {
                kind::MRU => self.req_mru = None,
                kind::ACCM => self.req_accm = None,
                kind::AUTH_PROTOCOL if self.req_auth.is_some() => {
                    return Err(NegotiationFailure("peer refused to authenticate".into()))
                }
                kind::MAGIC_NUMBER => self.req_magic = None,
                kind::PFC => self.req_pfc = false,
                kind::ACFC => self.req_acfc = false,
                _ => {}
            }
        }
        Ok(())
    }

    fn extension_code(&self, code: Code) -> bool {
        matches!(
            code,
            Code::ProtocolReject
                | Code::EchoRequest
                | Code::EchoReply
                | Code::DiscardRequest
                | Code::Identification
                | Code::TimeRemaining
        )
    }
}

/// Something LCP tells its owner beyond the automaton's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LcpNotice {
    /// The peer Protocol-Rejected this protocol: stop using it (RFC 1661 §5.7).
    ProtocolRejected(Protocol),
    /// `echo_failure` Echo-Requests went unanswered (pppd: "Peer not responding").
    PeerNotResponding,
    /// Our magic number keeps coming back.
    LoopedBack,
}

/// LCP: the automaton, the options, and the keepalive.
#[derive(Debug, Clone)]
pub struct Lcp {
    pub fsm: Fsm,
    pub options: LcpOptions,
    echo_deadline: Option<Instant>,
    echos_pending: u32,
    notices: Vec<LcpNotice>,
    /// Extra packets (Echo-Reply/Request, Protocol-Reject) to send, after the automaton's.
    extra: Vec<Vec<u8>>,
}

impl Lcp {
    pub fn new(policy: LcpPolicy, role: LcpRole, fsm: FsmPolicy, magic: MagicSource) -> Lcp {
        Lcp {
            fsm: Fsm::new(fsm),
            options: LcpOptions::new(policy, role, magic),
            echo_deadline: None,
            echos_pending: 0,
            notices: Vec::new(),
            extra: Vec::new(),
        }
    }

    pub fn is_opened(&self) -> bool {
        self.fsm.state() == crate::fsm::State::Opened
    }

    /// Packets to send (control packets, without the PPP header), oldest first. The automaton
    /// outputs (including layer events) must be drained separately through `fsm.drain()`.
    pub fn take_extra(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.extra)
    }

    pub fn take_notices(&mut self) -> Vec<LcpNotice> {
        std::mem::take(&mut self.notices)
    }

    /// Called by the owner on This-Layer-Up: starts the keepalive (first echo right away).
    pub fn layer_up(&mut self, now: Instant) {
        self.fsm.set_peer_mru(self.options.peer_mru());
        self.echos_pending = 0;
        if self.options.policy.echo_interval.is_some() {
            self.send_echo(now);
        }
    }

    /// Called by the owner on This-Layer-Down.
    pub fn layer_down(&mut self) {
        self.echo_deadline = None;
        self.echos_pending = 0;
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.fsm.poll_timeout(), self.echo_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.fsm.handle_timeout(now, &mut self.options);
        if matches!(self.echo_deadline, Some(d) if d <= now) {
            self.echo_deadline = None;
            self.send_echo(now);
        }
    }

    fn send_echo(&mut self, now: Instant) {
        if !self.is_opened() {
            return;
        }
        let Some(interval) = self.options.policy.echo_interval else {
            return;
        };
        let failure = self.options.policy.echo_failure;
        if failure != 0 && self.echos_pending >= failure {
            self.notices.push(LcpNotice::PeerNotResponding);
            return;
        }
        let id = self.fsm.next_id();
        let magic = self.options.our_magic().to_be_bytes();
        self.extra
            .push(crate::frame::emit_control(Code::EchoRequest, id, &magic));
        self.echos_pending = self.echos_pending.saturating_add(1);
        self.echo_deadline = Some(now + interval);
    }

    /// Unanswered Echo-Requests so far.
    pub fn echos_pending(&self) -> u32 {
        self.echos_pending
    }

    /// Sends a Protocol-Reject for a frame of an unsupported protocol (Opened only;
    /// RFC 1661 §5.7). `info` is the frame's information field.
    pub fn protocol_reject(&mut self, protocol: u16, info: &[u8]) {
        if !self.is_opened() {
            return;
        }
        let mut data = protocol.to_be_bytes().to_vec();
        // Truncate to the peer's MRU (header 4 + protocol 2).
        let room = usize::from(self.options.peer_mru()).saturating_sub(6);
        data.extend_from_slice(&info[..info.len().min(room)]);
        let id = self.fsm.next_id();
        self.extra
            .push(crate::frame::emit_control(Code::ProtocolReject, id, &data));
    }

    /// Handles one received LCP packet.
    pub fn input(&mut self, now: Instant, pkt: ControlPacket<'_>) {
        let Input::Extension(pkt) = self.fsm.input(now, &mut self.options, pkt) else {
            if self.options.looped_back() {
                self.notices.push(LcpNotice::LoopedBack);
            }
            return;
        };
        match pkt.code {
            Code::ProtocolReject => {
                // Only meaningful in Opened (RFC 1661 §5.7).
                if !self.is_opened() {
                    return;
                }
                let [a, b] = match pkt.data {
                    [a, b, ..] => [*a, *b],
                    _ => return,
                };
                let proto = Protocol::from_number(u16::from_be_bytes([a, b]));
                if proto == Protocol::Lcp {
                    self.fsm.rxj_minus(now);
                } else {
                    self.fsm.rxj_plus();
                    self.notices.push(LcpNotice::ProtocolRejected(proto));
                }
            }
            Code::EchoRequest => {
                let Some(magic) = pkt.data.get(..4) else {
                    return;
                };
                let ours = self.options.our_magic();
                if ours != 0 && magic == ours.to_be_bytes() {
                    // Our own request came back: a loop (pppd logs and ignores).
                    return;
                }
                if self.fsm.rxr() {
                    let mut data = ours.to_be_bytes().to_vec();
                    data.extend_from_slice(pkt.data.get(4..).unwrap_or_default());
                    self.extra
                        .push(crate::frame::emit_control(Code::EchoReply, pkt.id, &data));
                }
            }
            Code::EchoReply => {
                let Some(magic) = pkt.data.get(..4) else {
                    return;
                };
                let ours = self.options.our_magic();
                if ours != 0 && magic == ours.to_be_bytes() {
                    return; // Looped back.
                }
                self.fsm.rxr();
                self.echos_pending = 0;
            }
            // Discard-Request, Identification, Time-Remaining: accepted and ignored.
            _ => {
                self.fsm.rxr();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{emit_control, parse_options};
    use crate::fsm::FsmOutput;

    fn server() -> Lcp {
        Lcp::new(
            LcpPolicy::default(),
            LcpRole::Authenticator {
                methods: vec![AuthMethod::MsChapV2, AuthMethod::ChapMd5],
            },
            FsmPolicy::default(),
            MagicSource::new(1),
        )
    }

    fn sends(out: &[FsmOutput]) -> Vec<Vec<u8>> {
        out.iter()
            .filter_map(|o| match o {
                FsmOutput::Send(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn option_fixtures() {
        // (bytes, parsed) pairs; emit must give the bytes back.
        let cases: Vec<(Vec<u8>, LcpOption<'static>)> = vec![
            (vec![1, 4, 0x05, 0xd2], LcpOption::Mru(1490)),
            (vec![2, 6, 0, 0, 0, 0], LcpOption::Accm(0)),
            (
                vec![3, 5, 0xc2, 0x23, 0x81],
                auth_option(AuthMethod::MsChapV2),
            ),
            (
                vec![3, 5, 0xc2, 0x23, 0x80],
                auth_option(AuthMethod::MsChapV1),
            ),
            (
                vec![3, 5, 0xc2, 0x23, 0x05],
                auth_option(AuthMethod::ChapMd5),
            ),
            (vec![3, 4, 0xc0, 0x23], auth_option(AuthMethod::Pap)),
            (
                vec![5, 6, 0x3e, 0x3c, 0xb5, 0xf2],
                LcpOption::MagicNumber(0x3e3c_b5f2),
            ),
            (vec![7, 2], LcpOption::Pfc),
            (vec![8, 2], LcpOption::Acfc),
            (
                vec![13, 3, 6],
                LcpOption::Unknown {
                    kind: 13,
                    data: &[6],
                },
            ),
            (
                vec![1, 3, 5],
                LcpOption::Invalid {
                    kind: 1,
                    data: &[5],
                },
            ),
            (
                vec![7, 3, 0],
                LcpOption::Invalid {
                    kind: 7,
                    data: &[0],
                },
            ),
        ];
        for (bytes, want) in cases {
            let raw = parse_options(&bytes).unwrap();
            assert_eq!(LcpOption::parse(&raw[0]), want, "{bytes:02x?}");
            let mut out = Vec::new();
            want.emit(&mut out);
            assert_eq!(out, bytes);
        }
        assert_eq!(auth_method(0xc223, &[0x81]), Some(AuthMethod::MsChapV2));
        assert_eq!(auth_method(0xc227, &[]), None);
        assert_eq!(auth_method(0xc223, &[0x06]), None);
    }

    #[test]
    fn server_request_matches_pppd_layout() {
        let t0 = Instant::now();
        let mut l = server();
        l.fsm.open(t0, &mut l.options);
        l.fsm.up(t0, &mut l.options);
        let out = sends(&l.fsm.drain());
        let magic = l.options.our_magic().to_be_bytes();
        let mut want = vec![
            0x01, 0x01, 0x00, 0x19, 0x02, 0x06, 0, 0, 0, 0, 0x03, 0x05, 0xc2, 0x23, 0x81, 0x05,
            0x06,
        ];
        want.extend_from_slice(&magic);
        want.extend_from_slice(&[0x07, 0x02, 0x08, 0x02]);
        assert_eq!(out, vec![want]);
    }

    #[test]
    fn windows_style_request_gets_rejects() {
        let t0 = Instant::now();
        let mut l = server();
        l.fsm.open(t0, &mut l.options);
        l.fsm.up(t0, &mut l.options);
        l.fsm.drain();
        // MRU 1400, magic, PFC, ACFC, Callback (13, op 6), MRRU (17), endpoint discriminator (19).
        let req = [
            0x01, 0x04, 0x05, 0x78, 0x05, 0x06, 0x11, 0x22, 0x33, 0x44, 0x07, 0x02, 0x08, 0x02,
            0x0d, 0x03, 0x06, 0x11, 0x04, 0x06, 0x4e, 0x13, 0x06, 0x01, 0xaa, 0xbb, 0xcc,
        ];
        let pkt = emit_control(Code::ConfigureRequest, 0x21, &req);
        l.input(t0, ControlPacket::parse(&pkt).unwrap());
        let out = sends(&l.fsm.drain());
        let want = emit_control(
            Code::ConfigureReject,
            0x21,
            &[
                0x0d, 0x03, 0x06, 0x11, 0x04, 0x06, 0x4e, 0x13, 0x06, 0x01, 0xaa, 0xbb, 0xcc,
            ],
        );
        assert_eq!(out, vec![want]);
        // Without the rejected options: Ack, and the values are recorded.
        let req = [
            0x01, 0x04, 0x05, 0x78, 0x05, 0x06, 0x11, 0x22, 0x33, 0x44, 0x07, 0x02, 0x08, 0x02,
        ];
        let pkt = emit_control(Code::ConfigureRequest, 0x22, &req);
        l.input(t0, ControlPacket::parse(&pkt).unwrap());
        assert_eq!(
            sends(&l.fsm.drain()),
            vec![emit_control(Code::ConfigureAck, 0x22, &req)]
        );
        assert_eq!(l.options.peer_mru(), 1400);
        assert_eq!(l.options.peer_magic(), 0x1122_3344);
        assert_eq!(
            l.options.tx_compression(),
            HeaderCompression {
                acfc: true,
                pfc: true
            }
        );
    }

    #[test]
    fn client_auth_option_in_server_request_is_rejected_and_bad_mru_naked() {
        let t0 = Instant::now();
        let mut l = server();
        l.fsm.open(t0, &mut l.options);
        l.fsm.up(t0, &mut l.options);
        l.fsm.drain();
        let req = [0x01, 0x04, 0x00, 0x40, 0x03, 0x04, 0xc0, 0x23];
        let pkt = emit_control(Code::ConfigureRequest, 1, &req);
        l.input(t0, ControlPacket::parse(&pkt).unwrap());
        assert_eq!(
            sends(&l.fsm.drain()),
            vec![emit_control(
                Code::ConfigureReject,
                1,
                &[0x03, 0x04, 0xc0, 0x23]
            )]
        );
        let req = [0x01, 0x04, 0x00, 0x40];
        let pkt = emit_control(Code::ConfigureRequest, 2, &req);
        l.input(t0, ControlPacket::parse(&pkt).unwrap());
        assert_eq!(
            sends(&l.fsm.drain()),
            vec![emit_control(
                Code::ConfigureNak,
                2,
                &[0x01, 0x04, 0x00, 0x80]
            )]
        );
    }

    #[test]
    fn auth_nak_switches_method_and_reject_fails() {
        let t0 = Instant::now();
        let mut l = server();
        l.fsm.open(t0, &mut l.options);
        l.fsm.up(t0, &mut l.options);
        l.fsm.drain();
        // Peer suggests PAP (not allowed): we move on to the next method, CHAP-MD5.
        let nak = emit_control(
            Code::ConfigureNak,
            l.fsm.request_id(),
            &[0x03, 0x04, 0xc0, 0x23],
        );
        l.input(t0, ControlPacket::parse(&nak).unwrap());
        assert_eq!(l.options.auth_we_require(), Some(AuthMethod::ChapMd5));
        let out = sends(&l.fsm.drain());
        assert_eq!(&out[0][10..15], &[0x03, 0x05, 0xc2, 0x23, 0x05]);
        // Nak again: no methods left → LCP closes.
        let nak = emit_control(
            Code::ConfigureNak,
            l.fsm.request_id(),
            &[0x03, 0x04, 0xc0, 0x23],
        );
        l.input(t0, ControlPacket::parse(&nak).unwrap());
        let out = l.fsm.drain();
        assert_eq!(
            out[0],
            FsmOutput::Failed("peer refused to authenticate".into())
        );

        let mut l = server();
        l.fsm.open(t0, &mut l.options);
        l.fsm.up(t0, &mut l.options);
        l.fsm.drain();
        let rej = emit_control(
            Code::ConfigureReject,
            l.fsm.request_id(),
            &[0x03, 0x05, 0xc2, 0x23, 0x81],
        );
        l.input(t0, ControlPacket::parse(&rej).unwrap());
        let out = l.fsm.drain();
        assert_eq!(
            out[0],
            FsmOutput::Failed("peer refused to authenticate".into())
        );
        assert_eq!(l.fsm.state(), crate::fsm::State::Closing);
    }

    #[test]
    fn client_naks_unsupported_auth() {
        let t0 = Instant::now();
        let mut l = Lcp::new(
            LcpPolicy::default(),
            LcpRole::Authenticatee {
                methods: vec![AuthMethod::MsChapV2, AuthMethod::Pap],
            },
            FsmPolicy::default(),
            MagicSource::new(2),
        );
        l.fsm.open(t0, &mut l.options);
        l.fsm.up(t0, &mut l.options);
        l.fsm.drain();
        // EAP (c227): Nak with MS-CHAPv2.
        let pkt = emit_control(Code::ConfigureRequest, 1, &[0x03, 0x04, 0xc2, 0x27]);
        l.input(t0, ControlPacket::parse(&pkt).unwrap());
        assert_eq!(
            sends(&l.fsm.drain()),
            vec![emit_control(
                Code::ConfigureNak,
                1,
                &[0x03, 0x05, 0xc2, 0x23, 0x81]
            )]
        );
        let pkt = emit_control(Code::ConfigureRequest, 2, &[0x03, 0x04, 0xc0, 0x23]);
        l.input(t0, ControlPacket::parse(&pkt).unwrap());
        assert_eq!(l.options.auth_peer_requires(), Some(AuthMethod::Pap));
    }

    #[test]
    fn magic_loop_is_naked() {
        let t0 = Instant::now();
        let mut l = server();
        l.fsm.open(t0, &mut l.options);
        l.fsm.up(t0, &mut l.options);
        l.fsm.drain();
        let ours = l.options.our_magic();
        let mut req = vec![0x05, 0x06];
        req.extend_from_slice(&ours.to_be_bytes());
        let pkt = emit_control(Code::ConfigureRequest, 1, &req);
        l.input(t0, ControlPacket::parse(&pkt).unwrap());
        let out = sends(&l.fsm.drain());
        assert_eq!(out[0][0], 3);
        assert_eq!(&out[0][4..6], &[0x05, 0x06]);
        assert_ne!(&out[0][6..10], &ours.to_be_bytes());
        assert_ne!(l.options.our_magic(), ours);
        // Magic 0 is Nak'ed too.
        let pkt = emit_control(Code::ConfigureRequest, 2, &[5, 6, 0, 0, 0, 0]);
        l.input(t0, ControlPacket::parse(&pkt).unwrap());
        assert_eq!(sends(&l.fsm.drain())[0][0], 3);
        // Ten loops → looped back.
        for i in 0..LOOPBACK_LIMIT {
            let mut req = vec![0x05, 0x06];
            req.extend_from_slice(&l.options.our_magic().to_be_bytes());
            let pkt = emit_control(Code::ConfigureRequest, 10 + i as u8, &req);
            l.input(t0, ControlPacket::parse(&pkt).unwrap());
            l.fsm.drain();
        }
        assert!(l.take_notices().contains(&LcpNotice::LoopedBack));
    }

    fn opened_server(t0: Instant, policy: LcpPolicy) -> Lcp {
        let mut l = Lcp::new(
            policy,
            LcpRole::Authenticator {
                methods: vec![AuthMethod::MsChapV2],
            },
            FsmPolicy::default(),
            MagicSource::new(3),
        );
        l.fsm.open(t0, &mut l.options);
        l.fsm.up(t0, &mut l.options);
        l.fsm.drain();
        let req = [0x05, 0x06, 0x11, 0x22, 0x33, 0x44];
        let pkt = emit_control(Code::ConfigureRequest, 1, &req);
        l.input(t0, ControlPacket::parse(&pkt).unwrap());
        let mut ours = Vec::new();
        l.options.build_request(&mut ours);
        let ack = emit_control(Code::ConfigureAck, l.fsm.request_id(), &ours);
        l.input(t0, ControlPacket::parse(&ack).unwrap());
        assert!(l.fsm.drain().contains(&FsmOutput::Up));
        l.layer_up(t0);
        l
    }

    #[test]
    fn echo_reply_and_ignored_codes() {
        let t0 = Instant::now();
        let mut l = opened_server(t0, LcpPolicy::default());
        let echo = emit_control(Code::EchoRequest, 7, &[0x11, 0x22, 0x33, 0x44, 0xde, 0xad]);
        l.input(t0, ControlPacket::parse(&echo).unwrap());
        let mut want = l.options.our_magic().to_be_bytes().to_vec();
        want.extend_from_slice(&[0xde, 0xad]);
        assert_eq!(
            l.take_extra(),
            vec![emit_control(Code::EchoReply, 7, &want)]
        );
        // Identification (Windows), Time-Remaining and Discard-Request: silently ignored.
        for code in [
            Code::Identification,
            Code::TimeRemaining,
            Code::DiscardRequest,
        ] {
            let p = emit_control(code, 8, &[0x11, 0x22, 0x33, 0x44, b'M', b'S']);
            l.input(t0, ControlPacket::parse(&p).unwrap());
            assert!(l.take_extra().is_empty());
            assert!(l.fsm.drain().is_empty());
        }
        // Unknown code 0x20: Code-Reject.
        let p = emit_control(Code::Unknown(0x20), 9, &[]);
        l.input(t0, ControlPacket::parse(&p).unwrap());
        assert_eq!(sends(&l.fsm.drain())[0][0], 7);
        // Protocol-Reject of IPCP → notice; of LCP → RXJ-.
        let p = emit_control(Code::ProtocolReject, 10, &[0x80, 0x21, 1, 1, 0, 4]);
        l.input(t0, ControlPacket::parse(&p).unwrap());
        assert_eq!(
            l.take_notices(),
            vec![LcpNotice::ProtocolRejected(Protocol::Ipcp)]
        );
        assert!(l.is_opened());
        let p = emit_control(Code::ProtocolReject, 11, &[0xc0, 0x21]);
        l.input(t0, ControlPacket::parse(&p).unwrap());
        assert_eq!(l.fsm.state(), crate::fsm::State::Stopping);
    }

    #[test]
    fn keepalive_declares_silent_peer_dead() {
        let t0 = Instant::now();
        let policy = LcpPolicy {
            echo_interval: Some(Duration::from_secs(10)),
            echo_failure: 3,
            ..LcpPolicy::default()
        };
        let mut l = opened_server(t0, policy);
        // First echo right away.
        let e = l.take_extra();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0][0], 9);
        assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        // A reply clears the count.
        let reply = emit_control(Code::EchoReply, e[0][1], &[0x11, 0x22, 0x33, 0x44]);
        l.input(t0, ControlPacket::parse(&reply).unwrap());
        assert_eq!(l.echos_pending(), 0);
        // Silence: echoes at 10, 20, 30; at 40 three are pending → dead.
        for s in [10, 20, 30] {
            l.handle_timeout(t0 + Duration::from_secs(s));
            assert_eq!(l.take_extra().len(), 1, "echo at {s}s");
            assert!(l.take_notices().is_empty());
        }
        l.handle_timeout(t0 + Duration::from_secs(40));
        assert!(l.take_extra().is_empty());
        assert_eq!(l.take_notices(), vec![LcpNotice::PeerNotResponding]);
    }

    #[test]
    fn protocol_reject_is_built_and_truncated() {
        let t0 = Instant::now();
        let mut l = opened_server(t0, LcpPolicy::default());
        l.protocol_reject(0x8057, &[1, 1, 0, 4]);
        let out = l.take_extra();
        assert_eq!(out[0][0], 8);
        assert_eq!(&out[0][4..], &[0x80, 0x57, 1, 1, 0, 4]);
        l.protocol_reject(0x002b, &[0u8; 3000]);
        assert_eq!(l.take_extra()[0].len(), 1500);
    }
}
