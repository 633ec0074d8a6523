//! Scratch folders and pseudo-terminals standing in for serial ports.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serialport::{SerialPort, TTYPort};

/// A fresh folder under the system's temp folder, removed when dropped.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "mqgate-e2e-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a scratch folder");
        Scratch { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the folder; returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create a scratch sub-folder");
        }
        std::fs::write(&path, contents).expect("write a scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A new pseudo-terminal whose device is reachable through the symlink `link` (as a
/// USB adapter is through `/dev/serial/by-id/...`). Returns the master side: what is
/// written to it, a program that opened `link` reads.
pub fn plug(link: &Path) -> TTYPort {
    let (master, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
    let name = slave.name().expect("the slave side has a path");
    drop(slave);
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(&name, link).expect("symlink to the pseudo-terminal");
    master
}

/// Writes `bytes` to the pseudo-terminal on another thread (a full terminal blocks
/// the writer until the gateway reads) and hands the terminal back once all is
/// written; fails the test if that takes longer than `timeout`.
pub fn write_to_port(mut master: TTYPort, bytes: Vec<u8>, timeout: std::time::Duration) -> TTYPort {
    use std::io::Write;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let written = master.write_all(&bytes).and_then(|()| master.flush());
        let _ = tx.send(written.map(|()| master));
    });
    rx.recv_timeout(timeout)
        .expect("the gateway reads what is written to the port")
        .expect("write to the pseudo-terminal")
}
