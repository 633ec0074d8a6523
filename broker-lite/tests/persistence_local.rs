//! With persistence on, an in-process publish (`BrokerHandle`, which mqgate's
//! embedded output uses) resolves only once what it changed is committed: the
//! gateway forgets its own copy of a message when told, so the broker's copy must
//! be on disk by then.

use std::path::Path;
use std::time::Duration;

use broker_lite::{Broker, Config};
use mqtt_proto::codec::QoS;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

/// Far longer than the test needs: a publish answered before its commit would
/// find nothing in the file.
const FLUSH_MS: u64 = 3000;
const WAIT: Duration = Duration::from_secs(20);

fn queued_rows(db: &Path, client: &str) -> i64 {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the broker's file read-only");
    c.query_row(
        "SELECT count(*) FROM messages WHERE client_id = ?1",
        [client],
        |r| r.get(0),
    )
    .expect("count the queued messages")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_publish_for_a_persistent_session_resolves_once_committed() {
    // Removed when dropped, last, also when the test fails.
    let dir = test_support::Scratch::new("bl-persist-local");
    let db = dir.path().join("state.db");
    let yaml = format!(
        "listen: 127.0.0.1:0\nsys_interval_secs: 0\npersistence:\n  file: {}\n  flush_ms: {FLUSH_MS}\n",
        db.display()
    );
    let config = Config::from_yaml_str(&yaml, "test.yaml").expect("a valid configuration");
    let broker = Broker::start(config).await.expect("the broker starts");
    let port = broker.local_addr().port();

    // A persistent session subscribes (its SUBACK waits for the commit) and leaves.
    let mut opts = MqttOptions::new("away", "127.0.0.1", port);
    opts.set_clean_session(false);
    let (client, mut events) = AsyncClient::new(opts, 16);
    client
        .subscribe("plant/#", rumqttc::QoS::AtLeastOnce)
        .await
        .expect("queue SUBSCRIBE");
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.expect("connection") {
                return;
            }
        }
    })
    .await
    .expect("SUBACK in time");
    client.disconnect().await.expect("queue DISCONNECT");
    let _ = tokio::time::timeout(WAIT, async { while events.poll().await.is_ok() {} }).await;
    assert_eq!(queued_rows(&db, "away"), 0);

    // Answered only once the queued copy for the absent session is in the file.
    let handle = broker.handle();
    tokio::time::timeout(
        WAIT,
        handle.publish("plant/a", "1", QoS::AtLeastOnce, false),
    )
    .await
    .expect("the publish resolves within the wait")
    .expect("the publish is taken");
    assert_eq!(queued_rows(&db, "away"), 1, "committed before the answer");

    // A message no persistent session takes changes nothing stored: answered at
    // once, well before the next commit would be due.
    let started = std::time::Instant::now();
    handle
        .publish("elsewhere/b", "2", QoS::AtLeastOnce, false)
        .await
        .expect("the publish is taken");
    assert!(
        started.elapsed() < Duration::from_millis(FLUSH_MS / 2),
        "{:?}",
        started.elapsed()
    );
    broker.shutdown().await;
}
