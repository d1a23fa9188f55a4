//! Replays every fuzz target over its corpus (`fuzz/corpus/<target>/`), its regressions
//! (`fuzz/regressions/<target>/`) and a few thousand seeded pseudo-random inputs (fresh bytes
//! and mutations of the corpus), so `cargo test --workspace` on the stable toolchain exercises
//! what `scripts/fuzz.sh` explores with libFuzzer.
//!
//! A regression listed in `fuzz/regressions/known-failures.txt` (a bug found and reported but
//! not fixed yet) must still fail; once it passes, the test says to take it off the list.
//!
//! A failing input is written to `$CARGO_TARGET_TMPDIR/replay-failures/` so it can be copied
//! into `fuzz/regressions/<target>/` and run with `cargo fuzz run <target> <file>`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use virtgate_fuzzing::{target, Target, TARGETS};

/// Pseudo-random inputs per target.
const RANDOM_INPUTS: u64 = 3000;
/// Corpus limits (the brief for the seed corpora).
const MAX_FILES: usize = 200;
const MAX_BYTES: u64 = 1 << 20;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            // libFuzzer and editors leave dot files; .gitignore keeps them out of git.
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

/// `target/file` entries of known-failures.txt (comments after `#`).
fn known_failures() -> Vec<String> {
    let text = std::fs::read_to_string(fuzz_dir().join("regressions/known-failures.txt"))
        .unwrap_or_default();
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "non-string panic".to_owned())
}

/// Runs one input; returns the panic message if the target panicked.
fn try_run(t: Target, data: &[u8]) -> Option<String> {
    catch_unwind(AssertUnwindSafe(|| (t.run)(data)))
        .err()
        .map(|e| panic_text(&*e))
}

/// Runs one input that must pass; on failure saves it and fails the test.
fn must_pass(t: Target, label: &str, data: &[u8]) {
    if let Some(msg) = try_run(t, data) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("replay-failures");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{}-{}", t.name, label.replace('/', "_")));
        let _ = std::fs::write(&file, data);
        panic!(
            "{} failed on {label} ({} bytes, saved as {}): {msg}",
            t.name,
            data.len(),
            file.display()
        );
    }
}

/// splitmix64: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// A libFuzzer-like mutation of `base`: bit flips, byte sets to interesting values, inserts,
/// deletes, copies within the input, splices with another corpus file, truncation.
fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = [0, 1, 0x7f, 0x80, 0xff, b'\n', b' ', b'#'][rng.below(8)];
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                for _ in 0..n {
                    let b = rng.byte();
                    v.insert(i, b);
                }
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = (1 + rng.below(16)).min(len - i);
                v.drain(i..i + n);
            }
            4 if len > 1 => {
                let from = rng.below(len);
                let n = (1 + rng.below(32)).min(len - from);
                let chunk = v[from..from + n].to_vec();
                let to = rng.below(len);
                let end = (to + n).min(len);
                v[to..end].copy_from_slice(&chunk[..end - to]);
            }
            5 if !other.is_empty() => {
                let cut = rng.below(v.len() + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            6 if len > 0 => v.truncate(rng.below(len)),
            _ if len > 1 => {
                // 16/32-bit integer tweaks (lengths, call ids, sequence numbers).
                let i = rng.below(len - 1);
                let x = u16::from_be_bytes([v[i], v[i + 1]]);
                let y = match rng.below(4) {
                    0 => x.wrapping_add(1),
                    1 => x.wrapping_sub(1),
                    2 => x.swap_bytes(),
                    _ => u16::MAX,
                };
                v[i..i + 2].copy_from_slice(&y.to_be_bytes());
            }
            _ => v.push(rng.byte()),
        }
    }
    v
}

fn replay(name: &str) {
    let t = target(name).unwrap_or_else(|| panic!("no target {name} in TARGETS"));
    let corpus_dir = fuzz_dir().join("corpus").join(name);
    let corpus: Vec<(String, Vec<u8>)> = files_in(&corpus_dir)
        .into_iter()
        .map(|p| {
            let label = format!("corpus/{}", p.file_name().unwrap().to_string_lossy());
            (label, std::fs::read(&p).unwrap())
        })
        .collect();
    assert!(
        !corpus.is_empty(),
        "{} has no seed corpus in {}",
        name,
        corpus_dir.display()
    );
    for (label, data) in &corpus {
        must_pass(t, label, data);
    }

    let known = known_failures();
    for p in files_in(&fuzz_dir().join("regressions").join(name)) {
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&p).unwrap();
        if known.contains(&format!("{name}/{file}")) {
            let outcome = try_run(t, &data);
            assert!(
                outcome.is_some(),
                "regressions/{name}/{file} passes now: take it off known-failures.txt"
            );
            eprintln!(
                "known failure still fails: {name}/{file}: {}",
                outcome.unwrap_or_default()
            );
        } else {
            must_pass(t, &format!("regressions/{file}"), &data);
        }
    }

    // The seed depends on the name only, so a failure reproduces run after run.
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = Rng(seed);
    for i in 0..RANDOM_INPUTS {
        let data = if i % 4 == 0 {
            let n = rng.below(if i % 8 == 0 { 32 } else { 600 });
            (0..n).map(|_| rng.byte()).collect()
        } else {
            let base = &corpus[rng.below(corpus.len())].1;
            let other = &corpus[rng.below(corpus.len())].1;
            mutate(&mut rng, base, other)
        };
        must_pass(t, &format!("random-{i}"), &data);
    }
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { replay(stringify!($name)); })*
        const REPLAYED: &[&str] = &[$(stringify!($name)),*];
    };
}

replay_tests!(
    pptp_control_roundtrip,
    pptp_deframer,
    pptp_control_server,
    pptp_control_client,
    pptp_gre_header_roundtrip,
    pptp_gre_channel,
    config_pptpd_conf,
    config_ppp_options,
    config_chap_secrets,
    config_libvirt_network,
    config_toml,
    ppp_frame_roundtrip,
    ppp_negotiation,
    ppp_auth,
    ppp_mppe,
    ppp_session,
    dhcp_lease_engine,
    dhcp_leasefile,
    dns_server,
    radius_packet,
    control_request,
);

#[test]
fn every_target_is_replayed_has_a_fuzz_binary_and_a_small_corpus() {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names, REPLAYED, "replay_tests! and TARGETS differ");
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    // Parsed, not searched: cargo-fuzz must be able to read it.
    let manifest: toml::Table = toml::from_str(&manifest)
        .unwrap_or_else(|e| panic!("fuzz/Cargo.toml is not valid TOML: {e}"));
    let bins: Vec<(String, String)> = manifest
        .get("bin")
        .and_then(|b| b.as_array())
        .expect("fuzz/Cargo.toml has [[bin]] tables")
        .iter()
        .map(|b| {
            let field = |k: &str| b.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            (field("name"), field("path"))
        })
        .collect();
    assert_eq!(bins.len(), TARGETS.len(), "[[bin]] tables: {bins:?}");
    for t in TARGETS {
        let bin = fuzz_dir()
            .join("fuzz_targets")
            .join(format!("{}.rs", t.name));
        let src =
            std::fs::read_to_string(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        assert!(
            src.contains(&format!("virtgate_fuzzing::{}(", t.name)),
            "{} does not call virtgate_fuzzing::{}",
            bin.display(),
            t.name
        );
        assert!(
            bins.contains(&(t.name.to_string(), format!("fuzz_targets/{}.rs", t.name))),
            "fuzz/Cargo.toml has no [[bin]] {} at fuzz_targets/{}.rs",
            t.name,
            t.name
        );
        let files = files_in(&fuzz_dir().join("corpus").join(t.name));
        let bytes: u64 = files
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        assert!(
            !files.is_empty() && files.len() < MAX_FILES && bytes < MAX_BYTES,
            "corpus of {}: {} files, {bytes} bytes",
            t.name,
            files.len()
        );
    }
    for entry in known_failures() {
        assert!(
            fuzz_dir().join("regressions").join(&entry).is_file(),
            "known-failures.txt names {entry}, which does not exist"
        );
    }
}

#[test]
fn committed_corpus_holds_every_generated_seed() {
    for s in virtgate_fuzzing::seeds::all() {
        let p = fuzz_dir().join("corpus").join(s.target).join(&s.name);
        let got = std::fs::read(&p).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo run -p virtgate-fuzzing --example gen_corpus`",
                p.display()
            )
        });
        assert!(
            got == s.bytes,
            "{} differs from the generator; run `cargo run -p virtgate-fuzzing --example gen_corpus`",
            p.display()
        );
    }
}

#[test]
fn mutations_are_deterministic_and_vary() {
    let base = b"localip 10.0.0.1\nremoteip 10.0.0.2-9\n";
    let a: Vec<Vec<u8>> = {
        let mut r = Rng(7);
        (0..50).map(|_| mutate(&mut r, base, b"xyz")).collect()
    };
    let b: Vec<Vec<u8>> = {
        let mut r = Rng(7);
        (0..50).map(|_| mutate(&mut r, base, b"xyz")).collect()
    };
    assert_eq!(a, b);
    let distinct: std::collections::BTreeSet<&Vec<u8>> = a.iter().collect();
    assert!(
        distinct.len() > 40,
        "only {} distinct mutations",
        distinct.len()
    );
}
