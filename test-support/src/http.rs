//! Plain HTTP/1.1 GETs over a fresh loopback connection: one request per
//! connection, read to the end, within a time limit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What a GET got back.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The status line and the headers.
    pub head: String,
    pub body: String,
}

/// `GET path`. Panics (naming the path) on a connection or protocol failure, or
/// after `timeout`.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Response {
    get_with(addr, path, "", timeout)
}

/// `GET path` with `headers` (each line ending in `\r\n`) added.
pub fn get_with(addr: SocketAddr, path: &str, headers: &str, timeout: Duration) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .unwrap_or_else(|e| panic!("GET {path}: connect to {addr}: {e}"));
    stream.set_read_timeout(Some(timeout)).expect("a timeout");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
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
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status in {head:?}"));
    Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// [`get_with`] from an async test, on a blocking thread (the server may run on
/// the test's own runtime).
pub async fn get_async(addr: SocketAddr, path: &str, headers: &str, timeout: Duration) -> Response {
    let (path, headers) = (path.to_string(), headers.to_string());
    tokio::task::spawn_blocking(move || get_with(addr, &path, &headers, timeout))
        .await
        .unwrap_or_else(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("GET {addr}: {e}"),
        })
}
