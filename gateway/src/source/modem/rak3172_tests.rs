use super::*;

use crate::source::modem::testing::{bad, failure, frames, outcomes, run, sent, TEST_AIRTIME};
use crate::source::TxOutcome;

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

#[test]
fn a_transmission_leaves_receive_sends_the_payload_and_receives_again() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    run(&mut m, SET_UP);
    let out = run(&mut m, &["TX 48656c6c6f", "OK", "OK"]);
    assert_eq!(sent(&out), ["AT+PRECV=0", "AT+PSEND=48656C6C6F"]);
    let settings = Rak3172Settings::new();
    assert_eq!(
        out.last(),
        Some(&Action::Timer(settings.reply_timeout + TEST_AIRTIME))
    );
    assert!(outcomes(&out).is_empty(), "not sent before its event");
    let out = run(&mut m, &["+EVT:TXP2P DONE", "OK", "+EVT:RXP2P:-40:7:0A0B"]);
    assert_eq!(outcomes(&out), [TxOutcome::Sent]);
    assert_eq!(sent(&out), ["AT+PRECV=65534"]);
    assert!(out.contains(&Action::Ready));
    assert_eq!(frames(&out)[0].0.as_ref(), &[0x0a, 0x0b]);
}

#[test]
fn error_answers_fail_the_transmission_with_the_answer_and_receiving_goes_on() {
    for answer in ["AT_BUSY_ERROR", "AT_PARAM_ERROR", "AT_ERROR"] {
        let mut m = Rak3172::new(Rak3172Settings::new());
        run(&mut m, SET_UP);
        let out = run(&mut m, &["TX 01", "OK", answer]);
        let why = failure(&out);
        assert!(
            why.contains(&format!("`{answer}`")) && why.contains("`AT+PSEND=01`"),
            "{why}"
        );
        assert_eq!(
            sent(&out).last().map(String::as_str),
            Some("AT+PRECV=65534")
        );
        let out = run(&mut m, &["OK", "+EVT:RXP2P:-40:7:01"]);
        assert_eq!(frames(&out).len(), 1, "{answer}: frames after it");
    }
}

#[test]
fn a_module_silent_during_a_transmission_fails_it_and_is_restarted() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    run(&mut m, SET_UP);
    let out = run(&mut m, &["TX 01", "OK", "OK", "TIMER"]);
    let why = failure(&out);
    assert!(
        why.contains("did not answer `AT+PSEND=01` within 2150 ms"),
        "{why}"
    );
    let out = run(&mut m, &["TIMER", "TX 02"]);
    assert_eq!(sent(&out), ["ATZ"]);
    assert!(matches!(
        outcomes(&out).as_slice(),
        [TxOutcome::NotReady(_)]
    ));
    let out = run(&mut m, &["TIMER", "OK", "AT+NWM=0", "OK", "OK", "OK"]);
    assert_eq!(out.last(), Some(&Action::Ready));
    assert!(m.can_transmit());
}

#[test]
fn a_reboot_during_a_transmission_fails_it_and_the_module_is_set_up_again() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    run(&mut m, SET_UP);
    let out = run(
        &mut m,
        &[
            "TX 01",
            "OK",
            "RAKwireless RAK3172-E Example",
            "Current Work Mode: LoRa P2P.",
        ],
    );
    assert!(failure(&out).contains("the module restarted during the transmission"));
    assert_eq!(sent(&out).last().map(String::as_str), Some("AT+PRECV=0"));
    let out = run(&mut m, &SET_UP[1..]);
    assert_eq!(out.last(), Some(&Action::Ready));
}

#[test]
fn the_done_event_before_ok_and_a_packet_before_receive_stops_are_both_taken() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    run(&mut m, SET_UP);
    let out = run(
        &mut m,
        &[
            "TX 01",
            "+EVT:RXP2P:-50:3:0C0D",
            "OK",
            "+EVT:TXP2P DONE",
            "OK",
        ],
    );
    assert_eq!(frames(&out)[0].0.as_ref(), &[0x0c, 0x0d]);
    assert_eq!(outcomes(&out), [TxOutcome::Sent]);
    assert_eq!(sent(&out), ["AT+PRECV=0", "AT+PSEND=01", "AT+PRECV=65534"]);
}

#[test]
fn an_empty_payload_or_one_during_the_set_up_is_refused_without_a_command() {
    let mut m = Rak3172::new(Rak3172Settings::new());
    let out = run(&mut m, &["START", "TX 01"]);
    assert_eq!(sent(&out), ["AT+PRECV=0"]);
    assert!(matches!(
        outcomes(&out).as_slice(),
        [TxOutcome::NotReady(_)]
    ));
    run(&mut m, &SET_UP[1..]);
    let out = run(&mut m, &["TX "]);
    assert!(failure(&out).contains("1 to 255 bytes"));
    assert!(sent(&out).is_empty());
}

#[test]
fn p2p_settings_give_the_lora_settings_of_a_transmission() {
    let p = P2pParams {
        spreading_factor: 9,
        bandwidth_khz: 250,
        coding_rate: 3,
        preamble: 12,
        ..P2pParams::default()
    };
    let lora = p.lora().expect("LoRa settings");
    assert_eq!(
        (
            lora.spreading_factor,
            lora.bandwidth_hz,
            lora.coding_rate,
            lora.preamble_symbols
        ),
        (9, 250_000, 4, 12)
    );
    assert!(lora.crc && lora.explicit_header);
    let sf6 = P2pParams {
        spreading_factor: 6,
        ..P2pParams::default()
    };
    assert!(sf6.lora().is_err());
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
            "+EVT:TXP2P DONE",
            "TX 0102",
            "TX ",
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
