//! Message store benchmark (a program, run with `cargo bench -p mqgate --bench store`):
//! 1. append rate in batches of 1,024 with nothing reading ("offline"), and the bytes
//!    written to disk per message (`/proc/self/io`), at `synchronous: normal` and `full`;
//! 2. the same while an output reads and marks every message done at once ("online");
//! 3. drain of a 100,000-message backlog to Mosquitto through the upstream output at
//!    QoS 1 and QoS 2, next to `mosquitto_pub -l` sending as many into the same broker;
//! 4. memory of a process whose store holds 100,000 and then 1,000,000 messages
//!    (measured in a child process, so that the other phases do not weigh in).
//!
//! Every phase runs in a fresh scratch folder that is removed afterwards. Rounds
//! (`MQGATE_BENCH_ROUNDS`, default 5) alternate our drain and Mosquitto's client;
//! the tables give the median and the range. Prints Markdown; every loop is bounded
//! in count and time; loopback only.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqgate::config::{StoreConfig, Synchronous, DEFAULT_MAX_INFLIGHT};
use mqgate::message::Message;
use mqgate::output::client::ClientOptions;
use mqgate::output::upstream::{self, UpstreamSettings, UpstreamStatus};
use mqgate::store::{Store, StoreStats};
use mqtt_proto::codec::QoS;
use test_support::mosquitto::Mosquitto;
use tokio::sync::watch;

const APPENDS: usize = 200_000;
const BATCH: usize = 1024;
const BACKLOG: usize = 100_000;
/// Lines per `mosquitto_pub` run (see `mosquitto_pub`).
const PUB_RUN: usize = 50_000;
const MEMORY_SMALL: usize = 100_000;
const MEMORY_LARGE: usize = 1_000_000;
/// The longest any one phase may take.
const LIMIT: Duration = Duration::from_secs(120);
const OUTPUT: &str = "upstream";
const CHILD_ENV: &str = "MQGATE_STORE_BENCH_MEMORY";

/// A sensor reading as a mapping makes it: a ~29-byte topic and a ~62-byte JSON payload.
fn message(i: usize, qos: QoS) -> Message {
    let topic = format!("sensors/node-{:04}/environment", i % 1000);
    let payload = format!(
        "{{\"seq\":{i},\"temp\":{}.{:02},\"hum\":{}.{},\"bat\":3.{:02},\"ts\":{}}}",
        15 + i % 10,
        i % 100,
        30 + i % 50,
        i % 10,
        i % 100,
        1_764_140_000_000u64 + i as u64
    );
    Message {
        topic: topic.parse().expect("a valid topic"),
        payload: Bytes::from(payload),
        qos,
        retain: false,
    }
}

fn batches(n: usize, qos: QoS) -> Vec<Vec<Message>> {
    (0..n)
        .step_by(BATCH)
        .map(|start| {
            (start..(start + BATCH).min(n))
                .map(|i| message(i, qos))
                .collect()
        })
        .collect()
}

fn scratch(phase: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("mqgate-store-bench-{}-{phase}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn config(dir: &Path, synchronous: Synchronous) -> StoreConfig {
    StoreConfig {
        file: dir.join("messages.db"),
        synchronous,
        max_messages: 10_000_000,
        max_bytes: 0,
        ..StoreConfig::default()
    }
}

/// `wchar` (bytes handed to write()) and `write_bytes` (page-cache pages this process
/// dirtied, which the kernel charges when they are dirtied, not at writeback).
#[derive(Clone, Copy)]
struct Io {
    wchar: u64,
    write_bytes: u64,
    cancelled: u64,
}

fn io() -> Io {
    let text = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(": ")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    Io {
        wchar: field("wchar"),
        write_bytes: field("write_bytes"),
        cancelled: field("cancelled_write_bytes"),
    }
}

fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    text.lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// CPU time (user + system) of this process, or of its waited-for children.
fn cpu(who: i32) -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn files_size(dir: &Path) -> u64 {
    ["messages.db", "messages.db-wal", "messages.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

async fn append_all(store: &Store, batches: Vec<Vec<Message>>) -> usize {
    let start = Instant::now();
    let mut n = 0;
    for b in batches {
        if start.elapsed() > LIMIT {
            break;
        }
        let len = b.len();
        let r = store.append(b).await.expect("append");
        assert_eq!(r.accepted, len, "every message fits");
        n += len;
    }
    n
}

struct AppendFigures {
    rate: f64,
    wchar: f64,
    write_bytes: f64,
    file: f64,
}

/// Append `APPENDS` messages; with `online`, an output reads and marks them done at once.
async fn append_phase(synchronous: Synchronous, online: bool) -> AppendFigures {
    let dir = scratch(if online { "online" } else { "offline" });
    let work = batches(APPENDS, QoS::AtLeastOnce);
    let before = io();
    let store = Store::open(&config(&dir, synchronous), &[OUTPUT]).expect("store opens");
    let reader = online.then(|| {
        let mut q = store.output(OUTPUT).expect("output");
        tokio::spawn(async move {
            let mut n = 0usize;
            let start = Instant::now();
            while n < APPENDS && start.elapsed() < LIMIT {
                let b = q.next_batch(BATCH).await.expect("next_batch");
                if b.is_empty() {
                    break;
                }
                n += b.len();
                q.done(b.iter().map(|s| s.id).collect())
                    .await
                    .expect("done");
            }
            n
        })
    });
    let start = Instant::now();
    let n = append_all(&store, work).await;
    let elapsed = start.elapsed();
    if let Some(reader) = reader {
        store.finish_input();
        let read = tokio::time::timeout(LIMIT, reader)
            .await
            .expect("the reader ends")
            .expect("reader");
        assert_eq!(read, n, "the output read every message");
        wait_until(store.stats(), |s| StoreStats::get(&s.depth) == 0).await;
    }
    let file = files_size(&dir);
    store.close().await;
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    let after = io();
    let _ = std::fs::remove_dir_all(&dir);
    let written =
        (after.write_bytes - before.write_bytes).saturating_sub(after.cancelled - before.cancelled);
    AppendFigures {
        rate: n as f64 / elapsed.as_secs_f64(),
        wchar: (after.wchar - before.wchar) as f64 / n as f64,
        write_bytes: written as f64 / n as f64,
        file: file as f64 / n as f64,
    }
}

async fn wait_until(stats: &Arc<StoreStats>, done: impl Fn(&StoreStats) -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        if done(stats) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

struct Drain {
    rate: f64,
    cpu_us: f64,
}

/// Fill a store with `BACKLOG` messages, then time the upstream output emptying it.
async fn drain_phase(port: u16, qos: QoS, round: usize) -> Drain {
    let dir = scratch("drain");
    let store = Store::open(&config(&dir, Synchronous::Normal), &[OUTPUT]).expect("store opens");
    let n = append_all(&store, batches(BACKLOG, qos)).await;
    assert_eq!(n, BACKLOG, "the backlog is in the store");
    store.finish_input();
    let settings = UpstreamSettings {
        client: ClientOptions::new(
            "127.0.0.1",
            port,
            format!("mqgate-bench-{round}-{}", qos as u8),
        ),
        topic_prefix: String::new(),
        gateway_id: "bench".into(),
        reconnect_initial: Duration::from_millis(50),
        reconnect_max: Duration::from_secs(1),
        max_inflight: DEFAULT_MAX_INFLIGHT as usize,
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
        "the backlog drained within {LIMIT:?} ({published} acknowledged, {} left)",
        StoreStats::get(&store.stats().depth)
    );
    assert!(published >= BACKLOG as u64, "{published} acknowledged");
    if tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .is_err()
    {
        let _ = stop.send(true);
    }
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Drain {
        rate: BACKLOG as f64 / elapsed.as_secs_f64(),
        cpu_us: cpu_used.as_secs_f64() * 1e6 / BACKLOG as f64,
    }
}

/// `mosquitto_pub -l` sends `BACKLOG` lines into the same broker, 1,024 in flight.
/// Mosquitto 2.0.11's client stops early when one run sends more than 65,535 QoS ≥ 1
/// messages (fed 100,000 lines it stopped after 34,465 acknowledgements: the packet id
/// the last line gets once ids wrap), so the lines go in runs of `PUB_RUN`.
async fn mosquitto_pub(port: u16, qos: QoS, lines: &Path) -> Drain {
    let cpu0 = cpu(libc::RUSAGE_CHILDREN);
    let start = Instant::now();
    for _ in 0..BACKLOG / PUB_RUN {
        let mut child = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "sensors/node-0000/environment"])
            .args(["-q", &(qos as u8).to_string(), "-M", "1024", "-l"])
            .stdin(File::open(lines).expect("lines"))
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
        rate: BACKLOG as f64 / elapsed.as_secs_f64(),
        cpu_us: cpu_used.as_secs_f64() * 1e6 / BACKLOG as f64,
    }
}

/// The child process: RSS with 100k and then 1M messages held, and after reopening.
async fn memory_child() {
    let dir = scratch("memory");
    let cfg = config(&dir, Synchronous::Normal);
    let base = status_kib("VmRSS:");
    let store = Store::open(&cfg, &[OUTPUT]).expect("store opens");
    let opened = status_kib("VmRSS:");
    let feed = |from: usize, to: usize| {
        let store = store.clone();
        async move {
            let start = Instant::now();
            let mut i = from;
            while i < to && start.elapsed() < LIMIT * 2 {
                let end = (i + BATCH).min(to);
                let b: Vec<Message> = (i..end).map(|k| message(k, QoS::AtLeastOnce)).collect();
                store.append(b).await.expect("append");
                i = end;
            }
            i
        }
    };
    let mut lines = Vec::new();
    let mut held = feed(0, MEMORY_SMALL).await;
    store.sync().await;
    lines.push((held, status_kib("VmRSS:"), files_size(&dir)));
    held = feed(held, MEMORY_LARGE).await;
    store.sync().await;
    lines.push((held, status_kib("VmRSS:"), files_size(&dir)));
    store.close().await;
    drop(store);
    let start = Instant::now();
    let store = Store::open(&cfg, &[OUTPUT]).expect("store reopens");
    let reopen = start.elapsed();
    let depth = StoreStats::get(&store.stats().depth);
    let reopened = status_kib("VmRSS:");
    store.close().await;
    println!("base {base}");
    println!("opened {opened}");
    for (n, rss, size) in lines {
        println!("held {n} {rss} {size}");
    }
    println!("reopened {depth} {reopened} {}", reopen.as_millis());
    println!("peak {}", status_kib("VmHWM:"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn memory_phase() -> String {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child starts");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > LIMIT * 3 {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("child output");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut md = String::from(
        "| store holds | VmRSS | file (db + wal) | file bytes/message |\n|---|---:|---:|---:|\n",
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        match f.first().copied() {
            Some("base") => md += &format!("| (before opening) | {:.1} MiB | | |\n", mib(num(1))),
            Some("opened") => md += &format!("| 0 (opened) | {:.1} MiB | | |\n", mib(num(1))),
            Some("held") => {
                md += &format!(
                    "| {} | {:.1} MiB | {:.1} MiB | {:.0} |\n",
                    num(1),
                    mib(num(2)),
                    num(3) as f64 / 1048576.0,
                    num(3) as f64 / num(1).max(1) as f64
                )
            }
            Some("reopened") => {
                md += &format!(
                    "| {} (after close and reopen, open took {} ms) | {:.1} MiB | | |\n",
                    num(1),
                    num(3),
                    mib(num(2))
                )
            }
            _ => {}
        }
    }
    if !out.status.success() {
        md += &format!("\n**The memory process failed: {}**\n", out.status);
    }
    md
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

fn cell(v: &[f64], decimals: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{:.*} ({:.*}–{:.*})",
        decimals,
        median(v),
        decimals,
        lo,
        decimals,
        hi
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        memory_child().await;
        return;
    }
    let rounds: usize = std::env::var("MQGATE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .clamp(1, 9);
    let sample = message(123_456, QoS::AtLeastOnce);
    println!(
        "Messages: topic {} B, JSON payload {} B (e.g. `{}`), appended in batches of {BATCH}.\n",
        sample.topic.len(),
        sample.payload.len(),
        String::from_utf8_lossy(&sample.payload)
    );
    let mosq_dir = scratch("mosquitto");
    let lines = mosq_dir.join("lines.txt");
    {
        let mut f = std::io::BufWriter::new(File::create(&lines).expect("lines file"));
        for i in 0..PUB_RUN {
            f.write_all(&message(i, QoS::AtLeastOnce).payload)
                .expect("write");
            f.write_all(b"\n").expect("write");
        }
    }
    let (mut offline, mut online, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let (mut d1, mut d2, mut m1, mut m2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        offline.push(append_phase(Synchronous::Normal, false).await);
        online.push(append_phase(Synchronous::Normal, true).await);
        full.push(append_phase(Synchronous::Full, false).await);
        // Default log types: no line per packet while it is timed.
        let broker = Mosquitto::start_with("mosquitto", false, |_| {
            "allow_anonymous true\nset_tcp_nodelay true".into()
        });
        // Alternate which goes first, ours or Mosquitto's client.
        if round % 2 == 0 {
            d1.push(drain_phase(broker.port, QoS::AtLeastOnce, round).await);
            m1.push(mosquitto_pub(broker.port, QoS::AtLeastOnce, &lines).await);
            d2.push(drain_phase(broker.port, QoS::ExactlyOnce, round).await);
            m2.push(mosquitto_pub(broker.port, QoS::ExactlyOnce, &lines).await);
        } else {
            m1.push(mosquitto_pub(broker.port, QoS::AtLeastOnce, &lines).await);
            d1.push(drain_phase(broker.port, QoS::AtLeastOnce, round).await);
            m2.push(mosquitto_pub(broker.port, QoS::ExactlyOnce, &lines).await);
            d2.push(drain_phase(broker.port, QoS::ExactlyOnce, round).await);
        }
        drop(broker);
    }
    let _ = std::fs::remove_dir_all(&mosq_dir);

    println!("Median of {rounds} round(s), range in brackets.\n");
    println!("## Append ({APPENDS} QoS 1 messages)\n");
    println!(
        "| case | messages/s | write() bytes/msg | disk bytes/msg (write_bytes) | file bytes/msg |"
    );
    println!("|---|---:|---:|---:|---:|");
    let col = |v: &[AppendFigures], f: fn(&AppendFigures) -> f64, d| {
        cell(&v.iter().map(f).collect::<Vec<_>>(), d)
    };
    for (name, v) in [
        ("offline, synchronous normal", &offline),
        ("online (an output reads and marks done), normal", &online),
        ("offline, synchronous full", &full),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            col(v, |a| a.rate, 0),
            col(v, |a| a.wchar, 0),
            col(v, |a| a.write_bytes, 0),
            col(v, |a| a.file, 0)
        );
    }
    println!("\n## Drain of a {BACKLOG}-message backlog to Mosquitto\n");
    println!("| client | QoS | messages/s | client CPU µs/msg | ratio to mosquitto_pub |");
    println!("|---|---|---:|---:|---:|");
    let rates = |v: &[Drain]| v.iter().map(|d| d.rate).collect::<Vec<_>>();
    let cpus = |v: &[Drain]| v.iter().map(|d| d.cpu_us).collect::<Vec<_>>();
    for (qos, ours, theirs) in [(1, &d1, &m1), (2, &d2, &m2)] {
        let ratio = median(&rates(ours)) / median(&rates(theirs));
        println!(
            "| mqgate upstream output (store → broker) | {qos} | {} | {} | {ratio:.2}× |",
            cell(&rates(ours), 0),
            cell(&cpus(ours), 1)
        );
        println!(
            "| `mosquitto_pub -l -M 1024`, {} × {PUB_RUN} lines | {qos} | {} | {} | 1× |",
            BACKLOG / PUB_RUN,
            cell(&rates(theirs), 0),
            cell(&cpus(theirs), 1)
        );
    }
    println!("\n## Memory while holding a backlog (a separate process, nothing reading)\n");
    print!("{}", memory_phase());
}
