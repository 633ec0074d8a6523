//! Persistent sessions under ACLs: what was queued under one user's rules is
//! not handed to another user who connects with the same client id.

mod common;

use std::path::PathBuf;

use broker_lite::auth::hash::{PasswordHash, MIN_ITERATIONS};
use common::{start_with, wait_for, ConnectBytes, RawClient};
use mqtt_proto::codec::{ConnectReturnCode, QoS};

/// Password and ACL files in a fresh temporary folder, removed when dropped.
struct Files(PathBuf);

impl Files {
    fn new() -> Files {
        let dir = std::env::temp_dir().join(format!(
            "{}-{}",
            common::unique_id("broker-lite-auth-sessions"),
            std::process::id()
        ));
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

/// A CONNECT (clean or not) from `user` with `client_id`, refused with CONNACK 2.
async fn refused(addr: std::net::SocketAddr, client_id: &str, user: &str, clean: bool) {
    let c = persistent(client_id, user).clean(clean);
    let (mut client, ack) = RawClient::handshake(addr, &c).await;
    assert_eq!(
        ack.code,
        ConnectReturnCode::IdentifierRejected,
        "{user} was let in with another user's client id {client_id}"
    );
    assert!(!ack.session_present);
    client.expect_closed().await;
}

/// Finding: any authenticated user could destroy another user's session. alice
/// asking for bob's client id is refused (CONNACK 2, counted), and bob's live
/// connection, his will and his persistent session with its queued messages stay
/// as they were, before and after a restart; bob taking over his own session
/// works as before.
#[tokio::test]
async fn a_user_cannot_take_over_or_destroy_another_users_session() {
    let files = Files::new();
    let db = files.0.join("broker.db");
    let broker = start_with(|c| {
        c.auth.password_file = Some(files.0.join("passwd"));
        c.persistence = Some(broker_lite::config::PersistenceConfig::new(db.clone()));
    })
    .await;
    let addr = broker.local_addr();
    let handle = broker.handle();
    let mut wills = RawClient::connect_with(addr, &{
        let mut c = ConnectBytes::new("will-watcher");
        c.username = Some(b"alice".to_vec());
        c.password = Some(b"alice".to_vec());
        c
    })
    .await
    .0;
    wills.subscribe(1, &[("wills/#", 1)]).await;

    // bob is connected, with a will and a subscription.
    let c = persistent("bob-phone", "bob").will("wills/bob", b"bob is gone", 1, false);
    let (mut bob, _) = RawClient::connect_with(addr, &c).await;
    bob.subscribe(1, &[("inbox/bob/#", 1)]).await;

    // alice asks for bob's client id, clean or not: refused each time.
    refused(addr, "bob-phone", "alice", false).await;
    refused(addr, "bob-phone", "alice", true).await;
    let refusals = broker.metrics().snapshot().client_ids_refused;
    assert_eq!(refusals, 2);

    // bob's connection is alive and his will was not published.
    bob.ping().await;
    wills
        .expect_nothing_before("wills/fence", async {
            let p = handle.publish("wills/fence", "fence", QoS::AtLeastOnce, false);
            wait_for("the fence", p).await.expect("routed");
        })
        .await;

    // bob goes away; a message queues for him; alice tries again, then bob is back
    // and his session and its message are there.
    bob.disconnect().await;
    let p = handle.publish("inbox/bob/1", "for bob", QoS::AtLeastOnce, false);
    wait_for("publish", p).await.expect("routed");
    refused(addr, "bob-phone", "alice", false).await;
    let (mut bob, present) = RawClient::connect_with(addr, &persistent("bob-phone", "bob")).await;
    assert!(present, "bob's session was lost");
    let got = bob.recv_publish_acked().await;
    assert_eq!(&got.payload[..], b"for bob");
    bob.disconnect().await;
    let p = handle.publish(
        "inbox/bob/2",
        "for bob, after a restart",
        QoS::AtLeastOnce,
        false,
    );
    wait_for("publish", p).await.expect("routed");
    drop(wills);
    broker.shutdown().await;

    // After a restart the session is still bob's.
    let broker = start_with(|c| {
        c.auth.password_file = Some(files.0.join("passwd"));
        c.persistence = Some(broker_lite::config::PersistenceConfig::new(db.clone()));
    })
    .await;
    let addr = broker.local_addr();
    refused(addr, "bob-phone", "alice", false).await;
    let (mut bob, present) = RawClient::connect_with(addr, &persistent("bob-phone", "bob")).await;
    assert!(present, "bob's session was lost across the restart");
    let got = bob.recv_publish_acked().await;
    assert_eq!(&got.payload[..], b"for bob, after a restart");
    bob.disconnect().await;
    broker.shutdown().await;
}

/// Under ACLs, a session made anonymously may still be taken over by a user; it
/// then starts afresh, without what was queued under the anonymous client's rules.
#[tokio::test]
async fn a_user_taking_an_anonymous_client_id_gets_a_new_session_without_the_queue() {
    let files = Files::new();
    let broker = start_with(|c| {
        c.auth.password_file = Some(files.0.join("passwd"));
        c.auth.acl_file = Some(files.0.join("acl"));
        c.auth.allow_anonymous = Some(true);
    })
    .await;
    let addr = broker.local_addr();
    let handle = broker.handle();

    let (mut anon, present) =
        RawClient::connect_with(addr, &ConnectBytes::new("dev-1").clean(false)).await;
    assert!(!present);
    anon.subscribe(1, &[("news/#", 1)]).await;
    anon.disconnect().await;
    let publish = handle.publish(
        "news/a",
        "for the anonymous client",
        QoS::AtLeastOnce,
        false,
    );
    wait_for("publish", publish).await.expect("routed");

    let (mut bob, present) = RawClient::connect_with(addr, &persistent("dev-1", "bob")).await;
    assert!(!present, "bob was handed the anonymous client's session");
    bob.expect_nothing_before("fence/bob", async {
        let publish = handle.publish("fence/bob", "fence", QoS::AtLeastOnce, false);
        wait_for("the fence", publish).await.expect("routed");
    })
    .await;
    broker.shutdown().await;
}
