//! The `persistence:` section of the broker configuration.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use config_report::FieldPath;

/// Where and how often the broker stores retained messages and persistent sessions.
/// Absent from the configuration: nothing is stored, as before.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistenceConfig {
    /// SQLite file; a relative path is read from the configuration file's folder.
    pub file: PathBuf,
    /// Longest time, in milliseconds, a change waits before it is committed: what a
    /// `kill -9` can lose at most.
    #[serde(default = "default_flush_ms")]
    pub flush_ms: u64,
    /// Hold PUBACK/PUBREC/PUBCOMP/SUBACK that confirm a stored change until the
    /// change is committed.
    #[serde(default = "default_ack_after_commit")]
    pub ack_after_commit: bool,
}

const fn default_flush_ms() -> u64 {
    100
}

const fn default_ack_after_commit() -> bool {
    true
}

/// Longest `flush_ms` accepted: a minute of changes is already a lot to lose.
pub(super) const MAX_FLUSH_MS: u64 = 60_000;

impl PersistenceConfig {
    /// Persistence in `file` with the default flush interval.
    pub fn new(file: impl Into<PathBuf>) -> PersistenceConfig {
        PersistenceConfig {
            file: file.into(),
            flush_ms: default_flush_ms(),
            ack_after_commit: default_ack_after_commit(),
        }
    }

    /// A relative `file` is taken from `dir` (the configuration file's folder).
    pub fn resolve_paths(&mut self, dir: &Path) {
        if self.file.is_relative() && !self.file.as_os_str().is_empty() {
            self.file = dir.join(&self.file);
        }
    }

    /// Semantic problems, each with the path of its field.
    pub(crate) fn problems(&self, at: &FieldPath) -> Vec<(FieldPath, String)> {
        let mut problems = Vec::new();
        if self.file.as_os_str().is_empty() {
            problems.push((at.key("file"), "must name a file".to_string()));
        }
        if self.flush_ms == 0 || self.flush_ms > MAX_FLUSH_MS {
            problems.push((
                at.key("flush_ms"),
                format!("must be 1 … {MAX_FLUSH_MS}, got {}", self.flush_ms),
            ));
        }
        problems
    }
}
