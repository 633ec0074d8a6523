//! Message store benchmark (a program, run with `cargo bench -p mqgate --bench store`):
//! 1. append rate in batches of 1,024 with nothing reading ("offline"), and the bytes
//!    written to disk per message (`/proc/self/io`), at `synchronous: normal` and `full`;
//! 2. the same while an output reads and marks every message done at once ("online");
//! 3. memory of a process whose store holds 100,000 and then 1,000,000 messages
//!    (measured in a child process, so that the other phases do not weigh in).
//!
//! The drain of a backlog through the upstream output is the `drain` benchmark.
//! Every phase runs in a fresh scratch folder that is removed afterwards; rounds
//! (`MQGATE_BENCH_ROUNDS`, default 5); the tables give the median and the range.
//! Prints Markdown; every loop is bounded in count and time.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    append_all, batches, cell, config, message, proc_io, scratch, wait_until, BATCH, LIMIT, OUTPUT,
};
use mqgate::config::Synchronous;
use mqgate::message::Message;
use mqgate::store::{Store, StoreStats};
use mqtt_proto::codec::QoS;

const APPENDS: usize = 200_000;
const MEMORY_SMALL: usize = 100_000;
const MEMORY_LARGE: usize = 1_000_000;
const CHILD_ENV: &str = "MQGATE_STORE_BENCH_MEMORY";

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

fn files_size(dir: &Path) -> u64 {
    ["messages.db", "messages.db-wal", "messages.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
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
    let before = proc_io("self");
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
    let after = proc_io("self");
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
    let (mut offline, mut online, mut full) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        offline.push(append_phase(Synchronous::Normal, false).await);
        online.push(append_phase(Synchronous::Normal, true).await);
        full.push(append_phase(Synchronous::Full, false).await);
    }

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
    println!("\n## Memory while holding a backlog (a separate process, nothing reading)\n");
    print!("{}", memory_phase());
}
