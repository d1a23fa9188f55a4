//! The DHCP messages of a load client (RFC 2131 §4.4.1: DHCPDISCOVER, DHCPREQUEST in SELECTING,
//! DHCPRELEASE; options of RFC 2132 §9) encoded with dhcproto, and the server's replies read
//! back (RFC 2131 §2 fixed header, RFC 2132 §9.6 message type, §9.7 server identifier, §3.3
//! lease time).
//!
//! Replies are not decoded with dhcproto's `Message::decode`: its option decoders
//! `debug_assert!` on some length octets (a malformed reply would panic a debug build), so the
//! header is read at fixed offsets and the options area walked here with every length checked.
//! Only the options the generator acts on are extracted; option overload (RFC 2132 §9.3) is
//! not followed, as neither dnsmasq nor virtgate put options 53 or 54 in `sname`/`file`.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, OptionCode};
use dhcproto::Encodable;

/// Length of the fixed BOOTP header (RFC 2131 §2, up to and including `file`).
const FIXED_LEN: usize = 236;
/// Where the options start: after the fixed header and the magic cookie.
const OPTIONS_AT: usize = FIXED_LEN + 4;
/// The magic cookie 99.130.83.99 (RFC 2131 §3).
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// RFC 1542 §3.4 / RFC 2131 §2: BOOTP agents expect at least 300 octets; ISC dhclient pads to
/// it, so the load clients do too.
pub const MIN_LEN: usize = 300;

/// Option 55 as ISC dhclient 4.4 (Debian 12's) sends it by default: mask, broadcast, time
/// offset, router, domain name, DNS servers, domain search, host name, NetBIOS name server and
/// scope, MTU, classless static routes, NTP servers.
pub const DHCLIENT_PRL: [u8; 13] = [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42];

/// What a client puts in each of its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId {
    pub xid: u32,
    pub mac: [u8; 6],
    /// Option 12, as a guest's dhclient sends its host name (both servers then publish the
    /// name in DNS, which is part of a lease's cost).
    pub hostname: Option<String>,
    /// The BROADCAST flag (RFC 2131 §4.1): replies to 255.255.255.255 instead of unicast to the
    /// offered address and `chaddr` (what dhclient asks for, and what costs the server a
    /// neighbour entry).
    pub broadcast: bool,
}

fn base(c: &ClientId, msg_type: MessageType) -> Message {
    let mut m = Message::new_with_id(
        c.xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &c.mac,
    );
    if c.broadcast {
        m.set_flags(Flags::default().set_broadcast());
    }
    m.opts_mut().insert(DhcpOption::MessageType(msg_type));
    m
}

fn with_prl_and_name(m: &mut Message, c: &ClientId) {
    if let Some(h) = &c.hostname {
        m.opts_mut().insert(DhcpOption::Hostname(h.clone()));
    }
    m.opts_mut().insert(DhcpOption::ParameterRequestList(
        DHCLIENT_PRL.iter().map(|&c| OptionCode::from(c)).collect(),
    ));
}

/// Encodes and pads to [`MIN_LEN`]. dhcproto only fails to encode values that do not fit
/// their option (a host name over 255 octets); such a message goes out without options past
/// the failure, which the servers then refuse — visible as failed leases, never a panic.
fn finish(m: &Message) -> Vec<u8> {
    let mut out = m.to_vec().unwrap_or_default();
    if out.len() < MIN_LEN {
        out.resize(MIN_LEN, 0);
    }
    out
}

/// DHCPDISCOVER (RFC 2131 §4.4.1): no addresses, host name and parameter list.
pub fn discover(c: &ClientId) -> Vec<u8> {
    let mut m = base(c, MessageType::Discover);
    with_prl_and_name(&mut m, c);
    finish(&m)
}

/// DHCPREQUEST in SELECTING (RFC 2131 §4.3.2 table 4): `ciaddr` 0, option 50 the offered
/// address, option 54 the chosen server.
pub fn request(c: &ClientId, offered: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
    let mut m = base(c, MessageType::Request);
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(offered));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    with_prl_and_name(&mut m, c);
    finish(&m)
}

/// DHCPRELEASE (RFC 2131 §4.4.6, table 5): `ciaddr` the leased address, option 54, no flags,
/// unicast to the server.
pub fn release(c: &ClientId, leased: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
    let plain = ClientId {
        broadcast: false,
        ..c.clone()
    };
    let mut m = base(&plain, MessageType::Release);
    m.set_ciaddr(leased);
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    finish(&m)
}

/// A server's reply, reduced to what a client acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerReply {
    pub xid: u32,
    pub chaddr: [u8; 6],
    pub yiaddr: Ipv4Addr,
    /// Option 53; `MessageType::Unknown(n)` for values we do not know.
    pub msg_type: MessageType,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 51, seconds.
    pub lease_secs: Option<u32>,
}

/// Why a datagram from port 67 was not taken as a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    #[error("{0} octets is shorter than a DHCP message (240)")]
    TooShort(usize),
    #[error("op {0} is not BOOTREPLY")]
    NotReply(u8),
    #[error("hardware type {htype}/length {hlen} is not Ethernet")]
    NotEthernet { htype: u8, hlen: u8 },
    #[error("magic cookie is not 99.130.83.99")]
    BadCookie,
    #[error("option {code} runs past the end of the message")]
    TruncatedOption { code: u8 },
    #[error("no DHCP message type (option 53)")]
    NoMessageType,
}

fn ip4(b: &[u8]) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

fn at<const N: usize>(b: &[u8], from: usize) -> Option<[u8; N]> {
    b.get(from..from + N)?.try_into().ok()
}

/// Reads a BOOTREPLY. Never panics; the first of a repeated option wins.
pub fn parse_reply(bytes: &[u8]) -> Result<ServerReply, ReplyError> {
    let short = ReplyError::TooShort(bytes.len());
    if bytes.len() < OPTIONS_AT {
        return Err(short);
    }
    let [op, htype, hlen] = at::<3>(bytes, 0).ok_or(short)?;
    if op != 2 {
        return Err(ReplyError::NotReply(op));
    }
    if htype != 1 || hlen != 6 {
        return Err(ReplyError::NotEthernet { htype, hlen });
    }
    if at::<4>(bytes, FIXED_LEN).ok_or(short)? != MAGIC {
        return Err(ReplyError::BadCookie);
    }
    let xid = u32::from_be_bytes(at::<4>(bytes, 4).ok_or(short)?);
    let yiaddr = Ipv4Addr::from(at::<4>(bytes, 16).ok_or(short)?);
    let chaddr = at::<6>(bytes, 28).ok_or(short)?;
    let mut msg_type = None;
    let mut server_id = None;
    let mut lease_secs = None;
    let mut i = OPTIONS_AT;
    while let Some(&code) = bytes.get(i) {
        match code {
            0 => {
                i += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let len = usize::from(
            *bytes
                .get(i + 1)
                .ok_or(ReplyError::TruncatedOption { code })?,
        );
        let value = bytes
            .get(i + 2..i + 2 + len)
            .ok_or(ReplyError::TruncatedOption { code })?;
        match code {
            53 if msg_type.is_none() => {
                msg_type = value.first().map(|&t| MessageType::from(t));
            }
            54 if server_id.is_none() => server_id = ip4(value),
            51 if lease_secs.is_none() => {
                lease_secs = value
                    .try_into()
                    .ok()
                    .map(|b: [u8; 4]| u32::from_be_bytes(b));
            }
            _ => {}
        }
        i += 2 + len;
    }
    Ok(ServerReply {
        xid,
        chaddr,
        yiaddr,
        msg_type: msg_type.ok_or(ReplyError::NoMessageType)?,
        server_id,
        lease_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::{Decodable, Decoder};

    fn client() -> ClientId {
        ClientId {
            xid: 0x4c00_0007,
            mac: [0x02, 0x4c, 0, 0, 0, 7],
            hostname: Some("load-7".into()),
            broadcast: true,
        }
    }

    fn decode(b: &[u8]) -> Message {
        Message::decode(&mut Decoder::new(b)).unwrap()
    }

    #[test]
    fn discover_carries_what_dhclient_sends() {
        let b = discover(&client());
        assert!(b.len() >= MIN_LEN);
        assert_eq!(&b[..4], &[1, 1, 6, 0]); // BOOTREQUEST, Ethernet, hlen 6, hops 0
        assert_eq!(&b[4..8], &0x4c00_0007u32.to_be_bytes());
        assert_eq!(&b[10..12], &[0x80, 0]); // BROADCAST flag
        assert_eq!(&b[28..34], &[0x02, 0x4c, 0, 0, 0, 7]);
        let m = decode(&b);
        assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(
            m.opts().get(OptionCode::Hostname),
            Some(&DhcpOption::Hostname("load-7".into()))
        );
        let Some(DhcpOption::ParameterRequestList(prl)) =
            m.opts().get(OptionCode::ParameterRequestList)
        else {
            panic!("no parameter request list")
        };
        let prl: Vec<u8> = prl.iter().map(|&c| u8::from(c)).collect();
        assert_eq!(prl, DHCLIENT_PRL);
        assert!(m.opts().get(OptionCode::RequestedIpAddress).is_none());
    }

    #[test]
    fn request_names_offer_and_server_and_release_is_unicast_style() {
        let offered = Ipv4Addr::new(10, 77, 4, 2);
        let server = Ipv4Addr::new(10, 77, 0, 1);
        let c = ClientId {
            broadcast: false,
            ..client()
        };
        let m = decode(&request(&c, offered, server));
        assert_eq!(m.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(m.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert!(!m.flags().broadcast());
        assert_eq!(
            m.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(offered))
        );
        assert_eq!(
            m.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(server))
        );
        // RELEASE: ciaddr set, no broadcast flag even for a broadcast client, no option 50.
        let r = decode(&release(&client(), offered, server));
        assert_eq!(r.opts().msg_type(), Some(MessageType::Release));
        assert_eq!(r.ciaddr(), offered);
        assert!(!r.flags().broadcast());
        assert!(r.opts().get(OptionCode::RequestedIpAddress).is_none());
        assert_eq!(
            r.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(server))
        );
    }

    /// A reply as a server builds it, through dhcproto's encoder.
    fn offer_bytes() -> Vec<u8> {
        let mut m = Message::new_with_id(
            0x4c00_0007,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 77, 4, 2),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[0x02, 0x4c, 0, 0, 0, 7],
        );
        m.set_opcode(dhcproto::v4::Opcode::BootReply);
        m.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Offer));
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 77, 0, 1)));
        m.opts_mut().insert(DhcpOption::AddressLeaseTime(3600));
        m.to_vec().unwrap()
    }

    #[test]
    fn parses_an_encoded_offer() {
        let r = parse_reply(&offer_bytes()).unwrap();
        assert_eq!(
            r,
            ServerReply {
                xid: 0x4c00_0007,
                chaddr: [0x02, 0x4c, 0, 0, 0, 7],
                yiaddr: Ipv4Addr::new(10, 77, 4, 2),
                msg_type: MessageType::Offer,
                server_id: Some(Ipv4Addr::new(10, 77, 0, 1)),
                lease_secs: Some(3600),
            }
        );
    }

    #[test]
    fn byte_level_options() {
        let mut b = offer_bytes();
        b.truncate(OPTIONS_AT);
        // Pad, an unknown option, message type NAK, no server id, an odd-length lease time.
        b.extend_from_slice(&[0, 0, 224, 2, 9, 9, 53, 1, 6, 51, 3, 0, 0, 1, 255]);
        let r = parse_reply(&b).unwrap();
        assert_eq!(r.msg_type, MessageType::Nak);
        assert_eq!((r.server_id, r.lease_secs), (None, None));
        // An unknown message type is a value.
        let n = b.len();
        b[n - 7] = 77;
        assert_eq!(parse_reply(&b).unwrap().msg_type, MessageType::Unknown(77));
        // Without an End option the walk stops at the end of the bytes.
        b.pop();
        assert!(parse_reply(&b).is_ok());
    }

    #[test]
    fn malformed_replies_are_errors() {
        let good = offer_bytes();
        for n in 0..OPTIONS_AT {
            assert_eq!(parse_reply(&good[..n]), Err(ReplyError::TooShort(n)));
        }
        let mut req = good.clone();
        req[0] = 1;
        assert_eq!(parse_reply(&req), Err(ReplyError::NotReply(1)));
        let mut tr = good.clone();
        tr[2] = 16;
        assert_eq!(
            parse_reply(&tr),
            Err(ReplyError::NotEthernet { htype: 1, hlen: 16 })
        );
        let mut cookie = good.clone();
        cookie[239] = 0;
        assert_eq!(parse_reply(&cookie), Err(ReplyError::BadCookie));
        let mut cut = good[..OPTIONS_AT].to_vec();
        cut.extend_from_slice(&[53, 4, 2]);
        assert_eq!(
            parse_reply(&cut),
            Err(ReplyError::TruncatedOption { code: 53 })
        );
        cut.truncate(OPTIONS_AT + 1);
        assert_eq!(
            parse_reply(&cut),
            Err(ReplyError::TruncatedOption { code: 53 })
        );
        let mut none = good[..OPTIONS_AT].to_vec();
        none.push(255);
        assert_eq!(parse_reply(&none), Err(ReplyError::NoMessageType));
        // Random options areas: never a panic.
        let mut x: u32 = 99;
        for len in 0..300 {
            let mut b = good[..OPTIONS_AT].to_vec();
            b.extend((0..len).map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            }));
            let _ = parse_reply(&b);
        }
    }
}
