//! `dhcpload --iface IF [--clients N] [--in-flight K] ...`: runs the load of
//! [`virtgate_dhcpload::Load`] on one interface through an `AF_PACKET` socket and prints the
//! result as `key=value` lines (for `bench/vnet.sh`). Needs CAP_NET_RAW; run it in a network
//! namespace whose interface reaches only the DHCP server under test.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use virtgate_dhcpload::frame::{self, Datagram};
use virtgate_dhcpload::load::{CLIENT_PORT, SERVER_PORT};
use virtgate_dhcpload::raw::PacketSocket;
use virtgate_dhcpload::{Load, LoadConfig, Report, Transmit};

#[derive(Parser, Debug)]
#[command(
    name = "dhcpload",
    about = "DHCPv4 lease-rate load generator (DORA, then RELEASE)"
)]
struct Args {
    /// Interface the clients sit behind (all their frames go out here).
    #[arg(long)]
    iface: String,
    /// Distinct clients (MAC addresses), one lease each.
    #[arg(long, default_value_t = 2000)]
    clients: u32,
    /// Exchanges open at once.
    #[arg(long, default_value_t = 32)]
    in_flight: u32,
    /// Set the BROADCAST flag (replies to 255.255.255.255 instead of unicast to the new address).
    #[arg(long)]
    broadcast: bool,
    /// Do not send option 12 (host name).
    #[arg(long)]
    no_hostname: bool,
    /// Retransmission interval, milliseconds.
    #[arg(long, default_value_t = 500)]
    retransmit_ms: u64,
    /// Tries per client before it counts as failed.
    #[arg(long, default_value_t = 6)]
    attempts: u32,
    /// Second octet of the client MACs (02:TAG:..).
    #[arg(long, default_value_t = 0x4c)]
    mac_tag: u8,
    /// Skip the DHCPRELEASE phase.
    #[arg(long)]
    no_release: bool,
    /// DHCPRELEASEs per second (they have no answer to pace them); by default the rate at which
    /// leases completed, which the server has just shown it keeps up with.
    #[arg(long)]
    release_rate: Option<u32>,
    /// Give up on the leasing phase after this many seconds.
    #[arg(long, default_value_t = 300)]
    max_seconds: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(r) if r.leased > 0 => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("dhcpload: no lease completed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("dhcpload: {e}");
            ExitCode::FAILURE
        }
    }
}

fn send(sock: &PacketSocket, t: &Transmit) -> std::io::Result<()> {
    let d = Datagram {
        src_mac: t.src_mac,
        dst_mac: t.dst_mac,
        src_ip: t.src_ip,
        dst_ip: t.dst_ip,
        src_port: CLIENT_PORT,
        dst_port: SERVER_PORT,
        payload: &t.payload,
    };
    let Some(f) = frame::build(&d) else {
        return Err(std::io::ErrorKind::InvalidInput.into());
    };
    loop {
        match sock.send(&f, t.dst_mac) {
            // The device queue is full: let it drain rather than lose the message.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(50));
            }
            r => return r,
        }
    }
}

/// Hands every queued DHCP reply to the load.
fn drain(sock: &PacketSocket, load: &mut Load, buf: &mut [u8]) -> std::io::Result<()> {
    while let Some(r) = sock.recv(buf)? {
        let Some(bytes) = buf.get(..r.len) else {
            continue;
        };
        let Ok(d) = frame::parse(bytes) else { continue };
        if d.src_port != SERVER_PORT || d.dst_port != CLIENT_PORT {
            continue;
        }
        load.handle_reply(Instant::now(), d.payload, d.src_mac);
    }
    Ok(())
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.2}", d.as_secs_f64() * 1000.0),
    )
}

fn run(args: &Args) -> std::io::Result<Report> {
    let sock = PacketSocket::open(&args.iface, 8 << 20)?;
    let mut load = Load::new(LoadConfig {
        clients: args.clients,
        in_flight: args.in_flight,
        mac_tag: args.mac_tag,
        broadcast: args.broadcast,
        hostnames: !args.no_hostname,
        retransmit: Duration::from_millis(args.retransmit_ms),
        attempts: args.attempts,
        ..LoadConfig::default()
    });
    let mut buf = vec![0u8; 65536];
    let give_up = Instant::now() + Duration::from_secs(args.max_seconds);
    while !load.leasing_done() {
        let now = Instant::now();
        if now >= give_up {
            eprintln!("dhcpload: gave up after {} s", args.max_seconds);
            break;
        }
        load.handle_timeout(now);
        while let Some(t) = load.poll_transmit(now) {
            send(&sock, &t)?;
        }
        let wait = load
            .poll_timeout()
            .map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(100));
        if sock.wait(wait)? {
            drain(&sock, &mut load, &mut buf)?;
        }
    }
    let r = load.report();
    println!("clients={}", r.clients);
    println!("leased={}", r.leased);
    println!("failed={}", r.failed);
    println!("naks={}", r.naks);
    println!("retransmits={}", r.retransmits);
    println!("stray={}", r.stray);
    println!("seconds={:.3}", r.elapsed.as_secs_f64());
    println!("leases_per_s={:.1}", r.leases_per_sec());
    println!("latency_p50_ms={}", ms(r.latency_percentile(50)));
    println!("latency_p99_ms={}", ms(r.latency_percentile(99)));
    println!("latency_max_ms={}", ms(r.latencies.last().copied()));
    if !args.no_release {
        load.start_release();
        // A burst faster than the server works would only overflow its socket buffer.
        let rate = args
            .release_rate
            .unwrap_or_else(|| r.leases_per_sec() as u32)
            .max(10);
        let gap = Duration::from_secs(1) / rate;
        let start = Instant::now();
        let mut n: u32 = 0;
        while let Some(t) = load.poll_transmit(Instant::now()) {
            send(&sock, &t)?;
            n += 1;
            let due = start + gap * n;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        println!("released={}", load.report().released);
    }
    Ok(r)
}
