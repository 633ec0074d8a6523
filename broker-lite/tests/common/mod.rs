//! Shared helpers for the broker's integration tests: a broker on port 0, a raw
//! socket client that sends exact bytes and reads whole packets, packet builders,
//! a rumqttc client driven in the background, and waits with a timeout.
#![allow(dead_code)]

mod raw;
mod rumq;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use broker_lite::{Broker, Config};

#[allow(unused_imports)]
pub(crate) use raw::*;
#[allow(unused_imports)]
pub(crate) use rumq::*;
#[allow(unused_imports)]
pub(crate) use wire::*;

/// How long a test waits for something that should happen.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// A config listening on an ephemeral port of 127.0.0.1, with `$SYS` updates off.
pub(crate) fn test_config() -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        sys_interval_secs: 0,
        ..Config::default()
    }
}

/// Start a broker on port 0 with the test config, changed by `tweak`.
pub(crate) async fn start_with(tweak: impl FnOnce(&mut Config)) -> Broker {
    let mut cfg = test_config();
    tweak(&mut cfg);
    match Broker::start(cfg).await {
        Ok(b) => b,
        Err(e) => panic!("broker did not start: {e}"),
    }
}

/// Start a broker on port 0 with the test config.
pub(crate) async fn start() -> Broker {
    start_with(|_| {}).await
}

/// A client id nobody else in this test process uses.
pub(crate) fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Await `fut`, failing the test if it takes longer than `WAIT`.
pub(crate) async fn wait_for<T>(what: &str, fut: impl Future<Output = T>) -> T {
    test_support::wait_for(what, WAIT, fut).await
}

/// Poll `cond` every 10 ms until it holds, failing the test after `WAIT`.
pub(crate) async fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    test_support::wait_until(what, WAIT, cond).await
}
