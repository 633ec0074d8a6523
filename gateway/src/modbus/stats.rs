//! What a Modbus bus and each of its devices report: polls, faults by kind,
//! exceptions by code and field, availability, and how busy the bus is.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::device::Device;
use super::transport::exception_name;

/// Counters of one bus.
#[derive(Debug)]
pub struct BusStats {
    started: Instant,
    /// Time transactions held the bus (request written to answer or deadline), µs.
    pub busy_us: AtomicU64,
    pub transactions: AtomicU64,
    pub devices: Vec<DeviceStats>,
}

/// Counters of one device.
#[derive(Debug)]
pub struct DeviceStats {
    pub name: String,
    pub unit: u8,
    pub polls_ok: AtomicU64,
    pub polls_failed: AtomicU64,
    /// Polls that started more than the grace after their time.
    pub late: AtomicU64,
    /// Poll times that passed while the bus was busy: never run.
    pub skipped: AtomicU64,
    pub no_answer: AtomicU64,
    pub crc_errors: AtomicU64,
    /// Answers too short, or of the wrong size or kind.
    pub garbled: AtomicU64,
    /// Requests asked again (after no answer, a bad answer, or "busy").
    pub retries: AtomicU64,
    pub writes_ok: AtomicU64,
    pub writes_failed: AtomicU64,
    /// The last poll's latency (first request to last answer), µs.
    pub last_latency_us: AtomicU64,
    pub available: AtomicBool,
    /// (exception code, field) → count.
    exceptions: Mutex<BTreeMap<(u8, String), u64>>,
    last_error: Mutex<Option<String>>,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl BusStats {
    pub fn new(devices: &[Device]) -> BusStats {
        BusStats {
            started: Instant::now(),
            busy_us: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            devices: devices
                .iter()
                .map(|d| DeviceStats {
                    name: d.name.clone(),
                    unit: d.unit,
                    polls_ok: AtomicU64::new(0),
                    polls_failed: AtomicU64::new(0),
                    late: AtomicU64::new(0),
                    skipped: AtomicU64::new(0),
                    no_answer: AtomicU64::new(0),
                    crc_errors: AtomicU64::new(0),
                    garbled: AtomicU64::new(0),
                    retries: AtomicU64::new(0),
                    writes_ok: AtomicU64::new(0),
                    writes_failed: AtomicU64::new(0),
                    last_latency_us: AtomicU64::new(0),
                    // Until it fails to answer.
                    available: AtomicBool::new(true),
                    exceptions: Mutex::new(BTreeMap::new()),
                    last_error: Mutex::new(None),
                })
                .collect(),
        }
    }

    /// One transaction that held the bus for `took`.
    pub fn transaction(&self, took: Duration) {
        add(&self.transactions, 1);
        add(&self.busy_us, took.as_micros() as u64);
    }

    /// Time the bus was busy / time since the poller started, 0 to 1.
    pub fn utilisation(&self) -> f64 {
        let elapsed = self.started.elapsed().as_micros().max(1) as f64;
        (get(&self.busy_us) as f64 / elapsed).min(1.0)
    }

    /// The status API's view of the bus.
    pub fn snapshot(&self) -> BusSnapshot {
        BusSnapshot {
            utilisation: (self.utilisation() * 10_000.0).round() / 10_000.0,
            transactions: get(&self.transactions),
            devices: self.devices.iter().map(DeviceStats::snapshot).collect(),
        }
    }
}

/// A bus as the status API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusSnapshot {
    /// Time the bus was busy / time elapsed, 0 to 1.
    pub utilisation: f64,
    pub transactions: u64,
    pub devices: Vec<DeviceSnapshot>,
}

/// A device as the status API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSnapshot {
    pub name: String,
    pub unit: u8,
    pub available: bool,
    pub polls_ok: u64,
    pub polls_failed: u64,
    pub late: u64,
    pub skipped: u64,
    pub no_answer: u64,
    pub crc_errors: u64,
    pub garbled: u64,
    pub retries: u64,
    pub writes_ok: u64,
    pub writes_failed: u64,
    pub last_latency_ms: f64,
    pub exceptions: Vec<ExceptionCount>,
    pub last_error: Option<String>,
}

/// Exceptions of one code for one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionCount {
    pub code: u8,
    pub name: String,
    pub field: String,
    pub count: u64,
}

impl DeviceStats {
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        add(counter, n);
    }

    /// The device answered `code` to a request for `fields`.
    pub fn exception(&self, code: u8, fields: &[&str]) {
        let mut map = self.exceptions.lock().unwrap_or_else(|e| e.into_inner());
        for f in fields {
            *map.entry((code, (*f).to_string())).or_default() += 1;
        }
    }

    pub fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    /// Exceptions counted, by code and field.
    pub fn exceptions(&self) -> Vec<ExceptionCount> {
        self.exceptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((code, field), count)| ExceptionCount {
                code: *code,
                name: exception_name(*code).to_string(),
                field: field.clone(),
                count: *count,
            })
            .collect()
    }

    pub fn snapshot(&self) -> DeviceSnapshot {
        DeviceSnapshot {
            name: self.name.clone(),
            unit: self.unit,
            available: self.is_available(),
            polls_ok: get(&self.polls_ok),
            polls_failed: get(&self.polls_failed),
            late: get(&self.late),
            skipped: get(&self.skipped),
            no_answer: get(&self.no_answer),
            crc_errors: get(&self.crc_errors),
            garbled: get(&self.garbled),
            retries: get(&self.retries),
            writes_ok: get(&self.writes_ok),
            writes_failed: get(&self.writes_failed),
            last_latency_ms: get(&self.last_latency_us) as f64 / 1000.0,
            exceptions: self.exceptions(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}
