//! broker-lite: a small, complete MQTT 3.1.1 broker, embeddable as a library.
//!
//! Connections decode packets and hand them to one router task over a bounded
//! channel; the router owns sessions, subscriptions and retained messages and
//! writes encoded packets into each connection's outbox, which the connection
//! writes to its socket in one go.

pub mod auth;
pub mod config;
mod connection;
mod handle;
mod listener;
mod message;
pub mod metrics;
mod outbox;
mod persist;
mod reload;
pub mod retained;
mod router;
mod server;
mod session;
pub mod subscriptions;
mod topic_limits;

pub use config::Config;
pub use handle::{BrokerHandle, HandleError, Publication, SubscribeOptions, Subscription};
pub use message::Message;
pub use metrics::{Metrics, MetricsSnapshot};
pub use reload::{PreparedReload, ReloadError, Reloaded};
pub use server::Broker;
