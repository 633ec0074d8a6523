//! The dead-letter message for a frame that could not be mapped, and frames typed in
//! by hand for `mqgate map`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use mqtt_proto::codec::QoS;
use mqtt_proto::topic::TopicName;
use serde_json::{json, Value};

use super::error::MapError;
use super::helpers;
use super::time::rfc3339;
use crate::frame::{Frame, Meta};
use crate::message::Message;

/// The dead-letter topic for a source: `mqgate/<gateway_id>/deadletter/<source>`.
pub fn dead_letter_topic(gateway_id: &str, source: &str) -> String {
    format!("mqgate/{gateway_id}/deadletter/{source}")
}

/// The message that carries a failed frame and its error, QoS 1, not retained.
/// Payload: `{"error", "source", "received_at", "bytes_hex", "text"}`; `text` only
/// when the bytes are UTF-8.
pub fn dead_letter(gateway_id: &str, frame: &Frame, error: &MapError) -> Message {
    let mut body = serde_json::Map::new();
    body.insert("error".into(), Value::String(error.to_string()));
    body.insert("source".into(), Value::String(frame.source.to_string()));
    body.insert(
        "received_at".into(),
        Value::String(rfc3339(frame.received_at)),
    );
    body.insert(
        "bytes_hex".into(),
        Value::String(helpers::hex(&frame.bytes)),
    );
    if let Ok(text) = std::str::from_utf8(&frame.bytes) {
        body.insert("text".into(), json!(text));
    }
    Message {
        // Both ids were checked at load: letters, digits, `_` and `-`.
        topic: TopicName::new(dead_letter_topic(gateway_id, &frame.source))
            .expect("the gateway and source ids are valid topic levels"),
        payload: Bytes::from(Value::Object(body).to_string()),
        qos: QoS::AtLeastOnce,
        retain: false,
    }
}

/// The dead-letter message for a command whose `encode` failed: the same topic as
/// the source's frames, with `command_topic` in place of `received_at`'s frame.
pub fn command_dead_letter(
    gateway_id: &str,
    source: &str,
    command_topic: &str,
    payload: &[u8],
    error: &MapError,
) -> Message {
    let mut body = serde_json::Map::new();
    body.insert("error".into(), Value::String(error.to_string()));
    body.insert("source".into(), Value::String(source.to_string()));
    body.insert("command_topic".into(), json!(command_topic));
    body.insert(
        "received_at".into(),
        Value::String(rfc3339(SystemTime::now())),
    );
    body.insert("bytes_hex".into(), Value::String(helpers::hex(payload)));
    if let Ok(text) = std::str::from_utf8(payload) {
        body.insert("text".into(), json!(text));
    }
    Message {
        topic: TopicName::new(dead_letter_topic(gateway_id, source))
            .expect("the gateway and source ids are valid topic levels"),
        payload: Bytes::from(Value::Object(body).to_string()),
        qos: QoS::AtLeastOnce,
        retain: false,
    }
}

/// A bad `--hex` or `--meta` argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameInputError {
    #[error("--hex: {0}")]
    Hex(String),
    #[error("--meta {key}={value}: {why}")]
    Meta {
        key: String,
        value: String,
        why: String,
    },
}

/// A frame from hex digits (spaces and `:` allowed) and `key=value` meta pairs, received now.
/// `rssi`, `snr`, `frequency_hz`, `datarate`, `port` and `topic` fill the typed fields; other
/// keys go to `extra`.
pub fn frame_from_hex(
    source: &str,
    hex: &str,
    meta: &[(String, String)],
) -> Result<Frame, FrameInputError> {
    let bytes = helpers::from_hex(hex).map_err(|e| {
        FrameInputError::Hex(match *e {
            rhai::EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
            other => other.to_string(),
        })
    })?;
    let mut m = Meta {
        extra: BTreeMap::new(),
        ..Meta::default()
    };
    for (key, value) in meta {
        let bad = |why: String| FrameInputError::Meta {
            key: key.clone(),
            value: value.clone(),
            why,
        };
        match key.as_str() {
            "rssi" => m.rssi = Some(value.parse().map_err(|e| bad(format!("{e}")))?),
            "snr" => m.snr = Some(value.parse().map_err(|e| bad(format!("{e}")))?),
            "frequency_hz" => {
                m.frequency_hz = Some(value.parse().map_err(|e| bad(format!("{e}")))?)
            }
            "datarate" => m.datarate = Some(value.clone()),
            "port" => m.port = Some(value.as_str().into()),
            "topic" => m.topic = Some(value.as_str().into()),
            _ => {
                m.extra.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(Frame {
        source: Arc::from(source),
        received_at: SystemTime::now(),
        bytes: Bytes::from(bytes),
        meta: m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_meta_pairs_make_a_frame() {
        let meta = [
            ("rssi".to_string(), "-97.5".to_string()),
            ("frequency_hz".to_string(), "868100000".to_string()),
            ("datarate".to_string(), "SF7BW125".to_string()),
            ("gw".to_string(), "pi-1".to_string()),
        ];
        let f = frame_from_hex("lora", "01 67 00:e1", &meta).unwrap();
        assert_eq!(&f.bytes[..], [0x01, 0x67, 0x00, 0xe1]);
        assert_eq!(&*f.source, "lora");
        assert_eq!(f.meta.rssi, Some(-97.5));
        assert_eq!(f.meta.frequency_hz, Some(868_100_000));
        assert_eq!(f.meta.datarate.as_deref(), Some("SF7BW125"));
        assert_eq!(f.meta.extra.get("gw").map(String::as_str), Some("pi-1"));
    }

    #[test]
    fn bad_hex_and_bad_numbers_name_the_argument() {
        let e = frame_from_hex("s", "0g", &[]).unwrap_err();
        assert_eq!(e.to_string(), "--hex: from_hex: 'g' is not a hex digit");
        let e = frame_from_hex("s", "abc", &[]).unwrap_err();
        assert!(e.to_string().contains("odd number"), "{e}");
        let e = frame_from_hex("s", "00", &[("rssi".into(), "loud".into())]).unwrap_err();
        assert!(e.to_string().starts_with("--meta rssi=loud: "), "{e}");
    }
}
