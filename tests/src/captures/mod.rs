//! The captures of the demo and the default tests, made here instead of recorded.
//!
//! - A GPS receiver driving around a block, in NMEA 0183 (`gps-nmea.log`) and in
//!   u-blox UBX (`gps-ubx.log`), in gpsd's raw log format (`#` comment lines, then
//!   the bytes as the receiver sends them, without their timing).
//! - The demo's captures in `demo/`: the same two receivers and the invented JSON
//!   and binary sensors (`json-sensor.log`, `binary-sensor.bin`) in mqgate's capture
//!   format, each read at the time a serial port would have delivered it, so that
//!   the demo plays them at the pace of the devices (one position or one reading a
//!   second), not the whole file at once.
//!
//! - The demo's LoRaWAN path: uplinks as The Things Stack publishes them
//!   (`demo/ttn-uplinks.cap`, one JSON object a line, see `ttn`).
//!
//! `make-captures` writes them into `tests/captures/`; a test checks that the
//! committed files are what it makes.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use mqgate::capture::{format_utc, CaptureHeader, CaptureWriter, Parity};

pub mod drive;
pub mod nmea;
pub mod ttn;
pub mod ubx;

/// Bytes a USB serial adapter hands over in one read at most.
const READ_SIZE: usize = 64;
/// Length of one of the invented binary sensor's frames.
const BINARY_FRAME: usize = 18;

/// Each generated capture: its path in `tests/captures/` and its bytes.
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    let started = drive::epochs(1)[0].unix;
    let json = committed("json-sensor.log");
    let binary = committed("binary-sensor.bin");
    vec![
        ("gps-nmea.log", nmea::log()),
        ("gps-ubx.log", ubx::log()),
        (
            "demo/gps-nmea.cap",
            timed(
                "the NMEA receiver of gps-nmea.log, one epoch a second",
                "/dev/ttyUSB0",
                9600,
                started,
                &nmea::seconds(),
            ),
        ),
        (
            "demo/gps-ubx.cap",
            timed(
                "the UBX receiver of gps-ubx.log, one epoch a second",
                "/dev/ttyACM0",
                9600,
                started,
                &ubx::seconds(),
            ),
        ),
        (
            "demo/json-sensor.cap",
            timed(
                "the lines of json-sensor.log, one a second",
                "/dev/ttyUSB1",
                115_200,
                started,
                &json
                    .split_inclusive(|&b| b == b'\n')
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "demo/binary-sensor.cap",
            timed(
                "the 18-byte frames of binary-sensor.bin, one a second",
                "/dev/ttyUSB2",
                19_200,
                started,
                &binary
                    .chunks(BINARY_FRAME)
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "demo/ttn-uplinks.cap",
            timed(
                "LoRaWAN uplinks as The Things Stack publishes them (captures/ttn.rs), one a second",
                "network-server",
                115_200,
                started,
                &ttn::lines(),
            ),
        ),
    ]
}

/// A committed capture that is not generated (the invented sensors' files).
fn committed(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A capture of `seconds` as a serial port at `baud` (8N1) delivers them: second
/// `i`'s bytes start at `i` s and arrive at the line's pace (10 bits a byte), in
/// reads of at most `READ_SIZE` bytes, each at the time its last byte arrived.
fn timed(what: &str, port: &str, baud: u32, started_unix: i64, seconds: &[Vec<u8>]) -> Vec<u8> {
    let header = CaptureHeader {
        port: Some(port.to_string()),
        baud: Some(baud),
        data_bits: Some(8),
        parity: Some(Parity::None),
        stop_bits: Some(1),
        started_at: Some(format_utc(
            UNIX_EPOCH + Duration::from_secs(started_unix as u64),
        )),
    };
    let buffer = Buffer::default();
    let mut writer = CaptureWriter::new(buffer.clone(), header).expect("a valid header");
    let byte_time = Duration::from_secs(10) / baud;
    let mut last = Duration::ZERO;
    for (i, bytes) in seconds.iter().enumerate() {
        let start = Duration::from_secs(i as u64);
        let mut sent = 0u32;
        for read in bytes.chunks(READ_SIZE) {
            sent += read.len() as u32;
            // A second that takes longer than a second on the line runs on.
            let at = (start + byte_time * sent).max(last);
            writer.write_chunk(at, read).expect("in order");
            last = at;
        }
    }
    writer.flush().expect("write to memory");
    let lines = buffer.0.lock().expect("not poisoned").clone();
    // The generator's note goes after the magic line, before the header.
    let text = String::from_utf8(lines).expect("capture text is UTF-8");
    let (magic, rest) = text.split_once('\n').expect("a magic line");
    format!(
        "{magic}\n# Made by mqgate's capture generator (cargo run -p mqgate-tests --bin \
         make-captures):\n# {what}, as a serial port delivers them.\n{rest}"
    )
    .into_bytes()
}

/// A `Write` into memory the caller keeps a handle on.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
