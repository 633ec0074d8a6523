use rhai::{Dynamic, Engine, FLOAT, INT};

use super::super::engine::{sandboxed_engine, ScriptLimits};

fn engine() -> Engine {
    sandboxed_engine("test", &ScriptLimits::default())
}

fn int(script: &str) -> INT {
    engine()
        .eval::<INT>(script)
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

fn float(script: &str) -> FLOAT {
    engine()
        .eval::<FLOAT>(script)
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

fn string(script: &str) -> String {
    engine()
        .eval::<String>(script)
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

fn error(script: &str) -> String {
    match engine().eval::<Dynamic>(script) {
        Ok(v) => panic!("{script}: expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn one_byte_readers_are_unsigned_and_signed() {
    assert_eq!(int(r#"u8(from_hex("00ff"), 1)"#), 255);
    assert_eq!(int(r#"i8(from_hex("00ff"), 1)"#), -1);
    assert_eq!(int(r#"i8(from_hex("7f"), 0)"#), 127);
    assert_eq!(int(r#"i8(from_hex("80"), 0)"#), -128);
}

#[test]
fn sixteen_bit_readers_respect_sign_and_byte_order() {
    assert_eq!(int(r#"i16be(from_hex("FF38"), 0)"#), -200);
    assert_eq!(int(r#"u16be(from_hex("FF38"), 0)"#), 0xFF38);
    assert_eq!(int(r#"i16le(from_hex("38FF"), 0)"#), -200);
    assert_eq!(int(r#"u16le(from_hex("38FF"), 0)"#), 0xFF38);
    assert_eq!(int(r#"u16be(from_hex("000102"), 1)"#), 0x0102);
    assert_eq!(int(r#"i16be(from_hex("7fff"), 0)"#), 32767);
}

#[test]
fn twenty_four_bit_readers_respect_sign_and_byte_order() {
    assert_eq!(int(r#"u24le(from_hex("563412"), 0)"#), 0x123456);
    assert_eq!(int(r#"u24be(from_hex("123456"), 0)"#), 0x123456);
    assert_eq!(int(r#"i24be(from_hex("FFFFFE"), 0)"#), -2);
    assert_eq!(int(r#"i24le(from_hex("FEFFFF"), 0)"#), -2);
    assert_eq!(int(r#"i24be(from_hex("800000"), 0)"#), -8_388_608);
    assert_eq!(int(r#"u24be(from_hex("800000"), 0)"#), 8_388_608);
}

#[test]
fn thirty_two_bit_readers_respect_sign_and_byte_order() {
    assert_eq!(int(r#"u32be(from_hex("FFFFFFFF"), 0)"#), 4_294_967_295);
    assert_eq!(int(r#"i32be(from_hex("FFFFFFFF"), 0)"#), -1);
    assert_eq!(int(r#"u32le(from_hex("78563412"), 0)"#), 0x12345678);
    assert_eq!(int(r#"i32le(from_hex("00000080"), 0)"#), i32::MIN as INT);
    assert_eq!(int(r#"i32be(from_hex("80000000"), 0)"#), i32::MIN as INT);
}

#[test]
fn float_readers_decode_ieee_754() {
    assert_eq!(float(r#"f32be(from_hex("41200000"), 0)"#), 10.0);
    assert_eq!(float(r#"f32le(from_hex("00002041"), 0)"#), 10.0);
    assert_eq!(
        float(r#"f32be(from_hex("C0490FDB"), 0)"#),
        -3.1415927410125732
    );
    assert_eq!(
        float(r#"f64be(from_hex("400921FB54442D18"), 0)"#),
        std::f64::consts::PI
    );
    assert_eq!(
        float(r#"f64le(from_hex("182D4454FB210940"), 0)"#),
        std::f64::consts::PI
    );
}

#[test]
fn reading_past_the_end_is_a_runtime_error_naming_the_function() {
    let e = error(r#"u16be(from_hex("01"), 0)"#);
    assert!(
        e.contains("u16be: offset 0 + 2 byte(s) is past the end of a 1-byte blob"),
        "{e}"
    );
    let e = error(r#"f64le(from_hex("0102"), 1)"#);
    assert!(e.contains("f64le"), "{e}");
    let e = error(r#"u8(from_hex("01"), -1)"#);
    assert!(e.contains("u8: negative offset -1"), "{e}");
    let e = error(r#"u32be(from_hex("01"), 9223372036854775807)"#);
    assert!(e.contains("past the end"), "{e}");
}

#[test]
fn bits_extracts_a_field() {
    assert_eq!(int("bits(0b1011_0100, 2, 3)"), 0b101);
    assert_eq!(int("bits(0xFF, 0, 1)"), 1);
    assert_eq!(int("bits(-1, 63, 1)"), 1);
    assert_eq!(int("bits(-1, 0, 64)"), -1);
    assert!(error("bits(1, 60, 8)").contains("bits:"));
    assert!(error("bits(1, 0, 0)").contains("bits:"));
}

#[test]
fn hex_round_trips_and_rejects_bad_digits() {
    assert_eq!(string(r#"hex(from_hex("00 7F:ff-A0"))"#), "007fffa0");
    assert_eq!(string("hex(blob())"), "");
    assert!(error(r#"from_hex("abc")"#).contains("odd number of hex digits (3)"));
    assert!(error(r#"from_hex("zz")"#).contains("'z' is not a hex digit"));
}

#[test]
fn base64_round_trips_with_or_without_padding() {
    assert_eq!(string(r#"base64(from_hex("4d616e"))"#), "TWFu");
    assert_eq!(string(r#"base64(from_hex("4d61"))"#), "TWE=");
    assert_eq!(string(r#"hex(from_base64("TWE="))"#), "4d61");
    assert_eq!(string(r#"hex(from_base64("TWE"))"#), "4d61");
    assert!(error(r#"from_base64("T*E=")"#).contains("from_base64"));
}

#[test]
fn crcs_match_the_catalogue_check_values() {
    let check = r#"let b = "123456789".to_blob(); "#;
    for (variant, value) in [
        ("modbus", 0x4B37),
        ("ccitt_false", 0x29B1),
        ("kermit", 0x2189),
        ("xmodem", 0x31C3),
        ("x25", 0x906E),
    ] {
        assert_eq!(
            int(&format!("{check} crc16(b, \"{variant}\")")),
            value,
            "{variant}"
        );
    }
    assert_eq!(int(&format!("{check} crc8(b, \"smbus\")")), 0xF4);
    assert_eq!(int(&format!("{check} crc8(b, \"maxim\")")), 0xA1);
    assert_eq!(int(r#"xor8(from_hex("0102f0"))"#), 0xF3);
    assert!(error(r#"crc16(blob(), "ibm")"#).contains("unknown variant \"ibm\""));
    assert!(error(r#"crc8(blob(), "x")"#).contains("crc8: unknown variant"));
}

#[test]
fn json_parse_gives_maps_arrays_and_numbers() {
    let src = r#"let v = json_parse(`{"a": [1, 2.5, null, true], "b": "x"}`);"#;
    assert_eq!(int(&format!("{src} v.a[0]")), 1);
    assert_eq!(float(&format!("{src} v.a[1]")), 2.5);
    assert_eq!(string(&format!("{src} type_of(v.a[2])")), "()");
    assert_eq!(string(&format!("{src} v.b")), "x");
    assert!(error(r#"json_parse("{")"#).contains("json_parse:"));
}

#[test]
fn json_writes_compact_text() {
    assert_eq!(
        string(r#"json(#{a: 1, b: [true, ()], c: "q\""})"#),
        r#"{"a":1,"b":[true,null],"c":"q\""}"#
    );
    assert_eq!(string("json(2.5)"), "2.5");
    assert_eq!(string("json(10.0)"), "10.0");
    assert_eq!(string(r#"json("a\nb°")"#), "\"a\\nb°\"");
    assert_eq!(string("json('x')"), "\"x\"");
    assert_eq!(string("json([[], #{}])"), "[[],{}]");
    assert_eq!(
        int("let a = []; for i in 0..128 { a = [a]; } json(a).len()"),
        258
    );
    assert!(error("let a = []; for i in 0..129 { a = [a]; } json(a)")
        .contains("json: nested deeper than 128 levels"));
    assert_eq!(string(r#"json(from_hex("0102"))"#), "[1,2]");
    assert!(error("json(1.0 / 0.0)").contains("json:"));
}

#[test]
fn round_keeps_the_asked_digits() {
    assert_eq!(float("round(21.456, 1)"), 21.5);
    assert_eq!(float("round(-0.125, 2)"), -0.13);
    assert_eq!(float("round(7, 2)"), 7.0);
    assert_eq!(float("round(2.5, 0)"), 3.0);
    assert!(error("round(1.0, 99)").contains("round: digits"));
}

#[test]
fn text_is_lossy_utf8_and_slice_takes_a_window() {
    assert_eq!(string(r#"text(from_hex("6869ff"))"#), "hi\u{FFFD}");
    assert_eq!(string(r#"hex(slice(from_hex("00010203"), 1, 2))"#), "0102");
    assert_eq!(string(r#"hex(slice(from_hex("00010203"), 4, 0))"#), "");
    assert!(error(r#"slice(from_hex("0001"), 1, 2)"#).contains("slice: offset 1 + 2"));
    assert!(error(r#"slice(from_hex("0001"), 0, -1)"#).contains("negative length"));
}

mod readers_against_std {
    use super::engine;
    use proptest::prelude::*;
    use rhai::{Blob, Dynamic, Scope, INT};

    /// What `name(b, off)` must give, from the standard library's conversions.
    fn expected(name: &str, b: &[u8], off: i64) -> Option<Dynamic> {
        let bits: usize = name[1..]
            .trim_end_matches("be")
            .trim_end_matches("le")
            .parse()
            .unwrap();
        let w = bits / 8;
        if off < 0 || off as usize + w > b.len() {
            return None;
        }
        let s = &b[off as usize..off as usize + w];
        let mut be = [0u8; 8];
        be[8 - w..].copy_from_slice(s);
        let mut le = be;
        le[8 - w..].reverse();
        let big = name.ends_with("be") || w == 1;
        let raw = u64::from_be_bytes(if big { be } else { le });
        let shift = 64 - 8 * w as u32;
        Some(match name.as_bytes()[0] {
            b'u' => Dynamic::from_int(raw as INT),
            b'i' => Dynamic::from_int(((raw << shift) as i64) >> shift),
            _ if w == 4 => Dynamic::from_float(f32::from_bits(raw as u32) as f64),
            _ => Dynamic::from_float(f64::from_bits(raw)),
        })
    }

    const NAMES: [&str; 18] = [
        "u8", "i8", "u16be", "u16le", "i16be", "i16le", "u24be", "u24le", "i24be", "i24le",
        "u32be", "u32le", "i32be", "i32le", "f32be", "f32le", "f64be", "f64le",
    ];

    proptest! {
        #[test]
        fn every_reader_matches_std_or_fails_cleanly(
            bytes in proptest::collection::vec(any::<u8>(), 0..12),
            off in -2i64..14,
        ) {
            let engine = engine();
            for name in NAMES {
                let mut scope = Scope::new();
                scope.push("b", Blob::from(bytes.clone()));
                scope.push("off", off);
                let got = engine.eval_with_scope::<Dynamic>(&mut scope, &format!("{name}(b, off)"));
                match (expected(name, &bytes, off), got) {
                    (None, Err(e)) => prop_assert!(e.to_string().contains(name), "{e}"),
                    (Some(want), Ok(got)) if want.is_float() => {
                        let (w, g) = (want.as_float().unwrap(), got.as_float().unwrap());
                        prop_assert!(w == g || (w.is_nan() && g.is_nan()), "{name}: {w} != {g}");
                    }
                    (Some(want), Ok(got)) => prop_assert_eq!(want.as_int().unwrap(), got.as_int().unwrap(), "{}", name),
                    (want, got) => prop_assert!(false, "{name}({bytes:?}, {off}): want {want:?}, got {got:?}"),
                }
            }
        }
    }
}

#[test]
fn integers_of_any_width_read_in_both_orders() {
    assert_eq!(int(r#"int_be(from_hex("00ff38"), 1, 2)"#), -200);
    assert_eq!(int(r#"uint_be(from_hex("00ff38"), 1, 2)"#), 0xff38);
    assert_eq!(int(r#"int_le(from_hex("38ff"), 0, 2)"#), -200);
    assert_eq!(int(r#"uint_le(from_hex("010203"), 0, 3)"#), 0x030201);
    assert_eq!(int(r#"int_be(from_hex("fffffe"), 0, 3)"#), -2);
    assert_eq!(int(r#"int_be(from_hex("ffffffffffffffff"), 0, 8)"#), -1);
    assert_eq!(
        int(r#"uint_be(from_hex("ffffffffffffff"), 0, 7)"#),
        0x00ff_ffff_ffff_ffff
    );
}

#[test]
fn a_bad_width_or_offset_names_the_helper() {
    let e = error(r#"uint_be(from_hex("0102"), 0, 8)"#);
    assert!(
        e.contains("uint_be: width must be 1 to 7 bytes, got 8"),
        "{e}"
    );
    let e = error(r#"int_le(from_hex("0102"), 0, 0)"#);
    assert!(
        e.contains("int_le: width must be 1 to 8 bytes, got 0"),
        "{e}"
    );
    let e = error(r#"int_be(from_hex("0102"), 1, 2)"#);
    assert!(
        e.contains("int_be: offset 1 + 2 byte(s) is past the end"),
        "{e}"
    );
}

#[test]
fn text_fields_give_numbers_or_null() {
    assert_eq!(float(r#"float_or_null(" 2.5 ")"#), 2.5);
    assert_eq!(int(r#"int_or_null("09", "satellites")"#), 9);
    assert!(engine()
        .eval::<Dynamic>(r#"float_or_null("")"#)
        .unwrap()
        .is_unit());
    let e = error(r#"float_or_null("1,5", "GGA hdop")"#);
    assert!(e.contains("GGA hdop: '1,5' is not a number"), "{e}");
    let e = error(r#"int_or_null("x")"#);
    assert!(e.contains("int_or_null: 'x' is not an integer"), "{e}");
}

#[test]
fn nmea_helpers_work_from_a_script() {
    let line = "$GPRMC,214350.00,A,4023.86,N,00339.163,W,0.0,0.0,261126,,,A*7B";
    let script = format!(
        r#"let s = nmea_sentence("{line}"); let f = s.fields;
           `${{s.talker}} ${{s.type}} ${{nmea_time(f[1])}} ${{nmea_date(f[9])}} ${{round(nmea_degrees(f[3], f[4]), 4)}}`"#
    );
    let checksum = line[1..line.len() - 3].bytes().fold(0u8, |a, b| a ^ b);
    assert_eq!(
        format!("{checksum:02X}"),
        &line[line.len() - 2..],
        "test line checksum"
    );
    assert_eq!(string(&script), "GP RMC 21:43:50.00 2026-11-26 40.3977");
    let e = error(r#"nmea_sentence(())"#);
    assert!(e.contains("nmea_sentence: the frame is not text"), "{e}");
}
