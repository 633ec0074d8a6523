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

pub(super) fn spawn(
    source: &str,
    mapper: Option<&Arc<Mapper>>,
    gateway_id: &str,
    mut frames: mpsc::Receiver<Frame>,
    out: mpsc::Sender<Message>,
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
            while let Some(frame) = frames.blocking_recv() {
                let sent = match mapper.map(&frame) {
                    Mapped::Messages(messages) => {
                        stats.mapped.fetch_add(1, Ordering::Relaxed);
                        stats
                            .messages
                            .fetch_add(messages.len() as u64, Ordering::Relaxed);
                        messages.into_iter().all(|m| out.blocking_send(m).is_ok())
                    }
                    Mapped::Filtered => {
                        stats.filtered.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Mapped::Failed(error) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        warn!(source = %frame.source, "frame to the dead-letter topic: {error}");
                        out.blocking_send(dead_letter(&gateway_id, &frame, &error))
                            .is_ok()
                    }
                };
                if !sent {
                    break;
                }
            }
        })?;
    Ok(stats)
}
