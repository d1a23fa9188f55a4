//! Guest-port commands without root: what is refused before any interface is touched, with a
//! message that says what to do.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_virtgate");

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("vgt-ports-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("networks")).unwrap();
        Dir(p)
    }

    fn s(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("RUST_LOG");
    for k in ["VIRTGATE_NETWORK", "VIRTGATE_STATE_DIR", "VIRTGATE_MAC"] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_networks_and_state_dirs_are_named() {
    let d = Dir::new("unknown");
    let (code, out, err) = run(&["port", "add", "nosuch", "--state-dir", d.s()], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("no network named 'nosuch' is defined in") && err.contains(d.s()),
        "{err}"
    );
    // A state directory that does not exist is not created by a look-up.
    let missing = d.0.join("absent");
    let (code, _, err) = run(
        &["port", "add", "x", "--state-dir", missing.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("no network named 'x'"), "{err}");
    assert!(!missing.exists());
}

#[test]
fn broken_definitions_are_reported_with_file_and_line() {
    let d = Dir::new("broken");
    std::fs::write(
        d.0.join("networks/bad.xml"),
        "<network>\n  <name>bad</name>\n  <frob/>\n</network>\n",
    )
    .unwrap();
    let (code, _, err) = run(&["port", "add", "bad", "--state-dir", d.s()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.xml:3"), "{err}");
}

#[test]
fn bad_values_are_refused_before_anything_is_made() {
    let d = Dir::new("values");
    std::fs::write(
        d.0.join("networks/n.xml"),
        "<network><name>n</name><bridge name='virbr-x'/></network>\n",
    )
    .unwrap();
    for (flag, value, says) in [
        ("--mac", "52:54:00:zz:00:01", "invalid MAC address"),
        ("--mac", "ff:ff:ff:ff:ff:ff", "unicast"),
        ("--name", "much-too-long-name0", "longer than 15 bytes"),
        ("--name", "a/b", "contains `/`"),
        ("--owner", "a b", "no such user"),
    ] {
        let (code, _, err) = run(
            &["port", "add", "n", flag, value, "--state-dir", d.s()],
            &[],
        );
        assert_eq!(code, 1, "{flag} {value}: {err}");
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
}

#[test]
fn hooks_need_a_network_and_a_valid_mac() {
    let d = Dir::new("hooks");
    let (code, _, err) = run(&["qemu-ifup", "tap0"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("VIRTGATE_NETWORK") && err.contains("virtgate-ifup@NETWORK"),
        "{err}"
    );
    let (code, _, err) = run(
        &["qemu-ifup", "tap0"],
        &[
            ("VIRTGATE_NETWORK", "nosuch"),
            ("VIRTGATE_STATE_DIR", d.s()),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("no network named 'nosuch'"), "{err}");
    std::fs::write(
        d.0.join("networks/n.xml"),
        "<network><name>n</name><bridge name='virbr-x'/></network>\n",
    )
    .unwrap();
    let (code, _, err) = run(
        &["qemu-ifup", "tap0", "--network", "n", "--state-dir", d.s()],
        &[("VIRTGATE_MAC", "nonsense")],
    );
    assert_eq!(code, 1);
    assert!(err.contains("VIRTGATE_MAC"), "{err}");
}
