//! Retained messages and will messages.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mqtt_proto::codec::QoS;

#[tokio::test]
async fn retained_message_is_sent_on_subscribe_with_retain_flag() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut publ = RawClient::connect(addr, "ret-pub").await;
    publ.publish("ret/t", b"kept", 1, true, 1).await;
    let mut sub = RawClient::subscriber(addr, "ret/t", 1).await;
    let p = sub.recv_publish_acked().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("ret/t", &b"kept"[..]));
    assert!(
        p.retain,
        "a retained message sent on subscribe has retain=1"
    );
}

#[tokio::test]
async fn delivery_to_an_existing_subscriber_has_retain_0() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "ret/live", 0).await;
    let mut publ = RawClient::connect(addr, "ret-live-pub").await;
    publ.publish("ret/live", b"now", 0, true, 0).await;
    let p = sub.recv_publish().await;
    assert_eq!(&p.payload[..], b"now");
    assert!(!p.retain, "normal delivery must have retain=0");
}

#[tokio::test]
async fn retained_message_is_replaced_by_a_newer_one() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut publ = RawClient::connect(addr, "ret-replace").await;
    publ.publish("ret/r", b"old", 1, true, 1).await;
    publ.publish("ret/r", b"new", 1, true, 2).await;
    let mut sub = RawClient::subscriber(addr, "ret/r", 1).await;
    let p = sub.recv_publish_acked().await;
    assert_eq!(&p.payload[..], b"new");
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn empty_retained_payload_deletes_the_retained_message() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut publ = RawClient::connect(addr, "ret-del").await;
    publ.publish("ret/d", b"x", 1, true, 1).await;
    publ.publish("ret/d", b"", 1, true, 2).await;
    let mut sub = RawClient::subscriber(addr, "ret/d", 1).await;
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn retained_messages_are_sent_for_a_wildcard_subscription() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut publ = RawClient::connect(addr, "ret-wild").await;
    publ.publish("rw/a", b"a", 1, true, 1).await;
    publ.publish("rw/b/c", b"c", 1, true, 2).await;
    publ.publish("other/x", b"x", 1, true, 3).await;
    let mut sub = RawClient::subscriber(addr, "rw/#", 1).await;
    let mut got = sub.recv_publishes_acked(2).await;
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    let topics: Vec<&str> = got.iter().map(|p| p.topic.as_str()).collect();
    assert_eq!(topics, ["rw/a", "rw/b/c"]);
    assert!(got.iter().all(|p| p.retain));
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn retained_message_is_sent_at_the_lower_of_its_qos_and_the_subscription() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut publ = RawClient::connect(addr, "ret-qos").await;
    publ.publish("rq/t", b"q2", 2, true, 1).await;
    let mut sub = RawClient::subscriber(addr, "rq/t", 1).await;
    let p = sub.recv_publish_acked().await;
    assert_eq!(p.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn non_retained_publish_does_not_touch_the_retained_message() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut publ = RawClient::connect(addr, "ret-keep").await;
    publ.publish("rk/t", b"stored", 1, true, 1).await;
    publ.publish("rk/t", b"passing", 1, false, 2).await;
    let mut sub = RawClient::subscriber(addr, "rk/t", 1).await;
    let p = sub.recv_publish_acked().await;
    assert_eq!(&p.payload[..], b"stored");
}

#[tokio::test]
async fn handle_publish_with_retain_is_stored() {
    let broker = start().await;
    let addr = broker.local_addr();
    broker
        .handle()
        .publish(
            "rh/t",
            bytes::Bytes::from("from-handle"),
            QoS::AtLeastOnce,
            true,
        )
        .await
        .expect("handle publish");
    let mut sub = RawClient::subscriber(addr, "rh/t", 1).await;
    let p = sub.recv_publish_acked().await;
    assert!(p.retain);
    assert_eq!(&p.payload[..], b"from-handle");
}

#[tokio::test]
async fn will_is_published_when_the_socket_closes_without_disconnect() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut watcher = RawClient::subscriber(addr, "will/#", 1).await;
    let connect = ConnectBytes::new("dies").will("will/dies", b"lost", 1, false);
    let (c, _) = RawClient::connect_with(addr, &connect).await;
    drop(c);
    let p = watcher.recv_publish_acked().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..], p.qos),
        ("will/dies", &b"lost"[..], QoS::AtLeastOnce)
    );
    assert!(!p.retain);
}

#[tokio::test]
async fn will_is_not_published_after_disconnect() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut watcher = RawClient::subscriber(addr, "will/#", 1).await;
    let connect = ConnectBytes::new("polite").will("will/polite", b"lost", 1, false);
    let (c, _) = RawClient::connect_with(addr, &connect).await;
    c.disconnect().await;
    watcher.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn will_is_published_on_keep_alive_expiry_after_one_and_a_half_keep_alive() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut watcher = RawClient::subscriber(addr, "will/#", 0).await;
    let connect =
        ConnectBytes::new("sleepy")
            .keep_alive(1)
            .will("will/sleepy", b"timeout", 0, false);
    let (_c, _) = RawClient::connect_with(addr, &connect).await;
    let started = Instant::now();
    let p = watcher.recv_publish().await;
    let waited = started.elapsed();
    assert_eq!(&p.payload[..], b"timeout");
    assert!(
        waited >= Duration::from_millis(1000) && waited <= Duration::from_millis(3000),
        "will after {waited:?}; expected about 1.5 s for keep-alive 1 s"
    );
}

#[tokio::test]
async fn will_is_published_on_a_protocol_error() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut watcher = RawClient::subscriber(addr, "will/#", 0).await;
    let connect = ConnectBytes::new("breaks").will("will/breaks", b"bad", 0, false);
    let (mut c, _) = RawClient::connect_with(addr, &connect).await;
    c.send(&publish("bad/+", b"", 0, false, false, 0)).await;
    c.expect_closed().await;
    let p = watcher.recv_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("will/breaks", &b"bad"[..])
    );
}

#[tokio::test]
async fn will_is_published_on_takeover() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut watcher = RawClient::subscriber(addr, "will/#", 0).await;
    let connect = ConnectBytes::new("taken").will("will/taken", b"replaced", 0, false);
    let (mut old, _) = RawClient::connect_with(addr, &connect).await;
    let (_new, _) = RawClient::connect_with(addr, &ConnectBytes::new("taken")).await;
    old.expect_closed().await;
    let p = watcher.recv_publish().await;
    assert_eq!(&p.payload[..], b"replaced");
}

#[tokio::test]
async fn will_with_retain_is_stored_as_retained_message() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut watcher = RawClient::subscriber(addr, "will/note", 1).await;
    let connect = ConnectBytes::new("leaves-note").will("will/note", b"bye", 1, true);
    let (c, _) = RawClient::connect_with(addr, &connect).await;
    drop(c);
    let live = watcher.recv_publish_acked().await;
    assert!(!live.retain, "a subscriber already there gets retain=0");
    let mut late = RawClient::subscriber(addr, "will/note", 1).await;
    let p = late.recv_publish_acked().await;
    assert_eq!(&p.payload[..], b"bye");
    assert!(p.retain);
}

#[tokio::test]
async fn will_is_delivered_to_rumqttc_subscriber_when_rumqttc_client_drops() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut watcher = Rumq::connect_to(addr, "will-watcher").await;
    watcher
        .subscribe("will/rumq", rumqttc::QoS::ExactlyOnce)
        .await;
    let mut opts = rumq_options(addr, "will-rumq");
    opts.set_last_will(rumqttc::LastWill::new(
        "will/rumq",
        "rumq-gone",
        rumqttc::QoS::ExactlyOnce,
        false,
    ));
    let dying = Rumq::connect(opts).await;
    drop(dying);
    let p = watcher.next_publish().await;
    assert_eq!(&p.payload[..], b"rumq-gone");
    assert_eq!(p.qos, rumqttc::QoS::ExactlyOnce);
}
