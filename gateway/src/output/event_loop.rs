//! The upstream output's loop: connect, resend what was in flight, then keep a
//! window of messages in flight between the store and the broker (`window`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mqtt_proto::codec::QoS;
use tokio::sync::watch;
use tracing::{info, warn};

use super::client::{Ack, ClientError, Connection};
use super::upstream::{UpstreamSettings, UpstreamStatus};
use super::window::{closed_by_server, Window};
use crate::backoff::Backoff;
use crate::store::{packet_id, OutputQueue, StoreError, Stored, CONTROL_PACKET_ID};

/// A connection that lived this long without being cut off on a full window was
/// healthy: the next reconnect starts from the shortest delay again. Shorter ones
/// (a broker that accepts and drops us at once) keep the delays growing.
const HEALTHY: Duration = Duration::from_secs(2);
/// A connection the broker closes this soon after accepting it, with no burst in
/// flight, was most likely taken over by another client with the same client id.
const TAKEN_OVER: Duration = Duration::from_secs(1);
/// Such drops in a row before the log says so.
const TAKEOVERS_TO_WARN: u32 = 2;
/// Bytes written and not yet taken by the socket, at most, before reading more.
const MAX_QUEUED_BYTES: usize = 1024 * 1024;
/// Packet ids repeat every 65,534 messages: never have two in flight that far apart.
const MAX_ID_SPAN: u64 = 60_000;
/// How long a stopping output waits for the acknowledgements of what is in flight.
const DRAIN_ON_STOP: Duration = Duration::from_secs(2);

/// A message sent and not yet acknowledged.
struct InFlight {
    stored: Stored,
    /// PUBREC came back and is committed: the PUBREL is out (QoS 2).
    released: bool,
}

type Releasing = Pin<Box<dyn Future<Output = (Vec<u64>, Result<(), StoreError>)> + Send>>;

/// The state that outlives a connection.
struct Link {
    settings: UpstreamSettings,
    status: Arc<UpstreamStatus>,
    in_flight: BTreeMap<u64, InFlight>,
    /// Messages in flight that wait, in order, to be sent again on this connection:
    /// after a reconnect the window may be smaller than what was in flight.
    waiting: VecDeque<u64>,
    by_packet: HashMap<u16, u64>,
    done: Vec<u64>,
    input_finished: bool,
    /// The broker kept our session on the last connect.
    session_present: bool,
    window: Window,
    /// Connected at least once since the start.
    connected_before: bool,
    /// QoS 2 messages whose PUBREC came and whose PUBREL is not yet sent.
    awaiting_release: usize,
    /// Connections in a row the broker closed right after accepting them.
    quick_drops: u32,
}

enum Ended {
    /// The connection failed: reconnect.
    Lost(ClientError),
    /// Shutdown asked for, or everything sent and acknowledged after the input ended.
    Stop,
    /// The store stopped.
    StoreGone(StoreError),
}

/// Publish everything the store holds for this output until shutdown, or until the
/// input has ended and everything is acknowledged.
pub async fn run(
    settings: UpstreamSettings,
    mut queue: OutputQueue,
    status: Arc<UpstreamStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let options = settings.options();
    let mut backoff = Backoff::new(settings.reconnect_initial, settings.reconnect_max);
    let window = Window::new(settings.max_inflight);
    status
        .max_inflight
        .store(settings.max_inflight as u64, Ordering::Relaxed);
    status.window.store(window.size() as u64, Ordering::Relaxed);
    let mut link = Link {
        settings,
        status,
        in_flight: BTreeMap::new(),
        waiting: VecDeque::new(),
        by_packet: HashMap::new(),
        done: Vec::new(),
        input_finished: false,
        session_present: false,
        window,
        connected_before: false,
        awaiting_release: 0,
        quick_drops: 0,
    };
    loop {
        if *shutdown.borrow() {
            break;
        }
        let connected = tokio::select! {
            c = Connection::connect(&options) => c,
            _ = shutdown.changed() => break,
        };
        let (mut conn, session_present) = match connected {
            Ok(c) => c,
            Err(e) => {
                link.lost(&e);
                link.window.connect_failed();
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => continue,
                    _ = shutdown.changed() => break,
                }
            }
        };
        // Counted first: whoever reads the log line finds it on the status page.
        link.connected(session_present);
        info!(
            host = %link.settings.client.host,
            port = link.settings.client.port,
            session_present,
            "connected upstream"
        );
        let connected_at = Instant::now();
        queue.set_connected(true).await;
        conn.publish(
            CONTROL_PACKET_ID,
            &link.settings.status_topic(),
            b"online",
            QoS::AtLeastOnce,
            true,
            false,
        );
        link.session_present = session_present;
        if let Err(e) = link.forget_releases(&queue).await {
            warn!("upstream output stops: {e}");
            return;
        }
        link.resend(&mut conn);
        let ended = link.serve(&mut conn, &mut queue, &mut shutdown).await;
        queue.set_connected(false).await;
        link.status.connected.store(false, Ordering::Relaxed);
        link.flush_done(&queue).await;
        match ended {
            Ended::Lost(e) => {
                link.lost(&e);
                link.window
                    .lost(&e, link.in_flight.len().saturating_sub(link.waiting.len()));
                link.dropped_at_once(&e, connected_at.elapsed());
                if connected_at.elapsed() >= HEALTHY && !link.window.suspects_cutoff() {
                    backoff.reset();
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = shutdown.changed() => break,
                }
            }
            Ended::Stop => {
                conn.publish(
                    CONTROL_PACKET_ID,
                    &link.settings.status_topic(),
                    b"offline",
                    QoS::AtMostOnce,
                    true,
                    false,
                );
                conn.disconnect(Duration::from_secs(1)).await;
                return;
            }
            Ended::StoreGone(e) => {
                warn!("upstream output stops: {e}");
                conn.disconnect(Duration::from_secs(1)).await;
                return;
            }
        }
    }
    link.flush_done(&queue).await;
}

impl Link {
    /// The broker accepted a connect: count it, and learn from it whether the last
    /// connection was cut off on a full window.
    fn connected(&mut self, session_present: bool) {
        let status = &self.status;
        status.connected.store(true, Ordering::Relaxed);
        status.connects.fetch_add(1, Ordering::Relaxed);
        // The error said why it could not connect: no longer true.
        *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if self.connected_before && !session_present && !self.settings.client.clean_session {
            status.sessions_lost.fetch_add(1, Ordering::Relaxed);
        }
        self.connected_before = true;
        let (cutoff, halved) = self.window.connected();
        if cutoff {
            status.cutoffs.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(h) = halved {
            status.window.store(h.to as u64, Ordering::Relaxed);
            warn!(
                "upstream {}:{}: the broker closed the connection again right after a burst of \
                 messages in flight: it appears to limit the messages a client has in flight; \
                 at most {} in flight from now on (was {}; upstream.max_inflight: {})",
                self.settings.client.host,
                self.settings.client.port,
                h.to,
                h.from,
                self.settings.max_inflight
            );
        }
    }

    /// Count connections the broker closes at once without a burst in flight; from
    /// the second in a row the status page says the likely cause, and the log once.
    fn dropped_at_once(&mut self, e: &ClientError, lived: Duration) {
        if !(lived < TAKEN_OVER && closed_by_server(e) && !self.window.suspects_cutoff()) {
            self.quick_drops = 0;
            return;
        }
        self.quick_drops += 1;
        if self.quick_drops < TAKEOVERS_TO_WARN {
            return;
        }
        let text = format!(
            "the broker closed the connection right after accepting it, {} times in a row: \
             another client with the same client id ({:?}), e.g. a second mqgate with this \
             configuration, is the likely cause",
            self.quick_drops, self.settings.client.client_id
        );
        if self.quick_drops == TAKEOVERS_TO_WARN {
            warn!(
                "upstream {}:{}: {text}",
                self.settings.client.host, self.settings.client.port
            );
        }
        *self
            .status
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((text, SystemTime::now()));
    }

    fn lost(&self, e: &ClientError) {
        let text = e.to_string();
        warn!(
            host = %self.settings.client.host,
            port = self.settings.client.port,
            "upstream {}:{}: {text}",
            self.settings.client.host,
            self.settings.client.port
        );
        *self
            .status
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((text, SystemTime::now()));
    }

    /// A broker without our session has forgotten the QoS 2 messages it acknowledged
    /// with PUBREC but never saw released: they start over with a PUBLISH, those in
    /// flight and those still in the store from an earlier run. The store learns that
    /// before anything is sent, so that a crash now cannot later resume them with a
    /// PUBREL the broker would answer without delivering anything.
    async fn forget_releases(&mut self, queue: &OutputQueue) -> Result<(), StoreError> {
        if self.session_present {
            return Ok(());
        }
        for f in self.in_flight.values_mut() {
            f.released = false;
        }
        queue.releaser().forget_releases().await
    }

    /// After a (re)connect: what was in flight goes again, in order — the PUBREL of a
    /// released QoS 2 message if the broker kept the session, else the PUBLISH with DUP.
    /// Only as many as the window allows go at once; the others wait in `waiting`.
    fn resend(&mut self, conn: &mut Connection) {
        self.waiting.clear();
        for &id in self.in_flight.keys() {
            self.waiting.push_back(id);
        }
        self.resend_waiting(conn);
    }

    /// Send what waits to go again while the window has room.
    fn resend_waiting(&mut self, conn: &mut Connection) {
        let window = self.window.size();
        while self.in_flight.len().saturating_sub(self.waiting.len()) < window
            && conn.queued_bytes() < MAX_QUEUED_BYTES
        {
            let Some(id) = self.waiting.pop_front() else {
                break;
            };
            let Some(f) = self.in_flight.get_mut(&id) else {
                continue;
            };
            let pkid = packet_id(id);
            if f.released && self.session_present {
                conn.pubrel(pkid);
            } else {
                // A broker without our session lost its half of the exchange: the
                // PUBLISH goes again (at least once rather than lost).
                f.released = false;
                let m = &f.stored.message;
                let topic = format!("{}{}", self.settings.topic_prefix, m.topic);
                conn.publish(pkid, &topic, &m.payload, m.qos, m.retain, true);
                possible_duplicate(&self.status, self.session_present, m.qos);
            }
            self.status.resent.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn room(&self, conn: &Connection, cursor: u64) -> usize {
        if conn.queued_bytes() >= MAX_QUEUED_BYTES {
            return 0;
        }
        if let Some((&oldest, _)) = self.in_flight.first_key_value() {
            if cursor.saturating_sub(oldest) >= MAX_ID_SPAN {
                return 0;
            }
        }
        let window = self.window.size();
        let room = window.saturating_sub(self.in_flight.len());
        // A broker that acknowledges one message at a time would otherwise cost a
        // store fetch per message: refill once a quarter of the window is free.
        if !self.in_flight.is_empty() && room < (window / 4).max(1) {
            return 0;
        }
        room
    }

    /// Send a fresh batch from the store.
    fn send(&mut self, conn: &mut Connection, queue: &OutputQueue, batch: Vec<Stored>) {
        for stored in batch {
            let id = stored.id;
            let pkid = packet_id(id);
            let m = stored.message.clone();
            let topic = format!("{}{}", self.settings.topic_prefix, m.topic);
            if let Some(echoes) = &self.settings.echoes {
                echoes.record(&topic, &m.payload);
            }
            if m.qos == QoS::AtMostOnce {
                conn.publish(0, &topic, &m.payload, m.qos, m.retain, false);
                if stored.persisted {
                    self.done.push(id);
                }
                self.status.published.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let resuming = queue.from_before(id);
            // Released in an earlier run: resume with PUBREL if the broker kept our
            // session, else send the PUBLISH again (see `resend`).
            let released = stored.released && self.session_present;
            if released {
                conn.pubrel(pkid);
            } else {
                conn.publish(pkid, &topic, &m.payload, m.qos, m.retain, resuming);
                if resuming {
                    possible_duplicate(&self.status, self.session_present, m.qos);
                }
            }
            if resuming {
                self.status.resent.fetch_add(1, Ordering::Relaxed);
            }
            self.by_packet.insert(pkid, id);
            self.in_flight.insert(id, InFlight { stored, released });
        }
        self.status
            .in_flight
            .store(self.in_flight.len() as u64, Ordering::Relaxed);
    }

    /// PUBRECs came for `n` more messages whose PUBREL waits for the commit.
    fn awaiting_release(&mut self, n: usize) {
        self.awaiting_release += n;
        self.status
            .awaiting_release_max
            .fetch_max(self.awaiting_release as u64, Ordering::Relaxed);
    }

    fn finished(&mut self, pkid: u16) {
        if let Some(id) = self.by_packet.remove(&pkid) {
            self.in_flight.remove(&id);
            if let Some(at) = self.waiting.iter().position(|&w| w == id) {
                self.waiting.remove(at);
            }
            self.done.push(id);
            self.status.published.fetch_add(1, Ordering::Relaxed);
            self.status
                .in_flight
                .store(self.in_flight.len() as u64, Ordering::Relaxed);
        }
    }

    async fn flush_done(&mut self, queue: &OutputQueue) {
        if !self.done.is_empty() {
            let _ = queue.done(std::mem::take(&mut self.done)).await;
        }
    }

    /// One connection's life: send, read acknowledgements, commit PUBRECs.
    async fn serve(
        &mut self,
        conn: &mut Connection,
        queue: &mut OutputQueue,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let mut releasing: Option<Releasing> = None;
        let mut to_release: Vec<u64> = Vec::new();
        let mut stopping: Option<tokio::time::Instant> = None;
        self.awaiting_release = 0;
        loop {
            self.flush_done(queue).await;
            if stopping.is_none() && !self.waiting.is_empty() {
                self.resend_waiting(conn);
            }
            if releasing.is_none() && !to_release.is_empty() {
                let ids = std::mem::take(&mut to_release);
                let q = queue.releaser();
                releasing = Some(Box::pin(async move {
                    let r = q.released(ids.clone()).await;
                    (ids, r)
                }));
            }
            let idle = self.in_flight.is_empty() && releasing.is_none();
            if idle && (self.input_finished || stopping.is_some()) {
                return Ended::Stop;
            }
            let room = if stopping.is_some() || self.input_finished {
                0
            } else {
                self.room(conn, queue.cursor())
            };
            let deadline =
                stopping.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                ack = conn.next() => match ack {
                    Ok(Ack::PubAck(pkid)) | Ok(Ack::PubComp(pkid)) => self.finished(pkid),
                    Ok(Ack::PubRec(pkid)) => {
                        if let Some(&id) = self.by_packet.get(&pkid) {
                            to_release.push(id);
                            self.awaiting_release(1);
                        }
                    }
                    Err(e) => return Ended::Lost(e),
                },
                batch = queue.next_batch(room), if room > 0 => match batch {
                    Ok(b) if b.is_empty() => self.input_finished = true,
                    Ok(b) => self.send(conn, queue, b),
                    Err(e) => return Ended::StoreGone(e),
                },
                released = async { releasing.as_mut().expect("checked").await }, if releasing.is_some() => {
                    releasing = None;
                    let (ids, result) = released;
                    if let Err(e) = result {
                        return Ended::StoreGone(e);
                    }
                    self.awaiting_release -= ids.len();
                    for id in ids {
                        if let Some(f) = self.in_flight.get_mut(&id) {
                            f.released = true;
                            conn.pubrel(packet_id(id));
                        }
                    }
                }
                _ = shutdown.changed(), if stopping.is_none() => {
                    stopping = Some(tokio::time::Instant::now() + DRAIN_ON_STOP);
                }
                _ = tokio::time::sleep_until(deadline), if stopping.is_some() => {
                    // What is still in flight stays in the store for the next start.
                    return Ended::Stop;
                }
            }
        }
    }
}

/// A PUBLISH sent again may arrive twice: at QoS 1 always, at QoS 2 when the broker
/// has no session to recognise its packet id by.
fn possible_duplicate(status: &UpstreamStatus, session_present: bool, qos: QoS) {
    if qos == QoS::AtLeastOnce || !session_present {
        status.possible_duplicates.fetch_add(1, Ordering::Relaxed);
    }
}
