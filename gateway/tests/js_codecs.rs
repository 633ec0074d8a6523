//! The project's JavaScript codecs (`scripts/*.js`, The Things Network's codec
//! interface) through `Mapper` with the default limits: against every uplink example
//! of their devices in the recordings, and against the Rhai decoders of the same
//! devices, which must give the same JSON for the same frame.

#[allow(dead_code)]
#[path = "scripts_real_data/support.rs"]
mod support;

use mqgate::mapping::{Mapped, Mapper, MappingDefaults, ScriptLimits};
use serde_json::Value;
use support::{
    assert_value, codec_mapper, frame, from_hex, json_file, payload, script_mapper, workspace,
};

/// A device's codec file in the recordings, its JavaScript codec (with the library
/// files loaded first) and its Rhai decoder.
struct Device {
    codec_file: &'static str,
    js: &'static str,
    libraries: &'static [&'static str],
    rhai: &'static str,
}

const DEVICES: &[Device] = &[
    Device {
        codec_file: "vendor/dragino/lht65-codec.yaml",
        js: "dragino-lht65.js",
        libraries: &[],
        rhai: "dragino-lht65.rhai",
    },
    Device {
        codec_file: "vendor/dragino/lds02-codec.yaml",
        js: "dragino-lds02.js",
        libraries: &[],
        rhai: "dragino-lds02.rhai",
    },
    Device {
        codec_file: "vendor/decentlab/dl-sht35-codec.yaml",
        js: "decentlab-dl-sht35.js",
        libraries: &["lib/decentlab.js"],
        rhai: "decentlab-dl-sht35.rhai",
    },
    Device {
        codec_file: "vendor/decentlab/dl-pm-codec.yaml",
        js: "decentlab-dl-pm.js",
        libraries: &["lib/decentlab.js"],
        rhai: "decentlab-dl-pm.rhai",
    },
];

impl Device {
    fn js(&self) -> Mapper {
        codec_mapper("lora", self.js, self.libraries, "lorawan/{source}")
    }

    fn rhai(&self) -> Mapper {
        script_mapper("lora", self.rhai, "lorawan/{device}")
    }
}

/// The one message's payload, or the error text.
fn outcome(mapper: &Mapper, bytes: &[u8], fport: &str) -> Result<Value, String> {
    match mapper.map(&frame("lora", bytes, &[("fport", fport)])) {
        Mapped::Messages(m) => {
            assert_eq!(m.len(), 1, "one message per frame: {m:?}");
            Ok(payload(&m[0]))
        }
        Mapped::Failed(e) => Err(e.to_string()),
        Mapped::Filtered => Err("filtered".into()),
    }
}

/// The codec and the Rhai decoder agree on `bytes`: the same JSON, or both fail.
fn agree(device: &Device, js: &Mapper, rhai: &Mapper, bytes: &[u8], fport: &str) {
    let what = format!("{} on {} port {fport}", device.js, support_hex(bytes));
    match (outcome(js, bytes, fport), outcome(rhai, bytes, fport)) {
        (Ok(j), Ok(r)) => assert_value(&what, &j, &r, 1e-12),
        (Err(j), Err(_)) => assert!(j.contains(device.js), "{what}: {j} names the codec"),
        (j, r) => panic!("{what}: the codec gave {j:?}, the Rhai decoder {r:?}"),
    }
}

fn support_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn js_codecs_match_every_example_of_their_devices_and_the_rhai_decoders() {
    let examples = json_file("lorawan-devices/uplink-examples.json");
    let mut checked = Vec::new();
    for ex in examples.as_array().unwrap() {
        let Some(device) = DEVICES.iter().find(|d| ex["source_path"] == d.codec_file) else {
            continue;
        };
        let id = ex["id"].as_str().unwrap();
        let port = ex["fPort"].as_u64().unwrap().to_string();
        let bytes = from_hex(ex["bytes_hex"].as_str().unwrap());
        let js = device.js();
        let expected = &ex["expected_output"];
        match expected["errors"].as_array().filter(|e| !e.is_empty()) {
            Some(errors) => {
                let e = outcome(&js, &bytes, &port).expect_err(id);
                let want = errors[0].as_str().unwrap();
                assert!(e.contains(want), "{id}: {e} does not say {want:?}");
                assert!(e.contains(device.js), "{id}: {e} names the codec");
            }
            None => {
                let p = outcome(&js, &bytes, &port).unwrap_or_else(|e| panic!("{id}: {e}"));
                assert_value(id, &p, &expected["data"], 1e-9);
            }
        }
        agree(device, &js, &device.rhai(), &bytes, &port);
        checked.push(id.to_string());
    }
    for d in DEVICES {
        let name = d.codec_file.trim_start_matches("vendor/");
        assert!(
            checked.iter().any(|id| id.starts_with(name)),
            "no example of {} was checked",
            d.codec_file
        );
    }
    // LHT65: 1; LDS02: 2, one an "unknown FPort" error; DL-SHT35: 1; DL-PM: 2.
    assert_eq!(checked.len(), 6, "examples checked: {checked:?}");
}

/// Frames built from the devices' documented layouts: every LHT65 external sensor
/// kind, every LDS02 mode and a short LDS02 frame, Decentlab frames with each subset
/// of sensors, and cut-off, overlong and wrong-port frames, which both must refuse.
#[test]
fn js_codecs_and_rhai_decoders_give_the_same_json_for_the_same_frames() {
    let lht65 = &DEVICES[0];
    let (js, rhai) = (lht65.js(), lht65.rhai());
    for ext in [0u8, 1, 4, 5, 6, 7, 8, 9, 15, 0x81, 0x0c] {
        // Negative temperatures (0xF5 0x2C = -27.72 °C), a status of 2 in the top bits.
        let frame = [
            0x8b, 0xf6, 0xf5, 0x2c, 0x43, 0x76, ext, 0xfd, 0x2c, 0x7f, 0xff,
        ];
        agree(lht65, &js, &rhai, &frame, "2");
        agree(lht65, &js, &rhai, &frame[..10], "2");
        agree(lht65, &js, &rhai, &frame, "3");
    }
    let lds02 = &DEVICES[1];
    let (js, rhai) = (lds02.js(), lds02.rhai());
    for mode in [1u8, 2, 3, 4] {
        let frame = [0xcb, 0x88, mode, 0x00, 0x01, 0x25, 0x00, 0x10, 0x01, 0x01];
        for len in [2, 3, 7, 10] {
            agree(lds02, &js, &rhai, &frame[..len], "10");
        }
        let mut long = frame.to_vec();
        long.push(0);
        agree(lds02, &js, &rhai, &long, "10");
    }
    for device in &DEVICES[2..] {
        let (js, rhai) = (device.js(), device.rhai());
        // Header (version 2, device 0x1b50), then enough 16-bit words for all sensors.
        let words: Vec<u8> = (0..16u16)
            .flat_map(|i| (0x1234 + i * 0x0f0f).to_be_bytes())
            .collect();
        for flags in 0u16..16 {
            let mut frame = vec![0x02, 0x1b, 0x50];
            frame.extend_from_slice(&flags.to_be_bytes());
            let full = frame.len() + words.len();
            frame.extend_from_slice(&words);
            // As long as the sensors need, then cut off by one byte.
            let (js_len, rhai_len) = (used(&js, &frame), used(&rhai, &frame));
            assert_eq!(js_len, rhai_len, "{}: flags {flags}", device.js);
            agree(device, &js, &rhai, &frame[..js_len], "1");
            if js_len > 5 {
                agree(device, &js, &rhai, &frame[..js_len - 1], "1");
            }
            assert!(js_len <= full);
        }
        agree(
            device,
            &js,
            &rhai,
            &[0x03, 0x1b, 0x50, 0x00, 0x01, 0x0c, 0x25],
            "1",
        );
        agree(device, &js, &rhai, &[0x02, 0x1b], "1");
    }
}

/// The shortest prefix of `frame` that `mapper` decodes (the bytes its sensors use).
fn used(mapper: &Mapper, frame: &[u8]) -> usize {
    (5..=frame.len())
        .find(|&n| outcome(mapper, &frame[..n], "1").is_ok())
        .unwrap_or(frame.len())
}

/// A mapping file as the README shows it: its codec and library resolved against
/// the file's folder, its limits read.
#[test]
fn a_mapping_file_loads_its_codec_with_the_library_and_publishes_on_the_device_topic() {
    let dir = test_support::scratch::Scratch::new("js-mapping");
    let scripts = workspace().join("scripts");
    let mapping = dir.write(
        "sht35.yaml",
        format!(
            "source: lorawan\nscript: {}\nlibraries: [{}]\ntopic: \"lorawan/{{device}}\"\n\
             limits: {{ max_call_ms: 50, max_memory_kb: 4096 }}\n",
            scripts.join("decentlab-dl-sht35.js").display(),
            scripts.join("lib/decentlab.js").display()
        ),
    );
    let m = mqgate::config::load_mapping_file(&mapping).expect("the mapping file loads");
    assert_eq!(m.libraries.len(), 1);
    assert!(
        m.libraries[0].ends_with("scripts/lib/decentlab.js"),
        "{m:?}"
    );
    let options = m.codec_options();
    assert_eq!(options.max_memory, 4096 * 1024);
    let defaults = MappingDefaults {
        topic: m.topic.clone(),
        qos: m.qos,
        retain: m.retain,
        filter: None,
    };
    let script = m.script.clone().unwrap();
    let text = std::fs::read_to_string(&script).unwrap();
    let mapper = Mapper::with_codec(
        &m.source,
        Some((&script, &text)),
        defaults,
        ScriptLimits::default(),
        &options,
    )
    .expect("the codec loads with its library");
    let bytes = [
        0x02, 0x03, 0x0e, 0x00, 0x03, 0x64, 0xa0, 0x79, 0xb1, 0x0c, 0x60,
    ];
    let f = frame(
        "lorawan",
        &bytes,
        &[("fport", "1"), ("device", "sht35-garden")],
    );
    let Mapped::Messages(out) = mapper.map(&f) else {
        panic!("not decoded");
    };
    assert_eq!(out[0].topic, "lorawan/sht35-garden");
    let p = payload(&out[0]);
    assert_eq!(p["device_id"], 782);
    assert_eq!(p["battery_voltage"]["value"], 3.168);

    // Without its library the codec's top-level code fails, naming the line.
    let e = Mapper::new(
        &m.source,
        Some((&script, &text)),
        MappingDefaults {
            topic: m.topic.clone(),
            qos: m.qos,
            retain: m.retain,
            filter: None,
        },
        ScriptLimits::default(),
    )
    .expect_err("decentlab is not defined");
    assert!(e.to_string().contains("decentlab-dl-sht35.js:"), "{e}");
    assert!(e.to_string().contains("ReferenceError"), "{e}");
}

/// `libraries:` is for a JavaScript codec, and each must be a `.js` file that exists.
#[test]
fn a_mapping_files_libraries_are_checked() {
    let dir = test_support::scratch::Scratch::new("js-mapping-check");
    let rhai = workspace().join("scripts/dragino-lht65.rhai");
    let js = workspace().join("scripts/dragino-lht65.js");
    for (script, libraries, says) in [
        (
            &rhai,
            "[lib.js]".to_string(),
            "the mapping's script is not a .js file",
        ),
        (&js, "[missing.js]".to_string(), "missing.js does not exist"),
        (&js, "[lib.rhai]".to_string(), "lib.rhai is not a .js file"),
    ] {
        let mapping = dir.write(
            "m.yaml",
            format!(
                "source: lora\nscript: {}\nlibraries: {libraries}\n",
                script.display()
            ),
        );
        let errors = mqgate::config::load_mapping_file(&mapping).expect_err(says);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.contains("libraries") && e.contains(says)),
            "{says}: {text:?}"
        );
    }
}

/// A codec's warnings are counted and its data still published; its errors, a
/// frame without `fport` and an endless loop each make a dead letter naming the
/// codec, and the frame after them is decoded.
#[test]
fn warnings_are_counted_and_failures_become_dead_letters_naming_the_codec() {
    let dir = test_support::scratch::Scratch::new("js-dead-letters");
    let codec = dir.write(
        "codec.js",
        "function decodeUplink(input) {\n  var b = input.bytes;\n  if (b[0] === 0) return { errors: ['zero is not a reading'] };\n  if (b[0] === 9) { while (true) {} }\n  return { data: { v: b[0] }, warnings: b[0] > 100 ? ['high', 'very high'] : [] };\n}\n",
    );
    let text = std::fs::read_to_string(&codec).unwrap();
    let defaults = MappingDefaults {
        topic: "t/{source}".into(),
        qos: mqtt_proto::codec::QoS::AtLeastOnce,
        retain: false,
        filter: None,
    };
    let mapper = Mapper::new(
        "lora",
        Some((&codec, &text)),
        defaults,
        ScriptLimits::default(),
    )
    .expect("the codec loads");
    let label = codec.display().to_string();
    for (bytes, fport, says) in [
        (&[0u8][..], Some("1"), "zero is not a reading"),
        (&[5], None, "no `fport`"),
        (&[9], Some("1"), "took longer than 100 ms"),
    ] {
        let extra: Vec<(&str, &str)> = fport.map(|p| vec![("fport", p)]).unwrap_or_default();
        let f = frame("lora", bytes, &extra);
        let Mapped::Failed(e) = mapper.map(&f) else {
            panic!("{says}: not a failure");
        };
        let letter = mqgate::mapping::dead_letter("gw", &f, &e);
        assert_eq!(letter.topic.as_str(), "mqgate/gw/deadletter/lora");
        let body: Value = serde_json::from_slice(&letter.payload).unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.starts_with(&label), "{error}");
        assert!(error.contains(says), "{error}");
        assert_eq!(
            outcome(&mapper, &[7], "1"),
            Ok(serde_json::json!({ "v": 7 }))
        );
    }
    assert_eq!(mapper.codec_warnings(), 0);
    assert_eq!(
        outcome(&mapper, &[200], "1"),
        Ok(serde_json::json!({ "v": 200 }))
    );
    assert_eq!(mapper.codec_warnings(), 2);
}
