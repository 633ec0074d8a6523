//! The client against a scripted server in the test: silence, refusals and
//! packets a publish-only client must not accept.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use mqtt_proto::codec::{read_packet, ConnectReturnCode, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::support::*;
use crate::output::client::{ClientError, Connection, MAX_PACKET_SIZE};

const CONNACK_OK: &[u8] = &[0x20, 0x02, 0x00, 0x00];

/// Accept one connection; after its first packet (CONNECT) write `answer`,
/// then read on without ever answering. Every packet received goes to the channel.
async fn fake_server(answer: &'static [u8]) -> (SocketAddr, mpsc::Receiver<Packet>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = mpsc::channel(100_000);
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut answered = false;
        loop {
            while let Ok(Some(p)) = read_packet(&mut buf, MAX_PACKET_SIZE) {
                if !answered {
                    answered = true;
                    if sock.write_all(answer).await.is_err() {
                        return;
                    }
                }
                if tx.send(p).await.is_err() {
                    return;
                }
            }
            match sock.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn a_server_that_goes_silent_after_connack_fails_keep_alive_within_two_periods() {
    let (addr, mut seen) = fake_server(CONNACK_OK).await;
    let mut opts = options(addr, "silent");
    opts.keep_alive = Duration::from_secs(1);
    let (mut conn, _) = connect(&opts).await;
    let started = Instant::now();
    let result = wait_for("keep-alive timeout", conn.next()).await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(ClientError::KeepAliveTimeout(_))),
        "{result:?}"
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3000),
        "gave up after {took:?}"
    );
    assert!(matches!(seen.recv().await, Some(Packet::Connect(_))));
    assert_eq!(seen.recv().await, Some(Packet::PingReq));
    let later = conn.next().await;
    assert!(matches!(later, Err(ClientError::Closed)), "{later:?}");
}

#[tokio::test]
async fn a_publish_from_the_server_is_a_protocol_error() {
    // CONNACK, then PUBLISH QoS 0 on "x" with payload "y".
    const ANSWER: &[u8] = &[0x20, 0x02, 0x00, 0x00, 0x30, 0x04, 0x00, 0x01, b'x', b'y'];
    let (addr, _seen) = fake_server(ANSWER).await;
    let (mut conn, _) = connect(&options(addr, "pub-from-server")).await;
    let result = wait_for("an error", conn.next()).await;
    match result {
        Err(ClientError::Protocol(text)) => assert!(text.contains("PUBLISH"), "{text}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pubrel_from_the_server_is_a_protocol_error() {
    const ANSWER: &[u8] = &[0x20, 0x02, 0x00, 0x00, 0x62, 0x02, 0x00, 0x07];
    let (addr, _seen) = fake_server(ANSWER).await;
    let (mut conn, _) = connect(&options(addr, "pubrel-from-server")).await;
    let result = wait_for("an error", conn.next()).await;
    match result {
        Err(ClientError::Protocol(text)) => assert!(text.contains("PUBREL"), "{text}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refusing_connack_names_the_reason() {
    const ANSWER: &[u8] = &[0x20, 0x02, 0x00, 0x04];
    let (addr, _seen) = fake_server(ANSWER).await;
    let result = wait_for("CONNACK", Connection::connect(&options(addr, "refused"))).await;
    match result {
        Err(e @ ClientError::Refused(ConnectReturnCode::BadUserNameOrPassword)) => {
            let text = e.to_string();
            assert!(text.contains("bad user name or password"), "{text}");
            assert!(text.contains("return code 4"), "{text}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_never_sends_connack_is_a_connect_timeout() {
    let (addr, _seen) = fake_server(&[]).await;
    let mut opts = options(addr, "no-connack");
    opts.connect_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result = wait_for("connect", Connection::connect(&opts)).await;
    assert!(
        matches!(result, Err(ClientError::ConnectTimeout(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error_naming_the_address() {
    let port = test_support::free_port();
    let opts = options(SocketAddr::from(([127, 0, 0, 1], port)), "nobody");
    let result = wait_for("connect", Connection::connect(&opts)).await;
    match result {
        Err(e @ ClientError::Connect { .. }) => {
            assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}")
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn queued_packets_reach_the_server_in_order_with_the_flags_given() {
    let (addr, mut seen) = fake_server(CONNACK_OK).await;
    let (mut conn, _) = connect(&options(addr, "flags")).await;
    for id in 1..=300u16 {
        conn.publish(
            id,
            "t/flags",
            &id.to_be_bytes(),
            QoS::ExactlyOnce,
            id == 1,
            id % 2 == 0,
        );
    }
    conn.pubrel(9);
    // `next` writes what is queued while it waits for an answer that never comes;
    // the server reads every packet, the PUBREL last.
    let mut got = Vec::new();
    let reading = async {
        while !matches!(got.last(), Some(Packet::PubRel(_))) {
            got.push(seen.recv().await.expect("the server reads on"));
        }
    };
    tokio::select! {
        answer = conn.next() => panic!("the silent server answered? {answer:?}"),
        () = wait_for("every packet at the server", reading) => {}
    }
    assert_eq!(conn.queued_bytes(), 0);
    let mut packets = got.into_iter();
    assert!(matches!(packets.next(), Some(Packet::Connect(_))));
    for id in 1..=300u16 {
        match packets.next() {
            Some(Packet::Publish(p)) => {
                assert_eq!(
                    (p.pkid, p.dup, p.retain, p.qos),
                    (id, id % 2 == 0, id == 1, QoS::ExactlyOnce)
                );
                assert_eq!(&p.payload[..], &id.to_be_bytes());
            }
            other => panic!("expected PUBLISH {id}, got {other:?}"),
        }
    }
    assert_eq!(packets.next(), Some(Packet::PubRel(9)));
}

#[tokio::test]
async fn an_oversized_packet_from_the_server_is_refused_before_it_is_read() {
    // CONNACK, then a PUBACK header that claims 16 MiB.
    const ANSWER: &[u8] = &[0x20, 0x02, 0x00, 0x00, 0x40, 0x80, 0x80, 0x80, 0x08];
    let (addr, _seen) = fake_server(ANSWER).await;
    let (mut conn, _) = connect(&options(addr, "oversized")).await;
    let result = wait_for("an error", conn.next()).await;
    assert!(matches!(result, Err(ClientError::Decode(_))), "{result:?}");
}

#[tokio::test]
async fn a_server_that_reads_but_never_answers_fails_keep_alive_while_publishes_go_out() {
    let (addr, mut seen) = fake_server(CONNACK_OK).await;
    let mut opts = options(addr, "black-hole");
    opts.keep_alive = Duration::from_secs(1);
    let (mut conn, _) = connect(&opts).await;
    let started = Instant::now();
    let mut published = 0u16;
    // A publish every 100 ms keeps the writes busy; only reads tell that the server is gone.
    let result = loop {
        published += 1;
        conn.publish(published, "t/hole", b"x", QoS::AtLeastOnce, false, false);
        match tokio::time::timeout(Duration::from_millis(100), conn.next()).await {
            Ok(result) => break result,
            Err(_) if started.elapsed() > WAIT => panic!("never gave up"),
            Err(_) => {}
        }
    };
    let took = started.elapsed();
    assert!(
        matches!(result, Err(ClientError::KeepAliveTimeout(_))),
        "{result:?}"
    );
    assert!(took < Duration::from_millis(3000), "gave up after {took:?}");
    assert!(published >= 15, "only {published} publishes went out");
    // Closing the socket ends the server's reading: it has seen all there was.
    drop(conn);
    let mut pings = 0;
    while let Some(p) = wait_for("the server to see the connection close", seen.recv()).await {
        pings += u32::from(p == Packet::PingReq);
    }
    assert_eq!(pings, 1);
}

/// Accept one connection with a small receive buffer, answer CONNECT, then
/// acknowledge every QoS 1 PUBLISH; the payloads go to the channel.
async fn slow_acking_server() -> (SocketAddr, mpsc::Receiver<bytes::Bytes>) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let addr = socket.local_addr().expect("local addr");
    let listener = socket.listen(1).expect("listen");
    let (tx, rx) = mpsc::channel(100_000);
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let mut answer = Vec::new();
            while let Ok(Some(p)) = read_packet(&mut buf, MAX_PACKET_SIZE) {
                match p {
                    Packet::Connect(_) => answer.extend_from_slice(CONNACK_OK),
                    Packet::Publish(p) => {
                        answer.extend_from_slice(&[0x40, 0x02]);
                        answer.extend_from_slice(&p.pkid.to_be_bytes());
                        if tx.send(p.payload).await.is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
            if sock.write_all(&answer).await.is_err() {
                return;
            }
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn next_keeps_half_written_bytes_when_select_cancels_it() {
    let (addr, mut payloads) = slow_acking_server().await;
    let (mut conn, _) = connect(&options(addr, "cancel")).await;
    // 64 kB messages, 128 in flight: 8 MB, twice what the kernel buffers for a socket.
    let count = 300u32;
    let padding = "x".repeat(64_000);
    let mut sent = 0u32;
    let mut acks = Vec::new();
    let (mut turn, mut cancelled_mid_write) = (0u32, 0u32);
    let deadline = Instant::now() + WAIT;
    while acks.len() < count as usize && Instant::now() < deadline {
        while sent < count && sent - (acks.len() as u32) < 128 {
            sent += 1;
            let payload = format!("{sent}/{padding}");
            conn.publish(
                pkid(sent),
                "t/cancel",
                payload.as_bytes(),
                QoS::AtLeastOnce,
                false,
                false,
            );
        }
        // Every other turn `next` gets one poll only, then is dropped.
        turn += 1;
        tokio::select! {
            biased;
            ack = conn.next() => match ack {
                Ok(crate::output::client::Ack::PubAck(id)) => acks.push(id),
                other => panic!("expected PUBACK, got {other:?}"),
            },
            _ = std::future::ready(()), if turn % 2 == 0 => {
                cancelled_mid_write += u32::from(conn.queued_bytes() > 0);
            }
        }
    }
    assert!(
        cancelled_mid_write > 10,
        "next was cancelled with bytes half written only {cancelled_mid_write} times"
    );
    assert_eq!(acks, expected_pkids(count));
    for n in 1..=count {
        let p = wait_for("a payload", payloads.recv())
            .await
            .expect("payload");
        assert_eq!(p.len(), format!("{n}/").len() + padding.len());
        assert!(
            p.starts_with(format!("{n}/x").as_bytes()),
            "message {n} is damaged"
        );
    }
}
