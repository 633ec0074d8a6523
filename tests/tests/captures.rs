//! The GPS captures of the demo and the default tests are made by the project's own
//! generator (`cargo run -p mqgate-tests --bin make-captures`): the committed files
//! are exactly what it makes, and mqgate's framers find in them the drive they
//! describe: a cold start, the fix lost and regained, a reboot, the faults.

use mqgate::capture::Capture;
use mqgate::frame::{BadKind, Framed, FramingConfig};
use mqgate_tests::captures;
use mqgate_tests::mqgate::workspace_file;

fn frames(framing: &str, bytes: &[u8]) -> (Vec<Vec<u8>>, Vec<BadKind>) {
    let config: FramingConfig = serde_yaml_ng::from_str(framing).expect("framing");
    let mut framer = config.build();
    let mut out = Vec::new();
    framer.push(bytes, &mut out);
    framer.finish(&mut out);
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for f in out {
        match f {
            Framed::Frame(b) => good.push(b.to_vec()),
            Framed::Bad(b) => bad.push(b.kind),
        }
    }
    (good, bad)
}

/// Lengths of the runs of equal values: [a, a, b] -> [(a, 2), (b, 1)].
fn runs<T: PartialEq + Copy>(values: impl IntoIterator<Item = T>) -> Vec<(T, usize)> {
    let mut out: Vec<(T, usize)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((last, n)) if *last == v => *n += 1,
            _ => out.push((v, 1)),
        }
    }
    out
}

#[test]
fn the_committed_gps_captures_are_what_the_generator_makes() {
    for (name, made) in captures::all() {
        let path = workspace_file(&format!("tests/captures/{name}"));
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == made,
            "{} differs from what the generator makes: run `cargo run -p mqgate-tests --bin make-captures` and commit the result",
            path.display()
        );
    }
}

#[test]
fn the_nmea_log_has_a_cold_start_a_fix_lost_under_a_bridge_and_a_reboot() {
    let log = Capture::load(&workspace_file("tests/captures/gps-nmea.log")).expect("loads");
    let (good, bad) = frames(
        "{ type: lines, nmea_checksum: true, skip_comments: true }",
        &log.bytes(),
    );
    // One GGA's checksum, the sentence cut by the reboot, the banner's text line, and
    // the cut-off last line.
    assert_eq!(
        bad,
        [
            BadKind::Checksum,
            BadKind::Checksum,
            BadKind::Garbage,
            BadKind::Truncated
        ]
    );
    let text: Vec<String> = good
        .iter()
        .map(|f| String::from_utf8(f.clone()).expect("ASCII"))
        .collect();
    // RMC status per second: void, active, void under the bridge, active, void after
    // the reboot, active.
    let status = text
        .iter()
        .filter(|s| s.starts_with("$GPRMC"))
        .map(|s| s.split(',').nth(2).expect("status").chars().next());
    assert_eq!(
        runs(status),
        [
            (Some('V'), 4),
            (Some('A'), 44),
            (Some('V'), 8),
            (Some('A'), 24),
            (Some('V'), 3),
            (Some('A'), 37)
        ]
    );
    // The banner comes right after the cut sentence, before the receiver starts again.
    let banner = text
        .iter()
        .position(|s| s.starts_with("$GPTXT"))
        .expect("banner");
    assert!(
        text[banner - 1].starts_with("$GPRMC"),
        "{}",
        text[banner - 1]
    );
    assert!(
        text[banner + 3].starts_with("$GPGGA,094220.00,,"),
        "{}",
        text[banner + 3]
    );
    // Twelve satellites in view, nine of them used with a fix.
    let gsv = text.iter().find(|s| s.starts_with("$GPGSV")).expect("GSV");
    assert_eq!(gsv.split(',').nth(3), Some("12"));
    let gsa = text
        .iter()
        .find(|s| s.starts_with("$GPGSA,A,3"))
        .expect("GSA with a 3D fix");
    let used = gsa.split(',').skip(3).take(12).filter(|p| !p.is_empty());
    assert_eq!(used.count(), 9);
}

#[test]
fn the_ubx_log_has_the_same_drive_with_its_faults() {
    let log = Capture::load(&workspace_file("tests/captures/gps-ubx.log")).expect("loads");
    let (good, bad) = frames(
        "{ type: binary, sync: [0xB5, 0x62], length: { offset: 4, width: 2, endian: little, adjust: 2 }, \
           checksum: { kind: fletcher8, from: 2 } }",
        &log.bytes(),
    );
    assert!(bad.contains(&BadKind::Checksum), "{bad:?}");
    assert_eq!(bad.last(), Some(&BadKind::Truncated), "{bad:?}");
    let kind = |f: &Vec<u8>| (f[2], f[3]);
    // NAV-PVT's fixType (payload offset 20) per second: the bad checksum (second 20)
    // and the frame cut by the reboot (second 79) are missing.
    let fix = good
        .iter()
        .filter(|f| kind(f) == (0x01, 0x07))
        .map(|f| f[6 + 20]);
    assert_eq!(
        runs(fix),
        [(0, 4), (3, 43), (0, 8), (3, 23), (0, 3), (3, 7)]
    );
    let count = |k| good.iter().filter(|f| kind(f) == k).count();
    assert_eq!(count((0x01, 0x14)), 88, "NAV-HPPOSLLH");
    assert_eq!(count((0x01, 0x35)), 18, "NAV-SAT");
    assert_eq!(count((0x01, 0x20)), 9, "NAV-TIMEGPS");
}

/// The demo plays its captures at the pace the devices sent them: every replay
/// source of `examples/demo.yaml` plays a capture with its timing (not a raw file,
/// which plays all at once), and what it publishes, spread over the recording, is
/// a device's pace, not a firehose.
#[test]
fn the_demo_plays_every_capture_at_the_pace_its_device_sent_it() {
    use mqgate::config::{GatewayConfig, SourceKind};
    let demo = workspace_file("examples/demo.yaml");
    let config = GatewayConfig::load(&demo).expect("the demo loads");
    let mut total_rate = 0.0;
    for source in &config.sources {
        let replay = match &source.kind {
            SourceKind::Replay(r) => r,
            SourceKind::Rn2483(m) => match &m.replay {
                Some(r) => r,
                None => continue,
            },
            SourceKind::Rak3172(m) => match &m.replay {
                Some(r) => r,
                None => continue,
            },
            _ => continue,
        };
        let capture = Capture::load(&replay.file).expect("the capture loads");
        if capture.chunks.is_empty() {
            continue; // the empty LPP capture: nothing to play
        }
        assert!(
            !replay.fast && replay.speed.unwrap_or(1.0) == 1.0,
            "{}: plays at the recorded pace",
            source.id
        );
        let recorded = capture.chunks.last().expect("chunks").at.as_secs_f64();
        assert!(
            recorded >= 30.0,
            "{}: {} plays its {} bytes in {recorded} s",
            source.id,
            replay.file.display(),
            capture.bytes().len()
        );
        let messages = mqgate_tests::mqgate::dry_run(&demo, &source.id, &replay.file).len();
        let rate = messages as f64 / recorded;
        eprintln!("{}: {messages} messages in {recorded:.0} s", source.id);
        assert!(
            rate <= 6.0,
            "{}: {messages} messages in {recorded:.0} s",
            source.id
        );
        total_rate += rate;
    }
    assert!(
        total_rate <= 15.0,
        "the demo publishes {total_rate:.1} messages a second"
    );
}
