//! The framers on the gpsd logs of real receivers: their counts of good frames and bad
//! checksums equal those of a simple scan written here, and any split of the input gives
//! the same output.

use std::collections::HashSet;
use std::path::PathBuf;

use mqgate::capture::Capture;
use mqgate::frame::{BadKind, Framed, FramingConfig, LinesConfig};

#[path = "common/split.rs"]
mod split;
use split::random_chunks;

#[path = "common/real_data.rs"]
mod real_data;
use real_data::real_data;

const UBX: &str = "
type: binary
sync: [0xB5, 0x62]
length: { offset: 4, width: 2, endian: little, adjust: 2 }
checksum: { kind: fletcher8, from: 2 }
";

fn logs() -> Vec<PathBuf> {
    let dir = real_data("gpsd");
    assert!(
        dir.is_dir(),
        "the gpsd logs are missing: {} does not exist",
        dir.display()
    );
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("log"))
        .collect();
    logs.sort();
    assert_eq!(
        logs.len(),
        9,
        "expected the nine gpsd logs in {}",
        dir.display()
    );
    logs
}

fn nmea() -> FramingConfig {
    FramingConfig::Lines(LinesConfig {
        nmea_checksum: true,
        skip_comments: true,
        ..LinesConfig::default()
    })
}

fn ubx() -> FramingConfig {
    serde_yaml_ng::from_str(UBX).unwrap()
}

fn run<C: AsRef<[u8]>>(config: &FramingConfig, chunks: impl IntoIterator<Item = C>) -> Vec<Framed> {
    let mut framer = config.build();
    let mut out = Vec::new();
    for c in chunks {
        framer.push(c.as_ref(), &mut out);
    }
    framer.finish(&mut out);
    out
}

/// Counts per kind: good frames, then checksum, overlong, garbage, truncated reports.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
struct Counts {
    good: usize,
    checksum: usize,
    overlong: usize,
    garbage: usize,
    truncated: usize,
}

fn count(out: &[Framed]) -> Counts {
    let mut c = Counts::default();
    for f in out {
        match f {
            Framed::Frame(_) => c.good += 1,
            Framed::Bad(b) => match b.kind {
                BadKind::Checksum => c.checksum += 1,
                BadKind::Overlong => c.overlong += 1,
                BadKind::Garbage => c.garbage += 1,
                BadKind::Truncated => c.truncated += 1,
            },
        }
    }
    c
}

/// Lines scan: cut at every CR and LF, drop empty and `#` lines, judge each sentence.
fn scan_nmea(data: &[u8]) -> Counts {
    let mut c = Counts::default();
    let ends_with_line_end = matches!(data.last(), Some(b'\n' | b'\r'));
    let pieces: Vec<&[u8]> = data.split(|&b| b == b'\n' || b == b'\r').collect();
    for (i, line) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        if line.len() > 4096 {
            c.overlong += 1;
        } else if last && !ends_with_line_end {
            c.truncated += 1;
        } else if line[0] != b'$' && line[0] != b'!' {
            c.garbage += 1;
        } else {
            let n = line.len();
            let sum = &line[n.saturating_sub(2)..];
            let good = n >= 4
                && line[n - 3] == b'*'
                && sum.iter().all(u8::is_ascii_hexdigit)
                && u8::from_str_radix(std::str::from_utf8(sum).unwrap(), 16).unwrap()
                    == line[1..n - 3].iter().fold(0, |a, b| a ^ b);
            if good {
                c.good += 1;
            } else {
                c.checksum += 1;
            }
        }
    }
    c
}

/// UBX scan: at each `B5 62` with a whole frame behind it, check the Fletcher sums; jump
/// over a good frame, else step one byte.
fn scan_ubx(data: &[u8]) -> (usize, usize) {
    let (mut good, mut bad) = (0, 0);
    let mut i = 0;
    while i + 6 <= data.len() {
        if data[i] != 0xB5 || data[i + 1] != 0x62 {
            i += 1;
            continue;
        }
        let total = u16::from_le_bytes([data[i + 4], data[i + 5]]) as usize + 8;
        if total > 4096 || i + total > data.len() {
            i += 1;
            continue;
        }
        let (mut a, mut b) = (0u8, 0u8);
        for &x in &data[i + 2..i + total - 2] {
            a = a.wrapping_add(x);
            b = b.wrapping_add(a);
        }
        if [a, b] == data[i + total - 2..i + total] {
            good += 1;
            i += total;
        } else {
            bad += 1;
            i += 1;
        }
    }
    (good, bad)
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn nmea_lines_of_every_log_match_an_independent_count_and_any_split() {
    let mut total_good = 0;
    for path in logs() {
        let data = std::fs::read(&path).unwrap();
        let out = run(&nmea(), [data.clone()]);
        let counts = count(&out);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        println!("lines+nmea {name}: {counts:?}");
        assert_eq!(counts, scan_nmea(&data), "{name}");
        for f in &out {
            if let Framed::Frame(b) = f {
                assert!(b[0] == b'$' || b[0] == b'!', "{name}: {b:?}");
            }
        }
        let bytewise = run(&nmea(), data.iter().map(|&b| vec![b]));
        assert_eq!(bytewise, out, "{name}: byte by byte");
        for seed in 1..=8 {
            let chunks = random_chunks(&data, seed, 97);
            assert_eq!(run(&nmea(), chunks), out, "{name}: random split {seed}");
        }
        total_good += counts.good;
    }
    assert!(
        total_good > 1000,
        "only {total_good} good sentences in all logs"
    );
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn ubx_packets_of_every_log_match_an_independent_count_and_any_split() {
    let mut ubx_logs = 0;
    for path in logs() {
        let data = Capture::load(&path).unwrap().bytes();
        let out = run(&ubx(), [data.clone()]);
        let counts = count(&out);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        println!("binary+ubx {name}: {counts:?}");
        assert_eq!((counts.good, counts.checksum), scan_ubx(&data), "{name}");
        for f in &out {
            if let Framed::Frame(b) = f {
                let len = u16::from_le_bytes([b[4], b[5]]) as usize;
                assert_eq!((&b[..2], b.len()), (&[0xB5, 0x62][..], len + 8), "{name}");
            }
        }
        if name.starts_with("ublox-neo-m8") || name.starts_with("ublox-ned") {
            ubx_logs += 1;
            assert!(counts.good >= 20, "{name}: only {} UBX frames", counts.good);
        } else {
            assert_eq!(counts.good, 0, "{name} has no UBX");
        }
        let bytewise = run(&ubx(), data.iter().map(|&b| vec![b]));
        assert_eq!(bytewise, out, "{name}: byte by byte");
        for seed in 1..=8 {
            let chunks = random_chunks(&data, seed, 61);
            assert_eq!(run(&ubx(), chunks), out, "{name}: random split {seed}");
        }
    }
    assert_eq!(ubx_logs, 3);
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn the_cut_off_ends_of_the_logs_are_reported() {
    let dir = real_data("gpsd");
    let garmin = std::fs::read(dir.join("garmin-geko201.log")).unwrap();
    let out = run(&nmea(), [garmin]);
    match out.last() {
        Some(Framed::Bad(b)) => {
            assert_eq!(b.kind, BadKind::Checksum);
            assert_eq!(&b.preview[..], b"$GPBOD,,T,,M,,*");
        }
        other => panic!("expected a last line without checksum, got {other:?}"),
    }
    let m8t = Capture::load(&dir.join("ublox-neo-m8t.log"))
        .unwrap()
        .bytes();
    let out = run(&ubx(), [m8t]);
    let truncated: Vec<_> = out
        .iter()
        .filter_map(|f| match f {
            Framed::Bad(b) if b.kind == BadKind::Truncated => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(truncated.len(), 1, "{truncated:?}");
    assert_eq!(&truncated[0].preview[..4], &[0xB5, 0x62, 0x02, 0x15]);
}

/// For a log of NMEA text, gpsd's own regression output (`.chk`) passes the receiver's
/// sentences through: the good sentences here are exactly the `.chk` sentences that are
/// whole lines of the log, in order. gpsd also finds a sentence glued behind another on
/// one line (a receiver reboot cut the first one short); the lines framer reports such a
/// line as one bad line, so those are only checked to be in the log.
#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn good_nmea_sentences_equal_those_gpsd_passed_through() {
    let nmea_logs = [
        "bu353-glonass.log",
        "ericsson-gru04.log",
        "garmin-geko201.log",
        "gp-320fw-2019-04-07-coldboot.log",
        "st-teseo-liv3f.log",
        "ublox-neo-m9n-nmea.log",
    ];
    let dir = real_data("gpsd");
    for name in nmea_logs {
        let log = std::fs::read(dir.join(name)).unwrap();
        let chk = std::fs::read(dir.join(format!("{name}.chk"))).unwrap();
        let good: Vec<String> = run(&nmea(), [log.clone()])
            .into_iter()
            .filter_map(|f| match f {
                Framed::Frame(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                Framed::Bad(_) => None,
            })
            .collect();
        let log_lines: HashSet<&[u8]> = log.split(|&b| b == b'\n' || b == b'\r').collect();
        let (passed, glued): (Vec<&[u8]>, Vec<&[u8]>) = chk
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| l.starts_with(b"$") || l.starts_with(b"!"))
            .partition(|l| log_lines.contains(l));
        println!(
            "{name}: {} good sentences; gpsd passed {} whole lines and {} glued sentences",
            good.len(),
            passed.len(),
            glued.len()
        );
        let passed: Vec<String> = passed
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        assert_eq!(good, passed, "{name}");
        for g in glued {
            assert!(
                log.windows(g.len()).any(|w| w == g),
                "{name}: {g:?} not in the log"
            );
        }
    }
}

/// Offset and length of each whole UBX frame with a good checksum, found the way
/// `scan_ubx` finds them.
fn ubx_frame_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i + 6 <= data.len() {
        let total = u16::from_le_bytes([data[i + 4], data[i + 5]]) as usize + 8;
        if data[i] != 0xB5 || data[i + 1] != 0x62 || total > 4096 || i + total > data.len() {
            i += 1;
            continue;
        }
        let sums = data[i + 2..i + total - 2]
            .iter()
            .fold((0u8, 0u8), |(a, b), &x| {
                (a.wrapping_add(x), b.wrapping_add(a.wrapping_add(x)))
            });
        if [sums.0, sums.1] == data[i + total - 2..i + total] {
            spans.push((i, total));
            i += total;
        } else {
            i += 1;
        }
    }
    spans
}

/// The UBX frames of every log, by message class and id, equal those of the scan, and
/// the logs hold what their provenance notes say (52, 242 and 165 frames).
#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn ubx_message_kinds_of_every_log_match_an_independent_scan() {
    use std::collections::BTreeMap;
    let mut totals = BTreeMap::new();
    for path in logs() {
        let data = Capture::load(&path).unwrap().bytes();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut framed: BTreeMap<(u8, u8), usize> = BTreeMap::new();
        for f in run(&ubx(), [data.clone()]) {
            if let Framed::Frame(b) = f {
                *framed.entry((b[2], b[3])).or_default() += 1;
            }
        }
        let mut scanned: BTreeMap<(u8, u8), usize> = BTreeMap::new();
        for (at, _) in ubx_frame_spans(&data) {
            *scanned.entry((data[at + 2], data[at + 3])).or_default() += 1;
        }
        assert_eq!(framed, scanned, "{name}");
        totals.insert(name, framed);
    }
    let kinds = |list: &[((u8, u8), usize)]| list.iter().copied().collect::<BTreeMap<_, _>>();
    // NAV-PVT, NAV-TIMEGPS, NAV-SAT
    assert_eq!(
        totals["ublox-neo-m8n.log"],
        kinds(&[((1, 0x07), 24), ((1, 0x20), 23), ((1, 0x35), 5)])
    );
    // NAV-POSECEF, NAV-DOP, NAV-SOL, NAV-VELECEF, NAV-TIMEGPS, NAV-SBAS, NAV-SAT, RXM-RAWX
    assert_eq!(
        totals["ublox-neo-m8t.log"],
        kinds(&[
            ((1, 0x01), 39),
            ((1, 0x04), 39),
            ((1, 0x06), 39),
            ((1, 0x11), 39),
            ((1, 0x20), 39),
            ((1, 0x32), 4),
            ((1, 0x35), 4),
            ((2, 0x15), 39),
        ])
    );
    // RXM-SFRBX only
    assert_eq!(
        totals["ublox-ned-m8t-sbfrx3.log"],
        kinds(&[((2, 0x13), 165)])
    );
    let ubx_logs = totals.values().filter(|k| !k.is_empty()).count();
    assert_eq!(ubx_logs, 3, "{totals:?}");
}

/// The real UBX logs hold no frame with a bad checksum, so flip one payload byte in
/// every third frame: each is reported as a bad checksum, the others still come
/// through, and the counts equal the scan's on the changed bytes.
#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn ubx_frames_with_a_flipped_byte_are_counted_as_bad_checksums() {
    for name in [
        "ublox-ned-m8t-sbfrx3.log",
        "ublox-neo-m8n.log",
        "ublox-neo-m8t.log",
    ] {
        let dir = real_data("gpsd");
        let mut data = Capture::load(&dir.join(name)).unwrap().bytes();
        let spans = ubx_frame_spans(&data);
        let mut flipped = 0;
        for &(at, total) in spans.iter().step_by(3) {
            // The last payload byte (every frame here has a payload).
            assert!(total > 8, "{name}: empty payload at {at}");
            data[at + total - 3] ^= 0x40;
            flipped += 1;
        }
        let counts = count(&run(&ubx(), [data.clone()]));
        assert_eq!((counts.good, counts.checksum), scan_ubx(&data), "{name}");
        assert_eq!(counts.good, spans.len() - flipped, "{name}");
        assert!(
            counts.checksum >= flipped,
            "{name}: {counts:?}, {flipped} flipped"
        );
        let bytewise = run(&ubx(), data.iter().map(|&b| vec![b]));
        assert_eq!(count(&bytewise), counts, "{name}: byte by byte");
    }
}
