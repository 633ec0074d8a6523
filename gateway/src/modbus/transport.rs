//! The wire: one Modbus client connection (RTU on a serial port, TCP, or RTU
//! frames over TCP) through `tokio-modbus`, one transaction at a time, each with
//! a deadline. What goes wrong is told apart: no answer, a garbled answer (bad
//! CRC, too short), an exception from the device, a broken connection.

use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::Slave;

use super::plan::Kind;
use crate::config::{ModbusBus, SerialConfig};

/// The RTU frames' CRC (Modbus over serial line v1.02, §2.5.1.2).
pub(crate) static MODBUS_CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_MODBUS);

/// Bytes of an answer kept to tell a garbled one apart (the longest RTU ADU is 256).
const HEARD_MAX: usize = 256;

/// What a read gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

/// Why a transaction failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing came back in time.
    NoAnswer,
    /// Bytes came back but made no valid answer: a bad CRC.
    Crc,
    /// Bytes came back but too few, or an answer of the wrong size.
    Garbled(String),
    /// The device answered with an exception.
    Exception(u8),
    /// The connection or port failed; it is reopened.
    Transport(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoAnswer => f.write_str("no answer"),
            Failure::Crc => f.write_str("an answer with a bad CRC"),
            Failure::Garbled(why) => write!(f, "a garbled answer ({why})"),
            Failure::Exception(code) => {
                write!(f, "exception {code} ({})", exception_name(*code))
            }
            Failure::Transport(why) => f.write_str(why),
        }
    }
}

/// The name of a Modbus exception code (Modbus Application Protocol v1.1b3, §7).
pub fn exception_name(code: u8) -> &'static str {
    match code {
        1 => "illegal function",
        2 => "illegal data address",
        3 => "illegal data value",
        4 => "server device failure",
        5 => "acknowledge",
        6 => "server device busy",
        7 => "negative acknowledge",
        8 => "memory parity error",
        10 => "gateway path unavailable",
        11 => "gateway target device failed to respond",
        _ => "unknown exception",
    }
}

/// What the connection has heard since the last request: enough to tell "no
/// answer" from "a garbled answer" when a deadline passes.
#[derive(Debug, Default)]
struct Heard {
    bytes: Mutex<Vec<u8>>,
}

impl Heard {
    fn clear(&self) {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn push(&self, new: &[u8]) {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let room = HEARD_MAX.saturating_sub(b.len());
        b.extend_from_slice(&new[..new.len().min(room)]);
    }

    /// After a deadline passed on an RTU line: what the bytes were.
    fn verdict(&self) -> Failure {
        let b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        if b.is_empty() {
            return Failure::NoAnswer;
        }
        // The length the answer's own header announces.
        let expected = match b.get(1) {
            Some(f) if f & 0x80 != 0 => Some(5),
            Some(1..=4) => b.get(2).map(|n| 5 + usize::from(*n)),
            Some(5 | 6 | 15 | 16) => Some(8),
            _ => None,
        };
        if let Some(expected) = expected.filter(|e| b.len() < *e) {
            return Failure::Garbled(format!("{} of {expected} bytes", b.len()));
        }
        // Shortest answer: unit, function, exception code, CRC.
        if b.len() >= 5 {
            let crc = MODBUS_CRC.checksum(&b[..b.len() - 2]);
            let sent = u16::from_le_bytes([b[b.len() - 2], b[b.len() - 1]]);
            if crc != sent {
                return Failure::Crc;
            }
        }
        Failure::Garbled(format!("{} bytes that make no answer", b.len()))
    }
}

/// A transport that notes what it reads.
#[derive(Debug)]
struct Tap<T> {
    inner: T,
    heard: Arc<Heard>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tap<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                self.heard.push(new);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tap<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One open connection to the bus.
pub struct Link {
    ctx: Context,
    heard: Arc<Heard>,
    /// The serial port's descriptor (RTU on a port), for flushing its input.
    fd: Option<RawFd>,
    /// RTU framing (on a port or over TCP): garbled answers can be told apart.
    rtu: bool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("fd", &self.fd)
            .field("rtu", &self.rtu)
            .finish_non_exhaustive()
    }
}

/// Open the bus: the serial port, or a TCP connection within `timeout`.
pub async fn open(bus: &ModbusBus, timeout: Duration) -> Result<Link, String> {
    let heard = Arc::new(Heard::default());
    match bus {
        ModbusBus::Rtu(serial) => {
            let port = open_port(serial)?;
            let fd = port.as_raw_fd();
            let tap = Tap {
                inner: port,
                heard: heard.clone(),
            };
            Ok(Link {
                ctx: tokio_modbus::client::rtu::attach_slave(tap, Slave(1)),
                heard,
                fd: Some(fd),
                rtu: true,
            })
        }
        ModbusBus::Tcp { host, rtu_over_tcp } => {
            let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(host))
                .await
                .map_err(|_| format!("connecting to {host}: no answer in {timeout:?}"))?
                .map_err(|e| format!("connecting to {host}: {e}"))?;
            let _ = stream.set_nodelay(true);
            let tap = Tap {
                inner: stream,
                heard: heard.clone(),
            };
            let ctx = if *rtu_over_tcp {
                tokio_modbus::client::rtu::attach_slave(tap, Slave(1))
            } else {
                tokio_modbus::client::tcp::attach_slave(tap, Slave(1))
            };
            Ok(Link {
                ctx,
                heard,
                fd: None,
                rtu: *rtu_over_tcp,
            })
        }
    }
}

/// RTU over any byte stream (an in-memory pipe in the poller's tests).
#[cfg(test)]
pub fn rtu_over<T>(transport: T) -> Link
where
    T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
{
    let heard = Arc::new(Heard::default());
    let tap = Tap {
        inner: transport,
        heard: heard.clone(),
    };
    Link {
        ctx: tokio_modbus::client::rtu::attach_slave(tap, Slave(1)),
        heard,
        fd: None,
        rtu: true,
    }
}

fn open_port(s: &SerialConfig) -> Result<tokio_serial::SerialStream, String> {
    let builder = tokio_serial::new(&s.path, s.baud)
        .data_bits(s.data_bits.into())
        .parity(s.parity.into())
        .stop_bits(s.stop_bits.into())
        .flow_control(tokio_serial::FlowControl::None);
    let port = tokio_serial::SerialStream::open(&builder)
        .map_err(|e| format!("cannot open {}: {e}", s.path))?;
    Ok(port)
}

/// One transaction's request.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    Read {
        kind: Kind,
        address: u16,
        count: u16,
    },
    WriteRegisters {
        address: u16,
        words: &'a [u16],
    },
    WriteCoils {
        address: u16,
        coils: &'a [bool],
    },
}

/// What a transaction gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Read(Answer),
    Written,
}

impl Link {
    /// Run `op` on `unit`, with `timeout` for the answer.
    pub async fn call(&mut self, unit: u8, op: Op<'_>, timeout: Duration) -> Result<Done, Failure> {
        match op {
            Op::Read {
                kind,
                address,
                count,
            } => self
                .read(unit, kind, address, count, timeout)
                .await
                .map(Done::Read),
            Op::WriteRegisters { address, words } => self
                .write_registers(unit, address, words, timeout)
                .await
                .map(|()| Done::Written),
            Op::WriteCoils { address, coils } => self
                .write_coils(unit, address, coils, timeout)
                .await
                .map(|()| Done::Written),
        }
    }

    /// Whether answers are RTU frames (a garbled one can be resynchronised).
    pub fn is_rtu(&self) -> bool {
        self.rtu
    }

    /// Read `count` registers or bits of `kind` at `address` from `unit`.
    pub async fn read(
        &mut self,
        unit: u8,
        kind: Kind,
        address: u16,
        count: u16,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        self.begin(unit);
        let ctx = &mut self.ctx;
        let call = async {
            match kind {
                Kind::Holding => ctx
                    .read_holding_registers(address, count)
                    .await
                    .map(|r| r.map(Answer::Words)),
                Kind::Input => ctx
                    .read_input_registers(address, count)
                    .await
                    .map(|r| r.map(Answer::Words)),
                Kind::Coil => ctx
                    .read_coils(address, count)
                    .await
                    .map(|r| r.map(Answer::Bits)),
                Kind::Discrete => ctx
                    .read_discrete_inputs(address, count)
                    .await
                    .map(|r| r.map(Answer::Bits)),
            }
        };
        let outcome = tokio::time::timeout(timeout, call).await;
        let answer = self.finish(outcome)?;
        let got = match &answer {
            Answer::Words(w) => w.len(),
            // Coils come in whole bytes: at least `count`.
            Answer::Bits(b) if b.len() >= usize::from(count) => usize::from(count),
            Answer::Bits(b) => b.len(),
        };
        if got != usize::from(count) {
            return Err(Failure::Garbled(format!(
                "{got} values in an answer to a read of {count}"
            )));
        }
        Ok(match answer {
            Answer::Bits(mut b) => {
                b.truncate(usize::from(count));
                Answer::Bits(b)
            }
            words => words,
        })
    }

    /// Write registers (function 6 for one, 16 for more) to `unit`.
    pub async fn write_registers(
        &mut self,
        unit: u8,
        address: u16,
        words: &[u16],
        timeout: Duration,
    ) -> Result<(), Failure> {
        self.begin(unit);
        let ctx = &mut self.ctx;
        let call = async {
            match words {
                [one] => ctx.write_single_register(address, *one).await,
                many => ctx.write_multiple_registers(address, many).await,
            }
        };
        let outcome = tokio::time::timeout(timeout, call).await;
        self.finish(outcome)
    }

    /// Write coils (function 5 for one, 15 for more) to `unit`.
    pub async fn write_coils(
        &mut self,
        unit: u8,
        address: u16,
        coils: &[bool],
        timeout: Duration,
    ) -> Result<(), Failure> {
        self.begin(unit);
        let ctx = &mut self.ctx;
        let call = async {
            match coils {
                [one] => ctx.write_single_coil(address, *one).await,
                many => ctx.write_multiple_coils(address, many).await,
            }
        };
        let outcome = tokio::time::timeout(timeout, call).await;
        self.finish(outcome)
    }

    fn begin(&mut self, unit: u8) {
        self.heard.clear();
        self.ctx.set_slave(Slave(unit));
    }

    fn finish<T>(
        &self,
        outcome: Result<tokio_modbus::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, Failure> {
        match outcome {
            Err(_) if self.rtu => Err(self.heard.verdict()),
            Err(_) => Err(Failure::NoAnswer),
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(code))) => Err(Failure::Exception(u8::from(code))),
            Ok(Err(tokio_modbus::Error::Protocol(e))) => Err(Failure::Garbled(e.to_string())),
            Ok(Err(tokio_modbus::Error::Transport(e))) => Err(match e.kind() {
                // The codec's verdict on bytes it could not decode.
                std::io::ErrorKind::InvalidData if self.rtu => Failure::Crc,
                std::io::ErrorKind::InvalidData => Failure::Garbled(e.to_string()),
                _ => Failure::Transport(e.to_string()),
            }),
        }
    }

    /// After a failed transaction on an RTU line: wait for the line to fall quiet
    /// and drop whatever is left of the bad answer, so that the next request
    /// starts clean.
    pub async fn resync(&mut self, quiet: Duration) {
        tokio::time::sleep(quiet).await;
        if let Some(fd) = self.fd {
            // SAFETY: `fd` is the open port's descriptor, owned by `ctx`, alive
            // as long as `self`.
            unsafe {
                libc::tcflush(fd, libc::TCIFLUSH);
            }
        }
        self.heard.clear();
    }
}

/// The silent interval that ends an RTU frame: 3.5 characters, and at least
/// 1.75 ms above 19,200 baud (Modbus over serial line v1.02, §2.5.1.1).
pub fn silent_interval(baud: u32, bits_per_char: u32) -> Duration {
    if baud > 19_200 {
        return Duration::from_micros(1750);
    }
    let char_ns = u64::from(bits_per_char) * 1_000_000_000 / u64::from(baud.max(1));
    Duration::from_nanos(char_ns * 7 / 2)
}

/// When the bus is next free: a deadline kept between transactions.
#[derive(Debug, Clone, Copy)]
pub struct Quiet {
    until: Instant,
}

impl Quiet {
    pub fn new() -> Quiet {
        Quiet {
            until: Instant::now(),
        }
    }

    /// Keep the bus quiet for `gap` from now.
    pub fn hold(&mut self, gap: Duration) {
        self.until = Instant::now() + gap;
    }

    /// Wait until the bus may be used.
    pub async fn wait(&self) {
        sleep_until(self.until).await;
    }
}

/// Sleep until `at`, and not at all once it has passed: tokio's timer rounds a
/// deadline up to its next millisecond tick, so a plain `sleep_until` of a past
/// instant still waits for that tick (up to a millisecond lost per transaction).
pub async fn sleep_until(at: Instant) {
    if at > Instant::now() {
        tokio::time::sleep_until(at).await;
    }
}

impl Default for Quiet {
    fn default() -> Self {
        Quiet::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_silent_interval_is_three_and_a_half_characters_with_a_floor_above_19200() {
        // 9600 8N1: 10 bits a character, 1.0417 ms; 3.5 of them.
        assert_eq!(silent_interval(9600, 10), Duration::from_nanos(3_645_831));
        // 8E1 has 11 bits.
        assert_eq!(silent_interval(19_200, 11), Duration::from_nanos(2_005_206));
        assert_eq!(silent_interval(115_200, 10), Duration::from_micros(1750));
    }

    #[tokio::test]
    async fn a_deadline_already_passed_does_not_wait_for_the_timers_next_tick() {
        // tokio's timer would hold each of these until its next millisecond tick:
        // about 100 ms for the loop; without waiting it takes microseconds.
        let t0 = Instant::now();
        for _ in 0..100 {
            sleep_until(Instant::now()).await;
        }
        let took = t0.elapsed();
        assert!(took < Duration::from_millis(50), "{took:?}");
    }

    #[test]
    fn what_was_heard_before_a_deadline_tells_silence_from_a_bad_crc_and_a_stub() {
        let h = Heard::default();
        assert_eq!(h.verdict(), Failure::NoAnswer);
        // A valid answer (unit 1, function 3, 2 bytes, 0x0102) with its CRC broken.
        let mut frame = vec![0x01, 0x03, 0x02, 0x01, 0x02];
        let crc = MODBUS_CRC.checksum(&frame);
        frame.extend_from_slice(&(crc ^ 1).to_le_bytes());
        h.push(&frame);
        assert_eq!(h.verdict(), Failure::Crc);
        h.clear();
        h.push(&[0x01, 0x03]);
        assert!(matches!(h.verdict(), Failure::Garbled(_)));
        // Cut short: the byte count says 4 data bytes, 2 came.
        h.clear();
        h.push(&[0x01, 0x03, 0x04, 0x00, 0x01, 0x00]);
        assert_eq!(h.verdict(), Failure::Garbled("6 of 9 bytes".into()));
    }
}
