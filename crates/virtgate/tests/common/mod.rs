//! Helpers shared by the namespace tests that run the real `virtgate` binary (root): throwaway
//! config directories, processes whose output is collected, a daemon/dial launcher, running code
//! inside a namespace from the test process (`setns` on a helper thread), and a small raw PPTP
//! client (RFC 2637 §2 control messages over TCP, §4 enhanced GRE over a raw socket, PPP from
//! `virtgate-ppp`) that can stop — or reset its TCP connection — in any phase of set-up.

#![allow(dead_code)] // each test binary uses its own subset

pub mod freeradius;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use virtgate_ppp::auth::{AuthMethod, AuthPolicy};
use virtgate_ppp::ccp::MppePolicy;
use virtgate_ppp::ipcp::IpcpPolicy;
use virtgate_ppp::{Decap, Entropy, Phase, Role, Session, SessionConfig, SessionEvent};
use virtgate_pptp::control::{
    ControlMessage, Deframer, FixedStr, Ocrq, OutgoingCallResult, Sccrq, StartResult,
    BEARER_ANALOG, BEARER_DIGITAL, FRAMING_ASYNC, FRAMING_SYNC, PROTOCOL_VERSION,
};
use virtgate_pptp::gre::{GreChannel, GreHeader, GRE_HEADROOM};
use virtgate_testnet::Netns;

pub const BIN: &str = env!("CARGO_BIN_EXE_virtgate");

/// A throwaway directory for config files; removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("virtgate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// pptpd.conf (with `extra_conf` lines), the pppd options file it names (the seed's options
/// plus `extra_options`) and a private chap-secrets holding `secrets`.
pub fn write_config(
    dir: &TempDir,
    extra_conf: &str,
    extra_options: &str,
    secrets: &str,
) -> (PathBuf, PathBuf) {
    let options = dir.write(
        "options.pptpd",
        &format!(
            "name pptpd\nrefuse-pap\nrefuse-chap\nrefuse-mschap\nrequire-mschap-v2\n\
             require-mppe-128\nms-dns 8.8.8.8\nnobsdcomp\nnovj\nnovjccomp\nnologfd\n\
             {extra_options}"
        ),
    );
    let conf = dir.write(
        "pptpd.conf",
        &format!(
            "option {}\nlocalip 192.168.0.1\n{extra_conf}",
            options.display()
        ),
    );
    let secrets = dir.write("chap-secrets", secrets);
    let mut perm = std::fs::metadata(&secrets).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
    std::fs::set_permissions(&secrets, perm).unwrap();
    (conf, secrets)
}

/// One test's world: its config directory and files, and a server and a client namespace
/// linked by a veth pair (`vs0` SUBNET.1/24 in the server, `vc0` SUBNET.2/24 in the client).
/// Fields drop in order: the namespaces, then the directory.
pub struct Rig {
    pub client: Netns,
    pub server: Netns,
    pub dir: TempDir,
    pub conf: PathBuf,
    pub secrets: PathBuf,
    /// The server's address on the link, to dial.
    pub addr: String,
}

impl Rig {
    /// `dir` holds the config `files` ([`write_config`]); namespaces `{tag}srv`, `{tag}cli`
    /// on `subnet` (three octets, e.g. `10.97.1`).
    pub fn new(dir: TempDir, files: (PathBuf, PathBuf), tag: &str, subnet: &str) -> Rig {
        let server = Netns::new(&format!("{tag}srv"));
        let client = Netns::new(&format!("{tag}cli"));
        let (s, c) = (format!("{subnet}.1/24"), format!("{subnet}.2/24"));
        server.link_to(&client, "vs0", &s, "vc0", &c);
        Rig {
            client,
            server,
            dir,
            conf: files.0,
            secrets: files.1,
            addr: format!("{subnet}.1"),
        }
    }
}

/// A process whose output is collected in the background; killed on drop.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(ns: &Netns, args: &[&str], rust_log: &str) -> Proc {
        let mut child = ns
            .command(BIN)
            .args(args)
            .env("RUST_LOG", rust_log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn virtgate");
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for (stream, tag) in [
            (Box::new(out) as Box<dyn Read + Send>, "out"),
            (Box::new(err), "err"),
        ] {
            let tx = tx.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(format!("[{tag}] {line}"));
                    if tag == "out" {
                        let _ = tx.send(line);
                    }
                }
            });
        }
        Proc { child, lines, log }
    }

    /// The next JSON line on stdout whose `event` is `event` (`dial --load`'s summaries).
    pub fn wait_event(&self, event: &str, timeout: Duration) -> Option<serde_json::Value> {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let line = self.lines.recv_timeout(left).ok()?;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["event"] == event {
                    return Some(v);
                }
            }
        }
        None
    }

    /// Waits for a stdout line starting with `prefix`.
    pub fn wait_line(&self, prefix: &str, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Some(l),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// How many log lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until at least `n` log lines contain `needle`; true if they did in time.
    pub fn wait_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.count(needle) >= n {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log lines containing `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status();
    }

    /// Waits for the exit status, up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                // Let the reader threads drain.
                std::thread::sleep(Duration::from_millis(100));
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The control socket of the daemon whose pptpd.conf is `conf` (tests run in parallel).
pub fn ctl_socket(conf: &Path) -> PathBuf {
    conf.parent().unwrap().join("ctl").join("virtgate.sock")
}

/// Starts `virtgate daemon` in `ns` (no firewall: these tests are about the PPTP server) and
/// waits until it listens on 1723.
pub fn daemon(ns: &Netns, conf: &Path, secrets: &Path, rust_log: &str) -> Proc {
    daemon_with(ns, conf, secrets, rust_log, &[])
}

/// [`daemon`] with extra flags (e.g. the abuse limits).
pub fn daemon_with(
    ns: &Netns,
    conf: &Path,
    secrets: &Path,
    rust_log: &str,
    extra: &[&str],
) -> Proc {
    let mut args = vec!["--no-firewall"];
    args.extend_from_slice(extra);
    wait_listening(ns, spawn_daemon(ns, conf, secrets, rust_log, &args))
}

/// Starts `virtgate daemon` in `ns` on `conf` and `secrets` with its own control socket
/// ([`ctl_socket`]) and state directory (leases, network definitions, the one-daemon lock)
/// beside `conf` (tests run in parallel), then `extra`; does not wait.
pub fn spawn_daemon(
    ns: &Netns,
    conf: &Path,
    secrets: &Path,
    rust_log: &str,
    extra: &[&str],
) -> Proc {
    let socket = ctl_socket(conf);
    let state = conf.parent().unwrap().join("state");
    let mut args = vec![
        "daemon",
        "--pptpd-conf",
        conf.to_str().unwrap(),
        "--chap-secrets",
        secrets.to_str().unwrap(),
        "--socket",
        socket.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Proc::spawn(ns, &args, rust_log)
}

/// Waits until the daemon `d` listens on 1723 in `ns`; panics with its log if it exits or
/// does not within 10 s.
pub fn wait_listening(ns: &Netns, mut d: Proc) -> Proc {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if String::from_utf8_lossy(&ns.sh("ss -ltn").stdout).contains(":1723") {
            return d;
        }
        if let Ok(Some(st)) = d.child.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            panic!("daemon exited ({st}) before listening:\n{}", d.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("daemon did not listen on 1723:\n{}", d.log());
}

/// Polls `f` every 100 ms until it holds or `timeout` has passed; whether it held.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A namespace with an uplink and a default route that leads nowhere
/// ([`add_dead_end_uplink`]).
pub fn host_ns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    add_dead_end_uplink(&ns);
    ns
}

/// `virtgate dial SERVER --user USER --password PW --tun TUN` in `ns`.
pub fn dial(ns: &Netns, server: &str, user: &str, password: &str, tun: &str) -> Proc {
    Proc::spawn(
        ns,
        &[
            "dial",
            server,
            "--user",
            user,
            "--password",
            password,
            "--tun",
            tun,
        ],
        "debug",
    )
}

/// The `local=` address of a dial's `up` line.
pub fn up_address(line: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("local="))
        .unwrap_or_default()
        .to_string()
}

/// Dials, waits for `up` and returns the process and its address; panics with both logs.
pub fn dial_up(
    ns: &Netns,
    server: &str,
    user: &str,
    pw: &str,
    tun: &str,
    d: &Proc,
) -> (Proc, String) {
    let c = dial(ns, server, user, pw, tun);
    let Some(up) = c.wait_line("up ", Duration::from_secs(20)) else {
        panic!(
            "{user}: no `up` line\n--- dial\n{}\n--- daemon\n{}",
            c.log(),
            d.log()
        );
    };
    (c, up_address(&up))
}

/// Dials and waits for it to fail; returns its log.
pub fn dial_fails(ns: &Netns, server: &str, user: &str, pw: &str, tun: &str) -> String {
    let mut p = dial(ns, server, user, pw, tun);
    let st = p.wait(Duration::from_secs(25));
    assert!(
        st.is_some_and(|s| !s.success()),
        "{user}/{pw}: the dial did not fail: {st:?}\n{}",
        p.log()
    );
    p.log()
}

/// Hangs a dial up with SIGTERM and waits for it to exit 0.
pub fn hang_up(mut c: Proc) {
    c.signal("TERM");
    let st = c.wait(Duration::from_secs(5));
    assert!(
        st.is_some_and(|s| s.success()),
        "dial exit {st:?}:\n{}",
        c.log()
    );
}

/// Stops the daemon with SIGTERM; returns its whole log (the `stopped` line carries the GRE
/// drop counters).
pub fn stop(mut d: Proc) -> String {
    d.signal("TERM");
    let st = d.wait(Duration::from_secs(5));
    assert!(
        st.is_some_and(|s| s.success()),
        "daemon exit {st:?}:\n{}",
        d.log()
    );
    d.log()
}

/// `virtgate ARGS... --socket SOCKET` (from the root namespace: the socket is a file).
pub fn ctl(socket: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn sessions_json(socket: &Path) -> Vec<serde_json::Value> {
    let (ok, out, err) = ctl(socket, &["sessions", "--json"]);
    assert!(ok, "sessions failed: {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["v"], 1, "{out}");
    assert_eq!(v["result"], "sessions", "{out}");
    v["sessions"].as_array().unwrap().clone()
}

/// `virtgate status --json` of the daemon whose pptpd.conf is `conf`.
pub fn status_json(conf: &Path) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["status", "--json", "--socket"])
        .arg(ctl_socket(conf))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The number after `name=` in `line` (tracing's field format).
pub fn field(line: &str, name: &str) -> Option<u64> {
    let key = format!("{name}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key.as_str()))
        .and_then(|v| v.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
}

/// Runs `f` on a thread that has entered `ns`'s network namespace: sockets it creates live in
/// that namespace (and stay there when handed back to other threads).
pub fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in_netns(ns, f)
        .join()
        .expect("namespace thread panicked")
}

/// Like [`in_netns`] but returns at once with the thread's handle.
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns with a valid namespace descriptor only changes this thread's network
        // namespace; the file outlives the call.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// Raises this process's open-file limit to its hard limit (for many sockets).
pub fn raise_nofile(want: u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < want {
            r.rlim_cur = r.rlim_max.min(want.max(r.rlim_cur));
            if r.rlim_max < want {
                r.rlim_max = want;
                r.rlim_cur = want;
            }
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// A raw IPPROTO_GRE socket (IPv4 header included on receive), opened in the calling thread's
/// namespace.
pub fn gre_socket() -> Socket {
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47))).expect("raw GRE socket");
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    s
}

/// Small xorshift generator: test randomness without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
}

struct TestEntropy(Rng);

impl Entropy for TestEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill(buf);
    }
}

/// How far [`RawClient::run_until`] drove the set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The server's first LCP frame arrived (and our Configure-Request went out): LCP is
    /// negotiating.
    Lcp,
    /// LCP is open and authentication has started.
    Auth,
    /// IPCP is up: the server has assigned an address.
    Up,
}

/// A PPTP client driven step by step from the test: the control connection with the
/// `virtgate-pptp` emitters, then (after the Outgoing-Call-Reply) a GRE channel and a client PPP
/// session. Blocking; create it inside the client namespace with [`in_netns`].
pub struct RawClient {
    tcp: TcpStream,
    deframer: Deframer,
    server: Ipv4Addr,
    gre: Option<Socket>,
    call: Option<(GreChannel, Session)>,
    pub call_id: u16,
    pub server_call_id: Option<u16>,
    pub up: Option<Ipv4Addr>,
    pub gre_rx: u64,
    pub events: Vec<String>,
}

impl RawClient {
    pub fn connect(server: Ipv4Addr) -> RawClient {
        let tcp = TcpStream::connect_timeout(
            &SocketAddr::V4(SocketAddrV4::new(server, 1723)),
            Duration::from_secs(5),
        )
        .expect("connect to 1723");
        tcp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        RawClient {
            tcp,
            deframer: Deframer::new(),
            server,
            gre: None,
            call: None,
            call_id: 0x4242,
            server_call_id: None,
            up: None,
            gre_rx: 0,
            events: Vec::new(),
        }
    }

    pub fn send(&mut self, m: &ControlMessage) {
        self.tcp
            .write_all(&m.emit())
            .expect("write control message");
    }

    /// The next control message, or `None` after `timeout`. Panics on EOF or a framing error.
    pub fn recv(&mut self, timeout: Duration) -> Option<ControlMessage> {
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        loop {
            match self.deframer.next_message() {
                Ok(Some(m)) => return Some(ControlMessage::parse(&m).expect("parse")),
                Ok(None) => {}
                Err(e) => panic!("control stream out of sync: {e}"),
            }
            if Instant::now() >= end {
                return None;
            }
            match self.tcp.read(&mut buf) {
                Ok(0) => panic!("server closed the control connection"),
                Ok(n) => self.deframer.push(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("control connection: {e}"),
            }
        }
    }

    /// SCCRQ → SCCRP (RFC 2637 §2.1, §2.2).
    pub fn start(&mut self) {
        self.send(&ControlMessage::Sccrq(Sccrq {
            protocol_version: PROTOCOL_VERSION,
            framing_capabilities: FRAMING_ASYNC | FRAMING_SYNC,
            bearer_capabilities: BEARER_ANALOG | BEARER_DIGITAL,
            maximum_channels: 0,
            firmware_revision: 1,
            host_name: FixedStr::from("faults"),
            vendor_string: FixedStr::from("virtgate tests"),
        }));
        match self.recv(Duration::from_secs(5)) {
            Some(ControlMessage::Sccrp(r)) => assert_eq!(r.result, StartResult::Ok, "{r:?}"),
            other => panic!("expected SCCRP, got {other:?}"),
        }
    }

    /// OCRQ → OCRP (RFC 2637 §2.7, §2.8); with `user`/`password` the PPP session starts.
    pub fn call(&mut self, user: &str, password: &str) {
        // Open the GRE socket first: the server's first LCP frame may overtake the OCRP.
        self.gre = Some(gre_socket());
        self.send(&ControlMessage::Ocrq(Ocrq {
            call_id: self.call_id,
            call_serial: 1,
            minimum_bps: 300,
            maximum_bps: 100_000_000,
            bearer_type: BEARER_ANALOG | BEARER_DIGITAL,
            framing_type: FRAMING_ASYNC | FRAMING_SYNC,
            recv_window: 64,
            processing_delay: 0,
            phone_number: FixedStr::from(""),
            subaddress: FixedStr::from(""),
        }));
        let ocrp = match self.recv(Duration::from_secs(5)) {
            Some(ControlMessage::Ocrp(r)) => r,
            other => panic!("expected OCRP, got {other:?}"),
        };
        assert_eq!(ocrp.result, OutgoingCallResult::Connected, "{ocrp:?}");
        assert_eq!(ocrp.peer_call_id, self.call_id);
        self.server_call_id = Some(ocrp.call_id);
        let now = Instant::now();
        let chan = GreChannel::new(self.call_id, ocrp.call_id, ocrp.recv_window);
        let cfg = SessionConfig {
            role: Role::Client {
                user: user.into(),
                password: password.into(),
            },
            our_name: user.into(),
            auth: AuthPolicy {
                methods: vec![AuthMethod::MsChapV2],
                ..AuthPolicy::default()
            },
            mppe: MppePolicy {
                required: true,
                allow_40: false,
                allow_56: false,
                allow_128: true,
                allow_stateful: false,
            },
            ipcp: IpcpPolicy::default(),
            ..SessionConfig::default()
        };
        let mut session = Session::new(now, cfg, Box::new(TestEntropy(Rng::new(0x5eed))));
        session.open(now);
        self.call = Some((chan, session));
    }

    /// Shuttles GRE/PPP until `stage` is reached; panics after `timeout` with what happened.
    pub fn run_until(&mut self, stage: Stage, timeout: Duration) {
        let end = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_536];
        let mut out = vec![0u8; 4096];
        loop {
            let now = Instant::now();
            let (Some((chan, session)), Some(gre)) = (self.call.as_mut(), self.gre.as_ref()) else {
                panic!("run_until before call()");
            };
            while let Some(frame) = session.poll_transmit() {
                let n = frame.len();
                out[GRE_HEADROOM..GRE_HEADROOM + n].copy_from_slice(&frame);
                let (s, l) = chan.encapsulate(now, &mut out, GRE_HEADROOM, n);
                let to = SockAddr::from(SocketAddrV4::new(self.server, 0));
                let _ = gre.send_to(&out[s..s + l], &to);
            }
            if let Some(n) = chan.poll_ack(now, &mut out) {
                let to = SockAddr::from(SocketAddrV4::new(self.server, 0));
                let _ = gre.send_to(&out[..n], &to);
            }
            while let Some(ev) = session.poll_event() {
                self.events.push(format!("{ev:?}"));
                match ev {
                    SessionEvent::Up { local, .. } => self.up = Some(local),
                    SessionEvent::Down { reason } => {
                        panic!("raw client's link went down: {reason:?}")
                    }
                    _ => {}
                }
            }
            let reached = match stage {
                Stage::Lcp => self.gre_rx > 0,
                Stage::Auth => session.state() == Phase::Authenticate,
                Stage::Up => self.up.is_some(),
            };
            if reached {
                return;
            }
            assert!(
                now < end,
                "raw client did not reach {stage:?} (phase {:?}); events {:?}",
                session.state(),
                self.events
            );
            if session.poll_timeout().is_some_and(|t| t <= now) {
                session.handle_timeout(now);
                continue;
            }
            let mut r: &Socket = gre;
            let Ok(n) = r.read(&mut buf) else { continue };
            let Some(pkt) = buf.get(..n) else { continue };
            let ihl = usize::from(pkt.first().copied().unwrap_or(0) & 0x0f) * 4;
            let src = pkt
                .get(12..16)
                .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]));
            if ihl < 20 || n < ihl || src != Some(self.server) {
                continue;
            }
            let Ok((hdr, hlen)) = GreHeader::parse(&pkt[ihl..]) else {
                continue;
            };
            if hdr.call_id != self.call_id {
                continue;
            }
            if chan.receive(now, &hdr) != virtgate_pptp::gre::RxVerdict::Deliver {
                continue;
            }
            self.gre_rx += 1;
            let start = ihl + hlen;
            if let Decap::Ip { .. } =
                session.decapsulate(now, &mut buf, start, usize::from(hdr.payload_len))
            {
                // IP before the test asked for it: ignored.
            }
        }
    }

    /// Resets the control connection (SO_LINGER 0 then close: the kernel sends RST).
    pub fn reset(self) {
        SockRef::from(&self.tcp)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(self.tcp);
    }
}

/// Gives `ns` an uplink with a default route that leads nowhere: a veth pair `up0`/`up0peer`
/// with both ends in `ns`, 198.51.100.2/24 on `up0`, default via 198.51.100.1 (the firewall's
/// PPTP part needs an uplink to masquerade toward).
pub fn add_dead_end_uplink(ns: &Netns) {
    add_veths(ns, &["up0"]);
    ns.ip(&["addr", "add", "198.51.100.2/24", "dev", "up0"]);
    ns.ip(&[
        "route",
        "add",
        "default",
        "via",
        "198.51.100.1",
        "dev",
        "up0",
    ]);
}

/// For each NAME, a veth pair NAME/NAMEpeer in `ns`, both ends up (parents or uplinks whose far
/// end goes nowhere).
pub fn add_veths(ns: &Netns, names: &[&str]) {
    for name in names {
        let peer = format!("{name}peer");
        ns.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]);
        ns.ip(&["link", "set", &peer, "up"]);
        ns.ip(&["link", "set", name, "up"]);
    }
}
