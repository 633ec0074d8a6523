//! An instrument that only answers when asked, through the whole gateway: `mqgate
//! run` writes the source's `poll:` queries to a pseudo-terminal where a fake
//! instrument answers `T=21.5` to `R` and nothing to `X`; the answers are
//! published on a topic naming their query, and the status API, the metrics
//! and the log count the query that got no answer.

use std::time::Duration;

use mqgate_tests::http::{status_addr, wait_status};
use mqgate_tests::mqgate::{embedded_broker_port, start_mqgate_run};
use test_support::http::get;
use test_support::instrument::Instrument;
use test_support::mosquitto::Subscriber;
use test_support::process::Stream;
use test_support::pty::plug;
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn answers_to_a_polled_query_are_published_under_its_name_and_silence_is_counted() {
    let dir = Scratch::new("serial-poll");
    let link = dir.path().join("ttyWEATHER");
    let instrument = Instrument::start(plug(&link), |q| {
        (q == "R").then(|| (Duration::from_millis(20), b"T=21.5\r\n".to_vec()))
    });
    dir.write(
        "mappings/weather.yaml",
        "source: weather\ntopic: \"lab/{source}/{query}\"\n",
    );
    let config = dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: poll-gw\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
             status:\n  listen: 127.0.0.1:0\n\
             sources:\n  - id: weather\n    type: serial\n    path: {link}\n    baud: 9600\n\
             \x20   reopen: {{ initial_ms: 100, max_ms: 300 }}\n\
             \x20   framing: {{ type: lines }}\n\
             \x20   poll:\n\
             \x20     - {{ every: 300ms, send: \"R\\r\", timeout_ms: 200, name: reading }}\n\
             \x20     - {{ every: 300ms, send_hex: \"58 0d\", timeout_ms: 50, name: silent }}\n",
            state = dir.path().join("state").display(),
            link = link.display(),
        ),
    );
    let mut gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    let status = status_addr(&gw, WAIT);
    let readings = Subscriber::start("readings", port, "lab/#");

    let got = readings.wait_until("three readings", WAIT, |m| m.len() >= 3);
    for m in &got[..3] {
        assert_eq!(m.topic, "lab/weather/reading", "{m:?}");
        assert_eq!(m.text(), "T=21.5", "{m:?}");
    }
    assert!(instrument.wait_for("X", 2, WAIT).len() >= 2);

    wait_status(status, "the silent query's timeouts", WAIT, |s| {
        let source = &s["sources"][0];
        source["poll_timeouts"].as_u64() >= Some(2)
            && source["polls"][1]["timeouts"].as_u64() >= Some(2)
    });
    wait_status(status, "the answered query's counts", WAIT, |s| {
        let reading = &s["sources"][0]["polls"][0];
        reading["query"] == "reading"
            && reading["ok"].as_u64() >= Some(3)
            && reading["timeouts"] == 0
            && reading["last_latency_ms"].as_u64().is_some()
    });
    let metrics = get(status, "/metrics", WAIT).body;
    for sample in [
        "mqgate_source_poll_total{source=\"weather\",query=\"silent\",outcome=\"timeout\"} ",
        "mqgate_source_poll_total{source=\"weather\",query=\"reading\",outcome=\"ok\"} ",
        "mqgate_source_poll_latency_seconds{source=\"weather\",query=\"reading\"} ",
    ] {
        assert!(metrics.contains(sample), "no `{sample}` in\n{metrics}");
    }
    gw.wait_for_line(
        Stream::Stderr,
        &["weather", "no answer to query silent within 50 ms"],
        WAIT,
    );

    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}
