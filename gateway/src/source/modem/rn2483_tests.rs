use super::*;

use crate::source::modem::testing::{failure, frames, outcomes, run, sent, TEST_AIRTIME};
use crate::source::TxOutcome;

fn short_setup() -> Rn2483Settings {
    Rn2483Settings {
        setup: vec![
            "radio set freq 869525000".into(),
            "radio set sf sf9".into(),
            "radio set bw 125".into(),
        ],
        ..Rn2483Settings::new()
    }
}

/// Answers for a whole set-up with `short_setup`.
const SET_UP: &[&str] = &[
    "START",
    "RN2483 1.0.5 Oct 31 2018 15:06:52",
    "4294967245",
    "ok",
    "ok",
    "ok",
    "ok",
];

#[test]
fn set_up_resets_pauses_the_mac_sends_each_setting_and_opens_the_receiver() {
    let mut m = Rn2483::new(short_setup());
    let out = run(&mut m, SET_UP);
    assert_eq!(
        sent(&out),
        [
            "sys reset",
            "mac pause",
            "radio set freq 869525000",
            "radio set sf sf9",
            "radio set bw 125",
            "radio rx 0"
        ]
    );
    assert_eq!(out.last(), Some(&Action::Ready));
    assert!(out.contains(&Action::CancelTimer));
}

#[test]
fn a_packet_gets_its_snr_and_rssi_and_the_receiver_is_opened_again() {
    let mut m = Rn2483::new(short_setup());
    run(&mut m, SET_UP);
    let out = run(&mut m, &["radio_rx  48656c6C6f ", "-7", "-96", "ok"]);
    assert_eq!(
        sent(&out),
        ["radio get snr", "radio get rssi", "radio rx 0"]
    );
    let got = frames(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].0[..], b"Hello");
    assert_eq!(got[0].1.snr, Some(-7.0));
    assert_eq!(got[0].1.rssi, Some(-96.0));
    assert_eq!(got[0].1.frequency_hz, Some(869_525_000));
    assert_eq!(got[0].1.datarate.as_deref(), Some("SF9BW125"));
}

#[test]
fn firmware_without_radio_get_rssi_is_asked_once_then_only_for_the_snr() {
    let mut m = Rn2483::new(short_setup());
    run(&mut m, SET_UP);
    let out = run(
        &mut m,
        &[
            "radio_rx 01",
            "3",
            "invalid_param",
            "ok",
            "radio_rx 02",
            "4",
            "ok",
        ],
    );
    assert_eq!(
        sent(&out),
        [
            "radio get snr",
            "radio get rssi",
            "radio rx 0",
            "radio get snr",
            "radio rx 0"
        ]
    );
    let got = frames(&out);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].1.snr, got[0].1.rssi), (Some(3.0), None));
    assert_eq!(got[1].1.snr, Some(4.0));
}

#[test]
fn radio_err_bad_hex_and_garbage_are_bad_and_the_receiver_is_reopened() {
    let mut m = Rn2483::new(short_setup());
    run(&mut m, SET_UP);
    let out = run(
        &mut m,
        &[
            "radio_err",
            "ok",
            "radio_rx 0g",
            "ok",
            "\u{1}#!garbage",
            "radio_rx 0a",
            "1",
            "-80",
            "ok",
        ],
    );
    let bad = out.iter().filter(|a| matches!(a, Action::Bad(_))).count();
    assert_eq!(bad, 3);
    assert_eq!(frames(&out).len(), 1);
    assert_eq!(sent(&out).iter().filter(|c| *c == "radio rx 0").count(), 3);
}

#[test]
fn a_modem_that_stops_answering_is_reset_after_a_back_off_and_set_up_again() {
    let mut m = Rn2483::new(short_setup());
    run(&mut m, SET_UP);
    let out = run(&mut m, &["radio_rx 0102", "TIMER"]);
    // The packet is not lost for want of its SNR.
    assert_eq!(frames(&out).len(), 1);
    assert!(
        matches!(out.iter().find(|a| matches!(a, Action::Trouble(_))), Some(Action::Trouble(t)) if t.contains("radio get snr"))
    );
    let Some(Action::Timer(rest)) = out.last() else {
        panic!("a back-off timer: {out:?}")
    };
    assert!(*rest <= Duration::from_millis(625));
    let out = run(&mut m, &["TIMER"]);
    assert_eq!(sent(&out), ["sys reset"]);
    // No answer to the reset either: the next back-off is longer.
    let out = run(&mut m, &["TIMER"]);
    let Some(Action::Timer(longer)) = out.last() else {
        panic!("a back-off timer: {out:?}")
    };
    assert!(*longer >= Duration::from_millis(750), "{longer:?}");
    let out = run(
        &mut m,
        &[
            "TIMER",
            "RN2483 1.0.5 Oct 31 2018 15:06:52",
            "0",
            "ok",
            "ok",
            "ok",
            "ok",
        ],
    );
    assert_eq!(sent(&out)[0], "sys reset");
    assert_eq!(out.last(), Some(&Action::Ready));
}

#[test]
fn a_banner_mid_stream_means_the_modem_rebooted_and_it_is_set_up_again() {
    let mut m = Rn2483::new(short_setup());
    run(&mut m, SET_UP);
    let out = run(
        &mut m,
        &[
            "RN2903 1.0.3 Aug 8 2017 15:11:09",
            "4294967245",
            "ok",
            "ok",
            "ok",
            "ok",
        ],
    );
    assert_eq!(sent(&out)[0], "mac pause");
    assert_eq!(sent(&out).last().map(String::as_str), Some("radio rx 0"));
    assert_eq!(out.last(), Some(&Action::Ready));
}

#[test]
fn a_rejected_setting_is_reported_and_the_set_up_goes_on() {
    let mut m = Rn2483::new(short_setup());
    let out = run(
        &mut m,
        &[
            "START",
            "RN2483 1.0.5 x",
            "0",
            "ok",
            "invalid_param",
            "ok",
            "ok",
        ],
    );
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Trouble(t) if t.contains("radio set sf sf9"))));
    assert!(
        !out.contains(&Action::Ready),
        "a rejected setting keeps the error shown"
    );
    assert_eq!(sent(&out).last().map(String::as_str), Some("radio rx 0"));
}

#[test]
fn banners_are_told_from_other_lines() {
    assert!(is_banner("RN2483 1.0.5 Oct 31 2018 15:06:52"));
    assert!(is_banner("RN2903 1.0.3 Aug 8 2017 15:11:09"));
    assert!(!is_banner("RN2483"));
    assert!(!is_banner("radio_rx 0102"));
    assert!(!is_banner("RN2483 says hello"));
}

#[test]
fn a_transmission_closes_the_receiver_sends_the_payload_and_opens_the_receiver_again() {
    let mut m = Rn2483::new(short_setup());
    run(&mut m, SET_UP);
    let out = run(&mut m, &["TX 48656c6c6f", "ok", "ok"]);
    assert_eq!(sent(&out), ["radio rxstop", "radio tx 48656C6C6F"]);
    // On air: the wait for `radio_tx_ok` covers the time on air.
    let settings = Rn2483Settings::new();
    assert_eq!(
        out.last(),
        Some(&Action::Timer(settings.reply_timeout + TEST_AIRTIME))
    );
    assert!(outcomes(&out).is_empty(), "not sent before radio_tx_ok");
    let out = run(
        &mut m,
        &["radio_tx_ok", "ok", "radio_rx 0a0b", "2", "-70", "ok"],
    );
    assert_eq!(outcomes(&out), [TxOutcome::Sent]);
    assert_eq!(
        sent(&out),
        [
            "radio rx 0",
            "radio get snr",
            "radio get rssi",
            "radio rx 0"
        ]
    );
    assert_eq!(frames(&out)[0].0.as_ref(), &[0x0a, 0x0b]);
    assert!(out.contains(&Action::Ready));
}

#[test]
fn radio_err_busy_and_invalid_param_fail_the_transmission_with_the_answer_and_receiving_goes_on() {
    for (answers, answer) in [
        (&["ok", "ok", "radio_err"][..], "radio_err"),
        (&["ok", "busy"][..], "busy"),
        (&["ok", "invalid_param"][..], "invalid_param"),
    ] {
        let mut m = Rn2483::new(short_setup());
        run(&mut m, SET_UP);
        let mut inputs = vec!["TX 01"];
        inputs.extend_from_slice(answers);
        let out = run(&mut m, &inputs);
        let why = failure(&out);
        assert!(
            why.contains(&format!("`{answer}`")) && why.contains("`radio tx 01`"),
            "{why}"
        );
        assert_eq!(sent(&out).last().map(String::as_str), Some("radio rx 0"));
        let out = run(&mut m, &["ok", "radio_rx 01", "1", "-90", "ok"]);
        assert_eq!(frames(&out).len(), 1, "{answer}: frames after it");
    }
}

#[test]
fn a_modem_silent_during_a_transmission_fails_it_and_is_reset() {
    let mut m = Rn2483::new(short_setup());
    run(&mut m, SET_UP);
    let out = run(&mut m, &["TX 01", "ok", "ok", "TIMER"]);
    let why = failure(&out);
    assert!(
        why.contains("did not answer `radio tx 01` within 2150 ms"),
        "{why}"
    );
    assert!(out.iter().any(|a| matches!(a, Action::Trouble(_))));
    // While it is reset and set up again, a transmission is not taken.
    let out = run(&mut m, &["TIMER", "TX 02"]);
    assert_eq!(sent(&out), ["sys reset"]);
    assert!(matches!(
        outcomes(&out).as_slice(),
        [TxOutcome::NotReady(_)]
    ));
    assert!(!m.can_transmit());
    let out = run(&mut m, &SET_UP[1..]);
    assert_eq!(out.last(), Some(&Action::Ready));
    assert!(m.can_transmit());
}

#[test]
fn a_reboot_during_a_transmission_fails_it_and_the_modem_is_set_up_again() {
    let mut m = Rn2483::new(short_setup());
    run(&mut m, SET_UP);
    let out = run(
        &mut m,
        &["TX 01", "ok", "RN2483 1.0.5 Oct 31 2018 15:06:52"],
    );
    assert!(failure(&out).contains("the modem restarted during the transmission"));
    assert_eq!(sent(&out).last().map(String::as_str), Some("mac pause"));
    let out = run(&mut m, &SET_UP[2..]);
    assert_eq!(out.last(), Some(&Action::Ready));
}

#[test]
fn a_transmission_waits_for_a_packets_snr_and_one_during_the_set_up_is_not_ready() {
    let mut m = Rn2483::new(short_setup());
    let out = run(&mut m, &["START", "TX 01"]);
    assert!(matches!(
        outcomes(&out).as_slice(),
        [TxOutcome::NotReady(_)]
    ));
    run(&mut m, &SET_UP[1..]);
    let out = run(&mut m, &["radio_rx 0a", "TX 01", "3"]);
    assert_eq!(sent(&out), ["radio get snr", "radio get rssi"]);
    let out = run(&mut m, &["-80", "ok", "ok", "ok", "radio_tx_ok"]);
    assert_eq!(frames(&out).len(), 1);
    assert_eq!(
        sent(&out),
        ["radio rx 0", "radio rxstop", "radio tx 01", "radio rx 0"]
    );
    assert_eq!(outcomes(&out), [TxOutcome::Sent]);
}

#[test]
fn a_packet_that_beats_radio_rxstop_is_delivered_and_the_transmission_goes_on() {
    let mut m = Rn2483::new(short_setup());
    run(&mut m, SET_UP);
    let out = run(
        &mut m,
        &["TX 01", "radio_rx  0c0d", "ok", "ok", "radio_tx_ok"],
    );
    let got = frames(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.as_ref(), &[0x0c, 0x0d]);
    assert_eq!(got[0].1.snr, None, "no SNR can be asked for it");
    assert_eq!(outcomes(&out), [TxOutcome::Sent]);
}

#[test]
fn the_set_up_gives_the_frequency_and_lora_settings_of_a_transmission() {
    let (hz, lora) = lora_settings(&short_setup().setup).expect("LoRa settings");
    assert_eq!(hz, 869_525_000);
    assert_eq!(
        (lora.spreading_factor, lora.bandwidth_hz, lora.coding_rate),
        (9, 125_000, 1)
    );
    assert_eq!((lora.preamble_symbols, lora.crc), (8, true));
    let defaults: Vec<String> = DEFAULT_SETUP.iter().map(|s| s.to_string()).collect();
    let (hz, lora) = lora_settings(&defaults).expect("LoRa settings");
    assert_eq!((hz, lora.spreading_factor), (868_100_000, 7));
    let more = vec![
        "radio set cr 4/8".to_string(),
        "radio set prlen 12".into(),
        "radio set crc off".into(),
        "radio set bw 250".into(),
    ];
    let (_, lora) = lora_settings(&more).expect("LoRa settings");
    assert_eq!(lora.spreading_factor, 12, "the module's own default");
    assert_eq!(
        (
            lora.coding_rate,
            lora.preamble_symbols,
            lora.crc,
            lora.bandwidth_hz
        ),
        (4, 12, false, 250_000)
    );
    assert!(lora_settings(&["radio set mod fsk".to_string()]).is_err());
    assert!(lora_settings(&["radio set sf sf13".to_string()]).is_err());
}

mod any_input {
    use super::*;
    use crate::source::modem::testing::{any_input, one_command_at_a_time};
    use proptest::prelude::*;

    /// A timer expiry (`None`), a plausible modem line, or any printable line.
    fn input() -> impl Strategy<Value = Option<String>> {
        any_input(vec![
            "ok",
            "busy",
            "invalid_param",
            "radio_err",
            "radio_rx  0102",
            "radio_rx zz",
            "4294967245",
            "-5",
            "RN2483 1.0.5 Oct 31 2018 15:06:52",
            "radio_tx_ok",
            "TX 48656c6c6f",
            "TX ",
        ])
    }

    proptest! {
        #[test]
        fn one_command_at_a_time_each_with_a_bounded_timer(inputs in prop::collection::vec(input(), 0..120)) {
            let settings = Rn2483Settings::new();
            let longest = settings.reply_timeout.max(settings.reinit_max);
            let mut m = Rn2483::new(settings);
            one_command_at_a_time(&mut m, &inputs, longest, MAX_PAYLOAD)?;
        }
    }
}
