//! Counters of one source's commands, read by the status page and `/metrics`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use super::result::Status;

/// Results the status page shows per source.
pub const RECENT_RESULTS: usize = 10;

/// One source's commands so far.
#[derive(Debug)]
pub struct CommandStats {
    pub source: String,
    /// The filter its commands come on (filled in).
    pub topic: String,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub expired: AtomicU64,
    pub rejected: AtomicU64,
    pub dropped: AtomicU64,
    /// Waiting now, the one with the transport included.
    pub queued: AtomicU64,
    recent: Mutex<VecDeque<RecentResult>>,
}

/// A result, as the status page lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecentResult {
    /// RFC 3339, UTC.
    pub at: String,
    pub topic: String,
    pub status: Status,
    pub error: Option<String>,
}

impl CommandStats {
    pub fn new(source: &str, topic: &str) -> CommandStats {
        CommandStats {
            source: source.to_string(),
            topic: topic.to_string(),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_RESULTS)),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn set_queued(&self, n: usize) {
        self.queued.store(n as u64, Ordering::Relaxed);
    }

    /// The counter of `status`.
    pub fn of(&self, status: Status) -> &AtomicU64 {
        match status {
            Status::Sent => &self.sent,
            Status::Failed => &self.failed,
            Status::Expired => &self.expired,
            Status::Rejected => &self.rejected,
            Status::Dropped => &self.dropped,
        }
    }

    pub(crate) fn count(&self, status: Status, topic: &str, error: Option<&str>) {
        Self::add(self.of(status), 1);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_RESULTS {
            recent.pop_front();
        }
        recent.push_back(RecentResult {
            at: crate::mapping::rfc3339(SystemTime::now()),
            topic: topic.to_string(),
            status,
            error: error.map(str::to_string),
        });
    }

    /// The last results, oldest first.
    pub fn recent(&self) -> Vec<RecentResult> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
    }
}
