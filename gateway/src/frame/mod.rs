//! Frames and framers. A framer is pure and synchronous: bytes in, split anywhere,
//! frames out; no I/O. A bad frame is reported as an event, never a panic.
//!
//! Commands written down to a device go through the same framing in reverse:
//! [`FramingConfig::encode`] gives bytes that the source's own framer reads back.
//!
//! Adding a framer: one file with its config struct (serde), its `encode`, and a type
//! implementing [`Framer`]; and one variant in [`FramingConfig`] with its arms in `build`,
//! `validate`, `encode` and `quiet_after`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

mod binary;
mod cobs;
mod delimited;
mod encode;
mod idle;
mod lines;
mod slip;

pub use binary::{
    BinaryConfig, BinaryFramer, ChecksumConfig, ChecksumKind, Crc16Algorithm, Endian, LengthField,
};
pub use cobs::{cobs_encode, CobsConfig, CobsFramer};
pub use encode::EncodeError;
pub use idle::{IdleGapConfig, IdleGapFramer};
pub use lines::{check_nmea, LineEnding, LinesConfig, LinesFramer};
pub use slip::{slip_encode, SlipConfig, SlipFramer};

/// One unit of data from a source: a line, a packet, a radio message.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The id of the source it came from (as configured).
    pub source: Arc<str>,
    pub received_at: SystemTime,
    pub bytes: Bytes,
    pub meta: Meta,
}

/// What the transport knows about a frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    /// Received signal strength, dBm.
    pub rssi: Option<f64>,
    /// Signal-to-noise ratio, dB.
    pub snr: Option<f64>,
    /// Radio frequency, Hz.
    pub frequency_hz: Option<u64>,
    /// Data rate as the radio names it, e.g. `SF7BW125`.
    pub datarate: Option<String>,
    /// Port the frame came from (serial path, UDP peer...); shared by all its frames.
    pub port: Option<Arc<str>>,
    /// Anything else, by name.
    pub extra: BTreeMap<String, String>,
    /// A polled device's values (a Modbus poll): the frame's bytes are them as JSON.
    pub polled: Option<Arc<Polled>>,
    /// The MQTT topic a frame came in on (an MQTT source): scripts see it and its
    /// levels, topic templates `{topic}` and `{level0}`, `{level1}`...
    pub topic: Option<Arc<str>>,
    /// Set by a source that must hear once the frame's messages are stored.
    pub receipt: Receipt,
}

/// How a source hears that a frame's messages are in the store: an MQTT source
/// acknowledges a message to its broker only then. The mapping hands the receipt
/// on with the frame's messages (or releases it at once when there are none), and
/// the store's feeder releases it once they are committed. A receipt dropped
/// unreleased (the gateway stopped first) is never acknowledged: the broker sends
/// the message again.
///
/// A copy of a frame (the status page keeps some) does not carry its receipt.
#[derive(Default)]
pub struct Receipt(Option<tokio::sync::oneshot::Sender<()>>);

impl Receipt {
    /// A receipt, and what resolves when it is released.
    pub fn new() -> (Receipt, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Receipt(Some(tx)), rx)
    }

    /// Take the receipt out, leaving none.
    pub fn take(&mut self) -> Receipt {
        Receipt(self.0.take())
    }

    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// The frame's messages are stored (or there are none).
    pub fn release(mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

impl Clone for Receipt {
    fn clone(&self) -> Receipt {
        Receipt(None)
    }
}

impl PartialEq for Receipt {
    /// Receipts say nothing about what a frame holds.
    fn eq(&self, _: &Receipt) -> bool {
        true
    }
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Receipt(pending)"
        } else {
            "Receipt(none)"
        })
    }
}

/// One poll of a device: its fields' values (scaled) and the registers they came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Polled {
    /// Field name → value (number, bool or string).
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Field name → its registers as read (numbers), or its bit (bool).
    pub registers: serde_json::Map<String, serde_json::Value>,
}

/// Cuts a byte stream into frames. Feeding the same bytes split at any places gives the
/// same output.
pub trait Framer: Send {
    /// Feed bytes split anywhere; whole frames and bad-frame reports are appended to `out`.
    fn push(&mut self, bytes: &[u8], out: &mut Vec<Framed>);
    /// End of input (EOF of a replay, port closed): report what is left, if anything, as truncated.
    fn finish(&mut self, out: &mut Vec<Framed>);

    /// For a framer that ends frames on silence: how long the line must stay quiet, from
    /// the last push, before the source calls [`Framer::idle`]. `None` (the default) when
    /// no silence would change anything, e.g. nothing is held.
    fn idle_after(&self) -> Option<Duration> {
        None
    }

    /// The line has been quiet for [`Framer::idle_after`]: end the frame being received.
    fn idle(&mut self, _out: &mut Vec<Framed>) {}

    /// The time one character takes on the line (start, data, parity and stop bits at the
    /// baud rate), told by a serial source before its first push. Ignored by default.
    fn set_char_time(&mut self, _char_time: Duration) {}
}

/// What a framer produces: a whole frame, or a report about bytes it could not frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Framed {
    Frame(Bytes),
    Bad(BadFrame),
}

/// Bytes a framer rejected, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadFrame {
    pub kind: BadKind,
    /// How many bytes the report covers. An overlong line is reported when it passes
    /// `max_length`, so its `len` is `max_length + 1`; an overlong binary frame covers the
    /// bytes up to the end of its length field.
    pub len: usize,
    /// First bytes for a preview (≤ 64).
    pub preview: Bytes,
    /// Human text, e.g. "NMEA checksum 0x4A, computed 0x4B".
    pub detail: String,
}

/// Longest preview a [`BadFrame`] carries.
pub const PREVIEW_LEN: usize = 64;

impl BadFrame {
    /// A report covering `len` bytes whose first bytes are `start` (cut to [`PREVIEW_LEN`]).
    pub fn new(kind: BadKind, len: usize, start: &[u8], detail: impl Into<String>) -> Self {
        let n = start.len().min(PREVIEW_LEN);
        BadFrame {
            kind,
            len,
            preview: Bytes::copy_from_slice(&start[..n]),
            detail: detail.into(),
        }
    }
}

/// Why a framer rejected bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadKind {
    /// The frame's checksum is wrong or missing.
    Checksum,
    /// Longer than the configured `max_length`.
    Overlong,
    /// Bytes that are not part of any frame (before a sync, a line that is no sentence...).
    Garbage,
    /// An incomplete frame at the end of the input.
    Truncated,
}

impl BadKind {
    /// Lower-case name, as used in counters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BadKind::Checksum => "checksum",
            BadKind::Overlong => "overlong",
            BadKind::Garbage => "garbage",
            BadKind::Truncated => "truncated",
        }
    }
}

impl std::fmt::Display for BadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `framing:` block of a source: how its bytes are cut into frames. `type` picks the
/// framer; the other keys are that framer's (see [`LinesConfig`], [`BinaryConfig`],
/// [`SlipConfig`], [`CobsConfig`] and [`IdleGapConfig`]).
///
/// ```yaml
/// framing:
///   type: lines
///   nmea_checksum: true
/// ```
///
/// Without a `framing:` block a source uses `type: lines` with its defaults.
///
/// Length-prefixed packets without sync bytes (`[len][payload][crc]`) are `type: binary`
/// with `sync` left out, e.g. a little-endian u16 length of the payload and a CRC-16/MODBUS
/// over length and payload:
///
/// ```yaml
/// framing:
///   type: binary
///   length: { offset: 0, width: 2, endian: little, adjust: 2 }
///   checksum: { kind: crc16, algorithm: modbus, endian: little }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FramingConfig {
    /// Text lines ended by CR, LF or CRLF.
    Lines(LinesConfig),
    /// Binary packets: sync bytes, a length field and a checksum.
    Binary(BinaryConfig),
    /// SLIP packets (RFC 1055), ended by 0xC0.
    Slip(SlipConfig),
    /// COBS packets, ended by 0x00.
    Cobs(CobsConfig),
    /// Bursts of bytes ended by a silence on the line (radio modems in transparent mode).
    IdleGap(IdleGapConfig),
}

impl Default for FramingConfig {
    fn default() -> Self {
        FramingConfig::Lines(LinesConfig::default())
    }
}

impl FramingConfig {
    /// A fresh framer for one source. Call [`FramingConfig::validate`] first: a config that
    /// fails validation still builds, but its framer may reject every frame.
    pub fn build(&self) -> Box<dyn Framer> {
        match self {
            FramingConfig::Lines(c) => Box::new(LinesFramer::new(c.clone())),
            FramingConfig::Binary(c) => Box::new(BinaryFramer::new(c.clone())),
            FramingConfig::Slip(c) => Box::new(SlipFramer::new(c.clone())),
            FramingConfig::Cobs(c) => Box::new(CobsFramer::new(c.clone())),
            FramingConfig::IdleGap(c) => Box::new(IdleGapFramer::new(c.clone())),
        }
    }

    /// Semantic problems as (field path relative to the framing block, message),
    /// e.g. `("length.width", "must be 1, 2 or 4")`. Empty when the config is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        match self {
            FramingConfig::Lines(c) => c.validate(),
            FramingConfig::Binary(c) => c.validate(),
            FramingConfig::Slip(c) => c.validate(),
            FramingConfig::Cobs(c) => c.validate(),
            FramingConfig::IdleGap(c) => c.validate(),
        }
    }

    /// The bytes to write for one command payload: the framing in reverse, so that this
    /// source's own framer would read back exactly `payload`. Two framings add to what is
    /// read back: `lines` with `nmea_checksum` appends `*HH` to a sentence without one,
    /// and `binary` reads back the whole packet, of which `payload` is the part that is
    /// neither sync, length field nor checksum (see `BinaryConfig::encode`).
    pub fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            FramingConfig::Lines(c) => c.encode(payload, out),
            FramingConfig::Binary(c) => c.encode(payload, out),
            FramingConfig::Slip(c) => c.encode(payload, out),
            FramingConfig::Cobs(c) => c.encode(payload, out),
            FramingConfig::IdleGap(c) => c.encode(payload, out),
        }
    }

    /// How long the line must stay silent after a write (idle_gap: its gap, so the
    /// device sees the end of the frame), else None. `char_time` is the port's time per
    /// character; a configured `baud` wins over it, as when reading.
    pub fn quiet_after(&self, char_time: Duration) -> Option<Duration> {
        match self {
            FramingConfig::IdleGap(c) => Some(c.gap(Some(char_time))),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod encode_tests;
