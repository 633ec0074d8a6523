//! Publish into the embedded broker-lite, in process, without a TCP hop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use broker_lite::{BrokerHandle, Publication};
use tracing::warn;

use crate::store::OutputQueue;

/// Messages read from the store at a time.
const BATCH: usize = 256;

/// Counters of one output.
#[derive(Debug, Default)]
pub struct OutputStats {
    /// Messages the broker has taken.
    pub published: AtomicU64,
    /// Messages refused by the broker. Every topic is a valid `TopicName` by the
    /// time it gets here, so nothing is refused today; the count stays in the status.
    pub failed: AtomicU64,
}

/// Hand every message in the store to the broker, in order; a message is done once
/// the broker has taken it. Returns when the input has ended and everything was
/// handed over, or when the broker or the store stops.
pub async fn run(handle: BrokerHandle, mut queue: OutputQueue, stats: Arc<OutputStats>) {
    queue.set_connected(true).await;
    loop {
        let batch = match queue.next_batch(BATCH).await {
            Ok(b) if b.is_empty() => return,
            Ok(b) => b,
            Err(e) => {
                warn!("embedded output stops: {e}");
                return;
            }
        };
        // The batch goes over in one hand-over. Its topics were checked when the
        // messages were made (`TopicName`), so the broker takes them as they are.
        let mut done = Vec::with_capacity(batch.len());
        let mut msgs = Vec::with_capacity(batch.len());
        for stored in batch {
            if stored.persisted {
                done.push(stored.id);
            }
            let m = &stored.message;
            msgs.push(Publication::new(
                &m.topic,
                m.payload.clone(),
                m.qos,
                m.retain,
            ));
        }
        let n = msgs.len() as u64;
        if handle.publish_many(msgs).await.is_err() {
            // Not done: it stays in the store for the next start.
            warn!("embedded output stops: the broker has stopped");
            return;
        }
        stats.published.fetch_add(n, Ordering::Relaxed);
        if queue.done(done).await.is_err() {
            return;
        }
    }
}
