//! Fuzz targets for `virtgate-pptp`: control messages (RFC 2637 §2), TCP stream framing
//! (§1.4), the control-connection machine in both roles (§3), the enhanced GRE header (§4.1)
//! and per-call sequencing (§4.2).
//!
//! Every target checks invariants, not just the absence of panics:
//! - parsers that have an emitter round-trip (parse → emit → parse gives the same value, and
//!   emitting again gives the same bytes);
//! - the state machines are driven by a byte script on virtual time (see each `*_script`
//!   builder for the encoding) and their outputs are checked after every step: every message
//!   sent parses and is canonical, `Closed` comes at most once and nothing follows it, the timer
//!   is always in the future, and the calls the machine reports agree with a model kept here.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use virtgate_pptp::control::{
    defined_length, message_length, message_type, Deframer, ParseError, HEADER_LEN, MAGIC_COOKIE,
    MAX_MESSAGE_LEN, PPTP_MESSAGE_CONTROL, PPTP_MESSAGE_MANAGEMENT,
};
use virtgate_pptp::gre::{DropReason, GRE_ACK_ONLY_LEN};
use virtgate_pptp::{
    ControlConfig, ControlConnection, ControlEvent, ControlMessage, GreChannel, GreConfig,
    GreHeader, OutgoingCallResult, Role, RxVerdict, StopReason, GRE_HEADROOM,
};

use crate::input::{Input, ScriptWriter};

// ---------------------------------------------------------------------------------------------
// Control messages
// ---------------------------------------------------------------------------------------------

/// `ControlMessage::parse` on the whole input; on success, emit → parse must give the same
/// message and emitting that must give the same bytes. Known types are emitted at exactly their
/// defined length, and nothing emitted is longer than the framer accepts.
pub fn pptp_control_roundtrip(data: &[u8]) {
    let Ok(msg) = ControlMessage::parse(data) else {
        return;
    };
    let wire = msg.emit();
    assert!(
        wire.len() <= MAX_MESSAGE_LEN,
        "emitted {} bytes, more than the framer accepts",
        wire.len()
    );
    if let Some(need) = defined_length(msg.message_type()) {
        assert_eq!(
            wire.len(),
            need,
            "known message emitted at the wrong length"
        );
    }
    assert_eq!(
        message_length(&wire),
        Ok(Some(wire.len())),
        "emitted length field"
    );
    let again = match ControlMessage::parse(&wire) {
        Ok(m) => m,
        Err(e) => panic!("re-parsing our own emission of {msg:?} failed: {e}"),
    };
    assert_eq!(again, msg, "parse(emit(m)) != m");
    assert_eq!(again.emit(), wire, "emission is not canonical");
}

/// The control-stream framer: the first byte seeds how the rest is cut into TCP reads. Feeding
/// it in pieces must give the same messages (and the same framing error) as feeding it at once;
/// the messages concatenate to a prefix of the stream; each message's length field is its
/// length; and after draining, fewer than `MAX_MESSAGE_LEN` bytes stay buffered.
pub fn pptp_deframer(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = deframe(stream, &[stream.len()]);
    let mut sizes = Vec::new();
    let mut x = u32::from(seed) | 0x100;
    let mut total = 0;
    while total < stream.len() {
        // xorshift32: cut sizes 0..=40 (zero-length reads included).
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (x % 41) as usize;
        sizes.push(n);
        total += n;
    }
    let pieces = deframe(stream, &sizes);
    assert_eq!(whole, pieces, "framing depends on how the stream is cut");

    let (msgs, err) = whole;
    let mut at = 0;
    for m in &msgs {
        assert_eq!(message_length(m), Ok(Some(m.len())));
        assert_eq!(
            stream.get(at..at + m.len()),
            Some(&m[..]),
            "message is not the stream"
        );
        at += m.len();
    }
    if let Some(ParseError::BadLength(len)) = err {
        let declared = stream
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]));
        assert_eq!(declared, Some(len), "error names another length field");
    } else {
        assert_eq!(err, None, "the framer reports only length errors");
    }
}

type Deframed = (Vec<Vec<u8>>, Option<ParseError>);

fn deframe(stream: &[u8], sizes: &[usize]) -> Deframed {
    let mut d = Deframer::new();
    let mut msgs = Vec::new();
    let mut err = None;
    let mut rest = stream;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = sizes.next().copied().unwrap_or(rest.len()).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        d.push(piece);
        loop {
            match d.next_message() {
                Ok(Some(m)) => msgs.push(m),
                Ok(None) => break,
                Err(e) => {
                    assert!(err.is_none(), "a failed framer reported a second error");
                    err = Some(e);
                }
            }
        }
        assert!(
            d.buffered() < MAX_MESSAGE_LEN,
            "{} bytes buffered after draining",
            d.buffered()
        );
        if err.is_some() {
            assert_eq!(d.buffered(), 0, "a failed framer keeps bytes");
        }
    }
    (msgs, err)
}

// ---------------------------------------------------------------------------------------------
// Control connection
// ---------------------------------------------------------------------------------------------

/// Script operations of the control-connection targets (`op % 8`).
pub mod conn_op {
    /// Length byte + bytes: raw TCP bytes to `handle_input`.
    pub const FEED: u8 = 0;
    /// Type byte + length byte + body: a message with a valid header (length, magic cookie)
    /// and the body zero-padded to the type's defined length. Type byte: low 4 bits the control
    /// message type, bit 7 set for a PPTP management message instead of a control one.
    pub const MESSAGE: u8 = 1;
    /// u16 in units of 10 ms: advance the clock, then `handle_timeout`.
    pub const ADVANCE: u8 = 2;
    /// Jump the clock to `poll_timeout()` and call `handle_timeout`.
    pub const JUMP: u8 = 3;
    /// u16: server: accept the oldest unanswered call request with this local call id (or, if
    /// none is pending, call `accept_call` with it as the peer's id too); client: `place_call`.
    pub const ACCEPT: u8 = 4;
    /// Result byte: server: reject the oldest unanswered request (or peer id 0 if none);
    /// client: `place_call` with a call id already used.
    pub const REJECT: u8 = 5;
    /// Byte: below 0x80, clear the known call at that index (mod the count); else u16 follows:
    /// `clear_call` with that id.
    pub const CLEAR: u8 = 6;
    /// Reason byte: `stop`.
    pub const STOP: u8 = 7;
}

/// Builds scripts for [`pptp_control_server`] / [`pptp_control_client`].
#[derive(Debug, Clone)]
pub struct ConnScript(ScriptWriter);

impl ConnScript {
    /// `max_calls` 1..=4 (the config byte stores `max_calls - 1` in its low two bits).
    pub fn new(max_calls: u8) -> Self {
        let mut w = ScriptWriter::new();
        w.u8(max_calls.saturating_sub(1) & 3);
        ConnScript(w)
    }
    pub fn feed(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.chunks(conn_op::FEED, bytes);
        self
    }
    pub fn message(&mut self, type_byte: u8, body: &[u8]) -> &mut Self {
        let body = &body[..body.len().min(255)];
        self.0.u8(conn_op::MESSAGE).u8(type_byte);
        self.0
            .u8(u8::try_from(body.len()).unwrap_or(u8::MAX))
            .raw(body);
        self
    }
    pub fn advance(&mut self, d: Duration) -> &mut Self {
        let units = u16::try_from(d.as_millis() / 10).unwrap_or(u16::MAX);
        self.0.u8(conn_op::ADVANCE).u16(units);
        self
    }
    pub fn jump(&mut self) -> &mut Self {
        self.0.u8(conn_op::JUMP);
        self
    }
    pub fn accept(&mut self, local_call_id: u16) -> &mut Self {
        self.0.u8(conn_op::ACCEPT).u16(local_call_id);
        self
    }
    pub fn reject(&mut self, result: u8) -> &mut Self {
        self.0.u8(conn_op::REJECT).u8(result);
        self
    }
    pub fn clear_known(&mut self, index: u8) -> &mut Self {
        self.0.u8(conn_op::CLEAR).u8(index & 0x7f);
        self
    }
    pub fn stop(&mut self, reason: u8) -> &mut Self {
        self.0.u8(conn_op::STOP).u8(reason);
        self
    }
    pub fn finish(&self) -> Vec<u8> {
        self.0.finish()
    }
}

/// The server (PAC) control connection driven by a [`ConnScript`].
pub fn pptp_control_server(data: &[u8]) {
    run_conn(Role::Server, data);
}

/// The client (PNS) control connection driven by a [`ConnScript`].
pub fn pptp_control_client(data: &[u8]) {
    run_conn(Role::Client, data);
}

struct ConnHarness {
    conn: ControlConnection,
    role: Role,
    now: Instant,
    max_calls: usize,
    closed: bool,
    established: bool,
    /// Server: peer call ids of `CallRequest`s not answered yet (some may have been withdrawn).
    pending: VecDeque<u16>,
    /// Server: established calls by local id, as the events and our own actions say.
    calls: BTreeSet<u16>,
    /// Client: every call id we placed.
    placed: BTreeSet<u16>,
    /// Call ids to pick from for `clear_call`.
    known: Vec<u16>,
    events: Vec<ControlEvent>,
}

/// The events a control-connection script produces (for checking that seeds reach deep states).
pub fn pptp_control_events(role: Role, data: &[u8]) -> Vec<ControlEvent> {
    run_conn(role, data)
}

fn run_conn(role: Role, data: &[u8]) -> Vec<ControlEvent> {
    let mut input = Input::new(data);
    let Some(cfg_byte) = input.u8() else {
        return Vec::new();
    };
    let cfg = ControlConfig {
        max_calls: u16::from(cfg_byte & 3) + 1,
        ..ControlConfig::default()
    };
    let now = Instant::now();
    let conn = match role {
        Role::Server => ControlConnection::new_server(now, cfg.clone()),
        Role::Client => ControlConnection::new_client(now, cfg.clone()),
    };
    let mut h = ConnHarness {
        conn,
        role,
        now,
        max_calls: usize::from(cfg.max_calls),
        closed: false,
        established: false,
        pending: VecDeque::new(),
        calls: BTreeSet::new(),
        placed: BTreeSet::new(),
        known: Vec::new(),
        events: Vec::new(),
    };
    h.check();
    while let Some(op) = input.u8() {
        if h.step(op % 8, &mut input).is_none() {
            break;
        }
        h.check();
    }
    h.events
}

impl ConnHarness {
    fn step(&mut self, op: u8, input: &mut Input<'_>) -> Option<()> {
        match op {
            conn_op::FEED => {
                let bytes = input.chunk()?;
                self.conn.handle_input(self.now, bytes);
            }
            conn_op::MESSAGE => {
                let t = input.u8()?;
                let body = input.chunk()?;
                let ctrl_type = u16::from(t & 0x0f);
                let pptp_type = if t & 0x80 != 0 {
                    PPTP_MESSAGE_MANAGEMENT
                } else {
                    PPTP_MESSAGE_CONTROL
                };
                let body_len = defined_length(ctrl_type)
                    .map_or(body.len(), |n| (n - HEADER_LEN).max(body.len()));
                let mut m = Vec::with_capacity(HEADER_LEN + body_len);
                let total = u16::try_from(HEADER_LEN + body_len).unwrap_or(u16::MAX);
                m.extend_from_slice(&total.to_be_bytes());
                m.extend_from_slice(&pptp_type.to_be_bytes());
                m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
                m.extend_from_slice(&ctrl_type.to_be_bytes());
                m.extend_from_slice(&[0, 0]);
                m.extend_from_slice(body);
                m.resize(HEADER_LEN + body_len, 0);
                self.conn.handle_input(self.now, &m);
            }
            conn_op::ADVANCE => {
                let units = input.u16()?;
                self.now += Duration::from_millis(u64::from(units) * 10);
                self.conn.handle_timeout(self.now);
            }
            conn_op::JUMP => {
                if let Some(t) = self.conn.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.conn.handle_timeout(self.now);
            }
            conn_op::ACCEPT => {
                let id = input.u16()?;
                match self.role {
                    Role::Server => {
                        let peer = self.pending.pop_front().unwrap_or(id);
                        self.conn.accept_call(self.now, peer, id);
                    }
                    Role::Client => {
                        self.placed.insert(id);
                        self.known.push(id);
                        self.conn.place_call(self.now, id);
                    }
                }
            }
            conn_op::REJECT => {
                let r = input.u8()?;
                match self.role {
                    Role::Server => {
                        let peer = self.pending.pop_front().unwrap_or(0);
                        self.conn
                            .reject_call(self.now, peer, OutgoingCallResult::from(r));
                    }
                    Role::Client => {
                        let id = self.known.first().copied().unwrap_or(u16::from(r));
                        self.placed.insert(id);
                        self.conn.place_call(self.now, id);
                    }
                }
            }
            conn_op::CLEAR => {
                let b = input.u8()?;
                let id = if b < 0x80 && !self.known.is_empty() {
                    self.known[usize::from(b) % self.known.len()]
                } else {
                    input.u16()?
                };
                if self.role == Role::Server && self.conn.is_established() {
                    // The server forgets the call at once, without an event.
                    self.calls.remove(&id);
                }
                self.conn.clear_call(self.now, id);
            }
            conn_op::STOP => {
                let r = input.u8()?;
                if self.conn.is_established() {
                    // Calls are dropped with the StopCCRQ; `Closed` follows later.
                    self.calls.clear();
                }
                self.conn.stop(self.now, StopReason::from(r));
            }
            _ => unreachable!("op is taken mod 8"),
        }
        Some(())
    }

    /// Drains transmits and events and checks every invariant.
    fn check(&mut self) {
        while let Some(bytes) = self.conn.poll_transmit() {
            assert!(!self.closed, "transmit after Closed was drained");
            check_sent(self.role, &bytes);
        }
        while let Some(ev) = self.conn.poll_event() {
            assert!(!self.closed, "event {ev:?} after Closed");
            self.events.push(ev.clone());
            self.on_event(ev);
        }
        assert_eq!(
            self.conn.is_closed(),
            self.closed,
            "is_closed vs Closed event"
        );
        match self.conn.poll_timeout() {
            None => assert!(self.closed, "an open connection has no timer"),
            Some(t) => {
                assert!(!self.closed, "a closed connection has a timer");
                assert!(
                    t > self.now,
                    "timer {:?} not in the future after handling",
                    t - self.now
                );
            }
        }
        if self.role == Role::Server {
            assert_eq!(
                self.conn.call_count(),
                self.calls.len(),
                "call_count vs events: {:?}",
                self.calls
            );
            assert!(
                self.calls.len() <= self.max_calls,
                "more calls than max_calls"
            );
        }
    }

    fn on_event(&mut self, ev: ControlEvent) {
        match ev {
            ControlEvent::Established => {
                assert!(!self.established, "Established twice");
                self.established = true;
            }
            ControlEvent::CallRequest { peer_call_id, .. } => {
                assert_eq!(self.role, Role::Server, "a client got a CallRequest");
                assert!(self.established, "CallRequest before Established");
                self.pending.push_back(peer_call_id);
            }
            ControlEvent::CallEstablished { local_call_id, .. } => {
                assert!(self.established, "CallEstablished before Established");
                if self.role == Role::Client {
                    assert!(self.placed.contains(&local_call_id), "call we never placed");
                }
                assert!(
                    self.calls.insert(local_call_id),
                    "call {local_call_id} established twice"
                );
                self.known.push(local_call_id);
            }
            ControlEvent::CallRejected { local_call_id, .. } => {
                assert_eq!(self.role, Role::Client, "a server reported CallRejected");
                assert!(
                    self.placed.contains(&local_call_id),
                    "rejected a call we never placed"
                );
            }
            ControlEvent::CallCleared { local_call_id, .. } => match self.role {
                Role::Server => assert!(
                    self.calls.remove(&local_call_id),
                    "cleared call {local_call_id} that was not established"
                ),
                Role::Client => {
                    assert!(
                        self.placed.contains(&local_call_id),
                        "cleared a call we never placed"
                    );
                    self.calls.remove(&local_call_id);
                }
            },
            ControlEvent::SetLinkInfo { local_call_id, .. }
            | ControlEvent::WanErrorNotify { local_call_id, .. } => {
                assert!(
                    self.calls.contains(&local_call_id),
                    "link event for call {local_call_id} that is not established"
                );
            }
            ControlEvent::Closed { .. } => {
                self.closed = true;
                self.calls.clear();
                self.pending.clear();
            }
        }
    }
}

/// A message the machine sent: parses, is canonical, fits the framer, and suits the role.
fn check_sent(role: Role, bytes: &[u8]) {
    assert_eq!(
        message_length(bytes),
        Ok(Some(bytes.len())),
        "sent a mis-framed message"
    );
    let msg = match ControlMessage::parse(bytes) {
        Ok(m) => m,
        Err(e) => panic!("sent a message that does not parse: {e}"),
    };
    assert_eq!(msg.emit(), bytes, "sent a non-canonical message");
    let t = msg.message_type();
    assert!(defined_length(t).is_some(), "sent unknown message type {t}");
    use message_type::*;
    let forbidden: &[u16] = match role {
        // The PAC never starts a control connection, places a call or asks to clear one.
        Role::Server => &[SCCRQ, OCRQ, CCRQ, ICRQ, ICCN, SLI],
        // The PNS never answers a start, disconnects a call or reports WAN errors.
        Role::Client => &[SCCRP, CDN, WEN, ICRQ, ICCN],
    };
    assert!(!forbidden.contains(&t), "{role:?} sent {msg:?}");
}

// ---------------------------------------------------------------------------------------------
// GRE
// ---------------------------------------------------------------------------------------------

/// `GreHeader::parse` on the whole input; on success the header's length is what it claims, the
/// payload fits, emitting it reproduces the input's header bytes exactly (every flag bit is
/// fixed by the header's fields), and parsing header + payload again gives the same header.
pub fn pptp_gre_header_roundtrip(data: &[u8]) {
    let Ok((hdr, hlen)) = GreHeader::parse(data) else {
        return;
    };
    assert_eq!(hlen, hdr.len(), "returned header length");
    let end = hlen + usize::from(hdr.payload_len);
    assert!(end <= data.len(), "payload runs past the packet");
    let mut out = [0u8; GRE_HEADROOM];
    let n = hdr.emit(&mut out);
    assert_eq!(n, hlen);
    assert_eq!(
        &out[..n],
        &data[..hlen],
        "emit does not reproduce the header bytes"
    );
    let mut pkt = out[..n].to_vec();
    pkt.extend_from_slice(&data[hlen..end]);
    assert_eq!(GreHeader::parse(&pkt), Ok((hdr, hlen)), "re-parse");
}

/// Script operations of [`pptp_gre_channel`] (`op % 6`).
pub mod gre_op {
    /// Length byte + bytes: `GreHeader::parse`, then `receive` if it parsed.
    pub const RECV_RAW: u8 = 0;
    /// Flags byte + fields: a header built directly. Bit 0: key = our local call id (else u16
    /// follows); bit 1: sequence number present (u32 follows, or with bit 4 an i8 delta from the
    /// last accepted one); bit 2: ack present (u32 follows); bit 3: payload (u16 length follows).
    pub const RECV_FIELDS: u8 = 1;
    /// Length byte: encapsulate a payload of that many bytes.
    pub const SEND: u8 = 2;
    /// u16 milliseconds: advance the clock, then `poll_ack`.
    pub const ADVANCE: u8 = 3;
    /// Jump to `poll_timeout()`, then `poll_ack` (which must produce the ack).
    pub const JUMP: u8 = 4;
    /// The peer acknowledges everything we sent (ack-only packet).
    pub const PEER_ACK_ALL: u8 = 5;
}

/// Builds scripts for [`pptp_gre_channel`].
#[derive(Debug, Clone)]
pub struct GreScript(ScriptWriter);

impl GreScript {
    pub fn new(local_call_id: u16, peer_call_id: u16, peer_window: u16, ack_every: u8) -> Self {
        let mut w = ScriptWriter::new();
        w.u16(local_call_id)
            .u16(peer_call_id)
            .u16(peer_window)
            .u8(ack_every);
        GreScript(w)
    }
    /// A received GRE packet. Only its header matters to the channel, so a packet longer than
    /// a chunk (255 bytes) is cut and its payload length field patched to match.
    pub fn recv_raw(&mut self, packet: &[u8]) -> &mut Self {
        let mut p = packet[..packet.len().min(255)].to_vec();
        if p.len() < packet.len() {
            if let Ok((_, hlen)) = GreHeader::parse(packet) {
                let kept = u16::try_from(p.len().saturating_sub(hlen)).unwrap_or(0);
                p[4..6].copy_from_slice(&kept.to_be_bytes());
            }
        }
        self.0
            .u8(gre_op::RECV_RAW)
            .u8(u8::try_from(p.len()).unwrap_or(u8::MAX))
            .raw(&p);
        self
    }
    pub fn send(&mut self, len: u8) -> &mut Self {
        self.0.u8(gre_op::SEND).u8(len);
        self
    }
    pub fn advance(&mut self, ms: u16) -> &mut Self {
        self.0.u8(gre_op::ADVANCE).u16(ms);
        self
    }
    pub fn jump(&mut self) -> &mut Self {
        self.0.u8(gre_op::JUMP);
        self
    }
    pub fn peer_ack_all(&mut self) -> &mut Self {
        self.0.u8(gre_op::PEER_ACK_ALL);
        self
    }
    pub fn finish(&self) -> Vec<u8> {
        self.0.finish()
    }
}

/// One call's `GreChannel` driven by a [`GreScript`]: received headers (parsed from bytes or
/// built from fields), sends, and time. Checks the sequence window (a delivered packet is newer
/// than every earlier one; drops leave the receive state alone), that acks we get never exceed
/// what we sent, that every packet we emit parses back with our next sequence number and the
/// owed ack, and that an ack that is due is produced exactly once.
pub fn pptp_gre_channel(data: &[u8]) {
    gre_channel_stats(data);
}

/// Runs a [`GreScript`] like [`pptp_gre_channel`] and returns the channel's counters (for
/// checking that seeds exercise the channel).
pub fn gre_channel_stats(data: &[u8]) -> Option<virtgate_pptp::GreStats> {
    let mut input = Input::new(data);
    let (Some(local), Some(peer), Some(window), Some(every)) =
        (input.u16(), input.u16(), input.u16(), input.u8())
    else {
        return None;
    };
    let cfg = GreConfig {
        ack_every: u32::from(every % 32) + 1,
        ..GreConfig::default()
    };
    let mut ch = GreChannel::with_config(local, peer, window, cfg);
    let mut now = Instant::now();
    let mut prev_peer_ack: Option<u32> = None;
    while let Some(op) = input.u8() {
        match op % 6 {
            gre_op::RECV_RAW => {
                let Some(pkt) = input.chunk() else { break };
                if let Ok((hdr, _)) = GreHeader::parse(pkt) {
                    gre_receive(&mut ch, now, &hdr);
                }
            }
            gre_op::RECV_FIELDS => {
                let Some(hdr) = gre_fields(&ch, &mut input) else {
                    break;
                };
                gre_receive(&mut ch, now, &hdr);
            }
            gre_op::SEND => {
                let Some(len) = input.u8() else { break };
                gre_send(&mut ch, now, usize::from(len));
            }
            gre_op::ADVANCE => {
                let Some(ms) = input.u16() else { break };
                now += Duration::from_millis(u64::from(ms));
                gre_poll_ack(&mut ch, now);
            }
            gre_op::JUMP => {
                if let Some(t) = ch.poll_timeout() {
                    now = now.max(t);
                    assert!(gre_poll_ack(&mut ch, now), "due ack not produced");
                }
            }
            gre_op::PEER_ACK_ALL => {
                if let Some(last_sent) = ch.next_send_seq().checked_sub(1) {
                    let hdr = GreHeader {
                        call_id: local,
                        payload_len: 0,
                        seq: None,
                        ack: Some(last_sent),
                    };
                    assert_eq!(ch.receive(now, &hdr), RxVerdict::Drop(DropReason::AckOnly));
                    assert_eq!(ch.peer_ack(), Some(last_sent));
                    assert_eq!(ch.in_flight(), 0);
                }
            }
            _ => unreachable!("op is taken mod 6"),
        }
        // Acks never go backwards and never name a packet we did not send.
        if let Some(a) = ch.peer_ack() {
            assert!(
                a < ch.next_send_seq(),
                "peer ack {a} for a packet never sent"
            );
            if let Some(p) = prev_peer_ack {
                assert!(a >= p, "peer ack went back from {p} to {a}");
            }
        }
        prev_peer_ack = ch.peer_ack();
        assert!(ch.in_flight() <= ch.next_send_seq());
    }
    Some(ch.stats().clone())
}

fn gre_fields(ch: &GreChannel, input: &mut Input<'_>) -> Option<GreHeader> {
    let flags = input.u8()?;
    let call_id = if flags & 1 != 0 {
        ch.local_call_id()
    } else {
        input.u16()?
    };
    let seq = match (flags & 2 != 0, flags & 0x10 != 0) {
        (false, _) => None,
        (true, false) => Some(input.u32()?),
        (true, true) => {
            let delta = i32::from(input.u8()? as i8);
            let base = ch.last_received_seq().unwrap_or(0);
            Some(base.wrapping_add_signed(delta))
        }
    };
    let ack = if flags & 4 != 0 {
        Some(input.u32()?)
    } else {
        None
    };
    let payload_len = if flags & 8 != 0 { input.u16()? } else { 0 };
    Some(GreHeader {
        call_id,
        payload_len,
        seq,
        ack,
    })
}

fn gre_receive(ch: &mut GreChannel, now: Instant, hdr: &GreHeader) {
    let before = ch.last_received_seq();
    let verdict = ch.receive(now, hdr);
    let after = ch.last_received_seq();
    let accepted = matches!(
        verdict,
        RxVerdict::Deliver | RxVerdict::Drop(DropReason::Empty)
    );
    if accepted {
        let seq = hdr
            .seq
            .unwrap_or_else(|| panic!("{verdict:?} without a sequence number"));
        assert_eq!(after, Some(seq), "accepted sequence number not recorded");
        if let Some(b) = before {
            assert!(
                (seq.wrapping_sub(b) as i32) > 0,
                "accepted {seq} which is not newer than {b}"
            );
        }
        assert_eq!(
            verdict == RxVerdict::Deliver,
            hdr.payload_len > 0,
            "{verdict:?} with payload_len {}",
            hdr.payload_len
        );
    } else {
        assert_eq!(before, after, "{verdict:?} changed the receive sequence");
    }
    assert_eq!(
        verdict == RxVerdict::Drop(DropReason::WrongCallId),
        hdr.call_id != ch.local_call_id(),
        "call id check"
    );
}

fn gre_send(ch: &mut GreChannel, now: Instant, len: usize) {
    let seq = ch.next_send_seq();
    let owed = ch.poll_timeout().is_some();
    let last_rx = ch.last_received_seq();
    let mut buf = vec![0xa5u8; GRE_HEADROOM + len];
    let (start, total) = ch.encapsulate(now, &mut buf, GRE_HEADROOM, len);
    let pkt = &buf[start..start + total];
    let (hdr, hlen) = match GreHeader::parse(pkt) {
        Ok(h) => h,
        Err(e) => panic!("our own GRE packet does not parse: {e}"),
    };
    assert_eq!(hlen + len, total);
    assert_eq!(hdr.call_id, ch.peer_call_id(), "sent with the wrong key");
    assert_eq!(hdr.seq, Some(seq), "sequence number");
    assert_eq!(usize::from(hdr.payload_len), len);
    assert_eq!(ch.next_send_seq(), seq.wrapping_add(1));
    if owed {
        assert_eq!(hdr.ack, last_rx, "owed ack not piggybacked");
    }
    if let Some(a) = hdr.ack {
        assert_eq!(Some(a), last_rx, "ack for something we did not receive");
    }
    assert_eq!(ch.poll_timeout(), None, "ack still owed after piggybacking");
}

/// `poll_ack` at `now`: returns whether an ack-only packet came out.
fn gre_poll_ack(ch: &mut GreChannel, now: Instant) -> bool {
    let due = ch.poll_timeout().is_some_and(|t| t <= now);
    let last_rx = ch.last_received_seq();
    let mut out = [0u8; 32];
    let sent = ch.poll_ack(now, &mut out);
    assert_eq!(sent.is_some(), due, "poll_ack vs poll_timeout");
    if let Some(n) = sent {
        assert_eq!(n, GRE_ACK_ONLY_LEN);
        let (hdr, hlen) = match GreHeader::parse(&out[..n]) {
            Ok(h) => h,
            Err(e) => panic!("our ack-only packet does not parse: {e}"),
        };
        assert_eq!(hlen, n);
        assert_eq!(hdr.call_id, ch.peer_call_id());
        assert_eq!((hdr.seq, hdr.payload_len), (None, 0));
        assert_eq!(hdr.ack, last_rx);
        assert_eq!(ch.poll_timeout(), None, "ack still owed after poll_ack");
    }
    sent.is_some()
}
