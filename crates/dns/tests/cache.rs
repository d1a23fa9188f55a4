//! The cache of forwarded answers on virtual time: TTLs honoured and lowered as they age,
//! negative answers per RFC 2308 §5 (only with a SOA, for min(SOA TTL, MINIMUM)), what is never
//! kept, the key (EDNS/DO/CD), the bound and its eviction order, and hit counting.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use virtgate_dns::{Action, Client, Config, DnsServer, Entropy};

struct Counter(u8);
impl Entropy for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        self.0 = self.0.wrapping_add(1);
        buf.fill(self.0);
    }
}

const UP: &str = "203.0.113.1:53";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn guest() -> Client {
    Client::udp(sa("192.168.122.77:40000"))
}

fn server(cache_size: usize) -> DnsServer {
    let cfg = Config {
        upstreams: vec![sa(UP)],
        cache_size,
        ..Config::default()
    };
    DnsServer::new(cfg, Box::new(Counter(0))).unwrap()
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name.split('.') {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

/// RD query, one question of class IN, optional OPT record (DO bit `dnssec_ok`).
fn query(id: u16, name: &str, qtype: u16, edns: Option<bool>) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    m.extend_from_slice(&encode_name(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if let Some(dnssec_ok) = edns {
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0]);
        m.extend_from_slice(&[if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    m
}

/// What an upstream sends back for `fwd`.
enum Reply {
    /// One A record with this TTL.
    A(u32),
    /// NXDOMAIN, with a SOA (ttl, minimum) in the authority section or without.
    NxDomain(Option<(u32, u32)>),
    /// NOERROR without answers, with a SOA or without.
    NoData(Option<(u32, u32)>),
    ServFail,
    /// One A record, TC set.
    Truncated,
}

fn answer(fwd: &[u8], reply: Reply) -> Vec<u8> {
    // Header and question of the query (its OPT record dropped: ARCOUNT 0).
    let qend = 12 + fwd[12..].iter().position(|&b| b == 0).unwrap() + 1 + 4;
    let mut r = fwd[..qend].to_vec();
    r[2] = 0x81;
    r[3] = 0x80;
    r[10..12].copy_from_slice(&[0, 0]);
    let a = |r: &mut Vec<u8>, ttl: u32| {
        r[6..8].copy_from_slice(&[0, 1]);
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&[0, 4, 203, 0, 113, 80]);
    };
    let soa = |r: &mut Vec<u8>, soa: Option<(u32, u32)>| {
        if let Some((ttl, minimum)) = soa {
            r[8..10].copy_from_slice(&[0, 1]);
            // example.test. SOA ns. host. serial refresh retry expire minimum
            r.extend_from_slice(&encode_name("example.test"));
            r.extend_from_slice(&[0, 6, 0, 1]);
            r.extend_from_slice(&ttl.to_be_bytes());
            let mut rdata = encode_name("ns");
            rdata.extend_from_slice(&encode_name("host"));
            for v in [1u32, 7200, 900, 1_209_600, minimum] {
                rdata.extend_from_slice(&v.to_be_bytes());
            }
            r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            r.extend_from_slice(&rdata);
        }
    };
    match reply {
        Reply::A(ttl) => a(&mut r, ttl),
        Reply::NxDomain(s) => {
            r[3] |= 3;
            soa(&mut r, s);
        }
        Reply::NoData(s) => soa(&mut r, s),
        Reply::ServFail => r[3] |= 2,
        Reply::Truncated => {
            r[2] |= 0x02;
            a(&mut r, 300);
        }
    }
    r
}

/// Asks `name`; if it is forwarded, the upstream answers `reply`. Returns the client's answer
/// and whether it was forwarded.
fn resolve(
    s: &mut DnsServer,
    now: Instant,
    id: u16,
    name: &str,
    edns: Option<bool>,
    reply: Reply,
) -> (Vec<u8>, bool) {
    match s.handle_query(now, &query(id, name, 1, edns), guest()) {
        Some(Action::Reply { bytes, .. }) => (bytes, false),
        Some(Action::Forward { bytes, .. }) => {
            let up = answer(&bytes, reply);
            match s.handle_upstream_response(now, &up, sa(UP)) {
                Some(Action::Reply { bytes, .. }) => (bytes, true),
                other => panic!("upstream answer not relayed: {other:?}"),
            }
        }
        None => panic!("no answer"),
    }
}

/// The TTL of the first record after the question (answer or authority).
fn first_ttl(m: &[u8]) -> u32 {
    let qend = 12 + m[12..].iter().position(|&b| b == 0).unwrap() + 1 + 4;
    // The record's owner: a pointer (2 octets) or a name.
    let owner_end = if m[qend] & 0xc0 == 0xc0 {
        qend + 2
    } else {
        qend + m[qend..].iter().position(|&b| b == 0).unwrap() + 1
    };
    let t = owner_end + 4;
    u32::from_be_bytes([m[t], m[t + 1], m[t + 2], m[t + 3]])
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn a_positive_answer_is_reused_until_its_ttl_runs_out_with_its_ttl_lowered() {
    let t0 = Instant::now();
    let mut s = server(150);
    let (first, forwarded) = resolve(&mut s, t0, 0x1111, "www.example.test", None, Reply::A(300));
    assert!(forwarded);
    assert_eq!(first_ttl(&first), 300);

    // 100 s later, another id and another letter case: from the cache, made the client's.
    let (hit, forwarded) = resolve(
        &mut s,
        t0 + secs(100),
        0x2222,
        "WWW.Example.TEST",
        None,
        Reply::ServFail,
    );
    assert!(!forwarded);
    assert_eq!(hit[..2], [0x22, 0x22]);
    assert_eq!(&hit[13..16], b"WWW");
    assert_eq!(first_ttl(&hit), 200);
    assert_eq!(hit[hit.len() - 4..], [203, 0, 113, 80]);
    let st = s.stats();
    assert_eq!((st.forwarded, st.cache_hits, st.relayed), (1, 1, 1));
    assert_eq!(s.cache_stats().hits, 1);

    // At 299 s it is still there (TTL 1); at 300 s it has expired and is asked again.
    let (hit, forwarded) = resolve(
        &mut s,
        t0 + secs(299),
        3,
        "www.example.test",
        None,
        Reply::ServFail,
    );
    assert!(!forwarded);
    assert_eq!(first_ttl(&hit), 1);
    let (_, forwarded) = resolve(
        &mut s,
        t0 + secs(300),
        4,
        "www.example.test",
        None,
        Reply::A(60),
    );
    assert!(forwarded);
    assert_eq!(s.stats().forwarded, 2);
}

#[test]
fn negative_answers_are_kept_for_the_soa_minimum_and_only_with_a_soa() {
    let t0 = Instant::now();
    let mut s = server(150);
    // NXDOMAIN, SOA TTL 3600, MINIMUM 60: kept 60 s (RFC 2308 §5).
    let (_, fwd) = resolve(
        &mut s,
        t0,
        1,
        "nx.example.test",
        None,
        Reply::NxDomain(Some((3600, 60))),
    );
    assert!(fwd);
    let (hit, fwd) = resolve(
        &mut s,
        t0 + secs(59),
        2,
        "nx.example.test",
        None,
        Reply::ServFail,
    );
    assert!(!fwd);
    assert_eq!(hit[3] & 0xf, 3, "NXDOMAIN from the cache");
    let (_, fwd) = resolve(
        &mut s,
        t0 + secs(60),
        3,
        "nx.example.test",
        None,
        Reply::NxDomain(None),
    );
    assert!(fwd);
    // ...and without a SOA that NXDOMAIN is not kept.
    let (_, fwd) = resolve(
        &mut s,
        t0 + secs(61),
        4,
        "nx.example.test",
        None,
        Reply::ServFail,
    );
    assert!(fwd);

    // NODATA, SOA TTL 30 below MINIMUM 900: kept 30 s.
    let (_, fwd) = resolve(
        &mut s,
        t0,
        5,
        "nodata.example.test",
        None,
        Reply::NoData(Some((30, 900))),
    );
    assert!(fwd);
    let (hit, fwd) = resolve(
        &mut s,
        t0 + secs(29),
        6,
        "nodata.example.test",
        None,
        Reply::ServFail,
    );
    assert!(!fwd);
    assert_eq!((hit[3] & 0xf, hit[7]), (0, 0), "NOERROR, no answers");
    let (_, fwd) = resolve(
        &mut s,
        t0 + secs(30),
        7,
        "nodata.example.test",
        None,
        Reply::NoData(None),
    );
    assert!(fwd);
    let (_, fwd) = resolve(
        &mut s,
        t0 + secs(31),
        8,
        "nodata.example.test",
        None,
        Reply::ServFail,
    );
    assert!(fwd);
}

#[test]
fn failures_truncated_answers_and_ttl_zero_are_never_kept() {
    let t0 = Instant::now();
    let mut s = server(150);
    for (i, reply) in [
        Reply::ServFail,
        Reply::Truncated,
        Reply::A(0),
        Reply::A(0x8000_0000),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("n{i}.example.test");
        let (_, fwd) = resolve(&mut s, t0, 1, &name, None, reply);
        assert!(fwd);
        let (_, fwd) = resolve(&mut s, t0, 2, &name, None, Reply::A(5));
        assert!(fwd, "reply {i} must not have been cached");
    }
    assert_eq!(s.stats().cache_hits, 0);
    // The relayed SERVFAIL counts as a failure.
    assert_eq!(s.stats().failed, 1);
}

#[test]
fn edns_and_the_do_bit_are_part_of_the_key() {
    let t0 = Instant::now();
    let mut s = server(150);
    let (_, fwd) = resolve(&mut s, t0, 1, "k.example.test", None, Reply::A(300));
    assert!(fwd);
    let (_, fwd) = resolve(&mut s, t0, 2, "k.example.test", Some(false), Reply::A(300));
    assert!(fwd, "an EDNS query is not answered with a plain answer");
    let (_, fwd) = resolve(&mut s, t0, 3, "k.example.test", Some(true), Reply::A(300));
    assert!(fwd, "a DO query is not answered with a non-DO answer");
    for (id, edns) in [(4, None), (5, Some(false)), (6, Some(true))] {
        let (_, fwd) = resolve(&mut s, t0, id, "k.example.test", edns, Reply::ServFail);
        assert!(!fwd);
    }
    assert_eq!(s.stats().cache_hits, 3);
}

#[test]
fn the_cache_is_bounded_and_drops_expired_then_least_recently_used() {
    let t0 = Instant::now();
    let mut s = server(3);
    resolve(&mut s, t0, 1, "a.example.test", None, Reply::A(10));
    resolve(&mut s, t0, 2, "b.example.test", None, Reply::A(300));
    resolve(&mut s, t0, 3, "c.example.test", None, Reply::A(300));
    assert_eq!(s.cached(), 3);
    // At 20 s "a" has expired: it makes room for "d" before anything live goes.
    resolve(
        &mut s,
        t0 + secs(20),
        4,
        "d.example.test",
        None,
        Reply::A(300),
    );
    assert_eq!((s.cached(), s.cache_stats().evictions), (3, 0));
    // "b" used, so "c" is the least recently used and goes for "e".
    assert!(
        !resolve(
            &mut s,
            t0 + secs(21),
            5,
            "b.example.test",
            None,
            Reply::ServFail
        )
        .1
    );
    resolve(
        &mut s,
        t0 + secs(22),
        6,
        "e.example.test",
        None,
        Reply::A(300),
    );
    assert_eq!((s.cached(), s.cache_stats().evictions), (3, 1));
    assert!(
        resolve(
            &mut s,
            t0 + secs(23),
            7,
            "c.example.test",
            None,
            Reply::A(300)
        )
        .1
    );
    // "d" was least recently used after that and made room for "c" again; "b" and "e" stay.
    for name in ["b", "e", "c"] {
        let (_, fwd) = resolve(
            &mut s,
            t0 + secs(24),
            8,
            &format!("{name}.example.test"),
            None,
            Reply::ServFail,
        );
        assert!(!fwd, "{name} should be cached");
    }
}

#[test]
fn size_zero_turns_the_cache_off_and_new_upstreams_empty_it() {
    let t0 = Instant::now();
    let mut s = server(0);
    resolve(&mut s, t0, 1, "x.example.test", None, Reply::A(300));
    assert!(resolve(&mut s, t0, 2, "x.example.test", None, Reply::A(300)).1);
    assert_eq!(s.cached(), 0);

    let mut s = server(150);
    resolve(&mut s, t0, 1, "x.example.test", None, Reply::A(300));
    assert!(!resolve(&mut s, t0, 2, "x.example.test", None, Reply::ServFail).1);
    s.set_upstreams(vec![sa(UP)]);
    assert_eq!(s.cached(), 0);
    assert!(resolve(&mut s, t0, 3, "x.example.test", None, Reply::A(300)).1);
}

#[test]
fn a_cached_answer_larger_than_the_clients_limit_is_truncated() {
    let t0 = Instant::now();
    let mut s = server(150);
    // Asked over TCP (no limit) first; the answer is padded with 40 records to exceed 512.
    let q = query(1, "big.example.test", 1, None);
    let tcp = Client::tcp(sa("192.168.122.77:40001"));
    let Some(Action::Forward { bytes: fwd, .. }) = s.handle_query(t0, &q, tcp) else {
        panic!()
    };
    let mut up = answer(&fwd, Reply::A(300));
    for _ in 0..39 {
        up.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 10, 0, 0, 1]);
    }
    up[6..8].copy_from_slice(&40u16.to_be_bytes());
    assert!(up.len() > 512);
    s.handle_upstream_response(t0, &up, sa(UP)).unwrap();
    // Over UDP without EDNS: header and question with TC.
    let Some(Action::Reply { bytes, .. }) =
        s.handle_query(t0, &query(2, "big.example.test", 1, None), guest())
    else {
        panic!()
    };
    assert!(bytes.len() <= 512);
    assert_ne!(bytes[2] & 0x02, 0, "TC");
    assert_eq!(s.stats().cache_hits, 1);
}

#[test]
fn an_answer_that_does_not_decode_is_relayed_but_not_kept() {
    let t0 = Instant::now();
    let mut s = server(150);
    let Some(Action::Forward { bytes: fwd, .. }) =
        s.handle_query(t0, &query(1, "bad.example.test", 1, None), guest())
    else {
        panic!()
    };
    // An A record whose RDATA is 0 octets long: the record walk is fine, the A is not.
    let mut up = answer(&fwd, Reply::A(300));
    let n = up.len();
    up[n - 6..n - 4].copy_from_slice(&[0, 0]);
    up.truncate(n - 4);
    assert!(matches!(
        s.handle_upstream_response(t0, &up, sa(UP)),
        Some(Action::Reply { .. })
    ));
    let (_, fwd) = resolve(&mut s, t0, 2, "bad.example.test", None, Reply::A(300));
    assert!(fwd, "a broken answer was served from the cache");
}
