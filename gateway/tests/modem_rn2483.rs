//! The RN2483 source against a simulated modem on a pseudo-terminal: set-up, packets
//! with their SNR and RSSI, and recovery from a modem that stops answering, from
//! garbage on the line and from a reboot in the middle of the stream; the capture
//! replays through the example mapping.

mod common;

use common::modem_sim::{Rn2483Model, Sim};
use common::{
    assert_lpp_readings, connected, lpp, map_capture, next_frame, replay_capture, run_modem,
    temp_link, wait_until,
};
use mqgate::source::modem::rn2483::{Rn2483, Rn2483Settings};
use mqgate::source::serial::SerialSettings;
use mqgate::source::SourceStatus;

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
