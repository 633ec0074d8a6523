//! One MQTT connection: CONNECT/CONNACK, coalesced writes of queued packets,
//! acknowledgements read back, keep-alive. No copy of a message outlives its write.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use mqtt_proto::codec::{
    encode, encode_publish, read_packet, Connect, ConnectReturnCode, Packet, Publish, QoS, SubAck,
    Subscribe, PROTOCOL_LEVEL_311,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::error::ClientError;
use super::keepalive::{Due, KeepAlive};
use super::options::ClientOptions;
use super::tls;
use super::transport::Transport;

/// Largest packet accepted from the server. It only sends small acknowledgements.
pub const MAX_PACKET_SIZE: usize = 1024 * 1024;
/// Bytes one socket read takes at most.
const READ_CHUNK: usize = 16 * 1024;
/// Reads one `next` call makes before it lets other tasks run.
const READS_PER_POLL: usize = 16;

/// An acknowledgement from the server, with the packet id it acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// QoS 1 done.
    PubAck(u16),
    /// QoS 2 received by the server; answer with `pubrel`.
    PubRec(u16),
    /// QoS 2 done.
    PubComp(u16),
}

/// What a subscribing connection reads besides acknowledgements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ack(Ack),
    /// A message for a subscription; answer QoS 1 with `puback`, QoS 2 with `pubrec`.
    Publish(Publish),
    /// QoS 2, second step: answer with `pubcomp`.
    PubRel(u16),
    SubAck(SubAck),
}

/// A connected MQTT 3.1.1 client connection: publish-only unless made with
/// [`Connection::subscriber`].
pub struct Connection {
    io: Transport,
    /// Encoded packets not yet written.
    out: BytesMut,
    /// Bytes read and not yet decoded.
    input: BytesMut,
    scratch: Box<[u8]>,
    needs_flush: bool,
    keep_alive: KeepAlive,
    keep_alive_period: Duration,
    timer: Pin<Box<Sleep>>,
    /// Set after `next` failed: the connection is finished.
    broken: bool,
    /// Takes PUBLISH, PUBREL and SUBACK from the server (see `next_event`).
    subscriber: bool,
}

impl Connection {
    /// TCP (and TLS) connect, CONNECT, wait for CONNACK, all within
    /// `connect_timeout`. Returns the connection and the session-present flag.
    pub async fn connect(opts: &ClientOptions) -> Result<(Connection, bool), ClientError> {
        // Certificate problems show before any network traffic.
        let tls_config = opts.tls.as_ref().map(tls::client_config).transpose()?;
        if opts.password.is_some() && opts.username.is_none() {
            return Err(ClientError::Protocol(
                "a password needs a user name in MQTT 3.1.1 [MQTT-3.1.2-22]".into(),
            ));
        }
        let limit = opts.connect_timeout;
        tokio::time::timeout(limit, Connection::handshake(opts, tls_config))
            .await
            .unwrap_or(Err(ClientError::ConnectTimeout(limit)))
    }

    async fn handshake(
        opts: &ClientOptions,
        tls_config: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> Result<(Connection, bool), ClientError> {
        let tcp = TcpStream::connect((opts.host.as_str(), opts.port))
            .await
            .map_err(|source| ClientError::Connect {
                addr: format!("{}:{}", opts.host, opts.port),
                source,
            })?;
        tcp.set_nodelay(true)?;
        let io = match tls_config {
            Some(config) => tls::handshake(config, &opts.host, tcp).await?,
            None => Transport::Tcp(tcp),
        };
        let keep_alive_period = Duration::from_secs(u64::from(opts.keep_alive_secs()));
        let now = Instant::now();
        let mut conn = Connection {
            io,
            out: BytesMut::with_capacity(64 * 1024),
            input: BytesMut::with_capacity(READ_CHUNK),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            needs_flush: false,
            keep_alive: KeepAlive::new(keep_alive_period, now),
            keep_alive_period,
            timer: Box::pin(tokio::time::sleep_until(now + keep_alive_period)),
            broken: false,
            subscriber: false,
        };
        encode(&Packet::Connect(connect_packet(opts)), &mut conn.out);
        conn.io.write_all(&conn.out).await.map_err(tls::io_error)?;
        conn.io.flush().await.map_err(tls::io_error)?;
        conn.out.clear();
        let now = Instant::now();
        conn.keep_alive = KeepAlive::new(keep_alive_period, now);
        let ack = loop {
            if let Some(packet) = read_packet(&mut conn.input, MAX_PACKET_SIZE)? {
                break packet;
            }
            if poll_fn(|cx| conn.poll_read(cx)).await? == 0 {
                return Err(ClientError::Closed);
            }
        };
        match ack {
            Packet::ConnAck(a) if a.code == ConnectReturnCode::Accepted => {
                Ok((conn, a.session_present))
            }
            Packet::ConnAck(a) => Err(ClientError::Refused(a.code)),
            other => Err(ClientError::Protocol(format!(
                "the server answered CONNECT with {} instead of CONNACK",
                other.name()
            ))),
        }
    }

    /// Queue a PUBLISH (nothing is written until `next` runs). `pkid` must not
    /// be 0 for QoS 1 and 2 and is not sent for QoS 0; `dup` marks a resend.
    pub fn publish(
        &mut self,
        pkid: u16,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        dup: bool,
    ) {
        debug_assert!(qos == QoS::AtMostOnce || pkid != 0, "packet id 0");
        encode_publish(&mut self.out, topic, payload, qos, retain, dup, pkid);
    }

    /// From now on, take messages from the server: read them with `next_event`.
    pub fn subscriber(mut self) -> Connection {
        self.subscriber = true;
        self
    }

    /// Queue a SUBSCRIBE (subscriber connections).
    pub fn subscribe(&mut self, pkid: u16, filters: Vec<(String, QoS)>) {
        encode(
            &Packet::Subscribe(Subscribe { pkid, filters }),
            &mut self.out,
        );
    }

    /// Queue the acknowledgement of a received QoS 1 message.
    pub fn puback(&mut self, pkid: u16) {
        encode(&Packet::PubAck(pkid), &mut self.out);
    }

    /// Queue the first acknowledgement of a received QoS 2 message.
    pub fn pubrec(&mut self, pkid: u16) {
        encode(&Packet::PubRec(pkid), &mut self.out);
    }

    /// Queue the last acknowledgement of a received QoS 2 message.
    pub fn pubcomp(&mut self, pkid: u16) {
        encode(&Packet::PubComp(pkid), &mut self.out);
    }

    /// Queue a PUBREL for a QoS 2 message whose PUBREC came back.
    pub fn pubrel(&mut self, pkid: u16) {
        encode(&Packet::PubRel(pkid), &mut self.out);
    }

    /// Bytes queued and not yet handed to the socket.
    pub fn queued_bytes(&self) -> usize {
        self.out.len()
    }

    /// Write what is queued, read what arrives, keep the connection alive, and
    /// return the next acknowledgement. Cancel-safe: every bit of progress is
    /// kept in `self`, so it can race other branches in `tokio::select!`.
    /// After an error the connection is finished and every later call says `Closed`.
    pub async fn next(&mut self) -> Result<Ack, ClientError> {
        match poll_fn(|cx| self.poll_next(cx)).await? {
            Event::Ack(ack) => Ok(ack),
            // Only a subscriber connection reads anything else.
            other => Err(ClientError::Protocol(format!("unexpected {other:?}"))),
        }
    }

    /// As `next`, for a subscriber connection: acknowledgements and messages.
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Write what is queued and a DISCONNECT, then close, all within `timeout`.
    /// The server then drops the will.
    pub async fn disconnect(mut self, timeout: Duration) {
        encode(&Packet::Disconnect, &mut self.out);
        let _ = tokio::time::timeout(timeout, async {
            self.io.write_all(&self.out).await?;
            self.io.flush().await?;
            self.io.shutdown().await
        })
        .await;
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, ClientError>> {
        if self.broken {
            return Poll::Ready(Err(ClientError::Closed));
        }
        let result = self.poll_step(cx);
        if let Poll::Ready(Err(_)) = result {
            self.broken = true;
        }
        result
    }

    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, ClientError>> {
        // Acknowledgements already read go first: meanwhile the caller queues
        // more, and the next write carries all of it.
        if let Some(ack) = self.take_ack()? {
            return Poll::Ready(Ok(ack));
        }
        self.poll_write(cx)?;
        for _ in 0..READS_PER_POLL {
            match self.poll_read(cx)? {
                Poll::Pending => return self.poll_keep_alive(cx),
                Poll::Ready(0) => return Poll::Ready(Err(ClientError::Closed)),
                Poll::Ready(_) => {
                    if let Some(ack) = self.take_ack()? {
                        return Poll::Ready(Ok(ack));
                    }
                }
            }
        }
        // Still readable: come back after other tasks had a turn.
        cx.waker().wake_by_ref();
        self.poll_keep_alive(cx)
    }

    /// Decode whole packets from the read buffer until an acknowledgement (or,
    /// for a subscriber, a message, a PUBREL or a SUBACK).
    fn take_ack(&mut self) -> Result<Option<Event>, ClientError> {
        while let Some(packet) = read_packet(&mut self.input, MAX_PACKET_SIZE)? {
            match packet {
                Packet::PubAck(id) => return Ok(Some(Event::Ack(Ack::PubAck(id)))),
                Packet::PubRec(id) => return Ok(Some(Event::Ack(Ack::PubRec(id)))),
                Packet::PubComp(id) => return Ok(Some(Event::Ack(Ack::PubComp(id)))),
                Packet::PingResp => self.keep_alive.pong(Instant::now()),
                Packet::Publish(p) if self.subscriber => return Ok(Some(Event::Publish(p))),
                Packet::PubRel(id) if self.subscriber => return Ok(Some(Event::PubRel(id))),
                Packet::SubAck(a) if self.subscriber => return Ok(Some(Event::SubAck(a))),
                Packet::Publish(p) => {
                    return Err(ClientError::Protocol(format!(
                        "the server sent a PUBLISH on {:?}, but this client never subscribes",
                        p.topic
                    )))
                }
                Packet::PubRel(id) => {
                    return Err(ClientError::Protocol(format!(
                        "the server sent PUBREL for packet id {id}, but this client never receives messages"
                    )))
                }
                other => {
                    return Err(ClientError::Protocol(format!(
                        "the server sent an unexpected {}",
                        other.name()
                    )))
                }
            }
        }
        Ok(None)
    }

    /// Hand queued bytes to the socket until it is full or they are all gone.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), ClientError> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Err(ClientError::Closed),
                Poll::Ready(Ok(n)) => {
                    self.out.advance(n);
                    self.needs_flush = true;
                    self.keep_alive.wrote(Instant::now());
                }
                Poll::Ready(Err(e)) => return Err(tls::io_error(e)),
                Poll::Pending => return Ok(()),
            }
        }
        if self.needs_flush {
            // TLS may hold records back until flushed; TCP flushes at once.
            if let Poll::Ready(done) = Pin::new(&mut self.io).poll_flush(cx) {
                done.map_err(tls::io_error)?;
                self.needs_flush = false;
            }
        }
        Ok(())
    }

    /// One socket read appended to the read buffer; `Ready(0)` at end of stream.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, ClientError>> {
        let mut buf = ReadBuf::new(&mut self.scratch);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)).map_err(tls::io_error)?;
        let n = buf.filled().len();
        self.input.extend_from_slice(buf.filled());
        if n > 0 {
            self.keep_alive.read(Instant::now());
        }
        Poll::Ready(Ok(n))
    }

    /// Queue a PINGREQ when one is due, fail when one went unanswered, and arm
    /// the timer for the next check. Always `Pending` unless it fails.
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, ClientError>> {
        // Each turn either returns or moves the timer to a later deadline.
        for _ in 0..4 {
            match self.keep_alive.check(Instant::now()) {
                Due::Wait(None) => return Poll::Pending,
                Due::TimedOut => {
                    return Poll::Ready(Err(ClientError::KeepAliveTimeout(self.keep_alive_period)))
                }
                Due::Ping => {
                    encode(&Packet::PingReq, &mut self.out);
                    self.keep_alive.pinged(Instant::now());
                    self.poll_write(cx)?;
                }
                Due::Wait(Some(deadline)) => {
                    // The timer may fire early (deadlines only move later); then check again.
                    if self.timer.is_elapsed() || self.timer.deadline() > deadline {
                        self.timer.as_mut().reset(deadline);
                    }
                    if self.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn connect_packet(opts: &ClientOptions) -> Connect {
    Connect {
        protocol_level: PROTOCOL_LEVEL_311,
        clean_session: opts.clean_session,
        keep_alive: opts.keep_alive_secs(),
        client_id: opts.client_id.clone(),
        will: opts.will.clone(),
        username: opts.username.clone(),
        password: opts.password.clone().map(Bytes::from),
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("queued_bytes", &self.out.len())
            .field("read_buffered", &self.input.len())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}
