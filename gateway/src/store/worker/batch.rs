//! The command loop: every command waiting runs in one transaction, and the
//! replies that wait for the commit are answered after it (or all get its error).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::{Blocked, Kept, Reply, Worker};
use crate::store::{Appended, Command, StoreError};

/// Commands run in one transaction, at most.
const BATCH: usize = 512;
/// Acknowledgements written in one transaction after a failed batch.
const SAVE_ALONE: usize = 1_000;
/// Acknowledgements of messages in the file put off at most (then written at the next tick).
const DEFERRED_DONE: usize = 16_384;

impl Worker {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
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
                let crashed = self.crashed.take();
                // Answered once the files are closed, as after a killed process.
                drop(self);
                if let Some(reply) = crashed {
                    let _ = reply.send(());
                }
                return;
            }
        }
    }

    fn shut_down(&mut self) {
        // Acknowledgements put off are written (`Close` did already).
        if !self.deferred_done.is_empty() {
            let written = self
                .db
                .begin()
                .and_then(|()| self.apply_deferred_done())
                .and_then(|()| self.db.commit());
            if let Err(e) = written {
                self.db.rollback();
                warn!("{e}");
            }
        }
        // What waits in the journal goes to the file: the journal is for crashes.
        self.write_behind_due(true);
        if let Err(e) = self.db.checkpoint(true) {
            warn!("{e}");
        }
        if self.journal_ids.is_empty() {
            if let Some(journal) = self.journal.take() {
                journal.remove();
            }
        }
    }

    /// Run the commands in one transaction; `true` when the store is to close.
    fn run_batch(&mut self, batch: &mut Vec<Command>) -> bool {
        let before = (self.next_id, self.cache.len());
        let counters = self.counters();
        let mut appends = Vec::new();
        let mut waiting: Vec<Reply> = Vec::new();
        let mut syncs = Vec::new();
        let mut close = None;
        let mut crash = None;
        let mut checkpoint = false;
        let mut housekeeping = false;
        let mut all_behind = false;
        let mut failed = self.db.begin().err();
        if let (None, Some(journal)) = (&failed, &self.journal) {
            failed = journal.begin().err();
        }
        if failed.is_none() {
            failed = self.redo_unsaved_done().err();
        }
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
                    Command::SetCounters { reply, .. } => syncs.push(reply),
                    Command::Counters { reply, .. } => {
                        let _ = reply.send(Err(failed.clone().unwrap_or(StoreError::Closed)));
                    }
                    Command::Close { reply } => close = Some(reply),
                    Command::Done { .. } | Command::Connected { .. } | Command::Tick => {}
                    Command::WriteBehindNow { reply } => syncs.push(reply),
                    Command::Crash { reply } => crash = Some(reply),
                    #[cfg(test)]
                    Command::LimitPages(_) | Command::Hold(_) => {}
                }
                continue;
            }
            let result = match cmd {
                Command::Append {
                    messages,
                    durability,
                    reply,
                } => {
                    let blocked = Blocked {
                        messages: messages.into(),
                        durability,
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
                        // Gone down: it will not acknowledge soon, so what waits in
                        // the journal goes to the file now.
                        all_behind |= *c && !up;
                        *c = up;
                    }
                    Ok(())
                }
                Command::Tick => {
                    housekeeping = true;
                    if self.last_housekeeping.elapsed() >= Duration::from_secs(1)
                        || self.deferred_done.len() >= DEFERRED_DONE
                    {
                        self.last_housekeeping = Instant::now();
                        checkpoint = self.last_checkpoint.elapsed()
                            >= Duration::from_secs(self.config.checkpoint_secs.max(1));
                        self.apply_deferred_done().and_then(|()| self.tick())
                    } else {
                        Ok(())
                    }
                }
                Command::Sync { reply } => {
                    syncs.push(reply);
                    self.apply_deferred_done()
                }
                Command::SetCounters { values, reply } => {
                    syncs.push(reply);
                    values
                        .iter()
                        .try_for_each(|(name, value)| self.db.set_counter(name, *value))
                }
                Command::Counters { prefix, reply } => {
                    let result = self.db.counters(&prefix);
                    let e = result.as_ref().err().cloned();
                    let _ = reply.send(result);
                    e.map_or(Ok(()), Err)
                }
                Command::Close { reply } => {
                    close = Some(reply);
                    self.apply_deferred_done()
                }
                #[cfg(test)]
                Command::LimitPages(pages) => {
                    self.db.limit_pages(pages);
                    Ok(())
                }
                #[cfg(test)]
                Command::Hold(until) => {
                    let _ = until.recv();
                    Ok(())
                }
                Command::WriteBehindNow { reply } => {
                    all_behind = true;
                    syncs.push(reply);
                    Ok(())
                }
                Command::Crash { reply } => {
                    crash = Some(reply);
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
        if let Some(reply) = crash {
            // As a killed process: the open transactions are never committed.
            self.db.rollback();
            if let Some(journal) = &self.journal {
                journal.rollback();
            }
            self.crashed = Some(reply);
            return true;
        }
        // The journal first: should the file's commit fail, the appends it
        // took are removed from it again below.
        if let (None, Some(journal)) = (&failed, &self.journal) {
            failed = journal.commit().err();
        }
        if failed.is_none() {
            failed = self.db.commit().err();
        }
        match failed {
            None => {
                self.file_done.clear();
                if self.failing && !appends.is_empty() {
                    // The cause is gone: the status page stops showing it.
                    self.failing = false;
                    self.set_error(None);
                    info!(store = %self.config.file.display(), "the store writes again");
                }
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
                self.set_error(Some(&e));
                self.failing = true;
                self.look_at_space(true);
                if matches!(e, StoreError::DiskFull { .. }) {
                    // Start the write-ahead log over: it reuses its own room.
                    let _ = self.db.checkpoint(false);
                }
                self.restore_counters(&counters);
                // Undo what the transaction would have added; the senders try again.
                let (next_id, cached) = before;
                if let Some(journal) = &self.journal {
                    journal.rollback();
                    if let Err(e) = journal.delete_from(next_id) {
                        warn!("{e}");
                    }
                }
                while self
                    .journal_ids
                    .back()
                    .is_some_and(|(id, _)| *id >= next_id)
                {
                    self.journal_ids.pop_back();
                }
                self.next_id = next_id;
                while self.cache.len() > cached {
                    if let Some(entry) = self.cache.pop_back() {
                        self.cache_bytes -= entry.size;
                    }
                }
                self.recount();
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
                // Acknowledgements always make progress, even while appends fail.
                self.unsaved_done.append(&mut self.file_done);
                self.save_done_alone();
            }
        }
        if housekeeping || all_behind || self.overfull {
            self.write_behind_due(all_behind || self.overfull);
            self.overfull = false;
            self.trim_cache();
        }
        for reply in syncs {
            let _ = reply.send(());
        }
        // Short of room, the write-ahead log starts over every second instead
        // of growing until it checkpoints itself.
        let short =
            self.space_cap.is_some() && self.last_checkpoint.elapsed() >= Duration::from_secs(1);
        if (checkpoint || short) && self.disk_dirty {
            self.last_checkpoint = Instant::now();
            self.disk_dirty = false;
            if let Err(e) = self.db.checkpoint(false) {
                warn!("{e}");
            }
        }
        if let Some(free) = self.shrink_due.take() {
            self.give_back_room(free);
        }
        if let Some(reply) = close {
            self.shut_down();
            self.log_drops(true);
            let _ = reply.send(());
            return true;
        }
        false
    }

    /// Write the acknowledgements a rolled-back batch lost, first in the next one.
    fn redo_unsaved_done(&mut self) -> Result<(), StoreError> {
        let unsaved = std::mem::take(&mut self.unsaved_done);
        self.all_done_in_file(unsaved)
    }

    /// After a failed batch: the acknowledgements alone, in a transaction of their
    /// own, once the write-ahead log was started over (it keeps its room, so that
    /// deletes fit when the disk is full). Kept for the next batch if even that fails.
    fn save_done_alone(&mut self) {
        // In small transactions, each with the log started over: a full disk has
        // room for a few pages of deletes at a time, not for thousands of rows.
        while !self.unsaved_done.is_empty() {
            let _ = self.db.checkpoint(false);
            let rest = self
                .unsaved_done
                .split_off(self.unsaved_done.len().min(SAVE_ALONE));
            let result = self
                .db
                .begin()
                .and_then(|()| self.redo_unsaved_done())
                .and_then(|()| self.db.commit());
            self.unsaved_done = rest;
            match result {
                Ok(()) => {
                    self.file_done.clear();
                    self.disk_dirty = true;
                    self.publish_stats();
                }
                Err(e) => {
                    self.db.rollback();
                    self.recount();
                    self.file_done.append(&mut self.unsaved_done);
                    self.unsaved_done = std::mem::take(&mut self.file_done);
                    warn!("acknowledgements not written yet, tried again with the next batch: {e}");
                    return;
                }
            }
        }
    }

    /// The counters a batch adds to, to be put back when it is rolled back (a
    /// sender tries the same messages again: they count once).
    fn batch_counters(&self) -> [&AtomicU64; 4] {
        let s = &self.stats;
        [
            &s.appended,
            &s.evicted_oldest,
            &s.refused_full,
            &s.qos0_dropped,
        ]
    }

    fn counters(&self) -> [u64; 4] {
        self.batch_counters().map(|c| c.load(Ordering::Relaxed))
    }

    fn restore_counters(&self, before: &[u64; 4]) {
        for (c, v) in self.batch_counters().into_iter().zip(before) {
            c.store(*v, Ordering::Relaxed);
        }
    }

    /// The store's error on the status page; `None` clears it.
    pub(super) fn set_error(&self, e: Option<&StoreError>) {
        *self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = e.map(ToString::to_string);
    }

    /// Count again what the store holds, after a rollback: the file's rows, and
    /// the messages only in the journal.
    fn recount(&mut self) {
        match self.db.totals() {
            Ok((count, bytes)) => {
                let behind = self
                    .cache
                    .iter()
                    .filter(|e| e.kept == Kept::Journal && e.pending != 0);
                self.count = count + behind.clone().count() as u64;
                self.bytes = bytes + behind.map(|e| e.size as u64).sum::<u64>();
            }
            Err(e) => warn!("{e}"),
        }
    }

    pub(super) fn publish_stats(&self) {
        self.stats.depth.store(self.count, Ordering::Relaxed);
        self.stats.bytes.store(self.bytes, Ordering::Relaxed);
        self.stats
            .blocked
            .store(!self.blocked.is_empty(), Ordering::Relaxed);
        if self.count == 0 {
            self.stats.oldest_ms.store(0, Ordering::Relaxed);
        }
    }
}
