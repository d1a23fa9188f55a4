//! What the DNS server of one network answers and where it forwards, and how libvirt's network
//! XML maps onto that.
//!
//! The mapping follows what libvirt writes into dnsmasq's configuration
//! (`networkDnsmasqConfContents` in libvirt's `src/network/bridge_driver.c`):
//!
//! | libvirt XML                                  | dnsmasq line             | here                         |
//! |----------------------------------------------|--------------------------|------------------------------|
//! | (always)                                     | `strict-order`           | upstreams tried in order     |
//! | `<forwarder addr='A'/>`                      | `server=A`, `no-resolv`  | `upstreams` (resolv.conf unused) |
//! | `<forwarder domain='D' addr='A'/>`           | `server=/D/A`            | rule D → `Upstream(A)`       |
//! | `<forwarder domain='D'/>`                    | `server=/D/#`            | rule D → `Default`           |
//! | `<domain name='D'/>`                         | `domain=D`, `expand-hosts` | `domain`                   |
//! | `<domain name='D' localOnly='yes'/>`         | `local=/D/`              | rule D → `Local`             |
//! | `<ip ... localPtr='yes'>`                    | `local=/R.in-addr.arpa/` | rule R → `Local`             |
//! | `<dns forwardPlainNames='no'>`               | `domain-needed`, `local=//` | `forward_plain_names = false` |
//! | no `<forward>` (isolated network)            | `no-resolv`              | resolv.conf unused           |
//!
//! libvirt's defaults are `localOnly='no'` and `forwardPlainNames='yes'` (since libvirt 1.1.3):
//! unknown names under the network's domain and unknown bare names are forwarded unless the
//! XML says otherwise.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::error::ConfigError;
use crate::name;
use crate::zone::{DnsHost, Reservation};

/// The DNS port, for upstreams given as bare addresses.
pub const DNS_PORT: u16 = 53;

/// Where queries for a domain (and the names under it) go.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleTarget {
    /// Answered from the local zone only; unknown names are NXDOMAIN (dnsmasq `local=/D/`).
    Local,
    /// Forwarded to this server; several rules for one domain make an ordered list
    /// (dnsmasq `server=/D/A`).
    Upstream(SocketAddr),
    /// Forwarded to the default upstreams, overriding a shorter `Local` rule
    /// (dnsmasq `server=/D/#`).
    Default,
}

/// A rule for a domain; the rule with the longest matching domain wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRule {
    pub domain: String,
    pub target: RuleTarget,
}

/// The configuration of one network's DNS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The network's domain (`<domain name=.../>`): single-label local names also answer
    /// qualified with it.
    pub domain: Option<String>,
    /// Whether unknown single-label names are forwarded (libvirt `forwardPlainNames`,
    /// default yes). When false they are NXDOMAIN, like dnsmasq's `domain-needed` + `local=//`.
    pub forward_plain_names: bool,
    /// The default upstream servers, tried in order (`strict-order`).
    pub upstreams: Vec<SocketAddr>,
    /// Per-domain rules.
    pub rules: Vec<DomainRule>,
    /// `dns/host` entries.
    pub hosts: Vec<DnsHost>,
    /// `dhcp/host` entries with a name and an address.
    pub reservations: Vec<Reservation>,
    /// TTL of local answers.
    // dnsmasq's `local-ttl` defaults to 0 so that guests never cache a lease that may change;
    // libvirt leaves it at that, so we do too.
    pub local_ttl: u32,
    /// How long one upstream has to answer before the next is tried (or, after the last,
    /// the client gets SERVFAIL).
    // 3 s: above a typical recursive resolution, below glibc's 5 s retransmission so a guest
    // hears our SERVFAIL (or the next upstream's answer) before it gives up on its first try.
    pub upstream_timeout: Duration,
    /// At most this many forwarded queries are outstanding; more are answered SERVFAIL.
    // 150 is dnsmasq's `dns-forward-max` default. Capped at 4096 so random ids stay sparse.
    pub max_outstanding: usize,
    /// The UDP payload size we advertise in EDNS and use for local answers to EDNS clients.
    // 1232 octets: the DNS Flag Day 2020 value, which avoids IP fragmentation; dnsmasq's
    // `edns-packet-max` default is the same since 2.85.
    pub max_udp_payload: u16,
    /// Forwarded answers kept (names), 0 for none; see [`crate::cache`].
    // 150: dnsmasq's `cache-size` default, which libvirt leaves alone.
    pub cache_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            domain: None,
            forward_plain_names: true,
            upstreams: Vec::new(),
            rules: Vec::new(),
            hosts: Vec::new(),
            reservations: Vec::new(),
            local_ttl: 0,
            upstream_timeout: Duration::from_secs(3),
            max_outstanding: 150,
            max_udp_payload: 1232,
            cache_size: crate::cache::DEFAULT_CACHE_SIZE,
        }
    }
}

/// Upper bound for [`Config::max_outstanding`].
pub const MAX_OUTSTANDING_CAP: usize = 4096;

/// A libvirt `<forwarder/>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarder {
    pub domain: Option<String>,
    pub addr: Option<IpAddr>,
}

/// The DNS-related parts of a libvirt network definition, as the daemon reads them from the XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDns {
    /// `<domain name=.../>`
    pub domain: Option<String>,
    /// `<domain localOnly='yes'/>`
    pub domain_local_only: bool,
    /// `<dns forwardPlainNames=.../>`; true when absent, as in libvirt.
    pub forward_plain_names: bool,
    /// `<dns><forwarder .../></dns>`, in document order.
    pub forwarders: Vec<Forwarder>,
    /// No `<forward>` element: libvirt then keeps the host's resolv.conf out (`no-resolv`).
    pub isolated: bool,
    /// `<ip address=A prefix=P localPtr='yes'>` entries, as (A, P).
    pub local_ptr: Vec<(IpAddr, u8)>,
    /// `<dns><host ip=...><hostname>...</hostname></host></dns>`
    pub hosts: Vec<DnsHost>,
    /// `<dhcp><host name=... ip=.../></dhcp>` entries that have both.
    pub reservations: Vec<Reservation>,
    /// The network's own addresses (on the bridge): an upstream equal to one of them would
    /// send queries back to us, so it is dropped.
    pub own_addresses: Vec<IpAddr>,
}

impl Default for NetworkDns {
    fn default() -> Self {
        NetworkDns {
            domain: None,
            domain_local_only: false,
            forward_plain_names: true,
            forwarders: Vec::new(),
            isolated: false,
            local_ptr: Vec::new(),
            hosts: Vec::new(),
            reservations: Vec::new(),
            own_addresses: Vec::new(),
        }
    }
}

impl Config {
    /// Builds the configuration libvirt would give dnsmasq for this network.
    /// `host_resolvers` are the host's upstreams ([`crate::resolv_conf::parse`]).
    pub fn from_libvirt(
        net: &NetworkDns,
        host_resolvers: &[IpAddr],
    ) -> Result<Config, ConfigError> {
        let mut cfg = Config {
            forward_plain_names: net.forward_plain_names,
            hosts: net.hosts.clone(),
            reservations: net.reservations.clone(),
            ..Config::default()
        };
        let usable = |ip: &IpAddr| !ip.is_unspecified() && !net.own_addresses.contains(ip);
        let mut no_resolv = net.isolated;
        for f in &net.forwarders {
            match (&f.domain, f.addr) {
                (None, None) => return Err(ConfigError::EmptyForwarder),
                (None, Some(addr)) => {
                    no_resolv = true;
                    if usable(&addr) {
                        cfg.upstreams.push(SocketAddr::new(addr, DNS_PORT));
                    }
                }
                (Some(d), addr) => {
                    let domain = name::normalize(d).map_err(|source| ConfigError::Name {
                        what: "forwarder domain",
                        source,
                    })?;
                    let target = match addr {
                        Some(a) if usable(&a) => RuleTarget::Upstream(SocketAddr::new(a, DNS_PORT)),
                        // A forwarder pointing at ourselves would loop: keep the rule local.
                        Some(_) => RuleTarget::Local,
                        None => RuleTarget::Default,
                    };
                    cfg.rules.push(DomainRule { domain, target });
                }
            }
        }
        if !no_resolv {
            for ip in host_resolvers.iter().filter(|ip| usable(ip)) {
                let sa = SocketAddr::new(*ip, DNS_PORT);
                if !cfg.upstreams.contains(&sa) {
                    cfg.upstreams.push(sa);
                }
            }
        }
        if let Some(d) = &net.domain {
            let domain = name::normalize(d).map_err(|source| ConfigError::Name {
                what: "network domain",
                source,
            })?;
            if net.domain_local_only {
                cfg.rules.push(DomainRule {
                    domain: domain.clone(),
                    target: RuleTarget::Local,
                });
            }
            cfg.domain = Some(domain);
        }
        for &(addr, prefix) in &net.local_ptr {
            let zone =
                name::reverse_zone(addr, prefix).ok_or(ConfigError::PtrPrefix { addr, prefix })?;
            cfg.rules.push(DomainRule {
                domain: zone,
                target: RuleTarget::Local,
            });
        }
        Ok(cfg)
    }

    pub(crate) fn routes(&self) -> Result<Routes, ConfigError> {
        let mut merged: Vec<(String, Vec<SocketAddr>, bool, bool)> = Vec::new();
        for r in &self.rules {
            let domain = name::normalize(&r.domain).map_err(|source| ConfigError::Name {
                what: "rule domain",
                source,
            })?;
            let idx = match merged.iter().position(|m| m.0 == domain) {
                Some(i) => i,
                None => {
                    merged.push((domain, Vec::new(), false, false));
                    merged.len() - 1
                }
            };
            if let Some(m) = merged.get_mut(idx) {
                match &r.target {
                    RuleTarget::Upstream(sa) if !m.1.contains(sa) => m.1.push(*sa),
                    RuleTarget::Upstream(_) => {}
                    RuleTarget::Default => m.2 = true,
                    RuleTarget::Local => m.3 = true,
                }
            }
        }
        let mut rules: Vec<(Vec<String>, Target)> = merged
            .into_iter()
            .map(|(domain, servers, default, _local)| {
                // Servers named for the domain win over `#`, which wins over local-only.
                let target = if !servers.is_empty() {
                    Target::Servers(servers.into())
                } else if default {
                    Target::Default
                } else {
                    Target::Local
                };
                (domain.split('.').map(str::to_owned).collect(), target)
            })
            .collect();
        // Longest domain first, so the first match is the most specific.
        rules.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
        Ok(Routes {
            rules,
            default: self.upstreams.clone().into(),
            forward_plain_names: self.forward_plain_names,
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Target {
    Local,
    Servers(Arc<[SocketAddr]>),
    Default,
}

/// Where a name goes when the local zone does not know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// NXDOMAIN, never forwarded.
    Local,
    /// Forward to these servers in order; empty means there is nowhere to send it.
    Upstreams(Arc<[SocketAddr]>),
}

#[derive(Debug, Clone)]
pub(crate) struct Routes {
    rules: Vec<(Vec<String>, Target)>,
    pub(crate) default: Arc<[SocketAddr]>,
    forward_plain_names: bool,
}

impl Routes {
    pub(crate) fn route(&self, labels: &[&[u8]]) -> Route {
        for (suffix, target) in &self.rules {
            if name::ends_with(labels, suffix) {
                return match target {
                    Target::Local => Route::Local,
                    Target::Servers(s) => Route::Upstreams(s.clone()),
                    Target::Default => Route::Upstreams(self.default.clone()),
                };
            }
        }
        if labels.len() == 1 && !self.forward_plain_names {
            return Route::Local;
        }
        Route::Upstreams(self.default.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn sa(s: &str) -> SocketAddr {
        SocketAddr::new(ip(s), 53)
    }
    fn route(r: &Routes, n: &str) -> Route {
        let name = Name::from_ascii(n).unwrap();
        r.route(&name::labels(&name))
    }
    fn ups(v: &[&str]) -> Route {
        Route::Upstreams(v.iter().map(|s| sa(s)).collect::<Vec<_>>().into())
    }

    #[test]
    fn libvirt_default_network_uses_resolv_conf() {
        let net = NetworkDns {
            own_addresses: vec![ip("192.168.122.1")],
            ..NetworkDns::default()
        };
        let cfg = Config::from_libvirt(
            &net,
            &[
                ip("203.0.113.1"),
                ip("192.168.122.1"),
                ip("0.0.0.0"),
                ip("127.0.0.53"),
            ],
        )
        .unwrap();
        // Our own address would loop and 0.0.0.0 is nobody; loopback is a real server.
        assert_eq!(cfg.upstreams, vec![sa("203.0.113.1"), sa("127.0.0.53")]);
        assert!(cfg.forward_plain_names);
        assert!(cfg.rules.is_empty());
        let r = cfg.routes().unwrap();
        assert_eq!(
            route(&r, "www.example.test."),
            ups(&["203.0.113.1", "127.0.0.53"])
        );
        assert_eq!(route(&r, "nothere."), ups(&["203.0.113.1", "127.0.0.53"]));
    }

    #[test]
    fn forwarders_like_libvirt() {
        let net = NetworkDns {
            domain: Some("Example.LAN".into()),
            forwarders: vec![
                Forwarder {
                    domain: None,
                    addr: Some(ip("8.8.4.4")),
                },
                Forwarder {
                    domain: Some("example.com".into()),
                    addr: Some(ip("192.168.1.1")),
                },
                Forwarder {
                    domain: Some("example.com".into()),
                    addr: Some(ip("192.168.1.2")),
                },
                Forwarder {
                    domain: Some("www.example.com".into()),
                    addr: None,
                },
            ],
            ..NetworkDns::default()
        };
        let cfg = Config::from_libvirt(&net, &[ip("203.0.113.1")]).unwrap();
        // A forwarder without a domain means no-resolv: resolv.conf is not used.
        assert_eq!(cfg.upstreams, vec![sa("8.8.4.4")]);
        assert_eq!(cfg.domain.as_deref(), Some("example.lan"));
        let r = cfg.routes().unwrap();
        assert_eq!(
            route(&r, "a.example.com."),
            ups(&["192.168.1.1", "192.168.1.2"])
        );
        assert_eq!(
            route(&r, "EXAMPLE.com."),
            ups(&["192.168.1.1", "192.168.1.2"])
        );
        assert_eq!(route(&r, "www.example.com."), ups(&["8.8.4.4"]));
        assert_eq!(route(&r, "x.www.example.com."), ups(&["8.8.4.4"]));
        assert_eq!(route(&r, "notexample.com."), ups(&["8.8.4.4"]));
        // localOnly not set: unknown names in the network's domain are forwarded.
        assert_eq!(route(&r, "nothere.example.lan."), ups(&["8.8.4.4"]));
    }

    #[test]
    fn local_only_domain_plain_names_and_local_ptr() {
        let net = NetworkDns {
            domain: Some("example.lan".into()),
            domain_local_only: true,
            forward_plain_names: false,
            local_ptr: vec![(ip("192.168.122.1"), 24)],
            ..NetworkDns::default()
        };
        let cfg = Config::from_libvirt(&net, &[ip("203.0.113.1")]).unwrap();
        let r = cfg.routes().unwrap();
        assert_eq!(route(&r, "nothere.example.lan."), Route::Local);
        assert_eq!(route(&r, "example.lan."), Route::Local);
        assert_eq!(route(&r, "nothere."), Route::Local);
        assert_eq!(route(&r, "77.122.168.192.in-addr.arpa."), Route::Local);
        assert_eq!(
            route(&r, "1.1.168.192.in-addr.arpa."),
            ups(&["203.0.113.1"])
        );
        assert_eq!(route(&r, "www.example.test."), ups(&["203.0.113.1"]));
        assert_eq!(route(&r, "."), ups(&["203.0.113.1"]));
    }

    #[test]
    fn isolated_network_has_no_default_upstream() {
        let net = NetworkDns {
            isolated: true,
            ..NetworkDns::default()
        };
        let cfg = Config::from_libvirt(&net, &[ip("203.0.113.1")]).unwrap();
        assert!(cfg.upstreams.is_empty());
        assert_eq!(route(&cfg.routes().unwrap(), "www.example.test."), ups(&[]));
    }

    #[test]
    fn bad_libvirt_input_is_refused() {
        let empty = NetworkDns {
            forwarders: vec![Forwarder::default()],
            ..NetworkDns::default()
        };
        assert_eq!(
            Config::from_libvirt(&empty, &[]),
            Err(ConfigError::EmptyForwarder)
        );
        let bad_domain = NetworkDns {
            domain: Some("bad domain".into()),
            ..NetworkDns::default()
        };
        assert!(matches!(
            Config::from_libvirt(&bad_domain, &[]),
            Err(ConfigError::Name {
                what: "network domain",
                ..
            })
        ));
        let ptr = NetworkDns {
            local_ptr: vec![(ip("10.0.0.1"), 20)],
            ..NetworkDns::default()
        };
        assert_eq!(
            Config::from_libvirt(&ptr, &[]),
            Err(ConfigError::PtrPrefix {
                addr: ip("10.0.0.1"),
                prefix: 20
            })
        );
    }

    #[test]
    fn forwarder_to_ourselves_becomes_local() {
        let net = NetworkDns {
            forwarders: vec![
                Forwarder {
                    domain: None,
                    addr: Some(ip("192.168.122.1")),
                },
                Forwarder {
                    domain: Some("corp".into()),
                    addr: Some(ip("192.168.122.1")),
                },
            ],
            own_addresses: vec![ip("192.168.122.1")],
            ..NetworkDns::default()
        };
        let cfg = Config::from_libvirt(&net, &[ip("203.0.113.1")]).unwrap();
        assert!(cfg.upstreams.is_empty());
        assert_eq!(route(&cfg.routes().unwrap(), "x.corp."), Route::Local);
    }
}
