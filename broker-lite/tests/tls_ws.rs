//! Listeners with real clients: TLS (mosquitto_pub/sub with --cafile, client
//! certificates), WebSocket and WebSocket over TLS (paho-mqtt), several
//! listeners at once, the per-IP connection limit, and slow clients that hold
//! a connection without finishing CONNECT or a handshake.

mod common;
mod real;
mod streams;

use std::process::Command;

use broker_lite::config::TlsConfig;
use common::{publish, subscribe, ConnectBytes};
use mqtt_proto::codec::Packet;
use real::{python, run_py};
use streams::*;
use test_support::mosquitto::{mosquitto_pub, mosquitto_pub_status, Subscriber};
use test_support::pki::{Ca, CertKey};
use test_support::process::Proc;
use test_support::Scratch;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A CA with a server certificate and two client certificates (CN `sensor-1`,
/// and one without a CN), in a folder removed at the end of the test.
struct Pki {
    dir: Scratch,
    ca: Ca,
    server: CertKey,
    client: CertKey,
    client_without_cn: CertKey,
}

fn pki() -> Pki {
    let dir = Scratch::new("broker-lite-tls");
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let client = ca.client("client", "/O=broker-lite tests/CN=sensor-1");
    let client_without_cn = ca.client("nocn", "/O=broker-lite tests");
    Pki {
        dir,
        ca,
        server,
        client,
        client_without_cn,
    }
}

impl Pki {
    fn server_tls(&self) -> TlsConfig {
        server_tls(&self.server.cert, &self.server.key)
    }

    fn client_cert_tls(&self, use_cn_as_username: bool) -> TlsConfig {
        TlsConfig {
            client_ca_file: Some(self.ca.cert.clone()),
            require_client_cert: true,
            use_cn_as_username,
            ..self.server_tls()
        }
    }

    fn ca_arg(&self) -> String {
        self.ca.cert.display().to_string()
    }

    fn client_args(&self, who: &CertKey) -> Vec<String> {
        vec![
            "--cafile".into(),
            self.ca_arg(),
            "--cert".into(),
            who.cert.display().to_string(),
            "--key".into(),
            who.key.display().to_string(),
        ]
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// mosquitto_pub that is expected to fail; returns its stderr.
fn mosquitto_pub_fails(port: u16, args: &[&str]) -> String {
    let done = mosquitto_pub_status(port, args);
    assert!(
        !done.status.success(),
        "mosquitto_pub {args:?} should have failed"
    );
    done.stderr
}

#[test]
fn mosquitto_sub_and_pub_with_a_ca_file_talk_over_tls() {
    let pki = pki();
    let b = Brokers::start(vec![tls(pki.server_tls())], |_| {});
    let port = b.ports[0];
    let ca = pki.ca_arg();
    let mut sub = Subscriber::subscribed(port, &["--cafile", &ca, "-t", "tls/t", "-q", "1"]);
    mosquitto_pub(
        port,
        &["--cafile", &ca, "-t", "tls/t", "-q", "1", "-m", "over tls"],
    );
    let got = sub.expect_msg();
    assert_eq!(
        (got.topic.as_str(), got.text().as_str(), got.qos),
        ("tls/t", "over tls", 1)
    );
}

#[test]
fn a_required_client_certificate_that_is_missing_is_refused_and_one_that_is_there_works() {
    let pki = pki();
    let b = Brokers::start(vec![tls(pki.client_cert_tls(false))], |_| {});
    let port = b.ports[0];
    let with_cert = pki.client_args(&pki.client);
    let mut args = strs(&with_cert);
    args.extend(["-t", "cert/t", "-q", "1"]);
    let mut sub = Subscriber::subscribed(port, &args);

    let before = b.metrics().handshakes_failed;
    mosquitto_pub_fails(
        port,
        &["--cafile", &pki.ca_arg(), "-t", "cert/t", "-m", "no cert"],
    );
    assert!(
        b.metrics().handshakes_failed > before,
        "the refused handshake is counted"
    );

    let mut args = strs(&with_cert);
    args.extend(["-t", "cert/t", "-q", "1", "-m", "with cert"]);
    mosquitto_pub(port, &args);
    let got = sub.expect_msg();
    assert_eq!(
        got.text(),
        "with cert",
        "only the message with a certificate arrives"
    );
}

#[test]
fn with_use_cn_as_username_a_certificate_without_a_common_name_is_refused() {
    let pki = pki();
    let b = Brokers::start(vec![tls(pki.client_cert_tls(true))], |_| {});
    let port = b.ports[0];
    let with_cn = pki.client_args(&pki.client);
    let mut args = strs(&with_cn);
    args.extend(["-t", "cn/t", "-q", "1"]);
    let mut sub = Subscriber::subscribed(port, &args);

    let without = pki.client_args(&pki.client_without_cn);
    let mut args = strs(&without);
    args.extend(["-t", "cn/t", "-m", "no cn"]);
    let before = b.metrics().handshakes_failed;
    mosquitto_pub_fails(port, &args);
    assert!(b.metrics().handshakes_failed > before, "counted");

    // A CONNECT user name of its own is replaced by the certificate's; the client still gets in.
    let mut args = strs(&with_cn);
    args.extend([
        "-u",
        "someone-else",
        "-t",
        "cn/t",
        "-q",
        "1",
        "-m",
        "cn sensor-1",
    ]);
    mosquitto_pub(port, &args);
    assert_eq!(sub.expect_msg().text(), "cn sensor-1");
}

#[test]
fn the_certificate_common_name_is_the_user_name_the_acls_see() {
    let pki = pki();
    let acl = pki.dir.path().join("acl");
    let rules = "topic read sensors/#\n\nuser sensor-1\ntopic write sensors/sensor-1/#\n";
    std::fs::write(&acl, rules).expect("write the ACL file");
    let listeners = vec![
        plain(),
        tls(pki.client_cert_tls(true)),
        tls(pki.client_cert_tls(false)),
    ];
    let b = Brokers::start(listeners, |c| c.auth.acl_file = Some(acl.clone()));
    let [p_plain, p_cn, p_no_cn] = [b.ports[0], b.ports[1], b.ports[2]];
    let mut sub = Subscriber::subscribed(p_plain, &["-t", "sensors/#", "-q", "1"]);
    let cert = pki.client_args(&pki.client);
    let publish_as = |port: u16, topic: &str, payload: &str| {
        let mut args = strs(&cert);
        args.extend(["-u", "someone-else", "-q", "1", "-t", topic, "-m", payload]);
        mosquitto_pub(port, &args);
    };
    // The CONNECT says someone-else; the certificate says sensor-1, which may write here.
    publish_as(p_cn, "sensors/sensor-1/t", "as sensor-1");
    // Without use_cn_as_username the same client stays someone-else, who may write nothing.
    publish_as(p_no_cn, "sensors/sensor-1/t", "as someone-else");
    // sensor-1 may not write another sensor's topic.
    publish_as(p_cn, "sensors/sensor-2/t", "not its topic");
    publish_as(p_cn, "sensors/sensor-1/t", "end");
    let got: Vec<String> = (0..2).map(|_| sub.expect_msg().text()).collect();
    assert_eq!(got, ["as sensor-1", "end"]);
    assert_eq!(
        b.metrics().publishes_denied,
        2,
        "the two refused publishes are counted"
    );
}

#[test]
fn paho_over_websocket_publishes_and_subscribes() {
    let b = Brokers::start(vec![websocket(None)], |_| {});
    let run = run_py("ws_client.py", b.ports[0], &["roundtrip", "30"]);
    assert_eq!(run.one("done").int("count"), 31);
}

#[test]
fn paho_over_websocket_with_tls_publishes_and_subscribes() {
    let pki = pki();
    let b = Brokers::start(vec![websocket(Some(pki.server_tls()))], |_| {});
    let ca = pki.ca_arg();
    let run = run_py(
        "ws_client.py",
        b.ports[0],
        &["--ca", &ca, "roundtrip", "30"],
    );
    assert_eq!(run.one("done").int("count"), 31);
}

/// paho's `listen` mode over WebSocket, started and subscribed.
fn ws_listener(port: u16, ca: Option<&str>, topic: &str, count: usize) -> Proc {
    let script = format!("{}/tests/py/ws_client.py", env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(python());
    cmd.arg("-B")
        .arg(script)
        .args(["127.0.0.1", &port.to_string()]);
    if let Some(ca) = ca {
        cmd.args(["--ca", ca]);
    }
    cmd.args(["listen", topic, &count.to_string()]);
    let mut proc = Proc::spawn("ws_client.py listen", &mut cmd);
    proc.expect_line("subscribed", WAIT, |l| l.contains("\"subscribed\""));
    proc
}

#[test]
fn messages_cross_between_plain_tls_websocket_and_secure_websocket_listeners() {
    let pki = pki();
    let listeners = vec![
        plain(),
        tls(pki.server_tls()),
        websocket(None),
        websocket(Some(pki.server_tls())),
    ];
    let b = Brokers::start(listeners, |_| {});
    let [p_plain, p_tls, p_ws, p_wss] = [b.ports[0], b.ports[1], b.ports[2], b.ports[3]];
    let ca = pki.ca_arg();
    let mut sub_plain = Subscriber::subscribed(p_plain, &["-t", "x/#", "-q", "1"]);
    let mut sub_tls = Subscriber::subscribed(p_tls, &["--cafile", &ca, "-t", "x/#", "-q", "1"]);
    let mut sub_ws = ws_listener(p_ws, None, "x/#", 4);
    let mut sub_wss = ws_listener(p_wss, Some(&ca), "x/#", 4);

    mosquitto_pub(p_plain, &["-t", "x/plain", "-q", "1", "-m", "from plain"]);
    mosquitto_pub(
        p_tls,
        &["--cafile", &ca, "-t", "x/tls", "-q", "1", "-m", "from tls"],
    );
    run_py("ws_client.py", p_ws, &["publish", "x/ws", "from ws"]);
    run_py(
        "ws_client.py",
        p_wss,
        &["--ca", &ca, "publish", "x/wss", "from wss"],
    );

    let want = ["from plain", "from tls", "from ws", "from wss"];
    for sub in [&mut sub_plain, &mut sub_tls] {
        let got: Vec<String> = (0..4).map(|_| sub.expect_msg().text()).collect();
        assert_eq!(got, want);
    }
    for sub in [&mut sub_ws, &mut sub_wss] {
        let got: Vec<String> = (0..4)
            .map(|_| sub.expect_line("received", WAIT, |l| l.contains("\"received\"")))
            .collect();
        for (line, payload) in got.iter().zip(want) {
            assert!(line.contains(payload), "{line} should carry {payload}");
        }
        assert!(sub.wait_exit(WAIT).success(), "{}", sub.transcript());
    }
}

/// A broker with one WebSocket listener (path `/mqtt`) on a free loopback port.
async fn websocket_broker() -> broker_lite::Broker {
    broker_lite::Broker::start(broker_lite::Config {
        listeners: vec![websocket(None)],
        sys_interval_secs: 0,
        ..broker_lite::Config::default()
    })
    .await
    .expect("broker starts")
}

#[tokio::test]
async fn mqtt_packets_may_span_websocket_messages_and_a_message_may_hold_several() {
    let broker = websocket_broker().await;
    let addr = broker.local_addr();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut ws = connect_ws(tcp, addr, "/mqtt")
        .await
        .expect("WebSocket handshake");
    let connect = ConnectBytes::new("ws-frames").encode();
    // CONNECT cut in three messages, then SUBSCRIBE and two PUBLISHes in one.
    let (a, rest) = connect.split_at(3);
    let (b, c) = rest.split_at(5);
    ws.send_frames(&[a, b, c]).await;
    let mut together = subscribe(1, &[("frames/#", 0)]);
    together.extend(publish("frames/1", b"one", 0, false, false, 0));
    together.extend(publish("frames/2", b"two", 0, false, false, 0));
    ws.send_frames(&[&together]).await;
    let mut client = Mqtt::new(Box::new(ws));
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match client.recv().await {
            Some(Packet::Publish(p)) => seen.push(format!(
                "{}={}",
                p.topic,
                String::from_utf8_lossy(&p.payload)
            )),
            Some(other) => seen.push(other.name().to_string()),
            None => panic!("closed after {seen:?}"),
        }
    }
    assert_eq!(seen, ["CONNACK", "SUBACK", "frames/1=one", "frames/2=two"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_websocket_client_that_does_not_offer_mqtt_or_asks_another_path_is_refused() {
    let broker = websocket_broker().await;
    let addr = broker.local_addr();
    for (path, protocol, status) in [("/mqtt", "chat", "400"), ("/other", "mqtt", "404")] {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
        );
        tcp.write_all(request.as_bytes())
            .await
            .expect("send request");
        let mut answer = Vec::new();
        let read = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut answer);
        tokio::time::timeout(WAIT, read)
            .await
            .expect("answered and closed")
            .ok();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path} {protocol}: {answer}"
        );
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_text_websocket_message_closes_the_connection() {
    use futures_util::SinkExt;
    let broker = websocket_broker().await;
    let addr = broker.local_addr();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut ws = connect_ws(tcp, addr, "/mqtt")
        .await
        .expect("WebSocket handshake");
    ws.send_frames(&[&ConnectBytes::new("ws-text").encode()])
        .await;
    let text = tokio_tungstenite::tungstenite::Message::Text("hello".into());
    ws.ws.send(text).await.expect("send text");
    let mut client = Mqtt::new(Box::new(ws));
    // The CONNACK may or may not get out first; then the connection ends.
    for _ in 0..2 {
        match client.recv().await {
            None => break,
            Some(Packet::ConnAck(_)) => {}
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
    client.expect_closed().await;
    broker.shutdown().await;
}
