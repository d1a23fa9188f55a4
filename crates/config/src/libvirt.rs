//! libvirt network XML (what `virsh net-dumpxml` prints, libvirt's `formatnetwork.html`,
//! schema `network.rng`) → [`NetworkDef`], and back with [`NetworkDef::to_xml`].
//!
//! virtgate takes network definitions unchanged from libvirt. What it implements is typed:
//!
//! | element | what virtgate keeps |
//! |---|---|
//! | `<network>` | — (`connections` is dropped, see below) |
//! | `<name>`, `<uuid>`, `<title>`, `<description>` | [`NetworkDef::name`], [`Uuid`], text |
//! | `<forward mode dev>` + `<interface dev>` | [`Forward`]: `nat`, `route`, `open`, `bridge`, `vepa`, `private`, `passthrough`; absent = isolated |
//! | `<forward><nat><address start end/><port start end/>` | [`Nat`] |
//! | `<bridge name stp delay macTableManager>` | [`Bridge`] |
//! | `<mtu size>`, `<mac address>` | `u16`, [`MacAddr`] |
//! | `<domain name localOnly>` | [`Domain`] |
//! | `<dns enable forwardPlainNames>`, `<forwarder addr domain>`, `<host ip><hostname>` | [`Dns`] |
//! | `<ip address netmask\|prefix family='ipv4'>` | [`IpDef`] (one IPv4 address per network) |
//! | `<dhcp><range start end>`, `<host mac name ip>`, each with `<lease expiry unit>` | [`DhcpRange`], [`DhcpHost`], [`Lease`] |
//! | `<virtualport type='openvswitch'><parameters interfaceid>` | [`VirtualPort`] |
//!
//! Everything else libvirt defines is **refused** with the element's (or attribute's) name and
//! line — `element <portgroup> is not supported by virtgate` — never silently ignored: IPv6
//! `<ip>`, a second `<ip>`, `<tftp>`, `<bootp>`, `<portgroup>`, `<bandwidth>`, `<vlan>`,
//! `<route>`, `<port>`, `<metadata>`, `<dns><srv>`/`<txt>`, `forward mode='hostdev'`,
//! `<forward><pf>`/`<address>`/`<driver>`, `<nat ipv6>`, `<bridge zone>`, `<ip localPtr>`,
//! `<domain register>`, `trustGuestRxFilters`, `<network ipv6='yes'>`, dnsmasq options, and
//! `<dhcp><host>` without `mac=` (dnsmasq would match it by the client's host name; virtgate's
//! DHCP server reserves by MAC only). Names libvirt does not know at all are reported as
//! unknown (a typo, usually).
//!
//! One thing is accepted and dropped, because it is state rather than configuration:
//! `connections='N'` on `<network>` and on `<forward><interface>`, which libvirt prints for a
//! running network (how many guest interfaces are attached). Re-defining a network from
//! `virsh net-dumpxml` output of a running network therefore works, and `to_xml` leaves it out
//! (as `virsh net-dumpxml --inactive` does). `<network ipv6='no'>` is libvirt's default and is
//! accepted as such.
//!
//! Parsing follows libvirt's own rules (`network_conf.c`): `<forward>` without `mode` is `nat`;
//! `stp` defaults to on and `delay` to 0; a lease `unit` defaults to minutes, `expiry='0'` is
//! infinite and anything shorter than two minutes is refused; `<forward dev>` must name the
//! first `<interface>`; `nat`/`route`/`open` need an `<ip>`; macvtap modes take no bridge
//! name, STP, delay or MTU. On top of that the definition is validated as a whole (see
//! [`NetworkDef::validate`]): DHCP ranges and reserved hosts inside the subnet and off its
//! network, broadcast and bridge addresses, no duplicate MACs or IPs, interface and bridge
//! names the kernel accepts, and so on. [`check_overlaps`] checks a set of networks against
//! each other.
//!
//! [`NetworkDef::update`] is `virsh net-update` for the two sections virtgate changes live:
//! `ip-dhcp-host` and `dns-host`.
//!
//! ```
//! use virtgate_config::libvirt::{ForwardMode, NetworkDef};
//!
//! let xml = "<network>
//!   <name>default</name>
//!   <bridge name='virbr0'/>
//!   <forward/>
//!   <ip address='192.168.122.1' netmask='255.255.255.0'>
//!     <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
//!   </ip>
//! </network>";
//! let net = NetworkDef::parse(xml, "default.xml")?.value;
//! assert_eq!(net.forward_mode(), Some(ForwardMode::Nat));
//! assert_eq!(net, NetworkDef::libvirt_default());
//! let again = NetworkDef::parse(&net.to_xml(), "dump.xml")?.value;
//! assert_eq!(again, net);
//! # Ok::<(), virtgate_config::ConfigError>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{ConfigError, ErrorKind, Parsed};
use crate::files::Filesystem;
use crate::ppp_options::read_text;

mod format;
mod overlap;
mod parse;
mod update;
mod validate;
mod xml;

pub use overlap::{check_overlaps, NetworkConflict};
pub use update::{UpdateOp, UpdateSection};

/// The NAT source ports libvirt uses when `<nat><port>` is absent (its iptables/nftables rules
/// masquerade TCP and UDP to 1024-65535).
pub const DEFAULT_NAT_PORTS: PortRange = PortRange {
    start: 1024,
    end: 65535,
};

/// One libvirt virtual network.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetworkDef {
    /// `<name>`: how the network is named on the command line and in the state directory.
    pub name: String,
    /// `<uuid>`; `None` when the XML has none (the daemon generates one when it stores the
    /// definition, as libvirt does).
    pub uuid: Option<Uuid>,
    /// `<title>`: a one-line description.
    pub title: Option<String>,
    /// `<description>`: free text.
    pub description: Option<String>,
    /// `<forward>`; `None` is an isolated network (guests reach each other and the host only).
    pub forward: Option<Forward>,
    /// `<bridge>`: the bridge virtgate creates (isolated, `nat`, `route`, `open`), or the host
    /// bridge guests are attached to (`forward mode='bridge'` without interfaces).
    pub bridge: Bridge,
    /// `<mtu size>` of the bridge (and the DHCP MTU option).
    pub mtu: Option<u16>,
    /// `<mac address>` of the bridge; `None` lets the daemon pick one (libvirt generates a
    /// random `52:54:00:xx:xx:xx`).
    pub mac: Option<MacAddr>,
    /// `<domain>`: the DNS domain of the guests.
    pub domain: Option<Domain>,
    /// `<dns>`: the DNS server on the bridge address.
    pub dns: Dns,
    /// `<ip>`: the bridge's IPv4 address and subnet, with DHCP.
    pub ip: Option<IpDef>,
    /// `<virtualport>`: the host bridge is an Open vSwitch bridge.
    pub virtualport: Option<VirtualPort>,
}

/// `<forward>`: how the network reaches the outside.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Forward {
    /// `mode` (default `nat`).
    pub mode: ForwardMode,
    /// `dev=` and the `<interface dev>` list: for `nat`/`route` the one interface traffic may
    /// leave through; for the macvtap modes the pool of parent devices.
    pub interfaces: Vec<String>,
    /// `<nat>` (only with `mode='nat'`).
    pub nat: Nat,
}

impl Forward {
    /// A `<forward mode>` with no interfaces and no `<nat>` settings.
    pub fn new(mode: ForwardMode) -> Forward {
        Forward {
            mode,
            interfaces: Vec::new(),
            nat: Nat::default(),
        }
    }
}

/// libvirt's forward modes that virtgate implements (`hostdev` is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardMode {
    /// Routed with source NAT (masquerade) toward the outside.
    Nat,
    /// Routed without NAT.
    Route,
    /// Routed, and virtgate adds no firewall rules at all.
    Open,
    /// Guests join an existing host bridge (Linux or Open vSwitch), or macvtap in bridge mode
    /// on the `<interface>` pool.
    Bridge,
    /// macvtap VEPA: guest-to-guest traffic goes through the external switch.
    Vepa,
    /// macvtap private: guests on one parent never reach each other.
    Private,
    /// macvtap passthrough: one guest takes a whole parent device.
    Passthrough,
}

impl ForwardMode {
    /// The `mode=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardMode::Nat => "nat",
            ForwardMode::Route => "route",
            ForwardMode::Open => "open",
            ForwardMode::Bridge => "bridge",
            ForwardMode::Vepa => "vepa",
            ForwardMode::Private => "private",
            ForwardMode::Passthrough => "passthrough",
        }
    }

    /// Modes where virtgate creates the bridge and serves DHCP/DNS on it (like isolated).
    pub fn is_routed(self) -> bool {
        matches!(
            self,
            ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open
        )
    }

    /// Modes that attach guests with macvtap to a parent device (bridge mode does so only
    /// when it has `<interface>`s).
    pub fn is_macvtap(self) -> bool {
        matches!(
            self,
            ForwardMode::Vepa | ForwardMode::Private | ForwardMode::Passthrough
        )
    }
}

impl fmt::Display for ForwardMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ForwardMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "nat" => ForwardMode::Nat,
            "route" => ForwardMode::Route,
            "open" => ForwardMode::Open,
            "bridge" => ForwardMode::Bridge,
            "vepa" => ForwardMode::Vepa,
            "private" => ForwardMode::Private,
            "passthrough" => ForwardMode::Passthrough,
            other => return Err(other.to_string()),
        })
    }
}

/// `<nat>` inside `<forward mode='nat'>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Nat {
    /// `<address start end>`: SNAT to this range of public addresses instead of masquerading.
    pub addresses: Option<AddrRange>,
    /// `<port start end>`: source ports for NAT; `None` means libvirt's
    /// [`DEFAULT_NAT_PORTS`].
    pub ports: Option<PortRange>,
}

impl Nat {
    /// The port range NAT uses: the configured one or libvirt's default 1024-65535.
    pub fn effective_ports(&self) -> PortRange {
        self.ports.unwrap_or(DEFAULT_NAT_PORTS)
    }
}

/// An inclusive range of IPv4 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrRange {
    /// First address.
    pub start: Ipv4Addr,
    /// Last address (inclusive).
    pub end: Ipv4Addr,
}

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port (1-65535).
    pub start: u16,
    /// Last port (inclusive, >= `start`).
    pub end: u16,
}

/// `<bridge>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bridge {
    /// `name`: the bridge device. `None` on a network virtgate creates the bridge for means
    /// "pick a free `virbrN`" (libvirt's behaviour).
    pub name: Option<String>,
    /// `stp` (default on); only for bridges virtgate creates.
    pub stp: bool,
    /// `delay`: STP forward delay in seconds (default 0); only for bridges virtgate creates.
    pub delay: u32,
    /// `macTableManager`.
    pub mac_table_manager: Option<MacTableManager>,
}

impl Default for Bridge {
    /// No name, STP on, delay 0: what libvirt assumes when `<bridge>` says nothing.
    fn default() -> Bridge {
        Bridge {
            name: None,
            stp: true,
            delay: 0,
            mac_table_manager: None,
        }
    }
}

impl Bridge {
    /// A bridge called `name` with libvirt's defaults.
    pub fn named(name: impl Into<String>) -> Bridge {
        Bridge {
            name: Some(name.into()),
            ..Bridge::default()
        }
    }
}

/// `<bridge macTableManager>`: who maintains the bridge's forwarding database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacTableManager {
    /// The kernel learns addresses (the default).
    Kernel,
    /// Learning and unicast flooding are turned off on guest ports and the manager adds each
    /// guest's MAC itself.
    Libvirt,
}

impl MacTableManager {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            MacTableManager::Kernel => "kernel",
            MacTableManager::Libvirt => "libvirt",
        }
    }
}

/// `<domain name localOnly>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Domain {
    /// The domain guests' names live in (DHCP option 15, DNS).
    pub name: String,
    /// `localOnly`: answer names in this domain only locally, never forward them. `None`
    /// when the XML does not say (libvirt's default is no).
    pub local_only: Option<bool>,
}

impl Domain {
    /// A domain with `localOnly` unset.
    pub fn new(name: impl Into<String>) -> Domain {
        Domain {
            name: name.into(),
            local_only: None,
        }
    }
}

/// `<dns>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dns {
    /// `enable`: `Some(false)` turns the DNS server off. `None`: not said (on).
    pub enable: Option<bool>,
    /// `forwardPlainNames`: forward single-label names upstream. `None`: not said (libvirt's
    /// default is yes).
    pub forward_plain_names: Option<bool>,
    /// `<forwarder>`s.
    pub forwarders: Vec<DnsForwarder>,
    /// `<host>` records.
    pub hosts: Vec<DnsHost>,
}

impl Dns {
    /// Whether the network runs a DNS server (`enable` is not `no`).
    pub fn enabled(&self) -> bool {
        self.enable != Some(false)
    }

    fn is_default(&self) -> bool {
        *self == Dns::default()
    }
}

/// `<dns><forwarder addr domain>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DnsForwarder {
    /// Server to forward to. Without it and with a `domain`: names in that domain are answered
    /// locally only.
    pub addr: Option<IpAddr>,
    /// Forward only names in this domain.
    pub domain: Option<String>,
}

impl DnsForwarder {
    /// A forwarder (at least one of `addr` and `domain` should be given).
    pub fn new(addr: Option<IpAddr>, domain: Option<String>) -> DnsForwarder {
        DnsForwarder { addr, domain }
    }

    /// A forwarder for everything to `addr`.
    pub fn to(addr: IpAddr) -> DnsForwarder {
        DnsForwarder {
            addr: Some(addr),
            domain: None,
        }
    }
}

/// `<dns><host ip><hostname>...`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DnsHost {
    /// The address the names resolve to (may be IPv6: an AAAA record).
    pub ip: IpAddr,
    /// At least one name.
    pub hostnames: Vec<String>,
}

impl DnsHost {
    /// A host record.
    pub fn new(ip: IpAddr, hostnames: Vec<String>) -> DnsHost {
        DnsHost { ip, hostnames }
    }
}

/// How `<ip>` wrote its subnet size (kept so `to_xml` writes it back the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaskSyntax {
    /// `netmask='255.255.255.0'`.
    Netmask,
    /// `prefix='24'`.
    Prefix,
}

/// `<ip>`: the bridge's IPv4 address and subnet, and its DHCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IpDef {
    /// The bridge's address (the guests' gateway, DHCP and DNS server).
    pub address: Ipv4Addr,
    /// Subnet prefix length (1-30).
    pub prefix: u8,
    /// Whether the XML said `netmask` or `prefix`.
    pub mask_syntax: MaskSyntax,
    /// `<dhcp><range>`s; DHCP is on when there are ranges or hosts.
    pub dhcp_ranges: Vec<DhcpRange>,
    /// `<dhcp><host>` reservations.
    pub dhcp_hosts: Vec<DhcpHost>,
}

impl IpDef {
    /// `address` with `netmask` syntax, no DHCP.
    pub fn new(address: Ipv4Addr, prefix: u8) -> IpDef {
        IpDef {
            address,
            prefix,
            mask_syntax: MaskSyntax::Netmask,
            dhcp_ranges: Vec::new(),
            dhcp_hosts: Vec::new(),
        }
    }

    /// The netmask of `prefix`.
    pub fn netmask(&self) -> Ipv4Addr {
        prefix_mask(self.prefix)
    }

    /// The subnet's network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) & u32::from(self.netmask()))
    }

    /// The subnet's broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) | !u32::from(self.netmask()))
    }

    /// Whether `ip` is in the subnet (network and broadcast addresses included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.netmask()) == u32::from(self.network())
    }

    /// Whether the network serves DHCP.
    pub fn dhcp_enabled(&self) -> bool {
        !self.dhcp_ranges.is_empty() || !self.dhcp_hosts.is_empty()
    }
}

/// The netmask with `prefix` leading ones (`prefix` above 32 counts as 32).
pub(crate) fn prefix_mask(prefix: u8) -> Ipv4Addr {
    match prefix {
        0 => Ipv4Addr::UNSPECIFIED,
        p if p >= 32 => Ipv4Addr::BROADCAST,
        p => Ipv4Addr::from(u32::MAX << (32 - u32::from(p))),
    }
}

/// `<dhcp><range start end>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DhcpRange {
    /// First address handed out.
    pub start: Ipv4Addr,
    /// Last address handed out (inclusive).
    pub end: Ipv4Addr,
    /// `<lease>`; `None`: the default lease time (one hour, dnsmasq's default under libvirt).
    pub lease: Option<Lease>,
}

impl DhcpRange {
    /// A range with the default lease time.
    pub fn new(start: Ipv4Addr, end: Ipv4Addr) -> DhcpRange {
        DhcpRange {
            start,
            end,
            lease: None,
        }
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }
}

/// `<dhcp><host mac name ip>`: a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DhcpHost {
    /// The guest's MAC.
    pub mac: MacAddr,
    /// Host name given to the guest (and answered by DNS).
    pub name: Option<String>,
    /// The reserved address.
    pub ip: Ipv4Addr,
    /// `<lease>`; `None`: the default.
    pub lease: Option<Lease>,
}

impl DhcpHost {
    /// A reservation with the default lease time.
    pub fn new(mac: MacAddr, name: Option<String>, ip: Ipv4Addr) -> DhcpHost {
        DhcpHost {
            mac,
            name,
            ip,
            lease: None,
        }
    }
}

/// `<lease expiry unit>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lease {
    /// `expiry='0'`: the lease never expires.
    Infinite,
    /// `expiry` (> 0) in `unit`; at least two minutes (libvirt and dnsmasq's minimum).
    Finite {
        /// The number of units.
        expiry: u64,
        /// The unit (`minutes` when the XML does not say).
        unit: LeaseUnit,
    },
}

impl Lease {
    /// How long the lease lasts; `None` for infinite.
    pub fn duration(self) -> Option<Duration> {
        match self {
            Lease::Infinite => None,
            Lease::Finite { expiry, unit } => {
                Some(Duration::from_secs(expiry.saturating_mul(unit.seconds())))
            }
        }
    }
}

/// `<lease unit>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseUnit {
    /// `seconds`.
    Seconds,
    /// `minutes` (libvirt's default unit).
    Minutes,
    /// `hours`.
    Hours,
}

impl LeaseUnit {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseUnit::Seconds => "seconds",
            LeaseUnit::Minutes => "minutes",
            LeaseUnit::Hours => "hours",
        }
    }

    /// Seconds in one unit.
    pub fn seconds(self) -> u64 {
        match self {
            LeaseUnit::Seconds => 1,
            LeaseUnit::Minutes => 60,
            LeaseUnit::Hours => 3600,
        }
    }
}

/// `<virtualport>` at network level.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VirtualPort {
    /// `type='openvswitch'`: the host bridge is an Open vSwitch bridge; ports are added with
    /// `ovs-vsctl` and libvirt's external-ids.
    OpenVswitch {
        /// `<parameters interfaceid>`: the `iface-id` external-id (Open vSwitch's name for
        /// the port's logical interface).
        interface_id: Option<Uuid>,
    },
}

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Whether the group bit is set (multicast or broadcast).
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = ();

    /// Six groups of one or two hex digits separated by `:` (libvirt's `virMacAddrParse`);
    /// case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or(())?;
            if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| ())?;
        }
        if parts.next().is_some() {
            return Err(());
        }
        Ok(MacAddr(out))
    }
}

/// A 128-bit UUID, written `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Uuid {
    type Err = ();

    /// 32 hex digits; `-` may separate pairs of digits and blanks may surround the whole
    /// (libvirt's `virUUIDParse` is this lenient).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 16];
        let mut digits = 0usize;
        // A dash may not lead, trail, follow another dash or split a byte.
        let mut after_dash = true;
        for b in s.trim().bytes() {
            if b == b'-' {
                if after_dash || digits & 1 == 1 {
                    return Err(());
                }
                after_dash = true;
                continue;
            }
            let d = hex_digit(b)?;
            let byte = out.get_mut(digits / 2).ok_or(())?;
            *byte = *byte << 4 | d;
            digits += 1;
            after_dash = false;
        }
        if digits != 32 || after_dash {
            return Err(());
        }
        Ok(Uuid(out))
    }
}

fn hex_digit(b: u8) -> Result<u8, ()> {
    match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(()),
    }
}

impl NetworkDef {
    /// A network called `name` with nothing else: isolated, no address (useful as a base for
    /// building definitions in code; validate before use).
    pub fn new(name: impl Into<String>) -> NetworkDef {
        NetworkDef {
            name: name.into(),
            uuid: None,
            title: None,
            description: None,
            forward: None,
            bridge: Bridge::default(),
            mtu: None,
            mac: None,
            domain: None,
            dns: Dns::default(),
            ip: None,
            virtualport: None,
        }
    }

    /// libvirt's `default` network (its `networks/default.xml`): bridge `virbr0` with STP on
    /// and delay 0, `forward mode='nat'`, `192.168.122.1/255.255.255.0`, DHCP range
    /// `192.168.122.2`-`192.168.122.254`. No UUID and no MAC: the daemon assigns them when it
    /// first stores the network, as libvirt does on install.
    pub fn libvirt_default() -> NetworkDef {
        let mut ip = IpDef::new(Ipv4Addr::new(192, 168, 122, 1), 24);
        ip.dhcp_ranges.push(DhcpRange::new(
            Ipv4Addr::new(192, 168, 122, 2),
            Ipv4Addr::new(192, 168, 122, 254),
        ));
        NetworkDef {
            forward: Some(Forward::new(ForwardMode::Nat)),
            bridge: Bridge::named("virbr0"),
            ip: Some(ip),
            ..NetworkDef::new("default")
        }
    }

    /// Parses libvirt network XML. `path` names it in errors and warnings. Never panics.
    ///
    /// The result is validated ([`NetworkDef::validate`]); errors point at the line of the
    /// offending element.
    pub fn parse(xml: &str, path: impl AsRef<Path>) -> Result<Parsed<NetworkDef>, ConfigError> {
        let path = path.as_ref();
        let root = xml::parse_document(xml, path)?;
        let mut warnings = Vec::new();
        let (def, lines) = parse::network(&root, path, &mut warnings)?;
        validate::validate(&def, &lines, path)?;
        Ok(Parsed {
            value: def,
            warnings,
        })
    }

    /// Reads and parses the network XML file at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Parsed<NetworkDef>, ConfigError> {
        let path = path.as_ref();
        let text = read_text(&mut Filesystem, path, path, 0, "network XML file")?;
        NetworkDef::parse(&text, path)
    }

    /// Checks a definition as [`NetworkDef::parse`] does, for one built or changed in code.
    /// Errors name the network (`network 'NAME': ...`) instead of a file and line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self, &parse::Locations::default(), &self.pseudo_path())
    }

    /// The forward mode; `None` for an isolated network.
    pub fn forward_mode(&self) -> Option<ForwardMode> {
        self.forward.as_ref().map(|f| f.mode)
    }

    /// Whether virtgate creates and owns this network's bridge (isolated, `nat`, `route`,
    /// `open`): it then sets its address, serves DHCP and DNS on it and adds firewall rules.
    pub fn owns_bridge(&self) -> bool {
        self.forward_mode().is_none_or(ForwardMode::is_routed)
    }

    /// Whether guests attach with macvtap (`vepa`, `private`, `passthrough`, or `bridge` with
    /// an `<interface>` pool).
    pub fn uses_macvtap(&self) -> bool {
        match &self.forward {
            Some(f) if f.mode.is_macvtap() => true,
            Some(f) => f.mode == ForwardMode::Bridge && !f.interfaces.is_empty(),
            None => false,
        }
    }

    /// The path errors about this definition carry when it did not come from a file.
    pub(crate) fn pseudo_path(&self) -> PathBuf {
        PathBuf::from(format!("network '{}'", self.name))
    }
}

/// Builds an error of `kind` at `path:line`.
pub(crate) fn err(path: &Path, line: u32, kind: ErrorKind, message: String) -> ConfigError {
    ConfigError::new(path, line, kind, message)
}

#[cfg(test)]
mod tests;
