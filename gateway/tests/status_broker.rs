//! The embedded broker on the status API: a gateway whose `broker:` asks for
//! passwords and applies an ACL, real clients (mosquitto_pub) that get refused,
//! and `/api/status` and `/metrics` over real HTTP counting each refusal under
//! its own reason.
//!
//! Needs `mosquitto_pub` (Debian's mosquitto-clients).

mod http;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use test_support::mosquitto::mosquitto_pub_status;
use test_support::Scratch;

use broker_lite::auth::hash::{PasswordHash, MIN_ITERATIONS};
use broker_lite::auth::passwd;
use http::get;
use mqgate::config::GatewayConfig;
use mqgate::pipeline;
use mqgate::status::{self, BrokerSnapshot, Snapshot};
use tokio::sync::watch;

/// How long any one wait in this test may take.
const WAIT: Duration = Duration::from_secs(20);
/// The one user in the password file, and its password.
const USER: &str = "sensor";
const PASSWORD: &str = "s-secret";

/// The gateway file: no source, the embedded broker with a password file (one
/// user, who may write `sensors/#` and nothing else) and the status server, all
/// on free loopback ports.
fn write_config(dir: &Path) -> PathBuf {
    // The lowest cost broker-lite accepts: the test is about what gets counted.
    let hash = PasswordHash::new(PASSWORD.as_bytes(), MIN_ITERATIONS).expect("a salt");
    passwd::set(&dir.join("users"), USER, &hash).expect("write the password file");
    std::fs::write(
        dir.join("acl"),
        format!("user {USER}\ntopic readwrite sensors/#\n"),
    )
    .expect("write the ACL file");
    let file = dir.join("mqgate.yaml");
    std::fs::write(
        &file,
        format!(
            "gateway:\n  id: broker-status\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
             \x20 auth:\n    password_file: users\n    acl_file: acl\n\
             status:\n  listen: 127.0.0.1:0\n\
             sources: []\n",
            state = dir.join("state").display(),
        ),
    )
    .expect("write the gateway file");
    file
}

async fn broker_status(addr: SocketAddr) -> BrokerSnapshot {
    let (code, _, body) = get(addr, "/api/status").await;
    assert_eq!(code, 200, "/api/status: {body}");
    let s: Snapshot = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    s.broker
        .unwrap_or_else(|| panic!("/api/status has no broker: {body}"))
}

/// Poll `/api/status` until the broker part satisfies `cond`, or fail naming `what`.
async fn wait_for_broker(
    addr: SocketAddr,
    what: &str,
    cond: impl Fn(&BrokerSnapshot) -> bool,
) -> BrokerSnapshot {
    let deadline = Instant::now() + WAIT;
    loop {
        let b = broker_status(addr).await;
        if cond(&b) {
            return b;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}: {b:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One QoS 1 `mosquitto_pub` of `payload` to `topic` as the password file's user.
async fn publish_as_user(port: u16, topic: &str, payload: &str) -> (Option<i32>, String) {
    let args = [
        "-u", USER, "-P", PASSWORD, "-q", "1", "-t", topic, "-m", payload,
    ];
    mosquitto_pub(port, &args).await
}

/// One `mosquitto_pub` to the broker on `port` with `args`: its exit code and
/// stderr. On a blocking thread: the broker runs on this test's runtime.
async fn mosquitto_pub(port: u16, args: &[&str]) -> (Option<i32>, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let done = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        mosquitto_pub_status(port, &args)
    })
    .await
    .expect("the mosquitto_pub task");
    (done.status.code(), done.stderr)
}

#[tokio::test]
async fn a_refused_login_and_a_publish_the_acl_denies_show_on_api_status_and_metrics() {
    // Removed when dropped, also when the test fails.
    let dir = Scratch::new("mqgate-status-broker");
    std::fs::create_dir_all(dir.path().join("mappings")).expect("the mappings folder");
    let config = GatewayConfig::load(&write_config(dir.path())).expect("the config loads");
    let (stop, shutdown) = watch::channel(false);
    let mut running = pipeline::start(&config, None, None, None, shutdown)
        .await
        .expect("the gateway starts");
    let broker_addr = running
        .broker
        .as_ref()
        .expect("the embedded broker runs")
        .local_addr();
    let (addr, _task) = status::start(
        config.status.listen,
        config.status.auth().expect("no credentials to read"),
        config.status.limits(),
        status::Watched::new(&running),
        stop.subscribe(),
    )
    .await
    .expect("the status server starts");

    let start = broker_status(addr).await;
    assert_eq!(start.listeners, [broker_addr.to_string()]);
    assert_eq!(start.refusals.total(), 0, "{start:#?}");

    // Allowed: counted as received, refused by nothing.
    let (code, err) = publish_as_user(broker_addr.port(), "sensors/t", "21.5").await;
    assert_eq!(code, Some(0), "{err}");
    let allowed = wait_for_broker(addr, "the allowed publish", |b| {
        b.messages_received > start.messages_received
    })
    .await;
    assert_eq!(allowed.refusals.total(), 0, "{allowed:#?}");

    // A wrong password: CONNACK 4, one login refused.
    let (code, err) = mosquitto_pub(
        broker_addr.port(),
        &["-u", USER, "-P", "wrong-42", "-t", "sensors/t", "-m", "x"],
    )
    .await;
    assert_ne!(code, Some(0), "a wrong password is refused: {err}");
    assert!(err.contains("bad user name or password"), "{err}");

    // A topic outside the ACL: acknowledged (MQTT 3.1.1 cannot say no) but dropped.
    let (code, err) = publish_as_user(broker_addr.port(), "admin/reboot", "now").await;
    assert_eq!(code, Some(0), "{err}");

    let b = wait_for_broker(addr, "one refused login and one denied publish", |b| {
        b.refusals.login >= 1 && b.refusals.publish_acl >= 1
    })
    .await;
    assert_eq!((b.refusals.login, b.refusals.publish_acl), (1, 1), "{b:#?}");
    assert_eq!(b.refusals.total(), 2, "nothing else refused: {b:#?}");
    assert_eq!(b.connections_total, 3, "three clients came: {b:#?}");

    let (code, _, metrics) = get(addr, "/metrics").await;
    assert_eq!(code, 200, "{metrics}");
    for line in [
        "mqgate_broker_refusals_total{reason=\"login\"} 1",
        "mqgate_broker_refusals_total{reason=\"publish_acl\"} 1",
        "mqgate_broker_refusals_total{reason=\"subscribe_acl\"} 0",
        "mqgate_broker_connections_total 3",
        &format!("mqgate_broker_listener_info{{address=\"{broker_addr}\"}} 1"),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }

    let _ = stop.send(true);
    if let Some(broker) = running.broker.take() {
        broker.shutdown().await;
    }
}
