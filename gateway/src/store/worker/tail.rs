//! The in-memory tail: recent messages kept for outputs that keep up, read
//! from before the file is asked, and what outputs have finished with.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Kept, Worker};
use crate::store::{Fetched, StoreError, Stored};

/// Recent messages kept in memory for outputs that keep up.
const CACHE_MESSAGES: usize = 16_384;
const CACHE_BYTES: usize = 16 * 1024 * 1024;

impl Worker {
    pub(super) fn trim_cache(&mut self) {
        // Messages every output has finished are not needed any more.
        while let Some(front) = self.cache.front() {
            if front.pending != 0 || front.id > self.committed {
                break;
            }
            self.cache_bytes -= front.size;
            self.cache.pop_front();
        }
        while self.cache.len() > CACHE_MESSAGES || self.cache_bytes > CACHE_BYTES {
            let Some(front) = self.cache.front() else {
                break;
            };
            if front.kept == Kept::Journal && front.pending != 0 {
                // Only in the journal: it goes to the file first (after this batch).
                self.overfull = true;
                break;
            }
            let Some(old) = self.cache.pop_front() else {
                break;
            };
            self.cache_bytes -= old.size;
            if old.kept == Kept::Nowhere && old.pending != 0 {
                self.stats
                    .qos0_dropped
                    .fetch_add(old.pending.count_ones() as u64, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn cache_index(&self, id: u64) -> Option<usize> {
        let first = self.cache.front()?.id;
        let i = id.checked_sub(first)? as usize;
        (i < self.cache.len()).then_some(i)
    }

    /// A row left the file (evicted, expired): forget it in memory too.
    pub(super) fn forget(&mut self, id: u64, size: u64) {
        self.count -= 1;
        self.bytes -= size;
        if let Some(i) = self.cache_index(id) {
            self.cache[i].pending = 0;
        }
    }

    pub(super) fn fetch(
        &mut self,
        output: usize,
        after: u64,
        max: usize,
    ) -> Result<Fetched, StoreError> {
        let bit = self.bits[output];
        let limit = self.committed;
        let mut items = Vec::new();
        let mut upto = after;
        if after >= limit {
            return Ok(Fetched { items, upto });
        }
        let cache_first = self.cache.front().map_or(self.next_id, |e| e.id);
        if after + 1 < cache_first {
            // The file must not hand out what was acknowledged already.
            self.apply_deferred_done()?;
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
                persisted: e.kept != Kept::Nowhere,
            });
            if e.kept == Kept::Nowhere {
                // QoS 0 goes at most once.
                e.pending &= !bit;
            }
        }
        self.trim_cache();
        Ok(Fetched { items, upto })
    }

    /// Acknowledgements of messages in the file wait in `deferred_done`.
    pub(super) fn done(&mut self, output: usize, ids: &[u64]) -> Result<(), StoreError> {
        let bit = self.bits[output];
        for &id in ids {
            if let Some(i) = self.cache_index(id) {
                let e = &mut self.cache[i];
                if e.pending & bit == 0 {
                    continue;
                }
                e.pending &= !bit;
                let (kept, last, size) = (e.kept, e.pending == 0, e.size as u64);
                match (kept, &self.journal) {
                    (Kept::Nowhere, _) => continue,
                    (Kept::Journal, Some(journal)) => {
                        journal.done(id, bit)?;
                        if last {
                            self.count -= 1;
                            self.bytes -= size;
                        }
                        continue;
                    }
                    _ => {}
                }
            }
            // Deleted with the next write to the file, at most a second later
            // (see `apply_deferred_done`); at once while the disk is short of
            // room, where one large transaction of deletes would not fit.
            if self.space_cap.is_some() {
                self.done_in_file(output, id)?;
            } else {
                self.deferred_done.push((output, id));
            }
        }
        self.trim_cache();
        Ok(())
    }

    /// Write the acknowledgements of messages in the file that were put off: many
    /// deletes in one commit instead of one commit each. Until then the rows stay
    /// (a crash sends those messages again: QoS 1 at least once; a QoS 2 message
    /// whose PUBREC came back goes again as PUBREL only, as its mark was written).
    pub(super) fn apply_deferred_done(&mut self) -> Result<(), StoreError> {
        let deferred = std::mem::take(&mut self.deferred_done);
        self.all_done_in_file(deferred)
    }

    pub(super) fn all_done_in_file(&mut self, done: Vec<(usize, u64)>) -> Result<(), StoreError> {
        done.into_iter()
            .try_for_each(|(output, id)| self.done_in_file(output, id))
    }

    /// Write that `output` is done with `id`, a message in the file (noted in
    /// `file_done`, to be written again should the batch be rolled back).
    fn done_in_file(&mut self, output: usize, id: u64) -> Result<(), StoreError> {
        self.file_done.push((output, id));
        if let Some(size) = self.db.done(id, self.bits[output])? {
            self.count -= 1;
            self.bytes -= size;
        }
        self.disk_dirty = true;
        Ok(())
    }

    pub(super) fn released(&mut self, output: usize, id: u64, on: bool) -> Result<(), StoreError> {
        let bit = self.bits[output];
        let cached = self.cache_index(id);
        let in_journal = cached.is_some_and(|i| self.cache[i].kept == Kept::Journal);
        match (&self.journal, in_journal) {
            (Some(journal), true) => journal.released(id, bit, on)?,
            _ => {
                self.db.released(id, bit, on)?;
                self.disk_dirty = true;
            }
        }
        if let Some(i) = cached {
            if on {
                self.cache[i].released |= bit;
            } else {
                self.cache[i].released &= !bit;
            }
        }
        Ok(())
    }

    pub(super) fn forget_releases(&mut self, output: usize) -> Result<(), StoreError> {
        let bit = self.bits[output];
        self.db.clear_released(bit)?;
        self.disk_dirty = true;
        if let Some(journal) = &self.journal {
            journal.clear_released(bit)?;
        }
        for e in self.cache.iter_mut() {
            e.released &= !bit;
        }
        Ok(())
    }
}
