//! SUBSCRIBE and UNSUBSCRIBE from clients, in-process subscriptions, and the
//! retained messages a new subscription receives.

use tracing::debug;

use crate::message::Message;
use crate::metrics;
use crate::session::{Link, Outcome, Session};
use mqtt_proto::codec::{Packet, QoS, SubAck, Subscribe, SubscribeReturnCode, Unsubscribe};
use mqtt_proto::topic;

use super::{Router, SessionId};

impl Router {
    pub(super) fn subscribe(&mut self, sid: SessionId, sub: Subscribe) -> Outcome {
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
        self.retained.for_each_match(filter, |_, kept| {
            found.push(kept.msg.with(kept.msg.qos.min(granted), true));
        });
        let remote = self.session_ref(sid).is_remote();
        found.retain(|m| {
            self.acls.can_read(sid, &m.topic) && !(remote && self.topic_denied(&m.topic))
        });
        let limits = self.limits;
        for msg in found {
            let out = self.session(sid).deliver(msg, &limits);
            self.account(sid, out);
        }
    }

    pub(super) fn unsubscribe(&mut self, sid: SessionId, unsub: Unsubscribe) -> Outcome {
        for filter in &unsub.filters {
            if self.session(sid).remove_subscription(filter) && self.subs.remove(filter, sid) {
                metrics::sub(&self.metrics.subscriptions, 1);
            }
        }
        let durable = self.is_persisted(sid);
        self.confirm(sid, Packet::UnsubAck(unsub.pkid), durable)
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

    pub(super) fn local_subscribe(
        &mut self,
        filter: String,
        qos: QoS,
        options: crate::handle::SubscribeOptions,
        tx: tokio::sync::mpsc::Sender<Message>,
        flag: std::sync::Arc<crate::outbox::Outbox>,
    ) -> Result<(), String> {
        topic::validate_topic_filter(&filter).map_err(|e| e.to_string())?;
        self.next_local += 1;
        let mut session = Session::new(format!("$local/{}", self.next_local).into(), true);
        session.link = Some(Link::Local { tx, flag });
        session.no_local = options.no_local;
        let sid = self.insert_session(session);
        self.acls.allow_all(sid);
        if self.subs.insert(&filter, sid, qos) {
            metrics::add(&self.metrics.subscriptions, 1);
        }
        self.session(sid)
            .subscriptions
            .insert(filter.clone().into_boxed_str(), qos);
        if options.retained {
            self.send_retained(sid, &filter, qos);
        }
        Ok(())
    }
}
