//! Bytes from a device → framer → `Frame`s on the pipeline's channel.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tracing::debug;

use super::SourceStatus;
use crate::frame::{Frame, Framed, Framer, Meta};

/// Feeds one source's bytes through its framer and sends the frames on.
pub struct Feed {
    source: Arc<str>,
    framer: Box<dyn Framer>,
    status: Arc<SourceStatus>,
    tx: mpsc::Sender<Frame>,
    port: Option<Arc<str>>,
    /// Reused between pushes: what the framer produced from the last bytes.
    scratch: Vec<Framed>,
}

/// The pipeline behind the source has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineClosed;

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("source", &self.source)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Feed {
    pub fn new(
        source: &str,
        framer: Box<dyn Framer>,
        status: Arc<SourceStatus>,
        tx: mpsc::Sender<Frame>,
        port: Option<String>,
    ) -> Feed {
        Feed {
            source: Arc::from(source),
            framer,
            status,
            tx,
            port: port.map(Arc::from),
            scratch: Vec::new(),
        }
    }

    /// Frame `bytes` and send every whole frame; waits while the pipeline is full.
    pub async fn push(&mut self, bytes: &[u8]) -> Result<(), PipelineClosed> {
        self.push_marking(bytes, |_| {}).await
    }

    /// [`Feed::push`], with `mark` called on the meta of the first whole frame
    /// the bytes complete, if any (a serial source marks a query's answer so).
    pub async fn push_marking(
        &mut self,
        bytes: &[u8],
        mark: impl FnOnce(&mut Meta),
    ) -> Result<(), PipelineClosed> {
        SourceStatus::add(&self.status.bytes, bytes.len() as u64);
        self.framer.push(bytes, &mut self.scratch);
        self.send_framed(mark).await
    }

    /// End of input: whatever the framer still holds is reported.
    pub async fn finish(&mut self) -> Result<(), PipelineClosed> {
        self.framer.finish(&mut self.scratch);
        self.send_framed(|_| {}).await
    }

    /// How long the line must stay quiet before [`Feed::idle`], for a framer that ends
    /// frames on silence and holds bytes; `None` otherwise.
    pub fn idle_after(&self) -> Option<Duration> {
        self.framer.idle_after()
    }

    /// The line has been quiet for [`Feed::idle_after`]: send what that completes.
    pub async fn idle(&mut self) -> Result<(), PipelineClosed> {
        self.idle_marking(|_| {}).await
    }

    /// [`Feed::idle`], with `mark` as in [`Feed::push_marking`].
    pub async fn idle_marking(
        &mut self,
        mark: impl FnOnce(&mut Meta),
    ) -> Result<(), PipelineClosed> {
        self.framer.idle(&mut self.scratch);
        self.send_framed(mark).await
    }

    /// Tell the framer how long one character takes on the line.
    pub fn set_char_time(&mut self, char_time: Duration) {
        self.framer.set_char_time(char_time);
    }

    async fn send_framed(&mut self, mark: impl FnOnce(&mut Meta)) -> Result<(), PipelineClosed> {
        let received_at = SystemTime::now();
        let mut mark = Some(mark);
        for framed in self.scratch.drain(..) {
            match framed {
                Framed::Frame(bytes) => {
                    SourceStatus::add(&self.status.frames, 1);
                    let mut meta = Meta {
                        port: self.port.clone(),
                        ..Meta::default()
                    };
                    if let Some(mark) = mark.take() {
                        mark(&mut meta);
                    }
                    let frame = Frame {
                        source: self.source.clone(),
                        received_at,
                        bytes,
                        meta,
                    };
                    self.tx.send(frame).await.map_err(|_| PipelineClosed)?;
                }
                Framed::Bad(bad) => {
                    self.status.bad_frame(
                        format!("{}: {}", bad.kind, bad.detail),
                        bad.len,
                        &bad.preview,
                    );
                    debug!(source = %self.source, kind = ?bad.kind, len = bad.len, "bad frame: {}", bad.detail);
                }
            }
        }
        Ok(())
    }
}
