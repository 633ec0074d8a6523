//! Packets from a client and the messages they publish: each message goes to
//! every matching session, and a publisher that fills a subscriber's outbox is
//! braked until it drains.

use log_limit::LogLimit;
use tracing::warn;

use super::quota::{retained_bytes, RetainedEntry, UserKey};
use crate::message::Message;
use crate::metrics;
use crate::session::{ConnId, Outcome};
use mqtt_proto::codec::{Packet, Publish, QoS};

use super::{Router, SessionId};

impl Router {
    pub(super) fn packets(&mut self, conn: ConnId, packets: Vec<Packet>) {
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
        // Only a retained message counts against its user: the owner is looked up
        // (and copied) for those alone, not for every PUBLISH.
        let owner = p.retain.then(|| self.session_ref(sid).owner.clone());
        let msg = Message::new(&p.topic, p.payload, p.qos, p.retain);
        match p.qos {
            QoS::AtMostOnce => {
                self.route(msg, Some(sid), true, owner);
                Outcome::default()
            }
            QoS::AtLeastOnce => {
                let before = self.recorded();
                self.route(msg, Some(sid), true, owner);
                let durable = self.recorded() != before;
                self.confirm(sid, Packet::PubAck(p.pkid), durable)
            }
            QoS::ExactlyOnce => {
                let before = self.recorded();
                if self.session(sid).accept_incoming_qos2(p.pkid) {
                    self.route(msg, Some(sid), true, owner);
                }
                let durable = self.recorded() != before;
                self.confirm(sid, Packet::PubRec(p.pkid), durable)
            }
        }
    }

    /// Send a message to every matching session, once each, at the highest granted QoS.
    /// `origin` is the publishing session (to brake it when a subscriber is congested);
    /// `count` says whether the message counts as received from outside; `owner` is
    /// the user a retained message counts against (`None`: the broker's own, or a
    /// message that is not retained).
    pub(super) fn route(
        &mut self,
        msg: Message,
        origin: Option<SessionId>,
        count: bool,
        owner: Option<UserKey>,
    ) {
        // Only the in-process handle routes with no session, no owner, and counted
        // (a will has an owner, `$SYS` is not counted).
        let from_handle = origin.is_none() && owner.is_none() && count;
        // A refused PUBLISH is dropped; the caller still acknowledges it [MQTT-3.3.5-2].
        if origin.is_some_and(|sid| !self.acls.may_publish(sid, &msg.topic)) {
            return;
        }
        // Topics that start with `$` are the broker's own [MQTT-4.7.2-1]: a client's
        // PUBLISH or will, or an in-process publish, to one is refused the same way
        // and counted with the ACL refusals; only `$SYS` updates (count false) pass.
        if count && msg.topic.starts_with('$') {
            metrics::add(&self.metrics.publishes_denied, 1);
            tracing::debug!(topic = %msg.topic, "a publish to a $ topic is refused");
            return;
        }
        // A retained message a client's limits have no room for is dropped whole
        // (not retained, not delivered); the caller still acknowledges it.
        if msg.retain && !msg.payload.is_empty() {
            if let Some(user) = &owner {
                let replacing = self.retained.get(&msg.topic);
                let bytes = retained_bytes(&msg);
                if let Err(limit) = self
                    .quotas
                    .admits_retained(user.as_deref(), bytes, replacing)
                {
                    self.refuse_retained(&msg, user.as_deref(), limit);
                    return;
                }
            }
        }
        if count {
            metrics::add(&self.metrics.messages_received, 1);
        }
        if msg.retain {
            let old = if msg.payload.is_empty() {
                self.retained.remove(&msg.topic)
            } else {
                let entry = RetainedEntry {
                    msg: msg.clone(),
                    owner,
                };
                self.quotas.retained_added(&entry);
                self.retained.insert(&msg.topic, entry)
            };
            if let Some(old) = old {
                self.quotas.retained_removed(&old);
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
        let mut limits = self.limits;
        limits.budget_full = self.quotas.queues_full();
        // `deny_subscribe` holds at delivery too: a wider filter (`#`) that was
        // granted does not carry a denied topic to a client.
        let denied = self.topic_denied(&msg.topic);
        for &(sid, granted) in &matches {
            let session = self.session_ref(sid);
            if !self.acls.can_read(sid, &msg.topic)
                || (denied && session.is_remote())
                || (from_handle && session.no_local)
            {
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

    fn refuse_retained(&self, msg: &Message, user: Option<&str>, limit: &str) {
        metrics::add(&self.metrics.retained_refused, 1);
        static REFUSED: LogLimit = LogLimit::new(log_limit::MINUTE);
        if let Some(skipped) = REFUSED.check() {
            warn!(
                topic = %log_limit::shorten(&msg.topic),
                user = %log_limit::shorten(user.unwrap_or("")),
                bytes = retained_bytes(msg),
                "retained message dropped: {limit} reached{}",
                log_limit::suppressed(skipped)
            );
        }
    }

    /// The publisher `origin` filled `target`'s outbox past its soft limit: it waits
    /// for that outbox to drain before reading more.
    fn brake(&mut self, origin: Option<SessionId>, target: SessionId) {
        let Some(origin) = origin.filter(|&o| o != target) else {
            return;
        };
        let target = self.sessions[target as usize]
            .as_ref()
            .and_then(|s| s.brake_target().cloned());
        let publisher = self.sessions[origin as usize]
            .as_ref()
            .and_then(|s| s.outbox());
        if let (Some(target), Some(publisher)) = (target, publisher) {
            publisher.set_brake(target);
        }
    }
}
