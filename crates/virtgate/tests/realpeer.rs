//! Real peers: Linux pppd 2.4.9 + pptp-linux in a QEMU guest dial our daemon
//! (`../shared/realpeer/check-pptp.sh`). The scenarios boot guests (1–2 min each under TCG), so
//! they run one after another in a single test.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_virtgate");

fn realpeer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/realpeer")
}

#[test]
fn real_pppd_clients_against_our_daemon() {
    let dir = realpeer_dir();
    let script = dir.join("check-pptp.sh");
    if !script.exists() {
        if std::env::var("VIRTGATE_REQUIRE_REALPEER").as_deref() == Ok("1") {
            panic!(
                "{} is missing but VIRTGATE_REQUIRE_REALPEER=1",
                script.display()
            );
        }
        eprintln!(
            "skipping: {} not found (the shared folder is beside the repository in CI)",
            script.display()
        );
        return;
    }
    if !virtgate_testnet::require_root() {
        return;
    }
    // The daemon's own state directory and control socket (removed at the end).
    let state = std::env::temp_dir().join(format!("virtgate-rp-{}", std::process::id()));
    std::fs::create_dir_all(&state).expect("state directory");
    let server = format!(
        "exec {BIN} daemon --pptpd-conf \"$RP_PPTPD_CONF\" --chap-secrets \"$RP_CHAP_SECRETS\" \
         --state-dir '{s}' --socket '{s}/virtgate.sock'",
        s = state.display()
    );
    let mut failed = Vec::new();
    for (name, args) in [
        ("mschapv2-mppe", vec!["-s", "mschapv2-mppe"]),
        ("bad-password", vec!["-s", "bad-password"]),
        ("uplink", vec!["-s", "mschapv2-mppe", "--uplink"]),
    ] {
        eprintln!("=== real peer: {name}");
        let out = Command::new(&script)
            .args(&args)
            .args(["--", "sh", "-c", &server])
            .output()
            .expect("run check-pptp.sh");
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            failed.push(name);
        }
    }
    let _ = std::fs::remove_dir_all(&state);
    assert!(failed.is_empty(), "real-peer scenarios failed: {failed:?}");
}
