//! The writer thread: gathers the router's batches and commits them in one
//! transaction at least every `flush_ms` (sooner when a reply waits for the
//! commit or many changes are waiting), then writes the replies that waited.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mqtt_proto::codec::encode;
use tracing::{debug, error, info};

use super::config::PersistenceConfig;
use super::db::Db;
use super::journal::{Batch, Change};
use super::PersistError;

/// Router batches the channel holds before the router waits for the writer.
const CHANNEL_BATCHES: usize = 64;
/// Changes that make the writer commit without waiting for `flush_ms`.
const COMMIT_AT_CHANGES: usize = 20_000;
/// Changes held past which the writer stops taking more while commits fail, so
/// that the router waits instead of memory growing.
const HOLD_AT_MOST: usize = 4 * COMMIT_AT_CHANGES;
/// After a failed commit, the same error is logged again at most this often.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);
/// Commits tried at shutdown before what is held is given up (and logged).
const FINAL_TRIES: usize = 3;

pub(super) fn spawn(
    db: Db,
    config: &PersistenceConfig,
    committed: Arc<AtomicU64>,
) -> Result<(SyncSender<Batch>, JoinHandle<()>), PersistError> {
    let (tx, rx) = mpsc::sync_channel(CHANNEL_BATCHES);
    let path = db.path().to_path_buf();
    let writer = Writer {
        db,
        flush: Duration::from_millis(config.flush_ms.max(1)),
        committed,
        held: Vec::new(),
        held_changes: 0,
        replies_waiting: false,
        oldest: None,
        last_error_log: None,
    };
    let handle = std::thread::Builder::new()
        .name("broker-persist".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| PersistError::Open {
            path,
            cause: format!("cannot start the writer thread: {e}"),
        })?;
    Ok((tx, handle))
}

struct Writer {
    db: Db,
    flush: Duration,
    committed: Arc<AtomicU64>,
    /// Batches received and not committed yet, in order.
    held: Vec<Batch>,
    held_changes: usize,
    replies_waiting: bool,
    /// When the oldest held batch arrived.
    oldest: Option<Instant>,
    last_error_log: Option<Instant>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Batch>) {
        loop {
            if self.held_changes >= HOLD_AT_MOST {
                // Commits fail: wait and try again without taking more.
                std::thread::sleep(self.flush);
                self.commit();
                continue;
            }
            let wait = match self.oldest {
                Some(t) => self.flush.saturating_sub(t.elapsed()),
                None => Duration::from_secs(3600),
            };
            match rx.recv_timeout(wait) {
                Ok(batch) => {
                    self.hold(batch);
                    // Group commit: take whatever else is already waiting.
                    while self.held_changes < COMMIT_AT_CHANGES {
                        match rx.try_recv() {
                            Ok(batch) => self.hold(batch),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let due = self.oldest.is_some_and(|t| t.elapsed() >= self.flush);
            if self.replies_waiting || due || self.held_changes >= COMMIT_AT_CHANGES {
                self.commit();
            }
        }
        // The router is gone (shutdown): commit the rest and fold the WAL in.
        for _ in 0..FINAL_TRIES {
            self.commit();
            if self.held.is_empty() {
                break;
            }
            std::thread::sleep(self.flush);
        }
        if !self.held.is_empty() {
            error!(
                file = %self.db.path().display(),
                "{} change(s) could not be stored before the broker stopped",
                self.held_changes
            );
        } else {
            match self.db.checkpoint() {
                Ok(()) => info!(file = %self.db.path().display(), "persistence file closed"),
                Err(e) => error!(file = %self.db.path().display(), "checkpoint failed: {e}"),
            }
        }
    }

    fn hold(&mut self, batch: Batch) {
        self.held_changes += batch.changes.len();
        self.replies_waiting |= batch
            .changes
            .iter()
            .any(|c| matches!(c, Change::Reply { .. } | Change::LocalDone { .. }));
        self.oldest.get_or_insert_with(Instant::now);
        self.held.push(batch);
    }

    /// One transaction for every held batch; on success the replies are written.
    /// On failure everything stays held and is tried again after `flush_ms`, and
    /// nobody gets a reply for it: the router waits once the channel is full.
    fn commit(&mut self) {
        let Some(last) = self.held.last().map(|b| b.id) else {
            return;
        };
        let changes = self.held.iter().flat_map(|b| b.changes.iter());
        match self.db.apply(changes) {
            Ok(n) => {
                debug!(changes = n, batch = last, "persistence: committed");
                for batch in self.held.drain(..) {
                    for change in batch.changes {
                        match change {
                            Change::Reply { outbox, packet } => {
                                outbox.push_with(|buf| encode(&packet, buf));
                                outbox.wake();
                            }
                            Change::LocalDone { done } => {
                                let _ = done.send(());
                            }
                            _ => {}
                        }
                    }
                }
                self.committed.store(last, Ordering::Release);
                self.held_changes = 0;
                self.replies_waiting = false;
                self.oldest = None;
                self.last_error_log = None;
            }
            Err(e) => {
                if self
                    .last_error_log
                    .is_none_or(|t| t.elapsed() >= ERROR_LOG_EVERY)
                {
                    error!(
                        file = %self.db.path().display(),
                        "cannot commit {} change(s), will retry: {e}",
                        self.held_changes
                    );
                    self.last_error_log = Some(Instant::now());
                }
                self.oldest = Some(Instant::now());
            }
        }
    }
}
