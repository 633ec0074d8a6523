use proptest::prelude::*;

use super::*;
use crate::frame::testing::{assert_split_invariant, frame, kinds, run, split_at_cuts};
use crate::frame::FramingConfig;

fn lines(max_length: usize, nmea_checksum: bool, skip_comments: bool) -> FramingConfig {
    FramingConfig::Lines(LinesConfig {
        max_length,
        nmea_checksum,
        skip_comments,
        ..LinesConfig::default()
    })
}

const GGA: &[u8] = b"$GPGGA,081412.000,5541.1956,N,03737.2877,E,1,5,4.87,66.2,M,14.5,M,,*6A";

#[test]
fn cr_lf_and_crlf_each_end_a_line_and_empty_lines_are_skipped() {
    let out = assert_split_invariant(&lines(4096, false, false), b"a\rb\nc\r\nd\n\n\r\r\ne\r\n");
    assert_eq!(
        out,
        vec![
            frame(b"a"),
            frame(b"b"),
            frame(b"c"),
            frame(b"d"),
            frame(b"e")
        ]
    );
}

#[test]
fn a_crlf_split_across_two_pushes_is_one_line_end() {
    let config = lines(4096, false, false);
    assert_eq!(
        run(&config, &[b"abc\r", b"\ndef\r\n"]),
        vec![frame(b"abc"), frame(b"def")]
    );
}

#[test]
fn a_good_nmea_sentence_passes_the_checksum_check() {
    let mut data = GGA.to_vec();
    data.extend_from_slice(b"\r\n!AIVDM,1,1,,A,13aEOK?P00PD2wVMdLDRhgvL289?,0*26\n");
    let out = assert_split_invariant(&lines(4096, true, false), &data);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], frame(GGA));
    assert!(matches!(out[1], Framed::Frame(_)), "{:?}", out[1]);
}

#[test]
fn a_wrong_nmea_checksum_is_reported_with_both_values() {
    let out = run(
        &lines(4096, true, false),
        &[b"$GPZDA,081411.000,26,05,2014,,*5C\n"],
    );
    let Framed::Bad(bad) = &out[0] else {
        panic!("expected a bad frame, got {out:?}")
    };
    assert_eq!(bad.kind, BadKind::Checksum);
    assert_eq!(bad.detail, "NMEA checksum 0x5C, computed 0x5D");
    assert_eq!(bad.len, 33);
    assert_eq!(&bad.preview[..], b"$GPZDA,081411.000,26,05,2014,,*5C");
}

#[test]
fn lower_case_hex_digits_are_accepted() {
    let out = run(
        &lines(4096, true, false),
        &[b"$GPZDA,081411.000,26,05,2014,,*5d\n"],
    );
    assert_eq!(kinds(&out), vec![None]);
}

#[test]
fn a_missing_or_malformed_nmea_checksum_is_a_checksum_error() {
    let data = b"$GPBOD,,T,,M,,*\n$GPBOD,,T,,M,,\n$GPZDA,1*ZZ\n$\n";
    let out = assert_split_invariant(&lines(4096, true, false), data);
    assert_eq!(kinds(&out), vec![Some(BadKind::Checksum); 4]);
}

#[test]
fn a_line_that_is_no_sentence_is_garbage_when_checking_checksums() {
    let out = run(&lines(4096, true, false), &[b"hello\n\xb5\x62\x01\n"]);
    assert_eq!(kinds(&out), vec![Some(BadKind::Garbage); 2]);
    let out = run(&lines(4096, false, false), &[b"hello\n"]);
    assert_eq!(out, vec![frame(b"hello")]);
}

#[test]
fn comment_lines_are_dropped_silently_only_when_asked() {
    let data = b"# Name: test\n$GPZDA,081411.000,26,05,2014,,*5D\n#last";
    let out = assert_split_invariant(&lines(4096, true, true), data);
    assert_eq!(out, vec![frame(b"$GPZDA,081411.000,26,05,2014,,*5D")]);
    let out = run(&lines(4096, false, false), &[data]);
    assert_eq!(out[0], frame(b"# Name: test"));
    assert_eq!(kinds(&out), vec![None, None, Some(BadKind::Truncated)]);
}

#[test]
fn an_overlong_line_is_reported_once_and_skipped_to_its_end() {
    let data = b"abcd\nabcdefghij\nxy\r\n";
    let out = assert_split_invariant(&lines(4, false, false), data);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], frame(b"abcd"));
    let Framed::Bad(bad) = &out[1] else {
        panic!("expected overlong, got {out:?}")
    };
    assert_eq!(bad.kind, BadKind::Overlong);
    assert_eq!(bad.len, 5);
    assert_eq!(&bad.preview[..], b"abcde");
    assert_eq!(out[2], frame(b"xy"));
}

#[test]
fn an_overlong_preview_is_cut_to_64_bytes() {
    let data = [b'x'; 200];
    let out = run(&lines(100, false, false), &[&data, b"\n"]);
    let Framed::Bad(bad) = &out[0] else {
        panic!("expected overlong, got {out:?}")
    };
    assert_eq!(
        (bad.kind, bad.len, bad.preview.len()),
        (BadKind::Overlong, 101, 64)
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn a_line_without_its_end_is_truncated_at_finish_and_nothing_else() {
    let out = assert_split_invariant(&lines(4096, true, false), b"$GPBOD,,T,,M,,*");
    assert_eq!(kinds(&out), vec![Some(BadKind::Truncated)]);
    assert!(run(&lines(4096, true, false), &[b"ab\r\n"]).len() == 1);
    assert!(run(&lines(4096, true, false), &[]).is_empty());
}

#[test]
fn a_framer_is_fresh_again_after_finish() {
    let mut framer = lines(4096, false, false).build();
    let mut out = Vec::new();
    framer.push(b"abc", &mut out);
    framer.finish(&mut out);
    framer.push(b"def\n", &mut out);
    assert_eq!(kinds(&out), vec![Some(BadKind::Truncated), None]);
    assert_eq!(out[1], frame(b"def"));
}

#[test]
fn check_nmea_accepts_and_rejects_by_the_spec() {
    assert!(check_nmea(b"$GPZDA,081411.000,26,05,2014,,*5D").is_ok());
    assert_eq!(check_nmea(b"GPZDA*00").unwrap_err().0, BadKind::Garbage);
    assert_eq!(check_nmea(b"$*00").map_err(|e| e.0), Ok(()));
    assert_eq!(check_nmea(b"$*01").unwrap_err().0, BadKind::Checksum);
}

fn mixed_stream() -> Vec<u8> {
    let mut d = b"# header\r\n".to_vec();
    d.extend_from_slice(GGA);
    d.extend_from_slice(b"\r\n$GPZDA,081411.000,26,05,2014,,*5C\n\n\rjunk\r");
    d.extend_from_slice(&[b'z'; 40]);
    d.extend_from_slice(b"\n$GPBOD,,T,,M,,*");
    d
}

proptest! {
    #[test]
    fn lines_split_at_random_places_give_the_same_output(
        cuts in proptest::collection::vec(0usize..200, 0..12),
        nmea in any::<bool>(),
        comments in any::<bool>(),
    ) {
        let data = mixed_stream();
        let config = lines(32, nmea, comments);
        let whole = run(&config, &[&data]);
        prop_assert_eq!(run(&config, &split_at_cuts(&data, &cuts)), whole);
    }

    #[test]
    fn random_bytes_never_panic_and_frames_never_contain_a_line_end(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        cut in 0usize..300,
    ) {
        let config = lines(16, true, true);
        let out = run(&config, &split_at_cuts(&data, &[cut]));
        prop_assert_eq!(&out, &run(&config, &[&data]));
        for f in out {
            match f {
                Framed::Frame(b) => prop_assert!(!b.contains(&b'\n') && !b.contains(&b'\r') && b.len() <= 16),
                Framed::Bad(b) => prop_assert!(b.preview.len() <= 64 && b.len >= b.preview.len()),
            }
        }
    }
}

#[test]
fn every_split_of_the_mixed_stream_gives_the_same_output() {
    for (nmea, comments) in [(false, false), (true, false), (true, true)] {
        assert_split_invariant(&lines(32, nmea, comments), &mixed_stream());
    }
}

#[test]
fn a_lines_block_parses_with_defaults_and_rejects_unknown_keys() {
    let config: FramingConfig =
        serde_yaml_ng::from_str("type: lines\nnmea_checksum: true\n").unwrap();
    assert_eq!(
        config,
        FramingConfig::Lines(LinesConfig {
            nmea_checksum: true,
            ..LinesConfig::default()
        })
    );
    assert!(config.validate().is_empty());
    assert_eq!(FramingConfig::default(), lines(4096, false, false));
    let err =
        serde_yaml_ng::from_str::<FramingConfig>("type: lines\nmax_lenght: 80\n").unwrap_err();
    assert!(err.to_string().contains("max_lenght"), "{err}");
    let err = serde_yaml_ng::from_str::<FramingConfig>("type: hdlc\n").unwrap_err();
    assert!(err.to_string().contains("hdlc"), "{err}");
    let zero: FramingConfig = serde_yaml_ng::from_str("type: lines\nmax_length: 0\n").unwrap();
    assert_eq!(
        zero.validate(),
        vec![("max_length".to_string(), "must be at least 1".to_string())]
    );
}
