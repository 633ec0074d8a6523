//! The serial source on a pseudo-terminal pair: frames arrive; when the terminal
//! goes away the source waits with back-off (using almost no CPU) and reopens the
//! same path when it comes back.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{connected, cpu_seconds, next_frame, plug, temp_link, wait_until, waiting, WAIT};
use mqgate::frame::FramingConfig;
use mqgate::source::serial::{self, SerialSettings};
use mqgate::source::{Feed, SourceState, SourceStatus};
use tokio::sync::{mpsc, watch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serial_source_reopens_an_unplugged_port_and_waits_without_spinning() {
    let (_dir, link) = temp_link("pty");
    let mut master = plug(&link);

    let status = Arc::new(SourceStatus::new("pty"));
    let (tx, mut rx) = mpsc::channel(64);
    let feed = Feed::new(
        "pty",
        FramingConfig::default().build(),
        status.clone(),
        tx,
        None,
    );
    let mut settings = SerialSettings::new(link.to_str().expect("utf-8 path"), 115_200);
    settings.reopen_initial = Duration::from_millis(50);
    settings.reopen_max = Duration::from_millis(400);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(serial::run(settings, feed, status.clone(), shutdown));

    wait_until("the port to open", || connected(&status)).await;
    master.write_all(b"one\r\ntwo\n").expect("write to the pty");
    assert_eq!(&next_frame(&mut rx).await.bytes[..], b"one");
    assert_eq!(&next_frame(&mut rx).await.bytes[..], b"two");

    // Unplug: the terminal disappears.
    drop(master);
    std::fs::remove_file(&link).expect("remove the link");
    wait_until("the source to notice", || waiting(&status)).await;
    let (cpu_before, wall_before) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let share = (cpu_seconds() - cpu_before) / wall_before.elapsed().as_secs_f64();
    assert!(
        share < 0.10,
        "waiting for the port used {:.0} % of a core",
        share * 100.0
    );

    // Plug it back in: same path, a new terminal.
    let mut master = plug(&link);
    wait_until("the port to reopen", || connected(&status)).await;
    assert!(SourceStatus::get(&status.reopens) >= 1);
    master.write_all(b"three\n").expect("write to the new pty");
    assert_eq!(&next_frame(&mut rx).await.bytes[..], b"three");

    stop.send(true).expect("stop");
    tokio::time::timeout(WAIT, task)
        .await
        .expect("source stops")
        .expect("task");
}

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
    let task = tokio::spawn(serial::run(settings, feed, status.clone(), shutdown));
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
