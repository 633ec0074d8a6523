//! `mqgate run` as a real process: a pseudo-terminal stands in for the serial port,
//! Mosquitto is the upstream broker, mosquitto_sub the subscribers. What they receive
//! is checked against what `mqgate replay --dry-run` makes of the same bytes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mqgate_tests::mqgate::{
    dry_run, embedded_broker_port, gps_mappings, start_mqgate_run, workspace_file,
};
use test_support::mosquitto::{retained, Mosquitto, Msg, Subscriber};
use test_support::process::Stream;
use test_support::pty::{plug, write_to_port};
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(20);
const GATEWAY_ID: &str = "e2e-gw";
const PREFIX: &str = "site-7/";

/// A gateway file with one serial source `gps` on `link` mapped by the files of
/// `mappings`, the embedded broker on a free port, and Mosquitto upstream when
/// `upstream_port` is given.
fn gps_config(dir: &Scratch, link: &Path, upstream_port: Option<u16>, mappings: &Path) -> PathBuf {
    let upstream = upstream_port.map_or(String::new(), |port| {
        format!(
            "upstream:\n  url: mqtt://127.0.0.1:{port}\n  client_id: {GATEWAY_ID}\n  keep_alive_secs: 5\n  topic_prefix: {PREFIX}\n"
        )
    });
    dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: {GATEWAY_ID}\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
             {upstream}\
             status:\n  listen: 127.0.0.1:0\n\
             mappings: {mappings}\n\
             sources:\n  - id: gps\n    type: serial\n    path: {link}\n    baud: 4800\n\
             \x20   reopen: {{ initial_ms: 100, max_ms: 400 }}\n\
             \x20   framing: {{ type: lines, nmea_checksum: true, skip_comments: true }}\n",
            state = dir.path().join("state").display(),
            mappings = mappings.display(),
            link = link.display(),
        ),
    )
}

/// Complete lines of `bytes` that are NMEA sentences with a correct checksum,
/// counted here without mqgate's code.
fn good_sentences(bytes: &[u8]) -> usize {
    let complete = &bytes[..bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)];
    complete
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| l.len() > 4 && l[0] == b'$' && l[l.len() - 3] == b'*')
        .filter(|l| {
            let body = &l[1..l.len() - 3];
            let sum = body.iter().fold(0u8, |a, b| a ^ b);
            std::str::from_utf8(&l[l.len() - 2..])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                == Some(sum)
        })
        .count()
}

fn prefixed(msgs: &[Msg]) -> Vec<Msg> {
    msgs.iter()
        .map(|m| Msg {
            topic: format!("{PREFIX}{}", m.topic),
            ..m.clone()
        })
        .collect()
}

#[test]
fn a_gps_capture_written_to_a_pty_reaches_mosquitto_and_the_embedded_broker_exactly() {
    let dir = Scratch::new("pty-run");
    let mosquitto = Mosquitto::start();
    let upstream = Subscriber::start("upstream sub", mosquitto.port, "#");
    let link = dir.path().join("ttyGPS");
    let master = plug(&link);
    let config = gps_config(&dir, &link, Some(mosquitto.port), &gps_mappings(dir.path()));

    let capture = workspace_file("tests/captures/gps-nmea.log");
    let bytes = std::fs::read(&capture).expect("read the capture");
    let expected = dry_run(&config, "gps", &capture);
    assert_eq!(
        expected.len(),
        good_sentences(&bytes),
        "one message per good sentence"
    );
    assert!(expected.iter().all(|m| m.topic.starts_with("gps/")));

    let mut gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    gw.wait_for_line(Stream::Stderr, &["serial port open"], WAIT);
    let status_topic = format!("{PREFIX}mqgate/{GATEWAY_ID}/status");
    let is_status =
        |m: &Msg, payload: &str| m.topic == status_topic && m.payload == payload.as_bytes();
    upstream.wait_until("the birth message", WAIT, |m| {
        m.iter().any(|m| is_status(m, "online"))
    });
    let embedded = Subscriber::start("embedded sub", port, "#");

    let _master = write_to_port(master, bytes, WAIT);
    let data = |m: &[Msg]| -> Vec<Msg> {
        m.iter()
            .filter(|m| m.topic != status_topic)
            .cloned()
            .collect()
    };
    upstream.wait_until("every message upstream", WAIT, |m| {
        data(m).len() >= expected.len()
    });
    embedded.wait_until("every message on the embedded broker", WAIT, |m| {
        m.len() >= expected.len()
    });
    // Nothing more comes: no duplicate, no stray message.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(embedded.messages(), expected, "embedded broker");
    let up = upstream.messages();
    assert_eq!(data(&up), prefixed(&expected), "upstream broker");
    let statuses: Vec<String> = up
        .iter()
        .filter(|m| m.topic == status_topic)
        .map(Msg::text)
        .collect();
    assert_eq!(statuses, ["online"]);
    let online = retained(mosquitto.port, &status_topic).expect("a retained status");
    assert!(online.retain && online.text() == "online", "{online:?}");

    gw.signal(libc::SIGTERM);
    let exit = gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "output:\n{}", gw.transcript());
    upstream.wait_until("the goodbye message", WAIT, |m| {
        m.iter().any(|m| is_status(m, "offline"))
    });
    let offline = retained(mosquitto.port, &status_topic).expect("a retained status");
    assert!(offline.retain && offline.text() == "offline", "{offline:?}");
}

#[test]
fn mqgate_run_waits_for_a_missing_serial_port_and_reads_it_once_it_appears() {
    let dir = Scratch::new("late-port");
    let link = dir.path().join("ttyLATE");
    let config = gps_config(&dir, &link, None, &gps_mappings(dir.path()));
    let path = link.display().to_string();

    let mut gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    gw.wait_until("two failed opens that name the path", WAIT, |lines| {
        let failed = lines
            .iter()
            .filter(|l| l.stream == Stream::Stderr && l.text.contains(&path))
            .filter(|l| l.text.contains("cannot open"))
            .count();
        (failed >= 2).then_some(())
    });
    assert!(gw.try_exited().is_none(), "mqgate run keeps running");
    let embedded = Subscriber::start("embedded sub", port, "#");

    // A few sentences of the recorded capture, without its comment header.
    let capture = std::fs::read(workspace_file("tests/captures/gps-nmea.log")).expect("capture");
    let sample: Vec<u8> = capture
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| l.first() == Some(&b'$'))
        .take(30)
        .flatten()
        .copied()
        .collect();
    let sample_file = dir.write("sample.log", &sample);
    let expected = dry_run(&config, "gps", &sample_file);
    assert_eq!(expected.len(), good_sentences(&sample));

    let master = plug(&link);
    gw.wait_for_line(Stream::Stderr, &["serial port open", &path], WAIT);
    let _master = write_to_port(master, sample, WAIT);
    embedded.wait_until("the sentences written after the port appeared", WAIT, |m| {
        m.len() >= expected.len()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(embedded.messages(), expected);

    gw.signal(libc::SIGTERM);
    let exit = gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "output:\n{}", gw.transcript());
}

#[test]
fn qos_2_retained_messages_from_a_pty_arrive_in_order_at_qos_2_and_the_last_of_each_topic_stays() {
    let dir = Scratch::new("pty-qos2");
    let mosquitto = Mosquitto::start();
    let upstream = Subscriber::start("upstream sub", mosquitto.port, &format!("{PREFIX}gps/#"));
    let link = dir.path().join("ttyGPS");
    let master = plug(&link);
    // The NMEA decoder with QoS 2 and retain instead of the example's QoS 0.
    let mappings = dir.write(
        "mappings/gps-qos2.yaml",
        format!(
            "source: gps\nscript: {}\ntopic: \"gps/{{talker}}{{type}}\"\nqos: 2\nretain: true\n",
            workspace_file("scripts/nmea.rhai").display()
        ),
    );
    let config = gps_config(
        &dir,
        &link,
        Some(mosquitto.port),
        mappings.parent().expect("folder"),
    );

    let capture = workspace_file("tests/captures/gps-nmea.log");
    let bytes = std::fs::read(&capture).expect("read the capture");
    let expected = dry_run(&config, "gps", &capture);
    assert_eq!(expected.len(), good_sentences(&bytes));
    assert!(
        expected.iter().all(|m| m.qos == 2 && m.retain),
        "{expected:?}"
    );
    // A subscriber that is there when a retained message is published gets it
    // with the retain flag clear [MQTT-3.3.1-9].
    let live: Vec<Msg> = expected
        .iter()
        .map(|m| Msg {
            retain: false,
            ..m.clone()
        })
        .collect();

    let mut gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    gw.wait_for_line(Stream::Stderr, &["serial port open"], WAIT);
    gw.wait_for_line(Stream::Stderr, &["connected upstream"], WAIT);
    let embedded = Subscriber::start("embedded sub", port, "gps/#");
    let _master = write_to_port(master, bytes, WAIT);
    upstream.wait_until("every message upstream", WAIT, |m| m.len() >= live.len());
    embedded.wait_until("every message on the embedded broker", WAIT, |m| {
        m.len() >= live.len()
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(embedded.messages(), live, "embedded broker");
    assert_eq!(upstream.messages(), prefixed(&live), "upstream broker");

    let last_gga = expected
        .iter()
        .rev()
        .find(|m| m.topic == "gps/GPGGA")
        .expect("the capture has GGA sentences");
    let kept = retained(port, "gps/GPGGA").expect("retained on the embedded broker");
    assert_eq!(&kept, last_gga, "embedded broker");
    let kept = retained(mosquitto.port, &format!("{PREFIX}gps/GPGGA")).expect("retained upstream");
    assert_eq!(
        kept,
        prefixed(std::slice::from_ref(last_gga))[0],
        "upstream broker"
    );

    gw.signal(libc::SIGTERM);
    assert_eq!(
        gw.wait_exit(WAIT).code(),
        Some(0),
        "output:\n{}",
        gw.transcript()
    );
}
