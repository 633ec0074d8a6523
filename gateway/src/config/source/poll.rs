//! A serial source's `poll:` list: queries written to an instrument that only
//! answers when asked, each on its own fixed schedule.

use std::collections::HashSet;
use std::time::Duration;

use config_report::{FieldPath, Report};
use serde::Deserialize;

use super::is_valid_id;

/// The most queries one source may have.
const MAX_QUERIES: usize = 32;
/// The shortest `every`.
const MIN_EVERY: Duration = Duration::from_millis(10);
/// The longest `timeout_ms`.
const MAX_TIMEOUT_MS: u64 = 60_000;

/// One query: its bytes are written on the port every `every`, and the first
/// frame within `timeout_ms` is its answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// How often, on a fixed grid from the start (`500ms`, `10s`, `5m`); at least 10ms.
    #[serde(deserialize_with = "crate::config::duration::deserialize")]
    pub every: Duration,
    /// The query as text (YAML escapes such as `"R\r"`); or `send_hex`.
    #[serde(default)]
    pub send: Option<String>,
    /// The query as hex bytes, spaces allowed (`"01 03 00 00 00 02 C4 0B"`).
    #[serde(default)]
    pub send_hex: Option<String>,
    /// How long the answer may take (default 1000); less than `every`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Names the query in its answers' meta (`query`) and in the counters;
    /// `poll<index>` when left out (filled in at load).
    #[serde(default)]
    pub name: Option<String>,
}

const DEFAULT_TIMEOUT_MS: u64 = 1000;

impl PollConfig {
    /// The bytes written on the port, as they are (not through the framing).
    /// Checked at load: a `send_hex` that is not hex gives no bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match (&self.send, &self.send_hex) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(hex)) => parse_hex(hex).unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }

    /// The name, as filled in at load.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// `timeout_ms`, or its default.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }
}

/// Hex bytes with optional spaces between them: `01 03 c4 0B` or `0103C40B`.
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() {
        return Err("holds no bytes".into());
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "{text:?} has an odd number of hex digits ({})",
            digits.len()
        ));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| {
                    format!(
                        "{text:?} is not hex bytes: `{}`",
                        String::from_utf8_lossy(pair)
                    )
                })
        })
        .collect()
}

/// Checks `poll` (at `at`, the `poll` key) and fills in the names left out.
pub(super) fn check_polls(polls: &mut [PollConfig], at: &FieldPath, report: &mut Report<'_>) {
    if polls.len() > MAX_QUERIES {
        report.add(
            at,
            format!(
                "at most {MAX_QUERIES} queries per source, got {}",
                polls.len()
            ),
        );
    }
    let mut names = HashSet::new();
    for (i, poll) in polls.iter_mut().enumerate() {
        let at = at.index(i);
        check_poll(poll, &at, report);
        let name = poll.name.get_or_insert_with(|| format!("poll{i}")).clone();
        if !is_valid_id(&name) {
            report.add(
                &at.key("name"),
                format!("{name:?} is not a valid query name: use letters, digits, `_` and `-`"),
            );
        } else if !names.insert(name.clone()) {
            report.add(
                &at.key("name"),
                format!("another query of this source is named {name:?}"),
            );
        }
    }
}

fn check_poll(poll: &PollConfig, at: &FieldPath, report: &mut Report<'_>) {
    if poll.every < MIN_EVERY {
        report.add(
            &at.key("every"),
            format!("must be at least 10ms, got {:?}", poll.every),
        );
    }
    let timeout_ms = poll.timeout().as_millis() as u64;
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        report.add(
            &at.key("timeout_ms"),
            format!("must be 1 to {MAX_TIMEOUT_MS}"),
        );
    } else if poll.timeout() >= poll.every {
        let which = match poll.timeout_ms {
            Some(_) => String::new(),
            None => format!(" (the default {DEFAULT_TIMEOUT_MS}; set a shorter one)"),
        };
        report.add(
            &at.key("timeout_ms"),
            format!(
                "must be less than `every` ({:?}), the next query's time{which}",
                poll.every
            ),
        );
    }
    match (&poll.send, &poll.send_hex) {
        (Some(_), Some(_)) => report.add(
            &at.key("send_hex"),
            "set either `send` or `send_hex`, not both",
        ),
        (None, None) => report.add(
            at,
            "missing the query: set `send` (text) or `send_hex` (hex bytes)",
        ),
        (Some(text), None) if text.is_empty() => report.add(&at.key("send"), "must not be empty"),
        (None, Some(hex)) => {
            if let Err(why) = parse_hex(hex) {
                report.add(&at.key("send_hex"), why);
            }
        }
        (Some(_), None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_takes_spaces_and_either_case_and_refuses_the_rest() {
        assert_eq!(
            parse_hex("01 03 00 00 00 02 C4 0b"),
            Ok(vec![1, 3, 0, 0, 0, 2, 0xC4, 0x0B])
        );
        assert_eq!(parse_hex("0103"), Ok(vec![1, 3]));
        assert!(parse_hex("01 3").unwrap_err().contains("odd"));
        assert!(parse_hex("0x01").unwrap_err().contains("`0x`"));
        assert!(parse_hex("  ").is_err());
    }

    #[test]
    fn the_query_is_the_text_or_the_hex_bytes() {
        let text = PollConfig {
            every: Duration::from_secs(1),
            send: Some("R\r".into()),
            send_hex: None,
            timeout_ms: None,
            name: None,
        };
        assert_eq!(text.bytes(), b"R\r");
        let hex = PollConfig {
            send: None,
            send_hex: Some("52 0d".into()),
            ..text
        };
        assert_eq!(hex.bytes(), b"R\r");
    }
}
