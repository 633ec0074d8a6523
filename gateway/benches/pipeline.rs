//! Gateway benchmark (a program, run with `cargo bench -p mqgate --bench pipeline`):
//! 1. script calls/s for each example mapping on a representative frame;
//! 2. frames/s from a fast replay of a recorded GPS log through the NMEA decoder into
//!    the embedded broker, with one TCP subscriber receiving every message.
//!
//! Prints Markdown; every loop is bounded in count and time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use mqgate::config::GatewayConfig;
use mqgate::frame::{Frame, Meta};
use mqgate::mapping::{Mapped, Mapper};
use mqgate::pipeline::{self, build, ReplayOverride};
use mqgate::source::replay::Speed;
use mqtt_proto::codec::{encode, read_packet, Connect, Packet, QoS, Subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Copies of the GPS log played back to back: 212 sentences each.
const COPIES: usize = 600;
const LIMIT: Duration = Duration::from_secs(60);
const DELAY: Duration = Duration::from_millis(500);
/// Rounds of the replay benchmark; the median is reported.
const ROUNDS: usize = 5;

fn frame(source: &str, bytes: &[u8]) -> Frame {
    Frame {
        source: Arc::from(source),
        received_at: SystemTime::now(),
        bytes: Bytes::copy_from_slice(bytes),
        meta: Meta::default(),
    }
}

fn calls_per_second(mapper: &Mapper, frame: &Frame) -> f64 {
    assert!(
        matches!(mapper.map(frame), Mapped::Messages(_)),
        "the benchmark frame for {} maps to messages",
        mapper.source_id()
    );
    let start = Instant::now();
    let mut n = 0u64;
    while n < 200_000 && start.elapsed() < Duration::from_secs(2) {
        std::hint::black_box(mapper.map(frame));
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

async fn subscriber(addr: std::net::SocketAddr, filter: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut out = BytesMut::new();
    encode(
        &Packet::Connect(Connect {
            protocol_level: 4,
            clean_session: true,
            keep_alive: 0,
            client_id: "bench-sub".into(),
            will: None,
            username: None,
            password: None,
        }),
        &mut out,
    );
    encode(
        &Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: vec![(filter.into(), QoS::AtMostOnce)],
        }),
        &mut out,
    );
    s.write_all(&out).await.expect("write");
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        s.read_buf(&mut buf).await.expect("read");
        while let Some(p) = read_packet(&mut buf, 1 << 20).expect("valid packets") {
            if matches!(p, Packet::SubAck(_)) {
                return s;
            }
        }
    }
}

/// Messages received, and when the first one came.
async fn count_publishes(mut s: TcpStream, expected: u64) -> (u64, Option<Instant>) {
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut n = 0;
    let mut first = None;
    while n < expected {
        if buf.capacity() - buf.len() < 64 * 1024 {
            buf.reserve(256 * 1024);
        }
        if s.read_buf(&mut buf).await.expect("read") == 0 {
            break;
        }
        while let Some(p) = read_packet(&mut buf, 1 << 20).expect("valid packets") {
            if matches!(p, Packet::Publish(_)) {
                first.get_or_insert_with(Instant::now);
                n += 1;
            }
        }
    }
    (n, first)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config =
        GatewayConfig::load(&root.join("examples/demo.yaml")).expect("the demo config loads");
    let mappers = build::build_mappers(&config).expect("scripts compile");

    println!("## Script calls per second (one thread, limits on)\n");
    println!("| mapping | frame | calls/s |\n|---|---|---:|");
    let gga = b"$GPGGA,214350.00,4023.86,N,00339.163,W,8,09,2.0,695.7,M,51.6,M,,*44";
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("gps", gga.to_vec(), "NMEA GGA sentence"),
        (
            "lpp",
            hex("03670110056700ff"),
            "Cayenne LPP, two temperatures",
        ),
        (
            "json-sensor",
            br#"{"name":"kitchen","temperature":21.5,"humidity":40.2}"#.to_vec(),
            "JSON line, 3 fields",
        ),
        (
            "binary-sensor",
            hex("aa550d070102fb2e11d700018bcd0bc463d3"),
            "18-byte binary frame with CRC-16",
        ),
    ];
    for (source, bytes, what) in cases {
        let mapper = &mappers[source];
        let rate = calls_per_second(mapper, &frame(source, &bytes));
        println!("| {source} | {what} | {rate:.0} |");
    }
    // The first NAV-PVT with a 3D fix of the UBX capture (class 1, id 7: 92 bytes of
    // payload; fixType at payload offset 20).
    let ubx_log = std::fs::read(root.join("tests/captures/gps-ubx.log")).expect("UBX capture");
    let pvt_at = ubx_log
        .windows(27)
        .position(|w| w[..4] == [0xb5, 0x62, 0x01, 0x07] && w[26] == 3)
        .expect("a NAV-PVT with a fix in the capture");
    let pvt = ubx_log[pvt_at..pvt_at + 100].to_vec();
    let rate = calls_per_second(&mappers["ubx"], &frame("ubx", &pvt));
    println!("| ubx | UBX NAV-PVT | {rate:.0} |");
    // A LoRaWAN uplink as the Semtech UDP source hands it over.
    let mut uplink = frame("lora", &hex("40000000480012d703bcaee776604506"));
    uplink.meta.rssi = Some(-46.0);
    uplink.meta.snr = Some(10.0);
    uplink.meta.frequency_hz = Some(903_900_000);
    uplink.meta.datarate = Some("SF10BW125".into());
    for (k, v) in [
        ("gwmp", "rxpk"),
        ("gateway_eui", "7276ff0044010010"),
        ("tmst", "313998876"),
        ("time", "2020-10-29T15:57:40.170301Z"),
    ] {
        uplink.meta.extra.insert(k.into(), v.into());
    }
    let rate = calls_per_second(&mappers["lora"], &uplink);
    println!("| lora | LoRaWAN uplink from a packet forwarder | {rate:.0} |");

    // Fast replay → NMEA mapping → store → embedded broker → one TCP subscriber,
    // as the example mapping has it (QoS 0: the store keeps it in memory) and at
    // QoS 1 (every message committed to the SQLite file first).
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        println!(
            "\n## Fast replay through the NMEA mapping (QoS {}) into the embedded broker\n",
            qos as u8
        );
        let mut rates = Vec::new();
        for _ in 0..ROUNDS {
            let mut config = config.clone();
            for m in config.mappings.iter_mut().filter(|m| m.source == "gps") {
                m.qos = qos;
            }
            if let Some(rate) = replay_into_broker(config, qos).await {
                rates.push(rate);
            }
        }
        rates.sort_by(f64::total_cmp);
        if let Some(median) = rates.get(rates.len() / 2) {
            println!("\nmedian of {} rounds: {median:.0} frames/s", rates.len());
        }
    }
}

/// Frames/s of one round, as the subscriber saw them.
async fn replay_into_broker(mut config: GatewayConfig, qos: QoS) -> Option<f64> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let log = std::fs::read(root.join("tests/captures/gps-nmea.log")).expect("the GPS capture");
    // Played at recorded speed, every chunk is due at DELAY and then goes as fast as
    // possible: the subscriber attaches during the delay.
    let mut chunks = Vec::with_capacity(COPIES);
    for _ in 0..COPIES {
        chunks.push((DELAY, Bytes::copy_from_slice(&log)));
    }
    let broker = config.broker.as_mut().expect("the demo has a broker");
    broker.listen = "127.0.0.1:0".parse().expect("address");
    // A fresh store for this run.
    let state =
        std::env::temp_dir().join(format!("mqgate-bench-{}-{}", std::process::id(), qos as u8));
    let _ = std::fs::remove_dir_all(&state);
    config.store.file = state.join("messages.db");
    let (stop, shutdown) = watch::channel(false);
    // Count the messages one pass produces, to know how many to wait for.
    let per_copy = {
        let (tap, mut rx) = tokio::sync::mpsc::channel(1024);
        let over = ReplayOverride {
            chunks: Arc::from(vec![(Duration::ZERO, Bytes::copy_from_slice(&log))]),
            speed: Speed::Fast,
        };
        pipeline::start(
            &config,
            Some("gps"),
            Some(over),
            Some(tap),
            shutdown.clone(),
        )
        .await
        .expect("dry run");
        let mut n = 0u64;
        while rx.recv().await.is_some() {
            n += 1;
        }
        n
    };
    let expected = per_copy * COPIES as u64;
    let over = ReplayOverride {
        chunks: Arc::from(chunks),
        speed: Speed::Times(1.0),
    };
    let mut running = pipeline::start(&config, Some("gps"), Some(over), None, shutdown.clone())
        .await
        .expect("pipeline");
    let addr = running
        .broker
        .as_ref()
        .expect("embedded broker")
        .local_addr();
    let sub = subscriber(addr, "gps/#").await;
    let received = tokio::time::timeout(LIMIT, count_publishes(sub, expected)).await;
    let done = Instant::now();
    let frames: u64 = running
        .sources
        .iter()
        .map(|s| mqgate::source::SourceStatus::get(&s.frames))
        .sum();
    let rate = match received {
        Ok((n, Some(first))) if n == expected => {
            // From the first message to the last, as the subscriber sees them.
            let secs = (done - first).as_secs_f64();
            let rate = frames as f64 / secs;
            println!(
                "- {frames} frames, {n} of {expected} messages received by the subscriber in \
                 {secs:.2} s: {rate:.0} frames/s"
            );
            Some(rate)
        }
        Ok((n, _)) => {
            println!("- only {n} of {expected} messages arrived");
            None
        }
        Err(_) => {
            println!("- timed out after {LIMIT:?}: {frames} frames read");
            None
        }
    };
    let _ = stop.send(true);
    running.outputs_finished().await;
    if let Some(broker) = running.broker.take() {
        broker.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&state);
    rate
}
