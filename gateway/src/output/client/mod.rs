//! A small MQTT 3.1.1 client for the upstream output, built on broker-lite's codec.
//!
//! The output's connection only publishes; a connection made a `subscriber()`
//! also takes messages (the command path's, see `downlink`). The caller chooses every packet id and decides what to
//! resend (with DUP) or release (PUBREL) after a reconnect, so the durable store
//! stays the one owner of in-flight messages. The connection keeps no copy of
//! a message once its bytes are written; it only writes queued packets in as
//! few writes as possible, reads acknowledgements and keeps the link alive.
//!
//! The caller's loop: `connect`; resend what the store holds as in flight
//! (`publish(.., dup: true)` with the stored packet id, or `pubrel` when its
//! PUBREC came back); then `select!` between new messages (`publish` while the
//! window and `queued_bytes` allow) and `next()`, answering `PubRec` with
//! `pubrel` and marking the message done on `PubAck` / `PubComp`. Any error
//! ends the connection: drop it, back off, connect again.

mod connection;
mod error;
mod keepalive;
mod options;
mod tls;
mod transport;

pub use connection::{Ack, Connection, Event, MAX_PACKET_SIZE};
pub use error::{refusal_reason, ClientError};
pub use options::{ClientOptions, Will};

pub use mqtt_proto::codec::QoS;

#[cfg(test)]
mod tests;
