//! Publish into the embedded broker-lite, in process, without a TCP hop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use broker_lite::BrokerHandle;
use tracing::warn;

use crate::store::OutputQueue;

/// Messages read from the store at a time.
const BATCH: usize = 256;

/// Counters of one output.
#[derive(Debug, Default)]
pub struct OutputStats {
    /// Messages the broker has taken.
    pub published: AtomicU64,
    /// Messages refused by the broker (an invalid topic): counted and not tried again.
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
        let mut done = Vec::with_capacity(batch.len());
        for stored in batch {
            let m = &stored.message;
            match handle
                .publish(&m.topic, m.payload.clone(), m.qos, m.retain)
                .await
            {
                Ok(()) => {
                    stats.published.fetch_add(1, Ordering::Relaxed);
                }
                Err(broker_lite::HandleError::Stopped) => {
                    // Not done: it stays in the store for the next start.
                    let _ = queue.done(done).await;
                    warn!("embedded output stops: the broker has stopped");
                    return;
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    warn!(topic = %m.topic, "embedded broker refused a message: {e}");
                }
            }
            if stored.persisted {
                done.push(stored.id);
            }
        }
        if queue.done(done).await.is_err() {
            return;
        }
    }
}
