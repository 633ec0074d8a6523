//! Persistent sessions, ACLs and a restart: a session read back from the file
//! keeps its owner, so it receives what its user may read while its client is
//! away, and another user cannot resume it.

mod common;

use std::path::Path;

use broker_lite::auth::hash::{PasswordHash, MIN_ITERATIONS};
use broker_lite::config::PersistenceConfig;
use broker_lite::Broker;
use common::{start_with, wait_for, ConnectBytes, RawClient};
use mqtt_proto::codec::QoS;

const ACL: &str = "\
user alice
topic read alice/#
topic deny alice/secret

user bob
topic read #
";

/// Password (the user name), ACL and persistence files in `dir`.
async fn broker(dir: &Path) -> Broker {
    let passwd = dir.join("passwd");
    if !passwd.exists() {
        let mut lines = String::new();
        for user in ["alice", "bob"] {
            let hash = PasswordHash::new(user.as_bytes(), MIN_ITERATIONS).expect("salt");
            lines.push_str(&format!("{user}:{hash}\n"));
        }
        std::fs::write(&passwd, lines).expect("write the password file");
        std::fs::write(dir.join("acl"), ACL).expect("write the ACL file");
    }
    start_with(|c| {
        c.auth.password_file = Some(passwd);
        c.auth.acl_file = Some(dir.join("acl"));
        c.persistence = Some(PersistenceConfig::new(dir.join("state.db")));
    })
    .await
}

/// A persistent-session CONNECT whose password is the user name.
fn persistent(client_id: &str, user: &str) -> ConnectBytes {
    let mut c = ConnectBytes::new(client_id).clean(false);
    c.username = Some(user.as_bytes().to_vec());
    c.password = Some(user.as_bytes().to_vec());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_session_gets_what_its_owner_may_read_and_only_its_owner_resumes_it() {
    let dir = test_support::Scratch::new("bl-acl-restart");

    // Before the restart alice leaves two persistent sessions subscribed to alice/#.
    let first = broker(dir.path()).await;
    for id in ["dev-1", "dev-2"] {
        let (mut alice, present) =
            RawClient::connect_with(first.local_addr(), &persistent(id, "alice")).await;
        assert!(!present);
        alice.subscribe(1, &[("alice/#", 1)]).await;
        alice.disconnect().await;
    }
    first.shutdown().await;

    // After it, messages arrive while she is away.
    let second = broker(dir.path()).await;
    let addr = second.local_addr();
    let handle = second.handle();
    for (topic, payload) in [
        ("alice/1", "for alice"),
        ("alice/secret", "not for alice"),
        ("alice/2", "also for alice"),
    ] {
        let publish = handle.publish(topic, payload, QoS::AtLeastOnce, false);
        wait_for("publish", publish).await.expect("routed");
    }

    // Her session got what her rules let her read, and nothing else.
    let (mut alice, present) = RawClient::connect_with(addr, &persistent("dev-1", "alice")).await;
    assert!(present, "alice's session was not read back");
    let got = alice.recv_publishes_acked(2).await;
    let payloads: Vec<&[u8]> = got.iter().map(|p| &p.payload[..]).collect();
    assert_eq!(payloads, [&b"for alice"[..], &b"also for alice"[..]]);
    alice
        .expect_nothing_before("alice/fence", async {
            let publish = handle.publish("alice/fence", "fence", QoS::AtLeastOnce, false);
            wait_for("the fence", publish).await.expect("routed");
        })
        .await;
    alice.disconnect().await;

    // bob may read everything, but alice's other session is not his to resume:
    // his CONNECT with its client id is refused, and the session stays alice's.
    let (mut bob, ack) = RawClient::handshake(addr, &persistent("dev-2", "bob")).await;
    assert_eq!(
        ack.code,
        mqtt_proto::codec::ConnectReturnCode::IdentifierRejected,
        "bob was let into alice's session after the restart"
    );
    bob.expect_closed().await;
    let (mut alice, present) = RawClient::connect_with(addr, &persistent("dev-2", "alice")).await;
    assert!(present, "alice's other session was lost");
    let got = alice.recv_publishes_acked(3).await;
    let payloads: Vec<&[u8]> = got.iter().map(|p| &p.payload[..]).collect();
    assert_eq!(
        payloads,
        [&b"for alice"[..], &b"also for alice"[..], &b"fence"[..]],
        "with what was queued for it"
    );
    alice.disconnect().await;
    second.shutdown().await;
}
