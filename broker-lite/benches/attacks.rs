//! The memory attacks of the adversarial review, against the `broker-lite` binary
//! with its limits at their defaults and with them out of the way (how it was
//! before), in one run: the broker's peak resident memory, the persistence file's
//! size, and meanwhile how long an ordinary client's round trip takes (CONNECT,
//! SUBSCRIBE, PUBLISH at QoS 1 and its delivery, one every 100 ms).
//!
//! `cargo bench -p broker-lite --bench attacks` (loopback only; every attack is
//! bounded in count and in time).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_proto::codec::{
    encode, put_remaining_length, read_packet, Connect, Packet, Publish, QoS, Subscribe,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_broker-lite");
const MIB: usize = 1024 * 1024;
/// Longest any one attack may run.
const ATTACK_LIMIT: Duration = Duration::from_secs(90);

/// Limits out of the way: what the broker did before it had them.
const LIMITS_OFF: &str = "\
limits:
  max_connections: 4000
  max_connections_per_ip: 0
  max_connect_size: 1048576
  max_queued_bytes: 1000000000000
  max_queued_bytes_total: 1000000000000
  max_retained_messages: 1000000000
  max_retained_bytes: 1000000000000
  max_retained_messages_per_user: 1000000000
  max_retained_bytes_per_user: 1000000000000
";

/// The defaults, with only the connection limits raised so that the stalled
/// CONNECTs reach the limit this run is about.
const DEFAULTS: &str = "\
limits:
  max_connections: 4000
  max_connections_per_ip: 0
";

struct Broker {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Broker {
    fn start(name: &str, config: &str) -> Broker {
        let dir = std::env::temp_dir().join(format!("bl-attacks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        let path = dir.join("broker.yaml");
        std::fs::write(&path, config).expect("write the config");
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start broker-lite");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            match std::io::BufRead::read_line(&mut out, &mut line) {
                Ok(n) if n > 0 => {}
                _ => break None,
            }
            if let Some(addr) = line.trim().strip_prefix("listening on ") {
                break addr.parse::<SocketAddr>().ok();
            }
        };
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("broker-lite did not say where it listens");
        };
        std::thread::spawn(move || {
            // Keep the pipe drained.
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        Broker { child, addr, dir }
    }

    fn rss_kib(&self) -> u64 {
        rss_of(self.child.id())
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain MQTT 3.1.1 client over a socket.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
    next_pkid: u16,
}

impl Client {
    async fn connect(addr: SocketAddr, client_id: &str, clean: bool) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            stream,
            buf: BytesMut::new(),
            next_pkid: 0,
        };
        c.send(&Packet::Connect(Connect {
            protocol_level: 4,
            clean_session: clean,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
        }))
        .await?;
        match c.recv().await? {
            Packet::ConnAck(a) if a.code as u8 == 0 => Ok(c),
            other => anyhow::bail!("CONNECT refused: {other:?}"),
        }
    }

    async fn send(&mut self, p: &Packet) -> anyhow::Result<()> {
        let mut out = BytesMut::new();
        encode(p, &mut out);
        self.stream.write_all(&out).await?;
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(p) = read_packet(&mut self.buf, 64 * MIB)? {
                return Ok(p);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                anyhow::bail!("closed");
            }
        }
    }

    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid % u16::MAX + 1;
        self.next_pkid
    }

    async fn subscribe(&mut self, filter: &str) -> anyhow::Result<()> {
        let pkid = self.pkid();
        self.send(&Packet::Subscribe(Subscribe {
            pkid,
            filters: vec![(filter.into(), QoS::AtLeastOnce)],
        }))
        .await?;
        loop {
            if let Packet::SubAck(_) = self.recv().await? {
                return Ok(());
            }
        }
    }

    /// PUBLISH at QoS 1 and wait for its PUBACK.
    async fn publish(&mut self, topic: &str, payload: Bytes, retain: bool) -> anyhow::Result<()> {
        let pkid = self.pkid();
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain,
            topic: topic.into(),
            pkid,
            payload,
        }))
        .await?;
        loop {
            match self.recv().await? {
                Packet::PubAck(id) if id == pkid => return Ok(()),
                Packet::Publish(p) if p.qos != QoS::AtMostOnce => {
                    self.send(&Packet::PubAck(p.pkid)).await?
                }
                _ => {}
            }
        }
    }
}

/// One ordinary client's round trip.
async fn probe_once(addr: SocketAddr, n: u64) -> anyhow::Result<()> {
    let topic = format!("probe/{n}");
    let mut c = Client::connect(addr, &format!("probe-{n}"), true).await?;
    c.subscribe(&topic).await?;
    let pkid = c.pkid();
    c.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: topic.clone(),
        pkid,
        payload: Bytes::from_static(b"are you there"),
    }))
    .await?;
    // Its PUBACK and its delivery, in either order.
    let (mut acked, mut delivered) = (false, false);
    while !(acked && delivered) {
        match c.recv().await? {
            Packet::PubAck(id) if id == pkid => acked = true,
            Packet::Publish(p) if p.topic == topic => {
                c.send(&Packet::PubAck(p.pkid)).await?;
                delivered = true;
            }
            _ => {}
        }
    }
    Ok(())
}

#[derive(Default)]
struct Probes {
    times: Vec<Duration>,
    failed: u64,
}

/// Probe every 100 ms, and sample the broker's memory every 50 ms, until `stop`.
async fn watch(addr: SocketAddr, pid: u32, stop: Arc<AtomicBool>, peak: Arc<AtomicU64>) -> Probes {
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let rss = rss_of(pid);
                peak.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut probes = Probes::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let started = Instant::now();
        match tokio::time::timeout(Duration::from_secs(5), probe_once(addr, n)).await {
            Ok(Ok(())) => probes.times.push(started.elapsed()),
            _ => probes.failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = sampler.await;
    probes
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Three persistent sessions go away; 300 messages of 1 MiB queue for each.
async fn offline_sessions(addr: SocketAddr) -> anyhow::Result<()> {
    for i in 0..3 {
        let mut c = Client::connect(addr, &format!("away-{i}"), false).await?;
        c.subscribe(&format!("q/{i}/#")).await?;
    }
    let mut publisher = Client::connect(addr, "flooder", true).await?;
    for n in 0..300 {
        for i in 0..3 {
            // Distinct payloads: a queued copy cannot share another's memory.
            let payload = Bytes::from(vec![(n + i) as u8; MIB - 64]);
            publisher
                .publish(&format!("q/{i}/{n}"), payload, false)
                .await?;
        }
    }
    Ok(())
}

/// 4,000 retained messages of 256 KiB on as many topics.
async fn retained_flood(addr: SocketAddr, count: usize) -> anyhow::Result<()> {
    let mut publisher = Client::connect(addr, "retainer", true).await?;
    for n in 0..count {
        let payload = Bytes::from(vec![n as u8; 256 * 1024]);
        publisher.publish(&format!("r/{n}"), payload, true).await?;
    }
    Ok(())
}

/// 1,000 connections each announce a CONNECT of 1 MiB and send most of it.
async fn stalled_connects(addr: SocketAddr) -> anyhow::Result<Vec<TcpStream>> {
    let mut held = Vec::new();
    let mut header = BytesMut::from(&[0x10u8][..]);
    put_remaining_length(&mut header, MIB - 8);
    let body = vec![0u8; MIB - 64 * 1024];
    for _ in 0..1000 {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(&header).await?;
        // A refused connection is closed by the broker: the write fails or is lost.
        let _ = tokio::time::timeout(Duration::from_millis(200), s.write_all(&body)).await;
        held.push(s);
    }
    Ok(held)
}

struct Row {
    attack: &'static str,
    limits: &'static str,
    peak_mib: f64,
    file_mib: Option<f64>,
    probes: Probes,
    took: Duration,
    outcome: String,
}

async fn run_attack(attack: &'static str, limits: &'static str, config: &str) -> Row {
    let persistence = attack == "retained, persisted";
    let config = if persistence {
        format!("{config}persistence:\n  file: broker.db\n")
    } else {
        config.to_string()
    };
    let broker = Broker::start(attack.split(',').next().unwrap_or("x").trim(), &config);
    let (addr, pid) = (broker.addr, broker.child.id());
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(broker.rss_kib()));
    let watcher = tokio::spawn(watch(addr, pid, stop.clone(), peak.clone()));
    let started = Instant::now();
    let outcome = tokio::time::timeout(ATTACK_LIMIT, async {
        match attack {
            "offline sessions" => offline_sessions(addr).await.map(|_| "done".to_string()),
            "retained" => retained_flood(addr, 4000).await.map(|_| "done".into()),
            "retained, persisted" => retained_flood(addr, 500).await.map(|_| "done".into()),
            _ => {
                let held = stalled_connects(addr).await?;
                // Hold them while the memory is sampled.
                tokio::time::sleep(Duration::from_secs(2)).await;
                drop(held);
                Ok("done".into())
            }
        }
    })
    .await
    .unwrap_or_else(|_| Ok("stopped at the time limit".into()))
    .unwrap_or_else(|e| format!("error: {e}"));
    let took = started.elapsed();
    // A little more probing once the attack is over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let probes = watcher.await.expect("the watcher");
    let file_mib = persistence.then(|| {
        std::thread::sleep(Duration::from_millis(500));
        file_size(&broker.dir, "broker.db") as f64 / MIB as f64
    });
    let peak_mib = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    broker.stop();
    Row {
        attack,
        limits,
        peak_mib,
        file_mib,
        probes,
        took,
        outcome,
    }
}

/// The database and its write-ahead log together.
fn file_size(dir: &Path, name: &str) -> u64 {
    [name.to_string(), format!("{name}-wal")]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("| attack | limits | broker peak RSS | persistence file | probe p50 | probe max | probes failed | attack took |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for attack in [
        "offline sessions",
        "retained",
        "retained, persisted",
        "stalled CONNECTs",
    ] {
        for (limits, config) in [("off", LIMITS_OFF), ("defaults", DEFAULTS)] {
            let mut row = run_attack(attack, limits, config).await;
            row.probes.times.sort();
            let p50 = row
                .probes
                .times
                .get(row.probes.times.len() / 2)
                .copied()
                .unwrap_or_default();
            let max = row.probes.times.last().copied().unwrap_or_default();
            println!(
                "| {} | {} | {:.0} MiB | {} | {:.1} ms | {:.1} ms | {} of {} | {:.1} s ({}) |",
                row.attack,
                row.limits,
                row.peak_mib,
                row.file_mib
                    .map_or("–".to_string(), |m| format!("{m:.1} MiB")),
                ms(p50),
                ms(max),
                row.probes.failed,
                row.probes.failed + row.probes.times.len() as u64,
                row.took.as_secs_f64(),
                row.outcome,
            );
        }
    }
}
