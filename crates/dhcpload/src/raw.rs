//! An `AF_PACKET` socket on one interface (packet(7)): the load clients send whole Ethernet
//! frames from MAC addresses of their own, and receive the servers' replies whether they are
//! broadcast or unicast to one of those MACs (the interface is put in promiscuous mode through a
//! socket membership, which ends with the socket).
//!
//! Why not a UDP socket on 0.0.0.0:68 with `SO_BINDTODEVICE`: it sends from the interface's
//! own MAC and IP address, so every client would share one link address, and a reply unicast
//! to a client's `chaddr` (what servers do without the BROADCAST flag, RFC 2131 §4.1) is
//! dropped by the kernel as not for this host.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::frame::ETHERTYPE_IPV4;

/// `sll_pkttype` of frames this host sent (packet(7)); not wanted back.
const PACKET_OUTGOING: u8 = 4;

/// A frame as received: its length in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
}

#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(mem::size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `v` points to a live `T` of `len` octets; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (v as *const T).cast::<libc::c_void>(),
            len,
        )
    };
    check(rc).map(|_| ())
}

fn sockaddr_ll(ifindex: i32, dst: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as libc::sa_family_t;
    sa.sll_protocol = ETHERTYPE_IPV4.to_be();
    sa.sll_ifindex = ifindex;
    if let Some(mac) = dst {
        sa.sll_halen = 6;
        for (d, s) in sa.sll_addr.iter_mut().zip(mac) {
            *d = s;
        }
    }
    sa
}

impl PacketSocket {
    /// A non-blocking raw packet socket for IPv4 frames on `iface`, promiscuous, not echoing
    /// our own transmissions, with a receive buffer of `rcvbuf` octets (forced, as root may).
    pub fn open(iface: &str, rcvbuf: usize) -> io::Result<Self> {
        let name = std::ffi::CString::new(iface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
        // SAFETY: a NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index"))?;
        let proto = libc::c_int::from(ETHERTYPE_IPV4.to_be());
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                proto,
            )
        })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sa = sockaddr_ll(ifindex, None);
        let sa_len = libc::socklen_t::try_from(mem::size_of::<libc::sockaddr_ll>())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `sa` is a valid sockaddr_ll of `sa_len` octets.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                sa_len,
            )
        })?;
        // SAFETY: packet_mreq is plain old data; all-zero is a valid value.
        let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
        mreq.mr_ifindex = ifindex;
        mreq.mr_type = libc::PACKET_MR_PROMISC as libc::c_ushort;
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)?;
        // Linux ≥ 4.20; on older kernels outgoing frames are skipped by their pkttype instead.
        let _ = setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32);
        let size = libc::c_int::try_from(rcvbuf).unwrap_or(libc::c_int::MAX);
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size).is_err() {
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &size)?;
        }
        Ok(PacketSocket { fd, ifindex })
    }

    /// Sends one whole frame (its own Ethernet header included) to `dst_mac`. A full queue is
    /// `WouldBlock`.
    pub fn send(&self, frame: &[u8], dst_mac: [u8; 6]) -> io::Result<()> {
        let sa = sockaddr_ll(self.ifindex, Some(dst_mac));
        let sa_len = libc::socklen_t::try_from(mem::size_of::<libc::sockaddr_ll>())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `frame` and `sa` are valid for the lengths given; the kernel only reads them.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast::<libc::c_void>(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                sa_len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One received frame, `None` when nothing is queued. Our own transmissions are skipped.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        loop {
            // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
            let mut sa: libc::sockaddr_ll = unsafe { mem::zeroed() };
            let mut sa_len = libc::socklen_t::try_from(mem::size_of::<libc::sockaddr_ll>())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: `buf` is writable for its length; `sa`/`sa_len` describe a sockaddr_ll
            // the kernel fills in and never writes past `sa_len`.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                    0,
                    (&mut sa as *mut libc::sockaddr_ll).cast::<libc::sockaddr>(),
                    &mut sa_len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if sa.sll_pkttype == PACKET_OUTGOING {
                continue;
            }
            let len = usize::try_from(n).unwrap_or(0).min(buf.len());
            return Ok(Some(Received { len }));
        }
    }

    /// Waits until a frame can be read or `timeout` passes (millisecond resolution, rounded
    /// up so a short wait does not become a busy loop). True if readable.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let ms = timeout.as_micros().div_ceil(1000);
        let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(rc > 0)
    }
}
