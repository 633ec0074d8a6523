//! Reading YAML in pieces, so that one bad field does not hide the others.
//!
//! A file is parsed to a `Value` once; each section (and each list item) is then
//! deserialized on its own through serde_yaml_ng, which names the field path of
//! what went wrong inside the piece. The path, prefixed with the piece's own,
//! is found in the original text for the line and column.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use super::error::ConfigError;
use super::locate::{locate, parse, FieldPath, Segment};

/// The errors of one file, each placed at its field's line and column.
pub(crate) struct Report<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Report {
            file,
            text,
            errors: Vec::new(),
        }
    }

    /// The errors, in the order they appear in the file.
    pub(crate) fn into_errors(mut self) -> Vec<ConfigError> {
        self.errors
            .sort_by_key(|e| (e.line.is_none(), e.line, e.column));
        self.errors
    }

    /// Records a problem with the field at `path`.
    pub(crate) fn add(&mut self, path: &FieldPath, message: impl Into<String>) {
        let (line, column) = match locate(self.text, path) {
            Some((line, column)) => (Some(line), Some(column)),
            None => (None, None),
        };
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            field: path.to_string(),
            message: message.into(),
        });
    }

    /// Deserializes the piece at `path`; on failure records why and returns `None`.
    /// A key written with no value (`status:`) counts as an empty mapping.
    ///
    /// serde stops at the first error, so the key it names is taken out and the
    /// rest read again, until the rest reads or the error is not about one key:
    /// every bad key of the piece is reported, not only the first.
    pub(crate) fn piece<T: DeserializeOwned>(
        &mut self,
        path: &FieldPath,
        value: &Value,
    ) -> Option<T> {
        let mut value = match value {
            Value::Null => Value::Mapping(Default::default()),
            other => other.clone(),
        };
        let mut removed: Vec<String> = Vec::new();
        loop {
            let text = match serde_yaml_ng::to_string(&value) {
                Ok(text) => text,
                Err(e) => {
                    self.add(path, format!("cannot read this value: {e}"));
                    return None;
                }
            };
            let e = match serde_yaml_ng::from_str::<T>(&text) {
                Ok(piece) if removed.is_empty() => return Some(piece),
                Ok(_) => return None,
                Err(e) => e,
            };
            let (relative, message) = split_error(&e);
            let missing_removed = removed
                .iter()
                .any(|key| message.starts_with(&format!("missing field `{key}`")));
            if missing_removed {
                return None;
            }
            self.add(&path.join_str(&relative), message);
            let first = match parse(&relative).0.into_iter().next() {
                Some(Segment::Key(key)) => key,
                _ => return None,
            };
            let Value::Mapping(map) = &mut value else {
                return None;
            };
            map.remove(first.as_str())?;
            removed.push(first);
        }
    }
}

/// Parses a whole file to a `Value`; a syntax error comes back with its position.
pub(crate) fn parse_file(file: &Path, text: &str) -> Result<Value, ConfigError> {
    serde_yaml_ng::from_str::<Value>(text).map_err(|e| {
        let (field, message) = split_error(&e);
        let location = e.location();
        ConfigError {
            file: file.to_path_buf(),
            line: location.as_ref().map(|at| at.line()),
            column: location.as_ref().map(|at| at.column()),
            field,
            message,
        }
    })
}

/// Splits a serde_yaml_ng error into the field path it names and a message for
/// people who write YAML (no position, no Rust type names).
fn split_error(e: &serde_yaml_ng::Error) -> (String, String) {
    let (mut field, mut message) = broker_lite::yaml_path::split_error(e);
    // A key written twice in one mapping: name the key.
    let repeated = message
        .strip_prefix("duplicate entry with key \"")
        .and_then(|rest| rest.strip_suffix('"'))
        .map(str::to_string);
    if let Some(key) = repeated {
        field = if field.is_empty() {
            key.clone()
        } else {
            format!("{field}.{key}")
        };
        message = format!("`{key}` is written twice in the same mapping");
    }
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
    (field, message)
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
