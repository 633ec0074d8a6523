//! A plain HTTP/1.1 GET for the status server's tests: one request per
//! connection, read to the end, within a time limit.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one request may take.
const WAIT: Duration = Duration::from_secs(20);

/// `GET path` over a fresh connection: the status code, the headers and the body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    get_with(addr, path, "").await
}

/// `GET path` with `headers` (each line ending in `\r\n`) added.
pub async fn get_with(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        String::from_utf8(response).expect("a UTF-8 response")
    };
    let text = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to GET {path} within {WAIT:?}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no end of headers in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status line in {head:?}"));
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "bodies are sent with a length: {head}"
    );
    (status, head.to_string(), body.to_string())
}
