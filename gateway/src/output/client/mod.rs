//! A small MQTT 3.1.1 client for the upstream output, built on broker-lite's codec.
//!
//! It only publishes: the caller chooses every packet id and decides what to
//! resend (with DUP) or release (PUBREL) after a reconnect, so the durable store
//! stays the one owner of in-flight messages. The connection keeps no copy of
//! a message once its bytes are written; it only writes queued packets in as
//! few writes as possible, reads acknowledgements and keeps the link alive.

mod connection;
mod error;
mod keepalive;
mod options;
mod tls;
mod transport;

pub use connection::{Ack, Connection, MAX_PACKET_SIZE};
pub use error::{refusal_reason, ClientError};
pub use options::{ClientOptions, Will};

pub use broker_lite::codec::QoS;

#[cfg(test)]
mod tests;
