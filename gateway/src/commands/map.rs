//! `mqgate map --script FILE --hex HEX [--meta key=value ...]`: run one script on
//! one frame and print the messages as JSON lines — to try a decoder before deploying it.

use std::path::Path;

use mqtt_proto::codec::QoS;

use super::{message_json, EXIT_CONFIG};
use crate::mapping::{frame_from_hex, Mapped, Mapper, MappingDefaults, ScriptLimits};

#[derive(Debug)]
pub struct MapArgs<'a> {
    pub script: &'a Path,
    pub hex: &'a str,
    pub meta: &'a [(String, String)],
    pub source: &'a str,
    pub topic: &'a str,
}

pub fn run(args: &MapArgs<'_>) -> u8 {
    let text = match std::fs::read_to_string(args.script) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", args.script.display());
            return EXIT_CONFIG;
        }
    };
    let defaults = MappingDefaults {
        topic: args.topic.to_string(),
        qos: QoS::AtLeastOnce,
        retain: false,
        filter: None,
    };
    let mapper = match Mapper::new(
        args.source,
        Some((args.script, &text)),
        defaults,
        ScriptLimits::default(),
    ) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    let frame = match frame_from_hex(args.source, args.hex, args.meta) {
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
            eprintln!("mqgate: the script filtered this frame out (no message)");
            0
        }
        Mapped::Failed(e) => {
            eprintln!("{e}");
            1
        }
    }
}
