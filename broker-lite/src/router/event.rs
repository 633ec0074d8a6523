use std::sync::Arc;

use mqtt_proto::codec::{Connect, Packet, QoS};
use tokio::sync::{mpsc, oneshot};

use crate::connection::End;
use crate::message::Message;
use crate::outbox::Outbox;
use crate::session::ConnId;

/// Everything the router is told.
#[derive(Debug)]
pub(crate) enum Event {
    /// A client sent a valid CONNECT (client id already checked or assigned).
    Connect {
        conn: ConnId,
        connect: Box<Connect>,
        outbox: Arc<Outbox>,
    },
    /// Packets read from one connection, in order.
    Packets {
        conn: ConnId,
        packets: Vec<Packet>,
    },
    /// The connection ended; `graceful` means DISCONNECT was received (the will is discarded).
    Closed {
        conn: ConnId,
        graceful: bool,
        why: Box<End>,
    },
    /// A message from the in-process handle; `done` is answered once it is routed.
    LocalPublish {
        msg: Message,
        done: oneshot::Sender<()>,
    },
    /// Messages from the in-process handle, in order; `done` once all are routed.
    LocalPublishMany {
        msgs: Vec<Message>,
        done: oneshot::Sender<()>,
    },
    /// An in-process subscription; the answer is an error text for an invalid filter.
    LocalSubscribe {
        filter: String,
        qos: QoS,
        options: crate::handle::SubscribeOptions,
        tx: mpsc::Sender<Message>,
        /// Set while the subscriber is behind (see `session::Link::Local`).
        flag: Arc<Outbox>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// New password and ACL files are in force (a reload): the ACL rules of every
    /// session are compiled again before `done` is answered.
    Reload {
        auth: Arc<crate::auth::Auth>,
        done: oneshot::Sender<()>,
    },
    /// Time to publish `$SYS/broker/...`.
    SysTick,
    Shutdown,
}
