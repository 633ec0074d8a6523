//! A source's waiting commands: bounded, oldest first, each with its deadline, and
//! the rate limit that spaces them out. Plain data: the worker owns the clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Commands waiting for one device, in arrival order.
#[derive(Debug)]
pub struct Queue<T> {
    items: VecDeque<(Instant, T)>,
    max: usize,
    expire_after: Duration,
}

/// The queue holds `max_queued` already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl<T> Queue<T> {
    pub fn new(max: usize, expire_after: Duration) -> Queue<T> {
        Queue {
            items: VecDeque::with_capacity(max.min(1024)),
            max,
            expire_after,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queue `item`, which arrived at `arrived`; it expires `expire_after` later.
    pub fn push(&mut self, arrived: Instant, item: T) -> Result<(), (Full, T)> {
        if self.items.len() >= self.max {
            return Err((Full, item));
        }
        self.items.push_back((arrived + self.expire_after, item));
        Ok(())
    }

    /// Put back at the head an item taken with [`Queue::pop`] (its device was not
    /// there after all); its deadline stays. It may exceed `max` by that one.
    pub fn push_front(&mut self, deadline: Instant, item: T) {
        self.items.push_front((deadline, item));
    }

    /// The oldest item that has not expired at `now`, with its deadline; the
    /// expired ones before it are handed to `expired` in order.
    pub fn pop(&mut self, now: Instant, mut expired: impl FnMut(T)) -> Option<(Instant, T)> {
        while let Some((deadline, item)) = self.items.pop_front() {
            if deadline <= now {
                expired(item);
            } else {
                return Some((deadline, item));
            }
        }
        None
    }

    /// Every item expired at `now`, wherever it is, in order.
    pub fn take_expired(&mut self, now: Instant, mut expired: impl FnMut(T)) {
        // Deadlines grow with arrival, except for an item put back at the head,
        // which is older still: the expired ones are always a prefix.
        while self.items.front().is_some_and(|(d, _)| *d <= now) {
            if let Some((_, item)) = self.items.pop_front() {
                expired(item);
            }
        }
    }

    /// When the oldest item expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.items.front().map(|(d, _)| *d)
    }

    /// Everything left, in order (at shutdown).
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.items.drain(..).map(|(_, item)| item)
    }
}

/// At most `per_minute` sends in any 60 seconds.
#[derive(Debug)]
pub struct RateLimit {
    per_minute: usize,
    /// When the last sends started, oldest first; never more than `per_minute`.
    sent: VecDeque<Instant>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl RateLimit {
    pub fn new(per_minute: u32) -> RateLimit {
        let per_minute = per_minute.max(1) as usize;
        RateLimit {
            per_minute,
            sent: VecDeque::with_capacity(per_minute.min(1024)),
        }
    }

    /// When the next send may start: `now` or later.
    pub fn ready_at(&mut self, now: Instant) -> Instant {
        while self.sent.front().is_some_and(|t| *t + MINUTE <= now) {
            self.sent.pop_front();
        }
        if self.sent.len() < self.per_minute {
            now
        } else {
            self.sent.front().map_or(now, |t| *t + MINUTE)
        }
    }

    /// A send starts at `now` (after [`RateLimit::ready_at`] said it may).
    pub fn record(&mut self, now: Instant) {
        if self.sent.len() >= self.per_minute {
            self.sent.pop_front();
        }
        self.sent.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_and_hands_the_item_back() {
        let now = Instant::now();
        let mut q = Queue::new(2, Duration::from_secs(60));
        assert!(q.push(now, 1).is_ok());
        assert!(q.push(now, 2).is_ok());
        assert_eq!(q.push(now, 3), Err((Full, 3)));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn expired_items_are_handed_over_in_order_and_the_first_live_one_comes_out() {
        let t0 = Instant::now();
        let mut q = Queue::new(10, Duration::from_secs(10));
        q.push(t0, "a").unwrap();
        q.push(t0 + Duration::from_secs(5), "b").unwrap();
        q.push(t0 + Duration::from_secs(8), "c").unwrap();
        let mut gone = Vec::new();
        let next = q.pop(t0 + Duration::from_secs(16), |x| gone.push(x));
        assert_eq!(gone, ["a", "b"]);
        assert_eq!(next.map(|(_, x)| x), Some("c"));
        assert!(q.is_empty());
    }

    #[test]
    fn take_expired_leaves_the_live_ones_and_their_deadline() {
        let t0 = Instant::now();
        let mut q = Queue::new(10, Duration::from_secs(10));
        q.push(t0, 1).unwrap();
        q.push(t0 + Duration::from_secs(3), 2).unwrap();
        let mut gone = Vec::new();
        q.take_expired(t0 + Duration::from_secs(11), |x| gone.push(x));
        assert_eq!(gone, [1]);
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_secs(13)));
    }

    #[test]
    fn an_item_put_back_keeps_its_deadline_and_comes_out_first() {
        let t0 = Instant::now();
        let mut q = Queue::new(1, Duration::from_secs(10));
        q.push(t0, "first").unwrap();
        let (deadline, item) = q.pop(t0, |_| panic!("nothing expired")).unwrap();
        q.push(t0 + Duration::from_secs(1), "second").unwrap();
        q.push_front(deadline, item);
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(q.pop(t0, |_| {}).map(|(_, x)| x), Some("first"));
    }

    #[test]
    fn the_rate_limit_spaces_sends_over_a_sliding_minute() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(2);
        assert_eq!(r.ready_at(t0), t0);
        r.record(t0);
        r.record(t0 + Duration::from_secs(10));
        let at = t0 + Duration::from_secs(20);
        assert_eq!(
            r.ready_at(at),
            t0 + MINUTE,
            "the third waits for the first to age out"
        );
        assert_eq!(r.ready_at(t0 + MINUTE), t0 + MINUTE);
        r.record(t0 + MINUTE);
        assert_eq!(
            r.ready_at(t0 + MINUTE),
            t0 + Duration::from_secs(70),
            "then for the second"
        );
    }
}
