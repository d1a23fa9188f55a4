//! `net.ipv4.ip_forward`: switched on while virtgate runs, put back to what it was on stop
//! (`sysctl -w net.ipv4.ip_forward=1` in the seed). The sysctl belongs to a network namespace:
//! the guard acts on the namespace the process is in.

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
    restored: bool,
}

impl ForwardingGuard {
    /// Sets [`IPV4_FORWARD`] to 1, remembering the old value.
    pub fn enable() -> Result<ForwardingGuard, FirewallError> {
        ForwardingGuard::enable_at(IPV4_FORWARD)
    }

    /// Same on any file holding a number (tests use a temporary file).
    pub fn enable_at(path: impl AsRef<Path>) -> Result<ForwardingGuard, FirewallError> {
        let path = path.as_ref().to_path_buf();
        let previous = read_value(&path)?;
        write_value(&path, "1")?;
        if previous != "1" {
            tracing::info!("{}: {previous} -> 1", path.display());
        }
        Ok(ForwardingGuard {
            path,
            previous,
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
        write_value(&self.path, &self.previous)
    }
}

impl Drop for ForwardingGuard {
    fn drop(&mut self) {
        if !self.restored {
            if let Err(e) = write_value(&self.path, &self.previous) {
                tracing::warn!("restoring IPv4 forwarding: {e}");
            }
        }
    }
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
