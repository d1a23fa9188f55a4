//! The daemon's session bookkeeping: call-id allocation, the session table with its two
//! indexes (GRE side: our call id, checked against the peer address; TUN side: the client's
//! tunnel address) and one timer structure for every session and control connection.
//!
//! Everything here is plain data with no I/O, so the data plane can later be sharded (issue 8)
//! by giving each worker its own `SessionTable` and a call-id range.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::Instant;

/// Hands out PPTP call ids (RFC 2637 §2.7 "Call ID": unique per tunnel; we make them unique
/// across all tunnels, because the one raw GRE socket finds a session by this id alone).
#[derive(Debug)]
pub struct CallIdAllocator {
    next: u16,
    used: std::collections::HashSet<u16>,
}

impl CallIdAllocator {
    /// `start` is the first id tried (the daemon passes a random one so ids are not predictable
    /// across restarts, as pptpd does with its pid-based ids). Id 0 is never used: pptp-linux
    /// and Windows treat 0 as "no call".
    pub fn new(start: u16) -> CallIdAllocator {
        CallIdAllocator {
            next: start,
            used: Default::default(),
        }
    }

    /// The next free id, or `None` when all 65535 are in use.
    pub fn allocate(&mut self) -> Option<u16> {
        if self.used.len() >= usize::from(u16::MAX) {
            return None;
        }
        loop {
            let id = self.next;
            self.next = self.next.wrapping_add(1);
            if id != 0 && self.used.insert(id) {
                return Some(id);
            }
        }
    }

    pub fn release(&mut self, id: u16) -> bool {
        self.used.remove(&id)
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

/// One entry: the session's value plus what the indexes need.
#[derive(Debug)]
pub struct Entry<T> {
    /// The client's outer address (GRE packets must come from it).
    pub peer: Ipv4Addr,
    /// The client's tunnel address once the link is up.
    pub tunnel_ip: Option<Ipv4Addr>,
    pub value: T,
}

/// Why a GRE packet found no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    UnknownCall,
    WrongSource,
}

/// Sessions by our local call id, with a second index by tunnel address.
#[derive(Debug)]
pub struct SessionTable<T> {
    by_call: HashMap<u16, Entry<T>>,
    by_ip: HashMap<Ipv4Addr, u16>,
}

impl<T> Default for SessionTable<T> {
    fn default() -> Self {
        SessionTable {
            by_call: HashMap::new(),
            by_ip: HashMap::new(),
        }
    }
}

impl<T> SessionTable<T> {
    pub fn insert(&mut self, call_id: u16, peer: Ipv4Addr, value: T) {
        self.remove(call_id);
        self.by_call.insert(
            call_id,
            Entry {
                peer,
                tunnel_ip: None,
                value,
            },
        );
    }

    /// Maps `ip` to the session (the link came up). Returns false if another session holds
    /// `ip` (the pool prevents it; checked anyway so a bug cannot steal another's traffic).
    pub fn bind_ip(&mut self, call_id: u16, ip: Ipv4Addr) -> bool {
        match self.by_ip.get(&ip) {
            Some(&other) if other != call_id => return false,
            _ => {}
        }
        let Some(e) = self.by_call.get_mut(&call_id) else {
            return false;
        };
        if let Some(old) = e.tunnel_ip.replace(ip) {
            self.by_ip.remove(&old);
        }
        self.by_ip.insert(ip, call_id);
        true
    }

    /// The session a GRE packet with key call id `call_id` from `src` belongs to.
    pub fn by_gre(&mut self, call_id: u16, src: Ipv4Addr) -> Result<&mut Entry<T>, Miss> {
        match self.by_call.get_mut(&call_id) {
            None => Err(Miss::UnknownCall),
            Some(e) if e.peer != src => Err(Miss::WrongSource),
            Some(e) => Ok(e),
        }
    }

    /// The session whose client has tunnel address `dst`, with its call id.
    pub fn by_ip(&mut self, dst: Ipv4Addr) -> Option<(u16, &mut Entry<T>)> {
        let id = *self.by_ip.get(&dst)?;
        self.by_call.get_mut(&id).map(|e| (id, e))
    }

    pub fn get(&self, call_id: u16) -> Option<&Entry<T>> {
        self.by_call.get(&call_id)
    }

    pub fn get_mut(&mut self, call_id: u16) -> Option<&mut Entry<T>> {
        self.by_call.get_mut(&call_id)
    }

    pub fn remove(&mut self, call_id: u16) -> Option<Entry<T>> {
        let e = self.by_call.remove(&call_id)?;
        if let Some(ip) = e.tunnel_ip {
            if self.by_ip.get(&ip) == Some(&call_id) {
                self.by_ip.remove(&ip);
            }
        }
        Some(e)
    }

    /// Every session with its call id, in no particular order (no allocation).
    pub fn iter(&self) -> impl Iterator<Item = (u16, &Entry<T>)> {
        self.by_call.iter().map(|(id, e)| (*id, e))
    }

    pub fn call_ids(&self) -> Vec<u16> {
        self.by_call.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.by_call.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_call.is_empty()
    }
}

/// One deadline per key, ordered: the daemon sleeps until `next()` and then pops every expired
/// key. Setting a key's deadline replaces its previous one (no stale wake-ups pile up).
#[derive(Debug)]
pub struct Timers<K: Ord + Copy + std::hash::Hash> {
    order: BTreeSet<(Instant, K)>,
    current: HashMap<K, Instant>,
}

impl<K: Ord + Copy + std::hash::Hash> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            order: BTreeSet::new(),
            current: HashMap::new(),
        }
    }
}

impl<K: Ord + Copy + std::hash::Hash> Timers<K> {
    /// Arms (`Some`) or disarms (`None`) the timer of `key`.
    pub fn set(&mut self, key: K, at: Option<Instant>) {
        match at {
            Some(t) => {
                if let Some(old) = self.current.insert(key, t) {
                    if old == t {
                        return;
                    }
                    self.order.remove(&(old, key));
                }
                self.order.insert((t, key));
            }
            None => {
                if let Some(old) = self.current.remove(&key) {
                    self.order.remove(&(old, key));
                }
            }
        }
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.order.first().map(|(t, _)| *t)
    }

    /// Removes and returns one key whose deadline is `<= now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<K> {
        let &(t, k) = self.order.first()?;
        if t > now {
            return None;
        }
        self.order.remove(&(t, k));
        self.current.remove(&k);
        Some(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn call_ids_are_unique_nonzero_and_wrap() {
        let mut a = CallIdAllocator::new(65534);
        assert_eq!(a.allocate(), Some(65534));
        assert_eq!(a.allocate(), Some(65535));
        assert_eq!(a.allocate(), Some(1)); // 0 skipped
        assert!(a.release(65535));
        assert!(!a.release(65535));
        assert_eq!(a.allocate(), Some(2));
        assert_eq!(a.in_use(), 3);
    }

    #[test]
    fn call_ids_skip_used_and_run_out_cleanly() {
        let mut a = CallIdAllocator::new(1);
        for want in 1..=u16::MAX {
            assert_eq!(a.allocate(), Some(want));
        }
        assert_eq!(a.allocate(), None);
        a.release(300);
        assert_eq!(a.allocate(), Some(300));
        assert_eq!(a.allocate(), None);
    }

    fn ip(a: u8, d: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, a, d)
    }

    #[test]
    fn gre_lookup_checks_the_source_address() {
        let mut t = SessionTable::default();
        // Two clients behind one NAT address, distinguished by call id.
        t.insert(7, ip(0, 1), "a");
        t.insert(8, ip(0, 1), "b");
        t.insert(9, ip(0, 2), "c");
        assert_eq!(t.by_gre(7, ip(0, 1)).map(|e| e.value), Ok("a"));
        assert_eq!(t.by_gre(8, ip(0, 1)).map(|e| e.value), Ok("b"));
        assert_eq!(t.by_gre(9, ip(0, 1)).err(), Some(Miss::WrongSource));
        assert_eq!(t.by_gre(10, ip(0, 1)).err(), Some(Miss::UnknownCall));
    }

    #[test]
    fn ip_index_follows_bind_and_remove() {
        let mut t = SessionTable::default();
        t.insert(7, ip(0, 1), 70);
        t.insert(8, ip(0, 2), 80);
        let a = Ipv4Addr::new(192, 168, 0, 100);
        assert!(t.by_ip(a).is_none());
        assert!(t.bind_ip(7, a));
        assert!(!t.bind_ip(8, a), "an address is never shared");
        assert_eq!(t.by_ip(a).map(|(id, e)| (id, e.value)), Some((7, 70)));
        assert!(t.remove(7).is_some());
        assert!(t.by_ip(a).is_none());
        assert!(t.bind_ip(8, a));
        assert_eq!(t.by_ip(a).map(|(id, _)| id), Some(8));
        assert_eq!(t.len(), 1);
        // Re-inserting an id drops the old entry and its address.
        t.insert(8, ip(0, 3), 81);
        assert!(t.by_ip(a).is_none());
        assert!(!t.bind_ip(99, a), "unknown call");
    }

    #[test]
    fn timers_keep_one_deadline_per_key_in_order() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut tm = Timers::default();
        tm.set(1u32, Some(t0 + s(5)));
        tm.set(2, Some(t0 + s(3)));
        tm.set(3, Some(t0 + s(9)));
        tm.set(1, Some(t0 + s(1))); // re-armed earlier
        tm.set(3, None); // disarmed
        assert_eq!(tm.next(), Some(t0 + s(1)));
        assert_eq!(tm.pop_expired(t0), None);
        assert_eq!(tm.pop_expired(t0 + s(4)), Some(1));
        assert_eq!(tm.pop_expired(t0 + s(4)), Some(2));
        assert_eq!(tm.pop_expired(t0 + s(100)), None);
        assert_eq!(tm.next(), None);
        // Same deadline twice is one entry.
        tm.set(4, Some(t0 + s(2)));
        tm.set(4, Some(t0 + s(2)));
        assert_eq!(tm.pop_expired(t0 + s(2)), Some(4));
        assert_eq!(tm.pop_expired(t0 + s(2)), None);
    }
}
