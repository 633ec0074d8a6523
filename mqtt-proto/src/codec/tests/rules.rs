//! One test per validation rule of the decoder.

use super::*;

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
