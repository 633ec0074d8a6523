//! Runs a modem [`Protocol`] against a serial port (live) or a capture (replay).
//!
//! Live, the port is opened like a plain serial source's (exclusive, 0-byte reads
//! taken as an unplug) and reopened with back-off when it goes away; the protocol's
//! commands are written with CR LF, its one timer is kept here. Commands from MQTT
//! come through the [`Transmitter`] between the reads: one at a time, each part
//! handed to the protocol when the pause before it is over. On replay the protocol
//! reads the recorded output and its commands go nowhere.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info};

use super::lines::{LineSplitter, Piece};
use super::transmit::{Next, Transmitter};
use super::{Action, Input, Protocol};
use crate::frame::Frame;
use crate::source::replay::{Chunk, Speed};
use crate::source::serial::{read_outcome, PortKeeper, SerialSettings};
use crate::source::{SourceState, SourceStatus};

/// Longest line kept from a modem (a 255-byte `radio_rx` is 521 characters).
pub const MAX_LINE: usize = 1024;

/// Shortest pass of a looping replay at 1×.
const MIN_PASS: Duration = Duration::from_secs(1);

/// How often the duty-cycle budget on the status page is brought up to date
/// between transmissions (air time ages out of the hour).
const BUDGET_REFRESH: Duration = Duration::from_secs(60);

/// Where a modem source sends its frames and reports.
#[derive(Debug)]
pub struct Sink {
    pub source: Arc<str>,
    pub tx: mpsc::Sender<Frame>,
    pub status: Arc<SourceStatus>,
}

/// The pipeline behind the source has stopped, or the gateway is stopping.
struct Closed;

impl Sink {
    /// Carry out what does not touch the port; commands and timers are returned to
    /// the caller (live) or dropped (replay). A full pipeline is waited for, unless
    /// shutdown comes first.
    async fn apply(
        &self,
        action: Action,
        live: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Action>, Closed> {
        match action {
            Action::Frame(bytes, meta) => {
                SourceStatus::add(&self.status.frames, 1);
                let frame = Frame {
                    source: self.source.clone(),
                    received_at: SystemTime::now(),
                    bytes,
                    meta,
                };
                tokio::select! {
                    sent = self.tx.send(frame) => sent.map_err(|_| Closed)?,
                    _ = shutdown.changed() => return Err(Closed),
                }
            }
            Action::Bad(why) => {
                debug!(source = %self.source, "bad frame: {why}");
                self.status.bad_frame(why, 0, &[]);
            }
            Action::Trouble(why) if live => self.status.set_waiting(why),
            Action::Ready if live => {
                info!(source = %self.source, "modem receiving");
                self.status.set_state(SourceState::Connected {
                    since: SystemTime::now(),
                });
            }
            Action::Trouble(_) | Action::Ready => {}
            other => return Ok(Some(other)),
        }
        Ok(None)
    }
}

enum Ended {
    Gone(String),
    Stop,
}

/// Drive the modem on `settings`' port until shutdown, reopening the port whenever
/// it goes away; commands come through `tx`.
pub async fn run_serial<P: Protocol>(
    settings: SerialSettings,
    mut protocol: P,
    sink: Sink,
    mut tx: Transmitter,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut keeper = PortKeeper::new(settings);
    loop {
        let error = match keeper.open(&sink.status) {
            Ok(mut port) => {
                sink.status.set_state(SourceState::Starting);
                let io = Io {
                    protocol: &mut protocol,
                    sink: &sink,
                    tx: &mut tx,
                };
                match drive(&mut port, io, &mut shutdown).await {
                    Ended::Stop => break,
                    Ended::Gone(e) => e,
                }
            }
            Err(e) => e,
        };
        tx.set_ready(false);
        tx.abandon(&format!(
            "the port went away during the transmission: {error}"
        ));
        let why = format!("source {}: {error}", sink.source);
        let wait = keeper.wait(error, &sink.status, &mut shutdown);
        if !tx.device().refuse_during(&why, wait).await {
            break;
        }
    }
    tx.set_ready(false);
    sink.status.set_state(SourceState::Finished);
}

/// What one session on an open port works with.
struct Io<'a, P> {
    protocol: &'a mut P,
    sink: &'a Sink,
    tx: &'a mut Transmitter,
}

impl<P: Protocol> Io<'_, P> {
    /// Hand a part to the modem.
    fn transmit(&mut self, next: Option<Next>, actions: &mut Vec<Action>) {
        if let Some((payload, airtime)) = next {
            let input = Input::Transmit {
                payload: &payload,
                airtime,
            };
            self.protocol.handle(input, actions);
        }
    }
}

async fn drive<P: Protocol>(
    port: &mut tokio_serial::SerialStream,
    mut io: Io<'_, P>,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let mut lines = LineSplitter::new(MAX_LINE);
    let mut pieces = Vec::new();
    let mut actions = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 1024];
    let mut refresh = tokio::time::interval(BUDGET_REFRESH);
    let sink = io.sink;
    io.protocol.handle(Input::Start, &mut actions);
    loop {
        // A transmission's outcome may hand the next part to the protocol,
        // whose actions are carried out in the same pass.
        while !actions.is_empty() {
            let mut next = Vec::new();
            for action in actions.drain(..) {
                match sink.apply(action, true, shutdown).await {
                    Err(Closed) => return Ended::Stop,
                    Ok(Some(Action::Send(command))) => {
                        debug!(source = %sink.source, "> {command}");
                        let line = format!("{command}\r\n");
                        if let Err(e) = port.write_all(line.as_bytes()).await {
                            return Ended::Gone(format!("write failed: {e}"));
                        }
                    }
                    Ok(Some(Action::Timer(after))) => deadline = Some(Instant::now() + after),
                    Ok(Some(Action::CancelTimer)) => deadline = None,
                    Ok(Some(Action::Transmitted(outcome))) => {
                        let part = io.tx.part_done(outcome, Instant::now());
                        io.transmit(part, &mut next);
                    }
                    Ok(_) => {}
                }
            }
            actions = next;
        }
        // The command path sends only while the modem is set up.
        io.tx.set_ready(io.protocol.can_transmit());
        let wake = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let pause = io.tx.pause_until();
        let idle = io.tx.idle();
        tokio::select! {
            r = port.read(&mut buf) => match read_outcome(r) {
                Ok(n) => {
                    SourceStatus::add(&sink.status.bytes, n as u64);
                    lines.push(&buf[..n], &mut pieces);
                    for piece in pieces.drain(..) {
                        feed(io.protocol, piece, &mut actions);
                    }
                }
                Err(e) => return Ended::Gone(e),
            },
            _ = tokio::time::sleep_until(wake), if deadline.is_some() => {
                deadline = None;
                io.protocol.handle(Input::Timer, &mut actions);
            }
            request = io.tx.device().next(), if idle => {
                let ready = io.protocol.can_transmit();
                let part = io.tx.accept(request, ready, &sink.status, Instant::now());
                io.transmit(part, &mut actions);
            }
            _ = tokio::time::sleep_until(pause.unwrap_or(wake)), if pause.is_some() => {
                let part = io.tx.next_part(Instant::now());
                io.transmit(part, &mut actions);
            }
            _ = refresh.tick() => io.tx.publish_budget(&sink.status, Instant::now()),
            _ = shutdown.changed() => return Ended::Stop,
        }
    }
}

fn feed<P: Protocol>(protocol: &mut P, piece: Piece, actions: &mut Vec<Action>) {
    match piece {
        Piece::Line(line) => protocol.handle(Input::Line(&line), actions),
        Piece::Overlong(len) => actions.push(Action::Bad(format!(
            "a line of more than {} bytes ({len} so far)",
            len - 1
        ))),
    }
}

/// Play a capture of a modem's output through `protocol` (commands are dropped),
/// at the recorded timing scaled by `speed`, once or forever.
pub async fn run_replay<P: Protocol>(
    chunks: Arc<[Chunk]>,
    speed: Speed,
    looping: bool,
    mut protocol: P,
    sink: Sink,
    mut shutdown: watch::Receiver<bool>,
) {
    sink.status.set_state(SourceState::Connected {
        since: SystemTime::now(),
    });
    let mut actions = Vec::new();
    let mut pieces = Vec::new();
    'passes: loop {
        let start = Instant::now();
        let mut lines = LineSplitter::new(MAX_LINE);
        protocol.handle(Input::Start, &mut actions);
        for (at, bytes) in chunks.iter() {
            match speed {
                Speed::Times(factor) => tokio::select! {
                    _ = tokio::time::sleep_until(start + scale(*at, factor)) => {}
                    _ = shutdown.changed() => break 'passes,
                },
                Speed::Fast if *shutdown.borrow() => break 'passes,
                Speed::Fast => {}
            }
            SourceStatus::add(&sink.status.bytes, bytes.len() as u64);
            lines.push(bytes, &mut pieces);
            for piece in pieces.drain(..) {
                feed(&mut protocol, piece, &mut actions);
            }
            for action in actions.drain(..) {
                if sink.apply(action, false, &mut shutdown).await.is_err() {
                    break 'passes;
                }
            }
        }
        if !looping || chunks.is_empty() {
            break;
        }
        match speed {
            Speed::Times(factor) => {
                let recorded = chunks.last().map_or(Duration::ZERO, |c| c.0);
                tokio::select! {
                    _ = tokio::time::sleep_until(start + scale(recorded.max(MIN_PASS), factor)) => {}
                    _ = shutdown.changed() => break,
                }
            }
            Speed::Fast => tokio::task::yield_now().await,
        }
    }
    info!(source = %sink.source, "replay finished");
    sink.status.set_state(SourceState::Finished);
}

fn scale(at: Duration, factor: f64) -> Duration {
    if factor <= 0.0 || !factor.is_finite() {
        return at;
    }
    Duration::from_secs_f64(at.as_secs_f64() / factor)
}
