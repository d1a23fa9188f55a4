//! The character device of a macvtap (linux/drivers/net/macvtap.c, tap.c): the kernel registers
//! `tapIFINDEX` in class `macvtap` and shows its numbers in
//! `/sys/class/net/NAME/macvtap/tapIFINDEX/dev` (`MAJOR:MINOR`). udev normally makes
//! `/dev/tapIFINDEX` from that; where no udev runs we make the node ourselves with mknod(2).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::LinksError;

/// Parses the `dev` file of a sysfs device: `MAJOR:MINOR` and a newline.
pub(crate) fn parse_dev(text: &str) -> Option<(u32, u32)> {
    let (maj, min) = text.trim().split_once(':')?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !ok(maj) || !ok(min) {
        return None;
    }
    Some((maj.parse().ok()?, min.parse().ok()?))
}

/// Where the sysfs file for `name` (with `ifindex`) is.
pub(crate) fn sysfs_dev_path(sys_class_net: &Path, name: &str, ifindex: u32) -> PathBuf {
    sys_class_net
        .join(name)
        .join("macvtap")
        .join(format!("tap{ifindex}"))
        .join("dev")
}

/// The device path QEMU opens: `DEV_DIR/tapIFINDEX`.
pub(crate) fn node_path(dev_dir: &Path, ifindex: u32) -> PathBuf {
    dev_dir.join(format!("tap{ifindex}"))
}

/// Makes sure `path` is a character device `maj:min`, mode 0600, owned by `owner`/`group`
/// when given (root otherwise). A node that is already right (udev's) is kept; anything else at
/// that path is replaced: ifindexes are reused, and a stale node would open someone else's
/// port.
pub(crate) fn ensure_node(
    path: &Path,
    maj: u32,
    min: u32,
    owner: Option<u32>,
    group: Option<u32>,
) -> Result<(), LinksError> {
    let want = libc::makedev(maj, min);
    let ctx = |what: &str| format!("{what} {}", path.display());
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_char_device() && md.rdev() == want => {}
        Ok(_) => {
            std::fs::remove_file(path).map_err(crate::error::io_err(ctx("removing stale")))?;
            mknod(path, want).map_err(crate::error::io_err(ctx("mknod")))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            mknod(path, want).map_err(crate::error::io_err(ctx("mknod")))?;
        }
        Err(e) => return Err(crate::error::io_err(ctx("stat"))(e)),
    }
    if owner.is_some() || group.is_some() {
        std::os::unix::fs::chown(path, owner, group).map_err(crate::error::io_err(ctx("chown")))?;
    }
    Ok(())
}

fn mknod(path: &Path, dev: libc::dev_t) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: c is a NUL-terminated path; mknod does not keep the pointer.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, dev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes `path` if it is a character device (never anything else).
pub(crate) fn remove_node(path: &Path) -> Result<(), LinksError> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_char_device() => std::fs::remove_file(path)
            .map_err(crate::error::io_err(format!("removing {}", path.display()))),
        _ => Ok(()),
    }
}

/// The owner uid of an existing node.
pub(crate) fn node_owner(path: &Path) -> Option<u32> {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|md| md.file_type().is_char_device())
        .map(|md| md.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_file_parsing() {
        assert_eq!(parse_dev("246:1\n"), Some((246, 1)));
        assert_eq!(parse_dev("10:200"), Some((10, 200)));
        for bad in [
            "",
            "246",
            "246:",
            ":1",
            "a:1",
            "1:b",
            "1:2:3",
            "-1:2",
            "99999999999:1",
        ] {
            assert_eq!(parse_dev(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            sysfs_dev_path(Path::new("/sys/class/net"), "macvtap0", 12),
            PathBuf::from("/sys/class/net/macvtap0/macvtap/tap12/dev")
        );
        assert_eq!(
            node_path(Path::new("/dev"), 12),
            PathBuf::from("/dev/tap12")
        );
    }

    #[test]
    fn nodes_are_made_replaced_and_removed_only_when_char_devices() {
        if !virtgate_testnet::can_use_netns() {
            eprintln!("skipping: mknod needs root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("vgt-links-node-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("tap99");
        // A regular file in the way is replaced by the node (stale path).
        std::fs::write(&p, b"stale").unwrap();
        ensure_node(&p, 1, 3, Some(65534), None).unwrap(); // 1:3 is /dev/null's numbers
        let md = std::fs::symlink_metadata(&p).unwrap();
        assert!(md.file_type().is_char_device());
        assert_eq!(md.rdev(), libc::makedev(1, 3));
        assert_eq!(md.mode() & 0o777, 0o600);
        assert_eq!(node_owner(&p), Some(65534));
        // Right node already there: kept as is.
        ensure_node(&p, 1, 3, None, None).unwrap();
        assert_eq!(node_owner(&p), Some(65534));
        // Wrong numbers: replaced.
        ensure_node(&p, 1, 5, None, None).unwrap();
        assert_eq!(
            std::fs::symlink_metadata(&p).unwrap().rdev(),
            libc::makedev(1, 5)
        );
        remove_node(&p).unwrap();
        assert!(!p.exists());
        // A regular file is never removed by remove_node.
        std::fs::write(&p, b"keep").unwrap();
        remove_node(&p).unwrap();
        assert!(p.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
