//! The running gateway: sources → (bounded) → mapping threads → (bounded) → outputs.
//!
//! Each source task frames its bytes and sends `Frame`s to its own mapping thread
//! (Rhai is CPU work; it runs on a plain thread, not on the async runtime). The
//! mapping thread sends messages, and dead letters for frames that failed, to one
//! fan-out task that feeds every output through its own bounded channel. A full
//! channel makes the stage before it wait, back to the source.

pub mod build;
mod mapping;

pub use build::{build_mappers, MapperSet};
pub use mapping::MappingStats;

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::config::{GatewayConfig, SourceKind};
use crate::frame::Frame;
use crate::message::Message;
use crate::output::embedded::{self, OutputStats};
use crate::output::upstream::{self, UpstreamStatus};
use crate::source::{replay, serial, Feed, SourceStatus};

/// Frames one source may have waiting for its mapping thread.
const FRAME_QUEUE: usize = 1024;
/// Messages waiting for the fan-out, and for each output.
const MESSAGE_QUEUE: usize = 4096;

/// What the status page and the tests can read while the gateway runs.
pub struct Running {
    pub sources: Vec<Arc<SourceStatus>>,
    pub mappings: Vec<Arc<MappingStats>>,
    pub embedded: Option<Arc<OutputStats>>,
    pub upstream: Option<Arc<UpstreamStatus>>,
    pub broker: Option<broker_lite::Broker>,
    /// The output tasks: they end once every message before them is handed over.
    pub outputs: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Wait until every output has handed over what reached it. That happens once
    /// the sources have stopped (or a replay has played) and the mappings are through.
    pub async fn outputs_finished(&mut self) {
        for task in self.outputs.drain(..) {
            let _ = task.await;
        }
    }
}

/// Where messages go instead of the outputs (for `replay --dry-run`).
pub type Tap = mpsc::Sender<Message>;

/// Start every part of the gateway. Messages go to the configured outputs, or to
/// `tap` when given (then no broker is started and nothing is published).
pub async fn start(
    config: &GatewayConfig,
    only_source: Option<&str>,
    replay_override: Option<ReplayOverride>,
    tap: Option<Tap>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Running> {
    let mappers = build_mappers(config).map_err(|errors| anyhow::anyhow!(errors.join("\n")))?;
    let (msg_tx, msg_rx) = mpsc::channel::<Message>(MESSAGE_QUEUE);
    let mut running = Running {
        sources: Vec::new(),
        mappings: Vec::new(),
        embedded: None,
        upstream: None,
        broker: None,
        outputs: Vec::new(),
    };
    let mut outputs: Vec<mpsc::Sender<Message>> = Vec::new();
    match tap {
        Some(tap) => outputs.push(tap),
        None => {
            if let Some(broker_config) = &config.broker {
                let broker = broker_lite::Broker::start(broker_config.clone())
                    .await
                    .with_context(|| format!("embedded broker on {}", broker_config.listen))?;
                let stats = Arc::new(OutputStats::default());
                let (tx, rx) = mpsc::channel(MESSAGE_QUEUE);
                let task = tokio::spawn(embedded::run(broker.handle(), rx, stats.clone()));
                running.outputs.push(task);
                outputs.push(tx);
                running.embedded = Some(stats);
                running.broker = Some(broker);
            }
            if let Some(up) = &config.upstream {
                let settings = build::upstream_settings(config, up)?;
                let status = Arc::new(UpstreamStatus::default());
                let (tx, rx) = mpsc::channel(MESSAGE_QUEUE);
                let task = tokio::spawn(upstream::run(
                    settings,
                    rx,
                    status.clone(),
                    shutdown.clone(),
                ));
                running.outputs.push(task);
                outputs.push(tx);
                running.upstream = Some(status);
            }
        }
    }
    tokio::spawn(fan_out(msg_rx, outputs));
    for source in &config.sources {
        if only_source.is_some_and(|id| id != source.id) {
            continue;
        }
        let status = Arc::new(SourceStatus::new(&source.id));
        let (frame_tx, frame_rx) = mpsc::channel::<Frame>(FRAME_QUEUE);
        let mapper = mappers.get(&source.id);
        let stats = mapping::spawn(
            &source.id,
            mapper,
            &config.gateway.id,
            frame_rx,
            msg_tx.clone(),
        )?;
        running.mappings.push(stats);
        let feed = |port: Option<String>| {
            Feed::new(
                &source.id,
                source.framing.build(),
                status.clone(),
                frame_tx.clone(),
                port,
            )
        };
        match (&source.kind, &replay_override) {
            (_, Some(over)) => {
                let f = feed(None);
                tokio::spawn(replay::run(
                    over.chunks.clone(),
                    over.speed,
                    false,
                    f,
                    status.clone(),
                    shutdown.clone(),
                ));
            }
            (SourceKind::Serial(s), None) => {
                let settings = build::serial_settings(s);
                let f = feed(Some(s.path.clone()));
                tokio::spawn(serial::run(settings, f, status.clone(), shutdown.clone()));
            }
            (SourceKind::Replay(r), None) => {
                // The configuration has resolved the path already.
                let chunks = build::load_chunks(&r.file)?;
                let f = feed(None);
                tokio::spawn(replay::run(
                    chunks,
                    r.playback(),
                    r.looping,
                    f,
                    status.clone(),
                    shutdown.clone(),
                ));
            }
        }
        running.sources.push(status);
    }
    info!(
        sources = running.sources.len(),
        "gateway {} running", config.gateway.id
    );
    Ok(running)
}

/// A capture to play instead of a source's own input (`mqgate replay`).
#[derive(Clone)]
pub struct ReplayOverride {
    pub chunks: Arc<[replay::Chunk]>,
    pub speed: replay::Speed,
}

/// Send each message to every output in turn; a slow output makes this wait.
async fn fan_out(mut rx: mpsc::Receiver<Message>, outputs: Vec<mpsc::Sender<Message>>) {
    while let Some(msg) = rx.recv().await {
        if let Some((last, rest)) = outputs.split_last() {
            for out in rest {
                let _ = out.send(msg.clone()).await;
            }
            let _ = last.send(msg).await;
        }
    }
}
