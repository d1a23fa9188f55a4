//! Abuse limits (issue 7), sans-IO: what the engine asks before it admits a connection, an
//! authentication or a session, and what it tells after an authentication. Time comes in as
//! `now`; nothing here touches a socket or a clock, so the tests run on virtual time.
//!
//! - **Failed-authentication lockout**, per user name and per source address: `N` failures
//!   within a sliding window lock the name (or address) for a time; a lockout starts once (the
//!   engine logs that), failures while locked are not counted (they never reach a password
//!   check), a success clears the user's (not the address's) history, and a lockout that ends
//!   starts a clean slate.
//! - **New-connection rate per source address** (accel-ppp's connlimit), as a GCRA token
//!   bucket: `burst` connections at once, then `rate` a minute.
//! - **Sessions** at a time, in total and per user, and the single-session policy
//!   ([`session_verdict`]).
//!
//! Memory is bounded: each table holds at most `max_tracked` keys. When a table is full, the
//! entries that carry nothing any more (no failure in the window, no lockout, a full bucket)
//! are dropped first; if it is still full, the idlest eighth is forgotten (entries that are
//! locked out last), so a flood from many addresses or of made-up user names costs a fixed
//! amount of memory and amortised O(1) per new key.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::settings::{AbuseLimits, SingleSession};

/// Why a connection, a call, an authentication or a session was refused: the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    /// The source opened new connections faster than `conn_rate`/`conn_burst`.
    ConnRate,
    /// The source address is locked out after failed authentications.
    SourceLocked,
    /// The user name is locked out after failed authentications.
    UserLocked,
    /// `max_sessions` reached.
    MaxSessions,
    /// `max_sessions_per_user` reached.
    MaxSessionsUser,
    /// `single_session deny`: the user already has a session.
    SingleSession,
}

impl Refusal {
    /// Every label, for metrics that list each one (zero included).
    pub const ALL: [Refusal; 6] = [
        Refusal::ConnRate,
        Refusal::SourceLocked,
        Refusal::UserLocked,
        Refusal::MaxSessions,
        Refusal::MaxSessionsUser,
        Refusal::SingleSession,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::ConnRate => "conn_rate",
            Refusal::SourceLocked => "address_locked",
            Refusal::UserLocked => "account_locked",
            Refusal::MaxSessions => "max_sessions",
            Refusal::MaxSessionsUser => "max_sessions_per_account",
            Refusal::SingleSession => "single_session",
        }
    }
}

/// The answer to a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnVerdict {
    Admit,
    /// Over the rate; `first` for the first refusal since the source's last admitted
    /// connection (log that one).
    Refuse {
        first: bool,
    },
}

impl ConnVerdict {
    #[cfg(test)]
    pub fn admitted(self) -> bool {
        self == ConnVerdict::Admit
    }
}

/// A lockout that has just started (the engine logs it once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lockout {
    User { name: String, until: Instant },
    Source { addr: Ipv4Addr, until: Instant },
}

/// What a table entry must say so the table can forget it.
trait Tracked {
    /// Nothing left to remember at `now`.
    fn idle(&self, now: Instant) -> bool;
    /// Eviction order: smaller goes first.
    fn rank(&self, now: Instant) -> (bool, Instant);
}

/// A map of at most `cap` entries (see the module notes).
struct Table<K, V> {
    map: HashMap<K, V>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V: Tracked> Table<K, V> {
    fn new(cap: usize) -> Self {
        Table {
            map: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// The entry of `k`, made with `new` when absent (making room first).
    fn entry(&mut self, now: Instant, k: &K, new: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(k) && self.map.len() >= self.cap {
            self.make_room(now);
        }
        self.map.entry(k.clone()).or_insert_with(new)
    }

    fn make_room(&mut self, now: Instant) {
        self.map.retain(|_, v| !v.idle(now));
        if self.map.len() < self.cap {
            return;
        }
        let mut ranks: Vec<(bool, Instant)> = self.map.values().map(|v| v.rank(now)).collect();
        let n = (self.cap / 8).max(1).min(ranks.len());
        let (_, nth, _) = ranks.select_nth_unstable(n - 1);
        let cut = *nth;
        let mut dropped = 0;
        self.map.retain(|_, v| {
            if dropped < n && v.rank(now) <= cut {
                dropped += 1;
                false
            } else {
                true
            }
        });
    }

    fn get<Q: Hash + Eq + ?Sized>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.map.get(k)
    }

    fn get_mut<Q: Hash + Eq + ?Sized>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.map.get_mut(k)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// Failures of one user or one address.
#[derive(Debug, Default)]
struct Failures {
    /// Times of the failures in the window (at most the threshold).
    times: VecDeque<Instant>,
    locked_until: Option<Instant>,
    last: Option<Instant>,
}

impl Failures {
    fn locked(&self, now: Instant) -> Option<Instant> {
        self.locked_until.filter(|&t| now < t)
    }

    /// Counts a failure; `Some(until)` when this one starts a lockout.
    fn fail(
        &mut self,
        now: Instant,
        threshold: u32,
        window: Duration,
        lockout: Duration,
    ) -> Option<Instant> {
        self.last = Some(now);
        if self.locked(now).is_some() {
            return None;
        }
        if self.locked_until.take().is_some() {
            // A lockout ended: a clean slate.
            self.times.clear();
        }
        while self
            .times
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            self.times.pop_front();
        }
        self.times.push_back(now);
        let threshold = threshold as usize;
        while self.times.len() > threshold {
            self.times.pop_front();
        }
        if self.times.len() >= threshold {
            self.times.clear();
            let until = now + lockout;
            self.locked_until = Some(until);
            return Some(until);
        }
        None
    }
}

/// A failures entry with the window it is judged against.
struct FailEntry {
    f: Failures,
    window: Duration,
}

impl Tracked for FailEntry {
    fn idle(&self, now: Instant) -> bool {
        self.f.locked(now).is_none()
            && self
                .f
                .times
                .back()
                .is_none_or(|&t| now.saturating_duration_since(t) >= self.window)
    }
    fn rank(&self, now: Instant) -> (bool, Instant) {
        (self.f.locked(now).is_some(), self.f.last.unwrap_or(now))
    }
}

/// GCRA state of one source: the theoretical arrival time of its next connection.
struct Bucket {
    tat: Instant,
    /// Refusing since the last admitted connection (so the engine logs a run once).
    refusing: bool,
}

impl Tracked for Bucket {
    fn idle(&self, now: Instant) -> bool {
        self.tat <= now
    }
    fn rank(&self, _now: Instant) -> (bool, Instant) {
        (false, self.tat)
    }
}

/// The abuse state of one server.
pub struct Abuse {
    limits: AbuseLimits,
    users: Table<String, FailEntry>,
    sources: Table<Ipv4Addr, FailEntry>,
    buckets: Table<Ipv4Addr, Bucket>,
}

impl Abuse {
    pub fn new(limits: AbuseLimits) -> Abuse {
        Abuse {
            limits,
            users: Table::new(limits.max_tracked),
            sources: Table::new(limits.max_tracked),
            buckets: Table::new(limits.max_tracked),
        }
    }

    pub fn limits(&self) -> &AbuseLimits {
        &self.limits
    }

    /// Keys held in the three tables.
    #[cfg(test)]
    pub fn tracked(&self) -> (usize, usize, usize) {
        (self.users.len(), self.sources.len(), self.buckets.len())
    }

    fn lockouts_on(&self) -> bool {
        !self.limits.lockout.is_zero() && !self.limits.fail_window.is_zero()
    }

    /// A new TCP connection from `src`: refused when it exceeds the source's rate (close it
    /// at once, before any PPTP state exists).
    pub fn admit_connection(&mut self, now: Instant, src: Ipv4Addr) -> ConnVerdict {
        let rate = self.limits.conn_rate_per_min;
        if rate == 0 || self.limits.conn_burst == 0 {
            return ConnVerdict::Admit;
        }
        let interval = Duration::from_secs(60) / rate;
        let tolerance = interval * (self.limits.conn_burst - 1);
        let b = self.buckets.entry(now, &src, || Bucket {
            tat: now,
            refusing: false,
        });
        let tat = b.tat.max(now);
        if tat.saturating_duration_since(now) > tolerance {
            let first = !b.refusing;
            b.refusing = true;
            return ConnVerdict::Refuse { first };
        }
        b.tat = tat + interval;
        b.refusing = false;
        ConnVerdict::Admit
    }

    /// Until when `src` is locked out, if it is.
    pub fn source_locked(&self, now: Instant, src: Ipv4Addr) -> Option<Instant> {
        if !self.lockouts_on() || self.limits.source_failures == 0 {
            return None;
        }
        self.sources.get(&src).and_then(|e| e.f.locked(now))
    }

    /// Until when the user name is locked out, if it is.
    pub fn user_locked(&self, now: Instant, user: &str) -> Option<Instant> {
        if !self.lockouts_on() || self.limits.user_failures == 0 {
            return None;
        }
        self.users.get(user).and_then(|e| e.f.locked(now))
    }

    /// A password check failed: counts it for the user and the address; returns the lockouts
    /// this failure starts.
    pub fn auth_failed(&mut self, now: Instant, src: Ipv4Addr, user: &str) -> Vec<Lockout> {
        let mut started = Vec::new();
        if !self.lockouts_on() {
            return started;
        }
        let (window, lockout) = (self.limits.fail_window, self.limits.lockout);
        if self.limits.user_failures > 0 {
            let e = self.users.entry(now, &user.to_string(), || FailEntry {
                f: Failures::default(),
                window,
            });
            if let Some(until) = e.f.fail(now, self.limits.user_failures, window, lockout) {
                started.push(Lockout::User {
                    name: user.to_string(),
                    until,
                });
            }
        }
        if self.limits.source_failures > 0 {
            let e = self.sources.entry(now, &src, || FailEntry {
                f: Failures::default(),
                window,
            });
            if let Some(until) = e.f.fail(now, self.limits.source_failures, window, lockout) {
                started.push(Lockout::Source { addr: src, until });
            }
        }
        started
    }

    /// A password check succeeded: the user's failure history is cleared (the address's is
    /// not: other users may share it behind NAT).
    pub fn auth_succeeded(&mut self, _now: Instant, user: &str) {
        if let Some(e) = self.users.get_mut(user) {
            if e.f.locked_until.is_none() {
                e.f.times.clear();
            }
        }
    }
}

/// What to do with a newly authenticated session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionVerdict {
    Admit,
    /// Refuse it (hang it up with this reason).
    Refuse(Refusal),
    /// Admit it and hang up these older sessions of the user (single-session replace).
    Replace(Vec<u16>),
}

/// The session admission rule: `total` sessions other than the new one exist, `user_sessions`
/// are the user's other sessions (oldest first).
pub fn session_verdict(
    limits: &AbuseLimits,
    total: usize,
    user_sessions: &[u16],
) -> SessionVerdict {
    if limits.single_session == SingleSession::Replace && !user_sessions.is_empty() {
        // Replacing frees as many as it adds: the totals cannot grow.
        return SessionVerdict::Replace(user_sessions.to_vec());
    }
    if limits.single_session == SingleSession::Deny && !user_sessions.is_empty() {
        return SessionVerdict::Refuse(Refusal::SingleSession);
    }
    let cap = |n: u32| (n > 0).then_some(n as usize);
    if cap(limits.max_sessions).is_some_and(|m| total >= m) {
        return SessionVerdict::Refuse(Refusal::MaxSessions);
    }
    if cap(limits.max_sessions_per_user).is_some_and(|m| user_sessions.len() >= m) {
        return SessionVerdict::Refuse(Refusal::MaxSessionsUser);
    }
    SessionVerdict::Admit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 + n)
    }

    fn limits() -> AbuseLimits {
        AbuseLimits::default()
    }

    #[test]
    fn n_failures_in_the_window_lock_the_user_out_then_it_is_admitted_again() {
        let t0 = Instant::now();
        let mut a = Abuse::new(AbuseLimits {
            user_failures: 3,
            source_failures: 0,
            fail_window: secs(60),
            lockout: secs(300),
            ..limits()
        });
        assert!(a.auth_failed(t0, ip(1), "ann").is_empty());
        assert!(a.auth_failed(t0 + secs(10), ip(2), "ann").is_empty());
        assert_eq!(a.user_locked(t0 + secs(10), "ann"), None);
        // The third within 60 s, from any address, starts the lockout: reported once.
        let l = a.auth_failed(t0 + secs(20), ip(3), "ann");
        assert_eq!(
            l,
            vec![Lockout::User {
                name: "ann".into(),
                until: t0 + secs(320)
            }]
        );
        assert_eq!(a.user_locked(t0 + secs(20), "ann"), Some(t0 + secs(320)));
        assert_eq!(a.user_locked(t0 + secs(319), "ann"), Some(t0 + secs(320)));
        // Failures while locked neither extend it nor report it again.
        assert!(a.auth_failed(t0 + secs(100), ip(3), "ann").is_empty());
        assert_eq!(a.user_locked(t0 + secs(100), "ann"), Some(t0 + secs(320)));
        // Others are not affected; the address limit is off.
        assert_eq!(a.user_locked(t0 + secs(20), "bob"), None);
        assert_eq!(a.source_locked(t0 + secs(20), ip(3)), None);
        // Over: admitted, and the next lockout needs three fresh failures.
        assert_eq!(a.user_locked(t0 + secs(320), "ann"), None);
        assert!(a.auth_failed(t0 + secs(321), ip(1), "ann").is_empty());
        assert!(a.auth_failed(t0 + secs(322), ip(1), "ann").is_empty());
        assert_eq!(a.auth_failed(t0 + secs(323), ip(1), "ann").len(), 1);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t0 = Instant::now();
        let mut a = Abuse::new(AbuseLimits {
            user_failures: 3,
            fail_window: secs(60),
            ..limits()
        });
        // One failure every 30 s: never three within 60 s.
        for i in 0..20 {
            assert!(a.auth_failed(t0 + secs(30 * i), ip(1), "ann").is_empty());
        }
        assert_eq!(a.user_locked(t0 + secs(570), "ann"), None);
        // Two quick ones after the last: the third in the window locks.
        assert!(a.auth_failed(t0 + secs(580), ip(1), "ann").len() == 1);
    }

    #[test]
    fn a_success_clears_the_users_failures_but_not_the_addresss() {
        let t0 = Instant::now();
        let mut a = Abuse::new(AbuseLimits {
            user_failures: 3,
            source_failures: 4,
            ..limits()
        });
        a.auth_failed(t0, ip(1), "ann");
        a.auth_failed(t0, ip(1), "ann");
        a.auth_succeeded(t0, "ann");
        assert!(a.auth_failed(t0, ip(1), "ann").is_empty());
        // The address has seen four failures now (NAT: other users' too count).
        let l = a.auth_failed(t0, ip(1), "ann");
        assert_eq!(
            l,
            vec![Lockout::Source {
                addr: ip(1),
                until: t0 + secs(600)
            }]
        );
        assert!(a.source_locked(t0 + secs(599), ip(1)).is_some());
        assert!(a.source_locked(t0, ip(2)).is_none());
    }

    #[test]
    fn defaults_let_two_users_behind_one_nat_mistype_a_few_times() {
        let t0 = Instant::now();
        let mut a = Abuse::new(limits());
        for i in 0..4 {
            for u in ["ann", "bob", "cy"] {
                assert!(a.auth_failed(t0 + secs(i), ip(1), u).is_empty());
            }
        }
        assert_eq!(a.source_locked(t0 + secs(5), ip(1)), None);
        assert_eq!(a.user_locked(t0 + secs(5), "ann"), None);
    }

    #[test]
    fn zero_turns_each_lockout_off() {
        let t0 = Instant::now();
        for l in [
            AbuseLimits {
                user_failures: 0,
                source_failures: 0,
                ..limits()
            },
            AbuseLimits {
                lockout: Duration::ZERO,
                ..limits()
            },
        ] {
            let mut a = Abuse::new(l);
            for i in 0..100 {
                assert!(a.auth_failed(t0 + secs(i), ip(1), "ann").is_empty());
            }
            assert_eq!(a.user_locked(t0 + secs(100), "ann"), None);
            assert_eq!(a.source_locked(t0 + secs(100), ip(1)), None);
            assert_eq!(a.tracked(), (0, 0, 0));
        }
    }

    #[test]
    fn connection_rate_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut a = Abuse::new(AbuseLimits {
            conn_rate_per_min: 60,
            conn_burst: 5,
            ..limits()
        });
        for _ in 0..5 {
            assert!(a.admit_connection(t0, ip(1)).admitted());
        }
        // A run of refusals is reported as starting once.
        assert_eq!(
            a.admit_connection(t0, ip(1)),
            ConnVerdict::Refuse { first: true }
        );
        assert_eq!(
            a.admit_connection(t0 + Duration::from_millis(999), ip(1)),
            ConnVerdict::Refuse { first: false }
        );
        // Another source is not affected.
        assert!(a.admit_connection(t0, ip(2)).admitted());
        // One a second after that.
        assert!(a.admit_connection(t0 + secs(1), ip(1)).admitted());
        assert_eq!(
            a.admit_connection(t0 + secs(1), ip(1)),
            ConnVerdict::Refuse { first: true }
        );
        assert!(a.admit_connection(t0 + secs(2), ip(1)).admitted());
        // A quiet minute refills the burst.
        for _ in 0..5 {
            assert!(a.admit_connection(t0 + secs(60), ip(1)).admitted());
        }
        assert!(!a.admit_connection(t0 + secs(60), ip(1)).admitted());
    }

    #[test]
    fn default_rate_admits_a_burst_of_a_few_dozen_and_reconnects() {
        let t0 = Instant::now();
        let mut a = Abuse::new(limits());
        for i in 0..40 {
            assert!(
                a.admit_connection(t0 + Duration::from_millis(i), ip(1))
                    .admitted(),
                "{i}"
            );
        }
        assert!(!a
            .admit_connection(t0 + Duration::from_millis(40), ip(1))
            .admitted());
        // A client reconnecting a few seconds later gets in.
        assert!(a.admit_connection(t0 + secs(3), ip(1)).admitted());
        let mut off = Abuse::new(AbuseLimits {
            conn_rate_per_min: 0,
            ..limits()
        });
        for _ in 0..10_000 {
            assert!(off.admit_connection(t0, ip(1)).admitted());
        }
    }

    #[test]
    fn tables_are_bounded_under_a_flood_from_many_sources() {
        let t0 = Instant::now();
        let cap = 64;
        let mut a = Abuse::new(AbuseLimits {
            max_tracked: cap,
            source_failures: 3,
            ..limits()
        });
        // One locked-out address, then a flood of failures and connections from 100,000
        // others (and as many made-up user names).
        for _ in 0..3 {
            a.auth_failed(t0, ip(0), "root");
        }
        assert!(a.source_locked(t0, ip(0)).is_some());
        for n in 1..100_000 {
            let t = t0 + Duration::from_millis(u64::from(n));
            let _ = a.admit_connection(t, ip(n));
            a.auth_failed(t, ip(n), &format!("user{n}"));
            let (u, s, b) = a.tracked();
            assert!(u <= cap && s <= cap && b <= cap, "{u} {s} {b}");
        }
        // Locked entries are forgotten last: the lockout is still in force (the flood took
        // 100 s of the 600 s lockout).
        assert!(a.source_locked(t0 + secs(100), ip(0)).is_some());
        // Idle entries are dropped first: a quiet period empties the rate table.
        let later = t0 + secs(3600);
        for n in 0..cap as u32 {
            assert!(a.admit_connection(later, ip(200_000 + n)).admitted());
        }
        assert!(a.tracked().2 <= cap);
    }

    #[test]
    fn session_policies() {
        let l = limits();
        assert_eq!(session_verdict(&l, 0, &[]), SessionVerdict::Admit);
        assert_eq!(session_verdict(&l, 5, &[1, 2]), SessionVerdict::Admit);
        assert_eq!(
            session_verdict(&l, 1000, &[]),
            SessionVerdict::Refuse(Refusal::MaxSessions)
        );
        let many: Vec<u16> = (1..=64).collect();
        assert_eq!(
            session_verdict(&l, 64, &many),
            SessionVerdict::Refuse(Refusal::MaxSessionsUser)
        );
        let per_user = AbuseLimits {
            max_sessions_per_user: 2,
            max_sessions: 0,
            ..l
        };
        assert_eq!(session_verdict(&per_user, 1, &[7]), SessionVerdict::Admit);
        assert_eq!(
            session_verdict(&per_user, 2, &[7, 8]),
            SessionVerdict::Refuse(Refusal::MaxSessionsUser)
        );
        assert_eq!(
            session_verdict(&per_user, 100_000, &[]),
            SessionVerdict::Admit
        );
        let deny = AbuseLimits {
            single_session: SingleSession::Deny,
            ..l
        };
        assert_eq!(session_verdict(&deny, 0, &[]), SessionVerdict::Admit);
        assert_eq!(
            session_verdict(&deny, 1, &[7]),
            SessionVerdict::Refuse(Refusal::SingleSession)
        );
        let replace = AbuseLimits {
            single_session: SingleSession::Replace,
            ..l
        };
        assert_eq!(session_verdict(&replace, 0, &[]), SessionVerdict::Admit);
        assert_eq!(
            session_verdict(&replace, 1000, &[7, 9]),
            SessionVerdict::Replace(vec![7, 9])
        );
    }
}
