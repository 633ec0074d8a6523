//! Tests that check a source waits without spinning, by the CPU time the whole
//! test process uses while it idles. They are the only tests in this binary and
//! run one at a time, so no other test's work counts in a reading.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::modem_sim::{Rak3172Model, Rn2483Model, Sim};
use common::{
    connected, next_frame, plug, quick_reopen, run_modem, run_rak3172, temp_link, wait_until,
    waiting, Running, WAIT,
};
use mqgate::frame::FramingConfig;
use mqgate::source::modem::rn2483::{Rn2483, Rn2483Settings};
use mqgate::source::serial::{self, SerialSettings};
use mqgate::source::{DeviceSide, Feed, SourceState, SourceStatus};
use test_support::cpu::cpu_seconds;
use tokio::sync::{mpsc, watch, Mutex, MutexGuard};

/// Held for the whole of each test: the harness runs tests in parallel.
async fn one_at_a_time() -> MutexGuard<'static, ()> {
    static ALONE: Mutex<()> = Mutex::const_new(());
    ALONE.lock().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serial_source_reopens_an_unplugged_port_and_waits_without_spinning() {
    let _alone = one_at_a_time().await;
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
    let writer = serial::Writer::new(FramingConfig::default(), DeviceSide::none());
    let task = tokio::spawn(serial::run(
        settings,
        feed,
        writer,
        status.clone(),
        shutdown,
    ));

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
async fn the_rn2483_source_delivers_packets_with_snr_and_rssi_and_recovers_from_every_fault() {
    let _alone = one_at_a_time().await;
    let (_dir, link) = temp_link("rn2483");
    let sim = Sim::start(&link, Rn2483Model::new());
    let path = link.to_str().expect("utf-8 path");
    let mut settings = Rn2483Settings::new();
    // Long enough for a simulator thread on a loaded machine to answer.
    settings.reply_timeout = Duration::from_secs(1);
    settings.reinit_initial = Duration::from_millis(50);
    settings.reinit_max = Duration::from_millis(400);
    settings.port = Some(Arc::from(path));
    let Running {
        status,
        mut rx,
        stop,
        task,
        ..
    } = run_modem(
        "lora",
        quick_reopen(path, 57_600, Duration::from_millis(400)),
        Rn2483::new(settings),
    );

    wait_until("the modem to be set up", || connected(&status)).await;
    {
        let log = sim.commands.lock().expect("log").clone();
        assert_eq!(&log[..2], ["sys reset", "mac pause"]);
        assert!(log.contains(&"radio set wdt 0".to_string()));
        assert_eq!(log.last().map(String::as_str), Some("radio rx 0"));
    }

    // Packets, each with its own signal figures.
    for i in 0..3u8 {
        sim.packet(&[0xA0, i], -90 - i32::from(i), 5 - i32::from(i));
    }
    for i in 0..3u8 {
        let f = next_frame(&mut rx).await;
        assert_eq!(&f.bytes[..], &[0xA0, i]);
        assert_eq!(f.meta.rssi, Some(-90.0 - f64::from(i)));
        assert_eq!(f.meta.snr, Some(5.0 - f64::from(i)));
        assert_eq!(f.meta.frequency_hz, Some(868_100_000));
        assert_eq!(f.meta.datarate.as_deref(), Some("SF7BW125"));
        assert_eq!(f.meta.port.as_deref(), Some(path));
        assert_eq!(&*f.source, "lora");
    }

    // The modem hangs: the SNR query and two resets go unanswered. First wait until
    // the receiver is armed again after the third packet, so that the mute falls on
    // the next packet's SNR query and not on that `radio rx 0`.
    wait_until("the receiver to be re-armed", || {
        sim.count("radio rx 0") >= 4
    })
    .await;
    let resets = sim.count("sys reset");
    sim.mute(3);
    sim.packet(b"hung", -100, -1);
    let f = next_frame(&mut rx).await;
    assert_eq!(&f.bytes[..], b"hung", "the packet is kept without its SNR");
    assert_eq!(f.meta.snr, None);
    wait_until("the error to show", || {
        matches!(status.state(), SourceState::Waiting { last_error, .. } if last_error.contains("radio get snr"))
    })
    .await;
    wait_until("the modem to be set up again", || connected(&status)).await;
    assert_eq!(
        sim.count("sys reset") - resets,
        3,
        "two unanswered resets, then one answered"
    );
    for i in 0..3u8 {
        sim.packet(&[0xB0, i], -70, 8);
    }
    for i in 0..3u8 {
        let f = next_frame(&mut rx).await;
        assert_eq!(&f.bytes[..], &[0xB0, i]);
        assert_eq!((f.meta.rssi, f.meta.snr), (Some(-70.0), Some(8.0)));
    }

    // Garbage on the line, and an overlong line: counted, not fatal.
    let bad_before = SourceStatus::get(&status.bad_frames);
    sim.raw(b"\x00\xff#*garbage*\r\n");
    sim.raw(&[b'x'; 3000]);
    sim.raw(b"\r\n");
    sim.packet(b"after garbage", -60, 9);
    assert_eq!(&next_frame(&mut rx).await.bytes[..], b"after garbage");
    assert_eq!(SourceStatus::get(&status.bad_frames) - bad_before, 2);

    // A reboot mid-stream: set up again, without a reset.
    let pauses = sim.count("mac pause");
    let arms = sim.count("radio rx 0");
    sim.reboot();
    wait_until("a new set-up", || sim.count("mac pause") == pauses + 1).await;
    // A real modem hears a packet only while receiving; the re-arm counted above may
    // still be the one after the last packet, so the radio sends until it is heard.
    wait_until("the receiver to be armed", || {
        sim.count("radio rx 0") > arms
    })
    .await;
    let mut heard = None;
    for _ in 0..20 {
        sim.packet(b"after reboot", -61, 7);
        if let Ok(Some(f)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            heard = Some(f);
            break;
        }
    }
    let f = heard.expect("the packet after the reboot is heard");
    assert_eq!(&f.bytes[..], b"after reboot");
    assert_eq!(f.meta.snr, Some(7.0));

    // Idle, the source waits without spinning.
    let cpu = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_seconds() - cpu;
    assert!(used < 0.2, "{used} s of CPU in 1 s idle");
    // No frame from nothing: the next one is the packet sent after the idle second.
    sim.packet(b"after idling", -62, 6);
    assert_eq!(
        &next_frame(&mut rx).await.bytes[..],
        b"after idling",
        "no frame from nothing"
    );

    stop.send(true).expect("shutdown");
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the source stops")
        .expect("no panic");
    assert_eq!(status.state(), SourceState::Finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_rn2483_is_reopened_and_set_up_again() {
    let _alone = one_at_a_time().await;
    let (_dir, link) = temp_link("rn2483-unplug");
    let sim = Sim::start(&link, Rn2483Model::new());
    let path = link.to_str().expect("utf-8 path");
    // `running` keeps the stop sender (the source runs) to the end of the test.
    let running = run_modem(
        "plug",
        quick_reopen(path, 57_600, Duration::from_millis(200)),
        Rn2483::new(Rn2483Settings::new()),
    );
    let (status, mut rx) = (running.status, running.rx);
    wait_until("the modem to be set up", || connected(&status)).await;
    sim.packet(b"before", -70, 2);
    assert_eq!(&next_frame(&mut rx).await.bytes[..], b"before");

    drop(sim);
    wait_until("the source to notice", || waiting(&status)).await;
    let cpu = cpu_seconds();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let used = cpu_seconds() - cpu;
    assert!(used < 0.2, "{used} s of CPU in 0.5 s unplugged");

    let sim = Sim::start(&link, Rn2483Model::new());
    wait_until("the modem to be set up again", || connected(&status)).await;
    assert_eq!(SourceStatus::get(&status.reopens), 1);
    assert_eq!(sim.count("sys reset"), 1, "a fresh modem is reset first");
    sim.packet(b"after", -71, 3);
    let f = next_frame(&mut rx).await;
    assert_eq!((&f.bytes[..], f.meta.snr), (&b"after"[..], Some(3.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rak3172_source_switches_to_p2p_delivers_packets_and_recovers_from_every_fault() {
    let _alone = one_at_a_time().await;
    let (_dir, link) = temp_link("rak3172");
    let sim = Sim::start(&link, Rak3172Model::new(1));
    let mut r = run_rak3172(&link);

    wait_until("the module to be set up", || connected(&r.status)).await;
    {
        let log = sim.commands.lock().expect("log").clone();
        assert_eq!(
            log,
            [
                "AT+PRECV=0",
                "AT+NWM=?",
                "AT+NWM=0",
                "AT+P2P=869525000:9:125:0:8:14",
                "AT+PRECV=65534"
            ]
        );
    }

    for i in 0..3u8 {
        sim.packet(&[0xC0, i], -40 - i32::from(i), 10 - i32::from(i));
    }
    for i in 0..3u8 {
        let f = next_frame(&mut r.rx).await;
        assert_eq!(&f.bytes[..], &[0xC0, i]);
        assert_eq!(f.meta.rssi, Some(-40.0 - f64::from(i)));
        assert_eq!(f.meta.snr, Some(10.0 - f64::from(i)));
        assert_eq!(f.meta.frequency_hz, Some(869_525_000));
        assert_eq!(f.meta.datarate.as_deref(), Some("SF9BW125"));
        assert_eq!(f.meta.port.as_deref(), Some(r.path.as_str()));
    }

    // The receive window closes: it is opened again.
    let arms = sim.count("AT+PRECV=65534");
    sim.rx_timeout();
    wait_until("the receiver to be reopened", || {
        sim.count("AT+PRECV=65534") == arms + 1
    })
    .await;
    sim.packet(b"after timeout", -50, 3);
    assert_eq!(&next_frame(&mut r.rx).await.bytes[..], b"after timeout");

    // The module hangs: the next command and the restart go unanswered.
    let restarts = sim.count("ATZ");
    sim.mute(2);
    sim.rx_timeout();
    wait_until("the error to show", || {
        matches!(r.status.state(), SourceState::Waiting { last_error, .. } if last_error.contains("AT+PRECV=65534"))
    })
    .await;
    wait_until("the module to be set up again", || connected(&r.status)).await;
    assert!(sim.count("ATZ") > restarts, "the module was restarted");
    for i in 0..3u8 {
        sim.packet(&[0xD0, i], -45, 6);
    }
    for i in 0..3u8 {
        let f = next_frame(&mut r.rx).await;
        assert_eq!(&f.bytes[..], &[0xD0, i]);
        assert_eq!((f.meta.rssi, f.meta.snr), (Some(-45.0), Some(6.0)));
    }

    // Garbage: counted, not fatal.
    let bad_before = SourceStatus::get(&r.status.bad_frames);
    sim.raw(b"\x00\xfe@@noise@@\r\n+EVT:RXP2P:-1:x:zz\r\n");
    sim.packet(b"after garbage", -46, 5);
    assert_eq!(&next_frame(&mut r.rx).await.bytes[..], b"after garbage");
    assert_eq!(SourceStatus::get(&r.status.bad_frames) - bad_before, 2);

    // A reboot mid-stream: set up again.
    let stops = sim.count("AT+PRECV=0");
    let arms = sim.count("AT+PRECV=65534");
    sim.reboot();
    wait_until("a new set-up", || sim.count("AT+PRECV=0") == stops + 1).await;
    // A real module receives only once told to: wait for the set-up to end with it.
    wait_until("the module to receive", || {
        connected(&r.status) && sim.count("AT+PRECV=65534") > arms
    })
    .await;
    sim.packet(b"after reboot", -47, 4);
    assert_eq!(&next_frame(&mut r.rx).await.bytes[..], b"after reboot");

    let cpu = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_seconds() - cpu;
    assert!(used < 0.2, "{used} s of CPU in 1 s idle");

    r.stop.send(true).expect("shutdown");
    tokio::time::timeout(WAIT, r.task)
        .await
        .expect("the source stops")
        .expect("no panic");
    assert_eq!(r.status.state(), SourceState::Finished);
}
