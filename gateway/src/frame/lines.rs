//! The lines framer: text lines ended by CR, LF or CRLF, with an optional NMEA 0183
//! checksum check; and the way back, a command written as one line.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::delimited::validate_max_length;
use super::{BadFrame, BadKind, EncodeError, Framed, Framer};

/// `type: lines` — one frame per text line, without its line end.
///
/// A line ends at CR, LF or CRLF; empty lines are skipped, so a CRLF split across two
/// reads is still one line end.
///
/// ```yaml
/// framing:
///   type: lines
///   max_length: 256      # longer lines are reported as overlong and skipped
///   nmea_checksum: true  # `$...*HH` / `!...*HH` only, with a good checksum
///   skip_comments: true  # drop lines starting with `#` (gpsd logs)
///   line_ending: crlf    # written after each command sent to the device
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinesConfig {
    /// Longest line in bytes, line end not counted (default 4096). A longer line is
    /// reported once as `overlong` and skipped up to its end.
    pub max_length: usize,
    /// Check NMEA 0183 checksums (default false). A line starting with `$` or `!` must end
    /// in `*HH`, the XOR of the bytes between the `$`/`!` and the `*` as two hex digits;
    /// a wrong or missing checksum is reported as `checksum`. Any other line is reported
    /// as `garbage`.
    pub nmea_checksum: bool,
    /// Drop lines starting with `#` without reporting them (default false).
    pub skip_comments: bool,
    /// What ends a command written to the device: `crlf` (default), `lf` or `cr`. Reading
    /// accepts any of them whatever this says.
    pub line_ending: LineEnding,
}

/// The end of a written line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineEnding {
    #[default]
    Crlf,
    Lf,
    Cr,
}

impl LineEnding {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Crlf => b"\r\n",
            LineEnding::Lf => b"\n",
            LineEnding::Cr => b"\r",
        }
    }
}

/// Default longest line or frame, in bytes.
pub(super) const DEFAULT_MAX_LENGTH: usize = 4096;

impl Default for LinesConfig {
    fn default() -> Self {
        LinesConfig {
            max_length: DEFAULT_MAX_LENGTH,
            nmea_checksum: false,
            skip_comments: false,
            line_ending: LineEnding::Crlf,
        }
    }
}

impl LinesConfig {
    pub(super) fn validate(&self) -> Vec<(String, String)> {
        validate_max_length(self.max_length)
    }

    /// `payload` as one line the framer reads back as a frame. Under `nmea_checksum` a
    /// sentence without `*HH` gets it appended (the frame read back then ends with it);
    /// one with `*HH` must carry the right checksum.
    pub(super) fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if payload.is_empty() {
            return Err(EncodeError::Empty("lines"));
        }
        if let Some(at) = payload.iter().position(|&b| b == b'\r' || b == b'\n') {
            return Err(EncodeError::LineEnd { at });
        }
        if self.skip_comments && payload[0] == b'#' {
            return Err(EncodeError::Comment);
        }
        let suffix = if self.nmea_checksum {
            nmea_suffix(payload)?
        } else {
            None
        };
        let len = payload.len() + suffix.map_or(0, |s| s.len());
        if len > self.max_length {
            let max = self.max_length;
            return Err(EncodeError::TooLong {
                what: "line",
                len,
                max,
            });
        }
        out.extend_from_slice(payload);
        if let Some(suffix) = suffix {
            out.extend_from_slice(&suffix);
        }
        out.extend_from_slice(self.line_ending.as_bytes());
        Ok(())
    }
}

/// The `*HH` an NMEA sentence needs appended: none when it already ends with the right one.
fn nmea_suffix(sentence: &[u8]) -> Result<Option<[u8; 3]>, EncodeError> {
    if !matches!(sentence[0], b'$' | b'!') {
        return Err(EncodeError::NotNmea);
    }
    let n = sentence.len();
    // Where the reader looks for a checksum: `*` third from the end.
    if n >= 4 && sentence[n - 3] == b'*' {
        let computed = nmea_xor(&sentence[1..n - 3]);
        let given = match (hex_digit(sentence[n - 2]), hex_digit(sentence[n - 1])) {
            (Some(h), Some(l)) => Some(h << 4 | l),
            _ => None,
        };
        if given != Some(computed) {
            return Err(EncodeError::NmeaChecksum {
                given: String::from_utf8_lossy(&sentence[n - 2..]).into_owned(),
                computed,
            });
        }
        return Ok(None);
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let x = nmea_xor(&sentence[1..]);
    Ok(Some([
        b'*',
        HEX[(x >> 4) as usize],
        HEX[(x & 0xF) as usize],
    ]))
}

/// The NMEA checksum of the bytes between `$`/`!` and `*`.
fn nmea_xor(body: &[u8]) -> u8 {
    body.iter().fold(0u8, |acc, b| acc ^ b)
}

/// Cuts a byte stream into lines; see [`LinesConfig`].
#[derive(Debug)]
pub struct LinesFramer {
    config: LinesConfig,
    /// The current line so far (never longer than `max_length`).
    line: Vec<u8>,
    /// True while skipping the rest of a line already reported as overlong.
    skipping: bool,
}

impl LinesFramer {
    pub fn new(config: LinesConfig) -> Self {
        LinesFramer {
            config,
            line: Vec::new(),
            skipping: false,
        }
    }

    fn end_line(&mut self, out: &mut Vec<Framed>) {
        if self.skipping {
            self.skipping = false;
        } else if !self.line.is_empty() {
            if let Some(framed) = judge_line(&self.config, &self.line) {
                out.push(framed);
            }
        }
        self.line.clear();
    }
}

impl Framer for LinesFramer {
    fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Framed>) {
        while !bytes.is_empty() {
            let end = bytes.iter().position(|&b| b == b'\n' || b == b'\r');
            let (text, rest) = match end {
                Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
                None => (bytes, None),
            };
            if !self.skipping {
                let room = self.config.max_length.saturating_sub(self.line.len());
                if text.len() > room {
                    let over = self.config.max_length + 1;
                    let start: Vec<u8> = self
                        .line
                        .iter()
                        .chain(text)
                        .take(over.min(super::PREVIEW_LEN))
                        .copied()
                        .collect();
                    out.push(Framed::Bad(BadFrame::new(
                        BadKind::Overlong,
                        over,
                        &start,
                        format!(
                            "line longer than {} bytes, skipped up to its end",
                            self.config.max_length
                        ),
                    )));
                    self.skipping = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(text);
                }
            }
            match rest {
                Some(rest) => {
                    self.end_line(out);
                    bytes = rest;
                }
                None => break,
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Framed>) {
        if !self.skipping && !self.line.is_empty() {
            let comment = self.config.skip_comments && self.line[0] == b'#';
            if !comment {
                out.push(Framed::Bad(BadFrame::new(
                    BadKind::Truncated,
                    self.line.len(),
                    &self.line,
                    "input ended inside a line (no line end)",
                )));
            }
        }
        self.line.clear();
        self.skipping = false;
    }
}

/// What a complete, non-empty line becomes: a frame, a bad report, or nothing (a comment).
fn judge_line(config: &LinesConfig, line: &[u8]) -> Option<Framed> {
    if config.skip_comments && line[0] == b'#' {
        return None;
    }
    if config.nmea_checksum {
        if let Err((kind, detail)) = check_nmea(line) {
            return Some(Framed::Bad(BadFrame::new(kind, line.len(), line, detail)));
        }
    }
    Some(Framed::Frame(Bytes::copy_from_slice(line)))
}

/// Checks an NMEA 0183 sentence: `$` or `!`, body, `*`, two hex digits of the body's XOR.
pub fn check_nmea(line: &[u8]) -> Result<(), (BadKind, String)> {
    match line.first() {
        Some(b'$') | Some(b'!') => {}
        _ => {
            return Err((
                BadKind::Garbage,
                "not an NMEA sentence (does not start with `$` or `!`)".to_string(),
            ))
        }
    }
    let n = line.len();
    if n < 4 || line[n - 3] != b'*' {
        return Err((
            BadKind::Checksum,
            "NMEA checksum missing (no `*HH` at the end)".to_string(),
        ));
    }
    let given = match (hex_digit(line[n - 2]), hex_digit(line[n - 1])) {
        (Some(h), Some(l)) => h << 4 | l,
        _ => {
            return Err((
                BadKind::Checksum,
                format!(
                    "NMEA checksum `{}` is not two hex digits",
                    String::from_utf8_lossy(&line[n - 2..])
                ),
            ))
        }
    };
    let computed = nmea_xor(&line[1..n - 3]);
    if given == computed {
        Ok(())
    } else {
        Err((
            BadKind::Checksum,
            format!("NMEA checksum 0x{given:02X}, computed 0x{computed:02X}"),
        ))
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
