//! Element tree → [`NetworkDef`], element by element, following libvirt's `network_conf.c`
//! (`virNetworkDefParseXML` and the functions it calls) for defaults and per-element checks.
//! Whole-definition checks are in `validate.rs`; this file records where each element was so
//! those checks can point at a line.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use super::xml::Element;
use super::{
    err, AddrRange, Bridge, DhcpHost, DhcpRange, Dns, DnsForwarder, DnsHost, Domain, Forward,
    ForwardMode, IpDef, Lease, LeaseUnit, MacAddr, MacTableManager, MaskSyntax, Nat, NetworkDef,
    PortRange, Uuid, VirtualPort,
};
use crate::error::{ConfigError, ErrorKind, Warning};

/// Lines of the elements whole-definition checks may complain about (0 = unknown).
#[derive(Debug, Clone, Default)]
pub(crate) struct Locations {
    pub name: u32,
    pub title: u32,
    pub bridge: u32,
    /// `stp` or `delay` was written (libvirt refuses either outside the routed modes, even
    /// with default values).
    pub stp_or_delay_written: bool,
    pub forward: u32,
    pub interfaces: Vec<u32>,
    pub nat: u32,
    pub mtu: u32,
    pub mac: u32,
    pub domain: u32,
    pub dns: u32,
    pub forwarders: Vec<u32>,
    pub dns_hosts: Vec<u32>,
    pub ip: u32,
    pub ranges: Vec<u32>,
    pub hosts: Vec<u32>,
    pub virtualport: u32,
}

/// The line at `index` of a per-item list, 0 if unknown.
pub(crate) fn at(lines: &[u32], index: usize) -> u32 {
    lines.get(index).copied().unwrap_or(0)
}

/// `<network>` children libvirt defines that virtgate refuses.
const NETWORK_REFUSED: &[&str] = &[
    "metadata",
    "portgroup",
    "bandwidth",
    "vlan",
    "port",
    "route",
];

pub(crate) fn network(
    root: &Element,
    path: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<(NetworkDef, Locations), ConfigError> {
    if root.name != "network" {
        return Err(err(
            path,
            root.line,
            ErrorKind::Syntax,
            format!(
                "the root element is <{}>; libvirt network XML starts with <network>",
                root.name
            ),
        ));
    }
    // `connections` is runtime state libvirt prints for an active network (see module docs).
    root.check_attrs(&["ipv6"], &["connections"], path)?;
    if let Some(v) = root.attr("ipv6") {
        match yes_no(v, root, "ipv6", path)? {
            false => {}
            true => {
                return Err(err(
                    path,
                    root.line,
                    ErrorKind::Refused,
                    "attribute 'ipv6' of <network> (IPv6 between guests) is not supported by virtgate; remove it".into(),
                ))
            }
        }
    }
    root.check_children(
        &[
            "name",
            "uuid",
            "title",
            "description",
            "forward",
            "bridge",
            "mtu",
            "mac",
            "domain",
            "dns",
            "ip",
            "virtualport",
        ],
        NETWORK_REFUSED,
        path,
    )?;
    root.check_no_text(path)?;

    let mut loc = Locations::default();
    let name_el = root.single_child("name", path)?.ok_or_else(|| {
        err(
            path,
            root.line,
            ErrorKind::InvalidValue,
            "<network> has no <name>; add <name>NAME</name>".into(),
        )
    })?;
    loc.name = name_el.line;
    let mut def = NetworkDef::new(text_only(name_el, path)?);

    if let Some(el) = root.single_child("uuid", path)? {
        let text = text_only(el, path)?;
        def.uuid = Some(text.parse().map_err(|()| {
            invalid(
                el,
                path,
                format!(
                    "'{}' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                    text.trim()
                ),
            )
        })?);
    }
    if let Some(el) = root.single_child("title", path)? {
        loc.title = el.line;
        def.title = Some(text_only(el, path)?);
    }
    if let Some(el) = root.single_child("description", path)? {
        def.description = Some(text_only(el, path)?);
    }
    if let Some(el) = root.single_child("bridge", path)? {
        loc.bridge = el.line;
        let (bridge, written) = bridge(el, path)?;
        def.bridge = bridge;
        loc.stp_or_delay_written = written;
    }
    if let Some(el) = root.single_child("mtu", path)? {
        loc.mtu = el.line;
        el.check_attrs(&["size"], &[], path)?;
        no_content(el, path)?;
        let size = required(el, "size", path)?;
        let n: u32 = size
            .parse()
            .map_err(|_| invalid(el, path, format!("mtu size '{size}' is not a number")))?;
        def.mtu = Some(u16::try_from(n).ok().filter(|&m| m >= 68).ok_or_else(|| {
            invalid(
                el,
                path,
                format!("mtu size {n} is outside 68-65535 (what Linux accepts on a bridge)"),
            )
        })?);
    }
    if let Some(el) = root.single_child("mac", path)? {
        loc.mac = el.line;
        el.check_attrs(&["address"], &[], path)?;
        no_content(el, path)?;
        def.mac = Some(mac(el, required(el, "address", path)?, path)?);
    }
    if let Some(el) = root.single_child("forward", path)? {
        loc.forward = el.line;
        def.forward = Some(forward(el, path, &mut loc)?);
    }
    if let Some(el) = root.single_child("domain", path)? {
        loc.domain = el.line;
        el.check_attrs(&["name", "localOnly"], &[], path)?;
        no_content(el, path)?;
        def.domain = Some(Domain {
            name: required(el, "name", path)?.to_string(),
            local_only: el
                .attr("localOnly")
                .map(|v| yes_no(v, el, "localOnly", path))
                .transpose()?,
        });
    }
    if let Some(el) = root.single_child("dns", path)? {
        loc.dns = el.line;
        def.dns = dns(el, path, &mut loc)?;
    }

    let mut ipv4 = None;
    for el in root.children_named("ip") {
        let ip = ip(el, path, warnings, &mut loc)?;
        if ipv4.is_some() {
            return Err(err(
                path,
                el.line,
                ErrorKind::Refused,
                "a second IPv4 <ip> is not supported by virtgate: one subnet per network; \
                 define another network for the other subnet"
                    .into(),
            ));
        }
        loc.ip = el.line;
        ipv4 = Some(ip);
    }
    def.ip = ipv4;

    if let Some(el) = root.single_child("virtualport", path)? {
        loc.virtualport = el.line;
        def.virtualport = Some(virtualport(el, path)?);
    }
    Ok((def, loc))
}

fn bridge(el: &Element, path: &Path) -> Result<(Bridge, bool), ConfigError> {
    el.check_attrs(&["name", "stp", "delay", "macTableManager"], &[], path)?;
    no_content(el, path)?;
    let mut b = Bridge {
        name: el.attr("name").map(str::to_string),
        ..Bridge::default()
    };
    if let Some(stp) = el.attr("stp") {
        b.stp = match stp {
            "on" => true,
            "off" => false,
            other => {
                return Err(invalid(
                    el,
                    path,
                    format!("stp='{other}' must be 'on' or 'off'"),
                ))
            }
        };
    }
    if let Some(delay) = el.attr("delay") {
        b.delay = delay.parse().map_err(|_| {
            invalid(
                el,
                path,
                format!("delay='{delay}' is not a number of seconds"),
            )
        })?;
    }
    if let Some(m) = el.attr("macTableManager") {
        b.mac_table_manager = Some(match m {
            "kernel" => MacTableManager::Kernel,
            // libvirt's mode turns off the bridge's learning and flooding and programs the FDB
            // from the guests' MACs; virtgate does not, so accepting it would ignore it.
            "libvirt" => {
                return Err(err(
                    path,
                    el.line,
                    ErrorKind::Refused,
                    "macTableManager='libvirt' is not supported by virtgate (the bridge keeps \
                     kernel MAC learning); remove it or use macTableManager='kernel'"
                        .into(),
                ))
            }
            other => {
                return Err(invalid(
                    el,
                    path,
                    format!("macTableManager='{other}' must be 'kernel' or 'libvirt'"),
                ))
            }
        });
    }
    let written = el.attr("stp").is_some() || el.attr("delay").is_some();
    Ok((b, written))
}

fn forward(el: &Element, path: &Path, loc: &mut Locations) -> Result<Forward, ConfigError> {
    // The mode first: for hostdev, its `managed` and `<pf>` are not the problem.
    // libvirt: <forward> without mode is NAT.
    let mode = match el.attr("mode") {
        None => ForwardMode::Nat,
        Some("hostdev") => {
            return Err(err(
                path,
                el.line,
                ErrorKind::Refused,
                "forward mode='hostdev' (SR-IOV PCI passthrough) is not supported by virtgate"
                    .into(),
            ))
        }
        Some(m) => m.parse().map_err(|m: String| {
            invalid(
                el,
                path,
                format!(
                    "unknown forward mode '{m}'; libvirt's modes are nat, route, open, bridge, \
                     vepa, private, passthrough and hostdev"
                ),
            )
        })?,
    };
    el.check_attrs(&["mode", "dev"], &[], path)?;
    el.check_children(&["interface", "nat"], &["pf", "address", "driver"], path)?;
    el.check_no_text(path)?;
    let mut fwd = Forward::new(mode);
    let dev = el.attr("dev");
    if let Some(d) = dev {
        fwd.interfaces.push(d.to_string());
        loc.interfaces.push(el.line);
    }
    for (i, iface) in el.children_named("interface").enumerate() {
        // `connections` is runtime state (see module docs).
        iface.check_attrs(&["dev"], &["connections"], path)?;
        no_content(iface, path)?;
        let name = required(iface, "dev", path)?;
        if i == 0 && dev.is_some() {
            if dev != Some(name) {
                return Err(err(
                    path,
                    iface.line,
                    ErrorKind::Conflict,
                    format!(
                        "<forward dev='{}'> must name the first <interface dev='{name}'/> \
                         (libvirt's rule); make them the same",
                        dev.unwrap_or_default()
                    ),
                ));
            }
            continue;
        }
        if fwd.interfaces.iter().any(|d| d == name) {
            return Err(err(
                path,
                iface.line,
                ErrorKind::Conflict,
                format!("interface '{name}' is listed twice in <forward>; keep one"),
            ));
        }
        fwd.interfaces.push(name.to_string());
        loc.interfaces.push(iface.line);
    }
    if let Some(nat) = el.single_child("nat", path)? {
        loc.nat = nat.line;
        if mode != ForwardMode::Nat {
            return Err(err(
                path,
                nat.line,
                ErrorKind::Conflict,
                format!("<nat> is only allowed in <forward mode='nat'>, not mode='{mode}'"),
            ));
        }
        fwd.nat = nat_element(nat, path)?;
    }
    Ok(fwd)
}

fn nat_element(el: &Element, path: &Path) -> Result<Nat, ConfigError> {
    el.check_attrs(&[], &[], path)?;
    el.check_children(&["address", "port"], &[], path)?;
    el.check_no_text(path)?;
    let mut nat = Nat::default();
    if let Some(a) = el.single_child("address", path)? {
        a.check_attrs(&["start", "end"], &[], path)?;
        no_content(a, path)?;
        let start = ipv4(a, "start", path)?;
        let end = ipv4(a, "end", path)?;
        if end < start {
            return Err(invalid(
                a,
                path,
                format!("NAT address range {start}-{end} ends before it starts"),
            ));
        }
        nat.addresses = Some(AddrRange { start, end });
    }
    if let Some(p) = el.single_child("port", path)? {
        p.check_attrs(&["start", "end"], &[], path)?;
        no_content(p, path)?;
        let port = |name: &str| -> Result<u16, ConfigError> {
            let v = required(p, name, path)?;
            v.parse::<u16>().ok().filter(|&n| n >= 1).ok_or_else(|| {
                invalid(
                    p,
                    path,
                    format!("NAT port {name}='{v}' must be a port number 1-65535"),
                )
            })
        };
        let (start, end) = (port("start")?, port("end")?);
        if end < start {
            return Err(invalid(
                p,
                path,
                format!("NAT port range {start}-{end} ends before it starts"),
            ));
        }
        nat.ports = Some(PortRange { start, end });
    }
    Ok(nat)
}

fn dns(el: &Element, path: &Path, loc: &mut Locations) -> Result<Dns, ConfigError> {
    el.check_attrs(&["enable", "forwardPlainNames"], &[], path)?;
    el.check_children(&["forwarder", "host"], &["txt", "srv"], path)?;
    el.check_no_text(path)?;
    let mut dns = Dns {
        enable: el
            .attr("enable")
            .map(|v| yes_no(v, el, "enable", path))
            .transpose()?,
        forward_plain_names: el
            .attr("forwardPlainNames")
            .map(|v| yes_no(v, el, "forwardPlainNames", path))
            .transpose()?,
        ..Dns::default()
    };
    for f in el.children_named("forwarder") {
        f.check_attrs(&["addr", "domain"], &[], path)?;
        no_content(f, path)?;
        let addr = f
            .attr("addr")
            .map(|a| {
                a.parse::<IpAddr>().map_err(|_| {
                    invalid(
                        f,
                        path,
                        format!("forwarder addr='{a}' is not an IP address"),
                    )
                })
            })
            .transpose()?;
        dns.forwarders.push(DnsForwarder {
            addr,
            domain: f.attr("domain").map(str::to_string),
        });
        loc.forwarders.push(f.line);
    }
    for h in el.children_named("host") {
        dns.hosts.push(dns_host(h, path)?);
        loc.dns_hosts.push(h.line);
    }
    Ok(dns)
}

/// A complete `<dns><host>` (an address and at least one name).
pub(crate) fn dns_host(h: &Element, path: &Path) -> Result<DnsHost, ConfigError> {
    let (ip, hostnames) = dns_host_spec(h, path, false)?;
    let ip = ip.ok_or_else(|| {
        invalid(
            h,
            path,
            "DNS <host> has no ip=; add the address the names resolve to".into(),
        )
    })?;
    Ok(DnsHost { ip, hostnames })
}

/// The parts of a `<dns><host>`: the address (if given) and the names.
pub(crate) fn dns_host_spec(
    h: &Element,
    path: &Path,
    partial: bool,
) -> Result<(Option<IpAddr>, Vec<String>), ConfigError> {
    h.check_attrs(&["ip"], &[], path)?;
    h.check_children(&["hostname"], &[], path)?;
    h.check_no_text(path)?;
    let ip = h
        .attr("ip")
        .map(|a| {
            a.parse::<IpAddr>()
                .map_err(|_| invalid(h, path, format!("DNS host ip='{a}' is not an IP address")))
        })
        .transpose()?;
    let mut names = Vec::new();
    for n in h.children_named("hostname") {
        names.push(text_only(n, path)?);
    }
    if names.is_empty() && !partial {
        return Err(invalid(
            h,
            path,
            "DNS <host> has no <hostname>; add at least one".into(),
        ));
    }
    if ip.is_none() && names.is_empty() {
        return Err(invalid(
            h,
            path,
            "DNS <host> needs ip= or a <hostname> to find the record".into(),
        ));
    }
    Ok((ip, names))
}

fn ip(
    el: &Element,
    path: &Path,
    warnings: &mut Vec<Warning>,
    loc: &mut Locations,
) -> Result<IpDef, ConfigError> {
    el.check_attrs(&["address", "netmask", "prefix", "family"], &[], path)?;
    let ipv6_refused = || {
        err(
            path,
            el.line,
            ErrorKind::Refused,
            "IPv6 <ip> is not supported by virtgate (IPv4 only); remove this <ip>".into(),
        )
    };
    match el.attr("family") {
        None | Some("ipv4") => {}
        Some("ipv6") => return Err(ipv6_refused()),
        Some(other) => {
            return Err(invalid(
                el,
                path,
                format!("family='{other}' must be 'ipv4' or 'ipv6'"),
            ))
        }
    }
    let text = required(el, "address", path)?;
    let address = match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a,
        Ok(IpAddr::V6(_)) => return Err(ipv6_refused()),
        Err(_) => {
            return Err(invalid(
                el,
                path,
                format!("address='{text}' is not an IPv4 address"),
            ))
        }
    };
    el.check_children(&["dhcp"], &["tftp"], path)?;
    el.check_no_text(path)?;

    let (prefix, mask_syntax) = match (el.attr("netmask"), el.attr("prefix")) {
        (Some(_), Some(_)) => {
            return Err(err(
                path,
                el.line,
                ErrorKind::Conflict,
                "<ip> has both netmask= and prefix=; keep one".into(),
            ))
        }
        (Some(m), None) => {
            let mask: Ipv4Addr = m
                .parse()
                .map_err(|_| invalid(el, path, format!("netmask='{m}' is not an IPv4 netmask")))?;
            let bits = u32::from(mask);
            let ones = bits.leading_ones();
            if bits.checked_shl(ones).unwrap_or(0) != 0 {
                return Err(invalid(
                    el,
                    path,
                    format!("netmask='{m}' is not contiguous (like 255.255.255.0)"),
                ));
            }
            (u8::try_from(ones).unwrap_or(32), MaskSyntax::Netmask)
        }
        (None, Some(p)) => {
            let n: u8 = p
                .parse()
                .map_err(|_| invalid(el, path, format!("prefix='{p}' is not a number 1-30")))?;
            (n, MaskSyntax::Prefix)
        }
        (None, None) => {
            // libvirt falls back to the address's class (virSocketAddrGetIPPrefix).
            let first = address.octets()[0];
            let classful = match first {
                0..=127 => 8,
                128..=191 => 16,
                192..=223 => 24,
                _ => {
                    return Err(invalid(
                        el,
                        path,
                        format!("<ip address='{address}'> needs netmask= or prefix="),
                    ))
                }
            };
            warnings.push(Warning::new(
                path,
                el.line,
                format!(
                    "<ip> has no netmask or prefix; using /{classful} from the address class, \
                     as libvirt does; write prefix='{classful}' to make it explicit"
                ),
            ));
            (classful, MaskSyntax::Prefix)
        }
    };
    if !(1..=30).contains(&prefix) {
        return Err(invalid(
            el,
            path,
            format!(
                "subnet prefix /{prefix} is not usable for a virtual network: it must be 1-30 \
                 (/31 and /32 leave no address for guests)"
            ),
        ));
    }
    let mut def = IpDef {
        address,
        prefix,
        mask_syntax,
        dhcp_ranges: Vec::new(),
        dhcp_hosts: Vec::new(),
    };
    if let Some(dhcp) = el.single_child("dhcp", path)? {
        dhcp.check_attrs(&[], &[], path)?;
        dhcp.check_children(&["range", "host"], &["bootp"], path)?;
        dhcp.check_no_text(path)?;
        for r in dhcp.children_named("range") {
            r.check_attrs(&["start", "end"], &[], path)?;
            r.check_children(&["lease"], &[], path)?;
            r.check_no_text(path)?;
            let start = range_addr(r, "start", path)?;
            let end = range_addr(r, "end", path)?;
            def.dhcp_ranges.push(DhcpRange {
                start,
                end,
                lease: lease_child(r, path)?,
            });
            loc.ranges.push(r.line);
        }
        for h in dhcp.children_named("host") {
            let spec = dhcp_host_spec(h, path)?;
            def.dhcp_hosts.push(spec.complete(h, path)?);
            loc.hosts.push(h.line);
        }
    }
    Ok(def)
}

fn range_addr(r: &Element, name: &str, path: &Path) -> Result<Ipv4Addr, ConfigError> {
    let v = required(r, name, path)?;
    match v.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(a),
        Ok(IpAddr::V6(_)) => Err(err(
            path,
            r.line,
            ErrorKind::Refused,
            format!("IPv6 DHCP range {name}='{v}' is not supported by virtgate"),
        )),
        Err(_) => Err(invalid(
            r,
            path,
            format!("range {name}='{v}' is not an IPv4 address"),
        )),
    }
}

/// The attributes of a `<dhcp><host>`, each optional (net-update delete matches on any).
#[derive(Debug, Clone, Default)]
pub(crate) struct HostSpec {
    pub mac: Option<MacAddr>,
    pub name: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub lease: Option<Lease>,
}

impl HostSpec {
    /// A full reservation: `mac` and `ip` are required.
    pub fn complete(self, h: &Element, path: &Path) -> Result<DhcpHost, ConfigError> {
        let Some(mac) = self.mac else {
            return Err(err(
                path,
                h.line,
                ErrorKind::Refused,
                "<host> without mac= (matching the client by host name) is not supported by \
                 virtgate; add the guest's mac="
                    .into(),
            ));
        };
        let ip = self.ip.ok_or_else(|| {
            invalid(
                h,
                path,
                "<host> has no ip=; add the address to reserve".into(),
            )
        })?;
        Ok(DhcpHost {
            mac,
            name: self.name,
            ip,
            lease: self.lease,
        })
    }
}

pub(crate) fn dhcp_host_spec(h: &Element, path: &Path) -> Result<HostSpec, ConfigError> {
    h.check_attrs(&["mac", "name", "ip"], &[], path)?;
    h.check_children(&["lease"], &[], path)?;
    h.check_no_text(path)?;
    let mac = h.attr("mac").map(|m| mac(h, m, path)).transpose()?;
    let ip = h
        .attr("ip")
        .map(|v| match v.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Ok(a),
            Ok(IpAddr::V6(_)) => Err(err(
                path,
                h.line,
                ErrorKind::Refused,
                format!("IPv6 DHCP host ip='{v}' is not supported by virtgate"),
            )),
            Err(_) => Err(invalid(
                h,
                path,
                format!("host ip='{v}' is not an IPv4 address"),
            )),
        })
        .transpose()?;
    Ok(HostSpec {
        mac,
        name: h.attr("name").map(str::to_string),
        ip,
        lease: lease_child(h, path)?,
    })
}

/// Lease times longer than this cannot be sent in DHCP (RFC 2132 §9.2: 32 bits of seconds,
/// 0xffffffff meaning infinite).
const MAX_LEASE_SECS: u64 = u32::MAX as u64 - 1;

fn lease_child(parent: &Element, path: &Path) -> Result<Option<Lease>, ConfigError> {
    let Some(el) = parent.single_child("lease", path)? else {
        return Ok(None);
    };
    el.check_attrs(&["expiry", "unit"], &[], path)?;
    no_content(el, path)?;
    let expiry_text = required(el, "expiry", path)?;
    let expiry: u64 = expiry_text.parse().map_err(|_| {
        invalid(
            el,
            path,
            format!("lease expiry='{expiry_text}' is not a number"),
        )
    })?;
    // libvirt: the unit defaults to minutes.
    let unit = match el.attr("unit") {
        None | Some("minutes") => LeaseUnit::Minutes,
        Some("seconds") => LeaseUnit::Seconds,
        Some("hours") => LeaseUnit::Hours,
        Some(other) => {
            return Err(invalid(
                el,
                path,
                format!("lease unit='{other}' must be seconds, minutes or hours"),
            ))
        }
    };
    if expiry == 0 {
        return Ok(Some(Lease::Infinite));
    }
    let secs = expiry.saturating_mul(unit.seconds());
    if secs < 120 {
        // libvirt's check, from dnsmasq: "The minimum lease time is two minutes."
        return Err(invalid(
            el,
            path,
            format!(
                "lease of {expiry} {} is shorter than the two-minute minimum; use expiry='0' \
                 for an infinite lease",
                unit.as_str()
            ),
        ));
    }
    if secs > MAX_LEASE_SECS {
        return Err(invalid(
            el,
            path,
            format!(
                "lease of {expiry} {} is longer than DHCP can express ({MAX_LEASE_SECS} \
                 seconds); use expiry='0' for an infinite lease",
                unit.as_str()
            ),
        ));
    }
    Ok(Some(Lease::Finite { expiry, unit }))
}

fn virtualport(el: &Element, path: &Path) -> Result<VirtualPort, ConfigError> {
    el.check_attrs(&["type"], &[], path)?;
    el.check_children(&["parameters"], &[], path)?;
    el.check_no_text(path)?;
    match el.attr("type") {
        Some("openvswitch") => {}
        Some(t @ ("802.1Qbg" | "802.1Qbh" | "midonet")) => {
            return Err(err(
                path,
                el.line,
                ErrorKind::Refused,
                format!("<virtualport type='{t}'> is not supported by virtgate (only openvswitch)"),
            ))
        }
        Some(other) => {
            return Err(invalid(
                el,
                path,
                format!("unknown virtualport type='{other}'"),
            ))
        }
        None => {
            return Err(invalid(
                el,
                path,
                "<virtualport> in a network needs type= (virtgate supports 'openvswitch')".into(),
            ))
        }
    }
    let mut interface_id = None;
    if let Some(p) = el.single_child("parameters", path)? {
        p.check_attrs(&["interfaceid"], &[], path)?;
        no_content(p, path)?;
        if let Some(id) = p.attr("interfaceid") {
            interface_id = Some(
                id.parse::<Uuid>()
                    .map_err(|()| invalid(p, path, format!("interfaceid='{id}' is not a UUID")))?,
            );
        }
    }
    Ok(VirtualPort::OpenVswitch { interface_id })
}

// --- small helpers -------------------------------------------------------------------------

fn invalid(el: &Element, path: &Path, message: String) -> ConfigError {
    err(path, el.line, ErrorKind::InvalidValue, message)
}

/// The value of a required attribute.
pub(crate) fn required<'a>(
    el: &'a Element,
    name: &str,
    path: &Path,
) -> Result<&'a str, ConfigError> {
    el.attr(name).ok_or_else(|| {
        invalid(
            el,
            path,
            format!("<{}> has no {name}= attribute; add it", el.name),
        )
    })
}

/// Refuses children and text in an element that is all attributes.
fn no_content(el: &Element, path: &Path) -> Result<(), ConfigError> {
    el.check_children(&[], &[], path)?;
    el.check_no_text(path)
}

/// The text of an element that holds only text.
fn text_only(el: &Element, path: &Path) -> Result<String, ConfigError> {
    el.check_attrs(&[], &[], path)?;
    el.check_children(&[], &[], path)?;
    Ok(el.text.clone())
}

fn yes_no(v: &str, el: &Element, attr: &str, path: &Path) -> Result<bool, ConfigError> {
    match v {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(invalid(
            el,
            path,
            format!("{attr}='{other}' must be 'yes' or 'no'"),
        )),
    }
}

fn ipv4(el: &Element, name: &str, path: &Path) -> Result<Ipv4Addr, ConfigError> {
    let v = required(el, name, path)?;
    v.parse()
        .map_err(|_| invalid(el, path, format!("{name}='{v}' is not an IPv4 address")))
}

fn mac(el: &Element, text: &str, path: &Path) -> Result<MacAddr, ConfigError> {
    text.parse().map_err(|()| {
        invalid(
            el,
            path,
            format!("'{text}' is not a MAC address (like 52:54:00:12:34:56)"),
        )
    })
}
