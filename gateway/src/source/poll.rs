//! Request/response polling of a serial instrument, as plain state: which query
//! is due, which one waits for its answer, and whether a frame answers it. No I/O:
//! the serial source writes the queries and reports the frames.
//!
//! One query waits for its answer at a time. Each query keeps its own grid of
//! times ([`Schedule`]): a time that passes while another query waits, or while
//! the port is closed, is skipped and counted, never queued; a query that starts
//! more than [`GRACE`] after its time is counted late.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::status::PollCounts;
use crate::modbus::{Due, Schedule};

/// How late a query may start and still be on time.
pub const GRACE: Duration = Duration::from_millis(10);

/// One query as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub name: Arc<str>,
    /// Written on the port as they are.
    pub bytes: Bytes,
    pub every: Duration,
    /// How long the answer may take.
    pub timeout: Duration,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Write query `n` now.
    Send(usize),
    /// A query waits for its answer until this instant; nothing else goes out.
    Answer(Instant),
    /// The port is free until this instant (commands may go out).
    Wait(Instant),
    /// No answer came in time; the next step may send.
    TimedOut(TimedOut),
    /// No queries at all.
    Idle,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// Which query, in the configured order.
    pub n: usize,
    pub name: Arc<str>,
    pub timeout: Duration,
}

/// A frame that answered a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub name: Arc<str>,
    /// From the write to the frame.
    pub latency: Duration,
}

#[derive(Debug)]
struct Slot {
    query: Query,
    schedule: Schedule,
    ok: u64,
    timeouts: u64,
    last_latency: Option<Duration>,
}

/// The query written last, until its answer or its timeout.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    slot: usize,
    written: Instant,
    deadline: Instant,
}

/// The queries of one serial source and the one waiting for its answer.
#[derive(Debug)]
pub struct Poller {
    slots: Vec<Slot>,
    waiting: Option<Waiting>,
}

impl Poller {
    /// Every query is first due at `start`, then every `every` after it.
    pub fn new(queries: Vec<Query>, start: Instant) -> Poller {
        let slots = queries
            .into_iter()
            .map(|query| Slot {
                schedule: Schedule::new(start, query.every, Duration::ZERO, GRACE),
                query,
                ok: 0,
                timeouts: 0,
                last_latency: None,
            })
            .collect();
        Poller {
            slots,
            waiting: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn query(&self, n: usize) -> &Query {
        &self.slots[n].query
    }

    /// What to do at `now`. A `Send` takes the query's grid time (skipping the
    /// ones that passed), so call [`Poller::written`] once it is on the port.
    pub fn step(&mut self, now: Instant) -> Step {
        if let Some(w) = self.waiting {
            if now < w.deadline {
                return Step::Answer(w.deadline);
            }
            self.waiting = None;
            let slot = &mut self.slots[w.slot];
            slot.timeouts += 1;
            return Step::TimedOut(TimedOut {
                n: w.slot,
                name: slot.query.name.clone(),
                timeout: slot.query.timeout,
            });
        }
        // The query whose time came first; on a tie, the first configured.
        let Some((n, at)) = self
            .slots
            .iter()
            .map(|s| s.schedule.next_at())
            .enumerate()
            .min_by_key(|&(n, at)| (at, n))
        else {
            return Step::Idle;
        };
        if now < at {
            return Step::Wait(at);
        }
        match self.slots[n].schedule.due(now) {
            Due::Poll { .. } => Step::Send(n),
            Due::Wait(at) => Step::Wait(at),
        }
    }

    /// Query `n` is on the port since `now`: its answer may come until its timeout.
    pub fn written(&mut self, n: usize, now: Instant) {
        self.waiting = Some(Waiting {
            slot: n,
            written: now,
            deadline: now + self.slots[n].query.timeout,
        });
    }

    /// A whole frame came at `now`: the answer of the waiting query, if one
    /// waits and its time is not over.
    pub fn frame(&mut self, now: Instant) -> Option<Answer> {
        let w = self.waiting.filter(|w| now <= w.deadline)?;
        self.waiting = None;
        let slot = &mut self.slots[w.slot];
        let latency = now.duration_since(w.written);
        slot.ok += 1;
        slot.last_latency = Some(latency);
        Some(Answer {
            name: slot.query.name.clone(),
            latency,
        })
    }

    /// The port went away: the waiting query will get no answer (not counted).
    pub fn abandon(&mut self) {
        self.waiting = None;
    }

    /// Whether a query waits for its answer.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// Each query's counters, in the configured order.
    pub fn counts(&self) -> Vec<PollCounts> {
        self.slots
            .iter()
            .map(|s| PollCounts {
                query: s.query.name.to_string(),
                ok: s.ok,
                timeouts: s.timeouts,
                late: s.schedule.late,
                skipped: s.schedule.skipped,
                last_latency_ms: s.last_latency.map(|l| l.as_millis() as u64),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn query(name: &str, every_ms: u32, timeout_ms: u32) -> Query {
        Query {
            name: Arc::from(name),
            bytes: Bytes::from_static(b"R\r"),
            every: every_ms * MS,
            timeout: timeout_ms * MS,
        }
    }

    fn counts(p: &Poller, n: usize) -> (u64, u64, u64, u64) {
        let c = &p.counts()[n];
        (c.ok, c.timeouts, c.late, c.skipped)
    }

    /// Waits on the paused clock until `at`, as the source's timer would.
    async fn sleep_until(at: Instant) -> Instant {
        tokio::time::sleep_until(at).await;
        Instant::now()
    }

    #[tokio::test(start_paused = true)]
    async fn queries_go_out_on_a_grid_that_does_not_drift_with_slow_answers() {
        let t0 = Instant::now();
        let mut p = Poller::new(vec![query("reading", 1000, 300)], t0);
        let mut sent = Vec::new();
        for _ in 0..4 {
            let now = match p.step(Instant::now()) {
                Step::Send(0) => Instant::now(),
                Step::Wait(at) => {
                    let now = sleep_until(at).await;
                    assert_eq!(p.step(now), Step::Send(0));
                    now
                }
                other => panic!("{other:?}"),
            };
            sent.push(now - t0);
            p.written(0, now);
            // The instrument takes 250 ms to answer.
            let now = sleep_until(now + 250 * MS).await;
            let answer = p.frame(now).expect("the answer");
            assert_eq!(answer.latency, 250 * MS);
            assert_eq!(&*answer.name, "reading");
        }
        assert_eq!(sent, [Duration::ZERO, 1000 * MS, 2000 * MS, 3000 * MS]);
        assert_eq!(counts(&p, 0), (4, 0, 0, 0));
        assert_eq!(p.counts()[0].last_latency_ms, Some(250));
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_first_frame_within_the_timeout_answers() {
        let t0 = Instant::now();
        let mut p = Poller::new(vec![query("reading", 1000, 100)], t0);
        assert_eq!(p.frame(t0), None, "nothing asked yet");
        assert_eq!(p.step(t0), Step::Send(0));
        p.written(0, t0);
        assert_eq!(p.step(t0 + 40 * MS), Step::Answer(t0 + 100 * MS));
        assert!(p.frame(t0 + 40 * MS).is_some());
        assert_eq!(p.frame(t0 + 41 * MS), None, "a second frame is no answer");
        // Next time, the answer comes too late: a timeout, and the late frame
        // is an ordinary one.
        let now = sleep_until(t0 + 1000 * MS).await;
        assert_eq!(p.step(now), Step::Send(0));
        p.written(0, now);
        assert_eq!(p.frame(now + 101 * MS), None);
        assert_eq!(
            p.step(now + 101 * MS),
            Step::TimedOut(TimedOut {
                n: 0,
                name: Arc::from("reading"),
                timeout: 100 * MS
            })
        );
        assert_eq!(p.step(now + 101 * MS), Step::Wait(t0 + 2000 * MS));
        assert_eq!(counts(&p, 0), (1, 1, 0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_query_due_while_another_waits_goes_out_after_it_counted_late() {
        let t0 = Instant::now();
        let mut p = Poller::new(vec![query("a", 1000, 500), query("b", 1000, 500)], t0);
        assert_eq!(p.step(t0), Step::Send(0), "on a tie the first configured");
        p.written(0, t0);
        assert_eq!(p.step(t0), Step::Answer(t0 + 500 * MS));
        let now = sleep_until(t0 + 200 * MS).await;
        p.frame(now).expect("a's answer");
        assert_eq!(p.step(now), Step::Send(1));
        assert_eq!(counts(&p, 1), (0, 0, 1, 0), "b started 200 ms late");
        assert_eq!(counts(&p, 0), (1, 0, 0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn times_that_pass_while_the_port_is_closed_are_skipped_not_queued() {
        let t0 = Instant::now();
        let mut p = Poller::new(vec![query("reading", 100, 50)], t0);
        assert_eq!(p.step(t0), Step::Send(0));
        p.written(0, t0);
        // The port goes away before the answer, and comes back at 1.03 s.
        p.abandon();
        assert!(!p.is_waiting());
        let now = sleep_until(t0 + 1030 * MS).await;
        assert_eq!(p.step(now), Step::Send(0), "the latest time, once");
        p.written(0, now);
        p.frame(now + MS).expect("answered");
        assert_eq!(p.step(now + MS), Step::Wait(t0 + 1100 * MS));
        // 100 … 900 ms skipped; 1000 ms sent 30 ms late.
        assert_eq!(counts(&p, 0), (1, 0, 1, 9));
    }

    #[test]
    fn without_queries_the_poller_is_idle() {
        let mut p = Poller::new(Vec::new(), Instant::now());
        assert!(p.is_empty());
        assert_eq!(p.step(Instant::now()), Step::Idle);
        assert!(p.counts().is_empty());
    }
}
