//! An MQTT message produced by a mapping: what the outputs publish.

use bytes::Bytes;
use mqtt_proto::codec::QoS;

/// One message to publish. The store and the outputs know this type, not the script engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
}
