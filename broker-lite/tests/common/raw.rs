//! An MQTT client over a plain TCP socket: sends exact bytes, reads whole packets.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use mqtt_proto::codec::{read_packet, ConnAck, Packet, Publish, SubscribeReturnCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::wire::*;
use super::{unique_id, wait_for, WAIT};

/// The packet id of the fence subscription of [`RawClient::expect_nothing_before`]:
/// far from the small ids tests use.
const FENCE_PKID: u16 = 0xFFF0;

/// What a read from the broker gave.
#[derive(Debug)]
pub(crate) enum Next {
    Packet(Packet),
    Closed,
    TimedOut,
}

/// An MQTT client over a plain TCP socket: sends exact bytes, reads whole packets.
pub(crate) struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    closed: bool,
}

impl RawClient {
    /// Open a TCP connection; no MQTT packet is sent.
    pub(crate) async fn tcp(addr: SocketAddr) -> RawClient {
        let stream = match wait_for("TCP connect", TcpStream::connect(addr)).await {
            Ok(s) => s,
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        };
        stream.set_nodelay(true).ok();
        RawClient {
            stream,
            buf: BytesMut::with_capacity(4096),
            closed: false,
        }
    }

    /// Open a TCP connection from `local` (a loopback address: Linux routes all
    /// of 127/8 to `lo`, so a test can play clients on many IP addresses).
    pub(crate) async fn tcp_from(
        local: std::net::IpAddr,
        addr: SocketAddr,
    ) -> io::Result<RawClient> {
        let socket = match local {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(local, 0))?;
        let stream = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true).ok();
        Ok(RawClient {
            stream,
            buf: BytesMut::with_capacity(256),
            closed: false,
        })
    }

    /// Connect with `connect` and return the client and the CONNACK it got.
    pub(crate) async fn handshake(
        addr: SocketAddr,
        connect: &ConnectBytes,
    ) -> (RawClient, ConnAck) {
        let mut c = RawClient::tcp(addr).await;
        c.send(&connect.encode()).await;
        match c.recv().await {
            Packet::ConnAck(ack) => (c, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connect with `connect`, require CONNACK 0 and return the session-present bit.
    pub(crate) async fn connect_with(
        addr: SocketAddr,
        connect: &ConnectBytes,
    ) -> (RawClient, bool) {
        let (c, ack) = RawClient::handshake(addr, connect).await;
        assert_eq!(
            ack.code,
            mqtt_proto::codec::ConnectReturnCode::Accepted,
            "CONNACK refused"
        );
        (c, ack.session_present)
    }

    /// A clean-session client with the given id, accepted by the broker.
    pub(crate) async fn connect(addr: SocketAddr, client_id: &str) -> RawClient {
        RawClient::connect_with(addr, &ConnectBytes::new(client_id))
            .await
            .0
    }

    /// A clean-session client subscribed to `filter` at `qos`.
    pub(crate) async fn subscriber(addr: SocketAddr, filter: &str, qos: u8) -> RawClient {
        let mut c = RawClient::connect(addr, &unique_id("sub")).await;
        let codes = c.subscribe(1, &[(filter, qos)]).await;
        assert!(
            !codes.contains(&SubscribeReturnCode::Failure),
            "subscription to {filter} refused"
        );
        c
    }

    /// Write bytes; panics if the socket fails.
    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.try_send(bytes).await {
            panic!("send failed: {e}");
        }
    }

    /// Write bytes, reporting a failure instead of panicking.
    pub(crate) async fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// The next packet, the end of the connection, or nothing within `within`.
    pub(crate) async fn next(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match read_packet(&mut self.buf, 64 * 1024 * 1024) {
                Ok(Some(p)) => return Next::Packet(p),
                Ok(None) => {}
                Err(e) => panic!("broker sent bytes that do not decode: {e}"),
            }
            if self.closed {
                return Next::Closed;
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf));
            match read.await {
                Err(_) => return Next::TimedOut,
                Ok(Ok(0)) => self.closed = true,
                Ok(Ok(_)) => {}
                Ok(Err(e)) if is_reset(&e) => self.closed = true,
                Ok(Err(e)) => panic!("read failed: {e}"),
            }
        }
    }

    /// The next packet; fails the test on close or after `WAIT`.
    pub(crate) async fn recv(&mut self) -> Packet {
        match self.next(WAIT).await {
            Next::Packet(p) => p,
            Next::Closed => panic!("connection closed while a packet was expected"),
            Next::TimedOut => panic!("no packet within {WAIT:?}"),
        }
    }

    /// The next packet, which must be a PUBLISH.
    pub(crate) async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// The next PUBLISH, acknowledged with PUBACK (QoS 1) or the full QoS 2 exchange.
    pub(crate) async fn recv_publish_acked(&mut self) -> Publish {
        let p = self.recv_publish().await;
        self.ack(&p).await;
        p
    }

    /// Receive `n` PUBLISH packets, acknowledging each (QoS 2 exchanges may interleave),
    /// and return them in arrival order once every exchange is complete.
    pub(crate) async fn recv_publishes_acked(&mut self, n: usize) -> Vec<Publish> {
        use mqtt_proto::codec::QoS;
        let mut got = Vec::new();
        let mut awaiting_rel = std::collections::HashSet::new();
        while got.len() < n || !awaiting_rel.is_empty() {
            match self.recv().await {
                Packet::Publish(p) => {
                    match p.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => self.send(&puback(p.pkid)).await,
                        QoS::ExactlyOnce => {
                            self.send(&pubrec(p.pkid)).await;
                            awaiting_rel.insert(p.pkid);
                        }
                    }
                    got.push(p);
                }
                Packet::PubRel(id) if awaiting_rel.remove(&id) => self.send(&pubcomp(id)).await,
                other => panic!("expected PUBLISH or PUBREL, got {other:?} after {got:?}"),
            }
        }
        got
    }

    /// Acknowledge a received PUBLISH: PUBACK for QoS 1; PUBREC, PUBREL, PUBCOMP for QoS 2.
    pub(crate) async fn ack(&mut self, p: &Publish) {
        use mqtt_proto::codec::QoS;
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(&puback(p.pkid)).await,
            QoS::ExactlyOnce => {
                self.send(&pubrec(p.pkid)).await;
                self.expect(Packet::PubRel(p.pkid)).await;
                self.send(&pubcomp(p.pkid)).await;
            }
        }
    }

    /// Require the next packet to be exactly `want`.
    pub(crate) async fn expect(&mut self, want: Packet) {
        let got = self.recv().await;
        assert_eq!(got, want, "unexpected packet");
    }

    /// Send SUBSCRIBE and return the SUBACK return codes.
    pub(crate) async fn subscribe(
        &mut self,
        pkid: u16,
        filters: &[(&str, u8)],
    ) -> Vec<SubscribeReturnCode> {
        self.send(&subscribe(pkid, filters)).await;
        match self.recv().await {
            Packet::SubAck(ack) => {
                assert_eq!(ack.pkid, pkid, "SUBACK for another packet id");
                ack.return_codes
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Send UNSUBSCRIBE and wait for its UNSUBACK.
    pub(crate) async fn unsubscribe(&mut self, pkid: u16, filters: &[&str]) {
        self.send(&unsubscribe(pkid, filters)).await;
        self.expect(Packet::UnsubAck(pkid)).await;
    }

    /// Publish at QoS 0, 1 or 2 and complete the acknowledgement exchange.
    pub(crate) async fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
        pkid: u16,
    ) {
        self.send(&publish(topic, payload, qos, retain, false, pkid))
            .await;
        match qos {
            0 => {}
            1 => self.expect(Packet::PubAck(pkid)).await,
            _ => {
                self.expect(Packet::PubRec(pkid)).await;
                self.send(&pubrel(pkid)).await;
                self.expect(Packet::PubComp(pkid)).await;
            }
        }
    }

    /// Round trip a PINGREQ, proving every earlier packet was processed.
    pub(crate) async fn ping(&mut self) {
        self.send(&PINGREQ).await;
        self.expect(Packet::PingResp).await;
    }

    /// Send DISCONNECT and wait for the broker to close the socket.
    pub(crate) async fn disconnect(mut self) {
        self.send(&DISCONNECT).await;
        self.expect_closed().await;
    }

    /// Require the broker to close the connection within `WAIT`, sending nothing first.
    pub(crate) async fn expect_closed(&mut self) {
        let before = self.packets_until_closed().await;
        assert!(before.is_empty(), "broker sent {before:?} before closing");
    }

    /// Collect the packets the broker sends until it closes the connection (within `WAIT`).
    pub(crate) async fn packets_until_closed(&mut self) -> Vec<Packet> {
        let mut got = Vec::new();
        loop {
            match self.next(WAIT).await {
                Next::Packet(p) => got.push(p),
                Next::Closed => return got,
                Next::TimedOut => panic!("connection still open after {WAIT:?}; got {got:?}"),
            }
        }
    }

    /// Shows that nothing is on its way to this client from anything the broker did
    /// before: subscribes to `topic` (one it may read and nothing else uses), lets
    /// `fence` publish a marker there (at QoS 1 or through the in-process handle, so
    /// the router has routed it when `fence` returns, after all it routed before),
    /// requires the marker to be the next packet, and unsubscribes again.
    pub(crate) async fn expect_nothing_before(
        &mut self,
        topic: &str,
        fence: impl Future<Output = ()>,
    ) {
        self.send(&subscribe(FENCE_PKID, &[(topic, 0)])).await;
        match self.recv().await {
            Packet::SubAck(ack) if ack.pkid == FENCE_PKID => assert!(
                !ack.return_codes.contains(&SubscribeReturnCode::Failure),
                "the fence subscription to {topic} was refused"
            ),
            other => panic!("expected nothing, got {other:?}"),
        }
        fence.await;
        match self.recv().await {
            Packet::Publish(p) if p.topic == topic => self.ack(&p).await,
            other => panic!("expected nothing before the fence on {topic}, got {other:?}"),
        }
        self.unsubscribe(FENCE_PKID, &[topic]).await;
    }

    /// [`RawClient::expect_nothing_before`] on a fresh topic, with the marker
    /// published by a client of its own.
    pub(crate) async fn expect_nothing_more(&mut self, addr: SocketAddr) {
        let topic = unique_id("fence");
        self.expect_nothing_before(&topic, async {
            let mut p = RawClient::connect(addr, &unique_id("fence-pub")).await;
            p.publish(&topic, b"fence", 1, false, 1).await;
            p.disconnect().await;
        })
        .await;
    }

    /// Require `for_how_long` to pass with no packet and the connection still open:
    /// for what is about time (a keep-alive, a timeout); to show that nothing more
    /// was sent, use [`RawClient::expect_nothing_more`].
    pub(crate) async fn expect_nothing(&mut self, for_how_long: Duration) {
        match self.next(for_how_long).await {
            Next::TimedOut => {}
            Next::Packet(p) => panic!("expected nothing, got {p:?}"),
            Next::Closed => panic!("expected nothing, but the connection closed"),
        }
    }

    /// Whether the broker has closed the connection so far.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Prove the broker still serves clients: a fresh client subscribes, publishes
/// at QoS 1 to itself, and gets the message back.
pub(crate) async fn assert_serves_new_client(addr: SocketAddr) {
    let mut c = RawClient::connect(addr, &unique_id("probe")).await;
    let codes = c.subscribe(9, &[("probe/echo", 1)]).await;
    assert_eq!(
        codes,
        vec![SubscribeReturnCode::Success(
            mqtt_proto::codec::QoS::AtLeastOnce
        )]
    );
    c.send(&publish("probe/echo", b"ping", 1, false, false, 10))
        .await;
    let mut got_ack = false;
    let mut got_msg = false;
    while !(got_ack && got_msg) {
        match c.recv().await {
            Packet::PubAck(10) => got_ack = true,
            Packet::Publish(p) => {
                assert_eq!(
                    (p.topic.as_str(), &p.payload[..]),
                    ("probe/echo", &b"ping"[..])
                );
                c.send(&puback(p.pkid)).await;
                got_msg = true;
            }
            other => panic!("unexpected packet {other:?}"),
        }
    }
    c.disconnect().await;
}
