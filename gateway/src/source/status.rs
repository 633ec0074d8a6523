//! What a source publishes about itself for the status page and the logs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::airtime::SubBandBudget;
use crate::frame::Frame;

/// Frames a source keeps for the status page's preview.
pub const RECENT_FRAMES: usize = 5;
/// Bytes of each kept frame, at most (the rest is cut off; `len` says how long it was).
pub const PREVIEW_BYTES: usize = 64;

/// The start of one recent frame, for the status page.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentFrame {
    pub received_at: SystemTime,
    /// The frame's whole length.
    pub len: usize,
    /// Its first `PREVIEW_BYTES` bytes.
    pub head: Bytes,
}

/// The last bytes a source could not make a frame of, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadFrameNote {
    pub at: SystemTime,
    /// E.g. `checksum: NMEA checksum 0x4A, computed 0x4B`.
    pub why: String,
    /// How many bytes were rejected.
    pub len: usize,
    /// Their first `PREVIEW_BYTES` bytes.
    pub head: Bytes,
}

/// One radio's duty-cycle budget, for the status page.
#[derive(Debug, Clone, PartialEq)]
pub struct RadioDutyCycle {
    /// A LoRa gateway's EUI (lower-case hex), or `modem` for a modem source.
    pub radio: String,
    pub sub_bands: Vec<SubBandBudget>,
}

/// One `poll:` query's counters (a serial source asking an instrument), as the
/// status API shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollCounts {
    pub query: String,
    /// Answered within the timeout.
    pub ok: u64,
    /// Written, and no answer within the timeout.
    pub timeouts: u64,
    /// Written more than the grace after their time (while another query waited
    /// for its answer, or a command was being written).
    pub late: u64,
    /// Times that passed while the port was busy or closed: not written.
    pub skipped: u64,
    /// The last answer's time from the write to its frame.
    pub last_latency_ms: Option<u64>,
}

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
    /// Queries (`poll:`) that got no answer in time, all queries together.
    pub poll_timeouts: AtomicU64,
    /// Each query's counters, in the configured order; empty without `poll:`.
    polls: Mutex<Vec<PollCounts>>,
    /// The last few frames mapped, oldest first.
    recent: Mutex<VecDeque<RecentFrame>>,
    /// The last bad frame (counted in `bad_frames`).
    last_bad: Mutex<Option<BadFrameNote>>,
    /// Each transmitting radio's air time left (a modem's own, or each LoRa
    /// gateway's; empty for other sources and without a limit), as of the last
    /// transmission or minute.
    duty_cycle: Mutex<Vec<RadioDutyCycle>>,
    /// A Modbus source's bus and devices.
    modbus: std::sync::OnceLock<std::sync::Arc<crate::modbus::BusStats>>,
    /// An MQTT source's counters.
    mqtt: std::sync::OnceLock<std::sync::Arc<super::mqtt::MqttStats>>,
    /// A Semtech source's ABP devices' counters.
    abp: std::sync::OnceLock<std::sync::Arc<super::gwmp::AbpStats>>,
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
            poll_timeouts: AtomicU64::new(0),
            polls: Mutex::new(Vec::new()),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_FRAMES)),
            last_bad: Mutex::new(None),
            duty_cycle: Mutex::new(Vec::new()),
            modbus: std::sync::OnceLock::new(),
            mqtt: std::sync::OnceLock::new(),
            abp: std::sync::OnceLock::new(),
        }
    }

    /// A Modbus source's counters, set once when its poller starts.
    pub fn set_modbus(&self, stats: std::sync::Arc<crate::modbus::BusStats>) {
        let _ = self.modbus.set(stats);
    }

    /// A Modbus source's counters.
    pub fn modbus(&self) -> Option<&crate::modbus::BusStats> {
        self.modbus.get().map(|s| &**s)
    }

    /// An MQTT source's counters, set once when it starts.
    pub fn set_mqtt(&self, stats: std::sync::Arc<super::mqtt::MqttStats>) {
        let _ = self.mqtt.set(stats);
    }

    /// An MQTT source's counters.
    pub fn mqtt(&self) -> Option<&super::mqtt::MqttStats> {
        self.mqtt.get().map(|s| &**s)
    }

    /// A Semtech source's ABP counters, set once when it starts.
    pub fn set_abp(&self, stats: std::sync::Arc<super::gwmp::AbpStats>) {
        let _ = self.abp.set(stats);
    }

    /// A Semtech source's ABP counters.
    pub fn abp(&self) -> Option<&super::gwmp::AbpStats> {
        self.abp.get().map(|s| &**s)
    }

    /// Counts a bad frame and keeps it, with why, as the last one: the status page
    /// says what the count is made of.
    pub fn bad_frame(&self, why: String, len: usize, start: &[u8]) {
        Self::add(&self.bad_frames, 1);
        let note = BadFrameNote {
            at: SystemTime::now(),
            why,
            len,
            head: Bytes::copy_from_slice(&start[..start.len().min(PREVIEW_BYTES)]),
        };
        *self.last_bad.lock().unwrap_or_else(|e| e.into_inner()) = Some(note);
    }

    /// The last bad frame, if there was one.
    pub fn last_bad_frame(&self) -> Option<BadFrameNote> {
        self.last_bad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Keep the last of `frames` (the ones before are pushed out); called once per
    /// batch by the mapping thread, so one lock for up to a batch of frames.
    pub fn keep_recent(&self, frames: &[Frame]) {
        let start = frames.len().saturating_sub(RECENT_FRAMES);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        for f in &frames[start..] {
            if recent.len() == RECENT_FRAMES {
                recent.pop_front();
            }
            recent.push_back(RecentFrame {
                received_at: f.received_at,
                len: f.bytes.len(),
                // A copy: a slice could keep a large read buffer alive.
                head: Bytes::copy_from_slice(&f.bytes[..f.bytes.len().min(PREVIEW_BYTES)]),
            });
        }
    }

    /// The last few frames, oldest first.
    pub fn recent(&self) -> Vec<RecentFrame> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
    }

    /// Each radio's duty-cycle budget (gateways ordered by EUI).
    pub fn duty_cycle(&self) -> Vec<RadioDutyCycle> {
        self.duty_cycle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_duty_cycle(&self, budgets: Vec<RadioDutyCycle>) {
        *self.duty_cycle.lock().unwrap_or_else(|e| e.into_inner()) = budgets;
    }

    /// Each query's counters, in the configured order.
    pub fn polls(&self) -> Vec<PollCounts> {
        self.polls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_polls(&self, counts: Vec<PollCounts>) {
        *self.polls.lock().unwrap_or_else(|e| e.into_inner()) = counts;
    }

    pub fn state(&self) -> SourceState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_state(&self, state: SourceState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// The device is gone, or still gone after another attempt: `since` stays the
    /// time it went away, whatever the attempts since then said.
    pub fn set_waiting(&self, last_error: String) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let since = match &*state {
            SourceState::Waiting { since, .. } => *since,
            _ => SystemTime::now(),
        };
        *state = SourceState::Waiting { since, last_error };
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since(s: &SourceStatus) -> SystemTime {
        match s.state() {
            SourceState::Waiting { since, .. } => since,
            other => panic!("expected Waiting, got {other:?}"),
        }
    }

    #[test]
    fn waiting_keeps_the_time_the_device_went_away_across_attempts() {
        let s = SourceStatus::new("gps");
        let connected = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1);
        s.set_state(SourceState::Connected { since: connected });
        s.set_waiting("read failed".into());
        let gone = since(&s);
        assert!(gone > connected);
        for attempt in 0..3 {
            s.set_waiting(format!("cannot open /dev/ttyUSB0 (attempt {attempt})"));
            assert_eq!(since(&s), gone, "attempt {attempt} moved the time");
        }
        match s.state() {
            SourceState::Waiting { last_error, .. } => assert!(last_error.contains("attempt 2")),
            other => panic!("{other:?}"),
        }
        s.set_state(SourceState::Connected {
            since: SystemTime::now(),
        });
        s.set_waiting("gone again".into());
        assert!(since(&s) >= gone, "a new absence starts a new time");
    }
}
