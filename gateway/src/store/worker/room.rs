//! Appends and the store's limits: a message that does not fit evicts the
//! oldest, is refused, or waits for room (`when_full`), and QoS 0 is stored
//! only while an output is down and `qos0_while_down: keep` says so.

use std::sync::atomic::Ordering;

use mqtt_proto::codec::QoS;
use tokio::sync::oneshot;
use tracing::warn;

use super::{now_ms, Blocked, Entry, Worker};
use crate::config::{Qos0WhileDown, WhenFull};
use crate::message::Message;
use crate::store::{Appended, StoreError};

impl Worker {
    fn fits(&self, size: u64) -> bool {
        self.count < self.config.max_messages
            && (self.config.max_bytes == 0 || self.bytes + size <= self.config.max_bytes)
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
}
