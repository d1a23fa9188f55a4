//! chap-secrets secrets stored as NT hashes: `virtgate hash-password` prints the secret, and a
//! client dials in with MS-CHAPv2 + MPPE-128 against a daemon that only has the hash
//! (namespace test, root).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use virtgate_testnet::{require_root, Netns};

fn hash_password(input: &str) -> std::process::Output {
    let mut c = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

#[test]
fn hash_password_prints_the_chap_secrets_form() {
    let o = hash_password("password1\n");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "nthash:5835048ce94ad0564e29a924a03510ef\n"
    );
    // No newline at the end of input is the same password; an empty one is refused.
    let o = hash_password("password1");
    assert!(String::from_utf8_lossy(&o.stdout).contains("5835048ce94ad0564e29a924a03510ef"));
    let o = hash_password("\n");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty password"));
}

#[test]
fn a_client_dials_in_against_a_hashed_secret() {
    if !require_root() {
        return;
    }
    let secret = String::from_utf8(hash_password("s3cret pass\n").stdout).unwrap();
    let dir = TempDir::new("nthash");
    let (conf, secrets) = write_config(
        &dir,
        "remoteip 192.168.0.100-200\n",
        "",
        &format!("ann pptpd {} *\n", secret.trim()),
    );
    let server = Netns::new("hsrv");
    let client = Netns::new("hcli");
    server.link_to(&client, "vs0", "10.97.9.1/24", "vc0", "10.97.9.2/24");
    let d = daemon(&server, &conf, &secrets, "info");
    let (c, addr) = dial_up(&client, "10.97.9.1", "ann", "s3cret pass", "vgd0", &d);
    assert!(addr.starts_with("192.168.0."), "{addr}");
    // MPPE keys agree: traffic passes both ways.
    let ping = client.sh("ping -c 2 -i 0.2 -W 2 -I vgd0 192.168.0.1");
    assert!(ping.status.success(), "{ping:?}\n{}", d.log());
    hang_up(c);
    // The wrong password is still refused.
    let mut bad = dial(&client, "10.97.9.1", "ann", "s3cret pas", "vgd1");
    let st = bad.wait(std::time::Duration::from_secs(20));
    assert!(st.is_some_and(|s| !s.success()), "{}", bad.log());
    assert!(bad.log().contains("authentication failed"), "{}", bad.log());
    stop(d);
}
