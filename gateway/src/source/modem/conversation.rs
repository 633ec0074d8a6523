//! What both modems' conversations share: one command at a time, each with a timer
//! for its reply; a rejected setting is reported and remembered until the next
//! set-up; a modem that stops answering is left alone for a growing back-off.

use std::time::Duration;

use tracing::warn;

use super::Action;

/// A command as a report quotes it: a transmission's payload (up to 510 hex
/// digits) is cut short.
fn preview_command(command: &str) -> String {
    const KEEP: usize = 40;
    match command.get(..KEEP) {
        Some(head) if command.len() > KEEP => format!("{head}..."),
        _ => command.to_string(),
    }
}
use crate::backoff::Backoff;

#[derive(Debug)]
pub(crate) struct Conversation {
    /// What the messages call the device: "modem" or "module".
    device: &'static str,
    reply_timeout: Duration,
    /// The command whose answer is awaited, and how long it is waited for.
    pending: String,
    waiting: Duration,
    /// A set-up command the device rejected (the source shows it).
    rejected: Option<String>,
    backoff: Backoff,
}

impl Conversation {
    pub(crate) fn new(
        device: &'static str,
        reply_timeout: Duration,
        reinit_initial: Duration,
        reinit_max: Duration,
    ) -> Conversation {
        Conversation {
            device,
            reply_timeout,
            pending: String::new(),
            waiting: reply_timeout,
            rejected: None,
            backoff: Backoff::new(reinit_initial, reinit_max),
        }
    }

    /// The command whose answer is awaited.
    pub(crate) fn pending(&self) -> &str {
        &self.pending
    }

    /// Send `command` and wait `reply_timeout` for its answer.
    pub(crate) fn send(&mut self, command: &str, out: &mut Vec<Action>) {
        self.send_waiting(command, self.reply_timeout, out);
    }

    /// Send `command` and wait `wait` before the next step.
    pub(crate) fn send_waiting(&mut self, command: &str, wait: Duration, out: &mut Vec<Action>) {
        self.pending = command.to_string();
        self.waiting = wait;
        out.push(Action::Send(command.to_string()));
        out.push(Action::Timer(wait));
    }

    /// The pending command was accepted; its second answer comes after `extra`
    /// (a transmission's time on air) and the reply timeout.
    pub(crate) fn await_second_answer(&mut self, extra: Duration, out: &mut Vec<Action>) {
        self.waiting = self.reply_timeout + extra;
        out.push(Action::Timer(self.waiting));
    }

    /// A new set-up begins: an earlier rejection no longer holds.
    pub(crate) fn forget_rejection(&mut self) {
        self.rejected = None;
    }

    /// The device answered `answer` (an error) to the pending set-up command: shown
    /// as trouble, and the set-up ends without [`Action::Ready`].
    pub(crate) fn rejected(&mut self, answer: &str, out: &mut Vec<Action>) {
        let why = format!(
            "the {} answered `{answer}` to `{}`",
            self.device, self.pending
        );
        warn!("{why}");
        out.push(Action::Trouble(why.clone()));
        self.rejected = Some(why);
    }

    /// The receiver is open: no more timer, the back-off starts over, and the set-up
    /// is done unless a setting was rejected. `true` when it is done: the device
    /// may transmit (with a rejected setting it might do so on the wrong channel).
    pub(crate) fn receiving(&mut self, out: &mut Vec<Action>) -> bool {
        out.push(Action::CancelTimer);
        self.backoff.reset();
        let ready = self.rejected.is_none();
        if ready {
            out.push(Action::Ready);
        }
        ready
    }

    /// The device answered `answer` to the pending command of a transmission.
    pub(crate) fn tx_refused(&self, answer: &str) -> String {
        format!(
            "the {} answered `{answer}` to `{}`",
            self.device,
            preview_command(&self.pending)
        )
    }

    /// Why the pending command timed out.
    pub(crate) fn unanswered(&self) -> String {
        format!(
            "the {} did not answer `{}` within {} ms",
            self.device,
            preview_command(&self.pending),
            self.waiting.as_millis()
        )
    }

    /// Report `why` as trouble, saying the device is `then` (e.g. "resetting") after
    /// the next back-off delay, and time that delay.
    pub(crate) fn back_off(&mut self, why: &str, then: &str, out: &mut Vec<Action>) {
        let delay = self.backoff.next_delay();
        let why = format!("{why}; {then} it in {} ms", delay.as_millis());
        warn!("{why}");
        out.push(Action::Trouble(why));
        out.push(Action::Timer(delay));
    }

    /// The next back-off delay, without a report.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.backoff.next_delay()
    }
}
