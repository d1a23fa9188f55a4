//! The RADIUS client on virtual time: one instance per server list (authentication or
//! accounting), one UDP socket in the caller.
//!
//! - Identifiers: one 8-bit space per client, an identifier is never reused while its
//!   request is outstanding; so at most 256 (and at most `max_outstanding`) requests wait.
//! - Retransmission: the same datagram (same identifier and authenticator) every `timeout`,
//!   `retries` transmissions per server (radiusclient's radius_timeout / radius_retries).
//! - Failover: when a server has not answered after its transmissions it is held down
//!   (`deadtime`, radius_deadtime) and the request moves to the next server in list order that
//!   it has not tried, re-encoded for that server's secret (new authenticator, RFC 5080 §2.2.1).
//!   New requests go to the first server not held down (the one whose hold-down ends first
//!   if all are). A request has failed once every server has been tried.
//! - Answers: matched by identifier and source address, checked (Response Authenticator,
//!   Message-Authenticator: required on Access-Accept/-Reject/-Challenge, RFC 3579 §3.2 and
//!   the BlastRADIUS advice) and handed out as [`ClientEvent::Reply`]; forged or stray ones
//!   are counted and dropped.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::crypto::{
    hide_password, message_authenticator_placeholder, sign_request, verify_response, VerifyError,
};
use crate::packet::{Attr, Code, Packet};
use crate::{attr, Entropy};

/// One server: address (with port) and shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Server {
    pub addr: SocketAddr,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Server({})", self.addr)
    }
}

/// Client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// In order of preference.
    pub servers: Vec<Server>,
    /// Wait for an answer before retransmitting.
    pub timeout: Duration,
    /// Transmissions per server (>= 1).
    pub retries: u32,
    /// How long a server that did not answer is skipped (0 = never skipped).
    pub deadtime: Duration,
    /// Requests waiting at once (at most 256).
    pub max_outstanding: usize,
    /// Drop Access-Accept/-Reject/-Challenge without Message-Authenticator (RFC 3579 §3.2;
    /// the BlastRADIUS advice). One present is always checked. FreeRADIUS before 3.2.5 sends
    /// none for PAP/CHAP/MS-CHAP.
    pub require_message_authenticator: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            servers: Vec::new(),
            timeout: Duration::from_secs(3),
            retries: 3,
            deadtime: Duration::from_secs(30),
            max_outstanding: 256,
            require_message_authenticator: true,
        }
    }
}

/// A request to send: its code and attributes; `password` is hidden into User-Password for
/// each server. A Message-Authenticator is added by the client.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub code: Code,
    pub attributes: Vec<Attr>,
    pub password: Option<Vec<u8>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("code", &self.code)
            .field("attributes", &self.attributes)
            .finish_non_exhaustive()
    }
}

/// Handle of a request, unique for the client's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// A verified answer with what decrypting its attributes needs.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    pub packet: Packet,
    pub server: SocketAddr,
    /// The Request Authenticator of the request answered (salts MS-MPPE keys).
    pub request_authenticator: [u8; 16],
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("packet", &self.packet)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    Reply {
        id: RequestId,
        reply: Box<Reply>,
    },
    /// No server answered.
    Failed {
        id: RequestId,
    },
    /// A server was held down after not answering.
    ServerDead {
        server: SocketAddr,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("no RADIUS server configured")]
    NoServers,
    #[error("{0} RADIUS requests already outstanding; request refused")]
    Busy(usize),
    #[error("RADIUS request cannot be encoded: {0}")]
    Encode(String),
}

/// Counters since the client was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests sent (each counted once, however often it was transmitted).
    pub sent: u64,
    /// Transmissions of a request again to the same server after `timeout`.
    pub retransmitted: u64,
    /// Verified answers ([`ClientEvent::Reply`]).
    pub replies: u64,
    /// Requests no server answered ([`ClientEvent::Failed`]).
    pub failed: u64,
    /// Requests moved to another server after theirs did not answer (each is a transmission
    /// too, neither in `sent` nor in `retransmitted`).
    pub failovers: u64,
    /// Datagrams that matched no request or failed verification.
    pub dropped: u64,
    pub last_drop: Option<String>,
}

struct Pending {
    handle: RequestId,
    ident: u8,
    request: Request,
    server: usize,
    tried: Vec<bool>,
    sends: u32,
    deadline: Instant,
    authenticator: [u8; 16],
    bytes: Vec<u8>,
}

/// The client.
pub struct Client {
    cfg: ClientConfig,
    dead_until: Vec<Option<Instant>>,
    pending: Vec<Pending>,
    next_ident: u8,
    next_handle: u64,
    transmit: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
    stats: ClientStats,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("servers", &self.cfg.servers)
            .field("outstanding", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Client {
        let n = cfg.servers.len();
        Client {
            cfg,
            dead_until: vec![None; n],
            pending: Vec::new(),
            next_ident: 0,
            next_handle: 1,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: ClientStats::default(),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    fn max_outstanding(&self) -> usize {
        self.cfg.max_outstanding.clamp(1, 256)
    }

    /// Sends a request; its answer comes as [`ClientEvent::Reply`] or [`ClientEvent::Failed`].
    pub fn send(
        &mut self,
        now: Instant,
        request: Request,
        entropy: &mut dyn Entropy,
    ) -> Result<RequestId, ClientError> {
        if self.cfg.servers.is_empty() {
            return Err(ClientError::NoServers);
        }
        if self.pending.len() >= self.max_outstanding() {
            return Err(ClientError::Busy(self.pending.len()));
        }
        if let Some(pw) = &request.password {
            if pw.len() > 128 {
                return Err(ClientError::Encode(format!(
                    "password of {} octets exceeds 128",
                    pw.len()
                )));
            }
        }
        let ident = self.free_ident();
        let server = self.pick_server(now, &vec![false; self.cfg.servers.len()]);
        let handle = RequestId(self.next_handle);
        self.next_handle += 1;
        let mut p = Pending {
            handle,
            ident,
            request,
            server,
            tried: vec![false; self.cfg.servers.len()],
            sends: 0,
            deadline: now,
            authenticator: [0; 16],
            bytes: Vec::new(),
        };
        encode_for(&self.cfg, &mut p, entropy);
        self.transmit_pending(now, &mut p);
        self.stats.sent += 1;
        self.pending.push(p);
        Ok(handle)
    }

    /// Drops a request (its session went away); a late answer is then dropped too.
    pub fn cancel(&mut self, id: RequestId) {
        self.pending.retain(|p| p.handle != id);
    }

    fn free_ident(&mut self) -> u8 {
        // At most 255 others are outstanding, so a free one exists.
        for _ in 0..=255u16 {
            let i = self.next_ident;
            self.next_ident = self.next_ident.wrapping_add(1);
            if !self.pending.iter().any(|p| p.ident == i) {
                return i;
            }
        }
        self.next_ident
    }

    /// First server (in order) not tried and not held down; else the untried one whose
    /// hold-down ends first.
    fn pick_server(&self, now: Instant, tried: &[bool]) -> usize {
        let untried =
            (0..self.cfg.servers.len()).filter(|&i| !tried.get(i).copied().unwrap_or(true));
        let mut best: Option<(usize, Instant)> = None;
        for i in untried {
            match self.dead_until.get(i).copied().flatten() {
                Some(t) if t > now => {
                    if best.is_none_or(|(_, bt)| t < bt) {
                        best = Some((i, t));
                    }
                }
                _ => return i,
            }
        }
        best.map(|b| b.0).unwrap_or(0)
    }

    fn transmit_pending(&mut self, now: Instant, p: &mut Pending) {
        p.sends += 1;
        p.deadline = now + self.cfg.timeout;
        if let Some(s) = self.cfg.servers.get(p.server) {
            self.transmit.push_back(Transmit {
                to: s.addr,
                bytes: p.bytes.clone(),
            });
        }
        if p.sends > 1 {
            self.stats.retransmitted += 1;
        }
    }

    /// A datagram arrived on the client's socket from `from`.
    pub fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some(&ident) = bytes.get(1) else {
            self.drop_datagram(format!("{from}: datagram too short"));
            return;
        };
        let Some(pos) = self.pending.iter().position(|p| {
            p.ident == ident
                && self
                    .cfg
                    .servers
                    .get(p.server)
                    .is_some_and(|s| s.addr == from)
        }) else {
            self.drop_datagram(format!(
                "{from}: answer with identifier {ident} matches no request"
            ));
            return;
        };
        let p = &self.pending[pos];
        let secret = self.cfg.servers[p.server].secret.clone();
        let require_ma =
            self.cfg.require_message_authenticator && matches!(p.request.code, Code::AccessRequest);
        match verify_response(bytes, &p.authenticator, &secret, require_ma) {
            Ok(packet) if response_matches(p.request.code, packet.code) => {
                let p = self.pending.remove(pos);
                self.dead_until[p.server] = None;
                self.stats.replies += 1;
                self.events.push_back(ClientEvent::Reply {
                    id: p.handle,
                    reply: Box::new(Reply {
                        packet,
                        server: from,
                        request_authenticator: p.authenticator,
                        secret,
                    }),
                });
            }
            Ok(packet) => self.drop_datagram(format!(
                "{from}: {} does not answer {}",
                packet.code, p.request.code
            )),
            Err(e) => self.drop_datagram(format!("{from}: {e}")),
        }
    }

    fn drop_datagram(&mut self, why: String) {
        self.stats.dropped += 1;
        self.stats.last_drop = Some(why);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.deadline).min()
    }

    pub fn handle_timeout(&mut self, now: Instant, entropy: &mut dyn Entropy) {
        let mut pending = std::mem::take(&mut self.pending);
        let mut keep = Vec::with_capacity(pending.len());
        for mut p in pending.drain(..) {
            if p.deadline > now {
                keep.push(p);
                continue;
            }
            if p.sends < self.cfg.retries.max(1) {
                self.transmit_pending(now, &mut p);
                keep.push(p);
                continue;
            }
            // This server did not answer: hold it down and fail over.
            if let Some(t) = p.tried.get_mut(p.server) {
                *t = true;
            }
            if !self.cfg.deadtime.is_zero() && self.dead_until[p.server].is_none_or(|t| t <= now) {
                self.dead_until[p.server] = Some(now + self.cfg.deadtime);
                self.events.push_back(ClientEvent::ServerDead {
                    server: self.cfg.servers[p.server].addr,
                });
            }
            if p.tried.iter().all(|&t| t) {
                self.stats.failed += 1;
                self.events.push_back(ClientEvent::Failed { id: p.handle });
                continue;
            }
            p.server = self.pick_server(now, &p.tried);
            p.sends = 0;
            self.stats.failovers += 1;
            encode_for(&self.cfg, &mut p, entropy);
            self.transmit_pending(now, &mut p);
            keep.push(p);
        }
        self.pending = keep;
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }
}

fn response_matches(req: Code, resp: Code) -> bool {
    match req {
        Code::AccessRequest => matches!(
            resp,
            Code::AccessAccept | Code::AccessReject | Code::AccessChallenge
        ),
        Code::AccountingRequest => resp == Code::AccountingResponse,
        Code::StatusServer => matches!(resp, Code::AccessAccept | Code::AccountingResponse),
        _ => false,
    }
}

/// Encodes `p.request` for its current server: fresh authenticator (Access-Request),
/// hidden password, Message-Authenticator first (the BlastRADIUS advice).
fn encode_for(cfg: &ClientConfig, p: &mut Pending, entropy: &mut dyn Entropy) {
    let Some(server) = cfg.servers.get(p.server) else {
        return;
    };
    let mut pkt = Packet::new(p.request.code, p.ident);
    if !p.request.code.has_computed_request_authenticator() {
        entropy.fill(&mut pkt.authenticator);
    }
    pkt.attributes.push(message_authenticator_placeholder());
    if let Some(pw) = &p.request.password {
        if let Ok(h) = hide_password(pw, &server.secret, &pkt.authenticator) {
            pkt.attributes.push(Attr::new(attr::USER_PASSWORD, h));
        }
    }
    pkt.attributes.extend(p.request.attributes.iter().cloned());
    let bytes = sign_request(&pkt, &server.secret);
    p.authenticator = bytes
        .get(4..20)
        .and_then(|a| a.try_into().ok())
        .unwrap_or_default();
    p.bytes = bytes;
}

/// Why an answer was dropped, for callers that verify by hand.
pub type DropReason = VerifyError;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{sign_response, verify_request};

    struct Counter(u8);
    impl Entropy for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    fn cfg(n: u16) -> ClientConfig {
        ClientConfig {
            servers: (0..n)
                .map(|i| Server {
                    addr: addr(1812 + 100 * i),
                    secret: format!("secret{i}").into_bytes(),
                })
                .collect(),
            timeout: Duration::from_secs(3),
            retries: 2,
            deadtime: Duration::from_secs(60),
            max_outstanding: 4,
            require_message_authenticator: true,
        }
    }

    fn access(user: &str) -> Request {
        Request {
            code: Code::AccessRequest,
            attributes: vec![Attr::new(attr::USER_NAME, user.as_bytes().to_vec())],
            password: Some(b"pw".to_vec()),
        }
    }

    /// A server's answer to `t`.
    fn answer(t: &Transmit, secret: &[u8], code: Code, with_ma: bool) -> Vec<u8> {
        let req = Packet::decode(&t.bytes).unwrap();
        let mut p = Packet::new(code, req.identifier);
        if with_ma {
            p.push(message_authenticator_placeholder());
        }
        p.push(Attr::u32(attr::SESSION_TIMEOUT, 99));
        sign_response(&p, &req.authenticator, secret)
    }

    #[test]
    fn answer_is_verified_and_delivered() {
        let t0 = Instant::now();
        let mut e = Counter(0);
        let mut c = Client::new(cfg(1));
        let id = c.send(t0, access("u"), &mut e).unwrap();
        let t = c.poll_transmit().unwrap();
        assert_eq!(t.to, addr(1812));
        let req = verify_request(&t.bytes, b"secret0", true).unwrap();
        assert_eq!(req.attributes[0].typ, attr::MESSAGE_AUTHENTICATOR);
        let hidden = &req.get(attr::USER_PASSWORD).unwrap().value;
        assert_eq!(
            crate::crypto::unhide_password(hidden, b"secret0", &req.authenticator).unwrap(),
            b"pw"
        );
        // Wrong source: dropped. Without Message-Authenticator: dropped. Forged: dropped.
        let good = answer(&t, b"secret0", Code::AccessAccept, true);
        c.handle_datagram(t0, addr(9999), &good);
        c.handle_datagram(
            t0,
            addr(1812),
            &answer(&t, b"secret0", Code::AccessAccept, false),
        );
        c.handle_datagram(
            t0,
            addr(1812),
            &answer(&t, b"wrong", Code::AccessAccept, true),
        );
        c.handle_datagram(t0, addr(1812), &good[..10]);
        assert_eq!(c.stats().dropped, 4);
        assert!(c.poll_event().is_none());
        c.handle_datagram(t0, addr(1812), &good);
        match c.poll_event() {
            Some(ClientEvent::Reply { id: got, reply }) => {
                assert_eq!(got, id);
                assert_eq!(reply.packet.get_u32(attr::SESSION_TIMEOUT), Some(99));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.outstanding(), 0);
        assert_eq!(c.poll_timeout(), None);
        // A duplicate answer afterwards is dropped.
        c.handle_datagram(t0, addr(1812), &good);
        assert!(c.poll_event().is_none());
    }

    #[test]
    fn message_authenticator_optional_but_checked_when_present() {
        let t0 = Instant::now();
        let mut e = Counter(0);
        let mut cfg = cfg(1);
        cfg.require_message_authenticator = false;
        let mut c = Client::new(cfg);
        c.send(t0, access("u"), &mut e).unwrap();
        let t = c.poll_transmit().unwrap();
        // A present but wrong Message-Authenticator is dropped.
        let mut forged = answer(&t, b"secret0", Code::AccessAccept, true);
        let req = Packet::decode(&t.bytes).unwrap();
        // A right Response Authenticator over a wrong Message-Authenticator.
        forged[22] ^= 1;
        let p = Packet::decode(&forged).unwrap();
        let resigned = {
            let mut b = p.encode();
            let mut copy = b.clone();
            copy[4..20].copy_from_slice(&req.authenticator);
            use md5::Digest;
            let mut h = md5::Md5::new();
            h.update(&copy);
            h.update(b"secret0");
            let a: [u8; 16] = h.finalize().into();
            b[4..20].copy_from_slice(&a);
            b
        };
        c.handle_datagram(t0, addr(1812), &resigned);
        assert!(c.poll_event().is_none());
        assert!(c
            .stats()
            .last_drop
            .as_deref()
            .unwrap()
            .contains("Message-Authenticator"));
        // None at all: accepted with this setting.
        c.handle_datagram(
            t0,
            addr(1812),
            &answer(&t, b"secret0", Code::AccessAccept, false),
        );
        assert!(matches!(c.poll_event(), Some(ClientEvent::Reply { .. })));
    }

    #[test]
    fn retransmits_identically_then_fails_over_and_holds_down() {
        let t0 = Instant::now();
        let mut e = Counter(0);
        let mut c = Client::new(cfg(2));
        let id = c.send(t0, access("u"), &mut e).unwrap();
        let first = c.poll_transmit().unwrap();
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(3)));
        c.handle_timeout(t0 + Duration::from_secs(2), &mut e);
        assert!(c.poll_transmit().is_none());
        let t1 = t0 + Duration::from_secs(3);
        c.handle_timeout(t1, &mut e);
        assert_eq!(
            c.poll_transmit().unwrap(),
            first,
            "same identifier and authenticator"
        );
        let t2 = t1 + Duration::from_secs(3);
        c.handle_timeout(t2, &mut e);
        let over = c.poll_transmit().unwrap();
        assert_eq!(over.to, addr(1912));
        assert_eq!(over.bytes[1], first.bytes[1]);
        assert_eq!(
            c.poll_event(),
            Some(ClientEvent::ServerDead { server: addr(1812) })
        );
        // The second server answers with its own secret.
        c.handle_datagram(
            t2,
            addr(1912),
            &answer(&over, b"secret1", Code::AccessReject, true),
        );
        assert!(matches!(c.poll_event(), Some(ClientEvent::Reply { id: g, .. }) if g == id));
        // While the first is held down, new requests go to the second.
        c.send(t2, access("v"), &mut e).unwrap();
        assert_eq!(c.poll_transmit().unwrap().to, addr(1912));
        // After the hold-down, the first again.
        let later = t2 + Duration::from_secs(61);
        c.handle_datagram(later, addr(1912), &[]);
        let mut c2 = c;
        c2.send(later, access("w"), &mut e).unwrap();
        assert_eq!(c2.poll_transmit().unwrap().to, addr(1812));
        // Three requests, one retransmission to the first server, one failover, one reply, the
        // empty datagram dropped.
        let st = c2.stats();
        assert_eq!(
            (
                st.sent,
                st.retransmitted,
                st.failovers,
                st.replies,
                st.failed,
                st.dropped
            ),
            (3, 1, 1, 1, 0, 1)
        );
    }

    #[test]
    fn all_servers_silent_fails() {
        let t0 = Instant::now();
        let mut e = Counter(0);
        let mut c = Client::new(cfg(2));
        let id = c.send(t0, access("u"), &mut e).unwrap();
        let mut now = t0;
        let mut sends = 0;
        while let Some(t) = c.poll_timeout() {
            while c.poll_transmit().is_some() {
                sends += 1;
            }
            now = t;
            c.handle_timeout(now, &mut e);
        }
        assert_eq!(sends, 4, "2 servers x 2 transmissions");
        let evs: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
        assert!(evs.contains(&ClientEvent::Failed { id }));
        let st = c.stats();
        assert_eq!(
            (
                st.sent,
                st.retransmitted,
                st.failovers,
                st.replies,
                st.failed
            ),
            (1, 2, 1, 0, 1)
        );
        assert_eq!(now, t0 + Duration::from_secs(12));
    }

    #[test]
    fn outstanding_is_bounded_and_identifiers_unique() {
        let t0 = Instant::now();
        let mut e = Counter(0);
        let mut c = Client::new(cfg(1));
        let mut ids = Vec::new();
        for i in 0..4 {
            c.send(t0, access(&format!("u{i}")), &mut e).unwrap();
            ids.push(c.poll_transmit().unwrap().bytes[1]);
        }
        assert_eq!(c.send(t0, access("x"), &mut e), Err(ClientError::Busy(4)));
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 4);
        assert_eq!(
            Client::new(cfg(0)).send(t0, access("x"), &mut e),
            Err(ClientError::NoServers)
        );
        let mut big = cfg(1);
        big.max_outstanding = 1000;
        let mut c = Client::new(big);
        for i in 0..256 {
            c.send(t0, access(&format!("u{i}")), &mut e).unwrap();
        }
        assert!(c.send(t0, access("x"), &mut e).is_err());
        let mut seen = std::collections::BTreeSet::new();
        while let Some(t) = c.poll_transmit() {
            assert!(seen.insert(t.bytes[1]));
        }
    }

    #[test]
    fn accounting_request_is_signed_and_answer_checked() {
        let t0 = Instant::now();
        let mut e = Counter(0);
        let mut c = Client::new(cfg(1));
        c.send(
            t0,
            Request {
                code: Code::AccountingRequest,
                attributes: vec![Attr::u32(attr::ACCT_STATUS_TYPE, attr::status::START)],
                password: None,
            },
            &mut e,
        )
        .unwrap();
        let t = c.poll_transmit().unwrap();
        verify_request(&t.bytes, b"secret0", true).unwrap();
        // An Access-Accept does not answer an Accounting-Request.
        c.handle_datagram(
            t0,
            addr(1812),
            &answer(&t, b"secret0", Code::AccessAccept, false),
        );
        assert!(c.poll_event().is_none());
        c.handle_datagram(
            t0,
            addr(1812),
            &answer(&t, b"secret0", Code::AccountingResponse, false),
        );
        assert!(matches!(c.poll_event(), Some(ClientEvent::Reply { .. })));
    }
}
