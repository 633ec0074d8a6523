//! When to send PINGREQ and when to give up on a silent server. Pure: the
//! connection tells it what happened and when, and asks what is due.

use std::time::Duration;

use tokio::time::Instant;

/// What the keep-alive needs from the connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing until this instant (`None`: keep-alive is off).
    Wait(Option<Instant>),
    /// Queue a PINGREQ, then call `pinged`.
    Ping,
    /// A PINGREQ went unanswered and nothing else arrived for a whole period.
    TimedOut,
}

/// Keep-alive bookkeeping for one connection.
#[derive(Debug)]
pub(crate) struct KeepAlive {
    period: Option<Duration>,
    last_read: Instant,
    last_write: Instant,
    /// When the unanswered PINGREQ was queued.
    ping_at: Option<Instant>,
}

impl KeepAlive {
    /// `period` zero turns keep-alive off.
    pub(crate) fn new(period: Duration, now: Instant) -> KeepAlive {
        KeepAlive {
            period: (!period.is_zero()).then_some(period),
            last_read: now,
            last_write: now,
            ping_at: None,
        }
    }

    /// Bytes arrived from the server.
    pub(crate) fn read(&mut self, now: Instant) {
        self.last_read = now;
    }

    /// Bytes went out to the server.
    pub(crate) fn wrote(&mut self, now: Instant) {
        self.last_write = now;
    }

    /// PINGRESP arrived.
    pub(crate) fn pong(&mut self, now: Instant) {
        self.ping_at = None;
        self.last_read = now;
    }

    /// A PINGREQ was queued.
    pub(crate) fn pinged(&mut self, now: Instant) {
        self.ping_at = Some(now);
    }

    /// A ping is due once either direction has been quiet for a period; a ping
    /// fails when nothing at all has come back a period after it (or after the
    /// last bytes read since).
    pub(crate) fn check(&self, now: Instant) -> Due {
        let Some(period) = self.period else {
            return Due::Wait(None);
        };
        match self.ping_at {
            Some(at) => {
                let deadline = at.max(self.last_read) + period;
                if now >= deadline {
                    Due::TimedOut
                } else {
                    Due::Wait(Some(deadline))
                }
            }
            None => {
                let due = self.last_read.min(self.last_write) + period;
                if now >= due {
                    Due::Ping
                } else {
                    Due::Wait(Some(due))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_secs(10);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_ping_is_due_a_period_after_the_last_write_even_while_acks_arrive() {
        let t0 = Instant::now();
        let mut k = KeepAlive::new(P, t0);
        k.read(t0 + secs(9));
        assert_eq!(k.check(t0 + secs(9)), Due::Wait(Some(t0 + P)));
        assert_eq!(k.check(t0 + P), Due::Ping);
    }

    #[test]
    fn a_ping_is_due_a_period_after_the_last_read_even_while_writes_go_out() {
        let t0 = Instant::now();
        let mut k = KeepAlive::new(P, t0);
        k.wrote(t0 + secs(5));
        assert_eq!(k.check(t0 + secs(9)), Due::Wait(Some(t0 + P)));
        assert_eq!(k.check(t0 + P), Due::Ping);
    }

    #[test]
    fn an_unanswered_ping_times_out_one_period_after_it_was_sent() {
        let t0 = Instant::now();
        let mut k = KeepAlive::new(P, t0);
        k.pinged(t0 + P);
        assert_eq!(k.check(t0 + secs(19)), Due::Wait(Some(t0 + secs(20))));
        assert_eq!(k.check(t0 + secs(20)), Due::TimedOut);
    }

    #[test]
    fn bytes_read_after_a_ping_push_its_deadline_back() {
        let t0 = Instant::now();
        let mut k = KeepAlive::new(P, t0);
        k.pinged(t0 + P);
        k.read(t0 + secs(15));
        assert_eq!(k.check(t0 + secs(20)), Due::Wait(Some(t0 + secs(25))));
        assert_eq!(k.check(t0 + secs(25)), Due::TimedOut);
    }

    #[test]
    fn a_pingresp_ends_the_wait_and_the_next_ping_follows_a_period_later() {
        let t0 = Instant::now();
        let mut k = KeepAlive::new(P, t0);
        k.pinged(t0 + P);
        k.wrote(t0 + P);
        k.pong(t0 + secs(11));
        assert_eq!(k.check(t0 + secs(19)), Due::Wait(Some(t0 + secs(20))));
        assert_eq!(k.check(t0 + secs(20)), Due::Ping);
    }

    #[test]
    fn a_zero_period_turns_keep_alive_off() {
        let t0 = Instant::now();
        let k = KeepAlive::new(Duration::ZERO, t0);
        assert_eq!(k.check(t0 + secs(100_000)), Due::Wait(None));
    }
}
