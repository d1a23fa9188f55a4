//! The sockets of one network, each tied to the network's bridge with `SO_BINDTODEVICE`, so a
//! network's servers only ever see its own guests (the reason libvirt runs dnsmasq with
//! `bind-dynamic` + `interface=`, CVE-2012-3411), and several networks share ports 67 and 53
//! on one host.
//!
//! - DHCP (RFC 2131 §4.1): UDP `0.0.0.0:67` on the bridge with `SO_BROADCAST` (DHCPNAKs and
//!   replies to clients that ask for broadcast go to 255.255.255.255) and `IP_PKTINFO` (a
//!   request's destination address tells a RENEWING client, unicast to us, from a REBINDING
//!   one, broadcast; RFC 2131 §4.3.2).
//! - DNS (RFC 1035 §4.2): UDP and TCP on the bridge address, port 53.

use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use nix::sys::socket::{self as nixsock, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::{TcpListener, UdpSocket};

/// The DHCP server port (RFC 2131 §4.1).
pub const DHCP_SERVER_PORT: u16 = 67;
/// The DHCP client port (RFC 2131 §4.1).
pub const DHCP_CLIENT_PORT: u16 = 68;
/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// How many TCP connections may wait to be accepted.
const TCP_BACKLOG: i32 = 64;

fn on_device(domain: Domain, ty: Type, proto: Protocol, bridge: &str) -> io::Result<Socket> {
    let s = Socket::new(domain, ty, Some(proto))?;
    // Several networks (and a restarted one) bind the same port on different bridges.
    s.set_reuse_address(true)?;
    // Before bind: the kernel then lets each bridge have its own socket on the port.
    s.bind_device(Some(bridge.as_bytes()))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// UDP port 67 on `bridge` only, broadcast allowed, destination addresses reported.
pub fn dhcp_socket(bridge: &str) -> io::Result<UdpSocket> {
    let s = on_device(Domain::IPV4, Type::DGRAM, Protocol::UDP, bridge)?;
    s.set_broadcast(true)?;
    nixsock::setsockopt(&s, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, DHCP_SERVER_PORT));
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// UDP port 53 on the bridge's address, for queries that arrive on `bridge`.
pub fn dns_udp_socket(bridge: &str, addr: Ipv4Addr) -> io::Result<UdpSocket> {
    let s = on_device(Domain::IPV4, Type::DGRAM, Protocol::UDP, bridge)?;
    s.bind(&SocketAddr::from((addr, DNS_PORT)).into())?;
    UdpSocket::from_std(s.into())
}

/// TCP port 53 on the bridge's address (RFC 7766: a DNS server must serve TCP too).
pub fn dns_tcp_listener(bridge: &str, addr: Ipv4Addr) -> io::Result<TcpListener> {
    let s = on_device(Domain::IPV4, Type::STREAM, Protocol::TCP, bridge)?;
    s.bind(&SocketAddr::from((addr, DNS_PORT)).into())?;
    s.listen(TCP_BACKLOG)?;
    TcpListener::from_std(s.into())
}

/// One datagram as the DHCP socket received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddrV4,
    /// The IP header's destination address (`IP_PKTINFO`).
    pub dst: Option<Ipv4Addr>,
    /// The interface it arrived on.
    pub ifindex: Option<u32>,
}

/// Receives one datagram with its `IP_PKTINFO`. Cancel-safe: nothing is consumed unless the
/// whole datagram is returned.
pub async fn recv_with_pktinfo(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    let fd = sock.as_raw_fd();
    sock.async_io(Interest::READABLE, || recv_once(fd, buf))
        .await
}

/// [`recv_with_pktinfo`] without waiting: `WouldBlock` when nothing is queued.
pub fn try_recv_with_pktinfo(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    let fd = sock.as_raw_fd();
    sock.try_io(Interest::READABLE, || recv_once(fd, buf))
}

fn recv_once(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut cmsg = nix::cmsg_space!(nix::libc::in_pktinfo);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = nixsock::recvmsg::<SockaddrIn>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let from = msg
        .address
        .map(|a| SocketAddrV4::new(a.ip(), a.port()))
        .unwrap_or_else(|| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    let mut dst = None;
    let mut ifindex = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
                dst = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
                ifindex = u32::try_from(info.ipi_ifindex).ok();
            }
        }
    }
    Ok(Received {
        len: msg.bytes,
        from,
        dst,
        ifindex,
    })
}
