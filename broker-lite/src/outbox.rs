//! The bytes waiting to be written to one client: the router appends encoded
//! packets, the connection task takes them all at once and writes them with one
//! system call. That coalescing is where most of the broker's throughput comes from.
//!
//! An outbox past its soft limit is *congested*: the router then puts a brake on
//! the publishers that fill it, and they stop reading until it drains (or a short
//! time passes), so that a fast publisher slows down instead of losing QoS 0
//! messages. Past the hard limit QoS 0 messages are dropped and counted.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::sync::Notify;

/// Shared between the router (writer of packets) and one connection task (writer to the socket).
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    notify: Notify,
    /// Batches of packets sent to the router and not yet handled.
    batches: AtomicU32,
}

/// Batches of packets one connection may have waiting in the router's channel.
/// Keeping this small is what makes a brake take effect at once: a publisher
/// cannot have thousands of messages on their way when it is told to wait.
const MAX_BATCHES: u32 = 2;

#[derive(Debug, Default)]
struct Inner {
    buf: BytesMut,
    closed: bool,
    /// Over the soft limit since the connection last drained it.
    over_soft: bool,
    /// The session's queue behind the in-flight window is long (set and cleared by the router).
    queue_long: bool,
    /// A braked publisher waited in vain for it to drain: stop braking until it does.
    stuck: bool,
    /// The congested outbox this connection's publisher must wait for before reading more.
    brake: Option<Arc<Outbox>>,
}

impl Inner {
    /// Congested and not given up on: publishers feeding it wait.
    fn brakes(&self) -> bool {
        (self.over_soft || self.queue_long) && !self.stuck
    }

    /// After one cause of congestion went away: true if none is left.
    fn settle(&mut self) -> bool {
        let clear = !self.over_soft && !self.queue_long;
        if clear {
            self.stuck = false;
        }
        clear
    }
}

/// Soft and hard limits on the bytes waiting in one outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutboxLimits {
    /// Past this, publishers sending here are braked.
    pub soft: usize,
    /// Past this, QoS 0 messages to this client are dropped.
    pub hard: usize,
}

impl OutboxLimits {
    pub(crate) fn for_packet_size(max_packet_size: usize) -> OutboxLimits {
        let hard = (4 * 1024 * 1024).max(2 * max_packet_size);
        OutboxLimits {
            soft: hard / 16,
            hard,
        }
    }
}

/// What the connection takes to write.
pub(crate) enum Taken {
    Bytes(BytesMut),
    /// The last bytes before the connection closes.
    Closed(BytesMut),
}

impl Outbox {
    /// Append with `f`; returns the bytes now waiting. The caller wakes the connection with `wake`.
    pub(crate) fn push_with(&self, f: impl FnOnce(&mut BytesMut)) -> usize {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.closed {
            f(&mut inner.buf);
        }
        inner.buf.len()
    }

    /// Append a QoS 0 message unless the outbox is over `limits.hard`.
    /// Returns `None` when dropped, else whether the outbox is now congested.
    pub(crate) fn push_droppable(
        &self,
        limits: OutboxLimits,
        f: impl FnOnce(&mut BytesMut),
    ) -> Option<bool> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.buf.len() > limits.hard {
            return None;
        }
        if !inner.closed {
            f(&mut inner.buf);
        }
        if inner.buf.len() > limits.soft {
            inner.over_soft = true;
        }
        Some(inner.brakes())
    }

    /// The session's queue grew long: true when publishers should be braked.
    pub(crate) fn queue_long(&self) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.queue_long = true;
        inner.brakes()
    }

    /// The session's queue is short again. True when the outbox is no longer
    /// congested at all, so braked publishers can be told.
    pub(crate) fn queue_short(&self) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.queue_long {
            return false;
        }
        inner.queue_long = false;
        inner.settle()
    }

    pub(crate) fn is_congested(&self) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.over_soft || inner.queue_long
    }

    /// After a write: the bytes are no longer over the limit once at most `below`
    /// wait. True when the outbox is no longer congested at all.
    pub(crate) fn relieve(&self, below: usize) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.over_soft && inner.buf.len() <= below {
            inner.over_soft = false;
            return inner.settle();
        }
        false
    }

    /// A publisher waited for this outbox to drain and gave up.
    pub(crate) fn mark_stuck(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).stuck = true;
    }

    /// Make this connection wait for `target` before it reads more.
    pub(crate) fn set_brake(&self, target: Arc<Outbox>) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).brake = Some(target);
    }

    pub(crate) fn take_brake(&self) -> Option<Arc<Outbox>> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .brake
            .take()
    }

    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    /// Ask the connection to write what is waiting and then close.
    pub(crate) fn close(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.notify.notify_one();
    }

    /// What is waiting to be written, taken at once: the bytes, or the bytes
    /// before closing; `None` when there is nothing. A connection that finds
    /// nothing is about to wait: the buffer it gave back for reuse (up to 64 KiB
    /// after a burst) is let go then, so that a quiet client holds no write buffer
    /// however busy it was.
    pub(crate) fn try_take(&self) -> Option<Taken> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.buf.is_empty() || inner.closed {
            let buf = std::mem::take(&mut inner.buf);
            return Some(if inner.closed {
                Taken::Closed(buf)
            } else {
                Taken::Bytes(buf)
            });
        }
        if inner.buf.capacity() > 0 {
            inner.buf = BytesMut::new();
        }
        None
    }

    /// Wait until there may be something to take (`try_take`): bytes, the outbox
    /// closed, or a wake-up (the router finished a batch of this connection's
    /// packets, see `batch_done`). Takes nothing, so it is cancel safe, and it
    /// returns nothing, so that what the connection's task holds while it waits
    /// stays small.
    pub(crate) async fn ready(&self) {
        {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if !inner.buf.is_empty() || inner.closed {
                return;
            }
        }
        self.notify.notified().await;
    }

    /// Wait for something to take and take it.
    #[cfg(test)]
    pub(crate) async fn take(&self) -> Taken {
        loop {
            if let Some(taken) = self.try_take() {
                return taken;
            }
            self.ready().await;
        }
    }

    /// The connection handed the router one more batch of packets.
    pub(crate) fn batch_sent(&self) {
        self.batches.fetch_add(1, Ordering::AcqRel);
    }

    /// The router has handled one batch; wakes the connection if it was waiting for that.
    pub(crate) fn batch_done(&self) {
        if self.batches.fetch_sub(1, Ordering::AcqRel) >= MAX_BATCHES {
            self.notify.notify_one();
        }
    }

    /// Whether the connection may read and send another batch.
    pub(crate) fn may_send_batch(&self) -> bool {
        self.batches.load(Ordering::Acquire) < MAX_BATCHES
    }

    /// Give a written (now empty) buffer back so its allocation is reused.
    /// Large buffers are dropped so that an idle connection holds little memory.
    pub(crate) fn recycle(&self, mut buf: BytesMut) {
        const KEEP: usize = 64 * 1024;
        buf.clear();
        if buf.capacity() > KEEP {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.buf.is_empty() && inner.buf.capacity() < buf.capacity() {
            inner.buf = buf;
        }
    }

    /// Everything waiting, taken at once (tests).
    #[cfg(test)]
    pub(crate) fn take_now(&self) -> BytesMut {
        std::mem::take(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()).buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_connection_holds_no_write_buffer() {
        let outbox = Outbox::default();
        outbox.push_with(|b| b.extend_from_slice(&[1u8; 40_000]));
        let Taken::Bytes(buf) = outbox.take().await else {
            panic!("bytes were waiting");
        };
        assert_eq!(buf.len(), 40_000);
        outbox.recycle(buf);
        assert!(
            outbox.inner.lock().unwrap().buf.capacity() >= 40_000,
            "kept for reuse"
        );
        // Nothing more comes: the connection waits, and lets the buffer go.
        let waiting = std::future::poll_fn(|cx| {
            let take = std::pin::pin!(outbox.take());
            std::task::Poll::Ready(std::future::Future::poll(take, cx).is_pending())
        });
        assert!(waiting.await, "nothing to take");
        assert_eq!(outbox.inner.lock().unwrap().buf.capacity(), 0);
        // And the next packets are taken as before.
        outbox.push_with(|b| b.extend_from_slice(b"abc"));
        outbox.wake();
        let Taken::Bytes(buf) = outbox.take().await else {
            panic!("bytes were waiting");
        };
        assert_eq!(&buf[..], b"abc");
    }
}
