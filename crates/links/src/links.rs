//! The `Links` handle: bridges, taps, macvtap ports, macvlan shims and Open vSwitch ports,
//! through rtnetlink (rtnetlink(7): `RTM_NEWLINK`/`RTM_SETLINK`/`RTM_DELLINK`/`RTM_NEWADDR`),
//! the tun ioctls and `ovs-vsctl`. Bridge attributes are `IFLA_BR_*` (linux/net/bridge/
//! br_netlink.c); macvtap/macvlan are `IFLA_MACVLAN_MODE` (linux/drivers/net/macvlan.c).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoBridge, InfoKind, LinkMessage, MacVlanMode,
};
use rtnetlink::{Handle, LinkBridge, LinkMacVlan, LinkMacVtap, LinkMessageBuilder, LinkUnspec};

use crate::devnode;
use crate::error::{io_err, netlink_errno, nl, LinksError};
use crate::ovs::{self, OvsConfig, OvsExternalIds};
use crate::tun::{self, TapRequest};
use crate::types::{check_uuid, random_uuid, GroupRef, IfName, Label, Mac, MacvtapMode, UserRef};
use crate::user::{resolve_group, resolve_user};
use crate::view::{alias_for, LinkView, Role};

/// Where the handle finds the kernel's and the system's files. The defaults are the real ones;
/// tests point `dev_dir` at a scratch directory.
#[derive(Debug, Clone)]
pub struct LinksOptions {
    /// Where macvtap character devices (`tapIFINDEX`) are made when udev has not made them.
    pub dev_dir: PathBuf,
    /// sysfs view of the network devices of the current namespace.
    pub sys_class_net: PathBuf,
    /// The tun/tap clone device.
    pub tun_path: PathBuf,
    pub ovs: OvsConfig,
}

impl Default for LinksOptions {
    fn default() -> Self {
        LinksOptions {
            dev_dir: PathBuf::from("/dev"),
            sys_class_net: PathBuf::from("/sys/class/net"),
            tun_path: PathBuf::from("/dev/net/tun"),
            ovs: OvsConfig::default(),
        }
    }
}

/// A bridge as asked for (libvirt's `<bridge name stp delay/>`, `<mac>`, `<mtu>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: IfName,
    /// The bridge's own MAC; without it the kernel derives one from its ports, which changes as
    /// ports come and go (why libvirt always sets one).
    pub mac: Option<Mac>,
    pub stp: bool,
    pub forward_delay: Duration,
    pub mtu: Option<u32>,
    pub label: Option<Label>,
}

impl BridgeSpec {
    /// libvirt's defaults: STP on, delay 0, no MAC, the kernel's MTU.
    pub fn new(name: IfName) -> BridgeSpec {
        BridgeSpec {
            name,
            mac: None,
            stp: true,
            forward_delay: Duration::ZERO,
            mtu: None,
            label: None,
        }
    }
}

/// A bridge as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeInfo {
    pub name: String,
    pub ifindex: u32,
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
    pub stp: bool,
    /// What the kernel keeps, which may differ from what was asked: with STP on, the kernel
    /// keeps the delay within 2..=30 s (so libvirt's `stp='on' delay='0'` runs with 2 s).
    pub forward_delay: Duration,
    pub up: bool,
    pub label: Option<String>,
}

/// What `ensure_bridge` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsuredBridge {
    pub info: BridgeInfo,
    /// True when it was created now; false when a bridge virtgate had created before was
    /// adopted (and its settings applied again).
    pub created: bool,
}

/// A guest's tap, as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapSpec {
    /// None: the kernel picks the first free `vnetN`, as libvirt names guest taps.
    pub name: Option<IfName>,
    /// The guest's MAC; the host side gets it with the first byte 0xFE.
    pub guest_mac: Mac,
    /// Who may open the tap without privileges (QEMU's user).
    pub owner: Option<UserRef>,
    /// With an owner too, the kernel lets only that user open the tap, and only while its
    /// effective group is this one; alone, any process of the group may.
    pub group: Option<GroupRef>,
    /// The Linux bridge to attach to (none for Open vSwitch ports, which `ovs-vsctl` attaches).
    pub bridge: Option<IfName>,
    /// None: the bridge's MTU (libvirt's rule), or the kernel's default without a bridge.
    pub mtu: Option<u32>,
    /// Create with `IFF_MULTI_QUEUE` (QEMU `queues=N` needs it; it must match at open).
    pub multi_queue: bool,
    pub label: Option<Label>,
}

impl TapSpec {
    pub fn new(guest_mac: Mac) -> TapSpec {
        TapSpec {
            name: None,
            guest_mac,
            owner: None,
            group: None,
            bridge: None,
            mtu: None,
            multi_queue: false,
            label: None,
        }
    }
}

/// A macvtap "direct" port, as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvtapSpec {
    /// The pool of parents (libvirt's `<forward dev=...><interface dev=.../>`); the least-used
    /// one is taken, in list order on ties, as libvirt does.
    pub parents: Vec<IfName>,
    pub mode: MacvtapMode,
    /// The guest's MAC: a macvtap is the guest's NIC on the wire, so it carries the guest's MAC.
    pub guest_mac: Mac,
    /// None: the first free `macvtapN`.
    pub name: Option<IfName>,
    /// Owner of the character device, for an unprivileged QEMU that opens it itself.
    pub owner: Option<UserRef>,
    pub group: Option<GroupRef>,
    pub label: Option<Label>,
}

/// A host-side macvlan in bridge mode on a macvtap parent, so the host reaches its
/// bridge-mode guests (a parent's own stack never sees its macvlans' traffic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimSpec {
    pub parent: IfName,
    pub name: IfName,
    pub mac: Option<Mac>,
    pub label: Option<Label>,
}

/// An Open vSwitch port: a tap (with `bridge: None`) plus libvirt's external-ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvsPortSpec {
    /// The OVS bridge.
    pub bridge: IfName,
    pub tap: TapSpec,
    /// `interfaceid`; None: a random UUID, as libvirt generates one when the XML has none.
    pub iface_id: Option<String>,
    /// The domain's UUID, when there is a domain.
    pub vm_id: Option<String>,
}

/// What a port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortKind {
    /// A tap on a Linux bridge (or on none).
    Tap { bridge: Option<String> },
    /// A tap on an Open vSwitch bridge.
    Ovs { bridge: Option<String> },
    /// A macvtap port; `device` is what QEMU opens.
    Macvtap {
        mode: Option<MacvtapMode>,
        parent: Option<String>,
        device: PathBuf,
    },
    /// A host-side macvlan shim.
    Shim { parent: Option<String> },
}

/// A port virtgate created, as the kernel has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub name: String,
    pub ifindex: u32,
    pub kind: PortKind,
    /// The link's MAC (for taps, the host side `fe:...`; for macvtaps, the guest's).
    pub mac: Option<Mac>,
    /// Taps: the tun owner; macvtaps: the character device's owner.
    pub owner: Option<u32>,
    pub group: Option<u32>,
    pub label: Option<String>,
    pub up: bool,
}

impl PortInfo {
    /// The character device of a macvtap port.
    pub fn device(&self) -> Option<&std::path::Path> {
        match &self.kind {
            PortKind::Macvtap { device, .. } => Some(device),
            _ => None,
        }
    }
}

/// A handle on the kernel's links of the current network namespace. Create it inside a tokio
/// runtime: the netlink connection runs as a task there and stops when the handle is dropped.
pub struct Links {
    handle: Handle,
    conn: tokio::task::JoinHandle<()>,
    opts: LinksOptions,
    /// Serialises port creation: choosing a parent and a free name must not race with ourselves.
    create_lock: tokio::sync::Mutex<()>,
}

impl Drop for Links {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links").field("opts", &self.opts).finish()
    }
}

fn mode_to_kernel(m: MacvtapMode) -> MacVlanMode {
    match m {
        MacvtapMode::Vepa => MacVlanMode::Vepa,
        MacvtapMode::Bridge => MacVlanMode::Bridge,
        MacvtapMode::Private => MacVlanMode::Private,
        MacvtapMode::Passthrough => MacVlanMode::Passthrough,
    }
}

fn mode_from_kernel(m: MacVlanMode) -> Option<MacvtapMode> {
    Some(match m {
        MacVlanMode::Vepa => MacvtapMode::Vepa,
        MacVlanMode::Bridge => MacvtapMode::Bridge,
        MacVlanMode::Private => MacvtapMode::Private,
        MacVlanMode::Passthrough => MacvtapMode::Passthrough,
        _ => return None,
    })
}

/// Kernel clock_t for bridge timers: USER_HZ = 100.
fn to_centis(d: Duration) -> Result<u32, LinksError> {
    u32::try_from(d.as_millis() / 10).map_err(|_| LinksError::InvalidSetting {
        what: format!("forward delay {d:?} is too long"),
    })
}

fn check_mtu(mtu: Option<u32>) -> Result<(), LinksError> {
    match mtu {
        // 68 is IPv4's minimum (RFC 791); the kernel's upper bound depends on the device.
        Some(m) if !(68..=65535).contains(&m) => Err(LinksError::InvalidSetting {
            what: format!("MTU {m} outside 68..=65535"),
        }),
        _ => Ok(()),
    }
}

impl Links {
    /// A handle with the default paths.
    pub fn new() -> Result<Links, LinksError> {
        Links::with_options(LinksOptions::default())
    }

    pub fn with_options(opts: LinksOptions) -> Result<Links, LinksError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| LinksError::NoRuntime)?;
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(io_err("opening a netlink socket"))?;
        let conn = rt.spawn(conn);
        Ok(Links {
            handle,
            conn,
            opts,
            create_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn options(&self) -> &LinksOptions {
        &self.opts
    }

    // ---------------------------------------------------------------- netlink reads

    async fn link_by_name(&self, name: &str) -> Result<Option<LinkView>, LinksError> {
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(Some(LinkView::from_message(&m))),
            Ok(None) => Ok(None),
            Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl(format!("looking up {name}"))(e)),
        }
    }

    async fn link_by_index(&self, index: u32) -> Result<Option<LinkView>, LinksError> {
        let mut s = self.handle.link().get().match_index(index).execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(Some(LinkView::from_message(&m))),
            Ok(None) => Ok(None),
            Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl(format!("looking up interface {index}"))(e)),
        }
    }

    async fn all_links(&self) -> Result<Vec<LinkView>, LinksError> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl("listing interfaces"))?;
        Ok(msgs.iter().map(LinkView::from_message).collect())
    }

    async fn require(&self, name: &IfName) -> Result<LinkView, LinksError> {
        self.link_by_name(name.as_str())
            .await?
            .ok_or_else(|| LinksError::NotFound {
                name: name.to_string(),
            })
    }

    async fn delete_index(&self, index: u32, name: &str) -> Result<(), LinksError> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(nl(format!("deleting {name}"))(e)),
        }
    }

    /// Puts our marker on a link just created; the kernel ignores `IFLA_IFALIAS` in a
    /// creating `RTM_NEWLINK`, so it takes a second message. A link that cannot be marked is
    /// deleted again: an unmarked link would look like the host's forever.
    async fn mark(&self, v: &LinkView, alias: &str) -> Result<(), LinksError> {
        let msg = LinkUnspec::new_with_index(v.index)
            .alias(alias.to_string())
            .build();
        if let Err(e) = self.handle.link().set(msg).execute().await {
            let _ = self.delete_index(v.index, &v.name).await;
            return Err(nl(format!("marking {} as virtgate's", v.name))(e));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- bridges

    /// Creates the bridge, or adopts one virtgate created earlier and applies `spec` to it
    /// again; sets it up. A name held by anything else is refused.
    pub async fn ensure_bridge(&self, spec: &BridgeSpec) -> Result<EnsuredBridge, LinksError> {
        check_mtu(spec.mtu)?;
        if let Some(m) = spec.mac {
            m.check_guest()?;
        }
        let delay = to_centis(spec.forward_delay)?;
        let name = spec.name.as_str();
        let alias = alias_for(Role::Bridge, spec.label.as_ref().map(Label::as_str));
        let created = match self.link_by_name(name).await? {
            Some(v) => {
                self.check_adoptable(&v)?;
                self.apply_bridge(&v, spec, delay, &alias).await?;
                false
            }
            None => {
                let mut b = LinkBridge::new(name)
                    // Delay before STP: the kernel applies IFLA_BR_* in a fixed order with the
                    // forward delay first, and refuses a delay outside 2..=30 s while STP is on.
                    .forward_delay(delay)
                    .stp_state(stp(spec.stp));
                if let Some(m) = spec.mac {
                    b = b.address(m.0.to_vec());
                }
                if let Some(mtu) = spec.mtu {
                    b = b.mtu(mtu);
                }
                match self.handle.link().add(b.build()).execute().await {
                    Ok(()) => {
                        let v = self.require(&spec.name).await?;
                        self.mark(&v, &alias).await?;
                        true
                    }
                    Err(e) if netlink_errno(&e) == Some(libc::EEXIST) => {
                        // Someone made it between our look-up and our create: judge it again.
                        let v = self.require(&spec.name).await?;
                        self.check_adoptable(&v)?;
                        self.apply_bridge(&v, spec, delay, &alias).await?;
                        false
                    }
                    Err(e) => return Err(nl(format!("creating bridge {name}"))(e)),
                }
            }
        };
        let info = self.bridge_info(&spec.name).await?;
        tracing::info!(bridge = name, created, "bridge ready");
        Ok(EnsuredBridge { info, created })
    }

    fn check_adoptable(&self, v: &LinkView) -> Result<(), LinksError> {
        if !v.is_kind("bridge") {
            return Err(LinksError::NameTaken {
                name: v.name.clone(),
                kind: v.kind_or_unknown(),
            });
        }
        match v.ours() {
            Some((Role::Bridge, _)) => Ok(()),
            _ => Err(LinksError::ForeignBridge {
                name: v.name.clone(),
            }),
        }
    }

    async fn apply_bridge(
        &self,
        v: &LinkView,
        spec: &BridgeSpec,
        delay: u32,
        alias: &str,
    ) -> Result<(), LinksError> {
        let name = spec.name.as_str();
        let stp_on = v.bridge.stp_state.is_some_and(|s| s != 0);
        let delay_ok_with_stp = (200..=3000).contains(&delay);
        if stp_on && !delay_ok_with_stp {
            // Same order problem as at creation: STP off first, then delay, then STP.
            let off = LinkMessageBuilder::<LinkBridge>::new_with_info_kind(InfoKind::Bridge)
                .index(v.index)
                .append_info_data(InfoBridge::StpState(BridgeStpState::Disabled))
                .build();
            self.handle
                .link()
                .change(off)
                .execute()
                .await
                .map_err(nl(format!("turning STP off on {name}")))?;
        }
        let msg = LinkMessageBuilder::<LinkBridge>::new_with_info_kind(InfoKind::Bridge)
            .index(v.index)
            .forward_delay(delay)
            .stp_state(stp(spec.stp))
            .build();
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(nl(format!("setting STP and forward delay on {name}")))?;
        let mut set = LinkUnspec::new_with_index(v.index)
            .alias(alias.to_string())
            .up();
        if let Some(m) = spec.mac {
            set = set.address(m.0.to_vec());
        }
        if let Some(mtu) = spec.mtu {
            set = set.mtu(mtu);
        }
        self.handle
            .link()
            .set(set.build())
            .execute()
            .await
            .map_err(nl(format!("setting {name}")))
    }

    /// The bridge as the kernel has it (any bridge, ours or not).
    pub async fn bridge_info(&self, name: &IfName) -> Result<BridgeInfo, LinksError> {
        let v = self.require(name).await?;
        if !v.is_kind("bridge") {
            return Err(LinksError::NotABridge {
                name: v.name.clone(),
                kind: v.kind_or_unknown(),
            });
        }
        Ok(bridge_info_of(&v))
    }

    /// Bridges virtgate created.
    pub async fn list_bridges(&self) -> Result<Vec<BridgeInfo>, LinksError> {
        Ok(self
            .all_links()
            .await?
            .iter()
            .filter(|v| v.is_kind("bridge") && matches!(v.ours(), Some((Role::Bridge, _))))
            .map(bridge_info_of)
            .collect())
    }

    /// Adds an IPv4 address; an address already there is fine.
    pub async fn add_ipv4(
        &self,
        name: &IfName,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), LinksError> {
        if prefix > 32 {
            return Err(LinksError::InvalidSetting {
                what: format!("prefix length /{prefix}"),
            });
        }
        let v = self.require(name).await?;
        match self
            .handle
            .address()
            .add(v.index, IpAddr::V4(addr), prefix)
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if netlink_errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(nl(format!("adding {addr}/{prefix} to {name}"))(e)),
        }
    }

    /// Deletes a bridge virtgate created; anything else is refused and left alone.
    pub async fn delete_bridge(&self, name: &IfName) -> Result<(), LinksError> {
        let v = self.require(name).await?;
        if !v.is_kind("bridge") {
            return Err(LinksError::NotABridge {
                name: v.name.clone(),
                kind: v.kind_or_unknown(),
            });
        }
        if !matches!(v.ours(), Some((Role::Bridge, _))) {
            return Err(LinksError::NotOurs { name: v.name });
        }
        self.delete_index(v.index, &v.name).await?;
        tracing::info!(bridge = %name, "bridge deleted");
        Ok(())
    }

    // ---------------------------------------------------------------- taps

    /// Creates a persistent tap for a guest, owned by `spec.owner`, with the host-side MAC,
    /// attached to `spec.bridge` and up. On failure nothing is left behind.
    pub async fn create_tap(&self, spec: &TapSpec) -> Result<PortInfo, LinksError> {
        self.create_tap_as(spec, Role::Tap).await
    }

    async fn create_tap_as(&self, spec: &TapSpec, role: Role) -> Result<PortInfo, LinksError> {
        spec.guest_mac.check_guest()?;
        check_mtu(spec.mtu)?;
        let owner = spec.owner.as_ref().map(resolve_user).transpose()?;
        let group = spec.group.as_ref().map(resolve_group).transpose()?;
        let bridge = match &spec.bridge {
            Some(b) => {
                let v = self.require(b).await?;
                if !v.is_kind("bridge") {
                    return Err(LinksError::NotABridge {
                        name: v.name.clone(),
                        kind: v.kind_or_unknown(),
                    });
                }
                Some(v)
            }
            None => None,
        };
        if let Some(n) = &spec.name {
            if let Some(v) = self.link_by_name(n.as_str()).await? {
                return Err(LinksError::NameTaken {
                    name: v.name.clone(),
                    kind: v.kind_or_unknown(),
                });
            }
        }
        let req_name = spec.name.as_ref().map_or("vnet%d", IfName::as_str);
        let req = TapRequest {
            name: req_name,
            multi_queue: spec.multi_queue,
            owner,
            group,
        };
        let name = match tun::create_persistent_tap(&self.opts.tun_path, &req) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(LinksError::NameTaken {
                    name: req_name.to_string(),
                    kind: "tun".into(),
                })
            }
            Err(e) => return Err(io_err(format!("creating tap {req_name}"))(e)),
        };
        let v = match self.link_by_name(&name).await? {
            Some(v) => v,
            None => {
                return Err(LinksError::NotFound { name });
            }
        };
        let mtu = spec.mtu.or(bridge.as_ref().and_then(|b| b.mtu));
        let label = spec.label.as_ref().map(Label::as_str);
        if let Err(e) = self
            .configure_tap(
                &v,
                spec.guest_mac.host_side(),
                mtu,
                bridge.as_ref(),
                &alias_for(role, label),
            )
            .await
        {
            let _ = self.delete_index(v.index, &name).await;
            return Err(e);
        }
        tracing::info!(tap = %name, bridge = ?spec.bridge, "tap created");
        self.port_info_by_index(v.index).await
    }

    async fn configure_tap(
        &self,
        v: &LinkView,
        mac: Mac,
        mtu: Option<u32>,
        bridge: Option<&LinkView>,
        alias: &str,
    ) -> Result<(), LinksError> {
        let mut set = LinkUnspec::new_with_index(v.index)
            .address(mac.0.to_vec())
            .alias(alias.to_string());
        if let Some(m) = mtu {
            set = set.mtu(m);
        }
        self.handle
            .link()
            .set(set.build())
            .execute()
            .await
            .map_err(nl(format!("setting MAC/MTU of {}", v.name)))?;
        let mut set = LinkUnspec::new_with_index(v.index).up();
        if let Some(b) = bridge {
            set = set.controller(b.index);
        }
        self.handle
            .link()
            .set(set.build())
            .execute()
            .await
            .map_err(nl(format!(
                "attaching {} to {} and setting it up",
                v.name,
                bridge.map_or("nothing", |b| b.name.as_str())
            )))
    }

    // ---------------------------------------------------------------- macvtap

    /// Creates a macvtap port in `spec.mode` on the least-used parent of the pool, with the
    /// guest's MAC, up, and its character device (made here when udev has not).
    pub async fn create_macvtap(&self, spec: &MacvtapSpec) -> Result<PortInfo, LinksError> {
        spec.guest_mac.check_guest()?;
        if spec.parents.is_empty() {
            return Err(LinksError::EmptyPool);
        }
        let owner = spec.owner.as_ref().map(resolve_user).transpose()?;
        let group = spec.group.as_ref().map(resolve_group).transpose()?;
        let _guard = self.create_lock.lock().await;
        let links = self.all_links().await?;
        let parent = choose_parent(&links, &spec.parents, spec.mode)?;
        let label = spec.label.as_ref().map(Label::as_str);
        let alias = alias_for(Role::Macvtap, label);

        let build = |name: &str| {
            LinkMacVtap::new(name, parent.index, mode_to_kernel(spec.mode))
                .address(spec.guest_mac.0.to_vec())
                .up()
                .build()
        };
        let name = match &spec.name {
            Some(n) => {
                if let Some(v) = links.iter().find(|v| v.name == n.as_str()) {
                    return Err(LinksError::NameTaken {
                        name: v.name.clone(),
                        kind: v.kind_or_unknown(),
                    });
                }
                self.handle
                    .link()
                    .add(build(n.as_str()))
                    .execute()
                    .await
                    .map_err(|e| self.macvtap_error(e, n.as_str(), &parent, spec.mode, &links))?;
                n.to_string()
            }
            None => {
                let mut n = first_free(&links, "macvtap");
                let mut tries = 0u32;
                loop {
                    let name = format!("macvtap{n}");
                    match self.handle.link().add(build(&name)).execute().await {
                        Ok(()) => break name,
                        // Taken by someone outside this handle since we listed: next number.
                        Err(e) if netlink_errno(&e) == Some(libc::EEXIST) && tries < 64 => {
                            tries += 1;
                            n += 1;
                        }
                        Err(e) if netlink_errno(&e) == Some(libc::EEXIST) => {
                            return Err(LinksError::NoFreeName {
                                prefix: "macvtap",
                                tries,
                            })
                        }
                        Err(e) => {
                            return Err(self.macvtap_error(e, &name, &parent, spec.mode, &links))
                        }
                    }
                }
            }
        };
        let v = self
            .link_by_name(&name)
            .await?
            .ok_or_else(|| LinksError::NotFound { name: name.clone() })?;
        self.mark(&v, &alias).await?;
        if let Err(e) = self.make_device(&v, owner, group).await {
            let _ = self.delete_index(v.index, &name).await;
            return Err(e);
        }
        tracing::info!(port = %name, parent = %parent.name, mode = %spec.mode, "macvtap created");
        self.port_info_by_index(v.index).await
    }

    fn macvtap_error(
        &self,
        e: rtnetlink::Error,
        name: &str,
        parent: &LinkView,
        mode: MacvtapMode,
        links: &[LinkView],
    ) -> LinksError {
        // The kernel answers EINVAL for a passthrough conflict that appeared since we looked;
        // name the holder if we can see one.
        if netlink_errno(&e) == Some(libc::EINVAL) {
            if let Some(err) = parent_conflict(links, parent, mode) {
                return err;
            }
        }
        nl(format!("creating macvtap {name} on {}", parent.name))(e)
    }

    async fn make_device(
        &self,
        v: &LinkView,
        owner: Option<u32>,
        group: Option<u32>,
    ) -> Result<(), LinksError> {
        let sys = devnode::sysfs_dev_path(&self.opts.sys_class_net, &v.name, v.index);
        let mut text = None;
        // The kernel registers the device within the RTM_NEWLINK; a short wait covers a sysfs
        // that is slow to show it.
        for _ in 0..20 {
            match std::fs::read_to_string(&sys) {
                Ok(t) => {
                    text = Some(t);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
        let (maj, min) = text
            .as_deref()
            .and_then(devnode::parse_dev)
            .ok_or_else(|| LinksError::NoCharDevice {
                name: v.name.clone(),
                path: sys.clone(),
            })?;
        let node = devnode::node_path(&self.opts.dev_dir, v.index);
        devnode::ensure_node(&node, maj, min, owner, group)
    }

    /// Creates a host-side macvlan (bridge mode) on `spec.parent`, up.
    pub async fn create_shim(&self, spec: &ShimSpec) -> Result<PortInfo, LinksError> {
        if let Some(m) = spec.mac {
            m.check_guest()?;
        }
        let _guard = self.create_lock.lock().await;
        let links = self.all_links().await?;
        let parent = links
            .iter()
            .find(|v| v.name == spec.parent.as_str())
            .ok_or_else(|| LinksError::NotFound {
                name: spec.parent.to_string(),
            })?;
        if let Some(v) = links.iter().find(|v| v.name == spec.name.as_str()) {
            return Err(LinksError::NameTaken {
                name: v.name.clone(),
                kind: v.kind_or_unknown(),
            });
        }
        if let Some(err) = parent_conflict(&links, parent, MacvtapMode::Bridge) {
            return Err(err);
        }
        let mut b = LinkMacVlan::new(spec.name.as_str(), parent.index, MacVlanMode::Bridge).up();
        if let Some(m) = spec.mac {
            b = b.address(m.0.to_vec());
        }
        self.handle
            .link()
            .add(b.build())
            .execute()
            .await
            .map_err(nl(format!(
                "creating shim {} on {}",
                spec.name, parent.name
            )))?;
        let v = self.require(&spec.name).await?;
        self.mark(
            &v,
            &alias_for(Role::Shim, spec.label.as_ref().map(Label::as_str)),
        )
        .await?;
        self.port_info_by_index(v.index).await
    }

    // ---------------------------------------------------------------- Open vSwitch

    /// Creates a tap and adds it to an OVS bridge with libvirt's external-ids.
    pub async fn create_ovs_port(&self, spec: &OvsPortSpec) -> Result<PortInfo, LinksError> {
        if spec.tap.bridge.is_some() {
            return Err(LinksError::InvalidSetting {
                what: "an Open vSwitch port's tap is attached by ovs-vsctl, not to a Linux bridge"
                    .into(),
            });
        }
        let iface_id = match &spec.iface_id {
            Some(id) => {
                check_uuid(id)?;
                id.clone()
            }
            None => random_uuid()?,
        };
        if let Some(vm) = &spec.vm_id {
            check_uuid(vm)?;
        }
        let port = self.create_tap_as(&spec.tap, Role::Ovs).await?;
        let ids = OvsExternalIds {
            attached_mac: Some(spec.tap.guest_mac),
            iface_id,
            vm_id: spec.vm_id.clone(),
        };
        let args = ovs::add_port_args(&self.opts.ovs, spec.bridge.as_str(), &port.name, &ids);
        if let Err(e) = ovs::run(&self.opts.ovs, &args).await {
            let _ = self.delete_index(port.ifindex, &port.name).await;
            return Err(e);
        }
        tracing::info!(port = %port.name, bridge = %spec.bridge, "ovs port created");
        self.port_info_by_index(port.ifindex).await
    }

    // ---------------------------------------------------------------- ports in general

    /// Deletes a port virtgate created (tap, OVS port, macvtap with its device node, shim).
    /// For an OVS port the `del-port` comes first; when it fails the tap is kept and the error
    /// returned, since a port record left in OVS's database would take in the next tap of the
    /// same name.
    pub async fn delete_port(&self, name: &IfName) -> Result<(), LinksError> {
        let v = self.require(name).await?;
        let role = match v.ours() {
            Some((role, _)) => role,
            None => return Err(LinksError::NotOurs { name: v.name }),
        };
        match role {
            Role::Bridge => {
                return Err(LinksError::WrongKind {
                    name: v.name,
                    kind: "bridge".into(),
                    hint: "bridges are deleted with delete_bridge",
                })
            }
            Role::Ovs => {
                ovs::run(&self.opts.ovs, &ovs::del_port_args(&self.opts.ovs, &v.name)).await?;
            }
            Role::Tap | Role::Macvtap | Role::Shim => {}
        }
        self.delete_index(v.index, &v.name).await?;
        if role == Role::Macvtap {
            devnode::remove_node(&devnode::node_path(&self.opts.dev_dir, v.index))?;
        }
        tracing::info!(port = %name, "port deleted");
        Ok(())
    }

    /// Deletes every port carrying `label` (a stopped network's ports); returns their names.
    pub async fn delete_ports_labelled(&self, label: &Label) -> Result<Vec<String>, LinksError> {
        let mut gone = Vec::new();
        for p in self.list_ports().await? {
            if p.label.as_deref() == Some(label.as_str()) {
                self.delete_port(&IfName::new(&p.name)?).await?;
                gone.push(p.name);
            }
        }
        Ok(gone)
    }

    /// Ports virtgate created, in interface-index order.
    pub async fn list_ports(&self) -> Result<Vec<PortInfo>, LinksError> {
        let links = self.all_links().await?;
        let names: HashMap<u32, String> = links.iter().map(|v| (v.index, v.name.clone())).collect();
        let mut out = Vec::new();
        for v in &links {
            if let Some(p) = self.port_info_of(v, &names).await {
                out.push(p);
            }
        }
        out.sort_by_key(|p| p.ifindex);
        Ok(out)
    }

    /// One port by name.
    pub async fn port_info(&self, name: &IfName) -> Result<PortInfo, LinksError> {
        let v = self.require(name).await?;
        self.port_info_by_index(v.index).await
    }

    async fn port_info_by_index(&self, index: u32) -> Result<PortInfo, LinksError> {
        let v = self
            .link_by_index(index)
            .await?
            .ok_or_else(|| LinksError::NotFound {
                name: format!("interface {index}"),
            })?;
        let mut names = HashMap::new();
        for i in [v.master, v.link].into_iter().flatten() {
            if let Some(o) = self.link_by_index(i).await? {
                names.insert(i, o.name);
            }
        }
        self.port_info_of(&v, &names)
            .await
            .ok_or(LinksError::NotOurs { name: v.name })
    }

    async fn port_info_of(&self, v: &LinkView, names: &HashMap<u32, String>) -> Option<PortInfo> {
        let (role, label) = v.ours()?;
        let name_of = |i: Option<u32>| i.and_then(|i| names.get(&i).cloned());
        let (kind, owner, group) = match role {
            Role::Bridge => return None,
            Role::Tap => (
                PortKind::Tap {
                    bridge: name_of(v.master),
                },
                v.tun.owner,
                v.tun.group,
            ),
            Role::Ovs => {
                let args = ovs::port_to_br_args(&self.opts.ovs, &v.name);
                let bridge = ovs::run(&self.opts.ovs, &args)
                    .await
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty());
                (PortKind::Ovs { bridge }, v.tun.owner, v.tun.group)
            }
            Role::Macvtap => {
                let device = devnode::node_path(&self.opts.dev_dir, v.index);
                let owner = devnode::node_owner(&device);
                (
                    PortKind::Macvtap {
                        mode: v.macvlan_mode.and_then(mode_from_kernel),
                        parent: if v.link_netns { None } else { name_of(v.link) },
                        device,
                    },
                    owner,
                    None,
                )
            }
            Role::Shim => (
                PortKind::Shim {
                    parent: if v.link_netns { None } else { name_of(v.link) },
                },
                None,
                None,
            ),
        };
        Some(PortInfo {
            name: v.name.clone(),
            ifindex: v.index,
            kind,
            mac: v.mac,
            owner,
            group,
            label,
            up: v.up,
        })
    }
}

fn stp(on: bool) -> BridgeStpState {
    if on {
        BridgeStpState::KernelStp
    } else {
        BridgeStpState::Disabled
    }
}

fn bridge_info_of(v: &LinkView) -> BridgeInfo {
    BridgeInfo {
        name: v.name.clone(),
        ifindex: v.index,
        mac: v.mac,
        mtu: v.mtu,
        stp: v.bridge.stp_state.is_some_and(|s| s != 0),
        forward_delay: Duration::from_millis(
            u64::from(v.bridge.forward_delay_cs.unwrap_or(0)) * 10,
        ),
        up: v.up,
        label: v.ours().and_then(|(_, l)| l),
    }
}

/// Macvtap and macvlan links sitting on `parent` (same namespace).
fn ports_on<'a>(links: &'a [LinkView], parent: &LinkView) -> Vec<&'a LinkView> {
    links
        .iter()
        .filter(|v| {
            (v.is_kind("macvtap") || v.is_kind("macvlan"))
                && !v.link_netns
                && v.link == Some(parent.index)
        })
        .collect()
}

/// Why `parent` cannot take a port in `mode`, if it cannot: a passthrough port holds it, or a
/// passthrough port is asked for where other ports already are (the kernel allows neither).
fn parent_conflict(links: &[LinkView], parent: &LinkView, mode: MacvtapMode) -> Option<LinksError> {
    let ports = ports_on(links, parent);
    if let Some(holder) = ports
        .iter()
        .find(|v| v.macvlan_mode == Some(MacVlanMode::Passthrough))
    {
        return Some(LinksError::PassthroughTaken {
            parent: parent.name.clone(),
            holder: holder.name.clone(),
        });
    }
    if mode == MacvtapMode::Passthrough && !ports.is_empty() {
        return Some(LinksError::ParentBusy {
            parent: parent.name.clone(),
            ports: ports.iter().map(|v| v.name.clone()).collect(),
        });
    }
    None
}

/// libvirt's choice from a pool: for passthrough the first parent nobody uses; for the other
/// modes the parent with the fewest macvtap ports (shims are not guests and do not count),
/// first in list order on ties.
fn choose_parent(
    links: &[LinkView],
    pool: &[IfName],
    mode: MacvtapMode,
) -> Result<LinkView, LinksError> {
    let mut reasons = Vec::new();
    let mut best: Option<(usize, &LinkView)> = None;
    for name in pool {
        let Some(parent) = links.iter().find(|v| v.name == name.as_str()) else {
            reasons.push(format!("{name} does not exist"));
            continue;
        };
        if let Some(err) = parent_conflict(links, parent, mode) {
            if pool.len() == 1 {
                return Err(err);
            }
            reasons.push(err.to_string());
            continue;
        }
        let used = ports_on(links, parent)
            .iter()
            .filter(|v| v.is_kind("macvtap"))
            .count();
        if best.is_none_or(|(n, _)| used < n) {
            best = Some((used, parent));
        }
    }
    match best {
        Some((_, p)) => Ok(p.clone()),
        None if pool.len() == 1 => Err(LinksError::NotFound {
            name: pool[0].to_string(),
        }),
        None => Err(LinksError::NoFreeParent {
            mode: mode.to_string(),
            reasons,
        }),
    }
}

/// Smallest N for which `PREFIXN` is not a link name.
fn first_free(links: &[LinkView], prefix: &str) -> u32 {
    let used: std::collections::HashSet<u32> = links
        .iter()
        .filter_map(|v| v.name.strip_prefix(prefix))
        .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|rest| rest.parse().ok())
        .collect();
    (0..).find(|n| !used.contains(n)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, kind: &str) -> LinkView {
        LinkView {
            index,
            name: name.into(),
            kind: Some(kind.into()),
            ..LinkView::default()
        }
    }

    fn port(index: u32, name: &str, kind: &str, parent: u32, mode: MacVlanMode) -> LinkView {
        LinkView {
            link: Some(parent),
            macvlan_mode: Some(mode),
            ..link(index, name, kind)
        }
    }

    fn pool(names: &[&str]) -> Vec<IfName> {
        names.iter().map(|n| IfName::new(n).unwrap()).collect()
    }

    #[test]
    fn least_used_parent_first_on_ties() {
        let mut links = vec![link(2, "eth0", "veth"), link(3, "eth1", "veth")];
        let p = pool(&["eth0", "eth1"]);
        assert_eq!(
            choose_parent(&links, &p, MacvtapMode::Bridge).unwrap().name,
            "eth0"
        );
        links.push(port(10, "macvtap0", "macvtap", 2, MacVlanMode::Bridge));
        assert_eq!(
            choose_parent(&links, &p, MacvtapMode::Vepa).unwrap().name,
            "eth1"
        );
        links.push(port(11, "macvtap1", "macvtap", 3, MacVlanMode::Bridge));
        assert_eq!(
            choose_parent(&links, &p, MacvtapMode::Vepa).unwrap().name,
            "eth0"
        );
        // A shim is not a guest: it does not make eth0 "more used".
        links.push(port(12, "shim0", "macvlan", 2, MacVlanMode::Bridge));
        assert_eq!(
            choose_parent(&links, &p, MacvtapMode::Vepa).unwrap().name,
            "eth0"
        );
    }

    #[test]
    fn passthrough_takes_a_free_parent_and_names_holders() {
        let mut links = vec![link(2, "eth0", "veth"), link(3, "eth1", "veth")];
        links.push(port(10, "macvtap0", "macvtap", 2, MacVlanMode::Passthrough));
        let one = pool(&["eth0"]);
        match choose_parent(&links, &one, MacvtapMode::Passthrough) {
            Err(LinksError::PassthroughTaken { parent, holder }) => {
                assert_eq!((parent.as_str(), holder.as_str()), ("eth0", "macvtap0"));
            }
            other => panic!("{other:?}"),
        }
        // Another mode on a passthrough-held parent: the same refusal.
        assert!(matches!(
            choose_parent(&links, &one, MacvtapMode::Bridge),
            Err(LinksError::PassthroughTaken { .. })
        ));
        let both = pool(&["eth0", "eth1"]);
        assert_eq!(
            choose_parent(&links, &both, MacvtapMode::Passthrough)
                .unwrap()
                .name,
            "eth1"
        );
        links.push(port(11, "macvtap1", "macvtap", 3, MacVlanMode::Vepa));
        let e = choose_parent(&links, &both, MacvtapMode::Passthrough).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("macvtap0") && text.contains("macvtap1"),
            "{text}"
        );
        // Passthrough on a parent already carrying a shim: busy, naming it.
        let links = vec![
            link(2, "eth0", "veth"),
            port(12, "shim0", "macvlan", 2, MacVlanMode::Bridge),
        ];
        match choose_parent(&links, &one, MacvtapMode::Passthrough) {
            Err(LinksError::ParentBusy { ports, .. }) => assert_eq!(ports, vec!["shim0"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_parents_and_ports_of_other_namespaces() {
        let links = vec![link(2, "eth0", "veth")];
        assert!(matches!(
            choose_parent(&links, &pool(&["eth9"]), MacvtapMode::Bridge),
            Err(LinksError::NotFound { .. })
        ));
        assert_eq!(
            choose_parent(&links, &pool(&["eth9", "eth0"]), MacvtapMode::Bridge)
                .unwrap()
                .name,
            "eth0"
        );
        // A macvtap whose IFLA_LINK is an index in another namespace is not on our eth0.
        let mut far = port(10, "macvtap0", "macvtap", 2, MacVlanMode::Passthrough);
        far.link_netns = true;
        let links = vec![link(2, "eth0", "veth"), far];
        assert!(choose_parent(&links, &pool(&["eth0"]), MacvtapMode::Passthrough).is_ok());
    }

    #[test]
    fn first_free_number() {
        let links = vec![
            link(1, "macvtap0", "macvtap"),
            link(2, "macvtap2", "macvtap"),
            link(3, "macvtapx", "macvtap"),
            link(4, "macvtap", "macvtap"),
        ];
        assert_eq!(first_free(&links, "macvtap"), 1);
        assert_eq!(first_free(&[], "macvtap"), 0);
    }

    #[test]
    fn a_handle_needs_a_runtime() {
        assert!(matches!(Links::new(), Err(LinksError::NoRuntime)));
    }

    #[test]
    fn delays_in_clock_ticks() {
        assert_eq!(to_centis(Duration::from_secs(15)).unwrap(), 1500);
        assert_eq!(to_centis(Duration::from_millis(1234)).unwrap(), 123);
        assert!(to_centis(Duration::from_secs(u64::MAX / 1000)).is_err());
        assert!(check_mtu(Some(1500)).is_ok());
        assert!(check_mtu(Some(67)).is_err());
        assert!(check_mtu(Some(70000)).is_err());
    }
}
