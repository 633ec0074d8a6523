//! The configuration users edit: every kind of mistake gives a message with file,
//! line, column and field, and all of them come back from one load.

use std::path::Path;
use test_support::Scratch;

use mqgate::config::{ConfigError, GatewayConfig, SourceKind};
use mqtt_proto::codec::QoS;

/// A fresh folder under the system temp dir holding the given files; removed when
/// the guard is dropped.
fn folder(files: &[(&str, &str)]) -> Scratch {
    let dir = Scratch::new("mqgate-config");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// Loads the given files' `mqgate.yaml`; the folder is gone once this returns, so
/// a test that looks at the files afterwards uses [`folder`] itself.
fn load(files: &[(&str, &str)]) -> Result<GatewayConfig, Vec<ConfigError>> {
    let dir = folder(files);
    GatewayConfig::load(&dir.path().join("mqgate.yaml"))
}

/// The errors of a config that must fail, printed one per line for assertion messages.
fn errors(files: &[(&str, &str)]) -> Vec<ConfigError> {
    match load(files) {
        Ok(config) => panic!("expected errors, the config loaded: {config:#?}"),
        Err(errors) => errors,
    }
}

/// The only error, checked to be at `field`, `line` and `column` of the named file.
fn single(errors: &[ConfigError], file: &str, field: &str, line: usize, column: usize) -> String {
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got:\n{}",
        all.join("\n")
    );
    let e = &errors[0];
    assert_eq!(e.file.file_name().unwrap(), file, "{e}");
    assert_eq!(e.field, field, "{e}");
    assert_eq!((e.line, e.column), (Some(line), Some(column)), "{e}");
    e.message.clone()
}

const HEAD: &str = "gateway:\n  id: pi\n";

#[test]
fn a_minimal_file_loads_with_defaults() {
    let config = load(&[("mqgate.yaml", HEAD)]).unwrap();
    assert_eq!(config.gateway.id, "pi");
    assert!(config.broker.is_none());
    assert!(config.upstream.is_none());
    assert_eq!(config.status.listen.to_string(), "127.0.0.1:8080");
    assert!(config.sources.is_empty() && config.mappings.is_empty());
    assert!(config.mappings_dir.ends_with("mappings"));
}

#[test]
fn an_unknown_key_is_named_with_its_position() {
    let text = "gateway:\n  id: pi\n  stat_dir: /tmp\n";
    let message = single(
        &errors(&[("mqgate.yaml", text)]),
        "mqgate.yaml",
        "gateway.stat_dir",
        3,
        3,
    );
    assert!(message.contains("unknown field `stat_dir`"), "{message}");
    assert!(
        message.contains("state_dir"),
        "the message lists the known keys: {message}"
    );

    let text = format!("{HEAD}sourcs: []\n");
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "sourcs",
        3,
        1,
    );
    assert!(message.contains("expected one of"), "{message}");
}

#[test]
fn a_value_of_the_wrong_type_is_named_with_its_position() {
    let text = format!(
        "{HEAD}sources:\n  - id: meter\n    type: serial\n    path: /dev/ttyUSB0\n    baud: fast\n"
    );
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "sources[0].baud",
        7,
        5,
    );
    assert!(
        message.contains("invalid type: string \"fast\""),
        "{message}"
    );
}

#[test]
fn a_bad_enum_value_lists_the_good_ones() {
    let text = format!(
        "{HEAD}sources:\n  - id: meter\n    type: serial\n    path: /dev/ttyUSB0\n    parity: space\n"
    );
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "sources[0].parity",
        7,
        5,
    );
    assert!(
        message.contains("`space`") && message.contains("`even`"),
        "{message}"
    );

    let text = format!(
        "{HEAD}sources:\n  - id: meter\n    type: serial\n    path: /dev/ttyUSB0\n    data_bits: 9\n"
    );
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "sources[0].data_bits",
        7,
        5,
    );
    assert!(message.contains("5, 6, 7 or 8"), "{message}");

    let text = format!("{HEAD}sources:\n  - id: radio\n    type: lora\n");
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "sources[0].type",
        5,
        5,
    );
    assert!(
        message.contains("`lora`") && message.contains("serial, replay"),
        "{message}"
    );
}

#[test]
fn a_missing_required_field_is_named_at_its_parent() {
    let text = format!("{HEAD}sources:\n  - id: meter\n    type: serial\n    baud: 4800\n");
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "sources[0]",
        4,
        5,
    );
    assert!(message.contains("missing field `path`"), "{message}");

    let message = single(
        &errors(&[("mqgate.yaml", "status: {}\n")]),
        "mqgate.yaml",
        "",
        1,
        1,
    );
    assert!(message.contains("gateway"), "{message}");
}

#[test]
fn every_bad_key_of_one_section_is_reported_not_only_the_first() {
    let text = format!(
        "{HEAD}upstream:
  url: tcp://broker:1883
  keep_alive_secs: -1
  client: gw
sources:
  - id: meter
    type: serial
    path: /dev/ttyUSB0
    baud: fast
    parity: space
    bauds: 9600
    reopen:
      max_ms: soon
"
    );
    let errors = errors(&[("mqgate.yaml", &text)]);
    let found: Vec<(String, Option<usize>)> =
        errors.iter().map(|e| (e.field.clone(), e.line)).collect();
    let expected: Vec<(String, Option<usize>)> = [
        ("upstream.url", 4),
        ("upstream.keep_alive_secs", 5),
        ("upstream.client", 6),
        ("sources[0].baud", 11),
        ("sources[0].parity", 12),
        ("sources[0].bauds", 13),
        ("sources[0].reopen.max_ms", 15),
    ]
    .into_iter()
    .map(|(field, line)| (field.to_string(), Some(line)))
    .collect();
    assert_eq!(found, expected, "{errors:#?}");
}

#[test]
fn a_yaml_syntax_error_has_its_position() {
    let text = "gateway:\n  id: pi\n sources: [\n";
    let broken = errors(&[("mqgate.yaml", text)]);
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(
        (broken[0].line, broken[0].column),
        (Some(3), Some(2)),
        "{}",
        broken[0]
    );

    let text = format!("{HEAD}sources:\n  - id: meter\n    baud: 1\n    baud: 2\n");
    let twice = errors(&[("mqgate.yaml", &text)]);
    assert_eq!(twice.len(), 1, "{twice:?}");
    assert_eq!(twice[0].field, "sources[0].baud", "{}", twice[0]);
    assert!(twice[0].message.contains("written twice"), "{}", twice[0]);
}

#[test]
fn the_framing_block_is_checked_with_its_field_path() {
    let text = format!(
        "{HEAD}sources:\n  - id: meter\n    type: serial\n    path: /dev/ttyUSB0\n    framing:\n      type: lines\n      max_length: 0\n"
    );
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "sources[0].framing.max_length",
        9,
        7,
    );
    assert!(message.contains("at least 1"), "{message}");

    let text = format!(
        "{HEAD}sources:\n  - id: meter\n    type: serial\n    path: /dev/ttyUSB0\n    framing:\n      type: hdlc\n"
    );
    let errors = errors(&[("mqgate.yaml", &text)]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].field.starts_with("sources[0].framing"),
        "{}",
        errors[0]
    );
    assert!(errors[0].message.contains("hdlc"), "{}", errors[0]);
}

#[test]
fn the_broker_section_is_checked_by_broker_lite_rules() {
    let text = format!("{HEAD}broker:\n  listen: 127.0.0.1:1884\n  limits:\n    max_inflight: 0\n");
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "broker.limits.max_inflight",
        6,
        5,
    );
    assert!(message.contains("at least 1"), "{message}");

    let config = load(&[("mqgate.yaml", &format!("{HEAD}broker:\n"))]).unwrap();
    assert_eq!(config.broker, Some(broker_lite::Config::default()));
}

#[test]
fn semantic_errors_in_the_gateway_file_are_all_reported() {
    let text = format!(
        "{HEAD}upstream:
  url: http://broker.example.com
  username: gw
  password: secret
  password_file: secret.txt
sources:
  - id: gps
    type: replay
    file: nowhere.log
  - id: gps
    type: replay
    file: capture.log
    speed: 2.0
    fast: true
  - id: bad id
    type: serial
    path: /dev/ttyUSB0
    reopen:
      initial_ms: 1000
      max_ms: 10
"
    );
    let errors = errors(&[("mqgate.yaml", &text), ("capture.log", "$GPGGA\n")]);
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let all = lines.join("\n");
    let dir = errors[0].file.parent().unwrap().display().to_string();
    // A bad url fails the whole upstream section's types, so its other fields
    // are checked once it is fixed; every source problem shows at once.
    let expected = [
        "mqgate.yaml:4:3: upstream.url: \"http://broker.example.com\" is not an MQTT url"
            .to_string(),
        format!("mqgate.yaml:11:5: sources[0].file: capture file {dir}/nowhere.log does not exist"),
        "mqgate.yaml:12:5: sources[1].id: duplicate source id `gps` (also sources[0])".to_string(),
        "mqgate.yaml:16:5: sources[1].fast: set either `speed` or `fast: true`, not both"
            .to_string(),
        "mqgate.yaml:17:5: sources[2].id: \"bad id\" is not a valid source id".to_string(),
        "mqgate.yaml:22:7: sources[2].reopen.max_ms: must be at least initial_ms (1000), got 10"
            .to_string(),
    ];
    assert_eq!(errors.len(), expected.len(), "{all}");
    for (line, want) in lines.iter().zip(&expected) {
        let (_, tail) = line.split_once("/mqgate.yaml").unwrap();
        assert!(
            format!("mqgate.yaml{tail}").starts_with(want.as_str()),
            "{line}\nwanted {want}"
        );
    }
}

#[test]
fn upstream_credentials_and_tls_files_are_checked_together() {
    let text = format!(
        "{HEAD}upstream:
  url: mqtt://broker.example.com
  password: secret
  password_file: secret.txt
  cert_file: client.pem
"
    );
    let errors = errors(&[
        ("mqgate.yaml", &text),
        ("secret.txt", "pw\n"),
        ("client.pem", "x"),
    ]);
    let fields: Vec<(&str, Option<usize>, &str)> = errors
        .iter()
        .map(|e| (e.field.as_str(), e.line, e.message.as_str()))
        .collect();
    let has = |field: &str, line: usize, words: &str| {
        fields
            .iter()
            .any(|(f, l, m)| *f == field && *l == Some(line) && m.contains(words))
    };
    assert!(has("upstream.password_file", 6, "not both"), "{fields:?}");
    assert!(
        has("upstream.username", 3, "needs a username"),
        "{fields:?}"
    );
    assert!(
        has("upstream.cert_file", 7, "`key_file` is missing"),
        "{fields:?}"
    );
    assert!(
        has("upstream.cert_file", 7, "needs an mqtts:// url"),
        "{fields:?}"
    );
    assert_eq!(fields.len(), 4, "{fields:?}");
}

#[test]
fn upstream_defaults_fill_in_the_client_id_and_port() {
    let text = format!("{HEAD}upstream:\n  url: mqtts://broker.example.com\n");
    let upstream = load(&[("mqgate.yaml", &text)]).unwrap().upstream.unwrap();
    assert_eq!(upstream.client_id, "mqgate-pi");
    assert_eq!((upstream.url.tls, upstream.url.port), (true, 8883));
    assert!(!upstream.clean_session);
    assert_eq!(upstream.keep_alive_secs, 30);
    assert_eq!(upstream.max_inflight, 100);
    assert_eq!(
        (upstream.reconnect.initial_ms, upstream.reconnect.max_ms),
        (500, 5_000)
    );
}

#[test]
fn upstream_reconnect_takes_the_keys_of_a_sources_reopen_and_cannot_loop_busily() {
    let text = format!(
        "{HEAD}upstream:\n  url: mqtt://127.0.0.1\n  reconnect: {{ initial_ms: 0, max_ms: 2000 }}\n"
    );
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "upstream.reconnect.initial_ms",
        5,
        3,
    );
    assert!(message.contains("no busy retry loop"), "{message}");
    let text = format!(
        "{HEAD}upstream:\n  url: mqtt://127.0.0.1\n  reconnect: {{ initial_ms: 200, max_ms: 2000 }}\n"
    );
    let upstream = load(&[("mqgate.yaml", &text)]).unwrap().upstream.unwrap();
    assert_eq!(
        (upstream.reconnect.initial_ms, upstream.reconnect.max_ms),
        (200, 2000)
    );
}

#[test]
fn upstream_max_inflight_must_be_1_to_30000() {
    for bad in ["0", "30001"] {
        let text = format!("{HEAD}upstream:\n  url: mqtt://127.0.0.1\n  max_inflight: {bad}\n");
        let message = single(
            &errors(&[("mqgate.yaml", &text)]),
            "mqgate.yaml",
            "upstream.max_inflight",
            5,
            3,
        );
        assert!(message.contains("must be 1 to 30000"), "{message}");
        assert!(message.contains(&format!("got {bad}")), "{message}");
    }
    let text = format!("{HEAD}upstream:\n  url: mqtt://127.0.0.1\n  max_inflight: 2000\n");
    let upstream = load(&[("mqgate.yaml", &text)]).unwrap().upstream.unwrap();
    assert_eq!(upstream.max_inflight, 2000);
}

const GATEWAY_WITH_SOURCES: &str = "gateway:
  id: pi
sources:
  - id: gps
    type: replay
    file: gps.log
    loop: true
  - id: meter
    type: serial
    path: /dev/serial/by-id/usb-meter
    baud: 115200
    flow_control: hardware
";

#[test]
fn mapping_files_load_with_their_defaults_and_resolved_script() {
    // The folder stays until the end: the test checks the resolved files exist.
    let dir = folder(&[
        ("mqgate.yaml", GATEWAY_WITH_SOURCES),
        ("gps.log", "$GPGGA\n"),
        (
            "mappings/gps.yaml",
            "source: gps\nscript: ../scripts/nmea.rhai\nqos: 2\n",
        ),
        (
            "mappings/meter.yml",
            "source: meter\nfilter: frame.text != \"\"\n",
        ),
        ("mappings/notes.txt", "not a mapping"),
        ("scripts/nmea.rhai", "()"),
    ]);
    let config = GatewayConfig::load(&dir.path().join("mqgate.yaml")).unwrap();
    assert_eq!(config.mappings.len(), 2);
    let gps = &config.mappings[0];
    assert_eq!(gps.source, "gps");
    assert_eq!(gps.qos, QoS::ExactlyOnce);
    // Relative to the mapping file's folder, and tidied for messages.
    assert_eq!(
        gps.script.as_deref(),
        Some(dir.path().join("scripts/nmea.rhai").as_path())
    );
    assert!(gps.script.as_ref().unwrap().is_file());
    let meter = &config.mappings[1];
    assert_eq!(
        (meter.topic.as_str(), meter.qos, meter.retain),
        ("sensors/{source}", QoS::AtLeastOnce, false)
    );
    assert_eq!(meter.filter.as_deref(), Some("frame.text != \"\""));
    match &config.sources[0].kind {
        SourceKind::Replay(replay) => {
            assert!(replay.looping && replay.file.is_file());
        }
        other => panic!("expected a replay source, got {other:?}"),
    }
    match &config.sources[1].kind {
        SourceKind::Serial(serial) => {
            assert_eq!(serial.baud, 115200);
            assert_eq!(
                tokio_serial::FlowControl::from(serial.flow_control),
                tokio_serial::FlowControl::Hardware
            );
            assert_eq!(
                tokio_serial::DataBits::from(serial.data_bits),
                tokio_serial::DataBits::Eight
            );
        }
        other => panic!("expected a serial source, got {other:?}"),
    }
}

#[test]
fn errors_in_several_files_come_back_together_with_file_line_column_and_field() {
    let gateway = GATEWAY_WITH_SOURCES.replace("baud: 115200", "baud: [1]");
    let dir = folder(&[
        ("mqgate.yaml", &gateway),
        ("gps.log", "$GPGGA\n"),
        (
            "mappings/a-gps.yaml",
            "source: gps\nscript: missing.rhai\nqos: 3\n",
        ),
        (
            "mappings/b-gps.yaml",
            "# the same source again\nsource: gps\n",
        ),
        (
            "mappings/c-door.yaml",
            "source: door\ntopic: doors/+/state\n",
        ),
        (
            "mappings/d-meter.yaml",
            "source: meter\nretain: yes please\n",
        ),
    ]);
    let errors = GatewayConfig::load(&dir.path().join("mqgate.yaml")).unwrap_err();
    let prefix = format!("{}/", dir.path().display());
    let lines: Vec<String> = errors
        .iter()
        .map(|e| e.to_string().replacen(&prefix, "", 1))
        .collect();
    let all = lines.join("\n");
    let expected = [
        "mqgate.yaml:11:5: sources[1].baud: invalid type: sequence, expected a whole number from 0 to 4294967295",
        "mappings/a-gps.yaml:2:1: script: script file ",
        "mappings/a-gps.yaml:3:1: qos: invalid value: integer `3`, expected qos 0, 1 or 2",
        "mappings/b-gps.yaml:2:1: source: source `gps` already has a mapping in ",
        "mappings/c-door.yaml:1:1: source: no source `door` in ",
        "mappings/c-door.yaml:2:1: topic: '+' is not allowed in a topic name",
        "mappings/d-meter.yaml:2:1: retain: invalid type: string \"yes please\", expected a boolean",
    ];
    assert_eq!(lines.len(), expected.len(), "{all}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(line.starts_with(want), "{line}\nwanted {want}\nall:\n{all}");
    }
    assert!(all.contains("configured: gps, meter"), "{all}");
    assert!(
        all.contains("a mapping in ") && all.contains("a-gps.yaml; a source has at most one"),
        "{all}"
    );
}

#[test]
fn a_missing_script_is_reported_when_its_mapping_is_otherwise_right() {
    let errors = errors(&[
        ("mqgate.yaml", GATEWAY_WITH_SOURCES),
        ("gps.log", "$GPGGA\n"),
        ("mappings/gps.yaml", "source: gps\nscript: nmea.rhai\n"),
    ]);
    let message = single(&errors, "gps.yaml", "script", 2, 1);
    assert!(message.contains("nmea.rhai does not exist"), "{message}");
}

#[test]
fn a_bad_field_does_not_hide_the_later_problems_of_its_mapping_file() {
    let errors = errors(&[
        ("mqgate.yaml", GATEWAY_WITH_SOURCES),
        ("gps.log", "$GPGGA\n"),
        (
            "mappings/gps.yaml",
            "source: gps\nqos: 7\ntopic: gps/{name\nscript: nmea.rhai\nlimits:\n  max_call_ms: 0\n",
        ),
    ]);
    let shown: Vec<(String, Option<usize>)> =
        errors.iter().map(|e| (e.field.clone(), e.line)).collect();
    assert_eq!(
        shown,
        [
            ("qos".to_string(), Some(2)),
            ("topic".to_string(), Some(3)),
            ("script".to_string(), Some(4)),
            ("limits.max_call_ms".to_string(), Some(6)),
        ],
        "{errors:?}"
    );
    assert!(errors[1].message.contains("unclosed `{`"), "{}", errors[1]);
    assert!(
        errors[2].message.contains("nmea.rhai does not exist"),
        "{}",
        errors[2]
    );
}

#[test]
fn a_mappings_folder_that_was_named_must_exist() {
    let text = format!("{HEAD}mappings: maps\n");
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "mappings",
        3,
        1,
    );
    assert!(
        message.contains("cannot read the mappings folder"),
        "{message}"
    );
}

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn the_demo_config_loads() {
    let path = workspace().join("examples/demo.yaml");
    let config = GatewayConfig::load(&path).unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("examples/demo.yaml has errors:\n{}", lines.join("\n"))
    });
    assert_eq!(
        config.broker.as_ref().unwrap().listen.to_string(),
        "127.0.0.1:1883"
    );
    assert!(config.upstream.is_none());
    assert_eq!(config.status.listen.to_string(), "127.0.0.1:8080");
    assert!(config.sources.iter().any(|s| s.id == "gps"));
    for mapping in &config.mappings {
        assert!(
            config.sources.iter().any(|s| s.id == mapping.source),
            "{} has no source",
            mapping.path.display()
        );
    }
}

#[test]
fn the_full_example_config_loads() {
    let path = workspace().join("examples/mqgate.yaml");
    let config = GatewayConfig::load(&path).unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("examples/mqgate.yaml has errors:\n{}", lines.join("\n"))
    });
    assert!(config.upstream.is_some());
    assert!(config
        .sources
        .iter()
        .any(|s| matches!(s.kind, SourceKind::Serial(_))));
}

#[test]
fn the_store_section_has_defaults_in_the_state_dir_and_named_errors() {
    let config = load(&[("mqgate.yaml", "gateway:\n  id: pi\n  state_dir: state\n")]).unwrap();
    assert!(config.store.file.ends_with("state/messages.db"));
    assert_eq!(config.store.max_messages, 1_000_000);

    let text = format!("{HEAD}store:\n  max_messages: 10\n  when_full: panic\n");
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "store.when_full",
        5,
        3,
    );
    assert!(message.contains("unknown variant `panic`"), "{message}");
    assert!(
        message.contains("drop_oldest"),
        "lists the choices: {message}"
    );

    let text = format!("{HEAD}store:\n  max_age: 7 weeks\n");
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "store.max_age",
        4,
        3,
    );
    assert!(message.contains("not a duration"), "{message}");
}

#[test]
fn status_credentials_and_the_log_level_are_checked_with_their_position() {
    let e = errors(&[(
        "mqgate.yaml",
        "gateway:\n  id: pi\nstatus:\n  listen: 0.0.0.0:8080\n  username: admin\n",
    )]);
    let message = single(&e, "mqgate.yaml", "status.username", 5, 3);
    assert!(
        message.contains("needs `password` or `password_file`"),
        "{message}"
    );

    let e = errors(&[(
        "mqgate.yaml",
        "gateway:\n  id: pi\nstatus:\n  token: abc\n  token_file: token\n",
    )]);
    let message = single(&e, "mqgate.yaml", "status.token_file", 5, 3);
    assert!(message.contains("not both"), "{message}");

    let e = errors(&[(
        "mqgate.yaml",
        "gateway:\n  id: pi\nlog:\n  level: verbose\n",
    )]);
    let message = single(&e, "mqgate.yaml", "log.level", 4, 3);
    assert!(message.contains("is not a log level"), "{message}");

    let config = load(&[(
        "mqgate.yaml",
        "gateway:\n  id: pi\nlog:\n  level: info,mqgate::source=debug\n\
         status:\n  username: admin\n  password_file: secret\n",
    )])
    .unwrap();
    assert_eq!(config.log.level, "info,mqgate::source=debug");
    assert!(config.status.password_file.unwrap().ends_with("secret"));
    let default = load(&[("mqgate.yaml", HEAD)]).unwrap();
    assert_eq!(default.log.level, "info");
    assert!(default.status.auth().unwrap().is_open());
}

#[test]
fn an_empty_status_password_is_refused_like_an_empty_token() {
    let e = errors(&[(
        "mqgate.yaml",
        "gateway:\n  id: pi\nstatus:\n  username: admin\n  password: \"\"\n",
    )]);
    let message = single(&e, "mqgate.yaml", "status.password", 5, 3);
    assert!(message.contains("the password is empty"), "{message}");

    let e = errors(&[("mqgate.yaml", "gateway:\n  id: pi\nstatus:\n  token: ''\n")]);
    let message = single(&e, "mqgate.yaml", "status.token", 4, 3);
    assert!(message.contains("the token is empty"), "{message}");

    // An empty password file is refused when it is read (at start).
    let dir = folder(&[
        (
            "mqgate.yaml",
            "gateway:\n  id: pi\nstatus:\n  username: admin\n  password_file: secret\n",
        ),
        ("secret", "\n"),
    ]);
    let config = GatewayConfig::load(&dir.path().join("mqgate.yaml")).expect("loads");
    let e = config
        .status
        .auth()
        .expect_err("an empty password file is refused");
    assert!(e.to_string().contains("is empty"), "{e}");
}

#[test]
fn the_status_servers_limits_have_defaults_and_are_checked_with_their_position() {
    let config = load(&[("mqgate.yaml", HEAD)]).unwrap();
    let limits = config.status.limits();
    assert_eq!(limits.max_connections, 64);
    assert_eq!(limits.header_timeout, std::time::Duration::from_secs(10));
    assert_eq!(limits.idle_timeout, std::time::Duration::from_secs(60));
    assert!(limits.allowed_hosts.is_empty());

    let config = load(&[(
        "mqgate.yaml",
        "gateway:\n  id: pi\nstatus:\n  max_connections: 8\n  header_timeout_secs: 3\n\
         \x20 idle_timeout_secs: 30\n  allowed_hosts: [Gateway.LAN, pi-1]\n",
    )])
    .unwrap();
    let limits = config.status.limits();
    assert_eq!(limits.max_connections, 8);
    assert_eq!(limits.header_timeout, std::time::Duration::from_secs(3));
    assert_eq!(limits.idle_timeout, std::time::Duration::from_secs(30));
    assert_eq!(limits.allowed_hosts, ["gateway.lan", "pi-1"]);

    let e = errors(&[(
        "mqgate.yaml",
        "gateway:\n  id: pi\nstatus:\n  max_connections: 0\n  header_timeout_secs: 0\n\
         \x20 idle_timeout_secs: 2\n  allowed_hosts: [\"gateway.lan:8080\", \"\"]\n",
    )]);
    let found: Vec<(String, Option<usize>, String)> = e
        .iter()
        .map(|e| (e.field.clone(), e.line, e.message.clone()))
        .collect();
    let expect = [
        ("status.max_connections", 4, "0 is out of range: 1 … 1024"),
        (
            "status.header_timeout_secs",
            5,
            "0 is out of range: 1 … 3600",
        ),
        ("status.idle_timeout_secs", 6, "2 is out of range: 5 … 3600"),
        ("status.allowed_hosts[0]", 7, "is not a host name"),
        ("status.allowed_hosts[1]", 7, "an empty host name"),
    ];
    assert_eq!(found.len(), expect.len(), "{found:#?}");
    for (field, line, text) in expect {
        assert!(
            found
                .iter()
                .any(|(f, l, m)| f == field && *l == Some(line) && m.contains(text)),
            "no {field} at line {line} ({text}) in {found:#?}"
        );
    }
}

#[test]
fn the_embedded_broker_files_are_relative_to_the_gateway_file_and_checked_at_load() {
    let files = [
        (
            "mqgate.yaml",
            "gateway:\n  id: pi\nbroker:\n  listen: 127.0.0.1:0\n  auth:\n    password_file: users\n    acl_file: acl\n",
        ),
        ("users", "# no users yet\n"),
        ("acl", "topic read sensors/#\n"),
    ];
    let dir = folder(&files);
    let config = GatewayConfig::load(&dir.path().join("mqgate.yaml")).unwrap();
    let broker = config.broker.expect("the broker section");
    assert_eq!(broker.auth.password_file, Some(dir.path().join("users")));
    assert_eq!(broker.auth.acl_file, Some(dir.path().join("acl")));

    let e = errors(&[
        (
            "mqgate.yaml",
            "gateway:\n  id: pi\nbroker:\n  auth:\n    acl_file: acl\n",
        ),
        ("acl", "subscribe sensors/#\n"),
    ]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].field, "broker.auth", "{}", e[0]);
    assert!(
        e[0].message.contains("acl:1"),
        "names the ACL file and line: {}",
        e[0]
    );
}

#[test]
fn a_source_chooses_its_durability_and_a_bad_one_is_named_with_its_position() {
    use mqgate::config::Durability;
    let text = format!(
        "{HEAD}store:\n  durability: on_receipt\n  write_behind_dir: journal\n\
         sources:\n  - id: meter\n    type: serial\n    path: /dev/ttyUSB0\n    durability: write_behind\n\
         \x20 - id: gps\n    type: serial\n    path: /dev/ttyACM0\n"
    );
    let dir = folder(&[("mqgate.yaml", &text)]);
    let config = GatewayConfig::load(&dir.path().join("mqgate.yaml")).unwrap();
    assert_eq!(config.store.durability, Durability::OnReceipt);
    assert_eq!(config.sources[0].durability, Some(Durability::WriteBehind));
    assert_eq!(config.sources[1].durability, None, "the store's default");
    assert_eq!(config.store.write_behind_dir, dir.path().join("journal"));

    let text = format!(
        "{HEAD}sources:\n  - id: meter\n    type: serial\n    path: /dev/ttyUSB0\n    durability: sometimes\n"
    );
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "sources[0].durability",
        7,
        5,
    );
    assert!(
        message.contains("write_behind") && message.contains("on_receipt"),
        "{message}"
    );
}

#[test]
fn a_semtech_udp_source_reads_its_downlink_keys_and_checks_them() {
    let ok = format!(
        "{HEAD}sources:\n  - id: lora\n    type: semtech_udp\n    gateway_eui: B8-27-EB-FF-FE-00-00-01\n\
         \x20   keepalive_secs: 5\n    tx_ack_timeout_ms: 500\n    region: none\n"
    );
    let config = load(&[("mqgate.yaml", &ok)]).unwrap();
    let SourceKind::SemtechUdp(u) = &config.sources[0].kind else {
        panic!("{:?}", config.sources[0].kind)
    };
    assert_eq!(u.gateway_eui.as_deref(), Some("b827ebfffe000001"));
    assert_eq!((u.keepalive_secs, u.tx_ack_timeout_ms), (5, 500));
    assert_eq!(u.region, mqgate::airtime::Region::None);

    let defaults = format!("{HEAD}sources:\n  - id: lora\n    type: semtech_udp\n");
    let config = load(&[("mqgate.yaml", &defaults)]).unwrap();
    let SourceKind::SemtechUdp(u) = &config.sources[0].kind else {
        panic!("{:?}", config.sources[0].kind)
    };
    assert_eq!(u.gateway_eui, None);
    assert_eq!((u.keepalive_secs, u.tx_ack_timeout_ms), (10, 2000));
    assert_eq!(u.region, mqgate::airtime::Region::Eu868);

    let bad = format!(
        "{HEAD}sources:\n  - id: lora\n    type: semtech_udp\n    gateway_eui: b827eb\n\
         \x20   keepalive_secs: 0\n    tx_ack_timeout_ms: 0\n"
    );
    let errors = errors(&[("mqgate.yaml", &bad)]);
    let fields: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
    assert_eq!(
        fields,
        [
            "sources[0].gateway_eui",
            "sources[0].keepalive_secs",
            "sources[0].tx_ack_timeout_ms"
        ],
        "{errors:?}"
    );
    assert!(errors[0].message.contains("16 hex digits"), "{}", errors[0]);
}

const RELAY: &str = "gateway:\n  id: pi\nbroker:\n  listen: 127.0.0.1:0\nsources:\n  - id: relay\n    type: serial\n    path: /dev/null\n";

#[test]
fn the_commands_section_is_checked_field_by_field_with_positions() {
    let mapping = "source: relay\ncommands:\n  topic: \"cmd/{device}/#\"\n  max_queued: 0\n  expire_after: soon\n  result_topic: \"{topic}/{topic}\"\n";
    let all = errors(&[("mqgate.yaml", RELAY), ("mappings/relay.yaml", mapping)]);
    let text: Vec<String> = all.iter().map(ToString::to_string).collect();
    let find = |field: &str| {
        all.iter()
            .find(|e| e.field == field)
            .unwrap_or_else(|| panic!("no error at {field}:\n{}", text.join("\n")))
    };
    let expire = find("commands.expire_after");
    assert_eq!(expire.line, Some(5), "{expire}");
    assert!(expire.message.contains("500ms, 90s, 5m or 1h"), "{expire}");
    // The others are checked even though one field does not read.
    let config = load(&[
        ("mqgate.yaml", RELAY),
        (
            "mappings/relay.yaml",
            "source: relay\ncommands:\n  topic: \"cmd/{device}/#\"\n  max_queued: 0\n  result_topic: \"{topic}/{topic}\"\n",
        ),
    ])
    .expect_err("bad values");
    let fields: Vec<&str> = config.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "commands.topic",
            "commands.max_queued",
            "commands.result_topic"
        ],
        "{config:?}"
    );
    assert!(config[0].message.contains("`{device}` is not known here"));
    assert!(config[1].message.contains("must be 1 to 100000"));
    assert!(config[2].message.contains("`{topic}` once at most"));
}

#[test]
fn a_home_assistant_switch_needs_a_command_topic_its_commands_filter_takes() {
    let mapping = |entity: &str| {
        format!(
            "source: relay\ncommands:\n  topic: \"cmd/{{source}}/#\"\nhomeassistant:\n  - name: Pump\n{entity}"
        )
    };
    let loaded = load(&[
        ("mqgate.yaml", RELAY),
        (
            "mappings/relay.yaml",
            &mapping("    component: switch\n    command_topic: cmd/relay/pump\n"),
        ),
    ])
    .expect("a switch served by the mapping loads");
    assert!(loaded.mappings[0].homeassistant[0].state_topic.is_none());
    let cases = [
        (
            "    component: switch\n",
            "homeassistant[0].command_topic",
            "a switch needs a command_topic",
        ),
        (
            "    component: switch\n    command_topic: other/pump\n",
            "homeassistant[0].command_topic",
            "the mapping's commands.topic does not take it",
        ),
        (
            "    state_topic: s/x\n    command_topic: cmd/relay/x\n",
            "homeassistant[0].command_topic",
            "a sensor sends no commands",
        ),
        (
            "    component: sensor\n",
            "homeassistant[0].state_topic",
            "a sensor needs a state_topic",
        ),
        (
            "    component: select\n    command_topic: cmd/relay/mode\n",
            "homeassistant[0].options",
            "a select needs its options",
        ),
    ];
    for (entity, field, why) in cases {
        let all = errors(&[
            ("mqgate.yaml", RELAY),
            ("mappings/relay.yaml", &mapping(entity)),
        ]);
        assert!(
            all.iter()
                .any(|e| e.field == field && e.message.contains(why)),
            "{entity:?}: expected {field}: {why}, got {all:?}"
        );
    }
}

#[test]
fn a_serial_sources_poll_queries_load_with_their_defaults_and_bytes() {
    let text = format!(
        "{HEAD}sources:\n  - id: weather\n    type: serial\n    path: /dev/ttyUSB0\n    poll:\n\
         \x20     - every: 10s\n        send: \"R\\r\"\n\
         \x20     - every: 500ms\n        send_hex: \"01 03 00 00 00 02 C4 0b\"\n        timeout_ms: 200\n        name: registers\n"
    );
    let config = load(&[("mqgate.yaml", &text)]).unwrap();
    let SourceKind::Serial(serial) = &config.sources[0].kind else {
        panic!("{:?}", config.sources[0].kind)
    };
    let [reading, registers] = &serial.poll[..] else {
        panic!("{:?}", serial.poll)
    };
    assert_eq!(reading.name(), "poll0", "named by its place when left out");
    assert_eq!(reading.bytes(), b"R\r", "YAML escapes, written as they are");
    assert_eq!(reading.every, std::time::Duration::from_secs(10));
    assert_eq!(reading.timeout(), std::time::Duration::from_millis(1000));
    assert_eq!(registers.name(), "registers");
    assert_eq!(registers.bytes(), [1, 3, 0, 0, 0, 2, 0xC4, 0x0B]);
    assert_eq!(registers.every, std::time::Duration::from_millis(500));
}

#[test]
fn every_bad_poll_query_is_named_with_its_position() {
    let text = format!(
        "{HEAD}sources:
  - id: weather
    type: serial
    path: /dev/ttyUSB0
    poll:
      - every: 5ms
        timeout_ms: 1
        send: \"R\\r\"
      - every: 1s
        send: \"R\\r\"
        send_hex: \"52 0d\"
        timeout_ms: 1000
      - every: 1s
        timeout_ms: 0
      - every: 2s
        send_hex: \"01 0G\"
        name: wind
      - every: 2s
        send: \"W\\r\"
        name: wind
      - every: 1s
        send: \"S\\r\"
        name: wind/speed
"
    );
    let found = errors(&[("mqgate.yaml", &text)]);
    let got: Vec<(String, usize)> = found
        .iter()
        .map(|e| (e.field.clone(), e.line.unwrap_or(0)))
        .collect();
    let all: Vec<String> = found.iter().map(ToString::to_string).collect();
    let all = all.join("\n");
    let poll = |rest: &str| format!("sources[0].poll{rest}");
    assert_eq!(
        got,
        [
            (poll("[0].every"), 8),
            (poll("[1].send_hex"), 13),
            (poll("[1].timeout_ms"), 14),
            (poll("[2]"), 15),
            (poll("[2].timeout_ms"), 16),
            (poll("[3].send_hex"), 18),
            (poll("[4].name"), 22),
            (poll("[5].timeout_ms"), 23),
            (poll("[5].name"), 25),
        ],
        "{all}"
    );
    for part in [
        "at least 10ms",
        "either `send` or `send_hex`",
        "less than `every` (1s), the next query's time",
        "the default 1000; set a shorter one",
        "set `send` (text) or `send_hex`",
        "must be 1 to 60000",
        "not hex bytes: `0G`",
        "another query of this source is named \"wind\"",
        "\"wind/speed\" is not a valid query name",
    ] {
        assert!(all.contains(part), "no `{part}` in\n{all}");
    }

    let many: String = (0..33)
        .map(|i| format!("      - {{ every: 2s, send: \"R{i}\" }}\n"))
        .collect();
    let text = format!(
        "{HEAD}sources:\n  - id: weather\n    type: serial\n    path: /dev/ttyUSB0\n    poll:\n{many}"
    );
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "sources[0].poll",
        7,
        5,
    );
    assert!(message.contains("at most 32 queries"), "{message}");

    let text = format!(
        "{HEAD}sources:\n  - id: weather\n    type: serial\n    path: /dev/ttyUSB0\n    poll:\n      - every: soon\n        send: R\n"
    );
    let message = single(
        &errors(&[("mqgate.yaml", &text)]),
        "mqgate.yaml",
        "sources[0].poll[0].every",
        8,
        9,
    );
    assert!(message.contains("like 500ms, 90s"), "{message}");
}
