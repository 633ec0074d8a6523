//! The CONNECT handshake: wait for the CONNECT packet within the CONNECT
//! timeout, check what the router cannot, and answer refusals with a CONNACK.

use log_limit::LogLimit;
use std::future::poll_fn;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info, warn};

use crate::metrics;
use mqtt_proto::codec::{
    encode, read_packet, ConnAck, Connect, ConnectReturnCode, DecodeError, Packet,
};

use super::read::{poll_read_some, CONNECT_CHUNK};
use super::{ConnShared, Peer};

/// Wait for the CONNECT packet and check what the router cannot: protocol level,
/// client id. Answers refusals with a CONNACK. `None`: the connection is over.
/// The whole CONNECT must arrive within the CONNECT timeout of the accept: a
/// client that sends it a byte at a time does not get more time per byte.
pub(super) async fn read_connect<S>(
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
            static MALFORMED: LogLimit = LogLimit::new(log_limit::MINUTE);
            if let Some(skipped) = MALFORMED.check() {
                warn!("malformed CONNECT: {e}{}", log_limit::suppressed(skipped));
            }
            return None;
        }
        Ok(Ok(p)) => p,
    };
    let mut connect = match packet {
        Packet::Connect(c) => c,
        other => {
            metrics::add(&shared.metrics.malformed_packets, 1);
            static NOT_CONNECT: LogLimit = LogLimit::new(log_limit::MINUTE);
            if let Some(skipped) = NOT_CONNECT.check() {
                warn!(
                    "[MQTT-3.1.0-1] first packet is {} instead of CONNECT{}",
                    other.name(),
                    log_limit::suppressed(skipped)
                );
            }
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

pub(super) async fn refuse<S>(stream: &mut S, shared: &ConnShared, code: ConnectReturnCode)
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
    // Before the login a connection may only make the broker hold a CONNECT.
    let max = shared.max_connect_size.min(shared.max_packet_size);
    loop {
        if let Some(p) = read_packet(rbuf, max).map_err(ReadError::Decode)? {
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

/// The keep-alive the server enforces: the client's, capped; a client that asks
/// for none (0) gets the cap, so that a silent connection does not stay forever.
pub(super) fn effective_keep_alive(client: u16, cap: u16) -> Option<Duration> {
    let cap = cap.max(1);
    let secs = if client == 0 { cap } else { client.min(cap) };
    // [MQTT-3.1.2-24]: one and a half times the keep-alive period.
    Some(Duration::from_millis(u64::from(secs) * 1500))
}
