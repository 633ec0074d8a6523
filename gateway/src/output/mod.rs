//! Outputs publish the messages the store holds: into the embedded broker-lite
//! through its in-process handle, to an upstream broker, or both. Each reads the
//! store in order with its own position and marks what it has finished.

pub mod client;
pub mod embedded;
pub mod upstream;
mod window;
