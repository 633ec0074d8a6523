use bytes::Bytes;
use proptest::prelude::*;

use super::checksum::fletcher8;
use super::*;
use crate::frame::testing::{assert_split_invariant, run, split_at_cuts};
use crate::frame::{BadKind, Framed, FramingConfig};

const UBX_YAML: &str = "
type: binary
sync: [0xB5, 0x62]
length: { offset: 4, width: 2, endian: little, adjust: 2 }
checksum: { kind: fletcher8, from: 2 }
";

fn ubx_config() -> FramingConfig {
    serde_yaml_ng::from_str(UBX_YAML).expect("the UBX example parses")
}

fn ubx(class: u8, id: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xB5, 0x62, class, id];
    f.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    f.extend_from_slice(payload);
    let (a, b) = fletcher8(&f[2..]);
    f.extend_from_slice(&[a, b]);
    f
}

fn bad(out: &Framed) -> &crate::frame::BadFrame {
    match out {
        Framed::Bad(b) => b,
        Framed::Frame(f) => panic!("expected a bad frame, got frame {f:?}"),
    }
}

fn frame(b: &[u8]) -> Framed {
    Framed::Frame(Bytes::copy_from_slice(b))
}

#[test]
fn the_ubx_example_parses_to_the_expected_config_and_validates() {
    let FramingConfig::Binary(c) = ubx_config() else {
        panic!("not binary")
    };
    assert_eq!(c.sync, vec![0xB5, 0x62]);
    assert_eq!(c.length.endian, Endian::Little);
    assert_eq!(
        (c.length.offset, c.length.width, c.length.adjust),
        (4, 2, 2)
    );
    assert_eq!(c.checksum.kind, ChecksumKind::Fletcher8);
    assert_eq!(c.max_length, 4096);
    assert!(ubx_config().validate().is_empty());
}

#[test]
fn an_unknown_key_in_the_binary_block_is_an_error() {
    let yaml = format!("{UBX_YAML}  \nchecksun: {{ kind: xor }}\n");
    let err = serde_yaml_ng::from_str::<FramingConfig>(&yaml).unwrap_err();
    assert!(err.to_string().contains("checksun"), "{err}");
    let yaml = "type: binary\nsync: [1]\nlength: { offset: 1, width: 1, endain: big }\n";
    let err = serde_yaml_ng::from_str::<FramingConfig>(yaml).unwrap_err();
    assert!(err.to_string().contains("endain"), "{err}");
}

#[test]
fn validation_names_each_bad_field() {
    let yaml = "type: binary\nsync: []\nlength: { offset: 0, width: 3 }\n\
                checksum: { kind: crc16 }\nmax_length: 2\n";
    let config: FramingConfig = serde_yaml_ng::from_str(yaml).unwrap();
    let fields: Vec<String> = config.validate().into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        vec!["length.width", "max_length", "checksum.algorithm"]
    );
    let yaml = "type: binary\nsync: [1]\nlength: { offset: 1, width: 1 }\n\
                checksum: { kind: xor, algorithm: modbus }\n";
    let config: FramingConfig = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(config.validate()[0].0, "checksum.algorithm");
}

#[test]
fn ubx_frames_come_out_whole_with_sync_and_checksum() {
    let a = ubx(0x01, 0x07, &[1, 2, 3, 4]);
    let b = ubx(0x01, 0x20, &[]);
    let data = [a.clone(), b.clone()].concat();
    let out = assert_split_invariant(&ubx_config(), &data);
    assert_eq!(out, vec![frame(&a), frame(&b)]);
}

#[test]
fn a_known_ubx_packet_from_its_spec_frames() {
    // UBX-CFG-MSG poll for NAV-PVT: B5 62 06 01 02 00 01 07 11 3A.
    let data = [0xB5, 0x62, 0x06, 0x01, 0x02, 0x00, 0x01, 0x07, 0x11, 0x3A];
    assert_eq!(run(&ubx_config(), &[&data]), vec![frame(&data)]);
}

#[test]
fn garbage_between_frames_is_one_report_per_run() {
    let a = ubx(0x01, 0x07, &[9; 10]);
    let data = [b"xyz\xb5".to_vec(), a.clone(), vec![0xB5; 5], a.clone()].concat();
    let out = assert_split_invariant(&ubx_config(), &data);
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!((bad(&out[0]).kind, bad(&out[0]).len), (BadKind::Garbage, 4));
    assert_eq!(&bad(&out[0]).preview[..], b"xyz\xb5");
    assert_eq!(out[1], frame(&a));
    assert_eq!((bad(&out[2]).kind, bad(&out[2]).len), (BadKind::Garbage, 5));
    assert_eq!(out[3], frame(&a));
}

#[test]
fn a_checksum_failure_is_reported_and_a_frame_inside_it_is_still_found() {
    let inner = ubx(0x02, 0x13, &[7; 3]);
    let mut outer = ubx(
        0x01,
        0x07,
        &[[0u8; 2].as_slice(), &inner, &[0u8; 2]].concat(),
    );
    let n = outer.len();
    outer[n - 1] ^= 0xFF;
    let after = ubx(0x01, 0x20, &[5]);
    let data = [outer.clone(), after.clone()].concat();
    let out = assert_split_invariant(&ubx_config(), &data);
    let report = bad(&out[0]);
    assert_eq!((report.kind, report.len), (BadKind::Checksum, outer.len()));
    assert!(
        report.detail.starts_with("Fletcher-8 checksum 0x"),
        "{}",
        report.detail
    );
    // The bytes of the failed frame are not reported again as garbage.
    assert_eq!(out[1..], [frame(&inner), frame(&after)]);
}

#[test]
fn a_length_over_max_length_is_overlong_and_the_search_goes_on() {
    let a = ubx(0x01, 0x07, &[1]);
    let data = [vec![0xB5, 0x62, 0x01, 0x02, 0xFF, 0xFF], a.clone()].concat();
    let out = assert_split_invariant(&ubx_config(), &data);
    assert_eq!(bad(&out[0]).kind, BadKind::Overlong);
    assert_eq!(bad(&out[0]).len, 6);
    assert_eq!(out[1..], [frame(&a)]);
}

#[test]
fn a_length_too_short_for_the_checksum_is_garbage() {
    let yaml = "type: binary\nsync: [0xAA]\nlength: { offset: 1, width: 1, adjust: -5 }\n\
                checksum: { kind: xor }\n";
    let config: FramingConfig = serde_yaml_ng::from_str(yaml).unwrap();
    let out = assert_split_invariant(&config, &[0xAA, 0x01, 0x00]);
    assert_eq!(bad(&out[0]).kind, BadKind::Garbage);
    assert!(bad(&out[0]).detail.contains("shorter"), "{:?}", out[0]);
    assert_eq!(out.len(), 2, "the last byte is garbage of its own: {out:?}");
}

#[test]
fn an_incomplete_frame_at_the_end_is_truncated() {
    let a = ubx(0x01, 0x07, &[1, 2, 3]);
    let data = [a.clone(), a[..7].to_vec()].concat();
    let out = assert_split_invariant(&ubx_config(), &data);
    assert_eq!(out[0], frame(&a));
    assert_eq!(
        (bad(&out[1]).kind, bad(&out[1]).len),
        (BadKind::Truncated, 7)
    );
    assert_eq!(out.len(), 2);
    // A lone first sync byte at the end is garbage, not a frame.
    let out = run(&ubx_config(), &[&[0xB5]]);
    assert_eq!(bad(&out[0]).kind, BadKind::Garbage);
}

#[test]
fn crc16_modbus_sent_low_byte_first_checks_the_catalogue_vector() {
    // CRC-16/MODBUS of "123456789" is 0x4B37.
    let yaml = "type: binary\nsync: [0x7E]\nlength: { offset: 1, width: 1, adjust: 2 }\n\
                checksum: { kind: crc16, algorithm: modbus, from: 2, endian: little }\n";
    let config: FramingConfig = serde_yaml_ng::from_str(yaml).unwrap();
    assert!(config.validate().is_empty());
    let good = [b"\x7E\x09123456789".as_slice(), &[0x37, 0x4B]].concat();
    let wrong = [b"\x7E\x09123456789".as_slice(), &[0x4B, 0x37]].concat();
    let out = assert_split_invariant(&config, &[good.clone(), wrong].concat());
    assert_eq!(out[0], frame(&good));
    assert_eq!(bad(&out[1]).kind, BadKind::Checksum);
    assert_eq!(
        bad(&out[1]).detail,
        "CRC-16 checksum 0x374B, computed 0x4B37"
    );
}

#[test]
fn crc16_variants_match_their_catalogue_check_values() {
    for (name, check) in [
        ("ccitt_false", 0x29B1u16),
        ("kermit", 0x2189),
        ("xmodem", 0x31C3),
        ("x25", 0x906E),
        ("arc", 0xBB3D),
    ] {
        let yaml = format!(
            "type: binary\nsync: [0x7E]\nlength: {{ offset: 1, width: 1, adjust: 2 }}\n\
             checksum: {{ kind: crc16, algorithm: {name}, from: 2 }}\n"
        );
        let config: FramingConfig = serde_yaml_ng::from_str(&yaml).unwrap();
        let data = [b"\x7E\x09123456789".as_slice(), &check.to_be_bytes()].concat();
        assert_eq!(run(&config, &[&data]), vec![frame(&data)], "{name}");
    }
}

#[test]
fn xor_and_no_checksum_with_a_four_byte_big_endian_length() {
    let yaml = "type: binary\nsync: [0x02]\nlength: { offset: 1, width: 4 }\n\
                checksum: { kind: xor, from: 5, at: -1, to: -1 }\n";
    let config: FramingConfig = serde_yaml_ng::from_str(yaml).unwrap();
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let good = [0x02, 0, 0, 0, 3, 0x10, 0x01, 0x11];
    let out = assert_split_invariant(
        &config,
        &[good.as_slice(), &[0x02, 0, 0, 0, 3, 1, 1, 1]].concat(),
    );
    assert_eq!(out[0], frame(&good));
    assert_eq!(bad(&out[1]).kind, BadKind::Checksum);
    let yaml = "type: binary\nsync: [0x02]\nlength: { offset: 1, width: 4 }\n";
    let config: FramingConfig = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(
        run(&config, &[&[0x02, 0, 0, 0, 1, 9]]),
        vec![frame(&[0x02, 0, 0, 0, 1, 9])]
    );
}

fn mixed_stream() -> Vec<u8> {
    let mut broken = ubx(0x01, 0x35, &[0xB5, 0x62, 1, 2, 3]);
    broken[8] ^= 1;
    [
        vec![0x00, 0x62],
        ubx(0x01, 0x07, &[0xB5; 20]),
        b"$GPGGA,1*00\r\n".to_vec(),
        broken,
        ubx(0x02, 0x15, &[]),
        vec![0xB5, 0x62, 0x01, 0x02, 0xFF, 0x7F],
        ubx(0x01, 0x20, &[0x62; 7]),
        ubx(0x01, 0x20, &[0x62; 7])[..9].to_vec(),
    ]
    .concat()
}

#[test]
fn every_split_of_a_mixed_stream_gives_the_same_output() {
    let out = assert_split_invariant(&ubx_config(), &mixed_stream());
    let good = out.iter().filter(|f| matches!(f, Framed::Frame(_))).count();
    assert_eq!(good, 3, "{out:?}");
}

proptest! {
    #[test]
    fn binary_split_at_random_places_gives_the_same_output(
        cuts in proptest::collection::vec(0usize..200, 0..12),
    ) {
        let data = mixed_stream();
        let config = ubx_config();
        prop_assert_eq!(run(&config, &split_at_cuts(&data, &cuts)), run(&config, &[&data]));
    }

    #[test]
    fn random_bytes_never_panic_and_split_anywhere(
        data in proptest::collection::vec(prop_oneof![Just(0xB5u8), Just(0x62u8), any::<u8>()], 0..300),
        cuts in proptest::collection::vec(0usize..300, 0..4),
    ) {
        let config = ubx_config();
        let whole = run(&config, &[&data]);
        prop_assert_eq!(run(&config, &split_at_cuts(&data, &cuts)), whole.clone());
        for f in whole {
            if let Framed::Bad(b) = f {
                prop_assert!(b.preview.len() <= 64 && b.len >= b.preview.len());
            }
        }
    }
}

fn any_config() -> impl Strategy<Value = BinaryConfig> {
    let kind = prop_oneof![
        Just(ChecksumKind::None),
        Just(ChecksumKind::Xor),
        Just(ChecksumKind::Fletcher8),
        Just(ChecksumKind::Crc16),
    ];
    (
        proptest::collection::vec(prop_oneof![Just(0xB5u8), Just(0x62u8)], 0..3),
        (0usize..5, 0u8..6, -12i64..12, any::<bool>()),
        (
            kind,
            -4i64..6,
            proptest::option::of(-4i64..6),
            proptest::option::of(-4i64..6),
        ),
        0usize..40,
    )
        .prop_map(
            |(sync, (offset, width, adjust, little), (kind, from, to, at), max_length)| {
                BinaryConfig {
                    sync,
                    length: LengthField {
                        offset,
                        width,
                        endian: if little { Endian::Little } else { Endian::Big },
                        adjust,
                    },
                    checksum: ChecksumConfig {
                        kind,
                        algorithm: (kind == ChecksumKind::Crc16).then_some(Crc16Algorithm::Modbus),
                        from,
                        to,
                        at,
                        endian: Endian::Big,
                    },
                    max_length,
                }
            },
        )
}

proptest! {
    /// Even a config that fails validation must not panic, hang or depend on the split.
    #[test]
    fn any_config_on_any_bytes_terminates_and_ignores_the_split(
        config in any_config(),
        data in proptest::collection::vec(prop_oneof![Just(0xB5u8), Just(0x62u8), 0u8..8], 0..120),
        cut in 0usize..120,
    ) {
        let config = FramingConfig::Binary(config);
        let whole = run(&config, &[&data]);
        prop_assert_eq!(run(&config, &split_at_cuts(&data, &[cut])), whole.clone());
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        prop_assert_eq!(run(&config, &bytes), whole);
    }
}
