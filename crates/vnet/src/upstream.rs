//! UDP toward the upstream DNS servers: a few long-lived connected sockets per upstream, owned
//! by the network's service task, shared by many queries (no socket, task or buffer per
//! query).
//!
//! Cache-poisoning resistance (RFC 5452 §9.2: an unpredictable id *and* source port):
//! - every socket is bound to a port the kernel picks at random from the ephemeral range, and
//!   connected, so the kernel drops datagrams from any address and port but the upstream's;
//! - the DNS core gives every forwarded query a random id; the id picks the socket
//!   (`id % SLOTS`), and an answer is taken only from the socket its id maps to. A forged
//!   answer must therefore match an outstanding (port, id) pair, as with a socket per query:
//!   `outstanding / (ephemeral ports × 65536)` per attempt;
//! - sockets are not kept for ever: one that has sent [`ROTATE_USES`] queries is replaced once
//!   it is [`ROTATE_MIN_AGE`] old, and any is replaced at [`MAX_AGE`]. A replaced socket keeps
//!   receiving for the forward wait (late answers to its queries), then closes.
//!
//! dnsmasq works the same way: its `randomsocks` pool is shared by the queries in flight.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::ReadBuf;
use tokio::net::UdpSocket;

/// Sockets per upstream server.
pub(crate) const SLOTS: usize = 8;

/// Queries one socket sends before it is replaced (no sooner than [`ROTATE_MIN_AGE`]).
pub(crate) const ROTATE_USES: u32 = 64;

/// The youngest a socket is replaced for its use count: bounds the sockets open at once to
/// about `SLOTS × (1 + forward wait / ROTATE_MIN_AGE)` per upstream under any load.
pub(crate) const ROTATE_MIN_AGE: Duration = Duration::from_secs(5);

/// The oldest a socket gets, however few queries it sent.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(60);

/// More upstreams than this (resolv.conf has at most 3, libvirt forwarders are few) share the
/// oldest pool's place: its sockets retire.
const MAX_UPSTREAMS: usize = 16;

/// Datagrams taken from one socket per poll before the others get their turn.
const BURST: usize = 32;

struct Slot {
    sock: UdpSocket,
    uses: u32,
    opened: Instant,
}

struct Retired {
    sock: UdpSocket,
    upstream: SocketAddr,
    slot: usize,
    until: Instant,
}

/// The sockets of one network toward its upstreams.
pub(crate) struct UpstreamUdp {
    /// The upstreams with sockets; upstream `p` owns `slots[p * SLOTS..(p + 1) * SLOTS]`.
    upstreams: Vec<SocketAddr>,
    slots: Vec<Option<Slot>>,
    retired: Vec<Retired>,
    /// Where the next poll starts, so no socket starves the others.
    start: AtomicUsize,
    /// Sockets opened (for tests and stats).
    opened: u64,
}

impl UpstreamUdp {
    pub fn new() -> Self {
        UpstreamUdp {
            upstreams: Vec::new(),
            slots: Vec::new(),
            retired: Vec::new(),
            start: AtomicUsize::new(0),
            opened: 0,
        }
    }

    /// Sockets opened since start.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// Sockets open now (live and retired).
    pub fn open_now(&self) -> usize {
        self.slots.iter().flatten().count() + self.retired.len()
    }

    /// Sends `query` (whose first two octets are its id) to `upstream` from the socket its id
    /// maps to, opening or replacing that socket as needed. `wait` is how long a replaced
    /// socket keeps listening for late answers.
    pub fn send(
        &mut self,
        now: Instant,
        upstream: SocketAddr,
        query: &[u8],
        wait: Duration,
    ) -> std::io::Result<()> {
        self.retired.retain(|r| r.until > now);
        let slot = slot_of(query).ok_or(std::io::ErrorKind::InvalidInput)?;
        let p = match self.upstreams.iter().position(|u| *u == upstream) {
            Some(p) => p,
            None => {
                if self.upstreams.len() >= MAX_UPSTREAMS {
                    self.retire_first(now, wait);
                }
                self.upstreams.push(upstream);
                self.slots.extend((0..SLOTS).map(|_| None));
                self.upstreams.len() - 1
            }
        };
        let entry = self
            .slots
            .get_mut(p * SLOTS + slot)
            .ok_or(std::io::ErrorKind::InvalidInput)?;
        let stale = entry.as_ref().is_some_and(|s| {
            let age = now.saturating_duration_since(s.opened);
            (s.uses >= ROTATE_USES && age >= ROTATE_MIN_AGE) || age >= MAX_AGE
        });
        if stale {
            if let Some(old) = entry.take() {
                self.retired.push(Retired {
                    sock: old.sock,
                    upstream,
                    slot,
                    until: now + wait,
                });
            }
        }
        if entry.is_none() {
            *entry = Some(Slot {
                sock: open(upstream)?,
                uses: 0,
                opened: now,
            });
            self.opened += 1;
        }
        let s = entry.as_mut().ok_or(std::io::ErrorKind::NotConnected)?;
        s.uses += 1;
        // Straight to the kernel: a new socket has no write readiness from the reactor yet,
        // and a full buffer is an error either way (the core's timer retries).
        socket2::SockRef::from(&s.sock).send(query).map(|_| ())
    }

    /// The first upstream's sockets retire, to make room for another upstream.
    fn retire_first(&mut self, now: Instant, wait: Duration) {
        if self.upstreams.is_empty() {
            return;
        }
        let upstream = self.upstreams.remove(0);
        let old: Vec<Option<Slot>> = self.slots.drain(..SLOTS.min(self.slots.len())).collect();
        for (slot, s) in old.into_iter().enumerate() {
            if let Some(s) = s {
                self.retired.push(Retired {
                    sock: s.sock,
                    upstream,
                    slot,
                    until: now + wait,
                });
            }
        }
    }

    /// Socket number `i` of the live ones followed by the retired ones: (socket, upstream, slot).
    fn socket(&self, i: usize) -> Option<(&UdpSocket, SocketAddr, usize)> {
        match self.slots.get(i) {
            Some(s) => {
                let s = s.as_ref()?;
                let upstream = *self.upstreams.get(i / SLOTS)?;
                Some((&s.sock, upstream, i % SLOTS))
            }
            None => {
                let r = self.retired.get(i - self.slots.len())?;
                Some((&r.sock, r.upstream, r.slot))
            }
        }
    }

    /// The next datagram any of the sockets received, as (upstream, length in `buf`). Datagrams
    /// whose id does not map to the socket they came on, and receive errors (ICMP
    /// unreachable on a connected socket), are dropped here.
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<(SocketAddr, usize)> {
        let n = self.slots.len() + self.retired.len();
        if n == 0 {
            return Poll::Pending;
        }
        let start = self.start.load(Ordering::Relaxed) % n;
        for i in 0..n {
            let Some((sock, upstream, slot)) = self.socket((start + i) % n) else {
                continue;
            };
            for _ in 0..BURST {
                let mut rb = ReadBuf::new(buf);
                match sock.poll_recv(cx, &mut rb) {
                    Poll::Pending => break,
                    Poll::Ready(Err(e)) => {
                        tracing::trace!(%upstream, "DNS upstream socket: {e}");
                    }
                    Poll::Ready(Ok(())) => {
                        let len = rb.filled().len();
                        if slot_of(rb.filled()) == Some(slot) {
                            self.start.store((start + i + 1) % n, Ordering::Relaxed);
                            return Poll::Ready((upstream, len));
                        }
                    }
                }
            }
        }
        Poll::Pending
    }
}

impl UpstreamUdp {
    /// [`poll_recv`](Self::poll_recv) without waiting: a datagram already queued, if any.
    /// (The service task polls the sockets again with its own waker before it sleeps.)
    pub fn try_recv(&self, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.poll_recv(&mut cx, buf) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }
}

/// The socket a message's id maps to.
fn slot_of(msg: &[u8]) -> Option<usize> {
    match msg.get(..2) {
        Some(&[a, b]) => Some(usize::from(u16::from_be_bytes([a, b])) % SLOTS),
        _ => None,
    }
}

/// A UDP socket on a kernel-chosen ephemeral port, connected to `upstream`.
fn open(upstream: SocketAddr) -> std::io::Result<UdpSocket> {
    let bind: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = std::net::UdpSocket::bind(bind)?;
    s.connect(upstream)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: u16) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0; 10]);
        m
    }

    async fn recv(u: &UpstreamUdp) -> (SocketAddr, Vec<u8>) {
        let mut buf = vec![0u8; 512];
        let (from, n) = tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| u.poll_recv(cx, &mut buf)),
        )
        .await
        .expect("an answer");
        (from, buf[..n].to_vec())
    }

    #[tokio::test]
    async fn answers_come_back_on_the_socket_of_their_id_and_sockets_are_shared_and_rotated() {
        // A fake upstream on loopback that echoes, and can answer from the wrong socket.
        let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let up_addr = up.local_addr().unwrap();
        let mut u = UpstreamUdp::new();
        let t0 = Instant::now();
        let wait = Duration::from_secs(6);
        let mut peers = Vec::new();
        for id in [1u16, 9, 2] {
            u.send(t0, up_addr, &msg(id), wait).unwrap();
            let mut b = [0u8; 64];
            let (n, peer) = up.recv_from(&mut b).await.unwrap();
            assert_eq!(&b[..n], &msg(id)[..]);
            peers.push(peer);
        }
        // Ids 1 and 9 share slot 1 (mod 8), so one socket; id 2 has its own.
        assert_eq!(peers[0], peers[1]);
        assert_ne!(peers[0], peers[2]);
        assert_eq!(u.opened(), 2);

        // The answer to id 2 arrives; so does a datagram with id 3 on id 2's socket (it cannot
        // be ours: dropped).
        up.send_to(&msg(3), peers[2]).await.unwrap();
        up.send_to(&msg(2), peers[2]).await.unwrap();
        let (from, got) = recv(&u).await;
        assert_eq!((from, got), (up_addr, msg(2)));

        // A stranger cannot reach the connected sockets at all.
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        stranger.send_to(&msg(1), peers[0]).await.unwrap();
        up.send_to(&msg(9), peers[0]).await.unwrap();
        let (_, got) = recv(&u).await;
        assert_eq!(got, msg(9));

        // Use slot 1 up to the rotation count: a new socket only once it is old enough.
        for _ in 0..ROTATE_USES {
            u.send(t0 + Duration::from_secs(1), up_addr, &msg(1), wait)
                .unwrap();
        }
        assert_eq!(u.opened(), 2);
        let later = t0 + ROTATE_MIN_AGE;
        u.send(later, up_addr, &msg(17), wait).unwrap();
        assert_eq!(u.opened(), 3);
        assert_eq!(u.open_now(), 3, "two live, one retired");
        // The retired socket still takes late answers during the wait...
        up.send_to(&msg(1), peers[0]).await.unwrap();
        let (_, got) = recv(&u).await;
        assert_eq!(got, msg(1));
        // ...and closes after it.
        u.send(later + wait, up_addr, &msg(2), wait).unwrap();
        assert_eq!(u.open_now(), 2);
        // Any socket is replaced at MAX_AGE.
        u.send(t0 + MAX_AGE, up_addr, &msg(2), wait).unwrap();
        assert_eq!(u.opened(), 4);
    }
}
