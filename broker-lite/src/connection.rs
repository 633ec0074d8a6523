//! One client connection: read and decode packets, hand them to the router,
//! write whatever the router put in this connection's outbox, enforce the
//! CONNECT timeout and keep-alive, and tell the router how the connection ended.
//!
//! An idle connection holds no read buffer: it waits for readiness, then reads.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::codec::{encode, read_packet, ConnAck, Connect, ConnectReturnCode, DecodeError, Packet};
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

pub(crate) async fn serve(stream: TcpStream, conn: ConnId, shared: Arc<ConnShared>) {
    let _ = stream.set_nodelay(true);
    let mut rbuf = BytesMut::new();
    // Boxed: the CONNECT phase's state is only held while it runs, which keeps
    // the memory of every established connection's task small.
    let connect = match Box::pin(read_connect(&stream, &mut rbuf, &shared)).await {
        Some(c) => c,
        None => return,
    };
    if rbuf.is_empty() {
        // Idle connections keep no read buffer.
        rbuf = BytesMut::new();
    }
    let keep_alive = effective_keep_alive(connect.keep_alive, shared.max_keep_alive);
    debug!(conn, peer = ?stream.peer_addr().ok(), client_id = connect.client_id, "client connected");
    let outbox = Arc::new(Outbox::default());
    // Boxed like the CONNECT phase: one-off states stay out of the task.
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
    let end = run(&stream, conn, &mut rbuf, &outbox, keep_alive, &shared).await;
    let graceful = matches!(end, End::Disconnect);
    let why = Box::new(end);
    let _ = Box::pin(shared.router.send(Event::Closed {
        conn,
        graceful,
        why,
    }))
    .await;
}

/// Wait for the CONNECT packet and check what the router cannot: protocol level,
/// client id. Answers refusals with a CONNACK. `None`: the connection is over.
async fn read_connect(
    stream: &TcpStream,
    rbuf: &mut BytesMut,
    shared: &ConnShared,
) -> Option<Box<Connect>> {
    let mut shutdown = shared.shutdown.clone();
    let first = tokio::select! {
        r = tokio::time::timeout(shared.connect_timeout, read_one(stream, rbuf, shared)) => r,
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

async fn refuse(stream: &TcpStream, shared: &ConnShared, code: ConnectReturnCode) {
    let mut buf = BytesMut::new();
    encode(
        &Packet::ConnAck(ConnAck {
            session_present: false,
            code,
        }),
        &mut buf,
    );
    if write_all(stream, &buf).await.is_ok() {
        metrics::add(&shared.metrics.bytes_sent, buf.len() as u64);
    }
}

enum ReadError {
    Io(io::Error),
    Decode(DecodeError),
}

/// Read until one whole packet is there.
async fn read_one(
    stream: &TcpStream,
    rbuf: &mut BytesMut,
    shared: &ConnShared,
) -> Result<Packet, ReadError> {
    loop {
        if let Some(p) = read_packet(rbuf, shared.max_packet_size).map_err(ReadError::Decode)? {
            return Ok(p);
        }
        stream.readable().await.map_err(ReadError::Io)?;
        match read_some(stream, rbuf, CONNECT_CHUNK) {
            Ok(0) => return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => metrics::add(&shared.metrics.bytes_received, n as u64),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

/// Read what the socket has. A read that finds nothing gives an empty buffer's
/// memory back, so that idle connections hold no read buffer.
fn read_some(stream: &TcpStream, rbuf: &mut BytesMut, chunk: usize) -> io::Result<usize> {
    if rbuf.capacity() - rbuf.len() < chunk / 4 {
        rbuf.reserve(chunk);
    }
    let read = stream.try_read_buf(rbuf);
    if rbuf.is_empty() && matches!(&read, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
        *rbuf = BytesMut::new();
    }
    read
}

async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        stream.writable().await?;
        match stream.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

async fn run(
    stream: &TcpStream,
    conn: ConnId,
    rbuf: &mut BytesMut,
    outbox: &Outbox,
    keep_alive: Option<Duration>,
    shared: &ConnShared,
) -> End {
    let deadline = |now: Instant| keep_alive.map_or_else(far_future, |k| now + k);
    let sleep = tokio::time::sleep_until(deadline(Instant::now()));
    tokio::pin!(sleep);
    // Packets read before CONNECT was handled may already be in the buffer.
    let mut pending_input = !rbuf.is_empty();
    let mut braked: Option<Brake> = None;
    loop {
        if pending_input {
            pending_input = false;
            let (packets, end) = decode(rbuf, outbox, shared);
            if !packets.is_empty() {
                outbox.batch_sent();
            }
            if !packets.is_empty()
                && shared
                    .router
                    .send(Event::Packets { conn, packets })
                    .await
                    .is_err()
            {
                return End::RouterGone;
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
        tokio::select! {
            biased;
            taken = outbox.take() => {
                let (buf, close) = match taken {
                    Taken::Bytes(b) => (b, false),
                    Taken::Closed(b) => (b, true),
                    Taken::Woken => continue,
                };
                if let Err(end) = flush(stream, &buf, sleep.deadline()).await {
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
            () = wait_for_relief(braked.as_ref(), &shared.relief), if braked.is_some() => {
                braked = None;
            }
            ready = stream.readable(), if braked.is_none() && outbox.may_send_batch() => {
                if let Err(e) = ready {
                    return End::Io(e);
                }
                match read_some(stream, rbuf, READ_CHUNK) {
                    Ok(0) => return End::Eof,
                    Ok(n) => {
                        metrics::add(&shared.metrics.bytes_received, n as u64);
                        sleep.as_mut().reset(deadline(Instant::now()));
                        pending_input = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return End::Io(e),
                }
            }
            () = &mut sleep => return End::KeepAliveExpired,
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

/// Write a whole buffer. Most writes complete at once without waiting; one that
/// has to wait for the client gives up when the keep-alive deadline passes.
async fn flush(stream: &TcpStream, buf: &[u8], deadline: Instant) -> Result<(), End> {
    let mut rest = buf;
    while !rest.is_empty() {
        match stream.try_write(rest) {
            Ok(0) => return Err(End::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The slow path is boxed so that its state is not part of every connection's task.
                return match Box::pin(tokio::time::timeout_at(deadline, write_all(stream, rest)))
                    .await
                {
                    Err(_) => Err(End::KeepAliveExpired),
                    Ok(Err(e)) => Err(End::Io(e)),
                    Ok(Ok(())) => Ok(()),
                };
            }
            Err(e) => return Err(End::Io(e)),
        }
    }
    Ok(())
}

fn protocol_error(shared: &ConnShared, why: &str) -> End {
    metrics::add(&shared.metrics.malformed_packets, 1);
    End::Protocol(why.to_string())
}
