//! `mqgate run` with its embedded broker, at systemd's default file descriptor
//! limit (1024, set with `prlimit`), while a flood of half-sent requests hits its
//! status page: the status server keeps to its own connection limit, so the
//! broker still accepts MQTT clients, the gateway's messages still reach them, an
//! open `/events` stream keeps going and `/healthz` still answers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mqgate_tests::http::status_addr;
use mqgate_tests::mqgate::{embedded_broker_port, json_sensor_gateway, mqgate_bin};
use test_support::http::get;
use test_support::process::{run_to_end, Proc, Stream};
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(20);
/// The attack: this many connections, each with half a request, all held open.
const ATTACKERS: usize = 1100;
/// Longest time opening them may take.
const ATTACK_TIME: Duration = Duration::from_secs(60);
/// The file descriptor limit systemd gives a service unless its unit says more.
const SYSTEMD_DEFAULT_NOFILE: u64 = 1024;
/// The status server's default `max_connections`.
const STATUS_MAX_CONNECTIONS: usize = 64;
/// How long an MQTT client or `/healthz` may take during the attack.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

fn config(dir: &Scratch) -> PathBuf {
    json_sensor_gateway(dir, "flood-gw", "")
}

/// `mqgate run` with soft and hard file descriptor limits of 1024.
fn start_at_default_limit(config: &Path) -> Proc {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!(
        "--nofile={SYSTEMD_DEFAULT_NOFILE}:{SYSTEMD_DEFAULT_NOFILE}"
    ))
    .arg("--")
    .arg(mqgate_bin())
    .arg("run")
    .arg("--config")
    .arg(config)
    .env("RUST_LOG", "info")
    .env("NO_COLOR", "1");
    Proc::spawn("mqgate run (prlimit)", cmd)
}

/// This test holds more sockets than a default soft limit allows: raise it.
fn raise_own_fd_limit(to: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < to {
            limit.rlim_cur = to.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= to,
        "the test needs {to} file descriptors; the hard limit is {}",
        limit.rlim_max
    );
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the gateway's /proc/PID/fd")
        .count()
}

/// `mosquitto_pub` one QoS 1 message: how long it took (connect, CONNACK,
/// PUBLISH, PUBACK, disconnect); panics unless it succeeds within `WAIT`.
fn publish(port: u16) -> Duration {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "flood/probe", "-m", "x", "-q", "1"]);
    let started = Instant::now();
    let done = run_to_end("mosquitto_pub", cmd, WAIT);
    let took = started.elapsed();
    assert_eq!(done.code(), 0, "mosquitto_pub: {}", done.stderr);
    took
}

/// Reads an event stream until `count` more `data:` lines came.
fn more_events(stream: &mut TcpStream, count: usize) {
    let deadline = Instant::now() + WAIT;
    let mut seen = 0;
    let mut buf = [0u8; 16384];
    while seen < count {
        assert!(
            Instant::now() < deadline,
            "no {count} events within {WAIT:?}"
        );
        let n = stream.read(&mut buf).expect("read the event stream");
        assert!(n > 0, "the event stream was closed");
        seen += String::from_utf8_lossy(&buf[..n]).matches("data: ").count();
    }
}

#[test]
fn a_flood_of_half_sent_requests_on_the_status_page_leaves_the_broker_and_healthz_answering() {
    raise_own_fd_limit(4096);
    let dir = Scratch::new("status-flood");
    let config = config(&dir);
    let mut gw = start_at_default_limit(&config);
    let port = embedded_broker_port(&gw, WAIT);
    let status = status_addr(&gw, WAIT);
    let healthy = |timeout| {
        let r = get(status, "/healthz", timeout);
        (r.status == 200 && r.body == "ok\n").then_some(())
    };
    let deadline = Instant::now() + WAIT;
    while healthy(WAIT).is_none() {
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = open_fds(gw.pid());

    let mut events = TcpStream::connect(status).expect("connect for /events");
    events.set_read_timeout(Some(WAIT)).expect("a timeout");
    write!(events, "GET /events HTTP/1.1\r\nHost: {status}\r\n\r\n").expect("ask for /events");
    more_events(&mut events, 1);

    // The attack: each connection sends half a request and is kept open.
    let started = Instant::now();
    let mut attackers: Vec<TcpStream> = Vec::with_capacity(ATTACKERS);
    let mut refused = 0;
    while attackers.len() + refused < ATTACKERS {
        assert!(started.elapsed() < ATTACK_TIME, "opening took too long");
        match TcpStream::connect_timeout(&status, Duration::from_secs(2)) {
            Ok(mut s) => {
                // The server may have closed it already: a failed write is fine.
                let _ = s.write_all(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Wait: ");
                attackers.push(s);
            }
            Err(_) => refused += 1,
        }
    }
    let opened_in = started.elapsed();

    // While they are all held open: the gateway's own descriptors stay bounded.
    let during = open_fds(gw.pid());
    assert!(
        during <= before + STATUS_MAX_CONNECTIONS + 8,
        "{during} descriptors open during the attack, {before} before"
    );

    // MQTT clients get CONNACK (and PUBACK) in time, and the gateway's messages
    // still reach a subscriber.
    let publishes: Vec<Duration> = (0..5).map(|_| publish(port)).collect();
    let slowest_publish = publishes.iter().max().copied().unwrap_or_default();
    assert!(
        slowest_publish < ANSWER_WITHIN,
        "mosquitto_pub took {publishes:?}"
    );
    let mut sub = Command::new("mosquitto_sub");
    sub.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "sensors/#", "-C", "1", "-W", "10"]);
    let done = run_to_end("mosquitto_sub", sub, WAIT);
    assert_eq!(done.code(), 0, "mosquitto_sub: {}", done.stderr);

    // /healthz answers, and the open event stream keeps going.
    let mut healthz = Vec::new();
    for _ in 0..5 {
        let asked = Instant::now();
        assert!(
            healthy(ANSWER_WITHIN).is_some(),
            "/healthz not ok during the attack"
        );
        healthz.push(asked.elapsed());
    }
    more_events(&mut events, 2);
    let fds_after_checks = open_fds(gw.pid());

    assert!(
        !gw.stderr_text().contains("Too many open files"),
        "{}",
        gw.stderr_text()
    );
    // The hard limit kept the gateway from raising its own: it said so at start.
    gw.wait_for_line(
        Stream::Stderr,
        &["only 1024 file descriptors", "LimitNOFILE="],
        WAIT,
    );
    eprintln!(
        "{} attack connections opened in {opened_in:?} ({refused} refused at connect); \
         gateway descriptors: {before} before, {during} during, {fds_after_checks} after the checks; \
         mosquitto_pub (CONNACK + PUBACK): {publishes:?}; /healthz: {healthz:?}",
        attackers.len()
    );
    drop(attackers);
    gw.signal(libc::SIGTERM);
    let exit = gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "output:\n{}", gw.transcript());
}

#[test]
fn mqgate_run_raises_its_soft_descriptor_limit_to_what_its_connection_limits_need() {
    let dir = Scratch::new("status-fd-limit");
    let config = config(&dir);
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=1024:8192")
        .arg("--")
        .arg(mqgate_bin())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let mut gw = Proc::spawn("mqgate run (prlimit 1024:8192)", cmd);
    status_addr(&gw, WAIT);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", gw.pid()))
        .expect("read /proc/PID/limits");
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let soft: u64 = open_files
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no soft limit in {open_files:?}"));
    // The broker's 1024 and the status page's 64, and room for the rest.
    assert!(
        (1024 + 64..=8192).contains(&soft),
        "soft limit {soft}: {open_files}"
    );
    assert!(
        !gw.stderr_text().contains("file descriptors (hard limit)"),
        "{}",
        gw.stderr_text()
    );
    gw.signal(libc::SIGTERM);
    let exit = gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "output:\n{}", gw.transcript());
}
