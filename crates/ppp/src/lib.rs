//! PPP for virtgate (sans-IO): frames, the RFC 1661 automaton, LCP/IPCP/CCP, PAP, CHAP-MD5,
//! MS-CHAPv1/v2 and MPPE. See ARCHITECTURE.md.
//!
//! - [`frame`]: PPP header (ACFC/PFC), control packets, option TLVs (RFC 1661 §2, §5, §6).
//! - [`fsm`]: the RFC 1661 §4 automaton, shared by LCP, IPCP and CCP.
//! - [`lcp`], [`ipcp`], [`ccp`]: per-protocol options (RFC 1661, RFC 1332/1877, RFC 1962/3078).
//! - [`auth`]: PAP / CHAP-MD5 / MS-CHAPv1 / MS-CHAPv2 exchanges, both roles.
//! - [`session`]: one link ([`Session`]): phases, events, the data path with MPPE.
//! - [`chap_md5`], [`mschap`], [`mppe`]: the cryptography.

// Cryptography (pure functions and per-direction MPPE state).
pub mod chap_md5;
pub mod mppe;
pub mod mschap;

// Framing and negotiation.
pub mod auth;
pub mod ccp;
pub mod frame;
pub mod fsm;
pub mod ipcp;
pub mod lcp;
pub mod session;

pub use auth::{AuthMethod, AuthPolicy};
pub use ccp::{MppeMode, MppePolicy};
pub use fsm::FsmPolicy;
pub use ipcp::IpcpPolicy;
pub use lcp::LcpPolicy;
pub use mppe::KeyLength;
pub use session::{
    DataError, Decap, DownReason, DropReason, Phase, Role, Session, SessionConfig, SessionEvent,
    SessionStats, MPPE_SANITY_MAX,
};

/// Randomness for CHAP challenges, MS-CHAPv2 peer challenges and magic numbers. The daemon
/// passes `getrandom`; tests pass a seeded generator, so runs are deterministic.
pub trait Entropy: Send {
    fn fill(&mut self, buf: &mut [u8]);
}
