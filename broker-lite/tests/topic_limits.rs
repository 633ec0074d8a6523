//! Hardening limits seen from a client: topic length and depth, subscriptions
//! per client, and a full queue giving up QoS 0 messages first.

mod common;

use broker_lite::config::QueueOverflow;
use common::*;
use mqtt_proto::codec::{Packet, QoS, SubscribeReturnCode};

const OK0: SubscribeReturnCode = SubscribeReturnCode::Success(QoS::AtMostOnce);
const FAIL: SubscribeReturnCode = SubscribeReturnCode::Failure;

#[tokio::test]
async fn a_publish_over_the_topic_limits_is_dropped_acknowledged_and_counted() {
    let broker = start_with(|c| {
        c.limits.max_topic_length = 16;
        c.limits.max_topic_levels = 3;
    })
    .await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "#", 0).await;
    let mut publisher = RawClient::connect(addr, "long-topics").await;
    let long = "a".repeat(17);
    // QoS 1 and 2 are still acknowledged, so the publisher's window does not stall;
    // the connection stays open: a long topic is not a protocol violation.
    publisher.publish(&long, b"x", 1, false, 1).await;
    publisher.publish("a/b/c/d", b"x", 2, false, 2).await;
    publisher.publish(&long, b"x", 0, false, 0).await;
    publisher.publish("a/b/c", b"fits", 1, false, 3).await;
    let got = sub.recv_publish().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("a/b/c", &b"fits"[..]),
        "only the topic within the limits is delivered"
    );
    sub.expect_nothing_more(addr).await;
    assert_eq!(broker.metrics().snapshot().topics_refused, 3);
    publisher.ping().await;
}

#[tokio::test]
async fn a_filter_over_the_topic_limits_gets_0x80_and_is_counted() {
    let broker = start_with(|c| {
        c.limits.max_topic_length = 16;
        c.limits.max_topic_levels = 3;
    })
    .await;
    let mut c = RawClient::connect(broker.local_addr(), "long-filters").await;
    let long = format!("{}/#", "x".repeat(15));
    let codes = c
        .subscribe(1, &[("a/+/#", 0), (&long, 0), ("a/b/c/#", 0), ("ok", 0)])
        .await;
    assert_eq!(codes, [OK0, FAIL, FAIL, OK0]);
    let m = broker.metrics().snapshot();
    assert_eq!((m.topics_refused, m.subscriptions), (2, 2));
}

#[tokio::test]
async fn deny_subscribe_of_hash_refuses_every_filter_except_dollar_ones() {
    // A filter starting with a wildcard does not reach `$` topics [MQTT-4.7.2-1],
    // so `$SYS/#` does not lie within a denied `#`; only a `$` deny covers it.
    let broker = start_with(|c| {
        c.deny_subscribe = vec!["#".into(), "$SYS/broker/uptime".into()];
    })
    .await;
    let mut c = RawClient::connect(broker.local_addr(), "deny-hash").await;
    let codes = c
        .subscribe(
            1,
            &[
                ("a/b", 0),
                ("#", 0),
                ("+/x", 0),
                ("$SYS/#", 0),
                ("$SYS/broker/uptime", 0),
            ],
        )
        .await;
    assert_eq!(codes, [FAIL, FAIL, FAIL, OK0, FAIL]);
}

#[tokio::test]
async fn a_will_with_a_topic_over_the_limits_is_not_kept() {
    let broker = start_with(|c| c.limits.max_topic_levels = 2).await;
    let addr = broker.local_addr();
    let mut watcher = RawClient::subscriber(addr, "#", 0).await;
    let connect = ConnectBytes::new("deep-will").will("w/x/y", b"gone", 0, false);
    let (c, _) = RawClient::connect_with(addr, &connect).await;
    assert_eq!(broker.metrics().snapshot().topics_refused, 1);
    drop(c); // no DISCONNECT: a kept will would be published now
    wait_until("the broker to see the connection end", || {
        broker.metrics().snapshot().clients_connected == 1
    })
    .await;
    watcher.expect_nothing_more(addr).await;
    assert_serves_new_client(addr).await;
}

#[tokio::test]
async fn filters_past_max_subscriptions_per_client_get_0x80_and_replacing_one_is_free() {
    let broker = start_with(|c| c.limits.max_subscriptions_per_client = 2).await;
    let addr = broker.local_addr();
    let mut c = RawClient::connect(addr, "many-subs").await;
    let codes = c.subscribe(1, &[("a", 0), ("b", 0), ("c", 0)]).await;
    assert_eq!(codes, [OK0, OK0, FAIL]);
    // The same filter again replaces the subscription (new QoS); it is not a third.
    let codes = c.subscribe(2, &[("a", 1), ("a", 0), ("d", 0)]).await;
    assert_eq!(
        codes,
        [SubscribeReturnCode::Success(QoS::AtLeastOnce), OK0, FAIL]
    );
    let m = broker.metrics().snapshot();
    assert_eq!((m.subscriptions_refused, m.subscriptions), (2, 2));
    // After an UNSUBSCRIBE there is room again.
    c.unsubscribe(3, &["b"]).await;
    assert_eq!(c.subscribe(4, &[("d", 0)]).await, [OK0]);
    // Another client has its own allowance.
    let mut other = RawClient::connect(addr, "other-subs").await;
    assert_eq!(other.subscribe(1, &[("c", 0), ("d", 0)]).await, [OK0, OK0]);
}

#[tokio::test]
async fn zero_max_subscriptions_per_client_means_no_limit() {
    let broker = start_with(|c| c.limits.max_subscriptions_per_client = 0).await;
    let mut c = RawClient::connect(broker.local_addr(), "unlimited-subs").await;
    let names: Vec<String> = (0..300).map(|i| format!("t/{i}")).collect();
    let filters: Vec<(&str, u8)> = names.iter().map(|n| (n.as_str(), 0)).collect();
    let codes = c.subscribe(1, &filters).await;
    assert!(codes.iter().all(|&c| c == OK0), "{codes:?}");
    assert_eq!(broker.metrics().snapshot().subscriptions_refused, 0);
}

/// A subscriber that does not acknowledge: its window fills, its queue fills with
/// QoS 0 and QoS 1 messages, and the QoS 0 ones are what the broker gives up,
/// counted apart, even with `drop_oldest` for QoS 1.
#[tokio::test]
async fn a_full_queue_drops_qos0_first_and_counts_it_apart() {
    let broker = start_with(|c| {
        c.limits.max_inflight = 1;
        c.limits.max_queued_messages = 4;
        c.queue_overflow = QueueOverflow::DropOldest;
    })
    .await;
    let addr = broker.local_addr();
    let mut sub = RawClient::connect(addr, "slow").await;
    assert_eq!(
        sub.subscribe(1, &[("s/#", 1)]).await,
        [SubscribeReturnCode::Success(QoS::AtLeastOnce)]
    );
    let mut publisher = RawClient::connect(addr, "fast").await;
    // 1 goes in flight; 2 waits; then QoS 0 and QoS 1 messages alternate.
    publisher.publish("s/1", b"1", 1, false, 1).await;
    publisher.publish("s/1", b"2", 1, false, 2).await;
    for n in 3..=12u16 {
        let qos = if n % 2 == 1 { 0 } else { 1 };
        publisher
            .publish("s/1", n.to_string().as_bytes(), qos, false, n)
            .await;
    }
    publisher.ping().await;
    let m = broker.metrics().snapshot();
    // Queue of 4 after the one in flight: 11 arrivals -> 7 dropped, every QoS 0 first.
    assert_eq!(m.messages_dropped, 7);
    assert_eq!(
        m.messages_dropped_qos0, 5,
        "all five QoS 0 messages went first"
    );
    let mut got = Vec::new();
    for _ in 0..5 {
        match sub.recv().await {
            Packet::Publish(p) => {
                got.push(String::from_utf8_lossy(&p.payload).into_owned());
                sub.ack(&p).await;
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
    assert_eq!(
        got,
        ["1", "6", "8", "10", "12"],
        "the newest QoS 1 messages"
    );
    sub.expect_nothing_more(addr).await;
}
