//! Replays a capture file as a source: at recorded timing, N× faster, or as fast
//! as possible, optionally looping. Each recorded read is fed as one chunk, so the
//! framer sees the same boundaries as it did live.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::info;

use std::path::PathBuf;

use super::feed::Feed;
use super::link::{DeviceSide, TxOutcome, TxRequest};
use super::{SourceState, SourceStatus};
use crate::frame::FramingConfig;
use crate::message::Part;
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

/// Where a replay source's commands go: appended to a file through the source's
/// framing (as a device would get them), or nowhere; either way they count as sent.
#[derive(Debug)]
pub struct CommandSink {
    file: Option<PathBuf>,
    framing: FramingConfig,
    device: DeviceSide,
}

impl CommandSink {
    pub fn new(file: Option<PathBuf>, framing: FramingConfig, device: DeviceSide) -> CommandSink {
        CommandSink {
            file,
            framing,
            device,
        }
    }

    /// A replay that takes no commands (`mqgate replay`).
    pub fn none() -> CommandSink {
        CommandSink::new(None, FramingConfig::default(), DeviceSide::none())
    }

    async fn write(&self, source: &str, parts: &[Part]) -> TxOutcome {
        let mut out = Vec::new();
        for part in parts {
            if let Err(e) = self.framing.encode(&part.bytes, &mut out) {
                return TxOutcome::Failed(format!("source {source}: {e}"));
            }
        }
        let Some(path) = &self.file else {
            return TxOutcome::Sent;
        };
        let file = path.clone();
        let appended = tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)?
                .write_all(&out)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match appended {
            Ok(()) => TxOutcome::Sent,
            Err(e) => TxOutcome::Failed(format!(
                "source {source}: cannot write to {}: {e}",
                path.display()
            )),
        }
    }
}

/// Play `chunks` into `feed` until their end (or forever when looping), or shutdown;
/// commands go to `sink` all the while, and after the end until shutdown.
pub async fn run(
    chunks: Arc<[Chunk]>,
    speed: Speed,
    looping: bool,
    feed: Feed,
    mut sink: CommandSink,
    status: Arc<SourceStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let id = status.id.clone();
    sink.device.set_ready(true);
    let linked = sink.device.is_linked();
    let play = play(chunks, speed, looping, feed, status, shutdown.clone());
    tokio::pin!(play);
    let mut played = false;
    loop {
        // A command being written is finished before anything else happens.
        tokio::select! {
            _ = &mut play, if !played => {
                played = true;
                if !linked {
                    return;
                }
            }
            TxRequest { parts, reply } = sink.device.next() => {
                let _ = reply.send(sink.write(&id, &parts).await);
            }
            // The capture has ended; the "device" still takes commands until then.
            _ = shutdown.changed(), if played => return,
        }
    }
}

async fn play(
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
        for (i, (at, bytes)) in chunks.iter().enumerate() {
            if let Speed::Times(factor) = speed {
                let at = start + scale(*at, factor);
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = shutdown.changed() => return stopped(&status),
                }
            } else if *shutdown.borrow() {
                return stopped(&status);
            }
            if feed.push(bytes).await.is_err() {
                return status.set_state(SourceState::Finished);
            }
            // A framer that ends frames on silence sees the recorded silences (and the end
            // of the capture as one), at the time the silence would have ended live.
            let next = chunks.get(i + 1).map(|c| c.0);
            if let Some(gap) = feed.idle_after() {
                if next.is_none_or(|next| next.saturating_sub(*at) >= gap) {
                    if let Speed::Times(factor) = speed {
                        let quiet = start + scale(*at + gap, factor);
                        tokio::select! {
                            _ = tokio::time::sleep_until(quiet) => {}
                            _ = shutdown.changed() => return stopped(&status),
                        }
                    }
                    if feed.idle().await.is_err() {
                        return status.set_state(SourceState::Finished);
                    }
                }
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
                    _ = shutdown.changed() => return stopped(&status),
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

/// Shutdown came before the end of the capture.
fn stopped(status: &SourceStatus) {
    info!(source = %status.id, "replay stopped before the end of the capture");
    status.set_state(SourceState::Finished);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FramingConfig;
    use tokio::sync::mpsc;

    fn chunks() -> Arc<[Chunk]> {
        Arc::from(vec![
            (Duration::ZERO, Bytes::from_static(b"a\n")),
            (Duration::from_secs(1), Bytes::from_static(b"b\n")),
            (Duration::from_secs(3), Bytes::from_static(b"c\n")),
        ])
    }

    /// Play at `speed` and return when each frame arrived, from the start.
    async fn arrival_times(speed: Speed, looping: bool, frames: usize) -> Vec<Duration> {
        let status = Arc::new(SourceStatus::new("r"));
        let (tx, mut rx) = mpsc::channel(16);
        let feed = Feed::new(
            "r",
            FramingConfig::default().build(),
            status.clone(),
            tx,
            None,
        );
        let (_stop, shutdown) = watch::channel(false);
        let start = Instant::now();
        tokio::spawn(run(
            chunks(),
            speed,
            looping,
            feed,
            CommandSink::none(),
            status,
            shutdown,
        ));
        let mut times = Vec::new();
        while times.len() < frames {
            rx.recv().await.expect("a frame");
            times.push(start.elapsed());
        }
        times
    }

    #[tokio::test(start_paused = true)]
    async fn a_replay_keeps_the_recorded_timing_scaled_by_its_speed() {
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(
            arrival_times(Speed::Times(1.0), false, 3).await,
            [ms(0), ms(1000), ms(3000)]
        );
        assert_eq!(
            arrival_times(Speed::Times(2.0), false, 3).await,
            [ms(0), ms(500), ms(1500)]
        );
        assert_eq!(
            arrival_times(Speed::Fast, false, 3).await,
            [ms(0), ms(0), ms(0)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_looping_replay_starts_again_after_its_last_chunk() {
        let times = arrival_times(Speed::Times(1.0), true, 5).await;
        assert_eq!(
            times[3],
            Duration::from_secs(3),
            "the next pass starts when the last one ends"
        );
        assert_eq!(times[4], Duration::from_secs(4));
    }
}
