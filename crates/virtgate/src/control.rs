//! The control socket: `virtgate status|sessions|terminate|reload` talk to the running daemon
//! over a Unix stream socket (default [`DEFAULT_SOCKET`]), one JSON request per line, one JSON
//! response per line, in a versioned envelope: `{"v":1,"cmd":"sessions","user":"ann"}` →
//! `{"v":1,"result":"sessions","sessions":[...]}`.
//!
//! The envelope, the requests and the daemon's line parser are in the `virtgate-control` crate
//! (shared with the fuzz target `control_request`); the responses and the transport are here.
//! Extending it (virtual networks: `net ...`, `port ...`) is one [`Request`] variant there (with
//! its [`Response`] variant here when it answers with data) and one arm in the engine's
//! `Engine::on_control` handler; the transport, the envelope and the permission check stay.
//!
//! Who may connect: the socket's directory is 0700 and the socket 0600, and every connection's
//! SO_PEERCRED uid must be 0 or the daemon's own uid.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use virtgate_control::{decode, encode, parse_request_line, Request, Target, MAX_LINE};

/// Where the daemon listens and the commands connect by default.
pub const DEFAULT_SOCKET: &str = "/run/virtgate/virtgate.sock";

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Response {
    Status(Status),
    Sessions {
        sessions: Vec<SessionInfo>,
    },
    /// How many sessions were asked to hang up.
    Terminated {
        sessions: usize,
    },
    /// The new configuration is in force for new sessions; `warnings` lists what it could not
    /// change without a restart.
    Reloaded {
        warnings: Vec<String>,
    },
    /// The answer to a [`Request::Net`].
    Net(crate::networks::NetResponse),
    /// The request failed (bad request, broken configuration file on reload, ...).
    Error {
        message: String,
    },
}

/// `virtgate status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub uptime_s: u64,
    /// `ADDR:1723` and, when on, the metrics address.
    pub listeners: Vec<String>,
    pub sessions_starting: usize,
    pub sessions_active: usize,
    pub control_connections: usize,
    pub counters: Counters,
    /// The running virtual networks' DHCP and DNS counters, by name.
    #[serde(default)]
    pub networks: Vec<NetworkStatus>,
}

/// One running network's DHCP and DNS counters (since it started) in `virtgate status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    pub name: String,
    pub bridge: String,
    /// Bound leases now.
    pub dhcp_leases_active: u64,
    /// DHCPOFFERs, DHCPACKs and DHCPNAKs sent.
    pub dhcp_offers: u64,
    pub dhcp_acks: u64,
    pub dhcp_naks: u64,
    /// DHCP datagrams dropped as malformed.
    pub dhcp_malformed: u64,
    /// DNS queries answered from the network's own names (and NXDOMAIN for its local domain).
    pub dns_answered: u64,
    /// DNS queries forwarded upstream (new ones; retries not counted).
    pub dns_forwarded: u64,
    /// DNS queries answered from the cache of forwarded answers.
    pub dns_cache_hits: u64,
    /// DNS queries that got an error: SERVFAIL (upstreams timed out or failed), REFUSED (no
    /// upstream), NOTIMP, BADVERS.
    pub dns_failed: u64,
    /// DNS messages dropped or answered FORMERR as malformed.
    pub dns_malformed: u64,
}

/// Counters since start (sessions that ended included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Sessions that came up (IPCP opened).
    pub setups: u64,
    /// Sessions that ended before coming up, by reason (a fixed set of labels).
    pub setup_failures: BTreeMap<String, u64>,
    pub auth_failures: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// GRE packets dropped before reaching a session (unknown call, wrong source, malformed)
    /// and inside one (sequence window, undecryptable, ...).
    pub gre_dropped: BTreeMap<String, u64>,
    pub reloads: u64,
    /// Refusals by the abuse limits, by reason (`conn_rate`, `source_locked`, ...).
    #[serde(default)]
    pub abuse_refusals: BTreeMap<String, u64>,
    /// Lockouts started, by scope (`user`, `source`).
    #[serde(default)]
    pub lockouts: BTreeMap<String, u64>,
    /// Sessions hung up because the same user started a new one (single-session replace).
    #[serde(default)]
    pub sessions_replaced: u64,
    /// The RADIUS client's counters; absent without `plugin radius.so`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radius: Option<Box<RadiusCounters>>,
}

/// The reasons a datagram on the Dynamic Authorization port is dropped unanswered: a fixed
/// label set.
pub const DAE_DROP_REASONS: [&str; 3] = ["unknown_client", "bad_authenticator", "malformed"];

/// RADIUS counters since start. "Requests" count each request once, however often it was
/// transmitted; "timeouts"/"failed" are requests no server answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RadiusCounters {
    /// Access-Requests sent.
    pub access_requests: u64,
    /// Answers to them, by code (as the server sent them: an Access-Accept refused for its
    /// Filter-Id counts as an accept).
    pub access_accepts: u64,
    pub access_rejects: u64,
    pub access_challenges: u64,
    /// Access-Requests no server answered.
    pub access_timeouts: u64,
    /// Access-Requests transmitted again to the same server.
    pub access_retransmissions: u64,
    /// Access-Requests moved to another server after theirs did not answer.
    pub access_failovers: u64,
    /// Datagrams on the authentication socket dropped (no matching request, wrong
    /// authenticator or Message-Authenticator, malformed).
    pub access_dropped: u64,
    /// Accounting-Requests sent (Start, Interim-Update, Stop).
    pub acct_requests: u64,
    /// Accounting-Responses received.
    pub acct_answered: u64,
    /// Accounting-Requests no server answered (the record is lost).
    pub acct_failed: u64,
    pub acct_retransmissions: u64,
    pub acct_failovers: u64,
    pub acct_dropped: u64,
    /// Verified Disconnect-Requests and their answers.
    pub disconnect_requests: u64,
    pub disconnect_acks: u64,
    pub disconnect_naks: u64,
    /// Verified CoA-Requests and their answers.
    pub coa_requests: u64,
    pub coa_acks: u64,
    pub coa_naks: u64,
    /// Datagrams on the Dynamic Authorization port dropped unanswered, by reason
    /// ([`DAE_DROP_REASONS`]).
    pub dae_dropped: BTreeMap<String, u64>,
}

/// One session as `virtgate sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Our call id (what `terminate --id` takes).
    pub id: u16,
    pub user: Option<String>,
    /// The client's public address (GRE and TCP peer).
    pub client: Ipv4Addr,
    /// The address the client got inside the tunnel.
    pub address: Option<Ipv4Addr>,
    pub peer_call_id: u16,
    /// `starting` or `active`.
    pub state: String,
    pub uptime_s: u64,
    pub mppe: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// Why a control request failed on the client side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error("cannot connect to {path}: {source} — is `virtgate daemon` running (with this --socket), and are you root or its user?")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon closed the connection without answering")]
    NoAnswer,
    #[error("cannot understand the daemon's answer: {0}")]
    BadAnswer(String),
    #[error("{0}")]
    Daemon(String),
}

/// Sends one request to the daemon and waits for its answer (client side, blocking).
pub fn request(socket: &Path, req: &Request) -> Result<Response, ControlError> {
    let stream =
        std::os::unix::net::UnixStream::connect(socket).map_err(|e| ControlError::Connect {
            path: socket.to_path_buf(),
            source: e,
        })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = &stream;
    w.write_all(encode(req).as_bytes())?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    if line.is_empty() {
        return Err(ControlError::NoAnswer);
    }
    match decode::<Response>(&line).map_err(ControlError::BadAnswer)? {
        Response::Error { message } => Err(ControlError::Daemon(message)),
        r => Ok(r),
    }
}

/// Creates the socket's directory (0700) and binds the socket (0600), replacing a stale one.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another virtgate daemon answers on this socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    // Created with 0600 from the start: no window where others could connect.
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let r = tokio::net::UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let l = r?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// SO_PEERCRED rule: root or the daemon's own user.
pub fn peer_allowed(peer_uid: u32, our_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == our_uid
}

// ---- human output ----------------------------------------------------------------------------

fn dur(s: u64) -> String {
    if s >= 86_400 {
        format!(
            "{}d{:02}h{:02}m",
            s / 86_400,
            s % 86_400 / 3600,
            s % 3600 / 60
        )
    } else if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `virtgate status` as text.
pub fn status_text(s: &Status) -> String {
    let c = &s.counters;
    let mut o = String::new();
    o += &format!("virtgate {}, up {}\n", s.version, dur(s.uptime_s));
    o += &format!("listening:       {}\n", s.listeners.join(", "));
    o += &format!(
        "sessions:        {} active, {} starting ({} control connections)\n",
        s.sessions_active, s.sessions_starting, s.control_connections
    );
    o += &format!("set-ups:         {}\n", c.setups);
    let list = |v: &BTreeMap<String, u64>| {
        let parts: Vec<String> = v
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if parts.is_empty() {
            "0".to_string()
        } else {
            parts.join(", ")
        }
    };
    o += &format!("set-up failures: {}\n", list(&c.setup_failures));
    o += &format!("auth failures:   {}\n", c.auth_failures);
    o += &format!(
        "traffic:         in {} bytes / {} packets, out {} bytes / {} packets\n",
        c.rx_bytes, c.rx_packets, c.tx_bytes, c.tx_packets
    );
    o += &format!("GRE dropped:     {}\n", list(&c.gre_dropped));
    o += &format!("reloads:         {}\n", c.reloads);
    if let Some(r) = &c.radius {
        o += &format!(
            "RADIUS auth:     {} requests: {} accepts, {} rejects, {} challenges, {} unanswered; \
             {} retransmissions, {} failovers, {} answers dropped\n",
            r.access_requests,
            r.access_accepts,
            r.access_rejects,
            r.access_challenges,
            r.access_timeouts,
            r.access_retransmissions,
            r.access_failovers,
            r.access_dropped
        );
        o += &format!(
            "RADIUS acct:     {} requests: {} answered, {} unanswered; {} retransmissions, \
             {} failovers, {} answers dropped\n",
            r.acct_requests,
            r.acct_answered,
            r.acct_failed,
            r.acct_retransmissions,
            r.acct_failovers,
            r.acct_dropped
        );
        o += &format!(
            "RADIUS DAE:      Disconnect {} ({} ack, {} nak), CoA {} ({} ack, {} nak); \
             dropped: {}\n",
            r.disconnect_requests,
            r.disconnect_acks,
            r.disconnect_naks,
            r.coa_requests,
            r.coa_acks,
            r.coa_naks,
            list(&r.dae_dropped)
        );
    }
    if !s.networks.is_empty() {
        o += &format!("networks:        {} running\n", s.networks.len());
    }
    for n in &s.networks {
        o += &format!(
            "  {} ({}): DHCP {} leases, {} offers, {} acks, {} naks, {} malformed; DNS {} local, \
             {} forwarded, {} from cache, {} failed, {} malformed\n",
            n.name,
            n.bridge,
            n.dhcp_leases_active,
            n.dhcp_offers,
            n.dhcp_acks,
            n.dhcp_naks,
            n.dhcp_malformed,
            n.dns_answered,
            n.dns_forwarded,
            n.dns_cache_hits,
            n.dns_failed,
            n.dns_malformed
        );
    }
    o
}

/// `virtgate sessions` as a table.
pub fn sessions_table(v: &[SessionInfo]) -> String {
    let head = [
        "ID", "USER", "CLIENT", "ADDRESS", "CALL", "STATE", "UPTIME", "MPPE", "RX-BYTES",
        "TX-BYTES", "RX-PKTS", "TX-PKTS",
    ];
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.user.clone().unwrap_or_else(|| "-".into()),
                s.client.to_string(),
                s.address.map_or_else(|| "-".into(), |a| a.to_string()),
                s.peer_call_id.to_string(),
                s.state.clone(),
                dur(s.uptime_s),
                s.mppe.clone(),
                s.rx_bytes.to_string(),
                s.tx_bytes.to_string(),
                s.rx_packets.to_string(),
                s.tx_packets.to_string(),
            ]
        })
        .collect();
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&width).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l += &format!("{c:<w$}");
        }
        l.trim_end().to_string() + "\n"
    };
    let mut o = line(head.iter().map(|h| h.to_string()).collect());
    for r in rows {
        o += &line(r);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_round_trip() {
        assert_eq!(
            encode(&Response::Terminated { sessions: 2 }),
            "{\"v\":1,\"result\":\"terminated\",\"sessions\":2}\n"
        );
        let s = SessionInfo {
            id: 4711,
            user: Some("ann".into()),
            client: Ipv4Addr::new(10, 0, 0, 2),
            address: Some(Ipv4Addr::new(192, 168, 0, 100)),
            peer_call_id: 3,
            state: "active".into(),
            uptime_s: 3725,
            mppe: "128-stateless".into(),
            rx_bytes: 1,
            tx_bytes: 2,
            rx_packets: 3,
            tx_packets: 4,
        };
        let r = Response::Sessions {
            sessions: vec![s.clone()],
        };
        assert_eq!(decode::<Response>(&encode(&r)), Ok(r));
        let t = sessions_table(&[s]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID    USER  CLIENT"), "{t}");
        assert!(lines[1].contains("ann") && lines[1].contains("192.168.0.100"));
        assert!(lines[1].contains("1h02m05s"), "{t}");
        let st = Response::Status(Status {
            version: "0.1.0".into(),
            counters: Counters {
                setup_failures: [("auth_failed".to_string(), 2)].into(),
                ..Counters::default()
            },
            ..Status::default()
        });
        assert_eq!(decode::<Response>(&encode(&st)), Ok(st));
    }

    #[test]
    fn only_root_or_the_daemons_user_may_connect() {
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(1000, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(peer_allowed(0, 0));
        assert!(!peer_allowed(65534, 0));
    }

    #[test]
    fn bind_makes_a_private_socket_and_replaces_a_stale_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vg-ctl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("s.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = bind(&path).unwrap();
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
            // A live socket is not stolen...
            assert!(bind(&path).is_err());
            drop(l);
            // ...a stale one (nobody listening) is replaced.
            let _l = bind(&path).unwrap();
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
