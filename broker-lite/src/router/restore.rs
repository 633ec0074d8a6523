//! Reading the persistence file back: retained messages and persistent
//! sessions are put in place before the router serves anyone.

use tracing::info;

use crate::metrics;
use crate::persist::{Loaded, Owner};
use crate::session::Session;
use mqtt_proto::codec::QoS;

use super::Router;

impl Router {
    /// Put the retained messages and sessions read from the file in place.
    pub(super) fn restore(&mut self, loaded: Loaded) {
        let Some(journal) = &self.journal else {
            return;
        };
        let (retained, sessions) = (loaded.retained.len(), loaded.sessions.len());
        for msg in loaded.retained {
            // The file does not say who set it: it counts in the totals only.
            let entry = super::quota::RetainedEntry { msg, owner: None };
            self.quotas.retained_added(&entry);
            if let Some(old) = self.retained.insert(&entry.msg.topic.clone(), entry) {
                self.quotas.retained_removed(&old);
            }
        }
        metrics::set(&self.metrics.retained_messages, self.retained.len() as u64);
        let mut restored = Vec::with_capacity(sessions);
        for mut stored in loaded.sessions {
            let owner = std::mem::take(&mut stored.owner);
            let known = matches!(owner, Owner::User(_));
            let log = journal.restored_session(&stored.client_id, known);
            let mut session = Session::restore(stored, log, &self.limits);
            if let Owner::User(Some(user)) = &owner {
                session.owner = Some(user.as_str().into());
            }
            restored.push((session, owner));
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
}
