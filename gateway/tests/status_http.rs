//! The status API over real HTTP: a gateway with a looping replay source, its
//! status server on a free port, read with plain HTTP/1.1 requests over TCP.

mod http;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use test_support::{free_port, Scratch};

use http::gateway::{start, write_config, write_config_with};
use http::{get, get_with};
use mqgate::status::Snapshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any one wait in these tests may take.
const WAIT: Duration = Duration::from_secs(20);

async fn snapshot(addr: SocketAddr) -> Snapshot {
    let (code, head, body) = get(addr, "/api/status").await;
    assert_eq!(code, 200, "{body}");
    assert!(head.contains("application/json"), "{head}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Poll `/api/status` until `cond` holds, or fail naming `what`.
async fn wait_for(addr: SocketAddr, what: &str, cond: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = snapshot(addr).await;
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_three_endpoints_report_a_running_gateway_with_counters_that_grow() {
    let gw = start(write_config("embedded", "broker:\n  listen: 127.0.0.1:0\n")).await;

    // The capture has 60 lines; the loop plays it about once a second.
    let first = wait_for(gw.addr, "a full pass of the capture", |s| {
        s.sources[0].frames >= 60 && s.outputs[0].published >= 60
    })
    .await;
    assert_eq!(first.gateway.id, "status-test");
    assert_eq!(first.gateway.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(first.sources[0].id, "sensor");
    assert_eq!(first.sources[0].state, "connected");
    assert!(first.sources[0].bytes > 60 * 40, "{:?}", first.sources[0]);
    assert_eq!(first.mappings[0].source, "sensor");
    assert!(first.mappings[0].messages >= 60, "{:?}", first.mappings[0]);
    assert_eq!(first.mappings[0].failed, 0);
    assert_eq!(first.mappings[0].last_error, None);
    assert!(
        first.mappings[0]
            .script
            .as_deref()
            .is_some_and(|s| s.ends_with("json-lines.rhai")),
        "{:?}",
        first.mappings[0]
    );
    assert!(
        first.mappings[0]
            .mapping_file
            .as_deref()
            .is_some_and(|s| s.ends_with("sensor.yaml")),
        "{:?}",
        first.mappings[0]
    );
    // The last frames, as hex and as text: lines of the capture.
    let recent = &first.sources[0].recent;
    assert!(!recent.is_empty() && recent.len() <= 5, "{recent:?}");
    for f in recent {
        assert!(f.text.starts_with("{\"id\":"), "{f:?}");
        assert!(f.hex.starts_with("7b 22 69 64 22"), "{f:?}");
        assert_eq!(f.len, f.text.len().max(f.len), "{f:?}");
    }
    let last_frame = first.sources[0].last_frame_ms.expect("a last frame time");
    assert!(
        (first.gateway.now_ms - last_frame).abs() < 10_000,
        "{last_frame}"
    );
    let store = first.store.as_ref().expect("a store behind the broker");
    assert!(store.appended >= 60, "{store:?}");
    assert_eq!(first.outputs.len(), 1);
    assert_eq!(first.outputs[0].name, "embedded");
    assert!(first.outputs[0].connected);

    // The mapping counts a message before the store has it: wait for both.
    let later = wait_for(gw.addr, "another pass, published", |s| {
        s.sources[0].frames >= first.sources[0].frames + 60
            && s.outputs[0].published > first.outputs[0].published
    })
    .await;
    assert!(later.gateway.uptime_secs > first.gateway.uptime_secs);
    assert!(later.mappings[0].messages > first.mappings[0].messages);

    // Every field of the schema is in the raw JSON, null or not.
    let (_, _, raw) = get(gw.addr, "/api/status").await;
    for field in [
        "\"uptime_secs\"",
        "\"since_ms\"",
        "\"bad_frames\"",
        "\"reopens\"",
        "\"filtered\"",
        "\"oldest_age_secs\"",
        "\"drop_oldest\"",
        "\"blocked\"",
        "\"in_flight\"",
        "\"recent\"",
        "\"last_frame_ms\"",
        "\"last_bad_frame\"",
        "\"reloads\"",
        "\"last_error\"",
    ] {
        assert!(raw.contains(field), "{field} missing in {raw}");
    }

    let (code, head, metrics) = get(gw.addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let frames: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mqgate_source_frames_total{source=\"sensor\"} "))
        .unwrap_or_else(|| panic!("no frames counter for the source in\n{metrics}"))
        .parse()
        .expect("a whole number");
    assert!(frames >= later.sources[0].frames, "{frames}");
    for line in [
        "# TYPE mqgate_source_frames_total counter",
        "# TYPE mqgate_store_messages gauge",
        "mqgate_output_connected{output=\"embedded\"} 1",
        "mqgate_store_evicted_total{reason=\"drop_oldest\"} 0",
        "mqgate_source_state{source=\"sensor\",state=\"connected\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }
    // A real parser reads the whole exposition: Prometheus's own promtool.
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) runs");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), metrics.as_bytes())
        .expect("write to promtool");
    let checked = promtool.wait_with_output().expect("promtool finishes");
    assert!(
        checked.status.success(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let (code, _, body) = get(gw.addr, "/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));

    let (code, _, _) = get(gw.addr, "/nothing-here").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn healthz_is_503_naming_the_upstream_while_its_broker_is_unreachable() {
    let port = free_port();
    let upstream = format!("upstream:\n  url: mqtt://127.0.0.1:{port}\n");
    let gw = start(write_config("upstream", &upstream)).await;

    // The messages wait in the store for the upstream broker.
    wait_for(gw.addr, "messages waiting in the store", |s| {
        s.sources[0].frames > 0 && s.store.as_ref().is_some_and(|st| st.depth > 0)
    })
    .await;
    let (code, _, body) = get(gw.addr, "/healthz").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("output upstream: not connected")),
        "{body}"
    );
    assert!(
        !body.contains("source sensor"),
        "the source is fine: {body}"
    );

    let s = snapshot(gw.addr).await;
    let up = &s.outputs[0];
    assert_eq!(up.name, "upstream");
    assert!(!up.connected);
    assert_eq!(up.published, 0);
    let (_, _, metrics) = get(gw.addr, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "mqgate_output_connected{output=\"upstream\"} 0"),
        "{metrics}"
    );
}

/// A child process killed when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn mqgate_run_prints_the_status_address_and_serves_it_until_sigterm() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let config = write_config("run", "broker:\n  listen: 127.0.0.1:0\n");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_mqgate"))
            .args(["run", "--config"])
            .arg(&config.path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mqgate starts"),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let addr: SocketAddr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the status address is printed");
        if let Some(rest) = line.strip_prefix("status page on http://") {
            break rest.trim_end_matches('/').parse().expect("an address");
        }
    };
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    wait_for(addr, "frames counted", |s| s.sources[0].frames > 0).await;
    let (code, _, body) = get(addr, "/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));

    // SAFETY: signals the child this test started, by its id.
    unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "mqgate still runs after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "a clean stop at SIGTERM");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the status server stopped with the gateway"
    );
}

/// Reads `/events` until `count` events came; their JSON snapshots, and the headers.
async fn events(addr: SocketAddr, count: usize) -> (String, Vec<Snapshot>) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request =
            format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut text = String::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the stream stays open: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            let snapshots: Vec<Snapshot> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter_map(|json| serde_json::from_str(json).ok())
                .collect();
            if snapshots.len() >= count {
                let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
                return (head, snapshots);
            }
        }
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the events in time")
}

#[tokio::test]
async fn the_page_is_served_and_the_event_stream_sends_a_fresh_snapshot_every_second() {
    let gw = start(write_config("page", "broker:\n  listen: 127.0.0.1:0\n")).await;
    let (status, head, body) = get(gw.addr, "/").await;
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("text/html"), "{head}");
    assert!(
        body.contains("new EventSource(url(\"/events\"))"),
        "the page listens to the events"
    );
    assert!(
        body.contains("<canvas id=\"rate\""),
        "the page draws the rate chart"
    );

    let (head, snapshots) = events(gw.addr, 3).await;
    assert!(
        head.to_ascii_lowercase().contains("text/event-stream"),
        "{head}"
    );
    assert_eq!(snapshots[0].gateway.id, "status-test");
    // Live: time moves on between events and the counters follow the replay.
    assert!(snapshots[2].gateway.now_ms >= snapshots[0].gateway.now_ms + 1500);
    assert!(snapshots[2].sources[0].frames > snapshots[0].sources[0].frames);
}

#[tokio::test]
async fn a_script_error_is_shown_with_its_line_and_the_other_frames_still_map() {
    // Line 3 throws for the frames of one sensor of the capture.
    let script = "fn map(frame) {\n    let v = json_parse(frame.text);\n    if v.id == \"soil-bed-2\" { throw \"bed 2 is broken\"; }\n    #{ name: v.id, payload: v }\n}\n";
    let gw = start(write_config_with(
        "script-error",
        "broker:\n  listen: 127.0.0.1:0\n",
        "",
        Some(script),
    ))
    .await;
    let s = wait_for(gw.addr, "a dead-lettered frame", |s| {
        s.mappings[0].failed > 0 && s.mappings[0].messages > 0
    })
    .await;
    let e = s.mappings[0].last_error.as_ref().expect("the last error");
    assert_eq!(e.line, Some(3), "{e:?}");
    assert!(e.message.contains("sensor.rhai:3:"), "{e:?}");
    assert!(e.message.contains("bed 2 is broken"), "{e:?}");
    assert!((s.gateway.now_ms - e.at_ms).abs() < 10_000, "{e:?}");
}

#[tokio::test]
async fn with_a_token_and_a_password_every_route_asks_for_one_of_them() {
    let secret = Scratch::new("mqgate-status-secret");
    let password_file = secret.path().join("status-password");
    std::fs::write(&password_file, "hunter2\n").unwrap();
    let status = format!(
        "  token: \"tok/en 1\"\n  username: admin\n  password_file: {}\n",
        password_file.display()
    );
    let gw = start(write_config_with(
        "auth",
        "broker:\n  listen: 127.0.0.1:0\n",
        &status,
        None,
    ))
    .await;
    use base64::Engine as _;
    let basic = |user_pass: &str| {
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    };
    for path in [
        "/",
        "/api/status",
        "/api/history",
        "/metrics",
        "/healthz",
        "/events",
    ] {
        let (code, head, _) = get(gw.addr, path).await;
        assert_eq!(code, 401, "{path} without credentials");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: basic realm=\"mqgate\""),
            "{path}: {head}"
        );
        for wrong in [
            "Authorization: Bearer tok/en 2\r\n".to_string(),
            basic("admin:hunter3"),
            basic("root:hunter2"),
        ] {
            let (code, _, _) = get_with(gw.addr, path, &wrong).await;
            assert_eq!(code, 401, "{path} with {wrong:?}");
        }
    }
    for path in ["/", "/api/status", "/metrics", "/healthz"] {
        for good in [
            "Authorization: Bearer tok/en 1\r\n".to_string(),
            basic("admin:hunter2"),
        ] {
            let (code, _, body) = get_with(gw.addr, path, &good).await;
            assert!(
                code == 200 || (path == "/healthz" && code == 503),
                "{path} {good:?}: {code} {body}"
            );
        }
        let (code, _, _) = get(gw.addr, &format!("{path}?token=tok%2Fen%201")).await;
        assert!(
            code == 200 || (path == "/healthz" && code == 503),
            "{path}?token=: {code}"
        );
    }
}

#[tokio::test]
async fn the_history_keeps_a_sample_a_second_for_the_charts() {
    let gw = start(write_config("history", "broker:\n  listen: 127.0.0.1:0\n")).await;
    let deadline = Instant::now() + WAIT;
    let history = loop {
        let (code, _, body) = get(gw.addr, "/api/history").await;
        assert_eq!(code, 200, "{body}");
        let h: mqgate::status::History =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        if h.messages_per_sec.len() >= 3 {
            break h;
        }
        assert!(Instant::now() < deadline, "no 3 samples in time: {h:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(history.step_secs, 1.0);
    assert_eq!(history.messages_per_sec.len(), history.store_depth.len());
    // The capture plays about 60 lines a second.
    assert!(
        history.messages_per_sec.iter().any(|&r| r > 10.0),
        "{history:?}"
    );
}
