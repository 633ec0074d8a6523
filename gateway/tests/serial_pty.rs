//! The serial source on a pseudo-terminal pair: frames arrive; when the terminal
//! goes away the source waits with back-off (using almost no CPU) and reopens the
//! same path when it comes back.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{wait_until, waiting, WAIT};
use mqgate::frame::FramingConfig;
use mqgate::source::serial::{self, SerialSettings};
use mqgate::source::{DeviceSide, Feed, SourceState, SourceStatus};
use tokio::sync::{mpsc, watch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_port_is_reported_with_its_path_and_retried() {
    let path = std::env::temp_dir().join(format!("mqgate-no-such-port-{}", std::process::id()));
    let status = Arc::new(SourceStatus::new("missing"));
    let (tx, _rx) = mpsc::channel(1);
    let feed = Feed::new(
        "missing",
        FramingConfig::default().build(),
        status.clone(),
        tx,
        None,
    );
    let mut settings = SerialSettings::new(path.to_str().expect("utf-8"), 9600);
    settings.reopen_initial = Duration::from_millis(20);
    let (stop, shutdown) = watch::channel(false);
    let writer = serial::Writer::new(FramingConfig::default(), DeviceSide::none());
    let task = tokio::spawn(serial::run(
        settings,
        feed,
        writer,
        status.clone(),
        shutdown,
    ));
    wait_until("the source to report the missing port", || waiting(&status)).await;
    match status.state() {
        SourceState::Waiting { last_error, .. } => assert!(
            last_error.contains("mqgate-no-such-port"),
            "the error names the port: {last_error}"
        ),
        other => panic!("expected Waiting, got {other:?}"),
    }
    stop.send(true).expect("stop");
    tokio::time::timeout(WAIT, task)
        .await
        .expect("source stops")
        .expect("task");
}
