//! The load: `clients` DHCP clients, each with a MAC of its own, run DHCPDISCOVER → DHCPOFFER
//! → DHCPREQUEST → DHCPACK (RFC 2131 §3.1, §4.4.1) with at most `in_flight` exchanges open at a
//! time; each completed exchange is one lease. Afterwards every bound client sends a
//! DHCPRELEASE (RFC 2131 §4.4.6).
//!
//! Sans-IO like the project's protocol crates: replies come in through
//! [`Load::handle_reply`], datagrams to send leave through [`Load::poll_transmit`], and
//! retransmissions are due at [`Load::poll_timeout`] (time is passed in), so the tests run
//! whole loads against the lease engine in memory on virtual time.
//!
//! Retransmission (RFC 2131 §4.1 asks for 4 s doubling up to 64 s with jitter) uses a fixed,
//! short interval instead: a benchmark wants a lost packet to cost little and the same in every
//! run. A client whose exchange fails `attempts` times in a row (no answer, or a DHCPNAK) counts
//! as failed and frees its slot.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::MessageType;

use crate::frame::BROADCAST_MAC;
use crate::msg::{self, ClientId, ServerReply};

/// DHCP ports (RFC 2131 §4.1).
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// What the load does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadConfig {
    /// Number of distinct clients (MAC addresses), one lease each.
    pub clients: u32,
    /// Exchanges open at once (at least 1).
    pub in_flight: u32,
    /// The second octet of every client MAC: `02:TAG:i3:i2:i1:i0` for client `i` (locally
    /// administered, unicast).
    pub mac_tag: u8,
    /// Transaction ids are `xid_base + i`.
    pub xid_base: u32,
    /// Ask for broadcast replies (the BROADCAST flag).
    pub broadcast: bool,
    /// Send option 12 `load-i`.
    pub hostnames: bool,
    /// Time without an answer before a message is sent again.
    pub retransmit: Duration,
    /// Tries per client (DISCOVER or REQUEST sent, including retransmissions and restarts
    /// after a DHCPNAK) before it counts as failed.
    pub attempts: u32,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            clients: 1000,
            in_flight: 32,
            mac_tag: 0x4c,
            xid_base: 0x4c00_0000,
            broadcast: false,
            hostnames: true,
            retransmit: Duration::from_millis(500),
            attempts: 6,
        }
    }
}

impl LoadConfig {
    /// Client `i`'s MAC address.
    pub fn mac(&self, i: u32) -> [u8; 6] {
        let [a, b, c, d] = i.to_be_bytes();
        [0x02, self.mac_tag, a, b, c, d]
    }

    fn id(&self, i: u32) -> ClientId {
        ClientId {
            xid: self.xid_base.wrapping_add(i),
            mac: self.mac(i),
            hostname: self.hostnames.then(|| format!("load-{i}")),
            broadcast: self.broadcast,
        }
    }
}

/// One datagram to send: the UDP payload and where it goes, at the link layer too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub client: u32,
    pub msg_type: MessageType,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Selecting,
    Requesting {
        offered: Ipv4Addr,
        server: Ipv4Addr,
        server_mac: [u8; 6],
    },
    Bound {
        ip: Ipv4Addr,
        server: Ipv4Addr,
        server_mac: [u8; 6],
    },
    Failed,
    Released,
}

#[derive(Debug, Clone, Copy)]
struct Client {
    state: State,
    /// First DISCOVER of the exchange that is open now.
    started: Option<Instant>,
    /// Number of the last message sent; a timer entry is current only if it names it (0: none
    /// waits for an answer).
    sent: u32,
    tries: u32,
}

/// Counters and timings of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub clients: u32,
    /// Completed exchanges (DHCPACK received).
    pub leased: u32,
    /// Clients that gave up.
    pub failed: u32,
    pub naks: u32,
    /// DISCOVERs and REQUESTs sent again after a timeout.
    pub retransmits: u32,
    /// Replies that matched no open exchange (a late OFFER, a duplicate ACK), or did not parse.
    pub stray: u32,
    /// DHCPRELEASEs sent.
    pub released: u32,
    /// From the first DISCOVER to the last DHCPACK.
    pub elapsed: Duration,
    /// DISCOVER-to-ACK time of each lease, sorted.
    pub latencies: Vec<Duration>,
}

impl Report {
    /// Completed leases per second of [`Report::elapsed`].
    pub fn leases_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            f64::from(self.leased) / s
        } else {
            0.0
        }
    }

    /// The `p`-th percentile (0..=100) of lease latency, nearest rank.
    pub fn latency_percentile(&self, p: u32) -> Option<Duration> {
        let n = self.latencies.len();
        if n == 0 {
            return None;
        }
        let rank = (usize::try_from(p.min(100)).unwrap_or(100) * n).div_ceil(100);
        self.latencies.get(rank.saturating_sub(1)).copied()
    }
}

/// The load generator.
#[derive(Debug)]
pub struct Load {
    cfg: LoadConfig,
    clients: Vec<Client>,
    /// Next client to start.
    next: u32,
    open: u32,
    /// Clients whose exchange finished (bound or failed).
    finished: u32,
    queue: VecDeque<Transmit>,
    /// (deadline, client, message number) in sending order; deadlines are the sending time
    /// plus a constant, so the front is always the earliest.
    timers: VecDeque<(Instant, u32, u32)>,
    /// Messages sent so far (numbers the timer entries).
    sent: u32,
    first_send: Option<Instant>,
    last_ack: Option<Instant>,
    report: Report,
    releasing: bool,
    release_next: u32,
}

impl Load {
    pub fn new(mut cfg: LoadConfig) -> Self {
        cfg.in_flight = cfg.in_flight.max(1);
        cfg.attempts = cfg.attempts.max(1);
        let n = usize::try_from(cfg.clients).unwrap_or(0);
        Load {
            clients: vec![
                Client {
                    state: State::Idle,
                    started: None,
                    sent: 0,
                    tries: 0,
                };
                n
            ],
            report: Report {
                clients: cfg.clients,
                ..Report::default()
            },
            cfg,
            next: 0,
            open: 0,
            finished: 0,
            queue: VecDeque::new(),
            timers: VecDeque::new(),
            sent: 0,
            first_send: None,
            last_ack: None,
            releasing: false,
            release_next: 0,
        }
    }

    pub fn config(&self) -> &LoadConfig {
        &self.cfg
    }

    /// Every client is bound or has given up.
    pub fn leasing_done(&self) -> bool {
        self.finished >= self.cfg.clients
    }

    /// After [`Load::start_release`]: every bound client's DHCPRELEASE has been handed out.
    pub fn release_done(&self) -> bool {
        self.releasing && self.release_next >= self.cfg.clients && self.queue.is_empty()
    }

    /// The next datagram to send, starting new exchanges while fewer than `in_flight` are open.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(t) = self.queue.pop_front() {
            return Some(t);
        }
        if self.releasing {
            return self.next_release();
        }
        if self.open < self.cfg.in_flight && self.next < self.cfg.clients {
            let i = self.next;
            self.next += 1;
            self.open += 1;
            if let Some(c) = self.client_mut(i) {
                c.state = State::Selecting;
                c.started = Some(now);
                c.tries = 0;
            }
            self.send_discover(now, i);
            return self.queue.pop_front();
        }
        None
    }

    /// When [`Load::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.front().map(|&(t, _, _)| t)
    }

    /// Retransmits what has waited [`LoadConfig::retransmit`] without an answer.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, i, number)) = self.timers.front() {
            if deadline > now {
                break;
            }
            self.timers.pop_front();
            let Some(c) = self.client(i) else { continue };
            if c.sent != number {
                continue; // answered, or sent again since
            }
            // What the unanswered message was: a DISCOVER, or a REQUEST for (offer, server).
            let request = match c.state {
                State::Selecting => None,
                State::Requesting {
                    offered, server, ..
                } => Some((offered, server)),
                _ => continue,
            };
            if !self.spend_try(i) {
                continue;
            }
            self.report.retransmits += 1;
            match request {
                None => self.send_discover(now, i),
                Some((offered, server)) => self.send_request(now, i, offered, server),
            }
        }
    }

    /// A datagram from a server: `src_mac` is the frame's source (where DHCPRELEASE will go).
    pub fn handle_reply(&mut self, now: Instant, payload: &[u8], src_mac: [u8; 6]) {
        let Ok(r) = msg::parse_reply(payload) else {
            self.report.stray += 1;
            return;
        };
        let Some(i) = self.client_of(&r) else {
            self.report.stray += 1;
            return;
        };
        let Some(c) = self.client(i) else { return };
        match (c.state, r.msg_type) {
            (State::Selecting, MessageType::Offer) => {
                let Some(server) = r.server_id else {
                    // RFC 2131 §4.3.1: an OFFER MUST carry option 54; without it there is no
                    // REQUEST to write. Wait for another offer or the retransmission.
                    self.report.stray += 1;
                    return;
                };
                if let Some(c) = self.client_mut(i) {
                    c.state = State::Requesting {
                        offered: r.yiaddr,
                        server,
                        server_mac: src_mac,
                    };
                    c.tries = 0;
                }
                self.send_request(now, i, r.yiaddr, server);
            }
            (
                State::Requesting {
                    offered,
                    server,
                    server_mac,
                },
                MessageType::Ack,
            ) if r.yiaddr == offered => {
                let started = c.started;
                if let Some(c) = self.client_mut(i) {
                    c.state = State::Bound {
                        ip: offered,
                        server,
                        server_mac,
                    };
                    c.sent = 0;
                }
                self.report.leased += 1;
                if let Some(s) = started {
                    self.report.latencies.push(now.saturating_duration_since(s));
                }
                self.last_ack = Some(now);
                self.close(i);
            }
            (State::Requesting { .. }, MessageType::Nak) => {
                // RFC 2131 §3.1 step 5: on a DHCPNAK the client starts again with DISCOVER.
                self.report.naks += 1;
                if self.spend_try(i) {
                    if let Some(c) = self.client_mut(i) {
                        c.state = State::Selecting;
                    }
                    self.send_discover(now, i);
                }
            }
            _ => self.report.stray += 1,
        }
    }

    /// Stops starting exchanges and queues a DHCPRELEASE for every bound client (open exchanges
    /// are abandoned).
    pub fn start_release(&mut self) {
        self.releasing = true;
        self.timers.clear();
    }

    /// The counters so far (latencies sorted).
    pub fn report(&self) -> Report {
        let mut r = self.report.clone();
        r.elapsed = match (self.first_send, self.last_ack) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        };
        r.latencies.sort_unstable();
        r
    }

    // ------------------------------------------------------------------ internals

    fn client(&self, i: u32) -> Option<Client> {
        self.clients.get(usize::try_from(i).ok()?).copied()
    }

    fn client_mut(&mut self, i: u32) -> Option<&mut Client> {
        self.clients.get_mut(usize::try_from(i).ok()?)
    }

    /// The client a reply is for: its xid names the client, and the `chaddr` must agree.
    fn client_of(&self, r: &ServerReply) -> Option<u32> {
        let i = r.xid.wrapping_sub(self.cfg.xid_base);
        (i < self.cfg.clients && self.cfg.mac(i) == r.chaddr).then_some(i)
    }

    /// Counts one more try; false (and the client failed) once they are used up.
    fn spend_try(&mut self, i: u32) -> bool {
        let attempts = self.cfg.attempts;
        let Some(c) = self.client_mut(i) else {
            return false;
        };
        if c.tries >= attempts {
            c.state = State::Failed;
            c.sent = 0;
            self.report.failed += 1;
            self.close(i);
            return false;
        }
        true
    }

    fn close(&mut self, _i: u32) {
        self.open = self.open.saturating_sub(1);
        self.finished += 1;
    }

    fn mark_sent(&mut self, now: Instant, i: u32) {
        // Numbers start at 1 and wrap past 0 (4 billion messages before a repeat).
        self.sent = self.sent.wrapping_add(1).max(1);
        let number = self.sent;
        if let Some(c) = self.client_mut(i) {
            c.sent = number;
            c.tries += 1;
        }
        self.first_send.get_or_insert(now);
        self.timers
            .push_back((now + self.cfg.retransmit, i, number));
    }

    fn send_discover(&mut self, now: Instant, i: u32) {
        let id = self.cfg.id(i);
        self.queue.push_back(Transmit {
            client: i,
            msg_type: MessageType::Discover,
            src_mac: id.mac,
            dst_mac: BROADCAST_MAC,
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            payload: msg::discover(&id),
        });
        self.mark_sent(now, i);
    }

    /// RFC 2131 §4.4.1: the SELECTING client's REQUEST is broadcast, from 0.0.0.0.
    fn send_request(&mut self, now: Instant, i: u32, offered: Ipv4Addr, server: Ipv4Addr) {
        let id = self.cfg.id(i);
        self.queue.push_back(Transmit {
            client: i,
            msg_type: MessageType::Request,
            src_mac: id.mac,
            dst_mac: BROADCAST_MAC,
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            payload: msg::request(&id, offered, server),
        });
        self.mark_sent(now, i);
    }

    fn next_release(&mut self) -> Option<Transmit> {
        while self.release_next < self.cfg.clients {
            let i = self.release_next;
            self.release_next += 1;
            let Some(c) = self.client(i) else { continue };
            let State::Bound {
                ip,
                server,
                server_mac,
            } = c.state
            else {
                continue;
            };
            if let Some(c) = self.client_mut(i) {
                c.state = State::Released;
            }
            self.report.released += 1;
            let id = self.cfg.id(i);
            return Some(Transmit {
                client: i,
                msg_type: MessageType::Release,
                src_mac: id.mac,
                dst_mac: server_mac,
                src_ip: ip,
                dst_ip: server,
                payload: msg::release(&id, ip, server),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::SocketAddrV4;
    use std::time::SystemTime;
    use virtgate_dhcp::{Arrival, Config, LeaseEngine, Range};

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const SERVER_MAC: [u8; 6] = [0x52, 0x54, 0, 0x0a, 0xcd, 0x21];

    fn engine(range_end: Ipv4Addr) -> LeaseEngine {
        let mut cfg = Config::new(SERVER, 16);
        cfg.ranges
            .push(Range::new(Ipv4Addr::new(10, 77, 1, 0), range_end));
        LeaseEngine::new(cfg).unwrap()
    }

    fn arrival(t: &Transmit) -> Arrival {
        let mut a = Arrival::new(SocketAddrV4::new(t.src_ip, CLIENT_PORT));
        a.dst = Some(t.dst_ip);
        a
    }

    /// Runs the load against the engine in memory; `drop` decides which server replies are
    /// lost (by their running number). Each wake-up sends everything, then answers, then
    /// jumps to the next timer when nothing is left to do. Returns the final time.
    fn run(
        load: &mut Load,
        server: &mut LeaseEngine,
        t0: Instant,
        mut drop: impl FnMut(u64) -> bool,
    ) -> Instant {
        let mut now = t0;
        let mut replies = 0u64;
        for _ in 0..100_000 {
            load.handle_timeout(now);
            let mut sent = Vec::new();
            while let Some(t) = load.poll_transmit(now) {
                sent.push(t);
            }
            // One millisecond of "network" per round.
            now += Duration::from_millis(1);
            for t in &sent {
                if let Some(r) = server.handle_packet(now, &t.payload, arrival(t)) {
                    replies += 1;
                    if !drop(replies) {
                        load.handle_reply(now, &r.bytes, SERVER_MAC);
                    }
                }
            }
            if load.leasing_done() {
                return now;
            }
            if sent.is_empty() {
                if let Some(t) = load.poll_timeout() {
                    now = now.max(t);
                }
            }
        }
        panic!("load did not finish");
    }

    #[test]
    fn every_client_gets_a_distinct_lease_and_releases_it() {
        let cfg = LoadConfig {
            clients: 200,
            in_flight: 16,
            ..LoadConfig::default()
        };
        let mut load = Load::new(cfg.clone());
        let mut server = engine(Ipv4Addr::new(10, 77, 254, 254));
        let t0 = Instant::now();
        let end = run(&mut load, &mut server, t0, |_| false);
        let r = load.report();
        assert_eq!((r.leased, r.failed, r.naks, r.retransmits), (200, 0, 0, 0));
        assert_eq!(r.latencies.len(), 200);
        // Each DORA takes two rounds of 1 ms.
        assert_eq!(r.latency_percentile(50), Some(Duration::from_millis(2)));
        // 16 at a time, 2 ms per window: 200 leases take 13 windows.
        assert_eq!(r.elapsed, Duration::from_millis(26));
        assert!((r.leases_per_sec() - 200.0 / 0.026).abs() < 1e-6);
        let leases = server.leases(end, SystemTime::now());
        assert_eq!(leases.len(), 200);
        let ips: HashSet<_> = leases.iter().map(|l| l.ip).collect();
        assert_eq!(ips.len(), 200);
        let macs: HashSet<_> = leases.iter().map(|l| l.mac.0).collect();
        assert!(macs.contains(&cfg.mac(0)) && macs.contains(&cfg.mac(199)));
        assert!(leases
            .iter()
            .any(|l| l.hostname.as_deref() == Some("load-7")));

        load.start_release();
        let mut n = 0;
        while let Some(t) = load.poll_transmit(end) {
            assert_eq!(t.msg_type, MessageType::Release);
            assert_eq!((t.dst_mac, t.dst_ip), (SERVER_MAC, SERVER));
            assert_ne!(t.src_ip, Ipv4Addr::UNSPECIFIED);
            assert!(server.handle_packet(end, &t.payload, arrival(&t)).is_none());
            n += 1;
        }
        assert!(load.release_done());
        assert_eq!((n, load.report().released), (200, 200));
        assert!(server.leases(end, SystemTime::now()).is_empty());
    }

    #[test]
    fn in_flight_is_bounded() {
        let mut load = Load::new(LoadConfig {
            clients: 50,
            in_flight: 4,
            ..LoadConfig::default()
        });
        let now = Instant::now();
        let mut first = Vec::new();
        while let Some(t) = load.poll_transmit(now) {
            first.push(t);
        }
        assert_eq!(first.len(), 4);
        assert!(first.iter().all(|t| t.msg_type == MessageType::Discover));
        assert_eq!(
            first.iter().map(|t| t.client).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert_eq!(load.poll_timeout(), Some(now + Duration::from_millis(500)));
    }

    #[test]
    fn lost_replies_are_retransmitted() {
        let mut load = Load::new(LoadConfig {
            clients: 30,
            in_flight: 8,
            ..LoadConfig::default()
        });
        let mut server = engine(Ipv4Addr::new(10, 77, 254, 254));
        // Every 7th reply is lost (OFFERs and ACKs alike).
        run(&mut load, &mut server, Instant::now(), |n| n % 7 == 0);
        let r = load.report();
        assert_eq!((r.leased, r.failed), (30, 0));
        assert!(r.retransmits > 0);
        // A lease that needed a retransmission took at least one interval.
        assert!(r.latencies.last().unwrap() >= &Duration::from_millis(500));
        assert_eq!(server.leases(Instant::now(), SystemTime::now()).len(), 30);
    }

    #[test]
    fn silence_fails_each_client_after_its_attempts() {
        let mut load = Load::new(LoadConfig {
            clients: 5,
            in_flight: 2,
            attempts: 3,
            ..LoadConfig::default()
        });
        let mut server = engine(Ipv4Addr::new(10, 77, 254, 254));
        let t0 = Instant::now();
        let end = run(&mut load, &mut server, t0, |_| true);
        let r = load.report();
        assert_eq!((r.leased, r.failed, r.retransmits), (0, 5, 10));
        assert_eq!(r.elapsed, Duration::ZERO);
        assert_eq!(r.leases_per_sec(), 0.0);
        // Three clients in turn, two at a time, 3 tries of 500 ms each.
        assert!(end - t0 >= Duration::from_millis(4500));
        load.start_release();
        assert_eq!(load.poll_transmit(end), None);
        assert_eq!(load.report().released, 0);
    }

    #[test]
    fn exhausted_range_counts_as_failures() {
        // Ten addresses for twelve clients: two never get an offer.
        let mut load = Load::new(LoadConfig {
            clients: 12,
            in_flight: 12,
            attempts: 2,
            ..LoadConfig::default()
        });
        let mut server = engine(Ipv4Addr::new(10, 77, 1, 9));
        run(&mut load, &mut server, Instant::now(), |_| false);
        let r = load.report();
        assert_eq!((r.leased, r.failed), (10, 2));
    }

    fn reply(load: &Load, i: u32, t: MessageType, yiaddr: Ipv4Addr) -> Vec<u8> {
        use dhcproto::v4::{DhcpOption, Message, Opcode};
        use dhcproto::Encodable;
        let mut m = Message::new_with_id(
            load.cfg.xid_base.wrapping_add(i),
            Ipv4Addr::UNSPECIFIED,
            yiaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &load.cfg.mac(i),
        );
        m.set_opcode(Opcode::BootReply);
        m.opts_mut().insert(DhcpOption::MessageType(t));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        m.to_vec().unwrap()
    }

    #[test]
    fn nak_restarts_with_discover_and_strays_are_counted() {
        let mut load = Load::new(LoadConfig {
            clients: 1,
            in_flight: 1,
            ..LoadConfig::default()
        });
        let now = Instant::now();
        assert_eq!(
            load.poll_transmit(now).unwrap().msg_type,
            MessageType::Discover
        );
        let a = Ipv4Addr::new(10, 77, 1, 5);
        // An ACK before any OFFER is stray; so is junk and a reply for another MAC.
        load.handle_reply(now, &reply(&load, 0, MessageType::Ack, a), SERVER_MAC);
        load.handle_reply(now, b"junk", SERVER_MAC);
        let mut other = reply(&load, 0, MessageType::Offer, a);
        other[33] ^= 1; // chaddr's last octet
        load.handle_reply(now, &other, SERVER_MAC);
        assert_eq!(load.report().stray, 3);
        assert_eq!(load.poll_transmit(now), None);

        load.handle_reply(now, &reply(&load, 0, MessageType::Offer, a), SERVER_MAC);
        let req = load.poll_transmit(now).unwrap();
        assert_eq!(req.msg_type, MessageType::Request);
        // A second OFFER while requesting is stray, not a second REQUEST.
        load.handle_reply(now, &reply(&load, 0, MessageType::Offer, a), SERVER_MAC);
        assert_eq!(load.poll_transmit(now), None);
        // An ACK for another address than the one requested does not bind.
        let b = Ipv4Addr::new(10, 77, 1, 6);
        load.handle_reply(now, &reply(&load, 0, MessageType::Ack, b), SERVER_MAC);
        assert_eq!(load.report().leased, 0);
        load.handle_reply(now, &reply(&load, 0, MessageType::Nak, a), SERVER_MAC);
        assert_eq!(
            load.poll_transmit(now).unwrap().msg_type,
            MessageType::Discover
        );
        let r = load.report();
        assert_eq!((r.naks, r.stray, r.leased), (1, 5, 0));
        // The NAKed REQUEST's timer is stale (the new DISCOVER went out at the same instant):
        // at the deadline only the DISCOVER is sent again.
        let t1 = now + Duration::from_millis(500);
        load.handle_timeout(t1);
        assert_eq!(
            load.poll_transmit(t1).unwrap().msg_type,
            MessageType::Discover
        );
        assert_eq!(load.poll_transmit(t1), None);
        assert_eq!(load.report().retransmits, 1);
        load.handle_reply(t1, &reply(&load, 0, MessageType::Offer, b), SERVER_MAC);
        load.poll_transmit(t1).unwrap();
        let t2 = t1 + Duration::from_millis(3);
        load.handle_reply(t2, &reply(&load, 0, MessageType::Ack, b), SERVER_MAC);
        let r = load.report();
        assert_eq!((r.leased, r.elapsed), (1, Duration::from_millis(503)));
        assert_eq!(r.latencies, [Duration::from_millis(503)]);
        assert!(load.leasing_done());
        // Timers of a bound client do nothing.
        assert_eq!(load.poll_timeout(), Some(t1 + Duration::from_millis(500)));
        load.handle_timeout(t1 + Duration::from_secs(10));
        assert_eq!(load.poll_transmit(t2), None);
        assert_eq!(load.poll_timeout(), None);
        assert_eq!(load.report().retransmits, 1);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let r = Report {
            latencies: (1..=10).map(Duration::from_millis).collect(),
            leased: 10,
            elapsed: Duration::from_millis(500),
            ..Report::default()
        };
        assert_eq!(r.latency_percentile(50), Some(Duration::from_millis(5)));
        assert_eq!(r.latency_percentile(99), Some(Duration::from_millis(10)));
        assert_eq!(r.latency_percentile(0), Some(Duration::from_millis(1)));
        assert_eq!(r.leases_per_sec(), 20.0);
        assert_eq!(Report::default().latency_percentile(50), None);
    }
}
