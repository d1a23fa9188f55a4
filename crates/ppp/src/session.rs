//! One PPP link, server or client role (sans-IO): the phases of RFC 1661 §3.2 (Dead →
//! Establish → Authenticate → Network → Terminate) over LCP, PAP/CHAP, CCP (MPPE) and IPCP,
//! and the data path (IPv4 in PPP, RFC 1332 §2; MPPE, RFC 3078 §3).
//!
//! Driving it (the same order as quinn's `Connection`): feed frames with
//! [`Session::decapsulate`], time with [`Session::handle_timeout`], and answers with
//! [`Session::provide_secret`] / [`Session::assign_address`]; after each call drain
//! [`Session::poll_transmit`] and [`Session::poll_event`], and re-arm the timer from
//! [`Session::poll_timeout`].
//!
//! Choices:
//! - Both ends send their LCP Configure-Request as soon as the lower layer is up (pppd does;
//!   no `passive`/`silent`).
//! - Network phase starts CCP (when MPPE is possible: MS-CHAP authenticated and a key length
//!   allowed) and IPCP side by side. With MPPE required no IP passes and no `Up` is reported
//!   until CCP is Opened with both directions agreeing; if CCP fails, closes, or cannot run,
//!   LCP is terminated ("MPPE required but not available" and pppd's other texts). pppd starts
//!   IPCP only after CCP when MPPE is on; starting both at once spares Windows a retransmit.
//! - With MPPE allowed but not required, `Up` waits until CCP has settled (Opened, or given
//!   up) so that the first packets are not sent in clear by one end and encrypted by the
//!   other.
//! - A peer that does not get MPPE (no MS-CHAP, or MPPE disabled) gets a Protocol-Reject for
//!   CCP, as pppd with `noccp` does; IPV6CP and every other unknown protocol are
//!   Protocol-Rejected in LCP's Opened state (pppd without `+ipv6`).
//! - Server: the peer's address is asked of the daemon (`AddressRequest`) when authentication
//!   succeeds; IPCP starts when it is assigned (an IPCP request arriving before that is
//!   discarded and retransmitted by the peer).
//! - An LCP renegotiation (Configure-Request in Opened) takes the network layers down and runs
//!   authentication and the NCPs again (RFC 1661 §3.2); `Up` is reported again afterwards.
//! - Stateful MPPE: a lost packet sends a CCP Reset-Request, repeated at most once a second
//!   while the decrypter waits for the flushed packet (pppd repeats once after 1 s).

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::auth::{
    AuthClient, AuthMethod, AuthOutput, AuthPolicy, AuthServer, ExternalVerdict, KeyMaterial,
    PeerCredentials, Secret,
};
use crate::ccp::{Ccp, MppeMode, MppePolicy};
use crate::frame::{emit_control, Code, ControlPacket, FrameHeader, HeaderCompression, Protocol};
use crate::fsm::{FsmOutput, FsmPolicy, Input, State};
use crate::ipcp::{Ipcp, IpcpPolicy};
use crate::lcp::{Lcp, LcpNotice, LcpPolicy, LcpRole, MagicSource};
use crate::mppe::{self, MppeDecrypter, MppeEncrypter, MppeError};
use crate::Entropy;

/// Which end of the link we are.
#[derive(Clone, PartialEq, Eq)]
pub enum Role {
    /// The PPTP server: we authenticate the peer and assign its address.
    Server,
    /// The dialing client: we authenticate ourselves with these credentials.
    Client { user: String, password: String },
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Server => f.write_str("Server"),
            Role::Client { user, .. } => f
                .debug_struct("Client")
                .field("user", user)
                .finish_non_exhaustive(),
        }
    }
}

/// Everything a session needs to know. `Default` = a server with pppd's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub role: Role,
    /// Our CHAP name (pppd `name`), sent in Challenges.
    pub our_name: String,
    pub lcp: LcpPolicy,
    pub auth: AuthPolicy,
    pub mppe: MppePolicy,
    pub ipcp: IpcpPolicy,
    pub fsm: FsmPolicy,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            role: Role::Server,
            our_name: "virtgate".into(),
            lcp: LcpPolicy::default(),
            auth: AuthPolicy::default(),
            mppe: MppePolicy::default(),
            ipcp: IpcpPolicy::default(),
            fsm: FsmPolicy::default(),
        }
    }
}

/// The link phases of RFC 1661 §3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Dead,
    Establish,
    Authenticate,
    Network,
    Terminate,
}

/// Why the link went down.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownReason {
    /// [`Session::close`] was called with this reason.
    LocalClose(String),
    /// The peer sent a Terminate-Request with this text.
    PeerTerminated(String),
    /// Authentication failed (either direction); the text says which and why.
    AuthFailed(String),
    /// Keepalive: `lcp-echo-failure` Echo-Requests went unanswered.
    PeerNotResponding,
    /// A protocol could not be negotiated (LCP timed out, the peer refused authentication,
    /// IPCP failed, ...).
    NegotiationFailed { protocol: Protocol, reason: String },
    /// MPPE was required and could not be used.
    MppeRequired(String),
    /// The daemon had no address for the peer.
    AddressPoolExhausted,
    /// Our magic number kept coming back.
    LoopedBack,
    /// [`Session::lower_layer_down`]: the PPTP call went away.
    LowerLayerDown,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::LocalClose(r) => write!(f, "closed locally: {r}"),
            DownReason::PeerTerminated(r) if r.is_empty() => f.write_str("terminated by peer"),
            DownReason::PeerTerminated(r) => write!(f, "terminated by peer: {r}"),
            DownReason::AuthFailed(r) => write!(f, "authentication failed: {r}"),
            DownReason::PeerNotResponding => f.write_str("peer not responding"),
            DownReason::NegotiationFailed { protocol, reason } => {
                write!(f, "{protocol} negotiation failed: {reason}")
            }
            DownReason::MppeRequired(r) => f.write_str(r),
            DownReason::AddressPoolExhausted => f.write_str("no IP address available"),
            DownReason::LoopedBack => f.write_str("link is looped back"),
            DownReason::LowerLayerDown => f.write_str("lower layer down"),
        }
    }
}

/// What the session tells the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Server: look the user up (chap-secrets) and answer with [`Session::provide_secret`].
    SecretRequest { peer_name: String },
    Authenticated {
        peer_name: String,
        method: AuthMethod,
    },
    AuthFailed {
        peer_name: String,
        method: AuthMethod,
    },
    /// Server: authentication succeeded; answer with [`Session::assign_address`].
    AddressRequest { peer_name: String },
    /// IP can flow. `mtu`: the largest IPv4 packet [`Session::encapsulate`] accepts.
    Up {
        local: Ipv4Addr,
        peer: Ipv4Addr,
        dns: [Option<Ipv4Addr>; 2],
        mppe: Option<MppeMode>,
        mtu: u16,
    },
    /// The link is finished; the daemon clears the call.
    Down { reason: DownReason },
}

/// The result of [`Session::decapsulate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decap {
    /// An IPv4 packet for the TUN at `buf[start..start + len]`.
    Ip {
        start: usize,
        len: usize,
    },
    /// Handled by the control plane (including Protocol-Rejects): poll_transmit/poll_event.
    Consumed,
    Dropped(DropReason),
}

/// Why a received frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Bad PPP header or control packet, or a range outside the buffer.
    Malformed,
    /// The link is Dead.
    LinkDead,
    /// Data before `Up`.
    NotUp,
    /// Clear IPv4 while MPPE is required or in use.
    ClearWhileEncrypted,
    /// An MPPE frame without negotiated MPPE.
    NoMppe,
    /// MPPE refused the packet.
    Mppe(MppeError),
    /// A protocol we do not carry (e.g. IPv6 inside MPPE).
    UnsupportedProtocol(u16),
    /// A control packet for a protocol not running in this phase.
    WrongPhase,
}

/// Why [`Session::encapsulate`] refused a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("the link is not up")]
    NotUp,
    #[error("packet range {start}+{len} is outside the {buf}-byte buffer")]
    OutOfBounds {
        start: usize,
        len: usize,
        buf: usize,
    },
    #[error("need {need} bytes of headroom, have {have}")]
    Headroom { need: usize, have: usize },
    #[error("packet of {len} bytes exceeds the link MTU {mtu}")]
    TooLarge { len: usize, mtu: u16 },
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub rx_frames: u64,
    pub rx_control: u64,
    pub rx_ip_packets: u64,
    pub rx_ip_bytes: u64,
    pub tx_control: u64,
    pub tx_ip_packets: u64,
    pub tx_ip_bytes: u64,
    pub dropped_malformed: u64,
    pub dropped_not_up: u64,
    pub dropped_clear: u64,
    pub dropped_mppe: u64,
    pub dropped_unsupported: u64,
    pub dropped_wrong_phase: u64,
    pub protocol_rejects_sent: u64,
    pub reset_requests_sent: u64,
}

enum Auth {
    None,
    Server(AuthServer),
    Client(AuthClient),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Address {
    Unasked,
    Pending,
    Assigned(Ipv4Addr),
}

/// MPPE overhead on the inner packet: MPPE header + the 2-byte protocol inside.
const MPPE_OVERHEAD: u16 = 4;

/// Undecryptable MPPE packets in a row after which the link is ended (Linux ppp_mppe's
/// SANITY_MAX).
pub const MPPE_SANITY_MAX: u32 = 1600;

/// One PPP link.
pub struct Session {
    role: Role,
    our_name: String,
    auth_policy: AuthPolicy,
    mppe_policy: MppePolicy,
    ipcp_policy: IpcpPolicy,
    fsm_policy: FsmPolicy,
    mtu_limit: u16,
    phase: Phase,
    entropy: Box<dyn Entropy>,
    lcp: Lcp,
    auth: Auth,
    authenticated: Option<(String, AuthMethod, Option<KeyMaterial>)>,
    ccp: Option<Ccp>,
    ipcp: Ipcp,
    address: Address,
    tx_hc: HeaderCompression,
    enc: Option<MppeEncrypter>,
    dec: Option<MppeDecrypter>,
    mode: Option<MppeMode>,
    up: bool,
    mtu: u16,
    down_reason: Option<DownReason>,
    down_reported: bool,
    reset_sent_at: Option<Instant>,
    /// MPPE packets in a row that did not decrypt to a packet we carry (see
    /// [`MPPE_SANITY_MAX`]).
    mppe_bad_run: u32,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<SessionEvent>,
    stats: SessionStats,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("phase", &self.phase)
            .field("lcp", &self.lcp.fsm.state())
            .field("ipcp", &self.ipcp.fsm.state())
            .field("ccp", &self.ccp.as_ref().map(|c| c.fsm.state()))
            .field("up", &self.up)
            .field("mppe", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Headroom [`Session::encapsulate`] needs before the packet: `FF 03` + protocol (2) +
    /// MPPE header (2) + inner protocol (2).
    pub const HEADROOM: usize = 8;

    pub fn new(_now: Instant, cfg: SessionConfig, mut entropy: Box<dyn Entropy>) -> Session {
        let mut seed = [0u8; 8];
        entropy.fill(&mut seed);
        let server = cfg.role == Role::Server;
        let lcp_role = if server {
            LcpRole::Authenticator {
                methods: cfg.auth.methods.clone(),
            }
        } else {
            LcpRole::Authenticatee {
                methods: cfg.auth.methods.clone(),
            }
        };
        let mtu_limit = cfg.lcp.mtu;
        Session {
            lcp: Lcp::new(
                cfg.lcp,
                lcp_role,
                cfg.fsm,
                MagicSource::new(u64::from_be_bytes(seed)),
            ),
            ipcp: Ipcp::new(cfg.ipcp.clone(), server, cfg.fsm),
            role: cfg.role,
            our_name: cfg.our_name,
            auth_policy: cfg.auth,
            mppe_policy: cfg.mppe,
            ipcp_policy: cfg.ipcp,
            fsm_policy: cfg.fsm,
            mtu_limit,
            phase: Phase::Dead,
            entropy,
            auth: Auth::None,
            authenticated: None,
            ccp: None,
            address: Address::Unasked,
            tx_hc: HeaderCompression::NONE,
            enc: None,
            dec: None,
            mode: None,
            up: false,
            mtu: 0,
            down_reason: None,
            down_reported: false,
            reset_sent_at: None,
            mppe_bad_run: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    fn is_server(&self) -> bool {
        self.role == Role::Server
    }

    // ---- the public contract ------------------------------------------------------------

    /// The lower layer is up (the PPTP call is connected): LCP starts.
    pub fn open(&mut self, now: Instant) {
        if self.phase != Phase::Dead || self.down_reported {
            return;
        }
        self.phase = Phase::Establish;
        self.lcp.fsm.open(now, &mut self.lcp.options);
        self.lcp.fsm.up(now, &mut self.lcp.options);
        self.pump(now);
    }

    /// Politely ends the link: LCP Terminate-Request with `reason`; `Down` follows on the
    /// Terminate-Ack or after Max-Terminate timeouts.
    pub fn close(&mut self, now: Instant, reason: &str) {
        if self.down_reported {
            return;
        }
        self.set_reason(DownReason::LocalClose(reason.to_string()));
        self.close_lcp(now, reason);
        self.pump(now);
        if matches!(self.lcp.fsm.state(), State::Initial | State::Closed) {
            // Nothing was started (or it already finished): down right away.
            self.report_down();
        }
    }

    /// The lower layer went away (call cleared, GRE dead): no more packets can be sent.
    pub fn lower_layer_down(&mut self, now: Instant) {
        if self.down_reported {
            return;
        }
        self.set_reason(DownReason::LowerLayerDown);
        self.lcp.fsm.down();
        self.pump(now);
        self.transmit.clear();
        self.report_down();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.down_reported {
            return;
        }
        self.lcp.handle_timeout(now);
        match &mut self.auth {
            Auth::Server(s) => s.handle_timeout(now),
            Auth::Client(c) => c.handle_timeout(now),
            Auth::None => {}
        }
        if let Some(ccp) = &mut self.ccp {
            ccp.fsm.handle_timeout(now, &mut ccp.options);
        }
        self.ipcp.fsm.handle_timeout(now, &mut self.ipcp.options);
        self.pump(now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.down_reported {
            return None;
        }
        let auth = match &self.auth {
            Auth::Server(s) => s.poll_timeout(),
            Auth::Client(c) => c.poll_timeout(),
            Auth::None => None,
        };
        [
            self.lcp.poll_timeout(),
            auth,
            self.ccp.as_ref().and_then(|c| c.fsm.poll_timeout()),
            self.ipcp.fsm.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next control frame to send (a complete PPP frame for the GRE payload).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The answer to [`SessionEvent::SecretRequest`]; `None` = unknown user.
    pub fn provide_secret(&mut self, now: Instant, secret: Option<Secret>) {
        if let Auth::Server(s) = &mut self.auth {
            s.provide_secret(now, secret.as_ref(), self.entropy.as_mut());
        }
        self.pump(now);
    }

    /// While a [`SessionEvent::SecretRequest`] is unanswered: what the peer sent, for a
    /// verdict made elsewhere (RADIUS), given with [`Session::provide_verdict`].
    pub fn pending_credentials(&self) -> Option<PeerCredentials> {
        match &self.auth {
            Auth::Server(s) => s.credentials(),
            _ => None,
        }
    }

    /// The answer to [`SessionEvent::SecretRequest`] as an external verdict instead of a
    /// secret (see [`ExternalVerdict`]).
    pub fn provide_verdict(&mut self, now: Instant, verdict: ExternalVerdict) {
        if let Auth::Server(s) = &mut self.auth {
            s.provide_verdict(now, verdict, self.entropy.as_mut());
        }
        self.pump(now);
    }

    /// The answer to [`SessionEvent::AddressRequest`]; `None` = pool exhausted (the link is
    /// terminated).
    pub fn assign_address(&mut self, now: Instant, addr: Option<Ipv4Addr>) {
        if self.address != Address::Pending {
            return;
        }
        match addr {
            Some(a) => {
                self.address = Address::Assigned(a);
                self.ipcp.options.set_peer_address(a);
                if self.phase == Phase::Network {
                    self.start_ipcp(now);
                }
            }
            None => {
                self.address = Address::Unasked;
                self.set_reason(DownReason::AddressPoolExhausted);
                self.close_lcp(now, "No IP address available");
            }
        }
        self.pump(now);
    }

    pub fn state(&self) -> Phase {
        self.phase
    }

    /// `Up` was reported and IP can flow.
    pub fn is_up(&self) -> bool {
        self.up
    }

    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    pub fn mppe_mode(&self) -> Option<MppeMode> {
        self.mode
    }

    /// The authenticated peer name (server) or the server's name (client), once known.
    pub fn peer_name(&self) -> Option<&str> {
        self.authenticated.as_ref().map(|a| a.0.as_str())
    }

    // ---- data path ----------------------------------------------------------------------

    /// Wraps the IPv4 packet at `buf[start..start + len]` into a PPP frame in place (MPPE-
    /// encrypted when negotiated). Needs [`Session::HEADROOM`] bytes before `start`.
    /// Returns the frame's `(start, len)`.
    pub fn encapsulate(
        &mut self,
        buf: &mut [u8],
        start: usize,
        len: usize,
    ) -> Result<(usize, usize), DataError> {
        if !self.up {
            return Err(DataError::NotUp);
        }
        let end =
            start
                .checked_add(len)
                .filter(|&e| e <= buf.len())
                .ok_or(DataError::OutOfBounds {
                    start,
                    len,
                    buf: buf.len(),
                })?;
        if len > usize::from(self.mtu) {
            return Err(DataError::TooLarge { len, mtu: self.mtu });
        }
        let hc = self.tx_hc;
        let frame_start = match &mut self.enc {
            Some(enc) => {
                let need = 4 + hc.header_len(Protocol::Compressed);
                if start < need {
                    return Err(DataError::Headroom { need, have: start });
                }
                let inner = start - 2;
                buf[inner..start].copy_from_slice(&[0x00, 0x21]);
                let hdr = enc.encrypt(&mut buf[inner..end]);
                let h = inner - 2;
                buf[h..inner].copy_from_slice(&hdr);
                hc.write_before(Protocol::Compressed, buf, h)
                    .ok_or(DataError::Headroom { need, have: start })?
            }
            None => {
                let need = hc.header_len(Protocol::Ipv4);
                hc.write_before(Protocol::Ipv4, buf, start)
                    .ok_or(DataError::Headroom { need, have: start })?
            }
        };
        self.stats.tx_ip_packets += 1;
        self.stats.tx_ip_bytes += len as u64;
        Ok((frame_start, end - frame_start))
    }

    /// Takes one PPP frame (a GRE payload) at `buf[start..start + len]`: an IPv4 packet for
    /// the TUN (decrypted in place), or a control frame for the session.
    pub fn decapsulate(&mut self, now: Instant, buf: &mut [u8], start: usize, len: usize) -> Decap {
        let Some(end) = start.checked_add(len).filter(|&e| e <= buf.len()) else {
            self.stats.dropped_malformed += 1;
            return Decap::Dropped(DropReason::Malformed);
        };
        if self.down_reported || self.phase == Phase::Dead {
            return Decap::Dropped(DropReason::LinkDead);
        }
        self.stats.rx_frames += 1;
        let hdr = match FrameHeader::parse(&buf[start..end]) {
            Ok(h) => h,
            Err(_) => {
                self.stats.dropped_malformed += 1;
                return Decap::Dropped(DropReason::Malformed);
            }
        };
        let info = start + hdr.len;
        match hdr.protocol {
            Protocol::Ipv4 => {
                if !self.up {
                    self.stats.dropped_not_up += 1;
                    Decap::Dropped(DropReason::NotUp)
                } else if self.mode.is_some() || self.mppe_policy.required {
                    self.stats.dropped_clear += 1;
                    Decap::Dropped(DropReason::ClearWhileEncrypted)
                } else {
                    self.count_rx_ip(end - info);
                    Decap::Ip {
                        start: info,
                        len: end - info,
                    }
                }
            }
            Protocol::Compressed => self.decap_mppe(now, buf, info, end),
            p if p.is_control() => {
                self.stats.rx_control += 1;
                let r = self.control_frame(now, p, &buf[info..end]);
                self.pump(now);
                r
            }
            p => {
                // A data protocol we do not carry (IPv6 without IPV6CP, IPX, ...).
                self.stats.dropped_unsupported += 1;
                if self.lcp.is_opened() {
                    self.send_protocol_reject(p.number(), &buf[info..end]);
                    self.pump(now);
                    Decap::Consumed
                } else {
                    Decap::Dropped(DropReason::UnsupportedProtocol(p.number()))
                }
            }
        }
    }

    fn count_rx_ip(&mut self, len: usize) {
        self.stats.rx_ip_packets += 1;
        self.stats.rx_ip_bytes += len as u64;
    }

    /// Counts one MPPE packet that could not be used; after [`MPPE_SANITY_MAX`] in a row the
    /// keys are out of step for good (e.g. more than 2047 packets lost in a row: the coherency
    /// count then looks late, and after it wraps every packet decrypts to garbage), and the
    /// link is ended as Linux's ppp_mppe does (DECOMP_FATALERROR), rather than staying up while
    /// passing nothing.
    fn mppe_bad(&mut self, now: Instant) {
        self.mppe_bad_run = self.mppe_bad_run.saturating_add(1);
        if self.mppe_bad_run == MPPE_SANITY_MAX {
            self.up = false;
            self.fail_mppe(now, "MPPE keys out of step: too many undecryptable packets");
            self.pump(now);
        }
    }

    fn decap_mppe(&mut self, now: Instant, buf: &mut [u8], info: usize, end: usize) -> Decap {
        let Some(dec) = self.dec.as_mut() else {
            self.stats.dropped_mppe += 1;
            return Decap::Dropped(DropReason::NoMppe);
        };
        let Ok((header, data)) = mppe::split_header(&mut buf[info..end]) else {
            self.stats.dropped_malformed += 1;
            return Decap::Dropped(DropReason::Malformed);
        };
        match dec.decrypt(header, data) {
            Ok(()) => {}
            Err(e) => {
                self.stats.dropped_mppe += 1;
                let resend = match e {
                    MppeError::ResyncNeeded => true,
                    MppeError::AwaitingFlush => {
                        matches!(self.reset_sent_at, Some(t) if now >= t + Duration::from_secs(1))
                    }
                    _ => false,
                };
                if resend {
                    self.send_reset_request(now);
                }
                // Stateful mode recovers through Reset-Request; a stateless receiver has no
                // such way back.
                if self.mode.is_some_and(|m| m.stateless) {
                    self.mppe_bad(now);
                }
                return Decap::Dropped(DropReason::Mppe(e));
            }
        }
        self.reset_sent_at = None;
        // The inner protocol: two octets as Linux sends it, one if the peer compressed it.
        let inner = info + 2;
        let (proto, plen) = match buf.get(inner..end) {
            Some([b, ..]) if b & 1 == 1 => (u16::from(*b), 1),
            Some([a, b, ..]) => (u16::from_be_bytes([*a, *b]), 2),
            _ => {
                self.stats.dropped_malformed += 1;
                return Decap::Dropped(DropReason::Malformed);
            }
        };
        if proto != Protocol::Ipv4.number() {
            self.stats.dropped_unsupported += 1;
            // IPv6 (0x0057) is a protocol a peer may send; anything else after decryption is
            // what a wrong key gives.
            if proto != 0x0057 && self.mode.is_some_and(|m| m.stateless) {
                self.mppe_bad(now);
            }
            return Decap::Dropped(DropReason::UnsupportedProtocol(proto));
        }
        if !self.up {
            self.stats.dropped_not_up += 1;
            return Decap::Dropped(DropReason::NotUp);
        }
        self.mppe_bad_run = 0;
        let s = inner + plen;
        self.count_rx_ip(end - s);
        Decap::Ip {
            start: s,
            len: end - s,
        }
    }

    fn send_reset_request(&mut self, now: Instant) {
        let Some(ccp) = &mut self.ccp else {
            return;
        };
        if ccp.fsm.state() != State::Opened {
            return;
        }
        let id = ccp.fsm.next_id();
        self.reset_sent_at = Some(now);
        self.stats.reset_requests_sent += 1;
        self.push_frame(Protocol::Ccp, emit_control(Code::ResetRequest, id, &[]));
    }

    // ---- control plane ------------------------------------------------------------------

    fn control_frame(&mut self, now: Instant, protocol: Protocol, info: &[u8]) -> Decap {
        let Ok(pkt) = ControlPacket::parse(info) else {
            self.stats.dropped_malformed += 1;
            return Decap::Dropped(DropReason::Malformed);
        };
        match protocol {
            Protocol::Lcp => self.lcp.input(now, pkt),
            Protocol::Pap | Protocol::Chap => {
                if !matches!(self.phase, Phase::Authenticate | Phase::Network) {
                    self.stats.dropped_wrong_phase += 1;
                    return Decap::Dropped(DropReason::WrongPhase);
                }
                match &mut self.auth {
                    Auth::Server(s) => s.input(protocol, pkt),
                    Auth::Client(c) => c.input(now, protocol, pkt, self.entropy.as_mut()),
                    Auth::None => {
                        self.stats.dropped_wrong_phase += 1;
                        return Decap::Dropped(DropReason::WrongPhase);
                    }
                }
            }
            Protocol::Ccp if self.phase == Phase::Network => match &mut self.ccp {
                Some(ccp) => {
                    if let Input::Extension(p) = ccp.fsm.input(now, &mut ccp.options, pkt) {
                        self.ccp_extension(p);
                    }
                }
                None => self.send_protocol_reject(protocol.number(), info),
            },
            Protocol::Ipcp if self.phase == Phase::Network => {
                if let Input::Discarded(_) = self.ipcp.fsm.input(now, &mut self.ipcp.options, pkt) {
                    self.stats.dropped_wrong_phase += 1;
                }
            }
            Protocol::Ccp | Protocol::Ipcp => {
                // RFC 1661 §3.4/§3.5: NCP packets before the Network phase are discarded.
                self.stats.dropped_wrong_phase += 1;
                return Decap::Dropped(DropReason::WrongPhase);
            }
            _ => {
                // IPV6CP (pppd without +ipv6), IPXCP, BACP, ...
                if self.lcp.is_opened() {
                    self.send_protocol_reject(protocol.number(), info);
                } else {
                    self.stats.dropped_wrong_phase += 1;
                    return Decap::Dropped(DropReason::WrongPhase);
                }
            }
        }
        Decap::Consumed
    }

    fn ccp_extension(&mut self, pkt: ControlPacket<'_>) {
        let opened = self
            .ccp
            .as_ref()
            .is_some_and(|c| c.fsm.state() == State::Opened);
        match pkt.code {
            Code::ResetRequest if opened => {
                // RFC 1962 §2.1: reset our compressor (encrypter) and acknowledge.
                if let Some(enc) = &mut self.enc {
                    enc.reset();
                }
                self.push_frame(Protocol::Ccp, emit_control(Code::ResetAck, pkt.id, &[]));
            }
            Code::ResetAck => self.reset_sent_at = None,
            _ => {}
        }
    }

    fn send_protocol_reject(&mut self, protocol: u16, info: &[u8]) {
        if !self.lcp.is_opened() {
            return;
        }
        self.stats.protocol_rejects_sent += 1;
        self.lcp.protocol_reject(protocol, info);
    }

    fn push_frame(&mut self, protocol: Protocol, packet: Vec<u8>) {
        self.stats.tx_control += 1;
        self.transmit.push_back(self.tx_hc.frame(protocol, &packet));
    }

    fn set_reason(&mut self, r: DownReason) {
        if self.down_reason.is_none() {
            self.down_reason = Some(r);
        }
    }

    fn close_lcp(&mut self, now: Instant, text: &str) {
        if matches!(self.lcp.fsm.state(), State::Opened) {
            self.phase = Phase::Terminate;
        }
        self.lcp.fsm.close(now, text);
    }

    fn report_down(&mut self) {
        if self.down_reported {
            return;
        }
        let reason = self
            .down_reason
            .take()
            .unwrap_or_else(|| match self.lcp.fsm.peer_reason() {
                Some(r) => DownReason::PeerTerminated(r.to_string()),
                None => DownReason::NegotiationFailed {
                    protocol: Protocol::Lcp,
                    reason: "no response from peer".into(),
                },
            });
        self.down_reported = true;
        self.phase = Phase::Dead;
        self.up = false;
        self.enc = None;
        self.dec = None;
        self.events.push_back(SessionEvent::Down { reason });
    }

    /// Processes everything the components produced until nothing is left.
    fn pump(&mut self, now: Instant) {
        for _ in 0..64 {
            let mut progress = false;
            for o in self.lcp.fsm.drain() {
                progress = true;
                self.on_lcp(now, o);
            }
            for p in self.lcp.take_extra() {
                progress = true;
                self.push_frame(Protocol::Lcp, p);
            }
            for n in self.lcp.take_notices() {
                progress = true;
                self.on_lcp_notice(now, n);
            }
            let auth_out = match &mut self.auth {
                Auth::Server(s) => s.drain(),
                Auth::Client(c) => c.drain(),
                Auth::None => Vec::new(),
            };
            for o in auth_out {
                progress = true;
                self.on_auth(now, o);
            }
            let ccp_out = self.ccp.as_mut().map(|c| c.fsm.drain()).unwrap_or_default();
            for o in ccp_out {
                progress = true;
                self.on_ccp(now, o);
            }
            for o in self.ipcp.fsm.drain() {
                progress = true;
                self.on_ipcp(now, o);
            }
            if !progress {
                break;
            }
        }
    }

    fn on_lcp(&mut self, now: Instant, o: FsmOutput) {
        match o {
            FsmOutput::Send(p) => self.push_frame(Protocol::Lcp, p),
            FsmOutput::Up => self.lcp_up(now),
            FsmOutput::Down => self.lcp_down(),
            FsmOutput::Started => {}
            FsmOutput::Finished => self.report_down(),
            FsmOutput::Failed(reason) => {
                let r = if reason.contains("authenticate") {
                    DownReason::AuthFailed(reason)
                } else {
                    DownReason::NegotiationFailed {
                        protocol: Protocol::Lcp,
                        reason,
                    }
                };
                self.set_reason(r);
            }
        }
    }

    fn on_lcp_notice(&mut self, now: Instant, n: LcpNotice) {
        match n {
            LcpNotice::ProtocolRejected(Protocol::Ipcp) => self.ipcp.fsm.rxj_minus(now),
            LcpNotice::ProtocolRejected(Protocol::Ccp) => {
                if let Some(ccp) = &mut self.ccp {
                    ccp.fsm.rxj_minus(now);
                }
            }
            LcpNotice::ProtocolRejected(_) => {}
            LcpNotice::PeerNotResponding => {
                self.set_reason(DownReason::PeerNotResponding);
                self.close_lcp(now, "Peer not responding");
            }
            LcpNotice::LoopedBack => {
                self.set_reason(DownReason::LoopedBack);
                self.close_lcp(now, "Loopback detected");
            }
        }
    }

    fn lcp_up(&mut self, now: Instant) {
        self.lcp.layer_up(now);
        self.tx_hc = self.lcp.options.tx_compression();
        self.phase = Phase::Authenticate;
        let mut id = [0u8; 1];
        self.entropy.fill(&mut id);
        match &self.role {
            Role::Server => match self.lcp.options.auth_we_require() {
                Some(m) => {
                    let mut s =
                        AuthServer::new(m, self.auth_policy.clone(), self.our_name.clone(), id[0]);
                    s.start(now, self.entropy.as_mut());
                    self.auth = Auth::Server(s);
                }
                None => self.begin_network(now),
            },
            Role::Client { user, password } => match self.lcp.options.auth_peer_requires() {
                Some(m) => {
                    let mut c = AuthClient::new(
                        m,
                        self.auth_policy.clone(),
                        user.clone(),
                        password.clone(),
                        id[0],
                    );
                    c.start(now);
                    self.auth = Auth::Client(c);
                }
                None => self.begin_network(now),
            },
        }
    }

    /// LCP left Opened: the network layers go down with it.
    fn lcp_down(&mut self) {
        self.lcp.layer_down();
        self.up = false;
        self.enc = None;
        self.dec = None;
        self.mode = None;
        self.auth = Auth::None;
        self.authenticated = None;
        self.tx_hc = HeaderCompression::NONE;
        if let Some(ccp) = &mut self.ccp {
            ccp.fsm.down();
            ccp.fsm.drain();
        }
        self.ccp = None;
        self.ipcp.fsm.down();
        self.ipcp.fsm.drain();
        self.phase = match self.lcp.fsm.state() {
            State::Closing | State::Stopping => Phase::Terminate,
            _ => Phase::Establish,
        };
        if self.lcp.fsm.state() == State::Stopping {
            // Opened + Terminate-Request: remember why, in case close() comes before tlf.
            if let Some(r) = self.lcp.fsm.peer_reason() {
                let r = DownReason::PeerTerminated(r.to_string());
                self.set_reason(r);
            }
        }
    }

    fn on_auth(&mut self, now: Instant, o: AuthOutput) {
        match o {
            AuthOutput::Send(p, pkt) => self.push_frame(p, pkt),
            AuthOutput::NeedSecret(peer_name) => self
                .events
                .push_back(SessionEvent::SecretRequest { peer_name }),
            AuthOutput::Success {
                peer_name,
                method,
                keys,
            } => {
                self.events.push_back(SessionEvent::Authenticated {
                    peer_name: peer_name.clone(),
                    method,
                });
                self.authenticated = Some((peer_name, method, keys));
                self.begin_network(now);
            }
            AuthOutput::Failure {
                peer_name,
                method,
                reason,
            } => {
                self.events
                    .push_back(SessionEvent::AuthFailed { peer_name, method });
                self.set_reason(DownReason::AuthFailed(reason));
                // pppd's Terminate-Request texts.
                let text = if self.is_server() {
                    "Authentication failed"
                } else {
                    "Failed to authenticate ourselves to peer"
                };
                self.close_lcp(now, text);
            }
        }
    }

    fn begin_network(&mut self, now: Instant) {
        self.phase = Phase::Network;
        let keys = self.authenticated.as_ref().is_some_and(|a| a.2.is_some());
        if self.mppe_policy.any_allowed() && keys {
            let mut ccp = Ccp::new(self.mppe_policy, self.fsm_policy);
            ccp.fsm.open(now, &mut ccp.options);
            ccp.fsm.up(now, &mut ccp.options);
            self.ccp = Some(ccp);
        } else if self.mppe_policy.required {
            self.fail_mppe(now, "MPPE required but not available");
            return;
        }
        match self.address {
            _ if !self.is_server() => self.start_ipcp(now),
            Address::Assigned(_) => self.start_ipcp(now),
            Address::Pending => {}
            Address::Unasked => {
                self.address = Address::Pending;
                let peer_name = self
                    .authenticated
                    .as_ref()
                    .map(|a| a.0.clone())
                    .unwrap_or_default();
                self.events
                    .push_back(SessionEvent::AddressRequest { peer_name });
            }
        }
    }

    /// Opens IPCP, unless MPPE is required and CCP is not up yet: then IPCP waits for
    /// [`Self::ccp_up`] (pppd's `start_networks`/`continue_networks`: with MPPE required no
    /// network protocol starts before CCP, so a peer never sees our IPCP Configure-Request
    /// while its own IPCP is still closed and answers it with a Terminate-Ack).
    fn start_ipcp(&mut self, now: Instant) {
        if self.mppe_policy.required && self.mode.is_none() {
            return;
        }
        // Once per lower-layer Up: a second call (CCP renegotiated) finds IPCP already going.
        if !matches!(self.ipcp.fsm.state(), State::Initial | State::Starting) {
            return;
        }
        self.ipcp.fsm.open(now, &mut self.ipcp.options);
        self.ipcp.fsm.up(now, &mut self.ipcp.options);
    }

    /// Starts IPCP once everything it waits for is there (address, and CCP when required).
    fn continue_networks(&mut self, now: Instant) {
        if self.phase != Phase::Network {
            return;
        }
        if !self.is_server() || matches!(self.address, Address::Assigned(_)) {
            self.start_ipcp(now);
        }
    }

    fn fail_mppe(&mut self, now: Instant, text: &str) {
        self.set_reason(DownReason::MppeRequired(text.to_string()));
        self.close_lcp(now, text);
    }

    fn on_ccp(&mut self, now: Instant, o: FsmOutput) {
        let in_network = self.phase == Phase::Network;
        match o {
            FsmOutput::Send(p) => self.push_frame(Protocol::Ccp, p),
            FsmOutput::Up => self.ccp_up(now),
            FsmOutput::Down => {
                let had = self.mode.is_some();
                self.enc = None;
                self.dec = None;
                self.mode = None;
                if in_network && (had || self.mppe_policy.required) {
                    // pppd: "MPPE disabled" — never fall back to clear data.
                    self.up = false;
                    self.fail_mppe(now, "MPPE disabled");
                }
            }
            FsmOutput::Started => {}
            FsmOutput::Finished => {
                if in_network && self.mppe_policy.required {
                    self.fail_mppe(now, "MPPE required but peer negotiation failed");
                } else {
                    self.check_up();
                }
            }
            FsmOutput::Failed(reason) => {
                if self.mppe_policy.required {
                    self.fail_mppe(now, &reason);
                }
            }
        }
    }

    fn ccp_up(&mut self, now: Instant) {
        let Some(ccp) = &self.ccp else {
            return;
        };
        match ccp.options.agreed_mode() {
            Ok(Some(mode)) => {
                let keys = match self.authenticated.as_ref().and_then(|a| a.2.as_ref()) {
                    Some(k) => match k.start_keys(mode.key_length, self.is_server()) {
                        Ok(keys) => keys,
                        Err(why) => {
                            self.fail_mppe(now, why);
                            return;
                        }
                    },
                    None => {
                        self.fail_mppe(now, "MPPE required but not available");
                        return;
                    }
                };
                self.enc = Some(MppeEncrypter::new(
                    &keys.send,
                    mode.key_length,
                    mode.stateless,
                ));
                self.dec = Some(MppeDecrypter::new(
                    &keys.recv,
                    mode.key_length,
                    mode.stateless,
                ));
                self.mode = Some(mode);
                self.continue_networks(now);
                self.check_up();
            }
            Ok(None) if !self.mppe_policy.required => self.check_up(),
            Ok(None) => self.fail_mppe(now, "MPPE required but peer negotiation failed"),
            Err(e) if self.mppe_policy.required => self.fail_mppe(now, e),
            Err(e) => {
                // Not required: give up on MPPE (one-way encryption is not an option).
                if let Some(ccp) = &mut self.ccp {
                    ccp.fsm.close(now, e);
                }
            }
        }
    }

    fn on_ipcp(&mut self, now: Instant, o: FsmOutput) {
        let in_network = self.phase == Phase::Network;
        match o {
            FsmOutput::Send(p) => self.push_frame(Protocol::Ipcp, p),
            FsmOutput::Up => {
                if !self.is_server() && self.ipcp.options.local().is_unspecified() {
                    self.set_reason(DownReason::NegotiationFailed {
                        protocol: Protocol::Ipcp,
                        reason: "Could not determine local IP address".into(),
                    });
                    self.close_lcp(now, "Could not determine local IP address");
                } else {
                    self.check_up();
                }
            }
            FsmOutput::Down => self.up = false,
            FsmOutput::Started => {}
            FsmOutput::Finished => {
                if in_network {
                    let reason = match self.ipcp.fsm.peer_reason() {
                        Some(r) => format!("IPCP terminated by peer: {r}"),
                        None => "IPCP negotiation failed".into(),
                    };
                    self.set_reason(DownReason::NegotiationFailed {
                        protocol: Protocol::Ipcp,
                        reason,
                    });
                    self.close_lcp(now, "No network protocols running");
                }
            }
            FsmOutput::Failed(reason) => self.set_reason(DownReason::NegotiationFailed {
                protocol: Protocol::Ipcp,
                reason,
            }),
        }
    }

    /// Reports `Up` once IPCP is Opened and MPPE is settled as the policy demands.
    fn check_up(&mut self) {
        if self.up || self.phase != Phase::Network || self.ipcp.fsm.state() != State::Opened {
            return;
        }
        let mppe_ok = match &self.ccp {
            None => !self.mppe_policy.required,
            Some(_) if self.mode.is_some() => true,
            Some(_) if self.mppe_policy.required => false,
            Some(c) => !matches!(
                c.fsm.state(),
                State::ReqSent | State::AckRcvd | State::AckSent
            ),
        };
        if !mppe_ok {
            return;
        }
        let link_mtu = self.lcp.options.peer_mru().min(self.mtu_limit);
        let overhead = if self.mode.is_some() {
            MPPE_OVERHEAD
        } else {
            0
        };
        self.mtu = link_mtu.saturating_sub(overhead);
        self.up = true;
        let dns = if self.is_server() {
            self.ipcp_policy.dns
        } else {
            self.ipcp.options.dns()
        };
        self.events.push_back(SessionEvent::Up {
            local: self.ipcp.options.local(),
            peer: self.ipcp.options.peer(),
            dns,
            mppe: self.mode,
            mtu: self.mtu,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Seeded(u64);
    impl Entropy for Seeded {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = (self.0 >> 56) as u8;
            }
        }
    }

    fn pair() -> (Session, Session, Instant) {
        let t0 = Instant::now();
        let mut server_cfg = SessionConfig {
            our_name: "srv".into(),
            ..SessionConfig::default()
        };
        server_cfg.ipcp.local = Ipv4Addr::new(10, 0, 0, 1);
        server_cfg.auth.methods = vec![AuthMethod::MsChapV2];
        let client_cfg = SessionConfig {
            role: Role::Client {
                user: "u".into(),
                password: "p".into(),
            },
            ..SessionConfig::default()
        };
        let mut s = Session::new(t0, server_cfg, Box::new(Seeded(1)));
        let mut c = Session::new(t0, client_cfg, Box::new(Seeded(2)));
        s.open(t0);
        c.open(t0);
        for _ in 0..50 {
            shuttle(&mut s, &mut c, t0);
            while let Some(e) = s.poll_event() {
                match e {
                    SessionEvent::SecretRequest { .. } => s.provide_secret(t0, Some("p".into())),
                    SessionEvent::AddressRequest { .. } => {
                        s.assign_address(t0, Some(Ipv4Addr::new(10, 0, 0, 2)))
                    }
                    _ => {}
                }
            }
            while c.poll_event().is_some() {}
        }
        assert!(s.is_up() && c.is_up(), "{s:?} {c:?}");
        (s, c, t0)
    }

    /// Delivers every pending control frame both ways once.
    fn shuttle(s: &mut Session, c: &mut Session, now: Instant) {
        while let Some(mut f) = s.poll_transmit() {
            let l = f.len();
            c.decapsulate(now, &mut f, 0, l);
        }
        while let Some(mut f) = c.poll_transmit() {
            let l = f.len();
            s.decapsulate(now, &mut f, 0, l);
        }
    }

    /// Switches both ends to stateful MPPE with the keys they derived.
    fn make_stateful(x: &mut Session) {
        let mode = MppeMode {
            key_length: crate::mppe::KeyLength::Bits128,
            stateless: false,
        };
        let Some((_, _, Some(k @ KeyMaterial::MsChapV2 { .. }))) = &x.authenticated else {
            panic!("no keys")
        };
        let keys = k.start_keys(mode.key_length, x.is_server()).unwrap();
        x.enc = Some(MppeEncrypter::new(&keys.send, mode.key_length, false));
        x.dec = Some(MppeDecrypter::new(&keys.recv, mode.key_length, false));
        x.mode = Some(mode);
    }

    fn frame(tx: &mut Session, tag: u8) -> Vec<u8> {
        let mut buf = vec![0u8; Session::HEADROOM + 40];
        buf[Session::HEADROOM] = 0x45;
        buf[Session::HEADROOM + 1..].fill(tag);
        let (s, l) = tx.encapsulate(&mut buf, Session::HEADROOM, 40).unwrap();
        buf[s..s + l].to_vec()
    }

    fn rx(to: &mut Session, now: Instant, mut f: Vec<u8>) -> Decap {
        let l = f.len();
        let r = to.decapsulate(now, &mut f, 0, l);
        if let Decap::Ip { start, len } = r {
            assert_eq!(len, 40);
            assert_eq!(f[start], 0x45);
            assert!(f[start + 1..start + len].iter().all(|&b| b == f[start + 1]));
        }
        r
    }

    #[test]
    fn stateful_loss_is_recovered_by_reset_request() {
        let (mut s, mut c, t0) = pair();
        make_stateful(&mut s);
        make_stateful(&mut c);
        assert!(matches!(rx(&mut s, t0, frame(&mut c, 1)), Decap::Ip { .. }));
        let _lost = frame(&mut c, 2);
        // The gap: dropped, and a CCP Reset-Request (code 14) goes out.
        let r = rx(&mut s, t0, frame(&mut c, 3));
        assert_eq!(r, Decap::Dropped(DropReason::Mppe(MppeError::ResyncNeeded)));
        let req = s.poll_transmit().unwrap();
        let h = FrameHeader::parse(&req).unwrap();
        assert_eq!((h.protocol, req[h.len]), (Protocol::Ccp, 14));
        assert_eq!(s.stats().reset_requests_sent, 1);
        // That Reset-Request is lost too; packets keep being dropped, and after a second the
        // request is repeated.
        assert_eq!(
            rx(&mut s, t0, frame(&mut c, 4)),
            Decap::Dropped(DropReason::Mppe(MppeError::AwaitingFlush))
        );
        assert!(s.poll_transmit().is_none());
        let t1 = t0 + Duration::from_millis(1500);
        rx(&mut s, t1, frame(&mut c, 5));
        let mut req = s.poll_transmit().expect("repeated Reset-Request");
        // Delivered: the client acks and flushes its encrypter.
        let l = req.len();
        assert_eq!(c.decapsulate(t1, &mut req, 0, l), Decap::Consumed);
        let mut ack = c.poll_transmit().unwrap();
        let h = FrameHeader::parse(&ack).unwrap();
        assert_eq!((h.protocol, ack[h.len]), (Protocol::Ccp, 15));
        let l = ack.len();
        assert_eq!(s.decapsulate(t1, &mut ack, 0, l), Decap::Consumed);
        // The next packet carries the A bit and decrypts; so do the following ones.
        for tag in 6..20 {
            assert!(
                matches!(rx(&mut s, t1, frame(&mut c, tag)), Decap::Ip { .. }),
                "{tag}"
            );
        }
        // The other direction was never disturbed.
        for tag in 0..5 {
            assert!(matches!(
                rx(&mut c, t1, frame(&mut s, tag)),
                Decap::Ip { .. }
            ));
        }
    }

    #[test]
    fn stateless_loss_needs_no_reset() {
        let (mut s, mut c, t0) = pair();
        assert_eq!(s.mppe_mode().map(|m| m.stateless), Some(true));
        for i in 0..50u8 {
            let f = frame(&mut c, i);
            if i % 3 == 1 {
                continue; // lost
            }
            assert!(matches!(rx(&mut s, t0, f), Decap::Ip { .. }), "{i}");
        }
        assert!(s.poll_transmit().is_none());
        assert_eq!(s.stats().reset_requests_sent, 0);
    }
}
