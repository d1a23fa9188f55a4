//! Real peers: Linux pppd 2.4.9 + pptp-linux in a QEMU guest dial our daemon
//! (`../shared/realpeer/check-pptp.sh`). The scenarios boot guests (1–2 min each under TCG), so
//! they run one after another in a single test.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_virtgate");

/// `../shared/realpeer` beside the repository, or `$VIRTGATE_REALPEER_DIR` (a worktree that
/// is not beside it).
fn realpeer_dir() -> PathBuf {
    std::env::var_os("VIRTGATE_REALPEER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/realpeer")
        })
}

/// `check-pptp.sh`, or `None` when the test is skipped (not found, not root); missing while
/// `VIRTGATE_REQUIRE_REALPEER=1` fails the test.
fn check_script() -> Option<PathBuf> {
    let script = realpeer_dir().join("check-pptp.sh");
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
        return None;
    }
    virtgate_testnet::require_root().then_some(script)
}

/// One scenario: `check-pptp.sh ARGS -- SERVER_COMMAND...`; its output is printed.
fn run_check(
    script: &Path,
    name: &str,
    args: &[&str],
    server: impl IntoIterator<Item = impl AsRef<OsStr>>,
) -> Output {
    eprintln!("=== real peer: {name}");
    let out = Command::new(script)
        .args(args)
        .arg("--")
        .args(server)
        .output()
        .expect("run check-pptp.sh");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn real_pppd_clients_against_our_daemon() {
    let Some(script) = check_script() else {
        return;
    };
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
        let out = run_check(&script, name, &args, ["sh", "-c", &server]);
        if !out.status.success() {
            failed.push(name);
        }
    }
    let _ = std::fs::remove_dir_all(&state);
    assert!(failed.is_empty(), "real-peer scenarios failed: {failed:?}");
}

/// The wrapper the RADIUS check runs as SERVER_COMMAND (inside the check's namespace): the
/// check's users move from chap-secrets into FreeRADIUS's `users` file, the options file gets
/// `plugin radius.so`, virtgate gets an empty chap-secrets; FreeRADIUS runs on loopback and
/// is stopped after virtgate exits (SIGTERM is passed on to virtgate).
const RADIUS_WRAPPER: &str = r#"#!/bin/sh
S="$1"; BIN="$2"
ip link set lo up
awk '!/^[ \t]*#/ && NF >= 3 { gsub(/"/, "", $3); printf "%s\tCleartext-Password := \"%s\"\n", $1, $3 }' \
    "$RP_CHAP_SECRETS" > "$S/fr/users"
: > "$S/chap-secrets"; chmod 600 "$S/chap-secrets"
{ cat "$RP_OPTIONS"; echo "plugin radius.so"; echo "radius-config-file $S/radiusclient.conf"; } > "$S/options.radius"
sed "s|^option .*|option $S/options.radius|" "$RP_PPTPD_CONF" > "$S/pptpd.conf"
grep -q "^option " "$S/pptpd.conf" || echo "option $S/options.radius" >> "$S/pptpd.conf"
freeradius -X -d "$S/fr" > "$S/fr/out.txt" 2>&1 &
FR=$!
i=0
until grep -q "Ready to process requests" "$S/fr/out.txt" 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 100 ] && { echo "freeradius did not start"; cat "$S/fr/out.txt"; kill $FR; exit 1; }
  sleep 0.1
done
echo "freeradius ready; users: $(cut -f1 "$S/fr/users" | tr '\n' ' ')"
"$BIN" daemon --pptpd-conf "$S/pptpd.conf" --chap-secrets "$S/chap-secrets" \
    --state-dir "$S/state" --socket "$S/virtgate.sock" &
V=$!
trap 'kill -TERM $V 2>/dev/null' TERM INT
wait $V; st=$?
while kill -0 $V 2>/dev/null; do wait $V; st=$?; done
kill $FR 2>/dev/null; wait $FR 2>/dev/null
echo "--- freeradius (last lines)"; tail -n 40 "$S/fr/out.txt"
exit $st
"#;

#[test]
fn real_pppd_clients_authenticated_by_freeradius() {
    let Some(script) = check_script() else {
        return;
    };
    if Command::new("sh")
        .args(["-c", "command -v freeradius"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        eprintln!("skipping: freeradius not installed (apt-get install freeradius)");
        return;
    }
    let mut failed = Vec::new();
    for (name, args) in [
        ("radius mschapv2-mppe", vec!["-s", "mschapv2-mppe"]),
        ("radius bad-password", vec!["-s", "bad-password"]),
    ] {
        let state = std::env::temp_dir().join(format!(
            "virtgate-rp-radius-{}-{}",
            std::process::id(),
            name.replace(' ', "-")
        ));
        let _ = std::fs::remove_dir_all(&state);
        let fr = state.join("fr");
        std::fs::create_dir_all(fr.join("run")).expect("state directory");
        std::fs::write(
            fr.join("radiusd.conf"),
            common::freeradius::config(&fr, "127.0.0.1", "rp-secret"),
        )
        .unwrap();
        std::fs::write(
            state.join("radiusclient.conf"),
            "authserver 127.0.0.1:1812:rp-secret\nacctserver 127.0.0.1:1813:rp-secret\n\
             radius_timeout 2\nradius_retries 3\nnas-identifier realpeer\n",
        )
        .unwrap();
        let wrapper = state.join("server.sh");
        std::fs::write(&wrapper, RADIUS_WRAPPER).unwrap();
        let server = [
            OsStr::new("sh"),
            wrapper.as_os_str(),
            state.as_os_str(),
            BIN.as_ref(),
        ];
        let out = run_check(&script, name, &args, server);
        // The users were in FreeRADIUS only, and its detail file saw the session.
        let detail = std::fs::read_to_string(fr.join("detail")).unwrap_or_default();
        let accounted = !name.ends_with("mschapv2-mppe")
            || (detail.contains("Acct-Status-Type = Start")
                && detail.contains("Acct-Status-Type = Stop"));
        if !out.status.success() || !accounted {
            eprintln!("--- detail file\n{detail}");
            failed.push(name);
        }
        let _ = std::fs::remove_dir_all(&state);
    }
    assert!(
        failed.is_empty(),
        "real-peer RADIUS scenarios failed: {failed:?}"
    );
}
