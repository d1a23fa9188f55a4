//! Test-only helpers for namespace integration tests (they need root).
//!
//! Every [`Netns`] is created with a unique name and deleted (with every process still inside
//! it) when dropped, so a failing test leaves nothing behind. Nothing here touches the root
//! namespace except creating and deleting namespaces and moving veth ends into them.

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// True when the caller can build namespaces (root and `ip` present). Tests that need them call
/// [`require_root`] instead, which fails loudly unless `VIRTGATE_SKIP_NETNS=1` is set.
pub fn can_use_netns() -> bool {
    // SAFETY-free check: effective uid via /proc (avoids a libc dependency).
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    root && Command::new("ip").arg("-V").output().is_ok()
}

/// Returns false (and prints why) when namespace tests must be skipped; panics when they cannot
/// run but were not explicitly allowed to be skipped, so CI never passes by skipping.
pub fn require_root() -> bool {
    if can_use_netns() {
        return true;
    }
    if std::env::var("VIRTGATE_SKIP_NETNS").as_deref() == Ok("1") {
        eprintln!("skipping: namespace tests need root and iproute2 (VIRTGATE_SKIP_NETNS=1)");
        return false;
    }
    panic!("namespace tests need root and iproute2; set VIRTGATE_SKIP_NETNS=1 to skip them");
}

/// A network namespace that is deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `vgt-<tag>-<pid>-<n>` with `lo` up.
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("vgt-{tag}-{}-{n}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NS ARGS...`, panicking with stderr on failure.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut c = Command::new("ip");
        c.arg("-n").arg(&self.name).args(args);
        run_ok(&mut c)
    }

    /// A command that runs inside the namespace (`ip netns exec NS PROGRAM ARGS...`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs a shell snippet inside the namespace and returns its output (not checked).
    pub fn sh(&self, script: &str) -> Output {
        self.command("sh")
            .args(["-c", script])
            .output()
            .expect("spawn ip netns exec")
    }

    /// Runs a shell snippet inside the namespace; panics with its output unless it succeeds.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in {}: `{script}` failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a long-running program inside the namespace with piped stdout/stderr; it is killed
    /// when the namespace is dropped at the latest.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Child {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn in namespace")
    }

    /// Connects `self` and `other` with a veth pair, addresses given in CIDR form, both up.
    pub fn link_to(&self, other: &Netns, if_a: &str, addr_a: &str, if_b: &str, addr_b: &str) {
        run_ok(Command::new("ip").args([
            "link",
            "add",
            if_a,
            "netns",
            &self.name,
            "type",
            "veth",
            "peer",
            "name",
            if_b,
            "netns",
            &other.name,
        ]));
        self.ip(&["addr", "add", addr_a, "dev", if_a]);
        other.ip(&["addr", "add", addr_b, "dev", if_b]);
        self.ip(&["link", "set", if_a, "up"]);
        other.ip(&["link", "set", if_b, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_namespaces_ping_over_veth_and_vanish() {
        if !require_root() {
            return;
        }
        let name;
        {
            let a = Netns::new("ta");
            let b = Netns::new("tb");
            a.link_to(&b, "va", "10.200.0.1/24", "vb", "10.200.0.2/24");
            a.sh_ok("ping -c1 -W2 10.200.0.2");
            name = a.name().to_string();
        }
        let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
    }
}
