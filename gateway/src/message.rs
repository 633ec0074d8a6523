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
