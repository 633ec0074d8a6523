//! Clean and persistent sessions: session-present bits, kept subscriptions,
//! offline queues and their bounds, resends with DUP, inbound QoS 2 deduplication.

mod common;

use std::net::SocketAddr;

use broker_lite::config::QueueOverflow;
use common::*;
use mqtt_proto::codec::{Packet, QoS};

/// Connect a persistent session for `id` and return it with its session-present bit.
async fn persistent(addr: SocketAddr, id: &str) -> (RawClient, bool) {
    RawClient::connect_with(addr, &ConnectBytes::new(id).clean(false)).await
}

/// Publish `n` messages `m0..` to `topic` at `qos` from a fresh client, each acknowledged.
async fn publish_numbered(addr: SocketAddr, topic: &str, qos: u8, n: u16) {
    let mut p = RawClient::connect(addr, &unique_id("pub")).await;
    for i in 0..n {
        p.publish(topic, format!("m{i}").as_bytes(), qos, false, i + 1)
            .await;
    }
    p.disconnect().await;
}

fn payloads(ps: &[mqtt_proto::codec::Publish]) -> Vec<String> {
    ps.iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect()
}

#[tokio::test]
async fn clean_session_connack_has_session_present_0() {
    let broker = start().await;
    let addr = broker.local_addr();
    let (c, present) = RawClient::connect_with(addr, &ConnectBytes::new("clean-a")).await;
    assert!(!present);
    c.disconnect().await;
    let (_c, present) = RawClient::connect_with(addr, &ConnectBytes::new("clean-a")).await;
    assert!(!present, "a clean session is never present");
}

#[tokio::test]
async fn persistent_session_first_connect_has_session_present_0_and_reconnect_has_1() {
    let broker = start().await;
    let addr = broker.local_addr();
    let (c, present) = persistent(addr, "keeper").await;
    assert!(!present, "no session existed before");
    c.disconnect().await;
    let (_c, present) = persistent(addr, "keeper").await;
    assert!(present, "the session was kept");
}

#[tokio::test]
async fn persistent_session_keeps_subscriptions_across_reconnect() {
    let broker = start().await;
    let addr = broker.local_addr();
    let (mut c, _) = persistent(addr, "keeps-subs").await;
    c.subscribe(1, &[("keep/t", 1)]).await;
    c.disconnect().await;
    let (mut c, present) = persistent(addr, "keeps-subs").await;
    assert!(present);
    publish_numbered(addr, "keep/t", 1, 1).await;
    let p = c.recv_publish_acked().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("keep/t", &b"m0"[..]));
}

#[tokio::test]
async fn clean_session_connect_discards_the_previous_persistent_session() {
    let broker = start().await;
    let addr = broker.local_addr();
    let (mut c, _) = persistent(addr, "discard").await;
    c.subscribe(1, &[("discard/t", 1)]).await;
    c.disconnect().await;
    let (mut c, present) = RawClient::connect_with(addr, &ConnectBytes::new("discard")).await;
    assert!(!present, "clean session must not resume the stored one");
    publish_numbered(addr, "discard/t", 1, 1).await;
    c.expect_nothing_more(addr).await;
    c.disconnect().await;
    let (_c, present) = persistent(addr, "discard").await;
    assert!(!present, "the clean session ended and left no state");
}

#[tokio::test]
async fn clean_session_subscriptions_end_with_the_connection() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut c = RawClient::connect(addr, "short-lived").await;
    c.subscribe(1, &[("short/t", 1)]).await;
    c.disconnect().await;
    let mut c = RawClient::connect(addr, "short-lived").await;
    publish_numbered(addr, "short/t", 1, 1).await;
    c.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn persistent_session_queues_qos1_and_qos2_while_offline_in_order() {
    let broker = start().await;
    let addr = broker.local_addr();
    let (mut c, _) = persistent(addr, "offline").await;
    c.subscribe(1, &[("off/1", 1), ("off/2", 2)]).await;
    c.disconnect().await;
    let mut p = RawClient::connect(addr, "offline-pub").await;
    p.publish("off/1", b"a", 1, false, 1).await;
    p.publish("off/2", b"b", 2, false, 2).await;
    p.publish("off/1", b"c", 1, false, 3).await;
    p.publish("off/2", b"d", 2, false, 4).await;
    let (mut c, present) = persistent(addr, "offline").await;
    assert!(present);
    let got = c.recv_publishes_acked(4).await;
    assert_eq!(payloads(&got), ["a", "b", "c", "d"]);
    let qos: Vec<QoS> = got.iter().map(|p| p.qos).collect();
    assert_eq!(
        qos,
        [
            QoS::AtLeastOnce,
            QoS::ExactlyOnce,
            QoS::AtLeastOnce,
            QoS::ExactlyOnce
        ]
    );
    c.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn offline_queue_over_max_queued_messages_drops_oldest_and_counts_them() {
    let broker = start_with(|c| {
        c.limits.max_queued_messages = 3;
        c.queue_overflow = QueueOverflow::DropOldest;
    })
    .await;
    let addr = broker.local_addr();
    let (mut c, _) = persistent(addr, "overflow-old").await;
    c.subscribe(1, &[("ovf/t", 1)]).await;
    c.disconnect().await;
    let dropped_before = broker.metrics().snapshot().messages_dropped;
    publish_numbered(addr, "ovf/t", 1, 5).await;
    let (mut c, _) = persistent(addr, "overflow-old").await;
    let got = c.recv_publishes_acked(3).await;
    assert_eq!(payloads(&got), ["m2", "m3", "m4"]);
    c.expect_nothing_more(addr).await;
    assert_eq!(
        broker.metrics().snapshot().messages_dropped - dropped_before,
        2
    );
}

#[tokio::test]
async fn offline_queue_over_max_queued_messages_drops_newest_and_counts_them() {
    let broker = start_with(|c| {
        c.limits.max_queued_messages = 3;
        c.queue_overflow = QueueOverflow::DropNewest;
    })
    .await;
    let addr = broker.local_addr();
    let (mut c, _) = persistent(addr, "overflow-new").await;
    c.subscribe(1, &[("ovf/t", 1)]).await;
    c.disconnect().await;
    let dropped_before = broker.metrics().snapshot().messages_dropped;
    publish_numbered(addr, "ovf/t", 1, 5).await;
    let (mut c, _) = persistent(addr, "overflow-new").await;
    let got = c.recv_publishes_acked(3).await;
    assert_eq!(payloads(&got), ["m0", "m1", "m2"]);
    c.expect_nothing_more(addr).await;
    assert_eq!(
        broker.metrics().snapshot().messages_dropped - dropped_before,
        2
    );
}

#[tokio::test]
async fn persistent_session_resends_unacked_publishes_with_dup_in_order() {
    let broker = start().await;
    let addr = broker.local_addr();
    let (mut c, _) = persistent(addr, "resend").await;
    c.subscribe(1, &[("rs/1", 1), ("rs/2", 2)]).await;
    let mut p = RawClient::connect(addr, "resend-pub").await;
    p.publish("rs/1", b"a", 1, false, 1).await;
    p.publish("rs/2", b"b", 2, false, 2).await;
    p.publish("rs/1", b"c", 1, false, 3).await;
    let mut first = Vec::new();
    for _ in 0..3 {
        let got = c.recv_publish().await;
        assert!(!got.dup, "first delivery must have DUP=0");
        first.push(got);
    }
    drop(c);
    let (mut c, present) = persistent(addr, "resend").await;
    assert!(present);
    let mut again = Vec::new();
    for _ in 0..3 {
        again.push(c.recv_publish().await);
    }
    for (a, b) in first.iter().zip(&again) {
        assert!(b.dup, "resent PUBLISH must have DUP=1: {b:?}");
        assert_eq!(
            (a.pkid, &a.topic, &a.payload, a.qos),
            (b.pkid, &b.topic, &b.payload, b.qos),
            "resend must repeat the same packet"
        );
    }
    for m in &again {
        c.ack(m).await;
    }
    c.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn acknowledged_publishes_are_not_resent_on_reconnect() {
    let broker = start().await;
    let addr = broker.local_addr();
    let (mut c, _) = persistent(addr, "acked").await;
    c.subscribe(1, &[("ack/t", 1)]).await;
    publish_numbered(addr, "ack/t", 1, 2).await;
    let first = c.recv_publish_acked().await;
    let second = c.recv_publish().await;
    c.ping().await;
    drop(c);
    let (mut c, _) = persistent(addr, "acked").await;
    let again = c.recv_publish().await;
    assert_eq!(again.payload, second.payload);
    assert_ne!(again.payload, first.payload);
    c.ack(&again).await;
    c.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn persistent_session_resends_pubrel_for_qos2_received_but_not_completed() {
    let broker = start().await;
    let addr = broker.local_addr();
    let (mut c, _) = persistent(addr, "rel").await;
    c.subscribe(1, &[("rel/t", 2)]).await;
    publish_numbered(addr, "rel/t", 2, 1).await;
    let got = c.recv_publish().await;
    c.send(&pubrec(got.pkid)).await;
    c.expect(Packet::PubRel(got.pkid)).await;
    drop(c);
    let (mut c, present) = persistent(addr, "rel").await;
    assert!(present);
    c.expect(Packet::PubRel(got.pkid)).await;
    c.send(&pubcomp(got.pkid)).await;
    c.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn inbound_qos2_resent_with_same_packet_id_before_pubrel_is_delivered_once() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "dedup/t", 2).await;
    let mut p = RawClient::connect(addr, "dedup-pub").await;
    p.send(&publish("dedup/t", b"once", 2, false, false, 7))
        .await;
    p.expect(Packet::PubRec(7)).await;
    p.send(&publish("dedup/t", b"once", 2, false, true, 7))
        .await;
    p.expect(Packet::PubRec(7)).await;
    p.send(&pubrel(7)).await;
    p.expect(Packet::PubComp(7)).await;
    let got = sub.recv_publishes_acked(1).await;
    assert_eq!(payloads(&got), ["once"]);
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn inbound_qos2_packet_id_is_free_again_after_pubrel() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "reuse/t", 2).await;
    let mut p = RawClient::connect(addr, "reuse-pub").await;
    p.publish("reuse/t", b"first", 2, false, 5).await;
    p.publish("reuse/t", b"second", 2, false, 5).await;
    let got = sub.recv_publishes_acked(2).await;
    assert_eq!(payloads(&got), ["first", "second"]);
}

#[tokio::test]
async fn inbound_qos2_deduplication_survives_a_reconnect_of_a_persistent_session() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "dedup2/t", 2).await;
    let (mut p, _) = persistent(addr, "dedup-persist").await;
    p.send(&publish("dedup2/t", b"once", 2, false, false, 9))
        .await;
    p.expect(Packet::PubRec(9)).await;
    drop(p);
    let (mut p, present) = persistent(addr, "dedup-persist").await;
    assert!(present);
    p.send(&publish("dedup2/t", b"once", 2, false, true, 9))
        .await;
    p.expect(Packet::PubRec(9)).await;
    p.send(&pubrel(9)).await;
    p.expect(Packet::PubComp(9)).await;
    let got = sub.recv_publishes_acked(1).await;
    assert_eq!(payloads(&got), ["once"]);
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn rumqttc_persistent_session_gets_messages_published_while_offline() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut opts = rumq_options(addr, "rumq-persist");
    opts.set_clean_session(false);
    let mut c = Rumq::connect(opts.clone()).await;
    c.subscribe("rp/t", rumqttc::QoS::ExactlyOnce).await;
    c.client.disconnect().await.expect("disconnect request");
    wait_until("the session goes offline", || {
        broker.metrics().snapshot().connections_current == 0
    })
    .await;
    drop(c);
    publish_numbered(addr, "rp/t", 2, 3).await;
    let mut c = Rumq::connect(opts).await;
    for i in 0..3 {
        let p = c.next_publish().await;
        assert_eq!(p.payload, format!("m{i}").as_bytes());
        assert_eq!(p.qos, rumqttc::QoS::ExactlyOnce);
    }
    assert!(
        c.publish_before_fence(addr).await.is_none(),
        "no duplicate delivery"
    );
}

#[tokio::test]
async fn takeover_of_a_persistent_session_resends_unacked_messages_to_the_new_connection() {
    let broker = start().await;
    let addr = broker.local_addr();
    let (mut old, _) = persistent(addr, "handover").await;
    old.subscribe(1, &[("ho/t", 1)]).await;
    publish_numbered(addr, "ho/t", 1, 2).await;
    let first = old.recv_publish().await;
    let second = old.recv_publish().await;
    let (mut new, present) = persistent(addr, "handover").await;
    assert!(present);
    old.expect_closed().await;
    let a = new.recv_publish().await;
    let b = new.recv_publish().await;
    assert!(a.dup && b.dup, "resends carry DUP=1");
    assert_eq!((a.pkid, b.pkid), (first.pkid, second.pkid));
    new.ack(&a).await;
    new.ack(&b).await;
    new.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn unsubscribe_in_a_persistent_session_lasts_across_reconnect() {
    let broker = start().await;
    let addr = broker.local_addr();
    let (mut c, _) = persistent(addr, "unsub-persist").await;
    c.subscribe(1, &[("up/a", 1), ("up/b", 1)]).await;
    c.unsubscribe(2, &["up/a"]).await;
    c.disconnect().await;
    let (mut c, _) = persistent(addr, "unsub-persist").await;
    let mut p = RawClient::connect(addr, "unsub-persist-pub").await;
    p.publish("up/a", b"a", 1, false, 1).await;
    p.publish("up/b", b"b", 1, false, 2).await;
    let got = c.recv_publish_acked().await;
    assert_eq!(got.topic, "up/b");
    c.expect_nothing_more(addr).await;
}
