//! Capture files: recorded serial reads with their timing.
//!
//! A capture is a text file (format in `docs/capture-format.md`): a magic line, a header
//! with the port settings and start time, then one line per read with its time offset in
//! microseconds and its exact bytes in hex, so a replay reproduces both the timing and
//! the chunk boundaries. Any file that does not start with the magic line is a raw byte
//! file (e.g. a gpsd log) and replays as one chunk.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;

mod parse;
mod time;
mod write;

pub use time::format_utc;
pub use write::CaptureWriter;

/// The first line of every capture file.
pub const MAGIC: &str = "# mqgate capture v1";

/// A loaded capture: the port it came from and what was read, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    pub header: CaptureHeader,
    pub chunks: Vec<Chunk>,
}

/// The port settings and start time of a capture; each is absent when unknown (always for
/// a raw file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureHeader {
    /// The serial device path, e.g. `/dev/serial/by-id/usb-FTDI_FT232R-if00-port0`.
    pub port: Option<String>,
    pub baud: Option<u32>,
    /// 5 to 8.
    pub data_bits: Option<u8>,
    pub parity: Option<Parity>,
    /// 1 or 2.
    pub stop_bits: Option<u8>,
    /// When the first read's offset 0 was, as RFC 3339 UTC text
    /// (e.g. `2026-11-26T06:00:00.000000Z`, see [`format_utc`]).
    pub started_at: Option<String>,
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Odd,
    Even,
}

impl fmt::Display for Parity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Parity::None => "none",
            Parity::Odd => "odd",
            Parity::Even => "even",
        })
    }
}

impl FromStr for Parity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Parity::None),
            "odd" => Ok(Parity::Odd),
            "even" => Ok(Parity::Even),
            _ => Err(format!("parity `{s}` is not none, odd or even")),
        }
    }
}

/// One read from the port: when, counted from the start of the capture, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub at: Duration,
    pub bytes: Bytes,
}

/// Why a capture could not be loaded. Each names the file, and the line where it applies.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read capture {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{name}:{line}: {message}")]
    Syntax {
        name: String,
        line: usize,
        message: String,
    },
}

impl Capture {
    /// A capture file, or a plain raw byte file (e.g. gpsd's *.log: `#` comment lines are
    /// dropped, the rest is one chunk at offset 0). Errors name the file and line.
    pub fn load(path: &Path) -> Result<Capture, CaptureError> {
        let data = std::fs::read(path).map_err(|source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Capture::parse(&data, &path.display().to_string())
    }

    /// Parses the contents of a capture or raw file; `name` is used in errors.
    pub fn parse(data: &[u8], name: &str) -> Result<Capture, CaptureError> {
        if parse::is_capture(data) {
            parse::parse_capture(data, name)
        } else {
            Ok(parse::parse_raw(data))
        }
    }

    /// All bytes of all chunks, in order.
    pub fn bytes(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.chunks.iter().map(|c| c.bytes.len()).sum());
        for c in &self.chunks {
            all.extend_from_slice(&c.bytes);
        }
        all
    }

    /// Offset of the last chunk: how long a replay at recorded timing takes.
    pub fn duration(&self) -> Duration {
        self.chunks.last().map(|c| c.at).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
