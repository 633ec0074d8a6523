//! The mapping sandbox: every script failure is a clear `MapError`, and the same
//! mapper maps the next frame fine. Also the dead-letter message and topic templates.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mqgate::frame::{Frame, Meta};
use mqgate::mapping::{
    dead_letter, MapError, Mapped, Mapper, MappingDefaults, MappingError, ScriptLimits,
};
use mqgate::message::Message;
use mqtt_proto::codec::QoS;

const PATH: &str = "scripts/test.rhai";

fn defaults() -> MappingDefaults {
    MappingDefaults {
        topic: "sensors/{source}/{name}".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        filter: None,
    }
}

fn frame(bytes: &[u8]) -> Frame {
    Frame {
        source: Arc::from("dev"),
        received_at: UNIX_EPOCH + Duration::from_millis(1_709_210_096_789),
        bytes: Bytes::copy_from_slice(bytes),
        meta: Meta {
            rssi: Some(-97.0),
            port: Some("ttyUSB0".into()),
            extra: BTreeMap::from([("gw".to_string(), "pi-1".to_string())]),
            ..Meta::default()
        },
    }
}

fn mapper_with(script: &str, defaults: MappingDefaults) -> Mapper {
    Mapper::new(
        "dev",
        Some((Path::new(PATH), script)),
        defaults,
        ScriptLimits::default(),
    )
    .unwrap_or_else(|e| panic!("compile: {e}"))
}

/// A script that fails on frames starting with `!` (by running `bad`) and
/// otherwise returns one message.
fn mapper(bad: &str) -> Mapper {
    let script = format!(
        "fn map(frame) {{\n    if frame.text.starts_with(\"!\") {{\n        {bad}\n    }}\n    #{{ name: \"ok\", payload: frame.text }}\n}}\n"
    );
    mapper_with(&script, defaults())
}

fn ok_message(payload: &str) -> Message {
    Message {
        topic: "sensors/dev/ok".parse().unwrap(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos: QoS::AtLeastOnce,
        retain: false,
    }
}

/// Map a failing frame, then a good one; return the failure.
fn fails_then_recovers(m: &Mapper) -> MapError {
    let err = match m.map(&frame(b"!boom")) {
        Mapped::Failed(e) => e,
        other => panic!("expected a failure, got {other:?}"),
    };
    assert_eq!(
        m.map(&frame(b"fine")),
        Mapped::Messages(vec![ok_message("fine")]),
        "the mapper must keep working after: {err}"
    );
    err
}

#[test]
fn an_endless_loop_exceeds_the_operation_limit() {
    let e = fails_then_recovers(&mapper("loop {}"));
    assert!(
        matches!(e, MapError::TooManyOperations { limit: 100_000, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "scripts/test.rhai: exceeded 100000 operations"
    );
}

#[test]
fn a_slow_script_hits_the_time_limit() {
    let limits = ScriptLimits {
        max_operations: 0, // unlimited: only the clock stops it
        max_call_time: Duration::from_millis(20),
        ..ScriptLimits::default()
    };
    let script = "fn map(frame) {\n    if frame.text.starts_with(\"!\") { loop {} }\n    #{ name: \"ok\", payload: frame.text }\n}";
    let m = Mapper::new("dev", Some((Path::new(PATH), script)), defaults(), limits).unwrap();
    let e = fails_then_recovers(&m);
    assert!(matches!(e, MapError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().ends_with("took longer than 20 ms"), "{e}");
}

#[test]
fn a_huge_string_hits_the_size_limit() {
    let e = fails_then_recovers(&mapper("let s = \"x\"; loop { s += s; }"));
    assert!(matches!(e, MapError::Limit { .. }), "{e:?}");
    assert!(e.to_string().contains("size limit"), "{e}");
    assert!(e.to_string().contains("65536 bytes"), "{e}");
}

#[test]
fn a_huge_array_hits_the_size_limit() {
    let e = fails_then_recovers(&mapper("let a = [1]; loop { a += a; }"));
    assert!(e.to_string().contains("10000 elements"), "{e}");
}

#[test]
fn deep_recursion_is_a_stack_overflow() {
    let script = "fn down(n) { down(n + 1) }\nfn map(frame) {\n    if frame.text.starts_with(\"!\") { down(0); }\n    #{ name: \"ok\", payload: frame.text }\n}";
    let e = fails_then_recovers(&mapper_with(script, defaults()));
    assert!(matches!(e, MapError::Limit { .. }), "{e:?}");
    assert!(e.to_string().contains("stack overflow"), "{e}");
}

#[test]
fn endlessly_nested_maps_are_stopped_by_the_limits() {
    let e = fails_then_recovers(&mapper("let a = #{}; loop { a = #{ a: a }; }"));
    assert!(
        matches!(
            e,
            MapError::Timeout { .. } | MapError::TooManyOperations { .. } | MapError::Limit { .. }
        ),
        "{e:?}"
    );
}

#[test]
fn importing_a_file_is_refused() {
    let e = fails_then_recovers(&mapper("import \"/etc/passwd\" as p; return p::root;"));
    assert!(matches!(e, MapError::Runtime { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("import \"/etc/passwd\" refused"), "{text}");
    assert!(!text.contains("root:"), "{text}");
}

#[test]
fn sleep_is_refused() {
    for call in ["sleep(5);", "sleep(0.5);"] {
        let started = std::time::Instant::now();
        let e = fails_then_recovers(&mapper(call));
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{call} slept"
        );
        assert_eq!(
            e.to_string(),
            "scripts/test.rhai:3:9: runtime error: sleep is not available in mapping scripts"
        );
    }
}

#[test]
fn eval_is_refused_when_the_script_is_compiled() {
    let script = "fn map(frame) { eval(\"1\") }";
    let err = Mapper::new(
        "dev",
        Some((Path::new(PATH), script)),
        defaults(),
        ScriptLimits::default(),
    )
    .expect_err("eval must not compile");
    assert!(
        matches!(err, MappingError::Compile { line: 1, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.starts_with("scripts/test.rhai:1:"), "{text}");
    assert!(
        text.contains("'eval' is disabled: mapping scripts cannot evaluate code"),
        "{text}"
    );
}

#[test]
fn a_throw_names_file_line_column_and_message() {
    let e = fails_then_recovers(&mapper("throw \"bad sensor id\";"));
    assert_eq!(
        e.to_string(),
        "scripts/test.rhai:3:9: runtime error: bad sensor id"
    );
}

#[test]
fn an_error_in_a_helper_function_names_the_function() {
    let script = "fn decode(b) {\n  u16be(b, 10)\n}\nfn map(frame) {\n    if frame.text.starts_with(\"!\") { decode(frame.bytes); }\n    #{ name: \"ok\", payload: frame.text }\n}";
    let e = fails_then_recovers(&mapper_with(script, defaults()));
    let text = e.to_string();
    assert!(
        text.starts_with("scripts/test.rhai:2:3: runtime error: u16be: offset 10"),
        "{text}"
    );
    assert!(text.ends_with("(in fn decode)"), "{text}");
}

#[test]
fn a_bad_return_shape_is_reported() {
    let e = fails_then_recovers(&mapper("return 42;"));
    assert_eq!(
        e.to_string(),
        "scripts/test.rhai: returned a bad shape: expected (), a map or an array of maps, got a i64"
    );
    let e = fails_then_recovers(&mapper("return #{ name: \"x\" };"));
    assert!(e.to_string().contains("needs a `payload`"), "{e}");
    let e = fails_then_recovers(&mapper("return [#{ payload: 1, name: \"a\" }, 5];"));
    assert!(
        e.to_string().contains("element 1 of the array is a i64"),
        "{e}"
    );
}

#[test]
fn a_wildcard_topic_is_a_bad_topic() {
    let e = fails_then_recovers(&mapper("return #{ topic: \"a/+/b\", payload: 1 };"));
    assert!(
        matches!(e, MapError::BadTopic { ref topic, .. } if topic == "a/+/b"),
        "{e:?}"
    );
    let e = fails_then_recovers(&mapper("return #{ name: \"#\", payload: 1 };"));
    assert!(e.to_string().contains("bad topic \"sensors/dev/#\""), "{e}");
}

#[test]
fn qos_3_is_refused() {
    let e = fails_then_recovers(&mapper("return #{ name: \"x\", payload: 1, qos: 3 };"));
    assert!(
        e.to_string()
            .ends_with("returned a bad shape: qos must be 0, 1 or 2, got 3"),
        "{e}"
    );
}

#[test]
fn unit_and_an_empty_array_are_filtered() {
    assert_eq!(fails_or_filtered("return ();"), Mapped::Filtered);
    assert_eq!(fails_or_filtered("return [];"), Mapped::Filtered);
}

fn fails_or_filtered(bad: &str) -> Mapped {
    mapper(bad).map(&frame(b"!x"))
}

#[test]
fn payloads_convert_by_type_and_fields_override_defaults() {
    let script = r#"fn map(frame) {
        [
            #{ name: "map", payload: #{ t: 21.5, ok: true } },
            #{ name: "str", payload: "plain", qos: 0, retain: true },
            #{ name: "blob", payload: frame.bytes },
            #{ name: "num", payload: 7 },
            #{ topic: "own/topic", payload: [1, "a"] },
        ]
    }"#;
    let Mapped::Messages(m) = mapper_with(script, defaults()).map(&frame(&[0xff, 0x00])) else {
        panic!("expected messages");
    };
    let got: Vec<(&str, &[u8], QoS, bool)> = m
        .iter()
        .map(|m| (m.topic.as_str(), &m.payload[..], m.qos, m.retain))
        .collect();
    assert_eq!(
        got,
        [
            (
                "sensors/dev/map",
                &br#"{"ok":true,"t":21.5}"#[..],
                QoS::AtLeastOnce,
                false
            ),
            ("sensors/dev/str", b"plain", QoS::AtMostOnce, true),
            ("sensors/dev/blob", &[0xff, 0x00], QoS::AtLeastOnce, false),
            ("sensors/dev/num", b"7", QoS::AtLeastOnce, false),
            ("own/topic", br#"[1,"a"]"#, QoS::AtLeastOnce, false),
        ]
    );
}

#[test]
fn template_placeholders_come_from_fields_source_and_meta() {
    let d = MappingDefaults {
        topic: "{source}/{gw}/{port}/{rssi}/{room}/{n}".into(),
        ..defaults()
    };
    let m = mapper_with(
        r#"fn map(frame) { #{ room: "kitchen", n: 3, payload: "x" } }"#,
        d.clone(),
    );
    let Mapped::Messages(msgs) = m.map(&frame(b"x")) else {
        panic!()
    };
    assert_eq!(msgs[0].topic, "dev/pi-1/ttyUSB0/-97/kitchen/3");

    let missing = MappingDefaults {
        topic: "s/{source}/{snr}".into(),
        ..defaults()
    };
    let m = mapper_with(r#"fn map(frame) { #{ payload: "x" } }"#, missing);
    let Mapped::Failed(e) = m.map(&frame(b"x")) else {
        panic!()
    };
    assert_eq!(
        e.to_string(),
        "scripts/test.rhai: topic template \"s/{source}/{snr}\" has no value for placeholder {snr}"
    );
}

#[test]
fn a_broken_template_or_filter_or_missing_map_fails_at_compile_time() {
    let d = MappingDefaults {
        topic: "s/{source".into(),
        ..defaults()
    };
    let e = Mapper::new("dev", None, d, ScriptLimits::default())
        .err()
        .unwrap();
    assert!(matches!(e, MappingError::Template { .. }), "{e}");
    let d = MappingDefaults {
        filter: Some("frame.bytes.len( > 2".into()),
        ..defaults()
    };
    let e = Mapper::new("dev", None, d, ScriptLimits::default())
        .err()
        .unwrap();
    assert!(matches!(e, MappingError::Filter { .. }), "{e}");
    let e = Mapper::new(
        "dev",
        Some((Path::new(PATH), "fn decode(f) { 1 }")),
        defaults(),
        ScriptLimits::default(),
    )
    .err()
    .unwrap();
    assert_eq!(e, MappingError::NoMapFunction { path: PATH.into() });
    let e = Mapper::new(
        "dev",
        Some((Path::new(PATH), "fn map(frame) {\n  let = 1;\n}")),
        defaults(),
        ScriptLimits::default(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().starts_with("scripts/test.rhai:2:"), "{e}");
}

#[test]
fn a_top_level_constant_is_refused_because_map_cannot_see_it() {
    let script = "const SCALE = 10;\nfn map(frame) { #{ payload: SCALE } }";
    let e = Mapper::new(
        "dev",
        Some((Path::new(PATH), script)),
        defaults(),
        ScriptLimits::default(),
    )
    .expect_err("a top-level const must not compile");
    assert!(
        e.to_string()
            .starts_with("scripts/test.rhai: top-level `const SCALE` is never seen by `fn map`"),
        "{e}"
    );
}

#[test]
fn without_a_script_the_frame_is_published_as_it_is() {
    let d = MappingDefaults {
        topic: "raw/{source}".into(),
        retain: true,
        ..defaults()
    };
    let m = Mapper::new("dev", None, d, ScriptLimits::default()).unwrap();
    assert_eq!(
        m.map(&frame(&[1, 2, 3])),
        Mapped::Messages(vec![Message {
            topic: "raw/dev".parse().unwrap(),
            payload: Bytes::from_static(&[1, 2, 3]),
            qos: QoS::AtLeastOnce,
            retain: true,
        }])
    );
}

#[test]
fn the_filter_runs_before_the_script() {
    let d = MappingDefaults {
        topic: "raw/{source}".into(),
        filter: Some("frame.bytes.len() > 2 && frame.meta.gw == \"pi-1\"".into()),
        ..defaults()
    };
    let m = mapper_with(r#"fn map(frame) { #{ payload: frame.source } }"#, d);
    assert_eq!(m.map(&frame(b"ab")), Mapped::Filtered);
    let Mapped::Messages(msgs) = m.map(&frame(b"abc")) else {
        panic!()
    };
    assert_eq!(&msgs[0].payload[..], b"dev");
    let d = MappingDefaults {
        filter: Some("42".into()),
        ..defaults()
    };
    let m = Mapper::new("dev", None, d, ScriptLimits::default()).unwrap();
    let Mapped::Failed(e) = m.map(&frame(b"x")) else {
        panic!()
    };
    assert!(
        e.to_string()
            .contains("filter of source dev: returned a bad shape"),
        "{e}"
    );
}

#[test]
fn the_script_sees_every_frame_field() {
    let script = r#"fn map(frame) {
        #{ payload: [frame.source, frame.time, frame.received_ms, frame.text, frame.meta.rssi,
                     frame.meta.port, frame.meta.gw, type_of(frame.meta.snr), frame.bytes.len()] }
    }"#;
    let d = MappingDefaults {
        topic: "t".into(),
        ..defaults()
    };
    let Mapped::Messages(m) = mapper_with(script, d).map(&frame(b"hi")) else {
        panic!()
    };
    assert_eq!(
        std::str::from_utf8(&m[0].payload).unwrap(),
        r#"["dev","2024-02-29T12:34:56.789Z",1709210096789,"hi",-97.0,"ttyUSB0","pi-1","()",2]"#
    );
}

#[test]
fn the_dead_letter_message_carries_the_error_and_the_frame() {
    let m = mapper("throw \"bad\";");
    let f = frame(b"!x");
    let Mapped::Failed(e) = m.map(&f) else {
        panic!()
    };
    let dl = dead_letter("pi", &f, &e);
    assert_eq!(dl.topic, "mqgate/pi/deadletter/dev");
    assert_eq!(dl.qos, QoS::AtLeastOnce);
    assert!(!dl.retain);
    let v: serde_json::Value = serde_json::from_slice(&dl.payload).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "error": "scripts/test.rhai:3:9: runtime error: bad",
            "source": "dev",
            "received_at": "2024-02-29T12:34:56.789Z",
            "bytes_hex": "2178",
            "text": "!x",
        })
    );
    let binary = Frame {
        bytes: Bytes::from_static(&[0xff, 0xfe]),
        received_at: SystemTime::now(),
        ..f
    };
    let v: serde_json::Value =
        serde_json::from_slice(&dead_letter("pi", &binary, &e).payload).unwrap();
    assert_eq!(v["bytes_hex"], "fffe");
    assert!(v.get("text").is_none(), "{v}");
}

#[test]
fn a_mapper_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Mapper>();
    let m = Arc::new(mapper("throw \"x\";"));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                (0..50).all(|_| matches!(m.map(&frame(b"ok")), Mapped::Messages(_)))
            })
        })
        .collect();
    assert!(handles.into_iter().all(|h| h.join().unwrap()));
}
