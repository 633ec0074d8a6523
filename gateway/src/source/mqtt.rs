//! `type: mqtt`: the messages of topic filters on a broker, each a frame.
//!
//! On another broker the source is a client of its own (the `upstream:` client
//! code, a persistent session unless `clean_session` says otherwise). A QoS 1
//! message is acknowledged (PUBACK), a QoS 2 one received (PUBREC), only once the
//! messages mapped from it are in the store: a `kill -9` before that leaves it
//! with the broker, which sends it again. Acknowledgements go in the order the
//! messages came, as MQTT asks. A message the gateway's upstream output published
//! itself is skipped (told by its fingerprint, as the commands do), and so is
//! anything on the gateway's own topics (`mqgate/<id>/...`: its status, will and
//! dead letters, also retained ones from an earlier run), so that a `#` filter
//! on the upstream broker makes no loop.
//!
//! On the embedded broker it subscribes inside the process with "no local": what
//! the gateway publishes there is never taken back.
//!
//! With `format: ttn_v3` or `chirpstack_v4`, a network server's uplink event
//! becomes a frame of its application payload, with what the server says about it
//! as meta ([`super::netserver`]); its other events are counted, and dropped or
//! passed on as JSON. An event that cannot be read is counted as a bad frame and
//! goes to the dead-letter topic whole.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use mqtt_proto::codec::{QoS, SubscribeReturnCode};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use super::link::{DeviceSide, TxOutcome, TxRequest};
use super::netserver::DownlinkNews;
use super::netserver::{self, Event};
use super::{SourceState, SourceStatus};
use crate::backoff::Backoff;
use crate::config::{OtherEvents, PayloadFormat};
use crate::frame::{Frame, Meta, Receipt};
use crate::mapping::{dead_letter, MapError};
use crate::output::client::{ClientOptions, Connection, Event as ClientEvent};
use crate::output::echoes::Echoes;
use crate::pipeline::{MessageBatch, ToStore};

/// Messages taken from the broker whose frames are not stored yet, at most; past
/// it the source stops reading until the oldest is stored.
const MAX_UNSTORED: usize = 1024;

/// What the source counts, for the status page.
#[derive(Debug, Default)]
pub struct MqttStats {
    /// Messages received (echoes and duplicates included).
    pub messages: AtomicU64,
    /// Network-server uplinks made frames.
    pub uplinks: AtomicU64,
    /// Messages the gateway had published itself, skipped.
    pub echoes: AtomicU64,
    /// Events that could not be read (they went to the dead-letter topic).
    pub malformed: AtomicU64,
    /// A network server's other events, by kind.
    events: Mutex<BTreeMap<String, u64>>,
}

/// [`MqttStats`] as the status API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttSnapshot {
    pub messages: u64,
    pub uplinks: u64,
    pub echoes: u64,
    pub malformed: u64,
    /// Events other than uplinks, by kind (`join`, `downlink_ack`, `status`...).
    pub events: BTreeMap<String, u64>,
}

/// Kinds of events counted apart, at most: ChirpStack names the kind in the
/// topic, which whoever can publish there chooses. The rest count as `other`.
const MAX_EVENT_KINDS: usize = 32;

impl MqttStats {
    fn event(&self, kind: &str) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let kind = if events.contains_key(kind) || events.len() < MAX_EVENT_KINDS {
            kind
        } else {
            "other"
        };
        *events.entry(kind.to_string()).or_default() += 1;
    }

    pub fn snapshot(&self) -> MqttSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MqttSnapshot {
            messages: get(&self.messages),
            uplinks: get(&self.uplinks),
            echoes: get(&self.echoes),
            malformed: get(&self.malformed),
            events: self
                .events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// Turns the messages of one source into frames.
#[derive(Debug)]
pub struct Intake {
    source: Arc<str>,
    format: PayloadFormat,
    other_events: OtherEvents,
    frames: mpsc::Sender<Frame>,
    rejects: Option<ToStore>,
    status: Arc<SourceStatus>,
    stats: Arc<MqttStats>,
    /// Where each device heard lately takes downlinks (application and device
    /// levels of its uplink topic), by device name and by DevEUI.
    heard: Mutex<HashMap<String, (String, String)>>,
}

/// Devices whose downlink address is remembered, at most (then it starts over).
const MAX_HEARD: usize = 10_000;

/// The pipeline behind the source has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl Intake {
    pub fn new(
        source: &str,
        format: PayloadFormat,
        other_events: OtherEvents,
        frames: mpsc::Sender<Frame>,
        rejects: Option<ToStore>,
        status: Arc<SourceStatus>,
    ) -> Intake {
        let stats = Arc::new(MqttStats::default());
        status.set_mqtt(stats.clone());
        Intake {
            source: Arc::from(source),
            format,
            other_events,
            frames,
            rejects,
            status,
            stats,
            heard: Mutex::new(HashMap::new()),
        }
    }

    /// Where `device` (a name or a DevEUI) takes downlinks, from its last uplink.
    fn downlink_address(&self, device: &str) -> Option<(String, String)> {
        let heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        heard
            .get(device)
            .or_else(|| heard.get(&device.to_ascii_uppercase()))
            .cloned()
    }

    fn remember(&self, format: netserver::Format, topic: &str, up: &netserver::Uplink) {
        let Some(address) = netserver::downlink_address(format, topic) else {
            return;
        };
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        if heard.len() >= MAX_HEARD {
            heard.clear();
        }
        for key in [&up.device, &up.dev_eui].into_iter().flatten() {
            heard.insert(key.clone(), address.clone());
        }
    }

    pub fn stats(&self) -> &Arc<MqttStats> {
        &self.stats
    }

    /// Make a message a frame (or none) and send it on. What is returned
    /// resolves once the frame's messages are stored, or at once when there is
    /// nothing to store; it fails if the gateway stopped first.
    pub async fn take(
        &self,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
    ) -> Result<oneshot::Receiver<()>, Stopped> {
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        let (receipt, stored) = Receipt::new();
        let mut meta = Meta::default();
        let bytes = match self.format {
            PayloadFormat::Raw => payload,
            PayloadFormat::NetworkServer(format) => match netserver::parse(format, topic, &payload)
            {
                Ok(Event::Uplink(up)) => {
                    self.stats.uplinks.fetch_add(1, Ordering::Relaxed);
                    self.remember(format, topic, &up);
                    meta = up.meta();
                    meta.extra.insert("event".into(), "up".into());
                    Bytes::from(up.payload)
                }
                Ok(Event::Other { kind, device }) => {
                    self.stats.event(&kind);
                    if self.other_events == OtherEvents::Drop {
                        receipt.release();
                        return Ok(stored);
                    }
                    meta.extra.insert("event".into(), kind);
                    if let Some(device) = device {
                        meta.extra.insert("device".into(), device);
                    }
                    payload
                }
                Err(e) => {
                    self.reject(topic, payload, e, receipt).await?;
                    return Ok(stored);
                }
            },
        };
        meta.topic = Some(Arc::from(topic));
        meta.extra.insert("qos".into(), (qos as u8).to_string());
        meta.extra.insert("retain".into(), retain.to_string());
        meta.receipt = receipt;
        SourceStatus::add(&self.status.bytes, bytes.len() as u64);
        SourceStatus::add(&self.status.frames, 1);
        let frame = Frame {
            source: self.source.clone(),
            received_at: SystemTime::now(),
            bytes,
            meta,
        };
        self.frames.send(frame).await.map_err(|_| Stopped)?;
        Ok(stored)
    }

    /// An event that cannot be read: counted, and its message to the dead-letter
    /// topic (released once stored).
    async fn reject(
        &self,
        topic: &str,
        payload: Bytes,
        error: netserver::FormatError,
        receipt: Receipt,
    ) -> Result<(), Stopped> {
        self.stats.malformed.fetch_add(1, Ordering::Relaxed);
        let why = format!("message on {topic}: {error}");
        self.status.bad_frame(why.clone(), payload.len(), &payload);
        let Some(rejects) = &self.rejects else {
            warn!(source = %self.source, "{why}");
            receipt.release();
            return Ok(());
        };
        let frame = Frame {
            source: self.source.clone(),
            received_at: SystemTime::now(),
            bytes: payload,
            meta: Meta {
                topic: Some(Arc::from(topic)),
                ..Meta::default()
            },
        };
        let error = MapError::Unreadable {
            at: format!("source {}, message on {topic}", self.source),
            why: error.to_string(),
        };
        let mut batch = MessageBatch::new(
            rejects.durability,
            vec![dead_letter(&rejects.gateway_id, &frame, &error)],
        );
        batch.receipts.push(receipt);
        rejects.tx.send(batch).await.map_err(|_| Stopped)
    }
}

/// How an MQTT source on another broker connects and what it subscribes to.
#[derive(Debug, Clone)]
pub struct External {
    pub client: ClientOptions,
    pub filters: Vec<(String, QoS)>,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// What the upstream output published lately, when it publishes at all.
    pub echoes: Option<Arc<Echoes>>,
    /// Where the gateway's own topics start (its status and will, dead letters,
    /// command results): never taken, whoever published them and when.
    pub own_topics: Vec<String>,
}

/// Take messages from another broker until shutdown; reconnect with back-off.
pub async fn run_external(
    settings: External,
    intake: Intake,
    mut device: DeviceSide,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(settings.reconnect_initial, settings.reconnect_max);
    let broker = format!("{}:{}", settings.client.host, settings.client.port);
    let mut downlinks = Downlinks::default();
    loop {
        let ended = tokio::select! {
            r = session(&settings, &intake, &mut device, &mut downlinks, &mut backoff) => r,
            _ = shutdown.changed() => break,
        };
        device.set_ready(false);
        downlinks.give_up(
            "the connection to the broker was lost before the network server confirmed it",
        );
        match ended {
            Ended::Stopped => break,
            Ended::Lost(why) => {
                warn!(source = %intake.source, "broker {broker}: {why}; connecting again");
                intake.status.set_waiting(format!("broker {broker}: {why}"));
            }
        }
        let pause = tokio::time::sleep(backoff.next_delay());
        tokio::select! {
            _ = device.refuse_during("not connected to the broker", pause) => {}
            _ = shutdown.changed() => break,
        }
    }
    downlinks.give_up("mqgate stopped before the network server confirmed it");
    intake.status.set_state(SourceState::Finished);
}

/// The downlink a command sent through a network server, until the server says
/// how it went.
#[derive(Debug, Default)]
struct Downlinks {
    pending: Option<PendingDownlink>,
    /// Numbers the downlinks' ids (and their packet ids).
    sent: u64,
}

#[derive(Debug)]
struct PendingDownlink {
    id: String,
    confirmed: bool,
    reply: oneshot::Sender<TxOutcome>,
}

impl Downlinks {
    fn give_up(&mut self, why: &str) {
        if let Some(p) = self.pending.take() {
            let _ = p.reply.send(TxOutcome::Failed(why.to_string()));
        }
    }

    /// The next packet id for a PUBLISH (1 is the subscription's).
    fn next_pkid(&self) -> u16 {
        2 + (self.sent % 65_000) as u16
    }

    /// Send a command's part as a downlink request to the server.
    fn start(
        &mut self,
        request: TxRequest,
        format: netserver::Format,
        intake: &Intake,
        conn: &mut Connection,
    ) {
        let reply = request.reply;
        let fail = |why: String| TxOutcome::Failed(format!("source {}: {why}", intake.source));
        let [part] = request.parts.as_slice() else {
            let _ = reply.send(fail(
                "a downlink is one part; the script gave several".into(),
            ));
            return;
        };
        let opts = &part.options;
        let text = |k: &str| opts.get(k).and_then(serde_json::Value::as_str);
        let Some(device) = text("device") else {
            let _ = reply.send(fail(
                "the command's part names no `device` (the network server's device id, or the DevEUI for ChirpStack)".into(),
            ));
            return;
        };
        let address = match text("application") {
            Some(app) => Some((app.to_string(), device.to_string())),
            None => intake.downlink_address(device),
        };
        let Some((application, device)) = address else {
            let _ = reply.send(fail(format!(
                "device {device:?} has sent no uplink yet: give the part its `application`"
            )));
            return;
        };
        let fport = match opts.get("f_port").map(|p| p.as_u64()) {
            None => 1,
            Some(Some(p @ 1..=223)) => p as u8,
            Some(_) => {
                let _ = reply.send(fail("`f_port` must be 1 to 223".into()));
                return;
            }
        };
        let confirmed = opts
            .get("confirmed")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        self.sent += 1;
        let id = match format {
            netserver::Format::TtnV3 => format!("mqgate:{}:{}", intake.source, self.sent),
            // ChirpStack takes a UUID as the queue item's id.
            netserver::Format::ChirpstackV4 => format!(
                "00000000-0000-4000-8000-{:012x}",
                (std::process::id() as u64) << 32 | (self.sent & 0xffff_ffff)
            ),
        };
        let down = netserver::downlink(
            format,
            &netserver::DownlinkRequest {
                application: &application,
                device: &device,
                fport,
                bytes: &part.bytes,
                confirmed,
                priority: text("priority").unwrap_or("NORMAL"),
                id: &id,
            },
        );
        conn.publish(
            self.next_pkid(),
            &down.topic,
            &down.payload,
            QoS::AtLeastOnce,
            false,
            false,
        );
        info!(source = %intake.source, topic = %down.topic, "downlink to the network server");
        self.pending = Some(PendingDownlink {
            id,
            confirmed,
            reply,
        });
    }

    /// A message from the server: the end of the pending downlink, if it says so.
    fn news(&mut self, format: netserver::Format, topic: &str, payload: &[u8]) {
        let Some(p) = &self.pending else { return };
        let outcome = match netserver::downlink_news(format, topic, payload, &p.id) {
            None | Some(DownlinkNews::Queued) => return,
            Some(DownlinkNews::Sent) if p.confirmed => return,
            Some(DownlinkNews::Sent | DownlinkNews::Acked) => TxOutcome::Sent,
            Some(DownlinkNews::Nacked) => {
                TxOutcome::Failed("the device did not acknowledge the confirmed downlink".into())
            }
            Some(DownlinkNews::Failed(why)) => {
                TxOutcome::Failed(format!("the network server failed the downlink: {why}"))
            }
        };
        if let Some(p) = self.pending.take() {
            let _ = p.reply.send(outcome);
        }
    }
}

enum Ended {
    /// The connection failed.
    Lost(String),
    /// The pipeline behind stopped.
    Stopped,
}

/// A message taken and not yet acknowledged.
struct Unstored {
    pkid: u16,
    qos: QoS,
    stored: oneshot::Receiver<()>,
}

/// One connection: subscribe, then take messages until it fails.
async fn session(
    settings: &External,
    intake: &Intake,
    device: &mut DeviceSide,
    downlinks: &mut Downlinks,
    backoff: &mut Backoff,
) -> Ended {
    let server = match intake.format {
        PayloadFormat::NetworkServer(f) => Some(f),
        PayloadFormat::Raw => None,
    };
    let mut conn = match Connection::connect(&settings.client).await {
        Ok((conn, _)) => conn.subscriber(),
        Err(e) => return Ended::Lost(e.to_string()),
    };
    conn.subscribe(1, settings.filters.clone());
    // In the order the messages came: acknowledgements go in that order.
    let mut unstored: VecDeque<Unstored> = VecDeque::new();
    // QoS 2 messages taken whose PUBREL has not come: a resend is not taken twice.
    let mut unreleased: HashSet<u16> = HashSet::new();
    loop {
        tokio::select! {
            request = device.next(), if downlinks.pending.is_none() => {
                match server {
                    Some(format) => downlinks.start(request, format, intake, &mut conn),
                    None => {
                        let _ = request.reply.send(TxOutcome::Failed(format!(
                            "source {}: commands go through an MQTT source only with a network server's format",
                            intake.source
                        )));
                    }
                }
            }
            _ = async {
                match downlinks.pending.as_mut() {
                    Some(p) => p.reply.closed().await,
                    None => std::future::pending().await,
                }
            }, if downlinks.pending.is_some() => {
                // The command gave up waiting (its send timeout).
                downlinks.pending = None;
            }
            stored = async {
                match unstored.front_mut() {
                    Some(u) => (&mut u.stored).await,
                    None => std::future::pending().await,
                }
            }, if !unstored.is_empty() => {
                let Some(done) = unstored.pop_front() else { continue };
                if stored.is_err() {
                    return Ended::Stopped;
                }
                match done.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => conn.puback(done.pkid),
                    QoS::ExactlyOnce => conn.pubrec(done.pkid),
                }
            }
            event = conn.next_event(), if unstored.len() < MAX_UNSTORED => {
                let event = match event {
                    Ok(e) => e,
                    Err(e) => return Ended::Lost(e.to_string()),
                };
                match event {
                    ClientEvent::SubAck(ack) => {
                        backoff.reset();
                        device.set_ready(server.is_some());
                        intake.status.set_state(SourceState::Connected { since: SystemTime::now() });
                        for ((filter, _), code) in settings.filters.iter().zip(&ack.return_codes) {
                            match code {
                                SubscribeReturnCode::Failure => warn!(
                                    source = %intake.source,
                                    filter = %filter,
                                    "the broker refused the subscription (its ACL?)"
                                ),
                                _ => info!(source = %intake.source, filter = %filter, "subscribed"),
                            }
                        }
                    }
                    ClientEvent::Publish(p) => {
                        if p.qos == QoS::ExactlyOnce && !unreleased.insert(p.pkid) {
                            // Taken already; the broker has not had our PUBREC yet, or lost it.
                            if !unstored.iter().any(|u| u.pkid == p.pkid) {
                                conn.pubrec(p.pkid);
                            }
                            continue;
                        }
                        if let Some(format) = server {
                            downlinks.news(format, &p.topic, &p.payload);
                        }
                        let echo = settings.own_topics.iter().any(|t| p.topic.starts_with(t.as_str()))
                            || settings
                                .echoes
                                .as_ref()
                                .is_some_and(|e| e.is_echo(&p.topic, &p.payload));
                        let stored = if echo {
                            intake.stats.messages.fetch_add(1, Ordering::Relaxed);
                            intake.stats.echoes.fetch_add(1, Ordering::Relaxed);
                            let (receipt, stored) = Receipt::new();
                            receipt.release();
                            stored
                        } else {
                            match intake.take(&p.topic, p.payload, p.qos, p.retain).await {
                                Ok(stored) => stored,
                                Err(Stopped) => return Ended::Stopped,
                            }
                        };
                        if p.qos != QoS::AtMostOnce {
                            unstored.push_back(Unstored { pkid: p.pkid, qos: p.qos, stored });
                        }
                    }
                    ClientEvent::PubRel(pkid) => {
                        unreleased.remove(&pkid);
                        conn.pubcomp(pkid);
                    }
                    // This connection publishes nothing.
                    ClientEvent::Ack(_) => {}
                }
            }
        }
    }
}

/// Take the messages of `filters` on the embedded broker until shutdown.
pub async fn run_embedded(
    broker: broker_lite::BrokerHandle,
    filters: Vec<(String, QoS)>,
    intake: Intake,
    mut shutdown: watch::Receiver<bool>,
) {
    let options = broker_lite::SubscribeOptions {
        no_local: true,
        retained: true,
    };
    let mut subscriptions = Vec::new();
    for (filter, qos) in &filters {
        match broker.subscribe_with(filter, *qos, options).await {
            Ok(s) => subscriptions.push(s),
            Err(e) => {
                warn!(source = %intake.source, filter = %filter, "cannot subscribe on the embedded broker: {e}");
                intake
                    .status
                    .set_waiting(format!("subscribing to {filter}: {e}"));
                return;
            }
        }
    }
    info!(source = %intake.source, filters = filters.len(), "subscribed on the embedded broker");
    intake.status.set_state(SourceState::Connected {
        since: SystemTime::now(),
    });
    // One merged stream of the subscriptions' messages, in arrival order per filter.
    let (tx, mut rx) = mpsc::channel::<broker_lite::Message>(64);
    for mut s in subscriptions {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(m) = s.recv().await {
                if tx.send(m).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    loop {
        let m = tokio::select! {
            m = rx.recv() => m,
            _ = shutdown.changed() => break,
        };
        let Some(m) = m else { break };
        // The broker has the message already acknowledged to its publisher: there
        // is no one to tell when it is stored.
        if intake
            .take(&m.topic, m.payload, m.qos, m.retain)
            .await
            .is_err()
        {
            break;
        }
    }
    intake.status.set_state(SourceState::Finished);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_are_counted_apart_up_to_a_bound_and_the_rest_as_other() {
        let stats = MqttStats::default();
        for i in 0..100 {
            stats.event(&format!("kind{i}"));
        }
        stats.event("kind0");
        let events = stats.snapshot().events;
        assert_eq!(events.len(), MAX_EVENT_KINDS + 1, "{events:?}");
        assert_eq!(events["kind0"], 2);
        assert_eq!(events["other"], 100 - MAX_EVENT_KINDS as u64);
    }
}
