//! Waits with a deadline for async tests: each names what it waits for, and
//! fails the test with that name when the deadline passes.

use std::future::Future;
use std::time::Duration;

/// Awaits `fut`, failing the test if it takes longer than `timeout`.
pub async fn wait_for<T>(what: &str, timeout: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(timeout, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls `cond` every 10 ms until it holds, failing the test after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    wait_for(what, timeout, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}
