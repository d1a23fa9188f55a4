//! RADIUS for a NAS (sans-IO): packets (RFC 2865/2866), Microsoft attributes (RFC 2548),
//! Message-Authenticator (RFC 3579), a client with retransmission and failover on virtual
//! time, and Dynamic Authorization (RFC 5176).
//!
//! - [`packet`]: the wire format, attribute list, Vendor-Specific sub-attributes;
//! - [`crypto`]: User-Password hiding, Request/Response Authenticators, Message-Authenticator,
//!   MS-MPPE key salt encryption;
//! - [`attr`]: attribute numbers and values; [`ms`]: the Microsoft attributes a NAS sends
//!   and reads;
//! - [`client`]: [`Client`], fed by `handle_datagram(now, from, bytes)` and
//!   `handle_timeout(now)`, drained by `poll_transmit` / `poll_event`, timed by
//!   `poll_timeout`;
//! - [`dae`]: Disconnect-Request / CoA-Request checking and answers.
//!
//! No sockets, no clocks: time is passed in, randomness comes through [`Entropy`].

pub mod attr;
pub mod client;
pub mod crypto;
pub mod dae;
pub mod ms;
pub mod packet;

pub use client::{
    Client, ClientConfig, ClientError, ClientEvent, Reply, Request, RequestId, Server, Transmit,
};
pub use dae::{DaeClient, DaeError, DaeKind, DaeRequest};
pub use packet::{Attr, Code, DecodeError, Packet};

/// Randomness (Request Authenticators). The daemon passes the OS generator.
pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8]);
}
