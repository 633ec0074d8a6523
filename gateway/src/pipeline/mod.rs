//! The running gateway: sources → (bounded) → mapping threads → (bounded) → store →
//! outputs.
//!
//! Each source task frames its bytes and sends `Frame`s to its own mapping thread
//! (Rhai is CPU work; it runs on a plain thread, not on the async runtime). The
//! mapping thread sends messages, and dead letters for frames that failed, to the
//! feeder, which appends them to the store in batches; a message counts as taken
//! once the store has committed it. Each output reads the store in order. A full
//! channel makes the stage before it wait, back to the source. `replay --dry-run`
//! has no store: its messages go to a tap.

pub mod build;
pub mod discovery;
mod mapping;
mod radio;
pub mod reload;

pub use build::{build_mappers, MapperSet};
pub use mapping::{LastMapError, MapperSlot, MappingFiles, MappingStats};
pub use reload::{ReloadOutcome, ReloadStatus};

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::backoff::Backoff;
use crate::config::{Durability, GatewayConfig, SourceKind};
use crate::frame::Frame;
use crate::message::Message;
use crate::output::embedded::{self, OutputStats};
use crate::output::upstream::{self, UpstreamStatus};
use crate::source::{gwmp, modem, replay, serial, DeviceSide, Feed, SourceStatus};
use crate::store::Store;

/// Frames one source may have waiting for its mapping thread.
const FRAME_QUEUE: usize = 1024;
/// Messages waiting for the tap (`replay --dry-run`).
const MESSAGE_QUEUE: usize = 4096;
/// Batches of messages (one per wake-up of a mapping thread, at most
/// `mapping::BATCH_FRAMES` frames' worth) waiting for the store.
const BATCH_QUEUE: usize = 64;
/// Messages appended to the store in one go, at most.
const APPEND_BATCH: usize = 1024;

/// What the status page and the tests can read while the gateway runs.
#[derive(Debug)]
pub struct Running {
    /// `gateway.id` of the configuration.
    pub gateway_id: String,
    /// When `start` was called.
    pub started: std::time::Instant,
    pub sources: Vec<Arc<SourceStatus>>,
    pub mappings: Vec<Arc<MappingStats>>,
    /// Each running source's mapper, which a reload replaces.
    slots: HashMap<String, Arc<MapperSlot>>,
    /// The configuration the gateway runs with (mappings as last reloaded).
    config: GatewayConfig,
    /// Reloads so far and how the last one went.
    pub reloads: Arc<ReloadStatus>,
    pub embedded: Option<Arc<OutputStats>>,
    pub upstream: Option<Arc<UpstreamStatus>>,
    pub broker: Option<broker_lite::Broker>,
    pub store: Option<Store>,
    /// Each source's commands (those with a `commands:` section), in mapping order.
    pub commands: Vec<Arc<crate::downlink::CommandStats>>,
    /// The task that appends the mappings' messages to the store.
    feeder: Option<tokio::task::JoinHandle<()>>,
    /// The output tasks: they end once they have read everything after the input
    /// ended, or at shutdown.
    pub outputs: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Wait until the mappings' messages are all in the store, then until every
    /// output has handed over what it holds, then close the store. That happens
    /// once the sources have stopped (or a replay has played); at shutdown the
    /// upstream output stops early and what it did not send stays in the store.
    pub async fn outputs_finished(&mut self) {
        if let Some(feeder) = self.feeder.take() {
            let _ = feeder.await;
        }
        if let Some(store) = &self.store {
            store.finish_input();
        }
        for task in self.outputs.iter_mut() {
            let _ = task.await;
        }
        self.outputs.clear();
        if let Some(store) = &self.store {
            store.close().await;
        }
    }
}

/// Mappings whose script, library module, filter or topic does not compile: an
/// error in the configuration, one line per mapping.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct MappingErrors(pub Vec<String>);

/// The messages of a source's frames, mapped together.
#[derive(Debug)]
pub struct MessageBatch {
    /// The source's (when they reach the store file).
    pub durability: Durability,
    pub messages: Vec<Message>,
    /// Released once `messages` are stored (see [`crate::frame::Receipt`]).
    pub receipts: Vec<crate::frame::Receipt>,
}

impl MessageBatch {
    pub fn new(durability: Durability, messages: Vec<Message>) -> MessageBatch {
        MessageBatch {
            durability,
            messages,
            receipts: Vec::new(),
        }
    }

    /// Everything is stored: release the receipts.
    fn release(receipts: &mut Vec<crate::frame::Receipt>) {
        for r in receipts.drain(..) {
            r.release();
        }
    }
}

/// Messages a source sends to the store itself, past its mapping: a Modbus
/// device's availability, an MQTT source's unreadable events as dead letters.
#[derive(Debug, Clone)]
pub struct ToStore {
    pub tx: mpsc::Sender<MessageBatch>,
    pub gateway_id: String,
    /// The source's.
    pub durability: Durability,
}

/// What a source may need of the rest of the gateway.
#[derive(Debug, Clone, Default)]
pub(crate) struct Around {
    /// `gateway.id`: an MQTT source's default client id has it.
    pub gateway_id: String,
    pub to_store: Option<ToStore>,
    /// The embedded broker, when it runs.
    pub broker: Option<broker_lite::BrokerHandle>,
    /// What the upstream output published lately, when it runs.
    pub echoes: Option<Arc<crate::output::echoes::Echoes>>,
    /// The message store, when there is one (a Semtech source keeps its ABP
    /// devices' frame counters there).
    pub store: Option<Store>,
    /// The LoRaWAN device registry.
    pub devices: Vec<crate::config::DeviceConfig>,
    /// Where the gateway's own topics start (`mqgate/<id>/`, and with the
    /// upstream's `topic_prefix`): status, will, dead letters, results.
    pub own_topics: Vec<String>,
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
    let mappers = build_mappers(config).map_err(MappingErrors)?;
    let mut upstream_to_start = None;
    let (msg_tx, msg_rx) = mpsc::channel::<MessageBatch>(BATCH_QUEUE);
    let mut running = Running {
        gateway_id: config.gateway.id.clone(),
        started: std::time::Instant::now(),
        sources: Vec::new(),
        mappings: Vec::new(),
        slots: HashMap::new(),
        config: config.clone(),
        reloads: Arc::new(ReloadStatus::default()),
        embedded: None,
        upstream: None,
        broker: None,
        store: None,
        commands: Vec::new(),
        feeder: None,
        outputs: Vec::new(),
    };
    // Commands are taken only by a gateway that runs (not by `replay`), from the
    // embedded broker.
    let takes_commands = tap.is_none() && replay_override.is_none();
    if takes_commands {
        crate::downlink::check(config).map_err(MappingErrors)?;
    }
    let mut links = HashMap::new();
    let mut commands_upstream = None;
    let mut echoes = None;
    match tap {
        Some(tap) => {
            running.feeder = Some(tokio::spawn(pass_to_tap(msg_rx, tap)));
        }
        None if config.broker.is_none() && config.upstream.is_none() => {
            // Nowhere to publish: the mappings still run (and log their errors).
            let (tap, mut rx) = mpsc::channel::<Message>(MESSAGE_QUEUE);
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            running.feeder = Some(tokio::spawn(pass_to_tap(msg_rx, tap)));
        }
        None => {
            let mut names = Vec::new();
            if config.broker.is_some() {
                names.push("embedded");
            }
            if config.upstream.is_some() {
                names.push("upstream");
            }
            // Opening checks the whole file (and a big backlog takes a while to
            // count): off the async runtime.
            let store_config = config.store.clone();
            let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let store = tokio::task::spawn_blocking(move || {
                let names: Vec<&str> = owned.iter().map(String::as_str).collect();
                Store::open(&store_config, &names)
            })
            .await
            .context("opening the message store")??;
            if let Some(broker_config) = &config.broker {
                let broker = broker_lite::Broker::start(broker_config.clone())
                    .await
                    .with_context(|| format!("embedded broker on {}", broker_config.listen))?;
                let stats = Arc::new(OutputStats::default());
                let queue = store.output("embedded").expect("registered above");
                let task = tokio::spawn(embedded::run(broker.handle(), queue, stats.clone()));
                running.outputs.push(task);
                running.embedded = Some(stats);
                running.broker = Some(broker);
            }
            if let Some(up) = &config.upstream {
                // Connected last, once every port is bound (below).
                let mut settings = build::upstream_settings(config, up)?;
                // What the output publishes is noted where something subscribes
                // on a broker (commands, an MQTT source) and must not take it back.
                let takes_upstream_commands =
                    takes_commands && crate::downlink::from_upstream(config);
                let mqtt_sources = config.sources.iter().any(|s| {
                    matches!(&s.kind, SourceKind::Mqtt(m) if m.broker != crate::config::MqttBroker::Embedded)
                });
                if takes_upstream_commands || mqtt_sources {
                    let noted = Arc::new(crate::output::echoes::Echoes::default());
                    settings.echoes = Some(noted.clone());
                    echoes = Some(noted.clone());
                    if takes_upstream_commands {
                        commands_upstream = Some((settings.clone(), noted));
                    }
                }
                let status = Arc::new(UpstreamStatus::default());
                let queue = store.output("upstream").expect("registered above");
                running.upstream = Some(status.clone());
                upstream_to_start = Some((settings, queue, status));
            }
            // Home Assistant discovery (and `online` for its availability) first.
            let discovery = discovery::messages(config);
            if !discovery.is_empty() {
                store
                    .append(discovery)
                    .await
                    .context("Home Assistant discovery messages")?;
            }
            running.feeder = Some(tokio::spawn(feed_store(msg_rx, store.clone())));
            running.store = Some(store);
        }
    }
    for source in &config.sources {
        if only_source.is_some_and(|id| id != source.id) {
            continue;
        }
        let status = Arc::new(SourceStatus::new(&source.id));
        let (frame_tx, frame_rx) = mpsc::channel::<Frame>(FRAME_QUEUE);
        let mapper = mappers
            .get(&source.id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no mapper for source {}", source.id))?;
        let slot = Arc::new(RwLock::new(mapper));
        let stats = Arc::new(MappingStats::new(
            &source.id,
            build::files_of(config, &source.id),
        ));
        let devices = match build::takes_devices(source) {
            true => build::device_mappers(config, &source.id).map_err(MappingErrors)?,
            false => Default::default(),
        };
        mapping::spawn(
            status.clone(),
            mapping::SourceMappers {
                slot: slot.clone(),
                devices,
            },
            stats.clone(),
            &config.gateway.id,
            frame_rx,
            source.durability.unwrap_or(config.store.durability),
            msg_tx.clone(),
        )?;
        running.slots.insert(source.id.clone(), slot);
        running.mappings.push(stats);
        let has_commands = config
            .mappings
            .iter()
            .any(|m| m.source == source.id && m.commands.is_some());
        let device = if takes_commands && has_commands {
            let (link, device) = crate::source::link();
            links.insert(source.id.clone(), link);
            device
        } else {
            DeviceSide::none()
        };
        let around = Around {
            gateway_id: config.gateway.id.clone(),
            to_store: Some(ToStore {
                tx: msg_tx.clone(),
                gateway_id: config.gateway.id.clone(),
                durability: source.durability.unwrap_or(config.store.durability),
            }),
            broker: running.broker.as_ref().map(|b| b.handle()),
            echoes: echoes.clone(),
            own_topics: own_topics(config),
            store: running.store.clone(),
            devices: config.devices.clone(),
        };
        spawn_source(
            source,
            replay_override.as_ref(),
            frame_tx,
            status.clone(),
            device,
            around,
            shutdown.clone(),
        )
        .await?;
        running.sources.push(status);
    }
    if !links.is_empty() {
        let broker = running.broker.as_ref().map(|b| b.handle());
        running.commands = crate::downlink::start(
            config,
            broker.as_ref(),
            commands_upstream,
            links,
            msg_tx.clone(),
            shutdown.clone(),
        )
        .await?;
    }
    // Everything that can fail to start has started: only now connect upstream, so
    // that a gateway that cannot start never kicks a running one off the broker.
    if let Some((settings, queue, status)) = upstream_to_start {
        let task = tokio::spawn(upstream::run(settings, queue, status, shutdown.clone()));
        running.outputs.push(task);
    }
    match (only_source, running.sources.is_empty()) {
        (Some(id), false) => info!("replaying a capture through source {id}"),
        _ => info!(
            sources = running.sources.len(),
            "gateway {} running", config.gateway.id
        ),
    }
    Ok(running)
}

/// Start the task of one source: its frames go to `frame_tx`, commands come through
/// `device`; `over` replays a capture instead of the source's own input.
pub(crate) async fn spawn_source(
    source: &crate::config::SourceConfig,
    over: Option<&ReplayOverride>,
    frame_tx: mpsc::Sender<Frame>,
    status: Arc<SourceStatus>,
    device: DeviceSide,
    around: Around,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let feed = |port: Option<String>| {
        Feed::new(
            &source.id,
            source.framing.build(),
            status.clone(),
            frame_tx.clone(),
            port,
        )
    };
    match (&source.kind, over) {
        (SourceKind::Rn2483(_) | SourceKind::Rak3172(_), over) => {
            let sink = modem::engine::Sink {
                source: Arc::from(source.id.as_str()),
                tx: frame_tx.clone(),
                status: status.clone(),
            };
            radio::spawn(source, over, sink, device, shutdown.clone())?;
        }
        (_, Some(over)) => {
            let f = feed(None);
            tokio::spawn(replay::run(
                over.chunks.clone(),
                over.speed,
                false,
                f,
                replay::CommandSink::none(),
                status.clone(),
                shutdown.clone(),
            ));
        }
        (SourceKind::Serial(s), None) => {
            let settings = build::serial_settings(s);
            let f = feed(Some(s.path.clone()));
            let writer =
                serial::Writer::new(source.framing.clone(), device).polling(build::poll_queries(s));
            tokio::spawn(serial::run(
                settings,
                f,
                writer,
                status.clone(),
                shutdown.clone(),
            ));
        }
        (SourceKind::SemtechUdp(u), None) => {
            let socket = gwmp::bind(u.listen)
                .await
                .with_context(|| format!("source {}", source.id))?;
            let abp = gwmp::Abp::new(&source.id, &around.devices, around.store).await;
            if let Some(abp) = &abp {
                status.set_abp(abp.stats());
            }
            let out = gwmp::Out {
                source: Arc::from(source.id.as_str()),
                tx: frame_tx.clone(),
                status: status.clone(),
            };
            tokio::spawn(gwmp::run(
                socket,
                out,
                device,
                gwmp::Settings::of(u),
                abp,
                shutdown.clone(),
            ));
        }
        (SourceKind::Modbus(m), None) => {
            let mut poller = crate::modbus::Poller::new(&source.id, m, frame_tx.clone());
            if let Some(announce) = around.to_store {
                poller.announce(announce);
            }
            status.set_modbus(poller.stats());
            tokio::spawn(poller.run(device, status.clone(), shutdown.clone()));
        }
        (SourceKind::Mqtt(m), None) => {
            let intake = crate::source::mqtt::Intake::new(
                &source.id,
                m.format,
                m.other_events,
                frame_tx.clone(),
                around.to_store,
                status.clone(),
            );
            let filters: Vec<(String, mqtt_proto::codec::QoS)> =
                m.topics.iter().map(|t| (t.clone(), m.qos)).collect();
            match &m.broker {
                crate::config::MqttBroker::Embedded => {
                    let broker = around.broker.with_context(|| {
                        format!(
                            "source {}: `broker: embedded`, but the embedded broker is not running",
                            source.id
                        )
                    })?;
                    tokio::spawn(crate::source::mqtt::run_embedded(
                        broker,
                        filters,
                        intake,
                        shutdown.clone(),
                    ));
                }
                crate::config::MqttBroker::External(up) => {
                    let settings = crate::source::mqtt::External {
                        client: build::client_options(std::path::Path::new(""), up, || {
                            format!("mqgate-{}-{}", around.gateway_id, source.id)
                        })
                        .with_context(|| format!("source {}", source.id))?,
                        filters,
                        reconnect_initial: std::time::Duration::from_millis(
                            up.reconnect.initial_ms,
                        ),
                        reconnect_max: std::time::Duration::from_millis(up.reconnect.max_ms),
                        echoes: around.echoes,
                        own_topics: around.own_topics,
                    };
                    tokio::spawn(crate::source::mqtt::run_external(
                        settings,
                        intake,
                        device,
                        shutdown.clone(),
                    ));
                }
            }
        }
        (SourceKind::Replay(r), None) => {
            // The configuration has resolved the path already.
            let chunks = build::load_chunks(&r.file)?;
            let f = feed(None);
            let sink =
                replay::CommandSink::new(r.commands_to.clone(), source.framing.clone(), device);
            tokio::spawn(replay::run(
                chunks,
                r.playback(),
                r.looping,
                f,
                sink,
                status.clone(),
                shutdown.clone(),
            ));
        }
    }
    Ok(())
}

/// The starts of the topics that are the gateway's own, on the embedded broker
/// and upstream.
fn own_topics(config: &GatewayConfig) -> Vec<String> {
    let own = format!("mqgate/{}/", config.gateway.id);
    let mut starts = vec![own.clone()];
    if let Some(up) = config
        .upstream
        .as_ref()
        .filter(|u| !u.topic_prefix.is_empty())
    {
        starts.push(format!("{}{own}", up.topic_prefix));
    }
    starts
}

/// A capture to play instead of a source's own input (`mqgate replay`).
#[derive(Debug, Clone)]
pub struct ReplayOverride {
    pub chunks: Arc<[replay::Chunk]>,
    pub speed: replay::Speed,
}

/// `replay --dry-run`: every message to the tap, in order.
async fn pass_to_tap(mut rx: mpsc::Receiver<MessageBatch>, tap: Tap) {
    while let Some(mut batch) = rx.recv().await {
        for msg in batch.messages {
            if tap.send(msg).await.is_err() {
                return;
            }
        }
        MessageBatch::release(&mut batch.receipts);
    }
}

/// Append the mappings' messages to the store in batches; a batch the store could
/// not commit (a full disk...) is tried again with back-off, while the pipeline
/// behind waits: nothing is dropped here.
async fn feed_store(mut rx: mpsc::Receiver<MessageBatch>, store: Store) {
    let mut batches = Vec::with_capacity(APPEND_BATCH);
    let mut batch: Vec<Arc<Message>> = Vec::with_capacity(APPEND_BATCH);
    let mut receipts = Vec::new();
    let mut backoff = Backoff::new(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(10),
    );
    while rx.recv_many(&mut batches, BATCH_QUEUE).await > 0 {
        let mut from = batches.drain(..).peekable();
        // One append per run of batches of the same durability, in order.
        while let Some(first) = from.next() {
            let durability = first.durability;
            batch.extend(first.messages.into_iter().map(Arc::new));
            receipts.extend(first.receipts);
            while let Some(next) = from.next_if(|b| b.durability == durability) {
                batch.extend(next.messages.into_iter().map(Arc::new));
                receipts.extend(next.receipts);
            }
            loop {
                match store.append_shared(batch.clone(), durability).await {
                    Ok(_) => {
                        backoff.reset();
                        MessageBatch::release(&mut receipts);
                        break;
                    }
                    Err(crate::store::StoreError::Closed) => return,
                    Err(e) => {
                        tracing::error!("{e}; trying again");
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
            }
            batch.clear();
        }
    }
}
