//! Open vSwitch ports (root): Debian's openvswitch-switch, started by the test itself inside a
//! throwaway namespace with a private database and run directory, bridge on the userspace
//! datapath (`datapath_type=netdev`: this kernel has no openvswitch module). Two guests' taps
//! carry libvirt's external-ids and pass traffic; `del-port` removes them.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use virtgate_links::*;
use virtgate_testnet::{require_root, Netns};

const MAC_A: [u8; 6] = [0x52, 0x54, 0x00, 0x0b, 0x00, 0x01];
const MAC_B: [u8; 6] = [0x52, 0x54, 0x00, 0x0b, 0x00, 0x02];
const IFACE_A: &str = "668033d2-06a4-4aaa-aca5-30cde245e477";
const VM_ID: &str = "c7a5fdbd-cdaf-9455-926a-d65c16db1809";

fn program(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn ovs_installed() -> bool {
    [
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "ovsdb-tool",
        "ovs-appctl",
    ]
    .iter()
    .all(|p| program(p).is_absolute())
        && Path::new("/usr/share/openvswitch/vswitch.ovsschema").exists()
}

/// Installs openvswitch-switch when it is missing. While it installs, a policy-rc.d (when the
/// machine has none) keeps the package from starting its daemons in the root namespace.
fn install_ovs() -> Result<(), String> {
    if ovs_installed() {
        return Ok(());
    }
    eprintln!("ovs test: installing openvswitch-switch");
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let made_policy = !policy.exists()
        && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok()
        && Command::new("chmod")
            .args(["755", "/usr/sbin/policy-rc.d"])
            .status()
            .is_ok();
    let install = || {
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "openvswitch-switch",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
    };
    let mut out = install();
    if !out.as_ref().is_ok_and(|o| o.status.success()) {
        let _ = Command::new("apt-get").args(["update", "-qq"]).output();
        out = install();
    }
    if made_policy {
        let _ = std::fs::remove_file(policy);
    }
    match out {
        Ok(o) if o.status.success() && ovs_installed() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// ovsdb-server and ovs-vswitchd of this test, stopped on drop.
struct OvsDaemons {
    dir: PathBuf,
}

impl OvsDaemons {
    fn start(dir: &Path) -> OvsDaemons {
        let d = dir.display().to_string();
        let env = |c: &mut Command| {
            for k in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
                c.env(k, &d);
            }
        };
        let run = |prog: &str, args: Vec<String>| {
            let mut c = Command::new(program(prog));
            c.args(&args);
            env(&mut c);
            let out = c.output().expect("spawn ovs program");
            assert!(
                out.status.success(),
                "{prog} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(
            "ovsdb-tool",
            vec![
                "create".into(),
                format!("{d}/conf.db"),
                "/usr/share/openvswitch/vswitch.ovsschema".into(),
            ],
        );
        // No --monitor: one process per daemon, nothing to restart them behind our back.
        run(
            "ovsdb-server",
            vec![
                format!("{d}/conf.db"),
                format!("--remote=punix:{d}/db.sock"),
                format!("--pidfile={d}/ovsdb-server.pid"),
                format!("--unixctl={d}/ovsdb-server.ctl"),
                format!("--log-file={d}/ovsdb-server.log"),
                "--detach".into(),
                "--no-chdir".into(),
            ],
        );
        let daemons = OvsDaemons {
            dir: dir.to_path_buf(),
        };
        run(
            "ovs-vsctl",
            vec![
                format!("--db=unix:{d}/db.sock"),
                "--no-wait".into(),
                "init".into(),
            ],
        );
        run(
            "ovs-vswitchd",
            vec![
                format!("unix:{d}/db.sock"),
                format!("--pidfile={d}/ovs-vswitchd.pid"),
                format!("--unixctl={d}/ovs-vswitchd.ctl"),
                format!("--log-file={d}/ovs-vswitchd.log"),
                "--detach".into(),
                "--no-chdir".into(),
            ],
        );
        daemons
    }

    fn db_arg(&self) -> String {
        format!("--db=unix:{}/db.sock", self.dir.display())
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let out = Command::new(program("ovs-vsctl"))
            .arg(self.db_arg())
            .arg("--timeout=10")
            .args(args)
            .output()
            .expect("ovs-vsctl");
        assert!(
            out.status.success(),
            "ovs-vsctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn appctl(&self, args: &[&str]) -> String {
        let out = Command::new(program("ovs-appctl"))
            .arg("-t")
            .arg(self.dir.join("ovs-vswitchd.ctl"))
            .args(args)
            .output()
            .expect("ovs-appctl");
        assert!(
            out.status.success(),
            "ovs-appctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pids(&self) -> Vec<String> {
        ["ovs-vswitchd.pid", "ovsdb-server.pid"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.join(f)).ok())
            .map(|s| s.trim().to_string())
            .collect()
    }

    fn stop(&self) {
        let pids = self.pids();
        for ctl in ["ovs-vswitchd.ctl", "ovsdb-server.ctl"] {
            let _ = Command::new(program("ovs-appctl"))
                .arg("-t")
                .arg(self.dir.join(ctl))
                .arg("exit")
                .output();
        }
        let end = Instant::now() + Duration::from_secs(5);
        while pids.iter().any(|p| Path::new("/proc").join(p).exists()) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in &pids {
            if Path::new("/proc").join(p).exists() {
                let _ = Command::new("kill").args(["-9", p]).status();
            }
        }
    }
}

impl Drop for OvsDaemons {
    fn drop(&mut self) {
        self.stop();
    }
}

fn port_spec(mac: [u8; 6], iface_id: Option<&str>) -> OvsPortSpec {
    let mut tap = TapSpec::new(Mac(mac));
    tap.owner = Some("nobody".parse().unwrap());
    tap.label = Some(Label::new("ovs-net").unwrap());
    OvsPortSpec {
        bridge: IfName::new("obr").unwrap(),
        tap,
        iface_id: iface_id.map(str::to_string),
        vm_id: Some(VM_ID.to_string()),
    }
}

#[test]
fn ovs_ports_carry_libvirt_external_ids_and_pass_traffic() {
    const T: &str = "ovs_ports_carry_libvirt_external_ids_and_pass_traffic";
    if is_child(T) {
        let dir = ScratchDir::new("ovs");
        let ovs = OvsDaemons::start(&dir.0);
        ovs.vsctl(&[
            "add-br",
            "obr",
            "--",
            "set",
            "Bridge",
            "obr",
            "datapath_type=netdev",
        ]);
        let opts = LinksOptions {
            ovs: OvsConfig {
                extra_args: vec![ovs.db_arg()],
                ..OvsConfig::default()
            },
            ..LinksOptions::default()
        };
        runtime().block_on(async {
            let links = Links::with_options(opts).unwrap();
            let pa = links
                .create_ovs_port(&port_spec(MAC_A, Some(IFACE_A)))
                .await
                .unwrap();
            let pb = links
                .create_ovs_port(&port_spec(MAC_B, None))
                .await
                .unwrap();
            for p in [&pa, &pb] {
                assert_eq!(
                    p.kind,
                    PortKind::Ovs {
                        bridge: Some("obr".into())
                    }
                );
                assert_eq!(p.owner, Some(uid_of("nobody")));
                assert_eq!(p.label.as_deref(), Some("ovs-net"));
                assert_eq!(ovs.vsctl(&["port-to-br", &p.name]), "obr");
                assert_eq!(ovs.vsctl(&["get", "Interface", &p.name, "type"]), "\"\"");
            }
            let get = |port: &str, key: &str| {
                ovs.vsctl(&["get", "Interface", port, &format!("external_ids:{key}")])
                    .trim_matches('"')
                    .to_string()
            };
            assert_eq!(get(&pa.name, "attached-mac"), "52:54:00:0b:00:01");
            assert_eq!(get(&pa.name, "iface-id"), IFACE_A);
            assert_eq!(get(&pa.name, "vm-id"), VM_ID);
            assert_eq!(get(&pa.name, "iface-status"), "active");
            assert_eq!(get(&pb.name, "attached-mac"), "52:54:00:0b:00:02");
            // No interfaceid given: a fresh UUID, as libvirt generates.
            let generated = get(&pb.name, "iface-id");
            check_uuid(&generated).unwrap();
            assert_ne!(generated, IFACE_A);
            // The tap's own host-side MAC is libvirt's fe: form; OVS knows the guest's.
            assert_eq!(pa.mac, Some(Mac(MAC_A).host_side()));

            // Two guests on the userspace datapath reach each other.
            let mut ga = Guest::new(
                open_tap(&pa.name).unwrap(),
                MAC_A,
                Ipv4Addr::new(10, 66, 0, 1),
            );
            let gb = Guest::new(
                open_tap(&pb.name).unwrap(),
                MAC_B,
                Ipv4Addr::new(10, 66, 0, 2),
            );
            let rb = gb.serve();
            ga.ping(Ipv4Addr::new(10, 66, 0, 2), Duration::from_secs(10))
                .expect("guests on one OVS bridge reach each other");
            drop(rb);
            drop(ga);
            // And it was OVS that switched them: its MAC table learned both guests.
            let fdb = ovs.appctl(&["fdb/show", "obr"]);
            for mac in ["52:54:00:0b:00:01", "52:54:00:0b:00:02"] {
                assert!(fdb.contains(mac), "{mac} not in OVS's fdb:\n{fdb}");
            }

            let listed = links.list_ports().await.unwrap();
            assert_eq!(listed, vec![pa.clone(), pb.clone()]);

            // A bridge OVS does not have: refused with ovs-vsctl's words, tap removed again.
            let mut bad = port_spec([0x52, 0x54, 0, 0x0b, 0, 3], None);
            bad.bridge = IfName::new("nobr").unwrap();
            bad.tap.name = Some(IfName::new("vtapbad").unwrap());
            let e = links.create_ovs_port(&bad).await.unwrap_err();
            assert!(e.to_string().contains("nobr"), "{e}");
            assert!(!exists("vtapbad"));
            // Malformed ids are refused before anything is made.
            let mut bad = port_spec([0x52, 0x54, 0, 0x0b, 0, 4], Some("not-a-uuid"));
            bad.tap.name = Some(IfName::new("vtapbad").unwrap());
            assert!(matches!(
                links.create_ovs_port(&bad).await,
                Err(LinksError::InvalidUuid { .. })
            ));
            assert!(!exists("vtapbad"));

            for p in [&pa, &pb] {
                links
                    .delete_port(&IfName::new(&p.name).unwrap())
                    .await
                    .unwrap();
                assert!(!exists(&p.name));
            }
            assert_eq!(ovs.vsctl(&["list-ports", "obr"]), "");
        });
        let pids = ovs.pids();
        assert_eq!(pids.len(), 2);
        drop(ovs);
        for p in pids {
            assert!(!Path::new("/proc").join(&p).exists(), "daemon {p} stopped");
        }
        return;
    }
    if !require_root() {
        return;
    }
    if let Err(why) = install_ovs() {
        eprintln!("SKIPPED ovs test: openvswitch-switch cannot be installed here: {why}");
        return;
    }
    let h = Netns::new("ovs");
    run_child_in(&h, T, &[]);
}
