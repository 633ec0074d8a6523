//! Byte-literal tests per packet type, one test per validation rule, and framing
//! fed in chunks split at every position.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::topic::TopicError;

const MAX: usize = 1 << 20;

/// Decode `bytes` as one whole packet through the framer.
fn read_one(bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = read_packet(&mut buf, MAX)?.expect("a whole packet");
    assert!(buf.is_empty(), "bytes left after the packet: {buf:?}");
    Ok(packet)
}

fn error_of(bytes: &[u8]) -> DecodeError {
    let mut buf = BytesMut::from(bytes);
    match read_packet(&mut buf, MAX) {
        Err(e) => e,
        other => panic!("expected an error for {bytes:02x?}, got {other:?}"),
    }
}

/// `bytes` decode to `packet`, and `packet` encodes to exactly `bytes`.
fn assert_wire_form(bytes: &[u8], packet: Packet) {
    assert_eq!(read_one(bytes), Ok(packet.clone()));
    let mut out = BytesMut::new();
    encode(&packet, &mut out);
    assert_eq!(&out[..], bytes, "encoding of {packet:?}");
    assert_eq!(encoded_len(&packet), bytes.len());
}

fn connect_full() -> (Vec<u8>, Packet) {
    let mut bytes = vec![0x10, 31, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xEE, 0, 60];
    bytes.extend_from_slice(&[
        0, 2, b'c', b'1', 0, 3, b'w', b'/', b't', 0, 3, b'b', b'y', b'e',
    ]);
    bytes.extend_from_slice(&[0, 1, b'u', 0, 2, 0xFF, 0x00]);
    let packet = Packet::Connect(Connect {
        protocol_level: 4,
        clean_session: true,
        keep_alive: 60,
        client_id: "c1".into(),
        will: Some(LastWill {
            topic: "w/t".into(),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(&[0xFF, 0x00])),
    });
    (bytes, packet)
}

/// A minimal CONNECT body with the given protocol name, level and flags, client id "x".
fn connect_bytes(name: &[u8], level: u8, flags: u8, tail: &[u8]) -> Vec<u8> {
    let mut body = vec![0, name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(&[level, flags, 0, 10, 0, 1, b'x']);
    body.extend_from_slice(tail);
    let mut bytes = vec![0x10, body.len() as u8];
    bytes.extend_from_slice(&body);
    bytes
}

/// One valid packet of each of the 14 types, with its wire form.
fn one_of_each() -> Vec<(Vec<u8>, Packet)> {
    let publish = |dup, qos, retain, topic: &str, pkid, payload: &'static [u8]| {
        Packet::Publish(Publish {
            dup,
            qos,
            retain,
            topic: topic.into(),
            pkid,
            payload: Bytes::from_static(payload),
        })
    };
    vec![
        connect_full(),
        (
            vec![0x20, 2, 0x01, 0x00],
            Packet::ConnAck(ConnAck {
                session_present: true,
                code: ConnectReturnCode::Accepted,
            }),
        ),
        (
            vec![0x31, 7, 0, 3, b'a', b'/', b'b', b'h', b'i'],
            publish(false, QoS::AtMostOnce, true, "a/b", 0, b"hi"),
        ),
        (
            vec![0x3A, 9, 0, 3, b'a', b'/', b'b', 0x12, 0x34, b'h', b'i'],
            publish(true, QoS::AtLeastOnce, false, "a/b", 0x1234, b"hi"),
        ),
        (
            vec![0x34, 5, 0, 1, b't', 0, 1],
            publish(false, QoS::ExactlyOnce, false, "t", 1, b""),
        ),
        (vec![0x40, 2, 0, 1], Packet::PubAck(1)),
        (vec![0x50, 2, 0xFF, 0xFF], Packet::PubRec(0xFFFF)),
        (vec![0x62, 2, 0, 2], Packet::PubRel(2)),
        (vec![0x70, 2, 1, 0], Packet::PubComp(256)),
        (
            vec![0x82, 12, 0, 10, 0, 3, b'a', b'/', b'+', 1, 0, 1, b'#', 2],
            Packet::Subscribe(Subscribe {
                pkid: 10,
                filters: vec![
                    ("a/+".into(), QoS::AtLeastOnce),
                    ("#".into(), QoS::ExactlyOnce),
                ],
            }),
        ),
        (
            vec![0x90, 5, 0, 10, 0, 2, 0x80],
            Packet::SubAck(SubAck {
                pkid: 10,
                return_codes: vec![
                    SubscribeReturnCode::Success(QoS::AtMostOnce),
                    SubscribeReturnCode::Success(QoS::ExactlyOnce),
                    SubscribeReturnCode::Failure,
                ],
            }),
        ),
        (
            vec![0xA2, 10, 0, 11, 0, 3, b'a', b'/', b'+', 0, 1, b'#'],
            Packet::Unsubscribe(Unsubscribe {
                pkid: 11,
                filters: vec!["a/+".into(), "#".into()],
            }),
        ),
        (vec![0xB0, 2, 0, 11], Packet::UnsubAck(11)),
        (vec![0xC0, 0], Packet::PingReq),
        (vec![0xD0, 0], Packet::PingResp),
        (vec![0xE0, 0], Packet::Disconnect),
    ]
}

#[test]
fn every_packet_type_decodes_from_and_encodes_to_its_byte_literal() {
    let cases = one_of_each();
    let mut kinds: Vec<&str> = cases.iter().map(|(_, p)| p.name()).collect();
    kinds.dedup();
    assert_eq!(kinds.len(), 14);
    for (bytes, packet) in cases {
        assert_wire_form(&bytes, packet);
    }
}

#[test]
fn connect_for_mqtt_3_1_uses_the_mqisdp_name() {
    let bytes = connect_bytes(b"MQIsdp", 3, 0x02, &[]);
    let packet = Packet::Connect(Connect {
        protocol_level: 3,
        clean_session: true,
        keep_alive: 10,
        client_id: "x".into(),
        will: None,
        username: None,
        password: None,
    });
    assert_wire_form(&bytes, packet);
}

#[test]
fn connack_with_each_return_code_round_trips() {
    use ConnectReturnCode::*;
    for (byte, code) in [
        (0, Accepted),
        (1, UnacceptableProtocolVersion),
        (2, IdentifierRejected),
        (3, ServerUnavailable),
        (4, BadUserNameOrPassword),
        (5, NotAuthorized),
    ] {
        let packet = Packet::ConnAck(ConnAck {
            session_present: false,
            code,
        });
        assert_wire_form(&[0x20, 2, 0, byte], packet);
    }
}

#[test]
fn remaining_length_uses_one_to_four_bytes_at_the_boundaries() {
    // The body of a QoS 0 PUBLISH to "t" is 3 bytes plus the payload.
    for (body_len, varint) in [
        (127usize, &[0x7F][..]),
        (128, &[0x80, 0x01]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
    ] {
        let payload = vec![7u8; body_len - 3];
        let mut out = BytesMut::new();
        encode_publish(&mut out, "t", &payload, QoS::AtMostOnce, false, false, 0);
        assert_eq!(out.len(), 1 + varint.len() + body_len);
        assert_eq!(
            &out[1..1 + varint.len()],
            varint,
            "body of {body_len} bytes"
        );
        match read_packet(&mut out, 4 << 20) {
            Ok(Some(Packet::Publish(p))) => assert_eq!(p.payload.len(), payload.len()),
            other => panic!("body of {body_len} bytes: {other:?}"),
        }
    }
}

#[test]
fn publish_payload_is_a_slice_of_the_read_buffer_not_a_copy() {
    let mut buf = BytesMut::from(&[0x30, 6, 0, 1, b't', b'a', b'b', b'c'][..]);
    let start = buf.as_ptr() as usize;
    let Ok(Some(Packet::Publish(p))) = read_packet(&mut buf, MAX) else {
        panic!("expected a PUBLISH");
    };
    assert_eq!(&p.payload[..], b"abc");
    assert_eq!(p.payload.as_ptr() as usize, start + 5);
}

#[test]
fn encode_publish_reserves_exactly_the_bytes_it_writes() {
    let payload = vec![1u8; 300];
    let packet = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "sensors/temp".into(),
        pkid: 9,
        payload: Bytes::from(payload.clone()),
    });
    let exact = encoded_len(&packet);
    let mut out = BytesMut::with_capacity(exact);
    let before = out.as_ptr();
    encode_publish(
        &mut out,
        "sensors/temp",
        &payload,
        QoS::AtLeastOnce,
        false,
        false,
        9,
    );
    assert_eq!(out.len(), exact);
    assert_eq!(out.as_ptr(), before, "encode_publish reallocated");

    let mut again = BytesMut::with_capacity(exact);
    let before = again.as_ptr();
    encode(&packet, &mut again);
    assert_eq!(again, out);
    assert_eq!(again.as_ptr(), before, "encode reallocated");
}

#[test]
fn encode_publish_clears_dup_at_qos_0_and_omits_the_packet_id() {
    let mut out = BytesMut::new();
    encode_publish(&mut out, "t", b"x", QoS::AtMostOnce, false, true, 77);
    assert_eq!(&out[..], &[0x30, 4, 0, 1, b't', b'x']);
}

// --- Framing -----------------------------------------------------------------

fn stream_of_all_types() -> (Vec<u8>, Vec<Packet>) {
    let mut bytes = Vec::new();
    let mut packets = Vec::new();
    for (b, p) in one_of_each() {
        bytes.extend_from_slice(&b);
        packets.push(p);
    }
    (bytes, packets)
}

fn drain(buf: &mut BytesMut, into: &mut Vec<Packet>) {
    loop {
        let len_before = buf.len();
        match read_packet(buf, MAX) {
            Ok(Some(p)) => into.push(p),
            Ok(None) => {
                assert_eq!(buf.len(), len_before, "Ok(None) consumed bytes");
                return;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}

#[test]
fn a_stream_split_at_any_position_yields_the_same_packets() {
    let (bytes, expected) = stream_of_all_types();
    for split in 0..=bytes.len() {
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        buf.extend_from_slice(&bytes[..split]);
        drain(&mut buf, &mut got);
        buf.extend_from_slice(&bytes[split..]);
        drain(&mut buf, &mut got);
        assert_eq!(got, expected, "split at {split}");
        assert!(buf.is_empty());
    }
}

#[test]
fn a_stream_fed_one_byte_at_a_time_yields_the_same_packets() {
    let (bytes, expected) = stream_of_all_types();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for byte in bytes {
        buf.extend_from_slice(&[byte]);
        drain(&mut buf, &mut got);
    }
    assert_eq!(got, expected);
}

#[test]
fn empty_buffer_needs_more_bytes() {
    assert_eq!(read_packet(&mut BytesMut::new(), MAX), Ok(None));
}

#[test]
fn oversized_packet_is_refused_as_soon_as_its_fixed_header_is_read() {
    // PUBLISH announcing 1000 body bytes, none of which has arrived.
    let mut buf = BytesMut::from(&[0x30, 0xE8, 0x07][..]);
    assert_eq!(
        read_packet(&mut buf, 100),
        Err(DecodeError::PacketTooLarge {
            size: 1003,
            max: 100
        })
    );
    let mut exact = BytesMut::from(&[0xC0, 0][..]);
    assert_eq!(read_packet(&mut exact, 2), Ok(Some(Packet::PingReq)));
}

#[test]
fn remaining_length_over_four_bytes_is_refused_without_waiting_for_the_body() {
    let mut partial = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF][..]);
    assert_eq!(read_packet(&mut partial, usize::MAX), Ok(None));
    let mut five = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..]);
    assert_eq!(
        read_packet(&mut five, usize::MAX),
        Err(DecodeError::RemainingLengthTooLong)
    );
}

// --- One test per validation rule ----------------------------------------------

#[test]
fn reserved_packet_types_0_and_15_are_refused() {
    assert_eq!(error_of(&[0x00, 0]), DecodeError::ReservedPacketType(0));
    assert_eq!(error_of(&[0xF0, 0]), DecodeError::ReservedPacketType(15));
    // Refused from the first byte alone.
    assert_eq!(error_of(&[0xF0]), DecodeError::ReservedPacketType(15));
}

#[test]
fn reserved_flag_bits_must_have_their_fixed_values() {
    for (header, packet) in [
        (0x11, "CONNECT"),
        (0x28, "CONNACK"),
        (0x41, "PUBACK"),
        (0x60, "PUBREL"),
        (0x63, "PUBREL"),
        (0x80, "SUBSCRIBE"),
        (0x92, "SUBACK"),
        (0xA0, "UNSUBSCRIBE"),
        (0xC1, "PINGREQ"),
        (0xE8, "DISCONNECT"),
    ] {
        let e = error_of(&[header]);
        assert_eq!(
            e,
            DecodeError::InvalidFlags {
                packet,
                flags: header & 0x0F
            }
        );
    }
}

#[test]
fn publish_with_qos_3_is_refused() {
    assert_eq!(
        error_of(&[0x36, 5, 0, 1, b't', 0, 1]),
        DecodeError::PublishQos3
    );
}

#[test]
fn publish_with_qos_0_and_dup_is_refused() {
    assert_eq!(
        error_of(&[0x38, 3, 0, 1, b't']),
        DecodeError::PublishDupWithQos0
    );
}

#[test]
fn body_shorter_than_its_fields_is_truncated() {
    let e = error_of(&[0x30, 3, 0, 5, b'a']);
    assert_eq!(
        e,
        DecodeError::Truncated {
            packet: "PUBLISH",
            field: "topic name"
        }
    );
    let e = error_of(&[0x32, 3, 0, 1, b'a']);
    assert_eq!(
        e,
        DecodeError::Truncated {
            packet: "PUBLISH",
            field: "packet identifier"
        }
    );
    let e = error_of(&[0x82, 5, 0, 1, 0, 1, b'a']);
    assert_eq!(
        e,
        DecodeError::Truncated {
            packet: "SUBSCRIBE",
            field: "requested QoS"
        }
    );
    let e = error_of(&connect_bytes(b"MQTT", 4, 0x80, &[]));
    assert_eq!(
        e,
        DecodeError::Truncated {
            packet: "CONNECT",
            field: "user name"
        }
    );
}

#[test]
fn fixed_size_packets_must_have_their_exact_remaining_length() {
    for (bytes, packet, expected) in [
        (&[0x40, 3, 0, 1, 0][..], "PUBACK", 2),
        (&[0x50, 1, 1], "PUBREC", 2),
        (&[0x62, 0], "PUBREL", 2),
        (&[0x70, 3, 0, 1, 9], "PUBCOMP", 2),
        (&[0xB0, 1, 1], "UNSUBACK", 2),
        (&[0x20, 3, 0, 0, 0], "CONNACK", 2),
        (&[0xC0, 1, 0], "PINGREQ", 0),
        (&[0xD0, 1, 0], "PINGRESP", 0),
        (&[0xE0, 1, 0], "DISCONNECT", 0),
    ] {
        let actual = usize::from(bytes[1]);
        assert_eq!(
            error_of(bytes),
            DecodeError::WrongRemainingLength {
                packet,
                expected,
                actual
            }
        );
    }
}

#[test]
fn bytes_after_the_last_connect_field_are_refused() {
    let e = error_of(&connect_bytes(b"MQTT", 4, 0x02, &[0xAA]));
    assert_eq!(
        e,
        DecodeError::TrailingBytes {
            packet: "CONNECT",
            extra: 1
        }
    );
}

#[test]
fn strings_must_be_well_formed_utf8() {
    // Overlong encoding of '/', then an encoded surrogate U+D800.
    for bad in [&[0xC0, 0xAF][..], &[0xED, 0xA0, 0x80]] {
        let mut bytes = vec![0x30, 2 + bad.len() as u8, 0, bad.len() as u8];
        bytes.extend_from_slice(bad);
        assert_eq!(
            error_of(&bytes),
            DecodeError::InvalidUtf8 {
                field: "topic name"
            }
        );
    }
    let e = error_of(&connect_bytes(b"MQTT", 4, 0x80, &[0, 1, 0xFF]));
    assert_eq!(e, DecodeError::InvalidUtf8 { field: "user name" });
}

#[test]
fn strings_must_not_contain_the_null_character() {
    let e = error_of(&[0x30, 5, 0, 3, b'a', 0, b'b']);
    assert_eq!(
        e,
        DecodeError::NullCharacter {
            field: "topic name"
        }
    );
    let e = error_of(&[0xA2, 5, 0, 1, 0, 1, 0]);
    assert_eq!(
        e,
        DecodeError::NullCharacter {
            field: "topic filter"
        }
    );
}

#[test]
fn packet_identifier_0_is_refused_in_every_packet_that_carries_one() {
    for (bytes, packet) in [
        (&[0x32, 5, 0, 1, b't', 0, 0][..], "PUBLISH"),
        (&[0x34, 5, 0, 1, b't', 0, 0], "PUBLISH"),
        (&[0x40, 2, 0, 0], "PUBACK"),
        (&[0x50, 2, 0, 0], "PUBREC"),
        (&[0x62, 2, 0, 0], "PUBREL"),
        (&[0x70, 2, 0, 0], "PUBCOMP"),
        (&[0x82, 6, 0, 0, 0, 1, b'a', 0], "SUBSCRIBE"),
        (&[0x90, 3, 0, 0, 0], "SUBACK"),
        (&[0xA2, 5, 0, 0, 0, 1, b'a'], "UNSUBSCRIBE"),
        (&[0xB0, 2, 0, 0], "UNSUBACK"),
    ] {
        assert_eq!(error_of(bytes), DecodeError::ZeroPacketId { packet });
    }
}

#[test]
fn connect_with_another_protocol_name_is_refused() {
    let e = error_of(&connect_bytes(b"MQTX", 4, 0x02, &[]));
    assert_eq!(
        e,
        DecodeError::InvalidProtocolName {
            name: "MQTX".into(),
            level: 4
        }
    );
}

#[test]
fn connect_with_a_known_name_and_another_level_is_an_unsupported_level() {
    for (name, level) in [(&b"MQTT"[..], 5), (b"MQTT", 3), (b"MQIsdp", 4)] {
        let e = error_of(&connect_bytes(name, level, 0x02, &[]));
        assert_eq!(e, DecodeError::UnsupportedProtocolLevel(level));
    }
}

#[test]
fn connect_reserved_flag_must_be_0() {
    let e = error_of(&connect_bytes(b"MQTT", 4, 0x03, &[]));
    assert_eq!(e, DecodeError::ConnectReservedFlag);
}

#[test]
fn will_qos_3_is_refused() {
    let will = [0, 1, b'w', 0, 0];
    let e = error_of(&connect_bytes(b"MQTT", 4, 0b0001_1110, &will));
    assert_eq!(e, DecodeError::WillQos3);
}

#[test]
fn will_qos_or_retain_without_the_will_flag_is_refused() {
    let e = error_of(&connect_bytes(b"MQTT", 4, 0b0000_1010, &[]));
    assert_eq!(e, DecodeError::WillQosWithoutWill);
    let e = error_of(&connect_bytes(b"MQTT", 4, 0b0010_0010, &[]));
    assert_eq!(e, DecodeError::WillRetainWithoutWill);
}

#[test]
fn password_without_user_name_is_refused() {
    let e = error_of(&connect_bytes(b"MQTT", 4, 0b0100_0010, &[0, 1, b'p']));
    assert_eq!(e, DecodeError::PasswordWithoutUsername);
}

#[test]
fn will_topic_must_be_a_valid_topic_name() {
    let e = error_of(&connect_bytes(b"MQTT", 4, 0b0000_0110, &[0, 1, b'+', 0, 0]));
    assert_eq!(e, DecodeError::InvalidWillTopic(TopicError::WildcardInName));
    let e = error_of(&connect_bytes(b"MQTT", 4, 0b0000_0110, &[0, 0, 0, 0]));
    assert_eq!(e, DecodeError::InvalidWillTopic(TopicError::Empty));
}

#[test]
fn password_is_binary_and_client_id_may_be_empty() {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0b1100_0000, 0, 0, 0, 0];
    body.extend_from_slice(&[0, 1, b'u', 0, 3, 0xC0, 0x00, 0xFF]);
    let mut bytes = vec![0x10, body.len() as u8];
    bytes.extend_from_slice(&body);
    let Ok(Packet::Connect(c)) = read_one(&bytes) else {
        panic!("expected a CONNECT");
    };
    assert_eq!(c.client_id, "");
    assert_eq!(c.password.as_deref(), Some(&[0xC0, 0x00, 0xFF][..]));
}

#[test]
fn publish_topic_with_a_wildcard_is_refused() {
    assert_eq!(
        error_of(&[0x30, 5, 0, 3, b'a', b'/', b'+']),
        DecodeError::PublishTopicWildcard
    );
    assert_eq!(
        error_of(&[0x30, 3, 0, 1, b'#']),
        DecodeError::PublishTopicWildcard
    );
}

#[test]
fn publish_with_an_empty_topic_is_refused() {
    assert_eq!(
        error_of(&[0x30, 3, 0, 0, b'x']),
        DecodeError::PublishTopicEmpty
    );
}

#[test]
fn subscribe_without_filters_is_refused() {
    assert_eq!(
        error_of(&[0x82, 2, 0, 1]),
        DecodeError::SubscribeWithoutFilters
    );
}

#[test]
fn subscribe_requested_qos_must_be_0_1_or_2() {
    for byte in [3u8, 0x41, 0x80] {
        let e = error_of(&[0x82, 6, 0, 1, 0, 1, b'a', byte]);
        assert_eq!(e, DecodeError::InvalidRequestedQos(byte));
    }
}

#[test]
fn subscribe_and_unsubscribe_filters_must_be_valid() {
    let e = error_of(&[0x82, 8, 0, 1, 0, 3, b'a', b'#', b'b', 0]);
    assert_eq!(
        e,
        DecodeError::InvalidTopicFilter(TopicError::MultiLevelWildcardMisplaced)
    );
    let e = error_of(&[0xA2, 6, 0, 1, 0, 2, b'a', b'+']);
    assert_eq!(
        e,
        DecodeError::InvalidTopicFilter(TopicError::SingleLevelWildcardMisplaced)
    );
    let e = error_of(&[0xA2, 4, 0, 1, 0, 0]);
    assert_eq!(e, DecodeError::InvalidTopicFilter(TopicError::Empty));
}

#[test]
fn unsubscribe_without_filters_is_refused() {
    assert_eq!(
        error_of(&[0xA2, 2, 0, 1]),
        DecodeError::UnsubscribeWithoutFilters
    );
}

#[test]
fn suback_return_codes_other_than_0_1_2_and_0x80_are_refused() {
    for code in [3u8, 0x7F, 0x81, 0xFF] {
        let e = error_of(&[0x90, 3, 0, 1, code]);
        assert_eq!(e, DecodeError::InvalidSubAckReturnCode(code));
    }
}

#[test]
fn connack_reserved_flags_and_return_codes_are_refused() {
    assert_eq!(
        error_of(&[0x20, 2, 0x02, 0]),
        DecodeError::ConnAckReservedFlags(0x02)
    );
    assert_eq!(
        error_of(&[0x20, 2, 0x80, 0]),
        DecodeError::ConnAckReservedFlags(0x80)
    );
    assert_eq!(
        error_of(&[0x20, 2, 0, 6]),
        DecodeError::InvalidConnectReturnCode(6)
    );
}

#[test]
fn decode_checks_the_fixed_header_byte_too() {
    assert_eq!(
        decode(0x00, Bytes::new()),
        Err(DecodeError::ReservedPacketType(0))
    );
    assert_eq!(decode(0x36, Bytes::new()), Err(DecodeError::PublishQos3));
    assert_eq!(decode(0xC0, Bytes::new()), Ok(Packet::PingReq));
}

#[test]
fn every_error_message_starts_with_its_spec_reference() {
    let errors = [
        DecodeError::UnsupportedProtocolLevel(5),
        DecodeError::ReservedPacketType(0),
        DecodeError::InvalidFlags {
            packet: "PUBREL",
            flags: 0,
        },
        DecodeError::PublishQos3,
        DecodeError::PublishDupWithQos0,
        DecodeError::RemainingLengthTooLong,
        DecodeError::Truncated {
            packet: "PUBLISH",
            field: "topic name",
        },
        DecodeError::TrailingBytes {
            packet: "CONNECT",
            extra: 1,
        },
        DecodeError::WrongRemainingLength {
            packet: "PUBACK",
            expected: 2,
            actual: 3,
        },
        DecodeError::InvalidUtf8 {
            field: "topic name",
        },
        DecodeError::NullCharacter {
            field: "topic name",
        },
        DecodeError::ZeroPacketId { packet: "PUBACK" },
        DecodeError::InvalidProtocolName {
            name: "X".into(),
            level: 4,
        },
        DecodeError::ConnectReservedFlag,
        DecodeError::WillQos3,
        DecodeError::WillQosWithoutWill,
        DecodeError::WillRetainWithoutWill,
        DecodeError::PasswordWithoutUsername,
        DecodeError::InvalidWillTopic(TopicError::WildcardInName),
        DecodeError::ConnAckReservedFlags(2),
        DecodeError::InvalidConnectReturnCode(6),
        DecodeError::PublishTopicWildcard,
        DecodeError::PublishTopicEmpty,
        DecodeError::SubscribeWithoutFilters,
        DecodeError::InvalidRequestedQos(3),
        DecodeError::InvalidSubAckReturnCode(3),
        DecodeError::UnsubscribeWithoutFilters,
        DecodeError::InvalidTopicFilter(TopicError::Empty),
    ];
    for e in errors {
        let spec = e.spec_ref().expect("a spec reference");
        assert!(e.to_string().starts_with(&format!("[{spec}] ")), "{e}");
    }
    assert_eq!(
        DecodeError::PublishTopicWildcard.to_string(),
        "[MQTT-3.3.2-2] topic name contains a wildcard"
    );
    assert_eq!(
        DecodeError::PacketTooLarge { size: 2, max: 1 }.spec_ref(),
        None
    );
}
