//! The durable store between the mappings and the outputs: an ordered log of
//! messages in SQLite (WAL), written by its own thread in batched transactions.
//!
//! - `append` resolves once the messages are committed (QoS ≥ 1) or placed in the
//!   in-memory tail (QoS 0 while every output is up): only then does the pipeline
//!   count them as taken.
//! - Each output reads in order through its own `OutputQueue` and marks a message
//!   `done` on PUBACK / PUBCOMP (or once the embedded broker took it). A row is
//!   deleted when every output is done with it. A QoS 2 message whose PUBREC came
//!   back is marked `released` (committed before the PUBREL goes out), so that after
//!   a restart it resumes with PUBREL, never a second PUBLISH.
//! - Bounded by messages and bytes; when full: drop the oldest, refuse the newest,
//!   or make `append` wait. An optional age limit. Every drop is counted.
//!
//! Recent messages are also kept in memory (bounded), so an output that keeps up
//! reads from memory; one that falls behind, or starts after a restart, reads the file.

mod db;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{Durability, StoreConfig};
use crate::message::Message;

/// Commands waiting for the store's thread.
const COMMAND_QUEUE: usize = 256;

/// Why the store cannot go on. Each names the file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(
        "message store {path}: the file is damaged ({cause}). Nothing was changed. To start with an \
         empty store, stop mqgate and move the file aside (`mv {path} {path}.damaged`, and its \
         `-wal` and `-shm` files if present); the messages in it are then not sent"
    )]
    Corrupt { path: PathBuf, cause: String },
    #[error("message store {path}: cannot open: {cause}")]
    Open { path: PathBuf, cause: String },
    #[error("message store {path}: the disk is full ({cause})")]
    DiskFull { path: PathBuf, cause: String },
    #[error("message store {path}: {cause}")]
    Sqlite { path: PathBuf, cause: String },
    #[error("the message store has stopped")]
    Closed,
}

/// What the status page shows about the store.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Messages in the file.
    pub depth: AtomicU64,
    /// Bytes of their topics and payloads.
    pub bytes: AtomicU64,
    /// Creation time of the oldest message in the file (Unix ms), 0 when empty.
    pub oldest_ms: AtomicI64,
    /// Messages taken from the mappings.
    pub appended: AtomicU64,
    /// Evicted to make room (`when_full: drop_oldest`).
    pub evicted_oldest: AtomicU64,
    /// Refused because the store was full (`when_full: drop_newest`).
    pub refused_full: AtomicU64,
    /// Dropped for being older than `max_age`.
    pub expired: AtomicU64,
    /// QoS 0 messages an output never got (it was down or too far behind).
    pub qos0_dropped: AtomicU64,
    /// Transactions committed.
    pub commits: AtomicU64,
    /// `append` is waiting for room (`when_full: block`).
    pub blocked: AtomicBool,
    /// Free bytes on the store's file system, as last looked at.
    pub disk_free: AtomicU64,
    /// Less than `min_free_bytes` is free: the store counts as full.
    pub disk_low: AtomicBool,
    pub last_error: Mutex<Option<String>>,
}

impl StoreStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Every message dropped by a limit, of any kind.
    pub fn dropped(&self) -> u64 {
        Self::get(&self.evicted_oldest)
            + Self::get(&self.refused_full)
            + Self::get(&self.expired)
            + Self::get(&self.qos0_dropped)
    }
}

/// A message as an output reads it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Position in the log; also gives the MQTT packet id (see `packet_id`).
    pub id: u64,
    pub message: Arc<Message>,
    /// The output's PUBREC came back before: send PUBREL, not the PUBLISH.
    pub released: bool,
    /// Kept by the store (in its file or its write-behind journal): the output
    /// must call `done` when it is through with it. QoS 0 messages kept nowhere
    /// need no `done`.
    pub persisted: bool,
}

/// The MQTT packet id of the message at `id`: the same across reconnects and restarts,
/// so that a resent QoS 2 PUBLISH is recognised by the broker. Outputs must keep the
/// ids in flight within 65,534 of each other. 65,535 is never used: see
/// `CONTROL_PACKET_ID`.
pub fn packet_id(id: u64) -> u16 {
    ((id.saturating_sub(1)) % 65_534) as u16 + 1
}

/// The packet id an output uses for its own messages (the retained `online` /
/// `offline` status), outside the range of `packet_id`.
pub const CONTROL_PACKET_ID: u16 = 65_535;

/// How an `append` went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    pub accepted: usize,
    /// Refused because the store is full (`drop_newest`).
    pub refused: usize,
}

pub(crate) enum Command {
    Append {
        messages: Vec<Arc<Message>>,
        durability: Durability,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
    },
    Fetch {
        output: usize,
        after: u64,
        max: usize,
        reply: oneshot::Sender<Result<Fetched, StoreError>>,
    },
    Done {
        output: usize,
        ids: Vec<u64>,
    },
    /// `ids` empty and `on` false: every message of the output (the broker lost
    /// the session; PUBLISHes go again).
    Released {
        output: usize,
        ids: Vec<u64>,
        on: bool,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Connected {
        output: usize,
        up: bool,
    },
    Tick,
    /// Keep named counters (a LoRaWAN device's frame counter) in the file, with
    /// what else this transaction commits; answered once committed.
    SetCounters {
        values: Vec<(String, u64)>,
        reply: oneshot::Sender<()>,
    },
    /// The counters whose names start with `prefix`.
    Counters {
        prefix: String,
        reply: oneshot::Sender<Result<Vec<(String, u64)>, StoreError>>,
    },
    /// Commit what is pending and answer (tests, shutdown).
    Sync {
        reply: oneshot::Sender<()>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
    /// Tests: the file may grow by this many pages only (a full disk).
    #[cfg(test)]
    LimitPages(u64),
    /// Tests: the thread waits until this is sent to (or dropped), so that the
    /// commands sent meanwhile run in one batch.
    #[cfg(test)]
    Hold(std::sync::mpsc::Receiver<()>),
    /// Move every message of the journal to the file now, as if its window passed.
    WriteBehindNow {
        reply: oneshot::Sender<()>,
    },
    /// Stop the thread at once, as a killed process would: nothing more is written.
    Crash {
        reply: oneshot::Sender<()>,
    },
}

#[derive(Debug)]
pub(crate) struct Fetched {
    items: Vec<Stored>,
    /// Everything up to here has been looked at.
    upto: u64,
}

/// The store: clone it freely; the thread stops on `close` or when every clone is gone.
#[derive(Debug, Clone)]
pub struct Store {
    tx: mpsc::Sender<Command>,
    stats: Arc<StoreStats>,
    committed: watch::Receiver<u64>,
    input_done: Arc<watch::Sender<bool>>,
    names: Arc<[String]>,
    path: PathBuf,
    journal: Option<PathBuf>,
    /// The last id that was in the file when it was opened.
    opened_upto: u64,
}

impl Store {
    /// Open (or create) the store file for these outputs, in order. Fails with a
    /// message naming the file if it is damaged or cannot be opened.
    pub fn open(config: &StoreConfig, outputs: &[&str]) -> Result<Store, StoreError> {
        let names: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
        let stats = Arc::new(StoreStats::default());
        let (tx, committed, journal) = worker::start(config.clone(), &names, stats.clone())?;
        let (input_done, _) = watch::channel(false);
        let opened_upto = *committed.borrow();
        Ok(Store {
            opened_upto,
            tx,
            stats,
            committed,
            input_done: Arc::new(input_done),
            names: names.into(),
            path: config.file.clone(),
            journal,
        })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn stats(&self) -> &Arc<StoreStats> {
        &self.stats
    }

    /// Take messages, in order. Resolves once they are committed (or, for QoS 0 while
    /// every output is up, queued in memory), or once they were refused as the
    /// `when_full` policy says. With `when_full: block` it waits for room.
    ///
    /// Written to the file before it resolves (`on_receipt`): write-behind is for
    /// the sources, through `append_shared`.
    pub async fn append(&self, messages: Vec<Message>) -> Result<Appended, StoreError> {
        self.append_shared(
            messages.into_iter().map(Arc::new).collect(),
            Durability::OnReceipt,
        )
        .await
    }

    /// `append` for messages already shared (a caller that may have to try again
    /// after a failed commit keeps its batch and hands over cheap copies), with
    /// the durability of their source.
    pub async fn append_shared(
        &self,
        messages: Vec<Arc<Message>>,
        durability: Durability,
    ) -> Result<Appended, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Append {
                messages,
                durability,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// No more appends will come: outputs end once they have read everything.
    pub fn finish_input(&self) {
        self.input_done.send_replace(true);
    }

    /// The reading side for output `name` (as passed to `open`), starting at the
    /// oldest message it has not finished.
    pub fn output(&self, name: &str) -> Option<OutputQueue> {
        let index = self.names.iter().position(|n| n == name)?;
        Some(OutputQueue {
            index,
            tx: self.tx.clone(),
            committed: self.committed.clone(),
            input_done: self.input_done.subscribe(),
            cursor: 0,
            opened_upto: self.opened_upto,
            fetching: None,
        })
    }

    /// Keep `values` (name, number) in the file; resolves once committed (or the
    /// store closed). Names starting with `schema` are the store's own.
    pub async fn set_counters(&self, values: Vec<(String, u64)>) {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::SetCounters { values, reply })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// The counters kept with [`Store::set_counters`] whose names start with `prefix`.
    pub async fn counters(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Counters {
                prefix: prefix.to_string(),
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Commit what is pending now.
    pub async fn sync(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Sync { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The write-behind journal's file (`None`: write-behind is off).
    pub fn journal_path(&self) -> Option<&std::path::Path> {
        self.journal.as_deref()
    }

    /// Move every message waiting in the write-behind journal to the file now,
    /// as if every window had passed (tests).
    #[doc(hidden)]
    pub async fn write_behind_now(&self) {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::WriteBehindNow { reply })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// Stop the store's thread as a `kill -9` would stop the process: what is in
    /// memory is gone, what was written stays (tests).
    #[doc(hidden)]
    pub async fn crash(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Crash { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// `crash`, and the journal in memory is gone with the power (tests).
    #[doc(hidden)]
    pub async fn power_cut(&self) {
        self.crash().await;
        if let Some(journal) = &self.journal {
            sqlite_file::remove(journal);
        }
    }

    /// Commit, checkpoint and stop the thread. Later calls fail with `Closed`.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Close { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// One output's reading position in the store.
#[derive(Debug)]
pub struct OutputQueue {
    index: usize,
    tx: mpsc::Sender<Command>,
    committed: watch::Receiver<u64>,
    input_done: watch::Receiver<bool>,
    cursor: u64,
    opened_upto: u64,
    /// A fetch sent and not yet answered (kept here so that `next_batch` is cancel-safe).
    fetching: Option<oneshot::Receiver<Result<Fetched, StoreError>>>,
}

impl OutputQueue {
    /// The next messages after the cursor, in order, at most `max`; waits until there
    /// are some. `Ok(empty)` means the input is finished and everything was read.
    /// Cancel-safe: a batch fetched for a cancelled call is returned by the next one.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Stored>, StoreError> {
        loop {
            let committed = *self.committed.borrow_and_update();
            if self.fetching.is_some() || committed > self.cursor {
                if self.fetching.is_none() {
                    let (reply, rx) = oneshot::channel();
                    self.tx
                        .send(Command::Fetch {
                            output: self.index,
                            after: self.cursor,
                            max: max.max(1),
                            reply,
                        })
                        .await
                        .map_err(|_| StoreError::Closed)?;
                    self.fetching = Some(rx);
                }
                let rx = self.fetching.as_mut().expect("a fetch is out");
                let fetched = rx.await;
                self.fetching = None;
                let fetched = fetched.map_err(|_| StoreError::Closed)??;
                self.cursor = self.cursor.max(fetched.upto);
                if !fetched.items.is_empty() {
                    return Ok(fetched.items);
                }
                continue;
            }
            if *self.input_done.borrow_and_update() {
                return Ok(Vec::new());
            }
            tokio::select! {
                changed = self.committed.changed() => {
                    if changed.is_err() {
                        return Err(StoreError::Closed);
                    }
                }
                _ = self.input_done.changed() => {}
            }
        }
    }

    /// Read again from just after `after` (0: from the oldest message not finished),
    /// e.g. after a reconnect, from before the oldest message still in flight.
    pub fn rewind(&mut self, after: u64) {
        self.cursor = after;
        self.fetching = None;
    }

    /// Whether the message at `id` was in the file when this process opened it, so
    /// that an earlier run may have sent it already (a resend carries DUP).
    pub fn from_before(&self, id: u64) -> bool {
        id <= self.opened_upto
    }

    /// Everything up to here has been handed out.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// This output is through with these messages (acknowledged, or taken by the
    /// embedded broker). Committed with the next batch.
    pub async fn done(&self, ids: Vec<u64>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Command::Done {
                output: self.index,
                ids,
            })
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// The PUBRECs of `ids` came back: resolves once that is committed, after which
    /// the PUBRELs may go out.
    pub async fn released(&self, ids: Vec<u64>) -> Result<(), StoreError> {
        self.releaser().released(ids).await
    }

    /// A handle that marks messages released without borrowing the queue.
    pub fn releaser(&self) -> Releaser {
        Releaser {
            index: self.index,
            tx: self.tx.clone(),
        }
    }

    /// Whether the output can take messages now (decides where QoS 0 messages go).
    pub async fn set_connected(&self, up: bool) {
        let _ = self
            .tx
            .send(Command::Connected {
                output: self.index,
                up,
            })
            .await;
    }
}

/// Marks an output's QoS 2 messages released (see `OutputQueue::released`).
#[derive(Debug)]
pub struct Releaser {
    index: usize,
    tx: mpsc::Sender<Command>,
}

impl Releaser {
    pub async fn released(&self, ids: Vec<u64>) -> Result<(), StoreError> {
        self.mark(ids, true).await
    }

    /// The broker lost the session in which this output's QoS 2 messages were
    /// released: they all start over with a PUBLISH. Resolves once committed.
    pub async fn forget_releases(&self) -> Result<(), StoreError> {
        self.mark(Vec::new(), false).await
    }

    async fn mark(&self, ids: Vec<u64>, on: bool) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Released {
                output: self.index,
                ids,
                on,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

#[cfg(test)]
mod tests;
