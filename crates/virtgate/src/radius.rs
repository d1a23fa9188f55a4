//! RADIUS in the daemon: the UDP sockets and the sans-IO clients of `virtgate-radius`, driven
//! from the engine task (no task per request). See docs/radius.md.
//!
//! - Authentication: a session's [`PeerCredentials`] become an Access-Request (PAP password,
//!   CHAP-Password + CHAP-Challenge, MS-CHAP-Challenge + MS-CHAP-Response/MS-CHAP2-Response);
//!   the answer becomes an [`ExternalVerdict`] and an [`Authz`] (Framed-IP-Address,
//!   Session-Timeout, Idle-Timeout, Acct-Interim-Interval, Class).
//! - Accounting: Start at Up, Interim-Update every Acct-Interim-Interval, Stop at the end with
//!   octet (and Gigawords) and packet counters and Acct-Terminate-Cause.
//! - Dynamic Authorization (RFC 5176): Disconnect-Request and CoA-Request (Session-Timeout,
//!   Idle-Timeout) on `dae_listen` from `dae_client`s only; ACK when a session matched, NAK
//!   with Error-Cause otherwise.
//!
//! Attributes the daemon cannot honour are never silently ignored: Filter-Id turns an
//! Access-Accept into a refusal (virtgate has no per-session filters and letting the user in
//! unfiltered would be a hole), Framed-Pool is logged (virtgate has one pool, remoteip).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UdpSocket;
use virtgate_config::RadiusConfig;
use virtgate_ppp::auth::{ExternalVerdict, PeerCredentials};
use virtgate_radius::attr;
use virtgate_radius::crypto::VerifyError;
use virtgate_radius::{
    ms, Attr, Client, ClientConfig, ClientEvent, Code, DaeClient, DaeError, DaeKind, Request,
    RequestId, Server,
};

use crate::control::{RadiusCounters, DAE_DROP_REASONS};

struct Os;
impl virtgate_radius::Entropy for Os {
    fn fill(&mut self, buf: &mut [u8]) {
        virtgate_ppp::Entropy::fill(&mut crate::settings::OsEntropy, buf)
    }
}

/// What an Access-Accept grants beyond the verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authz {
    /// Framed-IP-Address (not the "NAS chooses" / "user chooses" values).
    pub framed_ip: Option<Ipv4Addr>,
    pub session_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub interim: Option<Duration>,
    /// Class attributes, echoed in accounting (RFC 2865 §5.25).
    pub class: Vec<Vec<u8>>,
}

/// The result of a RADIUS authentication.
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    Accept(Box<Authz>, ExternalVerdict),
    Reject(ExternalVerdict, String),
    /// No server answered.
    NoAnswer,
}

/// What the engine must do.
#[derive(Debug)]
pub enum Action {
    Auth {
        call: u16,
        outcome: AuthOutcome,
    },
    /// Time for this session's Interim-Update: call [`Radius::acct_interim`].
    Interim {
        call: u16,
    },
    /// Disconnect-Request matched these sessions (already ACKed).
    Disconnect {
        calls: Vec<u16>,
    },
    /// CoA-Request matched these sessions (already ACKed): new limits.
    Coa {
        calls: Vec<u16>,
        session_timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
    },
}

/// Traffic of one session: input = from the user (RFC 2866 §5.3).
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub in_octets: u64,
    pub out_octets: u64,
    pub in_packets: u64,
    pub out_packets: u64,
}

/// What accounting says about a session.
#[derive(Debug, Clone)]
pub struct AcctInfo {
    pub user: String,
    pub peer: Ipv4Addr,
    pub framed_ip: Ipv4Addr,
    /// Authenticated by RADIUS (else by chap-secrets).
    pub by_radius: bool,
    pub class: Vec<Vec<u8>>,
    pub interim: Option<Duration>,
}

struct AcctState {
    id: String,
    info: AcctInfo,
    start: Instant,
    next_interim: Option<Instant>,
}

/// The sockets, for the engine's `select!`.
#[derive(Clone)]
pub struct Sockets {
    auth: Rc<UdpSocket>,
    acct: Option<Rc<UdpSocket>>,
    dae: Option<Rc<UdpSocket>>,
}

/// Waits until one of the sockets is readable (never, without RADIUS).
pub async fn readable(s: &Option<Sockets>) {
    let Some(s) = s else {
        return std::future::pending().await;
    };
    async fn opt(u: &Option<Rc<UdpSocket>>) {
        match u {
            Some(u) => {
                let _ = u.readable().await;
            }
            None => std::future::pending().await,
        }
    }
    tokio::select! {
        _ = s.auth.readable() => {}
        _ = opt(&s.acct) => {}
        _ = opt(&s.dae) => {}
    }
}

/// What the glue counts itself: answer codes and Dynamic Authorization (the clients count
/// requests, retransmissions, failovers, timeouts and dropped answers).
#[derive(Debug, Default)]
struct Tally {
    accepts: u64,
    rejects: u64,
    challenges: u64,
    /// By [`DaeKind`]: Disconnect, CoA.
    dae: [DaeTally; 2],
    dae_dropped: [u64; DAE_DROP_REASONS.len()],
}

#[derive(Debug, Default, Clone, Copy)]
struct DaeTally {
    requests: u64,
    acks: u64,
    naks: u64,
}

fn dae_index(k: DaeKind) -> usize {
    match k {
        DaeKind::Disconnect => 0,
        DaeKind::Coa => 1,
    }
}

/// The [`DAE_DROP_REASONS`] label of a dropped Dynamic Authorization datagram.
fn dae_drop_reason(e: &DaeError) -> &'static str {
    match e {
        DaeError::NotAllowed(_) => "unknown_client",
        DaeError::Verify {
            err: VerifyError::Decode(_),
            ..
        } => "malformed",
        DaeError::Verify { .. } => "bad_authenticator",
        _ => "malformed",
    }
}

pub struct Radius {
    tally: Tally,
    cfg: RadiusConfig,
    nas_id: String,
    socks: Sockets,
    auth: Client,
    acct: Option<Client>,
    dae_clients: Vec<DaeClient>,
    waiting: HashMap<RequestId, u16>,
    sessions: HashMap<u16, AcctState>,
    id_prefix: u32,
    seq: u32,
}

fn bind(addr: SocketAddr) -> std::io::Result<Rc<UdpSocket>> {
    let s = std::net::UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    Ok(Rc::new(UdpSocket::from_std(s)?))
}

fn client_config(cfg: &RadiusConfig, servers: &[virtgate_config::RadiusServer]) -> ClientConfig {
    ClientConfig {
        servers: servers
            .iter()
            .map(|s| Server {
                addr: s.addr,
                secret: s.secret.clone().into_bytes(),
            })
            .collect(),
        timeout: cfg.timeout,
        retries: cfg.retries,
        deadtime: cfg.deadtime,
        max_outstanding: 256,
        require_message_authenticator: cfg.require_message_authenticator,
    }
}

impl Radius {
    /// Binds the sockets (inside the tokio runtime).
    pub fn new(cfg: RadiusConfig, default_nas_id: &str) -> std::io::Result<Radius> {
        let local = SocketAddr::new(
            IpAddr::V4(cfg.bind_addr.unwrap_or(Ipv4Addr::UNSPECIFIED)),
            0,
        );
        let local_for = |s: &SocketAddr| match s {
            SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
            _ => local,
        };
        let Some(first) = cfg.auth_servers.first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no RADIUS authentication server configured",
            ));
        };
        let auth_sock = bind(local_for(&first.addr))?;
        let acct_sock = match cfg.acct_servers.first() {
            Some(s) => Some(bind(local_for(&s.addr))?),
            None => None,
        };
        let dae_sock = match cfg.dae_listen {
            Some(a) => Some(bind(a)?),
            None => None,
        };
        let mut seed = [0u8; 4];
        virtgate_radius::Entropy::fill(&mut Os, &mut seed[..2]);
        let epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        Ok(Radius {
            tally: Tally::default(),
            nas_id: cfg
                .nas_identifier
                .clone()
                .unwrap_or_else(|| default_nas_id.to_string()),
            auth: Client::new(client_config(&cfg, &cfg.auth_servers)),
            acct: (!cfg.acct_servers.is_empty())
                .then(|| Client::new(client_config(&cfg, &cfg.acct_servers))),
            dae_clients: cfg
                .dae_clients
                .iter()
                .map(|c| DaeClient {
                    addr: c.addr,
                    secret: c.secret.clone().into_bytes(),
                })
                .collect(),
            socks: Sockets {
                auth: auth_sock,
                acct: acct_sock,
                dae: dae_sock,
            },
            cfg,
            waiting: HashMap::new(),
            sessions: HashMap::new(),
            id_prefix: epoch,
            seq: u32::from(u16::from_be_bytes([seed[0], seed[1]])),
        })
    }

    pub fn sockets(&self) -> Sockets {
        self.socks.clone()
    }

    /// The counters `virtgate status` and `/metrics` show.
    pub fn stats(&self) -> RadiusCounters {
        let a = self.auth.stats();
        let acct = self
            .acct
            .as_ref()
            .map(|c| c.stats().clone())
            .unwrap_or_default();
        let t = &self.tally;
        let [disc, coa] = t.dae;
        RadiusCounters {
            access_requests: a.sent,
            access_accepts: t.accepts,
            access_rejects: t.rejects,
            access_challenges: t.challenges,
            access_timeouts: a.failed,
            access_retransmissions: a.retransmitted,
            access_failovers: a.failovers,
            access_dropped: a.dropped,
            acct_requests: acct.sent,
            acct_answered: acct.replies,
            acct_failed: acct.failed,
            acct_retransmissions: acct.retransmitted,
            acct_failovers: acct.failovers,
            acct_dropped: acct.dropped,
            disconnect_requests: disc.requests,
            disconnect_acks: disc.acks,
            disconnect_naks: disc.naks,
            coa_requests: coa.requests,
            coa_acks: coa.acks,
            coa_naks: coa.naks,
            dae_dropped: DAE_DROP_REASONS
                .iter()
                .zip(t.dae_dropped)
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    /// Whether RADIUS decides for this user (`local` = chap-secrets has a secret for them).
    pub fn decides(&self, local: bool) -> bool {
        !(self.cfg.order == virtgate_config::RadiusOrder::LocalFirst && local)
    }

    pub fn falls_back_to_local(&self) -> bool {
        self.cfg.order == virtgate_config::RadiusOrder::RadiusFirst
    }

    fn common(&self, call: u16, peer: Ipv4Addr, user: &str) -> Vec<Attr> {
        let mut v = vec![
            Attr::new(attr::USER_NAME, user.as_bytes().to_vec()),
            Attr::new(attr::NAS_IDENTIFIER, self.nas_id.as_bytes().to_vec()),
            Attr::u32(attr::NAS_PORT, u32::from(call)),
            Attr::u32(attr::NAS_PORT_TYPE, attr::PORT_VIRTUAL),
            Attr::u32(attr::SERVICE_TYPE, attr::SERVICE_FRAMED),
            Attr::u32(attr::FRAMED_PROTOCOL, attr::FRAMED_PPP),
            Attr::new(attr::CALLING_STATION_ID, peer.to_string().into_bytes()),
        ];
        if let Some(a) = self.cfg.bind_addr {
            v.push(Attr::ipv4(attr::NAS_IP_ADDRESS, a));
        }
        v
    }

    /// Sends the Access-Request for a session's credentials.
    pub fn authenticate(
        &mut self,
        now: Instant,
        call: u16,
        peer: Ipv4Addr,
        creds: &PeerCredentials,
    ) -> Result<(), String> {
        let (user, extra, password) = match creds {
            PeerCredentials::Pap { user, password } => (user, vec![], Some(password.clone())),
            PeerCredentials::ChapMd5 {
                user,
                id,
                challenge,
                response,
            } => (
                user,
                vec![
                    Attr::new(attr::CHAP_CHALLENGE, challenge.clone()),
                    Attr::new(
                        attr::CHAP_PASSWORD,
                        virtgate_radius::crypto::chap_password(*id, response),
                    ),
                ],
                None,
            ),
            PeerCredentials::MsChapV1 {
                user,
                id,
                challenge,
                lm_response,
                nt_response,
                flags,
            } => (
                user,
                vec![
                    ms::chap_challenge(challenge),
                    ms::chap_response(*id, *flags, lm_response, nt_response),
                ],
                None,
            ),
            PeerCredentials::MsChapV2 {
                user,
                id,
                challenge,
                peer_challenge,
                nt_response,
                flags,
            } => (
                user,
                vec![
                    ms::chap_challenge(challenge),
                    ms::chap2_response(*id, *flags, peer_challenge, nt_response),
                ],
                None,
            ),
        };
        let user = String::from_utf8_lossy(user).into_owned();
        let mut attributes = self.common(call, peer, &user);
        attributes.extend(extra);
        let req = Request {
            code: Code::AccessRequest,
            attributes,
            password,
        };
        // A session asks again only after a new response; forget its older request.
        self.forget(call);
        let id = self
            .auth
            .send(now, req, &mut Os)
            .map_err(|e| e.to_string())?;
        self.waiting.insert(id, call);
        self.flush();
        Ok(())
    }

    /// The session went away (or asks again): drop its pending request.
    pub fn forget(&mut self, call: u16) {
        let old: Vec<RequestId> = self
            .waiting
            .iter()
            .filter(|(_, c)| **c == call)
            .map(|(r, _)| *r)
            .collect();
        for r in old {
            self.waiting.remove(&r);
            self.auth.cancel(r);
        }
    }

    fn flush(&mut self) {
        while let Some(t) = self.auth.poll_transmit() {
            send(&self.socks.auth, t.to, &t.bytes);
        }
        if let (Some(c), Some(s)) = (self.acct.as_mut(), self.socks.acct.as_ref()) {
            while let Some(t) = c.poll_transmit() {
                send(s, t.to, &t.bytes);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.auth.poll_timeout(),
            self.acct.as_ref().and_then(Client::poll_timeout),
            self.sessions.values().filter_map(|s| s.next_interim).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Drains the sockets; returns what the engine must do.
    pub fn on_readable(&mut self, now: Instant) -> Vec<Action> {
        let mut buf = [0u8; 4096];
        let mut out = Vec::new();
        for _ in 0..64 {
            match self.socks.auth.try_recv_from(&mut buf) {
                Ok((n, from)) => self.auth.handle_datagram(now, from, &buf[..n]),
                Err(_) => break,
            }
        }
        if let (Some(c), Some(s)) = (self.acct.as_mut(), self.socks.acct.as_ref()) {
            for _ in 0..64 {
                match s.try_recv_from(&mut buf) {
                    Ok((n, from)) => c.handle_datagram(now, from, &buf[..n]),
                    Err(_) => break,
                }
            }
        }
        if let Some(s) = self.socks.dae.clone() {
            for _ in 0..64 {
                match s.try_recv_from(&mut buf) {
                    Ok((n, from)) => {
                        if let Some(a) = self.on_dae(&s, from, &buf[..n]) {
                            out.push(a);
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        self.drain(&mut out);
        out
    }

    pub fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.auth.handle_timeout(now, &mut Os);
        if let Some(c) = self.acct.as_mut() {
            c.handle_timeout(now, &mut Os);
        }
        for (call, s) in self.sessions.iter() {
            if s.next_interim.is_some_and(|t| t <= now) {
                out.push(Action::Interim { call: *call });
            }
        }
        self.drain(&mut out);
        out
    }

    fn drain(&mut self, out: &mut Vec<Action>) {
        while let Some(ev) = self.auth.poll_event() {
            match ev {
                ClientEvent::Reply { id, reply } => {
                    match reply.packet.code {
                        Code::AccessAccept => self.tally.accepts += 1,
                        Code::AccessChallenge => self.tally.challenges += 1,
                        Code::AccessReject => self.tally.rejects += 1,
                        // The client hands out only answers to an Access-Request.
                        _ => {}
                    }
                    if let Some(call) = self.waiting.remove(&id) {
                        out.push(Action::Auth {
                            call,
                            outcome: access_outcome(&reply),
                        });
                    }
                }
                ClientEvent::Failed { id } => {
                    if let Some(call) = self.waiting.remove(&id) {
                        tracing::warn!(
                            call,
                            "RADIUS: no authentication server answered ({})",
                            self.auth
                                .stats()
                                .last_drop
                                .as_deref()
                                .unwrap_or("no answer at all")
                        );
                        out.push(Action::Auth {
                            call,
                            outcome: AuthOutcome::NoAnswer,
                        });
                    }
                }
                ClientEvent::ServerDead { server } => tracing::warn!(
                    %server,
                    holddown_s = self.cfg.deadtime.as_secs(),
                    "RADIUS authentication server did not answer; failing over"
                ),
            }
        }
        if let Some(c) = self.acct.as_mut() {
            while let Some(ev) = c.poll_event() {
                match ev {
                    ClientEvent::Reply { .. } => {}
                    ClientEvent::Failed { .. } => {
                        tracing::warn!("RADIUS: no accounting server answered; record lost")
                    }
                    ClientEvent::ServerDead { server } => tracing::warn!(
                        %server,
                        "RADIUS accounting server did not answer; failing over"
                    ),
                }
            }
        }
        self.flush();
    }

    // ---- accounting ---------------------------------------------------------------------

    fn acct_request(&mut self, now: Instant, call: u16, status: u32, extra: Vec<Attr>) {
        let Some(s) = self.sessions.get(&call) else {
            return;
        };
        if self.acct.is_none() {
            return;
        }
        let mut a = self.common(call, s.info.peer, &s.info.user);
        a.push(Attr::u32(attr::ACCT_STATUS_TYPE, status));
        a.push(Attr::new(attr::ACCT_SESSION_ID, s.id.clone().into_bytes()));
        a.push(Attr::ipv4(attr::FRAMED_IP_ADDRESS, s.info.framed_ip));
        a.push(Attr::u32(
            attr::ACCT_AUTHENTIC,
            if s.info.by_radius {
                attr::authentic::RADIUS
            } else {
                attr::authentic::LOCAL
            },
        ));
        for c in &s.info.class {
            a.push(Attr::new(attr::CLASS, c.clone()));
        }
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        a.push(Attr::u32(attr::EVENT_TIMESTAMP, ts));
        a.extend(extra);
        let req = Request {
            code: Code::AccountingRequest,
            attributes: a,
            password: None,
        };
        if let Some(c) = self.acct.as_mut() {
            if let Err(e) = c.send(now, req, &mut Os) {
                tracing::warn!(call, "RADIUS accounting record not sent: {e}");
            }
        }
        self.flush();
    }

    /// Accounting Start; returns the Acct-Session-Id.
    pub fn acct_start(&mut self, now: Instant, call: u16, info: AcctInfo) -> String {
        self.seq = self.seq.wrapping_add(1);
        let id = format!("{:08X}{:08X}", self.id_prefix, self.seq);
        let interim = info.interim.or(self.cfg.interim_interval);
        self.sessions.insert(
            call,
            AcctState {
                id: id.clone(),
                info,
                start: now,
                next_interim: interim.filter(|_| self.acct.is_some()).map(|d| now + d),
            },
        );
        self.acct_request(now, call, attr::status::START, Vec::new());
        id
    }

    fn counters(now: Instant, s: &AcctState, k: Counters) -> Vec<Attr> {
        let lo = |v: u64| (v & 0xffff_ffff) as u32;
        let hi = |v: u64| (v >> 32) as u32;
        vec![
            Attr::u32(
                attr::ACCT_SESSION_TIME,
                now.saturating_duration_since(s.start).as_secs() as u32,
            ),
            Attr::u32(attr::ACCT_INPUT_OCTETS, lo(k.in_octets)),
            Attr::u32(attr::ACCT_INPUT_GIGAWORDS, hi(k.in_octets)),
            Attr::u32(attr::ACCT_OUTPUT_OCTETS, lo(k.out_octets)),
            Attr::u32(attr::ACCT_OUTPUT_GIGAWORDS, hi(k.out_octets)),
            Attr::u32(attr::ACCT_INPUT_PACKETS, lo(k.in_packets)),
            Attr::u32(attr::ACCT_OUTPUT_PACKETS, lo(k.out_packets)),
        ]
    }

    pub fn acct_interim(&mut self, now: Instant, call: u16, k: Counters) {
        let interim = self.cfg.interim_interval;
        let Some(s) = self.sessions.get_mut(&call) else {
            return;
        };
        s.next_interim = s.info.interim.or(interim).map(|d| now + d);
        let extra = Self::counters(now, s, k);
        self.acct_request(now, call, attr::status::INTERIM_UPDATE, extra);
    }

    pub fn acct_stop(&mut self, now: Instant, call: u16, k: Counters, cause: u32) {
        let Some(s) = self.sessions.get(&call) else {
            return;
        };
        let mut extra = Self::counters(now, s, k);
        extra.push(Attr::u32(attr::ACCT_TERMINATE_CAUSE, cause));
        self.acct_request(now, call, attr::status::STOP, extra);
        self.sessions.remove(&call);
    }

    // ---- dynamic authorization ----------------------------------------------------------

    fn on_dae(&mut self, sock: &UdpSocket, from: SocketAddr, bytes: &[u8]) -> Option<Action> {
        let req = match virtgate_radius::dae::parse_request(from.ip(), bytes, &self.dae_clients) {
            Ok(r) => r,
            Err(e) => {
                let reason = dae_drop_reason(&e);
                if let Some(i) = DAE_DROP_REASONS.iter().position(|r| *r == reason) {
                    self.tally.dae_dropped[i] += 1;
                }
                tracing::warn!("RADIUS: {e}; dropped");
                return None;
            }
        };
        let tally = &mut self.tally.dae[dae_index(req.kind)];
        tally.requests += 1;
        let p = &req.packet;
        // Identification (RFC 5176 §3): every attribute given must match.
        let id = req.acct_session_id();
        let user = req.user_name();
        let ip = req.framed_ip();
        let nas_ok = p
            .get_string(attr::NAS_IDENTIFIER)
            .is_none_or(|n| n == self.nas_id);
        let calls: Vec<u16> = if id.is_none() && user.is_none() && ip.is_none() {
            Vec::new()
        } else {
            self.sessions
                .iter()
                .filter(|(_, s)| {
                    id.as_ref().is_none_or(|x| *x == s.id)
                        && user.as_ref().is_none_or(|u| *u == s.info.user)
                        && ip.is_none_or(|a| a == s.info.framed_ip)
                })
                .map(|(c, _)| *c)
                .collect()
        };
        let known = [
            attr::USER_NAME,
            attr::ACCT_SESSION_ID,
            attr::FRAMED_IP_ADDRESS,
            attr::NAS_IDENTIFIER,
            attr::NAS_IP_ADDRESS,
            attr::EVENT_TIMESTAMP,
            attr::MESSAGE_AUTHENTICATOR,
            attr::PROXY_STATE,
            attr::CALLING_STATION_ID,
            attr::NAS_PORT,
        ];
        let coa_attrs = [attr::SESSION_TIMEOUT, attr::IDLE_TIMEOUT];
        let unsupported = p.attributes.iter().find(|a| {
            let coa = req.kind == DaeKind::Coa && coa_attrs.contains(&a.typ);
            !(known.contains(&a.typ) || coa)
        });
        let (answer, action): (Vec<u8>, Option<Action>) = if !nas_ok {
            (
                req.nak(attr::error_cause::NAS_IDENTIFICATION_MISMATCH),
                None,
            )
        } else if let Some(a) = unsupported {
            tracing::warn!(%from, attribute = a.typ, kind = ?req.kind, "RADIUS: Dynamic Authorization request with an attribute virtgate does not act on; NAK");
            (req.nak(attr::error_cause::UNSUPPORTED_ATTRIBUTE), None)
        } else if calls.is_empty() {
            tracing::info!(%from, ?id, ?user, ?ip, kind = ?req.kind, "RADIUS: Dynamic Authorization request matches no session; NAK");
            (req.nak(attr::error_cause::SESSION_CONTEXT_NOT_FOUND), None)
        } else {
            tracing::info!(%from, ?calls, kind = ?req.kind, "RADIUS: Dynamic Authorization request accepted");
            let action = match req.kind {
                DaeKind::Disconnect => Action::Disconnect {
                    calls: calls.clone(),
                },
                DaeKind::Coa => Action::Coa {
                    calls: calls.clone(),
                    session_timeout: p
                        .get_u32(attr::SESSION_TIMEOUT)
                        .map(|s| Duration::from_secs(u64::from(s))),
                    idle_timeout: p
                        .get_u32(attr::IDLE_TIMEOUT)
                        .map(|s| Duration::from_secs(u64::from(s))),
                },
            };
            (req.ack(), Some(action))
        };
        let tally = &mut self.tally.dae[dae_index(req.kind)];
        if action.is_some() {
            tally.acks += 1;
        } else {
            tally.naks += 1;
        }
        send(sock, from, &answer);
        action
    }
}

fn send(sock: &UdpSocket, to: SocketAddr, bytes: &[u8]) {
    if let Err(e) = sock.try_send_to(bytes, to) {
        tracing::warn!(%to, "RADIUS: send failed: {e}");
    }
}

/// Reads an Access-Accept / -Reject / -Challenge.
fn access_outcome(reply: &virtgate_radius::Reply) -> AuthOutcome {
    let p = &reply.packet;
    let msreply = match ms::parse_reply(p, &reply.request_authenticator, &reply.secret) {
        Ok(m) => m,
        Err(e) => {
            return AuthOutcome::Reject(
                ExternalVerdict::Reject { message: None },
                format!("{} from {}: MS-MPPE key: {e}", p.code, reply.server),
            )
        }
    };
    let reply_message = p.get_string(attr::REPLY_MESSAGE);
    match p.code {
        Code::AccessAccept => {
            if let Some(f) = p.get_string(attr::FILTER_ID) {
                return AuthOutcome::Reject(
                    ExternalVerdict::Reject { message: None },
                    format!("Access-Accept carries Filter-Id '{f}', and virtgate has no per-session filters: refused rather than letting the user in unfiltered (remove Filter-Id from the user's reply items)"),
                );
            }
            if let Some(pool) = p.get_string(attr::FRAMED_POOL) {
                tracing::info!(
                    pool,
                    "RADIUS Framed-Pool: virtgate has one pool (pptpd.conf remoteip); the address comes from it"
                );
            }
            let secs = |t| {
                p.get_u32(t)
                    .filter(|s| *s != 0)
                    .map(|s| Duration::from_secs(u64::from(s)))
            };
            let authz = Authz {
                framed_ip: p
                    .get_ipv4(attr::FRAMED_IP_ADDRESS)
                    .filter(|a| !a.is_broadcast() && *a != Ipv4Addr::new(255, 255, 255, 254)),
                session_timeout: secs(attr::SESSION_TIMEOUT),
                idle_timeout: secs(attr::IDLE_TIMEOUT),
                interim: secs(attr::ACCT_INTERIM_INTERVAL).map(|d| d.max(Duration::from_secs(60))),
                class: p
                    .attributes
                    .iter()
                    .filter(|a| a.typ == attr::CLASS)
                    .map(|a| a.value.clone())
                    .collect(),
            };
            let keys = match (&msreply.send_key, &msreply.recv_key) {
                (Some(s), Some(r)) => match (
                    <[u8; 16]>::try_from(s.as_slice()),
                    <[u8; 16]>::try_from(r.as_slice()),
                ) {
                    (Ok(s), Ok(r)) => Some((s, r)),
                    _ => {
                        tracing::warn!(
                            send = s.len(),
                            recv = r.len(),
                            "RADIUS MS-MPPE keys are not 16 octets; no MPPE from them"
                        );
                        None
                    }
                },
                _ => None,
            };
            if msreply.encryption_policy.is_some() || msreply.encryption_types.is_some() {
                tracing::debug!(
                    policy = ?msreply.encryption_policy,
                    types = ?msreply.encryption_types,
                    "RADIUS MS-MPPE-Encryption-Policy/Types (the options file's MPPE settings decide)"
                );
            }
            let message = msreply.chap2_success.clone().or(reply_message);
            AuthOutcome::Accept(
                Box::new(authz),
                ExternalVerdict::Accept {
                    message,
                    mppe_keys: keys,
                },
            )
        }
        Code::AccessChallenge => AuthOutcome::Reject(
            ExternalVerdict::Reject { message: None },
            format!(
                "{} sent Access-Challenge, which PPP authentication cannot answer",
                reply.server
            ),
        ),
        _ => {
            // pppd answers once: no retry offered to the peer.
            let message = msreply
                .chap_error
                .map(|e| e.replace(" R=1", " R=0"))
                .or(reply_message.clone());
            AuthOutcome::Reject(
                ExternalVerdict::Reject { message },
                format!(
                    "Access-Reject from {}{}",
                    reply.server,
                    reply_message.map(|m| format!(": {m}")).unwrap_or_default()
                ),
            )
        }
    }
}

/// Acct-Terminate-Cause (RFC 2866 §5.10) for a session that ended with this `session down`
/// reason (the close reason and/or the Debug form of the session's DownReason).
pub fn terminate_cause(reason: &str, stopping: bool) -> u32 {
    use attr::terminate::*;
    let r: String = reason
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let has = |w: &str| r.contains(w);
    if stopping || has("servershuttingdown") {
        NAS_REBOOT
    } else if has("radiusdisconnect") || has("administrator") {
        ADMIN_RESET
    } else if has("idletimeout") {
        IDLE_TIMEOUT
    } else if has("connecttimeexpired") {
        SESSION_TIMEOUT
    } else if has("peernotresponding") || has("controlconnectionclosed") {
        LOST_CARRIER
    } else if has("peerterminated") || has("callclearedbypeer") || has("lowerlayerdown") {
        USER_REQUEST
    } else {
        NAS_REQUEST
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attr::terminate::*;

    #[test]
    fn terminate_causes_from_down_reasons() {
        for (reason, want) in [
            ("PeerTerminated(\"User request\")", USER_REQUEST),
            ("call cleared by peer (Some(1))", USER_REQUEST),
            ("PeerNotResponding", LOST_CARRIER),
            ("control connection closed", LOST_CARRIER),
            ("Idle timeout (LocalClose(\"Link inactive\"))", IDLE_TIMEOUT),
            (
                "Connect time expired (LocalClose(\"Connect time expired\"))",
                SESSION_TIMEOUT,
            ),
            (
                "RADIUS Disconnect-Request (LocalClose(\"Administrator request\"))",
                ADMIN_RESET,
            ),
            (
                "terminated by administrator (LocalClose(\"x\"))",
                ADMIN_RESET,
            ),
            ("MppeRequired(\"MPPE disabled\")", NAS_REQUEST),
        ] {
            assert_eq!(terminate_cause(reason, false), want, "{reason}");
        }
        assert_eq!(terminate_cause("PeerNotResponding", true), NAS_REBOOT);
    }
}
