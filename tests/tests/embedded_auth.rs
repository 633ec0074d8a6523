//! The gateway's embedded broker with broker-lite's passwords and ACLs, set in
//! the gateway file's `broker:` section with files next to it: real subscribers
//! (mosquitto_sub) get what their user may read and nothing else.

use std::path::PathBuf;
use std::time::Duration;

use broker_lite::auth::hash::{PasswordHash, MIN_ITERATIONS};
use broker_lite::auth::passwd;
use mqgate_tests::mqgate::{embedded_broker_port, json_sensor_gateway, start_mqgate_run};
use test_support::mosquitto::Subscriber;
use test_support::process::{run_to_end, Stream};
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(20);

/// A gateway with one looping replay of the JSON sensor capture (topics
/// `sensors/json-sensor/<id>`) and the embedded broker asking for passwords, with
/// the password and ACL files given relative to the gateway file.
fn config(dir: &Scratch) -> PathBuf {
    let users = dir.path().join("users");
    for (user, password) in [("reader", "r-secret"), ("nosy", "n-secret")] {
        // The lowest cost broker-lite accepts: the test is about who gets in.
        let hash = PasswordHash::new(password.as_bytes(), MIN_ITERATIONS).expect("a salt");
        passwd::set(&users, user, &hash).expect("write the password file");
    }
    dir.write(
        "acl",
        "user reader\ntopic read sensors/#\n\nuser nosy\ntopic read other/#\n",
    );
    json_sensor_gateway(
        dir,
        "auth-gw",
        "  auth:\n    password_file: users\n    acl_file: acl\n",
    )
}

/// mosquitto_sub as `user` on `filter`, printing what it gets.
fn subscriber(port: u16, user: &str, password: &str, filter: &str) -> Subscriber {
    let port = port.to_string();
    let args = ["-h", "127.0.0.1", "-p", &port, "-u", user, "-P", password];
    Subscriber::start_with(user, args.into_iter().chain(["-t", filter]))
}

/// mosquitto_sub once with `args`: its exit code and what it printed on stderr.
fn refused(port: u16, args: &[&str]) -> (i32, String) {
    let mut cmd = std::process::Command::new("mosquitto_sub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-t",
        "sensors/#",
    ])
    .args(args)
    .args(["-C", "1", "-W", "5"]);
    let done = run_to_end("mosquitto_sub", cmd, WAIT);
    (done.code(), done.stderr)
}

#[test]
fn the_embedded_broker_asks_for_passwords_and_applies_the_acl_from_the_gateway_file() {
    let dir = Scratch::new("embedded-auth");
    let config = config(&dir);
    let mut gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);

    // The reader gets the gateway's messages.
    let reader = subscriber(port, "reader", "r-secret", "sensors/#");
    let got = reader.wait_until("a message for the reader", WAIT, |m| !m.is_empty());
    assert!(
        got[0].topic.starts_with("sensors/json-sensor/"),
        "{:?}",
        got[0]
    );

    // A user whose ACL does not cover sensors/# is subscribed to everything
    // (allowed: `#` overlaps its other/#) but gets none of them, while the
    // reader, subscribed at the same time, keeps getting messages.
    let nosy = subscriber(port, "nosy", "n-secret", "#");
    let before = reader.messages().len();
    reader.wait_until("more for the reader", WAIT, |m| m.len() >= before + 20);
    assert!(nosy.messages().is_empty(), "{:?}", nosy.messages());

    // A wrong password and no password are refused with their CONNACK codes.
    let (code, err) = refused(port, &["-u", "reader", "-P", "badpass42"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("bad user name or password"), "{err}");
    let (code, err) = refused(port, &[]);
    assert_ne!(code, 0, "{err}");
    assert!(err.to_lowercase().contains("not authori"), "{err}");
    // Logged with the user name, never the password.
    let line = gw.wait_for_line(Stream::Stderr, &["login refused", "user=\"reader\""], WAIT);
    assert!(!line.contains("badpass42"), "{line}");

    gw.signal(libc::SIGTERM);
    let exit = gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "output:\n{}", gw.transcript());
}

#[test]
fn systemctl_reload_puts_a_changed_acl_file_of_the_embedded_broker_in_force() {
    let dir = Scratch::new("embedded-auth-reload");
    let config = config(&dir);
    let mut gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);

    // nosy may read other/# only: subscribed to everything (allowed: it
    // overlaps other/#), it gets nothing of sensors/# while the reader does.
    let nosy = subscriber(port, "nosy", "n-secret", "#");
    let reader = subscriber(port, "reader", "r-secret", "sensors/#");
    reader.wait_until("messages for the reader", WAIT, |m| m.len() >= 20);
    assert!(nosy.messages().is_empty(), "{:?}", nosy.messages());

    // The ACL now lets nosy read them; SIGHUP, as `systemctl reload` sends.
    dir.write(
        "acl",
        "user reader\ntopic read sensors/#\n\nuser nosy\ntopic read sensors/#\n",
    );
    gw.signal(libc::SIGHUP);
    let line = gw.wait_for_line(Stream::Stderr, &["embedded broker reloaded"], WAIT);
    assert!(line.contains("2 user(s), 2 ACL rule(s)"), "{line}");
    // The same connection, the same subscription: the new rule applies at once.
    nosy.wait_until("messages for nosy after the reload", WAIT, |m| {
        !m.is_empty()
    });

    gw.signal(libc::SIGTERM);
    let exit = gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "output:\n{}", gw.transcript());
}
