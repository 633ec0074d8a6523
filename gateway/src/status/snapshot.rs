//! `Snapshot`: every number the status API shows, read at one moment from the
//! counters the stages publish. It is the JSON of `/api/status`; `/metrics` and
//! `/healthz` are written from it too.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::output::embedded::OutputStats;
use crate::output::upstream::UpstreamStatus;
use crate::pipeline::{MappingStats, Running};
use crate::source::{SourceState, SourceStatus};
use crate::store::StoreStats;

/// The whole status, as `/api/status` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub gateway: GatewayInfo,
    pub sources: Vec<SourceSnapshot>,
    pub mappings: Vec<MappingSnapshot>,
    /// `None` when nothing is published (no broker and no upstream).
    pub store: Option<StoreSnapshot>,
    pub outputs: Vec<OutputSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayInfo {
    pub id: String,
    pub version: String,
    pub uptime_secs: f64,
    /// When the snapshot was taken (Unix milliseconds).
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    pub id: String,
    /// `starting`, `connected`, `waiting` (reopening with back-off) or `finished`.
    pub state: String,
    /// Since when the state holds (Unix milliseconds); `None` for `starting` and `finished`.
    pub since_ms: Option<i64>,
    /// Why the source is waiting.
    pub last_error: Option<String>,
    pub bytes: u64,
    pub frames: u64,
    pub bad_frames: u64,
    pub reopens: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingSnapshot {
    pub source: String,
    pub mapped: u64,
    pub messages: u64,
    pub filtered: u64,
    /// Frames sent to the dead-letter topic.
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreSnapshot {
    pub depth: u64,
    pub bytes: u64,
    /// Age of the oldest message, `None` when the store is empty.
    pub oldest_age_secs: Option<f64>,
    pub appended: u64,
    pub commits: u64,
    pub evicted: Evictions,
    pub blocked: bool,
    pub last_error: Option<String>,
}

/// Messages dropped by a limit of the store, by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evictions {
    /// Evicted to make room (`when_full: drop_oldest`).
    pub drop_oldest: u64,
    /// Refused because the store was full (`when_full: drop_newest`).
    pub drop_newest: u64,
    /// Older than `max_age`.
    pub max_age: u64,
    /// QoS 0 messages an output never got while it was down.
    pub qos0_while_down: u64,
}

impl Evictions {
    /// Each kind with its name, as the metric's `reason` label.
    pub fn by_reason(&self) -> [(&'static str, u64); 4] {
        [
            ("drop_oldest", self.drop_oldest),
            ("drop_newest", self.drop_newest),
            ("max_age", self.max_age),
            ("qos0_while_down", self.qos0_while_down),
        ]
    }
}

/// One output. Counters an output does not keep are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSnapshot {
    /// `embedded` or `upstream`.
    pub name: String,
    pub connected: bool,
    /// Messages acknowledged (upstream) or taken by the broker (embedded).
    pub published: u64,
    /// Messages the embedded broker refused (invalid topic).
    pub failed: Option<u64>,
    pub in_flight: Option<u64>,
    pub resent: Option<u64>,
    pub connects: Option<u64>,
    pub last_error: Option<String>,
}

/// The shared counters a snapshot is read from: cheap handles, so that the HTTP
/// server can keep them while the gateway owns `Running`.
#[derive(Clone)]
pub struct Watched {
    pub gateway_id: String,
    pub started: Instant,
    pub sources: Vec<Arc<SourceStatus>>,
    pub mappings: Vec<Arc<MappingStats>>,
    pub store: Option<Arc<StoreStats>>,
    pub embedded: Option<Arc<OutputStats>>,
    pub upstream: Option<Arc<UpstreamStatus>>,
}

impl Watched {
    pub fn new(running: &Running) -> Watched {
        Watched {
            gateway_id: running.gateway_id.clone(),
            started: running.started,
            sources: running.sources.clone(),
            mappings: running.mappings.clone(),
            store: running.store.as_ref().map(|s| s.stats().clone()),
            embedded: running.embedded.clone(),
            upstream: running.upstream.clone(),
        }
    }
}

impl Snapshot {
    pub fn of_running(running: &Running) -> Snapshot {
        Snapshot::of(&Watched::new(running))
    }

    pub fn of(w: &Watched) -> Snapshot {
        let now = SystemTime::now();
        Snapshot {
            gateway: GatewayInfo {
                id: w.gateway_id.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                uptime_secs: w.started.elapsed().as_secs_f64(),
                now_ms: unix_ms(now),
            },
            sources: w.sources.iter().map(|s| source(s)).collect(),
            mappings: w.mappings.iter().map(|m| mapping(m)).collect(),
            store: w.store.as_deref().map(|s| store(s, unix_ms(now))),
            outputs: w
                .embedded
                .iter()
                .map(|e| embedded(e))
                .chain(w.upstream.iter().map(|u| upstream(u)))
                .collect(),
        }
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

fn source(s: &SourceStatus) -> SourceSnapshot {
    let (state, since_ms, last_error) = match s.state() {
        SourceState::Starting => ("starting", None, None),
        SourceState::Connected { since } => ("connected", Some(unix_ms(since)), None),
        SourceState::Waiting { since, last_error } => {
            ("waiting", Some(unix_ms(since)), Some(last_error))
        }
        SourceState::Finished => ("finished", None, None),
    };
    SourceSnapshot {
        id: s.id.clone(),
        state: state.to_string(),
        since_ms,
        last_error,
        bytes: SourceStatus::get(&s.bytes),
        frames: SourceStatus::get(&s.frames),
        bad_frames: SourceStatus::get(&s.bad_frames),
        reopens: SourceStatus::get(&s.reopens),
    }
}

fn mapping(m: &MappingStats) -> MappingSnapshot {
    MappingSnapshot {
        source: m.source.clone(),
        mapped: MappingStats::get(&m.mapped),
        messages: MappingStats::get(&m.messages),
        filtered: MappingStats::get(&m.filtered),
        failed: MappingStats::get(&m.failed),
    }
}

fn store(s: &StoreStats, now_ms: i64) -> StoreSnapshot {
    use std::sync::atomic::Ordering::Relaxed;
    let oldest = s.oldest_ms.load(Relaxed);
    StoreSnapshot {
        depth: StoreStats::get(&s.depth),
        bytes: StoreStats::get(&s.bytes),
        oldest_age_secs: (oldest != 0).then(|| (now_ms - oldest).max(0) as f64 / 1000.0),
        appended: StoreStats::get(&s.appended),
        commits: StoreStats::get(&s.commits),
        evicted: Evictions {
            drop_oldest: StoreStats::get(&s.evicted_oldest),
            drop_newest: StoreStats::get(&s.refused_full),
            max_age: StoreStats::get(&s.expired),
            qos0_while_down: StoreStats::get(&s.qos0_dropped),
        },
        blocked: s.blocked.load(Relaxed),
        last_error: s
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    }
}

fn embedded(e: &OutputStats) -> OutputSnapshot {
    use std::sync::atomic::Ordering::Relaxed;
    // The broker runs in the same process: there is no link to lose.
    OutputSnapshot {
        name: "embedded".to_string(),
        connected: true,
        published: e.published.load(Relaxed),
        failed: Some(e.failed.load(Relaxed)),
        in_flight: None,
        resent: None,
        connects: None,
        last_error: None,
    }
}

fn upstream(u: &UpstreamStatus) -> OutputSnapshot {
    use std::sync::atomic::Ordering::Relaxed;
    OutputSnapshot {
        name: "upstream".to_string(),
        connected: u.connected.load(Relaxed),
        published: u.published.load(Relaxed),
        failed: None,
        in_flight: Some(u.in_flight.load(Relaxed)),
        resent: Some(u.resent.load(Relaxed)),
        connects: Some(u.connects.load(Relaxed)),
        last_error: u
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    fn watched() -> Watched {
        Watched {
            gateway_id: "pi-1".into(),
            started: Instant::now() - Duration::from_secs(5),
            sources: vec![Arc::new(SourceStatus::new("gps"))],
            mappings: vec![Arc::new(MappingStats {
                source: "gps".into(),
                ..MappingStats::default()
            })],
            store: Some(Arc::new(StoreStats::default())),
            embedded: Some(Arc::new(OutputStats::default())),
            upstream: Some(Arc::new(UpstreamStatus::default())),
        }
    }

    #[test]
    fn a_snapshot_reads_every_counter_and_state() {
        let w = watched();
        w.sources[0].frames.store(7, Relaxed);
        w.sources[0].set_state(SourceState::Waiting {
            since: UNIX_EPOCH + Duration::from_secs(100),
            last_error: "unplugged".into(),
        });
        w.mappings[0].messages.store(3, Relaxed);
        let store = w.store.as_ref().unwrap();
        store.depth.store(2, Relaxed);
        store.expired.store(4, Relaxed);
        store
            .oldest_ms
            .store(unix_ms(SystemTime::now()) - 10_000, Relaxed);
        w.upstream.as_ref().unwrap().in_flight.store(9, Relaxed);

        let s = Snapshot::of(&w);
        assert_eq!(s.gateway.id, "pi-1");
        assert!(s.gateway.uptime_secs >= 5.0);
        assert_eq!(s.sources[0].state, "waiting");
        assert_eq!(s.sources[0].since_ms, Some(100_000));
        assert_eq!(s.sources[0].last_error.as_deref(), Some("unplugged"));
        assert_eq!(s.sources[0].frames, 7);
        assert_eq!(s.mappings[0].messages, 3);
        let st = s.store.unwrap();
        assert_eq!(st.depth, 2);
        assert_eq!(st.evicted.max_age, 4);
        let age = st.oldest_age_secs.unwrap();
        assert!((9.0..20.0).contains(&age), "age {age}");
        assert_eq!(s.outputs[0].name, "embedded");
        assert_eq!(s.outputs[1].name, "upstream");
        assert_eq!(s.outputs[1].in_flight, Some(9));
        assert!(!s.outputs[1].connected);
    }

    #[test]
    fn an_empty_store_has_no_oldest_age() {
        let s = Snapshot::of(&watched());
        assert_eq!(s.store.unwrap().oldest_age_secs, None);
    }

    #[test]
    fn the_json_round_trips_and_names_its_fields() {
        let s = Snapshot::of(&watched());
        let text = serde_json::to_string(&s).unwrap();
        for field in [
            "\"uptime_secs\"",
            "\"bad_frames\"",
            "\"qos0_while_down\"",
            "\"in_flight\"",
        ] {
            assert!(text.contains(field), "{field} missing in {text}");
        }
        let back: Snapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
    }
}
