//! Accept connections on one listener: the global and per-IP limits right
//! after accept, then the TLS and WebSocket handshakes within the CONNECT
//! timeout, then the MQTT connection.

use log_limit::LogLimit;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::per_ip::PerIp;
use super::tls::{self, Tls};
use super::ws;
use crate::connection::{self, ConnShared, Peer};
use crate::metrics;

/// What every listener of a broker shares.
pub(crate) struct Accepting {
    pub shared: Arc<ConnShared>,
    /// `max_connections`, across listeners.
    pub limit: Semaphore,
    pub max_connections: usize,
    pub per_ip: PerIp,
    pub next_conn: AtomicU64,
}

/// One admitted connection's share of the limits: one of `max_connections`, one
/// of its address's `max_connections_per_ip`, counted in `connections_current`.
/// All given back when it is dropped, however the connection's task ends.
///
/// It is what a connection's task holds for its whole life, so it is kept to a
/// pointer and an address rather than a semaphore permit and a per-IP slot
/// (each with its own pointer), which would cost every connection more.
pub(crate) struct Admitted {
    accepting: Arc<Accepting>,
    ip: IpAddr,
}

impl Admitted {
    /// Take a place for a connection from `ip`, or count the refusal and say why.
    fn take(accepting: &Arc<Accepting>, ip: IpAddr) -> Result<Admitted, &'static str> {
        let metrics = &accepting.shared.metrics;
        let Ok(permit) = accepting.limit.try_acquire() else {
            metrics::add(&metrics.connections_refused, 1);
            return Err("max_connections");
        };
        if !accepting.per_ip.enter(ip) {
            metrics::add(&metrics.connections_refused_per_ip, 1);
            return Err("max_connections_per_ip");
        }
        // Given back in `drop`.
        permit.forget();
        metrics::add(&metrics.connections_total, 1);
        metrics::add(&metrics.connections_current, 1);
        Ok(Admitted {
            accepting: accepting.clone(),
            ip,
        })
    }

    pub(crate) fn shared(&self) -> &ConnShared {
        &self.accepting.shared
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let accepting = &self.accepting;
        metrics::sub(&accepting.shared.metrics.connections_current, 1);
        accepting.per_ip.leave(self.ip);
        accepting.limit.add_permits(1);
    }
}

/// How one listener turns a TCP connection into an MQTT byte stream.
pub(crate) struct Kind {
    pub scheme: &'static str,
    pub tls: Option<Tls>,
    pub use_cn_as_username: bool,
    /// `Some(path filter)` for a WebSocket listener; the filter `None` takes any path.
    pub websocket: Option<Option<String>>,
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    kind: Arc<Kind>,
    accepting: Arc<Accepting>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                static ACCEPT: LogLimit = LogLimit::new(log_limit::MINUTE);
                if let Some(skipped) = ACCEPT.check() {
                    warn!("accept failed: {e}{}", log_limit::suppressed(skipped));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let accepted_at = Instant::now();
        let admitted = match Admitted::take(&accepting, addr.ip()) {
            Ok(a) => a,
            Err(limit) => {
                let max = accepting.max_connections;
                debug!(%addr, max_connections = max, "{limit} reached; closing");
                continue;
            }
        };
        let conn = accepting.next_conn.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        // Boxed: the task holds it only until the CONNECT is read.
        let peer = Box::new(Peer {
            addr,
            cert_username: None,
            accepted: accepted_at,
        });
        // The connection's future is the task itself, not awaited inside another
        // future that would keep a second copy of the stream and the peer.
        if kind.tls.is_none() && kind.websocket.is_none() {
            tokio::spawn(connection::serve(stream, peer, conn, admitted));
        } else {
            // Boxed: plain connections do not carry the handshakes' state.
            let kind = kind.clone();
            tokio::spawn(async move {
                Box::pin(handshake_and_serve(stream, peer, conn, &kind, admitted)).await
            });
        }
    }
}

/// TLS and/or WebSocket handshakes, bounded by the CONNECT timeout, then MQTT.
async fn handshake_and_serve(
    stream: TcpStream,
    mut peer: Box<Peer>,
    conn: u64,
    kind: &Kind,
    admitted: Admitted,
) {
    let Some(tls) = &kind.tls else {
        return websocket_and_serve(stream, peer, conn, kind, admitted).await;
    };
    let acceptor = tls.acceptor();
    let shared = admitted.shared();
    let Some(tls) = bounded("TLS handshake", &peer, shared, acceptor.accept(stream)).await else {
        return;
    };
    if kind.use_cn_as_username {
        let Some(name) = tls::peer_common_name(tls.get_ref().1) else {
            metrics::add(&shared.metrics.handshakes_failed, 1);
            warn!(peer = %peer.addr, "client certificate has no usable common name; closing");
            return;
        };
        peer.cert_username = Some(name);
    }
    websocket_and_serve(tls, peer, conn, kind, admitted).await
}

async fn websocket_and_serve<S>(
    stream: S,
    peer: Box<Peer>,
    conn: u64,
    kind: &Kind,
    admitted: Admitted,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Some(path) = &kind.websocket else {
        return connection::serve(stream, peer, conn, admitted).await;
    };
    let shared = admitted.shared();
    let max_message = shared.max_packet_size.saturating_add(64 * 1024);
    let handshake = ws::accept(stream, path.as_deref(), max_message);
    if let Some(ws) = bounded("WebSocket handshake", &peer, shared, handshake).await {
        connection::serve(ws, peer, conn, admitted).await;
    }
}

/// Run a handshake until the connection's CONNECT deadline or shutdown;
/// a failure is logged and counted and gives `None`.
async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    peer: &Peer,
    shared: &ConnShared,
    handshake: impl Future<Output = Result<T, E>>,
) -> Option<T> {
    let deadline = peer.accepted + shared.connect_timeout;
    let mut shutdown = shared.shutdown.clone();
    let outcome = tokio::select! {
        r = tokio::time::timeout_at(deadline, handshake) => r,
        _ = shutdown.changed() => return None,
    };
    let why = match outcome {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("not done within {:?}", shared.connect_timeout),
    };
    metrics::add(&shared.metrics.handshakes_failed, 1);
    debug!(peer = %peer.addr, "{what} failed: {why}");
    None
}
