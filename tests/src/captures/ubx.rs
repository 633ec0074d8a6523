//! The UBX log: the same drive as a u-blox-protocol receiver reports it in binary:
//! NAV-PVT and NAV-HPPOSLLH every second, NAV-SAT every fifth, NAV-TIMEGPS every
//! tenth (layouts from u-blox's interface description), with the faults of a real
//! line.

use super::drive::{self, Epoch, FixState, GEOID_SEPARATION};
use super::nmea::sentence;

/// Epochs in the log.
pub const EPOCHS: usize = 90;
/// The NAV-PVT of this epoch arrives with a bad checksum.
pub const BAD_CHECKSUM_EPOCH: usize = 20;
/// The receiver reboots in the middle of this epoch's NAV-PVT and prints its
/// banner as NMEA text sentences before it sends UBX again.
pub const REBOOT_AT_EPOCH: usize = 79;

const HEADER: &str = "\
# Name: mqgate simulated GNSS receiver (u-blox UBX protocol)
# Chipset: none: made by the capture generator of mqgate's tests, not recorded
# Notes: the NMEA log's drive in UBX; starts in the middle of a frame, one bad
#  checksum, the fix lost and regained, a reboot with an NMEA banner, and the
#  last frame cut off.
";

/// A frame `B5 62 class id len payload ck_a ck_b` (Fletcher-8 from the class on).
pub fn frame(class: u8, id: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xB5, 0x62, class, id];
    f.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    f.extend_from_slice(payload);
    let (mut a, mut b) = (0u8, 0u8);
    for &byte in &f[2..] {
        a = a.wrapping_add(byte);
        b = b.wrapping_add(a);
    }
    f.extend_from_slice(&[a, b]);
    f
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
        if i == 0 {
            // The recording starts in the middle of a frame: its last two bytes.
            out.extend_from_slice(&[0x4E, 0x0B]);
        }
        let mut pvt = frame(0x01, 0x07, &nav_pvt(e));
        if i == BAD_CHECKSUM_EPOCH {
            let last = pvt.len() - 1;
            pvt[last] ^= 0x10;
        }
        if i == REBOOT_AT_EPOCH {
            out.extend_from_slice(&pvt[..40]);
            out.extend_from_slice(sentence("GNTXT,01,02,02,SIMGNSS UBX 2.1").as_bytes());
            out.extend_from_slice(sentence("GNTXT,02,02,02,ANTENNA OK").as_bytes());
            seconds.push(out);
            continue;
        }
        let mut frames = vec![pvt, frame(0x01, 0x14, &nav_hpposllh(e))];
        if i % 5 == 0 {
            frames.push(frame(0x01, 0x35, &nav_sat(e)));
        }
        if i % 10 == 0 {
            frames.push(frame(0x01, 0x20, &nav_timegps(e)));
        }
        if i + 1 == EPOCHS {
            // The recording stopped in the middle of the last frame.
            let cut = frames.pop().expect("a frame");
            frames.iter().for_each(|f| out.extend_from_slice(f));
            out.extend_from_slice(&cut[..cut.len() / 2]);
        } else {
            frames.iter().for_each(|f| out.extend_from_slice(f));
        }
        seconds.push(out);
    }
    seconds
}

fn itow_ms(e: &Epoch) -> u32 {
    (drive::gps_week_tow(e.unix).1 * 1000) as u32
}

/// Degrees in units of 1e-7 and the rest in 1e-9 (-50..=49), as u-blox splits them.
fn split_degrees(value: f64) -> (i32, i8) {
    let nano = (value * 1e9).round() as i64;
    let main = (nano as f64 / 100.0).round() as i64;
    (main as i32, (nano - main * 100) as i8)
}

/// Millimetres and the rest in 0.1 mm (-5..=4).
fn split_mm(metres: f64) -> (i32, i8) {
    let tenths = (metres * 10_000.0).round() as i64;
    let main = (tenths as f64 / 10.0).round() as i64;
    (main as i32, (tenths - main * 10) as i8)
}

/// NAV-PVT (0x01 0x07), 92 bytes.
fn nav_pvt(e: &Epoch) -> Vec<u8> {
    let (year, month, day, hour, minute, second) = drive::civil(e.unix);
    let fix = e.fix == FixState::Fix3d;
    let mut p = Vec::with_capacity(92);
    p.extend_from_slice(&itow_ms(e).to_le_bytes());
    p.extend_from_slice(&(year as u16).to_le_bytes());
    p.extend_from_slice(&[
        month as u8,
        day as u8,
        hour as u8,
        minute as u8,
        second as u8,
    ]);
    // valid: date, time and fully resolved once the receiver has a fix.
    p.push(if fix { 0x07 } else { 0x00 });
    p.extend_from_slice(&(if fix { 25u32 } else { 0xFFFF_FFFF }).to_le_bytes()); // tAcc ns
    p.extend_from_slice(&0i32.to_le_bytes()); // nano
    p.push(if fix { 3 } else { 0 }); // fixType
    p.push(u8::from(fix)); // flags: gnssFixOK
    p.push(0xE0); // flags2: confirmed date and time
    p.push(e.used() as u8);
    let (lon, lat, height, msl) = if fix {
        (
            split_degrees(e.lon).0,
            split_degrees(e.lat).0,
            split_mm(e.alt_msl + GEOID_SEPARATION).0,
            split_mm(e.alt_msl).0,
        )
    } else {
        (0, 0, 0, 0)
    };
    for v in [lon, lat, height, msl] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    let (h_acc, v_acc) = if fix {
        ((e.hdop * 1800.0) as u32, (e.hdop * 2600.0) as u32)
    } else {
        (0xFFFF_FFFF, 0xFFFF_FFFF)
    };
    p.extend_from_slice(&h_acc.to_le_bytes());
    p.extend_from_slice(&v_acc.to_le_bytes());
    let speed_mm = (e.speed * 1000.0).round();
    let course = e.course.to_radians();
    let vel_n = (speed_mm * course.cos()).round() as i32;
    let vel_e = (speed_mm * course.sin()).round() as i32;
    for v in [vel_n, vel_e, 0, speed_mm as i32, (e.course * 1e5) as i32] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    p.extend_from_slice(&400u32.to_le_bytes()); // sAcc mm/s
    p.extend_from_slice(&(if fix { 80_000u32 } else { 18_000_000 }).to_le_bytes()); // headAcc
    p.extend_from_slice(&((e.hdop * 170.0) as u16).to_le_bytes()); // pDOP 0.01
    p.extend_from_slice(&[0; 6]); // flags3, reserved
    p.extend_from_slice(&0i32.to_le_bytes()); // headVeh
    p.extend_from_slice(&0i16.to_le_bytes()); // magDec
    p.extend_from_slice(&0u16.to_le_bytes()); // magAcc
    assert_eq!(p.len(), 92);
    p
}

/// NAV-HPPOSLLH (0x01 0x14), 36 bytes: the position with its high-precision parts.
fn nav_hpposllh(e: &Epoch) -> Vec<u8> {
    let fix = e.fix == FixState::Fix3d;
    let mut p = vec![0x00, 0x00, 0x00, u8::from(!fix)]; // version, reserved, flags: invalidLlh
    p.extend_from_slice(&itow_ms(e).to_le_bytes());
    let (lon, lon_hp) = split_degrees(e.lon);
    let (lat, lat_hp) = split_degrees(e.lat);
    let (height, height_hp) = split_mm(e.alt_msl + GEOID_SEPARATION);
    let (msl, msl_hp) = split_mm(e.alt_msl);
    for v in [lon, lat, height, msl] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    p.extend_from_slice(&[lon_hp as u8, lat_hp as u8, height_hp as u8, msl_hp as u8]);
    p.extend_from_slice(&((e.hdop * 140.0) as u32).to_le_bytes()); // hAcc 0.1 mm
    p.extend_from_slice(&((e.hdop * 210.0) as u32).to_le_bytes()); // vAcc 0.1 mm
    assert_eq!(p.len(), 36);
    p
}

/// NAV-SAT (0x01 0x35): 8 bytes and 12 per satellite.
fn nav_sat(e: &Epoch) -> Vec<u8> {
    let mut p = itow_ms(e).to_le_bytes().to_vec();
    p.extend_from_slice(&[1, e.satellites.len() as u8, 0, 0]);
    for s in &e.satellites {
        p.extend_from_slice(&[0, s.prn, s.cno, s.elevation as u8]); // gnssId 0: GPS
        p.extend_from_slice(&s.azimuth.to_le_bytes());
        p.extend_from_slice(&0i16.to_le_bytes()); // prRes
        let quality: u32 = if s.used {
            7
        } else if s.cno > 0 {
            4
        } else {
            1
        };
        let flags = quality | (u32::from(s.used) << 3) | (1 << 4); // health: healthy
        p.extend_from_slice(&flags.to_le_bytes());
    }
    p
}

/// NAV-TIMEGPS (0x01 0x20), 16 bytes.
fn nav_timegps(e: &Epoch) -> Vec<u8> {
    let (week, _) = drive::gps_week_tow(e.unix);
    let mut p = itow_ms(e).to_le_bytes().to_vec();
    p.extend_from_slice(&0i32.to_le_bytes()); // fTOW
    p.extend_from_slice(&(week as i16).to_le_bytes());
    p.push(drive::LEAP_SECONDS as u8);
    p.push(0x07); // tow, week and leap seconds valid
    p.extend_from_slice(&25u32.to_le_bytes());
    p
}
