//! A serial port source. Opens the port exclusively, reads into the framer, and
//! when the port goes away (a read returns 0 bytes or fails, as an unplugged USB
//! adapter does) drops it and reopens the same path with back-off — never a busy loop.
//!
//! With `poll:` queries it also asks its instrument: the writer writes each query
//! when due and waits for the first frame (or the timeout) before it writes
//! anything else, a command included; the reader marks that frame as the answer.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio_serial::{DataBits, FlowControl, Parity, SerialPortBuilderExt, StopBits};
use tracing::{info, warn};

use super::feed::{Feed, PipelineClosed};
use super::link::{DeviceSide, TxOutcome, TxRequest};
use super::poll::Query;
use super::{SourceState, SourceStatus};
use crate::backoff::Backoff;
use crate::frame::FramingConfig;
use crate::message::Part;

mod polls;

use polls::{Polls, Turn};

/// How to open the port.
#[derive(Debug, Clone, PartialEq)]
pub struct SerialSettings {
    /// Prefer `/dev/serial/by-id/...`: it stays the same when adapters are replugged.
    pub path: String,
    pub baud: u32,
    pub data_bits: DataBits,
    pub parity: Parity,
    pub stop_bits: StopBits,
    pub flow_control: FlowControl,
    /// First and longest wait between reopen attempts.
    pub reopen_initial: Duration,
    pub reopen_max: Duration,
}

impl SerialSettings {
    /// 8N1, no flow control, reopen after 0.5 s up to 30 s.
    pub fn new(path: &str, baud: u32) -> SerialSettings {
        SerialSettings {
            path: path.to_string(),
            baud,
            data_bits: DataBits::Eight,
            parity: Parity::None,
            stop_bits: StopBits::One,
            flow_control: FlowControl::None,
            reopen_initial: Duration::from_millis(500),
            reopen_max: Duration::from_secs(30),
        }
    }

    /// Open the port for reading, exclusively (a second open of the same path fails).
    pub fn open(&self) -> Result<tokio_serial::SerialStream, String> {
        let mut port = tokio_serial::new(&self.path, self.baud)
            .data_bits(self.data_bits)
            .parity(self.parity)
            .stop_bits(self.stop_bits)
            .flow_control(self.flow_control)
            .open_native_async()
            .map_err(|e| format!("cannot open {}: {e}", self.path))?;
        port.set_exclusive(true)
            .map_err(|e| format!("cannot lock {} for exclusive use: {e}", self.path))?;
        Ok(port)
    }

    /// How long one character takes on the line: start bit, data bits, parity bit and
    /// stop bits at the baud rate.
    pub fn char_time(&self) -> Duration {
        let data = match self.data_bits {
            DataBits::Five => 5,
            DataBits::Six => 6,
            DataBits::Seven => 7,
            DataBits::Eight => 8,
        };
        let parity = u32::from(self.parity != Parity::None);
        let stop = match self.stop_bits {
            StopBits::One => 1,
            StopBits::Two => 2,
        };
        let bits = 1 + data + parity + stop;
        Duration::from_secs_f64(f64::from(bits) / f64::from(self.baud.max(1)))
    }
}

/// Keeps one serial port open for a source: opens it, and after it went away (or
/// would not open) shows why and waits with capped back-off before the next
/// attempt. The serial source and the modem sources share it.
#[derive(Debug)]
pub struct PortKeeper {
    settings: SerialSettings,
    backoff: Backoff,
    opened_before: bool,
}

impl PortKeeper {
    pub fn new(settings: SerialSettings) -> PortKeeper {
        let backoff = Backoff::new(settings.reopen_initial, settings.reopen_max);
        PortKeeper {
            settings,
            backoff,
            opened_before: false,
        }
    }

    pub fn settings(&self) -> &SerialSettings {
        &self.settings
    }

    /// Open the port; an open after the first counts as a reopen and starts the
    /// back-off again.
    pub fn open(&mut self, status: &SourceStatus) -> Result<tokio_serial::SerialStream, String> {
        let port = self.settings.open()?;
        if self.opened_before {
            SourceStatus::add(&status.reopens, 1);
        }
        self.opened_before = true;
        self.backoff.reset();
        info!(source = %status.id, path = %self.settings.path, "serial port open");
        Ok(port)
    }

    /// The port went away or would not open: show `error` and wait the back-off.
    /// `false` when shutdown came first.
    pub async fn wait(
        &mut self,
        error: String,
        status: &SourceStatus,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        warn!(source = %status.id, "{error}; reopening with back-off");
        status.set_waiting(error);
        let delay = self.backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.changed() => false,
        }
    }
}

/// A read's outcome, with the unplug that Linux reports as reads of 0 bytes forever
/// turned into an error.
pub fn read_outcome(read: std::io::Result<usize>) -> Result<usize, String> {
    match read {
        Ok(0) => Err("the port read 0 bytes (unplugged?)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("read failed: {e}")),
    }
}

/// Writes commands to the port: each part through the source's framing in
/// reverse, drained to the line before the next, one command at a time; and the
/// `poll:` queries, as they are, between them.
#[derive(Debug)]
pub struct Writer {
    framing: FramingConfig,
    device: DeviceSide,
    /// The encoded parts of the command being written.
    scratch: Vec<Vec<u8>>,
    queries: Vec<Query>,
}

impl Writer {
    pub fn new(framing: FramingConfig, device: DeviceSide) -> Writer {
        Writer {
            framing,
            device,
            scratch: Vec::new(),
            queries: Vec::new(),
        }
    }

    /// Also write these queries, each on its schedule from when the source starts.
    pub fn polling(mut self, queries: Vec<Query>) -> Writer {
        self.queries = queries;
        self
    }

    /// Encode every part first: a part the framing refuses fails the command
    /// before any of its bytes reach the device.
    fn encode(&mut self, source: &str, parts: &[Part]) -> Result<(), String> {
        self.scratch.clear();
        for (i, part) in parts.iter().enumerate() {
            if let Some(key) = part.options.keys().next() {
                return Err(format!(
                    "source {source}: a serial port takes no transport option `{key}` (only `delay_ms`)"
                ));
            }
            let mut out = Vec::with_capacity(part.bytes.len() + 8);
            self.framing.encode(&part.bytes, &mut out).map_err(|e| {
                let which = if parts.len() > 1 {
                    format!(" part {i}")
                } else {
                    String::new()
                };
                format!("source {source}:{which} {e}")
            })?;
            self.scratch.push(out);
        }
        Ok(())
    }
}

/// Read the port until shutdown, reopening it whenever it goes away.
pub async fn run(
    settings: SerialSettings,
    mut feed: Feed,
    mut writer: Writer,
    status: Arc<SourceStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 4096];
    let char_time = settings.char_time();
    feed.set_char_time(char_time);
    let polls = Polls::new(std::mem::take(&mut writer.queries), status.clone());
    let mut keeper = PortKeeper::new(settings);
    loop {
        let error = match keeper.open(&status) {
            Ok(port) => {
                status.set_state(SourceState::Connected {
                    since: SystemTime::now(),
                });
                writer.device.set_ready(true);
                let fd = port.as_raw_fd();
                let (mut reader, mut write_half) = tokio::io::split(port);
                let ended = tokio::select! {
                    r = read_until_gone(&mut reader, &mut buf, &mut feed, &polls) => r,
                    gone = write_port(&mut write_half, fd, char_time, &mut writer, &polls, &status.id) => Ok(gone),
                    _ = shutdown.changed() => Ok(Gone::Shutdown),
                };
                polls.abandon();
                match ended {
                    Ok(Gone::Shutdown) | Err(PipelineClosed) => break,
                    Ok(Gone::Error(e)) => e,
                }
            }
            Err(e) => e,
        };
        let _ = feed.finish().await;
        let why = format!("source {}: {error}", status.id);
        let wait = keeper.wait(error, &status, &mut shutdown);
        if !writer.device.refuse_during(&why, wait).await {
            break;
        }
    }
    writer.device.set_ready(false);
    status.set_state(SourceState::Finished);
}

enum Gone {
    Error(String),
    Shutdown,
}

/// Write commands as they come and queries when due, one thing at a time: while
/// a query waits for its answer nothing else is written. A write that fails
/// means the port is gone.
async fn write_port<W: AsyncWrite + Unpin>(
    port: &mut W,
    fd: std::os::fd::RawFd,
    char_time: Duration,
    writer: &mut Writer,
    polls: &Polls,
    source: &str,
) -> Gone {
    loop {
        let request = match polls.turn().await {
            Turn::Send(n) => {
                if let Err(e) = polls.send(n, port, fd).await {
                    return Gone::Error(e);
                }
                continue;
            }
            Turn::Until(at) => tokio::select! {
                request = writer.device.next() => request,
                () = tokio::time::sleep_until(at) => continue,
            },
            Turn::Always => writer.device.next().await,
        };
        if let Err(e) = write_command(port, fd, char_time, writer, source, request).await {
            return Gone::Error(e);
        }
    }
}

/// Write one command, each part through the framing, and answer how it went.
async fn write_command<W: AsyncWrite + Unpin>(
    port: &mut W,
    fd: std::os::fd::RawFd,
    char_time: Duration,
    writer: &mut Writer,
    source: &str,
    request: TxRequest,
) -> Result<(), String> {
    let TxRequest { parts, reply } = request;
    if let Err(why) = writer.encode(source, &parts) {
        let _ = reply.send(TxOutcome::Failed(why));
        return Ok(());
    }
    let quiet = writer.framing.quiet_after(char_time);
    for (bytes, part) in writer.scratch.iter().zip(&parts) {
        if let Err(e) = write_drained(port, fd, bytes).await {
            let e = format!("write failed: {e}");
            let _ = reply.send(TxOutcome::Failed(format!("source {source}: {e}")));
            return Err(e);
        }
        let pause = quiet
            .unwrap_or_default()
            .max(Duration::from_millis(part.delay_ms));
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    let _ = reply.send(TxOutcome::Sent);
    Ok(())
}

/// Write `bytes` and wait until the port has put them on the line ([`drain`]).
async fn write_drained<W: AsyncWrite + Unpin>(
    port: &mut W,
    fd: std::os::fd::RawFd,
    bytes: &[u8],
) -> std::io::Result<()> {
    port.write_all(bytes).await?;
    port.flush().await?;
    drain(fd).await
}

/// Wait until what was written to the port is on the line (`tcdrain`), on a
/// blocking thread with its own copy of the descriptor.
async fn drain(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    if output_queued(fd)? == 0 {
        // Already on the line (or in a terminal's peer): no thread to wait on.
        return Ok(());
    }
    // SAFETY: `fd` is the open port's descriptor, alive while the port is; `dup`
    // gives the drain its own descriptor, closed when it is done.
    let copy = unsafe { libc::dup(fd) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `copy` is a new descriptor that nothing else owns.
    let copy = unsafe { OwnedFd::from_raw_fd(copy) };
    tokio::task::spawn_blocking(move || {
        // SAFETY: a valid descriptor of a terminal.
        if unsafe { libc::tcdrain(copy.as_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Bytes written to the port that the driver has not sent yet (`TIOCOUTQ`).
fn output_queued(fd: std::os::fd::RawFd) -> std::io::Result<libc::c_int> {
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int through a valid pointer; `fd` is open.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(queued)
}

/// Read into the feed until the port is gone; the first frame after a query is
/// written is its answer.
async fn read_until_gone<R: AsyncRead + Unpin>(
    port: &mut R,
    buf: &mut [u8],
    feed: &mut Feed,
    polls: &Polls,
) -> Result<Gone, PipelineClosed> {
    loop {
        // A framer that ends frames on silence is told when the line stays quiet.
        let read = match feed.idle_after() {
            Some(gap) => match tokio::time::timeout(gap, port.read(buf)).await {
                Ok(read) => read,
                Err(_) => {
                    feed.idle_marking(|meta| polls.answer(meta)).await?;
                    continue;
                }
            },
            None => port.read(buf).await,
        };
        match read_outcome(read) {
            Ok(n) => {
                feed.push_marking(&buf[..n], |meta| polls.answer(meta))
                    .await?
            }
            Err(e) => return Ok(Gone::Error(e)),
        }
    }
}
