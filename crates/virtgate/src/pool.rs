//! Client address allocation: pptpd's `remoteip` pool plus addresses pinned in chap-secrets.
//!
//! pptpd hands each new call the first free address of its `remoteip` list, in list order; we do
//! the same (deterministic, and a reconnecting client usually gets its old address back). An
//! address pinned by the chap-secrets line of a user is reserved for that session whether or not
//! it lies in the pool (pppd accepts any address the secrets line allows).

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// Why an address could not be handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    #[error("address pool exhausted ({0} addresses, all in use)")]
    Exhausted(usize),
    #[error("pinned address {0} is already in use by another session")]
    InUse(Ipv4Addr),
    #[error("pinned address {0} is the server's own tunnel address")]
    IsLocal(Ipv4Addr),
}

/// The pool of client addresses.
#[derive(Debug, Clone)]
pub struct AddressPool {
    addrs: Vec<Ipv4Addr>,
    local: Ipv4Addr,
    in_use: HashSet<Ipv4Addr>,
}

impl AddressPool {
    /// A pool over `addrs` (pptpd's `remoteip`, expanded, in order). `local` (pptpd's
    /// `localip`) is never handed out, even if the admin listed it in `remoteip`.
    pub fn new(addrs: Vec<Ipv4Addr>, local: Ipv4Addr) -> AddressPool {
        let mut seen = HashSet::new();
        let addrs = addrs
            .into_iter()
            .filter(|a| *a != local && seen.insert(*a))
            .collect();
        AddressPool {
            addrs,
            local,
            in_use: HashSet::new(),
        }
    }

    /// Hands out `pinned` if given (reserving it), else the first free pool address.
    pub fn allocate(&mut self, pinned: Option<Ipv4Addr>) -> Result<Ipv4Addr, PoolError> {
        if let Some(a) = pinned {
            if a == self.local {
                return Err(PoolError::IsLocal(a));
            }
            if !self.in_use.insert(a) {
                return Err(PoolError::InUse(a));
            }
            return Ok(a);
        }
        let a = self
            .addrs
            .iter()
            .copied()
            .find(|a| !self.in_use.contains(a))
            .ok_or(PoolError::Exhausted(self.addrs.len()))?;
        self.in_use.insert(a);
        Ok(a)
    }

    /// The first free pool address that `ok` accepts (chap-secrets may restrict a user to
    /// part of the pool, as pppd's allowed-address check does).
    pub fn allocate_matching(
        &mut self,
        ok: impl Fn(Ipv4Addr) -> bool,
    ) -> Result<Ipv4Addr, PoolError> {
        let a = self
            .addrs
            .iter()
            .copied()
            .find(|a| !self.in_use.contains(a) && ok(*a))
            .ok_or(PoolError::Exhausted(self.addrs.len()))?;
        self.in_use.insert(a);
        Ok(a)
    }

    /// Returns an address; releasing one that is not in use is a no-op (returns false).
    pub fn release(&mut self, a: Ipv4Addr) -> bool {
        self.in_use.remove(&a)
    }

    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, 0, d)
    }

    fn seed_pool() -> AddressPool {
        AddressPool::new((100..=200).map(ip).collect(), ip(1))
    }

    #[test]
    fn first_free_in_list_order_and_reuse_after_release() {
        let mut p = seed_pool();
        assert_eq!(p.allocate(None), Ok(ip(100)));
        assert_eq!(p.allocate(None), Ok(ip(101)));
        assert_eq!(p.allocate(None), Ok(ip(102)));
        assert!(p.release(ip(101)));
        assert!(!p.release(ip(101)));
        assert_eq!(p.allocate(None), Ok(ip(101)));
        assert_eq!(p.allocate(None), Ok(ip(103)));
        assert_eq!(p.in_use(), 4);
    }

    #[test]
    fn exhaustion_is_an_error_not_a_panic() {
        let mut p = AddressPool::new(vec![ip(10), ip(11)], ip(1));
        assert_eq!(p.allocate(None), Ok(ip(10)));
        assert_eq!(p.allocate(None), Ok(ip(11)));
        assert_eq!(p.allocate(None), Err(PoolError::Exhausted(2)));
        p.release(ip(10));
        assert_eq!(p.allocate(None), Ok(ip(10)));
    }

    #[test]
    fn pinned_addresses_are_reserved_inside_and_outside_the_pool() {
        let mut p = seed_pool();
        assert_eq!(p.allocate(Some(ip(100))), Ok(ip(100)));
        // The pool skips the pinned one.
        assert_eq!(p.allocate(None), Ok(ip(101)));
        // Outside the pool.
        assert_eq!(p.allocate(Some(ip(50))), Ok(ip(50)));
        assert_eq!(p.allocate(Some(ip(50))), Err(PoolError::InUse(ip(50))));
        assert_eq!(p.allocate(Some(ip(1))), Err(PoolError::IsLocal(ip(1))));
        assert!(p.release(ip(50)));
        assert_eq!(p.allocate(Some(ip(50))), Ok(ip(50)));
    }

    #[test]
    fn allocation_can_be_restricted_to_permitted_addresses() {
        let mut p = seed_pool();
        let only_odd = |a: Ipv4Addr| a.octets()[3] % 2 == 1;
        assert_eq!(p.allocate_matching(only_odd), Ok(ip(101)));
        assert_eq!(p.allocate_matching(only_odd), Ok(ip(103)));
        assert_eq!(p.allocate(None), Ok(ip(100)));
        assert_eq!(
            p.allocate_matching(|a| a == ip(101)),
            Err(PoolError::Exhausted(101))
        );
    }

    #[test]
    fn local_address_and_duplicates_are_dropped_from_the_pool() {
        let mut p = AddressPool::new(vec![ip(1), ip(2), ip(2), ip(3)], ip(1));
        assert_eq!(p.allocate(None), Ok(ip(2)));
        assert_eq!(p.allocate(None), Ok(ip(3)));
        assert_eq!(p.allocate(None), Err(PoolError::Exhausted(2)));
    }
}
