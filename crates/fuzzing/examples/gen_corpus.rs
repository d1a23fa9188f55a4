//! Writes the seed corpora (`virtgate_fuzzing::seeds`) into `fuzz/corpus/<target>/`.
//!
//! `cargo run -p virtgate-fuzzing --example gen_corpus` — existing files are kept (libFuzzer's
//! own finds may sit beside the seeds), seeds are overwritten with their current bytes.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let seeds = virtgate_fuzzing::seeds::all();
    for s in &seeds {
        let dir = root.join(s.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&s.name), &s.bytes)?;
    }
    for t in virtgate_fuzzing::TARGETS {
        let n = seeds.iter().filter(|s| s.target == t.name).count();
        let bytes: usize = seeds
            .iter()
            .filter(|s| s.target == t.name)
            .map(|s| s.bytes.len())
            .sum();
        println!("{:<28} {n:>4} seeds {bytes:>8} bytes", t.name);
    }
    Ok(())
}
