//! What a source publishes about itself for the status page and the logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// Where a source is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceState {
    Starting,
    /// The device is open (or the capture is playing).
    Connected {
        since: SystemTime,
    },
    /// The device is gone; the source reopens it with back-off.
    Waiting {
        since: SystemTime,
        last_error: String,
    },
    /// A capture played to its end (not looping), or the gateway is stopping.
    Finished,
}

/// Counters and state of one source, shared with whoever reports them.
#[derive(Debug)]
pub struct SourceStatus {
    pub id: String,
    state: Mutex<SourceState>,
    pub bytes: AtomicU64,
    pub frames: AtomicU64,
    pub bad_frames: AtomicU64,
    /// Times the device was opened after the first time.
    pub reopens: AtomicU64,
}

impl SourceStatus {
    pub fn new(id: &str) -> SourceStatus {
        SourceStatus {
            id: id.to_string(),
            state: Mutex::new(SourceState::Starting),
            bytes: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            reopens: AtomicU64::new(0),
        }
    }

    pub fn state(&self) -> SourceState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_state(&self, state: SourceState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
