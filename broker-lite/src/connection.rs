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
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::codec::{encode, read_packet, ConnAck, Connect, ConnectReturnCode, DecodeError, Packet};
use crate::metrics::{self, Metrics};
use crate::outbox::{Outbox, Taken};
use crate::router::Event;
use crate::session::ConnId;

/// Bytes reserved for each read.
const READ_CHUNK: usize = 16 * 1024;

/// What every connection task shares.
pub(crate) struct ConnShared {
    pub router: mpsc::Sender<Event>,
    pub metrics: Arc<Metrics>,
    pub max_packet_size: usize,
    pub connect_timeout: Duration,
    pub max_keep_alive: u16,
    pub shutdown: watch::Receiver<bool>,
}

/// Why a connection ended, for the log and for the will.
#[derive(Debug)]
enum End {
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
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let mut rbuf = BytesMut::new();
    let connect = match read_connect(&stream, &mut rbuf, &shared).await {
        Some(c) => c,
        None => return,
    };
    let client_id = connect.client_id.clone();
    let keep_alive = effective_keep_alive(connect.keep_alive, shared.max_keep_alive);
    debug!(conn, ?peer, client_id, "client connected");
    let outbox = Arc::new(Outbox::default());
    let event = Event::Connect {
        conn,
        connect: Box::new(connect),
        outbox: outbox.clone(),
    };
    if shared.router.send(event).await.is_err() {
        return;
    }
    let end = run(&stream, conn, &mut rbuf, &outbox, keep_alive, &shared).await;
    match &end {
        End::Protocol(why) => warn!(conn, client_id, "closing connection: {why}"),
        End::KeepAliveExpired => info!(conn, client_id, "keep-alive expired"),
        other => debug!(conn, client_id, "connection ended: {other}"),
    }
    let graceful = matches!(end, End::Disconnect);
    let _ = shared.router.send(Event::Closed { conn, graceful }).await;
}

/// Wait for the CONNECT packet and check what the router cannot: protocol level,
/// client id. Answers refusals with a CONNACK. `None`: the connection is over.
async fn read_connect(
    stream: &TcpStream,
    rbuf: &mut BytesMut,
    shared: &ConnShared,
) -> Option<Connect> {
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
    Some(connect)
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
        match read_some(stream, rbuf) {
            Ok(0) => return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => metrics::add(&shared.metrics.bytes_received, n as u64),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

fn read_some(stream: &TcpStream, rbuf: &mut BytesMut) -> io::Result<usize> {
    if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
        rbuf.reserve(READ_CHUNK);
    }
    stream.try_read_buf(rbuf)
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
    loop {
        if pending_input {
            pending_input = false;
            if let Some(end) = decode_and_forward(conn, rbuf, outbox, shared).await {
                return end;
            }
            if rbuf.is_empty() {
                // Idle connections keep no read buffer.
                *rbuf = BytesMut::new();
            }
        }
        tokio::select! {
            biased;
            taken = outbox.take() => {
                let (buf, close) = match taken {
                    Taken::Bytes(b) => (b, false),
                    Taken::Closed(b) => (b, true),
                };
                let written = tokio::time::timeout_at(sleep.deadline(), write_all(stream, &buf)).await;
                match written {
                    Err(_) => return End::KeepAliveExpired,
                    Ok(Err(e)) => return End::Io(e),
                    Ok(Ok(())) => metrics::add(&shared.metrics.bytes_sent, buf.len() as u64),
                }
                if close {
                    return End::Closed;
                }
                outbox.recycle(buf);
            }
            ready = stream.readable() => {
                if let Err(e) = ready {
                    return End::Io(e);
                }
                match read_some(stream, rbuf) {
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

/// Decode every whole packet in the buffer; answer PINGREQ here, pass the rest to the router.
async fn decode_and_forward(
    conn: ConnId,
    rbuf: &mut BytesMut,
    outbox: &Outbox,
    shared: &ConnShared,
) -> Option<End> {
    let mut packets = Vec::new();
    let mut end = None;
    loop {
        match read_packet(rbuf, shared.max_packet_size) {
            Ok(None) => break,
            Ok(Some(packet)) => match packet {
                Packet::PingReq => {
                    outbox.push_with(|b| encode(&Packet::PingResp, b));
                    outbox.wake();
                }
                Packet::Disconnect => {
                    end = Some(End::Disconnect);
                    break;
                }
                Packet::Connect(_) => {
                    end = Some(protocol_error(
                        shared,
                        "[MQTT-3.1.0-2] second CONNECT on one connection",
                    ));
                    break;
                }
                Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                    let why = format!("{} is a packet only a server sends", packet.name());
                    end = Some(protocol_error(shared, &why));
                    break;
                }
                other => packets.push(other),
            },
            Err(e) => {
                end = Some(protocol_error(shared, &e.to_string()));
                break;
            }
        }
    }
    if !packets.is_empty()
        && shared
            .router
            .send(Event::Packets { conn, packets })
            .await
            .is_err()
    {
        return Some(End::RouterGone);
    }
    end
}

fn protocol_error(shared: &ConnShared, why: &str) -> End {
    metrics::add(&shared.metrics.malformed_packets, 1);
    End::Protocol(why.to_string())
}
