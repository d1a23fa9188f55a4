//! Real peers for virtual networks (issue 4): two QEMU guests running ISC dhclient on the
//! bridge of `virtgate daemon --network-xml` (`../shared/realpeer/check-vmnet.sh`): leases, the
//! reservation, DNS for outside names and for guests' names, masquerade, guest to guest. The
//! guests boot under TCG, so this takes a minute or two.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_virtgate");

fn realpeer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/realpeer")
}

#[test]
fn real_dhclient_guests_on_the_daemons_default_network() {
    let script = realpeer_dir().join("check-vmnet.sh");
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
    // The control socket goes into the check's own state directory, so a daemon elsewhere on
    // the machine (the socket path is not per namespace) is never in the way.
    let server = format!(
        "exec {BIN} daemon --network-xml \"$RV_NETWORK_XML\" --state-dir \"$RV_STATE_DIR\" \
         --socket \"$RV_STATE_DIR/virtgate.sock\""
    );
    let out = Command::new(&script)
        .args(["--", "sh", "-c", &server])
        .output()
        .expect("run check-vmnet.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.lines().any(|l| l == "11 passed, 0 failed"),
        "check-vmnet.sh did not pass all 11 expectations"
    );
    assert!(out.status.success());
}
