//! Per-packet cost of enhanced GRE (RFC 2637 §4.1 header, §4.2 sequencing): what the daemon
//! does for every data packet besides PPP/MPPE.
//!
//! - `gre/encapsulate`: [`GreChannel::encapsulate`] in front of a 1400-octet PPP frame, one-way
//!   (no ack owed) and with an ack to piggyback on every packet (two-way traffic);
//! - `gre/parse`: [`GreHeader::parse`] of a data packet with sequence and ack;
//! - `gre/receive`: [`GreChannel::receive`] of in-order packets (parse not included);
//! - `gre/rx-path`: parse + receive, what the daemon runs before PPP;
//! - `clock/Instant::now`: the daemon reads the clock once per packet on each side; its cost is
//!   the yardstick for "per-packet work that could be per-batch".
//!
//! Run: `cargo bench -p virtgate-pptp --bench gre -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use virtgate_pptp::gre::{GreChannel, GreHeader, RxVerdict, GRE_HEADROOM};

const PAYLOAD: usize = 1400;

fn gre(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("gre");
    group.throughput(Throughput::Elements(1));

    // One-way: the channel never owes an ack, so every header is 12 octets (seq only).
    let mut tx = GreChannel::new(0x1234, 0x4321, 64);
    let mut buf = vec![0x21u8; GRE_HEADROOM + PAYLOAD];
    group.bench_function("encapsulate-1400", |b| {
        b.iter(|| black_box(tx.encapsulate(now, black_box(&mut buf), GRE_HEADROOM, PAYLOAD)))
    });

    // Two-way: a packet from the peer arrives before each of ours, so every header carries an
    // ack (16 octets). Timed: receive + encapsulate.
    let mut tx = GreChannel::new(0x1234, 0x4321, 64);
    let mut seq = 0u32;
    group.bench_function("receive+encapsulate-ack-1400", |b| {
        b.iter(|| {
            let hdr = GreHeader {
                call_id: 0x1234,
                payload_len: PAYLOAD as u16,
                seq: Some(seq),
                ack: None,
            };
            seq = seq.wrapping_add(1);
            let v = tx.receive(now, &hdr);
            black_box(v);
            black_box(tx.encapsulate(now, black_box(&mut buf), GRE_HEADROOM, PAYLOAD))
        })
    });

    // A data packet with sequence and ack, as a busy peer sends it.
    let mut pkt = vec![0u8; 16 + PAYLOAD];
    GreHeader {
        call_id: 0x1234,
        payload_len: PAYLOAD as u16,
        seq: Some(7),
        ack: Some(3),
    }
    .emit(&mut pkt);
    group.bench_function("parse", |b| {
        b.iter(|| black_box(GreHeader::parse(black_box(&pkt))))
    });

    let mut rx = GreChannel::new(0x1234, 0x4321, 64);
    let mut seq = 0u32;
    group.bench_function("receive-in-order", |b| {
        b.iter(|| {
            let hdr = GreHeader {
                call_id: 0x1234,
                payload_len: PAYLOAD as u16,
                seq: Some(seq),
                ack: None,
            };
            seq = seq.wrapping_add(1);
            black_box(rx.receive(now, black_box(&hdr)))
        })
    });

    // Parse + receive over a one-way stream of real headers (a bulk download: sequence number,
    // no ack): each iteration rewrites the sequence number in place, parses and receives it.
    let mut pkt = vec![0u8; 12 + PAYLOAD];
    GreHeader {
        call_id: 0x1234,
        payload_len: PAYLOAD as u16,
        seq: Some(0),
        ack: None,
    }
    .emit(&mut pkt);
    let mut rx = GreChannel::new(0x1234, 0x4321, 64);
    let mut seq = 0u32;
    let mut delivered = 0u64;
    group.bench_function("rx-path", |b| {
        b.iter(|| {
            pkt[8..12].copy_from_slice(&seq.to_be_bytes());
            seq = seq.wrapping_add(1);
            if let Ok((hdr, _)) = GreHeader::parse(black_box(&pkt)) {
                if rx.receive(now, &hdr) == RxVerdict::Deliver {
                    delivered += 1;
                }
            }
        })
    });
    // The loop above must have done the work it claims to measure.
    assert!(delivered > 0, "rx-path delivered nothing");
    group.finish();

    let mut group = c.benchmark_group("clock");
    group.bench_function("Instant::now", |b| b.iter(|| black_box(Instant::now())));
    group.finish();
}

criterion_group!(benches, gre);
criterion_main!(benches);
