use std::path::{Path, PathBuf};

use crate::config::Config;
use config_report::ConfigError;

fn errors(yaml: &str) -> Vec<ConfigError> {
    match Config::from_yaml_str(yaml, "broker.yaml") {
        Ok(c) => panic!("{yaml} should be refused, got {c:?}"),
        Err(e) => e,
    }
}

fn one_error(yaml: &str) -> String {
    let errors = errors(yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].to_string()
}

const FULL: &str = "\
listeners:
  - listen: 127.0.0.1:1883
  - listen: 0.0.0.0:8883
    tls:
      cert_file: certs/server.crt
      key_file: certs/server.key
      client_ca_file: /etc/broker/ca.crt
      require_client_cert: true
      use_cn_as_username: true
  - listen: 0.0.0.0:9001
    websocket: true
    path: /mqtt
  - listen: 0.0.0.0:9443
    websocket: true
    tls:
      cert_file: certs/server.crt
      key_file: certs/server.key
";

#[test]
fn four_kinds_of_listener_parse_and_keep_their_order() {
    let config = Config::from_yaml_str(FULL, "broker.yaml").expect("valid");
    let schemes: Vec<&str> = config
        .effective_listeners()
        .iter()
        .map(|l| l.scheme())
        .collect();
    assert_eq!(schemes, ["mqtt", "mqtts", "ws", "wss"]);
    let tls = config.listeners[1].tls.as_ref().expect("tls");
    assert!(tls.require_client_cert && tls.use_cn_as_username);
    assert_eq!(config.listeners[2].path.as_deref(), Some("/mqtt"));
}

#[test]
fn without_listeners_listen_is_the_one_plain_listener() {
    let config = Config::from_yaml_str("listen: 127.0.0.1:1999\n", "b.yaml").expect("valid");
    let listeners = config.effective_listeners();
    assert_eq!(listeners.len(), 1);
    assert_eq!(listeners[0].listen.port(), 1999);
    assert_eq!(listeners[0].scheme(), "mqtt");
}

#[test]
fn relative_file_names_resolve_against_the_given_folder_and_absolute_ones_stay() {
    let mut config = Config::from_yaml_str(FULL, "broker.yaml").expect("valid");
    config.resolve_paths(Path::new("/srv/gateway"));
    let tls = config.listeners[1].tls.as_ref().expect("tls");
    assert_eq!(
        tls.cert_file,
        PathBuf::from("/srv/gateway/certs/server.crt")
    );
    assert_eq!(tls.key_file, PathBuf::from("/srv/gateway/certs/server.key"));
    assert_eq!(
        tls.client_ca_file,
        Some(PathBuf::from("/etc/broker/ca.crt"))
    );
    let wss = config.listeners[3].tls.as_ref().expect("tls");
    assert_eq!(
        wss.cert_file,
        PathBuf::from("/srv/gateway/certs/server.crt")
    );
}

#[test]
fn a_path_on_a_plain_listener_is_an_error_naming_its_line() {
    let e = one_error("listeners:\n  - listen: 127.0.0.1:1883\n    path: /mqtt\n");
    assert!(e.starts_with("broker.yaml:3:"), "{e}");
    assert!(
        e.contains("listeners[0].path") && e.contains("only a websocket listener"),
        "{e}"
    );
}

#[test]
fn a_websocket_path_must_start_with_a_slash() {
    let e =
        one_error("listeners:\n  - listen: 127.0.0.1:9001\n    websocket: true\n    path: mqtt\n");
    assert!(
        e.contains("listeners[0].path") && e.contains("must start with /"),
        "{e}"
    );
}

#[test]
fn client_certificate_options_need_what_they_build_on() {
    let yaml = "\
listeners:
  - listen: 127.0.0.1:8883
    tls:
      cert_file: a.crt
      key_file: a.key
      require_client_cert: true
  - listen: 127.0.0.1:8884
    tls:
      cert_file: a.crt
      key_file: a.key
      client_ca_file: ca.crt
      use_cn_as_username: true
";
    let errors = errors(yaml);
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{text:?}");
    assert!(
        text[0].contains("broker.yaml:6:")
            && text[0].contains("listeners[0].tls.require_client_cert"),
        "{text:?}"
    );
    assert!(
        text[1].contains("broker.yaml:12:")
            && text[1].contains("listeners[1].tls.use_cn_as_username"),
        "{text:?}"
    );
}

#[test]
fn the_same_address_twice_is_an_error_but_port_zero_is_not() {
    let e = one_error(
        "listeners:\n  - listen: 127.0.0.1:1883\n  - listen: 127.0.0.1:1883\n    websocket: true\n",
    );
    assert!(
        e.contains("listeners[1].listen") && e.contains("already used"),
        "{e}"
    );
    let ok = "listeners:\n  - listen: 127.0.0.1:0\n  - listen: 127.0.0.1:0\n";
    assert!(Config::from_yaml_str(ok, "b.yaml").is_ok());
}

#[test]
fn unknown_and_missing_tls_fields_are_errors_naming_the_field() {
    let typo = one_error("listeners:\n  - listen: 127.0.0.1:8883\n    tls:\n      cert_file: a\n      key_file: b\n      cafile: c\n");
    assert!(typo.contains("cafile"), "{typo}");
    let missing =
        one_error("listeners:\n  - listen: 127.0.0.1:8883\n    tls:\n      cert_file: a\n");
    assert!(missing.contains("key_file"), "{missing}");
}

#[test]
fn max_connections_per_ip_defaults_to_64_and_zero_is_allowed() {
    assert_eq!(Config::default().limits.max_connections_per_ip, 64);
    let config =
        Config::from_yaml_str("limits:\n  max_connections_per_ip: 0\n", "b.yaml").expect("valid");
    assert_eq!(config.limits.max_connections_per_ip, 0);
}
