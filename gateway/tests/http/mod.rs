//! GETs for the status server's tests: `test_support::http` with this server's
//! own rule that bodies are sent with a length, never chunked.

pub(crate) mod gateway;

use std::net::SocketAddr;
use std::time::Duration;

/// How long one request may take.
const WAIT: Duration = Duration::from_secs(20);

/// `GET path` over a fresh connection: the status code, the headers and the body.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    get_with(addr, path, "").await
}

/// `GET path` with `headers` (each line ending in `\r\n`) added.
pub(crate) async fn get_with(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    let r = test_support::http::get_async(addr, path, headers, WAIT).await;
    assert!(
        !r.head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "bodies are sent with a length: {}",
        r.head
    );
    (r.status, r.head, r.body)
}
