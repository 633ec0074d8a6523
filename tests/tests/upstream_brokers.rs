//! The upstream client against four real brokers: Mosquitto and broker-lite, which
//! keep persistent sessions across a restart, and aedes and amqtt, which keep them
//! in memory only. `mqgate run` reads numbered lines from a pseudo-terminal and
//! publishes them through a relay to the broker; a persistent-session subscriber on
//! the broker counts them.
//!
//! Each test, at QoS 1 or 2:
//! - live: a fast feed arrives whole over one connection;
//! - backlog: with the broker stopped, a backlog goes into the store, and drains
//!   once the broker is back on the same port, without the broker cutting the
//!   gateway off (issue 14: aedes closes the connection when more than 1,000 QoS 2
//!   messages await PUBREL, and a drain sent up to 1,024);
//! - mid-drain restart: the broker restarts while the backlog drains. The relay
//!   stalls first, and fences published straight to the broker show that the
//!   subscriber has everything the broker took, so that a broker that forgets
//!   sessions loses nothing it had acknowledged;
//! - at the end every number arrived; at QoS 2 none twice from the gateway where
//!   the broker kept the session, and no more twice than the gateway reports as
//!   possible duplicates where it did not.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mqgate_tests::brokers::{BrokerKind, PeerBroker};
use mqgate_tests::feeder::{
    fence, wait_port_open, wait_upstream_connects, FeedPlan, Feeder, SeqGateway,
};
use mqgate_tests::http::{api_status, status_addr, wait_status};
use mqgate_tests::mqgate::start_mqgate_run;
use mqgate_tests::relay::Relay;
use mqgate_tests::seqsub::{SeqOptions, SeqStats, SeqSubscriber};
use serde_json::Value;
use test_support::http::get;
use test_support::mosquitto::mosquitto_pub;
use test_support::process::Proc;
use test_support::pty::plug;
use test_support::scratch::Scratch;

/// Waits for one step: a connection, a fence, a few thousand messages.
const WAIT: Duration = Duration::from_secs(30);
/// Waits for a whole backlog to be written or to drain (amqtt is the slowest).
const DRAIN_WAIT: Duration = Duration::from_secs(180);
/// Lines of the live feed, and how fast they are written.
const LIVE: u64 = 5_000;
const LIVE_RATE: f64 = 5_000.0;
/// Lines written while the broker is down.
const BACKLOG: u64 = 20_000;
const BACKLOG_RATE: f64 = 5_000.0;
/// Messages of the backlog that arrive before the broker restarts mid-drain.
const RESTART_AFTER: u64 = 3_000;
/// Fences published straight to the broker, at most, before a restart.
const MAX_FENCE_ROUNDS: u64 = 200;

/// The upstream output's counters on the status API.
#[derive(Debug, Clone, Copy)]
struct Figures {
    connects: u64,
    published: u64,
    resent: u64,
    in_flight: u64,
    /// Messages in flight allowed now.
    window: Option<u64>,
    /// `upstream.max_inflight`.
    max_inflight: Option<u64>,
    /// Connections the broker closed right after a burst.
    cutoffs: Option<u64>,
    /// Messages sent again after the broker had lost the session.
    possible_duplicates: Option<u64>,
}

impl Figures {
    fn of(status: &Value) -> Figures {
        let up = status["outputs"]
            .as_array()
            .and_then(|outputs| outputs.iter().find(|o| o["name"] == "upstream"))
            .unwrap_or_else(|| panic!("no upstream output in /api/status: {status}"));
        let number = |key: &str| up[key].as_u64();
        let must = |key: &str| number(key).unwrap_or_else(|| panic!("no {key} in {up}"));
        Figures {
            connects: must("connects"),
            published: must("published"),
            resent: must("resent"),
            in_flight: must("in_flight"),
            window: number("window"),
            max_inflight: number("max_inflight"),
            cutoffs: number("cutoffs"),
            possible_duplicates: number("possible_duplicates"),
        }
    }

    fn read(addr: SocketAddr) -> Figures {
        Figures::of(&api_status(addr, WAIT))
    }
}

/// A count the gateway may not report yet, as text.
fn shown(n: Option<u64>) -> String {
    n.map_or_else(|| "(not reported)".to_string(), |n| n.to_string())
}

/// The upstream output's entry in `/api/status`.
fn upstream_of(status: &Value) -> &Value {
    status["outputs"]
        .as_array()
        .and_then(|outputs| outputs.iter().find(|o| o["name"] == "upstream"))
        .unwrap_or_else(|| panic!("no upstream output in /api/status: {status}"))
}

fn store_appended(status: &Value) -> u64 {
    status["store"]["appended"].as_u64().unwrap_or(0)
}

/// The broker, the relay in front of it, the subscriber on the broker, the gateway.
struct Rig {
    label: String,
    qos: u8,
    broker: PeerBroker,
    relay: Relay,
    sub: SeqSubscriber,
    gw: Proc,
    status: SocketAddr,
    /// The next fence number (1 is the live feed's, through the gateway).
    next_fence: u64,
    _dir: Scratch,
}

impl Rig {
    /// Starts everything; returns with the gateway connected and the terminal's
    /// master side to feed.
    fn start(kind: BrokerKind, qos: u8) -> (Rig, serialport::TTYPort) {
        Rig::start_with(kind, qos, None)
    }

    /// `start` with `upstream.max_inflight` set (`None`: the default).
    fn start_with(
        kind: BrokerKind,
        qos: u8,
        max_inflight: Option<u32>,
    ) -> (Rig, serialport::TTYPort) {
        let label = format!("{}-q{qos}", kind.name());
        let dir = Scratch::new(&label);
        let broker = PeerBroker::start(kind, dir.path());
        let relay = Relay::start(broker.port());
        let link = dir.path().join("ttyFEED");
        let master = plug(&link);
        let mut spec = SeqGateway::new(relay.port(), &link);
        spec.qos = qos;
        spec.client_id = format!("{label}-gw");
        spec.max_inflight = max_inflight;
        let config = spec.write(&dir);
        let mut options = SeqOptions::new(&format!("{label}-sub"), &spec.filter());
        options.qos = qos;
        let sub = SeqSubscriber::start(broker.port(), options);
        let gw = start_mqgate_run(&config);
        wait_port_open(&gw, WAIT);
        wait_upstream_connects(&gw, 1, WAIT);
        let status = status_addr(&gw, WAIT);
        let rig = Rig {
            label,
            qos,
            broker,
            relay,
            sub,
            gw,
            status,
            next_fence: 2,
            _dir: dir,
        };
        (rig, master)
    }

    /// Brings the broker back on its port while the relay holds the gateway back,
    /// and lets the gateway through once the subscriber is subscribed again: a
    /// broker that lost its sessions would otherwise drop what arrives before.
    fn restart_broker(&mut self) {
        self.relay.stall();
        let connects = self.sub.stats().connects;
        self.broker.restart();
        self.sub.wait_subscribed_after(connects, WAIT);
        self.relay.resume();
    }

    /// Publishes fences straight to the broker, at the test's QoS, one after the
    /// other, until one brings no message from the gateway along: then the
    /// subscriber has everything the broker took from the gateway. One fence is not
    /// always enough: amqtt (and aedes) work through each client's input on their
    /// own, so a fence from another client can overtake messages the broker has
    /// acknowledged to the gateway and not yet forwarded. Returns the stats and the
    /// rounds it took.
    fn settle_at_the_broker(&mut self) -> (SeqStats, u64) {
        let mut before = self.sub.stats().unique;
        for round in 1..=MAX_FENCE_ROUNDS {
            let k = self.next_fence;
            self.next_fence += 1;
            mosquitto_pub(
                self.broker.port(),
                &[
                    "-i",
                    &format!("{}-fence", self.label),
                    "-q",
                    &self.qos.to_string(),
                    "-t",
                    "seq/fence",
                    "-m",
                    &format!("{{\"fence\":{k}}}"),
                ],
            );
            let stats =
                self.sub
                    .wait_until(&format!("fence {k} published to the broker"), WAIT, |s| {
                        s.fence >= k
                    });
            if stats.unique == before {
                return (stats, round);
            }
            before = stats.unique;
        }
        panic!(
            "{}: messages kept arriving across {MAX_FENCE_ROUNDS} fences with the relay stalled\n{}",
            self.label,
            self.context()
        );
    }

    fn context(&self) -> String {
        format!(
            "{}\n--- broker ---\n{}\n--- gateway ---\n{}",
            self.sub.stats().summary(),
            tail(&self.broker.transcript(), 40),
            tail(&self.gw.transcript(), 40)
        )
    }
}

/// A broker that keeps sessions saves them on SIGTERM and must end cleanly; the
/// others only have to end (amqtt may cut its shutdown short, see its launcher).
fn assert_stopped(rig: &Rig, status: std::process::ExitStatus) {
    assert!(
        status.success() || !rig.broker.keeps_sessions(),
        "{} stops cleanly on SIGTERM: {status:?}\n{}",
        rig.label,
        rig.context()
    );
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn live_outage_and_restart(kind: BrokerKind, qos: u8) {
    let (mut rig, master) = Rig::start(kind, qos);
    let label = rig.label.clone();

    // a. Live: a fast feed over one connection.
    let live_plan = FeedPlan::new(LIVE, LIVE_RATE);
    let started = Instant::now();
    let mut master = Feeder::start(master, live_plan.clone()).finish(WAIT);
    let written_in = started.elapsed();
    rig.sub.wait_for_all(LIVE, WAIT);
    let live = fence(&mut master, &live_plan, &rig.sub, 1, WAIT);
    let live_in = started.elapsed();
    let after_live = Figures::read(rig.status);
    eprintln!(
        "{label} live: {LIVE} lines written in {written_in:.2?}, all arrived in {live_in:.2?}; \
         connects {}, cut-offs {}, window {} of {}, duplicates {}",
        after_live.connects,
        shown(after_live.cutoffs),
        shown(after_live.window),
        shown(after_live.max_inflight),
        live.duplicates,
    );
    assert_eq!(live.missing_runs(0..LIVE), [], "{}", rig.context());
    assert_eq!(
        (after_live.connects, rig.relay.counts().accepted),
        (1, 1),
        "{label}: the broker cut the gateway off during a live feed\n{}",
        rig.context()
    );
    if qos == 2 {
        assert_eq!(
            live.duplicates,
            0,
            "{:?}\n{}",
            live.duplicated(),
            rig.context()
        );
    }

    // b. Backlog: the broker goes away, the feed goes into the store.
    let appended = store_appended(&api_status(rig.status, WAIT));
    let stopped = rig.broker.stop();
    assert_stopped(&rig, stopped);
    wait_status(rig.status, "the gateway to lose the broker", WAIT, |s| {
        s["outputs"].as_array().is_some_and(|o| {
            o.iter()
                .any(|o| o["name"] == "upstream" && o["connected"] == false)
        })
    });
    // Down: the error says why, and when.
    wait_status(rig.status, "the upstream error with its time", WAIT, |s| {
        let up = upstream_of(s);
        up["last_error"].is_string() && up["last_error_at_ms"].as_i64().is_some_and(|t| t > 0)
    });
    let backlog_plan = FeedPlan {
        first: LIVE,
        ..FeedPlan::new(BACKLOG, BACKLOG_RATE)
    };
    let mut master = Feeder::start(master, backlog_plan.clone()).finish(DRAIN_WAIT);
    wait_status(rig.status, "the backlog in the store", WAIT, |s| {
        store_appended(s) >= appended + BACKLOG
    });
    rig.restart_broker();
    let back = Instant::now();

    // c. Mid-drain restart, with nothing the broker took still on its way.
    let total = LIVE + BACKLOG;
    rig.sub.wait_until(
        &format!("{RESTART_AFTER} of the backlog"),
        DRAIN_WAIT,
        |s| s.unique >= LIVE + RESTART_AFTER,
    );
    rig.relay.stall();
    let (before_restart, fence_rounds) = rig.settle_at_the_broker();
    if kind.keeps_sessions() {
        let stopped = rig.broker.stop();
        assert_stopped(&rig, stopped);
    } else {
        rig.broker.kill();
    }
    rig.restart_broker();

    // d. Everything arrives; duplicates only where the gateway says they may be.
    let give_up = Instant::now() + DRAIN_WAIT;
    let all = rig
        .sub
        .wait_until("every number, or the deadline", DRAIN_WAIT + WAIT, |s| {
            s.has_all(0..total) || Instant::now() >= give_up
        });
    let drained_in = back.elapsed();
    assert_eq!(all.missing_runs(0..total), [], "{}", rig.context());
    let stats = fence(&mut master, &backlog_plan, &rig.sub, rig.next_fence, WAIT);
    let end = Figures::read(rig.status);
    // aedes says why it closed a connection.
    let inflight_cutoffs = rig
        .broker
        .transcript()
        .matches("maxInflightInbound exceeded")
        .count();
    eprintln!(
        "{label} backlog: {BACKLOG} drained in {drained_in:.2?} with a restart after {} arrived \
         ({} in all, {fence_rounds} fence round(s)); reconnects {}, resends {}, possible duplicates {}, \
         cut-offs {}, window {} of {}, published {}, in flight {}; duplicates seen {} ({} \
         with DUP, {} QoS 2 resends answered without counting); subscriber \
         sessions resumed {} lost {}; the broker logged {inflight_cutoffs} maxInflightInbound \
         cut-off(s)",
        before_restart.unique.saturating_sub(LIVE),
        before_restart.unique,
        end.connects - 1,
        end.resent,
        shown(end.possible_duplicates),
        shown(end.cutoffs),
        shown(end.window),
        shown(end.max_inflight),
        end.published,
        end.in_flight,
        stats.duplicates,
        stats.resent_duplicates,
        stats.redeliveries,
        stats.sessions_resumed,
        stats.sessions_lost,
    );
    assert_eq!(stats.bad_payloads, 0, "{}", stats.summary());
    // Issue 14: a backlog sent with up to 1,024 QoS 2 messages in flight made aedes
    // close the connection again and again, and drop the session each time.
    assert_eq!(
        inflight_cutoffs,
        0,
        "{label} cut the gateway off for too many QoS 2 messages awaiting PUBREL\n{}",
        rig.context()
    );
    assert!(
        end.connects >= 3,
        "the gateway reconnected after each restart: {end:?}"
    );
    // Duplicates the gateway caused. A broker that keeps sessions also resends to
    // the subscriber after its own restart, with DUP set: those are its own. A
    // broker without sessions has nothing to resend after a restart, and aedes
    // passes the publisher's DUP flag on (against [MQTT-3.3.1-3]): there every
    // duplicate counts.
    let from_gateway = if kind.keeps_sessions() {
        stats.fresh_duplicates()
    } else {
        stats.duplicates
    };
    // Only a resend can send a message twice.
    assert!(
        from_gateway <= end.resent,
        "{label}: {from_gateway} duplicates but only {} resends: {:?}\n{}",
        end.resent,
        stats.duplicated(),
        rig.context()
    );
    if qos == 2 {
        if kind.keeps_sessions() {
            assert_eq!(
                from_gateway,
                0,
                "{label} kept the session: {:?}\n{}",
                stats.duplicated(),
                rig.context()
            );
        } else {
            let possible = end
                .possible_duplicates
                .expect("the status reports possible_duplicates");
            assert!(
                from_gateway <= possible,
                "{label}: {from_gateway} duplicates, the gateway reported {possible} possible: \
                 {:?}\n{}",
                stats.duplicated(),
                rig.context()
            );
        }
    }
    // The counters the report needs.
    for (name, value) in [
        ("window", end.window),
        ("max_inflight", end.max_inflight),
        ("cutoffs", end.cutoffs),
        ("possible_duplicates", end.possible_duplicates),
    ] {
        assert!(value.is_some(), "the status reports {name}: {end:?}");
    }
    // The error of the outage said why the gateway could not connect; connected
    // again, it is gone.
    wait_status(
        rig.status,
        "a connected upstream without an error",
        WAIT,
        |s| {
            let up = upstream_of(s);
            up["connected"] == true
                && up["last_error"].is_null()
                && up["last_error_at_ms"].is_null()
        },
    );
    rig.gw.signal(libc::SIGTERM);
    let exit = rig.gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "{}", rig.context());
}

#[test]
fn mosquitto_qos_1_every_message_arrives_live_after_an_outage_and_across_a_restart_mid_drain() {
    live_outage_and_restart(BrokerKind::Mosquitto, 1);
}

#[test]
fn mosquitto_qos_2_every_message_arrives_once_live_after_an_outage_and_across_a_restart_mid_drain()
{
    live_outage_and_restart(BrokerKind::Mosquitto, 2);
}

#[test]
fn broker_lite_qos_1_every_message_arrives_live_after_an_outage_and_across_a_restart_mid_drain() {
    live_outage_and_restart(BrokerKind::BrokerLite, 1);
}

#[test]
fn broker_lite_qos_2_every_message_arrives_once_live_after_an_outage_and_across_a_restart_mid_drain(
) {
    live_outage_and_restart(BrokerKind::BrokerLite, 2);
}

#[test]
fn aedes_qos_1_a_fast_feed_is_not_cut_off_and_every_message_arrives_across_restarts_that_lose_the_session(
) {
    live_outage_and_restart(BrokerKind::Aedes, 1);
}

#[test]
fn aedes_qos_2_a_fast_feed_is_not_cut_off_and_only_reported_possible_duplicates_arrive_twice_across_restarts(
) {
    live_outage_and_restart(BrokerKind::Aedes, 2);
}

#[test]
fn amqtt_qos_1_a_fast_feed_is_not_cut_off_and_every_message_arrives_across_restarts_that_lose_the_session(
) {
    live_outage_and_restart(BrokerKind::Amqtt, 1);
}

#[test]
fn amqtt_qos_2_a_fast_feed_is_not_cut_off_and_only_reported_possible_duplicates_arrive_twice_across_restarts(
) {
    live_outage_and_restart(BrokerKind::Amqtt, 2);
}

/// The gateway's log line when it halves the window.
const HALVED: &str = "appears to limit the messages a client has in flight";
/// Lines of the backlog in `a_window_above_what_the_broker_takes_...`.
const OVER_LIMIT_BACKLOG: u64 = 6_000;

/// `upstream.max_inflight: 2000` against aedes, which closes the connection (and
/// drops the session) once 1,000 QoS 2 messages await PUBREL. Draining a backlog,
/// the gateway is cut off twice, halves its window once to 1,000, says so once in
/// its log, on `/api/status` and in `/metrics`, and from then on drains without
/// another cut-off; every message arrives, twice only where the gateway counted a
/// possible duplicate.
#[test]
fn aedes_qos_2_a_window_above_its_limit_is_halved_after_two_cutoffs_and_every_message_arrives() {
    let (mut rig, master) = Rig::start_with(BrokerKind::Aedes, 2, Some(2000));
    let label = rig.label.clone();
    let appended = store_appended(&api_status(rig.status, WAIT));
    let stopped = rig.broker.stop();
    assert_stopped(&rig, stopped);
    wait_status(rig.status, "the gateway to lose the broker", WAIT, |s| {
        s["outputs"].as_array().is_some_and(|o| {
            o.iter()
                .any(|o| o["name"] == "upstream" && o["connected"] == false)
        })
    });
    let plan = FeedPlan::new(OVER_LIMIT_BACKLOG, BACKLOG_RATE);
    let mut master = Feeder::start(master, plan.clone()).finish(DRAIN_WAIT);
    wait_status(rig.status, "the backlog in the store", WAIT, |s| {
        store_appended(s) >= appended + OVER_LIMIT_BACKLOG
    });
    let back = Instant::now();
    rig.restart_broker();
    rig.sub.wait_for_all(OVER_LIMIT_BACKLOG, DRAIN_WAIT);
    let drained_in = back.elapsed();
    let stats = fence(&mut master, &plan, &rig.sub, 1, WAIT);
    let end = Figures::read(rig.status);
    let broker_cutoffs = rig
        .broker
        .transcript()
        .matches("maxInflightInbound exceeded")
        .count();
    eprintln!(
        "{label} window: {OVER_LIMIT_BACKLOG} drained in {drained_in:.2?}; connects {}, \
         cut-offs {}, window {} of {}, resends {}, possible duplicates {}, duplicates seen {}; \
         the broker logged {broker_cutoffs} maxInflightInbound cut-off(s)",
        end.connects,
        shown(end.cutoffs),
        shown(end.window),
        shown(end.max_inflight),
        end.resent,
        shown(end.possible_duplicates),
        stats.duplicates,
    );
    assert_eq!(
        stats.missing_runs(0..OVER_LIMIT_BACKLOG),
        [],
        "{}",
        rig.context()
    );
    assert_eq!(
        (end.window, end.max_inflight, end.cutoffs),
        (Some(1000), Some(2000), Some(2)),
        "{}",
        rig.context()
    );
    assert!(
        broker_cutoffs >= 1,
        "aedes said why it closed: {}",
        rig.context()
    );
    // One connect before the outage, one after, one after each cut-off.
    assert_eq!(end.connects, 4, "{}", rig.context());
    // No fast reconnect loop: a connection cut at once does not reset the delay,
    // so the second reconnect after a cut-off waits longer than the first, or
    // both wait about the longest delay (5 s, less up to a quarter of jitter)
    // when the outage before had already grown it that far.
    let at = connect_times(&rig.gw);
    assert_eq!(at.len(), 4, "{}", rig.context());
    let gap = |a: usize, b: usize| (at[b] - at[a]).rem_euclid(86_400.0);
    let (first, second) = (gap(1, 2), gap(2, 3));
    let at_the_cap = |gap: f64| gap >= 3.75;
    assert!(
        first >= 0.375 && (second > first || (at_the_cap(first) && at_the_cap(second))),
        "reconnects after the cut-offs came {first:.3} s and {second:.3} s apart\n{}",
        rig.context()
    );
    let said = rig
        .gw
        .count_lines(test_support::process::Stream::Stderr, &[HALVED]);
    assert_eq!(said, 1, "{}", rig.context());
    rig.gw.wait_for_line(
        test_support::process::Stream::Stderr,
        &[
            HALVED,
            "at most 1000 in flight from now on (was 2000; upstream.max_inflight: 2000)",
        ],
        WAIT,
    );
    let possible = end.possible_duplicates.expect("possible_duplicates");
    assert!(
        stats.duplicates <= possible && possible > 0,
        "{} duplicates, {possible} possible: {:?}",
        stats.duplicates,
        stats.duplicated()
    );
    let metrics = get(rig.status, "/metrics", WAIT).body;
    for line in [
        "mqgate_output_window{output=\"upstream\"} 1000",
        "mqgate_output_max_inflight{output=\"upstream\"} 2000",
        "mqgate_output_cutoffs_total{output=\"upstream\"} 2",
        &format!("mqgate_output_possible_duplicates_total{{output=\"upstream\"}} {possible}"),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }
    rig.gw.signal(libc::SIGTERM);
    let exit = rig.gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "{}", rig.context());
}

/// When the gateway logged each `connected upstream`, in seconds of the day (its
/// log lines start with an RFC 3339 time in UTC when stderr is not a terminal).
fn connect_times(gw: &Proc) -> Vec<f64> {
    gw.stream(test_support::process::Stream::Stderr)
        .iter()
        .filter(|l| l.contains("connected upstream"))
        .map(|l| {
            let time = l
                .split_whitespace()
                .next()
                .and_then(|t| t.split_once('T'))
                .and_then(|(_, t)| t.strip_suffix('Z'))
                .unwrap_or_else(|| panic!("no time at the start of {l:?}"));
            time.split(':')
                .map(|part| part.parse::<f64>().expect("a number"))
                .fold(0.0, |acc, part| acc * 60.0 + part)
        })
        .collect()
}
