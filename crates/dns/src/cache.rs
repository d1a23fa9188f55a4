//! A bounded cache of forwarded answers, as dnsmasq keeps one (its default `cache-size` is 150
//! names; [`DEFAULT_CACHE_SIZE`]).
//!
//! What is kept: whole upstream answers, by question (name compared without case, type, class)
//! and the query bits that change an answer (EDNS present, DO, CD). An answer is reused until
//! its TTL runs out; every TTL in it is lowered by the time it has spent here when it is served
//! (RFC 1035 §3.2.1, RFC 2181 §8).
//!
//! - Positive answers (NOERROR with records): the smallest TTL of their records (OPT excluded).
//! - Negative answers (NXDOMAIN, and NODATA: NOERROR without answers), RFC 2308 §5: cached only
//!   with the zone's SOA in the authority section, for the smaller of the SOA's TTL and its
//!   MINIMUM field; without a SOA they are not cached at all (§5: "SHOULD NOT be cached").
//!   Capped at [`MAX_NEGATIVE_TTL`] (§5 recommends one to three hours).
//! - Never cached: truncated answers, other response codes (SERVFAIL, REFUSED...), a TTL of
//!   0, answers larger than [`MAX_CACHED_MESSAGE`], answers that do not decode whole (they are
//!   relayed once, as they came, but not served again).
//!
//! The cache is full at its capacity: an expired entry goes first, else the least recently
//! used. The scan is over at most the capacity (150), once per answer stored.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};

/// dnsmasq's default `cache-size`.
pub const DEFAULT_CACHE_SIZE: usize = 150;

/// Larger answers are relayed but not kept (bounds the memory to capacity × this).
pub const MAX_CACHED_MESSAGE: usize = 4096;

/// The longest a positive answer is kept (RFC 8767 §4 suggests a cap; dnsmasq has none by
/// default, one day keeps the memory of a forgotten name bounded in time).
pub const MAX_POSITIVE_TTL: u32 = 86_400;

/// The longest a negative answer is kept (RFC 2308 §5: one to three hours).
pub const MAX_NEGATIVE_TTL: u32 = 3 * 3600;

const HEADER_LEN: usize = 12;
const TYPE_OPT: u16 = 41;
const TYPE_SOA: u16 = 6;

/// The question and the query bits an answer depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    /// hickory compares and hashes names without regard to case.
    pub query: Query,
    /// EDNS present, DO, CD.
    pub bits: u8,
}

impl Key {
    pub fn new(query: Query, edns: Option<bool>, checking_disabled: bool) -> Key {
        let bits = u8::from(edns.is_some())
            | (u8::from(edns == Some(true)) << 1)
            | (u8::from(checking_disabled) << 2);
        Key { query, bits }
    }
}

#[derive(Debug)]
struct Entry {
    bytes: Vec<u8>,
    /// Offsets of the TTL fields of every record (OPT excluded).
    ttls: Vec<usize>,
    /// Length of the question section (name, type, class).
    question_len: usize,
    stored: Instant,
    expires: Instant,
    last_used: u64,
}

/// Counters of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Queries answered from the cache.
    pub hits: u64,
    /// Forwarded queries the cache could not answer.
    pub misses: u64,
    /// Answers stored.
    pub inserts: u64,
    /// Entries dropped for room before their TTL ran out.
    pub evictions: u64,
}

/// The cache of one network's DNS server.
#[derive(Debug)]
pub(crate) struct Cache {
    capacity: usize,
    entries: HashMap<Key, Entry>,
    tick: u64,
    stats: CacheStats,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            capacity,
            entries: HashMap::with_capacity(capacity.min(DEFAULT_CACHE_SIZE * 4)),
            tick: 0,
            stats: CacheStats::default(),
        }
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The cached answer for `key`, with its TTLs lowered by its age, the id `id` and the
    /// question section `question` (the client's, so its letter case comes back as sent; it
    /// has the same length as the cached one since the names are equal without case).
    pub fn lookup(&mut self, now: Instant, key: &Key, id: u16, question: &[u8]) -> Option<Vec<u8>> {
        if self.capacity == 0 {
            return None;
        }
        let Some(e) = self.entries.get_mut(key) else {
            self.stats.misses += 1;
            return None;
        };
        if e.expires <= now {
            self.entries.remove(key);
            self.stats.misses += 1;
            return None;
        }
        self.tick += 1;
        e.last_used = self.tick;
        let age =
            u32::try_from(now.saturating_duration_since(e.stored).as_secs()).unwrap_or(u32::MAX);
        let mut out = e.bytes.clone();
        if let Some(b) = out.get_mut(..2) {
            b.copy_from_slice(&id.to_be_bytes());
        }
        // Only a question of the same layout is copied (a client's name written with a
        // compression pointer, however odd, must not overwrite the answer's records).
        if question.len() == e.question_len {
            if let Some(q) = out.get_mut(HEADER_LEN..HEADER_LEN + question.len()) {
                q.copy_from_slice(question);
            }
        }
        if age > 0 {
            for &at in &e.ttls {
                if let Some(t) = out.get_mut(at..at + 4) {
                    let ttl = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
                    t.copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
                }
            }
        }
        self.stats.hits += 1;
        Some(out)
    }

    /// Keeps `bytes` (an upstream's answer to `key`'s question) if it may be cached.
    pub fn store(&mut self, now: Instant, key: Key, bytes: &[u8]) {
        if self.capacity == 0 || bytes.len() > MAX_CACHED_MESSAGE {
            return;
        }
        let Some((ttl, ttls)) = cacheable(bytes) else {
            return;
        };
        let Some(question_len) = skip_name(bytes, HEADER_LEN).map(|end| end + 4 - HEADER_LEN)
        else {
            return;
        };
        // Relayed once as it came is the upstream's business; served again from here it is
        // ours: only answers that decode whole are kept (dnsmasq too caches parsed records).
        if Message::from_vec(bytes).is_err() {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        self.tick += 1;
        self.stats.inserts += 1;
        self.entries.insert(
            key,
            Entry {
                bytes: bytes.to_vec(),
                ttls,
                question_len,
                stored: now,
                expires: now
                    .checked_add(Duration::from_secs(u64::from(ttl)))
                    .unwrap_or(now),
                last_used: self.tick,
            },
        );
    }

    /// Drops an expired entry, or else the least recently used one.
    fn make_room(&mut self, now: Instant) {
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, e)| (e.expires > now, e.last_used))
            .map(|(k, e)| (k.clone(), e.expires > now));
        if let Some((k, live)) = victim {
            self.entries.remove(&k);
            if live {
                self.stats.evictions += 1;
            }
        }
    }
}

/// The TTL an answer may be cached for and where its records' TTL fields are, or `None` when
/// it must not be cached (see the module's rules). Never panics on any input.
pub(crate) fn cacheable(bytes: &[u8]) -> Option<(u32, Vec<usize>)> {
    let h = bytes.get(..HEADER_LEN)?;
    let flags = u16::from_be_bytes([h[2], h[3]]);
    let count = |i: usize| usize::from(u16::from_be_bytes([h[i], h[i + 1]]));
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    let qr = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let tc = flags & 0x0200 != 0;
    let rcode = flags & 0xf;
    if !qr || opcode != 0 || tc || qd != 1 || !matches!(rcode, 0 | 3) {
        return None;
    }
    let mut at = skip_name(bytes, HEADER_LEN)?.checked_add(4)?;
    if at > bytes.len() {
        return None;
    }
    let mut ttls = Vec::with_capacity(an + ns + ar);
    let mut min_ttl: Option<u32> = None;
    let mut soa: Option<u32> = None;
    for section in 0..3 {
        let n = [an, ns, ar][section];
        for _ in 0..n {
            at = skip_name(bytes, at)?;
            let fixed = bytes.get(at..at + 10)?;
            let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
            let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
            // A TTL with the top bit set counts as 0 (RFC 2181 §8).
            let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
            let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
            let rdata_at = at + 10;
            let end = rdata_at.checked_add(rdlen)?;
            let rdata = bytes.get(rdata_at..end)?;
            if rtype != TYPE_OPT {
                ttls.push(at + 4);
                min_ttl = Some(min_ttl.map_or(ttl, |m| m.min(ttl)));
                if section == 1 && rtype == TYPE_SOA {
                    // MINIMUM is the SOA's last field (RFC 1035 §3.3.13).
                    let m = rdata.get(rdata.len().checked_sub(4)?..)?;
                    let minimum = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
                    soa = Some(ttl.min(minimum));
                }
            }
            at = end;
        }
    }
    let negative = rcode == 3 || an == 0;
    let ttl = if negative {
        soa?.min(MAX_NEGATIVE_TTL)
    } else {
        min_ttl?.min(MAX_POSITIVE_TTL)
    };
    if ttl == 0 {
        return None;
    }
    Some((ttl, ttls))
}

/// The offset just past the domain name at `at`: labels, ended by the root or a compression
/// pointer (RFC 1035 §4.1.4).
pub(crate) fn skip_name(bytes: &[u8], mut at: usize) -> Option<usize> {
    // 128 labels is more than a 255-octet name can hold.
    for _ in 0..128 {
        let len = *bytes.get(at)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(at + 1),
            0x00 => at = at.checked_add(1 + usize::from(len))?,
            0xc0 => {
                bytes.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_and_every_flipped_octet_of_an_answer_is_handled() {
        // www.example.test A, answer 300 s, plus a SOA in the authority section.
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 1, 0, 0];
        for l in ["www", "example", "test"] {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 1, 2, 3, 4]);
        m.extend_from_slice(&[0xc0, 0x10, 0, 6, 0, 1, 0, 0, 0, 60, 0, 22, 0, 0]);
        m.extend_from_slice(&[0u8; 20]);
        let (ttl, ttls) = cacheable(&m).unwrap();
        assert_eq!((ttl, ttls.len()), (60, 2));
        for n in 0..m.len() {
            assert_eq!(cacheable(&m[..n]), None, "prefix {n}");
        }
        for i in 0..m.len() {
            for v in [0x00, 0x3f, 0x40, 0xc0, 0xff] {
                let mut x = m.clone();
                x[i] = v;
                let _ = cacheable(&x);
            }
        }
    }

    #[test]
    fn only_a_question_of_the_same_length_replaces_the_cached_one() {
        use hickory_proto::rr::{Name, RecordType};
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        let mut question = Vec::new();
        for l in ["www", "example", "test"] {
            question.push(l.len() as u8);
            question.extend_from_slice(l.as_bytes());
        }
        question.extend_from_slice(&[0, 0, 1, 0, 1]);
        m.extend_from_slice(&question);
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 1, 2, 3, 4]);
        let t0 = Instant::now();
        let name = Name::from_ascii("www.example.test.").unwrap();
        let key = Key::new(Query::query(name, RecordType::A), None, false);
        let mut c = Cache::new(4);
        c.store(t0, key.clone(), &m);
        // The client's letter case comes back.
        let mut upper = question.clone();
        upper[1] = b'W';
        let hit = c.lookup(t0, &key, 7, &upper).unwrap();
        assert_eq!((hit[..2].to_vec(), hit[13]), (vec![0, 7], b'W'));
        let mut expected = m.clone();
        expected[13] = b'W';
        assert_eq!(hit[2..], expected[2..]);
        // A question of another layout (a 2-octet pointer + type + class) is not copied: the
        // records stay whole.
        let pointer = [0xc0, 0x0c, 0, 1, 0, 1];
        let hit = c.lookup(t0, &key, 8, &pointer).unwrap();
        assert_eq!(hit[2..], m[2..]);
        assert_eq!(c.stats().hits, 2);
    }
}
