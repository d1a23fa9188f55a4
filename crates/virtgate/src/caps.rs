//! After start-up the daemon keeps only the capabilities it still needs (issue 7, "secure
//! defaults"): CAP_NET_ADMIN (routes, neighbours, bridges and links of networks started later,
//! nftables), CAP_NET_RAW (the raw GRE socket, SO_BINDTODEVICE for the DHCP/DNS sockets of a
//! network started later) and CAP_NET_BIND_SERVICE (DHCP port 67 and DNS port 53 of a network
//! started later). Every other capability leaves the bounding, effective, permitted and
//! inheritable sets, so a bug in the daemon cannot load modules, read other users' files,
//! trace processes or mount file systems.
//!
//! Programs the daemon starts after that (nft, ovs-vsctl, the ip-up/ip-down hooks) get the
//! three as well and nothing more: a daemon running as root hands its children its bounding
//! set; for a daemon that runs as another user (systemd `User=` with `AmbientCapabilities=`)
//! the three are also raised in the ambient set, which execve passes on.
//!
//! Plain `prctl(2)`/`capset(2)` through `libc` (already a dependency) rather than another crate:
//! the whole job is three system calls on the calling thread. Capabilities are per thread: the
//! runtime is current-thread and the daemon starts no other threads before this point, so the
//! process is covered (the namespace test checks every task of the process).

use std::io;

pub const CAP_NET_BIND_SERVICE: u32 = 10;
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;

/// What the daemon keeps.
pub const KEEP: [u32; 3] = [CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW];

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The mask of [`KEEP`].
pub fn keep_mask() -> u64 {
    KEEP.iter().fold(0, |m, c| m | 1 << c)
}

/// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
        .min(63)
}

fn capget() -> io::Result<[Data; 2]> {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: the header and two data words are the layout capget(2) version 3 expects.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(d)
}

fn capset(d: &[Data; 2]) -> io::Result<()> {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: as in `capget`; the kernel only reads `d`.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn prctl(op: libc::c_int, a: u64, b: u64) -> io::Result<libc::c_int> {
    // SAFETY: the capability prctls take plain integers.
    let r = unsafe { libc::prctl(op, a as libc::c_ulong, b as libc::c_ulong, 0, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// What [`drop_to_kept`] did, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// The effective (= permitted) set now.
    pub kept: u64,
    /// How many capabilities left the bounding set.
    pub bounding_dropped: u32,
    /// Whether every other capability is out of the bounding set now (false without
    /// CAP_SETPCAP).
    pub bounding_complete: bool,
    /// Whether the kept ones are ambient (passed to programs run by a non-root daemon).
    pub ambient: bool,
}

/// Drops everything but [`KEEP`] from the calling thread's bounding, effective, permitted and
/// inheritable sets, and raises the kept ones in the ambient set. A kept capability the
/// process does not have stays absent (nothing is gained).
pub fn drop_to_kept() -> io::Result<Dropped> {
    let keep = keep_mask();
    let before = capget()?;
    let permitted = u64::from(before[0].permitted) | u64::from(before[1].permitted) << 32;
    // The bounding set first: dropping from it needs CAP_SETPCAP, which capset removes.
    let (mut bounding_dropped, mut bounding_complete) = (0, true);
    for cap in 0..=last_cap() {
        if keep & 1 << cap != 0 {
            continue;
        }
        match prctl(libc::PR_CAPBSET_READ, cap.into(), 0) {
            Ok(1) => {}
            _ => continue,
        }
        if prctl(libc::PR_CAPBSET_DROP, cap.into(), 0).is_err() {
            // No CAP_SETPCAP (a service manager already narrowed the set): the rest still
            // leaves the other sets, which is what the daemon itself can use.
            bounding_complete = false;
            break;
        }
        bounding_dropped += 1;
    }
    let kept = permitted & keep;
    let word = |m: u64, i: usize| (m >> (32 * i)) as u32;
    let after = [0, 1].map(|i| Data {
        effective: word(kept, i),
        permitted: word(kept, i),
        inheritable: word(kept, i),
    });
    capset(&after)?;
    // Ambient capabilities: Linux 4.3 and later; without them a root daemon's children still
    // get the bounding set.
    let mut ambient = prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as u64,
        0,
    )
    .is_ok();
    for cap in KEEP {
        if kept & 1 << cap != 0 {
            ambient &= prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as u64,
                cap.into(),
            )
            .is_ok();
        }
    }
    Ok(Dropped {
        kept,
        bounding_dropped,
        bounding_complete,
        ambient,
    })
}

/// [`drop_to_kept`] with its log line (a failure is logged, not fatal: the daemon then runs
/// with what it had).
pub fn log_drop() {
    match drop_to_kept() {
        Ok(d) => {
            tracing::info!(
                kept = %names(d.kept),
                bounding_dropped = d.bounding_dropped,
                ambient = d.ambient,
                "capabilities dropped: only these are kept from now on (--keep-capabilities \
                 keeps all)"
            );
            if !d.bounding_complete {
                tracing::warn!(
                    "capabilities: the bounding set could not be narrowed (no CAP_SETPCAP); \
                     programs the daemon runs keep what the service manager allowed"
                );
            }
        }
        Err(e) => tracing::warn!("capabilities could not be dropped: {e}; running with all"),
    }
}

/// The names of the capabilities in `mask` that virtgate knows by name (for log lines).
pub fn names(mask: u64) -> String {
    let mut v = Vec::new();
    for (cap, name) in [
        (CAP_NET_BIND_SERVICE, "CAP_NET_BIND_SERVICE"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_NET_RAW, "CAP_NET_RAW"),
    ] {
        if mask & 1 << cap != 0 {
            v.push(name);
        }
    }
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_set_is_the_three_network_capabilities() {
        // CapEff/CapBnd as /proc/PID/status prints them after the drop.
        assert_eq!(format!("{:016x}", keep_mask()), "0000000000003400");
        assert_eq!(
            names(keep_mask()),
            "CAP_NET_BIND_SERVICE,CAP_NET_ADMIN,CAP_NET_RAW"
        );
        assert_eq!(names(0), "none");
    }

    #[test]
    fn capget_reads_this_threads_sets() {
        // Whatever the test runs with, the call works and permitted covers effective.
        let d = capget().unwrap();
        for w in d {
            assert_eq!(w.effective & !w.permitted, 0);
        }
    }
}
