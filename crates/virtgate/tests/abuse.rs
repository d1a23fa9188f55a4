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

/// `virtgate daemon` with extra flags (the abuse limits).
fn daemon_with(ns: &Netns, conf: &Path, secrets: &Path, extra: &[&str]) -> Proc {
    common::daemon_with(ns, conf, secrets, "info", extra)
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

/// Dials and waits for it to fail; returns its log.
fn dial_fails(ns: &Netns, server: &str, user: &str, pw: &str, tun: &str) -> String {
    let mut p = dial(ns, server, user, pw, tun);
    let st = p.wait(Duration::from_secs(25));
    assert!(
        st.is_some_and(|s| !s.success()),
        "{user}/{pw}: the dial did not fail: {st:?}\n{}",
        p.log()
    );
    p.log()
}

#[test]
fn wrong_password_n_times_locks_the_user_out_even_with_the_right_one_until_it_ends() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("a-lock");
    let (conf, secrets) = write_config(
        &dir,
        "remoteip 192.168.0.100-200\n",
        "",
        "ann pptpd right *\nbob pptpd pb *\n",
    );
    let server = Netns::new("asrv");
    let client = Netns::new("acli");
    server.link_to(&client, "vs0", "10.97.1.1/24", "vc0", "10.97.1.2/24");
    const LOCK_S: u64 = 6;
    let d = daemon_with(
        &server,
        &conf,
        &secrets,
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
        let log = dial_fails(&client, "10.97.1.1", "ann", &format!("wrong{i}"), "vgd0");
        assert!(log.contains("authentication failed"), "{log}");
    }
    let locked_at = Instant::now();
    assert!(
        d.wait_count("user locked out", 1, Duration::from_secs(5)),
        "{}",
        d.log()
    );
    // Locked: the right password is refused, with the reason, and without a password check.
    let log = dial_fails(&client, "10.97.1.1", "ann", "right", "vgd0");
    assert!(log.contains("locked out"), "{log}");
    assert!(!log.contains("authentication failed"), "{log}");
    // Another user from the same address is not affected.
    let (b, _) = dial_up(&client, "10.97.1.1", "bob", "pb", "vgd1", &d);
    hang_up(b);
    let s = status(&conf);
    assert_eq!(counter(&s, "abuse_refusals", "account_locked"), 1, "{s}");
    assert_eq!(counter(&s, "lockouts", "account"), 1, "{s}");
    assert_eq!(counter(&s, "lockouts", "address"), 0, "{s}");
    // Logged once per lockout, however many refusals.
    assert_eq!(d.count("user locked out"), 1, "{}", d.log());

    // After the lockout the right password works again.
    if let Some(left) = Duration::from_secs(LOCK_S + 1).checked_sub(locked_at.elapsed()) {
        std::thread::sleep(left);
    }
    let (a, addr) = dial_up(&client, "10.97.1.1", "ann", "right", "vgd0", &d);
    assert!(addr.starts_with("192.168.0."), "{addr}");
    hang_up(a);
    let m = d.log();
    assert_eq!(
        counter(&status(&conf), "abuse_refusals", "account_locked"),
        1
    );
    stop(d);
    assert!(m.contains("--lockout-user"), "the log names the flag:\n{m}");
}

#[test]
fn failed_logins_from_one_address_lock_that_address_out_and_no_other() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("a-src");
    let (conf, secrets) = write_config(
        &dir,
        "remoteip 192.168.0.100-200\n",
        "",
        "ann pptpd pa *\nbob pptpd pb *\n",
    );
    let server = Netns::new("asrv");
    let client = Netns::new("acli");
    let attacker = Netns::new("aatk");
    server.link_to(&client, "vs0", "10.97.2.1/24", "vc0", "10.97.2.2/24");
    server.link_to(&attacker, "vs1", "10.97.3.1/24", "va0", "10.97.3.2/24");
    let d = daemon_with(
        &server,
        &conf,
        &secrets,
        &["--lockout-source", "3", "--lockout-user", "off"],
    );
    // Three guesses at three names from one address.
    for user in ["ann", "bob", "mallory"] {
        dial_fails(&attacker, "10.97.3.1", user, "guess", "vga0");
    }
    assert!(
        d.wait_count("address locked out", 1, Duration::from_secs(5)),
        "{}",
        d.log()
    );
    // That address is refused at the PPTP call (Outgoing-Call-Reply "Do Not Accept"), even
    // with a right password...
    let log = dial_fails(&attacker, "10.97.3.1", "ann", "pa", "vga0");
    assert!(log.contains("result 7"), "{log}");
    // ...while another address gets in.
    let (a, _) = dial_up(&client, "10.97.2.1", "ann", "pa", "vgd0", &d);
    hang_up(a);
    let s = status(&conf);
    assert_eq!(counter(&s, "abuse_refusals", "address_locked"), 1, "{s}");
    assert_eq!(counter(&s, "lockouts", "address"), 1, "{s}");
    assert_eq!(counter(&s, "lockouts", "account"), 0, "{s}");
    stop(d);
}

#[test]
fn connection_flood_from_one_address_is_refused_while_another_gets_in() {
    if !require_root() {
        return;
    }
    const BURST: usize = 5;
    const FLOOD: usize = 60;
    let dir = TempDir::new("a-rate");
    let (conf, secrets) =
        write_config(&dir, "remoteip 192.168.0.100-200\n", "", "ann pptpd pa *\n");
    let server = Netns::new("asrv");
    let client = Netns::new("acli");
    let attacker = Netns::new("aatk");
    server.link_to(&client, "vs0", "10.97.4.1/24", "vc0", "10.97.4.2/24");
    server.link_to(&attacker, "vs1", "10.97.5.1/24", "va0", "10.97.5.2/24");
    // One new connection a minute after a burst of five: the flood below stays over it.
    let d = daemon_with(
        &server,
        &conf,
        &secrets,
        &["--conn-rate", "1", "--conn-burst", &BURST.to_string()],
    );
    let srv = SocketAddr::V4(SocketAddrV4::new("10.97.5.1".parse().unwrap(), 1723));
    let (held, closed) = in_netns(&attacker, move || {
        let conns: Vec<TcpStream> = (0..FLOOD)
            .map(|_| TcpStream::connect_timeout(&srv, Duration::from_secs(5)).expect("connect"))
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
    let s = status(&conf);
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
    let (a, _) = dial_up(&client, "10.97.4.1", "ann", "pa", "vgd0", &d);
    hang_up(a);
    drop(held);
    stop(d);
}

#[test]
fn max_sessions_per_user_refuses_the_next_until_one_hangs_up() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("a-max");
    let (conf, secrets) = write_config(
        &dir,
        "remoteip 192.168.0.100-200\n",
        "",
        "ann pptpd pa *\nbob pptpd pb *\n",
    );
    let server = Netns::new("asrv");
    let client = Netns::new("acli");
    server.link_to(&client, "vs0", "10.97.6.1/24", "vc0", "10.97.6.2/24");
    let d = daemon_with(&server, &conf, &secrets, &["--max-sessions-per-user", "2"]);
    // Two sessions of one user from one address (two devices behind a NAT).
    let (a1, _) = dial_up(&client, "10.97.6.1", "ann", "pa", "vgd0", &d);
    let (a2, _) = dial_up(&client, "10.97.6.1", "ann", "pa", "vgd1", &d);
    let log = dial_fails(&client, "10.97.6.1", "ann", "pa", "vgd2");
    assert!(log.contains("too many sessions of this user"), "{log}");
    // Other users are not affected.
    let (b, _) = dial_up(&client, "10.97.6.1", "bob", "pb", "vgd3", &d);
    hang_up(a1);
    let (a3, _) = dial_up(&client, "10.97.6.1", "ann", "pa", "vgd2", &d);
    let s = status(&conf);
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
    if !require_root() {
        return;
    }
    let dir = TempDir::new("a-single");
    let (conf, secrets) =
        write_config(&dir, "remoteip 192.168.0.100-200\n", "", "ann pptpd pa *\n");
    let server = Netns::new("asrv");
    let client = Netns::new("acli");
    server.link_to(&client, "vs0", "10.97.7.1/24", "vc0", "10.97.7.2/24");
    let d = daemon_with(&server, &conf, &secrets, &["--single-session", "replace"]);
    let (mut old, _) = dial_up(&client, "10.97.7.1", "ann", "pa", "vgd0", &d);
    let (new, addr) = dial_up(&client, "10.97.7.1", "ann", "pa", "vgd1", &d);
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
    let s = status(&conf);
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
    if !require_root() {
        return;
    }
    let dir = TempDir::new("a-deny");
    let (conf, secrets) = write_config(
        &dir,
        "remoteip 192.168.0.100-200\n",
        "",
        "ann pptpd pa *\nbob pptpd pb *\n",
    );
    let server = Netns::new("asrv");
    let client = Netns::new("acli");
    server.link_to(&client, "vs0", "10.97.10.1/24", "vc0", "10.97.10.2/24");
    let d = daemon_with(&server, &conf, &secrets, &["--single-session", "deny"]);
    let (first, _) = dial_up(&client, "10.97.10.1", "ann", "pa", "vgd0", &d);
    let log = dial_fails(&client, "10.97.10.1", "ann", "pa", "vgd1");
    assert!(log.contains("already has a session"), "{log}");
    // Another user is not affected, and the first session is still up.
    let (b, _) = dial_up(&client, "10.97.10.1", "bob", "pb", "vgd2", &d);
    let ping = client.sh("ping -c 2 -i 0.2 -W 2 -I vgd0 192.168.0.1");
    assert!(ping.status.success(), "{ping:?}\n{}", d.log());
    let s = status(&conf);
    assert_eq!(counter(&s, "abuse_refusals", "single_session"), 1, "{s}");
    // Once the first hangs up, the user gets in again.
    hang_up(first);
    let (again, _) = dial_up(&client, "10.97.10.1", "ann", "pa", "vgd1", &d);
    hang_up(again);
    hang_up(b);
    stop(d);
}
