//! The kernel-facing pieces: the raw IPPROTO_GRE socket (RFC 2637 §4: GRE carried directly in
//! IPv4, protocol 47), the TUN device and /32 routes through netlink.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

use rtnetlink::packet_route::route::{RouteAttribute, RouteMetric};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;

/// Sleeps until `t`, or forever without one (a `select!` branch for the next deadline).
pub async fn sleep_until(t: Option<std::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// IP protocol number of GRE.
pub const IPPROTO_GRE: i32 = 47;

/// One raw GRE socket for every call. Received packets start with the IPv4 header.
pub struct GreSocket {
    fd: AsyncFd<Socket>,
}

impl GreSocket {
    /// Opens the socket, bound to `local` when pptpd.conf has `listen` (the kernel then only
    /// delivers GRE addressed to it).
    pub fn open(local: Option<Ipv4Addr>) -> io::Result<GreSocket> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_GRE)))?;
        s.set_nonblocking(true)?;
        if let Some(a) = local {
            s.bind(&SockAddr::from(SocketAddrV4::new(a, 0)))?;
        }
        // Let routers fragment our GRE packets: the tunnel MTU plus GRE/IP overhead exceeds a
        // 1500-byte path, and PPTP peers reassemble (pptpd and the Linux pptp module do the same,
        // no DF on GRE).
        set_pmtudisc_dont(&s)?;
        // Bursts from many sessions: a bigger receive queue than the default 208 KiB.
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        // SAFETY: `Socket` owns its descriptor and always returns that same one from
        // `as_raw_fd`; it stays open until the `AsyncFd` (which owns the socket) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(s, Interest::READABLE) }?;
        Ok(GreSocket { fd })
    }

    /// Waits until a packet may be read.
    pub async fn readable(&self) -> io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, Socket>> {
        self.fd.readable().await
    }

    /// Reads one packet without waiting (`WouldBlock` when none is queued).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s: &Socket = self.fd.get_ref();
        s.read(buf)
    }

    /// Reads up to `batch.len()` packets in one `recvmmsg` without waiting; returns how many
    /// (`WouldBlock` when none is queued). Packet `i` is `batch.packet(i)`.
    pub fn try_recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.recv(self.fd.get_ref().as_raw_fd())
    }

    /// Sends one GRE packet (header + payload) to `peer`; the kernel adds the IPv4 header.
    /// Drops the packet when the socket buffer is full (a router would too; GRE is unreliable).
    pub fn send_to(&self, pkt: &[u8], peer: Ipv4Addr) -> io::Result<()> {
        match self
            .fd
            .get_ref()
            .send_to(pkt, &SockAddr::from(SocketAddrV4::new(peer, 0)))
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Buffers for [`GreSocket::try_recv_batch`]: one system call for up to `count` packets
/// instead of one each (issue 8: the raw socket's per-packet `recvfrom` was 6–16% of the
/// receiving daemon's time).
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    truncated: Vec<bool>,
}

impl RecvBatch {
    /// `count` buffers of `size` octets each (a packet longer than `size` is reported
    /// truncated and must be dropped).
    pub fn new(count: usize, size: usize) -> RecvBatch {
        RecvBatch {
            bufs: (0..count.max(1)).map(|_| vec![0u8; size]).collect(),
            lens: vec![0; count.max(1)],
            truncated: vec![false; count.max(1)],
        }
    }

    /// Packet `i` of the last batch: its buffer (the packet at the start) and its length, or
    /// `None` when it was truncated or `i` is out of range.
    pub fn packet(&mut self, i: usize) -> Option<(&mut [u8], usize)> {
        if self.truncated.get(i).copied().unwrap_or(true) {
            return None;
        }
        let n = *self.lens.get(i)?;
        self.bufs.get_mut(i).map(|b| (b.as_mut_slice(), n))
    }

    fn recv(&mut self, fd: std::os::fd::RawFd) -> io::Result<usize> {
        let count = self.bufs.len();
        let mut iovs: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; all-zero is a valid (empty) value.
        let mut msgs: Vec<libc::mmsghdr> =
            (0..count).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` holds `count` headers, each pointing to one iovec over a live buffer
        // of its stated length; all outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, m) in msgs.iter().take(n).enumerate() {
            self.lens[i] = m.msg_len as usize;
            self.truncated[i] = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        Ok(n)
    }
}

impl crate::link::GreTx for GreSocket {
    fn send_gre(&self, pkt: &[u8], peer: Ipv4Addr) -> io::Result<()> {
        self.send_to(pkt, peer)
    }
}

/// The PPTP listener, with a deep accept queue: clients that connect in bursts (thousands
/// redialling after an outage, bench/sessions.sh) otherwise overflow it, and each dropped
/// connection costs its client a 1 s SYN retransmission. The kernel caps the backlog at
/// `net.core.somaxconn` (4096 by default).
pub fn tcp_listener(addr: std::net::SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SockAddr::from(addr))?;
    s.listen(4096)?;
    tokio::net::TcpListener::from_std(s.into())
}

/// Raises the soft limit on open files to the hard limit (10,000 sessions need 10,000 TCP
/// sockets; distributions start services with a soft limit of 1,024). Returns the new limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if r.rlim_cur < r.rlim_max {
        r.rlim_cur = r.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(r.rlim_cur)
}

pub(crate) fn set_pmtudisc_dont(s: &Socket) -> io::Result<()> {
    let v: libc::c_int = libc::IP_PMTUDISC_DONT;
    // SAFETY: setsockopt with a valid fd, a pointer to a c_int and its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The source and protocol of a received IPv4 packet, and where its payload starts (past the
/// header's IHL). `None` for anything that is not a well-formed IPv4 header.
pub fn ipv4_payload(pkt: &[u8]) -> Option<(Ipv4Addr, usize, usize)> {
    let first = *pkt.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || pkt.len() < ihl {
        return None;
    }
    let src = Ipv4Addr::new(*pkt.get(12)?, *pkt.get(13)?, *pkt.get(14)?, *pkt.get(15)?);
    // The kernel hands raw sockets reassembled packets; trust the received length, bounded by
    // the header's total length when that is smaller (trailing padding).
    let total = usize::from(u16::from_be_bytes([*pkt.get(2)?, *pkt.get(3)?]));
    let end = if total >= ihl && total <= pkt.len() {
        total
    } else {
        pkt.len()
    };
    Some((src, ihl, end))
}

/// The destination of an IPv4 packet read from the TUN.
pub fn ipv4_dst(pkt: &[u8]) -> Option<Ipv4Addr> {
    if pkt.first()? >> 4 != 4 || pkt.len() < 20 {
        return None;
    }
    Some(Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]))
}

/// Creates the TUN device `name` with `addr/32` (and `peer` as point-to-point destination when
/// given: the kernel then routes `peer/32` to it), `mtu`, up.
pub fn create_tun(
    name: &str,
    addr: Ipv4Addr,
    peer: Option<Ipv4Addr>,
    mtu: u16,
) -> io::Result<tun_rs::AsyncDevice> {
    tun_rs::DeviceBuilder::new()
        .name(name)
        .ipv4(addr, 32u8, peer)
        .mtu(mtu)
        .build_async()
}

/// Index of an interface by name.
pub fn if_index(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

/// A route change for the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOp {
    /// A /32 to the client; with an MTU when the client's is below the TUN's.
    Add(Ipv4Addr, Option<u16>),
    Del(Ipv4Addr),
    /// pppd's `proxyarp` for a client that came up.
    ProxyArpAdd(Ipv4Addr),
    /// The client went down: remove its proxy entry, if one was added.
    ProxyArpDel(Ipv4Addr),
}

/// Adds and removes `/32` routes through the TUN over rtnetlink, in order, off the data path.
/// Dropping the handle stops the worker; routes through the TUN vanish with it anyway.
#[derive(Clone)]
pub struct Routes {
    tx: mpsc::UnboundedSender<RouteOp>,
}

impl Routes {
    pub fn start(ifindex: u32) -> io::Result<Routes> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        let (tx, mut rx) = mpsc::unbounded_channel::<RouteOp>();
        tokio::spawn(async move {
            // Proxy entries we added: client → interface index.
            let mut proxies: std::collections::HashMap<Ipv4Addr, u32> = Default::default();
            while let Some(op) = rx.recv().await {
                let (ip, add, mtu) = match op {
                    RouteOp::Add(ip, mtu) => (ip, true, mtu),
                    RouteOp::Del(ip) => (ip, false, None),
                    RouteOp::ProxyArpAdd(ip) => {
                        proxy_arp_add(&handle, ip, &mut proxies).await;
                        continue;
                    }
                    RouteOp::ProxyArpDel(ip) => {
                        if let Some(ifindex) = proxies.remove(&ip) {
                            proxy_arp_del(&handle, ip, ifindex).await;
                        }
                        continue;
                    }
                };
                let mut msg = rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(ip, 32)
                    .output_interface(ifindex)
                    .build();
                if let Some(mtu) = mtu {
                    // One TUN serves every client, but each negotiated its own MRU: the route's
                    // MTU metric makes the kernel fragment (or send ICMP frag-needed) per client,
                    // as pppd's per-interface MTU does.
                    msg.attributes
                        .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(u32::from(
                            mtu,
                        ))]));
                }
                let r = if add {
                    handle.route().add(msg).replace().execute().await
                } else {
                    handle.route().del(msg).execute().await
                };
                match r {
                    Ok(()) => tracing::debug!(%ip, add, "route updated"),
                    Err(e) => tracing::warn!(%ip, add, "route change failed: {e}"),
                }
            }
            // Stopping: proxy entries live on the LAN interface, which outlives us.
            for (ip, ifindex) in proxies {
                proxy_arp_del(&handle, ip, ifindex).await;
            }
        });
        Ok(Routes { tx })
    }

    pub fn add(&self, ip: Ipv4Addr, mtu: Option<u16>) {
        let _ = self.tx.send(RouteOp::Add(ip, mtu));
    }

    pub fn del(&self, ip: Ipv4Addr) {
        let _ = self.tx.send(RouteOp::Del(ip));
    }

    pub fn proxy_arp_add(&self, ip: Ipv4Addr) {
        let _ = self.tx.send(RouteOp::ProxyArpAdd(ip));
    }

    pub fn proxy_arp_del(&self, ip: Ipv4Addr) {
        let _ = self.tx.send(RouteOp::ProxyArpDel(ip));
    }
}

/// An IPv4 address of an interface, as the kernel lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    pub ifindex: u32,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    /// Up, Ethernet-like (ARPHRD_ETHER), ARP on, not loopback, not point-to-point.
    pub ethernet_like: bool,
}

/// pppd's `get_ether_addr` choice: the first Ethernet-like interface whose subnet holds `ip`.
pub fn proxy_arp_interface(ip: Ipv4Addr, addrs: &[IfAddr]) -> Option<u32> {
    addrs
        .iter()
        .filter(|a| a.ethernet_like && a.prefix_len <= 32)
        .find(|a| {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(a.prefix_len))
                .unwrap_or(0);
            (u32::from(a.addr) ^ u32::from(ip)) & mask == 0
        })
        .map(|a| a.ifindex)
}

/// The host's IPv4 addresses with whether their interface is Ethernet-like.
async fn if_addrs(handle: &rtnetlink::Handle) -> Result<Vec<IfAddr>, rtnetlink::Error> {
    use futures_util::TryStreamExt;
    use rtnetlink::packet_route::address::AddressAttribute;
    use rtnetlink::packet_route::link::{LinkFlags, LinkLayerType};
    let mut ether = std::collections::HashSet::new();
    let mut links = handle.link().get().execute();
    while let Some(l) = links.try_next().await? {
        let f = l.header.flags;
        if l.header.link_layer_type == LinkLayerType::Ether
            && f.contains(LinkFlags::Up)
            && !f.intersects(LinkFlags::Loopback | LinkFlags::Pointopoint | LinkFlags::Noarp)
        {
            ether.insert(l.header.index);
        }
    }
    let mut out = Vec::new();
    let mut addrs = handle.address().get().execute();
    while let Some(a) = addrs.try_next().await? {
        for attr in &a.attributes {
            if let AddressAttribute::Local(std::net::IpAddr::V4(v4)) = attr {
                out.push(IfAddr {
                    ifindex: a.header.index,
                    addr: *v4,
                    prefix_len: a.header.prefix_len,
                    ethernet_like: ether.contains(&a.header.index),
                });
            }
        }
    }
    Ok(out)
}

/// `ip neigh add proxy IP dev IF` on the interface pppd's `proxyarp` would pick.
async fn proxy_arp_add(
    handle: &rtnetlink::Handle,
    ip: Ipv4Addr,
    proxies: &mut std::collections::HashMap<Ipv4Addr, u32>,
) {
    use rtnetlink::packet_route::neighbour::NeighbourFlags;
    let addrs = match if_addrs(handle).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(%ip, "proxyarp: cannot list interfaces: {e}");
            return;
        }
    };
    let Some(ifindex) = proxy_arp_interface(ip, &addrs) else {
        // pppd's words, once per session.
        tracing::warn!(%ip, "Cannot determine ethernet address for proxy ARP");
        return;
    };
    let r = handle
        .neighbours()
        .add(ifindex, ip.into())
        .flags(NeighbourFlags::Proxy)
        .replace()
        .execute()
        .await;
    match r {
        Ok(()) => {
            tracing::debug!(%ip, ifindex, "proxy ARP entry added");
            proxies.insert(ip, ifindex);
        }
        Err(e) => tracing::warn!(%ip, ifindex, "proxyarp: cannot add the proxy entry: {e}"),
    }
}

async fn proxy_arp_del(handle: &rtnetlink::Handle, ip: Ipv4Addr, ifindex: u32) {
    use rtnetlink::packet_route::neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
    };
    use rtnetlink::packet_route::AddressFamily;
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = ifindex;
    msg.header.flags = NeighbourFlags::Proxy;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    match handle.neighbours().del(msg).execute().await {
        Ok(()) => tracing::debug!(%ip, ifindex, "proxy ARP entry removed"),
        Err(e) => tracing::warn!(%ip, ifindex, "proxyarp: cannot remove the proxy entry: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_arp_picks_the_ethernet_subnet_holding_the_client() {
        let a = |ifindex, addr: [u8; 4], prefix_len, ethernet_like| IfAddr {
            ifindex,
            addr: Ipv4Addr::from(addr),
            prefix_len,
            ethernet_like,
        };
        let addrs = [
            a(1, [127, 0, 0, 1], 8, false),
            a(5, [192, 168, 0, 1], 32, false), // the TUN
            a(2, [10, 0, 0, 5], 24, true),
            a(3, [192, 168, 0, 2], 24, true),
            a(4, [0, 0, 0, 0], 0, false),
        ];
        assert_eq!(
            proxy_arp_interface(Ipv4Addr::new(192, 168, 0, 100), &addrs),
            Some(3)
        );
        assert_eq!(
            proxy_arp_interface(Ipv4Addr::new(10, 0, 0, 200), &addrs),
            Some(2)
        );
        assert_eq!(
            proxy_arp_interface(Ipv4Addr::new(10, 0, 1, 200), &addrs),
            None
        );
        assert_eq!(
            proxy_arp_interface(Ipv4Addr::new(127, 0, 0, 9), &addrs),
            None
        );
        // /0 on an Ethernet-like interface holds everything; prefix_len > 32 never matches.
        let any = [a(7, [0, 0, 0, 0], 0, true), a(8, [1, 2, 3, 4], 40, true)];
        assert_eq!(
            proxy_arp_interface(Ipv4Addr::new(9, 9, 9, 9), &any),
            Some(7)
        );
    }

    #[test]
    fn ipv4_payload_skips_options_and_never_panics() {
        let mut p = vec![0u8; 40];
        p[0] = 0x46; // IHL 6 (one option word)
        p[2..4].copy_from_slice(&36u16.to_be_bytes());
        p[12..16].copy_from_slice(&[10, 77, 0, 20]);
        assert_eq!(
            ipv4_payload(&p),
            Some((Ipv4Addr::new(10, 77, 0, 20), 24, 36))
        );
        // Total length larger than what arrived: use what arrived.
        p[2..4].copy_from_slice(&400u16.to_be_bytes());
        assert_eq!(ipv4_payload(&p).map(|x| x.2), Some(40));
        for n in 0..p.len() {
            let _ = ipv4_payload(&p[..n]);
            let _ = ipv4_dst(&p[..n]);
        }
        p[0] = 0x44;
        assert_eq!(ipv4_payload(&p), None);
        p[0] = 0x65;
        assert_eq!(ipv4_payload(&p), None);
    }

    #[test]
    fn ipv4_dst_reads_the_destination() {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[16..20].copy_from_slice(&[192, 168, 0, 100]);
        assert_eq!(ipv4_dst(&p), Some(Ipv4Addr::new(192, 168, 0, 100)));
        p[0] = 0x60;
        assert_eq!(ipv4_dst(&p), None);
    }
}
