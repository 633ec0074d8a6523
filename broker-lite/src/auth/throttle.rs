//! Failed logins remembered per IP address and per user name, to decide before
//! a password check whether it runs at all, and in which lane it waits.
//!
//! A pure state machine: time is passed in, nothing here sleeps or does I/O.
//! Both tables are bounded (`max_tracked_failures` each); a failure is
//! forgotten `failure_window_secs` after the one that followed it, so a count
//! only grows while failures keep coming. User names are kept as keyed hashes,
//! so a long name costs no more than a short one.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::AuthConfig;

/// The thresholds, from the `auth:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FailureLimits {
    /// Failures after which an address is refused at once; 0 = never.
    pub per_ip: u32,
    /// Failures after which a user name is refused at once from an address
    /// with failures of its own; 0 = never.
    pub per_user: u32,
    pub window: Duration,
    /// Entries per table.
    pub max_tracked: usize,
}

impl FailureLimits {
    pub(crate) fn from_config(config: &AuthConfig) -> FailureLimits {
        FailureLimits {
            per_ip: config.max_failures_per_ip,
            per_user: config.max_failures_per_user,
            window: Duration::from_secs(config.failure_window_secs.max(1)),
            max_tracked: config.max_tracked_failures.max(1),
        }
    }
}

/// Which queue a password check waits in for a free slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// From an address with no recent failure and no other check under way:
    /// served before any `Suspect`.
    Clean = 0,
    Suspect = 1,
}

/// Why a login is refused without a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Blocked {
    Ip,
    User,
}

/// What to do with a login that needs a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Refuse(Blocked),
    /// Check it; the caller must call `Failures::end_check` for the address
    /// when the check is over (or abandoned).
    Check(Lane),
}

/// The failed logins of one address or user name.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures in a row, each within the window of the one before.
    failures: u32,
    last_failure: Instant,
    /// Checks admitted and not ended (addresses only).
    checking: u32,
}

impl Entry {
    /// Failures still remembered at `now`.
    fn live(&self, now: Instant, window: Duration) -> u32 {
        if now.saturating_duration_since(self.last_failure) < window {
            self.failures
        } else {
            0
        }
    }
}

/// One bounded table.
#[derive(Debug)]
struct Table<K> {
    map: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Copy> Table<K> {
    fn new() -> Table<K> {
        Table {
            map: HashMap::new(),
        }
    }

    fn get(&self, key: &K) -> Option<&Entry> {
        self.map.get(key)
    }

    /// The entry for `key`, made if need be; when the table is full, entries
    /// with nothing left to remember go first, then the oldest failure.
    fn entry(&mut self, key: K, now: Instant, limits: &FailureLimits) -> &mut Entry {
        if !self.map.contains_key(&key) && self.map.len() >= limits.max_tracked {
            self.map
                .retain(|_, e| e.checking > 0 || e.live(now, limits.window) > 0);
            if self.map.len() >= limits.max_tracked {
                let oldest = self
                    .map
                    .iter()
                    .min_by_key(|(_, e)| (e.checking > 0, e.last_failure))
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.map.remove(&k);
                }
            }
        }
        self.map.entry(key).or_insert(Entry {
            failures: 0,
            last_failure: now,
            checking: 0,
        })
    }

    /// Drop `key` when it has nothing left to remember.
    fn tidy(&mut self, key: &K, now: Instant, window: Duration) {
        if let Some(e) = self.map.get(key) {
            if e.checking == 0 && e.live(now, window) == 0 {
                self.map.remove(key);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// What an address is remembered by: an IPv4 address (also when written as
/// IPv6), or the /64 network of an IPv6 one, since one host usually holds a
/// whole /64 to pick from.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

/// Failed logins per address and per user name.
#[derive(Debug)]
pub(crate) struct Failures {
    limits: FailureLimits,
    ips: Table<IpAddr>,
    users: Table<u64>,
    /// Keys user names; random per process, so names cannot be chosen to collide.
    names: RandomState,
}

impl Failures {
    pub(crate) fn new(limits: FailureLimits) -> Failures {
        Failures {
            limits,
            ips: Table::new(),
            users: Table::new(),
            names: RandomState::new(),
        }
    }

    /// New thresholds (a reload); what is remembered stays.
    pub(crate) fn set_limits(&mut self, limits: FailureLimits) {
        self.limits = limits;
    }

    fn user_key(&self, user: &str) -> u64 {
        self.names.hash_one(user)
    }

    fn ip_failures(&self, ip: IpAddr, now: Instant) -> (u32, u32) {
        self.ips
            .get(&address_key(ip))
            .map_or((0, 0), |e| (e.live(now, self.limits.window), e.checking))
    }

    fn user_failures(&self, user: &str, now: Instant) -> u32 {
        self.users
            .get(&self.user_key(user))
            .map_or(0, |e| e.live(now, self.limits.window))
    }

    /// Whether a login from `ip` as `user` is refused at once.
    pub(crate) fn blocked(&self, ip: IpAddr, user: &str, now: Instant) -> Option<Blocked> {
        let (ip_failures, _) = self.ip_failures(ip, now);
        let l = &self.limits;
        if l.per_ip > 0 && ip_failures >= l.per_ip {
            return Some(Blocked::Ip);
        }
        if l.per_user > 0 && ip_failures > 0 && self.user_failures(user, now) >= l.per_user {
            return Some(Blocked::User);
        }
        None
    }

    /// A login from `ip` as `user` is about to need a password check: refuse
    /// it, or admit it to a lane (counted as under way for `ip`).
    pub(crate) fn admit(&mut self, ip: IpAddr, user: &str, now: Instant) -> Admission {
        if let Some(why) = self.blocked(ip, user, now) {
            return Admission::Refuse(why);
        }
        let (ip_failures, checking) = self.ip_failures(ip, now);
        let lane = if ip_failures == 0 && checking == 0 {
            Lane::Clean
        } else {
            Lane::Suspect
        };
        let limits = self.limits;
        let e = self.ips.entry(address_key(ip), now, &limits);
        e.checking += 1;
        Admission::Check(lane)
    }

    /// The check admitted for `ip` is over, whatever came of it.
    pub(crate) fn end_check(&mut self, ip: IpAddr, now: Instant) {
        let ip = address_key(ip);
        if let Some(e) = self.ips.map.get_mut(&ip) {
            e.checking = e.checking.saturating_sub(1);
        }
        self.ips.tidy(&ip, now, self.limits.window);
    }

    /// A wrong password, an unknown user name or a missing password.
    pub(crate) fn failed(&mut self, ip: IpAddr, user: &str, now: Instant) {
        let (limits, key) = (self.limits, self.user_key(user));
        for e in [
            self.ips.entry(address_key(ip), now, &limits),
            self.users.entry(key, now, &limits),
        ] {
            e.failures = e.live(now, limits.window).saturating_add(1);
            e.last_failure = now;
        }
    }

    /// The right password for `user`: its failures are forgotten (only who
    /// knows the password can do that). The address's are kept: a client
    /// with an account of its own must not wipe its guesses at others.
    pub(crate) fn succeeded(&mut self, user: &str) {
        let key = self.user_key(user);
        self.users.map.remove(&key);
    }

    /// Entries held: (addresses, user names).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> (usize, usize) {
        (self.ips.len(), self.users.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Admission::{Check, Refuse};
    use Lane::{Clean, Suspect};

    fn limits(per_ip: u32, per_user: u32) -> FailureLimits {
        FailureLimits {
            per_ip,
            per_user,
            window: Duration::from_secs(60),
            max_tracked: 100,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    /// Admit, end the check and count it as failed.
    fn fail(f: &mut Failures, from: IpAddr, user: &str, now: Instant) -> Admission {
        let a = f.admit(from, user, now);
        if let Check(_) = a {
            f.end_check(from, now);
            f.failed(from, user, now);
        }
        a
    }

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_window_has_passed() {
        let t0 = Instant::now();
        let mut f = Failures::new(limits(3, 0));
        assert_eq!(fail(&mut f, ip(1), "a", t0), Check(Clean));
        assert_eq!(fail(&mut f, ip(1), "b", secs(t0, 1)), Check(Suspect));
        assert_eq!(fail(&mut f, ip(1), "c", secs(t0, 2)), Check(Suspect));
        assert_eq!(f.admit(ip(1), "d", secs(t0, 3)), Refuse(Blocked::Ip));
        // Others are not affected.
        assert_eq!(f.admit(ip(2), "d", secs(t0, 3)), Check(Clean));
        // The window counts from the last failure.
        assert_eq!(f.admit(ip(1), "d", secs(t0, 61)), Refuse(Blocked::Ip));
        assert_eq!(f.admit(ip(1), "d", secs(t0, 62)), Check(Clean));
    }

    #[test]
    fn failures_further_apart_than_the_window_never_add_up() {
        let t0 = Instant::now();
        let mut f = Failures::new(limits(2, 0));
        for n in 0..5 {
            let a = fail(&mut f, ip(1), "a", secs(t0, n * 60));
            assert_eq!(a, Check(Clean), "failure {n}");
        }
    }

    #[test]
    fn a_user_name_under_attack_is_refused_only_to_addresses_with_failures() {
        let t0 = Instant::now();
        let mut f = Failures::new(limits(0, 3));
        for n in 1..=3 {
            assert_eq!(fail(&mut f, ip(n), "alice", t0), Check(Clean));
        }
        // Address 1 failed: it may not try alice again, but may try bob.
        assert_eq!(f.admit(ip(1), "alice", t0), Refuse(Blocked::User));
        assert_eq!(f.admit(ip(1), "bob", t0), Check(Suspect));
        // Alice at home, from an address without failures, is still checked, first.
        assert_eq!(f.admit(ip(9), "alice", t0), Check(Clean));
        f.end_check(ip(9), t0);
        // Her right password clears the name.
        f.succeeded("alice");
        assert_eq!(f.admit(ip(1), "alice", t0), Check(Suspect));
    }

    #[test]
    fn a_second_check_from_one_address_waits_in_the_suspect_lane() {
        let t0 = Instant::now();
        let mut f = Failures::new(limits(3, 3));
        assert_eq!(f.admit(ip(1), "a", t0), Check(Clean));
        assert_eq!(f.admit(ip(1), "b", t0), Check(Suspect));
        f.end_check(ip(1), t0);
        f.end_check(ip(1), t0);
        assert_eq!(f.tracked(), (0, 0), "nothing to remember");
        assert_eq!(f.admit(ip(1), "a", t0), Check(Clean));
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let t0 = Instant::now();
        let mut f = Failures::new(limits(0, 0));
        for n in 0..50 {
            assert!(matches!(fail(&mut f, ip(1), "alice", t0), Check(_)), "{n}");
        }
    }

    #[test]
    fn the_tables_stay_bounded_under_many_addresses_and_names() {
        let t0 = Instant::now();
        let mut f = Failures::new(FailureLimits {
            max_tracked: 16,
            ..limits(2, 2)
        });
        for n in 0..10_000u32 {
            let from = IpAddr::from(n.to_be_bytes());
            fail(
                &mut f,
                from,
                &format!("user-{n}"),
                secs(t0, u64::from(n) / 100),
            );
            let (ips, users) = f.tracked();
            assert!(ips <= 16 && users <= 16, "{ips} {users} after {n}");
        }
        // The newest are remembered, the oldest were let go.
        let now = secs(t0, 100);
        fail(&mut f, IpAddr::from(9_999u32.to_be_bytes()), "x", now);
        assert_eq!(
            f.admit(IpAddr::from(9_999u32.to_be_bytes()), "x", now),
            Refuse(Blocked::Ip)
        );
        assert_eq!(
            f.admit(IpAddr::from(0u32.to_be_bytes()), "x", now),
            Check(Clean)
        );
    }

    #[test]
    fn an_address_with_a_check_under_way_is_not_forgotten_first() {
        let t0 = Instant::now();
        let mut f = Failures::new(FailureLimits {
            max_tracked: 2,
            ..limits(5, 0)
        });
        assert_eq!(f.admit(ip(1), "a", t0), Check(Clean));
        fail(&mut f, ip(2), "a", t0);
        fail(&mut f, ip(3), "a", secs(t0, 1));
        // ip(2) went; ip(1) is still checking, so a second check is a suspect.
        assert_eq!(f.admit(ip(1), "a", secs(t0, 1)), Check(Suspect));
        assert_eq!(f.admit(ip(2), "a", secs(t0, 1)), Check(Clean));
    }

    #[test]
    fn an_ipv6_network_counts_as_one_address_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let mut f = Failures::new(limits(2, 0));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::7".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        fail(&mut f, a, "x", t0);
        fail(&mut f, b, "x", t0);
        assert_eq!(f.admit(a, "x", t0), Refuse(Blocked::Ip));
        assert_eq!(f.admit(other, "x", t0), Check(Clean));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        fail(&mut f, mapped, "x", t0);
        fail(&mut f, ip(1), "x", t0);
        assert_eq!(f.admit(ip(1), "x", t0), Refuse(Blocked::Ip));
    }

    #[test]
    fn new_limits_apply_to_what_is_remembered() {
        let t0 = Instant::now();
        let mut f = Failures::new(limits(5, 0));
        fail(&mut f, ip(1), "a", t0);
        fail(&mut f, ip(1), "a", t0);
        assert!(f.blocked(ip(1), "a", t0).is_none());
        f.set_limits(limits(2, 0));
        assert_eq!(f.blocked(ip(1), "a", t0), Some(Blocked::Ip));
    }
}
