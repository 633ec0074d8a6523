//! Helpers for driving broker-lite with real MQTT clients: child processes that are
//! always killed, line readers with deadlines, mosquitto_pub/mosquitto_sub wrappers,
//! the paho scripts in `tests/py`, and a small JSON reader for their output.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use broker_lite::{Broker, BrokerHandle, Config, MetricsSnapshot};

/// How long a test waits for one expected event.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP port that was free a moment ago: bound on port 0, read, released.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_listener(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A child process that is killed and reaped when dropped, even when the test panics.
/// Its stdout lines arrive on a channel; its stderr is collected.
pub struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_closed: Receiver<()>,
}

impl Proc {
    /// Starts `cmd` with piped stdout/stderr.
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        let (closed_tx, stderr_closed) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
            let _ = closed_tx.send(());
        });
        Proc {
            name: name.to_string(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
            stderr_closed,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, or `None` at the deadline or when stdout closed.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Reads lines until one satisfies `pred`; panics with everything read so far at the deadline.
    pub fn wait_for_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for_line_within(what, TIMEOUT, pred)
    }

    /// `wait_for_line` with a deadline of its own.
    pub fn wait_for_line_within(
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
                    "{}: no line {what} within {timeout:?}\n{}",
                    self.name,
                    self.report()
                ),
            }
        }
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }

    /// Like `wait_exit`, but panics with the output when the process is still running.
    pub fn expect_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.wait_exit(timeout) {
            Some(status) => status,
            None => panic!(
                "{} still running after {timeout:?}\n{}",
                self.name,
                self.report()
            ),
        }
    }

    /// All stdout lines left, until the pipe closes, and all of stderr
    /// (call after the process exited).
    pub fn drain(&mut self) -> Vec<String> {
        while self.next_line(Duration::from_secs(2)).is_some() {}
        let _ = self.stderr_closed.recv_timeout(Duration::from_secs(2));
        self.seen.clone()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with the `kill` command.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Kills with SIGKILL and reaps.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Stdout lines read so far and the stderr text, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "--- stdout of {} ---\n{}\n--- stderr ---\n{}",
            self.name,
            self.seen.join("\n"),
            self.stderr_text()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One message as printed by `mosquitto_sub -F 'MSG %r %q %t %p'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub retain: bool,
    pub qos: u8,
    pub topic: String,
    pub payload: String,
}

impl Received {
    fn parse(line: &str) -> Option<Received> {
        let rest = line.strip_prefix("MSG ")?;
        let mut parts = rest.splitn(4, ' ');
        let retain = parts.next()? == "1";
        let qos = parts.next()?.parse().ok()?;
        let topic = parts.next()?.to_string();
        let payload = parts.next().unwrap_or("").to_string();
        Some(Received {
            retain,
            qos,
            topic,
            payload,
        })
    }
}

/// A running `mosquitto_sub -d` whose messages are parsed from its output.
pub struct MqSub {
    pub proc: Proc,
}

impl MqSub {
    /// Starts mosquitto_sub with `args` (topics, QoS, ...) without waiting for anything.
    pub fn spawn(port: u16, args: &[&str]) -> MqSub {
        // Line-buffered: piped stdout would otherwise hold lines until exit.
        let mut cmd = Command::new("stdbuf");
        cmd.args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-d",
        ])
        .args(["-F", "MSG %r %q %t %p"])
        .args(args);
        MqSub {
            proc: Proc::spawn("mosquitto_sub", &mut cmd),
        }
    }

    /// Starts mosquitto_sub and waits until its SUBACK arrived; returns the granted codes.
    pub fn subscribed(port: u16, args: &[&str]) -> MqSub {
        let mut sub = MqSub::spawn(port, args);
        sub.wait_suback();
        sub
    }

    /// Waits for the `Subscribed (mid: N): a, b` line and returns the codes.
    pub fn wait_suback(&mut self) -> Vec<u8> {
        let line = self
            .proc
            .wait_for_line("Subscribed (mid", |l| l.starts_with("Subscribed (mid"));
        let codes = line.split("): ").nth(1).unwrap_or("");
        codes
            .split(", ")
            .map(|c| {
                c.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("bad SUBACK line {line}"))
            })
            .collect()
    }

    /// The next message, or `None` at the deadline or when the process ended.
    pub fn next_msg(&mut self, timeout: Duration) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.proc.next_line(left)?;
            if let Some(msg) = Received::parse(&line) {
                return Some(msg);
            }
        }
    }

    /// The next message; panics with the output when none arrives in time.
    pub fn expect_msg(&mut self) -> Received {
        match self.next_msg(TIMEOUT) {
            Some(m) => m,
            None => panic!("no message within {TIMEOUT:?}\n{}", self.proc.report()),
        }
    }

    /// Messages until one on `topic` arrives; returns those before it and that one.
    pub fn msgs_until_topic(&mut self, topic: &str) -> (Vec<Received>, Received) {
        let mut before = Vec::new();
        loop {
            let m = self.expect_msg();
            if m.topic == topic {
                return (before, m);
            }
            before.push(m);
        }
    }
}

/// Runs `mosquitto_pub` with `args` and asserts it succeeded.
pub fn mosquitto_pub(port: u16, args: &[&str]) {
    let (status, stderr) = mosquitto_pub_status(port, args);
    assert!(
        status.success(),
        "mosquitto_pub {args:?} failed: {status}\n{stderr}"
    );
}

/// Runs `mosquitto_pub` with `args`; its exit status and stderr, whatever they are.
pub fn mosquitto_pub_status(port: u16, args: &[&str]) -> (ExitStatus, String) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    let mut proc = Proc::spawn("mosquitto_pub", &mut cmd);
    let status = proc.expect_exit(TIMEOUT);
    proc.drain();
    (status, proc.stderr_text())
}

/// An interpreter that can import paho-mqtt: the system one first, then `python3` on PATH.
pub fn python() -> &'static str {
    static FOUND: OnceLock<&'static str> = OnceLock::new();
    FOUND.get_or_init(|| {
        for candidate in ["/usr/bin/python3", "python3"] {
            let ok = Command::new(candidate)
                .args(["-c", "import paho.mqtt.client"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return candidate;
            }
        }
        panic!("no python3 with paho-mqtt installed");
    })
}

/// Result of one paho script: exit status, parsed JSON lines and stderr.
pub struct PyRun {
    pub status: ExitStatus,
    pub events: Vec<Event>,
    pub stderr: String,
    pub stdout: Vec<String>,
}

impl PyRun {
    /// Events whose `event` field equals `name`.
    pub fn events_named(&self, name: &str) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| e.opt_str("event").as_deref() == Some(name))
            .collect()
    }

    /// The single event named `name`; panics when there is not exactly one.
    pub fn one(&self, name: &str) -> &Event {
        let found = self.events_named(name);
        assert_eq!(
            found.len(),
            1,
            "expected one {name:?} event\n{}",
            self.report()
        );
        found[0]
    }

    pub fn report(&self) -> String {
        format!(
            "status {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout.join("\n"),
            self.stderr
        )
    }
}

/// Runs `tests/py/<script>` with host, port and `args`; panics when it fails or hangs.
pub fn run_py(script: &str, port: u16, args: &[&str]) -> PyRun {
    let path = format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(python());
    cmd.arg("-B")
        .arg(&path)
        .args(["127.0.0.1", &port.to_string()])
        .args(args);
    let mut proc = Proc::spawn(script, &mut cmd);
    let status = proc.expect_exit(Duration::from_secs(60));
    let stdout = proc.drain();
    let events = stdout
        .iter()
        .map(|l| Event::parse(l).unwrap_or_else(|| panic!("{script}: not a JSON object: {l:?}")))
        .collect();
    let run = PyRun {
        status,
        events,
        stderr: proc.stderr_text(),
        stdout,
    };
    assert!(run.status.success(), "{script} failed\n{}", run.report());
    run
}

/// An in-process broker on its own runtime and port, shut down when dropped.
pub struct TestBroker {
    rt: tokio::runtime::Runtime,
    broker: Option<Broker>,
    pub port: u16,
}

impl TestBroker {
    /// Starts a broker on 127.0.0.1:0 with `$SYS` off, after `edit` adjusted the config.
    pub fn start(edit: impl FnOnce(&mut Config)) -> TestBroker {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            sys_interval_secs: 0,
            ..Config::default()
        };
        edit(&mut config);
        let broker = rt.block_on(Broker::start(config)).expect("broker starts");
        let port = broker.local_addr().port();
        TestBroker {
            rt,
            broker: Some(broker),
            port,
        }
    }

    pub fn handle(&self) -> BrokerHandle {
        self.broker.as_ref().expect("running broker").handle()
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.broker
            .as_ref()
            .expect("running broker")
            .metrics()
            .snapshot()
    }

    /// Runs `fut` on the broker's runtime; panics when it takes longer than `TIMEOUT`.
    pub fn run<F: Future>(&self, fut: F) -> F::Output {
        self.rt
            .block_on(async { tokio::time::timeout(TIMEOUT, fut).await })
            .unwrap_or_else(|_| panic!("an in-process broker call took over {TIMEOUT:?}"))
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(broker) = self.broker.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(TIMEOUT, broker.shutdown()).await });
        }
    }
}

/// One JSON line printed by a paho script (flat, as `json.dumps` writes it); fields by key.
#[derive(Debug, Clone)]
pub struct Event {
    line: String,
}

impl Event {
    fn parse(line: &str) -> Option<Event> {
        let t = line.trim();
        (t.starts_with('{') && t.ends_with('}')).then(|| Event {
            line: t.to_string(),
        })
    }

    /// The text right after `"key": `.
    fn raw(&self, key: &str) -> Option<&str> {
        let pat = format!("\"{key}\": ");
        let at = self.line.find(&pat)? + pat.len();
        Some(&self.line[at..])
    }

    /// A string field, unescaped.
    pub fn opt_str(&self, key: &str) -> Option<String> {
        let mut chars = self.raw(key)?.strip_prefix('"')?.chars();
        let mut out = String::new();
        while let Some(c) = chars.next() {
            out.push(match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => '\n',
                    't' => '\t',
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
                    }
                    other => other,
                },
                c => c,
            });
        }
        None
    }

    /// A string field; panics when missing.
    pub fn str(&self, key: &str) -> String {
        self.opt_str(key)
            .unwrap_or_else(|| panic!("no string {key:?} in {}", self.line))
    }

    /// An integer field; panics when missing.
    pub fn int(&self, key: &str) -> i64 {
        let raw = self.raw(key).unwrap_or("");
        let end = raw
            .find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(raw.len());
        raw[..end]
            .parse()
            .unwrap_or_else(|_| panic!("no integer {key:?} in {}", self.line))
    }
}
