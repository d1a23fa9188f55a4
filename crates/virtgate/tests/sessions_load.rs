//! Smoke test of `virtgate dial --load` (issue 8's sessions benchmark, bench/sessions.sh, in
//! small): one load-mode dial places 50 calls, one per control connection, each set up in full
//! (MS-CHAPv2, MPPE-128, IPCP) against `virtgate daemon` in another namespace. Every session
//! must come up, the daemon must hold 50 sessions with 50 /32 routes, a few sessions' pings
//! must come back through the tunnel, and after the dial hangs up (SIGTERM) and after it is
//! killed outright the daemon must hold nothing. Behaviour only: no timing is asserted.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use virtgate_testnet::{require_root, Netns};

const SESSIONS: usize = 50;

/// Sessions and control connections the daemon still holds.
fn held(conf: &Path) -> u64 {
    let s = status_json(conf);
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
fn wait_empty(conf: &Path) -> u64 {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let n = held(conf);
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
    Proc::spawn(client, &args, "info")
}

#[test]
fn fifty_sessions_from_one_load_dial_come_up_and_are_reaped() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("load");
    let (conf, secrets) = write_config(
        &dir,
        "remoteip 10.201.0.1-254\nconnections 100\n",
        "lcp-echo-interval 1\nlcp-echo-failure 4\n",
        "user1\tpptpd\tpassword1\t*\n",
    );
    let server = Netns::new("lsrv");
    let client = Netns::new("lcli");
    server.link_to(&client, "vls0", "10.98.0.1/24", "vlc0", "10.98.0.2/24");
    let d = daemon_with(
        &server,
        &conf,
        &secrets,
        "info",
        &[
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
    let s = status_json(&conf);
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
    assert!(
        c.wait(Duration::from_secs(10)).is_some(),
        "dial still running"
    );
    assert_eq!(end_ev["hung_up"], SESSIONS, "{end_ev}");
    assert_eq!(end_ev["down_while_up"], serde_json::json!({}), "{end_ev}");
    assert!(
        end_ev["pings_received"].as_u64().unwrap() > 0,
        "no ping came back through the tunnel: {end_ev}"
    );
    assert_eq!(wait_empty(&conf), 0, "{}\n{}", status_json(&conf), d.log());
    assert_eq!(wait_routes(&server, 0), 0, "routes left behind");

    // 2. The dial killed outright: its TCP connections close, the daemon reaps every session.
    let mut c = load_dial(&client, &[]);
    let setup = c
        .wait_event("setup", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no set-up summary\n{}\n--- daemon\n{}", c.log(), d.log()));
    assert_eq!(setup["up"], SESSIONS, "{setup}");
    assert_eq!(status_json(&conf)["sessions_active"], SESSIONS);
    c.signal("KILL");
    assert!(c.wait(Duration::from_secs(10)).is_some());
    assert_eq!(wait_empty(&conf), 0, "{}\n{}", status_json(&conf), d.log());
    assert_eq!(wait_routes(&server, 0), 0, "routes left behind");
    let s = status_json(&conf);
    assert_eq!(s["counters"]["setups"], 2 * SESSIONS, "{s}");
    drop(d);
}
