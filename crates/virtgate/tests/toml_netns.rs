//! `virtgate daemon --config virtgate.toml` (issue 6): one file holds the PPTP server, the pppd
//! options, the users and the daemon's own settings; a reload re-reads it (a new user gets in,
//! live sessions stay), a broken file is refused with the TOML's file:line.

mod common;

use std::time::Duration;

use common::*;
use virtgate_testnet::{require_root, Netns};

fn toml(dir: &TempDir, users: &str) -> String {
    format!(
        "[daemon]\nsocket = \"{}\"\nfirewall = false\ntun = \"vgtoml0\"\n\n\
         [networks]\nstate_dir = \"{}\"\ndefault = false\n\n\
         [pptp]\nlocalip = \"192.168.77.1\"\nremoteip = \"192.168.77.10-20\"\n\n\
         [ppp]\nname = \"gw\"\nrequire-mschap-v2 = true\nrequire-mppe-128 = true\n\
         ms-dns = \"192.168.77.1\"\n\n{users}",
        dir.path("ctl.sock").display(),
        dir.path("state").display(),
    )
}

#[test]
fn a_daemon_runs_from_one_toml_file_and_reloads_it() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("toml");
    let file = dir.write(
        "virtgate.toml",
        &toml(
            &dir,
            "[[users]]\nname = \"ann\"\nsecret = \"a pw with spaces\"\nip = \"192.168.77.15\"\n",
        ),
    );
    let socket = dir.path("ctl.sock");
    let server = Netns::new("tsrv");
    let client = Netns::new("tcli");
    server.link_to(&client, "ts0", "10.97.1.1/24", "tc0", "10.97.1.2/24");
    let d = Proc::spawn(
        &server,
        &["daemon", "--config", file.to_str().unwrap()],
        "info",
    );
    assert!(wait_listen(&server), "daemon did not start:\n{}", d.log());
    // The file's tun, address pool, pinned address and secret are what the daemon uses.
    assert!(
        server.sh_ok("ip -br link").contains("vgtoml0"),
        "{}",
        d.log()
    );
    let (ann, addr) = dial_up(&client, "10.97.1.1", "ann", "a pw with spaces", "vgt1", &d);
    assert_eq!(addr, "192.168.77.15");
    client.sh_ok("ping -c 2 -i 0.2 -W 2 -I vgt1 192.168.77.1");

    // bob is not in the file yet.
    let bob = dial(&client, "10.97.1.1", "bob", "b", "vgt2");
    assert!(bob.wait_line("up ", Duration::from_secs(6)).is_none());
    drop(bob);

    // Add bob and reload: he gets in, ann's session stays.
    std::fs::write(
        &file,
        toml(
            &dir,
            "[[users]]\nname = \"ann\"\nsecret = \"a pw with spaces\"\nip = \"192.168.77.15\"\n\n\
             [[users]]\nname = \"bob\"\nsecret = \"b\"\n",
        ),
    )
    .unwrap();
    let (ok, out, err) = ctl(&socket, &["reload"]);
    assert!(ok, "{out}{err}\n{}", d.log());
    let (bob, bob_addr) = dial_up(&client, "10.97.1.1", "bob", "b", "vgt3", &d);
    assert_eq!(bob_addr, "192.168.77.10");
    client.sh_ok("ping -c 2 -i 0.2 -W 2 -I vgt1 192.168.77.1");

    // A broken file: refused with the TOML's line; both sessions keep passing traffic.
    let broken = toml(
        &dir,
        "[[users]]\nname = \"ann\"\nsecret = \"x\"\nip = \"999.1.1.1\"\n",
    );
    let bad_line = broken.lines().position(|l| l == "[[users]]").unwrap() + 1;
    std::fs::write(&file, broken).unwrap();
    let (ok, _, err) = ctl(&socket, &["reload"]);
    assert!(!ok, "a broken file was accepted");
    assert!(
        err.contains(&format!("{}:{bad_line}: ", file.display())),
        "no file:line in {err}"
    );
    client.sh_ok("ping -c 2 -i 0.2 -W 2 -I vgt1 192.168.77.1");
    client.sh_ok("ping -c 2 -i 0.2 -W 2 -I vgt3 192.168.77.1");
    hang_up(ann);
    hang_up(bob);
    stop(d);
}

fn wait_listen(ns: &Netns) -> bool {
    for _ in 0..100 {
        if String::from_utf8_lossy(&ns.sh("ss -ltn").stdout).contains(":1723") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
