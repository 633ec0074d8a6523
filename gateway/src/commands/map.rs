//! `mqgate map (--script FILE | --mapping FILE) --hex HEX [--meta key=value ...]`: run
//! one script on one frame and print the messages as JSON lines — to try a decoder
//! before deploying it. With `--mapping`, the mapping file's topic template, qos,
//! retain and filter apply too, so the output is what `mqgate run` would publish.
//! A `.js` script is a JavaScript codec (`decodeUplink`), with the mapping's
//! `libraries:` loaded before it.

use std::path::Path;

use mqtt_proto::codec::QoS;

use super::{message_json, EXIT_CONFIG};
use crate::config::load_mapping_file;
use crate::mapping::{frame_from_hex, CodecOptions, Mapped, Mapper, MappingDefaults, ScriptLimits};
use crate::pipeline::build;

/// The topic template without a mapping file or `--topic`.
const DEFAULT_TOPIC: &str = "sensors/{source}";
/// The source id without a mapping file or `--source`.
const DEFAULT_SOURCE: &str = "map";

#[derive(Debug)]
pub struct MapArgs<'a> {
    pub script: Option<&'a Path>,
    pub mapping: Option<&'a Path>,
    pub hex: &'a str,
    pub meta: &'a [(String, String)],
    pub source: Option<&'a str>,
    pub topic: Option<&'a str>,
}

pub fn run(args: &MapArgs<'_>) -> u8 {
    let (mapper, source) = match (args.mapping, args.script) {
        (Some(path), _) => match from_mapping(path) {
            Ok((mapper, source)) => (mapper, args.source.unwrap_or(&source).to_string()),
            Err(code) => return code,
        },
        (None, Some(script)) => {
            let source = args.source.unwrap_or(DEFAULT_SOURCE);
            match from_script(script, source, args.topic.unwrap_or(DEFAULT_TOPIC)) {
                Ok(mapper) => (mapper, source.to_string()),
                Err(code) => return code,
            }
        }
        (None, None) => {
            eprintln!("mqgate: give --script FILE or --mapping FILE");
            return EXIT_CONFIG;
        }
    };
    let frame = match frame_from_hex(&source, args.hex, args.meta) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mqgate: {e}");
            return EXIT_CONFIG;
        }
    };
    match mapper.map(&frame) {
        Mapped::Messages(messages) => {
            for m in &messages {
                println!("{}", message_json(m));
            }
            0
        }
        Mapped::Filtered => {
            eprintln!("mqgate: the mapping filtered this frame out (no message)");
            0
        }
        Mapped::Failed(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// The mapping file's mapper, as `run` builds it, and its source id.
fn from_mapping(path: &Path) -> Result<(Mapper, String), u8> {
    let mapping = load_mapping_file(path).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        EXIT_CONFIG
    })?;
    let mapper = build::compile(&mapping).map_err(|e| {
        eprintln!("{e}");
        EXIT_CONFIG
    })?;
    Ok((mapper, mapping.source))
}

fn from_script(script: &Path, source: &str, topic: &str) -> Result<Mapper, u8> {
    let text = std::fs::read_to_string(script).map_err(|e| {
        eprintln!("{}: cannot read: {e}", script.display());
        EXIT_CONFIG
    })?;
    let defaults = MappingDefaults {
        topic: topic.to_string(),
        qos: QoS::AtLeastOnce,
        retain: false,
        filter: None,
    };
    Mapper::with_codec(
        source,
        Some((script, &text)),
        defaults,
        ScriptLimits::default(),
        &CodecOptions::default(),
    )
    .map_err(|e| {
        eprintln!("{e}");
        EXIT_CONFIG
    })
}
