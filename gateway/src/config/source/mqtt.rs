//! `type: mqtt`: the messages of topic filters on a broker, each one a frame. The
//! broker is an external one (`url` and the other keys of `upstream:`, read and
//! checked by the same code) or, with `broker: embedded`, the gateway's own.

use std::path::Path;

use config_report::{FieldPath, Report};
use mqtt_proto::codec::QoS;
use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use super::SourceKind;
use crate::config::upstream::{self, UpstreamConfig};
use crate::source::netserver;

/// A configured MQTT source.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSource {
    pub broker: MqttBroker,
    /// Topic filters subscribed to, each at `qos`.
    pub topics: Vec<String>,
    pub qos: QoS,
    pub format: PayloadFormat,
    pub other_events: OtherEvents,
}

/// Which broker an MQTT source subscribes on.
#[derive(Debug, Clone, PartialEq)]
pub enum MqttBroker {
    /// The embedded broker, inside the process (`broker: embedded`).
    Embedded,
    /// Another broker; an empty `client_id` is filled in when the gateway starts
    /// (`mqgate-<gateway id>-<source id>`).
    External(Box<UpstreamConfig>),
}

/// How a message's payload is read (`format:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// The payload is the frame (`raw`, the default).
    Raw,
    /// A LoRaWAN network server's JSON events: an uplink's application payload is
    /// the frame, and what the server says about it its meta.
    NetworkServer(netserver::Format),
}

/// What becomes of a network server's events that are not uplinks (`other_events:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtherEvents {
    /// Counted, then dropped (the default).
    #[default]
    Drop,
    /// Counted, and passed on as frames of their JSON (meta `event` says which).
    Pass,
}

/// The keys that are the MQTT source's own; the others are `upstream:`'s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Own {
    #[serde(default)]
    broker: Option<EmbeddedOnly>,
    #[serde(default)]
    topics: Option<Vec<String>>,
    #[serde(
        default = "default_qos",
        deserialize_with = "crate::config::qos::deserialize"
    )]
    qos: QoS,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    other_events: OtherEvents,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EmbeddedOnly {
    Embedded,
}

fn default_qos() -> QoS {
    QoS::AtLeastOnce
}

const OWN_KEYS: &[&str] = &["broker", "topics", "qos", "format", "other_events"];
/// Keys of `upstream:` that mean nothing to a subscriber.
const PUBLISHING_KEYS: &[&str] = &["topic_prefix", "max_inflight"];

/// The topics a network server publishes its events on, for a source that names
/// none. The Things Stack's downlink topics `down/push` and `down/replace` are left
/// out: they are requests to the server, not its events.
pub(super) fn default_topics(format: netserver::Format, other_events: OtherEvents) -> Vec<String> {
    let kinds: &[&str] = match (format, other_events) {
        // What the server says about downlinks comes too: a command's result.
        (netserver::Format::TtnV3, OtherEvents::Drop) => &[
            "up",
            "down/queued",
            "down/sent",
            "down/ack",
            "down/nack",
            "down/failed",
        ],
        (netserver::Format::TtnV3, OtherEvents::Pass) => &[
            "up",
            "join",
            "down/queued",
            "down/sent",
            "down/ack",
            "down/nack",
            "down/failed",
            "location/solved",
            "service/data",
        ],
        (netserver::Format::ChirpstackV4, OtherEvents::Drop) => {
            return ["up", "txack", "ack"]
                .iter()
                .map(|k| format!("application/+/device/+/event/{k}"))
                .collect()
        }
        (netserver::Format::ChirpstackV4, OtherEvents::Pass) => {
            return vec!["application/+/device/+/event/+".into()]
        }
    };
    kinds
        .iter()
        .map(|k| format!("v3/+/devices/+/{k}"))
        .collect()
}

/// Reads the keys of a `type: mqtt` source; problems go to `report`.
pub(super) fn read(
    body: &Value,
    at: &FieldPath,
    dir: &Path,
    report: &mut Report<'_>,
) -> Option<SourceKind> {
    let map = match body {
        Value::Mapping(m) => m.clone(),
        _ => Mapping::new(),
    };
    let (own, rest): (Mapping, Mapping) = map
        .into_iter()
        .partition(|(k, _)| k.as_str().is_some_and(|k| OWN_KEYS.contains(&k)));
    let own: Own = report.piece(at, &Value::Mapping(own))?;
    for key in PUBLISHING_KEYS {
        if rest.contains_key(*key) {
            report.add(
                &at.key(key),
                format!("`{key}` is for publishing (`upstream:`); an MQTT source only subscribes"),
            );
        }
    }
    let broker = match own.broker {
        Some(EmbeddedOnly::Embedded) => {
            if let Some(key) = rest.keys().filter_map(Value::as_str).next() {
                report.add(
                    &at.key(key),
                    "a source on the embedded broker (`broker: embedded`) takes no connection keys",
                );
            }
            MqttBroker::Embedded
        }
        None if !rest.contains_key("url") => {
            report.add(
                at,
                "an MQTT source needs `url: mqtt://HOST:PORT` (another broker) or `broker: embedded`",
            );
            return None;
        }
        None => {
            let rest: Mapping = rest
                .into_iter()
                .filter(|(k, _)| !k.as_str().is_some_and(|k| PUBLISHING_KEYS.contains(&k)))
                .collect();
            let config: UpstreamConfig = report.piece(at, &Value::Mapping(rest))?;
            MqttBroker::External(Box::new(upstream::check(
                config,
                String::new,
                dir,
                at,
                report,
            )))
        }
    };
    let format = match own.format.as_deref() {
        None | Some("raw") => PayloadFormat::Raw,
        Some(name) => match netserver::Format::parse(name) {
            Some(f) => PayloadFormat::NetworkServer(f),
            None => {
                report.add(
                    &at.key("format"),
                    format!("unknown format `{name}`, expected one of raw, ttn_v3, chirpstack_v4"),
                );
                return None;
            }
        },
    };
    let topics = match (own.topics, format) {
        (Some(topics), _) => topics,
        (None, PayloadFormat::NetworkServer(f)) => default_topics(f, own.other_events),
        (None, PayloadFormat::Raw) => {
            report.add(
                at,
                "missing field `topics` (a list of topic filters, e.g. [\"tele/+/SENSOR\"])",
            );
            return None;
        }
    };
    if topics.is_empty() {
        report.add(&at.key("topics"), "must list at least one topic filter");
    }
    for (i, filter) in topics.iter().enumerate() {
        if let Err(e) = mqtt_proto::topic::TopicFilter::new(filter.clone()) {
            report.add(
                &at.key("topics").index(i),
                format!("{filter:?} is not a topic filter: {}", e.error),
            );
        }
    }
    if own.other_events == OtherEvents::Pass && format == PayloadFormat::Raw {
        report.add(
            &at.key("other_events"),
            "is for `format: ttn_v3` or `chirpstack_v4`: with `raw`, every message is a frame",
        );
    }
    Some(SourceKind::Mqtt(MqttSource {
        broker,
        topics,
        qos: own.qos,
        format,
        other_events: own.other_events,
    }))
}
