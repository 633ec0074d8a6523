//! Byte-literal tests per packet type and framing fed in chunks split at every
//! position; `rules` has one test per validation rule.

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

mod rules;
