//! The `store:` section: the SQLite file that keeps messages until every output has
//! them acknowledged.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// How the store behaves. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The SQLite file, relative to `gateway.state_dir`. Default `messages.db`.
    pub file: PathBuf,
    /// `normal` (default): a power cut may roll back the last commits (about the
    /// last second); `full`: every commit is on disk before it counts, slower.
    pub synchronous: Synchronous,
    /// Most messages kept. Default 1,000,000.
    pub max_messages: u64,
    /// Most bytes of topics and payloads kept. Default 256 MiB. `0`: no byte limit.
    pub max_bytes: u64,
    /// What to do when a new message does not fit.
    pub when_full: WhenFull,
    /// Free space kept on the store's file system: below it the store counts as
    /// full (`when_full` applies) before the file system refuses a write, so that
    /// acknowledgements and checkpoints can always be written. Default 64 MiB.
    pub min_free_bytes: u64,
    /// Messages older than this are dropped (and counted), e.g. `7d`, `12h`, `30m`.
    #[serde(deserialize_with = "optional_duration")]
    pub max_age: Option<Duration>,
    /// QoS 0 messages while an output is down: `drop` (default) or `keep` in the store.
    pub qos0_while_down: Qos0WhileDown,
    /// Seconds between WAL checkpoints (the WAL also checkpoints itself as it grows).
    pub checkpoint_secs: u64,
    /// When a message reaches the file, for sources that do not say (`durability:`
    /// on a source): `write_behind` (default) or `on_receipt`.
    pub durability: Durability,
    /// `write_behind`: a message every output acknowledged within this many
    /// milliseconds is never written to the file. Default 1000.
    pub write_behind_ms: u64,
    /// `write_behind`: the folder, in memory (tmpfs), of the journal that keeps
    /// those messages across a crash of the process. Default `/dev/shm`; a
    /// relative path is relative to the gateway file's folder.
    pub write_behind_dir: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            file: PathBuf::from("messages.db"),
            synchronous: Synchronous::Normal,
            max_messages: 1_000_000,
            max_bytes: 256 * 1024 * 1024,
            when_full: WhenFull::DropOldest,
            min_free_bytes: 64 * 1024 * 1024,
            max_age: None,
            qos0_while_down: Qos0WhileDown::Drop,
            checkpoint_secs: 60,
            durability: Durability::WriteBehind,
            write_behind_ms: 1000,
            write_behind_dir: PathBuf::from("/dev/shm"),
        }
    }
}

/// When a source's messages are written to the store file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Kept in memory (and in a journal in memory, which survives a crash of the
    /// process but not a power cut) while the outputs acknowledge them within
    /// `write_behind_ms`; written to the file after that, or at once while an
    /// output is down. For sources that cannot be asked to send again.
    WriteBehind,
    /// Written to the file before it counts as taken.
    OnReceipt,
}

/// SQLite's `synchronous` level for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    Normal,
    Full,
}

/// The policy when the store is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Evict the oldest messages to make room (counted).
    DropOldest,
    /// Refuse the new message (counted).
    DropNewest,
    /// Make the pipeline wait, back to the sources, until there is room.
    Block,
}

impl WhenFull {
    /// As written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            WhenFull::DropOldest => "drop_oldest",
            WhenFull::DropNewest => "drop_newest",
            WhenFull::Block => "block",
        }
    }
}

/// QoS 0 messages while an output cannot take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Qos0WhileDown {
    Drop,
    Keep,
}

/// `90s`, `15m`, `12h`, `7d`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 12h or 7d"))?;
    let secs = match unit.trim() {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a duration like 90s, 15m, 12h or 7d"
            ))
        }
    };
    if secs == 0 {
        return Err("a duration of 0 would drop every message".into());
    }
    Ok(Duration::from_secs(secs))
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    struct Age;
    impl serde::de::Visitor<'_> for Age {
        type Value = Option<Duration>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a duration like 90s, 15m, 12h or 7d, or a number of seconds")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
            parse_duration(&n.to_string()).map(Some).map_err(E::custom)
        }
        fn visit_str<E: serde::de::Error>(self, t: &str) -> Result<Self::Value, E> {
            parse_duration(t).map(Some).map_err(E::custom)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("7 weeks").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn the_section_reads_with_defaults_and_refuses_unknown_keys() {
        let c: StoreConfig =
            serde_yaml_ng::from_str("max_messages: 10\nwhen_full: block\nmax_age: 2h\n").unwrap();
        assert_eq!(c.max_messages, 10);
        assert_eq!(c.when_full, WhenFull::Block);
        assert_eq!(c.max_age, Some(Duration::from_secs(7200)));
        assert_eq!(c.synchronous, Synchronous::Normal);
        let e = serde_yaml_ng::from_str::<StoreConfig>("max_mesages: 10\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `max_mesages`"), "{e}");
        let e = serde_yaml_ng::from_str::<StoreConfig>("when_full: panic\n").unwrap_err();
        assert!(e.to_string().contains("unknown variant `panic`"), "{e}");
    }
}
