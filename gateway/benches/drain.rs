//! Drain benchmark (a program, run with `cargo bench -p mqgate --bench drain`): a store
//! holding a backlog is emptied through the upstream output into each of four brokers —
//! Mosquitto, broker-lite, aedes (npm) and amqtt (PyPI) — at QoS 1 and QoS 2, with the
//! default window (`upstream.max_inflight`) and with 1,024 in flight (the fixed window
//! of earlier versions). Next to it, in the same broker and round, `mosquitto_pub -l`
//! with the default window sends as many lines.
//!
//! For each drain: messages/s (from the output's start, TCP connect included, until
//! every message is acknowledged and marked done), CPU per message of this process
//! (output, client and the store's SQLite thread), connects, cut-offs, the window at
//! the end, the most QoS 2 messages at once whose PUBREC had come and whose PUBREL was
//! not yet sent, and the resends counted as possible duplicates.
//!
//! Needs `npm ci --prefix tests/peers` (aedes) and `python3 -m pip install amqtt==0.12.1`
//! (README, Tests). Rounds: `MQGATE_BENCH_ROUNDS` (default 3); brokers:
//! `MQGATE_BENCH_BROKERS` (comma-separated, default all four). Prints Markdown; every
//! loop is bounded in count and time; loopback only.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    append_all, batches, cell, config, cpu, median, message, scratch, wait_until, LIMIT, OUTPUT,
};
use mqgate::config::{Synchronous, DEFAULT_MAX_INFLIGHT};
use mqgate::output::client::ClientOptions;
use mqgate::output::upstream::{self, UpstreamSettings, UpstreamStatus};
use mqgate::store::{Store, StoreStats};
use mqtt_proto::codec::QoS;
use test_support::mosquitto::Mosquitto;
use test_support::net::free_port;
use test_support::process::{run_to_end, Proc, Stream};
use tokio::sync::watch;

/// The window of earlier versions, for comparison.
const OLD_WINDOW: usize = 1024;
/// Lines per `mosquitto_pub` run: Mosquitto 2.0.11's client stops early once one run
/// sends more than 65,535 QoS ≥ 1 messages (its packet ids wrap).
const PUB_RUN: usize = 50_000;
/// How long a broker may take to start.
const STARTUP: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mosquitto,
    BrokerLite,
    Aedes,
    Amqtt,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Mosquitto, Kind::BrokerLite, Kind::Aedes, Kind::Amqtt];

    fn name(self) -> &'static str {
        match self {
            Kind::Mosquitto => "mosquitto",
            Kind::BrokerLite => "broker-lite",
            Kind::Aedes => "aedes",
            Kind::Amqtt => "amqtt",
        }
    }

    /// amqtt (Python) takes a few thousand messages a second: a smaller backlog keeps
    /// its rounds as short as the others'.
    fn backlog(self) -> usize {
        match self {
            Kind::Amqtt => 10_000,
            _ => 100_000,
        }
    }
}

/// A running broker; stopped when dropped.
enum Broker {
    Mosquitto(Mosquitto),
    Child { proc: Proc, port: u16 },
}

impl Broker {
    fn port(&self) -> u16 {
        match self {
            Broker::Mosquitto(m) => m.port,
            Broker::Child { port, .. } => *port,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Broker::Child { proc, .. } = self {
            proc.signal(libc::SIGTERM);
            proc.wait_exit(Duration::from_secs(10));
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("gateway/ has a parent")
        .to_path_buf()
}

/// The `broker-lite` binary of this benchmark's profile, built if needed.
fn broker_lite_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    // <target>/<profile>/deps/drain-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the benchmark lives in <target>/<profile>/deps");
    let target = profile_dir.parent().expect("<target>");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--release", "-p", "broker-lite"])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(workspace_root());
    let done = run_to_end("cargo build -p broker-lite", cmd, Duration::from_secs(900));
    assert!(done.status.success(), "{}", done.stderr);
    target.join("release").join("broker-lite")
}

fn start(kind: Kind, broker_lite: &Path) -> Broker {
    if kind == Kind::Mosquitto {
        // Default log types: no line per packet while it is timed.
        return Broker::Mosquitto(Mosquitto::start_with("mosquitto", false, |_| {
            "allow_anonymous true\nset_tcp_nodelay true".into()
        }));
    }
    let port = free_port();
    let root = workspace_root();
    let mut cmd = match kind {
        Kind::BrokerLite => {
            let mut c = Command::new(broker_lite);
            c.arg("--listen").arg(format!("127.0.0.1:{port}"));
            c.env("RUST_LOG", "warn");
            c
        }
        Kind::Aedes => {
            let script = root.join("tests/peers/aedes-broker.mjs");
            assert!(
                root.join("tests/peers/node_modules/aedes").is_dir(),
                "aedes is missing: npm ci --prefix tests/peers"
            );
            let mut c = Command::new("node");
            c.arg(script).arg("--port").arg(port.to_string());
            c
        }
        Kind::Amqtt => {
            let mut c = Command::new("python3");
            c.arg(root.join("tests/peers/amqtt-broker.py"))
                .arg("--port")
                .arg(port.to_string());
            c
        }
        Kind::Mosquitto => unreachable!(),
    };
    let proc = Proc::spawn(kind.name(), &mut cmd);
    if kind == Kind::BrokerLite {
        assert!(
            test_support::net::wait_for_port(port, STARTUP),
            "broker-lite did not listen:\n{}",
            proc.transcript()
        );
    } else {
        proc.wait_for_line(Stream::Stdout, &["listening on"], STARTUP);
    }
    Broker::Child { proc, port }
}

#[derive(Debug, Clone, Copy, Default)]
struct Drain {
    rate: f64,
    cpu_us: f64,
    connects: u64,
    cutoffs: u64,
    window: u64,
    awaiting_release_max: u64,
    possible_duplicates: u64,
}

/// Fill a store with `backlog` messages, then time the upstream output emptying it
/// into the broker at `port` with `window` in flight at most.
async fn drain(port: u16, qos: QoS, window: usize, backlog: usize, id: &str) -> Drain {
    let dir = scratch(&format!("drain-{id}"));
    let store = Store::open(&config(&dir, Synchronous::Normal), &[OUTPUT]).expect("store opens");
    let n = append_all(&store, batches(backlog, qos)).await;
    assert_eq!(n, backlog, "the backlog is in the store");
    store.finish_input();
    let settings = UpstreamSettings {
        client: ClientOptions::new("127.0.0.1", port, format!("mqgate-bench-{id}")),
        topic_prefix: String::new(),
        gateway_id: "bench".into(),
        reconnect_initial: Duration::from_millis(50),
        reconnect_max: Duration::from_secs(1),
        max_inflight: window,
        echoes: None,
    };
    let status = Arc::new(UpstreamStatus::default());
    let (stop, shutdown) = watch::channel(false);
    let queue = store.output(OUTPUT).expect("output");
    let cpu0 = cpu(libc::RUSAGE_SELF);
    let start = Instant::now();
    let task = tokio::spawn(upstream::run(settings, queue, status.clone(), shutdown));
    let drained = wait_until(store.stats(), |s| StoreStats::get(&s.depth) == 0).await;
    let elapsed = start.elapsed();
    let cpu_used = cpu(libc::RUSAGE_SELF) - cpu0;
    let published = status.published.load(Ordering::Relaxed);
    assert!(
        drained,
        "{id}: the backlog drained within {LIMIT:?} ({published} acknowledged, {} left)",
        StoreStats::get(&store.stats().depth)
    );
    if tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .is_err()
    {
        let _ = stop.send(true);
    }
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    Drain {
        rate: backlog as f64 / elapsed.as_secs_f64(),
        cpu_us: cpu_used.as_secs_f64() * 1e6 / backlog as f64,
        connects: get(&status.connects),
        cutoffs: get(&status.cutoffs),
        window: get(&status.window),
        awaiting_release_max: get(&status.awaiting_release_max),
        possible_duplicates: get(&status.possible_duplicates),
    }
}

/// `mosquitto_pub -l -M window` sends `backlog` lines into the same broker, in runs
/// of at most `PUB_RUN` lines; CPU from the waited-for children.
async fn mosquitto_pub(port: u16, qos: QoS, window: usize, backlog: usize, lines: &Path) -> Drain {
    let cpu0 = cpu(libc::RUSAGE_CHILDREN);
    let start = Instant::now();
    let mut left = backlog;
    while left > 0 {
        let run = left.min(PUB_RUN);
        left -= run;
        let input = lines_file(lines, run);
        let mut child = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "sensors/node-0000/environment"])
            .args([
                "-q",
                &(qos as u8).to_string(),
                "-M",
                &window.to_string(),
                "-l",
            ])
            .stdin(File::open(input).expect("lines"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mosquitto_pub starts");
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mosquitto_pub did not finish within {LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        assert!(status.success(), "mosquitto_pub: {status}");
    }
    let elapsed = start.elapsed();
    let cpu_used = cpu(libc::RUSAGE_CHILDREN) - cpu0;
    Drain {
        rate: backlog as f64 / elapsed.as_secs_f64(),
        cpu_us: cpu_used.as_secs_f64() * 1e6 / backlog as f64,
        ..Drain::default()
    }
}

/// The file of `n` payload lines beside `base` (written once per size).
fn lines_file(base: &Path, n: usize) -> PathBuf {
    let path = base.with_extension(format!("{n}.txt"));
    if !path.exists() {
        let mut f = std::io::BufWriter::new(File::create(&path).expect("lines file"));
        for i in 0..n {
            f.write_all(&message(i, QoS::AtLeastOnce).payload)
                .expect("write");
            f.write_all(b"\n").expect("write");
        }
    }
    path
}

/// What one broker gave over the rounds, per QoS: ours at the default window, ours at
/// the old window, `mosquitto_pub` at the default window.
#[derive(Default)]
struct Figures {
    ours: [Vec<Drain>; 2],
    ours_old: [Vec<Drain>; 2],
    reference: [Vec<Drain>; 2],
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let rounds: usize = std::env::var("MQGATE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .clamp(1, 9);
    let kinds: Vec<Kind> = match std::env::var("MQGATE_BENCH_BROKERS") {
        Ok(list) => list
            .split(',')
            .map(|name| {
                *Kind::ALL
                    .iter()
                    .find(|k| k.name() == name.trim())
                    .unwrap_or_else(|| {
                        panic!("no broker {name:?}: mosquitto, broker-lite, aedes, amqtt")
                    })
            })
            .collect(),
        Err(_) => Kind::ALL.to_vec(),
    };
    let broker_lite = broker_lite_bin();
    let work = scratch("drain-lines");
    let lines = work.join("lines");
    let window = DEFAULT_MAX_INFLIGHT as usize;
    let mut figures: Vec<Figures> = kinds.iter().map(|_| Figures::default()).collect();
    for round in 0..rounds {
        for (k, &kind) in kinds.iter().enumerate() {
            eprintln!("round {} of {rounds}: {}", round + 1, kind.name());
            let broker = start(kind, &broker_lite);
            let port = broker.port();
            let backlog = kind.backlog();
            let f = &mut figures[k];
            for (q, qos) in [QoS::AtLeastOnce, QoS::ExactlyOnce].into_iter().enumerate() {
                let id = |what: &str| format!("{}-{round}-{q}-{what}", kind.name());
                // Alternate which goes first, ours or the reference client.
                if round % 2 == 1 {
                    f.reference[q].push(mosquitto_pub(port, qos, window, backlog, &lines).await);
                }
                f.ours[q].push(drain(port, qos, window, backlog, &id("default")).await);
                f.ours_old[q].push(drain(port, qos, OLD_WINDOW, backlog, &id("old")).await);
                if round % 2 == 0 {
                    f.reference[q].push(mosquitto_pub(port, qos, window, backlog, &lines).await);
                }
            }
            drop(broker);
        }
    }
    let _ = std::fs::remove_dir_all(&work);

    println!(
        "Median of {rounds} round(s), range in brackets. Window: `upstream.max_inflight` at the \
         start (the default, {window}, or {OLD_WINDOW}) and at the end of the drain.\n"
    );
    println!(
        "| broker | QoS | backlog | window | mqgate messages/s | mqgate CPU µs/msg | connects | \
         cut-offs | most awaiting PUBREL | possible duplicates | `mosquitto_pub -M {window}` messages/s | ratio |"
    );
    println!("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let col =
        |v: &[Drain], f: fn(&Drain) -> f64, d: usize| cell(&v.iter().map(f).collect::<Vec<_>>(), d);
    let max = |v: &[Drain], f: fn(&Drain) -> u64| v.iter().map(f).max().unwrap_or(0);
    for (k, kind) in kinds.iter().enumerate() {
        let f = &figures[k];
        for q in 0..2 {
            let reference = median(&f.reference[q].iter().map(|d| d.rate).collect::<Vec<_>>());
            for (start_window, v) in [(window, &f.ours[q]), (OLD_WINDOW, &f.ours_old[q])] {
                let end_windows: Vec<u64> = v.iter().map(|d| d.window).collect();
                let end = if end_windows.iter().all(|&w| w == start_window as u64) {
                    format!("{start_window}")
                } else {
                    format!("{start_window} → {end_windows:?}")
                };
                let ours = median(&v.iter().map(|d| d.rate).collect::<Vec<_>>());
                let (ref_cell, ratio) = if start_window == window {
                    (
                        col(&f.reference[q], |d| d.rate, 0),
                        format!("{:.2}×", ours / reference),
                    )
                } else {
                    (String::new(), String::new())
                };
                println!(
                    "| {} | {} | {} | {end} | {} | {} | {} | {} | {} | {} | {ref_cell} | {ratio} |",
                    kind.name(),
                    q + 1,
                    kind.backlog(),
                    col(v, |d| d.rate, 0),
                    col(v, |d| d.cpu_us, 1),
                    max(v, |d| d.connects),
                    max(v, |d| d.cutoffs),
                    if q == 1 {
                        max(v, |d| d.awaiting_release_max).to_string()
                    } else {
                        "–".to_string()
                    },
                    max(v, |d| d.possible_duplicates),
                );
            }
        }
    }
}
