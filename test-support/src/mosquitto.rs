//! Debian's Mosquitto as a real broker, and its command line clients:
//! mosquitto_sub as a subscriber whose messages a test reads, mosquitto_pub as a
//! publisher.

use std::ffi::OsStr;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::net::free_port;
use crate::process::{run_to_end, Finished, Line, Proc, Stream};
use crate::scratch::Scratch;

/// Debian's Mosquitto.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// How long Mosquitto, or one of its clients, may take to start or to finish.
const WAIT: Duration = Duration::from_secs(10);

/// One MQTT message as a subscriber saw it.
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

/// A Mosquitto broker on a free loopback port, logging to its stderr; stopped
/// when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    pub port: u16,
    proc: Proc,
    /// Its configuration and whatever the test put beside it; removed after the
    /// broker stopped.
    dir: Scratch,
}

impl Mosquitto {
    /// Anonymous clients, no persistence, one log line per packet.
    pub fn start() -> Mosquitto {
        Mosquitto::start_with("mosquitto", true, |_| "allow_anonymous true".into())
    }

    /// A listener on a free port, no persistence, no limit on messages in flight
    /// or queued, then what `conf` returns (which says at least whether anonymous
    /// clients may connect); `conf` gets the broker's own folder, for files it
    /// refers to. `verbose`: one log line per packet, else Mosquitto's default log
    /// types.
    pub fn start_with(name: &str, verbose: bool, conf: impl Fn(&Path) -> String) -> Mosquitto {
        assert!(
            Path::new(MOSQUITTO).exists(),
            "{MOSQUITTO} is missing: apt-get install mosquitto mosquitto-clients"
        );
        let dir = Scratch::new("mosquitto");
        let log_types = if verbose { "log_type all\n" } else { "" };
        // A port picked free can be taken before Mosquitto binds it: try again then.
        for attempt in 0..3 {
            let port = free_port();
            let file = dir.join(format!("mosquitto-{port}.conf"));
            std::fs::write(
                &file,
                format!(
                    "listener {port} 127.0.0.1\npersistence false\nmax_inflight_messages 0\n\
                     max_queued_messages 0\nlog_dest stderr\n{log_types}{}\n",
                    conf(dir.path())
                ),
            )
            .expect("write the Mosquitto configuration");
            let mut cmd = Command::new(MOSQUITTO);
            cmd.arg("-c").arg(&file);
            let mut proc = Proc::spawn(name, cmd);
            // Waiting for its log instead of probing the port keeps the log free
            // of connections the test did not make.
            let running = proc.wait_until("Mosquitto running or failing", WAIT, |lines| {
                lines.iter().find_map(|l| {
                    if l.text.contains(" running") {
                        Some(true)
                    } else if l.text.contains("Error") {
                        Some(false)
                    } else {
                        None
                    }
                })
            });
            if running && proc.try_exited().is_none() {
                return Mosquitto { port, proc, dir };
            }
            if attempt == 2 {
                panic!("mosquitto did not start:\n{}", proc.transcript());
            }
        }
        unreachable!()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The running broker's output, to wait for log lines.
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// The folder its configuration is in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Mosquitto's log so far.
    pub fn transcript(&self) -> String {
        self.proc.transcript()
    }

    /// Connection attempts so far, successful or not (see [`connections`]).
    pub fn connections(&self) -> usize {
        connections(&self.proc.lines())
    }
}

/// Connection attempts in Mosquitto's log lines. Mosquitto logs each attempt once:
/// `New connection from ...` when it accepted the connection (a TLS handshake that
/// fails later ends in a `Protocol error`), or `Client connection from ... failed`
/// when the handshake already failed while accepting.
pub fn connections(lines: &[Line]) -> usize {
    lines
        .iter()
        .filter(|l| {
            l.text.contains("New connection from")
                || (l.text.contains("Client connection from") && l.text.contains("failed"))
        })
        .count()
}

/// A running `mosquitto_sub -d`, printing each message as a line; killed when
/// dropped.
#[derive(Debug)]
pub struct Subscriber {
    proc: Proc,
    name: String,
}

const MARK: &str = "MSG\t";
/// mosquitto_sub's `-F` format: [`MARK`], retain flag, QoS, topic, payload in hex.
const FORMAT: &str = "MSG\t%r\t%q\t%t\t%x";

impl Subscriber {
    /// Connects to `127.0.0.1:port`, subscribes to `filter` at QoS 2 and returns
    /// once the broker has acknowledged the subscription.
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
        let mut sub = Subscriber::spawn_with(name, args, &["-q", "2"]);
        sub.wait_suback();
        sub
    }

    /// Runs mosquitto_sub on `127.0.0.1:port` with `args` (filters, QoS, ...) and
    /// returns once the broker has acknowledged the subscription.
    pub fn subscribed(port: u16, args: &[&str]) -> Subscriber {
        let mut sub = Subscriber::spawn(port, args);
        sub.wait_suback();
        sub
    }

    /// Runs mosquitto_sub on `127.0.0.1:port` with `args` without waiting for anything.
    pub fn spawn(port: u16, args: &[&str]) -> Subscriber {
        let port = port.to_string();
        let connect = ["-h", "127.0.0.1", "-p", &port];
        Subscriber::spawn_with("mosquitto_sub", connect.iter().chain(args), &[])
    }

    fn spawn_with<I, S>(name: &str, args: I, more: &[&str]) -> Subscriber
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        // Line-buffered: piped stdout would otherwise hold lines until exit.
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "mosquitto_sub"])
            .args(args)
            .args(more)
            .args(["-d", "-F", FORMAT]);
        Subscriber {
            proc: Proc::spawn(name, cmd),
            name: name.to_string(),
        }
    }

    /// Waits for the next `Subscribed (mid: N): a, b` line and returns the codes
    /// the broker granted.
    pub fn wait_suback(&mut self) -> Vec<u8> {
        let line = self.proc.expect_line("Subscribed (mid", WAIT, |l| {
            l.starts_with("Subscribed (mid")
        });
        let codes = line.split("): ").nth(1).unwrap_or("");
        codes
            .split(", ")
            .map(|c| {
                c.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("bad SUBACK line {line}"))
            })
            .collect()
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

    /// The message after those [`Subscriber::next_msg`] returned before, or `None`
    /// at the deadline or when mosquitto_sub ended.
    pub fn next_msg(&mut self, timeout: Duration) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.proc.next_line(left)?;
            if let Some(rest) = line.strip_prefix(MARK) {
                return Some(parse_line(rest));
            }
        }
    }

    /// The next message; panics with the output when none arrives within 10 s.
    pub fn expect_msg(&mut self) -> Msg {
        match self.next_msg(WAIT) {
            Some(m) => m,
            None => panic!(
                "{}: no message within {WAIT:?}\n{}",
                self.name,
                self.proc.transcript()
            ),
        }
    }

    /// Messages until one on `topic` arrives (each within 10 s); returns those
    /// before it and that one. With a marker published last, this shows that
    /// nothing else came first.
    pub fn msgs_until_topic(&mut self, topic: &str) -> (Vec<Msg>, Msg) {
        let mut before = Vec::new();
        loop {
            let m = self.expect_msg();
            if m.topic == topic {
                return (before, m);
            }
            before.push(m);
        }
    }

    /// The mosquitto_sub process.
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// The mosquitto_sub process, e.g. to kill it.
    pub fn proc_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// Its output so far, for failure messages.
    pub fn transcript(&self) -> String {
        self.proc.transcript()
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
    let done = run_to_end(name, cmd, WAIT);
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

/// Runs `mosquitto_pub` on `127.0.0.1:port` with `args` and asserts it succeeded.
pub fn mosquitto_pub(port: u16, args: &[&str]) {
    let done = mosquitto_pub_status(port, args);
    assert!(
        done.status.success(),
        "mosquitto_pub {args:?} failed: {}\n{}",
        done.status,
        done.stderr
    );
}

/// Runs `mosquitto_pub` on `127.0.0.1:port` with `args` to its end (killed after
/// 10 s), whatever its exit status.
pub fn mosquitto_pub_status(port: u16, args: &[&str]) -> Finished {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    run_to_end("mosquitto_pub", cmd, WAIT)
}
