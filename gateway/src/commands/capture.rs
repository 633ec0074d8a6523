//! `mqgate capture --port PATH --baud N --out FILE [--data-bits N] [--parity P]
//! [--stop-bits N]`: record what a serial port sends, each read with its time, until
//! SIGINT/SIGTERM or the port goes away.

use std::path::Path;
use std::time::Instant;

use tokio::io::AsyncReadExt;

use super::wait_for_signal;
use crate::capture::{format_utc, CaptureHeader, CaptureWriter, Parity};
use crate::source::serial::SerialSettings;

/// `--parity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ParityArg {
    None,
    Even,
    Odd,
}

#[derive(Debug)]
pub struct CaptureArgs<'a> {
    pub port: &'a str,
    pub baud: u32,
    pub out: &'a Path,
    pub data_bits: u8,
    pub parity: ParityArg,
    pub stop_bits: u8,
}

pub async fn run(args: &CaptureArgs<'_>) -> u8 {
    let (port, baud, out) = (args.port, args.baud, args.out);
    let mut settings = SerialSettings::new(port, baud);
    settings.data_bits = match args.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let (parity, letter) = match args.parity {
        ParityArg::None => (Parity::None, 'N'),
        ParityArg::Even => (Parity::Even, 'E'),
        ParityArg::Odd => (Parity::Odd, 'O'),
    };
    settings.parity = match args.parity {
        ParityArg::None => tokio_serial::Parity::None,
        ParityArg::Even => tokio_serial::Parity::Even,
        ParityArg::Odd => tokio_serial::Parity::Odd,
    };
    settings.stop_bits = if args.stop_bits == 2 {
        tokio_serial::StopBits::Two
    } else {
        tokio_serial::StopBits::One
    };
    let mut serial = match settings.open() {
        Ok(p) => p,
        Err(e) => {
            // mqgate opens its ports for exclusive use: a second open is refused.
            let hint = if e.contains("busy") || e.contains("exclusive") {
                " (a running mqgate may hold it: stop it first, e.g. `sudo systemctl stop mqgate`)"
            } else {
                ""
            };
            eprintln!("mqgate: {e}{hint}");
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
        data_bits: Some(args.data_bits),
        parity: Some(parity),
        stop_bits: Some(args.stop_bits),
        started_at: Some(format_utc(std::time::SystemTime::now())),
    };
    let mut writer = match CaptureWriter::new(std::io::BufWriter::new(file), header) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("mqgate: cannot write {}: {e}", out.display());
            return 1;
        }
    };
    eprintln!(
        "mqgate: recording {port} at {baud} {}{letter}{} into {}; Ctrl-C stops",
        args.data_bits,
        args.stop_bits,
        out.display()
    );
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
