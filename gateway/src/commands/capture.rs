//! `mqgate capture --port PATH --baud N --out FILE`: record what a serial port
//! sends, each read with its time, until SIGINT/SIGTERM or the port goes away.

use std::path::Path;
use std::time::Instant;

use tokio::io::AsyncReadExt;

use super::wait_for_signal;
use crate::capture::{format_utc, CaptureHeader, CaptureWriter, Parity};
use crate::source::serial::SerialSettings;

pub async fn run(port: &str, baud: u32, out: &Path) -> u8 {
    let settings = SerialSettings::new(port, baud);
    let mut serial = match settings.open() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mqgate: {e}");
            return 1;
        }
    };
    let file = match std::fs::File::create(out) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mqgate: cannot create {}: {e}", out.display());
            return 1;
        }
    };
    let header = CaptureHeader {
        port: Some(port.to_string()),
        baud: Some(baud),
        data_bits: Some(8),
        parity: Some(Parity::None),
        stop_bits: Some(1),
        started_at: Some(format_utc(std::time::SystemTime::now())),
    };
    let mut writer = match CaptureWriter::new(std::io::BufWriter::new(file), header) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("mqgate: cannot write {}: {e}", out.display());
            return 1;
        }
    };
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    let mut total = 0usize;
    let stop = wait_for_signal();
    tokio::pin!(stop);
    let code = loop {
        tokio::select! {
            _ = &mut stop => break 0,
            r = serial.read(&mut buf) => match r {
                Ok(0) => {
                    eprintln!("mqgate: {port} read 0 bytes (unplugged?); stopping");
                    break 1;
                }
                Ok(n) => {
                    total += n;
                    if let Err(e) = writer.write_chunk(start.elapsed(), &buf[..n]) {
                        eprintln!("mqgate: cannot write {}: {e}", out.display());
                        break 1;
                    }
                }
                Err(e) => {
                    eprintln!("mqgate: reading {port}: {e}");
                    break 1;
                }
            }
        }
    };
    if let Err(e) = writer.flush() {
        eprintln!("mqgate: cannot write {}: {e}", out.display());
        return 1;
    }
    eprintln!("mqgate: recorded {total} bytes to {}", out.display());
    code
}
