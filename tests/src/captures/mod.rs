//! The GPS captures of the demo and the default tests, made here instead of
//! recorded: a receiver driving around a block, in NMEA 0183 (`gps-nmea.log`) and
//! in u-blox UBX (`gps-ubx.log`), in gpsd's raw log format (`#` comment lines,
//! then the bytes as the receiver sends them). `make-captures` writes them into
//! `tests/captures/`; a test checks that the committed files are what it makes.

pub mod drive;
pub mod nmea;
pub mod ubx;

/// Each generated capture: its file name in `tests/captures/` and its bytes.
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    vec![("gps-nmea.log", nmea::log()), ("gps-ubx.log", ubx::log())]
}
