//! The SLIP framer (RFC 1055): packets ended by END, with END and ESC escaped inside.

use serde::{Deserialize, Serialize};

use super::delimited::{check_packet, validate_max_length, Packet};
use super::lines::DEFAULT_MAX_LENGTH;
use super::{BadKind, EncodeError, Framed, Framer};

/// SLIP's frame end.
pub(super) const END: u8 = 0xC0;
/// SLIP's escape.
pub(super) const ESC: u8 = 0xDB;
/// After ESC: an END byte of the payload.
pub(super) const ESC_END: u8 = 0xDC;
/// After ESC: an ESC byte of the payload.
pub(super) const ESC_ESC: u8 = 0xDD;

/// `type: slip` — packets in SLIP (RFC 1055): each ends with END (0xC0); inside a packet
/// 0xC0 is sent as ESC ESC_END (0xDB 0xDC) and 0xDB as ESC ESC_ESC (0xDB 0xDD). A frame
/// is the decoded packet.
///
/// ```yaml
/// framing:
///   type: slip
///   max_length: 1006   # the RFC's packet size; longer packets are reported as overlong
/// ```
///
/// A leading END before a packet is allowed (and recommended by the RFC): empty packets
/// are skipped. An ESC followed by anything but ESC_END or ESC_ESC is reported as
/// `checksum` (the packet is corrupt) and the rest of the packet up to its END is skipped.
/// A packet that decodes to more than `max_length` bytes is reported once as `overlong`
/// and skipped up to its END. At the end of input an unfinished packet is reported as
/// `truncated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlipConfig {
    /// Longest decoded packet in bytes (default 4096).
    pub max_length: usize,
    /// Report the bytes before the first END as `garbage` (default true): the port may
    /// have been opened, or reopened, in the middle of a packet. Set it to false for a
    /// sender that sends no leading END and an input that starts at a packet boundary.
    pub resync_at_start: bool,
}

impl Default for SlipConfig {
    fn default() -> Self {
        SlipConfig {
            max_length: DEFAULT_MAX_LENGTH,
            resync_at_start: true,
        }
    }
}

impl SlipConfig {
    pub(super) fn validate(&self) -> Vec<(String, String)> {
        validate_max_length(self.max_length)
    }

    /// `payload` as one packet, with a delimiter before it (so the device drops any bytes
    /// it held) and after it.
    pub(super) fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        check_packet(payload, self.max_length)?;
        slip_encode(payload, out);
        Ok(())
    }
}

/// What the framer does with the next byte that is not END.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first END: the bytes are garbage.
    Start,
    /// Collecting a packet.
    Packet,
    /// The last byte was ESC.
    Escape,
    /// The packet was reported (overlong, bad escape): skip to its END.
    Skip,
}

/// Cuts a byte stream into SLIP packets; see [`SlipConfig`].
#[derive(Debug)]
pub struct SlipFramer {
    config: SlipConfig,
    state: State,
    /// The packet since the last END (escapes counted as sent).
    packet: Packet,
}

impl SlipFramer {
    pub fn new(config: SlipConfig) -> Self {
        let state = Self::initial(&config);
        let packet = Packet::new("SLIP", "END", config.max_length);
        SlipFramer {
            config,
            state,
            packet,
        }
    }

    fn initial(config: &SlipConfig) -> State {
        if config.resync_at_start {
            State::Start
        } else {
            State::Packet
        }
    }

    fn end(&mut self, out: &mut Vec<Framed>) {
        match self.state {
            State::Start if self.packet.raw_len > 0 => out.push(self.packet.garbage(false)),
            State::Packet => out.extend(self.packet.frame()),
            State::Escape => out.push(self.bad_escape(END)),
            _ => {}
        }
        self.state = State::Packet;
        self.packet.clear();
    }

    fn bad_escape(&self, byte: u8) -> Framed {
        self.packet.bad(
            BadKind::Checksum,
            format!(
                "invalid SLIP escape 0xDB 0x{byte:02X} after {} bytes of the packet",
                self.packet.bytes.len()
            ),
        )
    }

    /// Appends a decoded byte, or reports the packet as overlong.
    fn add(&mut self, byte: u8, out: &mut Vec<Framed>) {
        if !self.packet.add(byte, out) {
            self.state = State::Skip;
        }
    }
}

impl Framer for SlipFramer {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<Framed>) {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.state == State::Packet {
                // Plain bytes are the common case: copy a run of them at once.
                let run = rest
                    .iter()
                    .position(|&b| b == END || b == ESC)
                    .unwrap_or(rest.len());
                let take = run.min(self.packet.room());
                self.packet.bytes.extend_from_slice(&rest[..take]);
                self.packet.raw_len += take;
                rest = &rest[take..];
                if take < run {
                    self.packet.raw_len += 1;
                    self.add(rest[0], out);
                    rest = &rest[1..];
                }
                if rest.is_empty() {
                    break;
                }
            }
            let byte = rest[0];
            rest = &rest[1..];
            if byte == END {
                self.end(out);
                continue;
            }
            self.packet.raw_len += 1;
            match self.state {
                State::Start => self.packet.keep_preview(byte),
                State::Packet if byte == ESC => self.state = State::Escape,
                State::Packet => self.add(byte, out),
                State::Escape => {
                    let decoded = match byte {
                        ESC_END => Some(END),
                        ESC_ESC => Some(ESC),
                        _ => None,
                    };
                    match decoded {
                        Some(b) => {
                            self.state = State::Packet;
                            self.add(b, out);
                        }
                        None => {
                            out.push(self.bad_escape(byte));
                            self.state = State::Skip;
                            self.packet.bytes.clear();
                        }
                    }
                }
                State::Skip => {}
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Framed>) {
        match self.state {
            State::Packet | State::Escape if self.packet.raw_len > 0 => {
                out.push(self.packet.truncated())
            }
            State::Start if self.packet.raw_len > 0 => out.push(self.packet.garbage(true)),
            _ => {}
        }
        self.state = Self::initial(&self.config);
        self.packet.clear();
    }
}

/// Encodes `payload` as one SLIP packet with a leading and a trailing END, appended to `out`.
pub fn slip_encode(payload: &[u8], out: &mut Vec<u8>) {
    out.push(END);
    for &b in payload {
        match b {
            END => out.extend_from_slice(&[ESC, ESC_END]),
            ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
            b => out.push(b),
        }
    }
    out.push(END);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::testing::{assert_split_invariant, frame, kinds, run};
    use crate::frame::FramingConfig;

    fn config(max_length: usize) -> FramingConfig {
        FramingConfig::Slip(SlipConfig {
            max_length,
            ..SlipConfig::default()
        })
    }

    #[test]
    fn escaped_end_and_esc_bytes_come_out_as_themselves() {
        let data = [END, 1, ESC, ESC_END, 2, ESC, ESC_ESC, 3, END];
        let out = assert_split_invariant(&config(4096), &data);
        assert_eq!(out, vec![frame(&[1, END, 2, ESC, 3])]);
    }

    #[test]
    fn back_to_back_ends_give_no_empty_frames() {
        let data = [END, END, 1, END, END, END, 2, END];
        let out = assert_split_invariant(&config(4096), &data);
        assert_eq!(out, vec![frame(&[1]), frame(&[2])]);
    }

    #[test]
    fn bytes_before_the_first_end_are_garbage_unless_told_otherwise() {
        let data = [7, 8, END, 1, END];
        let out = assert_split_invariant(&config(4096), &data);
        assert_eq!(kinds(&out), vec![Some(BadKind::Garbage), None]);
        let Framed::Bad(b) = &out[0] else { panic!() };
        assert_eq!((b.len, &b.preview[..]), (2, &[7, 8][..]));
        let trusting = FramingConfig::Slip(SlipConfig {
            resync_at_start: false,
            ..SlipConfig::default()
        });
        let out = assert_split_invariant(&trusting, &data);
        assert_eq!(out, vec![frame(&[7, 8]), frame(&[1])]);
    }

    #[test]
    fn an_invalid_escape_spoils_only_its_own_packet() {
        let data = [END, 1, ESC, 0x41, 2, END, 3, END];
        let out = assert_split_invariant(&config(4096), &data);
        assert_eq!(kinds(&out), vec![Some(BadKind::Checksum), None]);
        assert_eq!(out[1], frame(&[3]));
        let Framed::Bad(b) = &out[0] else { panic!() };
        assert!(b.detail.contains("0xDB 0x41"), "{}", b.detail);
        assert_eq!(b.len, 3);
    }

    #[test]
    fn an_escape_right_before_end_is_reported_and_the_next_packet_is_kept() {
        let data = [END, 1, ESC, END, 2, END];
        let out = assert_split_invariant(&config(4096), &data);
        assert_eq!(kinds(&out), vec![Some(BadKind::Checksum), None]);
        assert_eq!(out[1], frame(&[2]));
    }

    #[test]
    fn an_overlong_packet_is_reported_once_and_skipped_to_its_end() {
        let mut data = vec![END];
        data.extend_from_slice(&[5; 10]);
        data.extend_from_slice(&[END, 1, 2, 3, 4, END]);
        let out = assert_split_invariant(&config(4), &data);
        assert_eq!(kinds(&out), vec![Some(BadKind::Overlong), None]);
        let Framed::Bad(b) = &out[0] else { panic!() };
        assert_eq!((b.len, b.preview.len()), (5, 5));
        assert_eq!(out[1], frame(&[1, 2, 3, 4]));
        let escaped_at_the_limit = [END, 1, 2, 3, ESC, ESC_END, ESC, ESC_ESC, END];
        let out = assert_split_invariant(&config(4), &escaped_at_the_limit);
        assert_eq!(kinds(&out), vec![Some(BadKind::Overlong)]);
    }

    #[test]
    fn an_unfinished_packet_is_truncated_at_the_end_of_input_and_the_next_input_resyncs() {
        let out = assert_split_invariant(&config(4096), &[END, 1, 2, ESC]);
        assert_eq!(kinds(&out), vec![Some(BadKind::Truncated)]);
        let c = config(4096);
        let mut framer = c.build();
        let mut out = Vec::new();
        framer.push(&[END, 1], &mut out);
        framer.finish(&mut out);
        framer.push(&[2, END, 3, END], &mut out);
        assert_eq!(
            kinds(&out),
            vec![Some(BadKind::Truncated), Some(BadKind::Garbage), None]
        );
        assert_eq!(run(&c, &[]), vec![]);
    }

    #[test]
    fn the_encoder_escapes_what_it_must() {
        let mut out = Vec::new();
        slip_encode(&[END, ESC, 0], &mut out);
        assert_eq!(out, [END, ESC, ESC_END, ESC, ESC_ESC, 0, END]);
    }
}
