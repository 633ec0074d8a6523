//! Publish and subscribe from inside the process, without a TCP hop.

use bytes::Bytes;
use mqtt_proto::codec::QoS;
use mqtt_proto::topic;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::message::Message;
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

/// A cheap, cloneable handle on a running broker.
#[derive(Debug, Clone)]
pub struct BrokerHandle {
    router: mpsc::Sender<Event>,
}

impl BrokerHandle {
    pub(crate) fn new(router: mpsc::Sender<Event>) -> BrokerHandle {
        BrokerHandle { router }
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
    /// once all are routed. Every topic is checked first: one invalid topic refuses
    /// the whole batch (check with `topic::validate_topic_name` to sort them out).
    pub async fn publish_many(&self, msgs: Vec<Message>) -> Result<(), HandleError> {
        for m in &msgs {
            topic::validate_topic_name(&m.topic)
                .map_err(|e| HandleError::InvalidTopic(e.to_string()))?;
        }
        if msgs.is_empty() {
            return Ok(());
        }
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
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        let (done, answer) = oneshot::channel();
        self.router
            .send(Event::LocalSubscribe {
                filter: filter.to_string(),
                qos,
                tx,
                done,
            })
            .await
            .map_err(|_| HandleError::Stopped)?;
        answer
            .await
            .map_err(|_| HandleError::Stopped)?
            .map_err(HandleError::InvalidTopic)?;
        Ok(Subscription { rx })
    }

    pub(crate) async fn send_shutdown(&self) {
        let _ = self.router.send(Event::Shutdown).await;
    }
}

/// Messages for one in-process subscription. Dropping it ends the subscription.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Message>,
}

impl Subscription {
    /// The next message; `None` once the broker has stopped.
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}
