//! broker-lite driven by real clients: Mosquitto's command-line tools and paho-mqtt.

mod real;

use std::time::Duration;

use real::{run_py, TestBroker, TIMEOUT};
use test_support::mosquitto::{mosquitto_pub, Subscriber};

fn broker() -> TestBroker {
    TestBroker::start(|_| {})
}

// ---- mosquitto_pub / mosquitto_sub ----

#[test]
fn delivered_qos_is_the_minimum_of_publish_and_subscription_qos() {
    let b = broker();
    let mut subs: Vec<Subscriber> = ["0", "1", "2"]
        .iter()
        .map(|q| Subscriber::subscribed(b.port, &["-q", q, "-t", "qos/t"]))
        .collect();
    for q in ["0", "1", "2"] {
        mosquitto_pub(
            b.port,
            &["-q", q, "-t", "qos/t", "-m", &format!("sent-at-{q}")],
        );
    }
    for (sub_qos, sub) in subs.iter_mut().enumerate() {
        for pub_qos in 0..3u8 {
            let m = sub.expect_msg();
            assert_eq!(
                m.text(),
                format!("sent-at-{pub_qos}"),
                "order for sub QoS {sub_qos}"
            );
            assert_eq!(
                m.qos,
                pub_qos.min(sub_qos as u8),
                "published at {pub_qos}, subscribed at {sub_qos}"
            );
            assert!(!m.retain);
        }
    }
}

#[test]
fn mosquitto_sub_with_a_count_exits_zero_after_that_many_messages_in_order() {
    let b = broker();
    let mut sub = Subscriber::subscribed(b.port, &["-q", "1", "-t", "count/t", "-C", "3"]);
    for i in 0..3 {
        mosquitto_pub(
            b.port,
            &["-q", "1", "-t", "count/t", "-m", &format!("m{i}")],
        );
    }
    let got: Vec<String> = (0..3).map(|_| sub.expect_msg().text()).collect();
    assert_eq!(got, ["m0", "m1", "m2"]);
    let status = sub.proc_mut().wait_exit(TIMEOUT);
    assert!(status.success(), "{status}\n{}", sub.transcript());
}

#[test]
fn retained_message_reaches_a_later_subscriber_with_retain_set() {
    let b = broker();
    mosquitto_pub(
        b.port,
        &["-q", "1", "-r", "-t", "ret/kept", "-m", "kept value"],
    );
    let mut sub = Subscriber::subscribed(b.port, &["-q", "1", "-t", "ret/#"]);
    let m = sub.expect_msg();
    assert_eq!(
        (m.topic.as_str(), m.text().as_str()),
        ("ret/kept", "kept value")
    );
    assert!(
        m.retain,
        "retained message delivered on subscribe without retain flag"
    );
    assert_eq!(m.qos, 1);
}

#[test]
fn retained_publish_reaches_an_existing_subscriber_with_retain_clear() {
    let b = broker();
    let mut early = Subscriber::subscribed(b.port, &["-t", "ret/live"]);
    mosquitto_pub(b.port, &["-r", "-t", "ret/live", "-m", "v1"]);
    let m = early.expect_msg();
    assert_eq!(m.text(), "v1");
    assert!(!m.retain, "a normal delivery carried retain=1");

    let mut late = Subscriber::subscribed(b.port, &["-t", "ret/live"]);
    let m = late.expect_msg();
    assert_eq!(m.text(), "v1");
    assert!(m.retain, "the stored copy was not sent with retain=1");
}

#[test]
fn empty_retained_publish_deletes_the_retained_message() {
    let b = broker();
    mosquitto_pub(b.port, &["-r", "-t", "ret/gone", "-m", "soon deleted"]);
    mosquitto_pub(b.port, &["-r", "-n", "-t", "ret/gone"]);
    let mut sub = Subscriber::subscribed(b.port, &["-t", "ret/gone", "-t", "ret/marker"]);
    // A retained copy would come right after SUBACK, before anything published later.
    mosquitto_pub(b.port, &["-t", "ret/marker", "-m", "marker"]);
    let (before, marker) = sub.msgs_until_topic("ret/marker");
    assert!(
        before.is_empty(),
        "deleted retained message still sent: {before:?}"
    );
    assert!(!marker.retain);
}

#[test]
fn will_of_a_sigkilled_mosquitto_sub_is_published() {
    let b = broker();
    let mut watcher = Subscriber::subscribed(b.port, &["-q", "1", "-t", "will/#"]);
    let mut doomed = Subscriber::subscribed(
        b.port,
        &[
            "-t",
            "anything",
            "--will-topic",
            "will/doomed",
            "--will-payload",
            "doomed is gone",
            "--will-qos",
            "1",
        ],
    );
    doomed.proc_mut().kill();
    let m = watcher.expect_msg();
    assert_eq!(
        (m.topic.as_str(), m.text().as_str()),
        ("will/doomed", "doomed is gone")
    );
    assert_eq!(m.qos, 1);
}

#[test]
fn will_is_not_published_after_a_clean_disconnect() {
    let b = broker();
    let mut watcher = Subscriber::subscribed(b.port, &["-t", "will/#"]);
    let mut polite = Subscriber::spawn(
        b.port,
        &[
            "-E",
            "-t",
            "anything",
            "--will-topic",
            "will/polite",
            "--will-payload",
            "x",
        ],
    );
    let status = polite.proc_mut().wait_exit(TIMEOUT);
    assert!(status.success(), "{}", polite.transcript());
    mosquitto_pub(b.port, &["-t", "will/marker", "-m", "marker"]);
    let (before, _) = watcher.msgs_until_topic("will/marker");
    assert!(
        before.is_empty(),
        "will published after DISCONNECT: {before:?}"
    );
}

#[test]
fn persistent_mosquitto_sub_session_receives_messages_queued_while_away() {
    let b = broker();
    let id = "persistent-mosq";
    let mut first = Subscriber::spawn(b.port, &["-c", "-i", id, "-q", "1", "-t", "away/t", "-E"]);
    assert_eq!(first.wait_suback(), vec![1]);
    let status = first.proc_mut().wait_exit(TIMEOUT);
    assert!(status.success(), "{}", first.transcript());

    for i in 0..3 {
        mosquitto_pub(
            b.port,
            &["-q", "1", "-t", "away/t", "-m", &format!("queued-{i}")],
        );
    }
    mosquitto_pub(b.port, &["-q", "2", "-t", "away/t", "-m", "queued-q2"]);

    let mut back = Subscriber::spawn(
        b.port,
        &["-c", "-i", id, "-q", "1", "-t", "away/t", "-C", "4"],
    );
    let got: Vec<(String, u8)> = (0..4)
        .map(|_| {
            let m = back.expect_msg();
            (m.text(), m.qos)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("queued-0".to_string(), 1),
            ("queued-1".to_string(), 1),
            ("queued-2".to_string(), 1),
            ("queued-q2".to_string(), 1),
        ]
    );
    assert!(back.proc_mut().wait_exit(TIMEOUT).success());
}

#[test]
fn sys_topics_reach_an_explicit_sys_subscription_but_not_hash_or_plus() {
    let b = TestBroker::start(|c| c.sys_interval_secs = 1);
    let mut everything = Subscriber::subscribed(b.port, &["-t", "#", "-t", "+/broker/uptime"]);
    let mut sys = Subscriber::subscribed(b.port, &["-t", "$SYS/#"]);
    // Two uptime messages: at least one tick happened after both subscriptions.
    for _ in 0..2 {
        let mut m = sys.expect_msg();
        while m.topic != "$SYS/broker/uptime" {
            m = sys.expect_msg();
        }
    }
    mosquitto_pub(b.port, &["-t", "plain/marker", "-m", "marker"]);
    let (before, _) = everything.msgs_until_topic("plain/marker");
    let leaked: Vec<_> = before.iter().filter(|m| m.topic.starts_with('$')).collect();
    assert!(
        leaked.is_empty(),
        "`#` or `+/...` delivered $SYS topics: {leaked:?}"
    );
}

#[test]
fn denied_subscription_gets_suback_0x80_and_mosquitto_sub_gives_up() {
    let b = TestBroker::start(|c| c.deny_subscribe = vec!["secret/#".into()]);
    let mut sub = Subscriber::spawn(b.port, &["-t", "secret/a"]);
    assert_eq!(sub.wait_suback(), vec![0x80]);
    let status = sub.proc_mut().wait_exit(TIMEOUT);

    assert!(
        sub.proc().stderr_text().contains("denied"),
        "mosquitto_sub did not report the refusal ({status})\n{}",
        sub.transcript()
    );
}

#[test]
fn denied_filters_in_a_mixed_subscribe_are_refused_while_the_others_work() {
    let b = TestBroker::start(|c| c.deny_subscribe = vec!["secret/#".into()]);
    let args = [
        "-q",
        "1",
        "-t",
        "secret/#",
        "-t",
        "secret/a/b",
        "-t",
        "secret",
        "-t",
        "open/t",
    ];
    let mut sub = Subscriber::spawn(b.port, &args);
    assert_eq!(sub.wait_suback(), vec![0x80, 0x80, 0x80, 1]);
    mosquitto_pub(b.port, &["-q", "1", "-t", "secret/a/b", "-m", "hidden"]);
    mosquitto_pub(b.port, &["-q", "1", "-t", "open/t", "-m", "visible"]);
    let m = sub.expect_msg();
    assert_eq!((m.topic.as_str(), m.text().as_str()), ("open/t", "visible"));
}

#[test]
fn username_and_password_are_accepted_and_messages_flow() {
    let b = broker();
    let creds = ["-u", "sensor-7", "-P", "hunter2"];
    let mut args = creds.to_vec();
    args.extend(["-q", "1", "-t", "auth/t"]);
    let mut sub = Subscriber::subscribed(b.port, &args);
    let mut args = creds.to_vec();
    args.extend(["-q", "1", "-t", "auth/t", "-m", "with credentials"]);
    mosquitto_pub(b.port, &args);
    assert_eq!(sub.expect_msg().text(), "with credentials");
}

#[test]
fn many_messages_from_separate_publishers_arrive_in_publish_order() {
    let b = broker();
    let mut sub = Subscriber::subscribed(b.port, &["-q", "2", "-t", "lines/t", "-C", "50"]);
    for i in 0..50 {
        mosquitto_pub(
            b.port,
            &["-q", "1", "-t", "lines/t", "-m", &format!("line-{i}")],
        );
    }
    for i in 0..50 {
        let m = sub.expect_msg();
        assert_eq!(m.text(), format!("line-{i}"));
        assert_eq!(m.qos, 1);
    }
    assert!(sub.proc_mut().wait_exit(TIMEOUT).success());
}

// ---- paho-mqtt ----

#[test]
fn paho_qos2_round_trip_delivers_each_message_once_in_order() {
    let b = broker();
    let run = run_py("qos2_roundtrip.py", b.port, &["25"]);
    let received = run.events_named("received");
    assert_eq!(
        received.len(),
        26,
        "25 messages and the marker\n{}",
        run.transcript()
    );
    for (i, e) in received.iter().take(25).enumerate() {
        assert_eq!(e.str("payload"), format!("msg-{i}"));
        assert_eq!(e.int("qos"), 2);
    }
    assert_eq!(run.one("done").int("count"), 25);
}

#[test]
fn paho_persistent_session_keeps_subscriptions_and_queues_messages_while_offline() {
    let b = broker();
    let run = run_py("persistent_session.py", b.port, &[]);
    let connacks: Vec<i64> = run
        .events_named("connack")
        .iter()
        .map(|e| e.int("session_present"))
        .collect();
    assert_eq!(
        connacks,
        [0, 1, 0],
        "session present on each connect\n{}",
        run.transcript()
    );
    let payloads: Vec<String> = run
        .events_named("received")
        .iter()
        .map(|e| e.str("payload"))
        .collect();
    assert_eq!(payloads, ["away-0", "away-1", "away-2", "away-q2", "live"]);
    run.one("done");
}

#[test]
fn paho_overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    let b = broker();
    let run = run_py("overlapping.py", b.port, &[]);
    let ones: Vec<i64> = run
        .events_named("received")
        .iter()
        .filter(|e| e.str("payload") == "one")
        .map(|e| e.int("qos"))
        .collect();
    assert_eq!(
        ones,
        [2, 2],
        "one copy per client at QoS 2\n{}",
        run.transcript()
    );
    run.one("done");
}

#[test]
fn paho_will_is_published_when_the_socket_closes_without_disconnect() {
    let b = broker();
    let run = run_py("will.py", b.port, &[]);
    let wills = run.events_named("received");
    assert_eq!(wills.len(), 1, "{}", run.transcript());
    assert_eq!(wills[0].str("payload"), "crash-gone");
    run.one("done");
}

#[test]
fn paho_client_sending_only_pings_stays_connected_over_several_keep_alive_periods() {
    let b = broker();
    let run = run_py("keepalive.py", b.port, &["4", "3"]);
    let done = run.one("done");
    assert!(done.int("pingresps") >= 2, "{}", run.transcript());
}

#[test]
fn paho_unsubscribe_stops_delivery_on_that_filter_only() {
    let b = broker();
    let run = run_py("unsubscribe.py", b.port, &[]);
    let payloads: Vec<String> = run
        .events_named("received")
        .iter()
        .map(|e| e.str("payload"))
        .collect();
    assert_eq!(payloads, ["before", "marker"], "{}", run.transcript());
}

#[test]
fn idle_mosquitto_sub_with_a_short_keep_alive_is_not_disconnected() {
    let b = broker();
    let mut idle = Subscriber::subscribed(b.port, &["-k", "5", "-t", "idle/t"]);
    // Wait for two PINGREQ/PINGRESP exchanges, then check it still receives.
    for _ in 0..2 {
        idle.proc_mut()
            .expect_line("PINGRESP", Duration::from_secs(15), |l| {
                l.contains("received PINGRESP")
            });
    }
    mosquitto_pub(b.port, &["-t", "idle/t", "-m", "still connected"]);
    assert_eq!(idle.expect_msg().text(), "still connected");
}
