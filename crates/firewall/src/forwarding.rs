//! `net.ipv4.ip_forward`: switched on while virtgate runs, put back to what it was on stop
//! (`sysctl -w net.ipv4.ip_forward=1` in the seed). The sysctl belongs to a network namespace:
//! the guard acts on the namespace the process is in.
//!
//! A crash cannot run the restore, and the next start would then take the `1` it finds for the
//! admin's value. So the value found is also written to a small file (one per network
//! namespace, under `/run/virtgate`) that is removed on restore: a start that finds it knows
//! the true previous value.

use std::path::{Path, PathBuf};

use crate::error::FirewallError;

/// The sysctl file for IPv4 forwarding.
pub const IPV4_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Forwarding switched on; the previous value is written back by [`ForwardingGuard::restore`]
/// or, failing that, when the guard is dropped.
#[derive(Debug)]
#[must_use = "dropping the guard restores the previous value at once"]
pub struct ForwardingGuard {
    path: PathBuf,
    previous: String,
    /// Where the previous value is kept while we run (`None`: not kept).
    memo: Option<PathBuf>,
    restored: bool,
}

/// The folder of the saved previous values.
pub const FORWARD_MEMO_DIR: &str = "/run/virtgate";

impl ForwardingGuard {
    /// Sets [`IPV4_FORWARD`] to 1, remembering the old value (also in
    /// [`FORWARD_MEMO_DIR`]`/ip_forward.<netns>`, so a start after a crash restores the admin's
    /// value, not the `1` the crashed run left).
    pub fn enable() -> Result<ForwardingGuard, FirewallError> {
        ForwardingGuard::enable_with_memo(IPV4_FORWARD, default_memo())
    }

    /// Same on any file holding a number (tests use a temporary file); nothing is saved.
    pub fn enable_at(path: impl AsRef<Path>) -> Result<ForwardingGuard, FirewallError> {
        ForwardingGuard::enable_with_memo(path, None)
    }

    /// Sets `path` to 1; the previous value is the one saved in `memo` by a run that did not
    /// restore it, else the value found, which is then saved in `memo` until restore.
    pub fn enable_with_memo(
        path: impl AsRef<Path>,
        memo: Option<PathBuf>,
    ) -> Result<ForwardingGuard, FirewallError> {
        let path = path.as_ref().to_path_buf();
        let found = read_value(&path)?;
        let saved = memo.as_deref().and_then(|m| read_value(m).ok());
        let previous = match saved {
            Some(saved) => {
                if saved != found {
                    tracing::warn!(
                        "{}: a previous virtgate run did not restore it; {saved} will be restored on stop, not {found}",
                        path.display()
                    );
                }
                saved
            }
            None => {
                if let Some(m) = &memo {
                    let saved = m
                        .parent()
                        .map_or(Ok(()), std::fs::create_dir_all)
                        .and_then(|()| std::fs::write(m, format!("{found}\n")));
                    if let Err(e) = saved {
                        tracing::warn!(
                            "cannot save the previous ip_forward in {}: {e}",
                            m.display()
                        );
                    }
                }
                found
            }
        };
        write_value(&path, "1")?;
        if previous != "1" {
            tracing::info!("{}: {previous} -> 1", path.display());
        }
        Ok(ForwardingGuard {
            path,
            previous,
            memo,
            restored: false,
        })
    }

    /// The value found before enabling ("0" or "1").
    pub fn previous(&self) -> &str {
        &self.previous
    }

    /// Writes the previous value back.
    pub fn restore(mut self) -> Result<(), FirewallError> {
        self.restored = true;
        write_value(&self.path, &self.previous)?;
        self.forget_memo();
        Ok(())
    }

    fn forget_memo(&self) {
        if let Some(m) = &self.memo {
            let _ = std::fs::remove_file(m);
        }
    }
}

impl Drop for ForwardingGuard {
    fn drop(&mut self) {
        if !self.restored {
            match write_value(&self.path, &self.previous) {
                Ok(()) => self.forget_memo(),
                Err(e) => tracing::warn!("restoring IPv4 forwarding: {e}"),
            }
        }
    }
}

/// `/run/virtgate/ip_forward.<inode of this network namespace>`: the sysctl is per namespace.
fn default_memo() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata("/proc/self/ns/net").ok()?.ino();
    Some(Path::new(FORWARD_MEMO_DIR).join(format!("ip_forward.{ino}")))
}

fn read_value(path: &Path) -> Result<String, FirewallError> {
    let content = std::fs::read_to_string(path).map_err(|source| FirewallError::Forwarding {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let value = content.trim();
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FirewallError::ForwardingValue {
            path: path.to_path_buf(),
            content: content.chars().take(40).collect(),
        });
    }
    Ok(value.to_string())
}

fn write_value(path: &Path, value: &str) -> Result<(), FirewallError> {
    std::fs::write(path, format!("{value}\n")).map_err(|source| FirewallError::Forwarding {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vgt-fw-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("ip_forward");
        std::fs::write(&p, content).unwrap();
        p
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn a_crashed_run_is_restored_to_the_saved_value() {
        let p = temp("memo", "0\n");
        let memo = p.with_file_name("memo");
        // A run that crashes: enable, then the process dies (no restore, no Drop).
        let g = ForwardingGuard::enable_with_memo(&p, Some(memo.clone())).unwrap();
        std::mem::forget(g);
        assert_eq!(read(&p), "1\n");
        assert_eq!(read(&memo), "0\n");
        // The next start finds 1 but restores 0, and forgets the memo after restoring.
        let g = ForwardingGuard::enable_with_memo(&p, Some(memo.clone())).unwrap();
        assert_eq!(g.previous(), "0");
        g.restore().unwrap();
        assert_eq!(read(&p), "0\n");
        assert!(!memo.exists());
        // Without a memo left behind, the value found is the previous one.
        std::fs::write(&p, "1\n").unwrap();
        let g = ForwardingGuard::enable_with_memo(&p, Some(memo.clone())).unwrap();
        assert_eq!(g.previous(), "1");
        drop(g);
        assert!(!memo.exists());
    }

    #[test]
    fn enable_then_restore_puts_zero_back() {
        let p = temp("restore", "0\n");
        let g = ForwardingGuard::enable_at(&p).unwrap();
        assert_eq!(g.previous(), "0");
        assert_eq!(read(&p), "1\n");
        g.restore().unwrap();
        assert_eq!(read(&p), "0\n");
    }

    #[test]
    fn drop_restores_and_one_stays_one() {
        let p = temp("drop", "0\n");
        {
            let _g = ForwardingGuard::enable_at(&p).unwrap();
            assert_eq!(read(&p), "1\n");
        }
        assert_eq!(read(&p), "0\n");
        std::fs::write(&p, "1\n").unwrap();
        ForwardingGuard::enable_at(&p).unwrap().restore().unwrap();
        assert_eq!(read(&p), "1\n");
    }

    #[test]
    fn garbage_and_missing_files_are_errors_not_panics() {
        let p = temp("garbage", "yes please\n");
        let e = ForwardingGuard::enable_at(&p).unwrap_err();
        assert!(matches!(e, FirewallError::ForwardingValue { .. }), "{e}");
        assert_eq!(read(&p), "yes please\n", "nothing written on error");
        let e = ForwardingGuard::enable_at(p.with_file_name("absent")).unwrap_err();
        assert!(e.to_string().starts_with("cannot read "), "{e}");
    }
}
