//! The engine's side of transmissions. A command from the command path is
//! checked whole before anything is sent (transport options, sizes, the radio's
//! settings, the duty-cycle budget for all its parts together); then its parts
//! go to the modem's state machine one at a time, each followed by the pause it
//! asks for, and the command path is answered once the last part went or one
//! failed.
//!
//! The air time of a command is charged when it starts: a part that then fails
//! may have been on air already, so the budget errs on the safe side.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::airtime::{DutyCycle, DutyCycleRefusal, LoraParams, Region};
use crate::message::Part;
use crate::source::{DeviceSide, SourceStatus, TxOutcome, TxRequest};

/// What a modem transmits with.
#[derive(Debug, Clone)]
pub struct Radio {
    /// The carrier frequency (Hz) and LoRa settings, or why they are not known
    /// (then nothing is sent: its time on air would be unknown).
    pub settings: Result<(u64, LoraParams), String>,
    /// Whose duty-cycle rules apply.
    pub region: Region,
    /// Most bytes in one transmission.
    pub max_payload: usize,
}

impl Radio {
    /// The region a source transmits under when its configuration names none:
    /// EU868's rules inside 863–870 MHz, none elsewhere.
    pub fn default_region(frequency_hz: u64) -> Region {
        if (863_000_000..=870_000_000).contains(&frequency_hz) {
            Region::Eu868
        } else {
            Region::None
        }
    }
}

/// A command being sent.
#[derive(Debug)]
struct Sending {
    reply: oneshot::Sender<TxOutcome>,
    /// Parts not yet handed to the modem, each with its time on air.
    left: VecDeque<(Part, Duration)>,
    parts: usize,
    /// Parts the modem confirmed.
    sent: usize,
    /// The pause after the last confirmed part ends then.
    pause_until: Option<Instant>,
}

/// Takes commands from the command path for one modem source.
#[derive(Debug)]
pub struct Transmitter {
    source: Arc<str>,
    device: DeviceSide,
    radio: Radio,
    duty: DutyCycle,
    sending: Option<Sending>,
}

/// A part for the modem: its bytes and time on air.
pub type Next = (Bytes, Duration);

impl Transmitter {
    pub fn new(source: &str, device: DeviceSide, radio: Radio) -> Transmitter {
        Transmitter {
            source: Arc::from(source),
            device,
            duty: DutyCycle::new(radio.region),
            radio,
            sending: None,
        }
    }

    /// A transmitter no command reaches (a source without commands).
    pub fn none(source: &str) -> Transmitter {
        let radio = Radio {
            settings: Err("no commands".into()),
            region: Region::None,
            max_payload: 0,
        };
        Transmitter::new(source, DeviceSide::none(), radio)
    }

    /// Nothing is being sent: the next command may be taken.
    pub fn idle(&self) -> bool {
        self.sending.is_none()
    }

    /// The device side, to wait for the next command or refuse commands.
    pub fn device(&mut self) -> &mut DeviceSide {
        &mut self.device
    }

    /// When the pause after a part ends, if one is being kept.
    pub fn pause_until(&self) -> Option<Instant> {
        self.sending.as_ref().and_then(|s| s.pause_until)
    }

    /// The modem can take transmissions (or no longer).
    pub fn set_ready(&self, ready: bool) {
        self.device.set_ready(ready);
    }

    /// Shows the duty-cycle budget as of `now` on the source's status.
    pub fn publish_budget(&self, status: &SourceStatus, now: Instant) {
        let sub_bands = self.duty.budget(now.into_std());
        let radios = if sub_bands.is_empty() {
            Vec::new()
        } else {
            vec![crate::source::RadioDutyCycle {
                radio: "modem".into(),
                sub_bands,
            }]
        };
        status.set_duty_cycle(radios);
    }

    /// Take a command: answer it at once when it cannot go out, else return its
    /// first part for the modem. `ready` says whether the modem can transmit now.
    pub fn accept(
        &mut self,
        request: TxRequest,
        ready: bool,
        status: &SourceStatus,
        now: Instant,
    ) -> Option<Next> {
        let TxRequest { parts, reply } = request;
        match self.check(parts, ready, status, now) {
            Ok(left) => {
                self.sending = Some(Sending {
                    reply,
                    parts: left.len(),
                    left,
                    sent: 0,
                    pause_until: None,
                });
                self.next_part(now)
            }
            Err(outcome) => {
                let _ = reply.send(outcome);
                None
            }
        }
    }

    fn check(
        &mut self,
        parts: Vec<Part>,
        ready: bool,
        status: &SourceStatus,
        now: Instant,
    ) -> Result<VecDeque<(Part, Duration)>, TxOutcome> {
        let source = &self.source;
        for (i, part) in parts.iter().enumerate() {
            let at = prefix(source, i, parts.len());
            if let Some(key) = part.options.keys().next() {
                return Err(TxOutcome::Failed(format!(
                    "{at} a radio modem takes no transport option `{key}` (only `delay_ms`)"
                )));
            }
            let len = part.bytes.len();
            if len == 0 || len > self.radio.max_payload {
                return Err(TxOutcome::Failed(format!(
                    "{at} {len} bytes to send; the radio sends 1 to {} bytes at once",
                    self.radio.max_payload
                )));
            }
        }
        let (frequency_hz, lora) = match &self.radio.settings {
            Ok(settings) => *settings,
            Err(why) => {
                return Err(TxOutcome::Failed(format!(
                    "source {source}: cannot transmit: {why}"
                )))
            }
        };
        if !ready {
            return Err(TxOutcome::NotReady(format!(
                "source {source}: the modem is being set up"
            )));
        }
        let left: VecDeque<(Part, Duration)> = parts
            .into_iter()
            .map(|p| {
                let air = lora.time_on_air(p.bytes.len());
                (p, air)
            })
            .collect();
        let total: Duration = left.iter().map(|(_, air)| *air).sum();
        let taken = self.duty.try_take(frequency_hz, total, now.into_std());
        self.publish_budget(status, now);
        if let Err(refusal) = taken {
            return Err(TxOutcome::Rejected(rejection(source, &refusal)));
        }
        Ok(left)
    }

    /// The next part for the modem, now that the pause before it is over; `None`
    /// when there is none (the command was answered) or the pause goes on.
    pub fn next_part(&mut self, now: Instant) -> Option<Next> {
        let sending = self.sending.as_mut()?;
        if sending.pause_until.is_some_and(|at| at > now) {
            return None;
        }
        sending.pause_until = None;
        match sending.left.front() {
            Some((part, air)) => Some((part.bytes.clone(), *air)),
            None => {
                self.finish(TxOutcome::Sent);
                None
            }
        }
    }

    /// The modem says how the part handed to it went. Returns the next part
    /// when it is due at once.
    pub fn part_done(&mut self, outcome: TxOutcome, now: Instant) -> Option<Next> {
        let source = self.source.clone();
        let sending = self.sending.as_mut()?;
        let at = prefix(&source, sending.sent, sending.parts);
        match outcome {
            TxOutcome::Sent => {
                let (part, _) = sending.left.pop_front()?;
                sending.sent += 1;
                if part.delay_ms > 0 {
                    sending.pause_until = Some(now + Duration::from_millis(part.delay_ms));
                }
                self.next_part(now)
            }
            TxOutcome::NotReady(why) if sending.sent == 0 => {
                self.finish(TxOutcome::NotReady(format!("source {source}: {why}")));
                None
            }
            TxOutcome::NotReady(why) => {
                let why = format!("{at} {why}; the parts before it were sent");
                self.finish(TxOutcome::Failed(why));
                None
            }
            TxOutcome::Failed(why) | TxOutcome::Rejected(why) => {
                self.finish(TxOutcome::Failed(format!("{at} {why}")));
                None
            }
        }
    }

    /// The port went away or the modem is set up again: the command being
    /// sent fails with `why`.
    pub fn abandon(&mut self, why: &str) {
        if self.sending.is_some() {
            let why = format!("source {}: {why}", self.source);
            self.finish(TxOutcome::Failed(why));
        }
    }

    fn finish(&mut self, outcome: TxOutcome) {
        if let Some(sending) = self.sending.take() {
            let _ = sending.reply.send(outcome);
        }
    }
}

/// `source ID:`, with the part when a command has more than one.
fn prefix(source: &str, i: usize, parts: usize) -> String {
    if parts > 1 {
        format!("source {source}: part {} of {parts}:", i + 1)
    } else {
        format!("source {source}:")
    }
}

/// A refusal as a command's result: `duty_cycle: source ID: ...`.
fn rejection(source: &str, refusal: &DutyCycleRefusal) -> String {
    let text = refusal.to_string();
    let text = text.strip_prefix("duty cycle: ").unwrap_or(&text);
    format!("{}: source {source}: {text}", DutyCycleRefusal::REASON)
}

#[cfg(test)]
#[path = "transmit_tests.rs"]
mod tests;
