//! GWMP benchmark (a program: `cargo bench -p mqgate --bench gwmp`): PUSH_DATA
//! datagrams, one LoRaWAN uplink each, sent over UDP loopback to a `semtech_udp`
//! source → `scripts/semtech-lorawan.rhai` (QoS 1, so every message is committed
//! to the store) → embedded broker → one in-process subscriber. The sender keeps at
//! most WINDOW datagrams unacknowledged (PUSH_ACK), as a fast gateway would.
//!
//! Prints Markdown; every loop is bounded in count and time.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use mqgate::config::GatewayConfig;
use mqgate::pipeline;
use mqtt_proto::codec::QoS;
use tokio::net::UdpSocket;
use tokio::sync::watch;

const DATAGRAMS: u32 = 100_000;
const WINDOW: u32 = 64;
const ROUNDS: usize = 3;
const LIMIT: Duration = Duration::from_secs(60);

fn datagram(n: u32) -> Vec<u8> {
    // An unconfirmed uplink from DevAddr 26011234, FCnt n, FPort 1, 8 bytes of payload.
    let mut phy = vec![0x40, 0x34, 0x12, 0x01, 0x26, 0x00];
    phy.extend_from_slice(&(n as u16).to_le_bytes());
    phy.push(1);
    phy.extend_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    phy.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let data = base64::engine::general_purpose::STANDARD.encode(&phy);
    let json = format!(
        r#"{{"rxpk":[{{"tmst":{n},"chan":2,"rfch":0,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125","codr":"4/5","lsnr":9.5,"rssi":-57,"size":{},"data":"{data}"}}]}}"#,
        phy.len()
    );
    let token = (n as u16).to_be_bytes();
    let mut d = vec![2, token[0], token[1], 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    d.extend_from_slice(json.as_bytes());
    d
}

async fn round(config: &GatewayConfig, port: u16) -> Option<f64> {
    let (stop, shutdown) = watch::channel(false);
    let mut running = pipeline::start(config, None, None, None, shutdown)
        .await
        .expect("the gateway starts");
    let handle = running.broker.as_ref().expect("embedded broker").handle();
    let mut sub = handle
        .subscribe("lora/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let received = tokio::spawn(async move {
        let mut n = 0u32;
        while n < DATAGRAMS {
            if sub.recv().await.is_none() {
                break;
            }
            n += 1;
        }
        (n, Instant::now())
    });
    let gateway = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    gateway.connect(("127.0.0.1", port)).await.expect("connect");
    let start = Instant::now();
    let mut sent = 0u32;
    let mut acked = 0u32;
    let mut buf = [0u8; 16];
    let mut resends = 0u32;
    while acked < DATAGRAMS && start.elapsed() < LIMIT {
        while sent < DATAGRAMS && sent - acked < WINDOW {
            gateway.send(&datagram(sent)).await.expect("send");
            sent += 1;
        }
        match tokio::time::timeout(Duration::from_secs(2), gateway.recv(&mut buf)).await {
            Ok(Ok(4)) if buf[3] == 0x01 => acked += 1,
            Ok(_) => {}
            // A datagram lost on loopback (a full socket buffer): send the window
            // again from here.
            Err(_) => {
                resends += 1;
                sent = acked;
            }
        }
    }
    let result = tokio::time::timeout(LIMIT, received).await;
    let _ = stop.send(true);
    running.outputs_finished().await;
    if let Some(broker) = running.broker.take() {
        broker.shutdown().await;
    }
    match result {
        Ok(Ok((n, done))) if n == DATAGRAMS => {
            let rate = DATAGRAMS as f64 / (done - start).as_secs_f64();
            println!("- round: {rate:.0} datagrams/s, {resends} window(s) sent again after a loss");
            Some(rate)
        }
        Ok(Ok((n, _))) => {
            println!("round: only {n} of {DATAGRAMS} messages arrived");
            None
        }
        _ => {
            println!("round timed out");
            None
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scratch = std::env::temp_dir().join(format!("mqgate-gwmp-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("mappings")).expect("scratch");
    std::fs::write(
        scratch.join("mappings/lora.yaml"),
        format!(
            "source: lora\nscript: {}\nqos: 1\n",
            root.join("scripts/semtech-lorawan.rhai").display()
        ),
    )
    .expect("mapping");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let mut rates = Vec::new();
    for i in 0..ROUNDS {
        let file = scratch.join("mqgate.yaml");
        std::fs::write(
            &file,
            format!(
                "gateway:\n  id: bench\n  state_dir: {}\nbroker:\n  listen: 127.0.0.1:0\n\
                 sources:\n  - id: lora\n    type: semtech_udp\n    listen: 127.0.0.1:{port}\n",
                scratch.join(format!("state-{i}")).display()
            ),
        )
        .expect("config");
        let config = GatewayConfig::load(&file).expect("the config loads");
        if let Some(rate) = round(&config, port).await {
            rates.push(rate);
        }
    }
    rates.sort_by(f64::total_cmp);
    println!("## GWMP datagrams through the Semtech UDP source into the embedded broker\n");
    println!(
        "{DATAGRAMS} PUSH_DATA datagrams (one uplink each, {WINDOW} unacknowledged at most), \
         mapped at QoS 1 through the store, all received by a subscriber; {} rounds: {}",
        rates.len(),
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(median) = rates.get(rates.len() / 2) {
        println!("\nmedian: {median:.0} datagrams/s");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
