//! `mqgate run` under a stand-in for systemd: a Unix datagram socket named by
//! `NOTIFY_SOCKET` receives what the real binary tells the service manager.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mqgate_tests::mqgate::{embedded_broker_port, gps_mappings, mqgate};
use test_support::process::{Proc, Stream};
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(20);
const GATEWAY_ID: &str = "svc-gw";

/// A gateway file with the embedded broker on a free port and one serial source on
/// a port that is not plugged in (the source keeps trying to open it).
fn config(dir: &Scratch) -> PathBuf {
    let mappings = gps_mappings(dir.path());
    dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: {GATEWAY_ID}\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
             status:\n  listen: 127.0.0.1:0\n\
             mappings: {mappings}\n\
             sources:\n  - id: gps\n    type: serial\n    path: {link}\n    baud: 4800\n\
             \x20   reopen: {{ initial_ms: 100, max_ms: 400 }}\n\
             \x20   framing: {{ type: lines }}\n",
            state = dir.path().join("state").display(),
            mappings = mappings.display(),
            link = dir.path().join("ttyNONE").display(),
        ),
    )
}

/// Starts `mqgate run` with `NOTIFY_SOCKET=socket` and `WATCHDOG_USEC=watchdog_usec`.
fn start_notified(config: &Path, socket: &Path, watchdog_usec: u64) -> Proc {
    let mut cmd = mqgate();
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", watchdog_usec.to_string())
        .env_remove("WATCHDOG_PID");
    Proc::spawn("mqgate run", cmd)
}

/// The datagrams received until one satisfies `done` (returned last); panics after `WAIT`.
fn receive_until(
    socket: &UnixDatagram,
    what: &str,
    mut done: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {what} within {WAIT:?}; got {received:?}"
        );
        socket.set_read_timeout(Some(left)).expect("read timeout");
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let last = done(&text);
                received.push(text);
                if last {
                    return received;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("receive from mqgate: {e}"),
        }
    }
}

/// Sends an MQTT CONNECT to 127.0.0.1:`port` once and returns the 4 bytes that come back.
fn connack(port: u16) -> [u8; 4] {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).expect("connect to the embedded broker");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut connect = vec![0x10, 19, 0, 4];
    connect.extend_from_slice(b"MQTT");
    connect.extend_from_slice(&[4, 0x02, 0, 10, 0, 7]);
    connect.extend_from_slice(b"svc-e2e");
    stream.write_all(&connect).expect("send CONNECT");
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).expect("read CONNACK");
    reply
}

#[test]
fn mqgate_run_is_ready_for_systemd_once_its_broker_answers_pings_the_watchdog_and_says_stopping_at_sigterm(
) {
    let dir = Scratch::new("service");
    let config = config(&dir);
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");

    let mut gw = start_notified(&config, &socket_path, 400_000);
    let ready = receive_until(&socket, "READY=1", |m| m.lines().any(|l| l == "READY=1"));
    assert_eq!(ready.len(), 1, "READY=1 comes first: {ready:?}");
    // Ready means the embedded broker already answers: one attempt, no retry.
    let port = embedded_broker_port(&gw, WAIT);
    assert_eq!(connack(port), [0x20, 2, 0, 0], "CONNACK, accepted");
    let status = ready[0]
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS= with READY=1: {:?}", ready[0]));
    assert_eq!(
        status,
        format!("gateway {GATEWAY_ID}: 1 source, embedded broker on 127.0.0.1:{port}")
    );

    // WATCHDOG_USEC=400000: a ping every 200 ms; three within the wait.
    let mut pings = 0;
    receive_until(&socket, "three WATCHDOG=1", |m| {
        pings += usize::from(m == "WATCHDOG=1");
        pings >= 3
    });

    gw.signal(libc::SIGTERM);
    receive_until(&socket, "STOPPING=1", |m| {
        m.lines().any(|l| l == "STOPPING=1")
    });
    let exit = gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "output:\n{}", gw.transcript());
}

#[test]
fn sighup_reloads_and_tells_systemd_reloading_then_ready_and_the_gateway_keeps_running() {
    let dir = Scratch::new("service-hup");
    let config = config(&dir);
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    // No watchdog: only the messages about the reload come after READY=1.
    let mut gw = start_notified(&config, &socket_path, 0);
    receive_until(&socket, "READY=1", |m| m.lines().any(|l| l == "READY=1"));
    let port = embedded_broker_port(&gw, WAIT);
    let now_usec = {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to write into.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
    };
    gw.signal(libc::SIGHUP);
    let told = receive_until(&socket, "READY=1 after the reload", |m| {
        m.lines().any(|l| l == "READY=1")
    });
    // systemd's reload protocol (sd_notify(3)): RELOADING=1 with the time on the
    // monotonic clock, then READY=1 once done.
    assert_eq!(told.len(), 2, "{told:?}");
    let reloading: Vec<&str> = told[0].lines().collect();
    assert_eq!(reloading[0], "RELOADING=1", "{told:?}");
    let usec: u64 = reloading
        .iter()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC: {told:?}"));
    assert!(
        usec >= now_usec && usec < now_usec + WAIT.as_micros() as u64,
        "{usec} vs {now_usec}"
    );
    assert!(
        told[1].contains("STATUS=reloaded the mappings of 1 source(s)"),
        "{told:?}"
    );
    gw.wait_for_line(
        Stream::Stderr,
        &["SIGHUP: reloading mappings and scripts"],
        WAIT,
    );
    assert!(gw.try_exited().is_none(), "SIGHUP does not end the gateway");
    assert_eq!(connack(port), [0x20, 2, 0, 0], "the broker still answers");
    gw.signal(libc::SIGTERM);
    let exit = gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "output:\n{}", gw.transcript());
}
