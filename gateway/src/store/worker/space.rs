//! Free space on the store's file system: below `min_free_bytes` the store
//! counts as full at the size it has, so that `when_full` applies (evict,
//! refuse or wait, counted) before the file system refuses a write, and the
//! room left is there for acknowledgements and checkpoints.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::Worker;
use crate::store::db::{wal_pages, WAL_PAGES_SHORT};

/// How often free space is looked at while messages are written to the file.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// `statfs(2)` of the file system holding `path`; `None` when it fails.
pub(super) fn statfs(path: &Path) -> Option<libc::statfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `fs` a writable statfs.
    (unsafe { libc::statfs(c.as_ptr(), &mut fs) } == 0).then_some(fs)
}

/// Bytes available to this process on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let fs = statfs(path)?;
    // The counts are in fragments (`f_frsize`), or in blocks where it is not set.
    let unit = if fs.f_frsize != 0 {
        fs.f_frsize
    } else {
        fs.f_bsize
    };
    #[allow(clippy::unnecessary_cast)]
    Some(fs.f_bavail as u64 * unit as u64)
}

impl Worker {
    /// Look at the free space again if it is time (`now`: whatever the time).
    pub(super) fn look_at_space(&mut self, now: bool) {
        if !now && self.space_looked.elapsed() < LOOK_EVERY {
            return;
        }
        self.space_looked = Instant::now();
        let Some(free) = free_bytes(&self.config.file) else {
            return;
        };
        self.stats.disk_free.store(free, Ordering::Relaxed);
        let reserve = self.config.min_free_bytes;
        match self.space_cap {
            None if free < reserve => {
                self.space_cap = Some(self.bytes);
                self.db
                    .autocheckpoint(WAL_PAGES_SHORT.min(wal_pages(reserve)));
                self.stats.disk_low.store(true, Ordering::Relaxed);
                warn!(
                    store = %self.config.file.display(),
                    "the disk of the store has {free} bytes free, less than store.min_free_bytes \
                     ({reserve}): the store counts as full at {} message(s) ({} bytes) until there \
                     is room again (when_full: {})",
                    self.count,
                    self.bytes,
                    self.config.when_full.name()
                );
            }
            // A little more than the reserve, so as not to flap.
            Some(_) if free >= reserve + reserve / 8 => {
                self.space_cap = None;
                self.db.autocheckpoint(wal_pages(reserve));
                self.stats.disk_low.store(false, Ordering::Relaxed);
                info!(
                    store = %self.config.file.display(),
                    "the disk of the store has room again ({free} bytes free)"
                );
            }
            // Out of the batch's transaction (VACUUM cannot run in one).
            Some(_) => self.shrink_due = Some(free),
            None => {}
        }
    }

    /// Short of room with much of the file free (the backlog that filled the disk
    /// was delivered): the file shrinks to what it holds, if that fits twice in
    /// what is free, so that the disk has room again.
    pub(super) fn give_back_room(&mut self, free: u64) {
        let Ok((unused, used)) = self.db.pages() else {
            return;
        };
        if unused < (self.config.min_free_bytes / 8).max(64 * 1024) || used * 2 > free {
            return;
        }
        match self.db.shrink() {
            Ok(()) => {
                info!(
                    store = %self.config.file.display(),
                    "the store file gave {unused} bytes of free pages back to the disk"
                );
                self.last_checkpoint = Instant::now();
                self.disk_dirty = false;
                self.look_at_space(true);
            }
            Err(e) => warn!("cannot shrink the store file: {e}"),
        }
    }
}
