//! Decoding errors, each named after the rule of the MQTT 3.1.1 standard it breaks.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// CONNECT with a protocol level other than 3 or 4: the server answers CONNACK 0x01.
    #[error("[MQTT-3.1.2-2] unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    #[error("packet of {size} bytes is over the limit of {max} bytes")]
    PacketTooLarge { size: usize, max: usize },
}

impl DecodeError {
    /// The spec reference, e.g. `MQTT-3.3.2-2`, when the error breaks a numbered rule.
    pub fn spec_ref(&self) -> Option<&'static str> {
        match self {
            DecodeError::UnsupportedProtocolLevel(_) => Some("MQTT-3.1.2-2"),
            DecodeError::PacketTooLarge { .. } => None,
        }
    }
}
