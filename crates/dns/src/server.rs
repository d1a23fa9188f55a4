//! The sans-IO DNS server of one virtual network: local answers and forwarding.
//!
//! - RFC 1035 §4.1 (message format) and §4.2.1 (UDP: 512 octets without EDNS, truncation).
//! - RFC 9619 (a query has exactly one question; other counts are FORMERR).
//! - RFC 2308 §2.1, §2.2 (NXDOMAIN versus NODATA).
//! - RFC 6891 §6.1.1, §6.1.3, §6.2.5, §7 (OPT in the response when the query had one, BADVERS
//!   for an unknown version, payload size, responders below 512 treated as 512).
//! - RFC 3225 §3 (the DO bit is copied into the response).
//! - RFC 5452 §9.2 (forwarded queries carry an unpredictable id; a response must match the id,
//!   the server it was sent to, and the question).
//! - RFC 2308 §5 and RFC 2181 §8 (caching of forwarded answers, negative ones with their SOA;
//!   see [`crate::cache`]).
//! - RFC 7766 §8 (over TCP each message is framed by a 2-octet length; the daemon does the
//!   framing, this core sees whole messages).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::cache::{self, Cache, CacheStats, Key};
use crate::config::{Config, Route, Routes, MAX_OUTSTANDING_CAP};
use crate::error::{ConfigError, NameError};
use crate::name;
use crate::zone::{DnsHost, Zone};

/// Randomness for the ids of forwarded queries. The daemon passes `getrandom`; tests pass a
/// seeded generator, so runs are deterministic. (Same shape as `virtgate_ppp::Entropy`, so one
/// type can serve both.)
pub trait Entropy: Send {
    fn fill(&mut self, buf: &mut [u8]);
}

/// How a message reached us (or must leave).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    /// One TCP connection; the daemon strips and adds the 2-octet length (RFC 7766 §8).
    Tcp,
}

/// Who asked: the source address and the transport. A TCP connection is told apart by its
/// source address and port, which are unique while it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client {
    pub addr: SocketAddr,
    pub transport: Transport,
}

impl Client {
    pub fn udp(addr: SocketAddr) -> Self {
        Client {
            addr,
            transport: Transport::Udp,
        }
    }

    pub fn tcp(addr: SocketAddr) -> Self {
        Client {
            addr,
            transport: Transport::Tcp,
        }
    }
}

/// What the daemon must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `bytes` to the client, on the transport it used.
    Reply { client: Client, bytes: Vec<u8> },
    /// Send `bytes` (a query with our id) to an upstream server. `transport` is the client's:
    /// a query that came over TCP goes upstream over TCP, as dnsmasq does, so a large answer
    /// is not truncated on the way; the answer comes back through
    /// [`DnsServer::handle_upstream_response`] either way.
    Forward {
        upstream: SocketAddr,
        transport: Transport,
        bytes: Vec<u8>,
    },
}

/// Counters, for `virtgate net` status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages given to [`DnsServer::handle_query`].
    pub queries: u64,
    /// Answered from the local zone: data, NODATA, or NXDOMAIN for local-only names.
    pub answered: u64,
    /// New queries sent upstream.
    pub forwarded: u64,
    /// Queries sent again: to the next upstream (timeout, SERVFAIL, REFUSED) or because the
    /// client retransmitted.
    pub retried: u64,
    /// Upstream answers passed back to clients.
    pub relayed: u64,
    /// Forwardable queries answered from the cache of forwarded answers (not forwarded).
    pub cache_hits: u64,
    /// Queries that got an error: ours — SERVFAIL (upstreams timed out, table full), REFUSED
    /// (no upstream), NOTIMP (an opcode other than QUERY), BADVERS — or the last upstream's
    /// SERVFAIL or REFUSED, relayed.
    pub failed: u64,
    /// Malformed queries: answered FORMERR when the header could be read, dropped otherwise.
    pub malformed: u64,
    /// Messages dropped without an answer: responses sent to the query port, upstream messages
    /// that match no outstanding query (late, duplicated or forged).
    pub ignored: u64,
}

/// What a reply needs from the query, kept for answers produced later (timeouts).
#[derive(Debug, Clone)]
struct ReplyContext {
    id: u16,
    recursion_desired: bool,
    checking_disabled: bool,
    query: Query,
    /// `Some(dnssec_ok)` when the query carried an OPT record.
    edns: Option<bool>,
    /// The largest reply the client can take: 65535 over TCP; over UDP its EDNS size, or 512.
    limit: usize,
    /// The largest reply we build ourselves: `limit`, capped at our EDNS size over UDP.
    local_limit: usize,
}

#[derive(Debug)]
struct Pending {
    client: Client,
    ctx: ReplyContext,
    /// The query as sent upstream (our id).
    bytes: Vec<u8>,
    upstreams: Arc<[SocketAddr]>,
    /// Index of the upstream currently asked; earlier ones may still answer.
    attempt: usize,
    deadline: Instant,
}

impl Pending {
    fn current(&self) -> Option<SocketAddr> {
        self.upstreams.get(self.attempt).copied()
    }

    fn asked(&self, from: SocketAddr) -> bool {
        self.upstreams
            .get(..=self.attempt)
            .is_some_and(|asked| asked.contains(&from))
    }
}

/// The decision for one question.
enum Decision {
    Answer {
        rcode: ResponseCode,
        authoritative: bool,
        answers: Vec<Record>,
    },
    Forward(Arc<[SocketAddr]>),
}

const HEADER_LEN: usize = 12;
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const MIN_UDP: usize = 512;
const MAX_TCP: usize = 65535;

/// The DNS server of one network: a local zone and a forwarder, with no sockets and no clock.
///
/// # Driving it
/// - A message from a client (UDP datagram, or one length-framed TCP message with the two
///   length octets removed) → [`handle_query`](Self::handle_query).
/// - A message from an upstream server → [`handle_upstream_response`](Self::handle_upstream_response).
/// - Arm one timer at [`poll_timeout`](Self::poll_timeout); when it fires, call
///   [`handle_timeout`](Self::handle_timeout).
/// - Carry out every returned [`Action`]. Over TCP, prefix each message with its length.
/// - Lease changes → [`add_lease_name`](Self::add_lease_name) /
///   [`remove_lease_name`](Self::remove_lease_name); `net update` →
///   [`add_dns_host`](Self::add_dns_host) and friends; a changed resolv.conf →
///   [`set_upstreams`](Self::set_upstreams).
///
/// Nothing here panics on input from the network; bad input is answered or dropped and
/// counted in [`stats`](Self::stats).
pub struct DnsServer {
    config: Config,
    routes: Routes,
    zone: Zone,
    entropy: Box<dyn Entropy>,
    pending: HashMap<u16, Pending>,
    /// The forwarded queries' deadlines, earliest on top, with lazy deletion: pushed whenever a
    /// query gets a deadline, discarded when they reach the top and no longer match (answered,
    /// moved to the next upstream, id reused). The top is current after every `&mut self`
    /// call, so [`poll_timeout`](Self::poll_timeout) is a peek; rebuilt when it holds more
    /// than twice as many entries as there are queries (plus [`DEADLINE_SLACK`]).
    deadlines: BinaryHeap<Reverse<(Instant, u16)>>,
    by_client: HashMap<(Client, u16), u16>,
    cache: Cache,
    stats: Stats,
}

/// Extra entries the deadline heap may hold beyond two per outstanding query before it is
/// rebuilt.
const DEADLINE_SLACK: usize = 64;

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("config", &self.config)
            .field("outstanding", &self.pending.len())
            .field("cached", &self.cache.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    pub fn new(config: Config, entropy: Box<dyn Entropy>) -> Result<Self, ConfigError> {
        let mut config = config;
        config.max_outstanding = config.max_outstanding.min(MAX_OUTSTANDING_CAP);
        let domain = match &config.domain {
            Some(d) => Some(name::normalize(d).map_err(|source| ConfigError::Name {
                what: "network domain",
                source,
            })?),
            None => None,
        };
        config.domain.clone_from(&domain);
        let routes = config.routes()?;
        let mut zone = Zone::new(domain);
        for h in &config.hosts {
            add_host(&mut zone, h.clone())?;
        }
        for r in &config.reservations {
            zone.add_reservation(&r.name, r.ip)
                .map_err(|source| ConfigError::Name {
                    what: "DHCP host name",
                    source,
                })?;
        }
        Ok(DnsServer {
            routes,
            zone,
            entropy,
            pending: HashMap::new(),
            deadlines: BinaryHeap::new(),
            by_client: HashMap::new(),
            cache: Cache::new(config.cache_size),
            stats: Stats::default(),
            config,
        })
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The cache of forwarded answers: hits, misses, answers stored, evictions.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Answers in the cache now (expired ones included until they are looked up or evicted).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Forwarded queries still waiting for an upstream.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Replaces the default upstreams (the host's resolv.conf changed). Queries already
    /// forwarded keep the list they started with.
    pub fn set_upstreams(&mut self, upstreams: Vec<SocketAddr>) {
        self.routes.default = upstreams.clone().into();
        self.config.upstreams = upstreams;
        // Other servers may answer otherwise (dnsmasq too empties its cache on a new
        // resolv.conf).
        self.cache.clear();
    }

    /// Names a lease (see the zone rules in [`crate::zone`]): only the first label counts, a
    /// name the configuration gives to another address is refused, the newest lease wins.
    pub fn add_lease_name(&mut self, name: &str, ip: IpAddr) -> Result<(), NameError> {
        self.zone.add_lease(name, ip)
    }

    /// Removes a lease's name; false when `name` no longer belongs to `ip`.
    pub fn remove_lease_name(&mut self, name: &str, ip: IpAddr) -> bool {
        self.zone.remove_lease(name, ip)
    }

    /// Adds a `dns/host` entry (`net update ... add dns-host`).
    pub fn add_dns_host(&mut self, host: DnsHost) -> Result<(), ConfigError> {
        add_host(&mut self.zone, host)
    }

    /// Removes the `dns/host` entries of an address.
    pub fn remove_dns_host(&mut self, ip: IpAddr) -> bool {
        self.zone.remove_host(ip)
    }

    /// Adds or moves a `dhcp/host` name (`net update ... add ip-dhcp-host`).
    pub fn add_reservation(&mut self, name: &str, ip: IpAddr) -> Result<(), ConfigError> {
        self.zone
            .add_reservation(name, ip)
            .map_err(|source| ConfigError::Name {
                what: "DHCP host name",
                source,
            })
    }

    pub fn remove_reservation(&mut self, name: &str) -> bool {
        self.zone.remove_reservation(name)
    }

    /// A message from a client. Returns the reply, the query to forward, or nothing (the
    /// message is dropped: too short to hold a header, or not a query).
    pub fn handle_query(&mut self, now: Instant, bytes: &[u8], from: Client) -> Option<Action> {
        let action = self.query(now, bytes, from);
        self.prune_deadlines();
        action
    }

    fn query(&mut self, now: Instant, bytes: &[u8], from: Client) -> Option<Action> {
        self.stats.queries += 1;
        let Some((id, flags)) = raw_header(bytes) else {
            self.stats.malformed += 1;
            return None;
        };
        if flags & FLAG_QR != 0 {
            // Never answer a response: two servers would bounce errors forever.
            self.stats.ignored += 1;
            return None;
        }
        let opcode = (flags >> 11) & 0xf;
        if opcode != 0 {
            self.stats.failed += 1;
            return Some(reply(from, header_only(id, flags, ResponseCode::NotImp)));
        }
        let msg = match Message::from_vec(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                return Some(reply(from, header_only(id, flags, ResponseCode::FormErr)));
            }
        };
        let [query] = msg.queries.as_slice() else {
            self.stats.malformed += 1;
            return Some(reply(from, header_only(id, flags, ResponseCode::FormErr)));
        };
        let ctx = ReplyContext {
            id,
            recursion_desired: msg.metadata.recursion_desired,
            checking_disabled: msg.metadata.checking_disabled,
            query: query.clone(),
            edns: msg.edns.as_ref().map(|e| e.flags().dnssec_ok),
            limit: client_limit(&msg, from.transport),
            local_limit: self.local_limit(&msg, from.transport),
        };
        if msg.edns.as_ref().is_some_and(|e| e.version() > 0) {
            self.stats.failed += 1;
            let bytes = self.encode(&ctx, ResponseCode::BADVERS, false, Vec::new());
            return Some(reply(from, bytes));
        }
        match self.decide(query) {
            Decision::Answer {
                rcode,
                authoritative,
                answers,
            } => {
                self.stats.answered += 1;
                let bytes = self.encode(&ctx, rcode, authoritative, answers);
                Some(reply(from, bytes))
            }
            Decision::Forward(upstreams) if upstreams.is_empty() => {
                // Nowhere to send it (isolated network, no forwarder): dnsmasq says REFUSED.
                self.stats.failed += 1;
                let bytes = self.encode(&ctx, ResponseCode::Refused, false, Vec::new());
                Some(reply(from, bytes))
            }
            Decision::Forward(upstreams) => {
                if let Some(hit) = self.cached_answer(now, bytes, &ctx) {
                    return Some(reply(from, hit));
                }
                Some(self.forward(now, bytes, from, ctx, upstreams))
            }
        }
    }

    /// A message from an upstream server. Returns the answer for the client, the query sent
    /// to the next upstream (this one said SERVFAIL or REFUSED), or nothing (no outstanding
    /// query matches its id, source and question).
    pub fn handle_upstream_response(
        &mut self,
        now: Instant,
        bytes: &[u8],
        from: SocketAddr,
    ) -> Option<Action> {
        let action = self.upstream_response(now, bytes, from);
        self.prune_deadlines();
        action
    }

    fn upstream_response(
        &mut self,
        now: Instant,
        bytes: &[u8],
        from: SocketAddr,
    ) -> Option<Action> {
        let Some((id, _)) = raw_header(bytes) else {
            self.stats.ignored += 1;
            return None;
        };
        let Some(p) = self.pending.get_mut(&id) else {
            self.stats.ignored += 1;
            return None;
        };
        if !p.asked(from) {
            self.stats.ignored += 1;
            return None;
        }
        let mut decoder = BinDecoder::new(bytes);
        let header = Header::read(&mut decoder).ok();
        let matches = header.as_ref().is_some_and(|h| {
            h.metadata.message_type == MessageType::Response && h.counts.queries == 1
        }) && Query::read(&mut decoder).is_ok_and(|q| q == p.ctx.query);
        let Some(header) = header.filter(|_| matches) else {
            self.stats.ignored += 1;
            return None;
        };
        let question_end = decoder.index();
        let rcode = header.metadata.response_code;
        let failure = matches!(rcode, ResponseCode::ServFail | ResponseCode::Refused);
        if failure && p.current() != Some(from) {
            // A late failure from an upstream we already gave up on: the current one may
            // still answer.
            self.stats.ignored += 1;
            return None;
        }
        // strict-order: a server that cannot answer hands the query to the next, as dnsmasq does.
        if failure && p.attempt + 1 < p.upstreams.len() {
            p.attempt += 1;
            p.deadline = deadline(now, self.config.upstream_timeout);
            let at = p.deadline;
            let forward = p.current().map(|upstream| Action::Forward {
                upstream,
                transport: p.client.transport,
                bytes: p.bytes.clone(),
            });
            self.schedule(at, id);
            if forward.is_some() {
                self.stats.retried += 1;
            }
            return forward;
        }
        let p = self.remove_pending(id)?;
        if failure {
            self.stats.failed += 1;
        } else {
            let key = Key::new(p.ctx.query.clone(), p.ctx.edns, p.ctx.checking_disabled);
            self.cache.store(now, key, bytes);
        }
        let mut out = if bytes.len() > p.ctx.limit {
            // An upstream that ignored the client's size: keep header and question, set TC
            // (RFC 1035 §4.2.1), so the client retries over TCP.
            truncated(bytes, question_end)
        } else {
            bytes.to_vec()
        };
        set_id(&mut out, p.ctx.id);
        self.stats.relayed += 1;
        Some(Action::Reply {
            client: p.client,
            bytes: out,
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to be called next. O(1).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = self.deadlines.peek().map(|Reverse((at, _))| *at);
        // Every test and fuzz replay (debug builds) checks the heap against a full scan.
        debug_assert_eq!(
            next,
            self.pending.values().map(|p| p.deadline).min(),
            "deadline heap out of step"
        );
        next
    }

    /// Moves timed-out queries to their next upstream, or answers SERVFAIL when every upstream
    /// has had its turn; earliest deadline first (equal ones by our id). O(k log n) for k due
    /// queries.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if self.pending.get(&id).map(|p| p.deadline) != Some(at) {
                self.deadlines.pop();
                continue;
            }
            if at > now {
                break;
            }
            self.deadlines.pop();
            let timeout = self.config.upstream_timeout;
            let Some(p) = self.pending.get_mut(&id) else {
                continue;
            };
            if p.attempt + 1 < p.upstreams.len() {
                p.attempt += 1;
                p.deadline = deadline(now, timeout);
                let at = p.deadline;
                if let Some(upstream) = p.current() {
                    self.stats.retried += 1;
                    out.push(Action::Forward {
                        upstream,
                        transport: p.client.transport,
                        bytes: p.bytes.clone(),
                    });
                }
                self.schedule(at, id);
            } else if let Some(p) = self.remove_pending(id) {
                self.stats.failed += 1;
                let bytes = self.encode(&p.ctx, ResponseCode::ServFail, false, Vec::new());
                out.push(Action::Reply {
                    client: p.client,
                    bytes,
                });
            }
        }
        out
    }

    /// Records query `id`'s new deadline (call after storing it in `pending`).
    fn schedule(&mut self, at: Instant, id: u16) {
        self.deadlines.push(Reverse((at, id)));
        if self.deadlines.len() > 2 * self.pending.len() + DEADLINE_SLACK {
            self.deadlines = self
                .pending
                .iter()
                .map(|(&id, p)| Reverse((p.deadline, id)))
                .collect();
        }
    }

    /// Drops stale entries from the top, so [`poll_timeout`](Self::poll_timeout) is exact.
    fn prune_deadlines(&mut self) {
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if self.pending.get(&id).map(|p| p.deadline) == Some(at) {
                break;
            }
            self.deadlines.pop();
        }
    }

    /// The cached answer to a forwardable query, made the client's: its id, its question (letter
    /// case included), its RD bit, truncated to its size limit.
    fn cached_answer(&mut self, now: Instant, bytes: &[u8], ctx: &ReplyContext) -> Option<Vec<u8>> {
        let question_end = cache::skip_name(bytes, HEADER_LEN)?.checked_add(4)?;
        let question = bytes.get(HEADER_LEN..question_end)?;
        let key = Key::new(ctx.query.clone(), ctx.edns, ctx.checking_disabled);
        let mut out = self.cache.lookup(now, &key, ctx.id, question)?;
        if let Some(f) = out.get_mut(2) {
            *f = (*f & !((FLAG_RD >> 8) as u8))
                | if ctx.recursion_desired {
                    (FLAG_RD >> 8) as u8
                } else {
                    0
                };
        }
        if out.len() > ctx.limit {
            out = truncated(&out, question_end);
        }
        self.stats.cache_hits += 1;
        Some(out)
    }

    fn remove_pending(&mut self, id: u16) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        let key = (p.client, p.ctx.id);
        if self.by_client.get(&key) == Some(&id) {
            self.by_client.remove(&key);
        }
        Some(p)
    }

    fn forward(
        &mut self,
        now: Instant,
        bytes: &[u8],
        from: Client,
        ctx: ReplyContext,
        upstreams: Arc<[SocketAddr]>,
    ) -> Action {
        // A client retransmitting a query we are still working on: send it again, to the
        // upstream currently asked, rather than opening a second entry.
        if let Some(p) = self
            .by_client
            .get(&(from, ctx.id))
            .and_then(|our| self.pending.get(our))
        {
            if p.ctx.query == ctx.query {
                if let Some(upstream) = p.current() {
                    self.stats.retried += 1;
                    return Action::Forward {
                        upstream,
                        transport: from.transport,
                        bytes: p.bytes.clone(),
                    };
                }
            }
        }
        let first = upstreams.first().copied();
        let id = if self.pending.len() < self.config.max_outstanding {
            self.fresh_id()
        } else {
            None
        };
        let (Some(upstream), Some(our_id)) = (first, id) else {
            // The table is full (or the upstream list is empty, which the caller excludes).
            // SERVFAIL rather than silence: the client moves on instead of waiting.
            self.stats.failed += 1;
            return reply(
                from,
                self.encode(&ctx, ResponseCode::ServFail, false, Vec::new()),
            );
        };
        let mut out = bytes.to_vec();
        set_id(&mut out, our_id);
        self.by_client.insert((from, ctx.id), our_id);
        self.pending.insert(
            our_id,
            Pending {
                client: from,
                ctx,
                bytes: out.clone(),
                upstreams,
                attempt: 0,
                deadline: deadline(now, self.config.upstream_timeout),
            },
        );
        self.schedule(deadline(now, self.config.upstream_timeout), our_id);
        self.stats.forwarded += 1;
        Action::Forward {
            upstream,
            transport: from.transport,
            bytes: out,
        }
    }

    /// An id no outstanding query uses. With at most 4096 of 65536 in use a few draws suffice;
    /// a broken entropy source makes the query fail rather than loop.
    fn fresh_id(&mut self) -> Option<u16> {
        for _ in 0..16 {
            let mut b = [0u8; 2];
            self.entropy.fill(&mut b);
            let id = u16::from_be_bytes(b);
            if !self.pending.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    fn local_limit(&self, msg: &Message, transport: Transport) -> usize {
        match transport {
            Transport::Tcp => MAX_TCP,
            Transport::Udp => client_limit(msg, transport)
                .min(usize::from(self.config.max_udp_payload))
                .max(MIN_UDP),
        }
    }

    fn decide(&self, query: &Query) -> Decision {
        let labels = name::labels(query.name());
        let qtype = query.query_type();
        let local_class = matches!(query.query_class(), DNSClass::IN | DNSClass::ANY);
        if local_class {
            if let Some(ip) = name::parse_reverse(&labels) {
                let names = self.zone.reverse(ip);
                if !names.is_empty() {
                    let answers = if matches!(qtype, RecordType::PTR | RecordType::ANY) {
                        names
                            .iter()
                            .filter_map(|n| Name::from_ascii(format!("{n}.")).ok())
                            .map(|target| {
                                Record::from_rdata(
                                    query.name().clone(),
                                    self.config.local_ttl,
                                    RData::PTR(PTR(target)),
                                )
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    return Decision::Answer {
                        rcode: ResponseCode::NoError,
                        authoritative: true,
                        answers,
                    };
                }
            }
            if let Some(addrs) = name::key(&labels).and_then(|k| self.zone.lookup(&k)) {
                // A local name answers every type itself: NODATA when it has no such record
                // (RFC 2308 §2.2), never NXDOMAIN. dnsmasq forwards AAAA and other types of
                // hosts-file names; the upstream cannot know our guests, so we do not.
                let answers = addrs
                    .iter()
                    .filter_map(|ip| match (ip, qtype) {
                        (IpAddr::V4(a), RecordType::A | RecordType::ANY) => Some(RData::A(A(*a))),
                        (IpAddr::V6(a), RecordType::AAAA | RecordType::ANY) => {
                            Some(RData::AAAA(AAAA(*a)))
                        }
                        _ => None,
                    })
                    .map(|rdata| {
                        Record::from_rdata(query.name().clone(), self.config.local_ttl, rdata)
                    })
                    .collect();
                return Decision::Answer {
                    rcode: ResponseCode::NoError,
                    authoritative: true,
                    answers,
                };
            }
        }
        match self.routes.route(&labels) {
            Route::Local => Decision::Answer {
                rcode: ResponseCode::NXDomain,
                authoritative: true,
                answers: Vec::new(),
            },
            Route::Upstreams(list) => Decision::Forward(list),
        }
    }

    /// Encodes a reply to `ctx`'s query; over the client's size limit the answers are dropped
    /// and TC set (RFC 1035 §4.2.1, RFC 2181 §9).
    fn encode(
        &self,
        ctx: &ReplyContext,
        rcode: ResponseCode,
        authoritative: bool,
        answers: Vec<Record>,
    ) -> Vec<u8> {
        let mut m = Message::response(ctx.id, OpCode::Query);
        m.metadata.recursion_desired = ctx.recursion_desired;
        m.metadata.checking_disabled = ctx.checking_disabled;
        // We recurse for our clients by forwarding.
        m.metadata.recursion_available = true;
        m.metadata.authoritative = authoritative;
        m.metadata.response_code = rcode;
        m.add_query(ctx.query.clone());
        m.add_answers(answers);
        if let Some(dnssec_ok) = ctx.edns {
            let mut e = Edns::new();
            e.set_max_payload(self.config.max_udp_payload);
            e.set_version(0);
            e.set_dnssec_ok(dnssec_ok);
            m.set_edns(e);
        }
        let flags = header_flags(ctx.recursion_desired);
        let Ok(bytes) = m.to_vec() else {
            return header_only(ctx.id, flags, ResponseCode::ServFail);
        };
        if bytes.len() <= ctx.local_limit {
            return bytes;
        }
        m.answers.clear();
        m.metadata.truncation = true;
        match m.to_vec() {
            Ok(b) if b.len() <= ctx.local_limit => b,
            _ => {
                let mut b = header_only(ctx.id, flags, rcode);
                if let Some(f) = b.get_mut(2) {
                    *f |= (FLAG_TC >> 8) as u8;
                }
                b
            }
        }
    }
}

fn add_host(zone: &mut Zone, host: DnsHost) -> Result<(), ConfigError> {
    if host.names.is_empty() {
        return Err(ConfigError::HostWithoutName { ip: host.ip });
    }
    zone.add_host(host).map_err(|source| ConfigError::Name {
        what: "DNS host name",
        source,
    })
}

/// What the client can take (RFC 6891 §6.2.5: an advertised size below 512 counts as 512).
// Upstream answers are relayed up to this size even above our own EDNS size: the client asked
// for it, and the bridge is one hop. Our own answers stay within our size (fragmentation).
fn client_limit(msg: &Message, transport: Transport) -> usize {
    match (transport, &msg.edns) {
        (Transport::Tcp, _) => MAX_TCP,
        (Transport::Udp, Some(e)) => usize::from(e.max_payload()).max(MIN_UDP),
        (Transport::Udp, None) => MIN_UDP,
    }
}

fn reply(client: Client, bytes: Vec<u8>) -> Action {
    Action::Reply { client, bytes }
}

fn deadline(now: Instant, timeout: std::time::Duration) -> Instant {
    now.checked_add(timeout).unwrap_or(now)
}

/// Id and flags of a message, when it holds a whole header.
fn raw_header(bytes: &[u8]) -> Option<(u16, u16)> {
    match bytes.get(..HEADER_LEN)? {
        [a, b, c, d, ..] => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

fn header_flags(recursion_desired: bool) -> u16 {
    if recursion_desired {
        FLAG_RD
    } else {
        0
    }
}

/// A reply with a header and no sections: for queries whose question we cannot (or need not)
/// read. Copies the opcode and RD from the query's flags.
fn header_only(id: u16, query_flags: u16, rcode: ResponseCode) -> Vec<u8> {
    let flags = FLAG_QR
        | (query_flags & 0x7800)
        | (query_flags & FLAG_RD)
        | FLAG_RA
        | u16::from(rcode.low());
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

/// Header and question of an upstream answer, with TC set and the other sections dropped.
fn truncated(bytes: &[u8], question_end: usize) -> Vec<u8> {
    let mut out = bytes.get(..question_end).unwrap_or(bytes).to_vec();
    if let Some(f) = out.get_mut(2) {
        *f |= (FLAG_TC >> 8) as u8;
    }
    // QDCOUNT stays 1; ANCOUNT, NSCOUNT, ARCOUNT become 0.
    if let Some(counts) = out.get_mut(6..HEADER_LEN) {
        counts.fill(0);
    }
    out
}

fn set_id(bytes: &mut [u8], id: u16) {
    if let Some(b) = bytes.get_mut(..2) {
        b.copy_from_slice(&id.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Ids from a counter: every draw is new.
    struct Seq(u16);
    impl Entropy for Seq {
        fn fill(&mut self, buf: &mut [u8]) {
            self.0 = self.0.wrapping_add(1);
            for (b, v) in buf.iter_mut().zip(self.0.to_be_bytes().iter().cycle()) {
                *b = *v;
            }
        }
    }

    /// `a.test. IN A` with id `id`, RD set.
    fn query(id: u16) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 4]);
        m.extend_from_slice(b"test\0\0\x01\0\x01");
        m
    }

    /// The upstream's empty NOERROR answer to a forwarded query.
    fn answer(forwarded: &[u8]) -> Vec<u8> {
        let mut r = forwarded.to_vec();
        r[2] = 0x81;
        r[3] = 0x80;
        r
    }

    #[test]
    fn answered_queries_cannot_grow_the_deadline_heap() {
        let up: SocketAddr = "203.0.113.1:53".parse().unwrap();
        let cfg = Config {
            upstreams: vec![up],
            ..Config::default()
        };
        let mut s = DnsServer::new(cfg, Box::new(Seq(0))).unwrap();
        let t0 = Instant::now();
        // Ten queries stay outstanding; 50,000 more come and are answered at once.
        let client = |port: u16| Client::udp(SocketAddr::from(([10, 0, 0, 2], port)));
        for i in 0..10u16 {
            s.handle_query(t0, &query(i), client(1000 + i));
        }
        let mut max = 0;
        for i in 0..50_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i) + 1);
            let Some(Action::Forward { bytes, .. }) = s.handle_query(now, &query(7), client(2000))
            else {
                panic!("not forwarded");
            };
            assert!(s
                .handle_upstream_response(now, &answer(&bytes), up)
                .is_some());
            max = max.max(s.deadlines.len());
        }
        assert_eq!(s.outstanding(), 10);
        assert!(max <= 2 * 11 + DEADLINE_SLACK + 1, "heap grew to {max}");
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(3)));
        // All ten time out together: one SERVFAIL each (one upstream), nothing left.
        let out = s.handle_timeout(t0 + Duration::from_secs(3));
        assert_eq!(out.len(), 10);
        assert_eq!(s.poll_timeout(), None);
        assert!(s.deadlines.is_empty());
    }
}
