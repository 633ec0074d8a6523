//! Why a connection could not be made or has ended.

use std::io;
use std::time::Duration;

use mqtt_proto::codec::{ConnectReturnCode, DecodeError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("connection to the server failed: {0}")]
    Io(#[from] io::Error),
    /// A certificate or key that cannot be used, or a failed TLS handshake; the text names which.
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the server refused the connection: {} (CONNACK return code {})", refusal_reason(*.0), *.0 as u8)]
    Refused(ConnectReturnCode),
    #[error("malformed packet from the server: {0}")]
    Decode(#[from] DecodeError),
    /// The server broke the protocol, e.g. sent a packet a publish-only client never expects.
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("no answer from the server within {0:?} of a PINGREQ (keep-alive)")]
    KeepAliveTimeout(Duration),
    #[error("no CONNACK from the server within {0:?}")]
    ConnectTimeout(Duration),
    #[error("the server closed the connection")]
    Closed,
}

/// What a CONNACK return code means, in words a user can act on.
pub fn refusal_reason(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::Accepted => "accepted",
        ConnectReturnCode::UnacceptableProtocolVersion => {
            "unacceptable protocol version (the server does not speak MQTT 3.1.1)"
        }
        ConnectReturnCode::IdentifierRejected => "client identifier rejected",
        ConnectReturnCode::ServerUnavailable => "server unavailable",
        ConnectReturnCode::BadUserNameOrPassword => "bad user name or password",
        ConnectReturnCode::NotAuthorized => {
            "not authorized (bad user name or password, or this client is not allowed)"
        }
    }
}
