//! The idle-gap framer: a frame ends when the line goes quiet. For radio modems in
//! transparent mode (Ebyte E32/E22), which send each received packet as a burst of bytes
//! with nothing around it.
//!
//! The framer stays pure: the source measures the silence and calls [`Framer::idle`] once
//! the line has been quiet for [`Framer::idle_after`].

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::lines::DEFAULT_MAX_LENGTH;
use super::{BadFrame, BadKind, EncodeError, Framed, Framer, PREVIEW_LEN};

/// `type: idle_gap` — a frame is a burst of bytes followed by silence: it ends once no
/// byte has come for `gap_chars` character times (10 bits at the port's baud rate, as
/// 8N1 sends them; the serial port's own settings when it has others), but never less
/// than `min_gap_ms`.
///
/// ```yaml
/// framing:
///   type: idle_gap
///   gap_chars: 3.5    # Modbus RTU's t3.5
///   min_gap_ms: 20    # USB serial adapters deliver bytes in batches up to 16 ms apart
///   max_length: 512
/// ```
///
/// A frame longer than `max_length` is reported once as `overlong` and the rest of it is
/// skipped up to the next silence. At the end of input (the port closed) an unfinished
/// frame is reported as `truncated`; a replay treats the end of its capture as silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdleGapConfig {
    /// Silence that ends a frame, in character times (default 3.5).
    pub gap_chars: f64,
    /// The shortest silence that ends a frame, in milliseconds (default 20). Also the
    /// whole gap when the baud rate is unknown (a replay source without `baud`).
    pub min_gap_ms: u64,
    /// Baud rate for the character time; default: the serial port's.
    pub baud: Option<u32>,
    /// Longest frame in bytes (default 4096).
    pub max_length: usize,
}

impl Default for IdleGapConfig {
    fn default() -> Self {
        IdleGapConfig {
            gap_chars: 3.5,
            min_gap_ms: 20,
            baud: None,
            max_length: DEFAULT_MAX_LENGTH,
        }
    }
}

/// Bits a character takes on the line when nothing else is known: start, 8 data, stop.
const BITS_PER_CHAR: u32 = 10;

/// The longest gap accepted, so that a typo cannot hold a frame for hours.
const MAX_GAP: Duration = Duration::from_secs(60);

impl IdleGapConfig {
    pub(super) fn validate(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if !(self.gap_chars.is_finite() && self.gap_chars > 0.0) {
            p.push((
                "gap_chars".to_string(),
                "must be a number above 0".to_string(),
            ));
        }
        if self.baud == Some(0) {
            p.push(("baud".to_string(), "must be at least 1".to_string()));
        }
        if Duration::from_millis(self.min_gap_ms) > MAX_GAP {
            p.push((
                "min_gap_ms".to_string(),
                format!("must be at most {}", MAX_GAP.as_millis()),
            ));
        }
        if self.max_length == 0 {
            p.push(("max_length".to_string(), "must be at least 1".to_string()));
        }
        p
    }

    /// `payload` as it is: the silence after it, [`IdleGapConfig::gap`], ends the frame.
    pub(super) fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if payload.is_empty() {
            return Err(EncodeError::Empty("bursts"));
        }
        if payload.len() > self.max_length {
            let (len, max) = (payload.len(), self.max_length);
            return Err(EncodeError::TooLong {
                what: "payload",
                len,
                max,
            });
        }
        out.extend_from_slice(payload);
        Ok(())
    }

    /// The silence that ends a frame, on a port whose characters take `port_char_time`:
    /// `gap_chars` characters (at `baud` when set), at least `min_gap_ms`.
    pub fn gap(&self, port_char_time: Option<Duration>) -> Duration {
        let char_time = self.baud.map(char_time_8n1).or(port_char_time);
        let floor = Duration::from_millis(self.min_gap_ms);
        let chars = match char_time {
            Some(t) if self.gap_chars.is_finite() && self.gap_chars > 0.0 => {
                t.mul_f64(self.gap_chars.min(1e6))
            }
            _ => Duration::ZERO,
        };
        chars.max(floor).min(MAX_GAP)
    }
}

/// Cuts a byte stream into bursts separated by silence; see [`IdleGapConfig`].
#[derive(Debug)]
pub struct IdleGapFramer {
    config: IdleGapConfig,
    /// The silence that ends a frame.
    gap: Duration,
    /// The frame so far (never longer than `max_length`).
    frame: Vec<u8>,
    /// Bytes received since the last silence, when more than `max_length` (reported).
    skipped: usize,
}

impl IdleGapFramer {
    pub fn new(config: IdleGapConfig) -> Self {
        IdleGapFramer {
            gap: config.gap(None),
            config,
            frame: Vec::new(),
            skipped: 0,
        }
    }

    /// The silence that ends a frame.
    pub fn gap(&self) -> Duration {
        self.gap
    }
}

/// The time one 8N1 character takes at `baud`.
fn char_time_8n1(baud: u32) -> Duration {
    Duration::from_secs_f64(f64::from(BITS_PER_CHAR) / f64::from(baud.max(1)))
}

impl Framer for IdleGapFramer {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<Framed>) {
        if self.skipped > 0 {
            self.skipped = self.skipped.saturating_add(bytes.len());
            return;
        }
        let room = self.config.max_length - self.frame.len();
        if bytes.len() <= room {
            self.frame.extend_from_slice(bytes);
            return;
        }
        let mut start = self.frame[..self.frame.len().min(PREVIEW_LEN)].to_vec();
        let more = PREVIEW_LEN.saturating_sub(start.len()).min(bytes.len());
        start.extend_from_slice(&bytes[..more]);
        out.push(Framed::Bad(BadFrame::new(
            BadKind::Overlong,
            self.config.max_length + 1,
            &start,
            format!(
                "burst longer than {} bytes without a silence of {:?}, skipped up to the next silence",
                self.config.max_length, self.gap
            ),
        )));
        self.skipped = self.frame.len() + bytes.len();
        self.frame.clear();
    }

    fn finish(&mut self, out: &mut Vec<Framed>) {
        if !self.frame.is_empty() {
            out.push(Framed::Bad(BadFrame::new(
                BadKind::Truncated,
                self.frame.len(),
                &self.frame,
                "input ended inside a burst (no silence after it)",
            )));
        }
        self.frame.clear();
        self.skipped = 0;
    }

    fn idle_after(&self) -> Option<Duration> {
        (!self.frame.is_empty() || self.skipped > 0).then_some(self.gap)
    }

    fn idle(&mut self, out: &mut Vec<Framed>) {
        if !self.frame.is_empty() {
            out.push(Framed::Frame(Bytes::copy_from_slice(&self.frame)));
        }
        self.frame.clear();
        self.skipped = 0;
    }

    fn set_char_time(&mut self, char_time: Duration) {
        self.gap = self.config.gap(Some(char_time));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FramingConfig;

    fn framer(yaml: &str) -> Box<dyn Framer> {
        let config: FramingConfig = serde_yaml_ng::from_str(yaml).expect("parses");
        assert!(config.validate().is_empty(), "{:?}", config.validate());
        config.build()
    }

    #[test]
    fn the_gap_is_gap_chars_character_times_but_at_least_min_gap_ms() {
        let f = IdleGapFramer::new(IdleGapConfig {
            baud: Some(9600),
            min_gap_ms: 0,
            ..IdleGapConfig::default()
        });
        // 3.5 × 10 bits / 9600 baud = 3.6458 ms
        assert_eq!(f.gap().as_micros(), 3645);
        let mut f = IdleGapFramer::new(IdleGapConfig::default());
        assert_eq!(
            f.gap(),
            Duration::from_millis(20),
            "unknown baud: the floor"
        );
        f.set_char_time(Duration::from_millis(10));
        assert_eq!(f.gap(), Duration::from_millis(35));
        f.set_char_time(Duration::from_micros(100));
        assert_eq!(f.gap(), Duration::from_millis(20));
        let mut fixed = IdleGapFramer::new(IdleGapConfig {
            baud: Some(1200),
            min_gap_ms: 1,
            gap_chars: 1.0,
            ..IdleGapConfig::default()
        });
        fixed.set_char_time(Duration::from_millis(50));
        assert_eq!(
            fixed.gap().as_micros(),
            8333,
            "a configured baud wins over the port's"
        );
    }

    #[test]
    fn bytes_become_a_frame_only_when_the_line_goes_idle() {
        let mut f = framer("type: idle_gap");
        let mut out = Vec::new();
        assert_eq!(f.idle_after(), None, "nothing held, no timer");
        f.push(b"ab", &mut out);
        f.push(b"c", &mut out);
        assert!(out.is_empty());
        assert_eq!(f.idle_after(), Some(Duration::from_millis(20)));
        f.idle(&mut out);
        assert_eq!(out, vec![Framed::Frame(Bytes::from_static(b"abc"))]);
        assert_eq!(f.idle_after(), None);
        f.idle(&mut out);
        assert_eq!(out.len(), 1, "a second idle adds nothing");
    }

    #[test]
    fn an_overlong_burst_is_reported_once_and_the_next_burst_is_whole() {
        let mut f = framer("type: idle_gap\nmax_length: 4");
        let mut out = Vec::new();
        f.push(b"abc", &mut out);
        f.push(b"de", &mut out);
        f.push(b"fgh", &mut out);
        assert_eq!(out.len(), 1);
        let Framed::Bad(b) = &out[0] else { panic!() };
        assert_eq!(
            (b.kind, b.len, &b.preview[..]),
            (BadKind::Overlong, 5, &b"abcde"[..])
        );
        assert!(f.idle_after().is_some(), "the skip lasts until a silence");
        f.idle(&mut out);
        f.push(b"wxyz", &mut out);
        f.idle(&mut out);
        assert_eq!(out[1], Framed::Frame(Bytes::from_static(b"wxyz")));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn an_unfinished_burst_is_truncated_at_the_end_of_input() {
        let mut f = framer("type: idle_gap");
        let mut out = Vec::new();
        f.push(b"ab", &mut out);
        f.finish(&mut out);
        assert!(matches!(&out[..], [Framed::Bad(b)] if b.kind == BadKind::Truncated));
        assert_eq!(f.idle_after(), None);
    }

    #[test]
    fn validation_names_each_bad_field() {
        let config: FramingConfig = serde_yaml_ng::from_str(
            "type: idle_gap\ngap_chars: 0\nbaud: 0\nmin_gap_ms: 3600000\nmax_length: 0",
        )
        .unwrap();
        let fields: Vec<String> = config.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["gap_chars", "baud", "min_gap_ms", "max_length"]);
        let err = serde_yaml_ng::from_str::<FramingConfig>("type: idle_gap\ngap: 3").unwrap_err();
        assert!(err.to_string().contains("`gap`"), "{err}");
    }
}
