//! The lease engine's per-packet cost as the number of leases grows: one RENEWING REQUEST
//! (`handle_packet`, which first runs `handle_timeout`) and the driver's `poll_timeout` after
//! it, with 100, 1,000 and 10,000 bound leases on one network. The engine used to scan every
//! record for the next deadline and for the client's own records (and a name's holders), so the
//! cost grew with the leases; with the deadline heap and the indexes by MAC, client id and host
//! name it should be flat.
//!
//! Run: `cargo bench -p virtgate-dhcp --bench deadlines -- --warm-up-time 1 --measurement-time 2`

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{ip, Guest, Net, SERVER};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use virtgate_dhcp::{Config, Range};

/// A network with `n` guests holding leases, and each guest's encoded renewal.
fn network(n: u16) -> (Net, Vec<(std::net::Ipv4Addr, Vec<u8>)>) {
    let mut cfg = Config::new(SERVER, 16);
    cfg.ranges
        .push(Range::new(ip("192.168.0.2"), ip("192.168.255.254")));
    let mut net = Net::new(cfg);
    let mut renewals = Vec::with_capacity(usize::from(n));
    for i in 0..n {
        let mut g = Guest::numbered(i);
        let addr = net.dora(&mut g);
        renewals.push((addr, g.request_renew(addr)));
        // Leases taken over a while, so their expiries differ.
        net.advance(Duration::from_millis(10));
    }
    net.events();
    (net, renewals)
}

fn renew(c: &mut Criterion) {
    let mut group = c.benchmark_group("dhcp_renew");
    group.throughput(Throughput::Elements(1));
    for n in [100u16, 1_000, 10_000] {
        let (mut net, renewals) = network(n);
        let mut next = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let (addr, bytes) = &renewals[next % renewals.len()];
                next += 1;
                let reply = net.send_unicast(*addr, bytes);
                black_box(reply);
                while net.engine.poll_event().is_some() {}
                black_box(net.engine.poll_timeout())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, renew);
criterion_main!(benches);
