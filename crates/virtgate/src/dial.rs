//! `virtgate dial`: a PPTP client (RFC 2637 PAC side... the PNS side, strictly: it places the
//! Outgoing-Call) from the same sans-IO crates as the server. Brings up a local TUN with the
//! address the server assigns and a /32 route to the server's tunnel address, prints
//! `up local=A peer=B mppe=MODE` on stdout, and runs until SIGTERM/SIGINT or the link goes down.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use virtgate_ppp::{Session, SessionEvent};
use virtgate_pptp::conn::{ControlConnection, ControlEvent};
use virtgate_pptp::gre::{GreChannel, GreHeader};

use crate::cli::DialArgs;
use crate::error::{DaemonError, DialError};
use crate::link::{GreRx, Link, BUF_LEN, HEADROOM};
use crate::mss::mss_for_mtu;
use crate::net::{self, GreSocket};
use crate::settings;

/// How long the whole dial-up (control connection, call, LCP, auth, CCP, IPCP) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a polite hang-up may take before we just go.
const HANGUP_WAIT: Duration = Duration::from_secs(2);

enum Phase {
    Dialing,
    Up,
    HangingUp(Instant),
}

pub async fn run(args: DialArgs) -> Result<(), DaemonError> {
    let addr = SocketAddr::from((args.server, 1723));
    let mut stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| DialError::Connect {
            addr,
            source: std::io::ErrorKind::TimedOut.into(),
        })?
        .map_err(|e| DialError::Connect { addr, source: e })?;
    let _ = stream.set_nodelay(true);
    let gre = GreSocket::open(None).map_err(DaemonError::GreSocket)?;
    let started = Instant::now();
    let mut ctrl = ControlConnection::new_client(started, settings::control_config_default());
    let mut rnd = [0u8; 2];
    let _ = getrandom::fill(&mut rnd);
    let local_call_id = u16::from_be_bytes(rnd).max(1);
    let mut link: Option<Link> = None;
    let mut tun: Option<tun_rs::AsyncDevice> = None;
    let mut phase = Phase::Dialing;
    let mut failure: Option<DialError> = None;
    let mut call_placed = false;
    let mut call_open = false;
    let mut early: Vec<Vec<u8>> = Vec::new();

    let mut rd_buf = vec![0u8; 4096];
    let mut gre_buf = vec![0u8; BUF_LEN];
    let mut tun_buf = vec![0u8; BUF_LEN];
    let mut scratch = vec![0u8; BUF_LEN];
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(DaemonError::Signal)?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(DaemonError::Signal)?;
    let mut tcp_open = true;

    loop {
        let now = Instant::now();
        // Drain the machines: control bytes out, control events, session frames and events.
        while let Some(bytes) = ctrl.poll_transmit() {
            if tcp_open && stream.write_all(&bytes).await.is_err() {
                tcp_open = false;
            }
        }
        while let Some(ev) = ctrl.poll_event() {
            match ev {
                ControlEvent::Established => {
                    tracing::debug!("control connection established");
                    if !call_placed {
                        ctrl.place_call(now, local_call_id);
                        call_placed = true;
                    }
                }
                ControlEvent::CallEstablished {
                    local_call_id: l,
                    peer_call_id,
                    peer_recv_window,
                } if l == local_call_id => {
                    tracing::debug!(peer_call_id, "call connected, PPP starting");
                    let chan = GreChannel::new(local_call_id, peer_call_id, peer_recv_window);
                    let mut session = Session::new(
                        now,
                        settings::client_session_config(&args),
                        Box::new(settings::OsEntropy),
                    );
                    session.open(now);
                    let mut l = Link::new(chan, session, args.server, u16::MAX);
                    for pkt in std::mem::take(&mut early) {
                        let n = pkt.len().min(gre_buf.len());
                        gre_buf[..n].copy_from_slice(&pkt[..n]);
                        let mut none = Vec::new();
                        on_gre(
                            &mut gre_buf,
                            n,
                            args.server,
                            local_call_id,
                            Some(&mut l),
                            None,
                            &mut none,
                        );
                    }
                    link = Some(l);
                    call_open = true;
                }
                ControlEvent::CallRejected { result, .. } => {
                    failure.get_or_insert(DialError::CallRejected(result));
                    phase = hang_up(
                        now,
                        &mut ctrl,
                        &mut link,
                        call_open.then_some(local_call_id),
                        &phase,
                    );
                    call_open = false;
                }
                ControlEvent::CallCleared { reason, .. } => {
                    // The call is gone: nobody would answer an LCP Terminate-Request any more.
                    call_open = false;
                    // A server that ends a link says why in its LCP Terminate-Request, sent
                    // just before the Call-Disconnect-Notify: that reason beats the CDN's.
                    let peer_said = link.take().and_then(|l| l.end_with_peer_reason(now));
                    tun = None;
                    if !matches!(phase, Phase::HangingUp(_)) {
                        failure.get_or_insert(DialError::LinkDown(match peer_said {
                            Some(text) => format!("the server hung up: {text}"),
                            None => format!("the server cleared the call ({reason:?})"),
                        }));
                        phase = Phase::HangingUp(now);
                    }
                    ctrl.stop(now, settings::stop_reason_shutdown());
                }
                ControlEvent::Closed { reason } => {
                    if !matches!(phase, Phase::HangingUp(_)) {
                        failure.get_or_insert(DialError::ControlClosed(format!("{reason:?}")));
                    }
                    return finish(failure);
                }
                other => tracing::debug!("control event: {other:?}"),
            }
        }
        if let Some(l) = link.as_mut() {
            l.flush(now, &gre, &mut scratch);
            while let Some(ev) = l.poll_event() {
                match ev {
                    SessionEvent::Authenticated { peer_name, method } => {
                        tracing::info!(server = %peer_name, ?method, "authenticated");
                    }
                    SessionEvent::AuthFailed { peer_name, method } => {
                        failure.get_or_insert(DialError::AuthFailed(format!(
                            "{method:?} with server {peer_name:?}"
                        )));
                    }
                    SessionEvent::Up {
                        local,
                        peer,
                        mppe,
                        mtu,
                        dns,
                    } => {
                        let dev =
                            net::create_tun(&args.tun, local, Some(peer), mtu).map_err(|e| {
                                DaemonError::Tun {
                                    name: args.tun.clone(),
                                    source: e,
                                }
                            })?;
                        tun = Some(dev);
                        l.mss = mss_for_mtu(mtu);
                        phase = Phase::Up;
                        tracing::info!(%local, %peer, ?dns, mtu, "link up");
                        println!(
                            "up local={local} peer={peer} mppe={}",
                            settings::mppe_name(mppe)
                        );
                    }
                    SessionEvent::Down { reason } => {
                        if !matches!(phase, Phase::HangingUp(_)) {
                            failure.get_or_insert(DialError::LinkDown(format!("{reason:?}")));
                        }
                        tun = None;
                        if call_open {
                            ctrl.clear_call(now, local_call_id);
                            call_open = false;
                        }
                        ctrl.stop(now, settings::stop_reason_shutdown());
                        if !matches!(phase, Phase::HangingUp(_)) {
                            phase = Phase::HangingUp(now);
                        }
                    }
                    other => tracing::debug!("session event: {other:?}"),
                }
            }
            l.flush(now, &gre, &mut scratch);
        }
        while let Some(bytes) = ctrl.poll_transmit() {
            if tcp_open && stream.write_all(&bytes).await.is_err() {
                tcp_open = false;
            }
        }
        if ctrl.is_closed() {
            return finish(failure);
        }

        // Deadlines.
        let mut deadline = ctrl.poll_timeout();
        if let Some(t) = link.as_ref().and_then(|l| l.next_timeout()) {
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
        }
        let phase_deadline = match phase {
            Phase::Dialing => Some(started + DIAL_TIMEOUT),
            Phase::Up => None,
            Phase::HangingUp(t) => Some(t + HANGUP_WAIT),
        };
        if let Some(p) = phase_deadline {
            if now >= p {
                if let Phase::Dialing = phase {
                    failure.get_or_insert(DialError::Timeout(DIAL_TIMEOUT.as_secs()));
                    phase = hang_up(
                        now,
                        &mut ctrl,
                        &mut link,
                        call_open.then_some(local_call_id),
                        &phase,
                    );
                    call_open = false;
                    continue;
                }
                return finish(failure);
            }
            deadline = Some(deadline.map_or(p, |d| d.min(p)));
        }

        tokio::select! {
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM: hanging up");
                phase = hang_up(Instant::now(), &mut ctrl, &mut link, call_open.then_some(local_call_id), &phase);
                call_open = false;
            }
            _ = sigint.recv() => {
                tracing::info!("SIGINT: hanging up");
                phase = hang_up(Instant::now(), &mut ctrl, &mut link, call_open.then_some(local_call_id), &phase);
                call_open = false;
            }
            r = stream.read(&mut rd_buf), if tcp_open => match r {
                Ok(0) | Err(_) => {
                    if !matches!(phase, Phase::HangingUp(_)) {
                        failure.get_or_insert(DialError::ControlClosed("TCP connection closed".into()));
                    }
                    return finish(failure);
                }
                Ok(n) => ctrl.handle_input(Instant::now(), &rd_buf[..n]),
            },
            r = gre.readable() => {
                let mut guard = r.map_err(DaemonError::GreSocket)?;
                let mut drained = false;
                for _ in 0..64 {
                    match gre.try_recv(&mut gre_buf) {
                        Ok(n) => on_gre(&mut gre_buf, n, args.server, local_call_id, link.as_mut(), tun.as_ref(), &mut early),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => { drained = true; break; }
                        Err(e) => { tracing::warn!("GRE receive failed: {e}"); break; }
                    }
                }
                if drained { guard.clear_ready(); }
            }
            r = tun_readable(tun.as_ref()) => {
                if r.is_ok() {
                    if let (Some(dev), Some(l)) = (tun.as_ref(), link.as_mut()) {
                        for _ in 0..64 {
                            match dev.try_recv(&mut tun_buf[HEADROOM..]) {
                                Ok(n) => { l.send_ip(Instant::now(), &mut tun_buf, n, &gre); }
                                Err(_) => break,
                            }
                        }
                    }
                }
            }
            _ = net::sleep_until(deadline) => {}
        }
        let now = Instant::now();
        if ctrl.poll_timeout().is_some_and(|t| t <= now) {
            ctrl.handle_timeout(now);
        }
        if let Some(l) = link.as_mut() {
            l.on_timeout(now);
        }
    }
}

/// GRE packets for our call that arrive before the Outgoing-Call-Reply has been processed
/// (the server's first LCP Configure-Request often overtakes it) are kept, a few at most, and
/// replayed once the call exists: losing that frame would cost a 3 s LCP restart.
const EARLY_GRE_MAX: usize = 8;

#[allow(clippy::too_many_arguments)]
fn on_gre(
    buf: &mut [u8],
    n: usize,
    server: Ipv4Addr,
    local_call_id: u16,
    link: Option<&mut Link>,
    tun: Option<&tun_rs::AsyncDevice>,
    early: &mut Vec<Vec<u8>>,
) {
    let Some((src, ihl, end)) = buf.get(..n).and_then(net::ipv4_payload) else {
        return;
    };
    if src != server {
        return;
    }
    let Ok((hdr, hlen)) = GreHeader::parse(&buf[ihl..end]) else {
        return;
    };
    if hdr.call_id != local_call_id {
        return;
    }
    let Some(link) = link else {
        if early.len() < EARLY_GRE_MAX {
            early.push(buf[..n].to_vec());
        }
        return;
    };
    if let GreRx::Ip { start, len } = link.receive_gre(Instant::now(), buf, &hdr, ihl + hlen, end) {
        if let Some(dev) = tun {
            let _ = dev.try_send(&buf[start..start + len]);
        }
    }
}

/// Starts a polite hang-up: LCP Terminate-Request, then (after the session is down, or at
/// once when there is no session) CCRQ and StopCCRQ.
fn hang_up(
    now: Instant,
    ctrl: &mut ControlConnection,
    link: &mut Option<Link>,
    call: Option<u16>,
    phase: &Phase,
) -> Phase {
    if let Phase::HangingUp(t) = phase {
        return Phase::HangingUp(*t);
    }
    match link.as_mut() {
        Some(l) => l.session.close(now, "user request"),
        None => {
            if let Some(id) = call {
                ctrl.clear_call(now, id);
            }
            ctrl.stop(now, settings::stop_reason_shutdown());
        }
    }
    Phase::HangingUp(now)
}

fn finish(failure: Option<DialError>) -> Result<(), DaemonError> {
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

async fn tun_readable(t: Option<&tun_rs::AsyncDevice>) -> std::io::Result<()> {
    match t {
        Some(t) => t.readable().await,
        None => std::future::pending().await,
    }
}
