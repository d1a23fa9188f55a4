//! The seed's configuration, written to disk the way shared/realpeer/check-pptp.sh writes it,
//! read back through the `read` helpers: pptpd.conf → its `option` file → chap-secrets.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use virtgate_config::{AddressPool, AuthMethod, ChapSecrets, MppePolicy, PppOptions, PptpdConf};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "virtgate-config-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const OPTIONS: &str = "name pptpd
refuse-pap
refuse-chap
refuse-mschap
require-mschap-v2
require-mppe-128
ms-dns 8.8.8.8
ms-dns 8.8.4.4
proxyarp
nodefaultroute
lock
nobsdcomp
novj
novjccomp
nologfd
";

#[test]
fn seed_configuration_read_from_disk() {
    let dir = TempDir::new("seed");
    let run = &dir.0;
    let conf_path = run.join("pptpd.conf");
    std::fs::write(
        &conf_path,
        format!(
            "option {}\nlocalip 192.168.0.1\nremoteip 192.168.0.100-200\n",
            run.join("options.pptpd").display()
        ),
    )
    .unwrap();
    std::fs::write(run.join("options.pptpd"), OPTIONS).unwrap();
    let secrets_path = run.join("chap-secrets");
    std::fs::write(
        &secrets_path,
        "# client\tserver\tsecret\t\tIP addresses\nuser1\tpptpd\tpassword1\t*\n",
    )
    .unwrap();
    std::fs::set_permissions(&secrets_path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let conf = PptpdConf::read(&conf_path).unwrap();
    assert!(conf.warnings.is_empty(), "{:?}", conf.warnings);
    let conf = conf.value;
    assert_eq!(conf.localip, PptpdConf::builtin_default().localip);
    assert_eq!(conf.remoteip, PptpdConf::builtin_default().remoteip);

    let opts = conf.read_ppp_options().unwrap();
    let (opts, warnings) = opts.into_parts();
    assert_eq!(opts, PppOptions::builtin_default());
    let ignored: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(ignored.len(), 5, "{ignored:?}");
    assert!(ignored[0].ends_with("options.pptpd:11: warning: option 'lock' ignored: it locks a serial port and a PPTP link has none"));
    assert_eq!(opts.auth_policy().server_requests, [AuthMethod::MsChapV2]);
    assert_eq!(opts.mppe, MppePolicy::STRONGEST);

    let secrets = ChapSecrets::read(&secrets_path).unwrap();
    assert!(secrets.warnings.is_empty(), "{:?}", secrets.warnings);
    let secrets = secrets.value;
    let server = opts.name.as_deref().unwrap();
    let s = secrets.lookup("user1", server).unwrap();
    assert_eq!(s.secret, "password1");
    assert!(secrets.usable_for_server(server));

    // What the daemon does on an AddressRequest: a pool address the secret permits.
    let mut pool = AddressPool::from_conf(&conf);
    let got = pool.allocate_permitted(&s.addrs).unwrap();
    assert_eq!(got, Ipv4Addr::new(192, 168, 0, 100));
    assert_eq!(s.addrs.choose(Some(got)), Some(got));
    assert_eq!(conf.local_ip_for(0), Some(Ipv4Addr::new(192, 168, 0, 1)));
}

#[test]
fn errors_from_read_name_the_file() {
    let dir = TempDir::new("errors");
    let opts = dir.0.join("options");
    std::fs::write(&opts, "proxyarp\nrequire-mschap-v2 frobnicate\n").unwrap();
    let e = PppOptions::read(&opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2: unrecognized option 'frobnicate' (pppd refuses it too); check the spelling or remove it",
            opts.display()
        )
    );
    let missing = dir.0.join("nope.conf");
    let e = PptpdConf::read(&missing).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read", missing.display())),
        "{e}"
    );
    std::fs::write(
        dir.0.join("bad-utf8"),
        [0x6e, 0x61, 0x6d, 0x65, 0x20, 0xff, 0x0a],
    )
    .unwrap();
    let e = PppOptions::read(dir.0.join("bad-utf8")).unwrap_err();
    assert!(e.message.contains("is not UTF-8 text"), "{e}");
}
