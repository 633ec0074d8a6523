//! RAK3172 with RUI3 firmware in LoRa P2P mode, as RAK's RUI3 AT command manual
//! describes: every command is answered with a status line (`OK`, `AT_ERROR`,
//! `AT_PARAM_ERROR`, `AT_BUSY_ERROR`, ...); `AT+NWM=?` answers `AT+NWM=<mode>`
//! first; `AT+NWM=0` switches to P2P by restarting the module (it prints its banner,
//! ending `Current Work Mode: LoRa P2P.`); `AT+P2P=freq:sf:bw:cr:preamble:power`
//! sets the radio; `AT+PRECV=65534` receives until `AT+PRECV=0`. Packets arrive as
//! `+EVT:RXP2P:<rssi>:<snr>:<hex>`, or on older firmware as two lines,
//! `+EVT:RXP2P, RSSI <rssi>, SNR <snr>` then `+EVT:<hex>`.
//!
//! A command left unanswered for `reply_timeout` means the module hangs: it is
//! restarted (`ATZ`, which has no answer), given `reset_wait` to boot, and set up
//! again, the attempts spaced by a capped back-off. A banner in the middle of the
//! stream means it rebooted: it is set up again. `+EVT:RXP2P RECEIVE TIMEOUT` or
//! `... ERROR` closes the receiver: it is opened again.
//!
//! To transmit, continuous receive is left (`AT+PRECV=0`, `OK`), the payload sent
//! (`AT+PSEND=<hex>`, `OK`, then `+EVT:TXP2P DONE`) and receive entered again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tracing::info;

use super::conversation::Conversation;
use super::{decode_hex, encode_hex, preview, Action, Input, Protocol};
use crate::airtime::LoraParams;
use crate::frame::Meta;
use crate::source::TxOutcome;

/// Largest P2P payload, bytes.
const MAX_PAYLOAD: usize = 256;

/// Largest payload of `AT+PSEND`, bytes. RUI3 takes up to 256, its manual
/// writes 2 to 500 hex digits; mqgate keeps to the radio's 255.
pub const MAX_TX_PAYLOAD: usize = 255;

/// The event that ends a P2P transmission.
const TX_DONE: &str = "+EVT:TXP2P DONE";

/// The radio settings of `AT+P2P=...`; also the `p2p` keys of a `rak3172` source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pParams {
    pub frequency_hz: u32,
    /// 5 to 12.
    pub spreading_factor: u8,
    /// 125, 250 or 500 kHz.
    pub bandwidth_khz: u16,
    /// 0 = 4/5, 1 = 4/6, 2 = 4/7, 3 = 4/8.
    pub coding_rate: u8,
    /// 2 to 65535 symbols.
    pub preamble: u16,
    /// Transmit power, dBm (5 to 22); the module wants it although mqgate only receives.
    pub tx_power: u8,
}

impl Default for P2pParams {
    /// RUI3's own defaults: `868000000:7:125:0:8:14`.
    fn default() -> Self {
        P2pParams {
            frequency_hz: 868_000_000,
            spreading_factor: 7,
            bandwidth_khz: 125,
            coding_rate: 0,
            preamble: 8,
            tx_power: 14,
        }
    }
}

impl P2pParams {
    /// The LoRa settings for the time on air: RUI3 sends with an explicit header
    /// and CRC. SF5 and SF6, which the SX126x counts differently, are not covered.
    pub fn lora(&self) -> Result<LoraParams, String> {
        if self.spreading_factor < 7 {
            return Err(format!(
                "the time on air at spreading factor {} is not known to mqgate (7 to 12 are)",
                self.spreading_factor
            ));
        }
        let mut lora = LoraParams::new(
            self.spreading_factor,
            u32::from(self.bandwidth_khz) * 1000,
            self.coding_rate + 1,
        );
        lora.preamble_symbols = self.preamble;
        match lora.validate().first() {
            Some((field, problem)) => Err(format!("the radio's {field} {problem}")),
            None => Ok(lora),
        }
    }

    /// The `AT+P2P=...` command.
    pub fn command(&self) -> String {
        format!(
            "AT+P2P={}:{}:{}:{}:{}:{}",
            self.frequency_hz,
            self.spreading_factor,
            self.bandwidth_khz,
            self.coding_rate,
            self.preamble,
            self.tx_power
        )
    }
}

/// How the module is driven.
#[derive(Debug, Clone, PartialEq)]
pub struct Rak3172Settings {
    pub p2p: P2pParams,
    /// Longest wait for the answer to a command.
    pub reply_timeout: Duration,
    /// Time the module takes to boot after `ATZ`.
    pub reset_wait: Duration,
    /// Back-off between re-initialisations of a module that does not answer.
    pub reinit_initial: Duration,
    pub reinit_max: Duration,
    /// Put into every frame's meta (the serial path).
    pub port: Option<Arc<str>>,
}

impl Rak3172Settings {
    pub fn new() -> Rak3172Settings {
        Rak3172Settings {
            p2p: P2pParams::default(),
            reply_timeout: Duration::from_secs(2),
            reset_wait: Duration::from_secs(2),
            reinit_initial: Duration::from_millis(500),
            reinit_max: Duration::from_secs(30),
            port: None,
        }
    }
}

impl Default for Rak3172Settings {
    fn default() -> Self {
        Rak3172Settings::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `AT+PRECV=0` sent (stop a receive left running): any status will do.
    StopRx,
    /// `AT+NWM=?` sent: waiting for the mode and `OK`.
    QueryMode { mode: Option<u8> },
    /// `AT+NWM=0` sent: waiting for the module to come back in P2P mode.
    SetMode,
    /// `AT+P2P=...` sent.
    P2p,
    /// `AT+PRECV=65534` sent.
    Arm,
    /// Receiving (no timer).
    Receiving,
    /// The module did not answer: waiting out the back-off.
    Resting,
    /// `ATZ` sent: waiting for it to boot.
    Booting,
    /// `AT+PRECV=0` sent before a transmission.
    TxStop,
    /// `AT+PSEND=<hex>` sent: waiting for `OK` (`done`: its event came first).
    TxSend { done: bool },
    /// On air: waiting for `+EVT:TXP2P DONE`.
    TxWait,
}

/// A transmission asked for: its command and how long it keeps the radio busy.
#[derive(Debug)]
struct Tx {
    command: String,
    airtime: Duration,
}

/// The RAK3172 (RUI3) conversation.
#[derive(Debug)]
pub struct Rak3172 {
    settings: Rak3172Settings,
    step: Step,
    talk: Conversation,
    /// RSSI and SNR of the older two-line event, waiting for its payload line.
    half: Option<(f64, f64)>,
    base: Meta,
    /// Set up and receiving: transmissions are taken.
    up: bool,
    /// The transmission waiting for the receiver to be open, or under way.
    tx: Option<Tx>,
}

impl Rak3172 {
    pub fn new(settings: Rak3172Settings) -> Rak3172 {
        let talk = Conversation::new(
            "module",
            settings.reply_timeout,
            settings.reinit_initial,
            settings.reinit_max,
        );
        let p = settings.p2p;
        let mut base = Meta {
            port: settings.port.clone(),
            frequency_hz: Some(u64::from(p.frequency_hz)),
            datarate: Some(format!("SF{}BW{}", p.spreading_factor, p.bandwidth_khz)),
            ..Meta::default()
        };
        base.extra.insert("modem".into(), "rak3172".into());
        Rak3172 {
            settings,
            step: Step::Booting,
            talk,
            half: None,
            base,
            up: false,
            tx: None,
        }
    }

    fn send(&mut self, step: Step, command: &str, out: &mut Vec<Action>) {
        self.step = step;
        self.talk.send(command, out);
    }

    fn begin(&mut self, out: &mut Vec<Action>) {
        self.down("the module is being set up again", out);
        self.half = None;
        self.talk.forget_rejection();
        self.send(Step::StopRx, "AT+PRECV=0", out);
    }

    fn rest(&mut self, why: String, out: &mut Vec<Action>) {
        self.down(&why, out);
        self.talk.back_off(&why, "restarting", out);
        self.step = Step::Resting;
    }

    /// The module is no longer set up: a transmission asked for fails with `why`.
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
                "the module is transmitting already".into(),
            ))
        } else if !self.up {
            Some(TxOutcome::NotReady("the module is being set up".into()))
        } else if payload.is_empty() || payload.len() > MAX_TX_PAYLOAD {
            Some(TxOutcome::Failed(format!(
                "the module sends 1 to {MAX_TX_PAYLOAD} bytes at once, not {}",
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
            command: format!("AT+PSEND={}", encode_hex(payload)),
            airtime,
        });
        if self.step == Step::Receiving {
            self.send(Step::TxStop, "AT+PRECV=0", out);
        }
    }

    /// The transmission is over: say how it went and receive again.
    fn transmitted(&mut self, outcome: TxOutcome, out: &mut Vec<Action>) {
        self.tx = None;
        out.push(Action::Transmitted(outcome));
        self.send(Step::Arm, "AT+PRECV=65534", out);
    }

    /// A line while transmitting.
    fn transmitting(&mut self, line: &str, out: &mut Vec<Action>) {
        if line == TX_DONE {
            match self.step {
                Step::TxSend { .. } => self.step = Step::TxSend { done: true },
                Step::TxWait => self.transmitted(TxOutcome::Sent, out),
                _ => {}
            }
            return;
        }
        match (self.step, status(line)) {
            (Step::TxStop, Some(Ok(()))) => {
                let command = self.tx.as_ref().map(|t| t.command.clone());
                match command {
                    Some(command) => self.send(Step::TxSend { done: false }, &command, out),
                    None => self.send(Step::Arm, "AT+PRECV=65534", out),
                }
            }
            // Refused to stop: the module is still receiving.
            (Step::TxStop, Some(Err(e))) => {
                let why = self.talk.tx_refused(e);
                self.tx = None;
                out.push(Action::Transmitted(TxOutcome::Failed(why)));
                self.step = Step::Receiving;
                out.push(Action::CancelTimer);
            }
            (Step::TxSend { done: true }, Some(Ok(()))) => self.transmitted(TxOutcome::Sent, out),
            (Step::TxSend { done: false }, Some(Ok(()))) => {
                let airtime = self.tx.as_ref().map_or(Duration::ZERO, |t| t.airtime);
                self.step = Step::TxWait;
                self.talk.await_second_answer(airtime, out);
            }
            (Step::TxSend { .. } | Step::TxWait, Some(Err(e))) => {
                let why = self.talk.tx_refused(e);
                self.transmitted(TxOutcome::Failed(why), out);
            }
            // A packet that came in just before receive stopped still counts.
            (Step::TxStop, None)
                if line.starts_with("+EVT:RXP2P:")
                    || line.starts_with("+EVT:RXP2P,")
                    || self.half.is_some() =>
            {
                self.receive(line, out)
            }
            (_, None) if line.starts_with("+EVT:") => {}
            _ => out.push(Action::Bad(format!(
                "expected the answer to `{}`: {}",
                if self.step == Step::TxStop {
                    "AT+PRECV=0"
                } else {
                    "AT+PSEND"
                },
                preview(line)
            ))),
        }
    }

    fn frame(&self, rssi: f64, snr: f64, hex: &str, line: &str, out: &mut Vec<Action>) {
        match decode_hex(hex.trim()) {
            Some(bytes) if bytes.len() <= MAX_PAYLOAD => {
                let mut meta = self.base.clone();
                meta.rssi = Some(rssi);
                meta.snr = Some(snr);
                out.push(Action::Frame(Bytes::from(bytes), meta));
            }
            _ => out.push(Action::Bad(format!(
                "a P2P payload that is not hex of at most {MAX_PAYLOAD} bytes: {}",
                preview(line)
            ))),
        }
    }

    fn receive(&mut self, line: &str, out: &mut Vec<Action>) {
        let half = self.half.take();
        if let Some(rest) = line.strip_prefix("+EVT:RXP2P") {
            if let Some(fields) = rest.strip_prefix(':') {
                // +EVT:RXP2P:<rssi>:<snr>:<hex>
                let mut parts = fields.splitn(3, ':');
                let rssi = parts.next().and_then(|v| v.trim().parse::<f64>().ok());
                let snr = parts.next().and_then(|v| v.trim().parse::<f64>().ok());
                match (rssi, snr, parts.next()) {
                    (Some(rssi), Some(snr), Some(hex)) => self.frame(rssi, snr, hex, line, out),
                    _ => out.push(Action::Bad(format!(
                        "a malformed P2P event: {}",
                        preview(line)
                    ))),
                }
            } else if let Some((rssi, snr)) = two_line_header(rest) {
                self.half = Some((rssi, snr));
            } else if rest.contains("TIMEOUT") || rest.contains("ERROR") {
                if rest.contains("ERROR") {
                    out.push(Action::Bad(format!(
                        "the reception failed: {}",
                        preview(line)
                    )));
                }
                self.send(Step::Arm, "AT+PRECV=65534", out);
            } else {
                out.push(Action::Bad(format!(
                    "an unknown P2P event: {}",
                    preview(line)
                )));
            }
            return;
        }
        if let (Some((rssi, snr)), Some(hex)) = (half, line.strip_prefix("+EVT:")) {
            self.frame(rssi, snr, hex, line, out);
            return;
        }
        if half.is_some() {
            out.push(Action::Bad("a P2P event without its payload line".into()));
        }
        if line.starts_with("+EVT:") || line == "OK" {
            // Other events (TXP2P DONE...) and stray statuses mean nothing here.
            return;
        }
        out.push(Action::Bad(format!("not a modem event: {}", preview(line))));
    }
}

/// `, RSSI -50, SNR 9` (after `+EVT:RXP2P`): the older firmware's first line.
fn two_line_header(rest: &str) -> Option<(f64, f64)> {
    let mut rssi = None;
    let mut snr = None;
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once(' ')?;
        let value = value.trim().parse::<f64>().ok()?;
        match name {
            "RSSI" => rssi = Some(value),
            "SNR" => snr = Some(value),
            _ => return None,
        }
    }
    Some((rssi?, snr?))
}

/// A status line that ends a command's answer: `OK` or an `AT_...` error.
fn status(line: &str) -> Option<Result<(), &str>> {
    if line == "OK" {
        Some(Ok(()))
    } else if (line.starts_with("AT_") && line.ends_with("ERROR")) || line == "AT_NO_NETWORK_JOINED"
    {
        Some(Err(line))
    } else {
        None
    }
}

/// The last line of the banner RUI3 prints when it boots.
fn is_boot_line(line: &str) -> bool {
    line.starts_with("Current Work Mode")
}

/// The other lines of that banner: the model, a rule, the firmware version.
fn is_banner_text(line: &str) -> bool {
    line.starts_with("RAKwireless")
        || line.starts_with("Version:")
        || (line.len() >= 8 && line.bytes().all(|b| b == b'-' || b == b'='))
}

impl Protocol for Rak3172 {
    fn can_transmit(&self) -> bool {
        self.up
    }

    fn handle(&mut self, input: Input<'_>, out: &mut Vec<Action>) {
        match input {
            Input::Start => self.begin(out),
            Input::Transmit { payload, airtime } => self.transmit(payload, airtime, out),
            Input::Timer => match self.step {
                Step::Resting => {
                    self.step = Step::Booting;
                    self.talk.send_waiting("ATZ", self.settings.reset_wait, out);
                }
                Step::Booting => self.begin(out),
                Step::Receiving => {}
                _ => {
                    let why = self.talk.unanswered();
                    self.rest(why, out);
                }
            },
            Input::Line(line) => {
                let line = line.trim();
                if line.is_empty() {
                    return;
                }
                // The banner's other lines, and the command itself when echo is on (ATE).
                if is_banner_text(line) || line == self.talk.pending() {
                    return;
                }
                if is_boot_line(line) {
                    match self.step {
                        Step::SetMode => {
                            self.send(Step::P2p, &self.settings.p2p.command(), out);
                        }
                        Step::Booting => self.begin(out),
                        _ => {
                            info!("the module restarted ({line}); setting it up again");
                            self.down("the module restarted during the transmission", out);
                            self.begin(out);
                        }
                    }
                    return;
                }
                match self.step {
                    Step::Booting | Step::Resting => {}
                    Step::StopRx => {
                        if status(line).is_some() {
                            self.send(Step::QueryMode { mode: None }, "AT+NWM=?", out);
                        }
                    }
                    Step::QueryMode { mode } => {
                        let value = line.strip_prefix("AT+NWM=").unwrap_or(line);
                        if let Ok(m) = value.trim().parse::<u8>() {
                            self.step = Step::QueryMode { mode: Some(m) };
                            return;
                        }
                        match status(line) {
                            Some(Ok(())) if mode == Some(0) => {
                                self.send(Step::P2p, &self.settings.p2p.command(), out)
                            }
                            Some(_) => self.send(Step::SetMode, "AT+NWM=0", out),
                            None => out.push(Action::Bad(format!(
                                "expected the answer to `AT+NWM=?`: {}",
                                preview(line)
                            ))),
                        }
                    }
                    // The module restarts into P2P mode; some firmware says `OK` first.
                    Step::SetMode => {
                        if let Some(Err(e)) = status(line) {
                            self.rest(format!("the module answered `{e}` to `AT+NWM=0`"), out);
                        }
                    }
                    Step::P2p => match status(line) {
                        Some(result) => {
                            if let Err(e) = result {
                                self.talk.rejected(e, out);
                            }
                            self.send(Step::Arm, "AT+PRECV=65534", out);
                        }
                        None => out.push(Action::Bad(format!(
                            "expected a status to `{}`: {}",
                            self.talk.pending(),
                            preview(line)
                        ))),
                    },
                    Step::TxStop | Step::TxSend { .. } | Step::TxWait => {
                        self.transmitting(line, out)
                    }
                    Step::Arm => match status(line) {
                        Some(Ok(())) => {
                            self.step = Step::Receiving;
                            self.up = self.talk.receiving(out);
                            if self.up && self.tx.is_some() {
                                self.send(Step::TxStop, "AT+PRECV=0", out);
                            }
                        }
                        Some(Err(e)) => self.rest(
                            format!("the module answered `{e}` to `AT+PRECV=65534`"),
                            out,
                        ),
                        None if line.starts_with("+EVT:") => self.receive(line, out),
                        None => out.push(Action::Bad(format!(
                            "expected a status to `AT+PRECV=65534`: {}",
                            preview(line)
                        ))),
                    },
                    Step::Receiving => self.receive(line, out),
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "rak3172_tests.rs"]
mod tests;
