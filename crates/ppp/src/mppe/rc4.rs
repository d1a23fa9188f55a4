//! RC4 for the MPPE per-packet path (RFC 3078 §5–§6: `rc4_key` and `rc4`).
//!
//! The key-derivation reference functions use the RustCrypto `rc4` crate; this is a version
//! specialised for MPPE's 8- and 16-octet keys, where the key schedule runs twice per packet in
//! stateless mode. Every index is a `u8` into a 256-entry table or a masked index into the
//! 16-octet key, so there are no bounds checks in the loops. The table holds `u32` entries
//! (like OpenSSL's `RC4_INT` on x86-64): byte-sized loads and stores in the serial swap chain
//! measured about 20% slower here. The unit tests check it against the `rc4` crate.

use super::KeyLength;

#[derive(Clone)]
pub(crate) struct Rc4 {
    s: [u32; 256],
    i: u8,
    j: u8,
}

/// 0, 1, ..., 255: the table before the key schedule.
const IDENTITY: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut k = 0;
    while k < 256 {
        t[k] = k as u32;
        k += 1;
    }
    t
};

impl Rc4 {
    /// `rc4_key` with the first `key_len.key_bytes()` octets of `key`.
    pub(crate) fn new(key: &[u8; 16], key_len: KeyLength) -> Self {
        let mut rc4 = Rc4 {
            s: IDENTITY,
            i: 0,
            j: 0,
        };
        rc4.schedule(key, key_len);
        rc4
    }

    /// A table not keyed yet (for [`Rc4::set_keys_pair`]).
    pub(crate) fn unkeyed() -> Self {
        Rc4 {
            s: IDENTITY,
            i: 0,
            j: 0,
        }
    }

    /// `rc4_key` again, in place (no new 1 KiB value to move around).
    pub(crate) fn set_key(&mut self, key: &[u8; 16], key_len: KeyLength) {
        self.s = IDENTITY;
        self.i = 0;
        self.j = 0;
        self.schedule(key, key_len);
    }

    /// `rc4_key` on two tables at once: `a` with `key_a`, `b` with `key_b`. Each key schedule
    /// is a chain of 256 dependent swaps; run in one loop, the two independent chains overlap
    /// in the CPU (the stateless MPPE key change needs both per packet, see engine.rs).
    pub(crate) fn set_keys_pair(
        a: &mut Rc4,
        key_a: &[u8; 16],
        b: &mut Rc4,
        key_b: &[u8; 16],
        key_len: KeyLength,
    ) {
        let mask = key_len.key_bytes() - 1;
        a.s = IDENTITY;
        b.s = IDENTITY;
        a.i = 0;
        a.j = 0;
        b.i = 0;
        b.j = 0;
        let (sa, sb) = (&mut a.s, &mut b.s);
        let (mut ja, mut jb) = (0u8, 0u8);
        for i in 0..=255u8 {
            let k = usize::from(i) & mask;
            let x = sa[usize::from(i)];
            let y = sb[usize::from(i)];
            ja = ja.wrapping_add(x as u8).wrapping_add(key_a[k]);
            jb = jb.wrapping_add(y as u8).wrapping_add(key_b[k]);
            sa[usize::from(i)] = sa[usize::from(ja)];
            sb[usize::from(i)] = sb[usize::from(jb)];
            sa[usize::from(ja)] = x;
            sb[usize::from(jb)] = y;
        }
    }

    fn schedule(&mut self, key: &[u8; 16], key_len: KeyLength) {
        let mask = key_len.key_bytes() - 1; // 7 or 15: the key repeats every 8 or 16 octets
        let s = &mut self.s;
        let mut j = 0u8;
        for i in 0..=255u8 {
            let si = s[usize::from(i)];
            // Table entries are always 0..=255, so `as u8` never truncates.
            j = j
                .wrapping_add(si as u8)
                .wrapping_add(key[usize::from(i) & mask]);
            s[usize::from(i)] = s[usize::from(j)];
            s[usize::from(j)] = si;
        }
    }

    /// XORs the next `buf.len()` keystream octets into `buf`.
    pub(crate) fn apply_keystream(&mut self, buf: &mut [u8]) {
        let (mut i, mut j) = (self.i, self.j);
        let s = &mut self.s;
        for b in buf {
            i = i.wrapping_add(1);
            let si = s[usize::from(i)];
            j = j.wrapping_add(si as u8);
            let sj = s[usize::from(j)];
            s[usize::from(i)] = sj;
            s[usize::from(j)] = si;
            *b ^= s[usize::from((si as u8).wrapping_add(sj as u8))] as u8;
        }
        self.i = i;
        self.j = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rc4::{KeyInit, StreamCipher};

    #[test]
    fn matches_the_rc4_crate() {
        for (seed, key_len) in [
            (1u8, KeyLength::Bits40),
            (2, KeyLength::Bits56),
            (3, KeyLength::Bits128),
        ] {
            let key: [u8; 16] =
                core::array::from_fn(|i| (i as u8).wrapping_mul(91).wrapping_add(seed));
            let n = key_len.key_bytes();
            let mut ours = Rc4::new(&[0xEE; 16], KeyLength::Bits128);
            ours.apply_keystream(&mut [0; 100]);
            ours.set_key(&key, key_len); // re-keying resets the whole state
            let mut theirs = rc4::Rc4::new_from_slice(&key[..n]).expect("valid key length");
            // Uneven chunks: the state must carry over between calls.
            for len in [0usize, 1, 2, 255, 256, 1400, 3] {
                let mut a: Vec<u8> = (0..len).map(|k| k as u8).collect();
                let mut b = a.clone();
                ours.apply_keystream(&mut a);
                theirs.apply_keystream(&mut b);
                assert_eq!(a, b, "{key_len:?} len {len}");
            }
            // The paired schedule gives both tables what two single ones give.
            let other: [u8; 16] = core::array::from_fn(|i| (i as u8) ^ 0x5A ^ seed);
            let (mut p, mut q) = (Rc4::new(&[1; 16], key_len), Rc4::new(&[2; 16], key_len));
            p.apply_keystream(&mut [0; 7]);
            Rc4::set_keys_pair(&mut p, &key, &mut q, &other, key_len);
            let (mut p1, mut q1) = (Rc4::new(&key, key_len), Rc4::new(&other, key_len));
            for len in [1usize, 300] {
                let (mut a, mut b, mut c, mut d) = (
                    vec![0u8; len],
                    vec![0u8; len],
                    vec![0u8; len],
                    vec![0u8; len],
                );
                p.apply_keystream(&mut a);
                p1.apply_keystream(&mut b);
                q.apply_keystream(&mut c);
                q1.apply_keystream(&mut d);
                assert_eq!((a, c), (b, d), "{key_len:?} paired");
            }
        }
    }
}
