//! Writing down to a device: why a command payload cannot go out through a framing.
//!
//! Each framing's encoder lives in that framing's file, next to its framer, and refuses a
//! payload its own framer would not read back as exactly one frame.

/// A payload that cannot be written through a source's framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The framer skips empty frames, so nothing would arrive.
    #[error("the payload is empty, and the reader skips empty {0}")]
    Empty(&'static str),
    /// A CR or LF would end the line early; `at` counts from 0.
    #[error("a line cannot hold CR or LF (byte {at})")]
    LineEnd { at: usize },
    /// Longer than the framing's `max_length`, after what the encoder adds to it.
    #[error("{what} of {len} bytes is longer than max_length {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("a line starting with `#` is a comment, which skip_comments drops")]
    Comment,
    #[error("with nmea_checksum a line must start with `$` or `!`")]
    NotNmea,
    /// The payload brought its own `*HH`, and it is not the sentence's checksum.
    #[error("NMEA checksum *{given} is wrong: the sentence's is *{computed:02X}")]
    NmeaChecksum { given: String, computed: u8 },
    /// The length field would need more bytes than it has.
    #[error(
        "payload of {len} bytes does not fit a {width}-byte length field (it would hold {value})"
    )]
    LengthField { len: usize, width: u8, value: u64 },
    /// The packet would be too small for what the framing puts around the payload.
    #[error("payload of {len} bytes is too short for this framing: {why}")]
    TooShort { len: usize, why: String },
    /// The framing itself cannot be written, whatever the payload.
    #[error("this framing cannot be written: {0}")]
    Framing(String),
}
