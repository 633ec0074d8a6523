//! The store's thread: takes every command waiting, runs them in one transaction
//! (group commit), then answers those that wait for the commit.
//!
//! `Worker` is defined here with what it keeps; its work is split by what it
//! deals with: `batch` (the command loop and its transaction), `tail` (recent
//! messages in memory, fetches and acknowledgements), `room` (appends, the
//! limits, eviction and blocking), `behind` (the write-behind journal and what
//! leaves it for the file) and `expiry` (`max_age` and the summary of what was
//! dropped).

mod batch;
mod behind;
mod expiry;
mod room;
mod space;
mod tail;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use super::db::{wal_pages, Db, Opened};
use super::{Appended, Command, StoreError, StoreStats, COMMAND_QUEUE};
use crate::config::{Durability, StoreConfig};
use crate::message::Message;

/// Where a message in memory is kept besides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// In the store file.
    File,
    /// In the write-behind journal (in memory), until every output acknowledged
    /// it or its window passed.
    Journal,
    /// Nowhere: QoS 0 while every output is up.
    Nowhere,
}

/// A recent message, in memory.
struct Entry {
    id: u64,
    message: Arc<Message>,
    kept: Kept,
    created_ms: i64,
    /// Outputs that still have to send it.
    pending: u64,
    /// Outputs whose PUBREC came back.
    released: u64,
    size: usize,
}

/// An append that is waiting for room (`when_full: block`).
struct Blocked {
    messages: VecDeque<Arc<Message>>,
    durability: Durability,
    so_far: Appended,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

struct Worker {
    db: Db,
    /// The write-behind journal; `None`: every message goes to the file at once.
    journal: Option<Db>,
    /// Ids in the journal, oldest first, with when they arrived.
    journal_ids: VecDeque<(u64, Instant)>,
    /// Written to the file since the last checkpoint.
    disk_dirty: bool,
    /// Acknowledgements whose writes were rolled back (a full disk): tried again
    /// before anything else, so that they always make progress.
    unsaved_done: Vec<(usize, u64)>,
    /// Acknowledgements of messages in the file written in this batch.
    file_done: Vec<(usize, u64)>,
    /// Acknowledgements of messages in the file not written yet: deleted together
    /// with the next write to the file, at the latest at the next second's tick.
    deferred_done: Vec<(usize, u64)>,
    /// Memory is full of messages only in the journal: they go to the file.
    overfull: bool,
    /// The last batch failed (its error is on the status page until one commits).
    failing: bool,
    /// Free space was last looked at.
    space_looked: Instant,
    /// Less than `min_free_bytes` is free: the store holds no more bytes than this.
    space_cap: Option<u64>,
    /// Short of room: see after the batch whether the file can shrink (free bytes).
    shrink_due: Option<u64>,
    /// Tests: stopped as a killed process; answered once the files are closed.
    crashed: Option<oneshot::Sender<()>>,
    last_housekeeping: Instant,
    config: StoreConfig,
    bits: Vec<u64>,
    all_bits: u64,
    connected: Vec<bool>,
    next_id: u64,
    /// The highest id outputs may read: everything up to it is committed.
    committed: u64,
    count: u64,
    bytes: u64,
    cache: VecDeque<Entry>,
    cache_bytes: usize,
    blocked: VecDeque<Blocked>,
    stats: Arc<StoreStats>,
    committed_tx: watch::Sender<u64>,
    last_checkpoint: Instant,
    /// Drop counters as last logged.
    logged_drops: [u64; 4],
}

/// A started store thread: its commands, the `committed` watch, the journal's path.
pub(super) type Started = (mpsc::Sender<Command>, watch::Receiver<u64>, Option<PathBuf>);

/// Open the file here (so that errors reach the caller) and start the thread.
pub(super) fn start(
    config: StoreConfig,
    names: &[String],
    stats: Arc<StoreStats>,
) -> Result<Started, StoreError> {
    let journal = behind::open_journal(&config);
    let journal_path = journal.as_ref().map(|j| j.path().to_path_buf());
    let Opened {
        db,
        bits,
        count,
        bytes,
        next_id,
        forgotten,
    } = Db::open(
        &config.file,
        config.synchronous,
        wal_pages(config.min_free_bytes),
        names,
        journal.as_ref(),
    )?;
    for name in forgotten {
        warn!(
            store = %config.file.display(),
            "output {name} is no longer configured: its unsent messages were dropped from the store"
        );
    }
    if count > 0 {
        info!(
            store = %config.file.display(),
            "{count} message(s) ({bytes} bytes) waiting in the store from before"
        );
    }
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (committed_tx, committed_rx) = watch::channel(next_id - 1);
    let worker = Worker {
        db,
        journal,
        journal_ids: VecDeque::new(),
        disk_dirty: false,
        unsaved_done: Vec::new(),
        file_done: Vec::new(),
        deferred_done: Vec::new(),
        overfull: false,
        crashed: None,
        failing: false,
        space_looked: Instant::now(),
        space_cap: None,
        shrink_due: None,
        last_housekeeping: Instant::now(),
        all_bits: bits.iter().fold(0, |a, b| a | b),
        connected: vec![false; bits.len()],
        bits,
        next_id,
        committed: next_id - 1,
        count,
        bytes,
        cache: VecDeque::new(),
        cache_bytes: 0,
        blocked: VecDeque::new(),
        stats,
        committed_tx,
        last_checkpoint: Instant::now(),
        logged_drops: [0; 4],
        config,
    };
    let mut worker = worker;
    worker.look_at_space(true);
    worker.publish_stats();
    if let Ok(Some(ms)) = worker.db.oldest_ms() {
        worker.stats.oldest_ms.store(ms, Ordering::Relaxed);
    }
    let path = worker.config.file.clone();
    let ticker = tx.downgrade();
    let period = worker.tick_period();
    std::thread::Builder::new()
        .name("store-tick".into())
        .spawn(move || loop {
            std::thread::sleep(period);
            match ticker.upgrade() {
                Some(tx) => {
                    let _ = tx.try_send(Command::Tick);
                }
                None => break,
            }
        })
        .map_err(|e| StoreError::Open {
            path: path.clone(),
            cause: format!("cannot start a thread: {e}"),
        })?;
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || worker.run(rx))
        .map_err(|e| StoreError::Open {
            path,
            cause: format!("cannot start a thread: {e}"),
        })?;
    Ok((tx, committed_rx, journal_path))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
