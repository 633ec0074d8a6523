//! Writing capture files.

use std::io::{self, BufWriter, Write};
use std::time::Duration;

use super::{CaptureHeader, MAGIC};

/// Writes a capture file: the header at once, then one line per chunk. Lines are
/// buffered; call [`CaptureWriter::flush`] to push them to the file.
pub struct CaptureWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    last: Duration,
}

impl std::fmt::Debug for CaptureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// A header value must stay on its line and keep its meaning when trimmed.
fn text_value(key: &str, value: &str) -> io::Result<()> {
    if value.is_empty() || value.contains(['\n', '\r']) || value.trim() != value {
        return Err(invalid(format!(
            "capture header `{key}` must be one line of text without leading or trailing spaces, got {value:?}"
        )));
    }
    Ok(())
}

impl CaptureWriter {
    /// Starts a capture on `w` by writing the magic line and `header`.
    pub fn new(w: impl Write + Send + 'static, header: CaptureHeader) -> io::Result<Self> {
        let mut out = BufWriter::new(Box::new(w) as Box<dyn Write + Send>);
        writeln!(out, "{MAGIC}")?;
        if let Some(port) = &header.port {
            text_value("port", port)?;
            writeln!(out, "port: {port}")?;
        }
        if let Some(baud) = header.baud {
            writeln!(out, "baud: {baud}")?;
        }
        if let Some(bits) = header.data_bits {
            if !(5..=8).contains(&bits) {
                return Err(invalid(format!(
                    "capture header data_bits {bits} is not 5 to 8"
                )));
            }
            writeln!(out, "data_bits: {bits}")?;
        }
        if let Some(parity) = header.parity {
            writeln!(out, "parity: {parity}")?;
        }
        if let Some(bits) = header.stop_bits {
            if !(1..=2).contains(&bits) {
                return Err(invalid(format!(
                    "capture header stop_bits {bits} is not 1 or 2"
                )));
            }
            writeln!(out, "stop_bits: {bits}")?;
        }
        if let Some(at) = &header.started_at {
            text_value("started_at", at)?;
            writeln!(out, "started_at: {at}")?;
        }
        writeln!(out, "# <microseconds since start> <bytes read, in hex>")?;
        Ok(CaptureWriter {
            out,
            last: Duration::ZERO,
        })
    }

    /// Records one read of `bytes` at `at` since the start. An empty read is not
    /// recorded; `at` earlier than the previous chunk's is an error.
    pub fn write_chunk(&mut self, at: Duration, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if at < self.last {
            return Err(invalid(format!(
                "capture chunk at {} µs is before the previous one at {} µs",
                at.as_micros(),
                self.last.as_micros()
            )));
        }
        self.last = at;
        let mut line = String::with_capacity(24 + 2 * bytes.len());
        line.push_str(&at.as_micros().to_string());
        line.push(' ');
        for b in bytes {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            line.push(HEX[(b >> 4) as usize] as char);
            line.push(HEX[(b & 15) as usize] as char);
        }
        line.push('\n');
        self.out.write_all(line.as_bytes())
    }

    /// Pushes buffered lines to the underlying writer and flushes it.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
