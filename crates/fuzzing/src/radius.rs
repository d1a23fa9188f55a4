//! RADIUS (virtgate-radius): every datagram a NAS receives goes through the same parsers —
//! answers on the client's socket, Disconnect/CoA requests on port 3799 — and none may panic.
//!
//! `radius_packet` feeds the input as one datagram to: the packet decoder (re-encoding a
//! decoded packet must give the same packet back), the response and request checks, the
//! Dynamic Authorization parser, the Microsoft-attribute reader (MPPE key decryption), the
//! password and key decryptors, and a [`Client`] with two outstanding requests (its
//! identifier 0 and 1, so that the first octets reach the matching and verification paths).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use virtgate_radius::crypto::{
    decrypt_mppe_key, sign_response, unhide_password, verify_request, verify_response,
};
use virtgate_radius::{
    attr, dae, ms, Attr, Client, ClientConfig, Code, DaeClient, Entropy, Packet, Request, Server,
};

struct Fixed;
impl Entropy for Fixed {
    fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(0x5a);
    }
}

/// The secret of every check in this target.
pub const RADIUS_SECRET: &[u8] = b"fuzz-secret";
/// The request authenticator the fuzz client's requests carry (entropy is 0x5a).
pub const RADIUS_AUTHENTICATOR: [u8; 16] = [0x5a; 16];

fn server() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1812))
}

pub fn radius_packet(data: &[u8]) {
    let auth = RADIUS_AUTHENTICATOR;
    if let Ok(p) = Packet::decode(data) {
        let again = Packet::decode(&p.encode()).expect("our own encoding decodes");
        assert_eq!(again, p, "decode/encode/decode changed the packet");
        let _ = ms::parse_reply(&p, &auth, RADIUS_SECRET);
        for a in &p.attributes {
            let _ = a.as_u32();
            let _ = a.as_ipv4();
            let _ = virtgate_radius::packet::vendor_subattrs(&a.value);
        }
        // A response we sign ourselves verifies.
        let signed = sign_response(&p, &auth, RADIUS_SECRET);
        if p.attributes.iter().all(|a| a.value.len() <= 253) && signed.len() <= 4096 {
            verify_response(&signed, &auth, RADIUS_SECRET, false)
                .expect("a response we signed verifies");
        }
    }
    let _ = verify_response(data, &auth, RADIUS_SECRET, true);
    let _ = verify_request(data, RADIUS_SECRET, false);
    let clients = [DaeClient {
        addr: server().ip(),
        secret: RADIUS_SECRET.to_vec(),
    }];
    if let Ok(r) = dae::parse_request(server().ip(), data, &clients) {
        let _ = r.ack();
        let _ = r.nak(attr::error_cause::SESSION_CONTEXT_NOT_FOUND);
    }
    let _ = decrypt_mppe_key(data, RADIUS_SECRET, &auth);
    let _ = unhide_password(data, RADIUS_SECRET, &auth);

    let now = Instant::now();
    let mut c = Client::new(ClientConfig {
        servers: vec![Server {
            addr: server(),
            secret: RADIUS_SECRET.to_vec(),
        }],
        timeout: Duration::from_secs(3),
        retries: 2,
        deadtime: Duration::from_secs(10),
        max_outstanding: 8,
        require_message_authenticator: true,
    });
    for code in [Code::AccessRequest, Code::AccountingRequest] {
        let req = Request {
            code,
            attributes: vec![Attr::new(attr::USER_NAME, b"u".to_vec())],
            password: None,
        };
        c.send(now, req, &mut Fixed).expect("room for two requests");
    }
    while c.poll_transmit().is_some() {}
    c.handle_datagram(now, server(), data);
    while let Some(ev) = c.poll_event() {
        let _ = format!("{ev:?}");
    }
    c.handle_timeout(now + Duration::from_secs(30), &mut Fixed);
    assert!(c.outstanding() <= 2);
}
