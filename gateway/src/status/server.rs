//! The HTTP server: read-only routes over the current snapshot.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::snapshot::{Snapshot, Watched};
use super::{health, metrics};

/// The routes, reading from `watched` on every request.
pub fn router(watched: Watched) -> Router {
    Router::new()
        .route("/api/status", get(api_status))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(Arc::new(watched))
}

/// Bind `listen` and serve until `shutdown` turns true. Returns the bound address
/// (useful with port 0) and the server task.
pub async fn start(
    listen: SocketAddr,
    watched: Watched,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("status server on {listen}"))?;
    let addr = listener.local_addr()?;
    let app = router(watched);
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!("status server on {addr}: {e}");
        }
    });
    Ok((addr, task))
}

async fn api_status(State(w): State<Arc<Watched>>) -> Json<Snapshot> {
    Json(Snapshot::of(&w))
}

async fn metrics_text(State(w): State<Arc<Watched>>) -> Response {
    let body = metrics::render(&Snapshot::of(&w));
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

async fn healthz(State(w): State<Arc<Watched>>) -> Response {
    let problems = health::problems(&Snapshot::of(&w));
    if problems.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let mut body = problems.join("\n");
        body.push('\n');
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}
