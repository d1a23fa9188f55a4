//! RADIUS packets on the wire (RFC 2865 §3, §5; RFC 2866 §3; RFC 5176 §2.3): the 20-octet
//! header and the attribute list, decoded and encoded without interpretation. Vendor-Specific
//! attributes (type 26, RFC 2865 §5.26) are split into vendor sub-attributes on demand.
//!
//! Decoding never panics: the Length field must lie in 20..=4096 and within the datagram
//! (octets after Length are padding and ignored, RFC 2865 §3), every attribute's length must
//! be at least 2 and end inside the packet. Unknown codes and attribute types are values.

use std::net::Ipv4Addr;

/// Smallest and largest packet (RFC 2865 §3).
pub const HEADER_LEN: usize = 20;
pub const MAX_PACKET_LEN: usize = 4096;
/// Largest attribute value (an attribute's Length octet covers type and length too).
pub const MAX_ATTR_VALUE: usize = 253;

/// RADIUS codes (RFC 2865 §3, RFC 2866 §3, RFC 5176 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    AccessRequest,
    AccessAccept,
    AccessReject,
    AccountingRequest,
    AccountingResponse,
    AccessChallenge,
    StatusServer,
    DisconnectRequest,
    DisconnectAck,
    DisconnectNak,
    CoaRequest,
    CoaAck,
    CoaNak,
    Unknown(u8),
}

impl Code {
    pub fn from_number(n: u8) -> Code {
        match n {
            1 => Code::AccessRequest,
            2 => Code::AccessAccept,
            3 => Code::AccessReject,
            4 => Code::AccountingRequest,
            5 => Code::AccountingResponse,
            11 => Code::AccessChallenge,
            12 => Code::StatusServer,
            40 => Code::DisconnectRequest,
            41 => Code::DisconnectAck,
            42 => Code::DisconnectNak,
            43 => Code::CoaRequest,
            44 => Code::CoaAck,
            45 => Code::CoaNak,
            n => Code::Unknown(n),
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Code::AccessRequest => 1,
            Code::AccessAccept => 2,
            Code::AccessReject => 3,
            Code::AccountingRequest => 4,
            Code::AccountingResponse => 5,
            Code::AccessChallenge => 11,
            Code::StatusServer => 12,
            Code::DisconnectRequest => 40,
            Code::DisconnectAck => 41,
            Code::DisconnectNak => 42,
            Code::CoaRequest => 43,
            Code::CoaAck => 44,
            Code::CoaNak => 45,
            Code::Unknown(n) => n,
        }
    }

    /// Requests whose authenticator is `MD5(packet with 16 zero octets || secret)`
    /// (RFC 2866 §3, RFC 5176 §2.3) rather than random (Access-Request, Status-Server).
    pub fn has_computed_request_authenticator(self) -> bool {
        matches!(
            self,
            Code::AccountingRequest | Code::DisconnectRequest | Code::CoaRequest
        )
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Code::Unknown(n) => write!(f, "code {n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Why a datagram is not a RADIUS packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("RADIUS packet of {0} octets is shorter than its 20-octet header")]
    Short(usize),
    #[error(
        "RADIUS Length field {length} is outside 20..=4096 or beyond the {got}-octet datagram"
    )]
    BadLength { length: usize, got: usize },
    #[error("RADIUS attribute at offset {offset} has a bad length")]
    BadAttribute { offset: usize },
}

/// One attribute as on the wire: its type and value octets.
#[derive(Clone, PartialEq, Eq)]
pub struct Attr {
    pub typ: u8,
    pub value: Vec<u8>,
}

impl std::fmt::Debug for Attr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Attr({}, {} octets)", self.typ, self.value.len())
    }
}

impl Attr {
    pub fn new(typ: u8, value: impl Into<Vec<u8>>) -> Attr {
        Attr {
            typ,
            value: value.into(),
        }
    }
    pub fn u32(typ: u8, v: u32) -> Attr {
        Attr::new(typ, v.to_be_bytes().to_vec())
    }
    pub fn ipv4(typ: u8, a: Ipv4Addr) -> Attr {
        Attr::new(typ, a.octets().to_vec())
    }
    /// A Vendor-Specific attribute (RFC 2865 §5.26) holding one sub-attribute.
    pub fn vendor(vendor: u32, vtype: u8, value: &[u8]) -> Attr {
        let mut v = Vec::with_capacity(6 + value.len());
        v.extend_from_slice(&vendor.to_be_bytes());
        v.push(vtype);
        v.push((value.len() + 2).min(255) as u8);
        v.extend_from_slice(value);
        Attr::new(crate::attr::VENDOR_SPECIFIC, v)
    }
    /// The value as a 32-bit integer, if it is 4 octets.
    pub fn as_u32(&self) -> Option<u32> {
        let b: [u8; 4] = self.value.as_slice().try_into().ok()?;
        Some(u32::from_be_bytes(b))
    }
    pub fn as_ipv4(&self) -> Option<Ipv4Addr> {
        let b: [u8; 4] = self.value.as_slice().try_into().ok()?;
        Some(Ipv4Addr::from(b))
    }
}

/// A vendor sub-attribute: its Vendor-Type and data.
pub type SubAttr<'a> = (u8, &'a [u8]);

/// The sub-attributes of a Vendor-Specific value in the recommended format (RFC 2865 §5.26):
/// Vendor-Id (4), then Vendor-Type (1), Vendor-Length (1, >= 2), data. `None` when the value
/// does not follow that format.
pub fn vendor_subattrs(value: &[u8]) -> Option<(u32, Vec<SubAttr<'_>>)> {
    let id: [u8; 4] = value.get(..4)?.try_into().ok()?;
    let mut rest = value.get(4..)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let typ = *rest.first()?;
        let len = usize::from(*rest.get(1)?);
        if len < 2 {
            return None;
        }
        let data = rest.get(2..len)?;
        out.push((typ, data));
        rest = rest.get(len..)?;
    }
    Some((u32::from_be_bytes(id), out))
}

/// A decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub code: Code,
    pub identifier: u8,
    pub authenticator: [u8; 16],
    pub attributes: Vec<Attr>,
}

impl Packet {
    pub fn new(code: Code, identifier: u8) -> Packet {
        Packet {
            code,
            identifier,
            authenticator: [0; 16],
            attributes: Vec::new(),
        }
    }

    /// Parses a datagram (no authenticator check: see [`crate::auth`]).
    pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
        let len = packet_length(bytes)?;
        let (code, identifier) = match bytes {
            [c, i, ..] => (Code::from_number(*c), *i),
            _ => return Err(DecodeError::Short(bytes.len())),
        };
        let authenticator: [u8; 16] = bytes
            .get(4..20)
            .and_then(|b| b.try_into().ok())
            .ok_or(DecodeError::Short(bytes.len()))?;
        let mut attributes = Vec::new();
        for r in attr_ranges(bytes.get(..len).unwrap_or_default()) {
            let (typ, start, end) = r?;
            attributes.push(Attr {
                typ,
                value: bytes.get(start..end).unwrap_or_default().to_vec(),
            });
        }
        Ok(Packet {
            code,
            identifier,
            authenticator,
            attributes,
        })
    }

    /// The wire form with the authenticator as it stands. Attribute values longer than 253
    /// octets are cut (callers split long values themselves); the packet is not cut.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 64);
        out.push(self.code.number());
        out.push(self.identifier);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.authenticator);
        for a in &self.attributes {
            let v = a.value.get(..MAX_ATTR_VALUE).unwrap_or(&a.value);
            out.push(a.typ);
            out.push((v.len() + 2) as u8);
            out.extend_from_slice(v);
        }
        let len = out.len().min(u16::MAX as usize) as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out
    }

    /// The first attribute of this type.
    pub fn get(&self, typ: u8) -> Option<&Attr> {
        self.attributes.iter().find(|a| a.typ == typ)
    }

    pub fn get_u32(&self, typ: u8) -> Option<u32> {
        self.get(typ).and_then(Attr::as_u32)
    }

    pub fn get_ipv4(&self, typ: u8) -> Option<Ipv4Addr> {
        self.get(typ).and_then(Attr::as_ipv4)
    }

    /// The first attribute of this type as text (lossy UTF-8).
    pub fn get_string(&self, typ: u8) -> Option<String> {
        self.get(typ)
            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
    }

    /// Every value of this vendor's sub-attribute `vtype`, in order.
    pub fn vendor_values(&self, vendor: u32, vtype: u8) -> Vec<&[u8]> {
        let mut out = Vec::new();
        for a in self
            .attributes
            .iter()
            .filter(|a| a.typ == crate::attr::VENDOR_SPECIFIC)
        {
            if let Some((id, subs)) = vendor_subattrs(&a.value) {
                if id == vendor {
                    out.extend(subs.into_iter().filter(|s| s.0 == vtype).map(|s| s.1));
                }
            }
        }
        out
    }

    /// The first value of this vendor's sub-attribute.
    pub fn vendor_value(&self, vendor: u32, vtype: u8) -> Option<&[u8]> {
        self.vendor_values(vendor, vtype).into_iter().next()
    }

    pub fn push(&mut self, a: Attr) -> &mut Self {
        self.attributes.push(a);
        self
    }
}

/// The Length field, checked against the datagram.
pub(crate) fn packet_length(bytes: &[u8]) -> Result<usize, DecodeError> {
    let len = match bytes.get(2..4) {
        Some(&[a, b]) => usize::from(u16::from_be_bytes([a, b])),
        _ => return Err(DecodeError::Short(bytes.len())),
    };
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Short(bytes.len()));
    }
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&len) || len > bytes.len() {
        return Err(DecodeError::BadLength {
            length: len,
            got: bytes.len(),
        });
    }
    Ok(len)
}

/// `(type, value start, value end)` of each attribute of a packet cut to its Length.
pub(crate) fn attr_ranges(
    packet: &[u8],
) -> impl Iterator<Item = Result<(u8, usize, usize), DecodeError>> + '_ {
    let mut off = HEADER_LEN;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || off >= packet.len() {
            return None;
        }
        let (typ, len) = match (packet.get(off), packet.get(off + 1)) {
            (Some(&t), Some(&l)) => (t, usize::from(l)),
            _ => {
                failed = true;
                return Some(Err(DecodeError::BadAttribute { offset: off }));
            }
        };
        if len < 2 || off + len > packet.len() {
            failed = true;
            return Some(Err(DecodeError::BadAttribute { offset: off }));
        }
        let r = (typ, off + 2, off + len);
        off += len;
        Some(Ok(r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr;

    fn header(code: u8, len: u16) -> Vec<u8> {
        let mut v = vec![code, 9];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&[7; 16]);
        v
    }

    #[test]
    fn unknown_codes_and_attributes_are_values_and_roundtrip() {
        let mut b = header(200, 20 + 3 + 2);
        b.extend_from_slice(&[250, 3, 0xab, 251, 2]);
        let p = Packet::decode(&b).unwrap();
        assert_eq!(p.code, Code::Unknown(200));
        assert_eq!(
            p.attributes,
            vec![Attr::new(250, vec![0xab]), Attr::new(251, vec![])]
        );
        assert_eq!(p.encode(), b);
    }

    #[test]
    fn bad_lengths_are_errors_never_panics() {
        assert_eq!(Packet::decode(&[]), Err(DecodeError::Short(0)));
        assert_eq!(Packet::decode(&[1, 2, 0]), Err(DecodeError::Short(3)));
        assert_eq!(
            Packet::decode(&header(1, 19)[..19]),
            Err(DecodeError::Short(19))
        );
        // Length below the header, beyond the datagram, beyond 4096.
        for len in [0u16, 19, 21, 5000] {
            assert!(matches!(
                Packet::decode(&header(1, len)),
                Err(DecodeError::BadLength { .. })
            ));
        }
        // Attribute lengths 0 and 1, and one running past Length.
        for attr in [[1u8, 0, 0], [1, 1, 0], [1, 4, 0]] {
            let mut b = header(1, 23);
            b.extend_from_slice(&attr);
            assert_eq!(
                Packet::decode(&b),
                Err(DecodeError::BadAttribute { offset: 20 })
            );
        }
        // Octets after Length are padding (RFC 2865 §3) and ignored.
        let mut b = header(2, 20);
        b.extend_from_slice(&[1, 0, 0xff]);
        assert_eq!(Packet::decode(&b).unwrap().attributes, vec![]);
    }

    #[test]
    fn vendor_specific_parsing() {
        let a = Attr::vendor(311, 26, b"\x01S=x");
        assert_eq!(
            vendor_subattrs(&a.value),
            Some((311, vec![(26u8, &b"\x01S=x"[..])]))
        );
        // Too short for a Vendor-Id, sub-attribute length 0/1, or running past the value.
        for bad in [
            &[0u8, 0, 1][..],
            &[0, 0, 1, 55, 7, 0],
            &[0, 0, 1, 55, 7, 1],
            &[0, 0, 1, 55, 7, 9, 1],
        ] {
            assert_eq!(vendor_subattrs(bad), None, "{bad:?}");
        }
        let mut p = Packet::new(Code::AccessAccept, 1);
        p.push(Attr::new(attr::VENDOR_SPECIFIC, vec![0, 0, 1, 55, 7, 1]));
        p.push(a);
        assert_eq!(p.vendor_value(311, 26), Some(&b"\x01S=x"[..]));
        assert_eq!(p.vendor_value(311, 27), None);
        assert_eq!(p.vendor_value(9, 26), None);
    }

    #[test]
    fn typed_getters_check_sizes() {
        let mut p = Packet::new(Code::AccessAccept, 1);
        p.push(Attr::new(attr::SESSION_TIMEOUT, vec![0, 0, 1]));
        p.push(Attr::new(attr::FRAMED_IP_ADDRESS, vec![10, 0, 0, 1, 0]));
        assert_eq!(p.get_u32(attr::SESSION_TIMEOUT), None);
        assert_eq!(p.get_ipv4(attr::FRAMED_IP_ADDRESS), None);
    }
}
