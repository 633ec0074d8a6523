//! One source's command worker: takes commands as they arrive, encodes them with
//! the source's script, queues them, hands them to the transport one at a time in
//! arrival order, and publishes one result for each.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::durable::Durable;
use super::queue::{Full, Queue, RateLimit};
use super::result::{self, Outcome, ResultTopic, Status};
use super::stats::CommandStats;
use crate::config::Durability;
use crate::mapping::{command_dead_letter, Encoded, Encoder, MapError};
use crate::message::{Command, Message, Part};
use crate::pipeline::MessageBatch;
use crate::source::{CommandLink, TxOutcome, TxRequest};

/// A command as it arrived from a broker.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub command: Command,
    pub arrived: Instant,
    /// Told once the command is queued (or answered): only then is it
    /// acknowledged to the broker it came from.
    pub taken: Option<oneshot::Sender<()>>,
}

/// What a worker needs, built from the mapping's `commands:` section.
pub(crate) struct Worker {
    pub source: Arc<str>,
    pub gateway_id: String,
    pub encoder: Arc<Encoder>,
    pub result_topic: ResultTopic,
    pub max_queued: usize,
    pub expire_after: Duration,
    pub max_per_minute: Option<u32>,
    pub send_timeout: Duration,
    pub durability: Durability,
    pub link: CommandLink,
    pub results: mpsc::Sender<MessageBatch>,
    pub stats: Arc<CommandStats>,
    /// `durable: true`: the file the queue is kept in.
    pub durable: Option<Durable>,
}

/// A command encoded and waiting for its device.
struct Waiting {
    command: Command,
    arrived: Instant,
    parts: Vec<Part>,
    correlation: Option<Value>,
    /// Its row in the durable queue's file, removed with its result.
    row: Option<i64>,
}

/// The command the transport has now.
struct InFlight {
    waiting: Waiting,
    /// Its place in the queue, should the device turn out not to be there.
    deadline: Instant,
    started: Instant,
    reply: oneshot::Receiver<TxOutcome>,
    give_up: Instant,
}

impl Worker {
    /// Run until the brokers' subscriptions end or shutdown; what is still
    /// waiting then gets a `failed` result.
    pub(crate) async fn run(
        self,
        mut inbox: mpsc::Receiver<Incoming>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut queue: Queue<Waiting> = Queue::new(self.max_queued, self.expire_after);
        self.restore(&mut queue).await;
        let mut rate = self.max_per_minute.map(RateLimit::new);
        let mut ready_rx = self.link.ready.clone();
        let mut ready = *ready_rx.borrow_and_update();
        let mut inflight: Option<InFlight> = None;
        // The transport's task has ended: nothing more will go out, and what
        // waits expires.
        let mut transport_gone = false;
        loop {
            // Start the next command when the device can take it.
            let mut rate_wait = None;
            if inflight.is_none() && ready && !queue.is_empty() {
                let now = Instant::now();
                let allowed = match &mut rate {
                    Some(r) => r.ready_at(now.into_std()),
                    None => now.into_std(),
                };
                if allowed > now.into_std() {
                    rate_wait = Some(Instant::from_std(allowed));
                } else {
                    let mut expired = Vec::new();
                    let next = queue.pop(now.into_std(), |w| expired.push(w));
                    for w in expired {
                        self.expired(w).await;
                    }
                    if let Some((deadline, waiting)) = next {
                        if let Some(r) = &mut rate {
                            r.record(now.into_std());
                        }
                        inflight = self.start(waiting, Instant::from_std(deadline), now);
                    }
                }
            }
            self.stats
                .set_queued(queue.len() + usize::from(inflight.is_some()));
            let next_expiry = queue.next_deadline().map(Instant::from_std);
            let give_up = inflight.as_ref().map(|f| f.give_up);
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                outcome = reply_of(&mut inflight) => {
                    let f = inflight.take().expect("a reply comes only for a command in flight");
                    match outcome {
                        TxOutcome::NotReady(why) => {
                            debug!(source = %self.source, "device not ready ({why}); the command waits");
                            ready = *ready_rx.borrow_and_update();
                            queue.push_front(f.deadline.into_std(), f.waiting);
                        }
                        TxOutcome::Sent => {
                            self.finish(f.waiting, Status::Sent, None, f.started).await;
                        }
                        TxOutcome::Failed(why) => {
                            self.finish(f.waiting, Status::Failed, Some(why), f.started).await;
                        }
                        TxOutcome::Rejected(why) => {
                            self.finish(f.waiting, Status::Rejected, Some(why), f.started).await;
                        }
                    }
                }
                _ = sleep_until(give_up) => {
                    let f = inflight.take().expect("a time limit only for a command in flight");
                    let why = format!(
                        "source {}: the device did not confirm within {} ms",
                        self.source,
                        self.send_timeout.as_millis()
                    );
                    self.finish(f.waiting, Status::Failed, Some(why), f.started).await;
                }
                incoming = inbox.recv() => match incoming {
                    Some(incoming) => self.accept(incoming, &mut queue).await,
                    None => break,
                },
                changed = ready_rx.changed(), if !ready && !transport_gone => {
                    match changed {
                        Ok(()) => ready = *ready_rx.borrow_and_update(),
                        Err(_) => transport_gone = true,
                    }
                }
                _ = sleep_until(next_expiry) => {
                    let mut expired = Vec::new();
                    queue.take_expired(std::time::Instant::now(), |w| expired.push(w));
                    for w in expired {
                        self.expired(w).await;
                    }
                }
                _ = sleep_until(rate_wait) => {}
            }
        }
        if self.durable.is_some() {
            // Kept for the next start, the one in flight too: it may go twice.
            self.stats.set_queued(0);
            return;
        }
        let stopped = format!("source {}: mqgate stopped before it was sent", self.source);
        if let Some(f) = inflight.take() {
            self.finish(f.waiting, Status::Failed, Some(stopped.clone()), f.started)
                .await;
        }
        let left: Vec<Waiting> = queue.drain().collect();
        for w in left {
            self.finish(w, Status::Failed, Some(stopped.clone()), Instant::now())
                .await;
        }
        self.stats.set_queued(0);
    }

    /// A command arrives: encode it and queue it, or answer at once.
    async fn accept(&self, incoming: Incoming, queue: &mut Queue<Waiting>) {
        CommandStats::add(&self.stats.received, 1);
        let Incoming {
            command,
            arrived,
            taken,
        } = incoming;
        self.take(command, arrived, None, queue).await;
        if let Some(taken) = taken {
            let _ = taken.send(());
        }
    }

    /// The durable queue's commands from before this start, in order, with
    /// their arrival time (a command older than `expire_after` expires at once).
    async fn restore(&self, queue: &mut Queue<Waiting>) {
        let Some(durable) = self.durable.clone() else {
            return;
        };
        let source = self.source.to_string();
        let kept = tokio::task::spawn_blocking(move || durable.pending(&source)).await;
        let kept = match kept {
            Ok(Ok(kept)) => kept,
            Ok(Err(e)) => return warn!(source = %self.source, "kept commands not read: {e}"),
            Err(e) => return warn!(source = %self.source, "kept commands not read: {e}"),
        };
        if !kept.is_empty() {
            info!(source = %self.source, commands = kept.len(), "taking back the commands kept before");
        }
        let now_ms = crate::mapping::unix_millis(SystemTime::now());
        for k in kept {
            let age = Duration::from_millis(now_ms.saturating_sub(k.arrived_ms).max(0) as u64);
            let arrived = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            CommandStats::add(&self.stats.received, 1);
            self.take(k.command, arrived, Some(k.row), queue).await;
        }
    }

    async fn take(
        &self,
        command: Command,
        arrived: Instant,
        row: Option<i64>,
        queue: &mut Queue<Waiting>,
    ) {
        let correlation = result::correlation(&command.payload);
        let parts = match self.encoder.encode(&command) {
            Encoded::Send(parts) => parts,
            Encoded::Dropped => {
                let w = Waiting {
                    command,
                    arrived,
                    parts: Vec::new(),
                    correlation,
                    row,
                };
                return self.finish(w, Status::Dropped, None, arrived).await;
            }
            Encoded::Failed(e) => {
                warn!(source = %self.source, topic = %command.topic, "command not sent: {e}");
                self.dead_letter(&command, &e).await;
                let w = Waiting {
                    command,
                    arrived,
                    parts: Vec::new(),
                    correlation,
                    row,
                };
                return self
                    .finish(w, Status::Failed, Some(e.to_string()), arrived)
                    .await;
            }
        };
        let mut waiting = Waiting {
            command,
            arrived,
            parts,
            correlation,
            row,
        };
        // Kept in the file before it counts as taken, if there is room for it.
        if let (Some(durable), None) = (self.durable.clone(), row) {
            if queue.len() < self.max_queued {
                let c = waiting.command.clone();
                let arrived_ms = crate::mapping::unix_millis(SystemTime::now())
                    - arrived.elapsed().as_millis() as i64;
                let kept = tokio::task::spawn_blocking(move || durable.insert(&c, arrived_ms))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                match kept {
                    Ok(row) => waiting.row = Some(row),
                    Err(e) => {
                        let why = format!("source {}: cannot keep the command: {e}", self.source);
                        return self
                            .finish(waiting, Status::Failed, Some(why), arrived)
                            .await;
                    }
                }
            }
        }
        if let Err((Full, w)) = queue.push(arrived.into_std(), waiting) {
            let why = format!(
                "source {}: {} commands are waiting already (max_queued)",
                self.source,
                queue.len()
            );
            self.finish(w, Status::Rejected, Some(why), arrived).await;
        }
    }

    /// Hand a command to the transport.
    fn start(&self, w: Waiting, deadline: Instant, now: Instant) -> Option<InFlight> {
        let (reply_tx, reply) = oneshot::channel();
        let request = TxRequest {
            parts: w.parts.clone(),
            reply: reply_tx,
        };
        // One request at a time and the channel holds one: there is room unless
        // the transport has stopped.
        if self.link.tx.try_send(request).is_err() {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(TxOutcome::Failed(format!(
                "source {}: its transport has stopped",
                self.source
            )));
            return Some(InFlight {
                waiting: w,
                deadline,
                started: now,
                reply: rx,
                give_up: now + self.send_timeout,
            });
        }
        Some(InFlight {
            waiting: w,
            deadline,
            started: now,
            reply,
            give_up: now + self.send_timeout,
        })
    }

    async fn expired(&self, w: Waiting) {
        let why = format!(
            "source {}: not sent within {} ms (expire_after)",
            self.source,
            self.expire_after.as_millis()
        );
        self.finish(w, Status::Expired, Some(why), Instant::now())
            .await;
    }

    /// Count the outcome and publish the command's result.
    async fn finish(&self, w: Waiting, status: Status, error: Option<String>, left_queue: Instant) {
        self.stats.count(status, &w.command.topic, error.as_deref());
        if let (Some(durable), Some(row)) = (self.durable.clone(), w.row) {
            let removed = tokio::task::spawn_blocking(move || durable.remove(row)).await;
            if let Ok(Err(e)) = removed {
                warn!(source = %self.source, "a command with its result stays in the file: {e}");
            }
        }
        let queued_ms = left_queue.saturating_duration_since(w.arrived).as_millis() as u64;
        let outcome = Outcome {
            status,
            error,
            queued_ms,
            sent_at: (status == Status::Sent).then(SystemTime::now),
        };
        let to = match self.result_topic.for_command(&w.command.topic) {
            Ok(to) => to,
            Err(why) => {
                warn!(source = %self.source, "no result for a command on {}: {why}", w.command.topic);
                return;
            }
        };
        let msg = result::message(
            to,
            &w.command.topic,
            &self.source,
            &outcome,
            w.correlation.as_ref(),
        );
        self.publish(msg).await;
    }

    /// A command whose script failed goes to the source's dead-letter topic.
    async fn dead_letter(&self, command: &Command, error: &MapError) {
        let msg = command_dead_letter(
            &self.gateway_id,
            &self.source,
            &command.topic,
            &command.payload,
            error,
        );
        self.publish(msg).await;
    }

    async fn publish(&self, msg: Message) {
        let batch = MessageBatch::new(self.durability, vec![msg]);
        if self.results.send(batch).await.is_err() {
            debug!(source = %self.source, "a command result is lost: the store has stopped");
        }
    }
}

async fn reply_of(inflight: &mut Option<InFlight>) -> TxOutcome {
    match inflight {
        Some(f) => (&mut f.reply).await.unwrap_or_else(|_| {
            TxOutcome::Failed("the transport stopped before it answered".into())
        }),
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
