//! Helpers for the namespace tests: a "host" namespace where the network runs (the test's
//! tokio runtime lives in a thread moved into it with setns, so every socket and netlink
//! connection the library opens is the host namespace's), "guest" namespaces plugged into the
//! bridge with a veth pair and running ISC dhclient, and a "wan" namespace whose dnsmasq plays
//! the upstream DNS server (fixed answers, never a real resolver).

#![allow(dead_code)]

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Once;
use std::time::{Duration, Instant};

use virtgate_testnet::Netns;

/// What the fake upstream answers for `www.example.test` (and every other name under
/// `example.test`).
pub const OUTSIDE_IP: &str = "203.0.113.80";
/// The upstream's address, in the wan namespace.
pub const UPSTREAM_IP: &str = "203.0.113.1";

/// Installs dhclient and dig if this machine lacks them (the realpeer scripts install the same
/// packages).
pub fn ensure_tools() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let have = |p: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let mut missing = Vec::new();
        for (prog, pkg) in [
            ("dhclient", "isc-dhcp-client"),
            ("dig", "dnsutils"),
            ("dnsmasq", "dnsmasq-base"),
        ] {
            if !have(prog) {
                missing.push(pkg);
            }
        }
        if !missing.is_empty() {
            let st = Command::new("apt-get")
                .args(["install", "-y"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .expect("run apt-get");
            assert!(st.success(), "apt-get install {missing:?} failed");
        }
    });
}

/// Runs `f` on a thread that has entered `ns`'s network namespace; everything it creates
/// (sockets, netlink connections, threads, child processes) belongs to that namespace.
pub fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = PathBuf::from("/run/netns").join(ns.name());
    std::thread::spawn(move || {
        let fd = fs::File::open(&path).expect("open the namespace");
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// A multi-threaded runtime (built inside the namespace thread, so its workers are there too):
/// blocking helpers run guest commands while the network keeps serving.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("vgt-vnet-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs a command and returns stdout; panics with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` until it returns `Some` or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The upstream DNS server: dnsmasq in its own namespace, reachable from the host namespace
/// over a veth (host side `uplink0` 203.0.113.2/24), answering `example.test` names with
/// [`OUTSIDE_IP`] and nothing else (no resolv.conf, no hosts file, no forwarding).
pub struct Wan {
    pub ns: Netns,
    dnsmasq: Child,
}

impl Wan {
    pub fn new(host: &Netns) -> Wan {
        let ns = Netns::new("vwan");
        host.link_to(
            &ns,
            "uplink0",
            "203.0.113.2/24",
            "wan0",
            &format!("{UPSTREAM_IP}/24"),
        );
        let dnsmasq = ns.spawn(
            "dnsmasq",
            &[
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--pid-file=",
                &format!("--listen-address={UPSTREAM_IP}"),
                &format!("--address=/example.test/{OUTSIDE_IP}"),
                "--local=/example.test/",
                "--log-queries",
            ],
        );
        let wan = Wan { ns, dnsmasq };
        let ready = wait_for(Duration::from_secs(10), || {
            let out = wan.ns.sh(&format!(
                "dig +short +time=1 +tries=1 @{UPSTREAM_IP} www.example.test"
            ));
            (String::from_utf8_lossy(&out.stdout).trim() == OUTSIDE_IP).then_some(())
        });
        assert!(ready.is_some(), "the fake upstream does not answer");
        wan
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        let _ = self.dnsmasq.kill();
        let _ = self.dnsmasq.wait();
    }
}

/// What dhclient got, as its script saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestLease {
    pub ip: Ipv4Addr,
    pub mask: String,
    pub routers: String,
    pub dns: String,
    pub domain: String,
}

/// A guest: a namespace whose `eth0` (with `mac`) is plugged into the host's bridge by a veth
/// pair whose host end is `host_if`.
pub struct Guest {
    pub ns: Netns,
    pub mac: String,
    pub host_if: String,
    pub dir: TempDir,
}

impl Guest {
    pub fn new(tag: &str, host: &Netns, host_if: &str, mac: &str) -> Guest {
        let ns = Netns::new(tag);
        run(Command::new("ip").args([
            "link",
            "add",
            host_if,
            "netns",
            host.name(),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ]));
        ns.ip(&["link", "set", "eth0", "address", mac]);
        ns.ip(&["link", "set", "eth0", "up"]);
        host.ip(&["link", "set", host_if, "up"]);
        Guest {
            ns,
            mac: mac.to_string(),
            host_if: host_if.to_string(),
            dir: TempDir::new(tag),
        }
    }

    /// Enslaves the host end to `bridge` (what qemu-ifup does with a guest's tap).
    pub fn plug(&self, host: &Netns, bridge: &str) {
        host.ip(&["link", "set", &self.host_if, "master", bridge]);
        host.ip(&["link", "set", &self.host_if, "up"]);
    }

    /// Runs `dhclient -1` for one lease (sending `hostname`, if any); its script puts the
    /// address on eth0 and records what was offered. `fresh` forgets earlier leases first, so
    /// the client starts from DISCOVER instead of asking for its old address (INIT-REBOOT).
    pub fn dhclient(&self, hostname: Option<&str>, fresh: bool) -> Option<GuestLease> {
        let d = self.dir.path();
        let result = d.join("lease");
        let _ = fs::remove_file(&result);
        if fresh {
            let _ = fs::remove_file(d.join("dhclient.leases"));
        }
        let script = d.join("script");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 case \"$reason\" in\n\
                 BOUND|RENEW|REBIND|REBOOT)\n\
                 ip addr flush dev \"$interface\"\n\
                 ip addr add \"$new_ip_address/$new_subnet_mask\" dev \"$interface\"\n\
                 printf '%s\\n%s\\n%s\\n%s\\n%s\\n' \"$new_ip_address\" \"$new_subnet_mask\" \
                 \"$new_routers\" \"$new_domain_name_servers\" \"$new_domain_name\" > {}\n\
                 ;;\n\
                 esac\n\
                 exit 0\n",
                result.display()
            ),
        )
        .expect("script");
        run(Command::new("chmod").args(["755", script.to_str().unwrap()]));
        let conf = d.join("dhclient.conf");
        let mut text = String::new();
        if let Some(h) = hostname {
            text.push_str(&format!("send host-name \"{h}\";\n"));
        }
        text.push_str(
            "request subnet-mask, broadcast-address, routers, domain-name, \
             domain-name-servers, interface-mtu;\ntimeout 30;\n",
        );
        fs::write(&conf, text).expect("dhclient.conf");
        let out = self
            .ns
            .command("dhclient")
            .args(["-4", "-v", "-1", "-cf"])
            .arg(&conf)
            .arg("-lf")
            .arg(d.join("dhclient.leases"))
            .arg("-pf")
            .arg(d.join("dhclient.pid"))
            .arg("-sf")
            .arg(&script)
            .arg("eth0")
            .output()
            .expect("spawn dhclient");
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("---- dhclient in {} ----\n{log}", self.ns.name());
        // dhclient -1 stays in the background once bound; stop it without a release.
        let _ = self
            .ns
            .command("dhclient")
            .arg("-x")
            .arg("-pf")
            .arg(d.join("dhclient.pid"))
            .arg("-sf")
            .arg("/bin/true")
            .output();
        if !out.status.success() {
            return None;
        }
        let text = fs::read_to_string(&result).ok()?;
        let mut lines = text.lines().map(str::to_string);
        Some(GuestLease {
            ip: lines.next()?.parse().ok()?,
            mask: lines.next().unwrap_or_default(),
            routers: lines.next().unwrap_or_default(),
            dns: lines.next().unwrap_or_default(),
            domain: lines.next().unwrap_or_default(),
        })
    }

    /// `dig +short ARGS` in the guest, trimmed.
    pub fn dig(&self, args: &str) -> String {
        let out = self.ns.sh(&format!("dig +short +time=5 +tries=1 {args}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `dig ARGS` in the guest, the status word of the header (NOERROR, NXDOMAIN, SERVFAIL...).
    pub fn dig_status(&self, args: &str) -> String {
        let out = self.ns.sh(&format!("dig +time=8 +tries=1 {args}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("no answer")
            .to_string()
    }
}
