//! gpsd's own decoding of its regression logs (the `TPV` reports in each `.log.chk`)
//! against what `scripts/nmea.rhai` and `scripts/ubx.rhai` publish for the same logs,
//! framed the way the gateway frames them: lines with NMEA checksums, and the binary
//! framer with the UBX envelope (sync B5 62, Fletcher-8).
//!
//! How gpsd builds a TPV (its NMEA and UBX drivers):
//! - NMEA. Each sentence updates gpsd's fix; a TPV reports the fix as it stands. The
//!   position is that of the last sentence gpsd took one from: GGA whenever latitude and
//!   longitude are filled (even with quality 0), RMC with status A or D, GLL with status
//!   A and a mode other than N, GNS with a mode other than N and a navigation status
//!   other than U or V. The time is the date of the last RMC (status A or D, time and
//!   date filled) or ZDA with the time of day of the last sentence that had one (GGA,
//!   GLL, GNS, RMC, ZDA; an hour below the previous one moves the date a day on). GGA,
//!   GLL and GNS give no time until a year is known. An RMC with status V and an empty
//!   time or date, or a GGA with quality 0 and no time, clears the date and sets the time
//!   to zero (not printed). RMC years 80-99 are 19xx. Times print to the nearest ms.
//! - UBX. NAV-PVT gives the time (UTC fields plus `nano`, when date and time are valid)
//!   and the position. NAV-SOL gives the position as ECEF, which gpsd turns into
//!   latitude and longitude on WGS-84, and GPS week and time of week, which gpsd turns
//!   into UTC with the leap seconds it has learnt (NAV-TIMEGPS, RXM-RAWX). NAV-TIMEGPS
//!   gives the same time. Here the UTC time of a NAV-SOL is taken from the script's
//!   NAV-TIMEGPS of the same epoch (`itow`), since NAV-SOL carries no leap seconds.

#[allow(dead_code)]
#[path = "scripts_real_data/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use mqgate::capture::Capture;
use mqgate::frame::FramingConfig;
use mqgate::mapping::Mapped;
use serde_json::Value;
use support::{cut, data, frame, mapping_mapper, messages, nmea_framer, payload, read, ubx_frame};

const NMEA_LOGS: [&str; 6] = [
    "bu353-glonass.log",
    "ericsson-gru04.log",
    "garmin-geko201.log",
    "gp-320fw-2019-04-07-coldboot.log",
    "st-teseo-liv3f.log",
    "ublox-neo-m9n-nmea.log",
];
const UBX_LOGS: [&str; 3] = [
    "ublox-ned-m8t-sbfrx3.log",
    "ublox-neo-m8n.log",
    "ublox-neo-m8t.log",
];

const UBX: &str = "
type: binary
sync: [0xB5, 0x62]
length: { offset: 4, width: 2, endian: little, adjust: 2 }
checksum: { kind: fletcher8, from: 2 }
";

fn log_path(name: &str) -> PathBuf {
    data("gpsd").join(name)
}

fn ubx_frames(name: &str) -> Vec<bytes::Bytes> {
    let config: FramingConfig = serde_yaml_ng::from_str(UBX).unwrap();
    let bytes = Capture::load(&log_path(name)).unwrap().bytes();
    cut(config.build(), &bytes).0
}

fn tpvs(name: &str) -> Vec<Value> {
    read(&log_path(&format!("{name}.chk")))
        .lines()
        .filter(|l| l.starts_with("{\"class\":\"TPV\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A TPV with a fix: mode 2 or 3 and a position.
fn fix_of(tpv: &Value) -> Option<(f64, f64)> {
    if tpv["mode"].as_i64().unwrap_or(0) < 2 {
        return None;
    }
    Some((tpv["lat"].as_f64()?, tpv["lon"].as_f64()?))
}

fn close(a: (f64, f64), b: (f64, f64)) -> bool {
    (a.0 - b.0).abs() <= 1e-6 && (a.1 - b.1).abs() <= 1e-6
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// Nanoseconds since 1970 as gpsd prints them: RFC 3339, nearest millisecond.
fn iso(nanos: i64) -> String {
    let ms = (nanos + 500_000).div_euclid(1_000_000);
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// gpsd's NMEA time and position state, fed with what the script published.
#[derive(Default)]
struct Gpsd {
    /// Year (0: none), month, day of month, as gpsd's `nmea.date`.
    date: (i64, i64, i64),
    /// Hour, minute, second, nanoseconds of the last time of day.
    clock: (i64, i64, i64, i64),
    /// Time of the fix: `None` before any, `Some(0)` for gpsd's zero time.
    time: Option<i64>,
    pos: Option<(f64, f64)>,
}

impl Gpsd {
    /// A time of day as the script gives it, `hh:mm:ss[.f...]`.
    fn merge_clock(&mut self, script_time: &Value, what: &str) {
        let t = script_time
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no time"));
        let num = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("{what}: {t}"));
        let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
        let parts: Vec<i64> = hms.split(':').map(num).collect();
        assert_eq!(parts.len(), 3, "{what}: {t}");
        if parts[0] < self.clock.0 {
            self.date.2 += 1; // midnight
        }
        let nanos = if frac.is_empty() {
            0
        } else {
            num(frac) * 10_i64.pow(9 - frac.len() as u32)
        };
        self.clock = (parts[0], parts[1], parts[2], nanos);
    }

    fn set_time(&mut self) {
        let (y, m, d) = self.date;
        let (h, mi, s, ns) = self.clock;
        self.time = Some(if y == 0 && d == 0 {
            0
        } else {
            ((days_from_civil(y, m, 1) + d - 1) * 86_400 + h * 3600 + mi * 60 + s) * 1_000_000_000
                + ns
        });
    }

    fn zero(&mut self) {
        self.date = (0, 0, 0);
        self.clock = (0, 0, 0, 0);
        self.time = Some(0);
    }

    fn position(&mut self, p: &Value, what: &str) {
        let (Some(lat), Some(lon)) = (p["lat"].as_f64(), p["lon"].as_f64()) else {
            panic!("{what}: gpsd takes a position from this sentence, the script gives none");
        };
        self.pos = Some((lat, lon));
    }

    /// One sentence: its text (for the field counts and the fields the script does not
    /// name) and the script's payload (for the values).
    fn feed(&mut self, text: &str, p: &Value) {
        let body = text[1..].split('*').next().unwrap();
        let f: Vec<&str> = body.split(',').collect();
        let count = f.len();
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        // gpsd's do_lat_lon: all four fields filled, a decimal point in both numbers.
        let latlon = |i: usize| {
            (i..i + 4).all(|k| !field(k).is_empty())
                && field(i).contains('.')
                && field(i + 2).contains('.')
        };
        let year_known = |s: &Self| s.date.0 != 0;
        match (p["type"].as_str().unwrap(), count) {
            ("GGA", 13..) => {
                if field(6) == "0" && field(1).is_empty() {
                    self.zero();
                }
                if !field(1).is_empty() {
                    self.merge_clock(&p["time"], text);
                    if year_known(self) {
                        self.set_time();
                    }
                }
                if latlon(2) {
                    self.position(p, text);
                }
            }
            ("RMC", 8..) => match p["status"].as_str() {
                Some("A" | "D") => {
                    if !field(1).is_empty() && count > 9 && !field(9).is_empty() {
                        self.merge_clock(&p["time"], text);
                        let date = p["date"].as_str().expect("RMC date");
                        let ymd: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
                        if (1..=12).contains(&ymd[1]) && (1..=31).contains(&ymd[2]) {
                            self.date = (ymd[0], ymd[1], ymd[2]);
                            self.set_time();
                        }
                    }
                    if latlon(3) {
                        self.position(p, text);
                    }
                }
                _ => {
                    if field(1).is_empty() || field(9).is_empty() {
                        self.zero();
                    }
                }
            },
            ("GLL", 7..) => {
                if !field(5).is_empty() {
                    self.merge_clock(&p["time"], text);
                    if year_known(self) {
                        self.set_time();
                    }
                }
                if p["status"] == "A" && (count < 8 || field(7) != "N") && latlon(1) {
                    self.position(p, text);
                }
            }
            ("GNS", 13..) => {
                if !field(1).is_empty() {
                    self.merge_clock(&p["time"], text);
                    if year_known(self) {
                        self.set_time();
                    }
                }
                let mode_ok = !field(6).is_empty() && !field(6).starts_with('N');
                if mode_ok && !matches!(field(13), "U" | "V") && latlon(2) {
                    self.position(p, text);
                }
            }
            ("ZDA", 4..) => {
                // The script publishes ZDA as raw fields: [time, day, month, year, ...].
                let raw: Vec<&str> = p["fields"]
                    .as_array()
                    .expect("ZDA fields")
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                if raw.len() >= 4 && raw[..4].iter().all(|x| !x.is_empty()) {
                    let t = format!("{}:{}:{}", &raw[0][..2], &raw[0][2..4], &raw[0][4..]);
                    self.merge_clock(&Value::from(t), text);
                    let n = |s: &str| s.parse::<i64>().unwrap_or(0);
                    let (y, m, d) = (n(raw[3]), n(raw[2]), n(raw[1]));
                    if (1900..=2200).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
                    {
                        self.date = (y, m, d);
                        self.set_time();
                    }
                }
            }
            _ => {}
        }
    }
}

/// What one log gave: TPVs with a fix compared (position and time), TPVs whose time
/// alone was compared, TPVs with a fix mode but no position, and sentences gpsd used
/// that the lines framer does not pass (a reboot glued them behind a cut-off one).
#[derive(Debug, Default, PartialEq, Eq)]
struct NmeaCounts {
    fixes: usize,
    times: usize,
    mode_without_position: usize,
    glued: usize,
}

fn compare_nmea_log(name: &str) -> NmeaCounts {
    let mapper = mapping_mapper("nmea-gps.yaml");
    let log = std::fs::read(log_path(name)).unwrap();
    let (frames, _) = cut(nmea_framer(), &log);
    let mut next = frames.iter().peekable();
    let mut gpsd = Gpsd::default();
    let mut counts = NmeaCounts::default();
    let chk = read(&log_path(&format!("{name}.chk")));
    for line in chk.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with('$') || line.starts_with('!') {
            if next.peek().is_some_and(|f| f[..] == *line.as_bytes()) {
                let f = next.next().unwrap();
                let out = messages(&mapper, &frame("gps", f, &[]), line);
                gpsd.feed(line, &payload(&out[0]));
            } else {
                let glued = log.windows(line.len()).any(|w| w == line.as_bytes());
                assert!(glued, "{name}: gpsd's sentence {line:?} is not in the log");
                counts.glued += 1;
            }
            continue;
        }
        if !line.starts_with("{\"class\":\"TPV\"") {
            continue;
        }
        let tpv: Value = serde_json::from_str(line).unwrap();
        let ours = gpsd.time.filter(|&t| t != 0).map(iso);
        assert_eq!(
            ours.as_deref(),
            tpv["time"].as_str(),
            "{name}: time of {line}"
        );
        match fix_of(&tpv) {
            Some(theirs) => {
                let ours = gpsd
                    .pos
                    .unwrap_or_else(|| panic!("{name}: no position for {line}"));
                assert!(close(ours, theirs), "{name}: {ours:?} vs gpsd {line}");
                counts.fixes += 1;
            }
            None if tpv["mode"].as_i64().unwrap_or(0) >= 2 => {
                // gpsd took the mode from a GSA before any sentence gave a position.
                assert!(gpsd.pos.is_none(), "{name}: position not reported: {line}");
                counts.mode_without_position += 1;
            }
            None => counts.times += 1,
        }
    }
    assert!(next.next().is_none(), "{name}: sentences gpsd did not pass");
    counts
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn nmea_script_gives_gpsds_time_and_position_for_every_tpv_of_every_nmea_log() {
    let mut all = BTreeMap::new();
    for name in NMEA_LOGS {
        let c = compare_nmea_log(name);
        println!("{name}: {c:?}");
        all.insert(name, (c.fixes, c.times, c.mode_without_position, c.glued));
    }
    // Every TPV is compared: fixes (time and position), the rest (time). bu353 reports
    // mode 3 twice before its first position; gp-320fw's receiver rebooted and glued
    // sentences behind cut-off ones (they changed no TPV compared here: the test would
    // fail otherwise, since only framed sentences feed the model).
    assert_eq!(all["bu353-glonass.log"], (11, 12, 2, 0));
    assert_eq!(all["ericsson-gru04.log"], (5, 3, 0, 0));
    assert_eq!(all["garmin-geko201.log"], (2, 36, 0, 0));
    assert_eq!(all["gp-320fw-2019-04-07-coldboot.log"], (4, 46, 0, 5));
    assert_eq!(all["st-teseo-liv3f.log"], (29, 0, 0, 0));
    assert_eq!(all["ublox-neo-m9n-nmea.log"], (67, 0, 0, 0));
    for name in UBX_LOGS {
        let (frames, _) = cut(nmea_framer(), &std::fs::read(log_path(name)).unwrap());
        assert!(frames.is_empty(), "{name}: NMEA in a UBX log");
    }
}

/// A solution: message name and position.
type Solution = (String, (f64, f64));
/// A solution of an epoch, with the GPS week and `ftow` of a NAV-SOL.
type EpochSolution = (String, (f64, f64), Option<(i64, i64)>);

/// UBX: the script's solutions (NAV-PVT, NAV-SOL, NAV-POSECEF) by their UTC time as gpsd
/// prints it, and how many NAV-SOL/NAV-POSECEF had no NAV-TIMEGPS of their epoch.
fn ubx_solutions(name: &str) -> (BTreeMap<String, Vec<Solution>>, usize) {
    let mapper = mapping_mapper("ubx-gps.yaml");
    let mut by_time: BTreeMap<String, Vec<Solution>> = BTreeMap::new();
    let mut by_itow: BTreeMap<i64, Vec<EpochSolution>> = BTreeMap::new();
    let mut timegps: BTreeMap<i64, (String, i64, i64)> = BTreeMap::new();
    for f in ubx_frames(name) {
        let out = messages(&mapper, &frame("ubx", &f, &[]), name);
        assert_eq!(out.len(), 1, "{name}");
        let p = payload(&out[0]);
        let kind = p["name"].as_str().unwrap().to_string();
        assert_eq!(out[0].topic, format!("gps/ubx/{kind}"));
        let itow = p["itow"].as_i64();
        let pos = || (p["lat"].as_f64().unwrap(), p["lon"].as_f64().unwrap());
        match kind.as_str() {
            "NAV-PVT" => {
                let time = p["time"]
                    .as_str()
                    .expect("NAV-PVT time valid in these logs");
                by_time
                    .entry(time.into())
                    .or_default()
                    .push((kind.clone(), pos()));
                by_itow
                    .entry(itow.unwrap())
                    .or_default()
                    .push((kind, pos(), None));
            }
            "NAV-SOL" => {
                assert!(p["gps_time"].is_string(), "{name}: NAV-SOL without time");
                let week_ftow = (p["week"].as_i64().unwrap(), p["ftow"].as_i64().unwrap());
                by_itow
                    .entry(itow.unwrap())
                    .or_default()
                    .push((kind, pos(), Some(week_ftow)));
            }
            "NAV-POSECEF" => {
                by_itow
                    .entry(itow.unwrap())
                    .or_default()
                    .push((kind, pos(), None));
            }
            "NAV-TIMEGPS" => {
                let time = p["time"].as_str().expect("NAV-TIMEGPS valid in these logs");
                let (week, ftow) = (p["week"].as_i64().unwrap(), p["ftow"].as_i64().unwrap());
                timegps.insert(itow.unwrap(), (time.into(), week, ftow));
            }
            _ => {}
        }
    }
    let mut untimed = 0;
    for (itow, solutions) in by_itow {
        let Some((time, week, ftow)) = timegps.get(&itow) else {
            untimed += solutions.iter().filter(|s| s.0 != "NAV-PVT").count();
            continue;
        };
        for (kind, pos, week_ftow) in solutions {
            if let Some(wf) = week_ftow {
                assert_eq!(
                    wf,
                    (*week, *ftow),
                    "{name}: NAV-SOL and NAV-TIMEGPS at {itow}"
                );
            }
            if kind == "NAV-PVT" {
                // The same instant from both messages.
                assert!(by_time[time].iter().any(|s| s.0 == kind), "{name}: {time}");
            } else {
                by_time.entry(time.clone()).or_default().push((kind, pos));
            }
        }
    }
    (by_time, untimed)
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn ubx_script_gives_gpsds_time_and_position_for_every_tpv_of_every_ubx_log() {
    let mut seen = BTreeMap::new();
    for name in UBX_LOGS {
        let (solutions, untimed) = ubx_solutions(name);
        let mut reported = std::collections::BTreeSet::new();
        let (mut fixes, mut without_fix) = (0, 0);
        for tpv in tpvs(name) {
            let Some(theirs) = fix_of(&tpv) else {
                without_fix += 1;
                continue;
            };
            let time = tpv["time"].as_str().expect("TPV with a fix has a time");
            let ours = solutions
                .get(time)
                .unwrap_or_else(|| panic!("{name}: no solution of the script at {time}"));
            for (kind, pos) in ours {
                assert!(
                    close(*pos, theirs),
                    "{name} {time}: {kind} {pos:?} vs gpsd {tpv}"
                );
            }
            reported.insert(time.to_string());
            fixes += 1;
        }
        let kinds: BTreeMap<&str, usize> =
            solutions
                .values()
                .flatten()
                .fold(BTreeMap::new(), |mut m, (k, _)| {
                    *m.entry(k.as_str()).or_default() += 1;
                    m
                });
        let unreported = solutions.len() - reported.len();
        println!(
            "{name}: {fixes} TPVs with a fix compared ({without_fix} without), {} epochs \
             ({unreported} with no TPV), solutions {kinds:?}, {untimed} without NAV-TIMEGPS",
            solutions.len()
        );
        seen.insert(
            name,
            (fixes, without_fix, solutions.len(), unreported, untimed),
        );
        let (mut nmea_frames, _) = cut(nmea_framer(), &std::fs::read(log_path(name)).unwrap());
        nmea_frames.retain(|f| f.starts_with(b"$"));
        assert!(nmea_frames.is_empty(), "{name}: NMEA in a UBX log");
    }
    // sbfrx3 holds only RXM-SFRBX: no solution, and gpsd reported no TPV either.
    assert_eq!(seen["ublox-ned-m8t-sbfrx3.log"], (0, 0, 0, 0, 0));
    // m8n: 24 NAV-PVT epochs, 22 TPVs. gpsd learns which message ends an epoch (the
    // last one before the time of week changes: NAV-TIMEGPS here) only when the second
    // epoch starts, and reports an epoch when that message comes. So the first epoch is
    // not reported, nor the last, whose NAV-TIMEGPS is cut off with the file.
    assert_eq!(seen["ublox-neo-m8n.log"], (22, 0, 24, 2, 0));
    // m8t: 39 NAV-SOL epochs (each with NAV-POSECEF and NAV-TIMEGPS), 73 TPVs: gpsd
    // reports at NAV-SOL and again at the end of most epochs.
    assert_eq!(seen["ublox-neo-m8t.log"], (73, 0, 39, 0, 0));
    for name in NMEA_LOGS {
        assert!(ubx_frames(name).is_empty(), "{name}: UBX in an NMEA log");
    }
}

/// NAV-POSLLH and NAV-TIMEUTC do not occur in the logs: build them from the first
/// NAV-PVT of the u-blox M8N log (same epoch, same values) and check the script reads
/// the same position and time from all three. Broken frames are refused.
#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn ubx_script_reads_posllh_and_timeutc_like_pvt_and_refuses_broken_frames() {
    let mapper = mapping_mapper("ubx-gps.yaml");
    let decode = |b: &[u8]| payload(&messages(&mapper, &frame("ubx", b, &[]), "UBX")[0]);
    let log = std::fs::read(data("gpsd/ublox-neo-m8n.log")).unwrap();
    let at = log
        .windows(4)
        .position(|w| w == [0xB5, 0x62, 1, 7])
        .unwrap();
    let pvt = ubx_frame(1, 7, &log[at + 6..at + 6 + 92]);
    assert_eq!(pvt[..], log[at..at + 100], "the log's NAV-PVT checksum");
    let pl = &pvt[6..98];
    let p = decode(&pvt);
    assert_eq!(p["time"], "2017-07-19T08:50:00.800Z");
    assert_eq!(
        (p["lat"].as_f64(), p["lon"].as_f64()),
        (Some(-34.9062263), Some(138.6081197))
    );

    // NAV-POSLLH: iTOW, lon, lat, height, hMSL, hAcc, vAcc (PVT offsets 0, 24..48).
    let mut llh = pl[..4].to_vec();
    llh.extend_from_slice(&pl[24..48]);
    let q = decode(&ubx_frame(1, 2, &llh));
    assert_eq!(q["name"], "NAV-POSLLH");
    for k in "itow lat lon height height_msl h_acc v_acc".split(' ') {
        assert_eq!(q[k], p[k], "NAV-POSLLH {k}");
    }
    // NAV-TIMEUTC: iTOW, tAcc, nano, year..sec, valid (UTC valid).
    let mut utc = pl[..4].to_vec();
    utc.extend_from_slice(&pl[12..20]);
    utc.extend_from_slice(&pl[4..11]);
    utc.push(0x07);
    let q = decode(&ubx_frame(1, 0x21, &utc));
    assert_eq!(
        (&q["name"], &q["time"]),
        (&Value::from("NAV-TIMEUTC"), &p["time"])
    );
    utc[19] = 0x03; // UTC not valid yet: no time
    assert!(decode(&ubx_frame(1, 0x21, &utc))["time"].is_null());

    // An unknown message keeps its payload; broken frames are errors.
    let q = decode(&ubx_frame(0x0A, 0x09, &[1, 2]));
    assert_eq!(
        (&q["name"], &q["payload_hex"]),
        (&Value::from("0a-09"), &Value::from("0102"))
    );
    let short_pvt = ubx_frame(1, 7, &pl[..60]);
    for (what, bytes) in [
        ("no sync", &b"$GPGGA,1*00\r\n"[..]),
        ("cut off", &pvt[..50]),
        ("short NAV-PVT", &short_pvt[..]),
    ] {
        let result = mapper.map(&frame("ubx", bytes, &[]));
        let Mapped::Failed(e) = result else {
            panic!("{what}: accepted: {result:?}");
        };
        assert!(e.to_string().contains("UBX"), "{what}: {e}");
    }
}

/// Every UBX frame of the logs maps within 2,000 operations (the default limit: 100,000).
#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn ubx_script_maps_every_frame_of_the_logs_within_2000_operations() {
    use mqgate::mapping::{Mapper, MappingDefaults, ScriptLimits};
    let path = support::workspace().join("scripts/ubx.rhai");
    let defaults = MappingDefaults {
        topic: "gps/ubx/{name}".into(),
        qos: mqtt_proto::codec::QoS::AtMostOnce,
        retain: false,
        filter: None,
    };
    let limits = ScriptLimits {
        max_operations: 2000,
        ..ScriptLimits::default()
    };
    let mapper = Mapper::new("ubx", Some((&path, &read(&path))), defaults, limits).unwrap();
    let frames: Vec<_> = UBX_LOGS.iter().flat_map(|n| ubx_frames(n)).collect();
    assert_eq!(frames.len(), 52 + 242 + 165);
    for f in frames {
        let result = mapper.map(&frame("ubx", &f, &[]));
        assert!(matches!(result, Mapped::Messages(_)), "{result:?}");
    }
}
