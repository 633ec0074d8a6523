//! RFC 3339 text for the `started_at` header, without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as RFC 3339 UTC with microseconds, e.g. `2026-11-26T06:00:00.000000Z`.
/// Times before 1970 are written as 1970-01-01T00:00:00.000000Z.
pub fn format_utc(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}.{:06}Z",
        crate::utc::date_time(since.as_secs() as i64),
        since.subsec_micros()
    )
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
