//! A pool of client addresses over pptpd's `remoteip` list.
//!
//! pptpd gives each connection slot a fixed `remoteip` address, slot `n` getting the `n`-th
//! address. The pool hands out the first free address in list order (for the usual ascending
//! range, the lowest free address), which gives the same addresses as long as clients leave
//! in the order they came and reuses freed addresses lowest-position first. A chap-secrets line
//! that pins an address can [`reserve`](AddressPool::reserve) it.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::chap_secrets::AllowedAddrs;
use crate::pptpd_conf::PptpdConf;

/// Why a pool operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// No free address (that the client may use) is left.
    #[error("no free client address left in the pool")]
    Exhausted,
    /// The address is not one of the pool's.
    #[error("{0} is not in the client address pool")]
    NotInPool(Ipv4Addr),
    /// The address is already handed out.
    #[error("{0} is already in use")]
    InUse(Ipv4Addr),
    /// Releasing an address that is not handed out.
    #[error("{0} is not in use")]
    NotInUse(Ipv4Addr),
}

/// Client addresses, each free or in use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressPool {
    addrs: Vec<Ipv4Addr>,
    used: Vec<bool>,
    index: HashMap<Ipv4Addr, usize>,
}

impl AddressPool {
    /// A pool of `addrs` in the given order; repeated addresses are kept once.
    pub fn new(addrs: impl IntoIterator<Item = Ipv4Addr>) -> AddressPool {
        let mut pool = AddressPool::default();
        for ip in addrs {
            if let std::collections::hash_map::Entry::Vacant(v) = pool.index.entry(ip) {
                v.insert(pool.addrs.len());
                pool.addrs.push(ip);
                pool.used.push(false);
            }
        }
        pool
    }

    /// The pool pptpd would use: the first [`PptpdConf::max_clients`] `remoteip` addresses
    /// (empty with `delegate`, where addresses come from chap-secrets).
    pub fn from_conf(conf: &PptpdConf) -> AddressPool {
        if conf.delegate {
            return AddressPool::default();
        }
        AddressPool::new(conf.remoteip.iter().copied().take(conf.max_clients()))
    }

    /// Hands out the first free address.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, PoolError> {
        self.allocate_where(|_| true)
    }

    /// Hands out the first free address the client's chap-secrets line permits.
    pub fn allocate_permitted(&mut self, allowed: &AllowedAddrs) -> Result<Ipv4Addr, PoolError> {
        self.allocate_where(|ip| allowed.permits(ip))
    }

    fn allocate_where(&mut self, ok: impl Fn(Ipv4Addr) -> bool) -> Result<Ipv4Addr, PoolError> {
        for (ip, used) in self.addrs.iter().zip(self.used.iter_mut()) {
            if !*used && ok(*ip) {
                *used = true;
                return Ok(*ip);
            }
        }
        Err(PoolError::Exhausted)
    }

    /// Marks `ip` in use (a pinned address).
    pub fn reserve(&mut self, ip: Ipv4Addr) -> Result<(), PoolError> {
        let used = self.slot(ip)?;
        if *used {
            return Err(PoolError::InUse(ip));
        }
        *used = true;
        Ok(())
    }

    /// Gives `ip` back.
    pub fn release(&mut self, ip: Ipv4Addr) -> Result<(), PoolError> {
        let used = self.slot(ip)?;
        if !*used {
            return Err(PoolError::NotInUse(ip));
        }
        *used = false;
        Ok(())
    }

    fn slot(&mut self, ip: Ipv4Addr) -> Result<&mut bool, PoolError> {
        let i = *self.index.get(&ip).ok_or(PoolError::NotInPool(ip))?;
        self.used.get_mut(i).ok_or(PoolError::NotInPool(ip))
    }

    /// Whether `ip` is one of the pool's addresses.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.index.contains_key(&ip)
    }

    /// Whether `ip` is handed out.
    pub fn is_in_use(&self, ip: Ipv4Addr) -> bool {
        self.index
            .get(&ip)
            .and_then(|&i| self.used.get(i))
            .copied()
            .unwrap_or(false)
    }

    /// Number of addresses in the pool.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Whether the pool has no addresses.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Number of free addresses.
    pub fn free(&self) -> usize {
        self.used.iter().filter(|u| !**u).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chap_secrets::AddrRule;

    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, 0, d)
    }

    #[test]
    fn allocates_first_free_and_reuses_released() {
        let mut p = AddressPool::new((100..=102).map(ip));
        assert_eq!(p.allocate(), Ok(ip(100)));
        assert_eq!(p.allocate(), Ok(ip(101)));
        assert_eq!(p.release(ip(100)), Ok(()));
        assert_eq!(p.allocate(), Ok(ip(100)));
        assert_eq!(p.allocate(), Ok(ip(102)));
        assert_eq!(p.allocate(), Err(PoolError::Exhausted));
        assert_eq!(p.free(), 0);
    }

    #[test]
    fn reserve_and_release_errors() {
        let mut p = AddressPool::new([ip(1), ip(2), ip(1)]);
        assert_eq!(p.len(), 2);
        assert_eq!(p.reserve(ip(2)), Ok(()));
        assert!(p.is_in_use(ip(2)));
        assert_eq!(p.reserve(ip(2)), Err(PoolError::InUse(ip(2))));
        assert_eq!(p.allocate(), Ok(ip(1)));
        assert_eq!(p.allocate(), Err(PoolError::Exhausted));
        assert_eq!(p.release(ip(9)), Err(PoolError::NotInPool(ip(9))));
        assert_eq!(p.release(ip(2)), Ok(()));
        assert_eq!(p.release(ip(2)), Err(PoolError::NotInUse(ip(2))));
        assert!(!p.contains(ip(9)));
    }

    #[test]
    fn allocate_permitted_skips_addresses_the_secret_forbids() {
        let mut p = AddressPool::new((100..=103).map(ip));
        let allowed = AllowedAddrs::from_rules(vec![
            AddrRule {
                permit: false,
                network: ip(100),
                prefix_len: 32,
            },
            AddrRule {
                permit: true,
                network: ip(0),
                prefix_len: 24,
            },
        ]);
        assert_eq!(p.allocate_permitted(&allowed), Ok(ip(101)));
        assert_eq!(
            p.allocate_permitted(&AllowedAddrs::none()),
            Err(PoolError::Exhausted)
        );
        assert_eq!(p.allocate(), Ok(ip(100)));
    }

    #[test]
    fn from_conf_takes_pptpds_slots() {
        let conf = PptpdConf::builtin_default();
        let p = AddressPool::from_conf(&conf);
        // 101 addresses but connections 100: pptpd never uses 192.168.0.200.
        assert_eq!(p.len(), 100);
        assert!(p.contains(ip(199)));
        assert!(!p.contains(ip(200)));
        let mut delegated = conf.clone();
        delegated.delegate = true;
        assert!(AddressPool::from_conf(&delegated).is_empty());
    }
}
