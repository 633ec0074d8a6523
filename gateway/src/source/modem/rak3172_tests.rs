use super::*;

use crate::source::modem::testing::{bad, frames, run, sent};

/// A module already in P2P mode.
const SET_UP: &[&str] = &["START", "OK", "AT+NWM=0", "OK", "OK", "OK"];

#[test]
fn set_up_stops_receiving_checks_the_mode_sets_the_radio_and_receives_continuously() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    let out = run(&mut m, SET_UP);
    assert_eq!(
        sent(&out),
        [
            "AT+PRECV=0",
            "AT+NWM=?",
            "AT+P2P=868000000:7:125:0:8:14",
            "AT+PRECV=65534"
        ]
    );
    assert_eq!(out.last(), Some(&Action::Ready));
}

#[test]
fn a_module_in_lorawan_mode_is_switched_to_p2p_and_waited_for_while_it_restarts() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    let out = run(
        &mut m,
        &[
            "START",
            "AT_ERROR",
            "AT+NWM=1",
            "OK",
            "RAKwireless RAK3172-E Example",
            "------------------------------------------------------",
            "Current Work Mode: LoRa P2P.",
            "OK",
            "OK",
        ],
    );
    assert_eq!(
        sent(&out),
        [
            "AT+PRECV=0",
            "AT+NWM=?",
            "AT+NWM=0",
            "AT+P2P=868000000:7:125:0:8:14",
            "AT+PRECV=65534"
        ]
    );
    assert_eq!(bad(&out), 0, "the banner is not garbage: {out:?}");
    assert_eq!(out.last(), Some(&Action::Ready));
}

#[test]
fn both_event_forms_give_frames_with_rssi_and_snr() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    run(&mut m, SET_UP);
    let out = run(
        &mut m,
        &[
            "+EVT:RXP2P:-44:9:48656C6C6F",
            "+EVT:RXP2P, RSSI -101, SNR -3",
            "+EVT:00ff",
            "+EVT:TXP2P DONE",
        ],
    );
    let got = frames(&out);
    assert_eq!(got.len(), 2, "{out:?}");
    assert_eq!(&got[0].0[..], b"Hello");
    assert_eq!((got[0].1.rssi, got[0].1.snr), (Some(-44.0), Some(9.0)));
    assert_eq!(&got[1].0[..], &[0x00, 0xff]);
    assert_eq!((got[1].1.rssi, got[1].1.snr), (Some(-101.0), Some(-3.0)));
    assert_eq!(got[0].1.frequency_hz, Some(868_000_000));
    assert_eq!(got[0].1.datarate.as_deref(), Some("SF7BW125"));
    assert!(
        sent(&out).is_empty(),
        "continuous receive needs no re-arming"
    );
}

#[test]
fn timeout_and_error_events_reopen_the_receiver() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    run(&mut m, SET_UP);
    let out = run(
        &mut m,
        &[
            "+EVT:RXP2P RECEIVE TIMEOUT",
            "OK",
            "+EVT:RXP2P RECEIVE ERROR",
            "OK",
        ],
    );
    assert_eq!(sent(&out), ["AT+PRECV=65534", "AT+PRECV=65534"]);
    assert_eq!(bad(&out), 1, "only the error is a failed reception");
    assert_eq!(out.iter().filter(|a| **a == Action::Ready).count(), 2);
}

#[test]
fn garbage_and_malformed_events_are_bad_and_receiving_goes_on() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    run(&mut m, SET_UP);
    let out = run(
        &mut m,
        &[
            "\u{7f}\u{1}zz",
            "+EVT:RXP2P:-44:x:0102",
            "+EVT:RXP2P:-44:1:010",
            "+EVT:RXP2P, RSSI -1, SNR 2",
            "nonsense",
            "+EVT:RXP2P:-1:2:AA",
        ],
    );
    assert_eq!(bad(&out), 5, "{out:?}");
    assert_eq!(frames(&out).len(), 1);
}

#[test]
fn a_module_that_stops_answering_is_restarted_after_a_back_off() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    let out = run(&mut m, &["START", "OK", "TIMER"]);
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Trouble(t) if t.contains("AT+NWM=?"))));
    let out = run(&mut m, &["TIMER"]);
    assert_eq!(sent(&out), ["ATZ"]);
    assert_eq!(out.last(), Some(&Action::Timer(Duration::from_secs(2))));
    let out = run(&mut m, &["TIMER", "OK", "AT+NWM=0", "OK", "OK", "OK"]);
    assert_eq!(sent(&out)[0], "AT+PRECV=0");
    assert_eq!(out.last(), Some(&Action::Ready));
}

#[test]
fn a_banner_mid_stream_means_the_module_rebooted_and_it_is_set_up_again() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    run(&mut m, SET_UP);
    let out = run(
        &mut m,
        &[
            "RAKwireless RAK3172-E Example",
            "Current Work Mode: LoRa P2P.",
        ],
    );
    assert_eq!(sent(&out), ["AT+PRECV=0"]);
    assert_eq!(bad(&out), 0, "the banner is not garbage: {out:?}");
}

mod any_input {
    use super::*;
    use crate::source::modem::testing::{any_input, one_command_at_a_time};
    use proptest::prelude::*;

    /// A timer expiry (`None`), a plausible module line, or any printable line.
    fn input() -> impl Strategy<Value = Option<String>> {
        any_input(vec![
            "OK",
            "AT_ERROR",
            "AT_BUSY_ERROR",
            "AT+NWM=0",
            "AT+NWM=1",
            "+EVT:RXP2P:-40:7:0102",
            "+EVT:RXP2P, RSSI -1, SNR 2",
            "+EVT:0a0b",
            "+EVT:RXP2P RECEIVE TIMEOUT",
            "+EVT:RXP2P RECEIVE ERROR",
            "Current Work Mode: LoRa P2P.",
        ])
    }

    proptest! {
        #[test]
        fn one_command_at_a_time_each_with_a_bounded_timer(inputs in prop::collection::vec(input(), 0..120)) {
            let settings = Rak3172Settings::new();
            let longest = settings.reply_timeout.max(settings.reinit_max).max(settings.reset_wait);
            let mut m = Rak3172::new(settings);
            one_command_at_a_time(&mut m, &inputs, longest, MAX_PAYLOAD)?;
        }
    }
}

#[test]
fn echoed_commands_are_not_garbage() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    let out = run(
        &mut m,
        &[
            "START",
            "AT+PRECV=0",
            "OK",
            "AT+NWM=?",
            "AT+NWM=0",
            "OK",
            "AT+P2P=868000000:7:125:0:8:14",
            "OK",
            "AT+PRECV=65534",
            "OK",
        ],
    );
    assert_eq!(bad(&out), 0, "{out:?}");
    assert_eq!(out.last(), Some(&Action::Ready));
}
