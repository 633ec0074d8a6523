//! JavaScript codec benchmark (a program, run with `cargo bench -p mqgate --bench
//! js_codecs`): the cost of one `Mapper::map` call through a JavaScript codec
//! (`scripts/*.js`, QuickJS) and through the Rhai decoder of the same device, on the
//! same frame, default limits, one thread. Each figure is the median of `RUNS` runs
//! of `CALLS` calls; the ratio is JavaScript over Rhai.
//!
//! Prints Markdown; every loop is bounded in count. Needs no recordings: the frames
//! are the devices' documented examples.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use mqgate::frame::{Frame, Meta};
use mqgate::mapping::{CodecOptions, Mapped, Mapper, MappingDefaults, ScriptLimits};
use mqtt_proto::codec::QoS;

/// Calls per run, and runs per figure.
const CALLS: u32 = 20_000;
const RUNS: usize = 7;

/// A device: its JavaScript codec (with libraries), its Rhai decoder, a frame and its port.
struct Case {
    name: &'static str,
    js: &'static str,
    libraries: &'static [&'static str],
    rhai: &'static str,
    hex: &'static str,
    fport: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "Dragino LHT65",
        js: "dragino-lht65.js",
        libraries: &[],
        rhai: "dragino-lht65.rhai",
        hex: "cbf60b0d0376010add7fff",
        fport: "2",
    },
    Case {
        name: "Dragino LDS02",
        js: "dragino-lds02.js",
        libraries: &[],
        rhai: "dragino-lds02.rhai",
        hex: "0b880100250001",
        fport: "10",
    },
    Case {
        name: "Decentlab DL-SHT35",
        js: "decentlab-dl-sht35.js",
        libraries: &["lib/decentlab.js"],
        rhai: "decentlab-dl-sht35.rhai",
        hex: "02030e000364a079b10c60",
        fport: "1",
    },
    Case {
        name: "Decentlab DL-PM (all sensors)",
        js: "decentlab-dl-pm.js",
        libraries: &["lib/decentlab.js"],
        rhai: "decentlab-dl-pm.rhai",
        hex: "021b50000f0c25002500270029002a0072019c01a101a201a201a2692a9ef0b9bd10",
        fport: "1",
    },
];

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

fn mapper(file: &str, libraries: &[&str]) -> Mapper {
    let path = scripts().join(file);
    let text = std::fs::read_to_string(&path).expect("script");
    let defaults = MappingDefaults {
        topic: "lorawan/{source}".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        filter: None,
    };
    let codec = CodecOptions {
        libraries: libraries.iter().map(|l| scripts().join(l)).collect(),
        ..CodecOptions::default()
    };
    Mapper::with_codec(
        "lora",
        Some((&path, &text)),
        defaults,
        ScriptLimits::default(),
        &codec,
    )
    .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn frame(case: &Case) -> Frame {
    let bytes: Vec<u8> = (0..case.hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&case.hex[i..i + 2], 16).expect("hex"))
        .collect();
    let mut meta = Meta::default();
    meta.extra.insert("fport".into(), case.fport.into());
    Frame {
        source: Arc::from("lora"),
        received_at: SystemTime::now(),
        bytes: Bytes::from(bytes),
        meta,
    }
}

/// Median time per call over `RUNS` runs of `CALLS` calls.
fn per_call(mapper: &Mapper, frame: &Frame) -> Duration {
    let mut runs: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS {
                let out = mapper.map(std::hint::black_box(frame));
                assert!(matches!(out, Mapped::Messages(_)), "{out:?}");
            }
            start.elapsed() / CALLS
        })
        .collect();
    runs.sort();
    runs[RUNS / 2]
}

fn main() {
    println!("| device | Rhai µs/call | JavaScript µs/call | JavaScript / Rhai |");
    println!("|---|---:|---:|---:|");
    for case in CASES {
        let frame = frame(case);
        let (js, rhai) = (mapper(case.js, case.libraries), mapper(case.rhai, &[]));
        // Warm both (first calls fill caches and, for QuickJS, shapes).
        per_call(&js, &frame);
        per_call(&rhai, &frame);
        let (r, j) = (per_call(&rhai, &frame), per_call(&js, &frame));
        println!(
            "| {} | {:.2} | {:.2} | {:.2} |",
            case.name,
            r.as_secs_f64() * 1e6,
            j.as_secs_f64() * 1e6,
            j.as_secs_f64() / r.as_secs_f64()
        );
    }
}
