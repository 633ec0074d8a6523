//! Publish into the embedded broker-lite, in process, without a TCP hop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use broker_lite::BrokerHandle;
use tokio::sync::mpsc;
use tracing::warn;

use crate::message::Message;

/// Counters of one output.
#[derive(Debug, Default)]
pub struct OutputStats {
    /// Messages the broker has taken.
    pub published: AtomicU64,
    /// Messages refused (invalid topic) or lost because the broker stopped.
    pub failed: AtomicU64,
}

/// Hand every message to the broker in order; returns when the channel closes.
pub async fn run(handle: BrokerHandle, mut rx: mpsc::Receiver<Message>, stats: Arc<OutputStats>) {
    while let Some(msg) = rx.recv().await {
        match handle
            .publish(&msg.topic, msg.payload, msg.qos, msg.retain)
            .await
        {
            Ok(()) => {
                stats.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                warn!(topic = %msg.topic, "embedded broker refused a message: {e}");
            }
        }
    }
}
