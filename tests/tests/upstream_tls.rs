//! The upstream output over TLS against a real Mosquitto that wants a client
//! certificate and a password: `mqgate run` with replay sources and a serial port
//! on a pseudo-terminal, configured only through its gateway file, checked by what
//! a TLS subscriber receives, by Mosquitto's log and by mqgate's own log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mqgate_tests::mqgate::{dry_run, embedded_broker_port, start_mqgate_run, workspace_file};
use serialport::TTYPort;
use test_support::mosquitto::{connections, Mosquitto, Msg, Subscriber};
use test_support::mosquitto_tls::{
    mosquitto_password_file, retained_tls, BrokerTls, ClientTls, TlsSubscriber,
};
use test_support::pki::{Ca, CertKey};
use test_support::process::{Line, Proc, Stream};
use test_support::pty::{plug, write_to_port};
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(20);
const GATEWAY_ID: &str = "tls-gw";
const GATEWAY_USER: &str = "gateway-user";
const GATEWAY_PASSWORD: &str = "gateway pass: 7&x";
const READER_USER: &str = "reader";
const READER_PASSWORD: &str = "reader-pass";

/// A replay source and the mapping that publishes its frames.
struct Feed {
    id: &'static str,
    capture: &'static str,
    framing: &'static str,
    script: &'static str,
    topic: &'static str,
    /// Every topic of this feed starts with it.
    topic_start: &'static str,
    qos: u8,
    retain: bool,
}

const GPS: Feed = Feed {
    id: "gps",
    capture: "tests/captures/gps-nmea.log",
    framing: "{ type: lines, nmea_checksum: true, skip_comments: true }",
    script: "scripts/nmea.rhai",
    topic: "gps/{talker}{type}",
    topic_start: "gps/",
    qos: 0,
    retain: false,
};

const JSON: Feed = Feed {
    id: "json-sensor",
    capture: "tests/captures/json-sensor.log",
    framing: "{ type: lines }",
    script: "scripts/json-lines.rhai",
    topic: "sensors/{source}/{name}",
    topic_start: "sensors/json-sensor/",
    qos: 1,
    retain: false,
};

const BINARY: Feed = Feed {
    id: "binary-sensor",
    capture: "tests/captures/binary-sensor.bin",
    framing: "{ type: binary, sync: [0xAA, 0x55], length: { offset: 2, width: 1, adjust: 2 }, \
              checksum: { kind: crc16, algorithm: modbus, endian: little } }",
    script: "scripts/binary-crc.rhai",
    topic: "sensors/{source}/{sensor}",
    topic_start: "sensors/binary-sensor/",
    qos: 2,
    retain: true,
};

/// A CA, the broker's certificate, and client certificates for mqgate and the reader.
struct Pki {
    ca: Ca,
    server: CertKey,
    gateway: CertKey,
    reader: ClientTls,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let ca = Ca::new(dir, "ca");
        let server = ca.server("server");
        let gateway = ca.client("gateway", &format!("/CN={GATEWAY_ID}"));
        let reader = ClientTls {
            ca: ca.cert.clone(),
            client: ca.client("reader", &format!("/CN={READER_USER}")),
            username: READER_USER.into(),
            password: READER_PASSWORD.into(),
        };
        Pki {
            ca,
            server,
            gateway,
            reader,
        }
    }

    /// The broker's settings: clients verified against this CA, both users known.
    fn broker(&self, dir: &Path, server: &CertKey) -> BrokerTls {
        BrokerTls {
            client_ca: self.ca.cert.clone(),
            server: server.clone(),
            password_file: mosquitto_password_file(
                &dir.join("mosquitto.passwd"),
                &[
                    (GATEWAY_USER, GATEWAY_PASSWORD),
                    (READER_USER, READER_PASSWORD),
                ],
            ),
        }
    }
}

/// Writes the mapping of `feed` into the mappings folder.
fn write_mapping(dir: &Scratch, feed: &Feed) {
    dir.write(
        &format!("mappings/{}.yaml", feed.id),
        format!(
            "source: {}\nscript: {}\ntopic: \"{}\"\nqos: {}\nretain: {}\n",
            feed.id,
            workspace_file(feed.script).display(),
            feed.topic,
            feed.qos,
            feed.retain
        ),
    );
}

/// A gateway file: the `upstream:` lines given, the embedded broker when asked,
/// one fast replay source per feed, and, when `gps_link` is given, the serial
/// source `gps` on the pseudo-terminal there. That port stays open (as a gateway's
/// does) so the gateway's input does not end with the replays.
fn gateway_config(
    dir: &Scratch,
    upstream: &str,
    embedded: bool,
    replays: &[&Feed],
    gps_link: Option<&Path>,
) -> PathBuf {
    let mut sources = String::new();
    for f in replays {
        write_mapping(dir, f);
        sources.push_str(&format!(
            "  - id: {}\n    type: replay\n    file: {}\n    fast: true\n    framing: {}\n",
            f.id,
            workspace_file(f.capture).display(),
            f.framing
        ));
    }
    if let Some(link) = gps_link {
        write_mapping(dir, &GPS);
        sources.push_str(&format!(
            "  - id: {}\n    type: serial\n    path: {}\n    baud: 4800\n    framing: {}\n",
            GPS.id,
            link.display(),
            GPS.framing
        ));
    }
    let broker = if embedded {
        "broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n"
    } else {
        ""
    };
    dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: {GATEWAY_ID}\n  state_dir: {state}\n\
             {broker}{upstream}\
             status:\n  listen: 127.0.0.1:0\n\
             mappings: {mappings}\n\
             sources:\n{sources}",
            state = dir.path().join("state").display(),
            mappings = dir.path().join("mappings").display(),
        ),
    )
}

/// A pseudo-terminal for the serial source `gps`: its link, and the side to write
/// to (keep it until the end of the test).
fn gps_port(dir: &Scratch) -> (PathBuf, TTYPort) {
    let link = dir.path().join("ttyGPS");
    let master = plug(&link);
    (link, master)
}

/// `upstream:` lines for the TLS broker on `port` trusting `ca`, with mqgate's
/// certificate when given; `password` is the line that gives the password
/// (`password: ...` or `password_file: ...`).
fn upstream_yaml(port: u16, ca: &Path, client: Option<&CertKey>, password: &str) -> String {
    let client = client.map_or(String::new(), |c| {
        format!(
            "  cert_file: {}\n  key_file: {}\n",
            c.cert.display(),
            c.key.display()
        )
    });
    format!(
        "upstream:\n  url: mqtts://127.0.0.1:{port}\n  client_id: {GATEWAY_ID}\n\
         \x20 username: {GATEWAY_USER}\n  {password}\n\
         \x20 ca_file: {}\n{client}  keep_alive_secs: 5\n",
        ca.display(),
    )
}

/// The `upstream:` line that gives mqgate's password inline.
fn password_line() -> String {
    format!("password: \"{GATEWAY_PASSWORD}\"")
}

/// The messages mqgate makes of each feed's capture, as a subscriber that is
/// already there gets them (retain clear, [MQTT-3.3.1-9]).
fn expected(config: &Path, feed: &Feed) -> Vec<Msg> {
    let msgs = dry_run(config, feed.id, &workspace_file(feed.capture));
    assert!(!msgs.is_empty(), "{} makes no message", feed.id);
    assert!(
        msgs.iter()
            .all(|m| m.topic.starts_with(feed.topic_start) && m.qos == feed.qos),
        "{}: {msgs:?}",
        feed.id
    );
    msgs.into_iter()
        .map(|m| Msg { retain: false, ..m })
        .collect()
}

/// Waits for a line of mqgate's log that names the upstream (address and port) and
/// satisfies `cause`; returns it.
fn upstream_log_line(gw: &Proc, port: u16, what: &str, cause: impl Fn(&str) -> bool) -> String {
    let port = port.to_string();
    gw.wait_until(what, WAIT, |lines| {
        lines
            .iter()
            .filter(|l| l.stream == Stream::Stderr)
            .map(|l| l.text.as_str())
            .find(|l| l.contains("127.0.0.1") && l.contains(&port) && cause(&l.to_lowercase()))
            .map(str::to_string)
    })
}

/// Stops mqgate with SIGTERM; it must exit 0 on its own.
fn stop(mut gw: Proc) {
    gw.signal(libc::SIGTERM);
    let exit = gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "output:\n{}", gw.transcript());
}

/// The subscriber's messages once they satisfy `done`, or once `timeout` has passed.
fn settle(sub: &TlsSubscriber, timeout: Duration, done: impl Fn(&[Msg]) -> bool) -> Vec<Msg> {
    let deadline = Instant::now() + timeout;
    loop {
        let msgs = sub.messages();
        if done(&msgs) || Instant::now() >= deadline {
            return msgs;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each feed's messages in `got` are exactly the expected ones, in order.
fn assert_feeds(got: &[Msg], feeds: &[&Feed], expected: &[Vec<Msg>]) {
    for (feed, expected) in feeds.iter().zip(expected) {
        let of_feed: Vec<Msg> = got
            .iter()
            .filter(|m| m.topic.starts_with(feed.topic_start))
            .cloned()
            .collect();
        assert_eq!(
            of_feed.len(),
            expected.len(),
            "source {} (QoS {}): {} of {} messages arrived",
            feed.id,
            feed.qos,
            of_feed.len(),
            expected.len()
        );
        assert_eq!(&of_feed, expected, "messages of source {}", feed.id);
    }
}

#[test]
fn mqtts_with_a_client_certificate_and_a_password_file_delivers_every_message_at_its_qos() {
    let dir = Scratch::new("tls-up");
    let pki = Pki::new(dir.path());
    let broker = Mosquitto::start_tls(&pki.broker(dir.path(), &pki.server));
    let sub = TlsSubscriber::start("tls sub", broker.port, &pki.reader, "#");
    // The password file's line end is not part of the password.
    let password_file = dir.write("upstream-password", format!("{GATEWAY_PASSWORD}\n"));
    let upstream = upstream_yaml(
        broker.port,
        &pki.ca.cert,
        Some(&pki.gateway),
        &format!("password_file: {}", password_file.display()),
    );
    // QoS 1 and 2 replayed at once, while mqgate is still connecting; QoS 0 from the
    // serial port once it is connected (QoS 0 is not kept for an output that is down).
    let (link, gps) = gps_port(&dir);
    let config = gateway_config(&dir, &upstream, false, &[&JSON, &BINARY], Some(&link));
    let feeds = [&GPS, &JSON, &BINARY];
    let expected: Vec<Vec<Msg>> = feeds.iter().map(|f| expected(&config, f)).collect();
    let total: usize = expected.iter().map(Vec::len).sum();

    let gw = start_mqgate_run(&config);
    let status_topic = format!("mqgate/{GATEWAY_ID}/status");
    let is_data = |m: &Msg| m.topic != status_topic;
    sub.wait_until("the birth message", WAIT, |m| {
        m.iter().any(|m| !is_data(m) && m.payload == b"online")
    });
    let capture = std::fs::read(workspace_file(GPS.capture)).expect("read the capture");
    let _gps = write_to_port(gps, capture, WAIT);
    settle(&sub, WAIT, |m| {
        m.iter().filter(|m| is_data(m)).count() >= total
    });
    // Nothing more comes: no duplicate, no stray message.
    std::thread::sleep(Duration::from_millis(500));
    let got = sub.messages();
    assert_feeds(&got, &feeds, &expected);
    assert_eq!(got.iter().filter(|m| is_data(m)).count(), total, "{got:?}");
    let statuses: Vec<String> = got.iter().filter(|m| !is_data(m)).map(Msg::text).collect();
    assert_eq!(statuses, ["online"], "birth message");
    let online = retained_tls(broker.port, &pki.reader, &status_topic).expect("a retained status");
    assert!(online.retain && online.text() == "online", "{online:?}");
    // Mosquitto saw mqgate's client id and user name.
    broker.proc().wait_for_line(
        Stream::Stderr,
        &[
            "New client connected from 127.0.0.1",
            &format!("as {GATEWAY_ID} "),
            &format!("u'{GATEWAY_USER}'"),
        ],
        WAIT,
    );
    stop(gw);
    let offline = retained_tls(broker.port, &pki.reader, &status_topic).expect("a retained status");
    assert!(offline.retain && offline.text() == "offline", "{offline:?}");
}

#[test]
fn a_wrong_password_is_logged_and_retried_with_back_off_while_the_embedded_broker_serves() {
    let dir = Scratch::new("tls-badpass");
    let pki = Pki::new(dir.path());
    let broker = Mosquitto::start_tls(&pki.broker(dir.path(), &pki.server));
    let password_file = dir.write("upstream-password", "not the password\n");
    let upstream = upstream_yaml(
        broker.port,
        &pki.ca.cert,
        Some(&pki.gateway),
        &format!("password_file: {}", password_file.display()),
    );
    let (link, _gps) = gps_port(&dir);
    let config = gateway_config(&dir, &upstream, true, &[&BINARY], Some(&link));
    let expected = expected(&config, &BINARY);

    let mut gw = start_mqgate_run(&config);
    // Four attempts, as Mosquitto accepted them, and when.
    let mut seen: Vec<Instant> = Vec::new();
    broker
        .proc()
        .wait_until("four connection attempts", WAIT, |lines: &[Line]| {
            let n = connections(lines);
            while seen.len() < n {
                seen.push(Instant::now());
            }
            (n >= 4).then_some(())
        });
    upstream_log_line(&gw, broker.port, "the refusal in the log", |l| {
        ["not authori", "notauthorized", "bad user name or password"]
            .iter()
            .any(|cause| l.contains(cause))
    });
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        seen[3] - seen[0] >= Duration::from_secs(1),
        "four attempts within {:?}: a busy loop ({gaps:?})",
        seen[3] - seen[0]
    );
    assert!(
        gaps[2] > gaps[0],
        "the wait between attempts does not grow: {gaps:?}"
    );
    assert!(
        !broker.transcript().contains("New client connected"),
        "{}",
        broker.transcript()
    );
    assert!(gw.try_exited().is_none(), "mqgate run keeps running");

    // The embedded broker has every reading; the last of each sensor is retained.
    let port = embedded_broker_port(&gw, WAIT);
    let embedded = Subscriber::start("embedded sub", port, "sensors/#");
    let last_of = |msgs: &[Msg], topic: &str| msgs.iter().rev().find(|m| m.topic == topic).cloned();
    let topics: Vec<String> = {
        let mut t: Vec<String> = expected.iter().map(|m| m.topic.clone()).collect();
        t.sort();
        t.dedup();
        t
    };
    let got = embedded.wait_until("the last reading of each sensor", WAIT, |m| {
        topics
            .iter()
            .all(|t| last_of(m, t).map(|m| m.payload) == last_of(&expected, t).map(|m| m.payload))
    });
    assert!(got.iter().all(|m| m.qos == 2), "{got:?}");
    stop(gw);
}

/// mqgate with `client` as its certificate, against a broker showing `server`: the
/// handshake fails, mqgate logs a line about the certificate, tries again, and keeps
/// running without ever connecting.
fn assert_refused_with_a_certificate_log_line_and_retried(
    dir: &Scratch,
    pki: &Pki,
    server: &CertKey,
    client: Option<&CertKey>,
) {
    let broker = Mosquitto::start_tls(&pki.broker(dir.path(), server));
    let upstream = upstream_yaml(broker.port, &pki.ca.cert, client, &password_line());
    let (link, _gps) = gps_port(dir);
    let config = gateway_config(dir, &upstream, false, &[&JSON], Some(&link));

    let mut gw = start_mqgate_run(&config);
    upstream_log_line(&gw, broker.port, "a log line about the certificate", |l| {
        l.contains("certificate")
    });
    broker
        .proc()
        .wait_until("a second attempt", WAIT, |lines: &[Line]| {
            (connections(lines) >= 2).then_some(())
        });
    assert!(gw.try_exited().is_none(), "mqgate run keeps running");
    assert!(
        !broker.transcript().contains("New client connected"),
        "{}",
        broker.transcript()
    );
    stop(gw);
}

#[test]
fn a_server_certificate_from_another_ca_is_refused_with_a_log_line_about_the_certificate() {
    let dir = Scratch::new("tls-otherca");
    let pki = Pki::new(dir.path());
    let other = Ca::new(dir.path(), "other-ca");
    let impostor = other.server("impostor");
    assert_refused_with_a_certificate_log_line_and_retried(
        &dir,
        &pki,
        &impostor,
        Some(&pki.gateway),
    );
}

#[test]
fn a_missing_client_certificate_is_logged_with_the_broker_refusal_and_retried() {
    let dir = Scratch::new("tls-nocert");
    let pki = Pki::new(dir.path());
    assert_refused_with_a_certificate_log_line_and_retried(&dir, &pki, &pki.server, None);
}

/// When the input ends the output still finishes every exchange before it closes
/// the connection: closing right after queueing the last publishes loses QoS 1 and 2
/// messages that Mosquitto had not acknowledged yet.
#[test]
fn when_the_replays_end_every_message_still_reaches_the_tls_broker() {
    let dir = Scratch::new("tls-end");
    let pki = Pki::new(dir.path());
    let broker = Mosquitto::start_tls(&pki.broker(dir.path(), &pki.server));
    let sub = TlsSubscriber::start("tls sub", broker.port, &pki.reader, "sensors/#");
    let upstream = upstream_yaml(
        broker.port,
        &pki.ca.cert,
        Some(&pki.gateway),
        &password_line(),
    );
    // Only replays: the gateway's input ends once they have played.
    let feeds = [&JSON, &BINARY];
    let config = gateway_config(&dir, &upstream, false, &feeds, None);
    let expected: Vec<Vec<Msg>> = feeds.iter().map(|f| expected(&config, f)).collect();
    let total: usize = expected.iter().map(Vec::len).sum();

    let gw = start_mqgate_run(&config);
    let got = settle(&sub, Duration::from_secs(10), |m| m.len() >= total);
    assert_feeds(&got, &feeds, &expected);
    stop(gw);
}
