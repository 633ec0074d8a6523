use super::*;

use serde_json::json;

use crate::source::link;

/// SF12 at 125 kHz in the 868.7–869.2 MHz sub-band, whose 0.1 % allow 3.6 s an hour.
fn slow_radio() -> Radio {
    Radio {
        settings: Ok((868_900_000, LoraParams::new(12, 125_000, 1))),
        region: Region::Eu868,
        max_payload: 255,
    }
}

fn request(parts: Vec<Part>) -> (TxRequest, oneshot::Receiver<TxOutcome>) {
    let (reply, answer) = oneshot::channel();
    (TxRequest { parts, reply }, answer)
}

fn part(bytes: &'static [u8], delay_ms: u64) -> Part {
    Part {
        delay_ms,
        ..Part::bytes(Bytes::from_static(bytes))
    }
}

#[test]
fn a_command_over_the_duty_cycle_budget_is_rejected_and_what_went_out_is_charged() {
    let (_link, device) = link();
    let mut tx = Transmitter::new("lora", device, slow_radio());
    let status = SourceStatus::new("lora");
    let now = Instant::now();
    let air = LoraParams::new(12, 125_000, 1).time_on_air(51);
    assert!(air > Duration::from_secs(2) && air < Duration::from_millis(3600));

    let (first, answer) = request(vec![part(&[0x55; 51], 0)]);
    let next = tx.accept(first, true, &status, now);
    assert_eq!(next.map(|(bytes, a)| (bytes.len(), a)), Some((51, air)));
    let budget: Vec<_> = status
        .duty_cycle()
        .into_iter()
        .flat_map(|r| r.sub_bands)
        .collect();
    let band = budget
        .iter()
        .find(|b| b.name == "868.7–869.2 MHz")
        .expect("the sub-band");
    assert!(
        (band.used_secs - air.as_secs_f64()).abs() < 1e-9,
        "{band:?}"
    );
    assert_eq!(tx.part_done(TxOutcome::Sent, now), None);
    let mut answer = answer;
    assert_eq!(answer.try_recv(), Ok(TxOutcome::Sent));

    let (second, mut answer) = request(vec![part(&[0x55; 51], 0)]);
    assert_eq!(tx.accept(second, true, &status, now), None);
    match answer.try_recv() {
        Ok(TxOutcome::Rejected(why)) => {
            assert!(why.starts_with("duty_cycle: source lora: "), "{why}");
            assert!(why.contains("868.7–869.2 MHz"), "{why}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(tx.idle(), "a refusal leaves nothing in flight");
}

#[test]
fn parts_go_one_at_a_time_each_followed_by_its_pause() {
    let (_link, device) = link();
    let radio = Radio {
        region: Region::None,
        ..slow_radio()
    };
    let mut tx = Transmitter::new("lora", device, radio);
    let status = SourceStatus::new("lora");
    let now = Instant::now();
    let (command, mut answer) = request(vec![part(b"a", 200), part(b"bc", 0)]);
    let first = tx
        .accept(command, true, &status, now)
        .expect("the first part");
    assert_eq!(first.0.as_ref(), b"a");
    assert_eq!(tx.part_done(TxOutcome::Sent, now), None, "the pause first");
    let until = tx.pause_until().expect("a pause");
    assert_eq!(until, now + Duration::from_millis(200));
    assert_eq!(tx.next_part(now + Duration::from_millis(199)), None);
    let second = tx.next_part(until).expect("the second part");
    assert_eq!(second.0.as_ref(), b"bc");
    assert!(answer.try_recv().is_err(), "no answer before the last part");
    assert_eq!(tx.part_done(TxOutcome::Sent, until), None);
    assert_eq!(answer.try_recv(), Ok(TxOutcome::Sent));
    assert!(status.duty_cycle().is_empty(), "no region, no budget");
}

#[test]
fn a_later_part_the_modem_cannot_take_fails_the_command_instead_of_repeating_the_first() {
    let (_link, device) = link();
    let mut tx = Transmitter::new("lora", device, slow_radio());
    let status = SourceStatus::new("lora");
    let now = Instant::now();
    let (command, mut answer) = request(vec![part(b"a", 0), part(b"b", 0)]);
    tx.accept(command, true, &status, now)
        .expect("the first part");
    let second = tx.part_done(TxOutcome::Sent, now).expect("at once");
    assert_eq!(second.0.as_ref(), b"b");
    tx.part_done(TxOutcome::NotReady("the modem is being set up".into()), now);
    match answer.try_recv() {
        Ok(TxOutcome::Failed(why)) => assert!(
            why.starts_with("source lora: part 2 of 2: the modem is being set up"),
            "{why}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn options_sizes_and_readiness_are_checked_before_anything_is_charged() {
    let (_link, device) = link();
    let mut tx = Transmitter::new("lora", device, slow_radio());
    let status = SourceStatus::new("lora");
    let now = Instant::now();
    let mut with_option = part(b"a", 0);
    with_option.options.insert("sf".into(), json!(9));
    let long = Part::bytes(Bytes::from(vec![0u8; 256]));
    let cases: Vec<(Vec<Part>, bool, &str)> = vec![
        (
            vec![part(b"a", 0), with_option],
            true,
            "part 2 of 2: a radio modem takes no transport option `sf`",
        ),
        (
            vec![long],
            true,
            "256 bytes to send; the radio sends 1 to 255 bytes at once",
        ),
        (vec![part(b"", 0)], true, "0 bytes to send"),
        (vec![part(b"a", 0)], false, "the modem is being set up"),
    ];
    for (parts, ready, expected) in cases {
        let (command, mut answer) = request(parts);
        assert_eq!(tx.accept(command, ready, &status, now), None);
        let why = match answer.try_recv() {
            Ok(TxOutcome::Failed(why) | TxOutcome::NotReady(why)) => why,
            other => panic!("{expected}: got {other:?}"),
        };
        assert!(why.contains(expected), "{why}");
    }
    assert!(status.duty_cycle().is_empty(), "nothing was charged");
}

#[test]
fn the_default_region_follows_the_frequency() {
    assert_eq!(Radio::default_region(868_100_000), Region::Eu868);
    assert_eq!(Radio::default_region(869_525_000), Region::Eu868);
    assert_eq!(Radio::default_region(915_000_000), Region::None);
    assert_eq!(Radio::default_region(433_175_000), Region::None);
}
