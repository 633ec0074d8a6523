use super::*;

use crate::source::modem::testing::{frames, run, sent};

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
