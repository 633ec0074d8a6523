//! The bytes waiting to be written to one client: the router appends encoded
//! packets, the connection task takes them all at once and writes them with one
//! system call. That coalescing is where most of the broker's throughput comes from.

use std::sync::Mutex;

use bytes::BytesMut;
use tokio::sync::Notify;

/// Shared between the router (writer of packets) and one connection task (writer to the socket).
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    buf: BytesMut,
    closed: bool,
}

/// What the connection finds when it wakes up.
pub(crate) enum Taken {
    Bytes(BytesMut),
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

    /// Bytes waiting to be written.
    pub(crate) fn pending(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buf
            .len()
    }

    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    /// Ask the connection to write what is waiting and then close.
    pub(crate) fn close(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.notify.notify_one();
    }

    /// Wait until there is something to write or the outbox is closed.
    /// Cancel safe: nothing is taken unless this returns.
    pub(crate) async fn take(&self) -> Taken {
        loop {
            {
                let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                if !inner.buf.is_empty() || inner.closed {
                    let buf = std::mem::take(&mut inner.buf);
                    return if inner.closed {
                        Taken::Closed(buf)
                    } else {
                        Taken::Bytes(buf)
                    };
                }
            }
            self.notify.notified().await;
        }
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
