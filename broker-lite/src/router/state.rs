use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use mqtt_proto::codec::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, Publish, QoS, SubAck, Subscribe,
    SubscribeReturnCode, Unsubscribe,
};
use mqtt_proto::topic;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::auth::{Auth, SessionAcls};
use crate::config::Config;
use crate::connection::End;
use crate::message::Message;
use crate::metrics::{self, Metrics};
use crate::outbox::{Outbox, OutboxLimits};
use crate::persist::{self, Journal, Loaded, Owner};
use crate::retained::RetainedStore;
use crate::session::{ConnId, Link, Outcome, Session, SessionLimits};
use crate::subscriptions::SubscriptionTree;
use crate::topic_limits::TopicLimits;

use super::Event;

/// Index of a session in the router's slab.
type SessionId = u32;

/// Sessions, subscriptions and retained messages, and the rules that connect them.
pub(crate) struct Router {
    limits: SessionLimits,
    /// `max_topic_length`, `max_topic_levels`, `max_subscriptions_per_client`.
    topic_limits: TopicLimits,
    deny_subscribe: Vec<String>,
    metrics: Arc<Metrics>,
    sessions: Vec<Option<Session>>,
    free: Vec<SessionId>,
    by_client: HashMap<Arc<str>, SessionId>,
    by_conn: HashMap<ConnId, SessionId>,
    subs: SubscriptionTree<SessionId>,
    retained: RetainedStore<Message>,
    /// Sessions whose outbox got bytes during this batch.
    dirty: Vec<SessionId>,
    /// In-process sessions whose receiver is gone.
    gone: Vec<SessionId>,
    /// Scratch space for the subscribers matching one message.
    matches: Vec<(SessionId, QoS)>,
    next_local: u64,
    /// Told when a congested client catches up, so braked publishers read again.
    relief: Arc<Notify>,
    /// Records changes of retained messages and persistent sessions (persistence on).
    journal: Option<Journal>,
    /// Password and ACL files, handed to connections for their CONNECT.
    auth: Arc<Auth>,
    /// Each session's compiled ACL.
    acls: SessionAcls,
}

impl Router {
    /// The password file and ACL rules, loaded once at start: connections check
    /// their CONNECT against them without asking the router.
    pub fn auth(&self) -> Arc<Auth> {
        self.auth.clone()
    }

    /// A router; with persistence on, the stored state is read back first.
    pub fn new(config: &Config, metrics: Arc<Metrics>, relief: Arc<Notify>) -> io::Result<Router> {
        let (journal, loaded) = match &config.persistence {
            Some(p) => {
                let (journal, loaded) = persist::open(p).map_err(io::Error::other)?;
                (Some(journal), loaded)
            }
            None => (None, Loaded::default()),
        };
        let auth = Arc::new(Auth::load_for_start(&config.auth)?);
        let acls = SessionAcls::new(auth.has_acl(), metrics.clone());
        let l = &config.limits;
        let mut router = Router {
            limits: SessionLimits {
                max_inflight: usize::from(l.max_inflight).max(1),
                max_queued: l.max_queued_messages.max(1),
                overflow: config.queue_overflow,
                outbox: OutboxLimits::for_packet_size(l.max_packet_size),
            },
            topic_limits: TopicLimits::from_config(l),
            deny_subscribe: config.deny_subscribe.clone(),
            metrics,
            sessions: Vec::new(),
            free: Vec::new(),
            by_client: HashMap::new(),
            by_conn: HashMap::new(),
            subs: SubscriptionTree::new(),
            retained: RetainedStore::new(),
            dirty: Vec::new(),
            gone: Vec::new(),
            matches: Vec::new(),
            next_local: 0,
            relief,
            journal,
            auth,
            acls,
        };
        router.restore(loaded);
        Ok(router)
    }

    /// Put the retained messages and sessions read from the file in place.
    fn restore(&mut self, loaded: Loaded) {
        let Some(journal) = &self.journal else {
            return;
        };
        let (retained, sessions) = (loaded.retained.len(), loaded.sessions.len());
        for msg in loaded.retained {
            self.retained.insert(&msg.topic.clone(), msg);
        }
        metrics::set(&self.metrics.retained_messages, self.retained.len() as u64);
        let mut restored = Vec::with_capacity(sessions);
        for mut stored in loaded.sessions {
            let owner = std::mem::take(&mut stored.owner);
            let known = matches!(owner, Owner::User(_));
            let log = journal.restored_session(&stored.client_id, known);
            restored.push((Session::restore(stored, log, &self.limits), owner));
        }
        for (session, owner) in restored {
            let client_id = session.client_id.clone();
            let filters: Vec<(Box<str>, QoS)> = session
                .subscriptions
                .iter()
                .map(|(f, q)| (f.clone(), *q))
                .collect();
            let sid = self.insert_session(session);
            // The owner's rules apply from the start: the session receives what
            // its user may read while its client is away, and only that user
            // can resume it.
            if let Owner::User(user) = &owner {
                let acl = self.auth.acl_for(user.as_deref(), &client_id);
                self.acls.set(sid, &client_id, user.as_deref(), acl);
            }
            self.by_client.insert(client_id, sid);
            for (filter, qos) in filters {
                if self.subs.insert(&filter, sid, qos) {
                    metrics::add(&self.metrics.subscriptions, 1);
                }
            }
        }
        info!(retained, sessions, "persistence: state read back");
    }

    /// Send a reply that confirms something to the client. With persistence on it
    /// may wait for the commit (`durable`: it confirms a stored change).
    fn confirm(&mut self, sid: SessionId, packet: Packet, durable: bool) -> Outcome {
        let session = self.sessions[sid as usize]
            .as_mut()
            .expect("session ids in the router's maps point at live sessions");
        match &self.journal {
            Some(journal) => journal.confirm(session, packet, durable),
            None => session.send_packet(&packet),
        }
    }

    /// Answer an in-process publish: at once, or after the commit when it changed
    /// stored state (a persistent session's queue, a retained message).
    fn confirm_local(&self, done: tokio::sync::oneshot::Sender<()>, durable: bool) {
        match &self.journal {
            Some(journal) => journal.confirm_local(done, durable),
            None => {
                let _ = done.send(());
            }
        }
    }

    /// Changes recorded so far: a difference across a call means it changed stored state.
    fn recorded(&self) -> usize {
        self.journal.as_ref().map_or(0, |j| j.recorded())
    }

    fn is_persisted(&self, sid: SessionId) -> bool {
        self.sessions[sid as usize]
            .as_ref()
            .is_some_and(|s| s.journal.is_some())
    }

    /// Handle one event; true means stop.
    pub fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Connect {
                conn,
                connect,
                outbox,
            } => self.connect(conn, *connect, outbox),
            Event::Packets { conn, packets } => self.packets(conn, packets),
            Event::Closed {
                conn,
                graceful,
                why,
            } => self.closed(conn, graceful, &why),
            Event::LocalPublish { msg, done } => {
                let before = self.recorded();
                self.route(msg, None, true);
                self.confirm_local(done, self.recorded() != before);
            }
            Event::LocalPublishMany { msgs, done } => {
                let before = self.recorded();
                for msg in msgs {
                    self.route(msg, None, true);
                }
                self.confirm_local(done, self.recorded() != before);
            }
            Event::LocalSubscribe {
                filter,
                qos,
                tx,
                done,
            } => {
                let result = self.local_subscribe(filter, qos, tx);
                let _ = done.send(result);
            }
            Event::Reload { auth, done } => {
                self.acls.recompile(&auth);
                self.auth = auth;
                let _ = done.send(());
            }
            Event::SysTick => self.publish_sys(),
            Event::Shutdown => return true,
        }
        self.reap_gone();
        false
    }

    /// Wake every connection that has bytes to write.
    pub fn wake_dirty(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.flush();
        }
        if self.dirty.len() > 1 {
            self.dirty.sort_unstable();
            self.dirty.dedup();
        }
        for sid in self.dirty.drain(..) {
            if let Some(outbox) = self
                .sessions
                .get(sid as usize)
                .and_then(|s| s.as_ref())
                .and_then(|s| s.outbox())
            {
                outbox.wake();
            }
        }
    }

    /// Close every connection (shutdown).
    pub fn close_all(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.close();
        }
        for s in self.sessions.iter().flatten() {
            if let Some(outbox) = s.outbox() {
                outbox.close();
            }
        }
    }

    fn session(&mut self, sid: SessionId) -> &mut Session {
        self.sessions[sid as usize]
            .as_mut()
            .expect("session ids in the router's maps point at live sessions")
    }

    fn account(&mut self, sid: SessionId, out: Outcome) {
        if out.sent > 0 {
            metrics::add(&self.metrics.messages_sent, out.sent);
        }
        if out.dropped > 0 {
            metrics::add(&self.metrics.messages_dropped, out.dropped);
        }
        if out.dropped_qos0 > 0 {
            metrics::add(&self.metrics.messages_dropped_qos0, out.dropped_qos0);
        }
        if out.wrote {
            self.dirty.push(sid);
        }
        if out.closed {
            self.gone.push(sid);
        }
        if out.relieved {
            self.relief.notify_waiters();
        }
    }

    fn insert_session(&mut self, session: Session) -> SessionId {
        metrics::add(&self.metrics.sessions, 1);
        match self.free.pop() {
            Some(sid) => {
                self.sessions[sid as usize] = Some(session);
                sid
            }
            None => {
                self.sessions.push(Some(session));
                (self.sessions.len() - 1) as SessionId
            }
        }
    }

    fn remove_session(&mut self, sid: SessionId) {
        let Some(session) = self.sessions[sid as usize].take() else {
            return;
        };
        let mut removed = 0;
        for filter in session.subscriptions.keys() {
            if self.subs.remove(filter, sid) {
                removed += 1;
            }
        }
        metrics::sub(&self.metrics.subscriptions, removed);
        self.acls.clear(sid);
        if let (Some(journal), true) = (&self.journal, session.journal.is_some()) {
            journal.session_gone(&session.client_id);
        }
        if self.by_client.get(&session.client_id) == Some(&sid) {
            self.by_client.remove(&session.client_id);
        }
        metrics::sub(&self.metrics.sessions, 1);
        self.free.push(sid);
    }

    fn reap_gone(&mut self) {
        while let Some(sid) = self.gone.pop() {
            self.remove_session(sid);
        }
    }

    fn connect(&mut self, conn: ConnId, connect: Connect, outbox: Arc<Outbox>) {
        let mut session_present = false;
        let user = connect.username.as_deref();
        let existing = self.by_client.get(connect.client_id.as_str()).copied();
        let sid = match existing {
            Some(sid) => {
                self.take_over(sid);
                let old_clean = self.session(sid).clean;
                let other_user = self.acls.belongs_to_another_user(sid, user);
                if connect.clean_session || old_clean || other_user {
                    self.remove_session(sid);
                    self.new_session(&connect)
                } else {
                    session_present = true;
                    if let Some(log) = &mut self.session(sid).journal {
                        log.claim(user);
                    }
                    sid
                }
            }
            None => self.new_session(&connect),
        };
        self.by_conn.insert(conn, sid);
        metrics::add(&self.metrics.clients_connected, 1);
        let acl = self.auth.acl_for(user, &connect.client_id);
        self.acls.set(sid, &connect.client_id, user, acl);
        let will = connect.will.filter(|w| {
            self.topic_fits(&w.topic, "will topic", &connect.client_id)
                && self.acls.may_leave_will(sid, &w.topic)
        });
        let limits = self.limits;
        let session = self.session(sid);
        session.will = will.map(Box::new);
        session.link = Some(Link::Remote { conn, outbox });
        let mut out = session.send_packet(&Packet::ConnAck(ConnAck {
            session_present,
            code: ConnectReturnCode::Accepted,
        }));
        if session_present {
            let resumed = session.resume(&limits);
            out.sent += resumed.sent;
            out.dropped += resumed.dropped;
            out.dropped_qos0 += resumed.dropped_qos0;
        }
        self.account(sid, out);
    }

    fn new_session(&mut self, connect: &Connect) -> SessionId {
        let client_id: Arc<str> = connect.client_id.as_str().into();
        let mut session = Session::new(client_id.clone(), connect.clean_session);
        if let (Some(journal), false) = (&self.journal, connect.clean_session) {
            let user = connect.username.as_deref();
            session.journal = Some(Box::new(journal.new_session(&connect.client_id, user)));
        }
        let sid = self.insert_session(session);
        self.by_client.insert(client_id, sid);
        sid
    }

    /// The client id connected again: close the old connection and send its will.
    fn take_over(&mut self, sid: SessionId) {
        let session = self.session(sid);
        let Some(old_conn) = session.conn() else {
            return;
        };
        if let Some(outbox) = session.outbox() {
            outbox.close();
        }
        session.link = None;
        let will = session.will.take();
        self.by_conn.remove(&old_conn);
        metrics::sub(&self.metrics.clients_connected, 1);
        if let Some(will) = will {
            self.publish_will(*will);
        }
    }

    fn closed(&mut self, conn: ConnId, graceful: bool, why: &End) {
        let Some(sid) = self.by_conn.remove(&conn) else {
            debug!(conn, "connection ended after its session moved on: {why}");
            return;
        };
        let client_id = &*self.session(sid).client_id;
        match why {
            End::Protocol(_) => warn!(conn, client_id, "closed the connection: {why}"),
            End::KeepAliveExpired => info!(conn, client_id, "{why}"),
            _ => debug!(conn, client_id, "connection ended: {why}"),
        }
        metrics::sub(&self.metrics.clients_connected, 1);
        let session = self.session(sid);
        session.link = None;
        let will = session.will.take();
        let clean = session.clean;
        if !graceful {
            if let Some(will) = will {
                self.publish_will(*will);
            }
        }
        if clean {
            self.remove_session(sid);
        }
    }

    fn publish_will(&mut self, will: LastWill) {
        metrics::add(&self.metrics.wills_published, 1);
        let msg = Message::new(&will.topic, will.payload, will.qos, will.retain);
        self.route(msg, None, true);
    }

    fn packets(&mut self, conn: ConnId, packets: Vec<Packet>) {
        let Some(&sid) = self.by_conn.get(&conn) else {
            return;
        };
        let limits = self.limits;
        for packet in packets {
            let out = match packet {
                Packet::Publish(p) => self.inbound_publish(sid, p),
                Packet::PubAck(id) => self.session(sid).on_puback(id, &limits),
                Packet::PubRec(id) => {
                    // PUBREL waits for the commit: once the client has it, it may
                    // PUBCOMP and forget the message, so it must not be resent.
                    self.session(sid).mark_released(id);
                    let durable = self.is_persisted(sid);
                    self.confirm(sid, Packet::PubRel(id), durable)
                }
                Packet::PubRel(id) => {
                    self.session(sid).release_incoming_qos2(id);
                    let durable = self.is_persisted(sid);
                    self.confirm(sid, Packet::PubComp(id), durable)
                }
                Packet::PubComp(id) => self.session(sid).on_pubcomp(id, &limits),
                Packet::Subscribe(s) => self.subscribe(sid, s),
                Packet::Unsubscribe(u) => self.unsubscribe(sid, u),
                // The connection answers PINGREQ and handles CONNECT/DISCONNECT itself,
                // and closes on packets only a server sends.
                _ => Outcome::default(),
            };
            self.account(sid, out);
        }
        if let Some(outbox) = self.session(sid).outbox() {
            outbox.batch_done();
        }
    }

    fn inbound_publish(&mut self, sid: SessionId, p: Publish) -> Outcome {
        // Too long or too deep: not a protocol violation, so the connection stays;
        // the message is dropped, counted and still acknowledged (like an ACL refusal),
        // so that a QoS 1/2 publisher does not resend it or stall its window.
        if !self.topic_fits(&p.topic, "PUBLISH topic", &self.session_ref(sid).client_id) {
            return match p.qos {
                QoS::AtMostOnce => Outcome::default(),
                QoS::AtLeastOnce => self.confirm(sid, Packet::PubAck(p.pkid), false),
                QoS::ExactlyOnce => {
                    // PUBREL will come and must be answered; the id is held as usual.
                    let before = self.recorded();
                    self.session(sid).accept_incoming_qos2(p.pkid);
                    let durable = self.recorded() != before;
                    self.confirm(sid, Packet::PubRec(p.pkid), durable)
                }
            };
        }
        let msg = Message::new(&p.topic, p.payload, p.qos, p.retain);
        match p.qos {
            QoS::AtMostOnce => {
                self.route(msg, Some(sid), true);
                Outcome::default()
            }
            QoS::AtLeastOnce => {
                let before = self.recorded();
                self.route(msg, Some(sid), true);
                let durable = self.recorded() != before;
                self.confirm(sid, Packet::PubAck(p.pkid), durable)
            }
            QoS::ExactlyOnce => {
                let before = self.recorded();
                if self.session(sid).accept_incoming_qos2(p.pkid) {
                    self.route(msg, Some(sid), true);
                }
                let durable = self.recorded() != before;
                self.confirm(sid, Packet::PubRec(p.pkid), durable)
            }
        }
    }

    /// Send a message to every matching session, once each, at the highest granted QoS.
    /// `origin` is the publishing session (to brake it when a subscriber is congested);
    /// `count` says whether the message counts as received from outside.
    fn route(&mut self, msg: Message, origin: Option<SessionId>, count: bool) {
        // A refused PUBLISH is dropped; the caller still acknowledges it [MQTT-3.3.5-2].
        if origin.is_some_and(|sid| !self.acls.may_publish(sid, &msg.topic)) {
            return;
        }
        if count {
            metrics::add(&self.metrics.messages_received, 1);
        }
        if msg.retain {
            if msg.payload.is_empty() {
                self.retained.remove(&msg.topic);
            } else {
                self.retained.insert(&msg.topic, msg.clone());
            }
            metrics::set(&self.metrics.retained_messages, self.retained.len() as u64);
            if let Some(journal) = &self.journal {
                journal.retained(&msg);
            }
        }
        let mut matches = std::mem::take(&mut self.matches);
        matches.clear();
        self.subs
            .for_each_match(&msg.topic, |sid, qos| matches.push((sid, qos)));
        if matches.len() > 1 {
            matches.sort_unstable_by_key(|m| m.0);
            matches.dedup_by(|next, kept| {
                let same = next.0 == kept.0;
                if same {
                    kept.1 = kept.1.max(next.1);
                }
                same
            });
        }
        let limits = self.limits;
        for &(sid, granted) in &matches {
            if !self.acls.can_read(sid, &msg.topic) {
                continue;
            }
            let out = self
                .session(sid)
                .deliver(msg.with(msg.qos.min(granted), false), &limits);
            if out.congested {
                self.brake(origin, sid);
            }
            self.account(sid, out);
        }
        self.matches = matches;
    }

    /// The publisher `origin` filled `target`'s outbox past its soft limit: it waits
    /// for that outbox to drain before reading more.
    fn brake(&mut self, origin: Option<SessionId>, target: SessionId) {
        let Some(origin) = origin.filter(|&o| o != target) else {
            return;
        };
        let target = self.sessions[target as usize]
            .as_ref()
            .and_then(|s| s.outbox().cloned());
        let publisher = self.sessions[origin as usize]
            .as_ref()
            .and_then(|s| s.outbox());
        if let (Some(target), Some(publisher)) = (target, publisher) {
            publisher.set_brake(target);
        }
    }

    fn subscribe(&mut self, sid: SessionId, sub: Subscribe) -> Outcome {
        let mut codes = Vec::with_capacity(sub.filters.len());
        let mut granted = Vec::with_capacity(sub.filters.len());
        for (filter, qos) in sub.filters {
            let client_id = &self.session_ref(sid).client_id;
            if !self.topic_fits(&filter, "topic filter", client_id)
                || !self.has_room_for(sid, &filter)
                || self.is_denied(&filter)
                || !self.acls.may_subscribe(sid, &filter)
            {
                codes.push(SubscribeReturnCode::Failure);
                continue;
            }
            if self.subs.insert(&filter, sid, qos) {
                metrics::add(&self.metrics.subscriptions, 1);
            }
            codes.push(SubscribeReturnCode::Success(qos));
            self.session(sid).add_subscription(&filter, qos);
            granted.push((filter, qos));
        }
        let durable = self.is_persisted(sid);
        let suback = self.confirm(
            sid,
            Packet::SubAck(SubAck {
                pkid: sub.pkid,
                return_codes: codes,
            }),
            durable,
        );
        self.account(sid, suback);
        // Retained messages follow the SUBACK.
        for (filter, qos) in granted {
            self.send_retained(sid, &filter, qos);
        }
        Outcome::default()
    }

    /// Retained messages for a new subscription, with the retain flag set.
    fn send_retained(&mut self, sid: SessionId, filter: &str, granted: QoS) {
        let mut found = Vec::new();
        self.retained.for_each_match(filter, |_, msg| {
            found.push(msg.with(msg.qos.min(granted), true));
        });
        found.retain(|m| self.acls.can_read(sid, &m.topic));
        let limits = self.limits;
        for msg in found {
            let out = self.session(sid).deliver(msg, &limits);
            self.account(sid, out);
        }
    }

    fn unsubscribe(&mut self, sid: SessionId, unsub: Unsubscribe) -> Outcome {
        for filter in &unsub.filters {
            if self.session(sid).remove_subscription(filter) && self.subs.remove(filter, sid) {
                metrics::sub(&self.metrics.subscriptions, 1);
            }
        }
        let durable = self.is_persisted(sid);
        self.confirm(sid, Packet::UnsubAck(unsub.pkid), durable)
    }

    /// Whether a client's topic or filter is within `max_topic_length` and
    /// `max_topic_levels`; one that is not is counted and logged (at debug: a
    /// flood of them must not flood the log too).
    fn topic_fits(&self, topic: &str, what: &str, client_id: &str) -> bool {
        match self.topic_limits.check_topic(topic) {
            Ok(()) => true,
            Err(why) => {
                metrics::add(&self.metrics.topics_refused, 1);
                debug!(client_id, "{what} refused: {why}");
                false
            }
        }
    }

    /// Whether the session may hold `filter`: it has it already (a replacement),
    /// or holds fewer than `max_subscriptions_per_client`. Refusals are counted.
    fn has_room_for(&self, sid: SessionId, filter: &str) -> bool {
        let session = self.session_ref(sid);
        let held = &session.subscriptions;
        if held.contains_key(filter) || self.topic_limits.may_add_subscription(held.len()) {
            return true;
        }
        metrics::add(&self.metrics.subscriptions_refused, 1);
        debug!(
            client_id = &*session.client_id,
            filter, "subscription refused: max_subscriptions_per_client reached"
        );
        false
    }

    fn session_ref(&self, sid: SessionId) -> &Session {
        self.sessions[sid as usize]
            .as_ref()
            .expect("session ids in the router's maps point at live sessions")
    }

    /// A filter is denied when it lies inside one of the `deny_subscribe` filters.
    fn is_denied(&self, filter: &str) -> bool {
        self.deny_subscribe
            .iter()
            .any(|d| topic::filter_within(filter, d))
    }

    fn local_subscribe(
        &mut self,
        filter: String,
        qos: QoS,
        tx: tokio::sync::mpsc::Sender<Message>,
    ) -> Result<(), String> {
        topic::validate_topic_filter(&filter).map_err(|e| e.to_string())?;
        self.next_local += 1;
        let mut session = Session::new(format!("$local/{}", self.next_local).into(), true);
        session.link = Some(Link::Local(tx));
        let sid = self.insert_session(session);
        self.acls.allow_all(sid);
        if self.subs.insert(&filter, sid, qos) {
            metrics::add(&self.metrics.subscriptions, 1);
        }
        self.session(sid)
            .subscriptions
            .insert(filter.clone().into_boxed_str(), qos);
        self.send_retained(sid, &filter, qos);
        Ok(())
    }

    fn publish_sys(&mut self) {
        let m = self.metrics.snapshot();
        let values: [(&str, String); 16] = [
            ("clients/connected", m.clients_connected.to_string()),
            ("clients/total", m.sessions.to_string()),
            ("messages/received", m.messages_received.to_string()),
            ("messages/sent", m.messages_sent.to_string()),
            ("messages/dropped", m.messages_dropped.to_string()),
            ("messages/dropped qos0", m.messages_dropped_qos0.to_string()),
            ("limits/topics refused", m.topics_refused.to_string()),
            (
                "limits/subscriptions refused",
                m.subscriptions_refused.to_string(),
            ),
            ("bytes/received", m.bytes_received.to_string()),
            ("bytes/sent", m.bytes_sent.to_string()),
            ("retained messages/count", m.retained_messages.to_string()),
            ("uptime", format!("{} seconds", m.uptime_secs)),
            ("auth/logins refused", m.logins_refused.to_string()),
            ("auth/publishes denied", m.publishes_denied.to_string()),
            (
                "auth/subscriptions denied",
                m.subscriptions_denied.to_string(),
            ),
            (
                "version",
                format!("broker-lite {}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        for (name, value) in values {
            let topic = format!("$SYS/broker/{name}");
            let msg = Message::new(&topic, value.into(), QoS::AtMostOnce, true);
            self.route(msg, None, false);
        }
    }
}
