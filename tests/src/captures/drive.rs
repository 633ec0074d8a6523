//! The simulated receiver's day: a car parked, then driving laps around a city block,
//! losing its fix under a bridge and after a reboot. One `Epoch` per second.

/// Unix time of the first epoch: 2026-03-14T09:41:00Z.
pub const START_UNIX: i64 = 1_773_481_260;
/// GPS time runs ahead of UTC by this many leap seconds (since 2017).
pub const LEAP_SECONDS: i64 = 18;
/// The block's north-west corner, where the car is parked.
const ORIGIN_LAT: f64 = 48.137_500;
const ORIGIN_LON: f64 = 11.575_500;
const ALTITUDE_MSL: f64 = 519.3;
pub const GEOID_SEPARATION: f64 = 47.6;
/// The block: east, south, west, north legs of these lengths (metres).
const LEGS: [(f64, f64); 4] = [(240.0, 90.0), (160.0, 180.0), (240.0, 270.0), (160.0, 0.0)];
const SPEED: f64 = 8.0;
/// The car starts to drive at this epoch.
const DRIVE_FROM: usize = 6;

/// The state of the fix in one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixState {
    /// No position: cold or warm start, or no sky view.
    None,
    /// A 3D fix from the satellites marked used.
    Fix3d,
}

/// One satellite in view.
#[derive(Clone, Copy, Debug)]
pub struct Satellite {
    pub prn: u8,
    pub elevation: i8,
    pub azimuth: u16,
    /// Carrier-to-noise density in dB-Hz; 0 when not tracked.
    pub cno: u8,
    pub used: bool,
}

/// What the receiver knows at one second.
#[derive(Clone, Debug)]
pub struct Epoch {
    pub unix: i64,
    pub fix: FixState,
    pub lat: f64,
    pub lon: f64,
    pub alt_msl: f64,
    /// Ground speed (m/s) and course over ground (degrees from north).
    pub speed: f64,
    pub course: f64,
    pub hdop: f64,
    pub satellites: Vec<Satellite>,
}

impl Epoch {
    pub fn used(&self) -> usize {
        self.satellites.iter().filter(|s| s.used).count()
    }
}

/// Fix lost under a bridge for these epochs.
pub const BRIDGE: std::ops::RangeInclusive<usize> = 48..=55;
/// No fix yet after power-on (cold start) and after the reboot (warm start).
pub const COLD_START: std::ops::RangeInclusive<usize> = 0..=3;
pub const WARM_START: std::ops::RangeInclusive<usize> = 80..=82;

/// A small deterministic generator (xorshift64*), so the captures are the same every run.
#[derive(Debug)]
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Noise {
        Noise(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in [-1, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// The sky: twelve satellites, those above 15 degrees used in a fix.
const SKY: [(u8, i8, u16, u8); 12] = [
    (2, 61, 48, 44),
    (5, 37, 301, 41),
    (7, 12, 205, 30),
    (9, 74, 129, 46),
    (13, 29, 87, 38),
    (15, 45, 245, 42),
    (18, 8, 340, 27),
    (20, 22, 172, 35),
    (24, 53, 11, 43),
    (27, 17, 270, 33),
    (29, 5, 110, 24),
    (30, 40, 160, 40),
];

/// Where the car is `secs` seconds after it started: metres east and south of the
/// origin, and its course.
fn on_block(secs: f64) -> (f64, f64, f64) {
    let lap: f64 = LEGS.iter().map(|l| l.0).sum();
    let mut along = (secs * SPEED) % lap;
    let (mut east, mut south) = (0.0, 0.0);
    for (length, course) in LEGS {
        let step = along.min(length);
        match course as u32 {
            90 => east += step,
            180 => south += step,
            270 => east -= step,
            _ => south -= step,
        }
        if along <= length {
            return (east, south, course);
        }
        along -= length;
    }
    (east, south, 0.0)
}

/// `count` epochs of the scenario.
pub fn epochs(count: usize) -> Vec<Epoch> {
    let mut noise = Noise::new(0x6d71_6761_7465);
    let m_per_deg_lat = 111_132.954 - 559.822 * (2.0 * ORIGIN_LAT.to_radians()).cos();
    let m_per_deg_lon = 111_412.84 * ORIGIN_LAT.to_radians().cos();
    (0..count)
        .map(|i| {
            let driving = i >= DRIVE_FROM;
            let (east, south, course) = if driving {
                on_block((i - DRIVE_FROM) as f64)
            } else {
                (0.0, 0.0, 0.0)
            };
            let no_fix = COLD_START.contains(&i) || BRIDGE.contains(&i) || WARM_START.contains(&i);
            let under_bridge = BRIDGE.contains(&i);
            let satellites = SKY
                .iter()
                .map(|&(prn, elevation, azimuth, cno)| {
                    let tracked = !under_bridge && (!COLD_START.contains(&i) || elevation >= 30);
                    let jitter = (noise.unit() * 2.5).round() as i32;
                    Satellite {
                        prn,
                        elevation,
                        azimuth,
                        cno: if tracked {
                            (cno as i32 + jitter) as u8
                        } else {
                            0
                        },
                        used: tracked && !no_fix && elevation > 15,
                    }
                })
                .collect();
            // Metre-level wander of a consumer receiver.
            let (wander_n, wander_e) = (noise.unit() * 1.2, noise.unit() * 1.2);
            Epoch {
                unix: START_UNIX + i as i64,
                fix: if no_fix {
                    FixState::None
                } else {
                    FixState::Fix3d
                },
                lat: ORIGIN_LAT + (wander_n - south) / m_per_deg_lat,
                lon: ORIGIN_LON + (east + wander_e) / m_per_deg_lon,
                alt_msl: ALTITUDE_MSL + 1.5 * (i as f64 / 17.0).sin() + noise.unit() * 0.4,
                speed: if driving {
                    SPEED + noise.unit() * 0.3
                } else {
                    0.0
                },
                course,
                hdop: 0.9 + noise.unit().abs() * 0.3,
                satellites,
            }
        })
        .collect()
}

/// UTC civil date and time of a Unix time: (year, month, day, hour, minute, second).
pub fn civil(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (year, month, day) = mqgate::utc::civil_from_days(unix.div_euclid(86_400));
    let rest = unix.rem_euclid(86_400);
    (
        year,
        month,
        day,
        (rest / 3600) as u32,
        (rest / 60 % 60) as u32,
        (rest % 60) as u32,
    )
}

/// GPS week and time of week (seconds) of a Unix time.
pub fn gps_week_tow(unix: i64) -> (i64, i64) {
    let gps = unix - 315_964_800 + LEAP_SECONDS;
    (gps / 604_800, gps % 604_800)
}
