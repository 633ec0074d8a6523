//! A vendor's codec in The Things Network's interface: `decodeUplink({bytes, fPort,
//! recvTime})` → `{data, warnings, errors}` and `encodeDownlink({data})` →
//! `{bytes, fPort, warnings, errors}`. What the codec returns is read by the pure
//! functions [`uplink`] and [`downlink`].

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::sandbox::{Entry, JsFailure, JsFile, JsLimits, Sandbox};
use crate::frame::Frame;
use crate::mapping::error::{MapError, MappingError};
use crate::mapping::json_kind;
use crate::mapping::time::unix_millis;

/// Most warnings or errors of one call that are kept (and logged).
const MAX_NOTES: usize = 16;
/// Longest warning or error kept, in characters.
const MAX_NOTE_CHARS: usize = 200;

/// A codec compiled once into its own runtime, called per frame.
#[derive(Debug)]
pub struct JsCodec {
    sandbox: Sandbox,
    label: String,
    limits: JsLimits,
    has_decode: bool,
    has_encode: bool,
}

/// What `decodeUplink` gave for one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Uplink {
    /// The payload to publish.
    pub data: Value,
    pub warnings: Vec<String>,
}

/// What `encodeDownlink` gave for one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downlink {
    pub bytes: Vec<u8>,
    pub fport: Option<u8>,
    pub warnings: Vec<String>,
}

impl JsCodec {
    /// Load the `libraries` (in order) and then the codec, which must define
    /// `decodeUplink` or `encodeDownlink`.
    pub fn load(
        codec: &Path,
        text: &str,
        libraries: &[PathBuf],
        limits: JsLimits,
    ) -> Result<JsCodec, MappingError> {
        let mut files = Vec::with_capacity(libraries.len() + 1);
        for path in libraries {
            let text = std::fs::read_to_string(path).map_err(|e| MappingError::Library {
                message: format!("{}: cannot read: {e}", path.display()),
            })?;
            files.push(JsFile {
                path: path.clone(),
                text,
            });
        }
        files.push(JsFile {
            path: codec.to_path_buf(),
            text: text.to_string(),
        });
        let label = codec.display().to_string();
        let sandbox = Sandbox::new(files, limits.clone()).map_err(|(path, failure)| {
            let file = path.display().to_string();
            MappingError::Library {
                message: at_message(&file, failure, &limits).to_string(),
            }
        })?;
        let has_decode = sandbox.defines("decodeUplink");
        let has_encode = sandbox.defines("encodeDownlink");
        if !has_decode && !has_encode {
            return Err(MappingError::Library {
                message: format!(
                    "{label}: defines neither `decodeUplink(input)` nor `encodeDownlink(input)`; a codec in The Things Network's interface defines them as global functions"
                ),
            });
        }
        Ok(JsCodec {
            sandbox,
            label,
            limits,
            has_decode,
            has_encode,
        })
    }

    /// The codec file, as errors name it.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the codec defines `decodeUplink`.
    pub fn decodes(&self) -> bool {
        self.has_decode
    }

    /// Whether the codec defines `encodeDownlink`.
    pub fn encodes(&self) -> bool {
        self.has_encode
    }

    /// Run `decodeUplink` on one frame; its port is the frame's meta `fport`.
    pub fn decode(&self, frame: &Frame) -> Result<Uplink, MapError> {
        let fport = fport(frame).map_err(|message| self.runtime(message))?;
        let input = json!({ "bytes": &frame.bytes[..], "fPort": fport, "recvTime": 0 });
        let received_ms = unix_millis(frame.received_at) as f64;
        let out = self.call(Entry::Decode, &input, received_ms)?;
        uplink(out).map_err(|message| self.runtime(message))
    }

    /// Run `encodeDownlink` on a command's data.
    pub fn encode(&self, data: &Value, now_ms: f64) -> Result<Downlink, MapError> {
        let input = json!({ "data": data });
        let out = self.call(Entry::Encode, &input, now_ms)?;
        downlink(out).map_err(|message| self.runtime(message))
    }

    fn call(&self, entry: Entry, input: &Value, received_ms: f64) -> Result<Value, MapError> {
        let (name, defined) = match entry {
            Entry::Decode => ("decodeUplink", self.has_decode),
            Entry::Encode => ("encodeDownlink", self.has_encode),
        };
        if !defined {
            return Err(self.runtime(format!("defines no function `{name}`")));
        }
        let text = self
            .sandbox
            .call(entry, &input.to_string(), received_ms)
            .map_err(|f| at_message(&self.label, f, &self.limits))?;
        serde_json::from_str(&text)
            .map_err(|e| self.runtime(format!("{name} returned what is not JSON: {e}")))
    }

    fn runtime(&self, message: String) -> MapError {
        MapError::Runtime {
            at: self.label.clone(),
            message,
        }
    }
}

/// A failure of the code as a `MapError` located in `file`, or where the engine
/// says it happened.
fn at_message(file: &str, failure: JsFailure, limits: &JsLimits) -> MapError {
    match failure {
        JsFailure::Thrown { at, message } => MapError::Runtime {
            at: at.unwrap_or_else(|| file.to_string()),
            message,
        },
        JsFailure::Timeout => MapError::Timeout {
            at: file.to_string(),
            limit: limits.max_call_time,
        },
        JsFailure::OutOfMemory => MapError::Limit {
            at: file.to_string(),
            what: format!(
                "memory limit: the codec needed more than {} KiB",
                limits.max_memory / 1024
            ),
        },
        JsFailure::StackOverflow => MapError::Limit {
            at: file.to_string(),
            what: "stack overflow: calls nested too deep".into(),
        },
    }
}

/// The frame's LoRaWAN port: its meta key `fport`.
fn fport(frame: &Frame) -> Result<u8, String> {
    let text = frame.meta.extra.get("fport").ok_or_else(|| {
        "the frame has no `fport` in its meta: a LoRaWAN codec needs the uplink's FPort".to_string()
    })?;
    text.trim()
        .parse::<u8>()
        .map_err(|_| format!("the frame's meta fport {text:?} is not a port (0-255)"))
}

/// `decodeUplink`'s result: its `data` unless it reported `errors`.
pub fn uplink(out: Value) -> Result<Uplink, String> {
    let Value::Object(mut out) = out else {
        return Err(format!(
            "decodeUplink returned {}, not an object {{data, warnings, errors}}",
            json_kind(&out)
        ));
    };
    let errors = notes(out.get("errors"), "errors")?;
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    let warnings = notes(out.get("warnings"), "warnings")?;
    match out.remove("data") {
        None | Some(Value::Null) => Err("decodeUplink returned no `data` and no `errors`".into()),
        Some(data) => Ok(Uplink { data, warnings }),
    }
}

/// `encodeDownlink`'s result: its `bytes` and `fPort` unless it reported `errors`.
pub fn downlink(out: Value) -> Result<Downlink, String> {
    let Value::Object(out) = out else {
        return Err(format!(
            "encodeDownlink returned {}, not an object {{bytes, fPort, warnings, errors}}",
            json_kind(&out)
        ));
    };
    let errors = notes(out.get("errors"), "errors")?;
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    let warnings = notes(out.get("warnings"), "warnings")?;
    let Some(Value::Array(items)) = out.get("bytes") else {
        return Err("encodeDownlink returned no `bytes` array and no `errors`".into());
    };
    let mut bytes = Vec::with_capacity(items.len());
    for (i, b) in items.iter().enumerate() {
        let byte = b
            .as_u64()
            .and_then(|b| u8::try_from(b).ok())
            .ok_or_else(|| format!("encodeDownlink: bytes[{i}] is {b}, not a byte (0-255)"))?;
        bytes.push(byte);
    }
    let fport = match out.get("fPort") {
        None | Some(Value::Null) => None,
        Some(p) => Some(
            p.as_u64()
                .and_then(|p| u8::try_from(p).ok())
                .filter(|p| (1..=223).contains(p))
                .ok_or_else(|| format!("encodeDownlink: fPort {p} is not a port (1-223)"))?,
        ),
    };
    Ok(Downlink {
        bytes,
        fport,
        warnings,
    })
}

/// The `errors` or `warnings` of a result: an array of texts (other values are
/// written as JSON), at most `MAX_NOTES`, each cut to `MAX_NOTE_CHARS`.
fn notes(v: Option<&Value>, key: &str) -> Result<Vec<String>, String> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("`{key}` is {}, not an array", json_kind(other))),
    };
    let mut out: Vec<String> = items
        .iter()
        .take(MAX_NOTES)
        .map(|n| {
            let text = match n {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            cut(text)
        })
        .collect();
    if items.len() > MAX_NOTES {
        out.push(format!("and {} more", items.len() - MAX_NOTES));
    }
    Ok(out)
}

fn cut(text: String) -> String {
    match text.char_indices().nth(MAX_NOTE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::{downlink, uplink};
    use serde_json::json;

    #[test]
    fn uplink_results_read_as_the_interface_says() {
        let ok = uplink(json!({ "data": { "t": 1 }, "warnings": ["w"], "errors": [] })).unwrap();
        assert_eq!(ok.data, json!({ "t": 1 }));
        assert_eq!(ok.warnings, vec!["w".to_string()]);
        for (out, why) in [
            (json!({ "errors": ["a", "b"] }), "a; b"),
            (json!({ "data": { "t": 1 }, "errors": ["bad"] }), "bad"),
            (
                json!({ "data": null }),
                "decodeUplink returned no `data` and no `errors`",
            ),
            (json!({}), "decodeUplink returned no `data` and no `errors`"),
            (
                json!(null),
                "decodeUplink returned null, not an object {data, warnings, errors}",
            ),
            (
                json!({ "data": 1, "errors": "bad" }),
                "`errors` is a string, not an array",
            ),
        ] {
            assert_eq!(uplink(out.clone()).unwrap_err(), why, "{out}");
        }
    }

    #[test]
    fn many_or_long_notes_are_bounded() {
        let many: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
        let out = uplink(json!({ "data": 1, "warnings": many })).unwrap();
        assert_eq!(out.warnings.len(), 17);
        assert_eq!(out.warnings[16], "and 24 more");
        let long = "x".repeat(1000);
        let out = uplink(json!({ "data": 1, "warnings": [long, 5] })).unwrap();
        assert_eq!(out.warnings[0].chars().count(), 201);
        assert_eq!(out.warnings[1], "5");
    }

    #[test]
    fn downlink_results_read_as_the_interface_says() {
        let ok = downlink(json!({ "bytes": [1, 255], "fPort": 10 })).unwrap();
        assert_eq!((ok.bytes, ok.fport), (vec![1, 255], Some(10)));
        let ok = downlink(json!({ "bytes": [] })).unwrap();
        assert_eq!(ok.fport, None);
        for (out, why) in [
            (json!({ "errors": ["no"] }), "no"),
            (
                json!({ "bytes": [256] }),
                "encodeDownlink: bytes[0] is 256, not a byte (0-255)",
            ),
            (
                json!({ "bytes": [1.5] }),
                "encodeDownlink: bytes[0] is 1.5, not a byte (0-255)",
            ),
            (
                json!({ "bytes": [1], "fPort": 0 }),
                "encodeDownlink: fPort 0 is not a port (1-223)",
            ),
            (
                json!({ "fPort": 1 }),
                "encodeDownlink returned no `bytes` array and no `errors`",
            ),
        ] {
            assert_eq!(downlink(out.clone()).unwrap_err(), why, "{out}");
        }
    }
}
