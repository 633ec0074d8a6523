//! Publish and subscribe from inside the process, without a TCP hop.

use bytes::Bytes;
use mqtt_proto::codec::QoS;
use mqtt_proto::topic::{self, TopicName};
use std::sync::Arc;
use thiserror::Error;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::message::Message;
use crate::outbox::Outbox;
use crate::router::Event;

/// Messages an in-process subscription holds before the broker drops (and counts) more.
const SUBSCRIPTION_CAPACITY: usize = 1024;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HandleError {
    #[error("the broker has stopped")]
    Stopped,
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
}

/// A message to publish from inside the process, made from a `TopicName`: its
/// topic was checked when the name was made, so the broker takes it as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication(Message);

impl Publication {
    pub fn new(topic: &TopicName, payload: Bytes, qos: QoS, retain: bool) -> Publication {
        Publication(Message::new(topic, payload, qos, retain))
    }
}

/// How an in-process subscription behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Leave out what this process publishes through a handle (MQTT 5's No Local):
    /// a gateway that takes commands never takes its own messages back.
    pub no_local: bool,
    /// Send the retained messages that match, first (default true).
    pub retained: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            no_local: false,
            retained: true,
        }
    }
}

/// A cheap, cloneable handle on a running broker.
#[derive(Debug, Clone)]
pub struct BrokerHandle {
    router: mpsc::Sender<Event>,
    /// Told when a congested subscriber caught up (braked publishers wait on it).
    relief: Arc<Notify>,
}

impl BrokerHandle {
    pub(crate) fn new(router: mpsc::Sender<Event>, relief: Arc<Notify>) -> BrokerHandle {
        BrokerHandle { router, relief }
    }

    /// Publish a message; resolves once the broker has routed it to every matching
    /// subscriber (queued for those that are away) and stored it if retained.
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<(), HandleError> {
        topic::validate_topic_name(topic).map_err(|e| HandleError::InvalidTopic(e.to_string()))?;
        let (done, taken) = oneshot::channel();
        let msg = Message::new(topic, payload.into(), qos, retain);
        self.router
            .send(Event::LocalPublish { msg, done })
            .await
            .map_err(|_| HandleError::Stopped)?;
        taken.await.map_err(|_| HandleError::Stopped)
    }

    /// Publish several messages in order with one hand-over to the broker; resolves
    /// once all are routed.
    pub async fn publish_many(&self, publications: Vec<Publication>) -> Result<(), HandleError> {
        if publications.is_empty() {
            return Ok(());
        }
        let msgs = publications.into_iter().map(|p| p.0).collect();
        let (done, taken) = oneshot::channel();
        self.router
            .send(Event::LocalPublishMany { msgs, done })
            .await
            .map_err(|_| HandleError::Stopped)?;
        taken.await.map_err(|_| HandleError::Stopped)
    }

    /// Subscribe inside the process. Retained messages that match come first.
    /// Messages that arrive while the subscription's buffer is full are dropped and counted.
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<Subscription, HandleError> {
        self.subscribe_with(filter, qos, SubscribeOptions::default())
            .await
    }

    /// Subscribe inside the process with `options`.
    pub async fn subscribe_with(
        &self,
        filter: &str,
        qos: QoS,
        options: SubscribeOptions,
    ) -> Result<Subscription, HandleError> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        let flag = Arc::new(Outbox::default());
        let (done, answer) = oneshot::channel();
        self.router
            .send(Event::LocalSubscribe {
                filter: filter.to_string(),
                qos,
                options,
                tx,
                flag: flag.clone(),
                done,
            })
            .await
            .map_err(|_| HandleError::Stopped)?;
        answer
            .await
            .map_err(|_| HandleError::Stopped)?
            .map_err(HandleError::InvalidTopic)?;
        Ok(Subscription {
            rx,
            flag,
            relief: self.relief.clone(),
        })
    }

    pub(crate) async fn send_shutdown(&self) {
        let _ = self.router.send(Event::Shutdown).await;
    }
}

/// Messages for one in-process subscription. Dropping it ends the subscription.
/// While its buffer is three quarters full, the clients publishing to it are braked
/// (they stop reading, as for a slow network subscriber) until it is half empty.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Message>,
    flag: Arc<Outbox>,
    relief: Arc<Notify>,
}

impl Subscription {
    /// The next message; `None` once the broker has stopped.
    pub async fn recv(&mut self) -> Option<Message> {
        let msg = self.rx.recv().await;
        if self.rx.len() <= SUBSCRIPTION_CAPACITY / 2 && self.flag.queue_short() {
            self.relief.notify_waiters();
        }
        msg
    }
}
