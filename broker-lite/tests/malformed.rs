//! One test per packet validation rule: the broker closes the connection, counts
//! a malformed packet, publishes the will of a connected client, and keeps serving.

mod common;

use broker_lite::Broker;
use common::*;

/// Wait until `malformed_packets` is above `before`.
async fn assert_counted(broker: &Broker, before: u64) {
    wait_until("malformed_packets to go up", || {
        broker.metrics().snapshot().malformed_packets > before
    })
    .await;
}

/// Send `bytes` as the first packet of a connection: closed without CONNACK, counted.
async fn rejected_as_connect(bytes: &[u8]) {
    let broker = start().await;
    let addr = broker.local_addr();
    let before = broker.metrics().snapshot().malformed_packets;
    let mut c = RawClient::tcp(addr).await;
    c.send(bytes).await;
    c.expect_closed().await;
    assert_counted(&broker, before).await;
    assert_serves_new_client(addr).await;
}

/// Send `bytes` after a CONNECT with a will: closed, counted, will published.
async fn rejected_after_connect(bytes: &[u8]) {
    let broker = start().await;
    let addr = broker.local_addr();
    let mut watcher = RawClient::subscriber(addr, "will/malformed", 0).await;
    let connect = ConnectBytes::new("offender").will("will/malformed", b"broken", 0, false);
    let (mut c, _) = RawClient::connect_with(addr, &connect).await;
    let before = broker.metrics().snapshot().malformed_packets;
    c.send(bytes).await;
    c.expect_closed().await;
    assert_counted(&broker, before).await;
    let will = watcher.recv_publish().await;
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("will/malformed", &b"broken"[..])
    );
    assert_serves_new_client(addr).await;
}

/// A PUBLISH body: topic bytes with their length, packet id, payload.
fn publish_body(topic: &[u8], pkid: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut body = mqtt_bytes(topic);
    if let Some(id) = pkid {
        body.extend(id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    body
}

// ---------------------------------------------------------------- PUBLISH

#[tokio::test]
async fn publish_with_qos_3_is_malformed() {
    rejected_after_connect(&frame(0x36, &publish_body(b"a/b", Some(1), b"x"))).await;
}

#[tokio::test]
async fn publish_with_dup_and_qos_0_is_malformed() {
    rejected_after_connect(&frame(0x38, &publish_body(b"a/b", None, b"x"))).await;
}

#[tokio::test]
async fn publish_topic_with_plus_wildcard_is_malformed() {
    rejected_after_connect(&publish("a/+/b", b"x", 0, false, false, 0)).await;
}

#[tokio::test]
async fn publish_topic_with_hash_wildcard_is_malformed() {
    rejected_after_connect(&publish("a/#", b"x", 1, false, false, 1)).await;
}

#[tokio::test]
async fn publish_topic_with_invalid_utf8_is_malformed() {
    rejected_after_connect(&frame(0x30, &publish_body(b"a/\xff\xfe", None, b"x"))).await;
}

#[tokio::test]
async fn publish_topic_with_utf16_surrogate_encoding_is_malformed() {
    rejected_after_connect(&frame(0x30, &publish_body(b"a/\xed\xa0\x80", None, b"x"))).await;
}

#[tokio::test]
async fn publish_topic_with_null_character_is_malformed() {
    rejected_after_connect(&frame(0x30, &publish_body(b"a/\x00b", None, b"x"))).await;
}

#[tokio::test]
async fn publish_with_empty_topic_is_malformed() {
    rejected_after_connect(&frame(0x30, &publish_body(b"", None, b"x"))).await;
}

#[tokio::test]
async fn publish_qos1_with_packet_id_0_is_malformed() {
    rejected_after_connect(&frame(0x32, &publish_body(b"a/b", Some(0), b"x"))).await;
}

#[tokio::test]
async fn publish_qos2_with_packet_id_0_is_malformed() {
    rejected_after_connect(&frame(0x34, &publish_body(b"a/b", Some(0), b"x"))).await;
}

#[tokio::test]
async fn publish_with_topic_length_past_the_body_is_malformed() {
    rejected_after_connect(&frame(0x30, &[0x00, 0x0A, b'a', b'b'])).await;
}

#[tokio::test]
async fn publish_qos1_without_room_for_the_packet_id_is_malformed() {
    rejected_after_connect(&frame(0x32, &[0x00, 0x01, b'a', 0x00])).await;
}

// ---------------------------------------------------------------- fixed header

#[tokio::test]
async fn remaining_length_over_4_bytes_is_malformed() {
    rejected_after_connect(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).await;
}

#[tokio::test]
async fn reserved_packet_type_0_is_malformed() {
    rejected_after_connect(&[0x00, 0x00]).await;
}

#[tokio::test]
async fn reserved_packet_type_15_is_malformed() {
    rejected_after_connect(&[0xF0, 0x00]).await;
}

#[tokio::test]
async fn pubrel_with_reserved_flags_0_is_malformed() {
    rejected_after_connect(&frame(0x60, &[0x00, 0x01])).await;
}

#[tokio::test]
async fn puback_with_reserved_flag_bits_set_is_malformed() {
    rejected_after_connect(&frame(0x42, &[0x00, 0x01])).await;
}

#[tokio::test]
async fn pingreq_with_reserved_flag_bit_set_is_malformed() {
    rejected_after_connect(&[0xC1, 0x00]).await;
}

#[tokio::test]
async fn disconnect_with_reserved_flag_bit_set_is_malformed_and_publishes_the_will() {
    rejected_after_connect(&[0xE1, 0x00]).await;
}

#[tokio::test]
async fn pingreq_with_a_body_is_malformed() {
    rejected_after_connect(&[0xC0, 0x01, 0x00]).await;
}

#[tokio::test]
async fn puback_with_a_truncated_packet_id_is_malformed() {
    rejected_after_connect(&frame(0x40, &[0x01])).await;
}

// ---------------------------------------------------------------- CONNECT

#[tokio::test]
async fn connect_with_reserved_flag_bit_set_is_malformed() {
    let mut c = ConnectBytes::new("reserved");
    c.flags_override = Some(0x03);
    rejected_as_connect(&c.encode()).await;
}

#[tokio::test]
async fn connect_with_fixed_header_flags_set_is_malformed() {
    let mut bytes = ConnectBytes::new("hdr-flags").encode();
    bytes[0] = 0x11;
    rejected_as_connect(&bytes).await;
}

#[tokio::test]
async fn connect_with_password_without_user_name_is_malformed() {
    let mut c = ConnectBytes::new("pw-only");
    c.password = Some(b"secret".to_vec());
    rejected_as_connect(&c.encode()).await;
}

#[tokio::test]
async fn connect_with_will_qos_3_is_malformed() {
    let c = ConnectBytes::new("will-q3").will("w/t", b"x", 3, false);
    rejected_as_connect(&c.encode()).await;
}

#[tokio::test]
async fn connect_with_will_qos_but_no_will_flag_is_malformed() {
    let mut c = ConnectBytes::new("will-qos-no-flag");
    c.flags_override = Some(0x02 | 0x08);
    rejected_as_connect(&c.encode()).await;
}

#[tokio::test]
async fn connect_with_will_retain_but_no_will_flag_is_malformed() {
    let mut c = ConnectBytes::new("will-retain-no-flag");
    c.flags_override = Some(0x02 | 0x20);
    rejected_as_connect(&c.encode()).await;
}

#[tokio::test]
async fn connect_with_invalid_utf8_client_id_is_malformed() {
    let mut c = ConnectBytes::new("");
    c.client_id = b"id\xc3\x28".to_vec();
    rejected_as_connect(&c.encode()).await;
}

#[tokio::test]
async fn connect_with_null_character_in_client_id_is_malformed() {
    let mut c = ConnectBytes::new("");
    c.client_id = b"id\x00x".to_vec();
    rejected_as_connect(&c.encode()).await;
}

#[tokio::test]
async fn connect_with_user_name_flag_but_no_user_name_is_malformed() {
    let mut c = ConnectBytes::new("user-missing");
    c.flags_override = Some(0x02 | 0x80);
    rejected_as_connect(&c.encode()).await;
}

#[tokio::test]
async fn connect_with_will_flag_but_no_will_fields_is_malformed() {
    let mut c = ConnectBytes::new("will-missing");
    c.flags_override = Some(0x02 | 0x04);
    rejected_as_connect(&c.encode()).await;
}

#[tokio::test]
async fn connect_truncated_before_the_client_id_is_malformed() {
    let mut body = mqtt_str("MQTT");
    body.extend([4, 0x02, 0, 0]);
    rejected_as_connect(&frame(0x10, &body)).await;
}

#[tokio::test]
async fn connect_with_remaining_length_over_4_bytes_is_malformed() {
    rejected_as_connect(&[0x10, 0x80, 0x80, 0x80, 0x80, 0x01]).await;
}

// ---------------------------------------------------------------- SUBSCRIBE

#[tokio::test]
async fn subscribe_with_no_filters_is_malformed() {
    rejected_after_connect(&frame(0x82, &[0x00, 0x01])).await;
}

#[tokio::test]
async fn subscribe_with_reserved_qos_bits_set_is_malformed() {
    rejected_after_connect(&subscribe(1, &[("a/b", 0x04)])).await;
}

#[tokio::test]
async fn subscribe_with_qos_3_is_malformed() {
    rejected_after_connect(&subscribe(1, &[("a/b", 3)])).await;
}

#[tokio::test]
async fn subscribe_with_reserved_header_flags_0_is_malformed() {
    let mut bytes = subscribe(1, &[("a/b", 0)]);
    bytes[0] = 0x80;
    rejected_after_connect(&bytes).await;
}

#[tokio::test]
async fn subscribe_with_packet_id_0_is_malformed() {
    rejected_after_connect(&subscribe(0, &[("a/b", 0)])).await;
}

#[tokio::test]
async fn subscribe_with_hash_not_last_is_malformed() {
    rejected_after_connect(&subscribe(1, &[("a/#/b", 0)])).await;
}

#[tokio::test]
async fn subscribe_with_hash_inside_a_level_is_malformed() {
    rejected_after_connect(&subscribe(1, &[("a/b#", 0)])).await;
}

#[tokio::test]
async fn subscribe_with_plus_inside_a_level_is_malformed() {
    rejected_after_connect(&subscribe(1, &[("a+/b", 0)])).await;
}

#[tokio::test]
async fn subscribe_with_empty_filter_is_malformed() {
    rejected_after_connect(&subscribe(1, &[("", 0)])).await;
}

#[tokio::test]
async fn subscribe_with_invalid_utf8_filter_is_malformed() {
    let mut body = vec![0x00, 0x01];
    body.extend(mqtt_bytes(b"a/\xff"));
    body.push(0);
    rejected_after_connect(&frame(0x82, &body)).await;
}

#[tokio::test]
async fn subscribe_missing_the_qos_byte_is_malformed() {
    let mut body = vec![0x00, 0x01];
    body.extend(mqtt_str("a/b"));
    rejected_after_connect(&frame(0x82, &body)).await;
}

// ---------------------------------------------------------------- UNSUBSCRIBE

#[tokio::test]
async fn unsubscribe_with_no_filters_is_malformed() {
    rejected_after_connect(&frame(0xA2, &[0x00, 0x01])).await;
}

#[tokio::test]
async fn unsubscribe_with_reserved_header_flags_0_is_malformed() {
    let mut bytes = unsubscribe(1, &["a/b"]);
    bytes[0] = 0xA0;
    rejected_after_connect(&bytes).await;
}

#[tokio::test]
async fn unsubscribe_with_invalid_filter_is_malformed() {
    rejected_after_connect(&unsubscribe(1, &["a/#/b"])).await;
}

#[tokio::test]
async fn unsubscribe_with_packet_id_0_is_malformed() {
    rejected_after_connect(&unsubscribe(0, &["a/b"])).await;
}
