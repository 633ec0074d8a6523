//! The binary framer: sync bytes, a length field and a checksum.

use serde::{Deserialize, Serialize};

mod checksum;
mod encode;
mod framer;

pub use framer::BinaryFramer;

use super::lines::DEFAULT_MAX_LENGTH;

/// `type: binary` — packets that start with fixed sync bytes and carry their own length,
/// optionally protected by a checksum. A frame is the whole packet, sync and checksum
/// included.
///
/// u-blox UBX (`B5 62 class id len(u16 LE) payload CK_A CK_B`, Fletcher-8 over
/// class..payload):
///
/// ```yaml
/// framing:
///   type: binary
///   sync: [0xB5, 0x62]
///   length: { offset: 4, width: 2, endian: little, adjust: 2 }
///   checksum: { kind: fletcher8, from: 2 }
/// ```
///
/// A Modbus-style packet with a CRC-16 sent low byte first:
///
/// ```yaml
/// framing:
///   type: binary
///   sync: [0x7E]
///   length: { offset: 1, width: 1 }
///   checksum: { kind: crc16, algorithm: modbus, from: 1, endian: little }
/// ```
///
/// Bytes before a sync are reported as one `garbage` report per run. A frame whose
/// checksum fails is reported as `checksum`, and the search for the next sync restarts
/// one byte after the failed sync, so a real frame hidden inside a false one is found;
/// the bytes of a reported frame are not reported again as garbage. A sync whose length
/// field announces more than `max_length` is reported as `overlong`, one that announces
/// less than the header and checksum need as `garbage`. At the end of input an incomplete
/// frame is reported as `truncated`.
///
/// Without sync bytes (`sync` left out or `[]`) the frames are length-prefixed, back to
/// back, e.g. `[len u16 LE][payload][CRC-16/MODBUS LE]`:
///
/// ```yaml
/// framing:
///   type: binary
///   length: { offset: 0, width: 2, endian: little, adjust: 2 }
///   checksum: { kind: crc16, algorithm: modbus, endian: little }
/// ```
///
/// Then every byte may start a frame, so a checksum is required: after a bad frame the
/// search goes on one byte later until a frame checks again. A position that fails inside
/// the bytes of a frame already reported is not reported again, so a corrupt packet
/// usually gives one report. A length field corrupted into a large value holds the search
/// until that many bytes have come (or `max_length`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryConfig {
    /// The bytes every frame starts with, e.g. `[0xB5, 0x62]`; none (the default) for
    /// length-prefixed frames, which then need a checksum.
    #[serde(default)]
    pub sync: Vec<u8>,
    /// Where the frame's length is.
    pub length: LengthField,
    /// How the frame is checked (default: not at all).
    #[serde(default)]
    pub checksum: ChecksumConfig,
    /// Longest frame in bytes, everything included (default 4096). A sync whose length
    /// field says more is reported as `overlong` and skipped.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
}

fn default_max_length() -> usize {
    DEFAULT_MAX_LENGTH
}

/// The length field: total frame length = `offset + width + value + adjust`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthField {
    /// Position of the field from the start of the frame (the first sync byte).
    pub offset: usize,
    /// Size of the field in bytes: 1, 2 or 4.
    pub width: u8,
    /// Byte order of the field: `big` (default) or `little`.
    #[serde(default)]
    pub endian: Endian,
    /// Bytes that follow the field but are not counted by it (positive, e.g. a trailing
    /// checksum) or that it counts but are before it (negative). Default 0.
    #[serde(default)]
    pub adjust: i64,
}

/// Byte order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endian {
    #[default]
    Big,
    Little,
}

/// What protects a frame, which bytes it covers and where it sits.
///
/// Positions count from the start of the frame (the first sync byte); a negative number
/// counts from the end (`-2` is the second-to-last byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksumConfig {
    /// `none` (default), `xor` (one byte), `fletcher8` (two bytes CK_A CK_B, as in u-blox
    /// UBX) or `crc16` (two bytes; needs `algorithm`).
    #[serde(default)]
    pub kind: ChecksumKind,
    /// The CRC-16 variant, for `kind: crc16` only.
    #[serde(default)]
    pub algorithm: Option<Crc16Algorithm>,
    /// First byte covered (default 0: the sync included).
    #[serde(default)]
    pub from: i64,
    /// End of the covered bytes, exclusive (default: where the checksum starts).
    #[serde(default)]
    pub to: Option<i64>,
    /// Where the checksum sits (default: the last bytes of the frame).
    #[serde(default)]
    pub at: Option<i64>,
    /// Byte order of a `crc16`: `big` (default) or `little`.
    #[serde(default)]
    pub endian: Endian,
}

impl Default for ChecksumConfig {
    fn default() -> Self {
        ChecksumConfig {
            kind: ChecksumKind::None,
            algorithm: None,
            from: 0,
            to: None,
            at: None,
            endian: Endian::Big,
        }
    }
}

/// The checksum algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumKind {
    #[default]
    None,
    Xor,
    Fletcher8,
    Crc16,
}

impl ChecksumKind {
    /// Size of the checksum in the frame, in bytes.
    pub fn size(self) -> usize {
        match self {
            ChecksumKind::None => 0,
            ChecksumKind::Xor => 1,
            ChecksumKind::Fletcher8 | ChecksumKind::Crc16 => 2,
        }
    }
}

/// CRC-16 variants, by their common names (parameters from the CRC catalogue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Crc16Algorithm {
    /// CRC-16/MODBUS.
    Modbus,
    /// CRC-16/CCITT-FALSE, also named CRC-16/IBM-3740 and AUTOSAR.
    CcittFalse,
    /// CRC-16/KERMIT (CCITT, reflected, init 0).
    Kermit,
    /// CRC-16/XMODEM (also ZMODEM, ACORN).
    Xmodem,
    /// CRC-16/X-25, also named CRC-16/IBM-SDLC.
    X25,
    /// CRC-16/ARC (also LHA, IBM).
    Arc,
    /// CRC-16/USB.
    Usb,
    /// CRC-16/MAXIM-DOW.
    Maxim,
    /// CRC-16/DNP.
    Dnp,
    /// CRC-16/GENIBUS (also EPC, DARC).
    Genibus,
    /// CRC-16/MCRF4XX.
    Mcrf4xx,
}

impl BinaryConfig {
    pub(super) fn validate(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut add = |field: &str, msg: String| p.push((field.to_string(), msg));
        if self.sync.is_empty() && self.checksum.kind == ChecksumKind::None {
            add(
                "sync",
                "is empty, so a checksum is needed to find frames again after an error: \
                 set sync bytes or a checksum kind"
                    .into(),
            );
        }
        let l = &self.length;
        if ![1, 2, 4].contains(&l.width) {
            add("length.width", "must be 1, 2 or 4".into());
        }
        if l.offset < self.sync.len() {
            add(
                "length.offset",
                format!(
                    "must be at least {} (the field cannot overlap the sync bytes)",
                    self.sync.len()
                ),
            );
        }
        let header = l.offset + l.width as usize;
        if self.max_length < header.max(1) {
            add(
                "max_length",
                format!("must be at least {header} (the bytes up to the end of the length field)"),
            );
        }
        let c = &self.checksum;
        match (c.kind, c.algorithm) {
            (ChecksumKind::Crc16, None) => add(
                "checksum.algorithm",
                "is required for kind crc16 (e.g. modbus, ccitt_false, kermit, xmodem, x25)".into(),
            ),
            (k, Some(_)) if k != ChecksumKind::Crc16 => {
                add("checksum.algorithm", "is only used with kind crc16".into())
            }
            _ => {}
        }
        if c.kind == ChecksumKind::None && (c.from != 0 || c.to.is_some() || c.at.is_some()) {
            add(
                "checksum.kind",
                "is none, so from/to/at have no effect: set a kind".into(),
            );
        }
        if let (Some(to), true) = (c.to, c.from >= 0) {
            if to >= 0 && to < c.from {
                add(
                    "checksum.to",
                    format!("must not be before from ({})", c.from),
                );
            }
        }
        p
    }
}

#[cfg(test)]
mod tests;
