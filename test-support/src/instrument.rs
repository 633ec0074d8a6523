//! A fake request/response instrument on a pseudo-terminal's master side, for
//! a serial source that polls: it reads queries ended by `\r`, notes when each
//! came, and answers as its script says (after a delay, or not at all). It
//! keeps reading while an answer is delayed, so the time of each line is when
//! it came.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

/// The instrument's thread; it stops when dropped.
#[derive(Debug)]
pub struct Instrument {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One query as the instrument read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub at: Instant,
    /// The query without its `\r` (and without a `\n` before it).
    pub text: String,
}

impl Instrument {
    /// Serves `master` on a thread of its own until dropped. `script` says what
    /// to do with each query: answer with its bytes after its delay, or stay
    /// silent (`None`).
    pub fn start(
        mut master: TTYPort,
        mut script: impl FnMut(&str) -> Option<(Duration, Vec<u8>)> + Send + 'static,
    ) -> Instrument {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let seen = seen.clone();
            let stop = stop.clone();
            move || {
                use std::io::{Read, Write};
                let mut pending = Vec::new();
                // Answers not yet written, by when they are due: the instrument
                // keeps reading (and noting the time of what comes) meanwhile.
                let mut answers: std::collections::VecDeque<(Instant, Vec<u8>)> =
                    std::collections::VecDeque::new();
                let mut buf = [0u8; 256];
                while !stop.load(Ordering::Relaxed) {
                    while answers
                        .front()
                        .is_some_and(|(due, _)| *due <= Instant::now())
                    {
                        let (_, answer) = answers.pop_front().expect("an answer");
                        let _ = master.write_all(&answer).and_then(|()| master.flush());
                    }
                    let wait = answers
                        .front()
                        .map_or(Duration::from_millis(20), |(due, _)| {
                            due.saturating_duration_since(Instant::now())
                        })
                        .clamp(Duration::from_millis(1), Duration::from_millis(20));
                    master.set_timeout(wait).expect("a read timeout");
                    let n = match master.read(&mut buf) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                        // No one has the terminal's other side open (yet, or
                        // any more): wait for the source to open it.
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    let at = Instant::now();
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.iter().position(|&b| b == b'\r') {
                        let query: Vec<u8> = pending.drain(..=end).collect();
                        let text = String::from_utf8_lossy(&query[..end])
                            .trim_start_matches('\n')
                            .to_string();
                        seen.lock().unwrap().push(Seen {
                            at,
                            text: text.clone(),
                        });
                        if let Some((after, answer)) = script(&text) {
                            answers.push_back((at + after, answer));
                        }
                    }
                }
            }
        });
        Instrument {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The queries so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `n` queries whose text is `text` came, failing the test
    /// after `timeout`; returns them.
    pub fn wait_for(&self, text: &str, n: usize, timeout: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + timeout;
        loop {
            let got: Vec<Seen> = self.seen().into_iter().filter(|s| s.text == text).collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the instrument got {} of {n} queries {text:?} within {timeout:?}: {:?}",
                got.len(),
                self.seen()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Instrument {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
