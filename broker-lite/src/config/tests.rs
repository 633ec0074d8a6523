use super::*;
use config_report::locate;

fn errors_of(text: &str) -> Vec<ConfigError> {
    match Config::from_yaml_str(text, "broker.yaml") {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors,
    }
}

/// (line, field) of each error, to compare in one assertion.
fn lines_and_fields(errors: &[ConfigError]) -> Vec<(Option<usize>, &str)> {
    errors.iter().map(|e| (e.line, e.field.as_str())).collect()
}

#[test]
fn an_empty_file_gives_the_defaults() {
    for text in ["", "\n\n", "# nothing set\n", "---\n", "~\n", "null\n"] {
        assert_eq!(
            Config::from_yaml_str(text, "b.yaml"),
            Ok(Config::default()),
            "{text:?}"
        );
    }
}

#[test]
fn an_unknown_key_is_rejected_with_its_line() {
    let errors = errors_of("listen: 0.0.0.0:1883\nlimits:\n  max_inflight: 8\n  max_inflite: 9\n");
    assert_eq!(lines_and_fields(&errors), [(Some(4), "limits.max_inflite")]);
    assert!(
        errors[0].message.starts_with("unknown field `max_inflite`"),
        "{}",
        errors[0]
    );
    let errors = errors_of("sys_interval: 5\n");
    assert_eq!(lines_and_fields(&errors), [(Some(1), "sys_interval")]);
}

#[test]
fn a_value_of_the_wrong_type_names_the_field_and_line() {
    let errors = errors_of("limits:\n  max_connections: 10\n  max_inflight: lots\n");
    assert_eq!(
        lines_and_fields(&errors),
        [(Some(3), "limits.max_inflight")]
    );
    assert_eq!(errors[0].column, Some(17));
    assert!(errors[0].message.contains("invalid type"), "{}", errors[0]);
    assert!(
        !errors[0].message.contains("line"),
        "position is not repeated: {}",
        errors[0]
    );

    let errors = errors_of("listen: everywhere\n");
    assert_eq!(lines_and_fields(&errors), [(Some(1), "listen")]);
    let errors = errors_of("queue_overflow: drop_all\n");
    assert_eq!(lines_and_fields(&errors), [(Some(1), "queue_overflow")]);
    let errors = errors_of("limits: 3\n");
    assert_eq!(lines_and_fields(&errors), [(Some(1), "limits")]);
    assert!(
        errors[0].message.ends_with("expected a mapping of keys"),
        "{}",
        errors[0]
    );
    let errors = errors_of("limits:\n  max_inflight: 70000\n");
    assert_eq!(
        lines_and_fields(&errors),
        [(Some(2), "limits.max_inflight")]
    );
}

#[test]
fn every_bad_field_of_the_file_is_reported_at_once() {
    let text = "sys_interval_secs: often
limits:
  max_inflight: lots
queue_overflow: drop_all
";
    let shown: Vec<String> = errors_of(text).iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "broker.yaml:1:20: sys_interval_secs: invalid type: string \"often\", expected u64",
            "broker.yaml:3:3: limits.max_inflight: invalid type: string \"lots\", expected u16",
            "broker.yaml:4:1: queue_overflow: unknown variant `drop_all`, \
             expected `drop_oldest` or `drop_newest`",
        ]
    );
}

#[test]
fn broken_yaml_is_reported_with_its_position() {
    let errors = errors_of("limits:\n  max_inflight: 8\n deny_subscribe: [a\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].line.is_some(), "{}", errors[0]);
}

#[test]
fn several_semantic_errors_are_reported_together_with_their_lines() {
    let text = "\
listen: 127.0.0.1:1883
limits:
  max_packet_size: 10
  max_connections: 0
  # the window
  max_inflight: 0
  max_queued_messages: 5
  max_keep_alive: 0
  connect_timeout_secs: 0
deny_subscribe:
  - \"$SYS/#\"
  - sport/#/tennis
  - ok/+
  - bad+
";
    let errors = errors_of(text);
    assert_eq!(
        lines_and_fields(&errors),
        [
            (Some(12), "deny_subscribe[1]"),
            (Some(14), "deny_subscribe[3]"),
            (Some(3), "limits.max_packet_size"),
            (Some(4), "limits.max_connections"),
            (Some(6), "limits.max_inflight"),
            (Some(8), "limits.max_keep_alive"),
            (Some(9), "limits.connect_timeout_secs"),
        ]
    );
    assert_eq!(
        errors[1].to_string(),
        "broker.yaml:14:5: deny_subscribe[3]: \"bad+\" is not a valid topic filter: \
         [MQTT-4.7.1-3] '+' must be alone in its level"
    );
    assert_eq!(
        errors[2].to_string(),
        "broker.yaml:3:3: limits.max_packet_size: must be at least 64, got 10"
    );
}

#[test]
fn a_packet_size_over_the_mqtt_maximum_is_rejected() {
    let errors = errors_of("limits:\n  max_packet_size: 268435456\n");
    assert_eq!(
        lines_and_fields(&errors),
        [(Some(2), "limits.max_packet_size")]
    );
    assert!(
        errors[0].message.contains("at most 268435455"),
        "{}",
        errors[0]
    );
    let config = Config::from_yaml_str("limits:\n  max_packet_size: 268435455\n", "b.yaml");
    assert_eq!(config.map(|c| c.limits.max_packet_size), Ok(268_435_455));
}

#[test]
fn topic_and_subscription_limits_parse_and_are_checked_with_their_lines() {
    let config = Config::from_yaml_str(
        "limits:\n  max_topic_length: 65535\n  max_topic_levels: 8\n  max_subscriptions_per_client: 0\n",
        "b.yaml",
    )
    .map(|c| c.limits);
    let limits = config.expect("valid limits");
    assert_eq!(
        (
            limits.max_topic_length,
            limits.max_topic_levels,
            limits.max_subscriptions_per_client
        ),
        (65535, 8, 0),
        "0 subscriptions means no limit and is valid"
    );
    let errors = errors_of("limits:\n  max_topic_length: 65536\n  max_topic_levels: 0\n");
    assert_eq!(
        lines_and_fields(&errors),
        [
            (Some(2), "limits.max_topic_length"),
            (Some(3), "limits.max_topic_levels"),
        ]
    );
    assert_eq!(
        errors[0].to_string(),
        "broker.yaml:2:3: limits.max_topic_length: must be at most 65535, got 65536"
    );
    assert_eq!(
        errors[1].to_string(),
        "broker.yaml:3:3: limits.max_topic_levels: must be at least 1, got 0"
    );
    let errors = errors_of("limits:\n  max_subscriptions_per_client: -1\n");
    assert_eq!(
        lines_and_fields(&errors),
        [(Some(2), "limits.max_subscriptions_per_client")]
    );
}

#[test]
fn the_topic_and_subscription_limits_have_sane_defaults() {
    let limits = Limits::default();
    assert_eq!(limits.max_topic_length, 1024);
    assert_eq!(limits.max_topic_levels, 32);
    assert_eq!(limits.max_subscriptions_per_client, 100);
}

#[test]
fn a_full_file_parses_to_the_expected_config() {
    let text = "\
listen: 0.0.0.0:8883
limits:
  max_packet_size: 4096
  max_connections: 10
  max_queued_messages: 50
  max_inflight: 4
  max_keep_alive: 600
  connect_timeout_secs: 3
queue_overflow: drop_newest
deny_subscribe: [\"#\", \"$SYS/#\"]
sys_interval_secs: 0
";
    let expected = Config {
        listen: SocketAddr::from(([0, 0, 0, 0], 8883)),
        listeners: Vec::new(),
        limits: Limits {
            max_packet_size: 4096,
            max_connections: 10,
            max_queued_messages: 50,
            max_inflight: 4,
            max_keep_alive: 600,
            connect_timeout_secs: 3,
            max_connections_per_ip: 64,
            max_topic_length: 1024,
            max_topic_levels: 32,
            max_subscriptions_per_client: 100,
            ..Limits::default()
        },
        queue_overflow: QueueOverflow::DropNewest,
        deny_subscribe: vec!["#".into(), "$SYS/#".into()],
        sys_interval_secs: 0,
        auth: crate::auth::AuthConfig::default(),
        persistence: None,
    };
    assert_eq!(Config::from_yaml_str(text, "b.yaml"), Ok(expected));
}

#[test]
fn a_partial_file_keeps_the_defaults_of_what_it_leaves_out() {
    let config = Config::from_yaml_str("limits:\n  max_inflight: 5\n", "b.yaml");
    let mut expected = Config::default();
    expected.limits.max_inflight = 5;
    assert_eq!(config, Ok(expected));
}

#[test]
fn the_example_file_loads_and_holds_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("broker.example.yaml");
    assert_eq!(Config::load(&path), Ok(Config::default()));
}

#[test]
fn the_example_file_shows_every_key() {
    let text = include_str!("../../broker.example.yaml");
    for path in [
        "listen",
        "limits",
        "limits.max_packet_size",
        "limits.max_connections",
        "limits.max_queued_messages",
        "limits.max_inflight",
        "limits.max_keep_alive",
        "limits.connect_timeout_secs",
        "limits.max_connections_per_ip",
        "limits.max_topic_length",
        "limits.max_topic_levels",
        "limits.max_subscriptions_per_client",
        "limits.max_connect_size",
        "limits.max_queued_bytes",
        "limits.max_queued_bytes_total",
        "limits.max_sessions",
        "limits.max_sessions_per_user",
        "limits.max_retained_messages",
        "limits.max_retained_bytes",
        "limits.max_retained_messages_per_user",
        "limits.max_retained_bytes_per_user",
        "queue_overflow",
        "deny_subscribe",
        "sys_interval_secs",
    ] {
        let found = locate(text, &config_report::path::parse(path))
            .map(|(line, _)| text.lines().nth(line - 1));
        let last = path.rsplit('.').next().unwrap_or(path);
        assert!(
            found
                .flatten()
                .is_some_and(|l| l.trim_start().starts_with(last)),
            "{path} is missing from the example"
        );
    }
}

#[test]
fn a_missing_file_is_one_error_naming_it() {
    let errors = Config::load(Path::new("/nonexistent/broker.yaml")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .starts_with("/nonexistent/broker.yaml: cannot read: "),
        "{}",
        errors[0]
    );
}

#[test]
fn fields_are_located_through_block_flow_and_quoted_yaml() {
    let items = FieldPath::root().key("deny_subscribe").index(1);
    let at_same_indent = "deny_subscribe:\n- a\n-   b\nlimits: {}\n";
    assert_eq!(locate(at_same_indent, &items), Some((3, 5)));
    let flow = "deny_subscribe: [a, b]\n";
    assert_eq!(locate(flow, &items), Some((1, 1)), "falls back to the key");
    let quoted = "'limits':\n    \"max_inflight\": 0  # none\n";
    let path = FieldPath::root().key("limits").key("max_inflight");
    assert_eq!(locate(quoted, &path), Some((2, 5)));
    let nested_lookalike = "other:\n  max_inflight: 1\nlimits:\n  x: 1\n  max_inflight: 0\n";
    assert_eq!(locate(nested_lookalike, &path), Some((5, 3)));
    assert_eq!(locate("listen: x\n", &path), None);
}

#[test]
fn errors_display_only_what_is_known() {
    let mut error = ConfigError {
        file: "b.yaml".into(),
        line: Some(3),
        column: None,
        field: String::new(),
        message: "bad".into(),
    };
    assert_eq!(error.to_string(), "b.yaml:3: bad");
    error.column = Some(7);
    error.field = "limits.max_inflight".into();
    assert_eq!(error.to_string(), "b.yaml:3:7: limits.max_inflight: bad");
}
