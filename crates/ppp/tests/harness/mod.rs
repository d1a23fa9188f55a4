//! Test harness: two `Session`s (server and client) shuttling frames in memory on virtual
//! time, in the style of quinn's `Pair`. Time jumps to the earliest `poll_timeout` whenever
//! nothing is in flight. Frames can be dropped (the first N control frames of either side,
//! or by a predicate), events are answered from a secrets table and an address.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use virtgate_ppp::auth::Secret;
use virtgate_ppp::frame::{ControlPacket, FrameHeader, Protocol};
use virtgate_ppp::{Decap, Entropy, Role, Session, SessionConfig, SessionEvent};

/// xorshift64*: deterministic "randomness" for tests.
pub struct Seeded(pub u64);

impl Entropy for Seeded {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

/// Serves scripted byte chunks first (each `fill` must ask for exactly the next chunk's
/// length), then falls back to a seeded generator.
pub struct Scripted {
    pub chunks: VecDeque<Vec<u8>>,
    pub rest: Seeded,
}

impl Entropy for Scripted {
    fn fill(&mut self, buf: &mut [u8]) {
        match self.chunks.pop_front() {
            Some(c) => {
                assert_eq!(
                    c.len(),
                    buf.len(),
                    "scripted entropy: unexpected request size"
                );
                buf.copy_from_slice(&c);
            }
            None => self.rest.fill(buf),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// A frame as it crossed the wire (or was dropped).
#[derive(Debug, Clone)]
pub struct Sent {
    pub from: Side,
    pub at: Duration,
    pub bytes: Vec<u8>,
    pub dropped: bool,
    /// What the receiver made of it.
    pub result: Option<Decap>,
}

impl Sent {
    pub fn protocol(&self) -> Protocol {
        FrameHeader::parse(&self.bytes).unwrap().protocol
    }

    /// (code, id, data) of a control frame.
    pub fn control(&self) -> (u8, u8, Vec<u8>) {
        let h = FrameHeader::parse(&self.bytes).unwrap();
        let p = ControlPacket::parse(&self.bytes[h.len..]).unwrap();
        (p.code.number(), p.id, p.data.to_vec())
    }
}

/// Picks frames to drop.
pub type DropFn = Box<dyn FnMut(&Sent) -> bool>;

/// Decides a SecretRequest elsewhere (as RADIUS does) instead of `secrets`.
pub type VerdictFn =
    Box<dyn FnMut(virtgate_ppp::auth::PeerCredentials) -> virtgate_ppp::auth::ExternalVerdict>;

pub struct Pair {
    pub t0: Instant,
    pub now: Instant,
    pub server: Session,
    pub client: Session,
    /// user → password for SecretRequest.
    pub secrets: HashMap<String, Secret>,
    /// What AddressRequest is answered with.
    pub pool: Option<Ipv4Addr>,
    /// Drop the first N control frames sent by each side.
    pub drop_server_first: usize,
    pub drop_client_first: usize,
    /// Drop every frame from this side (a silent peer).
    pub mute: Option<Side>,
    /// Drop frames this predicate picks.
    pub drop_if: Option<DropFn>,
    /// When set, SecretRequests get an external verdict from it.
    pub verdict: Option<VerdictFn>,
    pub log: Vec<Sent>,
    pub server_events: Vec<SessionEvent>,
    pub client_events: Vec<SessionEvent>,
    server_sent: usize,
    client_sent: usize,
}

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 100);

impl Pair {
    pub fn new(server: SessionConfig, client: SessionConfig) -> Pair {
        let t0 = Instant::now();
        let mut secrets = HashMap::new();
        secrets.insert("user1".to_string(), "password1".into());
        Pair {
            t0,
            now: t0,
            server: Session::new(t0, server, Box::new(Seeded(0x1234_5678_9abc_def1))),
            client: Session::new(t0, client, Box::new(Seeded(0x0fed_cba9_8765_4321))),
            secrets,
            pool: Some(CLIENT_IP),
            drop_server_first: 0,
            drop_client_first: 0,
            mute: None,
            drop_if: None,
            verdict: None,
            log: Vec::new(),
            server_events: Vec::new(),
            client_events: Vec::new(),
            server_sent: 0,
            client_sent: 0,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    pub fn open(&mut self) {
        self.server.open(self.now);
        self.client.open(self.now);
    }

    /// Moves frames and answers events until nothing is in flight. Returns whether anything
    /// happened.
    pub fn step(&mut self) -> bool {
        let mut any = false;
        loop {
            let mut progress = false;
            while let Some(f) = self.server.poll_transmit() {
                progress = true;
                self.deliver(Side::Server, f);
            }
            while let Some(f) = self.client.poll_transmit() {
                progress = true;
                self.deliver(Side::Client, f);
            }
            while let Some(e) = self.server.poll_event() {
                progress = true;
                match &e {
                    SessionEvent::SecretRequest { .. } if self.verdict.is_some() => {
                        let creds = self
                            .server
                            .pending_credentials()
                            .expect("credentials while a secret is asked for");
                        let v = (self.verdict.as_mut().expect("checked"))(creds);
                        self.server.provide_verdict(self.now, v);
                    }
                    SessionEvent::SecretRequest { peer_name } => {
                        let s = self.secrets.get(peer_name).cloned();
                        self.server.provide_secret(self.now, s);
                    }
                    SessionEvent::AddressRequest { .. } => {
                        self.server.assign_address(self.now, self.pool);
                    }
                    _ => {}
                }
                self.server_events.push(e);
            }
            while let Some(e) = self.client.poll_event() {
                progress = true;
                self.client_events.push(e);
            }
            if !progress {
                return any;
            }
            any = true;
        }
    }

    fn deliver(&mut self, from: Side, frame: Vec<u8>) {
        let n = match from {
            Side::Server => {
                self.server_sent += 1;
                self.server_sent
            }
            Side::Client => {
                self.client_sent += 1;
                self.client_sent
            }
        };
        let limit = match from {
            Side::Server => self.drop_server_first,
            Side::Client => self.drop_client_first,
        };
        let mut sent = Sent {
            from,
            at: self.elapsed(),
            bytes: frame.clone(),
            dropped: n <= limit || self.mute == Some(from),
            result: None,
        };
        if let Some(pred) = &mut self.drop_if {
            if pred(&sent) {
                sent.dropped = true;
            }
        }
        let dropped = sent.dropped;
        self.log.push(sent);
        if dropped {
            return;
        }
        let mut buf = frame;
        let len = buf.len();
        let to = match from {
            Side::Server => &mut self.client,
            Side::Client => &mut self.server,
        };
        let r = to.decapsulate(self.now, &mut buf, 0, len);
        // Control frames are consumed, or dropped when they arrive in the wrong phase or
        // after the link died; never taken for data.
        assert!(
            !matches!(r, Decap::Ip { .. }),
            "control frame taken for data: {buf:02x?}"
        );
        if let Some(last) = self.log.last_mut() {
            last.result = Some(r);
        }
    }

    /// Runs until `done` holds or `limit` of virtual time passed; returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Pair) -> bool) -> bool {
        loop {
            self.step();
            if done(self) {
                return true;
            }
            let next = [self.server.poll_timeout(), self.client.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next else {
                return false;
            };
            if next - self.t0 > limit {
                return false;
            }
            if next > self.now {
                self.now = next;
            }
            self.server.handle_timeout(self.now);
            self.client.handle_timeout(self.now);
        }
    }

    pub fn both_up(&self) -> bool {
        self.server.is_up() && self.client.is_up()
    }

    pub fn both_down(&self) -> bool {
        has_down(&self.server_events) && has_down(&self.client_events)
    }

    /// Dials up; panics with the log if the link does not come up within a minute.
    pub fn connect(&mut self) {
        self.open();
        if !self.run_until(Duration::from_secs(60), |p| p.both_up()) {
            panic!(
                "link did not come up\nserver: {:?}\nclient: {:?}\nserver events: {:?}\nclient events: {:?}",
                self.server, self.client, self.server_events, self.client_events
            );
        }
    }

    /// Sends an IPv4 packet from one side and returns what the other side decapsulated.
    pub fn send_ip(&mut self, from: Side, packet: &[u8]) -> Decap {
        let (tx, rx) = match from {
            Side::Server => (&mut self.server, &mut self.client),
            Side::Client => (&mut self.client, &mut self.server),
        };
        let mut buf = vec![0u8; Session::HEADROOM + packet.len()];
        buf[Session::HEADROOM..].copy_from_slice(packet);
        let (s, l) = tx
            .encapsulate(&mut buf, Session::HEADROOM, packet.len())
            .expect("encapsulate");
        let mut frame = buf[s..s + l].to_vec();
        rx.decapsulate(self.now, &mut frame, 0, l)
    }

    /// Sends `packet` and checks it arrives intact.
    pub fn roundtrip_ip(&mut self, from: Side, packet: &[u8]) {
        let (tx, rx) = match from {
            Side::Server => (&mut self.server, &mut self.client),
            Side::Client => (&mut self.client, &mut self.server),
        };
        let mut buf = vec![0u8; Session::HEADROOM + packet.len()];
        buf[Session::HEADROOM..].copy_from_slice(packet);
        let (s, l) = tx
            .encapsulate(&mut buf, Session::HEADROOM, packet.len())
            .expect("encapsulate");
        let mut frame = buf[s..s + l].to_vec();
        match rx.decapsulate(self.now, &mut frame, 0, l) {
            Decap::Ip { start, len } => assert_eq!(&frame[start..start + len], packet),
            other => panic!("{from:?} → peer: {other:?}"),
        }
    }
}

/// `n` IPv4 packets each way through an up pair, each checked on arrival: client → server of
/// `up_base + i * 37 % 1200` payload octets, server → client of `1 + i * 53 % 1400` with tag
/// `down_tag ^ i`.
pub fn ip_both_ways_with(p: &mut Pair, n: usize, up_base: usize, down_tag: u8) {
    let far = Ipv4Addr::new(8, 8, 8, 8);
    for i in 0..n {
        let up = ipv4_packet(CLIENT_IP, far, up_base + i * 37 % 1200, i as u8);
        p.roundtrip_ip(Side::Client, &up);
        let down = ipv4_packet(far, CLIENT_IP, 1 + i * 53 % 1400, down_tag ^ i as u8);
        p.roundtrip_ip(Side::Server, &down);
    }
}

pub fn has_down(events: &[SessionEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, SessionEvent::Down { .. }))
}

pub fn down_reason(events: &[SessionEvent]) -> Option<&virtgate_ppp::DownReason> {
    events.iter().find_map(|e| match e {
        SessionEvent::Down { reason } => Some(reason),
        _ => None,
    })
}

/// A small IPv4/UDP-looking packet with a valid header checksum; `tag` varies the contents.
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize, tag: u8) -> Vec<u8> {
    let total = 20 + payload_len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let mut sum: u32 = 0;
    for i in (0..20).step_by(2) {
        sum += u32::from(u16::from_be_bytes([p[i], p[i + 1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    for (i, b) in p[20..].iter_mut().enumerate() {
        *b = tag.wrapping_add(i as u8);
    }
    p
}

pub fn server_config() -> SessionConfig {
    SessionConfig {
        role: Role::Server,
        our_name: "pptpd".into(),
        ipcp: virtgate_ppp::IpcpPolicy {
            local: SERVER_IP,
            dns: [
                Some(Ipv4Addr::new(8, 8, 8, 8)),
                Some(Ipv4Addr::new(8, 8, 4, 4)),
            ],
            ..Default::default()
        },
        ..SessionConfig::default()
    }
}

pub fn client_config(password: &str) -> SessionConfig {
    SessionConfig {
        role: Role::Client {
            user: "user1".into(),
            password: password.into(),
        },
        our_name: "user1".into(),
        ipcp: virtgate_ppp::IpcpPolicy {
            request_dns: true,
            ..Default::default()
        },
        ..SessionConfig::default()
    }
}

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
