//! Cuts a modem's output into lines: CR, LF or CR LF end a line; a line longer than
//! the limit is reported once and skipped up to its end, so memory stays bounded.

/// One piece of the modem's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A whole line, without its ending (bytes that are not UTF-8 are replaced).
    Line(String),
    /// A line passed the limit; it is dropped up to its end.
    Overlong(usize),
}

/// Splits bytes (cut anywhere) into lines of at most `max` bytes.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    /// Skipping the rest of an overlong line.
    skipping: bool,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            buf: Vec::new(),
            max: max.max(1),
            skipping: false,
        }
    }

    /// Feed bytes; whole lines and overlong reports are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Piece>) {
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if self.skipping {
                    self.skipping = false;
                } else if !self.buf.is_empty() {
                    out.push(Piece::Line(String::from_utf8_lossy(&self.buf).into_owned()));
                }
                self.buf.clear();
            } else if self.skipping {
                continue;
            } else if self.buf.len() == self.max {
                out.push(Piece::Overlong(self.max + 1));
                self.buf.clear();
                self.skipping = true;
            } else {
                self.buf.push(b);
            }
        }
    }

    /// Forget a partial line (the port was reopened).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_everywhere(input: &[u8], max: usize) -> Vec<Vec<Piece>> {
        (0..=input.len())
            .map(|at| {
                let mut s = LineSplitter::new(max);
                let mut out = Vec::new();
                s.push(&input[..at], &mut out);
                s.push(&input[at..], &mut out);
                out
            })
            .collect()
    }

    #[test]
    fn lines_end_at_cr_lf_or_both_wherever_the_bytes_are_cut() {
        let input = b"ok\r\nradio_rx  0102\n\r\n-5\rend";
        for out in split_everywhere(input, 64) {
            assert_eq!(
                out,
                vec![
                    Piece::Line("ok".into()),
                    Piece::Line("radio_rx  0102".into()),
                    Piece::Line("-5".into()),
                ]
            );
        }
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_the_next_line_is_whole() {
        let input = b"0123456789abcdef\r\nok\r\n";
        for out in split_everywhere(input, 8) {
            assert_eq!(out, vec![Piece::Overlong(9), Piece::Line("ok".into())]);
        }
    }
}
