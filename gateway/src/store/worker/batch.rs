//! The command loop: every command waiting runs in one transaction, and the
//! replies that wait for the commit are answered after it (or all get its error).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{error, warn};

use super::{Blocked, Reply, Worker};
use crate::store::{Appended, Command, StoreError};

/// Commands run in one transaction, at most.
const BATCH: usize = 512;

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
