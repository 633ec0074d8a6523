//! Outputs publish the messages the store holds: into the embedded broker-lite
//! through its in-process handle, to an upstream broker, or both. Each reads the
//! store in order with its own position and marks what it has finished.
//! `event_loop` is the upstream output's loop around its MQTT client (`client`);
//! `window` decides how many messages it keeps in flight; `echoes` remembers what
//! it published, for the command path's subscription on the same broker.

pub mod client;
pub mod echoes;
pub mod embedded;
mod event_loop;
pub mod upstream;
mod window;
