//! PPTP (RFC 2637), sans-IO.
//!
//! - [`control`]: the control messages of RFC 2637 §2 (parse/emit) and TCP stream framing.
//! - [`conn`]: [`conn::ControlConnection`], the control-connection state machine (RFC 2637 §3)
//!   for the server (PAC) and client (PNS) roles, on caller-supplied time.
//! - [`gre`]: the enhanced GRE header and per-call sequencing/acknowledgement (RFC 2637 §4).
//!
//! No sockets, clocks or threads: bytes and `Instant`s go in, bytes, events and deadlines come
//! out.

pub mod conn;
pub mod control;
pub mod gre;

pub use conn::{
    CallClearReason, CloseReason, ControlConfig, ControlConnection, ControlEvent, ControlStats,
    Role,
};
pub use control::{ControlMessage, OutgoingCallResult, StopReason};
pub use gre::{
    DropReason, GreChannel, GreConfig, GreError, GreHeader, GreStats, RxVerdict, GRE_HEADROOM,
};
