//! Smoke test of `virtgate dial --load` (issue 8's sessions benchmark, bench/sessions.sh, in
//! small): one load-mode dial places 50 calls, one per control connection, each set up in full
//! (MS-CHAPv2, MPPE-128, IPCP) against `virtgate daemon` in another namespace. Every session
//! must come up, the daemon must hold 50 sessions with 50 /32 routes, a few sessions' pings
//! must come back through the tunnel, and after the dial hangs up (SIGTERM) and after it is
//! killed outright the daemon must hold nothing. Behaviour only: no timing is asserted.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use virtgate_testnet::{require_root, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_virtgate");
const SESSIONS: usize = 50;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("virtgate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("state")).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
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

/// A child whose stdout lines arrive on a channel; killed on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(ns: &Netns, args: &[&str]) -> Proc {
        let mut child = ns
            .command(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn virtgate");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let keep = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        Proc {
            child,
            lines,
            stderr,
        }
    }

    /// The next JSON line on stdout whose `event` is `event`.
    fn wait_event(&self, event: &str, timeout: Duration) -> Option<serde_json::Value> {
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

    fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status();
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &TempDir) -> (PathBuf, PathBuf) {
    let options = dir.write(
        "options.pptpd",
        "name pptpd\nrefuse-pap\nrefuse-chap\nrefuse-mschap\nrequire-mschap-v2\n\
         require-mppe-128\nnobsdcomp\nnovj\nnovjccomp\nlcp-echo-interval 1\nlcp-echo-failure 4\n",
    );
    let conf = dir.write(
        "pptpd.conf",
        &format!(
            "option {}\nlocalip 192.168.90.1\nremoteip 10.201.0.1-254\nconnections 100\n",
            options.display()
        ),
    );
    let secrets = dir.write("chap-secrets", "user1\tpptpd\tpassword1\t*\n");
    let mut perm = std::fs::metadata(&secrets).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
    std::fs::set_permissions(&secrets, perm).unwrap();
    (conf, secrets)
}

fn status(socket: &Path) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["status", "--json", "--socket"])
        .arg(socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Sessions and control connections the daemon still holds.
fn held(socket: &Path) -> u64 {
    let s = status(socket);
    [
        "sessions_active",
        "sessions_starting",
        "control_connections",
    ]
    .iter()
    .map(|k| s[k].as_u64().unwrap())
    .sum()
}

/// Polls until the daemon holds nothing (up to 30 s: a bound for a failure, not a measurement).
fn wait_empty(socket: &Path) -> u64 {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let n = held(socket);
        if n == 0 || Instant::now() >= end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn routes(ns: &Netns) -> usize {
    String::from_utf8_lossy(&ns.ip(&["-4", "route", "show", "dev", "vgpptp0"]).stdout)
        .lines()
        .filter(|l| l.starts_with("10.201.0."))
        .count()
}

/// Routes change on the daemon's netlink worker, just after the session does: poll (up to 10 s).
fn wait_routes(ns: &Netns, want: usize) -> usize {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let n = routes(ns);
        if n == want || Instant::now() >= end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn load_dial(client: &Netns, extra: &[&str]) -> Proc {
    let n = SESSIONS.to_string();
    let mut args = vec![
        "dial",
        "10.98.0.1",
        "--user",
        "user1",
        "--password",
        "password1",
        "--load",
        &n,
        "--concurrency",
        "16",
    ];
    args.extend_from_slice(extra);
    Proc::spawn(client, &args)
}

#[test]
fn fifty_sessions_from_one_load_dial_come_up_and_are_reaped() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("load");
    let (conf, secrets) = config(&dir);
    let server = Netns::new("lsrv");
    let client = Netns::new("lcli");
    server.link_to(&client, "vls0", "10.98.0.1/24", "vlc0", "10.98.0.2/24");
    let socket = dir.path("ctl.sock");
    let state = dir.path("state");
    let d = Proc::spawn(
        &server,
        &[
            "daemon",
            "--no-firewall",
            "--pptpd-conf",
            conf.to_str().unwrap(),
            "--chap-secrets",
            secrets.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--no-default-network",
            // 100 connections from one address as one user within a minute: the abuse
            // limits would (rightly) refuse most of them.
            "--conn-rate",
            "off",
            "--max-sessions",
            "off",
            "--max-sessions-per-user",
            "off",
        ],
    );
    let end = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&server.sh("ss -ltn").stdout).contains(":1723") {
        assert!(Instant::now() < end, "daemon did not listen:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    // 1. Polite hang-up: SIGTERM sends LCP Terminate, CCRQ and StopCCRQ for every session.
    let mut c = load_dial(&client, &["--ping", "3"]);
    let setup = c
        .wait_event("setup", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no set-up summary\n{}\n--- daemon\n{}", c.log(), d.log()));
    assert_eq!(setup["up"], SESSIONS, "{setup}\n{}", d.log());
    assert_eq!(setup["failed"], 0, "{setup}");
    assert_eq!(
        setup["connections"], SESSIONS,
        "one call per control connection"
    );
    let s = status(&socket);
    assert_eq!(s["sessions_active"], SESSIONS, "{s}");
    assert_eq!(s["control_connections"], SESSIONS, "{s}");
    assert_eq!(
        wait_routes(&server, SESSIONS),
        SESSIONS,
        "one /32 per session"
    );
    // Three sessions ping the server's tunnel address once a second; the server echoes LCP
    // every second: let both happen a few times.
    let st = c
        .wait_event("status", Duration::from_secs(10))
        .expect("status line");
    let rx0 = st["rx_control"].as_u64().unwrap();
    let mut rx1 = rx0;
    for _ in 0..3 {
        if let Some(st) = c.wait_event("status", Duration::from_secs(10)) {
            rx1 = st["rx_control"].as_u64().unwrap();
        }
    }
    assert!(rx1 > rx0, "the idle sessions received no LCP echo requests");
    c.signal("TERM");
    let end_ev = c
        .wait_event("end", Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no end summary\n{}", c.log()));
    assert!(c.wait(Duration::from_secs(10)), "dial still running");
    assert_eq!(end_ev["hung_up"], SESSIONS, "{end_ev}");
    assert_eq!(end_ev["down_while_up"], serde_json::json!({}), "{end_ev}");
    assert!(
        end_ev["pings_received"].as_u64().unwrap() > 0,
        "no ping came back through the tunnel: {end_ev}"
    );
    assert_eq!(wait_empty(&socket), 0, "{}\n{}", status(&socket), d.log());
    assert_eq!(wait_routes(&server, 0), 0, "routes left behind");

    // 2. The dial killed outright: its TCP connections close, the daemon reaps every session.
    let mut c = load_dial(&client, &[]);
    let setup = c
        .wait_event("setup", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no set-up summary\n{}\n--- daemon\n{}", c.log(), d.log()));
    assert_eq!(setup["up"], SESSIONS, "{setup}");
    assert_eq!(status(&socket)["sessions_active"], SESSIONS);
    c.signal("KILL");
    assert!(c.wait(Duration::from_secs(10)));
    assert_eq!(wait_empty(&socket), 0, "{}\n{}", status(&socket), d.log());
    assert_eq!(wait_routes(&server, 0), 0, "routes left behind");
    let s = status(&socket);
    assert_eq!(s["counters"]["setups"], 2 * SESSIONS, "{s}");
    drop(d);
}
