//! Decoder scripts on frames built here from the vendors' descriptions, for what the
//! real examples do not cover: u-blox's high-precision position messages, the Netvox
//! low-battery flag, the Dragino LHT65 sensor id.

#[allow(dead_code)]
#[path = "scripts_real_data/support.rs"]
mod support;

use mqgate::frame::FramingConfig;
use serde_json::{json, Value};
use support::{cut, frame, mapping_mapper, messages, payload, script_mapper};

const UBX: &str = "
type: binary
sync: [0xB5, 0x62]
length: { offset: 4, width: 2, endian: little, adjust: 2 }
checksum: { kind: fletcher8, from: 2 }
";

/// A UBX frame around `payload` with its Fletcher-8 checksum, passed through the
/// gateway's UBX framer (which drops a frame whose checksum is wrong).
fn ubx_frame(class: u8, id: u8, payload: &[u8]) -> Vec<u8> {
    let f = support::ubx_frame(class, id, payload);
    let config: FramingConfig = serde_yaml_ng::from_str(UBX).unwrap();
    let (frames, bad) = cut(config.build(), &f);
    assert_eq!(
        (frames.len(), bad),
        (1, 0),
        "the framer takes the built frame"
    );
    f
}

fn ubx(class: u8, id: u8, body: &[u8]) -> Value {
    let mapper = mapping_mapper("ubx-gps.yaml");
    let out = messages(
        &mapper,
        &frame("ubx", &ubx_frame(class, id, body), &[]),
        "UBX",
    );
    assert_eq!(out.len(), 1);
    let p = payload(&out[0]);
    assert_eq!(
        out[0].topic,
        format!("gps/ubx/{}", p["name"].as_str().unwrap())
    );
    p
}

fn num(p: &Value, key: &str) -> f64 {
    p[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {p}"))
}

/// NAV-HPPOSLLH (01 14), 36 bytes.
fn hpposllh(
    flags: u8,
    lon: (i32, i8),
    lat: (i32, i8),
    height: (i32, i8),
    msl: (i32, i8),
) -> Vec<u8> {
    let mut p = vec![0, 0, 0, flags];
    p.extend_from_slice(&345_600_000u32.to_le_bytes());
    for v in [lon.0, lat.0, height.0, msl.0] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    p.extend_from_slice(&[lon.1 as u8, lat.1 as u8, height.1 as u8, msl.1 as u8]);
    p.extend_from_slice(&142u32.to_le_bytes()); // hAcc 14.2 mm
    p.extend_from_slice(&205u32.to_le_bytes()); // vAcc 20.5 mm
    p
}

#[test]
fn ubx_hpposllh_adds_the_high_precision_parts_negative_ones_too() {
    let p = ubx(
        1,
        0x14,
        &hpposllh(
            0,
            (85_417_683, -37),
            (473_769_120, 58),
            (498_123, -7),
            (450_004, 9),
        ),
    );
    assert_eq!(p["name"], "NAV-HPPOSLLH");
    assert_eq!(
        (p["version"].clone(), p["itow"].clone()),
        (json!(0), json!(345_600_000))
    );
    assert_eq!(p["invalid"], false);
    // lon 8.5417683 deg - 37e-9 deg; lat 47.3769120 deg + 58e-9 deg.
    assert!((num(&p, "lon") - 8.541_768_263).abs() < 1e-12, "{p}");
    assert!((num(&p, "lat") - 47.376_912_058).abs() < 1e-12, "{p}");
    // 498.123 m - 0.7 mm; 450.004 m + 0.9 mm.
    assert!((num(&p, "height") - 498.1223).abs() < 1e-9, "{p}");
    assert!((num(&p, "height_msl") - 450.0049).abs() < 1e-9, "{p}");
    assert!((num(&p, "h_acc") - 0.0142).abs() < 1e-12, "{p}");
    assert!((num(&p, "v_acc") - 0.0205).abs() < 1e-12, "{p}");

    // West and south of zero: the high-precision part carries the sign too.
    let p = ubx(
        1,
        0x14,
        &hpposllh(0, (-1, -99), (-1, 99), (-1, -9), (0, -1)),
    );
    assert!((num(&p, "lon") - -0.000_000_199).abs() < 1e-15, "{p}");
    assert!((num(&p, "lat") - -0.000_000_001).abs() < 1e-15, "{p}");
    assert!((num(&p, "height") - -0.0019).abs() < 1e-12, "{p}");
    assert!((num(&p, "height_msl") - -0.0001).abs() < 1e-12, "{p}");
}

#[test]
fn ubx_hpposllh_flagged_invalid_gives_no_position() {
    let p = ubx(1, 0x14, &hpposllh(1, (1, 1), (1, 1), (1, 1), (1, 1)));
    assert_eq!(p["invalid"], true);
    for key in ["lat", "lon", "height", "height_msl"] {
        assert!(p.get(key).is_none(), "{key} in {p}");
    }
    assert!((num(&p, "h_acc") - 0.0142).abs() < 1e-12, "{p}");
}

/// NAV-HPPOSECEF (01 13), 28 bytes, for coordinates in units of 0.1 mm.
fn hpposecef(flags: u8, xyz: [i64; 3], p_acc: u32) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 0];
    p.extend_from_slice(&345_600_000u32.to_le_bytes());
    // Split as u-blox does: whole centimetres (truncated towards zero) and the rest.
    let parts: Vec<(i32, i8)> = xyz
        .iter()
        .map(|&v| ((v / 100) as i32, (v % 100) as i8))
        .collect();
    for (cm, _) in &parts {
        p.extend_from_slice(&cm.to_le_bytes());
    }
    for (_, hp) in &parts {
        p.push(*hp as u8);
    }
    p.push(flags);
    p.extend_from_slice(&p_acc.to_le_bytes());
    p
}

/// WGS-84 geodetic to ECEF, metres.
fn to_ecef(lat: f64, lon: f64, h: f64) -> [f64; 3] {
    let (a, f) = (6_378_137.0, 1.0 / 298.257_223_563);
    let e2 = f * (2.0 - f);
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    let n = a / (1.0 - e2 * lat.sin().powi(2)).sqrt();
    [
        (n + h) * lat.cos() * lon.cos(),
        (n + h) * lat.cos() * lon.sin(),
        (n * (1.0 - e2) + h) * lat.sin(),
    ]
}

#[test]
fn ubx_hpposecef_adds_the_high_precision_parts_and_gives_the_geodetic_position() {
    // A point in Switzerland, and one in the South Pacific, where X, Y and Z and their
    // high-precision parts are all negative.
    for (lat, lon, h) in [
        (47.376_912_058, 8.541_768_263, 498.1223),
        (-33.856_784_1, -120.654_321, 612.3456),
    ] {
        let xyz = to_ecef(lat, lon, h).map(|m| (m * 10_000.0).round() as i64);
        let p = ubx(1, 0x13, &hpposecef(0, xyz, 87));
        assert_eq!(p["name"], "NAV-HPPOSECEF");
        assert_eq!(p["invalid"], false);
        assert_eq!(p["itow"], 345_600_000);
        for (key, v) in ["ecef_x", "ecef_y", "ecef_z"].iter().zip(xyz) {
            assert!(
                (num(&p, key) - v as f64 / 10_000.0).abs() < 1e-9,
                "{key}: {p}"
            );
        }
        if lon < 0.0 {
            assert!(xyz.iter().all(|&v| v < 0 && v % 100 != 0), "{xyz:?}");
        }
        // 0.1 mm of rounding is about 1e-9 degrees.
        assert!((num(&p, "lat") - lat).abs() < 3e-9, "{p}");
        assert!((num(&p, "lon") - lon).abs() < 3e-9, "{p}");
        assert!((num(&p, "height") - h).abs() < 3e-4, "{p}");
        assert!((num(&p, "p_acc") - 0.0087).abs() < 1e-12, "{p}");
    }

    let p = ubx(1, 0x13, &hpposecef(1, [1, 2, 3], 87));
    assert_eq!(p["invalid"], true);
    for key in ["ecef_x", "lat", "lon", "height"] {
        assert!(p.get(key).is_none(), "{key} in {p}");
    }
}

#[test]
fn ubx_high_precision_messages_that_are_cut_off_are_refused() {
    let mapper = mapping_mapper("ubx-gps.yaml");
    for (id, full) in [(0x14u8, 36usize), (0x13, 28)] {
        let f = ubx_frame(1, id, &vec![0; full - 1]);
        let result = mapper.map(&frame("ubx", &f, &[]));
        assert!(
            matches!(&result, mqgate::mapping::Mapped::Failed(e) if e.to_string().contains(&format!("expected at least {full}"))),
            "{result:?}"
        );
    }
}

fn lora(script: &str, hex: &str, port: &str) -> Value {
    let mapper = script_mapper("lora", script, "lorawan/{device}");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    payload(&messages(&mapper, &frame("lora", &bytes, &[("fport", port)]), hex)[0])
}

#[test]
fn netvox_status_reports_the_low_battery_flag_as_the_vendors_decoder_does() {
    // Bit 7 of the battery byte is the flag; the voltage is the low 7 bits, and the
    // vendor's decoder then gives it as text.
    let p = lora("netvox-r311a.rhai", "0102019e01000000000000", "6");
    assert_eq!(
        p,
        json!({"Device": "R311A", "Volt": "3(low battery)", "OnOff": 1})
    );
    let p = lora("netvox-r718a.rhai", "010b01a00a29146c000000", "6");
    assert_eq!(
        p,
        json!({"Device": "R718A", "Volt": "3.2(low battery)", "Temp": 26.01, "Humi": 52.28})
    );
    // Without the flag the voltage stays a number.
    let p = lora("netvox-r718a.rhai", "010b0120f5d71a0c000000", "6");
    assert_eq!(
        p,
        json!({"Device": "R718A", "Volt": 3.2, "Temp": -26.01, "Humi": 66.68})
    );
}

#[test]
fn dragino_lht65_writes_the_ds18b20_id_as_its_vendors_decoder_does() {
    let p = lora("dragino-lht65.rhai", "0bb8281e4c0d0fff1e4c01", "2");
    assert_eq!(p["Work_mode"], "DS18B20ID");
    assert_eq!(p["ID"], "28 1e 4c 0d ff 1e 4c 01 ");
}
