//! Mapping: a sandboxed Rhai script turns each `Frame` into zero or more `Message`s.
//!
//! A script defines `fn map(frame)`; it is compiled once and that function is called
//! per frame. Top-level statements are not run (write everything inside functions;
//! a top-level literal `const`/`let` is refused at compile time).
//! `frame` is a map: `bytes` (Blob), `text` (string when the bytes are UTF-8, else
//! `()`), `source`, `time` (RFC 3339, UTC), `received_ms` (Unix ms) and `meta` (a map
//! with `rssi`, `snr`, `frequency_hz`, `datarate`, `port` when known, plus extra keys).
//!
//! `map` returns `()` (filtered), a map `#{payload, topic, qos, retain, ...}` (only
//! `payload` required; the rest from the mapping's defaults; other keys fill the
//! topic template's `{placeholders}` along with `{source}` and the meta fields) or an
//! array of such maps. Map/array payloads become JSON, strings stay text, blobs
//! bytes, numbers and bools their JSON text.
//!
//! The sandbox limits operations, expression depth, call depth, string/array/map
//! sizes and time per call (thread CPU time); `eval` and `sleep` are refused, and
//! `import` of anything but a module of the `lib/` folder beside the script
//! (compiled with the script, see `library.rs`); `print` and `debug` go to tracing.
//! A call to a function nothing defines is a compile error (`calls.rs`).
//! A failed frame becomes a `MapError` and, through [`dead_letter`], a message on
//! the dead-letter topic. See `docs/mapping.md`.

mod calls;
mod convert;
mod deadletter;
mod encode;
mod engine;
mod error;
mod fields;
mod helpers;
pub mod js;
mod library;
mod lorawan;
mod mapper;
mod nmea;
mod template;
mod time;

pub(crate) use convert::json_kind;
pub use deadletter::{
    command_dead_letter, dead_letter, dead_letter_topic, frame_from_hex, FrameInputError,
};
pub use encode::{Encoded, Encoder, MAX_DELAY_MS, MAX_PARTS};
pub use engine::{ScriptLimits, MAX_CALL_LEVELS};
pub use error::{MapError, MappingError};
pub use helpers::hex;
pub use mapper::{CodecOptions, Mapped, Mapper, MappingDefaults, DEFAULT_CODEC_MEMORY};
pub use time::{rfc3339, unix_millis};
