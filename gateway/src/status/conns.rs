//! The status server's connections, bounded so that its clients cannot take the
//! file descriptors the embedded broker needs.
//!
//! At most `max_connections` at once: a semaphore permit moves into each
//! connection's task. When every permit is taken, a new connection takes the
//! place of the oldest one that has not sent a whole request yet (a slow or
//! half-open client), so a flood of half requests cannot lock `/healthz` out;
//! when every connection has sent one (pages, `/events` streams) the new one is
//! answered 503 at once and closed (at most `MAX_REFUSING` of those are kept, each
//! for at most `REFUSE_LINGER`, so that the client reads the answer). Each connection is served by hyper's HTTP/1
//! with its header read timeout (which also ends a keep-alive connection idle
//! between requests), and closed after `idle_timeout` without a byte read or
//! written (a client that stopped reading).

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use log_limit::LogLimit;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::StatusLimits;

/// What a connection past the limit gets, when no slow one can make room.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 42\r\nconnection: close\r\n\r\nstatus server busy: too many connections\r\n";
/// Longest wait for a connection replaced by a new one to give back its permit.
const MAKE_ROOM: Duration = Duration::from_millis(500);
/// Refused connections being answered at once, each for at most `REFUSE_LINGER`;
/// past this many a refused connection is closed without waiting.
const MAX_REFUSING: usize = 16;
/// Longest time a refused connection is kept to read the client's request (so
/// that closing it does not reset the 503 away) and see the client close.
const REFUSE_LINGER: Duration = Duration::from_secs(1);
/// Pause after a failed accept (e.g. out of file descriptors) before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

static REFUSED: LogLimit = LogLimit::new(log_limit::MINUTE);
static REPLACED: LogLimit = LogLimit::new(log_limit::MINUTE);
static ACCEPT_FAILED: LogLimit = LogLimit::new(log_limit::MINUTE);

/// Accept and serve connections on `listener` with `app` until `shutdown` turns
/// true; then ask each connection to finish and wait until all have.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: StatusLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let waiting = Waiting::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                if let Some(skipped) = ACCEPT_FAILED.check() {
                    tracing::warn!(
                        "status server: accept failed: {e}{}",
                        log_limit::suppressed(skipped)
                    );
                }
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match make_room(&permits, &waiting).await {
                Some(permit) => permit,
                None => {
                    refuse(stream, &refusing);
                    continue;
                }
            },
        };
        tokio::spawn(connection(
            stream,
            app.clone(),
            limits.clone(),
            waiting.add(),
            permit,
            shutdown.clone(),
        ));
    }
    // Every task gives its permit back when it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

/// Close the oldest connection without a request yet and take its permit; `None`
/// when there is none (every connection is a real client).
async fn make_room(permits: &Arc<Semaphore>, waiting: &Waiting) -> Option<OwnedSemaphorePermit> {
    if !waiting.replace_oldest() {
        return None;
    }
    if let Some(skipped) = REPLACED.check() {
        tracing::warn!(
            "status server: connection limit reached; closed the oldest connection \
             that had not sent a request{}",
            log_limit::suppressed(skipped)
        );
    }
    tokio::time::timeout(MAKE_ROOM, permits.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
}

/// Answer 503 and close, in a task of its own bounded by `refusing` and
/// `REFUSE_LINGER`; past `MAX_REFUSING` at once, close without waiting.
fn refuse(mut stream: TcpStream, refusing: &Arc<Semaphore>) {
    if let Some(skipped) = REFUSED.check() {
        tracing::warn!(
            "status server: connection limit reached, every connection busy: \
             refused one{}",
            log_limit::suppressed(skipped)
        );
    }
    let Ok(permit) = refusing.clone().try_acquire_owned() else {
        let _ = stream.try_write(BUSY);
        return;
    };
    tokio::spawn(async move {
        let answer = async {
            stream.write_all(BUSY).await?;
            stream.shutdown().await?;
            // Closing with the request unread would reset the connection, and
            // the client could lose the answer with it.
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        };
        let _ = tokio::time::timeout(REFUSE_LINGER, answer).await;
        drop(permit);
    });
}

/// Serve one connection until it ends, is replaced, stays idle too long, or the
/// server shuts down.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: StatusLimits,
    slot: Slot,
    _permit: OwnedSemaphorePermit,
    mut shutdown: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let service = FirstRequest {
        inner: TowerToHyperService::new(app),
        slot: slot.clone(),
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let idle_until = activity.last() + limits.idle_timeout;
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("status server: connection ended: {e}");
                }
                break;
            }
            _ = slot.replaced.notified() => break,
            _ = tokio::time::sleep_until(idle_until) => {
                if activity.last() + limits.idle_timeout <= Instant::now() {
                    tracing::debug!("status server: closed a connection idle for {:?}", limits.idle_timeout);
                    break;
                }
            }
            _ = shutdown.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    slot.done();
}

/// The connections that have not sent a whole request yet, oldest first: the
/// ones a new connection may replace.
#[derive(Clone, Default)]
struct Waiting(Arc<Mutex<WaitingInner>>);

#[derive(Default)]
struct WaitingInner {
    next_id: u64,
    by_age: BTreeMap<u64, Arc<Notify>>,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, WaitingInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection, waiting for its first request.
    fn add(&self) -> Slot {
        let replaced = Arc::new(Notify::new());
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.by_age.insert(id, replaced.clone());
        Slot {
            id,
            replaced,
            waiting: self.clone(),
        }
    }

    /// Tell the oldest waiting connection to close; false when none waits.
    fn replace_oldest(&self) -> bool {
        let oldest = self.lock().by_age.pop_first();
        match oldest {
            Some((_, replaced)) => {
                // Stored if the task is not waiting on it right now.
                replaced.notify_one();
                true
            }
            None => false,
        }
    }
}

/// One connection's place in `Waiting`.
#[derive(Clone)]
struct Slot {
    id: u64,
    replaced: Arc<Notify>,
    waiting: Waiting,
}

impl Slot {
    /// The connection sent a request (or ended): it is no longer replaceable.
    fn done(&self) {
        self.waiting.lock().by_age.remove(&self.id);
    }
}

/// The router as hyper's service, taking the connection out of `Waiting` at its
/// first request.
struct FirstRequest<S> {
    inner: S,
    slot: Slot,
}

impl<S> hyper::service::Service<hyper::Request<Incoming>> for FirstRequest<S>
where
    S: hyper::service::Service<hyper::Request<Incoming>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        self.slot.done();
        self.inner.call(req)
    }
}

/// When a connection last read or wrote a byte.
struct Activity {
    start: Instant,
    /// Milliseconds from `start`.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A stream that notes in `activity` every read or write that moved bytes.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
