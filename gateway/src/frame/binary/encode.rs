//! The binary framing in reverse: a payload wrapped in sync bytes, length field and
//! checksum, laid out exactly as the framer reads them.

use super::checksum::Checker;
use super::{BinaryConfig, Endian};
use crate::frame::EncodeError;

impl BinaryConfig {
    /// Writes one packet around `payload`: the bytes of the packet that are neither sync,
    /// length field nor checksum, in order. Bytes between the sync and the length field
    /// come first, so for u-blox UBX the payload is class, id and the message.
    ///
    /// The framer emits the whole packet, so it reads back exactly the bytes written, and
    /// `payload` is that packet without its sync, length field and checksum.
    pub(in crate::frame) fn encode(
        &self,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let l = &self.length;
        let width = l.width as usize;
        if !(1..=8).contains(&width) {
            return Err(EncodeError::Framing(format!(
                "a length field of {width} bytes"
            )));
        }
        let sync = self.sync.len();
        if l.offset < sync {
            return Err(EncodeError::Framing(
                "the length field overlaps the sync bytes".into(),
            ));
        }
        let checker = Checker::new(self.checksum);
        let size = self.checksum.kind.size();
        let header = l.offset + width;
        let total = sync + payload.len() + width + size;
        if total > self.max_length {
            let max = self.max_length;
            return Err(EncodeError::TooLong {
                what: "packet",
                len: total,
                max,
            });
        }
        let too_short = |why: String| EncodeError::TooShort {
            len: payload.len(),
            why,
        };
        // The framer's own floor: it calls a shorter frame garbage.
        let min_len = header.max(checker.min_len()).max(1);
        if total < min_len {
            return Err(too_short(format!(
                "the packet would be {total} bytes, and the framing needs {min_len}"
            )));
        }
        let value = total as i128 - header as i128 - l.adjust as i128;
        if value < 0 {
            return Err(too_short(format!(
                "the length field would hold {value} (adjust {})",
                l.adjust
            )));
        }
        let value = value as u64;
        if width < 8 && value >> (8 * width) != 0 {
            return Err(EncodeError::LengthField {
                len: payload.len(),
                width: l.width,
                value,
            });
        }
        let mut fixed = vec![0..sync, l.offset..header];
        if size > 0 {
            let (at, covered) = checker.place(total).map_err(too_short)?;
            let own = at..at + size;
            if fixed.iter().any(|r| r.start < own.end && own.start < r.end) {
                return Err(EncodeError::Framing(format!(
                    "the checksum at byte {at} overlaps the sync bytes or the length field"
                )));
            }
            if covered.start < own.end && own.start < covered.end {
                return Err(EncodeError::Framing(
                    "the checksum would cover its own bytes".into(),
                ));
            }
            fixed.push(own);
        }

        let mut packet = vec![0u8; total];
        packet[..sync].copy_from_slice(&self.sync);
        let field = &mut packet[l.offset..header];
        let be = value.to_be_bytes();
        field.copy_from_slice(&be[8 - width..]);
        if l.endian == Endian::Little {
            field.reverse();
        }
        // The sync, length field and checksum are disjoint and inside the packet, so the
        // positions left over are exactly as many as the payload's bytes.
        let free = (0..total).filter(|i| !fixed.iter().any(|r| r.contains(i)));
        for (i, &b) in free.zip(payload) {
            packet[i] = b;
        }
        checker.seal(&mut packet).map_err(EncodeError::Framing)?;
        out.extend_from_slice(&packet);
        Ok(())
    }
}
