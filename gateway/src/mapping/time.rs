//! Receive times as scripts and dead letters see them: RFC 3339 in UTC, milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (negative before it).
pub fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// `t` as RFC 3339 in UTC with milliseconds, e.g. `2026-11-26T06:08:48.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    use std::cell::RefCell;
    use std::fmt::Write as _;
    thread_local! {
        /// The last second written and its `YYYY-MM-DDTHH:MM:SS.` text: frames
        /// arrive many per second, and formatting the date is most of the cost.
        static LAST: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let ms = unix_millis(t);
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            last.1 = second_prefix(secs);
            last.0 = secs;
        }
        let mut out = String::with_capacity(24);
        out.push_str(&last.1);
        let _ = write!(out, "{milli:03}Z");
        out
    })
}

/// `YYYY-MM-DDTHH:MM:SS.` for a Unix second.
fn second_prefix(secs: i64) -> String {
    let mut text = crate::utc::date_time(secs);
    text.push('.');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_epoch_is_1970_01_01() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_leap_day_and_milliseconds_are_written_exactly() {
        // 2024-02-29T12:34:56.789Z
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
        assert_eq!(unix_millis(t), 1_709_210_096_789);
    }

    #[test]
    fn the_last_second_of_a_century_year_rolls_into_march() {
        // 2000-02-29T23:59:59Z then 2000-03-01T00:00:00Z
        let t = UNIX_EPOCH + Duration::from_secs(951_868_799);
        assert_eq!(rfc3339(t), "2000-02-29T23:59:59.000Z");
        assert_eq!(
            rfc3339(t + Duration::from_secs(1)),
            "2000-03-01T00:00:00.000Z"
        );
    }

    #[test]
    fn consecutive_times_in_and_across_a_second_are_each_right() {
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
        let t2 = t + Duration::from_millis(100);
        assert_eq!(rfc3339(t2), "2024-02-29T12:34:56.889Z");
        let t3 = t2 + Duration::from_millis(111);
        assert_eq!(rfc3339(t3), "2024-02-29T12:34:57.000Z");
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn a_time_before_the_epoch_is_negative() {
        let t = UNIX_EPOCH - Duration::from_millis(1);
        assert_eq!(unix_millis(t), -1);
        assert_eq!(rfc3339(t), "1969-12-31T23:59:59.999Z");
    }
}
