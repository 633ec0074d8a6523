//! An application message as the broker routes it: cheap to clone for fan-out.

use std::sync::Arc;

use bytes::Bytes;

use mqtt_proto::codec::QoS;

/// A message in the broker: routed, queued, retained, or handed to an in-process subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Arc<str>,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
}

impl Message {
    pub fn new(topic: &str, payload: Bytes, qos: QoS, retain: bool) -> Message {
        Message {
            topic: Arc::from(topic),
            payload,
            qos,
            retain,
        }
    }

    /// The same message at another QoS and retain flag, sharing topic and payload.
    pub(crate) fn with(&self, qos: QoS, retain: bool) -> Message {
        Message {
            topic: self.topic.clone(),
            payload: self.payload.clone(),
            qos,
            retain,
        }
    }
}
