//! The NMEA 0183 log: GGA, GSA, RMC and VTG every second, GSV every fifth, as a
//! receiver sends them at 9600 baud, with the faults a real serial line shows.

use super::drive::{self, Epoch, FixState, GEOID_SEPARATION};

/// Epochs in the log.
pub const EPOCHS: usize = 120;
/// The GGA of this epoch arrives with a flipped bit: its checksum fails.
pub const BAD_CHECKSUM_EPOCH: usize = 30;
/// The receiver reboots during the VTG of this epoch: the sentence is cut off,
/// a few bytes of noise follow, then its boot banner.
pub const REBOOT_AFTER_EPOCH: usize = 79;

const HEADER: &str = "\
# Name: mqgate simulated GPS receiver (NMEA 0183)
# Chipset: none: made by the capture generator of mqgate's tests, not recorded
# Notes: parked, then laps around a city block at 8 m/s; cold start without a
#  fix, a bad checksum, the fix lost under a bridge and regained, a reboot with
#  its banner and a warm start, and a last line cut off.
";

/// The boot banner: a line of plain text, then text sentences.
const BANNER: [&str; 4] = [
    "SIMGNSS boot 2.1 (build 0314)",
    "GPTXT,01,03,02,SW VERSION 2.1",
    "GPTXT,02,03,02,HW SIM-9600",
    "GPTXT,03,03,02,ANTENNA OK",
];

/// A sentence `$<body>*HH\r\n`.
pub fn sentence(body: &str) -> String {
    let sum = body.bytes().fold(0u8, |a, b| a ^ b);
    format!("${body}*{sum:02X}\r\n")
}

/// The whole log file.
pub fn log() -> Vec<u8> {
    let mut out = HEADER.as_bytes().to_vec();
    seconds().iter().for_each(|s| out.extend_from_slice(s));
    out
}

/// What the receiver sends in each second of the drive, in order.
pub fn seconds() -> Vec<Vec<u8>> {
    let epochs = drive::epochs(EPOCHS);
    let mut seconds = Vec::with_capacity(EPOCHS);
    for (i, e) in epochs.iter().enumerate() {
        let mut out = Vec::new();
        let mut lines = vec![gga(e), gsa(e)];
        if i % 5 == 0 {
            lines.extend(gsv(e));
        }
        lines.push(rmc(e));
        lines.push(vtg(e));
        for (n, line) in lines.iter().enumerate() {
            let last = n + 1 == lines.len();
            if i == BAD_CHECKSUM_EPOCH && n == 0 {
                // One bit flipped in transit: ',' (0x2C) became '-' (0x2D) in the
                // altitude's unit separator.
                let corrupt = line.replacen(",M,", "-M,", 1);
                assert_ne!(&corrupt, line);
                out.extend_from_slice(corrupt.as_bytes());
            } else if i == REBOOT_AFTER_EPOCH && last {
                out.extend_from_slice(&line.as_bytes()[..20]);
                out.extend_from_slice(&[0x00, 0xFE, 0xFF, 0x7F]);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(BANNER[0].as_bytes());
                out.extend_from_slice(b"\r\n");
                for text in &BANNER[1..] {
                    out.extend_from_slice(sentence(text).as_bytes());
                }
            } else if i + 1 == EPOCHS && last {
                // The recording stopped in the middle of a sentence.
                out.extend_from_slice(&line.as_bytes()[..line.len() / 2]);
            } else {
                out.extend_from_slice(line.as_bytes());
            }
        }
        seconds.push(out);
    }
    seconds
}

fn hhmmss(unix: i64) -> String {
    let (_, _, _, h, m, s) = drive::civil(unix);
    format!("{h:02}{m:02}{s:02}.00")
}

/// Degrees as NMEA's `(d)ddmm.mmmmm` and its hemisphere letter.
fn angle(value: f64, degree_digits: usize, positive: char, negative: char) -> String {
    let hemisphere = if value < 0.0 { negative } else { positive };
    // In units of 1e-5 minutes, so rounding never gives 60 minutes.
    let total = (value.abs() * 60.0 * 100_000.0).round() as u64;
    let degrees = total / 6_000_000;
    let minutes = total % 6_000_000;
    format!(
        "{degrees:0degree_digits$}{:02}.{:05},{hemisphere}",
        minutes / 100_000,
        minutes % 100_000
    )
}

fn position(e: &Epoch) -> String {
    format!(
        "{},{}",
        angle(e.lat, 2, 'N', 'S'),
        angle(e.lon, 3, 'E', 'W')
    )
}

fn gga(e: &Epoch) -> String {
    let body = match e.fix {
        FixState::Fix3d => format!(
            "GPGGA,{},{},1,{:02},{:.2},{:.1},M,{GEOID_SEPARATION:.1},M,,",
            hhmmss(e.unix),
            position(e),
            e.used(),
            e.hdop,
            e.alt_msl,
        ),
        FixState::None => format!("GPGGA,{},,,,,0,00,99.99,,,,,,", hhmmss(e.unix)),
    };
    sentence(&body)
}

fn gsa(e: &Epoch) -> String {
    let mut prns: Vec<String> = e
        .satellites
        .iter()
        .filter(|s| s.used)
        .map(|s| format!("{:02}", s.prn))
        .collect();
    prns.resize(12, String::new());
    let body = match e.fix {
        FixState::Fix3d => format!(
            "GPGSA,A,3,{},{:.2},{:.2},{:.2}",
            prns.join(","),
            e.hdop * 1.7,
            e.hdop,
            e.hdop * 1.4
        ),
        FixState::None => format!("GPGSA,A,1,{},99.99,99.99,99.99", prns.join(",")),
    };
    sentence(&body)
}

fn gsv(e: &Epoch) -> Vec<String> {
    let pages = e.satellites.len().div_ceil(4);
    e.satellites
        .chunks(4)
        .enumerate()
        .map(|(page, sats)| {
            let mut body = format!("GPGSV,{pages},{},{:02}", page + 1, e.satellites.len());
            for s in sats {
                let cno = if s.cno > 0 {
                    format!("{:02}", s.cno)
                } else {
                    String::new()
                };
                body += &format!(",{:02},{:02},{:03},{cno}", s.prn, s.elevation, s.azimuth);
            }
            sentence(&body)
        })
        .collect()
}

fn ddmmyy(unix: i64) -> String {
    let (y, mo, d, ..) = drive::civil(unix);
    format!("{d:02}{mo:02}{:02}", y % 100)
}

const KNOTS_PER_MS: f64 = 1.943_844;

fn rmc(e: &Epoch) -> String {
    let body = match e.fix {
        FixState::Fix3d => format!(
            "GPRMC,{},A,{},{:.3},{:.1},{},,,A",
            hhmmss(e.unix),
            position(e),
            e.speed * KNOTS_PER_MS,
            e.course,
            ddmmyy(e.unix)
        ),
        FixState::None => format!("GPRMC,{},V,,,,,,,{},,,N", hhmmss(e.unix), ddmmyy(e.unix)),
    };
    sentence(&body)
}

fn vtg(e: &Epoch) -> String {
    let body = match e.fix {
        FixState::Fix3d => format!(
            "GPVTG,{:.1},T,,M,{:.3},N,{:.3},K,A",
            e.course,
            e.speed * KNOTS_PER_MS,
            e.speed * 3.6
        ),
        FixState::None => "GPVTG,,T,,M,,N,,K,N".to_string(),
    };
    sentence(&body)
}
