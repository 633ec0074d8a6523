//! Fault tests of the upstream side, with real processes: Mosquitto stopped or
//! killed mid-stream and started again, the network to it stalled until the
//! gateway's keep-alive notices. No QoS 1/2 message may be lost, nor a QoS 2
//! message duplicated by the gateway.

mod faults_common;

use std::time::{Duration, Instant};

use faults_common::{assert_complete, stop_gateway, wait_lines, Rig, RATE, WAIT};
use mqgate_tests::feeder::{fence, wait_upstream_connects};

/// How the upstream broker goes away in `broker_outage_mid_stream`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outage {
    /// SIGTERM: Mosquitto saves its database and ends.
    Stop,
    /// SIGKILL, at a moment when the gateway has messages in flight and Mosquitto has
    /// saved what it knows (see `kill_upstream_with_the_gateway_in_flight`).
    Kill,
}

/// Streams `n` lines; after a few hundred arrived the upstream broker goes away for
/// a couple of seconds while the feed goes on, then comes back on the same port.
fn broker_outage_mid_stream(label: &str, qos: u8, outage: Outage) {
    let n = 2000;
    let mut rig = Rig::new(label, qos, outage == Outage::Kill, "");
    let gw = rig.start_gateway();
    wait_upstream_connects(&gw, 1, WAIT);
    let feeder = rig.feed(n, RATE);
    rig.sub
        .wait_until("300 messages before the outage", WAIT, |s| s.unique >= 300);

    let written_at_outage = feeder.written();
    match outage {
        Outage::Stop => {
            let status = rig.up.stop();
            assert!(status.success(), "Mosquitto stops cleanly: {status:?}");
            wait_lines(&gw, &rig.upstream_error_marker(), 1);
            // The broker stays down for a while; the feed goes on into the store.
            std::thread::sleep(Duration::from_secs(2));
        }
        Outage::Kill => {
            kill_upstream_with_the_gateway_in_flight(&mut rig);
            feeder.wait_written(written_at_outage + 500, WAIT);
        }
    }
    let written_while_down = feeder.written() - written_at_outage;
    assert!(
        written_while_down >= 500,
        "the feed went on: {written_while_down}"
    );
    rig.up.restart();
    if let Some(relay) = &rig.relay {
        relay.resume();
    }
    wait_upstream_connects(&gw, 2, WAIT);
    // The backlog: what was written before the reconnect and had not arrived.
    let reconnected = Instant::now();
    let written = feeder.written();
    let arrived = rig.sub.stats().unique;
    rig.sub
        .wait_until("the backlog to drain", WAIT, |s| s.has_all(0..written));
    let drained_in = reconnected.elapsed();
    let plan = feeder.plan().clone();
    let mut master = feeder.finish(WAIT);
    rig.sub.wait_for_all(n, WAIT);
    let stats = fence(&mut master, &plan, &rig.sub, 1, WAIT);
    eprintln!(
        "{label}: {written_while_down} lines written while the broker was down; backlog of {} \
         drained in {drained_in:?}; {} duplicates ({} resent by Mosquitto with DUP)",
        written.saturating_sub(arrived),
        stats.duplicates,
        stats.resent_duplicates,
    );
    assert_complete(&stats, n, qos);
    assert_eq!(stats.by_qos[usize::from(qos)], stats.arrivals.len() as u64);
    stop_gateway(gw);
}

/// Kills Mosquitto with SIGKILL while the gateway has messages in flight to it.
///
/// Mosquitto itself rolls back to its last save on `kill -9`; killed at a random
/// moment it forgets QoS 2 exchanges with the subscriber and reuses their packet
/// ids for new messages, which the subscriber (rightly, [MQTT-4.3.3-2]) takes for
/// resends and drops. To test the gateway and not that, the network between the
/// gateway and Mosquitto stalls first: the gateway goes on sending into the relay
/// (its PUBLISHes, PUBRELs and Mosquitto's PUBRECs wait there, in every stage of
/// the QoS 2 exchange); once the subscriber has everything Mosquitto forwarded,
/// Mosquitto saves and is killed. What waited in the relay is lost with the
/// connection, as on a real network.
fn kill_upstream_with_the_gateway_in_flight(rig: &mut Rig) {
    let relay = rig
        .relay
        .as_ref()
        .expect("the gateway goes through a relay");
    relay.stall();
    let stalled = relay.counts();
    rig.sub.wait_quiet(Duration::from_millis(300), WAIT);
    rig.up.save();
    let status = rig.up.kill();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let c = relay.counts();
    assert_eq!(
        (c.up, c.down),
        (stalled.up, stalled.down),
        "nothing crossed"
    );
}

#[test]
fn no_qos_1_message_is_lost_when_the_upstream_broker_stops_mid_stream_and_starts_again() {
    broker_outage_mid_stream("stop-q1", 1, Outage::Stop);
}

#[test]
fn every_qos_2_message_arrives_once_when_the_upstream_broker_stops_mid_stream_and_starts_again() {
    broker_outage_mid_stream("stop-q2", 2, Outage::Stop);
}

#[test]
fn every_qos_2_message_arrives_once_when_the_upstream_broker_is_killed_mid_stream() {
    broker_outage_mid_stream("kill-up-q2", 2, Outage::Kill);
}

#[test]
fn every_qos_2_message_arrives_once_when_the_network_stalls_until_keep_alive_notices() {
    let n = 1500;
    let mut rig = Rig::new("stall-q2", 2, true, "");
    let gw = rig.start_gateway();
    wait_upstream_connects(&gw, 1, WAIT);
    let feeder = rig.feed(n, RATE);
    rig.sub
        .wait_until("300 messages before the stall", WAIT, |s| s.unique >= 300);
    let relay = rig.relay.as_ref().expect("a relay");
    relay.stall();
    let stalled = relay.counts();
    let stalled_at = Instant::now();
    // The gateway's keep-alive (2 s) notices the silence: no PINGRESP.
    wait_lines(&gw, "(keep-alive)", 1);
    let noticed_in = stalled_at.elapsed();
    let c = relay.counts();
    assert_eq!(
        (c.up, c.down),
        (stalled.up, stalled.down),
        "nothing crossed"
    );
    relay.resume();
    wait_upstream_connects(&gw, 2, WAIT);
    let plan = feeder.plan().clone();
    let mut master = feeder.finish(WAIT);
    rig.sub.wait_for_all(n, WAIT);
    let stats = fence(&mut master, &plan, &rig.sub, 1, WAIT);
    eprintln!(
        "stall-q2: keep-alive noticed the stall after {noticed_in:?}; {} duplicates, {} \
         resends answered without counting; relay accepted {} connections",
        stats.duplicates,
        stats.redeliveries,
        relay.counts().accepted
    );
    assert_complete(&stats, n, 2);
    // Mosquitto never went away: not even it had a reason to send a message twice.
    assert_eq!(stats.duplicates, 0, "{}", stats.summary());
    assert_eq!(stats.out_of_order, 0, "{}", stats.summary());
    stop_gateway(gw);
}
