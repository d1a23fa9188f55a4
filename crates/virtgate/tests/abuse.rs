//! Abuse limits (issue 7, "Abuse limits") as namespace tests against the real daemon (root):
//! failed-login lockouts per user name and per source address, the new-connection rate per
//! source address, the per-user session limit, single-session deny and replace. Each test
//! builds its own namespaces with `virtgate-testnet`; every packet stays inside them.

mod common;

use std::io::Read;
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use virtgate_testnet::{require_root, Netns};

/// Users `ann` (password `pa`) and `bob` (`pb`).
const ANN_BOB: &str = "ann pptpd pa *\nbob pptpd pb *\n";

/// A test's config (chap-secrets `secrets`) and namespaces on 10.97.`net`.0/24; `None` without
/// root.
fn rig(tag: &str, net: u8, secrets: &str) -> Option<Rig> {
    if !require_root() {
        return None;
    }
    let dir = TempDir::new(tag);
    let files = write_config(&dir, "remoteip 192.168.0.100-200\n", "", secrets);
    Some(Rig::new(dir, files, "a", &format!("10.97.{net}")))
}

/// A third namespace linked to the rig's server as 10.97.`net`.2 (`vs1`/`va0`); returns it and
/// the server's address on that link.
fn attacker(rig: &Rig, net: u8) -> (Netns, String) {
    let ns = Netns::new("aatk");
    let (s, a) = (format!("10.97.{net}.1/24"), format!("10.97.{net}.2/24"));
    rig.server.link_to(&ns, "vs1", &s, "va0", &a);
    (ns, format!("10.97.{net}.1"))
}

/// `virtgate daemon` of the rig with extra flags (the abuse limits).
fn daemon_with(rig: &Rig, extra: &[&str]) -> Proc {
    common::daemon_with(&rig.server, &rig.conf, &rig.secrets, "info", extra)
}

/// `virtgate status --json` against the daemon whose pptpd.conf is `conf`.
fn status(conf: &Path) -> String {
    let out = Command::new(BIN)
        .args(["status", "--json", "--socket"])
        .arg(ctl_socket(conf))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The counter `counters.MAP.KEY` of a status.
fn counter(status: &str, map: &str, key: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    v["counters"][map][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no counters.{map}.{key} in {status}"))
}

#[test]
fn wrong_password_n_times_locks_the_user_out_even_with_the_right_one_until_it_ends() {
    let Some(rig) = rig("a-lock", 1, "ann pptpd right *\nbob pptpd pb *\n") else {
        return;
    };
    let (client, srv, conf) = (&rig.client, rig.addr.as_str(), &rig.conf);
    const LOCK_S: u64 = 6;
    let d = daemon_with(
        &rig,
        &[
            "--lockout-user",
            "3",
            "--lockout-window",
            "300",
            "--lockout-time",
            &LOCK_S.to_string(),
        ],
    );
    for i in 0..3 {
        let log = dial_fails(client, srv, "ann", &format!("wrong{i}"), "vgd0");
        assert!(log.contains("authentication failed"), "{log}");
    }
    let locked_at = Instant::now();
    assert!(
        d.wait_count("user locked out", 1, Duration::from_secs(5)),
        "{}",
        d.log()
    );
    // Locked: the right password is refused, with the reason, and without a password check.
    let log = dial_fails(client, srv, "ann", "right", "vgd0");
    assert!(log.contains("locked out"), "{log}");
    assert!(!log.contains("authentication failed"), "{log}");
    // Another user from the same address is not affected.
    let (b, _) = dial_up(client, srv, "bob", "pb", "vgd1", &d);
    hang_up(b);
    let s = status(conf);
    assert_eq!(counter(&s, "abuse_refusals", "account_locked"), 1, "{s}");
    assert_eq!(counter(&s, "lockouts", "account"), 1, "{s}");
    assert_eq!(counter(&s, "lockouts", "address"), 0, "{s}");
    // Logged once per lockout, however many refusals.
    assert_eq!(d.count("user locked out"), 1, "{}", d.log());

    // After the lockout the right password works again.
    if let Some(left) = Duration::from_secs(LOCK_S + 1).checked_sub(locked_at.elapsed()) {
        std::thread::sleep(left);
    }
    let (a, addr) = dial_up(client, srv, "ann", "right", "vgd0", &d);
    assert!(addr.starts_with("192.168.0."), "{addr}");
    hang_up(a);
    let m = d.log();
    assert_eq!(
        counter(&status(conf), "abuse_refusals", "account_locked"),
        1
    );
    stop(d);
    assert!(m.contains("--lockout-user"), "the log names the flag:\n{m}");
}

#[test]
fn failed_logins_from_one_address_lock_that_address_out_and_no_other() {
    let Some(rig) = rig("a-src", 2, ANN_BOB) else {
        return;
    };
    let (client, srv, conf) = (&rig.client, rig.addr.as_str(), &rig.conf);
    let (atk, asrv) = attacker(&rig, 3);
    let asrv = asrv.as_str();
    let d = daemon_with(&rig, &["--lockout-source", "3", "--lockout-user", "off"]);
    // Three guesses at three names from one address.
    for user in ["ann", "bob", "mallory"] {
        dial_fails(&atk, asrv, user, "guess", "vga0");
    }
    assert!(
        d.wait_count("address locked out", 1, Duration::from_secs(5)),
        "{}",
        d.log()
    );
    // That address is refused at the PPTP call (Outgoing-Call-Reply "Do Not Accept"), even
    // with a right password...
    let log = dial_fails(&atk, asrv, "ann", "pa", "vga0");
    assert!(log.contains("result 7"), "{log}");
    // ...while another address gets in.
    let (a, _) = dial_up(client, srv, "ann", "pa", "vgd0", &d);
    hang_up(a);
    let s = status(conf);
    assert_eq!(counter(&s, "abuse_refusals", "address_locked"), 1, "{s}");
    assert_eq!(counter(&s, "lockouts", "address"), 1, "{s}");
    assert_eq!(counter(&s, "lockouts", "account"), 0, "{s}");
    stop(d);
}

#[test]
fn connection_flood_from_one_address_is_refused_while_another_gets_in() {
    const BURST: usize = 5;
    const FLOOD: usize = 60;
    let Some(rig) = rig("a-rate", 4, "ann pptpd pa *\n") else {
        return;
    };
    let (client, srv, conf) = (&rig.client, rig.addr.as_str(), &rig.conf);
    let (atk, asrv) = attacker(&rig, 5);
    // One new connection a minute after a burst of five: the flood below stays over it.
    let d = daemon_with(
        &rig,
        &["--conn-rate", "1", "--conn-burst", &BURST.to_string()],
    );
    let to = SocketAddr::V4(SocketAddrV4::new(asrv.parse().unwrap(), 1723));
    let (held, closed) = in_netns(&atk, move || {
        let conns: Vec<TcpStream> = (0..FLOOD)
            .map(|_| TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect"))
            .collect();
        // Give the daemon time to close what it refuses (it does so on accept).
        let end = Instant::now() + Duration::from_secs(5);
        let mut state: [Option<bool>; FLOOD] = [None; FLOOD];
        let mut buf = [0u8; 16];
        while Instant::now() < end {
            for (i, c) in conns.iter().enumerate() {
                if state[i].is_some() {
                    continue;
                }
                c.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                match (&*c).read(&mut buf) {
                    Ok(0) => state[i] = Some(true),
                    Ok(n) => panic!("the server spoke first ({n} bytes)"),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => state[i] = Some(true),
                }
            }
            if state.iter().filter(|s| s.is_none()).count() <= BURST {
                break;
            }
        }
        let closed = state.iter().filter(|s| s.is_some()).count();
        (conns, closed)
    });
    // The burst is held (a PPTP conversation may start on it), the rest closed at once.
    assert_eq!(closed, FLOOD - BURST, "{}", d.log());
    let s = status(conf);
    assert_eq!(
        counter(&s, "abuse_refusals", "conn_rate"),
        (FLOOD - BURST) as u64,
        "{s}"
    );
    let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
    assert_eq!(v["control_connections"].as_u64(), Some(BURST as u64), "{s}");
    // One warning for the run of refusals, not one per connection.
    assert_eq!(d.count("too many new connections"), 1, "{}", d.log());
    // Another address gets in meanwhile.
    let (a, _) = dial_up(client, srv, "ann", "pa", "vgd0", &d);
    hang_up(a);
    drop(held);
    stop(d);
}

#[test]
fn max_sessions_per_user_refuses_the_next_until_one_hangs_up() {
    let Some(rig) = rig("a-max", 6, ANN_BOB) else {
        return;
    };
    let (client, srv, conf) = (&rig.client, rig.addr.as_str(), &rig.conf);
    let d = daemon_with(&rig, &["--max-sessions-per-user", "2"]);
    // Two sessions of one user from one address (two devices behind a NAT).
    let (a1, _) = dial_up(client, srv, "ann", "pa", "vgd0", &d);
    let (a2, _) = dial_up(client, srv, "ann", "pa", "vgd1", &d);
    let log = dial_fails(client, srv, "ann", "pa", "vgd2");
    assert!(log.contains("too many sessions of this user"), "{log}");
    // Other users are not affected.
    let (b, _) = dial_up(client, srv, "bob", "pb", "vgd3", &d);
    hang_up(a1);
    let (a3, _) = dial_up(client, srv, "ann", "pa", "vgd2", &d);
    let s = status(conf);
    assert_eq!(
        counter(&s, "abuse_refusals", "max_sessions_per_account"),
        1,
        "{s}"
    );
    for c in [a2, a3, b] {
        hang_up(c);
    }
    stop(d);
}

#[test]
fn single_session_replace_hangs_up_the_old_session_politely() {
    let Some(rig) = rig("a-single", 7, "ann pptpd pa *\n") else {
        return;
    };
    let (client, srv, conf) = (&rig.client, rig.addr.as_str(), &rig.conf);
    let d = daemon_with(&rig, &["--single-session", "replace"]);
    let (mut old, _) = dial_up(client, srv, "ann", "pa", "vgd0", &d);
    let (new, addr) = dial_up(client, srv, "ann", "pa", "vgd1", &d);
    // The old session was told why (LCP Terminate-Request) and its dial ended.
    let st = old.wait(Duration::from_secs(10));
    assert!(st.is_some(), "the old session is still up:\n{}", d.log());
    assert!(
        old.log().contains("replaced by a new session"),
        "{}",
        old.log()
    );
    assert!(
        d.wait_count("session down", 1, Duration::from_secs(5)),
        "{}",
        d.log()
    );
    let s = status(conf);
    let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
    assert_eq!(v["counters"]["sessions_replaced"].as_u64(), Some(1), "{s}");
    // The new one is up and alone.
    assert_eq!(v["sessions_active"].as_u64(), Some(1), "{s}");
    let ping = client.sh("ping -c 2 -i 0.2 -W 2 -I vgd1 192.168.0.1");
    assert!(ping.status.success(), "{ping:?}\n{}", d.log());
    assert!(addr.starts_with("192.168.0."), "{addr}");
    hang_up(new);
    stop(d);
}

#[test]
fn single_session_deny_refuses_the_second_session_of_a_user() {
    let Some(rig) = rig("a-deny", 10, ANN_BOB) else {
        return;
    };
    let (client, srv, conf) = (&rig.client, rig.addr.as_str(), &rig.conf);
    let d = daemon_with(&rig, &["--single-session", "deny"]);
    let (first, _) = dial_up(client, srv, "ann", "pa", "vgd0", &d);
    let log = dial_fails(client, srv, "ann", "pa", "vgd1");
    assert!(log.contains("already has a session"), "{log}");
    // Another user is not affected, and the first session is still up.
    let (b, _) = dial_up(client, srv, "bob", "pb", "vgd2", &d);
    let ping = client.sh("ping -c 2 -i 0.2 -W 2 -I vgd0 192.168.0.1");
    assert!(ping.status.success(), "{ping:?}\n{}", d.log());
    let s = status(conf);
    assert_eq!(counter(&s, "abuse_refusals", "single_session"), 1, "{s}");
    // Once the first hangs up, the user gets in again.
    hang_up(first);
    let (again, _) = dial_up(client, srv, "ann", "pa", "vgd1", &d);
    hang_up(again);
    hang_up(b);
    stop(d);
}
