//! Persistent taps through the tun driver's ioctls on /dev/net/tun (linux/drivers/net/tun.c,
//! Documentation/networking/tuntap.rst): `TUNSETIFF`, `TUNSETOWNER`, `TUNSETGROUP`,
//! `TUNSETPERSIST` — what `ip tuntap add mode tap user U` does. The kernel has no netlink way
//! to create a tun device (its `rtnl_link_ops` refuses `newlink`), so this part is ioctls.

use std::ffi::c_ulong;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `_IOW('T', 202, int)` and friends from linux/include/uapi/linux/if_tun.h.
pub(crate) const TUNSETIFF: c_ulong = 0x4004_54ca;
pub(crate) const TUNSETPERSIST: c_ulong = 0x4004_54cb;
pub(crate) const TUNSETOWNER: c_ulong = 0x4004_54cc;
pub(crate) const TUNSETGROUP: c_ulong = 0x4004_54ce;

pub(crate) const IFF_TAP: i16 = 0x0002;
pub(crate) const IFF_NO_PI: i16 = 0x1000;
pub(crate) const IFF_MULTI_QUEUE: i16 = 0x0100;
/// Fail with EBUSY instead of attaching when a tun device of that name already exists.
pub(crate) const IFF_TUN_EXCL: i16 = -0x8000; // 0x8000 as the kernel's `short`

/// `struct ifreq` as the tun ioctls read it: the name, then `ifr_flags` at the start of the
/// 24-byte union.
#[repr(C)]
pub(crate) struct IfReq {
    pub name: [u8; 16],
    pub flags: i16,
    pad: [u8; 22],
}

impl IfReq {
    /// `name` must be shorter than 16 bytes (checked by the callers' `IfName`, or a template).
    pub(crate) fn new(name: &str, flags: i16) -> IfReq {
        let mut r = IfReq {
            name: [0; 16],
            flags,
            pad: [0; 22],
        };
        for (d, s) in r.name.iter_mut().zip(name.bytes().take(15)) {
            *d = s;
        }
        r
    }

    pub(crate) fn name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
}

/// What to create.
pub(crate) struct TapRequest<'a> {
    /// An exact name, or a template with `%d` the kernel fills in (`vnet%d`).
    pub name: &'a str,
    pub multi_queue: bool,
    pub owner: Option<u32>,
    pub group: Option<u32>,
}

/// Creates a persistent tap and returns the name the kernel gave it. Nothing is left behind on
/// failure: the device only becomes persistent in the last step, and closing the descriptor
/// of a non-persistent tap destroys it.
pub(crate) fn create_persistent_tap(tun_path: &Path, req: &TapRequest<'_>) -> io::Result<String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(tun_path)?;
    let fd = file.as_raw_fd();
    // `ip tuntap add` uses no exclusive flag and silently re-uses an existing tap of the same
    // name; we pass IFF_TUN_EXCL so "create" never attaches to a device that someone else owns.
    let mut flags = IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL;
    if req.multi_queue {
        flags |= IFF_MULTI_QUEUE;
    }
    let mut ifr = IfReq::new(req.name, flags);
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which IfReq lays out (40 bytes).
    if unsafe { libc::ioctl(fd, TUNSETIFF, &mut ifr as *mut IfReq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some(uid) = req.owner {
        // SAFETY: TUNSETOWNER takes the uid as the argument value.
        if unsafe { libc::ioctl(fd, TUNSETOWNER, uid as c_ulong) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if let Some(gid) = req.group {
        // SAFETY: TUNSETGROUP takes the gid as the argument value.
        if unsafe { libc::ioctl(fd, TUNSETGROUP, gid as c_ulong) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: TUNSETPERSIST takes 0 or 1 as the argument value.
    if unsafe { libc::ioctl(fd, TUNSETPERSIST, 1 as c_ulong) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ifr.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_matches_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        assert_eq!(std::mem::offset_of!(IfReq, flags), 16);
        let r = IfReq::new("vnet%d", IFF_TAP | IFF_NO_PI);
        assert_eq!(&r.name[..7], b"vnet%d\0");
        assert_eq!(r.name(), "vnet%d");
        assert_eq!(r.flags as u16, 0x1002);
        assert_eq!(IFF_TUN_EXCL as u16, 0x8000);
    }

    #[test]
    fn ioctl_numbers_are_iow_t() {
        // _IOW(type, nr, int) = (1 << 30) | (sizeof(int) << 16) | (type << 8) | nr
        let iow = |nr: c_ulong| (1 << 30) | (4 << 16) | ((b'T' as c_ulong) << 8) | nr;
        assert_eq!(TUNSETIFF, iow(202));
        assert_eq!(TUNSETPERSIST, iow(203));
        assert_eq!(TUNSETOWNER, iow(204));
        assert_eq!(TUNSETGROUP, iow(206));
    }
}
