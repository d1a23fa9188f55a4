//! Ethernet II (RFC 894) frames carrying IPv4 (RFC 791 §3.1) and UDP (RFC 768), built and parsed
//! by hand: the load generator sends from many MAC addresses that are not its interface's and
//! before any of its clients has an address, so it speaks to an `AF_PACKET` socket, below the
//! kernel's IP stack. Checksums are RFC 1071's one's-complement sum.
//!
//! Parsing never panics and never trusts a length field: every range is checked against the
//! bytes that arrived. Only what a DHCP client needs is accepted (no VLAN tags, no IP options
//! beyond skipping them, no fragments).

use std::net::Ipv4Addr;

/// EtherType of IPv4 (RFC 894).
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// The broadcast MAC address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const UDP_LEN: usize = 8;
/// Offset of the UDP payload in frames we build (no IP options).
pub const PAYLOAD_AT: usize = ETH_LEN + IPV4_LEN + UDP_LEN;

// ISC dhclient marks its packets IPTOS_LOWDELAY (0x10) and sends them with TTL 128 from its raw
// socket; we do the same so the servers see what a guest sends.
const TOS: u8 = 0x10;
const TTL: u8 = 128;

/// One UDP datagram inside an Ethernet frame, as sent or as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// Why a received frame was not taken as a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("{0} octets is too short for Ethernet + IPv4 + UDP headers")]
    TooShort(usize),
    #[error("EtherType {0:#06x} is not IPv4")]
    NotIpv4(u16),
    #[error("IP version {0} is not 4")]
    BadVersion(u8),
    #[error("IPv4 header length {0} octets is outside 20..=60 or past the frame")]
    BadHeaderLength(usize),
    #[error("IPv4 total length {total} disagrees with the {available} octets received")]
    BadTotalLength { total: usize, available: usize },
    #[error("IP protocol {0} is not UDP")]
    NotUdp(u8),
    #[error("fragment (offset or more-fragments set): not reassembled")]
    Fragment,
    #[error("UDP length {udp} disagrees with the {available} octets after the IP header")]
    BadUdpLength { udp: usize, available: usize },
}

/// RFC 1071 one's-complement sum of 16-bit words (an odd last octet is padded with zero),
/// folded but not complemented, starting from `initial`.
fn sum16(initial: u32, bytes: &[u8]) -> u32 {
    let mut sum = initial;
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        if let &[hi, lo] = w {
            sum += u32::from(u16::from_be_bytes([hi, lo]));
        }
    }
    if let &[last] = words.remainder() {
        sum += u32::from(last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// The RFC 1071 checksum of `bytes` (complement of the folded sum).
pub fn checksum(bytes: &[u8]) -> u16 {
    // sum16 folds to 16 bits, so the cast keeps every bit.
    !(sum16(0, bytes) as u16)
}

/// The UDP checksum over the RFC 768 pseudo-header and `udp` (header + payload, with the
/// checksum field zero). A computed 0 is sent as 0xffff (RFC 768: 0 means "none").
fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = IPPROTO_UDP;
    // Callers keep datagrams far below 64 KiB (a DHCP message is a few hundred octets).
    let len = u16::try_from(udp.len()).unwrap_or(u16::MAX);
    pseudo[10..12].copy_from_slice(&len.to_be_bytes());
    let c = !(sum16(sum16(0, &pseudo), udp) as u16);
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// The frame for `d`: Ethernet II, a 20-octet IPv4 header (id 0, no fragmentation) and UDP with
/// its checksum. `None` if the payload does not fit one IPv4 datagram.
pub fn build(d: &Datagram<'_>) -> Option<Vec<u8>> {
    let udp_len = u16::try_from(UDP_LEN + d.payload.len()).ok()?;
    let total = u16::try_from(IPV4_LEN + UDP_LEN + d.payload.len()).ok()?;
    let mut f = Vec::with_capacity(PAYLOAD_AT + d.payload.len());
    f.extend_from_slice(&d.dst_mac);
    f.extend_from_slice(&d.src_mac);
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    // IPv4 header, RFC 791 §3.1.
    let ip_at = f.len();
    f.extend_from_slice(&[0x45, TOS]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]); // identification, flags, fragment offset
    f.extend_from_slice(&[TTL, IPPROTO_UDP, 0, 0]);
    f.extend_from_slice(&d.src_ip.octets());
    f.extend_from_slice(&d.dst_ip.octets());
    let ip_sum = checksum(f.get(ip_at..)?);
    f.get_mut(ip_at + 10..ip_at + 12)?
        .copy_from_slice(&ip_sum.to_be_bytes());
    // UDP header, RFC 768.
    let udp_at = f.len();
    f.extend_from_slice(&d.src_port.to_be_bytes());
    f.extend_from_slice(&d.dst_port.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(d.payload);
    let udp_sum = udp_checksum(d.src_ip, d.dst_ip, f.get(udp_at..)?);
    f.get_mut(udp_at + 6..udp_at + 8)?
        .copy_from_slice(&udp_sum.to_be_bytes());
    Some(f)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at + 2)? {
        &[hi, lo] => Some(u16::from_be_bytes([hi, lo])),
        _ => None,
    }
}

fn mac_at(b: &[u8], at: usize) -> Option<[u8; 6]> {
    b.get(at..at + 6)?.try_into().ok()
}

fn ip_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

/// The UDP datagram in an Ethernet frame. Checksums are not verified: on a veth the sender's
/// kernel may leave the UDP checksum to an offload that never runs (CHECKSUM_PARTIAL), and the
/// frame never crossed a wire. Octets after the IP datagram (Ethernet padding) are ignored.
pub fn parse(frame: &[u8]) -> Result<Datagram<'_>, FrameError> {
    let short = FrameError::TooShort(frame.len());
    if frame.len() < ETH_LEN + IPV4_LEN + UDP_LEN {
        return Err(short);
    }
    let dst_mac = mac_at(frame, 0).ok_or(short)?;
    let src_mac = mac_at(frame, 6).ok_or(short)?;
    let ethertype = be16(frame, 12).ok_or(short)?;
    if ethertype != ETHERTYPE_IPV4 {
        return Err(FrameError::NotIpv4(ethertype));
    }
    let ip = frame.get(ETH_LEN..).ok_or(short)?;
    let vihl = *ip.first().ok_or(short)?;
    if vihl >> 4 != 4 {
        return Err(FrameError::BadVersion(vihl >> 4));
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    if ihl < IPV4_LEN || ihl > ip.len() {
        return Err(FrameError::BadHeaderLength(ihl));
    }
    let total = usize::from(be16(ip, 2).ok_or(short)?);
    if total < ihl || total > ip.len() {
        return Err(FrameError::BadTotalLength {
            total,
            available: ip.len(),
        });
    }
    let frag = be16(ip, 6).ok_or(short)?;
    // More-fragments bit or a non-zero offset.
    if frag & 0x3fff != 0 {
        return Err(FrameError::Fragment);
    }
    let proto = *ip.get(9).ok_or(short)?;
    if proto != IPPROTO_UDP {
        return Err(FrameError::NotUdp(proto));
    }
    let src_ip = ip_at(ip, 12).ok_or(short)?;
    let dst_ip = ip_at(ip, 16).ok_or(short)?;
    let udp = ip.get(ihl..total).ok_or(short)?;
    let udp_len = usize::from(be16(udp, 4).ok_or(short)?);
    if udp_len < UDP_LEN || udp_len > udp.len() {
        return Err(FrameError::BadUdpLength {
            udp: udp_len,
            available: udp.len(),
        });
    }
    Ok(Datagram {
        src_mac,
        dst_mac,
        src_ip,
        dst_ip,
        src_port: be16(udp, 0).ok_or(short)?,
        dst_port: be16(udp, 2).ok_or(short)?,
        payload: udp.get(UDP_LEN..udp_len).ok_or(short)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: &[u8]) -> Datagram<'_> {
        Datagram {
            src_mac: [0x02, 0x4c, 0, 0, 0, 1],
            dst_mac: BROADCAST_MAC,
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 68,
            dst_port: 67,
            payload,
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3's worked example: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum16(0, &bytes), 0xddf2);
        assert_eq!(checksum(&bytes), !0xddf2);
        // An odd length pads with a zero octet.
        assert_eq!(sum16(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn known_ipv4_header_checksum() {
        // A classic example header (Wikipedia's IPv4 checksum walk-through): checksum b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        // A header with its checksum in place sums to zero.
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn build_is_byte_exact() {
        let f = build(&sample(b"hi")).unwrap();
        let expected: Vec<u8> = [
            // Ethernet: broadcast, from 02:4c:00:00:00:01, IPv4
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x4c, 0, 0, 0, 1, 0x08, 0x00,
            ][..],
            // IPv4: 45 10, total 30, id/frag 0, TTL 128, UDP, checksum, 0.0.0.0 -> 255.255.255.255
            &[0x45, 0x10, 0x00, 0x1e, 0, 0, 0, 0, 0x80, 0x11, 0x3a, 0xc0],
            &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
            // UDP 68 -> 67, length 10, checksum
            &[0x00, 0x44, 0x00, 0x43, 0x00, 0x0a, 0x96, 0xea],
            b"hi",
        ]
        .concat();
        assert_eq!(f, expected);
        // Both checksums verify: the header, and pseudo-header + UDP, sum to zero.
        assert_eq!(checksum(&f[14..34]), 0);
        let mut pseudo = vec![0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 17, 0, 10];
        pseudo.extend_from_slice(&f[34..]);
        assert_eq!(checksum(&pseudo), 0);
    }

    #[test]
    fn round_trip() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(333).collect();
        let d = Datagram {
            src_mac: [0x52, 0x54, 0, 0x0a, 0xcd, 0x21],
            dst_mac: [0x02, 0x4c, 0, 0, 0, 7],
            src_ip: Ipv4Addr::new(10, 77, 0, 1),
            dst_ip: Ipv4Addr::new(10, 77, 3, 9),
            src_port: 67,
            dst_port: 68,
            payload: &payload,
        };
        let mut f = build(&d).unwrap();
        assert_eq!(parse(&f), Ok(d));
        // Ethernet padding after the datagram is not payload.
        f.extend_from_slice(&[0; 20]);
        assert_eq!(parse(&f).unwrap().payload.len(), 333);
    }

    #[test]
    fn ip_options_are_skipped() {
        let mut f = build(&sample(b"abc")).unwrap();
        // Insert one 4-octet option (NOP NOP NOP EOL) and fix IHL and total length.
        f.splice(34..34, [1, 1, 1, 0]);
        f[14] = 0x46;
        f[16..18].copy_from_slice(&(24u16 + 8 + 3).to_be_bytes());
        let d = parse(&f).unwrap();
        assert_eq!((d.src_port, d.dst_port, d.payload), (68, 67, &b"abc"[..]));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let good = build(&sample(b"payload")).unwrap();
        // Every truncation is refused.
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_err(), "truncated to {n}");
        }
        let with = |at: usize, v: u8| {
            let mut f = good.clone();
            f[at] = v;
            parse(&f).map(|d| d.payload.len())
        };
        assert_eq!(with(12, 0x86), Err(FrameError::NotIpv4(0x8600)));
        assert_eq!(with(14, 0x65), Err(FrameError::BadVersion(6)));
        assert_eq!(with(14, 0x44), Err(FrameError::BadHeaderLength(16)));
        assert_eq!(with(14, 0x4f), Err(FrameError::BadHeaderLength(60)));
        assert!(matches!(
            with(17, 0xff),
            Err(FrameError::BadTotalLength { .. })
        ));
        assert_eq!(with(20, 0x20), Err(FrameError::Fragment));
        assert_eq!(with(21, 0x01), Err(FrameError::Fragment));
        // The don't-fragment bit alone is fine.
        assert!(with(20, 0x40).is_ok());
        assert_eq!(with(23, 6), Err(FrameError::NotUdp(6)));
        assert!(matches!(
            with(39, 0xff),
            Err(FrameError::BadUdpLength { .. })
        ));
        assert!(matches!(
            with(39, 7),
            Err(FrameError::BadUdpLength { udp: 7, .. })
        ));
        // Arbitrary bytes of every length: never a panic.
        let mut x: u32 = 0x1234_5678;
        for len in 0..200 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse(&junk);
        }
    }
}
