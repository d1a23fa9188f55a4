//! RADIUS against Debian's FreeRADIUS (root; `freeradius` and `freeradius-utils` installed):
//! FreeRADIUS runs inside the server namespace on loopback with a configuration this test
//! writes (users in its `users` file, accounting to a `detail` file); `virtgate daemon` uses
//! it through `plugin radius.so` with no chap-secrets entries at all; `virtgate dial` connects
//! from a client namespace.
//!
//! Shown: MS-CHAPv2 through RADIUS with MPPE-128 from MS-MPPE-Send/Recv-Key and the address
//! from Framed-IP-Address, ping through the tunnel; accounting Start and Stop in the detail
//! file with the daemon's own counters; a Disconnect-Request from radclient ends the session
//! (and one with a wrong secret or for another user does not), and `status --json` counts
//! all of it; a wrong password is refused; a dead primary server fails over to the second and
//! is then skipped.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use virtgate_testnet::{require_root, Netns};

const SECRET: &str = "testing123";
const DAE_SECRET: &str = "dae-secret-1";

fn have_freeradius() -> bool {
    let ok = |c: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok("freeradius") && ok("radclient") {
        return true;
    }
    eprintln!("skipped: freeradius / radclient not installed (apt-get install freeradius freeradius-utils)");
    false
}

/// A FreeRADIUS server in a namespace; killed on drop.
struct FreeRadius {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FreeRadius {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("out.txt")).unwrap_or_default()
    }

    /// The records of the detail file: attribute → value (quotes removed).
    fn detail(&self) -> Vec<HashMap<String, String>> {
        let text = std::fs::read_to_string(self.dir.join("detail")).unwrap_or_default();
        let mut out = Vec::new();
        let mut cur: Option<HashMap<String, String>> = None;
        for line in text.lines() {
            if line.trim().is_empty() {
                if let Some(c) = cur.take() {
                    out.push(c);
                }
            } else if let Some(kv) = line.strip_prefix('\t') {
                if let Some((k, v)) = kv.split_once(" = ") {
                    cur.get_or_insert_with(HashMap::new)
                        .insert(k.trim().into(), v.trim().trim_matches('"').into());
                }
            } else {
                cur.get_or_insert_with(HashMap::new);
            }
        }
        out.extend(cur);
        out
    }

    fn wait_detail(&self, status: &str, n: usize) -> Vec<HashMap<String, String>> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let recs: Vec<_> = self
                .detail()
                .into_iter()
                .filter(|r| r.get("Acct-Status-Type").map(String::as_str) == Some(status))
                .collect();
            if recs.len() >= n || Instant::now() > end {
                return recs;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Writes a FreeRADIUS configuration into `dir` (auth on `addr`:1812, acct on :1813) and
/// starts `freeradius -X` in `ns`; waits until it is ready.
fn freeradius(ns: &Netns, dir: &Path, addr: &str, users: &str) -> FreeRadius {
    std::fs::create_dir_all(dir.join("run")).unwrap();
    let conf = freeradius::config(dir, addr, SECRET);
    std::fs::write(dir.join("radiusd.conf"), conf).unwrap();
    std::fs::write(dir.join("users"), users).unwrap();
    let d = dir.display();
    let child = ns
        .command("sh")
        .arg("-c")
        .arg(format!("exec freeradius -X -d {d} > {d}/out.txt 2>&1"))
        .spawn()
        .expect("start freeradius");
    let fr = FreeRadius {
        child,
        dir: dir.to_path_buf(),
    };
    let end = Instant::now() + Duration::from_secs(15);
    while !fr.log().contains("Ready to process requests") {
        assert!(
            Instant::now() < end,
            "freeradius did not start:\n{}",
            fr.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    fr
}

const USERS: &str = "user1\tCleartext-Password := \"password1\"\n\
                     \tFramed-IP-Address = 192.168.0.150,\n\
                     \tSession-Timeout = 3600\n\
                     user2\tCleartext-Password := \"password2\"\n\
                     user3\tCleartext-Password := \"password3\"\n\
                     \tAcct-Interim-Interval = 60\n";

fn ping(ns: &Netns, dev: &str, count: u32) -> u32 {
    let out = ns.sh(&format!("ping -c {count} -i 0.2 -W 2 -I {dev} 192.168.0.1"));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(',')
        .find_map(|p| p.trim().strip_suffix(" received")?.parse().ok())
        .unwrap_or(0)
}

/// `radclient` in `ns`: sends `attrs` as a `kind` request to the daemon's DAE port; returns
/// its output.
fn radclient(ns: &Netns, kind: &str, attrs: &str, secret: &str) -> String {
    let out = ns.sh(&format!(
        "echo '{attrs}' | radclient -x -r 1 -t 2 127.0.0.1:3799 {kind} {secret} 2>&1"
    ));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A test's config ([`radius_config`]) and namespaces on 10.98.`net`.0/24; `None` without root
/// or FreeRADIUS.
fn rig(tag: &str, net: u8, authservers: &str, auth_options: &str) -> Option<Rig> {
    if !require_root() || !have_freeradius() {
        return None;
    }
    let dir = TempDir::new(tag);
    let files = radius_config(&dir, authservers, auth_options);
    Some(Rig::new(dir, files, "r", &format!("10.98.{net}")))
}

/// FreeRADIUS with [`USERS`] on the rig's server loopback.
fn rig_freeradius(rig: &Rig) -> FreeRadius {
    freeradius(&rig.server, &rig.dir.path("fr"), "127.0.0.1", USERS)
}

/// The rig's daemon.
fn rig_daemon(rig: &Rig) -> Proc {
    daemon(&rig.server, &rig.conf, &rig.secrets, "info,virtgate=debug")
}

/// pptpd.conf + options with `plugin radius.so` (with `auth_options` instead of the seed's
/// authentication and MPPE lines when given), an empty chap-secrets, radiusclient.conf.
fn radius_config(
    dir: &TempDir,
    authservers: &str,
    auth_options: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let rc = dir.write(
        "radiusclient.conf",
        &format!(
            "# radiusclient.conf for the test\n\
             authserver {authservers}\n\
             acctserver 127.0.0.1:1813\n\
             servers {}\n\
             radius_timeout 1\n\
             radius_retries 2\n\
             radius_deadtime 60\n\
             nas-identifier vg-test\n\
             dae_listen 127.0.0.1:3799\n\
             dae_client 127.0.0.1 {DAE_SECRET}\n",
            dir.path("servers").display()
        ),
    );
    dir.write(
        "servers",
        &format!("127.0.0.1 {SECRET}\n127.0.0.2 {SECRET}\n"),
    );
    let (conf, secrets) = write_config(
        dir,
        "remoteip 192.168.0.100-200\n",
        &format!("plugin radius.so\nradius-config-file {}\n", rc.display()),
        "# users are in RADIUS only\n",
    );
    if !auth_options.is_empty() {
        // Replace the seed's authentication and MPPE lines.
        let options = dir.path("options.pptpd");
        let text = std::fs::read_to_string(&options).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("refuse-") && !l.starts_with("require-"))
            .collect();
        std::fs::write(&options, format!("{}\n{auth_options}", kept.join("\n"))).unwrap();
    }
    (conf, secrets)
}

#[test]
fn mschapv2_mppe_through_freeradius_with_accounting_and_disconnect() {
    let Some(rig) = rig("radius-main", 7, "127.0.0.1", "") else {
        return;
    };
    let (server, client, srv) = (&rig.server, &rig.client, rig.addr.as_str());
    let fr = rig_freeradius(&rig);
    let d = rig_daemon(&rig);

    // A wrong password: Access-Reject, no link.
    dial_fails(client, srv, "user1", "wrong", "vgr9");
    assert!(
        d.wait_count("Access-Reject", 1, Duration::from_secs(5)),
        "{}",
        d.log()
    );

    assert!(d.wait_count("session down", 1, Duration::from_secs(5)));
    let downs = d.count("session down");

    // MS-CHAPv2 through RADIUS: MPPE-128 from the RADIUS keys, Framed-IP-Address.
    let c = dial(client, srv, "user1", "password1", "vgr0");
    let Some(up) = c.wait_line("up ", Duration::from_secs(20)) else {
        panic!(
            "no `up`\n--- dial\n{}\n--- daemon\n{}\n--- freeradius\n{}",
            c.log(),
            d.log(),
            fr.log()
        );
    };
    assert_eq!(up_address(&up), "192.168.0.150", "{up}");
    assert!(up.contains("mppe=128-stateless"), "{up}");
    assert_eq!(ping(client, "vgr0", 3), 3, "{}", d.log());
    let start = fr.wait_detail("Start", 1);
    assert_eq!(start.len(), 1, "{:?}\n{}", fr.detail(), fr.log());
    let sid = start[0]["Acct-Session-Id"].clone();
    assert_eq!(start[0]["User-Name"], "user1");
    assert_eq!(start[0]["Framed-IP-Address"], "192.168.0.150");
    assert_eq!(start[0]["NAS-Identifier"], "vg-test");
    assert_eq!(start[0]["Acct-Authentic"], "RADIUS");

    // Disconnect-Requests that must not end the session: wrong secret (dropped, no answer),
    // another user (NAK, Session-Context-Not-Found).
    let out = radclient(server, "disconnect", "User-Name=user1", "not-the-secret");
    assert!(!out.contains("Received"), "{out}");
    let out = radclient(server, "disconnect", "User-Name=user2", DAE_SECRET);
    assert!(out.contains("Received Disconnect-NAK"), "{out}");
    assert!(out.contains("Session-Context-Not-Found"), "{out}");
    assert_eq!(d.count("session down"), downs, "{}", d.log());
    assert_eq!(ping(client, "vgr0", 2), 2, "{}", d.log());

    // The right one ends it.
    let out = radclient(
        server,
        "disconnect",
        &format!("Acct-Session-Id={sid},User-Name=user1"),
        DAE_SECRET,
    );
    assert!(
        out.contains("Received Disconnect-ACK"),
        "{out}\n{}",
        d.log()
    );
    assert!(
        d.wait_count("session down", downs + 1, Duration::from_secs(10)),
        "{}",
        d.log()
    );
    let mut c = c;
    let st = c.wait(Duration::from_secs(10));
    assert!(st.is_some(), "dial still running:\n{}", c.log());

    // Accounting Stop: the daemon's own counters, the cause, the same session id.
    let stop = fr.wait_detail("Stop", 1);
    assert_eq!(stop.len(), 1, "{:?}", fr.detail());
    let s = &stop[0];
    assert_eq!(s["Acct-Session-Id"], sid);
    assert_eq!(s["Acct-Terminate-Cause"], "Admin-Reset");
    let down = d.lines_with("session down").pop().unwrap();
    assert!(down.contains("RADIUS Disconnect-Request"), "{down}");
    let num = |k: &str| s[k].parse::<u64>().unwrap();
    assert_eq!(
        Some(num("Acct-Input-Octets")),
        field(&down, "rx_bytes"),
        "{down}\n{s:?}"
    );
    assert_eq!(
        Some(num("Acct-Output-Octets")),
        field(&down, "tx_bytes"),
        "{down}"
    );
    assert_eq!(
        Some(num("Acct-Input-Packets")),
        field(&down, "rx_packets"),
        "{down}"
    );
    assert_eq!(
        Some(num("Acct-Output-Packets")),
        field(&down, "tx_packets"),
        "{down}"
    );
    assert!(num("Acct-Input-Packets") >= 5, "{s:?}");
    assert!(num("Acct-Output-Packets") >= 5, "{s:?}");
    assert_eq!(s["Acct-Input-Gigawords"], "0");

    // The counters in `status --json` (the Accounting-Response to the Stop may still be on
    // its way): one reject, one accept, Start and Stop answered, no retransmission or failover;
    // the wrong-secret Disconnect dropped, the other two NAKed and ACKed.
    let r = radius_counters(&rig.conf, |r| r["acct_answered"] == 2);
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("no {k} in {r}"));
    for (k, want) in [
        ("access_requests", 2),
        ("access_accepts", 1),
        ("access_rejects", 1),
        ("access_challenges", 0),
        ("access_timeouts", 0),
        ("access_retransmissions", 0),
        ("access_failovers", 0),
        ("access_dropped", 0),
        ("acct_requests", 2),
        ("acct_answered", 2),
        ("acct_failed", 0),
        ("disconnect_requests", 2),
        ("disconnect_acks", 1),
        ("disconnect_naks", 1),
        ("coa_requests", 0),
    ] {
        assert_eq!(n(k), want, "{k}: {r}");
    }
    assert_eq!(r["dae_dropped"]["bad_authenticator"], 1, "{r}");
    assert_eq!(r["dae_dropped"]["unknown_client"], 0, "{r}");
    let (ok, text, err) = ctl(&ctl_socket(&rig.conf), &["status"]);
    assert!(ok, "{err}");
    assert!(
        text.contains("RADIUS auth:     2 requests: 1 accepts, 1 rejects"),
        "{text}"
    );
    stop_daemon(d);
}

/// `counters.radius` of `status --json` of the daemon on `conf`, once `ready` holds for it
/// (or after 10 s).
fn radius_counters(conf: &Path, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let v = status_json(conf);
        let r = v["counters"]["radius"].clone();
        assert!(r.is_object(), "no RADIUS counters: {v}");
        if ready(&r) || Instant::now() > end {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop_daemon(d: Proc) {
    let _ = stop(d);
}

#[test]
fn dead_primary_server_fails_over_to_the_second_and_is_then_skipped() {
    // 127.0.0.2 is on loopback but nothing listens there: the primary is silent.
    let Some(rig) = rig("radius-failover", 8, "127.0.0.2:1812,127.0.0.1:1812", "") else {
        return;
    };
    let (client, srv) = (&rig.client, rig.addr.as_str());
    let fr = rig_freeradius(&rig);
    let d = rig_daemon(&rig);

    let (c, addr) = dial_up(client, srv, "user2", "password2", "vgr0", &d);
    assert!(addr.starts_with("192.168.0."), "{addr}");
    assert_eq!(
        d.count("RADIUS authentication server did not answer"),
        1,
        "{}\n{}",
        d.log(),
        fr.log()
    );
    assert!(d.log().contains("127.0.0.2:1812"), "{}", d.log());
    hang_up(c);

    // Held down: the next login goes straight to the second server.
    let (c, _) = dial_up(client, srv, "user2", "password2", "vgr1", &d);
    assert_eq!(
        d.count("RADIUS authentication server did not answer"),
        1,
        "{}",
        d.log()
    );
    hang_up(c);
    stop_daemon(d);
}

#[test]
fn coa_session_timeout_ends_the_session_with_that_cause() {
    let Some(rig) = rig("radius-coa", 9, "127.0.0.1", "") else {
        return;
    };
    let (server, client, srv) = (&rig.server, &rig.client, rig.addr.as_str());
    let fr = rig_freeradius(&rig);
    let d = rig_daemon(&rig);
    let (c, _) = dial_up(client, srv, "user2", "password2", "vgr0", &d);
    assert_eq!(ping(client, "vgr0", 1), 1, "{}", d.log());
    // An attribute virtgate does not act on: NAK, nothing changes.
    let out = radclient(server, "coa", "User-Name=user2,Filter-Id=std", DAE_SECRET);
    assert!(out.contains("Received CoA-NAK"), "{out}");
    assert!(out.contains("Unsupported-Attribute"), "{out}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.count("session down"), 0, "{}", d.log());
    // Session-Timeout 1: the session has been up longer, so it ends now.
    let out = radclient(
        server,
        "coa",
        "User-Name=user2,Session-Timeout=1",
        DAE_SECRET,
    );
    assert!(out.contains("Received CoA-ACK"), "{out}\n{}", d.log());
    assert!(
        d.wait_count("session down", 1, Duration::from_secs(10)),
        "{}",
        d.log()
    );
    let stop = fr.wait_detail("Stop", 1);
    assert_eq!(stop.len(), 1, "{:?}", fr.detail());
    assert_eq!(
        stop[0]["Acct-Terminate-Cause"], "Session-Timeout",
        "{:?}",
        stop[0]
    );
    drop(c);
    stop_daemon(d);
}

#[test]
fn pap_chap_and_mschapv1_through_freeradius() {
    let Some(rig) = rig("radius-methods", 10, "127.0.0.1", "nomppe\n") else {
        return;
    };
    let (client, srv) = (&rig.client, rig.addr.as_str());
    let fr = rig_freeradius(&rig);
    let options = rig.dir.path("options.pptpd");
    let base = std::fs::read_to_string(&options).unwrap();
    for (i, (auth, require)) in [
        ("pap", "require-pap"),
        ("chap", "require-chap"),
        ("mschap", "require-mschap"),
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(&options, format!("{base}{require}\n")).unwrap();
        let d = rig_daemon(&rig);
        let tun = format!("vgr{i}");
        // `virtgate dial` as user2 with only this method and no MPPE.
        let dial = |password: &str| {
            Proc::spawn(
                client,
                &[
                    "dial",
                    srv,
                    "--user",
                    "user2",
                    "--password",
                    password,
                    "--tun",
                    &tun,
                    "--auth",
                    auth,
                    "--mppe",
                    "refuse",
                ],
                "debug",
            )
        };
        let c = dial("password2");
        let Some(up) = c.wait_line("up ", Duration::from_secs(20)) else {
            panic!("{auth}: no `up`\n{}\n{}\n{}", c.log(), d.log(), fr.log());
        };
        assert!(up.contains("mppe=none"), "{auth}: {up}");
        assert_eq!(ping(client, &tun, 1), 1, "{auth}\n{}", d.log());
        hang_up(c);
        // And the wrong password is refused for this method too.
        let mut bad = dial("nope");
        let st = bad.wait(Duration::from_secs(20));
        assert!(
            st.is_some_and(|s| !s.success()),
            "{auth}: wrong password let in\n{}",
            bad.log()
        );
        assert!(
            d.wait_count("Access-Reject", 1, Duration::from_secs(5)),
            "{auth}\n{}",
            d.log()
        );
        assert_eq!(d.count("RADIUS Access-Accept"), 1, "{auth}\n{}", d.log());
        stop_daemon(d);
    }
}

#[test]
fn radius_order_local_first_and_radius_first() {
    let Some(rig) = rig("radius-order", 11, "127.0.0.1", "") else {
        return;
    };
    let (client, srv) = (&rig.client, rig.addr.as_str());
    std::fs::write(&rig.secrets, "local1 pptpd localpw *\n").unwrap();
    let options = rig.dir.path("options.pptpd");
    let base = std::fs::read_to_string(&options).unwrap();
    let fr = rig_freeradius(&rig);

    // local-first: local1 from chap-secrets (RADIUS not asked), user2 from RADIUS.
    std::fs::write(&options, format!("{base}radius-order local-first\n")).unwrap();
    let d = rig_daemon(&rig);
    let (c, _) = dial_up(client, srv, "local1", "localpw", "vgr0", &d);
    assert_eq!(d.count("asking RADIUS"), 0, "{}", d.log());
    assert_eq!(ping(client, "vgr0", 1), 1);
    hang_up(c);
    let (c, _) = dial_up(client, srv, "user2", "password2", "vgr1", &d);
    assert_eq!(d.count("asking RADIUS"), 1, "{}", d.log());
    hang_up(c);
    // Both were accounted, one as Local, one as RADIUS.
    let stops = fr.wait_detail("Stop", 2);
    let authentic: Vec<(&str, &str)> = stops
        .iter()
        .map(|r| (r["User-Name"].as_str(), r["Acct-Authentic"].as_str()))
        .collect();
    assert_eq!(
        authentic,
        [("local1", "Local"), ("user2", "RADIUS")],
        "{stops:?}"
    );
    stop_daemon(d);

    // radius-first with the only server silent: chap-secrets decides after the failover
    // gives up; a RADIUS-only user cannot log in.
    let rc = rig.dir.path("radiusclient.conf");
    let text = std::fs::read_to_string(&rc)
        .unwrap()
        .replace("authserver 127.0.0.1", "authserver 127.0.0.2");
    std::fs::write(&rc, text).unwrap();
    std::fs::write(&options, format!("{base}radius-order radius-first\n")).unwrap();
    let d = rig_daemon(&rig);
    let (c, _) = dial_up(client, srv, "local1", "localpw", "vgr2", &d);
    assert!(d.log().contains("chap-secrets decides"), "{}", d.log());
    hang_up(c);
    dial_fails(client, srv, "user2", "password2", "vgr3");
    stop_daemon(d);
}

#[test]
fn interim_update_every_acct_interim_interval() {
    // The shortest interval RFC 2869 §5.16 allows is 60 s: this test waits for one.
    let Some(rig) = rig("radius-interim", 12, "127.0.0.1", "") else {
        return;
    };
    let (client, srv) = (&rig.client, rig.addr.as_str());
    let fr = rig_freeradius(&rig);
    let d = rig_daemon(&rig);
    let (c, _) = dial_up(client, srv, "user3", "password3", "vgr0", &d);
    assert_eq!(ping(client, "vgr0", 3), 3, "{}", d.log());
    let start = fr.wait_detail("Start", 1);
    assert_eq!(start.len(), 1, "{:?}", fr.detail());
    let end = Instant::now() + Duration::from_secs(90);
    let interim = loop {
        let recs = fr.wait_detail("Interim-Update", 1);
        if let Some(r) = recs.into_iter().next() {
            break r;
        }
        assert!(
            Instant::now() < end,
            "no Interim-Update\n{:?}\n{}",
            fr.detail(),
            d.log()
        );
    };
    assert_eq!(interim["Acct-Session-Id"], start[0]["Acct-Session-Id"]);
    assert!(
        interim["Acct-Session-Time"].parse::<u64>().unwrap() >= 60,
        "{interim:?}"
    );
    assert!(
        interim["Acct-Input-Packets"].parse::<u64>().unwrap() >= 3,
        "{interim:?}"
    );
    assert!(
        interim["Acct-Output-Packets"].parse::<u64>().unwrap() >= 3,
        "{interim:?}"
    );
    hang_up(c);
    let stop = fr.wait_detail("Stop", 1);
    assert_eq!(stop.len(), 1, "{:?}", fr.detail());
    assert_eq!(
        stop[0]["Acct-Terminate-Cause"], "User-Request",
        "{:?}",
        stop[0]
    );
    stop_daemon(d);
}

#[test]
fn no_server_answering_closes_the_link_without_a_failed_login() {
    // Only a silent server: nothing listens on 127.0.0.2.
    let Some(rig) = rig("radius-none", 13, "127.0.0.2", "") else {
        return;
    };
    let d = rig_daemon(&rig);
    let log = dial_fails(&rig.client, &rig.addr, "user2", "password2", "vgr0");
    assert!(
        d.wait_count("session down", 1, Duration::from_secs(5)),
        "{}",
        d.log()
    );
    let down = d.lines_with("session down").pop().unwrap();
    assert!(down.contains("no RADIUS server answered"), "{down}");
    assert_eq!(d.count("authentication failed"), 0, "{}", d.log());
    // The client was told why.
    assert!(log.contains("Authentication server unavailable"), "{log}");
    stop_daemon(d);
}
