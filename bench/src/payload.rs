//! The 64-byte benchmark payload: publisher id, sequence number and send time,
//! padded with filler bytes. Times are nanoseconds on one process-wide monotonic clock.

use std::sync::OnceLock;
use std::time::Instant;

/// Size of every benchmark payload, in bytes.
pub(crate) const PAYLOAD_LEN: usize = 64;

/// Nanoseconds since the first call in this process (monotonic).
pub(crate) fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// What a payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub publisher: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

/// A payload buffer with filler already in place; `write` only changes the header.
pub(crate) fn blank() -> [u8; PAYLOAD_LEN] {
    let mut p = [b'x'; PAYLOAD_LEN];
    p[..20].fill(0);
    p
}

/// Put the stamp into the first 20 bytes of `payload`.
pub(crate) fn write(payload: &mut [u8; PAYLOAD_LEN], stamp: Stamp) {
    payload[0..4].copy_from_slice(&stamp.publisher.to_le_bytes());
    payload[4..12].copy_from_slice(&stamp.seq.to_le_bytes());
    payload[12..20].copy_from_slice(&stamp.sent_ns.to_le_bytes());
}

/// The stamp in a received payload; `None` when it is not a benchmark payload.
pub(crate) fn read(payload: &[u8]) -> Option<Stamp> {
    if payload.len() != PAYLOAD_LEN {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes(payload[i..i + 4].try_into().unwrap_or_default());
    let u64_at = |i: usize| u64::from_le_bytes(payload[i..i + 8].try_into().unwrap_or_default());
    Some(Stamp {
        publisher: u32_at(0),
        seq: u64_at(4),
        sent_ns: u64_at(12),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_stamp_reads_back_unchanged() {
        let mut p = blank();
        let stamp = Stamp {
            publisher: 3,
            seq: 123_456_789,
            sent_ns: u64::MAX - 5,
        };
        write(&mut p, stamp);
        assert_eq!(read(&p), Some(stamp));
        assert_eq!(p[63], b'x');
    }

    #[test]
    fn a_payload_of_another_size_is_not_a_benchmark_payload() {
        assert_eq!(read(&[0u8; 20]), None);
    }
}
