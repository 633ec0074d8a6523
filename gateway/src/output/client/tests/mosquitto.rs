//! The client against a real Mosquitto on a loopback port.

use std::time::Instant;

use mqtt_proto::codec::QoS;

use test_support::mosquitto::Mosquitto;
use test_support::mosquitto_tls::mosquitto_password_file;

use super::support::*;
use crate::output::client::{Ack, ClientError, Connection};

#[tokio::test]
async fn mosquitto_reports_a_persistent_session_present_on_reconnect() {
    let broker = Mosquitto::start();
    let mut opts = options(broker.addr(), &unique("persist"));
    opts.clean_session = false;
    let (conn, present) = connect(&opts).await;
    assert!(!present, "a new session cannot be present");
    conn.disconnect(WAIT).await;
    let (_conn, present) = connect(&opts).await;
    assert!(
        present,
        "mosquitto kept the session:\n{}",
        broker.transcript()
    );
}

#[tokio::test]
async fn ten_thousand_qos1_publishes_to_mosquitto_are_acked_in_order_and_delivered_once() {
    let broker = Mosquitto::start();
    let mut rx = rumqttc_subscriber(broker.addr(), "m/q1").await;
    let (mut conn, _) = connect(&options(broker.addr(), &unique("q1"))).await;
    let acks = publish_window(&mut conn, "m/q1", 10_000, 1024, QoS::AtLeastOnce).await;
    assert_eq!(acks, expected_pkids(10_000));
    assert_eq!(
        collect(&mut rx, 10_000, broker.addr(), "m/q1").await,
        numbers(10_000)
    );
}

#[tokio::test]
async fn a_qos2_publish_to_mosquitto_completes_with_pubrec_pubrel_pubcomp() {
    let broker = Mosquitto::start();
    let mut rx = rumqttc_subscriber(broker.addr(), "m/q2").await;
    let (mut conn, _) = connect(&options(broker.addr(), &unique("q2"))).await;
    conn.publish(300, "m/q2", b"exactly once", QoS::ExactlyOnce, false, false);
    assert_eq!(
        wait_for("PUBREC", conn.next()).await.expect("PUBREC"),
        Ack::PubRec(300)
    );
    conn.pubrel(300);
    assert_eq!(
        wait_for("PUBCOMP", conn.next()).await.expect("PUBCOMP"),
        Ack::PubComp(300)
    );
    assert_eq!(
        collect(&mut rx, 1, broker.addr(), "m/q2").await,
        vec!["exactly once".to_string()]
    );
    let acks = publish_window(&mut conn, "m/q2", 2000, 256, QoS::ExactlyOnce).await;
    assert_eq!(acks, expected_pkids(2000));
    assert_eq!(
        collect(&mut rx, 2000, broker.addr(), "m/q2").await,
        numbers(2000)
    );
}

#[tokio::test]
async fn a_bad_password_is_refused_with_a_reason_a_user_can_act_on() {
    let broker = Mosquitto::start_with("mosquitto", true, |dir| {
        let file = mosquitto_password_file(&dir.join("passwd"), &[("gateway", "right")]);
        format!("allow_anonymous false\npassword_file {}", file.display())
    });
    let mut opts = options(broker.addr(), &unique("auth"));
    opts.username = Some("gateway".into());
    opts.password = Some("wrong".into());
    match wait_for("CONNACK", Connection::connect(&opts)).await {
        Err(e @ ClientError::Refused(_)) => {
            let text = e.to_string();
            assert!(text.contains("bad user name or password"), "{text}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    opts.password = Some("right".into());
    let (mut conn, _) = connect(&opts).await;
    conn.publish(1, "m/auth", b"in", QoS::AtLeastOnce, false, false);
    assert_eq!(
        wait_for("PUBACK", conn.next()).await.expect("PUBACK"),
        Ack::PubAck(1)
    );
}

/// A persistent session, a subscriber, and a first connection that publishes
/// QoS 2 with `pkid` and sees the PUBREC, then dies without a word.
async fn qos2_then_crash(
    broker: &Mosquitto,
    topic: &str,
    pkid: u16,
) -> (
    crate::output::client::ClientOptions,
    tokio::sync::mpsc::Receiver<Vec<u8>>,
) {
    let rx = rumqttc_subscriber(broker.addr(), topic).await;
    let mut opts = options(broker.addr(), &unique("resend"));
    opts.clean_session = false;
    let (mut conn, _) = connect(&opts).await;
    conn.publish(pkid, topic, b"the one", QoS::ExactlyOnce, false, false);
    assert_eq!(
        wait_for("PUBREC", conn.next()).await.expect("PUBREC"),
        Ack::PubRec(pkid)
    );
    drop(conn);
    (opts, rx)
}

#[tokio::test]
async fn a_qos2_publish_resent_with_dup_and_the_same_id_after_reconnect_is_delivered_once() {
    let broker = Mosquitto::start();
    let (opts, mut rx) = qos2_then_crash(&broker, "m/dup", 4242).await;
    let (mut conn, present) = connect(&opts).await;
    assert!(present, "the session survived the crash");
    conn.publish(4242, "m/dup", b"the one", QoS::ExactlyOnce, false, true);
    assert_eq!(
        wait_for("PUBREC", conn.next()).await.expect("PUBREC"),
        Ack::PubRec(4242)
    );
    conn.pubrel(4242);
    assert_eq!(
        wait_for("PUBCOMP", conn.next()).await.expect("PUBCOMP"),
        Ack::PubComp(4242)
    );
    assert_eq!(
        collect(&mut rx, 1, broker.addr(), "m/dup").await,
        vec!["the one".to_string()]
    );
}

#[tokio::test]
async fn a_qos2_message_whose_pubrec_came_back_resumes_with_pubrel_and_is_delivered_once() {
    let broker = Mosquitto::start();
    let (opts, mut rx) = qos2_then_crash(&broker, "m/rel", 65535).await;
    let (mut conn, present) = connect(&opts).await;
    assert!(present, "the session survived the crash");
    conn.pubrel(65535);
    assert_eq!(
        wait_for("PUBCOMP", conn.next()).await.expect("PUBCOMP"),
        Ack::PubComp(65535)
    );
    drop(conn);
    // The PUBCOMP was lost too: releasing again is answered, and delivers nothing new.
    let (mut conn, _) = connect(&opts).await;
    conn.pubrel(65535);
    assert_eq!(
        wait_for("PUBCOMP", conn.next()).await.expect("PUBCOMP"),
        Ack::PubComp(65535)
    );
    assert_eq!(
        collect(&mut rx, 1, broker.addr(), "m/rel").await,
        vec!["the one".to_string()]
    );
}

/// Messages per second pushed through a window of 1024 (no subscriber).
async fn rate(addr: std::net::SocketAddr, count: u32, qos: QoS) -> f64 {
    let (mut conn, _) = connect(&options(addr, &unique("rate"))).await;
    let started = Instant::now();
    let acks = publish_window(&mut conn, "rate/q", count, 1024, qos).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(acks.len(), count as usize);
    f64::from(count) / secs
}

/// `cargo test --release -p mqgate --lib publish_rate -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn publish_rate_with_a_window_of_1024() {
    let lite = broker_lite().await;
    let mosquitto = Mosquitto::start_with("mosquitto", false, |_| "allow_anonymous true".into());
    for round in 1..=3 {
        for (qos, count) in [(QoS::AtLeastOnce, 200_000), (QoS::ExactlyOnce, 50_000)] {
            let a = rate(lite.local_addr(), count, qos).await;
            let b = rate(mosquitto.addr(), count, qos).await;
            println!(
                "round {round}: {count} x {qos:?}, payload <= 6 bytes, window 1024: \
                 broker-lite {a:.0}/s, mosquitto {b:.0}/s"
            );
        }
    }
}
