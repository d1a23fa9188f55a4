//! `virtgate dial --load N`: many PPTP sessions from one process, for issue 8's sessions
//! benchmark (bench/sessions.sh) and the smoke test.
//!
//! Every session is set up in full (TCP, PPTP control and call, LCP, MS-CHAPv2, CCP/MPPE,
//! IPCP) with the same sans-IO machines as `virtgate dial`, but without a TUN: once up, a
//! session only answers the server's LCP echoes (and, for `--ping`, sends one ICMP echo a
//! second to the server's tunnel address). One engine on one thread drives everything from
//! one `epoll` set (one raw GRE socket demultiplexed by the GRE key's call id, the TCP control
//! connections, a signalfd) and one timer structure; there is no task or thread per session.
//!
//! Pacing: at most `--concurrency` set-ups in flight and `--rate` starts per second. Output:
//! JSON lines on stdout — `progress` once a second while setting up, `setup` when every session
//! is up or has failed (set-ups/s, failures by reason, latency percentiles), `end` at exit.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use serde_json::json;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use virtgate_ppp::{DownReason, Session, SessionEvent};
use virtgate_pptp::conn::{ControlConnection, ControlEvent};
use virtgate_pptp::gre::{GreChannel, GreHeader};

use crate::cli::DialArgs;
use crate::error::{DaemonError, DialError};
use crate::link::{GreRx, GreTx, Link, BUF_LEN, HEADROOM};
use crate::net::{self, IPPROTO_GRE};
use crate::settings;
use crate::table::Timers;

/// How long the polite hang-up of every session may take before we just exit.
const HANGUP_WAIT: Duration = Duration::from_secs(5);
/// GRE packets that overtake their call's Outgoing-Call-Reply, kept per call (see dial.rs).
const EARLY_GRE_MAX: usize = 8;
/// Packets read from the GRE socket per wake-up before looking at other sources.
const GRE_BATCH: usize = 256;

const TOKEN_GRE: u64 = 0;
const TOKEN_SIGNAL: u64 = 1;
const TOKEN_CONN0: u64 = 2;

fn load_err(what: &str, e: io::Error) -> DaemonError {
    DaemonError::Dial(DialError::Load(format!("{what}: {e}")))
}

// ---- a minimal epoll -----------------------------------------------------------------------

struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 has no pointer arguments; a non-negative result is a new fd we
        // own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: valid epoll fd, a valid pointer to an epoll_event for the call's duration.
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self, evs: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        let max = libc::c_int::try_from(evs.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `evs` is valid for `max` entries for the call's duration.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), evs.as_mut_ptr(), max, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

/// SIGTERM and SIGINT as a readable fd (the signals are blocked for this thread, which is the
/// only one: load mode runs before any runtime exists).
fn signal_fd() -> io::Result<OwnedFd> {
    // SAFETY: sigset_t is plain data; the sig* calls get valid pointers to it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// The raw GRE socket, connected to the server: the kernel delivers only its GRE and looks the
/// route up once.
struct RawGre(Socket);

impl RawGre {
    fn open(server: Ipv4Addr) -> io::Result<RawGre> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_GRE)))?;
        s.set_nonblocking(true)?;
        net::set_pmtudisc_dont(&s)?;
        let _ = s.set_recv_buffer_size(8 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        s.connect(&SockAddr::from(SocketAddrV4::new(server, 0)))?;
        Ok(RawGre(s))
    }
}

impl GreTx for RawGre {
    fn send_gre(&self, pkt: &[u8], _peer: Ipv4Addr) -> io::Result<()> {
        match self.0.send(pkt) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }
}

// ---- the engine ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    Conn(u32),
    Sess(u32),
    /// Once a second: progress, pings, --rate admissions, --hold.
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Not started yet.
    Waiting,
    /// Started: TCP, control connection, call or PPP under way.
    Dialing,
    Up,
    /// Failed, or down after being up; the call is gone or going.
    Done,
}

struct Sess {
    conn: u32,
    st: St,
    link: Option<Box<Link>>,
    started: Instant,
    /// Our call id: the key the server puts in GRE packets to us.
    call_id: u16,
    /// The call exists on the control connection (placed and not cleared).
    call_open: bool,
    tunnel: Option<(Ipv4Addr, Ipv4Addr)>,
    early: Vec<Vec<u8>>,
}

struct Conn {
    /// `None` once closed.
    sock: Option<Socket>,
    /// `None` while the TCP connect is in progress.
    ctrl: Option<ControlConnection>,
    out: Vec<u8>,
    want_out: bool,
    sessions: Vec<u32>,
    closed: bool,
}

#[derive(Default)]
struct Tally {
    up: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    /// Sessions that were up and went down before the hang-up, by reason.
    down_while_up: BTreeMap<String, u64>,
    latencies_ms: Vec<f64>,
    first_start: Option<Instant>,
    last_up: Option<Instant>,
    pings_sent: u64,
    pings_received: u64,
    hung_up: u64,
}

struct Engine<'a> {
    args: &'a DialArgs,
    server: Ipv4Addr,
    gre: RawGre,
    ep: Epoll,
    sessions: Vec<Sess>,
    conns: Vec<Option<Conn>>,
    timers: Timers<Key>,
    next_start: usize,
    in_flight: u32,
    tally: Tally,
    scratch: Vec<u8>,
    rbuf: Vec<u8>,
    t0: Instant,
    setup_done: Option<Instant>,
    stopping: Option<Instant>,
    open_conns: usize,
}

pub fn run(args: &DialArgs) -> Result<(), DaemonError> {
    let n = usize::from(args.load.load.unwrap_or(1));
    let per = usize::from(args.load.calls_per_connection.max(1));
    if let Ok(limit) = net::raise_nofile_limit() {
        let need = n.div_ceil(per) as u64 + 64;
        if limit < need {
            return Err(DaemonError::Dial(DialError::Load(format!(
                "{n} sessions need about {need} open files, the limit is {limit}: raise it \
                 (ulimit -n) or use --calls-per-connection"
            ))));
        }
    }
    let sig = signal_fd().map_err(|e| load_err("signalfd", e))?;
    let ep = Epoll::new().map_err(|e| load_err("epoll", e))?;
    let gre = RawGre::open(args.server).map_err(DaemonError::GreSocket)?;
    ep.ctl(
        libc::EPOLL_CTL_ADD,
        gre.0.as_raw_fd(),
        libc::EPOLLIN as u32,
        TOKEN_GRE,
    )
    .map_err(|e| load_err("epoll", e))?;
    ep.ctl(
        libc::EPOLL_CTL_ADD,
        sig.as_raw_fd(),
        libc::EPOLLIN as u32,
        TOKEN_SIGNAL,
    )
    .map_err(|e| load_err("epoll", e))?;
    let t0 = Instant::now();
    let sessions = (0..n)
        .map(|i| Sess {
            conn: (i / per) as u32,
            st: St::Waiting,
            link: None,
            started: t0,
            // Call ids 1..=N: unique per process, so one GRE socket finds every session.
            call_id: (i + 1) as u16,
            call_open: false,
            tunnel: None,
            early: Vec::new(),
        })
        .collect();
    let mut eng = Engine {
        args,
        server: args.server,
        gre,
        ep,
        sessions,
        conns: (0..n.div_ceil(per)).map(|_| None).collect(),
        timers: Timers::default(),
        next_start: 0,
        in_flight: 0,
        tally: Tally::default(),
        scratch: vec![0u8; BUF_LEN],
        rbuf: vec![0u8; 65_536],
        t0,
        setup_done: None,
        stopping: None,
        open_conns: 0,
    };
    eng.timers.set(Key::Tick, Some(t0 + Duration::from_secs(1)));
    eng.admit(t0);
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut gre_buf = vec![0u8; BUF_LEN];
    loop {
        let now = Instant::now();
        if let Some(s) = eng.stopping {
            if eng.open_conns == 0 || now >= s + HANGUP_WAIT {
                break;
            }
        }
        let timeout = match eng.timers.next() {
            None => 1000,
            Some(t) if t <= now => 0,
            // Round up: waking a little late is fine, early means a spin.
            Some(t) => (t - now).as_millis().min(60_000) as i32 + 1,
        };
        let k = eng
            .ep
            .wait(&mut evs, timeout)
            .map_err(|e| load_err("epoll_wait", e))?;
        for ev in evs.iter().take(k) {
            let (token, bits) = (ev.u64, ev.events);
            match token {
                TOKEN_GRE => eng.on_gre_ready(&mut gre_buf),
                TOKEN_SIGNAL => {
                    let mut info = [0u8; 128];
                    // SAFETY: reads at most 128 bytes into a 128-byte buffer from our signalfd.
                    let _ = unsafe { libc::read(sig.as_raw_fd(), info.as_mut_ptr().cast(), 128) };
                    tracing::info!("signal: hanging up every session");
                    eng.begin_stop(Instant::now());
                }
                t => eng.on_conn_ready((t - TOKEN_CONN0) as u32, bits),
            }
        }
        let now = Instant::now();
        while let Some(key) = eng.timers.pop_expired(now) {
            match key {
                Key::Conn(c) => {
                    if let Some(ctrl) = eng.conn_mut(c).and_then(|x| x.ctrl.as_mut()) {
                        ctrl.handle_timeout(now);
                    }
                    eng.drive_conn(c, now);
                }
                Key::Sess(i) => eng.on_sess_timer(i, now),
                Key::Tick => eng.tick(now),
            }
        }
        eng.admit(now);
    }
    eng.print_end();
    Ok(())
}

impl Engine<'_> {
    fn conn_mut(&mut self, c: u32) -> Option<&mut Conn> {
        self.conns.get_mut(c as usize).and_then(|x| x.as_mut())
    }

    /// Starts set-ups while the concurrency and rate limits allow.
    fn admit(&mut self, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        let conc = self.args.load.concurrency;
        let rate = u64::from(self.args.load.rate);
        while self.next_start < self.sessions.len() && self.in_flight < conc {
            if rate > 0 {
                // Starts allowed by now: one immediately, then `rate` per second.
                let allowed = 1 + (now - self.t0).as_millis() as u64 * rate / 1000;
                if self.next_start as u64 >= allowed {
                    break;
                }
            }
            let i = self.next_start;
            self.next_start += 1;
            self.start_session(i as u32, now);
        }
    }

    fn start_session(&mut self, i: u32, now: Instant) {
        self.tally.first_start.get_or_insert(now);
        let Some(s) = self.sessions.get_mut(i as usize) else {
            return;
        };
        s.st = St::Dialing;
        s.started = now;
        let c = s.conn;
        self.in_flight += 1;
        let deadline = now + Duration::from_secs(self.args.load.setup_timeout);
        self.timers.set(Key::Sess(i), Some(deadline));
        if self.conns.get(c as usize).is_some_and(|x| x.is_none()) {
            if let Err(e) = self.open_conn(c) {
                self.fail(i, now, format!("connect: {}", e.kind()));
                return;
            }
        }
        let call_id = self.sessions[i as usize].call_id;
        let Some(conn) = self.conns.get_mut(c as usize).and_then(|x| x.as_mut()) else {
            return;
        };
        conn.sessions.push(i);
        if conn.closed {
            self.fail(i, now, "control_closed".into());
            return;
        }
        if let Some(ctrl) = conn.ctrl.as_mut() {
            ctrl.place_call(now, call_id);
            self.sessions[i as usize].call_open = true;
            self.drive_conn(c, now);
        }
    }

    fn open_conn(&mut self, c: u32) -> io::Result<()> {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        sock.set_nonblocking(true)?;
        let _ = sock.set_tcp_nodelay(true);
        // Small buffers: 10,000 control connections carry a few hundred bytes each.
        let _ = sock.set_recv_buffer_size(16 << 10);
        let _ = sock.set_send_buffer_size(16 << 10);
        match sock.connect(&SockAddr::from(SocketAddrV4::new(self.server, 1723))) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        self.ep.ctl(
            libc::EPOLL_CTL_ADD,
            sock.as_raw_fd(),
            (libc::EPOLLIN | libc::EPOLLOUT) as u32,
            TOKEN_CONN0 + u64::from(c),
        )?;
        self.conns[c as usize] = Some(Conn {
            sock: Some(sock),
            ctrl: None,
            out: Vec::new(),
            want_out: true,
            sessions: Vec::new(),
            closed: false,
        });
        self.open_conns += 1;
        Ok(())
    }

    fn on_conn_ready(&mut self, c: u32, bits: u32) {
        let now = Instant::now();
        let Some(conn) = self.conns.get_mut(c as usize).and_then(|x| x.as_mut()) else {
            return;
        };
        if conn.closed {
            return;
        }
        if conn.ctrl.is_none() {
            // The TCP connect finished, one way or the other.
            if bits & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                return;
            }
            let err = match conn.sock.as_ref().map(|x| x.take_error()) {
                Some(Ok(None)) => None,
                Some(Ok(Some(e)) | Err(e)) => Some(e),
                None => return,
            };
            match err {
                None => {}
                Some(e) => {
                    self.close_conn(c, now, &format!("connect: {}", e.kind()));
                    return;
                }
            }
            let mut ctrl = ControlConnection::new_client(now, settings::control_config_default());
            let mut placed = Vec::new();
            for &i in &conn.sessions {
                if let Some(s) = self.sessions.get(i as usize) {
                    if s.st == St::Dialing {
                        ctrl.place_call(now, s.call_id);
                        placed.push(i);
                    }
                }
            }
            conn.ctrl = Some(ctrl);
            for i in placed {
                self.sessions[i as usize].call_open = true;
            }
            self.drive_conn(c, now);
            return;
        }
        if bits & libc::EPOLLOUT as u32 != 0 {
            self.flush_conn(c);
        }
        if bits & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
            loop {
                let Some(conn) = self.conns.get_mut(c as usize).and_then(|x| x.as_mut()) else {
                    return;
                };
                let Some(mut sock) = conn.sock.as_ref() else {
                    return;
                };
                match sock.read(&mut self.rbuf) {
                    Ok(0) => {
                        self.close_conn(c, now, "control_closed: TCP connection closed");
                        return;
                    }
                    Ok(n) => {
                        if let Some(ctrl) = conn.ctrl.as_mut() {
                            ctrl.handle_input(now, &self.rbuf[..n]);
                        }
                        if n < self.rbuf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.close_conn(c, now, &format!("control_closed: {}", e.kind()));
                        return;
                    }
                }
            }
            self.drive_conn(c, now);
        }
    }

    /// Writes what the connection has queued; arms EPOLLOUT for the rest.
    fn flush_conn(&mut self, c: u32) {
        let Some(conn) = self.conn_mut(c) else {
            return;
        };
        let Some(mut sock) = conn.sock.as_ref() else {
            return;
        };
        while !conn.out.is_empty() {
            match sock.write(&conn.out) {
                Ok(n) => {
                    conn.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The read side reports the broken connection.
                    conn.out.clear();
                }
            }
        }
        let want = !conn.out.is_empty();
        if want != conn.want_out {
            conn.want_out = want;
            let bits = if want {
                libc::EPOLLIN | libc::EPOLLOUT
            } else {
                libc::EPOLLIN
            };
            let fd = sock.as_raw_fd();
            let _ = self.ep.ctl(
                libc::EPOLL_CTL_MOD,
                fd,
                bits as u32,
                TOKEN_CONN0 + u64::from(c),
            );
        }
    }

    /// Drains a control connection: bytes out, events, timer.
    fn drive_conn(&mut self, c: u32, now: Instant) {
        loop {
            let Some(conn) = self.conn_mut(c) else {
                return;
            };
            let Some(ctrl) = conn.ctrl.as_mut() else {
                return;
            };
            while let Some(bytes) = ctrl.poll_transmit() {
                conn.out.extend_from_slice(&bytes);
            }
            let Some(ev) = ctrl.poll_event() else {
                break;
            };
            self.on_ctrl_event(c, now, ev);
        }
        self.flush_conn(c);
        let Some(conn) = self.conn_mut(c) else {
            return;
        };
        let Some(ctrl) = conn.ctrl.as_ref() else {
            return;
        };
        if ctrl.is_closed() {
            self.close_conn(c, now, "control_closed");
            return;
        }
        let t = ctrl.poll_timeout();
        self.timers.set(Key::Conn(c), t);
    }

    fn on_ctrl_event(&mut self, c: u32, now: Instant, ev: ControlEvent) {
        match ev {
            ControlEvent::CallEstablished {
                local_call_id,
                peer_call_id,
                peer_recv_window,
            } => {
                let i = u32::from(local_call_id).wrapping_sub(1);
                let Some(s) = self.sessions.get_mut(i as usize) else {
                    return;
                };
                if s.st != St::Dialing || s.conn != c {
                    return;
                }
                let chan = GreChannel::new(local_call_id, peer_call_id, peer_recv_window);
                let mut cfg = settings::client_session_config(self.args);
                cfg.lcp.echo_interval = self
                    .args
                    .load
                    .lcp_echo
                    .map(|x| Duration::from_secs(u64::from(x)));
                cfg.lcp.echo_failure = if cfg.lcp.echo_interval.is_some() {
                    4
                } else {
                    0
                };
                let mut session = Session::new(now, cfg, Box::new(settings::OsEntropy));
                session.open(now);
                s.link = Some(Box::new(Link::new(chan, session, self.server, u16::MAX)));
                let early = std::mem::take(&mut s.early);
                for mut pkt in early {
                    let n = pkt.len();
                    self.on_gre_packet(&mut pkt, n, now);
                }
                self.drive_sess(i, now);
            }
            ControlEvent::CallRejected {
                local_call_id,
                result,
            } => {
                let i = u32::from(local_call_id).wrapping_sub(1);
                if let Some(s) = self.sessions.get_mut(i as usize) {
                    s.call_open = false;
                }
                self.fail(i, now, format!("call_rejected: result {result}"));
            }
            ControlEvent::CallCleared {
                local_call_id,
                reason,
            } => {
                let i = u32::from(local_call_id).wrapping_sub(1);
                let Some(s) = self.sessions.get_mut(i as usize) else {
                    return;
                };
                s.call_open = false;
                // A server that ends a link says why in its LCP Terminate-Request, just
                // before the Call-Disconnect-Notify: that reason beats the CDN's.
                let said = s.link.take().and_then(|l| l.end_with_peer_reason(now));
                let why = match said {
                    Some(t) => format!("peer_terminated: {t}"),
                    None => format!("call_cleared: {reason:?}"),
                };
                self.session_ended(i, now, why);
            }
            ControlEvent::Closed { reason } => {
                self.close_conn(c, now, &format!("control_closed: {reason:?}"));
            }
            other => tracing::debug!(conn = c, "control event: {other:?}"),
        }
    }

    /// Ends every session of a connection that is still alive and forgets the connection.
    fn close_conn(&mut self, c: u32, now: Instant, why: &str) {
        let Some(conn) = self.conns.get_mut(c as usize).and_then(|x| x.as_mut()) else {
            return;
        };
        if conn.closed {
            return;
        }
        conn.closed = true;
        if let Some(sock) = &conn.sock {
            let _ = self.ep.ctl(libc::EPOLL_CTL_DEL, sock.as_raw_fd(), 0, 0);
        }
        let ids = std::mem::take(&mut conn.sessions);
        self.timers.set(Key::Conn(c), None);
        self.open_conns = self.open_conns.saturating_sub(1);
        for i in ids {
            if let Some(s) = self.sessions.get_mut(i as usize) {
                s.call_open = false;
                s.link = None;
            }
            self.session_ended(i, now, why.to_string());
        }
        // Dropping the socket closes it; the closed stub stays (a connection is never reopened).
        if let Some(conn) = self.conns.get_mut(c as usize).and_then(|x| x.as_mut()) {
            conn.sock = None;
            conn.ctrl = None;
            conn.out = Vec::new();
        }
    }

    fn on_gre_ready(&mut self, buf: &mut [u8]) {
        for _ in 0..GRE_BATCH {
            match (&self.gre.0).read(buf) {
                Ok(n) => self.on_gre_packet(buf, n, Instant::now()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!("GRE receive failed: {e}");
                    return;
                }
            }
        }
    }

    fn on_gre_packet(&mut self, buf: &mut [u8], n: usize, now: Instant) {
        let Some((src, ihl, end)) = buf.get(..n).and_then(net::ipv4_payload) else {
            return;
        };
        if src != self.server {
            return;
        }
        let Ok((hdr, hlen)) = GreHeader::parse(&buf[ihl..end]) else {
            return;
        };
        let i = u32::from(hdr.call_id).wrapping_sub(1);
        let Some(s) = self.sessions.get_mut(i as usize) else {
            return;
        };
        let Some(link) = s.link.as_mut() else {
            if s.st == St::Dialing && s.call_open && s.early.len() < EARLY_GRE_MAX {
                s.early.push(buf[..n].to_vec());
            }
            return;
        };
        match link.receive_gre(now, buf, &hdr, ihl + hlen, end) {
            GreRx::Ip { start, len } => {
                if is_echo_reply(buf.get(start..start + len).unwrap_or(&[])) {
                    self.tally.pings_received += 1;
                }
                let t = link.next_timeout();
                self.set_sess_timer(i, t);
            }
            GreRx::Control | GreRx::Dropped => self.drive_sess(i, now),
        }
    }

    fn set_sess_timer(&mut self, i: u32, link_t: Option<Instant>) {
        let Some(s) = self.sessions.get(i as usize) else {
            return;
        };
        let dial = (s.st == St::Dialing)
            .then(|| s.started + Duration::from_secs(self.args.load.setup_timeout));
        let t = match (link_t, dial) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.timers.set(Key::Sess(i), t);
    }

    fn on_sess_timer(&mut self, i: u32, now: Instant) {
        let Some(s) = self.sessions.get_mut(i as usize) else {
            return;
        };
        if s.st == St::Dialing
            && now >= s.started + Duration::from_secs(self.args.load.setup_timeout)
        {
            let st = s.started;
            tracing::debug!(session = i, after = ?now - st, "set-up timed out");
            self.give_up(i, now, "timeout".into());
            return;
        }
        if let Some(l) = s.link.as_mut() {
            l.on_timeout(now);
        }
        self.drive_sess(i, now);
    }

    /// Drains a session: frames out, events, timer.
    fn drive_sess(&mut self, i: u32, now: Instant) {
        loop {
            let Some(link) = self
                .sessions
                .get_mut(i as usize)
                .and_then(|s| s.link.as_mut())
            else {
                self.set_sess_timer(i, None);
                return;
            };
            link.flush(now, &self.gre, &mut self.scratch);
            let Some(ev) = link.poll_event() else {
                let t = link.next_timeout();
                self.set_sess_timer(i, t);
                return;
            };
            match ev {
                SessionEvent::Up {
                    local, peer, mtu, ..
                } => {
                    let s = &mut self.sessions[i as usize];
                    if s.st == St::Dialing {
                        s.st = St::Up;
                        s.tunnel = Some((local, peer));
                        let ms = (now - s.started).as_secs_f64() * 1000.0;
                        self.in_flight = self.in_flight.saturating_sub(1);
                        self.tally.up += 1;
                        self.tally.latencies_ms.push(ms);
                        self.tally.last_up = Some(now);
                        tracing::debug!(session = i, %local, %peer, mtu, "up");
                    }
                }
                SessionEvent::Down { reason } => {
                    let why = down_label(&reason);
                    if let Some(s) = self.sessions.get_mut(i as usize) {
                        if let Some(mut l) = s.link.take() {
                            l.flush(now, &self.gre, &mut self.scratch);
                        }
                    }
                    self.session_ended(i, now, why);
                    self.clear_call(i, now);
                    return;
                }
                other => tracing::trace!(session = i, "session event: {other:?}"),
            }
        }
    }

    /// Gives up on a set-up (timeout): closes what exists and counts the failure.
    fn give_up(&mut self, i: u32, now: Instant, why: String) {
        if let Some(s) = self.sessions.get_mut(i as usize) {
            s.link = None;
        }
        self.session_ended(i, now, why);
        self.clear_call(i, now);
    }

    /// Sends the CCRQ for a finished session; stops its control connection when it was the
    /// last call on it.
    fn clear_call(&mut self, i: u32, now: Instant) {
        let Some(s) = self.sessions.get_mut(i as usize) else {
            return;
        };
        let (c, call_id, open) = (s.conn, s.call_id, s.call_open);
        s.call_open = false;
        let stopping = self.stopping.is_some();
        let all_done = {
            let Some(conn) = self.conns.get(c as usize).and_then(|x| x.as_ref()) else {
                return;
            };
            conn.sessions.iter().all(|&j| {
                self.sessions
                    .get(j as usize)
                    .is_none_or(|s| s.st == St::Done)
            }) && (stopping || self.next_start >= self.sessions.len() || !self.more_for(c))
        };
        let Some(ctrl) = self.conn_mut(c).and_then(|x| x.ctrl.as_mut()) else {
            return;
        };
        if open {
            ctrl.clear_call(now, call_id);
        }
        if all_done {
            ctrl.stop(now, settings::stop_reason_shutdown());
        }
        self.drive_conn(c, now);
    }

    /// Whether sessions not started yet belong to connection `c`.
    fn more_for(&self, c: u32) -> bool {
        self.sessions
            .get(self.next_start..)
            .is_some_and(|rest| rest.first().is_some_and(|s| s.conn == c))
    }

    fn fail(&mut self, i: u32, now: Instant, why: String) {
        self.session_ended(i, now, why);
    }

    /// Accounts for a session that is over (failed set-up, or down after being up).
    fn session_ended(&mut self, i: u32, _now: Instant, why: String) {
        let Some(s) = self.sessions.get_mut(i as usize) else {
            return;
        };
        match s.st {
            St::Dialing => {
                self.in_flight = self.in_flight.saturating_sub(1);
                if self.stopping.is_some() {
                    *self
                        .tally
                        .failures
                        .entry("interrupted by hang-up".into())
                        .or_default() += 1;
                } else {
                    *self.tally.failures.entry(why).or_default() += 1;
                }
                self.tally.failed += 1;
            }
            St::Up => {
                if self.stopping.is_some() {
                    self.tally.hung_up += 1;
                } else {
                    *self.tally.down_while_up.entry(why).or_default() += 1;
                }
            }
            St::Waiting | St::Done => {}
        }
        s.st = St::Done;
        s.early = Vec::new();
        self.timers.set(Key::Sess(i), None);
    }

    fn tick(&mut self, now: Instant) {
        self.timers
            .set(Key::Tick, Some(now + Duration::from_secs(1)));
        let resolved = self.next_start >= self.sessions.len() && self.in_flight == 0;
        if self.setup_done.is_none() {
            if resolved {
                self.setup_done = Some(now);
                self.print_setup();
            } else {
                println!(
                    "{}",
                    json!({
                        "event": "progress",
                        "t": (now - self.t0).as_secs_f64(),
                        "started": self.next_start,
                        "up": self.tally.up,
                        "failed": self.tally.failed,
                        "in_flight": self.in_flight,
                    })
                );
            }
        }
        if self.setup_done.is_some() && self.stopping.is_none() {
            // What the idle sessions receive (the server's LCP Echo-Requests are control
            // frames): the benchmark counts echoes from it.
            let (mut rx, mut tx) = (0u64, 0u64);
            for s in &self.sessions {
                if let Some(l) = &s.link {
                    rx += l.session.stats().rx_control;
                    tx += l.session.stats().tx_control;
                }
            }
            println!(
                "{}",
                json!({
                    "event": "status",
                    "t": (now - self.t0).as_secs_f64(),
                    "up": self.sessions.iter().filter(|s| s.st == St::Up).count(),
                    "rx_control": rx,
                    "tx_control": tx,
                })
            );
        }
        if let (Some(done), Some(hold)) = (self.setup_done, self.args.load.hold) {
            if self.stopping.is_none() && now >= done + Duration::from_secs(hold) {
                self.begin_stop(now);
            }
        }
        if self.stopping.is_none() {
            let k = usize::from(self.args.load.ping).min(self.sessions.len());
            for i in 0..k as u32 {
                self.ping(i, now);
            }
        }
    }

    /// One ICMP echo request from the session's address to the server's tunnel address.
    fn ping(&mut self, i: u32, now: Instant) {
        let Some(s) = self.sessions.get_mut(i as usize) else {
            return;
        };
        let (Some((local, peer)), Some(link)) = (s.tunnel, s.link.as_mut()) else {
            return;
        };
        if s.st != St::Up {
            return;
        }
        let seq = self.tally.pings_sent as u16;
        let len = icmp_echo(&mut self.scratch[HEADROOM..], local, peer, i as u16, seq);
        if link.send_ip(now, &mut self.scratch, len, &self.gre) {
            self.tally.pings_sent += 1;
        }
        let t = link.next_timeout();
        self.set_sess_timer(i, t);
    }

    fn begin_stop(&mut self, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        if self.setup_done.is_none() {
            self.setup_done = Some(now);
            self.print_setup();
        }
        self.stopping = Some(now);
        for i in 0..self.sessions.len() as u32 {
            let s = &mut self.sessions[i as usize];
            match (s.st, s.link.as_mut()) {
                (St::Up | St::Dialing, Some(l)) => {
                    l.session.close(now, "user request");
                    self.drive_sess(i, now);
                }
                (St::Dialing, None) => {
                    self.session_ended(i, now, "interrupted".into());
                    self.clear_call(i, now);
                }
                _ => {}
            }
        }
        // Connections still connecting, or with no live call left.
        for c in 0..self.conns.len() as u32 {
            let live = self.conns[c as usize].as_ref().is_some_and(|x| {
                !x.closed
                    && x.sessions.iter().any(|&j| {
                        self.sessions
                            .get(j as usize)
                            .is_some_and(|s| s.st != St::Done)
                    })
            });
            let open = self.conns[c as usize].as_ref().is_some_and(|x| !x.closed);
            if open && !live {
                if let Some(ctrl) = self.conn_mut(c).and_then(|x| x.ctrl.as_mut()) {
                    ctrl.stop(now, settings::stop_reason_shutdown());
                    self.drive_conn(c, now);
                } else {
                    self.close_conn(c, now, "interrupted");
                }
            }
        }
    }

    fn print_setup(&self) {
        let t = &self.tally;
        let mut lat = t.latencies_ms.clone();
        lat.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| -> f64 {
            if lat.is_empty() {
                return 0.0;
            }
            let k = ((lat.len() as f64 - 1.0) * p).round() as usize;
            lat.get(k).copied().unwrap_or(0.0)
        };
        let span = match (t.first_start, t.last_up) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        println!(
            "{}",
            json!({
                "event": "setup",
                "sessions": self.sessions.len(),
                "connections": self.conns.len(),
                "up": t.up,
                "failed": t.failed,
                "failures": t.failures,
                "seconds_to_all_up": span,
                "setups_per_s": if span > 0.0 { t.up as f64 / span } else { 0.0 },
                "latency_ms": {
                    "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99),
                    "max": lat.last().copied().unwrap_or(0.0),
                },
                "concurrency": self.args.load.concurrency,
                "rate": self.args.load.rate,
            })
        );
    }

    fn print_end(&self) {
        let t = &self.tally;
        let up_now = self.sessions.iter().filter(|s| s.st == St::Up).count();
        println!(
            "{}",
            json!({
                "event": "end",
                "up": t.up,
                "hung_up": t.hung_up,
                "still_up_at_exit": up_now,
                "down_while_up": t.down_while_up,
                "pings_sent": t.pings_sent,
                "pings_received": t.pings_received,
                "seconds": (Instant::now() - self.t0).as_secs_f64(),
            })
        );
        let _ = io::stdout().flush();
    }
}

fn down_label(r: &DownReason) -> String {
    match r {
        DownReason::AuthFailed(_) => "auth_failed".into(),
        DownReason::NegotiationFailed { protocol, .. } => {
            format!("negotiation_failed: {protocol}")
        }
        DownReason::MppeRequired(_) => "mppe_required".into(),
        DownReason::AddressPoolExhausted => "no_address".into(),
        DownReason::PeerNotResponding => "peer_not_responding".into(),
        DownReason::PeerTerminated(t) if t.is_empty() => "peer_terminated".into(),
        DownReason::PeerTerminated(t) => format!("peer_terminated: {t}"),
        DownReason::LowerLayerDown => "call_cleared".into(),
        DownReason::LocalClose(_) => "local_close".into(),
        DownReason::LoopedBack => "looped_back".into(),
        other => format!("{other}"),
    }
}

/// Writes an IPv4 ICMP echo request (56 octets of data, as ping) into `buf`; returns its length.
fn icmp_echo(buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> usize {
    const LEN: usize = 20 + 8 + 56;
    let Some(p) = buf.get_mut(..LEN) else {
        return 0;
    };
    p.fill(0);
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(LEN as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 1; // ICMP
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20] = 8; // echo request
    p[24..26].copy_from_slice(&id.to_be_bytes());
    p[26..28].copy_from_slice(&seq.to_be_bytes());
    for (k, b) in p[28..].iter_mut().enumerate() {
        *b = k as u8;
    }
    let c = checksum(&p[20..]);
    p[22..24].copy_from_slice(&c.to_be_bytes());
    LEN
}

fn is_echo_reply(p: &[u8]) -> bool {
    let ihl = usize::from(p.first().copied().unwrap_or(0) & 0x0f) * 4;
    p.get(9) == Some(&1) && p.get(ihl) == Some(&0)
}

/// The Internet checksum (RFC 1071).
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for ch in b.chunks(2) {
        let w = match ch {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_echo_has_valid_checksums() {
        let mut b = [0u8; 128];
        let n = icmp_echo(
            &mut b,
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 1),
            7,
            9,
        );
        assert_eq!(n, 84);
        assert_eq!(checksum(&b[..20]), 0);
        assert_eq!(checksum(&b[20..n]), 0);
        assert!(!is_echo_reply(&b[..n]), "a request is not a reply");
        b[20] = 0;
        assert!(is_echo_reply(&b[..n]));
        assert!(!is_echo_reply(&[]));
    }
}
