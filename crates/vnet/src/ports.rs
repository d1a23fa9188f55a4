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

use std::time::Duration;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::LinkUnspec;

use virtgate_config::libvirt::{ForwardMode, NetworkDef, VirtualPort};
use virtgate_links::{
    check_uuid, IfName, Label, Links, LinksError, Mac, MacvtapMode, MacvtapSpec, OvsConfig,
    OvsPortSpec, PortInfo, TapSpec, UserRef,
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

/// An Open vSwitch bridge must exist (`ovs-vsctl br-exists`: status 2 when it does not).
pub(crate) async fn check_ovs_bridge(
    cfg: &OvsConfig,
    network: &str,
    bridge: &str,
) -> Result<(), VnetError> {
    let mut args = base_args(cfg);
    args.extend(["br-exists".to_string(), bridge.to_string()]);
    match vsctl(cfg, &args).await {
        Ok(_) => Ok(()),
        Err(VsctlFailure::Status(2, _)) => Err(VnetError::Unusable {
            network: network.to_string(),
            reason: format!(
                "Open vSwitch has no bridge '{bridge}'; create it with ovs-vsctl add-br"
            ),
        }),
        Err(f) => Err(f.into_error(&args)),
    }
}

/// Why running `ovs-vsctl` failed.
enum VsctlFailure {
    Status(i32, String),
    Other(String),
}

impl VsctlFailure {
    fn into_error(self, args: &[String]) -> VnetError {
        let reason = match self {
            VsctlFailure::Status(code, err) => format!("exit status {code}: {err}"),
            VsctlFailure::Other(r) => r,
        };
        VnetError::Links(LinksError::Ovs {
            args: args.join(" "),
            reason,
        })
    }
}

fn base_args(cfg: &OvsConfig) -> Vec<String> {
    let mut a = cfg.extra_args.clone();
    a.push(format!("--timeout={}", cfg.timeout_secs));
    a
}

async fn vsctl(cfg: &OvsConfig, args: &[String]) -> Result<String, VsctlFailure> {
    let child = tokio::process::Command::new(&cfg.vsctl)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    // ovs-vsctl honours --timeout itself; this bound covers a program that hangs anyway.
    let limit = Duration::from_secs(u64::from(cfg.timeout_secs) + 5);
    let out = tokio::time::timeout(limit, child)
        .await
        .map_err(|_| VsctlFailure::Other(format!("no answer within {} s", limit.as_secs())))?
        .map_err(|e| VsctlFailure::Other(format!("cannot run {}: {e}", cfg.vsctl.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(VsctlFailure::Status(out.status.code().unwrap_or(-1), err));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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

/// The `ovs-vsctl` arguments libvirt uses to add `port` (src/util/virnetdevopenvswitch.c):
/// `--may-exist add-port` and the external-ids, each in its own `set Interface`; `attached-mac`
/// and `vm-id` only when known.
pub fn ovs_add_port_args(
    cfg: &OvsConfig,
    bridge: &str,
    port: &str,
    iface_id: &str,
    guest: &HookGuest,
) -> Vec<String> {
    let mut a = base_args(cfg);
    a.extend(
        ["--", "--may-exist", "add-port", bridge, port]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut ids = Vec::new();
    if let Some(m) = guest.mac {
        ids.push(format!("external-ids:attached-mac=\"{m}\""));
    }
    ids.push(format!("external-ids:iface-id=\"{iface_id}\""));
    if let Some(vm) = &guest.vm_uuid {
        ids.push(format!("external-ids:vm-id=\"{vm}\""));
    }
    ids.push("external-ids:iface-status=active".into());
    for kv in ids {
        a.extend(
            ["--", "set", "Interface", port]
                .iter()
                .map(|s| s.to_string()),
        );
        a.push(kv);
    }
    a
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
                let args = ovs_add_port_args(ovs, bridge, tap.as_str(), &iface_id, guest);
                vsctl(ovs, &args).await.map_err(|f| f.into_error(&args))?;
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
                let mut args = base_args(ovs);
                args.extend(
                    ["--", "--if-exists", "del-port", tap.as_str()]
                        .iter()
                        .map(|s| s.to_string()),
                );
                vsctl(ovs, &args).await.map_err(|f| f.into_error(&args))?;
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
    fn hook_ovs_command_is_libvirts_with_what_is_known() {
        let cfg = OvsConfig::default();
        let full = HookGuest {
            mac: Some("52:54:00:93:05:25".parse().unwrap()),
            vm_uuid: Some("c7a5fdbd-cdaf-9455-926a-d65c16db1809".into()),
        };
        assert_eq!(
            ovs_add_port_args(
                &cfg,
                "ovsbr0",
                "tap0",
                "668033d2-06a4-4aaa-aca5-30cde245e477",
                &full
            )
            .join(" "),
            "--timeout=5 -- --may-exist add-port ovsbr0 tap0 \
             -- set Interface tap0 external-ids:attached-mac=\"52:54:00:93:05:25\" \
             -- set Interface tap0 external-ids:iface-id=\"668033d2-06a4-4aaa-aca5-30cde245e477\" \
             -- set Interface tap0 external-ids:vm-id=\"c7a5fdbd-cdaf-9455-926a-d65c16db1809\" \
             -- set Interface tap0 external-ids:iface-status=active"
        );
        let bare = ovs_add_port_args(&cfg, "b", "t", "x", &HookGuest::default()).join(" ");
        assert!(
            !bare.contains("attached-mac") && !bare.contains("vm-id"),
            "{bare}"
        );
        assert!(bare.ends_with("external-ids:iface-status=active"));
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
