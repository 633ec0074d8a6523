//! What both modems' conversations share: one command at a time, each with a timer
//! for its reply; a rejected setting is reported and remembered until the next
//! set-up; a modem that stops answering is left alone for a growing back-off.

use std::time::Duration;

use tracing::warn;

use super::Action;
use crate::backoff::Backoff;

#[derive(Debug)]
pub(crate) struct Conversation {
    /// What the messages call the device: "modem" or "module".
    device: &'static str,
    reply_timeout: Duration,
    /// The command whose answer is awaited.
    pending: String,
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
        out.push(Action::Send(command.to_string()));
        out.push(Action::Timer(wait));
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
    /// is done unless a setting was rejected.
    pub(crate) fn receiving(&mut self, out: &mut Vec<Action>) {
        out.push(Action::CancelTimer);
        self.backoff.reset();
        if self.rejected.is_none() {
            out.push(Action::Ready);
        }
    }

    /// Why the pending command timed out.
    pub(crate) fn unanswered(&self) -> String {
        format!(
            "the {} did not answer `{}` within {} ms",
            self.device,
            self.pending,
            self.reply_timeout.as_millis()
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
