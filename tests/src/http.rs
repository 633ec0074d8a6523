//! Plain HTTP/1.1 GETs over a std socket, for reading the status API of a running
//! `mqgate run` (whose address it prints: `status page on http://ADDR/`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::process::{Proc, Stream};

/// The status server's address, from the line `mqgate run` prints on stdout.
pub fn status_addr(gw: &Proc, timeout: Duration) -> SocketAddr {
    let line = gw.wait_for_line(Stream::Stdout, &["status page on http://"], timeout);
    line.split_once("http://")
        .map(|(_, rest)| rest.trim().trim_end_matches('/'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// `GET path`: the status code and the body. Panics (naming the path) on a
/// connection or protocol failure, or after `timeout`.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .unwrap_or_else(|e| panic!("GET {path}: connect to {addr}: {e}"));
    stream.set_read_timeout(Some(timeout)).expect("a timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("GET {path}: send: {e}"));
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("GET {path}: read: {e}"));
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no end of headers in {text:?}"));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status in {head:?}"));
    (code, body.to_string())
}

/// `GET /api/status` as JSON.
pub fn api_status(addr: SocketAddr, timeout: Duration) -> serde_json::Value {
    let (code, body) = get(addr, "/api/status", timeout);
    assert_eq!(code, 200, "/api/status: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/status: {e}: {body}"))
}
