//! broker-lite's YAML configuration: typed, defaulted, validated once at load.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::topic::validate_topic_filter;

/// The whole broker configuration. Every field has a default, so an empty file is valid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// TCP address of the MQTT listener.
    pub listen: SocketAddr,
    pub limits: Limits,
    /// What a persistent session's queue does when it is full.
    pub queue_overflow: QueueOverflow,
    /// Topic filters that clients may not subscribe to (SUBACK 0x80).
    pub deny_subscribe: Vec<String>,
    /// Seconds between `$SYS/broker/...` updates; 0 turns them off.
    pub sys_interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest packet accepted, fixed header included, in bytes.
    pub max_packet_size: usize,
    /// Connections open at once; more are closed right after accept.
    pub max_connections: usize,
    /// Messages queued per session (offline, or past the in-flight window).
    pub max_queued_messages: usize,
    /// Outgoing QoS 1/2 messages awaiting acknowledgement per session.
    pub max_inflight: u16,
    /// Upper bound on the keep-alive the server enforces, in seconds.
    pub max_keep_alive: u16,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_secs: u64,
}

/// Which message a full session queue gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QueueOverflow {
    #[default]
    DropOldest,
    DropNewest,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            limits: Limits::default(),
            queue_overflow: QueueOverflow::DropOldest,
            deny_subscribe: Vec::new(),
            sys_interval_secs: 10,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: 1024 * 1024,
            max_connections: 1024,
            max_queued_messages: 1000,
            max_inflight: 32,
            max_keep_alive: 65535,
            connect_timeout_secs: 10,
        }
    }
}

/// A configuration error: file, line (when known), field path and cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub field: String,
    pub message: String,
}

impl ConfigError {
    /// An error about the file as a whole (unreadable, not YAML at all).
    fn whole_file(file: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line: None,
            column: None,
            field: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `file:line:column: field: message`, leaving out what is not known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Read, parse and validate a YAML file; every error found is returned.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![ConfigError::whole_file(&file, format!("cannot read: {e}"))])?;
        Config::from_yaml_str(&text, &file)
    }

    /// Parse and validate YAML text; `file` names it in the errors.
    pub fn from_yaml_str(text: &str, file: &str) -> Result<Config, Vec<ConfigError>> {
        let config = match serde_yaml_ng::from_str::<Config>(text) {
            Ok(config) => config,
            // A document that is only `~` or `null` means "all defaults", like an empty one.
            Err(_) if is_null_document(text) => Config::default(),
            Err(e) => return Err(vec![syntax_error(&e, file)]),
        };
        let errors: Vec<ConfigError> = config
            .problems()
            .into_iter()
            .map(|(path, message)| {
                let (line, column) = match locate(text, &path) {
                    Some((line, column)) => (Some(line), Some(column)),
                    None => (None, None),
                };
                ConfigError {
                    file: file.to_string(),
                    line,
                    column,
                    field: path_string(&path),
                    message,
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// Every semantic problem: the field path and what is wrong with it.
    fn problems(&self) -> Vec<(Vec<Segment>, String)> {
        let mut problems = Vec::new();
        for (i, filter) in self.deny_subscribe.iter().enumerate() {
            if let Err(e) = validate_topic_filter(filter) {
                let path = vec![Segment::Key("deny_subscribe"), Segment::Index(i)];
                problems.push((path, format!("{filter:?} is not a valid topic filter: {e}")));
            }
        }
        let limits = &self.limits;
        let limit = |name: &'static str, value: u64, min: u64, max: u64| {
            let path = vec![Segment::Key("limits"), Segment::Key(name)];
            if value < min {
                Some((path, format!("must be at least {min}, got {value}")))
            } else if value > max {
                Some((path, format!("must be at most {max}, got {value}")))
            } else {
                None
            }
        };
        problems.extend(
            [
                limit(
                    "max_packet_size",
                    limits.max_packet_size as u64,
                    MIN_PACKET_SIZE,
                    MAX_PACKET_SIZE,
                ),
                limit(
                    "max_connections",
                    limits.max_connections as u64,
                    1,
                    u64::MAX,
                ),
                limit(
                    "max_queued_messages",
                    limits.max_queued_messages as u64,
                    1,
                    u64::MAX,
                ),
                limit("max_inflight", limits.max_inflight.into(), 1, u64::MAX),
                limit("max_keep_alive", limits.max_keep_alive.into(), 1, u64::MAX),
                limit(
                    "connect_timeout_secs",
                    limits.connect_timeout_secs,
                    1,
                    u64::MAX,
                ),
            ]
            .into_iter()
            .flatten(),
        );
        problems
    }
}

/// Smallest `max_packet_size` accepted: room for a CONNECT with a short client id.
pub const MIN_PACKET_SIZE: u64 = 64;

/// Largest MQTT packet: a 4-byte remaining length of 268,435,455 [MQTT-2.2.3].
pub const MAX_PACKET_SIZE: u64 = 268_435_455;

fn is_null_document(text: &str) -> bool {
    matches!(
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text),
        Ok(serde_yaml_ng::Value::Null)
    )
}

/// Turns a parse or type error into a `ConfigError` with field and position apart.
fn syntax_error(e: &serde_yaml_ng::Error, file: &str) -> ConfigError {
    let mut message = e.to_string();
    let location = e.location();
    if let Some(at) = &location {
        let suffix = format!(" at line {} column {}", at.line(), at.column());
        message = message.replacen(&suffix, "", 1);
    }
    // serde_yaml_ng writes `path: message`; the path is absent at the top level.
    let mut field = String::new();
    if let Some((path, rest)) = message.split_once(": ") {
        let is_path = !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c));
        if is_path {
            field = path.to_string();
            message = rest.to_string();
        }
    }
    // Name the unknown or repeated key itself, not the mapping holding it.
    for prefix in ["unknown field `", "duplicate field `"] {
        let key = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('`'))
            .map(|(key, _)| key.to_string());
        if let Some(key) = key {
            field = if field.is_empty() {
                key
            } else {
                format!("{field}.{key}")
            };
        }
    }
    // Users write mappings, not Rust structs.
    if let Some(at) = message.find("expected struct ") {
        message.replace_range(at.., "expected a mapping of keys");
    }
    ConfigError {
        file: file.to_string(),
        line: location.as_ref().map(|at| at.line()),
        column: location.as_ref().map(|at| at.column()),
        field,
        message,
    }
}

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Key(&'static str),
    Index(usize),
}

/// `limits.max_inflight`, `deny_subscribe[2]`.
fn path_string(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) if out.is_empty() => out.push_str(key),
            Segment::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A YAML line that holds something: its 1-based number, indentation and text.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

impl Line<'_> {
    fn is_item(&self) -> bool {
        self.text == "-" || self.text.starts_with("- ")
    }

    /// Whether the line is `key:` (bare or quoted) followed by a value, a comment or nothing.
    fn has_key(&self, key: &str) -> bool {
        let rest = [("", ""), ("\"", "\""), ("'", "'")]
            .iter()
            .find_map(|(open, close)| {
                self.text
                    .strip_prefix(open)?
                    .strip_prefix(key)?
                    .strip_prefix(close)?
                    .strip_prefix(':')
            });
        rest.is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    }
}

/// Finds the line and column of the field at `path` by reading the indentation
/// of block-style YAML. When a step cannot be followed (flow style, say), the
/// position of the deepest step found is returned.
fn locate(text: &str, path: &[Segment]) -> Option<(usize, usize)> {
    let lines: Vec<Line<'_>> = text
        .lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let text = raw.trim_start_matches(' ');
            let indent = raw.len() - text.len();
            let text = text.trim_end();
            let blank = text.is_empty() || text.starts_with('#');
            let marker = indent == 0 && (text.starts_with("---") || text.starts_with("..."));
            (!blank && !marker).then_some(Line {
                number: i + 1,
                indent,
                text,
            })
        })
        .collect();
    let mut scope: &[Line<'_>] = &lines;
    let mut found = None;
    for segment in path {
        let indent = scope.first()?.indent;
        let hit = match segment {
            Segment::Key(key) => scope
                .iter()
                .position(|l| l.indent == indent && l.has_key(key))
                .map(|i| (i, indent + 1)),
            Segment::Index(n) => scope
                .iter()
                .enumerate()
                .filter(|(_, l)| l.indent == indent && l.is_item())
                .nth(*n)
                .map(|(i, l)| {
                    let value = l.text[1..].trim_start();
                    (i, indent + 1 + l.text.len() - value.len())
                }),
        };
        let Some((i, column)) = hit else {
            return found;
        };
        found = Some((scope[i].number, column));
        // What belongs to this step: deeper lines, and for a key also the
        // `- ` items at its own indentation.
        let rest = &scope[i + 1..];
        let belongs = |l: &Line<'_>| {
            l.indent > indent
                || (l.indent == indent && l.is_item() && matches!(segment, Segment::Key(_)))
        };
        let end = rest.iter().position(|l| !belongs(l)).unwrap_or(rest.len());
        scope = &rest[..end];
        if scope.is_empty() {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests;
