//! A steady stream of numbered readings for `mqgate run`: a thread writes JSON lines
//! `{"id":"feed","seq":N}` into a pseudo-terminal that the gateway reads as a serial
//! port, and a gateway file maps each line to one message on `seq/<id>` upstream.
//!
//! What is written while the gateway is not reading (killed, restarting) waits in
//! the terminal for the next reader, as it would in a USB adapter's buffer.

use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serialport::TTYPort;

use crate::mqgate::workspace_file;
use crate::seqsub::{SeqStats, SeqSubscriber};
use test_support::process::{Proc, Stream};
use test_support::scratch::Scratch;

/// How often the writer looks at its flags when it has nothing due.
const TICK: Duration = Duration::from_millis(5);
/// The longest lag the writer makes up for by writing faster.
const CATCH_UP: Duration = Duration::from_millis(50);

/// What to write and how fast.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPlan {
    /// The first sequence number.
    pub first: u64,
    /// How many lines.
    pub count: u64,
    /// Lines per second (> 0).
    pub per_second: f64,
    /// The JSON field holding the number.
    pub field: String,
    /// The `id` field: the last level of the topic (`seq/<id>`).
    pub id: String,
}

impl FeedPlan {
    /// `count` lines numbered from 0 at `per_second`, field `seq`, id `feed`.
    pub fn new(count: u64, per_second: f64) -> FeedPlan {
        FeedPlan {
            first: 0,
            count,
            per_second,
            field: "seq".to_string(),
            id: "feed".to_string(),
        }
    }

    /// The line for number `seq`, with its line end.
    pub fn line(&self, seq: u64) -> String {
        format!("{{\"id\":\"{}\",\"{}\":{seq}}}\n", self.id, self.field)
    }

    /// A fence line: the same topic as the feed's lines, no sequence number.
    pub fn fence_line(&self, k: u64) -> String {
        format!("{{\"id\":\"{}\",\"fence\":{k}}}\n", self.id)
    }
}

/// Writes fence `k` after everything the feeder wrote and waits until `sub` has it.
/// The gateway keeps a source's order up to the broker, and the broker a session's
/// order down to `sub`, so once the fence is there every line written before it has
/// arrived, resends and duplicates included: what the returned stats say is final.
/// (Instead of waiting for a quiet spell, which proves nothing on a busy machine.)
pub fn fence(
    master: &mut TTYPort,
    plan: &FeedPlan,
    sub: &SeqSubscriber,
    k: u64,
    timeout: Duration,
) -> SeqStats {
    master
        .write_all(plan.fence_line(k).as_bytes())
        .and_then(|()| master.flush())
        .expect("write the fence to the pseudo-terminal");
    sub.wait_until(&format!("fence {k}"), timeout, |s| s.fence >= k)
}

#[derive(Debug)]
struct Shared {
    written: AtomicU64,
    /// Why the writer ended early.
    error: std::sync::Mutex<Option<String>>,
    no_reader: AtomicU64,
    paused: AtomicBool,
    stop: AtomicBool,
}

/// The writing thread; stops when dropped (the terminal closes with it unless taken
/// back with `finish`).
#[derive(Debug)]
pub struct Feeder {
    plan: FeedPlan,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<std::io::Result<TTYPort>>>,
}

impl Feeder {
    /// Starts writing `plan` into `master` (the side `scratch::plug` returns). Start
    /// it once the gateway has opened the port: before that the terminal is not in
    /// raw mode.
    pub fn start(master: TTYPort, plan: FeedPlan) -> Feeder {
        assert!(plan.per_second > 0.0, "a rate above 0");
        let shared = Arc::new(Shared {
            written: AtomicU64::new(0),
            error: std::sync::Mutex::new(None),
            no_reader: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let (s, p) = (shared.clone(), plan.clone());
        let thread = std::thread::spawn(move || {
            let result = write_lines(master, &p, &s);
            if let Err(e) = &result {
                *s.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            }
            result
        });
        Feeder {
            plan,
            shared,
            thread: Some(thread),
        }
    }

    pub fn plan(&self) -> &FeedPlan {
        &self.plan
    }

    /// Lines written so far: numbers `first .. first + written()` are in the terminal.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::SeqCst)
    }

    /// Writes refused because no program had the port open (each retried a tick
    /// later): a sign that the gateway was down while the feeder ran.
    pub fn refused_writes(&self) -> u64 {
        self.shared.no_reader.load(Ordering::SeqCst)
    }

    /// Stops writing after the current line; `resume` goes on at the same rate
    /// (without catching up).
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
    }

    /// Waits until at least `n` lines are written; panics after `timeout`.
    pub fn wait_written(&self, n: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let w = self.written();
            if w >= n {
                return w;
            }
            assert!(
                Instant::now() < deadline,
                "feeder: only {w} of {n} lines written after {timeout:?} (is the gateway reading?)"
            );
            if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
                let why = self
                    .shared
                    .error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                panic!("feeder: the writer ended after {w} of {n} lines: {why:?}");
            }
            std::thread::sleep(TICK);
        }
    }

    /// Waits until every line is written, then hands the terminal back (keep it to
    /// keep the port open).
    pub fn finish(mut self, timeout: Duration) -> TTYPort {
        self.wait_written(self.plan.count, timeout);
        let thread = self.thread.take().expect("the writer runs");
        thread
            .join()
            .expect("the feeder thread")
            .expect("write to the pseudo-terminal")
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_lines(master: TTYPort, plan: &FeedPlan, shared: &Shared) -> std::io::Result<TTYPort> {
    set_nonblocking(&master)?;
    let interval = Duration::from_secs_f64(1.0 / plan.per_second);
    // A full terminal (nobody reading) makes writes wait; the schedule restarts
    // after a pause or a wait instead of bursting to catch up.
    let mut next_due = Instant::now();
    for i in 0..plan.count {
        let line = plan.line(plan.first + i);
        let mut rest = line.as_bytes();
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                return Ok(master);
            }
            let now = Instant::now();
            if shared.paused.load(Ordering::SeqCst) {
                next_due = now;
                std::thread::sleep(TICK);
                continue;
            }
            if now < next_due {
                std::thread::sleep((next_due - now).min(TICK));
                continue;
            }
            match write_fd(&master, rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    next_due = now + TICK;
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // No reader: the gateway closed the port (or was killed). The line
                // waits until a reader opens the port again.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EIO | libc::EPIPE)) => {
                    shared.no_reader.fetch_add(1, Ordering::SeqCst);
                    next_due = now + TICK;
                    continue;
                }
                Err(e) => return Err(e),
            }
            if rest.is_empty() {
                break;
            }
        }
        shared.written.store(i + 1, Ordering::SeqCst);
        // Catch up after a short hiccup, not after a long wait.
        next_due += interval;
        let now = Instant::now();
        if now > next_due + CATCH_UP {
            next_due = now;
        }
    }
    Ok(master)
}

/// One write(2) on the terminal's descriptor (the serial library's own `write`
/// polls first and reports a full terminal as a time-out).
fn write_fd(master: &TTYPort, bytes: &[u8]) -> std::io::Result<usize> {
    // SAFETY: writes from a live slice to a descriptor owned by `master`.
    let n = unsafe { libc::write(master.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

fn set_nonblocking(master: &TTYPort) -> std::io::Result<()> {
    let fd = master.as_raw_fd();
    // SAFETY: fcntl on a descriptor owned by `master`, which outlives the calls.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above; only adds O_NONBLOCK to the descriptor's flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A gateway that reads the feed from a serial port and publishes it upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqGateway {
    pub gateway_id: String,
    /// The port of the upstream broker (or of a relay in front of it).
    pub upstream_port: u16,
    pub client_id: String,
    pub keep_alive_secs: u16,
    pub clean_session: bool,
    pub topic_prefix: String,
    /// QoS of the published messages (0, 1 or 2).
    pub qos: u8,
    /// The serial port (a symlink to a pseudo-terminal, see `scratch::plug`).
    pub port_link: PathBuf,
    /// Also run the embedded broker on a free port.
    pub embedded_broker: bool,
    /// YAML appended to the file as it is, e.g. a `store:` section.
    pub extra_yaml: String,
    /// `upstream.max_inflight`; `None` leaves the default.
    pub max_inflight: Option<u32>,
}

/// The serial source's id in the gateway file.
pub const FEED_SOURCE: &str = "feed";

impl SeqGateway {
    /// QoS 2, keep-alive 2 s, persistent session, no prefix, no embedded broker.
    pub fn new(upstream_port: u16, port_link: &Path) -> SeqGateway {
        SeqGateway {
            gateway_id: "seq-gw".to_string(),
            upstream_port,
            client_id: "seq-gw-up".to_string(),
            keep_alive_secs: 2,
            clean_session: false,
            topic_prefix: String::new(),
            qos: 2,
            port_link: port_link.to_path_buf(),
            embedded_broker: false,
            extra_yaml: String::new(),
            max_inflight: None,
        }
    }

    /// The gateway's state folder inside `dir` (where the store's file lives).
    pub fn state_dir(dir: &Scratch) -> PathBuf {
        dir.path().join("state")
    }

    /// The filter that matches every message of the feed upstream.
    pub fn filter(&self) -> String {
        format!("{}seq/#", self.topic_prefix)
    }

    /// Writes `mqgate.yaml` and its mapping into `dir` (state in `dir/state`, kept
    /// across restarts of the gateway); returns the gateway file's path.
    pub fn write(&self, dir: &Scratch) -> PathBuf {
        let script = workspace_file("scripts/json-lines.rhai");
        dir.write(
            "seq-mappings/feed.yaml",
            format!(
                "source: {FEED_SOURCE}\nscript: {}\ntopic: \"seq/{{name}}\"\nqos: {}\nretain: false\n",
                script.display(),
                self.qos
            ),
        );
        let broker = if self.embedded_broker {
            "broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n"
        } else {
            ""
        };
        let mut extra = self.extra_yaml.clone();
        if !extra.is_empty() && !extra.ends_with('\n') {
            extra.push('\n');
        }
        dir.write(
            "mqgate.yaml",
            format!(
                "gateway:\n  id: {id}\n  state_dir: {state}\n\
                 {broker}\
                 upstream:\n  url: mqtt://127.0.0.1:{port}\n  client_id: {client}\n\
                 \x20 keep_alive_secs: {ka}\n  clean_session: {clean}\n  topic_prefix: \"{prefix}\"\n\
                 {max_inflight}\
                 status:\n  listen: 127.0.0.1:0\n\
                 mappings: {mappings}\n\
                 sources:\n  - id: {FEED_SOURCE}\n    type: serial\n    path: {link}\n    baud: 115200\n\
                 \x20   reopen: {{ initial_ms: 100, max_ms: 400 }}\n\
                 \x20   framing: {{ type: lines }}\n\
                 {extra}",
                id = self.gateway_id,
                state = SeqGateway::state_dir(dir).display(),
                port = self.upstream_port,
                client = self.client_id,
                ka = self.keep_alive_secs,
                clean = self.clean_session,
                prefix = self.topic_prefix,
                max_inflight = self
                    .max_inflight
                    .map_or_else(String::new, |n| format!("  max_inflight: {n}\n")),
                mappings = dir.path().join("seq-mappings").display(),
                link = self.port_link.display(),
            ),
        )
    }
}

/// Waits until `mqgate run` says it opened the feed's serial port.
pub fn wait_port_open(gw: &Proc, timeout: Duration) {
    gw.wait_for_line(Stream::Stderr, &["serial port open"], timeout);
}

/// Waits until `mqgate run` has logged its `n`-th upstream connection.
pub fn wait_upstream_connects(gw: &Proc, n: usize, timeout: Duration) {
    gw.wait_until(&format!("{n} upstream connection(s)"), timeout, |lines| {
        let c = lines
            .iter()
            .filter(|l| l.stream == Stream::Stderr && l.text.contains("connected upstream"))
            .count();
        (c >= n).then_some(())
    });
}
