//! The gateway's side of reading YAML: a `Report` that words serde's messages
//! for people who write YAML, and small helpers over the parsed tree.

use std::path::Path;

use config_report::Report;
use serde_yaml_ng::Value;

/// A report of the errors of one gateway or mapping file.
pub(crate) fn report<'a>(file: &'a Path, text: &'a str) -> Report<'a> {
    Report::new(file, text).with_wording(words)
}

/// serde's messages for people who write YAML: no Rust type names.
fn words(mut message: String) -> String {
    // Users write numbers, not Rust integer types.
    for (rust, words) in [
        ("u8", "a whole number from 0 to 255"),
        ("u16", "a whole number from 0 to 65535"),
        ("u32", "a whole number from 0 to 4294967295"),
        ("u64", "a whole number from 0"),
        ("usize", "a whole number from 0"),
        ("i64", "a whole number"),
        ("f64", "a number"),
    ] {
        if let Some(head) = message.strip_suffix(&format!("expected {rust}")) {
            message = format!("{head}expected {words}");
        }
    }
    if let Some(at) = message.find("expected internally tagged enum") {
        message.replace_range(at.., "expected a mapping with a `type` key");
    }
    message
}

/// The keys of a mapping value, for "unknown key" checks.
pub(crate) fn keys(value: &Value) -> Vec<String> {
    match value {
        Value::Mapping(map) => map
            .keys()
            .map(|k| match k {
                Value::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// What a value is, in words for an error message.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
