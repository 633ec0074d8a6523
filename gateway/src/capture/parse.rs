//! Reading capture files and raw byte files.

use std::time::Duration;

use bytes::Bytes;

use super::{Capture, CaptureError, CaptureHeader, Chunk, MAGIC};

/// True when `data` starts with the magic line.
pub(super) fn is_capture(data: &[u8]) -> bool {
    match data.strip_prefix(MAGIC.as_bytes()) {
        Some(rest) => rest.is_empty() || rest.starts_with(b"\n") || rest.starts_with(b"\r\n"),
        None => false,
    }
}

/// A raw file: every `#` at the start of a line (file start or after `\n`) begins a
/// comment that runs up to and including the next `\n`; what is left is one chunk.
pub(super) fn parse_raw(data: &[u8]) -> Capture {
    let mut kept = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let line_end = data[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |p| i + p + 1);
        if data[i] != b'#' {
            kept.extend_from_slice(&data[i..line_end]);
        }
        i = line_end;
    }
    let chunks = if kept.is_empty() {
        Vec::new()
    } else {
        vec![Chunk {
            at: Duration::ZERO,
            bytes: Bytes::from(kept),
        }]
    };
    Capture {
        header: CaptureHeader::default(),
        chunks,
    }
}

/// A capture file, line by line (LF or CRLF line ends).
pub(super) fn parse_capture(data: &[u8], name: &str) -> Result<Capture, CaptureError> {
    let error = |line: usize, message: String| CaptureError::Syntax {
        name: name.to_string(),
        line,
        message,
    };
    let text = std::str::from_utf8(data).map_err(|e| {
        let line = 1 + data[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        error(line, "capture file is not valid UTF-8 text".to_string())
    })?;
    let mut capture = Capture::default();
    let mut last = Duration::ZERO;
    for (index, raw_line) in text.split('\n').enumerate().skip(1) {
        let number = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.as_bytes()[0].is_ascii_digit() {
            let chunk = parse_chunk(line).map_err(|m| error(number, m))?;
            if chunk.at < last {
                return Err(error(
                    number,
                    format!(
                        "time offset {} µs is before the previous line's {} µs",
                        chunk.at.as_micros(),
                        last.as_micros()
                    ),
                ));
            }
            last = chunk.at;
            capture.chunks.push(chunk);
        } else if !capture.chunks.is_empty() {
            return Err(error(
                number,
                "header line after the first data line (header lines come first)".to_string(),
            ));
        } else {
            set_header(&mut capture.header, line).map_err(|m| error(number, m))?;
        }
    }
    Ok(capture)
}

/// `<microseconds> <hex bytes>`.
fn parse_chunk(line: &str) -> Result<Chunk, String> {
    let (offset, hex) = line
        .split_once([' ', '\t'])
        .ok_or_else(|| "data line needs `<microseconds> <hex bytes>`".to_string())?;
    let micros: u64 = offset
        .parse()
        .map_err(|_| format!("time offset `{offset}` is not a whole number of microseconds"))?;
    let hex = hex.trim();
    if hex.is_empty() {
        return Err("data line has no bytes".to_string());
    }
    let bytes = decode_hex(hex)?;
    Ok(Chunk {
        at: Duration::from_micros(micros),
        bytes: Bytes::from(bytes),
    })
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) {
        return Err(format!(
            "hex bytes have an odd number of digits ({})",
            hex.len()
        ));
    }
    let digit = |c: u8, at: usize| {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("`{}` at column {} is not a hex digit", c as char, at + 1))
    };
    hex.as_bytes()
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| Ok(digit(pair[0], 2 * i)? << 4 | digit(pair[1], 2 * i + 1)?))
        .collect()
}

/// One `key: value` header line.
fn set_header(header: &mut CaptureHeader, line: &str) -> Result<(), String> {
    let (key, value) = line
        .split_once(':')
        .ok_or_else(|| format!("header line `{line}` needs `key: value`"))?;
    let (key, value) = (key.trim(), value.trim());
    if value.is_empty() {
        return Err(format!("header `{key}` has no value"));
    }
    let duplicate = |set: bool| {
        if set {
            Err(format!("header `{key}` appears twice"))
        } else {
            Ok(())
        }
    };
    let number = |what: &str| format!("header `{key}`: `{value}` is not {what}");
    match key {
        "port" => {
            duplicate(header.port.is_some())?;
            header.port = Some(value.to_string());
        }
        "baud" => {
            duplicate(header.baud.is_some())?;
            let baud: u32 = value.parse().map_err(|_| number("a baud rate"))?;
            if baud == 0 {
                return Err(number("a baud rate"));
            }
            header.baud = Some(baud);
        }
        "data_bits" => {
            duplicate(header.data_bits.is_some())?;
            match value.parse() {
                Ok(bits @ 5..=8) => header.data_bits = Some(bits),
                _ => return Err(number("5, 6, 7 or 8")),
            }
        }
        "parity" => {
            duplicate(header.parity.is_some())?;
            header.parity = Some(value.parse().map_err(|e| format!("header `{key}`: {e}"))?);
        }
        "stop_bits" => {
            duplicate(header.stop_bits.is_some())?;
            match value.parse() {
                Ok(bits @ 1..=2) => header.stop_bits = Some(bits),
                _ => return Err(number("1 or 2")),
            }
        }
        "started_at" => {
            duplicate(header.started_at.is_some())?;
            header.started_at = Some(value.to_string());
        }
        _ => {
            return Err(format!(
            "unknown header `{key}` (known: port, baud, data_bits, parity, stop_bits, started_at)"
        ))
        }
    }
    Ok(())
}
