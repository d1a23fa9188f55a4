//! Session lookup per packet with 10,000 sessions: what the daemon does before any protocol
//! work. The GRE side finds a call by the key's call id (RFC 2637 §4.1: the receiver's call
//! id) and checks the source address; the TUN side finds it by the packet's destination
//! address. The daemon's table (crates/virtgate/src/table.rs) is two std `HashMap`s (SipHash):
//! call id → entry, and tunnel address → call id → entry (two lookups).
//!
//! Each variant is measured with the 10,000 keys visited in a scrambled order (every packet from
//! another session: the cache-unfriendly case of many small flows) and, for the daemon's
//! layout, with one key (one bulk session, the throughput benchmark's case). Alternatives:
//! - `fx`: the same maps with a multiplicative hasher (no SipHash; call ids and pool addresses
//!   are not attacker-chosen keys in a way that matters: ids are ours, addresses come from our
//!   pool);
//! - `direct`: a 65,536-slot index by call id, and an index by offset into the address pool,
//!   into a slab of entries: one array read, no hashing.
//!
//! Entries are 1 KiB inline values, about the size of a call's state, so that 10,000 of them do
//! not fit in the caches, as in the daemon.
//!
//! Run: `cargo bench -p virtgate-pptp --bench lookup -- --warm-up-time 1 --measurement-time 2`

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SESSIONS: usize = 10_000;
/// First call id handed out (the daemon starts at a random id and counts up).
const FIRST_CALL_ID: u16 = 40_000;
/// First pool address (the daemon hands out pool addresses in order).
const POOL_BASE: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);

struct Entry {
    peer: Ipv4Addr,
    state: [u64; 127],
}

impl Entry {
    fn new(i: usize) -> Entry {
        let mut state = [0u64; 127];
        state[0] = i as u64;
        Entry {
            peer: Ipv4Addr::from(0x0a00_0000 + i as u32),
            state,
        }
    }
}

/// A multiplicative hasher in the style of rustc-hash 2's FxHasher (written here, not a
/// dependency). The final rotation moves the well-mixed high bits of the product down to where
/// hashbrown takes the bucket index from; without it, keys that differ only in their last
/// octet (pool addresses) pile into few buckets.
#[derive(Default)]
struct Fx(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(SEED);
        }
    }
    fn write_u16(&mut self, n: u16) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(n)).wrapping_mul(SEED);
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(n)).wrapping_mul(SEED);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(SEED);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type FxBuild = BuildHasherDefault<Fx>;

/// The daemon's layout, generic over the hasher.
struct Table<S> {
    by_call: HashMap<u16, Entry, S>,
    by_ip: HashMap<Ipv4Addr, u16, S>,
}

impl<S: std::hash::BuildHasher + Default> Table<S> {
    fn build() -> Table<S> {
        let mut t = Table {
            by_call: HashMap::with_hasher(S::default()),
            by_ip: HashMap::with_hasher(S::default()),
        };
        for i in 0..SESSIONS {
            let id = call_id(i);
            t.by_call.insert(id, Entry::new(i));
            t.by_ip.insert(tunnel_ip(i), id);
        }
        t
    }

    fn by_gre(&mut self, id: u16, src: Ipv4Addr) -> Option<&mut Entry> {
        self.by_call.get_mut(&id).filter(|e| e.peer == src)
    }

    fn by_dst(&mut self, dst: Ipv4Addr) -> Option<&mut Entry> {
        let id = *self.by_ip.get(&dst)?;
        self.by_call.get_mut(&id)
    }
}

/// Direct indexes into a slab.
struct Direct {
    slot_by_call: Vec<u32>,
    slot_by_pool_offset: Vec<u32>,
    slab: Vec<Entry>,
}

const EMPTY: u32 = u32::MAX;

impl Direct {
    fn build() -> Direct {
        let mut d = Direct {
            slot_by_call: vec![EMPTY; 1 << 16],
            slot_by_pool_offset: vec![EMPTY; SESSIONS],
            slab: Vec::with_capacity(SESSIONS),
        };
        for i in 0..SESSIONS {
            d.slot_by_call[usize::from(call_id(i))] = i as u32;
            d.slot_by_pool_offset[i] = i as u32;
            d.slab.push(Entry::new(i));
        }
        d
    }

    fn by_gre(&mut self, id: u16, src: Ipv4Addr) -> Option<&mut Entry> {
        let slot = self.slot_by_call[usize::from(id)];
        self.slab.get_mut(slot as usize).filter(|e| e.peer == src)
    }

    fn by_dst(&mut self, dst: Ipv4Addr) -> Option<&mut Entry> {
        let off = u32::from(dst).wrapping_sub(u32::from(POOL_BASE)) as usize;
        let slot = *self.slot_by_pool_offset.get(off)?;
        self.slab.get_mut(slot as usize)
    }
}

fn call_id(i: usize) -> u16 {
    FIRST_CALL_ID.wrapping_add(i as u16)
}

fn tunnel_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(POOL_BASE) + i as u32)
}

/// Session indexes in a scrambled order (a full-period LCG walk over 0..SESSIONS).
fn scrambled() -> Vec<usize> {
    let mut order: Vec<usize> = (0..SESSIONS).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

/// Reads one word of the entry so the lookup cannot be optimised into nothing and the entry's
/// cache line is really fetched.
fn touch(e: Option<&mut Entry>) -> u64 {
    match e {
        Some(e) => {
            e.state[1] = e.state[1].wrapping_add(1);
            e.state[0]
        }
        None => u64::MAX,
    }
}

fn lookups(c: &mut Criterion) {
    let order = scrambled();
    let gre_keys: Vec<(u16, Ipv4Addr)> = order
        .iter()
        .map(|&i| (call_id(i), Entry::new(i).peer))
        .collect();
    let dst_keys: Vec<Ipv4Addr> = order.iter().map(|&i| tunnel_ip(i)).collect();

    let mut std_table = Table::<std::collections::hash_map::RandomState>::build();
    let mut fx_table = Table::<FxBuild>::build();
    let mut direct = Direct::build();

    // Every variant must find every session (a lookup that misses measures nothing).
    for (&(id, src), &dst) in gre_keys.iter().zip(&dst_keys) {
        assert!(std_table.by_gre(id, src).is_some() && std_table.by_dst(dst).is_some());
        assert!(fx_table.by_gre(id, src).is_some() && fx_table.by_dst(dst).is_some());
        assert!(direct.by_gre(id, src).is_some() && direct.by_dst(dst).is_some());
    }

    let mut group = c.benchmark_group("lookup-10000");
    group.throughput(Throughput::Elements(1));
    let mut k = 0usize;
    let mut next = move || {
        k = if k + 1 == SESSIONS { 0 } else { k + 1 };
        k
    };

    let (hot_id, hot_src) = gre_keys[0];
    group.bench_function("call-id/std-one-session", |b| {
        b.iter(|| touch(std_table.by_gre(black_box(hot_id), hot_src)))
    });
    group.bench_function("call-id/std-scrambled", |b| {
        b.iter(|| {
            let (id, src) = gre_keys[next()];
            touch(std_table.by_gre(black_box(id), src))
        })
    });
    group.bench_function("call-id/fx-scrambled", |b| {
        b.iter(|| {
            let (id, src) = gre_keys[next()];
            touch(fx_table.by_gre(black_box(id), src))
        })
    });
    group.bench_function("call-id/direct-scrambled", |b| {
        b.iter(|| {
            let (id, src) = gre_keys[next()];
            touch(direct.by_gre(black_box(id), src))
        })
    });

    let hot_dst = dst_keys[0];
    group.bench_function("dst-ip/std-one-session", |b| {
        b.iter(|| touch(std_table.by_dst(black_box(hot_dst))))
    });
    group.bench_function("dst-ip/std-scrambled", |b| {
        b.iter(|| touch(std_table.by_dst(black_box(dst_keys[next()]))))
    });
    group.bench_function("dst-ip/fx-scrambled", |b| {
        b.iter(|| touch(fx_table.by_dst(black_box(dst_keys[next()]))))
    });
    group.bench_function("dst-ip/direct-scrambled", |b| {
        b.iter(|| touch(direct.by_dst(black_box(dst_keys[next()]))))
    });
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
