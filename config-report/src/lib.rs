//! Configuration errors as `file:line:column: field: message`, every one of a
//! file at once: shared by broker-lite's own file and the mqgate gateway's.
//!
//! A file is parsed to a YAML tree once; each piece of it is deserialized from
//! the tree with `serde_path_to_error`, which names the path of what went wrong,
//! and the path is found in the text for its line and column (`path::locate`).
//! Nothing reads the text of serde_yaml_ng's error messages.

mod error;
pub mod path;
mod report;

pub use error::ConfigError;
pub use path::{locate, FieldPath, Segment};
pub use report::{parse_file, Report};
