//! Every expected figure is derived by hand in its comment with the formula of
//! the module comment, and, where one exists, names the published table it comes
//! from. Symbols are counted as `n_payload`; the preamble adds 8 + 4.25.

use std::time::Duration;

use super::*;

fn micros(us: u64) -> Duration {
    Duration::from_micros(us)
}

fn at(sf: u8, bw: u32) -> LoraParams {
    LoraParams::new(sf, bw, 1)
}

// The Things Network's v2 stack, `utils/toa/toa_test.go` (TheThingsArchive/ttn):
// 10-byte PHY payload, 4/5, 8-symbol preamble, explicit header, CRC on, the low
// data rate optimisation on for SF11 and SF12 at 125 kHz.
#[test]
fn ten_bytes_take_the_things_network_published_time_at_each_spreading_factor() {
    let cases = [
        // Tsym 1.024 ms; 80 − 28 + 28 + 16 = 96 bits, ceil(96/28) = 4 blocks,
        // 8 + 4·5 = 28 symbols; (12.25 + 28) · 1.024 = 41.216 ms.
        (7, 41_216),
        // Tsym 2.048 ms; 92 bits, ceil(92/32) = 3, 23 symbols; 35.25 · 2.048 = 72.192 ms.
        (8, 72_192),
        // Tsym 4.096 ms; 88 bits, ceil(88/36) = 3, 23 symbols; 35.25 · 4.096 = 144.384 ms.
        (9, 144_384),
        // Tsym 8.192 ms, below 16 ms: no optimisation; 84 bits, ceil(84/40) = 3,
        // 23 symbols; 35.25 · 8.192 = 288.768 ms.
        (10, 288_768),
        // Tsym 16.384 ms, optimisation on: 80 bits, ceil(80/(4·9)) = 3, 23 symbols;
        // 35.25 · 16.384 = 577.536 ms (200.704 ms preamble + 376.832 ms, as
        // rfwireless-world's LoRaWAN airtime calculator page also gives it).
        (11, 577_536),
        // Tsym 32.768 ms, optimisation on: 76 bits, ceil(76/(4·10)) = 2, 18 symbols;
        // 30.25 · 32.768 = 991.232 ms.
        (12, 991_232),
    ];
    for (sf, us) in cases {
        assert_eq!(at(sf, 125_000).time_on_air(10), micros(us), "SF{sf}BW125");
    }
}

#[test]
fn a_wider_band_shortens_the_time_by_the_same_factor() {
    // TTN's table again: 28 symbols as at 125 kHz, Tsym 0.512 ms and 0.256 ms:
    // 40.25 · 0.512 = 20.608 ms, 40.25 · 0.256 = 10.304 ms.
    assert_eq!(at(7, 250_000).time_on_air(10), micros(20_608));
    assert_eq!(at(7, 500_000).time_on_air(10), micros(10_304));
}

#[test]
fn each_coding_rate_adds_a_symbol_per_block() {
    // TTN's table: SF7BW125, 10 bytes, 4 blocks of (CR + 4) symbols.
    let cases = [
        (1, 41_216), // 8 + 4·5 = 28; 40.25 · 1.024
        (2, 45_312), // 8 + 4·6 = 32; 44.25 · 1.024
        (3, 49_408), // 8 + 4·7 = 36; 48.25 · 1.024
        (4, 53_504), // 8 + 4·8 = 40; 52.25 · 1.024
    ];
    for (cr, us) in cases {
        assert_eq!(
            LoraParams::new(7, 125_000, cr).time_on_air(10),
            micros(us),
            "4/{}",
            cr + 4
        );
    }
}

#[test]
fn payload_lengths_within_one_block_take_the_same_time() {
    // TTN's table, SF7BW125 4/5. 13 bytes: 104 + 16 = 120 bits, ceil(120/28) = 5,
    // 33 symbols, 45.25 · 1.024 = 46.336 ms; 15 bytes: 136 bits, still 5.
    // 16 bytes: 144 bits, 6 blocks, 38 symbols, 50.25 · 1.024 = 51.456 ms;
    // 19 bytes: 168 bits = exactly 6 blocks, no seventh.
    let cases = [
        (13, 46_336),
        (14, 46_336),
        (15, 46_336),
        (16, 51_456),
        (17, 51_456),
        (18, 51_456),
        (19, 51_456),
    ];
    for (len, us) in cases {
        assert_eq!(at(7, 125_000).time_on_air(len), micros(us), "{len} bytes");
    }
}

#[test]
fn fifty_one_bytes_at_sf7_and_sf12() {
    // SF7: 408 − 28 + 44 = 424 bits, ceil(424/28) = 16, 8 + 80 = 88 symbols;
    // (12.25 + 88) · 1.024 = 102.656 ms.
    assert_eq!(at(7, 125_000).time_on_air(51), micros(102_656));
    // SF12, optimisation on: 408 − 48 + 44 = 404 bits, ceil(404/40) = 11,
    // 8 + 55 = 63 symbols; 75.25 · 32.768 = 2465.792 ms.
    assert_eq!(at(12, 125_000).time_on_air(51), micros(2_465_792));
}

// tanupoo/lorawan_toa `test.py` (a Python calculator of the SX1276 formula):
// 64-byte PHY payload at SF12BW125, and 255 bytes at SF7BW500, each with the
// optimisation off and on.
#[test]
fn a_forced_optimisation_setting_gives_lorawan_toa_published_times() {
    let mut sf12 = at(12, 125_000);
    // Off: 512 − 48 + 44 = 508 bits, ceil(508/48) = 11, 63 symbols;
    // 75.25 · 32.768 = 2465.792 ms.
    sf12.low_data_rate_optimize = Some(false);
    assert_eq!(sf12.time_on_air(64), micros(2_465_792));
    // On: ceil(508/40) = 13, 8 + 65 = 73 symbols; 85.25 · 32.768 = 2793.472 ms.
    sf12.low_data_rate_optimize = Some(true);
    assert_eq!(sf12.time_on_air(64), micros(2_793_472));
    // The automatic choice at SF12BW125 is on.
    sf12.low_data_rate_optimize = None;
    assert_eq!(sf12.time_on_air(64), micros(2_793_472));

    let mut sf7 = at(7, 500_000);
    // Automatic (Tsym 0.256 ms: off): 2040 − 28 + 44 = 2056 bits, ceil(2056/28) = 74,
    // 8 + 370 = 378 symbols; 390.25 · 0.256 = 99.904 ms.
    assert_eq!(sf7.time_on_air(255), micros(99_904));
    // On: ceil(2056/20) = 103, 8 + 515 = 523 symbols; 535.25 · 0.256 = 137.024 ms.
    sf7.low_data_rate_optimize = Some(true);
    assert_eq!(sf7.time_on_air(255), micros(137_024));
}

#[test]
fn twelve_bytes_at_sf9_take_the_lora_modulation_crate_documented_time() {
    // The `lora-modulation` crate's README: SF9, 125 kHz, 4/5, preamble 8,
    // explicit header, 12 bytes → 144.384 ms. 96 − 36 + 44 = 104 bits,
    // ceil(104/36) = 3, 23 symbols; 35.25 · 4.096 = 144.384 ms.
    assert_eq!(at(9, 125_000).time_on_air(12), micros(144_384));
    // The AN1200.13 airtime spreadsheet shared on Google Sheets ("LoRa airtime
    // calculator", sheet 1voGAtQAjC1qBmaVuP1ApNKs1ekgUjavHuVQIXyYSvNc): 13 bytes at
    // SF9 → 164.864 ms (28 payload symbols): 112 bits, ceil(112/36) = 4, 8 + 20 = 28; 40.25 · 4.096.
    assert_eq!(at(9, 125_000).time_on_air(13), micros(164_864));
}

#[test]
fn an_implicit_header_without_crc_saves_header_and_crc_bits() {
    // SF7BW125, 10 bytes: 80 − 28 + 28 + 0 − 20 = 60 bits, ceil(60/28) = 3,
    // 8 + 15 = 23 symbols; 35.25 · 1.024 = 36.096 ms.
    let p = LoraParams {
        explicit_header: false,
        crc: false,
        ..at(7, 125_000)
    };
    assert_eq!(p.time_on_air(10), micros(36_096));
}

#[test]
fn an_empty_packet_has_at_least_the_eight_fixed_symbols() {
    // SF12, implicit header, no CRC, 0 bytes: 0 − 48 + 28 − 20 = −40 bits,
    // ceil(−40/40) = −1, clamped to 0 blocks: 8 symbols; 20.25 · 32.768 = 663.552 ms.
    let p = LoraParams {
        explicit_header: false,
        crc: false,
        ..at(12, 125_000)
    };
    assert_eq!(p.time_on_air(0), micros(663_552));
}

#[test]
fn a_longer_preamble_adds_whole_symbols() {
    // RN2483 `radio set prlen 12`: four symbols more than the 41.216 ms of the
    // default, 4 · 1.024 = 4.096 ms: 45.312 ms.
    let p = LoraParams {
        preamble_symbols: 12,
        ..at(7, 125_000)
    };
    assert_eq!(p.time_on_air(10), micros(45_312));
}

#[test]
fn spreading_factor_6_counts_with_its_implicit_header() {
    // Tsym 64/125 kHz = 0.512 ms; 80 − 24 + 28 + 16 − 20 = 80 bits,
    // ceil(80/24) = 4, 8 + 20 = 28 symbols; 40.25 · 0.512 = 20.608 ms.
    let p = LoraParams {
        explicit_header: false,
        ..at(6, 125_000)
    };
    assert_eq!(p.validate(), vec![]);
    assert_eq!(p.time_on_air(10), micros(20_608));
}

#[test]
fn the_optimisation_turns_on_above_sixteen_millisecond_symbols() {
    let cases = [
        (10, 125_000, 8_192, false),
        (11, 125_000, 16_384, true),
        (11, 250_000, 8_192, false),
        (12, 250_000, 16_384, true),
        (10, 62_500, 16_384, true),
        (9, 62_500, 8_192, false),
        // "7.8 kHz" is 500/64 = 7.8125 kHz: 128 / 7812.5 Hz = 16.384 ms exactly.
        (7, 7_800, 16_384, true),
        // "41.7 kHz" is 500/12 kHz: 512 · 12 / 500 kHz = 12.288 ms.
        (9, 41_700, 12_288, false),
    ];
    for (sf, bw, tsym_us, on) in cases {
        let p = at(sf, bw);
        assert_eq!(p.symbol_time(), micros(tsym_us), "SF{sf} BW{bw}");
        assert_eq!(p.low_data_rate_on(), on, "SF{sf} BW{bw}");
    }
}

#[test]
fn the_narrowest_band_is_timed_at_its_real_width() {
    // SF7 at "7.8 kHz": Tsym 16.384 ms, optimisation on; 96 bits, ceil(96/20) = 5,
    // 8 + 25 = 33 symbols; 45.25 · 16.384 = 741.376 ms. At a nominal 7800 Hz it
    // would be about 742.6 ms.
    assert_eq!(at(7, 7_800).time_on_air(10), micros(741_376));
}

#[test]
fn default_lorawan_framing_is_valid() {
    for sf in 7..=12 {
        for bw in [125_000, 250_000, 500_000] {
            assert_eq!(at(sf, bw).validate(), vec![], "SF{sf} BW{bw}");
        }
    }
}

#[test]
fn validation_names_every_bad_field() {
    let p = LoraParams {
        spreading_factor: 13,
        bandwidth_hz: 100_000,
        coding_rate: 0,
        ..at(7, 125_000)
    };
    let fields: Vec<String> = p.validate().into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["spreading_factor", "bandwidth_hz", "coding_rate"]);
    assert_eq!(
        LoraParams::new(7, 125_000, 5).validate(),
        [(
            "coding_rate".to_string(),
            "must be 1 (4/5) to 4 (4/8), got 5".to_string()
        )]
    );
    assert_eq!(
        at(6, 125_000).validate(),
        [(
            "explicit_header".to_string(),
            "must be false with spreading factor 6 (the radio has no explicit header there)"
                .to_string()
        )]
    );
}

#[test]
fn settings_that_fail_validation_still_give_a_duration() {
    let zero = LoraParams {
        spreading_factor: 0,
        bandwidth_hz: 0,
        coding_rate: 0,
        ..at(7, 125_000)
    };
    assert!(zero.time_on_air(255) > Duration::ZERO);
    assert!(at(7, 125_000).time_on_air(usize::MAX) > Duration::from_secs(3600));
}

#[test]
fn packet_forwarder_data_rates_parse() {
    assert_eq!(parse_datarate("SF7BW125"), Some((7, 125_000)));
    assert_eq!(parse_datarate("SF12BW500"), Some((12, 500_000)));
    assert_eq!(parse_datarate("SF10BW62.5"), Some((10, 62_500)));
    assert_eq!(parse_datarate("SF9BW7.8"), Some((9, 7_800)));
    assert_eq!(parse_datarate("sf8bw250"), Some((8, 250_000)));
    for bad in [
        "SF13BW125",
        "SF5BW125",
        "SF7BW126",
        "SF7BW",
        "SFBW125",
        "SF+7BW125",
        "SF7 BW125",
        "50000",
        "",
    ] {
        assert_eq!(parse_datarate(bad), None, "{bad:?}");
    }
}

#[test]
fn coding_rates_parse() {
    assert_eq!(parse_coding_rate("4/5"), Some(1));
    assert_eq!(parse_coding_rate("4/6"), Some(2));
    assert_eq!(parse_coding_rate("4/7"), Some(3));
    assert_eq!(parse_coding_rate("4/8"), Some(4));
    for bad in ["4/4", "4/9", "OFF", "1", ""] {
        assert_eq!(parse_coding_rate(bad), None, "{bad:?}");
    }
}
