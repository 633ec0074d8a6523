//! What one user, and everyone together, may keep in the broker: persistent
//! sessions, retained messages (how many and their bytes), and the bytes queued
//! for clients. Pure bookkeeping, without I/O: the router asks before it keeps
//! something and says when it kept or let go of it.
//!
//! A user is a CONNECT's user name; anonymous clients together count as one
//! user. What the broker keeps for itself (in-process publishes) and what was
//! read back from the persistence file without its user count in the totals only.

use std::collections::HashMap;

use crate::config::Limits;
use crate::message::Message;

/// A user name, or `None` for anonymous clients.
pub(crate) type UserKey = Option<Box<str>>;

/// A retained message and who set it: `None` for the broker's own, or one read
/// back from the persistence file (which does not record it).
#[derive(Debug, Clone)]
pub(crate) struct RetainedEntry {
    pub msg: Message,
    pub owner: Option<UserKey>,
}

impl RetainedEntry {
    /// Bytes it counts for: topic and payload.
    pub(crate) fn bytes(&self) -> usize {
        retained_bytes(&self.msg)
    }
}

/// What a retained message counts for against the limits.
pub(crate) fn retained_bytes(msg: &Message) -> usize {
    msg.topic.len() + msg.payload.len()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    messages: usize,
    bytes: usize,
}

/// Which limit a refusal hit, for the log.
pub(crate) type Refused = &'static str;

/// The counts and their limits.
#[derive(Debug)]
pub(crate) struct Quotas {
    max_sessions: usize,
    max_sessions_per_user: usize,
    sessions: usize,
    sessions_by_user: HashMap<UserKey, usize>,
    max_retained: Usage,
    max_retained_per_user: Usage,
    retained: Usage,
    retained_by_user: HashMap<UserKey, Usage>,
    max_queued_total: usize,
    queued_total: usize,
    /// Each session slot's queued bytes as last seen, to keep the total.
    queued_seen: Vec<usize>,
}

impl Quotas {
    pub(crate) fn new(l: &Limits) -> Quotas {
        Quotas {
            max_sessions: l.max_sessions,
            max_sessions_per_user: l.max_sessions_per_user,
            sessions: 0,
            sessions_by_user: HashMap::new(),
            max_retained: Usage {
                messages: l.max_retained_messages,
                bytes: l.max_retained_bytes,
            },
            max_retained_per_user: Usage {
                messages: l.max_retained_messages_per_user,
                bytes: l.max_retained_bytes_per_user,
            },
            retained: Usage::default(),
            retained_by_user: HashMap::new(),
            max_queued_total: l.max_queued_bytes_total,
            queued_total: 0,
            queued_seen: Vec::new(),
        }
    }

    /// May `user` make one more persistent session?
    pub(crate) fn admits_session(&self, user: Option<&str>) -> Result<(), Refused> {
        if self.sessions >= self.max_sessions {
            return Err("max_sessions");
        }
        let held = self.sessions_by_user.get(&key(user)).copied().unwrap_or(0);
        if held >= self.max_sessions_per_user {
            return Err("max_sessions_per_user");
        }
        Ok(())
    }

    pub(crate) fn session_added(&mut self, user: Option<&str>) {
        self.sessions += 1;
        *self.sessions_by_user.entry(key(user)).or_default() += 1;
    }

    pub(crate) fn session_removed(&mut self, user: Option<&str>) {
        self.sessions = self.sessions.saturating_sub(1);
        let k = key(user);
        if let Some(n) = self.sessions_by_user.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                self.sessions_by_user.remove(&k);
            }
        }
    }

    /// May `user` retain `bytes` on a topic whose retained message now is
    /// `replacing`? A message that replaces one (of anyone) frees its room first.
    pub(crate) fn admits_retained(
        &self,
        user: Option<&str>,
        bytes: usize,
        replacing: Option<&RetainedEntry>,
    ) -> Result<(), Refused> {
        let user = key(user);
        let (mut all, mut mine) = (
            self.retained,
            self.retained_by_user
                .get(&user)
                .copied()
                .unwrap_or_default(),
        );
        if let Some(old) = replacing {
            all.messages -= 1;
            all.bytes -= old.bytes();
            if old.owner.as_ref() == Some(&user) {
                mine.messages -= 1;
                mine.bytes -= old.bytes();
            }
        }
        if all.messages + 1 > self.max_retained.messages {
            return Err("max_retained_messages");
        }
        if all.bytes + bytes > self.max_retained.bytes {
            return Err("max_retained_bytes");
        }
        if mine.messages + 1 > self.max_retained_per_user.messages {
            return Err("max_retained_messages_per_user");
        }
        if mine.bytes + bytes > self.max_retained_per_user.bytes {
            return Err("max_retained_bytes_per_user");
        }
        Ok(())
    }

    pub(crate) fn retained_added(&mut self, entry: &RetainedEntry) {
        let bytes = entry.bytes();
        self.retained.messages += 1;
        self.retained.bytes += bytes;
        if let Some(owner) = &entry.owner {
            let u = self.retained_by_user.entry(owner.clone()).or_default();
            u.messages += 1;
            u.bytes += bytes;
        }
    }

    pub(crate) fn retained_removed(&mut self, entry: &RetainedEntry) {
        let bytes = entry.bytes();
        self.retained.messages -= 1;
        self.retained.bytes -= bytes;
        if let Some(owner) = &entry.owner {
            if let Some(u) = self.retained_by_user.get_mut(owner) {
                u.messages -= 1;
                u.bytes -= bytes;
                if u.messages == 0 {
                    self.retained_by_user.remove(owner);
                }
            }
        }
    }

    /// Session slot `sid` now queues `bytes`: the new total of all queues, or
    /// `None` when it did not change (most deliveries go out at once).
    pub(crate) fn queued(&mut self, sid: usize, bytes: usize) -> Option<usize> {
        if self.queued_seen.len() <= sid {
            self.queued_seen.resize(sid + 1, 0);
        }
        let seen = &mut self.queued_seen[sid];
        if *seen == bytes {
            return None;
        }
        self.queued_total = self.queued_total - *seen + bytes;
        *seen = bytes;
        Some(self.queued_total)
    }

    /// Whether the queues together hold their budget: a message that would be
    /// queued is given up.
    pub(crate) fn queues_full(&self) -> bool {
        self.queued_total >= self.max_queued_total
    }
}

fn key(user: Option<&str>) -> UserKey {
    user.map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mqtt_proto::codec::QoS;

    fn limits() -> Limits {
        Limits {
            max_sessions: 3,
            max_sessions_per_user: 2,
            max_retained_messages: 4,
            max_retained_bytes: 100,
            max_retained_messages_per_user: 2,
            max_retained_bytes_per_user: 70,
            max_queued_bytes_total: 50,
            ..Limits::default()
        }
    }

    fn entry(topic: &str, payload_len: usize, owner: Option<&str>) -> RetainedEntry {
        RetainedEntry {
            msg: Message::new(
                topic,
                Bytes::from(vec![0; payload_len]),
                QoS::AtMostOnce,
                true,
            ),
            owner: Some(owner.map(Into::into)),
        }
    }

    #[test]
    fn sessions_are_limited_per_user_and_in_all() {
        let mut q = Quotas::new(&limits());
        for _ in 0..2 {
            assert_eq!(q.admits_session(Some("alice")), Ok(()));
            q.session_added(Some("alice"));
        }
        assert_eq!(
            q.admits_session(Some("alice")),
            Err("max_sessions_per_user")
        );
        assert_eq!(q.admits_session(None), Ok(()));
        q.session_added(None);
        assert_eq!(q.admits_session(Some("bob")), Err("max_sessions"));
        q.session_removed(Some("alice"));
        assert_eq!(q.admits_session(Some("alice")), Ok(()));
        assert_eq!(q.admits_session(Some("bob")), Ok(()));
    }

    #[test]
    fn retained_messages_and_bytes_are_limited_per_user_and_in_all() {
        let mut q = Quotas::new(&limits());
        let a1 = entry("a/1", 27, Some("alice"));
        q.retained_added(&a1);
        // alice: 30 bytes so far; 41 more would pass her 70.
        assert_eq!(
            q.admits_retained(Some("alice"), 41, None),
            Err("max_retained_bytes_per_user")
        );
        let a2 = entry("a/2", 7, Some("alice"));
        assert_eq!(q.admits_retained(Some("alice"), a2.bytes(), None), Ok(()));
        q.retained_added(&a2);
        assert_eq!(
            q.admits_retained(Some("alice"), 1, None),
            Err("max_retained_messages_per_user")
        );
        // Replacing her own message frees its room.
        assert_eq!(q.admits_retained(Some("alice"), 40, Some(&a1)), Ok(()));
        // bob has room of his own, up to the total.
        let b1 = entry("b/1", 52, Some("bob"));
        assert_eq!(q.admits_retained(Some("bob"), b1.bytes(), None), Ok(()));
        q.retained_added(&b1);
        assert_eq!(
            q.admits_retained(Some("bob"), 6, None),
            Err("max_retained_bytes")
        );
        q.retained_removed(&a1);
        assert_eq!(q.admits_retained(Some("bob"), 6, None), Ok(()));
        // Restored or the broker's own: in the totals only.
        let kept = RetainedEntry {
            owner: None,
            ..entry("x", 1, None)
        };
        q.retained_added(&kept);
        q.retained_added(&entry("c", 1, Some("carol")));
        assert_eq!(
            q.admits_retained(Some("carol"), 1, None),
            Err("max_retained_messages")
        );
    }

    #[test]
    fn the_queues_total_follows_each_sessions_bytes() {
        let mut q = Quotas::new(&limits());
        assert_eq!(q.queued(3, 20), Some(20));
        assert_eq!(q.queued(0, 25), Some(45));
        assert_eq!(q.queued(0, 25), None, "unchanged");
        assert!(!q.queues_full());
        assert_eq!(q.queued(3, 30), Some(55));
        assert!(q.queues_full());
        assert_eq!(q.queued(3, 0), Some(25));
        assert!(!q.queues_full());
    }
}
