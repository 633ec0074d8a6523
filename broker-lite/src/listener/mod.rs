//! Listeners: plain TCP, TLS, WebSocket and WebSocket over TLS, each on its
//! own socket, all feeding the same router under shared connection limits.

mod accept;
pub(crate) mod config;
mod per_ip;
mod tls;
mod ws;
mod x509;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub(crate) use accept::{accept_loop, Accepting, Admitted, Kind};

pub use config::{ListenerConfig, TlsConfig};
pub(crate) use per_ip::PerIp;
pub(crate) use tls::acceptor as tls_acceptor;

use crate::Config;

impl Config {
    /// The listeners the broker opens: `listeners` when given, otherwise one
    /// plain listener on `listen`.
    pub fn effective_listeners(&self) -> Vec<ListenerConfig> {
        if self.listeners.is_empty() {
            vec![ListenerConfig::plain(self.listen)]
        } else {
            self.listeners.clone()
        }
    }
}

/// A bound listener, ready to accept.
pub(crate) struct Bound {
    pub socket: TcpListener,
    pub addr: SocketAddr,
    pub kind: Arc<Kind>,
}

/// Read the TLS files and bind the socket of one listener. Errors name the
/// file or the address at fault.
pub(crate) async fn bind(config: &ListenerConfig) -> io::Result<Bound> {
    let tls = match &config.tls {
        Some(tls) => Some(tls::Tls::new(tls)?),
        None => None,
    };
    let socket = TcpListener::bind(config.listen).await.map_err(|e| {
        io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))
    })?;
    let addr = socket.local_addr()?;
    let kind = Kind {
        scheme: config.scheme(),
        tls,
        use_cn_as_username: config.tls.as_ref().is_some_and(|t| t.use_cn_as_username),
        websocket: config.websocket.then(|| config.path.clone()),
    };
    Ok(Bound {
        socket,
        addr,
        kind: Arc::new(kind),
    })
}
