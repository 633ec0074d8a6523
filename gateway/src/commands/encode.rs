//! `mqgate encode (--script FILE | --mapping FILE) (--hex H | --text T | --json J)
//! [--topic T] [--source S]`: run a commands script's `encode(command)` on one
//! command and print what it would send, one JSON line per part — to try a script
//! without a device, as `mqgate map` does for `map(frame)`.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use mqtt_proto::codec::QoS;

use super::EXIT_CONFIG;
use crate::config::load_mapping_file;
use crate::mapping::{Encoded, Encoder, ScriptLimits};
use crate::message::{Command, Part};

/// The topic a command seems to come on without `--topic`.
pub const DEFAULT_TOPIC: &str = "cmd/{source}/send";
const DEFAULT_SOURCE: &str = "encode";

#[derive(Debug)]
pub struct EncodeArgs<'a> {
    pub script: Option<&'a Path>,
    pub mapping: Option<&'a Path>,
    pub payload: &'a Payload,
    pub topic: Option<&'a str>,
    pub source: Option<&'a str>,
}

/// A command's payload as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Hex(String),
    Text(String),
    Json(String),
}

impl Payload {
    /// The bytes; `--json` must be JSON, `--hex` hex digits (spaces and `:` allowed).
    pub fn bytes(&self) -> Result<Bytes, String> {
        match self {
            Payload::Text(t) => Ok(Bytes::from(t.clone())),
            Payload::Json(j) => serde_json::from_str::<serde_json::Value>(j)
                .map(|_| Bytes::from(j.clone()))
                .map_err(|e| format!("--json: {e}")),
            Payload::Hex(h) => {
                let digits: String = h.chars().filter(|c| !matches!(c, ' ' | ':')).collect();
                if !digits.len().is_multiple_of(2) {
                    return Err("--hex: an odd number of hex digits".into());
                }
                (0..digits.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&digits[i..i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map(Bytes::from)
                    .map_err(|_| format!("--hex: {h:?} is not hex"))
            }
        }
    }
}

pub fn run(args: &EncodeArgs<'_>) -> u8 {
    let (encoder, source) = match (args.mapping, args.script) {
        (Some(path), _) => match from_mapping(path) {
            Ok((encoder, source)) => (encoder, args.source.map_or(source, str::to_string)),
            Err(code) => return code,
        },
        (None, Some(script)) => {
            let source = args.source.unwrap_or(DEFAULT_SOURCE);
            let text = match std::fs::read_to_string(script) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{}: cannot read: {e}", script.display());
                    return EXIT_CONFIG;
                }
            };
            match Encoder::new(source, script, &text, ScriptLimits::default()) {
                Ok(e) => (e, source.to_string()),
                Err(e) => {
                    eprintln!("{e}");
                    return EXIT_CONFIG;
                }
            }
        }
        (None, None) => {
            eprintln!("mqgate: give --script FILE or --mapping FILE");
            return EXIT_CONFIG;
        }
    };
    let command = match command(args.payload, args.topic, &source) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match encoder.encode(&command) {
        Encoded::Send(parts) => {
            for part in &parts {
                println!("{}", part_json(part));
            }
            0
        }
        Encoded::Dropped => {
            eprintln!("mqgate: the script dropped this command (nothing would be sent)");
            0
        }
        Encoded::Failed(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// The command the arguments give: QoS 1, on `topic` or `cmd/<source>/send`;
/// a bad payload is printed and is a usage error.
pub(super) fn command(payload: &Payload, topic: Option<&str>, source: &str) -> Result<Command, u8> {
    let payload = payload.bytes().map_err(|e| {
        eprintln!("mqgate: {e}");
        EXIT_CONFIG
    })?;
    let topic = topic.map_or_else(|| DEFAULT_TOPIC.replace("{source}", source), str::to_string);
    Ok(Command {
        topic: Arc::from(topic.as_str()),
        payload,
        qos: QoS::AtLeastOnce,
        retain: false,
        source: Arc::from(source),
    })
}

/// A part as a JSON line: `hex`, `text` (when UTF-8), `delay_ms`, `options`.
pub fn part_json(part: &Part) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("hex".into(), crate::mapping::hex(&part.bytes).into());
    if let Ok(text) = std::str::from_utf8(&part.bytes) {
        obj.insert("text".into(), text.into());
    }
    obj.insert("delay_ms".into(), part.delay_ms.into());
    obj.insert("options".into(), part.options.clone().into());
    serde_json::Value::Object(obj).to_string()
}

/// The mapping file's commands encoder, as `run` builds it, and its source id.
fn from_mapping(path: &Path) -> Result<(Encoder, String), u8> {
    let mapping = load_mapping_file(path).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        EXIT_CONFIG
    })?;
    let Some(commands) = &mapping.commands else {
        eprintln!("{}: has no `commands:` section", path.display());
        return Err(EXIT_CONFIG);
    };
    let encoder = crate::downlink::encoder(&mapping, commands).map_err(|e| {
        eprintln!("{e}");
        EXIT_CONFIG
    })?;
    Ok((encoder, mapping.source))
}
