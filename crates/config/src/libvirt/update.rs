//! `virsh net-update` for the sections virtgate changes on a running network: `ip-dhcp-host`
//! (`<host mac name ip>` reservations) and `dns-host` (`<host ip><hostname>` records).
//!
//! Matching follows libvirt's `virNetworkDefUpdateIPDHCPHost` / `virNetworkDefUpdateDNSHost`:
//!
//! - `ip-dhcp-host add`: refused if an existing reservation has the same MAC, name or IP.
//!   `modify`: replaces the reservation with the same MAC, IP or name. `delete`: removes the
//!   first reservation matching every attribute given (one is enough).
//! - `dns-host add`: refused if a record has the same IP (several records may share names).
//!   `delete`: the one record with that IP or any of those names; none or several matching
//!   is an error. `modify` is refused, as libvirt does ("DNS HOST records cannot be modified,
//!   only added or deleted").
//!
//! An update either applies whole, leaving a definition that passes
//! [`NetworkDef::validate`], or changes nothing.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::parse::{dhcp_host_spec, dns_host, dns_host_spec};
use super::xml::{parse_document, Element};
use super::{err, NetworkDef};
use crate::error::{ConfigError, ErrorKind};

/// The part of the definition a `net-update` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpdateSection {
    /// `ip-dhcp-host`: `<host mac name ip>` in `<ip><dhcp>`.
    IpDhcpHost,
    /// `dns-host`: `<host ip><hostname>` in `<dns>`.
    DnsHost,
}

impl UpdateSection {
    /// virsh's name for the section.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateSection::IpDhcpHost => "ip-dhcp-host",
            UpdateSection::DnsHost => "dns-host",
        }
    }
}

impl fmt::Display for UpdateSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sections virsh knows that virtgate does not update live.
const OTHER_SECTIONS: &[&str] = &[
    "bridge",
    "domain",
    "ip",
    "ip-dhcp-range",
    "forward",
    "forward-interface",
    "forward-pf",
    "portgroup",
    "dns-srv",
    "dns-txt",
];

impl FromStr for UpdateSection {
    type Err = String;

    /// `ip-dhcp-host` or `dns-host`; the error says why anything else is not accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ip-dhcp-host" => Ok(UpdateSection::IpDhcpHost),
            "dns-host" => Ok(UpdateSection::DnsHost),
            other if OTHER_SECTIONS.contains(&other) => Err(format!(
                "section '{other}' cannot be updated live by virtgate (ip-dhcp-host and \
                 dns-host can); change the definition and restart the network"
            )),
            other => Err(format!(
                "unknown section '{other}'; virtgate updates ip-dhcp-host and dns-host"
            )),
        }
    }
}

/// What a `net-update` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpdateOp {
    /// `add-first`: insert before the existing entries.
    AddFirst,
    /// `add` / `add-last`: append.
    AddLast,
    /// `delete`.
    Delete,
    /// `modify`.
    Modify,
}

impl UpdateOp {
    /// virsh's name for the command.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOp::AddFirst => "add-first",
            UpdateOp::AddLast => "add-last",
            UpdateOp::Delete => "delete",
            UpdateOp::Modify => "modify",
        }
    }

    fn is_add(self) -> bool {
        matches!(self, UpdateOp::AddFirst | UpdateOp::AddLast)
    }
}

impl fmt::Display for UpdateOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UpdateOp {
    type Err = String;

    /// virsh's words: `add` (= `add-last`), `add-first`, `add-last`, `delete`, `modify`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "add" | "add-last" => Ok(UpdateOp::AddLast),
            "add-first" => Ok(UpdateOp::AddFirst),
            "delete" => Ok(UpdateOp::Delete),
            "modify" => Ok(UpdateOp::Modify),
            other => Err(format!(
                "unknown update command '{other}'; use add, add-first, add-last, delete or modify"
            )),
        }
    }
}

impl NetworkDef {
    /// Applies a `virsh net-update`-style change: `xml` is the element of `section` (a
    /// `<host>` in both cases). On error nothing changes. Errors carry the network's name and
    /// the line within `xml`.
    pub fn update(
        &mut self,
        section: UpdateSection,
        op: UpdateOp,
        xml: &str,
    ) -> Result<(), ConfigError> {
        let path = self.pseudo_path();
        let el = parse_document(xml, &path)?;
        if el.name != "host" {
            return Err(err(
                &path,
                el.line,
                ErrorKind::InvalidValue,
                format!(
                    "unexpected element <{}> for section {section}; expecting <host>",
                    el.name
                ),
            ));
        }
        let mut new = self.clone();
        match section {
            UpdateSection::IpDhcpHost => new.update_dhcp_host(op, &el, &path)?,
            UpdateSection::DnsHost => new.update_dns_host(op, &el, &path)?,
        }
        new.validate()?;
        *self = new;
        Ok(())
    }

    fn update_dhcp_host(
        &mut self,
        op: UpdateOp,
        el: &Element,
        path: &Path,
    ) -> Result<(), ConfigError> {
        let spec = dhcp_host_spec(el, path)?;
        let name = self.name.clone();
        let Some(ip) = self.ip.as_mut() else {
            return Err(err(
                path,
                el.line,
                ErrorKind::Conflict,
                format!("network '{name}' has no <ip>, so it has no DHCP hosts to update"),
            ));
        };
        let fail = |message: String| err(path, el.line, ErrorKind::Conflict, message);
        let describe = |mac: Option<String>, n: Option<&str>, a: Option<String>| {
            format!(
                "<host mac='{}' name='{}' ip='{}'/>",
                mac.unwrap_or_default(),
                n.unwrap_or_default(),
                a.unwrap_or_default()
            )
        };
        let shown = describe(
            spec.mac.map(|m| m.to_string()),
            spec.name.as_deref(),
            spec.ip.map(|a| a.to_string()),
        );
        match op {
            UpdateOp::AddFirst | UpdateOp::AddLast | UpdateOp::Modify => {
                let host = spec.clone().complete(el, path)?;
                let same = |h: &super::DhcpHost| {
                    h.mac == host.mac
                        || h.ip == host.ip
                        || (host.name.is_some() && h.name == host.name)
                };
                if op.is_add() {
                    if ip.dhcp_hosts.iter().any(same) {
                        return Err(fail(format!(
                            "there is an existing DHCP host in network '{name}' that matches {shown}"
                        )));
                    }
                    let at = if op == UpdateOp::AddFirst {
                        0
                    } else {
                        ip.dhcp_hosts.len()
                    };
                    ip.dhcp_hosts.insert(at, host);
                } else {
                    let Some(i) = ip.dhcp_hosts.iter().position(same) else {
                        return Err(fail(format!(
                            "no DHCP host in network '{name}' matches {shown} (by mac, ip or name)"
                        )));
                    };
                    if let Some(slot) = ip.dhcp_hosts.get_mut(i) {
                        *slot = host;
                    }
                }
            }
            UpdateOp::Delete => {
                if spec.mac.is_none() && spec.name.is_none() && spec.ip.is_none() {
                    return Err(err(
                        path,
                        el.line,
                        ErrorKind::InvalidValue,
                        "<host> to delete needs at least one of mac=, name=, ip=".into(),
                    ));
                }
                let matches = |h: &super::DhcpHost| {
                    spec.mac.is_none_or(|m| m == h.mac)
                        && spec
                            .name
                            .as_ref()
                            .is_none_or(|n| h.name.as_ref() == Some(n))
                        && spec.ip.is_none_or(|a| a == h.ip)
                };
                let Some(i) = ip.dhcp_hosts.iter().position(matches) else {
                    return Err(fail(format!(
                        "no DHCP host in network '{name}' matches {shown}"
                    )));
                };
                ip.dhcp_hosts.remove(i);
            }
        }
        Ok(())
    }

    fn update_dns_host(
        &mut self,
        op: UpdateOp,
        el: &Element,
        path: &Path,
    ) -> Result<(), ConfigError> {
        let name = self.name.clone();
        let fail = |message: String| err(path, el.line, ErrorKind::Conflict, message);
        match op {
            UpdateOp::Modify => Err(err(
                path,
                el.line,
                ErrorKind::Refused,
                "DNS host records cannot be modified, only added or deleted (as in libvirt); \
                 delete the record and add the new one"
                    .into(),
            )),
            UpdateOp::AddFirst | UpdateOp::AddLast => {
                let host = dns_host(el, path)?;
                if self.dns.hosts.iter().any(|h| h.ip == host.ip) {
                    return Err(fail(format!(
                        "network '{name}' already has a DNS host record for {}; delete it first \
                         or add the names to it",
                        host.ip
                    )));
                }
                let at = if op == UpdateOp::AddFirst {
                    0
                } else {
                    self.dns.hosts.len()
                };
                self.dns.hosts.insert(at, host);
                Ok(())
            }
            UpdateOp::Delete => {
                let (ip, names) = dns_host_spec(el, path, true)?;
                let found: Vec<usize> = self
                    .dns
                    .hosts
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| {
                        ip == Some(h.ip) || h.hostnames.iter().any(|n| names.contains(n))
                    })
                    .map(|(i, _)| i)
                    .collect();
                match found.as_slice() {
                    [] => Err(fail(format!(
                        "no DNS host record in network '{name}' matches"
                    ))),
                    [i] => {
                        self.dns.hosts.remove(*i);
                        Ok(())
                    }
                    _ => Err(fail(format!(
                        "{} DNS host records in network '{name}' match; give ip= to pick one",
                        found.len()
                    ))),
                }
            }
        }
    }
}
