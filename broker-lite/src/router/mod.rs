//! The router: one task that owns every session, the subscription tree and the
//! retained messages. Connections and the in-process handle talk to it through
//! `Event`s on one bounded channel; it answers by writing into outboxes.
//!
//! `Router` is defined here and its work is split by what it deals with:
//! `dispatch` builds it and hands each event on, `connect` handles CONNECT,
//! takeovers and wills, `route` the packets of a client and where its messages
//! go, `subscribe` subscriptions and retained messages, `sys` the `$SYS` topics
//! and `restore` the state read back from the persistence file.

mod connect;
mod dispatch;
mod event;
mod quota;
mod restore;
mod route;
mod subscribe;
mod sys;

pub(crate) use event::Event;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

use crate::auth::{Auth, SessionAcls};
use crate::metrics::Metrics;
use crate::persist::Journal;
use crate::retained::RetainedStore;
use crate::session::{ConnId, Session, SessionLimits};
use crate::subscriptions::SubscriptionTree;
use crate::topic_limits::TopicLimits;
use mqtt_proto::codec::QoS;

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
    retained: RetainedStore<quota::RetainedEntry>,
    /// Sessions, retained messages and queued bytes against their limits.
    quotas: quota::Quotas,
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

/// Events taken per wake-up; a batch is processed before any connection is woken.
const BATCH: usize = 256;

/// Run until every sender is gone or a `Shutdown` event arrives.
pub(crate) async fn run(mut router: Router, mut rx: mpsc::Receiver<Event>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            break;
        }
        let mut stop = false;
        for event in batch.drain(..) {
            if router.handle(event) {
                stop = true;
                break;
            }
        }
        router.wake_dirty();
        if stop {
            break;
        }
    }
    router.close_all();
}
