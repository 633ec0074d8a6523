//! Microchip RN2483 / RN2903 in raw radio (P2P) mode, as its command reference
//! (DS40001784) describes: `sys reset` answers with the version banner, `mac pause`
//! with a number of milliseconds, each `radio set ...` with `ok`, and `radio rx 0`
//! with `ok` and later `radio_rx  <hex>` or `radio_err`. After each packet the SNR
//! (`radio get snr`) and, where the firmware knows the command, the RSSI
//! (`radio get rssi`) are read, then the receiver is opened again.
//!
//! A command left unanswered for `reply_timeout` means the modem hangs: it is reset
//! (`sys reset`) and set up again, the attempts spaced by a capped back-off. A
//! banner in the middle of the stream means it rebooted: it is set up again.
//!
//! To transmit, the receiver is closed (`radio rxstop`, `ok`), the payload sent
//! (`radio tx <hex>`, `ok`, then `radio_tx_ok` or `radio_err`) and the receiver
//! opened again. A transmission asked for while a packet's SNR is being read
//! waits for the receiver to be open; one asked for during the set-up is
//! answered `NotReady`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::info;

use super::conversation::Conversation;
use super::{decode_hex, encode_hex, preview, Action, Input, Protocol};
use crate::airtime::{parse_coding_rate, LoraParams};
use crate::frame::Meta;
use crate::source::TxOutcome;

/// Set-up commands used when the configuration gives none: LoRa at 868.1 MHz,
/// SF7, 125 kHz, coding rate 4/5, the private sync word 0x12, CRC on, and the
/// radio watchdog off (with it, continuous receive ends in `radio_err` after 15 s).
pub const DEFAULT_SETUP: &[&str] = &[
    "radio set mod lora",
    "radio set freq 868100000",
    "radio set sf sf7",
    "radio set bw 125",
    "radio set cr 4/5",
    "radio set sync 12",
    "radio set crc on",
    "radio set wdt 0",
];

/// Largest LoRa payload the radio receives, bytes.
const MAX_PAYLOAD: usize = 255;

/// Largest payload of `radio tx` in LoRa mode, bytes (the command reference: 0 to 255).
pub const MAX_TX_PAYLOAD: usize = 255;

/// How the modem is driven.
#[derive(Debug, Clone, PartialEq)]
pub struct Rn2483Settings {
    /// Sent in order after `mac pause`; each must be answered `ok`.
    pub setup: Vec<String>,
    /// Ask `radio get rssi` after each packet (firmware that does not know it
    /// answers `invalid_param`; then it is not asked again).
    pub read_rssi: bool,
    /// Longest wait for the answer to a command.
    pub reply_timeout: Duration,
    /// Back-off between re-initialisations of a modem that does not answer.
    pub reinit_initial: Duration,
    pub reinit_max: Duration,
    /// Put into every frame's meta (the serial path).
    pub port: Option<Arc<str>>,
}

impl Rn2483Settings {
    pub fn new() -> Rn2483Settings {
        Rn2483Settings {
            setup: DEFAULT_SETUP.iter().map(|s| s.to_string()).collect(),
            read_rssi: true,
            reply_timeout: Duration::from_secs(2),
            reinit_initial: Duration::from_millis(500),
            reinit_max: Duration::from_secs(30),
            port: None,
        }
    }
}

impl Default for Rn2483Settings {
    fn default() -> Self {
        Rn2483Settings::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `sys reset` sent: waiting for the banner.
    Reset,
    /// `mac pause` sent: waiting for a number.
    MacPause,
    /// `setup[i]` sent: waiting for `ok`.
    Setup(usize),
    /// `radio rx 0` sent: waiting for `ok`.
    Arm,
    /// Receiving: waiting for `radio_rx` or `radio_err` (no timer).
    Receiving,
    /// `radio get snr` sent.
    Snr,
    /// `radio get rssi` sent.
    Rssi,
    /// The modem did not answer: waiting out the back-off before resetting it.
    Resting,
    /// `radio rxstop` sent before a transmission: waiting for `ok`.
    TxStop,
    /// `radio tx <hex>` sent: waiting for `ok`.
    TxAccept,
    /// On air: waiting for `radio_tx_ok` or `radio_err`.
    TxWait,
}

/// A transmission asked for: its command and how long it keeps the radio busy.
#[derive(Debug)]
struct Tx {
    command: String,
    airtime: Duration,
}

/// The RN2483 / RN2903 conversation.
#[derive(Debug)]
pub struct Rn2483 {
    settings: Rn2483Settings,
    step: Step,
    talk: Conversation,
    /// A received packet whose SNR / RSSI are being read.
    packet: Option<(Bytes, Meta)>,
    rssi_known: bool,
    /// Meta every frame starts from (frequency and data rate from the set-up).
    base: Meta,
    /// Set up and receiving (or between packets): transmissions are taken.
    up: bool,
    /// The transmission waiting for the receiver to be open, or under way.
    tx: Option<Tx>,
}

impl Rn2483 {
    pub fn new(settings: Rn2483Settings) -> Rn2483 {
        let talk = Conversation::new(
            "modem",
            settings.reply_timeout,
            settings.reinit_initial,
            settings.reinit_max,
        );
        let base = base_meta(&settings);
        Rn2483 {
            rssi_known: settings.read_rssi,
            settings,
            step: Step::Reset,
            talk,
            packet: None,
            base,
            up: false,
            tx: None,
        }
    }

    fn send(&mut self, step: Step, command: &str, out: &mut Vec<Action>) {
        self.step = step;
        self.talk.send(command, out);
    }

    fn setup_from(&mut self, i: usize, out: &mut Vec<Action>) {
        match self.settings.setup.get(i).cloned() {
            Some(command) => self.send(Step::Setup(i), &command, out),
            None => self.send(Step::Arm, "radio rx 0", out),
        }
    }

    /// The packet being completed goes out, and the receiver is opened again.
    fn deliver(&mut self, out: &mut Vec<Action>) {
        if let Some((bytes, meta)) = self.packet.take() {
            out.push(Action::Frame(bytes, meta));
        }
        self.send(Step::Arm, "radio rx 0", out);
    }

    fn unresponsive(&mut self, out: &mut Vec<Action>) {
        if let Some((bytes, meta)) = self.packet.take() {
            out.push(Action::Frame(bytes, meta));
        }
        let why = self.talk.unanswered();
        self.down(&why, out);
        self.talk.back_off(&why, "resetting", out);
        self.step = Step::Resting;
    }

    /// The modem is no longer set up: a transmission asked for fails with `why`.
    fn down(&mut self, why: &str, out: &mut Vec<Action>) {
        self.up = false;
        if self.tx.take().is_some() {
            out.push(Action::Transmitted(TxOutcome::Failed(why.to_string())));
        }
    }

    /// A transmission is asked for.
    fn transmit(&mut self, payload: &[u8], airtime: Duration, out: &mut Vec<Action>) {
        let refusal = if self.tx.is_some() {
            Some(TxOutcome::Failed(
                "the modem is transmitting already".into(),
            ))
        } else if !self.up {
            Some(TxOutcome::NotReady("the modem is being set up".into()))
        } else if payload.len() > MAX_TX_PAYLOAD {
            Some(TxOutcome::Failed(format!(
                "{} bytes is more than the modem sends at once ({MAX_TX_PAYLOAD})",
                payload.len()
            )))
        } else {
            None
        };
        if let Some(outcome) = refusal {
            out.push(Action::Transmitted(outcome));
            return;
        }
        self.tx = Some(Tx {
            command: format!("radio tx {}", encode_hex(payload)),
            airtime,
        });
        if self.step == Step::Receiving {
            self.send(Step::TxStop, "radio rxstop", out);
        }
    }

    /// The transmission is over: say how it went and open the receiver again.
    fn transmitted(&mut self, outcome: TxOutcome, out: &mut Vec<Action>) {
        self.tx = None;
        out.push(Action::Transmitted(outcome));
        self.send(Step::Arm, "radio rx 0", out);
    }

    /// A line while transmitting.
    fn transmitting(&mut self, line: &str, out: &mut Vec<Action>) {
        match (self.step, line) {
            (Step::TxStop, "ok") => {
                let command = self.tx.as_ref().map(|t| t.command.clone());
                match command {
                    Some(command) => self.send(Step::TxAccept, &command, out),
                    None => self.send(Step::Arm, "radio rx 0", out),
                }
            }
            // A packet that came in just before the receiver closed: its SNR
            // cannot be asked now, it goes out without.
            (Step::TxStop, _) if line.starts_with("radio_rx") => {
                let hex: String = line.split_whitespace().skip(1).collect();
                match decode_hex(&hex) {
                    Some(bytes) if bytes.len() <= MAX_PAYLOAD => {
                        out.push(Action::Frame(Bytes::from(bytes), self.base.clone()))
                    }
                    _ => out.push(Action::Bad(format!(
                        "radio_rx with a payload that is not hex of at most {MAX_PAYLOAD} bytes: {}",
                        preview(line)
                    ))),
                }
            }
            (Step::TxStop, "radio_err") => {
                out.push(Action::Bad("radio_err: the reception failed".into()))
            }
            // Firmware before 1.0.5 has no `radio rxstop`: the receiver stays open.
            (Step::TxStop, "invalid_param" | "busy") => {
                let why = self.talk.tx_refused(line);
                self.tx = None;
                out.push(Action::Transmitted(TxOutcome::Failed(why)));
                self.step = Step::Receiving;
                out.push(Action::CancelTimer);
            }
            (Step::TxAccept, "ok") => {
                let airtime = self.tx.as_ref().map_or(Duration::ZERO, |t| t.airtime);
                self.step = Step::TxWait;
                self.talk.await_second_answer(airtime, out);
            }
            (Step::TxAccept, "invalid_param" | "busy") | (Step::TxWait, "radio_err") => {
                let why = self.talk.tx_refused(line);
                self.transmitted(TxOutcome::Failed(why), out);
            }
            (Step::TxWait, "radio_tx_ok") => self.transmitted(TxOutcome::Sent, out),
            _ => out.push(Action::Bad(format!(
                "expected the answer to `radio {}`: {}",
                if self.step == Step::TxStop {
                    "rxstop"
                } else {
                    "tx"
                },
                preview(line)
            ))),
        }
    }

    fn receive(&mut self, line: &str, out: &mut Vec<Action>) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("radio_rx") => {
                let hex: String = words.collect();
                match decode_hex(&hex) {
                    Some(bytes) if bytes.len() <= MAX_PAYLOAD => {
                        self.packet = Some((Bytes::from(bytes), self.base.clone()));
                        self.send(Step::Snr, "radio get snr", out);
                    }
                    _ => {
                        out.push(Action::Bad(format!(
                            "radio_rx with a payload that is not hex of at most {MAX_PAYLOAD} bytes: {}",
                            preview(line)
                        )));
                        self.send(Step::Arm, "radio rx 0", out);
                    }
                }
            }
            Some("radio_err") => {
                out.push(Action::Bad("radio_err: the reception failed".into()));
                self.send(Step::Arm, "radio rx 0", out);
            }
            _ => out.push(Action::Bad(format!("not a modem reply: {}", preview(line)))),
        }
    }
}

impl Protocol for Rn2483 {
    fn can_transmit(&self) -> bool {
        self.up
    }

    fn handle(&mut self, input: Input<'_>, out: &mut Vec<Action>) {
        match input {
            Input::Start => {
                self.packet = None;
                self.down("the modem is being set up again", out);
                self.talk.forget_rejection();
                self.send(Step::Reset, "sys reset", out);
            }
            Input::Transmit { payload, airtime } => self.transmit(payload, airtime, out),
            Input::Timer => match self.step {
                Step::Resting => self.send(Step::Reset, "sys reset", out),
                Step::Receiving => {}
                _ => self.unresponsive(out),
            },
            Input::Line(line) => {
                let line = line.trim();
                if line.is_empty() {
                    return;
                }
                if is_banner(line) {
                    if self.step != Step::Reset {
                        info!("the modem restarted ({line}); setting it up again");
                        if let Some((bytes, meta)) = self.packet.take() {
                            out.push(Action::Frame(bytes, meta));
                        }
                    }
                    self.down("the modem restarted during the transmission", out);
                    self.talk.forget_rejection();
                    self.send(Step::MacPause, "mac pause", out);
                    return;
                }
                let reception = line.starts_with("radio_rx") || line.starts_with("radio_err");
                match self.step {
                    // Answers to commands sent before the reset, or noise while it boots.
                    Step::Reset | Step::Resting => {}
                    // The radio was receiving already (a capture that starts mid-session).
                    Step::MacPause | Step::Setup(_) | Step::Arm if reception => {
                        self.receive(line, out)
                    }
                    // A stray `ok` (a capture with more set-up commands than configured).
                    Step::Receiving if line == "ok" => {}
                    Step::MacPause => match line.parse::<u64>() {
                        Ok(_) => self.setup_from(0, out),
                        Err(_) => out.push(Action::Bad(format!(
                            "expected the answer to `mac pause`: {}",
                            preview(line)
                        ))),
                    },
                    Step::Setup(i) => match line {
                        "ok" => self.setup_from(i + 1, out),
                        "invalid_param" | "busy" => {
                            self.talk.rejected(line, out);
                            self.setup_from(i + 1, out);
                        }
                        _ => out.push(Action::Bad(format!(
                            "expected `ok` to `{}`: {}",
                            self.talk.pending(),
                            preview(line)
                        ))),
                    },
                    Step::TxStop | Step::TxAccept | Step::TxWait => self.transmitting(line, out),
                    Step::Arm => match line {
                        "ok" => {
                            self.step = Step::Receiving;
                            self.up = self.talk.receiving(out);
                            if self.up && self.tx.is_some() {
                                self.send(Step::TxStop, "radio rxstop", out);
                            }
                        }
                        "busy" | "invalid_param" => {
                            let why = format!("the modem answered `{line}` to `radio rx 0`");
                            self.down(&why, out);
                            out.push(Action::Trouble(why));
                            self.step = Step::Resting;
                            out.push(Action::Timer(self.talk.next_delay()));
                        }
                        _ => out.push(Action::Bad(format!(
                            "expected `ok` to `radio rx 0`: {}",
                            preview(line)
                        ))),
                    },
                    Step::Receiving => self.receive(line, out),
                    Step::Snr => match parse_signed(line) {
                        Some(snr) => {
                            if let Some((_, meta)) = &mut self.packet {
                                meta.snr = Some(snr);
                            }
                            if self.rssi_known {
                                self.send(Step::Rssi, "radio get rssi", out);
                            } else {
                                self.deliver(out);
                            }
                        }
                        None => {
                            out.push(Action::Bad(format!("expected the SNR: {}", preview(line))))
                        }
                    },
                    Step::Rssi => match (parse_signed(line), line) {
                        (Some(rssi), _) => {
                            if let Some((_, meta)) = &mut self.packet {
                                meta.rssi = Some(rssi);
                            }
                            self.deliver(out);
                        }
                        (None, "invalid_param") => {
                            info!("this firmware has no `radio get rssi`; frames carry no RSSI");
                            self.rssi_known = false;
                            self.deliver(out);
                        }
                        (None, _) => {
                            out.push(Action::Bad(format!("expected the RSSI: {}", preview(line))))
                        }
                    },
                }
            }
        }
    }
}

/// The carrier frequency and LoRa settings the set-up commands leave the radio
/// with, for the time on air of a transmission. What the set-up does not set
/// keeps the module's value after a reset: 868.1 MHz, SF12, 125 kHz, 4/5, an
/// 8-symbol preamble, CRC on. An error when the radio is set to FSK.
pub fn lora_settings(setup: &[String]) -> Result<(u64, LoraParams), String> {
    let mut frequency_hz = 868_100_000;
    let mut lora = LoraParams::new(12, 125_000, 1);
    for command in setup {
        let words: Vec<&str> = command.split_whitespace().collect();
        let bad = || format!("cannot read the radio setting `{command}`");
        match words.as_slice() {
            ["radio", "set", "mod", m] if *m != "lora" => {
                return Err(format!(
                    "`{command}`: the time on air is known for LoRa only"
                ))
            }
            ["radio", "set", "freq", hz] => frequency_hz = hz.parse().map_err(|_| bad())?,
            ["radio", "set", "sf", sf] => {
                lora.spreading_factor = sf
                    .to_ascii_lowercase()
                    .strip_prefix("sf")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(bad)?
            }
            ["radio", "set", "bw", khz] => {
                lora.bandwidth_hz = khz.parse::<u32>().map(|k| k * 1000).map_err(|_| bad())?
            }
            ["radio", "set", "cr", cr] => {
                lora.coding_rate = parse_coding_rate(cr).ok_or_else(bad)?
            }
            ["radio", "set", "prlen", n] => lora.preamble_symbols = n.parse().map_err(|_| bad())?,
            ["radio", "set", "crc", on] => lora.crc = *on == "on",
            _ => {}
        }
    }
    match lora.validate().first() {
        Some((field, problem)) => Err(format!("the radio's {field} {problem}")),
        None => Ok((frequency_hz, lora)),
    }
}

/// `RN2483 1.0.5 Oct 31 2018 15:06:52`, `RN2903 1.0.3 ...`: what `sys reset` and a
/// power-on print.
fn is_banner(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let (Some(model), Some(version)) = (words.next(), words.next()) else {
        return false;
    };
    (model.starts_with("RN2483") || model.starts_with("RN2903"))
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version.contains('.')
}

/// A signed decimal answer such as `-5` or `7`.
fn parse_signed(line: &str) -> Option<f64> {
    line.parse::<i32>().ok().map(f64::from)
}

/// Frequency and data rate, read from the set-up commands; the modem kind.
fn base_meta(settings: &Rn2483Settings) -> Meta {
    let mut meta = Meta {
        port: settings.port.clone(),
        ..Meta::default()
    };
    let (mut sf, mut bw) = (None, None);
    for command in &settings.setup {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["radio", "set", "freq", hz] => meta.frequency_hz = hz.parse().ok(),
            ["radio", "set", "sf", v] => sf = Some(v.to_ascii_uppercase()),
            ["radio", "set", "bw", v] => bw = Some(v.to_string()),
            _ => {}
        }
    }
    if let (Some(sf), Some(bw)) = (sf, bw) {
        meta.datarate = Some(format!("{sf}BW{bw}"));
    }
    meta.extra.insert("modem".into(), "rn2483".into());
    meta
}

#[cfg(test)]
#[path = "rn2483_tests.rs"]
mod tests;
