//! One mapping thread per source: frames in, messages (and dead letters) out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::warn;

use crate::frame::Frame;
use crate::mapping::{dead_letter, Mapped, Mapper};
use crate::message::Message;

/// What a source's mapping did.
#[derive(Debug, Default)]
pub struct MappingStats {
    pub source: String,
    /// Frames that produced at least one message.
    pub mapped: AtomicU64,
    /// Messages produced.
    pub messages: AtomicU64,
    /// Frames the filter or the script chose to drop.
    pub filtered: AtomicU64,
    /// Frames sent to the dead-letter topic.
    pub failed: AtomicU64,
}

impl MappingStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Stack of a mapping thread.
const MAPPING_STACK: usize = 16 * 1024 * 1024;
/// Frames mapped per wake-up at most; their messages go on as one batch.
pub(super) const BATCH_FRAMES: usize = 64;
pub(super) fn spawn(
    source: &str,
    mapper: Option<&Arc<Mapper>>,
    gateway_id: &str,
    mut frames: mpsc::Receiver<Frame>,
    out: mpsc::Sender<Vec<Message>>,
) -> anyhow::Result<Arc<MappingStats>> {
    let stats = Arc::new(MappingStats {
        source: source.to_string(),
        ..MappingStats::default()
    });
    let mapper = mapper
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no mapper for source {source}"))?;
    let gateway_id = gateway_id.to_string();
    let thread_stats = stats.clone();
    std::thread::Builder::new()
        .name(format!("map-{source}"))
        // Rhai recurses on deeply nested values; the time limit stops a script long
        // before this much stack is used (only what is touched takes memory).
        .stack_size(MAPPING_STACK)
        .spawn(move || {
            let stats = thread_stats;
            let mut waiting = Vec::with_capacity(BATCH_FRAMES);
            while let Some(first) = frames.blocking_recv() {
                // Whatever else is waiting is mapped in the same go.
                waiting.push(first);
                while waiting.len() < BATCH_FRAMES {
                    match frames.try_recv() {
                        Ok(frame) => waiting.push(frame),
                        Err(_) => break,
                    }
                }
                let mut batch = Vec::new();
                for frame in waiting.drain(..) {
                    map_one(&mapper, &gateway_id, &stats, &frame, &mut batch);
                }
                if !batch.is_empty() && out.blocking_send(batch).is_err() {
                    break;
                }
            }
        })?;
    Ok(stats)
}

/// Map one frame; its messages (or its dead letter) go to `out`.
fn map_one(
    mapper: &Mapper,
    gateway_id: &str,
    stats: &MappingStats,
    frame: &Frame,
    out: &mut Vec<Message>,
) {
    match mapper.map(frame) {
        Mapped::Messages(messages) => {
            stats.mapped.fetch_add(1, Ordering::Relaxed);
            stats
                .messages
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            out.extend(messages);
        }
        Mapped::Filtered => {
            stats.filtered.fetch_add(1, Ordering::Relaxed);
        }
        Mapped::Failed(error) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            warn!(source = %frame.source, "frame to the dead-letter topic: {error}");
            out.push(dead_letter(gateway_id, frame, &error));
        }
    }
}
