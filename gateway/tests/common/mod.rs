//! Helpers shared by the serial and modem integration tests: a pseudo-terminal behind a
//! symlink, waiting for a frame or a state with a timeout, and the LoRa captures with
//! the payload the example mapping reads from them.
//!
//! Each test file compiles this module on its own and uses only part of it.

#![allow(dead_code)]

pub(crate) mod modem_sim;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use test_support::Scratch;

use mqgate::frame::Frame;
use mqgate::message::Message;
use mqgate::source::modem::engine::{self, Sink};
use mqgate::source::modem::transmit::{Radio, Transmitter};
use mqgate::source::modem::Protocol;
use mqgate::source::serial::SerialSettings;
use mqgate::source::{CommandLink, TxOutcome, TxRequest};
use mqgate::source::{SourceState, SourceStatus};
use tokio::sync::{mpsc, watch};

pub(crate) use test_support::pty::plug;

/// How long any one wait in these tests may take.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A fresh path for a device symlink in a scratch folder; keep the folder's guard
/// alive for as long as the link is used.
pub(crate) fn temp_link(name: &str) -> (Scratch, PathBuf) {
    let dir = Scratch::new(&format!("mqgate-{name}"));
    let link = dir.path().join("ttyModem");
    (dir, link)
}

/// The next frame, or a failed test after [`WAIT`].
pub(crate) async fn next_frame(rx: &mut mpsc::Receiver<Frame>) -> Frame {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a frame within the timeout")
        .expect("the source is running")
}

/// Poll `cond` until it holds, or fail the test after [`WAIT`] naming `what`.
pub(crate) async fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    test_support::wait_until(what, WAIT, cond).await
}

pub(crate) fn connected(status: &SourceStatus) -> bool {
    matches!(status.state(), SourceState::Connected { .. })
}

pub(crate) fn waiting(status: &SourceStatus) -> bool {
    matches!(status.state(), SourceState::Waiting { .. })
}

/// A modem sink named `source`, with its status and the receiving end of its frames.
pub(crate) fn sink(
    source: &str,
    capacity: usize,
) -> (Sink, Arc<SourceStatus>, mpsc::Receiver<Frame>) {
    let status = Arc::new(SourceStatus::new(source));
    let (tx, rx) = mpsc::channel(capacity);
    let sink = Sink {
        source: Arc::from(source),
        tx,
        status: status.clone(),
    };
    (sink, status, rx)
}

/// A modem source running on a serial port.
pub(crate) struct Running {
    pub status: Arc<SourceStatus>,
    pub rx: mpsc::Receiver<Frame>,
    pub stop: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
    /// The port's path.
    pub path: String,
}

/// `protocol` driving the modem on `serial`'s port, as the source `name`.
pub(crate) fn run_modem(
    name: &str,
    serial: SerialSettings,
    protocol: impl Protocol + 'static,
) -> Running {
    run_with(name, serial, protocol, Transmitter::none(name))
}

/// Like [`run_modem`], taking commands to transmit with `radio` through the link
/// returned.
pub(crate) fn run_modem_linked(
    name: &str,
    serial: SerialSettings,
    protocol: impl Protocol + 'static,
    radio: Radio,
) -> (Running, CommandLink) {
    let (link, device) = mqgate::source::link();
    let tx = Transmitter::new(name, device, radio);
    (run_with(name, serial, protocol, tx), link)
}

fn run_with(
    name: &str,
    serial: SerialSettings,
    protocol: impl Protocol + 'static,
    tx: Transmitter,
) -> Running {
    let (sink, status, rx) = sink(name, 64);
    let path = serial.path.clone();
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(engine::run_serial(serial, protocol, sink, tx, shutdown));
    Running {
        status,
        rx,
        stop,
        task,
        path,
    }
}

/// Send `parts` through `link` as the command path does: wait until the modem is
/// set up, and while it answers `NotReady`, wait and send again. How it went, or
/// a failed test after [`WAIT`].
pub(crate) async fn transmit(link: &mut CommandLink, parts: Vec<Vec<u8>>) -> TxOutcome {
    let parts: Vec<mqgate::message::Part> = parts
        .into_iter()
        .map(|p| mqgate::message::Part::bytes(p.into()))
        .collect();
    let attempts = async {
        loop {
            link.ready.wait_for(|r| *r).await.expect("the source runs");
            let (reply, answer) = tokio::sync::oneshot::channel();
            let request = TxRequest {
                parts: parts.clone(),
                reply,
            };
            link.tx
                .send(request)
                .await
                .expect("the source takes commands");
            match answer.await.expect("an answer") {
                TxOutcome::NotReady(_) => continue,
                outcome => return outcome,
            }
        }
    };
    tokio::time::timeout(WAIT, attempts)
        .await
        .expect("an answer within the timeout")
}

/// The RAK3172 source's settings for the port behind `link`, with waits short
/// enough for tests.
pub(crate) fn rak3172_settings(link: &Path) -> mqgate::source::modem::rak3172::Rak3172Settings {
    let path = link.to_str().expect("utf-8 path").to_string();
    let mut settings = mqgate::source::modem::rak3172::Rak3172Settings::new();
    settings.p2p.frequency_hz = 869_525_000;
    settings.p2p.spreading_factor = 9;
    // Long enough for a simulator thread on a loaded machine to answer.
    settings.reply_timeout = Duration::from_secs(1);
    settings.reset_wait = Duration::from_millis(100);
    settings.reinit_initial = Duration::from_millis(50);
    settings.reinit_max = Duration::from_millis(400);
    settings.port = Some(Arc::from(path.as_str()));
    settings
}

/// The RAK3172 source on the port behind `link`, with waits short enough for tests.
pub(crate) fn run_rak3172(link: &Path) -> Running {
    let path = link.to_str().expect("utf-8 path");
    run_modem(
        "rak",
        quick_reopen(path, 115_200, Duration::from_millis(400)),
        mqgate::source::modem::rak3172::Rak3172::new(rak3172_settings(link)),
    )
}

/// Settings for the port at `path` that reopen it after 50 ms at first, backing off
/// to `reopen_max`.
pub(crate) fn quick_reopen(path: &str, baud: u32, reopen_max: Duration) -> SerialSettings {
    let mut serial = SerialSettings::new(path, baud);
    serial.reopen_initial = Duration::from_millis(50);
    serial.reopen_max = reopen_max;
    serial
}

/// The workspace root (the captures and examples live there).
pub(crate) fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Cayenne LPP payload of the captures' packet `i`: temperature, humidity and
/// analog input.
pub(crate) fn lpp(i: u8) -> Vec<u8> {
    let t = (210 + 5 * i16::from(i)).to_be_bytes();
    let a = (330 - i16::from(i)).to_be_bytes();
    vec![
        1,
        0x67,
        t[0],
        t[1],
        2,
        0x68,
        100 + 2 * i,
        3,
        0x02,
        a[0],
        a[1],
    ]
}

/// Every frame `protocol` makes of the capture `tests/captures/<capture>`, played
/// once as fast as possible, and the status of the source that played it.
pub(crate) async fn replay_capture(
    capture: &str,
    protocol: impl Protocol + 'static,
) -> (Vec<Frame>, Arc<SourceStatus>) {
    let chunks =
        mqgate::pipeline::build::load_chunks(&workspace().join("tests/captures").join(capture))
            .expect("the capture loads");
    let (sink, status, mut rx) = sink("cap", 64);
    let (_stop, shutdown) = watch::channel(false);
    tokio::spawn(engine::run_replay(
        chunks,
        mqgate::source::replay::Speed::Fast,
        false,
        protocol,
        sink,
        shutdown,
    ));
    let mut frames = Vec::new();
    while let Some(f) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the replay ends")
    {
        frames.push(f);
    }
    (frames, status)
}

/// Every message the demo configuration's source `source_id` makes of the capture
/// `tests/captures/<capture>` through its mapping.
pub(crate) async fn map_capture(source_id: &str, capture: &str) -> Vec<Message> {
    let config = mqgate::config::GatewayConfig::load(&workspace().join("examples/demo.yaml"))
        .expect("the demo config loads");
    let chunks =
        mqgate::pipeline::build::load_chunks(&workspace().join("tests/captures").join(capture))
            .expect("the capture loads");
    let over = mqgate::pipeline::ReplayOverride {
        chunks,
        speed: mqgate::source::replay::Speed::Fast,
    };
    let (tap, mut messages) = mpsc::channel(256);
    let (_stop, shutdown) = watch::channel(false);
    let _running =
        mqgate::pipeline::start(&config, Some(source_id), Some(over), Some(tap), shutdown)
            .await
            .expect("the pipeline starts");
    let mut got = Vec::new();
    while let Some(m) = tokio::time::timeout(WAIT, messages.recv())
        .await
        .expect("the replay ends")
    {
        got.push(m);
    }
    got
}

/// The three readings of each packet, in order, under `lora-p2p/<source_id>/...`,
/// with the values [`lpp`] encodes.
pub(crate) fn assert_lpp_readings(got: &[Message], source_id: &str) {
    assert_eq!(got.len(), 18, "three readings in each of six packets");
    for (i, readings) in (0u8..).zip(got.chunks(3)) {
        let topics: Vec<&str> = readings.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                format!("lora-p2p/{source_id}/1/temperature"),
                format!("lora-p2p/{source_id}/2/relative_humidity"),
                format!("lora-p2p/{source_id}/3/analog_input"),
            ]
        );
        let value = |m: &Message| -> f64 {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("JSON payload");
            v["value"].as_f64().expect("a number")
        };
        let i = f64::from(i);
        assert!((value(&readings[0]) - (21.0 + 0.5 * i)).abs() < 1e-9);
        assert!((value(&readings[1]) - (50.0 + i)).abs() < 1e-9);
        assert!((value(&readings[2]) - (3.30 - 0.01 * i)).abs() < 1e-9);
    }
}
