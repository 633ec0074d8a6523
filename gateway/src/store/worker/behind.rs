//! Write-behind: a message from a `write_behind` source goes into the journal,
//! an SQLite file in memory (tmpfs) that survives a crash of the process but
//! not a power cut, and into the store file only if its outputs have not all
//! acknowledged it within `write_behind_ms`, or as soon as an output is down.
//! While the outputs keep up, the file is not written at all.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{error, warn};

use super::space::statfs;
use super::{Kept, Worker};
use crate::config::StoreConfig;
use crate::store::db::{Db, Marks};
use crate::store::StoreError;

/// `statfs` magic numbers of file systems that keep their files in memory.
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// The journal's file for the store at `store`: one per store file, named after
/// it (a stable FNV-1a hash of its absolute path tells two stores apart).
pub(super) fn journal_path(dir: &Path, store: &Path) -> PathBuf {
    let absolute = std::path::absolute(store).unwrap_or_else(|_| store.to_path_buf());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in absolute.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let stem = store
        .file_stem()
        .map_or("store".into(), |s| s.to_string_lossy());
    dir.join(format!("mqgate-{stem}-{hash:016x}.journal"))
}

/// Whether `dir` is on a file system in memory; `None` when it cannot be told.
fn in_memory(dir: &Path) -> Option<bool> {
    #[allow(clippy::unnecessary_cast)]
    let kind = statfs(dir)?.f_type as i64;
    Some(kind == TMPFS_MAGIC || kind == RAMFS_MAGIC)
}

/// An existing journal must be a plain file of this user that no one else may
/// read or write: /dev/shm is open to every local user, and what a journal
/// holds is taken over into the store and published.
fn ours(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                cause: e.to_string(),
            })
        }
    };
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.file_type().is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(StoreError::Open {
            path: path.to_path_buf(),
            cause: format!(
                "not a journal of this user (a {}, owner uid {}, mode {:o}; expected a file of \
                 uid {me} with mode 0600): left as it is and not read",
                if meta.file_type().is_symlink() {
                    "link"
                } else if meta.is_dir() {
                    "folder"
                } else {
                    "file"
                },
                meta.uid(),
                meta.mode() & 0o7777
            ),
        });
    }
    Ok(())
}

/// Open the journal of this store (taking over what a crashed run left is done
/// by `Db::open`). Without one, write-behind sources are written on receipt,
/// which is said once here.
pub(super) fn open_journal(config: &StoreConfig) -> Option<Db> {
    let dir = &config.write_behind_dir;
    let path = journal_path(dir, &config.file);
    let opened = std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Open {
            path: path.clone(),
            cause: format!("cannot create the folder {}: {e}", dir.display()),
        })
        .and_then(|()| ours(&path))
        .and_then(|()| Db::open_journal(&path));
    match opened {
        Ok(db) => {
            if in_memory(dir) == Some(false) {
                warn!(
                    store = %config.file.display(),
                    "store.write_behind_dir {} is not in memory (not a tmpfs): the write-behind \
                     journal there writes to its disk",
                    dir.display()
                );
            }
            Some(db)
        }
        Err(e) => {
            warn!(
                store = %config.file.display(),
                "write-behind is off, every message is written on receipt: {e} \
                 (store.write_behind_dir {})",
                dir.display()
            );
            None
        }
    }
}

impl Worker {
    fn window(&self) -> Duration {
        Duration::from_millis(self.config.write_behind_ms)
    }

    /// How often the ticker wakes the store: often enough that a message leaves
    /// the journal within a quarter of its window after it, at most once a second.
    pub(super) fn tick_period(&self) -> Duration {
        (self.window() / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Move journal messages into the file, in one transaction of each: those whose
    /// window has passed, or all of them (`all`: an output went down, or memory is
    /// full). What cannot be written stays in the journal and is tried again.
    pub(super) fn write_behind_due(&mut self, all: bool) {
        let Some(journal) = &self.journal else {
            return;
        };
        let cut = Instant::now().checked_sub(self.window());
        let mut moving = Vec::new();
        for &(id, since) in &self.journal_ids {
            if !all && cut.is_none_or(|cut| since > cut) {
                break;
            }
            moving.push(id);
        }
        if moving.is_empty() {
            return;
        }
        let mut written = Vec::with_capacity(moving.len());
        let result = self.db.begin().and_then(|()| {
            for &id in &moving {
                let Some(i) = self.cache_index(id) else {
                    continue;
                };
                let e = &self.cache[i];
                if e.kept != Kept::Journal || e.pending == 0 {
                    continue;
                }
                let marks = Marks {
                    pending: e.pending,
                    released: e.released,
                };
                self.db
                    .insert(id, e.created_ms, &e.message, marks, e.size as u64)?;
                written.push(i);
            }
            self.db.commit()
        });
        if let Err(e) = result {
            self.db.rollback();
            error!("{e}; the messages stay in the write-behind journal and are tried again");
            self.set_error(Some(&e));
            return;
        }
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.disk_dirty = true;
        for i in written {
            self.cache[i].kept = Kept::File;
        }
        self.journal_ids.drain(..moving.len());
        let cleared = journal.begin().and_then(|()| {
            moving.iter().try_for_each(|&id| journal.delete(id))?;
            journal.commit()
        });
        if let Err(e) = cleared {
            // Harmless: the file's copy wins when a later start takes the journal over.
            journal.rollback();
            warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_store_file_has_its_own_journal_named_after_it() {
        let a = journal_path(
            Path::new("/dev/shm"),
            Path::new("/var/lib/mqgate/messages.db"),
        );
        let b = journal_path(Path::new("/dev/shm"), Path::new("/srv/other/messages.db"));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("mqgate-messages-"), "{name}");
        assert!(name.ends_with(".journal"), "{name}");
        assert_eq!(
            a,
            journal_path(
                Path::new("/dev/shm"),
                Path::new("/var/lib/mqgate/messages.db")
            )
        );
    }

    #[test]
    fn a_journal_someone_else_may_write_is_not_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = test_support::Scratch::new("mqgate-journal-owner");
        let path = dir.path().join("j.journal");
        assert!(ours(&path).is_ok(), "absent: created by us");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(ours(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = ours(&path).unwrap_err().to_string();
        assert!(
            e.contains("not a journal of this user") && e.contains("mode 666"),
            "{e}"
        );
        let link = dir.path().join("l.journal");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = ours(&link).unwrap_err().to_string();
        assert!(e.contains("a link"), "{e}");
    }

    #[test]
    fn dev_shm_is_in_memory_and_a_missing_folder_cannot_be_told() {
        if Path::new("/dev/shm").is_dir() {
            assert_eq!(in_memory(Path::new("/dev/shm")), Some(true));
        }
        assert_eq!(in_memory(Path::new("/no/such/folder")), None);
    }
}
