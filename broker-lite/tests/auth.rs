//! Authentication and ACLs with real clients: mosquitto_pub/mosquitto_sub with
//! `-u -P`, paho-mqtt for the exact CONNACK codes, and `broker-lite passwd`
//! through the binary.

mod real;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use broker_lite::auth::hash::{PasswordHash, MIN_ITERATIONS};
use real::{run_py, TestBroker, TIMEOUT};
use test_support::mosquitto::{mosquitto_pub, mosquitto_pub_status, Subscriber};
use test_support::process::{Finished, Proc};
use test_support::Scratch;

const BIN: &str = env!("CARGO_BIN_EXE_broker-lite");

/// A temporary folder for password and ACL files, removed when dropped.
struct Files {
    dir: Scratch,
}

impl Files {
    fn new(name: &str) -> Files {
        Files {
            dir: Scratch::new(&format!("broker-lite-auth-{name}")),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A password file holding `users` as (name, password); cheap hashes for speed.
fn password_file(files: &Files, users: &[(&str, &str)]) -> PathBuf {
    let mut text = String::from("# test users\n");
    for (user, password) in users {
        let hash = PasswordHash::new(password.as_bytes(), MIN_ITERATIONS).expect("salt");
        text.push_str(&format!("{user}:{hash}\n"));
    }
    files.write("passwd", &text)
}

/// The CONNACK code paho gets for these credentials.
fn paho_connack(port: u16, client_id: &str, credentials: &[&str]) -> i64 {
    let mut args = vec![client_id];
    args.extend_from_slice(credentials);
    run_py("connack.py", port, &args).one("connack").int("rc")
}

/// Waits until `cond` holds for the broker's metrics.
fn wait_metrics(b: &TestBroker, what: &str, cond: impl Fn(&broker_lite::MetricsSnapshot) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond(&b.metrics()) {
        assert!(
            Instant::now() < deadline,
            "{what}: metrics {:?}",
            b.metrics()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- passwords ----

#[test]
fn a_right_password_connects_a_wrong_one_gets_code_4_and_none_gets_code_5() {
    let files = Files::new("codes");
    let pw = password_file(&files, &[("alice", "right")]);
    let b = TestBroker::start(|c| c.auth.password_file = Some(pw));
    let topic = ["-t", "auth/t", "-m", "x"];

    mosquitto_pub(
        b.port,
        &[&["-u", "alice", "-P", "right"][..], &topic].concat(),
    );
    for (credentials, refusal) in [
        (
            &["-u", "alice", "-P", "wrong"][..],
            "bad user name or password",
        ),
        (
            &["-u", "nobody", "-P", "right"][..],
            "bad user name or password",
        ),
        (&["-u", "alice"][..], "bad user name or password"),
        (&[][..], "not authori"),
    ] {
        let Finished { status, stderr, .. } =
            mosquitto_pub_status(b.port, &[credentials, &topic].concat());
        assert!(!status.success(), "{credentials:?} was accepted");
        assert!(
            stderr.to_lowercase().contains(refusal),
            "{credentials:?}: {stderr}"
        );
    }
    assert_eq!(paho_connack(b.port, "p-ok", &["alice", "right"]), 0);
    assert_eq!(paho_connack(b.port, "p-bad", &["alice", "wrong"]), 4);
    assert_eq!(paho_connack(b.port, "p-unknown", &["mallory", "x"]), 4);
    assert_eq!(paho_connack(b.port, "p-anon", &[]), 5);
    wait_metrics(&b, "7 refused logins", |m| m.logins_refused == 7);
}

#[test]
fn anonymous_clients_may_be_allowed_next_to_a_password_file() {
    let files = Files::new("anon");
    let pw = password_file(&files, &[("alice", "right")]);
    let b = TestBroker::start(|c| {
        c.auth.password_file = Some(pw);
        c.auth.allow_anonymous = Some(true);
    });
    assert_eq!(paho_connack(b.port, "anon", &[]), 0);
    assert_eq!(paho_connack(b.port, "named", &["alice", "right"]), 0);
    assert_eq!(paho_connack(b.port, "wrong", &["alice", "nope"]), 4);
}

#[test]
fn without_a_password_file_user_names_are_not_checked() {
    let b = TestBroker::start(|_| {});
    assert_eq!(paho_connack(b.port, "any", &["anyone", "anything"]), 0);
    assert_eq!(paho_connack(b.port, "anon", &[]), 0);
    assert_eq!(b.metrics().logins_refused, 0);
}

/// `broker-lite passwd` with the password on stdin; returns status and output.
fn passwd(args: &[&str], stdin: &str) -> (ExitStatus, String) {
    let mut child = Command::new(BIN)
        .arg("passwd")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start broker-lite passwd");
    let written = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    match written {
        Ok(()) => {}
        // It may refuse (a user name with ':') and exit before reading stdin.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("write the password: {e}"),
    }
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "broker-lite passwd hangs");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

fn line_of<'a>(text: &'a str, user: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{user}:")))
        .collect()
}

#[test]
fn passwd_adds_changes_and_deletes_users_in_a_file_only_its_owner_reads() {
    let files = Files::new("passwd");
    let path = files.path("passwd");
    let file = path.to_str().expect("utf-8 path");

    let (status, out) = passwd(&[file, "alice"], "first\n");
    assert!(status.success(), "{out}");
    assert!(out.contains("added \"alice\""), "{out}");
    let mode = std::fs::metadata(&path).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    let before = std::fs::read_to_string(&path).expect("read");
    assert!(
        !before.contains("first"),
        "the password itself is in the file"
    );

    let (status, out) = passwd(&[file, "alice"], "second\r\n");
    assert!(status.success(), "{out}");
    assert!(out.contains("changed the password of \"alice\""), "{out}");
    let (status, out) = passwd(&[file, "bob"], "bobs\n");
    assert!(status.success(), "{out}");
    let after = std::fs::read_to_string(&path).expect("read");
    let alice = line_of(&after, "alice");
    assert_eq!(alice.len(), 1, "{after}");
    assert_ne!(
        Some(&alice[0]),
        line_of(&before, "alice").first(),
        "hash not replaced"
    );
    assert!(
        alice[0].starts_with("alice:$pbkdf2-sha512$i="),
        "{}",
        alice[0]
    );

    let (status, out) = passwd(&["--delete", file, "bob"], "");
    assert!(status.success(), "{out}");
    assert!(line_of(&std::fs::read_to_string(&path).expect("read"), "bob").is_empty());
    let (status, out) = passwd(&["--delete", file, "bob"], "");
    assert!(
        !status.success(),
        "deleting a missing user succeeded: {out}"
    );
    let (status, out) = passwd(&[file, "carol"], "\n");
    assert!(!status.success(), "an empty password was taken: {out}");
    let (status, out) = passwd(&[file, "a:b"], "x\n");
    assert!(!status.success(), "a user name with ':' was taken: {out}");
    assert_eq!(
        std::fs::metadata(&path).expect("file").permissions().mode() & 0o777,
        0o600
    );

    let b = TestBroker::start(|c| c.auth.password_file = Some(path.clone()));
    assert_eq!(paho_connack(b.port, "new", &["alice", "second"]), 0);
    assert_eq!(paho_connack(b.port, "old", &["alice", "first"]), 4);
    assert_eq!(paho_connack(b.port, "deleted", &["bob", "bobs"]), 4);
}

#[test]
fn the_binary_finds_auth_files_next_to_its_config_and_logs_refusals_without_the_password() {
    let files = Files::new("binary");
    password_file(&files, &[("alice", "right")]);
    files.write("acl", "user alice\ntopic readwrite a/#\n");
    let config = files.write(
        "broker.yaml",
        "listen: 127.0.0.1:0\nsys_interval_secs: 0\nauth:\n  password_file: passwd\n  acl_file: acl\n",
    );
    let mut cmd = Command::new(BIN);
    // Run from another folder: the file names are relative to the config's.
    cmd.current_dir(std::env::temp_dir())
        .arg("--config")
        .arg(&config);
    let mut proc = Proc::spawn("broker-lite", &mut cmd);
    let line = proc.expect_line("listening on", TIMEOUT, |l| l.contains("listening on "));
    let port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));

    mosquitto_pub(
        port,
        &["-u", "alice", "-P", "right", "-t", "a/b", "-m", "x"],
    );
    let Finished { status, .. } = mosquitto_pub_status(
        port,
        &[
            "-i",
            "who-1",
            "-u",
            "alice",
            "-P",
            "Wr0ng-pass",
            "-t",
            "a/b",
            "-m",
            "x",
        ],
    );
    assert!(!status.success());
    let deadline = Instant::now() + TIMEOUT;
    while !proc.stderr_text().contains("login refused") {
        assert!(Instant::now() < deadline, "{}", proc.transcript());
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = proc.stderr_text();
    let refusal = log
        .lines()
        .find(|l| l.contains("login refused"))
        .unwrap_or_default();
    for part in ["WARN", "who-1", "alice", "127.0.0.1"] {
        assert!(refusal.contains(part), "{part} missing from {refusal:?}");
    }
    assert!(
        !log.contains("Wr0ng-pass"),
        "the password is in the log:\n{log}"
    );
}

#[test]
fn a_bad_acl_or_password_file_stops_the_binary_naming_the_file_and_line() {
    let files = Files::new("bad");
    files.write(
        "passwd",
        "alice:$pbkdf2-sha512$i=5$AAAAAAAAAAA$AAAAAAAAAAA\n",
    );
    files.write("acl", "user alice\ntopic read a/#\ntopic read a/#/b\n");
    let config = files.write(
        "broker.yaml",
        "auth:\n  password_file: passwd\n  acl_file: acl\n",
    );
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config);
    let mut proc = Proc::spawn("broker-lite", &mut cmd);
    let status = proc.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(2), "{}", proc.transcript());
    let err = proc.stderr_text();
    let passwd = files.path("passwd").display().to_string();
    let acl = files.path("acl").display().to_string();
    assert!(
        err.contains(&format!("{passwd}:1: user \"alice\": iterations")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{acl}:3: \"a/#/b\" is not a valid topic filter")),
        "{err}"
    );
}

// ---- ACLs ----

const ACL: &str = "\
# anonymous clients
topic read public/#
topic write public/inbox

user admin
topic readwrite #

user alice
topic read sensors/#
topic deny sensors/secret/#
topic write cmd/alice
topic readwrite shared/#
topic write will/alice

client gw-1
topic write devices/gw-1/#

pattern readwrite users/%u/#
pattern write status/%c
";

/// A broker with users admin/alice/bob, the ACL above and anonymous clients allowed.
fn acl_broker(files: &Files) -> TestBroker {
    let pw = password_file(files, &[("admin", "a"), ("alice", "b"), ("bob", "c")]);
    let acl = files.write("acl", ACL);
    TestBroker::start(|c| {
        c.auth.password_file = Some(pw);
        c.auth.acl_file = Some(acl);
        c.auth.allow_anonymous = Some(true);
    })
}

const ADMIN: [&str; 4] = ["-u", "admin", "-P", "a"];
const ALICE: [&str; 4] = ["-u", "alice", "-P", "b"];
const BOB: [&str; 4] = ["-u", "bob", "-P", "c"];

fn publish_as(port: u16, who: &[&str], topic: &str, payload: &str, extra: &[&str]) {
    let args = [who, &["-q", "1", "-t", topic, "-m", payload], extra].concat();
    mosquitto_pub(port, &args);
}

/// Topics received before `marker` arrives (published last by the admin).
fn topics_before_marker(port: u16, sub: &mut Subscriber, marker: &str) -> Vec<String> {
    publish_as(port, &ADMIN, marker, "end", &[]);
    let (before, _) = sub.msgs_until_topic(marker);
    before.into_iter().map(|m| m.topic).collect()
}

#[test]
fn a_wide_subscription_receives_only_the_topics_the_client_may_read() {
    let files = Files::new("read");
    let b = acl_broker(&files);
    let mut sub = Subscriber::subscribed(b.port, &[&ALICE[..], &["-q", "1", "-t", "#"]].concat());
    for topic in [
        "sensors/temp",
        "sensors/secret/key",
        "cmd/alice",
        "public/news",
        "shared/x",
        "users/alice/inbox",
        "users/bob/inbox",
    ] {
        publish_as(b.port, &ADMIN, topic, "v", &[]);
    }
    // The marker is not readable by alice, so wait for a readable one instead.
    publish_as(b.port, &ADMIN, "shared/marker", "end", &[]);
    let (before, _) = sub.msgs_until_topic("shared/marker");
    let got: Vec<String> = before.into_iter().map(|m| m.topic).collect();
    assert_eq!(
        got,
        ["sensors/temp", "shared/x", "users/alice/inbox"],
        "write-only, denied, anonymous-only and other users' topics must not arrive"
    );
}

#[test]
fn a_refused_publish_is_acknowledged_dropped_and_counted() {
    let files = Files::new("write");
    let b = acl_broker(&files);
    let mut sub = Subscriber::subscribed(b.port, &[&ADMIN[..], &["-q", "1", "-t", "#"]].concat());
    // QoS 1 and 2: mosquitto_pub exits 0 only once its PUBACK / PUBCOMP came.
    publish_as(b.port, &ALICE, "sensors/temp", "read-only", &[]);
    publish_as(b.port, &ALICE, "sensors/secret/x", "denied", &["-q", "2"]);
    publish_as(b.port, &ALICE, "users/bob/inbox", "other user", &[]);
    publish_as(b.port, &ALICE, "cmd/alice", "write-only", &[]);
    publish_as(b.port, &ALICE, "users/alice/outbox", "own pattern", &[]);
    publish_as(b.port, &ALICE, "shared/y", "readwrite", &[]);
    let got = topics_before_marker(b.port, &mut sub, "end/1");
    assert_eq!(got, ["cmd/alice", "users/alice/outbox", "shared/y"]);
    wait_metrics(&b, "3 publishes denied", |m| m.publishes_denied == 3);
}

#[test]
fn a_refused_filter_gets_suback_0x80_and_the_others_are_granted() {
    let files = Files::new("suback");
    let b = acl_broker(&files);
    let mut sub = Subscriber::spawn(
        b.port,
        &[
            &ALICE[..],
            &[
                "-q",
                "1",
                "-t",
                "sensors/#",
                "-t",
                "sensors/secret/#",
                "-t",
                "cmd/alice",
            ],
            &["-t", "public/#", "-t", "+/temp"],
        ]
        .concat(),
    );
    assert_eq!(sub.wait_suback(), [1, 128, 128, 128, 1]);
    wait_metrics(&b, "3 subscriptions denied", |m| {
        m.subscriptions_denied == 3
    });
}

#[test]
fn anonymous_clients_get_the_rules_before_any_user_line() {
    let files = Files::new("anon-acl");
    let b = acl_broker(&files);
    let mut sub = Subscriber::subscribed(b.port, &["-q", "1", "-t", "public/#", "-t", "sensors/#"]);
    assert_eq!(paho_connack(b.port, "anon-check", &[]), 0);
    publish_as(b.port, &[], "public/inbox", "from anonymous", &[]);
    publish_as(b.port, &[], "public/news", "not writable", &[]);
    publish_as(b.port, &ADMIN, "sensors/temp", "not readable", &[]);
    publish_as(b.port, &ADMIN, "public/news", "readable", &[]);
    let (before, last) = sub.msgs_until_topic("public/news");
    let got: Vec<(String, String)> = before
        .into_iter()
        .chain([last])
        .map(|m| (m.topic.clone(), m.text()))
        .collect();
    assert_eq!(
        got,
        [
            ("public/inbox".to_string(), "from anonymous".to_string()),
            ("public/news".to_string(), "readable".to_string())
        ]
    );
}

#[test]
fn client_blocks_and_client_id_patterns_follow_the_client_id() {
    let files = Files::new("client");
    let b = acl_broker(&files);
    let mut sub = Subscriber::subscribed(b.port, &[&ADMIN[..], &["-q", "1", "-t", "#"]].concat());
    publish_as(
        b.port,
        &BOB,
        "devices/gw-1/up",
        "gw-1 as bob",
        &["-i", "gw-1"],
    );
    publish_as(
        b.port,
        &BOB,
        "devices/gw-1/up",
        "gw-2 as bob",
        &["-i", "gw-2"],
    );
    publish_as(b.port, &BOB, "status/phone", "own %c", &["-i", "phone"]);
    publish_as(b.port, &BOB, "status/phone", "other %c", &["-i", "tablet"]);
    publish_as(
        b.port,
        &[],
        "devices/gw-1/up",
        "gw-1 anonymous",
        &["-i", "gw-1"],
    );
    let got = topics_before_marker(b.port, &mut sub, "end/2");
    assert_eq!(got, ["devices/gw-1/up", "status/phone", "devices/gw-1/up"]);
}

#[test]
fn retained_messages_are_not_sent_to_a_subscriber_that_may_not_read_them() {
    let files = Files::new("retained");
    let b = acl_broker(&files);
    for topic in ["sensors/secret/r", "sensors/r", "cmd/alice"] {
        publish_as(b.port, &ADMIN, topic, "kept", &["-r"]);
    }
    let mut sub = Subscriber::subscribed(b.port, &[&ALICE[..], &["-q", "1", "-t", "#"]].concat());
    publish_as(b.port, &ADMIN, "shared/marker", "end", &[]);
    let (before, _) = sub.msgs_until_topic("shared/marker");
    let got: Vec<(String, bool)> = before.into_iter().map(|m| (m.topic, m.retain)).collect();
    assert_eq!(got, [("sensors/r".to_string(), true)]);
}

#[test]
fn a_will_is_published_only_on_a_topic_the_client_may_write() {
    let files = Files::new("will");
    let b = acl_broker(&files);
    let mut watcher =
        Subscriber::subscribed(b.port, &[&ADMIN[..], &["-q", "1", "-t", "will/#"]].concat());
    for (id, topic) in [("w-denied", "will/other"), ("w-allowed", "will/alice")] {
        let args = [
            &ALICE[..],
            &["-i", id, "-t", "sensors/none", "--will-topic", topic],
            &["--will-payload", id, "--will-qos", "1"],
        ]
        .concat();
        let mut client = Subscriber::subscribed(b.port, &args);
        // SIGKILL: the socket closes without DISCONNECT, so the will is due.
        client.proc_mut().kill();
        if id == "w-denied" {
            wait_metrics(&b, "the denied will counted", |m| m.publishes_denied >= 1);
        }
    }
    let (before, will) = watcher.msgs_until_topic("will/alice");
    assert!(
        before.is_empty(),
        "a refused will was published: {before:?}"
    );
    assert_eq!(will.text(), "w-allowed");
    wait_metrics(&b, "one will published", |m| m.wills_published == 1);
}

#[test]
fn an_embedded_broker_does_not_start_with_a_bad_acl_file() {
    let files = Files::new("embedded");
    let acl = files.write("acl", "topic read ok/#\ntopic read bad/#/x\n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = broker_lite::Config {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..broker_lite::Config::default()
    };
    config.auth.acl_file = Some(acl.clone());
    let err = match rt.block_on(broker_lite::Broker::start(config)) {
        Ok(_) => panic!("started with a bad ACL file"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("{}:2:", acl.display())), "{err}");
}

/// `broker-lite passwd` on a pseudo-terminal (through `script`), typing each
/// answer after its prompt appeared; returns the exit status and the terminal output.
fn passwd_on_terminal(file: &str, user: &str, answers: &[&str]) -> (ExitStatus, String) {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    let command = format!("{BIN} passwd {file} {user}");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start script");
    let screen = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().expect("stdout");
    let sink = Arc::clone(&screen);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("screen")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut stdin = child.stdin.take().expect("stdin");
    let deadline = Instant::now() + TIMEOUT;
    for (i, answer) in answers.iter().enumerate() {
        let prompts = i + 1;
        while screen.lock().expect("screen").matches("Password").count() < prompts {
            assert!(
                Instant::now() < deadline,
                "no prompt {prompts}: {:?}",
                screen.lock().expect("screen")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        stdin
            .write_all(format!("{answer}\n").as_bytes())
            .expect("type");
    }
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "broker-lite passwd hangs");
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = child.wait().expect("status");
    drop(stdin);
    let _ = reader.join();
    let text = screen.lock().expect("screen").clone();
    (status, text)
}

#[test]
fn passwd_on_a_terminal_asks_twice_and_refuses_two_different_answers() {
    let files = Files::new("tty");
    let path = files.path("passwd");
    let file = path.to_str().expect("utf-8 path");
    let (status, screen) = passwd_on_terminal(file, "alice", &["t0p-secret", "t0p-secret"]);
    assert!(status.success(), "{screen}");
    assert!(screen.contains("Password again: "), "{screen}");
    assert!(screen.contains("added \"alice\""), "{screen}");
    // No check that the answers were not echoed: rpassword prints the prompt
    // before it turns echo off, so an answer typed at once may race it.
    let (status, screen) = passwd_on_terminal(file, "bob", &["one", "two"]);
    assert!(!status.success(), "{screen}");
    assert!(screen.contains("differ"), "{screen}");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(line_of(&text, "bob").is_empty(), "{text}");
    let b = TestBroker::start(|c| c.auth.password_file = Some(path.clone()));
    assert_eq!(paho_connack(b.port, "tty", &["alice", "t0p-secret"]), 0);
}
