//! Client addresses: `virtgate-config`'s pool over pptpd's `remoteip` (first free address in list
//! order, as pptpd hands them out), plus what the pool cannot know: addresses chap-secrets pins
//! outside `remoteip` (pppd accepts any address the secrets line allows) and the server's own
//! `localip`, which is never handed out even if the admin listed it in `remoteip`.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use virtgate_config::{AddressPool, AllowedAddrs, PoolError};

/// Why an address could not be handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    #[error("address pool exhausted ({0} addresses, none free that this user may have)")]
    Exhausted(usize),
    #[error("pinned address {0} is already in use by another session")]
    InUse(Ipv4Addr),
    #[error("pinned address {0} is the server's own tunnel address")]
    IsLocal(Ipv4Addr),
}

/// Every client address in use, in or outside the pool.
#[derive(Debug)]
pub struct ClientAddresses {
    pool: AddressPool,
    outside: HashSet<Ipv4Addr>,
    local: Ipv4Addr,
}

impl ClientAddresses {
    pub fn new(remoteip: &[Ipv4Addr], local: Ipv4Addr) -> ClientAddresses {
        ClientAddresses {
            pool: AddressPool::new(remoteip.iter().copied().filter(|a| *a != local)),
            outside: HashSet::new(),
            local,
        }
    }

    /// Hands out `pinned` if given (reserving it), else the first free pool address that
    /// `allowed` (the user's chap-secrets address column) permits.
    pub fn allocate(
        &mut self,
        pinned: Option<Ipv4Addr>,
        allowed: Option<&AllowedAddrs>,
    ) -> Result<Ipv4Addr, AddressError> {
        if let Some(a) = pinned {
            if a == self.local {
                return Err(AddressError::IsLocal(a));
            }
            let ok = if self.pool.contains(a) {
                self.pool.reserve(a).is_ok()
            } else {
                self.outside.insert(a)
            };
            return if ok {
                Ok(a)
            } else {
                Err(AddressError::InUse(a))
            };
        }
        let r = match allowed {
            Some(allowed) => self.pool.allocate_permitted(allowed),
            None => self.pool.allocate(),
        };
        r.map_err(|_: PoolError| AddressError::Exhausted(self.pool.len()))
    }

    /// Returns an address; false if it was not in use.
    pub fn release(&mut self, a: Ipv4Addr) -> bool {
        if self.pool.contains(a) {
            self.pool.release(a).is_ok()
        } else {
            self.outside.remove(&a)
        }
    }

    /// Addresses handed out.
    pub fn in_use(&self) -> usize {
        self.pool.len() - self.pool.free() + self.outside.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtgate_config::ChapSecrets;

    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, 0, d)
    }

    fn seed() -> ClientAddresses {
        let pool: Vec<Ipv4Addr> = (100..=200).map(ip).collect();
        ClientAddresses::new(&pool, ip(1))
    }

    fn allowed(col: &str) -> AllowedAddrs {
        let s = ChapSecrets::parse(&format!("u s p {col}\n"), "t")
            .unwrap()
            .value;
        s.lookup("u", "s").unwrap().addrs.clone()
    }

    #[test]
    fn first_free_in_list_order_and_reuse_after_release() {
        let mut p = seed();
        assert_eq!(p.allocate(None, None), Ok(ip(100)));
        assert_eq!(p.allocate(None, None), Ok(ip(101)));
        assert_eq!(p.allocate(None, None), Ok(ip(102)));
        assert!(p.release(ip(101)));
        assert!(!p.release(ip(101)));
        assert_eq!(p.allocate(None, None), Ok(ip(101)));
        assert_eq!(p.allocate(None, None), Ok(ip(103)));
        assert_eq!(p.in_use(), 4);
    }

    #[test]
    fn exhaustion_is_an_error_not_a_panic() {
        let mut p = ClientAddresses::new(&[ip(10), ip(11)], ip(1));
        assert_eq!(p.allocate(None, None), Ok(ip(10)));
        assert_eq!(p.allocate(None, None), Ok(ip(11)));
        assert_eq!(p.allocate(None, None), Err(AddressError::Exhausted(2)));
        p.release(ip(10));
        assert_eq!(p.allocate(None, None), Ok(ip(10)));
    }

    #[test]
    fn pinned_addresses_are_reserved_inside_and_outside_the_pool() {
        let mut p = seed();
        assert_eq!(p.allocate(Some(ip(100)), None), Ok(ip(100)));
        assert_eq!(
            p.allocate(Some(ip(100)), None),
            Err(AddressError::InUse(ip(100)))
        );
        // The pool skips the pinned one.
        assert_eq!(p.allocate(None, None), Ok(ip(101)));
        // Outside the pool.
        assert_eq!(p.allocate(Some(ip(50)), None), Ok(ip(50)));
        assert_eq!(
            p.allocate(Some(ip(50)), None),
            Err(AddressError::InUse(ip(50)))
        );
        assert_eq!(
            p.allocate(Some(ip(1)), None),
            Err(AddressError::IsLocal(ip(1)))
        );
        assert_eq!(p.in_use(), 3);
        assert!(p.release(ip(50)));
        assert_eq!(p.allocate(Some(ip(50)), None), Ok(ip(50)));
    }

    #[test]
    fn chap_secrets_can_restrict_a_user_to_part_of_the_pool() {
        let mut p = seed();
        let only = allowed("192.168.0.150/31");
        assert_eq!(p.allocate(None, Some(&only)), Ok(ip(150)));
        assert_eq!(p.allocate(None, Some(&only)), Ok(ip(151)));
        assert_eq!(
            p.allocate(None, Some(&only)),
            Err(AddressError::Exhausted(101))
        );
        assert_eq!(p.allocate(None, Some(&allowed("*"))), Ok(ip(100)));
        assert_eq!(
            p.allocate(None, Some(&allowed("-"))),
            Err(AddressError::Exhausted(101))
        );
    }

    #[test]
    fn the_local_address_is_never_handed_out() {
        let mut p = ClientAddresses::new(&[ip(1), ip(2), ip(2), ip(3)], ip(1));
        assert_eq!(p.allocate(None, None), Ok(ip(2)));
        assert_eq!(p.allocate(None, None), Ok(ip(3)));
        assert_eq!(p.allocate(None, None), Err(AddressError::Exhausted(2)));
    }
}
