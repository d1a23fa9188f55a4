//! Whole-definition checks: what libvirt refuses when a network is defined or started
//! (`network_conf.c`, the network driver's `networkValidate`), plus what virtgate needs to be
//! true before it creates devices, firewall rules and a DHCP server from the definition.
//!
//! Each check points at the element it concerns when the definition came from XML.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use super::parse::{at, Locations};
use super::{err, ForwardMode, IpDef, Lease, NetworkDef, VirtualPort};
use crate::error::{ConfigError, ErrorKind};

/// Longest network name. libvirt sets none; the name becomes a file name in the state
/// directory and a word on the command line, so virtgate keeps it short and plain.
pub(crate) const MAX_NAME_LEN: usize = 64;

pub(crate) fn validate(def: &NetworkDef, loc: &Locations, path: &Path) -> Result<(), ConfigError> {
    let conflict = |line: u32, message: String| err(path, line, ErrorKind::Conflict, message);
    let invalid = |line: u32, message: String| err(path, line, ErrorKind::InvalidValue, message);

    check_network_name(&def.name).map_err(|m| invalid(loc.name, m))?;
    if let Some(title) = &def.title {
        if title.contains('\n') {
            return Err(invalid(
                loc.title,
                "<title> must be one line (libvirt's rule)".into(),
            ));
        }
    }
    if let Some(name) = &def.bridge.name {
        check_device_name(name, "bridge").map_err(|m| invalid(loc.bridge, m))?;
    }
    if let Some(mtu) = def.mtu {
        if mtu < 68 {
            return Err(invalid(
                loc.mtu,
                format!("mtu size {mtu} is outside 68-65535"),
            ));
        }
    }
    if let Some(mac) = def.mac {
        if mac.is_multicast() {
            return Err(invalid(
                loc.mac,
                format!("bridge MAC {mac} is a multicast address; use a unicast one"),
            ));
        }
    }

    // --- forward mode vs. the rest (libvirt's virNetworkDefParseXML and networkValidate) ---
    let mode = def.forward_mode();
    let mode_name = mode.map_or("isolated (no <forward>)", ForwardMode::as_str);
    let interfaces: &[String] = def.forward.as_ref().map_or(&[], |f| &f.interfaces);
    for (i, name) in interfaces.iter().enumerate() {
        check_device_name(name, "forward interface")
            .map_err(|m| invalid(at(&loc.interfaces, i), m))?;
        if interfaces.iter().take(i).any(|n| n == name) {
            return Err(conflict(
                at(&loc.interfaces, i),
                format!("interface '{name}' is listed twice in <forward>; keep one"),
            ));
        }
    }
    let stp_or_delay = loc.stp_or_delay_written || !def.bridge.stp || def.bridge.delay != 0;
    match mode {
        None | Some(ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open) => {
            if let Some(m) = mode {
                if def.ip.is_none() {
                    return Err(conflict(
                        loc.forward,
                        format!(
                            "forward mode='{m}' needs an <ip> element: the bridge's address \
                             and subnet that guests are routed from"
                        ),
                    ));
                }
            }
            if interfaces.len() > 1 {
                return Err(conflict(
                    at(&loc.interfaces, 1),
                    format!(
                        "forward mode='{mode_name}' takes at most one forward interface (the \
                         one traffic may leave through)"
                    ),
                ));
            }
            if mode == Some(ForwardMode::Open) && !interfaces.is_empty() {
                return Err(conflict(
                    loc.forward,
                    "forward mode='open' takes no dev or <interface>: virtgate adds no rules \
                     that could restrict where traffic goes"
                        .into(),
                ));
            }
            if def.virtualport.is_some() {
                return Err(conflict(
                    loc.virtualport,
                    format!(
                        "<virtualport> is for networks on an existing bridge (forward \
                         mode='bridge'), not {mode_name}"
                    ),
                ));
            }
        }
        Some(m) => {
            // bridge, vepa, private, passthrough: guests attach to something that exists.
            if stp_or_delay {
                return Err(conflict(
                    loc.bridge,
                    format!(
                        "bridge stp/delay only apply to bridges virtgate creates (isolated, \
                         nat, route, open), not forward mode='{m}'"
                    ),
                ));
            }
            if m.is_macvtap() {
                if def.bridge.name.is_some() {
                    return Err(conflict(
                        loc.bridge,
                        format!("a bridge name is not allowed in forward mode='{m}' (macvtap)"),
                    ));
                }
                if def.bridge.mac_table_manager.is_some() {
                    return Err(conflict(
                        loc.bridge,
                        format!("macTableManager is not allowed in forward mode='{m}' (macvtap)"),
                    ));
                }
                if interfaces.is_empty() {
                    return Err(conflict(
                        loc.forward,
                        format!(
                            "forward mode='{m}' needs the parent device(s): add dev= or \
                             <interface dev='eth0'/>"
                        ),
                    ));
                }
                if def.virtualport.is_some() {
                    return Err(conflict(
                        loc.virtualport,
                        format!("<virtualport> is not allowed in forward mode='{m}'"),
                    ));
                }
            } else {
                // mode='bridge': a host bridge by name, or macvtap bridge mode on a pool.
                match (&def.bridge.name, interfaces.is_empty()) {
                    (Some(_), false) => {
                        return Err(conflict(
                            loc.bridge,
                            "forward mode='bridge' takes a <bridge name> (an existing host \
                             bridge) or <interface dev> (macvtap), not both"
                                .into(),
                        ))
                    }
                    (None, true) => {
                        return Err(conflict(
                            loc.forward,
                            "forward mode='bridge' needs <bridge name='br0'/> (an existing \
                             host bridge) or <interface dev='eth0'/> (macvtap)"
                                .into(),
                        ))
                    }
                    _ => {}
                }
                if let Some(VirtualPort::OpenVswitch { .. }) = &def.virtualport {
                    if def.bridge.name.is_none() {
                        return Err(conflict(
                            loc.virtualport,
                            "<virtualport type='openvswitch'> needs <bridge name> (the Open \
                             vSwitch bridge)"
                                .into(),
                        ));
                    }
                }
            }
            // Nothing of virtgate's runs on a bridge it does not own.
            let refuse = |what: &str, line: u32| {
                conflict(
                    line,
                    format!(
                        "{what} is not allowed with forward mode='{m}': virtgate does not own \
                         this network's link (libvirt refuses it too)"
                    ),
                )
            };
            if def.mtu.is_some() {
                return Err(refuse("<mtu>", loc.mtu));
            }
            if def.mac.is_some() {
                return Err(refuse("<mac>", loc.mac));
            }
            if def.ip.is_some() {
                return Err(refuse("<ip>", loc.ip));
            }
            if def.domain.is_some() {
                return Err(refuse("<domain>", loc.domain));
            }
            if !def.dns.is_default() {
                return Err(refuse("<dns>", loc.dns));
            }
        }
    }

    if let Some(fwd) = &def.forward {
        if fwd.mode != ForwardMode::Nat && fwd.nat != super::Nat::default() {
            return Err(conflict(
                loc.nat,
                format!(
                    "<nat> is only allowed in <forward mode='nat'>, not mode='{}'",
                    fwd.mode
                ),
            ));
        }
        if let Some(p) = fwd.nat.ports {
            if p.start == 0 || p.end < p.start {
                return Err(invalid(
                    loc.nat,
                    format!(
                        "NAT port range {}-{} must be within 1-65535 and end at or after its \
                         start",
                        p.start, p.end
                    ),
                ));
            }
        }
        if let Some(a) = fwd.nat.addresses {
            if a.end < a.start {
                return Err(invalid(
                    loc.nat,
                    format!(
                        "NAT address range {}-{} ends before it starts",
                        a.start, a.end
                    ),
                ));
            }
        }
    }

    // --- names and DNS ---
    if let Some(domain) = &def.domain {
        check_dns_name(&domain.name)
            .map_err(|m| invalid(loc.domain, format!("<domain name='{}'>: {m}", domain.name)))?;
    }
    if def.dns.enable == Some(false) && !(def.dns.forwarders.is_empty() && def.dns.hosts.is_empty())
    {
        return Err(conflict(
            loc.dns,
            "<dns enable='no'> cannot have forwarders or hosts (libvirt's rule); remove them or \
             enable DNS"
                .into(),
        ));
    }
    for (i, f) in def.dns.forwarders.iter().enumerate() {
        let line = at(&loc.forwarders, i);
        if f.addr.is_none() && f.domain.is_none() {
            return Err(invalid(
                line,
                "<forwarder> needs addr= or domain= (or both)".into(),
            ));
        }
        if let Some(d) = &f.domain {
            check_dns_name(d).map_err(|m| invalid(line, format!("forwarder domain '{d}': {m}")))?;
        }
    }
    let mut dns_ips: HashSet<IpAddr> = HashSet::new();
    for (i, h) in def.dns.hosts.iter().enumerate() {
        let line = at(&loc.dns_hosts, i);
        if h.hostnames.is_empty() {
            return Err(invalid(
                line,
                "DNS <host> has no <hostname>; add at least one".into(),
            ));
        }
        for n in &h.hostnames {
            check_dns_name(n).map_err(|m| invalid(line, format!("hostname '{n}': {m}")))?;
        }
        if !dns_ips.insert(h.ip) {
            return Err(conflict(
                line,
                format!(
                    "DNS host {} appears twice; put all its names in one <host>",
                    h.ip
                ),
            ));
        }
    }

    if let Some(ip) = &def.ip {
        validate_ip(ip, loc, path)?;
    }
    Ok(())
}

fn validate_ip(ip: &IpDef, loc: &Locations, path: &Path) -> Result<(), ConfigError> {
    let conflict = |line: u32, message: String| err(path, line, ErrorKind::Conflict, message);
    let invalid = |line: u32, message: String| err(path, line, ErrorKind::InvalidValue, message);
    let subnet = format!("{}/{}", ip.network(), ip.prefix);
    if !(1..=30).contains(&ip.prefix) {
        return Err(invalid(
            loc.ip,
            format!("subnet prefix /{} must be 1-30", ip.prefix),
        ));
    }
    if ip.address == ip.network() || ip.address == ip.broadcast() {
        return Err(invalid(
            loc.ip,
            format!(
                "{} is the {} address of {subnet}; give the bridge a host address",
                ip.address,
                if ip.address == ip.network() {
                    "network"
                } else {
                    "broadcast"
                }
            ),
        ));
    }
    let special = |a: Ipv4Addr| -> Option<&'static str> {
        if a == ip.network() {
            Some("the subnet's network address")
        } else if a == ip.broadcast() {
            Some("the subnet's broadcast address")
        } else if a == ip.address {
            Some("the bridge's own address")
        } else {
            None
        }
    };

    for (i, r) in ip.dhcp_ranges.iter().enumerate() {
        let line = at(&loc.ranges, i);
        let what = format!("DHCP range {}-{}", r.start, r.end);
        if r.end < r.start {
            return Err(invalid(line, format!("{what} ends before it starts")));
        }
        if !ip.contains(r.start) || !ip.contains(r.end) {
            return Err(invalid(
                line,
                format!("{what} is not inside the network's subnet {subnet}"),
            ));
        }
        for a in [ip.network(), ip.broadcast(), ip.address] {
            if r.contains(a) {
                return Err(invalid(
                    line,
                    format!(
                        "{what} contains {a}, {}; start or end the range around it",
                        special(a).unwrap_or_default()
                    ),
                ));
            }
        }
        if let Some(lease) = r.lease {
            check_lease(lease).map_err(|m| invalid(line, m))?;
        }
        if let Some(other) = ip
            .dhcp_ranges
            .iter()
            .take(i)
            .find(|o| o.start <= r.end && r.start <= o.end)
        {
            return Err(conflict(
                line,
                format!(
                    "{what} overlaps DHCP range {}-{}; ranges must not share addresses",
                    other.start, other.end
                ),
            ));
        }
    }

    let mut macs = HashSet::new();
    let mut ips = HashSet::new();
    for (i, h) in ip.dhcp_hosts.iter().enumerate() {
        let line = at(&loc.hosts, i);
        if h.mac.is_multicast() {
            return Err(invalid(
                line,
                format!("DHCP host MAC {} is a multicast address", h.mac),
            ));
        }
        if !ip.contains(h.ip) {
            return Err(invalid(
                line,
                format!(
                    "DHCP host {} ({}) is not inside the network's subnet {subnet}",
                    h.ip, h.mac
                ),
            ));
        }
        if let Some(what) = special(h.ip) {
            return Err(invalid(
                line,
                format!("DHCP host {} ({}) is {what}", h.ip, h.mac),
            ));
        }
        if let Some(name) = &h.name {
            check_host_name(name).map_err(|m| invalid(line, format!("host name '{name}': {m}")))?;
        }
        if let Some(lease) = h.lease {
            check_lease(lease).map_err(|m| invalid(line, m))?;
        }
        if !macs.insert(h.mac) {
            return Err(conflict(
                line,
                format!("DHCP host MAC {} is reserved twice; keep one <host>", h.mac),
            ));
        }
        if !ips.insert(h.ip) {
            return Err(conflict(
                line,
                format!(
                    "DHCP host address {} is reserved twice (the second time for {}); one \
                     address per guest",
                    h.ip, h.mac
                ),
            ));
        }
    }
    Ok(())
}

fn check_lease(lease: Lease) -> Result<(), String> {
    match lease {
        Lease::Infinite => Ok(()),
        Lease::Finite { expiry, unit } => {
            let secs = expiry.saturating_mul(unit.seconds());
            if secs < 120 {
                Err(format!(
                    "lease of {expiry} {} is shorter than the two-minute minimum",
                    unit.as_str()
                ))
            } else if secs > u64::from(u32::MAX - 1) {
                Err(format!(
                    "lease of {expiry} {} is longer than DHCP can express",
                    unit.as_str()
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// Network names: 1-64 characters, letters (any script), digits and `-_.+:@`, not starting
/// with `-` or `.`. Stricter than libvirt (which only forbids `/`) because the name is used as
/// a file name under `--state-dir` and as a command-line word.
pub(crate) fn check_network_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("<name> is empty; name the network".into());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!(
            "network name '{name}' is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if name.starts_with('-') || name.starts_with('.') {
        return Err(format!(
            "network name '{name}' may not start with '-' or '.'"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_alphanumeric() || "-_.+:@".contains(c)))
    {
        return Err(format!(
            "network name '{}' contains {c:?}; use letters, digits and - _ . + : @",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Linux network device names (`dev_valid_name`): 1-15 bytes, not `.` or `..`, no `/`, `:`
/// or whitespace. `%` is refused too: libvirt's `virbr%d` templates are not supported (leave
/// the name out and the daemon picks a free `virbrN`).
pub(crate) fn check_device_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if name.len() > 15 {
        return Err(format!(
            "{what} name '{name}' is {} bytes; Linux allows at most 15",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("'{name}' is not a valid {what} name"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c == '/' || c == ':' || c == '%' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{what} name '{}' contains {c:?}, which Linux device names cannot",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// DNS names: 1-253 characters, dot-separated labels of 1-63 letters, digits, `-` and `_`,
/// no label starting or ending with `-`.
pub(crate) fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a DNS name must have 1 to 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label must have 1 to 63 characters".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label may not start or end with '-'".into());
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(format!(
                "{c:?} is not allowed in a DNS name (letters, digits, '-', '_' and '.')"
            ));
        }
    }
    Ok(())
}

/// DHCP host names: a DNS name starting with a letter or digit (libvirt's rule).
pub(crate) fn check_host_name(name: &str) -> Result<(), String> {
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or digit".into());
    }
    check_dns_name(name)
}
