//! One process per state folder. `mqgate run` and a `mqgate replay` that publishes
//! take an exclusive lock on `<state_dir>/mqgate.lock` before they open the store or
//! connect anywhere; a second process sharing the folder would fight the first for
//! the upstream client id and change its store under it. The lock is the kernel's
//! (`flock`), so it goes with the process however it ends; the file keeps the PID of
//! the holder for the message a second process prints.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name inside the state folder.
pub const LOCK_FILE: &str = "mqgate.lock";

/// Held for as long as the process uses the state folder.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

impl StateLock {
    /// Create the folder if needed and lock it, or say which process holds it.
    pub fn acquire(state_dir: &Path) -> anyhow::Result<StateLock> {
        std::fs::create_dir_all(state_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the state folder {}: {e}",
                state_dir.display()
            )
        })?;
        let path = state_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        match try_lock(&file) {
            Ok(true) => {}
            Ok(false) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another mqgate process".to_string()
                } else {
                    format!("another mqgate process (PID {holder})")
                };
                anyhow::bail!(
                    "{who} is using the state folder {} (it holds {}): stop it first, or give \
                     this one its own gateway.state_dir",
                    state_dir.display(),
                    path.display()
                );
            }
            Err(e) => anyhow::bail!("cannot lock {}: {e}", path.display()),
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(StateLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An exclusive `flock` without waiting: `false` when another open file holds it.
/// (`File::try_lock` does this from Rust 1.89; the workspace builds with 1.85.)
fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock only reads the descriptor number, which `file` keeps open.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_is_refused_naming_the_holder() {
        let dir = std::env::temp_dir().join(format!("mqgate-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = StateLock::acquire(&dir.join("state")).expect("the first lock");
        assert_eq!(
            std::fs::read_to_string(first.path()).unwrap().trim(),
            std::process::id().to_string()
        );
        let err = StateLock::acquire(&dir.join("state"))
            .expect_err("a second lock")
            .to_string();
        assert!(
            err.contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("state_dir"), "{err}");
        drop(first);
        let again = StateLock::acquire(&dir.join("state")).expect("free again once dropped");
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
