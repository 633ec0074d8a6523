//! A `semtech_udp` source end to end in one process: packet forwarder samples sent
//! over UDP loopback → GWMP source → `scripts/semtech-lorawan.rhai` → store →
//! embedded broker, read back by a subscriber.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use test_support::Scratch;

use mqgate::config::GatewayConfig;
use mqgate::pipeline;
use mqtt_proto::codec::QoS;
use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::sync::watch;

#[path = "common/real_data.rs"]
mod real_data;
use real_data::real_data;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn samples() -> Value {
    let path = real_data("semtech-udp/gwmp-samples.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the GWMP samples are needed at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

fn write_config(dir: &Path, port: u16) -> PathBuf {
    let mappings = dir.join("mappings");
    std::fs::create_dir_all(&mappings).unwrap();
    let script = workspace().join("scripts/semtech-lorawan.rhai");
    std::fs::write(
        mappings.join("lora.yaml"),
        format!("source: lora\nscript: {}\nqos: 1\n", script.display()),
    )
    .unwrap();
    let file = dir.join("mqgate.yaml");
    std::fs::write(
        &file,
        format!(
            "gateway:\n  id: lora-test\n  state_dir: {}\nbroker:\n  listen: 127.0.0.1:0\n\
             sources:\n  - id: lora\n    type: semtech_udp\n    listen: 127.0.0.1:{port}\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    file
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[tokio::test]
async fn forwarder_packets_and_status_reach_the_embedded_broker_as_lorawan_messages() {
    // Removed when dropped, last, after the gateway below.
    let scratch = Scratch::new("mqgate-semtech");
    let dir = scratch.path();
    let port = free_udp_port();
    let config = GatewayConfig::load(&write_config(dir, port)).expect("the config loads");
    let (_stop, shutdown) = watch::channel(false);
    let running = pipeline::start(&config, None, None, None, shutdown)
        .await
        .expect("the gateway starts");
    let broker = running.broker.as_ref().expect("embedded broker");
    let mut sub = broker
        .handle()
        .subscribe("lora/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");

    let gateway = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = format!("127.0.0.1:{port}");
    let mut acks = 0;
    for d in samples()["datagrams"].as_array().unwrap() {
        let bytes = hex(d["hex"].as_str().unwrap());
        gateway.send_to(&bytes, &target).await.unwrap();
        if d["header"]["identifier_name"] != "TX_ACK" {
            let mut buf = [0u8; 8];
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), gateway.recv_from(&mut buf))
                .await
                .expect("an ack")
                .unwrap();
            assert_eq!(n, 4);
            assert_eq!(&buf[1..3], &bytes[1..3], "the ack carries the token");
            acks += 1;
        }
    }
    assert_eq!(acks, 7);

    // Two packets with a good CRC (one is a Join Request), three status reports.
    let mut got: BTreeMap<String, Value> = BTreeMap::new();
    while got.len() < 5 {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .unwrap_or_else(|_| panic!("messages so far: {got:?}"))
            .expect("the subscription stays open");
        let v: Value = serde_json::from_slice(&m.payload).expect("JSON payloads");
        got.insert(m.topic.to_string(), v);
    }
    let join = &got["lora/aa555a0000000000/20206d75696c6548/join_request"];
    assert_eq!(join["rssi"], -58.0);
    assert_eq!(join["frequency_hz"], 912_600_000);
    assert_eq!(join["dev_nonce"], 0x2c34);
    let up = &got["lora/7276ff0044010010/48000000/unconfirmed_data_up"];
    assert_eq!(up["fcnt"], 0xd712);
    assert_eq!(up["fport"], 3);
    assert_eq!(up["payload_hex"], "bcaee7");
    assert_eq!(up["rssi"], -46.0);
    let status = &got["lora/gateway/aa555a0000000000/status"];
    assert_eq!(status["rxnb"], 3);
    assert!(got.contains_key("lora/gateway/7076ff0065030022/status"));
    assert!(got.contains_key("lora/gateway/00000000deadbeef/status"));
    assert!(
        got.keys().all(|t| !t.contains("00800000a000661f")),
        "the CRC-failed packet is not mapped: {got:?}"
    );
    let source = &running.sources[0];
    assert_eq!(
        mqgate::source::SourceStatus::get(&source.bad_frames),
        1,
        "one packet failed its CRC"
    );
}
