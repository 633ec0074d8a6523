//! What the status server lets its clients take, over real loopback HTTP: the
//! `Host` names it answers (against DNS rebinding), how long a client may take to
//! send its headers or stay silent, and how many connections it keeps.

mod http;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::gateway::{start, write_config_with};
use http::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any one wait in these tests may take.
const WAIT: Duration = Duration::from_secs(20);

/// `request` (whole, ending in an empty line) over a fresh connection: the status
/// code and the body.
async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        let text = String::from_utf8_lossy(&response).into_owned();
        let code = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (code, body)
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("an answer in time")
}

async fn get_for_host(addr: SocketAddr, path: &str, host: &str) -> (u16, String) {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// A connection that has sent `request` (an event stream's) and reads what comes.
struct Reader {
    stream: TcpStream,
    text: String,
}

impl Reader {
    async fn open(addr: SocketAddr, request: &str) -> Reader {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("send");
        Reader {
            stream,
            text: String::new(),
        }
    }

    async fn events(addr: SocketAddr) -> Reader {
        let request =
            format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        Reader::open(addr, &request).await
    }

    /// An event stream with its first event, opened again while the server
    /// answers 503 (a place is given back a moment after its client saw the end).
    async fn events_when_room(addr: SocketAddr) -> Reader {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut r = Reader::events(addr).await;
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline.into(), r.stream.read(&mut buf))
                .await
                .expect("an answer in time")
                .expect("read");
            r.text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if !r.text.starts_with("HTTP/1.1 503") {
                r.until_events(1).await;
                return r;
            }
            assert!(Instant::now() < deadline, "no room for an event stream");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads until `count` events (`data:` lines) came in all; fails after `WAIT`
    /// or when the server closes the connection.
    async fn until_events(&mut self, count: usize) {
        let deadline = Instant::now() + WAIT;
        while self.text.matches("\ndata: ").count() < count {
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline.into(), self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {count} events in time: {}", self.text))
                .expect("read");
            assert!(n > 0, "the event stream stays open: {}", self.text);
            self.text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// Reads to the end: how long it took for the server to close, and what came.
    async fn until_closed(&mut self) -> Duration {
        let started = Instant::now();
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, self.stream.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection in time")
            .ok();
        self.text.push_str(&String::from_utf8_lossy(&rest));
        started.elapsed()
    }
}

#[tokio::test]
async fn dns_rebinding_a_request_for_a_foreign_host_is_refused_with_421() {
    let gw = start(write_config_with(
        "hosts",
        "",
        "  allowed_hosts: [gateway.lan]\n",
        None,
    ))
    .await;
    let port = gw.addr.port();
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.2:{port}"),
        format!("{}:{port}", "a".repeat(300)),
    ] {
        for path in ["/", "/api/status", "/healthz", "/events"] {
            let (code, body) = get_for_host(gw.addr, path, &host).await;
            assert_eq!(code, 421, "{path} for {host}: {body}");
            assert!(body.contains("status.allowed_hosts"), "{body}");
            assert!(body.len() < 200, "a short body: {body}");
        }
    }
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_string(),
        format!("localhost:{port}"),
        "LOCALHOST".to_string(),
        // A tunnel (ssh -L 9000:127.0.0.1:PORT) changes the port.
        "localhost:9000".to_string(),
        format!("gateway.lan:{port}"),
    ] {
        let (code, body) = get_for_host(gw.addr, "/api/status", &host).await;
        assert_eq!(code, 200, "for {host}: {body}");
    }
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout_while_an_event_stream_outlives_both_timeouts(
) {
    let gw = start(write_config_with(
        "timeouts",
        "",
        "  header_timeout_secs: 1\n  idle_timeout_secs: 5\n",
        None,
    ))
    .await;
    let mut stream = Reader::events(gw.addr).await;
    stream.until_events(1).await;
    let mut half = Reader::open(gw.addr, "GET /api/status HTTP/1.1\r\nHost: 127.").await;
    let closed_after = half.until_closed().await;
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(5),
        "closed after {closed_after:?}: {}",
        half.text
    );
    // A keep-alive connection silent after its answer goes the same way.
    let mut idle = Reader::open(
        gw.addr,
        &format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", gw.addr),
    )
    .await;
    let closed_after = idle.until_closed().await;
    assert!(idle.text.starts_with("HTTP/1.1 "), "{}", idle.text);
    assert!(closed_after < Duration::from_secs(5), "{closed_after:?}");
    // Meanwhile the event stream kept sending, past both timeouts (one a second).
    stream.until_events(8).await;
}

#[tokio::test]
async fn past_max_connections_a_new_connection_replaces_a_half_sent_one_or_is_answered_503() {
    let gw = start(write_config_with(
        "cap",
        "",
        "  max_connections: 3\n  header_timeout_secs: 60\n",
        None,
    ))
    .await;
    // Two event streams and one half-sent request fill the three places.
    let mut streams = [Reader::events(gw.addr).await, Reader::events(gw.addr).await];
    for s in &mut streams {
        s.until_events(1).await;
    }
    let mut half = Reader::open(gw.addr, "GET /healthz HTTP/1.1\r\nHo").await;
    // A new request takes the half-sent one's place at once, not after 60 s.
    let started = Instant::now();
    let (code, _, body) = get(gw.addr, "/api/status").await;
    assert_eq!(code, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    half.until_closed().await;
    assert!(
        half.text.is_empty(),
        "closed without an answer: {}",
        half.text
    );

    // Three event streams: every place holds a real client; the next is refused
    // at once, and the streams go on.
    let mut third = Reader::events_when_room(gw.addr).await;
    let started = Instant::now();
    let (code, body) = get_for_host(gw.addr, "/healthz", "127.0.0.1").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("too many connections"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    for s in streams.iter_mut().chain([&mut third]) {
        let seen = s.text.matches("\ndata: ").count();
        s.until_events(seen + 1).await;
    }

    // When a stream ends its place is free again.
    drop(third);
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = get_for_host(gw.addr, "/healthz", "127.0.0.1").await;
        if code != 503 || !body.contains("too many connections") {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
