//! Starting and stopping one network: what libvirt's `networkStartNetworkVirtual` does for
//! isolated, `nat`, `route` and `open` networks, with virtgate's own servers in place of dnsmasq.
//!
//! Start, in order (each step undone if a later one fails):
//! 1. the bridge: name, MAC (the definition's, or a generated `52:54:00:xx:xx:xx` written back
//!    to the stored definition), STP, forward delay, MTU, up — marked as virtgate's, so a bridge
//!    of the same name that virtgate did not create is refused;
//! 2. the IPv4 address of `<ip>`;
//! 3. the DHCP server (leases restored from `STATE/NAME.leases`) and the DNS server (upstreams
//!    from `<forwarder>`s or the host's resolv.conf), each on sockets bound to the bridge;
//! 4. the network's service task.
//!
//! Networks whose guests attach to something that exists (a host bridge, an Open vSwitch
//! bridge, a macvtap pool) start without any of this: what they attach to is checked, and
//! stopping them removes only their guests' ports.
//!
//! The firewall is not touched here: [`RunningNetwork::firewall_part`] says what the network
//! needs and the daemon puts every part into its one ruleset.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use virtgate_config::libvirt::{NetworkDef, UpdateOp, UpdateSection};
use virtgate_dhcp::LeaseInfo;
use virtgate_dns::DnsServer;
use virtgate_links::{BridgeSpec, IfName, Label, Links, LinksOptions, Mac};

use crate::convert;
use crate::dns_io;
use crate::error::VnetError;
use crate::files::{self, OsEntropy};
use crate::ports::{self, Attachment};
use crate::service::{self, Command, DhcpSide, DnsSide, NetworkStats, ResolvWatch, Service};
use crate::sockets;
use crate::store::{self, Store};

/// Commands queued for a network's task.
const COMMAND_QUEUE: usize = 16;

/// How the daemon runs networks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NetworkOptions {
    /// The host's resolver configuration: upstream DNS servers of networks without an
    /// address-only `<forwarder>` (libvirt's dnsmasq reads the same file).
    pub resolv_conf: PathBuf,
    /// Paths the links layer uses.
    pub links: LinksOptions,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            links: LinksOptions::default(),
        }
    }
}

impl NetworkOptions {
    /// The defaults with another resolv.conf.
    pub fn with_resolv_conf(mut self, path: impl Into<PathBuf>) -> Self {
        self.resolv_conf = path.into();
        self
    }
}

/// Starts networks (see the module documentation).
#[derive(Debug)]
pub struct Network;

impl Network {
    /// Starts `def`: bridge, address, DHCP and DNS. `state_dir` holds the leases file
    /// (`NAME.leases`) and the definitions store (a stored definition of the same name gets the
    /// generated MAC, UUID or bridge name written back). Must be called inside a tokio runtime.
    pub async fn start(
        def: NetworkDef,
        state_dir: &Path,
        opts: NetworkOptions,
    ) -> Result<RunningNetwork, VnetError> {
        def.validate()?;
        if !def.owns_bridge() {
            return start_attached(def, state_dir, opts).await;
        }
        let mut def = def;
        let links = Links::with_options(opts.links.clone())?;
        let store = Store::open(state_dir)?;
        // A definition without MAC or UUID (e.g. the XML file the daemon was given) takes the
        // stored network's, so the bridge keeps its MAC across restarts and guests' ARP caches
        // stay right; a stored network without them gets the generated ones written back.
        if let Ok(stored) = store.get(&def.name) {
            let same = def.uuid.is_none() || def.uuid == stored.def.uuid;
            if same && def.uuid.is_none() {
                def.uuid = stored.def.uuid;
            }
            if same && def.mac.is_none() {
                def.mac = stored.def.mac;
            }
        }
        store::fill_identity(&mut def);
        if def.bridge.name.is_none() {
            let others: Vec<NetworkDef> = store
                .list()?
                .into_iter()
                .map(|s| s.def)
                .filter(|d| d.name != def.name)
                .collect();
            def.bridge.name = Some(store::free_bridge_name(&def.name, &others, &links).await?);
        }
        store.record_identity(&def)?;

        let bridge_name = def.bridge.name.clone().unwrap_or_default();
        let bridge = IfName::new(&bridge_name)?;
        check_not_other_networks(&def.name, &bridge_name, &links).await?;
        store::check_bridge_free(&def.name, &bridge_name, &links).await?;
        let mut spec = BridgeSpec::new(bridge.clone());
        spec.mac = def.mac.map(|m| Mac(m.0));
        spec.stp = def.bridge.stp;
        spec.forward_delay = Duration::from_secs(u64::from(def.bridge.delay));
        spec.mtu = def.mtu.map(u32::from);
        spec.label = Some(Label::new(&def.name)?);
        let ensured = links.ensure_bridge(&spec).await?;

        let leases_path = store::leases_path(state_dir, &def.name);
        match serve(
            &def,
            &links,
            &bridge,
            ensured.info.ifindex,
            &opts,
            leases_path.clone(),
        )
        .await
        {
            Ok(service) => {
                let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
                let task = tokio::spawn(service.run(rx));
                Ok(RunningNetwork {
                    name: def.name.clone(),
                    attachment: Attachment::OwnBridge {
                        bridge: bridge.to_string(),
                    },
                    bridge: Some(bridge),
                    leases_path,
                    def: Mutex::new(def),
                    update_lock: tokio::sync::Mutex::new(()),
                    service: Some(ServiceHandle { commands: tx, task }),
                    links,
                })
            }
            Err(e) => {
                if let Err(del) = links.delete_bridge(&bridge).await {
                    tracing::warn!(bridge = %bridge, "removing the bridge after a failed start: {del}");
                }
                Err(e)
            }
        }
    }
}

/// Starts a network whose guests attach to something that exists already (`forward
/// mode='bridge'` on a host or Open vSwitch bridge, or a macvtap pool): nothing is created and
/// nothing is served (no DHCP, DNS or firewall rules, as libvirt); what guests attach to is
/// checked — the host bridge is a Linux bridge, Open vSwitch has the bridge, at least one parent
/// of the pool exists. The UUID is generated and written back as for the other networks.
async fn start_attached(
    def: NetworkDef,
    state_dir: &Path,
    opts: NetworkOptions,
) -> Result<RunningNetwork, VnetError> {
    let mut def = def;
    let links = Links::with_options(opts.links.clone())?;
    let store = Store::open(state_dir)?;
    if let Ok(stored) = store.get(&def.name) {
        if def.uuid.is_none() {
            def.uuid = stored.def.uuid;
        }
    }
    store::fill_identity(&mut def);
    let attachment = Attachment::of(&def)?;
    match &attachment {
        Attachment::HostBridge { bridge } => {
            ports::check_host_bridge(&links, &def.name, bridge).await?;
        }
        Attachment::OpenVswitch { bridge, .. } => {
            ports::check_ovs_bridge(&opts.links.ovs, &def.name, bridge).await?;
        }
        Attachment::Macvtap { parents, .. } => {
            let mut present = Vec::new();
            for p in parents {
                match links.bridge_info(&IfName::new(p)?).await {
                    Ok(_) | Err(virtgate_links::LinksError::NotABridge { .. }) => {
                        present.push(p.as_str())
                    }
                    Err(virtgate_links::LinksError::NotFound { .. }) => {
                        tracing::warn!(network = %def.name, parent = %p, "parent device of the pool does not exist");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if present.is_empty() {
                return Err(VnetError::Unusable {
                    network: def.name.clone(),
                    reason: format!("none of its parent devices exists ({})", parents.join(", ")),
                });
            }
        }
        // Not reached: start() sends only networks without a bridge of their own here.
        Attachment::OwnBridge { .. } => {}
    }
    store.record_identity(&def)?;
    tracing::info!(network = %def.name, attachment = %attachment.describe(), "network started");
    Ok(RunningNetwork {
        name: def.name.clone(),
        bridge: attachment.bridge().map(IfName::new).transpose()?,
        attachment,
        leases_path: store::leases_path(state_dir, &def.name),
        def: Mutex::new(def),
        update_lock: tokio::sync::Mutex::new(()),
        service: None,
        links,
    })
}

/// Refuses a bridge virtgate created for another network (it may be running).
async fn check_not_other_networks(
    network: &str,
    bridge: &str,
    links: &Links,
) -> Result<(), VnetError> {
    let bridges = links.list_bridges().await?;
    match bridges.iter().find(|b| b.name == bridge) {
        Some(b) if b.label.as_deref().is_some_and(|l| l != network) => {
            Err(VnetError::BridgeTaken {
                network: network.to_string(),
                bridge: bridge.to_string(),
                holder: format!(
                    "virtgate network '{}' (stop it, or delete the bridge if it is a leftover)",
                    b.label.as_deref().unwrap_or_default()
                ),
            })
        }
        _ => Ok(()),
    }
}

/// Address, servers and sockets: everything after the bridge.
async fn serve(
    def: &NetworkDef,
    links: &Links,
    bridge: &IfName,
    ifindex: u32,
    opts: &NetworkOptions,
    leases_path: PathBuf,
) -> Result<Service, VnetError> {
    let network = def.name.clone();
    if let Some(ip) = &def.ip {
        links.add_ipv4(bridge, ip.address, ip.prefix).await?;
    }
    let dhcp = match convert::dhcp_config(def) {
        Some(cfg) => {
            let engine = service::load_engine(&network, cfg, &leases_path)?;
            let sock = sockets::dhcp_socket(bridge.as_str())
                .map_err(VnetError::io(format!("binding UDP port 67 on {bridge}")))?;
            Some(DhcpSide { engine, sock })
        }
        None => None,
    };
    let dns = match (convert::network_dns(def), &def.ip) {
        (Some(net), Some(ip)) => {
            let resolv = convert::uses_resolv_conf(&net).then(|| ResolvWatch {
                path: opts.resolv_conf.clone(),
                net: net.clone(),
                modified: None,
            });
            let resolvers = match &resolv {
                Some(_) => read_resolvers(&opts.resolv_conf),
                None => Vec::new(),
            };
            let cfg = virtgate_dns::Config::from_libvirt(&net, &resolvers).map_err(|source| {
                VnetError::Dns {
                    network: network.clone(),
                    source,
                }
            })?;
            if cfg.upstreams.is_empty() && !net.isolated {
                tracing::warn!(network = %network, "no upstream DNS server: names outside the network are refused");
            }
            let forward_wait = dns_io::forward_wait(cfg.upstream_timeout);
            let server =
                DnsServer::new(cfg, Box::new(OsEntropy)).map_err(|source| VnetError::Dns {
                    network: network.clone(),
                    source,
                })?;
            let udp = sockets::dns_udp_socket(bridge.as_str(), ip.address)
                .map_err(VnetError::io(format!("binding UDP {}:53", ip.address)))?;
            let tcp = sockets::dns_tcp_listener(bridge.as_str(), ip.address)
                .map_err(VnetError::io(format!("binding TCP {}:53", ip.address)))?;
            let resolv = resolv.map(|mut w| {
                w.modified = std::fs::metadata(&w.path).and_then(|m| m.modified()).ok();
                w
            });
            Some(DnsSide {
                server,
                udp,
                tcp,
                tcp_clients: Default::default(),
                forward_wait,
                upstream_udp: crate::upstream::UpstreamUdp::new(),
                resolv,
            })
        }
        _ => None,
    };
    let (netlink_conn, netlink, _) = rtnetlink::new_connection().map_err(VnetError::io(
        "opening a netlink socket for neighbour entries",
    ))?;
    let netlink_conn = tokio::spawn(netlink_conn);
    Ok(Service {
        network,
        bridge: bridge.to_string(),
        ifindex,
        def: def.clone(),
        dhcp,
        dns,
        leases_path,
        netlink,
        netlink_conn,
        lease_names: Default::default(),
        stats: NetworkStats::default(),
        next_conn: 0,
    })
}

fn read_resolvers(path: &Path) -> Vec<std::net::IpAddr> {
    match files::read_optional(path) {
        Ok(Some(text)) => virtgate_dns::resolv_conf::parse(&text),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), "reading resolv.conf: {e}");
            Vec::new()
        }
    }
}

/// A started network. Dropping it stops the servers but leaves the bridge and the guests'
/// ports: call [`RunningNetwork::stop`] to remove those too.
#[derive(Debug)]
pub struct RunningNetwork {
    name: String,
    attachment: Attachment,
    /// The bridge guests attach to (virtgate's, the host's or Open vSwitch's); none for macvtap.
    bridge: Option<IfName>,
    leases_path: PathBuf,
    def: Mutex<NetworkDef>,
    update_lock: tokio::sync::Mutex<()>,
    /// The DHCP/DNS task of a network with a bridge of virtgate's.
    service: Option<ServiceHandle>,
    links: Links,
}

#[derive(Debug)]
struct ServiceHandle {
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningNetwork {
    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bridge guests are plugged into (virtgate's own, the host's or Open vSwitch's); empty
    /// for a macvtap network, which has none ([`RunningNetwork::attachment`] says more).
    pub fn bridge(&self) -> &str {
        self.bridge.as_ref().map_or("", IfName::as_str)
    }

    /// What guests of this network attach to.
    pub fn attachment(&self) -> &Attachment {
        &self.attachment
    }

    /// The definition as running: with the generated MAC, UUID and bridge name, and every
    /// live update applied.
    pub fn def(&self) -> NetworkDef {
        self.def
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Where the leases are persisted.
    pub fn leases_path(&self) -> &Path {
        &self.leases_path
    }

    /// The firewall rules the network needs (libvirt's per mode), for the daemon's one
    /// ruleset; `None` when it needs none of virtgate's (no `<ip>`).
    pub fn firewall_part(&self) -> Option<virtgate_firewall::Part> {
        convert::firewall_part(&self.def())
    }

    /// Whether the service task still runs (a network without one, on a host bridge, Open
    /// vSwitch or a macvtap pool, runs until it is stopped).
    pub fn is_running(&self) -> bool {
        self.service.as_ref().is_none_or(|s| !s.task.is_finished())
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, VnetError> {
        let (tx, rx) = oneshot::channel();
        let gone = || VnetError::NotRunning {
            network: self.name.clone(),
        };
        let service = self.service.as_ref().ok_or_else(gone)?;
        service.commands.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// The bound leases (`virsh net-dhcp-leases`); none for a network virtgate serves no DHCP
    /// on (host bridge, Open vSwitch, macvtap).
    pub async fn leases(&self) -> Result<Vec<LeaseInfo>, VnetError> {
        if self.service.is_none() {
            return Ok(Vec::new());
        }
        self.ask(Command::Leases).await
    }

    /// Counters: leases, DHCP and DNS traffic (all zero without a service of virtgate's).
    pub async fn stats(&self) -> Result<NetworkStats, VnetError> {
        if self.service.is_none() {
            return Ok(NetworkStats::default());
        }
        self.ask(Command::Stats).await
    }

    /// `virsh net-update --live`: applies a change of `ip-dhcp-host` or `dns-host` to the
    /// running servers (a new reservation serves the guest's next request; a removed one lets
    /// its lease run on). Returns the definition as it now runs. Either the whole change applies
    /// or nothing does. The stored definition is changed with [`Store::update`].
    pub async fn update(
        &self,
        section: UpdateSection,
        op: UpdateOp,
        xml: &str,
    ) -> Result<NetworkDef, VnetError> {
        self.require_service()?;
        let _serial = self.update_lock.lock().await;
        let mut new = self.def();
        new.update(section, op, xml)?;
        self.install(new.clone()).await?;
        Ok(new)
    }

    /// Brings the running network to `new`, a definition that differs from the running one in
    /// its DHCP hosts and DNS hosts only (what `net-update` can change live; see
    /// [`RunningNetwork::live_change_only`]): `virtgate reload` after an edited definition.
    pub async fn apply(&self, new: NetworkDef) -> Result<(), VnetError> {
        if !Self::live_change_only(&self.def(), &new) {
            return Err(VnetError::Unusable {
                network: self.name.clone(),
                reason: "the definition changed beyond DHCP and DNS hosts: it needs `net stop` and `net start`".into(),
            });
        }
        self.require_service()?;
        let _serial = self.update_lock.lock().await;
        self.install(new).await
    }

    fn require_service(&self) -> Result<(), VnetError> {
        match self.service {
            Some(_) => Ok(()),
            None => Err(VnetError::Unusable {
                network: self.name.clone(),
                reason: "virtgate serves no DHCP or DNS on it: nothing to update live".into(),
            }),
        }
    }

    /// Hands `new` to the service task, then makes it the running definition (all or nothing).
    /// The caller holds `update_lock`.
    async fn install(&self, new: NetworkDef) -> Result<(), VnetError> {
        let staged = new.clone();
        self.ask(move |reply| Command::Apply {
            def: Box::new(staged),
            reply,
        })
        .await??;
        *self
            .def
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = new;
        Ok(())
    }

    /// Whether `new` differs from `old` in `<dhcp><host>` and `<dns><host>` entries only: what
    /// libvirt's `net-update` applies to a running network.
    pub fn live_change_only(old: &NetworkDef, new: &NetworkDef) -> bool {
        let mut rest = new.clone();
        match (rest.ip.as_mut(), old.ip.as_ref()) {
            (Some(r), Some(o)) => r.dhcp_hosts.clone_from(&o.dhcp_hosts),
            (None, None) => {}
            _ => return false,
        }
        rest.dns.hosts.clone_from(&old.dns.hosts);
        rest == *old
    }

    /// Stops the servers (sockets closed, connections dropped), removes the guests' ports
    /// (every link marked as a port of this network: `virtgate port add` and `qemu-ifup` taps,
    /// Open vSwitch ports, macvtaps) and the bridge, if it is virtgate's. The leases file stays,
    /// for the next start.
    pub async fn stop(mut self) -> Result<(), VnetError> {
        if let Some(service) = self.service.take() {
            let _ = service.commands.send(Command::Stop).await;
            drop(service.commands);
            if let Err(e) = service.task.await {
                tracing::error!(network = %self.name, "network task ended abnormally: {e}");
            }
        }
        // A port that cannot be removed (an Open vSwitch that stopped answering) must not keep
        // the bridge: it is reported, and the rest goes on.
        match Label::new(&self.name) {
            Ok(label) => match self.links.delete_ports_labelled(&label).await {
                Ok(gone) if !gone.is_empty() => {
                    tracing::info!(network = %self.name, ports = ?gone, "guest ports removed");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(network = %self.name, "removing the guests' ports: {e}");
                }
            },
            Err(e) => tracing::warn!(network = %self.name, "guest ports not looked for: {e}"),
        }
        if let (Attachment::OwnBridge { .. }, Some(bridge)) = (&self.attachment, &self.bridge) {
            match self.links.delete_bridge(bridge).await {
                Ok(()) => {}
                // Someone removed it while the network ran: nothing left to undo.
                Err(virtgate_links::LinksError::NotFound { .. }) => {
                    tracing::warn!(network = %self.name, bridge = %bridge, "bridge was already gone");
                }
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(network = %self.name, bridge = %self.bridge(), "network stopped");
        Ok(())
    }
}
