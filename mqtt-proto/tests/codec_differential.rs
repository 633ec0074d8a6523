//! Our codec against rumqttc's MQTT 3.1.1 encoder and decoder: the same packet
//! gives the same bytes, and each side reads what the other writes.
//!
//! The packets are limited to what both libraries can express: rumqttc speaks
//! only protocol level 4, keeps the password as a string, and leaves out an
//! empty user name or password.

use bytes::{Bytes, BytesMut};
use mqtt_proto::codec::{
    encode, read_packet, ConnAck, Connect, ConnectReturnCode, DecodeError, LastWill, Packet,
    Publish, QoS, SubAck, Subscribe, SubscribeReturnCode, Unsubscribe,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use rumqttc::mqttbytes::{self as rq, v4};

fn to_rq_qos(q: QoS) -> rq::QoS {
    match q {
        QoS::AtMostOnce => rq::QoS::AtMostOnce,
        QoS::AtLeastOnce => rq::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rq::QoS::ExactlyOnce,
    }
}

fn to_rq_code(code: ConnectReturnCode) -> v4::ConnectReturnCode {
    use v4::ConnectReturnCode as R;
    match code {
        ConnectReturnCode::Accepted => R::Success,
        ConnectReturnCode::UnacceptableProtocolVersion => R::RefusedProtocolVersion,
        ConnectReturnCode::IdentifierRejected => R::BadClientId,
        ConnectReturnCode::ServerUnavailable => R::ServiceUnavailable,
        ConnectReturnCode::BadUserNameOrPassword => R::BadUserNamePassword,
        ConnectReturnCode::NotAuthorized => R::NotAuthorized,
    }
}

fn to_rq_connect(c: &Connect) -> v4::Connect {
    assert_eq!(c.protocol_level, 4, "rumqttc writes protocol level 4 only");
    let login = c.username.as_ref().map(|username| v4::Login {
        username: username.clone(),
        password: c
            .password
            .as_ref()
            .map(|p| String::from_utf8(p.to_vec()).expect("a UTF-8 password"))
            .unwrap_or_default(),
    });
    v4::Connect {
        protocol: rq::Protocol::V4,
        keep_alive: c.keep_alive,
        client_id: c.client_id.clone(),
        clean_session: c.clean_session,
        last_will: c.will.as_ref().map(|w| v4::LastWill {
            topic: w.topic.clone(),
            message: w.payload.clone(),
            qos: to_rq_qos(w.qos),
            retain: w.retain,
        }),
        login,
    }
}

/// The same packet in rumqttc's types.
fn to_rq(p: &Packet) -> v4::Packet {
    match p {
        Packet::Connect(c) => v4::Packet::Connect(to_rq_connect(c)),
        Packet::ConnAck(a) => {
            v4::Packet::ConnAck(v4::ConnAck::new(to_rq_code(a.code), a.session_present))
        }
        Packet::Publish(p) => v4::Packet::Publish(v4::Publish {
            dup: p.dup,
            qos: to_rq_qos(p.qos),
            retain: p.retain,
            topic: p.topic.clone(),
            pkid: p.pkid,
            payload: p.payload.clone(),
        }),
        Packet::PubAck(id) => v4::Packet::PubAck(v4::PubAck::new(*id)),
        Packet::PubRec(id) => v4::Packet::PubRec(v4::PubRec::new(*id)),
        Packet::PubRel(id) => v4::Packet::PubRel(v4::PubRel::new(*id)),
        Packet::PubComp(id) => v4::Packet::PubComp(v4::PubComp::new(*id)),
        Packet::Subscribe(s) => v4::Packet::Subscribe(v4::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .iter()
                .map(|(f, q)| v4::SubscribeFilter::new(f.clone(), to_rq_qos(*q)))
                .collect(),
        }),
        Packet::SubAck(s) => v4::Packet::SubAck(v4::SubAck::new(
            s.pkid,
            s.return_codes
                .iter()
                .map(|c| match c {
                    SubscribeReturnCode::Success(q) => {
                        v4::SubscribeReasonCode::Success(to_rq_qos(*q))
                    }
                    SubscribeReturnCode::Failure => v4::SubscribeReasonCode::Failure,
                })
                .collect(),
        )),
        Packet::Unsubscribe(u) => v4::Packet::Unsubscribe(v4::Unsubscribe {
            pkid: u.pkid,
            topics: u.filters.clone(),
        }),
        Packet::UnsubAck(id) => v4::Packet::UnsubAck(v4::UnsubAck::new(*id)),
        Packet::PingReq => v4::Packet::PingReq,
        Packet::PingResp => v4::Packet::PingResp,
        Packet::Disconnect => v4::Packet::Disconnect,
    }
}

fn ours(p: &Packet) -> BytesMut {
    let mut out = BytesMut::new();
    encode(p, &mut out);
    out
}

fn theirs(p: &v4::Packet) -> BytesMut {
    let mut out = BytesMut::new();
    p.write(&mut out, usize::MAX)
        .expect("rumqttc writes the packet");
    out
}

/// Both directions and the bytes themselves agree for `p`.
fn assert_agrees_with_rumqttc(p: &Packet) {
    let rq_packet = to_rq(p);
    let mut their_bytes = theirs(&rq_packet);
    let mut our_bytes = ours(p);
    assert_eq!(our_bytes, their_bytes, "wire form of {p:?}");

    assert_eq!(
        read_packet(&mut their_bytes, usize::MAX),
        Ok(Some(p.clone()))
    );
    assert!(their_bytes.is_empty());

    let read_by_them = v4::Packet::read(&mut our_bytes, usize::MAX).expect("rumqttc reads ours");
    assert_eq!(read_by_them, rq_packet);
    assert!(our_bytes.is_empty());
}

fn publish(qos: QoS, dup: bool, retain: bool, pkid: u16) -> Packet {
    Packet::Publish(Publish {
        dup,
        qos,
        retain,
        topic: "sensors/kitchen/temp".into(),
        pkid,
        payload: Bytes::from_static(b"21.5"),
    })
}

#[test]
fn named_packets_agree_with_rumqttc_in_both_directions() {
    let connect = Packet::Connect(Connect {
        protocol_level: 4,
        clean_session: false,
        keep_alive: 30,
        client_id: "gateway-7".into(),
        will: Some(LastWill {
            topic: "gateways/7/status".into(),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::ExactlyOnce,
            retain: true,
        }),
        username: Some("pi".into()),
        password: Some(Bytes::from_static(b"s3cret")),
    });
    let packets = [
        connect,
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: ConnectReturnCode::Accepted,
        }),
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: ConnectReturnCode::NotAuthorized,
        }),
        publish(QoS::AtMostOnce, false, true, 0),
        publish(QoS::AtLeastOnce, true, false, 1),
        publish(QoS::ExactlyOnce, false, false, 65_535),
        Packet::PubAck(1),
        Packet::PubRec(2),
        Packet::PubRel(3),
        Packet::PubComp(4),
        Packet::Subscribe(Subscribe {
            pkid: 5,
            filters: vec![
                ("a/+/c".into(), QoS::AtLeastOnce),
                ("$SYS/#".into(), QoS::AtMostOnce),
            ],
        }),
        Packet::SubAck(SubAck {
            pkid: 5,
            return_codes: vec![
                SubscribeReturnCode::Success(QoS::AtLeastOnce),
                SubscribeReturnCode::Failure,
            ],
        }),
        Packet::Unsubscribe(Unsubscribe {
            pkid: 6,
            filters: vec!["a/+/c".into()],
        }),
        Packet::UnsubAck(6),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect,
    ];
    for p in &packets {
        assert_agrees_with_rumqttc(p);
    }
}

#[test]
fn rumqttc_login_with_an_empty_user_name_is_refused_by_our_decoder() {
    // rumqttc leaves out an empty user name but still writes the password,
    // which the standard forbids [MQTT-3.1.2-22].
    let mut connect = v4::Connect::new("c");
    connect.set_login("", "pw");
    let mut bytes = theirs(&v4::Packet::Connect(connect));
    assert_eq!(
        read_packet(&mut bytes, usize::MAX),
        Err(DecodeError::PasswordWithoutUsername)
    );
}

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

fn topic_name() -> impl Strategy<Value = String> {
    vec("[^/+#\\x00]{0,6}", 1..4)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("not empty", |t| !t.is_empty())
}

fn topic_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => "[^/+#\\x00]{0,6}", 1 => Just("+".to_string())];
    (vec(level, 1..4), any::<bool>())
        .prop_map(|(mut levels, multi)| {
            if multi {
                levels.push("#".into());
            }
            levels.join("/")
        })
        .prop_filter("not empty", |f| !f.is_empty())
}

fn payload() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..48).prop_map(Bytes::from)
}

fn connect() -> impl Strategy<Value = Packet> {
    let will = (topic_name(), payload(), qos(), any::<bool>()).prop_map(
        |(topic, payload, qos, retain)| LastWill {
            topic,
            payload,
            qos,
            retain,
        },
    );
    let login = option::of(("[^\\x00]{1,10}", option::of("[^\\x00]{1,10}")));
    (
        any::<bool>(),
        any::<u16>(),
        "[^\\x00]{0,23}",
        option::of(will),
        login,
    )
        .prop_map(|(clean_session, keep_alive, client_id, will, login)| {
            let (username, password) = match login {
                Some((user, pass)) => (Some(user), pass.map(Bytes::from)),
                None => (None, None),
            };
            Packet::Connect(Connect {
                protocol_level: 4,
                clean_session,
                keep_alive,
                client_id,
                will,
                username,
                password,
            })
        })
}

fn packet() -> impl Strategy<Value = Packet> {
    use ConnectReturnCode::*;
    let code = prop_oneof![
        Just(Accepted),
        Just(UnacceptableProtocolVersion),
        Just(IdentifierRejected),
        Just(ServerUnavailable),
        Just(BadUserNameOrPassword),
        Just(NotAuthorized),
    ];
    let return_code = prop_oneof![
        qos().prop_map(SubscribeReturnCode::Success),
        Just(SubscribeReturnCode::Failure)
    ];
    prop_oneof![
        connect(),
        (any::<bool>(), code).prop_map(|(session_present, code)| Packet::ConnAck(ConnAck {
            session_present,
            code
        })),
        (
            qos(),
            any::<bool>(),
            any::<bool>(),
            topic_name(),
            pkid(),
            payload()
        )
            .prop_map(|(qos, dup, retain, topic, pkid, payload)| {
                let qos0 = qos == QoS::AtMostOnce;
                Packet::Publish(Publish {
                    dup: dup && !qos0,
                    qos,
                    retain,
                    topic,
                    pkid: if qos0 { 0 } else { pkid },
                    payload,
                })
            }),
        pkid().prop_map(Packet::PubAck),
        pkid().prop_map(Packet::PubRec),
        pkid().prop_map(Packet::PubRel),
        pkid().prop_map(Packet::PubComp),
        (pkid(), vec((topic_filter(), qos()), 1..4))
            .prop_map(|(pkid, filters)| Packet::Subscribe(Subscribe { pkid, filters })),
        (pkid(), vec(return_code, 1..5))
            .prop_map(|(pkid, return_codes)| Packet::SubAck(SubAck { pkid, return_codes })),
        (pkid(), vec(topic_filter(), 1..4))
            .prop_map(|(pkid, filters)| Packet::Unsubscribe(Unsubscribe { pkid, filters })),
        pkid().prop_map(Packet::UnsubAck),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        Just(Packet::Disconnect),
    ]
}

proptest! {
    #[test]
    fn both_codecs_write_the_same_bytes_for_the_same_packet(p in packet()) {
        prop_assert_eq!(ours(&p), theirs(&to_rq(&p)));
    }

    #[test]
    fn what_rumqttc_writes_we_read_field_by_field(p in packet()) {
        let mut bytes = theirs(&to_rq(&p));
        prop_assert_eq!(read_packet(&mut bytes, usize::MAX), Ok(Some(p)));
        prop_assert!(bytes.is_empty());
    }

    #[test]
    fn what_we_write_rumqttc_reads_field_by_field(p in packet()) {
        let mut bytes = ours(&p);
        let read = v4::Packet::read(&mut bytes, usize::MAX);
        prop_assert_eq!(read.ok(), Some(to_rq(&p)));
        prop_assert!(bytes.is_empty());
    }
}
