//! The binary framer's state machine.

use bytes::Bytes;

use super::checksum::Checker;
use super::{BinaryConfig, Endian};
use crate::frame::{BadFrame, BadKind, Framed, Framer, PREVIEW_LEN};

/// Cuts a byte stream into sync + length + checksum packets; see [`BinaryConfig`].
#[derive(Debug)]
pub struct BinaryFramer {
    config: BinaryConfig,
    checker: Checker,
    /// Bytes up to the end of the length field.
    header: usize,
    /// The shortest frame the length field may announce.
    min_len: usize,
    /// Received bytes; `buf[start..]` is not decided yet.
    buf: Vec<u8>,
    start: usize,
    /// How many bytes from `start` on are already covered by a bad-frame report, so they
    /// are not reported again as garbage.
    reported: usize,
    /// The current run of garbage: its length and first bytes.
    garbage_len: usize,
    garbage_preview: Vec<u8>,
}

impl BinaryFramer {
    pub fn new(config: BinaryConfig) -> Self {
        let checker = Checker::new(config.checksum);
        let header = config
            .length
            .offset
            .saturating_add(config.length.width as usize);
        let min_len = header.max(config.sync.len()).max(checker.min_len()).max(1);
        BinaryFramer {
            config,
            checker,
            header,
            min_len,
            buf: Vec::new(),
            start: 0,
            reported: 0,
            garbage_len: 0,
            garbage_preview: Vec::new(),
        }
    }

    /// Moves `n` bytes from the front of the undecided bytes into the current garbage run
    /// (except those already reported).
    fn skip_garbage(&mut self, n: usize) {
        let seen = self.reported.min(n);
        let fresh = &self.buf[self.start + seen..self.start + n];
        if !fresh.is_empty() {
            let room = PREVIEW_LEN.saturating_sub(self.garbage_preview.len());
            self.garbage_preview
                .extend_from_slice(&fresh[..room.min(fresh.len())]);
            self.garbage_len += fresh.len();
        }
        self.reported -= seen;
        self.start += n;
    }

    fn flush_garbage(&mut self, out: &mut Vec<Framed>) {
        if self.garbage_len > 0 {
            out.push(Framed::Bad(BadFrame::new(
                BadKind::Garbage,
                self.garbage_len,
                &self.garbage_preview,
                format!("{} bytes before a sync", self.garbage_len),
            )));
            self.garbage_len = 0;
            self.garbage_preview.clear();
        }
    }

    /// Reports the candidate at `start` as bad over `len` bytes, then resumes the search
    /// one byte after it.
    fn reject(&mut self, kind: BadKind, len: usize, detail: String, out: &mut Vec<Framed>) {
        self.flush_garbage(out);
        // Without sync bytes every position is a candidate: one inside bytes already
        // reported is not reported again.
        if self.config.sync.is_empty() && self.reported > 0 {
            self.reported = self.reported.max(len) - 1;
            self.start += 1;
            return;
        }
        let live = &self.buf[self.start..];
        out.push(Framed::Bad(BadFrame::new(
            kind,
            len,
            &live[..len.min(live.len())],
            detail,
        )));
        self.reported = self.reported.max(len).max(1) - 1;
        self.start += 1;
    }

    /// The frame length announced by the candidate at `start` (header complete).
    fn announced_len(&self) -> i128 {
        let l = &self.config.length;
        let field = &self.buf[self.start + l.offset..self.start + self.header];
        let value = match l.endian {
            Endian::Big => field.iter().fold(0u64, |v, &b| v << 8 | b as u64),
            Endian::Little => field.iter().rev().fold(0u64, |v, &b| v << 8 | b as u64),
        };
        self.header as i128 + value as i128 + l.adjust as i128
    }

    /// Decides as much as the bytes allow. At the end of input an incomplete frame is
    /// reported as truncated (unless it lies inside one already reported) and the search
    /// goes on inside it.
    fn run(&mut self, eof: bool, out: &mut Vec<Framed>) {
        let sync_len = self.config.sync.len();
        while self.start < self.buf.len() {
            let live = &self.buf[self.start..];
            let found = if sync_len == 0 {
                Some(0)
            } else {
                live.windows(sync_len).position(|w| w == self.config.sync)
            };
            match found {
                Some(p) => self.skip_garbage(p),
                None => {
                    let keep = if eof {
                        0
                    } else {
                        partial_sync_suffix(live, &self.config.sync)
                    };
                    self.skip_garbage(live.len() - keep);
                    break;
                }
            }
            if self.header > self.config.max_length {
                let detail = format!(
                    "length field ends at byte {}, past max_length {}",
                    self.header, self.config.max_length
                );
                self.reject(BadKind::Overlong, sync_len, detail, out);
                continue;
            }
            let available = self.buf.len() - self.start;
            if available < self.header {
                if !eof {
                    break;
                }
                self.truncated(available, out);
                continue;
            }
            let total = self.announced_len();
            if total < self.min_len as i128 {
                let detail = format!(
                    "length field gives a frame of {total} bytes, shorter than the {} it needs",
                    self.min_len
                );
                self.reject(BadKind::Garbage, self.header, detail, out);
                continue;
            }
            if total > self.config.max_length as i128 {
                let detail = format!(
                    "length field gives a frame of {total} bytes, more than max_length {}",
                    self.config.max_length
                );
                self.reject(BadKind::Overlong, self.header, detail, out);
                continue;
            }
            let total = total as usize;
            if available < total {
                if !eof {
                    break;
                }
                self.truncated(available, out);
                continue;
            }
            let frame = &self.buf[self.start..self.start + total];
            match self.checker.check(frame) {
                Ok(()) => {
                    let frame = Bytes::copy_from_slice(frame);
                    self.flush_garbage(out);
                    out.push(Framed::Frame(frame));
                    self.start += total;
                    self.reported = self.reported.saturating_sub(total);
                }
                Err(detail) => self.reject(BadKind::Checksum, total, detail, out),
            }
        }
        if eof {
            self.flush_garbage(out);
        }
        self.compact();
    }

    /// At the end of input: the candidate at `start` has only `available` bytes.
    fn truncated(&mut self, available: usize, out: &mut Vec<Framed>) {
        if self.reported == 0 {
            let detail = format!("input ended inside a frame ({available} bytes received)");
            self.reject(BadKind::Truncated, available, detail, out);
        } else {
            self.reported -= 1;
            self.start += 1;
        }
    }

    fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

/// Length of the longest end of `data` that is a proper beginning of `sync`.
fn partial_sync_suffix(data: &[u8], sync: &[u8]) -> usize {
    let max = sync.len().saturating_sub(1).min(data.len());
    (1..=max)
        .rev()
        .find(|&k| data[data.len() - k..] == sync[..k])
        .unwrap_or(0)
}

impl Framer for BinaryFramer {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<Framed>) {
        self.buf.extend_from_slice(bytes);
        self.run(false, out);
    }

    fn finish(&mut self, out: &mut Vec<Framed>) {
        self.run(true, out);
        self.buf.clear();
        self.start = 0;
        self.reported = 0;
    }
}
