//! The leases file: what lets a restarted server honour the leases it granted (RFC 2131 §4.2:
//! "the server MUST NOT reuse an address while a lease on it is outstanding").
//!
//! Format (dnsmasq's `dnsmasq.leases`, so existing tools read it): one lease a line,
//!
//! ```text
//! <expiry> <mac> <ip> <hostname> <client-id>
//! 1732629600 52:54:00:77:00:20 192.168.122.115 guest-a *
//! 0 52:54:00:77:00:21 192.168.122.50 fixed 01:52:54:00:77:00:21
//! ```
//!
//! `expiry` is seconds since the Unix epoch, `0` for an infinite lease; `hostname` and
//! `client-id` (colon-separated hex) are `*` when absent. Blank lines, `#` comments and
//! dnsmasq's IPv6 `duid` line are skipped. The daemon writes the text to a temporary file in the
//! same directory and renames it over the old one, so a crash leaves either file whole.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{Config, ConfigError, MacAddr};
use crate::engine::{hex_colon, LeaseEngine};
use crate::hostname;

/// A line of the leases file that was not restored. The rest of the file still is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseFileError {
    #[error("line {line}: {what}")]
    Syntax { line: usize, what: String },
    #[error("line {line}: lease of {ip} not restored: {reason}")]
    Refused {
        line: usize,
        ip: Ipv4Addr,
        reason: &'static str,
    },
}

impl LeaseEngine {
    /// The bound leases in the leases-file format. `now` and `wall_now` are the same moment on
    /// the monotonic and the wall clock.
    pub fn to_leases_file(&self, now: Instant, wall_now: SystemTime) -> String {
        let mut out = String::new();
        for (ip, mac, expires, name, client_id) in self.bound_records() {
            let expiry = match expires {
                None => 0,
                Some(e) => {
                    let wall = wall_now + e.saturating_duration_since(now);
                    // Round up so a lease never looks shorter after a restart; at least 1 (0 means
                    // infinite).
                    let d = wall.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
                    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
                }
            };
            let _ = writeln!(
                out,
                "{expiry} {mac} {ip} {} {}",
                name.unwrap_or("*"),
                client_id.map(hex_colon).unwrap_or_else(|| "*".to_string())
            );
        }
        out
    }

    /// A server for `cfg` holding the leases in `text` that are still running at `wall_now`.
    /// Lines it cannot use come back as [`LeaseFileError`]s (log them); each restored lease is
    /// announced as [`LeaseEvent::Added`](crate::LeaseEvent::Added) so the DNS side learns it.
    pub fn from_leases_file(
        cfg: Config,
        text: &str,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<(Self, Vec<LeaseFileError>), ConfigError> {
        let mut engine = LeaseEngine::new(cfg)?;
        let mut problems = Vec::new();
        let wall_secs = wall_now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with("duid ") {
                continue;
            }
            let parsed = match parse_line(l) {
                Ok(p) => p,
                Err(what) => {
                    problems.push(LeaseFileError::Syntax { line, what });
                    continue;
                }
            };
            let expires = match parsed.expiry {
                0 => None,
                e if e <= wall_secs => continue, // ran out while we were down
                e => now.checked_add(Duration::from_secs(e - wall_secs)),
            };
            if let Err(reason) = engine.restore_lease(
                now,
                parsed.ip,
                parsed.mac,
                expires,
                parsed.hostname,
                parsed.client_id,
            ) {
                problems.push(LeaseFileError::Refused {
                    line,
                    ip: parsed.ip,
                    reason,
                });
            }
        }
        Ok((engine, problems))
    }
}

struct Line {
    expiry: u64,
    mac: MacAddr,
    ip: Ipv4Addr,
    hostname: Option<String>,
    client_id: Option<Vec<u8>>,
}

fn parse_line(l: &str) -> Result<Line, String> {
    let fields: Vec<&str> = l.split_whitespace().collect();
    let &[expiry, mac, ip, name, client_id] = fields.as_slice() else {
        return Err(format!("expected 5 fields, found {}", fields.len()));
    };
    let expiry = expiry
        .parse::<u64>()
        .map_err(|_| format!("bad expiry {expiry:?}"))?;
    let mac = mac
        .parse::<MacAddr>()
        .map_err(|_| format!("bad MAC address {mac:?}"))?;
    let ip = ip
        .parse::<Ipv4Addr>()
        .map_err(|_| format!("bad IPv4 address {ip:?}"))?;
    let hostname = match name {
        "*" => None,
        n => hostname::sanitize(n.as_bytes()),
    };
    let client_id = match client_id {
        "*" => None,
        s => Some(parse_hex_colon(s).ok_or_else(|| format!("bad client id {s:?}"))?),
    };
    Ok(Line {
        expiry,
        mac,
        ip,
        hostname,
        client_id,
    })
}

fn parse_hex_colon(s: &str) -> Option<Vec<u8>> {
    let v = s
        .split(':')
        .map(|p| {
            if p.is_empty() || p.len() > 2 {
                None
            } else {
                u8::from_str_radix(p, 16).ok()
            }
        })
        .collect::<Option<Vec<u8>>>()?;
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let l =
            parse_line("1732629600 52:54:00:77:00:20 192.168.122.115 guest-a 01:52:54:00:77:00:20")
                .unwrap();
        assert_eq!(l.expiry, 1_732_629_600);
        assert_eq!(l.mac.to_string(), "52:54:00:77:00:20");
        assert_eq!(l.hostname.as_deref(), Some("guest-a"));
        assert_eq!(l.client_id, Some(vec![1, 0x52, 0x54, 0, 0x77, 0, 0x20]));
        let l = parse_line("0 52:54:00:77:00:20 192.168.122.115 * *").unwrap();
        assert_eq!((l.expiry, l.hostname, l.client_id), (0, None, None));
        for bad in [
            "",
            "1 2 3 4",
            "x 52:54:00:77:00:20 192.168.122.115 * *",
            "1 52:54:00:77:00 192.168.122.115 * *",
            "1 52:54:00:77:00:20 192.168.122.300 * *",
            "1 52:54:00:77:00:20 192.168.122.115 * 0g",
            "1 52:54:00:77:00:20 192.168.122.115 * 01::02",
            "1 52:54:00:77:00:20 192.168.122.115 * * extra",
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
    }
}
