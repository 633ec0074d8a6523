//! The once-a-second tick: messages older than `max_age` leave the store, and
//! what the limits dropped is summarised in the log.

use std::sync::atomic::Ordering;

use tracing::{info, warn};

use super::{now_ms, Worker};
use crate::store::{StoreError, StoreStats};

/// Rows expired per tick, at most (the next tick goes on).
const EXPIRE_PER_TICK: usize = 50_000;

impl Worker {
    pub(super) fn tick(&mut self) -> Result<(), StoreError> {
        self.look_at_space(true);
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

    /// Say what the limits dropped since the last time (and at close, always).
    pub(super) fn log_drops(&mut self, closing: bool) {
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
}
