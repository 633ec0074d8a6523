//! The router's side of persistence: changes are recorded while the router
//! handles a batch of events and handed to the writer thread in one piece at the
//! end of it. Replies that confirm a stored change can be held until the commit.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use mqtt_proto::codec::{Packet, QoS};
use tracing::warn;

use super::config::PersistenceConfig;
use super::db::Db;
use super::{writer, PersistError};
use crate::message::Message;
use crate::outbox::Outbox;
use crate::session::{Outcome, Session};

/// One change of persistent state. Client ids are shared with the session's log.
#[derive(Debug)]
pub(crate) enum Change {
    Retain {
        msg: Message,
    },
    Unretain {
        topic: Arc<str>,
    },
    SessionNew {
        client: Arc<str>,
        /// The user name of the CONNECT that made it (`None`: anonymous).
        user: Option<Box<str>>,
    },
    /// A session stored without its owner was resumed by `user`.
    SessionOwner {
        client: Arc<str>,
        user: Option<Box<str>>,
    },
    SessionGone {
        client: Arc<str>,
    },
    Subscribe {
        client: Arc<str>,
        filter: Box<str>,
        qos: QoS,
    },
    Unsubscribe {
        client: Arc<str>,
        filter: Box<str>,
    },
    /// A QoS 1/2 message entered the session: queued, or sent at once (`pkid`).
    Queued {
        client: Arc<str>,
        seq: u64,
        msg: Message,
        pkid: Option<u16>,
    },
    /// A queued message went into the in-flight window with `pkid`.
    Sent {
        client: Arc<str>,
        seq: u64,
        pkid: u16,
    },
    /// PUBREC came back for it; PUBREL was sent.
    Released {
        client: Arc<str>,
        seq: u64,
    },
    /// Acknowledged (PUBACK/PUBCOMP) or given up by the queue's overflow rule.
    Done {
        client: Arc<str>,
        seq: u64,
    },
    /// An inbound QoS 2 id was routed and awaits PUBREL.
    Qos2Held {
        client: Arc<str>,
        pkid: u16,
    },
    Qos2Released {
        client: Arc<str>,
        pkid: u16,
    },
    /// Not a change: a packet to write to `outbox` once what comes before is committed.
    Reply {
        outbox: Arc<Outbox>,
        packet: Packet,
    },
    /// Not a change: tells an in-process publisher (`BrokerHandle::publish`) that
    /// what its messages changed is committed.
    LocalDone {
        done: tokio::sync::oneshot::Sender<()>,
    },
}

/// What the router hands the writer at the end of one of its batches.
pub(crate) struct Batch {
    pub id: u64,
    pub changes: Vec<Change>,
}

/// Changes recorded since the last hand-over; shared by the journal and every
/// persistent session's log (all on the router's task, so never contended).
type Pending = Arc<Mutex<Vec<Change>>>;

fn push(pending: &Pending, change: Change) {
    pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(change);
}

/// A persistent session's handle for recording its own changes.
#[derive(Debug)]
pub(crate) struct SessionLog {
    client: Arc<str>,
    pending: Pending,
    /// Whether the file knows who the session belongs to.
    owner_known: bool,
}

impl SessionLog {
    /// A client of `user` resumed the session: record it as the owner if the
    /// file does not know one yet (a session stored before owners were kept).
    pub(crate) fn claim(&mut self, user: Option<&str>) {
        if !self.owner_known {
            self.owner_known = true;
            self.push(|client| Change::SessionOwner {
                client,
                user: user.map(Into::into),
            });
        }
    }

    pub(crate) fn queued(&self, seq: u64, msg: &Message, pkid: Option<u16>) {
        self.push(|client| Change::Queued {
            client,
            seq,
            msg: msg.clone(),
            pkid,
        });
    }

    pub(crate) fn sent(&self, seq: u64, pkid: u16) {
        self.push(|client| Change::Sent { client, seq, pkid });
    }

    pub(crate) fn released(&self, seq: u64) {
        self.push(|client| Change::Released { client, seq });
    }

    pub(crate) fn done(&self, seq: u64) {
        self.push(|client| Change::Done { client, seq });
    }

    pub(crate) fn qos2_held(&self, pkid: u16) {
        self.push(|client| Change::Qos2Held { client, pkid });
    }

    pub(crate) fn qos2_released(&self, pkid: u16) {
        self.push(|client| Change::Qos2Released { client, pkid });
    }

    pub(crate) fn subscribed(&self, filter: &str, qos: QoS) {
        self.push(|client| Change::Subscribe {
            client,
            filter: filter.into(),
            qos,
        });
    }

    pub(crate) fn unsubscribed(&self, filter: &str) {
        self.push(|client| Change::Unsubscribe {
            client,
            filter: filter.into(),
        });
    }

    fn push(&self, f: impl FnOnce(Arc<str>) -> Change) {
        push(&self.pending, f(self.client.clone()));
    }
}

/// Owned by the router: records changes and hands them to the writer thread.
pub(crate) struct Journal {
    pending: Pending,
    /// Bounded: when the writer falls behind, the router waits (back-pressure
    /// from the disk instead of a growing backlog in memory).
    tx: Option<SyncSender<Batch>>,
    /// Id of the next batch handed over; the first is 1.
    next_batch: u64,
    /// Id of the last batch committed and whose replies are written.
    committed: Arc<AtomicU64>,
    ack_after_commit: bool,
    writer: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Journal {
    pub(super) fn start(db: Db, config: &PersistenceConfig) -> Result<Journal, PersistError> {
        let path = db.path().to_path_buf();
        let committed = Arc::new(AtomicU64::new(0));
        let (tx, writer) = writer::spawn(db, config, committed.clone())?;
        Ok(Journal {
            pending: Arc::new(Mutex::new(Vec::new())),
            tx: Some(tx),
            next_batch: 1,
            committed,
            ack_after_commit: config.ack_after_commit,
            writer: Some(writer),
            path,
        })
    }

    /// A log for a new persistent session (records its creation).
    pub(crate) fn new_session(&self, client_id: &str, user: Option<&str>) -> SessionLog {
        let log = self.restored_session(client_id, true);
        push(
            &self.pending,
            Change::SessionNew {
                client: log.client.clone(),
                user: user.map(Into::into),
            },
        );
        log
    }

    /// A log for a session read back from the file.
    pub(crate) fn restored_session(&self, client_id: &str, owner_known: bool) -> SessionLog {
        SessionLog {
            client: Arc::from(client_id),
            pending: self.pending.clone(),
            owner_known,
        }
    }

    pub(crate) fn session_gone(&self, client_id: &str) {
        push(
            &self.pending,
            Change::SessionGone {
                client: Arc::from(client_id),
            },
        );
    }

    /// A retained message was set (or cleared by an empty payload). `$` topics
    /// (`$SYS/...`) are the broker's own and are not stored.
    pub(crate) fn retained(&self, msg: &Message) {
        if msg.topic.starts_with('$') {
            return;
        }
        let change = if msg.payload.is_empty() {
            Change::Unretain {
                topic: msg.topic.clone(),
            }
        } else {
            Change::Retain { msg: msg.clone() }
        };
        push(&self.pending, change);
    }

    /// Changes recorded and not handed over yet: compare before and after routing
    /// a message to learn whether it changed persistent state.
    pub(crate) fn recorded(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Write `packet` to the session's client now, or after the commit when it
    /// confirms a stored change (`durable`) or must stay behind replies that wait.
    pub(crate) fn confirm(&self, session: &mut Session, packet: Packet, durable: bool) -> Outcome {
        let behind = session.reply_barrier > self.committed.load(Ordering::Acquire);
        if !self.ack_after_commit || !(durable || behind) {
            return session.send_packet(&packet);
        }
        if let Some(outbox) = session.outbox() {
            push(
                &self.pending,
                Change::Reply {
                    outbox: outbox.clone(),
                    packet,
                },
            );
            session.reply_barrier = self.next_batch;
        }
        Outcome::default()
    }

    /// Tell an in-process publisher its messages are taken: now, or once committed
    /// when they changed stored state (`durable`) and acknowledgements wait for
    /// commits. The gateway forgets its own copy of a message when told.
    pub(crate) fn confirm_local(&self, done: tokio::sync::oneshot::Sender<()>, durable: bool) {
        if !self.ack_after_commit || !durable || self.tx.is_none() {
            let _ = done.send(());
            return;
        }
        push(&self.pending, Change::LocalDone { done });
    }

    /// Hand what was recorded to the writer (end of a router batch).
    pub(crate) fn flush(&mut self) {
        let changes = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.is_empty() {
                return;
            }
            std::mem::take(&mut *pending)
        };
        let Some(tx) = &self.tx else {
            return;
        };
        let batch = Batch {
            id: self.next_batch,
            changes,
        };
        self.next_batch += 1;
        if tx.send(batch).is_err() {
            warn!(file = %self.path.display(), "persistence writer is gone; changes are not stored");
            self.tx = None;
        }
    }

    /// Hand over the rest, and wait until the writer committed it and stopped.
    pub(crate) fn close(&mut self) {
        self.flush();
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}
