//! Shared test helpers: brokers to talk to, a window-driven publisher, a subscriber, waits.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::output::client::{Ack, ClientOptions, Connection, QoS};

/// How long a test waits for something that should happen.
pub(super) const WAIT: Duration = Duration::from_secs(10);

/// Await `fut`, failing the test if it takes longer than `WAIT`.
pub(super) async fn wait_for<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// A name nobody else in this test process uses.
pub(super) fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Client options for a plain-TCP broker at `addr`.
pub(super) fn options(addr: SocketAddr, client_id: &str) -> ClientOptions {
    let mut o = ClientOptions::new(addr.ip().to_string(), addr.port(), client_id);
    o.connect_timeout = WAIT;
    o
}

pub(super) async fn connect(opts: &ClientOptions) -> (Connection, bool) {
    match wait_for("CONNACK", Connection::connect(opts)).await {
        Ok(c) => c,
        Err(e) => panic!("connect to {}:{} failed: {e}", opts.host, opts.port),
    }
}

/// The packet id the store gives row `id` (1-based).
pub(super) fn pkid(id: u32) -> u16 {
    ((id - 1) % 65535 + 1) as u16
}

/// Publish messages `1..=count` to `topic` (payload: the number), at most
/// `window` unacknowledged at once, answering PUBREC with PUBREL. Returns the
/// packet ids of the final acknowledgements in the order they came.
pub(super) async fn publish_window(
    conn: &mut Connection,
    topic: &str,
    count: u32,
    window: u32,
    qos: QoS,
) -> Vec<u16> {
    let mut sent = 0u32;
    let mut done = Vec::with_capacity(count as usize);
    // Each turn takes one acknowledgement; QoS 2 has two per message.
    for _ in 0..count * 2 {
        if done.len() == count as usize {
            break;
        }
        while sent < count && sent - (done.len() as u32) < window {
            sent += 1;
            conn.publish(
                pkid(sent),
                topic,
                sent.to_string().as_bytes(),
                qos,
                false,
                false,
            );
        }
        match wait_for("an acknowledgement", conn.next()).await {
            Ok(Ack::PubAck(id) | Ack::PubComp(id)) => done.push(id),
            Ok(Ack::PubRec(id)) => conn.pubrel(id),
            Err(e) => panic!("connection failed after {} acks: {e}", done.len()),
        }
    }
    done
}

/// The ids `1..=count` as packet ids.
pub(super) fn expected_pkids(count: u32) -> Vec<u16> {
    (1..=count).map(pkid).collect()
}

/// The payload of the marker [`collect`] waits for.
const FENCE: &[u8] = b"fence";

/// Publishes [`FENCE`] to `topic` at QoS 1 from a client of its own and waits for
/// the PUBACK: by then the broker has routed it, after all it routed before.
pub(super) async fn publish_fence(addr: SocketAddr, topic: &str) {
    let (mut conn, _) = connect(&options(addr, &unique("fence"))).await;
    conn.publish(1, topic, FENCE, QoS::AtLeastOnce, false, false);
    match wait_for("the fence's PUBACK", conn.next()).await {
        Ok(Ack::PubAck(1)) => {}
        other => panic!("expected the fence's PUBACK, got {other:?}"),
    }
    conn.disconnect(WAIT).await;
}

/// Collect payloads from a channel until `count` arrived, then until a fence
/// published to `topic` on the broker at `addr` comes: whatever came before the
/// fence (a duplicate, one too many) is returned too.
pub(super) async fn collect(
    rx: &mut mpsc::Receiver<Vec<u8>>,
    count: usize,
    addr: SocketAddr,
    topic: &str,
) -> Vec<String> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(p)) => got.push(String::from_utf8_lossy(&p).into_owned()),
            Ok(None) => break,
            Err(_) => panic!("subscriber got {} of {count} messages", got.len()),
        }
    }
    publish_fence(addr, topic).await;
    loop {
        match wait_for("the fence", rx.recv()).await {
            Some(p) if p == FENCE => return got,
            Some(p) => got.push(String::from_utf8_lossy(&p).into_owned()),
            None => panic!("the subscriber ended before the fence; got {got:?}"),
        }
    }
}

/// The payloads `1..=count`.
pub(super) fn numbers(count: u32) -> Vec<String> {
    (1..=count).map(|i| i.to_string()).collect()
}

/// A rumqttc subscriber at QoS 2 on `filter`; its payloads come out of the channel.
pub(super) async fn rumqttc_subscriber(addr: SocketAddr, filter: &str) -> mpsc::Receiver<Vec<u8>> {
    let mut o = rumqttc::MqttOptions::new(unique("sub"), addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 16);
    let (tx, rx) = mpsc::channel(100_000);
    let (subscribed, ready) = tokio::sync::oneshot::channel();
    client
        .subscribe(filter, rumqttc::QoS::ExactlyOnce)
        .await
        .expect("queue SUBSCRIBE");
    tokio::spawn(async move {
        let _client = client;
        let mut subscribed = Some(subscribed);
        while let Ok(event) = eventloop.poll().await {
            match event {
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))
                    if tx.send(p.payload.to_vec()).await.is_err() =>
                {
                    return;
                }
                _ => {}
            }
        }
    });
    wait_for("SUBACK", ready)
        .await
        .expect("subscriber ended before SUBACK");
    rx
}

/// An in-process broker-lite on an ephemeral loopback port; its session
/// queues hold a whole test's messages for a subscriber that falls behind.
pub(super) async fn broker_lite() -> broker_lite::Broker {
    let mut config = broker_lite::Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        sys_interval_secs: 0,
        ..broker_lite::Config::default()
    };
    config.limits.max_queued_messages = 100_000;
    broker_lite::Broker::start(config)
        .await
        .expect("broker-lite starts")
}
