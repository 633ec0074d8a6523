//! What the delimiter framers (COBS, SLIP) and the lines framer share: the `max_length`
//! check, and the bounded packet buffer with its reports (garbage before the first
//! delimiter, overlong, truncated), and what a packet written through them must be.

use bytes::Bytes;

use super::{BadFrame, BadKind, EncodeError, Framed, PREVIEW_LEN};

/// The problems of a `max_length` setting.
pub(super) fn validate_max_length(max_length: usize) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if max_length == 0 {
        problems.push(("max_length".to_string(), "must be at least 1".to_string()));
    }
    problems
}

/// Whether `payload` can be written as one packet that the framer reads back: not empty
/// (empty packets are skipped) and not longer than `max_length`.
pub(super) fn check_packet(payload: &[u8], max_length: usize) -> Result<(), EncodeError> {
    if payload.is_empty() {
        return Err(EncodeError::Empty("packets"));
    }
    if payload.len() > max_length {
        return Err(EncodeError::TooLong {
            what: "payload",
            len: payload.len(),
            max: max_length,
        });
    }
    Ok(())
}

/// The bytes since the last delimiter of a packet stream.
#[derive(Debug)]
pub(super) struct Packet {
    /// The encoding, as reports name it ("COBS").
    name: &'static str,
    /// The delimiter, as reports name it ("0x00").
    delimiter: &'static str,
    /// Longest decoded packet in bytes.
    max_length: usize,
    /// The decoded packet so far (never longer than `max_length`); before the first
    /// delimiter, the first bytes of the garbage.
    pub(super) bytes: Vec<u8>,
    /// Bytes received since the last delimiter.
    pub(super) raw_len: usize,
}

impl Packet {
    pub(super) fn new(name: &'static str, delimiter: &'static str, max_length: usize) -> Self {
        Packet {
            name,
            delimiter,
            max_length,
            bytes: Vec::new(),
            raw_len: 0,
        }
    }

    /// Forgets the packet: a delimiter came, or the input ended.
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.raw_len = 0;
    }

    /// How many more decoded bytes fit.
    pub(super) fn room(&self) -> usize {
        self.max_length - self.bytes.len().min(self.max_length)
    }

    /// Keeps `byte` of the garbage before the first delimiter, if the preview has room.
    pub(super) fn keep_preview(&mut self, byte: u8) {
        if self.bytes.len() < PREVIEW_LEN {
            self.bytes.push(byte);
        }
    }

    /// Appends a decoded byte; returns false when the packet is full instead, after
    /// reporting it as overlong: the caller skips to the next delimiter.
    pub(super) fn add(&mut self, byte: u8, out: &mut Vec<Framed>) -> bool {
        if self.bytes.len() < self.max_length {
            self.bytes.push(byte);
            return true;
        }
        let mut start = self.bytes[..self.bytes.len().min(PREVIEW_LEN)].to_vec();
        start.push(byte);
        out.push(Framed::Bad(BadFrame::new(
            BadKind::Overlong,
            self.max_length + 1,
            &start,
            format!(
                "{} packet longer than {} bytes, skipped up to its {}",
                self.name, self.max_length, self.delimiter
            ),
        )));
        self.bytes.clear();
        false
    }

    /// The decoded packet as a frame, unless it is empty.
    pub(super) fn frame(&self) -> Option<Framed> {
        (!self.bytes.is_empty()).then(|| Framed::Frame(Bytes::copy_from_slice(&self.bytes)))
    }

    /// A report of `kind` covering the bytes since the last delimiter.
    pub(super) fn bad(&self, kind: BadKind, detail: impl Into<String>) -> Framed {
        Framed::Bad(BadFrame::new(kind, self.raw_len, &self.bytes, detail))
    }

    /// The bytes before the first delimiter as garbage; `at_end` when the input ended
    /// before any delimiter came.
    pub(super) fn garbage(&self, at_end: bool) -> Framed {
        let where_ = if at_end { "and no" } else { "before the first" };
        let detail = format!("{} bytes {where_} {}", self.raw_len, self.delimiter);
        self.bad(BadKind::Garbage, detail)
    }

    /// The unfinished packet at the end of input.
    pub(super) fn truncated(&self) -> Framed {
        let detail = format!(
            "input ended inside a {} packet (no {})",
            self.name, self.delimiter
        );
        self.bad(BadKind::Truncated, detail)
    }
}
