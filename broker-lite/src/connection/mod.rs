//! One client connection: read and decode packets, hand them to the router,
//! write whatever the router put in this connection's outbox, enforce the
//! CONNECT timeout and keep-alive, and tell the router how the connection ended.
//!
//! The stream is anything that reads and writes bytes: plain TCP, TLS, or the
//! binary frames of a WebSocket (see `listener`). An idle connection holds no
//! read buffer: its first bytes land in a small buffer on the stack (`read`).
//! `handshake` waits for the CONNECT and answers refusals; `run` is the
//! connected client's loop.

mod handshake;
mod read;
mod run;
mod shared;

pub(crate) use shared::{ConnShared, End, Peer};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::debug;

use crate::listener::Admitted;
use crate::outbox::Outbox;
use crate::router::Event;
use crate::session::ConnId;

use handshake::{effective_keep_alive, read_connect, refuse};

/// Longest the broker waits to say goodbye (TLS close_notify, WebSocket close).
const GOODBYE: Duration = Duration::from_secs(1);

/// Serve one client on `stream` until it ends; `admitted` gives the
/// connection's place back when it does.
///
/// This future is the connection's task, kept for as long as the client stays
/// connected, so what it holds is measured in bytes per idle connection: an
/// async block rather than an async fn (an async fn's state keeps its arguments
/// twice), the peer boxed and let go after CONNECT, one-off steps boxed so their
/// state is only held while they run.
#[allow(clippy::manual_async_fn)]
pub(crate) fn serve<S>(
    mut stream: S,
    peer: Box<Peer>,
    conn: ConnId,
    admitted: Admitted,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async move {
        let shared = admitted.shared();
        let mut rbuf = BytesMut::new();
        let mut connect = match Box::pin(read_connect(&mut stream, &mut rbuf, &peer, shared)).await
        {
            Some(c) => c,
            None => return,
        };
        // User name and password (see `auth`).
        let cert_user = peer.cert_username.is_some();
        let login = crate::auth::login(shared, &mut connect, peer.addr, cert_user);
        if let Err(code) = Box::pin(login).await {
            refuse(&mut stream, shared, code).await;
            return;
        }
        if rbuf.is_empty() {
            // Idle connections keep no read buffer.
            rbuf = BytesMut::new();
        }
        let keep_alive = effective_keep_alive(connect.keep_alive, shared.max_keep_alive);
        debug!(conn, peer = %peer.addr, client_id = connect.client_id, "client connected");
        drop(peer);
        let outbox = Arc::new(Outbox::default());
        let register = async {
            let event = Event::Connect {
                conn,
                connect,
                outbox: outbox.clone(),
            };
            shared.router.send(event).await
        };
        if Box::pin(register).await.is_err() {
            return;
        }
        let end = run::run(&mut stream, conn, &mut rbuf, &outbox, keep_alive, shared).await;
        let graceful = matches!(end, End::Disconnect);
        let why = Box::new(end);
        let _ = Box::pin(shared.router.send(Event::Closed {
            conn,
            graceful,
            why,
        }))
        .await;
        let _ = Box::pin(tokio::time::timeout(GOODBYE, stream.shutdown())).await;
    }
}
