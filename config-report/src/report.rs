//! Reading a YAML tree in pieces, so that one bad field does not hide the others.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use crate::error::ConfigError;
use crate::path::{locate, repeated_key, FieldPath, Segment};

/// The errors of one file, each placed at its field's line and column.
#[derive(Debug)]
pub struct Report<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
    wording: fn(String) -> String,
}

impl<'a> Report<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Report {
            file,
            text,
            errors: Vec::new(),
            wording: |message| message,
        }
    }

    /// Rewrites every deserialization message (e.g. Rust type names into words).
    pub fn with_wording(mut self, wording: fn(String) -> String) -> Self {
        self.wording = wording;
        self
    }

    /// Whether no error was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many errors were recorded so far.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// The errors, in the order they were found.
    pub fn into_errors_as_found(self) -> Vec<ConfigError> {
        self.errors
    }

    /// The errors, in the order they appear in the file.
    pub fn into_errors(mut self) -> Vec<ConfigError> {
        self.errors
            .sort_by_key(|e| (e.line.is_none(), e.line, e.column));
        self.errors
    }

    /// Records a problem with the field at `path`.
    pub fn add(&mut self, path: &FieldPath, message: impl Into<String>) {
        let at = locate(self.text, path);
        self.add_at(path, at, message);
    }

    fn add_at(&mut self, path: &FieldPath, at: Option<(usize, usize)>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: at.map(|(line, _)| line),
            column: at.map(|(_, column)| column),
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
    pub fn piece<T: DeserializeOwned>(&mut self, path: &FieldPath, value: &Value) -> Option<T> {
        self.read(path, value, |_| None)
    }

    /// Deserializes the whole file like `piece`. The first error is placed where
    /// serde_yaml_ng finds it reading the text (a wrong value at the value, not
    /// at its key); the others at their field.
    pub fn whole<T: DeserializeOwned>(&mut self, value: &Value) -> Option<T> {
        let text = self.text;
        self.read(&FieldPath::root(), value, |path| {
            let deserializer = serde_yaml_ng::Deserializer::from_str(text);
            let e = serde_path_to_error::deserialize::<_, T>(deserializer).err()?;
            let at = e.inner().location()?;
            (field_path(e.path()) == *path).then(|| (at.line(), at.column()))
        })
    }

    fn read<T: DeserializeOwned>(
        &mut self,
        path: &FieldPath,
        value: &Value,
        first_at: impl Fn(&FieldPath) -> Option<(usize, usize)>,
    ) -> Option<T> {
        let mut value = match value {
            Value::Null => Value::Mapping(Default::default()),
            other => other.clone(),
        };
        let mut removed: Vec<String> = Vec::new();
        loop {
            let e = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(piece) if removed.is_empty() => return Some(piece),
                Ok(_) => return None,
                Err(e) => e,
            };
            let relative = field_path(e.path());
            let message = e.into_inner().to_string();
            // serde's own words for a field it needs, which was taken out above.
            let missing_removed = removed
                .iter()
                .any(|key| message.starts_with(&format!("missing field `{key}`")));
            if missing_removed {
                return None;
            }
            let message = (self.wording)(users_words(message));
            let field = path.join(&relative);
            match removed.is_empty().then(|| first_at(&relative)).flatten() {
                Some(at) => self.add_at(&field, Some(at), message),
                None => self.add(&field, message),
            }
            let first = match relative.0.into_iter().next() {
                Some(Segment::Key(key)) => key,
                _ => return None,
            };
            let Value::Mapping(map) = &mut value else {
                return None;
            };
            map.shift_remove(first.as_str())?;
            removed.push(first);
        }
    }
}

/// Parses a whole file to a YAML tree; a syntax error comes back with its
/// position, a key written twice in one mapping with its path.
pub fn parse_file(file: &Path, text: &str) -> Result<Value, ConfigError> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, Value>(deserializer).map_err(|e| {
        let at = e.inner().location().map(|at| (at.line(), at.column()));
        let mapping = field_path(e.path());
        let (field, message) = match repeated_key(text, &mapping) {
            Some(key) => (
                mapping.key(&key).to_string(),
                format!("`{key}` is written twice in the same mapping"),
            ),
            None => {
                let mut message = e.inner().to_string();
                if let Some((line, column)) = at {
                    message = message.replacen(&format!(" at line {line} column {column}"), "", 1);
                }
                (String::new(), message)
            }
        };
        ConfigError {
            file: file.to_path_buf(),
            line: at.map(|(line, _)| line),
            column: at.map(|(_, column)| column),
            field,
            message,
        }
    })
}

/// serde's path as a `FieldPath`; an unknown step (a non-string key) ends it.
fn field_path(path: &serde_path_to_error::Path) -> FieldPath {
    use serde_path_to_error::Segment as S;
    let mut out = FieldPath::root();
    for segment in path.iter() {
        match segment {
            S::Seq { index } => out = out.index(*index),
            S::Map { key } => out = out.key(key),
            S::Enum { .. } => {}
            S::Unknown => break,
        }
    }
    out
}

/// Users write mappings, not Rust structs.
fn users_words(mut message: String) -> String {
    if let Some(at) = message.find("expected struct ") {
        message.replace_range(at.., "expected a mapping of keys");
    }
    message
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limits {
        max: u16,
        #[serde(default)]
        min: u16,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        #[serde(default)]
        name: String,
        limits: Option<Limits>,
        #[serde(default)]
        items: Vec<Limits>,
    }

    fn shown(errors: Vec<ConfigError>) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_bad_key_of_a_piece_is_reported_at_its_field() {
        let text = "name: [x]\nlimits:\n  max: lots\nitems:\n  - max: 1\n    mni: 2\nextra: 1\n";
        let value = parse_file(Path::new("f.yaml"), text).expect("YAML");
        let mut report = Report::new(Path::new("f.yaml"), text);
        assert!(report.piece::<File>(&FieldPath::root(), &value).is_none());
        assert_eq!(
            shown(report.into_errors()),
            [
                "f.yaml:1:1: name: invalid type: sequence, expected a string",
                "f.yaml:3:3: limits.max: invalid type: string \"lots\", expected u16",
                "f.yaml:6:5: items[0].mni: unknown field `mni`, expected `max` or `min`",
                "f.yaml:7:1: extra: unknown field `extra`, expected one of `name`, `limits`, `items`",
            ]
        );
    }

    #[test]
    fn the_first_error_of_a_whole_file_is_placed_where_the_text_has_it() {
        let text = "limits:\n  max: lots\nitems: 3\n";
        let value = parse_file(Path::new("f.yaml"), text).expect("YAML");
        let mut report = Report::new(Path::new("f.yaml"), text);
        assert!(report.whole::<File>(&value).is_none());
        assert_eq!(
            shown(report.into_errors_as_found()),
            [
                "f.yaml:2:8: limits.max: invalid type: string \"lots\", expected u16",
                "f.yaml:3:1: items: invalid type: integer `3`, expected a sequence",
            ]
        );
    }

    #[test]
    fn a_missing_field_names_the_mapping_and_a_struct_reads_as_a_mapping() {
        let text = "limits:\n  min: 1\nitems: [4]\n";
        let value = parse_file(Path::new("f.yaml"), text).expect("YAML");
        let mut report = Report::new(Path::new("f.yaml"), text);
        assert!(report.piece::<File>(&FieldPath::root(), &value).is_none());
        assert_eq!(
            shown(report.into_errors()),
            [
                "f.yaml:1:1: limits: missing field `max`",
                "f.yaml:3:1: items[0]: invalid type: integer `4`, expected a mapping of keys",
            ]
        );
    }

    #[test]
    fn a_key_written_twice_is_named_with_its_mapping() {
        let text = "items:\n  - max: 1\n    min: 2\n    max: 3\n";
        let e = parse_file(Path::new("f.yaml"), text).expect_err("a repeated key");
        assert_eq!(e.field, "items[0].max");
        assert_eq!(e.message, "`max` is written twice in the same mapping");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn a_syntax_error_has_its_position_and_no_field() {
        let e = parse_file(Path::new("f.yaml"), "a: 1\n b: [\n").expect_err("broken YAML");
        assert_eq!((e.field.as_str(), e.line.is_some()), ("", true), "{e}");
        assert!(
            !e.message.contains(" at line "),
            "position not repeated: {e}"
        );
    }
}
