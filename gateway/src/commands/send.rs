//! `mqgate send --config FILE --source ID (--hex H | --text T | --json J)
//! [--topic T]`: run one command through the source's `encode` script and its
//! transport (the device itself: the port must not be in use by a running
//! gateway), and print its result as the gateway would publish it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use super::encode::Payload;
use super::{load_config, EXIT_CONFIG};
use crate::downlink::{correlation, result_body, Outcome, Status};
use crate::mapping::Encoded;
use crate::source::{SourceState, SourceStatus, TxOutcome, TxRequest};

#[derive(Debug)]
pub struct SendArgs<'a> {
    pub config: &'a Path,
    pub source: &'a str,
    pub payload: &'a Payload,
    pub topic: Option<&'a str>,
}

/// Exit 0 when the command was sent, 1 when it was not, 2 for a bad configuration
/// or argument.
pub async fn run(args: &SendArgs<'_>) -> u8 {
    let config = match load_config(args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(source) = config.sources.iter().find(|s| s.id == args.source) else {
        let known: Vec<&str> = config.sources.iter().map(|s| s.id.as_str()).collect();
        eprintln!(
            "mqgate: no source `{}` in {} (configured: {})",
            args.source,
            args.config.display(),
            known.join(", ")
        );
        return EXIT_CONFIG;
    };
    let Some((mapping, commands)) = config
        .mappings
        .iter()
        .find(|m| m.source == source.id)
        .and_then(|m| m.commands.as_ref().map(|c| (m, c)))
    else {
        eprintln!(
            "mqgate: source `{}` takes no commands: its mapping file has no `commands:` section",
            source.id
        );
        return EXIT_CONFIG;
    };
    if !crate::downlink::takes_commands(&source.kind) {
        eprintln!(
            "mqgate: source `{}` is of type {}, which does not take commands yet",
            source.id,
            source.kind.type_name()
        );
        return EXIT_CONFIG;
    }
    let encoder = match crate::downlink::encoder(mapping, commands) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    let command = match super::encode::command(args.payload, args.topic, &source.id) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let arrived = Instant::now();
    let limit = Duration::from_millis(commands.send_timeout_ms);
    let (status, error) = match encoder.encode(&command) {
        Encoded::Dropped => (Status::Dropped, None),
        Encoded::Failed(e) => (Status::Failed, Some(e.to_string())),
        Encoded::Send(parts) => {
            let (stop, shutdown) = watch::channel(false);
            let outcome = transmit(source, parts, limit, shutdown).await;
            let _ = stop.send(true);
            outcome
        }
    };
    let outcome = Outcome {
        status,
        error,
        queued_ms: arrived.elapsed().as_millis() as u64,
        sent_at: (status == Status::Sent).then(SystemTime::now),
    };
    let corr = correlation(&command.payload);
    println!(
        "{}",
        result_body(&command.topic, &source.id, &outcome, corr.as_ref())
    );
    if status == Status::Sent {
        0
    } else {
        1
    }
}

/// Start the source's transport on its own, wait (up to `limit`) for its device,
/// and hand it the parts.
async fn transmit(
    source: &crate::config::SourceConfig,
    parts: Vec<crate::message::Part>,
    limit: Duration,
    shutdown: watch::Receiver<bool>,
) -> (Status, Option<String>) {
    let status = Arc::new(SourceStatus::new(&source.id));
    // What the device says meanwhile is read and let go.
    let (frame_tx, mut frames) = mpsc::channel(64);
    tokio::spawn(async move { while frames.recv().await.is_some() {} });
    let (link, device) = crate::source::link();
    if let Err(e) = crate::pipeline::spawn_source(
        source,
        None,
        frame_tx,
        status.clone(),
        device,
        Default::default(),
        shutdown,
    )
    .await
    {
        return (Status::Failed, Some(format!("{e:#}")));
    }
    let deadline = tokio::time::Instant::now() + limit;
    let mut ready = link.ready.clone();
    let waited = tokio::time::timeout_at(deadline, ready.wait_for(|r| *r)).await;
    if !matches!(waited, Ok(Ok(_))) {
        let why = match status.state() {
            SourceState::Waiting { last_error, .. } => last_error,
            other => format!("{other:?}"),
        };
        return (
            Status::Failed,
            Some(format!(
                "source {}: the device was not ready within {} ms: {why}",
                source.id,
                limit.as_millis()
            )),
        );
    }
    let (reply, answer) = oneshot::channel();
    if link.tx.send(TxRequest { parts, reply }).await.is_err() {
        return (
            Status::Failed,
            Some(format!("source {}: its transport stopped", source.id)),
        );
    }
    match tokio::time::timeout_at(deadline, answer).await {
        Ok(Ok(TxOutcome::Sent)) => (Status::Sent, None),
        Ok(Ok(TxOutcome::Rejected(why))) => (Status::Rejected, Some(why)),
        Ok(Ok(TxOutcome::Failed(why) | TxOutcome::NotReady(why))) => (Status::Failed, Some(why)),
        Ok(Err(_)) => (
            Status::Failed,
            Some(format!("source {}: its transport stopped", source.id)),
        ),
        Err(_) => (
            Status::Failed,
            Some(format!(
                "source {}: the device did not confirm within {} ms",
                source.id,
                limit.as_millis()
            )),
        ),
    }
}
