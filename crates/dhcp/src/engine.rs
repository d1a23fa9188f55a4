//! The lease engine: the server side of RFC 2131 §4.3 (DHCPDISCOVER, DHCPREQUEST in SELECTING /
//! INIT-REBOOT / RENEWING / REBINDING, DHCPDECLINE, DHCPRELEASE, DHCPINFORM) and §4.1 (where
//! replies go), with the options of RFC 2132 §3-§9 a libvirt guest asks for. Sans-IO: bytes and
//! time in, replies, lease events and the next deadline out.
//!
//! Driving it (one engine per network):
//! 1. a datagram arrives on port 67 of the network's bridge → [`LeaseEngine::handle_packet`];
//!    send the [`Reply`] it returns as its [`Destination`] says;
//! 2. drain [`LeaseEngine::poll_event`] (DNS records, persistence: after any event write
//!    [`LeaseEngine::to_leases_file`] to a temp file and rename it over the old one);
//! 3. arm one timer at [`LeaseEngine::poll_timeout`]; when it fires call
//!    [`LeaseEngine::handle_timeout`], then go to 2.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime};

use dhcproto::v4::{DhcpOption, MessageType, OptionCode};

use crate::config::{Config, ConfigError, LeaseTime, MacAddr, StaticHost};
use crate::wire::{self, Destination, ParseError, Reply, Request};

/// Where a datagram came from, as the daemon's socket saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Interface it arrived on. The engine serves one network and does not look at this; it is
    /// here so the daemon can route by interface and log it.
    pub ifindex: Option<u32>,
    /// Source address and port.
    pub from: SocketAddrV4,
    /// Destination IP, if the socket reports it (IP_PKTINFO). A request unicast to the server
    /// address is a RENEWING client; broadcast (or unknown) is REBINDING. Only matters for an
    /// unknown lease: a unicast one is NAKed, a broadcast one ignored (RFC 2131 §4.3.2).
    pub dst: Option<Ipv4Addr>,
}

impl Arrival {
    pub fn new(from: SocketAddrV4) -> Self {
        Arrival {
            ifindex: None,
            from,
            dst: None,
        }
    }
}

/// A change to the set of bound leases. Every variant carries the lease's current state, so a
/// consumer can treat `Added`/`Renewed` as "upsert ip → (mac, hostname)" and `Released`/`Expired`
/// as "delete ip".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// A client got a lease on an address it did not hold (new client, new address, INIT-REBOOT
    /// recovery, or a lease restored from the leases file).
    Added {
        mac: MacAddr,
        ip: Ipv4Addr,
        hostname: Option<String>,
    },
    /// An existing lease was extended, or its host name changed (also: its name was taken by a
    /// newer lease, then `hostname` is `None`).
    Renewed {
        mac: MacAddr,
        ip: Ipv4Addr,
        hostname: Option<String>,
    },
    /// The client released the address (DHCPRELEASE), declined it (DHCPDECLINE) or moved to
    /// another address.
    Released {
        mac: MacAddr,
        ip: Ipv4Addr,
        hostname: Option<String>,
    },
    /// The lease ran out.
    Expired {
        mac: MacAddr,
        ip: Ipv4Addr,
        hostname: Option<String>,
    },
}

/// One bound lease, as `virtgate net leases` shows it (virsh net-dhcp-leases columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// Wall-clock expiry; `None` for an infinite lease.
    pub expires: Option<SystemTime>,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub hostname: Option<String>,
    pub client_id: Option<Vec<u8>>,
}

impl LeaseInfo {
    /// The "Protocol" column.
    pub fn protocol(&self) -> &'static str {
        "ipv4"
    }

    /// The "Client ID" column: colon-separated hex, `-` if none (virsh prints `-`).
    pub fn client_id_string(&self) -> String {
        match &self.client_id {
            Some(id) => hex_colon(id),
            None => "-".to_string(),
        }
    }
}

pub(crate) fn hex_colon(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Counters, for `virtgate net` status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    pub received: u64,
    /// Dropped: too short, bad cookie, truncated options, no message type, bad hlen.
    pub malformed: u64,
    /// BOOTREPLY packets (another server's, or our own looped back): ignored.
    pub bootreplies: u64,
    /// Non-Ethernet hardware types: ignored.
    pub unsupported_hardware: u64,
    /// Relayed (giaddr set): ignored, a libvirt network is one link.
    pub relayed: u64,
    /// Server-to-client message types (OFFER/ACK/NAK...) or unknown types in a BOOTREQUEST.
    pub unexpected_type: u64,
    /// REQUESTs selecting another server, and DECLINE/RELEASE naming another server.
    pub for_other_server: u64,
    /// Well-formed messages we chose not to answer (no record and not authoritative, a DECLINE
    /// or RELEASE for an address the client does not hold...).
    pub ignored: u64,
    pub discovers: u64,
    pub requests: u64,
    pub declines: u64,
    pub releases: u64,
    pub informs: u64,
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    /// DISCOVERs that found no free address.
    pub exhausted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Offered, not requested yet: held for this client until `until`.
    Offered { until: Instant },
    /// Leased; `expires: None` is an infinite lease.
    Bound { expires: Option<Instant> },
    /// Expired, released or an offer never taken: the address is free, but remembered as this
    /// client's so it gets it back if nobody else took it meanwhile. `was_bound`: it was a lease
    /// (the "previous binding" of RFC 2131 §4.3.1), not just an offer.
    Free { since: Instant, was_bound: bool },
}

#[derive(Debug, Clone)]
struct Record {
    mac: MacAddr,
    client_id: Option<Vec<u8>>,
    hostname: Option<String>,
    state: State,
}

/// Who is asking: RFC 2131 §4.2 identifies a client by its client identifier if it sends one,
/// else by chaddr.
#[derive(Debug, Clone, Copy)]
struct Client<'a> {
    mac: MacAddr,
    client_id: Option<&'a [u8]>,
}

impl Client<'_> {
    /// Whether `rec` belongs to this client: client identifiers decide when both sides have one,
    /// the MAC otherwise (dnsmasq's rule; a guest switching DHCP clients keeps its address).
    fn owns(&self, rec: &Record) -> bool {
        match (self.client_id, rec.client_id.as_deref()) {
            (Some(a), Some(b)) => a == b,
            _ => self.mac == rec.mac,
        }
    }
}

/// The records by address, with indexes by MAC, client identifier and host name, so that
/// finding a client's records or a name's holders does not look at every record.
///
/// Through [`Records::get_mut`] only a record's `state` may change (the indexed fields are
/// changed through [`Records::insert`] and [`Records::clear_hostname`]).
#[derive(Debug, Default)]
struct Records {
    by_ip: BTreeMap<Ipv4Addr, Record>,
    by_mac: HashMap<MacAddr, BTreeSet<Ipv4Addr>>,
    by_client_id: HashMap<Vec<u8>, BTreeSet<Ipv4Addr>>,
    by_hostname: HashMap<String, BTreeSet<Ipv4Addr>>,
}

fn index_add<K: std::hash::Hash + Eq>(
    index: &mut HashMap<K, BTreeSet<Ipv4Addr>>,
    key: K,
    ip: Ipv4Addr,
) {
    index.entry(key).or_default().insert(ip);
}

fn index_remove<K, Q>(index: &mut HashMap<K, BTreeSet<Ipv4Addr>>, key: &Q, ip: Ipv4Addr)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(set) = index.get_mut(key) {
        set.remove(&ip);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

impl Records {
    fn get(&self, ip: &Ipv4Addr) -> Option<&Record> {
        self.by_ip.get(ip)
    }

    fn get_mut(&mut self, ip: &Ipv4Addr) -> Option<&mut Record> {
        self.by_ip.get_mut(ip)
    }

    fn contains_key(&self, ip: &Ipv4Addr) -> bool {
        self.by_ip.contains_key(ip)
    }

    fn len(&self) -> usize {
        self.by_ip.len()
    }

    fn keys(&self) -> impl Iterator<Item = &Ipv4Addr> {
        self.by_ip.keys()
    }

    fn values(&self) -> impl Iterator<Item = &Record> {
        self.by_ip.values()
    }

    fn iter(&self) -> impl Iterator<Item = (&Ipv4Addr, &Record)> {
        self.by_ip.iter()
    }

    fn insert(&mut self, ip: Ipv4Addr, rec: Record) -> Option<Record> {
        let old = self.remove(&ip);
        index_add(&mut self.by_mac, rec.mac, ip);
        if let Some(id) = &rec.client_id {
            index_add(&mut self.by_client_id, id.clone(), ip);
        }
        if let Some(n) = &rec.hostname {
            index_add(&mut self.by_hostname, n.clone(), ip);
        }
        self.by_ip.insert(ip, rec);
        old
    }

    fn remove(&mut self, ip: &Ipv4Addr) -> Option<Record> {
        let old = self.by_ip.remove(ip)?;
        self.unindex(*ip, &old);
        Some(old)
    }

    fn unindex(&mut self, ip: Ipv4Addr, rec: &Record) {
        index_remove(&mut self.by_mac, &rec.mac, ip);
        if let Some(id) = &rec.client_id {
            index_remove(&mut self.by_client_id, id.as_slice(), ip);
        }
        if let Some(n) = &rec.hostname {
            index_remove(&mut self.by_hostname, n.as_str(), ip);
        }
    }

    /// Takes the host name away from the record at `ip`; returns the record.
    fn clear_hostname(&mut self, ip: Ipv4Addr) -> Option<&Record> {
        let rec = self.by_ip.get_mut(&ip)?;
        if let Some(n) = rec.hostname.take() {
            index_remove(&mut self.by_hostname, n.as_str(), ip);
        }
        self.by_ip.get(&ip)
    }

    /// The addresses of the records client `c` owns ([`Client::owns`]), in address order.
    fn owned_by(&self, c: &Client<'_>) -> Vec<Ipv4Addr> {
        let by_mac = self.by_mac.get(&c.mac).into_iter().flatten();
        let by_id = c
            .client_id
            .and_then(|id| self.by_client_id.get(id))
            .into_iter()
            .flatten();
        let candidates: BTreeSet<Ipv4Addr> = by_mac.chain(by_id).copied().collect();
        let owned: Vec<Ipv4Addr> = candidates
            .into_iter()
            .filter(|ip| self.by_ip.get(ip).is_some_and(|r| c.owns(r)))
            .collect();
        debug_assert_eq!(
            owned,
            self.by_ip
                .iter()
                .filter(|(_, r)| c.owns(r))
                .map(|(ip, _)| *ip)
                .collect::<Vec<_>>(),
            "client index out of step"
        );
        owned
    }

    /// The addresses of the records holding host name `name`, in address order.
    fn named(&self, name: &str) -> Vec<Ipv4Addr> {
        let named: Vec<Ipv4Addr> = self
            .by_hostname
            .get(name)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        debug_assert_eq!(
            named,
            self.by_ip
                .iter()
                .filter(|(_, r)| r.hostname.as_deref() == Some(name))
                .map(|(ip, _)| *ip)
                .collect::<Vec<_>>(),
            "host name index out of step"
        );
        named
    }
}

/// Why a REQUEST is refused (the text goes into option 56 of the DHCPNAK, as dnsmasq does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    WrongNetwork,
    NotAvailable,
    Reserved,
    InUse,
    WrongAddress,
    StaticAvailable,
    LeaseNotFound,
}

impl Refusal {
    fn text(self) -> &'static str {
        match self {
            Refusal::WrongNetwork => "wrong network",
            Refusal::NotAvailable => "address not available",
            Refusal::Reserved => "address reserved",
            Refusal::InUse => "address in use",
            Refusal::WrongAddress => "wrong address",
            Refusal::StaticAvailable => "static lease available",
            Refusal::LeaseNotFound => "lease not found",
        }
    }
}

/// Shortest lease a client may ask for (dnsmasq's floor: 2 minutes).
const MIN_REQUESTED_LEASE: u32 = 120;

/// What a deadline in [`LeaseEngine::deadlines`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// The record's offer hold or lease expiry.
    Record,
    /// The end of a declined address's quarantine.
    Declined,
}

/// Extra entries the deadline heap may hold beyond two per record and declined address before
/// it is rebuilt.
const DEADLINE_SLACK: usize = 64;

/// The DHCPv4 server of one network.
#[derive(Debug)]
pub struct LeaseEngine {
    cfg: Config,
    records: Records,
    declined: BTreeMap<Ipv4Addr, Instant>,
    /// Every pending deadline, earliest on top, with lazy deletion: an entry is pushed whenever
    /// a record gets an offer hold or an expiry, or an address is declined, and is discarded
    /// when it reaches the top but no longer matches (the record was renewed, released or
    /// removed). The top is always current after every `&mut self` call, so
    /// [`poll_timeout`](Self::poll_timeout) is a peek. Rebuilt from the records when it holds
    /// more than twice as many entries as there are deadlines (plus [`DEADLINE_SLACK`]), so a
    /// client renewing in a loop cannot grow it.
    deadlines: BinaryHeap<Reverse<(Instant, Ipv4Addr, Due)>>,
    events: VecDeque<LeaseEvent>,
    stats: Stats,
}

impl LeaseEngine {
    /// A server with no leases. Fails if the configuration does not validate.
    pub fn new(cfg: Config) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(LeaseEngine {
            cfg,
            records: Records::default(),
            declined: BTreeMap::new(),
            deadlines: BinaryHeap::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The next lease change, if any.
    pub fn poll_event(&mut self) -> Option<LeaseEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work: an offer's hold, a lease's
    /// expiry or a declined address's quarantine ending. O(1).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = self.deadlines.peek().map(|Reverse((at, _, _))| *at);
        // Every test and fuzz replay (debug builds) checks the heap against a full scan.
        debug_assert_eq!(next, self.scan_timeout(), "deadline heap out of step");
        next
    }

    /// The earliest deadline by looking at every record and declined address (what
    /// `poll_timeout` did before the heap; kept as the debug builds' cross-check).
    fn scan_timeout(&self) -> Option<Instant> {
        let records = self.records.values().filter_map(|r| match r.state {
            State::Offered { until } => Some(until),
            State::Bound { expires } => expires,
            State::Free { .. } => None,
        });
        records.chain(self.declined.values().copied()).min()
    }

    /// Expire what is due at `now` (emits [`LeaseEvent::Expired`], earliest first; equal
    /// deadlines in address order). O(k log n) for k due deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, ip, due))) = self.deadlines.peek() {
            if self.current_deadline(ip, due) != Some(at) {
                self.deadlines.pop();
                continue;
            }
            if at > now {
                break;
            }
            self.deadlines.pop();
            match due {
                Due::Declined => {
                    self.declined.remove(&ip);
                }
                Due::Record => {
                    let Some(rec) = self.records.get_mut(&ip) else {
                        continue;
                    };
                    match rec.state {
                        State::Offered { until } => {
                            rec.state = State::Free {
                                since: until,
                                was_bound: false,
                            };
                        }
                        State::Bound {
                            expires: Some(expires),
                        } => {
                            rec.state = State::Free {
                                since: expires,
                                was_bound: true,
                            };
                            self.events.push_back(LeaseEvent::Expired {
                                mac: rec.mac,
                                ip,
                                hostname: rec.hostname.clone(),
                            });
                        }
                        State::Bound { expires: None } | State::Free { .. } => {}
                    }
                }
            }
        }
    }

    /// The deadline `ip` has now for `due`, if any.
    fn current_deadline(&self, ip: Ipv4Addr, due: Due) -> Option<Instant> {
        match due {
            Due::Declined => self.declined.get(&ip).copied(),
            Due::Record => match self.records.get(&ip)?.state {
                State::Offered { until } => Some(until),
                State::Bound { expires } => expires,
                State::Free { .. } => None,
            },
        }
    }

    /// Records a new deadline (call after the state holding it is stored).
    fn schedule(&mut self, at: Instant, ip: Ipv4Addr, due: Due) {
        self.deadlines.push(Reverse((at, ip, due)));
        let live = self.records.len() + self.declined.len();
        if self.deadlines.len() > 2 * live + DEADLINE_SLACK {
            self.rebuild_deadlines();
        }
    }

    /// The heap again from the records and declined addresses alone.
    fn rebuild_deadlines(&mut self) {
        let records = self
            .records
            .keys()
            .filter_map(|&ip| Some((self.current_deadline(ip, Due::Record)?, ip, Due::Record)));
        let declined = self
            .declined
            .iter()
            .map(|(&ip, &at)| (at, ip, Due::Declined));
        self.deadlines = records.chain(declined).map(Reverse).collect();
    }

    /// Drops stale entries from the top, so [`poll_timeout`](Self::poll_timeout) is exact.
    fn prune_deadlines(&mut self) {
        while let Some(&Reverse((at, ip, due))) = self.deadlines.peek() {
            if self.current_deadline(ip, due) == Some(at) {
                break;
            }
            self.deadlines.pop();
        }
    }

    /// The bound leases, for `virtgate net leases`. `now`/`wall_now` are the same moment on the
    /// monotonic and the wall clock.
    pub fn leases(&self, now: Instant, wall_now: SystemTime) -> Vec<LeaseInfo> {
        self.records
            .iter()
            .filter_map(|(ip, rec)| match rec.state {
                State::Bound { expires } => Some(LeaseInfo {
                    expires: expires.map(|e| wall_now + e.saturating_duration_since(now)),
                    mac: rec.mac,
                    ip: *ip,
                    prefix_len: self.cfg.prefix_len,
                    hostname: rec.hostname.clone(),
                    client_id: rec.client_id.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Add a `<host>` reservation at run time (`net update add ip-dhcp-host`). A client already
    /// holding the address keeps it until its next REQUEST, which is then NAKed (as dnsmasq).
    pub fn add_static_host(&mut self, host: StaticHost) -> Result<(), ConfigError> {
        let mut cfg = self.cfg.clone();
        cfg.hosts.push(host);
        cfg.validate()?;
        self.cfg = cfg;
        Ok(())
    }

    /// Remove the reservation for `mac` (`net update delete ip-dhcp-host`); true if there was
    /// one. A lease the host holds runs on.
    pub fn remove_static_host(&mut self, mac: MacAddr) -> bool {
        let before = self.cfg.hosts.len();
        self.cfg.hosts.retain(|h| h.mac != mac);
        self.cfg.hosts.len() != before
    }

    /// Handle one datagram that arrived on UDP port 67. Never panics; what it drops it counts.
    pub fn handle_packet(&mut self, now: Instant, bytes: &[u8], arrival: Arrival) -> Option<Reply> {
        self.handle_timeout(now);
        self.stats.received += 1;
        let req = match wire::parse_request(bytes) {
            Ok(r) => r,
            Err(ParseError::NotRequest(_)) => {
                self.stats.bootreplies += 1;
                return None;
            }
            Err(ParseError::NotEthernet { .. }) => {
                self.stats.unsupported_hardware += 1;
                return None;
            }
            Err(_) => {
                self.stats.malformed += 1;
                return None;
            }
        };
        if req.giaddr() != Ipv4Addr::UNSPECIFIED {
            // A choice: relayed requests are not served (a libvirt network is one link; dnsmasq
            // would serve a relay whose giaddr is in one of its ranges).
            self.stats.relayed += 1;
            return None;
        }
        let reply = match req.msg_type {
            MessageType::Discover => {
                self.stats.discovers += 1;
                self.discover(now, &req)
            }
            MessageType::Request => {
                self.stats.requests += 1;
                self.request(now, &req, &arrival)
            }
            MessageType::Decline => {
                self.stats.declines += 1;
                self.decline(now, &req);
                None
            }
            MessageType::Release => {
                self.stats.releases += 1;
                self.release(now, &req);
                None
            }
            MessageType::Inform => {
                self.stats.informs += 1;
                self.inform(&req)
            }
            _ => {
                self.stats.unexpected_type += 1;
                None
            }
        };
        if let Some(r) = &reply {
            match r.msg_type {
                MessageType::Offer => self.stats.offers += 1,
                MessageType::Ack => self.stats.acks += 1,
                MessageType::Nak => self.stats.naks += 1,
                _ => {}
            }
        }
        self.prune_deadlines();
        reply
    }

    // ---- address bookkeeping -------------------------------------------------------------

    fn static_for(&self, mac: MacAddr) -> Option<&StaticHost> {
        self.cfg.hosts.iter().find(|h| h.mac == mac)
    }

    fn reserved_by(&self, ip: Ipv4Addr) -> Option<&StaticHost> {
        self.cfg.hosts.iter().find(|h| h.ip == ip)
    }

    /// In a dynamic range and not the server, network or broadcast address.
    fn in_pool(&self, ip: Ipv4Addr) -> bool {
        ip != self.cfg.server
            && ip != self.cfg.network()
            && ip != self.cfg.broadcast()
            && self.cfg.ranges.iter().any(|r| r.contains(ip))
    }

    fn is_declined(&self, ip: Ipv4Addr) -> bool {
        self.declined.contains_key(&ip)
    }

    /// Whether `ip` may be leased to client `c` now (the checks of RFC 2131 §4.3.2 a server
    /// makes before ACKing, in dnsmasq's order).
    fn check_available(&self, ip: Ipv4Addr, c: &Client<'_>, now: Instant) -> Result<(), Refusal> {
        if !self.cfg.in_subnet(ip) {
            return Err(Refusal::WrongNetwork);
        }
        let own_static = self.static_for(c.mac).is_some_and(|h| h.ip == ip);
        if !own_static && self.reserved_by(ip).is_some() {
            return Err(Refusal::Reserved);
        }
        if !(own_static || self.in_pool(ip)) || self.is_declined(ip) {
            return Err(Refusal::NotAvailable);
        }
        if let Some(rec) = self.records.get(&ip) {
            let active = match rec.state {
                State::Offered { until } => until > now,
                State::Bound { .. } => true,
                State::Free { .. } => false,
            };
            if active && !c.owns(rec) {
                return Err(Refusal::InUse);
            }
        }
        Ok(())
    }

    /// The client's record: its binding (current, else previous) if `bindings`, else an
    /// outstanding or lapsed offer.
    fn find_client(&self, c: &Client<'_>, bindings: bool) -> Option<Ipv4Addr> {
        let mut best: Option<(Ipv4Addr, u8)> = None;
        for ip in self.records.owned_by(c) {
            let Some(rec) = self.records.get(&ip) else {
                continue;
            };
            let rank = match (rec.state, bindings) {
                (State::Bound { .. }, true) => 2,
                (
                    State::Free {
                        was_bound: true, ..
                    },
                    true,
                ) => 1,
                (State::Offered { .. }, false) => 2,
                (
                    State::Free {
                        was_bound: false, ..
                    },
                    false,
                ) => 1,
                _ => continue,
            };
            if best.is_none_or(|(_, r)| rank > r) {
                best = Some((ip, rank));
            }
        }
        best.map(|(ip, _)| ip)
    }

    fn find_bound(&self, c: &Client<'_>) -> Option<Ipv4Addr> {
        self.records.owned_by(c).into_iter().find(|ip| {
            self.records
                .get(ip)
                .is_some_and(|rec| matches!(rec.state, State::Bound { .. }))
        })
    }

    /// All addresses of the dynamic ranges, as one sequence: (index → address).
    fn pool_size(&self) -> u64 {
        self.cfg.ranges.iter().map(|r| u64::from(r.len())).sum()
    }

    fn pool_addr(&self, mut index: u64) -> Option<Ipv4Addr> {
        for r in &self.cfg.ranges {
            let len = u64::from(r.len());
            if index < len {
                let base = u64::from(u32::from(r.start));
                return u32::try_from(base + index).ok().map(Ipv4Addr::from);
            }
            index -= len;
        }
        None
    }

    /// Choose an address to offer (RFC 2131 §4.3.1, in its order of preference): the client's
    /// reservation, its current or previous binding, the address it asks for, then a new one.
    fn choose_address(&self, req: &Request, c: &Client<'_>, now: Instant) -> Option<Ipv4Addr> {
        if let Some(h) = self.static_for(c.mac) {
            if self.check_available(h.ip, c, now).is_ok() {
                return Some(h.ip);
            }
        }
        if let Some(ip) = self.find_client(c, true) {
            if self.check_available(ip, c, now).is_ok() {
                return Some(ip);
            }
        }
        if let Some(ip) = req.requested_ip {
            if self.in_pool(ip) && self.check_available(ip, c, now).is_ok() {
                return Some(ip);
            }
        }
        // Not in RFC 2131's list, for stability: what we offered it last time.
        if let Some(ip) = self.find_client(c, false) {
            if self.check_available(ip, c, now).is_ok() {
                return Some(ip);
            }
        }
        // A never-used address, scanning from a point fixed by the MAC so a client tends to land
        // on the same address even after its record is gone (dnsmasq hashes the MAC likewise).
        let size = self.pool_size();
        if size == 0 {
            return None;
        }
        let start = fnv1a(&c.mac.0) % size;
        for k in 0..size {
            let Some(ip) = self.pool_addr((start + k) % size) else {
                continue;
            };
            if !self.records.contains_key(&ip)
                && self.reserved_by(ip).is_none()
                && !self.is_declined(ip)
                && self.in_pool(ip)
            {
                return Some(ip);
            }
        }
        // Pool full of remembered addresses: reuse the one free the longest.
        self.records
            .iter()
            .filter_map(|(ip, rec)| match rec.state {
                State::Free { since, .. } => Some((since, *ip)),
                _ => None,
            })
            .filter(|&(_, ip)| {
                self.in_pool(ip) && self.reserved_by(ip).is_none() && !self.is_declined(ip)
            })
            .min()
            .map(|(_, ip)| ip)
    }

    /// The lease time for `ip` given to `mac`: the reservation's, else the range's, else the
    /// default; shortened to what the client asked for (option 51), but not below 2 minutes.
    fn lease_time(&self, ip: Ipv4Addr, mac: MacAddr, requested: Option<u32>) -> LeaseTime {
        let configured = self
            .static_for(mac)
            .filter(|h| h.ip == ip)
            .and_then(|h| h.lease)
            .or_else(|| {
                self.cfg
                    .ranges
                    .iter()
                    .find(|r| r.contains(ip))
                    .and_then(|r| r.lease)
            })
            .unwrap_or(self.cfg.default_lease);
        match requested {
            Some(secs) if secs < configured.wire_secs() => LeaseTime::Finite(Duration::from_secs(
                u64::from(secs.max(MIN_REQUESTED_LEASE)),
            )),
            _ => configured,
        }
    }

    /// The name a lease gets: the reservation's name wins; else the client's (option 12/81),
    /// unless it is a reserved host's name; else whatever the lease had.
    fn lease_name(&self, req: &Request, previous: Option<&str>) -> Option<String> {
        if let Some(name) = self.static_for(req.mac).and_then(|h| h.name.clone()) {
            return Some(name);
        }
        match &req.hostname {
            Some(n) => {
                let taken = self.cfg.hosts.iter().any(|h| {
                    h.name
                        .as_deref()
                        .is_some_and(|hn| hn.eq_ignore_ascii_case(n))
                });
                if taken {
                    None
                } else {
                    Some(n.clone())
                }
            }
            None => previous.map(str::to_string),
        }
    }

    /// Drop the client's records other than at `keep`; bound ones are reported released.
    fn forget_other_records(&mut self, c: &Client<'_>, keep: Ipv4Addr) {
        for ip in self.records.owned_by(c) {
            if ip == keep {
                continue;
            }
            if let Some(rec) = self.records.remove(&ip) {
                if matches!(rec.state, State::Bound { .. }) {
                    self.events.push_back(LeaseEvent::Released {
                        mac: rec.mac,
                        ip,
                        hostname: rec.hostname,
                    });
                }
            }
        }
    }

    // ---- message handlers ----------------------------------------------------------------

    fn client<'a>(req: &'a Request) -> Client<'a> {
        Client {
            mac: req.mac,
            client_id: req.client_id.as_deref(),
        }
    }

    /// RFC 2131 §4.3.1.
    fn discover(&mut self, now: Instant, req: &Request) -> Option<Reply> {
        let c = Self::client(req);
        let Some(ip) = self.choose_address(req, &c, now) else {
            self.stats.exhausted += 1;
            return None;
        };
        self.forget_other_unbound(&c, ip);
        let previous = self.records.get(&ip).filter(|r| c.owns(r));
        let name = self.lease_name(req, previous.and_then(|r| r.hostname.as_deref()));
        let bound_here = previous.is_some_and(|r| matches!(r.state, State::Bound { .. }));
        if !bound_here {
            self.records.insert(
                ip,
                Record {
                    mac: req.mac,
                    client_id: req.client_id.clone(),
                    hostname: name.clone(),
                    state: State::Offered {
                        until: now + self.cfg.offer_hold,
                    },
                },
            );
            self.schedule(now + self.cfg.offer_hold, ip, Due::Record);
        }
        let lease = self.lease_time(ip, req.mac, req.requested_lease);
        // dnsmasq echoes a name in an OFFER only if it is the reservation's and the client did not
        // send a different one ("not to send an OFFER with a hostname not matching the DISCOVER").
        let static_name = self.static_for(req.mac).and_then(|h| h.name.as_deref());
        let echo = static_name.filter(|n| req.hostname.as_deref().is_none_or(|h| h == *n));
        self.address_reply(req, MessageType::Offer, ip, lease, echo)
    }

    /// Offered/remembered records of this client at other addresses go (a bound lease stays
    /// until the client REQUESTs the new address).
    fn forget_other_unbound(&mut self, c: &Client<'_>, keep: Ipv4Addr) {
        for ip in self.records.owned_by(c) {
            let bound = self
                .records
                .get(&ip)
                .is_some_and(|rec| matches!(rec.state, State::Bound { .. }));
            if ip != keep && !bound {
                self.records.remove(&ip);
            }
        }
    }

    /// RFC 2131 §4.3.2: the client's state is told by which of server identifier, requested
    /// address and ciaddr it filled in.
    fn request(&mut self, now: Instant, req: &Request, arrival: &Arrival) -> Option<Reply> {
        let c = Self::client(req);
        let ciaddr = req.ciaddr();
        let (ip, selecting) = if let Some(sid) = req.server_id {
            // SELECTING.
            if sid != self.cfg.server {
                // The client took another server's offer: ours is free again (RFC 2131 §4.3.2).
                // dnsmasq in authoritative mode NAKs here instead; that would fight a second
                // server the client chose legitimately.
                self.stats.for_other_server += 1;
                for ip in self.records.owned_by(&c) {
                    let offered = self
                        .records
                        .get(&ip)
                        .is_some_and(|rec| matches!(rec.state, State::Offered { .. }));
                    if offered {
                        self.records.remove(&ip);
                    }
                }
                return None;
            }
            let Some(ip) = req
                .requested_ip
                .or((ciaddr != Ipv4Addr::UNSPECIFIED).then_some(ciaddr))
            else {
                self.stats.malformed += 1;
                return None;
            };
            (ip, true)
        } else if let Some(ip) = req.requested_ip.filter(|_| ciaddr == Ipv4Addr::UNSPECIFIED) {
            // INIT-REBOOT.
            match self.find_bound(&c) {
                Some(cur) if cur != ip => return self.nak(req, Refusal::WrongAddress),
                Some(_) => {}
                None if !self.cfg.authoritative => {
                    // RFC 2131 §4.3.2: "MUST remain silent" without a record of the client.
                    self.stats.ignored += 1;
                    return None;
                }
                // Authoritative: take the client at its word if the address is free (dnsmasq's
                // recovery from a lost lease database).
                None => {}
            }
            (ip, false)
        } else if ciaddr != Ipv4Addr::UNSPECIFIED {
            // RENEWING (unicast to us) or REBINDING (broadcast).
            let unicast = arrival.dst.is_some_and(|d| d == self.cfg.server);
            let known = self.find_bound(&c);
            if known.is_some_and(|cur| cur != ciaddr)
                || (known.is_none() && !self.cfg.authoritative)
            {
                if !unicast {
                    // A rebinding client may hold a lease from another server: not ours to judge.
                    self.stats.ignored += 1;
                    return None;
                }
                return self.nak(req, Refusal::LeaseNotFound);
            }
            (ciaddr, false)
        } else {
            self.stats.malformed += 1;
            return None;
        };

        if let Err(why) = self.check_available(ip, &c, now) {
            return self.nak(req, why);
        }
        // A reservation added since the client got its dynamic lease: make it DISCOVER again so
        // it gets the reserved address (in SELECTING we offered what it asks for).
        if !selecting {
            if let Some(h) = self.static_for(req.mac) {
                if h.ip != ip && self.check_available(h.ip, &c, now).is_ok() {
                    return self.nak(req, Refusal::StaticAvailable);
                }
            }
        }
        let lease = self.lease_time(ip, req.mac, req.requested_lease);
        let name = self.bind(now, req, ip, lease);
        self.address_reply(req, MessageType::Ack, ip, lease, name.as_deref())
    }

    /// Record the lease and emit its event; returns the lease's host name.
    fn bind(
        &mut self,
        now: Instant,
        req: &Request,
        ip: Ipv4Addr,
        lease: LeaseTime,
    ) -> Option<String> {
        let c = Self::client(req);
        self.forget_other_records(&c, ip);
        let previous = self.records.get(&ip).filter(|r| c.owns(r));
        let was_bound = previous.is_some_and(|r| matches!(r.state, State::Bound { .. }));
        let name = self.lease_name(req, previous.and_then(|r| r.hostname.as_deref()));
        let expires = match lease {
            LeaseTime::Infinite => None,
            // Far-future overflow of Instant: treat as infinite rather than panic.
            LeaseTime::Finite(d) => now.checked_add(d),
        };
        // A newer lease takes a host name from an older one (dnsmasq does the same), so the
        // name follows the machine that most recently claimed it.
        if let Some(n) = &name {
            for other_ip in self.records.named(n) {
                let bound = self
                    .records
                    .get(&other_ip)
                    .is_some_and(|rec| matches!(rec.state, State::Bound { .. }));
                if other_ip == ip || !bound {
                    continue;
                }
                if let Some(rec) = self.records.clear_hostname(other_ip) {
                    self.events.push_back(LeaseEvent::Renewed {
                        mac: rec.mac,
                        ip: other_ip,
                        hostname: None,
                    });
                }
            }
        }
        self.records.insert(
            ip,
            Record {
                mac: req.mac,
                client_id: req.client_id.clone(),
                hostname: name.clone(),
                state: State::Bound { expires },
            },
        );
        if let Some(at) = expires {
            self.schedule(at, ip, Due::Record);
        }
        let (mac, hostname) = (req.mac, name.clone());
        self.events.push_back(if was_bound {
            LeaseEvent::Renewed { mac, ip, hostname }
        } else {
            LeaseEvent::Added { mac, ip, hostname }
        });
        name
    }

    /// RFC 2131 §4.3.3. Only the client we gave the address to can decline it (a choice: RFC
    /// 2131 does not say; otherwise one client could quarantine the whole pool).
    fn decline(&mut self, now: Instant, req: &Request) {
        let c = Self::client(req);
        if req.server_id != Some(self.cfg.server) {
            self.stats.for_other_server += 1;
            return;
        }
        let Some(ip) = req.requested_ip else {
            self.stats.malformed += 1;
            return;
        };
        let ours = self.records.get(&ip).is_some_and(|rec| {
            c.owns(rec) && matches!(rec.state, State::Bound { .. } | State::Offered { .. })
        });
        if !ours {
            self.stats.ignored += 1;
            return;
        }
        if let Some(rec) = self.records.remove(&ip) {
            if matches!(rec.state, State::Bound { .. }) {
                self.events.push_back(LeaseEvent::Released {
                    mac: rec.mac,
                    ip,
                    hostname: rec.hostname,
                });
            }
        }
        self.declined.insert(ip, now + self.cfg.decline_hold);
        self.schedule(now + self.cfg.decline_hold, ip, Due::Declined);
    }

    /// RFC 2131 §4.3.4.
    fn release(&mut self, now: Instant, req: &Request) {
        let c = Self::client(req);
        if req.server_id.is_some_and(|s| s != self.cfg.server) {
            self.stats.for_other_server += 1;
            return;
        }
        let ip = req.ciaddr();
        match self.records.get_mut(&ip) {
            Some(rec) if c.owns(rec) && matches!(rec.state, State::Bound { .. }) => {
                rec.state = State::Free {
                    since: now,
                    was_bound: true,
                };
                self.events.push_back(LeaseEvent::Released {
                    mac: rec.mac,
                    ip,
                    hostname: rec.hostname.clone(),
                });
            }
            _ => self.stats.ignored += 1,
        }
    }

    /// RFC 2131 §4.3.5: configuration only, no lease, no lease-time options.
    fn inform(&mut self, req: &Request) -> Option<Reply> {
        let ciaddr = req.ciaddr();
        if ciaddr == Ipv4Addr::UNSPECIFIED || !self.cfg.in_subnet(ciaddr) {
            self.stats.ignored += 1;
            return None;
        }
        let name = self
            .records
            .get(&ciaddr)
            .filter(|r| matches!(r.state, State::Bound { .. }))
            .and_then(|r| r.hostname.clone());
        let mut opts = vec![
            DhcpOption::MessageType(MessageType::Ack),
            DhcpOption::ServerIdentifier(self.cfg.server),
        ];
        self.config_options(req, name.as_deref(), &mut opts);
        let bytes = wire::encode_reply(
            req,
            self.cfg.server,
            ciaddr,
            Ipv4Addr::UNSPECIFIED,
            false,
            &opts,
        )?;
        // RFC 2131 §4.3.5 says unicast to ciaddr; a client that set BROADCAST (Windows does in
        // INFORM) gets a broadcast, as dnsmasq and ISC dhcpd do.
        let to = if req.broadcast_flag() {
            Destination::Broadcast
        } else {
            Destination::Unicast(ciaddr)
        };
        Some(Reply {
            bytes,
            to,
            msg_type: MessageType::Ack,
        })
    }

    // ---- replies -------------------------------------------------------------------------

    /// A DHCPNAK: broadcast, since giaddr is zero (RFC 2131 §4.1), with ciaddr/yiaddr zero.
    fn nak(&self, req: &Request, why: Refusal) -> Option<Reply> {
        let opts = vec![
            DhcpOption::MessageType(MessageType::Nak),
            DhcpOption::ServerIdentifier(self.cfg.server),
            wire::string_opt(OptionCode::Message, why.text(), false),
        ];
        // dnsmasq leaves siaddr zero in a NAK.
        let bytes = wire::encode_reply(
            req,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            true,
            &opts,
        )?;
        Some(Reply {
            bytes,
            to: Destination::Broadcast,
            msg_type: MessageType::Nak,
        })
    }

    /// DHCPOFFER/DHCPACK for `ip` (RFC 2131 §4.3.1 Table 3), sent per §4.1: to ciaddr if set,
    /// broadcast if the client asked, else unicast to yiaddr at chaddr.
    fn address_reply(
        &self,
        req: &Request,
        kind: MessageType,
        ip: Ipv4Addr,
        lease: LeaseTime,
        name: Option<&str>,
    ) -> Option<Reply> {
        let mut opts = vec![
            DhcpOption::MessageType(kind),
            DhcpOption::ServerIdentifier(self.cfg.server),
            DhcpOption::AddressLeaseTime(lease.wire_secs()),
        ];
        if let LeaseTime::Finite(_) = lease {
            // RFC 2131 §4.4.5 defaults: T1 = 0.5, T2 = 0.875 of the lease (dnsmasq sends both).
            let secs = u64::from(lease.wire_secs());
            opts.push(DhcpOption::Renewal((secs / 2) as u32));
            opts.push(DhcpOption::Rebinding((secs * 7 / 8) as u32));
        }
        self.config_options(req, name, &mut opts);
        let ciaddr = req.ciaddr();
        let bytes = wire::encode_reply(req, self.cfg.server, ciaddr, ip, false, &opts)?;
        let to = if ciaddr != Ipv4Addr::UNSPECIFIED {
            Destination::Unicast(ciaddr)
        } else if req.broadcast_flag() {
            Destination::Broadcast
        } else {
            Destination::UnicastToHardware { ip, mac: req.mac }
        };
        Some(Reply {
            bytes,
            to,
            msg_type: kind,
        })
    }

    /// The network's parameters (RFC 2132 §3-§5), in dnsmasq's order. Subnet mask and broadcast
    /// address always go out (as dnsmasq); the rest only if the client listed them in option 55
    /// or sent no list. `name` is the host name to echo (option 12), if any.
    fn config_options(&self, req: &Request, name: Option<&str>, opts: &mut Vec<DhcpOption>) {
        opts.push(DhcpOption::SubnetMask(self.cfg.netmask()));
        opts.push(DhcpOption::BroadcastAddr(self.cfg.broadcast()));
        if let Some(router) = self.cfg.router.filter(|_| req.wants(3)) {
            opts.push(DhcpOption::Router(vec![router]));
        }
        if !self.cfg.dns_servers.is_empty() && req.wants(6) {
            opts.push(DhcpOption::DomainNameServer(self.cfg.dns_servers.clone()));
        }
        if let Some(domain) = self.cfg.domain.as_deref().filter(|_| req.wants(15)) {
            opts.push(wire::string_opt(
                OptionCode::DomainName,
                domain,
                req.nul_terminated,
            ));
        }
        if let Some(name) = name.filter(|_| req.wants(12)) {
            opts.push(wire::string_opt(
                OptionCode::Hostname,
                name,
                req.nul_terminated,
            ));
        }
        if let Some(mtu) = self.cfg.mtu.filter(|_| req.wants(26)) {
            opts.push(DhcpOption::InterfaceMtu(mtu));
        }
    }

    // ---- persistence hooks (see leasefile.rs) -------------------------------------------

    pub(crate) fn bound_records(
        &self,
    ) -> impl Iterator<
        Item = (
            Ipv4Addr,
            &MacAddr,
            Option<Instant>,
            Option<&str>,
            Option<&[u8]>,
        ),
    > {
        self.records.iter().filter_map(|(ip, rec)| match rec.state {
            State::Bound { expires } => Some((
                *ip,
                &rec.mac,
                expires,
                rec.hostname.as_deref(),
                rec.client_id.as_deref(),
            )),
            _ => None,
        })
    }

    /// Re-create a bound lease read back from the leases file. Refuses (returns the reason) a
    /// lease this configuration would not grant, or one clashing with a lease already restored.
    pub(crate) fn restore_lease(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        mac: MacAddr,
        expires: Option<Instant>,
        hostname: Option<String>,
        client_id: Option<Vec<u8>>,
    ) -> Result<(), &'static str> {
        let c = Client {
            mac,
            client_id: client_id.as_deref(),
        };
        if self.records.contains_key(&ip) {
            return Err("address already leased earlier in the file");
        }
        if self.find_bound(&c).is_some() {
            return Err("client already has a lease earlier in the file");
        }
        self.check_available(ip, &c, now).map_err(Refusal::text)?;
        let hostname = match self.static_for(mac).and_then(|h| h.name.clone()) {
            Some(n) => Some(n),
            None => hostname.filter(|n| {
                !self.cfg.hosts.iter().any(|h| {
                    h.name
                        .as_deref()
                        .is_some_and(|hn| hn.eq_ignore_ascii_case(n))
                })
            }),
        };
        self.records.insert(
            ip,
            Record {
                mac,
                client_id,
                hostname: hostname.clone(),
                state: State::Bound { expires },
            },
        );
        if let Some(at) = expires {
            self.schedule(at, ip, Due::Record);
        }
        self.prune_deadlines();
        self.events
            .push_back(LeaseEvent::Added { mac, ip, hostname });
        Ok(())
    }
}

/// FNV-1a, 64 bit: a stable, dependency-free hash for the scan's starting point.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> LeaseEngine {
        let mut cfg = Config::new(Ipv4Addr::new(10, 0, 0, 1), 24);
        cfg.ranges.push(crate::config::Range::new(
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 254),
        ));
        LeaseEngine::new(cfg).unwrap()
    }

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, n])
    }

    /// What `bind` does to a record on a renewal: a new expiry, a new heap entry.
    fn renew(e: &mut LeaseEngine, ip: Ipv4Addr, expires: Instant) {
        e.records.get_mut(&ip).unwrap().state = State::Bound {
            expires: Some(expires),
        };
        e.schedule(expires, ip, Due::Record);
        e.prune_deadlines();
    }

    #[test]
    fn a_client_renewing_in_a_loop_cannot_grow_the_heap() {
        let t0 = Instant::now();
        let mut e = engine();
        for n in 0..10u8 {
            let ip = Ipv4Addr::new(10, 0, 0, 10 + n);
            let exp = t0 + Duration::from_secs(3600 + u64::from(n));
            e.restore_lease(t0, ip, mac(n), Some(exp), None, None)
                .unwrap();
        }
        let ip = Ipv4Addr::new(10, 0, 0, 10);
        let mut max = 0;
        for i in 1..=100_000u64 {
            renew(
                &mut e,
                ip,
                t0 + Duration::from_secs(3600) + Duration::from_millis(i),
            );
            max = max.max(e.deadlines.len());
        }
        assert!(max <= 2 * 10 + DEADLINE_SLACK + 1, "heap grew to {max}");
        // The earliest is now the second lease (the first was pushed past it).
        assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_secs(3601)));
    }

    #[test]
    fn expiries_fire_in_deadline_order_and_stale_entries_are_skipped() {
        let t0 = Instant::now();
        let mut e = engine();
        // Addresses in reverse order of expiry: the events follow the deadlines.
        for n in 0..5u8 {
            let ip = Ipv4Addr::new(10, 0, 0, 50 - n);
            let exp = t0 + Duration::from_secs(100 + u64::from(n));
            e.restore_lease(t0, ip, mac(n), Some(exp), None, None)
                .unwrap();
        }
        while e.poll_event().is_some() {}
        // .50 (due at 100 s) renewed to 200 s: its old entry is stale.
        renew(
            &mut e,
            Ipv4Addr::new(10, 0, 0, 50),
            t0 + Duration::from_secs(200),
        );
        assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_secs(101)));
        e.handle_timeout(t0 + Duration::from_secs(150));
        let expired: Vec<Ipv4Addr> = std::iter::from_fn(|| e.poll_event())
            .map(|ev| match ev {
                LeaseEvent::Expired { ip, .. } => ip,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            expired,
            [49, 48, 47, 46].map(|d| Ipv4Addr::new(10, 0, 0, d))
        );
        assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_secs(200)));
        e.handle_timeout(t0 + Duration::from_secs(200));
        assert!(matches!(
            e.poll_event(),
            Some(LeaseEvent::Expired { ip, .. }) if ip == Ipv4Addr::new(10, 0, 0, 50)
        ));
        assert_eq!(e.poll_timeout(), None);
        assert!(e.deadlines.is_empty());
    }
}
