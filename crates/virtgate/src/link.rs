//! One PPTP call's data path, shared by the server and `dial`: a GRE channel (RFC 2637 §4.1)
//! under a PPP session, over caller-owned buffers (no allocation per data packet).

use std::net::Ipv4Addr;
use std::time::Instant;

use virtgate_ppp::{Decap, Session, SessionEvent};
use virtgate_pptp::gre::{DropReason, GreChannel, GreHeader, RxVerdict, GRE_HEADROOM};

use crate::mss::clamp_mss;

/// Where a link's GRE packets go: the daemon's and `dial`'s tokio raw socket, or the load
/// mode's plain one.
pub trait GreTx {
    /// Sends one GRE packet (header + payload) to `peer`; the kernel adds the IPv4 header.
    fn send_gre(&self, pkt: &[u8], peer: Ipv4Addr) -> std::io::Result<()>;
}

/// Free bytes a TUN packet needs before it for the PPP/MPPE and GRE headers.
pub const HEADROOM: usize = GRE_HEADROOM + Session::HEADROOM;

/// Room for the largest IP packet the TUN may give (its MTU is far below) plus headers.
pub const BUF_LEN: usize = HEADROOM + 65_536;

/// Counters kept by the glue (the protocol crates count their own drops).
#[derive(Debug, Default, Clone, Copy)]
pub struct LinkCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub mss_clamped: u64,
    pub dropped: u64,
}

pub struct Link {
    pub chan: GreChannel,
    pub session: Session,
    /// The peer's outer address (GRE goes there).
    pub peer: Ipv4Addr,
    pub counters: LinkCounters,
    /// Clamp TCP MSS in SYNs to this (both directions).
    pub mss: u16,
}

/// What a received GRE packet turned into.
pub enum GreRx {
    /// An IP packet for the TUN at `buf[start..start + len]`.
    Ip { start: usize, len: usize },
    /// A control frame went into the session (poll it), or an ack-only packet.
    Control,
    /// Dropped (late, duplicate, undecryptable, before the link is up...).
    Dropped,
}

impl Link {
    /// The call under this link is gone (Call-Disconnect-Notify): ends the session and returns
    /// the reason the peer gave in an LCP Terminate-Request just before, if any (a server says
    /// why there; that reason beats the CDN's).
    pub fn end_with_peer_reason(mut self, now: Instant) -> Option<String> {
        self.session.lower_layer_down(now);
        std::iter::from_fn(|| self.session.poll_event()).find_map(|e| match e {
            SessionEvent::Down {
                reason: virtgate_ppp::DownReason::PeerTerminated(text),
            } if !text.is_empty() => Some(text),
            _ => None,
        })
    }

    pub fn new(chan: GreChannel, session: Session, peer: Ipv4Addr, mss: u16) -> Link {
        Link {
            chan,
            session,
            peer,
            counters: LinkCounters::default(),
            mss,
        }
    }

    /// The earliest time `on_timeout` must run.
    pub fn next_timeout(&self) -> Option<Instant> {
        match (self.session.poll_timeout(), self.chan.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn on_timeout(&mut self, now: Instant) {
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
    }

    /// Sends the session's queued control frames and any ack the channel owes. `scratch` is a
    /// buffer of at least [`BUF_LEN`] bytes.
    pub fn flush(&mut self, now: Instant, gre: &impl GreTx, scratch: &mut [u8]) {
        while let Some(frame) = self.session.poll_transmit() {
            let Some(room) = scratch.get_mut(GRE_HEADROOM..GRE_HEADROOM + frame.len()) else {
                tracing::warn!(len = frame.len(), "control frame too large, dropped");
                continue;
            };
            room.copy_from_slice(&frame);
            let (s, l) = self
                .chan
                .encapsulate(now, scratch, GRE_HEADROOM, frame.len());
            if let Err(e) = gre.send_gre(&scratch[s..s + l], self.peer) {
                tracing::debug!(peer = %self.peer, "GRE send failed: {e}");
            }
        }
        if let Some(n) = self.chan.poll_ack(now, scratch) {
            if let Err(e) = gre.send_gre(&scratch[..n], self.peer) {
                tracing::debug!(peer = %self.peer, "GRE ack send failed: {e}");
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.session.poll_event()
    }

    /// A GRE packet for this call: `buf[gre_start..end]` holds the GRE header (already parsed
    /// into `hdr`, `hdr_len` bytes) and the payload.
    pub fn receive_gre(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        hdr: &GreHeader,
        payload_start: usize,
        end: usize,
    ) -> GreRx {
        match self.chan.receive(now, hdr) {
            RxVerdict::Deliver => {}
            // An ack-only packet updated the channel; nothing to deliver.
            RxVerdict::Drop(DropReason::AckOnly) => return GreRx::Control,
            RxVerdict::Drop(reason) => {
                tracing::trace!(peer = %self.peer, seq = ?hdr.seq, ?reason, "GRE packet dropped");
                self.counters.dropped += 1;
                return GreRx::Dropped;
            }
        }
        let plen = usize::from(hdr.payload_len);
        if plen == 0 {
            return GreRx::Control;
        }
        if payload_start + plen > end {
            self.counters.dropped += 1;
            return GreRx::Dropped;
        }
        match self.session.decapsulate(now, buf, payload_start, plen) {
            Decap::Ip { start, len } => {
                let Some(pkt) = buf.get_mut(start..start + len) else {
                    self.counters.dropped += 1;
                    return GreRx::Dropped;
                };
                if clamp_mss(pkt, self.mss).is_some() {
                    self.counters.mss_clamped += 1;
                }
                self.counters.rx_packets += 1;
                self.counters.rx_bytes += len as u64;
                GreRx::Ip { start, len }
            }
            Decap::Consumed => GreRx::Control,
            Decap::Dropped(reason) => {
                tracing::trace!(peer = %self.peer, ?reason, "PPP frame dropped");
                self.counters.dropped += 1;
                GreRx::Dropped
            }
        }
    }

    /// An IP packet from the TUN at `buf[HEADROOM..HEADROOM + len]`: clamp, encapsulate (PPP,
    /// MPPE, GRE) and send. Returns false if the session refused it (link not up).
    pub fn send_ip(&mut self, now: Instant, buf: &mut [u8], len: usize, gre: &impl GreTx) -> bool {
        let Some(pkt) = buf.get_mut(HEADROOM..HEADROOM + len) else {
            return false;
        };
        if clamp_mss(pkt, self.mss).is_some() {
            self.counters.mss_clamped += 1;
        }
        let (s, l) = match self.session.encapsulate(buf, HEADROOM, len) {
            Ok(r) => r,
            Err(_) => {
                self.counters.dropped += 1;
                return false;
            }
        };
        let (s, l) = self.chan.encapsulate(now, buf, s, l);
        self.counters.tx_packets += 1;
        self.counters.tx_bytes += len as u64;
        if let Err(e) = gre.send_gre(&buf[s..s + l], self.peer) {
            tracing::debug!(peer = %self.peer, "GRE send failed: {e}");
        }
        true
    }
}
