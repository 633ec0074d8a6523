//! `Encoder`: a source's `encode(command)` script, which turns a command taken from
//! MQTT into the bytes its device gets.
//!
//! `command` is a map: `topic`, `payload` (blob), `text` (string, or `()` when the
//! payload is not UTF-8), `json` (the payload parsed when it is JSON, else `()`),
//! `qos`, `retain` and `source`. `encode` returns a blob or a string (sent as it is),
//! an array of those or of maps (sent in order), a map `#{ bytes, delay_ms, ... }`
//! whose other keys are transport options, or `()` to drop the command. Same
//! sandbox and limits as `map`.

use std::path::Path;

use rhai::{Dynamic, Engine, Map, AST};

use super::calls::first_unknown_call;
use super::convert::{json_to_dynamic, payload_bytes};
use super::engine::{call_one, sandboxed_engine, ScriptLimits};
use super::error::{from_eval, MapError, MappingError};
use super::library;
use crate::message::{Command, Part};

/// What became of one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoded {
    /// Send these, in order.
    Send(Vec<Part>),
    /// The script returned `()`.
    Dropped,
    Failed(MapError),
}

/// Most parts one command may send.
pub const MAX_PARTS: usize = 64;
/// Longest silence a script may ask for after a part.
pub const MAX_DELAY_MS: u64 = 10_000;

#[derive(Debug)]
struct Script {
    ast: AST,
    label: String,
}

/// One source's command encoder, compiled once.
#[derive(Debug)]
pub struct Encoder {
    engine: Engine,
    script: Option<Script>,
    /// A JavaScript codec's `encodeDownlink`, instead of a script.
    codec: Option<super::js::JsCodec>,
    limits: ScriptLimits,
}

impl Encoder {
    /// Sends each command's payload as it is.
    pub fn plain() -> Encoder {
        let limits = ScriptLimits::default();
        Encoder {
            engine: Engine::new_raw(),
            script: None,
            codec: None,
            limits,
        }
    }

    /// A codec's `encodeDownlink` (The Things Network's interface): a command's
    /// JSON payload is its `data`; the bytes it returns are one part, with the
    /// options `f_port` (its `fPort`) and `device` (the command topic's last level),
    /// for a source that sends downlinks through a network server.
    pub fn from_codec(codec: super::js::JsCodec, limits: ScriptLimits) -> Encoder {
        Encoder {
            engine: Engine::new_raw(),
            script: None,
            codec: Some(codec),
            limits,
        }
    }

    /// Compile `text` (from `path`), which must define `fn encode(command)`.
    pub fn new(
        source_id: &str,
        path: &Path,
        text: &str,
        limits: ScriptLimits,
    ) -> Result<Encoder, MappingError> {
        let mut engine = sandboxed_engine(source_id, &limits);
        library::install(&mut engine, path, &limits)?;
        let label = path.display().to_string();
        let mut ast = engine
            .compile(text)
            .map_err(|e| MappingError::compile(&label, &e))?;
        if !defines_encode(&ast) {
            return Err(MappingError::NoEncodeFunction { path: label });
        }
        if let Some(call) = first_unknown_call(&engine, &ast) {
            return Err(MappingError::unknown_call(label, call));
        }
        ast.set_source(label.as_str());
        Ok(Encoder {
            engine,
            script: Some(Script { ast, label }),
            codec: None,
            limits,
        })
    }

    /// Whether `text` defines `fn encode(command)` (a mapping script may or may not).
    pub fn script_defines_encode(text: &str) -> bool {
        Engine::new_raw()
            .compile(text)
            .map(|ast| defines_encode(&ast))
            .unwrap_or(false)
    }

    /// The script's file, when there is one.
    pub fn label(&self) -> Option<&str> {
        match (&self.script, &self.codec) {
            (Some(s), _) => Some(s.label.as_str()),
            (None, Some(c)) => Some(c.label()),
            (None, None) => None,
        }
    }

    /// Encode one command.
    pub fn encode(&self, command: &Command) -> Encoded {
        if let Some(codec) = &self.codec {
            return encode_with_codec(codec, command);
        }
        let Some(script) = &self.script else {
            return Encoded::Send(vec![Part::bytes(command.payload.clone())]);
        };
        let result = call_one(
            &self.engine,
            &script.ast,
            "encode",
            command_to_dynamic(command),
            self.limits.max_call_time,
        );
        match result {
            Ok(v) => match parts(v) {
                Ok(None) => Encoded::Dropped,
                Ok(Some(parts)) => Encoded::Send(parts),
                Err(why) => Encoded::Failed(MapError::BadShape {
                    at: script.label.clone(),
                    why,
                }),
            },
            Err(e) => Encoded::Failed(from_eval(&script.label, &e, &self.limits)),
        }
    }
}

fn encode_with_codec(codec: &super::js::JsCodec, command: &Command) -> Encoded {
    let at = codec.label().to_string();
    let data: serde_json::Value = match serde_json::from_slice(&command.payload) {
        Ok(v) => v,
        Err(e) => {
            return Encoded::Failed(MapError::Runtime {
                at,
                message: format!(
                    "a command to encodeDownlink is its JSON `data`; the payload is not JSON: {e}"
                ),
            })
        }
    };
    let now = super::time::unix_millis(std::time::SystemTime::now()) as f64;
    match codec.encode(&data, now) {
        Ok(down) => {
            let mut part = Part::bytes(bytes::Bytes::from(down.bytes));
            if let Some(port) = down.fport {
                part.options.insert("f_port".into(), port.into());
            }
            if let Some(device) = command.topic.rsplit('/').next() {
                part.options.insert("device".into(), device.into());
            }
            Encoded::Send(vec![part])
        }
        Err(e) => Encoded::Failed(e),
    }
}

fn defines_encode(ast: &AST) -> bool {
    ast.iter_functions()
        .any(|f| f.name == "encode" && f.params.len() == 1)
}

/// The `command` map a script receives.
fn command_to_dynamic(c: &Command) -> Dynamic {
    let mut map = Map::new();
    map.insert("topic".into(), Dynamic::from(c.topic.to_string()));
    map.insert("payload".into(), Dynamic::from_blob(c.payload.to_vec()));
    let text = std::str::from_utf8(&c.payload).ok();
    map.insert(
        "text".into(),
        text.map_or(Dynamic::UNIT, |t| Dynamic::from(t.to_string())),
    );
    let json = text
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .map_or(Dynamic::UNIT, json_to_dynamic);
    map.insert("json".into(), json);
    map.insert("qos".into(), Dynamic::from_int(c.qos as i64));
    map.insert("retain".into(), Dynamic::from_bool(c.retain));
    map.insert("source".into(), Dynamic::from(c.source.to_string()));
    Dynamic::from_map(map)
}

/// The script's answer as parts; `None` for `()` or an empty array.
fn parts(v: Dynamic) -> Result<Option<Vec<Part>>, String> {
    if v.is_unit() {
        return Ok(None);
    }
    let items = if v.is_array() {
        v.cast::<rhai::Array>()
    } else {
        vec![v]
    };
    if items.is_empty() {
        return Ok(None);
    }
    if items.len() > MAX_PARTS {
        return Err(format!(
            "{} parts; a command sends {MAX_PARTS} at most",
            items.len()
        ));
    }
    let many = items.len() > 1;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            part(item).map_err(|why| {
                if many {
                    format!("part {i}: {why}")
                } else {
                    why
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn part(item: Dynamic) -> Result<Part, String> {
    if item.is_blob() || item.is_string() {
        return Ok(Part::bytes(payload_bytes(item)?));
    }
    if !item.is_map() {
        return Err(format!(
            "expected a blob, a string, a map `#{{ bytes, ... }}`, an array of those, or (), got a {}",
            item.type_name()
        ));
    }
    let mut map = item.cast::<Map>();
    let bytes = match map.remove("bytes") {
        Some(b) if b.is_blob() || b.is_string() => payload_bytes(b)?,
        Some(b) => {
            return Err(format!(
                "`bytes` must be a blob or a string, got a {}",
                b.type_name()
            ))
        }
        None => return Err("a map needs `bytes`".into()),
    };
    let delay_ms = match map.remove("delay_ms") {
        None => 0,
        Some(d) => match d.as_int() {
            Ok(ms) if (0..=MAX_DELAY_MS as i64).contains(&ms) => ms as u64,
            _ => return Err(format!("`delay_ms` must be 0 to {MAX_DELAY_MS}, got {d}")),
        },
    };
    let mut options = serde_json::Map::new();
    for (key, value) in map {
        let mut json = Vec::new();
        super::convert::write_json(&value, &mut json).map_err(|e| format!("`{key}`: {e}"))?;
        let value = serde_json::from_slice(&json).map_err(|e| format!("`{key}`: {e}"))?;
        options.insert(key.to_string(), value);
    }
    Ok(Part {
        bytes,
        delay_ms,
        options,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use mqtt_proto::codec::QoS;

    use super::*;

    fn encoder(script: &str) -> Encoder {
        Encoder::new(
            "relay",
            Path::new("relay.rhai"),
            script,
            ScriptLimits::default(),
        )
        .expect("the script compiles")
    }

    fn command(payload: &[u8]) -> Command {
        Command {
            topic: Arc::from("cmd/relay/set"),
            payload: Bytes::copy_from_slice(payload),
            qos: QoS::AtLeastOnce,
            retain: false,
            source: Arc::from("relay"),
        }
    }

    fn sent(e: Encoded) -> Vec<Part> {
        match e {
            Encoded::Send(parts) => parts,
            other => panic!("expected parts, got {other:?}"),
        }
    }

    #[test]
    fn without_a_script_the_payload_goes_as_it_is() {
        let parts = sent(Encoder::plain().encode(&command(b"\x01\x02")));
        assert_eq!(parts, vec![Part::bytes(Bytes::from_static(b"\x01\x02"))]);
    }

    #[test]
    fn the_command_map_has_every_key_and_json_is_parsed() {
        let e = encoder(
            r#"fn encode(c) {
                 `${c.topic}|${c.text}|${c.json.level}|${c.qos}|${c.retain}|${c.source}|${c.payload.len()}`
               }"#,
        );
        let parts = sent(e.encode(&command(br#"{"level": 3}"#)));
        assert_eq!(
            parts[0].bytes,
            Bytes::from_static(b"cmd/relay/set|{\"level\": 3}|3|1|false|relay|12")
        );
        let e = encoder(
            "fn encode(c) { if c.json == () && c.text == () { \"none\" } else { \"some\" } }",
        );
        assert_eq!(sent(e.encode(&command(&[0xff, 0xfe])))[0].bytes, "none");
    }

    #[test]
    fn arrays_and_maps_give_parts_with_their_options() {
        let e = encoder(
            r#"fn encode(c) {
                 [blob(2, 0x41), #{ bytes: "B", delay_ms: 50, freq: 869.525, imme: true }]
               }"#,
        );
        let parts = sent(e.encode(&command(b"x")));
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].bytes, "AA");
        assert_eq!(parts[1].bytes, "B");
        assert_eq!(parts[1].delay_ms, 50);
        assert_eq!(parts[1].options["freq"], serde_json::json!(869.525));
        assert_eq!(parts[1].options["imme"], serde_json::json!(true));
        assert!(!parts[1].options.contains_key("bytes"));
    }

    #[test]
    fn unit_or_an_empty_array_drops_the_command() {
        assert_eq!(
            encoder("fn encode(c) { () }").encode(&command(b"x")),
            Encoded::Dropped
        );
        assert_eq!(
            encoder("fn encode(c) { [] }").encode(&command(b"x")),
            Encoded::Dropped
        );
    }

    #[test]
    fn errors_name_the_script_its_line_and_the_cause() {
        let e = encoder("fn encode(c) {\n  throw \"no such relay\";\n}");
        match e.encode(&command(b"x")) {
            Encoded::Failed(err) => {
                let text = err.to_string();
                assert!(text.contains("relay.rhai:2"), "{text}");
                assert!(text.contains("no such relay"), "{text}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        let shapes = [
            ("fn encode(c) { 42 }", "got a i64"),
            ("fn encode(c) { #{ delay_ms: 1 } }", "needs `bytes`"),
            (
                "fn encode(c) { #{ bytes: 1 } }",
                "`bytes` must be a blob or a string",
            ),
            (
                "fn encode(c) { #{ bytes: \"x\", delay_ms: 99999 } }",
                "`delay_ms` must be 0 to",
            ),
            ("fn encode(c) { [\"a\", 1] }", "part 1:"),
        ];
        for (script, why) in shapes {
            match encoder(script).encode(&command(b"x")) {
                Encoded::Failed(MapError::BadShape { at, why: got }) => {
                    assert_eq!(at, "relay.rhai");
                    assert!(got.contains(why), "{script}: {got}");
                }
                other => panic!("{script}: expected a bad shape, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_script_without_encode_is_refused_and_the_limits_hold() {
        let err = Encoder::new(
            "relay",
            Path::new("r.rhai"),
            "fn map(f) { () }",
            ScriptLimits::default(),
        )
        .expect_err("no encode");
        assert!(err.to_string().contains("no `fn encode(command)`"), "{err}");
        assert!(!Encoder::script_defines_encode("fn map(f) { () }"));
        assert!(Encoder::script_defines_encode(
            "fn map(f) { () } fn encode(c) { () }"
        ));
        let looping = encoder("fn encode(c) { loop { } }");
        assert!(matches!(
            looping.encode(&command(b"x")),
            Encoded::Failed(MapError::TooManyOperations { .. } | MapError::Timeout { .. })
        ));
    }
}
