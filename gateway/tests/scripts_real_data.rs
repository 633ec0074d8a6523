//! The example scripts and mappings (`scripts/`, `mappings/`) run through `Mapper`
//! with the default sandbox limits, against real data: gpsd's receiver logs checked
//! against gpsd's own decoding, every Cayenne LPP vector, every uplink example of the
//! LoRaWAN devices that have a decoder here, and the demo captures.

#[allow(dead_code)]
#[path = "scripts_real_data/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use mqgate::frame::{
    BinaryConfig, BinaryFramer, ChecksumConfig, ChecksumKind, Crc16Algorithm, Endian, LengthField,
    LinesConfig, LinesFramer,
};
use mqgate::mapping::Mapped;
use mqtt_proto::codec::QoS;
use serde_json::Value;
use support::{
    assert_value, cut, data, frame, from_hex, json_file, mapping_mapper, messages, nmea_framer,
    payload, read, script_mapper, workspace,
};

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// A position the script decoded: seconds of the day, date if the sentence had one.
struct Fix {
    seconds: f64,
    date: Option<String>,
    lat: f64,
    lon: f64,
}

fn seconds_of_day(hms: &str) -> f64 {
    let parts: Vec<&str> = hms.split(':').collect();
    assert_eq!(parts.len(), 3, "time {hms:?} is not hh:mm:ss");
    let h: f64 = parts[0].parse().expect("hour");
    let m: f64 = parts[1].parse().expect("minute");
    let s: f64 = parts[2].parse().expect("second");
    h * 3600.0 + m * 60.0 + s
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn nmea_positions_agree_with_gpsd_for_every_nmea_log() {
    let mapper = mapping_mapper("nmea-gps.yaml");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(data("gpsd"))
        .expect("gpsd folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let mut nmea_logs = Vec::new();
    for log in &logs {
        let name = log.file_name().unwrap().to_string_lossy().to_string();
        let (frames, _) = cut(nmea_framer(), &std::fs::read(log).unwrap());
        if frames.is_empty() {
            continue;
        }
        nmea_logs.push(name.clone());
        let mut fixes = Vec::new();
        for f in &frames {
            let what = format!("{name}: {}", String::from_utf8_lossy(f));
            let out = messages(&mapper, &frame("gps", f, &[]), &what);
            assert_eq!(out.len(), 1, "{what}");
            let p = payload(&out[0]);
            let (talker, kind) = (p["talker"].as_str().unwrap(), p["type"].as_str().unwrap());
            assert_eq!(out[0].topic, format!("gps/{talker}{kind}"), "{what}");
            assert_eq!(out[0].qos, QoS::AtMostOnce);
            if !["GGA", "RMC", "GLL", "GNS"].contains(&kind) {
                assert!(p["fields"].is_array(), "{what}: no raw fields");
                continue;
            }
            if let (Some(lat), Some(lon), Some(t)) =
                (num(&p["lat"]), num(&p["lon"]), p["time"].as_str())
            {
                fixes.push(Fix {
                    seconds: seconds_of_day(t),
                    date: p["date"].as_str().map(str::to_string),
                    lat,
                    lon,
                });
            }
        }
        assert!(!fixes.is_empty(), "{name}: no position decoded");

        let chk = read(&log.with_extension("log.chk"));
        let (mut timed, mut untimed) = (0, 0);
        for line in chk.lines().filter(|l| l.starts_with("{\"class\":\"TPV\"")) {
            let tpv: Value = serde_json::from_str(line).unwrap();
            let (Some(lat), Some(lon)) = (num(&tpv["lat"]), num(&tpv["lon"])) else {
                continue;
            };
            match tpv["time"].as_str() {
                Some(time) => {
                    let (date, clock) = time.trim_end_matches('Z').split_once('T').unwrap();
                    let at = seconds_of_day(clock);
                    let same_time: Vec<&Fix> = fixes
                        .iter()
                        .filter(|f| (f.seconds - at).abs() < 1e-3)
                        .filter(|f| f.date.as_deref().is_none_or(|d| d == date))
                        .collect();
                    assert!(
                        !same_time.is_empty(),
                        "{name}: no sentence for gpsd's fix at {time}"
                    );
                    for f in same_time {
                        assert!(
                            close(f.lat, lat) && close(f.lon, lon),
                            "{name} {time}: script {},{} vs gpsd {lat},{lon}",
                            f.lat,
                            f.lon
                        );
                    }
                    timed += 1;
                }
                None => {
                    assert!(
                        fixes.iter().any(|f| close(f.lat, lat) && close(f.lon, lon)),
                        "{name}: gpsd's position {lat},{lon} is in no decoded sentence"
                    );
                    untimed += 1;
                }
            }
        }
        assert!(timed + untimed > 0, "{name}: no gpsd position was compared");
    }
    assert_eq!(
        nmea_logs,
        [
            "bu353-glonass.log",
            "ericsson-gru04.log",
            "garmin-geko201.log",
            "gp-320fw-2019-04-07-coldboot.log",
            "st-teseo-liv3f.log",
            "ublox-neo-m9n-nmea.log"
        ]
    );
}

#[test]
fn nmea_script_decodes_gga_and_rmc_fields() {
    let mapper = mapping_mapper("nmea-gps.yaml");
    let gga = b"$GPGGA,081412.000,5541.1956,N,03737.2877,E,1,5,4.87,66.2,M,14.5,M,,*6A";
    let p = payload(&messages(&mapper, &frame("gps", gga, &[]), "GGA")[0]);
    assert_eq!(p["time"], "08:14:12.000");
    assert!(close(p["lat"].as_f64().unwrap(), 55.0 + 41.1956 / 60.0));
    assert!(close(p["lon"].as_f64().unwrap(), 37.0 + 37.2877 / 60.0));
    assert_eq!(
        (p["fix_quality"].as_i64(), p["satellites"].as_i64()),
        (Some(1), Some(5))
    );
    assert_eq!(
        (p["hdop"].as_f64(), p["altitude"].as_f64()),
        (Some(4.87), Some(66.2))
    );
    let rmc = b"$GPRMC,214350,V,4023.8600,N,00339.1630,W,10.8,0.0,140605,2.5,W,S*21";
    let p = payload(&messages(&mapper, &frame("gps", rmc, &[]), "RMC")[0]);
    assert_eq!(
        (p["date"].as_str(), p["status"].as_str()),
        (Some("2005-06-14"), Some("V"))
    );
    assert_eq!(p["timestamp"], "2005-06-14T21:43:50Z");
    assert!(close(p["lon"].as_f64().unwrap(), -(3.0 + 39.163 / 60.0)));
    assert_eq!(
        (p["speed_knots"].as_f64(), p["course"].as_f64()),
        (Some(10.8), Some(0.0))
    );
    let empty_fix = b"$GPGGA,,,,,,0,00,,,,,,,*66";
    let p = payload(&messages(&mapper, &frame("gps", empty_fix, &[]), "empty GGA")[0]);
    assert!(p["lat"].is_null() && p["time"].is_null());
    assert!(matches!(
        mapper.map(&frame("gps", b"hello", &[])),
        Mapped::Failed(_)
    ));
}

#[test]
fn demo_gps_capture_publishes_every_sentence_with_a_good_checksum() {
    let mapper = mapping_mapper("nmea-gps.yaml");
    let bytes = std::fs::read(workspace().join("tests/captures/gps-nmea.log")).unwrap();
    let (frames, bad) = cut(nmea_framer(), &bytes);
    // 120 seconds of GGA, GSA, RMC and VTG, and three GSV every fifth second, plus
    // the three text sentences of the reboot banner; bad: one GGA's checksum, the VTG
    // cut off by the reboot, the banner's plain-text line and the last line, cut off.
    assert_eq!(bad, 4);
    assert_eq!(frames.len(), 120 * 4 + 24 * 3 - 3 + 3);
    let mut topics = BTreeMap::new();
    for f in &frames {
        for m in messages(&mapper, &frame("gps", f, &[]), "gps-nmea.log") {
            *topics.entry(m.topic).or_insert(0) += 1;
        }
    }
    assert_eq!(topics["gps/GPRMC"], 120);
    assert_eq!(topics["gps/GPGGA"], 119);
    assert_eq!(topics["gps/GPVTG"], 118);
    assert_eq!(topics["gps/GPTXT"], 3);
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn cayenne_lpp_script_decodes_every_vector() {
    let mapper = mapping_mapper("cayenne.yaml");
    let vectors = json_file("cayenne-lpp/vectors.json");
    let vectors = vectors.as_array().unwrap();
    assert_eq!(vectors.len(), 28);
    // Without a `direction` in the meta a frame is an uplink.
    let out = messages(
        &mapper,
        &frame("lpp", &from_hex("0367011002686c"), &[]),
        "no meta",
    );
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].topic, "sensors/lpp/2/relative_humidity");
    for v in vectors {
        let id = v["id"].as_str().unwrap();
        let direction = v["direction"].as_str().unwrap();
        let bytes = from_hex(v["bytes_hex"].as_str().unwrap());
        let result = mapper.map(&frame("lpp", &bytes, &[("direction", direction)]));
        if let Some(error) = v.get("expected_error") {
            let Mapped::Failed(e) = result else {
                panic!("{id}: expected an error ({error}), got {result:?}");
            };
            assert!(e.to_string().contains("LPP"), "{id}: {e}");
            continue;
        }
        let Mapped::Messages(out) = result else {
            panic!("{id}: {result:?}");
        };
        let expected = v["expected"].as_array().unwrap();
        assert_eq!(out.len(), expected.len(), "{id}: number of readings");
        let tol = v["tolerance"].as_f64().unwrap_or(1e-9);
        for (m, e) in out.iter().zip(expected) {
            let p = payload(m);
            assert_value(id, &p, e, tol);
            if direction == "uplink" {
                let name = e["type_name"].as_str().unwrap();
                assert_eq!(
                    m.topic,
                    format!("sensors/lpp/{}/{name}", e["channel"]),
                    "{id}"
                );
                assert_eq!(m.qos, QoS::AtLeastOnce);
            }
        }
    }
}

/// The decoder script of each LoRaWAN codec file this project has one for.
const DEVICE_SCRIPTS: &[(&str, &str)] = &[
    ("vendor/dragino/lht65-codec.yaml", "dragino-lht65.rhai"),
    ("vendor/dragino/lse01-codec.yaml", "dragino-lse01.rhai"),
    ("vendor/dragino/lds02-codec.yaml", "dragino-lds02.rhai"),
    ("vendor/elsys/ers-co2-codec.yaml", "elsys.rhai"),
    ("vendor/browan/tbhv110-codec.yaml", "browan-tbhv110.rhai"),
    ("vendor/browan/tbms100-codec.yaml", "browan-tbms100.rhai"),
    ("vendor/browan/tbdw100-codec.yaml", "browan-tbdw100.rhai"),
    ("vendor/browan/tbhh100-codec.yaml", "browan-tbhh100.rhai"),
    ("vendor/decentlab/dl-pm-codec.yaml", "decentlab-dl-pm.rhai"),
    (
        "vendor/decentlab/dl-sht35-codec.yaml",
        "decentlab-dl-sht35.rhai",
    ),
    (
        "vendor/decentlab/dl-lp8p-codec.yaml",
        "decentlab-dl-lp8p.rhai",
    ),
    (
        "vendor/decentlab/dl-mbx-codec.yaml",
        "decentlab-dl-mbx.rhai",
    ),
    (
        "vendor/milesight-iot/am307-codec.yaml",
        "milesight-am307.rhai",
    ),
    (
        "vendor/milesight-iot/em300-th-codec.yaml",
        "milesight-em300-th.rhai",
    ),
    (
        "vendor/milesight-iot/em300-di-codec.yaml",
        "milesight-em300-di.rhai",
    ),
    ("vendor/netvox/r718a-codec.yaml", "netvox-r718a.rhai"),
    ("vendor/netvox/r311a-codec.yaml", "netvox-r311a.rhai"),
    ("vendor/adeunis/temp-codec.yaml", "adeunis-temp4.rhai"),
];

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn lorawan_decoders_match_every_example_of_their_devices() {
    let examples = json_file("lorawan-devices/uplink-examples.json");
    let mut checked = BTreeMap::new();
    for ex in examples.as_array().unwrap() {
        let id = ex["id"].as_str().unwrap();
        let codec = ex["source_path"].as_str().unwrap();
        let Some((_, script)) = DEVICE_SCRIPTS.iter().find(|(c, _)| *c == codec) else {
            continue;
        };
        let mapper = script_mapper("lora", script, "lorawan/{device}");
        let port = ex["fPort"].as_u64().unwrap().to_string();
        let bytes = from_hex(ex["bytes_hex"].as_str().unwrap());
        let result = mapper.map(&frame("lora", &bytes, &[("fport", &port)]));
        let expected = &ex["expected_output"];
        let errors = expected["errors"].as_array().filter(|e| !e.is_empty());
        if let Some(errors) = errors {
            let Mapped::Failed(e) = result else {
                panic!("{id}: expected the error {errors:?}, got {result:?}");
            };
            let want = errors[0].as_str().unwrap();
            assert!(
                e.to_string().contains(want),
                "{id}: {e} does not say {want:?}"
            );
        } else {
            let Mapped::Messages(out) = result else {
                panic!("{id} ({script}): {result:?}");
            };
            assert_eq!(out.len(), 1, "{id}");
            let mut p = payload(&out[0]);
            if id == "milesight-iot/am307-codec.yaml#0" {
                // The codec file leaves PIR activity (05 6A 0x0049) out of its expected output.
                let extra = p.as_object_mut().unwrap().remove("activity");
                assert_eq!(extra, Some(Value::from(73)), "{id}: activity");
            }
            // The Adeunis codec wraps its object in `bytes`; the script publishes the object.
            let mut want = &expected["data"];
            if script.starts_with("adeunis") {
                want = &want["bytes"];
            }
            assert_value(id, &p, want, 1e-9);
            assert!(
                out[0].topic.starts_with("lorawan/"),
                "{id}: {}",
                out[0].topic
            );
        }
        *checked.entry(*script).or_insert(0) += 1;
    }
    for (codec, script) in DEVICE_SCRIPTS {
        assert!(
            checked.contains_key(script),
            "no example of {codec} was checked"
        );
    }
    assert_eq!(
        checked.values().sum::<i32>(),
        28,
        "examples checked: {checked:?}"
    );
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn lorawan_decoders_throw_on_a_cut_off_payload() {
    let examples = json_file("lorawan-devices/uplink-examples.json");
    for (codec, script) in DEVICE_SCRIPTS {
        let ex = examples
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["source_path"] == *codec && e["expected_output"].get("data").is_some())
            .unwrap();
        let mapper = script_mapper("lora", script, "lorawan/{device}");
        let port = ex["fPort"].as_u64().unwrap().to_string();
        let bytes = from_hex(ex["bytes_hex"].as_str().unwrap());
        let mut cuts = vec![2];
        // LDS02 reads a short payload as zero-padded, as its vendor's decoder does.
        if *script != "dragino-lds02.rhai" {
            cuts.push(bytes.len() - 1);
        }
        for len in cuts {
            let result = mapper.map(&frame("lora", &bytes[..len], &[("fport", &port)]));
            assert!(
                matches!(result, Mapped::Failed(_)),
                "{script}, {len} bytes: {result:?}"
            );
        }
    }
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn json_lines_script_publishes_every_gpsd_json_report_unchanged() {
    let mapper = mapping_mapper("json-sensor.yaml");
    let mut count = 0;
    for entry in std::fs::read_dir(data("gpsd")).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".log.chk") {
            continue;
        }
        for line in read(&path).lines().filter(|l| l.starts_with('{')) {
            let out = messages(&mapper, &frame("json-sensor", line.as_bytes(), &[]), line);
            let want: Value = serde_json::from_str(line).unwrap();
            assert_eq!(payload(&out[0]), want, "{}", path.display());
            let class = want["class"].as_str().unwrap();
            assert_eq!(out[0].topic, format!("sensors/json-sensor/{class}"));
            count += 1;
        }
    }
    assert!(count > 1000, "only {count} JSON reports found");
}

#[test]
fn json_lines_script_filters_blank_lines_and_rejects_what_is_not_an_object() {
    let mapper = mapping_mapper("json-sensor.yaml");
    assert_eq!(
        mapper.map(&frame("json-sensor", b"  \r", &[])),
        Mapped::Filtered
    );
    for bad in [&b"[1,2]"[..], b"{\"a\":", b"\xff\xfe"] {
        let result = mapper.map(&frame("json-sensor", bad, &[]));
        assert!(matches!(result, Mapped::Failed(_)), "{bad:?}: {result:?}");
    }
    let out = messages(&mapper, &frame("json-sensor", b"{\"t\":1}", &[]), "no id");
    assert_eq!(out[0].topic, "sensors/json-sensor/reading");
}

#[test]
fn demo_json_capture_maps_every_line() {
    let mapper = mapping_mapper("json-sensor.yaml");
    let text = read(&workspace().join("tests/captures/json-sensor.log"));
    let (frames, bad) = cut(
        Box::new(LinesFramer::new(LinesConfig::default())),
        text.as_bytes(),
    );
    assert_eq!((frames.len(), bad), (60, 0));
    for (i, f) in frames.iter().enumerate() {
        let out = messages(&mapper, &frame("json-sensor", f, &[]), "json-sensor.log");
        let p = payload(&out[0]);
        assert_eq!(p["seq"], i);
        assert_eq!(
            out[0].topic,
            format!("sensors/json-sensor/{}", p["id"].as_str().unwrap())
        );
    }
}

#[test]
fn binary_sensor_script_decodes_its_test_vector_and_rejects_a_bad_crc() {
    let mapper = mapping_mapper("binary-sensor.yaml");
    let mut bytes = from_hex("aa550d070102fb2e11d700018bcd0bc463d3");
    let out = messages(&mapper, &frame("binary-sensor", &bytes, &[]), "test vector");
    assert_eq!(out[0].topic, "sensors/binary-sensor/7");
    assert!(out[0].retain);
    let want = serde_json::json!({"sensor": 7, "seq": 258, "temperature": -12.34,
        "humidity": 45.67, "pressure": 101325, "battery": 3.012});
    assert_value("test vector", &payload(&out[0]), &want, 1e-9);
    bytes[7] ^= 0x01;
    let result = mapper.map(&frame("binary-sensor", &bytes, &[]));
    let Mapped::Failed(e) = result else {
        panic!("a flipped bit was accepted: {result:?}");
    };
    assert!(e.to_string().contains("CRC-16/MODBUS"), "{e}");
    let short = mapper.map(&frame("binary-sensor", &bytes[..17], &[]));
    assert!(matches!(short, Mapped::Failed(_)));
}

#[test]
fn demo_binary_capture_frames_and_maps_every_frame() {
    let mapper = mapping_mapper("binary-sensor.yaml");
    let bytes = std::fs::read(workspace().join("tests/captures/binary-sensor.bin")).unwrap();
    let config = BinaryConfig {
        sync: vec![0xAA, 0x55],
        length: LengthField {
            offset: 2,
            width: 1,
            endian: Endian::Big,
            adjust: 2,
        },
        checksum: ChecksumConfig {
            kind: ChecksumKind::Crc16,
            algorithm: Some(Crc16Algorithm::Modbus),
            endian: Endian::Little,
            ..ChecksumConfig::default()
        },
        max_length: 64,
    };
    let (frames, bad) = cut(Box::new(BinaryFramer::new(config)), &bytes);
    assert_eq!((frames.len(), bad), (60, 0));
    for (i, f) in frames.iter().enumerate() {
        let out = messages(
            &mapper,
            &frame("binary-sensor", f, &[]),
            "binary-sensor.bin",
        );
        let p = payload(&out[0]);
        assert_eq!(p["seq"], i);
        let t = p["temperature"].as_f64().unwrap();
        assert!((19.0..23.0).contains(&t), "frame {i}: {t}");
    }
}

#[test]
fn every_script_and_mapping_compiles_in_the_default_sandbox() {
    let mut scripts = 0;
    for entry in std::fs::read_dir(workspace().join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "rhai") {
            script_mapper(
                "any",
                path.file_name().unwrap().to_str().unwrap(),
                "t/{source}",
            );
            scripts += 1;
        }
    }
    assert!(scripts >= 18, "{scripts} scripts");
    let mut mappings = 0;
    for entry in std::fs::read_dir(workspace().join("mappings")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml") {
            mapping_mapper(path.file_name().unwrap().to_str().unwrap());
            mappings += 1;
        }
    }
    assert!(mappings >= 4, "{mappings} mappings");
}

/// The MClimate HT Sensor decoder against every example of its codec file, the way
/// `lorawan_decoders_match_every_example_of_their_devices` checks the others; and
/// payloads it must refuse: cut off, too long, not a keepalive.
#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn mclimate_ht_decoder_matches_every_example_and_refuses_what_it_cannot_read() {
    let examples = json_file("lorawan-devices/uplink-examples.json");
    let mapper = script_mapper("lora", "mclimate-ht.rhai", "lorawan/{device}");
    let mut checked = 0;
    let mut keepalive = Vec::new();
    for ex in examples.as_array().unwrap() {
        if ex["source_path"] != "vendor/mclimate/ht-sensor-codec.yaml" {
            continue;
        }
        let id = ex["id"].as_str().unwrap();
        let port = ex["fPort"].as_u64().unwrap().to_string();
        let bytes = from_hex(ex["bytes_hex"].as_str().unwrap());
        let result = mapper.map(&frame("lora", &bytes, &[("fport", &port)]));
        let expected = &ex["expected_output"];
        if let Some(errors) = expected["errors"].as_array().filter(|e| !e.is_empty()) {
            let Mapped::Failed(e) = result else {
                panic!("{id}: expected the error {errors:?}, got {result:?}");
            };
            let want = errors[0].as_str().unwrap();
            assert!(
                e.to_string().contains(want),
                "{id}: {e} does not say {want:?}"
            );
        } else {
            let Mapped::Messages(out) = result else {
                panic!("{id}: {result:?}");
            };
            assert_eq!(out.len(), 1, "{id}");
            assert_eq!(out[0].topic, "lorawan/mclimate-ht", "{id}");
            assert_value(id, &payload(&out[0]), &expected["data"], 1e-9);
            keepalive = bytes;
        }
        checked += 1;
    }
    // The data file holds one MClimate HT example (a keepalive) and no negative one.
    assert_eq!(checked, 1, "MClimate HT examples checked");
    assert_eq!(keepalive.len(), 5);

    // Byte 2 below 0x10: 0x0205 = 517 -> 11.7 °C (the first vendor decoder read "0" "2" "5").
    let low = from_hex("010205ff30");
    let p = payload(&messages(&mapper, &frame("lora", &low, &[]), "low byte 2")[0]);
    assert_value(
        "low byte 2",
        &p,
        &serde_json::json!({"reason": "keepalive", "temperature": 11.7,
            "humidity": 99.609375, "batteryVoltage": 2.3}),
        1e-9,
    );
    let mut long = keepalive.clone();
    long.push(0);
    let mut reply = keepalive.clone();
    reply[0] = 0x12;
    for (what, bytes) in [
        ("empty", &keepalive[..0]),
        ("cut off", &keepalive[..4]),
        ("6 bytes", &long[..]),
        ("command reply", &reply[..]),
    ] {
        let result = mapper.map(&frame("lora", bytes, &[("fport", "2")]));
        let Mapped::Failed(e) = result else {
            panic!("{what}: accepted: {result:?}");
        };
        assert!(e.to_string().contains("MClimate HT"), "{what}: {e}");
    }
}
