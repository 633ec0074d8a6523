//! The router's view of the ACLs: one compiled `ClientAcl` per session slot,
//! set when a client connects, and the checks that count and log refusals.
//!
//! With no ACL file every check passes at the cost of one branch. A session read
//! back from the persistence file gets its owner's rules at start; one stored
//! without an owner (by a broker-lite that did not record it) may read nothing
//! until a client connects to it: its rules are not known yet.

use std::sync::Arc;

use tracing::{debug, warn};

use crate::metrics::{self, Metrics};

use super::acl::ClientAcl;

/// What one session slot may do.
#[derive(Debug, Default)]
enum Entry {
    /// No client connected to it yet: nothing, when there is an ACL file.
    #[default]
    Unknown,
    /// In-process subscribers: everything.
    All,
    Rules {
        client_id: Box<str>,
        user: Option<Box<str>>,
        acl: Box<ClientAcl>,
    },
}

/// ACLs of every session, indexed like the router's session slab.
#[derive(Debug)]
pub(crate) struct SessionAcls {
    /// False when there is no ACL file: every check passes.
    enforced: bool,
    entries: Vec<Entry>,
    metrics: Arc<Metrics>,
}

impl SessionAcls {
    pub(crate) fn new(enforced: bool, metrics: Arc<Metrics>) -> SessionAcls {
        SessionAcls {
            enforced,
            entries: Vec::new(),
            metrics,
        }
    }

    fn put(&mut self, sid: u32, entry: Entry) {
        if !self.enforced {
            return;
        }
        let i = sid as usize;
        if self.entries.len() <= i {
            self.entries.resize_with(i + 1, Entry::default);
        }
        self.entries[i] = entry;
    }

    /// A reload put new ACL rules in force: every session's rules are compiled
    /// again for the user and client id they were compiled for, so that what a
    /// connected client may do changes at once (its subscriptions stay; each
    /// delivery is checked against the new rules).
    pub(crate) fn recompile(&mut self, auth: &super::Auth) {
        for entry in &mut self.entries {
            if let Entry::Rules {
                client_id,
                user,
                acl,
            } = entry
            {
                match auth.acl_for(user.as_deref(), client_id) {
                    Some(new) => **acl = new,
                    None => *entry = Entry::All,
                }
            }
        }
    }

    /// The rules of the client that just connected to session `sid`.
    pub(crate) fn set(
        &mut self,
        sid: u32,
        client_id: &str,
        user: Option<&str>,
        acl: Option<ClientAcl>,
    ) {
        let entry = match acl {
            Some(acl) => Entry::Rules {
                client_id: client_id.into(),
                user: user.map(Into::into),
                acl: Box::new(acl),
            },
            None => Entry::All,
        };
        self.put(sid, entry);
    }

    /// Was session `sid` last used by a user other than `user`? Then a client
    /// resuming it must not get what was queued under the other user's rules:
    /// the router starts a new session instead. False without an ACL file, and
    /// for a session read back from a file that did not record its user.
    pub(crate) fn belongs_to_another_user(&self, sid: u32, user: Option<&str>) -> bool {
        match self.entry(sid) {
            Entry::Rules { user: last, .. } => last.as_deref() != user,
            _ => false,
        }
    }

    /// Session `sid` belongs to the broker's own process.
    pub(crate) fn allow_all(&mut self, sid: u32) {
        self.put(sid, Entry::All);
    }

    /// The slot is free again.
    pub(crate) fn clear(&mut self, sid: u32) {
        if let Some(e) = self.entries.get_mut(sid as usize) {
            *e = Entry::Unknown;
        }
    }

    fn entry(&self, sid: u32) -> &Entry {
        self.entries.get(sid as usize).unwrap_or(&Entry::Unknown)
    }

    /// May session `sid` receive a message on `topic`? Not counted: a wide
    /// subscription meeting a topic it may not read is the ACL working.
    pub(crate) fn can_read(&self, sid: u32, topic: &str) -> bool {
        if !self.enforced {
            return true;
        }
        match self.entry(sid) {
            Entry::Unknown => false,
            Entry::All => true,
            Entry::Rules { acl, .. } => acl.can_read(topic),
        }
    }

    fn check(&self, sid: u32, what: &str, target: &str, ok: impl Fn(&ClientAcl) -> bool) -> bool {
        if !self.enforced {
            return true;
        }
        let (allowed, client_id) = match self.entry(sid) {
            Entry::Unknown => (false, ""),
            Entry::All => (true, ""),
            Entry::Rules { acl, client_id, .. } => (ok(acl), &**client_id),
        };
        if !allowed {
            debug!(client_id, "ACL refuses {what} {target:?}");
        }
        allowed
    }

    /// May session `sid` publish to `topic`? A refusal is counted.
    pub(crate) fn may_publish(&self, sid: u32, topic: &str) -> bool {
        let ok = self.check(sid, "publishing to", topic, |a| a.can_write(topic));
        if !ok {
            metrics::add(&self.metrics.publishes_denied, 1);
        }
        ok
    }

    /// May session `sid` subscribe to `filter`? A refusal is counted.
    pub(crate) fn may_subscribe(&self, sid: u32, filter: &str) -> bool {
        let ok = self.check(sid, "subscribing to", filter, |a| a.can_subscribe(filter));
        if !ok {
            metrics::add(&self.metrics.subscriptions_denied, 1);
        }
        ok
    }

    /// May session `sid` leave a will on `topic`? A refusal is counted as a
    /// publish refused and logged: the client is told nothing.
    pub(crate) fn may_leave_will(&self, sid: u32, topic: &str) -> bool {
        let ok = self.may_publish(sid, topic);
        if !ok {
            let client_id = match self.entry(sid) {
                Entry::Rules { client_id, .. } => &**client_id,
                _ => "",
            };
            warn!(
                client_id = %log_limit::shorten(client_id),
                topic = %log_limit::shorten(topic),
                "will dropped: the ACL refuses its topic"
            );
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::acl::AclFile;
    use super::*;

    fn acls() -> (SessionAcls, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        (SessionAcls::new(true, metrics.clone()), metrics)
    }

    #[test]
    fn without_an_acl_file_everything_passes() {
        let acls = SessionAcls::new(false, Arc::new(Metrics::new()));
        assert!(acls.can_read(7, "any/topic"));
        assert!(acls.may_publish(7, "any/topic"));
        assert!(acls.may_subscribe(7, "#"));
    }

    #[test]
    fn a_session_follows_its_clients_rules_and_refusals_are_counted() {
        let (mut acls, metrics) = acls();
        let file = AclFile::parse("topic read in/#\ntopic write out/#\n", Path::new("a")).unwrap();
        acls.set(3, "c", None, Some(file.compile(None, "c")));
        assert!(acls.can_read(3, "in/x") && !acls.can_read(3, "out/x"));
        assert!(acls.may_publish(3, "out/x") && !acls.may_publish(3, "in/x"));
        assert!(acls.may_subscribe(3, "in/+") && !acls.may_subscribe(3, "out/#"));
        assert!(!acls.may_leave_will(3, "in/will"));
        let m = metrics.snapshot();
        assert_eq!((m.publishes_denied, m.subscriptions_denied), (2, 1));
    }

    #[test]
    fn a_session_remembers_which_user_it_was_compiled_for() {
        let (mut acls, _) = acls();
        let file = AclFile::parse("topic read #\n", Path::new("a")).unwrap();
        assert!(
            !acls.belongs_to_another_user(1, Some("bob")),
            "unknown session"
        );
        acls.set(
            1,
            "c",
            Some("alice"),
            Some(file.compile(Some("alice"), "c")),
        );
        assert!(!acls.belongs_to_another_user(1, Some("alice")));
        assert!(acls.belongs_to_another_user(1, Some("bob")));
        assert!(acls.belongs_to_another_user(1, None));
        let open = SessionAcls::new(false, Arc::new(Metrics::new()));
        assert!(!open.belongs_to_another_user(1, Some("bob")));
    }

    #[test]
    fn unknown_sessions_get_nothing_and_in_process_ones_everything() {
        let (mut acls, _) = acls();
        assert!(!acls.can_read(0, "a"));
        acls.allow_all(0);
        assert!(acls.can_read(0, "a") && acls.may_subscribe(0, "#"));
        acls.clear(0);
        assert!(!acls.can_read(0, "a"));
    }
}
