//! PPP for virtgate (sans-IO): frames, the RFC 1661 automaton, LCP/IPCP/CCP, PAP, CHAP-MD5,
//! MS-CHAPv1/v2 and MPPE. See ARCHITECTURE.md.

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
    SessionStats,
};

/// Randomness for CHAP challenges, MS-CHAPv2 peer challenges and magic numbers. The daemon
/// passes `getrandom`; tests pass a seeded generator, so runs are deterministic.
pub trait Entropy: Send {
    fn fill(&mut self, buf: &mut [u8]);
}
