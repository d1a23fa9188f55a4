//! Test harness: a network on virtual time, and guests that build their messages with dhcproto
//! the way ISC dhclient 4.4 builds them (client/dhclient.c make_discover/make_request/
//! make_decline/make_release): no client identifier, `send host-name` on every message, the
//! parameter request list from dhclient.conf, flags 0 (Linux can take unicast before it is
//! configured), ciaddr only when BOUND/RENEWING/REBINDING, padded to 300 octets.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime};

use virtgate_dhcp::dhcproto::v4::{self, DhcpOption, MessageType, OptionCode};
use virtgate_dhcp::dhcproto::{Decodable, Encodable, Encoder};
use virtgate_dhcp::{
    Arrival, Config, LeaseEngine, LeaseEvent, LeaseTime, Range, Reply, StaticHost,
};

/// `request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers,
/// interface-mtu;` — the list shared/realpeer/dhcp-peer.sh configures.
pub const PRL_REALPEER: &[u8] = &[1, 28, 3, 15, 6, 26];
/// Debian 12's /etc/dhcp/dhclient.conf `request` list, IPv4 codes only (dhclient drops the dhcp6.*
/// ones from option 55): subnet-mask, broadcast-address, time-offset, routers, domain-name,
/// domain-name-servers, domain-search, host-name, netbios-name-servers, netbios-scope,
/// interface-mtu, rfc3442-classless-static-routes, ntp-servers.
pub const PRL_DEBIAN: &[u8] = &[1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42];
/// dhclient's built-in list when dhclient.conf has no `request` (client/clparse.c).
pub const PRL_BUILTIN: &[u8] = &[1, 28, 2, 3, 15, 6, 12];

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 122, 1);
pub const FIXED_MAC: [u8; 6] = [0x52, 0x54, 0, 0x77, 0, 0x21];
pub const FIXED_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 122, 50);

/// libvirt's default network as check-vmnet.sh defines it.
pub fn libvirt_default() -> Config {
    let mut c = Config::new(SERVER, 24);
    c.ranges
        .push(Range::new(ip("192.168.122.2"), ip("192.168.122.254")));
    c.hosts.push(StaticHost {
        mac: virtgate_dhcp::MacAddr(FIXED_MAC),
        ip: FIXED_IP,
        name: Some("fixed".into()),
        lease: None,
    });
    c
}

pub struct Net {
    pub engine: LeaseEngine,
    pub t0: Instant,
    pub now: Instant,
    pub wall0: SystemTime,
}

impl Net {
    pub fn new(cfg: Config) -> Net {
        let t0 = Instant::now();
        Net {
            engine: LeaseEngine::new(cfg).unwrap(),
            t0,
            now: t0,
            wall0: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    pub fn wall_now(&self) -> SystemTime {
        self.wall0 + (self.now - self.t0)
    }

    /// A broadcast from an unconfigured client (0.0.0.0:68 → 255.255.255.255:67).
    pub fn send(&mut self, bytes: &[u8]) -> Option<Reply> {
        let arrival = Arrival {
            ifindex: Some(7),
            from: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            dst: Some(Ipv4Addr::BROADCAST),
        };
        self.engine.handle_packet(self.now, bytes, arrival)
    }

    /// A datagram unicast from `from`:68 to the server (RENEWING, RELEASE, INFORM).
    pub fn send_unicast(&mut self, from: Ipv4Addr, bytes: &[u8]) -> Option<Reply> {
        let arrival = Arrival {
            ifindex: Some(7),
            from: SocketAddrV4::new(from, 68),
            dst: Some(SERVER),
        };
        self.engine.handle_packet(self.now, bytes, arrival)
    }

    /// A datagram broadcast by a configured client (REBINDING).
    pub fn send_broadcast_from(&mut self, from: Ipv4Addr, bytes: &[u8]) -> Option<Reply> {
        let arrival = Arrival {
            ifindex: Some(7),
            from: SocketAddrV4::new(from, 68),
            dst: Some(Ipv4Addr::BROADCAST),
        };
        self.engine.handle_packet(self.now, bytes, arrival)
    }

    /// Move virtual time on, firing the engine's timer as a driver would.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(t) = self.engine.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.engine.handle_timeout(self.now);
        }
        self.now = target;
        self.engine.handle_timeout(self.now);
    }

    pub fn events(&mut self) -> Vec<LeaseEvent> {
        std::iter::from_fn(|| self.engine.poll_event()).collect()
    }

    /// DISCOVER → OFFER → REQUEST → ACK; returns the leased address.
    pub fn dora(&mut self, g: &mut Guest) -> Ipv4Addr {
        let offer = self.send(&g.discover()).expect("an offer");
        let offer = decode(&offer);
        assert_eq!(msg_type(&offer), MessageType::Offer);
        let ack = self
            .send(&g.request_selecting(SERVER, offer.yiaddr()))
            .expect("an ack");
        let ack = decode(&ack);
        assert_eq!(msg_type(&ack), MessageType::Ack, "{ack}");
        assert_eq!(ack.yiaddr(), offer.yiaddr());
        g.new_xid();
        ack.yiaddr()
    }
}

pub struct Guest {
    pub mac: [u8; 6],
    pub hostname: Option<String>,
    pub prl: Vec<u8>,
    pub client_id: Option<Vec<u8>>,
    pub xid: u32,
    pub broadcast_flag: bool,
}

impl Guest {
    /// A guest running dhclient with shared/realpeer/dhcp-peer.sh's dhclient.conf.
    pub fn dhclient(mac: [u8; 6], hostname: &str) -> Guest {
        Guest {
            mac,
            hostname: Some(hostname.to_string()),
            prl: PRL_REALPEER.to_vec(),
            client_id: None,
            xid: u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]),
            broadcast_flag: false,
        }
    }

    pub fn numbered(n: u16) -> Guest {
        let [a, b] = n.to_be_bytes();
        Guest::dhclient([0x52, 0x54, 0, 0x10, a, b], &format!("vm{n}"))
    }

    pub fn new_xid(&mut self) {
        self.xid = self.xid.wrapping_mul(1_103_515_245).wrapping_add(12345);
    }

    fn message(&self, t: MessageType, ciaddr: Ipv4Addr, prl: bool) -> v4::Message {
        let z = Ipv4Addr::UNSPECIFIED;
        let mut m = v4::Message::new_with_id(self.xid, ciaddr, z, z, z, &self.mac);
        if self.broadcast_flag {
            m.set_flags(v4::Flags::default().set_broadcast());
        }
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(t));
        if let Some(h) = &self.hostname {
            o.insert(DhcpOption::Hostname(h.clone()));
        }
        if prl {
            o.insert(DhcpOption::ParameterRequestList(
                self.prl.iter().map(|&c| OptionCode::from(c)).collect(),
            ));
        }
        if let Some(id) = &self.client_id {
            o.insert(DhcpOption::ClientIdentifier(id.clone()));
        }
        m
    }

    pub fn discover(&self) -> Vec<u8> {
        encode(&self.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, true))
    }

    /// DISCOVER with option 50, as dhclient sends when it remembers a lease.
    pub fn discover_requesting(&self, want: Ipv4Addr) -> Vec<u8> {
        let mut m = self.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, true);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(want));
        encode(&m)
    }

    pub fn request_selecting(&self, server: Ipv4Addr, want: Ipv4Addr) -> Vec<u8> {
        let mut m = self.message(MessageType::Request, Ipv4Addr::UNSPECIFIED, true);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(want));
        encode(&m)
    }

    pub fn request_init_reboot(&self, want: Ipv4Addr) -> Vec<u8> {
        let mut m = self.message(MessageType::Request, Ipv4Addr::UNSPECIFIED, true);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(want));
        encode(&m)
    }

    /// RENEWING (unicast) and REBINDING (broadcast) send the same message.
    pub fn request_renew(&self, ciaddr: Ipv4Addr) -> Vec<u8> {
        encode(&self.message(MessageType::Request, ciaddr, true))
    }

    pub fn decline(&self, server: Ipv4Addr, addr: Ipv4Addr) -> Vec<u8> {
        let mut m = self.message(MessageType::Decline, Ipv4Addr::UNSPECIFIED, false);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(addr));
        encode(&m)
    }

    pub fn release(&self, server: Ipv4Addr, ciaddr: Ipv4Addr) -> Vec<u8> {
        let mut m = self.message(MessageType::Release, ciaddr, false);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        encode(&m)
    }

    pub fn inform(&self, ciaddr: Ipv4Addr) -> Vec<u8> {
        encode(&self.message(MessageType::Inform, ciaddr, true))
    }
}

/// Encode with dhcproto and pad to BOOTP_MIN_LEN (300) as dhclient does.
pub fn encode(m: &v4::Message) -> Vec<u8> {
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).unwrap();
    if buf.len() < 300 {
        buf.resize(300, 0);
    }
    buf
}

pub fn decode(r: &Reply) -> v4::Message {
    v4::Message::from_bytes(&r.bytes).unwrap()
}

pub fn msg_type(m: &v4::Message) -> MessageType {
    m.opts().msg_type().unwrap()
}

pub fn lease_secs(m: &v4::Message) -> Option<u32> {
    match m.opts().get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(s)) => Some(*s),
        _ => None,
    }
}

pub fn hostname_opt(m: &v4::Message) -> Option<String> {
    match m.opts().get(OptionCode::Hostname) {
        Some(DhcpOption::Hostname(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Option codes in the order they appear on the wire (dhcproto's map would sort them).
pub fn wire_option_order(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 240;
    while let Some(&code) = bytes.get(i) {
        match code {
            0 => i += 1,
            255 => break,
            c => {
                out.push(c);
                i += 2 + usize::from(bytes[i + 1]);
            }
        }
    }
    out
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn finite(n: u64) -> Option<LeaseTime> {
    Some(LeaseTime::Finite(secs(n)))
}
