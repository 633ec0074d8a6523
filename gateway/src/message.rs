//! An MQTT message produced by a mapping: what the outputs publish.

use bytes::Bytes;
use mqtt_proto::codec::QoS;
use mqtt_proto::topic::TopicName;

/// One message to publish. The store and the outputs know this type, not the script engine.
/// Its topic was checked when the message was made; the outputs do not check it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: TopicName,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
}

/// A message taken from a broker as a command for a source's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub topic: std::sync::Arc<str>,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// The source whose device it is for.
    pub source: std::sync::Arc<str>,
}

/// One piece of what a command sends: bytes, and how the transport sends them.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub bytes: Bytes,
    /// Silence kept after these bytes before the next part, in milliseconds.
    pub delay_ms: u64,
    /// Transport options the script set (radio settings...), checked by the transport.
    pub options: serde_json::Map<String, serde_json::Value>,
}

impl Part {
    pub fn bytes(bytes: Bytes) -> Part {
        Part {
            bytes,
            delay_ms: 0,
            options: serde_json::Map::new(),
        }
    }
}
