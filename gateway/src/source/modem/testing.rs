//! The harness the modems' unit tests share: drive a [`Protocol`] with scripted
//! lines and timer expiries, pick the commands, frames and bad lines out of what it
//! did, and the property every modem keeps for any input.

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::{Action, Input, Protocol};
use crate::frame::Meta;
use crate::source::TxOutcome;

/// The time on air [`run`] gives each transmission.
pub(crate) const TEST_AIRTIME: Duration = Duration::from_millis(150);

/// Feed lines (or the start, written `START`, timer expiries, written `TIMER`,
/// and transmissions, written `TX <hex>`) and collect every action.
pub(crate) fn run(m: &mut impl Protocol, inputs: &[&str]) -> Vec<Action> {
    let mut out = Vec::new();
    for input in inputs {
        match *input {
            "START" => m.handle(Input::Start, &mut out),
            "TIMER" => m.handle(Input::Timer, &mut out),
            tx if tx.starts_with("TX ") => {
                let payload = super::decode_hex(&tx[3..]).expect("hex after TX");
                let input = Input::Transmit {
                    payload: &payload,
                    airtime: TEST_AIRTIME,
                };
                m.handle(input, &mut out)
            }
            line => m.handle(Input::Line(line), &mut out),
        }
    }
    out
}

/// How the transmissions went, in order.
pub(crate) fn outcomes(actions: &[Action]) -> Vec<TxOutcome> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transmitted(o) => Some(o.clone()),
            _ => None,
        })
        .collect()
}

/// The one failure among `actions`, or a failed test.
pub(crate) fn failure(actions: &[Action]) -> String {
    match outcomes(actions).as_slice() {
        [TxOutcome::Failed(why)] => why.clone(),
        other => panic!("expected one failed transmission, got {other:?} in {actions:?}"),
    }
}

/// The commands sent, in order.
pub(crate) fn sent(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// The frames delivered, in order.
pub(crate) fn frames(actions: &[Action]) -> Vec<(Bytes, Meta)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Frame(b, m) => Some((b.clone(), m.clone())),
            _ => None,
        })
        .collect()
}

/// How many lines were reported as bad.
pub(crate) fn bad(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Bad(_)))
        .count()
}

/// A timer expiry (`None`), a line from `vocabulary`, or any printable line.
pub(crate) fn any_input(vocabulary: Vec<&'static str>) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop::sample::select(vocabulary).prop_map(|s| Some(s.to_string())),
        "[ -~]{0,40}".prop_map(Some),
    ]
}

/// After a start, each input (a line, a timer expiry or a transmission, written
/// `TX <hex>`) makes `m` send at most one command and answer at most one
/// transmission, each command comes with a timer for its reply, no timer is longer
/// than `longest` and no frame longer than `max_payload`.
pub(crate) fn one_command_at_a_time(
    m: &mut impl Protocol,
    inputs: &[Option<String>],
    longest: Duration,
    max_payload: usize,
) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    m.handle(Input::Start, &mut out);
    for input in inputs {
        out.clear();
        match input.as_deref() {
            None => m.handle(Input::Timer, &mut out),
            Some(tx) if tx.starts_with("TX ") => {
                let payload = super::decode_hex(&tx[3..]).unwrap_or_default();
                let transmit = Input::Transmit {
                    payload: &payload,
                    airtime: TEST_AIRTIME,
                };
                m.handle(transmit, &mut out);
            }
            Some(line) => m.handle(Input::Line(line), &mut out),
        }
        let transmitted = out
            .iter()
            .filter(|a| matches!(a, Action::Transmitted(_)))
            .count();
        prop_assert!(transmitted <= 1, "one answer per transmission: {out:?}");
        let sends = out.iter().filter(|a| matches!(a, Action::Send(_))).count();
        prop_assert!(sends <= 1, "{out:?}");
        if let Some(at) = out.iter().position(|a| matches!(a, Action::Send(_))) {
            prop_assert!(matches!(out.get(at + 1), Some(Action::Timer(_))), "{out:?}");
        }
        for a in &out {
            if let Action::Timer(d) = a {
                prop_assert!(*d <= longest, "{d:?}");
            }
            if let Action::Frame(bytes, _) = a {
                prop_assert!(bytes.len() <= max_payload);
            }
        }
    }
    Ok(())
}
