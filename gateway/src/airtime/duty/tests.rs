use std::time::{Duration, Instant};

use super::*;

/// 868.1 MHz, the first LoRaWAN default channel: sub-band 868.0–868.6 MHz, 1 %,
/// 36 s of air time an hour.
const CH1: u64 = 868_100_000;
/// The LoRaWAN RX2 channel: 869.4–869.65 MHz, 10 %, 360 s an hour.
const RX2: u64 = 869_525_000;
/// One SF7BW125 packet of 10 bytes (see the time-on-air tests).
const SF7_10_BYTES: Duration = Duration::from_micros(41_216);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn band<'a>(budgets: &'a [SubBandBudget], name: &str) -> &'a SubBandBudget {
    budgets.iter().find(|b| b.name == name).expect(name)
}

#[test]
fn a_budget_filled_exactly_to_the_limit_takes_the_last_fitting_packet_and_no_more() {
    let t0 = Instant::now();
    let mut dc = DutyCycle::new(Region::Eu868);
    dc.try_take(CH1, secs(36) - SF7_10_BYTES, t0).unwrap();
    // Used + this packet = 36 s exactly: allowed.
    dc.try_take(CH1, SF7_10_BYTES, t0 + secs(1)).unwrap();
    let refusal = dc
        .try_take(CH1, Duration::from_nanos(1), t0 + secs(2))
        .unwrap_err();
    assert_eq!(
        refusal,
        DutyCycleRefusal::NoAirTimeLeft {
            sub_band: "868.0–868.6 MHz",
            per_mille: 10,
            left: Duration::ZERO,
            needed: Duration::from_nanos(1),
            // Both takes share the slot started at t0, last at t0 + 1 s.
            free_in: Some(secs(3599)),
        }
    );
    let page = dc.budget(t0 + secs(2));
    let ch1 = band(&page, "868.0–868.6 MHz");
    assert_eq!((ch1.used_secs, ch1.remaining_secs), (36.0, 0.0));
}

#[test]
fn packets_every_four_seconds_fill_one_percent_after_873_and_the_message_says_when() {
    let t0 = Instant::now();
    let mut dc = DutyCycle::new(Region::Eu868);
    // 36 s / 41.216 ms = 873.4: 873 packets fit, 873 · 41.216 ms = 35.981568 s,
    // leaving 18.432 ms.
    for i in 0..873 {
        dc.try_take(CH1, SF7_10_BYTES, t0 + secs(4 * i))
            .unwrap_or_else(|e| panic!("packet {i}: {e}"));
    }
    let now = t0 + secs(3500);
    let refusal = dc.try_take(CH1, SF7_10_BYTES, now).unwrap_err();
    // 22.784 ms must free up. The first slot holds the packets at 0, 4 and 8 s
    // (each within 10 s of the slot's first) and counts until 8 s + 1 h = 3608 s.
    assert_eq!(
        refusal.to_string(),
        "duty cycle: sub-band 868.0–868.6 MHz (1 %) has 18.4 ms of air time left in the \
         last hour, this transmission needs 41.2 ms; enough is free in 108 s"
    );
    assert!(dc.try_take(CH1, SF7_10_BYTES, t0 + secs(3607)).is_err());
    dc.try_take(CH1, SF7_10_BYTES, t0 + secs(3608)).unwrap();
}

#[test]
fn transmissions_an_hour_old_no_longer_count() {
    let t0 = Instant::now();
    let mut dc = DutyCycle::new(Region::Eu868);
    dc.try_take(CH1, secs(36), t0).unwrap();
    assert!(dc
        .try_take(
            CH1,
            SF7_10_BYTES,
            t0 + secs(3600) - Duration::from_millis(1)
        )
        .is_err());
    let page = dc.budget(t0 + secs(3600));
    assert_eq!(band(&page, "868.0–868.6 MHz").remaining_secs, 36.0);
    dc.try_take(CH1, secs(36), t0 + secs(3600)).unwrap();
}

#[test]
fn each_sub_band_has_its_own_budget() {
    let t0 = Instant::now();
    let mut dc = DutyCycle::new(Region::Eu868);
    dc.try_take(CH1, secs(36), t0).unwrap();
    assert!(dc.try_take(868_500_000, SF7_10_BYTES, t0).is_err());
    dc.try_take(RX2, secs(360), t0).unwrap();
    dc.try_take(867_100_000, secs(36), t0).unwrap();
    dc.try_take(863_500_000, Duration::from_millis(3_600), t0)
        .unwrap();
    // 868.7–869.2 MHz is 0.1 % like 863–865 MHz, with a budget of its own.
    dc.try_take(868_800_000, Duration::from_millis(3_600), t0)
        .unwrap();
    dc.try_take(869_850_000, SF7_10_BYTES, t0).unwrap();

    let page = dc.budget(t0 + secs(1));
    let summary: Vec<(&str, &str, f64, f64)> = page
        .iter()
        .map(|b| {
            (
                b.name.as_str(),
                b.limit.as_str(),
                b.budget_secs,
                b.remaining_secs,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("863.0–865.0 MHz", "0.1 %", 3.6, 0.0),
            ("865.0–868.0 MHz", "1 %", 36.0, 0.0),
            ("868.0–868.6 MHz", "1 %", 36.0, 0.0),
            ("868.7–869.2 MHz", "0.1 %", 3.6, 0.0),
            ("869.4–869.65 MHz", "10 %", 360.0, 0.0),
            ("869.7–870.0 MHz", "1 %", 36.0, 36.0 - 0.041216),
        ]
    );
}

#[test]
fn sub_band_edges_follow_loramac_node() {
    let t0 = Instant::now();
    let dc = DutyCycle::new(Region::Eu868);
    let band_of = |hz: u64| {
        dc.ledgers
            .iter()
            .find(|l| l.band.contains(hz))
            .map(|l| l.band.name)
    };
    assert_eq!(band_of(863_000_000), Some("863.0–865.0 MHz"));
    assert_eq!(band_of(864_999_999), Some("863.0–865.0 MHz"));
    assert_eq!(band_of(865_000_000), Some("865.0–868.0 MHz"));
    assert_eq!(band_of(868_000_000), Some("865.0–868.0 MHz"));
    assert_eq!(band_of(868_000_001), Some("868.0–868.6 MHz"));
    assert_eq!(band_of(868_600_000), Some("868.0–868.6 MHz"));
    assert_eq!(band_of(868_600_001), None);
    assert_eq!(band_of(868_700_000), Some("868.7–869.2 MHz"));
    assert_eq!(band_of(869_200_000), Some("868.7–869.2 MHz"));
    assert_eq!(band_of(869_300_000), None);
    assert_eq!(band_of(869_650_000), Some("869.4–869.65 MHz"));
    assert_eq!(band_of(869_675_000), None);
    assert_eq!(band_of(870_000_000), Some("869.7–870.0 MHz"));
    assert_eq!(band_of(870_000_001), None);
    assert_eq!(band_of(862_999_999), None);
    assert!(dc.budget(t0).iter().all(|b| b.used_secs == 0.0));
}

#[test]
fn a_frequency_outside_the_sub_bands_is_refused_with_the_list() {
    let mut dc = DutyCycle::new(Region::Eu868);
    let refusal = dc
        .try_take(869_300_000, SF7_10_BYTES, Instant::now())
        .unwrap_err();
    assert_eq!(
        refusal,
        DutyCycleRefusal::OutsideSubBands {
            frequency_hz: 869_300_000
        }
    );
    assert_eq!(
        refusal.to_string(),
        "duty cycle: 869.3 MHz is outside the EU868 sub-bands (863.0–865.0 MHz, \
         865.0–868.0 MHz, 868.0–868.6 MHz, 868.7–869.2 MHz, 869.4–869.65 MHz, \
         869.7–870.0 MHz); nothing may be sent there"
    );
    assert!(dc
        .try_take(433_175_000, SF7_10_BYTES, Instant::now())
        .is_err());
}

#[test]
fn a_transmission_longer_than_the_whole_budget_is_refused_for_good() {
    let t0 = Instant::now();
    let mut dc = DutyCycle::new(Region::Eu868);
    // 0.1 % of an hour is 3.6 s.
    let refusal = dc.try_take(863_500_000, secs(4), t0).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "duty cycle: sub-band 863.0–865.0 MHz (0.1 %) has 3.600 s of air time left in the \
         last hour, this transmission needs 4.000 s; that is more than the sub-band allows \
         in an hour"
    );
    // The refusal took nothing.
    dc.try_take(863_500_000, Duration::from_millis(3_600), t0)
        .unwrap();
}

#[test]
fn memory_stays_bounded_after_a_hundred_thousand_takes() {
    let t0 = Instant::now();
    let mut dc = DutyCycle::new(Region::Eu868);
    // One 1 ms packet every 37 ms on RX2 for 3700 s: 97,297 packets an hour
    // would be 97 s, within its 360 s.
    for i in 0..100_000u64 {
        let now = t0 + Duration::from_millis(37 * i);
        dc.try_take(RX2, Duration::from_millis(1), now)
            .unwrap_or_else(|e| panic!("take {i}: {e}"));
    }
    // 3600 s / 10 s + 1 slots at most, and the six sub-bands together no more.
    let rx2_slots = dc.ledgers[4].slots.len();
    assert!(rx2_slots <= 361, "{rx2_slots} slots");
    assert!(dc.slots_held() <= 361);
    // The slots kept still add up to the last hour's packets, give or take a slot.
    let now = t0 + Duration::from_millis(37 * 99_999);
    let used = band(&dc.budget(now), "869.4–869.65 MHz").used_secs;
    assert!((97.0..=97.0 + 10.0 / 37.0 + 0.3).contains(&used), "{used}");
}

#[test]
fn region_none_enforces_nothing() {
    let t0 = Instant::now();
    let mut dc = DutyCycle::new(Region::None);
    for _ in 0..10 {
        dc.try_take(433_175_000, secs(3600), t0).unwrap();
        dc.try_take(CH1, secs(3600), t0).unwrap();
    }
    assert_eq!(dc.budget(t0), vec![]);
}

#[test]
fn the_region_key_reads_eu868_and_none() {
    let read = |s: &str| serde_json::from_str::<Region>(s).map_err(|e| e.to_string());
    assert_eq!(read("\"eu868\""), Ok(Region::Eu868));
    assert_eq!(read("\"none\""), Ok(Region::None));
    assert!(read("\"EU868\"").is_err());
    assert!(read("\"us915\"").is_err());
    assert_eq!(serde_json::to_string(&Region::Eu868).unwrap(), "\"eu868\"");
}

#[test]
fn the_refusal_reason_is_duty_cycle() {
    assert_eq!(DutyCycleRefusal::REASON, "duty_cycle");
}
