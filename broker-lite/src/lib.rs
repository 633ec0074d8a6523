//! broker-lite: a small, complete MQTT 3.1.1 broker, embeddable as a library.
//!
//! Connections decode packets and hand them to one router task over a bounded
//! channel; the router owns sessions, subscriptions and retained messages and
//! writes encoded packets into each connection's outbox.

pub mod codec;
pub mod config;
pub mod topic;

pub use config::Config;
