//! "Need more bytes / have a packet" over a growing read buffer.

use bytes::{Buf, BytesMut};

use super::decode::{check_fixed_header, decode};
use super::{DecodeError, Packet};

/// Take one whole packet off the front of `buf`. `Ok(None)`: not enough bytes yet
/// (nothing consumed). A packet whose total size is over `max_packet_size` is an
/// error as soon as its fixed header is read, before its body arrives; so is a
/// remaining length that does not end within 4 bytes, a reserved packet type or
/// bad fixed-header flags. After an error the buffer holds an unspecified rest.
pub fn read_packet(
    buf: &mut BytesMut,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    let Some(&header) = buf.first() else {
        return Ok(None);
    };
    check_fixed_header(header)?;
    let Some((header_len, body_len)) = remaining_length(&buf[1..])? else {
        return Ok(None);
    };
    let size = header_len + body_len;
    if size > max_packet_size {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: max_packet_size,
        });
    }
    if buf.len() < size {
        return Ok(None);
    }
    buf.advance(header_len);
    let body = buf.split_to(body_len).freeze();
    decode(header, body).map(Some)
}

/// Parse the remaining-length varint that follows the first byte: the fixed
/// header's total length and the body length, or `None` if it is not complete.
fn remaining_length(bytes: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, &byte) in bytes.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((2 + i, value)));
        }
    }
    if bytes.len() >= 4 {
        return Err(DecodeError::RemainingLengthTooLong);
    }
    Ok(None)
}
