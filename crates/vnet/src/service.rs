//! The service task of one network: it owns the network's DHCP lease engine and DNS server,
//! their sockets and their timers, and is the only place either core is touched, so no locks
//! are needed and a bad packet on one network can at worst disturb that network's task (the
//! cores never panic on wire input; each network runs in a task of its own).
//!
//! Per wake-up: one datagram (DHCP: every queued one, up to a batch), connection, message,
//! command or timer; then the lease events are drained (DNS names of leases, and the leases
//! file rewritten atomically once for the wake-up's changes, before any DHCP reply of that
//! wake-up is sent: an ACKed lease is always on disk, so it is honoured after a restart and
//! never handed to another client).
//!
//! DHCP replies go out as the engine's [`Destination`] says (RFC 2131 §4.1). For
//! `UnicastToHardware` (a client that has no address yet and did not ask for broadcast) the
//! task first installs the neighbour entry `yiaddr lladdr chaddr` on the bridge, then sends an
//! ordinary UDP datagram. Chosen over an AF_PACKET socket because the kernel then still builds
//! the IP and UDP headers, checksums and source address, and routing stays the kernel's; it is
//! what dnsmasq does with `SIOCSARP`. The entry is left in place: the client takes that address
//! and the kernel ages the entry like any other.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use rtnetlink::packet_route::neighbour::NeighbourState;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use virtgate_config::libvirt::NetworkDef;
use virtgate_dhcp::{Arrival, Destination, LeaseEngine, LeaseEvent, LeaseInfo, Reply};
use virtgate_dns::{Action, Client, DnsServer, NetworkDns, Transport};

use crate::convert;
use crate::dns_io::{self, Internal};
use crate::error::VnetError;
use crate::files::{self, OsEntropy};
use crate::sockets::{self, Received, DHCP_CLIENT_PORT};

/// Guests' TCP connections served at once per network (dnsmasq allows 20 TCP children).
pub const MAX_TCP_CLIENTS: usize = 32;

/// Answers queued for one TCP connection before further ones are dropped.
const TCP_REPLY_QUEUE: usize = 16;

/// Messages from helper tasks waiting for the service task.
const INTERNAL_QUEUE: usize = 256;

/// DHCP datagrams handled per wake-up (and per leases-file write).
const DHCP_BATCH: usize = 64;

/// DNS datagrams from guests handled per wake-up.
const DNS_BATCH: usize = 32;

/// How often the host's resolv.conf is checked for changes (dnsmasq polls it too).
const RESOLV_POLL: Duration = Duration::from_secs(5);

/// How long a neighbour-table request may take before the reply is broadcast instead.
const NEIGHBOUR_TIMEOUT: Duration = Duration::from_secs(1);

/// Counters of a running network, as `virtgate net` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetworkStats {
    /// Bound DHCP leases now.
    pub leases_active: usize,
    /// The DHCP engine's counters (`offers` is DHCPOFFERs sent); `None` without DHCP.
    pub dhcp: Option<virtgate_dhcp::Stats>,
    /// The DNS server's counters (`answered`, `forwarded`, `failed`, ...); `None` without DNS.
    pub dns: Option<virtgate_dns::Stats>,
    /// Times the leases file was rewritten, and times that failed (the lease still stands; the
    /// next change tries again).
    pub lease_file_writes: u64,
    pub lease_file_errors: u64,
    /// DHCP replies that went out broadcast because the neighbour entry could not be set.
    pub neighbour_fallbacks: u64,
    /// Datagrams that could not be sent (socket buffer full, no route).
    pub send_errors: u64,
    /// Guests' TCP connections refused because [`MAX_TCP_CLIENTS`] were open.
    pub dns_tcp_refused: u64,
    /// UDP sockets toward upstream DNS servers opened since start, and open now (live and
    /// retired; see the `upstream` module: a few per upstream, rotated).
    pub dns_upstream_sockets_opened: u64,
    pub dns_upstream_sockets_open: usize,
}

impl NetworkStats {
    /// DHCPOFFERs sent.
    pub fn dhcp_offered(&self) -> u64 {
        self.dhcp.map_or(0, |s| s.offers)
    }

    /// DNS queries answered from the network's own names.
    pub fn dns_answered(&self) -> u64 {
        self.dns.map_or(0, |s| s.answered)
    }

    /// DNS queries forwarded upstream.
    pub fn dns_forwarded(&self) -> u64 {
        self.dns.map_or(0, |s| s.forwarded)
    }

    /// DNS queries answered with an error of ours (SERVFAIL, REFUSED, NOTIMP).
    pub fn dns_failed(&self) -> u64 {
        self.dns.map_or(0, |s| s.failed)
    }
}

/// What the network's handle asks of its service task.
pub(crate) enum Command {
    Leases(oneshot::Sender<Vec<LeaseInfo>>),
    Stats(oneshot::Sender<NetworkStats>),
    /// Apply a definition changed by `net-update` (DHCP hosts, DNS hosts).
    Apply {
        def: Box<NetworkDef>,
        reply: oneshot::Sender<Result<(), VnetError>>,
    },
    Stop,
}

pub(crate) struct DhcpSide {
    pub engine: LeaseEngine,
    pub sock: UdpSocket,
}

pub(crate) struct DnsSide {
    pub server: DnsServer,
    pub udp: UdpSocket,
    pub tcp: TcpListener,
    /// Reply queues of open TCP connections, by peer, with the connection's number.
    pub tcp_clients: HashMap<SocketAddr, (u64, mpsc::Sender<Vec<u8>>)>,
    pub forward_wait: Duration,
    /// Long-lived sockets toward the upstreams, for forwarded UDP queries.
    pub upstream_udp: crate::upstream::UpstreamUdp,
    /// Set when the upstreams come from the host's resolv.conf.
    pub resolv: Option<ResolvWatch>,
}

pub(crate) struct ResolvWatch {
    pub path: PathBuf,
    pub net: NetworkDns,
    pub modified: Option<SystemTime>,
}

impl ResolvWatch {
    fn modified_now(&self) -> Option<SystemTime> {
        std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
    }
}

pub(crate) struct Service {
    pub network: String,
    pub bridge: String,
    pub ifindex: u32,
    pub def: NetworkDef,
    pub dhcp: Option<DhcpSide>,
    pub dns: Option<DnsSide>,
    pub leases_path: PathBuf,
    pub netlink: rtnetlink::Handle,
    pub netlink_conn: tokio::task::JoinHandle<()>,
    pub lease_names: HashMap<Ipv4Addr, String>,
    pub stats: NetworkStats,
    pub next_conn: u64,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.netlink_conn.abort();
    }
}

enum Event {
    Dhcp(std::io::Result<Received>),
    DnsUdp(std::io::Result<(usize, SocketAddr)>),
    Upstream((SocketAddr, usize)),
    Accept(std::io::Result<(TcpStream, SocketAddr)>),
    Internal(Internal),
    Command(Option<Command>),
    Timer,
    Resolv,
    Reaped,
}

async fn recv_dhcp(sock: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<Received> {
    match sock {
        Some(s) => sockets::recv_with_pktinfo(s, buf).await,
        None => std::future::pending().await,
    }
}

async fn recv_udp(
    sock: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn recv_upstream(
    u: Option<&crate::upstream::UpstreamUdp>,
    buf: &mut [u8],
) -> (SocketAddr, usize) {
    match u {
        Some(u) => std::future::poll_fn(|cx| u.poll_recv(cx, buf)).await,
        None => std::future::pending().await,
    }
}

async fn accept(l: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

impl Service {
    /// Runs until [`Command::Stop`] or until the handle is dropped. Everything the task owns
    /// (sockets, connection and forward tasks) is closed when it returns.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let (itx, mut irx) = mpsc::channel::<Internal>(INTERNAL_QUEUE);
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut dhcp_buf = vec![0u8; 65535];
        let mut dns_buf = vec![0u8; dns_io::MAX_MESSAGE];
        let mut upstream_buf = vec![0u8; dns_io::MAX_MESSAGE];
        let mut resolv_tick = tokio::time::interval(RESOLV_POLL);
        resolv_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Leases restored from the file are announced as events: give their names to DNS now.
        self.after_dhcp();
        tracing::info!(network = %self.network, bridge = %self.bridge, "network serving");
        // The lease engine's next deadline is a scan over its records: computed again only
        // after events that can change DHCP state, not for every DNS query (bench/vnet.sh
        // measured 30% of DNS CPU in that scan with 3,000 leases).
        let mut dhcp_deadline = self.dhcp_deadline();
        loop {
            let deadline = earliest(
                dhcp_deadline,
                self.dns.as_ref().and_then(|d| d.server.poll_timeout()),
            );
            let watch_resolv = self.dns.as_ref().is_some_and(|d| d.resolv.is_some());
            let event = tokio::select! {
                r = recv_dhcp(self.dhcp.as_ref().map(|d| &d.sock), &mut dhcp_buf) => Event::Dhcp(r),
                r = recv_udp(self.dns.as_ref().map(|d| &d.udp), &mut dns_buf) => Event::DnsUdp(r),
                r = recv_upstream(self.dns.as_ref().map(|d| &d.upstream_udp), &mut upstream_buf) => Event::Upstream(r),
                r = accept(self.dns.as_ref().map(|d| &d.tcp)) => Event::Accept(r),
                Some(m) = irx.recv() => Event::Internal(m),
                c = commands.recv() => Event::Command(c),
                _ = sleep_until(deadline) => Event::Timer,
                _ = resolv_tick.tick(), if watch_resolv => Event::Resolv,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => Event::Reaped,
            };
            let dns_only = matches!(
                event,
                Event::DnsUdp(Ok(_)) | Event::Accept(Ok(_)) | Event::Upstream(_)
            );
            match event {
                Event::Dhcp(Ok(r)) => self.on_dhcp(r, &mut dhcp_buf).await,
                Event::DnsUdp(Ok((n, from))) => {
                    let bytes = dns_buf.get(..n).unwrap_or_default();
                    self.on_dns_query(bytes, Client::udp(from), &mut tasks, &itx);
                    // Whatever else is queued, before going back to the select (one wake-up
                    // and one pass over every branch for a batch of queries).
                    for _ in 1..DNS_BATCH {
                        let Some(Ok((n, from))) =
                            self.dns.as_ref().map(|d| d.udp.try_recv_from(&mut dns_buf))
                        else {
                            break;
                        };
                        let bytes = dns_buf.get(..n).unwrap_or_default();
                        self.on_dns_query(bytes, Client::udp(from), &mut tasks, &itx);
                    }
                }
                Event::Upstream((from, n)) => {
                    let bytes = upstream_buf.get(..n).unwrap_or_default();
                    self.on_upstream(from, bytes, &mut tasks, &itx);
                    for _ in 1..DNS_BATCH {
                        let Some((from, n)) = self
                            .dns
                            .as_ref()
                            .and_then(|d| d.upstream_udp.try_recv(&mut upstream_buf))
                        else {
                            break;
                        };
                        let bytes = upstream_buf.get(..n).unwrap_or_default();
                        self.on_upstream(from, bytes, &mut tasks, &itx);
                    }
                }
                Event::Accept(Ok((stream, peer))) => self.on_accept(stream, peer, &mut tasks, &itx),
                Event::Dhcp(Err(e)) | Event::DnsUdp(Err(e)) | Event::Accept(Err(e)) => {
                    // Receive errors are transient (ENOBUFS, an aborted connection); pause a
                    // moment so a persistent one cannot spin the task.
                    tracing::debug!(network = %self.network, "receive: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Event::Internal(m) => self.on_internal(m, &mut tasks, &itx),
                Event::Command(Some(Command::Stop)) | Event::Command(None) => break,
                Event::Command(Some(c)) => self.on_command(c, &itx),
                Event::Timer => self.on_timer(&mut tasks, &itx),
                Event::Resolv => self.on_resolv_tick(),
                Event::Reaped => {}
            }
            if !dns_only {
                dhcp_deadline = self.dhcp_deadline();
            }
        }
        tracing::info!(network = %self.network, "network stopped serving");
    }

    fn dhcp_deadline(&self) -> Option<Instant> {
        self.dhcp.as_ref().and_then(|d| d.engine.poll_timeout())
    }

    // ------------------------------------------------------------------ DHCP

    /// A datagram on port 67, and every other one already queued (up to [`DHCP_BATCH`]): each
    /// goes through the lease engine, then the leases file is written once for all their
    /// changes, and only then do the replies leave. A client is never ACKed a lease that is
    /// not on disk yet, and under load one write (two `fsync`s) covers a batch of changes: the
    /// datagrams that queued up during the previous write (group commit).
    async fn on_dhcp(&mut self, first: Received, buf: &mut [u8]) {
        let Some(d) = self.dhcp.as_mut() else { return };
        let mut replies = Vec::new();
        let mut r = first;
        for _ in 0..DHCP_BATCH {
            let arrival = Arrival {
                ifindex: r.ifindex,
                from: r.from,
                dst: r.dst,
            };
            let bytes = buf.get(..r.len).unwrap_or_default();
            if let Some(reply) = d.engine.handle_packet(Instant::now(), bytes, arrival) {
                replies.push(reply);
            }
            match sockets::try_recv_with_pktinfo(&d.sock, buf) {
                Ok(next) => r = next,
                Err(_) => break,
            }
        }
        self.after_dhcp();
        for reply in replies {
            self.send_dhcp(reply).await;
        }
    }

    async fn send_dhcp(&mut self, reply: Reply) {
        let to = match reply.to {
            Destination::Broadcast => Ipv4Addr::BROADCAST,
            Destination::Unicast(ip) => ip,
            Destination::UnicastToHardware { ip, mac } => {
                match set_neighbour(self.netlink.clone(), self.ifindex, ip, mac.0).await {
                    Ok(()) => ip,
                    Err(e) => {
                        // Every client accepts a broadcast reply (that is what its BROADCAST
                        // flag asks for), so the exchange still completes.
                        tracing::warn!(network = %self.network, %ip, "neighbour entry: {e}; broadcasting the reply");
                        self.stats.neighbour_fallbacks += 1;
                        Ipv4Addr::BROADCAST
                    }
                }
            }
        };
        let Some(d) = self.dhcp.as_ref() else { return };
        let dest = SocketAddr::V4(SocketAddrV4::new(to, DHCP_CLIENT_PORT));
        // try_send: a full socket buffer drops this reply (the client retransmits) instead of
        // stalling DNS and every other client of the network.
        if let Err(e) = d.sock.try_send_to(&reply.bytes, dest) {
            self.stats.send_errors += 1;
            tracing::debug!(network = %self.network, %dest, "DHCP {:?}: {e}", reply.msg_type);
        }
    }

    /// Lease events → DNS names and the leases file.
    fn after_dhcp(&mut self) {
        let Some(d) = self.dhcp.as_mut() else { return };
        let mut changed = false;
        while let Some(ev) = d.engine.poll_event() {
            changed = true;
            tracing::debug!(network = %self.network, "lease {ev:?}");
            let dns = self.dns.as_mut().map(|s| &mut s.server);
            apply_lease_event(dns, &mut self.lease_names, ev);
        }
        if changed {
            self.persist();
        }
    }

    fn persist(&mut self) {
        let Some(d) = self.dhcp.as_ref() else { return };
        let text = d.engine.to_leases_file(Instant::now(), SystemTime::now());
        match files::write_atomic(&self.leases_path, text.as_bytes()) {
            Ok(()) => self.stats.lease_file_writes += 1,
            Err(e) => {
                self.stats.lease_file_errors += 1;
                tracing::warn!(network = %self.network, path = %self.leases_path.display(), "writing the leases file: {e}");
            }
        }
    }

    // ------------------------------------------------------------------ DNS

    fn on_dns_query(
        &mut self,
        bytes: &[u8],
        client: Client,
        tasks: &mut JoinSet<()>,
        itx: &mpsc::Sender<Internal>,
    ) {
        let Some(d) = self.dns.as_mut() else { return };
        if let Some(a) = d.server.handle_query(Instant::now(), bytes, client) {
            self.dns_action(a, tasks, itx);
        }
    }

    fn dns_action(&mut self, a: Action, tasks: &mut JoinSet<()>, itx: &mpsc::Sender<Internal>) {
        let Some(d) = self.dns.as_mut() else { return };
        match a {
            Action::Reply { client, bytes } => match client.transport {
                Transport::Udp => {
                    if let Err(e) = d.udp.try_send_to(&bytes, client.addr) {
                        self.stats.send_errors += 1;
                        tracing::debug!(network = %self.network, to = %client.addr, "DNS reply: {e}");
                    }
                }
                Transport::Tcp => {
                    if let Some((_, tx)) = d.tcp_clients.get(&client.addr) {
                        // A connection that does not read its answers loses them, not us.
                        let _ = tx.try_send(bytes);
                    }
                }
            },
            Action::Forward {
                upstream,
                transport,
                bytes,
            } => {
                let wait = d.forward_wait;
                match transport {
                    Transport::Udp => {
                        if let Err(e) = d.upstream_udp.send(Instant::now(), upstream, &bytes, wait)
                        {
                            // The core's timer moves on to the next upstream.
                            self.stats.send_errors += 1;
                            tracing::debug!(network = %self.network, %upstream, "DNS forward: {e}");
                        }
                    }
                    Transport::Tcp => {
                        tasks.spawn(dns_io::forward_tcp(upstream, bytes, itx.clone(), wait));
                    }
                }
            }
        }
    }

    fn on_accept(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        tasks: &mut JoinSet<()>,
        itx: &mpsc::Sender<Internal>,
    ) {
        let Some(d) = self.dns.as_mut() else { return };
        if d.tcp_clients.len() >= MAX_TCP_CLIENTS {
            self.stats.dns_tcp_refused += 1;
            return; // dropping the stream closes it
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        let (tx, rx) = mpsc::channel(TCP_REPLY_QUEUE);
        d.tcp_clients.insert(peer, (conn, tx));
        tasks.spawn(dns_io::tcp_client(stream, peer, conn, itx.clone(), rx));
    }

    fn on_internal(&mut self, m: Internal, tasks: &mut JoinSet<()>, itx: &mpsc::Sender<Internal>) {
        match m {
            Internal::TcpQuery { peer, conn, bytes } => {
                let current = self
                    .dns
                    .as_ref()
                    .and_then(|d| d.tcp_clients.get(&peer))
                    .is_some_and(|(c, _)| *c == conn);
                if current {
                    self.on_dns_query(&bytes, Client::tcp(peer), tasks, itx);
                }
            }
            Internal::TcpClosed { peer, conn } => {
                if let Some(d) = self.dns.as_mut() {
                    if d.tcp_clients.get(&peer).is_some_and(|(c, _)| *c == conn) {
                        d.tcp_clients.remove(&peer);
                    }
                }
            }
            Internal::Upstream { from, bytes } => self.on_upstream(from, &bytes, tasks, itx),
        }
    }

    /// An upstream's message (UDP from our sockets, or a TCP answer).
    fn on_upstream(
        &mut self,
        from: SocketAddr,
        bytes: &[u8],
        tasks: &mut JoinSet<()>,
        itx: &mpsc::Sender<Internal>,
    ) {
        let Some(d) = self.dns.as_mut() else { return };
        if let Some(a) = d
            .server
            .handle_upstream_response(Instant::now(), bytes, from)
        {
            self.dns_action(a, tasks, itx);
        }
    }

    fn on_resolv_tick(&mut self) {
        let Some(d) = self.dns.as_mut() else { return };
        let Some(w) = d.resolv.as_mut() else { return };
        let modified = w.modified_now();
        if modified == w.modified {
            return;
        }
        w.modified = modified;
        let text = files::read_optional(&w.path)
            .ok()
            .flatten()
            .unwrap_or_default();
        let resolvers = virtgate_dns::resolv_conf::parse(&text);
        match virtgate_dns::Config::from_libvirt(&w.net, &resolvers) {
            Ok(cfg) => {
                tracing::info!(network = %self.network, upstreams = ?cfg.upstreams, "resolv.conf changed");
                d.server.set_upstreams(cfg.upstreams);
            }
            Err(e) => tracing::warn!(network = %self.network, "resolv.conf changed: {e}"),
        }
    }

    // ------------------------------------------------------------------ time, commands

    fn on_timer(&mut self, tasks: &mut JoinSet<()>, itx: &mpsc::Sender<Internal>) {
        let now = Instant::now();
        if let Some(d) = self.dhcp.as_mut() {
            d.engine.handle_timeout(now);
        }
        self.after_dhcp();
        let actions = match self.dns.as_mut() {
            Some(d) => d.server.handle_timeout(now),
            None => Vec::new(),
        };
        for a in actions {
            self.dns_action(a, tasks, itx);
        }
    }

    fn on_command(&mut self, c: Command, _itx: &mpsc::Sender<Internal>) {
        match c {
            Command::Leases(reply) => {
                let leases = self
                    .dhcp
                    .as_ref()
                    .map(|d| d.engine.leases(Instant::now(), SystemTime::now()))
                    .unwrap_or_default();
                let _ = reply.send(leases);
            }
            Command::Stats(reply) => {
                let mut s = self.stats.clone();
                s.dhcp = self.dhcp.as_ref().map(|d| d.engine.stats());
                s.dns = self.dns.as_ref().map(|d| d.server.stats());
                if let Some(d) = self.dns.as_ref() {
                    s.dns_upstream_sockets_opened = d.upstream_udp.opened();
                    s.dns_upstream_sockets_open = d.upstream_udp.open_now();
                }
                s.leases_active = self.dhcp.as_ref().map_or(0, |d| {
                    d.engine.leases(Instant::now(), SystemTime::now()).len()
                });
                let _ = reply.send(s);
            }
            Command::Apply { def, reply } => {
                let r = self.apply(*def);
                let _ = reply.send(r);
            }
            Command::Stop => {}
        }
    }

    /// Brings the running servers in line with a definition that differs from the current one
    /// in its DHCP hosts and DNS hosts (what `net-update` changes). Everything is checked
    /// before anything changes, so an error leaves the network as it was.
    fn apply(&mut self, new: NetworkDef) -> Result<(), VnetError> {
        let network = self.network.clone();
        let new_dhcp = convert::dhcp_config(&new);
        if let Some(cfg) = &new_dhcp {
            cfg.validate().map_err(|source| VnetError::Dhcp {
                network: network.clone(),
                source,
            })?;
        }
        let new_dns = convert::network_dns(&new);
        if let (Some(net), Some(_)) = (&new_dns, &self.dns) {
            // A throw-away server proves the names acceptable to the DNS side.
            let cfg =
                virtgate_dns::Config::from_libvirt(net, &[]).map_err(|source| VnetError::Dns {
                    network: network.clone(),
                    source,
                })?;
            DnsServer::new(cfg, Box::new(OsEntropy)).map_err(|source| VnetError::Dns {
                network: network.clone(),
                source,
            })?;
        }
        let old_hosts = dhcp_hosts(&self.def);
        let new_hosts = dhcp_hosts(&new);
        let removed: Vec<_> = old_hosts
            .iter()
            .filter(|h| !new_hosts.contains(h))
            .collect();
        let added: Vec<_> = new_hosts
            .iter()
            .filter(|h| !old_hosts.contains(h))
            .collect();
        match (self.dhcp.as_mut(), new_dhcp) {
            (Some(d), Some(_)) => {
                for h in &removed {
                    d.engine.remove_static_host(convert::dhcp_mac(h.mac));
                }
                for h in &added {
                    d.engine
                        .add_static_host(convert::static_host(h))
                        .map_err(|source| VnetError::Dhcp {
                            network: network.clone(),
                            source,
                        })?;
                }
            }
            (Some(_), None) => {
                // The last reservation went and there is no range: no DHCP any more. The
                // leases file stays for a later definition with DHCP.
                self.persist();
                self.dhcp = None;
            }
            (None, Some(cfg)) => {
                let sock = sockets::dhcp_socket(&self.bridge)
                    .map_err(VnetError::io(format!("binding DHCP on {}", self.bridge)))?;
                let engine = load_engine(&network, cfg, &self.leases_path)?;
                self.dhcp = Some(DhcpSide { engine, sock });
            }
            (None, None) => {}
        }
        if let Some(d) = self.dns.as_mut() {
            let server = &mut d.server;
            for h in &removed {
                if let Some(name) = &h.name {
                    server.remove_reservation(name);
                }
            }
            for h in &added {
                if let Some(r) = convert::reservation(h) {
                    if let Err(e) = server.add_reservation(&r.name, r.ip) {
                        tracing::warn!(network = %network, "DNS name of {}: {e}", h.mac);
                    }
                }
            }
            let old_dns = &self.def.dns.hosts;
            let new_dns_hosts = &new.dns.hosts;
            for h in old_dns.iter().filter(|h| !new_dns_hosts.contains(h)) {
                server.remove_dns_host(h.ip);
            }
            for h in new_dns_hosts.iter().filter(|h| !old_dns.contains(h)) {
                if let Err(e) = server.add_dns_host(convert::dns_host(h)) {
                    tracing::warn!(network = %network, "DNS host {}: {e}", h.ip);
                }
            }
            if let (Some(w), Some(net)) = (d.resolv.as_mut(), new_dns) {
                w.net = net;
            }
        }
        self.def = new;
        self.after_dhcp();
        Ok(())
    }
}

/// `ip lladdr mac` on the bridge, so the kernel sends to `ip` without asking ARP (the client
/// does not answer for the address before it has it).
async fn set_neighbour(
    netlink: rtnetlink::Handle,
    ifindex: u32,
    ip: Ipv4Addr,
    mac: [u8; 6],
) -> Result<(), String> {
    let req = netlink
        .neighbours()
        .add(ifindex, IpAddr::V4(ip))
        .link_layer_address(&mac)
        .state(NeighbourState::Reachable)
        .replace();
    match tokio::time::timeout(NEIGHBOUR_TIMEOUT, req.execute()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("netlink did not answer".into()),
    }
}

fn dhcp_hosts(def: &NetworkDef) -> Vec<virtgate_config::libvirt::DhcpHost> {
    def.ip
        .as_ref()
        .map(|ip| ip.dhcp_hosts.clone())
        .unwrap_or_default()
}

/// Keeps the DNS names of leases in step with the lease engine: `Added`/`Renewed` are "ip now
/// has this name (or none)", `Released`/`Expired` are "ip has no lease".
pub(crate) fn apply_lease_event(
    dns: Option<&mut DnsServer>,
    names: &mut HashMap<Ipv4Addr, String>,
    ev: LeaseEvent,
) {
    let Some(dns) = dns else { return };
    match ev {
        LeaseEvent::Added { ip, hostname, .. } | LeaseEvent::Renewed { ip, hostname, .. } => {
            let old = names.remove(&ip);
            if let Some(old) = &old {
                if Some(old) != hostname.as_ref() {
                    dns.remove_lease_name(old, IpAddr::V4(ip));
                }
            }
            if let Some(h) = hostname {
                match dns.add_lease_name(&h, IpAddr::V4(ip)) {
                    Ok(()) => {
                        names.insert(ip, h);
                    }
                    // dnsmasq too refuses a lease name the configuration gives to another host.
                    Err(e) => tracing::info!(%ip, "lease name not published: {e}"),
                }
            }
        }
        LeaseEvent::Released { ip, .. } | LeaseEvent::Expired { ip, .. } => {
            if let Some(old) = names.remove(&ip) {
                dns.remove_lease_name(&old, IpAddr::V4(ip));
            }
        }
    }
}

/// The lease engine for `cfg` with the leases of `path` restored (the file's problems are
/// logged; a missing file is an empty one). A file that cannot be read at all is an error:
/// starting with no leases could hand out an address a guest still holds.
pub(crate) fn load_engine(
    network: &str,
    cfg: virtgate_dhcp::Config,
    path: &std::path::Path,
) -> Result<LeaseEngine, VnetError> {
    let text = files::read_optional(path)
        .map_err(VnetError::io(format!(
            "reading leases file {}",
            path.display()
        )))?
        .unwrap_or_default();
    let (engine, problems) =
        LeaseEngine::from_leases_file(cfg, &text, Instant::now(), SystemTime::now()).map_err(
            |source| VnetError::Dhcp {
                network: network.to_string(),
                source,
            },
        )?;
    for p in problems {
        tracing::warn!(network, path = %path.display(), "leases file: {p}");
    }
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtgate_dhcp::MacAddr;

    struct Counter(u8);
    impl virtgate_dns::Entropy for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    fn server() -> DnsServer {
        DnsServer::new(virtgate_dns::Config::default(), Box::new(Counter(0))).unwrap()
    }

    fn ask(dns: &mut DnsServer, name: &str) -> Option<Vec<u8>> {
        use virtgate_dns::Action;
        // A minimal A query (RFC 1035 §4.1): id 1, RD, one question.
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let client = Client::udp("192.0.2.9:5353".parse().unwrap());
        match dns.handle_query(Instant::now(), &q, client) {
            Some(Action::Reply { bytes, .. }) => Some(bytes),
            _ => None,
        }
    }

    /// The A record's address in an answer, if the answer has one (last 4 octets).
    fn answer_ip(reply: &[u8]) -> Option<Ipv4Addr> {
        let ancount = u16::from_be_bytes([reply[6], reply[7]]);
        if ancount == 0 {
            return None;
        }
        let n = reply.len();
        Some(Ipv4Addr::new(
            reply[n - 4],
            reply[n - 3],
            reply[n - 2],
            reply[n - 1],
        ))
    }

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);

    #[test]
    fn lease_events_drive_dns_names() {
        let mut dns = server();
        let mut names = HashMap::new();
        let ip = Ipv4Addr::new(192, 168, 150, 101);
        apply_lease_event(
            Some(&mut dns),
            &mut names,
            LeaseEvent::Added {
                mac: MAC,
                ip,
                hostname: Some("guest-a".into()),
            },
        );
        assert_eq!(answer_ip(&ask(&mut dns, "guest-a").unwrap()), Some(ip));
        // Renamed: the old name goes, the new one answers.
        apply_lease_event(
            Some(&mut dns),
            &mut names,
            LeaseEvent::Renewed {
                mac: MAC,
                ip,
                hostname: Some("guest-b".into()),
            },
        );
        assert_eq!(answer_ip(&ask(&mut dns, "guest-b").unwrap()), Some(ip));
        assert_eq!(ask(&mut dns, "guest-a").and_then(|r| answer_ip(&r)), None);
        // Renewed without a name: none left.
        apply_lease_event(
            Some(&mut dns),
            &mut names,
            LeaseEvent::Renewed {
                mac: MAC,
                ip,
                hostname: None,
            },
        );
        assert_eq!(ask(&mut dns, "guest-b").and_then(|r| answer_ip(&r)), None);
        assert!(names.is_empty());
        apply_lease_event(
            Some(&mut dns),
            &mut names,
            LeaseEvent::Added {
                mac: MAC,
                ip,
                hostname: Some("guest-c".into()),
            },
        );
        apply_lease_event(
            Some(&mut dns),
            &mut names,
            LeaseEvent::Expired {
                mac: MAC,
                ip,
                hostname: Some("guest-c".into()),
            },
        );
        assert_eq!(ask(&mut dns, "guest-c").and_then(|r| answer_ip(&r)), None);
        assert!(names.is_empty());
        // Without DNS nothing is tracked.
        apply_lease_event(
            None,
            &mut names,
            LeaseEvent::Added {
                mac: MAC,
                ip,
                hostname: Some("x".into()),
            },
        );
        assert!(names.is_empty());
    }

    #[test]
    fn a_newer_lease_takes_a_name_and_the_older_release_keeps_it() {
        let mut dns = server();
        let mut names = HashMap::new();
        let a = Ipv4Addr::new(10, 0, 0, 10);
        let b = Ipv4Addr::new(10, 0, 0, 11);
        for ip in [a, b] {
            apply_lease_event(
                Some(&mut dns),
                &mut names,
                LeaseEvent::Added {
                    mac: MAC,
                    ip,
                    hostname: Some("same".into()),
                },
            );
        }
        apply_lease_event(
            Some(&mut dns),
            &mut names,
            LeaseEvent::Released {
                mac: MAC,
                ip: a,
                hostname: Some("same".into()),
            },
        );
        assert_eq!(answer_ip(&ask(&mut dns, "same").unwrap()), Some(b));
    }

    #[test]
    fn stats_helpers() {
        let mut s = NetworkStats::default();
        assert_eq!((s.dhcp_offered(), s.dns_answered()), (0, 0));
        let mut d = virtgate_dhcp::Stats::default();
        d.offers = 3;
        s.dhcp = Some(d);
        s.dns = Some(virtgate_dns::Stats {
            answered: 5,
            forwarded: 2,
            failed: 1,
            ..Default::default()
        });
        assert_eq!(
            (
                s.dhcp_offered(),
                s.dns_answered(),
                s.dns_forwarded(),
                s.dns_failed()
            ),
            (3, 5, 2, 1)
        );
    }
}
