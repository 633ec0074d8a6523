//! Cut points for "split anywhere" tests: the same seed gives the same pieces.

/// `data` cut into pieces of 1 to `max` bytes, at places a xorshift of `seed` picks.
pub(crate) fn random_chunks(data: &[u8], seed: u64, max: usize) -> Vec<&[u8]> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut chunks = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (state as usize % max + 1).min(rest.len());
        chunks.push(&rest[..n]);
        rest = &rest[n..];
    }
    chunks
}
