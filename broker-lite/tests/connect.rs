//! CONNECT handling, takeover and keep-alive, on raw sockets and with rumqttc.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mqtt_proto::codec::{ConnectReturnCode, Packet, QoS, SubscribeReturnCode};

#[tokio::test]
async fn connect_with_wrong_protocol_name_is_closed_without_connack() {
    let broker = start().await;
    let mut c = RawClient::tcp(broker.local_addr()).await;
    let mut connect = ConnectBytes::new("wrong-name");
    connect.protocol_name = b"MQTX".to_vec();
    c.send(&connect.encode()).await;
    c.expect_closed().await;
    assert_serves_new_client(broker.local_addr()).await;
}

#[tokio::test]
async fn connect_with_unknown_protocol_level_gets_connack_1_then_close() {
    let broker = start().await;
    let mut c = RawClient::tcp(broker.local_addr()).await;
    let mut connect = ConnectBytes::new("level-5");
    connect.level = 5;
    c.send(&connect.encode()).await;
    let got = c.packets_until_closed().await;
    assert_eq!(
        got,
        vec![Packet::ConnAck(mqtt_proto::codec::ConnAck {
            session_present: false,
            code: ConnectReturnCode::UnacceptableProtocolVersion,
        })]
    );
}

#[tokio::test]
async fn connect_with_mqtt_3_1_protocol_name_and_level_3_is_accepted() {
    let broker = start().await;
    let mut connect = ConnectBytes::new("old-client");
    connect.protocol_name = b"MQIsdp".to_vec();
    connect.level = 3;
    let (mut c, ack) = RawClient::handshake(broker.local_addr(), &connect).await;
    assert_eq!(ack.code, ConnectReturnCode::Accepted);
    c.ping().await;
}

#[tokio::test]
async fn empty_client_id_with_persistent_session_gets_connack_2_then_close() {
    let broker = start().await;
    let connect = ConnectBytes::new("").clean(false);
    let mut c = RawClient::tcp(broker.local_addr()).await;
    c.send(&connect.encode()).await;
    let got = c.packets_until_closed().await;
    assert_eq!(
        got,
        vec![Packet::ConnAck(mqtt_proto::codec::ConnAck {
            session_present: false,
            code: ConnectReturnCode::IdentifierRejected,
        })]
    );
}

#[tokio::test]
async fn empty_client_id_with_clean_session_is_accepted_with_a_generated_id() {
    let broker = start().await;
    let addr = broker.local_addr();
    let (mut a, present_a) = RawClient::connect_with(addr, &ConnectBytes::new("")).await;
    let (mut b, present_b) = RawClient::connect_with(addr, &ConnectBytes::new("")).await;
    assert!(
        !present_a && !present_b,
        "a clean session has no session present"
    );
    // Two clients without an id get different ids: neither takes the other over.
    a.subscribe(1, &[("anon/t", 1)]).await;
    b.publish("anon/t", b"hello", 1, false, 1).await;
    let p = a.recv_publish_acked().await;
    assert_eq!(&p.payload[..], b"hello");
    a.ping().await;
    b.ping().await;
}

#[tokio::test]
async fn first_packet_not_connect_closes_the_connection() {
    let broker = start().await;
    let mut c = RawClient::tcp(broker.local_addr()).await;
    c.send(&PINGREQ).await;
    c.expect_closed().await;
}

#[tokio::test]
async fn publish_before_connect_closes_the_connection_and_is_not_delivered() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut sub = RawClient::subscriber(addr, "early/#", 0).await;
    let mut c = RawClient::tcp(addr).await;
    c.send(&publish("early/x", b"sneaky", 0, false, false, 0))
        .await;
    c.expect_closed().await;
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn no_connect_within_connect_timeout_closes_the_connection() {
    let broker = start_with(|c| c.limits.connect_timeout_secs = 1).await;
    let mut c = RawClient::tcp(broker.local_addr()).await;
    let started = Instant::now();
    c.expect_closed().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}, before the 1 s connect timeout"
    );
}

#[tokio::test]
async fn connected_client_is_not_closed_by_the_connect_timeout() {
    let broker = start_with(|c| c.limits.connect_timeout_secs = 1).await;
    let mut c = RawClient::connect(broker.local_addr(), "patient").await;
    c.expect_nothing(Duration::from_millis(1500)).await;
    c.ping().await;
}

#[tokio::test]
async fn second_connect_closes_the_connection_and_publishes_the_will() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut watcher = RawClient::subscriber(addr, "will/second", 0).await;
    let connect = ConnectBytes::new("twice").will("will/second", b"gone", 0, false);
    let (mut c, _) = RawClient::connect_with(addr, &connect).await;
    c.send(&ConnectBytes::new("twice").encode()).await;
    c.expect_closed().await;
    let will = watcher.recv_publish().await;
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("will/second", &b"gone"[..])
    );
}

#[tokio::test]
async fn same_client_id_again_closes_the_old_connection_and_publishes_its_will() {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut watcher = RawClient::subscriber(addr, "will/takeover", 1).await;
    let first = ConnectBytes::new("dup-id").will("will/takeover", b"old", 1, false);
    let (mut old, _) = RawClient::connect_with(addr, &first).await;
    let (mut new, _) = RawClient::connect_with(addr, &ConnectBytes::new("dup-id")).await;
    old.expect_closed().await;
    let will = watcher.recv_publish_acked().await;
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("will/takeover", &b"old"[..])
    );
    new.ping().await;
}

#[tokio::test]
async fn taken_over_client_no_longer_gets_messages_and_the_new_one_does() {
    let broker = start().await;
    let addr = broker.local_addr();
    let (mut old, _) = RawClient::connect_with(addr, &ConnectBytes::new("move").clean(false)).await;
    old.subscribe(1, &[("move/t", 1)]).await;
    let (mut new, present) =
        RawClient::connect_with(addr, &ConnectBytes::new("move").clean(false)).await;
    assert!(
        present,
        "the persistent session moves to the new connection"
    );
    old.expect_closed().await;
    let mut p = RawClient::connect(addr, "move-pub").await;
    p.publish("move/t", b"to-new", 1, false, 1).await;
    let got = new.recv_publish_acked().await;
    assert_eq!(&got.payload[..], b"to-new");
}

#[tokio::test]
async fn client_sending_a_server_only_packet_is_disconnected() {
    let broker = start().await;
    let mut c = RawClient::connect(broker.local_addr(), "rude").await;
    c.send(&[0x20, 0x02, 0x00, 0x00]).await;
    c.expect_closed().await;
}

#[tokio::test]
async fn pingreq_gets_pingresp() {
    let broker = start().await;
    let mut c = RawClient::connect(broker.local_addr(), "pinger").await;
    c.send(&PINGREQ).await;
    c.expect(Packet::PingResp).await;
}

#[tokio::test]
async fn client_silent_past_one_and_a_half_keep_alive_is_disconnected() {
    let broker = start().await;
    let connect = ConnectBytes::new("silent").keep_alive(1);
    let (mut c, _) = RawClient::connect_with(broker.local_addr(), &connect).await;
    let started = Instant::now();
    c.expect_closed().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1000) && waited <= Duration::from_millis(3000),
        "closed after {waited:?}; expected about 1.5 s for keep-alive 1 s"
    );
}

#[tokio::test]
async fn client_pinging_within_keep_alive_stays_connected() {
    let broker = start().await;
    let connect = ConnectBytes::new("lively").keep_alive(1);
    let (mut c, _) = RawClient::connect_with(broker.local_addr(), &connect).await;
    for _ in 0..5 {
        c.expect_nothing(Duration::from_millis(700)).await;
        c.ping().await;
    }
}

#[tokio::test]
async fn keep_alive_zero_means_no_timeout() {
    let broker = start().await;
    let (mut c, _) =
        RawClient::connect_with(broker.local_addr(), &ConnectBytes::new("forever")).await;
    c.expect_nothing(Duration::from_millis(2000)).await;
    c.ping().await;
}

#[tokio::test]
async fn connection_counters_follow_connects_and_disconnects() {
    let broker = start().await;
    let addr = broker.local_addr();
    let a = RawClient::connect(addr, "count-a").await;
    let b = RawClient::connect(addr, "count-b").await;
    wait_until("two connections counted", || {
        broker.metrics().snapshot().connections_current == 2
    })
    .await;
    a.disconnect().await;
    b.disconnect().await;
    wait_until("no connection left", || {
        broker.metrics().snapshot().connections_current == 0
    })
    .await;
    assert!(broker.metrics().snapshot().connections_total >= 2);
}

#[tokio::test]
async fn rumqttc_client_connects_subscribes_and_disconnects() {
    let broker = start().await;
    let mut c = Rumq::connect_to(broker.local_addr(), "rumq-basic").await;
    let ack = c.subscribe("basic/#", rumqttc::QoS::AtLeastOnce).await;
    assert_eq!(
        ack.return_codes,
        vec![rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtLeastOnce
        )]
    );
    c.client.disconnect().await.expect("disconnect request");
    wait_until("the broker sees the disconnect", || {
        broker.metrics().snapshot().connections_current == 0
    })
    .await;
}

#[tokio::test]
async fn subscribe_return_codes_grant_the_requested_qos() {
    let broker = start().await;
    let mut c = RawClient::connect(broker.local_addr(), "granted").await;
    let codes = c.subscribe(3, &[("g/0", 0), ("g/1", 1), ("g/2", 2)]).await;
    assert_eq!(
        codes,
        vec![
            SubscribeReturnCode::Success(QoS::AtMostOnce),
            SubscribeReturnCode::Success(QoS::AtLeastOnce),
            SubscribeReturnCode::Success(QoS::ExactlyOnce),
        ]
    );
}
