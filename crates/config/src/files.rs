//! Where the parsers get the *other* files a configuration names.
//!
//! The parsers are pure: they take `&str`. Three things in these formats point at further files:
//! pppd's `file FILE` option, pptpd.conf's `option FILE`, and a chap-secrets secret written as
//! `@/path`. Those go through a [`FileSource`], so the same code runs on the real filesystem
//! ([`Filesystem`], used by the `read` helpers), on nothing at all ([`NoFiles`], used by the
//! `parse` entry points and fuzzing), or on an in-memory map ([`MemoryFiles`], for tests).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Supplies the contents (and, where known, the permission bits) of named files.
pub trait FileSource {
    /// Reads a whole file as UTF-8 text.
    fn read_to_string(&mut self, path: &Path) -> io::Result<String>;

    /// The file's Unix mode bits, if this source knows them. Used for pppd's warning that a
    /// secrets file is readable by group or others.
    fn mode(&mut self, _path: &Path) -> Option<u32> {
        None
    }
}

/// A source with no files: every read fails. What the pure `parse` entry points use.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFiles;

impl FileSource for NoFiles {
    fn read_to_string(&mut self, _path: &Path) -> io::Result<String> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this parse has no file access (use the `read` helper, which reads from disk)",
        ))
    }
}

/// The real filesystem (`std::fs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Filesystem;

impl FileSource for Filesystem {
    fn read_to_string(&mut self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    #[cfg(unix)]
    fn mode(&mut self, path: &Path) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).ok().map(|m| m.permissions().mode())
    }
}

/// Files held in memory, keyed by path. For tests and for callers that keep configuration
/// somewhere other than a disk.
#[derive(Debug, Clone, Default)]
pub struct MemoryFiles {
    files: BTreeMap<PathBuf, (String, u32)>,
}

impl MemoryFiles {
    /// An empty set of files.
    pub fn new() -> MemoryFiles {
        MemoryFiles::default()
    }

    /// Adds (or replaces) a file with mode `0o600`.
    pub fn insert(&mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> &mut Self {
        self.insert_with_mode(path, text, 0o600)
    }

    /// Adds (or replaces) a file with the given Unix mode bits.
    pub fn insert_with_mode(
        &mut self,
        path: impl Into<PathBuf>,
        text: impl Into<String>,
        mode: u32,
    ) -> &mut Self {
        self.files.insert(path.into(), (text.into(), mode));
        self
    }
}

impl FileSource for MemoryFiles {
    fn read_to_string(&mut self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .map(|(text, _)| text.clone())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file or directory"))
    }

    fn mode(&mut self, path: &Path) -> Option<u32> {
        self.files.get(path).map(|(_, mode)| *mode)
    }
}

/// Resolves `name`, found in `from`, to a path: absolute names stay, relative names are taken
/// relative to the directory of `from`.
///
/// pppd and pptpd open relative names against their working directory (`/` once daemonized);
/// resolving against the naming file's directory is our choice, because it does not depend on
/// where the daemon was started and gives the same answer for the usual absolute paths.
pub(crate) fn resolve(from: &Path, name: &Path) -> PathBuf {
    if name.is_absolute() {
        return name.to_path_buf();
    }
    match from.parent() {
        Some(dir) => dir.join(name),
        None => name.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_relative_to_naming_file() {
        assert_eq!(
            resolve(
                Path::new("/etc/pptpd.conf"),
                Path::new("/etc/ppp/options.pptpd")
            ),
            PathBuf::from("/etc/ppp/options.pptpd")
        );
        assert_eq!(
            resolve(Path::new("/etc/ppp/options"), Path::new("extra")),
            PathBuf::from("/etc/ppp/extra")
        );
        assert_eq!(
            resolve(Path::new("options"), Path::new("extra")),
            PathBuf::from("extra")
        );
    }

    #[test]
    fn memory_files_report_missing_and_mode() {
        let mut m = MemoryFiles::new();
        m.insert_with_mode("/a", "x", 0o644);
        assert_eq!(m.read_to_string(Path::new("/a")).unwrap(), "x");
        assert_eq!(m.mode(Path::new("/a")), Some(0o644));
        let err = m.read_to_string(Path::new("/b")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(NoFiles.read_to_string(Path::new("/a")).is_err());
    }
}
