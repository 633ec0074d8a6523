use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// A `Write` whose bytes the test can read back after the writer is dropped.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn full_header() -> CaptureHeader {
    CaptureHeader {
        port: Some("/dev/serial/by-id/usb-FTDI_FT232R_USB_UART-if00-port0".into()),
        baud: Some(9600),
        data_bits: Some(8),
        parity: Some(Parity::Even),
        stop_bits: Some(1),
        started_at: Some("2026-11-26T06:00:00.000000Z".into()),
    }
}

fn write_capture(header: CaptureHeader, chunks: &[(u64, &[u8])]) -> Vec<u8> {
    let sink = Shared::default();
    let mut w = CaptureWriter::new(sink.clone(), header).unwrap();
    for (us, bytes) in chunks {
        w.write_chunk(Duration::from_micros(*us), bytes).unwrap();
    }
    w.flush().unwrap();
    let data = sink.0.lock().unwrap().clone();
    data
}

fn syntax_error(text: &str) -> (usize, String) {
    match Capture::parse(text.as_bytes(), "gps.cap") {
        Err(CaptureError::Syntax {
            name,
            line,
            message,
        }) => {
            assert_eq!(name, "gps.cap");
            (line, message)
        }
        other => panic!("expected a syntax error for {text:?}, got {other:?}"),
    }
}

#[test]
fn a_written_capture_loads_back_with_its_header_timing_and_chunk_boundaries() {
    let chunks: &[(u64, &[u8])] = &[
        (0, b"$GPGGA,"),
        (1042, b"1*00\r"),
        (1042, b"\n"),
        (5_000_000, &[0, 0xFF, 0xB5]),
    ];
    let data = write_capture(full_header(), chunks);
    let path = std::env::temp_dir().join(format!("mqgate-capture-{}.cap", std::process::id()));
    std::fs::write(&path, &data).unwrap();
    let loaded = Capture::load(&path);
    std::fs::remove_file(&path).unwrap();
    let loaded = loaded.unwrap();
    assert_eq!(loaded.header, full_header());
    let got: Vec<(u64, Vec<u8>)> = loaded
        .chunks
        .iter()
        .map(|c| (c.at.as_micros() as u64, c.bytes.to_vec()))
        .collect();
    let want: Vec<(u64, Vec<u8>)> = chunks.iter().map(|(t, b)| (*t, b.to_vec())).collect();
    assert_eq!(got, want);
    assert_eq!(loaded.duration(), Duration::from_secs(5));
}

#[test]
fn the_written_text_is_the_documented_format() {
    let header = CaptureHeader {
        port: Some("/dev/ttyUSB0".into()),
        baud: Some(4800),
        ..CaptureHeader::default()
    };
    let text = String::from_utf8(write_capture(header, &[(12, b"A\r\n"), (13, b"")])).unwrap();
    assert_eq!(
        text,
        "# mqgate capture v1\nport: /dev/ttyUSB0\nbaud: 4800\n\
         # <microseconds since start> <bytes read, in hex>\n12 410d0a\n"
    );
}

#[test]
fn comments_blank_lines_crlf_and_upper_case_hex_are_accepted() {
    let text = "# mqgate capture v1\r\n# recorded on a Pi\r\nbaud: 115200\r\n\r\n0 4142\r\n  # more\r\n7\tFFfe\r\n";
    let c = Capture::parse(text.as_bytes(), "x").unwrap();
    assert_eq!(c.header.baud, Some(115200));
    assert_eq!(c.bytes(), b"AB\xff\xfe");
    assert_eq!(c.chunks[1].at, Duration::from_micros(7));
}

#[test]
fn errors_name_the_file_and_the_line() {
    let m = "# mqgate capture v1\n";
    let cases: &[(&str, usize, &str)] = &[
        ("baud: fast\n", 2, "is not a baud rate"),
        ("# c\nspeed: 9600\n", 3, "unknown header `speed`"),
        ("baud: 1\nbaud: 2\n", 3, "appears twice"),
        ("parity: mark\n", 2, "not none, odd or even"),
        ("data_bits: 9\n", 2, "5, 6, 7 or 8"),
        ("stop_bits: 3\n", 2, "1 or 2"),
        ("port\n", 2, "needs `key: value`"),
        ("port:\n", 2, "has no value"),
        ("0 41\nbaud: 9600\n", 3, "after the first data line"),
        ("0 414\n", 2, "odd number of digits"),
        ("0 4g\n", 2, "`g` at column 2 is not a hex digit"),
        ("0\n", 2, "needs `<microseconds> <hex bytes>`"),
        ("1x 41\n", 2, "not a whole number"),
        ("5 41\n\n4 42\n", 4, "before the previous line"),
    ];
    for (body, line, needle) in cases {
        let (got_line, message) = syntax_error(&format!("{m}{body}"));
        assert_eq!(got_line, *line, "{body:?}: {message}");
        assert!(message.contains(needle), "{body:?}: {message}");
    }
    let err = Capture::parse(b"# mqgate capture v1\n0 41\n\xff\n", "bin.cap").unwrap_err();
    assert_eq!(
        err.to_string(),
        "bin.cap:3: capture file is not valid UTF-8 text"
    );
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let err = Capture::load(Path::new("/nonexistent/mqgate.cap")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/mqgate.cap"), "{err}");
}

#[test]
fn a_file_without_the_magic_line_is_raw_and_drops_comment_lines_only_at_line_starts() {
    let data = b"# Name: x\n#\n$GPZDA*00\r\n# between\n\xb5\x62#not\n#last";
    let c = Capture::parse(data, "raw.log").unwrap();
    assert_eq!(c.header, CaptureHeader::default());
    assert_eq!(c.chunks.len(), 1);
    assert_eq!(c.chunks[0].at, Duration::ZERO);
    assert_eq!(&c.chunks[0].bytes[..], b"$GPZDA*00\r\n\xb5\x62#not\n");
    // Almost the magic line is still raw.
    let c = Capture::parse(b"# mqgate capture v10\n0 41\n", "raw").unwrap();
    assert_eq!(c.chunks.len(), 1);
    assert!(Capture::parse(b"", "empty").unwrap().chunks.is_empty());
    assert!(Capture::parse(b"# only a comment", "c")
        .unwrap()
        .chunks
        .is_empty());
}

#[test]
fn the_writer_refuses_header_values_that_would_break_the_format() {
    let bad = CaptureHeader {
        port: Some("/dev/tty\nbaud: 1".into()),
        ..CaptureHeader::default()
    };
    assert!(CaptureWriter::new(Shared::default(), bad).is_err());
    let mut w = CaptureWriter::new(Shared::default(), CaptureHeader::default()).unwrap();
    w.write_chunk(Duration::from_millis(5), b"a").unwrap();
    assert!(w.write_chunk(Duration::from_millis(4), b"b").is_err());
}

fn gpsd_dir() -> PathBuf {
    let dir = crate::real_data::real_data("gpsd");
    assert!(
        dir.is_dir(),
        "the gpsd logs are missing: {} does not exist",
        dir.display()
    );
    dir
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn every_gpsd_log_loads_as_one_raw_chunk_without_its_comment_lines() {
    let mut logs = 0;
    for entry in std::fs::read_dir(gpsd_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("log") {
            continue;
        }
        logs += 1;
        let raw = std::fs::read(&path).unwrap();
        let c = Capture::load(&path).unwrap();
        assert_eq!(c.header, CaptureHeader::default());
        assert_eq!(c.chunks.len(), 1, "{}", path.display());
        let expected: Vec<u8> = raw
            .split_inclusive(|&b| b == b'\n')
            .filter(|line| line.first() != Some(&b'#'))
            .flatten()
            .copied()
            .collect();
        assert_eq!(c.chunks[0].bytes.to_vec(), expected, "{}", path.display());
        assert!(!c.chunks[0].bytes.starts_with(b"#"));
        assert!(expected.len() + 300 < raw.len() + 300 && expected.len() < raw.len());
    }
    assert_eq!(logs, 9, "expected the nine gpsd logs");
}

proptest! {
    #[test]
    fn any_chunks_round_trip_through_the_text_format(
        chunks in proptest::collection::vec(
            (0u64..10_000_000, proptest::collection::vec(any::<u8>(), 1..40)), 0..20),
    ) {
        let mut chunks = chunks;
        chunks.sort_by_key(|c| c.0);
        let refs: Vec<(u64, &[u8])> = chunks.iter().map(|(t, b)| (*t, b.as_slice())).collect();
        let data = write_capture(full_header(), &refs);
        let c = Capture::parse(&data, "p").unwrap();
        prop_assert_eq!(c.header, full_header());
        let got: Vec<(u64, Vec<u8>)> =
            c.chunks.iter().map(|c| (c.at.as_micros() as u64, c.bytes.to_vec())).collect();
        prop_assert_eq!(got, chunks);
    }

    #[test]
    fn arbitrary_bytes_after_the_magic_line_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut data = b"# mqgate capture v1\n".to_vec();
        data.extend_from_slice(&tail);
        let _ = Capture::parse(&data, "fuzz");
    }
}

#[test]
fn the_example_in_the_format_document_parses() {
    let doc_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/capture-format.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let start = doc
        .find("```\n# mqgate capture v1")
        .expect("the example block")
        + 4;
    let end = start + doc[start..].find("```").unwrap();
    let c = Capture::parse(&doc.as_bytes()[start..end], "example").unwrap();
    assert_eq!(c.header.baud, Some(9600));
    assert_eq!(c.header.parity, Some(Parity::None));
    assert_eq!(c.chunks.len(), 4);
    assert_eq!(c.chunks[3].at, Duration::from_micros(2_000_517));
    assert!(c.bytes().starts_with(b"$GNRMC,081411.000,A,"));
}
