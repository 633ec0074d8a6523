//! The store's thread: takes every command waiting, runs them in one transaction
//! (group commit), then answers those that wait for the commit.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqtt_proto::codec::QoS;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use super::db::{Db, Opened};
use super::{Appended, Command, Fetched, StoreError, StoreStats, Stored, COMMAND_QUEUE};
use crate::config::{Qos0WhileDown, StoreConfig, WhenFull};
use crate::message::Message;

/// Commands run in one transaction, at most.
const BATCH: usize = 512;
/// Recent messages kept in memory for outputs that keep up.
const CACHE_MESSAGES: usize = 16_384;
const CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Rows expired per tick, at most (the next tick goes on).
const EXPIRE_PER_TICK: usize = 50_000;

/// A recent message, in memory.
struct Entry {
    id: u64,
    message: Arc<Message>,
    persisted: bool,
    /// Outputs that still have to send it.
    pending: u64,
    /// Outputs whose PUBREC came back.
    released: u64,
    size: usize,
}

/// An append that is waiting for room (`when_full: block`).
struct Blocked {
    messages: VecDeque<Arc<Message>>,
    so_far: Appended,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

struct Worker {
    db: Db,
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

/// Open the file here (so that errors reach the caller) and start the thread.
pub(super) fn start(
    config: StoreConfig,
    names: &[String],
    stats: Arc<StoreStats>,
) -> Result<(mpsc::Sender<Command>, watch::Receiver<u64>), StoreError> {
    let Opened {
        db,
        bits,
        count,
        bytes,
        next_id,
        forgotten,
    } = Db::open(&config.file, config.synchronous, names)?;
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
    worker.publish_stats();
    if let Ok(Some(ms)) = worker.db.oldest_ms() {
        worker.stats.oldest_ms.store(ms, Ordering::Relaxed);
    }
    let path = worker.config.file.clone();
    let ticker = tx.downgrade();
    std::thread::Builder::new()
        .name("store-tick".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
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
    Ok((tx, committed_rx))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Worker {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let Some(first) = rx.blocking_recv() else {
                self.shut_down();
                return;
            };
            batch.push(first);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            if self.run_batch(&mut batch) {
                return;
            }
        }
    }

    fn shut_down(&mut self) {
        if let Err(e) = self.db.checkpoint() {
            warn!("{e}");
        }
    }

    /// Run the commands in one transaction; `true` when the store is to close.
    fn run_batch(&mut self, batch: &mut Vec<Command>) -> bool {
        let before = (self.next_id, self.count, self.bytes, self.cache.len());
        let mut appends = Vec::new();
        let mut waiting: Vec<Reply> = Vec::new();
        let mut syncs = Vec::new();
        let mut close = None;
        let mut checkpoint = false;
        let mut failed = self.db.begin().err();
        for cmd in batch.drain(..) {
            if failed.is_some() {
                // Still answer everyone below.
                match cmd {
                    Command::Append { reply, .. } => appends.push((reply, Appended::default())),
                    Command::Released { reply, .. } => waiting.push(reply),
                    Command::Fetch { reply, .. } => {
                        let _ = reply.send(Err(failed.clone().unwrap_or(StoreError::Closed)));
                    }
                    Command::Sync { reply } => syncs.push(reply),
                    Command::Close { reply } => close = Some(reply),
                    Command::Done { .. } | Command::Connected { .. } | Command::Tick => {}
                    #[cfg(test)]
                    Command::LimitPages(_) => {}
                }
                continue;
            }
            let result = match cmd {
                Command::Append { messages, reply } => {
                    let blocked = Blocked {
                        messages: messages.into(),
                        so_far: Appended::default(),
                        reply,
                    };
                    if self.blocked.is_empty() {
                        self.append(blocked, &mut appends)
                    } else {
                        self.blocked.push_back(blocked);
                        Ok(())
                    }
                }
                Command::Fetch {
                    output,
                    after,
                    max,
                    reply,
                } => {
                    let result = self.fetch(output, after, max);
                    let e = result.as_ref().err().cloned();
                    let _ = reply.send(result);
                    e.map_or(Ok(()), Err)
                }
                Command::Done { output, ids } => self.done(output, &ids),
                Command::Released {
                    output,
                    ids,
                    on,
                    reply,
                } => {
                    waiting.push(reply);
                    if ids.is_empty() && !on {
                        self.forget_releases(output)
                    } else {
                        ids.iter().try_for_each(|&id| self.released(output, id, on))
                    }
                }
                Command::Connected { output, up } => {
                    if let Some(c) = self.connected.get_mut(output) {
                        *c = up;
                    }
                    Ok(())
                }
                Command::Tick => {
                    checkpoint = self.last_checkpoint.elapsed()
                        >= Duration::from_secs(self.config.checkpoint_secs.max(1));
                    self.tick()
                }
                Command::Sync { reply } => {
                    syncs.push(reply);
                    Ok(())
                }
                Command::Close { reply } => {
                    close = Some(reply);
                    Ok(())
                }
                #[cfg(test)]
                Command::LimitPages(pages) => {
                    self.db.limit_pages(pages);
                    Ok(())
                }
            };
            if let Err(e) = result {
                failed = Some(e);
            }
        }
        if failed.is_none() {
            // Room may have been made: let waiting appends go on.
            while let Some(b) = self.blocked.pop_front() {
                if let Err(e) = self.append(b, &mut appends) {
                    failed = Some(e);
                    break;
                }
                if !self.blocked.is_empty() {
                    break;
                }
            }
        }
        if failed.is_none() {
            failed = self.db.commit().err();
        }
        match failed {
            None => {
                self.committed = self.next_id - 1;
                self.committed_tx.send_replace(self.committed);
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.publish_stats();
                for (reply, appended) in appends {
                    let _ = reply.send(Ok(appended));
                }
                for reply in waiting {
                    let _ = reply.send(Ok(()));
                }
            }
            Some(e) => {
                self.db.rollback();
                error!("{e}");
                *self
                    .stats
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                // Undo what the transaction would have added; the senders try again.
                let (next_id, count, bytes, cached) = before;
                self.next_id = next_id;
                self.count = count;
                self.bytes = bytes;
                while self.cache.len() > cached {
                    if let Some(entry) = self.cache.pop_back() {
                        self.cache_bytes -= entry.size;
                    }
                }
                for (reply, _) in appends {
                    let _ = reply.send(Err(e.clone()));
                }
                self.publish_stats();
                for b in self.blocked.drain(..) {
                    let _ = b.reply.send(Err(e.clone()));
                }
                for reply in waiting {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        for reply in syncs {
            let _ = reply.send(());
        }
        if checkpoint || close.is_some() {
            self.last_checkpoint = Instant::now();
            if let Err(e) = self.db.checkpoint() {
                warn!("{e}");
            }
        }
        if let Some(reply) = close {
            self.log_drops(true);
            let _ = reply.send(());
            return true;
        }
        false
    }

    /// Say what the limits dropped since the last time (and at close, always).
    fn log_drops(&mut self, closing: bool) {
        let s = &self.stats;
        let now = [
            StoreStats::get(&s.evicted_oldest),
            StoreStats::get(&s.refused_full),
            StoreStats::get(&s.expired),
            StoreStats::get(&s.qos0_dropped),
        ];
        if now == self.logged_drops && !closing {
            return;
        }
        self.logged_drops = now;
        let [evicted, refused, expired, qos0] = now;
        let what = format!(
            "{} message(s) in the store; dropped so far: {evicted} evicted (store full), \
             {refused} refused (store full), {expired} older than max_age, {qos0} QoS 0 while an output was down",
            self.count
        );
        if closing {
            info!(store = %self.config.file.display(), "closed: {what}");
        } else {
            warn!(store = %self.config.file.display(), "{what}");
        }
    }

    fn publish_stats(&self) {
        self.stats.depth.store(self.count, Ordering::Relaxed);
        self.stats.bytes.store(self.bytes, Ordering::Relaxed);
        self.stats
            .blocked
            .store(!self.blocked.is_empty(), Ordering::Relaxed);
        if self.count == 0 {
            self.stats.oldest_ms.store(0, Ordering::Relaxed);
        }
    }

    fn fits(&self, size: u64) -> bool {
        self.count < self.config.max_messages
            && (self.config.max_bytes == 0 || self.bytes + size <= self.config.max_bytes)
    }

    /// Append what fits; a remainder waits in `blocked` (`when_full: block`). The
    /// reply goes into `done` (to be answered after the commit) unless it waits.
    fn append(
        &mut self,
        mut b: Blocked,
        done: &mut Vec<(oneshot::Sender<Result<Appended, StoreError>>, Appended)>,
    ) -> Result<(), StoreError> {
        match self.append_some(&mut b) {
            Ok(true) => {
                self.blocked.push_front(b);
                Ok(())
            }
            Ok(false) => {
                done.push((b.reply, b.so_far));
                Ok(())
            }
            Err(e) => {
                done.push((b.reply, b.so_far));
                Err(e)
            }
        }
    }

    /// `Ok(true)` when the rest has to wait for room.
    fn append_some(&mut self, b: &mut Blocked) -> Result<bool, StoreError> {
        let created = now_ms();
        let any_down = self.connected.iter().any(|up| !up);
        while let Some(m) = b.messages.pop_front() {
            let size = (m.topic.len() + m.payload.len()) as u64;
            let persist = m.qos != QoS::AtMostOnce
                || (self.config.qos0_while_down == Qos0WhileDown::Keep && any_down);
            if persist && !self.fits(size) {
                match self.config.when_full {
                    WhenFull::DropOldest => {
                        while !self.fits(size) {
                            let Some((id, gone)) = self.db.evict_oldest()? else {
                                break;
                            };
                            self.forget(id, gone);
                            self.stats.evicted_oldest.fetch_add(1, Ordering::Relaxed);
                        }
                        if !self.fits(size) {
                            // Larger than the whole store.
                            self.refuse(&m, &mut b.so_far);
                            continue;
                        }
                    }
                    WhenFull::DropNewest => {
                        self.refuse(&m, &mut b.so_far);
                        continue;
                    }
                    WhenFull::Block => {
                        b.messages.push_front(m);
                        if self.blocked.is_empty() {
                            warn!(
                                store = %self.config.file.display(),
                                "the store is full: the pipeline waits until outputs take messages"
                            );
                        }
                        return Ok(true);
                    }
                }
            }
            let id = self.next_id;
            self.next_id += 1;
            if persist {
                self.db.insert(id, created, &m, self.all_bits, size)?;
                self.count += 1;
                self.bytes += size;
                if self.count == 1 {
                    self.stats.oldest_ms.store(created, Ordering::Relaxed);
                }
            }
            b.so_far.accepted += 1;
            self.stats.appended.fetch_add(1, Ordering::Relaxed);
            let mut pending = self.all_bits;
            if !persist && any_down {
                // QoS 0 with `qos0_while_down: drop`: outputs that are down never get it.
                for (bit, up) in self.bits.iter().zip(&self.connected) {
                    if !up {
                        pending &= !bit;
                        self.stats.qos0_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            self.cache_bytes += size as usize;
            self.cache.push_back(Entry {
                id,
                message: m,
                persisted: persist,
                pending,
                released: 0,
                size: size as usize,
            });
            self.trim_cache();
        }
        Ok(false)
    }

    /// Refused for want of room; the first refusal is logged at once, the count
    /// with the once-a-second summary (a fast source must not flood the log).
    fn refuse(&self, m: &Message, so_far: &mut Appended) {
        so_far.refused += 1;
        let before = self.stats.refused_full.fetch_add(1, Ordering::Relaxed);
        if before == self.logged_drops[1] {
            warn!(
                store = %self.config.file.display(),
                topic = %m.topic,
                "store full: new messages are refused (when_full: drop_newest)"
            );
        }
    }

    fn trim_cache(&mut self) {
        // Messages every output has finished are not needed any more.
        while let Some(front) = self.cache.front() {
            if front.pending != 0 || front.id > self.committed {
                break;
            }
            self.cache_bytes -= front.size;
            self.cache.pop_front();
        }
        while self.cache.len() > CACHE_MESSAGES || self.cache_bytes > CACHE_BYTES {
            let Some(old) = self.cache.pop_front() else {
                break;
            };
            self.cache_bytes -= old.size;
            if !old.persisted && old.pending != 0 {
                self.stats
                    .qos0_dropped
                    .fetch_add(old.pending.count_ones() as u64, Ordering::Relaxed);
            }
        }
    }

    fn cache_index(&self, id: u64) -> Option<usize> {
        let first = self.cache.front()?.id;
        let i = id.checked_sub(first)? as usize;
        (i < self.cache.len()).then_some(i)
    }

    /// A row left the file (evicted, expired): forget it in memory too.
    fn forget(&mut self, id: u64, size: u64) {
        self.count -= 1;
        self.bytes -= size;
        if let Some(i) = self.cache_index(id) {
            self.cache[i].pending = 0;
        }
    }

    fn fetch(&mut self, output: usize, after: u64, max: usize) -> Result<Fetched, StoreError> {
        let bit = self.bits[output];
        let limit = self.committed;
        let mut items = Vec::new();
        let mut upto = after;
        if after >= limit {
            return Ok(Fetched { items, upto });
        }
        let cache_first = self.cache.front().map_or(self.next_id, |e| e.id);
        if after + 1 < cache_first {
            let through = limit.min(cache_first - 1);
            let rows = self.db.fetch(after, through, bit, max)?;
            let full = rows.len() == max;
            for row in rows {
                upto = row.id;
                items.push(Stored {
                    id: row.id,
                    message: Arc::new(row.message),
                    released: row.released,
                    persisted: true,
                });
            }
            if full {
                return Ok(Fetched { items, upto });
            }
            upto = through;
        }
        let start = (upto + 1).saturating_sub(cache_first) as usize;
        for e in self.cache.iter_mut().skip(start) {
            if e.id > limit || items.len() >= max {
                break;
            }
            upto = e.id;
            if e.pending & bit == 0 {
                continue;
            }
            items.push(Stored {
                id: e.id,
                message: e.message.clone(),
                released: e.released & bit != 0,
                persisted: e.persisted,
            });
            if !e.persisted {
                // QoS 0 goes at most once.
                e.pending &= !bit;
            }
        }
        self.trim_cache();
        Ok(Fetched { items, upto })
    }

    fn done(&mut self, output: usize, ids: &[u64]) -> Result<(), StoreError> {
        let bit = self.bits[output];
        for &id in ids {
            if let Some(i) = self.cache_index(id) {
                let e = &mut self.cache[i];
                if e.pending & bit == 0 {
                    continue;
                }
                e.pending &= !bit;
                if !e.persisted {
                    continue;
                }
            }
            if let Some(size) = self.db.done(id, bit)? {
                self.count -= 1;
                self.bytes -= size;
            }
        }
        self.trim_cache();
        Ok(())
    }

    fn released(&mut self, output: usize, id: u64, on: bool) -> Result<(), StoreError> {
        let bit = self.bits[output];
        self.db.released(id, bit, on)?;
        if let Some(i) = self.cache_index(id) {
            if on {
                self.cache[i].released |= bit;
            } else {
                self.cache[i].released &= !bit;
            }
        }
        Ok(())
    }

    fn forget_releases(&mut self, output: usize) -> Result<(), StoreError> {
        let bit = self.bits[output];
        self.db.clear_released(bit)?;
        for e in self.cache.iter_mut() {
            e.released &= !bit;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), StoreError> {
        if let Some(max_age) = self.config.max_age {
            let cut = now_ms() - max_age.as_millis() as i64;
            let gone = self.db.expire(cut, EXPIRE_PER_TICK)?;
            if !gone.is_empty() {
                warn!(
                    store = %self.config.file.display(),
                    "{} message(s) older than max_age dropped",
                    gone.len()
                );
            }
            for (id, size) in gone {
                self.forget(id, size);
                self.stats.expired.fetch_add(1, Ordering::Relaxed);
            }
        }
        let oldest = self.db.oldest_ms()?.unwrap_or(0);
        self.stats.oldest_ms.store(oldest, Ordering::Relaxed);
        self.log_drops(false);
        Ok(())
    }
}
