//! [`NetworkDef`] → libvirt-style XML, in the element order and layout of libvirt's
//! `virNetworkDefFormatBuf` (two-space indent, single-quoted attributes), so `virtgate net
//! dumpxml` reads like `virsh net-dumpxml --inactive`. The output parses back to the same
//! value.

use std::fmt::Write as _;

use super::xml::{escape_attr, escape_text};
use super::{ForwardMode, Lease, MaskSyntax, NetworkDef, VirtualPort};

impl NetworkDef {
    /// The definition as libvirt network XML.
    pub fn to_xml(&self) -> String {
        let mut o = Out::default();
        o.line(0, "<network>");
        o.line(1, &format!("<name>{}</name>", escape_text(&self.name)));
        if let Some(uuid) = self.uuid {
            o.line(1, &format!("<uuid>{uuid}</uuid>"));
        }
        if let Some(t) = &self.title {
            o.line(1, &format!("<title>{}</title>", escape_text(t)));
        }
        if let Some(d) = &self.description {
            o.line(1, &format!("<description>{}</description>", escape_text(d)));
        }

        if let Some(fwd) = &self.forward {
            let mut tag = String::from("<forward");
            if let Some(first) = fwd.interfaces.first() {
                let _ = write!(tag, " dev='{}'", escape_attr(first));
            }
            let _ = write!(tag, " mode='{}'", fwd.mode);
            let nat = fwd.mode == ForwardMode::Nat
                && (fwd.nat.addresses.is_some() || fwd.nat.ports.is_some());
            if fwd.interfaces.is_empty() && !nat {
                o.line(1, &format!("{tag}/>"));
            } else {
                o.line(1, &format!("{tag}>"));
                if nat {
                    o.line(2, "<nat>");
                    if let Some(a) = fwd.nat.addresses {
                        o.line(
                            3,
                            &format!("<address start='{}' end='{}'/>", a.start, a.end),
                        );
                    }
                    if let Some(p) = fwd.nat.ports {
                        o.line(3, &format!("<port start='{}' end='{}'/>", p.start, p.end));
                    }
                    o.line(2, "</nat>");
                }
                for dev in &fwd.interfaces {
                    o.line(2, &format!("<interface dev='{}'/>", escape_attr(dev)));
                }
                o.line(1, "</forward>");
            }
        }

        // libvirt writes <bridge> with stp and delay for every network whose bridge it
        // creates, and otherwise only when there is something to say.
        let owns = self.owns_bridge();
        let b = &self.bridge;
        if owns || b.name.is_some() || b.mac_table_manager.is_some() {
            let mut tag = String::from("<bridge");
            if let Some(name) = &b.name {
                let _ = write!(tag, " name='{}'", escape_attr(name));
            }
            if owns {
                let _ = write!(
                    tag,
                    " stp='{}' delay='{}'",
                    if b.stp { "on" } else { "off" },
                    b.delay
                );
            }
            if let Some(m) = b.mac_table_manager {
                let _ = write!(tag, " macTableManager='{}'", m.as_str());
            }
            o.line(1, &format!("{tag}/>"));
        }
        if let Some(mtu) = self.mtu {
            o.line(1, &format!("<mtu size='{mtu}'/>"));
        }
        if let Some(mac) = self.mac {
            o.line(1, &format!("<mac address='{mac}'/>"));
        }
        if let Some(d) = &self.domain {
            let mut tag = format!("<domain name='{}'", escape_attr(&d.name));
            if let Some(l) = d.local_only {
                let _ = write!(tag, " localOnly='{}'", yes_no(l));
            }
            o.line(1, &format!("{tag}/>"));
        }

        let dns = &self.dns;
        if !dns.is_default() {
            let mut tag = String::from("<dns");
            if let Some(e) = dns.enable {
                let _ = write!(tag, " enable='{}'", yes_no(e));
            }
            if let Some(f) = dns.forward_plain_names {
                let _ = write!(tag, " forwardPlainNames='{}'", yes_no(f));
            }
            if dns.forwarders.is_empty() && dns.hosts.is_empty() {
                o.line(1, &format!("{tag}/>"));
            } else {
                o.line(1, &format!("{tag}>"));
                for f in &dns.forwarders {
                    let mut t = String::from("<forwarder");
                    if let Some(d) = &f.domain {
                        let _ = write!(t, " domain='{}'", escape_attr(d));
                    }
                    if let Some(a) = f.addr {
                        let _ = write!(t, " addr='{a}'");
                    }
                    o.line(2, &format!("{t}/>"));
                }
                for h in &dns.hosts {
                    o.line(2, &format!("<host ip='{}'>", h.ip));
                    for n in &h.hostnames {
                        o.line(3, &format!("<hostname>{}</hostname>", escape_text(n)));
                    }
                    o.line(2, "</host>");
                }
                o.line(1, "</dns>");
            }
        }

        if let Some(ip) = &self.ip {
            let mask = match ip.mask_syntax {
                MaskSyntax::Netmask => format!("netmask='{}'", ip.netmask()),
                MaskSyntax::Prefix => format!("prefix='{}'", ip.prefix),
            };
            o.line(1, &format!("<ip address='{}' {mask}>", ip.address));
            if ip.dhcp_enabled() {
                o.line(2, "<dhcp>");
                for r in &ip.dhcp_ranges {
                    let tag = format!("<range start='{}' end='{}'", r.start, r.end);
                    o.with_lease(3, &tag, "range", r.lease);
                }
                for h in &ip.dhcp_hosts {
                    let mut tag = format!("<host mac='{}'", h.mac);
                    if let Some(n) = &h.name {
                        let _ = write!(tag, " name='{}'", escape_attr(n));
                    }
                    let _ = write!(tag, " ip='{}'", h.ip);
                    o.with_lease(3, &tag, "host", h.lease);
                }
                o.line(2, "</dhcp>");
            }
            o.line(1, "</ip>");
        }

        if let Some(VirtualPort::OpenVswitch { interface_id }) = &self.virtualport {
            match interface_id {
                None => o.line(1, "<virtualport type='openvswitch'/>"),
                Some(id) => {
                    o.line(1, "<virtualport type='openvswitch'>");
                    o.line(2, &format!("<parameters interfaceid='{id}'/>"));
                    o.line(1, "</virtualport>");
                }
            }
        }
        o.line(0, "</network>");
        o.0
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[derive(Default)]
struct Out(String);

impl Out {
    fn line(&mut self, depth: usize, s: &str) {
        for _ in 0..depth {
            self.0.push_str("  ");
        }
        self.0.push_str(s);
        self.0.push('\n');
    }

    /// `tag` (an unterminated start tag) closed directly, or holding a `<lease>`.
    fn with_lease(&mut self, depth: usize, tag: &str, name: &str, lease: Option<Lease>) {
        match lease {
            None => self.line(depth, &format!("{tag}/>")),
            Some(lease) => {
                self.line(depth, &format!("{tag}>"));
                match lease {
                    Lease::Infinite => self.line(depth + 1, "<lease expiry='0'/>"),
                    Lease::Finite { expiry, unit } => self.line(
                        depth + 1,
                        &format!("<lease expiry='{expiry}' unit='{}'/>", unit.as_str()),
                    ),
                }
                self.line(depth, &format!("</{name}>"));
            }
        }
    }
}
