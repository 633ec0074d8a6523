//! What the store and drain benchmarks share: the messages, scratch folders, store
//! settings, CPU time and the medians they print.

// Each benchmark uses its own part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqgate::config::{StoreConfig, Synchronous};
use mqgate::message::Message;
use mqgate::store::{Store, StoreStats};
use mqtt_proto::codec::QoS;

pub(crate) const BATCH: usize = 1024;
/// The longest any one phase may take.
pub(crate) const LIMIT: Duration = Duration::from_secs(120);
pub(crate) const OUTPUT: &str = "upstream";

/// A sensor reading as a mapping makes it: a ~29-byte topic and a ~62-byte JSON payload.
pub(crate) fn message(i: usize, qos: QoS) -> Message {
    let topic = format!("sensors/node-{:04}/environment", i % 1000);
    let payload = format!(
        "{{\"seq\":{i},\"temp\":{}.{:02},\"hum\":{}.{},\"bat\":3.{:02},\"ts\":{}}}",
        15 + i % 10,
        i % 100,
        30 + i % 50,
        i % 10,
        i % 100,
        1_764_140_000_000u64 + i as u64
    );
    Message {
        topic: topic.parse().expect("a valid topic"),
        payload: Bytes::from(payload),
        qos,
        retain: false,
    }
}

pub(crate) fn batches(n: usize, qos: QoS) -> Vec<Vec<Message>> {
    (0..n)
        .step_by(BATCH)
        .map(|start| {
            (start..(start + BATCH).min(n))
                .map(|i| message(i, qos))
                .collect()
        })
        .collect()
}

pub(crate) fn scratch(phase: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("mqgate-store-bench-{}-{phase}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

pub(crate) fn config(dir: &Path, synchronous: Synchronous) -> StoreConfig {
    StoreConfig {
        file: dir.join("messages.db"),
        synchronous,
        max_messages: 10_000_000,
        max_bytes: 0,
        ..StoreConfig::default()
    }
}

/// CPU time (user + system) of this process, or of its waited-for children.
pub(crate) fn cpu(who: i32) -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub(crate) async fn append_all(store: &Store, batches: Vec<Vec<Message>>) -> usize {
    let start = Instant::now();
    let mut n = 0;
    for b in batches {
        if start.elapsed() > LIMIT {
            break;
        }
        let len = b.len();
        let r = store.append(b).await.expect("append");
        assert_eq!(r.accepted, len, "every message fits");
        n += len;
    }
    n
}

pub(crate) async fn wait_until(
    stats: &Arc<StoreStats>,
    done: impl Fn(&StoreStats) -> bool,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        if done(stats) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

pub(crate) fn cell(v: &[f64], decimals: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{:.*} ({:.*}–{:.*})",
        decimals,
        median(v),
        decimals,
        lo,
        decimals,
        hi
    )
}

/// A process's write counters from `/proc/<who>/io` (`who`: `self` or a PID):
/// `wchar` (bytes handed to write()) and `write_bytes` (page-cache pages it
/// dirtied, which the kernel charges when they are dirtied, not at writeback),
/// less `cancelled` (dirtied pages of files truncated or deleted before writeback).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Io {
    pub(crate) wchar: u64,
    pub(crate) write_bytes: u64,
    pub(crate) cancelled: u64,
}

pub(crate) fn proc_io(who: &str) -> Io {
    let text = std::fs::read_to_string(format!("/proc/{who}/io")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(": ")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    Io {
        wchar: field("wchar"),
        write_bytes: field("write_bytes"),
        cancelled: field("cancelled_write_bytes"),
    }
}
