//! `/metrics`: a snapshot in the Prometheus text exposition format (0.0.4).

use std::fmt::Write;

use super::snapshot::Snapshot;

/// The `Content-Type` of the text format.
pub(super) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes one metric family: its `# HELP` and `# TYPE` lines, then its samples.
pub(super) struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    pub(super) fn new(
        out: &'a mut String,
        name: &'static str,
        kind: &str,
        help: &str,
    ) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    pub(super) fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<f64>) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value.into()));
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value as the text exposition format spells it: `+Inf`, `-Inf` and
/// `NaN` for the special values (Rust would write `inf`).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The states a source can be in, as `mqgate_source_state`'s `state` label.
const SOURCE_STATES: [&str; 4] = ["starting", "connected", "waiting", "finished"];

/// The whole exposition for `s`.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let o = &mut out;
    let g = &s.gateway;
    Family::new(
        o,
        "mqgate_info",
        "gauge",
        "Gateway id and version; always 1.",
    )
    .sample(&[("gateway", &g.id), ("version", &g.version)], 1.0);
    Family::new(
        o,
        "mqgate_uptime_seconds",
        "gauge",
        "Seconds since the gateway started.",
    )
    .sample(&[], g.uptime_secs);
    let mut f = Family::new(
        o,
        "mqgate_reloads_total",
        "counter",
        "Reloads of the mappings (SIGHUP), by result: ok, or failed (the running mappings stayed).",
    );
    f.sample(&[("result", "ok")], g.reloads.succeeded as f64);
    f.sample(&[("result", "failed")], g.reloads.failed as f64);

    let mut f = Family::new(
        o,
        "mqgate_source_state",
        "gauge",
        "1 for the state the source is in (starting, connected, waiting, finished), else 0.",
    );
    for src in &s.sources {
        for state in SOURCE_STATES {
            f.sample(
                &[("source", &src.id), ("state", state)],
                flag(src.state == state),
            );
        }
    }
    type SourceCounter = fn(&super::snapshot::SourceSnapshot) -> u64;
    let source_counters: [(&str, &str, SourceCounter); 4] = [
        (
            "mqgate_source_bytes_total",
            "Bytes read from the device.",
            |x| x.bytes,
        ),
        (
            "mqgate_source_frames_total",
            "Frames the framer produced.",
            |x| x.frames,
        ),
        (
            "mqgate_source_bad_frames_total",
            "Frames rejected by the framer (checksum, overlong, garbage).",
            |x| x.bad_frames,
        ),
        (
            "mqgate_source_reopens_total",
            "Times the device was opened again after the first time.",
            |x| x.reopens,
        ),
    ];
    for (name, help, get) in source_counters {
        let mut f = Family::new(o, name, "counter", help);
        for src in &s.sources {
            f.sample(&[("source", &src.id)], get(src) as f64);
        }
    }

    let mut f = Family::new(
        o,
        "mqgate_source_last_frame_timestamp_seconds",
        "gauge",
        "Unix time of the source's last frame (absent before the first).",
    );
    for src in &s.sources {
        if let Some(ms) = src.last_frame_ms {
            f.sample(&[("source", &src.id)], ms as f64 / 1000.0);
        }
    }

    let polls = || {
        s.sources
            .iter()
            .flat_map(|src| src.polls.iter().map(move |p| (src.id.as_str(), p)))
    };
    if polls().next().is_some() {
        let mut f = Family::new(
            o,
            "mqgate_source_poll_total",
            "counter",
            "A serial source's queries (poll:) by outcome: ok (answered in time) or timeout for each one written; late: written past its time (also ok or timeout); skipped: its time passed while the port was busy or closed, not written.",
        );
        for (source, p) in polls() {
            for (outcome, n) in [
                ("ok", p.ok),
                ("timeout", p.timeouts),
                ("late", p.late),
                ("skipped", p.skipped),
            ] {
                f.sample(
                    &[
                        ("source", source),
                        ("query", &p.query),
                        ("outcome", outcome),
                    ],
                    n as f64,
                );
            }
        }
        let mut f = Family::new(
            o,
            "mqgate_source_poll_latency_seconds",
            "gauge",
            "Time from writing a query to its answer, for the last answer (absent before the first).",
        );
        for (source, p) in polls() {
            if let Some(ms) = p.last_latency_ms {
                f.sample(
                    &[("source", source), ("query", &p.query)],
                    ms as f64 / 1000.0,
                );
            }
        }
    }

    type MappingCounter = fn(&super::snapshot::MappingSnapshot) -> u64;
    let mapping_counters: [(&str, &str, MappingCounter); 4] = [
        (
            "mqgate_mapping_frames_mapped_total",
            "Frames the mapping turned into at least one message.",
            |x| x.mapped,
        ),
        (
            "mqgate_mapping_messages_total",
            "Messages the mapping produced.",
            |x| x.messages,
        ),
        (
            "mqgate_mapping_frames_filtered_total",
            "Frames the filter or the script dropped.",
            |x| x.filtered,
        ),
        (
            "mqgate_mapping_frames_failed_total",
            "Frames sent to the dead-letter topic.",
            |x| x.failed,
        ),
    ];
    for (name, help, get) in mapping_counters {
        let mut f = Family::new(o, name, "counter", help);
        for m in &s.mappings {
            f.sample(&[("source", &m.source)], get(m) as f64);
        }
    }

    let radios = || {
        s.sources.iter().flat_map(|src| {
            src.duty_cycle.iter().flat_map(move |r| {
                r.sub_bands
                    .iter()
                    .map(move |b| (src.id.as_str(), r.radio.as_str(), b))
            })
        })
    };
    if radios().next().is_some() {
        type Seconds = fn(&crate::airtime::SubBandBudget) -> f64;
        let airtime: [(&str, &str, Seconds); 2] = [
            (
                "mqgate_radio_airtime_used_seconds",
                "Air time a radio took in a sub-band over the last hour (duty cycle).",
                |b| b.used_secs,
            ),
            (
                "mqgate_radio_airtime_remaining_seconds",
                "Air time a radio may still take in a sub-band this hour (duty cycle).",
                |b| b.remaining_secs,
            ),
        ];
        for (name, help, get) in airtime {
            let mut f = Family::new(o, name, "gauge", help);
            for (source, radio, band) in radios() {
                f.sample(
                    &[
                        ("source", source),
                        ("radio", radio),
                        ("sub_band", &band.name),
                    ],
                    get(band),
                );
            }
        }
    }

    modbus(o, s);
    mqtt_sources(o, s);
    lorawan(o, s);

    if !s.commands.is_empty() {
        let mut f = Family::new(
            o,
            "mqgate_commands_received_total",
            "counter",
            "Commands taken from the brokers for the source's device.",
        );
        for c in &s.commands {
            f.sample(&[("source", &c.source)], c.received as f64);
        }
        let mut f = Family::new(
            o,
            "mqgate_commands_total",
            "counter",
            "Commands by result: sent, failed, expired, rejected, dropped.",
        );
        for c in &s.commands {
            for (status, n) in [
                ("sent", c.sent),
                ("failed", c.failed),
                ("expired", c.expired),
                ("rejected", c.rejected),
                ("dropped", c.dropped),
            ] {
                f.sample(&[("source", &c.source), ("status", status)], n as f64);
            }
        }
        let mut f = Family::new(
            o,
            "mqgate_commands_queued",
            "gauge",
            "Commands waiting for the source's device, the one being sent included.",
        );
        for c in &s.commands {
            f.sample(&[("source", &c.source)], c.queued as f64);
        }
    }

    if let Some(st) = &s.store {
        Family::new(
            o,
            "mqgate_store_messages",
            "gauge",
            "Messages in the store.",
        )
        .sample(&[], st.depth as f64);
        Family::new(
            o,
            "mqgate_store_bytes",
            "gauge",
            "Bytes of topics and payloads in the store.",
        )
        .sample(&[], st.bytes as f64);
        Family::new(
            o,
            "mqgate_store_oldest_message_age_seconds",
            "gauge",
            "Age of the oldest message in the store; 0 when empty.",
        )
        .sample(&[], st.oldest_age_secs.unwrap_or(0.0));
        Family::new(
            o,
            "mqgate_store_appended_total",
            "counter",
            "Messages taken into the store.",
        )
        .sample(&[], st.appended as f64);
        Family::new(
            o,
            "mqgate_store_commits_total",
            "counter",
            "Store transactions committed.",
        )
        .sample(&[], st.commits as f64);
        let mut f = Family::new(
            o,
            "mqgate_store_evicted_total",
            "counter",
            "Messages dropped by a limit of the store, by reason.",
        );
        for (reason, n) in st.evicted.by_reason() {
            f.sample(&[("reason", reason)], n as f64);
        }
        Family::new(
            o,
            "mqgate_store_blocked",
            "gauge",
            "1 while the pipeline waits for room in a full store (when_full: block).",
        )
        .sample(&[], flag(st.blocked));
        Family::new(
            o,
            "mqgate_store_disk_free_bytes",
            "gauge",
            "Free bytes on the store's file system.",
        )
        .sample(&[], st.disk_free_bytes as f64);
        Family::new(
            o,
            "mqgate_store_disk_low",
            "gauge",
            "1 while less than store.min_free_bytes is free (the store counts as full).",
        )
        .sample(&[], flag(st.disk_low));
    }

    let mut f = Family::new(
        o,
        "mqgate_output_connected",
        "gauge",
        "1 while the output is connected to its broker.",
    );
    for out in &s.outputs {
        f.sample(&[("output", &out.name)], flag(out.connected));
    }
    let mut f = Family::new(
        o,
        "mqgate_output_published_total",
        "counter",
        "Messages the broker acknowledged (or took, for the embedded one).",
    );
    for out in &s.outputs {
        f.sample(&[("output", &out.name)], out.published as f64);
    }
    type OutputValue = fn(&super::snapshot::OutputSnapshot) -> Option<u64>;
    let optional: [(&str, &str, &str, OutputValue); 10] = [
        (
            "mqgate_output_failed_total",
            "counter",
            "Messages the broker refused (invalid topic).",
            |x| x.failed,
        ),
        (
            "mqgate_output_in_flight",
            "gauge",
            "Messages sent and not yet acknowledged.",
            |x| x.in_flight,
        ),
        (
            "mqgate_output_resent_total",
            "counter",
            "Messages sent again after a reconnect or a restart.",
            |x| x.resent,
        ),
        (
            "mqgate_output_possible_duplicates_total",
            "counter",
            "Messages sent again that may arrive twice: QoS 1 resends, and QoS 2 resends after the broker lost the session.",
            |x| x.possible_duplicates,
        ),
        (
            "mqgate_output_connects_total",
            "counter",
            "Connections made to the broker.",
            |x| x.connects,
        ),
        (
            "mqgate_output_sessions_lost_total",
            "counter",
            "Connects on which the broker had lost the persistent session.",
            |x| x.sessions_lost,
        ),
        (
            "mqgate_output_max_inflight",
            "gauge",
            "Messages awaiting acknowledgement at most, as configured (upstream.max_inflight).",
            |x| x.max_inflight,
        ),
        (
            "mqgate_output_window",
            "gauge",
            "Messages allowed in flight now: max_inflight, halved after the broker cut the connection on a full window.",
            |x| x.window,
        ),
        (
            "mqgate_output_cutoffs_total",
            "counter",
            "Connections the broker closed right after a burst of messages in flight.",
            |x| x.cutoffs,
        ),
        (
            "mqgate_output_awaiting_release_max",
            "gauge",
            "Most QoS 2 messages at once whose PUBREC came and whose PUBREL was not yet sent.",
            |x| x.awaiting_release_max,
        ),
    ];
    for (name, kind, help, get) in optional {
        if s.outputs.iter().all(|x| get(x).is_none()) {
            continue;
        }
        let mut f = Family::new(o, name, kind, help);
        for out in &s.outputs {
            if let Some(v) = get(out) {
                f.sample(&[("output", &out.name)], v as f64);
            }
        }
    }
    if let Some(b) = &s.broker {
        super::broker_metrics::render(o, b);
    }
    out
}

/// The Modbus sources' buses and devices.
/// MQTT sources: messages by what became of them, and a network server's other events.
fn mqtt_sources(o: &mut String, s: &super::snapshot::Snapshot) {
    let sources = || {
        s.sources
            .iter()
            .filter_map(|src| src.mqtt.as_ref().map(|m| (src.id.as_str(), m)))
    };
    if sources().next().is_none() {
        return;
    }
    let mut f = Family::new(
        o,
        "mqgate_mqtt_source_messages_total",
        "counter",
        "Messages an MQTT source received: all, network-server uplinks, the gateway's own skipped (echo), unreadable (to the dead-letter topic).",
    );
    for (id, m) in sources() {
        for (kind, n) in [
            ("received", m.messages),
            ("uplink", m.uplinks),
            ("echo", m.echoes),
            ("unreadable", m.malformed),
        ] {
            f.sample(&[("source", id), ("kind", kind)], n as f64);
        }
    }
    let mut f = Family::new(
        o,
        "mqgate_mqtt_source_events_total",
        "counter",
        "A network server's events other than uplinks, by kind.",
    );
    for (id, m) in sources() {
        for (kind, n) in &m.events {
            f.sample(&[("source", id), ("event", kind)], *n as f64);
        }
    }
}

/// Registered ABP devices' uplinks on Semtech sources.
fn lorawan(o: &mut String, s: &super::snapshot::Snapshot) {
    let sources = || {
        s.sources
            .iter()
            .filter_map(|src| src.lorawan.as_ref().map(|l| (src.id.as_str(), l)))
    };
    if sources().next().is_none() {
        return;
    }
    let mut f = Family::new(
        o,
        "mqgate_lorawan_uplinks_total",
        "counter",
        "Uplinks of registered ABP devices: accepted, copies gathered (other gateways), of a DevAddr the registry does not have, and refused by reason.",
    );
    for (id, l) in sources() {
        for (outcome, n) in [
            ("accepted", l.accepted),
            ("duplicate", l.duplicates),
            ("unknown_dev_addr", l.unknown_dev_addr),
        ] {
            f.sample(&[("source", id), ("outcome", outcome)], n as f64);
        }
        for (why, n) in &l.refused {
            let outcome = format!("refused_{why}");
            f.sample(&[("source", id), ("outcome", &outcome)], *n as f64);
        }
    }
}

fn modbus(o: &mut String, s: &super::snapshot::Snapshot) {
    let buses = || {
        s.sources
            .iter()
            .filter_map(|src| src.modbus.as_ref().map(|m| (src.id.as_str(), m)))
    };
    if buses().next().is_none() {
        return;
    }
    let devices = || buses().flat_map(|(id, m)| m.devices.iter().map(move |d| (id, d)));
    let mut f = Family::new(
        o,
        "mqgate_modbus_bus_utilisation_ratio",
        "gauge",
        "Time the bus was busy with transactions / time elapsed since the poller started.",
    );
    for (id, m) in buses() {
        f.sample(&[("source", id)], m.utilisation);
    }
    let mut f = Family::new(
        o,
        "mqgate_modbus_transactions_total",
        "counter",
        "Modbus requests sent on the bus (reads, writes, retries).",
    );
    for (id, m) in buses() {
        f.sample(&[("source", id)], m.transactions as f64);
    }
    let mut f = Family::new(
        o,
        "mqgate_modbus_polls_total",
        "counter",
        "Polls of a device: ok, failed, late (started after their time) and skipped (their time passed while the bus was busy).",
    );
    for (id, d) in devices() {
        for (outcome, n) in [
            ("ok", d.polls_ok),
            ("failed", d.polls_failed),
            ("late", d.late),
            ("skipped", d.skipped),
        ] {
            f.sample(
                &[("source", id), ("device", &d.name), ("outcome", outcome)],
                n as f64,
            );
        }
    }
    let mut f = Family::new(
        o,
        "mqgate_modbus_faults_total",
        "counter",
        "Requests a device did not answer, answered with a bad CRC or garbled, and requests asked again.",
    );
    for (id, d) in devices() {
        for (kind, n) in [
            ("no_answer", d.no_answer),
            ("crc", d.crc_errors),
            ("garbled", d.garbled),
            ("retry", d.retries),
        ] {
            f.sample(
                &[("source", id), ("device", &d.name), ("kind", kind)],
                n as f64,
            );
        }
    }
    let mut f = Family::new(
        o,
        "mqgate_modbus_exceptions_total",
        "counter",
        "Modbus exception answers, by code and field.",
    );
    for (id, d) in devices() {
        for e in &d.exceptions {
            let code = e.code.to_string();
            f.sample(
                &[
                    ("source", id),
                    ("device", &d.name),
                    ("field", &e.field),
                    ("code", &code),
                    ("name", &e.name),
                ],
                e.count as f64,
            );
        }
    }
    let mut f = Family::new(
        o,
        "mqgate_modbus_writes_total",
        "counter",
        "Writes of fields by command: confirmed by the device, or not.",
    );
    for (id, d) in devices() {
        for (outcome, n) in [("ok", d.writes_ok), ("failed", d.writes_failed)] {
            f.sample(
                &[("source", id), ("device", &d.name), ("outcome", outcome)],
                n as f64,
            );
        }
    }
    let mut f = Family::new(
        o,
        "mqgate_modbus_device_available",
        "gauge",
        "1 while the device answers, 0 once it is marked unavailable.",
    );
    for (id, d) in devices() {
        f.sample(
            &[("source", id), ("device", &d.name)],
            f64::from(u8::from(d.available)),
        );
    }
    let mut f = Family::new(
        o,
        "mqgate_modbus_last_poll_latency_seconds",
        "gauge",
        "The device's last poll: first request to last answer.",
    );
    for (id, d) in devices() {
        f.sample(
            &[("source", id), ("device", &d.name)],
            d.last_latency_ms / 1000.0,
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn special_values_are_spelled_as_the_exposition_format_requires() {
        assert_eq!(super::number(f64::INFINITY), "+Inf");
        assert_eq!(super::number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(super::number(f64::NAN), "NaN");
        assert_eq!(super::number(3.0), "3");
        assert_eq!(super::number(0.25), "0.25");
        assert_eq!(super::number(-2.5e20), "-250000000000000000000");
    }

    use super::*;
    use crate::status::snapshot::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            gateway: GatewayInfo {
                id: "pi-1".into(),
                version: "0.1.0".into(),
                uptime_secs: 12.5,
                now_ms: 0,
                reloads: Reloads::default(),
            },
            sources: vec![SourceSnapshot {
                id: "gps".into(),
                state: "connected".into(),
                since_ms: Some(1),
                last_error: None,
                bytes: 100,
                frames: 7,
                bad_frames: 1,
                reopens: 0,
                last_frame_ms: None,
                recent: Vec::new(),
                last_bad_frame: None,
                modbus: None,
                mqtt: None,
                lorawan: None,
                duty_cycle: vec![RadioSnapshot {
                    radio: "modem".into(),
                    sub_bands: vec![crate::airtime::SubBandBudget {
                        name: "868.0–868.6 MHz".into(),
                        low_hz: 868_000_000,
                        high_hz: 868_600_000,
                        limit: "1 %".into(),
                        limit_per_mille: 10,
                        budget_secs: 36.0,
                        used_secs: 1.5,
                        remaining_secs: 34.5,
                    }],
                }],
                poll_timeouts: 2,
                polls: vec![crate::source::PollCounts {
                    query: "reading".into(),
                    ok: 9,
                    timeouts: 2,
                    late: 1,
                    skipped: 3,
                    last_latency_ms: Some(250),
                }],
            }],
            mappings: vec![MappingSnapshot {
                source: "gps".into(),
                mapped: 6,
                messages: 6,
                filtered: 0,
                failed: 1,
                mapping_file: None,
                script: None,
                last_error: None,
            }],
            store: Some(StoreSnapshot {
                depth: 3,
                bytes: 300,
                oldest_age_secs: None,
                appended: 6,
                commits: 2,
                evicted: Evictions {
                    drop_oldest: 5,
                    ..Evictions::default()
                },
                blocked: false,
                disk_free_bytes: 1 << 30,
                disk_low: false,
                last_error: None,
            }),
            outputs: vec![OutputSnapshot {
                name: "upstream".into(),
                connected: false,
                published: 3,
                failed: None,
                in_flight: Some(2),
                resent: Some(0),
                possible_duplicates: Some(0),
                connects: Some(1),
                sessions_lost: Some(0),
                max_inflight: Some(100),
                window: Some(50),
                cutoffs: Some(2),
                awaiting_release_max: Some(7),
                last_error: Some("refused".into()),
                last_error_at_ms: Some(1_000),
            }],
            broker: None,
            commands: vec![CommandSnapshot {
                source: "relay".into(),
                topic: "cmd/relay/#".into(),
                received: 7,
                sent: 4,
                failed: 1,
                expired: 1,
                rejected: 1,
                dropped: 0,
                queued: 2,
                recent: Vec::new(),
            }],
        }
    }

    #[test]
    fn every_sample_follows_its_help_and_type_lines() {
        check_format(&render(&snapshot()));
    }

    /// Each sample follows the `# HELP` and `# TYPE` lines of its own family, has
    /// a number for a value, and no family is declared twice.
    fn check_format(text: &str) {
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let name = parts.next().unwrap();
                assert!(matches!(parts.next(), Some("gauge" | "counter")), "{line}");
                declared.push(name.to_string());
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(declared.last().map(String::as_str), Some(name), "{line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        let mut unique = declared.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), declared.len(), "a family is declared twice");
    }

    #[test]
    fn counters_carry_their_labels_and_values() {
        let text = render(&snapshot());
        for line in [
            "mqgate_source_frames_total{source=\"gps\"} 7",
            "mqgate_source_state{source=\"gps\",state=\"connected\"} 1",
            "mqgate_source_state{source=\"gps\",state=\"waiting\"} 0",
            "mqgate_mapping_frames_failed_total{source=\"gps\"} 1",
            "mqgate_source_poll_total{source=\"gps\",query=\"reading\",outcome=\"ok\"} 9",
            "mqgate_source_poll_total{source=\"gps\",query=\"reading\",outcome=\"timeout\"} 2",
            "mqgate_source_poll_total{source=\"gps\",query=\"reading\",outcome=\"late\"} 1",
            "mqgate_source_poll_total{source=\"gps\",query=\"reading\",outcome=\"skipped\"} 3",
            "mqgate_source_poll_latency_seconds{source=\"gps\",query=\"reading\"} 0.25",
            "mqgate_commands_received_total{source=\"relay\"} 7",
            "mqgate_commands_total{source=\"relay\",status=\"sent\"} 4",
            "mqgate_commands_total{source=\"relay\",status=\"rejected\"} 1",
            "mqgate_commands_queued{source=\"relay\"} 2",
            "mqgate_radio_airtime_remaining_seconds{source=\"gps\",radio=\"modem\",sub_band=\"868.0–868.6 MHz\"} 34.5",
            "mqgate_store_messages 3",
            "mqgate_store_bytes 300",
            "mqgate_store_disk_free_bytes 1073741824",
            "mqgate_store_disk_low 0",
            "mqgate_store_evicted_total{reason=\"drop_oldest\"} 5",
            "mqgate_store_evicted_total{reason=\"max_age\"} 0",
            "mqgate_output_connected{output=\"upstream\"} 0",
            "mqgate_output_in_flight{output=\"upstream\"} 2",
            "mqgate_output_window{output=\"upstream\"} 50",
            "mqgate_output_max_inflight{output=\"upstream\"} 100",
            "mqgate_output_cutoffs_total{output=\"upstream\"} 2",
            "mqgate_output_awaiting_release_max{output=\"upstream\"} 7",
            "mqgate_uptime_seconds 12.5",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(
            !text.contains("mqgate_output_failed_total"),
            "no output counts it"
        );
    }

    fn with_broker() -> Snapshot {
        let mut s = snapshot();
        let mut b = crate::status::BrokerSnapshot {
            listeners: vec!["127.0.0.1:1883".into(), "0.0.0.0:8883".into()],
            clients_connected: 2,
            sessions: 3,
            messages_received: 40,
            messages_dropped: 5,
            messages_dropped_qos0: 4,
            ..Default::default()
        };
        b.refusals.login = 1;
        b.refusals.publish_acl = 6;
        b.refusals.connection_limit_per_ip = 7;
        s.broker = Some(b);
        s
    }

    #[test]
    fn the_embedded_broker_has_its_gauges_counters_and_refusals_by_reason() {
        let text = render(&with_broker());
        for line in [
            "# TYPE mqgate_broker_clients_connected gauge",
            "# TYPE mqgate_broker_messages_received_total counter",
            "# TYPE mqgate_broker_refusals_total counter",
            "mqgate_broker_listener_info{address=\"127.0.0.1:1883\"} 1",
            "mqgate_broker_listener_info{address=\"0.0.0.0:8883\"} 1",
            "mqgate_broker_clients_connected 2",
            "mqgate_broker_sessions 3",
            "mqgate_broker_retained_messages 0",
            "mqgate_broker_messages_received_total 40",
            "mqgate_broker_messages_dropped_total 5",
            "mqgate_broker_messages_dropped_qos0_total 4",
            "mqgate_broker_refusals_total{reason=\"login\"} 1",
            "mqgate_broker_refusals_total{reason=\"publish_acl\"} 6",
            "mqgate_broker_refusals_total{reason=\"connection_limit_per_ip\"} 7",
            "mqgate_broker_refusals_total{reason=\"malformed\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        let reasons = text
            .lines()
            .filter(|l| l.starts_with("mqgate_broker_refusals_total{"))
            .count();
        assert_eq!(reasons, 15, "one sample per reason:\n{text}");
    }

    #[test]
    fn the_broker_families_follow_the_format_rules_too() {
        check_format(&render(&with_broker()));
    }

    #[test]
    fn without_the_embedded_broker_there_is_no_broker_family() {
        let text = render(&snapshot());
        assert!(!text.contains("mqgate_broker_"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = snapshot();
        s.sources[0].id = "a\"b\\c\nd".into();
        let text = render(&s);
        assert!(text.contains(r#"mqgate_source_frames_total{source="a\"b\\c\nd"} 7"#));
    }
}
