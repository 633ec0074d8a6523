//! `mqgate capture` records a serial port (a pseudo-terminal here) into a capture
//! file that `mqgate replay` plays back to the same frames.

use std::io::Write;
use std::time::Duration;

use mqgate::capture::Capture;
use mqgate_tests::mqgate::{dry_run, mqgate, workspace_file};
use test_support::process::Proc;
use test_support::pty::plug;
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(15);

/// Bytes a process has read so far (`rchar` of /proc/PID/io).
fn read_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines().find_map(|l| {
                l.strip_prefix("rchar: ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

#[test]
fn capture_records_every_read_of_a_port_and_replay_plays_it_back() {
    let scratch = Scratch::new("capture");
    let link = scratch.path().join("ttyGPS");
    let mut master = plug(&link);
    let out = scratch.path().join("gps.cap");
    let mut cmd = mqgate();
    cmd.args(["capture", "--port"])
        .arg(&link)
        .args(["--baud", "9600", "--out"])
        .arg(&out);
    let mut capture = Proc::spawn("mqgate capture", cmd);
    // The file exists with its header once the port is open.
    let deadline = std::time::Instant::now() + WAIT;
    while !out.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no capture file appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read(workspace_file("tests/captures/gps-nmea.log")).expect("capture");
    for piece in log.chunks(700) {
        master.write_all(piece).expect("write to the pty");
        master.flush().expect("flush");
    }
    // Wait until mqgate has read every byte (its read count), then stop it like a user would.
    let deadline = std::time::Instant::now() + WAIT;
    while read_bytes(capture.pid()) < log.len() as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "mqgate read {} of {} bytes",
            read_bytes(capture.pid()),
            log.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    capture.signal(libc::SIGINT);
    let status = capture.wait_exit(WAIT);
    assert!(status.success(), "{}", capture.transcript());
    let recorded = Capture::load(&out).expect("the capture loads");
    assert_eq!(recorded.header.port.as_deref(), link.to_str());
    assert_eq!(recorded.header.baud, Some(9600));
    assert_eq!(recorded.bytes(), log, "every byte, in order");
    assert!(recorded.chunks.len() >= 2, "one chunk per read");
    // Replaying the capture gives the same messages as replaying the raw log.
    let demo = workspace_file("examples/demo.yaml");
    assert_eq!(
        dry_run(&demo, "gps", &out),
        dry_run(&demo, "gps", &workspace_file("tests/captures/gps-nmea.log"))
    );
    drop(master);
}

/// The line settings go into the port and the file's header; the command says what
/// it records and how to stop; a port another mqgate holds is named as the likely
/// reason it cannot be opened.
#[test]
fn capture_takes_the_line_settings_says_what_it_records_and_names_a_busy_port() {
    let scratch = Scratch::new("capture-settings");
    let link = scratch.path().join("ttyMETER");
    let _master = plug(&link);
    let out = scratch.path().join("meter.cap");
    let mut cmd = mqgate();
    cmd.args(["capture", "--port"])
        .arg(&link)
        .args(["--baud", "19200", "--data-bits", "7", "--parity", "even"])
        .args(["--stop-bits", "2", "--out"])
        .arg(&out);
    let mut capture = Proc::spawn("mqgate capture", cmd);
    let line = capture.wait_for_line(
        test_support::process::Stream::Stderr,
        &["recording", "Ctrl-C stops"],
        WAIT,
    );
    assert!(line.contains("at 19200 7E2"), "{line}");

    // The port is held for exclusive use: a second capture is refused with the hint.
    let mut second = mqgate();
    second
        .args(["capture", "--port"])
        .arg(&link)
        .args(["--baud", "19200", "--out"])
        .arg(scratch.path().join("second.cap"));
    let done = test_support::process::run_to_end("second capture", second, WAIT);
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    assert!(
        done.stderr.contains("a running mqgate may hold it"),
        "{}",
        done.stderr
    );

    capture.signal(libc::SIGINT);
    assert!(
        capture.wait_exit(WAIT).success(),
        "{}",
        capture.transcript()
    );
    let recorded = Capture::load(&out).expect("the capture loads");
    assert_eq!(recorded.header.baud, Some(19200));
    assert_eq!(recorded.header.data_bits, Some(7));
    assert_eq!(recorded.header.stop_bits, Some(2));
    assert_eq!(
        recorded.header.parity.map(|p| p.to_string()).as_deref(),
        Some("even")
    );
}
