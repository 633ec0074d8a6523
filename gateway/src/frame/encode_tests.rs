//! Each framing in reverse: what `encode` writes, the source's own framer reads back.

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;

use super::testing::{frame, split_at_cuts};
use super::*;

/// What a fresh framer of `config` reads from `bytes` pushed in two pieces, cut at `cut`,
/// then `finish`. An idle-gap framer gets its silence before the end of input, as the
/// line goes quiet after a write.
fn read_back(config: &FramingConfig, bytes: &[u8], cut: Index) -> Vec<Framed> {
    let mut framer = config.build();
    let mut out = Vec::new();
    for piece in split_at_cuts(bytes, &[cut.index(bytes.len() + 1)]) {
        framer.push(piece, &mut out);
    }
    if let FramingConfig::IdleGap(_) = config {
        framer.idle(&mut out);
    }
    framer.finish(&mut out);
    out
}

fn encoded(config: &FramingConfig, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    config
        .encode(payload, &mut out)
        .unwrap_or_else(|e| panic!("{payload:?} does not encode: {e}"));
    out
}

fn error(config: &FramingConfig, payload: &[u8]) -> String {
    let mut out = Vec::new();
    let err = config
        .encode(payload, &mut out)
        .expect_err("should not encode");
    assert!(out.is_empty(), "nothing is written for a refused payload");
    err.to_string()
}

fn yaml(text: &str) -> FramingConfig {
    serde_yaml_ng::from_str(text).expect("parses")
}

fn nmea_xor(body: &[u8]) -> u8 {
    body.iter().fold(0, |a, b| a ^ b)
}

// --- lines -----------------------------------------------------------------------------

fn line_ending() -> impl Strategy<Value = LineEnding> {
    prop_oneof![
        Just(LineEnding::Crlf),
        Just(LineEnding::Lf),
        Just(LineEnding::Cr)
    ]
}

fn text_byte() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("not a line end", |&b| b != b'\r' && b != b'\n')
}

proptest! {
    #[test]
    fn a_line_reads_back_as_itself_with_every_line_ending(
        line in prop::collection::vec(text_byte(), 1..100),
        skip_comments: bool,
        line_ending in line_ending(),
        cut: Index,
    ) {
        prop_assume!(!(skip_comments && line[0] == b'#'));
        let config = FramingConfig::Lines(LinesConfig {
            skip_comments,
            line_ending,
            ..LinesConfig::default()
        });
        let bytes = encoded(&config, &line);
        prop_assert!(bytes.ends_with(line_ending.as_bytes()));
        prop_assert_eq!(read_back(&config, &bytes, cut), vec![frame(&line)]);
    }

    /// Under `nmea_checksum` the frame read back is the sentence with its checksum: the
    /// payload itself when it brought one, else the payload with `*HH` appended.
    #[test]
    fn an_nmea_sentence_reads_back_with_its_checksum(
        talker in prop_oneof![Just(b'$'), Just(b'!')],
        body in prop::collection::vec(text_byte(), 0..80),
        brings_its_own: bool,
        lower_case: bool,
        line_ending in line_ending(),
        cut: Index,
    ) {
        let sentence = [vec![talker], body.clone()].concat();
        let n = sentence.len();
        // A `*` third from the end would read as a checksum the test did not mean.
        prop_assume!(!(n >= 4 && sentence[n - 3] == b'*'));
        let checksum = format!("*{:02X}", nmea_xor(&body));
        let payload = match (brings_its_own, lower_case) {
            (false, _) => sentence.clone(),
            (true, false) => [&sentence[..], checksum.as_bytes()].concat(),
            (true, true) => [&sentence[..], checksum.to_lowercase().as_bytes()].concat(),
        };
        let config = FramingConfig::Lines(LinesConfig {
            nmea_checksum: true,
            line_ending,
            ..LinesConfig::default()
        });
        let bytes = encoded(&config, &payload);
        let expected = if brings_its_own {
            payload.clone()
        } else {
            [&sentence[..], checksum.as_bytes()].concat()
        };
        prop_assert_eq!(read_back(&config, &bytes, cut), vec![frame(&expected)]);
    }
}

#[test]
fn a_known_nmea_sentence_gets_its_published_checksum() {
    let config = yaml("type: lines\nnmea_checksum: true");
    // By hand: P 0x50 ^ M 0x4D = 0x1D; ^ T 0x54 = 0x49; ^ K 0x4B = 0x02;
    // then three `0` (0x30): 0x32, 0x02, 0x32. MediaTek's test command is `$PMTK000*32`.
    assert_eq!(encoded(&config, b"$PMTK000"), b"$PMTK000*32\r\n");
    // The GGA example of the NMEA guides (gpsinformation.org), published with `*47`.
    let gga = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,";
    let with = [&gga[..], b"*47\r\n"].concat();
    assert_eq!(encoded(&config, gga), with);
    assert_eq!(
        encoded(&config, &with[..with.len() - 2]),
        with,
        "a right checksum is kept"
    );
    // MediaTek's "fix every 1000 ms", as its manual prints it.
    assert_eq!(encoded(&config, b"$PMTK220,1000"), b"$PMTK220,1000*1F\r\n");
}

#[test]
fn the_line_ending_key_is_crlf_by_default_and_takes_lf_and_cr() {
    let FramingConfig::Lines(c) = yaml("type: lines") else {
        panic!("not lines")
    };
    assert_eq!(c.line_ending, LineEnding::Crlf);
    for (name, end) in [("lf", &b"\n"[..]), ("cr", b"\r"), ("crlf", b"\r\n")] {
        let config = yaml(&format!("type: lines\nline_ending: {name}"));
        assert_eq!(
            encoded(&config, b"AT"),
            [&b"AT"[..], end].concat(),
            "{name}"
        );
    }
    let err = serde_yaml_ng::from_str::<FramingConfig>("type: lines\nline_ending: crcr")
        .unwrap_err()
        .to_string();
    assert!(err.contains("crcr"), "{err}");
}

#[test]
fn a_line_refuses_what_its_reader_would_not_give_back() {
    let plain = yaml("type: lines\nmax_length: 4");
    assert_eq!(
        error(&plain, b""),
        "the payload is empty, and the reader skips empty lines"
    );
    assert_eq!(
        error(&plain, b"ab\rc"),
        "a line cannot hold CR or LF (byte 2)"
    );
    assert_eq!(
        error(&plain, b"\nab"),
        "a line cannot hold CR or LF (byte 0)"
    );
    assert_eq!(
        encoded(&plain, b"abcd"),
        b"abcd\r\n",
        "max_length itself fits"
    );
    assert_eq!(
        error(&plain, b"abcde"),
        "line of 5 bytes is longer than max_length 4"
    );
    let comments = yaml("type: lines\nskip_comments: true");
    assert_eq!(
        error(&comments, b"# hi"),
        "a line starting with `#` is a comment, which skip_comments drops"
    );
    assert_eq!(
        encoded(&plain, b"# hi"),
        b"# hi\r\n",
        "without skip_comments"
    );
}

#[test]
fn an_nmea_line_refuses_a_wrong_checksum_and_anything_but_a_sentence() {
    let nmea = yaml("type: lines\nnmea_checksum: true\nmax_length: 12");
    assert_eq!(
        error(&nmea, b"PMTK000"),
        "with nmea_checksum a line must start with `$` or `!`"
    );
    assert_eq!(
        error(&nmea, b"$PMTK000*33"),
        "NMEA checksum *33 is wrong: the sentence's is *32"
    );
    assert_eq!(
        error(&nmea, b"$PMTK000*G2"),
        "NMEA checksum *G2 is wrong: the sentence's is *32"
    );
    assert_eq!(
        error(&nmea, b"$PMTK00000"),
        "line of 13 bytes is longer than max_length 12",
        "the appended checksum counts"
    );
}

// --- binary ----------------------------------------------------------------------------

/// What a test's length field counts, and so the `adjust` that says it.
#[derive(Debug, Clone, Copy)]
enum Counts {
    /// Everything after the field, checksum included: adjust 0.
    WhatFollows,
    /// What follows up to the checksum: adjust is the checksum's size.
    PayloadOnly,
    /// The whole packet, sync included: adjust is minus the bytes up to the field's end.
    WholePacket,
}

const ALGORITHMS: [Crc16Algorithm; 11] = [
    Crc16Algorithm::Modbus,
    Crc16Algorithm::CcittFalse,
    Crc16Algorithm::Kermit,
    Crc16Algorithm::Xmodem,
    Crc16Algorithm::X25,
    Crc16Algorithm::Arc,
    Crc16Algorithm::Usb,
    Crc16Algorithm::Maxim,
    Crc16Algorithm::Dnp,
    Crc16Algorithm::Genibus,
    Crc16Algorithm::Mcrf4xx,
];

fn endian() -> impl Strategy<Value = Endian> {
    prop_oneof![Just(Endian::Big), Just(Endian::Little)]
}

fn checksum() -> impl Strategy<Value = ChecksumConfig> {
    let kind = prop_oneof![
        Just(ChecksumKind::None),
        Just(ChecksumKind::Xor),
        Just(ChecksumKind::Fletcher8),
        Just(ChecksumKind::Crc16)
    ];
    (kind, prop::sample::select(ALGORITHMS.to_vec()), endian()).prop_map(
        |(kind, algorithm, endian)| ChecksumConfig {
            kind,
            algorithm: (kind == ChecksumKind::Crc16).then_some(algorithm),
            endian,
            ..ChecksumConfig::default()
        },
    )
}

proptest! {
    /// The binary framer emits the whole packet: it reads back exactly the bytes written,
    /// which are the sync, the payload's bytes before the field, the field, the rest of the
    /// payload and a checksum the framer accepts.
    #[test]
    fn a_binary_packet_reads_back_whole_around_its_payload(
        sync in prop_oneof![Just(vec![]), Just(vec![0x7E]), Just(vec![0xB5, 0x62])],
        before_field in 0usize..=2,
        width in prop_oneof![Just(1u8), Just(2), Just(4)],
        endian in endian(),
        counts in prop_oneof![
            Just(Counts::WhatFollows),
            Just(Counts::PayloadOnly),
            Just(Counts::WholePacket)
        ],
        mut checksum in checksum(),
        checksum_skips_sync: bool,
        payload in prop::collection::vec(any::<u8>(), 0..=200),
        cut: Index,
    ) {
        prop_assume!(payload.len() >= before_field);
        let size = checksum.kind.size();
        let header = sync.len() + before_field + width as usize;
        if checksum.kind != ChecksumKind::None && checksum_skips_sync {
            checksum.from = sync.len() as i64;
        }
        let adjust = match counts {
            Counts::WhatFollows => 0,
            Counts::PayloadOnly => size as i64,
            Counts::WholePacket => -(header as i64),
        };
        let config = FramingConfig::Binary(BinaryConfig {
            sync: sync.clone(),
            length: LengthField { offset: sync.len() + before_field, width, endian, adjust },
            checksum,
            max_length: 4096,
        });
        let bytes = encoded(&config, &payload);

        let rest = payload.len() - before_field;
        let value = match counts {
            Counts::WhatFollows => rest + size,
            Counts::PayloadOnly => rest,
            Counts::WholePacket => header + rest + size,
        } as u64;
        let mut field = value.to_be_bytes()[8 - width as usize..].to_vec();
        if endian == Endian::Little {
            field.reverse();
        }
        let (head, tail) = payload.split_at(before_field);
        let expected = [&sync[..], head, &field, tail].concat();
        prop_assert_eq!(bytes.len(), expected.len() + size);
        prop_assert_eq!(&bytes[..expected.len()], &expected[..]);
        prop_assert_eq!(read_back(&config, &bytes, cut), vec![frame(&bytes)]);
    }
}

#[test]
fn a_known_ubx_packet_is_written_from_class_id_and_message() {
    let ubx = yaml(
        "type: binary\nsync: [0xB5, 0x62]\n\
         length: { offset: 4, width: 2, endian: little, adjust: 2 }\n\
         checksum: { kind: fletcher8, from: 2 }",
    );
    // UBX-CFG-MSG polling NAV-STATUS, from the u-blox protocol specification.
    assert_eq!(
        encoded(&ubx, &[0x06, 0x01, 0x01, 0x07]),
        [0xB5, 0x62, 0x06, 0x01, 0x02, 0x00, 0x01, 0x07, 0x11, 0x3A]
    );
    // UBX-CFG-RATE: measure every 200 ms (0x00C8), one measurement per fix, GPS time.
    assert_eq!(
        encoded(&ubx, &[0x06, 0x08, 0xC8, 0x00, 0x01, 0x00, 0x01, 0x00]),
        [0xB5, 0x62, 0x06, 0x08, 0x06, 0x00, 0xC8, 0x00, 0x01, 0x00, 0x01, 0x00, 0xDE, 0x6A]
    );
}

#[test]
fn crc16_variants_write_their_catalogue_check_values() {
    // The catalogue's check value is the CRC of "123456789".
    for (name, endian, check) in [
        ("modbus", "little", 0x4B37u16),
        ("ccitt_false", "big", 0x29B1),
        ("kermit", "big", 0x2189),
        ("xmodem", "little", 0x31C3),
        ("x25", "big", 0x906E),
        ("arc", "big", 0xBB3D),
    ] {
        let config = yaml(&format!(
            "type: binary\nsync: [0x7E]\nlength: {{ offset: 1, width: 1, adjust: 2 }}\n\
             checksum: {{ kind: crc16, algorithm: {name}, from: 2, endian: {endian} }}"
        ));
        let stored = match endian {
            "little" => check.to_le_bytes(),
            _ => check.to_be_bytes(),
        };
        let expected = [&b"\x7E\x09123456789"[..], &stored].concat();
        assert_eq!(encoded(&config, b"123456789"), expected, "{name}");
    }
}

#[test]
fn a_checksum_placed_and_ranged_by_position_is_written_where_the_reader_looks() {
    let config = yaml(
        "type: binary\nsync: [0x02]\nlength: { offset: 1, width: 4 }\n\
         checksum: { kind: xor, from: 5, at: -1, to: -1 }",
    );
    // 0x10 ^ 0x01 = 0x11; the field counts the payload and the checksum after it.
    assert_eq!(
        encoded(&config, &[0x10, 0x01]),
        [0x02, 0, 0, 0, 3, 0x10, 0x01, 0x11]
    );
}

#[test]
fn a_binary_packet_refuses_what_its_length_field_or_max_length_cannot_say() {
    let one_byte = yaml("type: binary\nsync: [0x7E]\nlength: { offset: 1, width: 1 }");
    assert_eq!(
        encoded(&one_byte, &[7; 255])[1],
        255,
        "the largest that fits"
    );
    assert_eq!(
        error(&one_byte, &[7; 256]),
        "payload of 256 bytes does not fit a 1-byte length field (it would hold 256)"
    );
    let small =
        yaml("type: binary\nsync: [0x7E]\nlength: { offset: 1, width: 2 }\nmax_length: 256");
    assert_eq!(encoded(&small, &[7; 253]).len(), 256);
    assert_eq!(
        error(&small, &[7; 254]),
        "packet of 257 bytes is longer than max_length 256"
    );
    let counts_extra =
        yaml("type: binary\nsync: [0x7E]\nlength: { offset: 1, width: 1, adjust: 3 }");
    assert_eq!(
        error(&counts_extra, &[1, 2]),
        "payload of 2 bytes is too short for this framing: the length field would hold -1 (adjust 3)"
    );
    let far_checksum = yaml(
        "type: binary\nsync: [0x7E]\nlength: { offset: 1, width: 1 }\n\
         checksum: { kind: xor, from: 8 }",
    );
    assert_eq!(
        error(&far_checksum, &[1, 2]),
        "payload of 2 bytes is too short for this framing: \
         the packet would be 5 bytes, and the framing needs 9"
    );
}

#[test]
fn a_binary_framing_that_cannot_be_written_says_why() {
    let cases = [
        (
            "sync: [0x7E]\nlength: { offset: 1, width: 0 }",
            "a length field of 0 bytes",
        ),
        (
            "sync: [0x7E, 0x7E]\nlength: { offset: 1, width: 1 }",
            "the length field overlaps the sync bytes",
        ),
        (
            "sync: [0x7E]\nlength: { offset: 1, width: 1 }\nchecksum: { kind: xor, at: 1 }",
            "the checksum at byte 1 overlaps the sync bytes or the length field",
        ),
        (
            "sync: [0x7E]\nlength: { offset: 1, width: 1 }\nchecksum: { kind: xor, at: 2, to: -1 }",
            "the checksum would cover its own bytes",
        ),
        (
            "sync: [0x7E]\nlength: { offset: 1, width: 1 }\nchecksum: { kind: crc16 }",
            "crc16 without an algorithm",
        ),
    ];
    for (keys, why) in cases {
        let config = yaml(&format!("type: binary\n{keys}"));
        assert_eq!(
            error(&config, &[1, 2, 3]),
            format!("this framing cannot be written: {why}"),
            "{keys}"
        );
    }
}

// --- slip, cobs, idle_gap --------------------------------------------------------------

proptest! {
    #[test]
    fn a_slip_or_cobs_packet_reads_back_as_itself(
        payload in prop::collection::vec(
            prop_oneof![any::<u8>(), Just(0x00), Just(0xC0), Just(0xDB)], 1..300),
        resync_at_start: bool,
        cut: Index,
    ) {
        let slip = FramingConfig::Slip(SlipConfig { resync_at_start, ..SlipConfig::default() });
        let cobs = FramingConfig::Cobs(CobsConfig { resync_at_start, ..CobsConfig::default() });
        for config in [slip, cobs] {
            let bytes = encoded(&config, &payload);
            prop_assert_eq!(read_back(&config, &bytes, cut), vec![frame(&payload)]);
        }
    }

    #[test]
    fn an_idle_gap_burst_reads_back_as_itself_after_the_silence(
        payload in prop::collection::vec(any::<u8>(), 1..300),
        cut: Index,
    ) {
        let config = FramingConfig::IdleGap(IdleGapConfig::default());
        let bytes = encoded(&config, &payload);
        prop_assert_eq!(&bytes, &payload);
        prop_assert_eq!(read_back(&config, &bytes, cut), vec![frame(&payload)]);
    }
}

#[test]
fn packets_and_bursts_refuse_empty_and_overlong_payloads() {
    for (kind, what) in [
        ("slip", "packets"),
        ("cobs", "packets"),
        ("idle_gap", "bursts"),
    ] {
        let config = yaml(&format!("type: {kind}\nmax_length: 3"));
        assert_eq!(
            error(&config, b""),
            format!("the payload is empty, and the reader skips empty {what}")
        );
        assert!(config.encode(b"abc", &mut Vec::new()).is_ok(), "{kind}");
        assert_eq!(
            error(&config, b"abcd"),
            "payload of 4 bytes is longer than max_length 3",
            "{kind}"
        );
    }
}

#[test]
fn only_idle_gap_asks_for_quiet_after_a_write_and_it_is_the_readers_gap() {
    let char_time = Duration::from_millis(10);
    let default = yaml("type: idle_gap");
    assert_eq!(
        default.quiet_after(char_time),
        Some(Duration::from_millis(35)),
        "3.5 characters of 10 ms"
    );
    assert_eq!(
        default.quiet_after(Duration::from_micros(100)),
        Some(Duration::from_millis(20)),
        "never less than min_gap_ms"
    );
    let fixed = yaml("type: idle_gap\nbaud: 1200\ngap_chars: 1\nmin_gap_ms: 1");
    assert_eq!(
        fixed.quiet_after(char_time).map(|d| d.as_micros()),
        Some(8333),
        "a configured baud wins over the port's, as when reading"
    );
    let mut framer = fixed.build();
    framer.set_char_time(char_time);
    framer.push(b"x", &mut Vec::new());
    assert_eq!(framer.idle_after(), fixed.quiet_after(char_time));
    for other in ["type: lines", "type: slip", "type: cobs"] {
        assert_eq!(yaml(other).quiet_after(char_time), None, "{other}");
    }
}
