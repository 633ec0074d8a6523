//! Each command's one result message, and the rule that keeps mqgate from taking
//! its own results back as commands.

use std::time::SystemTime;

use bytes::Bytes;
use mqtt_proto::codec::QoS;
use mqtt_proto::topic::{self, TopicName};
use serde_json::{Map, Value};

use crate::mapping::rfc3339;
use crate::message::Message;

/// What became of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The transport confirmed it.
    Sent,
    /// The script failed, or the transport tried and could not.
    Failed,
    /// It waited longer than `expire_after`.
    Expired,
    /// The queue was full, or a limit (duty cycle) said no.
    Rejected,
    /// The script returned `()`.
    Dropped,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Sent,
        Status::Failed,
        Status::Expired,
        Status::Rejected,
        Status::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Expired => "expired",
            Status::Rejected => "rejected",
            Status::Dropped => "dropped",
        }
    }
}

/// One command's outcome, as its result message says it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: Status,
    pub error: Option<String>,
    /// How long it waited before it went to the device (or was given up).
    pub queued_ms: u64,
    /// When the transport confirmed it.
    pub sent_at: Option<SystemTime>,
}

/// The `result_topic` of a source's commands, with `{source}` and `{gateway}`
/// filled in: a prefix and a suffix around the command's topic, or one fixed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultTopic {
    prefix: String,
    /// `None`: the template has no `{topic}`, every result goes to `prefix`.
    suffix: Option<String>,
}

impl ResultTopic {
    /// `template` as checked when the mapping file loaded.
    pub fn new(template: &str, source: &str, gateway: &str) -> ResultTopic {
        let filled = template
            .replace("{source}", source)
            .replace("{gateway}", gateway);
        match filled.split_once("{topic}") {
            Some((prefix, suffix)) => ResultTopic {
                prefix: prefix.to_string(),
                suffix: Some(suffix.to_string()),
            },
            None => ResultTopic {
                prefix: filled,
                suffix: None,
            },
        }
    }

    /// Where the result of a command on `command_topic` goes.
    pub fn for_command(&self, command_topic: &str) -> Result<TopicName, String> {
        let topic = match &self.suffix {
            Some(suffix) => format!("{}{command_topic}{suffix}", self.prefix),
            None => self.prefix.clone(),
        };
        TopicName::new(topic).map_err(|e| format!("result topic {:?}: {}", e.topic, e.error))
    }

    /// Whether `topic` is where mqgate puts the result of a command that `filter`
    /// takes: such a message is never a command, even when `filter` matches it
    /// (`cmd/{source}/#` and its `.../result` topics).
    pub fn is_result_of(&self, topic: &str, filter: &str) -> bool {
        match &self.suffix {
            None => topic == self.prefix,
            Some(suffix) => topic
                .strip_prefix(self.prefix.as_str())
                .and_then(|rest| rest.strip_suffix(suffix.as_str()))
                .is_some_and(|command| topic::matches(filter, command)),
        }
    }
}

/// The result message: QoS 1, not retained; its payload is [`body`].
pub(super) fn message(
    to: TopicName,
    command_topic: &str,
    source: &str,
    outcome: &Outcome,
    correlation: Option<&Value>,
) -> Message {
    let body = body(command_topic, source, outcome, correlation);
    Message {
        topic: to,
        payload: Bytes::from(body.to_string()),
        qos: QoS::AtLeastOnce,
        retain: false,
    }
}

/// A result as JSON: `topic`, `source`, `status`, `error`, `queued_ms`, `sent_at`
/// and `correlation` (`mqgate send` prints the same).
pub fn body(
    command_topic: &str,
    source: &str,
    outcome: &Outcome,
    correlation: Option<&Value>,
) -> Value {
    let mut body = Map::new();
    body.insert("topic".into(), Value::from(command_topic));
    body.insert("source".into(), Value::from(source));
    body.insert("status".into(), Value::from(outcome.status.as_str()));
    body.insert(
        "error".into(),
        outcome.error.as_deref().map_or(Value::Null, Value::from),
    );
    body.insert("queued_ms".into(), Value::from(outcome.queued_ms));
    body.insert(
        "sent_at".into(),
        outcome
            .sent_at
            .map_or(Value::Null, |t| Value::from(rfc3339(t))),
    );
    body.insert(
        "correlation".into(),
        correlation.cloned().unwrap_or(Value::Null),
    );
    Value::Object(body)
}

/// The `correlation` field of a JSON object payload, when there is one.
pub fn correlation(payload: &[u8]) -> Option<Value> {
    // Only an object can have the field: skip parsing anything else.
    let first = payload.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    match serde_json::from_slice::<Value>(payload).ok()? {
        Value::Object(mut o) => o.remove("correlation"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_result_topic_follows_the_command_and_is_never_a_command() {
        let r = ResultTopic::new("{topic}/result", "relay1", "gw");
        assert_eq!(
            r.for_command("cmd/relay1/on").unwrap().as_str(),
            "cmd/relay1/on/result"
        );
        let filter = "cmd/relay1/#";
        assert!(r.is_result_of("cmd/relay1/on/result", filter));
        assert!(
            r.is_result_of("cmd/relay1/result", filter),
            "`#` takes its parent level too: `cmd/relay1` may be a command"
        );
        assert!(
            !r.is_result_of("cmd/relay1/result", "cmd/relay1/+"),
            "`cmd/relay1` is not a topic that filter takes, so this is a command"
        );
        assert!(!r.is_result_of("cmd/relay1/on", filter));
        assert!(!r.is_result_of("other/x/result", filter));
    }

    #[test]
    fn a_result_topic_template_fills_source_and_gateway_and_may_be_fixed() {
        let r = ResultTopic::new("results/{gateway}/{source}{topic}", "s1", "gw");
        assert_eq!(
            r.for_command("/x").unwrap().as_str(),
            "results/gw/s1/x",
            "prefix and suffix around the topic"
        );
        let fixed = ResultTopic::new("results/{source}", "s1", "gw");
        assert_eq!(fixed.for_command("cmd/a").unwrap().as_str(), "results/s1");
        assert!(fixed.is_result_of("results/s1", "#"));
        assert!(!fixed.is_result_of("results/s2", "#"));
    }

    #[test]
    fn the_result_message_says_everything_and_echoes_the_correlation() {
        let outcome = Outcome {
            status: Status::Failed,
            error: Some("port gone".into()),
            queued_ms: 12,
            sent_at: None,
        };
        let c = correlation(br#" {"on": true, "correlation": "abc-1"}"#);
        let m = message(
            TopicName::new("cmd/a/result".into()).unwrap(),
            "cmd/a",
            "s1",
            &outcome,
            c.as_ref(),
        );
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["topic"], "cmd/a");
        assert_eq!(v["status"], "failed");
        assert_eq!(v["error"], "port gone");
        assert_eq!(v["queued_ms"], 12);
        assert_eq!(v["sent_at"], Value::Null);
        assert_eq!(v["correlation"], "abc-1");
        assert_eq!(m.qos, QoS::AtLeastOnce);
        assert!(!m.retain);
        assert_eq!(correlation(b"ON"), None);
        assert_eq!(correlation(b"[1]"), None);
    }
}
