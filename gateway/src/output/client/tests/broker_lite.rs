//! The client against broker-lite running in this process.

use std::time::Duration;

use mqtt_proto::codec::QoS;
use tokio::sync::mpsc;

use super::support::*;
use crate::output::client::{Ack, Will};

/// Forward every message of an in-process subscription to a bounded channel.
/// The handle drops what its buffer cannot hold: only for a few messages.
async fn handle_subscriber(broker: &broker_lite::Broker, filter: &str) -> mpsc::Receiver<Vec<u8>> {
    let mut sub = broker
        .handle()
        .subscribe(filter, QoS::ExactlyOnce)
        .await
        .expect("subscribe in-process");
    let (tx, rx) = mpsc::channel(100_000);
    tokio::spawn(async move {
        while let Some(m) = sub.recv().await {
            if tx.send(m.payload.to_vec()).await.is_err() {
                return;
            }
        }
    });
    rx
}

#[tokio::test]
async fn a_persistent_session_is_present_on_the_second_connect() {
    let broker = broker_lite().await;
    let mut opts = options(broker.local_addr(), &unique("persist"));
    opts.clean_session = false;
    let (conn, present) = connect(&opts).await;
    assert!(!present, "a new session cannot be present");
    conn.disconnect(WAIT).await;
    let (conn, present) = connect(&opts).await;
    assert!(
        present,
        "the session kept from the first connect is present"
    );
    conn.disconnect(WAIT).await;
    opts.clean_session = true;
    let (_conn, present) = connect(&opts).await;
    assert!(!present, "a clean session is never present");
}

#[tokio::test]
async fn ten_thousand_qos1_publishes_in_a_window_are_acked_in_order_and_delivered_once() {
    let broker = broker_lite().await;
    let mut rx = rumqttc_subscriber(broker.local_addr(), "bl/q1").await;
    let (mut conn, _) = connect(&options(broker.local_addr(), &unique("q1"))).await;
    let acks = publish_window(&mut conn, "bl/q1", 10_000, 1024, QoS::AtLeastOnce).await;
    assert_eq!(acks, expected_pkids(10_000));
    assert_eq!(
        collect(&mut rx, 10_000, broker.local_addr(), "bl/q1").await,
        numbers(10_000)
    );
    assert_eq!(conn.queued_bytes(), 0);
}

#[tokio::test]
async fn a_qos2_publish_gets_pubrec_and_its_pubrel_gets_pubcomp() {
    let broker = broker_lite().await;
    let mut rx = handle_subscriber(&broker, "bl/q2").await;
    let (mut conn, _) = connect(&options(broker.local_addr(), &unique("q2"))).await;
    conn.publish(42, "bl/q2", b"once", QoS::ExactlyOnce, false, false);
    assert!(conn.queued_bytes() > 0);
    let ack = wait_for("PUBREC", conn.next()).await.expect("PUBREC");
    assert_eq!(ack, Ack::PubRec(42));
    conn.pubrel(42);
    let ack = wait_for("PUBCOMP", conn.next()).await.expect("PUBCOMP");
    assert_eq!(ack, Ack::PubComp(42));
    assert_eq!(
        collect(&mut rx, 1, broker.local_addr(), "bl/q2").await,
        vec!["once".to_string()]
    );
}

#[tokio::test]
async fn a_thousand_qos2_publishes_in_a_window_complete_in_order() {
    let broker = broker_lite().await;
    let mut rx = rumqttc_subscriber(broker.local_addr(), "bl/q2w").await;
    let (mut conn, _) = connect(&options(broker.local_addr(), &unique("q2w"))).await;
    let acks = publish_window(&mut conn, "bl/q2w", 1000, 100, QoS::ExactlyOnce).await;
    assert_eq!(acks, expected_pkids(1000));
    assert_eq!(
        collect(&mut rx, 1000, broker.local_addr(), "bl/q2w").await,
        numbers(1000)
    );
}

#[tokio::test]
async fn next_keeps_its_progress_when_select_cancels_it_again_and_again() {
    let broker = broker_lite().await;
    let mut rx = rumqttc_subscriber(broker.local_addr(), "bl/cancel").await;
    let (mut conn, _) = connect(&options(broker.local_addr(), &unique("cancel"))).await;
    // 4 kB messages, 512 in flight: 2 MB bursts, more than a socket takes at once.
    let count = 3_000u32;
    let padding = "x".repeat(4000);
    let mut sent = 0u32;
    let mut acks = Vec::new();
    let (mut turn, mut cancelled) = (0u32, 0u32);
    let deadline = tokio::time::Instant::now() + WAIT;
    while acks.len() < count as usize && tokio::time::Instant::now() < deadline {
        while sent < count && sent - (acks.len() as u32) < 512 {
            sent += 1;
            let payload = format!("{sent}/{padding}");
            conn.publish(
                pkid(sent),
                "bl/cancel",
                payload.as_bytes(),
                QoS::AtLeastOnce,
                false,
                false,
            );
        }
        // Every other turn `next` gets one poll only, then is dropped.
        turn += 1;
        tokio::select! {
            biased;
            ack = conn.next() => match ack {
                Ok(Ack::PubAck(id)) => acks.push(id),
                other => panic!("expected PUBACK, got {other:?}"),
            },
            _ = std::future::ready(()), if turn % 2 == 0 => cancelled += 1,
        }
    }
    assert!(
        cancelled > 0,
        "next was never cancelled; the test proves nothing"
    );
    assert_eq!(acks, expected_pkids(count));
    let got: Vec<String> = collect(&mut rx, count as usize, broker.local_addr(), "bl/cancel")
        .await
        .into_iter()
        .map(|p| p.split('/').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(got, numbers(count));
}

#[tokio::test]
async fn disconnect_writes_what_is_queued_before_it_leaves() {
    let broker = broker_lite().await;
    let mut rx = rumqttc_subscriber(broker.local_addr(), "bl/last").await;
    let (mut conn, _) = connect(&options(broker.local_addr(), &unique("last"))).await;
    for n in 1..=100u32 {
        conn.publish(
            0,
            "bl/last",
            n.to_string().as_bytes(),
            QoS::AtMostOnce,
            false,
            false,
        );
    }
    conn.disconnect(WAIT).await;
    assert_eq!(
        collect(&mut rx, 100, broker.local_addr(), "bl/last").await,
        numbers(100)
    );
}

#[tokio::test]
async fn an_idle_connection_stays_open_because_pings_are_answered() {
    let broker = broker_lite().await;
    let mut opts = options(broker.local_addr(), &unique("idle"));
    opts.keep_alive = Duration::from_secs(1);
    let (mut conn, _) = connect(&opts).await;
    // Three keep-alive periods: without PINGREQ the broker would close at 1.5.
    match tokio::time::timeout(Duration::from_secs(3), conn.next()).await {
        Err(_elapsed) => {}
        Ok(other) => panic!("an idle connection ended with {other:?}"),
    }
    conn.publish(1, "bl/idle", b"still here", QoS::AtLeastOnce, false, false);
    let ack = wait_for("PUBACK", conn.next())
        .await
        .expect("PUBACK after idling");
    assert_eq!(ack, Ack::PubAck(1));
}

#[tokio::test]
async fn the_will_is_published_when_the_connection_drops_but_not_after_disconnect() {
    let broker = broker_lite().await;
    let mut rx = handle_subscriber(&broker, "bl/will").await;
    let mut opts = options(broker.local_addr(), &unique("will"));
    opts.will = Some(Will {
        topic: "bl/will".into(),
        payload: "offline".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
    });
    let (conn, _) = connect(&opts).await;
    conn.disconnect(WAIT).await;
    assert_eq!(
        collect(&mut rx, 0, broker.local_addr(), "bl/will").await,
        Vec::<String>::new()
    );
    let (conn, _) = connect(&opts).await;
    drop(conn);
    assert_eq!(
        collect(&mut rx, 1, broker.local_addr(), "bl/will").await,
        vec!["offline".to_string()]
    );
}

#[tokio::test]
async fn a_qos0_publish_is_delivered_without_an_acknowledgement() {
    let broker = broker_lite().await;
    let mut rx = handle_subscriber(&broker, "bl/q0").await;
    let (mut conn, _) = connect(&options(broker.local_addr(), &unique("q0"))).await;
    conn.publish(
        0,
        "bl/q0",
        b"fire and forget",
        QoS::AtMostOnce,
        false,
        false,
    );
    // Nothing comes back for it: the first answer is the PUBACK of a QoS 1 fence
    // sent after it (the broker answers in order), and `next` wrote both.
    conn.publish(1, "bl/q0-fence", b"fence", QoS::AtLeastOnce, false, false);
    let answer = wait_for("the fence's PUBACK", conn.next()).await;
    assert_eq!(
        answer.expect("an answer"),
        Ack::PubAck(1),
        "QoS 0 got an answer"
    );
    assert_eq!(conn.queued_bytes(), 0);
    assert_eq!(
        collect(&mut rx, 1, broker.local_addr(), "bl/q0").await,
        vec!["fire and forget".to_string()]
    );
}
