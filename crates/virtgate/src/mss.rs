//! TCP MSS clamping in the data path (RFC 879 §3 / RFC 9293 §3.7.1 MSS option, RFC 1624
//! incremental checksum update, RFC 791 IPv4 header).
//!
//! A SYN crossing the tunnel (either direction) carries the sender's MSS, computed from its own
//! link MTU (1460 on Ethernet). The tunnel's MTU is smaller, so without clamping large segments
//! would need fragmentation (or be black-holed when DF is set and ICMP is filtered). We lower the
//! MSS option in place to `max_mss` — what the seed's `iptables ... -j TCPMSS --set-mss 1356`
//! did — and fix the TCP checksum incrementally, so nothing else in the packet is touched.
//! A smaller MSS is left as it is (TCPMSS --set-mss would raise it; --clamp-mss-to-pmtu
//! semantics, only lowering, are what a tunnel needs).

/// Offsets in the IPv4 and TCP headers.
mod field {
    pub const IP_VER_IHL: usize = 0;
    pub const IP_TOTAL_LEN: usize = 2;
    pub const IP_FRAG: usize = 6;
    pub const IP_PROTO: usize = 9;
    pub const TCP_DATA_OFF: usize = 12;
    pub const TCP_FLAGS: usize = 13;
    pub const TCP_CHECKSUM: usize = 16;
    pub const TCP_MIN_HDR: usize = 20;
}

const PROTO_TCP: u8 = 6;
const TCP_SYN: u8 = 0x02;
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;

/// The default clamp of the seed (`--set-mss 1356`): what pptpd's documentation recommends for
/// a 1400-byte PPP MTU minus 40 bytes of IPv4 + TCP headers, with margin for MPPE and GRE.
pub const DEFAULT_MSS: u16 = 1356;

/// The MSS to clamp to for a given MTU/MRU from the options: MTU minus the IPv4 (20) and TCP
/// (20) headers, as TCPMSS --clamp-mss-to-pmtu computes it.
pub fn mss_for_mtu(mtu: u16) -> u16 {
    mtu.saturating_sub(40)
}

/// Clamps the MSS option of an IPv4 TCP SYN (or SYN-ACK) in `packet` to at most `max_mss`.
/// Returns the MSS that was replaced (`Some(old)`), or `None` when the packet was left untouched
/// (not IPv4/TCP, not a SYN, a non-first fragment, no MSS option, MSS already small enough, or a
/// malformed header — never a panic on any input).
pub fn clamp_mss(packet: &mut [u8], max_mss: u16) -> Option<u16> {
    let ver_ihl = *packet.get(field::IP_VER_IHL)?;
    if ver_ihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ver_ihl & 0x0f) * 4;
    if ihl < 20 || packet.len() < ihl {
        return None;
    }
    if *packet.get(field::IP_PROTO)? != PROTO_TCP {
        return None;
    }
    // Only the first fragment holds the TCP header.
    let frag = u16::from_be_bytes([
        *packet.get(field::IP_FRAG)?,
        *packet.get(field::IP_FRAG + 1)?,
    ]);
    if frag & 0x1fff != 0 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([
        *packet.get(field::IP_TOTAL_LEN)?,
        *packet.get(field::IP_TOTAL_LEN + 1)?,
    ]));
    let end = total.min(packet.len());
    let tcp = packet.get_mut(ihl..end)?;
    if tcp.len() < field::TCP_MIN_HDR || tcp[field::TCP_FLAGS] & TCP_SYN == 0 {
        return None;
    }
    let doff = usize::from(tcp[field::TCP_DATA_OFF] >> 4) * 4;
    if doff < field::TCP_MIN_HDR || doff > tcp.len() {
        return None;
    }
    // Walk the options (RFC 9293 §3.1): kinds 0 and 1 are one byte, the others kind+len+data.
    let mut i = field::TCP_MIN_HDR;
    while i < doff {
        let kind = tcp[i];
        match kind {
            OPT_END => return None,
            OPT_NOP => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let len = usize::from(*tcp.get(i + 1).filter(|_| i + 1 < doff)?);
        if len < 2 || i + len > doff {
            return None;
        }
        if kind == OPT_MSS && len == 4 {
            let old = u16::from_be_bytes([tcp[i + 2], tcp[i + 3]]);
            if old <= max_mss {
                return None;
            }
            tcp[i + 2..i + 4].copy_from_slice(&max_mss.to_be_bytes());
            let sum = u16::from_be_bytes([tcp[field::TCP_CHECKSUM], tcp[field::TCP_CHECKSUM + 1]]);
            // The MSS value sits at an even offset from the TCP header start (options are
            // 16-bit aligned only by convention, so use the word-parity-correct update).
            let new_sum = if (i + 2).is_multiple_of(2) {
                checksum_update(sum, old, max_mss)
            } else {
                let s = checksum_update(sum, old >> 8, max_mss >> 8);
                checksum_update(s, (old & 0xff) << 8, (max_mss & 0xff) << 8)
            };
            tcp[field::TCP_CHECKSUM..field::TCP_CHECKSUM + 2]
                .copy_from_slice(&new_sum.to_be_bytes());
            return Some(old);
        }
        i += len;
    }
    None
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), one's-complement arithmetic on 16-bit words.
fn checksum_update(hc: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full TCP checksum over the pseudo-header (RFC 9293 §3.1), for checking the update.
    fn tcp_checksum(pkt: &[u8]) -> u16 {
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
        let tcp = &pkt[ihl..total];
        let mut sum: u32 = 0;
        let mut add = |b: &[u8]| {
            for c in b.chunks(2) {
                let w = if c.len() == 2 {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], 0])
                };
                sum += u32::from(w);
            }
        };
        add(&pkt[12..20]);
        add(&[0, PROTO_TCP]);
        add(&(tcp.len() as u16).to_be_bytes());
        let mut t = tcp.to_vec();
        t[16] = 0;
        t[17] = 0;
        add(&t);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A Linux 6.x SYN captured with tcpdump (mss 65495, sackOK, TS, nop, wscale 10); the
    /// capture was on loopback, where the checksum is left partial, so the test fills in the
    /// real checksum first.
    fn linux_syn() -> Vec<u8> {
        let mut p = hex(
            "4500 003c 2127 4000 4006 1b93 7f00 0001 7f00 0001 be40 15b3 9733 eedb 0000 0000
             a002 ffd7 fe30 0000 0204 ffd7 0402 080a e3bd 42a2 0000 0000 0103 030a",
        );
        let c = tcp_checksum(&p);
        p[36..38].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn linux_syn_ack() -> Vec<u8> {
        let mut p = hex(
            "4500 003c 0000 4000 4006 3cba 7f00 0001 7f00 0001 15b3 be40 d344 3e5c 9733 eedc
             a012 ffcb fe30 0000 0204 ffd7 0402 080a 3ed5 a558 e3bd 42a2 0103 030a",
        );
        let c = tcp_checksum(&p);
        p[36..38].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn syn_is_clamped_and_checksum_stays_valid() {
        let mut p = linux_syn();
        let before = p.clone();
        assert_eq!(clamp_mss(&mut p, 1356), Some(65495));
        assert_eq!(&p[40..44], &[0x02, 0x04, 0x05, 0x4c]);
        assert_eq!(tcp_checksum(&p), u16::from_be_bytes([p[36], p[37]]));
        // Only the MSS value and the checksum changed.
        let diff: Vec<usize> = (0..p.len()).filter(|&i| p[i] != before[i]).collect();
        assert!(diff
            .iter()
            .all(|&i| (36..38).contains(&i) || (42..44).contains(&i)));
    }

    #[test]
    fn syn_ack_is_clamped_too() {
        let mut p = linux_syn_ack();
        assert_eq!(clamp_mss(&mut p, 1456), Some(65495));
        assert_eq!(u16::from_be_bytes([p[42], p[43]]), 1456);
        assert_eq!(tcp_checksum(&p), u16::from_be_bytes([p[36], p[37]]));
    }

    #[test]
    fn smaller_mss_is_left_alone() {
        let mut p = linux_syn();
        p[42..44].copy_from_slice(&1200u16.to_be_bytes());
        let c = tcp_checksum(&p);
        p[36..38].copy_from_slice(&c.to_be_bytes());
        let before = p.clone();
        assert_eq!(clamp_mss(&mut p, 1356), None);
        assert_eq!(p, before);
    }

    #[test]
    fn non_syn_and_fragments_are_untouched() {
        let mut p = linux_syn();
        p[33] = 0x10; // ACK only
        let before = p.clone();
        assert_eq!(clamp_mss(&mut p, 1356), None);
        assert_eq!(p, before);

        let mut p = linux_syn();
        p[6] = 0x00;
        p[7] = 0x10; // fragment offset 16
        assert_eq!(clamp_mss(&mut p, 1356), None);
    }

    #[test]
    fn mss_after_nops_at_odd_offset_keeps_checksum_valid() {
        // Options: NOP, MSS 1460, NOP, NOP, NOP (data offset 7 words); MSS value at odd offset.
        let mut p = hex(
            "4500 0030 0001 4000 4006 0000 0a00 0001 0a00 0002 1234 0050 0000 0001 0000 0000
             7002 ffff 0000 0000 0102 0405 b401 0101",
        );
        let c = tcp_checksum(&p);
        p[36..38].copy_from_slice(&c.to_be_bytes());
        assert_eq!(clamp_mss(&mut p, 1356), Some(1460));
        assert_eq!(u16::from_be_bytes([p[43], p[44]]), 1356);
        assert_eq!(tcp_checksum(&p), u16::from_be_bytes([p[36], p[37]]));
    }

    #[test]
    fn malformed_packets_never_panic() {
        let syn = linux_syn();
        for n in 0..syn.len() {
            let mut p = syn[..n].to_vec();
            let _ = clamp_mss(&mut p, 1356);
        }
        // Bad option lengths: 0, 1, running past the header.
        for bad in [0u8, 1, 40, 255] {
            let mut p = linux_syn();
            p[41] = bad;
            assert_eq!(clamp_mss(&mut p, 1356), None);
        }
        // Data offset beyond the packet, IHL too small, IPv6.
        let mut p = linux_syn();
        p[32] = 0xf0;
        assert_eq!(clamp_mss(&mut p, 1356), None);
        let mut p = linux_syn();
        p[0] = 0x44;
        assert_eq!(clamp_mss(&mut p, 1356), None);
        let mut p = linux_syn();
        p[0] = 0x60;
        assert_eq!(clamp_mss(&mut p, 1356), None);
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut p = linux_syn();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = (x as usize) % p.len();
                p[i] = (x >> 8) as u8;
            }
            let _ = clamp_mss(&mut p, 1356);
        }
    }

    #[test]
    fn mss_for_mtu_is_mtu_minus_headers() {
        assert_eq!(mss_for_mtu(1396), 1356);
        assert_eq!(mss_for_mtu(1400), 1360);
        assert_eq!(mss_for_mtu(20), 0);
    }
}
