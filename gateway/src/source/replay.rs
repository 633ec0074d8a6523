//! Replays a capture file as a source: at recorded timing, N× faster, or as fast
//! as possible, optionally looping. Each recorded read is fed as one chunk, so the
//! framer sees the same boundaries as it did live.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::info;

use super::feed::Feed;
use super::{SourceState, SourceStatus};
use bytes::Bytes;

/// Shortest pass of a looping replay at recorded speed (1×).
const MIN_PASS: Duration = Duration::from_secs(1);

/// How fast to play.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Recorded timing multiplied by this factor's inverse (2.0 plays twice as fast).
    Times(f64),
    /// No waiting at all.
    Fast,
}

/// One recorded read: its time since the start of the capture, and its bytes.
pub type Chunk = (Duration, Bytes);

/// Play `chunks` into `feed` until their end (or forever when looping), or shutdown.
pub async fn run(
    chunks: Arc<[Chunk]>,
    speed: Speed,
    looping: bool,
    mut feed: Feed,
    status: Arc<SourceStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    status.set_state(SourceState::Connected {
        since: SystemTime::now(),
    });
    loop {
        let start = Instant::now();
        for (at, bytes) in chunks.iter() {
            if let Speed::Times(factor) = speed {
                let at = start + scale(*at, factor);
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = shutdown.changed() => return status.set_state(SourceState::Finished),
                }
            } else if *shutdown.borrow() {
                return status.set_state(SourceState::Finished);
            }
            if feed.push(bytes).await.is_err() {
                return status.set_state(SourceState::Finished);
            }
        }
        if feed.finish().await.is_err() || !looping {
            break;
        }
        if chunks.is_empty() {
            break;
        }
        match speed {
            // A raw file has no timing (one chunk at 0 s): a pass lasts at least
            // a second at 1×, so a looping demo does not spin.
            Speed::Times(factor) => {
                let recorded = chunks.last().map_or(Duration::ZERO, |c| c.0);
                let pass = scale(recorded.max(MIN_PASS), factor);
                tokio::select! {
                    _ = tokio::time::sleep_until(start + pass) => {}
                    _ = shutdown.changed() => break,
                }
            }
            // A fast loop still lets other tasks run between passes.
            Speed::Fast => tokio::task::yield_now().await,
        }
    }
    info!(source = %status.id, "replay finished");
    status.set_state(SourceState::Finished);
}

fn scale(at: Duration, factor: f64) -> Duration {
    if factor <= 0.0 || !factor.is_finite() {
        return at;
    }
    Duration::from_secs_f64(at.as_secs_f64() / factor)
}
