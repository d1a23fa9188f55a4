//! Virtual networks in the daemon (issue 4): what libvirt's network driver does at
//! `libvirtd` start, on `virsh net-*` commands and at shutdown, over `virtgate-vnet`.
//!
//! - Start-up ([`NetworkArgs::read`], then [`start`]): every `--network-xml FILE` is read first
//!   (a bad file stops start-up with `file:line`), defined in the store under `--state-dir` and
//!   started; then the built-in `default` network (libvirt's: virbr0, 192.168.122.1/24, NAT)
//!   unless `--no-default-network` or a file named `default`; then the stored networks marked
//!   autostart. The firewall comes last: one ruleset, the PPTP part and every running network's
//!   part, applied in one transaction.
//! - While running, [`Handle`] serves the `virtgate net ...` commands that arrive on the
//!   control socket ([`NetRequest`], one handler each); starting or stopping a network replaces
//!   the whole table (`Applied::replace`) with the new list of parts.
//! - Stop ([`Handle::shutdown`]): every network stopped (bridges removed, leases files kept),
//!   the table removed and `ip_forward` restored.
//!
//! Choices libvirt leaves to the driver, and what this module does:
//! - The built-in `default` network is stored in the state directory the first time it
//!   starts (libvirt's packages install it as a defined network), so its generated bridge MAC
//!   and UUID stay the same across restarts and `net dumpxml default` shows it. It is not
//!   marked autostart: `--no-default-network` alone decides whether it starts.
//! - If its bridge name is held by an interface virtgate did not create (libvirt's own virbr0)
//!   or its subnet is routed on another interface, one warning is logged and the daemon goes
//!   on without it; the same clash on a `--network-xml` network stops start-up (it was asked
//!   for explicitly), and on an autostart network is logged as an error, as libvirtd does.
//! - The subnet check is libvirt's `networkCheckRouteCollision`: a route in
//!   `/proc/net/route` with exactly the network's address and mask on another interface. A
//!   wider or narrower route is not a clash (libvirt starts such networks too).
//! - `net update` changes the running network (`--live`) and the stored definition
//!   (`--config`) together, so the change survives a restart; either part applies to what
//!   exists.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use virtgate_config::libvirt::{NetworkDef, UpdateOp, UpdateSection};
use virtgate_config::ConfigError;
use virtgate_firewall::{Applied, FirewallError, Nft, Part, Ruleset};
use virtgate_links::Links;
use virtgate_vnet::{Network, NetworkOptions, RunningNetwork, Store, VnetError};

use crate::error::DaemonError;
use crate::fw;

/// Where leases and definitions live unless `--state-dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/virtgate";

/// The name of libvirt's built-in network.
pub const DEFAULT_NETWORK: &str = "default";

/// Locked while a daemon runs (one daemon per state directory).
const LOCK_FILE: &str = "virtgate.lock";

/// The host's IPv4 routing table (per network namespace).
const PROC_NET_ROUTE: &str = "/proc/net/route";

/// `virtgate daemon`'s virtual-network flags.
#[derive(Debug, Clone, clap::Args)]
pub struct NetworkArgs {
    /// A libvirt network XML file (what `virsh net-dumpxml` prints) to define and start with
    /// the daemon; repeatable. A network named `default` replaces the built-in one.
    #[arg(long = "network-xml", value_name = "FILE")]
    pub network_xml: Vec<PathBuf>,

    /// Where network definitions (`networks/NAME.xml`) and leases (`NAME.leases`) are kept.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// Do not start the built-in `default` network (virbr0, 192.168.122.1/24, NAT).
    #[arg(long)]
    pub no_default_network: bool,
}

/// What start-up will bring up, read before anything is touched.
#[derive(Debug, Clone)]
pub struct Plan {
    state_dir: PathBuf,
    /// `--network-xml` files in command-line order.
    files: Vec<(PathBuf, NetworkDef)>,
    /// Whether the built-in `default` network starts.
    builtin_default: bool,
    no_default: bool,
}

impl NetworkArgs {
    /// Reads every `--network-xml` file: a file that does not parse or validate is an error
    /// with its line (the configuration crate's), two files defining one name are refused.
    pub fn read(&self) -> Result<Plan, NetworksError> {
        let mut files: Vec<(PathBuf, NetworkDef)> = Vec::new();
        for path in &self.network_xml {
            let (def, warnings) = NetworkDef::read(path)?.into_parts();
            for w in warnings {
                tracing::warn!("{w}");
            }
            if let Some((first, _)) = files.iter().find(|(_, d)| d.name == def.name) {
                return Err(NetworksError::NamedTwice {
                    name: def.name,
                    first: first.clone(),
                    second: path.clone(),
                });
            }
            files.push((path.clone(), def));
        }
        let builtin_default =
            !self.no_default_network && !files.iter().any(|(_, d)| d.name == DEFAULT_NETWORK);
        Ok(Plan {
            state_dir: self.state_dir.clone(),
            files,
            builtin_default,
            no_default: self.no_default_network,
        })
    }
}

impl Plan {
    /// The firewall parts of the networks start-up would bring up, without starting anything
    /// (`virtgate firewall show`): the files, the built-in default, the stored autostart
    /// networks, in the daemon's order. A network whose bridge name is generated at its first
    /// start has no part until then; the clash checks of start-up are not made here.
    pub fn planned_parts(&self) -> Vec<Part> {
        // Read only: a state directory that does not exist yet is not created.
        let stored = if self.state_dir.join("networks").is_dir() {
            Store::open(&self.state_dir)
                .and_then(|s| s.list())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let stored_def = |name: &str| {
            stored
                .iter()
                .find(|s| s.def.name == name)
                .map(|s| s.def.clone())
        };
        let mut defs: BTreeMap<String, NetworkDef> = BTreeMap::new();
        for (_, def) in &self.files {
            let mut def = def.clone();
            if def.bridge.name.is_none() {
                def.bridge.name = stored_def(&def.name).and_then(|d| d.bridge.name);
            }
            defs.insert(def.name.clone(), def);
        }
        if self.builtin_default {
            let def = stored_def(DEFAULT_NETWORK).unwrap_or_else(NetworkDef::libvirt_default);
            defs.insert(def.name.clone(), def);
        }
        for s in &stored {
            if s.autostart && !(self.no_default && s.def.name == DEFAULT_NETWORK) {
                defs.entry(s.def.name.clone())
                    .or_insert_with(|| s.def.clone());
            }
        }
        defs.values()
            .filter_map(virtgate_vnet::convert::firewall_part)
            .collect()
    }
}

/// What can go wrong with networks in the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworksError {
    /// A network XML file or update does not parse or validate (`file:line: ...`).
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// Starting, stopping, storing or changing a network failed.
    #[error(transparent)]
    Vnet(#[from] VnetError),

    /// The ruleset with the network's part could not be applied.
    #[error("firewall: {0}")]
    Firewall(#[from] FirewallError),

    /// Two `--network-xml` files define the same network.
    #[error("network '{name}' is defined by both {} and {}; give each file its own <name>", first.display(), second.display())]
    NamedTwice {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },

    /// The network's subnet is routed on an interface that is not its bridge.
    #[error("network '{network}': subnet {subnet}/{prefix} is already in use by interface {interface}; choose another <ip address>")]
    SubnetInUse {
        network: String,
        subnet: Ipv4Addr,
        prefix: u8,
        interface: String,
    },

    /// `net start` of a network that runs.
    #[error("network '{name}' is already running")]
    AlreadyRunning { name: String },

    /// `net stop` / `net leases` of a network that does not run.
    #[error("network '{name}' is not running")]
    NotRunning { name: String },

    /// A network command arrived while the daemon stops.
    #[error("the daemon is stopping")]
    Stopping,

    /// Another daemon runs with the same state directory: starting its networks again would
    /// adopt (and, on failure, remove) the bridges it serves.
    #[error("another virtgate daemon uses the state directory {} (it holds {}); stop it, or give this one its own --state-dir", dir.display(), dir.join(LOCK_FILE).display())]
    StateDirInUse { dir: PathBuf },

    /// The state directory or its lock file cannot be created.
    #[error("state directory {}: {source}", dir.display())]
    StateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl NetworksError {
    fn is_taken(&self) -> bool {
        matches!(
            self,
            NetworksError::SubnetInUse { .. } | NetworksError::Vnet(VnetError::BridgeTaken { .. })
        )
    }
}

impl From<NetworksError> for DaemonError {
    fn from(e: NetworksError) -> DaemonError {
        match e {
            NetworksError::Config(c) | NetworksError::Vnet(VnetError::Definition(c)) => {
                DaemonError::Config(c)
            }
            NetworksError::Firewall(f) => DaemonError::Firewall(f),
            // The message names the network and what to change; DaemonError has no variant of
            // its own for networks, and `Daemon` prints the text as it is.
            other => DaemonError::Control(crate::control::ControlError::Daemon(other.to_string())),
        }
    }
}

/// Our nftables table: the PPTP part (fixed at start) and the running networks' parts.
#[derive(Default)]
struct Rules {
    /// `None` with `--no-firewall` (networks run without rules, as the admin manages them).
    active: Option<fw::Active>,
    /// A table made after start, when the PPTP side had none (no uplink) and the first network
    /// needing rules started later.
    late: Option<Applied>,
    pptp: Vec<Part>,
}

impl Rules {
    /// Replaces the table with the PPTP part and `networks`, in one transaction.
    fn apply(&mut self, networks: Vec<Part>) -> Result<(), FirewallError> {
        let Some(active) = &mut self.active else {
            return Ok(());
        };
        let mut parts = self.pptp.clone();
        parts.extend(networks);
        let rs = Ruleset::new(parts);
        if let Some(table) = active.table_mut() {
            return table.replace(&rs);
        }
        match &mut self.late {
            Some(table) => table.replace(&rs),
            None if rs.parts.is_empty() => Ok(()),
            None => {
                self.late = Some(Nft::new().apply(&rs)?);
                Ok(())
            }
        }
    }

    /// Removes the table and restores `ip_forward` (failures are logged: we are exiting).
    fn remove(&mut self) {
        if let Some(t) = self.late.take() {
            if let Err(e) = t.remove() {
                tracing::warn!("firewall cleanup: {e}");
            }
        }
        if let Some(a) = self.active.take() {
            a.stop();
        }
    }
}

/// The daemon's networks: the store, the running ones and the firewall.
pub struct Networks {
    /// Held until the process exits.
    _lock: std::fs::File,
    store: Store,
    links: Links,
    opts: NetworkOptions,
    running: BTreeMap<String, RunningNetwork>,
    rules: Rules,
    stopping: bool,
    /// Names defined (files and store) when last read: a reload starts only autostart
    /// networks that are new since, not ones an admin stopped.
    known: BTreeSet<String>,
}

/// Shared access for the control-socket handlers and the daemon's stop.
#[derive(Clone)]
pub struct Handle {
    nets: Arc<Mutex<Networks>>,
    /// The daemon's network flags, read again on reload.
    args: Arc<NetworkArgs>,
}

/// Network definitions read for a reload, before anything changes.
#[derive(Debug)]
pub struct ReloadPlan {
    plan: Plan,
    stored: Vec<virtgate_vnet::StoredNetwork>,
}

/// What [`start`] ended with.
pub enum Startup {
    /// Every network asked for runs (or was logged as not started) and the firewall is up.
    Running(Handle),
    /// A stop signal arrived during start-up: everything started so far (bridges, taps, DHCP
    /// and DNS, the table, `ip_forward`) is stopped again. Holds the signal's name.
    Interrupted(&'static str),
}

/// The name of the stop signal received so far, if any (`SIGTERM`, `SIGINT`): set by the
/// caller's signal handlers, read by [`start`] between networks.
pub type StopSignal = tokio::sync::watch::Receiver<Option<&'static str>>;

/// Start-up: the networks of `plan`, then the firewall from `firewall` (given the networks'
/// parts; it returns the active firewall and the PPTP parts, or `None` for `--no-firewall`).
/// On error everything started is stopped again; so it is when `stop` says a stop signal
/// arrived (checked before each network and around the firewall: one network's start is a
/// few netlink requests and socket binds, and is let finish rather than cut in half).
pub async fn start(
    plan: Plan,
    firewall: impl FnOnce(Vec<Part>) -> Result<Option<(fw::Active, Vec<Part>)>, DaemonError>,
    stop: StopSignal,
) -> Result<Startup, DaemonError> {
    let mut nets = Networks {
        _lock: lock_state_dir(&plan.state_dir)?,
        store: Store::open(&plan.state_dir).map_err(NetworksError::from)?,
        links: Links::new()
            .map_err(VnetError::from)
            .map_err(NetworksError::from)?,
        opts: NetworkOptions::default(),
        running: BTreeMap::new(),
        rules: Rules::default(),
        stopping: false,
        known: BTreeSet::new(),
    };
    let args = NetworkArgs {
        network_xml: plan.files.iter().map(|(p, _)| p.clone()).collect(),
        state_dir: plan.state_dir.clone(),
        no_default_network: plan.no_default,
    };
    let started = nets.start_planned(&plan, &stop).await;
    let interrupted = |nets: &Networks| {
        let signal = (*stop.borrow())?;
        tracing::info!(
            networks = nets.running.len(),
            "{signal} during start-up: stopping what was started"
        );
        Some(signal)
    };
    if let Err(e) = started {
        nets.shutdown().await;
        return Err(e.into());
    }
    if let Some(signal) = interrupted(&nets) {
        nets.shutdown().await;
        return Ok(Startup::Interrupted(signal));
    }
    match firewall(nets.parts()) {
        Ok(Some((active, pptp))) => {
            nets.rules.active = Some(active);
            nets.rules.pptp = pptp;
        }
        Ok(None) => {
            if !nets.running.is_empty() {
                tracing::info!("--no-firewall: virtual networks run without NAT or filter rules");
            }
        }
        Err(e) => {
            nets.shutdown().await;
            return Err(e);
        }
    }
    if let Some(signal) = interrupted(&nets) {
        nets.shutdown().await;
        return Ok(Startup::Interrupted(signal));
    }
    nets.known = nets
        .store
        .list()
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.def.name)
        .collect();
    Ok(Startup::Running(Handle {
        nets: Arc::new(Mutex::new(nets)),
        args: Arc::new(args),
    }))
}

impl Networks {
    /// Starts the planned networks in order; returns early (without error) once `stop` says
    /// a stop signal arrived, leaving the rest unstarted.
    async fn start_planned(&mut self, plan: &Plan, stop: &StopSignal) -> Result<(), NetworksError> {
        let stopped = || stop.borrow().is_some();
        for (path, def) in &plan.files {
            if stopped() {
                return Ok(());
            }
            let def = self.store.define(def.clone(), &self.links).await?;
            self.launch(def).await.inspect_err(|_| {
                tracing::error!(file = %path.display(), "network from --network-xml did not start");
            })?;
        }
        if plan.builtin_default && !stopped() {
            // Nobody asked for it explicitly, so it never stops the PPTP server: one warning.
            if let Err(e) = self.start_builtin_default().await {
                let hint = if e.is_taken() {
                    " (libvirt's own network?)"
                } else {
                    ""
                };
                tracing::warn!(
                    "the built-in network '{DEFAULT_NETWORK}' is not started: {e}{hint}; the \
                     daemon goes on without it — pass --no-default-network to silence this, or \
                     --network-xml with another bridge and subnet"
                );
            }
        }
        for stored in self.store.list()? {
            if stopped() {
                return Ok(());
            }
            let name = stored.def.name.clone();
            if !stored.autostart
                || self.running.contains_key(&name)
                || (plan.no_default && name == DEFAULT_NETWORK)
            {
                continue;
            }
            if let Err(e) = self.launch(stored.def).await {
                tracing::error!(network = %name, "autostart network did not start: {e}");
            }
        }
        Ok(())
    }

    /// libvirt's `default`, or the stored definition of that name (an admin may have changed
    /// it with `net define`); stored the first time.
    async fn start_builtin_default(&mut self) -> Result<(), NetworksError> {
        let def = match self.store.get(DEFAULT_NETWORK) {
            Ok(stored) => stored.def,
            Err(VnetError::NotFound { .. }) => {
                let def = NetworkDef::libvirt_default();
                // Refused before it is stored: a clash must not leave a definition behind.
                check_subnet_free(&def, &read_routes())?;
                self.store.define(def, &self.links).await?
            }
            Err(e) => return Err(e.into()),
        };
        self.launch(def).await
    }

    /// Starts one network (subnet check, bridge, address, DHCP, DNS). The firewall is the
    /// caller's next step.
    async fn launch(&mut self, def: NetworkDef) -> Result<(), NetworksError> {
        if self.running.contains_key(&def.name) {
            return Err(NetworksError::AlreadyRunning { name: def.name });
        }
        check_subnet_free(&def, &read_routes())?;
        let net = Network::start(def, self.store.state_dir(), self.opts.clone()).await?;
        tracing::info!(
            network = %net.name(),
            bridge = %net.bridge(),
            address = ?net.def().ip.map(|ip| format!("{}/{}", ip.address, ip.prefix)),
            mode = net.def().forward_mode().map_or("isolated", |m| m.as_str()),
            "virtual network started"
        );
        self.running.insert(net.name().to_string(), net);
        Ok(())
    }

    /// Every running network's firewall part, by name.
    fn parts(&self) -> Vec<Part> {
        self.running
            .values()
            .filter_map(RunningNetwork::firewall_part)
            .collect()
    }

    fn apply_rules(&mut self) -> Result<(), NetworksError> {
        let parts = self.parts();
        Ok(self.rules.apply(parts)?)
    }

    async fn stop_one(&mut self, name: &str) -> Result<(), NetworksError> {
        let net = self
            .running
            .remove(name)
            .ok_or_else(|| NetworksError::NotRunning {
                name: name.to_string(),
            })?;
        let stopped = net.stop().await;
        // The rules go whatever happened to the bridge.
        let rules = self.apply_rules();
        stopped?;
        rules
    }

    /// Stops every network (bridges removed, leases kept), then removes the table.
    async fn shutdown(&mut self) {
        self.stopping = true;
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            if let Some(net) = self.running.remove(&name) {
                if let Err(e) = net.stop().await {
                    tracing::warn!(network = %name, "stopping the network: {e}");
                }
            }
        }
        self.rules.remove();
    }

    // ---- reload ------------------------------------------------------------------------------

    /// Applies definitions read by [`Handle::prepare_reload`]: the `--network-xml` files are
    /// defined again; autostart networks new since the last read start; a running network
    /// whose definition changed gets its DHCP and DNS hosts applied live, and any other change
    /// waits for `net stop` + `net start` (libvirt's persistent versus live definition: the
    /// hosts apply live even when other changes wait). What could not be done is returned as
    /// warnings; nothing running is stopped.
    async fn reload(&mut self, r: ReloadPlan) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.stopping {
            return warnings;
        }
        for (path, def) in &r.plan.files {
            if let Err(e) = self.store.define(def.clone(), &self.links).await {
                warnings.push(format!(
                    "{}: not defined again, the stored definition stays: {e}",
                    path.display()
                ));
            }
        }
        // What is defined now: the store as just updated (a file's definition included).
        let stored = match self.store.list() {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!("network definitions: {e}"));
                r.stored
            }
        };
        let mut started = false;
        for s in &stored {
            let name = &s.def.name;
            let from_file = r.plan.files.iter().any(|(_, d)| &d.name == name);
            let new = !self.known.contains(name);
            if self.running.contains_key(name)
                || !new
                || !(s.autostart || from_file)
                || (r.plan.no_default && name == DEFAULT_NETWORK)
            {
                continue;
            }
            match self.launch(s.def.clone()).await {
                Ok(()) => started = true,
                Err(e) => warnings.push(format!("network '{name}' did not start: {e}")),
            }
        }
        let stored = if started {
            if let Err(e) = self.apply_rules() {
                warnings.push(format!("firewall rules for the new networks: {e}"));
            }
            // Starting wrote generated identities (UUID, MAC) back to the store.
            self.store.list().unwrap_or(stored)
        } else {
            stored
        };
        for s in &stored {
            let Some(net) = self.running.get(&s.def.name) else {
                continue;
            };
            let running = net.def();
            if running == s.def {
                continue;
            }
            let name = &s.def.name;
            // The hosts apply live whatever else changed (as `net-update` would); the rest
            // waits for a restart of the network.
            let mut live = running.clone();
            if let (Some(l), Some(n)) = (live.ip.as_mut(), s.def.ip.as_ref()) {
                l.dhcp_hosts.clone_from(&n.dhcp_hosts);
            }
            live.dns.hosts.clone_from(&s.def.dns.hosts);
            if live != running {
                match net.apply(live).await {
                    Ok(()) => {
                        tracing::info!(network = %name, "reload: DHCP and DNS hosts applied live")
                    }
                    Err(e) => warnings.push(format!(
                        "network '{name}': the new DHCP and DNS hosts are not applied: {e}"
                    )),
                }
            }
            if !RunningNetwork::live_change_only(&running, &s.def) {
                warnings.push(format!(
                    "network '{name}': its definition changed beyond DHCP and DNS hosts; it keeps \
                     running with the old settings until `virtgate net stop {name}` and \
                     `virtgate net start {name}`"
                ));
            }
        }
        self.known = stored.into_iter().map(|s| s.def.name).collect();
        warnings
    }

    /// The running networks' DHCP and DNS counters.
    async fn status(&self) -> Vec<crate::control::NetworkStatus> {
        let mut out = Vec::new();
        for (name, net) in &self.running {
            let st = match net.stats().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(network = %name, "stats: {e}");
                    continue;
                }
            };
            let dhcp = st.dhcp.unwrap_or_default();
            let dns = st.dns.unwrap_or_default();
            out.push(crate::control::NetworkStatus {
                name: name.clone(),
                bridge: net.bridge().to_string(),
                dhcp_leases_active: st.leases_active as u64,
                dhcp_offers: dhcp.offers,
                dhcp_acks: dhcp.acks,
                dhcp_naks: dhcp.naks,
                dhcp_malformed: dhcp.malformed,
                dns_answered: dns.answered,
                dns_forwarded: dns.forwarded,
                dns_cache_hits: dns.cache_hits,
                dns_failed: dns.failed,
                dns_malformed: dns.malformed,
            });
        }
        out
    }

    // ---- one handler per NetRequest variant ---------------------------------------------------

    fn list(&self) -> Result<Vec<NetInfo>, NetworksError> {
        let mut out: BTreeMap<String, NetInfo> = BTreeMap::new();
        for s in self.store.list()? {
            let active = self.running.contains_key(&s.def.name);
            out.insert(
                s.def.name.clone(),
                NetInfo::of(&s.def, active, s.autostart, true),
            );
        }
        for (name, net) in &self.running {
            // The running definition has the generated bridge name.
            let running = NetInfo::of(&net.def(), true, false, false);
            out.entry(name.clone())
                .and_modify(|i| {
                    i.bridge = running.bridge.clone();
                    i.direct = running.direct.clone();
                })
                .or_insert(running);
        }
        Ok(out.into_values().collect())
    }

    async fn net_start(&mut self, name: &str) -> Result<NetResponse, NetworksError> {
        if self.stopping {
            return Err(NetworksError::Stopping);
        }
        if self.running.contains_key(name) {
            return Err(NetworksError::AlreadyRunning {
                name: name.to_string(),
            });
        }
        let def = self.store.get(name)?.def;
        self.launch(def).await?;
        if let Err(e) = self.apply_rules() {
            // Without its rules the network would be half there: take it down again.
            if let Some(net) = self.running.remove(name) {
                if let Err(stop) = net.stop().await {
                    tracing::warn!(network = %name, "stopping after a firewall failure: {stop}");
                }
            }
            if let Err(again) = self.apply_rules() {
                tracing::warn!("restoring the previous firewall rules: {again}");
            }
            return Err(e);
        }
        let bridge = self
            .running
            .get(name)
            .map(|n| n.bridge().to_string())
            .unwrap_or_default();
        Ok(NetResponse::Started {
            name: name.to_string(),
            bridge,
        })
    }

    async fn net_stop(&mut self, name: &str) -> Result<NetResponse, NetworksError> {
        self.stop_one(name).await?;
        tracing::info!(network = %name, "virtual network stopped on request");
        Ok(NetResponse::Stopped {
            name: name.to_string(),
        })
    }

    async fn net_define(&mut self, xml: &str, origin: &Path) -> Result<NetResponse, NetworksError> {
        let (def, warnings) = NetworkDef::parse(xml, origin)?.into_parts();
        let def = self.store.define(def, &self.links).await?;
        Ok(NetResponse::Defined {
            name: def.name.clone(),
            bridge: def.bridge.name.clone(),
            running: self.running.contains_key(&def.name),
            warnings: warnings.iter().map(ToString::to_string).collect(),
        })
    }

    fn net_undefine(&mut self, name: &str) -> Result<NetResponse, NetworksError> {
        self.store.undefine(name)?;
        Ok(NetResponse::Undefined {
            name: name.to_string(),
            running: self.running.contains_key(name),
        })
    }

    fn net_autostart(&mut self, name: &str, enable: bool) -> Result<NetResponse, NetworksError> {
        self.store.set_autostart(name, enable)?;
        Ok(NetResponse::Autostart {
            name: name.to_string(),
            enabled: enable,
        })
    }

    fn net_dumpxml(&self, name: &str, inactive: bool) -> Result<NetResponse, NetworksError> {
        let def = match self.running.get(name) {
            Some(net) if !inactive => net.def(),
            _ => self.store.get(name)?.def,
        };
        Ok(NetResponse::Xml { xml: def.to_xml() })
    }

    async fn net_leases(&self, name: &str) -> Result<NetResponse, NetworksError> {
        let net = self
            .running
            .get(name)
            .ok_or_else(|| NetworksError::NotRunning {
                name: name.to_string(),
            })?;
        let leases = net
            .leases()
            .await?
            .into_iter()
            .map(|l| LeaseRow {
                expiry: l
                    .expires
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs()),
                mac: l.mac.to_string(),
                protocol: l.protocol().to_string(),
                ip_address: format!("{}/{}", l.ip, l.prefix_len),
                hostname: l.hostname.clone(),
                client_id: l.client_id_string(),
            })
            .collect();
        Ok(NetResponse::Leases {
            network: name.to_string(),
            leases,
        })
    }

    async fn net_update(
        &mut self,
        name: &str,
        op: UpdateOp,
        section: UpdateSection,
        xml: &str,
    ) -> Result<NetResponse, NetworksError> {
        let stored = match self.store.get(name) {
            Ok(_) => true,
            Err(VnetError::NotFound { .. }) if self.running.contains_key(name) => false,
            Err(e) => return Err(e.into()),
        };
        // Checked on the stored copy first, so a change that cannot apply to the definition
        // does not reach the running servers either.
        if stored {
            let mut check = self.store.get(name)?.def;
            check.update(section, op, xml)?;
        }
        let live = match self.running.get(name) {
            Some(net) => {
                net.update(section, op, xml).await?;
                true
            }
            None => false,
        };
        let config = if stored {
            match self.store.update(name, section, op, xml) {
                Ok(_) => true,
                Err(e) if live => {
                    tracing::warn!(network = %name, "live update applied, stored definition not changed: {e}");
                    false
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            false
        };
        tracing::info!(network = %name, %op, %section, live, config, "network updated");
        Ok(NetResponse::Updated {
            name: name.to_string(),
            live,
            config,
        })
    }

    async fn handle(&mut self, req: NetRequest) -> Result<NetResponse, NetworksError> {
        if self.stopping {
            return Err(NetworksError::Stopping);
        }
        match req {
            NetRequest::List => Ok(NetResponse::List {
                networks: self.list()?,
            }),
            NetRequest::Start { name } => self.net_start(&name).await,
            NetRequest::Stop { name } => self.net_stop(&name).await,
            NetRequest::Define { xml, origin } => self.net_define(&xml, &origin).await,
            NetRequest::Undefine { name } => self.net_undefine(&name),
            NetRequest::Autostart { name, enable } => self.net_autostart(&name, enable),
            NetRequest::Dumpxml { name, inactive } => self.net_dumpxml(&name, inactive),
            NetRequest::Leases { name } => self.net_leases(&name).await,
            NetRequest::Update {
                name,
                command,
                section,
                xml,
            } => {
                let op: UpdateOp = command.parse().map_err(|m: String| bad_request(&m))?;
                let section: UpdateSection =
                    section.parse().map_err(|m: String| bad_request(&m))?;
                self.net_update(&name, op, section, &xml).await
            }
        }
    }
}

/// A request the client side should have refused (unknown update command or section).
fn bad_request(message: &str) -> NetworksError {
    NetworksError::Vnet(VnetError::Io {
        context: "net update".into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, message.to_string()),
    })
}

impl Handle {
    /// Reads every network definition again (the `--network-xml` files and the state
    /// directory's), changing nothing: a file that does not parse is an error with its
    /// `file:line`, and the whole reload is refused.
    pub fn prepare_reload(&self) -> Result<ReloadPlan, NetworksError> {
        let plan = self.args.read()?;
        let stored = Store::open(&plan.state_dir)?.list_strict()?;
        Ok(ReloadPlan { plan, stored })
    }

    /// `virtgate reload` / SIGHUP with networks: the network definitions are read first (a bad
    /// one refuses everything), then `pptp` reloads the PPTP side (its refusal also leaves the
    /// networks alone), then the networks apply theirs on a task of their own; the answer (to
    /// `reply`, or the log) carries both sides' warnings.
    pub fn reload(
        &self,
        why: &str,
        pptp: impl FnOnce() -> crate::control::Response,
        reply: Option<tokio::sync::oneshot::Sender<crate::control::Response>>,
    ) {
        use crate::control::Response;
        let answer = |r: Response| {
            if let Some(reply) = reply {
                let _ = reply.send(r);
            }
        };
        let plan = match self.prepare_reload() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("{why}: reload refused, the running configuration stays: {e}");
                answer(Response::Error {
                    message: format!("reload refused, the running configuration stays: {e}"),
                });
                return;
            }
        };
        let mut warnings = match pptp() {
            Response::Reloaded { warnings } => warnings,
            other => {
                answer(other);
                return;
            }
        };
        let this = self.clone();
        let why = why.to_string();
        tokio::spawn(async move {
            let net_warnings = this.nets.lock().await.reload(plan).await;
            for w in &net_warnings {
                tracing::warn!("{why}: {w}");
            }
            tracing::info!("{why}: network definitions reloaded");
            warnings.extend(net_warnings);
            answer(Response::Reloaded { warnings });
        });
    }

    /// `virtgate status` with networks: `status` (the PPTP engine's answer) completed with the
    /// running networks' counters, on a task of its own.
    pub fn status(
        &self,
        status: crate::control::Response,
        reply: tokio::sync::oneshot::Sender<crate::control::Response>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let r = match status {
                crate::control::Response::Status(mut s) => {
                    s.networks = this.nets.lock().await.status().await;
                    crate::control::Response::Status(s)
                }
                other => other,
            };
            let _ = reply.send(r);
        });
    }

    /// Runs one `net` command and answers it (on its own task: the PPTP engine does not wait).
    pub fn serve(
        &self,
        req: NetRequest,
        reply: tokio::sync::oneshot::Sender<crate::control::Response>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let r = this.nets.lock().await.handle(req).await;
            let _ = reply.send(match r {
                Ok(r) => crate::control::Response::Net(r),
                Err(e) => crate::control::Response::Error {
                    message: e.to_string(),
                },
            });
        });
    }

    /// Stops every network and removes the firewall (the daemon is exiting).
    pub async fn shutdown(&self) {
        self.nets.lock().await.shutdown().await;
    }
}

// ---- control protocol ------------------------------------------------------------------------

pub use virtgate_control::NetRequest;

/// The daemon's answer to a [`NetRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "net", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NetResponse {
    List {
        networks: Vec<NetInfo>,
    },
    Started {
        name: String,
        bridge: String,
    },
    Stopped {
        name: String,
    },
    Defined {
        name: String,
        bridge: Option<String>,
        /// A running network keeps its running definition until it is restarted.
        running: bool,
        warnings: Vec<String>,
    },
    Autostart {
        name: String,
        enabled: bool,
    },
    Undefined {
        name: String,
        /// A running network runs on (transient) until stopped.
        running: bool,
    },
    Xml {
        xml: String,
    },
    Leases {
        network: String,
        leases: Vec<LeaseRow>,
    },
    Updated {
        name: String,
        /// Applied to the running network.
        live: bool,
        /// Applied to the stored definition.
        config: bool,
    },
}

/// One network in `net list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetInfo {
    pub name: String,
    pub active: bool,
    pub autostart: bool,
    pub persistent: bool,
    /// The bridge guests attach to; `None` for macvtap networks (libvirt's `net-info` prints
    /// no `Bridge:` line for them) and for a network whose bridge name is generated at start.
    pub bridge: Option<String>,
    /// macvtap ("direct") networks: the mode and the pool of parent devices, as
    /// `<forward mode dev>` and `<interface dev>` in `net dumpxml`. Absent for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<DirectInfo>,
}

/// The macvtap side of a network in `net list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectInfo {
    /// `bridge`, `vepa`, `private` or `passthrough`.
    pub mode: String,
    /// The parent devices guests' macvtaps are created on, in the definition's order.
    pub devices: Vec<String>,
}

impl NetInfo {
    /// The row of `def`.
    fn of(def: &NetworkDef, active: bool, autostart: bool, persistent: bool) -> NetInfo {
        let direct = match def.forward.as_ref() {
            Some(f) if def.uses_macvtap() => Some(DirectInfo {
                mode: f.mode.as_str().to_string(),
                devices: f.interfaces.clone(),
            }),
            _ => None,
        };
        NetInfo {
            name: def.name.clone(),
            active,
            autostart,
            persistent,
            bridge: def.bridge.name.clone().filter(|_| direct.is_none()),
            direct,
        }
    }

    /// The `Bridge` cell of `net list`: the bridge, or for a macvtap network its devices and
    /// mode (`eth0,eth1 (macvtap vepa)`).
    fn attaches_to(&self) -> String {
        match (&self.direct, &self.bridge) {
            (Some(d), _) => format!("{} (macvtap {})", d.devices.join(","), d.mode),
            (None, Some(b)) if !b.is_empty() => b.clone(),
            (None, _) => "-".into(),
        }
    }
}

/// One lease in `net leases` (virsh net-dhcp-leases columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRow {
    /// Seconds since the epoch; `None` for an infinite lease.
    pub expiry: Option<u64>,
    pub mac: String,
    pub protocol: String,
    /// `ADDRESS/PREFIX`.
    pub ip_address: String,
    pub hostname: Option<String>,
    pub client_id: String,
}

// ---- the `virtgate net` commands (client side) ------------------------------------------------

/// `virtgate net ...`: virsh's `net-*` commands against the running daemon.
#[derive(Debug, clap::Subcommand)]
pub enum NetCommand {
    /// List every network, defined or running (virsh net-list --all).
    List(NetCommon),
    /// Start a defined network (virsh net-start).
    Start(NetName),
    /// Stop a running network: bridge removed, leases kept (virsh net-destroy).
    Stop(NetName),
    /// Define (or redefine) a network from libvirt network XML (virsh net-define).
    Define(NetFile),
    /// Remove a network's definition; a running network runs on until stopped (virsh
    /// net-undefine). Takes the name, or the XML file that defined it.
    Undefine(NetName),
    /// Start a defined network with the daemon, or not with --disable (virsh net-autostart).
    Autostart(NetAutostart),
    /// Print a network's XML: the running definition, or the stored one with --inactive
    /// (virsh net-dumpxml).
    Dumpxml(NetDump),
    /// The DHCP leases of a running network (virsh net-dhcp-leases).
    Leases(NetName),
    /// Add or delete a DHCP host or DNS host without a restart: applied to the running
    /// network and to its stored definition (virsh net-update --live --config).
    Update(NetUpdate),
}

/// The socket and output options every `net` command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct NetCommon {
    #[command(flatten)]
    pub socket: crate::cli::SocketArgs,
    /// Print the daemon's JSON answer.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NetName {
    /// The network's name.
    pub name: String,
    #[command(flatten)]
    pub common: NetCommon,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NetFile {
    /// The libvirt network XML file.
    pub file: PathBuf,
    #[command(flatten)]
    pub common: NetCommon,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NetAutostart {
    pub name: String,
    /// Do not start it with the daemon any more.
    #[arg(long)]
    pub disable: bool,
    #[command(flatten)]
    pub common: NetCommon,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NetDump {
    pub name: String,
    /// The stored definition, not the running one.
    #[arg(long)]
    pub inactive: bool,
    #[command(flatten)]
    pub common: NetCommon,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NetUpdate {
    pub name: String,
    /// add (= add-last), add-first, add-last, delete or modify.
    #[arg(value_parser = |s: &str| s.parse::<UpdateOp>())]
    pub command: UpdateOp,
    /// ip-dhcp-host or dns-host.
    #[arg(value_parser = |s: &str| s.parse::<UpdateSection>())]
    pub section: UpdateSection,
    /// The `<host .../>` element, or a file holding it (as virsh takes either).
    pub xml: String,
    #[command(flatten)]
    pub common: NetCommon,
}

fn client_error(message: String) -> DaemonError {
    DaemonError::Control(crate::control::ControlError::Daemon(message))
}

fn read_text(path: &Path) -> Result<String, DaemonError> {
    std::fs::read_to_string(path).map_err(|e| client_error(format!("{}: {e}", path.display())))
}

/// Runs one `virtgate net` command: sends it, prints the answer (text, or JSON with `--json`).
pub fn run_command(cmd: NetCommand) -> Result<(), DaemonError> {
    let (req, common) = match cmd {
        NetCommand::List(c) => (NetRequest::List, c),
        NetCommand::Start(a) => (NetRequest::Start { name: a.name }, a.common),
        NetCommand::Stop(a) => (NetRequest::Stop { name: a.name }, a.common),
        NetCommand::Define(a) => {
            let xml = read_text(&a.file)?;
            // Relative names would mean nothing to the daemon's messages: make it absolute.
            let origin = std::path::absolute(&a.file).unwrap_or(a.file);
            (NetRequest::Define { xml, origin }, a.common)
        }
        NetCommand::Undefine(a) => {
            let p = Path::new(&a.name);
            let name = if p.is_file() {
                NetworkDef::read(p)?.value.name
            } else {
                a.name
            };
            (NetRequest::Undefine { name }, a.common)
        }
        NetCommand::Autostart(a) => (
            NetRequest::Autostart {
                name: a.name,
                enable: !a.disable,
            },
            a.common,
        ),
        NetCommand::Dumpxml(a) => (
            NetRequest::Dumpxml {
                name: a.name,
                inactive: a.inactive,
            },
            a.common,
        ),
        NetCommand::Leases(a) => (NetRequest::Leases { name: a.name }, a.common),
        NetCommand::Update(a) => {
            let xml = if a.xml.trim_start().starts_with('<') {
                a.xml
            } else {
                read_text(Path::new(&a.xml))?
            };
            (
                NetRequest::Update {
                    name: a.name,
                    command: a.command.as_str().to_string(),
                    section: a.section.as_str().to_string(),
                    xml,
                },
                a.common,
            )
        }
    };
    let r = crate::control::request(&common.socket.socket, &crate::control::Request::Net(req))?;
    match r {
        crate::control::Response::Net(n) => {
            if common.json {
                println!(
                    "{}",
                    crate::control::encode(&crate::control::Response::Net(n)).trim_end()
                );
            } else {
                print!("{}", response_text(&n));
            }
            Ok(())
        }
        other => Err(client_error(format!(
            "unexpected answer from the daemon: {}",
            crate::control::encode(&other).trim_end()
        ))),
    }
}

// ---- human output ----------------------------------------------------------------------------

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (c, w) in cells.iter().zip(&width) {
            let _ = write!(l, " {c:<w$}  ");
        }
        l.trim_end().to_string() + "\n"
    };
    let head: Vec<String> = head.iter().map(|h| h.to_string()).collect();
    let mut o = line(&head);
    let total: usize = width.iter().map(|w| w + 3).sum();
    o += &"-".repeat(total.max(1));
    o.push('\n');
    for r in rows {
        o += &line(r);
    }
    o
}

/// `virtgate net list` as virsh's `net-list --all` prints it.
pub fn list_table(nets: &[NetInfo]) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let rows: Vec<Vec<String>> = nets
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                if n.active { "active" } else { "inactive" }.to_string(),
                yes(n.autostart),
                yes(n.persistent),
                n.attaches_to(),
            ]
        })
        .collect();
    table(
        &["Name", "State", "Autostart", "Persistent", "Bridge"],
        &rows,
    )
}

/// `virtgate net leases` with virsh `net-dhcp-leases`' columns (expiry in UTC).
pub fn leases_table(leases: &[LeaseRow]) -> String {
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|l| {
            vec![
                l.expiry.map_or_else(|| "never".to_string(), utc_time),
                l.mac.clone(),
                l.protocol.clone(),
                l.ip_address.clone(),
                l.hostname.clone().unwrap_or_else(|| "-".into()),
                l.client_id.clone(),
            ]
        })
        .collect();
    table(
        &[
            "Expiry Time",
            "MAC address",
            "Protocol",
            "IP address",
            "Hostname",
            "Client ID or DUID",
        ],
        &rows,
    )
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (virsh prints the host's local time; daemons run in UTC).
pub fn utc_time(epoch_secs: u64) -> String {
    let days = epoch_secs / 86_400;
    let secs = epoch_secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (non-negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// What `virtgate net CMD` prints for an answer (the `--json` form is the answer itself).
pub fn response_text(r: &NetResponse) -> String {
    match r {
        NetResponse::List { networks } => list_table(networks),
        NetResponse::Started { name, bridge } if bridge.is_empty() => {
            format!("Network {name} started\n")
        }
        NetResponse::Started { name, bridge } => {
            format!("Network {name} started (bridge {bridge})\n")
        }
        NetResponse::Stopped { name } => format!("Network {name} destroyed\n"),
        NetResponse::Defined {
            name,
            running,
            warnings,
            ..
        } => {
            let mut o = String::new();
            for w in warnings {
                let _ = writeln!(o, "warning: {w}");
            }
            let _ = writeln!(o, "Network {name} defined");
            if *running {
                let _ = writeln!(
                    o,
                    "(network {name} is running: the new definition applies at its next start)"
                );
            }
            o
        }
        NetResponse::Autostart { name, enabled } => {
            let how = if *enabled { "marked" } else { "unmarked" };
            format!("Network {name} {how} as autostarted\n")
        }
        NetResponse::Undefined { name, running } => {
            let mut o = format!("Network {name} has been undefined\n");
            if *running {
                let _ = writeln!(o, "(network {name} runs on until it is stopped)");
            }
            o
        }
        NetResponse::Xml { xml } => {
            let mut o = xml.clone();
            if !o.ends_with('\n') {
                o.push('\n');
            }
            o
        }
        NetResponse::Leases { leases, .. } => leases_table(leases),
        NetResponse::Updated { name, live, config } => {
            let what = match (live, config) {
                (true, true) => "live state and persistent config",
                (true, false) => "live state",
                (false, true) => "persistent config",
                (false, false) => "nothing",
            };
            format!("Updated network {name} {what}\n")
        }
    }
}

/// Takes `DIR/virtgate.lock` exclusively (flock: released by the kernel when the process
/// ends, so a crash leaves no stale lock).
fn lock_state_dir(dir: &Path) -> Result<std::fs::File, NetworksError> {
    use std::os::fd::AsRawFd;
    let io_err = |source| NetworksError::StateDir {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_err)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(io_err)?;
    // SAFETY: flock only reads the descriptor number of a file we keep open; no memory is
    // shared with the kernel.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            NetworksError::StateDirInUse {
                dir: dir.to_path_buf(),
            }
        } else {
            io_err(e)
        });
    }
    Ok(file)
}

// ---- routes ----------------------------------------------------------------------------------

/// One IPv4 route of `/proc/net/route`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    interface: String,
    destination: Ipv4Addr,
    mask: Ipv4Addr,
}

fn read_routes() -> Vec<Route> {
    match std::fs::read_to_string(PROC_NET_ROUTE) {
        Ok(text) => parse_routes(&text),
        Err(e) => {
            tracing::warn!("reading {PROC_NET_ROUTE}: {e}; subnet clashes are not checked");
            Vec::new()
        }
    }
}

/// `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`, addresses as the kernel's
/// `%08X` of the network-order word; lines that do not parse are skipped.
fn parse_routes(text: &str) -> Vec<Route> {
    let addr = |hex: &str| {
        u32::from_str_radix(hex, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, mask) = (f.first()?, f.get(1)?, f.get(7)?);
            Some(Route {
                interface: iface.to_string(),
                destination: addr(dest)?,
                mask: addr(mask)?,
            })
        })
        .collect()
}

/// libvirt's `networkCheckRouteCollision`: the network's subnet must not be routed, with the
/// same mask, on an interface other than its own bridge (a bridge virtgate left behind and now
/// adopts carries the route already). Default routes never clash.
fn check_subnet_free(def: &NetworkDef, routes: &[Route]) -> Result<(), NetworksError> {
    let Some(ip) = &def.ip else {
        return Ok(());
    };
    let (network, mask) = (ip.network(), ip.netmask());
    let bridge = def.bridge.name.as_deref();
    match routes.iter().find(|r| {
        r.mask != Ipv4Addr::UNSPECIFIED
            && r.destination == network
            && r.mask == mask
            && Some(r.interface.as_str()) != bridge
    }) {
        Some(r) => Err(NetworksError::SubnetInUse {
            network: def.name.clone(),
            subnet: network,
            prefix: ip.prefix,
            interface: r.interface.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        n: NetworkArgs,
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vg-networks-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn flags_default_to_the_builtin_network_in_var_lib() {
        let c = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(c.n.state_dir, PathBuf::from("/var/lib/virtgate"));
        assert!(c.n.network_xml.is_empty() && !c.n.no_default_network);
        let plan = c.n.read().unwrap();
        assert!(plan.builtin_default && plan.files.is_empty());
        let c = Cli::try_parse_from(["x", "--no-default-network", "--state-dir", "/s"]).unwrap();
        let plan = c.n.read().unwrap();
        assert!(!plan.builtin_default && plan.no_default);
        assert_eq!(plan.state_dir, PathBuf::from("/s"));
    }

    #[test]
    fn a_file_named_default_replaces_the_builtin_and_names_clash() {
        let d = scratch("files");
        let a = d.join("a.xml");
        let b = d.join("b.xml");
        std::fs::write(&a, NetworkDef::libvirt_default().to_xml()).unwrap();
        std::fs::write(&b, NetworkDef::libvirt_default().to_xml()).unwrap();
        let a_s = a.to_str().unwrap();
        let c = Cli::try_parse_from(["x", "--network-xml", a_s]).unwrap();
        let plan = c.n.read().unwrap();
        assert!(!plan.builtin_default);
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.files[0].1.name, "default");
        let c = Cli::try_parse_from([
            "x",
            "--network-xml",
            a_s,
            "--network-xml",
            b.to_str().unwrap(),
        ])
        .unwrap();
        let e = c.n.read().unwrap_err();
        assert!(matches!(e, NetworksError::NamedTwice { .. }), "{e}");
        assert!(e.to_string().contains("a.xml") && e.to_string().contains("b.xml"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_bad_file_stops_start_up_with_its_line() {
        let d = scratch("bad");
        let f = d.join("bad.xml");
        std::fs::write(
            &f,
            "<network>\n  <name>x</name>\n  <portgroup name='p'/>\n</network>\n",
        )
        .unwrap();
        let c = Cli::try_parse_from(["x", "--network-xml", f.to_str().unwrap()]).unwrap();
        let e = c.n.read().unwrap_err();
        let shown = DaemonError::from(e).to_string();
        assert!(shown.starts_with(&format!("{}:3:", f.display())), "{shown}");
        assert!(shown.contains("portgroup"), "{shown}");
        // A missing file is an error too, naming it.
        let c = Cli::try_parse_from(["x", "--network-xml", "/nonexistent/n.xml"]).unwrap();
        let shown = DaemonError::from(c.n.read().unwrap_err()).to_string();
        assert!(shown.contains("/nonexistent/n.xml"), "{shown}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    const ROUTES: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        uplink0\t00000000\t017100CB\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        uplink0\t007100CB\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        virbr0\t007AA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        short\n\
        bad\tZZZZZZZZ\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[cfg(target_endian = "little")]
    #[test]
    fn routes_parse_as_the_kernel_prints_them() {
        let r = parse_routes(ROUTES);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[1],
            Route {
                interface: "uplink0".into(),
                destination: Ipv4Addr::new(203, 0, 113, 0),
                mask: Ipv4Addr::new(255, 255, 255, 0),
            }
        );
        assert_eq!(r[2].destination, Ipv4Addr::new(192, 168, 122, 0));
        assert!(parse_routes("").is_empty());
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn subnet_clash_is_libvirts_same_network_same_mask_on_another_interface() {
        let routes = parse_routes(ROUTES);
        let mut def = NetworkDef::libvirt_default();
        // Its own bridge carries the route: no clash (a leftover bridge is adopted).
        assert!(check_subnet_free(&def, &routes).is_ok());
        def.bridge.name = Some("virbr7".into());
        let e = check_subnet_free(&def, &routes).unwrap_err();
        assert!(e.is_taken());
        assert_eq!(
            e.to_string(),
            "network 'default': subnet 192.168.122.0/24 is already in use by interface \
             virbr0; choose another <ip address>"
        );
        // The default route and a route with another mask do not clash.
        let mut wide = def.clone();
        if let Some(ip) = wide.ip.as_mut() {
            ip.address = Ipv4Addr::new(203, 0, 113, 9);
            ip.prefix = 25;
            ip.dhcp_ranges.clear();
        }
        assert!(check_subnet_free(&wide, &routes).is_ok());
        if let Some(ip) = wide.ip.as_mut() {
            ip.prefix = 24;
        }
        assert!(check_subnet_free(&wide, &routes).is_err());
    }

    #[test]
    fn one_daemon_per_state_directory() {
        let d = scratch("lock");
        let first = lock_state_dir(&d).unwrap();
        let e = lock_state_dir(&d).unwrap_err();
        assert!(matches!(e, NetworksError::StateDirInUse { .. }), "{e}");
        assert!(e.to_string().contains("virtgate.lock"), "{e}");
        drop(first);
        let again = lock_state_dir(&d.join("sub")).unwrap();
        drop(again);
        assert!(lock_state_dir(&d).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn utc_times_are_civil_dates() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00");
        assert_eq!(utc_time(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc_time(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc_time(4_107_542_399), "2100-02-28 23:59:59");
        assert!(!utc_time(u64::MAX).is_empty());
    }

    #[test]
    fn tables_have_virsh_columns() {
        let t = leases_table(&[LeaseRow {
            expiry: Some(1_700_000_000),
            mac: "52:54:00:77:00:21".into(),
            protocol: "ipv4".into(),
            ip_address: "192.168.122.50/24".into(),
            hostname: Some("fixed".into()),
            client_id: "-".into(),
        }]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(
            lines[0].starts_with(" Expiry Time           MAC address"),
            "{t}"
        );
        assert!(lines[0].ends_with("Client ID or DUID"), "{t}");
        assert!(lines[1].chars().all(|c| c == '-'));
        assert_eq!(
            lines[2],
            " 2023-11-14 22:13:20   52:54:00:77:00:21   ipv4       192.168.122.50/24   fixed      -"
        );
        let t = list_table(&[NetInfo {
            name: "default".into(),
            active: true,
            autostart: false,
            persistent: true,
            bridge: Some("virbr0".into()),
            direct: None,
        }]);
        assert_eq!(
            t.lines().nth(2),
            Some(" default   active   no          yes          virbr0")
        );
    }

    fn def(xml: &str) -> NetworkDef {
        NetworkDef::parse(xml, Path::new("t.xml"))
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn net_list_shows_the_device_pool_of_a_macvtap_network() {
        let pool = def(
            "<network>\n  <name>direct</name>\n  <forward mode='vepa'>\n    \
             <interface dev='eth0'/>\n    <interface dev='eth1'/>\n  </forward>\n</network>\n",
        );
        let one = def(
            "<network>\n  <name>pt</name>\n  <forward mode='passthrough' dev='eth2'/>\n</network>\n",
        );
        let nat = def(
            "<network>\n  <name>lab</name>\n  <bridge name='vg0'/>\n  <forward mode='nat'/>\n  \
             <ip address='10.9.0.1' prefix='24'/>\n</network>\n",
        );
        let rows = [
            NetInfo::of(&pool, true, false, true),
            NetInfo::of(&one, false, true, true),
            NetInfo::of(&nat, true, false, false),
        ];
        assert_eq!(rows[0].bridge, None);
        assert_eq!(
            rows[0].direct,
            Some(DirectInfo {
                mode: "vepa".into(),
                devices: vec!["eth0".into(), "eth1".into()],
            })
        );
        assert_eq!(rows[2].direct, None);
        assert_eq!(rows[2].bridge.as_deref(), Some("vg0"));
        let t = list_table(&rows);
        let lines: Vec<&str> = t.lines().map(str::trim_end).collect();
        assert!(lines[2].ends_with("  eth0,eth1 (macvtap vepa)"), "{t}");
        assert!(lines[3].ends_with("  eth2 (macvtap passthrough)"), "{t}");
        assert!(lines[4].ends_with("  vg0"), "{t}");
        // --json: bridge networks keep the shape they had (no `direct` key); macvtap ones
        // gain it, and a reader that knows no `direct` still reads them.
        let nat_json = serde_json::to_value(&rows[2]).unwrap();
        assert!(nat_json.get("direct").is_none(), "{nat_json}");
        let pool_json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(pool_json["direct"]["devices"][1], "eth1");
        assert!(pool_json["bridge"].is_null());
        let old: NetInfo = serde_json::from_str(
            r#"{"name":"a","active":true,"autostart":false,"persistent":true,"bridge":"b"}"#,
        )
        .unwrap();
        assert_eq!(old.direct, None);
    }

    #[test]
    fn started_text_names_a_bridge_only_when_there_is_one() {
        let r = |bridge: &str| {
            response_text(&NetResponse::Started {
                name: "n".into(),
                bridge: bridge.into(),
            })
        };
        assert_eq!(r("vg0"), "Network n started (bridge vg0)\n");
        assert_eq!(r(""), "Network n started\n");
    }

    #[test]
    fn requests_travel_inside_the_control_envelope() {
        use crate::control::{decode, encode, Request, Response};
        let reqs = [
            NetRequest::List,
            NetRequest::Start {
                name: "default".into(),
            },
            NetRequest::Define {
                xml: "<network/>".into(),
                origin: "/tmp/n.xml".into(),
            },
            NetRequest::Dumpxml {
                name: "n".into(),
                inactive: true,
            },
            NetRequest::Update {
                name: "n".into(),
                command: "add".into(),
                section: "dns-host".into(),
                xml: "<host ip='10.0.0.9'><hostname>x</hostname></host>".into(),
            },
        ];
        for r in reqs {
            let line = encode(&Request::Net(r.clone()));
            assert_eq!(decode::<Request>(&line), Ok(Request::Net(r)), "{line}");
        }
        assert_eq!(
            encode(&Request::Net(NetRequest::Stop { name: "a".into() })),
            "{\"v\":1,\"cmd\":\"net\",\"net\":\"stop\",\"name\":\"a\"}\n"
        );
        // An old client's dumpxml without `inactive` still parses.
        assert_eq!(
            decode::<Request>("{\"v\":1,\"cmd\":\"net\",\"net\":\"dumpxml\",\"name\":\"a\"}"),
            Ok(Request::Net(NetRequest::Dumpxml {
                name: "a".into(),
                inactive: false
            }))
        );
        assert!(decode::<Request>("{\"v\":1,\"cmd\":\"net\",\"net\":\"explode\"}").is_err());
        assert!(decode::<Request>("{\"v\":1,\"cmd\":\"net\",\"net\":\"start\"}").is_err());
        let resp = Response::Net(NetResponse::Leases {
            network: "default".into(),
            leases: vec![LeaseRow {
                expiry: None,
                mac: "52:54:00:00:00:01".into(),
                protocol: "ipv4".into(),
                ip_address: "192.168.122.2/24".into(),
                hostname: None,
                client_id: "-".into(),
            }],
        });
        assert_eq!(decode::<Response>(&encode(&resp)), Ok(resp));
    }
}
