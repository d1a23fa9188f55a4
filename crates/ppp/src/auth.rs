//! Authentication exchanges, both roles:
//! - PAP (RFC 1334 §2): Authenticate-Request / -Ack / -Nak;
//! - CHAP (RFC 1994 §4) with MD5 (algorithm 5), MS-CHAPv1 (0x80, RFC 2433 §5, §8) and
//!   MS-CHAPv2 (0x81, RFC 2759 §4-§6): Challenge / Response / Success / Failure.
//!
//! The crypto is in [`crate::chap_md5`] and [`crate::mschap`]; this file is the packet
//! exchange: identifiers, timers, retries, message formats.
//!
//! Messages are formatted as pppd 2.4.9 formats them (checked against the reference capture):
//! CHAP-MD5 and MS-CHAPv1 Success "Access granted"; MS-CHAPv2 Success
//! `S=<AUTHRESP> M=Access granted` (no ` M=` part when the peer's Flags octet is non-zero,
//! as pppd does for Windows 98); CHAP-MD5 Failure "Access denied"; MS-CHAPv1 Failure
//! `E=691 R=r C=<challenge> V=0`; MS-CHAPv2 Failure `E=691 R=r C=<challenge> V=0 M=Access
//! denied`; PAP "Login ok" / "Login incorrect".
//!
//! Choices the RFCs leave open:
//! - Retries: with `max_retries = 0` (the default, pppd's behaviour) the first failure is
//!   final: Failure with `R=0`, then the session terminates LCP ("Authentication failed").
//!   pppd writes `R=1` but never accepts a retry; we write what we do. With retries left, a
//!   MS-CHAP Failure carries `R=1` and `C=` a fresh challenge, and the next Response must use
//!   Identifier + 1 (RFC 2759 §6, RFC 2433 §8, what Windows does); CHAP-MD5 sends a new
//!   Challenge; PAP answers Nak and waits for the next Authenticate-Request.
//! - The authenticator retransmits its Challenge every `restart` (3 s, pppd chap-restart) up to
//!   `max_transmits` (10, chap-max-challenge) times, then fails. A Response repeated after the
//!   verdict gets the same Success/Failure again (RFC 1994 §4.2, as pppd).
//! - The authenticatee retransmits its Response every `restart` while no verdict came (pppd
//!   does not; this recovers a lost Success, which pppd answers by repeating it), and gives up
//!   after `client_timeout` (60 s, pppd chap-timeout). PAP requests are retransmitted every
//!   `restart` up to `max_transmits` times (pppd pap-restart / pap-max-authreq).
//! - The MS-CHAP user name is the Name field as received ("DOMAIN\user" included) for the
//!   secret lookup; the challenge hash strips the domain, as RFC 2759 §8.2 and pppd do.

use std::time::{Duration, Instant};

use crate::frame::{emit_control, Code, ControlPacket, Protocol};
use crate::mschap;
use crate::Entropy;

/// An authentication method as negotiated in LCP (option 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    Pap,
    ChapMd5,
    MsChapV1,
    MsChapV2,
}

impl AuthMethod {
    pub fn protocol(self) -> Protocol {
        match self {
            AuthMethod::Pap => Protocol::Pap,
            _ => Protocol::Chap,
        }
    }

    /// Length of the challenge we send as authenticator (pppd: 16 for MD5 and MS-CHAPv2,
    /// 8 for MS-CHAPv1).
    pub fn challenge_len(self) -> usize {
        match self {
            AuthMethod::MsChapV1 => 8,
            _ => 16,
        }
    }

    /// MPPE keys can be derived from this method.
    pub fn provides_mppe_keys(self) -> bool {
        matches!(self, AuthMethod::MsChapV1 | AuthMethod::MsChapV2)
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthMethod::Pap => "PAP",
            AuthMethod::ChapMd5 => "CHAP-MD5",
            AuthMethod::MsChapV1 => "MS-CHAPv1",
            AuthMethod::MsChapV2 => "MS-CHAPv2",
        })
    }
}

/// Authentication settings (pppd option names in brackets). `Default` = pppd's defaults
/// with every method allowed, strongest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPolicy {
    /// Server: the methods we may request, in order of preference \[require-mschap-v2 etc.\].
    /// Client: the methods we agree to authenticate with \[refuse-pap etc.\].
    pub methods: Vec<AuthMethod>,
    /// Failed attempts the server tolerates before giving up (0 = pppd: one try).
    pub max_retries: u32,
    /// Retransmission interval \[chap-restart, pap-restart\].
    pub restart: Duration,
    /// Transmissions of a Challenge (server) or Authenticate-Request (client)
    /// \[chap-max-challenge, pap-max-authreq\].
    pub max_transmits: u32,
    /// Server, PAP: how long to wait for an Authenticate-Request \[pap-timeout\].
    pub pap_wait: Duration,
    /// Client: how long to wait for the server to finish \[chap-timeout\].
    pub client_timeout: Duration,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            methods: vec![
                AuthMethod::MsChapV2,
                AuthMethod::MsChapV1,
                AuthMethod::ChapMd5,
                AuthMethod::Pap,
            ],
            max_retries: 0,
            restart: Duration::from_secs(3),
            max_transmits: 10,
            pap_wait: Duration::from_secs(30),
            client_timeout: Duration::from_secs(60),
        }
    }
}

/// A user's secret as the daemon hands it to the authenticator: the password, or its NT hash
/// (chap-secrets `nthash:<32 hex>`, accel-ppp's `encrypted=1` idea). A hash serves MS-CHAPv1/v2
/// (their responses and MPPE keys derive from it) and PAP (the offered password is hashed);
/// CHAP-MD5 needs the password and fails with a hash. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Plain(String),
    /// NtPasswordHash (RFC 2759 §8.3): MD4 of the password in UTF-16LE.
    NtHash([u8; 16]),
}

impl Secret {
    /// The NT password hash (computed for a plaintext password).
    pub fn nt_hash(&self) -> [u8; 16] {
        match self {
            Secret::Plain(p) => mschap::nt_password_hash(p),
            Secret::NtHash(h) => *h,
        }
    }
}

impl From<&str> for Secret {
    fn from(p: &str) -> Secret {
        Secret::Plain(p.to_string())
    }
}

impl From<String> for Secret {
    fn from(p: String) -> Secret {
        Secret::Plain(p)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::Plain(_) => "Secret::Plain(..)",
            Secret::NtHash(_) => "Secret::NtHash(..)",
        })
    }
}

/// The Failure reason when CHAP-MD5 meets a secret stored as an NT hash.
pub const CHAP_MD5_NEEDS_PLAINTEXT: &str =
    "CHAP-MD5 needs the plaintext password, but chap-secrets holds an NT hash for this user \
     (allow MS-CHAPv2 for them, or store the password)";

/// What MPPE key derivation needs from a successful MS-CHAP exchange (RFC 3079 §2-§3).
#[derive(Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    MsChapV1 {
        password: Secret,
        challenge: [u8; 8],
    },
    MsChapV2 {
        password: Secret,
        nt_response: [u8; 24],
    },
    /// Start keys given directly by an external verdict (RADIUS MS-MPPE-Send-Key /
    /// -Recv-Key, as pppd's radius plugin takes them): `send` is what the authenticator
    /// sends with.
    Direct { send: [u8; 16], recv: [u8; 16] },
}

impl KeyMaterial {
    /// The MPPE start keys (RFC 3079) of this end for `key_length`. `Err` when the secret
    /// cannot give them: MS-CHAPv1 40/56-bit keys come from the LAN Manager hash of the
    /// password (RFC 3079 §2.1-§2.2), which an NT-hash secret does not have.
    pub fn start_keys(
        &self,
        key_length: crate::mppe::KeyLength,
        is_server: bool,
    ) -> Result<crate::mppe::StartKeys, &'static str> {
        use crate::mppe;
        match self {
            KeyMaterial::MsChapV2 {
                password,
                nt_response,
            } => Ok(mppe::mschapv2_start_keys_from_hash_hash(
                &mschap::hash_nt_password_hash(&password.nt_hash()),
                nt_response,
                is_server,
            )),
            KeyMaterial::MsChapV1 {
                password: Secret::Plain(p),
                challenge,
            } => Ok(mppe::mschapv1_start_keys(p, challenge, key_length)),
            KeyMaterial::MsChapV1 {
                password: Secret::NtHash(h),
                challenge,
            } => match key_length {
                mppe::KeyLength::Bits128 => {
                    let k = mppe::StartKey(mppe::get_start_key(
                        challenge,
                        &mschap::hash_nt_password_hash(h),
                    ));
                    Ok(mppe::StartKeys {
                        send: k.clone(),
                        recv: k,
                    })
                }
                _ => Err(
                    "MS-CHAPv1 with 40/56-bit MPPE needs the plaintext password (LAN \
                          Manager hash), but chap-secrets holds an NT hash; use MPPE-128 or \
                          MS-CHAPv2",
                ),
            },
            KeyMaterial::Direct { send, recv } => Ok(mppe::StartKeys {
                send: mppe::StartKey(*send),
                recv: mppe::StartKey(*recv),
            }),
        }
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyMaterial::MsChapV1 { .. } => "KeyMaterial::MsChapV1(..)",
            KeyMaterial::MsChapV2 { .. } => "KeyMaterial::MsChapV2(..)",
            KeyMaterial::Direct { .. } => "KeyMaterial::Direct(..)",
        })
    }
}

/// What the peer sent, for a verdict made outside the session (RADIUS): see
/// [`AuthServer::credentials`] and [`AuthServer::provide_verdict`].
#[derive(Clone, PartialEq, Eq)]
pub enum PeerCredentials {
    Pap {
        user: Vec<u8>,
        password: Vec<u8>,
    },
    ChapMd5 {
        user: Vec<u8>,
        id: u8,
        challenge: Vec<u8>,
        response: Vec<u8>,
    },
    MsChapV1 {
        user: Vec<u8>,
        id: u8,
        challenge: [u8; 8],
        lm_response: [u8; 24],
        nt_response: [u8; 24],
        flags: u8,
    },
    MsChapV2 {
        user: Vec<u8>,
        id: u8,
        challenge: [u8; 16],
        peer_challenge: [u8; 16],
        nt_response: [u8; 24],
        flags: u8,
    },
}

impl std::fmt::Debug for PeerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, user) = match self {
            PeerCredentials::Pap { user, .. } => ("Pap", user),
            PeerCredentials::ChapMd5 { user, .. } => ("ChapMd5", user),
            PeerCredentials::MsChapV1 { user, .. } => ("MsChapV1", user),
            PeerCredentials::MsChapV2 { user, .. } => ("MsChapV2", user),
        };
        write!(f, "PeerCredentials::{kind}({:?}, ..)", lossy(user))
    }
}

/// An external verdict on [`PeerCredentials`].
#[derive(Clone, PartialEq, Eq)]
pub enum ExternalVerdict {
    /// Accepted. `message`: the Success text; for MS-CHAPv2 it must hold the authenticator
    /// response `S=<40 hex digits>` (RADIUS MS-CHAP2-Success without its Ident octet; ` M=`
    /// is added as in the local path when missing), else the verdict is a failure (the peer
    /// would refuse us anyway). `mppe_keys`: (send, recv) start keys from the authenticator's
    /// point of view (MS-MPPE-Send-Key, MS-MPPE-Recv-Key).
    Accept {
        message: Option<String>,
        mppe_keys: Option<([u8; 16], [u8; 16])>,
    },
    /// Refused. `message`: the Failure text to send instead of the usual one (for MS-CHAP,
    /// RADIUS MS-CHAP-Error without its Ident octet); only used when no retry follows.
    Reject { message: Option<String> },
}

impl std::fmt::Debug for ExternalVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExternalVerdict::Accept { message, mppe_keys } => f
                .debug_struct("Accept")
                .field("message", message)
                .field("mppe_keys", &mppe_keys.is_some())
                .finish(),
            ExternalVerdict::Reject { message } => {
                f.debug_struct("Reject").field("message", message).finish()
            }
        }
    }
}

/// Outputs of either role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutput {
    /// Send this control packet with this protocol.
    Send(Protocol, Vec<u8>),
    /// Server: look up the secret for this name, answer with `provide_secret`.
    NeedSecret(String),
    /// Done, successfully. `peer_name`: the client's user name (server role) or the server's
    /// CHAP name (client role; empty for PAP).
    Success {
        peer_name: String,
        method: AuthMethod,
        keys: Option<KeyMaterial>,
    },
    /// Done, unsuccessfully: the session terminates the link with `reason`.
    Failure {
        peer_name: String,
        method: AuthMethod,
        reason: String,
    },
}

/// CHAP codes (RFC 1994 §4).
mod chap {
    pub const CHALLENGE: u8 = 1;
    pub const RESPONSE: u8 = 2;
    pub const SUCCESS: u8 = 3;
    pub const FAILURE: u8 = 4;
}

/// PAP codes (RFC 1334 §2.2).
mod pap {
    pub const REQUEST: u8 = 1;
    pub const ACK: u8 = 2;
    pub const NAK: u8 = 3;
}

fn packet(code: u8, id: u8, data: &[u8]) -> Vec<u8> {
    emit_control(Code::from_number(code), id, data)
}

/// pppd's texts.
const CHAP_GRANTED: &str = "Access granted";
const CHAP_DENIED: &str = "Access denied";
const PAP_OK: &[u8] = b"Login ok";
const PAP_BAD: &[u8] = b"Login incorrect";

fn random<const N: usize>(e: &mut dyn Entropy) -> [u8; N] {
    let mut b = [0u8; N];
    e.fill(&mut b);
    b
}

/// CHAP Challenge/Response body (RFC 1994 §4.1): Value-Size, Value, Name.
fn parse_value_name(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&size, rest) = data.split_first()?;
    let size = usize::from(size);
    let value = rest.get(..size)?;
    let name = rest.get(size..)?;
    Some((value, name))
}

fn value_name(value: &[u8], name: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(1 + value.len() + name.len());
    d.push(value.len() as u8);
    d.extend_from_slice(value);
    d.extend_from_slice(name);
    d
}

/// PAP Authenticate-Request body (RFC 1334 §2.2.1): Peer-ID and Password, each with a length.
fn parse_pap_request(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&idlen, rest) = data.split_first()?;
    let id = rest.get(..usize::from(idlen))?;
    let rest = rest.get(usize::from(idlen)..)?;
    let (&pwlen, rest) = rest.split_first()?;
    let pw = rest.get(..usize::from(pwlen))?;
    Some((id, pw))
}

/// PAP Ack/Nak body: Msg-Length, Message.
fn pap_message(msg: &[u8]) -> Vec<u8> {
    let mut d = vec![msg.len() as u8];
    d.extend_from_slice(msg);
    d
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---- authenticator (server) -------------------------------------------------------------

#[derive(Debug, Clone)]
enum ServerState {
    Idle,
    /// CHAP: our Challenge `id` is outstanding.
    ChallengeSent {
        id: u8,
        challenge: Vec<u8>,
        sent: u32,
        deadline: Instant,
    },
    /// PAP: waiting for an Authenticate-Request.
    PapWaiting {
        deadline: Instant,
    },
    /// A response arrived; waiting for the daemon's secret.
    AwaitingSecret {
        id: u8,
        challenge: Vec<u8>,
        name: Vec<u8>,
        value: Vec<u8>,
    },
    /// Verdict given: repeat it if the same response comes again.
    Done {
        id: u8,
        packet: Vec<u8>,
    },
}

/// The authenticator's side of one exchange.
#[derive(Debug, Clone)]
pub struct AuthServer {
    method: AuthMethod,
    policy: AuthPolicy,
    our_name: String,
    state: ServerState,
    next_id: u8,
    failures: u32,
    out: Vec<AuthOutput>,
}

impl AuthServer {
    pub fn new(method: AuthMethod, policy: AuthPolicy, our_name: String, first_id: u8) -> Self {
        AuthServer {
            method,
            policy,
            our_name,
            state: ServerState::Idle,
            next_id: first_id,
            failures: 0,
            out: Vec::new(),
        }
    }

    pub fn method(&self) -> AuthMethod {
        self.method
    }

    pub fn drain(&mut self) -> Vec<AuthOutput> {
        std::mem::take(&mut self.out)
    }

    /// `true` while a secret was asked for and not yet provided.
    pub fn awaiting_secret(&self) -> bool {
        matches!(self.state, ServerState::AwaitingSecret { .. })
    }

    /// Begins authentication (LCP is Opened).
    pub fn start(&mut self, now: Instant, entropy: &mut dyn Entropy) {
        match self.method {
            AuthMethod::Pap => {
                self.state = ServerState::PapWaiting {
                    deadline: now + self.policy.pap_wait,
                }
            }
            _ => {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                let challenge = self.fresh_challenge(entropy);
                self.send_challenge(now, id, challenge, 0);
            }
        }
    }

    fn fresh_challenge(&self, entropy: &mut dyn Entropy) -> Vec<u8> {
        let mut c = vec![0u8; self.method.challenge_len()];
        entropy.fill(&mut c);
        c
    }

    fn send_challenge(&mut self, now: Instant, id: u8, challenge: Vec<u8>, sent: u32) {
        let data = value_name(&challenge, self.our_name.as_bytes());
        self.out.push(AuthOutput::Send(
            Protocol::Chap,
            packet(chap::CHALLENGE, id, &data),
        ));
        self.state = ServerState::ChallengeSent {
            id,
            challenge,
            sent: sent + 1,
            deadline: now + self.policy.restart,
        };
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            ServerState::ChallengeSent { deadline, .. } | ServerState::PapWaiting { deadline } => {
                Some(*deadline)
            }
            _ => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match std::mem::replace(&mut self.state, ServerState::Idle) {
            ServerState::ChallengeSent {
                id,
                challenge,
                sent,
                deadline,
            } if deadline <= now => {
                if sent >= self.policy.max_transmits {
                    self.out.push(AuthOutput::Failure {
                        peer_name: String::new(),
                        method: self.method,
                        reason: "Peer failed to respond to CHAP challenge".into(),
                    });
                } else {
                    self.send_challenge(now, id, challenge, sent);
                }
            }
            ServerState::PapWaiting { deadline } if deadline <= now => {
                self.out.push(AuthOutput::Failure {
                    peer_name: String::new(),
                    method: self.method,
                    reason: "No response to PAP authenticate-requests".into(),
                });
            }
            other => self.state = other,
        }
    }

    /// A CHAP or PAP packet from the peer.
    pub fn input(&mut self, protocol: Protocol, pkt: ControlPacket<'_>) {
        if protocol != self.method.protocol() {
            return;
        }
        match (protocol, pkt.code.number()) {
            (Protocol::Chap, chap::RESPONSE) => self.chap_response(pkt),
            (Protocol::Pap, pap::REQUEST) => self.pap_request(pkt),
            _ => {} // Codes an authenticator does not expect: ignored (as pppd).
        }
    }

    fn chap_response(&mut self, pkt: ControlPacket<'_>) {
        match &self.state {
            ServerState::ChallengeSent { id, challenge, .. } if *id == pkt.id => {
                let Some((value, name)) = parse_value_name(pkt.data) else {
                    return; // Malformed: ignore, the Challenge will be retransmitted.
                };
                let challenge = challenge.clone();
                self.out.push(AuthOutput::NeedSecret(lossy(name)));
                self.state = ServerState::AwaitingSecret {
                    id: pkt.id,
                    challenge,
                    name: name.to_vec(),
                    value: value.to_vec(),
                };
            }
            ServerState::Done { id, packet } if *id == pkt.id => {
                // Our Success/Failure was lost: say it again (RFC 1994 §4.2).
                self.out
                    .push(AuthOutput::Send(Protocol::Chap, packet.clone()));
            }
            _ => {} // Stale identifier or duplicate while we wait for the secret.
        }
    }

    fn pap_request(&mut self, pkt: ControlPacket<'_>) {
        match &self.state {
            ServerState::PapWaiting { .. } => {
                let Some((user, password)) = parse_pap_request(pkt.data) else {
                    return;
                };
                self.out.push(AuthOutput::NeedSecret(lossy(user)));
                self.state = ServerState::AwaitingSecret {
                    id: pkt.id,
                    challenge: Vec::new(),
                    name: user.to_vec(),
                    value: password.to_vec(),
                };
            }
            ServerState::Done { packet, .. } => {
                // Repeated request after our verdict: repeat it with the new Identifier.
                let mut p = packet.clone();
                if let Some(b) = p.get_mut(1) {
                    *b = pkt.id;
                }
                self.out.push(AuthOutput::Send(Protocol::Pap, p));
            }
            _ => {}
        }
    }

    /// The daemon's answer to [`AuthOutput::NeedSecret`]: the secret, or `None` for an unknown
    /// user.
    pub fn provide_secret(
        &mut self,
        now: Instant,
        secret: Option<&Secret>,
        entropy: &mut dyn Entropy,
    ) {
        let ServerState::AwaitingSecret {
            id,
            challenge,
            name,
            value,
        } = std::mem::replace(&mut self.state, ServerState::Idle)
        else {
            return;
        };
        let peer_name = lossy(&name);
        let verdict = secret.and_then(|s| self.verify(s, &challenge, id, &name, &value));
        match verdict {
            Some((message, keys)) => self.succeed(id, peer_name, message, keys),
            None => {
                let reason = match (self.method, secret) {
                    (AuthMethod::ChapMd5, Some(Secret::NtHash(_))) => CHAP_MD5_NEEDS_PLAINTEXT,
                    _ => "Authentication failed",
                };
                self.fail(now, id, &challenge, peer_name, reason, entropy, None)
            }
        }
    }

    /// While a secret is awaited: what the peer sent, for an external verdict. `None` when
    /// nothing is awaited or the response does not parse for the method.
    pub fn credentials(&self) -> Option<PeerCredentials> {
        let ServerState::AwaitingSecret {
            id,
            challenge,
            name,
            value,
        } = &self.state
        else {
            return None;
        };
        let (id, user) = (*id, name.clone());
        Some(match self.method {
            AuthMethod::Pap => PeerCredentials::Pap {
                user,
                password: value.clone(),
            },
            AuthMethod::ChapMd5 => PeerCredentials::ChapMd5 {
                user,
                id,
                challenge: challenge.clone(),
                response: value.clone(),
            },
            AuthMethod::MsChapV1 => {
                let r = mschap::v1::Response::parse(value).ok()?;
                PeerCredentials::MsChapV1 {
                    user,
                    id,
                    challenge: challenge.as_slice().try_into().ok()?,
                    lm_response: r.lm_response,
                    nt_response: r.nt_response,
                    flags: r.use_nt as u8,
                }
            }
            AuthMethod::MsChapV2 => {
                let r = mschap::v2::Response::parse(value).ok()?;
                PeerCredentials::MsChapV2 {
                    user,
                    id,
                    challenge: challenge.as_slice().try_into().ok()?,
                    peer_challenge: r.peer_challenge,
                    nt_response: r.nt_response,
                    flags: r.flags,
                }
            }
        })
    }

    /// The answer to [`AuthOutput::NeedSecret`] when the daemon decided elsewhere (RADIUS)
    /// instead of giving a secret: see [`ExternalVerdict`].
    pub fn provide_verdict(
        &mut self,
        now: Instant,
        verdict: ExternalVerdict,
        entropy: &mut dyn Entropy,
    ) {
        let creds = self.credentials();
        let ServerState::AwaitingSecret {
            id,
            challenge,
            name,
            ..
        } = std::mem::replace(&mut self.state, ServerState::Idle)
        else {
            return;
        };
        let peer_name = lossy(&name);
        let accepted = match (verdict, creds) {
            (ExternalVerdict::Accept { message, mppe_keys }, Some(creds)) => {
                let keys = mppe_keys.map(|(send, recv)| KeyMaterial::Direct { send, recv });
                match (self.method, &creds) {
                    (AuthMethod::MsChapV2, PeerCredentials::MsChapV2 { flags, .. }) => {
                        let m = message.unwrap_or_default();
                        let valid = m.len() >= 42
                            && m.starts_with("S=")
                            && m.get(2..42)
                                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                        if !valid {
                            Err(None)
                        } else if m.contains(" M=") || *flags != 0 {
                            Ok((m.into_bytes(), keys))
                        } else {
                            Ok((format!("{m} M={CHAP_GRANTED}").into_bytes(), keys))
                        }
                    }
                    (AuthMethod::Pap, _) => Ok((
                        message
                            .map(String::into_bytes)
                            .unwrap_or_else(|| PAP_OK.to_vec()),
                        None,
                    )),
                    _ => Ok((
                        message
                            .map(String::into_bytes)
                            .unwrap_or_else(|| CHAP_GRANTED.as_bytes().to_vec()),
                        keys,
                    )),
                }
            }
            (ExternalVerdict::Accept { .. }, None) => Err(None),
            (ExternalVerdict::Reject { message }, _) => Err(message),
        };
        match accepted {
            Ok((message, keys)) => self.succeed(id, peer_name, message, keys),
            Err(text) => self.fail(
                now,
                id,
                &challenge,
                peer_name,
                "Authentication failed",
                entropy,
                text,
            ),
        }
    }

    /// Sends Success / Ack with `message` and ends the exchange.
    fn succeed(&mut self, id: u8, peer_name: String, message: Vec<u8>, keys: Option<KeyMaterial>) {
        let packet = match self.method {
            AuthMethod::Pap => packet(pap::ACK, id, &pap_message(&message)),
            _ => packet(chap::SUCCESS, id, &message),
        };
        self.out
            .push(AuthOutput::Send(self.method.protocol(), packet.clone()));
        self.out.push(AuthOutput::Success {
            peer_name,
            method: self.method,
            keys,
        });
        self.state = ServerState::Done { id, packet };
    }

    /// Checks a response; on success returns the Success message and the MPPE key material.
    fn verify(
        &self,
        secret: &Secret,
        challenge: &[u8],
        id: u8,
        name: &[u8],
        value: &[u8],
    ) -> Option<(Vec<u8>, Option<KeyMaterial>)> {
        match self.method {
            AuthMethod::Pap => {
                let ok = match secret {
                    Secret::Plain(p) => mschap::ct_eq(p.as_bytes(), value),
                    // The offered password, hashed as MS-CHAP would (a non-UTF-8 one has no
                    // UTF-16 form and cannot match).
                    Secret::NtHash(h) => std::str::from_utf8(value)
                        .is_ok_and(|p| mschap::ct_eq(&mschap::nt_password_hash(p), h)),
                };
                ok.then(|| (PAP_OK.to_vec(), None))
            }
            AuthMethod::ChapMd5 => {
                let Secret::Plain(p) = secret else {
                    return None;
                };
                crate::chap_md5::verify(id, p.as_bytes(), challenge, value)
                    .then(|| (CHAP_GRANTED.as_bytes().to_vec(), None))
            }
            AuthMethod::MsChapV1 => {
                let ch: [u8; 8] = challenge.try_into().ok()?;
                let resp = mschap::v1::Response::parse(value).ok()?;
                // The NT response only (an LM-only response is refused), constant time.
                let expected = mschap::challenge_response(&ch, &secret.nt_hash());
                (resp.use_nt && mschap::ct_eq(&expected, &resp.nt_response)).then(|| {
                    (
                        CHAP_GRANTED.as_bytes().to_vec(),
                        Some(KeyMaterial::MsChapV1 {
                            password: secret.clone(),
                            challenge: ch,
                        }),
                    )
                })
            }
            AuthMethod::MsChapV2 => {
                let ch: [u8; 16] = challenge.try_into().ok()?;
                let resp = mschap::v2::Response::parse(value).ok()?;
                let hash = secret.nt_hash();
                let expected = mschap::v2::generate_nt_response_from_hash(
                    &ch,
                    &resp.peer_challenge,
                    name,
                    &hash,
                );
                if !mschap::ct_eq(&expected, &resp.nt_response) {
                    return None;
                }
                let auth = mschap::v2::generate_authenticator_response_from_hash_hash(
                    &mschap::hash_nt_password_hash(&hash),
                    &resp.nt_response,
                    &resp.peer_challenge,
                    &ch,
                    name,
                );
                // pppd leaves out " M=..." for peers that set Flags (Windows 98).
                let text = if resp.flags != 0 { "" } else { CHAP_GRANTED };
                Some((
                    mschap::v2::success_message(&auth, text).into_bytes(),
                    Some(KeyMaterial::MsChapV2 {
                        password: secret.clone(),
                        nt_response: resp.nt_response,
                    }),
                ))
            }
        }
    }

    /// Sends Failure / Nak (`text` replaces its message when no retry follows: an external
    /// verdict's) and ends or retries the exchange.
    #[allow(clippy::too_many_arguments)]
    fn fail(
        &mut self,
        now: Instant,
        id: u8,
        challenge: &[u8],
        peer_name: String,
        reason: &str,
        entropy: &mut dyn Entropy,
        text: Option<String>,
    ) {
        self.failures = self.failures.saturating_add(1);
        let retry = self.failures <= self.policy.max_retries;
        // The challenge the retry must answer (MS-CHAP puts it into the Failure message).
        let next_challenge = if retry {
            self.fresh_challenge(entropy)
        } else {
            challenge.to_vec()
        };
        let err = mschap::error_code::AUTHENTICATION_FAILURE;
        let message: Vec<u8> = match self.method {
            AuthMethod::Pap => pap_message(PAP_BAD),
            AuthMethod::ChapMd5 => CHAP_DENIED.as_bytes().to_vec(),
            AuthMethod::MsChapV1 => {
                let c: [u8; 8] = next_challenge.as_slice().try_into().unwrap_or_default();
                mschap::v1::failure_message(err, retry, &c).into_bytes()
            }
            AuthMethod::MsChapV2 => {
                let c: [u8; 16] = next_challenge.as_slice().try_into().unwrap_or_default();
                mschap::v2::failure_message(err, retry, &c, CHAP_DENIED).into_bytes()
            }
        };
        // An external verdict's text replaces the message when no retry follows.
        let message = match text {
            Some(t) if !retry && self.method == AuthMethod::Pap => pap_message(t.as_bytes()),
            Some(t) if !retry => t.into_bytes(),
            _ => message,
        };
        let code = match self.method {
            AuthMethod::Pap => pap::NAK,
            _ => chap::FAILURE,
        };
        let packet = packet(code, id, &message);
        self.out
            .push(AuthOutput::Send(self.method.protocol(), packet.clone()));
        if !retry {
            self.out.push(AuthOutput::Failure {
                peer_name,
                method: self.method,
                reason: reason.into(),
            });
            self.state = ServerState::Done { id, packet };
            return;
        }
        match self.method {
            AuthMethod::Pap => {
                self.state = ServerState::PapWaiting {
                    deadline: now + self.policy.pap_wait,
                }
            }
            AuthMethod::ChapMd5 => {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                self.send_challenge(now, id, next_challenge, 0);
            }
            AuthMethod::MsChapV1 | AuthMethod::MsChapV2 => {
                // The peer answers the Failure's C= with Identifier + 1; a timeout sends that
                // challenge in a regular Challenge packet.
                let id = id.wrapping_add(1);
                self.next_id = id.wrapping_add(1);
                self.state = ServerState::ChallengeSent {
                    id,
                    challenge: next_challenge,
                    sent: 0,
                    deadline: now + self.policy.restart,
                };
            }
        }
    }
}

// ---- authenticatee (client) -------------------------------------------------------------

#[derive(Debug, Clone)]
enum ClientState {
    Idle,
    /// CHAP: waiting for a Challenge.
    WaitChallenge,
    /// Our Response / Authenticate-Request `id` is outstanding.
    Sent {
        id: u8,
        packet: Vec<u8>,
        sent: u32,
        deadline: Instant,
        /// Challenge we answered (the MS-CHAPv1 key material).
        challenge: Vec<u8>,
        /// MS-CHAPv2: the NT-Response we sent and the authenticator response we expect.
        nt_response: [u8; 24],
        expected_auth: Option<[u8; 20]>,
        server_name: String,
    },
    Done,
}

/// The authenticatee's side.
#[derive(Debug, Clone)]
pub struct AuthClient {
    method: AuthMethod,
    policy: AuthPolicy,
    user: String,
    password: String,
    state: ClientState,
    give_up: Option<Instant>,
    next_id: u8,
    out: Vec<AuthOutput>,
}

impl AuthClient {
    pub fn new(
        method: AuthMethod,
        policy: AuthPolicy,
        user: String,
        password: String,
        first_id: u8,
    ) -> Self {
        AuthClient {
            method,
            policy,
            user,
            password,
            state: ClientState::Idle,
            give_up: None,
            next_id: first_id,
            out: Vec::new(),
        }
    }

    pub fn method(&self) -> AuthMethod {
        self.method
    }

    pub fn drain(&mut self) -> Vec<AuthOutput> {
        std::mem::take(&mut self.out)
    }

    pub fn start(&mut self, now: Instant) {
        self.give_up = Some(now + self.policy.client_timeout);
        match self.method {
            AuthMethod::Pap => {
                let mut d = vec![self.user.len().min(255) as u8];
                d.extend_from_slice(&self.user.as_bytes()[..self.user.len().min(255)]);
                d.push(self.password.len().min(255) as u8);
                d.extend_from_slice(&self.password.as_bytes()[..self.password.len().min(255)]);
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                let packet = packet(pap::REQUEST, id, &d);
                self.send(now, id, packet, 0, Vec::new(), [0; 24], None, String::new());
            }
            _ => self.state = ClientState::WaitChallenge,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        now: Instant,
        id: u8,
        packet: Vec<u8>,
        sent: u32,
        challenge: Vec<u8>,
        nt_response: [u8; 24],
        expected_auth: Option<[u8; 20]>,
        server_name: String,
    ) {
        self.out
            .push(AuthOutput::Send(self.method.protocol(), packet.clone()));
        self.state = ClientState::Sent {
            id,
            packet,
            sent: sent + 1,
            deadline: now + self.policy.restart,
            challenge,
            nt_response,
            expected_auth,
            server_name,
        };
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let retransmit = match &self.state {
            ClientState::Sent { deadline, .. } => Some(*deadline),
            _ => None,
        };
        match (retransmit, self.give_up) {
            _ if matches!(self.state, ClientState::Done | ClientState::Idle) => None,
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, ClientState::Done | ClientState::Idle) {
            return;
        }
        if matches!(self.give_up, Some(t) if t <= now) {
            self.finish_failure(String::new(), "Authentication timed out".into());
            return;
        }
        if let ClientState::Sent {
            id,
            packet,
            sent,
            deadline,
            ..
        } = &mut self.state
        {
            if *deadline > now {
                return;
            }
            if *sent >= self.policy.max_transmits {
                let reason = if self.method == AuthMethod::Pap {
                    "No response to PAP authenticate-requests"
                } else {
                    "No response to CHAP response"
                };
                self.finish_failure(String::new(), reason.into());
                return;
            }
            *sent += 1;
            *deadline = now + self.policy.restart;
            let _ = id;
            self.out
                .push(AuthOutput::Send(self.method.protocol(), packet.clone()));
        }
    }

    fn finish_failure(&mut self, peer_name: String, reason: String) {
        self.state = ClientState::Done;
        self.out.push(AuthOutput::Failure {
            peer_name,
            method: self.method,
            reason,
        });
    }

    pub fn input(
        &mut self,
        now: Instant,
        protocol: Protocol,
        pkt: ControlPacket<'_>,
        entropy: &mut dyn Entropy,
    ) {
        if protocol != self.method.protocol() || matches!(self.state, ClientState::Done) {
            return;
        }
        match (protocol, pkt.code.number()) {
            (Protocol::Chap, chap::CHALLENGE) => self.chap_challenge(now, pkt, entropy),
            (Protocol::Chap, chap::SUCCESS) | (Protocol::Pap, pap::ACK) => self.verdict(pkt, true),
            (Protocol::Chap, chap::FAILURE) | (Protocol::Pap, pap::NAK) => self.verdict(pkt, false),
            _ => {}
        }
    }

    fn chap_challenge(&mut self, now: Instant, pkt: ControlPacket<'_>, entropy: &mut dyn Entropy) {
        let Some((challenge, name)) = parse_value_name(pkt.data) else {
            return;
        };
        if let ClientState::Sent {
            id,
            packet,
            challenge: c,
            ..
        } = &self.state
        {
            if *id == pkt.id && c.as_slice() == challenge {
                // Retransmitted Challenge: the same Response again (pppd caches it too).
                self.out
                    .push(AuthOutput::Send(Protocol::Chap, packet.clone()));
                return;
            }
        }
        let user = self.user.as_bytes();
        let (value, nt_response, expected_auth): (Vec<u8>, [u8; 24], Option<[u8; 20]>) = match self
            .method
        {
            AuthMethod::ChapMd5 => (
                crate::chap_md5::response(pkt.id, self.password.as_bytes(), challenge).to_vec(),
                [0; 24],
                None,
            ),
            AuthMethod::MsChapV1 => {
                let Ok(ch) = <[u8; 8]>::try_from(challenge) else {
                    return;
                };
                let r = mschap::v1::Response::generate(&ch, &self.password);
                (r.to_bytes().to_vec(), r.nt_response, None)
            }
            AuthMethod::MsChapV2 => {
                let Ok(ch) = <[u8; 16]>::try_from(challenge) else {
                    return;
                };
                let peer_challenge: [u8; 16] = random(entropy);
                let r = mschap::v2::Response::generate(&ch, &peer_challenge, user, &self.password);
                let auth = mschap::v2::generate_authenticator_response(
                    &self.password,
                    &r.nt_response,
                    &peer_challenge,
                    &ch,
                    user,
                );
                (r.to_bytes().to_vec(), r.nt_response, Some(auth))
            }
            AuthMethod::Pap => return,
        };
        let packet = packet(chap::RESPONSE, pkt.id, &value_name(&value, user));
        self.send(
            now,
            pkt.id,
            packet,
            0,
            challenge.to_vec(),
            nt_response,
            expected_auth,
            lossy(name),
        );
    }

    fn verdict(&mut self, pkt: ControlPacket<'_>, success: bool) {
        let ClientState::Sent {
            id,
            challenge,
            nt_response,
            expected_auth,
            server_name,
            ..
        } = &self.state
        else {
            return;
        };
        if *id != pkt.id {
            return;
        }
        let server_name = server_name.clone();
        if !success {
            let text = match self.method {
                AuthMethod::Pap => pkt.data.get(1..).map(lossy).unwrap_or_default(),
                _ => lossy(pkt.data),
            };
            let reason = if text.is_empty() {
                "Failed to authenticate ourselves to peer".to_string()
            } else {
                format!("Failed to authenticate ourselves to peer ({text})")
            };
            self.finish_failure(server_name, reason);
            return;
        }
        let keys = match self.method {
            AuthMethod::MsChapV2 => {
                let ok = match (mschap::v2::parse_success(pkt.data), expected_auth) {
                    (Ok(s), Some(exp)) => {
                        mschap::v2::authenticator_response_matches(exp, &s.auth_response)
                    }
                    _ => false,
                };
                if !ok {
                    self.finish_failure(
                        server_name,
                        "MS-CHAPv2 mutual authentication failed".into(),
                    );
                    return;
                }
                Some(KeyMaterial::MsChapV2 {
                    password: Secret::Plain(self.password.clone()),
                    nt_response: *nt_response,
                })
            }
            AuthMethod::MsChapV1 => {
                <[u8; 8]>::try_from(challenge.as_slice())
                    .ok()
                    .map(|c| KeyMaterial::MsChapV1 {
                        password: Secret::Plain(self.password.clone()),
                        challenge: c,
                    })
            }
            _ => None,
        };
        self.state = ClientState::Done;
        self.out.push(AuthOutput::Success {
            peer_name: server_name,
            method: self.method,
            keys,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);
    impl Entropy for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.0;
                self.0 = self.0.wrapping_add(1);
            }
        }
    }

    fn sends(out: &[AuthOutput]) -> Vec<(Protocol, Vec<u8>)> {
        out.iter()
            .filter_map(|o| match o {
                AuthOutput::Send(p, b) => Some((*p, b.clone())),
                _ => None,
            })
            .collect()
    }

    fn parse(b: &[u8]) -> ControlPacket<'_> {
        ControlPacket::parse(b).unwrap()
    }

    /// Drives a server and a client against each other; returns both outputs' final events.
    fn exchange(
        method: AuthMethod,
        server_secret: &str,
        client_password: &str,
    ) -> (Vec<AuthOutput>, Vec<AuthOutput>) {
        exchange_with(method, &server_secret.into(), client_password)
    }

    fn exchange_with(
        method: AuthMethod,
        server_secret: &Secret,
        client_password: &str,
    ) -> (Vec<AuthOutput>, Vec<AuthOutput>) {
        let t0 = Instant::now();
        let mut e = Counter(1);
        let policy = AuthPolicy::default();
        let mut s = AuthServer::new(method, policy.clone(), "pptpd".into(), 0xe8);
        let mut c = AuthClient::new(method, policy, "user1".into(), client_password.into(), 1);
        s.start(t0, &mut e);
        c.start(t0);
        let mut s_events = Vec::new();
        let mut c_events = Vec::new();
        for _ in 0..10 {
            let so = s.drain();
            let co = c.drain();
            if so.is_empty() && co.is_empty() {
                break;
            }
            for o in so {
                match o {
                    AuthOutput::Send(p, b) => c.input(t0, p, parse(&b), &mut e),
                    AuthOutput::NeedSecret(name) => {
                        assert_eq!(name, "user1");
                        s.provide_secret(t0, Some(server_secret), &mut e);
                    }
                    other => s_events.push(other),
                }
            }
            for o in co {
                match o {
                    AuthOutput::Send(p, b) => s.input(p, parse(&b)),
                    other => c_events.push(other),
                }
            }
        }
        (s_events, c_events)
    }

    #[test]
    fn every_method_succeeds_and_fails() {
        for m in [
            AuthMethod::Pap,
            AuthMethod::ChapMd5,
            AuthMethod::MsChapV1,
            AuthMethod::MsChapV2,
        ] {
            let (s, c) = exchange(m, "password1", "password1");
            assert!(
                matches!(&s[..], [AuthOutput::Success { peer_name, method, keys }]
                if peer_name == "user1" && *method == m && keys.is_some() == m.provides_mppe_keys()),
                "{m}: {s:?}"
            );
            assert!(
                matches!(&c[..], [AuthOutput::Success { method, keys, .. }]
                if *method == m && keys.is_some() == m.provides_mppe_keys()),
                "{m}: {c:?}"
            );
            if m != AuthMethod::Pap {
                assert!(
                    matches!(&c[0], AuthOutput::Success { peer_name, .. } if peer_name == "pptpd")
                );
            }
            let (s, c) = exchange(m, "password1", "wrong");
            assert!(
                matches!(&s[..], [AuthOutput::Failure { reason, .. }] if reason == "Authentication failed"),
                "{m}: {s:?}"
            );
            assert!(
                matches!(&c[..], [AuthOutput::Failure { reason, .. }] if reason.starts_with("Failed to authenticate ourselves")),
                "{m}: {c:?}"
            );
        }
    }

    #[test]
    fn mschapv2_keys_agree() {
        let (s, c) = exchange(AuthMethod::MsChapV2, "password1", "password1");
        let (
            AuthOutput::Success { keys: Some(ks), .. },
            AuthOutput::Success { keys: Some(kc), .. },
        ) = (&s[0], &c[0])
        else {
            panic!()
        };
        assert_eq!(ks, kc);
    }

    #[test]
    fn nt_hash_secrets_serve_ms_chap_and_pap_with_the_same_keys_but_not_chap_md5() {
        use crate::mppe::KeyLength;
        let hash = Secret::NtHash(mschap::nt_password_hash("password1"));
        for m in [AuthMethod::Pap, AuthMethod::MsChapV1, AuthMethod::MsChapV2] {
            let (plain, _) = exchange(m, "password1", "password1");
            let (hashed, c) = exchange_with(m, &hash, "password1");
            let (
                [AuthOutput::Success { keys: kp, .. }],
                [AuthOutput::Success { keys: kh, .. }],
                [AuthOutput::Success { keys: kc, .. }],
            ) = (&plain[..], &hashed[..], &c[..])
            else {
                panic!("{m}: {plain:?} / {hashed:?} / {c:?}");
            };
            // Same MPPE keys from the hash as from the password, on both ends.
            for (len, server) in [(KeyLength::Bits128, true), (KeyLength::Bits128, false)] {
                let k = |k: &Option<KeyMaterial>| k.as_ref().map(|k| k.start_keys(len, server));
                assert_eq!(k(kp), k(kh), "{m}");
                assert_eq!(k(kc), k(kh), "{m}");
            }
            assert_eq!(kh.is_some(), m.provides_mppe_keys());
            // A wrong password still fails.
            let (s, _) = exchange_with(m, &hash, "password2");
            assert!(
                matches!(&s[..], [AuthOutput::Failure { reason, .. }] if reason == "Authentication failed"),
                "{m}: {s:?}"
            );
        }
        // MS-CHAPv1 40/56-bit keys need the LAN Manager hash: refused, not wrong keys.
        let (s, _) = exchange_with(AuthMethod::MsChapV1, &hash, "password1");
        let [AuthOutput::Success { keys: Some(k), .. }] = &s[..] else {
            panic!("{s:?}")
        };
        assert!(k.start_keys(KeyLength::Bits40, true).is_err());
        assert!(k.start_keys(KeyLength::Bits56, true).is_err());
        // CHAP-MD5 cannot use a hash, whatever the password: a failure that says why.
        let (s, _) = exchange_with(AuthMethod::ChapMd5, &hash, "password1");
        assert!(
            matches!(&s[..], [AuthOutput::Failure { reason, .. }] if reason == CHAP_MD5_NEEDS_PLAINTEXT),
            "{s:?}"
        );
        // A PAP password that is not UTF-8 cannot match a hash (and does not panic).
        let (s, _) = exchange_with(AuthMethod::Pap, &hash, "password\u{fffd}");
        assert!(matches!(&s[..], [AuthOutput::Failure { .. }]), "{s:?}");
        assert_eq!(format!("{hash:?}"), "Secret::NtHash(..)");
    }

    /// The exchange of the reference capture, replayed against our authenticator with the
    /// captured challenge: the Success message must be byte-identical to pppd's.
    #[test]
    fn reference_mschapv2_exchange() {
        let challenge = hex("b2bde04883817d588877d2832205b026");
        let response = hex(
            "02e8003b3172953313130bf4478af31fdc64506a600000000000000000cf5dc72ffeeef824b7fbb55d053e016a59df53dd4f48b539007573657231",
        );
        let success = hex(
            "03e8003f533d41333641364638343644413446333031394143323142434138413642323233463046384136424135204d3d416363657373206772616e746564",
        );
        let t0 = Instant::now();
        struct Fixed(Vec<u8>);
        impl Entropy for Fixed {
            fn fill(&mut self, buf: &mut [u8]) {
                buf.copy_from_slice(&self.0[..buf.len()]);
            }
        }
        let mut e = Fixed(challenge.clone());
        let mut s = AuthServer::new(
            AuthMethod::MsChapV2,
            AuthPolicy::default(),
            "pptpd".into(),
            0xe8,
        );
        s.start(t0, &mut e);
        let out = sends(&s.drain());
        assert_eq!(
            out[0].1,
            hex("01e8001a10b2bde04883817d588877d2832205b0267070747064")
        );
        s.input(Protocol::Chap, parse(&response));
        assert_eq!(s.drain(), vec![AuthOutput::NeedSecret("user1".into())]);
        s.provide_secret(t0, Some(&"password1".into()), &mut e);
        let out = s.drain();
        assert_eq!(out[0], AuthOutput::Send(Protocol::Chap, success.clone()));
        assert!(
            matches!(&out[1], AuthOutput::Success { peer_name, method: AuthMethod::MsChapV2, keys: Some(_) } if peer_name == "user1")
        );
        // A repeated Response gets the same Success.
        s.input(Protocol::Chap, parse(&response));
        assert_eq!(s.drain(), vec![AuthOutput::Send(Protocol::Chap, success)]);
    }

    /// The bad-password capture: pppd's Failure format, with our R=0.
    #[test]
    fn reference_mschapv2_failure_format() {
        let t0 = Instant::now();
        let challenge = hex("dc8805f8024e7d2ec123a6e9fe019832");
        struct Fixed(Vec<u8>);
        impl Entropy for Fixed {
            fn fill(&mut self, buf: &mut [u8]) {
                buf.copy_from_slice(&self.0[..buf.len()]);
            }
        }
        let mut e = Fixed(challenge);
        let response = hex(
            "023f003b312be02dd690fe3c4d4170591ac60857330000000000000000eea3ce9050b7008647ef30346ef70c6c6f55dfb3bbe4818b007573657231",
        );
        let mut s = AuthServer::new(
            AuthMethod::MsChapV2,
            AuthPolicy::default(),
            "pptpd".into(),
            0x3f,
        );
        s.start(t0, &mut e);
        s.drain();
        s.input(Protocol::Chap, parse(&response));
        s.drain();
        s.provide_secret(t0, Some(&"password1".into()), &mut e);
        let out = s.drain();
        let AuthOutput::Send(_, pkt) = &out[0] else {
            panic!()
        };
        assert_eq!(pkt[0], 4);
        assert_eq!(
            std::str::from_utf8(&pkt[4..]).unwrap(),
            "E=691 R=0 C=dc8805f8024e7d2ec123a6e9fe019832 V=0 M=Access denied"
        );
        assert!(matches!(&out[1], AuthOutput::Failure { .. }));
    }

    #[test]
    fn challenge_retransmitted_then_given_up() {
        let t0 = Instant::now();
        let mut e = Counter(0);
        let mut s = AuthServer::new(AuthMethod::ChapMd5, AuthPolicy::default(), "srv".into(), 1);
        s.start(t0, &mut e);
        let first = sends(&s.drain());
        let mut t = t0;
        for _ in 1..10 {
            t += Duration::from_secs(3);
            s.handle_timeout(t);
            assert_eq!(sends(&s.drain()), first);
        }
        t += Duration::from_secs(3);
        s.handle_timeout(t);
        assert!(matches!(&s.drain()[..], [AuthOutput::Failure { .. }]));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn unknown_user_fails() {
        let t0 = Instant::now();
        let mut e = Counter(0);
        let mut s = AuthServer::new(AuthMethod::Pap, AuthPolicy::default(), "srv".into(), 1);
        s.start(t0, &mut e);
        let req = packet(pap::REQUEST, 5, &[2, b'm', b'e', 2, b'p', b'w']);
        s.input(Protocol::Pap, parse(&req));
        assert_eq!(s.drain(), vec![AuthOutput::NeedSecret("me".into())]);
        s.provide_secret(t0, None, &mut e);
        let out = s.drain();
        let mut nak = vec![3, 5, 0, 20, 15];
        nak.extend_from_slice(b"Login incorrect");
        assert_eq!(out[0], AuthOutput::Send(Protocol::Pap, nak));
        assert!(matches!(&out[1], AuthOutput::Failure { peer_name, .. } if peer_name == "me"));
    }

    #[test]
    fn retries_when_allowed() {
        // MS-CHAPv2 with one retry: the Failure says R=1 with a new challenge; a Response with
        // Identifier + 1 to that challenge succeeds.
        let t0 = Instant::now();
        let mut e = Counter(7);
        let policy = AuthPolicy {
            max_retries: 1,
            ..AuthPolicy::default()
        };
        let mut s = AuthServer::new(AuthMethod::MsChapV2, policy, "srv".into(), 10);
        s.start(t0, &mut e);
        let ch = sends(&s.drain());
        let chal: [u8; 16] = ch[0].1[5..21].try_into().unwrap();
        let bad = mschap::v2::Response::generate(&chal, &[9; 16], "u", "wrong");
        let resp = packet(chap::RESPONSE, 10, &value_name(&bad.to_bytes(), b"u"));
        s.input(Protocol::Chap, parse(&resp));
        s.drain();
        s.provide_secret(t0, Some(&"right".into()), &mut e);
        let out = sends(&s.drain());
        let msg = std::str::from_utf8(&out[0].1[4..]).unwrap().to_string();
        assert!(msg.starts_with("E=691 R=1 C="), "{msg}");
        let f = mschap::v2::parse_failure(msg.as_bytes()).unwrap();
        let next = f.challenge.unwrap();
        assert_ne!(next, chal);
        let good = mschap::v2::Response::generate(&next, &[9; 16], "u", "right");
        let resp = packet(chap::RESPONSE, 11, &value_name(&good.to_bytes(), b"u"));
        s.input(Protocol::Chap, parse(&resp));
        s.drain();
        s.provide_secret(t0, Some(&"right".into()), &mut e);
        assert!(matches!(&s.drain()[1], AuthOutput::Success { .. }));
    }

    #[test]
    fn client_rejects_forged_authenticator_response() {
        let t0 = Instant::now();
        let mut e = Counter(0);
        let mut c = AuthClient::new(
            AuthMethod::MsChapV2,
            AuthPolicy::default(),
            "u".into(),
            "p".into(),
            1,
        );
        c.start(t0);
        let ch = packet(chap::CHALLENGE, 4, &value_name(&[1; 16], b"srv"));
        c.input(t0, Protocol::Chap, parse(&ch), &mut e);
        assert_eq!(sends(&c.drain()).len(), 1);
        let forged = format!("S={} M=Access granted", "0".repeat(40));
        let ok = packet(chap::SUCCESS, 4, forged.as_bytes());
        c.input(t0, Protocol::Chap, parse(&ok), &mut e);
        assert!(
            matches!(&c.drain()[..], [AuthOutput::Failure { reason, .. }] if reason.contains("mutual"))
        );
    }

    #[test]
    fn client_retransmits_response_and_gives_up() {
        let t0 = Instant::now();
        let mut e = Counter(0);
        let mut c = AuthClient::new(
            AuthMethod::ChapMd5,
            AuthPolicy::default(),
            "u".into(),
            "p".into(),
            1,
        );
        c.start(t0);
        let ch = packet(chap::CHALLENGE, 4, &value_name(&[1; 16], b"srv"));
        c.input(t0, Protocol::Chap, parse(&ch), &mut e);
        let first = sends(&c.drain());
        // The same Challenge again: the same Response.
        c.input(t0, Protocol::Chap, parse(&ch), &mut e);
        assert_eq!(sends(&c.drain()), first);
        c.handle_timeout(t0 + Duration::from_secs(3));
        assert_eq!(sends(&c.drain()), first);
        c.handle_timeout(t0 + Duration::from_secs(60));
        assert!(matches!(&c.drain()[..], [AuthOutput::Failure { .. }]));
    }

    #[test]
    fn malformed_packets_are_ignored() {
        let t0 = Instant::now();
        let mut e = Counter(0);
        let mut s = AuthServer::new(AuthMethod::MsChapV2, AuthPolicy::default(), "srv".into(), 1);
        s.start(t0, &mut e);
        s.drain();
        for data in [&[][..], &[49][..], &[200, 1, 2][..]] {
            let resp = packet(chap::RESPONSE, 1, data);
            s.input(Protocol::Chap, parse(&resp));
            assert!(s.drain().is_empty());
        }
        // A well-formed packet with a short value: a failure, not a panic.
        let resp = packet(chap::RESPONSE, 1, &[3, 1, 2, 3, b'u']);
        s.input(Protocol::Chap, parse(&resp));
        s.drain();
        s.provide_secret(t0, Some(&"p".into()), &mut e);
        assert!(matches!(&s.drain()[1], AuthOutput::Failure { .. }));
        let mut c = AuthClient::new(
            AuthMethod::MsChapV1,
            AuthPolicy::default(),
            "u".into(),
            "p".into(),
            1,
        );
        c.start(t0);
        let ch = packet(chap::CHALLENGE, 4, &value_name(&[1; 5], b"srv"));
        c.input(t0, Protocol::Chap, parse(&ch), &mut e);
        assert!(c.drain().is_empty());
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
