//! DHCPv4 on the wire: parsing client messages (RFC 2131 §2 message format, RFC 2132 §9.3 option
//! overload, RFC 3396 concatenated options) and encoding the server's replies with dhcproto,
//! addressed as RFC 2131 §4.1 says.
//!
//! The fixed header is decoded by dhcproto; the options area is walked here, because dhcproto's
//! `DhcpOptions::decode` is not safe on hostile input in debug builds (its decoders for options
//! 80, 81, 94 and 151-155 `debug_assert!` or subtract on the length byte), stops silently at the
//! first option it cannot decode (one non-UTF-8 host name would hide every option after it), and
//! ignores option overload. Only the options the server uses are extracted, each length-checked.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dhcproto::v4::{self, DhcpOption, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable, Encoder};

use crate::config::MacAddr;
use crate::hostname;

/// Length of the fixed BOOTP header (RFC 2131 §2, through `file`).
const FIXED_LEN: usize = 236;
/// Fixed header + magic cookie: where options start.
const OPTIONS_AT: usize = FIXED_LEN + 4;
/// `sname` and `file` byte ranges, used when option 52 overloads them.
const SNAME: std::ops::Range<usize> = 44..108;
const FILE: std::ops::Range<usize> = 108..236;
/// RFC 1542 §3.4 / RFC 2131 §2: BOOTP relays and old clients expect at least 300 octets.
pub const MIN_REPLY_LEN: usize = 300;

/// Why a packet was not taken as a client request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("{0} bytes is shorter than a DHCP message (240)")]
    TooShort(usize),
    #[error("op {0} is not BOOTREQUEST")]
    NotRequest(u8),
    #[error("magic cookie is not 99.130.83.99 (plain BOOTP is not served)")]
    BadCookie,
    #[error("hardware address length {0} exceeds the 16-octet chaddr field")]
    BadHlen(u8),
    #[error("hardware type {htype}/length {hlen} is not Ethernet")]
    NotEthernet { htype: u8, hlen: u8 },
    #[error("option {code} runs past the end of its field")]
    TruncatedOption { code: u8 },
    #[error("no DHCP message type (option 53)")]
    NoMessageType,
    #[error("fixed header does not decode: {0}")]
    Header(String),
}

/// A client message, reduced to what the server acts on.
#[derive(Debug, Clone)]
pub struct Request {
    /// The fixed header as dhcproto decoded it (no options): xid, flags, ciaddr, giaddr, chaddr.
    pub header: v4::Message,
    pub msg_type: MessageType,
    pub mac: MacAddr,
    /// Option 61 (RFC 2132 §9.14), raw.
    pub client_id: Option<Vec<u8>>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 12, or else the first label of option 81, sanitised to a DNS label.
    pub hostname: Option<String>,
    /// The client NUL-terminated its host name (some Microsoft stacks): strings we send back get
    /// a NUL too, as dnsmasq does for them.
    pub nul_terminated: bool,
    /// Option 55, the parameter request list.
    pub prl: Option<Vec<u8>>,
    /// Option 51 in a DISCOVER/REQUEST: the lease time the client asks for.
    pub requested_lease: Option<u32>,
    /// Option 57: the largest DHCP message (IP datagram) the client accepts.
    pub max_message_size: Option<u16>,
}

impl Request {
    pub fn ciaddr(&self) -> Ipv4Addr {
        self.header.ciaddr()
    }

    pub fn giaddr(&self) -> Ipv4Addr {
        self.header.giaddr()
    }

    pub fn broadcast_flag(&self) -> bool {
        self.header.flags().broadcast()
    }

    /// The most DHCP payload a reply to this client may carry: 576-octet datagrams are what every
    /// client takes (RFC 2131 §2), more if it said so in option 57 (RFC 2132 §9.10), less never.
    pub fn max_reply_len(&self) -> usize {
        const IP_UDP_HEADERS: usize = 28;
        usize::from(self.max_message_size.unwrap_or(576).max(576)) - IP_UDP_HEADERS
    }

    /// Whether the client asked for option `code` (no list at all means "send everything", as in
    /// dnsmasq and RFC 2131 §4.3.1's "MUST return parameters the client requested").
    pub fn wants(&self, code: u8) -> bool {
        match &self.prl {
            None => true,
            Some(list) => list.contains(&code),
        }
    }
}

/// Parse one UDP payload that arrived on port 67. Never panics.
pub fn parse_request(bytes: &[u8]) -> Result<Request, ParseError> {
    if bytes.len() < OPTIONS_AT {
        return Err(ParseError::TooShort(bytes.len()));
    }
    let op = bytes[0];
    if op != 1 {
        return Err(ParseError::NotRequest(op));
    }
    if bytes[FIXED_LEN..OPTIONS_AT] != v4::MAGIC {
        return Err(ParseError::BadCookie);
    }
    let (htype, hlen) = (bytes[1], bytes[2]);
    if hlen > 16 {
        // dhcproto's `chaddr()` would slice past its 16-byte array.
        return Err(ParseError::BadHlen(hlen));
    }
    // A choice: only Ethernet clients are served (a libvirt bridge carries nothing else; dnsmasq
    // serves any htype but keys everything on the hardware address the same way).
    if htype != 1 || hlen != 6 {
        return Err(ParseError::NotEthernet { htype, hlen });
    }

    // Header through dhcproto: the fixed part plus an empty options list.
    let mut head = Vec::with_capacity(OPTIONS_AT + 1);
    head.extend_from_slice(&bytes[..OPTIONS_AT]);
    head.push(255);
    let header = v4::Message::from_bytes(&head).map_err(|e| ParseError::Header(e.to_string()))?;
    if header.opcode() != Opcode::BootRequest {
        return Err(ParseError::NotRequest(op));
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&bytes[28..34]);

    let mut opts = BTreeMap::new();
    walk(&bytes[OPTIONS_AT..], &mut opts)?;
    // RFC 2132 §9.3: 1 = `file` holds options, 2 = `sname`, 3 = both; `file` is read first.
    if let Some(&[overload]) = opts.get(&52).map(Vec::as_slice) {
        if overload & 1 != 0 {
            walk(&bytes[FILE], &mut opts)?;
        }
        if overload & 2 != 0 {
            walk(&bytes[SNAME], &mut opts)?;
        }
    }

    let msg_type = match opts.get(&53).map(Vec::as_slice) {
        Some(&[t]) => MessageType::from(t),
        _ => return Err(ParseError::NoMessageType),
    };
    let addr = |code: u8| match opts.get(&code).map(Vec::as_slice) {
        Some(&[a, b, c, d]) => Some(Ipv4Addr::new(a, b, c, d)),
        _ => None,
    };
    // RFC 2132 §9.14 requires at least 2 octets; dnsmasq takes any non-empty one, and so do we.
    let client_id = opts.get(&61).filter(|v| !v.is_empty()).cloned();
    let (hostname, nul_terminated) = match opts.get(&12) {
        Some(raw) => (hostname::sanitize(raw), raw.last() == Some(&0)),
        None => (
            opts.get(&81).and_then(|v| hostname::from_client_fqdn(v)),
            false,
        ),
    };
    let requested_lease = match opts.get(&51).map(Vec::as_slice) {
        Some(&[a, b, c, d]) => Some(u32::from_be_bytes([a, b, c, d])),
        _ => None,
    };
    let max_message_size = match opts.get(&57).map(Vec::as_slice) {
        Some(&[a, b]) => Some(u16::from_be_bytes([a, b])),
        _ => None,
    };
    Ok(Request {
        header,
        max_message_size,
        msg_type,
        mac: MacAddr(mac),
        client_id,
        requested_ip: addr(50),
        server_id: addr(54),
        hostname,
        nul_terminated,
        prl: opts.get(&55).cloned(),
        requested_lease,
    })
}

/// Walk one options field, concatenating repeated codes (RFC 3396 §7). A missing End option is
/// tolerated (the field or packet simply ends); an option whose length runs past the field is not.
fn walk(area: &[u8], opts: &mut BTreeMap<u8, Vec<u8>>) -> Result<(), ParseError> {
    let mut i = 0;
    while let Some(&code) = area.get(i) {
        match code {
            0 => i += 1,
            255 => return Ok(()),
            _ => {
                let len = usize::from(
                    *area
                        .get(i + 1)
                        .ok_or(ParseError::TruncatedOption { code })?,
                );
                let data = area
                    .get(i + 2..i + 2 + len)
                    .ok_or(ParseError::TruncatedOption { code })?;
                opts.entry(code).or_default().extend_from_slice(data);
                i += 2 + len;
            }
        }
    }
    Ok(())
}

/// Where the daemon must send a reply (RFC 2131 §4.1, for replies from a server on the client's
/// own link; relayed requests are not served). All go to UDP port 68 from port 67.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// IP 255.255.255.255, Ethernet ff:ff:ff:ff:ff:ff, out of the bridge. Used for every DHCPNAK
    /// and when the client set the BROADCAST flag.
    Broadcast,
    /// An ordinary unicast datagram to this address (the client's `ciaddr`: it is configured and
    /// answers ARP).
    Unicast(Ipv4Addr),
    /// Unicast to `ip` (the `yiaddr` being offered/acknowledged) at hardware address `mac`. The
    /// client does not own `ip` yet and won't answer ARP, so the daemon must not ARP for it: send
    /// the frame through an AF_PACKET socket addressed to `mac`, or first install a neighbour
    /// entry `ip lladdr mac` on the bridge (what dnsmasq does with SIOCSARP) and then send UDP.
    UnicastToHardware { ip: Ipv4Addr, mac: MacAddr },
}

impl Destination {
    /// The IP destination of the datagram.
    pub fn ip(&self) -> Ipv4Addr {
        match *self {
            Destination::Broadcast => Ipv4Addr::BROADCAST,
            Destination::Unicast(ip) | Destination::UnicastToHardware { ip, .. } => ip,
        }
    }
}

/// A reply for the daemon to send (to UDP port 68, from port 67 on the server address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub to: Destination,
    /// Offer, Ack or Nak (for logs and counters).
    pub msg_type: MessageType,
}

/// Encode a BOOTREPLY answering `req` (RFC 2131 §4.3, Table 3 for the fixed fields), with the
/// options in the order given; if the reply would exceed what the client accepts
/// ([`Request::max_reply_len`]), options are dropped from the end (the order puts host name,
/// domain and MTU last). dhcproto encodes the header and each option; the order is ours
/// (dhcproto's option map would sort by code): message type first, then server id, lease times,
/// then parameters, the order dnsmasq uses, which some small clients rely on.
pub(crate) fn encode_reply(
    req: &Request,
    server: Ipv4Addr,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    broadcast: bool,
    options: &[DhcpOption],
) -> Option<Vec<u8>> {
    // siaddr = the server itself, as dnsmasq fills it ("next server"; RFC 2131 Table 3 leaves it
    // to the server). Network boot ROMs without option 66 use it as their TFTP server.
    let mut msg = v4::Message::new_with_id(
        req.header.xid(),
        ciaddr,
        yiaddr,
        server,
        req.giaddr(),
        &req.mac.0,
    );
    msg.set_opcode(Opcode::BootReply)
        .set_htype(v4::HType::Eth)
        .set_hops(0)
        .set_secs(0);
    let mut flags = req.header.flags();
    if broadcast {
        flags = flags.set_broadcast();
    }
    msg.set_flags(flags);
    let mut buf = Vec::with_capacity(MIN_REPLY_LEN);
    let mut keep = options.len();
    loop {
        buf.clear();
        let mut e = Encoder::new(&mut buf);
        // With no options dhcproto writes the header and the magic cookie only.
        msg.encode(&mut e).ok()?;
        for o in &options[..keep] {
            o.encode(&mut e).ok()?;
        }
        DhcpOption::End.encode(&mut e).ok()?;
        if buf.len() <= req.max_reply_len() || keep <= 3 {
            break;
        }
        keep -= 1;
    }
    if buf.len() < MIN_REPLY_LEN {
        // Pad after End to the BOOTP minimum (RFC 2131 §4.1 allows it; dnsmasq does the same).
        buf.resize(MIN_REPLY_LEN, 0);
    }
    Some(buf)
}

/// A string option, NUL-terminated when the client's own were (Microsoft compatibility).
pub(crate) fn string_opt(code: OptionCode, s: &str, nul: bool) -> DhcpOption {
    let mut s = s.to_string();
    if nul {
        s.push('\0');
    }
    match code {
        OptionCode::Hostname => DhcpOption::Hostname(s),
        OptionCode::DomainName => DhcpOption::DomainName(s),
        _ => DhcpOption::Message(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<u8> {
        let mut b = vec![0u8; OPTIONS_AT];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&[1, 2, 3, 4]);
        b[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x77, 0, 0x20]);
        b[FIXED_LEN..OPTIONS_AT].copy_from_slice(&v4::MAGIC);
        b
    }

    #[test]
    fn minimal_discover() {
        let mut b = base();
        b.extend_from_slice(&[53, 1, 1, 255]);
        let r = parse_request(&b).unwrap();
        assert_eq!(r.msg_type, MessageType::Discover);
        assert_eq!(r.mac.to_string(), "52:54:00:77:00:20");
        assert_eq!(r.header.xid(), 0x01020304);
        assert!(r.wants(3), "no PRL means everything");
    }

    #[test]
    fn header_errors() {
        assert!(matches!(
            parse_request(&[1; 239]),
            Err(ParseError::TooShort(239))
        ));
        let mut b = base();
        b[0] = 2;
        assert!(matches!(parse_request(&b), Err(ParseError::NotRequest(2))));
        let mut b = base();
        b[FIXED_LEN] = 0;
        assert!(matches!(parse_request(&b), Err(ParseError::BadCookie)));
        let mut b = base();
        b[2] = 17;
        assert!(matches!(parse_request(&b), Err(ParseError::BadHlen(17))));
        let mut b = base();
        b[1] = 6;
        assert!(matches!(
            parse_request(&b),
            Err(ParseError::NotEthernet { htype: 6, hlen: 6 })
        ));
        let b = base();
        assert!(matches!(parse_request(&b), Err(ParseError::NoMessageType)));
        let mut b = base();
        b.extend_from_slice(&[53, 2, 1, 1]);
        assert!(matches!(parse_request(&b), Err(ParseError::NoMessageType)));
        let mut b = base();
        b.extend_from_slice(&[53, 1, 1, 12, 9, b'a']);
        assert!(matches!(
            parse_request(&b),
            Err(ParseError::TruncatedOption { code: 12 })
        ));
        let mut b = base();
        b.extend_from_slice(&[53, 1, 1, 12]);
        assert!(matches!(
            parse_request(&b),
            Err(ParseError::TruncatedOption { code: 12 })
        ));
    }

    /// dhcproto's own decoder asserts on these lengths in debug builds; ours must not care.
    #[test]
    fn options_that_trip_dhcproto_are_harmless() {
        for opt in [
            &[80u8, 1, 0][..],
            &[94, 1, 0],
            &[81, 1, 0],
            &[81, 0],
            &[151, 0],
            &[152, 1, 0],
        ] {
            let mut b = base();
            b.extend_from_slice(&[53, 1, 1]);
            b.extend_from_slice(opt);
            b.extend_from_slice(&[12, 2, b'v', b'm', 255]);
            let r = parse_request(&b).unwrap();
            assert_eq!(r.hostname.as_deref(), Some("vm"), "{opt:?}");
        }
    }

    #[test]
    fn non_utf8_hostname_does_not_hide_later_options() {
        let mut b = base();
        b.extend_from_slice(&[
            53, 1, 3, 12, 3, 0xff, b'a', b'b', 50, 4, 192, 168, 122, 9, 255,
        ]);
        let r = parse_request(&b).unwrap();
        assert_eq!(r.hostname.as_deref(), Some("ab"));
        assert_eq!(r.requested_ip, Some(Ipv4Addr::new(192, 168, 122, 9)));
    }

    #[test]
    fn concatenation_and_overload() {
        // RFC 3396: two pieces of option 12, and option 52 = 3 putting more options in file and
        // sname (file first).
        let mut b = base();
        b[FILE.start..FILE.start + 6].copy_from_slice(&[50, 4, 192, 168, 122, 7]);
        b[FILE.start + 6] = 255;
        b[SNAME.start..SNAME.start + 7].copy_from_slice(&[61, 5, 1, 2, 3, 4, 5]);
        b.extend_from_slice(&[
            53, 1, 1, 12, 3, b'a', b'b', b'c', 52, 1, 3, 12, 2, b'd', b'e', 255,
        ]);
        let r = parse_request(&b).unwrap();
        assert_eq!(r.hostname.as_deref(), Some("abcde"));
        assert_eq!(r.requested_ip, Some(Ipv4Addr::new(192, 168, 122, 7)));
        assert_eq!(r.client_id.as_deref(), Some(&[1, 2, 3, 4, 5][..]));
    }

    #[test]
    fn wrong_length_addresses_are_ignored() {
        let mut b = base();
        b.extend_from_slice(&[
            53, 1, 3, 50, 3, 1, 2, 3, 54, 5, 1, 2, 3, 4, 5, 51, 2, 0, 1, 255,
        ]);
        let r = parse_request(&b).unwrap();
        assert_eq!(r.requested_ip, None);
        assert_eq!(r.server_id, None);
        assert_eq!(r.requested_lease, None);
    }

    #[test]
    fn nul_terminated_hostname_is_noted() {
        let mut b = base();
        b.extend_from_slice(&[53, 1, 1, 12, 4, b'w', b'i', b'n', 0, 255]);
        let r = parse_request(&b).unwrap();
        assert_eq!(r.hostname.as_deref(), Some("win"));
        assert!(r.nul_terminated);
    }
}
