use bytes::Bytes;

use super::{DecodeError, Packet};

/// Decode one packet from its fixed-header byte and its body (the `remaining length` bytes).
pub fn decode(_header: u8, _body: Bytes) -> Result<Packet, DecodeError> {
    todo!()
}
