//! The RN2483 source against a simulated modem on a pseudo-terminal: set-up, packets
//! with their SNR and RSSI, and recovery from a modem that stops answering, from
//! garbage on the line and from a reboot in the middle of the stream; the capture
//! replays through the example mapping.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::modem_sim::{Rn2483Model, Sim};
use common::{
    assert_lpp_readings, connected, cpu_seconds, lpp, map_capture, next_frame, quick_reopen,
    replay_capture, run_modem, temp_link, wait_until, waiting, Running, WAIT,
};
use mqgate::source::modem::rn2483::{Rn2483, Rn2483Settings};
use mqgate::source::serial::SerialSettings;
use mqgate::source::{SourceState, SourceStatus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rn2483_source_delivers_packets_with_snr_and_rssi_and_recovers_from_every_fault() {
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
    assert!(rx.try_recv().is_err(), "no frame from nothing");

    stop.send(true).expect("shutdown");
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the source stops")
        .expect("no panic");
    assert_eq!(status.state(), SourceState::Finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_rn2483_firmware_without_radio_get_rssi_still_gives_the_snr() {
    let (_dir, link) = temp_link("rn2483-old");
    let mut model = Rn2483Model::new();
    model.old_firmware = true;
    let sim = Sim::start(&link, model);
    let path = link.to_str().expect("utf-8 path");
    // `running` keeps the stop sender (the source runs) to the end of the test.
    let running = run_modem(
        "old",
        SerialSettings::new(path, 57_600),
        Rn2483::new(Rn2483Settings::new()),
    );
    let (status, mut rx) = (running.status, running.rx);
    wait_until("the modem to be set up", || connected(&status)).await;
    sim.packet(b"one", -80, 3);
    sim.packet(b"two", -81, 4);
    let one = next_frame(&mut rx).await;
    let two = next_frame(&mut rx).await;
    assert_eq!(
        (&one.bytes[..], one.meta.snr, one.meta.rssi),
        (&b"one"[..], Some(3.0), None)
    );
    assert_eq!((&two.bytes[..], two.meta.snr), (&b"two"[..], Some(4.0)));
    assert_eq!(sim.count("radio get rssi"), 1, "asked once only");
}

#[tokio::test]
async fn the_rn2483_capture_replays_into_frames_with_their_snr_and_rssi() {
    let (frames, status) =
        replay_capture("rn2483-p2p.log", Rn2483::new(Rn2483Settings::new())).await;
    assert_eq!(frames.len(), 6);
    for (i, f) in (0u8..).zip(&frames) {
        assert_eq!(f.bytes.to_vec(), lpp(i), "packet {i}");
        assert_eq!(f.meta.snr, Some(9.0 - f64::from(i)));
        assert_eq!(f.meta.rssi, Some(-60.0 - 5.0 * f64::from(i)));
        assert_eq!(f.meta.datarate.as_deref(), Some("SF7BW125"));
    }
    assert_eq!(
        SourceStatus::get(&status.bad_frames),
        1,
        "the one radio_err"
    );
}

#[tokio::test]
async fn the_rn2483_capture_maps_through_the_demo_mapping_to_one_message_per_reading() {
    let got = map_capture("lora-rn2483", "rn2483-p2p.log").await;
    assert_lpp_readings(&got, "lora-rn2483");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_rn2483_is_reopened_and_set_up_again() {
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
