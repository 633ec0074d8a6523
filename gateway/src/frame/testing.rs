//! Helpers for framer tests: feed a stream in one piece, split at a position, or split
//! at many places.

use super::{Framed, FramingConfig};

/// Everything a fresh framer produces for `chunks`, then `finish`.
pub(crate) fn run(config: &FramingConfig, chunks: &[&[u8]]) -> Vec<Framed> {
    let mut framer = config.build();
    let mut out = Vec::new();
    for c in chunks {
        framer.push(c, &mut out);
    }
    framer.finish(&mut out);
    out
}

/// Asserts that `data` split at every single position (two pushes) and byte by byte gives
/// the same output as one push; returns that output.
pub(crate) fn assert_split_invariant(config: &FramingConfig, data: &[u8]) -> Vec<Framed> {
    let whole = run(config, &[data]);
    for at in 0..=data.len() {
        let (a, b) = data.split_at(at);
        assert_eq!(run(config, &[a, b]), whole, "split at byte {at}");
    }
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(run(config, &bytes), whole, "byte by byte");
    whole
}

/// `data` cut at the given positions (sorted, clamped, duplicates give empty pushes).
pub(crate) fn split_at_cuts<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(data.len())).collect();
    cuts.sort_unstable();
    let mut parts = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for c in cuts {
        parts.push(&data[start..c]);
        start = c;
    }
    parts.push(&data[start..]);
    parts
}

/// A frame holding `bytes`.
pub(crate) fn frame(bytes: &[u8]) -> Framed {
    Framed::Frame(bytes::Bytes::copy_from_slice(bytes))
}

/// The kind of each output: `None` for a frame, the bad kind otherwise.
pub(crate) fn kinds(out: &[Framed]) -> Vec<Option<super::BadKind>> {
    out.iter()
        .map(|f| match f {
            Framed::Frame(_) => None,
            Framed::Bad(b) => Some(b.kind),
        })
        .collect()
}
