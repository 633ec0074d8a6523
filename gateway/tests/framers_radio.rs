//! The SLIP, COBS, length-prefixed and idle-gap framers on real payloads (the UBX packets
//! of the gpsd logs and the LoRaWAN uplinks of real devices), encoded here: every split
//! gives the payloads back in order; corrupt input is counted and the packets around it
//! survive; random payloads round-trip; random bytes never panic. Then the idle gap as
//! the replay and serial sources see it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crc::{Crc, CRC_16_IBM_3740, CRC_16_KERMIT, CRC_16_MODBUS};
use mqgate::capture::Capture;
use mqgate::frame::{cobs_encode, slip_encode, BadKind, Framed, FramingConfig, PREVIEW_LEN};
use proptest::prelude::*;

#[path = "common/split.rs"]
mod split;
use split::random_chunks;

#[path = "common/real_data.rs"]
mod real_data;
use real_data::real_data;

fn data_dir() -> PathBuf {
    real_data("")
}

fn config(yaml: &str) -> FramingConfig {
    let c: FramingConfig = serde_yaml_ng::from_str(yaml).expect("the framing YAML parses");
    assert_eq!(c.validate(), vec![], "{yaml}");
    c
}

/// Every UBX packet of the three u-blox logs, as the binary framer cuts them.
fn ubx_packets() -> Vec<Vec<u8>> {
    let ubx = config(
        "type: binary\nsync: [0xB5, 0x62]\n\
         length: { offset: 4, width: 2, endian: little, adjust: 2 }\n\
         checksum: { kind: fletcher8, from: 2 }",
    );
    let mut packets = Vec::new();
    for log in [
        "ublox-neo-m8n.log",
        "ublox-neo-m8t.log",
        "ublox-ned-m8t-sbfrx3.log",
    ] {
        let data = Capture::load(&data_dir().join("gpsd").join(log))
            .expect("the gpsd log loads")
            .bytes();
        packets.extend(frames(&run(&ubx, &[&data])));
    }
    assert_eq!(packets.len(), 52 + 242 + 165, "the UBX packets of the logs");
    packets
}

/// The uplink payloads of `lorawan-devices/uplink-examples.json`.
fn uplinks() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(data_dir().join("lorawan-devices/uplink-examples.json"))
        .expect("the uplink examples");
    let records: Vec<serde_json::Value> = serde_json::from_str(&text).expect("JSON");
    let payloads: Vec<Vec<u8>> = records
        .iter()
        .map(|r| hex(r["bytes_hex"].as_str().expect("bytes_hex")))
        .collect();
    assert_eq!(payloads.len(), 29);
    payloads
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn run(config: &FramingConfig, chunks: &[&[u8]]) -> Vec<Framed> {
    let mut framer = config.build();
    let mut out = Vec::new();
    for c in chunks {
        framer.push(c, &mut out);
    }
    framer.finish(&mut out);
    out
}

fn frames(out: &[Framed]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|f| match f {
            Framed::Frame(b) => Some(b.to_vec()),
            Framed::Bad(_) => None,
        })
        .collect()
}

fn bad_kinds(out: &[Framed]) -> Vec<BadKind> {
    out.iter()
        .filter_map(|f| match f {
            Framed::Bad(b) => Some(b.kind),
            Framed::Frame(_) => None,
        })
        .collect()
}

/// One push, every two-piece split, byte by byte and random splits all give one output.
fn assert_any_split_same(config: &FramingConfig, data: &[u8], every_position: bool) -> Vec<Framed> {
    let whole = run(config, &[data]);
    if every_position {
        for at in 0..=data.len() {
            let (a, b) = data.split_at(at);
            assert_eq!(run(config, &[a, b]), whole, "split at byte {at}");
        }
    }
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(run(config, &bytes), whole, "byte by byte");
    for seed in 1..=8 {
        let chunks = random_chunks(data, seed, 97);
        assert_eq!(run(config, &chunks), whole, "random split {seed}");
    }
    whole
}

/// A length-prefixed packet: u16 LE length of the payload, payload, CRC-16/MODBUS LE over
/// both.
fn prefixed(payload: &[u8]) -> Vec<u8> {
    let mut p = (payload.len() as u16).to_le_bytes().to_vec();
    p.extend_from_slice(payload);
    let crc = Crc::<u16>::new(&CRC_16_MODBUS).checksum(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

const PREFIXED: &str = "type: binary\nlength: { offset: 0, width: 2, endian: little, adjust: 2 }\n\
                        checksum: { kind: crc16, algorithm: modbus, endian: little }\n\
                        max_length: 1024";

type Encoder = fn(&[u8], &mut Vec<u8>);

fn prefixed_into(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&prefixed(payload));
}

/// The three delimited framings: config, encoder, and whether a frame is the whole packet
/// (length-prefixed) rather than the payload.
fn framings() -> [(&'static str, FramingConfig, Encoder); 3] {
    [
        ("slip", config("type: slip"), slip_encode as Encoder),
        ("cobs", config("type: cobs"), cobs_encode as Encoder),
        ("prefixed", config(PREFIXED), prefixed_into as Encoder),
    ]
}

fn expected(name: &str, payloads: &[Vec<u8>]) -> Vec<Vec<u8>> {
    match name {
        "prefixed" => payloads.iter().map(|p| prefixed(p)).collect(),
        _ => payloads.to_vec(),
    }
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn real_payloads_come_back_whole_and_in_order_however_the_stream_is_split() {
    let uplinks = uplinks();
    let ubx = ubx_packets();
    let specials = ubx
        .iter()
        .flatten()
        .filter(|&&b| b == 0xC0 || b == 0xDB || b == 0)
        .count();
    assert!(
        specials > 1000,
        "the UBX packets exercise escapes and zeros: {specials}"
    );
    for (name, config, encode) in framings() {
        let mut small: Vec<Vec<u8>> = uplinks.clone();
        small.extend(ubx.iter().take(6).cloned());
        let mut data = Vec::new();
        small.iter().for_each(|p| encode(p, &mut data));
        let out = assert_any_split_same(&config, &data, true);
        assert_eq!(frames(&out), expected(name, &small), "{name}");
        assert_eq!(bad_kinds(&out), vec![], "{name}");

        let mut data = Vec::new();
        ubx.iter().for_each(|p| encode(p, &mut data));
        let out = assert_any_split_same(&config, &data, false);
        assert_eq!(
            frames(&out),
            expected(name, &ubx),
            "{name}: all UBX packets"
        );
        println!("{name}: {} bytes, {} frames", data.len(), ubx.len());
    }
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn real_packets_as_bursts_split_anywhere_come_back_whole_at_each_silence() {
    let packets: Vec<Vec<u8>> = uplinks().into_iter().chain(ubx_packets()).collect();
    let idle = config("type: idle_gap\nmax_length: 1024");
    let mut framer = idle.build();
    let mut out = Vec::new();
    for p in &packets {
        for at in 0..=p.len() {
            let (a, b) = p.split_at(at);
            framer.push(a, &mut out);
            framer.push(b, &mut out);
            framer.idle(&mut out);
        }
    }
    framer.finish(&mut out);
    let want: Vec<Vec<u8>> = packets
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), p.len() + 1))
        .collect();
    assert_eq!(frames(&out), want);
    assert_eq!(bad_kinds(&out), vec![]);
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn other_crc_variants_and_a_one_byte_length_frame_the_uplinks() {
    let yaml = "type: binary\nlength: { offset: 0, width: 1, adjust: 2 }\n\
                checksum: { kind: crc16, algorithm: ccitt_false, from: 1 }";
    let ccitt = Crc::<u16>::new(&CRC_16_IBM_3740);
    let kermit = Crc::<u16>::new(&CRC_16_KERMIT);
    let yaml_kermit = "type: binary\nlength: { offset: 0, width: 2, adjust: 2 }\n\
                       checksum: { kind: crc16, algorithm: kermit, endian: little }";
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for p in uplinks() {
        a.push(p.len() as u8);
        a.extend_from_slice(&p);
        a.extend_from_slice(&ccitt.checksum(&p).to_be_bytes());
        let start = b.len();
        b.extend_from_slice(&(p.len() as u16).to_be_bytes());
        b.extend_from_slice(&p);
        let crc = kermit.checksum(&b[start..]);
        b.extend_from_slice(&crc.to_le_bytes());
    }
    for (yaml, data) in [(yaml, a), (yaml_kermit, b)] {
        let out = assert_any_split_same(&config(yaml), &data, true);
        assert_eq!(
            (frames(&out).len(), bad_kinds(&out)),
            (29, vec![]),
            "{yaml}"
        );
    }
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn a_corrupt_packet_is_counted_and_every_other_packet_survives() {
    let payloads: Vec<Vec<u8>> = ubx_packets().into_iter().take(40).collect();
    // A short packet: COBS has no check, so a bad code byte is only seen when it points
    // past the packet's end.
    let k = (5..40)
        .find(|&k| payloads[k].len() < 200)
        .expect("a short packet");
    for (name, config, encode) in framings() {
        let mut data = Vec::new();
        let mut starts = Vec::new();
        for p in &payloads {
            starts.push(data.len());
            encode(p, &mut data);
        }
        // Break packet k the way each format breaks: an invalid escape for SLIP, a code
        // byte pointing past the 0x00 for COBS, a CRC byte for the length prefix.
        let at = starts[k] + 1;
        match name {
            "slip" => data.splice(at..at, [0xDB, 0x41]).for_each(drop),
            "cobs" => data[at] = 0xFE,
            _ => data[starts[k + 1] - 1] ^= 0x5A,
        }
        let out = assert_any_split_same(&config, &data, false);
        let mut want = expected(name, &payloads);
        want.remove(k);
        assert_eq!(frames(&out), want, "{name}");
        let bad = bad_kinds(&out);
        println!("{name}: packet {k} broken, {} reports", bad.len());
        assert_eq!(bad, vec![BadKind::Checksum], "{name}");
    }
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn overlong_packets_and_a_stream_that_starts_mid_packet_are_counted_not_framed() {
    let uplinks = uplinks();
    for (name, yaml, encode) in [
        ("slip", "type: slip\nmax_length: 8", slip_encode as Encoder),
        ("cobs", "type: cobs\nmax_length: 8", cobs_encode as Encoder),
    ] {
        let mut data = vec![0x11, 0x22, 0x33];
        uplinks.iter().for_each(|p| encode(p, &mut data));
        let out = assert_any_split_same(&config(yaml), &data, true);
        let long = uplinks.iter().filter(|p| p.len() > 8).count();
        let short: Vec<Vec<u8>> = uplinks.iter().filter(|p| p.len() <= 8).cloned().collect();
        assert_eq!(frames(&out), short, "{name}");
        let bad = bad_kinds(&out);
        assert_eq!(
            bad[0],
            BadKind::Garbage,
            "{name}: bytes before the first delimiter"
        );
        assert_eq!(bad.len(), 1 + long, "{name}: {bad:?}");
        assert!(bad[1..].iter().all(|k| *k == BadKind::Overlong), "{name}");
    }
}

#[test]
fn a_length_prefix_needs_sync_bytes_or_a_checksum() {
    let c: FramingConfig =
        serde_yaml_ng::from_str("type: binary\nlength: { offset: 0, width: 1 }").unwrap();
    let problems = c.validate();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "sync");
    assert!(problems[0].1.contains("checksum"), "{}", problems[0].1);
}

#[test]
fn every_framing_example_in_the_docs_parses_and_validates() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/frame");
    let mut examples = 0;
    for file in [
        "mod.rs",
        "binary.rs",
        "lines.rs",
        "slip.rs",
        "cobs.rs",
        "idle.rs",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).expect("source file");
        let mut block: Option<String> = None;
        for line in text.lines() {
            let doc = line
                .trim_start()
                .strip_prefix("///")
                .map(|d| d.strip_prefix(' ').unwrap_or(d));
            match (doc, &mut block) {
                (Some("```yaml"), None) => block = Some(String::new()),
                (Some("```"), Some(yaml)) => {
                    let value: serde_yaml_ng::Value =
                        serde_yaml_ng::from_str(yaml).expect("doc YAML parses");
                    let framing = serde_yaml_ng::to_string(&value["framing"]).unwrap();
                    config(&framing);
                    examples += 1;
                    block = None;
                }
                (Some(doc), Some(yaml)) => {
                    yaml.push_str(doc);
                    yaml.push('\n');
                }
                _ => {}
            }
        }
    }
    assert!(examples >= 8, "only {examples} examples found");
}

fn any_framing() -> impl Strategy<Value = (usize, FramingConfig, Encoder)> {
    (0usize..3).prop_map(|i| {
        let (_, c, e) = framings().into_iter().nth(i).unwrap();
        (i, c, e)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn encoding_then_framing_gives_back_any_payloads(
        (i, config, encode) in any_framing(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..12),
        seed in any::<u64>(),
    ) {
        let mut data = Vec::new();
        payloads.iter().for_each(|p| encode(p, &mut data));
        let name = ["slip", "cobs", "prefixed"][i];
        let chunks = random_chunks(&data, seed, 40);
        let out = run(&config, &chunks);
        prop_assert_eq!(frames(&out), expected(name, &payloads));
        prop_assert_eq!(bad_kinds(&out), vec![]);
    }

    #[test]
    fn idle_gaps_between_bursts_give_back_any_payloads(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..12),
        seed in any::<u64>(),
    ) {
        let mut framer = config("type: idle_gap").build();
        let mut out = Vec::new();
        for p in &payloads {
            for c in random_chunks(p, seed, 40) {
                framer.push(c, &mut out);
            }
            prop_assert!(framer.idle_after().is_some());
            framer.idle(&mut out);
        }
        framer.finish(&mut out);
        prop_assert_eq!(frames(&out), payloads);
        prop_assert_eq!(bad_kinds(&out), vec![]);
    }

    #[test]
    fn random_bytes_never_panic_and_any_split_gives_the_same_reports(
        (_, config, _) in any_framing(),
        data in prop::collection::vec(prop_oneof![any::<u8>(), Just(0u8), Just(0xC0), Just(0xDB)], 0..600),
        seed in any::<u64>(),
    ) {
        let whole = run(&config, &[&data]);
        prop_assert_eq!(&run(&config, &random_chunks(&data, seed, 50)), &whole);
        for f in &whole {
            match f {
                Framed::Frame(b) => prop_assert!(b.len() <= 1024),
                Framed::Bad(b) => prop_assert!(b.preview.len() <= PREVIEW_LEN),
            }
        }
    }
}

mod sources {
    use super::*;
    use mqgate::frame::Frame;
    use mqgate::source::replay::{self, Chunk, Speed};
    use mqgate::source::serial::{self, SerialSettings};
    use mqgate::source::{DeviceSide, Feed, SourceState, SourceStatus};
    use serialport::{SerialPort, TTYPort};
    use std::io::Write;
    use tokio::sync::{mpsc, watch};
    use tokio::time::Instant;

    fn feed(framing: &str) -> (Feed, Arc<SourceStatus>, mpsc::Receiver<Frame>) {
        let status = Arc::new(SourceStatus::new("radio"));
        let (tx, rx) = mpsc::channel(64);
        let feed = Feed::new("radio", config(framing).build(), status.clone(), tx, None);
        (feed, status, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_replay_ends_each_burst_at_its_recorded_silence() {
        let ms = Duration::from_millis;
        let chunk = |at: u64, b: &'static [u8]| (ms(at), Bytes::from_static(b));
        // Two packets from a modem, each read in pieces 5 ms apart, 300 ms between them.
        let chunks: Arc<[Chunk]> = Arc::from(vec![
            chunk(0, b"\x01\x02"),
            chunk(5, b"\x03"),
            chunk(300, b"\xC0\x00"),
            chunk(305, b"\xFF"),
        ]);
        for (speed, times) in [(Speed::Times(1.0), [55, 355]), (Speed::Fast, [0, 0])] {
            let (feed, status, mut rx) = feed("type: idle_gap\nmin_gap_ms: 50");
            let (_stop, shutdown) = watch::channel(false);
            let start = Instant::now();
            tokio::spawn(replay::run(
                chunks.clone(),
                speed,
                false,
                feed,
                replay::CommandSink::none(),
                status,
                shutdown,
            ));
            let mut got = Vec::new();
            while let Some(f) = rx.recv().await {
                got.push((f.bytes.to_vec(), start.elapsed()));
            }
            assert_eq!(
                got,
                vec![
                    (vec![1, 2, 3], ms(times[0])),
                    (vec![0xC0, 0, 0xFF], ms(times[1]))
                ],
                "the last burst ends with the capture"
            );
        }
    }

    #[test]
    fn the_character_time_counts_start_parity_and_stop_bits() {
        let mut s = SerialSettings::new("/dev/null", 9600);
        assert_eq!(s.char_time().as_micros(), 1041);
        s.parity = tokio_serial::Parity::Even;
        s.stop_bits = tokio_serial::StopBits::Two;
        assert_eq!(s.char_time().as_micros(), 1250);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_serial_source_cuts_a_pty_stream_at_its_silences() {
        let (mut master, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
        let path = slave.name().expect("the slave side has a path");
        drop(slave);
        let (feed, status, mut rx) = feed("type: idle_gap\nmin_gap_ms: 30");
        let settings = SerialSettings::new(&path, 115_200);
        let (stop, shutdown) = watch::channel(false);
        let writer = serial::Writer::new(FramingConfig::default(), DeviceSide::none());
        let task = tokio::spawn(serial::run(
            settings,
            feed,
            writer,
            status.clone(),
            shutdown,
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !matches!(status.state(), SourceState::Connected { .. }) {
            assert!(
                std::time::Instant::now() < deadline,
                "the port did not open"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for burst in [&b"\x00\xC0 first packet"[..], b"second", b"\xFF\xFE third"] {
            master.write_all(burst).expect("write");
            assert_eq!(&next(&mut rx).await.bytes[..], burst);
        }
        stop.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the source stops")
            .expect("no panic");
    }

    async fn next(rx: &mut mpsc::Receiver<Frame>) -> Frame {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a frame within 10 s")
            .expect("the source runs")
    }
}
