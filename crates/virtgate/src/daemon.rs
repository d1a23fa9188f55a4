//! `virtgate daemon`: the PPTP server (RFC 2637) as thin tokio glue over the sans-IO crates.
//!
//! One task owns all protocol state (control connections, calls, the pool, the timers), the TUN
//! and the raw GRE socket; TCP sockets have a small reader task and a writer task each, talking
//! to it through channels. Nothing is shared, nothing is locked. To shard later (issue 8), each
//! worker gets its own `Engine` with a disjoint call-id range and TUN queue; the control side
//! routes a call to the worker that owns its id.
//!
//! Per event the engine feeds the state machine, then drains it (transmits, events) and re-arms
//! its deadline in the single [`Timers`] structure, quinn-driver style.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use virtgate_ppp::{Session, SessionEvent};
use virtgate_pptp::conn::{ControlConnection, ControlEvent};
use virtgate_pptp::gre::{GreChannel, GreHeader};

use crate::abuse::{Abuse, Lockout, Refusal, SessionVerdict};
use crate::cli::ConfigArgs;
use crate::control::{Counters, Request, Response, SessionInfo, Status, Target};
use crate::error::DaemonError;
use crate::link::{GreRx, Link, BUF_LEN, HEADROOM};
use crate::net::{self, GreSocket, Routes};
use crate::ops::{self, ControlMsg, HookInfo, Hooks};
use crate::pool::ClientAddresses;
use crate::settings::{AbuseLimits, Limits, Settings};
use crate::table::{CallIdAllocator, Miss, SessionTable, Timers};

mod radius_hooks;

/// How long a stop may take: LCP Terminate, then CDN + StopCCRQ, then we go.
const STOP_TERMINATE_WAIT: Duration = Duration::from_millis(800);
const STOP_TOTAL: Duration = Duration::from_millis(2500);
/// Packets handled per readiness wake-up before looking at other sources (fairness).
const BATCH: usize = 64;
/// GRE packets per `recvmmsg`.
const GRE_BATCH: usize = 16;

type ConnId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum TimerKey {
    Ctrl(ConnId),
    Call(u16),
    /// `idle` / `maxconnect` of an up session.
    Limit(u16),
}

/// The sending side of a control connection. Bytes go straight to the socket when nothing is
/// queued (so an Outgoing-Call-Reply leaves before the call's first GRE packet, as with pptpd,
/// whose pppd starts only after the reply); what the socket does not take at once goes to a
/// writer task, in order.
struct CtrlOut {
    half: Arc<OwnedWriteHalf>,
    queued: Arc<AtomicUsize>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

impl CtrlOut {
    fn new(half: OwnedWriteHalf) -> (CtrlOut, JoinHandle<()>) {
        let half = Arc::new(half);
        let queued = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (h, q) = (half.clone(), queued.clone());
        let writer = tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                let mut off = 0;
                while off < bytes.len() {
                    if h.writable().await.is_err() {
                        return;
                    }
                    match h.try_write(&bytes[off..]) {
                        Ok(n) => off += n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
                q.fetch_sub(1, Ordering::AcqRel);
            }
            // Dropping the last handle of the write half shuts the socket's sending side down.
        });
        (CtrlOut { half, queued, tx }, writer)
    }

    fn send(&self, bytes: Vec<u8>) {
        let mut off = 0;
        if self.queued.load(Ordering::Acquire) == 0 {
            match self.half.try_write(&bytes) {
                Ok(n) => off = n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // The reader task reports the broken connection.
                Err(_) => return,
            }
        }
        if off < bytes.len() {
            self.queued.fetch_add(1, Ordering::AcqRel);
            let _ = self.tx.send(bytes[off..].to_vec());
        }
    }
}

/// What reader tasks tell the engine.
enum CtrlInput {
    Data(ConnId, Vec<u8>),
    Eof(ConnId, Option<std::io::Error>),
}

struct Ctrl {
    conn: ControlConnection,
    peer: Ipv4Addr,
    out: Option<CtrlOut>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    calls: Vec<u16>,
}

struct Call {
    conn: ConnId,
    peer_call_id: u16,
    link: Link,
    user: Option<String>,
    addr: Option<Ipv4Addr>,
    up_since: Option<Instant>,
    /// The last IP packet either way (pppd's idle time is the smaller of its send and receive
    /// idle times, LCP echoes not counted).
    last_data: Instant,
    /// Why we closed the session ourselves, for the down log line.
    close_reason: Option<&'static str>,
    proxy_arp: bool,
    /// Set at Up, for `sessions` and the ip-down hook.
    mppe: Option<String>,
    dns: [Option<Ipv4Addr>; 2],
    local: Option<Ipv4Addr>,
    /// The metrics label of why a session that never came up ended.
    failure: Option<&'static str>,
    /// What RADIUS granted (None: authenticated locally).
    radius: Option<crate::radius::Authz>,
    /// Per-session limits (RADIUS Session-/Idle-Timeout, CoA), else the options file's.
    limits: Option<Limits>,
    /// When the user's password was accepted (sessions count from then on).
    authed_at: Option<Instant>,
}

/// How the daemon is run beyond its configuration files.
pub struct Options {
    /// The files, re-read on reload.
    pub config: ConfigArgs,
    pub socket: std::path::PathBuf,
    pub metrics: Option<SocketAddr>,
    pub hooks: Hooks,
    /// Virtual networks (issue 4): `net` requests go to them.
    pub networks: Option<crate::networks::Handle>,
    /// Lockouts, connection rate, session limits.
    pub abuse: AbuseLimits,
    /// Keep only CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE once everything is bound.
    pub drop_capabilities: bool,
    /// SIGTERM/SIGINT, received by handlers installed before the networks started (main), so a
    /// signal that arrives while this function is still starting is not lost.
    pub stop: crate::networks::StopSignal,
}

/// Counters since start; live sessions' traffic is added when asked.
#[derive(Default)]
struct Stats {
    setups: u64,
    failures: std::collections::BTreeMap<&'static str, u64>,
    auth_failures: u64,
    /// Traffic of sessions that ended.
    ended: crate::link::LinkCounters,
    reloads: u64,
    /// Abuse-limit refusals by reason; lockouts started by scope; sessions replaced.
    refusals: std::collections::BTreeMap<Refusal, u64>,
    lockouts_user: u64,
    lockouts_source: u64,
    replaced: u64,
}

/// Everything the server owns.
struct Engine {
    settings: Arc<Settings>,
    ctrls: HashMap<ConnId, Ctrl>,
    /// Boxed: a `Call` is ~4.5 KB (the PPP session with its MPPE state), and a hash table
    /// keeps its values inline in a power-of-two array whose every page gets touched; boxed,
    /// 10,000 sessions cost their own size, not the table's spare capacity too.
    calls: SessionTable<Box<Call>>,
    call_ids: CallIdAllocator,
    pool: ClientAddresses,
    timers: Timers<TimerKey>,
    gre: Rc<GreSocket>,
    routes: Routes,
    input_tx: mpsc::UnboundedSender<CtrlInput>,
    next_conn: ConnId,
    scratch: Vec<u8>,
    stop: Option<StopState>,
    gre_unknown: u64,
    gre_wrong_src: u64,
    gre_malformed: u64,
    tun_no_session: u64,
    started: Instant,
    listeners: Vec<String>,
    stats: Stats,
    config: ConfigArgs,
    hooks: Hooks,
    radius: Option<crate::radius::Radius>,
    abuse: Abuse,
}

struct StopState {
    started: Instant,
    ctrl_stopped: bool,
}

/// Runs the server until SIGTERM/SIGINT. The firewall is the caller's business.
pub async fn run(settings: Settings, opts: Options) -> Result<(), DaemonError> {
    let settings = Arc::new(settings);
    // One TCP socket per session: 10,000 sessions need more than the usual soft limit of 1,024.
    match net::raise_nofile_limit() {
        Ok(n) if (n as usize) < settings.connections + 64 => tracing::warn!(
            limit = n,
            connections = settings.connections,
            "the open-file limit is below `connections`: raise LimitNOFILE (systemd) or ulimit -n"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
    let tun =
        net::create_tun(&settings.tun, settings.local_ip, None, settings.mtu).map_err(|e| {
            DaemonError::Tun {
                name: settings.tun.clone(),
                source: e,
            }
        })?;
    let ifindex = net::if_index(&settings.tun).map_err(|e| DaemonError::Tun {
        name: settings.tun.clone(),
        source: e,
    })?;
    let routes = Routes::start(ifindex).map_err(DaemonError::Netlink)?;
    let gre = Rc::new(GreSocket::open(settings.listen).map_err(DaemonError::GreSocket)?);
    let bind = SocketAddr::from((settings.listen.unwrap_or(Ipv4Addr::UNSPECIFIED), 1723));
    let listener = net::tcp_listener(bind).map_err(|e| DaemonError::Listen {
        addr: bind,
        source: e,
    })?;
    let control = crate::control::bind(&opts.socket).map_err(|e| DaemonError::ControlSocket {
        path: opts.socket.clone(),
        source: e,
    })?;
    let metrics = match opts.metrics {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| DaemonError::Metrics { addr, source: e })?,
        ),
        None => None,
    };
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<ControlMsg>();
    let control_task = tokio::spawn(ops::serve_control(control, ctl_tx.clone()));
    let metrics_task = metrics.map(|m| tokio::spawn(ops::serve_metrics(m, ctl_tx.clone())));
    drop(ctl_tx);
    tracing::info!(
        socket = %opts.socket.display(),
        metrics = ?opts.metrics,
        listen = %bind,
        tun = %settings.tun,
        localip = %settings.local_ip,
        pool = settings.pool.len(),
        mtu = settings.mtu,
        mss = settings.mss,
        "virtgate PPTP server up"
    );

    let radius = match &settings.radius {
        Some(c) => Some(
            crate::radius::Radius::new(c.clone(), &settings.our_name)
                .map_err(DaemonError::Radius)?,
        ),
        None => None,
    };
    let rsocks = radius.as_ref().map(|r| r.sockets());
    let mut start = [0u8; 2];
    let _ = getrandom::fill(&mut start);
    let (input_tx, mut input_rx) = mpsc::unbounded_channel();
    let networks = opts.networks;
    let mut eng = Engine {
        pool: ClientAddresses::new(&settings.pool, settings.local_ip),
        settings,
        ctrls: HashMap::new(),
        calls: SessionTable::default(),
        call_ids: CallIdAllocator::new(u16::from_be_bytes(start)),
        timers: Timers::default(),
        gre: gre.clone(),
        routes,
        input_tx,
        next_conn: 1,
        scratch: vec![0u8; BUF_LEN],
        stop: None,
        gre_unknown: 0,
        gre_wrong_src: 0,
        gre_malformed: 0,
        tun_no_session: 0,
        started: Instant::now(),
        listeners: ops::listeners(bind, opts.metrics),
        stats: Stats::default(),
        config: opts.config,
        hooks: opts.hooks,
        radius,
        abuse: Abuse::new(opts.abuse),
    };
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(DaemonError::Signal)?;
    if opts.drop_capabilities {
        crate::caps::log_drop();
    }
    // Listeners are bound and the firewall (the caller's) is up: tell systemd.
    ops::sd_notify("READY=1");
    // GRE arrives reassembled: room for the largest MRU (16384) plus headers.
    let mut gre_batch = net::RecvBatch::new(GRE_BATCH, 16_384 + 256);
    let mut tun_buf = vec![0u8; BUF_LEN];
    let mut stop = Some(opts.stop);
    let mut listener = Some(listener);

    loop {
        let deadline = eng.next_deadline();
        // Unbiased: under load neither the GRE side nor the TUN side can starve the other.
        tokio::select! {
            signal = stop_requested(&mut stop) => eng.begin_stop(signal, &mut listener),
            _ = sighup.recv() => match &networks {
                // Network definitions are read first: a bad one refuses the whole reload.
                Some(n) => n.reload("SIGHUP", || eng.reload("SIGHUP"), None),
                None => { let _ = eng.reload("SIGHUP"); }
            },
            Some(msg) = ctl_rx.recv() => match (msg.req, &networks) {
                // Network commands run on their own task; the engine does not wait for them.
                (Request::Net(req), Some(n)) => n.serve(req, msg.reply),
                (Request::Status, Some(n)) => n.status(eng.on_control(Request::Status), msg.reply),
                (Request::Reload, Some(n)) => {
                    n.reload("control request", || eng.reload("control request"), Some(msg.reply))
                }
                (req, _) => {
                    let r = eng.on_control(req);
                    let _ = msg.reply.send(r);
                }
            },
            r = gre.readable() => {
                match r {
                    Ok(mut guard) => {
                        // Clear readiness only after the queue is drained (WouldBlock).
                        // Up to BATCH packets, GRE_BATCH per recvmmsg.
                        let mut drained = false;
                        for _ in 0..BATCH / GRE_BATCH {
                            match gre.try_recv_batch(&mut gre_batch) {
                                Ok(n) => {
                                    for i in 0..n {
                                        if let Some((buf, len)) = gre_batch.packet(i) {
                                            eng.on_gre(buf, len, &tun);
                                        }
                                    }
                                    if n < GRE_BATCH { drained = true; break; }
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => { drained = true; break; }
                                Err(e) => { tracing::warn!("GRE receive failed: {e}"); break; }
                            }
                        }
                        if drained { guard.clear_ready(); }
                    }
                    Err(e) => return Err(DaemonError::GreSocket(e)),
                }
            }
            r = tun.readable() => {
                if let Err(e) = r { return Err(DaemonError::Tun { name: eng.settings.tun.clone(), source: e }); }
                for _ in 0..BATCH {
                    match tun.try_recv(&mut tun_buf[HEADROOM..]) {
                        Ok(n) => eng.on_tun(&mut tun_buf, n),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => { tracing::warn!("TUN receive failed: {e}"); break; }
                    }
                }
            }
            Some(input) = input_rx.recv() => eng.on_ctrl_input(input),
            _ = crate::radius::readable(&rsocks) => eng.radius_readable(),
            r = accept(&listener) => match r {
                Ok((stream, addr)) => eng.on_accept(stream, addr),
                Err(e) => tracing::warn!("accept failed: {e}"),
            },
            _ = net::sleep_until(deadline) => {}
        }
        eng.run_timers();
        if eng.stop_progress() {
            break;
        }
    }
    eng.finish().await;
    control_task.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    let _ = std::fs::remove_file(&opts.socket);
    drop(tun);
    Ok(())
}

/// The first stop signal, once (`begin_stop` does the rest); pending afterwards, or when no
/// sender is left.
async fn stop_requested(stop: &mut Option<crate::networks::StopSignal>) -> &'static str {
    let seen = match stop.as_mut() {
        Some(rx) => rx.wait_for(Option::is_some).await.ok().and_then(|v| *v),
        None => None,
    };
    *stop = None;
    match seen {
        Some(signal) => signal,
        None => std::future::pending().await,
    }
}

async fn accept(l: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

impl Engine {
    fn next_deadline(&self) -> Option<Instant> {
        let t = match (self.timers.next(), self.radius_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match &self.stop {
            None => t,
            Some(s) => {
                let phase = if s.ctrl_stopped {
                    s.started + STOP_TOTAL
                } else {
                    s.started + STOP_TERMINATE_WAIT
                };
                Some(t.map_or(phase, |t| t.min(phase)))
            }
        }
    }

    // ---- control connections -------------------------------------------------------------

    fn on_accept(&mut self, stream: TcpStream, addr: SocketAddr) {
        let SocketAddr::V4(v4) = addr else {
            return;
        };
        if self.stop.is_some() {
            return;
        }
        let now = Instant::now();
        if let crate::abuse::ConnVerdict::Refuse { first } =
            self.abuse.admit_connection(now, *v4.ip())
        {
            self.refused(Refusal::ConnRate);
            if first {
                let l = self.abuse.limits();
                tracing::warn!(peer = %addr, rate_per_min = l.conn_rate_per_min,
                    burst = l.conn_burst,
                    "connection refused: too many new connections from this address \
                     (--conn-rate/--conn-burst); refusing its connections until it slows down");
            } else {
                tracing::debug!(peer = %addr, "connection refused: connection rate");
            }
            return; // dropping the stream closes it, before any PPTP state exists
        }
        if self.ctrls.len() >= self.settings.connections {
            tracing::warn!(peer = %addr, limit = self.settings.connections,
                "connection refused: `connections` limit reached (raise it in pptpd.conf)");
            return; // dropping the stream closes it
        }
        let _ = stream.set_nodelay(true);
        let id = self.next_conn;
        self.next_conn += 1;
        let (mut rd, wr) = stream.into_split();
        let tx = self.input_tx.clone();
        let reader = tokio::spawn(async move {
            // Control messages are at most 220 octets: a small buffer per connection (10,000
            // connections, issue 8), refilled in a loop when more is queued.
            let mut buf = vec![0u8; 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) => {
                        let _ = tx.send(CtrlInput::Eof(id, None));
                        break;
                    }
                    Ok(n) => {
                        if tx.send(CtrlInput::Data(id, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(CtrlInput::Eof(id, Some(e)));
                        break;
                    }
                }
            }
        });
        let (out, writer) = CtrlOut::new(wr);
        let conn = ControlConnection::new_server(now, self.settings.control_config());
        tracing::debug!(peer = %addr, conn = id, "control connection accepted");
        self.ctrls.insert(
            id,
            Ctrl {
                conn,
                peer: *v4.ip(),
                out: Some(out),
                reader,
                writer,
                calls: Vec::new(),
            },
        );
        self.drive_ctrl(id, now);
    }

    fn on_ctrl_input(&mut self, input: CtrlInput) {
        let now = Instant::now();
        match input {
            CtrlInput::Data(id, bytes) => {
                if let Some(c) = self.ctrls.get_mut(&id) {
                    c.conn.handle_input(now, &bytes);
                    self.drive_ctrl(id, now);
                }
            }
            CtrlInput::Eof(id, err) => {
                if let Some(c) = self.ctrls.get(&id) {
                    match err {
                        Some(e) => tracing::info!(peer = %c.peer, "control connection lost: {e}"),
                        None => {
                            tracing::debug!(peer = %c.peer, "control connection closed by peer")
                        }
                    }
                    self.drop_ctrl(id, now, "control connection closed");
                }
            }
        }
    }

    /// Drains a control connection: bytes out, events, timer.
    fn drive_ctrl(&mut self, id: ConnId, now: Instant) {
        loop {
            let Some(c) = self.ctrls.get_mut(&id) else {
                return;
            };
            while let Some(bytes) = c.conn.poll_transmit() {
                if let Some(out) = &c.out {
                    out.send(bytes);
                }
            }
            let Some(ev) = c.conn.poll_event() else {
                break;
            };
            self.on_ctrl_event(id, now, ev);
        }
        let Some(c) = self.ctrls.get(&id) else {
            return;
        };
        if c.conn.is_closed() {
            self.drop_ctrl(id, now, "control connection closed");
            return;
        }
        let t = c.conn.poll_timeout();
        self.timers.set(TimerKey::Ctrl(id), t);
    }

    fn on_ctrl_event(&mut self, id: ConnId, now: Instant, ev: ControlEvent) {
        let peer = self.ctrls.get(&id).map(|c| c.peer);
        match ev {
            ControlEvent::Established => {
                tracing::debug!(peer = ?peer, "control connection established");
            }
            ControlEvent::CallRequest { peer_call_id, .. } => {
                let locked = peer.and_then(|p| self.abuse.source_locked(now, p));
                if let (Some(until), Some(c)) = (locked, self.ctrls.get_mut(&id)) {
                    tracing::debug!(peer = %c.peer,
                        left_s = until.saturating_duration_since(now).as_secs(),
                        "outgoing call refused: the address is locked out after failed logins");
                    c.conn.reject_call(
                        now,
                        peer_call_id,
                        virtgate_pptp::control::OutgoingCallResult::DoNotAccept,
                    );
                    self.refused(Refusal::SourceLocked);
                    return;
                }
                let local = if self.stop.is_some() {
                    None
                } else {
                    self.call_ids.allocate()
                };
                let Some(c) = self.ctrls.get_mut(&id) else {
                    return;
                };
                match local {
                    Some(local) => {
                        c.calls.push(local);
                        c.conn.accept_call(now, peer_call_id, local);
                    }
                    None => {
                        tracing::warn!(peer = %c.peer, "outgoing call refused: shutting down or no call id free");
                        c.conn.reject_call(now, peer_call_id, reject_result());
                    }
                }
            }
            ControlEvent::CallEstablished {
                local_call_id,
                peer_call_id,
                peer_recv_window,
            } => self.start_call(id, now, local_call_id, peer_call_id, peer_recv_window),
            ControlEvent::CallCleared {
                local_call_id,
                reason,
            } => {
                let r = format!("call cleared by peer ({reason:?})");
                self.end_call(local_call_id, now, &r, false);
            }
            ControlEvent::SetLinkInfo { .. } => {
                // ACCMs only matter for asynchronous HDLC framing; PPTP carries PPP frames
                // whole in GRE, so pptpd (and we) ignore them.
                tracing::debug!(peer = ?peer, "Set-Link-Info (ignored: no async framing over GRE)");
            }
            ControlEvent::Closed { reason } => {
                tracing::debug!(peer = ?peer, "control connection closed: {reason:?}");
                self.drop_ctrl(id, now, "control connection closed");
            }
            other => {
                tracing::info!(peer = ?peer, "control event: {other:?}");
            }
        }
    }

    /// Tears down a control connection and every call on it.
    fn drop_ctrl(&mut self, id: ConnId, now: Instant, why: &str) {
        let Some(c) = self.ctrls.remove(&id) else {
            return;
        };
        self.timers.set(TimerKey::Ctrl(id), None);
        for call in c.calls {
            self.end_call(call, now, why, false);
        }
        c.reader.abort();
        // Dropping `out` lets the writer flush what is queued, then close the socket.
        drop(c.out);
        drop(c.writer);
    }

    // ---- calls ---------------------------------------------------------------------------

    fn start_call(
        &mut self,
        conn: ConnId,
        now: Instant,
        local: u16,
        peer_call_id: u16,
        peer_recv_window: u16,
    ) {
        let Some(c) = self.ctrls.get(&conn) else {
            return;
        };
        let peer = c.peer;
        let chan = GreChannel::new(local, peer_call_id, peer_recv_window);
        let mut session = Session::new(
            now,
            self.settings.server_session_config(),
            Box::new(crate::settings::OsEntropy),
        );
        session.open(now);
        tracing::debug!(%peer, call = local, peer_call = peer_call_id, "call accepted, PPP starting");
        self.calls.insert(
            local,
            peer,
            Box::new(Call {
                conn,
                peer_call_id,
                link: Link::new(chan, session, peer, self.settings.mss),
                user: None,
                addr: None,
                up_since: None,
                last_data: now,
                close_reason: None,
                proxy_arp: false,
                mppe: None,
                dns: [None, None],
                local: None,
                failure: None,
                radius: None,
                limits: None,
                authed_at: None,
            }),
        );
        self.drive_call(local, now);
    }

    /// Drains a call: control frames out, events, timer.
    fn drive_call(&mut self, id: u16, now: Instant) {
        loop {
            let Some(e) = self.calls.get_mut(id) else {
                return;
            };
            e.value.link.flush(now, &*self.gre, &mut self.scratch);
            let Some(ev) = e.value.link.poll_event() else {
                break;
            };
            if !self.on_session_event(id, now, ev) {
                return;
            }
        }
        if let Some(e) = self.calls.get(id) {
            self.timers
                .set(TimerKey::Call(id), e.value.link.next_timeout());
        }
    }

    /// Returns false when the call is gone.
    fn on_session_event(&mut self, id: u16, now: Instant, ev: SessionEvent) -> bool {
        let settings = self.settings.clone();
        let Some(e) = self.calls.get_mut(id) else {
            return false;
        };
        let peer = e.peer;
        let call = &mut e.value;
        match ev {
            SessionEvent::SecretRequest { peer_name } => {
                let locked = match self.abuse.user_locked(now, &peer_name) {
                    Some(t) => Some((t, Refusal::UserLocked)),
                    None => self
                        .abuse
                        .source_locked(now, peer)
                        .map(|t| (t, Refusal::SourceLocked)),
                };
                if let Some((until, why)) = locked {
                    let left = until.saturating_duration_since(now).as_secs().max(1);
                    tracing::debug!(%peer, user = %peer_name, left_s = left, reason = why.label(),
                        "authentication refused: locked out after failed logins");
                    call.user = Some(peer_name);
                    call.close_reason = Some("locked out after failed logins");
                    // No password check: the right password is refused too. LCP
                    // Terminate-Request says why.
                    call.link.session.close(
                        now,
                        &format!("locked out after too many failed logins; try again in {left} s"),
                    );
                    self.refused(why);
                    return true;
                }
                let secret = settings.secret_for(&peer_name);
                // `plugin radius.so`: RADIUS decides (radius-order may leave it to chap-secrets).
                if self
                    .radius
                    .as_ref()
                    .is_some_and(|r| r.decides(secret.is_some()))
                {
                    self.radius_secret_request(id, now, &peer_name);
                    return true;
                }
                if secret.is_none() {
                    tracing::warn!(%peer, user = %peer_name,
                        "no secret for user (client {peer_name:?}, server {:?}) in chap-secrets",
                        settings.our_name);
                }
                call.user = Some(peer_name);
                call.link.session.provide_secret(now, secret);
            }
            SessionEvent::Authenticated { peer_name, method } => {
                tracing::info!(%peer, user = %peer_name, ?method, "authenticated");
                call.user = Some(peer_name.clone());
                self.abuse.auth_succeeded(now, &peer_name);
                self.admit_session(id, now, &peer_name);
            }
            SessionEvent::AuthFailed { peer_name, method } => {
                self.stats.auth_failures += 1;
                tracing::warn!(%peer, user = %peer_name, ?method, "authentication failed");
                call.user = Some(peer_name.clone());
                for l in self.abuse.auth_failed(now, peer, &peer_name) {
                    let lim = *self.abuse.limits();
                    match l {
                        Lockout::User { name, .. } => {
                            self.stats.lockouts_user += 1;
                            tracing::warn!(user = %name, %peer, failures = lim.user_failures,
                                window_s = lim.fail_window.as_secs(), lockout_s = lim.lockout.as_secs(),
                                "user locked out after repeated failed logins (--lockout-user)");
                        }
                        Lockout::Source { addr, .. } => {
                            self.stats.lockouts_source += 1;
                            tracing::warn!(peer = %addr, failures = lim.source_failures,
                                window_s = lim.fail_window.as_secs(), lockout_s = lim.lockout.as_secs(),
                                "address locked out after repeated failed logins (--lockout-source)");
                        }
                    }
                }
            }
            SessionEvent::AddressRequest { peer_name } => {
                if let Some(old) = call.addr.take() {
                    self.pool.release(old);
                }
                // pppd's rule: the address chap-secrets pins, else the next pool address the
                // user's secrets line permits.
                let framed = call.radius.as_ref().and_then(|a| a.framed_ip);
                let r = self.pool.allocate(
                    framed.or(settings.pinned_address(&peer_name)),
                    settings.allowed_addrs(&peer_name),
                );
                let addr = match r {
                    Ok(a) => Some(a),
                    Err(err) => {
                        tracing::warn!(%peer, user = %peer_name, "no address for client: {err}");
                        None
                    }
                };
                call.addr = addr;
                call.link.session.assign_address(now, addr);
            }
            SessionEvent::Up {
                local,
                peer: tunnel_ip,
                dns,
                mppe,
                mtu,
            } => {
                if !self.calls.bind_ip(id, tunnel_ip) {
                    tracing::warn!(%peer, ip = %tunnel_ip, "address already routed to another session; closing");
                    if let Some(e) = self.calls.get_mut(id) {
                        e.value.link.session.close(now, "address conflict");
                    }
                    return true;
                }
                self.routes
                    .add(tunnel_ip, (mtu < settings.mtu).then_some(mtu));
                let Some(e) = self.calls.get_mut(id) else {
                    return false;
                };
                e.value.up_since = Some(now);
                e.value.last_data = now;
                e.value.mppe = Some(crate::settings::mppe_name(mppe));
                e.value.dns = dns;
                e.value.local = Some(local);
                self.stats.setups += 1;
                if let Some(hook) = &self.hooks.ip_up {
                    ops::run_hook(
                        hook,
                        &hook_info(&settings, id, (e.peer, e.tunnel_ip), &e.value, None),
                    );
                }
                if settings.proxyarp {
                    self.routes.proxy_arp_add(tunnel_ip);
                    e.value.proxy_arp = true;
                }
                let limits = e.value.limits.unwrap_or(settings.limits());
                let limit = limit_deadline(limits, now, now);
                self.timers.set(TimerKey::Limit(id), limit);
                let Some(e) = self.calls.get_mut(id) else {
                    return false;
                };
                tracing::info!(
                    %peer,
                    user = e.value.user.as_deref().unwrap_or("?"),
                    ip = %tunnel_ip,
                    %local,
                    mppe = %crate::settings::mppe_name(mppe),
                    ?dns,
                    mtu,
                    addresses_in_use = self.pool.in_use(),
                    "session up"
                );
                self.radius_up(id, now);
            }
            SessionEvent::Down { reason } => {
                call.failure = Some(failure_label(&reason));
                let r = match call.close_reason {
                    Some(why) => format!("{why} ({reason:?})"),
                    None => format!("{reason:?}"),
                };
                self.end_call(id, now, &r, true);
                return false;
            }
        }
        true
    }

    fn refused(&mut self, why: Refusal) {
        *self.stats.refusals.entry(why).or_default() += 1;
    }

    /// The session limits, once the user's password was accepted: refuse the new session
    /// (hung up with the reason in LCP Terminate-Request) or hang up the user's older ones.
    fn admit_session(&mut self, id: u16, now: Instant, user: &str) {
        let mut others: Vec<(Instant, u16)> = Vec::new();
        let mut total = 0;
        let limits = *self.abuse.limits();
        // The scan below is O(sessions) per set-up; with every session limit off the verdict
        // is Admit whatever it finds, so skip it (at 10,000 sessions it cost 0.6 ms per set-up,
        // 8x the rest of the set-up: bench/sessions.sh).
        let any_limit = limits.max_sessions > 0
            || limits.max_sessions_per_user > 0
            || limits.single_session != crate::settings::SingleSession::Off;
        for (other, e) in self.calls.iter().filter(|_| any_limit) {
            if other == id {
                continue;
            }
            // Sessions already hanging up (replaced, refused, terminated) no longer count.
            let Some(at) = e.value.authed_at.filter(|_| e.value.close_reason.is_none()) else {
                continue;
            };
            total += 1;
            if e.value.user.as_deref() == Some(user) {
                others.push((at, other));
            }
        }
        others.sort_unstable();
        let others: Vec<u16> = others.into_iter().map(|(_, i)| i).collect();
        let verdict = crate::abuse::session_verdict(&limits, total, &others);
        let Some(e) = self.calls.get_mut(id) else {
            return;
        };
        let peer = e.peer;
        match verdict {
            SessionVerdict::Admit => e.value.authed_at = Some(now),
            SessionVerdict::Refuse(why) => {
                let text = match why {
                    Refusal::MaxSessions => format!(
                        "too many sessions on this server (limit {})",
                        limits.max_sessions
                    ),
                    Refusal::MaxSessionsUser => format!(
                        "too many sessions of this user (limit {})",
                        limits.max_sessions_per_user
                    ),
                    _ => "this user already has a session (single session)".to_string(),
                };
                tracing::warn!(%peer, user, reason = why.label(), "session refused: {text}");
                e.value.close_reason = Some("session refused by a limit");
                e.value.link.session.close(now, &text);
                self.refused(why);
            }
            SessionVerdict::Replace(old) => {
                e.value.authed_at = Some(now);
                for o in old {
                    if let Some(oe) = self.calls.get_mut(o) {
                        tracing::info!(peer = %oe.peer, user, new_peer = %peer,
                            "single session: hanging up the user's older session");
                        oe.value.close_reason = Some("replaced by a new session of the user");
                        oe.value
                            .link
                            .session
                            .close(now, "replaced by a new session of the same user");
                        self.stats.replaced += 1;
                    }
                    self.drive_call(o, now);
                }
            }
        }
    }

    /// Removes a call: frees its id, address and route, logs its counters, and (if `notify`)
    /// sends Call-Disconnect-Notify on its control connection.
    fn end_call(&mut self, id: u16, now: Instant, reason: &str, notify: bool) {
        let Some(e) = self.calls.remove(id) else {
            // A call id may be allocated (OCRP sent) before its session exists.
            if self.call_ids.release(id) {
                for c in self.ctrls.values_mut() {
                    c.calls.retain(|&x| x != id);
                }
            }
            return;
        };
        self.timers.set(TimerKey::Call(id), None);
        self.timers.set(TimerKey::Limit(id), None);
        self.call_ids.release(id);
        let mut call = e.value;
        // Send what the session still has queued (e.g. its Terminate-Ack).
        call.link.flush(now, &*self.gre, &mut self.scratch);
        if let Some(ip) = e.tunnel_ip {
            self.routes.del(ip);
            if call.proxy_arp {
                self.routes.proxy_arp_del(ip);
            }
        }
        if let Some(a) = call.addr {
            self.pool.release(a);
        }
        self.radius_end(id, now, reason, &call);
        let k = call.link.counters;
        let st = &mut self.stats.ended;
        st.rx_bytes += k.rx_bytes;
        st.tx_bytes += k.tx_bytes;
        st.rx_packets += k.rx_packets;
        st.tx_packets += k.tx_packets;
        st.dropped += k.dropped;
        match call.up_since {
            Some(up) => {
                if let Some(hook) = &self.hooks.ip_down {
                    let secs = now.saturating_duration_since(up).as_secs();
                    let down = Some((k.tx_bytes, k.rx_bytes, secs));
                    let info = hook_info(&self.settings, id, (e.peer, e.tunnel_ip), &call, down);
                    ops::run_hook(hook, &info);
                }
            }
            None => {
                let label = call.failure.unwrap_or("call_cleared");
                *self.stats.failures.entry(label).or_default() += 1;
            }
        }
        tracing::info!(
            peer = %e.peer,
            user = call.user.as_deref().unwrap_or("?"),
            ip = ?e.tunnel_ip,
            reason,
            duration_s = call.up_since.map_or(0, |t| now.saturating_duration_since(t).as_secs()),
            rx_bytes = k.rx_bytes, tx_bytes = k.tx_bytes,
            rx_packets = k.rx_packets, tx_packets = k.tx_packets,
            dropped = k.dropped, mss_clamped = k.mss_clamped,
            calls_in_use = self.call_ids.in_use(),
            "session down"
        );
        let mut dead_peer = false;
        if let Some(c) = self.ctrls.get_mut(&call.conn) {
            c.calls.retain(|&x| x != id);
            if notify {
                c.conn.clear_call(now, id);
                // pptpd serves one call per control connection and its per-connection process
                // ends with its pppd: once our side ended the last call (LCP terminate, echo
                // failure, idle, admin), stop the control connection too, so a vanished
                // client does not hold a `connections` slot until PPTP echo gives up.
                if c.calls.is_empty() && self.stop.is_none() {
                    c.conn.stop(now, virtgate_pptp::control::StopReason::None);
                    // A peer that stopped answering LCP echoes will not answer the stop
                    // either: send it, then close at once instead of waiting stop_timeout.
                    dead_peer = call.failure == Some("peer_not_responding");
                }
                let _ = call.peer_call_id;
                self.drive_ctrl(call.conn, now);
            }
        }
        if dead_peer {
            self.drop_ctrl(call.conn, now, "peer not responding");
        }
    }

    // ---- data plane ----------------------------------------------------------------------

    fn on_gre(&mut self, buf: &mut [u8], n: usize, tun: &tun_rs::AsyncDevice) {
        let now = Instant::now();
        let Some(pkt) = buf.get(..n) else {
            return;
        };
        let Some((src, ihl, end)) = net::ipv4_payload(pkt) else {
            self.gre_malformed += 1;
            return;
        };
        let Ok((hdr, hlen)) = GreHeader::parse(&pkt[ihl..end]) else {
            self.gre_malformed += 1;
            tracing::trace!(%src, "malformed GRE packet dropped");
            return;
        };
        let id = hdr.call_id;
        let entry = match self.calls.by_gre(id, src) {
            Ok(e) => e,
            Err(Miss::UnknownCall) => {
                self.gre_unknown += 1;
                tracing::debug!(%src, call = id, "GRE for unknown call dropped");
                return;
            }
            Err(Miss::WrongSource) => {
                self.gre_wrong_src += 1;
                tracing::debug!(%src, call = id, "GRE from the wrong source dropped");
                return;
            }
        };
        match entry
            .value
            .link
            .receive_gre(now, buf, &hdr, ihl + hlen, end)
        {
            GreRx::Ip { start, len } => {
                entry.value.last_data = now;
                if let Err(e) = tun.try_send(&buf[start..start + len]) {
                    if e.kind() != std::io::ErrorKind::WouldBlock {
                        tracing::debug!("TUN write failed: {e}");
                    }
                }
                // A data packet may leave an ack owed: keep its timer right.
                let t = entry.value.link.next_timeout();
                self.timers.set(TimerKey::Call(id), t);
            }
            GreRx::Control | GreRx::Dropped => self.drive_call(id, now),
        }
    }

    fn on_tun(&mut self, buf: &mut [u8], n: usize) {
        let now = Instant::now();
        let Some(dst) = buf.get(HEADROOM..HEADROOM + n).and_then(net::ipv4_dst) else {
            return;
        };
        let Some((id, e)) = self.calls.by_ip(dst) else {
            self.tun_no_session += 1;
            return;
        };
        if e.value.link.send_ip(now, buf, n, &*self.gre) {
            e.value.last_data = now;
        }
        let t = e.value.link.next_timeout();
        self.timers.set(TimerKey::Call(id), t);
    }

    // ---- timers and stopping -------------------------------------------------------------

    fn run_timers(&mut self) {
        let now = Instant::now();
        while let Some(k) = self.timers.pop_expired(now) {
            match k {
                TimerKey::Ctrl(id) => {
                    if let Some(c) = self.ctrls.get_mut(&id) {
                        c.conn.handle_timeout(now);
                        self.drive_ctrl(id, now);
                    }
                }
                TimerKey::Call(id) => {
                    if let Some(e) = self.calls.get_mut(id) {
                        e.value.link.on_timeout(now);
                        self.drive_call(id, now);
                    }
                }
                TimerKey::Limit(id) => self.check_limits(id, now),
            }
        }
        self.radius_timers(now);
    }

    /// pppd's `check_idle` and `connect_time_expired`: close with pppd's Terminate text, or
    /// re-arm for the next possible expiry.
    fn check_limits(&mut self, id: u16, now: Instant) {
        let settings = self.settings.clone();
        let Some(e) = self.calls.get_mut(id) else {
            return;
        };
        let call = &mut e.value;
        let Some(up) = call.up_since else {
            return;
        };
        let limits = call.limits.unwrap_or(settings.limits());
        let expired = match limit_expiry(limits, up, call.last_data, now) {
            Ok(next) => {
                self.timers.set(TimerKey::Limit(id), next);
                return;
            }
            Err(which) => which,
        };
        let (log, terminate) = match expired {
            Limit::Idle => ("Idle timeout", "Link inactive"),
            Limit::MaxConnect => ("Connect time expired", "Connect time expired"),
        };
        tracing::info!(peer = %e.peer, user = call.user.as_deref().unwrap_or("?"), "{log}: hanging up");
        call.close_reason = Some(log);
        call.link.session.close(now, terminate);
        self.drive_call(id, now);
    }

    // ---- control requests ----------------------------------------------------------------

    /// One handler per [`Request`] variant (virtual networks add theirs here).
    fn on_control(&mut self, req: Request) -> Response {
        match req {
            Request::Status => Response::Status(self.status()),
            Request::Sessions { user } => Response::Sessions {
                sessions: self.sessions(user.as_deref()),
            },
            Request::Terminate { target } => Response::Terminated {
                sessions: self.terminate(&target),
            },
            Request::Reload => self.reload("control request"),
            #[allow(unreachable_patterns)]
            other => Response::Error {
                message: format!("{other:?} is not supported by this daemon"),
            },
        }
    }

    fn status(&self) -> Status {
        let mut c = Counters {
            setups: self.stats.setups,
            auth_failures: self.stats.auth_failures,
            reloads: self.stats.reloads,
            ..Counters::default()
        };
        for r in Refusal::ALL {
            c.abuse_refusals.insert(
                r.label().to_string(),
                self.stats.refusals.get(&r).copied().unwrap_or(0),
            );
        }
        c.lockouts
            .insert("account".into(), self.stats.lockouts_user);
        c.lockouts
            .insert("address".into(), self.stats.lockouts_source);
        c.sessions_replaced = self.stats.replaced;
        c.radius = self.radius.as_ref().map(|r| Box::new(r.stats()));
        for r in ops::FAILURE_REASONS {
            c.setup_failures.insert(
                r.to_string(),
                self.stats.failures.get(r).copied().unwrap_or(0),
            );
        }
        let e = &self.stats.ended;
        let (mut rb, mut tb, mut rp, mut tp, mut dropped) = (
            e.rx_bytes,
            e.tx_bytes,
            e.rx_packets,
            e.tx_packets,
            e.dropped,
        );
        let (mut active, mut starting) = (0, 0);
        for id in self.calls.call_ids() {
            if let Some(e) = self.calls.get(id) {
                let k = e.value.link.counters;
                rb += k.rx_bytes;
                tb += k.tx_bytes;
                rp += k.rx_packets;
                tp += k.tx_packets;
                dropped += k.dropped;
                if e.value.up_since.is_some() {
                    active += 1;
                } else {
                    starting += 1;
                }
            }
        }
        (c.rx_bytes, c.tx_bytes, c.rx_packets, c.tx_packets) = (rb, tb, rp, tp);
        for (k, v) in [
            ("unknown_call", self.gre_unknown),
            ("wrong_source", self.gre_wrong_src),
            ("malformed", self.gre_malformed),
            ("session", dropped),
        ] {
            c.gre_dropped.insert(k.to_string(), v);
        }
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s: self.started.elapsed().as_secs(),
            listeners: self.listeners.clone(),
            sessions_starting: starting,
            sessions_active: active,
            control_connections: self.ctrls.len(),
            counters: c,
            // Filled in by the networks' handle (networks::Handle::status).
            networks: Vec::new(),
        }
    }

    fn sessions(&self, user: Option<&str>) -> Vec<SessionInfo> {
        let now = Instant::now();
        let mut ids = self.calls.call_ids();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| {
                let e = self.calls.get(id)?;
                let c = &e.value;
                if user.is_some() && c.user.as_deref() != user {
                    return None;
                }
                let k = c.link.counters;
                Some(SessionInfo {
                    id,
                    user: c.user.clone(),
                    client: e.peer,
                    address: e.tunnel_ip.or(c.addr),
                    peer_call_id: c.peer_call_id,
                    state: if c.up_since.is_some() {
                        "active"
                    } else {
                        "starting"
                    }
                    .into(),
                    uptime_s: c
                        .up_since
                        .map_or(0, |t| now.saturating_duration_since(t).as_secs()),
                    mppe: c.mppe.clone().unwrap_or_else(|| "-".into()),
                    rx_bytes: k.rx_bytes,
                    tx_bytes: k.tx_bytes,
                    rx_packets: k.rx_packets,
                    tx_packets: k.tx_packets,
                })
            })
            .collect()
    }

    /// Politely closes the matching sessions; returns how many.
    fn terminate(&mut self, target: &Target) -> usize {
        let now = Instant::now();
        let ids: Vec<u16> = self
            .calls
            .call_ids()
            .into_iter()
            .filter(|&id| {
                self.calls.get(id).is_some_and(|e| match target {
                    Target::All => true,
                    Target::Id(x) => *x == id,
                    Target::User(u) => e.value.user.as_deref() == Some(u.as_str()),
                    Target::Ip(a) => e.tunnel_ip == Some(*a) || e.value.addr == Some(*a),
                })
            })
            .collect();
        for &id in &ids {
            if let Some(e) = self.calls.get_mut(id) {
                tracing::info!(peer = %e.peer, user = e.value.user.as_deref().unwrap_or("?"),
                    "terminating session on request");
                e.value.close_reason = Some("terminated by administrator");
                e.value.link.session.close(now, "Administrator request");
            }
            self.drive_call(id, now);
        }
        ids.len()
    }

    /// Re-reads the files; new settings apply to new sessions, live ones stay. A broken file
    /// leaves the running configuration in place.
    fn reload(&mut self, why: &str) -> Response {
        let mut new = match crate::settings::load(&self.config) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{why}: reload refused, the running configuration stays: {e}");
                return Response::Error {
                    message: format!("reload refused, the running configuration stays: {e}"),
                };
            }
        };
        let old = self.settings.clone();
        let mut warnings = Vec::new();
        let mut keep = |what: &str, changed: bool| {
            if changed {
                warnings.push(format!(
                    "{what} changed: it applies only after a restart; keeping the running value"
                ));
            }
        };
        keep("the TUN name", new.tun != old.tun);
        keep("localip", new.local_ip != old.local_ip);
        keep("listen", new.listen != old.listen);
        keep(
            "the MTU (mtu/mru/MPPE)",
            new.mtu != old.mtu || new.mss != old.mss,
        );
        keep(
            "RADIUS (plugin radius.so, its config file)",
            new.radius != old.radius,
        );
        new.radius = old.radius.clone();
        new.tun = old.tun.clone();
        new.local_ip = old.local_ip;
        new.listen = old.listen;
        new.mtu = old.mtu;
        new.mss = old.mss;
        if new.firewall_pool() != old.firewall_pool() {
            warnings.push(
                "client addresses changed: the firewall rules still name the old ones until a \
                 restart (or run with --no-firewall and manage them yourself)"
                    .into(),
            );
        }
        if new.pool != old.pool {
            // A new pool, with every live session's address kept reserved.
            let mut pool = ClientAddresses::new(&new.pool, new.local_ip);
            for id in self.calls.call_ids() {
                if let Some(a) = self.calls.get(id).and_then(|e| e.value.addr) {
                    let _ = pool.allocate(Some(a), None);
                }
            }
            self.pool = pool;
        }
        for w in &warnings {
            tracing::warn!("{why}: {w}");
        }
        self.settings = Arc::new(new);
        self.stats.reloads += 1;
        tracing::info!(
            users = self.settings.secrets.entries().len(),
            pool = self.settings.pool.len(),
            sessions = self.calls.len(),
            "{why}: configuration reloaded; live sessions keep theirs"
        );
        Response::Reloaded { warnings }
    }

    fn begin_stop(&mut self, signal: &str, listener: &mut Option<TcpListener>) {
        if self.stop.is_some() {
            return;
        }
        let now = Instant::now();
        tracing::info!(
            sessions = self.calls.len(),
            connections = self.ctrls.len(),
            "{signal}: hanging up every session"
        );
        *listener = None;
        ops::sd_notify("STOPPING=1");
        self.stop = Some(StopState {
            started: now,
            ctrl_stopped: false,
        });
        for id in self.calls.call_ids() {
            if let Some(e) = self.calls.get_mut(id) {
                e.value.link.session.close(now, "server shutting down");
            }
            self.drive_call(id, now);
        }
    }

    /// Advances the stop sequence; true when the engine may exit.
    fn stop_progress(&mut self) -> bool {
        let Some(s) = &self.stop else {
            return false;
        };
        let now = Instant::now();
        let started = s.started;
        if !s.ctrl_stopped && (self.calls.is_empty() || now >= started + STOP_TERMINATE_WAIT) {
            // Whatever did not finish LCP Terminate gets its CDN now, then StopCCRQ.
            for id in self.calls.call_ids() {
                self.end_call(id, now, "server shutting down", true);
            }
            let ids: Vec<ConnId> = self.ctrls.keys().copied().collect();
            for id in ids {
                if let Some(c) = self.ctrls.get_mut(&id) {
                    c.conn.stop(now, crate::settings::stop_reason_shutdown());
                }
                self.drive_ctrl(id, now);
            }
            if let Some(s) = &mut self.stop {
                s.ctrl_stopped = true;
            }
        }
        let s_stopped = self.stop.as_ref().is_some_and(|s| s.ctrl_stopped);
        s_stopped && (self.ctrls.is_empty() || now >= started + STOP_TOTAL)
    }

    /// Lets writers flush (bounded), then drops everything.
    async fn finish(mut self) {
        let now = Instant::now();
        let ids: Vec<ConnId> = self.ctrls.keys().copied().collect();
        let mut writers = Vec::new();
        for id in ids {
            if let Some(mut c) = self.ctrls.remove(&id) {
                c.reader.abort();
                c.out.take();
                writers.push(c.writer);
            }
        }
        for id in self.calls.call_ids() {
            self.end_call(id, now, "server shutting down", false);
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            for w in writers {
                let _ = w.await;
            }
        })
        .await;
        tracing::info!(
            gre_unknown_call = self.gre_unknown,
            gre_wrong_source = self.gre_wrong_src,
            gre_malformed = self.gre_malformed,
            tun_no_session = self.tun_no_session,
            "stopped"
        );
    }
}

/// What an ip-up/ip-down hook is told about a session.
fn hook_info(
    s: &Settings,
    id: u16,
    (peer, tunnel_ip): (Ipv4Addr, Option<Ipv4Addr>),
    c: &Call,
    down: Option<(u64, u64, u64)>,
) -> HookInfo {
    HookInfo {
        ifname: s.tun.clone(),
        local: c.local.unwrap_or(s.local_ip),
        remote: tunnel_ip.or(c.addr).unwrap_or(Ipv4Addr::UNSPECIFIED),
        peer_name: c.user.clone().unwrap_or_default(),
        // pptpd passes the client's public address as ipparam unless `noipparam`.
        ipparam: if s.noipparam {
            String::new()
        } else {
            peer.to_string()
        },
        dns: c.dns,
        call_id: id,
        down,
    }
}

/// The metrics label of a session that ended before coming up.
fn failure_label(r: &virtgate_ppp::DownReason) -> &'static str {
    use virtgate_ppp::DownReason as R;
    match r {
        R::AuthFailed(_) => "auth_failed",
        R::NegotiationFailed { .. } => "negotiation_failed",
        R::MppeRequired(_) => "mppe_required",
        R::AddressPoolExhausted => "no_address",
        R::PeerNotResponding => "peer_not_responding",
        R::PeerTerminated(_) => "peer_terminated",
        R::LowerLayerDown => "call_cleared",
        R::LocalClose(_) => "local_close",
        R::LoopedBack => "looped_back",
        #[allow(unreachable_patterns)]
        _ => "negotiation_failed",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Idle,
    MaxConnect,
}

/// When an up session's `idle`/`maxconnect` must next be looked at (`None`: no limit).
fn limit_deadline(s: Limits, up: Instant, last_data: Instant) -> Option<Instant> {
    let a = s.maxconnect.map(|d| up + d);
    let b = s.idle.map(|d| last_data + d);
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `Err(limit)` when a limit has run out at `now` (maxconnect first, as it cannot be undone by
/// traffic), else `Ok(next deadline)`.
fn limit_expiry(
    s: Limits,
    up: Instant,
    last_data: Instant,
    now: Instant,
) -> Result<Option<Instant>, Limit> {
    if s.maxconnect.is_some_and(|d| now >= up + d) {
        return Err(Limit::MaxConnect);
    }
    if s.idle.is_some_and(|d| now >= last_data + d) {
        return Err(Limit::Idle);
    }
    Ok(limit_deadline(s, up, last_data))
}

fn reject_result() -> virtgate_pptp::control::OutgoingCallResult {
    virtgate_pptp::control::OutgoingCallResult::Busy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_maxconnect_expire_as_pppd_does() {
        let t0 = Instant::now();
        let s = |idle: Option<u64>, max: Option<u64>| Limits {
            idle: idle.map(Duration::from_secs),
            maxconnect: max.map(Duration::from_secs),
        };
        let at = |n: u64| t0 + Duration::from_secs(n);
        assert_eq!(limit_deadline(s(None, None), t0, t0), None);
        assert_eq!(limit_expiry(s(None, None), t0, t0, at(1000)), Ok(None));
        // idle 30: traffic at t=20 pushes the expiry to t=50.
        assert_eq!(
            limit_expiry(s(Some(30), None), t0, at(20), at(30)),
            Ok(Some(at(50)))
        );
        assert_eq!(
            limit_expiry(s(Some(30), None), t0, at(20), at(49)),
            Ok(Some(at(50)))
        );
        assert_eq!(
            limit_expiry(s(Some(30), None), t0, at(20), at(50)),
            Err(Limit::Idle)
        );
        // maxconnect 60 whatever the traffic; the earlier deadline is armed.
        assert_eq!(
            limit_deadline(s(Some(30), Some(60)), t0, at(45)),
            Some(at(60))
        );
        assert_eq!(
            limit_deadline(s(Some(30), Some(60)), t0, at(10)),
            Some(at(40))
        );
        assert_eq!(
            limit_expiry(s(Some(30), Some(60)), t0, at(59), at(60)),
            Err(Limit::MaxConnect)
        );
        assert_eq!(
            limit_expiry(s(None, Some(60)), t0, t0, at(59)),
            Ok(Some(at(60)))
        );
        // Both expired at once: maxconnect is reported (traffic cannot undo it).
        assert_eq!(
            limit_expiry(s(Some(10), Some(10)), t0, t0, at(10)),
            Err(Limit::MaxConnect)
        );
    }
}
