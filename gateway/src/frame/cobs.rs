//! The COBS framer: packets in Consistent Overhead Byte Stuffing, each ended by a 0x00.
//!
//! The byte-level decoding is the `cobs` crate's `DecoderState` (a pure state machine fed
//! one byte at a time); this framer owns the packet buffer, so it can bound it, report
//! bad packets and resynchronise at the next 0x00.

use ::cobs::{DecodeResult, DecoderState};
use serde::{Deserialize, Serialize};

use super::delimited::{check_packet, validate_max_length, Packet};
use super::lines::DEFAULT_MAX_LENGTH;
use super::{BadKind, EncodeError, Framed, Framer};

/// `type: cobs` — packets encoded with COBS (Consistent Overhead Byte Stuffing), each
/// ended by a 0x00 byte, which COBS never sends inside a packet. A frame is the decoded
/// packet.
///
/// ```yaml
/// framing:
///   type: cobs
///   max_length: 256   # longer packets are reported as overlong
/// ```
///
/// Empty packets (0x00 0x00, or `01 00`) are skipped. A packet whose code bytes promise
/// more bytes than come before its 0x00 is reported as `checksum` (the encoding is
/// corrupt). A packet that decodes to more than `max_length` bytes is reported once as
/// `overlong` and skipped up to its 0x00. At the end of input an unfinished packet is
/// reported as `truncated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CobsConfig {
    /// Longest decoded packet in bytes (default 4096).
    pub max_length: usize,
    /// Report the bytes before the first 0x00 as `garbage` (default true): the port may
    /// have been opened, or reopened, in the middle of a packet. Set it to false when the
    /// input starts at a packet boundary.
    pub resync_at_start: bool,
}

impl Default for CobsConfig {
    fn default() -> Self {
        CobsConfig {
            max_length: DEFAULT_MAX_LENGTH,
            resync_at_start: true,
        }
    }
}

impl CobsConfig {
    pub(super) fn validate(&self) -> Vec<(String, String)> {
        validate_max_length(self.max_length)
    }

    /// `payload` as one packet, with a delimiter before it (so the device drops any bytes
    /// it held) and after it.
    pub(super) fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        check_packet(payload, self.max_length)?;
        cobs_encode(payload, out);
        Ok(())
    }
}

/// Cuts a byte stream into COBS packets; see [`CobsConfig`].
#[derive(Debug)]
pub struct CobsFramer {
    config: CobsConfig,
    decoder: DecoderState,
    /// Before the first 0x00: the bytes are garbage.
    at_start: bool,
    /// The packet was reported as overlong: skip to its 0x00.
    skipping: bool,
    /// The packet since the last 0x00.
    packet: Packet,
}

impl CobsFramer {
    pub fn new(config: CobsConfig) -> Self {
        let at_start = config.resync_at_start;
        let packet = Packet::new("COBS", "0x00", config.max_length);
        CobsFramer {
            config,
            decoder: DecoderState::Idle,
            at_start,
            skipping: false,
            packet,
        }
    }

    fn reset(&mut self) {
        self.decoder = DecoderState::Idle;
        self.skipping = false;
        self.packet.clear();
    }

    fn end(&mut self, out: &mut Vec<Framed>) {
        if self.at_start {
            self.at_start = false;
            if self.packet.raw_len > 0 {
                out.push(self.packet.garbage(false));
            }
        } else if !self.skipping {
            let missing = match self.decoder {
                DecoderState::Grab(n) | DecoderState::GrabChain(n) => n,
                DecoderState::Idle => 0,
            };
            match self.decoder.feed(0) {
                Ok(DecodeResult::DataComplete) => out.extend(self.packet.frame()),
                Ok(_) => {}
                Err(_) => out.push(self.packet.bad(
                    BadKind::Checksum,
                    format!(
                        "COBS packet of {} bytes ended {missing} bytes before its code byte said",
                        self.packet.raw_len
                    ),
                )),
            }
        }
        self.reset();
    }
}

impl Framer for CobsFramer {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<Framed>) {
        for &byte in bytes {
            if byte == 0 {
                self.end(out);
                continue;
            }
            self.packet.raw_len += 1;
            if self.at_start {
                self.packet.keep_preview(byte);
                continue;
            }
            if self.skipping {
                continue;
            }
            // A non-zero byte never fails and never completes a packet.
            match self.decoder.feed(byte) {
                Ok(DecodeResult::DataStart) => self.packet.bytes.clear(),
                Ok(DecodeResult::DataContinue(b)) => self.skipping = !self.packet.add(b, out),
                Ok(DecodeResult::NoData | DecodeResult::DataComplete) | Err(_) => {}
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Framed>) {
        if self.packet.raw_len > 0 {
            if self.at_start {
                out.push(self.packet.garbage(true));
            } else if !self.skipping {
                out.push(self.packet.truncated());
            }
        }
        self.reset();
        self.at_start = self.config.resync_at_start;
    }
}

/// Encodes `payload` as one COBS packet with a leading and a trailing 0x00, appended to
/// `out`.
pub fn cobs_encode(payload: &[u8], out: &mut Vec<u8>) {
    out.push(0);
    let start = out.len();
    out.resize(start + ::cobs::max_encoding_length(payload.len()), 0);
    let n = ::cobs::encode(payload, &mut out[start..]);
    out.truncate(start + n);
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::testing::{assert_split_invariant, frame, kinds};
    use crate::frame::FramingConfig;

    fn config(max_length: usize) -> FramingConfig {
        FramingConfig::Cobs(CobsConfig {
            max_length,
            ..CobsConfig::default()
        })
    }

    #[test]
    fn the_examples_of_the_cobs_paper_decode() {
        // From the Wikipedia table of COBS examples.
        let data = [
            0, 0x01, 0x01, 0x00, // 00
            0x03, 0x11, 0x22, 0x02, 0x33, 0x00, // 11 22 00 33
            0x02, 0x11, 0x01, 0x01, 0x01, 0x00, // 11 00 00 00
        ];
        let out = assert_split_invariant(&config(4096), &data);
        assert_eq!(
            out,
            vec![
                frame(&[0]),
                frame(&[0x11, 0x22, 0, 0x33]),
                frame(&[0x11, 0, 0, 0])
            ]
        );
    }

    #[test]
    fn a_run_of_254_bytes_without_zero_uses_the_ff_code() {
        let payload: Vec<u8> = (1..=254).collect();
        let mut data = Vec::new();
        cobs_encode(&payload, &mut data);
        assert_eq!(data[1], 0xFF);
        let out = assert_split_invariant(&config(4096), &data);
        assert_eq!(out, vec![frame(&payload)]);
    }

    #[test]
    fn a_packet_that_ends_early_is_reported_and_the_next_is_kept() {
        let data = [0, 0x05, 0x11, 0x22, 0x00, 0x02, 0x33, 0x00];
        let out = assert_split_invariant(&config(4096), &data);
        assert_eq!(kinds(&out), vec![Some(BadKind::Checksum), None]);
        assert_eq!(out[1], frame(&[0x33]));
        let Framed::Bad(b) = &out[0] else { panic!() };
        assert_eq!(b.len, 3);
        assert!(b.detail.contains("ended 2 bytes"), "{}", b.detail);
    }

    #[test]
    fn garbage_before_the_first_zero_and_empty_packets_give_no_frames() {
        let data = [9, 9, 9, 0, 0, 0x01, 0, 0x02, 0x44, 0];
        let out = assert_split_invariant(&config(4096), &data);
        assert_eq!(kinds(&out), vec![Some(BadKind::Garbage), None]);
        assert_eq!(out[1], frame(&[0x44]));
    }

    #[test]
    fn an_overlong_packet_is_reported_once_and_skipped_to_its_zero() {
        let mut data = Vec::new();
        cobs_encode(&[7; 100], &mut data);
        cobs_encode(&[1, 2, 3], &mut data);
        let out = assert_split_invariant(&config(8), &data);
        assert_eq!(kinds(&out), vec![Some(BadKind::Overlong), None]);
        let Framed::Bad(b) = &out[0] else { panic!() };
        assert_eq!(b.len, 9);
        assert_eq!(out[1], frame(&[1, 2, 3]));
    }

    #[test]
    fn an_unfinished_packet_is_truncated_and_garbage_without_zero_is_garbage() {
        let out = assert_split_invariant(&config(4096), &[0, 0x03, 0x11]);
        assert_eq!(kinds(&out), vec![Some(BadKind::Truncated)]);
        let out = assert_split_invariant(&config(4096), &[0x03, 0x11]);
        assert_eq!(kinds(&out), vec![Some(BadKind::Garbage)]);
    }
}
