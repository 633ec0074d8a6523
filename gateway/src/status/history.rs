//! The last hour of the two charts (messages/s and store depth), one sample a
//! second, kept by the server so that a page opened now shows the hour before it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::snapshot::Watched;

/// Samples kept: an hour at one a second (about 50 KB).
pub(super) const SAMPLES: usize = 3600;
pub(super) const STEP: Duration = Duration::from_secs(1);

/// `/api/history`: oldest sample first; the last was taken at `end_ms`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub step_secs: f64,
    pub end_ms: i64,
    /// Messages the mappings produced per second.
    pub messages_per_sec: VecDeque<f32>,
    /// Messages in the store.
    pub store_depth: VecDeque<u64>,
}

impl History {
    fn push(&mut self, rate: f32, depth: u64, now_ms: i64) {
        if self.messages_per_sec.len() == SAMPLES {
            self.messages_per_sec.pop_front();
            self.store_depth.pop_front();
        }
        self.messages_per_sec.push_back(rate);
        self.store_depth.push_back(depth);
        self.end_ms = now_ms;
    }
}

pub(super) type SharedHistory = Arc<Mutex<History>>;

/// Sample `watched` every `STEP` into `history` until `stop` turns true.
pub(super) async fn sample(
    watched: Watched,
    history: SharedHistory,
    mut stop: watch::Receiver<bool>,
) {
    let total = |w: &Watched| -> u64 {
        w.mappings
            .iter()
            .map(|m| crate::pipeline::MappingStats::get(&m.messages))
            .sum()
    };
    let mut ticks = tokio::time::interval(STEP);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut before = (total(&watched), std::time::Instant::now());
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = (total(&watched), std::time::Instant::now());
        let secs = now.1.duration_since(before.1).as_secs_f64();
        let rate = if secs > 0.0 {
            (now.0.saturating_sub(before.0)) as f64 / secs
        } else {
            0.0
        };
        before = now;
        let depth = watched
            .store
            .as_deref()
            .map_or(0, |s| crate::store::StoreStats::get(&s.depth));
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut h = history.lock().unwrap_or_else(|e| e.into_inner());
        h.step_secs = STEP.as_secs_f64();
        h.push(rate as f32, depth, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_is_kept_and_older_samples_fall_off() {
        let mut h = History::default();
        for i in 0..SAMPLES + 10 {
            h.push(i as f32, i as u64, i as i64);
        }
        assert_eq!(h.messages_per_sec.len(), SAMPLES);
        assert_eq!(h.store_depth.front(), Some(&10));
        assert_eq!(h.store_depth.back(), Some(&(SAMPLES as u64 + 9)));
        assert_eq!(h.end_ms, SAMPLES as i64 + 9);
    }
}
