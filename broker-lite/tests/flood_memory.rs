//! Memory stays bounded under a publish flood: the `broker-lite` binary with
//! small limits, publishers sending QoS 0 and QoS 1 as fast as they can for a
//! bounded time, a subscriber that never reads, one that reads very slowly and a
//! persistent session that is offline. The broker's resident memory is sampled
//! during the flood and must stay under a bound derived from the limits; the
//! messages it gave up must be counted (and shown in `$SYS`).

mod common;
mod flood;
mod real;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use flood::BinaryBroker;
use mqtt_proto::codec::Packet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_INFLIGHT: u64 = 10;
const MAX_QUEUED: u64 = 100;
/// The outbox of one client holds at most this much before QoS 0 is dropped:
/// `OutboxLimits::for_packet_size` gives 4 MiB for packets of up to 2 MiB.
const OUTBOX_HARD_KIB: u64 = 4 * 1024;
const PUBLISHERS: usize = 4;
const FLOOD_FOR: Duration = Duration::from_secs(5);
/// Messages per publisher at most, whatever the speed.
const MAX_PER_PUBLISHER: u64 = 5_000_000;
const PAYLOAD: usize = 200;
/// Connected subscribers to the flood: two stuck, one slow.
const SUBSCRIBERS: u64 = 3;

fn config() -> String {
    format!(
        "limits:\n  max_packet_size: 1024\n  max_inflight: {MAX_INFLIGHT}\n  \
         max_queued_messages: {MAX_QUEUED}\n  max_connections_per_ip: 0\n\
         queue_overflow: drop_oldest\nsys_interval_secs: 1\n"
    )
}

/// Open a TCP connection and complete CONNECT/CONNACK by hand.
async fn connect(addr: SocketAddr, connect: &ConnectBytes) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&connect.encode()).await.expect("send CONNECT");
    let mut connack = [0u8; 4];
    wait_for("CONNACK", s.read_exact(&mut connack))
        .await
        .expect("read CONNACK");
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK accepted, no session");
    s
}

/// Subscribe on a hand-driven connection and wait for its SUBACK.
async fn subscribe_by_hand(s: &mut TcpStream, filter: &str, qos: u8) {
    s.write_all(&subscribe(1, &[(filter, qos)]))
        .await
        .expect("send SUBSCRIBE");
    let mut suback = [0u8; 5];
    wait_for("SUBACK", s.read_exact(&mut suback))
        .await
        .expect("read SUBACK");
    assert_eq!(suback, [0x90, 3, 0, 1, qos], "SUBACK granting QoS {qos}");
}

/// Publish alternately at QoS 0 and 1 until `stop`; returns messages written.
/// A reader drains the PUBACKs so the publisher is only slowed by the broker.
async fn publisher(addr: SocketAddr, n: usize, stop: Arc<AtomicBool>) -> u64 {
    let s = connect(addr, &ConnectBytes::new(&format!("flood-pub-{n}"))).await;
    let (mut rd, mut wr) = s.into_split();
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(rd.read(&mut buf).await, Ok(r) if r > 0) {}
    });
    let topic = format!("flood/{n}");
    let payload = [b'x'; PAYLOAD];
    let mut batch = Vec::new();
    for i in 0..100u16 {
        let qos = (i % 2) as u8;
        batch.extend(publish(&topic, &payload, qos, false, false, i + 1));
    }
    let (mut sent, mut at) = (0, 0);
    while !stop.load(Ordering::Relaxed) && sent < MAX_PER_PUBLISHER {
        // A braked publisher may wait; the stop flag is checked at least every
        // 200 ms. One `write` is cancel safe (`write_all` is not: it would leave
        // half a packet behind and the next batch would be garbage).
        match tokio::time::timeout(Duration::from_millis(200), wr.write(&batch[at..])).await {
            Ok(Ok(n)) => at += n,
            Ok(Err(e)) => panic!("publisher {n} write failed: {e}"),
            Err(_) => {}
        }
        if at == batch.len() {
            (sent, at) = (sent + 100, 0);
        }
    }
    drop(wr);
    drain.abort();
    sent
}

/// Latest numeric `$SYS/broker/...` values seen by `watcher`.
async fn read_sys(watcher: &mut RawClient, seen: &mut HashMap<String, u64>, within: Duration) {
    let until = tokio::time::Instant::now() + within;
    while let Next::Packet(p) = watcher.next(until - tokio::time::Instant::now()).await {
        if let Packet::Publish(p) = p {
            if let Ok(v) = String::from_utf8_lossy(&p.payload).parse() {
                seen.insert(p.topic.trim_start_matches("$SYS/broker/").to_string(), v);
            }
        }
        if tokio::time::Instant::now() >= until {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_under_a_publish_flood_and_drops_are_counted() {
    let broker = BinaryBroker::start("flood-memory", &config(), None);
    let addr = broker.addr;
    // A persistent session that is away during the flood.
    let mut offline = connect(addr, &ConnectBytes::new("flood-offline").clean(false)).await;
    subscribe_by_hand(&mut offline, "flood/#", 1).await;
    offline.write_all(&DISCONNECT).await.expect("DISCONNECT");
    drop(offline);
    // Subscribers that never read: at QoS 1 (window and queue fill) and at QoS 0
    // (everything goes to its output buffer, which fills to the hard limit);
    // and one that reads 1 KiB every 10 ms and never acknowledges.
    let mut stuck = connect(addr, &ConnectBytes::new("flood-stuck")).await;
    subscribe_by_hand(&mut stuck, "flood/#", 1).await;
    let mut stuck0 = connect(addr, &ConnectBytes::new("flood-stuck-qos0")).await;
    subscribe_by_hand(&mut stuck0, "flood/#", 0).await;
    let mut slow = connect(addr, &ConnectBytes::new("flood-slow")).await;
    subscribe_by_hand(&mut slow, "flood/#", 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let slow_read = Arc::new(AtomicU64::new(0));
    let slow_task = {
        let (stop, slow_read) = (stop.clone(), slow_read.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                // It never acknowledges, so once its window and queue are full of
                // QoS 1 messages nothing more comes: the read may wait in vain.
                let read = slow.read(&mut buf);
                match tokio::time::timeout(Duration::from_millis(100), read).await {
                    Ok(Ok(n)) if n > 0 => slow_read.fetch_add(n as u64, Ordering::Relaxed),
                    Ok(_) => break,
                    Err(_) => 0,
                };
            }
            slow
        })
    };
    let mut watcher = RawClient::connect(addr, "flood-sys").await;
    watcher.subscribe(1, &[("$SYS/broker/messages/#", 0)]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = broker.rss_kib();

    let started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|n| tokio::spawn(publisher(addr, n, stop.clone())))
        .collect();
    let mut peak = baseline;
    let mut samples = 0;
    while started.elapsed() < FLOOD_FOR {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(broker.rss_kib());
        samples += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let mut published = 0;
    for p in publishers {
        published += wait_for("a publisher to stop", p)
            .await
            .expect("publisher task");
    }
    let flood_secs = started.elapsed().as_secs_f64();
    let _slow = wait_for("the slow reader to stop", slow_task).await;

    // The bound: per connected subscriber its outbox (a buffer being written and
    // one filling, each up to twice the hard limit as it grows by doubling), its
    // window and queue; the offline session's queue; per publisher the batches
    // it may have on their way (2 x 16 KiB reads, decoded); plus 16 MiB for the
    // allocator's slack.
    let msg_kib = 1; // a 200-byte message with its topic, header and bookkeeping, rounded up
    let per_subscriber = 4 * OUTBOX_HARD_KIB + (MAX_INFLIGHT + MAX_QUEUED) * msg_kib;
    let bound = baseline
        + SUBSCRIBERS * per_subscriber
        + MAX_QUEUED * msg_kib
        + PUBLISHERS as u64 * 3 * 64
        + 16 * 1024;
    let flood_kib = published * (PAYLOAD as u64 + 10) / 1024;
    println!(
        "flood: {published} messages ({:.0}/s, {} MiB) from {PUBLISHERS} publishers in {flood_secs:.1} s; \
         slow reader got {} KiB; RSS baseline {baseline} KiB, peak {peak} KiB over {samples} samples, \
         bound {bound} KiB",
        published as f64 / flood_secs,
        flood_kib / 1024,
        slow_read.load(Ordering::Relaxed) / 1024,
    );
    assert!(
        flood_kib > bound - baseline,
        "the flood ({flood_kib} KiB) must dwarf the bound's headroom, or the test proves nothing"
    );
    assert!(
        peak <= bound,
        "RSS peaked at {peak} KiB, over the bound of {bound} KiB (baseline {baseline} KiB)"
    );

    // The drops are counted and published in $SYS.
    let mut sys = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !(sys.get("messages/dropped").is_some_and(|&d| d > 0)
            && sys.get("messages/dropped qos0").is_some_and(|&d| d > 0))
    {
        read_sys(&mut watcher, &mut sys, Duration::from_millis(500)).await;
    }
    let dropped = sys.get("messages/dropped").copied().unwrap_or(0);
    let dropped_qos0 = sys.get("messages/dropped qos0").copied().unwrap_or(0);
    println!("flood: $SYS says {dropped} messages dropped, {dropped_qos0} of them QoS 0");
    assert!(
        dropped > 0 && dropped_qos0 > 0,
        "drops not counted: {sys:?}"
    );
    assert!(dropped_qos0 <= dropped, "{sys:?}");

    // The broker still serves: a QoS 1 round trip on a fresh connection.
    let t = Instant::now();
    let mut probe = RawClient::connect(addr, "flood-probe").await;
    probe.subscribe(1, &[("probe/t", 1)]).await;
    let mut sender = RawClient::connect(addr, "flood-probe-pub").await;
    sender.publish("probe/t", b"ping", 1, false, 7).await;
    let got = probe.recv_publish().await;
    assert_eq!(&got.payload[..], b"ping");
    println!(
        "flood: QoS 1 round trip after the flood took {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(2));
}
