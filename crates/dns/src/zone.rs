//! The network's local zone: names from `dns/host`, `dhcp/host` and DHCP leases, forward
//! (A/AAAA) and reverse (PTR).
//!
//! Names follow dnsmasq as libvirt configures it (`domain=`, `expand-hosts`): a single-label
//! name answers both bare (`fixed`) and qualified with the network's domain
//! (`fixed.example.lan`); names with dots answer as written. Reverse answers give the
//! qualified form when there is a domain.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::error::NameError;
use crate::name;

/// One `dns/host` entry: an address and its names (the first is the one PTR answers give).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsHost {
    pub ip: IpAddr,
    pub names: Vec<String>,
}

/// One `dhcp/host` entry that has both a name and an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub name: String,
    pub ip: IpAddr,
}

#[derive(Debug, Default)]
pub(crate) struct Zone {
    domain: Option<String>,
    hosts: Vec<DnsHost>,
    reservations: Vec<Reservation>,
    lease_by_name: HashMap<String, IpAddr>,
    lease_by_ip: HashMap<IpAddr, String>,
    // Index over hosts and reservations, rebuilt when they change (rare: `net update`).
    static_fwd: HashMap<String, Vec<IpAddr>>,
    static_rev: HashMap<IpAddr, Vec<String>>,
}

impl Zone {
    /// `domain` must already be normalized.
    pub(crate) fn new(domain: Option<String>) -> Self {
        Zone {
            domain,
            ..Zone::default()
        }
    }

    /// Qualifies a single-label name with the domain (`expand-hosts`); others stay as they are.
    fn qualify(&self, name: &str) -> String {
        match &self.domain {
            Some(d) if !name.contains('.') => format!("{name}.{d}"),
            _ => name.to_owned(),
        }
    }

    /// Strips the network's domain from a qualified name (`fixed.example.lan` → `fixed`).
    fn strip_domain<'a>(&self, name: &'a str) -> &'a str {
        match &self.domain {
            Some(d) => match name.strip_suffix(d.as_str()) {
                Some(rest) => match rest.strip_suffix('.') {
                    Some(label) if !label.is_empty() && !label.contains('.') => label,
                    _ => name,
                },
                None => name,
            },
            None => name,
        }
    }

    pub(crate) fn add_host(&mut self, host: DnsHost) -> Result<(), NameError> {
        let mut names = Vec::with_capacity(host.names.len());
        for n in &host.names {
            names.push(name::normalize(n)?);
        }
        self.hosts.push(DnsHost { ip: host.ip, names });
        self.rebuild();
        Ok(())
    }

    pub(crate) fn remove_host(&mut self, ip: IpAddr) -> bool {
        let before = self.hosts.len();
        self.hosts.retain(|h| h.ip != ip);
        let removed = self.hosts.len() != before;
        if removed {
            self.rebuild();
        }
        removed
    }

    pub(crate) fn add_reservation(&mut self, name: &str, ip: IpAddr) -> Result<(), NameError> {
        let n = name::normalize(name)?;
        let n = self.strip_domain(&n).to_owned();
        self.reservations.retain(|r| r.name != n);
        self.reservations.push(Reservation { name: n, ip });
        self.rebuild();
        Ok(())
    }

    pub(crate) fn remove_reservation(&mut self, name: &str) -> bool {
        let Ok(n) = name::normalize(name) else {
            return false;
        };
        let n = self.strip_domain(&n).to_owned();
        let before = self.reservations.len();
        self.reservations.retain(|r| r.name != n);
        let removed = self.reservations.len() != before;
        if removed {
            self.rebuild();
        }
        removed
    }

    fn rebuild(&mut self) {
        let mut fwd: HashMap<String, Vec<IpAddr>> = HashMap::new();
        let mut rev: HashMap<IpAddr, Vec<String>> = HashMap::new();
        let mut add_fwd = |name: String, ip: IpAddr| {
            let v = fwd.entry(name).or_default();
            if !v.contains(&ip) {
                v.push(ip);
            }
        };
        let mut add_rev = |ip: IpAddr, name: String| {
            let v = rev.entry(ip).or_default();
            if !v.contains(&name) {
                v.push(name);
            }
        };
        for h in &self.hosts {
            for n in &h.names {
                add_fwd(n.clone(), h.ip);
                let q = self.qualify(n);
                if q != *n {
                    add_fwd(q, h.ip);
                }
            }
            // Like a hosts file: only the first name of the line is the reverse answer.
            if let Some(first) = h.names.first() {
                add_rev(h.ip, self.qualify(first));
            }
        }
        for r in &self.reservations {
            add_fwd(r.name.clone(), r.ip);
            let q = self.qualify(&r.name);
            if q != r.name {
                add_fwd(q.clone(), r.ip);
            }
            add_rev(r.ip, q);
        }
        self.static_fwd = fwd;
        self.static_rev = rev;
    }

    /// Gives `ip`'s lease the name a DHCP client sent (option 12) or the daemon chose.
    ///
    /// Like dnsmasq: only the first label counts (a domain part is dropped); a name the
    /// configuration gives to another address is refused; a name another lease holds moves to
    /// this one (the newest lease wins); the lease's previous name goes away.
    pub(crate) fn add_lease(&mut self, name: &str, ip: IpAddr) -> Result<(), NameError> {
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        let first = trimmed.split('.').next().unwrap_or_default();
        let label = name::normalize(first)?;
        for key in [label.clone(), self.qualify(&label)] {
            if let Some(addrs) = self.static_fwd.get(&key) {
                if !addrs.contains(&ip) {
                    let owner = addrs.first().copied().unwrap_or(ip);
                    return Err(NameError::Taken { name: label, owner });
                }
            }
        }
        if let Some(old_ip) = self.lease_by_name.remove(&label) {
            self.lease_by_ip.remove(&old_ip);
        }
        if let Some(old_name) = self.lease_by_ip.remove(&ip) {
            self.lease_by_name.remove(&old_name);
        }
        self.lease_by_name.insert(label.clone(), ip);
        self.lease_by_ip.insert(ip, label);
        Ok(())
    }

    /// Removes the name of `ip`'s lease if it is `name`; a stale removal (the name has moved
    /// to a newer lease) changes nothing.
    pub(crate) fn remove_lease(&mut self, name: &str, ip: IpAddr) -> bool {
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        let first = trimmed.split('.').next().unwrap_or_default();
        let Ok(label) = name::normalize(first) else {
            return false;
        };
        if self.lease_by_name.get(&label) == Some(&ip) {
            self.lease_by_name.remove(&label);
            self.lease_by_ip.remove(&ip);
            true
        } else {
            false
        }
    }

    /// The addresses of a name (lower-case key without trailing dot); `None` when the zone
    /// does not know the name at all.
    pub(crate) fn lookup(&self, key: &str) -> Option<Vec<IpAddr>> {
        let mut out: Vec<IpAddr> = Vec::new();
        let mut known = false;
        if let Some(addrs) = self.static_fwd.get(key) {
            known = true;
            out.extend(addrs.iter().copied());
        }
        let bare = self.strip_domain(key);
        if !bare.contains('.') {
            if let Some(ip) = self.lease_by_name.get(bare) {
                known = true;
                if !out.contains(ip) {
                    out.push(*ip);
                }
            }
        }
        known.then_some(out)
    }

    /// The names of an address, qualified when the network has a domain.
    pub(crate) fn reverse(&self, ip: IpAddr) -> Vec<String> {
        let mut out: Vec<String> = self.static_rev.get(&ip).cloned().unwrap_or_default();
        if let Some(n) = self.lease_by_ip.get(&ip) {
            let q = self.qualify(n);
            if !out.contains(&q) {
                out.push(q);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn zone() -> Zone {
        let mut z = Zone::new(Some("example.lan".into()));
        z.add_host(DnsHost {
            ip: ip("192.168.122.10"),
            names: vec!["Web".into(), "www".into(), "db.other.test".into()],
        })
        .unwrap();
        z.add_reservation("fixed", ip("192.168.122.50")).unwrap();
        z
    }

    #[test]
    fn static_names_bare_and_qualified() {
        let z = zone();
        assert_eq!(z.lookup("web"), Some(vec![ip("192.168.122.10")]));
        assert_eq!(
            z.lookup("www.example.lan"),
            Some(vec![ip("192.168.122.10")])
        );
        assert_eq!(z.lookup("db.other.test"), Some(vec![ip("192.168.122.10")]));
        // Dotted names are not expanded.
        assert_eq!(z.lookup("db.other.test.example.lan"), None);
        assert_eq!(z.lookup("fixed"), Some(vec![ip("192.168.122.50")]));
        assert_eq!(
            z.lookup("fixed.example.lan"),
            Some(vec![ip("192.168.122.50")])
        );
        assert_eq!(z.lookup("nothere"), None);
        assert_eq!(z.reverse(ip("192.168.122.10")), vec!["web.example.lan"]);
        assert_eq!(z.reverse(ip("192.168.122.50")), vec!["fixed.example.lan"]);
    }

    #[test]
    fn lease_names_follow_leases() {
        let mut z = zone();
        z.add_lease("Guest-A.whatever.domain", ip("192.168.122.77"))
            .unwrap();
        assert_eq!(z.lookup("guest-a"), Some(vec![ip("192.168.122.77")]));
        assert_eq!(
            z.lookup("guest-a.example.lan"),
            Some(vec![ip("192.168.122.77")])
        );
        assert_eq!(z.reverse(ip("192.168.122.77")), vec!["guest-a.example.lan"]);
        // The lease renames itself: the old name goes.
        z.add_lease("guest-b", ip("192.168.122.77")).unwrap();
        assert_eq!(z.lookup("guest-a"), None);
        // Another lease takes the name: the newest wins.
        z.add_lease("guest-b", ip("192.168.122.78")).unwrap();
        assert_eq!(z.lookup("guest-b"), Some(vec![ip("192.168.122.78")]));
        assert!(z.reverse(ip("192.168.122.77")).is_empty());
        // A stale removal changes nothing, the right one removes.
        assert!(!z.remove_lease("guest-b", ip("192.168.122.77")));
        assert!(z.remove_lease("guest-b", ip("192.168.122.78")));
        assert_eq!(z.lookup("guest-b"), None);
    }

    #[test]
    fn configured_names_are_not_given_to_other_leases() {
        let mut z = zone();
        assert_eq!(
            z.add_lease("fixed", ip("192.168.122.90")),
            Err(NameError::Taken {
                name: "fixed".into(),
                owner: ip("192.168.122.50")
            })
        );
        assert!(matches!(
            z.add_lease("www", ip("192.168.122.90")),
            Err(NameError::Taken { .. })
        ));
        // The reserved guest itself may use its name.
        z.add_lease("fixed", ip("192.168.122.50")).unwrap();
        assert_eq!(z.lookup("fixed"), Some(vec![ip("192.168.122.50")]));
        assert_eq!(z.reverse(ip("192.168.122.50")), vec!["fixed.example.lan"]);
        assert!(matches!(
            z.add_lease("bad name", ip("192.168.122.91")),
            Err(NameError::Invalid { .. })
        ));
        assert_eq!(z.add_lease("", ip("192.168.122.91")), Err(NameError::Empty));
    }

    #[test]
    fn live_updates_of_hosts_and_reservations() {
        let mut z = zone();
        assert!(z.remove_host(ip("192.168.122.10")));
        assert!(!z.remove_host(ip("192.168.122.10")));
        assert_eq!(z.lookup("web"), None);
        assert!(z.remove_reservation("fixed.example.lan"));
        assert_eq!(z.lookup("fixed"), None);
        z.add_lease("fixed", ip("192.168.122.90")).unwrap();
        assert_eq!(z.lookup("fixed"), Some(vec![ip("192.168.122.90")]));
    }

    #[test]
    fn without_domain_names_are_bare() {
        let mut z = Zone::new(None);
        z.add_lease("guest-a.example.lan", ip("10.0.0.5")).unwrap();
        assert_eq!(z.lookup("guest-a"), Some(vec![ip("10.0.0.5")]));
        assert_eq!(z.lookup("guest-a.example.lan"), None);
        assert_eq!(z.reverse(ip("10.0.0.5")), vec!["guest-a"]);
    }

    #[test]
    fn several_addresses_for_one_name() {
        let mut z = Zone::new(None);
        z.add_host(DnsHost {
            ip: ip("10.0.0.1"),
            names: vec!["gw".into()],
        })
        .unwrap();
        z.add_host(DnsHost {
            ip: ip("fd00::1"),
            names: vec!["gw".into()],
        })
        .unwrap();
        assert_eq!(z.lookup("gw"), Some(vec![ip("10.0.0.1"), ip("fd00::1")]));
        assert_eq!(z.reverse(ip("fd00::1")), vec!["gw"]);
    }
}
