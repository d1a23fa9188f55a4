//! Small things the runtime and the store share: atomic file replacement (a crash leaves the
//! old file or the new one, never half of either) and randomness.

use std::collections::hash_map::RandomState;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `contents` to a temporary file next to `path`, flushes it to disk and renames it over
/// `path`; then flushes the directory so the rename itself survives a crash.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Best effort: some file systems refuse fsync on a directory.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// `dir/.name.tmp`: hidden, in the same directory (rename is atomic only within one file
/// system).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// The file's text, `None` if it does not exist. Invalid UTF-8 is replaced (the parsers
/// report the damaged line).
pub fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `N` random bytes from the kernel. Should `getrandom` ever fail, the bytes come from a
/// SipHash keyed once per process from the OS and fed a counter: still unpredictable to a
/// guest, and no reason to stop a network.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if getrandom::fill(&mut out).is_err() {
        fallback_fill(&mut out);
    }
    out
}

fn fallback_fill(buf: &mut [u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let keys = RandomState::new();
    for chunk in buf.chunks_mut(8) {
        let mut h = keys.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(v.get(..chunk.len()).unwrap_or(&v));
    }
}

/// The DNS server's source of query ids.
#[derive(Debug, Default)]
pub struct OsEntropy;

impl virtgate_dns::Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        if getrandom::fill(buf).is_err() {
            fallback_fill(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vgt-vnet-files-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = scratch("atomic");
        let p = d.join("net.leases");
        assert_eq!(read_optional(&p).unwrap(), None);
        write_atomic(&p, b"one\n").unwrap();
        write_atomic(&p, b"two\n").unwrap();
        assert_eq!(read_optional(&p).unwrap().as_deref(), Some("two\n"));
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["net.leases".to_string()]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let d = scratch("fail");
        let p = d.join("x");
        write_atomic(&p, b"old").unwrap();
        // The temporary name is taken by a directory: creating it fails.
        fs::create_dir(d.join(".x.tmp")).unwrap();
        assert!(write_atomic(&p, b"new").is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn damaged_text_is_read_lossily() {
        let d = scratch("lossy");
        let p = d.join("y");
        fs::write(&p, [b'a', 0xff, b'\n']).unwrap();
        assert_eq!(read_optional(&p).unwrap().as_deref(), Some("a\u{fffd}\n"));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn randomness_differs() {
        let a: [u8; 16] = random();
        let b: [u8; 16] = random();
        assert_ne!(a, b);
        let mut x = [0u8; 13];
        let mut y = [0u8; 13];
        fallback_fill(&mut x);
        fallback_fill(&mut y);
        assert_ne!(x, y);
        assert_ne!(x, [0u8; 13]);
    }
}
