//! From one libvirt network definition to the configurations of the sans-IO servers, the way
//! libvirt's `networkDnsmasqConfContents` (src/network/bridge_driver.c) turns the same XML into
//! dnsmasq options:
//!
//! | XML | DHCP ([`virtgate_dhcp::Config`]) | DNS ([`virtgate_dns::NetworkDns`]) |
//! |---|---|---|
//! | `<ip address prefix>` | server id, subnet | own address (never an upstream) |
//! | `<dhcp><range>` / `<host>` with `<lease>` | ranges, static hosts, lease times | reservations (hosts with a name) |
//! | no `<forward>` (isolated) | no router option (libvirt: `dhcp-option=3`) | no resolv.conf (`no-resolv`) |
//! | `<dns enable='no'>` | no DNS server option (dnsmasq with `port=0` sends none) | no server |
//! | `<domain name>` | option 15 | domain (`domain=`, `expand-hosts`) |
//! | `<mtu size>` | option 26 | — |
//!
//! The firewall: [`firewall_part`] gives virtgate-firewall's [`Part::Network`] for the mode
//! (`<forward dev>`, `<nat><port>`, `<nat><address>`).
//!
//! Plus the things libvirt generates when a network is defined: a UUID and a bridge MAC
//! `52:54:00:xx:xx:xx`.

use std::net::IpAddr;

use virtgate_config::libvirt::{DhcpHost, DnsHost, ForwardMode, Lease, MacAddr, NetworkDef, Uuid};
use virtgate_dhcp::{LeaseTime, Range, StaticHost};
use virtgate_dns::{Forwarder, NetworkDns, Reservation};
use virtgate_firewall::{NetForward, Part};

/// libvirt's prefix for generated MACs (`VIR_MAC_PREFIX_KVM`, QEMU's OUI 52:54:00).
pub const KVM_MAC_PREFIX: [u8; 3] = [0x52, 0x54, 0x00];

/// The lease time dnsmasq gives under libvirt when the XML names none: one hour.
pub const DEFAULT_LEASE_SECS: u64 = 3600;

/// The DHCP server's configuration for `def`, or `None` when the network serves no DHCP (no
/// `<ip>`, or an `<ip>` without ranges and hosts).
pub fn dhcp_config(def: &NetworkDef) -> Option<virtgate_dhcp::Config> {
    let ip = def.ip.as_ref().filter(|ip| ip.dhcp_enabled())?;
    let mut cfg = virtgate_dhcp::Config::new(ip.address, ip.prefix);
    cfg.ranges = ip
        .dhcp_ranges
        .iter()
        .map(|r| Range {
            start: r.start,
            end: r.end,
            lease: r.lease.map(lease_time),
        })
        .collect();
    cfg.hosts = ip.dhcp_hosts.iter().map(static_host).collect();
    if def.forward.is_none() {
        // libvirt writes `dhcp-option=3` (empty) for isolated networks: a default route through
        // a host that forwards nothing would only break the guest's other interfaces.
        cfg.router = None;
    }
    if !def.dns.enabled() {
        // dnsmasq with `port=0` sends no DNS-server option (it only names itself when it
        // serves DNS on port 53).
        cfg.dns_servers.clear();
    }
    cfg.domain = def.domain.as_ref().map(|d| d.name.clone());
    cfg.mtu = def.mtu;
    Some(cfg)
}

/// A `<dhcp><host>` as the lease engine's reservation.
pub fn static_host(h: &DhcpHost) -> StaticHost {
    StaticHost {
        mac: dhcp_mac(h.mac),
        ip: h.ip,
        name: h.name.clone(),
        lease: h.lease.map(lease_time),
    }
}

/// `<lease expiry unit>` as the engine's lease time.
pub fn lease_time(l: Lease) -> LeaseTime {
    match l.duration() {
        None => LeaseTime::Infinite,
        Some(d) => LeaseTime::Finite(d),
    }
}

/// The config crate's MAC as the DHCP crate's.
pub fn dhcp_mac(m: MacAddr) -> virtgate_dhcp::MacAddr {
    virtgate_dhcp::MacAddr(m.0)
}

/// What the DNS server needs from `def`, or `None` when `<dns enable='no'>` or there is no
/// `<ip>` to listen on.
pub fn network_dns(def: &NetworkDef) -> Option<NetworkDns> {
    let ip = def.ip.as_ref()?;
    if !def.dns.enabled() {
        return None;
    }
    Some(NetworkDns {
        domain: def.domain.as_ref().map(|d| d.name.clone()),
        domain_local_only: def.domain.as_ref().and_then(|d| d.local_only) == Some(true),
        forward_plain_names: def.dns.forward_plain_names.unwrap_or(true),
        forwarders: def
            .dns
            .forwarders
            .iter()
            .map(|f| Forwarder {
                domain: f.domain.clone(),
                addr: f.addr,
            })
            .collect(),
        isolated: def.forward.is_none(),
        // `<ip localPtr>` is refused by the definition parser, so there is none to pass.
        local_ptr: Vec::new(),
        hosts: def.dns.hosts.iter().map(dns_host).collect(),
        reservations: ip.dhcp_hosts.iter().filter_map(reservation).collect(),
        own_addresses: vec![IpAddr::V4(ip.address)],
    })
}

/// A `<dns><host>` as the DNS server's host entry.
pub fn dns_host(h: &DnsHost) -> virtgate_dns::DnsHost {
    virtgate_dns::DnsHost {
        ip: h.ip,
        names: h.hostnames.clone(),
    }
}

/// A `<dhcp><host>` with a name as the DNS server's reservation.
pub fn reservation(h: &DhcpHost) -> Option<Reservation> {
    h.name.as_ref().map(|name| Reservation {
        name: name.clone(),
        ip: IpAddr::V4(h.ip),
    })
}

/// Whether the DNS configuration reads the host's resolv.conf: libvirt adds `no-resolv` when a
/// forwarder has an address and no domain, and for isolated networks.
pub fn uses_resolv_conf(net: &NetworkDns) -> bool {
    !net.isolated
        && !net
            .forwarders
            .iter()
            .any(|f| f.domain.is_none() && f.addr.is_some())
}

/// The firewall rules `def` needs, as a part of virtgate's one ruleset; `None` for a network
/// virtgate does not route for (no `<ip>`, or guests on a host bridge or macvtap).
pub fn firewall_part(def: &NetworkDef) -> Option<Part> {
    let ip = def.ip.as_ref()?;
    let bridge = def.bridge.name.clone()?;
    let uplink = || {
        def.forward
            .as_ref()
            .and_then(|f| f.interfaces.first().cloned())
    };
    let forward = match def.forward_mode() {
        None => NetForward::Isolated,
        Some(ForwardMode::Nat) => {
            let nat = def
                .forward
                .as_ref()
                .map(|f| f.nat.clone())
                .unwrap_or_default();
            NetForward::Nat {
                uplink: uplink(),
                ports: nat.ports.map(|p| (p.start, p.end)),
                addresses: nat.addresses.map(|a| (a.start, a.end)),
            }
        }
        Some(ForwardMode::Route) => NetForward::Route { uplink: uplink() },
        Some(ForwardMode::Open) => NetForward::Open,
        Some(_) => return None,
    };
    Some(Part::Network {
        name: def.name.clone(),
        bridge,
        subnet: ip.address,
        prefix: ip.prefix,
        forward,
    })
}

/// A MAC in QEMU's range from three random bytes (libvirt's `virMacAddrGenerate`).
pub fn generated_mac(random: [u8; 3]) -> MacAddr {
    let [a, b, c] = KVM_MAC_PREFIX;
    MacAddr([a, b, c, random[0], random[1], random[2]])
}

/// A random (version 4, RFC 9562 §5.4) UUID from 16 random bytes, as libvirt generates.
pub fn generated_uuid(mut random: [u8; 16]) -> Uuid {
    random[6] = (random[6] & 0x0f) | 0x40;
    random[8] = (random[8] & 0x3f) | 0x80;
    Uuid(random)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn parse(xml: &str) -> NetworkDef {
        NetworkDef::parse(xml, "t.xml").unwrap().value
    }

    const NAT: &str = "<network>
      <name>default</name>
      <forward mode='nat'/>
      <bridge name='virbr0'/>
      <mtu size='9000'/>
      <domain name='example.lan'/>
      <dns>
        <forwarder addr='198.51.100.53'/>
        <forwarder domain='corp.example' addr='198.51.100.54'/>
        <host ip='192.168.122.7'><hostname>printer</hostname></host>
      </dns>
      <ip address='192.168.122.1' netmask='255.255.255.0'>
        <dhcp>
          <range start='192.168.122.2' end='192.168.122.254'>
            <lease expiry='2' unit='hours'/>
          </range>
          <host mac='52:54:00:77:00:21' name='fixed' ip='192.168.122.50'/>
          <host mac='52:54:00:77:00:22' ip='192.168.122.51'>
            <lease expiry='0'/>
          </host>
        </dhcp>
      </ip>
    </network>";

    #[test]
    fn nat_network_to_dhcp() {
        let cfg = dhcp_config(&parse(NAT)).unwrap();
        assert_eq!(cfg.server, Ipv4Addr::new(192, 168, 122, 1));
        assert_eq!(cfg.prefix_len, 24);
        assert_eq!(cfg.router, Some(cfg.server));
        assert_eq!(cfg.dns_servers, vec![cfg.server]);
        assert_eq!(cfg.domain.as_deref(), Some("example.lan"));
        assert_eq!(cfg.mtu, Some(9000));
        assert_eq!(cfg.ranges.len(), 1);
        assert_eq!(
            cfg.ranges[0].lease,
            Some(LeaseTime::Finite(Duration::from_secs(7200)))
        );
        assert_eq!(cfg.hosts.len(), 2);
        assert_eq!(cfg.hosts[0].mac.to_string(), "52:54:00:77:00:21");
        assert_eq!(cfg.hosts[0].name.as_deref(), Some("fixed"));
        assert_eq!(cfg.hosts[0].lease, None);
        assert_eq!(cfg.hosts[1].lease, Some(LeaseTime::Infinite));
        assert_eq!(
            cfg.default_lease,
            LeaseTime::Finite(Duration::from_secs(DEFAULT_LEASE_SECS))
        );
        assert!(cfg.authoritative);
        cfg.validate().unwrap();
    }

    #[test]
    fn nat_network_to_dns() {
        let net = network_dns(&parse(NAT)).unwrap();
        assert_eq!(net.domain.as_deref(), Some("example.lan"));
        assert!(!net.domain_local_only);
        assert!(net.forward_plain_names);
        assert!(!net.isolated);
        assert_eq!(net.forwarders.len(), 2);
        assert_eq!(net.hosts.len(), 1);
        assert_eq!(net.hosts[0].names, vec!["printer".to_string()]);
        // Only the named reservation becomes a DNS name.
        assert_eq!(
            net.reservations,
            vec![Reservation {
                name: "fixed".into(),
                ip: "192.168.122.50".parse().unwrap()
            }]
        );
        assert_eq!(
            net.own_addresses,
            vec!["192.168.122.1".parse::<IpAddr>().unwrap()]
        );
        // An address-only forwarder replaces resolv.conf (libvirt's no-resolv).
        assert!(!uses_resolv_conf(&net));
        let cfg =
            virtgate_dns::Config::from_libvirt(&net, &["203.0.113.1".parse().unwrap()]).unwrap();
        assert_eq!(cfg.upstreams, vec!["198.51.100.53:53".parse().unwrap()]);
    }

    #[test]
    fn isolated_network_has_no_router_and_no_resolv_conf() {
        let def = parse(
            "<network><name>iso</name><bridge name='virbr9'/>
               <ip address='10.9.0.1' prefix='24'>
                 <dhcp><range start='10.9.0.10' end='10.9.0.20'/></dhcp>
               </ip></network>",
        );
        let cfg = dhcp_config(&def).unwrap();
        assert_eq!(cfg.router, None);
        assert_eq!(cfg.dns_servers, vec![Ipv4Addr::new(10, 9, 0, 1)]);
        let net = network_dns(&def).unwrap();
        assert!(net.isolated);
        assert!(!uses_resolv_conf(&net));
    }

    #[test]
    fn libvirt_default_uses_resolv_conf() {
        let net = network_dns(&NetworkDef::libvirt_default()).unwrap();
        assert!(uses_resolv_conf(&net));
        let cfg = dhcp_config(&NetworkDef::libvirt_default()).unwrap();
        assert_eq!(cfg.hosts, vec![]);
        assert_eq!(cfg.ranges[0].lease, None);
    }

    #[test]
    fn dns_disabled_means_no_server_and_no_dns_option() {
        let def = parse(
            "<network><name>nodns</name><forward/><bridge name='virbr8'/><dns enable='no'/>
               <ip address='10.8.0.1' prefix='24'>
                 <dhcp><range start='10.8.0.10' end='10.8.0.20'/></dhcp>
               </ip></network>",
        );
        assert!(network_dns(&def).is_none());
        let cfg = dhcp_config(&def).unwrap();
        assert!(cfg.dns_servers.is_empty());
        assert_eq!(cfg.router, Some(Ipv4Addr::new(10, 8, 0, 1)));
    }

    #[test]
    fn no_dhcp_without_ranges_or_hosts() {
        let def = parse(
            "<network><name>plain</name><forward mode='route'/><bridge name='virbr7'/>
               <ip address='10.7.0.1' prefix='24'/></network>",
        );
        assert!(dhcp_config(&def).is_none());
        assert!(network_dns(&def).is_some());
        let mut no_ip = def.clone();
        no_ip.ip = None;
        assert!(network_dns(&no_ip).is_none());
    }

    #[test]
    fn firewall_parts_per_mode() {
        let part = firewall_part(&parse(NAT)).unwrap();
        assert_eq!(
            part,
            Part::Network {
                name: "default".into(),
                bridge: "virbr0".into(),
                subnet: Ipv4Addr::new(192, 168, 122, 1),
                prefix: 24,
                forward: NetForward::Nat {
                    uplink: None,
                    ports: None,
                    addresses: None
                },
            }
        );
        let nat = parse(
            "<network><name>n</name><forward mode='nat' dev='eth1'><nat>
                 <address start='203.0.113.10' end='203.0.113.20'/><port start='2000' end='3000'/>
               </nat></forward><bridge name='virbr3'/>
               <ip address='10.3.0.1' prefix='16'/></network>",
        );
        let Some(Part::Network {
            forward, prefix, ..
        }) = firewall_part(&nat)
        else {
            panic!("no part")
        };
        assert_eq!(prefix, 16);
        assert_eq!(
            forward,
            NetForward::Nat {
                uplink: Some("eth1".into()),
                ports: Some((2000, 3000)),
                addresses: Some((
                    Ipv4Addr::new(203, 0, 113, 10),
                    Ipv4Addr::new(203, 0, 113, 20)
                )),
            }
        );
        let route = parse(
            "<network><name>r</name><forward mode='route' dev='eth2'/><bridge name='virbr4'/>
               <ip address='10.4.0.1' prefix='24'/></network>",
        );
        let Some(Part::Network { forward, .. }) = firewall_part(&route) else {
            panic!("no part")
        };
        assert_eq!(
            forward,
            NetForward::Route {
                uplink: Some("eth2".into())
            }
        );
        let open = parse(
            "<network><name>o</name><forward mode='open'/><bridge name='virbr5'/>
               <ip address='10.5.0.1' prefix='24'/></network>",
        );
        assert!(matches!(
            firewall_part(&open),
            Some(Part::Network {
                forward: NetForward::Open,
                ..
            })
        ));
        let iso = parse(
            "<network><name>i</name><bridge name='virbr6'/>
               <ip address='10.6.0.1' prefix='24'/></network>",
        );
        assert!(matches!(
            firewall_part(&iso),
            Some(Part::Network {
                forward: NetForward::Isolated,
                ..
            })
        ));
        let mut no_ip = iso.clone();
        no_ip.ip = None;
        assert_eq!(firewall_part(&no_ip), None);
        let host =
            parse("<network><name>h</name><forward mode='bridge'/><bridge name='br0'/></network>");
        assert_eq!(firewall_part(&host), None);
        // Every part passes the firewall's own validation.
        let all = [NAT]
            .iter()
            .map(|x| parse(x))
            .chain([nat, route, open, iso]);
        let rs = virtgate_firewall::Ruleset::new(all.filter_map(|d| firewall_part(&d)).collect());
        rs.validate().unwrap();
    }

    #[test]
    fn generated_identities() {
        let mac = generated_mac([0xab, 0xcd, 0xef]);
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:ef");
        assert!(!mac.is_multicast());
        let uuid = generated_uuid([0xff; 16]);
        assert_eq!(uuid.to_string(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let uuid = generated_uuid([0; 16]);
        assert_eq!(uuid.to_string(), "00000000-0000-4000-8000-000000000000");
    }
}
