//! Accept connections on one listener: the global and per-IP limits right
//! after accept, then the TLS and WebSocket handshakes within the CONNECT
//! timeout, then the MQTT connection.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::per_ip::PerIp;
use super::{tls, ws};
use crate::connection::{self, ConnShared, Peer};
use crate::metrics;

/// What every listener of a broker shares.
pub(crate) struct Accepting {
    pub shared: Arc<ConnShared>,
    /// `max_connections`, across listeners.
    pub limit: Arc<Semaphore>,
    pub max_connections: usize,
    pub per_ip: Arc<PerIp>,
    pub next_conn: AtomicU64,
}

/// How one listener turns a TCP connection into an MQTT byte stream.
pub(crate) struct Kind {
    pub scheme: &'static str,
    pub tls: Option<TlsAcceptor>,
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
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let accepted_at = Instant::now();
        let shared = &accepting.shared;
        let Ok(permit) = accepting.limit.clone().try_acquire_owned() else {
            metrics::add(&shared.metrics.connections_refused, 1);
            debug!(%addr, "max_connections ({}) reached; closing", accepting.max_connections);
            continue;
        };
        let Some(ip_slot) = accepting.per_ip.enter(addr.ip()) else {
            metrics::add(&shared.metrics.connections_refused_per_ip, 1);
            debug!(%addr, "max_connections_per_ip reached; closing");
            continue;
        };
        let conn = accepting.next_conn.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        metrics::add(&shared.metrics.connections_total, 1);
        metrics::add(&shared.metrics.connections_current, 1);
        let _ = stream.set_nodelay(true);
        let peer = Peer {
            addr,
            cert_username: None,
            accepted: accepted_at,
        };
        let kind = kind.clone();
        tokio::spawn(async move {
            if kind.tls.is_none() && kind.websocket.is_none() {
                connection::serve(stream, peer, conn, shared.clone()).await;
            } else {
                // Boxed: plain connections do not carry the handshakes' state.
                Box::pin(handshake_and_serve(
                    stream,
                    peer,
                    conn,
                    &kind,
                    shared.clone(),
                ))
                .await;
            }
            metrics::sub(&shared.metrics.connections_current, 1);
            drop(ip_slot);
            drop(permit);
        });
    }
}

/// TLS and/or WebSocket handshakes, bounded by the CONNECT timeout, then MQTT.
async fn handshake_and_serve(
    stream: TcpStream,
    mut peer: Peer,
    conn: u64,
    kind: &Kind,
    shared: Arc<ConnShared>,
) {
    let Some(acceptor) = &kind.tls else {
        return websocket_and_serve(stream, peer, conn, kind, shared).await;
    };
    let Some(tls) = bounded("TLS handshake", &peer, &shared, acceptor.accept(stream)).await else {
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
    websocket_and_serve(tls, peer, conn, kind, shared).await
}

async fn websocket_and_serve<S>(
    stream: S,
    peer: Peer,
    conn: u64,
    kind: &Kind,
    shared: Arc<ConnShared>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Some(path) = &kind.websocket else {
        return connection::serve(stream, peer, conn, shared).await;
    };
    let max_message = shared.max_packet_size.saturating_add(64 * 1024);
    let handshake = ws::accept(stream, path.as_deref(), max_message);
    if let Some(ws) = bounded("WebSocket handshake", &peer, &shared, handshake).await {
        connection::serve(ws, peer, conn, shared).await;
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
