//! One client's session state: subscriptions, the outgoing in-flight window, the
//! queue behind it, and inbound QoS 2 packet ids awaiting PUBREL.
//!
//! No I/O and no tasks: the session encodes packets into its link's outbox (a
//! buffer) or hands messages to an in-process channel, and reports what it did.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::BytesMut;
use mqtt_proto::codec::{encode, encode_publish, LastWill, Packet, QoS};
use tokio::sync::mpsc;

use crate::config::QueueOverflow;
use crate::message::Message;
use crate::outbox::{Outbox, OutboxLimits};
use crate::persist::{SessionLog, StoredSession};

/// Identifies one network connection for its whole life.
pub(crate) type ConnId = u64;

/// Where a connected session's packets go.
#[derive(Debug)]
pub(crate) enum Link {
    Remote {
        conn: ConnId,
        outbox: Arc<Outbox>,
    },
    /// An in-process subscriber. `flag` is an outbox that only carries its
    /// congestion: set when the channel is three quarters full, so that the
    /// router brakes the publishers feeding it, cleared by the subscriber.
    Local {
        tx: mpsc::Sender<Message>,
        flag: Arc<Outbox>,
    },
}

/// The session limits that come from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    pub max_inflight: usize,
    pub max_queued: usize,
    /// Bytes (topic and payload) the queue may hold.
    pub max_queued_bytes: usize,
    /// The queues together hold `max_queued_bytes_total`: a message that would be
    /// queued is dropped instead (set by the router for each message it routes).
    pub budget_full: bool,
    pub overflow: QueueOverflow,
    /// When publishers are braked and when QoS 0 messages are dropped.
    pub outbox: OutboxLimits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InflightState {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published,
    /// PUBREC received and PUBREL sent; waiting for PUBCOMP.
    Released,
}

#[derive(Debug)]
struct Inflight {
    /// Number of the message in this session (the key of its stored row).
    seq: u64,
    pkid: u16,
    msg: Message,
    state: InflightState,
}

/// What one call did, for the counters and for waking the connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// PUBLISH packets written or handed over.
    pub sent: u64,
    /// Messages given up.
    pub dropped: u64,
    /// The QoS 0 ones among `dropped`.
    pub dropped_qos0: u64,
    /// The ones among `dropped` given up because the queues' budget was full.
    pub dropped_budget: u64,
    /// Something was written to the outbox: the connection must be woken.
    pub wrote: bool,
    /// An in-process receiver is gone: the session can be removed.
    pub closed: bool,
    /// The client is not keeping up: brake whoever published this.
    pub congested: bool,
    /// The client caught up again: braked publishers may read.
    pub relieved: bool,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.sent += other.sent;
        self.dropped += other.dropped;
        self.dropped_qos0 += other.dropped_qos0;
        self.dropped_budget += other.dropped_budget;
        self.wrote |= other.wrote;
        self.closed |= other.closed;
        self.congested |= other.congested;
        self.relieved |= other.relieved;
    }
}

/// A session's subscriptions: filter → granted QoS. None at all costs one
/// pointer, not an empty map's 48 bytes, in each of many sessions (a sensor
/// that only publishes never subscribes).
#[derive(Debug, Default)]
#[allow(clippy::box_collection)]
pub(crate) struct Filters(Option<Box<HashMap<Box<str>, QoS>>>);

impl Filters {
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    pub(crate) fn contains_key(&self, filter: &str) -> bool {
        self.0.as_ref().is_some_and(|m| m.contains_key(filter))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Box<str>, &QoS)> {
        self.0.iter().flat_map(|m| m.iter())
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &Box<str>> {
        self.iter().map(|(f, _)| f)
    }

    pub(crate) fn insert(&mut self, filter: Box<str>, qos: QoS) {
        self.0
            .get_or_insert_with(Default::default)
            .insert(filter, qos);
    }

    /// True when it was there. The last one removed frees the map.
    pub(crate) fn remove(&mut self, filter: &str) -> bool {
        let Some(map) = &mut self.0 else {
            return false;
        };
        let removed = map.remove(filter).is_some();
        if map.is_empty() {
            self.0 = None;
        }
        removed
    }
}

impl FromIterator<(Box<str>, QoS)> for Filters {
    fn from_iter<I: IntoIterator<Item = (Box<str>, QoS)>>(items: I) -> Filters {
        let map: HashMap<Box<str>, QoS> = items.into_iter().collect();
        Filters((!map.is_empty()).then(|| Box::new(map)))
    }
}

#[derive(Debug)]
pub(crate) struct Session {
    /// Shared with the router's index by client id: one copy of the text.
    pub client_id: Arc<str>,
    pub clean: bool,
    pub subscriptions: Filters,
    /// Boxed: most sessions have none, and sessions are many.
    pub will: Option<Box<LastWill>>,
    pub link: Option<Link>,
    /// The user name the session was made under; `None` for an anonymous client,
    /// or a session read back without one. A client logged in under another name
    /// may not take it over.
    pub owner: Option<Box<str>>,
    /// An in-process subscriber that does not take what the in-process handle
    /// publishes (the gateway's own messages), as MQTT 5's No Local.
    pub no_local: bool,
    inflight: VecDeque<Inflight>,
    /// Messages with their `seq`.
    queue: VecDeque<(u64, Message)>,
    /// How many messages in `queue` are QoS 0: a full queue drops those first,
    /// and the count spares it a search when there are none.
    queued_qos0: u32,
    /// Bytes (topic and payload) of the messages in `queue`.
    queued_bytes: usize,
    /// Boxed: most sessions never receive QoS 2, and a box is 8 bytes where an
    /// empty set is 48, in every one of many sessions.
    #[allow(clippy::box_collection)]
    incoming_qos2: Option<Box<HashSet<u16>>>,
    last_pkid: u16,
    next_seq: u64,
    /// Records this session's changes when it is persistent and persistence is on.
    /// Boxed: a pointer in every session instead of three.
    pub journal: Option<Box<SessionLog>>,
    /// Replies to this client wait for the commit of this persistence batch.
    pub reply_barrier: u64,
}

impl Session {
    pub(crate) fn new(client_id: Arc<str>, clean: bool) -> Session {
        Session {
            client_id,
            clean,
            subscriptions: Filters::default(),
            will: None,
            link: None,
            owner: None,
            no_local: false,
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            queued_qos0: 0,
            queued_bytes: 0,
            incoming_qos2: None,
            last_pkid: 0,
            next_seq: 0,
            journal: None,
            reply_barrier: 0,
        }
    }

    /// A persistent session read back from the file: not connected, its in-flight
    /// messages resent at the next connect. A queue longer than the limit now
    /// configured loses its oldest messages (recorded).
    pub(crate) fn restore(
        stored: StoredSession,
        journal: SessionLog,
        lim: &SessionLimits,
    ) -> Session {
        let mut session = Session::new(stored.client_id.into(), false);
        session.subscriptions = stored
            .subscriptions
            .into_iter()
            .map(|(filter, qos)| (filter.into_boxed_str(), qos))
            .collect();
        for m in stored.messages {
            session.next_seq = session.next_seq.max(m.seq + 1);
            match m.pkid {
                Some(pkid) => {
                    session.last_pkid = pkid;
                    session.inflight.push_back(Inflight {
                        seq: m.seq,
                        pkid,
                        msg: m.msg,
                        state: if m.released {
                            InflightState::Released
                        } else {
                            InflightState::Published
                        },
                    });
                }
                None => session.push_queued(m.seq, m.msg),
            }
        }
        while session.queue.len() > lim.max_queued || session.queued_bytes > lim.max_queued_bytes {
            if let Some((seq, msg)) = session.pop_queued() {
                if msg.qos != QoS::AtMostOnce {
                    journal.done(seq);
                }
            }
        }
        if !stored.incoming_qos2.is_empty() {
            session.incoming_qos2 = Some(Box::new(stored.incoming_qos2.into_iter().collect()));
        }
        session.journal = Some(Box::new(journal));
        session
    }

    /// Add or replace a subscription (the router also updates its tree).
    pub(crate) fn add_subscription(&mut self, filter: &str, qos: QoS) {
        if let Some(j) = &self.journal {
            j.subscribed(filter, qos);
        }
        self.subscriptions.insert(filter.into(), qos);
    }

    /// Remove a subscription; true when it existed.
    pub(crate) fn remove_subscription(&mut self, filter: &str) -> bool {
        let removed = self.subscriptions.remove(filter);
        if let (true, Some(j)) = (removed, &self.journal) {
            j.unsubscribed(filter);
        }
        removed
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }

    /// Record that the message `seq` is finished with (QoS 0 ones are never recorded).
    fn log_done(&self, seq: u64, qos: QoS) {
        if let (Some(j), false) = (&self.journal, qos == QoS::AtMostOnce) {
            j.done(seq);
        }
    }

    /// The connection this session is attached to, if it is a connected remote client.
    pub(crate) fn conn(&self) -> Option<ConnId> {
        match &self.link {
            Some(Link::Remote { conn, .. }) => Some(*conn),
            _ => None,
        }
    }

    pub(crate) fn outbox(&self) -> Option<&Arc<Outbox>> {
        match &self.link {
            Some(Link::Remote { outbox, .. }) => Some(outbox),
            _ => None,
        }
    }

    /// What a publisher braked for this session waits on: its outbox, or an
    /// in-process subscriber's congestion flag.
    pub(crate) fn brake_target(&self) -> Option<&Arc<Outbox>> {
        match &self.link {
            Some(Link::Remote { outbox, .. }) => Some(outbox),
            Some(Link::Local { flag, .. }) => Some(flag),
            None => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    #[cfg(test)]
    pub(crate) fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Write a control packet (CONNACK, PUBACK, SUBACK, ...) to the connection.
    pub(crate) fn send_packet(&self, packet: &Packet) -> Outcome {
        match self.outbox() {
            Some(outbox) => {
                outbox.push_with(|buf| encode(packet, buf));
                Outcome {
                    wrote: true,
                    ..Outcome::default()
                }
            }
            None => Outcome::default(),
        }
    }

    /// A client's session over the network (not an in-process subscriber's).
    pub(crate) fn is_remote(&self) -> bool {
        !matches!(self.link, Some(Link::Local { .. }))
    }

    /// Deliver a message that matched this session's subscriptions, already at the granted QoS.
    pub(crate) fn deliver(&mut self, msg: Message, lim: &SessionLimits) -> Outcome {
        match &self.link {
            Some(Link::Local { tx, flag }) => match tx.try_send(msg) {
                Ok(()) => Outcome {
                    sent: 1,
                    congested: tx.capacity() < tx.max_capacity() / 4 && flag.queue_long(),
                    ..Outcome::default()
                },
                Err(mpsc::error::TrySendError::Full(msg)) => Outcome {
                    dropped: 1,
                    dropped_qos0: u64::from(msg.qos == QoS::AtMostOnce),
                    congested: flag.queue_long(),
                    ..Outcome::default()
                },
                Err(mpsc::error::TrySendError::Closed(_)) => Outcome {
                    closed: true,
                    ..Outcome::default()
                },
            },
            Some(Link::Remote { outbox, .. }) => {
                // Order per client: nothing overtakes what is already queued.
                if self.queue.is_empty() {
                    if msg.qos == QoS::AtMostOnce {
                        return send_qos0(outbox, &msg, lim);
                    }
                    if self.inflight.len() < lim.max_inflight {
                        let seq = self.take_seq();
                        return self.publish_now(seq, msg, true);
                    }
                }
                let outbox = outbox.clone();
                let mut out = self.enqueue(msg, lim);
                // Half full, in messages or in bytes: the publishers are braked
                // before the queue has to give anything up.
                if self.queue.len() > lim.max_queued / 2
                    || self.queued_bytes > lim.max_queued_bytes / 2
                {
                    out.congested = outbox.queue_long();
                }
                out
            }
            None => {
                if msg.qos == QoS::AtMostOnce {
                    // QoS 0 is not kept for a client that is away.
                    Outcome::default()
                } else {
                    self.enqueue(msg, lim)
                }
            }
        }
    }

    /// Queue a message behind the window. A queue full (in messages or in bytes)
    /// gives up QoS 0 messages before any QoS 1/2 one: the oldest queued QoS 0
    /// message (or the new one, with `drop_newest`, or when it is QoS 0 and nothing
    /// queued is); only a queue of QoS 1/2 messages alone follows `queue_overflow`
    /// for them. With the queues' budget full, the new message is given up.
    fn enqueue(&mut self, msg: Message, lim: &SessionLimits) -> Outcome {
        let mut out = Outcome::default();
        let new_is_qos0 = msg.qos == QoS::AtMostOnce;
        if lim.budget_full {
            out.dropped = 1;
            out.dropped_qos0 = u64::from(new_is_qos0);
            out.dropped_budget = 1;
            return out;
        }
        let size = message_bytes(&msg);
        while self.queue.len() >= lim.max_queued || self.queued_bytes + size > lim.max_queued_bytes
        {
            out.dropped += 1;
            if new_is_qos0 && (lim.overflow == QueueOverflow::DropNewest || self.queued_qos0 == 0) {
                out.dropped_qos0 += 1;
                return out;
            }
            if self.queued_qos0 > 0 {
                self.drop_oldest_qos0();
                out.dropped_qos0 += 1;
            } else {
                match lim.overflow {
                    QueueOverflow::DropNewest => return out,
                    QueueOverflow::DropOldest => match self.pop_queued() {
                        Some((seq, old)) => self.log_done(seq, old.qos),
                        // Nothing left to give up: the message alone is too big.
                        None => return out,
                    },
                }
            }
        }
        let seq = self.take_seq();
        if msg.qos != QoS::AtMostOnce {
            if let Some(j) = &self.journal {
                j.queued(seq, &msg, None);
            }
        }
        self.push_queued(seq, msg);
        out
    }

    /// Put a message at the end of the queue, keeping the counts right.
    fn push_queued(&mut self, seq: u64, msg: Message) {
        if msg.qos == QoS::AtMostOnce {
            self.queued_qos0 += 1;
        }
        self.queued_bytes += message_bytes(&msg);
        self.queue.push_back((seq, msg));
    }

    /// Take the message at the head of the queue, keeping the counts right.
    fn pop_queued(&mut self) -> Option<(u64, Message)> {
        let front = self.queue.pop_front()?;
        if front.1.qos == QoS::AtMostOnce {
            self.queued_qos0 -= 1;
        }
        self.queued_bytes -= message_bytes(&front.1);
        Some(front)
    }

    /// Bytes (topic and payload) of the queued messages.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Remove the oldest queued QoS 0 message (never recorded, so nothing to log).
    fn drop_oldest_qos0(&mut self) {
        if let Some(i) = self
            .queue
            .iter()
            .position(|(_, m)| m.qos == QoS::AtMostOnce)
        {
            if let Some((_, msg)) = self.queue.remove(i) {
                self.queued_bytes -= message_bytes(&msg);
            }
            self.queued_qos0 -= 1;
        }
    }

    fn next_pkid(&mut self) -> u16 {
        // Ids are handed out in sequence, so the ones in use form one run that is
        // never longer than the in-flight window: the next id is always free.
        self.last_pkid = if self.last_pkid == u16::MAX {
            1
        } else {
            self.last_pkid + 1
        };
        self.last_pkid
    }

    /// Send a QoS 1/2 message into the window; `fresh` when it was not queued before.
    fn publish_now(&mut self, seq: u64, msg: Message, fresh: bool) -> Outcome {
        let pkid = self.next_pkid();
        if let Some(outbox) = self.outbox() {
            outbox.push_with(|buf| write_publish(buf, &msg, pkid, false));
        }
        match (&self.journal, fresh) {
            (Some(j), true) => j.queued(seq, &msg, Some(pkid)),
            (Some(j), false) => j.sent(seq, pkid),
            (None, _) => {}
        }
        self.inflight.push_back(Inflight {
            seq,
            pkid,
            msg,
            state: InflightState::Published,
        });
        Outcome {
            sent: 1,
            wrote: true,
            ..Outcome::default()
        }
    }

    /// Move queued messages into the window while it has room.
    pub(crate) fn fill_window(&mut self, lim: &SessionLimits) -> Outcome {
        let mut out = Outcome::default();
        let Some(outbox) = self.outbox().cloned() else {
            return out;
        };
        // QoS 0 messages at the head go out at once; QoS 1/2 ones need room in the window.
        while let Some((_, front)) = self.queue.front() {
            if front.qos == QoS::AtMostOnce {
                if let Some((_, msg)) = self.pop_queued() {
                    out.merge(send_qos0(&outbox, &msg, lim));
                }
            } else if self.inflight.len() < lim.max_inflight {
                if let Some((seq, msg)) = self.pop_queued() {
                    out.merge(self.publish_now(seq, msg, false));
                }
            } else {
                break;
            }
        }
        if self.queue.len() <= lim.max_queued / 4 && self.queued_bytes <= lim.max_queued_bytes / 4 {
            out.relieved = outbox.queue_short();
        }
        out
    }

    /// After a reconnect: resend the window in order (PUBLISH with DUP, or PUBREL), then fill it.
    pub(crate) fn resume(&mut self, lim: &SessionLimits) -> Outcome {
        let mut out = Outcome::default();
        if let Some(outbox) = self.outbox() {
            for f in &self.inflight {
                outbox.push_with(|buf| match f.state {
                    InflightState::Published => write_publish(buf, &f.msg, f.pkid, true),
                    InflightState::Released => encode(&Packet::PubRel(f.pkid), buf),
                });
                if f.state == InflightState::Published {
                    out.sent += 1;
                }
                out.wrote = true;
            }
        }
        out.merge(self.fill_window(lim));
        out
    }

    /// PUBACK from the client: QoS 1 delivery done.
    pub(crate) fn on_puback(&mut self, pkid: u16, lim: &SessionLimits) -> Outcome {
        if let Some(i) = self.find(pkid, QoS::AtLeastOnce, InflightState::Published) {
            if let Some(f) = self.inflight.remove(i) {
                self.log_done(f.seq, f.msg.qos);
            }
            return self.fill_window(lim);
        }
        Outcome::default()
    }

    /// PUBREC from the client: answer PUBREL (also for an id we no longer know, which is harmless).
    #[cfg(test)]
    pub(crate) fn on_pubrec(&mut self, pkid: u16) -> Outcome {
        self.mark_released(pkid);
        self.send_packet(&Packet::PubRel(pkid))
    }

    /// PUBREC from the client, without the answer: the router sends PUBREL itself
    /// when it has to wait for the commit of this state.
    pub(crate) fn mark_released(&mut self, pkid: u16) {
        if let Some(i) = self.find(pkid, QoS::ExactlyOnce, InflightState::Published) {
            self.inflight[i].state = InflightState::Released;
            if let Some(j) = &self.journal {
                j.released(self.inflight[i].seq);
            }
        }
    }

    /// PUBCOMP from the client: QoS 2 delivery done.
    pub(crate) fn on_pubcomp(&mut self, pkid: u16, lim: &SessionLimits) -> Outcome {
        if let Some(i) = self.find(pkid, QoS::ExactlyOnce, InflightState::Released) {
            if let Some(f) = self.inflight.remove(i) {
                self.log_done(f.seq, f.msg.qos);
            }
            return self.fill_window(lim);
        }
        Outcome::default()
    }

    fn find(&self, pkid: u16, qos: QoS, state: InflightState) -> Option<usize> {
        self.inflight
            .iter()
            .position(|f| f.pkid == pkid && f.msg.qos == qos && f.state == state)
    }

    /// Inbound QoS 2 PUBLISH: true if it is new and must be routed, false if it is a
    /// resend of one already routed and not yet released.
    pub(crate) fn accept_incoming_qos2(&mut self, pkid: u16) -> bool {
        let new = self.incoming_qos2.get_or_insert_default().insert(pkid);
        if let (true, Some(j)) = (new, &self.journal) {
            j.qos2_held(pkid);
        }
        new
    }

    /// Inbound PUBREL: forget the id.
    pub(crate) fn release_incoming_qos2(&mut self, pkid: u16) {
        if let Some(ids) = &mut self.incoming_qos2 {
            if let (true, Some(j)) = (ids.remove(&pkid), &self.journal) {
                j.qos2_released(pkid);
            }
        }
    }
}

fn send_qos0(outbox: &Outbox, msg: &Message, lim: &SessionLimits) -> Outcome {
    match outbox.push_droppable(lim.outbox, |buf| write_publish(buf, msg, 0, false)) {
        None => Outcome {
            dropped: 1,
            dropped_qos0: 1,
            ..Outcome::default()
        },
        Some(congested) => Outcome {
            sent: 1,
            wrote: true,
            congested,
            ..Outcome::default()
        },
    }
}

fn write_publish(buf: &mut BytesMut, msg: &Message, pkid: u16, dup: bool) {
    encode_publish(
        buf,
        &msg.topic,
        &msg.payload,
        msg.qos,
        msg.retain,
        dup,
        pkid,
    );
}

/// What a queued message costs, as the byte limits count it: its topic and
/// payload (a payload several sessions queue is counted in each).
fn message_bytes(msg: &Message) -> usize {
    msg.topic.len() + msg.payload.len()
}

#[cfg(test)]
mod tests;
