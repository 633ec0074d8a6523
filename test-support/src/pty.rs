//! Pseudo-terminals standing in for serial ports.

use std::path::Path;
use std::time::Duration;

use serialport::{SerialPort, TTYPort};

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
/// the writer until the reader reads) and hands the terminal back once all is
/// written; fails the test if that takes longer than `timeout`.
pub fn write_to_port(mut master: TTYPort, bytes: Vec<u8>, timeout: Duration) -> TTYPort {
    use std::io::Write;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let written = master.write_all(&bytes).and_then(|()| master.flush());
        let _ = tx.send(written.map(|()| master));
    });
    rx.recv_timeout(timeout)
        .expect("the reader reads what is written to the port")
        .expect("write to the pseudo-terminal")
}
