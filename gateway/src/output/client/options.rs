//! Where and how to connect.

use std::fmt;
use std::time::Duration;

use crate::output::upstream::TlsFiles;

/// The will message the server publishes if the connection ends without DISCONNECT.
pub use mqtt_proto::codec::LastWill as Will;

/// Everything `Connection::connect` needs.
#[derive(Clone)]
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

/// Leaves out the password and the PEM contents, which may hold a private key.
impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("keep_alive", &self.keep_alive)
            .field("clean_session", &self.clean_session)
            .field("will", &self.will)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_password_and_the_keys() {
        let mut o = ClientOptions::new("broker.example", 8883, "gw");
        o.password = Some("hunter2".into());
        o.tls = Some(TlsFiles {
            ca_pem: Vec::new(),
            client: Some((b"CERT".to_vec(), b"SECRET KEY".to_vec())),
        });
        let text = format!("{o:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("broker.example"), "{text}");
    }

    #[test]
    fn keep_alive_goes_out_in_whole_seconds_rounded_up_and_capped() {
        let mut o = ClientOptions::new("h", 1, "c");
        o.keep_alive = Duration::from_millis(1500);
        assert_eq!(o.keep_alive_secs(), 2);
        o.keep_alive = Duration::from_secs(1_000_000);
        assert_eq!(o.keep_alive_secs(), u16::MAX);
        o.keep_alive = Duration::ZERO;
        assert_eq!(o.keep_alive_secs(), 0);
    }
}
