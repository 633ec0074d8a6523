//! A client's arrival and departure: CONNECT (a new session or a resumed one),
//! the takeover of a client id that connects again, the end of a connection
//! and the will it leaves.

use log_limit::LogLimit;
use std::sync::Arc;

use tracing::{debug, info, warn};

use crate::connection::End;
use crate::message::Message;
use crate::metrics;
use crate::outbox::Outbox;
use crate::session::{ConnId, Link, Session};
use mqtt_proto::codec::{encode, ConnAck, Connect, ConnectReturnCode, LastWill, Packet};

use super::quota::UserKey;
use super::{Router, SessionId};

impl Router {
    pub(super) fn connect(&mut self, conn: ConnId, connect: Connect, outbox: Arc<Outbox>) {
        let mut session_present = false;
        let user = connect.username.as_deref();
        let existing = self.by_client.get(connect.client_id.as_str()).copied();
        if let Some(sid) = existing {
            if let Some(owner) = self.another_users(sid, user) {
                self.refuse_client_id(conn, &connect, &owner, &outbox);
                return;
            }
        } else if !connect.clean_session {
            if let Err(limit) = self.quotas.admits_session(user) {
                self.refuse_session(conn, &connect, limit, &outbox);
                return;
            }
        }
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
                    let session = self.session(sid);
                    if let Some(log) = &mut session.journal {
                        log.claim(user);
                    }
                    if session.owner.is_none() && user.is_some() {
                        // Counted against its new owner from now on.
                        session.owner = user.map(Into::into);
                        self.quotas.session_removed(None);
                        self.quotas.session_added(user);
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

    /// The owner of session `sid` when it is a user other than `user`: a client
    /// may not take over (close, send the will of, or replace) a session another
    /// user made. A session made anonymously, or read back without its user, may
    /// be taken by anyone, as before.
    fn another_users(&mut self, sid: SessionId, user: Option<&str>) -> Option<Box<str>> {
        let owner = self.session(sid).owner.as_deref()?;
        (Some(owner) != user).then(|| owner.into())
    }

    /// CONNACK 3 (server unavailable) to a client whose new persistent session
    /// would pass `max_sessions` or `max_sessions_per_user`.
    fn refuse_session(&mut self, conn: ConnId, connect: &Connect, limit: &str, outbox: &Outbox) {
        metrics::add(&self.metrics.sessions_refused, 1);
        static REFUSED: LogLimit = LogLimit::new(log_limit::MINUTE);
        let why = format_args!("{limit} persistent sessions are kept already");
        log_refusal(&REFUSED, conn, connect, why);
        refuse(outbox, ConnectReturnCode::ServerUnavailable);
    }

    /// CONNACK 2 (identifier rejected) to a client that asked for another user's
    /// client id; the owner's connection, will and session stay as they are.
    fn refuse_client_id(&mut self, conn: ConnId, connect: &Connect, owner: &str, outbox: &Outbox) {
        metrics::add(&self.metrics.client_ids_refused, 1);
        static REFUSED: LogLimit = LogLimit::new(log_limit::MINUTE);
        let owner = log_limit::shorten(owner);
        let why = format_args!("the client id belongs to the session of user {owner}");
        log_refusal(&REFUSED, conn, connect, why);
        refuse(outbox, ConnectReturnCode::IdentifierRejected);
    }

    fn new_session(&mut self, connect: &Connect) -> SessionId {
        let client_id: Arc<str> = connect.client_id.as_str().into();
        let mut session = Session::new(client_id.clone(), connect.clean_session);
        session.owner = connect.username.as_deref().map(Into::into);
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
        let owner = session.owner.clone();
        self.by_conn.remove(&old_conn);
        metrics::sub(&self.metrics.clients_connected, 1);
        if let Some(will) = will {
            self.publish_will(*will, owner);
        }
    }

    pub(super) fn closed(&mut self, conn: ConnId, graceful: bool, why: &End) {
        let Some(sid) = self.by_conn.remove(&conn) else {
            debug!(conn, "connection ended after its session moved on: {why}");
            return;
        };
        let client_id = &*self.session(sid).client_id;
        match why {
            End::Protocol(_) => {
                static PROTOCOL: LogLimit = LogLimit::new(log_limit::MINUTE);
                if let Some(skipped) = PROTOCOL.check() {
                    warn!(
                        conn,
                        client_id = %log_limit::shorten(client_id),
                        "closed the connection: {why}{}",
                        log_limit::suppressed(skipped)
                    );
                }
            }
            End::KeepAliveExpired => {
                info!(conn, client_id = %log_limit::shorten(client_id), "{why}")
            }
            _ => debug!(conn, client_id, "connection ended: {why}"),
        }
        metrics::sub(&self.metrics.clients_connected, 1);
        let session = self.session(sid);
        session.link = None;
        let will = session.will.take();
        let clean = session.clean;
        let owner = session.owner.clone();
        if !graceful {
            if let Some(will) = will {
                self.publish_will(*will, owner);
            }
        }
        if clean {
            self.remove_session(sid);
        }
    }

    /// A will counts against its client's user like a PUBLISH of it would.
    fn publish_will(&mut self, will: LastWill, owner: UserKey) {
        metrics::add(&self.metrics.wills_published, 1);
        let msg = Message::new(&will.topic, will.payload, will.qos, will.retain);
        self.route(msg, None, true, Some(owner));
    }
}

/// A refused CONNECT, logged once per `limit`'s interval with the count left out.
fn log_refusal(limit: &LogLimit, conn: ConnId, connect: &Connect, why: std::fmt::Arguments<'_>) {
    if let Some(skipped) = limit.check() {
        warn!(
            conn,
            client_id = %log_limit::shorten(&connect.client_id),
            user = %log_limit::shorten(connect.username.as_deref().unwrap_or("")),
            "CONNECT refused: {why}{}",
            log_limit::suppressed(skipped)
        );
    }
}

/// Answer a CONNECT with a refusal, then close the connection.
fn refuse(outbox: &Outbox, code: ConnectReturnCode) {
    outbox.push_with(|buf| {
        encode(
            &Packet::ConnAck(ConnAck {
                session_present: false,
                code,
            }),
            buf,
        )
    });
    outbox.close();
}
