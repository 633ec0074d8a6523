//! One gateway per state folder and per client id: a second `mqgate run` of the same
//! file, a `mqgate replay` that would publish through the running gateway's store,
//! and a `mqgate run` whose status port is busy all stop before they disturb the
//! gateway that runs; two gateways that share only the upstream client id are told
//! why the broker keeps closing their connections.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use mqgate_tests::feeder::{wait_port_open, wait_upstream_connects, SeqGateway};
use mqgate_tests::http::{api_status, status_addr};
use mqgate_tests::mqgate::{mqgate, start_mqgate_run, workspace_file};
use test_support::mosquitto::Mosquitto;
use test_support::process::{run_to_end, Proc, Stream};
use test_support::pty::plug;
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(20);

/// The running gateway's upstream connects and its store's appended count.
fn connects_and_appended(status: SocketAddr) -> (u64, u64) {
    let s = api_status(status, WAIT);
    let up = s["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == "upstream"))
        .unwrap_or_else(|| panic!("no upstream output: {s}"));
    (
        up["connects"].as_u64().expect("connects"),
        s["store"]["appended"].as_u64().expect("appended"),
    )
}

/// A gateway on Mosquitto, reading a pseudo-terminal; returns it with its status
/// address once it is connected.
fn first_gateway(dir: &Scratch, broker: &Mosquitto) -> (Proc, SocketAddr, SeqGateway) {
    let link = dir.path().join("ttyFEED");
    // The pseudo-terminal lives as long as the test: leaked on purpose.
    std::mem::forget(plug(&link));
    let mut spec = SeqGateway::new(broker.port, &link);
    spec.client_id = "one-gw".into();
    let config = spec.write(dir);
    let gw = start_mqgate_run(&config);
    wait_port_open(&gw, WAIT);
    wait_upstream_connects(&gw, 1, WAIT);
    let status = status_addr(&gw, WAIT);
    (gw, status, spec)
}

#[test]
fn a_second_gateway_on_the_same_state_folder_refuses_to_start_naming_the_first() {
    let dir = Scratch::new("one-gateway-twice");
    let broker = Mosquitto::start();
    let (mut gw, status, _) = first_gateway(&dir, &broker);
    let before = connects_and_appended(status);

    let mut second = mqgate();
    second
        .args(["run", "--config"])
        .arg(dir.path().join("mqgate.yaml"));
    let done = run_to_end("second mqgate run", second, WAIT);
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    assert!(
        done.stderr
            .contains(&format!("another mqgate process (PID {})", gw.pid())),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("gateway.state_dir"), "{}", done.stderr);

    // A replay that would publish through the store is refused the same way.
    let mut replay = mqgate();
    replay
        .args(["replay", "--fast", "--source", "feed", "--config"])
        .arg(dir.path().join("mqgate.yaml"))
        .arg(workspace_file("tests/captures/gps-nmea.log"));
    let done = run_to_end("mqgate replay", replay, WAIT);
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    assert!(
        done.stderr
            .contains(&format!("another mqgate process (PID {})", gw.pid())),
        "{}",
        done.stderr
    );

    // The running gateway was not disturbed: still its first connection, its store
    // as it was.
    assert_eq!(connects_and_appended(status), before);
    assert_eq!(
        gw.count_lines(Stream::Stderr, &["closed the connection"]),
        0,
        "{}",
        gw.transcript()
    );
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}

#[test]
fn a_gateway_whose_status_port_is_busy_stops_before_it_connects_upstream() {
    let dir = Scratch::new("one-gateway-busy-port");
    let broker = Mosquitto::start();
    let (mut gw, status, spec) = first_gateway(&dir, &broker);
    let before = connects_and_appended(status);

    // Another state folder, the same client id, and a status port already taken.
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let other = Scratch::new("one-gateway-busy-port-2");
    let mut spec2 = spec.clone();
    spec2.port_link = other.path().join("ttyFEED");
    std::mem::forget(plug(&spec2.port_link));
    let config = spec2.write(&other);
    let text = std::fs::read_to_string(&config).expect("config");
    let port = busy.local_addr().expect("addr").port();
    std::fs::write(
        &config,
        text.replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}")),
    )
    .expect("config");
    let mut second = mqgate();
    second.args(["run", "--config"]).arg(&config);
    let done = run_to_end("mqgate run on a busy port", second, WAIT);
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    assert!(
        done.stderr
            .contains(&format!("status server on 127.0.0.1:{port}")),
        "{}",
        done.stderr
    );
    // Had it connected with the same client id, the broker would have closed the
    // first gateway's connection.
    assert_eq!(connects_and_appended(status), before);
    assert_eq!(
        gw.count_lines(Stream::Stderr, &["closed the connection"]),
        0,
        "{}",
        gw.transcript()
    );
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}

#[test]
fn two_gateways_with_one_client_id_are_told_the_likely_cause() {
    let dir = Scratch::new("one-gateway-same-id");
    let broker = Mosquitto::start();
    let (gw, _status, spec) = first_gateway(&dir, &broker);
    let other = Scratch::new("one-gateway-same-id-2");
    let mut spec2 = spec.clone();
    spec2.port_link = other.path().join("ttyFEED");
    std::mem::forget(plug(&spec2.port_link));
    let gw2 = start_mqgate_run(&spec2.write(&other));
    let hint = "another client with the same client id (\"one-gw\")";
    // Each takes the session from the other; both reconnect, more and more slowly.
    let deadline = Instant::now() + Duration::from_secs(60);
    while gw.count_lines(Stream::Stderr, &[hint]) + gw2.count_lines(Stream::Stderr, &[hint]) == 0 {
        assert!(
            Instant::now() < deadline,
            "no hint within 60 s\n--- first ---\n{}\n--- second ---\n{}",
            gw.transcript(),
            gw2.transcript()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for mut g in [gw, gw2] {
        g.signal(libc::SIGTERM);
        g.wait_exit(WAIT);
    }
}
