//! Message delivery: QoS 0/1/2 in both directions, QoS downgrade, overlapping
//! subscriptions, order, wildcards, `$SYS`, unsubscribe, denied filters, the handle.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use mqtt_proto::codec::{Packet, QoS, SubscribeReturnCode};
use rumqttc::QoS as RQoS;

#[tokio::test]
async fn qos0_publish_reaches_a_qos0_subscriber_with_rumqttc() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = Rumq::connect_to(addr, "r0-sub").await;
    sub.subscribe("r0/t", RQoS::AtMostOnce).await;
    let publ = Rumq::connect_to(addr, "r0-pub").await;
    publ.client
        .publish("r0/t", RQoS::AtMostOnce, false, "zero")
        .await
        .expect("publish request");
    let p = sub.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..], p.qos),
        ("r0/t", &b"zero"[..], RQoS::AtMostOnce)
    );
}

#[tokio::test]
async fn qos1_publish_is_acknowledged_and_delivered_at_qos1_with_rumqttc() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = Rumq::connect_to(addr, "r1-sub").await;
    sub.subscribe("r1/t", RQoS::AtLeastOnce).await;
    let mut publ = Rumq::connect_to(addr, "r1-pub").await;
    publ.client
        .publish("r1/t", RQoS::AtLeastOnce, false, "one")
        .await
        .expect("publish request");
    publ.wait_incoming("PUBACK", |p| matches!(p, rumqttc::Packet::PubAck(_)))
        .await;
    let p = sub.next_publish().await;
    assert_eq!((&p.payload[..], p.qos), (&b"one"[..], RQoS::AtLeastOnce));
    assert!(
        sub.publish_before_fence(addr).await.is_none(),
        "one copy only"
    );
}

#[tokio::test]
async fn qos2_publish_completes_and_is_delivered_exactly_once_with_rumqttc() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = Rumq::connect_to(addr, "r2-sub").await;
    sub.subscribe("r2/t", RQoS::ExactlyOnce).await;
    let mut publ = Rumq::connect_to(addr, "r2-pub").await;
    publ.client
        .publish("r2/t", RQoS::ExactlyOnce, false, "two")
        .await
        .expect("publish request");
    publ.wait_incoming("PUBCOMP", |p| matches!(p, rumqttc::Packet::PubComp(_)))
        .await;
    let p = sub.next_publish().await;
    assert_eq!((&p.payload[..], p.qos), (&b"two"[..], RQoS::ExactlyOnce));
    assert!(
        sub.publish_before_fence(addr).await.is_none(),
        "exactly one copy"
    );
}

#[tokio::test]
async fn qos2_delivery_to_a_raw_client_runs_the_full_exchange() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "x2/t", 2).await;
    let mut publ = RawClient::connect(addr, "x2-pub").await;
    publ.publish("x2/t", b"full", 2, false, 1).await;
    let p = sub.recv_publish().await;
    assert_eq!(p.qos, QoS::ExactlyOnce);
    assert_ne!(p.pkid, 0);
    sub.send(&pubrec(p.pkid)).await;
    sub.expect(Packet::PubRel(p.pkid)).await;
    sub.send(&pubcomp(p.pkid)).await;
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn delivered_qos_is_the_minimum_of_publish_and_subscription() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut publ = RawClient::connect(addr, "min-pub").await;
    for sub_qos in 0u8..=2 {
        let filter = format!("min/{sub_qos}");
        let mut sub = RawClient::subscriber(addr, &filter, sub_qos).await;
        for pub_qos in 0u8..=2 {
            publ.publish(&filter, b"x", pub_qos, false, 1).await;
            let p = sub.recv_publish_acked().await;
            assert_eq!(
                p.qos as u8,
                sub_qos.min(pub_qos),
                "subscribed at {sub_qos}, published at {pub_qos}"
            );
        }
    }
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_one_copy_at_highest_qos() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::connect(addr, "overlap").await;
    sub.subscribe(1, &[("ov/+/t", 0), ("ov/#", 2), ("ov/a/t", 1)])
        .await;
    let mut publ = RawClient::connect(addr, "overlap-pub").await;
    publ.publish("ov/a/t", b"x", 2, false, 1).await;
    let got = sub.recv_publishes_acked(1).await;
    assert_eq!(got[0].qos, QoS::ExactlyOnce);
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn messages_from_one_client_arrive_in_order() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "order/t", 1).await;
    let mut publ = RawClient::connect(addr, "order-pub").await;
    for i in 0..100u16 {
        publ.send(&publish(
            "order/t",
            format!("{i}").as_bytes(),
            1,
            false,
            false,
            i + 1,
        ))
        .await;
    }
    let got = sub.recv_publishes_acked(100).await;
    let nums: Vec<String> = got
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect();
    let want: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    assert_eq!(nums, want);
    for i in 0..100u16 {
        publ.expect(Packet::PubAck(i + 1)).await;
    }
}

#[tokio::test]
async fn rumqttc_messages_of_mixed_qos_keep_their_order() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = Rumq::connect_to(addr, "mixed-sub").await;
    sub.subscribe("mixed/t", RQoS::ExactlyOnce).await;
    let publ = Rumq::connect_to(addr, "mixed-pub").await;
    let qos = [RQoS::AtLeastOnce, RQoS::ExactlyOnce];
    for i in 0..20usize {
        publ.client
            .publish("mixed/t", qos[i % 2], false, i.to_string())
            .await
            .expect("publish request");
    }
    for i in 0..20usize {
        let p = sub.next_publish().await;
        assert_eq!(p.payload, i.to_string().as_bytes());
        assert_eq!(p.qos, qos[i % 2]);
    }
}

#[tokio::test]
async fn plus_wildcard_matches_exactly_one_level() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "plus/+/t", 0).await;
    let mut publ = RawClient::connect(addr, "plus-pub").await;
    for topic in ["plus/a/t", "plus/a/b/t", "plus/t", "plus//t", "plus/a/t/x"] {
        publ.publish(topic, topic.as_bytes(), 0, false, 0).await;
    }
    publ.ping().await;
    let a = sub.recv_publish().await;
    let b = sub.recv_publish().await;
    assert_eq!(
        (a.topic.as_str(), b.topic.as_str()),
        ("plus/a/t", "plus//t")
    );
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn hash_wildcard_matches_the_parent_and_every_level_below() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "hash/#", 0).await;
    let mut publ = RawClient::connect(addr, "hash-pub").await;
    for topic in ["hash", "hash/a", "hash/a/b/c", "hashx", "other/hash"] {
        publ.publish(topic, b"", 0, false, 0).await;
    }
    let mut topics = Vec::new();
    for _ in 0..3 {
        topics.push(sub.recv_publish().await.topic);
    }
    assert_eq!(topics, ["hash", "hash/a", "hash/a/b/c"]);
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn sys_topics_are_not_matched_by_leading_wildcards() {
    let broker = start_with(|c| c.sys_interval_secs = 1).await;
    let addr = broker.local_addr();
    let mut all = RawClient::connect(addr, "dollar-all").await;
    all.subscribe(1, &[("#", 0), ("+/broker/#", 0), ("+/+/uptime", 0)])
        .await;
    let mut explicit = RawClient::subscriber(addr, "$SYS/broker/uptime", 0).await;
    let p = explicit.recv_publish().await;
    assert_eq!(p.topic, "$SYS/broker/uptime");
    let mut publ = RawClient::connect(addr, "dollar-pub").await;
    publ.publish("plain/info", b"plain", 0, false, 0).await;
    let p = all.recv_publish().await;
    assert_eq!(
        p.topic, "plain/info",
        "wildcards must not match $SYS topics"
    );
    // A whole interval passes without a $SYS message reaching the wildcards.
    all.expect_nothing(Duration::from_millis(1200)).await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::connect(addr, "unsub").await;
    sub.subscribe(1, &[("unsub/a", 0), ("unsub/b", 0)]).await;
    sub.unsubscribe(2, &["unsub/a"]).await;
    let mut publ = RawClient::connect(addr, "unsub-pub").await;
    publ.publish("unsub/a", b"a", 0, false, 0).await;
    publ.publish("unsub/b", b"b", 0, false, 0).await;
    let p = sub.recv_publish().await;
    assert_eq!(p.topic, "unsub/b");
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn unsubscribe_of_an_unknown_filter_still_gets_unsuback() {
    let broker = start().await;
    let mut c = RawClient::connect(broker.local_addr(), "unsub-unknown").await;
    c.unsubscribe(4, &["never/subscribed"]).await;
}

#[tokio::test]
async fn denied_filter_gets_suback_0x80_and_no_messages() {
    let broker = start_with(|c| c.deny_subscribe = vec!["secret/#".to_string()]).await;
    let addr = broker.local_addr();
    let mut sub = RawClient::connect(addr, "snoop").await;
    let codes = sub.subscribe(1, &[("secret/#", 1), ("public/t", 1)]).await;
    assert_eq!(
        codes,
        vec![
            SubscribeReturnCode::Failure,
            SubscribeReturnCode::Success(QoS::AtLeastOnce)
        ]
    );
    let mut publ = RawClient::connect(addr, "secret-pub").await;
    publ.publish("secret/x", b"hidden", 0, false, 0).await;
    publ.publish("public/t", b"open", 0, false, 0).await;
    let p = sub.recv_publish_acked().await;
    assert_eq!(p.topic, "public/t");
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn filter_inside_a_denied_filter_is_denied_too() {
    let broker = start_with(|c| c.deny_subscribe = vec!["secret/#".to_string()]).await;
    let mut sub = RawClient::connect(broker.local_addr(), "snoop-inner").await;
    let codes = sub
        .subscribe(1, &[("secret/a", 0), ("secret/+/b", 0), ("secretive", 0)])
        .await;
    assert_eq!(
        codes,
        vec![
            SubscribeReturnCode::Failure,
            SubscribeReturnCode::Failure,
            SubscribeReturnCode::Success(QoS::AtMostOnce),
        ]
    );
}

#[tokio::test]
async fn handle_publish_reaches_mqtt_subscribers() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "handle/out", 1).await;
    broker
        .handle()
        .publish(
            "handle/out",
            Bytes::from("from-handle"),
            QoS::AtLeastOnce,
            false,
        )
        .await
        .expect("handle publish");
    let p = sub.recv_publish_acked().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..], p.qos),
        ("handle/out", &b"from-handle"[..], QoS::AtLeastOnce)
    );
}

#[tokio::test]
async fn mqtt_publish_reaches_a_handle_subscriber() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut hsub = broker
        .handle()
        .subscribe("handle/in/#", QoS::ExactlyOnce)
        .await
        .expect("handle subscribe");
    let mut publ = RawClient::connect(addr, "to-handle").await;
    publ.publish("handle/in/x", b"hi", 2, false, 1).await;
    let m = wait_for("handle subscriber message", hsub.recv())
        .await
        .expect("subscription open");
    assert_eq!(
        (&*m.topic, &m.payload[..], m.qos),
        ("handle/in/x", &b"hi"[..], QoS::ExactlyOnce)
    );
}

#[tokio::test]
async fn sys_topics_are_published_and_retained_every_interval() {
    let broker = start_with(|c| c.sys_interval_secs = 1).await;
    let addr = broker.local_addr();
    let mut first = RawClient::subscriber(addr, "$SYS/broker/uptime", 0).await;
    first.recv_publish().await;
    let mut late = RawClient::connect(addr, "sys-late").await;
    late.subscribe(1, &[("$SYS/#", 0)]).await;
    let want = [
        "$SYS/broker/clients/connected",
        "$SYS/broker/messages/received",
        "$SYS/broker/messages/sent",
        "$SYS/broker/bytes/received",
        "$SYS/broker/bytes/sent",
        "$SYS/broker/uptime",
        "$SYS/broker/version",
    ];
    let mut seen = std::collections::HashMap::new();
    wait_for("every $SYS topic", async {
        while seen.len() < want.len() {
            let p = late.recv_publish().await;
            if want.contains(&p.topic.as_str()) && p.retain {
                seen.insert(p.topic.clone(), p.payload.clone());
            }
        }
    })
    .await;
    let connected: u64 = String::from_utf8_lossy(&seen["$SYS/broker/clients/connected"])
        .trim()
        .parse()
        .expect("clients/connected is a number");
    assert!(
        connected >= 1,
        "at least the first subscriber was connected"
    );
    assert!(!seen["$SYS/broker/version"].is_empty());
    // The topics keep coming at the interval to subscribers already there.
    let again = wait_for("a second update", async {
        loop {
            let p = first.recv_publish().await;
            if p.topic == "$SYS/broker/uptime" {
                return p;
            }
        }
    })
    .await;
    assert!(
        !again.retain,
        "an update to an existing subscriber has retain=0"
    );
}

#[tokio::test]
async fn resubscribing_the_same_filter_replaces_its_qos_and_resends_retained() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut publ = RawClient::connect(addr, "resub-pub").await;
    publ.publish("resub/t", b"kept", 2, true, 1).await;
    let mut sub = RawClient::connect(addr, "resub").await;
    sub.subscribe(1, &[("resub/t", 0)]).await;
    let p = sub.recv_publish().await;
    assert_eq!(p.qos, QoS::AtMostOnce);
    let codes = sub.subscribe(2, &[("resub/t", 2)]).await;
    assert_eq!(codes, vec![SubscribeReturnCode::Success(QoS::ExactlyOnce)]);
    let again = sub.recv_publishes_acked(1).await;
    assert!(
        again[0].retain,
        "retained message sent again on resubscribe"
    );
    publ.publish("resub/t", b"live", 2, false, 2).await;
    let live = sub.recv_publishes_acked(1).await;
    assert_eq!(
        live[0].qos,
        QoS::ExactlyOnce,
        "the new QoS replaced the old one"
    );
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn outgoing_packet_ids_in_flight_are_distinct_and_non_zero() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::connect(addr, "ids").await;
    sub.subscribe(1, &[("ids/1", 1), ("ids/2", 2)]).await;
    let mut publ = RawClient::connect(addr, "ids-pub").await;
    for i in 0..20u16 {
        let topic = if i % 2 == 0 { "ids/1" } else { "ids/2" };
        publ.publish(topic, b"x", 2, false, i + 1).await;
    }
    let mut ids = std::collections::HashSet::new();
    for _ in 0..20 {
        let p = sub.recv_publish().await;
        assert_ne!(p.pkid, 0);
        assert!(
            ids.insert(p.pkid),
            "packet id {} reused while in flight",
            p.pkid
        );
    }
}
