//! The message store's file, `-wal` and `-shm` are readable by mqgate's user
//! only, even under a umask that lets everyone read. The umask belongs to the
//! whole process: this test has a binary of its own.

use bytes::Bytes;
use mqgate::config::StoreConfig;
use mqgate::message::Message;
use mqgate::store::Store;
use mqtt_proto::codec::QoS;
use test_support::files::{beside, mode};
use test_support::Scratch;

#[tokio::test]
async fn the_message_store_and_its_wal_and_shm_are_not_world_readable_under_a_permissive_umask() {
    // SAFETY: umask(2) only sets the process's file creation mask.
    unsafe { libc::umask(0) };
    let dir = Scratch::new("mqgate-store-mode");
    let file = dir.join("messages.db");
    let config = StoreConfig {
        file: file.clone(),
        ..StoreConfig::default()
    };
    let store = Store::open(&config, &["out"]).expect("the store opens");
    let message = Message {
        topic: "private/x".parse().expect("a topic"),
        payload: Bytes::from_static(b"only for subscribers"),
        qos: QoS::AtLeastOnce,
        retain: false,
    };
    let appended = store.append(vec![message]).await.expect("append");
    assert_eq!(appended.accepted, 1);
    let wal = beside(&file, "-wal");
    let written = std::fs::read(&wal).expect("the WAL");
    assert!(
        written.windows(20).any(|w| w == b"only for subscribers"),
        "the message is not in {}",
        wal.display()
    );
    for path in [file.clone(), wal, beside(&file, "-shm")] {
        assert_eq!(mode(&path), 0o600, "{}: {:o}", path.display(), mode(&path));
    }
    store.close().await;
}
