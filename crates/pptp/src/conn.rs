//! The PPTP control connection (RFC 2637 §3.1 control connection states, §3.2 call states,
//! §2 messages), for both roles, sans-IO.
//!
//! The server is the PAC (answers Outgoing-Call-Requests), the client the PNS (places them).
//!
//! # Driving it
//! Feed TCP bytes with [`ControlConnection::handle_input`] and timer expiries with
//! [`ControlConnection::handle_timeout`]. After each call, drain [`ControlConnection::poll_transmit`]
//! (write the bytes to the TCP stream in order), then [`ControlConnection::poll_event`], then
//! re-arm the single timer from [`ControlConnection::poll_timeout`]. After
//! [`ControlEvent::Closed`], drain the remaining transmits (a final reply may be queued) and
//! close the TCP connection. If TCP closes first, the daemon just drops the machine: `Closed`
//! only ever reports protocol events.
//!
//! Create per-call state (GRE channel, PPP session) on [`ControlEvent::CallEstablished`], not on
//! `CallRequest`: a request can be withdrawn (peer CCRQ) before the daemon answers it.
//!
//! # Choices the RFC leaves open (and what pptpd / pptp-linux do)
//! - Protocol version: only 1.0 is accepted. The server answers any other version with SCCRP
//!   result 5 (version not supported) and closes; a client seeing a reply of another version
//!   sends Stop-Control-Connection-Request "stop protocol" (as pptp-linux does).
//! - A bad magic cookie or a length field outside 12..=1024 means the stream is out of sync:
//!   the connection closes at once (RFC 2637 §1.4; pptpd does the same).
//! - Malformed known messages (too short), unknown control message types and PPTP management
//!   messages are counted and ignored, as pptpd and pptp-linux do.
//! - Messages before the control connection is up get the RFC's "Not-Connected" general error
//!   where the message has a reply (OCRQ → OCRP, Echo-Request → Echo-Reply, ICRQ → ICRP); a
//!   Stop-Control-Connection-Request is answered and closes; anything else is ignored.
//! - A second SCCRQ on an established connection gets SCCRP result 3 (already exists).
//! - Incoming calls (ICRQ) are refused with ICRP "do not accept" in both roles; a client also
//!   refuses OCRQ with OCRP "do not accept" (pptp-linux does).
//! - Calls above `max_calls` get OCRP "general error / no resource" (not "busy": that one means
//!   a busy telephone line).
//! - CCRQ/CDN/SLI/WEN naming a call this connection does not have are counted and ignored.
//! - Keep-alive: after `echo_interval` with no message from the peer we send an Echo-Request;
//!   without the matching Echo-Reply within `echo_timeout` the connection is dead and closes
//!   without further messages (pptpd: 60 s idle, 60 s wait).
//! - Our stop: the server first sends CDN "admin shutdown" for each call (as pptpd does), then
//!   Stop-Control-Connection-Request; `Closed` follows the reply or `stop_timeout`.
//! - Server CDN carries the server's (PAC's) call id, as RFC 2637 §2.13 and pptpd do. A client
//!   matches CDN by the PAC's id and, failing that, by its own (pptp-linux echoes the PNS id).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::control::{
    Cdn, ControlMessage, Deframer, DisconnectResult, EchoResult, GeneralError, Icrp,
    IncomingCallResult, Ocrp, Ocrq, OutgoingCallResult, ParseError, Sccrp, Sccrq, StartResult,
    StopResult, BEARER_ANALOG, BEARER_DIGITAL, FRAMING_ASYNC, FRAMING_SYNC, PROTOCOL_VERSION,
};

pub use crate::control::StopReason;

/// Settings of one control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Host Name field of SCCRQ/SCCRP (at most 64 bytes are sent).
    pub hostname: String,
    /// Vendor String field of SCCRQ/SCCRP (at most 64 bytes are sent).
    pub vendor: String,
    pub firmware_revision: u16,
    /// pptpd's `stimeout`: the peer's first message (SCCRQ, or SCCRP for a client) must arrive
    /// within this time.
    pub start_timeout: Duration,
    /// Idle time (nothing received) before we send an Echo-Request.
    pub echo_interval: Duration,
    /// Time to wait for the Echo-Reply before declaring the connection dead.
    pub echo_timeout: Duration,
    /// Time to wait for Stop-Control-Connection-Reply (and, client side, for the CDN after
    /// our CCRQ).
    pub stop_timeout: Duration,
    /// Calls (established or awaiting the daemon's answer) per control connection (server).
    pub max_calls: u16,
    /// Our GRE receive window, advertised in OCRP (server) / OCRQ (client).
    pub recv_window: u16,
    /// Connect speed in OCRP (server) and maximum BPS in OCRQ (client).
    pub connect_speed: u32,
}

impl Default for ControlConfig {
    /// pptpd-like values: 10 s stimeout, 60 s echo interval and wait, one call per control
    /// connection (pptpd serves one call per connection), 10 Mbit/s.
    fn default() -> Self {
        ControlConfig {
            hostname: "virtgate".into(),
            vendor: "virtgate".into(),
            firmware_revision: 1,
            start_timeout: Duration::from_secs(10),
            echo_interval: Duration::from_secs(60),
            echo_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(5),
            max_calls: 1,
            recv_window: 64,
            connect_speed: 10_000_000,
        }
    }
}

/// Which end of the control connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// PAC: accepted the TCP connection, answers calls.
    Server,
    /// PNS: opened the TCP connection, places calls.
    Client,
}

/// Why a call went away without the daemon asking (or, for a client, how its CCRQ ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallClearReason {
    /// The peer (PNS) sent Call-Clear-Request; we answered with CDN "request".
    PeerRequest,
    /// The peer (PAC) sent Call-Disconnect-Notify.
    PeerDisconnect {
        result: DisconnectResult,
        error: GeneralError,
        cause_code: u16,
    },
    /// Client: we sent CCRQ and no CDN came within `stop_timeout`; the call is gone anyway.
    NoDisconnectNotify,
}

/// Why the control connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer sent Stop-Control-Connection-Request (answered with a reply).
    PeerStopped { reason: StopReason },
    /// [`ControlConnection::stop`]: the peer replied (`acknowledged`) or `stop_timeout` passed.
    LocalStop { acknowledged: bool },
    /// No SCCRQ (server) or SCCRP (client) within `start_timeout`.
    StartTimeout,
    /// No Echo-Reply within `echo_timeout`.
    EchoTimeout,
    /// A message with a bad magic cookie: the stream is out of sync.
    BadMagic(u32),
    /// A length field outside 12..=1024: the stream is out of sync.
    BadLength(u16),
    /// The peer speaks another protocol version (server: refused with SCCRP result 5; client:
    /// stopped with "stop protocol").
    VersionMismatch { peer_version: u16 },
    /// Client: the server refused the control connection.
    StartRejected {
        result: StartResult,
        error: GeneralError,
    },
}

/// What the daemon must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    /// SCCRQ/SCCRP exchanged.
    Established,
    /// Server: an Outgoing-Call-Request; answer with `accept_call` or `reject_call`.
    CallRequest {
        peer_call_id: u16,
        call_serial: u16,
        min_bps: u32,
        max_bps: u32,
        peer_recv_window: u16,
        processing_delay: u16,
    },
    /// The call is up: create its GRE channel with these ids. Server: right after
    /// `accept_call`; client: on OCRP success.
    CallEstablished {
        local_call_id: u16,
        peer_call_id: u16,
        peer_recv_window: u16,
    },
    /// Client: the server refused our OCRQ (`result` is the OCRP result code).
    CallRejected { local_call_id: u16, result: u8 },
    /// The call is gone: drop its GRE channel and PPP session.
    CallCleared {
        local_call_id: u16,
        reason: CallClearReason,
    },
    /// Set-Link-Info for one of our calls.
    SetLinkInfo {
        local_call_id: u16,
        send_accm: u32,
        recv_accm: u32,
    },
    /// WAN-Error-Notify for one of our calls.
    WanErrorNotify {
        local_call_id: u16,
        crc_errors: u32,
        framing_errors: u32,
        hardware_overruns: u32,
        buffer_overruns: u32,
        timeout_errors: u32,
        alignment_errors: u32,
    },
    /// The connection is over: drop all its calls, flush transmits, close TCP.
    Closed { reason: CloseReason },
}

/// Counters of one control connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlStats {
    pub messages_received: u64,
    pub messages_sent: u64,
    /// Known messages shorter than their type's length.
    pub malformed: u64,
    pub unknown_type: u64,
    /// PPTP message type other than control (management messages).
    pub not_control: u64,
    pub bad_magic: u64,
    pub bad_length: u64,
    /// Messages not valid in the current state or for our role.
    pub out_of_state: u64,
    /// CCRQ/CDN/OCRP/SLI/WEN naming a call this connection does not have.
    pub unknown_call_id: u64,
    pub echo_requests_sent: u64,
    pub echo_replies_received: u64,
    pub echo_requests_answered: u64,
    /// Echo-Replies with no matching outstanding request.
    pub unexpected_echo_reply: u64,
    /// OCRQs refused because of `max_calls` or a call id already in use.
    pub calls_refused: u64,
    /// API calls that did not fit the state (unknown call id, call id reused, ...).
    pub api_misuse: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Server waiting for SCCRQ.
    WaitRequest {
        deadline: Instant,
    },
    /// Client waiting for SCCRP.
    WaitReply {
        deadline: Instant,
    },
    Established,
    /// We sent StopCCRQ. `reason` overrides the default `LocalStop` close reason.
    Stopping {
        deadline: Instant,
        reason: Option<CloseReason>,
    },
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Client: OCRQ sent.
    WaitReply,
    Established,
    /// Client: CCRQ sent.
    WaitDisconnect {
        deadline: Instant,
    },
}

#[derive(Debug, Clone, Copy)]
struct Call {
    peer_call_id: Option<u16>,
    state: CallState,
}

#[derive(Debug, Clone, Copy)]
struct PendingRequest {
    peer_recv_window: u16,
}

/// One PPTP control connection (see the module documentation).
#[derive(Debug)]
pub struct ControlConnection {
    role: Role,
    cfg: ControlConfig,
    state: State,
    deframer: Deframer,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<ControlEvent>,
    /// Calls by local call id (BTreeMap: deterministic order for CDNs on stop).
    calls: BTreeMap<u16, Call>,
    /// Server: OCRQs awaiting the daemon's answer, by the peer's call id.
    pending: BTreeMap<u16, PendingRequest>,
    /// Client: `place_call` before the connection was up.
    deferred: Vec<u16>,
    last_rx: Instant,
    /// Outstanding Echo-Request: identifier and deadline.
    echo: Option<(u32, Instant)>,
    next_echo_id: u32,
    next_serial: u16,
    stats: ControlStats,
}

impl ControlConnection {
    /// A server (PAC) connection, just accepted: waits for SCCRQ for `start_timeout`.
    pub fn new_server(now: Instant, cfg: ControlConfig) -> Self {
        let deadline = now + cfg.start_timeout;
        Self::new(now, cfg, Role::Server, State::WaitRequest { deadline })
    }

    /// A client (PNS) connection, just connected: queues SCCRQ at once.
    pub fn new_client(now: Instant, cfg: ControlConfig) -> Self {
        let deadline = now + cfg.start_timeout;
        let mut c = Self::new(now, cfg, Role::Client, State::WaitReply { deadline });
        let sccrq = ControlMessage::Sccrq(Sccrq {
            protocol_version: PROTOCOL_VERSION,
            framing_capabilities: FRAMING_ASYNC | FRAMING_SYNC,
            bearer_capabilities: BEARER_ANALOG | BEARER_DIGITAL,
            maximum_channels: 0, // RFC 2637 §2.1: the PNS sets it to 0
            firmware_revision: c.cfg.firmware_revision,
            host_name: c.cfg.hostname.as_str().into(),
            vendor_string: c.cfg.vendor.as_str().into(),
        });
        c.send(&sccrq);
        c
    }

    fn new(now: Instant, cfg: ControlConfig, role: Role, state: State) -> Self {
        ControlConnection {
            role,
            cfg,
            state,
            deframer: Deframer::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            calls: BTreeMap::new(),
            pending: BTreeMap::new(),
            deferred: Vec::new(),
            last_rx: now,
            echo: None,
            next_echo_id: 1,
            next_serial: 0,
            stats: ControlStats::default(),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Established calls on this connection.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    pub fn stats(&self) -> &ControlStats {
        &self.stats
    }

    fn send(&mut self, msg: &ControlMessage) {
        self.stats.messages_sent += 1;
        self.transmits.push_back(msg.emit());
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        tracing::debug!(?reason, "PPTP control connection closed");
        self.state = State::Closed;
        self.calls.clear();
        self.pending.clear();
        self.deferred.clear();
        self.echo = None;
        self.events.push_back(ControlEvent::Closed { reason });
    }

    /// Raw bytes read from the TCP stream.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        self.deframer.push(bytes);
        while self.state != State::Closed {
            let raw = match self.deframer.next_message() {
                Ok(Some(raw)) => raw,
                Ok(None) => break,
                Err(ParseError::BadLength(len)) => {
                    tracing::warn!(len, "PPTP control length out of range, closing");
                    self.stats.bad_length += 1;
                    self.close(CloseReason::BadLength(len));
                    break;
                }
                Err(e) => {
                    // The deframer reports only length errors; treat anything else alike.
                    tracing::warn!(%e, "PPTP control framing error, closing");
                    self.stats.bad_length += 1;
                    self.close(CloseReason::BadLength(0));
                    break;
                }
            };
            match ControlMessage::parse(&raw) {
                Ok(msg) => {
                    self.stats.messages_received += 1;
                    self.last_rx = now;
                    self.handle_message(now, msg);
                }
                Err(ParseError::BadMagic(magic)) => {
                    tracing::warn!(magic, "PPTP bad magic cookie, closing control connection");
                    self.stats.bad_magic += 1;
                    self.close(CloseReason::BadMagic(magic));
                }
                Err(ParseError::NotControl(t)) => {
                    tracing::debug!(pptp_type = t, "ignoring non-control PPTP message");
                    self.stats.not_control += 1;
                }
                Err(e) => {
                    tracing::debug!(%e, "ignoring malformed PPTP control message");
                    self.stats.malformed += 1;
                }
            }
        }
    }

    fn out_of_state(&mut self, msg: &ControlMessage) {
        tracing::debug!(
            message_type = msg.message_type(),
            state = ?self.state,
            role = ?self.role,
            "ignoring PPTP control message out of state"
        );
        self.stats.out_of_state += 1;
    }

    fn handle_message(&mut self, now: Instant, msg: ControlMessage) {
        // Messages with the same meaning in every state.
        match &msg {
            ControlMessage::Unknown { message_type, .. } => {
                tracing::debug!(message_type, "ignoring unknown PPTP control message type");
                self.stats.unknown_type += 1;
                return;
            }
            ControlMessage::StopCcrq { reason } => {
                let reason = *reason;
                self.send(&ControlMessage::StopCcrp {
                    result: StopResult::Ok,
                    error: GeneralError::None,
                });
                let close = match self.state {
                    // Stop collision: both asked; we answered theirs and are done.
                    State::Stopping {
                        reason: Some(r), ..
                    } => r,
                    State::Stopping { reason: None, .. } => {
                        CloseReason::LocalStop { acknowledged: true }
                    }
                    _ => CloseReason::PeerStopped { reason },
                };
                self.close(close);
                return;
            }
            ControlMessage::EchoRequest { identifier } => {
                let up = matches!(self.state, State::Established | State::Stopping { .. });
                let (result, error) = if up {
                    (EchoResult::Ok, GeneralError::None)
                } else {
                    (EchoResult::GeneralError, GeneralError::NotConnected)
                };
                self.stats.echo_requests_answered += 1;
                self.send(&ControlMessage::EchoReply {
                    identifier: *identifier,
                    result,
                    error,
                });
                return;
            }
            ControlMessage::EchoReply { identifier, .. } => {
                match self.echo {
                    Some((id, _)) if id == *identifier => {
                        self.echo = None;
                        self.stats.echo_replies_received += 1;
                    }
                    _ => self.stats.unexpected_echo_reply += 1,
                }
                return;
            }
            ControlMessage::Icrq(icrq) => {
                // We never take incoming calls (no PSTN side, and a PNS role that would need
                // them is not implemented).
                let up = self.state == State::Established;
                self.send(&ControlMessage::Icrp(Icrp {
                    call_id: 0,
                    peer_call_id: icrq.call_id,
                    result: if up {
                        IncomingCallResult::DoNotAccept
                    } else {
                        IncomingCallResult::GeneralError
                    },
                    error: if up {
                        GeneralError::None
                    } else {
                        GeneralError::NotConnected
                    },
                    recv_window: self.cfg.recv_window,
                    processing_delay: 0,
                }));
                return;
            }
            _ => {}
        }
        match self.state {
            State::WaitRequest { .. } => self.on_wait_request(now, msg),
            State::WaitReply { .. } => self.on_wait_reply(now, msg),
            State::Established => self.on_established(msg),
            State::Stopping { reason, .. } => {
                if let ControlMessage::StopCcrp { .. } = msg {
                    self.close(reason.unwrap_or(CloseReason::LocalStop { acknowledged: true }));
                }
                // Anything else crossing our StopCCRQ is moot.
            }
            State::Closed => {}
        }
    }

    fn on_wait_request(&mut self, now: Instant, msg: ControlMessage) {
        match msg {
            ControlMessage::Sccrq(rq) => {
                if rq.protocol_version != PROTOCOL_VERSION {
                    tracing::info!(
                        version = rq.protocol_version,
                        "PPTP client speaks an unsupported protocol version"
                    );
                    self.send_sccrp(StartResult::VersionNotSupported);
                    self.close(CloseReason::VersionMismatch {
                        peer_version: rq.protocol_version,
                    });
                    return;
                }
                self.send_sccrp(StartResult::Ok);
                self.establish(now);
            }
            ControlMessage::Ocrq(rq) => {
                self.stats.out_of_state += 1;
                self.send_ocrp_refusal(
                    rq.call_id,
                    OutgoingCallResult::GeneralError,
                    GeneralError::NotConnected,
                );
            }
            other => self.out_of_state(&other),
        }
    }

    fn on_wait_reply(&mut self, now: Instant, msg: ControlMessage) {
        match msg {
            ControlMessage::Sccrp(rp) => {
                // pptp-linux also takes result 0 as success: some old servers send it.
                if !matches!(rp.result, StartResult::Ok | StartResult::Unknown(0)) {
                    self.close(CloseReason::StartRejected {
                        result: rp.result,
                        error: rp.error,
                    });
                    return;
                }
                if rp.protocol_version != PROTOCOL_VERSION {
                    self.begin_stop(
                        now,
                        StopReason::StopProtocol,
                        Some(CloseReason::VersionMismatch {
                            peer_version: rp.protocol_version,
                        }),
                    );
                    return;
                }
                self.establish(now);
                for local in std::mem::take(&mut self.deferred) {
                    self.send_ocrq(local);
                }
            }
            ControlMessage::Ocrq(rq) => {
                self.stats.out_of_state += 1;
                self.send_ocrp_refusal(
                    rq.call_id,
                    OutgoingCallResult::GeneralError,
                    GeneralError::NotConnected,
                );
            }
            other => self.out_of_state(&other),
        }
    }

    fn establish(&mut self, now: Instant) {
        self.state = State::Established;
        self.last_rx = now;
        self.events.push_back(ControlEvent::Established);
    }

    fn send_sccrp(&mut self, result: StartResult) {
        let rp = ControlMessage::Sccrp(Sccrp {
            protocol_version: PROTOCOL_VERSION,
            result,
            error: GeneralError::None,
            framing_capabilities: FRAMING_ASYNC | FRAMING_SYNC,
            bearer_capabilities: BEARER_ANALOG | BEARER_DIGITAL,
            maximum_channels: self.cfg.max_calls,
            firmware_revision: self.cfg.firmware_revision,
            host_name: self.cfg.hostname.as_str().into(),
            vendor_string: self.cfg.vendor.as_str().into(),
        });
        self.send(&rp);
    }

    fn send_ocrp_refusal(
        &mut self,
        peer_call_id: u16,
        result: OutgoingCallResult,
        error: GeneralError,
    ) {
        self.send(&ControlMessage::Ocrp(Ocrp {
            call_id: 0,
            peer_call_id,
            result,
            error,
            cause_code: 0,
            connect_speed: 0,
            recv_window: 0,
            processing_delay: 0,
            physical_channel_id: 0,
        }));
    }

    fn on_established(&mut self, msg: ControlMessage) {
        match (self.role, msg) {
            (Role::Server, ControlMessage::Sccrq(_)) => {
                self.stats.out_of_state += 1;
                self.send_sccrp(StartResult::AlreadyExists);
            }
            (Role::Server, ControlMessage::Ocrq(rq)) => self.on_ocrq(rq),
            (Role::Server, ControlMessage::Ccrq { call_id }) => self.on_ccrq(call_id),
            (Role::Client, ControlMessage::Ocrq(rq)) => {
                self.stats.out_of_state += 1;
                self.send_ocrp_refusal(
                    rq.call_id,
                    OutgoingCallResult::DoNotAccept,
                    GeneralError::None,
                );
            }
            (Role::Client, ControlMessage::Ocrp(rp)) => self.on_ocrp(rp),
            (Role::Client, ControlMessage::Cdn(cdn)) => self.on_cdn(cdn),
            (_, ControlMessage::Sli(sli)) => {
                if self.established_call(sli.peer_call_id) {
                    self.events.push_back(ControlEvent::SetLinkInfo {
                        local_call_id: sli.peer_call_id,
                        send_accm: sli.send_accm,
                        recv_accm: sli.recv_accm,
                    });
                } else {
                    self.unknown_call("SLI", sli.peer_call_id);
                }
            }
            (_, ControlMessage::Wen(w)) => {
                if self.established_call(w.peer_call_id) {
                    self.events.push_back(ControlEvent::WanErrorNotify {
                        local_call_id: w.peer_call_id,
                        crc_errors: w.crc_errors,
                        framing_errors: w.framing_errors,
                        hardware_overruns: w.hardware_overruns,
                        buffer_overruns: w.buffer_overruns,
                        timeout_errors: w.timeout_errors,
                        alignment_errors: w.alignment_errors,
                    });
                } else {
                    self.unknown_call("WEN", w.peer_call_id);
                }
            }
            (_, other) => self.out_of_state(&other),
        }
    }

    fn established_call(&self, local: u16) -> bool {
        matches!(
            self.calls.get(&local),
            Some(Call {
                state: CallState::Established,
                ..
            })
        )
    }

    fn unknown_call(&mut self, what: &str, id: u16) {
        tracing::debug!(
            what,
            call_id = id,
            "PPTP message for an unknown call, ignored"
        );
        self.stats.unknown_call_id += 1;
    }

    fn peer_id_in_use(&self, peer: u16) -> bool {
        self.pending.contains_key(&peer)
            || self.calls.values().any(|c| c.peer_call_id == Some(peer))
    }

    fn on_ocrq(&mut self, rq: Ocrq) {
        if self.peer_id_in_use(rq.call_id) {
            self.stats.calls_refused += 1;
            self.send_ocrp_refusal(
                rq.call_id,
                OutgoingCallResult::GeneralError,
                GeneralError::BadCallId,
            );
            return;
        }
        if self.calls.len() + self.pending.len() >= usize::from(self.cfg.max_calls) {
            tracing::info!(
                max_calls = self.cfg.max_calls,
                "PPTP call refused: max_calls"
            );
            self.stats.calls_refused += 1;
            self.send_ocrp_refusal(
                rq.call_id,
                OutgoingCallResult::GeneralError,
                GeneralError::NoResource,
            );
            return;
        }
        self.pending.insert(
            rq.call_id,
            PendingRequest {
                peer_recv_window: rq.recv_window,
            },
        );
        self.events.push_back(ControlEvent::CallRequest {
            peer_call_id: rq.call_id,
            call_serial: rq.call_serial,
            min_bps: rq.minimum_bps,
            max_bps: rq.maximum_bps,
            peer_recv_window: rq.recv_window,
            processing_delay: rq.processing_delay,
        });
    }

    fn on_ccrq(&mut self, peer_call_id: u16) {
        let local = self
            .calls
            .iter()
            .find(|(_, c)| c.peer_call_id == Some(peer_call_id))
            .map(|(l, _)| *l);
        let cdn_id = match local {
            Some(l) => {
                self.calls.remove(&l);
                self.events.push_back(ControlEvent::CallCleared {
                    local_call_id: l,
                    reason: CallClearReason::PeerRequest,
                });
                l
            }
            // A request the daemon has not answered yet: withdraw it. We have no call id of
            // our own yet, so the CDN names the peer's (as pptp-linux does as a PAC).
            None if self.pending.remove(&peer_call_id).is_some() => peer_call_id,
            None => {
                self.unknown_call("CCRQ", peer_call_id);
                return;
            }
        };
        self.send(&ControlMessage::Cdn(Cdn {
            call_id: cdn_id,
            result: DisconnectResult::Request,
            error: GeneralError::None,
            cause_code: 0,
            call_statistics: "".into(),
        }));
    }

    fn on_ocrp(&mut self, rp: Ocrp) {
        let local = rp.peer_call_id;
        match self.calls.get_mut(&local) {
            Some(call) if call.state == CallState::WaitReply => {
                if rp.result == OutgoingCallResult::Connected {
                    call.state = CallState::Established;
                    call.peer_call_id = Some(rp.call_id);
                    self.events.push_back(ControlEvent::CallEstablished {
                        local_call_id: local,
                        peer_call_id: rp.call_id,
                        peer_recv_window: rp.recv_window,
                    });
                } else {
                    self.calls.remove(&local);
                    self.events.push_back(ControlEvent::CallRejected {
                        local_call_id: local,
                        result: rp.result.into(),
                    });
                }
            }
            _ => self.unknown_call("OCRP", local),
        }
    }

    fn on_cdn(&mut self, cdn: Cdn) {
        let by_peer = self
            .calls
            .iter()
            .find(|(_, c)| c.peer_call_id == Some(cdn.call_id))
            .map(|(l, _)| *l);
        let local =
            by_peer.or_else(|| self.calls.contains_key(&cdn.call_id).then_some(cdn.call_id));
        let Some(local) = local else {
            self.unknown_call("CDN", cdn.call_id);
            return;
        };
        self.calls.remove(&local);
        self.events.push_back(ControlEvent::CallCleared {
            local_call_id: local,
            reason: CallClearReason::PeerDisconnect {
                result: cdn.result,
                error: cdn.error,
                cause_code: cdn.cause_code,
            },
        });
    }

    /// Server: answer the OCRQ from `peer_call_id` with OCRP "connected", naming the call
    /// `local_call_id` (the key the peer will put in GRE packets to us). Emits
    /// [`ControlEvent::CallEstablished`].
    pub fn accept_call(&mut self, _now: Instant, peer_call_id: u16, local_call_id: u16) {
        if self.role != Role::Server || self.state != State::Established {
            self.stats.api_misuse += 1;
            return;
        }
        let Some(req) = self.pending.remove(&peer_call_id) else {
            // Withdrawn by the peer (CCRQ) or never asked.
            self.stats.api_misuse += 1;
            return;
        };
        if self.calls.contains_key(&local_call_id) {
            tracing::warn!(local_call_id, "accept_call with a call id already in use");
            self.stats.api_misuse += 1;
            self.send_ocrp_refusal(
                peer_call_id,
                OutgoingCallResult::GeneralError,
                GeneralError::NoResource,
            );
            return;
        }
        self.calls.insert(
            local_call_id,
            Call {
                peer_call_id: Some(peer_call_id),
                state: CallState::Established,
            },
        );
        self.send(&ControlMessage::Ocrp(Ocrp {
            call_id: local_call_id,
            peer_call_id,
            result: OutgoingCallResult::Connected,
            error: GeneralError::None,
            cause_code: 0,
            connect_speed: self.cfg.connect_speed,
            recv_window: self.cfg.recv_window,
            processing_delay: 0,
            physical_channel_id: 0,
        }));
        self.events.push_back(ControlEvent::CallEstablished {
            local_call_id,
            peer_call_id,
            peer_recv_window: req.peer_recv_window,
        });
    }

    /// Server: refuse the OCRQ from `peer_call_id`. With `GeneralError` the error code sent is
    /// "no resource" (what a daemon refusing a call is short of).
    pub fn reject_call(&mut self, _now: Instant, peer_call_id: u16, result: OutgoingCallResult) {
        if self.role != Role::Server || self.pending.remove(&peer_call_id).is_none() {
            self.stats.api_misuse += 1;
            return;
        }
        let error = if result == OutgoingCallResult::GeneralError {
            GeneralError::NoResource
        } else {
            GeneralError::None
        };
        self.send_ocrp_refusal(peer_call_id, result, error);
    }

    /// Client: place an outgoing call we name `local_call_id` (the key the server will put in
    /// GRE packets to us). Sent at once if the connection is up, else as soon as it is.
    pub fn place_call(&mut self, _now: Instant, local_call_id: u16) {
        let in_use =
            self.calls.contains_key(&local_call_id) || self.deferred.contains(&local_call_id);
        if self.role != Role::Client || in_use {
            self.stats.api_misuse += 1;
            return;
        }
        match self.state {
            State::WaitReply { .. } => self.deferred.push(local_call_id),
            State::Established => self.send_ocrq(local_call_id),
            _ => self.stats.api_misuse += 1,
        }
    }

    fn send_ocrq(&mut self, local_call_id: u16) {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        self.calls.insert(
            local_call_id,
            Call {
                peer_call_id: None,
                state: CallState::WaitReply,
            },
        );
        self.send(&ControlMessage::Ocrq(Ocrq {
            call_id: local_call_id,
            call_serial: serial,
            minimum_bps: 2400, // what pptp-linux asks for
            maximum_bps: self.cfg.connect_speed,
            bearer_type: BEARER_ANALOG | BEARER_DIGITAL,
            framing_type: FRAMING_ASYNC | FRAMING_SYNC,
            recv_window: self.cfg.recv_window,
            processing_delay: 0,
            phone_number: "".into(),
            subaddress: "".into(),
        }));
    }

    /// End a call. Server: sends CDN "admin shutdown" and forgets the call (no event).
    /// Client: sends CCRQ; [`ControlEvent::CallCleared`] follows the server's CDN (or
    /// `stop_timeout`).
    pub fn clear_call(&mut self, now: Instant, local_call_id: u16) {
        if self.state != State::Established {
            self.stats.api_misuse += 1;
            return;
        }
        if self.role == Role::Client {
            if let Some(pos) = self.deferred.iter().position(|c| *c == local_call_id) {
                self.deferred.remove(pos);
                return;
            }
        }
        let Some(call) = self.calls.get_mut(&local_call_id) else {
            self.stats.api_misuse += 1;
            return;
        };
        match self.role {
            Role::Server => {
                self.calls.remove(&local_call_id);
                self.send(&ControlMessage::Cdn(Cdn {
                    call_id: local_call_id,
                    result: DisconnectResult::AdminShutdown,
                    error: GeneralError::None,
                    cause_code: 0,
                    call_statistics: "".into(),
                }));
            }
            Role::Client => {
                if matches!(call.state, CallState::WaitDisconnect { .. }) {
                    return;
                }
                call.state = CallState::WaitDisconnect {
                    deadline: now + self.cfg.stop_timeout,
                };
                self.send(&ControlMessage::Ccrq {
                    call_id: local_call_id,
                });
            }
        }
    }

    /// Stop the control connection: StopCCRQ with `reason`; [`ControlEvent::Closed`] follows the
    /// peer's reply or `stop_timeout`. Before the connection is up, closes at once.
    pub fn stop(&mut self, now: Instant, reason: StopReason) {
        match self.state {
            State::Established => {
                if self.role == Role::Server {
                    let locals: Vec<u16> = self.calls.keys().copied().collect();
                    for l in locals {
                        self.send(&ControlMessage::Cdn(Cdn {
                            call_id: l,
                            result: DisconnectResult::AdminShutdown,
                            error: GeneralError::None,
                            cause_code: 0,
                            call_statistics: "".into(),
                        }));
                    }
                }
                self.begin_stop(now, reason, None);
            }
            State::WaitRequest { .. } | State::WaitReply { .. } => {
                self.close(CloseReason::LocalStop {
                    acknowledged: false,
                });
            }
            State::Stopping { .. } | State::Closed => {}
        }
    }

    fn begin_stop(&mut self, now: Instant, reason: StopReason, close: Option<CloseReason>) {
        self.calls.clear();
        self.pending.clear();
        self.deferred.clear();
        self.echo = None;
        self.send(&ControlMessage::StopCcrq { reason });
        self.state = State::Stopping {
            deadline: now + self.cfg.stop_timeout,
            reason: close,
        };
    }

    /// The earliest instant at which [`ControlConnection::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::WaitRequest { deadline } | State::WaitReply { deadline } => Some(deadline),
            State::Stopping { deadline, .. } => Some(deadline),
            State::Closed => None,
            State::Established => {
                let echo = match self.echo {
                    Some((_, deadline)) => deadline,
                    None => self.last_rx + self.cfg.echo_interval,
                };
                let calls = self.calls.values().filter_map(|c| match c.state {
                    CallState::WaitDisconnect { deadline } => Some(deadline),
                    _ => None,
                });
                calls.chain(std::iter::once(echo)).min()
            }
        }
    }

    /// Timer expiry (call whenever `now >= poll_timeout()`; extra calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::WaitRequest { deadline } | State::WaitReply { deadline } => {
                if now >= deadline {
                    tracing::info!("PPTP control connection start timeout");
                    self.close(CloseReason::StartTimeout);
                }
            }
            State::Stopping { deadline, reason } => {
                if now >= deadline {
                    self.close(reason.unwrap_or(CloseReason::LocalStop {
                        acknowledged: false,
                    }));
                }
            }
            State::Closed => {}
            State::Established => {
                let expired: Vec<u16> = self
                    .calls
                    .iter()
                    .filter(|(_, c)| {
                        matches!(c.state, CallState::WaitDisconnect { deadline } if now >= deadline)
                    })
                    .map(|(l, _)| *l)
                    .collect();
                for l in expired {
                    self.calls.remove(&l);
                    self.events.push_back(ControlEvent::CallCleared {
                        local_call_id: l,
                        reason: CallClearReason::NoDisconnectNotify,
                    });
                }
                match self.echo {
                    Some((_, deadline)) if now >= deadline => {
                        tracing::info!("PPTP echo timeout, closing control connection");
                        self.close(CloseReason::EchoTimeout);
                    }
                    Some(_) => {}
                    None if now >= self.last_rx + self.cfg.echo_interval => {
                        let id = self.next_echo_id;
                        self.next_echo_id = self.next_echo_id.wrapping_add(1);
                        self.echo = Some((id, now + self.cfg.echo_timeout));
                        self.stats.echo_requests_sent += 1;
                        self.send(&ControlMessage::EchoRequest { identifier: id });
                    }
                    None => {}
                }
            }
        }
    }

    /// Next bytes to write to the TCP stream (one control message).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ControlEvent> {
        self.events.pop_front()
    }
}
