//! Outputs publish the messages the mappings produce: into the embedded
//! broker-lite through its in-process handle, to an upstream broker, or both.
//! Until the durable store lands, a bounded channel feeds each output.

pub mod client;
pub mod embedded;
pub mod upstream;
