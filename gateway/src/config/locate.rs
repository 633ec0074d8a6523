//! Field paths and their positions in YAML text: broker-lite's, shared.

pub(crate) use broker_lite::yaml_path::{locate, parse, FieldPath, Segment};
