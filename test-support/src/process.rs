//! A child process whose stdout and stderr are collected line by line, so a test
//! can wait for a line with a timeout. The process is killed when dropped.

use std::borrow::BorrowMut;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use libc::{SIGHUP, SIGINT, SIGKILL, SIGTERM};

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of output, without its line end and without terminal colour codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub stream: Stream,
    pub text: String,
}

#[derive(Default)]
struct Collected {
    lines: Vec<Line>,
    /// Output streams still open.
    open: usize,
}

#[derive(Default)]
struct Shared {
    collected: Mutex<Collected>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Collected> {
        self.collected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the output changes or `until` comes, whichever is first.
    fn wait_changed<'a>(
        &self,
        guard: std::sync::MutexGuard<'a, Collected>,
        until: Instant,
    ) -> std::sync::MutexGuard<'a, Collected> {
        let left = until.saturating_duration_since(Instant::now());
        self.changed
            .wait_timeout(guard, left)
            .unwrap_or_else(|p| p.into_inner())
            .0
    }
}

/// A running child process; killed (and reaped) on drop.
pub struct Proc {
    name: String,
    child: Child,
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    /// How many stdout lines [`Proc::next_line`] has handed out.
    read: usize,
}

impl Proc {
    /// Start `cmd` with stdin closed and stdout/stderr collected.
    pub fn spawn(name: &str, cmd: impl BorrowMut<Command>) -> Proc {
        Proc::start(name, cmd, None)
    }

    /// Start `cmd` with `input` on its stdin (then closed) and stdout/stderr
    /// collected. A process that exits without reading it all is not an error.
    pub fn spawn_with_input(name: &str, cmd: impl BorrowMut<Command>, input: &[u8]) -> Proc {
        Proc::start(name, cmd, Some(input.to_vec()))
    }

    fn start(name: &str, mut cmd: impl BorrowMut<Command>, input: Option<Vec<u8>>) -> Proc {
        let cmd = cmd.borrow_mut();
        let stdin = if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", cmd.get_program()));
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // On a thread: a pipe holds only so much until the child reads it.
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(&input);
            });
        }
        let shared = Arc::new(Shared::default());
        shared.lock().open = 2;
        let out = child.stdout.take().expect("stdout is piped");
        let err = child.stderr.take().expect("stderr is piped");
        let readers = vec![
            reader(out, Stream::Stdout, shared.clone()),
            reader(err, Stream::Stderr, shared.clone()),
        ];
        Proc {
            name: name.to_string(),
            child,
            shared,
            readers,
            status: None,
            read: 0,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<Line> {
        self.shared.lock().lines.clone()
    }

    /// The lines of one stream so far.
    pub fn stream(&self, stream: Stream) -> Vec<String> {
        self.shared
            .lock()
            .lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.text.clone())
            .collect()
    }

    /// All of stderr so far, one line after another.
    pub fn stderr_text(&self) -> String {
        self.stream(Stream::Stderr).join("\n")
    }

    /// The next stdout line after those this method returned before, waiting for
    /// it up to `timeout`; `None` at the deadline or when stdout closed first.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.shared.lock();
        loop {
            if let Some(line) = guard
                .lines
                .iter()
                .filter(|l| l.stream == Stream::Stdout)
                .nth(self.read)
            {
                self.read += 1;
                return Some(line.text.clone());
            }
            let now = Instant::now();
            if guard.open == 0 || now >= deadline {
                return None;
            }
            guard = self.shared.wait_changed(guard, deadline);
        }
    }

    /// Reads stdout lines with [`Proc::next_line`] until one satisfies `pred` and
    /// returns it; panics with the transcript after `timeout`.
    pub fn expect_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) if pred(&line) => return line,
                Some(_) => {}
                None => panic!(
                    "{}: no line {what} within {timeout:?}; output:\n{}",
                    self.name,
                    self.transcript()
                ),
            }
        }
    }

    /// Everything printed so far, for failure messages.
    pub fn transcript(&self) -> String {
        let lines = self.lines();
        let mut text = String::new();
        for l in &lines {
            let tag = match l.stream {
                Stream::Stdout => "out",
                Stream::Stderr => "err",
            };
            text.push_str(&format!("  [{} {tag}] {}\n", self.name, l.text));
        }
        text
    }

    /// Waits until the lines so far satisfy `done`; panics with the transcript after
    /// `timeout`, or as soon as the process has closed its output without satisfying it.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Line]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut guard = self.shared.lock();
        loop {
            if let Some(found) = done(&guard.lines) {
                return found;
            }
            let now = Instant::now();
            if guard.open == 0 || now >= deadline {
                let why = if guard.open == 0 {
                    "the process closed its output"
                } else {
                    "timed out"
                };
                drop(guard);
                panic!(
                    "{}: {why} waiting for {what} ({timeout:?}); output:\n{}",
                    self.name,
                    self.transcript()
                );
            }
            guard = self.shared.wait_changed(guard, deadline);
        }
    }

    /// Waits for a line of `stream` that contains every one of `parts`; returns it.
    pub fn wait_for_line(&self, stream: Stream, parts: &[&str], timeout: Duration) -> String {
        let what = format!("a {stream:?} line with {parts:?}");
        self.wait_until(&what, timeout, |lines| {
            lines
                .iter()
                .find(|l| l.stream == stream && parts.iter().all(|p| l.text.contains(p)))
                .map(|l| l.text.clone())
        })
    }

    /// Number of lines of `stream` that contain every one of `parts`.
    pub fn count_lines(&self, stream: Stream, parts: &[&str]) -> usize {
        self.shared
            .lock()
            .lines
            .iter()
            .filter(|l| l.stream == stream && parts.iter().all(|p| l.text.contains(p)))
            .count()
    }

    /// Sends a signal (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) with the pid of a child that has not been reaped yet.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "{}: kill({pid}, {signal}) failed", self.name);
    }

    /// Kills the process with SIGKILL (if it still runs) and reaps it.
    pub fn kill(&mut self) {
        if self.try_exited().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait on a child");
        }
        self.status
    }

    /// Waits for the process to end (panics after `timeout`), then for its output to
    /// be fully read.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.try_exited() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "{}: did not exit within {timeout:?}; output:\n{}",
                    self.name,
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        status
    }
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proc")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a process that ran to its end printed.
#[derive(Debug, Clone)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code (panics if a signal ended it).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("ended by a signal: {:?}\n{}", self.status, self.stderr))
    }
}

/// Runs `cmd` to its end within `timeout`.
pub fn run_to_end(name: &str, cmd: Command, timeout: Duration) -> Finished {
    finish(Proc::spawn(name, cmd), timeout)
}

/// Runs `cmd` with `input` on its stdin to its end within `timeout`.
pub fn run_with_input(name: &str, cmd: Command, input: &[u8], timeout: Duration) -> Finished {
    finish(Proc::spawn_with_input(name, cmd, input), timeout)
}

fn finish(mut p: Proc, timeout: Duration) -> Finished {
    let status = p.wait_exit(timeout);
    let join = |s| p.stream(s).join("\n");
    Finished {
        status,
        stdout: join(Stream::Stdout),
        stderr: join(Stream::Stderr),
    }
}

fn reader(
    stream: impl Read + Send + 'static,
    which: Stream,
    shared: Arc<Shared>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut input = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while buf.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                        buf.pop();
                    }
                    let text = strip_ansi(&String::from_utf8_lossy(&buf));
                    shared.lock().lines.push(Line {
                        stream: which,
                        text,
                    });
                    shared.changed.notify_all();
                }
            }
        }
        shared.lock().open -= 1;
        shared.changed.notify_all();
    })
}

/// Removes terminal escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
