//! What a connection is given by its listener and shares with every other
//! connection, and how it ended.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::outbox::OutboxLimits;
use crate::router::Event;

/// What the listener knows about a connection before its first MQTT byte.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub addr: SocketAddr,
    /// Common name of the verified client certificate, when the listener has
    /// `use_cn_as_username`: it replaces the user name of the CONNECT.
    pub cert_username: Option<String>,
    /// When the connection was accepted: the CONNECT timeout counts from here,
    /// so TLS and WebSocket handshakes spend from the same budget.
    pub accepted: Instant,
}

/// What every connection task shares.
pub(crate) struct ConnShared {
    pub router: mpsc::Sender<Event>,
    pub metrics: Arc<Metrics>,
    pub max_packet_size: usize,
    /// Largest CONNECT: what a connection may send before it has logged in.
    pub max_connect_size: usize,
    pub connect_timeout: Duration,
    pub max_keep_alive: u16,
    pub shutdown: watch::Receiver<bool>,
    pub outbox_limits: OutboxLimits,
    /// Told whenever a congested outbox drains, so braked publishers read again.
    pub relief: Arc<Notify>,
    /// Passwords and ACL rules, to check a CONNECT; replaced by a reload.
    pub auth: std::sync::RwLock<Arc<crate::auth::Auth>>,
}

impl ConnShared {
    /// The passwords and ACL rules in force now.
    pub(crate) fn auth(&self) -> Arc<crate::auth::Auth> {
        self.auth
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Why a connection ended, for the log and for the will.
#[derive(Debug)]
pub(crate) enum End {
    /// DISCONNECT received: the will is discarded.
    Disconnect,
    /// The peer closed the socket.
    Eof,
    Io(io::Error),
    KeepAliveExpired,
    /// The broker closed it: session taken over, or shutdown.
    Closed,
    Protocol(String),
    RouterGone,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Disconnect => f.write_str("DISCONNECT received"),
            End::Eof => f.write_str("closed by the client"),
            End::Io(e) => write!(f, "socket error: {e}"),
            End::KeepAliveExpired => f.write_str("keep-alive expired"),
            End::Closed => f.write_str("closed by the broker"),
            End::Protocol(why) => f.write_str(why),
            End::RouterGone => f.write_str("broker stopping"),
        }
    }
}
