//! Guest ports of a network (issue 5): how a guest plugs into a network, as libvirt's
//! `networkAllocatePort` decides it from the network's definition, and the two ways a port comes
//! to be:
//!
//! - [`add_port`]: virtgate creates the guest's interface (`virtgate port add`) — a persistent
//!   tap on the network's bridge, a tap on an Open vSwitch bridge with libvirt's external-ids, or
//!   a macvtap on the least-used parent of the pool (the work is `virtgate-links`');
//! - [`attach_tap`] / [`detach_tap`]: QEMU created the tap itself and runs a hook
//!   (`script=`/`downscript=`, `virtgate qemu-ifup`/`qemu-ifdown`), which attaches it to the
//!   network's bridge, or adds it to Open vSwitch, and takes it out again.
//!
//! Every port is marked with the alias `virtgate:ROLE:NETWORK` (the format `virtgate-links`
//! gives every link it creates), so `virtgate port list` finds them and stopping the network
//! removes them ([`RunningNetwork::stop`](crate::RunningNetwork::stop) calls
//! `Links::delete_ports_labelled`).

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::LinkUnspec;

use virtgate_config::libvirt::{ForwardMode, NetworkDef, VirtualPort};
use virtgate_links::{
    check_uuid, ovs, IfName, Label, Links, LinksError, Mac, MacvtapMode, MacvtapSpec, OvsConfig,
    OvsExternalIds, OvsPortSpec, PortInfo, TapSpec, UserRef,
};

use crate::error::VnetError;

/// How guests of a network are attached, from its definition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attachment {
    /// The Linux bridge virtgate creates and serves (isolated, `nat`, `route`, `open`): guests
    /// get taps on it, and the network must be running.
    OwnBridge { bridge: String },
    /// An existing Linux bridge of the host (`forward mode='bridge'` with `<bridge name>`):
    /// taps on it; virtgate creates and serves nothing.
    HostBridge { bridge: String },
    /// An existing Open vSwitch bridge (`<virtualport type='openvswitch'>`): taps added with
    /// `ovs-vsctl` and libvirt's external-ids.
    OpenVswitch {
        bridge: String,
        /// `<parameters interfaceid>`: the `iface-id` of every port (libvirt generates a random
        /// one per port when the network has none).
        interface_id: Option<String>,
    },
    /// macvtap "direct" ports on a pool of parent devices (`vepa`, `private`, `passthrough`,
    /// or `bridge` with `<interface dev>`).
    Macvtap {
        mode: MacvtapMode,
        parents: Vec<String>,
    },
}

impl Attachment {
    /// What `def` attaches guests to. A network that owns its bridge but has no bridge name yet
    /// (an XML file never defined or started) is refused: there is nothing to attach to.
    pub fn of(def: &NetworkDef) -> Result<Attachment, VnetError> {
        let no_bridge = || VnetError::NoBridge {
            network: def.name.clone(),
        };
        if def.owns_bridge() {
            let bridge = def.bridge.name.clone().ok_or_else(no_bridge)?;
            return Ok(Attachment::OwnBridge { bridge });
        }
        if def.uses_macvtap() {
            let (mode, parents) = match &def.forward {
                Some(f) => (f.mode, f.interfaces.clone()),
                None => return Err(no_bridge()),
            };
            let mode = match mode {
                ForwardMode::Vepa => MacvtapMode::Vepa,
                ForwardMode::Private => MacvtapMode::Private,
                ForwardMode::Passthrough => MacvtapMode::Passthrough,
                _ => MacvtapMode::Bridge,
            };
            return Ok(Attachment::Macvtap { mode, parents });
        }
        // forward mode='bridge' on a host bridge (the definition is validated: it has a name).
        let bridge = def.bridge.name.clone().ok_or_else(no_bridge)?;
        Ok(match &def.virtualport {
            Some(VirtualPort::OpenVswitch { interface_id }) => Attachment::OpenVswitch {
                bridge,
                interface_id: interface_id.map(|u| u.to_string()),
            },
            _ => Attachment::HostBridge { bridge },
        })
    }

    /// The bridge guests are attached to; `None` for macvtap networks.
    pub fn bridge(&self) -> Option<&str> {
        match self {
            Attachment::OwnBridge { bridge }
            | Attachment::HostBridge { bridge }
            | Attachment::OpenVswitch { bridge, .. } => Some(bridge),
            Attachment::Macvtap { .. } => None,
        }
    }

    /// One word for listings: `bridge`, `host-bridge`, `openvswitch`, or the macvtap mode
    /// (`macvtap-bridge`, `macvtap-vepa`, ...).
    pub fn describe(&self) -> String {
        match self {
            Attachment::OwnBridge { .. } => "bridge".into(),
            Attachment::HostBridge { .. } => "host-bridge".into(),
            Attachment::OpenVswitch { .. } => "openvswitch".into(),
            Attachment::Macvtap { mode, .. } => format!("macvtap-{mode}"),
        }
    }
}

/// A guest port as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortRequest {
    /// The guest's MAC.
    pub mac: Mac,
    /// None: the kernel's next `vnetN` (taps) or virtgate's next `macvtapN`.
    pub name: Option<IfName>,
    /// Who may open the tap (or the macvtap's `/dev/tapN`) without privileges.
    pub owner: Option<UserRef>,
    /// The domain's UUID, for Open vSwitch's `vm-id`.
    pub vm_uuid: Option<String>,
}

impl PortRequest {
    /// A port for a guest with `mac`, everything else left to defaults.
    pub fn new(mac: Mac) -> PortRequest {
        PortRequest {
            mac,
            name: None,
            owner: None,
            vm_uuid: None,
        }
    }
}

/// A random `52:54:00:xx:xx:xx` (the prefix QEMU and libvirt give guests).
pub fn random_guest_mac() -> Mac {
    let r: [u8; 3] = crate::files::random();
    Mac([0x52, 0x54, 0x00, r[0], r[1], r[2]])
}

/// Creates the port of a guest with `req` on network `def` (see the module documentation).
/// For a network with a bridge of virtgate's the bridge must be up, created by virtgate for
/// this network (the network is running); a host bridge must exist.
pub async fn add_port(
    links: &Links,
    def: &NetworkDef,
    req: &PortRequest,
) -> Result<PortInfo, VnetError> {
    let label = Label::new(&def.name)?;
    if let Some(vm) = &req.vm_uuid {
        check_uuid(vm)?;
    }
    let tap = |bridge: Option<&str>| -> Result<TapSpec, VnetError> {
        let mut t = TapSpec::new(req.mac);
        t.name.clone_from(&req.name);
        t.owner.clone_from(&req.owner);
        t.bridge = bridge.map(IfName::new).transpose()?;
        t.label = Some(label.clone());
        Ok(t)
    };
    let port = match Attachment::of(def)? {
        Attachment::OwnBridge { bridge } => {
            check_running(links, &def.name, &bridge).await?;
            links.create_tap(&tap(Some(&bridge))?).await?
        }
        Attachment::HostBridge { bridge } => {
            check_host_bridge(links, &def.name, &bridge).await?;
            links.create_tap(&tap(Some(&bridge))?).await?
        }
        Attachment::OpenVswitch {
            bridge,
            interface_id,
        } => {
            let spec = OvsPortSpec {
                bridge: IfName::new(&bridge)?,
                tap: tap(None)?,
                iface_id: interface_id,
                vm_id: req.vm_uuid.clone(),
            };
            links.create_ovs_port(&spec).await?
        }
        Attachment::Macvtap { mode, parents } => {
            let spec = MacvtapSpec {
                parents: parents
                    .iter()
                    .map(|p| IfName::new(p))
                    .collect::<Result<_, _>>()?,
                mode,
                guest_mac: req.mac,
                name: req.name.clone(),
                owner: req.owner.clone(),
                group: None,
                label: Some(label),
            };
            links.create_macvtap(&spec).await?
        }
    };
    Ok(port)
}

/// The network's own bridge must exist and be the one virtgate made for it.
async fn check_running(links: &Links, network: &str, bridge: &str) -> Result<(), VnetError> {
    let ours = links.list_bridges().await?;
    match ours.iter().find(|b| b.name == bridge) {
        Some(b) if b.label.as_deref() == Some(network) => Ok(()),
        _ => Err(VnetError::NotRunning {
            network: network.to_string(),
        }),
    }
}

/// A host bridge must exist and be a Linux bridge.
pub(crate) async fn check_host_bridge(
    links: &Links,
    network: &str,
    bridge: &str,
) -> Result<(), VnetError> {
    match links.bridge_info(&IfName::new(bridge)?).await {
        Ok(_) => Ok(()),
        Err(LinksError::NotFound { .. }) => Err(VnetError::Unusable {
            network: network.to_string(),
            reason: format!("host bridge '{bridge}' does not exist; create it first"),
        }),
        Err(LinksError::NotABridge { kind, .. }) => Err(VnetError::Unusable {
            network: network.to_string(),
            reason: format!(
                "'{bridge}' is a {kind} interface, not a Linux bridge (an Open vSwitch \
                 bridge needs <virtualport type='openvswitch'/>)"
            ),
        }),
        Err(e) => Err(e.into()),
    }
}

/// An Open vSwitch bridge must exist (`ovs-vsctl br-exists`).
pub(crate) async fn check_ovs_bridge(
    cfg: &OvsConfig,
    network: &str,
    bridge: &str,
) -> Result<(), VnetError> {
    if ovs::bridge_exists(cfg, bridge).await? {
        Ok(())
    } else {
        Err(VnetError::Unusable {
            network: network.to_string(),
            reason: format!(
                "Open vSwitch has no bridge '{bridge}'; create it with ovs-vsctl add-br"
            ),
        })
    }
}

/// What QEMU's hook knows about the guest besides the tap's name (from the environment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HookGuest {
    /// The guest's MAC, for Open vSwitch's `attached-mac` (QEMU does not tell its scripts).
    pub mac: Option<Mac>,
    /// The domain's UUID, for `vm-id`.
    pub vm_uuid: Option<String>,
}

/// The few facts of a link the hooks need.
struct Found {
    index: u32,
    kind: Option<String>,
    alias: Option<String>,
    master: Option<u32>,
    mtu: Option<u32>,
}

fn found(msg: &LinkMessage) -> Found {
    let mut f = Found {
        index: msg.header.index,
        kind: None,
        alias: None,
        master: None,
        mtu: None,
    };
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfAlias(s) => f.alias = Some(s.clone()),
            LinkAttribute::Controller(m) if *m != 0 => f.master = Some(*m),
            LinkAttribute::Mtu(m) => f.mtu = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        f.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    f
}

async fn find(handle: &rtnetlink::Handle, name: &str) -> Result<Option<Found>, VnetError> {
    let mut s = handle.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(Some(found(&m))),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e))
            if e.code.map(|c| c.get().saturating_abs()) == Some(libc_enodev()) =>
        {
            Ok(None)
        }
        Err(source) => Err(VnetError::Netlink {
            context: format!("looking up {name}"),
            source,
        }),
    }
}

/// The kernel's answer for a name it does not know.
fn libc_enodev() -> i32 {
    nix::errno::Errno::ENODEV as i32
}

fn netlink() -> Result<(rtnetlink::Handle, tokio::task::JoinHandle<()>), VnetError> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(VnetError::io("opening a netlink socket"))?;
    Ok((handle, tokio::spawn(conn)))
}

/// The alias `virtgate-links` puts on its links: `virtgate:ROLE:LABEL`.
fn alias(role: &str, network: &str) -> String {
    format!("virtgate:{role}:{network}")
}

/// `qemu-ifup`: attaches the tap QEMU created (`tap`) to network `def` — to its Linux bridge
/// (with the bridge's MTU and, when the guest's MAC is known, libvirt's `fe:` host-side MAC) or to its Open vSwitch bridge with libvirt's
/// external-ids — marks it as a port of the network and sets it up. A macvtap network has no
/// bridge for a tap: refused.
pub async fn attach_tap(
    def: &NetworkDef,
    tap: &IfName,
    guest: &HookGuest,
    ovs: &OvsConfig,
) -> Result<(), VnetError> {
    if let Some(vm) = &guest.vm_uuid {
        check_uuid(vm)?;
    }
    Label::new(&def.name)?;
    let attachment = Attachment::of(def)?;
    let (handle, conn) = netlink()?;
    let result = async {
        let link = find(&handle, tap.as_str())
            .await?
            .ok_or_else(|| LinksError::NotFound {
                name: tap.to_string(),
            })?;
        if link.kind.as_deref() != Some("tun") {
            return Err(VnetError::Unusable {
                network: def.name.clone(),
                reason: format!(
                    "{tap} is a {} interface, not the tap QEMU created",
                    link.kind.as_deref().unwrap_or("physical or unknown")
                ),
            });
        }
        let set = |msg: LinkMessage, what: String| {
            let handle = handle.clone();
            async move {
                handle
                    .link()
                    .set(msg)
                    .execute()
                    .await
                    .map_err(|source| VnetError::Netlink {
                        context: what,
                        source,
                    })
            }
        };
        match &attachment {
            Attachment::OwnBridge { bridge } | Attachment::HostBridge { bridge } => {
                let br = find(&handle, bridge).await?;
                let br = match br {
                    Some(b) if b.kind.as_deref() == Some("bridge") => b,
                    _ => {
                        return Err(VnetError::Unusable {
                            network: def.name.clone(),
                            reason: format!(
                                "bridge '{bridge}' is not there (is the network started?)"
                            ),
                        })
                    }
                };
                if let Attachment::OwnBridge { .. } = attachment {
                    let owner = br.alias.as_deref().map(str::to_string);
                    if owner.as_deref() != Some(alias("bridge", &def.name).as_str()) {
                        return Err(VnetError::NotRunning {
                            network: def.name.clone(),
                        });
                    }
                }
                let mut m = LinkUnspec::new_with_index(link.index).alias(alias("tap", &def.name));
                if let Some(mtu) = br.mtu {
                    m = m.mtu(mtu);
                }
                // libvirt's host-side MAC when the guest's is known: a bridge without a MAC of
                // its own takes its ports' lowest, and an `fe:` address is never the lowest.
                if let Some(mac) = guest.mac {
                    m = m.address(mac.host_side().0.to_vec());
                }
                set(m.build(), format!("marking {tap} and setting its MTU")).await?;
                let m = LinkUnspec::new_with_index(link.index)
                    .controller(br.index)
                    .up()
                    .build();
                set(m, format!("attaching {tap} to {bridge}")).await?;
            }
            Attachment::OpenVswitch {
                bridge,
                interface_id,
            } => {
                let iface_id = match interface_id {
                    Some(id) => id.clone(),
                    None => random_uuid(),
                };
                let m = LinkUnspec::new_with_index(link.index)
                    .alias(alias("ovs", &def.name))
                    .up()
                    .build();
                set(m, format!("marking {tap} and setting it up")).await?;
                let ids = OvsExternalIds {
                    attached_mac: guest.mac,
                    iface_id,
                    vm_id: guest.vm_uuid.clone(),
                };
                ovs::add_port(ovs, bridge, tap.as_str(), &ids).await?;
            }
            Attachment::Macvtap { .. } => {
                return Err(VnetError::Unusable {
                    network: def.name.clone(),
                    reason: "guests of a macvtap network get a macvtap port \
                             (`virtgate port add`), not a tap of QEMU's"
                        .into(),
                })
            }
        }
        tracing::info!(tap = %tap, network = %def.name, "tap attached");
        Ok(())
    }
    .await;
    conn.abort();
    result
}

/// `qemu-ifdown`: takes the tap out of its bridge or Open vSwitch (`--if-exists del-port`) and
/// sets it down. Which one is read from the tap's mark (`virtgate:tap:` or `virtgate:ovs:`), so
/// no network needs to be named; a tap that is already gone is fine (QEMU may have closed it).
pub async fn detach_tap(tap: &IfName, ovs: &OvsConfig) -> Result<(), VnetError> {
    let (handle, conn) = netlink()?;
    let result = async {
        let Some(link) = find(&handle, tap.as_str()).await? else {
            return Ok(());
        };
        let role = link
            .alias
            .as_deref()
            .and_then(|a| a.strip_prefix("virtgate:"))
            .and_then(|r| r.split(':').next())
            .map(str::to_string);
        match role.as_deref() {
            Some("ovs") => {
                ovs::del_port(ovs, tap.as_str()).await?;
            }
            Some("tap") => {}
            _ => {
                return Err(VnetError::Links(LinksError::NotOurs {
                    name: tap.to_string(),
                }))
            }
        }
        let mut m = LinkUnspec::new_with_index(link.index).down();
        if link.master.is_some() {
            m = m.nocontroller();
        }
        match handle.link().set(m.build()).execute().await {
            Ok(()) => {}
            // Closed by QEMU meanwhile: nothing left to do.
            Err(rtnetlink::Error::NetlinkError(e))
                if e.code.map(|c| c.get().saturating_abs()) == Some(libc_enodev()) => {}
            Err(source) => {
                return Err(VnetError::Netlink {
                    context: format!("detaching {tap}"),
                    source,
                })
            }
        }
        tracing::info!(tap = %tap, "tap detached");
        Ok(())
    }
    .await;
    conn.abort();
    result
}

/// A random (version 4) UUID, lower case, as libvirt generates an `interfaceid`.
fn random_uuid() -> String {
    let u = crate::convert::generated_uuid(crate::files::random());
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(xml: &str) -> NetworkDef {
        NetworkDef::parse(xml, "t.xml").unwrap().value
    }

    #[test]
    fn attachment_follows_the_forward_mode() {
        let d = NetworkDef::libvirt_default();
        assert_eq!(
            Attachment::of(&d).unwrap(),
            Attachment::OwnBridge {
                bridge: "virbr0".into()
            }
        );
        let iso = def("<network><name>iso</name><bridge name='virbr7'/></network>");
        assert_eq!(Attachment::of(&iso).unwrap().bridge(), Some("virbr7"));
        let nameless = def("<network><name>n</name></network>");
        assert!(matches!(
            Attachment::of(&nameless),
            Err(VnetError::NoBridge { .. })
        ));
        let host =
            def("<network><name>h</name><forward mode='bridge'/><bridge name='br0'/></network>");
        assert_eq!(
            Attachment::of(&host).unwrap(),
            Attachment::HostBridge {
                bridge: "br0".into()
            }
        );
        let ovs = def(
            "<network><name>o</name><forward mode='bridge'/><bridge name='ovsbr0'/>\
             <virtualport type='openvswitch'><parameters interfaceid='668033d2-06a4-4aaa-aca5-30cde245e477'/></virtualport></network>",
        );
        assert_eq!(
            Attachment::of(&ovs).unwrap(),
            Attachment::OpenVswitch {
                bridge: "ovsbr0".into(),
                interface_id: Some("668033d2-06a4-4aaa-aca5-30cde245e477".into())
            }
        );
        assert_eq!(Attachment::of(&ovs).unwrap().describe(), "openvswitch");
        for (mode, want) in [
            ("bridge", MacvtapMode::Bridge),
            ("vepa", MacvtapMode::Vepa),
            ("private", MacvtapMode::Private),
            ("passthrough", MacvtapMode::Passthrough),
        ] {
            let d = def(&format!(
                "<network><name>d</name><forward mode='{mode}'>\
                 <interface dev='eth1'/><interface dev='eth2'/></forward></network>"
            ));
            let a = Attachment::of(&d).unwrap();
            assert_eq!(
                a,
                Attachment::Macvtap {
                    mode: want,
                    parents: vec!["eth1".into(), "eth2".into()]
                }
            );
            assert_eq!(a.bridge(), None);
            assert_eq!(a.describe(), format!("macvtap-{want}"));
        }
        // forward dev= alone is the pool of one.
        let d = def("<network><name>d</name><forward mode='vepa' dev='eth3'/></network>");
        assert_eq!(
            Attachment::of(&d).unwrap(),
            Attachment::Macvtap {
                mode: MacvtapMode::Vepa,
                parents: vec!["eth3".into()]
            }
        );
    }

    #[test]
    fn random_guest_macs_are_kvm_unicast() {
        let a = random_guest_mac();
        assert_eq!(&a.0[..3], &[0x52, 0x54, 0x00]);
        assert!(a.check_guest().is_ok());
        assert!((0..8).map(|_| random_guest_mac()).any(|m| m != a));
        let u = random_uuid();
        assert!(check_uuid(&u).is_ok(), "{u}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ovs_bridge_check_reads_br_exists_status() {
        let sh = |script: &str| OvsConfig {
            vsctl: "sh".into(),
            extra_args: vec!["-c".into(), script.into(), "sh".into()],
            timeout_secs: 1,
        };
        assert!(check_ovs_bridge(&sh("exit 0"), "n", "obr").await.is_ok());
        let e = check_ovs_bridge(&sh("exit 2"), "n", "obr")
            .await
            .unwrap_err();
        assert!(matches!(e, VnetError::Unusable { .. }), "{e}");
        assert!(e.to_string().contains("obr"), "{e}");
        let e = check_ovs_bridge(&sh("echo database down >&2; exit 1"), "n", "obr")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("database down"), "{e}");
    }
}
