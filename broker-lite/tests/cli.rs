//! The `broker-lite` binary: serving real clients, signals, `--help`, config file errors.

mod real;

use std::path::PathBuf;
use std::process::Command;

use real::TIMEOUT;
use test_support::mosquitto::{mosquitto_pub, Subscriber};
use test_support::process::{Proc, Stream, SIGINT, SIGTERM};
use test_support::{free_port, wait_for_port};

const BIN: &str = env!("CARGO_BIN_EXE_broker-lite");

/// A started binary listening on a port of its own.
struct RunningBroker {
    proc: Proc,
    port: u16,
}

fn start_binary(extra: &[&str]) -> RunningBroker {
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0"]).args(extra);
    let mut proc = Proc::spawn("broker-lite", &mut cmd);
    let line = proc.expect_line("listening on ADDR", TIMEOUT, |l| {
        l.contains("listening on ")
    });
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    assert_ne!(
        port, 0,
        "the reported port is the requested 0, not the bound one"
    );
    assert!(
        wait_for_port(port, TIMEOUT),
        "nothing listens on the reported port {port}"
    );
    RunningBroker { proc, port }
}

/// A config file in a fresh temporary directory, removed when dropped.
struct TempConfig {
    dir: PathBuf,
    path: PathBuf,
}

impl TempConfig {
    fn new(name: &str, text: &str) -> TempConfig {
        let dir = std::env::temp_dir().join(format!(
            "broker-lite-cli-{}-{name}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let path = dir.join("broker.yaml");
        std::fs::write(&path, text).expect("write config");
        TempConfig { dir, path }
    }

    fn path_str(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the binary with `--config FILE`, expects exit code 2, returns stderr.
fn config_error(name: &str, text: &str) -> (TempConfig, String) {
    let cfg = TempConfig::new(name, text);
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--config",
        cfg.path_str(),
    ]);
    let mut proc = Proc::spawn("broker-lite", &mut cmd);
    let status = proc.wait_exit(TIMEOUT);
    assert_eq!(
        status.code(),
        Some(2),
        "exit status {status}\n{}",
        proc.transcript()
    );
    let stderr = proc.stderr_text();
    (cfg, stderr)
}

#[test]
fn help_flag_prints_usage_naming_the_options_and_exits_zero() {
    let mut proc = Proc::spawn("broker-lite --help", Command::new(BIN).arg("--help"));
    let status = proc.wait_exit(TIMEOUT);
    let out = proc.stream(Stream::Stdout).join("\n");
    assert!(status.success(), "{}", proc.transcript());
    assert!(
        out.contains("--listen"),
        "help does not mention --listen:\n{out}"
    );
    assert!(
        out.contains("--config"),
        "help does not mention --config:\n{out}"
    );
}

#[test]
fn binary_serves_a_round_trip_from_mosquitto_pub_to_mosquitto_sub() {
    let broker = start_binary(&[]);
    let mut sub = Subscriber::subscribed(broker.port, &["-q", "1", "-t", "cli/roundtrip"]);
    mosquitto_pub(
        broker.port,
        &["-q", "1", "-t", "cli/roundtrip", "-m", "over the wire"],
    );
    let msg = sub.expect_msg();
    assert_eq!(msg.topic, "cli/roundtrip");
    assert_eq!(msg.text(), "over the wire");
    assert_eq!(msg.qos, 1);
}

fn exits_zero_on(sig: &str, signal: i32) {
    let mut broker = start_binary(&[]);
    // A connected client must not keep the broker from shutting down.
    let _sub = Subscriber::subscribed(broker.port, &["-t", "cli/idle"]);
    broker.proc.signal(signal);
    let status = broker.proc.wait_exit(TIMEOUT);
    assert_eq!(
        status.code(),
        Some(0),
        "after SIG{sig}: {status}\n{}",
        broker.proc.transcript()
    );
}

#[test]
fn sigterm_makes_the_binary_exit_zero() {
    exits_zero_on("TERM", SIGTERM);
}

#[test]
fn sigint_makes_the_binary_exit_zero() {
    exits_zero_on("INT", SIGINT);
}

#[test]
fn valid_config_file_is_applied_by_the_binary() {
    let cfg = TempConfig::new(
        "valid",
        "deny_subscribe:\n  - \"secret/#\"\nsys_interval_secs: 0\n",
    );
    let broker = start_binary(&["--config", cfg.path_str()]);
    let mut sub = Subscriber::spawn(broker.port, &["-t", "secret/a", "-t", "open/a"]);
    assert_eq!(sub.wait_suback(), vec![0x80, 0]);
}

#[test]
fn unknown_config_key_exits_2_naming_file_line_and_key() {
    let text = "sys_interval_secs: 5\nlimits:\n  max_connections: 10\n  max_conections_typo: 3\n";
    let (cfg, stderr) = config_error("unknown", text);
    let at = format!("{}:4", cfg.path_str());
    assert!(stderr.contains(&at), "stderr lacks {at}:\n{stderr}");
    assert!(
        stderr.contains("max_conections_typo"),
        "stderr lacks the key:\n{stderr}"
    );
}

#[test]
fn wrong_config_value_type_exits_2_naming_file_line_and_field() {
    let text = "limits:\n  max_inflight: lots\n";
    let (cfg, stderr) = config_error("wrongtype", text);
    let at = format!("{}:2", cfg.path_str());
    assert!(stderr.contains(&at), "stderr lacks {at}:\n{stderr}");
    assert!(
        stderr.contains("max_inflight"),
        "stderr lacks the field:\n{stderr}"
    );
}

#[test]
fn every_bad_field_of_the_config_file_is_reported_at_once() {
    let text = "sys_interval_secs: often\nlimits:\n  max_connections: 10\n  max_inflight: lots\n";
    let (cfg, stderr) = config_error("twobad", text);
    let path = cfg.path_str();
    for want in [
        format!("{path}:1:20: sys_interval_secs: invalid type: string \"often\", expected u64"),
        format!("{path}:4:3: limits.max_inflight: invalid type: string \"lots\", expected u16"),
    ] {
        assert!(stderr.contains(&want), "stderr lacks {want}:\n{stderr}");
    }
}

#[test]
fn invalid_deny_subscribe_filter_exits_2_naming_file_line_and_field() {
    let text = "sys_interval_secs: 0\ndeny_subscribe:\n  - \"ok/#\"\n  - \"bad/#/x\"\n";
    let (cfg, stderr) = config_error("badfilter", text);
    let path = cfg.path_str();
    // The line of the bad item, not only of the `deny_subscribe` key.
    let item = format!("{path}:4");
    assert!(stderr.contains(&item), "stderr lacks {item}:\n{stderr}");
    assert!(
        stderr.contains("deny_subscribe"),
        "stderr lacks the field:\n{stderr}"
    );
}

#[test]
fn missing_config_file_is_an_error_naming_the_file() {
    let missing = std::env::temp_dir().join(format!("broker-lite-absent-{}.yaml", free_port()));
    let missing = missing.to_str().expect("utf-8 temp path").to_string();
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0", "--config", &missing]);
    let mut proc = Proc::spawn("broker-lite", &mut cmd);
    let status = proc.wait_exit(TIMEOUT);
    assert!(!status.success(), "a missing config file was accepted");
    assert!(
        proc.stderr_text().contains(&missing),
        "{}",
        proc.transcript()
    );
}

#[test]
fn every_invalid_value_in_a_config_file_is_reported_not_only_the_first() {
    let text =
        "deny_subscribe:\n  - \"a/#/b\"\n  - \"ok\"\n  - \"c/d#\"\nlimits:\n  max_inflight: 0\n";
    let (cfg, stderr) = config_error("several", text);
    let path = cfg.path_str();
    for line in [2, 4, 6] {
        let at = format!("{path}:{line}");
        assert!(stderr.contains(&at), "stderr lacks {at}:\n{stderr}");
    }
    assert!(stderr.contains("max_inflight"), "{stderr}");
}

/// 50 connections that open with garbage: 50 malformed packets counted, one log
/// line about them (the others summarised once a minute), not 50.
#[test]
fn repeated_malformed_connects_are_logged_once_and_then_counted() {
    use std::io::{Read, Write};
    let mut broker = start_binary(&[]);
    for _ in 0..50 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", broker.port)).expect("connect");
        // A CONNECT whose protocol name is wrong.
        s.write_all(&[
            0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'X', b'X', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
        ])
        .expect("write");
        let mut rest = Vec::new();
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        // The broker closes the connection.
        let _ = s.read_to_end(&mut rest);
    }
    // A fence: a well-formed client after them all.
    mosquitto_pub(broker.port, &["-t", "fence", "-m", "x"]);
    broker.proc.signal(SIGTERM);
    broker.proc.wait_exit(TIMEOUT);
    let malformed = broker
        .proc
        .stream(Stream::Stderr)
        .iter()
        .filter(|l| l.contains("malformed CONNECT"))
        .count();
    assert_eq!(malformed, 1, "{}", broker.proc.transcript());
}

/// Finding: unauthenticated log flooding. CONNECTs with a 60 KB client id and user
/// name and a wrong password were each logged at WARN with both in full (31,023
/// attempts wrote 4 GB in 10 s). Now one line a minute per kind of refusal, with
/// the values cut to 64 characters.
#[test]
fn refused_logins_with_huge_client_ids_and_user_names_write_a_few_short_lines() {
    use broker_lite::auth::hash::{PasswordHash, MIN_ITERATIONS};
    use std::io::{Read, Write};
    let hash = PasswordHash::new(b"right", MIN_ITERATIONS).expect("a hash");
    let config = TempConfig::new(
        "log-flood",
        "limits:\n  max_connect_size: 262144\nauth:\n  password_file: passwd\n  allow_anonymous: true\n",
    );
    std::fs::write(config.dir.join("passwd"), format!("alice:{hash}\n")).expect("passwd");
    let mut broker = start_binary(&["--config", config.path_str()]);
    let huge = "x".repeat(60_000);
    let mut packet = bytes::BytesMut::new();
    mqtt_proto::codec::encode(
        &mqtt_proto::codec::Packet::Connect(mqtt_proto::codec::Connect {
            protocol_level: 4,
            clean_session: true,
            keep_alive: 60,
            client_id: huge.clone(),
            will: None,
            username: Some(huge.clone()),
            password: Some(bytes::Bytes::from_static(b"wrong")),
        }),
        &mut packet,
    );
    for _ in 0..30 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", broker.port)).expect("connect");
        s.write_all(&packet).expect("write");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert_eq!(answer.first(), Some(&0x20), "a CONNACK refusing it");
    }
    // The fence is anonymous: the address itself is throttled by now.
    mosquitto_pub(broker.port, &["-t", "fence", "-m", "x"]);
    broker.proc.signal(SIGTERM);
    broker.proc.wait_exit(TIMEOUT);
    let stderr = broker.proc.stream(Stream::Stderr);
    let refused: Vec<&String> = stderr
        .iter()
        .filter(|l| l.contains("login refused"))
        .collect();
    assert!(
        !refused.is_empty() && refused.len() <= 3,
        "one line per kind of refusal: {refused:?}"
    );
    let written: usize = stderr.iter().map(|l| l.len() + 1).sum();
    assert!(
        written < 4096,
        "{written} bytes of log:\n{}",
        broker.proc.transcript()
    );
    assert!(refused[0].contains("…(+59936 bytes)"), "{}", refused[0]);
}
