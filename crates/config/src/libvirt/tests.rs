//! Unit tests for the value types and the name rules; whole documents are tested in
//! crates/config/tests/libvirt_*.rs.

use super::validate::{check_device_name, check_dns_name, check_host_name, check_network_name};
use super::*;

#[test]
fn mac_addresses() {
    let m: MacAddr = "52:54:00:AB:cd:1".parse().unwrap();
    assert_eq!(m, MacAddr([0x52, 0x54, 0x00, 0xab, 0xcd, 0x01]));
    assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
    assert!(!m.is_multicast());
    assert!("01:00:5e:00:00:01"
        .parse::<MacAddr>()
        .unwrap()
        .is_multicast());
    assert!("ff:ff:ff:ff:ff:ff"
        .parse::<MacAddr>()
        .unwrap()
        .is_multicast());
    for bad in [
        "",
        "52:54:00:ab:cd",
        "52:54:00:ab:cd:01:02",
        "52:54:00:ab:cd:",
        "52:54:00:ab:cd:001",
        "52-54-00-ab-cd-01",
        "52:54:00:ab:cd:0g",
        "52:54:00:ab:cd:+1",
    ] {
        assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn uuids() {
    let canonical = "81ff0d90-c91e-6742-64da-4a736edb9a9b";
    let u: Uuid = canonical.parse().unwrap();
    assert_eq!(u.to_string(), canonical);
    // libvirt's leniency: no dashes, upper case, surrounding blanks, dashes between pairs.
    for same in [
        "81ff0d90c91e674264da4a736edb9a9b",
        "  81FF0D90-C91E-6742-64DA-4A736EDB9A9B\n",
        "81-ff-0d-90-c9-1e-67-42-64-da-4a-73-6e-db-9a-9b",
    ] {
        assert_eq!(same.parse::<Uuid>(), Ok(u), "{same:?}");
    }
    for bad in [
        "",
        "81ff0d90-c91e-6742-64da-4a736edb9a9",
        "81ff0d90-c91e-6742-64da-4a736edb9a9b0",
        "-81ff0d90c91e674264da4a736edb9a9b",
        "81ff0d90c91e674264da4a736edb9a9b-",
        "81ff0d90--c91e674264da4a736edb9a9b",
        "81ff0d9-0c91e674264da4a736edb9a9b",
        "81ff0d90-c91e-6742-64da-4a736edb9a9x",
        "81ff0d90 c91e 6742 64da 4a736edb9a9b",
    ] {
        assert!(bad.parse::<Uuid>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn subnet_arithmetic() {
    assert_eq!(prefix_mask(0), Ipv4Addr::UNSPECIFIED);
    assert_eq!(prefix_mask(1), Ipv4Addr::new(128, 0, 0, 0));
    assert_eq!(prefix_mask(25), Ipv4Addr::new(255, 255, 255, 128));
    assert_eq!(prefix_mask(32), Ipv4Addr::BROADCAST);
    assert_eq!(prefix_mask(200), Ipv4Addr::BROADCAST);
    let ip = IpDef::new(Ipv4Addr::new(10, 20, 0, 129), 25);
    assert_eq!(ip.network(), Ipv4Addr::new(10, 20, 0, 128));
    assert_eq!(ip.broadcast(), Ipv4Addr::new(10, 20, 0, 255));
    assert!(ip.contains(Ipv4Addr::new(10, 20, 0, 200)));
    assert!(!ip.contains(Ipv4Addr::new(10, 20, 0, 127)));
}

#[test]
fn lease_durations_saturate() {
    let l = Lease::Finite {
        expiry: u64::MAX,
        unit: LeaseUnit::Hours,
    };
    assert_eq!(l.duration(), Some(Duration::from_secs(u64::MAX)));
    assert_eq!(LeaseUnit::Minutes.seconds(), 60);
}

#[test]
fn network_names() {
    for good in ["default", "lab-1", "a_b.c+d:e@f", "réseau", "n"] {
        assert_eq!(check_network_name(good), Ok(()), "{good}");
    }
    let long = "x".repeat(validate::MAX_NAME_LEN + 1);
    for bad in [
        "",
        "a/b",
        "a b",
        "tab\t",
        "-x",
        ".hidden",
        "..",
        "nl\n",
        long.as_str(),
    ] {
        assert!(check_network_name(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn device_names() {
    for good in [
        "virbr0",
        "br-lan",
        "eth0.100",
        "enp0s31f6",
        "a23456789012345",
    ] {
        assert_eq!(check_device_name(good, "bridge"), Ok(()), "{good}");
    }
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "a:b",
        "a b",
        "virbr%d",
        "a234567890123456",
    ] {
        assert!(
            check_device_name(bad, "bridge").is_err(),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn dns_names() {
    for good in ["a", "example.com", "a-b.c_d", "x1.example"] {
        assert_eq!(check_dns_name(good), Ok(()), "{good}");
    }
    let label64 = "a".repeat(64);
    for bad in [
        "",
        ".",
        "a..b",
        "a.",
        "-a",
        "a-",
        "a b",
        "ä.example",
        label64.as_str(),
    ] {
        assert!(check_dns_name(bad).is_err(), "{bad:?} accepted");
    }
    assert!(check_host_name("_x").is_err());
    assert!(check_host_name("1host").is_ok());
}

#[test]
fn forward_mode_words() {
    for mode in [
        ForwardMode::Nat,
        ForwardMode::Route,
        ForwardMode::Open,
        ForwardMode::Bridge,
        ForwardMode::Vepa,
        ForwardMode::Private,
        ForwardMode::Passthrough,
    ] {
        assert_eq!(mode.as_str().parse::<ForwardMode>(), Ok(mode));
        assert_eq!(
            mode.is_routed(),
            matches!(
                mode,
                ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open
            )
        );
    }
    assert!("hostdev".parse::<ForwardMode>().is_err());
}
