//! The IP Control Protocol (RFC 1332) with the Microsoft DNS/NBNS extensions (RFC 1877).
//!
//! Options: IP-Address (3, RFC 1332 §3.3), Primary/Secondary DNS (129/131) and NBNS
//! (130/132, RFC 1877 §1). IP-Compression-Protocol (2, Van Jacobson) and the deprecated
//! IP-Addresses (1) are Configure-Rejected, as is anything unknown.
//!
//! Server (authenticator) role, as pppd with `localip`/`remoteip`, `ms-dns`, `ms-wins`:
//! - our request carries IP-Address = our local address;
//! - the peer's IP-Address is Nak'ed to the address the daemon assigned when it is 0.0.0.0 or
//!   anything else; when absent we Nak suggesting it (pppd does the same);
//! - DNS/NBNS requests are Nak'ed to our values (or acked when equal), rejected when we have
//!   none for that slot.
//!
//! Client role, as pppd with `noipdefault` and `usepeerdns`:
//! - we request IP-Address (0.0.0.0 unless configured) and, if asked to, DNS 129/131 with
//!   0.0.0.0, and adopt the values the server Naks with (`accept_local` as pppd's
//!   `ipcp-accept-local`: without it a configured address is kept);
//! - the server's IP-Address request is acked when non-zero.
//!
//! Choices: a Nak of our own address is ignored in the server role (pppd without
//! `ipcp-accept-local`); past Max-Failure the Nak loop ends in a Configure-Reject (the
//! automaton's rule), after which the server still uses the assigned address.

use std::net::Ipv4Addr;

use crate::frame::{push_option, RawOption};
use crate::fsm::{ConfigProtocol, Fsm, FsmPolicy, NegotiationFailure, ReplyBuilder};

/// IPCP option types.
pub mod kind {
    pub const IP_ADDRESSES: u8 = 1;
    pub const IP_COMPRESSION: u8 = 2;
    pub const IP_ADDRESS: u8 = 3;
    pub const PRIMARY_DNS: u8 = 129;
    pub const PRIMARY_NBNS: u8 = 130;
    pub const SECONDARY_DNS: u8 = 131;
    pub const SECONDARY_NBNS: u8 = 132;
}

/// IPCP settings (pppd option names in brackets). `Default`: no addresses, no DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcpPolicy {
    /// Server: our address \[localip\]. Client: the address to request (0.0.0.0 = ask).
    pub local: Ipv4Addr,
    /// Server: DNS servers to hand out \[ms-dns\], primary then secondary.
    pub dns: [Option<Ipv4Addr>; 2],
    /// Server: NBNS (WINS) servers to hand out \[ms-wins\].
    pub wins: [Option<Ipv4Addr>; 2],
    /// Client: ask the server for DNS servers \[usepeerdns\].
    pub request_dns: bool,
    /// Client: take the address the server Naks with even if `local` is set
    /// \[ipcp-accept-local\].
    pub accept_local: bool,
}

impl Default for IpcpPolicy {
    fn default() -> Self {
        IpcpPolicy {
            local: Ipv4Addr::UNSPECIFIED,
            dns: [None, None],
            wins: [None, None],
            request_dns: false,
            accept_local: true,
        }
    }
}

/// The IPv4 address carried by an option, if it is exactly 4 octets.
fn addr_of(data: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(data).ok().map(Ipv4Addr::from)
}

/// IPCP's option knowledge for either role.
#[derive(Debug, Clone)]
pub struct IpcpOptions {
    policy: IpcpPolicy,
    server: bool,
    /// Server: the address assigned to the peer.
    peer_assigned: Option<Ipv4Addr>,
    // Our request.
    req_addr: Option<Ipv4Addr>,
    req_dns: [Option<Ipv4Addr>; 2],
    // The peer's last request.
    his_addr: Option<Ipv4Addr>,
}

impl IpcpOptions {
    pub fn new(policy: IpcpPolicy, server: bool) -> Self {
        let mut o = IpcpOptions {
            policy,
            server,
            peer_assigned: None,
            req_addr: None,
            req_dns: [None, None],
            his_addr: None,
        };
        o.reset();
        o
    }

    /// Server: the address the daemon assigned to the peer.
    pub fn set_peer_address(&mut self, addr: Ipv4Addr) {
        self.peer_assigned = Some(addr);
    }

    /// Our address as negotiated (server: `local`; client: what the server gave us).
    pub fn local(&self) -> Ipv4Addr {
        if self.server {
            self.policy.local
        } else {
            self.req_addr.unwrap_or(self.policy.local)
        }
    }

    /// The peer's address (server: assigned; client: the server's request, if any).
    pub fn peer(&self) -> Ipv4Addr {
        if self.server {
            self.peer_assigned.unwrap_or(Ipv4Addr::UNSPECIFIED)
        } else {
            self.his_addr.unwrap_or(Ipv4Addr::UNSPECIFIED)
        }
    }

    /// DNS servers: the ones we hand out (server) or learned (client).
    pub fn dns(&self) -> [Option<Ipv4Addr>; 2] {
        if self.server {
            self.policy.dns
        } else {
            self.req_dns.map(|d| d.filter(|a| !a.is_unspecified()))
        }
    }

    fn slot_value(&self, kind: u8) -> Option<Ipv4Addr> {
        match kind {
            kind::PRIMARY_DNS => self.policy.dns[0],
            kind::SECONDARY_DNS => self.policy.dns[1],
            kind::PRIMARY_NBNS => self.policy.wins[0],
            kind::SECONDARY_NBNS => self.policy.wins[1],
            _ => None,
        }
    }

    fn dns_index(kind: u8) -> Option<usize> {
        match kind {
            kind::PRIMARY_DNS => Some(0),
            kind::SECONDARY_DNS => Some(1),
            _ => None,
        }
    }
}

impl ConfigProtocol for IpcpOptions {
    fn reset(&mut self) {
        self.req_addr = if self.server && self.policy.local.is_unspecified() {
            None
        } else {
            Some(self.policy.local)
        };
        self.req_dns = if !self.server && self.policy.request_dns {
            [Some(Ipv4Addr::UNSPECIFIED), Some(Ipv4Addr::UNSPECIFIED)]
        } else {
            [None, None]
        };
    }

    fn build_request(&mut self, out: &mut Vec<u8>) {
        if let Some(a) = self.req_addr {
            push_option(out, kind::IP_ADDRESS, &a.octets());
        }
        if let Some(d) = self.req_dns[0] {
            push_option(out, kind::PRIMARY_DNS, &d.octets());
        }
        if let Some(d) = self.req_dns[1] {
            push_option(out, kind::SECONDARY_DNS, &d.octets());
        }
    }

    fn check_request(&mut self, options: &[RawOption<'_>], reply: &mut ReplyBuilder) {
        self.his_addr = None;
        let mut saw_addr = false;
        for raw in options {
            let addr = addr_of(raw.data);
            match (raw.kind, addr) {
                (kind::IP_ADDRESS, Some(a)) if self.server => {
                    saw_addr = true;
                    match self.peer_assigned {
                        Some(assigned) if a == assigned => self.his_addr = Some(a),
                        Some(assigned) => reply.nak(raw, &assigned.octets()),
                        // No address to give (cannot happen: IPCP starts after assignment).
                        None => reply.reject(raw),
                    }
                }
                (kind::IP_ADDRESS, Some(a)) => {
                    // Client: the server's own address. 0.0.0.0 asks us to pick one for it,
                    // which we cannot.
                    if a.is_unspecified() {
                        reply.reject(raw);
                    } else {
                        self.his_addr = Some(a);
                    }
                }
                (
                    kind::PRIMARY_DNS
                    | kind::SECONDARY_DNS
                    | kind::PRIMARY_NBNS
                    | kind::SECONDARY_NBNS,
                    Some(a),
                ) if self.server => match self.slot_value(raw.kind) {
                    Some(v) if v == a => {}
                    Some(v) => reply.nak(raw, &v.octets()),
                    None => reply.reject(raw),
                },
                // VJ compression, IP-Addresses, DNS asked of a client, malformed, unknown.
                _ => reply.reject(raw),
            }
        }
        if self.server && !saw_addr {
            if let Some(assigned) = self.peer_assigned {
                reply.nak_missing(kind::IP_ADDRESS, &assigned.octets());
            }
        }
    }

    fn nak_received(
        &mut self,
        options: &[RawOption<'_>],
        treat_as_reject: bool,
    ) -> Result<(), NegotiationFailure> {
        for raw in options {
            let Some(a) = addr_of(raw.data) else {
                continue;
            };
            match raw.kind {
                kind::IP_ADDRESS if self.req_addr.is_some() => {
                    if treat_as_reject {
                        self.req_addr = None;
                    } else if !self.server
                        && (self.policy.accept_local || self.policy.local.is_unspecified())
                    {
                        self.req_addr = Some(a);
                    }
                    // Server, or a client keeping its configured address: ask again as is.
                }
                k => {
                    if let Some(i) = Self::dns_index(k) {
                        if self.req_dns[i].is_some() {
                            self.req_dns[i] = (!treat_as_reject).then_some(a);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn reject_received(&mut self, options: &[RawOption<'_>]) -> Result<(), NegotiationFailure> {
        for raw in options {
            match raw.kind {
                kind::IP_ADDRESS => self.req_addr = None,
                k => {
                    if let Some(i) = Self::dns_index(k) {
                        self.req_dns[i] = None;
                    }
                }
            }
        }
        Ok(())
    }
}

/// IPCP: the automaton and the options.
#[derive(Debug, Clone)]
pub struct Ipcp {
    pub fsm: Fsm,
    pub options: IpcpOptions,
}

impl Ipcp {
    pub fn new(policy: IpcpPolicy, server: bool, fsm: FsmPolicy) -> Ipcp {
        Ipcp {
            fsm: Fsm::new(fsm),
            options: IpcpOptions::new(policy, server),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{emit_control, Code, ControlPacket};
    use crate::fsm::{FsmOutput, Input};
    use std::time::Instant;

    fn sends(out: &[FsmOutput]) -> Vec<Vec<u8>> {
        out.iter()
            .filter_map(|o| match o {
                FsmOutput::Send(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    fn feed(c: &mut Ipcp, bytes: &[u8]) -> Vec<FsmOutput> {
        let r = c.fsm.input(
            Instant::now(),
            &mut c.options,
            ControlPacket::parse(bytes).unwrap(),
        );
        assert!(!matches!(r, Input::Discarded(_)), "{r:?}");
        c.fsm.drain()
    }

    fn reference_server() -> (Ipcp, Vec<Vec<u8>>) {
        let t0 = Instant::now();
        let policy = IpcpPolicy {
            local: Ipv4Addr::new(192, 168, 0, 1),
            dns: [
                Some(Ipv4Addr::new(8, 8, 8, 8)),
                Some(Ipv4Addr::new(8, 8, 4, 4)),
            ],
            ..IpcpPolicy::default()
        };
        let mut c = Ipcp::new(policy, true, FsmPolicy::default());
        c.options.set_peer_address(Ipv4Addr::new(192, 168, 0, 100));
        c.fsm.open(t0, &mut c.options);
        c.fsm.up(t0, &mut c.options);
        let out = sends(&c.fsm.drain());
        (c, out)
    }

    /// The IPCP exchange of the reference capture, byte for byte.
    #[test]
    fn reference_exchange() {
        let (mut c, out) = reference_server();
        assert_eq!(out, vec![hex("0101000a0306c0a80001")]);
        // VJ + address 0 + DNS 0/0: VJ rejected.
        let out = feed(
            &mut c,
            &hex("0101001c0206002d0f01030600000000810600000000830600000000"),
        );
        assert_eq!(sends(&out), vec![hex("0401000a0206002d0f01")]);
        // The client acks our request.
        feed(&mut c, &hex("0201000a0306c0a80001"));
        // Address 0 + DNS 0/0: Nak with the assigned address and our DNS servers.
        let out = feed(&mut c, &hex("01020016030600000000810600000000830600000000"));
        assert_eq!(
            sends(&out),
            vec![hex("030200160306c0a80064810608080808830608080404")]
        );
        let out = feed(&mut c, &hex("010300160306c0a80064810608080808830608080404"));
        assert_eq!(
            sends(&out),
            vec![hex("020300160306c0a80064810608080808830608080404")]
        );
        assert!(out.contains(&FsmOutput::Up));
        assert_eq!(c.options.peer(), Ipv4Addr::new(192, 168, 0, 100));
    }

    #[test]
    fn server_rejects_what_it_lacks_and_suggests_missing_address() {
        let (mut c, _) = reference_server();
        // NBNS without ms-wins: rejected; IP-Addresses (1) rejected.
        let out = feed(
            &mut c,
            &emit_control(
                Code::ConfigureRequest,
                1,
                &[130, 6, 0, 0, 0, 0, 1, 10, 1, 2, 3, 4, 5, 6, 7, 8],
            ),
        );
        assert_eq!(
            sends(&out),
            vec![emit_control(
                Code::ConfigureReject,
                1,
                &[130, 6, 0, 0, 0, 0, 1, 10, 1, 2, 3, 4, 5, 6, 7, 8]
            )]
        );
        // No address at all: Nak suggesting the assigned one.
        let out = feed(&mut c, &emit_control(Code::ConfigureRequest, 2, &[]));
        assert_eq!(
            sends(&out),
            vec![emit_control(
                Code::ConfigureNak,
                2,
                &[3, 6, 192, 168, 0, 100]
            )]
        );
        // A wrong address: Nak to the assigned one.
        let out = feed(
            &mut c,
            &emit_control(Code::ConfigureRequest, 3, &[3, 6, 10, 0, 0, 5]),
        );
        assert_eq!(
            sends(&out),
            vec![emit_control(
                Code::ConfigureNak,
                3,
                &[3, 6, 192, 168, 0, 100]
            )]
        );
    }

    #[test]
    fn client_learns_address_and_dns() {
        let t0 = Instant::now();
        let policy = IpcpPolicy {
            request_dns: true,
            ..IpcpPolicy::default()
        };
        let mut c = Ipcp::new(policy, false, FsmPolicy::default());
        c.fsm.open(t0, &mut c.options);
        c.fsm.up(t0, &mut c.options);
        let out = sends(&c.fsm.drain());
        assert_eq!(
            out,
            vec![hex("01010016030600000000810600000000830600000000")]
        );
        let out = feed(&mut c, &hex("030100160306c0a80064810608080808830608080404"));
        assert_eq!(
            sends(&out),
            vec![hex("010200160306c0a80064810608080808830608080404")]
        );
        feed(&mut c, &hex("020200160306c0a80064810608080808830608080404"));
        let out = feed(&mut c, &hex("0101000a0306c0a80001"));
        assert!(out.contains(&FsmOutput::Up));
        assert_eq!(c.options.local(), Ipv4Addr::new(192, 168, 0, 100));
        assert_eq!(c.options.peer(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(
            c.options.dns(),
            [
                Some(Ipv4Addr::new(8, 8, 8, 8)),
                Some(Ipv4Addr::new(8, 8, 4, 4))
            ]
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
