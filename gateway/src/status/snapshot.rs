//! `Snapshot`: every number the status API shows, read at one moment from the
//! counters the stages publish. It is the JSON of `/api/status`; `/metrics` and
//! `/healthz` are written from it too.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::broker::{BrokerSnapshot, WatchedBroker};
use crate::downlink::CommandStats;
use crate::output::embedded::OutputStats;
use crate::output::upstream::UpstreamStatus;
use crate::pipeline::{MappingStats, ReloadStatus, Running};
use crate::source::{PollCounts, RecentFrame, SourceState, SourceStatus};
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
    /// The embedded broker's counters; `None` without a `broker:` section. A
    /// snapshot from before the broker was shown reads as `None`.
    #[serde(default)]
    pub broker: Option<BrokerSnapshot>,
    /// Each source's commands (sources whose mapping has a `commands:` section).
    #[serde(default)]
    pub commands: Vec<CommandSnapshot>,
}

/// One source's commands, as `/api/status` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandSnapshot {
    pub source: String,
    /// The filter they come on.
    pub topic: String,
    pub received: u64,
    pub sent: u64,
    pub failed: u64,
    pub expired: u64,
    pub rejected: u64,
    pub dropped: u64,
    /// Waiting now, the one being sent included.
    pub queued: u64,
    /// The last results, oldest first.
    pub recent: Vec<RecentResultSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentResultSnapshot {
    /// RFC 3339, UTC.
    pub at: String,
    pub topic: String,
    pub status: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayInfo {
    pub id: String,
    pub version: String,
    pub uptime_secs: f64,
    /// When the snapshot was taken (Unix milliseconds).
    pub now_ms: i64,
    pub reloads: Reloads,
}

/// Reloads of the mappings (SIGHUP).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reloads {
    pub succeeded: u64,
    pub failed: u64,
    pub last: Option<ReloadSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadSnapshot {
    pub at_ms: i64,
    pub ok: bool,
    /// What was reloaded, or the errors that refused the reload (one per line).
    pub message: String,
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
    /// When the last frame was read (Unix milliseconds); `None` before the first.
    pub last_frame_ms: Option<i64>,
    /// The last few frames, oldest first.
    pub recent: Vec<FramePreview>,
    /// The last bad frame and why it was bad; `None` before the first.
    #[serde(default)]
    pub last_bad_frame: Option<BadFrameSnapshot>,
    /// A transmitting radio's air time in the last hour, per sub-band (a modem's
    /// own, or each LoRa gateway's); empty for other sources.
    #[serde(default)]
    pub duty_cycle: Vec<RadioSnapshot>,
    /// A Modbus source's bus and devices; absent for other sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modbus: Option<crate::modbus::BusSnapshot>,
    /// An MQTT source's messages, echoes skipped, and a network server's events;
    /// absent for other sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<crate::source::mqtt::MqttSnapshot>,
    /// A Semtech source's registered ABP devices: uplinks accepted, copies
    /// gathered, unknown DevAddrs, and refusals by reason; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lorawan: Option<crate::source::gwmp::AbpSnapshot>,
    /// A serial source's queries (`poll:`) that got no answer in time.
    #[serde(default)]
    pub poll_timeouts: u64,
    /// Each query's counters: `ok`, `timeouts`, `late`, `skipped` and
    /// `last_latency_ms`; empty without `poll:`.
    #[serde(default)]
    pub polls: Vec<PollCounts>,
}

/// One radio's duty-cycle budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RadioSnapshot {
    /// `modem`, or a LoRa gateway's EUI.
    pub radio: String,
    pub sub_bands: Vec<crate::airtime::SubBandBudget>,
}

/// What a source could not make a frame of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadFrameSnapshot {
    /// E.g. `checksum: NMEA checksum 0x4A, computed 0x4B`.
    pub why: String,
    /// When, and the first bytes (empty where the source reports no bytes).
    #[serde(flatten)]
    pub frame: FramePreview,
}

/// The start of a recent frame, as hex and as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FramePreview {
    pub at_ms: i64,
    /// The frame's whole length in bytes (the preview shows at most 64).
    pub len: usize,
    /// `24 47 50 ...`: the first bytes in hex, space-separated.
    pub hex: String,
    /// The same bytes as text: printable ASCII as it is, any other byte as `.`.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingSnapshot {
    pub source: String,
    pub mapped: u64,
    pub messages: u64,
    pub filtered: u64,
    /// Frames sent to the dead-letter topic.
    pub failed: u64,
    /// The mapping file; `None` when the source has none (frames published as they are).
    pub mapping_file: Option<String>,
    pub script: Option<String>,
    /// The last frame that could not be mapped (cleared by a reload).
    pub last_error: Option<ScriptErrorSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptErrorSnapshot {
    pub at_ms: i64,
    /// `file:line:column: what happened`.
    pub message: String,
    /// The script line, when known.
    pub line: Option<u64>,
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
    /// Free bytes on the store's file system.
    pub disk_free_bytes: u64,
    /// Less than `store.min_free_bytes` is free: the store counts as full.
    pub disk_low: bool,
    /// Why the last write to the store failed; `None` once it writes again.
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
    /// Resends that may arrive twice (QoS 1, or QoS 2 after the broker lost our session).
    pub possible_duplicates: Option<u64>,
    pub connects: Option<u64>,
    /// Connects on which the broker had lost our persistent session.
    pub sessions_lost: Option<u64>,
    /// `upstream.max_inflight` as configured.
    pub max_inflight: Option<u64>,
    /// Messages allowed in flight now (halved after cut-offs).
    pub window: Option<u64>,
    /// Connections the broker closed right after a burst.
    pub cutoffs: Option<u64>,
    /// Most QoS 2 messages at once awaiting our PUBREL.
    pub awaiting_release_max: Option<u64>,
    /// Why the upstream connection failed last; `None` once connected again.
    pub last_error: Option<String>,
    /// When that was (Unix milliseconds).
    pub last_error_at_ms: Option<i64>,
}

/// The shared counters a snapshot is read from: cheap handles, so that the HTTP
/// server can keep them while the gateway owns `Running`.
#[derive(Debug, Clone)]
pub struct Watched {
    pub gateway_id: String,
    pub started: Instant,
    pub sources: Vec<Arc<SourceStatus>>,
    pub mappings: Vec<Arc<MappingStats>>,
    pub store: Option<Arc<StoreStats>>,
    pub embedded: Option<Arc<OutputStats>>,
    pub upstream: Option<Arc<UpstreamStatus>>,
    pub reloads: Arc<ReloadStatus>,
    /// The embedded broker's own counters and listeners, when it runs.
    pub broker: Option<WatchedBroker>,
    pub commands: Vec<Arc<CommandStats>>,
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
            reloads: running.reloads.clone(),
            broker: running.broker.as_ref().map(WatchedBroker::new),
            commands: running.commands.clone(),
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
                reloads: reloads(&w.reloads),
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
            broker: w.broker.as_ref().map(WatchedBroker::snapshot),
            commands: w.commands.iter().map(|c| commands(c)).collect(),
        }
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

fn commands(c: &CommandStats) -> CommandSnapshot {
    let get = CommandStats::get;
    CommandSnapshot {
        source: c.source.clone(),
        topic: c.topic.clone(),
        received: get(&c.received),
        sent: get(&c.sent),
        failed: get(&c.failed),
        expired: get(&c.expired),
        rejected: get(&c.rejected),
        dropped: get(&c.dropped),
        queued: get(&c.queued),
        recent: c
            .recent()
            .into_iter()
            .map(|r| RecentResultSnapshot {
                at: r.at,
                topic: r.topic,
                status: r.status.as_str().to_string(),
                error: r.error,
            })
            .collect(),
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
    let recent = s.recent();
    SourceSnapshot {
        id: s.id.clone(),
        state: state.to_string(),
        since_ms,
        last_error,
        bytes: SourceStatus::get(&s.bytes),
        frames: SourceStatus::get(&s.frames),
        bad_frames: SourceStatus::get(&s.bad_frames),
        reopens: SourceStatus::get(&s.reopens),
        last_frame_ms: recent.last().map(|f| unix_ms(f.received_at)),
        recent: recent.iter().map(preview).collect(),
        last_bad_frame: s.last_bad_frame().map(|bad| BadFrameSnapshot {
            frame: preview(&RecentFrame {
                received_at: bad.at,
                len: bad.len,
                head: bad.head,
            }),
            why: bad.why,
        }),
        duty_cycle: s
            .duty_cycle()
            .into_iter()
            .map(|r| RadioSnapshot {
                radio: r.radio,
                sub_bands: r.sub_bands,
            })
            .collect(),
        modbus: s.modbus().map(|m| m.snapshot()),
        mqtt: s.mqtt().map(|m| m.snapshot()),
        lorawan: s.abp().map(|a| a.snapshot()),
        poll_timeouts: SourceStatus::get(&s.poll_timeouts),
        polls: s.polls(),
    }
}

fn preview(f: &RecentFrame) -> FramePreview {
    let mut hex = String::with_capacity(f.head.len() * 3);
    for (i, b) in f.head.iter().enumerate() {
        if i > 0 {
            hex.push(' ');
        }
        hex.push_str(&format!("{b:02x}"));
    }
    let text = f
        .head
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    FramePreview {
        at_ms: unix_ms(f.received_at),
        len: f.len,
        hex,
        text,
    }
}

fn reloads(r: &ReloadStatus) -> Reloads {
    use std::sync::atomic::Ordering::Relaxed;
    Reloads {
        succeeded: r.succeeded.load(Relaxed),
        failed: r.failed.load(Relaxed),
        last: r.last().map(|l| ReloadSnapshot {
            at_ms: unix_ms(l.at),
            ok: l.ok,
            message: l.message,
        }),
    }
}

fn mapping(m: &MappingStats) -> MappingSnapshot {
    let files = m.files();
    MappingSnapshot {
        source: m.source.clone(),
        mapped: MappingStats::get(&m.mapped),
        messages: MappingStats::get(&m.messages),
        filtered: MappingStats::get(&m.filtered),
        failed: MappingStats::get(&m.failed),
        mapping_file: files.mapping.map(|p| p.display().to_string()),
        script: files.script.map(|p| p.display().to_string()),
        last_error: m.last_error().map(|e| ScriptErrorSnapshot {
            at_ms: unix_ms(e.at),
            message: e.message,
            line: e.line,
        }),
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
        disk_free_bytes: s.disk_free.load(Relaxed),
        disk_low: s.disk_low.load(Relaxed),
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
        possible_duplicates: None,
        connects: None,
        sessions_lost: None,
        max_inflight: None,
        window: None,
        cutoffs: None,
        awaiting_release_max: None,
        last_error: None,
        last_error_at_ms: None,
    }
}

fn upstream(u: &UpstreamStatus) -> OutputSnapshot {
    use std::sync::atomic::Ordering::Relaxed;
    let error = u
        .last_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    OutputSnapshot {
        name: "upstream".to_string(),
        connected: u.connected.load(Relaxed),
        published: u.published.load(Relaxed),
        failed: None,
        in_flight: Some(u.in_flight.load(Relaxed)),
        resent: Some(u.resent.load(Relaxed)),
        possible_duplicates: Some(u.possible_duplicates.load(Relaxed)),
        connects: Some(u.connects.load(Relaxed)),
        sessions_lost: Some(u.sessions_lost.load(Relaxed)),
        max_inflight: Some(u.max_inflight.load(Relaxed)),
        window: Some(u.window.load(Relaxed)),
        cutoffs: Some(u.cutoffs.load(Relaxed)),
        awaiting_release_max: Some(u.awaiting_release_max.load(Relaxed)),
        last_error: error.as_ref().map(|(text, _)| text.clone()),
        last_error_at_ms: error.as_ref().map(|(_, at)| unix_ms(*at)),
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
            mappings: vec![Arc::new(MappingStats::new(
                "gps",
                crate::pipeline::MappingFiles::default(),
            ))],
            store: Some(Arc::new(StoreStats::default())),
            embedded: Some(Arc::new(OutputStats::default())),
            upstream: Some(Arc::new(UpstreamStatus::default())),
            reloads: Arc::new(ReloadStatus::default()),
            broker: None,
            commands: vec![Arc::new(CommandStats::new("relay", "cmd/relay/#"))],
        }
    }

    #[test]
    fn a_radio_shows_its_air_time_left_per_sub_band() {
        let w = watched();
        assert!(Snapshot::of(&w).sources[0].duty_cycle.is_empty());
        let mut duty = crate::airtime::DutyCycle::new(crate::airtime::Region::Eu868);
        let now = std::time::Instant::now();
        duty.try_take(868_100_000, Duration::from_millis(1500), now)
            .expect("within the budget");
        w.sources[0].set_duty_cycle(vec![crate::source::RadioDutyCycle {
            radio: "modem".into(),
            sub_bands: duty.budget(now),
        }]);
        let snap = Snapshot::of(&w).sources.remove(0);
        let band = snap.duty_cycle[0]
            .sub_bands
            .iter()
            .find(|b| b.low_hz <= 868_100_000 && 868_100_000 < b.high_hz)
            .expect("the sub-band of 868.1 MHz");
        assert!((band.used_secs - 1.5).abs() < 1e-9, "{band:?}");
        assert!((band.remaining_secs - 34.5).abs() < 1e-9, "{band:?}");
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["duty_cycle"][0]["radio"], "modem");
    }

    #[test]
    fn commands_show_their_counts_queue_and_last_results() {
        use crate::downlink::Status;
        let w = watched();
        let c = &w.commands[0];
        CommandStats::add(&c.received, 3);
        c.count(Status::Sent, "cmd/relay/on", None);
        c.count(Status::Rejected, "cmd/relay/on", Some("full"));
        c.queued.store(1, Relaxed);
        let snap = Snapshot::of(&w).commands.remove(0);
        assert_eq!(snap.source, "relay");
        assert_eq!(snap.topic, "cmd/relay/#");
        assert_eq!(
            (
                snap.received,
                snap.sent,
                snap.rejected,
                snap.failed,
                snap.queued
            ),
            (3, 1, 1, 0, 1)
        );
        assert_eq!(snap.recent.len(), 2);
        assert_eq!(snap.recent[1].status, "rejected");
        assert_eq!(snap.recent[1].error.as_deref(), Some("full"));
    }

    #[test]
    fn a_bad_frame_is_counted_and_kept_with_why_and_its_first_bytes() {
        let w = watched();
        assert_eq!(Snapshot::of(&w).sources[0].last_bad_frame, None);
        w.sources[0].bad_frame("garbage: 2 bytes before a sync".into(), 2, &[0x4e, 0x0b]);
        let long = vec![b'x'; 200];
        w.sources[0].bad_frame("overlong: longer than 100 bytes".into(), 101, &long);
        let source = &Snapshot::of(&w).sources[0];
        assert_eq!(source.bad_frames, 2);
        let bad = source.last_bad_frame.as_ref().expect("the last bad frame");
        assert_eq!(bad.why, "overlong: longer than 100 bytes");
        assert_eq!(bad.frame.len, 101);
        assert_eq!(bad.frame.text, "x".repeat(64), "its first 64 bytes");
        let json = serde_json::to_value(source).unwrap();
        assert_eq!(
            json["last_bad_frame"]["why"],
            "overlong: longer than 100 bytes"
        );
        assert_eq!(json["last_bad_frame"]["len"], 101);
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

    fn frame(bytes: &[u8]) -> crate::frame::Frame {
        crate::frame::Frame {
            source: Arc::from("gps"),
            received_at: UNIX_EPOCH + Duration::from_millis(1_000),
            bytes: bytes::Bytes::copy_from_slice(bytes),
            meta: Default::default(),
        }
    }

    #[test]
    fn sources_show_their_last_frames_as_hex_and_text() {
        let w = watched();
        let long = vec![b'A'; 100];
        let mut frames: Vec<_> = (0..6).map(|i| frame(format!("f{i}").as_bytes())).collect();
        frames.push(frame(b"$GP\r\n\x00\xff"));
        frames.push(frame(&long));
        w.sources[0].keep_recent(&frames[..3]);
        w.sources[0].keep_recent(&frames[3..]);
        let s = Snapshot::of(&w);
        let recent = &s.sources[0].recent;
        assert_eq!(recent.len(), crate::source::RECENT_FRAMES);
        // The last five of all eight, oldest first.
        assert_eq!(recent[0].text, "f3");
        assert_eq!(recent[3].hex, "24 47 50 0d 0a 00 ff");
        assert_eq!(recent[3].text, "$GP....");
        assert_eq!(recent[4].len, 100);
        assert_eq!(recent[4].text.len(), crate::source::PREVIEW_BYTES);
        assert_eq!(s.sources[0].last_frame_ms, Some(1_000));
    }

    #[test]
    fn mappings_show_their_files_and_last_error_with_its_line() {
        let w = watched();
        w.mappings[0].set_files(crate::pipeline::MappingFiles {
            mapping: Some("mappings/gps.yaml".into()),
            script: Some("scripts/nmea.rhai".into()),
        });
        assert_eq!(Snapshot::of(&w).mappings[0].last_error, None);
        let err = crate::mapping::MapError::Runtime {
            at: "scripts/nmea.rhai:14:9".into(),
            message: "no such field".into(),
        };
        w.mappings[0].set_last_error(&err);
        let m = Snapshot::of(&w).mappings.remove(0);
        assert_eq!(m.mapping_file.as_deref(), Some("mappings/gps.yaml"));
        assert_eq!(m.script.as_deref(), Some("scripts/nmea.rhai"));
        let e = m.last_error.unwrap();
        assert_eq!(e.line, Some(14));
        assert_eq!(
            e.message,
            "scripts/nmea.rhai:14:9: runtime error: no such field"
        );
        w.mappings[0].clear_last_error();
        assert_eq!(Snapshot::of(&w).mappings[0].last_error, None);
    }

    #[test]
    fn an_empty_store_has_no_oldest_age() {
        let s = Snapshot::of(&watched());
        assert_eq!(s.store.unwrap().oldest_age_secs, None);
    }

    #[test]
    fn without_the_embedded_broker_the_json_says_null() {
        let s = Snapshot::of(&watched());
        assert_eq!(s.broker, None);
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["broker"].is_null(), "{json}");
        // A snapshot written before the broker was shown still reads.
        let mut old = json;
        old.as_object_mut().unwrap().remove("broker");
        let back: Snapshot = serde_json::from_value(old).unwrap();
        assert_eq!(back, s);
    }

    #[tokio::test]
    async fn a_running_broker_shows_its_listener_and_its_live_connections() {
        let config = broker_lite::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            sys_interval_secs: 0,
            ..Default::default()
        };
        let broker = broker_lite::Broker::start(config).await.expect("a broker");
        let addr = broker.local_addr();
        let mut w = watched();
        w.broker = Some(WatchedBroker::new(&broker));

        let before = Snapshot::of(&w).broker.expect("a broker part");
        assert_eq!(before.listeners, [addr.to_string()]);
        assert_eq!(before.connections, 0);

        // An open socket without a CONNECT counts as a connection, not a client.
        let socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let deadline = Instant::now() + Duration::from_secs(10);
        let during = loop {
            let b = Snapshot::of(&w).broker.unwrap();
            if b.connections == 1 || Instant::now() > deadline {
                break b;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!((during.connections, during.connections_total), (1, 1));
        assert_eq!(during.clients_connected, 0);
        drop(socket);
        broker.shutdown().await;
    }

    #[test]
    fn a_polled_instrument_shows_each_querys_counters() {
        let w = watched();
        assert!(Snapshot::of(&w).sources[0].polls.is_empty());
        w.sources[0].poll_timeouts.store(2, Relaxed);
        w.sources[0].set_polls(vec![PollCounts {
            query: "reading".into(),
            ok: 5,
            timeouts: 2,
            late: 1,
            skipped: 0,
            last_latency_ms: Some(42),
        }]);
        let json = serde_json::to_value(Snapshot::of(&w)).unwrap();
        let source = &json["sources"][0];
        assert_eq!(source["poll_timeouts"], 2);
        assert_eq!(
            source["polls"][0],
            serde_json::json!({
                "query": "reading", "ok": 5, "timeouts": 2, "late": 1, "skipped": 0,
                "last_latency_ms": 42
            })
        );
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
