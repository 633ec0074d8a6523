//! Password checks are slow on purpose; they must not slow down anyone else.

mod common;

use std::time::{Duration, Instant};

use broker_lite::auth::hash::{PasswordHash, DEFAULT_ITERATIONS};
use common::{start_with, wait_for, ConnectBytes, RawClient};
use mqtt_proto::codec::ConnectReturnCode;

/// A password file in a fresh temporary folder, removed when dropped.
struct PasswordFile(std::path::PathBuf);

impl PasswordFile {
    fn new(user: &str, password: &str) -> PasswordFile {
        let dir = std::env::temp_dir().join(format!("broker-lite-flood-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let hash = PasswordHash::new(password.as_bytes(), DEFAULT_ITERATIONS).expect("salt");
        std::fs::write(dir.join("passwd"), format!("{user}:{hash}\n")).expect("write");
        PasswordFile(dir)
    }

    fn path(&self) -> std::path::PathBuf {
        self.0.join("passwd")
    }
}

impl Drop for PasswordFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_logins_does_not_stall_connected_clients() {
    let file = PasswordFile::new("alice", "right");
    let broker = start_with(|c| {
        c.auth.password_file = Some(file.path());
        // Every guess is checked here, however long it waits.
        c.auth.max_login_wait_ms = 60_000;
    })
    .await;
    let addr = broker.local_addr();
    let (mut alice, _) = RawClient::connect_with(
        addr,
        &ConnectBytes::new("alice").credentials("alice", "right"),
    )
    .await;

    // Each check takes a few tens of ms (a few hundred in a debug build); the
    // checks run one per core at a time.
    let flood_size = 8;
    let started = Instant::now();
    let flood: Vec<_> = (0..flood_size)
        .map(|i| {
            tokio::spawn(async move {
                let id = format!("bad-{i}");
                let (_, ack) = RawClient::handshake(
                    addr,
                    &ConnectBytes::new(&id).credentials("alice", "wrong"),
                )
                .await;
                ack.code
            })
        })
        .collect();
    // While the flood is being checked, alice's QoS 1 round trips go on.
    let mut slowest = Duration::ZERO;
    let mut round_trips = 0u16;
    while !flood.iter().all(|t| t.is_finished()) && round_trips < 10_000 {
        round_trips += 1;
        let t = Instant::now();
        wait_for(
            "PUBACK",
            alice.publish("alice/ping", b"x", 1, false, round_trips),
        )
        .await;
        slowest = slowest.max(t.elapsed());
        // Paced, so that the bounded number of round trips spans the flood.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for task in flood {
        let code = wait_for("a refused CONNACK", task).await.expect("task");
        assert_eq!(code, ConnectReturnCode::BadUserNameOrPassword);
    }
    let flood_time = started.elapsed();
    println!("{flood_size} bad logins took {flood_time:?}; slowest of {round_trips} round trips {slowest:?}");
    assert!(
        round_trips >= 2,
        "the flood ended before it could be measured"
    );
    // Checked on the router or the runtime, the hashes would hold round trips
    // for about the whole flood.
    assert!(
        slowest < flood_time / 4,
        "a round trip took {slowest:?} during a flood of {flood_time:?}"
    );
    assert_eq!(broker.metrics().snapshot().logins_refused, flood_size);
    broker.shutdown().await;
}
