//! Commands from MQTT down to a device: `mosquitto_pub` → the embedded broker →
//! `mqgate run` → a pseudo-terminal standing in for the serial port, and the
//! result of each command on its result topic, read by `mosquitto_sub`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use broker_lite::auth::hash::{PasswordHash, MIN_ITERATIONS};
use broker_lite::auth::passwd;
use mqgate_tests::mqgate::{embedded_broker_port, run_mqgate, start_mqgate_run};
use serde_json::Value;
use serialport::{SerialPort, TTYPort};
use test_support::mosquitto::{mosquitto_pub, Mosquitto, Msg, Subscriber};
use test_support::process::{Proc, Stream};
use test_support::pty::{plug, write_to_port};
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(20);

/// Turns `{"on": true|false}` into `RELAY 1` / `RELAY 0`; anything else is an error.
const RELAY_SCRIPT: &str = r#"
fn map(frame) {
    #{ payload: frame.text }
}

fn encode(command) {
    if command.json == () {
        throw "not JSON: " + command.text;
    }
    let on = command.json.on;
    if on == true { return "RELAY 1"; }
    if on == false { return "RELAY 0"; }
    throw "`on` must be true or false";
}
"#;

/// A gateway with one serial source `relay` on `link` (lines, CRLF written), its
/// mapping publishing each line on `sensors/relay` and taking commands on
/// `cmd/relay/#` with `commands_extra` (YAML lines indented under `commands:`).
fn relay_gateway(dir: &Scratch, link: &Path, commands_extra: &str, broker_extra: &str) -> PathBuf {
    dir.write("mappings/relay.rhai", RELAY_SCRIPT);
    dir.write(
        "mappings/relay.yaml",
        format!(
            "source: relay\nscript: relay.rhai\ntopic: \"sensors/{{source}}\"\n\
             commands:\n  topic: \"cmd/{{source}}/#\"\n{commands_extra}"
        ),
    );
    dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: cmd-gw\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n{broker_extra}\
             status:\n  listen: 127.0.0.1:0\n\
             sources:\n  - id: relay\n    type: serial\n    path: {link}\n    baud: 115200\n\
             \x20   reopen: {{ initial_ms: 100, max_ms: 300 }}\n\
             \x20   framing: {{ type: lines, line_ending: crlf }}\n",
            state = dir.path().join("state").display(),
            link = link.display(),
        ),
    )
}

/// Reads from the pseudo-terminal until `want` bytes came, or fails at `WAIT`.
fn read_bytes(master: &mut TTYPort, want: usize) -> Vec<u8> {
    master
        .set_timeout(Duration::from_millis(100))
        .expect("set a read timeout");
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {:?} arrived on the port, waiting for {want} bytes",
            String::from_utf8_lossy(&got)
        );
        match master.read(&mut buf[..want - got.len()]) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            // Before the gateway has opened the port, the master side has no
            // reader: it reports a broken pipe (EIO) until then.
            Err(e)
                if e.kind() == std::io::ErrorKind::BrokenPipe
                    || e.raw_os_error() == Some(libc::EIO) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("read from the pseudo-terminal: {e}"),
        }
    }
    got
}

fn json(m: &Msg) -> Value {
    serde_json::from_slice(&m.payload).unwrap_or_else(|e| panic!("{m:?} is not JSON: {e}"))
}

fn publish(port: u16, topic: &str, payload: &str) {
    mosquitto_pub(port, &["-q", "1", "-t", topic, "-m", payload]);
}

/// The gateway's results so far, as JSON, in order.
fn results(sub: &Subscriber) -> Vec<Value> {
    sub.messages().iter().map(json).collect()
}

/// Unplug the terminal behind `link` for good (its number may go to another
/// test's terminal, so the link goes too) and wait until the gateway noticed.
fn unplug(gw: &Proc, link: &Path, master: TTYPort) {
    let reopens = gw.count_lines(Stream::Stderr, &["reopening with back-off"]);
    std::fs::remove_file(link).expect("unplug");
    drop(master);
    gw.wait_until("the port to go away", WAIT, |lines| {
        let now = lines
            .iter()
            .filter(|l| l.text.contains("reopening with back-off"))
            .count();
        (now > reopens).then_some(())
    });
}

fn started(config: &Path) -> (Proc, u16) {
    let gw = start_mqgate_run(config);
    let port = embedded_broker_port(&gw, WAIT);
    gw.wait_for_line(Stream::Stderr, &["taking commands"], WAIT);
    (gw, port)
}

#[test]
fn a_command_reaches_the_pty_as_its_script_encoded_it_while_lines_flow_up_and_gets_one_result() {
    let dir = Scratch::new("cmd-pty");
    let link = dir.path().join("ttyRELAY");
    let mut master = plug(&link);
    let config = relay_gateway(&dir, &link, "", "");
    let (mut gw, port) = started(&config);
    gw.wait_for_line(Stream::Stderr, &["serial port open"], WAIT);
    let results_sub = Subscriber::start("results", port, "cmd/relay/+/result");
    let sensors = Subscriber::start("sensors", port, "sensors/relay");
    let dead = Subscriber::start("dead letters", port, "mqgate/cmd-gw/deadletter/#");

    // Lines keep coming up from the device while commands go down.
    let writer = std::thread::spawn({
        let master = master.try_clone_native().expect("a second handle");
        move || {
            let mut lines = Vec::new();
            for i in 0..200 {
                lines.extend_from_slice(format!("temp={i}\n").as_bytes());
            }
            write_to_port(master, lines, WAIT)
        }
    });
    publish(
        port,
        "cmd/relay/set",
        r#"{"on": true, "correlation": "c-1"}"#,
    );
    assert_eq!(read_bytes(&mut master, 9), b"RELAY 1\r\n");
    // A script error: nothing reaches the device, the next command is the next bytes.
    publish(port, "cmd/relay/set", "switch it on");
    publish(port, "cmd/relay/other", r#"{"on": false}"#);
    assert_eq!(read_bytes(&mut master, 9), b"RELAY 0\r\n");
    writer.join().expect("the writer thread");
    sensors.wait_until("every line", WAIT, |m| m.len() >= 200);

    // The last result is the fence: one result per command, in order, and none
    // of the gateway's own results taken back as a command.
    let got = results_sub.wait_until("three results", WAIT, |m| m.len() >= 3);
    let got: Vec<Value> = got.iter().map(json).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0]["status"], "sent");
    assert_eq!(got[0]["topic"], "cmd/relay/set");
    assert_eq!(got[0]["correlation"], "c-1");
    assert_eq!(got[0]["error"], Value::Null);
    assert!(got[0]["sent_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(got[1]["status"], "failed");
    let error = got[1]["error"].as_str().expect("an error text");
    assert!(
        error.contains("relay.rhai:") && error.contains("not JSON: switch it on"),
        "the error names the script, its line and the cause: {error}"
    );
    assert_eq!(got[1]["sent_at"], Value::Null);
    assert_eq!(got[2]["status"], "sent");
    assert_eq!(got[2]["topic"], "cmd/relay/other");
    assert_eq!(got[2]["correlation"], Value::Null);
    let letters = dead.wait_until("the dead letter", WAIT, |m| !m.is_empty());
    let letter = json(&letters[0]);
    assert_eq!(letter["command_topic"], "cmd/relay/set");
    assert_eq!(letter["text"], "switch it on");
    let lines: Vec<String> = sensors.messages().iter().map(Msg::text).collect();
    let expected: Vec<String> = (0..200).map(|i| format!("temp={i}")).collect();
    assert_eq!(lines, expected, "every line up, in order, none lost");

    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
    assert_eq!(
        results(&results_sub).len(),
        3,
        "nothing more after the fence"
    );
}

#[test]
fn commands_wait_for_an_unplugged_port_in_order_a_full_queue_rejects_and_old_ones_expire() {
    let dir = Scratch::new("cmd-unplugged");
    let link = dir.path().join("ttyRELAY");
    let config = relay_gateway(&dir, &link, "  max_queued: 2\n  expire_after: 3s\n", "");
    let (mut gw, port) = started(&config);
    gw.wait_for_line(Stream::Stderr, &["reopening with back-off"], WAIT);
    let results_sub = Subscriber::start("results", port, "cmd/relay/+/result");

    publish(port, "cmd/relay/a", r#"{"on": true}"#);
    publish(port, "cmd/relay/b", r#"{"on": false}"#);
    publish(port, "cmd/relay/c", r#"{"on": true}"#);
    let first = results_sub.wait_until("the refusal", WAIT, |m| !m.is_empty());
    let rejected = json(&first[0]);
    assert_eq!(rejected["topic"], "cmd/relay/c");
    assert_eq!(rejected["status"], "rejected");
    assert!(rejected["error"]
        .as_str()
        .is_some_and(|e| e.contains("max_queued")));

    // Plugged in: the two waiting go out in arrival order.
    let mut master = plug(&link);
    assert_eq!(read_bytes(&mut master, 18), b"RELAY 1\r\nRELAY 0\r\n");
    let got = results_sub.wait_until("two more results", WAIT, |m| m.len() >= 3);
    let got: Vec<Value> = got.iter().map(json).collect();
    assert_eq!(
        (got[1]["topic"].as_str(), got[1]["status"].as_str()),
        (Some("cmd/relay/a"), Some("sent"))
    );
    assert_eq!(
        (got[2]["topic"].as_str(), got[2]["status"].as_str()),
        (Some("cmd/relay/b"), Some("sent"))
    );
    assert!(got[1]["queued_ms"].as_u64().is_some_and(|ms| ms > 0));

    // Unplugged again: a command that waits longer than expire_after expires.
    unplug(&gw, &link, master);
    let asked = Instant::now();
    publish(port, "cmd/relay/d", r#"{"on": true}"#);
    let got = results_sub.wait_until("the expiry", WAIT, |m| m.len() >= 4);
    let expired = json(&got[3]);
    assert_eq!(expired["topic"], "cmd/relay/d");
    assert_eq!(expired["status"], "expired");
    assert!(expired["queued_ms"].as_u64().is_some_and(|ms| ms >= 3000));
    assert!(asked.elapsed() >= Duration::from_secs(3));

    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}

#[test]
fn only_a_user_the_acl_lets_publish_on_cmd_can_command_the_device() {
    let dir = Scratch::new("cmd-acl");
    let users = dir.path().join("users");
    for (user, password) in [("ops", "ops-secret"), ("guest", "guest-secret")] {
        let hash = PasswordHash::new(password.as_bytes(), MIN_ITERATIONS).expect("a salt");
        passwd::set(&users, user, &hash).expect("write the password file");
    }
    dir.write(
        "acl",
        "user ops\ntopic readwrite cmd/#\n\nuser guest\ntopic read cmd/#\n",
    );
    let link = dir.path().join("ttyRELAY");
    let mut master = plug(&link);
    let config = relay_gateway(
        &dir,
        &link,
        "",
        "  auth:\n    password_file: users\n    acl_file: acl\n",
    );
    let (mut gw, port) = started(&config);
    gw.wait_for_line(Stream::Stderr, &["serial port open"], WAIT);
    let p = port.to_string();
    let results_sub = Subscriber::start_with(
        "results",
        [
            "-h",
            "127.0.0.1",
            "-p",
            &p,
            "-u",
            "ops",
            "-P",
            "ops-secret",
            "-t",
            "cmd/relay/+/result",
        ],
    );
    // The guest's command is refused by the broker (dropped, as MQTT 3.1.1
    // has no way to say no to a PUBLISH); the operator's comes after it.
    let as_user = |user: &str, password: &str, payload: &str| {
        mosquitto_pub(
            port,
            &[
                "-u",
                user,
                "-P",
                password,
                "-q",
                "1",
                "-t",
                "cmd/relay/set",
                "-m",
                payload,
            ],
        )
    };
    as_user(
        "guest",
        "guest-secret",
        r#"{"on": true, "correlation": "guest"}"#,
    );
    as_user(
        "ops",
        "ops-secret",
        r#"{"on": false, "correlation": "ops"}"#,
    );
    assert_eq!(
        read_bytes(&mut master, 9),
        b"RELAY 0\r\n",
        "the operator's command is the first to reach the device"
    );
    let got = results_sub.wait_until("the operator's result", WAIT, |m| !m.is_empty());
    let first = json(&got[0]);
    assert_eq!(
        first["correlation"], "ops",
        "no result for the refused command"
    );
    assert_eq!(first["status"], "sent");

    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}

/// `mqgate` with string arguments.
fn mqgate(args: &[&str]) -> test_support::process::Finished {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    run_mqgate(&args)
}

#[test]
fn encode_prints_each_part_a_script_would_send_and_names_the_line_of_an_error() {
    let dir = Scratch::new("cmd-encode");
    let script = dir.write(
        "parts.rhai",
        "fn encode(c) {\n  if c.json == () { throw \"want JSON\"; }\n  [blob(1, 0x02), #{ bytes: `GO ${c.json.n}`, delay_ms: 20 }]\n}\n",
    );
    let script = script.to_str().expect("utf-8");
    let done = mqgate(&["encode", "--script", script, "--json", r#"{"n": 5}"#]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let lines: Vec<Value> = done
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", done.stdout);
    assert_eq!(lines[0]["hex"], "02");
    assert_eq!(lines[1]["text"], "GO 5");
    assert_eq!(lines[1]["delay_ms"], 20);

    let failed = mqgate(&["encode", "--script", script, "--text", "hello"]);
    assert_eq!(failed.code(), 1);
    assert!(
        failed.stderr.contains("parts.rhai:2") && failed.stderr.contains("want JSON"),
        "{}",
        failed.stderr
    );
    let bad = mqgate(&["encode", "--script", script, "--hex", "0g"]);
    assert_eq!(bad.code(), 2, "a bad argument is a usage error");
    assert!(bad.stderr.contains("--hex"), "{}", bad.stderr);
}

#[test]
fn send_writes_through_the_framing_to_the_device_and_prints_the_result() {
    let dir = Scratch::new("cmd-send");
    let link = dir.path().join("ttyRELAY");
    let mut master = plug(&link);
    let config = relay_gateway(&dir, &link, "", "");
    let config = config.to_str().expect("utf-8");
    // The terminal stays open on this side too: when `send` closes the last
    // handle of its end, the other end could no longer read what it wrote.
    let _held = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&link)
            .expect("open the terminal's device side")
    };
    let reader = std::thread::spawn(move || {
        let got = read_bytes(&mut master, 9);
        (master, got)
    });
    let done = mqgate(&[
        "send",
        "--config",
        config,
        "--source",
        "relay",
        "--json",
        r#"{"on": true, "correlation": 9}"#,
    ]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let (master, got) = reader.join().expect("the reader thread");
    assert_eq!(got, b"RELAY 1\r\n");
    let result: Value = serde_json::from_str(done.stdout.trim()).expect("a JSON result");
    assert_eq!(result["status"], "sent");
    assert_eq!(result["correlation"], 9);
    assert_eq!(result["topic"], "cmd/relay/send");

    // No device: the result says why, naming the port, and the exit code is 1.
    drop(master);
    std::fs::remove_file(&link).expect("unplug");
    dir.write(
        "mappings/relay.yaml",
        "source: relay\nscript: relay.rhai\ncommands:\n  topic: \"cmd/{source}/#\"\n  send_timeout_ms: 500\n",
    );
    let done = mqgate(&[
        "send",
        "--config",
        config,
        "--source",
        "relay",
        "--json",
        r#"{"on": false}"#,
    ]);
    assert_eq!(done.code(), 1, "{}", done.stdout);
    let result: Value = serde_json::from_str(done.stdout.trim()).expect("a JSON result");
    assert_eq!(result["status"], "failed");
    let error = result["error"].as_str().expect("an error");
    assert!(
        error.contains("ttyRELAY") && error.contains("not ready"),
        "{error}"
    );
}

#[test]
fn check_finds_a_commands_script_without_encode_and_commands_from_a_broker_that_is_not_there() {
    let dir = Scratch::new("cmd-check");
    dir.write("mappings/up.rhai", "fn map(frame) { () }\n");
    dir.write("mappings/down.rhai", "fn map(frame) { () }\n");
    dir.write(
        "mappings/up.yaml",
        "source: up\nscript: up.rhai\ncommands:\n  topic: \"cmd/{source}/#\"\n  script: down.rhai\n",
    );
    dir.write(
        "mappings/radio.yaml",
        "source: radio\ncommands:\n  topic: \"cmd/{source}\"\n  from: upstream\n",
    );
    dir.write("cap.log", "x\n");
    let config = dir.write(
        "mqgate.yaml",
        "gateway:\n  id: t\n  state_dir: state\nbroker:\n  listen: 127.0.0.1:0\n\
         sources:\n  - id: up\n    type: replay\n    file: cap.log\n\
         \x20 - id: radio\n    type: semtech_udp\n    listen: 127.0.0.1:0\n",
    );
    let done = mqgate(&["check", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(done.code(), 2, "{}", done.stdout);
    assert!(
        done.stderr
            .contains("down.rhai: no `fn encode(command)` found"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr.contains(
            "radio.yaml: commands.from: commands are taken from the upstream broker (`upstream:`), and there is none"
        ),
        "{}",
        done.stderr
    );
}

#[test]
fn commands_come_through_an_upstream_mosquitto_and_the_gateways_own_messages_never_do() {
    let dir = Scratch::new("cmd-upstream");
    let mosquitto = Mosquitto::start();
    let link = dir.path().join("ttyRELAY");
    let mut master = plug(&link);
    let config = relay_gateway(&dir, &link, "  from: upstream\n", "");
    // The device's lines are published on a topic the command filter matches:
    // the gateway must not take them back as commands.
    let mapping = std::fs::read_to_string(dir.path().join("mappings/relay.yaml")).expect("mapping");
    dir.write(
        "mappings/relay.yaml",
        mapping.replace(
            "topic: \"sensors/{source}\"",
            "topic: \"cmd/{source}/echo\"",
        ),
    );
    let mut text = std::fs::read_to_string(&config).expect("gateway file");
    text.push_str(&format!(
        "upstream:\n  url: mqtt://127.0.0.1:{}\n  client_id: cmd-gw\n  topic_prefix: site/\n",
        mosquitto.port
    ));
    std::fs::write(&config, text).expect("write the gateway file");
    let gw = start_mqgate_run(&config);
    gw.wait_for_line(
        Stream::Stderr,
        &["taking commands from the upstream broker"],
        WAIT,
    );
    gw.wait_for_line(Stream::Stderr, &["serial port open"], WAIT);
    let results_sub = Subscriber::start("results", mosquitto.port, "site/cmd/relay/+/result");
    let echo_sub = Subscriber::start("echo", mosquitto.port, "site/cmd/relay/echo");

    publish(
        mosquitto.port,
        "site/cmd/relay/set",
        r#"{"on": true, "correlation": 1}"#,
    );
    assert_eq!(read_bytes(&mut master, 9), b"RELAY 1\r\n");
    let master = write_to_port(master, b"temp=20\n".to_vec(), WAIT);
    echo_sub.wait_until("the device's line upstream", WAIT, |m| !m.is_empty());
    let mut master = master;
    publish(
        mosquitto.port,
        "site/cmd/relay/set",
        r#"{"on": false, "correlation": 2}"#,
    );
    assert_eq!(read_bytes(&mut master, 9), b"RELAY 0\r\n");
    let got = results_sub.wait_until("two results", WAIT, |m| m.len() >= 2);
    let got: Vec<Value> = got.iter().map(json).collect();
    assert_eq!(
        got.len(),
        2,
        "no result for the gateway's own message: {got:?}"
    );
    assert_eq!(got[0]["correlation"], 1);
    assert_eq!(got[0]["status"], "sent");
    assert_eq!(got[0]["topic"], "cmd/relay/set", "the prefix is taken off");
    assert_eq!(got[1]["correlation"], 2);
    assert_eq!(got[1]["status"], "sent");
    let mut gw = gw;
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}

/// The relay source's command counts, from the status API, once `done` holds.
fn wait_commands(gw: &Proc, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let addr = mqgate_tests::http::status_addr(gw, WAIT);
    let deadline = Instant::now() + WAIT;
    loop {
        let c = mqgate_tests::http::api_status(addr, WAIT)["commands"][0].clone();
        if done(&c) {
            return c;
        }
        assert!(Instant::now() < deadline, "{what}: {c}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn durable_commands_survive_a_kill_9_go_out_in_order_and_still_expire_from_their_arrival() {
    let dir = Scratch::new("cmd-durable");
    let link = dir.path().join("ttyRELAY");
    let config = relay_gateway(&dir, &link, "  durable: true\n  expire_after: 4s\n", "");
    let (mut gw, port) = started(&config);
    gw.wait_for_line(Stream::Stderr, &["reopening with back-off"], WAIT);
    publish(port, "cmd/relay/a", r#"{"on": true}"#);
    publish(port, "cmd/relay/b", r#"{"on": false}"#);
    wait_commands(&gw, "two commands queued", |c| c["queued"] == 2);
    gw.kill();

    // After the crash, with the port plugged in: both go out, in order.
    let (gw, port) = started(&config);
    gw.wait_for_line(
        Stream::Stderr,
        &["taking back the commands kept before"],
        WAIT,
    );
    let results_sub = Subscriber::start("results", port, "cmd/relay/+/result");
    let mut master = plug(&link);
    assert_eq!(read_bytes(&mut master, 18), b"RELAY 1\r\nRELAY 0\r\n");
    let got = results_sub.wait_until("two results", WAIT, |m| m.len() >= 2);
    let got: Vec<Value> = got.iter().map(json).collect();
    assert_eq!(
        (got[0]["topic"].as_str(), got[0]["status"].as_str()),
        (Some("cmd/relay/a"), Some("sent"))
    );
    assert_eq!(
        (got[1]["topic"].as_str(), got[1]["status"].as_str()),
        (Some("cmd/relay/b"), Some("sent"))
    );

    // Unplugged, a command waits; the gateway dies; it comes back after
    // expire_after has passed since the command arrived: expired at once.
    let mut gw = gw;
    unplug(&gw, &link, master);
    let asked = Instant::now();
    publish(port, "cmd/relay/c", r#"{"on": true}"#);
    wait_commands(&gw, "one command queued", |c| c["queued"] == 1);
    gw.kill();
    while asked.elapsed() < Duration::from_millis(4200) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut gw, _) = started(&config);
    let c = wait_commands(&gw, "the kept command expired", |c| c["expired"] == 1);
    assert_eq!(c["sent"], 0);
    let last = &c["recent"][0];
    assert_eq!(last["topic"], "cmd/relay/c");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("expire_after")),
        "{last}"
    );
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}

#[test]
fn max_per_minute_holds_back_the_next_command_until_it_expires() {
    let dir = Scratch::new("cmd-rate");
    let link = dir.path().join("ttyRELAY");
    let mut master = plug(&link);
    let config = relay_gateway(&dir, &link, "  max_per_minute: 2\n  expire_after: 1s\n", "");
    let (mut gw, port) = started(&config);
    gw.wait_for_line(Stream::Stderr, &["serial port open"], WAIT);
    let results_sub = Subscriber::start("results", port, "cmd/relay/+/result");
    for (topic, on) in [("a", "true"), ("b", "false"), ("c", "true")] {
        publish(
            port,
            &format!("cmd/relay/{topic}"),
            &format!(r#"{{"on": {on}}}"#),
        );
    }
    assert_eq!(read_bytes(&mut master, 18), b"RELAY 1\r\nRELAY 0\r\n");
    let got = results_sub.wait_until("three results", WAIT, |m| m.len() >= 3);
    let got: Vec<Value> = got.iter().map(json).collect();
    let statuses: Vec<(&str, &str)> = got
        .iter()
        .map(|r| {
            (
                r["topic"].as_str().unwrap_or(""),
                r["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("cmd/relay/a", "sent"),
            ("cmd/relay/b", "sent"),
            ("cmd/relay/c", "expired")
        ],
        "the third waits for the minute and expires first: an expired command never went to the device"
    );
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}
