//! MQTT 3.1.1 packets <-> bytes. Pure functions over byte buffers: no I/O, no tokio.
//!
//! `decode` and `encode` work on one packet; `framing` only drives
//! "need more bytes / have a packet" over a growing read buffer.

mod decode;
mod encode;
mod error;
mod framing;
mod packet;

pub use decode::decode;
pub use encode::{encode, encode_publish, encoded_len, put_remaining_length};
pub use error::DecodeError;
pub use framing::read_packet;
pub use packet::*;

#[cfg(test)]
mod tests;
