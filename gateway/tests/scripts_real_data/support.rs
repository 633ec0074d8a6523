//! Helpers for the script tests: paths, mappers, frames, framing, JSON comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use mqgate::frame::{Frame, Framed, Framer, LinesConfig, LinesFramer, Meta};
use mqgate::mapping::{CodecOptions, Mapped, Mapper, MappingDefaults, ScriptLimits};
use mqgate::message::Message;
use mqtt_proto::codec::QoS;
use serde_json::Value;

#[path = "../common/real_data.rs"]
mod real_data;

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of the shared test data; fails clearly when the folder is missing.
pub(crate) fn data(rel: &str) -> PathBuf {
    real_data::real_data(rel)
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub(crate) fn json_file(rel: &str) -> Value {
    let path = data(rel);
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A mapper for `scripts/<script>` with a topic template, default limits.
pub(crate) fn script_mapper(source: &str, script: &str, topic: &str) -> Mapper {
    let path = workspace().join("scripts").join(script);
    let defaults = MappingDefaults {
        topic: topic.to_string(),
        qos: QoS::AtMostOnce,
        retain: false,
        filter: None,
    };
    Mapper::new(
        source,
        Some((&path, &read(&path))),
        defaults,
        ScriptLimits::default(),
    )
    .unwrap_or_else(|e| panic!("{script} does not compile: {e}"))
}

/// A mapper for the JavaScript codec `scripts/<codec>` with `scripts/<libraries>`
/// loaded first, a topic template, default limits.
pub(crate) fn codec_mapper(source: &str, codec: &str, libraries: &[&str], topic: &str) -> Mapper {
    let scripts = workspace().join("scripts");
    let path = scripts.join(codec);
    let defaults = MappingDefaults {
        topic: topic.to_string(),
        qos: QoS::AtMostOnce,
        retain: false,
        filter: None,
    };
    let options = CodecOptions {
        libraries: libraries.iter().map(|l| scripts.join(l)).collect(),
        ..CodecOptions::default()
    };
    Mapper::with_codec(
        source,
        Some((&path, &read(&path))),
        defaults,
        ScriptLimits::default(),
        &options,
    )
    .unwrap_or_else(|e| panic!("{codec} does not load: {e}"))
}

/// The mapper a mapping file describes (script resolved against the file's folder).
pub(crate) fn mapping_mapper(name: &str) -> Mapper {
    let path = workspace().join("mappings").join(name);
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let map = yaml.as_mapping().expect("a mapping file is a YAML mapping");
    for key in map.keys() {
        let key = key.as_str().unwrap_or_default();
        assert!(
            [
                "source",
                "script",
                "topic",
                "qos",
                "retain",
                "filter",
                "homeassistant",
                "commands",
                "libraries"
            ]
            .contains(&key),
            "{name}: unexpected key {key:?}"
        );
    }
    let text = |k: &str| yaml.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let source = text("source").unwrap_or_else(|| panic!("{name}: no source"));
    let script = path.parent().unwrap().join(text("script").expect("script"));
    let qos = match yaml.get("qos").and_then(|v| v.as_u64()) {
        Some(0) => QoS::AtMostOnce,
        Some(2) => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    };
    let defaults = MappingDefaults {
        topic: text("topic").expect("topic"),
        qos,
        retain: yaml
            .get("retain")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        filter: text("filter"),
    };
    let libraries = yaml
        .get("libraries")
        .and_then(|v| v.as_sequence())
        .map(|l| {
            l.iter()
                .map(|p| {
                    path.parent()
                        .unwrap()
                        .join(p.as_str().expect("a library path"))
                })
                .collect()
        })
        .unwrap_or_default();
    let codec = CodecOptions {
        libraries,
        ..CodecOptions::default()
    };
    Mapper::with_codec(
        &source,
        Some((&script, &read(&script))),
        defaults,
        ScriptLimits::default(),
        &codec,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub(crate) fn frame(source: &str, bytes: &[u8], extra: &[(&str, &str)]) -> Frame {
    Frame {
        source: Arc::from(source),
        received_at: SystemTime::now(),
        bytes: Bytes::copy_from_slice(bytes),
        meta: Meta {
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ..Meta::default()
        },
    }
}

pub(crate) fn messages(mapper: &Mapper, frame: &Frame, what: &str) -> Vec<Message> {
    match mapper.map(frame) {
        Mapped::Messages(m) => m,
        other => panic!("{what}: expected messages, got {other:?}"),
    }
}

pub(crate) fn payload(m: &Message) -> Value {
    serde_json::from_slice(&m.payload)
        .unwrap_or_else(|e| panic!("payload on {} is not JSON: {e}", m.topic))
}

pub(crate) fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Frames of `bytes` cut by `framer`, and how many bad-frame reports it gave.
pub(crate) fn cut(mut framer: Box<dyn Framer>, bytes: &[u8]) -> (Vec<Bytes>, usize) {
    let mut out = Vec::new();
    framer.push(bytes, &mut out);
    framer.finish(&mut out);
    let mut frames = Vec::new();
    let mut bad = 0;
    for f in out {
        match f {
            Framed::Frame(b) => frames.push(b),
            Framed::Bad(_) => bad += 1,
        }
    }
    (frames, bad)
}

pub(crate) fn nmea_framer() -> Box<dyn Framer> {
    Box::new(LinesFramer::new(LinesConfig {
        nmea_checksum: true,
        skip_comments: true,
        ..LinesConfig::default()
    }))
}

/// `expected` within `tol`: numbers (or arrays of numbers) compared by value.
pub(crate) fn assert_value(what: &str, actual: &Value, expected: &Value, tol: f64) {
    match (actual, expected) {
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{what}: {actual} vs {expected}");
            for (i, (a, e)) in a.iter().zip(e).enumerate() {
                assert_value(&format!("{what}[{i}]"), a, e, tol);
            }
        }
        (Value::Object(a), Value::Object(e)) => {
            let (ak, ek): (Vec<_>, Vec<_>) = (a.keys().collect(), e.keys().collect());
            assert_eq!(ak, ek, "{what}: fields differ");
            for (k, e) in e {
                assert_value(&format!("{what}.{k}"), &a[k], e, tol);
            }
        }
        (Value::Number(a), Value::Number(e)) => {
            let (a, e) = (a.as_f64().unwrap(), e.as_f64().unwrap());
            assert!(
                (a - e).abs() <= tol * (1.0 + 1e-9) + e.abs() * 1e-12,
                "{what}: {a} vs {e}"
            );
        }
        _ => assert_eq!(actual, expected, "{what}"),
    }
}

/// A UBX frame around `payload`, with its Fletcher-8 checksum.
pub(crate) fn ubx_frame(class: u8, id: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xB5, 0x62, class, id];
    f.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    f.extend_from_slice(payload);
    let (a, b) = f[2..].iter().fold((0u8, 0u8), |(a, b), &x| {
        (a.wrapping_add(x), b.wrapping_add(a.wrapping_add(x)))
    });
    f.extend_from_slice(&[a, b]);
    f
}
