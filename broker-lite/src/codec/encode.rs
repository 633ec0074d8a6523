use bytes::BytesMut;

use super::{Packet, QoS};

/// Append the wire form of `packet` to `out`.
pub fn encode(_packet: &Packet, _out: &mut BytesMut) {
    todo!()
}

/// Bytes `encode` would write for `packet`, fixed header included.
pub fn encoded_len(_packet: &Packet) -> usize {
    todo!()
}

/// Append a PUBLISH without building a `Packet` (the broker's hot path).
pub fn encode_publish(
    _out: &mut BytesMut,
    _topic: &str,
    _payload: &[u8],
    _qos: QoS,
    _retain: bool,
    _dup: bool,
    _pkid: u16,
) {
    todo!()
}
