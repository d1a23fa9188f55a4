//! Guests' ports from the command line (issue 5), without the daemon: `virtgate port add|del|
//! list` and QEMU's hooks `virtgate qemu-ifup|qemu-ifdown`. The network's definition is read
//! from the store under `--state-dir` (the daemon's); the kernel work is `virtgate-vnet`'s
//! `ports` module over `virtgate-links`, straight through netlink.
//!
//! Every port carries the alias `virtgate:ROLE:NETWORK`, so `port list` finds it and the
//! daemon removes a stopped network's ports. docs/ports.md is the user's guide.
//!
//! Choices made here:
//! - `port add --json` prints one JSON object and nothing else (it holds the interface name),
//!   so its output goes straight into `jq`; without `--json` the name is the last line.
//! - The hooks learn the network from `--network`, else `VIRTGATE_NETWORK`, else the name they
//!   were called by: `virtgate-ifup@NETWORK` / `virtgate-ifdown@NETWORK` (a symbolic link to
//!   the binary, for QEMU's `script=`, which takes no arguments). QEMU tells its scripts only
//!   the tap's name; the guest's MAC and domain UUID for Open vSwitch come from
//!   `VIRTGATE_MAC` / `VIRTGATE_VM_UUID` when set.
//! - `port list` shows each link's own MAC: for a macvtap the guest's; for a tap the host side,
//!   libvirt's `fe:` form of the guest's (the kernel keeps nothing else).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use virtgate_config::libvirt::NetworkDef;
use virtgate_links::{IfName, Links, LinksOptions, Mac, OvsConfig, PortInfo, PortKind, UserRef};
use virtgate_vnet::ports::{self as vports, HookGuest, PortRequest};
use virtgate_vnet::{Store, VnetError};

use crate::error::DaemonError;
use crate::networks::DEFAULT_STATE_DIR;

/// The environment variable naming the network for `qemu-ifup`/`qemu-ifdown`.
pub const ENV_NETWORK: &str = "VIRTGATE_NETWORK";
/// The guest's MAC, for Open vSwitch's `attached-mac` (hooks only).
pub const ENV_MAC: &str = "VIRTGATE_MAC";
/// The domain's UUID, for Open vSwitch's `vm-id` (hooks only).
pub const ENV_VM_UUID: &str = "VIRTGATE_VM_UUID";
/// The state directory for the hooks, when `--state-dir` cannot be passed (QEMU's `script=`).
pub const ENV_STATE_DIR: &str = "VIRTGATE_STATE_DIR";

/// Names the binary answers to as a per-network hook: `virtgate-ifup@NETWORK`.
const WRAPPER_UP: &str = "virtgate-ifup@";
const WRAPPER_DOWN: &str = "virtgate-ifdown@";

/// The top-level commands of this module (flattened into `virtgate`'s).
#[derive(Debug, Subcommand)]
pub enum PortsCommand {
    /// Guests' ports on virtual networks: taps, Open vSwitch ports, macvtap (no daemon needed).
    Port {
        #[command(subcommand)]
        command: PortCommand,
    },
    /// QEMU's script=: attach the tap QEMU created to the network's bridge or Open vSwitch
    /// (network from --network, VIRTGATE_NETWORK, or the name virtgate-ifup@NETWORK).
    #[command(name = "qemu-ifup")]
    QemuIfup(HookArgs),
    /// QEMU's downscript=: take the tap out of its bridge or Open vSwitch again.
    #[command(name = "qemu-ifdown")]
    QemuIfdown(HookArgs),
}

#[derive(Debug, Subcommand)]
pub enum PortCommand {
    /// Create a guest's port on NETWORK; prints its interface name on the last line.
    Add(AddArgs),
    /// Remove a port virtgate created (Open vSwitch ports leave OVS first).
    Del(DelArgs),
    /// List virtgate's ports: interface, network, MAC, mode, owner.
    List(ListArgs),
}

/// Options every port command takes.
#[derive(Debug, Clone, Args)]
pub struct PortCommon {
    /// Where the network definitions are (the daemon's --state-dir).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Where macvtap character devices (tapN) are made and looked for.
    #[arg(long, value_name = "DIR", default_value = "/dev", hide = true)]
    pub dev_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The network (a name defined in the state directory).
    pub network: String,
    /// The guest's MAC (default: a random 52:54:00:xx:xx:xx).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// The interface name (default: the next free vnetN, or macvtapN).
    #[arg(long, value_name = "IFNAME")]
    pub name: Option<String>,
    /// The user who may open the port without privileges (QEMU's user), by name or uid.
    #[arg(long, value_name = "USER")]
    pub owner: Option<String>,
    /// The domain's UUID (Open vSwitch's vm-id external-id).
    #[arg(long, value_name = "UUID")]
    pub vm_uuid: Option<String>,
    /// Print JSON: interface, device, MAC, QEMU arguments and libvirt <interface> XML.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: PortCommon,
}

#[derive(Debug, Args)]
pub struct DelArgs {
    /// The port's interface name.
    pub ifname: String,
    #[command(flatten)]
    pub common: PortCommon,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this network's ports.
    pub network: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: PortCommon,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    /// The tap QEMU created (QEMU passes its name).
    pub ifname: String,
    /// The network (default: $VIRTGATE_NETWORK, or NETWORK of virtgate-ifup@NETWORK).
    #[arg(long, value_name = "NETWORK")]
    pub network: Option<String>,
    /// Where the network definitions are (default: $VIRTGATE_STATE_DIR, else the daemon's).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The command line as `virtgate` should read it: when the binary was called as
/// `virtgate-ifup@NETWORK IFNAME` (QEMU's `script=`), `virtgate qemu-ifup --network NETWORK
/// IFNAME`; otherwise unchanged.
pub fn wrapper_argv(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let called = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .map(str::to_string);
    let Some(called) = called else {
        return args;
    };
    for (prefix, command) in [(WRAPPER_UP, "qemu-ifup"), (WRAPPER_DOWN, "qemu-ifdown")] {
        if let Some(network) = called.strip_prefix(prefix).filter(|n| !n.is_empty()) {
            let rest = args.split_off(1.min(args.len()));
            let mut out: Vec<OsString> = vec![
                "virtgate".into(),
                command.into(),
                "--network".into(),
                network.into(),
            ];
            out.extend(rest);
            return out;
        }
    }
    args
}

/// Runs a command of this module.
pub fn run(cmd: PortsCommand) -> Result<(), DaemonError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    rt.block_on(async move {
        match cmd {
            PortsCommand::Port {
                command: PortCommand::Add(a),
            } => add(a).await,
            PortsCommand::Port {
                command: PortCommand::Del(a),
            } => del(a).await,
            PortsCommand::Port {
                command: PortCommand::List(a),
            } => list(a).await,
            PortsCommand::QemuIfup(a) => ifup(a).await,
            PortsCommand::QemuIfdown(a) => ifdown(a).await,
        }
    })
}

/// An error for the user, printed as `virtgate: MESSAGE`.
fn fail(message: String) -> DaemonError {
    // DaemonError has no variant of its own for ports; `Daemon` prints the text as it is.
    DaemonError::Control(crate::control::ControlError::Daemon(message))
}

fn vnet_error(e: VnetError, state_dir: &Path) -> DaemonError {
    match e {
        VnetError::Definition(c) => DaemonError::Config(c),
        VnetError::NotFound { name } => fail(format!(
            "no network named '{name}' is defined in {} (virtgate net define, or --state-dir)",
            state_dir.display()
        )),
        VnetError::NotRunning { network } => fail(format!(
            "network '{network}' is not running: its bridge is not up (virtgate net start \
             {network})"
        )),
        other => fail(other.to_string()),
    }
}

fn links(common: &PortCommon) -> Result<Links, DaemonError> {
    let opts = LinksOptions {
        dev_dir: common.dev_dir.clone(),
        ..LinksOptions::default()
    };
    Links::with_options(opts).map_err(|e| fail(e.to_string()))
}

fn load(state_dir: &Path, network: &str) -> Result<NetworkDef, DaemonError> {
    // Only read: a missing state directory is "not defined", not a directory to create.
    if !state_dir.join("networks").is_dir() {
        return Err(vnet_error(
            VnetError::NotFound {
                name: network.to_string(),
            },
            state_dir,
        ));
    }
    Store::open(state_dir)
        .and_then(|s| s.get(network))
        .map(|s| s.def)
        .map_err(|e| vnet_error(e, state_dir))
}

async fn add(a: AddArgs) -> Result<(), DaemonError> {
    let def = load(&a.common.state_dir, &a.network)?;
    let bad = |e: virtgate_links::LinksError| fail(e.to_string());
    let mac = match &a.mac {
        Some(m) => {
            let m: Mac = m.parse().map_err(bad)?;
            m.check_guest().map_err(bad)?;
            m
        }
        None => vports::random_guest_mac(),
    };
    let mut req = PortRequest::new(mac);
    req.name = a
        .name
        .as_deref()
        .map(IfName::new)
        .transpose()
        .map_err(bad)?;
    req.owner = a
        .owner
        .as_deref()
        .map(str::parse::<UserRef>)
        .transpose()
        .map_err(bad)?;
    req.vm_uuid.clone_from(&a.vm_uuid);
    let links = links(&a.common)?;
    let port = vports::add_port(&links, &def, &req)
        .await
        .map_err(|e| vnet_error(e, &a.common.state_dir))?;
    let usage = Usage::of(&port, mac);
    let added = Added {
        interface: port.name.clone(),
        network: def.name.clone(),
        kind: kind_word(&port.kind),
        mode: mode_word(&port.kind),
        attached_to: attached_to(&port.kind),
        device: usage.device.display().to_string(),
        mac: mac.to_string(),
        owner: port.owner,
        qemu_args: usage.qemu_args.clone(),
        qemu_command_line: usage.command_line(),
        libvirt_xml: usage.libvirt_xml(),
    };
    if a.json {
        println!("{}", serde_json::to_string(&added).unwrap_or_default());
    } else {
        print!("{}", added.text());
    }
    Ok(())
}

async fn del(a: DelArgs) -> Result<(), DaemonError> {
    let name = IfName::new(&a.ifname).map_err(|e| fail(e.to_string()))?;
    let links = links(&a.common)?;
    links
        .delete_port(&name)
        .await
        .map_err(|e| fail(e.to_string()))?;
    println!("port {name} deleted");
    Ok(())
}

async fn list(a: ListArgs) -> Result<(), DaemonError> {
    let links = links(&a.common)?;
    let ports = links.list_ports().await.map_err(|e| fail(e.to_string()))?;
    let users = Users::read();
    let rows: Vec<Listed> = ports
        .iter()
        .filter(|p| match &a.network {
            Some(n) => p.label.as_deref() == Some(n.as_str()),
            None => true,
        })
        .map(|p| Listed::of(p, &users))
        .collect();
    if a.json {
        println!("{}", serde_json::to_string(&rows).unwrap_or_default());
    } else {
        print!("{}", list_table(&rows));
    }
    Ok(())
}

fn hook_state_dir(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os(ENV_STATE_DIR).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

fn hook_guest() -> Result<HookGuest, DaemonError> {
    let mut g = HookGuest::default();
    if let Ok(m) = std::env::var(ENV_MAC) {
        g.mac = Some(
            m.parse()
                .map_err(|e: virtgate_links::LinksError| fail(format!("{ENV_MAC}: {e}")))?,
        );
    }
    g.vm_uuid = std::env::var(ENV_VM_UUID).ok().filter(|s| !s.is_empty());
    Ok(g)
}

async fn ifup(a: HookArgs) -> Result<(), DaemonError> {
    let network = a
        .network
        .or_else(|| std::env::var(ENV_NETWORK).ok().filter(|s| !s.is_empty()))
        .ok_or_else(|| {
            fail(format!(
                "qemu-ifup {}: which network? Set {ENV_NETWORK}, pass --network, or call \
                 through a link named {WRAPPER_UP}NETWORK",
                a.ifname
            ))
        })?;
    let state_dir = hook_state_dir(a.state_dir);
    let def = load(&state_dir, &network)?;
    let tap = IfName::new(&a.ifname).map_err(|e| fail(e.to_string()))?;
    vports::attach_tap(&def, &tap, &hook_guest()?, &OvsConfig::default())
        .await
        .map_err(|e| vnet_error(e, &state_dir))
}

async fn ifdown(a: HookArgs) -> Result<(), DaemonError> {
    // The tap's mark says whether it is on a bridge or in Open vSwitch: the network is not
    // needed (it is accepted, for symmetry with qemu-ifup).
    let tap = IfName::new(&a.ifname).map_err(|e| fail(e.to_string()))?;
    vports::detach_tap(&tap, &OvsConfig::default())
        .await
        .map_err(|e| vnet_error(e, &hook_state_dir(a.state_dir)))
}

// ---------------------------------------------------------------- what a port is used with

/// How QEMU and libvirt use a port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Usage {
    interface: String,
    mac: Mac,
    /// What QEMU opens: the tun clone device for a tap, `/dev/tapN` for a macvtap.
    device: PathBuf,
    qemu_args: Vec<String>,
    /// For a macvtap: the descriptor QEMU is given (`fd=3`) and the device opened on it.
    fd: Option<(u32, PathBuf)>,
}

/// The descriptor number QEMU gets the macvtap device on (`3<>/dev/tapN` in a shell).
const MACVTAP_FD: u32 = 3;

impl Usage {
    fn of(port: &PortInfo, mac: Mac) -> Usage {
        let device_arg = format!("virtio-net-pci,netdev=n0,mac={mac}");
        match port.device() {
            Some(dev) => Usage {
                interface: port.name.clone(),
                mac,
                device: dev.to_path_buf(),
                qemu_args: vec![
                    "-netdev".into(),
                    format!("tap,id=n0,fd={MACVTAP_FD}"),
                    "-device".into(),
                    device_arg,
                ],
                fd: Some((MACVTAP_FD, dev.to_path_buf())),
            },
            None => Usage {
                interface: port.name.clone(),
                mac,
                device: PathBuf::from("/dev/net/tun"),
                qemu_args: vec![
                    "-netdev".into(),
                    format!("tap,id=n0,ifname={},script=no,downscript=no", port.name),
                    "-device".into(),
                    device_arg,
                ],
                fd: None,
            },
        }
    }

    /// The arguments as a shell would take them, with the macvtap's redirection.
    fn command_line(&self) -> String {
        let mut s = self.qemu_args.join(" ");
        if let Some((fd, dev)) = &self.fd {
            let _ = write!(s, " {fd}<>{}", dev.display());
        }
        s
    }

    /// libvirt's `<interface type='ethernet'>` with `<target managed='no'>`: libvirt uses the
    /// existing tap (or macvtap, opening its /dev/tapN) as it is and never removes it.
    fn libvirt_xml(&self) -> String {
        format!(
            "<interface type='ethernet'>\n  <mac address='{}'/>\n  <target dev='{}' \
             managed='no'/>\n  <model type='virtio'/>\n</interface>\n",
            self.mac,
            xml_escape(&self.interface)
        )
    }
}

/// Interface names may hold `'`, `&`, `<`, `>` and `"` (the kernel forbids only `/`, `:` and
/// blanks): escaped for an XML attribute.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn kind_word(k: &PortKind) -> String {
    match k {
        PortKind::Tap { .. } => "tap",
        PortKind::Ovs { .. } => "ovs",
        PortKind::Macvtap { .. } => "macvtap",
        PortKind::Shim { .. } => "shim",
    }
    .into()
}

/// The MODE column: how the port forwards.
fn mode_word(k: &PortKind) -> String {
    match k {
        PortKind::Tap { .. } => "tap".into(),
        PortKind::Ovs { .. } => "openvswitch".into(),
        PortKind::Macvtap { mode, .. } => match mode {
            Some(m) => format!("macvtap-{m}"),
            None => "macvtap".into(),
        },
        PortKind::Shim { .. } => "shim".into(),
    }
}

/// The bridge or parent the port sits on, as the kernel (or OVS) says now.
fn attached_to(k: &PortKind) -> Option<String> {
    match k {
        PortKind::Tap { bridge } | PortKind::Ovs { bridge } => bridge.clone(),
        PortKind::Macvtap { parent, .. } | PortKind::Shim { parent } => parent.clone(),
    }
}

/// What `port add --json` prints.
#[derive(Debug, Serialize)]
struct Added {
    interface: String,
    network: String,
    kind: String,
    mode: String,
    attached_to: Option<String>,
    device: String,
    mac: String,
    owner: Option<u32>,
    qemu_args: Vec<String>,
    qemu_command_line: String,
    libvirt_xml: String,
}

impl Added {
    fn text(&self) -> String {
        let mut s = String::new();
        let on = self.attached_to.as_deref().unwrap_or("-");
        let _ = writeln!(
            s,
            "network {}: {} port on {on}, guest MAC {}, device {}",
            self.network, self.mode, self.mac, self.device
        );
        let _ = writeln!(s, "qemu: {}", self.qemu_command_line);
        let _ = writeln!(s, "{}", self.interface);
        s
    }
}

/// One row of `port list`.
#[derive(Debug, Serialize)]
struct Listed {
    interface: String,
    network: Option<String>,
    mac: Option<String>,
    kind: String,
    mode: String,
    attached_to: Option<String>,
    owner: Option<u32>,
    owner_name: Option<String>,
    device: Option<String>,
    up: bool,
}

impl Listed {
    fn of(p: &PortInfo, users: &Users) -> Listed {
        Listed {
            interface: p.name.clone(),
            network: p.label.clone(),
            mac: p.mac.map(|m| m.to_string()),
            kind: kind_word(&p.kind),
            mode: mode_word(&p.kind),
            attached_to: attached_to(&p.kind),
            owner: p.owner,
            owner_name: p.owner.and_then(|u| users.name(u)),
            device: p.device().map(|d| d.display().to_string()),
            up: p.up,
        }
    }
}

fn list_table(rows: &[Listed]) -> String {
    let head = ["INTERFACE", "NETWORK", "MAC", "MODE", "ON", "OWNER"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
            [
                r.interface.clone(),
                dash(&r.network),
                dash(&r.mac),
                r.mode.clone(),
                dash(&r.attached_to),
                match (&r.owner_name, r.owner) {
                    (Some(n), _) => n.clone(),
                    (None, Some(u)) => u.to_string(),
                    (None, None) => "-".into(),
                },
            ]
        })
        .collect();
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &cells {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[String]| {
        let mut l = String::new();
        for (c, w) in cols.iter().zip(&width) {
            let _ = write!(l, "{c:<w$}  ");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&head.map(str::to_string));
    for r in &cells {
        line(r);
    }
    out
}

/// User names by uid, from /etc/passwd (a uid without a line there is shown as a number).
struct Users(Vec<(u32, String)>);

impl Users {
    fn read() -> Users {
        Users::parse(&std::fs::read_to_string("/etc/passwd").unwrap_or_default())
    }

    fn parse(text: &str) -> Users {
        Users(
            text.lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?;
                    let uid = f.nth(1)?.parse().ok()?;
                    (!name.is_empty()).then(|| (uid, name.to_string()))
                })
                .collect(),
        )
    }

    fn name(&self, uid: u32) -> Option<String> {
        self.0
            .iter()
            .find(|(u, _)| *u == uid)
            .map(|(_, n)| n.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn tap_port(name: &str) -> PortInfo {
        PortInfo {
            name: name.into(),
            ifindex: 7,
            kind: PortKind::Tap {
                bridge: Some("virbr0".into()),
            },
            mac: Some(Mac([0xfe, 0x54, 0, 1, 2, 3])),
            owner: Some(65534),
            group: None,
            label: Some("default".into()),
            up: true,
        }
    }

    fn macvtap_port() -> PortInfo {
        PortInfo {
            name: "macvtap0".into(),
            ifindex: 12,
            kind: PortKind::Macvtap {
                mode: Some(virtgate_links::MacvtapMode::Bridge),
                parent: Some("eth1".into()),
                device: PathBuf::from("/dev/tap12"),
            },
            mac: Some(Mac([0x52, 0x54, 0, 1, 2, 3])),
            owner: None,
            group: None,
            label: Some("direct".into()),
            up: true,
        }
    }

    const MAC: Mac = Mac([0x52, 0x54, 0, 1, 2, 3]);

    #[test]
    fn tap_ports_are_opened_by_name() {
        let u = Usage::of(&tap_port("vnet0"), MAC);
        assert_eq!(u.device, PathBuf::from("/dev/net/tun"));
        assert_eq!(
            u.command_line(),
            "-netdev tap,id=n0,ifname=vnet0,script=no,downscript=no \
             -device virtio-net-pci,netdev=n0,mac=52:54:00:01:02:03"
        );
        assert_eq!(
            u.libvirt_xml(),
            "<interface type='ethernet'>\n  <mac address='52:54:00:01:02:03'/>\n  \
             <target dev='vnet0' managed='no'/>\n  <model type='virtio'/>\n</interface>\n"
        );
    }

    #[test]
    fn macvtap_ports_are_opened_on_a_descriptor() {
        let u = Usage::of(&macvtap_port(), MAC);
        assert_eq!(u.device, PathBuf::from("/dev/tap12"));
        assert_eq!(
            u.qemu_args,
            vec![
                "-netdev",
                "tap,id=n0,fd=3",
                "-device",
                "virtio-net-pci,netdev=n0,mac=52:54:00:01:02:03"
            ]
        );
        assert!(
            u.command_line().ends_with(" 3<>/dev/tap12"),
            "{}",
            u.command_line()
        );
        assert!(u
            .libvirt_xml()
            .contains("<target dev='macvtap0' managed='no'/>"));
    }

    #[test]
    fn odd_interface_names_are_escaped_in_xml() {
        let u = Usage::of(&tap_port("a'b&<"), MAC);
        assert!(
            u.libvirt_xml().contains("dev='a&apos;b&amp;&lt;'"),
            "{}",
            u.libvirt_xml()
        );
    }

    #[test]
    fn add_prints_the_name_last() {
        let port = tap_port("vnet3");
        let u = Usage::of(&port, MAC);
        let a = Added {
            interface: port.name.clone(),
            network: "default".into(),
            kind: kind_word(&port.kind),
            mode: mode_word(&port.kind),
            attached_to: attached_to(&port.kind),
            device: u.device.display().to_string(),
            mac: MAC.to_string(),
            owner: port.owner,
            qemu_args: u.qemu_args.clone(),
            qemu_command_line: u.command_line(),
            libvirt_xml: u.libvirt_xml(),
        };
        let text = a.text();
        assert_eq!(text.lines().last(), Some("vnet3"));
        assert!(
            text.starts_with("network default: tap port on virbr0, guest MAC 52:54:00:01:02:03")
        );
        let v: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(v["interface"], "vnet3");
        assert_eq!(v["device"], "/dev/net/tun");
        assert_eq!(v["owner"], 65534);
        assert_eq!(
            v["qemu_args"][1],
            "tap,id=n0,ifname=vnet3,script=no,downscript=no"
        );
    }

    #[test]
    fn list_rows_and_table() {
        let users =
            Users::parse("root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nbroken\n");
        assert_eq!(users.name(65534).as_deref(), Some("nobody"));
        assert_eq!(users.name(1), None);
        let rows = vec![
            Listed::of(&tap_port("vnet0"), &users),
            Listed::of(&macvtap_port(), &users),
        ];
        assert_eq!(rows[1].device.as_deref(), Some("/dev/tap12"));
        let t = list_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("INTERFACE  NETWORK"), "{t}");
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "vnet0",
                "default",
                "fe:54:00:01:02:03",
                "tap",
                "virbr0",
                "nobody"
            ]
        );
        let cols: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "macvtap0",
                "direct",
                "52:54:00:01:02:03",
                "macvtap-bridge",
                "eth1",
                "-"
            ]
        );
    }

    #[test]
    fn wrapper_names_become_hook_commands() {
        let argv = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            wrapper_argv(argv(&["/usr/local/bin/virtgate-ifup@lan", "tap0"])),
            argv(&["virtgate", "qemu-ifup", "--network", "lan", "tap0"])
        );
        assert_eq!(
            wrapper_argv(argv(&["virtgate-ifdown@ovs-net", "tap1"])),
            argv(&["virtgate", "qemu-ifdown", "--network", "ovs-net", "tap1"])
        );
        // The binary under its own name, or a wrapper without a network: unchanged.
        for same in [
            argv(&["virtgate", "port", "list"]),
            argv(&["virtgate-ifup@", "tap0"]),
            argv(&[]),
        ] {
            assert_eq!(wrapper_argv(same.clone()), same);
        }
        let c = Cli::try_parse_from(wrapper_argv(argv(&["virtgate-ifup@lan", "tap0"]))).unwrap();
        let Command::Ports(PortsCommand::QemuIfup(h)) = c.command else {
            panic!("not qemu-ifup")
        };
        assert_eq!(
            (h.network.as_deref(), h.ifname.as_str()),
            (Some("lan"), "tap0")
        );
    }

    #[test]
    fn port_commands_parse() {
        let c = Cli::try_parse_from([
            "virtgate",
            "port",
            "add",
            "default",
            "--mac",
            "52:54:00:aa:bb:cc",
            "--owner",
            "nobody",
            "--json",
            "--state-dir",
            "/tmp/s",
        ])
        .unwrap();
        let Command::Ports(PortsCommand::Port {
            command: PortCommand::Add(a),
        }) = c.command
        else {
            panic!("not port add")
        };
        assert_eq!(a.network, "default");
        assert_eq!(a.owner.as_deref(), Some("nobody"));
        assert!(a.json);
        assert_eq!(a.common.state_dir, PathBuf::from("/tmp/s"));
        assert_eq!(a.common.dev_dir, PathBuf::from("/dev"));
        let c = Cli::try_parse_from(["virtgate", "port", "list"]).unwrap();
        let Command::Ports(PortsCommand::Port {
            command: PortCommand::List(l),
        }) = c.command
        else {
            panic!("not port list")
        };
        assert_eq!(l.network, None);
        assert_eq!(l.common.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert!(Cli::try_parse_from(["virtgate", "port", "del"]).is_err());
        assert!(Cli::try_parse_from(["virtgate", "qemu-ifdown", "tap0"]).is_ok());
    }
}
