//! Where and how to connect.

use std::time::Duration;

use crate::output::upstream::TlsFiles;

/// The will message the server publishes if the connection ends without DISCONNECT.
pub use broker_lite::codec::LastWill as Will;

/// Everything `Connection::connect` needs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub host: String,
    pub port: u16,
    /// `Some` for TLS; an empty CA PEM trusts the system's roots.
    pub tls: Option<TlsFiles>,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Zero turns keep-alive off; otherwise whole seconds, at most 65535 (longer is cut).
    pub keep_alive: Duration,
    pub clean_session: bool,
    pub will: Option<Will>,
    /// Bound on TCP connect, TLS handshake, CONNECT and CONNACK together.
    pub connect_timeout: Duration,
}

impl ClientOptions {
    /// Plain TCP, clean session, 30 s keep-alive, 10 s connect timeout, no credentials and no will.
    pub fn new(host: impl Into<String>, port: u16, client_id: impl Into<String>) -> ClientOptions {
        ClientOptions {
            host: host.into(),
            port,
            tls: None,
            client_id: client_id.into(),
            username: None,
            password: None,
            keep_alive: Duration::from_secs(30),
            clean_session: true,
            will: None,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The keep-alive in the CONNECT packet: whole seconds, rounded up, capped at 65535.
    pub(crate) fn keep_alive_secs(&self) -> u16 {
        let secs = self.keep_alive.as_secs() + u64::from(self.keep_alive.subsec_nanos() > 0);
        u16::try_from(secs).unwrap_or(u16::MAX)
    }
}
