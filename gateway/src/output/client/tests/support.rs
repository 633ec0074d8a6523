//! Shared test helpers: brokers to talk to, a window-driven publisher, a subscriber, waits.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::output::client::{Ack, ClientOptions, Connection, QoS};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a test watches for something that should NOT happen.
pub const QUIET: Duration = Duration::from_millis(500);

/// Await `fut`, failing the test if it takes longer than `WAIT`.
pub async fn wait_for<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// A name nobody else in this test process uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Client options for a plain-TCP broker at `addr`.
pub fn options(addr: SocketAddr, client_id: &str) -> ClientOptions {
    let mut o = ClientOptions::new(addr.ip().to_string(), addr.port(), client_id);
    o.connect_timeout = WAIT;
    o
}

pub async fn connect(opts: &ClientOptions) -> (Connection, bool) {
    match wait_for("CONNACK", Connection::connect(opts)).await {
        Ok(c) => c,
        Err(e) => panic!("connect to {}:{} failed: {e}", opts.host, opts.port),
    }
}

/// The packet id the store gives row `id` (1-based).
pub fn pkid(id: u32) -> u16 {
    ((id - 1) % 65535 + 1) as u16
}

/// Publish messages `1..=count` to `topic` (payload: the number), at most
/// `window` unacknowledged at once, answering PUBREC with PUBREL. Returns the
/// packet ids of the final acknowledgements in the order they came.
pub async fn publish_window(
    conn: &mut Connection,
    topic: &str,
    count: u32,
    window: u32,
    qos: QoS,
) -> Vec<u16> {
    let mut sent = 0u32;
    let mut done = Vec::with_capacity(count as usize);
    // Each turn takes one acknowledgement; QoS 2 has two per message.
    for _ in 0..count * 2 {
        if done.len() == count as usize {
            break;
        }
        while sent < count && sent - (done.len() as u32) < window {
            sent += 1;
            conn.publish(
                pkid(sent),
                topic,
                sent.to_string().as_bytes(),
                qos,
                false,
                false,
            );
        }
        match wait_for("an acknowledgement", conn.next()).await {
            Ok(Ack::PubAck(id) | Ack::PubComp(id)) => done.push(id),
            Ok(Ack::PubRec(id)) => conn.pubrel(id),
            Err(e) => panic!("connection failed after {} acks: {e}", done.len()),
        }
    }
    done
}

/// The ids `1..=count` as packet ids.
pub fn expected_pkids(count: u32) -> Vec<u16> {
    (1..=count).map(pkid).collect()
}

/// Collect payloads from a channel until `count` arrived, then watch `QUIET` for more.
pub async fn collect(rx: &mut mpsc::Receiver<Vec<u8>>, count: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(p)) => got.push(String::from_utf8_lossy(&p).into_owned()),
            Ok(None) => break,
            Err(_) => panic!("subscriber got {} of {count} messages", got.len()),
        }
    }
    while let Ok(Some(p)) = tokio::time::timeout(QUIET, rx.recv()).await {
        got.push(String::from_utf8_lossy(&p).into_owned());
    }
    got
}

/// The payloads `1..=count`.
pub fn numbers(count: u32) -> Vec<String> {
    (1..=count).map(|i| i.to_string()).collect()
}

/// A rumqttc subscriber at QoS 2 on `filter`; its payloads come out of the channel.
pub async fn rumqttc_subscriber(addr: SocketAddr, filter: &str) -> mpsc::Receiver<Vec<u8>> {
    let mut o = rumqttc::MqttOptions::new(unique("sub"), addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 16);
    let (tx, rx) = mpsc::channel(100_000);
    let (subscribed, ready) = tokio::sync::oneshot::channel();
    client
        .subscribe(filter, rumqttc::QoS::ExactlyOnce)
        .await
        .expect("queue SUBSCRIBE");
    tokio::spawn(async move {
        let _client = client;
        let mut subscribed = Some(subscribed);
        while let Ok(event) = eventloop.poll().await {
            match event {
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))
                    if tx.send(p.payload.to_vec()).await.is_err() =>
                {
                    return;
                }
                _ => {}
            }
        }
    });
    wait_for("SUBACK", ready)
        .await
        .expect("subscriber ended before SUBACK");
    rx
}

/// An in-process broker-lite on an ephemeral loopback port; its session
/// queues hold a whole test's messages for a subscriber that falls behind.
pub async fn broker_lite() -> broker_lite::Broker {
    let mut config = broker_lite::Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        sys_interval_secs: 0,
        ..broker_lite::Config::default()
    };
    config.limits.max_queued_messages = 100_000;
    broker_lite::Broker::start(config)
        .await
        .expect("broker-lite starts")
}

/// A scratch directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(prefix: &str) -> Scratch {
        let dir = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Debian's Mosquitto on a free loopback port; killed when dropped.
pub struct Mosquitto {
    pub addr: SocketAddr,
    child: Child,
    dir: Scratch,
}

impl Mosquitto {
    /// Start with `extra` appended to a configuration that allows anonymous
    /// clients (unless `extra` says otherwise) and keeps no persistence file.
    pub async fn start(extra: impl Fn(&Path) -> String) -> Mosquitto {
        Mosquitto::start_logging(extra, "log_type all").await
    }

    /// Like `start`, with Mosquitto's default log types (not one line per packet).
    pub async fn start_quiet(extra: impl Fn(&Path) -> String) -> Mosquitto {
        Mosquitto::start_logging(extra, "").await
    }

    async fn start_logging(extra: impl Fn(&Path) -> String, log_types: &str) -> Mosquitto {
        let dir = Scratch::new("mosquitto");
        // Started as root, Mosquitto drops to its own user, which must still write its log here.
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777))
            .expect("chmod scratch dir");
        for _attempt in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let conf = dir.0.join("mosquitto.conf");
            let text = format!(
                "listener {port} 127.0.0.1\npersistence false\nmax_inflight_messages 0\n\
                 max_queued_messages 0\nlog_dest file {}\n{log_types}\n{}\n",
                dir.0.join("log").display(),
                extra(&dir.0)
            );
            std::fs::write(&conf, text).expect("write mosquitto.conf");
            let mut child = Command::new("/usr/sbin/mosquitto")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mosquitto is installed (apt-get install mosquitto)");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            for _ in 0..250 {
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return Mosquitto { addr, child, dir };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.0.join("log")).unwrap_or_default();
        panic!("mosquitto did not start:\n{log}");
    }

    /// Mosquitto's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
