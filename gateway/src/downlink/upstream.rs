//! Commands from the upstream broker: one subscriber connection of its own
//! (client id `<upstream client id>-commands`, clean session), with the
//! upstream's address, TLS and credentials. A command is acknowledged to the
//! broker (PUBACK, or PUBREC then PUBCOMP) only once its source's worker has
//! queued or answered it. `topic_prefix` is put in front of the filters and taken
//! off the topics, so results and filters read as on the embedded broker.

use std::collections::HashSet;
use std::sync::Arc;

use mqtt_proto::codec::QoS;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::result::ResultTopic;
use super::worker::Incoming;
use crate::backoff::Backoff;
use crate::message::Command;
use crate::output::client::{ClientOptions, Connection, Event};
use crate::output::echoes::Echoes;
use crate::output::upstream::UpstreamSettings;

/// One source's commands on the upstream broker.
pub(crate) struct Route {
    pub source: Arc<str>,
    pub filter: String,
    pub qos: QoS,
    pub results: ResultTopic,
    pub inbox: mpsc::Sender<Incoming>,
}

/// Subscribe to every route's filter and pass what comes to its source, until
/// shutdown; reconnect with back-off.
pub(crate) async fn run(
    settings: UpstreamSettings,
    routes: Vec<Route>,
    echoes: Arc<Echoes>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut client: ClientOptions = settings.client.clone();
    client.client_id = format!("{}-commands", settings.client.client_id);
    client.clean_session = true;
    client.will = None;
    let prefix = settings.topic_prefix.clone();
    let mut backoff = Backoff::new(settings.reconnect_initial, settings.reconnect_max);
    loop {
        let ended = tokio::select! {
            r = session(&client, &prefix, &routes, &echoes, &mut backoff) => r,
            _ = shutdown.changed() => return,
        };
        warn!("commands from the upstream broker: {ended}; connecting again");
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One connection: subscribe, then take commands until it fails.
async fn session(
    client: &ClientOptions,
    prefix: &str,
    routes: &[Route],
    echoes: &Echoes,
    backoff: &mut Backoff,
) -> String {
    let mut conn = match Connection::connect(client).await {
        Ok((conn, _)) => conn.subscriber(),
        Err(e) => return e.to_string(),
    };
    let filters: Vec<(String, QoS)> = routes
        .iter()
        .map(|r| (format!("{prefix}{}", r.filter), r.qos))
        .collect();
    conn.subscribe(1, filters.clone());
    // QoS 2 messages received and not yet released: a resend of one is not a
    // second command.
    let mut unreleased: HashSet<u16> = HashSet::new();
    loop {
        let event = match conn.next_event().await {
            Ok(e) => e,
            Err(e) => return e.to_string(),
        };
        match event {
            Event::SubAck(ack) => {
                backoff.reset();
                for ((filter, _), code) in filters.iter().zip(&ack.return_codes) {
                    match code {
                        mqtt_proto::codec::SubscribeReturnCode::Failure => warn!(
                            filter = %filter,
                            "the upstream broker refused the command subscription (its ACL?)"
                        ),
                        _ => info!(filter = %filter, "taking commands from the upstream broker"),
                    }
                }
            }
            Event::Publish(p) => {
                let first = p.qos != QoS::ExactlyOnce || unreleased.insert(p.pkid);
                if first {
                    if echoes.is_echo(&p.topic, &p.payload) {
                        debug!(topic = %p.topic, "a message the gateway published is not a command");
                    } else if let Some(topic) = p.topic.strip_prefix(prefix) {
                        pass_on(routes, topic, &p.payload, p.qos, p.retain).await;
                    }
                }
                match p.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => conn.puback(p.pkid),
                    QoS::ExactlyOnce => conn.pubrec(p.pkid),
                }
            }
            Event::PubRel(pkid) => {
                unreleased.remove(&pkid);
                conn.pubcomp(pkid);
            }
            // This connection publishes nothing.
            Event::Ack(_) => {}
        }
    }
}

/// Hand a message to every source whose filter takes it, and wait until each has
/// queued (or answered) it.
async fn pass_on(routes: &[Route], topic: &str, payload: &bytes::Bytes, qos: QoS, retain: bool) {
    if retain {
        // A command is an event: a retained one would run again at every start.
        debug!(topic, "a retained message is not taken as a command");
        return;
    }
    for r in routes {
        if !mqtt_proto::topic::matches(&r.filter, topic) || r.results.is_result_of(topic, &r.filter)
        {
            continue;
        }
        let (taken, queued) = oneshot::channel();
        let incoming = Incoming {
            command: Command {
                topic: Arc::from(topic),
                payload: payload.clone(),
                qos,
                retain,
                source: r.source.clone(),
            },
            arrived: tokio::time::Instant::now(),
            taken: Some(taken),
        };
        if r.inbox.send(incoming).await.is_ok() {
            let _ = queued.await;
        }
    }
}
