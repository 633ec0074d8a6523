//! Framer benchmark (a program, run with `cargo bench -p mqgate --bench framers`): frames/s
//! and MB/s through each framer, on real payloads (the UBX packets and NMEA sentences of
//! the gpsd logs) encoded for each framing, fed in 4096-byte reads (the serial source's
//! buffer) and in 64-byte reads (a full-speed USB serial adapter's packet).
//!
//! Prints Markdown; every loop is bounded in count and time. Needs the recordings from
//! real devices (`MQGATE_REAL_DATA`, see the README); without them it says so and stops.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crc::{Crc, CRC_16_MODBUS};
use mqgate::capture::Capture;
use mqgate::frame::{cobs_encode, slip_encode, Framed, FramingConfig};

/// Copies of the payload set in one stream.
const COPIES: usize = 20;
/// Each measurement runs whole passes over the stream for at least this long...
const MIN_TIME: Duration = Duration::from_millis(1500);
/// ...and at most this many passes.
const MAX_PASSES: usize = 10_000;

#[path = "../tests/common/real_data.rs"]
mod real_data;

fn data_dir() -> PathBuf {
    real_data::real_data("gpsd")
}

fn config(yaml: &str) -> FramingConfig {
    let c: FramingConfig = serde_yaml_ng::from_str(yaml).expect("framing YAML");
    assert!(c.validate().is_empty(), "{yaml}");
    c
}

const UBX: &str = "type: binary\nsync: [0xB5, 0x62]\n\
                   length: { offset: 4, width: 2, endian: little, adjust: 2 }\n\
                   checksum: { kind: fletcher8, from: 2 }";
const PREFIXED: &str = "type: binary\nlength: { offset: 0, width: 2, endian: little, adjust: 2 }\n\
                        checksum: { kind: crc16, algorithm: modbus, endian: little }";

fn frames_of(config: &FramingConfig, data: &[u8]) -> Vec<Vec<u8>> {
    let mut framer = config.build();
    let mut out = Vec::new();
    framer.push(data, &mut out);
    framer.finish(&mut out);
    out.into_iter()
        .filter_map(|f| match f {
            Framed::Frame(b) => Some(b.to_vec()),
            Framed::Bad(_) => None,
        })
        .collect()
}

fn ubx_packets() -> Vec<Vec<u8>> {
    [
        "ublox-neo-m8n.log",
        "ublox-neo-m8t.log",
        "ublox-ned-m8t-sbfrx3.log",
    ]
    .iter()
    .flat_map(|log| {
        let data = Capture::load(&data_dir().join(log)).expect("log").bytes();
        frames_of(&config(UBX), &data)
    })
    .collect()
}

fn nmea_lines() -> Vec<u8> {
    let text = std::fs::read(data_dir().join("ublox-neo-m9n-nmea.log")).expect("log");
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        if line.starts_with(b"$") {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn prefixed(payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = Crc::<u16>::new(&CRC_16_MODBUS).checksum(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// What one pass feeds a framer.
enum Input {
    /// One stream, cut into reads of the given size.
    Stream(Vec<u8>),
    /// Bursts separated by silences (the idle-gap framer).
    Bursts(Vec<Vec<u8>>),
}

struct Result {
    frames: usize,
    bytes: usize,
    elapsed: Duration,
}

fn measure(config: &FramingConfig, input: &Input, read: usize) -> Result {
    let mut framer = config.build();
    let mut out: Vec<Framed> = Vec::with_capacity(4096);
    let (mut frames, mut bytes, mut passes) = (0, 0, 0);
    let start = Instant::now();
    while passes < MAX_PASSES && (passes == 0 || start.elapsed() < MIN_TIME) {
        match input {
            Input::Stream(data) => {
                for chunk in data.chunks(read) {
                    framer.push(chunk, &mut out);
                    frames += count(&mut out);
                }
                bytes += data.len();
            }
            Input::Bursts(bursts) => {
                for burst in bursts {
                    for chunk in burst.chunks(read) {
                        framer.push(chunk, &mut out);
                    }
                    framer.idle(&mut out);
                    frames += count(&mut out);
                    bytes += burst.len();
                }
            }
        }
        framer.finish(&mut out);
        count(&mut out);
        passes += 1;
    }
    Result {
        frames,
        bytes,
        elapsed: start.elapsed(),
    }
}

/// Good frames in `out`, which is emptied; a bad report means the input is wrong.
fn count(out: &mut Vec<Framed>) -> usize {
    let n = out.len();
    for f in out.drain(..) {
        if let Framed::Bad(b) = f {
            panic!("the benchmark input has a bad frame: {}", b.detail);
        }
    }
    n
}

fn main() {
    if !cfg!(real_data) {
        eprintln!(
            "the framer benchmark reads the gpsd logs of real receivers: set MQGATE_REAL_DATA \
             to the folder of recordings (README, Tests) and run it again"
        );
        return;
    }
    let ubx = ubx_packets();
    assert_eq!(ubx.len(), 459, "the UBX packets of the gpsd logs");
    let payloads: Vec<Vec<u8>> = (0..COPIES).flat_map(|_| ubx.iter().cloned()).collect();
    let encoded = |encode: fn(&[u8], &mut Vec<u8>)| {
        let mut data = Vec::new();
        payloads.iter().for_each(|p| encode(p, &mut data));
        Input::Stream(data)
    };
    let lines: Vec<u8> = (0..COPIES).flat_map(|_| nmea_lines()).collect();
    let ubx_stream: Vec<u8> = payloads.concat();
    let cases: Vec<(&str, FramingConfig, Input)> = vec![
        (
            "lines + NMEA checksum (u-blox M9N sentences)",
            config("type: lines\nnmea_checksum: true"),
            Input::Stream(lines),
        ),
        (
            "binary, UBX sync + Fletcher-8",
            config(UBX),
            Input::Stream(ubx_stream),
        ),
        ("slip", config("type: slip"), encoded(slip_encode)),
        ("cobs", config("type: cobs"), encoded(cobs_encode)),
        (
            "binary without sync: u16 length + CRC-16/MODBUS",
            config(PREFIXED),
            encoded(prefixed),
        ),
        (
            "idle_gap (one idle call per burst)",
            config("type: idle_gap"),
            Input::Bursts(payloads.clone()),
        ),
    ];
    let avg = ubx.iter().map(Vec::len).sum::<usize>() as f64 / ubx.len() as f64;
    println!("## Framers\n");
    println!(
        "Payloads: the {} UBX packets of the three u-blox gpsd logs (mean {avg:.0} bytes), \
         {COPIES} copies, encoded for each framer; the lines framer reads the NMEA sentences \
         of the u-blox M9N log. One core, release build, each figure the mean over passes \
         of at least {} s.\n",
        ubx.len(),
        MIN_TIME.as_secs_f64()
    );
    println!("| framer | reads of 4096 B: frames/s | MB/s | reads of 64 B: frames/s | MB/s |");
    println!("|---|---:|---:|---:|---:|");
    for (name, config, input) in &cases {
        let mut cells = Vec::new();
        for read in [4096, 64] {
            let r = measure(config, input, read);
            let secs = r.elapsed.as_secs_f64();
            cells.push(format!(
                "{:.2} M | {:.0}",
                r.frames as f64 / secs / 1e6,
                r.bytes as f64 / secs / 1e6
            ));
        }
        println!("| {name} | {} | {} |", cells[0], cells[1]);
    }
}
