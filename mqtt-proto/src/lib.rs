//! mqtt-proto: MQTT 3.1.1 on the wire and its topic rules, shared by the
//! broker (`broker-lite`) and the gateway (`mqgate`).
//!
//! `codec` turns packets into bytes and back with plain functions over byte
//! buffers (no I/O, no tokio); `topic` validates topic names and filters and
//! matches them.

pub mod codec;
pub mod topic;
