//! Fuzz targets for the virtual-network services: the DHCPv4 lease engine (`virtgate-dhcp`,
//! RFC 2131) and the DNS server (`virtgate-dns`, RFC 1035), each fed a script of datagrams and
//! clock steps.
//!
//! Invariants besides "no panic":
//! - DHCP: every reply decodes as a BOOTREPLY to the requesting transaction, fits what the
//!   client accepts (576-octet datagrams unless option 57 says more, RFC 2131 §2), and offers
//!   only addresses of the network; the set of bound leases always equals what the lease events
//!   said (Added/Renewed add, Released/Expired remove), no address is leased twice, and no
//!   lease holds the server's, the network's or the broadcast address.
//! - DNS: a reply to a client decodes, carries the client's id and is a response; over UDP it
//!   is at most 512 octets unless the query had EDNS (RFC 1035 §4.2.1, RFC 6891); queries go
//!   only to configured upstreams and decode as one-question queries; an answer is relayed
//!   only from the upstream the query went to and only to a client that asked (RFC 5452 §9.2);
//!   the outstanding table stays within its limit.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::op::{Message, MessageType};
use virtgate_dhcp::{
    Arrival, Config as DhcpConfig, LeaseEngine, LeaseEvent, MacAddr, Range, StaticHost,
};
use virtgate_dns::{
    Action, Client, Config as DnsConfig, DnsHost, DnsServer, Reservation, Transport,
};

use crate::input::{Input, ScriptWriter};

// ---------------------------------------------------------------------------------------------
// DHCP
// ---------------------------------------------------------------------------------------------

/// Script operations of [`dhcp_lease_engine`] (`op % 3`).
pub mod dhcp_op {
    /// Flags byte (bit 0: unicast to the server, bit 1: from a relay port 68 address) + u16
    /// length + bytes: a datagram on port 67.
    pub const PACKET: u8 = 0;
    /// u16 seconds: advance the clock, then `handle_timeout`.
    pub const ADVANCE: u8 = 1;
    /// Restart: the engine is rebuilt from its own leases file (as the daemon does).
    pub const RESTART: u8 = 2;
}

/// Builds scripts for [`dhcp_lease_engine`].
#[derive(Debug, Clone, Default)]
pub struct DhcpScript(ScriptWriter);

impl DhcpScript {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn packet(&mut self, unicast: bool, bytes: &[u8]) -> &mut Self {
        let b = &bytes[..bytes.len().min(usize::from(u16::MAX))];
        self.0.u8(dhcp_op::PACKET).u8(u8::from(unicast));
        self.0
            .u16(u16::try_from(b.len()).unwrap_or(u16::MAX))
            .raw(b);
        self
    }
    pub fn advance(&mut self, secs: u16) -> &mut Self {
        self.0.u8(dhcp_op::ADVANCE).u16(secs);
        self
    }
    pub fn restart(&mut self) -> &mut Self {
        self.0.u8(dhcp_op::RESTART);
        self
    }
    pub fn finish(&self) -> Vec<u8> {
        self.0.finish()
    }
}

/// The network [`dhcp_lease_engine`] serves: 192.168.122.1/24, leases from .115 (the address
/// the captured dhclient asks for) to .125 (small, so the pool runs out), a reservation for
/// 52:54:00:00:00:01 at .50.
pub fn dhcp_config() -> DhcpConfig {
    let mut cfg = DhcpConfig::new(Ipv4Addr::new(192, 168, 122, 1), 24);
    cfg.ranges.push(Range::new(
        Ipv4Addr::new(192, 168, 122, 115),
        Ipv4Addr::new(192, 168, 122, 125),
    ));
    cfg.hosts.push(StaticHost {
        mac: MacAddr([0x52, 0x54, 0, 0, 0, 1]),
        ip: Ipv4Addr::new(192, 168, 122, 50),
        name: Some("fixed".into()),
        lease: None,
    });
    cfg.domain = Some("example.lan".into());
    cfg
}

/// The lease engine driven by a [`DhcpScript`].
pub fn dhcp_lease_engine(data: &[u8]) {
    dhcp_outcome(data);
}

/// Runs a [`DhcpScript`] like [`dhcp_lease_engine`]; returns the number of replies sent and
/// the most leases bound at once.
pub fn dhcp_outcome(data: &[u8]) -> (usize, usize) {
    let mut replies = 0;
    let mut most = 0;
    let cfg = dhcp_config();
    let Ok(mut engine) = LeaseEngine::new(cfg.clone()) else {
        panic!("the fuzz configuration does not validate");
    };
    let mut input = Input::new(data);
    let t0 = Instant::now();
    let wall0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut now = t0;
    let mut bound: BTreeMap<Ipv4Addr, MacAddr> = BTreeMap::new();
    while let Some(op) = input.u8() {
        match op % 3 {
            dhcp_op::PACKET => {
                let (Some(flags), Some(len)) = (input.u8(), input.u16()) else {
                    break;
                };
                let bytes = input.up_to(usize::from(len));
                let from = if flags & 2 != 0 {
                    SocketAddrV4::new(Ipv4Addr::new(192, 168, 122, 7), 68)
                } else {
                    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)
                };
                let arrival = Arrival {
                    ifindex: Some(3),
                    from,
                    dst: Some(if flags & 1 != 0 {
                        cfg.server
                    } else {
                        Ipv4Addr::BROADCAST
                    }),
                };
                if let Some(reply) = engine.handle_packet(now, bytes, arrival) {
                    check_dhcp_reply(&cfg, bytes, &reply.bytes);
                    replies += 1;
                }
            }
            dhcp_op::ADVANCE => {
                let Some(s) = input.u16() else { break };
                now += Duration::from_secs(u64::from(s));
                engine.handle_timeout(now);
            }
            dhcp_op::RESTART => {
                let wall = wall0 + now.duration_since(t0);
                let file = engine.to_leases_file(now, wall);
                let (restored, _problems) =
                    match LeaseEngine::from_leases_file(cfg.clone(), &file, now, wall) {
                        Ok(r) => r,
                        Err(e) => panic!("our own leases file does not load: {e:?}\n{file}"),
                    };
                engine = restored;
                // The restored engine reports its leases as Added again.
                bound.clear();
            }
            _ => unreachable!("op is taken mod 3"),
        }
        while let Some(ev) = engine.poll_event() {
            match ev {
                LeaseEvent::Added { mac, ip, .. } | LeaseEvent::Renewed { mac, ip, .. } => {
                    bound.insert(ip, mac);
                }
                LeaseEvent::Released { ip, .. } | LeaseEvent::Expired { ip, .. } => {
                    bound.remove(&ip);
                }
            }
        }
        let wall = wall0 + now.duration_since(t0);
        let leases = engine.leases(now, wall);
        let listed: BTreeMap<Ipv4Addr, MacAddr> = leases.iter().map(|l| (l.ip, l.mac)).collect();
        assert_eq!(listed.len(), leases.len(), "an address leased twice");
        assert_eq!(listed, bound, "leases vs lease events");
        for ip in listed.keys() {
            assert!(in_network(&cfg, *ip), "lease {ip} outside the network");
            assert_ne!(*ip, cfg.server, "leased the server's own address");
        }
        most = most.max(listed.len());
    }
    (replies, most)
}

fn in_network(cfg: &DhcpConfig, ip: Ipv4Addr) -> bool {
    let mask = u32::MAX << (32 - u32::from(cfg.prefix_len));
    let (n, s) = (u32::from(ip), u32::from(cfg.server));
    n & mask == s & mask && n & !mask != 0 && n & !mask != !mask
}

/// The options of a DHCP message (after the 236-byte header and the magic cookie), walked by
/// hand (RFC 2132 §2): `None` if they are not well-formed TLVs ending in End (255).
fn dhcp_options(msg: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    if msg.get(236..240)? != [99, 130, 83, 99] {
        return None;
    }
    let mut out = Vec::new();
    let mut at = 240;
    loop {
        match *msg.get(at)? {
            0 => at += 1,
            255 => return Some(out),
            code => {
                let len = usize::from(*msg.get(at + 1)?);
                out.push((code, msg.get(at + 2..at + 2 + len)?));
                at += 2 + len;
            }
        }
    }
}

/// A reply of the engine, checked on its bytes (not through dhcproto, whose decoder has
/// debug assertions on option lengths that wire data can trip).
fn check_dhcp_reply(cfg: &DhcpConfig, request: &[u8], reply: &[u8]) {
    assert!(reply.len() >= 240, "reply shorter than a BOOTP header");
    assert_eq!(reply[0], 2, "reply is not a BOOTREPLY");
    assert_eq!(
        reply.get(4..8),
        request.get(4..8),
        "reply to another transaction"
    );
    assert_eq!(
        reply.get(28..34),
        request.get(28..34),
        "reply to another client"
    );
    let opts =
        dhcp_options(reply).unwrap_or_else(|| panic!("reply options malformed: {reply:02x?}"));
    assert!(
        opts.iter().any(|(c, v)| *c == 53 && v.len() == 1),
        "reply without a message type"
    );
    let max = dhcp_options(request)
        .and_then(|o| {
            o.iter().find_map(|(c, v)| match (*c, *v) {
                (57, [a, b]) => Some(u16::from_be_bytes([*a, *b])),
                _ => None,
            })
        })
        .unwrap_or(576)
        .max(576);
    assert!(
        reply.len() <= usize::from(max) - 28,
        "{}-byte reply, the client takes {}",
        reply.len(),
        usize::from(max) - 28
    );
    let yi = Ipv4Addr::new(reply[16], reply[17], reply[18], reply[19]);
    assert!(yi.is_unspecified() || in_network(cfg, yi), "offered {yi}");
    assert_ne!(yi, cfg.server, "offered the server's own address");
}

// ---------------------------------------------------------------------------------------------
// DNS
// ---------------------------------------------------------------------------------------------

/// Script operations of [`dns_server`] (`op % 4`).
pub mod dns_op {
    /// Flags byte (bit 0: TCP, bit 1: the second client) + u16 length + bytes: a message from
    /// a client.
    pub const QUERY: u8 = 0;
    /// Byte (which upstream address, mod 3; the third is not an upstream) + u16 length + bytes:
    /// a message from an upstream address.
    pub const UPSTREAM_RAW: u8 = 1;
    /// Index byte (which forwarded query, mod the count) + rcode byte + u16 length + bytes:
    /// the answer of the upstream it went to: the query with QR set, that rcode, and these
    /// bytes appended (answer records, if the count octets say so; the byte after rcode is
    /// the answer count).
    pub const UPSTREAM_ANSWER: u8 = 2;
    /// u16 milliseconds: advance the clock, then `handle_timeout`.
    pub const ADVANCE: u8 = 3;
}

/// Builds scripts for [`dns_server`].
#[derive(Debug, Clone, Default)]
pub struct DnsScript(ScriptWriter);

impl DnsScript {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn query(&mut self, tcp: bool, bytes: &[u8]) -> &mut Self {
        self.0.u8(dns_op::QUERY).u8(u8::from(tcp));
        self.0
            .u16(u16::try_from(bytes.len()).unwrap_or(u16::MAX))
            .raw(bytes);
        self
    }
    pub fn answer(&mut self, index: u8, rcode: u8, ancount: u8, records: &[u8]) -> &mut Self {
        self.0
            .u8(dns_op::UPSTREAM_ANSWER)
            .u8(index)
            .u8(rcode)
            .u8(ancount);
        self.0
            .u16(u16::try_from(records.len()).unwrap_or(u16::MAX))
            .raw(records);
        self
    }
    pub fn advance(&mut self, ms: u16) -> &mut Self {
        self.0.u8(dns_op::ADVANCE).u16(ms);
        self
    }
    pub fn finish(&self) -> Vec<u8> {
        self.0.finish()
    }
}

struct CountEntropy(u32);

impl virtgate_dns::Entropy for CountEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            // A fixed permutation of 0..=255 per byte: deterministic, ids still vary.
            self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (self.0 >> 16) as u8;
        }
    }
}

fn sa(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port)
}

/// The upstreams and clients of [`dns_server`].
pub const DNS_UPSTREAMS: [[u8; 4]; 2] = [[192, 0, 2, 53], [198, 51, 100, 53]];
const DNS_STRANGER: [u8; 4] = [203, 0, 113, 66];
const DNS_CLIENTS: [[u8; 4]; 2] = [[192, 168, 122, 7], [192, 168, 122, 8]];

/// The DNS server of the libvirt test network (domain example.lan, a `dns/host`, a
/// reservation, two upstreams), driven by a [`DnsScript`].
pub fn dns_server(data: &[u8]) {
    let cfg = DnsConfig {
        domain: Some("example.lan".into()),
        upstreams: DNS_UPSTREAMS.iter().map(|a| sa(*a, 53)).collect(),
        hosts: vec![DnsHost {
            ip: IpAddr::V4(Ipv4Addr::new(192, 168, 122, 10)),
            names: vec!["web".into(), "www".into()],
        }],
        reservations: vec![Reservation {
            name: "fixed".into(),
            ip: IpAddr::V4(Ipv4Addr::new(192, 168, 122, 50)),
        }],
        max_outstanding: 8,
        ..DnsConfig::default()
    };
    let max_outstanding = cfg.max_outstanding;
    let upstreams: BTreeSet<SocketAddr> = cfg.upstreams.iter().copied().collect();
    let mut server = match DnsServer::new(cfg, Box::new(CountEntropy(1))) {
        Ok(s) => s,
        Err(e) => panic!("the fuzz configuration does not validate: {e}"),
    };
    let mut input = Input::new(data);
    let mut now = Instant::now();
    // Forwarded queries: (upstream, bytes).
    let mut forwarded: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    // Queries clients sent: (client, id).
    let mut asked: BTreeSet<(SocketAddr, bool, u16)> = BTreeSet::new();
    while let Some(op) = input.u8() {
        let relayed = matches!(op % 4, dns_op::UPSTREAM_RAW | dns_op::UPSTREAM_ANSWER);
        let actions: Vec<Action> = match op % 4 {
            dns_op::QUERY => {
                let (Some(flags), Some(len)) = (input.u8(), input.u16()) else {
                    break;
                };
                let bytes = input.up_to(usize::from(len));
                let addr = sa(
                    DNS_CLIENTS[usize::from(flags >> 1 & 1)],
                    40000 + u16::from(flags >> 2),
                );
                let client = if flags & 1 != 0 {
                    Client::tcp(addr)
                } else {
                    Client::udp(addr)
                };
                if let Some(id) = bytes.get(..2) {
                    asked.insert((
                        addr,
                        client.transport == Transport::Tcp,
                        u16::from_be_bytes([id[0], id[1]]),
                    ));
                }
                let a = server.handle_query(now, bytes, client);
                if let Some(Action::Reply {
                    client: to,
                    bytes: reply,
                }) = &a
                {
                    assert_eq!(*to, client, "answered someone else");
                    check_dns_reply(bytes, reply, client.transport);
                }
                a.into_iter().collect()
            }
            dns_op::UPSTREAM_RAW => {
                let (Some(which), Some(len)) = (input.u8(), input.u16()) else {
                    break;
                };
                let bytes = input.up_to(usize::from(len));
                let from = match which % 3 {
                    2 => sa(DNS_STRANGER, 53),
                    i => sa(DNS_UPSTREAMS[usize::from(i)], 53),
                };
                let a = server.handle_upstream_response(now, bytes, from);
                if !upstreams.contains(&from) {
                    assert!(a.is_none(), "relayed an answer from a stranger");
                }
                a.into_iter().collect()
            }
            dns_op::UPSTREAM_ANSWER => {
                let (Some(i), Some(rcode), Some(ancount), Some(len)) =
                    (input.u8(), input.u8(), input.u8(), input.u16())
                else {
                    break;
                };
                let extra = input.up_to(usize::from(len));
                if forwarded.is_empty() {
                    Vec::new()
                } else {
                    let (up, q) = forwarded[usize::from(i) % forwarded.len()].clone();
                    let mut m = q;
                    if m.len() >= 12 {
                        m[2] |= 0x80; // QR
                        m[3] = (m[3] & 0xf0) | (rcode & 0x0f);
                        m[6..8].copy_from_slice(&u16::from(ancount).to_be_bytes());
                    }
                    m.extend_from_slice(extra);
                    server
                        .handle_upstream_response(now, &m, up)
                        .into_iter()
                        .collect()
                }
            }
            dns_op::ADVANCE => {
                let Some(ms) = input.u16() else { break };
                now += Duration::from_millis(u64::from(ms));
                server.handle_timeout(now)
            }
            _ => unreachable!("op is taken mod 4"),
        };
        for a in actions {
            match a {
                Action::Forward {
                    upstream, bytes, ..
                } => {
                    assert!(upstreams.contains(&upstream), "forwarded to {upstream}");
                    // The query is forwarded as the client wrote it (new id), so only its
                    // header is ours to check: a query with one question.
                    assert!(bytes.len() >= 12, "forwarded less than a header");
                    assert_eq!(bytes[2] & 0x80, 0, "forwarded a response");
                    assert_eq!(
                        &bytes[4..6],
                        &[0, 1],
                        "forwarded a query without one question"
                    );
                    forwarded.push((upstream, bytes));
                    if forwarded.len() > 64 {
                        forwarded.remove(0);
                    }
                }
                Action::Reply { client, bytes } => {
                    assert!(bytes.len() >= 12, "reply shorter than a header");
                    assert!(bytes[2] & 0x80 != 0, "reply is not a response");
                    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
                    assert!(
                        asked.contains(&(client.addr, client.transport == Transport::Tcp, id)),
                        "reply {id} to {client:?}, which never asked that"
                    );
                    // Our own answers (SERVFAIL after timeouts) must decode; an upstream's
                    // answer is relayed as it came (as dnsmasq does), checked only for id,
                    // server and question.
                    if !relayed {
                        if let Err(e) = Message::from_vec(&bytes) {
                            panic!("reply does not decode: {e}");
                        }
                    }
                }
            }
        }
        assert!(
            server.outstanding() <= max_outstanding,
            "outstanding table over its limit"
        );
    }
}

fn check_dns_reply(query: &[u8], reply: &[u8], transport: Transport) {
    let m = Message::from_vec(reply).unwrap_or_else(|e| panic!("reply does not decode: {e}"));
    assert_eq!(
        m.metadata.message_type,
        MessageType::Response,
        "reply is not a response"
    );
    assert_eq!(Some(&reply[..2]), query.get(..2), "reply with another id");
    if transport == Transport::Udp {
        let edns = Message::from_vec(query).ok().and_then(|q| q.edns);
        let limit = edns.map_or(512, |e| usize::from(e.max_payload()).max(512));
        assert!(
            reply.len() <= limit,
            "{}-byte UDP reply, limit {limit}",
            reply.len()
        );
    }
}

/// `LeaseEngine::from_leases_file` (dnsmasq's format, what a restart reads back) on arbitrary
/// text: what loads is a valid set of leases, and writing it out and reading it again gives the
/// same leases without complaint.
pub fn dhcp_leasefile(data: &[u8]) {
    let cfg = dhcp_config();
    let text = String::from_utf8_lossy(data);
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let Ok((engine, _problems)) = LeaseEngine::from_leases_file(cfg.clone(), &text, now, wall)
    else {
        panic!("the fuzz configuration does not validate");
    };
    let leases = engine.leases(now, wall);
    let ips: BTreeSet<Ipv4Addr> = leases.iter().map(|l| l.ip).collect();
    assert_eq!(ips.len(), leases.len(), "an address leased twice");
    for ip in &ips {
        assert!(in_network(&cfg, *ip), "lease {ip} outside the network");
        assert_ne!(*ip, cfg.server, "leased the server's own address");
    }
    let file = engine.to_leases_file(now, wall);
    let (again, problems) = match LeaseEngine::from_leases_file(cfg, &file, now, wall) {
        Ok(r) => r,
        Err(e) => panic!("config: {e:?}"),
    };
    assert!(
        problems.is_empty(),
        "our own file has problems: {problems:?}\n{file}"
    );
    let key = |v: &[virtgate_dhcp::LeaseInfo]| -> Vec<_> {
        v.iter()
            .map(|l| {
                (
                    l.ip,
                    l.mac,
                    l.hostname.clone(),
                    l.client_id.clone(),
                    l.expires.is_some(),
                )
            })
            .collect()
    };
    assert_eq!(
        key(&again.leases(now, wall)),
        key(&leases),
        "leases file round trip"
    );
}
