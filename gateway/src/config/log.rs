//! The `log:` section: how much mqgate logs. `RUST_LOG`, when set, wins.

use config_report::{FieldPath, Report};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`, or per module like
    /// `RUST_LOG` (`info,mqgate::source=debug`). Default `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
        }
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The level must be something `RUST_LOG` would accept, and stricter: each
/// comma-separated part is a level, or `target=level` (`RUST_LOG` would take a
/// lone word such as `verbose` as a target to trace, which is never what was meant).
pub(crate) fn check(c: LogConfig, report: &mut Report<'_>) -> LogConfig {
    let why = directive_error(&c.level).or_else(|| {
        tracing_subscriber::EnvFilter::builder()
            .parse(&c.level)
            .err()
            .map(|e| e.to_string())
    });
    if let Some(why) = why {
        report.add(
            &FieldPath::root().key("log").key("level"),
            format!(
                "{:?} is not a log level: {why} (use error, warn, info, debug or trace, or e.g. `info,mqgate::source=debug`)",
                c.level
            ),
        );
    }
    c
}

fn directive_error(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return Some("it is empty".to_string());
    }
    for part in text.split(',').map(str::trim) {
        let level = match part.rsplit_once('=') {
            Some((target, level)) if !target.is_empty() => level,
            Some(_) => return Some(format!("`{part}` has no target before `=`")),
            None => part,
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Some(format!("`{level}` is not one of {}", LEVELS.join(", ")));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::directive_error;

    #[test]
    fn levels_and_targets_with_levels_pass_and_lone_words_do_not() {
        assert_eq!(directive_error("info"), None);
        assert_eq!(directive_error("warn,mqgate::source=debug"), None);
        assert_eq!(directive_error("DEBUG"), None);
        assert!(directive_error("verbose").is_some());
        assert!(directive_error("mqgate=loud").is_some());
        assert!(directive_error("=info").is_some());
        assert!(directive_error("").is_some());
    }
}
