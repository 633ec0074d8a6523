//! What the fault tests share: Mosquitto as the upstream broker (restartable on a
//! fixed port), a persistent-session subscriber counting sequence numbers, and a
//! gateway file for `mqgate run` reading numbered lines from a pseudo-terminal.

// Each test file uses its own part of this.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use mqgate_tests::feeder::{wait_port_open, FeedPlan, Feeder, SeqGateway};
use mqgate_tests::mqgate::start_mqgate_run;
use mqgate_tests::relay::Relay;
use mqgate_tests::seqsub::{SeqOptions, SeqStats, SeqSubscriber};
use mqgate_tests::upstream::Upstream;
use serialport::TTYPort;
use test_support::process::{Proc, Stream};
use test_support::pty::plug;
use test_support::scratch::Scratch;

pub(crate) const WAIT: Duration = Duration::from_secs(20);
/// Lines per second the feeder writes in the streaming tests.
pub(crate) const RATE: f64 = 500.0;

/// Mosquitto, the subscriber (already subscribed) and a gateway file, for one test.
pub(crate) struct Rig {
    pub dir: Scratch,
    pub up: Upstream,
    pub relay: Option<Relay>,
    pub spec: SeqGateway,
    pub config: PathBuf,
    pub master: Option<TTYPort>,
    pub sub: SeqSubscriber,
}

impl Rig {
    /// The gateway publishes at `qos` (straight to Mosquitto, or through a relay)
    /// with `store_yaml` appended to its file; the subscriber listens at `qos`.
    pub(crate) fn new(label: &str, qos: u8, via_relay: bool, store_yaml: &str) -> Rig {
        let dir = Scratch::new(label);
        let up = Upstream::start(dir.path());
        let relay = via_relay.then(|| Relay::start(up.port()));
        let link = dir.path().join("ttyFEED");
        let master = plug(&link);
        let mut spec = SeqGateway::new(relay.as_ref().map_or(up.port(), Relay::port), &link);
        spec.qos = qos;
        spec.client_id = format!("{label}-gw");
        spec.extra_yaml = store_yaml.to_string();
        let config = spec.write(&dir);
        let mut options = SeqOptions::new(&format!("{label}-sub"), &spec.filter());
        options.qos = qos.max(1);
        let sub = SeqSubscriber::start(up.port(), options);
        Rig {
            dir,
            up,
            relay,
            spec,
            config,
            master: Some(master),
            sub,
        }
    }

    /// Starts `mqgate run` and waits until it reads the serial port.
    pub(crate) fn start_gateway(&self) -> Proc {
        let gw = start_mqgate_run(&self.config);
        wait_port_open(&gw, WAIT);
        gw
    }

    /// Starts writing `count` lines at `per_second` (the gateway must have the port open).
    pub(crate) fn feed(&mut self, count: u64, per_second: f64) -> Feeder {
        let master = self.master.take().expect("one feeder per rig");
        Feeder::start(master, FeedPlan::new(count, per_second))
    }

    pub(crate) fn store_file(&self) -> PathBuf {
        SeqGateway::state_dir(&self.dir).join("messages.db")
    }

    /// The text the gateway logs when it loses (or cannot reach) the upstream broker.
    pub(crate) fn upstream_error_marker(&self) -> String {
        format!("upstream 127.0.0.1:{}:", self.spec.upstream_port)
    }
}

/// Lines of the gateway's stderr containing `marker`.
pub(crate) fn count_lines(gw: &Proc, marker: &str) -> usize {
    gw.count_lines(Stream::Stderr, &[marker])
}

/// Waits until the gateway has logged at least `n` lines containing `marker`.
pub(crate) fn wait_lines(gw: &Proc, marker: &str, n: usize) {
    gw.wait_until(&format!("{n} line(s) with {marker:?}"), WAIT, |lines| {
        let c = lines
            .iter()
            .filter(|l| l.stream == Stream::Stderr && l.text.contains(marker))
            .count();
        (c >= n).then_some(())
    });
}

/// Stops the gateway with SIGTERM and checks that it exits 0.
pub(crate) fn stop_gateway(mut gw: Proc) {
    gw.signal(libc::SIGTERM);
    let exit = gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "output:\n{}", gw.transcript());
}

/// No number of `0..n` is missing; at QoS 2 none came twice from the publisher's side.
pub(crate) fn assert_complete(stats: &SeqStats, n: u64, qos: u8) {
    assert_eq!(stats.missing_runs(0..n), [], "{}", stats.summary());
    assert_eq!(stats.bad_payloads, 0, "{}", stats.summary());
    if qos == 2 {
        assert_eq!(
            stats.fresh_duplicates(),
            0,
            "{:?} {}",
            stats.duplicated(),
            stats.summary()
        );
    }
}
