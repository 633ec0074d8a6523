//! The RAK3172 source against a simulated RUI3 module on a pseudo-terminal: the
//! switch from LoRaWAN to P2P mode, packets in both event forms with their RSSI and
//! SNR, a closed receive window, and recovery from a module that stops answering,
//! from garbage and from a reboot in the middle of the stream; commands
//! transmitted between packets, within the duty-cycle budget.

mod common;

use std::time::Duration;

use common::modem_sim::{Rak3172Model, Sim, TxAnswer};
use common::{
    assert_lpp_readings, connected, lpp, map_capture, next_frame, quick_reopen, rak3172_settings,
    replay_capture, run_modem_linked, run_rak3172, temp_link, transmit, wait_until, workspace,
};
use mqgate::source::modem::rak3172::{self, Rak3172, Rak3172Settings};
use mqgate::source::modem::transmit::Radio;
use mqgate::source::{SourceStatus, TxOutcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_go_out_between_packets_until_the_duty_cycle_budget_is_spent_then_are_rejected() {
    let (_dir, link) = temp_link("rak3172-tx");
    let model = Rak3172Model::new(0);
    let air = model.air();
    let sim = Sim::start(&link, model);
    let path = link.to_str().expect("utf-8 path");
    let mut settings = rak3172_settings(&link);
    // 868.7–869.2 MHz allows 0.1 % of the hour, 3.6 s; at SF12 51 bytes take
    // about 2.5 s, so the second such command does not fit.
    settings.p2p.frequency_hz = 868_900_000;
    settings.p2p.spreading_factor = 12;
    let hz = u64::from(settings.p2p.frequency_hz);
    let lora = settings.p2p.lora().expect("LoRa settings");
    let radio = Radio {
        settings: Ok((hz, lora)),
        region: Radio::default_region(hz),
        max_payload: rak3172::MAX_TX_PAYLOAD,
    };
    let (running, mut cmd) = run_modem_linked(
        "rak",
        quick_reopen(path, 115_200, Duration::from_millis(400)),
        Rak3172::new(settings),
        radio,
    );
    let (status, mut rx) = (running.status, running.rx);
    wait_until("the module to be set up", || connected(&status)).await;
    sim.packet(b"before", -70, 8);
    assert_eq!(&next_frame(&mut rx).await.bytes[..], b"before");

    let payload = vec![0x5a; 51];
    assert_eq!(
        transmit(&mut cmd, vec![payload.clone()]).await,
        TxOutcome::Sent
    );
    assert_eq!(
        air.lock().expect("air log").as_slice(),
        std::slice::from_ref(&payload)
    );
    assert_eq!(
        sim.count("AT+PRECV=0"),
        2,
        "set-up and before the transmission"
    );
    let band = status
        .duty_cycle()
        .into_iter()
        .flat_map(|r| r.sub_bands)
        .find(|b| b.name == "868.7–869.2 MHz")
        .expect("the sub-band on the status");
    let charged = lora.time_on_air(51).as_secs_f64();
    assert!((band.used_secs - charged).abs() < 1e-9, "{band:?}");
    sim.packet(b"after", -71, 7);
    assert_eq!(&next_frame(&mut rx).await.bytes[..], b"after");

    match transmit(&mut cmd, vec![payload]).await {
        TxOutcome::Rejected(why) => assert!(why.starts_with("duty_cycle: source rak: "), "{why}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        air.lock().expect("air log").len(),
        1,
        "the rejected one stayed home"
    );
    // A refused module answer is a failure, not a rejection; receiving goes on.
    sim.next_tx(TxAnswer::Busy);
    match transmit(&mut cmd, vec![b"x".to_vec()]).await {
        TxOutcome::Failed(why) => assert!(why.contains("`AT_BUSY_ERROR`"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    sim.packet(b"still", -72, 6);
    assert_eq!(&next_frame(&mut rx).await.bytes[..], b"still");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_rui3_firmware_two_line_events_give_the_same_frames() {
    let (_dir, link) = temp_link("rak3172-old");
    let mut model = Rak3172Model::new(0);
    model.two_line_events = true;
    let sim = Sim::start(&link, model);
    let mut r = run_rak3172(&link);
    wait_until("the module to be set up", || connected(&r.status)).await;
    assert_eq!(sim.count("AT+NWM=0"), 0, "already in P2P mode: no restart");
    sim.packet(b"\x01\x02\x03", -99, -7);
    sim.packet(b"", -98, -6);
    sim.packet(b"\xff", -97, -5);
    let f = next_frame(&mut r.rx).await;
    assert_eq!(
        (&f.bytes[..], f.meta.rssi, f.meta.snr),
        (&b"\x01\x02\x03"[..], Some(-99.0), Some(-7.0))
    );
    let f = next_frame(&mut r.rx).await;
    assert_eq!((&f.bytes[..], f.meta.rssi), (&b""[..], Some(-98.0)));
    let f = next_frame(&mut r.rx).await;
    assert_eq!((&f.bytes[..], f.meta.snr), (&b"\xff"[..], Some(-5.0)));
    assert_eq!(SourceStatus::get(&r.status.bad_frames), 0);
}

#[tokio::test]
async fn the_rak3172_capture_replays_into_frames_with_their_rssi_and_snr() {
    let (frames, status) =
        replay_capture("rak3172-p2p.log", Rak3172::new(Rak3172Settings::new())).await;
    assert_eq!(frames.len(), 6);
    for (i, f) in (0u8..).zip(&frames) {
        assert_eq!(f.bytes.to_vec(), lpp(i), "packet {i}");
        assert_eq!(f.meta.rssi, Some(-48.0 - 4.0 * f64::from(i)));
        assert_eq!(f.meta.snr, Some(11.0 - f64::from(i)));
        assert_eq!(f.meta.frequency_hz, Some(868_000_000));
    }
    assert_eq!(SourceStatus::get(&status.bad_frames), 0);
}

#[tokio::test]
async fn the_rak3172_capture_maps_through_the_demo_mapping_to_one_message_per_reading() {
    let got = map_capture("lora-rak3172", "rak3172-p2p.log").await;
    assert_lpp_readings(&got, "lora-rak3172");
}

#[test]
fn the_full_example_config_has_both_modems_on_serial_ports() {
    use mqgate::config::SourceKind;
    let config = mqgate::config::GatewayConfig::load(&workspace().join("examples/mqgate.yaml"))
        .expect("the example config loads");
    let kind = |id: &str| {
        &config
            .sources
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("source {id}"))
            .kind
    };
    let SourceKind::Rn2483(rn) = kind("lora-rn2483") else {
        panic!("lora-rn2483 is an rn2483 source")
    };
    assert!(rn.path.is_some() && rn.replay.is_none());
    assert_eq!(rn.baud, 57_600);
    let defaults: Vec<String> = mqgate::source::modem::rn2483::DEFAULT_SETUP
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(rn.setup, defaults, "the example lists the defaults");
    let SourceKind::Rak3172(rak) = kind("lora-rak3172") else {
        panic!("lora-rak3172 is a rak3172 source")
    };
    assert_eq!(rak.baud, 115_200);
    assert_eq!(rak.p2p.spreading_factor, 7);
}

#[test]
fn modem_source_mistakes_are_each_reported_with_their_field() {
    let dir = test_support::Scratch::new("mqgate-modem-config");
    let file = dir.path().join("mqgate.yaml");
    std::fs::write(
        &file,
        "gateway:\n  id: pi\nmappings: none\nsources:\n\
         \x20 - id: a\n    type: rak3172\n    path: /dev/ttyA\n    p2p: { spreading_factor: 13, bandwidth_khz: 200 }\n\
         \x20 - id: b\n    type: rn2483\n    path: /dev/ttyB\n    replay: { file: missing.log }\n    setup: [\"\"]\n\
         \x20 - id: c\n    type: rn2483\n    framing: { type: lines }\n",
    )
    .expect("write the config");
    let errors = match mqgate::config::GatewayConfig::load(&file) {
        Ok(_) => panic!("the config must fail"),
        Err(e) => e
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    };
    for expected in [
        "sources[0].p2p.spreading_factor",
        "sources[0].p2p.bandwidth_khz",
        "give `path` or `replay`, not both",
        "missing.log does not exist",
        "sources[1].setup[0]",
        "missing field `path`",
        "a modem source takes no framing",
    ] {
        assert!(errors.contains(expected), "{expected:?} not in:\n{errors}");
    }
}

#[test]
fn both_modem_sources_take_a_duty_cycle_region_and_refuse_an_unknown_one() {
    use mqgate::airtime::Region;
    use mqgate::config::{GatewayConfig, SourceKind};

    let dir = test_support::Scratch::new("mqgate-modem-duty");
    let file = dir.path().join("mqgate.yaml");
    std::fs::create_dir(dir.path().join("mappings")).expect("a mappings folder");
    let config = |rak: &str, rn: &str| {
        format!(
            "gateway:\n  id: pi\nmappings: mappings\nsources:\n\
             \x20 - id: a\n    type: rak3172\n    path: /dev/ttyA\n{rak}\
             \x20 - id: b\n    type: rn2483\n    path: /dev/ttyB\n{rn}"
        )
    };
    std::fs::write(
        &file,
        config("    duty_cycle: none\n", "    duty_cycle: eu868\n"),
    )
    .expect("write the config");
    let loaded = GatewayConfig::load(&file).expect("the config loads");
    match (&loaded.sources[0].kind, &loaded.sources[1].kind) {
        (SourceKind::Rak3172(a), SourceKind::Rn2483(b)) => {
            assert_eq!(
                (a.duty_cycle, b.duty_cycle),
                (Some(Region::None), Some(Region::Eu868))
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&file, config("", "")).expect("write the config");
    let loaded = GatewayConfig::load(&file).expect("the config loads");
    match &loaded.sources[0].kind {
        SourceKind::Rak3172(a) => assert_eq!(a.duty_cycle, None, "chosen by frequency"),
        other => panic!("{other:?}"),
    }
    std::fs::write(&file, config("    duty_cycle: us915\n", "")).expect("write the config");
    let errors = match GatewayConfig::load(&file) {
        Ok(_) => panic!("an unknown region must fail"),
        Err(e) => e
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    };
    assert!(errors.contains("us915"), "{errors}");
}
