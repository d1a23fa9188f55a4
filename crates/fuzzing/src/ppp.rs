//! Fuzz targets for `virtgate-ppp`: frames and control packets (RFC 1661 §2, §5, §6), the
//! option negotiation of LCP, IPCP and CCP on the RFC 1661 §4 automaton, PAP/CHAP-MD5/
//! MS-CHAPv1/MS-CHAPv2 exchanges (RFC 1334, 1994, 2433, 2759), MPPE decryption (RFC 3078), and
//! a server `Session` talking to a client `Session` over a network the fuzzer controls (drops,
//! corruption, injected frames, time, the daemon's answers).
//!
//! Invariants checked besides "no panic":
//! - frames, control packets and option lists round-trip through their emitters;
//! - the automaton answers a Configure-Request by the RFC: an Ack echoes it, a Reject carries
//!   only options it had, byte for byte and in order (§5.2, §5.4); This-Layer-Up/Down alternate
//!   and match the Opened state; the restart timer runs exactly in the states of §4.6;
//! - authentication ends at most once; an authenticator never succeeds without a secret from
//!   the daemon; an MS-CHAPv2 client succeeds only on the server's correct authenticator
//!   response (mutual authentication, RFC 2759 §5);
//! - MPPE: packets from a real encrypter decrypt to their plaintext through loss (stateless)
//!   or after a reset (stateful), as long as nobody injected packets;
//! - the session: every frame it sends parses; `Up` only after `Authenticated`, which needs a
//!   secret from the daemon; with MPPE required no clear IPv4 is delivered and `Up` names MPPE;
//!   IP sent by one end arrives unchanged at the other; `Down` at most once, nothing after it.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use virtgate_ppp::auth::{AuthClient, AuthOutput, AuthServer, KeyMaterial, Secret};
use virtgate_ppp::ccp::Ccp;
use virtgate_ppp::frame::{
    emit_control, parse_options, push_option, Code, ControlPacket, FrameHeader, HeaderCompression,
    OptionIter, Protocol,
};
use virtgate_ppp::fsm::{Fsm, FsmOutput, State};
use virtgate_ppp::ipcp::Ipcp;
use virtgate_ppp::lcp::{Lcp, LcpOption, LcpRole, MagicSource};
use virtgate_ppp::mppe::{self, MppeDecrypter, MppeEncrypter, StartKey};
use virtgate_ppp::mschap;
use virtgate_ppp::{
    AuthMethod, AuthPolicy, Decap, Entropy, FsmPolicy, IpcpPolicy, KeyLength, LcpPolicy,
    MppePolicy, Role, Session, SessionConfig, SessionEvent,
};

use crate::input::{Input, ScriptWriter};

/// Entropy that cycles over fixed bytes (all zero if none): deterministic, and lets a seed set
/// the challenge an authenticator sends.
pub struct CycleEntropy {
    bytes: Vec<u8>,
    at: usize,
}

impl CycleEntropy {
    pub fn new(bytes: &[u8]) -> Self {
        CycleEntropy {
            bytes: if bytes.is_empty() {
                vec![0]
            } else {
                bytes.to_vec()
            },
            at: 0,
        }
    }
}

impl Entropy for CycleEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.bytes[self.at % self.bytes.len()];
            self.at = self.at.wrapping_add(1);
        }
    }
}

const METHODS: [AuthMethod; 4] = [
    AuthMethod::MsChapV2,
    AuthMethod::MsChapV1,
    AuthMethod::ChapMd5,
    AuthMethod::Pap,
];

fn parse_control(bytes: &[u8]) -> ControlPacket<'_> {
    match ControlPacket::parse(bytes) {
        Ok(p) => {
            assert_eq!(
                p.data.len() + 4,
                bytes.len(),
                "sent packet has trailing bytes"
            );
            p
        }
        Err(e) => panic!("sent a control packet that does not parse: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

/// A PPP frame (GRE payload): header → emit with the same compression gives the same bytes
/// (LCP is always sent uncompressed, RFC 1661 §6.5/§6.6, so it only re-parses the same);
/// a control packet re-emits to its bytes (padding dropped); an option list re-emits to its
/// bytes, and each LCP option to its own bytes.
pub fn ppp_frame_roundtrip(data: &[u8]) {
    let Ok(h) = FrameHeader::parse(data) else {
        return;
    };
    let info = &data[h.len..];
    let hc = HeaderCompression {
        acfc: !h.address_control,
        pfc: h.compressed_protocol,
    };
    let framed = hc.frame(h.protocol, info);
    if h.protocol != Protocol::Lcp {
        assert_eq!(framed, data, "frame does not re-emit to its bytes");
    }
    let h2 = FrameHeader::parse(&framed).unwrap_or_else(|e| panic!("re-parse: {e}"));
    assert_eq!(h2.protocol, h.protocol);
    assert_eq!(h2.len, hc.header_len(h.protocol), "header_len");
    assert_eq!(&framed[h2.len..], info);
    assert_eq!(Protocol::from_number(h.protocol.number()), h.protocol);

    let Ok(pkt) = ControlPacket::parse(info) else {
        return;
    };
    let bytes = pkt.to_vec();
    assert_eq!(&info[..bytes.len()], &bytes[..], "control packet re-emit");
    assert_eq!(ControlPacket::parse(&bytes), Ok(pkt));
    assert_eq!(Code::from_number(pkt.code.number()), pkt.code);

    match parse_options(pkt.data) {
        Ok(opts) => {
            let mut again = Vec::new();
            let mut concat = Vec::new();
            for o in &opts {
                push_option(&mut again, o.kind, o.data);
                concat.extend_from_slice(o.bytes);
                if h.protocol == Protocol::Lcp {
                    let mut e = Vec::new();
                    LcpOption::parse(o).emit(&mut e);
                    assert_eq!(e, o.bytes, "LCP option {o:?} re-emit");
                }
            }
            assert_eq!(again, pkt.data, "option list re-emit");
            assert_eq!(concat, pkt.data);
        }
        Err(_) => {
            let mut it = OptionIter::new(pkt.data);
            let errors = it.by_ref().filter(Result::is_err).count();
            assert_eq!(errors, 1, "a malformed option list reports one error");
            assert!(it.next().is_none(), "the iterator stops after its error");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Negotiation (LCP, IPCP, CCP on the shared automaton)
// ---------------------------------------------------------------------------------------------

enum Machine {
    Lcp(Box<Lcp>),
    Ipcp(Ipcp),
    Ccp(Ccp),
}

impl Machine {
    fn fsm(&self) -> &Fsm {
        match self {
            Machine::Lcp(l) => &l.fsm,
            Machine::Ipcp(i) => &i.fsm,
            Machine::Ccp(c) => &c.fsm,
        }
    }
    fn input(&mut self, now: Instant, pkt: ControlPacket<'_>) {
        match self {
            Machine::Lcp(l) => l.input(now, pkt),
            Machine::Ipcp(i) => {
                i.fsm.input(now, &mut i.options, pkt);
            }
            Machine::Ccp(c) => {
                c.fsm.input(now, &mut c.options, pkt);
            }
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Machine::Lcp(l) => l.handle_timeout(now),
            Machine::Ipcp(i) => i.fsm.handle_timeout(now, &mut i.options),
            Machine::Ccp(c) => c.fsm.handle_timeout(now, &mut c.options),
        }
    }
    fn open_up(&mut self, now: Instant) {
        match self {
            Machine::Lcp(l) => {
                l.fsm.open(now, &mut l.options);
                l.fsm.up(now, &mut l.options);
            }
            Machine::Ipcp(i) => {
                i.fsm.open(now, &mut i.options);
                i.fsm.up(now, &mut i.options);
            }
            Machine::Ccp(c) => {
                c.fsm.open(now, &mut c.options);
                c.fsm.up(now, &mut c.options);
            }
        }
    }
    fn lifecycle(&mut self, now: Instant, what: u8) {
        macro_rules! each {
            ($m:expr) => {
                match what % 4 {
                    0 => $m.fsm.close(now, "fuzz close"),
                    1 => $m.fsm.open(now, &mut $m.options),
                    2 => $m.fsm.down(),
                    _ => $m.fsm.up(now, &mut $m.options),
                }
            };
        }
        match self {
            Machine::Lcp(l) => each!(l),
            Machine::Ipcp(i) => each!(i),
            Machine::Ccp(c) => each!(c),
        }
    }
    /// Automaton outputs, then LCP's own packets (echo, protocol-reject).
    fn drain(&mut self) -> Vec<FsmOutput> {
        match self {
            Machine::Lcp(l) => {
                let mut out = l.fsm.drain();
                out.extend(l.take_extra().into_iter().map(FsmOutput::Send));
                l.take_notices();
                out
            }
            Machine::Ipcp(i) => i.fsm.drain(),
            Machine::Ccp(c) => c.fsm.drain(),
        }
    }
}

/// Script operations of [`ppp_negotiation`] (`op % 6`).
pub mod neg_op {
    /// Length byte + bytes: a raw control packet.
    pub const PACKET: u8 = 0;
    /// Identifier byte + length byte + options: a Configure-Request from the peer.
    pub const REQUEST: u8 = 1;
    /// Code byte (2 Ack, 3 Nak, 4 Reject; taken as 2 + b % 3) + length byte + options: a reply
    /// to our outstanding Configure-Request (its Identifier).
    pub const REPLY: u8 = 2;
    /// Ack our outstanding Configure-Request exactly.
    pub const ACK_OURS: u8 = 3;
    /// u16 milliseconds: advance the clock, then `handle_timeout`.
    pub const ADVANCE: u8 = 4;
    /// Byte: close / open / down / up (`b % 4`).
    pub const LIFECYCLE: u8 = 5;
}

/// Builds scripts for [`ppp_negotiation`].
#[derive(Debug, Clone)]
pub struct NegScript(ScriptWriter);

impl NegScript {
    /// `machine`: 0 LCP authenticator, 1 LCP authenticatee, 2 IPCP server, 3 IPCP client,
    /// 4 CCP (MPPE-128 required), 5 CCP (pppd defaults, stateful allowed).
    pub fn new(machine: u8) -> Self {
        let mut w = ScriptWriter::new();
        w.u8(machine);
        NegScript(w)
    }
    pub fn packet(&mut self, p: &[u8]) -> &mut Self {
        self.0.chunks(neg_op::PACKET, p);
        self
    }
    pub fn request(&mut self, id: u8, options: &[u8]) -> &mut Self {
        let o = &options[..options.len().min(255)];
        self.0.u8(neg_op::REQUEST).u8(id);
        self.0.u8(u8::try_from(o.len()).unwrap_or(u8::MAX)).raw(o);
        self
    }
    pub fn ack_ours(&mut self) -> &mut Self {
        self.0.u8(neg_op::ACK_OURS);
        self
    }
    pub fn advance(&mut self, ms: u16) -> &mut Self {
        self.0.u8(neg_op::ADVANCE).u16(ms);
        self
    }
    pub fn finish(&self) -> Vec<u8> {
        self.0.finish()
    }
}

fn new_machine(sel: u8) -> Machine {
    let fsm = FsmPolicy {
        max_failure: u32::from(sel >> 4 & 3) + 1,
        max_configure: u32::from(sel >> 6) + 2,
        ..FsmPolicy::default()
    };
    match sel % 6 {
        0 | 1 => {
            let methods = vec![AuthMethod::MsChapV2, AuthMethod::ChapMd5];
            let role = if sel.is_multiple_of(6) {
                LcpRole::Authenticator { methods }
            } else {
                LcpRole::Authenticatee { methods }
            };
            let policy = LcpPolicy {
                echo_interval: Some(Duration::from_secs(10)),
                echo_failure: 3,
                ..LcpPolicy::default()
            };
            Machine::Lcp(Box::new(Lcp::new(policy, role, fsm, MagicSource::new(7))))
        }
        2 | 3 => {
            let server = sel % 6 == 2;
            let policy = IpcpPolicy {
                local: Ipv4Addr::new(192, 168, 0, 1),
                dns: [
                    Some(Ipv4Addr::new(8, 8, 8, 8)),
                    Some(Ipv4Addr::new(8, 8, 4, 4)),
                ],
                request_dns: !server,
                ..IpcpPolicy::default()
            };
            let mut i = Ipcp::new(policy, server, fsm);
            if server {
                i.options.set_peer_address(Ipv4Addr::new(192, 168, 0, 100));
            }
            Machine::Ipcp(i)
        }
        4 => Machine::Ccp(Ccp::new(
            MppePolicy {
                required: true,
                allow_40: false,
                allow_56: false,
                allow_128: true,
                allow_stateful: false,
            },
            fsm,
        )),
        _ => Machine::Ccp(Ccp::new(
            MppePolicy {
                allow_stateful: true,
                ..MppePolicy::default()
            },
            fsm,
        )),
    }
}

/// One automaton (LCP authenticator or authenticatee, IPCP server or client, CCP with MPPE
/// required or optional; first byte) after Open and Up, driven by a [`NegScript`].
pub fn ppp_negotiation(data: &[u8]) {
    negotiation_outcome(data);
}

/// Runs a [`NegScript`] like [`ppp_negotiation`]; returns the automaton's final state.
pub fn negotiation_outcome(data: &[u8]) -> Option<State> {
    let mut input = Input::new(data);
    let sel = input.u8()?;
    let mut m = new_machine(sel);
    let mut now = Instant::now();
    let mut up = false;
    let mut our_request: Option<Vec<u8>> = None;
    m.open_up(now);
    check_negotiation(&mut m, now, None, &mut up, &mut our_request);
    while let Some(op) = input.u8() {
        let mut fed_request: Option<Vec<u8>> = None;
        match op % 6 {
            neg_op::PACKET => {
                let Some(b) = input.chunk() else { break };
                if let Ok(p) = ControlPacket::parse(b) {
                    if p.code == Code::ConfigureRequest {
                        fed_request = Some(p.to_vec());
                    }
                    m.input(now, p);
                }
            }
            neg_op::REQUEST => {
                let (Some(id), Some(opts)) = (input.u8(), input.chunk()) else {
                    break;
                };
                let p = emit_control(Code::ConfigureRequest, id, opts);
                fed_request = Some(p.clone());
                m.input(now, parse_control(&p));
            }
            neg_op::REPLY => {
                let (Some(c), Some(opts)) = (input.u8(), input.chunk()) else {
                    break;
                };
                let code = Code::from_number(2 + c % 3);
                let p = emit_control(code, m.fsm().request_id(), opts);
                m.input(now, parse_control(&p));
            }
            neg_op::ACK_OURS => {
                if let Some(req) = &our_request {
                    let r = parse_control(req);
                    let p = emit_control(Code::ConfigureAck, r.id, r.data);
                    m.input(now, parse_control(&p));
                }
            }
            neg_op::ADVANCE => {
                let Some(ms) = input.u16() else { break };
                now += Duration::from_millis(u64::from(ms));
                m.handle_timeout(now);
            }
            neg_op::LIFECYCLE => {
                let Some(w) = input.u8() else { break };
                m.lifecycle(now, w);
            }
            _ => unreachable!("op is taken mod 6"),
        }
        check_negotiation(
            &mut m,
            now,
            fed_request.as_deref(),
            &mut up,
            &mut our_request,
        );
    }
    Some(m.fsm().state())
}

fn check_negotiation(
    m: &mut Machine,
    now: Instant,
    fed_request: Option<&[u8]>,
    up: &mut bool,
    our_request: &mut Option<Vec<u8>>,
) {
    let fed = fed_request.map(parse_control);
    for out in m.drain() {
        match out {
            FsmOutput::Send(bytes) => {
                let p = parse_control(&bytes);
                match p.code {
                    Code::ConfigureRequest => {
                        assert!(parse_options(p.data).is_ok(), "our request's options");
                        *our_request = Some(bytes.clone());
                    }
                    Code::ConfigureAck | Code::ConfigureNak | Code::ConfigureReject => {
                        let Some(req) = fed.filter(|r| r.id == p.id) else {
                            // Acks of stray packets (sta) or to an earlier request: no check.
                            continue;
                        };
                        let opts = parse_options(p.data)
                            .unwrap_or_else(|e| panic!("{:?} with bad options: {e}", p.code));
                        match p.code {
                            Code::ConfigureAck => {
                                assert_eq!(p.data, req.data, "Ack does not echo the request")
                            }
                            Code::ConfigureReject => {
                                let theirs = parse_options(req.data).unwrap_or_default();
                                let mut it = theirs.iter();
                                for o in &opts {
                                    assert!(
                                        it.any(|t| t.bytes == o.bytes),
                                        "Reject of {o:?} which the request did not carry in that order"
                                    );
                                }
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            FsmOutput::Up => {
                assert!(!*up, "This-Layer-Up twice");
                *up = true;
            }
            FsmOutput::Down => {
                assert!(*up, "This-Layer-Down while down");
                *up = false;
            }
            FsmOutput::Started | FsmOutput::Finished | FsmOutput::Failed(_) => {}
        }
    }
    let fsm = m.fsm();
    assert_eq!(
        *up,
        fsm.state() == State::Opened,
        "layer up vs state {:?}",
        fsm.state()
    );
    assert_eq!(
        fsm.poll_timeout().is_some(),
        fsm.state().timer_runs(),
        "restart timer in state {:?}",
        fsm.state()
    );
    if let Some(t) = fsm.poll_timeout() {
        assert!(t > now, "restart timer already expired");
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

/// Script operations of [`ppp_auth`] (`op % 5`).
pub mod auth_op {
    /// Code byte + Identifier byte + length byte + data: a packet from the peer (CHAP or PAP
    /// per the method).
    pub const PACKET: u8 = 0;
    /// Identifier = the last one we sent; code byte + length byte + data.
    pub const REPLY: u8 = 1;
    /// Byte 0: the daemon knows no such user; else length byte + secret (server), stored as
    /// its NT hash when the byte's top bit is set.
    pub const SECRET: u8 = 2;
    /// u16 milliseconds: advance the clock, then `handle_timeout`.
    pub const ADVANCE: u8 = 3;
    /// Jump to `poll_timeout()` and handle it.
    pub const JUMP: u8 = 4;
}

/// Builds scripts for [`ppp_auth`].
#[derive(Debug, Clone)]
pub struct AuthScript(ScriptWriter);

impl AuthScript {
    /// `server`; `method`: 0 MS-CHAPv2, 1 MS-CHAPv1, 2 CHAP-MD5, 3 PAP; `entropy` the bytes
    /// challenges are made of (cycled; at most 255).
    pub fn new(server: bool, method: u8, retries: bool, first_id: u8, entropy: &[u8]) -> Self {
        let mut w = ScriptWriter::new();
        w.u8(u8::from(!server) | (method & 3) << 1 | u8::from(retries) << 3);
        w.u8(first_id);
        let e = &entropy[..entropy.len().min(255)];
        w.u8(u8::try_from(e.len()).unwrap_or(u8::MAX)).raw(e);
        AuthScript(w)
    }
    pub fn packet(&mut self, code: u8, id: u8, data: &[u8]) -> &mut Self {
        let d = &data[..data.len().min(255)];
        self.0.u8(auth_op::PACKET).u8(code).u8(id);
        self.0.u8(u8::try_from(d.len()).unwrap_or(u8::MAX)).raw(d);
        self
    }
    /// A packet from the peer with the Identifier of the last packet we sent.
    pub fn reply(&mut self, code: u8, data: &[u8]) -> &mut Self {
        let d = &data[..data.len().min(255)];
        self.0.u8(auth_op::REPLY).u8(code);
        self.0.u8(u8::try_from(d.len()).unwrap_or(u8::MAX)).raw(d);
        self
    }
    pub fn secret(&mut self, secret: Option<&str>) -> &mut Self {
        self.0.u8(auth_op::SECRET);
        match secret {
            None => self.0.u8(0),
            Some(s) => {
                let b = &s.as_bytes()[..s.len().min(255)];
                self.0
                    .u8(1)
                    .u8(u8::try_from(b.len()).unwrap_or(u8::MAX))
                    .raw(b)
            }
        };
        self
    }
    /// The daemon answers with the NT hash of `secret` (chap-secrets `nthash:`).
    pub fn secret_hashed(&mut self, secret: &str) -> &mut Self {
        let b = &secret.as_bytes()[..secret.len().min(255)];
        self.0
            .u8(auth_op::SECRET)
            .u8(0x81)
            .u8(u8::try_from(b.len()).unwrap_or(u8::MAX))
            .raw(b);
        self
    }
    pub fn jump(&mut self) -> &mut Self {
        self.0.u8(auth_op::JUMP);
        self
    }
    pub fn finish(&self) -> Vec<u8> {
        self.0.finish()
    }
}

/// The user name and password an authenticatee uses in [`ppp_auth`].
pub const AUTH_USER: &str = "user1";
pub const AUTH_PASSWORD: &str = "password1";

enum Side {
    Server(AuthServer),
    Client(AuthClient),
}

/// One authentication exchange (first byte: bit 0 client role, bits 1-2 the method, bit 3
/// one retry allowed; then the first Identifier and the entropy bytes), driven by an
/// [`AuthScript`].
pub fn ppp_auth(data: &[u8]) {
    auth_outcome(data);
}

/// Runs an [`AuthScript`] like [`ppp_auth`]; returns `Some(true)` for success, `Some(false)`
/// for failure, `None` if the exchange did not finish.
pub fn auth_outcome(data: &[u8]) -> Option<bool> {
    let mut input = Input::new(data);
    let (Some(sel), Some(first_id), Some(ent)) = (input.u8(), input.u8(), input.chunk()) else {
        return None;
    };
    let method = METHODS[usize::from(sel >> 1 & 3)];
    let policy = AuthPolicy {
        methods: vec![method],
        max_retries: u32::from(sel >> 3 & 1),
        ..AuthPolicy::default()
    };
    let mut entropy = CycleEntropy::new(ent);
    let mut now = Instant::now();
    let mut side = if sel & 1 == 0 {
        let mut s = AuthServer::new(method, policy, "pptpd".into(), first_id);
        s.start(now, &mut entropy);
        Side::Server(s)
    } else {
        let mut c = AuthClient::new(
            method,
            policy,
            AUTH_USER.into(),
            AUTH_PASSWORD.into(),
            first_id,
        );
        c.start(now);
        Side::Client(c)
    };
    let mut st = AuthState::default();
    st.check(&mut side, method);
    while let Some(op) = input.u8() {
        match op % 5 {
            auth_op::PACKET | auth_op::REPLY => {
                let code = input.u8();
                let id = if op % 5 == auth_op::PACKET {
                    input.u8()
                } else {
                    Some(st.last_id)
                };
                let (Some(code), Some(id), Some(body)) = (code, id, input.chunk()) else {
                    break;
                };
                let pkt = emit_control(Code::from_number(code), id, body);
                let p = parse_control(&pkt);
                if let Side::Client(_) = side {
                    st.received(method, p);
                }
                match &mut side {
                    Side::Server(s) => s.input(method.protocol(), p),
                    Side::Client(c) => c.input(now, method.protocol(), p, &mut entropy),
                }
            }
            auth_op::SECRET => {
                let Some(b) = input.u8() else { break };
                let secret = if b == 0 {
                    None
                } else {
                    let Some(s) = input.chunk() else { break };
                    let text = String::from_utf8_lossy(s).into_owned();
                    // Top bit: chap-secrets stores it as an NT hash.
                    Some(if b & 0x80 != 0 {
                        Secret::NtHash(mschap::nt_password_hash(&text))
                    } else {
                        Secret::Plain(text)
                    })
                };
                if let Side::Server(s) = &mut side {
                    if s.awaiting_secret() {
                        st.secret_given = Some(secret.clone());
                    }
                    s.provide_secret(now, secret.as_ref(), &mut entropy);
                }
            }
            auth_op::ADVANCE | auth_op::JUMP => {
                if op % 5 == auth_op::ADVANCE {
                    let Some(ms) = input.u16() else { break };
                    now += Duration::from_millis(u64::from(ms));
                } else {
                    let t = match &side {
                        Side::Server(s) => s.poll_timeout(),
                        Side::Client(c) => c.poll_timeout(),
                    };
                    if let Some(t) = t {
                        now = now.max(t);
                    }
                }
                match &mut side {
                    Side::Server(s) => s.handle_timeout(now),
                    Side::Client(c) => c.handle_timeout(now),
                }
            }
            _ => unreachable!("op is taken mod 5"),
        }
        st.check(&mut side, method);
    }
    st.outcome
}

#[derive(Default)]
struct AuthState {
    last_id: u8,
    verdicts: u32,
    /// Server: what the daemon answered to the last secret request.
    secret_given: Option<Option<Secret>>,
    /// Client, MS-CHAPv2: the last challenge received, our last response, the last Success
    /// message received.
    challenge: Option<[u8; 16]>,
    response: Option<mschap::v2::Response>,
    answered: Option<[u8; 16]>,
    success_msg: Option<Vec<u8>>,
    outcome: Option<bool>,
}

impl AuthState {
    fn received(&mut self, method: AuthMethod, p: ControlPacket<'_>) {
        if method != AuthMethod::MsChapV2 {
            return;
        }
        match p.code.number() {
            1 => {
                if let Some((&n, rest)) = p.data.split_first() {
                    if n == 16 {
                        self.challenge = rest.get(..16).and_then(|c| c.try_into().ok());
                    }
                }
            }
            3 => self.success_msg = Some(p.data.to_vec()),
            _ => {}
        }
    }

    fn check(&mut self, side: &mut Side, method: AuthMethod) {
        let outs = match side {
            Side::Server(s) => s.drain(),
            Side::Client(c) => c.drain(),
        };
        for o in outs {
            match o {
                AuthOutput::Send(proto, bytes) => {
                    assert_eq!(proto, method.protocol(), "sent on another protocol");
                    let p = parse_control(&bytes);
                    self.last_id = p.id;
                    let code = p.code.number();
                    match (side as &Side, method) {
                        (Side::Server(_), AuthMethod::Pap) => assert!(matches!(code, 2 | 3)),
                        (Side::Server(_), _) => assert!(matches!(code, 1 | 3 | 4), "code {code}"),
                        (Side::Client(_), AuthMethod::Pap) => assert_eq!(code, 1),
                        (Side::Client(_), _) => assert_eq!(code, 2, "client sent code {code}"),
                    }
                    if let (Side::Client(_), AuthMethod::MsChapV2) = (side as &Side, method) {
                        let value = p.data.get(1..50).unwrap_or_default();
                        assert_eq!(p.data.first(), Some(&49), "MS-CHAPv2 Value-Size");
                        self.response = mschap::v2::Response::parse(value).ok();
                        self.answered = self.challenge;
                    }
                    if let (Side::Server(_), AuthMethod::MsChapV2, 3) =
                        (side as &Side, method, code)
                    {
                        assert!(
                            mschap::v2::parse_success(p.data).is_ok(),
                            "Success message {:?}",
                            String::from_utf8_lossy(p.data)
                        );
                    }
                }
                AuthOutput::NeedSecret(_) => {
                    assert!(
                        matches!(side, Side::Server(_)),
                        "a client asked for a secret"
                    );
                }
                AuthOutput::Success {
                    keys, method: m, ..
                } => {
                    self.verdicts += 1;
                    self.outcome = Some(true);
                    assert_eq!(m, method);
                    match side {
                        Side::Server(_) => {
                            let Some(Some(secret)) = &self.secret_given else {
                                panic!("authenticator succeeded without a secret from the daemon");
                            };
                            match (&keys, method) {
                                (
                                    Some(KeyMaterial::MsChapV2 { password, .. }),
                                    AuthMethod::MsChapV2,
                                )
                                | (
                                    Some(KeyMaterial::MsChapV1 { password, .. }),
                                    AuthMethod::MsChapV1,
                                ) => {
                                    assert_eq!(password, secret, "keys from another secret")
                                }
                                (None, AuthMethod::ChapMd5 | AuthMethod::Pap) => {}
                                _ => panic!("{method} success with keys {keys:?}"),
                            }
                        }
                        Side::Client(_) if method == AuthMethod::MsChapV2 => {
                            // Mutual authentication: only the right S= may be accepted.
                            let (Some(ch), Some(r), Some(msg)) =
                                (self.answered, self.response, &self.success_msg)
                            else {
                                panic!("MS-CHAPv2 client succeeded without an exchange");
                            };
                            let expected = mschap::v2::generate_authenticator_response(
                                AUTH_PASSWORD,
                                &r.nt_response,
                                &r.peer_challenge,
                                &ch,
                                AUTH_USER,
                            );
                            let got = mschap::v2::parse_success(msg)
                                .unwrap_or_else(|e| panic!("accepted a bad Success: {e}"));
                            assert_eq!(got.auth_response, expected, "accepted a forged S=");
                        }
                        Side::Client(_) => {}
                    }
                }
                AuthOutput::Failure { .. } => {
                    self.verdicts += 1;
                    self.outcome = Some(false);
                }
            }
        }
        assert!(
            self.verdicts <= 1,
            "authentication ended {} times",
            self.verdicts
        );
    }
}

// ---------------------------------------------------------------------------------------------
// MPPE
// ---------------------------------------------------------------------------------------------

/// Script operations of [`ppp_mppe`] (`op % 5`).
pub mod mppe_op {
    /// Length byte + plaintext: the sender encrypts it and the packet arrives.
    pub const DELIVER: u8 = 0;
    /// Length byte + plaintext: the sender encrypts it and the packet is lost.
    pub const LOSE: u8 = 1;
    /// Two header bytes + length byte + bytes: a packet from someone else.
    pub const INJECT: u8 = 2;
    /// The receiver asked for a reset (CCP Reset-Request reaches the sender).
    pub const RESET: u8 = 3;
    /// Byte + length byte + plaintext: encrypt, flip one bit (byte index mod length), deliver.
    pub const CORRUPT: u8 = 4;
}

/// Builds scripts for [`ppp_mppe`].
#[derive(Debug, Clone)]
pub struct MppeScript(ScriptWriter);

impl MppeScript {
    /// `mode`: bits 0-1 key length (0/3 128-bit, 1 40-bit, 2 56-bit), bit 2 stateful.
    pub fn new(mode: u8, start_key: &[u8; 16]) -> Self {
        let mut w = ScriptWriter::new();
        w.u8(mode).raw(start_key);
        MppeScript(w)
    }
    pub fn deliver(&mut self, plain: &[u8]) -> &mut Self {
        self.0.chunks(mppe_op::DELIVER, plain);
        self
    }
    pub fn lose(&mut self, plain: &[u8]) -> &mut Self {
        self.0.chunks(mppe_op::LOSE, plain);
        self
    }
    /// A captured packet (MPPE header + encrypted data; cut at 255 bytes of data).
    pub fn op(&mut self, op: u8) -> &mut Self {
        self.0.u8(op);
        self
    }
    pub fn inject(&mut self, header: [u8; 2], data: &[u8]) -> &mut Self {
        let d = &data[..data.len().min(255)];
        self.0.u8(mppe_op::INJECT).raw(&header);
        self.0.u8(u8::try_from(d.len()).unwrap_or(u8::MAX)).raw(d);
        self
    }
    pub fn finish(&self) -> Vec<u8> {
        self.0.finish()
    }
}

/// An MPPE sender and receiver with the same start key (first byte: key length and mode; 16
/// bytes of key), and a lossy, hostile channel between them.
pub fn ppp_mppe(data: &[u8]) {
    let mut input = Input::new(data);
    let (Some(mode), Some(key)) = (input.u8(), input.bytes(16)) else {
        return;
    };
    let key_len = match mode & 3 {
        1 => KeyLength::Bits40,
        2 => KeyLength::Bits56,
        _ => KeyLength::Bits128,
    };
    let stateless = mode & 4 == 0;
    let mut k = [0u8; 16];
    k.copy_from_slice(key);
    let start = StartKey(k);
    let mut enc = MppeEncrypter::new(&start, key_len, stateless);
    let mut dec = MppeDecrypter::new(&start, key_len, stateless);
    // The receiver's view is trustworthy only while nobody else spoke on the channel.
    let mut clean = true;
    let mut lost_since_delivery = 0u32;
    // A Reset-Request reached the sender and its next packet will be flushed.
    let mut reset_pending = false;
    while let Some(op) = input.u8() {
        match op % 5 {
            mppe_op::DELIVER | mppe_op::LOSE | mppe_op::CORRUPT => {
                let flip = if op % 5 == mppe_op::CORRUPT {
                    let Some(f) = input.u8() else { break };
                    Some(f)
                } else {
                    None
                };
                let Some(plain) = input.chunk() else { break };
                // A PPP protocol field first (0x0021, as ppp_mppe sends), then the data.
                let mut buf = vec![0x00, 0x21];
                buf.extend_from_slice(plain);
                let mut want = buf.clone();
                let flushed = std::mem::take(&mut reset_pending);
                let header = enc.encrypt(&mut buf);
                if op % 5 == mppe_op::LOSE {
                    lost_since_delivery += 1;
                    continue;
                }
                if let Some(f) = flip {
                    // No integrity in MPPE: a flipped ciphertext bit is a flipped plaintext
                    // bit, and the key stream stays in step.
                    let i = usize::from(f) % buf.len();
                    buf[i] ^= 1 << (f % 8);
                    want[i] ^= 1 << (f % 8);
                }
                let expect_ok = if stateless {
                    lost_since_delivery < 8
                } else {
                    flushed || (lost_since_delivery == 0 && !dec.discarding())
                };
                let r = dec.decrypt(header, &mut buf);
                if clean {
                    if expect_ok {
                        assert_eq!(
                            r,
                            Ok(()),
                            "after {lost_since_delivery} losses (flushed: {flushed})"
                        );
                    }
                    if r.is_ok() {
                        assert_eq!(buf, want, "decrypted to something else");
                    }
                }
                lost_since_delivery = 0;
            }
            mppe_op::INJECT => {
                let (Some(h), Some(d)) = (input.bytes(2), input.chunk()) else {
                    break;
                };
                let mut buf = d.to_vec();
                let _ = dec.decrypt([h[0], h[1]], &mut buf);
                clean = false;
            }
            mppe_op::RESET => {
                enc.reset();
                reset_pending = !stateless;
            }
            _ => unreachable!("op is taken mod 5"),
        }
        assert!(dec.expected_count() <= mppe::COHERENCY_MASK);
    }
}

// ---------------------------------------------------------------------------------------------
// Session: a server and a client over a network the fuzzer controls
// ---------------------------------------------------------------------------------------------

/// Script operations of [`ppp_session`] (`op % 8`).
pub mod session_op {
    /// Deliver the next frame client → server.
    pub const C2S: u8 = 0;
    /// Deliver the next frame server → client.
    pub const S2C: u8 = 1;
    /// Drop the next frame client → server.
    pub const DROP_C2S: u8 = 2;
    /// Drop the next frame server → client.
    pub const DROP_S2C: u8 = 3;
    /// Side byte (bit 0: server → client) + index byte + xor byte: deliver the next frame of
    /// that direction with one byte changed.
    pub const CORRUPT: u8 = 4;
    /// Length byte + bytes: a frame from a third party to the server.
    pub const INJECT: u8 = 5;
    /// u16 milliseconds (0: jump to the earliest timer): advance both clocks.
    pub const TIME: u8 = 6;
    /// Side byte (bit 0: the server sends; bit 7: instead close that side) + length byte +
    /// bytes: an IPv4 packet sent through `encapsulate`.
    pub const DATA: u8 = 7;
}

/// Builds scripts for [`ppp_session`].
#[derive(Debug, Clone)]
pub struct SessionScript(ScriptWriter);

impl SessionScript {
    /// `config`: bits 0-1 the daemon's secret answer (0 right, 1 wrong, 2 unknown user, 3 the right one as an NT hash),
    /// bit 2 no address left, bits 3-4 server MPPE (0 required 128-bit, 1 optional, 2 off),
    /// bits 5-6 methods (0 MS-CHAPv2, 1 all, 2 CHAP-MD5 only, 3 PAP only), bit 7 stateful
    /// MPPE allowed.
    pub fn new(config: u8) -> Self {
        let mut w = ScriptWriter::new();
        w.u8(config);
        SessionScript(w)
    }
    pub fn op(&mut self, op: u8) -> &mut Self {
        self.0.u8(op);
        self
    }
    /// Delivers everything both ways `rounds` times.
    pub fn exchange(&mut self, rounds: usize) -> &mut Self {
        for _ in 0..rounds {
            self.0.u8(session_op::C2S).u8(session_op::S2C);
        }
        self
    }
    pub fn time(&mut self, ms: u16) -> &mut Self {
        self.0.u8(session_op::TIME).u16(ms);
        self
    }
    pub fn data(&mut self, from_server: bool, packet: &[u8]) -> &mut Self {
        let p = &packet[..packet.len().min(255)];
        self.0.u8(session_op::DATA).u8(u8::from(from_server));
        self.0.u8(u8::try_from(p.len()).unwrap_or(u8::MAX)).raw(p);
        self
    }
    pub fn inject(&mut self, frame: &[u8]) -> &mut Self {
        self.0.chunks(session_op::INJECT, frame);
        self
    }
    pub fn finish(&self) -> Vec<u8> {
        self.0.finish()
    }
}

/// The server's address for the client, as the daemon assigns it in [`ppp_session`].
pub const SESSION_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 100);

struct End {
    s: Session,
    server: bool,
    /// Frames on their way to the other end; `Some(ip)` for a data frame carrying `ip`.
    outbox: VecDeque<(Vec<u8>, Option<Vec<u8>>)>,
    down: bool,
    up: bool,
    authenticated: bool,
    ip_delivered: u32,
}

struct Daemon {
    secret: Option<Secret>,
    address: Option<Ipv4Addr>,
    mppe_required: bool,
}

/// A server `Session` (after `open()`) and a client `Session` (first byte: configuration, see
/// [`SessionScript::new`]) exchanging frames as the script says.
pub fn ppp_session(data: &[u8]) {
    session_outcome(data);
}

/// What a [`ppp_session`] run reached: whether each end came up, and IP packets delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionOutcome {
    pub server_up: bool,
    pub client_up: bool,
    pub ip_delivered: u32,
}

/// Runs a [`SessionScript`] like [`ppp_session`] and says how far it got.
pub fn session_outcome(data: &[u8]) -> SessionOutcome {
    let mut out = SessionOutcome::default();
    let mut input = Input::new(data);
    let Some(cfg) = input.u8() else { return out };
    let methods = match cfg >> 5 & 3 {
        0 => vec![AuthMethod::MsChapV2],
        1 => METHODS.to_vec(),
        2 => vec![AuthMethod::ChapMd5],
        _ => vec![AuthMethod::Pap],
    };
    let stateful = cfg & 0x80 != 0;
    let mppe = match cfg >> 3 & 3 {
        0 => MppePolicy {
            required: true,
            allow_40: false,
            allow_56: false,
            allow_128: true,
            allow_stateful: stateful,
        },
        1 => MppePolicy {
            allow_stateful: stateful,
            ..MppePolicy::default()
        },
        _ => MppePolicy {
            required: false,
            allow_40: false,
            allow_56: false,
            allow_128: false,
            allow_stateful: false,
        },
    };
    let daemon = Daemon {
        secret: match cfg & 3 {
            0 => Some(AUTH_PASSWORD.into()),
            1 => Some("not-the-password".into()),
            2 => None,
            // The right password, stored as its NT hash.
            _ => Some(Secret::NtHash(mschap::nt_password_hash(AUTH_PASSWORD))),
        },
        address: (cfg & 4 == 0).then_some(SESSION_CLIENT_IP),
        mppe_required: mppe.required,
    };
    let auth = AuthPolicy {
        methods,
        ..AuthPolicy::default()
    };
    let server_cfg = SessionConfig {
        our_name: "pptpd".into(),
        auth: auth.clone(),
        mppe,
        ipcp: IpcpPolicy {
            local: Ipv4Addr::new(192, 168, 0, 1),
            dns: [Some(Ipv4Addr::new(8, 8, 8, 8)), None],
            ..IpcpPolicy::default()
        },
        ..SessionConfig::default()
    };
    let client_cfg = SessionConfig {
        role: Role::Client {
            user: AUTH_USER.into(),
            password: AUTH_PASSWORD.into(),
        },
        our_name: AUTH_USER.into(),
        auth,
        mppe: MppePolicy {
            allow_stateful: stateful,
            ..MppePolicy::default()
        },
        ipcp: IpcpPolicy {
            request_dns: true,
            ..IpcpPolicy::default()
        },
        ..SessionConfig::default()
    };
    let mut now = Instant::now();
    let new_end = |cfg: SessionConfig, seed: &[u8], server: bool| End {
        s: Session::new(now, cfg, Box::new(CycleEntropy::new(seed))),
        server,
        outbox: VecDeque::new(),
        down: false,
        up: false,
        authenticated: false,
        ip_delivered: 0,
    };
    let mut server = new_end(server_cfg, &[0x5e, 0x11, 0x7a, 0x93, 0x02], true);
    let mut client = new_end(client_cfg, &[0xc1, 0x1e, 0x47, 0x0d], false);
    server.s.open(now);
    client.s.open(now);
    settle(&mut server, &daemon, now);
    settle(&mut client, &daemon, now);

    while let Some(op) = input.u8() {
        match op % 8 {
            session_op::C2S
            | session_op::DROP_C2S
            | session_op::S2C
            | session_op::DROP_S2C
            | session_op::CORRUPT => {
                let (to_server, change) = match op % 8 {
                    session_op::CORRUPT => {
                        let (Some(side), Some(i), Some(x)) = (input.u8(), input.u8(), input.u8())
                        else {
                            break;
                        };
                        (side & 1 == 0, Some((i, x)))
                    }
                    o => (o == session_op::C2S || o == session_op::DROP_C2S, None),
                };
                let drop = matches!(op % 8, session_op::DROP_C2S | session_op::DROP_S2C);
                let (from, to) = if to_server {
                    (&mut client, &mut server)
                } else {
                    (&mut server, &mut client)
                };
                let Some((mut frame, plain)) = from.outbox.pop_front() else {
                    continue;
                };
                if drop {
                    continue;
                }
                let genuine = match change {
                    Some((i, x)) if !frame.is_empty() && x != 0 => {
                        let i = usize::from(i) % frame.len();
                        frame[i] ^= x;
                        false
                    }
                    _ => true,
                };
                deliver(to, &daemon, now, frame, plain.filter(|_| genuine));
            }
            session_op::INJECT => {
                let Some(b) = input.chunk() else { break };
                deliver(&mut server, &daemon, now, b.to_vec(), None);
            }
            session_op::TIME => {
                let Some(ms) = input.u16() else { break };
                if ms == 0 {
                    let next = [server.s.poll_timeout(), client.s.poll_timeout()]
                        .into_iter()
                        .flatten()
                        .min();
                    if let Some(t) = next {
                        now = now.max(t);
                    }
                } else {
                    now += Duration::from_millis(u64::from(ms));
                }
                for e in [&mut server, &mut client] {
                    e.s.handle_timeout(now);
                    settle(e, &daemon, now);
                    if let Some(t) = e.s.poll_timeout() {
                        assert!(t > now, "timer already expired after handle_timeout");
                    }
                }
            }
            session_op::DATA => {
                let (Some(side), Some(ip)) = (input.u8(), input.chunk()) else {
                    break;
                };
                let e = if side & 1 == 1 {
                    &mut server
                } else {
                    &mut client
                };
                if side & 0x80 != 0 {
                    e.s.close(now, "fuzz close");
                    settle(e, &daemon, now);
                    continue;
                }
                let h = Session::HEADROOM;
                let mut buf = vec![0u8; h + ip.len()];
                buf[h..].copy_from_slice(ip);
                if let Ok((start, len)) = e.s.encapsulate(&mut buf, h, ip.len()) {
                    assert!(e.s.is_up(), "encapsulated while not up");
                    let frame = buf[start..start + len].to_vec();
                    check_frame(&frame);
                    e.outbox.push_back((frame, Some(ip.to_vec())));
                }
            }
            _ => unreachable!("op is taken mod 8"),
        }
        out.server_up |= server.up;
        out.client_up |= client.up;
    }
    out.ip_delivered = server.ip_delivered + client.ip_delivered;
    out
}

fn check_frame(frame: &[u8]) {
    let h = FrameHeader::parse(frame).unwrap_or_else(|e| panic!("sent a bad frame: {e}"));
    if h.protocol.is_control() {
        parse_control(&frame[h.len..]);
    }
}

fn deliver(
    to: &mut End,
    daemon: &Daemon,
    now: Instant,
    mut frame: Vec<u8>,
    plain: Option<Vec<u8>>,
) {
    let proto = FrameHeader::parse(&frame).ok().map(|h| h.protocol);
    let len = frame.len();
    let r = to.s.decapsulate(now, &mut frame, 0, len);
    if let Decap::Ip { start, len } = r {
        assert!(to.s.is_up(), "IP delivered while not up");
        assert!(start + len <= frame.len());
        if to.server && daemon.mppe_required {
            assert_eq!(
                proto,
                Some(Protocol::Compressed),
                "clear IP delivered with MPPE required"
            );
        }
        if let Some(p) = plain {
            assert_eq!(
                &frame[start..start + len],
                &p[..],
                "IP packet changed on the way"
            );
        }
        to.ip_delivered += 1;
    }
    settle(to, daemon, now);
}

/// Drains an end's frames and events (answering as the daemon) and checks them.
fn settle(e: &mut End, daemon: &Daemon, now: Instant) {
    loop {
        while let Some(f) = e.s.poll_transmit() {
            assert!(!e.down, "frame sent after Down");
            check_frame(&f);
            e.outbox.push_back((f, None));
        }
        let Some(ev) = e.s.poll_event() else { break };
        assert!(!e.down, "event {ev:?} after Down");
        match ev {
            SessionEvent::SecretRequest { .. } => {
                assert!(e.server, "a client asked for a secret");
                e.s.provide_secret(now, daemon.secret.clone());
            }
            SessionEvent::Authenticated { .. } => {
                if e.server {
                    assert!(daemon.secret.is_some(), "authenticated an unknown user");
                }
                e.authenticated = true;
            }
            SessionEvent::AuthFailed { .. } => {}
            SessionEvent::AddressRequest { .. } => {
                assert!(
                    e.server && e.authenticated,
                    "address asked before authentication"
                );
                e.s.assign_address(now, daemon.address);
            }
            SessionEvent::Up { peer, mppe, .. } => {
                assert!(e.authenticated, "Up without authentication");
                if e.server {
                    assert_eq!(Some(peer), daemon.address, "Up with another address");
                    if daemon.mppe_required {
                        assert!(mppe.is_some(), "Up without the required MPPE");
                    }
                }
                e.up = true;
            }
            SessionEvent::Down { .. } => {
                e.down = true;
                e.up = false;
            }
        }
    }
    // `Up` comes before IP can flow; the link can stop being up (LCP renegotiation, a
    // Terminate-Request) before `Down`, which is reported when it has finished.
    assert!(!e.s.is_up() || e.up, "up without an Up event: {:?}", e.s);
    e.up = e.s.is_up();
}
