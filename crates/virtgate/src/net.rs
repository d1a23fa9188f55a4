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

fn set_pmtudisc_dont(s: &Socket) -> io::Result<()> {
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
            while let Some(op) = rx.recv().await {
                let (ip, add, mtu) = match op {
                    RouteOp::Add(ip, mtu) => (ip, true, mtu),
                    RouteOp::Del(ip) => (ip, false, None),
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
        });
        Ok(Routes { tx })
    }

    pub fn add(&self, ip: Ipv4Addr, mtu: Option<u16>) {
        let _ = self.tx.send(RouteOp::Add(ip, mtu));
    }

    pub fn del(&self, ip: Ipv4Addr) {
        let _ = self.tx.send(RouteOp::Del(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
