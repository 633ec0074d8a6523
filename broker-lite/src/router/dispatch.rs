//! Building the router, handing each event to the part that deals with it, and
//! the session slab and replies those parts share.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use tokio::sync::Notify;
use tracing::debug;

use crate::auth::{Auth, SessionAcls};
use crate::config::Config;
use crate::metrics::{self, Metrics};
use crate::outbox::OutboxLimits;
use crate::persist::{self, Loaded};
use crate::retained::RetainedStore;
use crate::session::{Outcome, Session, SessionLimits};
use crate::subscriptions::SubscriptionTree;
use crate::topic_limits::TopicLimits;
use mqtt_proto::codec::Packet;

use super::{Event, Router, SessionId};

impl Router {
    /// The password file and ACL rules, loaded once at start: connections check
    /// their CONNECT against them without asking the router.
    pub(crate) fn auth(&self) -> Arc<Auth> {
        self.auth.clone()
    }

    /// A router; with persistence on, the stored state is read back first.
    pub(crate) fn new(
        config: &Config,
        metrics: Arc<Metrics>,
        relief: Arc<Notify>,
    ) -> io::Result<Router> {
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
                max_queued_bytes: l.max_queued_bytes.max(1),
                budget_full: false,
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
            quotas: super::quota::Quotas::new(l),
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

    /// Send a reply that confirms something to the client. With persistence on it
    /// may wait for the commit (`durable`: it confirms a stored change).
    pub(super) fn confirm(&mut self, sid: SessionId, packet: Packet, durable: bool) -> Outcome {
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
    pub(super) fn recorded(&self) -> usize {
        self.journal.as_ref().map_or(0, |j| j.recorded())
    }

    pub(super) fn is_persisted(&self, sid: SessionId) -> bool {
        self.sessions[sid as usize]
            .as_ref()
            .is_some_and(|s| s.journal.is_some())
    }

    /// Handle one event; true means stop.
    pub(crate) fn handle(&mut self, event: Event) -> bool {
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
                self.route(msg, None, true, None);
                self.confirm_local(done, self.recorded() != before);
            }
            Event::LocalPublishMany { msgs, done } => {
                let before = self.recorded();
                for msg in msgs {
                    self.route(msg, None, true, None);
                }
                self.confirm_local(done, self.recorded() != before);
            }
            Event::LocalSubscribe {
                filter,
                qos,
                options,
                tx,
                flag,
                done,
            } => {
                let result = self.local_subscribe(filter, qos, options, tx, flag);
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
    pub(crate) fn wake_dirty(&mut self) {
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
    pub(crate) fn close_all(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.close();
        }
        for s in self.sessions.iter().flatten() {
            if let Some(outbox) = s.outbox() {
                outbox.close();
            }
        }
    }

    pub(super) fn session(&mut self, sid: SessionId) -> &mut Session {
        self.sessions[sid as usize]
            .as_mut()
            .expect("session ids in the router's maps point at live sessions")
    }

    pub(super) fn account(&mut self, sid: SessionId, out: Outcome) {
        if let Some(bytes) = self.sessions[sid as usize]
            .as_ref()
            .map(Session::queued_bytes)
        {
            self.note_queued(sid, bytes);
        }
        if out.dropped_budget > 0 {
            metrics::add(&self.metrics.queue_budget_drops, out.dropped_budget);
        }
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

    pub(super) fn insert_session(&mut self, session: Session) -> SessionId {
        metrics::add(&self.metrics.sessions, 1);
        if !session.clean {
            self.quotas.session_added(session.owner.as_deref());
        }
        let queued = session.queued_bytes();
        let sid = self.insert_slot(session);
        self.note_queued(sid, queued);
        sid
    }

    /// Session `sid` now queues `bytes`: the total against the budget, and its gauge.
    fn note_queued(&mut self, sid: SessionId, bytes: usize) {
        if let Some(total) = self.quotas.queued(sid as usize, bytes) {
            metrics::set(&self.metrics.queued_bytes, total as u64);
        }
    }

    fn insert_slot(&mut self, session: Session) -> SessionId {
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

    pub(super) fn remove_session(&mut self, sid: SessionId) {
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
        if !session.clean {
            self.quotas.session_removed(session.owner.as_deref());
        }
        self.note_queued(sid, 0);
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

    /// Whether a client's topic or filter is within `max_topic_length` and
    /// `max_topic_levels`; one that is not is counted and logged (at debug: a
    /// flood of them must not flood the log too).
    pub(super) fn topic_fits(&self, topic: &str, what: &str, client_id: &str) -> bool {
        match self.topic_limits.check_topic(topic) {
            Ok(()) => true,
            Err(why) => {
                metrics::add(&self.metrics.topics_refused, 1);
                debug!(client_id, "{what} refused: {why}");
                false
            }
        }
    }

    pub(super) fn session_ref(&self, sid: SessionId) -> &Session {
        self.sessions[sid as usize]
            .as_ref()
            .expect("session ids in the router's maps point at live sessions")
    }

    /// A topic no client may receive: one of the `deny_subscribe` filters matches it.
    pub(super) fn topic_denied(&self, topic: &str) -> bool {
        self.deny_subscribe
            .iter()
            .any(|d| mqtt_proto::topic::matches(d, topic))
    }

    /// A filter is denied when it lies inside one of the `deny_subscribe` filters.
    pub(super) fn is_denied(&self, filter: &str) -> bool {
        self.deny_subscribe
            .iter()
            .any(|d| mqtt_proto::topic::filter_within(filter, d))
    }
}
