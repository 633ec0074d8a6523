//! Limits: packet size, connection count, in-flight window, queue bounds, keep-alive cap.

mod common;

use std::time::{Duration, Instant};

use broker_lite::config::QueueOverflow;
use common::*;
use mqtt_proto::codec::Packet;

fn payloads(ps: &[mqtt_proto::codec::Publish]) -> Vec<String> {
    ps.iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect()
}

#[tokio::test]
async fn packet_over_max_packet_size_closes_the_connection_and_is_counted() {
    let broker = start_with(|c| c.limits.max_packet_size = 1024).await;
    let addr = broker.local_addr();
    let mut watcher = RawClient::subscriber(addr, "big/#", 0).await;
    let connect = ConnectBytes::new("big").will("big/will", b"too-big", 0, false);
    let (mut c, _) = RawClient::connect_with(addr, &connect).await;
    let before = broker.metrics().snapshot().malformed_packets;
    c.send(&publish("big/t", &[7u8; 2000], 0, false, false, 0))
        .await;
    c.expect_closed().await;
    wait_until("the oversized packet is counted", || {
        broker.metrics().snapshot().malformed_packets > before
    })
    .await;
    let will = watcher.recv_publish().await;
    assert_eq!(
        will.topic, "big/will",
        "the big message is not delivered; the will is"
    );
    assert_serves_new_client(addr).await;
}

#[tokio::test]
async fn packet_of_exactly_max_packet_size_is_accepted() {
    let broker = start_with(|c| c.limits.max_packet_size = 1024).await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "fit/t", 0).await;
    let mut c = RawClient::connect(addr, "fits").await;
    // 1 header byte + 2 length bytes + 2 + 5 topic bytes + payload = 1024.
    let packet = publish("fit/t", &[1u8; 1014], 0, false, false, 0);
    assert_eq!(packet.len(), 1024);
    c.send(&packet).await;
    let p = sub.recv_publish().await;
    assert_eq!(p.payload.len(), 1014);
    c.ping().await;
}

#[tokio::test]
async fn oversized_packet_is_refused_from_its_fixed_header_alone() {
    let broker = start_with(|c| c.limits.max_packet_size = 1024).await;
    let mut c = RawClient::connect(broker.local_addr(), "header-only").await;
    let mut header = vec![0x30];
    header.extend(remaining_length(1_000_000));
    c.send(&header).await;
    c.expect_closed().await;
}

#[tokio::test]
async fn connect_over_max_packet_size_is_refused() {
    let broker = start_with(|c| c.limits.max_packet_size = 256).await;
    let mut c = RawClient::tcp(broker.local_addr()).await;
    let connect = ConnectBytes::new("huge-will").will("w/t", &[0u8; 1000], 0, false);
    c.send(&connect.encode()).await;
    c.expect_closed().await;
}

#[tokio::test]
async fn connection_over_max_connections_is_closed() {
    let broker = start_with(|c| c.limits.max_connections = 2).await;
    let addr = broker.local_addr();
    let a = RawClient::connect(addr, "slot-a").await;
    let mut b = RawClient::connect(addr, "slot-b").await;
    let mut extra = RawClient::tcp(addr).await;
    extra.expect_closed().await;
    b.ping().await;
    a.disconnect().await;
    wait_until("the slot is free", || {
        broker.metrics().snapshot().connections_current == 1
    })
    .await;
    let mut c = RawClient::connect(addr, "slot-c").await;
    c.ping().await;
}

#[tokio::test]
async fn connection_over_max_connections_is_closed_even_if_it_sends_connect() {
    let broker = start_with(|c| c.limits.max_connections = 1).await;
    let addr = broker.local_addr();
    let _a = RawClient::connect(addr, "only").await;
    let mut extra = RawClient::tcp(addr).await;
    // The write may fail when the broker has already closed the socket.
    let _ = extra.try_send(&ConnectBytes::new("second").encode()).await;
    let got = extra.packets_until_closed().await;
    assert!(
        !got.iter().any(|p| matches!(p, Packet::ConnAck(a) if a.code == mqtt_proto::codec::ConnectReturnCode::Accepted)),
        "a connection over the limit must not be accepted: {got:?}"
    );
}

#[tokio::test]
async fn max_inflight_limits_unacked_qos1_publishes_to_one_client() {
    let broker = start_with(|c| c.limits.max_inflight = 2).await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "win/t", 1).await;
    let mut publ = RawClient::connect(addr, "win-pub").await;
    // Messages the router has handed to a connection so far: all five are routed
    // (each PUBACK comes from the router), so this counts what the window let out.
    let sent_before = broker.metrics().snapshot().messages_sent;
    let sent = || broker.metrics().snapshot().messages_sent - sent_before;
    for i in 0..5u16 {
        publ.publish("win/t", format!("m{i}").as_bytes(), 1, false, i + 1)
            .await;
    }
    let first = sub.recv_publish().await;
    let second = sub.recv_publish().await;
    assert_eq!(sent(), 2, "the rest wait for a free place in the window");
    let mut got = vec![first.clone(), second.clone()];
    sub.send(&puback(first.pkid)).await;
    let third = sub.recv_publish().await;
    assert_eq!(sent(), 3, "one PUBACK lets one more out");
    got.push(third.clone());
    sub.send(&puback(second.pkid)).await;
    sub.send(&puback(third.pkid)).await;
    got.extend(sub.recv_publishes_acked(2).await);
    assert_eq!(payloads(&got), ["m0", "m1", "m2", "m3", "m4"]);
}

#[tokio::test]
async fn max_inflight_counts_qos2_publishes_until_pubcomp() {
    let broker = start_with(|c| c.limits.max_inflight = 1).await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "win2/t", 2).await;
    let mut publ = RawClient::connect(addr, "win2-pub").await;
    // As above: what the router has handed to a connection once all are routed.
    let sent_before = broker.metrics().snapshot().messages_sent;
    let sent = || broker.metrics().snapshot().messages_sent - sent_before;
    for i in 0..3u16 {
        publ.publish("win2/t", format!("m{i}").as_bytes(), 2, false, i + 1)
            .await;
    }
    let mut got = Vec::new();
    for n in 1..=3 {
        let p = sub.recv_publish().await;
        assert_eq!(sent(), n, "the next waits for the PUBCOMP");
        sub.send(&pubrec(p.pkid)).await;
        sub.expect(Packet::PubRel(p.pkid)).await;
        sub.send(&pubcomp(p.pkid)).await;
        got.push(p);
    }
    assert_eq!(payloads(&got), ["m0", "m1", "m2"]);
}

#[tokio::test]
async fn online_queue_past_the_inflight_window_drops_newest_when_full() {
    let broker = start_with(|c| {
        c.limits.max_inflight = 1;
        c.limits.max_queued_messages = 2;
        c.queue_overflow = QueueOverflow::DropNewest;
    })
    .await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "oq/t", 1).await;
    let dropped_before = broker.metrics().snapshot().messages_dropped;
    let mut publ = RawClient::connect(addr, "oq-pub").await;
    for i in 0..5u16 {
        publ.publish("oq/t", format!("m{i}").as_bytes(), 1, false, i + 1)
            .await;
    }
    let first = sub.recv_publish().await;
    wait_until("two messages dropped", || {
        broker.metrics().snapshot().messages_dropped - dropped_before == 2
    })
    .await;
    sub.ack(&first).await;
    let mut got = vec![first];
    got.extend(sub.recv_publishes_acked(2).await);
    assert_eq!(payloads(&got), ["m0", "m1", "m2"]);
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn online_queue_past_the_inflight_window_drops_oldest_when_full() {
    let broker = start_with(|c| {
        c.limits.max_inflight = 1;
        c.limits.max_queued_messages = 2;
        c.queue_overflow = QueueOverflow::DropOldest;
    })
    .await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "oq/t", 1).await;
    let dropped_before = broker.metrics().snapshot().messages_dropped;
    let mut publ = RawClient::connect(addr, "oq-pub").await;
    for i in 0..5u16 {
        publ.publish("oq/t", format!("m{i}").as_bytes(), 1, false, i + 1)
            .await;
    }
    let first = sub.recv_publish().await;
    wait_until("two messages dropped", || {
        broker.metrics().snapshot().messages_dropped - dropped_before == 2
    })
    .await;
    sub.ack(&first).await;
    let mut got = vec![first];
    got.extend(sub.recv_publishes_acked(2).await);
    assert_eq!(payloads(&got), ["m0", "m3", "m4"]);
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn keep_alive_above_max_keep_alive_is_enforced_at_the_maximum() {
    let broker = start_with(|c| c.limits.max_keep_alive = 1).await;
    let connect = ConnectBytes::new("too-relaxed").keep_alive(60);
    let (mut c, _) = RawClient::connect_with(broker.local_addr(), &connect).await;
    let started = Instant::now();
    c.expect_closed().await;
    assert!(
        started.elapsed() <= Duration::from_millis(3000),
        "closed after {:?}; the 1 s cap should close it near 1.5 s",
        started.elapsed()
    );
}

/// Finding: keep-alive 0 escaped `max_keep_alive`, so a silent authenticated
/// connection lived forever. A client that asks for none gets the cap.
#[tokio::test]
async fn keep_alive_0_is_capped_by_max_keep_alive_like_any_other() {
    let broker = start_with(|c| c.limits.max_keep_alive = 1).await;
    let connect = ConnectBytes::new("never-speaks").keep_alive(0);
    let (mut c, _) = RawClient::connect_with(broker.local_addr(), &connect).await;
    let started = Instant::now();
    c.expect_closed().await;
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(1400) && after <= Duration::from_millis(3000),
        "closed after {after:?}; the 1 s cap should close it near 1.5 s"
    );
}

/// Finding: up to 1 MiB per connection before authentication (1,024 stalled
/// partial CONNECTs raised RSS by 1 GB). A CONNECT may be `max_connect_size` at
/// most: one announced larger is refused from its fixed header, before its
/// bytes are read or held, and counted.
#[tokio::test]
async fn a_connect_larger_than_max_connect_size_is_refused_from_its_header() {
    let broker = start_with(|c| c.limits.max_connect_size = 4096).await;
    let addr = broker.local_addr();
    // A CONNECT with a 3 KiB will payload fits.
    let fits = ConnectBytes::new("fits").will("w/t", &[1u8; 3 * 1024], 0, false);
    let (c, _) = RawClient::connect_with(addr, &fits).await;
    c.disconnect().await;
    // One of 1 MiB is refused when only its fixed header has arrived.
    let before = broker.metrics().snapshot().malformed_packets;
    let mut c = RawClient::tcp(addr).await;
    let mut header = vec![0x10];
    header.extend(remaining_length(1024 * 1024));
    c.send(&header).await;
    c.expect_closed().await;
    assert_eq!(broker.metrics().snapshot().malformed_packets, before + 1);
    // Once logged in, packets up to max_packet_size pass as before.
    let mut sub = RawClient::subscriber(addr, "big/t", 0).await;
    let mut p = RawClient::connect(addr, "big-pub").await;
    p.publish("big/t", &[2u8; 64 * 1024], 0, false, 0).await;
    assert_eq!(sub.recv_publish().await.payload.len(), 64 * 1024);
}

#[tokio::test]
async fn metrics_count_messages_and_bytes_both_ways() {
    let broker = start().await;
    let addr = broker.local_addr();
    let before = broker.metrics().snapshot();
    let mut sub = RawClient::subscriber(addr, "count/t", 1).await;
    let mut publ = RawClient::connect(addr, "count-pub").await;
    publ.publish("count/t", b"abc", 1, false, 1).await;
    sub.recv_publish_acked().await;
    wait_until("messages counted", || {
        let now = broker.metrics().snapshot();
        now.messages_received > before.messages_received
            && now.messages_sent > before.messages_sent
            && now.bytes_received > before.bytes_received
            && now.bytes_sent > before.bytes_sent
    })
    .await;
}
