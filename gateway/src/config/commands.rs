//! The `commands:` section of a mapping file: which MQTT messages are commands for
//! the mapping's source, how they are encoded, and how many may wait.

use std::path::PathBuf;
use std::time::Duration;

use config_report::{FieldPath, Report};
use mqtt_proto::codec::QoS;
use serde::{Deserialize, Deserializer};

/// Commands a mapping's source takes, as written (paths resolved).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsConfig {
    /// An MQTT filter; `{source}` and `{gateway}` are filled in, e.g. `cmd/{source}/#`.
    pub topic: String,
    /// Which broker's messages are taken; every configured one when left out.
    #[serde(default)]
    pub from: CommandFrom,
    /// A Rhai file with `encode(command)`. Without one, the mapping's own script
    /// when it defines `encode`, else the payload is sent as it is.
    pub script: Option<PathBuf>,
    /// The subscription's QoS (default 1).
    #[serde(
        default = "super::qos::at_least_once",
        deserialize_with = "super::qos::deserialize"
    )]
    pub qos: QoS,
    /// Where each command's result goes; `{topic}` is the command's topic, and
    /// `{source}` / `{gateway}` are filled in. Default `{topic}/result`.
    #[serde(default = "default_result_topic")]
    pub result_topic: String,
    /// Commands that may wait for the device; one more is `rejected` (default 100).
    #[serde(default = "default_max_queued")]
    pub max_queued: usize,
    /// A command that waited this long is `expired` (default 60s; `500ms`, `90s`, `5m`).
    #[serde(
        default = "default_expire_after",
        deserialize_with = "deserialize_duration"
    )]
    pub expire_after: Duration,
    /// Commands sent to the device per minute at most; the others wait their turn.
    pub max_per_minute: Option<u32>,
    /// Keep the queue in `commands.sqlite` in the state folder, across restarts
    /// and crashes.
    #[serde(default)]
    pub durable: bool,
    /// How long the transport may take to confirm one command before it counts
    /// as `failed` (default 5000).
    #[serde(default = "default_send_timeout_ms")]
    pub send_timeout_ms: u64,
}

/// The brokers a mapping takes commands from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandFrom {
    Embedded,
    Upstream,
    /// Every broker that is configured.
    #[default]
    Both,
}

impl CommandFrom {
    pub fn embedded(self) -> bool {
        matches!(self, CommandFrom::Embedded | CommandFrom::Both)
    }

    pub fn upstream(self) -> bool {
        matches!(self, CommandFrom::Upstream | CommandFrom::Both)
    }
}

/// The most commands one source may hold waiting.
pub(super) const MAX_QUEUED_LIMIT: usize = 100_000;

fn default_result_topic() -> String {
    "{topic}/result".to_string()
}

fn default_max_queued() -> usize {
    100
}

fn default_expire_after() -> Duration {
    Duration::from_secs(60)
}

fn default_send_timeout_ms() -> u64 {
    5000
}

/// `500ms`, `90s`, `5m`, `1h`, or a number of seconds; not zero.
pub fn parse_expiry(text: &str) -> Result<Duration, String> {
    let d = super::duration::parse(text)?;
    if d.is_zero() {
        return Err("a duration of 0 would expire every command".into());
    }
    Ok(d)
}

fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    super::duration::deserialize_with(d, parse_expiry)
}

impl CommandsConfig {
    /// Problems beyond the types, reported at `at` (the `commands` key).
    pub(crate) fn check(&self, at: &FieldPath, report: &mut Report<'_>) {
        let filter = fill(&self.topic, "source", "gateway");
        if let Err(e) = mqtt_proto::topic::validate_topic_filter(&filter) {
            report.add(&at.key("topic"), format!("{:?}: {e}", self.topic));
        } else if let Some(name) = unknown_placeholder(&self.topic, &["source", "gateway"]) {
            report.add(
                &at.key("topic"),
                format!("`{{{name}}}` is not known here: use {{source}} or {{gateway}}"),
            );
        }
        let result = fill(&self.result_topic, "source", "gateway").replace("{topic}", "t");
        if let Some(name) = unknown_placeholder(&self.result_topic, &["source", "gateway", "topic"])
        {
            report.add(
                &at.key("result_topic"),
                format!("`{{{name}}}` is not known here: use {{topic}}, {{source}} or {{gateway}}"),
            );
        } else if let Err(e) = mqtt_proto::topic::validate_topic_name(&result) {
            report.add(
                &at.key("result_topic"),
                format!("{:?}: {e}", self.result_topic),
            );
        } else if self.result_topic.matches("{topic}").count() > 1 {
            report.add(&at.key("result_topic"), "may hold `{topic}` once at most");
        }
        if self.max_queued == 0 || self.max_queued > MAX_QUEUED_LIMIT {
            report.add(
                &at.key("max_queued"),
                format!("must be 1 to {MAX_QUEUED_LIMIT}"),
            );
        }
        if self.max_per_minute == Some(0) {
            report.add(
                &at.key("max_per_minute"),
                "must be at least 1; leave it out for no limit",
            );
        }
        if self.send_timeout_ms == 0 {
            report.add(&at.key("send_timeout_ms"), "must be at least 1");
        }
    }
}

/// `text` with `{a}` and `{b}` replaced by placeholder-free stand-ins, to check
/// what remains as a topic.
fn fill(text: &str, a: &str, b: &str) -> String {
    text.replace(&format!("{{{a}}}"), "x")
        .replace(&format!("{{{b}}}"), "x")
}

/// The first `{name}` in `text` that is not one of `known`.
fn unknown_placeholder(text: &str, known: &[&str]) -> Option<String> {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let name = &after[..close];
        if !known.contains(&name) {
            return Some(name.to_string());
        }
        rest = &after[close + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_reads_units_and_refuses_zero_and_nonsense() {
        assert_eq!(parse_expiry("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_expiry("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_expiry("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_expiry("0s").unwrap_err().contains("0"));
        assert!(parse_expiry("soon").unwrap_err().contains("500ms"));
    }

    #[test]
    fn placeholders_are_found_by_name() {
        assert_eq!(unknown_placeholder("cmd/{source}/#", &["source"]), None);
        assert_eq!(
            unknown_placeholder("cmd/{device}/#", &["source"]),
            Some("device".into())
        );
    }
}
