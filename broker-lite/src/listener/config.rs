//! The `listeners:` section: where the broker listens and how (plain TCP, TLS,
//! WebSocket, WebSocket over TLS).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use config_report::FieldPath;

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// TCP address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// TLS on this listener; absent means plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// MQTT inside WebSocket binary frames (subprotocol `mqtt`).
    #[serde(default)]
    pub websocket: bool,
    /// WebSocket only: the HTTP path to accept (e.g. `/mqtt`); absent accepts any path.
    #[serde(default)]
    pub path: Option<String>,
}

/// TLS settings of a listener. Relative file names are relative to the
/// configuration file's folder.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file with the CA certificates that client certificates must chain to.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Refuse clients without a valid certificate (needs `client_ca_file`).
    #[serde(default)]
    pub require_client_cert: bool,
    /// The client certificate's subject common name replaces the CONNECT user
    /// name (needs `require_client_cert`).
    #[serde(default)]
    pub use_cn_as_username: bool,
}

impl ListenerConfig {
    /// A plain TCP listener on `listen`.
    pub fn plain(listen: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            listen,
            tls: None,
            websocket: false,
            path: None,
        }
    }

    /// `mqtt`, `mqtts`, `ws` or `wss`: for logs.
    pub fn scheme(&self) -> &'static str {
        match (self.tls.is_some(), self.websocket) {
            (false, false) => "mqtt",
            (true, false) => "mqtts",
            (false, true) => "ws",
            (true, true) => "wss",
        }
    }

    pub(crate) fn resolve_paths(&mut self, dir: &Path) {
        if let Some(tls) = &mut self.tls {
            for file in [&mut tls.cert_file, &mut tls.key_file] {
                *file = resolve(dir, file);
            }
            if let Some(ca) = &mut tls.client_ca_file {
                *ca = resolve(dir, ca);
            }
        }
    }
}

fn resolve(dir: &Path, file: &Path) -> PathBuf {
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        dir.join(file)
    }
}

/// Every problem of the `listeners` list, each with its field path.
pub(crate) fn problems(listeners: &[ListenerConfig]) -> Vec<(FieldPath, String)> {
    let mut problems = Vec::new();
    for (i, l) in listeners.iter().enumerate() {
        let at = FieldPath::root().key("listeners").index(i);
        if let Some(path) = &l.path {
            if !l.websocket {
                problems.push((
                    at.key("path"),
                    "only a websocket listener has a path".into(),
                ));
            } else if !path.starts_with('/') {
                problems.push((at.key("path"), format!("{path:?} must start with /")));
            }
        }
        if let Some(tls) = &l.tls {
            let at = at.key("tls");
            if tls.require_client_cert && tls.client_ca_file.is_none() {
                problems.push((
                    at.key("require_client_cert"),
                    "needs client_ca_file to check client certificates against".into(),
                ));
            }
            if tls.use_cn_as_username && !tls.require_client_cert {
                problems.push((
                    at.key("use_cn_as_username"),
                    "needs require_client_cert: true (a client without a certificate would \
                     choose its own user name)"
                        .into(),
                ));
            }
        }
        if l.listen.port() != 0 {
            let earlier = listeners[..i].iter().any(|o| o.listen == l.listen);
            if earlier {
                problems.push((
                    at.key("listen"),
                    format!("{} is already used by an earlier listener", l.listen),
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests;
