//! The sandbox's limits and errors, on small codecs written here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::json;

use super::{JsCodec, JsLimits};
use crate::frame::{Frame, Meta};
use crate::mapping::error::{MapError, MappingError};

fn limits() -> JsLimits {
    JsLimits {
        max_memory: 8 * 1024 * 1024,
        max_call_time: Duration::from_millis(100),
    }
}

fn codec(text: &str) -> Result<JsCodec, MappingError> {
    JsCodec::load(Path::new("codecs/test.js"), text, &[], limits())
}

fn frame(bytes: &[u8], fport: Option<&str>) -> Frame {
    let mut meta = Meta::default();
    if let Some(p) = fport {
        meta.extra.insert("fport".into(), p.into());
    }
    Frame {
        source: Arc::from("lora"),
        received_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        bytes: Bytes::copy_from_slice(bytes),
        meta,
    }
}

const ECHO: &str = "function decodeUplink(input) {\n  return { data: { bytes: input.bytes, port: input.fPort, at: input.recvTime.toISOString(), now: Date.now(), isDate: input.recvTime instanceof Date } };\n}\n";

#[test]
fn a_codec_gets_bytes_port_and_receive_time_and_its_data_comes_back() {
    let c = codec(ECHO).unwrap();
    let out = c.decode(&frame(&[1, 2, 255], Some("7"))).unwrap();
    assert_eq!(
        out.data,
        json!({ "bytes": [1, 2, 255], "port": 7, "at": "2023-11-14T22:13:20.123Z", "now": 1_700_000_000_123u64, "isDate": true })
    );
    assert!(out.warnings.is_empty());
}

#[test]
fn the_clock_a_codec_sees_is_the_frames_receive_time() {
    let c = codec("function decodeUplink(input) { return { data: [new Date().getTime(), Date.now(), typeof Date(), new Date(0).getTime()] }; }").unwrap();
    let out = c.decode(&frame(&[], Some("1"))).unwrap();
    assert_eq!(out.data[0], json!(1_700_000_000_123u64));
    assert_eq!(out.data[1], json!(1_700_000_000_123u64));
    assert_eq!(out.data[2], json!("string"));
    assert_eq!(out.data[3], json!(0));
}

#[test]
fn a_frame_without_fport_is_an_error_naming_the_codec() {
    let c = codec(ECHO).unwrap();
    let e = c.decode(&frame(&[1], None)).unwrap_err();
    assert_eq!(e.at(), "codecs/test.js");
    assert!(e.to_string().contains("no `fport`"), "{e}");
}

#[test]
fn errors_of_the_codec_are_the_frames_error_and_warnings_come_back() {
    let c = codec("function decodeUplink(input) {\n  if (input.fPort != 2) return { errors: ['unknown FPort'] };\n  return { data: { ok: 1 }, warnings: ['low battery'] };\n}").unwrap();
    let e = c.decode(&frame(&[], Some("3"))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "codecs/test.js: runtime error: unknown FPort"
    );
    let out = c.decode(&frame(&[], Some("2"))).unwrap();
    assert_eq!(out.warnings, vec!["low battery".to_string()]);
}

#[test]
fn an_endless_loop_is_stopped_by_the_time_limit_and_the_next_frame_is_decoded() {
    let c = codec("function decodeUplink(input) {\n  if (input.bytes[0] === 1) { for (;;) {} }\n  return { data: { ok: input.bytes[0] } };\n}").unwrap();
    let e = c.decode(&frame(&[1], Some("1"))).unwrap_err();
    assert!(matches!(e, MapError::Timeout { .. }), "{e:?}");
    assert_eq!(e.to_string(), "codecs/test.js: took longer than 100 ms");
    let out = c.decode(&frame(&[2], Some("1"))).unwrap();
    assert_eq!(out.data, json!({ "ok": 2 }));
}

#[test]
fn a_loop_that_catches_the_interruption_is_still_stopped() {
    let c =
        codec("function decodeUplink(input) {\n  for (;;) { try { for (;;) {} } catch (e) {} }\n}")
            .unwrap();
    let e = c.decode(&frame(&[1], Some("1"))).unwrap_err();
    assert!(matches!(e, MapError::Timeout { .. }), "{e:?}");
}

#[test]
fn unbounded_allocation_is_stopped_by_the_memory_limit_and_the_next_frame_is_decoded() {
    let c = codec("var kept = 0;\nfunction decodeUplink(input) {\n  kept++;\n  if (input.bytes[0] === 1) { var a = []; for (;;) { a.push('x'.repeat(1000) + a.length); } }\n  return { data: { ok: input.bytes[0] } };\n}").unwrap();
    let e = c.decode(&frame(&[1], Some("1"))).unwrap_err();
    assert!(matches!(e, MapError::Limit { .. }), "{e:?}");
    assert!(e.to_string().contains("memory limit"), "{e}");
    let out = c.decode(&frame(&[2], Some("1"))).unwrap();
    assert_eq!(out.data, json!({ "ok": 2 }));
}

#[test]
fn deep_recursion_is_a_stack_overflow_not_a_crash() {
    let c = codec("function f(n) { return f(n + 1) + 1; }\nfunction decodeUplink(input) { return { data: f(0) }; }").unwrap();
    let e = c.decode(&frame(&[1], Some("1"))).unwrap_err();
    assert!(matches!(e, MapError::Limit { .. }), "{e:?}");
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let e = codec("function decodeUplink(input) {\n  var x = ;\n}").unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("codecs/test.js:2"), "{text}");
    assert!(text.contains("SyntaxError"), "{text}");
}

#[test]
fn a_throwing_codec_names_the_file_line_and_message() {
    let c = codec("function decodeUplink(input) {\n  var b = input.bytes;\n  throw new RangeError('payload is ' + b.length + ' bytes');\n}").unwrap();
    let e = c.decode(&frame(&[1, 2], Some("1"))).unwrap_err();
    assert!(e.at().starts_with("codecs/test.js:3:"), "{e}");
    assert_eq!(e.line(), Some(3));
    assert!(
        e.to_string()
            .ends_with(": runtime error: RangeError: payload is 2 bytes"),
        "{e}"
    );
    let c = codec("function decodeUplink(input) { throw 'plain'; }").unwrap();
    let e = c.decode(&frame(&[], Some("1"))).unwrap_err();
    assert_eq!(e.to_string(), "codecs/test.js: runtime error: threw plain");
}

#[test]
fn a_codec_without_decode_uplink_is_refused_when_it_loads() {
    let e = codec("function Decoder(bytes, port) { return {}; }").unwrap_err();
    assert!(
        e.to_string().contains("defines neither `decodeUplink"),
        "{e}"
    );
    let c = codec("function encodeDownlink(input) { return { bytes: [1], fPort: 2 }; }").unwrap();
    let e = c.decode(&frame(&[], Some("1"))).unwrap_err();
    assert!(e.to_string().contains("no function `decodeUplink`"), "{e}");
}

#[test]
fn a_library_is_loaded_before_the_codec_and_its_errors_name_it() {
    let dir = test_support::scratch::Scratch::new("js-library");
    let lib = dir.write("vendor-lib.js", "var vendor = {\n  twice: function (x) {\n    if (x > 100) throw new Error('too big');\n    return 2 * x;\n  }\n};\n");
    let libs: Vec<PathBuf> = vec![lib.clone()];
    let c = JsCodec::load(
        Path::new("codecs/test.js"),
        "function decodeUplink(input) { return { data: vendor.twice(input.bytes[0]) }; }",
        &libs,
        limits(),
    )
    .unwrap();
    assert_eq!(c.decode(&frame(&[21], Some("1"))).unwrap().data, json!(42));
    let e = c.decode(&frame(&[200], Some("1"))).unwrap_err();
    assert!(e.at().starts_with(&format!("{}:3:", lib.display())), "{e}");
    std::fs::write(&lib, "var vendor = {;\n").unwrap();
    let e = JsCodec::load(
        Path::new("codecs/test.js"),
        "function decodeUplink(i) {}",
        &libs,
        limits(),
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with(&format!("{}:1", lib.display())),
        "{e}"
    );
}

#[test]
fn top_level_code_that_never_ends_is_stopped_when_the_codec_loads() {
    let e = codec("for (;;) {}\nfunction decodeUplink(input) {}").unwrap_err();
    assert!(e.to_string().contains("took longer than 100 ms"), "{e}");
}

#[test]
fn no_file_network_or_module_access_is_there() {
    let c = codec("function decodeUplink(input) { return { data: [typeof require, typeof std, typeof os, typeof process, typeof fetch, typeof XMLHttpRequest, typeof Buffer, typeof console] }; }").unwrap();
    let out = c.decode(&frame(&[], Some("1"))).unwrap();
    assert_eq!(out.data, json!(vec!["undefined"; 8]));
    let c = codec("function decodeUplink(input) { return import('os'); }").unwrap();
    assert!(c.decode(&frame(&[], Some("1"))).is_err());
}

#[test]
fn encode_downlink_gives_bytes_and_port() {
    let c = codec("function encodeDownlink(input) {\n  if (input.data.interval === undefined) return { errors: ['interval is required'] };\n  var s = input.data.interval;\n  return { bytes: [1, s >> 8, s & 255], fPort: 2, warnings: [] };\n}").unwrap();
    let out = c.encode(&json!({ "interval": 600 }), 0.0).unwrap();
    assert_eq!(out.bytes, vec![1, 2, 88]);
    assert_eq!(out.fport, Some(2));
    let e = c.encode(&json!({}), 0.0).unwrap_err();
    assert!(e.to_string().ends_with("interval is required"), "{e}");
}

#[test]
fn a_long_thrown_message_is_cut() {
    let c = codec("function decodeUplink(input) { throw new Error('x'.repeat(100000)); }").unwrap();
    let e = c.decode(&frame(&[], Some("1"))).unwrap_err();
    assert!(e.to_string().len() < 700, "{} bytes", e.to_string().len());
    assert!(e.to_string().ends_with("xx…"), "{e}");
}

#[test]
fn a_codec_cannot_replace_the_entry_mqgate_calls() {
    let c = codec("globalThis.__mqgate_decode = function () { return '{\"data\":\"hijacked\"}'; };\nfunction decodeUplink(input) { return { data: 'own' }; }").unwrap();
    assert_eq!(c.decode(&frame(&[], Some("1"))).unwrap().data, json!("own"));
}

/// What the codecs in the device repository use: ES5 functions, `this` and `bind`,
/// `in`, `toFixed`, `parseInt`; and what newer ones do: classes, arrow functions,
/// template strings, destructuring, typed arrays and `DataView`, changes to
/// built-in prototypes.
#[test]
fn the_language_features_vendors_codecs_use_are_there() {
    let c = codec(
        r#"
Object.prototype.twice = function () { return 2 * this.valueOf(); };
Array.prototype.sum = function () { return this.reduce((a, b) => a + b, 0); };
class Reader {
  constructor(bytes) { this.b = bytes; this.i = 0; }
  u16() { const v = (this.b[this.i] << 8) | this.b[this.i + 1]; this.i += 2; return v; }
}
var lib = { k: 10, scale: function (x) { return x / this.k; } };
function decodeUplink({ bytes, fPort }) {
  const r = new Reader(bytes);
  const [first, ...rest] = bytes;
  const view = new DataView(new Uint8Array(bytes).buffer);
  return { data: {
    u16: r.u16(), first, rest: rest.length, f32: view.getFloat32(0, false) > 0,
    fixed: (1 / 3).toFixed(2), hex: parseInt("ff", 16), chars: String.fromCharCode(72, 105),
    twice: (21).twice(), sum: bytes.sum(), bound: lib.scale.bind(lib)(50), has: "k" in lib,
    text: `port ${fPort}`, map: [...new Map([["a", 1]]).keys()], big: String(2n ** 64n),
  } };
}
"#,
    )
    .unwrap();
    let out = c.decode(&frame(&[0x41, 0x20, 0, 0], Some("5"))).unwrap();
    assert_eq!(
        out.data,
        json!({ "u16": 0x4120, "first": 0x41, "rest": 3, "f32": true, "fixed": "0.33", "hex": 255,
            "chars": "Hi", "twice": 42, "sum": 0x61, "bound": 5, "has": true, "text": "port 5",
            "map": ["a"], "big": "18446744073709551616" })
    );
}
