//! Property tests for the MQTT codec: every valid packet survives encode then
//! decode unchanged, and no input bytes make the framer panic.

use bytes::{Bytes, BytesMut};
use mqtt_proto::codec::{
    decode, encode, encode_publish, encoded_len, read_packet, ConnAck, Connect, ConnectReturnCode,
    DecodeError, LastWill, Packet, Publish, QoS, SubAck, Subscribe, SubscribeReturnCode,
    Unsubscribe,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn pkid() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Any UTF-8 string without U+0000.
fn mqtt_string() -> impl Strategy<Value = String> {
    "[^\\x00]{0,12}"
}

/// One topic level: no separator, no wildcard, no U+0000; may be empty.
fn level() -> impl Strategy<Value = String> {
    "[^/+#\\x00]{0,6}"
}

fn topic_name() -> impl Strategy<Value = String> {
    vec(level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic name is not empty", |t| !t.is_empty())
}

fn topic_filter() -> impl Strategy<Value = String> {
    let filter_level = prop_oneof![3 => level(), 1 => Just("+".to_string())];
    (vec(filter_level, 1..5), any::<bool>())
        .prop_map(|(mut levels, multi)| {
            if multi {
                levels.push("#".into());
            }
            levels.join("/")
        })
        .prop_filter("a topic filter is not empty", |f| !f.is_empty())
}

fn connect() -> impl Strategy<Value = Packet> {
    let will = (topic_name(), bytes(32), qos(), any::<bool>()).prop_map(
        |(topic, payload, qos, retain)| LastWill {
            topic,
            payload,
            qos,
            retain,
        },
    );
    (
        prop_oneof![Just(3u8), Just(4u8)],
        any::<bool>(),
        any::<u16>(),
        mqtt_string(),
        option::of(will),
        option::of(mqtt_string()),
        option::of(bytes(16)),
    )
        .prop_map(
            |(protocol_level, clean_session, keep_alive, client_id, will, username, password)| {
                // The standard allows a password only with a user name [MQTT-3.1.2-22].
                let password = username.as_ref().and(password);
                Packet::Connect(Connect {
                    protocol_level,
                    clean_session,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                })
            },
        )
}

fn connack() -> impl Strategy<Value = Packet> {
    use ConnectReturnCode::*;
    let code = prop_oneof![
        Just(Accepted),
        Just(UnacceptableProtocolVersion),
        Just(IdentifierRejected),
        Just(ServerUnavailable),
        Just(BadUserNameOrPassword),
        Just(NotAuthorized),
    ];
    (any::<bool>(), code).prop_map(|(session_present, code)| {
        Packet::ConnAck(ConnAck {
            session_present,
            code,
        })
    })
}

fn publish() -> impl Strategy<Value = Packet> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        pkid(),
        bytes(64),
    )
        .prop_map(|(qos, dup, retain, topic, pkid, payload)| {
            let at_most_once = qos == QoS::AtMostOnce;
            Packet::Publish(Publish {
                dup: dup && !at_most_once,
                qos,
                retain,
                topic,
                pkid: if at_most_once { 0 } else { pkid },
                payload,
            })
        })
}

fn suback_code() -> impl Strategy<Value = SubscribeReturnCode> {
    prop_oneof![
        qos().prop_map(SubscribeReturnCode::Success),
        Just(SubscribeReturnCode::Failure)
    ]
}

/// A valid packet of any of the 14 types.
fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        connect(),
        connack(),
        publish(),
        pkid().prop_map(Packet::PubAck),
        pkid().prop_map(Packet::PubRec),
        pkid().prop_map(Packet::PubRel),
        pkid().prop_map(Packet::PubComp),
        (pkid(), vec((topic_filter(), qos()), 1..4))
            .prop_map(|(pkid, filters)| Packet::Subscribe(Subscribe { pkid, filters })),
        (pkid(), vec(suback_code(), 0..5))
            .prop_map(|(pkid, return_codes)| Packet::SubAck(SubAck { pkid, return_codes })),
        (pkid(), vec(topic_filter(), 1..4))
            .prop_map(|(pkid, filters)| Packet::Unsubscribe(Unsubscribe { pkid, filters })),
        pkid().prop_map(Packet::UnsubAck),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        Just(Packet::Disconnect),
    ]
}

fn wire(packet: &Packet) -> BytesMut {
    let mut out = BytesMut::new();
    encode(packet, &mut out);
    out
}

/// Read packets off `buf` until it needs more bytes or fails; must not panic.
fn read_all(buf: &mut BytesMut, max: usize) -> (Vec<Packet>, Option<DecodeError>) {
    let mut packets = Vec::new();
    loop {
        match read_packet(buf, max) {
            Ok(Some(p)) => packets.push(p),
            Ok(None) => return (packets, None),
            Err(e) => return (packets, Some(e)),
        }
    }
}

proptest! {
    #[test]
    fn decoding_an_encoded_packet_gives_the_same_packet(p in packet()) {
        let mut buf = wire(&p);
        prop_assert_eq!(buf.len(), encoded_len(&p));
        let header = buf[0];
        let header_len = fixed_header_len(&buf);
        let body = Bytes::copy_from_slice(&buf[header_len..]);
        prop_assert_eq!(decode(header, body), Ok(p.clone()));
        prop_assert_eq!(read_packet(&mut buf, usize::MAX), Ok(Some(p)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn encode_publish_writes_what_encode_writes_for_the_same_publish(p in publish()) {
        let Packet::Publish(publish) = &p else { unreachable!("publish() makes PUBLISH") };
        let mut out = BytesMut::new();
        encode_publish(
            &mut out,
            &publish.topic,
            &publish.payload,
            publish.qos,
            publish.retain,
            publish.dup,
            publish.pkid,
        );
        prop_assert_eq!(out, wire(&p));
    }

    #[test]
    fn a_stream_of_packets_split_anywhere_reads_back_in_order(
        packets in vec(packet(), 1..6),
        split in any::<prop::sample::Index>(),
    ) {
        let stream: Vec<u8> = packets.iter().flat_map(|p| wire(p).to_vec()).collect();
        let at = split.index(stream.len() + 1);
        let mut buf = BytesMut::from(&stream[..at]);
        let (mut got, err) = read_all(&mut buf, usize::MAX);
        prop_assert_eq!(err, None);
        buf.extend_from_slice(&stream[at..]);
        let (rest, err) = read_all(&mut buf, usize::MAX);
        prop_assert_eq!(err, None);
        got.extend(rest);
        prop_assert_eq!(got, packets);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn random_bytes_never_make_the_framer_panic(data in vec(any::<u8>(), 0..512)) {
        let mut buf = BytesMut::from(&data[..]);
        let (packets, _) = read_all(&mut buf, 4096);
        for p in packets {
            prop_assert_eq!(read_packet(&mut wire(&p), usize::MAX), Ok(Some(p)));
        }
    }

    #[test]
    fn a_valid_packet_with_one_byte_changed_never_makes_the_framer_panic(
        p in packet(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut buf = wire(&p);
        let i = at.index(buf.len());
        buf[i] = byte;
        let (packets, _) = read_all(&mut buf, 4096);
        for p in packets {
            prop_assert_eq!(read_packet(&mut wire(&p), usize::MAX), Ok(Some(p)));
        }
    }
}

/// Length of the fixed header of a wire form: the first byte and the varint after it.
fn fixed_header_len(wire: &[u8]) -> usize {
    let varint = wire[1..].iter().take_while(|&&b| b & 0x80 != 0).count() + 1;
    1 + varint
}
