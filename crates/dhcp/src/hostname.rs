//! Host names clients send (RFC 2132 §3.14 option 12, RFC 4702 option 81) turned into one DNS
//! label (RFC 1035 §2.3.1 letters, digits, hyphen; at most 63 octets) for the network's DNS.

/// The first label of `raw`, lower-cased, with characters a DNS label can't hold mapped to `-`;
/// `None` if nothing usable remains.
///
/// Choices the RFCs leave open: a name with dots keeps only its first label (dnsmasq does the same
/// and serves it under the network's own domain); `_` and spaces become `-` rather than making the
/// whole name unusable (dnsmasq would drop such a name; Windows clients do send `_`); a trailing
/// NUL (sent by some Microsoft clients) is ignored.
pub fn sanitize(raw: &[u8]) -> Option<String> {
    let raw = match raw.iter().position(|&b| b == 0) {
        Some(n) => &raw[..n],
        None => raw,
    };
    let first = raw.split(|&b| b == b'.').next().unwrap_or(&[]);
    let mut out = String::with_capacity(first.len().min(63));
    for &b in first {
        let c = match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' => b as char,
            b'A'..=b'Z' => b.to_ascii_lowercase() as char,
            b'_' | b' ' => '-',
            _ => continue,
        };
        if out.len() == 63 {
            break;
        }
        out.push(c);
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        None
    } else {
        Some(trimmed.to_string())
    }
}

/// The name in an RFC 4702 client FQDN option (flags, two RCODE octets, then the name in wire
/// format when the E bit is set or in ASCII otherwise), first label only.
pub fn from_client_fqdn(data: &[u8]) -> Option<String> {
    let flags = *data.first()?;
    let name = data.get(3..)?;
    if flags & 0x04 != 0 {
        // Canonical wire encoding (RFC 4702 §2.1): first label = length octet + bytes.
        let len = usize::from(*name.first()?);
        sanitize(name.get(1..1 + len)?)
    } else {
        sanitize(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_to_one_label() {
        assert_eq!(sanitize(b"guest-a").as_deref(), Some("guest-a"));
        assert_eq!(sanitize(b"Guest-A.example.org").as_deref(), Some("guest-a"));
        assert_eq!(sanitize(b"DESKTOP_1234\0").as_deref(), Some("desktop-1234"));
        assert_eq!(sanitize(b"my host!").as_deref(), Some("my-host"));
        assert_eq!(sanitize(b"-edge-").as_deref(), Some("edge"));
        assert_eq!(sanitize(b"\xff\xfe").as_deref(), None);
        assert_eq!(sanitize(b"").as_deref(), None);
        assert_eq!(sanitize(b".example.org").as_deref(), None);
        assert_eq!(sanitize(b"---").as_deref(), None);
        let long = [b'a'; 100];
        assert_eq!(sanitize(&long).map(|s| s.len()), Some(63));
    }

    #[test]
    fn client_fqdn_both_encodings() {
        // E bit set: wire format "vm1.example.org".
        let wire = b"\x05\0\0\x03vm1\x07example\x03org\0";
        assert_eq!(from_client_fqdn(wire).as_deref(), Some("vm1"));
        // ASCII (deprecated encoding).
        assert_eq!(from_client_fqdn(b"\x01\0\0vm2.lan").as_deref(), Some("vm2"));
        // Truncated: no panic, no name.
        assert_eq!(from_client_fqdn(b"\x05\0\0\x09ab"), None);
        assert_eq!(from_client_fqdn(b"\x05\0"), None);
        assert_eq!(from_client_fqdn(b""), None);
    }
}
