//! mqgate: serial and radio frames → Rhai mappings → MQTT.
//!
//! Ground floor: `frame` (Frame and the framers), `message` (Message, and Command
//! and Part for the way down), `airtime` (LoRa time on air and the duty-cycle
//! budget) and `modbus` (register maps: values and read plans) are plain data with
//! no I/O. `mapping` turns frames into messages (and commands into bytes);
//! `source` reads devices and captures into frames (and writes
//! commands to them); `store` keeps messages until `output` has published them;
//! `config` is what users edit. `pipeline` wires these together and is what runs;
//! `downlink` takes commands from the embedded broker down to the sources' devices;
//! `status` (the status page) reads the running pipeline, while `notify` tells
//! systemd only what it is handed and imports nothing above it. `commands` are the
//! CLI's subcommands; `state_lock` keeps them to one process per state folder, and
//! `fd_limit` raises the file descriptor limit to what the connection limits need.

pub mod airtime;
pub mod backoff;
pub mod capture;
pub mod commands;
pub mod config;
pub mod downlink;
pub mod fd_limit;
pub mod frame;
pub mod logging;
pub mod lorawan;
pub mod mapping;
pub mod message;
pub mod modbus;
pub mod notify;
pub mod output;
pub mod pipeline;
pub mod source;
pub mod state_lock;
pub mod status;
pub mod store;
pub mod utc;

/// The real-data helper of the tests, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/common/real_data.rs"]
mod real_data;
