//! A flat view of an `RTM_NEWLINK` message (rtnetlink(7), linux/include/uapi/linux/if_link.h):
//! the attributes this crate looks at, with everything absent or malformed left as `None`.
//! Also the alias marker by which virtgate recognises the links it created.

use rtnetlink::packet_core::Nla;
use rtnetlink::packet_route::link::{
    InfoBridge, InfoData, InfoMacVlan, InfoMacVtap, InfoTun, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage, MacVlanMode,
};

use crate::types::Mac;

/// `IFLA_TUN_*` (linux/include/uapi/linux/if_link.h); netlink-packet-route leaves them raw.
const IFLA_TUN_OWNER: u16 = 1;
const IFLA_TUN_GROUP: u16 = 2;
const IFLA_TUN_TYPE: u16 = 3;
const IFLA_TUN_PERSIST: u16 = 6;

/// Prefix of the alias (`IFLA_IFALIAS`) on every link virtgate creates: `virtgate:ROLE` or
/// `virtgate:ROLE:LABEL`. Kept in the kernel, so it survives a restart of the daemon and tells
/// our links from the host's without a state file.
pub(crate) const ALIAS_PREFIX: &str = "virtgate:";

/// What a link we created is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Bridge,
    Tap,
    Ovs,
    Macvtap,
    Shim,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Bridge => "bridge",
            Role::Tap => "tap",
            Role::Ovs => "ovs",
            Role::Macvtap => "macvtap",
            Role::Shim => "shim",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "bridge" => Role::Bridge,
            "tap" => Role::Tap,
            "ovs" => Role::Ovs,
            "macvtap" => Role::Macvtap,
            "shim" => Role::Shim,
            _ => return None,
        })
    }
}

/// The alias text for a link of `role` carrying `label`.
pub(crate) fn alias_for(role: Role, label: Option<&str>) -> String {
    match label {
        Some(l) => format!("{ALIAS_PREFIX}{}:{l}", role.as_str()),
        None => format!("{ALIAS_PREFIX}{}", role.as_str()),
    }
}

/// Reads our marker back: `(role, label)`.
pub(crate) fn parse_alias(alias: &str) -> Option<(Role, Option<String>)> {
    let rest = alias.strip_prefix(ALIAS_PREFIX)?;
    let (role, label) = match rest.split_once(':') {
        Some((r, l)) => (r, Some(l.to_string())),
        None => (rest, None),
    };
    Some((Role::parse(role)?, label.filter(|l| !l.is_empty())))
}

/// Tun driver facts (`IFLA_INFO_DATA` of kind `tun`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TunFacts {
    pub owner: Option<u32>,
    pub group: Option<u32>,
    /// 1 = tun, 2 = tap (`IFF_TUN`/`IFF_TAP`).
    pub kind: Option<u8>,
    pub persist: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BridgeFacts {
    pub stp_state: Option<u32>,
    /// In clock_t (1/100 s), as the kernel reports it.
    pub forward_delay_cs: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct LinkView {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub alias: Option<String>,
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
    pub master: Option<u32>,
    /// `IFLA_LINK`: the parent of a macvtap/macvlan.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: set when `link` is an index in another namespace.
    pub link_netns: bool,
    pub up: bool,
    pub macvlan_mode: Option<MacVlanMode>,
    pub tun: TunFacts,
    pub bridge: BridgeFacts,
}

impl LinkView {
    pub(crate) fn from_message(msg: &LinkMessage) -> LinkView {
        let mut v = LinkView {
            index: msg.header.index,
            up: msg.header.flags.contains(LinkFlags::Up),
            ..LinkView::default()
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => v.name = n.clone(),
                LinkAttribute::IfAlias(a) => v.alias = Some(a.clone()),
                LinkAttribute::Address(a) => v.mac = Mac::from_slice(a),
                LinkAttribute::Mtu(m) => v.mtu = Some(*m),
                LinkAttribute::Controller(m) if *m != 0 => v.master = Some(*m),
                LinkAttribute::Link(l) if *l != 0 => v.link = Some(*l),
                LinkAttribute::LinkNetNsId(_) => v.link_netns = true,
                LinkAttribute::LinkInfo(infos) => v.read_info(infos),
                _ => {}
            }
        }
        v
    }

    fn read_info(&mut self, infos: &[LinkInfo]) {
        for info in infos {
            match info {
                LinkInfo::Kind(k) => self.kind = Some(k.to_string()),
                LinkInfo::Data(InfoData::MacVtap(items)) => {
                    for i in items {
                        if let InfoMacVtap::Mode(m) = i {
                            self.macvlan_mode = Some(*m);
                        }
                    }
                }
                LinkInfo::Data(InfoData::MacVlan(items)) => {
                    for i in items {
                        if let InfoMacVlan::Mode(m) = i {
                            self.macvlan_mode = Some(*m);
                        }
                    }
                }
                LinkInfo::Data(InfoData::Bridge(items)) => {
                    for i in items {
                        match i {
                            InfoBridge::StpState(s) => {
                                self.bridge.stp_state = Some(u32::from(*s));
                            }
                            InfoBridge::ForwardDelay(d) => self.bridge.forward_delay_cs = Some(*d),
                            _ => {}
                        }
                    }
                }
                LinkInfo::Data(InfoData::Tun(items)) => {
                    for item in items {
                        let InfoTun::Other(nla) = item else {
                            continue;
                        };
                        let mut value = vec![0u8; nla.value_len()];
                        nla.emit_value(&mut value);
                        match nla.kind() {
                            IFLA_TUN_OWNER => self.tun.owner = u32_of(&value),
                            IFLA_TUN_GROUP => self.tun.group = u32_of(&value),
                            IFLA_TUN_TYPE => self.tun.kind = value.first().copied(),
                            IFLA_TUN_PERSIST => self.tun.persist = value.first().map(|b| *b != 0),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Our marker, if this link carries one.
    pub(crate) fn ours(&self) -> Option<(Role, Option<String>)> {
        self.alias.as_deref().and_then(parse_alias)
    }

    pub(crate) fn kind_or_unknown(&self) -> String {
        self.kind
            .clone()
            .unwrap_or_else(|| "physical or unknown".into())
    }

    pub(crate) fn is_kind(&self, k: &str) -> bool {
        self.kind.as_deref() == Some(k)
    }
}

fn u32_of(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_ne_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::DefaultNla;
    use rtnetlink::packet_route::link::{InfoKind, LinkHeader};

    #[test]
    fn alias_round_trip() {
        assert_eq!(
            alias_for(Role::Tap, Some("default")),
            "virtgate:tap:default"
        );
        assert_eq!(alias_for(Role::Bridge, None), "virtgate:bridge");
        assert_eq!(
            parse_alias("virtgate:macvtap:net: with colon"),
            Some((Role::Macvtap, Some("net: with colon".into())))
        );
        assert_eq!(parse_alias("virtgate:shim"), Some((Role::Shim, None)));
        assert_eq!(parse_alias("virtgate:bridge:"), Some((Role::Bridge, None)));
        assert_eq!(parse_alias("virtgate:nonsense"), None);
        assert_eq!(parse_alias("uplink to rack 4"), None);
        assert_eq!(parse_alias(""), None);
    }

    #[test]
    fn view_reads_tun_owner_and_macvtap_mode() {
        let mut msg = LinkMessage::default();
        msg.header = LinkHeader {
            index: 7,
            flags: LinkFlags::Up,
            ..LinkHeader::default()
        };
        msg.attributes = vec![
            LinkAttribute::IfName("vnet0".into()),
            LinkAttribute::Address(vec![0xfe, 0x54, 0, 1, 2, 3]),
            LinkAttribute::Controller(3),
            LinkAttribute::IfAlias("virtgate:tap:default".into()),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Tun),
                LinkInfo::Data(InfoData::Tun(vec![
                    InfoTun::Other(DefaultNla::new(
                        IFLA_TUN_OWNER,
                        65534u32.to_ne_bytes().to_vec(),
                    )),
                    InfoTun::Other(DefaultNla::new(IFLA_TUN_TYPE, vec![2])),
                    InfoTun::Other(DefaultNla::new(IFLA_TUN_PERSIST, vec![1])),
                    // Malformed owner length: ignored, not a panic.
                    InfoTun::Other(DefaultNla::new(IFLA_TUN_GROUP, vec![1, 2])),
                ])),
            ]),
        ];
        let v = LinkView::from_message(&msg);
        assert_eq!(v.index, 7);
        assert!(v.up);
        assert_eq!(v.name, "vnet0");
        assert_eq!(v.kind.as_deref(), Some("tun"));
        assert_eq!(v.master, Some(3));
        assert_eq!(v.mac.unwrap().to_string(), "fe:54:00:01:02:03");
        assert_eq!(v.tun.owner, Some(65534));
        assert_eq!(v.tun.group, None);
        assert_eq!(v.tun.kind, Some(2));
        assert_eq!(v.tun.persist, Some(true));
        assert_eq!(v.ours(), Some((Role::Tap, Some("default".into()))));

        let mut m2 = LinkMessage::default();
        m2.attributes = vec![
            LinkAttribute::Address(vec![1, 2, 3]),
            LinkAttribute::Link(4),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::MacVtap),
                LinkInfo::Data(InfoData::MacVtap(vec![InfoMacVtap::Mode(
                    MacVlanMode::Vepa,
                )])),
            ]),
        ];
        let v2 = LinkView::from_message(&m2);
        assert_eq!(v2.mac, None);
        assert_eq!(v2.link, Some(4));
        assert!(!v2.link_netns);
        assert_eq!(v2.macvlan_mode, Some(MacVlanMode::Vepa));
        assert!(v2.is_kind("macvtap"));
        assert_eq!(v2.ours(), None);
    }
}
