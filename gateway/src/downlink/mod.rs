//! The way down: MQTT messages on a mapping's `commands:` filter become bytes for
//! its source's device.
//!
//! ```text
//!  embedded broker ── in-process subscription (no_local: never the gateway's own
//!        │             messages; no retained messages: a command is an event)
//!        │   upstream broker ── a subscriber connection of its own (upstream.rs);
//!        │         │             what the upstream output published is skipped
//!        ├─────────┘             (output/echoes.rs), acknowledged once queued
//!        ▼             results of its own commands skipped (result.rs)
//!  [inbox: mpsc, 64 per source]
//!        ▼
//!  worker task per source (worker.rs): encode(command) with the script → queue
//!        │  (max_queued, expire_after, max_per_minute: queue.rs) → one at a time
//!        ▼
//!  [link: mpsc, 1] ─► the source's task writes it (serial: framing in reverse,
//!        │             drained; semtech_udp: PULL_RESP to a gateway, its TX_ACK;
//!        │             modems: transmitted over the air; radios within the
//!        │             duty-cycle budget) and answers Sent / Failed / NotReady /
//!        │             Rejected
//!        ▼
//!  one result per command (QoS 1, on result_topic) and dead letters for scripts
//!  that failed ─► the pipeline's message channel ─► store ─► outputs
//! ```

pub mod durable;
mod queue;
mod result;
mod stats;
mod upstream;
mod worker;

pub use queue::{Full, Queue, RateLimit};
pub use result::{body as result_body, correlation, Outcome, ResultTopic, Status};
pub use stats::{CommandStats, RecentResult, RECENT_RESULTS};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use broker_lite::{BrokerHandle, SubscribeOptions, Subscription};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

use crate::config::{CommandFrom, CommandsConfig, GatewayConfig, MappingFile, SourceKind};
use crate::mapping::Encoder;
use crate::message::Command;
use crate::output::echoes::Echoes;
use crate::output::upstream::UpstreamSettings;
use crate::pipeline::MessageBatch;
use crate::source::CommandLink;
use worker::{Incoming, Worker};

/// Commands one source's worker may have waiting to be encoded and queued.
const INBOX: usize = 64;

/// The source kinds that take commands today (an MQTT source: as downlinks
/// through the network server it reads).
pub fn takes_commands(kind: &SourceKind) -> bool {
    matches!(
        kind,
        SourceKind::Serial(_)
            | SourceKind::Replay(_)
            | SourceKind::SemtechUdp(_)
            | SourceKind::Rn2483(_)
            | SourceKind::Rak3172(_)
            | SourceKind::Modbus(_)
    ) || matches!(
        kind,
        SourceKind::Mqtt(m) if matches!(m.format, crate::config::PayloadFormat::NetworkServer(_))
            && m.broker != crate::config::MqttBroker::Embedded
    )
}

/// The mappings with a `commands:` section, with their source's kind checked
/// against what takes commands and the brokers against what is configured: one
/// line per problem, naming the mapping file.
pub fn check(config: &GatewayConfig) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for m in &config.mappings {
        let Some(c) = &m.commands else { continue };
        let Some(source) = config.sources.iter().find(|s| s.id == m.source) else {
            continue;
        };
        let file = m.path.display();
        if !takes_commands(&source.kind) {
            problems.push(format!(
                "{file}: commands: source `{}` is of a type that does not take commands",
                m.source
            ));
        }
        let embedded = c.from.embedded() && config.broker.is_some();
        let upstream = c.from.upstream() && config.upstream.is_some();
        if !embedded && !upstream {
            let wanted = match c.from {
                CommandFrom::Embedded => "the embedded broker (`broker:`)",
                CommandFrom::Upstream => "the upstream broker (`upstream:`)",
                CommandFrom::Both => "a broker (`broker:` or `upstream:`)",
            };
            problems.push(format!(
                "{file}: commands.from: commands are taken from {wanted}, and there is none"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The encoder of a mapping's commands: the `commands.script`, else the mapping's
/// own script when it defines `encode(command)`, else the payload as it is. Errors
/// name the file (and line).
pub fn encoder(m: &MappingFile, c: &CommandsConfig) -> Result<Encoder, String> {
    // A mapping's JavaScript codec encodes with its `encodeDownlink`, if it has one.
    if let (None, Some(path)) = (&c.script, &m.script) {
        if crate::mapping::js::is_codec(path) {
            let text = read(path)?;
            let limits = crate::pipeline::build::script_limits(m);
            let options = m.codec_options();
            let codec = crate::mapping::js::JsCodec::load(
                path,
                &text,
                &options.libraries,
                options.limits(limits.max_call_time),
            )
            .map_err(|e| e.to_string())?;
            return Ok(match codec.encodes() {
                true => Encoder::from_codec(codec, limits),
                false => Encoder::plain(),
            });
        }
    }
    let script = match (&c.script, &m.script) {
        (Some(path), _) => Some((path.clone(), read(path)?)),
        (None, Some(path)) => {
            let text = read(path)?;
            Encoder::script_defines_encode(&text).then(|| (path.clone(), text))
        }
        (None, None) => None,
    };
    match script {
        None => Ok(Encoder::plain()),
        Some((path, text)) => {
            let limits = crate::pipeline::build::script_limits(m);
            Encoder::new(&m.source, &path, &text, limits).map_err(|e| e.to_string())
        }
    }
}

fn read(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

/// A command filter with `{source}` and `{gateway}` filled in.
pub fn filter_of(c: &CommandsConfig, source: &str, gateway: &str) -> String {
    c.topic
        .replace("{source}", source)
        .replace("{gateway}", gateway)
}

/// Whether some mapping takes commands from the upstream broker (and there is one).
pub fn from_upstream(config: &GatewayConfig) -> bool {
    config.upstream.is_some()
        && config
            .mappings
            .iter()
            .any(|m| m.commands.as_ref().is_some_and(|c| c.from.upstream()))
}

/// Start taking commands for every source in `links`: subscribe on the embedded
/// broker and the upstream one as each mapping says, and start each source's
/// worker. Results go to `results`. `upstream`: its settings and the output's
/// record of what it published.
pub(crate) async fn start(
    config: &GatewayConfig,
    broker: Option<&BrokerHandle>,
    upstream: Option<(UpstreamSettings, Arc<Echoes>)>,
    links: HashMap<String, CommandLink>,
    results: mpsc::Sender<MessageBatch>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Vec<Arc<CommandStats>>> {
    let mut all = Vec::new();
    let mut routes = Vec::new();
    let wants_durable = config
        .mappings
        .iter()
        .any(|m| m.commands.as_ref().is_some_and(|c| c.durable));
    let durable = if wants_durable {
        let dir = config.gateway.state_dir.clone();
        let opened = tokio::task::spawn_blocking(move || durable::Durable::open(&dir))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Some(opened.map_err(|e| anyhow::anyhow!("commands kept across restarts: {e}"))?)
    } else {
        None
    };
    for m in &config.mappings {
        let (Some(c), Some(link)) = (&m.commands, links.get(&m.source)) else {
            continue;
        };
        let source = m.source.as_str();
        let gateway = config.gateway.id.as_str();
        let encoder = encoder(m, c).map_err(|e| anyhow::anyhow!("{e}"))?;
        let filter = filter_of(c, source, gateway);
        let result_topic = ResultTopic::new(&c.result_topic, source, gateway);
        let stats = Arc::new(CommandStats::new(source, &filter));
        let durability = config
            .sources
            .iter()
            .find(|s| s.id == m.source)
            .and_then(|s| s.durability)
            .unwrap_or(config.store.durability);
        let worker = Worker {
            source: Arc::from(source),
            gateway_id: gateway.to_string(),
            encoder: Arc::new(encoder),
            result_topic: result_topic.clone(),
            max_queued: c.max_queued,
            expire_after: c.expire_after,
            max_per_minute: c.max_per_minute,
            send_timeout: Duration::from_millis(c.send_timeout_ms),
            durability,
            link: link.clone(),
            results: results.clone(),
            stats: stats.clone(),
            durable: durable.clone().filter(|_| c.durable),
        };
        let (inbox_tx, inbox) = mpsc::channel(INBOX);
        if let Some(broker) = broker.filter(|_| c.from.embedded()) {
            let options = SubscribeOptions {
                no_local: true,
                retained: false,
            };
            let subscription = broker
                .subscribe_with(&filter, c.qos, options)
                .await
                .with_context(|| format!("{}: commands.topic {filter:?}", m.path.display()))?;
            tokio::spawn(take_commands(
                subscription,
                Arc::from(source),
                filter.clone(),
                result_topic.clone(),
                inbox_tx.clone(),
                shutdown.clone(),
            ));
            info!(source, filter = %filter, "taking commands from the embedded broker");
        }
        if upstream.is_some() && c.from.upstream() {
            routes.push(upstream::Route {
                source: Arc::from(source),
                filter: filter.clone(),
                qos: c.qos,
                results: result_topic,
                inbox: inbox_tx,
            });
        }
        tokio::spawn(worker.run(inbox, shutdown.clone()));
        all.push(stats);
    }
    if let Some((settings, echoes)) = upstream.filter(|_| !routes.is_empty()) {
        tokio::spawn(upstream::run(settings, routes, echoes, shutdown));
    }
    Ok(all)
}

/// Pass the subscription's messages to the source's worker, but never the results
/// of its own commands.
async fn take_commands(
    mut subscription: Subscription,
    source: Arc<str>,
    filter: String,
    results: ResultTopic,
    inbox: mpsc::Sender<Incoming>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let msg = tokio::select! {
            msg = subscription.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
            _ = shutdown.changed() => break,
        };
        if results.is_result_of(&msg.topic, &filter) {
            debug!(source = %source, topic = %msg.topic, "a command result is not a command");
            continue;
        }
        let incoming = Incoming {
            command: Command {
                topic: msg.topic.clone(),
                payload: msg.payload.clone(),
                qos: msg.qos,
                retain: msg.retain,
                source: source.clone(),
            },
            arrived: tokio::time::Instant::now(),
            taken: None,
        };
        if inbox.send(incoming).await.is_err() {
            break;
        }
    }
}
