//! MPPE per-packet cost: encrypt and decrypt 1400-octet packets in stateless mode (a key
//! change per packet) and stateful mode (RC4 only), and a stateless key change alone.
//!
//! Run: `cargo bench -p virtgate-ppp --bench mppe -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use virtgate_ppp::mppe::{
    change_key, mschapv2_start_keys, KeyLength, MppeDecrypter, MppeEncrypter,
};

const PACKET: usize = 1400;

fn packets(c: &mut Criterion) {
    let nt_response = [0x5Au8; 24];
    let server = mschapv2_start_keys("password1", &nt_response, true);
    let client = mschapv2_start_keys("password1", &nt_response, false);

    let mut group = c.benchmark_group("mppe-128");
    group.throughput(Throughput::Bytes(PACKET as u64));
    for stateless in [true, false] {
        let mode = if stateless { "stateless" } else { "stateful" };

        let mut enc = MppeEncrypter::new(&server.send, KeyLength::Bits128, stateless);
        let mut buf = vec![0x21u8; PACKET];
        group.bench_function(format!("encrypt-1400-{mode}"), |b| {
            b.iter(|| black_box(enc.encrypt(black_box(&mut buf))))
        });

        // Decrypt a real stream: pre-encrypt a ring of packets, decrypt them in order
        // (re-encrypting a fresh ring when it runs out is outside the timed loop).
        let ring = 4096;
        let mut enc = MppeEncrypter::new(&server.send, KeyLength::Bits128, stateless);
        let frames: Vec<([u8; 2], Vec<u8>)> = (0..ring)
            .map(|_| {
                let mut p = vec![0x21u8; PACKET];
                let h = enc.encrypt(&mut p);
                (h, p)
            })
            .collect();
        group.bench_function(format!("decrypt-1400-{mode}"), |b| {
            b.iter_custom(|iters| {
                let mut dec = MppeDecrypter::new(&client.recv, KeyLength::Bits128, stateless);
                let mut work = frames[0].1.clone();
                let mut total = std::time::Duration::ZERO;
                let mut i = 0usize;
                for _ in 0..iters {
                    if i == frames.len() {
                        dec = MppeDecrypter::new(&client.recv, KeyLength::Bits128, stateless);
                        i = 0;
                    }
                    let (h, p) = &frames[i];
                    work.copy_from_slice(p);
                    let t = std::time::Instant::now();
                    let r = dec.decrypt(*h, black_box(&mut work));
                    total += t.elapsed();
                    assert!(r.is_ok());
                    i += 1;
                }
                total
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("mppe-rekey");
    for len in [KeyLength::Bits40, KeyLength::Bits128] {
        let mut session = [0x11u8; 16];
        group.bench_function(format!("change_key-reference-{len:?}"), |b| {
            b.iter(|| {
                session = change_key(&server.send, black_box(&session), len);
            })
        });
        // The encrypter's own key change: a stateless encrypt of an empty packet is one key
        // change plus the RC4 set-up for the new key, with no data to encrypt.
        let mut enc = MppeEncrypter::new(&server.send, len, true);
        group.bench_function(format!("encrypter-rekey-{len:?}"), |b| {
            b.iter(|| black_box(enc.encrypt(&mut [])))
        });
    }
    group.finish();
}

criterion_group!(benches, packets);
criterion_main!(benches);
