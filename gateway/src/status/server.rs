//! The HTTP server: read-only routes over the current snapshot, for the hosts
//! it answers (`host`), to whoever has the credentials (`auth`), over connections
//! bounded in number and time (`conns`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::history::{self, History, SharedHistory};
use super::host::Hosts;
use super::snapshot::{Snapshot, Watched};
use super::{auth, conns, health, host, metrics};
use crate::config::{StatusAuth, StatusLimits};

/// The page, embedded in the binary: no build step, no files to install.
const PAGE: &str = include_str!("page.html");
/// Time between two snapshots on `/events`.
const EVENT_EVERY: Duration = Duration::from_secs(1);

struct AppState {
    watched: Watched,
    history: SharedHistory,
    /// `/events` streams end when this turns true, so that shutdown is not held up
    /// by an open browser tab.
    stop: watch::Receiver<bool>,
}

/// The routes, reading from `watched` on every request (no history, no auth,
/// any `Host`).
pub fn router(watched: Watched) -> Router {
    let history = SharedHistory::default();
    router_until(
        watched,
        history,
        StatusAuth::default(),
        watch::channel(false).1,
    )
}

/// `router_until`, answering only the hosts in `hosts`.
fn router_for(
    watched: Watched,
    history: SharedHistory,
    auth: StatusAuth,
    hosts: Hosts,
    stop: watch::Receiver<bool>,
) -> Router {
    router_until(watched, history, auth, stop).layer(axum::middleware::from_fn_with_state(
        Arc::new(hosts),
        host::require,
    ))
}

fn router_until(
    watched: Watched,
    history: SharedHistory,
    auth: StatusAuth,
    stop: watch::Receiver<bool>,
) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/events", get(events))
        .route("/api/status", get(api_status))
        .route("/api/history", get(api_history))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(Arc::new(AppState {
            watched,
            history,
            stop,
        }))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(auth),
            auth::require,
        ))
}

/// Bind `listen` and serve until `shutdown` turns true, asking for `auth`'s
/// credentials when it has any, within `limits`. Returns the bound address
/// (useful with port 0) and the server task.
pub async fn start(
    listen: SocketAddr,
    auth: StatusAuth,
    limits: StatusLimits,
    watched: Watched,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    serve(bind(listen).await?, auth, limits, watched, shutdown)
}

/// Bind the status page's port: `mqgate run` does it before it connects anywhere,
/// so that a busy port stops it before it has disturbed anything.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("status server on {listen}"))
}

/// Serve on a bound `listener` (see `start`).
pub fn serve(
    listener: TcpListener,
    auth: StatusAuth,
    limits: StatusLimits,
    watched: Watched,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    if auth.is_open() && !addr.ip().is_loopback() {
        tracing::warn!(
            "the status page on {addr} is open to the network without credentials: \
             set status.token or status.username (and a password) to require them"
        );
    }
    let history = SharedHistory::default();
    tokio::spawn(history::sample(
        watched.clone(),
        history.clone(),
        shutdown.clone(),
    ));
    let hosts = Hosts {
        bound: addr.ip(),
        names: limits.allowed_hosts.clone(),
    };
    let app = router_for(watched, history, auth, hosts, shutdown.clone());
    let task = tokio::spawn(conns::serve(listener, app, limits, shutdown));
    Ok((addr, task))
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// Server-sent events: a snapshot as JSON every second, the first at once.
async fn events(
    State(app): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((app, true), |(app, first)| async move {
        if !first {
            tokio::time::sleep(EVENT_EVERY).await;
        }
        if *app.stop.borrow() {
            return None;
        }
        let json = serde_json::to_string(&Snapshot::of(&app.watched)).unwrap_or_default();
        Some((Ok(Event::default().data(json)), (app, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn api_status(State(app): State<Arc<AppState>>) -> Json<Snapshot> {
    Json(Snapshot::of(&app.watched))
}

async fn api_history(State(app): State<Arc<AppState>>) -> Json<History> {
    let history = app.history.lock().unwrap_or_else(|e| e.into_inner());
    Json(history.clone())
}

async fn metrics_text(State(app): State<Arc<AppState>>) -> Response {
    let body = metrics::render(&Snapshot::of(&app.watched));
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

async fn healthz(State(app): State<Arc<AppState>>) -> Response {
    let problems = health::problems(&Snapshot::of(&app.watched));
    if problems.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let mut body = problems.join("\n");
        body.push('\n');
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}
