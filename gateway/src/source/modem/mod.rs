//! LoRa radio modems on a UART: the Microchip RN2483 / RN2903 (raw radio mode) and
//! the RAK3172 (RUI3 firmware, P2P mode).
//!
//! Each modem is a pure state machine ([`Protocol`]): lines from the modem and
//! timer expiries in, commands, frames and reports out. [`engine`] is the I/O edge:
//! it owns the serial port (opened, watched and reopened like a plain serial
//! source), writes the commands, keeps the one timer, and sends the frames on.
//! A capture of a modem's output replays through the same state machine, with its
//! commands dropped, so a replay gives the frames and metadata a live modem gave.
//! Commands from MQTT go out the same way: the engine checks each one against the
//! radio's duty-cycle budget ([`transmit`]) and hands its parts to the state
//! machine, which leaves receive, transmits and receives again.
//! The command/response sequences are written down in `docs/modems.md`.

mod conversation;
pub mod engine;
mod lines;
pub mod rak3172;
pub mod rn2483;
#[cfg(test)]
mod testing;
pub mod transmit;

pub use lines::{LineSplitter, Piece};

use std::time::Duration;

use bytes::Bytes;

use crate::frame::Meta;
use crate::source::TxOutcome;

/// What happened, as a modem's state machine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// The port was (re)opened, or a replay starts: begin the set-up from scratch.
    Start,
    /// One line from the modem, without its line ending.
    Line(&'a str),
    /// The timer the machine asked for ran out.
    Timer,
    /// Send these bytes over the air; the radio takes about `airtime` for it.
    /// Answered with [`Action::Transmitted`].
    Transmit {
        payload: &'a [u8],
        airtime: Duration,
    },
}

/// What the state machine wants done, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write this command (the engine adds CR LF).
    Send(String),
    /// Wake the machine with [`Input::Timer`] after this long (replaces the timer).
    Timer(Duration),
    /// No timer any more.
    CancelTimer,
    /// A received radio packet.
    Frame(Bytes, Meta),
    /// A line that is not understood, or a packet that could not be read.
    Bad(String),
    /// The modem misbehaves (no answer, rejected a command); the source shows this error.
    Trouble(String),
    /// Set-up is done: the modem is receiving (and can transmit).
    Ready,
    /// How the transmission asked for last went: `Sent`, `Failed` with the
    /// modem's answer, or `NotReady` while the modem is being set up.
    Transmitted(TxOutcome),
}

/// A modem's command/response conversation, without I/O.
pub trait Protocol: Send {
    /// Feed one input; what to do is appended to `out`.
    fn handle(&mut self, input: Input<'_>, out: &mut Vec<Action>);

    /// Whether the modem is set up: a transmission asked for now is taken (it
    /// may wait for a packet's SNR first), not answered `NotReady`.
    fn can_transmit(&self) -> bool;
}

/// Bytes as upper-case hex digits, as the modems take a payload.
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    hex
}

/// Upper-case or lower-case hex digits to bytes; `None` when not valid hex.
pub(crate) fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    digits
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// The first bytes of a line, for a report.
pub(crate) fn preview(line: &str) -> String {
    let mut end = line.len().min(48);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    if end < line.len() {
        format!("{:?}...", &line[..end])
    } else {
        format!("{line:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decodes_either_case_and_rejects_odd_or_foreign_digits() {
        assert_eq!(decode_hex("00fFa5"), Some(vec![0x00, 0xff, 0xa5]));
        assert_eq!(decode_hex(""), Some(vec![]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
    }

    #[test]
    fn hex_encodes_upper_case_and_round_trips() {
        assert_eq!(encode_hex(&[0x00, 0xab, 0x5f]), "00AB5F");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_hex(&encode_hex(&all)), Some(all));
    }
}
