//! What an ordinary user can make the broker keep is bounded: queued bytes per
//! session and in all, persistent sessions per user and in all, retained messages
//! and their bytes per user and in all. Each limit refuses what would pass it,
//! counts it, and leaves everyone else's messages alone.

mod common;

use common::*;
use mqtt_proto::codec::{ConnectReturnCode, Publish};

const KIB: usize = 1024;

fn as_user(client_id: &str, user: &str) -> ConnectBytes {
    let mut c = ConnectBytes::new(client_id).clean(false);
    c.username = Some(user.as_bytes().to_vec());
    c
}

fn names(ps: &[Publish]) -> Vec<String> {
    ps.iter()
        .map(|p| format!("{}={}", p.topic, p.payload.len()))
        .collect()
}

/// Finding: three offline sessions with 1,000 queued 1 MiB messages each took
/// the broker to 3.4 GB. A session's queue now stops at `max_queued_bytes`
/// (the oldest give way), and all queues together at `max_queued_bytes_total`.
#[tokio::test]
async fn queued_bytes_are_bounded_per_session_and_in_all() {
    let broker = start_with(|c| {
        c.limits.max_queued_bytes = 64 * KIB;
        c.limits.max_queued_bytes_total = 100 * KIB;
    })
    .await;
    let addr = broker.local_addr();
    // Three sessions subscribe and go away.
    for id in ["away-1", "away-2", "away-3"] {
        let (mut c, _) = RawClient::connect_with(addr, &ConnectBytes::new(id).clean(false)).await;
        c.subscribe(1, &[("big/#", 1)]).await;
        c.disconnect().await;
    }
    // 20 messages of 16 KiB: 320 KiB for each session, 960 KiB in all.
    let mut publisher = RawClient::connect(addr, "publisher").await;
    for i in 0..20u16 {
        publisher
            .publish(&format!("big/{i:02}"), &[7u8; 16 * KIB], 1, false, i + 1)
            .await;
    }
    // The budget is looked at before a message is queued: the total may pass it
    // by one message for each session that matched it.
    let m = broker.metrics().snapshot();
    let one = (16 * KIB + "big/00".len()) as u64;
    assert!(
        m.queued_bytes <= 100 * KIB as u64 + 3 * one,
        "{} bytes queued, over the budget",
        m.queued_bytes
    );
    assert!(m.queue_budget_drops > 0, "{m:?}");

    // The first session keeps at most 64 KiB.
    let (mut c, present) =
        RawClient::connect_with(addr, &ConnectBytes::new("away-1").clean(false)).await;
    assert!(present);
    // A fence behind what was queued: the session's queue went into its window
    // when it connected, so the fence is sent at once, after all of it.
    publisher
        .publish("big/zz-fence", b"fence", 1, false, 100)
        .await;
    let mut got = Vec::new();
    loop {
        let p = c.recv_publish_acked().await;
        if p.topic == "big/zz-fence" {
            break;
        }
        got.push(p);
    }
    let bytes: usize = got.iter().map(|p| p.topic.len() + p.payload.len()).sum();
    assert!(bytes <= 64 * KIB, "{} queued: {:?}", bytes, names(&got));
    assert!(got.len() >= 2, "{:?}", names(&got));
    broker.shutdown().await;
}

/// Finding: nothing bounded the persistent sessions. One user may keep
/// `max_sessions_per_user`, everyone together `max_sessions`; a CONNECT past
/// either gets CONNACK 3 and is counted, and a clean session is not affected.
#[tokio::test]
async fn persistent_sessions_are_bounded_per_user_and_in_all() {
    let broker = start_with(|c| {
        c.limits.max_sessions_per_user = 2;
        c.limits.max_sessions = 3;
    })
    .await;
    let addr = broker.local_addr();
    for id in ["a-1", "a-2"] {
        let (c, _) = RawClient::connect_with(addr, &as_user(id, "alice")).await;
        c.disconnect().await;
    }
    let (mut refused, ack) = RawClient::handshake(addr, &as_user("a-3", "alice")).await;
    assert_eq!(ack.code, ConnectReturnCode::ServerUnavailable);
    refused.expect_closed().await;
    // Her own session can still be resumed, and a clean one is not counted.
    let (c, present) = RawClient::connect_with(addr, &as_user("a-1", "alice")).await;
    assert!(present);
    c.disconnect().await;
    let clean = RawClient::connect(addr, "alice-clean").await;
    clean.disconnect().await;
    // bob has room of his own, until the total is reached.
    let (c, _) = RawClient::connect_with(addr, &as_user("b-1", "bob")).await;
    c.disconnect().await;
    let (mut refused, ack) = RawClient::handshake(addr, &as_user("b-2", "bob")).await;
    assert_eq!(ack.code, ConnectReturnCode::ServerUnavailable);
    refused.expect_closed().await;
    assert_eq!(broker.metrics().snapshot().sessions_refused, 2);
    broker.shutdown().await;
}

/// Finding: 4,000 retained messages of 256 KiB took 1.18 GB. A retained PUBLISH
/// past a user's or the broker's retained limits is dropped (not retained, not
/// delivered, still acknowledged) and counted; replacing and clearing one's own
/// retained messages still works, and other users keep their room.
#[tokio::test]
async fn retained_messages_and_bytes_are_bounded_per_user_and_in_all() {
    let broker = start_with(|c| {
        c.limits.max_retained_messages_per_user = 3;
        c.limits.max_retained_bytes_per_user = 40 * KIB;
        c.limits.max_retained_messages = 5;
        c.limits.max_retained_bytes = 1024 * KIB;
    })
    .await;
    let addr = broker.local_addr();
    let mut watcher = RawClient::subscriber(addr, "r/#", 1).await;
    let (mut alice, _) = RawClient::connect_with(addr, &as_user("alice-1", "alice")).await;
    for (i, topic) in ["r/a1", "r/a2", "r/a3", "r/a4"].iter().enumerate() {
        alice.publish(topic, b"x", 1, true, i as u16 + 1).await;
    }
    // The fourth was acknowledged but neither retained nor delivered.
    let got = watcher.recv_publishes_acked(3).await;
    assert_eq!(names(&got), ["r/a1=1", "r/a2=1", "r/a3=1"]);
    watcher.expect_nothing_more(addr).await;
    assert_eq!(broker.metrics().snapshot().retained_refused, 1);
    assert_eq!(broker.metrics().snapshot().retained_messages, 3);

    // Replacing one of hers passes; clearing one makes room for another.
    alice.publish("r/a1", b"yy", 1, true, 10).await;
    alice.publish("r/a2", b"", 1, true, 11).await;
    alice.publish("r/a4", b"z", 1, true, 12).await;
    // Bytes: 30 KiB more would pass her 40 KiB.
    alice.publish("r/a5", &[0u8; 30 * KIB], 1, false, 13).await;
    alice.publish("r/big", &[0u8; 40 * KIB], 1, true, 14).await;
    assert_eq!(broker.metrics().snapshot().retained_refused, 2);

    // bob has room of his own up to the broker's five.
    let (mut bob, _) = RawClient::connect_with(addr, &as_user("bob-1", "bob")).await;
    bob.publish("r/b1", b"b", 1, true, 1).await;
    bob.publish("r/b2", b"b", 1, true, 2).await;
    bob.publish("r/b3", b"b", 1, true, 3).await;
    assert_eq!(broker.metrics().snapshot().retained_refused, 3);

    // What a new subscriber gets is exactly what was kept.
    let mut late = RawClient::connect(addr, "late").await;
    late.subscribe(1, &[("r/#", 1)]).await;
    let mut kept = names(&late.recv_publishes_acked(5).await);
    kept.sort();
    assert_eq!(kept, ["r/a1=2", "r/a3=1", "r/a4=1", "r/b1=1", "r/b2=1"]);
    late.expect_nothing_more(addr).await;
    broker.shutdown().await;
}

/// Finding: `deny_subscribe` was bypassed by a wider filter: with
/// `private/+/secrets` denied, `private/#` and `#` were granted and delivered it.
/// Delivery now checks the topic against the denied filters as well.
#[tokio::test]
async fn deny_subscribe_is_not_bypassed_by_a_wider_filter() {
    let broker = start_with(|c| c.deny_subscribe = vec!["private/+/secrets".into()]).await;
    let addr = broker.local_addr();
    let mut wide = RawClient::connect(addr, "wide").await;
    let codes = wide.subscribe(1, &[("private/#", 1), ("#", 1)]).await;
    assert!(
        !codes.contains(&mqtt_proto::codec::SubscribeReturnCode::Failure),
        "the wide filters are granted: {codes:?}"
    );
    let mut publisher = RawClient::connect(addr, "pub").await;
    publisher
        .publish("private/bob/secrets", b"s3cr3t", 1, true, 1)
        .await;
    publisher
        .publish("private/bob/notes", b"fine", 1, false, 2)
        .await;
    let p = wide.recv_publish_acked().await;
    assert_eq!(p.topic, "private/bob/notes");
    wide.expect_nothing_more(addr).await;
    // Nor as a retained message to a new subscription.
    let mut late = RawClient::connect(addr, "late").await;
    late.subscribe(1, &[("private/#", 1)]).await;
    late.expect_nothing_more(addr).await;
    broker.shutdown().await;
}
