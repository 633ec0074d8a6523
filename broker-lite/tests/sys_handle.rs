//! `$SYS/broker/...` topics seen by a real client, and the in-process `BrokerHandle`
//! talking to real clients (mosquitto_pub/mosquitto_sub, rumqttc).

mod real;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use broker_lite::{HandleError, Publication, SubscribeOptions};
use bytes::Bytes;
use mqtt_proto::codec::QoS;
use mqtt_proto::topic::TopicName;
use real::{TestBroker, TIMEOUT};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use test_support::mosquitto::{mosquitto_pub, Msg, Subscriber};

fn sys_broker() -> TestBroker {
    TestBroker::start(|c| c.sys_interval_secs = 1)
}

/// Reads `$SYS` messages until `done` accepts the latest values by topic; panics at the deadline.
fn sys_until(
    sub: &mut Subscriber,
    what: &str,
    done: impl Fn(&HashMap<String, Msg>) -> bool,
) -> HashMap<String, Msg> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut latest = HashMap::new();
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(m) = sub.next_msg(left) else { break };
        latest.insert(m.topic.clone(), m);
        if done(&latest) {
            return latest;
        }
    }
    panic!(
        "$SYS never showed {what}; last values: {latest:#?}\n{}",
        sub.transcript()
    );
}

fn number(values: &HashMap<String, Msg>, name: &str) -> Option<u64> {
    let m = values.get(&format!("$SYS/broker/{name}"))?;
    m.text().split_whitespace().next()?.parse().ok()
}

#[test]
fn sys_clients_connected_counts_the_connected_clients() {
    let b = sys_broker();
    let _idle = Subscriber::subscribed(b.port, &["-t", "idle/t"]);
    let mut sys = Subscriber::subscribed(b.port, &["-t", "$SYS/broker/#"]);
    sys_until(&mut sys, "clients/connected = 2", |v| {
        number(v, "clients/connected") == Some(2)
    });
}

#[test]
fn sys_version_names_the_crate_version() {
    let b = sys_broker();
    let mut sys = Subscriber::subscribed(b.port, &["-t", "$SYS/broker/version"]);
    let m = sys.expect_msg();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        m.text() == version || m.text().ends_with(&format!(" {version}")),
        "version payload {:?} does not carry {version}",
        m.text()
    );
}

#[test]
fn sys_uptime_grows_between_updates() {
    let b = sys_broker();
    let mut sys = Subscriber::subscribed(b.port, &["-t", "$SYS/broker/uptime"]);
    let first = sys_until(&mut sys, "an uptime", |v| number(v, "uptime").is_some());
    let first = number(&first, "uptime").expect("uptime number");
    sys_until(&mut sys, "a larger uptime", |v| {
        number(v, "uptime").is_some_and(|n| n > first)
    });
}

#[test]
fn sys_topics_are_retained_for_later_subscribers() {
    let b = sys_broker();
    // Wait for one update to be stored, then subscribe afresh.
    let mut first = Subscriber::subscribed(b.port, &["-t", "$SYS/broker/uptime"]);
    first.expect_msg();
    let mut later = Subscriber::subscribed(b.port, &["-t", "$SYS/broker/#"]);
    let m = later.expect_msg();
    assert!(m.retain, "first $SYS message to a new subscriber: {m:?}");
    let names = [
        "clients/connected",
        "messages/received",
        "messages/sent",
        "bytes/received",
        "bytes/sent",
        "uptime",
        "version",
    ];
    let values = sys_until(&mut later, "every documented topic", |v| {
        names
            .iter()
            .all(|n| v.contains_key(&format!("$SYS/broker/{n}")))
    });
    for n in names {
        let m = &values[&format!("$SYS/broker/{n}")];
        if n != "version" {
            assert!(
                number(&values, n).is_some(),
                "{n} is not a number: {:?}",
                m.text()
            );
        }
    }
}

#[test]
fn sys_message_and_byte_counters_follow_the_traffic() {
    let b = sys_broker();
    let mut sub = Subscriber::subscribed(b.port, &["-q", "1", "-t", "traffic/t"]);
    for i in 0..3 {
        mosquitto_pub(
            b.port,
            &["-q", "1", "-t", "traffic/t", "-m", &format!("m{i}")],
        );
    }
    for _ in 0..3 {
        sub.expect_msg();
    }
    let mut sys = Subscriber::subscribed(b.port, &["-t", "$SYS/broker/+/+"]);
    sys_until(&mut sys, "counters covering 3 messages", |v| {
        number(v, "messages/received").is_some_and(|n| n >= 3)
            && number(v, "messages/sent").is_some_and(|n| n >= 3)
            && number(v, "bytes/received").is_some_and(|n| n > 0)
            && number(v, "bytes/sent").is_some_and(|n| n > 0)
    });
}

// ---- the in-process handle ----

#[test]
fn handle_publish_reaches_mosquitto_sub_at_each_qos() {
    let b = TestBroker::start(|_| {});
    let mut sub = Subscriber::subscribed(b.port, &["-q", "2", "-t", "from-handle/#"]);
    let h = b.handle();
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        b.run(h.publish(
            &format!("from-handle/{i}"),
            Bytes::from(format!("p{i}")),
            qos,
            false,
        ))
        .expect("handle publish");
    }
    for i in 0..3u8 {
        let m = sub.expect_msg();
        assert_eq!(
            (m.topic.clone(), m.text()),
            (format!("from-handle/{i}"), format!("p{i}"))
        );
        assert_eq!(m.qos, i);
        assert!(!m.retain);
    }
}

#[test]
fn handle_publish_many_delivers_a_batch_in_order() {
    // A bad topic cannot get this far: a `Publication` is made from a `TopicName`.
    let b = TestBroker::start(|_| {});
    let mut sub = Subscriber::subscribed(b.port, &["-q", "1", "-t", "many/#"]);
    let h = b.handle();
    let batch: Vec<Publication> = (0..50)
        .map(|i| {
            let topic = TopicName::new(format!("many/{}", i % 3)).expect("a valid name");
            Publication::new(
                &topic,
                Bytes::from(format!("m{i}")),
                QoS::AtLeastOnce,
                false,
            )
        })
        .collect();
    b.run(h.publish_many(batch)).expect("publish_many");
    for i in 0..50 {
        let m = sub.expect_msg();
        assert_eq!(
            (m.topic.clone(), m.text()),
            (format!("many/{}", i % 3), format!("m{i}"))
        );
    }
}

#[test]
fn handle_publish_reaches_a_rumqttc_subscriber_at_each_qos() {
    let b = TestBroker::start(|_| {});
    let h = b.handle();
    let port = b.port;
    let got = b.run(async move {
        let mut opts = MqttOptions::new("rumqttc-sub", "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(opts, 16);
        client
            .subscribe("rq/#", rumqttc::QoS::ExactlyOnce)
            .await
            .expect("queue SUBSCRIBE");
        let mut got = Vec::new();
        let mut published = false;
        while got.len() < 3 {
            match events.poll().await.expect("rumqttc connection") {
                Event::Incoming(Packet::SubAck(_)) if !published => {
                    published = true;
                    let qs = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
                    for (i, qos) in qs.into_iter().enumerate() {
                        h.publish(&format!("rq/{i}"), Bytes::from(format!("r{i}")), qos, false)
                            .await
                            .expect("handle publish");
                    }
                }
                Event::Incoming(Packet::Publish(p)) => got.push((p.topic, p.payload, p.qos)),
                _ => {}
            }
        }
        got
    });
    let expected: Vec<_> = [
        rumqttc::QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, q)| (format!("rq/{i}"), Bytes::from(format!("r{i}")), q))
    .collect();
    assert_eq!(got, expected);
}

#[test]
fn handle_subscription_receives_what_mosquitto_pub_sends() {
    let b = TestBroker::start(|_| {});
    let h = b.handle();
    let mut sub = b
        .run(h.subscribe("ext/#", QoS::ExactlyOnce))
        .expect("handle subscribe");
    for q in 0..3u8 {
        let qs = q.to_string();
        mosquitto_pub(
            b.port,
            &["-q", &qs, "-t", &format!("ext/{q}"), "-m", &format!("x{q}")],
        );
    }
    for q in 0..3u8 {
        let m = b.run(sub.recv()).expect("subscription open");
        assert_eq!(&*m.topic, format!("ext/{q}"));
        assert_eq!(m.payload, Bytes::from(format!("x{q}")));
        assert_eq!(m.qos as u8, q);
        assert!(!m.retain);
    }
}

#[test]
fn handle_publish_resolves_only_after_the_message_is_routed() {
    let b = TestBroker::start(|_| {});
    let h = b.handle();
    let mut sub = b
        .run(h.subscribe("routed/#", QoS::AtLeastOnce))
        .expect("handle subscribe");
    for i in 0..100 {
        let topic = format!("routed/{i}");
        b.run(h.publish(&topic, Bytes::from("x"), QoS::AtLeastOnce, false))
            .expect("handle publish");
        // No waiting: the message must already be in the subscription.
        let ready = b.run(async { tokio::time::timeout(Duration::ZERO, sub.recv()).await });
        let m = ready
            .unwrap_or_else(|_| panic!("publish {i} resolved before it reached the subscriber"))
            .expect("subscription open");
        assert_eq!(&*m.topic, topic);
    }
}

#[test]
fn handle_subscription_gets_matching_retained_messages_first() {
    let b = TestBroker::start(|_| {});
    mosquitto_pub(b.port, &["-r", "-q", "1", "-t", "keep/a", "-m", "stored"]);
    let h = b.handle();
    let mut sub = b
        .run(h.subscribe("keep/+", QoS::AtLeastOnce))
        .expect("handle subscribe");
    let m = b.run(sub.recv()).expect("subscription open");
    assert_eq!((&*m.topic, m.payload.as_ref()), ("keep/a", &b"stored"[..]));
    assert!(m.retain, "retained copy delivered without retain flag");
}

#[test]
fn retained_publish_from_the_handle_reaches_a_later_mosquitto_sub() {
    let b = TestBroker::start(|_| {});
    let h = b.handle();
    b.run(h.publish("keep/h", Bytes::from("from handle"), QoS::AtLeastOnce, true))
        .expect("handle publish");
    let mut sub = Subscriber::subscribed(b.port, &["-q", "1", "-t", "keep/h"]);
    let m = sub.expect_msg();
    assert_eq!(m.text(), "from handle");
    assert!(m.retain);
    assert_eq!(m.qos, 1);
}

#[test]
fn handle_rejects_invalid_topics_and_filters() {
    let b = TestBroker::start(|_| {});
    let h = b.handle();
    for bad in ["a/+", "a/#", ""] {
        let r = b.run(h.publish(bad, Bytes::from("x"), QoS::AtMostOnce, false));
        assert!(
            matches!(r, Err(HandleError::InvalidTopic(_))),
            "publish to {bad:?}: {r:?}"
        );
    }
    for bad in ["a/#/b", "a+", ""] {
        let r = b.run(h.subscribe(bad, QoS::AtMostOnce));
        assert!(
            matches!(r, Err(HandleError::InvalidTopic(_))),
            "subscribe to {bad:?}: {:?}",
            r.map(|_| ())
        );
    }
}

#[test]
fn metrics_count_connected_clients_and_received_messages() {
    let b = TestBroker::start(|_| {});
    let _one = Subscriber::subscribed(b.port, &["-t", "m/t"]);
    let _two = Subscriber::subscribed(b.port, &["-t", "m/t"]);
    mosquitto_pub(b.port, &["-q", "1", "-t", "m/t", "-m", "x"]);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let m = b.metrics();
        if m.clients_connected == 2 && m.messages_received >= 1 && m.messages_sent >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "metrics never settled: {m:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_no_local_subscription_skips_the_handles_own_publishes_and_retained_messages() {
    let b = TestBroker::start(|_| {});
    mosquitto_pub(b.port, &["-r", "-q", "1", "-t", "cmd/kept", "-m", "old"]);
    let h = b.handle();
    let options = SubscribeOptions {
        no_local: true,
        retained: false,
    };
    let mut sub = b
        .run(h.subscribe_with("cmd/#", QoS::AtLeastOnce, options))
        .expect("handle subscribe");
    b.run(h.publish("cmd/own", Bytes::from("mine"), QoS::AtLeastOnce, false))
        .expect("handle publish");
    // A client's message is taken; it is the fence: the handle's own publish,
    // routed before it, would have come first.
    mosquitto_pub(b.port, &["-q", "1", "-t", "cmd/client", "-m", "theirs"]);
    let m = b
        .run(async { tokio::time::timeout(TIMEOUT, sub.recv()).await })
        .expect("the client's message within the timeout")
        .expect("subscription open");
    assert_eq!(&*m.topic, "cmd/client");
    assert_eq!(m.payload, Bytes::from("theirs"));
    assert!(!m.retain);
    // A plain subscription still gets both kinds.
    let mut plain = b
        .run(h.subscribe("cmd/#", QoS::AtLeastOnce))
        .expect("handle subscribe");
    let first = b.run(plain.recv()).expect("subscription open");
    assert_eq!(&*first.topic, "cmd/kept", "retained first");
    b.run(h.publish("cmd/own", Bytes::from("mine"), QoS::AtLeastOnce, false))
        .expect("handle publish");
    let own = b.run(plain.recv()).expect("subscription open");
    assert_eq!(own.payload, Bytes::from("mine"));
}

#[test]
fn a_slow_in_process_subscriber_brakes_a_fast_publisher_instead_of_losing_its_messages() {
    const N: usize = 20_000;
    let b = TestBroker::start(|_| {});
    let h = b.handle();
    let mut sub = b
        .run(h.subscribe("load/#", QoS::AtLeastOnce))
        .expect("handle subscribe");
    // The subscriber takes about 10,000 messages a second; mosquitto_pub -l sends
    // as fast as its 20 in flight allow, several times that.
    let reader = b.spawn(async move {
        let mut got = 0usize;
        while got < N {
            match tokio::time::timeout(Duration::from_secs(10), sub.recv()).await {
                Ok(Some(_)) => got += 1,
                _ => break,
            }
            if got.is_multiple_of(10) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        got
    });
    let lines: String = (0..N).map(|i| format!("m{i}\n")).collect();
    let mut cmd = std::process::Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &b.port.to_string(),
        "-q",
        "1",
        "-t",
        "load/x",
        "-l",
    ]);
    let done = test_support::process::run_with_input(
        "mosquitto_pub",
        cmd,
        lines.as_bytes(),
        Duration::from_secs(120),
    );
    assert!(done.status.success(), "{}", done.stderr);
    let got = b.run(reader).expect("the reader");
    assert_eq!(got, N, "every message reached the in-process subscriber");
    assert_eq!(b.metrics().messages_dropped, 0);
}
