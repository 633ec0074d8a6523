//! Appends and the store's limits: a message that does not fit evicts the
//! oldest, is refused, or waits for room (`when_full`), and QoS 0 is stored
//! only while an output is down and `qos0_while_down: keep` says so.

use std::sync::atomic::Ordering;

use mqtt_proto::codec::QoS;
use tokio::sync::oneshot;
use tracing::warn;

use super::{now_ms, Blocked, Entry, Kept, Worker};
use crate::config::{Durability, Qos0WhileDown, WhenFull};
use crate::message::Message;
use crate::store::db::Marks;
use crate::store::{Appended, StoreError};

impl Worker {
    fn fits(&self, size: u64) -> bool {
        self.count < self.config.max_messages
            && (self.config.max_bytes == 0 || self.bytes + size <= self.config.max_bytes)
            && self.space_cap.is_none_or(|cap| self.bytes + size <= cap)
    }

    /// Append what fits; a remainder waits in `blocked` (`when_full: block`). The
    /// reply goes into `done` (to be answered after the commit) unless it waits.
    pub(super) fn append(
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
        let arrived = std::time::Instant::now();
        let any_down = self.connected.iter().any(|up| !up);
        // A write-behind message waits in the journal for its window, also while
        // an output is down: what arrives in one window is committed together.
        let behind = b.durability == Durability::WriteBehind && self.journal.is_some();
        if !behind {
            self.look_at_space(false);
            // The file is written anyway: the put-off deletes go with it.
            self.apply_deferred_done()?;
        }
        while let Some(m) = b.messages.pop_front() {
            let size = (m.topic.len() + m.payload.len()) as u64;
            let persist = m.qos != QoS::AtMostOnce
                || (self.config.qos0_while_down == Qos0WhileDown::Keep && any_down);
            if persist && !self.fits(size) && !self.deferred_done.is_empty() {
                // Delivered messages make room first.
                self.apply_deferred_done()?;
            }
            if persist && !self.fits(size) {
                match self.config.when_full {
                    WhenFull::DropOldest => {
                        while !self.fits(size) && self.evict_oldest()? {}
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
            let marks = Marks {
                pending: self.all_bits,
                released: 0,
            };
            let kept = match (persist, &self.journal) {
                (false, _) => Kept::Nowhere,
                (true, Some(journal)) if behind => {
                    journal.insert(id, created, &m, marks, size)?;
                    self.journal_ids.push_back((id, arrived));
                    Kept::Journal
                }
                (true, _) => {
                    self.db.insert(id, created, &m, marks, size)?;
                    self.disk_dirty = true;
                    Kept::File
                }
            };
            if persist {
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
                kept,
                created_ms: created,
                pending,
                released: 0,
                size: size as usize,
            });
            self.trim_cache();
        }
        Ok(false)
    }

    /// Make room: the oldest message of the file goes, or, with nothing in the
    /// file, the oldest in the journal. `false` when there is nothing to evict.
    fn evict_oldest(&mut self) -> Result<bool, StoreError> {
        if let Some((id, size)) = self.db.evict_oldest()? {
            self.disk_dirty = true;
            self.forget(id, size);
            self.stats.evicted_oldest.fetch_add(1, Ordering::Relaxed);
            return Ok(true);
        }
        while let Some((id, _)) = self.journal_ids.pop_front() {
            let Some(i) = self.cache_index(id) else {
                continue;
            };
            let e = &self.cache[i];
            if e.kept != Kept::Journal || e.pending == 0 {
                continue;
            }
            let size = e.size as u64;
            if let Some(journal) = &self.journal {
                journal.delete(id)?;
            }
            self.forget(id, size);
            self.stats.evicted_oldest.fetch_add(1, Ordering::Relaxed);
            return Ok(true);
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
}
