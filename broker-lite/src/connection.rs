//! One client connection: read and decode packets, hand them to the router,
//! write whatever the router put in this connection's outbox, enforce the
//! CONNECT timeout and keep-alive, and tell the router how the connection ended.
//!
//! The stream is anything that reads and writes bytes: plain TCP, TLS, or the
//! binary frames of a WebSocket (see `listener`). An idle connection holds no
//! read buffer: its first bytes land in a small buffer on the stack.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use mqtt_proto::codec::{
    encode, read_packet, ConnAck, Connect, ConnectReturnCode, DecodeError, Packet,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::listener::Admitted;
use crate::metrics::{self, Metrics};
use crate::outbox::{Outbox, OutboxLimits, Taken};
use crate::router::Event;
use crate::session::ConnId;

/// Bytes reserved for each read.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes reserved for reads before CONNECT: most CONNECT packets are small.
const CONNECT_CHUNK: usize = 512;
/// Longest a braked publisher waits for a congested subscriber before reading again.
const BRAKE_MAX: Duration = Duration::from_millis(500);
/// Stack bytes that take the first read of an empty buffer.
const PROBE: usize = 512;
/// Longest the broker waits to say goodbye (TLS close_notify, WebSocket close).
const GOODBYE: Duration = Duration::from_secs(1);

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
    pub fn auth(&self) -> Arc<crate::auth::Auth> {
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
        let end = run(&mut stream, conn, &mut rbuf, &outbox, keep_alive, shared).await;
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

/// Wait for the CONNECT packet and check what the router cannot: protocol level,
/// client id. Answers refusals with a CONNACK. `None`: the connection is over.
/// The whole CONNECT must arrive within the CONNECT timeout of the accept: a
/// client that sends it a byte at a time does not get more time per byte.
async fn read_connect<S>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    peer: &Peer,
    shared: &ConnShared,
) -> Option<Box<Connect>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut shutdown = shared.shutdown.clone();
    let deadline = peer.accepted + shared.connect_timeout;
    let first = tokio::select! {
        r = tokio::time::timeout_at(deadline, read_one(stream, rbuf, shared)) => r,
        _ = shutdown.changed() => return None,
    };
    let packet = match first {
        Err(_) => {
            debug!("no CONNECT within {:?}; closing", shared.connect_timeout);
            return None;
        }
        Ok(Err(ReadError::Io(e))) => {
            debug!("connection closed before CONNECT: {e}");
            return None;
        }
        Ok(Err(ReadError::Decode(DecodeError::UnsupportedProtocolLevel(level)))) => {
            info!("refusing CONNECT with protocol level {level} [MQTT-3.1.2-2]");
            refuse(
                stream,
                shared,
                ConnectReturnCode::UnacceptableProtocolVersion,
            )
            .await;
            return None;
        }
        Ok(Err(ReadError::Decode(e))) => {
            metrics::add(&shared.metrics.malformed_packets, 1);
            warn!("malformed CONNECT: {e}");
            return None;
        }
        Ok(Ok(p)) => p,
    };
    let mut connect = match packet {
        Packet::Connect(c) => c,
        other => {
            metrics::add(&shared.metrics.malformed_packets, 1);
            warn!(
                "[MQTT-3.1.0-1] first packet is {} instead of CONNECT",
                other.name()
            );
            return None;
        }
    };
    if connect.client_id.is_empty() {
        if !connect.clean_session {
            info!("refusing empty client id without clean session [MQTT-3.1.3-8]");
            refuse(stream, shared, ConnectReturnCode::IdentifierRejected).await;
            return None;
        }
        connect.client_id = format!("auto-{:016x}", next_auto_id());
    }
    if let Some(name) = &peer.cert_username {
        debug!(peer = %peer.addr, user = name, "user name from the client certificate");
        connect.username = Some(name.clone());
    }
    Some(Box::new(connect))
}

fn next_auto_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // Mix in the process start so that ids differ between broker runs.
    let salt = std::process::id() as u64;
    n ^ (salt << 40)
}

async fn refuse<S>(stream: &mut S, shared: &ConnShared, code: ConnectReturnCode)
where
    S: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    encode(
        &Packet::ConnAck(ConnAck {
            session_present: false,
            code,
        }),
        &mut buf,
    );
    let write = async {
        stream.write_all(&buf).await?;
        stream.flush().await
    };
    if let Ok(Ok(())) = tokio::time::timeout(shared.connect_timeout, write).await {
        metrics::add(&shared.metrics.bytes_sent, buf.len() as u64);
    }
}

enum ReadError {
    Io(io::Error),
    Decode(DecodeError),
}

/// Read until one whole packet is there.
async fn read_one<S>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    shared: &ConnShared,
) -> Result<Packet, ReadError>
where
    S: AsyncRead + Unpin,
{
    loop {
        if let Some(p) = read_packet(rbuf, shared.max_packet_size).map_err(ReadError::Decode)? {
            return Ok(p);
        }
        let read = poll_fn(|cx| poll_read_some(stream, cx, rbuf, CONNECT_CHUNK)).await;
        match read {
            Ok(0) => return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => metrics::add(&shared.metrics.bytes_received, n as u64),
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

/// Read what the stream has into `rbuf`. An empty buffer gets no memory until
/// bytes arrive: the first read goes to a small buffer on the stack (not part
/// of the task), so idle connections hold no read buffer while they wait.
fn poll_read_some<S>(
    stream: &mut S,
    cx: &mut Context<'_>,
    rbuf: &mut BytesMut,
    chunk: usize,
) -> Poll<io::Result<usize>>
where
    S: AsyncRead + Unpin,
{
    if !rbuf.is_empty() {
        if rbuf.capacity() - rbuf.len() < chunk / 4 {
            rbuf.reserve(chunk);
        }
        return poll_read_spare(stream, cx, rbuf);
    }
    let mut probe = [0u8; PROBE];
    let mut first = ReadBuf::new(&mut probe);
    match Pin::new(&mut *stream).poll_read(cx, &mut first) {
        Poll::Ready(r) => r?,
        Poll::Pending => {
            // Nothing to read and nothing kept: an idle connection gives its
            // empty buffer's memory back while it waits (the CONNECT's 512
            // bytes, or a busy connection's 16 KiB).
            if rbuf.capacity() > 0 {
                *rbuf = BytesMut::new();
            }
            return Poll::Pending;
        }
    }
    let n = first.filled().len();
    if n == 0 {
        return Poll::Ready(Ok(0));
    }
    rbuf.reserve(chunk);
    rbuf.extend_from_slice(first.filled());
    // More may be waiting. An error or end here shows again at the next read;
    // a pending read only leaves a wake-up behind.
    match poll_read_spare(stream, cx, rbuf) {
        Poll::Ready(Ok(more)) => Poll::Ready(Ok(n + more)),
        Poll::Ready(Err(_)) | Poll::Pending => Poll::Ready(Ok(n)),
    }
}

/// One read into the spare capacity of `rbuf`.
fn poll_read_spare<S>(
    stream: &mut S,
    cx: &mut Context<'_>,
    rbuf: &mut BytesMut,
) -> Poll<io::Result<usize>>
where
    S: AsyncRead + Unpin,
{
    pin!(stream.read_buf(rbuf)).poll(cx)
}

/// The keep-alive the server enforces: the client's, capped; `None` when off.
fn effective_keep_alive(client: u16, cap: u16) -> Option<Duration> {
    if client == 0 {
        return None;
    }
    let secs = client.min(cap.max(1));
    // [MQTT-3.1.2-24]: one and a half times the keep-alive period.
    Some(Duration::from_millis(u64::from(secs) * 1500))
}

/// A point far enough away to mean "never".
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

/// The connected client's life: packets in to the router, the outbox out to the
/// socket, until the connection ends. An async block for the same reason as `serve`.
#[allow(clippy::manual_async_fn)]
fn run<'a, S>(
    stream: &'a mut S,
    conn: ConnId,
    rbuf: &'a mut BytesMut,
    outbox: &'a Outbox,
    keep_alive: Option<Duration>,
    shared: &'a ConnShared,
) -> impl Future<Output = End> + Send + 'a
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async move {
        let deadline = |now: Instant| keep_alive.map_or_else(far_future, |k| now + k);
        let sleep = tokio::time::sleep_until(deadline(Instant::now()));
        tokio::pin!(sleep);
        let mut braked: Option<Brake> = None;
        loop {
            // What was read (also before CONNECT was handled) is decoded first. A
            // partial packet left in the buffer is looked at again, which is cheap,
            // rather than kept track of in one more field of every connection's task.
            if !rbuf.is_empty() {
                let (packets, end) = decode(rbuf, outbox, shared);
                if !packets.is_empty() {
                    outbox.batch_sent();
                }
                if !packets.is_empty() {
                    // Most of the time the channel has room and this is done at
                    // once; only a full channel makes the connection wait, and the
                    // state of that wait is boxed so that it is not part of every task.
                    let event = Event::Packets { conn, packets };
                    let sent = match shared.router.try_send(event) {
                        Ok(()) => true,
                        Err(mpsc::error::TrySendError::Full(event)) => {
                            Box::pin(shared.router.send(event)).await.is_ok()
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => false,
                    };
                    if !sent {
                        return End::RouterGone;
                    }
                }
                if let Some(end) = end {
                    return end;
                }
                if rbuf.is_empty() {
                    // Idle connections keep no read buffer.
                    *rbuf = BytesMut::new();
                }
            }
            if braked.is_none() {
                braked = outbox.take_brake().map(|target| Brake {
                    target,
                    until: Instant::now() + BRAKE_MAX,
                });
            }
            // The select only decides what to do: its futures are gone before the
            // write below waits, so their state and the write's share memory in
            // the connection's task.
            tokio::select! {
                biased;
                () = outbox.ready() => {}
                () = wait_for_relief(braked.as_ref(), &shared.relief), if braked.is_some() => {
                    braked = None;
                    continue;
                }
                read = poll_fn(|cx| poll_read_some(stream, cx, rbuf, READ_CHUNK)),
                    if braked.is_none() && outbox.may_send_batch() =>
                {
                    match read {
                        Ok(0) => return End::Eof,
                        Ok(n) => {
                            metrics::add(&shared.metrics.bytes_received, n as u64);
                            sleep.as_mut().reset(deadline(Instant::now()));
                            continue;
                        }
                        Err(e) => return End::Io(e),
                    }
                }
                () = &mut sleep => return End::KeepAliveExpired,
            }
            let (buf, close) = match outbox.try_take() {
                Some(Taken::Bytes(b)) => (b, false),
                Some(Taken::Closed(b)) => (b, true),
                // A wake-up with nothing to write: look at the brake and the batches again.
                None => continue,
            };
            // Most writes complete at once; only a client slow to read makes the
            // connection wait, in a boxed future (its state is not part of every
            // connection's task).
            let now = poll_fn(|cx| Poll::Ready(write_now(&mut *stream, cx, &buf))).await;
            let done = match now {
                Err(e) => Err(End::Io(e)),
                Ok(None) => Ok(()),
                Ok(Some(written)) => {
                    Box::pin(write_rest(stream, &buf[written..], sleep.deadline())).await
                }
            };
            if let Err(end) = done {
                return end;
            }
            metrics::add(&shared.metrics.bytes_sent, buf.len() as u64);
            if outbox.relieve(shared.outbox_limits.soft / 2) {
                shared.relief.notify_waiters();
            }
            if close {
                return End::Closed;
            }
            outbox.recycle(buf);
        }
    }
}

/// A publisher that must not read until another client's outbox drains.
struct Brake {
    target: Arc<Outbox>,
    until: Instant,
}

/// Wait until the brake's target is no longer congested, or its time is up
/// (then the target is marked stuck so that nobody waits for it again).
async fn wait_for_relief(brake: Option<&Brake>, relief: &Notify) {
    let Some(brake) = brake else {
        return std::future::pending().await;
    };
    // Boxed: only braked connections pay for the timer.
    Box::pin(async {
        loop {
            let notified = relief.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !brake.target.is_congested() {
                return;
            }
            if tokio::time::timeout_at(brake.until, notified)
                .await
                .is_err()
            {
                brake.target.mark_stuck();
                return;
            }
        }
    })
    .await
}

/// Decode every whole packet in the buffer; answer PINGREQ here and return the
/// rest for the router, with how the connection ends if a packet ends it.
fn decode(rbuf: &mut BytesMut, outbox: &Outbox, shared: &ConnShared) -> (Vec<Packet>, Option<End>) {
    let mut packets = Vec::new();
    loop {
        let end = match read_packet(rbuf, shared.max_packet_size) {
            Ok(None) => return (packets, None),
            Ok(Some(packet)) => match packet {
                Packet::PingReq => {
                    outbox.push_with(|b| encode(&Packet::PingResp, b));
                    outbox.wake();
                    continue;
                }
                Packet::Disconnect => End::Disconnect,
                Packet::Connect(_) => {
                    protocol_error(shared, "[MQTT-3.1.0-2] second CONNECT on one connection")
                }
                Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                    let why = format!("{} is a packet only a server sends", packet.name());
                    protocol_error(shared, &why)
                }
                other => {
                    packets.push(other);
                    continue;
                }
            },
            Err(e) => protocol_error(shared, &e.to_string()),
        };
        return (packets, Some(end));
    }
}

/// Write and flush as much of `buf` as the stream takes without waiting.
/// `None`: all of it is written and flushed; `Some(n)`: `n` bytes are written
/// and the rest (or the flush) has to wait for the client (`write_rest`).
fn write_now<S>(stream: &mut S, cx: &mut Context<'_>, buf: &[u8]) -> io::Result<Option<usize>>
where
    S: AsyncWrite + Unpin,
{
    let mut stream = Pin::new(stream);
    let mut written = 0;
    while written < buf.len() {
        match stream.as_mut().poll_write(cx, &buf[written..]) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => written += n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(Some(written)),
        }
    }
    match stream.poll_flush(cx) {
        Poll::Ready(Ok(())) => Ok(None),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Ok(Some(written)),
    }
}

/// The rest of a write that had to wait: given up when the keep-alive deadline passes.
async fn write_rest<S>(stream: &mut S, rest: &[u8], deadline: Instant) -> Result<(), End>
where
    S: AsyncWrite + Unpin + Send,
{
    let slow = async {
        stream.write_all(rest).await?;
        stream.flush().await
    };
    match tokio::time::timeout_at(deadline, slow).await {
        Err(_) => Err(End::KeepAliveExpired),
        Ok(Err(e)) => Err(End::Io(e)),
        Ok(Ok(())) => Ok(()),
    }
}

fn protocol_error(shared: &ConnShared, why: &str) -> End {
    metrics::add(&shared.metrics.malformed_packets, 1);
    End::Protocol(why.to_string())
}

#[cfg(test)]
mod read_tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn an_emptied_buffer_is_given_back_when_nothing_more_comes() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let mut rbuf = BytesMut::new();
        client.write_all(&[7u8; 3000]).await.unwrap();
        let n = poll_fn(|cx| poll_read_some(&mut server, cx, &mut rbuf, READ_CHUNK))
            .await
            .unwrap();
        assert_eq!(n, 3000);
        assert!(rbuf.capacity() >= READ_CHUNK, "{}", rbuf.capacity());
        // The packets are taken out; nothing more is on the way.
        rbuf.clear();
        let waiting = poll_fn(|cx| {
            Poll::Ready(poll_read_some(&mut server, cx, &mut rbuf, READ_CHUNK).is_pending())
        })
        .await;
        assert!(waiting, "nothing to read");
        assert_eq!(
            rbuf.capacity(),
            0,
            "an idle connection holds no read buffer"
        );
        // And the next bytes are read as before.
        client.write_all(b"abc").await.unwrap();
        let n = poll_fn(|cx| poll_read_some(&mut server, cx, &mut rbuf, READ_CHUNK))
            .await
            .unwrap();
        assert_eq!((n, &rbuf[..]), (3, &b"abc"[..]));
    }
}
