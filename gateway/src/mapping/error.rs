//! Mapping errors: `MappingError` when a script or template does not compile,
//! `MapError` when one frame cannot be mapped (the frame then goes to the dead-letter topic).

use std::time::Duration;

use rhai::{EvalAltResult, ParseError, Position};

use super::engine::{ScriptLimits, DEADLINE_TOKEN, MAX_CALL_LEVELS};

/// A mapping that cannot be built: its script, filter or topic template is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("{path}:{line}:{column}: {message}")]
    Compile {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: no `fn map(frame)` found; a mapping script defines `fn map(frame)` and returns its messages")]
    NoMapFunction { path: String },
    #[error("{path}: no `fn encode(command)` found; a commands script defines `fn encode(command)` and returns the bytes to send")]
    NoEncodeFunction { path: String },
    #[error("{path}: top-level `{keyword} {name}` is never seen by `fn map`: statements outside functions are not run; declare it inside the function that uses it")]
    TopLevelVariable {
        path: String,
        keyword: &'static str,
        name: String,
    },
    /// A call to a function that neither mqgate, Rhai nor the script defines.
    #[error("{at}:{line}:{column}: calls `{name}`, a function that neither the script, its library, mqgate's helpers nor Rhai defines{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownFunction {
        /// The script file, or `filter "…"`.
        at: String,
        line: usize,
        column: usize,
        name: String,
        suggestion: Option<String>,
    },
    #[error("filter {expr:?}:{line}:{column}: {message}")]
    Filter {
        expr: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("topic template {template:?}: {why}")]
    Template { template: String, why: String },
    /// A module of the script's library that cannot be read or fails while it
    /// loads; the message names its file (and line when known).
    #[error("{message}")]
    Library { message: String },
}

impl MappingError {
    pub(crate) fn unknown_call(at: String, call: super::calls::UnknownCall) -> MappingError {
        let (line, column) = line_col(call.position);
        MappingError::UnknownFunction {
            at,
            line,
            column,
            name: call.name,
            suggestion: call.suggestion,
        }
    }

    pub(crate) fn compile(path: &str, e: &ParseError) -> MappingError {
        let (line, column) = line_col(e.position());
        let mut message = e.0.to_string();
        if message.contains("'eval' is disabled") {
            message.push_str(": mapping scripts cannot evaluate code at run time");
        }
        MappingError::Compile {
            path: path.to_string(),
            line,
            column,
            message,
        }
    }
}

/// Why one frame could not be mapped. `at` names the script file with line and
/// column when known (`scripts/nmea.rhai:12:5`), or the filter / source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("{at}: runtime error: {message}")]
    Runtime { at: String, message: String },
    #[error("{at}: exceeded {limit} operations")]
    TooManyOperations { at: String, limit: u64 },
    #[error("{at}: took longer than {} ms", .limit.as_millis())]
    Timeout { at: String, limit: Duration },
    #[error("{at}: {what}")]
    Limit { at: String, what: String },
    #[error("{at}: returned a bad shape: {why}")]
    BadShape { at: String, why: String },
    /// A message its source could not read (a network server's event that is
    /// not what its format says), before any script.
    #[error("{at}: {why}")]
    Unreadable { at: String, why: String },
    #[error("{at}: bad topic {topic:?}: {why}")]
    BadTopic {
        at: String,
        topic: String,
        why: String,
    },
    #[error("{at}: topic template {template:?} has no value for placeholder {{{name}}}")]
    UnknownPlaceholder {
        at: String,
        template: String,
        name: String,
    },
}

impl MapError {
    /// Where it happened: `file:line:column`, `file`, or the filter / source.
    pub fn at(&self) -> &str {
        match self {
            MapError::Runtime { at, .. }
            | MapError::TooManyOperations { at, .. }
            | MapError::Timeout { at, .. }
            | MapError::Limit { at, .. }
            | MapError::BadShape { at, .. }
            | MapError::Unreadable { at, .. }
            | MapError::BadTopic { at, .. }
            | MapError::UnknownPlaceholder { at, .. } => at,
        }
    }

    /// The script line it happened on, when known (`at` ends in `:line:column`
    /// or `:line`, as `at()` below writes it).
    pub fn line(&self) -> Option<u64> {
        let mut parts = self.at().rsplit(':');
        let last = parts.next()?.parse::<u64>().ok()?;
        match parts.next().map(str::parse::<u64>) {
            Some(Ok(line)) => Some(line),
            _ => Some(last),
        }
    }
}

fn line_col(pos: Position) -> (usize, usize) {
    (pos.line().unwrap_or(0), pos.position().unwrap_or(0))
}

/// `label:line:column`, or just `label` without a position.
pub(crate) fn at(label: &str, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{label}:{l}:{c}"),
        (Some(l), None) => format!("{label}:{l}"),
        _ => label.to_string(),
    }
}

/// A Rhai evaluation error as a `MapError` located in `label`.
pub(crate) fn from_eval(label: &str, err: &EvalAltResult, limits: &ScriptLimits) -> MapError {
    let mut inner = err;
    let mut functions = Vec::new();
    // A function of a library module names its own file.
    let mut file = label;
    while let EvalAltResult::ErrorInFunctionCall(name, source, e, _) = inner {
        functions.push(name.as_str());
        if !source.is_empty() {
            file = source;
        }
        inner = e;
    }
    let at = at(file, inner.position());
    match inner {
        EvalAltResult::ErrorTooManyOperations(_) => MapError::TooManyOperations {
            at,
            limit: limits.max_operations,
        },
        EvalAltResult::ErrorTerminated(token, _)
            if token.clone().into_string().ok().as_deref() == Some(DEADLINE_TOKEN) =>
        {
            MapError::Timeout {
                at,
                limit: limits.max_call_time,
            }
        }
        EvalAltResult::ErrorStackOverflow(_) => MapError::Limit {
            at,
            what: format!("stack overflow: more than {MAX_CALL_LEVELS} nested function calls"),
        },
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            let limit = match what.as_str() {
                w if w.contains("string") => format!("{} bytes", limits.max_string_size),
                w if w.contains("map") => format!("{} entries", limits.max_map_size),
                _ => format!("{} elements", limits.max_array_size),
            };
            MapError::Limit {
                at,
                what: format!("size limit: {what} exceeds {limit}"),
            }
        }
        _ => {
            let mut message = match inner {
                EvalAltResult::ErrorRuntime(v, _) if v.is_string() => v.to_string(),
                EvalAltResult::ErrorRuntime(v, _) if v.is_unit() => "throw without a value".into(),
                EvalAltResult::ErrorRuntime(v, _) => format!("thrown {v:?}"),
                other => without_position(other),
            };
            if matches!(inner, EvalAltResult::ErrorModuleNotFound(..)) {
                message.push_str(
                    " (import modules inside the function that uses them: top-level statements are not run)",
                );
            }
            if let Some(f) = functions.last() {
                message.push_str(&format!(" (in fn {f})"));
            }
            MapError::Runtime { at, message }
        }
    }
}

/// Rhai's message for `e` without its trailing `(line l, position c)`.
fn without_position(e: &EvalAltResult) -> String {
    let text = e.to_string();
    let pos = e.position();
    if pos.is_none() {
        return text;
    }
    let suffix = format!(" ({pos})");
    match text.strip_suffix(&suffix) {
        Some(t) => t.to_string(),
        None => text,
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;

    fn runtime(at: &str) -> MapError {
        MapError::Runtime {
            at: at.into(),
            message: "x".into(),
        }
    }

    #[test]
    fn the_line_is_read_from_where_the_error_happened() {
        assert_eq!(runtime("scripts/nmea.rhai:12:5").line(), Some(12));
        assert_eq!(runtime("scripts/nmea.rhai:7").line(), Some(7));
        assert_eq!(runtime("scripts/nmea.rhai").line(), None);
        assert_eq!(runtime("filter of source gps").line(), None);
    }
}
