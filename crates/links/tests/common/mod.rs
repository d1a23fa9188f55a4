//! Helpers for the namespace tests: run a test body inside a namespace (the test binary
//! re-executes itself under `ip netns exec`, which also mounts that namespace's sysfs), open
//! taps and macvtap devices the way QEMU does, and play a minimal guest on them: ARP (RFC 826),
//! IPv4 (RFC 791) and ICMP echo (RFC 792), enough to ping and be pinged.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use virtgate_testnet::Netns;

const CHILD_ENV: &str = "VGT_LINKS_CHILD";

/// True when this process is the re-executed child that should run `test`'s body.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(test)
}

/// Runs this test binary again inside `ns`, only `test`, as the child; `env` is passed on.
/// Panics with the child's output unless it passed.
pub fn run_child_in(ns: &Netns, test: &str, env: &[(&str, String)]) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut c = ns.command(exe.to_str().expect("utf-8 path"));
    c.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("spawn child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("---- child {test} in {} ----\n{stdout}{stderr}", ns.name());
    assert!(out.status.success(), "child {test} failed in {}", ns.name());
    assert!(
        stdout.contains("1 passed"),
        "child {test} did not run its body"
    );
}

/// A current-thread runtime for a child body.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A scratch directory for device nodes, removed on drop.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> ScratchDir {
        let p = std::env::temp_dir().join(format!("vgt-links-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        ScratchDir(p)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a shell snippet in the current namespace; panics with its output unless it succeeds.
pub fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "`{script}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn sh_status(script: &str) -> bool {
    Command::new("sh")
        .args(["-c", script])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn sysfs(path: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(path))
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn exists(ifname: &str) -> bool {
    Path::new("/sys/class/net").join(ifname).exists()
}

pub fn uid_of(user: &str) -> u32 {
    virtgate_links::resolve_user(&virtgate_links::UserRef::Name(user.into())).expect("user")
}

// ------------------------------------------------------------------ opening ports like QEMU

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    pad: [u8; 22],
}

fn ifreq(name: &str) -> IfReq {
    let mut r = IfReq {
        name: [0; 16],
        flags: IFF_TAP | IFF_NO_PI,
        pad: [0; 22],
    };
    for (d, s) in r.name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    r
}

/// Attaches to a persistent tap as QEMU's `-netdev tap,ifname=NAME` does.
pub fn open_tap(name: &str) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut r = ifreq(name);
    // SAFETY: TUNSETIFF reads/writes a struct ifreq (40 bytes), which IfReq lays out.
    if unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF, &mut r as *mut IfReq) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// Opens a macvtap's character device as QEMU's `fd=3 3<>/dev/tapN`, and turns the vnet
/// header off (macvtap's TUNSETIFF takes only the flags) so reads and writes are bare frames.
pub fn open_macvtap(dev: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dev)?;
    let mut r = ifreq("");
    // SAFETY: as in open_tap.
    if unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF, &mut r as *mut IfReq) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// A world-usable clone device (10:200, mode 0666) in `dir`, as Debian's udev rules make
/// /dev/net/tun. Where no udev runs, /dev/net/tun may be 0600, which would stop any
/// unprivileged opener before the tap's owner check this test is about.
pub fn tun_node(dir: &Path) -> PathBuf {
    let p = dir.join("tun");
    let c = std::ffi::CString::new(p.to_str().expect("utf-8")).expect("no NUL");
    // SAFETY: c is a NUL-terminated path.
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(10, 200)) };
    assert_eq!(rc, 0, "mknod tun: {}", std::io::Error::last_os_error());
    // SAFETY: as above; mknod's mode went through the umask.
    assert_eq!(unsafe { libc::chmod(c.as_ptr(), 0o666) }, 0);
    p
}

/// Tries to attach to tap `name` as `uid` (no capabilities) through the clone device `tun`:
/// Ok, or the errno. Runs in a forked child that only makes async-signal-safe calls.
pub fn open_tap_as(tun: &Path, uid: u32, gid: u32, name: &str) -> Result<(), i32> {
    let cpath = std::ffi::CString::new(tun.to_str().expect("utf-8")).expect("no NUL");
    let path = cpath.as_c_str();
    let mut r = ifreq(name);
    // SAFETY: after fork the child calls only setgroups/setgid/setuid/open/ioctl/_exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        unsafe {
            let code = if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                200
            } else {
                let fd = libc::open(path.as_ptr(), libc::O_RDWR);
                if fd < 0 {
                    201
                } else if libc::ioctl(fd, TUNSETIFF, &mut r as *mut IfReq) < 0 {
                    *libc::__errno_location()
                } else {
                    0
                }
            };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let code = libc::WEXITSTATUS(status);
    assert!(code < 200, "child setup failed ({code})");
    if code == 0 {
        Ok(())
    } else {
        Err(code)
    }
}

/// Opens a device node as `uid` (for macvtap nodes); Ok or errno.
pub fn open_node_as(uid: u32, gid: u32, path: &Path) -> Result<(), i32> {
    let c = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("no NUL");
    // SAFETY: after fork the child calls only setgroups/setgid/setuid/open/_exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        unsafe {
            let code = if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                200
            } else if libc::open(c.as_ptr(), libc::O_RDWR) < 0 {
                *libc::__errno_location()
            } else {
                0
            };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let code = libc::WEXITSTATUS(status);
    assert!(code < 200, "child setup failed ({code})");
    if code == 0 {
        Ok(())
    } else {
        Err(code)
    }
}

// ------------------------------------------------------------------ frames

pub type MacBytes = [u8; 6];
pub const BROADCAST: MacBytes = [0xff; 6];
const ETH_ARP: u16 = 0x0806;
const ETH_IP: u16 = 0x0800;
/// IEEE 802 local experimental ethertype: frames nobody else answers.
pub const ETH_EXPERIMENTAL: u16 = 0x88b5;

pub fn ether(dst: MacBytes, src: MacBytes, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

fn arp(op: u16, sha: MacBytes, spa: Ipv4Addr, tha: MacBytes, tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa.octets());
    a
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for ch in data.chunks(2) {
        let w = match ch {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ipv4_icmp(src: Ipv4Addr, dst: Ipv4Addr, icmp: &[u8]) -> Vec<u8> {
    let total = (20 + icmp.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0x40, 0, 64, 1, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(icmp);
    h
}

fn icmp_echo(kind: u8, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// What a received frame is, as far as the guest cares.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    ArpRequest {
        sha: MacBytes,
        spa: Ipv4Addr,
        tpa: Ipv4Addr,
    },
    ArpReply {
        sha: MacBytes,
        spa: Ipv4Addr,
    },
    Echo {
        src_mac: MacBytes,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        reply: bool,
        id: u16,
        seq: u16,
        payload: Vec<u8>,
    },
    Other,
}

fn mac_at(f: &[u8], at: usize) -> Option<MacBytes> {
    f.get(at..at + 6)?.try_into().ok()
}

fn ip_at(f: &[u8], at: usize) -> Option<Ipv4Addr> {
    let b: [u8; 4] = f.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

fn parse(f: &[u8]) -> Parsed {
    parse_inner(f).unwrap_or(Parsed::Other)
}

fn parse_inner(f: &[u8]) -> Option<Parsed> {
    let ethertype = u16::from_be_bytes(f.get(12..14)?.try_into().ok()?);
    let p = f.get(14..)?;
    match ethertype {
        ETH_ARP => {
            if p.get(0..6)? != [0, 1, 8, 0, 6, 4] {
                return None;
            }
            let op = u16::from_be_bytes(p.get(6..8)?.try_into().ok()?);
            let sha = mac_at(p, 8)?;
            let spa = ip_at(p, 14)?;
            let tpa = ip_at(p, 24)?;
            match op {
                1 => Some(Parsed::ArpRequest { sha, spa, tpa }),
                2 => Some(Parsed::ArpReply { sha, spa }),
                _ => None,
            }
        }
        ETH_IP => {
            let vihl = *p.first()?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 || *p.get(9)? != 1 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes(p.get(2..4)?.try_into().ok()?));
            let src = ip_at(p, 12)?;
            let dst = ip_at(p, 16)?;
            let icmp = p.get(ihl..total)?;
            let kind = *icmp.first()?;
            if kind != 0 && kind != 8 {
                return None;
            }
            Some(Parsed::Echo {
                src_mac: mac_at(f, 6)?,
                src,
                dst,
                reply: kind == 0,
                id: u16::from_be_bytes(icmp.get(4..6)?.try_into().ok()?),
                seq: u16::from_be_bytes(icmp.get(6..8)?.try_into().ok()?),
                payload: icmp.get(8..)?.to_vec(),
            })
        }
        _ => None,
    }
}

/// Reads one frame, waiting at most `wait`.
pub fn recv(f: &mut File, wait: Duration) -> Option<Vec<u8>> {
    let mut pfd = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one pollfd we own.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n <= 0 {
        return None;
    }
    let mut buf = vec![0u8; 65536];
    let len = f.read(&mut buf).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// True when a frame satisfying `pred` arrives within `wait`.
pub fn saw(f: &mut File, wait: Duration, pred: impl Fn(&[u8]) -> bool) -> bool {
    let end = Instant::now() + wait;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if let Some(frame) = recv(f, left) {
            if pred(&frame) {
                return true;
            }
        }
    }
    false
}

/// Drops whatever is queued.
pub fn drain(f: &mut File) {
    while recv(f, Duration::from_millis(50)).is_some() {}
}

/// A guest on a tap or macvtap descriptor.
pub struct Guest {
    pub file: File,
    pub mac: MacBytes,
    pub ip: Ipv4Addr,
}

impl Guest {
    pub fn new(file: File, mac: MacBytes, ip: Ipv4Addr) -> Guest {
        Guest { file, mac, ip }
    }

    /// Answers ARP for our address and echo requests to it; true when the frame was for us.
    fn answer(&mut self, frame: &[u8]) -> bool {
        match parse(frame) {
            Parsed::ArpRequest { sha, spa, tpa } if tpa == self.ip => {
                let r = ether(sha, self.mac, ETH_ARP, &arp(2, self.mac, self.ip, sha, spa));
                let _ = self.file.write_all(&r);
                true
            }
            Parsed::Echo {
                src_mac,
                src,
                dst,
                reply: false,
                id,
                seq,
                payload,
            } if dst == self.ip => {
                let icmp = icmp_echo(0, id, seq, &payload);
                let r = ether(src_mac, self.mac, ETH_IP, &ipv4_icmp(self.ip, src, &icmp));
                let _ = self.file.write_all(&r);
                true
            }
            _ => false,
        }
    }

    /// ARP for `peer`, then one ICMP echo; the step that failed, if one did.
    pub fn ping(&mut self, peer: Ipv4Addr, wait: Duration) -> Result<(), String> {
        let end = Instant::now() + wait;
        let req = ether(
            BROADCAST,
            self.mac,
            ETH_ARP,
            &arp(1, self.mac, self.ip, [0; 6], peer),
        );
        let mut peer_mac = None;
        let mut next_arp = Instant::now();
        while peer_mac.is_none() {
            let now = Instant::now();
            if now >= end {
                return Err(format!("no ARP reply from {peer}"));
            }
            if now >= next_arp {
                self.file.write_all(&req).map_err(|e| e.to_string())?;
                next_arp = now + Duration::from_millis(300);
            }
            if let Some(f) = recv(&mut self.file, Duration::from_millis(50)) {
                if let Parsed::ArpReply { sha, spa } = parse(&f) {
                    if spa == peer {
                        peer_mac = Some(sha);
                    }
                } else {
                    self.answer(&f);
                }
            }
        }
        let dst = peer_mac.unwrap_or(BROADCAST);
        let payload = b"virtgate-links ping".to_vec();
        let icmp = icmp_echo(8, 0x5667, 1, &payload);
        let frame = ether(dst, self.mac, ETH_IP, &ipv4_icmp(self.ip, peer, &icmp));
        let mut next = Instant::now();
        loop {
            let now = Instant::now();
            if now >= end {
                return Err(format!("ARP answered but no echo reply from {peer}"));
            }
            if now >= next {
                self.file.write_all(&frame).map_err(|e| e.to_string())?;
                next = now + Duration::from_millis(300);
            }
            if let Some(f) = recv(&mut self.file, Duration::from_millis(50)) {
                match parse(&f) {
                    Parsed::Echo {
                        src,
                        reply: true,
                        id: 0x5667,
                        seq: 1,
                        payload: p,
                        ..
                    } if src == peer && p.starts_with(&payload) => return Ok(()),
                    _ => {
                        self.answer(&f);
                    }
                }
            }
        }
    }

    /// Sends a raw frame.
    pub fn send(&mut self, frame: &[u8]) {
        self.file.write_all(frame).expect("write frame");
    }

    /// Serves ARP and echo on a thread until the returned handle is dropped.
    pub fn serve(self) -> Responder {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let mut g = self;
        let join = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if let Some(f) = recv(&mut g.file, Duration::from_millis(50)) {
                    g.answer(&f);
                }
            }
            g
        });
        Responder {
            stop,
            join: Some(join),
        }
    }
}

/// A guest answering on its own thread.
pub struct Responder {
    stop: Arc<AtomicBool>,
    join: Option<std::thread::JoinHandle<Guest>>,
}

impl Responder {
    /// Stops serving and gives the guest back.
    pub fn stop(mut self) -> Guest {
        self.stop.store(true, Ordering::Relaxed);
        self.join
            .take()
            .expect("joined once")
            .join()
            .expect("responder thread")
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

#[test]
fn frames_parse_back() {
    let a = [2, 0, 0, 0, 0, 1];
    let ip = Ipv4Addr::new(10, 0, 0, 1);
    let peer = Ipv4Addr::new(10, 0, 0, 2);
    let req = ether(BROADCAST, a, ETH_ARP, &arp(1, a, ip, [0; 6], peer));
    assert_eq!(
        parse(&req),
        Parsed::ArpRequest {
            sha: a,
            spa: ip,
            tpa: peer
        }
    );
    let icmp = icmp_echo(8, 7, 9, b"xy");
    assert_eq!(checksum(&icmp), 0);
    let f = ether(BROADCAST, a, ETH_IP, &ipv4_icmp(ip, peer, &icmp));
    let h = f.get(14..34).unwrap();
    assert_eq!(checksum(h), 0);
    assert!(matches!(
        parse(&f),
        Parsed::Echo {
            reply: false,
            id: 7,
            seq: 9,
            ..
        }
    ));
    // Truncated frames are "other", never a panic.
    for n in 0..f.len() {
        let _ = parse(&f[..n]);
    }
}
