//! One mapping thread per source: frames in, messages (and dead letters) out.

use log_limit::LogLimit;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use tokio::sync::mpsc;
use tracing::warn;

use super::MessageBatch;
use crate::config::Durability;
use crate::frame::Frame;
use crate::mapping::{dead_letter, Mapped, Mapper};
use crate::message::Message;
use crate::source::SourceStatus;

/// A source's current mapper. The mapping thread reads it once per batch; a
/// reload (SIGHUP) puts a new one in, and the frames already waiting are mapped
/// by the new one: nothing queued is dropped.
pub type MapperSlot = RwLock<Arc<Mapper>>;

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
    /// The mapping file and its script; `None` for a source without a mapping
    /// (frames published as they are) or without a script.
    files: Mutex<MappingFiles>,
    /// The last frame that could not be mapped, and why.
    last_error: Mutex<Option<LastMapError>>,
    /// Dead letters are logged once a minute at most, with a count of the others.
    dead_letter_log: LogLimit,
}

/// Which files a mapping was built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MappingFiles {
    pub mapping: Option<PathBuf>,
    pub script: Option<PathBuf>,
}

/// The last mapping error of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct LastMapError {
    pub at: SystemTime,
    /// The whole message, starting with `file:line:column`.
    pub message: String,
    /// The script line, when known.
    pub line: Option<u64>,
}

impl MappingStats {
    pub fn new(source: &str, files: MappingFiles) -> MappingStats {
        MappingStats {
            source: source.to_string(),
            files: Mutex::new(files),
            ..MappingStats::default()
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn files(&self) -> MappingFiles {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_files(&self, files: MappingFiles) {
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = files;
    }

    pub fn last_error(&self) -> Option<LastMapError> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// After a reload, errors of the old script no longer say anything.
    pub fn clear_last_error(&self) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(crate) fn set_last_error(&self, error: &crate::mapping::MapError) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(LastMapError {
            at: SystemTime::now(),
            message: error.to_string(),
            line: error.line(),
        });
    }
}

/// The registry's devices' decoders for one source: a frame whose meta names a
/// registered device (`dev_eui`, else `device`) is mapped by its decoder.
#[derive(Debug, Default)]
pub struct DeviceMappers {
    by_eui: HashMap<String, Arc<Mapper>>,
    by_name: HashMap<String, Arc<Mapper>>,
}

impl DeviceMappers {
    pub(super) fn insert(&mut self, device: &crate::config::DeviceConfig, mapper: Arc<Mapper>) {
        if let Some(eui) = &device.dev_eui {
            self.by_eui.insert(eui.clone(), mapper.clone());
        }
        self.by_name.insert(device.name.clone(), mapper);
    }

    /// The decoder of the device a frame comes from, if it is registered with one.
    fn of(&self, frame: &Frame) -> Option<&Arc<Mapper>> {
        let extra = &frame.meta.extra;
        extra
            .get("dev_eui")
            // The servers and the registry write DevEUIs in upper case already.
            .and_then(|e| {
                self.by_eui
                    .get(e.as_str())
                    .or_else(|| self.by_eui.get(&e.to_ascii_uppercase()))
            })
            .or_else(|| extra.get("device").and_then(|d| self.by_name.get(d)))
    }

    fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// What maps a source's frames: its mapping (a reload replaces it), and the
/// decoders of the registered devices it may hear.
#[derive(Debug)]
pub(super) struct SourceMappers {
    pub slot: Arc<MapperSlot>,
    pub devices: DeviceMappers,
}

/// Stack of a mapping thread.
const MAPPING_STACK: usize = 16 * 1024 * 1024;
/// Frames mapped per wake-up at most; their messages go on as one batch.
pub(super) const BATCH_FRAMES: usize = 64;
/// Start the mapping thread of `status`'s source.
pub(super) fn spawn(
    status: Arc<SourceStatus>,
    mappers: SourceMappers,
    stats: Arc<MappingStats>,
    gateway_id: &str,
    mut frames: mpsc::Receiver<Frame>,
    durability: Durability,
    out: mpsc::Sender<MessageBatch>,
) -> anyhow::Result<()> {
    let SourceMappers { slot, devices } = mappers;
    let source = status.id.clone();
    let gateway_id = gateway_id.to_string();
    std::thread::Builder::new()
        .name(format!("map-{source}"))
        // Rhai recurses on deeply nested values; the time limit stops a script long
        // before this much stack is used (only what is touched takes memory).
        .stack_size(MAPPING_STACK)
        .spawn(move || {
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
                status.keep_recent(&waiting);
                let mapper = slot.read().unwrap_or_else(|e| e.into_inner()).clone();
                let mut batch = MessageBatch::new(durability, Vec::new());
                for mut frame in waiting.drain(..) {
                    let mapper = match devices.is_empty() {
                        true => &mapper,
                        false => devices.of(&frame).unwrap_or(&mapper),
                    };
                    map_one(mapper, &gateway_id, &stats, &frame, &mut batch.messages);
                    let receipt = frame.meta.receipt.take();
                    if !receipt.is_none() {
                        batch.receipts.push(receipt);
                    }
                }
                if batch.messages.is_empty() {
                    // Nothing to store: what waits for it may go on.
                    MessageBatch::release(&mut batch.receipts);
                } else if out.blocking_send(batch).is_err() {
                    break;
                }
            }
        })?;
    Ok(())
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
            stats.set_last_error(&error);
            if let Some(skipped) = stats.dead_letter_log.check() {
                warn!(
                    source = %frame.source,
                    "frame to the dead-letter topic: {error}{}",
                    log_limit::suppressed(skipped)
                );
            }
            out.push(dead_letter(gateway_id, frame, &error));
        }
    }
}
