//! Limits that hold across listeners: connections per IP address, and the
//! CONNECT timeout against clients that trickle CONNECT or stall a TLS or
//! WebSocket handshake. Also: unusable certificate files stop the start.

mod common;
mod streams;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use broker_lite::{Broker, Config};
use common::ConnectBytes;
use mqtt_proto::codec::Packet;
use streams::*;
use test_support::pki::Ca;
use test_support::Scratch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(
    listeners: Vec<broker_lite::config::ListenerConfig>,
    edit: impl FnOnce(&mut Config),
) -> Broker {
    let mut config = Config {
        listeners,
        sys_interval_secs: 0,
        ..Config::default()
    };
    edit(&mut config);
    Broker::start(config).await.expect("broker starts")
}

/// A client that has sent CONNECT over plain TCP and got CONNACK 0.
async fn plain_client(addr: SocketAddr, id: &str) -> Mqtt {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    connected(Box::new(tcp), id).await
}

async fn connected(io: Box<dyn Io>, id: &str) -> Mqtt {
    let mut client = Mqtt::new(io);
    client.send(&ConnectBytes::new(id).encode()).await;
    match client.recv().await {
        Some(Packet::ConnAck(ack)) => assert_eq!(ack.code as u8, 0, "CONNACK code"),
        other => panic!("{id}: expected CONNACK, got {other:?}"),
    }
    client
}

/// How long until the peer closes `tcp` (reading and dropping what it sends).
async fn time_until_closed(tcp: &mut TcpStream, started: Instant) -> Duration {
    let mut buf = [0u8; 256];
    let closed = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(WAIT, closed)
        .await
        .expect("the broker closes the connection");
    started.elapsed()
}

#[tokio::test]
async fn connections_past_max_per_ip_are_closed_at_once_counting_every_listener() {
    let broker = start(vec![plain(), websocket(None)], |c| {
        c.limits.max_connections_per_ip = 3;
    })
    .await;
    let [tcp_addr, ws_addr] = [broker.local_addrs()[0], broker.local_addrs()[1]];
    let first = plain_client(tcp_addr, "ip-1").await;
    let _second = plain_client(tcp_addr, "ip-2").await;
    let ws_tcp = TcpStream::connect(ws_addr).await.expect("connect");
    let ws = connect_ws(ws_tcp, ws_addr, "/mqtt")
        .await
        .expect("ws handshake");
    let _third = connected(Box::new(ws), "ip-3-ws").await;

    let mut fourth = TcpStream::connect(tcp_addr)
        .await
        .expect("TCP accept happens");
    let elapsed = time_until_closed(&mut fourth, Instant::now()).await;
    assert!(
        elapsed < Duration::from_secs(1),
        "closed right after accept, took {elapsed:?}"
    );
    assert_eq!(broker.metrics().snapshot().connections_refused_per_ip, 1);

    drop(first);
    // The slot comes back once the broker has seen the first connection end.
    let deadline = Instant::now() + WAIT;
    loop {
        let tcp = TcpStream::connect(tcp_addr).await.expect("connect");
        let mut client = Mqtt::new(Box::new(tcp));
        client.send(&ConnectBytes::new("ip-4").encode()).await;
        if let Some(Packet::ConnAck(_)) = client.recv().await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no slot came back after a client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_connect_sent_one_byte_every_300_ms_is_cut_off_at_the_connect_timeout() {
    let broker = start(vec![plain()], |c| c.limits.connect_timeout_secs = 1).await;
    let mut tcp = TcpStream::connect(broker.local_addr())
        .await
        .expect("connect");
    let started = Instant::now();
    let connect = ConnectBytes::new("slowloris-client-with-a-long-id").encode();
    let (mut read, mut write) = tcp.split();
    let trickle = async {
        for byte in &connect {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let closed = async {
        let mut buf = [0u8; 64];
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => started.elapsed(),
            Ok(_) => panic!("the broker answered a CONNECT that never completed"),
        }
    };
    let elapsed = tokio::time::timeout(WAIT, async {
        tokio::select! {
            () = trickle => panic!("the whole CONNECT went through without the broker closing"),
            elapsed = closed => elapsed,
        }
    })
    .await
    .expect("closed within the wait");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
        "closed after {elapsed:?}, expected about 1 s"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn tls_and_websocket_handshakes_that_never_finish_are_cut_off_at_the_connect_timeout() {
    let dir = Scratch::new("broker-lite-stall");
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let tls_cfg = server_tls(&server.cert, &server.key);
    let broker = start(vec![tls(tls_cfg), websocket(None)], |c| {
        c.limits.connect_timeout_secs = 1;
    })
    .await;
    let [tls_addr, ws_addr] = [broker.local_addrs()[0], broker.local_addrs()[1]];
    // The start of a TLS record header; the rest never comes.
    let mut tls_stall = TcpStream::connect(tls_addr).await.expect("connect");
    let started = Instant::now();
    tls_stall
        .write_all(&[0x16, 0x03, 0x01])
        .await
        .expect("send");
    // An HTTP upgrade request that never ends its headers.
    let mut ws_stall = TcpStream::connect(ws_addr).await.expect("connect");
    ws_stall
        .write_all(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send");
    for (what, stream) in [("TLS", &mut tls_stall), ("WebSocket", &mut ws_stall)] {
        let elapsed = time_until_closed(stream, started).await;
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
            "{what}: closed after {elapsed:?}, expected about 1 s"
        );
    }
    assert_eq!(broker.metrics().snapshot().handshakes_failed, 2);
    broker.shutdown().await;
}

#[tokio::test]
async fn unreadable_or_unusable_certificate_files_stop_the_start_naming_the_file() {
    let dir = Scratch::new("broker-lite-badcert");
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a PEM file\n").expect("write");
    let missing = dir.path().join("missing.pem");
    let other_key = ca.client("other", "/CN=other").key;
    let client_ca_garbage = broker_lite::config::TlsConfig {
        client_ca_file: Some(garbage.clone()),
        require_client_cert: true,
        ..server_tls(&server.cert, &server.key)
    };
    let cases = [
        (server_tls(&missing, &server.key), &missing, "cannot read"),
        (
            server_tls(&garbage, &server.key),
            &garbage,
            "no certificate",
        ),
        (
            server_tls(&server.cert, &garbage),
            &garbage,
            "no PEM private key",
        ),
        (server_tls(&server.cert, &missing), &missing, "cannot read"),
        (client_ca_garbage, &garbage, "no CA certificate"),
        // A key that is not the certificate's: both files are named.
        (
            server_tls(&server.cert, &other_key),
            &other_key,
            "not the certificate's",
        ),
    ];
    for (tls_cfg, file, why) in cases {
        let config = Config {
            listeners: vec![tls(tls_cfg.clone())],
            ..Config::default()
        };
        let err = match Broker::start(config).await {
            Ok(b) => {
                b.shutdown().await;
                panic!("{tls_cfg:?} should not start");
            }
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&file.display().to_string()) && err.contains(why),
            "{err:?} should name {} and say {why:?}",
            file.display()
        );
    }
}
