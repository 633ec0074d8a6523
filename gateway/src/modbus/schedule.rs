//! When each poll is due, on a fixed grid that does not drift: poll `n` of a
//! period is due at `start + n × period` (plus the device's phase, so that devices
//! with the same period do not all ask at once), however late poll `n − 1` ran.
//! A poll that starts after its time is *late*; a poll whose time came while the
//! one before was still waiting (a slow or dead device, a busy bus) is *skipped*:
//! counted, never queued, so a stalled bus catches up at once instead of
//! working through a backlog.

use std::time::Duration;

use tokio::time::Instant;

/// One device's (or one period's) poll times.
#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    period: Duration,
    /// The index of the next poll on the grid.
    next: u64,
    /// How late a poll may start and still count as on time.
    grace: Duration,
    pub late: u64,
    pub skipped: u64,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Poll now; `late` says how far after its time.
    Poll { late: Duration },
    /// Nothing before this instant.
    Wait(Instant),
}

impl Schedule {
    /// Polls every `period` from `start + phase`; one that starts within `grace`
    /// of its time is on time.
    pub fn new(start: Instant, period: Duration, phase: Duration, grace: Duration) -> Schedule {
        Schedule {
            start: start + phase,
            period: period.max(Duration::from_millis(1)),
            next: 0,
            grace,
            late: 0,
            skipped: 0,
        }
    }

    fn at(&self, n: u64) -> Instant {
        self.start + self.period.saturating_mul(n.min(u32::MAX as u64) as u32)
    }

    /// The next poll's time.
    pub fn next_at(&self) -> Instant {
        self.at(self.next)
    }

    /// The first time on this grid at or after `t`: where a device that is only
    /// tried now and then is tried, so that it stays in its own slot.
    pub fn on_grid_from(&self, t: Instant) -> Instant {
        if t <= self.start {
            return self.start;
        }
        let n = (t - self.start).as_nanos().div_ceil(self.period.as_nanos()) as u64;
        self.at(n)
    }

    /// Go on from `now` without counting the grid times before it: the next
    /// poll is the first grid time after `now`.
    pub fn resume_from(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        self.next = (elapsed.as_nanos() / self.period.as_nanos()) as u64 + 1;
    }

    /// Asked at `now` (after the previous poll finished): poll now, or wait.
    /// Grid times that passed while the previous poll ran are skipped, and the
    /// most recent one is polled (late if past the grace).
    pub fn due(&mut self, now: Instant) -> Due {
        let at = self.next_at();
        if now < at {
            return Due::Wait(at);
        }
        // The latest grid time not after `now`.
        let elapsed = now.duration_since(self.start);
        let current = (elapsed.as_nanos() / self.period.as_nanos()) as u64;
        if current > self.next {
            self.skipped += current - self.next;
            self.next = current;
        }
        let late = now.duration_since(self.at(self.next));
        if late > self.grace {
            self.late += 1;
        }
        self.next += 1;
        Due::Poll { late }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn polls_stay_on_the_grid_however_long_each_takes() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, SEC, Duration::ZERO, Duration::from_millis(5));
        assert_eq!(
            s.due(t0),
            Due::Poll {
                late: Duration::ZERO
            }
        );
        // The poll took 300 ms: the next is still due at 1 s, not 1.3 s.
        assert_eq!(s.due(t0 + Duration::from_millis(300)), Due::Wait(t0 + SEC));
        assert_eq!(
            s.due(t0 + SEC + Duration::from_millis(2)),
            Due::Poll {
                late: Duration::from_millis(2)
            }
        );
        assert_eq!(s.next_at(), t0 + 2 * SEC);
        assert_eq!((s.late, s.skipped), (0, 0), "2 ms is within the grace");
    }

    #[test]
    fn a_poll_past_its_grace_is_late_and_times_missed_while_waiting_are_skipped() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, SEC, Duration::ZERO, Duration::from_millis(5));
        s.due(t0);
        // A dead device held the bus for 3.4 s: the polls due at 1, 2 and 3 s never
        // ran; the one of 3 s runs now, 400 ms late; the next is at 4 s.
        let now = t0 + Duration::from_millis(3400);
        assert_eq!(
            s.due(now),
            Due::Poll {
                late: Duration::from_millis(400)
            }
        );
        assert_eq!((s.late, s.skipped), (1, 2));
        assert_eq!(s.due(now), Due::Wait(t0 + 4 * SEC));
    }

    #[test]
    fn a_time_is_moved_to_the_next_grid_time() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, SEC, Duration::from_millis(250), Duration::ZERO);
        let ms = Duration::from_millis;
        assert_eq!(s.on_grid_from(t0), t0 + ms(250));
        assert_eq!(s.on_grid_from(t0 + ms(1250)), t0 + ms(1250));
        assert_eq!(s.on_grid_from(t0 + ms(1251)), t0 + ms(2250));
    }

    #[test]
    fn a_phase_spreads_devices_of_the_same_period() {
        let t0 = Instant::now();
        let mut a = Schedule::new(t0, SEC, Duration::ZERO, Duration::ZERO);
        let mut b = Schedule::new(t0, SEC, Duration::from_millis(250), Duration::ZERO);
        assert!(matches!(a.due(t0), Due::Poll { .. }));
        assert_eq!(b.due(t0), Due::Wait(t0 + Duration::from_millis(250)));
    }
}
