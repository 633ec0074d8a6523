//! Mosquitto as a real broker, and mosquitto_sub as a real subscriber.

use std::ffi::OsStr;
use std::fmt;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{run_to_end, Line, Proc, Stream};

/// Debian's Mosquitto.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// One MQTT message as a subscriber saw it (or as `mqgate replay --dry-run` printed it).
#[derive(Clone, PartialEq, Eq)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

impl Msg {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} q{} r{} {:?}",
            self.topic,
            self.qos,
            u8::from(self.retain),
            self.text()
        )
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A Mosquitto broker on a free loopback port; stopped when dropped.
pub struct Mosquitto {
    pub port: u16,
    proc: Proc,
}

impl Mosquitto {
    /// Starts Mosquitto with a configuration file written into `dir`.
    pub fn start(dir: &Path) -> Mosquitto {
        assert!(
            Path::new(MOSQUITTO).exists(),
            "{MOSQUITTO} is missing: apt-get install mosquitto mosquitto-clients"
        );
        // A port picked free can be taken before Mosquitto binds it: try again then.
        for attempt in 0..3 {
            let port = free_port();
            let conf = dir.join(format!("mosquitto-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                     max_inflight_messages 0\nlog_type all\n"
                ),
            )
            .expect("write mosquitto.conf");
            let mut cmd = Command::new(MOSQUITTO);
            cmd.arg("-c").arg(&conf);
            let mut proc = Proc::spawn("mosquitto", cmd);
            if wait_for_port(port, Duration::from_secs(5)) && proc.try_exited().is_none() {
                return Mosquitto { port, proc };
            }
            if attempt == 2 {
                panic!("mosquitto did not start:\n{}", proc.transcript());
            }
        }
        unreachable!()
    }

    /// Mosquitto's log so far.
    pub fn transcript(&self) -> String {
        self.proc.transcript()
    }
}

/// mosquitto_sub subscribed to one filter at QoS 2, printing each message as a line.
pub struct Subscriber {
    proc: Proc,
    name: String,
}

const MARK: &str = "MSG\t";
/// mosquitto_sub's `-F` format: [`MARK`], retain flag, QoS, topic, payload in hex.
const FORMAT: &str = "MSG\t%r\t%q\t%t\t%x";

impl Subscriber {
    /// Connects to `127.0.0.1:port`, subscribes to `filter` and returns once the
    /// broker has acknowledged the subscription.
    pub fn start(name: &str, port: u16, filter: &str) -> Subscriber {
        let port = port.to_string();
        Subscriber::start_with(name, ["-h", "127.0.0.1", "-p", &port, "-t", filter])
    }

    /// Runs mosquitto_sub with `args` (where to connect, with which credentials, and
    /// `-t` for each filter) at QoS 2, and returns once the broker has acknowledged the
    /// subscription.
    pub fn start_with<I, S>(name: &str, args: I) -> Subscriber
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "mosquitto_sub"])
            .args(args)
            .args(["-q", "2", "-d", "-F", FORMAT]);
        let proc = Proc::spawn(name, cmd);
        proc.wait_for_line(
            Stream::Stdout,
            &["received SUBACK"],
            Duration::from_secs(10),
        );
        Subscriber {
            proc,
            name: name.to_string(),
        }
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Msg> {
        parse_all(&self.proc.lines())
    }

    /// Waits until the messages so far satisfy `done`; returns them.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Msg]) -> bool,
    ) -> Vec<Msg> {
        let what = format!("{what} (subscriber {})", self.name);
        self.proc.wait_until(&what, timeout, |lines| {
            let msgs = parse_all(lines);
            done(&msgs).then_some(msgs)
        })
    }
}

fn parse_all(lines: &[Line]) -> Vec<Msg> {
    lines
        .iter()
        .filter(|l| l.stream == Stream::Stdout)
        .filter_map(|l| l.text.strip_prefix(MARK))
        .map(parse_line)
        .collect()
}

fn parse_line(rest: &str) -> Msg {
    let f: Vec<&str> = rest.splitn(4, '\t').collect();
    assert_eq!(f.len(), 4, "unexpected mosquitto_sub line {rest:?}");
    Msg {
        retain: f[0] == "1",
        qos: f[1].parse().expect("qos digit"),
        topic: f[2].to_string(),
        payload: from_hex(f[3]),
    }
}

/// The message retained on `topic`, if any, as a new subscriber at QoS 2 gets it.
pub fn retained(port: u16, topic: &str) -> Option<Msg> {
    let port = port.to_string();
    retained_with(
        "mosquitto_sub --retained-only",
        ["-h", "127.0.0.1", "-p", &port, "-t", topic],
    )
}

/// The first retained message mosquitto_sub run with `args` (where to connect, with which
/// credentials, and `-t` for the topic) gets at QoS 2, if any within 3 s.
pub fn retained_with<I, S>(name: &str, args: I) -> Option<Msg>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(args).args([
        "-q",
        "2",
        "-C",
        "1",
        "-W",
        "3",
        "--retained-only",
        "-F",
        FORMAT,
    ]);
    let done = run_to_end(name, cmd, Duration::from_secs(10));
    done.stdout
        .lines()
        .find_map(|l| l.strip_prefix(MARK))
        .map(parse_line)
}

/// Bytes from hex digits.
pub fn from_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len() & 1 == 0, "odd hex {hex:?}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
        .collect()
}
