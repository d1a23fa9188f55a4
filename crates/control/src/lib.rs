//! The wire format of virtgate's control socket (`virtgate status|sessions|terminate|reload|net`
//! talk to the running daemon over a Unix stream socket): one JSON request per line, one JSON
//! response per line, in a versioned envelope: `{"v":1,"cmd":"sessions","user":"ann"}` →
//! `{"v":1,"result":"sessions","sessions":[...]}`.
//!
//! This crate holds the envelope ([`encode`], [`decode`]), the requests ([`Request`]) and the
//! daemon's request parser ([`parse_request_line`]), so the daemon (`crates/virtgate`, a binary)
//! and the fuzz targets (`crates/fuzzing`) share them. The responses live in the daemon's
//! `control.rs`.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The protocol version in every envelope.
pub const VERSION: u32 = 1;

/// The longest request line the daemon reads (a request is a few hundred bytes).
pub const MAX_LINE: usize = 64 * 1024;

/// A command to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Version, uptime, listeners, session counts, counters.
    Status,
    /// The sessions, all or one user's.
    Sessions {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    /// Hang sessions up politely (LCP Terminate, Call-Disconnect-Notify).
    Terminate { target: Target },
    /// Re-read chap-secrets, the options file and pptpd.conf (as SIGHUP).
    Reload,
    /// Virtual networks: `virtgate net ...` (issue 4).
    Net(NetRequest),
}

/// Which sessions `terminate` ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    User(String),
    Ip(Ipv4Addr),
    Id(u16),
    All,
}

/// A `virtgate net ...` command (`{"cmd":"net","net":"start","name":"default"}` on the socket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "net", rename_all = "snake_case")]
pub enum NetRequest {
    /// `virsh net-list --all`.
    List,
    /// `virsh net-start NAME`.
    Start { name: String },
    /// `virsh net-destroy NAME`.
    Stop { name: String },
    /// `virsh net-define FILE`: the file's text, read by the client; `origin` names it in
    /// errors.
    Define { xml: String, origin: PathBuf },
    /// `virsh net-undefine NAME`.
    Undefine { name: String },
    /// `virsh net-autostart [--disable] NAME`: start it with the daemon (or not).
    Autostart { name: String, enable: bool },
    /// `virsh net-dumpxml [--inactive] NAME`.
    Dumpxml {
        name: String,
        #[serde(default)]
        inactive: bool,
    },
    /// `virsh net-dhcp-leases NAME`.
    Leases { name: String },
    /// `virsh net-update NAME COMMAND SECTION XML --live --config`.
    Update {
        name: String,
        command: String,
        section: String,
        xml: String,
    },
}

#[derive(Serialize)]
struct OutEnvelope<'a, T> {
    v: u32,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Deserialize)]
struct InEnvelope<T> {
    v: u32,
    #[serde(flatten)]
    body: T,
}

/// One request line (with its newline).
pub fn encode<T: Serialize>(body: &T) -> String {
    let mut s = serde_json::to_string(&OutEnvelope { v: VERSION, body })
        // Serializing these plain structs cannot fail; an empty object is answered as an error.
        .unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// Parses one line; a wrong version or shape is an error message for the peer.
pub fn decode<T: for<'de> Deserialize<'de>>(line: &str) -> Result<T, String> {
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|e| format!("not JSON: {e}"))?;
    match v.get("v").and_then(|v| v.as_u64()) {
        Some(n) if n == u64::from(VERSION) => {}
        Some(n) => {
            return Err(format!(
                "protocol version {n} not supported (this side speaks {VERSION})"
            ))
        }
        None => return Err("no protocol version (\"v\":1)".into()),
    }
    let e: InEnvelope<T> = serde_json::from_value(v).map_err(|e| format!("bad message: {e}"))?;
    debug_assert_eq!(e.v, VERSION);
    Ok(e.body)
}

/// What the daemon does with one line read from a control connection (at most [`MAX_LINE`]
/// bytes, `line_complete` when it ended in a newline): the request, or the error message it
/// answers with. Never panics, whatever the bytes.
pub fn parse_request_line(line: &[u8], line_complete: bool) -> Result<Request, String> {
    if !line_complete && line.len() >= MAX_LINE {
        return Err(format!("request longer than {MAX_LINE} bytes"));
    }
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8 text".to_string())?;
    decode::<Request>(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_in_the_versioned_envelope() {
        let reqs = [
            Request::Status,
            Request::Sessions { user: None },
            Request::Sessions {
                user: Some("ann".into()),
            },
            Request::Terminate {
                target: Target::User("ann".into()),
            },
            Request::Terminate {
                target: Target::Ip(Ipv4Addr::new(192, 168, 0, 100)),
            },
            Request::Terminate {
                target: Target::Id(7),
            },
            Request::Terminate {
                target: Target::All,
            },
            Request::Reload,
        ];
        for r in reqs {
            let line = encode(&r);
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(decode::<Request>(&line), Ok(r));
        }
    }

    #[test]
    fn wire_format_is_the_documented_one() {
        assert_eq!(encode(&Request::Status), "{\"v\":1,\"cmd\":\"status\"}\n");
        assert_eq!(
            encode(&Request::Terminate {
                target: Target::User("bob".into())
            }),
            "{\"v\":1,\"cmd\":\"terminate\",\"target\":{\"user\":\"bob\"}}\n"
        );
        assert_eq!(
            decode::<Request>("{\"v\":1,\"cmd\":\"terminate\",\"target\":\"all\"}"),
            Ok(Request::Terminate {
                target: Target::All
            })
        );
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for bad in [
            "",
            "{",
            "[]",
            "{\"cmd\":\"status\"}",
            "{\"v\":2,\"cmd\":\"status\"}",
            "{\"v\":1}",
            "{\"v\":1,\"cmd\":\"launch\"}",
            "{\"v\":1,\"cmd\":\"terminate\",\"target\":{\"ip\":\"300.1.1.1\"}}",
            "{\"v\":1,\"cmd\":\"terminate\",\"target\":{\"id\":70000}}",
            "\u{0}\u{ff}",
        ] {
            assert!(decode::<Request>(bad).is_err(), "{bad:?}");
        }
        let e = decode::<Request>("{\"v\":2,\"cmd\":\"status\"}").unwrap_err();
        assert!(e.contains("version 2"), "{e}");
    }

    #[test]
    fn the_daemons_line_parser() {
        assert_eq!(
            parse_request_line(b"{\"v\":1,\"cmd\":\"reload\"}\n", true),
            Ok(Request::Reload)
        );
        assert_eq!(
            parse_request_line(
                b"{\"v\":1,\"cmd\":\"net\",\"net\":\"start\",\"name\":\"default\"}",
                true
            ),
            Ok(Request::Net(NetRequest::Start {
                name: "default".into()
            }))
        );
        assert!(parse_request_line(b"\xff\n", true)
            .unwrap_err()
            .contains("UTF-8"));
        let long = vec![b' '; MAX_LINE];
        assert!(parse_request_line(&long, false)
            .unwrap_err()
            .contains("longer than"));
    }
}
