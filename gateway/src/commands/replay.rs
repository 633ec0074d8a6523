//! `mqgate replay --config FILE --source ID [--speed X | --fast] [--dry-run] CAPTURE`:
//! play a capture through a source's framer and mapping. With `--dry-run` each
//! message is printed as a JSON line and nothing is published.

use std::path::Path;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{load_config, message_json, Asked, Signals, EXIT_CONFIG};

/// Stopped by SIGINT or SIGTERM before the end of the capture (128 + SIGINT, as a
/// shell reports a command it interrupted).
const EXIT_INTERRUPTED: u8 = 130;
use crate::pipeline::{self, build, ReplayOverride};
use crate::source::replay::Speed;
use crate::state_lock::StateLock;

/// Longest wait for the outputs once the capture has played.
const REPLAY_DRAIN: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct ReplayArgs<'a> {
    pub config: &'a Path,
    pub source: &'a str,
    pub capture: &'a Path,
    pub speed: Speed,
    pub dry_run: bool,
}

pub async fn run(args: &ReplayArgs<'_>) -> u8 {
    let config = match load_config(args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !config.sources.iter().any(|s| s.id == args.source) {
        let ids: Vec<&str> = config.sources.iter().map(|s| s.id.as_str()).collect();
        eprintln!(
            "{}: no source `{}` (sources: {})",
            args.config.display(),
            args.source,
            ids.join(", ")
        );
        return EXIT_CONFIG;
    }
    let chunks = match build::load_chunks(args.capture) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mqgate: {e:#}");
            return EXIT_CONFIG;
        }
    };
    let over = ReplayOverride {
        chunks,
        speed: args.speed,
    };
    // Publishing uses the state folder's store: never under a running gateway.
    let _lock = if args.dry_run {
        None
    } else {
        match StateLock::acquire(&config.gateway.state_dir) {
            Ok(lock) => Some(lock),
            Err(e) => {
                eprintln!("mqgate: {e:#}");
                return 1;
            }
        }
    };
    // Ctrl-C stops the replay where it is; what was read so far still goes through.
    let mut signals = Signals::install();
    let mut interrupted = false;
    let (stop, shutdown) = watch::channel(false);
    let (tap, mut printed) = mpsc::channel(1024);
    let tap = args.dry_run.then_some(tap);
    let mut running =
        match pipeline::start(&config, Some(args.source), Some(over), tap, shutdown).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("mqgate: {e:#}");
                // A script that does not compile is a configuration error.
                return if e.is::<pipeline::MappingErrors>() {
                    EXIT_CONFIG
                } else {
                    1
                };
            }
        };
    if args.dry_run {
        // Ends when the replay has played and every message is through, or when
        // stdout is closed (`| head`): then quietly.
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        loop {
            let m = tokio::select! {
                m = printed.recv() => m,
                Asked::Stop = signals.next(), if !interrupted => {
                    interrupted = true;
                    let _ = stop.send(true);
                    continue;
                }
            };
            let Some(m) = m else { break };
            if writeln!(out, "{}", message_json(&m)).is_err() {
                return 0;
            }
        }
    } else {
        // The outputs finish once the capture has played and every message is
        // through; an upstream broker that cannot be reached does not keep the
        // command waiting for ever: what it did not take stays in the store.
        let finished = tokio::select! {
            r = tokio::time::timeout(REPLAY_DRAIN, running.outputs_finished()) => r.is_ok(),
            Asked::Stop = signals.next() => {
                interrupted = true;
                let _ = stop.send(true);
                tokio::time::timeout(REPLAY_DRAIN, running.outputs_finished()).await.is_ok()
            }
        };
        if !finished {
            eprintln!(
                "mqgate: outputs still busy after {REPLAY_DRAIN:?}; what they did not take stays in the store"
            );
            let _ = stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), running.outputs_finished()).await;
        }
        if let Some(broker) = running.broker.take() {
            broker.shutdown().await;
        }
    }
    for s in &running.sources {
        let dead = running
            .mappings
            .iter()
            .find(|m| m.source == s.id)
            .map_or(0, |m| crate::pipeline::MappingStats::get(&m.failed));
        eprintln!(
            "source {}: {} frames, {} bad, {dead} dead-lettered",
            s.id,
            crate::source::SourceStatus::get(&s.frames),
            crate::source::SourceStatus::get(&s.bad_frames)
        );
    }
    if interrupted {
        EXIT_INTERRUPTED
    } else {
        0
    }
}
