//! The status API of a running `mqgate run` (whose address it prints: `status
//! page on http://ADDR/`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use test_support::http::get;
use test_support::process::{Proc, Stream};

/// The status server's address, from the line `mqgate run` prints on stdout.
pub fn status_addr(gw: &Proc, timeout: Duration) -> SocketAddr {
    let line = gw.wait_for_line(Stream::Stdout, &["status page on http://"], timeout);
    line.split_once("http://")
        .map(|(_, rest)| rest.trim().trim_end_matches('/'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// `GET /api/status` as JSON.
pub fn api_status(addr: SocketAddr, timeout: Duration) -> serde_json::Value {
    let r = get(addr, "/api/status", timeout);
    assert_eq!(r.status, 200, "/api/status: {}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("/api/status: {e}: {}", r.body))
}

/// Polls `/api/status` until `done` holds; panics after `timeout` naming `what`.
pub fn wait_status(
    addr: SocketAddr,
    what: &str,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let status = api_status(addr, timeout);
        if done(&status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
