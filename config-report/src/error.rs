//! A configuration error: which file, where in it, which field, and what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found while loading a configuration file; printed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in, as it was named (not canonicalized).
    pub file: PathBuf,
    /// 1-based line, when the field could be found in the text.
    pub line: Option<usize>,
    /// 1-based column of the field's key (or item), when known.
    pub column: Option<usize>,
    /// Field path such as `sources[1].baud`; empty for the file as a whole.
    pub field: String,
    pub message: String,
}

impl ConfigError {
    /// An error about a file as a whole (unreadable, not YAML at all).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
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
        write!(f, "{}", self.file.display())?;
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
