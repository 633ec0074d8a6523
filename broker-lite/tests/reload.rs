//! Reloading the password file, the ACL file and TLS certificates of a running
//! broker: `Broker::reload` in-process, and SIGHUP to the `broker-lite` command
//! with `broker-lite passwd` and `mosquitto_pub`.

mod common;
mod real;
mod streams;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use broker_lite::auth::hash::{PasswordHash, MIN_ITERATIONS};
use broker_lite::config::{ListenerConfig, TlsConfig};
use broker_lite::{Broker, Config};
use common::{start_with, wait_for, ConnectBytes, RawClient};
use mqtt_proto::codec::{ConnectReturnCode, QoS};
use real::TIMEOUT;
use streams::{connect_tls, server_tls, tls_client};
use test_support::pki::Ca;
use test_support::process::{Proc, SIGHUP};
use test_support::{free_port, wait_for_port, Scratch};

/// `user:hash` lines whose password is the user name.
fn password_file(path: &Path, users: &[&str]) {
    let mut lines = String::new();
    for user in users {
        let hash = PasswordHash::new(user.as_bytes(), MIN_ITERATIONS).expect("salt");
        lines.push_str(&format!("{user}:{hash}\n"));
    }
    std::fs::write(path, lines).expect("write the password file");
}

fn login(client_id: &str, user: &str) -> ConnectBytes {
    let mut c = ConnectBytes::new(client_id);
    c.username = Some(user.as_bytes().to_vec());
    c.password = Some(user.as_bytes().to_vec());
    c
}

async fn connack(addr: SocketAddr, connect: &ConnectBytes) -> ConnectReturnCode {
    RawClient::handshake(addr, connect).await.1.code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_acl_rules_change_on_reload_and_a_bad_file_changes_nothing() {
    let dir = Scratch::new("broker-lite-reload");
    let (passwd, acl) = (dir.path().join("passwd"), dir.path().join("acl"));
    password_file(&passwd, &["alice"]);
    std::fs::write(&acl, "user alice\ntopic read a/#\ntopic read b/#\n").expect("write");
    let broker = start_with(|c| {
        c.auth.password_file = Some(passwd.clone());
        c.auth.acl_file = Some(acl.clone());
    })
    .await;
    let addr = broker.local_addr();
    let handle = broker.handle();

    let (mut alice, _) = RawClient::connect_with(addr, &login("alice-1", "alice")).await;
    alice.subscribe(1, &[("a/#", 0), ("b/#", 0)]).await;
    assert_eq!(
        connack(addr, &login("bob-1", "bob")).await,
        ConnectReturnCode::BadUserNameOrPassword
    );

    // bob is added; alice may no longer read b/#.
    password_file(&passwd, &["alice", "bob"]);
    std::fs::write(&acl, "user alice\ntopic read a/#\n").expect("write");
    let reloaded = wait_for("reload", broker.reload())
        .await
        .expect("good files");
    assert_eq!(reloaded.auth, "2 user(s), 1 ACL rule(s)");
    assert_eq!(
        connack(addr, &login("bob-1", "bob")).await,
        ConnectReturnCode::Accepted
    );
    // The connected client's rules changed at once: b/1 is published first and
    // must not reach her.
    for topic in ["b/1", "a/1"] {
        let publish = handle.publish(topic, topic, QoS::AtMostOnce, false);
        wait_for("publish", publish).await.expect("routed");
    }
    assert_eq!(alice.recv_publish().await.topic, "a/1");
    alice
        .expect_nothing_before("a/fence", async {
            let publish = handle.publish("a/fence", "fence", QoS::AtLeastOnce, false);
            wait_for("the fence", publish).await.expect("routed");
        })
        .await;

    // A bad ACL line refuses the whole reload, naming file and line; the
    // password file read with it is not put in either.
    password_file(&passwd, &["alice"]);
    std::fs::write(&acl, "user alice\ntopic read a/#\ngrant read b/#\n").expect("write");
    let refused = wait_for("reload", broker.reload())
        .await
        .expect_err("a bad ACL file");
    let text = refused.to_string();
    assert!(text.contains(&format!("{}", acl.display())), "{text}");
    assert!(text.contains(":3"), "the line is named: {text}");
    assert_eq!(
        connack(addr, &login("bob-2", "bob")).await,
        ConnectReturnCode::Accepted,
        "the passwords in force stayed"
    );
    let publish = handle.publish("a/2", "a/2", QoS::AtMostOnce, false);
    wait_for("publish", publish).await.expect("routed");
    assert_eq!(alice.recv_publish().await.topic, "a/2");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_tls_connection_gets_the_reloaded_certificate() {
    let dir = Scratch::new("broker-lite-reload-tls");
    let old_ca = Ca::new(dir.path(), "old-ca");
    let old = old_ca.server("old");
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::copy(&old.cert, &cert).expect("copy");
    std::fs::copy(&old.key, &key).expect("copy");
    let tls: TlsConfig = server_tls(&cert, &key);
    let broker = Broker::start(Config {
        listeners: vec![ListenerConfig {
            tls: Some(tls),
            ..ListenerConfig::plain(SocketAddr::from(([127, 0, 0, 1], 0)))
        }],
        sys_interval_secs: 0,
        ..Config::default()
    })
    .await
    .expect("the broker starts");
    let addr = broker.local_addr();
    let trusts_old = tls_client(&old_ca.cert, None);
    let mut before = connect_tls(addr, &trusts_old)
        .await
        .expect("old certificate");

    // The certificate is renewed by another CA (as a renewal with a new chain would be).
    let new_ca = Ca::new(dir.path(), "new-ca");
    let new = new_ca.server("new");
    std::fs::copy(&new.cert, &cert).expect("copy");
    std::fs::copy(&new.key, &key).expect("copy");
    let reloaded = wait_for("reload", broker.reload())
        .await
        .expect("good files");
    assert_eq!(reloaded.tls_listeners, 1);

    let trusts_new = tls_client(&new_ca.cert, None);
    connect_tls(addr, &trusts_new)
        .await
        .expect("the next connection gets the new certificate");
    assert!(
        connect_tls(addr, &trusts_old).await.is_err(),
        "the old certificate is no longer offered"
    );
    // The connection made before the reload carries on.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    before
        .write_all(&ConnectBytes::new("before").encode())
        .await
        .expect("write CONNECT");
    let mut connack = [0u8; 4];
    wait_for("CONNACK", before.read_exact(&mut connack))
        .await
        .expect("read CONNACK");
    assert_eq!(connack, [0x20, 2, 0, 0]);

    // A key that does not match its certificate refuses the reload, naming both files.
    std::fs::copy(&old.key, &key).expect("copy");
    let refused = wait_for("reload", broker.reload())
        .await
        .expect_err("mismatched key");
    assert!(refused.to_string().contains("server.key"), "{refused}");
    connect_tls(addr, &trusts_new)
        .await
        .expect("the certificate in force stayed");
    broker.shutdown().await;
}

const BIN: &str = env!("CARGO_BIN_EXE_broker-lite");

/// Wait until the broker's log (stderr) has `count` lines containing `what`.
fn wait_for_log(proc: &Proc, what: &str, count: usize) {
    let deadline = Instant::now() + TIMEOUT;
    while proc.stderr_text().matches(what).count() < count {
        assert!(
            Instant::now() < deadline,
            "no {what:?} in the log within {TIMEOUT:?}:\n{}",
            proc.transcript()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `mosquitto_pub` once as `user`; whether the broker let it publish.
fn publish_as(port: u16, user: &str) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", "t", "-m", "hello", "-u", user, "-P", user])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run mosquitto_pub")
        .success()
}

#[test]
fn sighup_reads_the_password_file_again() {
    let dir = Scratch::new("broker-lite-reload-cli");
    let passwd = dir.path().join("passwd");
    password_file(&passwd, &["alice"]);
    let config = dir.path().join("broker.yaml");
    std::fs::write(
        &config,
        format!("auth:\n  password_file: {}\n", passwd.display()),
    )
    .expect("write the configuration");
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&config)
        .env("RUST_LOG", "info");
    let proc = Proc::spawn("broker-lite", &mut cmd);
    assert!(wait_for_port(port, TIMEOUT), "{}", proc.transcript());
    assert!(publish_as(port, "alice"));
    assert!(
        !publish_as(port, "bob"),
        "bob is not in the password file yet"
    );

    // Added the way an administrator would, then SIGHUP.
    let status = Command::new(BIN)
        .args(["passwd"])
        .arg(&passwd)
        .arg("bob")
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(b"bob\n")?;
            child.wait()
        })
        .expect("run broker-lite passwd");
    assert!(status.success(), "broker-lite passwd failed");
    proc.signal(SIGHUP);
    wait_for_log(&proc, "reloaded: 2 user(s)", 1);
    assert!(publish_as(port, "bob"), "bob was not let in after SIGHUP");

    // A broken password file is refused and logged; bob stays in.
    std::fs::write(&passwd, "bob:not-a-hash\n").expect("write");
    proc.signal(SIGHUP);
    wait_for_log(&proc, "reload refused", 1);
    let log = proc.stderr_text();
    assert!(log.contains(&format!("{}:1", passwd.display())), "{log}");
    assert!(
        publish_as(port, "bob"),
        "a refused reload changed the passwords"
    );
}
