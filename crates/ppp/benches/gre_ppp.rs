//! Per-packet cost of the data path of one PPTP call: PPP framing with MPPE (RFC 3078) in
//! stateless and stateful mode and without MPPE, for 64-, 512- and 1400-octet IPv4 packets,
//! alone (`Session::encapsulate` / `Session::decapsulate`) and under enhanced GRE (RFC 2637
//! §4.1: `GreChannel::encapsulate`, `GreHeader::parse` + `GreChannel::receive`), which is all
//! the protocol work the daemon does per packet.
//!
//! A server and a client `Session` negotiate in memory (LCP, MS-CHAPv2, CCP, IPCP) before any
//! timing; only the data path is timed. Our sessions never ask for stateful MPPE (neither does
//! pppd), so for the stateful pair the frame pump answers each side's first CCP
//! Configure-Request with a Configure-Nak suggesting stateful MPPE-128 (what a Windows peer
//! that insists on stateful mode does); both sides allow it, so both directions end up
//! stateful through the real negotiation.
//!
//! Decapsulation needs a real stream (MPPE keeps coherency counts): frames are made by the
//! client in chunks outside the timed section and decapsulated in order inside it.
//!
//! Run: `cargo bench -p virtgate-ppp --bench gre_ppp -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use virtgate_ppp::frame::{ControlPacket, FrameHeader, Protocol};
use virtgate_ppp::{
    AuthMethod, AuthPolicy, Decap, Entropy, IpcpPolicy, KeyLength, MppeMode, MppePolicy, Role,
    Session, SessionConfig, SessionEvent,
};
use virtgate_pptp::gre::{GreChannel, GreHeader, RxVerdict, GRE_HEADROOM};

const SIZES: [usize; 3] = [64, 512, 1400];
/// Frames made per untimed refill in the decapsulation benches.
const CHUNK: usize = 256;
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 100);

/// xorshift64*: deterministic entropy, so every run negotiates the same keys.
struct Seeded(u64);

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Stateless,
    Stateful,
    Off,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Stateless => "mppe128-stateless",
            Mode::Stateful => "mppe128-stateful",
            Mode::Off => "no-mppe",
        }
    }

    fn expected(self) -> Option<MppeMode> {
        let stateless = match self {
            Mode::Stateless => true,
            Mode::Stateful => false,
            Mode::Off => return None,
        };
        Some(MppeMode {
            key_length: KeyLength::Bits128,
            stateless,
        })
    }

    fn policy(self) -> MppePolicy {
        let on = self != Mode::Off;
        MppePolicy {
            required: on,
            allow_40: false,
            allow_56: false,
            allow_128: on,
            allow_stateful: self == Mode::Stateful,
        }
    }
}

/// A CCP Configure-Request carrying the MPPE option with the H (stateless) bit: RFC 3078 §2,
/// option 18, H = bit 0x01 of the first of the four option octets.
fn is_stateless_ccp_request(frame: &[u8]) -> Option<u8> {
    let h = FrameHeader::parse(frame).ok()?;
    if h.protocol != Protocol::Ccp {
        return None;
    }
    let p = ControlPacket::parse(frame.get(h.len..)?).ok()?;
    let is_request = p.code.number() == 1;
    let h_bit = matches!(p.data, [0x12, 0x06, b, ..] if b & 0x01 != 0);
    (is_request && h_bit).then_some(p.id)
}

/// CCP Configure-Nak (code 3) for request `id`, suggesting MPPE-128 without H (stateful).
fn stateful_nak(id: u8) -> Vec<u8> {
    vec![
        0xff, 0x03, 0x80, 0xfd, 3, id, 0, 10, 0x12, 0x06, 0x00, 0x00, 0x00, 0x40,
    ]
}

/// Negotiates a server/client pair in memory and returns it up.
fn connected(mode: Mode) -> (Session, Session, Instant) {
    let t0 = Instant::now();
    let auth = AuthPolicy {
        methods: vec![AuthMethod::MsChapV2],
        ..AuthPolicy::default()
    };
    let server_cfg = SessionConfig {
        role: Role::Server,
        our_name: "pptpd".into(),
        auth: auth.clone(),
        mppe: mode.policy(),
        ipcp: IpcpPolicy {
            local: SERVER_IP,
            ..IpcpPolicy::default()
        },
        ..SessionConfig::default()
    };
    let client_cfg = SessionConfig {
        role: Role::Client {
            user: "user1".into(),
            password: "password1".into(),
        },
        our_name: "user1".into(),
        auth,
        mppe: mode.policy(),
        ..SessionConfig::default()
    };
    let mut server = Session::new(t0, server_cfg, Box::new(Seeded(0x1234_5678_9abc_def1)));
    let mut client = Session::new(t0, client_cfg, Box::new(Seeded(0x0fed_cba9_8765_4321)));
    server.open(t0);
    client.open(t0);
    let mut now = t0;
    let mut naked = [false; 2];
    for _ in 0..1000 {
        let mut progress = false;
        for (side, naked) in naked.iter_mut().enumerate() {
            let (tx, rx) = if side == 0 {
                (&mut server, &mut client)
            } else {
                (&mut client, &mut server)
            };
            while let Some(mut f) = tx.poll_transmit() {
                progress = true;
                if mode == Mode::Stateful && !*naked {
                    if let Some(id) = is_stateless_ccp_request(&f) {
                        *naked = true;
                        let mut nak = stateful_nak(id);
                        let n = nak.len();
                        tx.decapsulate(now, &mut nak, 0, n);
                        continue;
                    }
                }
                let n = f.len();
                rx.decapsulate(now, &mut f, 0, n);
            }
        }
        while let Some(e) = server.poll_event() {
            progress = true;
            match e {
                SessionEvent::SecretRequest { .. } => {
                    server.provide_secret(now, Some("password1".into()))
                }
                SessionEvent::AddressRequest { .. } => server.assign_address(now, Some(CLIENT_IP)),
                _ => {}
            }
        }
        while client.poll_event().is_some() {
            progress = true;
        }
        if server.is_up() && client.is_up() {
            break;
        }
        if !progress {
            // Nothing in flight: jump to the next timer, as the tests' virtual clock does.
            let next = [server.poll_timeout(), client.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + Duration::from_secs(1));
            now = now.max(next);
            server.handle_timeout(now);
            client.handle_timeout(now);
        }
    }
    assert!(
        server.is_up() && client.is_up(),
        "{mode:?}: link did not come up: {server:?} {client:?}"
    );
    assert_eq!(server.mppe_mode(), mode.expected(), "{mode:?}: server");
    assert_eq!(client.mppe_mode(), mode.expected(), "{mode:?}: client");
    (server, client, now)
}

/// An IPv4/UDP-looking packet of `len` octets (header fields only as far as PPP cares).
fn ip_packet(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&CLIENT_IP.octets());
    p[16..20].copy_from_slice(&SERVER_IP.octets());
    for (i, b) in p[20..].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

/// Room before the IP packet for GRE + PPP/MPPE headers, as the daemon's buffers have.
const HEADROOM: usize = GRE_HEADROOM + Session::HEADROOM;

/// One frame buffer per slot of a chunk, with where its frame (or GRE packet) lies.
struct Chunk {
    bufs: Vec<Vec<u8>>,
    frames: Vec<(usize, usize)>,
}

impl Chunk {
    fn new(size: usize) -> Chunk {
        Chunk {
            bufs: (0..CHUNK).map(|_| vec![0u8; HEADROOM + size]).collect(),
            frames: Vec::with_capacity(CHUNK),
        }
    }

    /// The client encapsulates `n` packets (PPP, and GRE when `chan` is given), untimed.
    fn fill(
        &mut self,
        n: usize,
        packet: &[u8],
        client: &mut Session,
        chan: Option<&mut GreChannel>,
        now: Instant,
    ) {
        self.frames.clear();
        let mut chan = chan;
        for buf in self.bufs.iter_mut().take(n) {
            buf[HEADROOM..].copy_from_slice(packet);
            let (s, l) = client
                .encapsulate(buf, HEADROOM, packet.len())
                .expect("encapsulate");
            let r = match chan.as_deref_mut() {
                Some(c) => c.encapsulate(now, buf, s, l),
                None => (s, l),
            };
            self.frames.push(r);
        }
    }
}

fn data_path(c: &mut Criterion) {
    for mode in [Mode::Stateless, Mode::Stateful, Mode::Off] {
        // Each bench gets a fresh pair: a client that encrypted packets the server never saw
        // would leave a gap that stateful MPPE treats as loss.
        let mut group = c.benchmark_group(format!("ppp-{}", mode.name()));
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let packet = ip_packet(size);

            // Encapsulate in place, again and again on the same buffer (MPPE encrypts
            // whatever is there; the cost does not depend on the contents).
            let (_, mut client, _) = connected(mode);
            let mut buf = vec![0u8; HEADROOM + size];
            buf[HEADROOM..].copy_from_slice(&packet);
            group.bench_function(BenchmarkId::new("encapsulate", size), |b| {
                b.iter(|| black_box(client.encapsulate(black_box(&mut buf), HEADROOM, size)))
            });

            let (mut server, mut client, now) = connected(mode);
            let mut chunk = Chunk::new(size);
            group.bench_function(BenchmarkId::new("decapsulate", size), |b| {
                b.iter_custom(|iters| {
                    let mut left = iters as usize;
                    let mut total = Duration::ZERO;
                    let mut bad = 0usize;
                    while left > 0 {
                        let n = left.min(CHUNK);
                        // Re-encapsulating in the client keeps the stream coherent.
                        chunk.fill(n, &packet, &mut client, None, now);
                        let t = Instant::now();
                        for (buf, &(s, l)) in chunk.bufs.iter_mut().zip(&chunk.frames) {
                            let r = server.decapsulate(now, black_box(buf), s, l);
                            bad += usize::from(!matches!(r, Decap::Ip { .. }));
                        }
                        total += t.elapsed();
                        left -= n;
                    }
                    assert_eq!(bad, 0, "{mode:?}: frames not delivered as IP");
                    total
                })
            });
        }
        group.finish();

        // The whole per-packet protocol work with GRE on top, 1400-octet packets.
        let mut group = c.benchmark_group(format!("gre+ppp-{}", mode.name()));
        let size = 1400;
        group.throughput(Throughput::Bytes(size as u64));
        let packet = ip_packet(size);
        let (_, mut client, now) = connected(mode);
        let mut client_chan = GreChannel::new(100, 200, 64);
        let mut buf = vec![0u8; HEADROOM + size];
        group.bench_function(BenchmarkId::new("tx", size), |b| {
            b.iter(|| {
                buf[HEADROOM..].copy_from_slice(&packet);
                let (s, l) = client
                    .encapsulate(black_box(&mut buf), HEADROOM, size)
                    .expect("encapsulate");
                black_box(client_chan.encapsulate(now, &mut buf, s, l))
            })
        });
        let (mut server, mut client, now) = connected(mode);
        let mut client_chan = GreChannel::new(100, 200, 64);
        let mut server_chan = GreChannel::new(200, 100, 64);
        let mut chunk = Chunk::new(size);
        group.bench_function(BenchmarkId::new("rx", size), |b| {
            b.iter_custom(|iters| {
                let mut left = iters as usize;
                let mut total = Duration::ZERO;
                let mut bad = 0usize;
                while left > 0 {
                    let n = left.min(CHUNK);
                    chunk.fill(n, &packet, &mut client, Some(&mut client_chan), now);
                    let t = Instant::now();
                    for (buf, &(s, l)) in chunk.bufs.iter_mut().zip(&chunk.frames) {
                        let delivered = match GreHeader::parse(&buf[s..s + l]) {
                            Ok((hdr, hlen))
                                if server_chan.receive(now, &hdr) == RxVerdict::Deliver =>
                            {
                                let plen = usize::from(hdr.payload_len);
                                matches!(
                                    server.decapsulate(now, black_box(buf), s + hlen, plen),
                                    Decap::Ip { .. }
                                )
                            }
                            _ => false,
                        };
                        bad += usize::from(!delivered);
                    }
                    total += t.elapsed();
                    left -= n;
                }
                assert_eq!(bad, 0, "{mode:?}: GRE packets not delivered as IP");
                total
            })
        });
        group.finish();
    }
}

criterion_group!(benches, data_path);
criterion_main!(benches);
