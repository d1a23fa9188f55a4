//! Dynamic Authorization (RFC 5176) on the NAS side: Disconnect-Request and CoA-Request from
//! allowed clients only, checked (Request Authenticator, and Message-Authenticator when
//! present), and the ACK/NAK answers (with Error-Cause, signed like responses, RFC 5176 §2.3).
//!
//! Not handled here (the caller decides): which session the identification attributes name,
//! replay protection by Event-Timestamp (RFC 5176 §3.1 makes it optional).

use std::net::IpAddr;

use crate::attr;
use crate::crypto::{
    message_authenticator_placeholder, sign_response, verify_request, VerifyError,
};
use crate::packet::{Attr, Code, Packet};

/// A client allowed to send Disconnect/CoA requests: its address and shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DaeClient {
    pub addr: IpAddr,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for DaeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DaeClient({})", self.addr)
    }
}

/// Why a datagram on the DAE port is dropped without an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DaeError {
    #[error("Dynamic Authorization request from {0}, which is not an allowed client")]
    NotAllowed(IpAddr),
    #[error("Dynamic Authorization request from {from}: {err}")]
    Verify { from: IpAddr, err: VerifyError },
    #[error("RADIUS {code} from {from} is not a Disconnect-Request or CoA-Request")]
    NotARequest { from: IpAddr, code: Code },
}

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaeKind {
    Disconnect,
    Coa,
}

/// A verified request.
#[derive(Clone, PartialEq, Eq)]
pub struct DaeRequest {
    pub kind: DaeKind,
    pub packet: Packet,
    secret: Vec<u8>,
}

impl std::fmt::Debug for DaeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaeRequest")
            .field("kind", &self.kind)
            .field("packet", &self.packet)
            .finish_non_exhaustive()
    }
}

/// Checks a datagram that arrived from `from` on the DAE port.
pub fn parse_request(
    from: IpAddr,
    bytes: &[u8],
    clients: &[DaeClient],
) -> Result<DaeRequest, DaeError> {
    let client = clients
        .iter()
        .find(|c| c.addr == from)
        .ok_or(DaeError::NotAllowed(from))?;
    let packet = verify_request(bytes, &client.secret, false)
        .map_err(|err| DaeError::Verify { from, err })?;
    let kind = match packet.code {
        Code::DisconnectRequest => DaeKind::Disconnect,
        Code::CoaRequest => DaeKind::Coa,
        code => return Err(DaeError::NotARequest { from, code }),
    };
    Ok(DaeRequest {
        kind,
        packet,
        secret: client.secret.clone(),
    })
}

impl DaeRequest {
    /// The session it names: (User-Name, Acct-Session-Id, Framed-IP-Address).
    pub fn user_name(&self) -> Option<String> {
        self.packet.get_string(attr::USER_NAME)
    }
    pub fn acct_session_id(&self) -> Option<String> {
        self.packet.get_string(attr::ACCT_SESSION_ID)
    }
    pub fn framed_ip(&self) -> Option<std::net::Ipv4Addr> {
        self.packet.get_ipv4(attr::FRAMED_IP_ADDRESS)
    }

    fn answer(&self, code: Code, extra: Vec<Attr>) -> Vec<u8> {
        let mut p = Packet::new(code, self.packet.identifier);
        p.push(message_authenticator_placeholder());
        p.attributes.extend(extra);
        // Proxy-State is copied back in order (RFC 5176 §3).
        for a in self
            .packet
            .attributes
            .iter()
            .filter(|a| a.typ == attr::PROXY_STATE)
        {
            p.push(a.clone());
        }
        sign_response(&p, &self.packet.authenticator, &self.secret)
    }

    /// Disconnect-ACK or CoA-ACK.
    pub fn ack(&self) -> Vec<u8> {
        let code = match self.kind {
            DaeKind::Disconnect => Code::DisconnectAck,
            DaeKind::Coa => Code::CoaAck,
        };
        self.answer(code, Vec::new())
    }

    /// Disconnect-NAK or CoA-NAK with an Error-Cause ([`attr::error_cause`]).
    pub fn nak(&self, error_cause: u32) -> Vec<u8> {
        let code = match self.kind {
            DaeKind::Disconnect => Code::DisconnectNak,
            DaeKind::Coa => Code::CoaNak,
        };
        self.answer(code, vec![Attr::u32(attr::ERROR_CAUSE, error_cause)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{sign_request, verify_response};

    fn clients() -> Vec<DaeClient> {
        vec![DaeClient {
            addr: [10, 0, 0, 5].into(),
            secret: b"dae-secret".to_vec(),
        }]
    }

    fn disconnect(secret: &[u8]) -> Vec<u8> {
        let mut p = Packet::new(Code::DisconnectRequest, 42);
        p.push(Attr::new(attr::USER_NAME, b"alice".to_vec()));
        p.push(Attr::new(attr::ACCT_SESSION_ID, b"S1".to_vec()));
        p.push(Attr::new(attr::PROXY_STATE, b"ps".to_vec()));
        sign_request(&p, secret)
    }

    #[test]
    fn allowed_client_with_right_secret_gets_ack_and_nak() {
        let r =
            parse_request([10, 0, 0, 5].into(), &disconnect(b"dae-secret"), &clients()).unwrap();
        assert_eq!(r.kind, DaeKind::Disconnect);
        assert_eq!(r.user_name().as_deref(), Some("alice"));
        assert_eq!(r.acct_session_id().as_deref(), Some("S1"));
        let ack = verify_response(&r.ack(), &r.packet.authenticator, b"dae-secret", true).unwrap();
        assert_eq!(ack.code, Code::DisconnectAck);
        assert_eq!(ack.identifier, 42);
        assert_eq!(ack.get(attr::PROXY_STATE).unwrap().value, b"ps");
        let nak = verify_response(
            &r.nak(attr::error_cause::SESSION_CONTEXT_NOT_FOUND),
            &r.packet.authenticator,
            b"dae-secret",
            true,
        )
        .unwrap();
        assert_eq!(nak.code, Code::DisconnectNak);
        assert_eq!(nak.get_u32(attr::ERROR_CAUSE), Some(503));
    }

    #[test]
    fn strangers_and_wrong_secrets_are_refused() {
        assert_eq!(
            parse_request([10, 0, 0, 6].into(), &disconnect(b"dae-secret"), &clients()),
            Err(DaeError::NotAllowed([10, 0, 0, 6].into()))
        );
        assert!(matches!(
            parse_request([10, 0, 0, 5].into(), &disconnect(b"guess"), &clients()),
            Err(DaeError::Verify { .. })
        ));
        let mut p = Packet::new(Code::AccountingRequest, 1);
        p.push(Attr::u32(attr::ACCT_STATUS_TYPE, 1));
        assert!(matches!(
            parse_request(
                [10, 0, 0, 5].into(),
                &sign_request(&p, b"dae-secret"),
                &clients()
            ),
            Err(DaeError::NotARequest { .. })
        ));
    }
}
