//! The PPP option negotiation automaton (RFC 1661 §4), written once and shared by LCP, IPCP
//! and CCP.
//!
//! - §4.1 the state transition table: ten states, sixteen events, one method per event
//!   ([`Fsm::up`], [`Fsm::down`], [`Fsm::open`], [`Fsm::close`], [`Fsm::to_plus`],
//!   [`Fsm::to_minus`], [`Fsm::rcr_plus`], [`Fsm::rcr_minus`], [`Fsm::rca`], [`Fsm::rcn`],
//!   [`Fsm::rtr`], [`Fsm::rta`], [`Fsm::ruc`], [`Fsm::rxj_plus`], [`Fsm::rxj_minus`],
//!   [`Fsm::rxr`]), each a `match` on the state that is one row of the table.
//! - §4.3/§4.4 actions: tlu/tld/tls/tlf are reported as [`FsmOutput`]s; irc/zrc/scr/sca/scn/
//!   str/sta/scj/ser are performed here (packets are reported as [`FsmOutput::Send`]).
//! - §4.6 counters and timers: Restart timer, Max-Terminate, Max-Configure, Max-Failure, from a
//!   [`FsmPolicy`]. Time stays outside: [`Fsm::poll_timeout`] says when the restart timer is
//!   due and [`Fsm::handle_timeout`] turns it into TO+ or TO-.
//! - §5.1-§5.7: classifying received Configure-*/Terminate-*/Code-Reject packets into events
//!   ([`Fsm::input`]); per-protocol option knowledge is behind [`ConfigProtocol`].
//!
//! Choices the RFC leaves open (all as pppd's fsm.c does):
//! - the optional "restart" (`r`) behaviour of Open in Stopped/Stopping/Opened is not
//!   implemented: Open there only records that the link should stay open;
//! - Configure-Ack/Nak/Reject are accepted only when their Identifier matches our outstanding
//!   Configure-Request and no reply to that request was seen yet (stale and duplicate replies
//!   are discarded, so a late duplicate Ack cannot take an Opened link down);
//! - Terminate-Ack Identifiers are not checked (a mismatch would only delay the close);
//! - a Configure-* packet whose options are malformed (Length < 2 or past the end) is
//!   silently discarded (RFC 1661 §5: invalid packets are silently discarded);
//! - retransmissions (TO+) reuse the Identifier and bytes of the packet they repeat; every new
//!   Configure-Request gets a new Identifier (§5.1).

use std::time::{Duration, Instant};

use crate::frame::{emit_control, parse_options, Code, ControlPacket, RawOption};

/// The ten states of RFC 1661 §4.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initial,
    Starting,
    Closed,
    Stopped,
    Closing,
    Stopping,
    ReqSent,
    AckRcvd,
    AckSent,
    Opened,
}

impl State {
    /// States in which the restart timer runs (§4.6).
    pub const fn timer_runs(self) -> bool {
        matches!(
            self,
            State::Closing | State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent
        )
    }
}

/// Counters and timer of RFC 1661 §4.6 (pppd option names in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsmPolicy {
    /// Restart timer \[lcp-restart, ipcp-restart\]: 3 seconds.
    pub restart: Duration,
    /// Max-Configure \[lcp-max-configure\]: 10 Configure-Requests.
    pub max_configure: u32,
    /// Max-Terminate \[lcp-max-terminate\]: 2 Terminate-Requests.
    pub max_terminate: u32,
    /// Max-Failure \[lcp-max-failure\]: 5 Configure-Naks sent without an Ack before Naks turn
    /// into Rejects; also 5 Naks received before we treat a Nak as a Reject (as pppd does).
    pub max_failure: u32,
}

impl Default for FsmPolicy {
    fn default() -> Self {
        FsmPolicy {
            restart: Duration::from_secs(3),
            max_configure: 10,
            max_terminate: 2,
            max_failure: 5,
        }
    }
}

/// What the automaton asks its owner to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsmOutput {
    /// Send this control packet (Code, Identifier, Length, Data) with the protocol's number.
    Send(Vec<u8>),
    /// This-Layer-Up (tlu).
    Up,
    /// This-Layer-Down (tld).
    Down,
    /// This-Layer-Started (tls).
    Started,
    /// This-Layer-Finished (tlf).
    Finished,
    /// The protocol gave up negotiating (its Nak/Reject handling failed); the automaton has
    /// begun closing with this reason.
    Failed(String),
}

/// Negotiation cannot converge: the reason becomes the Terminate-Request text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NegotiationFailure(pub String);

/// Collects the verdicts on a peer's Configure-Request (RFC 1661 §5.1-§5.4): the reply is a
/// Configure-Reject if anything was rejected, else a Configure-Nak if anything was Nak'ed,
/// else a Configure-Ack echoing the request.
#[derive(Debug, Default)]
pub struct ReplyBuilder {
    reject_if_disagree: bool,
    naks: Vec<u8>,
    rejects: Vec<u8>,
}

impl ReplyBuilder {
    fn new(reject_if_disagree: bool) -> Self {
        ReplyBuilder {
            reject_if_disagree,
            ..Default::default()
        }
    }

    /// `true` once Max-Failure Naks were sent without an Ack: [`ReplyBuilder::nak`] now rejects.
    pub fn reject_if_disagree(&self) -> bool {
        self.reject_if_disagree
    }

    /// Nak `opt`, suggesting `suggested` as its data. Past Max-Failure this rejects `opt`
    /// instead (RFC 1661 §4.6).
    pub fn nak(&mut self, opt: &RawOption<'_>, suggested: &[u8]) {
        if self.reject_if_disagree {
            self.rejects.extend_from_slice(opt.bytes);
        } else {
            crate::frame::push_option(&mut self.naks, opt.kind, suggested);
        }
    }

    /// Nak an option the peer did not include, to suggest it (RFC 1661 §5.3). Dropped past
    /// Max-Failure.
    pub fn nak_missing(&mut self, kind: u8, suggested: &[u8]) {
        if !self.reject_if_disagree {
            crate::frame::push_option(&mut self.naks, kind, suggested);
        }
    }

    /// Reject `opt` (unknown, or a value we will not negotiate).
    pub fn reject(&mut self, opt: &RawOption<'_>) {
        self.rejects.extend_from_slice(opt.bytes);
    }

    /// The reply code and its options (`None` for options means "echo the request": Ack).
    fn finish(self) -> (Code, Option<Vec<u8>>) {
        if !self.rejects.is_empty() {
            (Code::ConfigureReject, Some(self.rejects))
        } else if !self.naks.is_empty() {
            (Code::ConfigureNak, Some(self.naks))
        } else {
            (Code::ConfigureAck, None)
        }
    }
}

/// Per-protocol option knowledge (LCP, IPCP, CCP), in the style of embassy's ppproto.
pub trait ConfigProtocol {
    /// A new negotiation begins (pppd's `resetci`): forget Naks/Rejects of earlier rounds.
    fn reset(&mut self);
    /// Append the options of our next Configure-Request.
    fn build_request(&mut self, out: &mut Vec<u8>);
    /// Judge the peer's Configure-Request option by option. Options not mentioned in `reply`
    /// are acknowledged. The protocol records the peer's values; the last request it judged
    /// before This-Layer-Up is the one that was acknowledged.
    fn check_request(&mut self, options: &[RawOption<'_>], reply: &mut ReplyBuilder);
    /// The peer acknowledged our request (already checked to be byte-identical).
    fn ack_received(&mut self, _options: &[RawOption<'_>]) {}
    /// The peer Nak'ed our request. `treat_as_reject` is set past Max-Failure: stop
    /// requesting the options concerned instead of adopting the suggested values.
    fn nak_received(
        &mut self,
        options: &[RawOption<'_>],
        treat_as_reject: bool,
    ) -> Result<(), NegotiationFailure>;
    /// The peer rejected these options of our request (checked to be ones we sent).
    fn reject_received(&mut self, options: &[RawOption<'_>]) -> Result<(), NegotiationFailure>;
    /// Codes beyond 1..=7 that this protocol handles itself (LCP: 8-13, CCP: 14-15). Any
    /// other code is answered with Code-Reject.
    fn extension_code(&self, _code: Code) -> bool {
        false
    }
}

/// The result of [`Fsm::input`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// Turned into an event (or deliberately ignored in the current state).
    Handled,
    /// Silently discarded (stale Identifier, malformed, wrong state).
    Discarded(&'static str),
    /// A code the protocol handles itself (see [`ConfigProtocol::extension_code`]).
    Extension(ControlPacket<'a>),
}

/// One instance of the automaton.
#[derive(Debug, Clone)]
pub struct Fsm {
    state: State,
    policy: FsmPolicy,
    restart_count: u32,
    deadline: Option<Instant>,
    /// Identifier counter for packets we originate.
    next_id: u8,
    /// Identifier and options of our outstanding Configure-Request.
    req_id: u8,
    request: Vec<u8>,
    /// A reply to `req_id` was already processed (pppd's `seen_ack`).
    seen_reply: bool,
    /// Identifier and data of our outstanding Terminate-Request.
    term_id: u8,
    term_reason: String,
    /// Configure-Naks sent since the last Configure-Ack we sent.
    naks_sent: u32,
    /// Configure-Naks received since the negotiation began.
    naks_received: u32,
    /// Longest Code-Reject we may send (the peer's MRU minus the 4-byte header).
    max_reject_data: usize,
    /// Reason in the last Terminate-Request received.
    peer_reason: Option<String>,
    out: Vec<FsmOutput>,
}

impl Fsm {
    pub fn new(policy: FsmPolicy) -> Fsm {
        Fsm {
            state: State::Initial,
            policy,
            restart_count: 0,
            deadline: None,
            next_id: 0,
            req_id: 0,
            request: Vec::new(),
            seen_reply: false,
            term_id: 0,
            term_reason: String::new(),
            naks_sent: 0,
            naks_received: 0,
            max_reject_data: 1500 - 4,
            peer_reason: None,
            out: Vec::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn policy(&self) -> &FsmPolicy {
        &self.policy
    }

    /// The restart counter (for tests and diagnostics).
    pub fn restart_count(&self) -> u32 {
        self.restart_count
    }

    /// Identifier of our outstanding Configure-Request.
    pub fn request_id(&self) -> u8 {
        self.req_id
    }

    /// The reason text of the last Terminate-Request the peer sent.
    pub fn peer_reason(&self) -> Option<&str> {
        self.peer_reason.as_deref()
    }

    /// Limits Code-Reject data to the peer's MRU (RFC 1661 §5.6).
    pub fn set_peer_mru(&mut self, mru: u16) {
        self.max_reject_data = usize::from(mru).saturating_sub(4).max(16);
    }

    /// A fresh Identifier for packets the owner originates (Echo-Request, Protocol-Reject,
    /// Reset-Request), from the same counter as ours.
    pub fn next_id(&mut self) -> u8 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Takes the pending outputs, oldest first.
    pub fn drain(&mut self) -> Vec<FsmOutput> {
        std::mem::take(&mut self.out)
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// When the restart timer expires, if it runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Turns an expired restart timer into TO+ or TO- (§4.6: counter still positive or not).
    pub fn handle_timeout<P: ConfigProtocol + ?Sized>(&mut self, now: Instant, p: &mut P) {
        match self.deadline {
            Some(d) if d <= now => {}
            _ => return,
        }
        self.deadline = None;
        if self.restart_count > 0 {
            self.to_plus(now, p);
        } else {
            self.to_minus(now);
        }
    }

    // ---- state changes and actions ------------------------------------------------------

    fn set_state(&mut self, s: State) {
        self.state = s;
        if !s.timer_runs() {
            self.deadline = None;
        }
    }

    fn tlu(&mut self) {
        self.out.push(FsmOutput::Up);
    }
    fn tld(&mut self) {
        self.out.push(FsmOutput::Down);
    }
    fn tls(&mut self) {
        self.out.push(FsmOutput::Started);
    }
    fn tlf(&mut self) {
        self.out.push(FsmOutput::Finished);
    }

    /// irc for a Configure-Request.
    fn irc_configure(&mut self) {
        self.restart_count = self.policy.max_configure;
    }
    /// irc for a Terminate-Request.
    fn irc_terminate(&mut self) {
        self.restart_count = self.policy.max_terminate;
    }
    /// zrc: zero the counter and run the timer once (Opened + RTR → Stopping).
    fn zrc(&mut self, now: Instant) {
        self.restart_count = 0;
        self.deadline = Some(now + self.policy.restart);
    }

    fn arm(&mut self, now: Instant) {
        self.restart_count = self.restart_count.saturating_sub(1);
        self.deadline = Some(now + self.policy.restart);
    }

    /// scr: a new Configure-Request (new Identifier, options rebuilt).
    fn scr<P: ConfigProtocol + ?Sized>(&mut self, now: Instant, p: &mut P) {
        if !matches!(self.state, State::ReqSent | State::AckRcvd | State::AckSent) {
            // Not negotiating yet (or any more): start afresh, as pppd's fsm_sconfreq does.
            p.reset();
            self.naks_sent = 0;
            self.naks_received = 0;
        }
        self.request.clear();
        p.build_request(&mut self.request);
        self.req_id = self.next_id();
        self.seen_reply = false;
        self.send(Code::ConfigureRequest, self.req_id, self.request.clone());
        self.arm(now);
    }

    /// scr on TO+: the same packet again. A reply to it is awaited afresh (pppd clears
    /// `seen_ack` on every transmission), so an Ack after Ack-Rcvd timed out is accepted.
    fn rescr(&mut self, now: Instant) {
        self.seen_reply = false;
        self.send(Code::ConfigureRequest, self.req_id, self.request.clone());
        self.arm(now);
    }

    fn str(&mut self, now: Instant) {
        self.term_id = self.next_id();
        self.send(
            Code::TerminateRequest,
            self.term_id,
            self.term_reason.clone().into_bytes(),
        );
        self.arm(now);
    }

    fn restr(&mut self, now: Instant) {
        self.send(
            Code::TerminateRequest,
            self.term_id,
            self.term_reason.clone().into_bytes(),
        );
        self.arm(now);
    }

    fn sta(&mut self, id: u8) {
        self.send(Code::TerminateAck, id, Vec::new());
    }

    fn sca(&mut self, id: u8, options: &[u8]) {
        self.naks_sent = 0;
        self.send(Code::ConfigureAck, id, options.to_vec());
    }

    fn scn(&mut self, id: u8, code: Code, options: Vec<u8>) {
        if code == Code::ConfigureNak {
            self.naks_sent = self.naks_sent.saturating_add(1);
        }
        self.send(code, id, options);
    }

    fn scj(&mut self, rejected: &[u8]) {
        let id = self.next_id();
        let n = rejected.len().min(self.max_reject_data);
        self.send(Code::CodeReject, id, rejected[..n].to_vec());
    }

    fn send(&mut self, code: Code, id: u8, data: Vec<u8>) {
        self.out
            .push(FsmOutput::Send(emit_control(code, id, &data)));
    }

    // ---- events (RFC 1661 §4.1 table, one row each) -------------------------------------

    /// Up: the lower layer is ready.
    pub fn up<P: ConfigProtocol + ?Sized>(&mut self, now: Instant, p: &mut P) {
        match self.state {
            State::Initial => self.set_state(State::Closed),
            State::Starting => {
                self.irc_configure();
                self.scr(now, p);
                self.set_state(State::ReqSent);
            }
            _ => {} // "-": cannot happen (lower layer already up); ignored.
        }
    }

    /// Down: the lower layer is gone.
    pub fn down(&mut self) {
        match self.state {
            State::Closed | State::Closing => self.set_state(State::Initial),
            State::Stopped => {
                self.tls();
                self.set_state(State::Starting);
            }
            State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent => {
                self.set_state(State::Starting)
            }
            State::Opened => {
                self.tld();
                self.set_state(State::Starting);
            }
            State::Initial | State::Starting => {}
        }
    }

    /// Open: administrative open.
    pub fn open<P: ConfigProtocol + ?Sized>(&mut self, now: Instant, p: &mut P) {
        match self.state {
            State::Initial => {
                self.tls();
                self.set_state(State::Starting);
            }
            State::Closed => {
                self.irc_configure();
                self.scr(now, p);
                self.set_state(State::ReqSent);
            }
            State::Closing => self.set_state(State::Stopping),
            // Starting, Stopped, Stopping, Req-Sent, Ack-Rcvd, Ack-Sent, Opened: no change
            // (the optional restart "r" is not implemented, see the module header).
            _ => {}
        }
    }

    /// Close: administrative close; `reason` goes into the Terminate-Request.
    pub fn close(&mut self, now: Instant, reason: &str) {
        match self.state {
            State::Initial | State::Closed | State::Closing => {}
            State::Starting => {
                self.tlf();
                self.set_state(State::Initial);
            }
            State::Stopped => self.set_state(State::Closed),
            State::Stopping => self.set_state(State::Closing),
            State::ReqSent | State::AckRcvd | State::AckSent => {
                self.term_reason = reason.to_string();
                self.irc_terminate();
                self.str(now);
                self.set_state(State::Closing);
            }
            State::Opened => {
                self.tld();
                self.term_reason = reason.to_string();
                self.irc_terminate();
                self.str(now);
                self.set_state(State::Closing);
            }
        }
    }

    /// TO+: the restart timer expired with the counter above zero.
    pub fn to_plus<P: ConfigProtocol + ?Sized>(&mut self, now: Instant, _p: &mut P) {
        match self.state {
            State::Closing | State::Stopping => self.restr(now),
            State::ReqSent | State::AckRcvd => {
                self.rescr(now);
                self.set_state(State::ReqSent);
            }
            State::AckSent => self.rescr(now),
            _ => {}
        }
    }

    /// TO-: the restart timer expired with the counter exhausted.
    pub fn to_minus(&mut self, _now: Instant) {
        match self.state {
            State::Closing => {
                self.tlf();
                self.set_state(State::Closed);
            }
            State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent => {
                // ReqSent/AckRcvd/AckSent: "tlf/3p" — the passive option is pppd's
                // `passive`/`silent`; we always stop, the owner decides what follows.
                self.tlf();
                self.set_state(State::Stopped);
            }
            _ => {}
        }
    }

    /// RCR+: a Configure-Request we acknowledge (`options` is echoed in the Ack).
    pub fn rcr_plus<P: ConfigProtocol + ?Sized>(
        &mut self,
        now: Instant,
        p: &mut P,
        id: u8,
        options: &[u8],
    ) {
        match self.state {
            State::Closed => self.sta(id),
            State::Stopped => {
                self.irc_configure();
                self.scr(now, p);
                self.sca(id, options);
                self.set_state(State::AckSent);
            }
            State::ReqSent | State::AckSent => {
                self.sca(id, options);
                self.set_state(State::AckSent);
            }
            State::AckRcvd => {
                self.sca(id, options);
                self.set_state(State::Opened);
                self.tlu();
            }
            State::Opened => {
                self.tld();
                self.irc_configure();
                self.scr(now, p);
                self.sca(id, options);
                self.set_state(State::AckSent);
            }
            State::Initial | State::Starting | State::Closing | State::Stopping => {}
        }
    }

    /// RCR-: a Configure-Request we answer with `code` (Configure-Nak or -Reject) + `options`.
    pub fn rcr_minus<P: ConfigProtocol + ?Sized>(
        &mut self,
        now: Instant,
        p: &mut P,
        id: u8,
        code: Code,
        options: Vec<u8>,
    ) {
        match self.state {
            State::Closed => self.sta(id),
            State::Stopped => {
                self.irc_configure();
                self.scr(now, p);
                self.scn(id, code, options);
                self.set_state(State::ReqSent);
            }
            State::ReqSent | State::AckSent => {
                self.scn(id, code, options);
                self.set_state(State::ReqSent);
            }
            State::AckRcvd => self.scn(id, code, options),
            State::Opened => {
                self.tld();
                self.irc_configure();
                self.scr(now, p);
                self.scn(id, code, options);
                self.set_state(State::ReqSent);
            }
            State::Initial | State::Starting | State::Closing | State::Stopping => {}
        }
    }

    /// RCA: a valid Configure-Ack for our outstanding request.
    pub fn rca<P: ConfigProtocol + ?Sized>(&mut self, now: Instant, p: &mut P, id: u8) {
        match self.state {
            State::Closed | State::Stopped => self.sta(id),
            State::ReqSent => {
                self.irc_configure();
                self.set_state(State::AckRcvd);
            }
            State::AckRcvd => {
                // Crossed connection ("x").
                self.irc_configure();
                self.scr(now, p);
                self.set_state(State::ReqSent);
            }
            State::AckSent => {
                self.irc_configure();
                self.set_state(State::Opened);
                self.tlu();
            }
            State::Opened => {
                self.tld();
                self.irc_configure();
                self.scr(now, p);
                self.set_state(State::ReqSent);
            }
            State::Initial | State::Starting | State::Closing | State::Stopping => {}
        }
    }

    /// RCN: a valid Configure-Nak or Configure-Reject for our request (already applied to the
    /// protocol, so the next scr carries the adjusted options).
    pub fn rcn<P: ConfigProtocol + ?Sized>(&mut self, now: Instant, p: &mut P, id: u8) {
        match self.state {
            State::Closed | State::Stopped => self.sta(id),
            State::ReqSent | State::AckRcvd => {
                self.irc_configure();
                self.scr(now, p);
                self.set_state(State::ReqSent);
            }
            State::AckSent => {
                self.irc_configure();
                self.scr(now, p);
            }
            State::Opened => {
                self.tld();
                self.irc_configure();
                self.scr(now, p);
                self.set_state(State::ReqSent);
            }
            State::Initial | State::Starting | State::Closing | State::Stopping => {}
        }
    }

    /// RTR: Terminate-Request received.
    pub fn rtr(&mut self, now: Instant, id: u8, data: &[u8]) {
        match self.state {
            State::Initial | State::Starting => return,
            _ => {}
        }
        self.peer_reason = Some(String::from_utf8_lossy(data).into_owned());
        match self.state {
            State::Closed | State::Stopped | State::Closing | State::Stopping => self.sta(id),
            State::ReqSent | State::AckRcvd | State::AckSent => {
                self.sta(id);
                self.set_state(State::ReqSent);
            }
            State::Opened => {
                self.tld();
                self.zrc(now);
                self.sta(id);
                self.set_state(State::Stopping);
            }
            State::Initial | State::Starting => {}
        }
    }

    /// RTA: Terminate-Ack received.
    pub fn rta<P: ConfigProtocol + ?Sized>(&mut self, now: Instant, p: &mut P) {
        match self.state {
            State::Closing => {
                self.tlf();
                self.set_state(State::Closed);
            }
            State::Stopping => {
                self.tlf();
                self.set_state(State::Stopped);
            }
            State::AckRcvd => self.set_state(State::ReqSent),
            State::Opened => {
                self.tld();
                self.irc_configure();
                self.scr(now, p);
                self.set_state(State::ReqSent);
            }
            _ => {}
        }
    }

    /// RUC: unknown code; `packet` (the whole control packet) goes back in a Code-Reject.
    pub fn ruc(&mut self, packet: &[u8]) {
        match self.state {
            State::Initial | State::Starting => {}
            _ => self.scj(packet),
        }
    }

    /// RXJ+: a permitted Code-Reject or Protocol-Reject.
    pub fn rxj_plus(&mut self) {
        if self.state == State::AckRcvd {
            self.set_state(State::ReqSent);
        }
    }

    /// RXJ-: a catastrophic Code-Reject or Protocol-Reject.
    pub fn rxj_minus(&mut self, now: Instant) {
        match self.state {
            State::Closed | State::Closing => {
                self.tlf();
                self.set_state(State::Closed);
            }
            State::Stopped | State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent => {
                self.tlf();
                self.set_state(State::Stopped);
            }
            State::Opened => {
                self.tld();
                self.term_reason = String::new();
                self.irc_terminate();
                self.str(now);
                self.set_state(State::Stopping);
            }
            State::Initial | State::Starting => {}
        }
    }

    /// RXR: Echo-Request, Echo-Reply or Discard-Request received. Returns `true` when an
    /// Echo-Reply must be sent (ser, Opened only); the owner builds it (it knows the magic).
    pub fn rxr(&mut self) -> bool {
        self.state == State::Opened
    }

    // ---- packet classification (RFC 1661 §5) --------------------------------------------

    /// Classifies a received control packet into an event and runs it.
    pub fn input<'a, P: ConfigProtocol + ?Sized>(
        &mut self,
        now: Instant,
        p: &mut P,
        pkt: ControlPacket<'a>,
    ) -> Input<'a> {
        if matches!(self.state, State::Initial | State::Starting) {
            // pppd: "Rcvd packet in state" — the layer is not up.
            return Input::Discarded("layer not started");
        }
        match pkt.code {
            Code::ConfigureRequest => self.input_request(now, p, pkt),
            Code::ConfigureAck => self.input_ack(now, p, pkt),
            Code::ConfigureNak | Code::ConfigureReject => self.input_nak_rej(now, p, pkt),
            Code::TerminateRequest => {
                self.rtr(now, pkt.id, pkt.data);
                Input::Handled
            }
            Code::TerminateAck => {
                self.rta(now, p);
                Input::Handled
            }
            Code::CodeReject => {
                // The rejected packet starts with its Code (RFC 1661 §5.6). Rejecting one of
                // the codes the automaton needs is catastrophic (RXJ-); others are not.
                match pkt.data.first() {
                    Some(1..=7) => self.rxj_minus(now),
                    _ => self.rxj_plus(),
                }
                Input::Handled
            }
            code if p.extension_code(code) => Input::Extension(pkt),
            _ => {
                self.ruc(&pkt.to_vec());
                Input::Handled
            }
        }
    }

    fn input_request<'a, P: ConfigProtocol + ?Sized>(
        &mut self,
        now: Instant,
        p: &mut P,
        pkt: ControlPacket<'a>,
    ) -> Input<'a> {
        match self.state {
            State::Closed => {
                self.sta(pkt.id);
                return Input::Handled;
            }
            State::Closing | State::Stopping => return Input::Handled,
            _ => {}
        }
        let Ok(options) = parse_options(pkt.data) else {
            return Input::Discarded("malformed options");
        };
        let mut reply = ReplyBuilder::new(self.naks_sent >= self.policy.max_failure);
        p.check_request(&options, &mut reply);
        match reply.finish() {
            (Code::ConfigureAck, _) => self.rcr_plus(now, p, pkt.id, pkt.data),
            (code, opts) => self.rcr_minus(now, p, pkt.id, code, opts.unwrap_or_default()),
        }
        Input::Handled
    }

    fn reply_matches(&self, id: u8) -> bool {
        matches!(
            self.state,
            State::ReqSent | State::AckRcvd | State::AckSent | State::Opened
        ) && id == self.req_id
            && !self.seen_reply
    }

    fn input_ack<'a, P: ConfigProtocol + ?Sized>(
        &mut self,
        now: Instant,
        p: &mut P,
        pkt: ControlPacket<'a>,
    ) -> Input<'a> {
        match self.state {
            State::Closed | State::Stopped => {
                self.sta(pkt.id);
                return Input::Handled;
            }
            State::Closing | State::Stopping => return Input::Handled,
            _ => {}
        }
        if !self.reply_matches(pkt.id) {
            return Input::Discarded("stale or duplicate Configure-Ack");
        }
        // RFC 1661 §5.2: the options must be exactly those of our request.
        if pkt.data != self.request.as_slice() {
            return Input::Discarded("Configure-Ack does not match our request");
        }
        let Ok(options) = parse_options(pkt.data) else {
            return Input::Discarded("malformed options");
        };
        self.seen_reply = true;
        p.ack_received(&options);
        self.rca(now, p, pkt.id);
        Input::Handled
    }

    fn input_nak_rej<'a, P: ConfigProtocol + ?Sized>(
        &mut self,
        now: Instant,
        p: &mut P,
        pkt: ControlPacket<'a>,
    ) -> Input<'a> {
        match self.state {
            State::Closed | State::Stopped => {
                self.sta(pkt.id);
                return Input::Handled;
            }
            State::Closing | State::Stopping => return Input::Handled,
            _ => {}
        }
        if !self.reply_matches(pkt.id) {
            return Input::Discarded("stale or duplicate Configure-Nak/Reject");
        }
        let Ok(options) = parse_options(pkt.data) else {
            return Input::Discarded("malformed options");
        };
        let result = if pkt.code == Code::ConfigureNak {
            self.naks_received = self.naks_received.saturating_add(1);
            let treat_as_reject = self.naks_received >= self.policy.max_failure;
            p.nak_received(&options, treat_as_reject)
        } else {
            // RFC 1661 §5.4: the rejected options must be ones we sent, unmodified, in order.
            if !is_ordered_subset(&options, &self.request) {
                return Input::Discarded("Configure-Reject does not match our request");
            }
            p.reject_received(&options)
        };
        self.seen_reply = true;
        match result {
            Ok(()) => self.rcn(now, p, pkt.id),
            Err(NegotiationFailure(reason)) => {
                self.out.push(FsmOutput::Failed(reason.clone()));
                self.close(now, &reason);
            }
        }
        Input::Handled
    }
}

/// Every option of `rejected` appears byte-identical in `request`, in the same order.
fn is_ordered_subset(rejected: &[RawOption<'_>], request: &[u8]) -> bool {
    let Ok(ours) = parse_options(request) else {
        return false;
    };
    let mut it = ours.iter();
    rejected
        .iter()
        .all(|r| it.by_ref().any(|o| o.bytes == r.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A protocol with one option (type 1, one byte of data); the peer's request is acked
    /// when `accept` is set, else Nak'ed.
    #[derive(Default)]
    struct Dummy {
        accept: bool,
        resets: u32,
        value: u8,
        fail_on_nak: bool,
    }

    impl ConfigProtocol for Dummy {
        fn reset(&mut self) {
            self.resets += 1;
        }
        fn build_request(&mut self, out: &mut Vec<u8>) {
            out.extend_from_slice(&[1, 3, self.value]);
        }
        fn check_request(&mut self, options: &[RawOption<'_>], reply: &mut ReplyBuilder) {
            for o in options {
                match o.kind {
                    1 if !self.accept => reply.nak(o, &[7]),
                    1 => {}
                    _ => reply.reject(o),
                }
            }
        }
        fn nak_received(
            &mut self,
            options: &[RawOption<'_>],
            treat_as_reject: bool,
        ) -> Result<(), NegotiationFailure> {
            if self.fail_on_nak {
                return Err(NegotiationFailure("no way".into()));
            }
            if let Some(o) = options.iter().find(|o| o.kind == 1) {
                self.value = if treat_as_reject {
                    0xee
                } else {
                    o.data.first().copied().unwrap_or(0)
                };
            }
            Ok(())
        }
        fn reject_received(
            &mut self,
            _options: &[RawOption<'_>],
        ) -> Result<(), NegotiationFailure> {
            Ok(())
        }
        fn extension_code(&self, code: Code) -> bool {
            code == Code::EchoRequest
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ev {
        Up,
        Down,
        Open,
        Close,
        ToPlus,
        ToMinus,
        RcrPlus,
        RcrMinus,
        Rca,
        Rcn,
        Rtr,
        Rta,
        Ruc,
        RxjPlus,
        RxjMinus,
        Rxr,
    }

    const ALL_EVENTS: [Ev; 16] = [
        Ev::Up,
        Ev::Down,
        Ev::Open,
        Ev::Close,
        Ev::ToPlus,
        Ev::ToMinus,
        Ev::RcrPlus,
        Ev::RcrMinus,
        Ev::Rca,
        Ev::Rcn,
        Ev::Rtr,
        Ev::Rta,
        Ev::Ruc,
        Ev::RxjPlus,
        Ev::RxjMinus,
        Ev::Rxr,
    ];

    const ALL_STATES: [State; 10] = [
        State::Initial,
        State::Starting,
        State::Closed,
        State::Stopped,
        State::Closing,
        State::Stopping,
        State::ReqSent,
        State::AckRcvd,
        State::AckSent,
        State::Opened,
    ];

    /// Observable actions: the layer outputs, the packets sent (by code), and irc/zrc as seen
    /// through the restart counter.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Act {
        Tlu,
        Tld,
        Tls,
        Tlf,
        Scr,
        Sca,
        Scn,
        Str,
        Sta,
        Scj,
        Ser,
        /// Counter initialised for Configure.
        IrcC,
        /// Counter initialised for Terminate.
        IrcT,
        Zrc,
    }

    use Act::*;

    /// RFC 1661 §4.1, the whole table: (state, event) → (actions, new state). "-" entries
    /// (events that cannot happen in that state) are given as no action, same state.
    fn expected(s: State, e: Ev) -> (Vec<Act>, State) {
        use State::*;
        let same = (vec![], s);
        match (e, s) {
            (Ev::Up, Initial) => (vec![], Closed),
            (Ev::Up, Starting) => (vec![IrcC, Scr], ReqSent),
            (Ev::Up, _) => same,

            (Ev::Down, Closed) | (Ev::Down, Closing) => (vec![], Initial),
            (Ev::Down, Stopped) => (vec![Tls], Starting),
            (Ev::Down, Stopping)
            | (Ev::Down, ReqSent)
            | (Ev::Down, AckRcvd)
            | (Ev::Down, AckSent) => (vec![], Starting),
            (Ev::Down, Opened) => (vec![Tld], Starting),
            (Ev::Down, _) => same,

            (Ev::Open, Initial) => (vec![Tls], Starting),
            (Ev::Open, Closed) => (vec![IrcC, Scr], ReqSent),
            (Ev::Open, Closing) => (vec![], Stopping),
            (Ev::Open, _) => same,

            (Ev::Close, Starting) => (vec![Tlf], Initial),
            (Ev::Close, Stopped) => (vec![], Closed),
            (Ev::Close, Stopping) => (vec![], Closing),
            (Ev::Close, ReqSent) | (Ev::Close, AckRcvd) | (Ev::Close, AckSent) => {
                (vec![IrcT, Str], Closing)
            }
            (Ev::Close, Opened) => (vec![Tld, IrcT, Str], Closing),
            (Ev::Close, _) => same,

            (Ev::ToPlus, Closing) | (Ev::ToPlus, Stopping) => (vec![Str], s),
            (Ev::ToPlus, ReqSent) | (Ev::ToPlus, AckRcvd) => (vec![Scr], ReqSent),
            (Ev::ToPlus, AckSent) => (vec![Scr], AckSent),
            (Ev::ToPlus, _) => same,

            (Ev::ToMinus, Closing) => (vec![Tlf], Closed),
            (Ev::ToMinus, Stopping) => (vec![Tlf], Stopped),
            (Ev::ToMinus, ReqSent) | (Ev::ToMinus, AckRcvd) | (Ev::ToMinus, AckSent) => {
                (vec![Tlf], Stopped)
            }
            (Ev::ToMinus, _) => same,

            (Ev::RcrPlus, Closed) => (vec![Sta], Closed),
            (Ev::RcrPlus, Stopped) => (vec![IrcC, Scr, Sca], AckSent),
            (Ev::RcrPlus, ReqSent) | (Ev::RcrPlus, AckSent) => (vec![Sca], AckSent),
            (Ev::RcrPlus, AckRcvd) => (vec![Sca, Tlu], Opened),
            (Ev::RcrPlus, Opened) => (vec![Tld, IrcC, Scr, Sca], AckSent),
            (Ev::RcrPlus, _) => same,

            (Ev::RcrMinus, Closed) => (vec![Sta], Closed),
            (Ev::RcrMinus, Stopped) => (vec![IrcC, Scr, Scn], ReqSent),
            (Ev::RcrMinus, ReqSent) | (Ev::RcrMinus, AckSent) => (vec![Scn], ReqSent),
            (Ev::RcrMinus, AckRcvd) => (vec![Scn], AckRcvd),
            (Ev::RcrMinus, Opened) => (vec![Tld, IrcC, Scr, Scn], ReqSent),
            (Ev::RcrMinus, _) => same,

            (Ev::Rca, Closed) | (Ev::Rca, Stopped) => (vec![Sta], s),
            (Ev::Rca, ReqSent) => (vec![IrcC], AckRcvd),
            (Ev::Rca, AckRcvd) => (vec![IrcC, Scr], ReqSent),
            (Ev::Rca, AckSent) => (vec![IrcC, Tlu], Opened),
            (Ev::Rca, Opened) => (vec![Tld, IrcC, Scr], ReqSent),
            (Ev::Rca, _) => same,

            (Ev::Rcn, Closed) | (Ev::Rcn, Stopped) => (vec![Sta], s),
            (Ev::Rcn, ReqSent) | (Ev::Rcn, AckRcvd) => (vec![IrcC, Scr], ReqSent),
            (Ev::Rcn, AckSent) => (vec![IrcC, Scr], AckSent),
            (Ev::Rcn, Opened) => (vec![Tld, IrcC, Scr], ReqSent),
            (Ev::Rcn, _) => same,

            (Ev::Rtr, Closed) | (Ev::Rtr, Stopped) | (Ev::Rtr, Closing) | (Ev::Rtr, Stopping) => {
                (vec![Sta], s)
            }
            (Ev::Rtr, ReqSent) | (Ev::Rtr, AckRcvd) | (Ev::Rtr, AckSent) => (vec![Sta], ReqSent),
            (Ev::Rtr, Opened) => (vec![Tld, Zrc, Sta], Stopping),
            (Ev::Rtr, _) => same,

            (Ev::Rta, Closing) => (vec![Tlf], Closed),
            (Ev::Rta, Stopping) => (vec![Tlf], Stopped),
            (Ev::Rta, AckRcvd) => (vec![], ReqSent),
            (Ev::Rta, Opened) => (vec![Tld, IrcC, Scr], ReqSent),
            (Ev::Rta, _) => same,

            (Ev::Ruc, Initial) | (Ev::Ruc, Starting) => same,
            (Ev::Ruc, _) => (vec![Scj], s),

            (Ev::RxjPlus, AckRcvd) => (vec![], ReqSent),
            (Ev::RxjPlus, _) => same,

            (Ev::RxjMinus, Closed) | (Ev::RxjMinus, Closing) => (vec![Tlf], Closed),
            (Ev::RxjMinus, Stopped)
            | (Ev::RxjMinus, Stopping)
            | (Ev::RxjMinus, ReqSent)
            | (Ev::RxjMinus, AckRcvd)
            | (Ev::RxjMinus, AckSent) => (vec![Tlf], Stopped),
            (Ev::RxjMinus, Opened) => (vec![Tld, IrcT, Str], Stopping),
            (Ev::RxjMinus, _) => same,

            (Ev::Rxr, Opened) => (vec![Ser], Opened),
            (Ev::Rxr, _) => same,
        }
    }

    const POLICY: FsmPolicy = FsmPolicy {
        restart: Duration::from_secs(3),
        max_configure: 10,
        max_terminate: 2,
        max_failure: 5,
    };

    /// An automaton put directly in state `s`, with the counter at a neutral value (4) and
    /// the timer running where the state has one.
    fn in_state(s: State, t0: Instant) -> Fsm {
        let mut f = Fsm::new(POLICY);
        f.state = s;
        f.restart_count = 4;
        if s.timer_runs() {
            f.deadline = Some(t0 + Duration::from_secs(1));
        }
        f
    }

    fn run(f: &mut Fsm, p: &mut Dummy, e: Ev, t: Instant) -> Vec<Act> {
        let mut acts = Vec::new();
        match e {
            Ev::Up => f.up(t, p),
            Ev::Down => f.down(),
            Ev::Open => f.open(t, p),
            Ev::Close => f.close(t, "bye"),
            Ev::ToPlus => f.to_plus(t, p),
            Ev::ToMinus => f.to_minus(t),
            Ev::RcrPlus => f.rcr_plus(t, p, 0x42, &[1, 3, 9]),
            Ev::RcrMinus => f.rcr_minus(t, p, 0x42, Code::ConfigureNak, vec![1, 3, 7]),
            Ev::Rca => f.rca(t, p, 0x42),
            Ev::Rcn => f.rcn(t, p, 0x42),
            Ev::Rtr => f.rtr(t, 0x42, b"why"),
            Ev::Rta => f.rta(t, p),
            Ev::Ruc => f.ruc(&[0x63, 1, 0, 4]),
            Ev::RxjPlus => f.rxj_plus(),
            Ev::RxjMinus => f.rxj_minus(t),
            Ev::Rxr => {
                if f.rxr() {
                    acts.push(Ser);
                }
            }
        }
        for o in f.drain() {
            acts.push(match o {
                FsmOutput::Up => Tlu,
                FsmOutput::Down => Tld,
                FsmOutput::Started => Tls,
                FsmOutput::Finished => Tlf,
                FsmOutput::Failed(_) => panic!("unexpected failure"),
                FsmOutput::Send(pkt) => match Code::from_number(pkt[0]) {
                    Code::ConfigureRequest => Scr,
                    Code::ConfigureAck => Sca,
                    Code::ConfigureNak | Code::ConfigureReject => Scn,
                    Code::TerminateRequest => Str,
                    Code::TerminateAck => Sta,
                    Code::CodeReject => Scj,
                    c => panic!("unexpected code {c:?}"),
                },
            });
        }
        acts
    }

    #[test]
    fn rfc1661_state_table() {
        let t0 = Instant::now();
        let mut checked = 0;
        for s in ALL_STATES {
            for e in ALL_EVENTS {
                let mut f = in_state(s, t0);
                let mut p = Dummy::default();
                let t = t0 + Duration::from_secs(2);
                let got = run(&mut f, &mut p, e, t);
                let (mut want, want_state) = expected(s, e);
                // irc/zrc are checked through the counter and timer, not as outputs.
                let irc_c = want.contains(&IrcC);
                let irc_t = want.contains(&IrcT);
                let zrc = want.contains(&Zrc);
                want.retain(|a| !matches!(a, IrcC | IrcT | Zrc));
                assert_eq!(got, want, "actions for {e:?} in {s:?}");
                assert_eq!(f.state(), want_state, "new state for {e:?} in {s:?}");
                if irc_c {
                    // irc sets Max-Configure; a following scr uses up one transmission.
                    let n = if want.contains(&Scr) {
                        POLICY.max_configure - 1
                    } else {
                        POLICY.max_configure
                    };
                    assert_eq!(f.restart_count(), n, "irc (configure) for {e:?} in {s:?}");
                }
                if irc_t {
                    assert_eq!(
                        f.restart_count(),
                        POLICY.max_terminate - 1,
                        "irc (terminate) for {e:?} in {s:?}"
                    );
                }
                if zrc {
                    assert_eq!(f.restart_count(), 0, "zrc for {e:?} in {s:?}");
                    assert_eq!(f.poll_timeout(), Some(t + POLICY.restart));
                }
                if !irc_c && !irc_t && !zrc {
                    let sent_scr_or_str = want.iter().any(|a| matches!(a, Scr | Str));
                    let expect = if sent_scr_or_str { 3 } else { 4 };
                    assert_eq!(
                        f.restart_count(),
                        expect,
                        "counter untouched for {e:?} in {s:?}"
                    );
                }
                // The timer runs exactly in the states that have one.
                assert_eq!(
                    f.poll_timeout().is_some(),
                    want_state.timer_runs(),
                    "timer for {e:?} in {s:?}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 160);
    }

    fn pkt(code: Code, id: u8, data: &[u8]) -> Vec<u8> {
        emit_control(code, id, data)
    }

    fn feed<'a>(f: &mut Fsm, p: &mut Dummy, t: Instant, bytes: &'a [u8]) -> Input<'a> {
        let cp = ControlPacket::parse(bytes).unwrap();
        f.input(t, p, cp)
    }

    fn sent(f: &mut Fsm) -> Vec<Vec<u8>> {
        f.drain()
            .into_iter()
            .filter_map(|o| match o {
                FsmOutput::Send(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn handshake_and_timers() {
        let t0 = Instant::now();
        let mut f = Fsm::new(POLICY);
        let mut p = Dummy {
            accept: true,
            value: 5,
            ..Default::default()
        };
        f.open(t0, &mut p);
        assert_eq!(f.drain(), vec![FsmOutput::Started]);
        f.up(t0, &mut p);
        let out = sent(&mut f);
        assert_eq!(out, vec![vec![1, 1, 0, 7, 1, 3, 5]]);
        assert_eq!(f.poll_timeout(), Some(t0 + POLICY.restart));
        // Retransmissions keep id and bytes; after max_configure transmissions, TO- → Stopped.
        let mut t = t0;
        for _ in 1..POLICY.max_configure {
            t += POLICY.restart;
            f.handle_timeout(t, &mut p);
            assert_eq!(sent(&mut f), vec![vec![1, 1, 0, 7, 1, 3, 5]]);
        }
        t += POLICY.restart;
        // Not yet due: nothing happens.
        f.handle_timeout(t - Duration::from_millis(1), &mut p);
        assert!(f.drain().is_empty());
        f.handle_timeout(t, &mut p);
        assert_eq!(f.drain(), vec![FsmOutput::Finished]);
        assert_eq!(f.state(), State::Stopped);
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn ids_are_checked() {
        let t0 = Instant::now();
        let mut f = Fsm::new(POLICY);
        let mut p = Dummy {
            accept: true,
            value: 5,
            ..Default::default()
        };
        f.open(t0, &mut p);
        f.up(t0, &mut p);
        f.drain();
        let id = f.request_id();
        // Wrong id: discarded.
        let ack = pkt(Code::ConfigureAck, id.wrapping_add(1), &[1, 3, 5]);
        assert!(matches!(
            feed(&mut f, &mut p, t0, &ack),
            Input::Discarded(_)
        ));
        // Right id, wrong contents: discarded.
        let ack = pkt(Code::ConfigureAck, id, &[1, 3, 6]);
        assert!(matches!(
            feed(&mut f, &mut p, t0, &ack),
            Input::Discarded(_)
        ));
        assert_eq!(f.state(), State::ReqSent);
        // The real Ack.
        let ack = pkt(Code::ConfigureAck, id, &[1, 3, 5]);
        assert_eq!(feed(&mut f, &mut p, t0, &ack), Input::Handled);
        assert_eq!(f.state(), State::AckRcvd);
        // Peer request → Opened.
        let req = pkt(Code::ConfigureRequest, 9, &[1, 3, 1]);
        feed(&mut f, &mut p, t0, &req);
        assert_eq!(f.state(), State::Opened);
        let out = f.drain();
        assert_eq!(
            out,
            vec![
                FsmOutput::Send(pkt(Code::ConfigureAck, 9, &[1, 3, 1])),
                FsmOutput::Up
            ]
        );
        // A duplicate of the Ack must not take the link down.
        assert!(matches!(
            feed(&mut f, &mut p, t0, &ack),
            Input::Discarded(_)
        ));
        assert_eq!(f.state(), State::Opened);
        // Malformed request: discarded.
        let bad = pkt(Code::ConfigureRequest, 10, &[1, 9, 1]);
        assert!(matches!(
            feed(&mut f, &mut p, t0, &bad),
            Input::Discarded(_)
        ));
        assert_eq!(f.state(), State::Opened);
    }

    #[test]
    fn ack_after_ack_rcvd_timeout_is_accepted() {
        // Ack-Rcvd, the peer's request is lost, our timer fires: the same request goes out
        // again (same id) and the peer's new Ack of it must count (pppd clears seen_ack).
        let t0 = Instant::now();
        let mut f = Fsm::new(POLICY);
        let mut p = Dummy {
            accept: true,
            value: 5,
            ..Default::default()
        };
        f.open(t0, &mut p);
        f.up(t0, &mut p);
        f.drain();
        let id = f.request_id();
        let ack = pkt(Code::ConfigureAck, id, &[1, 3, 5]);
        feed(&mut f, &mut p, t0, &ack);
        assert_eq!(f.state(), State::AckRcvd);
        f.handle_timeout(t0 + POLICY.restart, &mut p);
        assert_eq!(f.state(), State::ReqSent);
        assert_eq!(
            sent(&mut f),
            vec![pkt(Code::ConfigureRequest, id, &[1, 3, 5])]
        );
        assert_eq!(feed(&mut f, &mut p, t0, &ack), Input::Handled);
        assert_eq!(f.state(), State::AckRcvd);
    }

    #[test]
    fn reject_must_match_request() {
        let t0 = Instant::now();
        let mut f = Fsm::new(POLICY);
        let mut p = Dummy {
            accept: true,
            value: 5,
            ..Default::default()
        };
        f.open(t0, &mut p);
        f.up(t0, &mut p);
        f.drain();
        let id = f.request_id();
        let rej = pkt(Code::ConfigureReject, id, &[1, 3, 6]);
        assert!(matches!(
            feed(&mut f, &mut p, t0, &rej),
            Input::Discarded(_)
        ));
        let rej = pkt(Code::ConfigureReject, id, &[1, 3, 5]);
        assert_eq!(feed(&mut f, &mut p, t0, &rej), Input::Handled);
        // RCN: a new request with a new id.
        let out = sent(&mut f);
        assert_eq!(out.len(), 1);
        assert_ne!(out[0][1], id);
    }

    #[test]
    fn nak_loop_turns_into_reject_after_max_failure() {
        let t0 = Instant::now();
        let mut f = Fsm::new(POLICY);
        let mut p = Dummy {
            accept: false,
            value: 5,
            ..Default::default()
        };
        f.open(t0, &mut p);
        f.up(t0, &mut p);
        f.drain();
        for i in 0..POLICY.max_failure {
            let req = pkt(Code::ConfigureRequest, i as u8, &[1, 3, 1, 2, 2]);
            feed(&mut f, &mut p, t0, &req);
            // Unknown option 2 is rejected; once it is gone, option 1 is Nak'ed.
            let out = sent(&mut f);
            assert_eq!(out, vec![pkt(Code::ConfigureReject, i as u8, &[2, 2])]);
        }
        for i in 0..POLICY.max_failure {
            let req = pkt(Code::ConfigureRequest, 20 + i as u8, &[1, 3, 1]);
            feed(&mut f, &mut p, t0, &req);
            assert_eq!(
                sent(&mut f),
                vec![pkt(Code::ConfigureNak, 20 + i as u8, &[1, 3, 7])]
            );
        }
        // The sixth disagreement: Configure-Reject of the option as the peer sent it.
        let req = pkt(Code::ConfigureRequest, 40, &[1, 3, 1]);
        feed(&mut f, &mut p, t0, &req);
        assert_eq!(
            sent(&mut f),
            vec![pkt(Code::ConfigureReject, 40, &[1, 3, 1])]
        );
        // The peer drops the option: Ack (which also resets the Nak count).
        let req = pkt(Code::ConfigureRequest, 41, &[]);
        feed(&mut f, &mut p, t0, &req);
        assert_eq!(sent(&mut f), vec![pkt(Code::ConfigureAck, 41, &[])]);
        assert_eq!(f.state(), State::AckSent);
        let req = pkt(Code::ConfigureRequest, 42, &[1, 3, 1]);
        feed(&mut f, &mut p, t0, &req);
        assert_eq!(sent(&mut f), vec![pkt(Code::ConfigureNak, 42, &[1, 3, 7])]);
    }

    #[test]
    fn received_naks_become_rejects_after_max_failure() {
        let t0 = Instant::now();
        let mut f = Fsm::new(POLICY);
        let mut p = Dummy {
            accept: true,
            value: 5,
            ..Default::default()
        };
        f.open(t0, &mut p);
        f.up(t0, &mut p);
        f.drain();
        for i in 0..POLICY.max_failure {
            let id = f.request_id();
            let nak = pkt(Code::ConfigureNak, id, &[1, 3, 0x10 + i as u8]);
            feed(&mut f, &mut p, t0, &nak);
            let out = sent(&mut f);
            let expect = if i + 1 < POLICY.max_failure {
                0x10 + i as u8
            } else {
                0xee
            };
            assert_eq!(out.last().unwrap()[6], expect, "round {i}");
        }
    }

    #[test]
    fn protocol_failure_closes() {
        let t0 = Instant::now();
        let mut f = Fsm::new(POLICY);
        let mut p = Dummy {
            accept: true,
            value: 5,
            fail_on_nak: true,
            ..Default::default()
        };
        f.open(t0, &mut p);
        f.up(t0, &mut p);
        f.drain();
        let nak = pkt(Code::ConfigureNak, f.request_id(), &[1, 3, 1]);
        feed(&mut f, &mut p, t0, &nak);
        let out = f.drain();
        assert_eq!(out[0], FsmOutput::Failed("no way".into()));
        match &out[1] {
            FsmOutput::Send(b) => {
                assert_eq!(&b[..], &pkt(Code::TerminateRequest, b[1], b"no way")[..])
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(f.state(), State::Closing);
        // Terminate-Ack → Closed + tlf.
        let ta = pkt(Code::TerminateAck, 0, &[]);
        feed(&mut f, &mut p, t0, &ta);
        assert_eq!(f.drain(), vec![FsmOutput::Finished]);
        assert_eq!(f.state(), State::Closed);
    }

    #[test]
    fn codes_and_rejects() {
        let t0 = Instant::now();
        let mut f = Fsm::new(POLICY);
        let mut p = Dummy {
            accept: true,
            value: 5,
            ..Default::default()
        };
        // Before Up everything is discarded.
        let req = pkt(Code::ConfigureRequest, 1, &[]);
        assert!(matches!(
            feed(&mut f, &mut p, t0, &req),
            Input::Discarded(_)
        ));
        f.open(t0, &mut p);
        f.up(t0, &mut p);
        f.drain();
        // Unknown code → Code-Reject carrying the packet.
        let unk = pkt(Code::Unknown(0x42), 7, &[1, 2]);
        assert_eq!(feed(&mut f, &mut p, t0, &unk), Input::Handled);
        let out = sent(&mut f);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0][0], 7);
        assert_eq!(&out[0][4..], &unk[..]);
        // Extension codes are handed back.
        let echo = pkt(Code::EchoRequest, 3, &[0, 0, 0, 0]);
        assert!(matches!(
            feed(&mut f, &mut p, t0, &echo),
            Input::Extension(_)
        ));
        // Code-Reject of Echo (RXJ+) keeps the state; of Configure-Request (RXJ-) stops.
        let cj = pkt(Code::CodeReject, 1, &[9, 3, 0, 8]);
        feed(&mut f, &mut p, t0, &cj);
        assert_eq!(f.state(), State::ReqSent);
        let cj = pkt(Code::CodeReject, 1, &[1, 3, 0, 4]);
        feed(&mut f, &mut p, t0, &cj);
        assert_eq!(f.state(), State::Stopped);
        assert_eq!(f.drain(), vec![FsmOutput::Finished]);
    }

    #[test]
    fn code_reject_is_truncated_to_peer_mru() {
        let t0 = Instant::now();
        let mut f = Fsm::new(POLICY);
        let mut p = Dummy::default();
        f.open(t0, &mut p);
        f.up(t0, &mut p);
        f.drain();
        f.set_peer_mru(100);
        f.ruc(&[0u8; 300]);
        let out = sent(&mut f);
        assert_eq!(out[0].len(), 100);
    }

    #[test]
    fn peer_terminate_in_opened() {
        let t0 = Instant::now();
        let mut f = in_state(State::Opened, t0);
        let mut p = Dummy::default();
        let tr = pkt(Code::TerminateRequest, 5, b"going away");
        feed(&mut f, &mut p, t0, &tr);
        assert_eq!(f.peer_reason(), Some("going away"));
        assert_eq!(f.state(), State::Stopping);
        assert_eq!(
            f.drain(),
            vec![
                FsmOutput::Down,
                FsmOutput::Send(pkt(Code::TerminateAck, 5, &[]))
            ]
        );
        // zrc: one restart interval later, TO- → Stopped + tlf.
        f.handle_timeout(t0 + POLICY.restart, &mut p);
        assert_eq!(f.state(), State::Stopped);
        assert_eq!(f.drain(), vec![FsmOutput::Finished]);
    }
}
