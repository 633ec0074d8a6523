//! Persistent sessions under ACLs: what was queued under one user's rules is
//! not handed to another user who connects with the same client id.

mod common;

use std::path::PathBuf;

use broker_lite::auth::hash::{PasswordHash, MIN_ITERATIONS};
use common::{start_with, wait_for, ConnectBytes, RawClient};
use mqtt_proto::codec::QoS;

/// Password and ACL files in a fresh temporary folder, removed when dropped.
struct Files(PathBuf);

impl Files {
    fn new() -> Files {
        let dir =
            std::env::temp_dir().join(format!("broker-lite-auth-sessions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut passwd = String::new();
        for user in ["alice", "bob"] {
            let hash = PasswordHash::new(user.as_bytes(), MIN_ITERATIONS).expect("salt");
            passwd.push_str(&format!("{user}:{hash}\n"));
        }
        std::fs::write(dir.join("passwd"), passwd).expect("write");
        std::fs::write(dir.join("acl"), "pattern read #\n").expect("write");
        Files(dir)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A persistent-session CONNECT whose password is the user name.
fn persistent(client_id: &str, user: &str) -> ConnectBytes {
    let mut c = ConnectBytes::new(client_id).clean(false);
    c.username = Some(user.as_bytes().to_vec());
    c.password = Some(user.as_bytes().to_vec());
    c
}

#[tokio::test]
async fn another_user_resuming_a_client_id_gets_a_new_session_without_the_queue() {
    let files = Files::new();
    let broker = start_with(|c| {
        c.auth.password_file = Some(files.0.join("passwd"));
        c.auth.acl_file = Some(files.0.join("acl"));
    })
    .await;
    let addr = broker.local_addr();
    let handle = broker.handle();

    // alice leaves a persistent session with a subscription, and a message queues for it.
    let (mut alice, present) = RawClient::connect_with(addr, &persistent("dev-1", "alice")).await;
    assert!(!present);
    alice.subscribe(1, &[("news/#", 1)]).await;
    alice.disconnect().await;
    let publish = handle.publish("news/a", "for alice", QoS::AtLeastOnce, false);
    wait_for("publish", publish).await.expect("routed");

    // The same user gets it back...
    let (mut alice, present) = RawClient::connect_with(addr, &persistent("dev-1", "alice")).await;
    assert!(present, "alice's own session was not resumed");
    let p = alice.recv_publish_acked().await;
    assert_eq!(&p.payload[..], b"for alice");
    alice.disconnect().await;
    let publish = handle.publish("news/b", "also for alice", QoS::AtLeastOnce, false);
    wait_for("publish", publish).await.expect("routed");

    // ...another user does not.
    let (mut bob, present) = RawClient::connect_with(addr, &persistent("dev-1", "bob")).await;
    assert!(!present, "bob was handed alice's session");
    bob.expect_nothing_before("fence/bob", async {
        let publish = handle.publish("fence/bob", "fence", QoS::AtLeastOnce, false);
        wait_for("the fence", publish).await.expect("routed");
    })
    .await;
    broker.shutdown().await;
}
