//! The connected client's loop: packets in to the router, the outbox out to
//! the socket, the keep-alive and the brake of a publisher whose subscriber is
//! congested.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::metrics;
use crate::outbox::{Outbox, Taken};
use crate::router::Event;
use crate::session::ConnId;
use mqtt_proto::codec::{encode, read_packet, Packet};

use super::read::{poll_read_some, READ_CHUNK};
use super::{ConnShared, End};

/// Longest a braked publisher waits for a congested subscriber before reading again.
const BRAKE_MAX: Duration = Duration::from_millis(500);

/// A point far enough away to mean "never".
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

/// socket, until the connection ends. An async block for the same reason as `serve`.
#[allow(clippy::manual_async_fn)]
pub(super) fn run<'a, S>(
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
