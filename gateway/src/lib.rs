//! mqgate: serial and radio frames → Rhai mappings → MQTT.
//!
//! Ground floor: `frame` (Frame and the framers) and `message` (Message) are plain
//! data with no I/O. `mapping` turns frames into messages; `source` reads devices
//! and captures into frames; `output` publishes messages; `config` is what users edit.

pub mod backoff;
pub mod capture;
pub mod commands;
pub mod config;
pub mod frame;
pub mod logging;
pub mod mapping;
pub mod message;
pub mod notify;
pub mod output;
pub mod pipeline;
pub mod source;
pub mod status;
pub mod store;
pub mod utc;

/// The real-data helper of the tests, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/common/real_data.rs"]
mod real_data;
