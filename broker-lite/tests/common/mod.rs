//! Shared helpers for the broker's integration tests: a broker on port 0, a raw
//! socket client that sends exact bytes and reads whole packets, packet builders,
//! a rumqttc client driven in the background, and waits with a timeout.
#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use broker_lite::codec::{read_packet, ConnAck, Packet, Publish, SubscribeReturnCode};
use broker_lite::{Broker, Config};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test watches for something that should NOT happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// A config listening on an ephemeral port of 127.0.0.1, with `$SYS` updates off.
pub fn test_config() -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        sys_interval_secs: 0,
        ..Config::default()
    }
}

/// Start a broker on port 0 with the test config, changed by `tweak`.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Broker {
    let mut cfg = test_config();
    tweak(&mut cfg);
    match Broker::start(cfg).await {
        Ok(b) => b,
        Err(e) => panic!("broker did not start: {e}"),
    }
}

/// Start a broker on port 0 with the test config.
pub async fn start() -> Broker {
    start_with(|_| {}).await
}

/// A client id nobody else in this test process uses.
pub fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Await `fut`, failing the test if it takes longer than `WAIT`.
pub async fn wait_for<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Poll `cond` every 10 ms until it holds, failing the test after `WAIT`.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

// ---------------------------------------------------------------- packet bytes

/// The variable-length "remaining length" field.
pub fn remaining_length(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// A whole packet: fixed-header byte, remaining length, body.
pub fn frame(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![header];
    out.extend(remaining_length(body.len()));
    out.extend_from_slice(body);
    out
}

/// A length-prefixed byte field.
pub fn mqtt_bytes(b: &[u8]) -> Vec<u8> {
    let mut out = (b.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(b);
    out
}

/// A length-prefixed UTF-8 string field.
pub fn mqtt_str(s: &str) -> Vec<u8> {
    mqtt_bytes(s.as_bytes())
}

/// A will for `ConnectBytes`.
#[derive(Debug, Clone)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

/// A CONNECT packet with every field under the test's control.
#[derive(Debug, Clone)]
pub struct ConnectBytes {
    pub protocol_name: Vec<u8>,
    pub level: u8,
    pub clean_session: bool,
    pub keep_alive: u16,
    pub client_id: Vec<u8>,
    pub will: Option<Will>,
    pub username: Option<Vec<u8>>,
    pub password: Option<Vec<u8>>,
    /// Replaces the computed connect-flags byte when set.
    pub flags_override: Option<u8>,
}

impl ConnectBytes {
    /// MQTT 3.1.1, clean session, keep-alive off.
    pub fn new(client_id: &str) -> Self {
        ConnectBytes {
            protocol_name: b"MQTT".to_vec(),
            level: 4,
            clean_session: true,
            keep_alive: 0,
            client_id: client_id.as_bytes().to_vec(),
            will: None,
            username: None,
            password: None,
            flags_override: None,
        }
    }

    pub fn clean(mut self, clean: bool) -> Self {
        self.clean_session = clean;
        self
    }

    pub fn keep_alive(mut self, secs: u16) -> Self {
        self.keep_alive = secs;
        self
    }

    pub fn will(mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Self {
        self.will = Some(Will {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos,
            retain,
        });
        self
    }

    /// The connect-flags byte these fields give.
    pub fn flags(&self) -> u8 {
        if let Some(f) = self.flags_override {
            return f;
        }
        let mut f = 0u8;
        if self.username.is_some() {
            f |= 0x80;
        }
        if self.password.is_some() {
            f |= 0x40;
        }
        if let Some(w) = &self.will {
            f |= 0x04 | (w.qos << 3);
            if w.retain {
                f |= 0x20;
            }
        }
        if self.clean_session {
            f |= 0x02;
        }
        f
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = mqtt_bytes(&self.protocol_name);
        body.push(self.level);
        body.push(self.flags());
        body.extend(self.keep_alive.to_be_bytes());
        body.extend(mqtt_bytes(&self.client_id));
        if let Some(w) = &self.will {
            body.extend(mqtt_str(&w.topic));
            body.extend(mqtt_bytes(&w.payload));
        }
        if let Some(u) = &self.username {
            body.extend(mqtt_bytes(u));
        }
        if let Some(p) = &self.password {
            body.extend(mqtt_bytes(p));
        }
        frame(0x10, &body)
    }
}

/// A PUBLISH with the given flags; the packet id is written only for QoS 1 and 2.
pub fn publish(
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    dup: bool,
    pkid: u16,
) -> Vec<u8> {
    let header = 0x30 | (u8::from(dup) << 3) | (qos << 1) | u8::from(retain);
    let mut body = mqtt_str(topic);
    if qos > 0 {
        body.extend(pkid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    frame(header, &body)
}

/// A SUBSCRIBE with (filter, requested QoS byte) pairs.
pub fn subscribe(pkid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    for (f, q) in filters {
        body.extend(mqtt_str(f));
        body.push(*q);
    }
    frame(0x82, &body)
}

pub fn unsubscribe(pkid: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    for f in filters {
        body.extend(mqtt_str(f));
    }
    frame(0xA2, &body)
}

pub fn puback(pkid: u16) -> Vec<u8> {
    frame(0x40, &pkid.to_be_bytes())
}

pub fn pubrec(pkid: u16) -> Vec<u8> {
    frame(0x50, &pkid.to_be_bytes())
}

pub fn pubrel(pkid: u16) -> Vec<u8> {
    frame(0x62, &pkid.to_be_bytes())
}

pub fn pubcomp(pkid: u16) -> Vec<u8> {
    frame(0x70, &pkid.to_be_bytes())
}

pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];

// ---------------------------------------------------------------- raw client

/// What a read from the broker gave.
#[derive(Debug)]
pub enum Next {
    Packet(Packet),
    Closed,
    TimedOut,
}

/// An MQTT client over a plain TCP socket: sends exact bytes, reads whole packets.
pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    closed: bool,
}

impl RawClient {
    /// Open a TCP connection; no MQTT packet is sent.
    pub async fn tcp(addr: SocketAddr) -> RawClient {
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

    /// Connect with `connect` and return the client and the CONNACK it got.
    pub async fn handshake(addr: SocketAddr, connect: &ConnectBytes) -> (RawClient, ConnAck) {
        let mut c = RawClient::tcp(addr).await;
        c.send(&connect.encode()).await;
        match c.recv().await {
            Packet::ConnAck(ack) => (c, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connect with `connect`, require CONNACK 0 and return the session-present bit.
    pub async fn connect_with(addr: SocketAddr, connect: &ConnectBytes) -> (RawClient, bool) {
        let (c, ack) = RawClient::handshake(addr, connect).await;
        assert_eq!(
            ack.code,
            broker_lite::codec::ConnectReturnCode::Accepted,
            "CONNACK refused"
        );
        (c, ack.session_present)
    }

    /// A clean-session client with the given id, accepted by the broker.
    pub async fn connect(addr: SocketAddr, client_id: &str) -> RawClient {
        RawClient::connect_with(addr, &ConnectBytes::new(client_id))
            .await
            .0
    }

    /// A clean-session client subscribed to `filter` at `qos`.
    pub async fn subscriber(addr: SocketAddr, filter: &str, qos: u8) -> RawClient {
        let mut c = RawClient::connect(addr, &unique_id("sub")).await;
        let codes = c.subscribe(1, &[(filter, qos)]).await;
        assert!(
            !codes.contains(&SubscribeReturnCode::Failure),
            "subscription to {filter} refused"
        );
        c
    }

    /// Write bytes; panics if the socket fails.
    pub async fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.try_send(bytes).await {
            panic!("send failed: {e}");
        }
    }

    /// Write bytes, reporting a failure instead of panicking.
    pub async fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// The next packet, the end of the connection, or nothing within `within`.
    pub async fn next(&mut self, within: Duration) -> Next {
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
    pub async fn recv(&mut self) -> Packet {
        match self.next(WAIT).await {
            Next::Packet(p) => p,
            Next::Closed => panic!("connection closed while a packet was expected"),
            Next::TimedOut => panic!("no packet within {WAIT:?}"),
        }
    }

    /// The next packet, which must be a PUBLISH.
    pub async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// The next PUBLISH, acknowledged with PUBACK (QoS 1) or the full QoS 2 exchange.
    pub async fn recv_publish_acked(&mut self) -> Publish {
        let p = self.recv_publish().await;
        self.ack(&p).await;
        p
    }

    /// Receive `n` PUBLISH packets, acknowledging each (QoS 2 exchanges may interleave),
    /// and return them in arrival order once every exchange is complete.
    pub async fn recv_publishes_acked(&mut self, n: usize) -> Vec<Publish> {
        use broker_lite::codec::QoS;
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
    pub async fn ack(&mut self, p: &Publish) {
        use broker_lite::codec::QoS;
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
    pub async fn expect(&mut self, want: Packet) {
        let got = self.recv().await;
        assert_eq!(got, want, "unexpected packet");
    }

    /// Send SUBSCRIBE and return the SUBACK return codes.
    pub async fn subscribe(
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
    pub async fn unsubscribe(&mut self, pkid: u16, filters: &[&str]) {
        self.send(&unsubscribe(pkid, filters)).await;
        self.expect(Packet::UnsubAck(pkid)).await;
    }

    /// Publish at QoS 0, 1 or 2 and complete the acknowledgement exchange.
    pub async fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool, pkid: u16) {
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
    pub async fn ping(&mut self) {
        self.send(&PINGREQ).await;
        self.expect(Packet::PingResp).await;
    }

    /// Send DISCONNECT and wait for the broker to close the socket.
    pub async fn disconnect(mut self) {
        self.send(&DISCONNECT).await;
        self.expect_closed().await;
    }

    /// Require the broker to close the connection within `WAIT`, sending nothing first.
    pub async fn expect_closed(&mut self) {
        let before = self.packets_until_closed().await;
        assert!(before.is_empty(), "broker sent {before:?} before closing");
    }

    /// Collect the packets the broker sends until it closes the connection (within `WAIT`).
    pub async fn packets_until_closed(&mut self) -> Vec<Packet> {
        let mut got = Vec::new();
        loop {
            match self.next(WAIT).await {
                Next::Packet(p) => got.push(p),
                Next::Closed => return got,
                Next::TimedOut => panic!("connection still open after {WAIT:?}; got {got:?}"),
            }
        }
    }

    /// Require `for_how_long` to pass with no packet and the connection still open.
    pub async fn expect_nothing(&mut self, for_how_long: Duration) {
        match self.next(for_how_long).await {
            Next::TimedOut => {}
            Next::Packet(p) => panic!("expected nothing, got {p:?}"),
            Next::Closed => panic!("expected nothing, but the connection closed"),
        }
    }

    /// Whether the broker has closed the connection so far.
    pub fn is_closed(&self) -> bool {
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
pub async fn assert_serves_new_client(addr: SocketAddr) {
    let mut c = RawClient::connect(addr, &unique_id("probe")).await;
    let codes = c.subscribe(9, &[("probe/echo", 1)]).await;
    assert_eq!(
        codes,
        vec![SubscribeReturnCode::Success(
            broker_lite::codec::QoS::AtLeastOnce
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

// ---------------------------------------------------------------- rumqttc

/// A rumqttc client whose event loop runs in a background task.
pub struct Rumq {
    pub client: rumqttc::AsyncClient,
    events: mpsc::UnboundedReceiver<Result<rumqttc::Event, String>>,
    task: JoinHandle<()>,
}

/// rumqttc options for the broker at `addr`.
pub fn rumq_options(addr: SocketAddr, client_id: &str) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

impl Rumq {
    /// Start the event loop and wait for CONNACK.
    pub async fn connect(opts: rumqttc::MqttOptions) -> Rumq {
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 100);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(ev) => {
                        if tx.send(Ok(ev)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        let mut c = Rumq {
            client,
            events,
            task,
        };
        c.wait_incoming("CONNACK", |p| matches!(p, rumqttc::Packet::ConnAck(_)))
            .await;
        c
    }

    /// A clean-session rumqttc client.
    pub async fn connect_to(addr: SocketAddr, client_id: &str) -> Rumq {
        Rumq::connect(rumq_options(addr, client_id)).await
    }

    /// The next event; fails the test if the connection fails or after `WAIT`.
    pub async fn next_event(&mut self) -> rumqttc::Event {
        match wait_for("a rumqttc event", self.events.recv()).await {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => panic!("rumqttc connection failed: {e}"),
            None => panic!("rumqttc event loop ended"),
        }
    }

    /// Skip events until an incoming packet matches `pred`, and return it.
    pub async fn wait_incoming(
        &mut self,
        what: &str,
        pred: impl Fn(&rumqttc::Packet) -> bool,
    ) -> rumqttc::Packet {
        wait_for(what, async {
            loop {
                if let rumqttc::Event::Incoming(p) = self.next_event().await {
                    if pred(&p) {
                        return p;
                    }
                }
            }
        })
        .await
    }

    /// The next incoming PUBLISH.
    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        match self
            .wait_incoming("PUBLISH", |p| matches!(p, rumqttc::Packet::Publish(_)))
            .await
        {
            rumqttc::Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    }

    /// Subscribe and wait for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> rumqttc::SubAck {
        if let Err(e) = self.client.subscribe(filter, qos).await {
            panic!("subscribe request failed: {e}");
        }
        match self
            .wait_incoming("SUBACK", |p| matches!(p, rumqttc::Packet::SubAck(_)))
            .await
        {
            rumqttc::Packet::SubAck(a) => a,
            _ => unreachable!(),
        }
    }

    /// Whether an incoming PUBLISH arrives within `QUIET` (no other event is a failure).
    pub async fn publish_within_quiet(&mut self) -> Option<rumqttc::Publish> {
        let deadline = tokio::time::Instant::now() + QUIET;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => return None,
                Ok(Some(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))))) => {
                    return Some(p)
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("rumqttc connection failed: {e}"),
                Ok(None) => panic!("rumqttc event loop ended"),
            }
        }
    }
}

impl Drop for Rumq {
    fn drop(&mut self) {
        self.task.abort();
    }
}
