//! Helpers for driving broker-lite with real MQTT clients: the paho scripts in
//! `tests/py` and a small JSON reader for their output, and an in-process broker
//! for blocking tests. Processes and the Mosquitto clients come from
//! `test_support`.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use broker_lite::{Broker, BrokerHandle, Config, MetricsSnapshot};
use test_support::process::{Proc, Stream};

/// How long a test waits for one expected event.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// An interpreter that can import paho-mqtt: the system one first, then `python3` on PATH.
pub(crate) fn python() -> &'static str {
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
pub(crate) struct PyRun {
    pub status: ExitStatus,
    pub events: Vec<Event>,
    pub stderr: String,
    pub stdout: Vec<String>,
}

impl PyRun {
    /// Events whose `event` field equals `name`.
    pub(crate) fn events_named(&self, name: &str) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| e.opt_str("event").as_deref() == Some(name))
            .collect()
    }

    /// The single event named `name`; panics when there is not exactly one.
    pub(crate) fn one(&self, name: &str) -> &Event {
        let found = self.events_named(name);
        assert_eq!(
            found.len(),
            1,
            "expected one {name:?} event\n{}",
            self.transcript()
        );
        found[0]
    }

    pub(crate) fn transcript(&self) -> String {
        format!(
            "status {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout.join("\n"),
            self.stderr
        )
    }
}

/// Runs `tests/py/<script>` with host, port and `args`; panics when it fails or hangs.
pub(crate) fn run_py(script: &str, port: u16, args: &[&str]) -> PyRun {
    let path = format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(python());
    cmd.arg("-B")
        .arg(&path)
        .args(["127.0.0.1", &port.to_string()])
        .args(args);
    let mut proc = Proc::spawn(script, &mut cmd);
    let status = proc.wait_exit(Duration::from_secs(60));
    let stdout = proc.stream(Stream::Stdout);
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
    assert!(
        run.status.success(),
        "{script} failed\n{}",
        run.transcript()
    );
    run
}

/// An in-process broker on its own runtime and port, shut down when dropped.
pub(crate) struct TestBroker {
    rt: tokio::runtime::Runtime,
    broker: Option<Broker>,
    pub port: u16,
}

impl TestBroker {
    /// Starts a broker on 127.0.0.1:0 with `$SYS` off, after `edit` adjusted the config.
    pub(crate) fn start(edit: impl FnOnce(&mut Config)) -> TestBroker {
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

    pub(crate) fn handle(&self) -> BrokerHandle {
        self.broker.as_ref().expect("running broker").handle()
    }

    pub(crate) fn metrics(&self) -> MetricsSnapshot {
        self.broker
            .as_ref()
            .expect("running broker")
            .metrics()
            .snapshot()
    }

    /// Waits until `cond` holds for the broker's metrics; panics with them after `TIMEOUT`.
    pub(crate) fn wait_metrics(&self, what: &str, cond: impl Fn(&MetricsSnapshot) -> bool) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !cond(&self.metrics()) {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: metrics {:?}",
                self.metrics()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs `fut` on the broker's runtime; panics when it takes longer than `TIMEOUT`.
    /// Run `fut` on the broker's runtime in the background.
    #[allow(dead_code)]
    pub(crate) fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.spawn(fut)
    }

    pub(crate) fn run<F: Future>(&self, fut: F) -> F::Output {
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
pub(crate) struct Event {
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
    pub(crate) fn opt_str(&self, key: &str) -> Option<String> {
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
    pub(crate) fn str(&self, key: &str) -> String {
        self.opt_str(key)
            .unwrap_or_else(|| panic!("no string {key:?} in {}", self.line))
    }

    /// An integer field; panics when missing.
    pub(crate) fn int(&self, key: &str) -> i64 {
        let raw = self.raw(key).unwrap_or("");
        let end = raw
            .find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(raw.len());
        raw[..end]
            .parse()
            .unwrap_or_else(|_| panic!("no integer {key:?} in {}", self.line))
    }
}
