//! Self-tests of the fault-test harness: the TCP relay, the restartable Mosquitto,
//! the sequence subscriber and the feeder, each against real processes.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mqgate_tests::feeder::{
    fence, wait_port_open, wait_upstream_connects, FeedPlan, Feeder, SeqGateway,
};
use mqgate_tests::mqgate::start_mqgate_run;
use mqgate_tests::relay::Relay;
use mqgate_tests::seqsub::{SeqOptions, SeqStats, SeqSubscriber};
use mqgate_tests::upstream::Upstream;
use mqtt_proto::codec::QoS;
use test_support::mosquitto::Mosquitto;
use test_support::pty::plug;
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(20);

/// Publishes one message per line with `mosquitto_pub -l` straight to the broker.
fn publish_lines(port: u16, topic: &str, qos: u8, lines: &[String]) {
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(["-q", &qos.to_string(), "-l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mosquitto_pub");
    let mut stdin = child.stdin.take().expect("piped stdin");
    for l in lines {
        writeln!(stdin, "{l}").expect("write to mosquitto_pub");
    }
    drop(stdin);
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "mosquitto_pub failed: {status:?}");
            return;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("mosquitto_pub did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn seq_lines(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| format!("{{\"seq\":{i}}}")).collect()
}

fn assert_exactly_once(stats: &SeqStats, n: u64) {
    assert_eq!(
        stats.missing(0..n),
        Vec::<u64>::new(),
        "{}",
        stats.summary()
    );
    assert_eq!(stats.unique, n, "{}", stats.summary());
    assert_eq!(
        stats.duplicates,
        0,
        "{:?} {}",
        stats.duplicated(),
        stats.summary()
    );
    assert_eq!(stats.bad_payloads, 0, "{}", stats.summary());
}

#[test]
fn sequence_stats_count_unique_duplicate_out_of_order_and_missing_numbers() {
    let mut s = SeqStats::default();
    for payload in [
        r#"{"n":0}"#,
        r#"{"n":2,"x":"y"}"#,
        r#"{"n":1}"#,
        r#"{"n":2}"#,
        r#"{"seq":3}"#,
        "not json",
        r#"{"id":"feed","fence":2}"#,
        r#"{"n":5}"#,
        r#"{"id":"feed","fence":1}"#,
    ] {
        s.record(payload.as_bytes(), "n", QoS::ExactlyOnce, false);
    }
    assert_eq!(s.unique, 4);
    assert_eq!(s.duplicates, 1);
    assert_eq!(s.out_of_order, 1, "1 arrived after 2");
    assert_eq!(
        s.bad_payloads, 2,
        "a payload without `n` and one that is not JSON"
    );
    assert_eq!(s.max(), Some(5));
    assert_eq!(s.missing(0..7), [3, 4, 6]);
    assert_eq!(s.missing_runs(0..7), [3..5, 6..7]);
    assert_eq!(s.duplicated(), [(2, 2)]);
    assert_eq!(s.arrivals, [0, 2, 1, 2, 5]);
    assert_eq!(s.by_qos, [0, 0, 7]);
    assert_eq!(s.fence, 2, "fences count only as fences, the highest kept");
    assert!(s.has_all(0..3) && !s.has_all(0..4) && s.has_all(5..6));
    assert_eq!(s.contiguous, 3);
}

#[test]
fn the_relay_forwards_both_ways_and_counts_the_bytes() {
    let broker = Mosquitto::start();
    let relay = Relay::start(broker.port);
    let sub = SeqSubscriber::start(relay.port(), SeqOptions::new("relay-fwd", "seq/#"));
    let before = relay.counts();
    assert!(
        before.up > 0 && before.down > 0,
        "CONNECT and CONNACK crossed: {before:?}"
    );
    assert_eq!((before.accepted, before.open), (1, 1));

    publish_lines(broker.port, "seq/a", 2, &seq_lines(0..50));
    let stats = sub.wait_for_all(50, WAIT);
    assert_exactly_once(&stats, 50);
    let after = relay.counts();
    // 50 PUBLISH (each over its 12 payload bytes) down; PUBREC and PUBCOMP up.
    assert!(after.down - before.down > 50 * 12, "{before:?} {after:?}");
    assert!(after.up - before.up >= 50 * 8, "{before:?} {after:?}");
    assert_eq!(after.accepted, 1);
}

#[test]
fn a_stalled_relay_forwards_nothing_until_resumed_and_keep_alive_notices_the_stall() {
    let broker = Mosquitto::start();
    let relay = Relay::start(broker.port);
    let mut options = SeqOptions::new("relay-stall", "seq/#");
    options.keep_alive_secs = 1;
    let sub = SeqSubscriber::start(relay.port(), options);

    relay.stall();
    let stalled_at = relay.counts();
    publish_lines(broker.port, "seq/a", 2, &seq_lines(0..20));
    // The subscriber's keep-alive notices: no PINGRESP, then connection attempts
    // whose CONNACK never comes.
    relay.wait_until("a reconnection attempt", WAIT, |c| c.accepted >= 2);
    let stats = sub.wait_until("the subscriber to notice", WAIT, |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("PINGRESP"))
    });
    assert_eq!(stats.unique, 0, "nothing crossed a stalled relay");
    let c = relay.counts();
    assert_eq!((c.up, c.down), (stalled_at.up, stalled_at.down));

    relay.resume();
    let stats = sub.wait_for_all(20, WAIT);
    assert_exactly_once(&stats, 20);
    assert_eq!(stats.sessions_lost, 0, "{}", stats.summary());
    assert!(relay.counts().down > stalled_at.down);
}

#[test]
fn a_cut_closes_every_connection_and_the_subscriber_comes_back_with_its_session() {
    let broker = Mosquitto::start();
    let relay = Relay::start(broker.port);
    let sub = SeqSubscriber::start(relay.port(), SeqOptions::new("relay-cut", "seq/#"));
    publish_lines(broker.port, "seq/a", 1, &seq_lines(0..10));
    sub.wait_for_all(10, WAIT);

    assert_eq!(relay.cut(), 1);
    relay.wait_until("a new connection", WAIT, |c| c.accepted == 2 && c.open == 1);
    sub.wait_until("a resumed session", WAIT, |s| {
        s.connected && s.sessions_resumed == 1
    });
    publish_lines(broker.port, "seq/a", 1, &seq_lines(10..20));
    let stats = sub.wait_for_all(20, WAIT);
    assert_exactly_once(&stats, 20);
    assert_eq!(stats.sessions_lost, 0);
}

#[test]
fn the_upstream_keeps_a_session_and_its_queued_messages_across_a_graceful_restart() {
    let dir = Scratch::new("up-restart");
    let mut up = Upstream::start(dir.path());
    let port = up.port();
    let sub = SeqSubscriber::start(port, SeqOptions::new("up-restart", "seq/#"));
    sub.pause();
    publish_lines(port, "seq/a", 2, &seq_lines(0..50));

    let status = up.stop();
    assert!(
        status.success(),
        "SIGTERM ends Mosquitto cleanly: {status:?}"
    );
    assert!(!up.is_running());
    assert!(up.data_dir().join("mosquitto.db").is_file());
    up.restart();
    assert_eq!(up.port(), port);
    assert_eq!(up.starts(), 2);

    sub.resume();
    let stats = sub.wait_for_all(50, WAIT);
    assert_exactly_once(&stats, 50);
    assert_eq!(
        (stats.sessions_resumed, stats.sessions_lost),
        (1, 0),
        "{}",
        stats.summary()
    );
    assert_eq!(stats.out_of_order, 0);
}

#[test]
fn the_upstream_comes_back_on_the_same_port_with_its_sessions_and_saved_queue_after_kill_9() {
    let dir = Scratch::new("up-kill");
    let mut up = Upstream::start(dir.path());
    let port = up.port();
    let first_pid = up.pid();
    let sub = SeqSubscriber::start(port, SeqOptions::new("up-kill", "seq/#"));
    publish_lines(port, "seq/a", 2, &seq_lines(0..20));
    sub.wait_for_all(20, WAIT);
    // Ten more wait in the offline session; the database holds them once saved.
    sub.pause();
    publish_lines(port, "seq/a", 2, &seq_lines(20..30));
    up.save();

    let status = up.kill();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    up.restart();
    assert_eq!(up.port(), port);
    assert_ne!(up.pid(), first_pid);
    sub.resume();
    sub.wait_until("a resumed session", WAIT, |s| {
        s.connected && s.connects >= 2
    });
    publish_lines(port, "seq/a", 2, &seq_lines(30..40));
    let stats = sub.wait_for_all(40, WAIT);
    // What Mosquitto delivered since its last save it may send again, with DUP.
    assert_eq!(stats.unique, 40);
    assert_eq!(stats.fresh_duplicates(), 0, "{}", stats.summary());
    assert_eq!(
        (stats.sessions_resumed, stats.sessions_lost),
        (1, 0),
        "{}",
        stats.summary()
    );
}

/// Feeds `n` numbered lines through `mqgate run` to the upstream at `qos`, the
/// gateway connected straight to Mosquitto or through a relay.
fn feed_through_mqgate(label: &str, qos: u8, n: u64, via_relay: bool) {
    let dir = Scratch::new(label);
    let up = Upstream::start(dir.path());
    let relay = via_relay.then(|| Relay::start(up.port()));
    let gateway_port = relay.as_ref().map_or(up.port(), Relay::port);
    let link = dir.path().join("ttyFEED");
    let master = plug(&link);
    let mut spec = SeqGateway::new(gateway_port, &link);
    spec.qos = qos;
    spec.topic_prefix = "site/".to_string();
    let config = spec.write(&dir);
    let mut options = SeqOptions::new(&format!("{label}-sub"), &spec.filter());
    options.qos = qos;
    let sub = SeqSubscriber::start(up.port(), options);

    let mut gw = start_mqgate_run(&config);
    wait_port_open(&gw, WAIT);
    wait_upstream_connects(&gw, 1, WAIT);
    let feeder = Feeder::start(master, FeedPlan::new(n, 200.0));
    sub.wait_for_all(n, WAIT);
    let plan = feeder.plan().clone();
    let mut master = feeder.finish(WAIT);
    // Nothing more comes: a late duplicate would arrive before the fence.
    let stats = fence(&mut master, &plan, &sub, 1, WAIT);
    assert_exactly_once(&stats, n);
    assert_eq!(stats.out_of_order, 0, "{}", stats.summary());
    assert_eq!(stats.by_qos[usize::from(qos)], n, "{}", stats.summary());
    if let Some(relay) = &relay {
        let c = relay.counts();
        assert!(
            c.up > n * 20,
            "the gateway published through the relay: {c:?}"
        );
    }

    gw.signal(libc::SIGTERM);
    let exit = gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "output:\n{}", gw.transcript());
}

#[test]
fn every_number_fed_through_mqgate_reaches_mosquitto_exactly_once_at_qos_2() {
    feed_through_mqgate("feed-q2", 2, 300, false);
}

#[test]
fn every_number_fed_through_mqgate_and_the_relay_reaches_mosquitto_at_qos_1() {
    feed_through_mqgate("feed-q1-relay", 1, 200, true);
}

#[test]
fn the_feeder_goes_on_writing_while_the_gateway_is_killed_and_the_next_one_reads_the_rest() {
    let dir = Scratch::new("feed-kill");
    let up = Upstream::start(dir.path());
    let link = dir.path().join("ttyFEED");
    let master = plug(&link);
    let spec = SeqGateway::new(up.port(), &link);
    let config = spec.write(&dir);
    let sub = SeqSubscriber::start(up.port(), SeqOptions::new("feed-kill-sub", &spec.filter()));
    let mut gw = start_mqgate_run(&config);
    wait_port_open(&gw, WAIT);
    wait_upstream_connects(&gw, 1, WAIT);
    let feeder = Feeder::start(master, FeedPlan::new(300, 200.0));
    feeder.wait_written(100, WAIT);

    // Nothing in flight inside the gateway when it dies: what was written arrived.
    feeder.pause();
    let written = feeder.written();
    sub.wait_for_all(written, WAIT);
    gw.signal(libc::SIGKILL);
    gw.wait_exit(WAIT);
    // Lines written now wait in the terminal (or are retried) for the next reader.
    feeder.resume();
    feeder.wait_written(written + 20, WAIT);
    let gw = start_mqgate_run(&config);
    wait_port_open(&gw, WAIT);
    let plan = feeder.plan().clone();
    let mut master = feeder.finish(WAIT);
    sub.wait_for_all(300, WAIT);
    let stats = fence(&mut master, &plan, &sub, 1, WAIT);
    assert_exactly_once(&stats, 300);
    assert_eq!(stats.out_of_order, 0, "{}", stats.summary());
    drop(gw);
}
