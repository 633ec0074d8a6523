//! Checksums of the binary framer: where they sit in a frame and how they are computed.

use std::ops::Range;

use crc::CRC_16_XMODEM;
use crc::{Crc, CRC_16_ARC, CRC_16_DNP, CRC_16_GENIBUS, CRC_16_IBM_3740, CRC_16_IBM_SDLC};
use crc::{CRC_16_KERMIT, CRC_16_MAXIM_DOW, CRC_16_MCRF4XX, CRC_16_MODBUS, CRC_16_USB};

use super::{ChecksumConfig, ChecksumKind, Crc16Algorithm, Endian};

/// A checksum ready to check frames, and to write them.
pub(super) struct Checker {
    config: ChecksumConfig,
    crc: Option<Crc<u16>>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("config", &self.config)
            .finish()
    }
}

impl Crc16Algorithm {
    fn catalog(self) -> &'static crc::Algorithm<u16> {
        match self {
            Crc16Algorithm::Modbus => &CRC_16_MODBUS,
            Crc16Algorithm::CcittFalse => &CRC_16_IBM_3740,
            Crc16Algorithm::Kermit => &CRC_16_KERMIT,
            Crc16Algorithm::Xmodem => &CRC_16_XMODEM,
            Crc16Algorithm::X25 => &CRC_16_IBM_SDLC,
            Crc16Algorithm::Arc => &CRC_16_ARC,
            Crc16Algorithm::Usb => &CRC_16_USB,
            Crc16Algorithm::Maxim => &CRC_16_MAXIM_DOW,
            Crc16Algorithm::Dnp => &CRC_16_DNP,
            Crc16Algorithm::Genibus => &CRC_16_GENIBUS,
            Crc16Algorithm::Mcrf4xx => &CRC_16_MCRF4XX,
        }
    }
}

/// Resolves a position that may count from the end of a frame of `len` bytes.
fn resolve(pos: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let p = if pos < 0 { len + pos } else { pos };
    (0..=len).contains(&p).then_some(p as usize)
}

impl Checker {
    pub(super) fn new(config: ChecksumConfig) -> Self {
        let crc = match (config.kind, config.algorithm) {
            (ChecksumKind::Crc16, Some(a)) => Some(Crc::<u16>::new(a.catalog())),
            _ => None,
        };
        Checker { config, crc }
    }

    /// The smallest frame that has room for the checksum and what it covers, as far as
    /// can be told without the frame's length (positions from the start only).
    pub(super) fn min_len(&self) -> usize {
        let c = &self.config;
        let size = c.kind.size();
        if size == 0 {
            return 0;
        }
        let mut min = size;
        if c.from >= 0 {
            min = min.max((c.from as usize).saturating_add(size));
        }
        if let Some(at) = c.at.filter(|&a| a >= 0) {
            min = min.max((at as usize).saturating_add(size));
        }
        if let Some(to) = c.to.filter(|&t| t >= 0) {
            min = min.max(to as usize);
        }
        min
    }

    /// Checks a whole frame: `Ok` when it is good, else a text for the report.
    pub(super) fn check(&self, frame: &[u8]) -> Result<(), String> {
        let size = self.config.kind.size();
        if size == 0 {
            return Ok(());
        }
        let (at, covered) = self.place(frame.len())?;
        let given = self.stored(&frame[at..at + size]);
        let computed = self.compute(&frame[covered])?;
        if given == computed {
            Ok(())
        } else {
            let w = size * 2;
            Err(format!(
                "{} checksum 0x{given:0w$X}, computed 0x{computed:0w$X}",
                kind_name(self.config.kind)
            ))
        }
    }

    /// Writes the checksum into a frame whose other bytes are final. The encoder and
    /// [`Checker::check`] share `place` and `compute`, so a written frame checks.
    pub(super) fn seal(&self, frame: &mut [u8]) -> Result<(), String> {
        let size = self.config.kind.size();
        if size == 0 {
            return Ok(());
        }
        let (at, covered) = self.place(frame.len())?;
        let value = self.compute(&frame[covered])?;
        let bytes = match (self.config.kind, self.config.endian) {
            (ChecksumKind::Crc16, Endian::Little) => (value as u16).to_le_bytes().to_vec(),
            (ChecksumKind::Xor, _) => vec![value as u8],
            _ => (value as u16).to_be_bytes().to_vec(),
        };
        frame[at..at + size].copy_from_slice(&bytes);
        Ok(())
    }

    /// Where the checksum of a frame of `n` bytes sits, and the bytes it covers.
    pub(super) fn place(&self, n: usize) -> Result<(usize, Range<usize>), String> {
        let c = &self.config;
        let size = c.kind.size();
        let at = match c.at {
            Some(a) => resolve(a, n),
            None => n.checked_sub(size),
        };
        let at = at
            .filter(|&a| a.saturating_add(size) <= n)
            .ok_or_else(|| format!("frame of {n} bytes has no room for its checksum"))?;
        let from = resolve(c.from, n);
        let to = match c.to {
            Some(t) => resolve(t, n),
            None => Some(at),
        };
        match (from, to) {
            (Some(f), Some(t)) if f <= t => Ok((at, f..t)),
            _ => Err(format!(
                "frame of {n} bytes is too short for the checksum range"
            )),
        }
    }

    /// The checksum as stored in its bytes (Fletcher-8 as CK_A CK_B, big-endian).
    fn stored(&self, stored: &[u8]) -> u32 {
        match self.config.kind {
            ChecksumKind::None => 0,
            ChecksumKind::Xor => stored[0] as u32,
            ChecksumKind::Fletcher8 => u16::from_be_bytes([stored[0], stored[1]]) as u32,
            ChecksumKind::Crc16 => match self.config.endian {
                Endian::Big => u16::from_be_bytes([stored[0], stored[1]]) as u32,
                Endian::Little => u16::from_le_bytes([stored[0], stored[1]]) as u32,
            },
        }
    }

    /// The checksum of `covered`, as [`Checker::stored`] reads it.
    fn compute(&self, covered: &[u8]) -> Result<u32, String> {
        Ok(match self.config.kind {
            ChecksumKind::None => 0,
            ChecksumKind::Xor => covered.iter().fold(0u8, |a, b| a ^ b) as u32,
            ChecksumKind::Fletcher8 => {
                let (a, b) = fletcher8(covered);
                u16::from_be_bytes([a, b]) as u32
            }
            ChecksumKind::Crc16 => {
                let crc = self.crc.as_ref().ok_or("crc16 without an algorithm")?;
                crc.checksum(covered) as u32
            }
        })
    }
}

fn kind_name(kind: ChecksumKind) -> &'static str {
    match kind {
        ChecksumKind::None => "no",
        ChecksumKind::Xor => "XOR",
        ChecksumKind::Fletcher8 => "Fletcher-8",
        ChecksumKind::Crc16 => "CRC-16",
    }
}

/// The 8-bit Fletcher checksum of u-blox UBX: two running sums modulo 256.
pub(super) fn fletcher8(bytes: &[u8]) -> (u8, u8) {
    bytes.iter().fold((0u8, 0u8), |(a, b), &x| {
        let a = a.wrapping_add(x);
        (a, b.wrapping_add(a))
    })
}
