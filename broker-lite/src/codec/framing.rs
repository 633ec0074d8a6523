use bytes::BytesMut;

use super::{DecodeError, Packet};

/// Take one whole packet off the front of `buf`. `Ok(None)`: not enough bytes yet
/// (nothing consumed). A packet whose total size is over `max_packet_size` is an
/// error as soon as its fixed header is read, before its body arrives.
pub fn read_packet(_buf: &mut BytesMut, _max_packet_size: usize) -> Result<Option<Packet>, DecodeError> {
    todo!()
}
