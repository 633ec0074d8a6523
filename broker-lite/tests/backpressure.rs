//! Flow control for QoS 0: a publisher that is faster than a subscriber is slowed
//! down rather than losing messages, and a subscriber that stops reading holds
//! nobody up for long.

mod common;

use std::time::Duration;

use common::*;
use mqtt_proto::codec::Packet;
use tokio::task::JoinHandle;

const MESSAGES: u32 = 20_000;
const PAYLOAD: usize = 1000;

/// Connect a publisher and send `MESSAGES` QoS 0 messages as fast as the socket takes them.
async fn blast(addr: std::net::SocketAddr) -> JoinHandle<RawClient> {
    let mut publisher = RawClient::connect(addr, &unique_id("blaster")).await;
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(256 * 1024);
        for n in 0..MESSAGES {
            let mut payload = n.to_be_bytes().to_vec();
            payload.resize(PAYLOAD, b'x');
            batch.extend_from_slice(&publish("bp/data", &payload, 0, false, false, 0));
            if batch.len() >= 200 * 1024 {
                publisher.send(&batch).await;
                batch.clear();
            }
        }
        publisher.send(&batch).await;
        publisher
    })
}

fn sequence(packet: Packet) -> Option<u32> {
    match packet {
        Packet::Publish(p) => Some(u32::from_be_bytes(p.payload[..4].try_into().ok()?)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_qos0_publisher_is_slowed_down_for_a_slow_subscriber_instead_of_losing_messages() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut slow = RawClient::subscriber(addr, "bp/#", 0).await;
    let publisher = blast(addr).await;
    // About 40 MB/s: far slower than the publisher can write to loopback.
    let mut expected = 0;
    while expected < MESSAGES {
        match slow.next(WAIT).await {
            Next::Packet(p) => {
                let n = sequence(p).expect("only PUBLISH packets arrive");
                assert_eq!(n, expected, "messages arrive in order, none missing");
                expected += 1;
                if expected % 200 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            other => panic!("after {expected} messages the subscriber got {other:?}"),
        }
    }
    wait_for("the publisher to finish", publisher)
        .await
        .expect("publisher task");
    assert_eq!(broker.metrics().snapshot().messages_dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_does_not_hold_up_the_others() {
    let broker = start().await;
    let addr = broker.local_addr();
    let _stuck = RawClient::subscriber(addr, "bp/#", 0).await;
    let mut fast = RawClient::subscriber(addr, "bp/#", 0).await;
    let publisher = blast(addr).await;
    let mut expected = 0;
    while expected < MESSAGES {
        match fast.next(WAIT).await {
            Next::Packet(p) => {
                assert_eq!(sequence(p), Some(expected));
                expected += 1;
            }
            other => panic!("after {expected} messages the reading subscriber got {other:?}"),
        }
    }
    wait_for("the publisher to finish", publisher)
        .await
        .expect("publisher task");
    let dropped = broker.metrics().snapshot().messages_dropped;
    assert!(
        dropped > 0,
        "the subscriber that does not read loses QoS 0 messages"
    );
    assert!(dropped < u64::from(MESSAGES));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_qos1_publisher_is_slowed_down_before_a_slow_subscriber_queue_overflows() {
    const COUNT: u16 = 20_000;
    let broker = start_with(|c| {
        c.limits.max_queued_messages = 2000;
        c.limits.max_inflight = 10;
    })
    .await;
    let addr = broker.local_addr();
    let mut slow = RawClient::subscriber(addr, "bp/#", 1).await;
    let mut publisher = RawClient::connect(addr, &unique_id("qos1-blaster")).await;
    // All publishes at once, each with its own packet id; the broker acknowledges
    // them as it reads them.
    let mut all = Vec::new();
    for n in 1..=COUNT {
        let mut payload = u32::from(n).to_be_bytes().to_vec();
        payload.resize(100, b'x');
        all.extend_from_slice(&publish("bp/q1", &payload, 1, false, false, n));
    }
    let sender = tokio::spawn(async move {
        publisher.send(&all).await;
        let mut acked = 0;
        while acked < COUNT {
            match publisher.next(WAIT).await {
                Next::Packet(Packet::PubAck(_)) => acked += 1,
                other => panic!("publisher got {other:?} after {acked} acks"),
            }
        }
    });
    let mut expected = 1u32;
    while expected <= u32::from(COUNT) {
        let p = slow.recv_publish().await;
        assert_eq!(
            u32::from_be_bytes(p.payload[..4].try_into().expect("4 bytes")),
            expected,
            "messages arrive in order, none missing"
        );
        slow.ack(&p).await;
        if expected.is_multiple_of(50) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        expected += 1;
    }
    wait_for("all PUBACKs", sender)
        .await
        .expect("publisher task");
    assert_eq!(broker.metrics().snapshot().messages_dropped, 0);
}
