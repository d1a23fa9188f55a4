//! The daemon's operating surfaces around the engine: the control socket server, the
//! Prometheus `/metrics` responder, pppd-compatible ip-up/ip-down hooks and systemd's
//! `sd_notify`. None of them touches engine state: they send a [`ControlMsg`] and wait for the
//! engine's answer, so the engine stays the only owner of every session.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::control::{self, Request, Response, Status};

/// A request for the engine and where its answer goes.
pub struct ControlMsg {
    pub req: Request,
    pub reply: oneshot::Sender<Response>,
}

async fn ask(tx: &mpsc::UnboundedSender<ControlMsg>, req: Request) -> Response {
    let (reply, rx) = oneshot::channel();
    if tx.send(ControlMsg { req, reply }).is_err() {
        return Response::Error {
            message: "the daemon is stopping".into(),
        };
    }
    rx.await.unwrap_or(Response::Error {
        message: "the daemon is stopping".into(),
    })
}

// ---- control socket --------------------------------------------------------------------------

/// Accepts control connections until the listener fails; each connection is served by its own
/// task (requests one at a time, in order).
pub async fn serve_control(listener: UnixListener, tx: mpsc::UnboundedSender<ControlMsg>) {
    // SAFETY: geteuid has no preconditions.
    let our_uid = unsafe { libc::geteuid() };
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let uid = stream.peer_cred().map(|c| c.uid()).ok();
        match uid {
            Some(uid) if control::peer_allowed(uid, our_uid) => {
                tokio::spawn(control_conn(stream, tx.clone()));
            }
            other => {
                tracing::warn!(uid = ?other, "control connection refused: only root or uid {our_uid} may control virtgate");
                tokio::spawn(async move {
                    let mut s = stream;
                    let r = Response::Error {
                        message: "permission denied: only root or the daemon's user".into(),
                    };
                    let _ = s.write_all(control::encode(&r).as_bytes()).await;
                });
            }
        }
    }
}

async fn control_conn(stream: UnixStream, tx: mpsc::UnboundedSender<ControlMsg>) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let mut line = Vec::new();
        let n = match (&mut rd)
            .take(control::MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) => n,
            Err(_) => return, // the peer went away
        };
        if n == 0 {
            return;
        }
        let complete = line.ends_with(b"\n");
        let too_long = !complete && n >= control::MAX_LINE;
        // The parser the fuzz target `control_request` runs (virtgate-control).
        let resp = match control::parse_request_line(&line, complete) {
            Ok(req) => ask(&tx, req).await,
            Err(message) => Response::Error { message },
        };
        if wr
            .write_all(control::encode(&resp).as_bytes())
            .await
            .is_err()
            || too_long
        {
            return;
        }
    }
}

// ---- metrics ---------------------------------------------------------------------------------

/// A minimal HTTP/1.1 responder: `GET /metrics` gets the Prometheus text format, anything else
/// 404; one request per connection.
pub async fn serve_metrics(listener: TcpListener, tx: mpsc::UnboundedSender<ControlMsg>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), metrics_conn(stream, tx)).await;
        });
    }
}

async fn metrics_conn(
    mut stream: tokio::net::TcpStream,
    tx: mpsc::UnboundedSender<ControlMsg>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let first = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
    let first = String::from_utf8_lossy(first);
    let mut words = first.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = if method != "GET" && method != "HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        )
    } else if path == "/metrics" {
        match ask(&tx, Request::Status).await {
            Response::Status(s) => ("200 OK", "text/plain; version=0.0.4", render_metrics(&s)),
            _ => ("503 Service Unavailable", "text/plain", "stopping\n".into()),
        }
    } else {
        ("404 Not Found", "text/plain", "see /metrics\n".to_string())
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        resp.push_str(&body);
    }
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

/// The reasons a session can fail to come up: a fixed label set for metrics.
pub const FAILURE_REASONS: [&str; 9] = [
    "auth_failed",
    "negotiation_failed",
    "mppe_required",
    "no_address",
    "peer_not_responding",
    "peer_terminated",
    "call_cleared",
    "local_close",
    "looped_back",
];

/// Where GRE packets are dropped: a fixed label set.
pub const GRE_DROP_REASONS: [&str; 4] = ["unknown_call", "wrong_source", "malformed", "session"];

/// The Prometheus text exposition of a status (no per-user labels).
pub fn render_metrics(s: &Status) -> String {
    let c = &s.counters;
    let mut o = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        o += &format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for (labels, v) in samples {
            o += &format!("{name}{labels} {v}\n");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    let by = |label: &str, keys: &[&str], m: &BTreeMap<String, u64>| -> Vec<(String, u64)> {
        keys.iter()
            .map(|k| {
                (
                    format!("{{{label}=\"{k}\"}}"),
                    m.get(*k).copied().unwrap_or(0),
                )
            })
            .collect()
    };
    metric(
        "virtgate_build_info",
        "gauge",
        "Always 1; the version is a label.",
        &[(format!("{{version=\"{}\"}}", s.version), 1)],
    );
    metric(
        "virtgate_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        &one(s.uptime_s),
    );
    metric(
        "virtgate_sessions",
        "gauge",
        "PPTP sessions by state (starting: call accepted, PPP not up yet).",
        &[
            ("{state=\"active\"}".into(), s.sessions_active as u64),
            ("{state=\"starting\"}".into(), s.sessions_starting as u64),
        ],
    );
    metric(
        "virtgate_control_connections",
        "gauge",
        "Open PPTP control connections (TCP 1723).",
        &one(s.control_connections as u64),
    );
    metric(
        "virtgate_session_setups_total",
        "counter",
        "Sessions that came up (IPCP opened).",
        &one(c.setups),
    );
    metric(
        "virtgate_session_setup_failures_total",
        "counter",
        "Sessions that ended before coming up, by reason.",
        &by("reason", &FAILURE_REASONS, &c.setup_failures),
    );
    metric(
        "virtgate_auth_failures_total",
        "counter",
        "Failed authentications.",
        &one(c.auth_failures),
    );
    let abuse: Vec<&str> = crate::abuse::Refusal::ALL
        .iter()
        .map(|r| r.label())
        .collect();
    metric(
        "virtgate_abuse_refusals_total",
        "counter",
        "Connections, calls, logins and sessions refused by the abuse limits, by reason.",
        &by("reason", &abuse, &c.abuse_refusals),
    );
    metric(
        "virtgate_lockouts_total",
        "counter",
        "Lockouts started after repeated failed logins, by scope (account: a user name; address: a source address).",
        &by("scope", &["account", "address"], &c.lockouts),
    );
    metric(
        "virtgate_sessions_replaced_total",
        "counter",
        "Sessions hung up because their user started a new one (single-session replace).",
        &one(c.sessions_replaced),
    );
    metric(
        "virtgate_bytes_total",
        "counter",
        "IP bytes through sessions (in: from clients).",
        &[
            ("{direction=\"in\"}".into(), c.rx_bytes),
            ("{direction=\"out\"}".into(), c.tx_bytes),
        ],
    );
    metric(
        "virtgate_packets_total",
        "counter",
        "IP packets through sessions (in: from clients).",
        &[
            ("{direction=\"in\"}".into(), c.rx_packets),
            ("{direction=\"out\"}".into(), c.tx_packets),
        ],
    );
    metric(
        "virtgate_gre_dropped_total",
        "counter",
        "GRE packets dropped, by where.",
        &by("reason", &GRE_DROP_REASONS, &c.gre_dropped),
    );
    metric(
        "virtgate_reloads_total",
        "counter",
        "Successful configuration reloads.",
        &one(c.reloads),
    );
    // RADIUS, only with `plugin radius.so`: no server label (the counts are per client, the
    // logs name the server that did not answer), only fixed label sets.
    if let Some(r) = &c.radius {
        let ty = |access: u64, accounting: u64| -> Vec<(String, u64)> {
            vec![
                ("{type=\"access\"}".into(), access),
                ("{type=\"accounting\"}".into(), accounting),
            ]
        };
        metric(
            "virtgate_radius_requests_total",
            "counter",
            "RADIUS requests sent (each once, however often transmitted), by type.",
            &ty(r.access_requests, r.acct_requests),
        );
        metric(
            "virtgate_radius_retransmissions_total",
            "counter",
            "RADIUS requests transmitted again to the same server, by type.",
            &ty(r.access_retransmissions, r.acct_retransmissions),
        );
        metric(
            "virtgate_radius_failovers_total",
            "counter",
            "RADIUS requests moved to another server after theirs did not answer, by type.",
            &ty(r.access_failovers, r.acct_failovers),
        );
        metric(
            "virtgate_radius_timeouts_total",
            "counter",
            "RADIUS requests no server answered, by type.",
            &ty(r.access_timeouts, r.acct_failed),
        );
        metric(
            "virtgate_radius_dropped_answers_total",
            "counter",
            "Datagrams on the RADIUS client sockets dropped (no matching request, wrong authenticator, malformed), by type.",
            &ty(r.access_dropped, r.acct_dropped),
        );
        metric(
            "virtgate_radius_access_answers_total",
            "counter",
            "Answers to Access-Requests, by code.",
            &[
                ("{code=\"accept\"}".into(), r.access_accepts),
                ("{code=\"reject\"}".into(), r.access_rejects),
                ("{code=\"challenge\"}".into(), r.access_challenges),
            ],
        );
        metric(
            "virtgate_radius_accounting_answers_total",
            "counter",
            "Accounting-Responses received.",
            &one(r.acct_answered),
        );
        metric(
            "virtgate_radius_dae_requests_total",
            "counter",
            "Verified Dynamic Authorization requests (RFC 5176), by kind.",
            &[
                ("{kind=\"disconnect\"}".into(), r.disconnect_requests),
                ("{kind=\"coa\"}".into(), r.coa_requests),
            ],
        );
        metric(
            "virtgate_radius_dae_answers_total",
            "counter",
            "Dynamic Authorization answers sent, by kind and answer.",
            &[
                (
                    "{kind=\"disconnect\",answer=\"ack\"}".into(),
                    r.disconnect_acks,
                ),
                (
                    "{kind=\"disconnect\",answer=\"nak\"}".into(),
                    r.disconnect_naks,
                ),
                ("{kind=\"coa\",answer=\"ack\"}".into(), r.coa_acks),
                ("{kind=\"coa\",answer=\"nak\"}".into(), r.coa_naks),
            ],
        );
        metric(
            "virtgate_radius_dae_dropped_total",
            "counter",
            "Datagrams on the Dynamic Authorization port dropped unanswered, by reason.",
            &by("reason", &control::DAE_DROP_REASONS, &r.dae_dropped),
        );
    }
    // Virtual networks: one label, the network's name (admins define a few networks).
    let per_net = |f: fn(&control::NetworkStatus) -> u64| -> Vec<(String, u64)> {
        s.networks
            .iter()
            .map(|n| (format!("{{network=\"{}\"}}", label_value(&n.name)), f(n)))
            .collect()
    };
    for (name, kind, help, f) in NETWORK_METRICS {
        metric(name, kind, help, &per_net(*f));
    }
    o
}

type NetworkMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&control::NetworkStatus) -> u64,
);

/// The per-network metrics: name, type, help, value.
const NETWORK_METRICS: &[NetworkMetric] = &[
    (
        "virtgate_dhcp_leases_active",
        "gauge",
        "DHCP leases bound now.",
        |n| n.dhcp_leases_active,
    ),
    (
        "virtgate_dhcp_offers_total",
        "counter",
        "DHCPOFFERs sent.",
        |n| n.dhcp_offers,
    ),
    (
        "virtgate_dhcp_acks_total",
        "counter",
        "DHCPACKs sent.",
        |n| n.dhcp_acks,
    ),
    (
        "virtgate_dhcp_naks_total",
        "counter",
        "DHCPNAKs sent.",
        |n| n.dhcp_naks,
    ),
    (
        "virtgate_dhcp_malformed_total",
        "counter",
        "DHCP datagrams dropped as malformed.",
        |n| n.dhcp_malformed,
    ),
    (
        "virtgate_dns_answered_total",
        "counter",
        "DNS queries answered from the network's own names.",
        |n| n.dns_answered,
    ),
    (
        "virtgate_dns_forwarded_total",
        "counter",
        "DNS queries forwarded upstream.",
        |n| n.dns_forwarded,
    ),
    (
        "virtgate_dns_cache_hits_total",
        "counter",
        "DNS queries answered from the cache of forwarded answers.",
        |n| n.dns_cache_hits,
    ),
    (
        "virtgate_dns_failed_total",
        "counter",
        "DNS queries answered with an error (SERVFAIL after upstream timeouts or failures, REFUSED, NOTIMP).",
        |n| n.dns_failed,
    ),
    (
        "virtgate_dns_malformed_total",
        "counter",
        "DNS messages dropped or answered FORMERR as malformed.",
        |n| n.dns_malformed,
    ),
];

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

// ---- ip-up / ip-down -------------------------------------------------------------------------

/// pppd's `/etc/ppp/ip-up` and `ip-down`, off unless configured.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub ip_up: Option<PathBuf>,
    pub ip_down: Option<PathBuf>,
}

/// What a hook is told about a session.
#[derive(Debug, Clone)]
pub struct HookInfo {
    pub ifname: String,
    pub local: Ipv4Addr,
    pub remote: Ipv4Addr,
    pub peer_name: String,
    /// pptpd's ipparam: the client's public address (empty with `noipparam`).
    pub ipparam: String,
    pub dns: [Option<Ipv4Addr>; 2],
    pub call_id: u16,
    /// On ip-down: (sent, received, connect seconds).
    pub down: Option<(u64, u64, u64)>,
}

/// pppd's speed argument for a PPTP link (pptpd's default `speed`).
const SPEED: &str = "115200";

/// The argument list and environment pppd gives its ip-up/ip-down scripts:
/// `interface-name tty-device speed local-IP remote-IP ipparam`.
pub fn hook_command(info: &HookInfo) -> (Vec<String>, Vec<(String, String)>) {
    // There is no tty: pptpd's pppd runs on a pty; we name the call instead.
    let device = format!("pptp-call-{}", info.call_id);
    let args = vec![
        info.ifname.clone(),
        device.clone(),
        SPEED.into(),
        info.local.to_string(),
        info.remote.to_string(),
        info.ipparam.clone(),
    ];
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin".to_string(),
        ),
        ("IFNAME".into(), info.ifname.clone()),
        ("DEVICE".into(), device),
        ("SPEED".into(), SPEED.into()),
        ("IPLOCAL".into(), info.local.to_string()),
        ("IPREMOTE".into(), info.remote.to_string()),
        ("PEERNAME".into(), info.peer_name.clone()),
        ("LINKNAME".into(), info.ifname.clone()),
        ("IPPARAM".into(), info.ipparam.clone()),
    ];
    // pppd sets DNS1/DNS2 from IPCP; on the server these are the ms-dns addresses the client got.
    for (i, d) in info.dns.iter().enumerate() {
        if let Some(d) = d {
            env.push((format!("DNS{}", i + 1), d.to_string()));
        }
    }
    if let Some((sent, rcvd, secs)) = info.down {
        env.push(("BYTES_SENT".into(), sent.to_string()));
        env.push(("BYTES_RCVD".into(), rcvd.to_string()));
        env.push(("CONNECT_TIME".into(), secs.to_string()));
    }
    (args, env)
}

/// Starts a hook without waiting for it; its exit is logged by a task of its own.
pub fn run_hook(path: &std::path::Path, info: &HookInfo) {
    let (args, env) = hook_command(info);
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(&args)
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(false);
    let name = path.display().to_string();
    match cmd.spawn() {
        Ok(mut child) => {
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(s) if s.success() => tracing::debug!(hook = %name, "hook finished"),
                    Ok(s) => tracing::warn!(hook = %name, "hook exited with {s}"),
                    Err(e) => tracing::warn!(hook = %name, "hook wait failed: {e}"),
                }
            });
        }
        Err(e) => tracing::warn!(hook = %name, "cannot run hook: {e}"),
    }
}

// ---- systemd ---------------------------------------------------------------------------------

/// `sd_notify(3)`: one datagram to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
/// namespace); nothing when the variable is unset.
pub fn sd_notify(state: &str) {
    let Some(addr) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let r = (|| -> std::io::Result<()> {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = addr.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let a = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &a)?;
        } else {
            sock.send_to(state.as_bytes(), &addr)?;
        }
        Ok(())
    })();
    if let Err(e) = r {
        tracing::warn!("sd_notify({state:?}) failed: {e}");
    }
}

/// The listen addresses `status` reports.
pub fn listeners(tcp: SocketAddr, metrics: Option<SocketAddr>) -> Vec<String> {
    let mut v = vec![format!("pptp {tcp}")];
    if let Some(m) = metrics {
        v.push(format!("metrics http://{m}/metrics"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Counters;

    #[test]
    fn metrics_have_every_label_and_no_users() {
        let s = Status {
            version: "1.2.3".into(),
            uptime_s: 5,
            listeners: vec![],
            sessions_starting: 1,
            sessions_active: 2,
            control_connections: 3,
            counters: Counters {
                setups: 7,
                setup_failures: [("auth_failed".to_string(), 4)].into(),
                auth_failures: 4,
                rx_bytes: 100,
                tx_bytes: 200,
                rx_packets: 1,
                tx_packets: 2,
                gre_dropped: [("unknown_call".to_string(), 9)].into(),
                reloads: 1,
                abuse_refusals: [("conn_rate".to_string(), 6)].into(),
                lockouts: [("account".to_string(), 2)].into(),
                sessions_replaced: 3,
                radius: Some(Box::new(crate::control::RadiusCounters {
                    access_requests: 5,
                    access_accepts: 2,
                    access_rejects: 1,
                    access_challenges: 0,
                    access_timeouts: 1,
                    access_retransmissions: 4,
                    access_failovers: 1,
                    access_dropped: 0,
                    acct_requests: 6,
                    acct_answered: 5,
                    acct_failed: 1,
                    acct_retransmissions: 2,
                    acct_failovers: 0,
                    acct_dropped: 3,
                    disconnect_requests: 2,
                    disconnect_acks: 1,
                    disconnect_naks: 1,
                    coa_requests: 1,
                    coa_acks: 0,
                    coa_naks: 1,
                    dae_dropped: [("unknown_client".to_string(), 7)].into(),
                })),
            },
            networks: vec![crate::control::NetworkStatus {
                name: "de\"fault".into(),
                bridge: "virbr0".into(),
                dhcp_leases_active: 3,
                dhcp_offers: 4,
                dhcp_acks: 5,
                dhcp_naks: 6,
                dhcp_malformed: 7,
                dns_answered: 8,
                dns_forwarded: 9,
                dns_cache_hits: 10,
                dns_failed: 11,
                dns_malformed: 12,
            }],
        };
        let m = render_metrics(&s);
        for line in [
            "virtgate_dhcp_leases_active{network=\"de\\\"fault\"} 3",
            "virtgate_dhcp_offers_total{network=\"de\\\"fault\"} 4",
            "virtgate_dhcp_acks_total{network=\"de\\\"fault\"} 5",
            "virtgate_dhcp_naks_total{network=\"de\\\"fault\"} 6",
            "virtgate_dhcp_malformed_total{network=\"de\\\"fault\"} 7",
            "virtgate_dns_answered_total{network=\"de\\\"fault\"} 8",
            "virtgate_dns_forwarded_total{network=\"de\\\"fault\"} 9",
            "virtgate_dns_cache_hits_total{network=\"de\\\"fault\"} 10",
            "virtgate_dns_failed_total{network=\"de\\\"fault\"} 11",
            "virtgate_dns_malformed_total{network=\"de\\\"fault\"} 12",
            "# TYPE virtgate_dhcp_leases_active gauge",
            "# TYPE virtgate_dns_cache_hits_total counter",
        ] {
            assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
        }
        let text = crate::control::status_text(&s);
        assert!(
            text.contains("de\"fault (virbr0): DHCP 3 leases, 4 offers, 5 acks, 6 naks, 7 malformed; DNS 8 local, 9 forwarded, 10 from cache, 11 failed, 12 malformed"),
            "{text}"
        );
        for line in [
            "virtgate_sessions{state=\"active\"} 2",
            "virtgate_sessions{state=\"starting\"} 1",
            "virtgate_session_setups_total 7",
            "virtgate_session_setup_failures_total{reason=\"auth_failed\"} 4",
            "virtgate_session_setup_failures_total{reason=\"no_address\"} 0",
            "virtgate_auth_failures_total 4",
            "virtgate_bytes_total{direction=\"in\"} 100",
            "virtgate_bytes_total{direction=\"out\"} 200",
            "virtgate_packets_total{direction=\"out\"} 2",
            "virtgate_gre_dropped_total{reason=\"unknown_call\"} 9",
            "virtgate_gre_dropped_total{reason=\"session\"} 0",
            "virtgate_build_info{version=\"1.2.3\"} 1",
            "virtgate_reloads_total 1",
            "virtgate_abuse_refusals_total{reason=\"conn_rate\"} 6",
            "virtgate_abuse_refusals_total{reason=\"account_locked\"} 0",
            "virtgate_lockouts_total{scope=\"account\"} 2",
            "virtgate_lockouts_total{scope=\"address\"} 0",
            "virtgate_sessions_replaced_total 3",
        ] {
            assert!(m.lines().any(|l| l == line), "missing {line}:\n{m}");
        }
        for line in [
            "virtgate_radius_requests_total{type=\"access\"} 5",
            "virtgate_radius_requests_total{type=\"accounting\"} 6",
            "virtgate_radius_retransmissions_total{type=\"access\"} 4",
            "virtgate_radius_retransmissions_total{type=\"accounting\"} 2",
            "virtgate_radius_failovers_total{type=\"access\"} 1",
            "virtgate_radius_failovers_total{type=\"accounting\"} 0",
            "virtgate_radius_timeouts_total{type=\"access\"} 1",
            "virtgate_radius_timeouts_total{type=\"accounting\"} 1",
            "virtgate_radius_dropped_answers_total{type=\"accounting\"} 3",
            "virtgate_radius_access_answers_total{code=\"accept\"} 2",
            "virtgate_radius_access_answers_total{code=\"reject\"} 1",
            "virtgate_radius_access_answers_total{code=\"challenge\"} 0",
            "virtgate_radius_accounting_answers_total 5",
            "virtgate_radius_dae_requests_total{kind=\"disconnect\"} 2",
            "virtgate_radius_dae_requests_total{kind=\"coa\"} 1",
            "virtgate_radius_dae_answers_total{kind=\"disconnect\",answer=\"ack\"} 1",
            "virtgate_radius_dae_answers_total{kind=\"disconnect\",answer=\"nak\"} 1",
            "virtgate_radius_dae_answers_total{kind=\"coa\",answer=\"ack\"} 0",
            "virtgate_radius_dae_answers_total{kind=\"coa\",answer=\"nak\"} 1",
            "virtgate_radius_dae_dropped_total{reason=\"unknown_client\"} 7",
            "virtgate_radius_dae_dropped_total{reason=\"bad_authenticator\"} 0",
            "virtgate_radius_dae_dropped_total{reason=\"malformed\"} 0",
            "# TYPE virtgate_radius_requests_total counter",
        ] {
            assert!(m.lines().any(|l| l == line), "missing {line}:\n{m}");
        }
        assert!(
            text.contains("RADIUS auth:     5 requests: 2 accepts, 1 rejects, 0 challenges, 1 unanswered; 4 retransmissions, 1 failovers, 0 answers dropped\n"),
            "{text}"
        );
        assert!(
            text.contains("RADIUS acct:     6 requests: 5 answered, 1 unanswered; 2 retransmissions, 0 failovers, 3 answers dropped\n"),
            "{text}"
        );
        assert!(
            text.contains("RADIUS DAE:      Disconnect 2 (1 ack, 1 nak), CoA 1 (0 ack, 1 nak); dropped: unknown_client 7\n"),
            "{text}"
        );
        // Every sample line is `name{labels} value` or `name value`; every family typed once.
        let types = m.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = m.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
        assert_eq!(types, 14 + RADIUS_FAMILIES + NETWORK_METRICS.len());
        let mut names: Vec<&str> = m
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), types, "a family typed twice:\n{m}");
        for l in m.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<u64>().is_ok(), "{l}");
            assert!(!l.contains("user"), "{l}");
        }
        // The failure label set is fixed whatever the counters hold.
        assert_eq!(
            m.matches("virtgate_session_setup_failures_total{").count(),
            FAILURE_REASONS.len()
        );

        // Without RADIUS: no RADIUS families and no RADIUS lines in `status`.
        let mut s = s;
        s.counters.radius = None;
        let m = render_metrics(&s);
        assert!(!m.contains("virtgate_radius"), "{m}");
        let types = m.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(types, 14 + NETWORK_METRICS.len());
        assert!(!crate::control::status_text(&s).contains("RADIUS"));
    }

    /// The RADIUS metric families (rendered only with RADIUS configured).
    const RADIUS_FAMILIES: usize = 10;

    #[test]
    fn hooks_get_pppds_arguments_and_environment() {
        let mut info = HookInfo {
            ifname: "vgpptp0".into(),
            local: Ipv4Addr::new(192, 168, 0, 1),
            remote: Ipv4Addr::new(192, 168, 0, 100),
            peer_name: "ann".into(),
            ipparam: "10.0.0.2".into(),
            dns: [Some(Ipv4Addr::new(8, 8, 8, 8)), None],
            call_id: 42,
            down: None,
        };
        let (args, env) = hook_command(&info);
        assert_eq!(
            args,
            [
                "vgpptp0",
                "pptp-call-42",
                "115200",
                "192.168.0.1",
                "192.168.0.100",
                "10.0.0.2"
            ]
        );
        let get = |env: &[(String, String)], k: &str| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        assert_eq!(get(&env, "PEERNAME").as_deref(), Some("ann"));
        assert_eq!(get(&env, "IPLOCAL").as_deref(), Some("192.168.0.1"));
        assert_eq!(get(&env, "IPREMOTE").as_deref(), Some("192.168.0.100"));
        assert_eq!(get(&env, "DNS1").as_deref(), Some("8.8.8.8"));
        assert_eq!(get(&env, "DNS2"), None);
        assert_eq!(get(&env, "BYTES_SENT"), None);
        info.down = Some((10, 20, 30));
        let (_, env) = hook_command(&info);
        assert_eq!(get(&env, "BYTES_SENT").as_deref(), Some("10"));
        assert_eq!(get(&env, "BYTES_RCVD").as_deref(), Some("20"));
        assert_eq!(get(&env, "CONNECT_TIME").as_deref(), Some("30"));
    }

    #[test]
    fn sd_notify_sends_one_datagram_to_the_socket() {
        let dir = std::env::temp_dir().join(format!("vg-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("notify");
        let rx = std::os::unix::net::UnixDatagram::bind(&p).unwrap();
        // No other test in this binary reads NOTIFY_SOCKET.
        std::env::set_var("NOTIFY_SOCKET", &p);
        sd_notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
