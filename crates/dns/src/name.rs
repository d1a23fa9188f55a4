//! Host names and reverse names.
//!
//! - RFC 1035 §2.3.1 (label syntax), §2.3.4 (63-octet labels, 255-octet names), RFC 1123 §2.1
//!   (labels may start with a digit), RFC 4343 (names compare without regard to ASCII case).
//! - RFC 1035 §3.5 (IN-ADDR.ARPA) and RFC 3596 §2.5 (IP6.ARPA) for PTR queries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;

use crate::error::NameError;

/// Text form of a name is at most 253 characters (255 octets on the wire).
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Lower-cases and checks a host or domain name given as text (configuration, DHCP option 12).
/// A trailing dot is accepted and dropped.
pub(crate) fn normalize(name: &str) -> Result<String, NameError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err(NameError::Empty);
    }
    if trimmed.len() > MAX_NAME {
        return Err(NameError::TooLong {
            name: name.to_owned(),
        });
    }
    for label in trimmed.split('.') {
        if label.len() > MAX_LABEL {
            return Err(NameError::TooLong {
                name: name.to_owned(),
            });
        }
        if !valid_label(label.as_bytes()) {
            return Err(NameError::Invalid {
                name: name.to_owned(),
            });
        }
    }
    Ok(trimmed.to_ascii_lowercase())
}

/// Letters, digits, `-` and `_`, not starting or ending with `-`.
// `_` is outside RFC 952 but dnsmasq accepts it and Windows guests send such names.
fn valid_label(label: &[u8]) -> bool {
    !label.is_empty()
        && label
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        && label.first() != Some(&b'-')
        && label.last() != Some(&b'-')
}

/// The labels of a name from the wire, as byte slices (root: none).
pub(crate) fn labels(name: &Name) -> Vec<&[u8]> {
    name.iter().collect()
}

/// The lower-case dotted key of a wire name, when every label could be a host name label;
/// `None` otherwise (such a name cannot be in the local zone).
pub(crate) fn key(labels: &[&[u8]]) -> Option<String> {
    let mut out = String::new();
    for (i, label) in labels.iter().enumerate() {
        if !valid_label(label) {
            return None;
        }
        if i > 0 {
            out.push('.');
        }
        for &c in label.iter() {
            out.push(char::from(c.to_ascii_lowercase()));
        }
    }
    Some(out)
}

/// Whether `labels` ends with the (lower-case) `suffix` labels.
pub(crate) fn ends_with(labels: &[&[u8]], suffix: &[String]) -> bool {
    if suffix.len() > labels.len() {
        return false;
    }
    labels
        .iter()
        .rev()
        .zip(suffix.iter().rev())
        .all(|(l, s)| l.eq_ignore_ascii_case(s.as_bytes()))
}

/// The address a reverse-lookup name stands for: `d.c.b.a.in-addr.arpa` (four decimal octets)
/// or the 32-nibble `ip6.arpa` form. Partial names (a reverse zone, not an address) give `None`.
pub(crate) fn parse_reverse(labels: &[&[u8]]) -> Option<IpAddr> {
    match labels {
        [d, c, b, a, in_addr, arpa]
            if in_addr.eq_ignore_ascii_case(b"in-addr") && arpa.eq_ignore_ascii_case(b"arpa") =>
        {
            Some(IpAddr::V4(Ipv4Addr::new(
                octet(a)?,
                octet(b)?,
                octet(c)?,
                octet(d)?,
            )))
        }
        [nibbles @ .., ip6, arpa]
            if nibbles.len() == 32
                && ip6.eq_ignore_ascii_case(b"ip6")
                && arpa.eq_ignore_ascii_case(b"arpa") =>
        {
            let mut value: u128 = 0;
            // The least significant nibble comes first.
            for label in nibbles.iter().rev() {
                let [c] = label else { return None };
                let digit = char::from(*c).to_digit(16)?;
                value = (value << 4) | u128::from(digit);
            }
            Some(IpAddr::V6(Ipv6Addr::from(value)))
        }
        _ => None,
    }
}

/// A decimal octet without leading zeros ("0".."255").
// RFC 1035 §3.5 writes octets in decimal; a leading zero would alias another name, so refuse it.
fn octet(label: &[u8]) -> Option<u8> {
    if label.is_empty() || label.len() > 3 || (label.len() > 1 && label.first() == Some(&b'0')) {
        return None;
    }
    let mut v: u16 = 0;
    for &c in label {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u16::from(c - b'0');
    }
    u8::try_from(v).ok()
}

/// The reverse zone covering `addr/prefix`, as libvirt's `localPtr` computes it: whole octets
/// of an IPv4 prefix (a multiple of 8, 8..=24) or whole nibbles of an IPv6 one (a multiple of
/// 4, 4..=124). `None` when the prefix is not on such a boundary.
pub(crate) fn reverse_zone(addr: IpAddr, prefix: u8) -> Option<String> {
    match addr {
        IpAddr::V4(a) => {
            if prefix == 0 || prefix >= 32 || !prefix.is_multiple_of(8) {
                return None;
            }
            let octets = a.octets();
            let n = usize::from(prefix / 8);
            let mut parts: Vec<String> = octets.iter().take(n).map(|o| o.to_string()).collect();
            parts.reverse();
            parts.push("in-addr.arpa".to_owned());
            Some(parts.join("."))
        }
        IpAddr::V6(a) => {
            if prefix == 0 || prefix >= 128 || !prefix.is_multiple_of(4) {
                return None;
            }
            let value = u128::from(a);
            let n = u32::from(prefix / 4);
            let mut parts: Vec<String> = (0..n)
                .map(|i| format!("{:x}", (value >> (124 - 4 * i)) & 0xf))
                .collect();
            parts.reverse();
            parts.push("ip6.arpa".to_owned());
            Some(parts.join("."))
        }
    }
}

/// The name a PTR query for `addr` asks about, e.g. `10.122.168.192.in-addr.arpa`.
#[cfg(test)]
pub(crate) fn reverse_name(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => {
            let [x, y, z, w] = a.octets();
            format!("{w}.{z}.{y}.{x}.in-addr.arpa")
        }
        IpAddr::V6(a) => {
            let value = u128::from(a);
            let mut parts: Vec<String> = (0..32)
                .map(|i| format!("{:x}", (value >> (4 * i)) & 0xf))
                .collect();
            parts.push("ip6.arpa".to_owned());
            parts.join(".")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn normalize_lowercases_and_drops_trailing_dot() {
        assert_eq!(
            normalize("Guest-A.Example.LAN.").unwrap(),
            "guest-a.example.lan"
        );
        assert_eq!(normalize("win_pc").unwrap(), "win_pc");
        assert_eq!(normalize("1host").unwrap(), "1host");
    }

    #[test]
    fn normalize_refuses_bad_names() {
        assert_eq!(normalize(""), Err(NameError::Empty));
        assert_eq!(normalize("."), Err(NameError::Empty));
        for bad in ["-a", "a-", "a..b", "a b", "a/b", "é", ".a", "a.-b"] {
            assert!(
                matches!(normalize(bad), Err(NameError::Invalid { .. })),
                "{bad:?}"
            );
        }
        let long_label = "a".repeat(64);
        assert!(matches!(
            normalize(&long_label),
            Err(NameError::TooLong { .. })
        ));
        assert!(normalize(&"a".repeat(63)).is_ok());
        let long_name = vec!["abcdefg"; 32].join(".");
        assert!(long_name.len() > 253);
        assert!(matches!(
            normalize(&long_name),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn key_only_for_host_like_names() {
        let n = wire("Fixed.Example.LAN.");
        assert_eq!(key(&labels(&n)).as_deref(), Some("fixed.example.lan"));
        let root = Name::root();
        assert_eq!(key(&labels(&root)).as_deref(), Some(""));
        let odd = Name::from_labels(vec![&b"a b"[..], &b"lan"[..]]).unwrap();
        assert_eq!(key(&labels(&odd)), None);
    }

    #[test]
    fn suffix_match_is_by_label_and_case_blind() {
        let n = wire("www.Example.lan.");
        let l = labels(&n);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(ends_with(&l, &s(&["example", "lan"])));
        assert!(ends_with(&l, &s(&["lan"])));
        assert!(ends_with(&l, &s(&[])));
        assert!(!ends_with(&l, &s(&["ample", "lan"])));
        assert!(!ends_with(&l, &s(&["x", "www", "example", "lan"])));
    }

    #[test]
    fn reverse_v4() {
        let n = wire("50.122.168.192.IN-ADDR.arpa.");
        assert_eq!(
            parse_reverse(&labels(&n)),
            Some("192.168.122.50".parse().unwrap())
        );
        for partial in [
            "122.168.192.in-addr.arpa.",
            "256.122.168.192.in-addr.arpa.",
            "050.122.168.192.in-addr.arpa.",
            "x.122.168.192.in-addr.arpa.",
            "1.2.3.4.5.in-addr.arpa.",
            "50.122.168.192.in-addr.example.",
        ] {
            assert_eq!(parse_reverse(&labels(&wire(partial))), None, "{partial}");
        }
        assert_eq!(
            parse_reverse(&labels(&wire("0.0.0.0.in-addr.arpa."))),
            Some("0.0.0.0".parse().unwrap())
        );
    }

    #[test]
    fn reverse_v6_rfc3596_example() {
        // RFC 3596 §2.5: the reverse name of 4321:0:1:2:3:4:567:89ab.
        let n = wire("b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.IP6.ARPA.");
        let ip: IpAddr = "4321:0:1:2:3:4:567:89ab".parse().unwrap();
        assert_eq!(parse_reverse(&labels(&n)), Some(ip));
        assert_eq!(reverse_name(ip) + ".", n.to_ascii().to_ascii_lowercase());
        let short = wire("b.a.9.8.ip6.arpa.");
        assert_eq!(parse_reverse(&labels(&short)), None);
        let two =
            wire("ba.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa.");
        assert_eq!(parse_reverse(&labels(&two)), None);
    }

    #[test]
    fn reverse_zones_like_libvirt() {
        let v4: IpAddr = "192.168.122.1".parse().unwrap();
        assert_eq!(
            reverse_zone(v4, 24).as_deref(),
            Some("122.168.192.in-addr.arpa")
        );
        assert_eq!(
            reverse_zone(v4, 16).as_deref(),
            Some("168.192.in-addr.arpa")
        );
        assert_eq!(reverse_zone(v4, 8).as_deref(), Some("192.in-addr.arpa"));
        assert_eq!(reverse_zone(v4, 20), None);
        assert_eq!(reverse_zone(v4, 32), None);
        assert_eq!(reverse_zone(v4, 0), None);
        let v6: IpAddr = "fd00:1234::1".parse().unwrap();
        assert_eq!(
            reverse_zone(v6, 64).as_deref(),
            Some("0.0.0.0.0.0.0.0.4.3.2.1.0.0.d.f.ip6.arpa")
        );
        assert_eq!(reverse_zone(v6, 62), None);
    }
}
