//! Open vSwitch ports through `ovs-vsctl(8)`, with the command lines libvirt uses
//! (src/util/virnetdevopenvswitch.c): a `--may-exist add-port` and four `set Interface` for the
//! external-ids OVS integrations read (attached-mac, iface-id, vm-id, iface-status), and
//! `--if-exists del-port` to remove; `--timeout=5` on each, as libvirt's default.
//!
//! This module owns those command lines: [`Links`](crate::Links) uses them for the ports it
//! creates, and `virtgate-vnet` through [`add_port`], [`del_port`] and [`bridge_exists`] for
//! QEMU's taps (`qemu-ifup`/`qemu-ifdown`) and the network's bridge check.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::LinksError;
use crate::types::Mac;

/// How to reach `ovs-vsctl`.
#[derive(Debug, Clone)]
pub struct OvsConfig {
    /// The program (`ovs-vsctl` from PATH by default).
    pub vsctl: PathBuf,
    /// Arguments placed before everything else, e.g. `--db=unix:/run/x/db.sock`.
    pub extra_args: Vec<String>,
    /// `--timeout=N` seconds; libvirt's default is 5.
    pub timeout_secs: u32,
}

impl Default for OvsConfig {
    fn default() -> Self {
        OvsConfig {
            vsctl: PathBuf::from("ovs-vsctl"),
            extra_args: Vec::new(),
            timeout_secs: 5,
        }
    }
}

/// The external-ids libvirt puts on a guest's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvsExternalIds {
    /// The guest's MAC (not the host side's); omitted when not known (QEMU does not tell its
    /// `script=` hook).
    pub attached_mac: Option<Mac>,
    /// `<virtualport><parameters interfaceid=.../>`: the OVN/Neutron logical port id.
    pub iface_id: String,
    /// The domain's UUID; omitted when there is no domain (libvirt always has one).
    pub vm_id: Option<String>,
}

/// Arguments (after the program) for adding `port` to `bridge`: `--may-exist add-port`, then
/// each external-id in its own `set Interface` (`attached-mac` and `vm-id` only when known).
pub fn add_port_args(
    cfg: &OvsConfig,
    bridge: &str,
    port: &str,
    ids: &OvsExternalIds,
) -> Vec<String> {
    let mut a = base_args(cfg);
    a.extend(
        ["--", "--may-exist", "add-port", bridge, port]
            .iter()
            .map(|s| s.to_string()),
    );
    // Values in double quotes, as libvirt writes them: ovs-vsctl reads them as OVSDB strings.
    let mut kvs = Vec::with_capacity(4);
    if let Some(mac) = ids.attached_mac {
        kvs.push(format!("external-ids:attached-mac=\"{mac}\""));
    }
    kvs.push(format!("external-ids:iface-id=\"{}\"", ids.iface_id));
    if let Some(vm) = &ids.vm_id {
        kvs.push(format!("external-ids:vm-id=\"{vm}\""));
    }
    kvs.push("external-ids:iface-status=active".to_string());
    for kv in kvs {
        a.extend(
            ["--", "set", "Interface", port]
                .iter()
                .map(|s| s.to_string()),
        );
        a.push(kv);
    }
    a
}

/// Adds `port` (an existing interface) to the Open vSwitch `bridge` with libvirt's
/// external-ids.
pub async fn add_port(
    cfg: &OvsConfig,
    bridge: &str,
    port: &str,
    ids: &OvsExternalIds,
) -> Result<(), LinksError> {
    run(cfg, &add_port_args(cfg, bridge, port, ids))
        .await
        .map(drop)
}

/// Removes `port` from whatever bridge holds it; no error when no bridge does.
pub async fn del_port(cfg: &OvsConfig, port: &str) -> Result<(), LinksError> {
    run(cfg, &del_port_args(cfg, port)).await.map(drop)
}

/// Whether Open vSwitch has `bridge` (`br-exists`: status 2 when it does not).
pub async fn bridge_exists(cfg: &OvsConfig, bridge: &str) -> Result<bool, LinksError> {
    let mut args = base_args(cfg);
    args.extend(["br-exists".to_string(), bridge.to_string()]);
    match output(cfg, &args).await? {
        Ok(_) => Ok(true),
        Err((Some(2), _)) => Ok(false),
        Err((_, reason)) => Err(LinksError::Ovs {
            args: args.join(" "),
            reason,
        }),
    }
}

/// Arguments for removing `port` from whatever bridge holds it.
pub(crate) fn del_port_args(cfg: &OvsConfig, port: &str) -> Vec<String> {
    let mut a = base_args(cfg);
    a.extend(
        ["--", "--if-exists", "del-port", port]
            .iter()
            .map(|s| s.to_string()),
    );
    a
}

/// Arguments asking which bridge holds `port`.
pub(crate) fn port_to_br_args(cfg: &OvsConfig, port: &str) -> Vec<String> {
    let mut a = base_args(cfg);
    a.extend(["port-to-br", port].iter().map(|s| s.to_string()));
    a
}

fn base_args(cfg: &OvsConfig) -> Vec<String> {
    let mut a = cfg.extra_args.clone();
    a.push(format!("--timeout={}", cfg.timeout_secs));
    a
}

/// Runs ovs-vsctl with `args`; stdout on success.
pub(crate) async fn run(cfg: &OvsConfig, args: &[String]) -> Result<String, LinksError> {
    output(cfg, args)
        .await?
        .map_err(|(_, reason)| LinksError::Ovs {
            args: args.join(" "),
            reason,
        })
}

/// Runs ovs-vsctl with `args`: `Ok(stdout)`, or the exit code and a reason (with stderr) when
/// it ran and failed; the outer error when it could not run or did not answer.
async fn output(
    cfg: &OvsConfig,
    args: &[String],
) -> Result<Result<String, (Option<i32>, String)>, LinksError> {
    let fail = |reason: String| LinksError::Ovs {
        args: args.join(" "),
        reason,
    };
    let child = tokio::process::Command::new(&cfg.vsctl)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    // ovs-vsctl honours --timeout itself; this bound only covers a program that hangs anyway.
    let limit = Duration::from_secs(u64::from(cfg.timeout_secs) + 5);
    let out = tokio::time::timeout(limit, child)
        .await
        .map_err(|_| fail(format!("no answer within {} s", limit.as_secs())))?
        .map_err(|e| fail(format!("cannot run {}: {e}", cfg.vsctl.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Ok(Err((out.status.code(), format!("{}: {err}", out.status))));
    }
    Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> OvsExternalIds {
        OvsExternalIds {
            attached_mac: Some(Mac::parse("52:54:00:93:05:25").unwrap()),
            iface_id: "668033d2-06a4-4aaa-aca5-30cde245e477".into(),
            vm_id: Some("c7a5fdbd-cdaf-9455-926a-d65c16db1809".into()),
        }
    }

    #[test]
    fn add_port_is_libvirts_command_line() {
        let cfg = OvsConfig::default();
        let got = add_port_args(&cfg, "ovsbr0", "vnet0", &ids()).join(" ");
        assert_eq!(
            got,
            "--timeout=5 -- --may-exist add-port ovsbr0 vnet0 \
             -- set Interface vnet0 external-ids:attached-mac=\"52:54:00:93:05:25\" \
             -- set Interface vnet0 external-ids:iface-id=\"668033d2-06a4-4aaa-aca5-30cde245e477\" \
             -- set Interface vnet0 external-ids:vm-id=\"c7a5fdbd-cdaf-9455-926a-d65c16db1809\" \
             -- set Interface vnet0 external-ids:iface-status=active"
        );
    }

    #[test]
    fn no_vm_id_when_there_is_no_domain_and_extra_args_first() {
        let cfg = OvsConfig {
            extra_args: vec!["--db=unix:/tmp/x.sock".into()],
            timeout_secs: 9,
            ..OvsConfig::default()
        };
        let mut i = ids();
        i.vm_id = None;
        let a = add_port_args(&cfg, "br", "t0", &i);
        assert_eq!(a[0], "--db=unix:/tmp/x.sock");
        assert_eq!(a[1], "--timeout=9");
        assert!(!a.iter().any(|s| s.contains("vm-id")));
        assert_eq!(a.iter().filter(|s| *s == "set").count(), 3);
    }

    #[test]
    fn no_attached_mac_when_the_guest_mac_is_unknown() {
        let mut i = ids();
        i.attached_mac = None;
        i.vm_id = None;
        let a = add_port_args(&OvsConfig::default(), "b", "t", &i).join(" ");
        assert_eq!(
            a,
            "--timeout=5 -- --may-exist add-port b t \
             -- set Interface t external-ids:iface-id=\"668033d2-06a4-4aaa-aca5-30cde245e477\" \
             -- set Interface t external-ids:iface-status=active"
        );
    }

    #[test]
    fn del_port_is_if_exists() {
        let a = del_port_args(&OvsConfig::default(), "vnet3").join(" ");
        assert_eq!(a, "--timeout=5 -- --if-exists del-port vnet3");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_vsctl_reports_its_stderr() {
        let cfg = OvsConfig {
            vsctl: PathBuf::from("sh"),
            extra_args: vec!["-c".into(), "echo 'no bridge named x' >&2; exit 1".into()],
            timeout_secs: 1,
        };
        let e = run(&cfg, &base_args(&cfg)).await.unwrap_err();
        assert!(e.to_string().contains("no bridge named x"), "{e}");
        let missing = OvsConfig {
            vsctl: PathBuf::from("/nonexistent/ovs-vsctl"),
            ..OvsConfig::default()
        };
        let e = run(&missing, &[]).await.unwrap_err();
        assert!(e.to_string().contains("cannot run"), "{e}");
    }

    /// `sh -c SCRIPT --timeout=1 br-exists BR`: the script's exit status is br-exists' answer.
    fn sh(script: &str) -> OvsConfig {
        OvsConfig {
            vsctl: PathBuf::from("sh"),
            extra_args: vec!["-c".into(), script.into()],
            timeout_secs: 1,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bridge_exists_reads_br_exists_status() {
        assert!(bridge_exists(&sh("exit 0"), "b").await.unwrap());
        assert!(!bridge_exists(&sh("exit 2"), "b").await.unwrap());
        let e = bridge_exists(&sh("echo 'db down' >&2; exit 1"), "b")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("db down"), "{e}");
    }
}
