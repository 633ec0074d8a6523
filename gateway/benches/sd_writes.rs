//! What the store writes to the disk at the rates a Pi really sees: `mqgate run`
//! (the release binary) with a replay source that plays ~45-byte JSON lines at 1,
//! 10, 100 and 1,000 a second for a fixed time, mapped as they are to a Mosquitto
//! upstream at QoS 1; once with the upstream up throughout ("online") and once with
//! it stopped for the middle third of the run ("outage"), each in both durability
//! modes of the source (`on_receipt`, `write_behind` with its journal in /dev/shm
//! and the default window). For each run it prints the
//! bytes the gateway process wrote (`write_bytes` minus `cancelled_write_bytes` of
//! `/proc/PID/io`, from once it started, after a `sync`, to once every message
//! was acknowledged, after another `sync`), per
//! message; the fsync and fdatasync calls per message (counted by `strace -c`
//! attached to the process); and the messages the upstream acknowledged.
//!
//! `cargo bench -p mqgate --bench sd_writes` (`MQGATE_BENCH_SECONDS=N` shortens
//! every run to N seconds; `MQGATE_BENCH_ONLY=write_behind/outage` runs only the
//! runs whose `durability/upstream` contains that). Loopback only; every run is bounded in time.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mqgate::capture::{CaptureHeader, CaptureWriter};
use test_support::http;
use test_support::net::{free_port, wait_for_port};
use test_support::process::{Proc, Stream};

const MQGATE: &str = env!("CARGO_BIN_EXE_mqgate");
/// Longest wait for the last acknowledgement after the capture ended.
const SETTLE: Duration = Duration::from_secs(60);

struct Upstream {
    child: Child,
    port: u16,
    conf: PathBuf,
}

impl Upstream {
    fn start(dir: &Path, port: u16) -> Upstream {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_inflight_messages 0\nmax_queued_messages 0\nlog_dest none\n"
            ),
        )
        .expect("mosquitto.conf");
        Upstream::spawn(conf, port)
    }

    fn spawn(conf: PathBuf, port: u16) -> Upstream {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts (apt-get install mosquitto)");
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "mosquitto listens"
        );
        Upstream { child, port, conf }
    }

    fn stop(mut self) -> (PathBuf, u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.conf, self.port)
    }
}

/// A capture of one ~45-byte JSON line every 1/`rate` s for `seconds` s.
fn capture(path: &Path, rate: u32, seconds: u32) -> usize {
    let file = std::fs::File::create(path).expect("the capture file");
    let mut w = CaptureWriter::new(file, CaptureHeader::default()).expect("a capture");
    let n = (rate * seconds) as usize;
    for i in 0..n {
        let at = Duration::from_secs_f64(i as f64 / f64::from(rate));
        let line = format!(
            "{{\"seq\":{i},\"t\":{}.{},\"h\":{}}}\n",
            20 + i % 5,
            i % 10,
            40 + i % 20
        );
        w.write_chunk(at, line.as_bytes()).expect("a chunk");
    }
    w.flush().expect("flush");
    n
}

/// What the process wrote, less what it did not need to (pages of files removed
/// before they were written back).
fn io_written(pid: u32) -> u64 {
    let io = common::proc_io(&pid.to_string());
    io.write_bytes.saturating_sub(io.cancelled)
}

fn status(addr: SocketAddr) -> serde_json::Value {
    let r = http::get(addr, "/api/status", Duration::from_secs(5));
    serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null)
}

struct Run {
    messages: usize,
    acked: u64,
    written: u64,
    syncs: u64,
    depth: u64,
}

fn run(durability: &str, mode: &str, rate: u32, seconds: u32) -> Run {
    let dir = std::env::temp_dir().join(format!(
        "mqgate-sd-writes-{}-{durability}-{mode}-{rate}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("mappings")).expect("scratch");
    let messages = capture(&dir.join("sensor.cap"), rate, seconds);
    let port = free_port();
    let mut upstream = Some(Upstream::start(&dir, port));
    let config = dir.join("mqgate.yaml");
    std::fs::write(
        &config,
        format!(
            "gateway:\n  id: bench\n  state_dir: state\nupstream:\n  url: mqtt://127.0.0.1:{port}\n\
             store:\n  durability: {durability}\n\
             status:\n  listen: 127.0.0.1:0\nlog:\n  level: warn\nmappings: mappings\n\
             sources:\n  - id: sensor\n    type: replay\n    file: sensor.cap\n    framing:\n      type: lines\n"
        ),
    )
    .expect("mqgate.yaml");
    let mut cmd = Command::new(MQGATE);
    cmd.arg("run").arg("--config").arg(&config);
    let mut gw = Proc::spawn("mqgate", &mut cmd);
    let line = gw.wait_for_line(
        Stream::Stdout,
        &["status page on http://"],
        Duration::from_secs(30),
    );
    let addr: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|a| a.trim().trim_end_matches('/').parse().ok())
        .expect("the status address");
    let pid = gw.pid();
    // What starting wrote (creating the store file) is not the run's: written
    // back now and left out.
    let _ = Command::new("sync").status();
    let at_start = io_written(pid);
    let strace_out = dir.join("strace.txt");
    let mut strace = Command::new("strace")
        .args(["-f", "-c", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&strace_out)
        .arg("-p")
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok();
    let started = Instant::now();
    let length = Duration::from_secs(u64::from(seconds));
    if mode == "outage" {
        std::thread::sleep(length / 3);
        let (conf, port) = upstream.take().expect("running").stop();
        std::thread::sleep(length / 3);
        upstream = Some(Upstream::spawn(conf, port));
    }
    // Until the capture played and every message was acknowledged.
    let deadline = started + length + SETTLE;
    let (mut acked, mut depth) = (0, u64::MAX);
    while Instant::now() < deadline {
        let s = status(addr);
        acked = s["outputs"]
            .as_array()
            .and_then(|o| o.iter().find(|x| x["name"] == "upstream"))
            .and_then(|o| o["published"].as_u64())
            .unwrap_or(0);
        depth = s["store"]["depth"].as_u64().unwrap_or(u64::MAX);
        let finished = s["sources"][0]["state"] == "finished";
        if finished && acked >= messages as u64 && depth == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("sync").status();
    let written = io_written(pid) - at_start;
    if let Some(s) = &mut strace {
        // SAFETY: a signal to a child process of ours.
        unsafe { libc::kill(s.id() as i32, libc::SIGINT) };
        let _ = s.wait();
    }
    let syncs = std::fs::read_to_string(&strace_out)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("fsync") || l.contains("fdatasync"))
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        .sum();
    gw.signal(libc::SIGTERM);
    gw.wait_exit(Duration::from_secs(30));
    if let Some(u) = upstream {
        u.stop();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        messages,
        acked,
        written,
        syncs,
        depth,
    }
}

fn main() {
    let short: Option<u32> = std::env::var("MQGATE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    println!("| durability | upstream | rate | messages | acknowledged | written per message | fsyncs per message | depth at the end |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (durability, mode) in [
        ("write_behind", "online"),
        ("on_receipt", "online"),
        ("write_behind", "outage"),
        ("on_receipt", "outage"),
    ] {
        let only = std::env::var("MQGATE_BENCH_ONLY").unwrap_or_default();
        if !format!("{durability}/{mode}").contains(&only) {
            continue;
        }
        for (rate, seconds) in [(1, 60), (10, 30), (100, 30), (1000, 20)] {
            let seconds = short.unwrap_or(seconds);
            let r = run(durability, mode, rate, seconds);
            println!(
                "| {durability} | {mode} | {rate}/s | {} | {} | {:.0} bytes | {:.2} | {} |",
                r.messages,
                r.acked,
                r.written as f64 / r.messages as f64,
                r.syncs as f64 / r.messages as f64,
                r.depth
            );
        }
    }
}
