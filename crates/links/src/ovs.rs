//! Open vSwitch ports through `ovs-vsctl(8)`, with the command lines libvirt uses
//! (src/util/virnetdevopenvswitch.c): a `--may-exist add-port` and four `set Interface` for the
//! external-ids OVS integrations read (attached-mac, iface-id, vm-id, iface-status), and
//! `--if-exists del-port` to remove; `--timeout=5` on each, as libvirt's default.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::LinksError;
use crate::types::{IfName, Mac};

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
    /// The guest's MAC (not the host side's).
    pub attached_mac: Mac,
    /// `<virtualport><parameters interfaceid=.../>`: the OVN/Neutron logical port id.
    pub iface_id: String,
    /// The domain's UUID; omitted when there is no domain (libvirt always has one).
    pub vm_id: Option<String>,
}

/// Arguments (after the program) for adding `port` to `bridge`.
pub(crate) fn add_port_args(
    cfg: &OvsConfig,
    bridge: &IfName,
    port: &str,
    ids: &OvsExternalIds,
) -> Vec<String> {
    let mut a = base_args(cfg);
    a.extend(
        ["--", "--may-exist", "add-port", bridge.as_str(), port]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut set = |kv: String| {
        a.extend(
            ["--", "set", "Interface", port]
                .iter()
                .map(|s| s.to_string()),
        );
        a.push(kv);
    };
    // Values in double quotes, as libvirt writes them: ovs-vsctl reads them as OVSDB strings.
    set(format!(
        "external-ids:attached-mac=\"{}\"",
        ids.attached_mac
    ));
    set(format!("external-ids:iface-id=\"{}\"", ids.iface_id));
    if let Some(vm) = &ids.vm_id {
        set(format!("external-ids:vm-id=\"{vm}\""));
    }
    set("external-ids:iface-status=active".to_string());
    a
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
    let shown = args.join(" ");
    let fail = |reason: String| LinksError::Ovs {
        args: shown.clone(),
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
        return Err(fail(format!("{}: {err}", out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> OvsExternalIds {
        OvsExternalIds {
            attached_mac: Mac::parse("52:54:00:93:05:25").unwrap(),
            iface_id: "668033d2-06a4-4aaa-aca5-30cde245e477".into(),
            vm_id: Some("c7a5fdbd-cdaf-9455-926a-d65c16db1809".into()),
        }
    }

    #[test]
    fn add_port_is_libvirts_command_line() {
        let cfg = OvsConfig::default();
        let br = IfName::new("ovsbr0").unwrap();
        let got = add_port_args(&cfg, &br, "vnet0", &ids()).join(" ");
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
        let br = IfName::new("br").unwrap();
        let mut i = ids();
        i.vm_id = None;
        let a = add_port_args(&cfg, &br, "t0", &i);
        assert_eq!(a[0], "--db=unix:/tmp/x.sock");
        assert_eq!(a[1], "--timeout=9");
        assert!(!a.iter().any(|s| s.contains("vm-id")));
        assert_eq!(a.iter().filter(|s| *s == "set").count(), 3);
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
}
