//! RFC 3339 text for the `started_at` header, without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as RFC 3339 UTC with microseconds, e.g. `2026-11-26T06:00:00.000000Z`.
/// Times before 1970 are written as 1970-01-01T00:00:00.000000Z.
pub fn format_utc(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian calendar),
/// by eras of 400 years.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants_format_as_rfc3339_utc() {
        let at = |s: u64, us: u64| UNIX_EPOCH + Duration::from_micros(s * 1_000_000 + us);
        assert_eq!(format_utc(at(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_utc(at(951_782_400, 5)),
            "2000-02-29T00:00:00.000005Z"
        );
        assert_eq!(
            format_utc(at(1_700_000_000, 123_456)),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            format_utc(at(4_102_444_799, 0)),
            "2099-12-31T23:59:59.000000Z"
        );
    }
}
