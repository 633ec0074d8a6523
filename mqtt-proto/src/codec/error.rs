//! Decoding errors, each named after the rule of the MQTT 3.1.1 standard it breaks.
//!
//! Every message starts with the rule in brackets, e.g.
//! "[MQTT-3.3.2-2] topic name contains a wildcard"; `spec_ref` gives the rule alone.

use thiserror::Error;

use crate::topic::TopicError;

/// Why bytes are not a valid MQTT 3.1.1 packet. Any of these means the
/// receiver closes the connection, except `UnsupportedProtocolLevel`, which a
/// server answers with CONNACK 0x01 first.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// CONNECT with a protocol level other than 3 or 4: the server answers CONNACK 0x01.
    #[error("[MQTT-3.1.2-2] unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    #[error("packet of {size} bytes is over the limit of {max} bytes")]
    PacketTooLarge { size: usize, max: usize },

    // Fixed header.
    #[error("[MQTT-2.2.1] reserved packet type {0}")]
    ReservedPacketType(u8),
    #[error("[MQTT-2.2.2-1] {packet} with invalid fixed-header flags {flags:#06b}")]
    InvalidFlags { packet: &'static str, flags: u8 },
    #[error("[MQTT-3.3.1-4] PUBLISH with QoS 3")]
    PublishQos3,
    #[error("[MQTT-3.3.1-2] PUBLISH with QoS 0 and the DUP flag set")]
    PublishDupWithQos0,
    #[error("[MQTT-2.2.3] remaining length takes more than 4 bytes")]
    RemainingLengthTooLong,

    // Lengths.
    #[error("[MQTT-2.2.3] {packet} ends inside its {field}")]
    Truncated {
        packet: &'static str,
        field: &'static str,
    },
    #[error("[MQTT-2.2.3] {packet} has {extra} bytes after its last field")]
    TrailingBytes { packet: &'static str, extra: usize },
    #[error("[MQTT-2.2.3] {packet} must have remaining length {expected}, not {actual}")]
    WrongRemainingLength {
        packet: &'static str,
        expected: usize,
        actual: usize,
    },

    // Strings and packet identifiers.
    #[error("[MQTT-1.5.3-1] {field} is not well-formed UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("[MQTT-1.5.3-2] {field} contains the null character U+0000")]
    NullCharacter { field: &'static str },
    #[error("[MQTT-2.3.1-1] {packet} with packet identifier 0")]
    ZeroPacketId { packet: &'static str },

    // CONNECT.
    #[error("[MQTT-3.1.2-1] protocol name {name:?} with level {level} is not MQTT 3.1.1 or 3.1")]
    InvalidProtocolName { name: String, level: u8 },
    #[error("[MQTT-3.1.2-3] CONNECT reserved flag is set")]
    ConnectReservedFlag,
    #[error("[MQTT-3.1.2-14] will QoS 3")]
    WillQos3,
    #[error("[MQTT-3.1.2-13] will QoS set without the will flag")]
    WillQosWithoutWill,
    #[error("[MQTT-3.1.2-15] will retain set without the will flag")]
    WillRetainWithoutWill,
    #[error("[MQTT-3.1.2-22] password flag set without the user name flag")]
    PasswordWithoutUsername,
    /// `{0}` carries the rule of section 4.7 the will topic breaks.
    #[error("{0} (will topic)")]
    InvalidWillTopic(TopicError),

    // CONNACK.
    #[error("[MQTT-3.2.2.1] CONNACK acknowledge flags {0:#04x} have reserved bits set")]
    ConnAckReservedFlags(u8),
    #[error("[MQTT-3.2.2.3] CONNACK return code {0} is reserved")]
    InvalidConnectReturnCode(u8),

    // PUBLISH.
    #[error("[MQTT-3.3.2-2] topic name contains a wildcard")]
    PublishTopicWildcard,
    #[error("[MQTT-4.7.3-1] PUBLISH with an empty topic name")]
    PublishTopicEmpty,

    // SUBSCRIBE, SUBACK, UNSUBSCRIBE.
    #[error("[MQTT-3.8.3-3] SUBSCRIBE without a topic filter")]
    SubscribeWithoutFilters,
    #[error("[MQTT-3-8.3-4] SUBSCRIBE requested-QoS byte {0:#04x} is invalid")]
    InvalidRequestedQos(u8),
    #[error("[MQTT-3.9.3-2] SUBACK return code {0:#04x} is reserved")]
    InvalidSubAckReturnCode(u8),
    #[error("[MQTT-3.10.3-2] UNSUBSCRIBE without a topic filter")]
    UnsubscribeWithoutFilters,
    /// `{0}` carries the rule of section 4.7 the filter breaks.
    #[error("{0} (topic filter)")]
    InvalidTopicFilter(TopicError),
}

impl DecodeError {
    /// The spec reference, e.g. `MQTT-3.3.2-2`, when the error breaks a numbered rule.
    pub fn spec_ref(&self) -> Option<&'static str> {
        use DecodeError::*;
        Some(match self {
            UnsupportedProtocolLevel(_) => "MQTT-3.1.2-2",
            PacketTooLarge { .. } => return None,
            ReservedPacketType(_) => "MQTT-2.2.1",
            InvalidFlags { .. } => "MQTT-2.2.2-1",
            PublishQos3 => "MQTT-3.3.1-4",
            PublishDupWithQos0 => "MQTT-3.3.1-2",
            RemainingLengthTooLong
            | Truncated { .. }
            | TrailingBytes { .. }
            | WrongRemainingLength { .. } => "MQTT-2.2.3",
            InvalidUtf8 { .. } => "MQTT-1.5.3-1",
            NullCharacter { .. } => "MQTT-1.5.3-2",
            ZeroPacketId { .. } => "MQTT-2.3.1-1",
            InvalidProtocolName { .. } => "MQTT-3.1.2-1",
            ConnectReservedFlag => "MQTT-3.1.2-3",
            WillQos3 => "MQTT-3.1.2-14",
            WillQosWithoutWill => "MQTT-3.1.2-13",
            WillRetainWithoutWill => "MQTT-3.1.2-15",
            PasswordWithoutUsername => "MQTT-3.1.2-22",
            InvalidWillTopic(e) => e.spec_ref(),
            ConnAckReservedFlags(_) => "MQTT-3.2.2.1",
            InvalidConnectReturnCode(_) => "MQTT-3.2.2.3",
            PublishTopicWildcard => "MQTT-3.3.2-2",
            PublishTopicEmpty => "MQTT-4.7.3-1",
            SubscribeWithoutFilters => "MQTT-3.8.3-3",
            InvalidRequestedQos(_) => "MQTT-3-8.3-4",
            InvalidSubAckReturnCode(_) => "MQTT-3.9.3-2",
            UnsubscribeWithoutFilters => "MQTT-3.10.3-2",
            InvalidTopicFilter(e) => e.spec_ref(),
        })
    }
}
