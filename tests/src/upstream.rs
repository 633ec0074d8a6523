//! Mosquitto as an upstream broker that a test stops, kills and starts again on the
//! same port, keeping its sessions and queued messages on disk across restarts.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use test_support::mosquitto::MOSQUITTO;
use test_support::net::wait_for_port;
use test_support::process::{Proc, Stream};

/// How long a start waits for the port to answer, and a stop for the process to end.
const STARTUP: Duration = Duration::from_secs(10);

/// Settings of the broker; `Default` suits the fault tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamOptions {
    /// Saves the in-memory database after this many changes (messages queued for a
    /// client, subscriptions, retained messages); 0 saves only at a graceful stop
    /// and on `save`. Each save writes the whole database: 1 caps Mosquitto near 150
    /// messages/s; 100 (the default) allows several thousand. A `kill -9` rolls the
    /// broker back to its last save: deliveries it had finished since then are
    /// sent again with DUP set (`SeqStats::resent_duplicates`), and a message that
    /// came in since then and was still queued for an offline client is lost by
    /// Mosquitto itself.
    pub autosave_changes: u32,
    /// `max_queued_messages` per client.
    pub max_queued_messages: u32,
    /// `max_inflight_messages` per client; 0 is no limit.
    pub max_inflight_messages: u32,
    /// Lines appended to the configuration file as they are.
    pub extra_conf: String,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            autosave_changes: 100,
            max_queued_messages: 1_000_000,
            max_inflight_messages: 0,
            extra_conf: String::new(),
        }
    }
}

/// A Mosquitto broker with persistence in a folder of its own and a fixed port.
/// Killed when dropped.
#[derive(Debug)]
pub struct Upstream {
    port: u16,
    conf: PathBuf,
    data: PathBuf,
    proc: Option<Proc>,
    /// Logs of the runs that ended.
    earlier: String,
    starts: u32,
}

impl Upstream {
    /// Starts Mosquitto with `UpstreamOptions::default()`; files go in `dir`.
    pub fn start(dir: &Path) -> Upstream {
        Upstream::start_with(dir, &UpstreamOptions::default())
    }

    /// Starts Mosquitto with `options`; its configuration and database go in `dir`.
    pub fn start_with(dir: &Path, options: &UpstreamOptions) -> Upstream {
        assert!(
            Path::new(MOSQUITTO).exists(),
            "{MOSQUITTO} is missing: apt-get install mosquitto mosquitto-clients"
        );
        let data = dir.join("mosquitto-data");
        std::fs::create_dir_all(&data).expect("create Mosquitto's data folder");
        let mut last = String::new();
        // The port is picked below the range the system hands out for port 0 and for
        // outgoing connections, so that nothing else takes it while Mosquitto is down.
        for _ in 0..5 {
            let port = fixed_port();
            let conf = dir.join(format!("upstream-{port}.conf"));
            std::fs::write(&conf, config_text(port, &data, options))
                .expect("write the Mosquitto configuration");
            let mut upstream = Upstream {
                port,
                conf,
                data: data.clone(),
                proc: None,
                earlier: String::new(),
                starts: 0,
            };
            match upstream.try_start() {
                Ok(()) => return upstream,
                Err(log) => last = log,
            }
        }
        panic!("Mosquitto did not start on any of 5 ports; last output:\n{last}");
    }

    /// The port, the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder that holds `mosquitto.db`.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// How many times the broker was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Whether the broker process is running.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.try_exited().is_none())
    }

    /// The pid of the running broker.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Stops the broker gracefully (SIGTERM; it saves its database) and waits for it.
    pub fn stop(&mut self) -> ExitStatus {
        self.end(libc::SIGTERM)
    }

    /// Kills the broker with SIGKILL and waits for it: what it had not saved is gone.
    pub fn kill(&mut self) -> ExitStatus {
        self.end(libc::SIGKILL)
    }

    /// Starts the broker again on the same port with the same database; returns once
    /// the port answers. Panics if it is already running or does not come up.
    pub fn restart(&mut self) {
        assert!(!self.is_running(), "the upstream broker is already running");
        if let Err(log) = self.try_start() {
            panic!(
                "Mosquitto did not start again on port {}:\n{log}",
                self.port
            );
        }
    }

    /// Makes the running broker save its database now (SIGUSR1) and waits until the
    /// new file has replaced the old one: a `kill -9` after this loses nothing that
    /// came before.
    pub fn save(&self) {
        use std::os::unix::fs::MetadataExt;
        let proc = self
            .proc
            .as_ref()
            .expect("the upstream broker is not running");
        let db = self.data.join("mosquitto.db");
        let tmp = self.data.join("mosquitto.db.new");
        let inode = || std::fs::metadata(&db).ok().map(|m| m.ino());
        let before = inode();
        proc.signal(libc::SIGUSR1);
        // Mosquitto writes `mosquitto.db.new`, then renames it over `mosquitto.db`.
        let deadline = Instant::now() + STARTUP;
        while inode() == before || tmp.exists() {
            assert!(
                Instant::now() < deadline,
                "Mosquitto did not save {} within {STARTUP:?}:\n{}",
                db.display(),
                self.transcript()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every run's log so far, oldest first.
    pub fn transcript(&self) -> String {
        let mut text = self.earlier.clone();
        if let Some(p) = &self.proc {
            text.push_str(&p.transcript());
        }
        text
    }

    fn try_start(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(MOSQUITTO);
        cmd.arg("-c").arg(&self.conf);
        self.starts += 1;
        let mut proc = Proc::spawn(&format!("upstream#{}", self.starts), cmd);
        // Ready when Mosquitto says it runs and the port answers; something else on
        // the port would make Mosquitto exit instead.
        let deadline = Instant::now() + STARTUP;
        loop {
            let running = proc
                .stream(Stream::Stderr)
                .iter()
                .any(|l| l.contains("mosquitto version") && l.ends_with(" running"));
            if running && wait_for_port(self.port, STARTUP) && proc.try_exited().is_none() {
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
        let mut proc = self
            .proc
            .take()
            .expect("the upstream broker is not running");
        if proc.try_exited().is_none() {
            proc.signal(signal);
        }
        let status = proc.wait_exit(STARTUP);
        self.earlier.push_str(&proc.transcript());
        status
    }
}

fn config_text(port: u16, data: &Path, o: &UpstreamOptions) -> String {
    let mut dir = data.display().to_string();
    if !dir.ends_with('/') {
        dir.push('/');
    }
    format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         user root\n\
         persistence true\n\
         persistence_location {dir}\n\
         autosave_on_changes true\n\
         autosave_interval {autosave}\n\
         max_queued_messages {queued}\n\
         max_inflight_messages {inflight}\n\
         log_dest stderr\n\
         log_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
         connection_messages true\n\
         {extra}\n",
        autosave = o.autosave_changes,
        queued = o.max_queued_messages,
        inflight = o.max_inflight_messages,
        extra = o.extra_conf,
    )
}

/// A port below the system's ephemeral range (so that neither a bind to port 0 nor
/// an outgoing connection can take it) that is free now.
pub fn fixed_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32768u32);
    let (first, span) = (10_000u32, low.saturating_sub(10_000).max(1000));
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..200 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = first + (seed.wrapping_add(n.wrapping_mul(613))) % span;
        let port = u16::try_from(port).expect("port below 65536");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range after 200 tries");
}
