//! Other brokers as the gateway's upstream: Mosquitto, aedes (Node.js), amqtt
//! (Python) and our own broker-lite, each on a fixed port in a scratch folder, to be
//! stopped, killed and started again on the same port.
//!
//! aedes and amqtt run through the launchers in `tests/peers/`, which print
//! `listening on HOST:PORT` when ready; broker-lite prints the same line. A missing
//! runtime or package fails the test with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::mqgate::{build_workspace_bin, workspace_root};
use crate::peers::check_npm_package;
use crate::upstream::{fixed_port, Upstream};
use test_support::net::wait_for_port;
use test_support::process::{Proc, Stream};

/// How long a start waits for the broker to be ready, and a stop for it to end.
/// amqtt needs about a second to import on an idle machine.
const STARTUP: Duration = Duration::from_secs(20);

/// The aedes version `tests/peers/package.json` pins.
pub const AEDES_VERSION: &str = "1.2.0";
/// The amqtt version the tests are written against.
pub const AMQTT_VERSION: &str = "0.12.1";

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// Mosquitto with persistence (`upstream::Upstream`).
    Mosquitto,
    /// aedes with its in-memory persistence: `tests/peers/aedes-broker.mjs`.
    Aedes,
    /// amqtt, sessions in memory: `tests/peers/amqtt-broker.py`.
    Amqtt,
    /// The workspace's `broker-lite` binary with `persistence:` on.
    BrokerLite,
}

impl BrokerKind {
    /// A short name for labels and reports.
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Mosquitto => "mosquitto",
            BrokerKind::Aedes => "aedes",
            BrokerKind::Amqtt => "amqtt",
            BrokerKind::BrokerLite => "broker-lite",
        }
    }

    /// Whether persistent sessions (subscriptions, queued and in-flight messages,
    /// QoS 2 ids awaiting PUBREL) survive a restart of the broker.
    pub fn keeps_sessions(self) -> bool {
        match self {
            BrokerKind::Mosquitto | BrokerKind::BrokerLite => true,
            BrokerKind::Aedes | BrokerKind::Amqtt => false,
        }
    }
}

/// A broker on a fixed port of 127.0.0.1, the same across restarts; killed when
/// dropped.
#[derive(Debug)]
pub struct PeerBroker {
    kind: BrokerKind,
    run: Run,
}

#[derive(Debug)]
enum Run {
    Mosquitto(Upstream),
    Child(Child),
}

impl PeerBroker {
    /// Starts `kind` with its files in `dir`; returns once it accepts connections.
    /// Panics, saying what to install, when its runtime or package is missing.
    pub fn start(kind: BrokerKind, dir: &Path) -> PeerBroker {
        let run = match kind {
            BrokerKind::Mosquitto => Run::Mosquitto(Upstream::start(dir)),
            _ => Run::Child(Child::start(kind, dir)),
        };
        PeerBroker { kind, run }
    }

    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    /// The port, the same across restarts.
    pub fn port(&self) -> u16 {
        match &self.run {
            Run::Mosquitto(up) => up.port(),
            Run::Child(c) => c.port,
        }
    }

    /// See `BrokerKind::keeps_sessions`.
    pub fn keeps_sessions(&self) -> bool {
        self.kind.keeps_sessions()
    }

    /// Stops the broker with SIGTERM and waits for it (a broker with persistence
    /// saves its state).
    pub fn stop(&mut self) -> ExitStatus {
        match &mut self.run {
            Run::Mosquitto(up) => up.stop(),
            Run::Child(c) => c.end(libc::SIGTERM),
        }
    }

    /// Kills the broker with SIGKILL and waits for it.
    pub fn kill(&mut self) -> ExitStatus {
        match &mut self.run {
            Run::Mosquitto(up) => up.kill(),
            Run::Child(c) => c.end(libc::SIGKILL),
        }
    }

    /// Starts the broker again on the same port (with its saved state, if it keeps
    /// any); returns once it accepts connections.
    pub fn restart(&mut self) {
        match &mut self.run {
            Run::Mosquitto(up) => up.restart(),
            Run::Child(c) => c.restart(),
        }
    }

    /// Every run's output so far, oldest first.
    pub fn transcript(&self) -> String {
        match &self.run {
            Run::Mosquitto(up) => up.transcript(),
            Run::Child(c) => c.transcript(),
        }
    }
}

/// aedes, amqtt or broker-lite as a child process.
#[derive(Debug)]
struct Child {
    kind: BrokerKind,
    port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
    /// Output of the runs that ended.
    earlier: String,
    starts: u32,
}

impl Child {
    fn start(kind: BrokerKind, dir: &Path) -> Child {
        check_installed(kind);
        let mut last = String::new();
        // A port below the ephemeral range stays free while the broker is down (see
        // `fixed_port`); another program may still take it between the check and
        // the bind, hence a few tries.
        for _ in 0..5 {
            let mut child = Child {
                kind,
                port: fixed_port(),
                dir: dir.to_path_buf(),
                proc: None,
                earlier: String::new(),
                starts: 0,
            };
            match child.try_start() {
                Ok(()) => return child,
                Err(log) => last = log,
            }
        }
        panic!(
            "{} did not start on any of 5 ports; last output:\n{last}",
            kind.name()
        );
    }

    fn restart(&mut self) {
        assert!(
            self.proc.as_mut().is_none_or(|p| p.try_exited().is_some()),
            "{} is already running",
            self.kind.name()
        );
        if let Err(log) = self.try_start() {
            panic!(
                "{} did not start again on port {}:\n{log}",
                self.kind.name(),
                self.port
            );
        }
    }

    fn command(&self) -> Command {
        let port = self.port.to_string();
        let peers = workspace_root().join("tests/peers");
        let mut cmd = match self.kind {
            BrokerKind::Aedes => {
                let mut cmd = Command::new("node");
                cmd.arg(peers.join("aedes-broker.mjs")).args([
                    "--port",
                    &port,
                    "--host",
                    "127.0.0.1",
                ]);
                cmd
            }
            BrokerKind::Amqtt => {
                let mut cmd = Command::new("python3");
                cmd.arg(peers.join("amqtt-broker.py"))
                    .args(["--port", &port]);
                cmd
            }
            BrokerKind::BrokerLite => {
                let conf = self.dir.join("broker-lite.yaml");
                std::fs::write(&conf, broker_lite_config(self.port))
                    .expect("write broker-lite's configuration");
                let mut cmd = Command::new(broker_lite_bin());
                cmd.arg("--config").arg(conf).env("RUST_LOG", "info");
                cmd
            }
            BrokerKind::Mosquitto => unreachable!("Mosquitto runs as `Upstream`"),
        };
        cmd.current_dir(&self.dir);
        cmd
    }

    /// Starts the process and waits for its `listening on` line and the port.
    fn try_start(&mut self) -> Result<(), String> {
        self.starts += 1;
        let name = format!("{}#{}", self.kind.name(), self.starts);
        let mut proc = Proc::spawn(&name, self.command());
        let ready = format!("listening on 127.0.0.1:{}", self.port);
        let deadline = Instant::now() + STARTUP;
        loop {
            let said = proc.stream(Stream::Stdout).iter().any(|l| l == &ready);
            if said && wait_for_port(self.port, STARTUP) && proc.try_exited().is_none() {
                self.proc = Some(proc);
                return Ok(());
            }
            if proc.try_exited().is_some() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if proc.try_exited().is_none() {
            proc.signal(libc::SIGKILL);
        }
        let _ = proc.wait_exit(STARTUP);
        let log = proc.transcript();
        self.earlier.push_str(&log);
        Err(log)
    }

    fn end(&mut self, signal: libc::c_int) -> ExitStatus {
        let name = self.kind.name();
        let mut proc = self
            .proc
            .take()
            .unwrap_or_else(|| panic!("{name} is not running"));
        if proc.try_exited().is_none() {
            proc.signal(signal);
        }
        let status = proc.wait_exit(STARTUP);
        self.earlier.push_str(&proc.transcript());
        status
    }

    fn transcript(&self) -> String {
        let mut text = self.earlier.clone();
        if let Some(p) = &self.proc {
            text.push_str(&p.transcript());
        }
        text
    }
}

/// broker-lite keeping sessions in a file beside its configuration, with queues
/// and windows large enough that a backlog of tens of thousands is delivered, not
/// dropped (its default queue of 1,000 per session drops the oldest).
fn broker_lite_config(port: u16) -> String {
    format!(
        "listen: 127.0.0.1:{port}\n\
         sys_interval_secs: 0\n\
         limits:\n  max_queued_messages: 1000000\n  max_inflight: 100\n\
         persistence:\n  file: broker-lite-state.db\n"
    )
}

/// The workspace's `broker-lite` binary, built once per test process.
pub fn broker_lite_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_workspace_bin("broker-lite", "broker-lite"))
}

/// Panics with what to install when `kind`'s runtime or package is missing.
fn check_installed(kind: BrokerKind) {
    match kind {
        BrokerKind::Aedes => {
            static CHECKED: OnceLock<()> = OnceLock::new();
            CHECKED.get_or_init(check_aedes);
        }
        BrokerKind::Amqtt => {
            static CHECKED: OnceLock<()> = OnceLock::new();
            CHECKED.get_or_init(check_amqtt);
        }
        BrokerKind::Mosquitto | BrokerKind::BrokerLite => {}
    }
}

fn check_aedes() {
    check_npm_package("aedes", AEDES_VERSION);
}

fn check_amqtt() {
    let found = Command::new("python3")
        .args(["-c", "import amqtt; print(amqtt.__version__)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert_eq!(
        found.as_deref(),
        Some(AMQTT_VERSION),
        "amqtt {AMQTT_VERSION} is missing: python3 -m pip install amqtt=={AMQTT_VERSION}"
    );
}
