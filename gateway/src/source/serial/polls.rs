//! The `poll:` queries of a serial source, shared by the port's writer (which
//! writes each query when due and waits for its answer or timeout) and its reader
//! (which marks the answer). The state is the pure [`Poller`]; this adds the lock,
//! the wake-up, the counters on the status and the log.

use std::sync::{Arc, Mutex, MutexGuard};

use log_limit::LogLimit;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::frame::Meta;
use crate::source::poll::{Poller, Query, Step, TimedOut};
use crate::source::SourceStatus;

/// What the writer may do once no query waits for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Turn {
    /// Write query `n` now.
    Send(usize),
    /// Write commands until then, when a query is due.
    Until(Instant),
    /// Write commands (no queries).
    Always,
}

#[derive(Debug)]
pub(super) struct Polls {
    poller: Mutex<Poller>,
    /// The reader took a frame as the answer.
    answered: Notify,
    status: Arc<SourceStatus>,
    /// One per query: a dead instrument's timeouts are logged once a minute.
    timeouts_logged: Vec<LogLimit>,
}

impl Polls {
    /// The queries' schedules start now.
    pub(super) fn new(queries: Vec<Query>, status: Arc<SourceStatus>) -> Polls {
        let timeouts_logged = queries
            .iter()
            .map(|_| LogLimit::new(log_limit::MINUTE))
            .collect();
        let polls = Polls {
            poller: Mutex::new(Poller::new(queries, Instant::now())),
            answered: Notify::new(),
            status,
            timeouts_logged,
        };
        polls.publish();
        polls
    }

    fn lock(&self) -> MutexGuard<'_, Poller> {
        self.poller.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self) {
        let counts = self.lock().counts();
        if !counts.is_empty() {
            self.status.set_polls(counts);
        }
    }

    /// Waits while a query waits for its answer (counting and logging a
    /// timeout), then says what may be written.
    pub(super) async fn turn(&self) -> Turn {
        loop {
            let step = self.lock().step(Instant::now());
            match step {
                Step::Answer(deadline) => tokio::select! {
                    () = self.answered.notified() => {}
                    () = tokio::time::sleep_until(deadline) => {}
                },
                Step::TimedOut(timed_out) => self.timed_out(timed_out),
                Step::Send(n) => return Turn::Send(n),
                Step::Wait(at) => return Turn::Until(at),
                Step::Idle => return Turn::Always,
            }
        }
    }

    /// Writes query `n` as it is. It waits for its answer from before the
    /// write: a quick instrument may answer before the write returns.
    pub(super) async fn send<W: AsyncWrite + Unpin>(
        &self,
        n: usize,
        port: &mut W,
        fd: std::os::fd::RawFd,
    ) -> Result<(), String> {
        let query = {
            let mut poller = self.lock();
            poller.written(n, Instant::now());
            poller.query(n).clone()
        };
        self.publish();
        debug!(source = %self.status.id, query = %query.name, "query written");
        port.write_all(&query.bytes)
            .await
            .and(port.flush().await)
            .map_err(|e| format!("write failed: {e}"))?;
        super::drain(fd)
            .await
            .map_err(|e| format!("write failed: {e}"))
    }

    /// Called with the first whole frame of a read: when a query waits for its
    /// answer and its time is not over, this frame is it.
    pub(super) fn answer(&self, meta: &mut Meta) {
        let Some(answer) = self.lock().frame(Instant::now()) else {
            return;
        };
        meta.extra
            .insert("query".to_string(), answer.name.to_string());
        meta.extra.insert(
            "latency_ms".to_string(),
            answer.latency.as_millis().to_string(),
        );
        self.answered.notify_one();
        self.publish();
    }

    /// The port went away: a query waiting for its answer will not get it.
    pub(super) fn abandon(&self) {
        self.lock().abandon();
    }

    fn timed_out(&self, t: TimedOut) {
        SourceStatus::add(&self.status.poll_timeouts, 1);
        self.publish();
        if let Some(skipped) = self.timeouts_logged[t.n].check() {
            warn!(
                source = %self.status.id,
                query = %t.name,
                "no answer to query {} within {} ms{}",
                t.name,
                t.timeout.as_millis(),
                log_limit::suppressed(skipped)
            );
        }
    }
}
