//! The RN2483 source against a simulated modem on a pseudo-terminal: set-up, packets
//! with their SNR and RSSI, and recovery from a modem that stops answering, from
//! garbage on the line and from a reboot in the middle of the stream; commands
//! transmitted between packets, with the modem's answers; the capture replays
//! through the example mapping.

mod common;

use std::time::Duration;

use common::modem_sim::{Rn2483Model, Sim, TxAnswer};
use common::{
    assert_lpp_readings, connected, lpp, map_capture, next_frame, quick_reopen, replay_capture,
    run_modem, run_modem_linked, temp_link, transmit, wait_until,
};
use mqgate::airtime::Region;
use mqgate::source::modem::rn2483::{self, Rn2483, Rn2483Settings};
use mqgate::source::modem::transmit::Radio;
use mqgate::source::serial::SerialSettings;
use mqgate::source::{SourceStatus, TxOutcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_go_out_over_the_air_between_packets_and_each_modem_answer_gives_its_outcome() {
    let (_dir, link) = temp_link("rn2483-tx");
    let model = Rn2483Model::new();
    let air = model.air();
    let sim = Sim::start(&link, model);
    let path = link.to_str().expect("utf-8 path");
    let mut settings = Rn2483Settings::new();
    // Long enough for a simulator thread on a loaded machine to answer.
    settings.reply_timeout = Duration::from_secs(1);
    settings.reinit_initial = Duration::from_millis(50);
    settings.reinit_max = Duration::from_millis(400);
    let radio = Radio {
        settings: rn2483::lora_settings(&settings.setup),
        region: Region::None,
        max_payload: rn2483::MAX_TX_PAYLOAD,
    };
    let (running, mut cmd) = run_modem_linked(
        "tx",
        quick_reopen(path, 57_600, Duration::from_millis(400)),
        Rn2483::new(settings),
        radio,
    );
    let mut rx = running.rx;
    wait_until("the modem to be set up", || connected(&running.status)).await;
    sim.packet(b"before", -80, 3);
    assert_eq!(&next_frame(&mut rx).await.bytes[..], b"before");

    let payload = b"\x01\x02 switch on".to_vec();
    assert_eq!(
        transmit(&mut cmd, vec![payload.clone()]).await,
        TxOutcome::Sent
    );
    assert_eq!(*air.lock().expect("air log"), [payload]);
    assert!(sim.count("radio rxstop") >= 1, "receive left first");
    sim.packet(b"after", -81, 4);
    let after = next_frame(&mut rx).await;
    assert_eq!(
        (&after.bytes[..], after.meta.snr),
        (&b"after"[..], Some(4.0))
    );

    for (answer, expected) in [
        (TxAnswer::Fails, "`radio_err`"),
        (TxAnswer::Busy, "`busy`"),
        (
            TxAnswer::Reboot,
            "the modem restarted during the transmission",
        ),
        (TxAnswer::Silent, "did not answer `radio tx"),
    ] {
        sim.next_tx(answer);
        match transmit(&mut cmd, vec![b"x".to_vec()]).await {
            TxOutcome::Failed(why) => {
                assert!(why.contains(expected), "{answer:?}: {why}");
                assert!(why.starts_with("source tx: "), "{why}");
            }
            other => panic!("{answer:?}: expected a failure, got {other:?}"),
        }
        // Whatever went wrong, the modem receives again afterwards.
        sim.packet(b"still", -82, 5);
        assert_eq!(&next_frame(&mut rx).await.bytes[..], b"still", "{answer:?}");
    }
    assert_eq!(
        air.lock().expect("air log").len(),
        1,
        "none of those went out"
    );
    assert_eq!(
        transmit(&mut cmd, vec![b"a".to_vec(), b"bc".to_vec()]).await,
        TxOutcome::Sent
    );
    assert_eq!(
        air.lock().expect("air log")[1..],
        [b"a".to_vec(), b"bc".to_vec()]
    );
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
