//! Repeated log lines of one kind, summarised: the first one goes out in full, the
//! others within the same interval are only counted, and the next one after the
//! interval goes out in full with that count. A sensor with a broken mapping at 10
//! frames a second, or a client sending malformed packets, then writes a line a
//! minute to an SD card instead of one per event.
//!
//! One `LogLimit` per kind of event: a `static` at the call site, or a field of the
//! thing the events belong to (a source, a connection).
//!
//! ```
//! use std::time::Duration;
//! use log_limit::LogLimit;
//!
//! static DROPPED: LogLimit = LogLimit::new(Duration::from_secs(60));
//! if let Some(skipped) = DROPPED.check() {
//!     eprintln!("dropped a frame{}", log_limit::suppressed(skipped));
//! }
//! ```
//!
//! (Crates that throttle `tracing` events key them on their message and field
//! values; the events summarised here differ in exactly those, e.g. each dead
//! letter names its frame.)

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The interval most call sites use.
pub const MINUTE: Duration = Duration::from_secs(60);

/// One kind of event's limit: one line per `interval`.
#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the last line went out.
    logged_at: Option<Instant>,
    /// Events since then that did not.
    suppressed: u64,
}

impl LogLimit {
    pub const fn new(interval: Duration) -> LogLimit {
        LogLimit {
            interval,
            state: Mutex::new(State {
                logged_at: None,
                suppressed: 0,
            }),
        }
    }

    /// An event happened now: `Some(n)` when it is to be logged, `n` being the
    /// events left out since the last line; `None` when it is only counted.
    pub fn check(&self) -> Option<u64> {
        self.check_at(Instant::now())
    }

    /// `check` at a given time (for tests).
    pub fn check_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let due = state
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= self.interval);
        if due {
            state.logged_at = Some(now);
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// One line a minute.
impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new(MINUTE)
    }
}

/// The tail a logged line gets: empty when nothing was left out, else
/// ` (and 41 more like this since the last one logged)`.
pub fn suppressed(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" (and {n} more like this since the last one logged)")
    }
}

/// Characters of an outside value (a client id, a user name) a log line shows.
pub const SHOWN_CHARS: usize = 64;

/// An outside value as a log line shows it: quoted, at most [`SHOWN_CHARS`]
/// characters, then how many bytes were left out, with quotes and control
/// characters escaped so that a value cannot start a line (or a field) of its own.
/// Whoever sends a 64 KB client id then writes 64 characters to the log, not 64 KB.
pub fn shorten(value: &str) -> Shortened<'_> {
    Shortened(value)
}

/// See [`shorten`].
#[derive(Debug, Clone, Copy)]
pub struct Shortened<'a>(&'a str);

impl std::fmt::Display for Shortened<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"")?;
        for (shown, (i, c)) in self.0.char_indices().enumerate() {
            if shown == SHOWN_CHARS {
                return write!(f, "\"…(+{} bytes)", self.0.len() - i);
            }
            write!(f, "{}", c.escape_debug())?;
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_is_cut_and_control_characters_are_escaped() {
        assert_eq!(shorten("sensor-7").to_string(), "\"sensor-7\"");
        let long = "x".repeat(65_536);
        let shown = shorten(&long).to_string();
        assert_eq!(shown, format!("\"{}\"…(+65472 bytes)", "x".repeat(64)));
        assert_eq!(shorten("a\nb\"c").to_string(), "\"a\\nb\\\"c\"");
        let exactly = "é".repeat(64);
        assert_eq!(
            shorten(&exactly).to_string(),
            format!("\"{exactly}\""),
            "64 characters fit"
        );
    }

    #[test]
    fn the_first_goes_out_the_rest_of_the_interval_are_counted_then_summarised() {
        let limit = LogLimit::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(limit.check_at(t0), Some(0));
        for i in 1..=200 {
            assert_eq!(limit.check_at(t0 + Duration::from_millis(100 * i)), None);
        }
        assert_eq!(limit.check_at(t0 + Duration::from_secs(60)), Some(200));
        assert_eq!(limit.check_at(t0 + Duration::from_secs(61)), None);
        assert_eq!(limit.check_at(t0 + Duration::from_secs(200)), Some(1));
        assert_eq!(limit.check_at(t0 + Duration::from_secs(400)), Some(0));
    }

    #[test]
    fn the_tail_says_how_many_were_left_out() {
        assert_eq!(suppressed(0), "");
        assert_eq!(
            suppressed(41),
            " (and 41 more like this since the last one logged)"
        );
    }
}
