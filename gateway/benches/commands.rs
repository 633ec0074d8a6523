//! Commands from MQTT down to a serial device, timed: `mqgate run` (the release
//! binary) with its embedded broker and one serial source on a pseudo-terminal
//! (lines framing, no script: the payload goes as it is), and, in the same run,
//! Mosquitto with `mosquitto_sub` writing what it gets to a pseudo-terminal, the
//! simplest thing that does the same job.
//!
//! A client publishes `c<seq>` commands at QoS 1, paced against the clock at 100 and
//! 1,000 a second, then as fast as a window of 100 in flight allows ("saturation").
//! A reader on the terminal's other side notes when each line's last byte arrived.
//! Latency: from the PUBLISH written to the broker to that byte; CPU: the gateway's
//! (or Mosquitto's plus mosquitto_sub's) from `/proc/PID/stat` over the run, per
//! command. mqgate's results are counted from its status API: every command must
//! have exactly one, `sent`.
//!
//! `cargo bench -p mqgate --bench commands` (`MQGATE_BENCH_SECONDS=N` sets the
//! paced runs' length, default 10; `MQGATE_BENCH_SATURATION=N` the commands of the
//! saturation run, default 50,000). Loopback only; every run is bounded.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mqgate::output::client::{Ack, ClientOptions, Connection, QoS};
use serialport::SerialPort;
use test_support::cpu::cpu_of;
use test_support::http;
use test_support::net::{free_port, wait_for_port};
use test_support::process::{Proc, Stream};
use test_support::pty::plug;
use test_support::scratch::Scratch;

const MQGATE: &str = env!("CARGO_BIN_EXE_mqgate");
/// Longest wait for the last line after the last publish.
const SETTLE: Duration = Duration::from_secs(60);
const WINDOW: usize = 100;

/// When each `c<seq>` line's last byte arrived, read on the terminal's master side.
fn reader(mut master: serialport::TTYPort, count: usize) -> mpsc::Receiver<Vec<Instant>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        master
            .set_timeout(Duration::from_millis(200))
            .expect("a read timeout");
        let mut arrived = vec![None; count];
        let mut seen = 0;
        let mut line = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(600);
        while seen < count && Instant::now() < deadline {
            let n = match master.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                // No reader yet on the other side.
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let now = Instant::now();
            for &b in &buf[..n] {
                if b == b'\n' || b == b'\r' {
                    if let Some(seq) = std::str::from_utf8(&line)
                        .ok()
                        .and_then(|l| l.strip_prefix('c'))
                        .and_then(|s| s.parse::<usize>().ok())
                    {
                        if seq < count && arrived[seq].is_none() {
                            arrived[seq] = Some(now);
                            seen += 1;
                        }
                    }
                    line.clear();
                } else {
                    line.push(b);
                }
            }
        }
        let _ = tx.send(arrived.into_iter().map(|a| a.unwrap_or(deadline)).collect());
    });
    rx
}

/// Publish `count` commands on `topic_of(seq)`: `per_second` paced, or `None` as fast
/// as the window allows. Returns when each PUBLISH was written.
async fn publish(port: u16, count: usize, per_second: Option<f64>, topic: &str) -> Vec<Instant> {
    let opts = ClientOptions::new("127.0.0.1", port, format!("bench-pub-{}", free_port()));
    let (mut conn, _) = Connection::connect(&opts).await.expect("connect");
    let start = Instant::now();
    let mut sent = Vec::with_capacity(count);
    let mut in_flight = 0usize;
    let mut seq = 0usize;
    let mut acked = 0usize;
    while acked < count {
        while seq < count && in_flight < WINDOW {
            if let Some(rate) = per_second {
                let due = start + Duration::from_secs_f64(seq as f64 / rate);
                if Instant::now() < due {
                    break;
                }
            }
            let pkid = (seq % 65_000 + 1) as u16;
            conn.publish(
                pkid,
                topic,
                format!("c{seq}").as_bytes(),
                QoS::AtLeastOnce,
                false,
                false,
            );
            sent.push(Instant::now());
            seq += 1;
            in_flight += 1;
        }
        let next_due = per_second
            .filter(|_| seq < count && in_flight < WINDOW)
            .map(|rate| start + Duration::from_secs_f64(seq as f64 / rate));
        let wait = async {
            match next_due {
                Some(due) => tokio::time::sleep_until(due.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ack = conn.next() => match ack.expect("the broker stays connected") {
                Ack::PubAck(_) => { in_flight -= 1; acked += 1; }
                other => panic!("unexpected {other:?}"),
            },
            _ = wait => {}
        }
    }
    sent
}

struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    per_second: f64,
    cpu_us: f64,
}

fn figures(sent: &[Instant], arrived: &[Instant], cpu: f64) -> Figures {
    let mut lat: Vec<f64> = sent
        .iter()
        .zip(arrived)
        .map(|(s, a)| a.saturating_duration_since(*s).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    let first = sent.first().copied().unwrap_or_else(Instant::now);
    let last = arrived.iter().max().copied().unwrap_or(first);
    Figures {
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        max_ms: q(1.0),
        per_second: sent.len() as f64 / last.duration_since(first).as_secs_f64().max(1e-9),
        cpu_us: cpu / sent.len() as f64 * 1e6,
    }
}

fn print(peer: &str, load: &str, f: &Figures, extra: &str) {
    println!(
        "{peer:<28} {load:<12} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.2} ms  {:>9.0} cmd/s  CPU {:>6.1} µs/cmd  {extra}",
        f.p50_ms, f.p99_ms, f.max_ms, f.per_second, f.cpu_us
    );
}

/// One run through `mqgate run`.
async fn mqgate_run(count: usize, per_second: Option<f64>, load: &str) {
    let dir = Scratch::new("bench-commands");
    let link = dir.path().join("ttyBENCH");
    let master = plug(&link);
    let port = free_port();
    std::fs::create_dir_all(dir.path().join("mappings")).expect("mappings/");
    dir.write(
        "mappings/dev.yaml",
        format!(
            "source: dev\ncommands:\n  topic: \"cmd/{{source}}/#\"\n  max_queued: {count}\n  expire_after: 10m\n"
        ),
    );
    let config = dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: bench\n  state_dir: state\nbroker:\n  listen: 127.0.0.1:{port}\n  sys_interval_secs: 0\n\
             status:\n  listen: 127.0.0.1:0\nlog:\n  level: warn\nmappings: mappings\n\
             sources:\n  - id: dev\n    type: serial\n    path: {}\n    baud: 115200\n    framing: {{ type: lines, line_ending: lf }}\n",
            link.display()
        ),
    );
    let mut cmd = Command::new(MQGATE);
    cmd.args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn");
    let gw = Proc::spawn("mqgate", cmd);
    assert!(
        wait_for_port(port, Duration::from_secs(30)),
        "the broker listens"
    );
    let line = gw.wait_for_line(
        Stream::Stdout,
        &["status page on http://"],
        Duration::from_secs(30),
    );
    let addr: SocketAddr = line
        .rsplit("http://")
        .next()
        .and_then(|a| a.trim().trim_end_matches('/').parse().ok())
        .expect("the status address");
    let ready = Instant::now() + Duration::from_secs(30);
    while status(addr)["sources"][0]["state"] != "connected" {
        assert!(Instant::now() < ready, "the port opens");
        std::thread::sleep(Duration::from_millis(20));
    }
    let arrivals = reader(master, count);
    let cpu0 = cpu_of(gw.pid());
    let sent = publish(port, count, per_second, "cmd/dev/set").await;
    let arrived = arrivals
        .recv_timeout(SETTLE + Duration::from_secs(600))
        .expect("the reader ends");
    let cpu = cpu_of(gw.pid()) - cpu0;
    // Every command has exactly one result, and it is `sent`.
    let deadline = Instant::now() + SETTLE;
    let counts = loop {
        let c = status(addr)["commands"][0].clone();
        let done = c["sent"].as_u64().unwrap_or(0) as usize;
        if done >= count || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut by: HashMap<&str, u64> = HashMap::new();
    for k in [
        "received", "sent", "failed", "expired", "rejected", "dropped",
    ] {
        by.insert(k, counts[k].as_u64().unwrap_or(0));
    }
    let f = figures(&sent, &arrived, cpu);
    print(
        "mqgate (embedded broker)",
        load,
        &f,
        &format!(
            "received {} sent {} failed {} expired {} rejected {}",
            by["received"], by["sent"], by["failed"], by["expired"], by["rejected"]
        ),
    );
    assert_eq!(by["received"] as usize, count, "every command was taken");
    assert_eq!(
        by["sent"] as usize, count,
        "every command has one result, sent"
    );
    drop(gw);
}

/// The same through Mosquitto and `mosquitto_sub > terminal`.
async fn mosquitto_run(count: usize, per_second: Option<f64>, load: &str) {
    let dir = Scratch::new("bench-commands-mosquitto");
    let link = dir.path().join("ttyPEER");
    let master = plug(&link);
    let port = free_port();
    let conf = dir.write(
        "mosquitto.conf",
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_inflight_messages 0\nmax_queued_messages 0\nlog_dest none\n"
        ),
    );
    let broker = Proc::spawn("mosquitto", {
        let mut c = Command::new("mosquitto");
        c.arg("-c").arg(&conf);
        c
    });
    assert!(
        wait_for_port(port, Duration::from_secs(10)),
        "mosquitto listens"
    );
    let tty = std::fs::OpenOptions::new()
        .write(true)
        .open(&link)
        .expect("open the terminal");
    let mut sub = Command::new("mosquitto_sub");
    sub.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-t",
        "cmd/dev/#",
    ])
    .stdout(Stdio::from(tty))
    .stderr(Stdio::null());
    let mut sub = sub.spawn().expect("mosquitto_sub");
    // Subscribed once a first message arrives: wait for the subscription with one.
    wait_subscribed(port);
    let arrivals = reader(master, count);
    let cpu0 = cpu_of(broker.pid()) + cpu_of(sub.id());
    let sent = publish(port, count, per_second, "cmd/dev/set").await;
    let arrived = arrivals
        .recv_timeout(SETTLE + Duration::from_secs(600))
        .expect("the reader ends");
    let cpu = cpu_of(broker.pid()) + cpu_of(sub.id()) - cpu0;
    print(
        "Mosquitto + mosquitto_sub",
        load,
        &figures(&sent, &arrived, cpu),
        "",
    );
    let _ = sub.kill();
    let _ = sub.wait();
    drop(broker);
}

/// mosquitto_sub has subscribed when its client shows in Mosquitto's `$SYS` count;
/// simpler: give it the time a connect and a subscribe take on loopback, checked
/// by a retained-free probe round trip.
fn wait_subscribed(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "$SYS/broker/clients/connected",
                "-C",
                "1",
                "-W",
                "2",
            ])
            .output()
            .expect("mosquitto_sub");
        let n: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        // The probe itself is one of the clients.
        if n >= 2 || Instant::now() > deadline {
            return;
        }
    }
}

fn status(addr: SocketAddr) -> serde_json::Value {
    let r = http::get(addr, "/api/status", Duration::from_secs(5));
    serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null)
}

fn seconds() -> f64 {
    std::env::var("MQGATE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let _ = Path::new(MQGATE);
    let secs = seconds();
    let saturation: usize = std::env::var("MQGATE_BENCH_SATURATION")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    println!("commands down to a pseudo-terminal, QoS 1, {secs} s per paced run");
    for (rate, load) in [(100.0, "100/s"), (1000.0, "1,000/s")] {
        let count = (rate * secs) as usize;
        mqgate_run(count, Some(rate), load).await;
        mosquitto_run(count, Some(rate), load).await;
    }
    mqgate_run(saturation, None, "saturation").await;
    mosquitto_run(saturation, None, "saturation").await;
}
