use std::path::Path;
use std::time::Duration;
use test_support::Scratch;

use bytes::Bytes;
use mqtt_proto::codec::QoS;

use super::*;
use crate::config::{Durability, Qos0WhileDown, WhenFull};

fn msg(n: u64, qos: QoS) -> Message {
    Message {
        topic: format!("t/{n}").parse().unwrap(),
        payload: Bytes::from(n.to_string()),
        qos,
        retain: false,
    }
}

fn config(dir: impl AsRef<Path>) -> StoreConfig {
    StoreConfig {
        file: dir.as_ref().join("messages.db"),
        // In the test's folder, removed with it (the journal's semantics do not
        // depend on where it is; /dev/shm is what makes it cost no disk writes).
        write_behind_dir: dir.as_ref().to_path_buf(),
        ..StoreConfig::default()
    }
}

/// A fresh folder `mqgate-store-<label>-…`, removed when the guard is dropped
/// (after the store, which each test opens later), also when the test fails.
fn scratch(label: &str) -> Scratch {
    Scratch::new(&format!("mqgate-store-{label}"))
}

fn payloads(items: &[Stored]) -> Vec<String> {
    items
        .iter()
        .map(|s| String::from_utf8_lossy(&s.message.payload).into_owned())
        .collect()
}

async fn next(q: &mut OutputQueue, max: usize) -> Vec<Stored> {
    tokio::time::timeout(Duration::from_secs(5), q.next_batch(max))
        .await
        .expect("messages within 5 s")
        .expect("the store works")
}

#[tokio::test]
async fn messages_come_out_in_order_and_leave_the_file_once_done() {
    let dir = scratch("order");
    let store = Store::open(&config(&dir), &["up"]).unwrap();
    let appended = store
        .append((1..=5).map(|n| msg(n, QoS::AtLeastOnce)).collect())
        .await
        .unwrap();
    assert_eq!(appended.accepted, 5);
    assert_eq!(StoreStats::get(&store.stats().depth), 5);
    let mut q = store.output("up").unwrap();
    let items = next(&mut q, 3).await;
    assert_eq!(payloads(&items), ["1", "2", "3"]);
    let rest = next(&mut q, 10).await;
    assert_eq!(payloads(&rest), ["4", "5"]);
    q.done(items.iter().chain(&rest).map(|s| s.id).collect())
        .await
        .unwrap();
    store.sync().await;
    assert_eq!(StoreStats::get(&store.stats().depth), 0);
    assert_eq!(StoreStats::get(&store.stats().bytes), 0);
    store.close().await;
}

#[tokio::test]
async fn what_was_not_done_comes_back_after_a_reopen_with_its_released_mark() {
    let dir = scratch("reopen");
    let cfg = config(&dir);
    {
        let store = Store::open(&cfg, &["up"]).unwrap();
        store
            .append((1..=4).map(|n| msg(n, QoS::ExactlyOnce)).collect())
            .await
            .unwrap();
        let mut q = store.output("up").unwrap();
        let items = next(&mut q, 4).await;
        q.done(vec![items[0].id]).await.unwrap();
        q.released(vec![items[2].id]).await.unwrap();
        store.close().await;
    }
    let store = Store::open(&cfg, &["up"]).unwrap();
    assert_eq!(StoreStats::get(&store.stats().depth), 3);
    let mut q = store.output("up").unwrap();
    let items = next(&mut q, 10).await;
    assert_eq!(payloads(&items), ["2", "3", "4"]);
    let released: Vec<bool> = items.iter().map(|s| s.released).collect();
    assert_eq!(released, [false, true, false]);
    // New messages continue after the old ids: packet ids never repeat for a new message.
    store.append(vec![msg(5, QoS::AtLeastOnce)]).await.unwrap();
    let more = next(&mut q, 10).await;
    assert!(more[0].id > items[2].id);
    store.close().await;
}

#[tokio::test]
async fn a_row_stays_until_every_output_is_done_with_it() {
    let dir = scratch("two");
    let store = Store::open(&config(&dir), &["embedded", "upstream"]).unwrap();
    store.append(vec![msg(1, QoS::AtLeastOnce)]).await.unwrap();
    let mut a = store.output("embedded").unwrap();
    let mut b = store.output("upstream").unwrap();
    let id = next(&mut a, 1).await[0].id;
    a.done(vec![id]).await.unwrap();
    store.sync().await;
    assert_eq!(StoreStats::get(&store.stats().depth), 1);
    assert_eq!(next(&mut b, 1).await[0].id, id);
    b.done(vec![id]).await.unwrap();
    store.sync().await;
    assert_eq!(StoreStats::get(&store.stats().depth), 0);
    store.close().await;
}

#[tokio::test]
async fn a_full_store_drops_the_oldest_and_counts_it() {
    let dir = scratch("oldest");
    let cfg = StoreConfig {
        max_messages: 3,
        ..config(&dir)
    };
    let store = Store::open(&cfg, &["up"]).unwrap();
    store
        .append((1..=5).map(|n| msg(n, QoS::AtLeastOnce)).collect())
        .await
        .unwrap();
    assert_eq!(StoreStats::get(&store.stats().evicted_oldest), 2);
    assert_eq!(StoreStats::get(&store.stats().depth), 3);
    store.close().await;
    let store = Store::open(&cfg, &["up"]).unwrap();
    let mut q = store.output("up").unwrap();
    assert_eq!(payloads(&next(&mut q, 10).await), ["3", "4", "5"]);
    store.close().await;
}

#[tokio::test]
async fn a_full_store_refuses_the_newest_when_told_to() {
    let dir = scratch("newest");
    let cfg = StoreConfig {
        max_messages: 3,
        when_full: WhenFull::DropNewest,
        ..config(&dir)
    };
    let store = Store::open(&cfg, &["up"]).unwrap();
    let appended = store
        .append((1..=5).map(|n| msg(n, QoS::AtLeastOnce)).collect())
        .await
        .unwrap();
    assert_eq!(
        appended,
        Appended {
            accepted: 3,
            refused: 2
        }
    );
    assert_eq!(StoreStats::get(&store.stats().refused_full), 2);
    let mut q = store.output("up").unwrap();
    assert_eq!(payloads(&next(&mut q, 10).await), ["1", "2", "3"]);
    store.close().await;
}

#[tokio::test]
async fn a_full_store_makes_append_wait_until_an_output_makes_room() {
    let dir = scratch("block");
    let cfg = StoreConfig {
        max_messages: 2,
        when_full: WhenFull::Block,
        ..config(&dir)
    };
    let store = Store::open(&cfg, &["up"]).unwrap();
    let writer = store.clone();
    let pending = tokio::spawn(async move {
        writer
            .append((1..=4).map(|n| msg(n, QoS::AtLeastOnce)).collect())
            .await
    });
    let mut q = store.output("up").unwrap();
    let first = next(&mut q, 10).await;
    assert_eq!(payloads(&first), ["1", "2"]);
    store.sync().await;
    assert!(store.stats().blocked.load(Ordering::Relaxed));
    assert!(!pending.is_finished());
    q.done(first.iter().map(|s| s.id).collect()).await.unwrap();
    let appended = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("the append finishes once there is room")
        .unwrap()
        .unwrap();
    assert_eq!(
        appended,
        Appended {
            accepted: 4,
            refused: 0
        }
    );
    assert_eq!(payloads(&next(&mut q, 10).await), ["3", "4"]);
    assert_eq!(store.stats().dropped(), 0);
    store.close().await;
}

#[tokio::test]
async fn qos_0_skips_the_file_while_outputs_are_up_and_is_kept_while_down_if_asked() {
    let dir = scratch("qos0");
    let cfg = StoreConfig {
        qos0_while_down: Qos0WhileDown::Keep,
        ..config(&dir)
    };
    let store = Store::open(&cfg, &["up"]).unwrap();
    let mut q = store.output("up").unwrap();
    // Down (not yet connected): kept in the file.
    store.append(vec![msg(1, QoS::AtMostOnce)]).await.unwrap();
    assert_eq!(StoreStats::get(&store.stats().depth), 1);
    q.set_connected(true).await;
    store.append(vec![msg(2, QoS::AtMostOnce)]).await.unwrap();
    assert_eq!(StoreStats::get(&store.stats().depth), 1);
    let items = next(&mut q, 10).await;
    assert_eq!(payloads(&items), ["1", "2"]);
    assert_eq!(
        items.iter().map(|s| s.persisted).collect::<Vec<_>>(),
        [true, false]
    );
    // Read once: a rewind does not send the QoS 0 message again.
    q.done(vec![items[0].id]).await.unwrap();
    q.rewind(0);
    store.append(vec![msg(3, QoS::AtLeastOnce)]).await.unwrap();
    assert_eq!(payloads(&next(&mut q, 10).await), ["3"]);
    store.close().await;
}

#[tokio::test]
async fn qos_0_for_an_output_that_is_down_is_dropped_and_counted_by_default() {
    let dir = scratch("qos0drop");
    let store = Store::open(&config(&dir), &["up"]).unwrap();
    store.append(vec![msg(1, QoS::AtMostOnce)]).await.unwrap();
    store.append(vec![msg(2, QoS::AtLeastOnce)]).await.unwrap();
    assert_eq!(StoreStats::get(&store.stats().qos0_dropped), 1);
    let mut q = store.output("up").unwrap();
    assert_eq!(payloads(&next(&mut q, 10).await), ["2"]);
    store.close().await;
}

#[tokio::test]
async fn messages_older_than_max_age_are_dropped_and_counted() {
    let dir = scratch("ttl");
    let cfg = StoreConfig {
        max_age: Some(Duration::from_secs(1)),
        ..config(&dir)
    };
    let store = Store::open(&cfg, &["up"]).unwrap();
    store
        .append((1..=3).map(|n| msg(n, QoS::AtLeastOnce)).collect())
        .await
        .unwrap();
    let expired = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if StoreStats::get(&store.stats().expired) == 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        expired.is_ok(),
        "the ticker expires them within a few seconds"
    );
    assert_eq!(StoreStats::get(&store.stats().depth), 0);
    store.close().await;
}

#[tokio::test]
async fn a_damaged_file_is_refused_with_its_name_and_left_as_it_was() {
    let dir = scratch("corrupt");
    let cfg = config(&dir);
    let garbage = b"this is not an SQLite database, it is a sensor log\n".repeat(200);
    std::fs::write(&cfg.file, &garbage).unwrap();
    let e = match Store::open(&cfg, &["up"]) {
        Err(e) => e,
        Ok(_) => panic!("a damaged file must not open"),
    };
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&cfg.file.display().to_string()), "{text}");
    assert!(text.contains("move the file aside"), "{text}");
    assert_eq!(std::fs::read(&cfg.file).unwrap(), garbage, "never deleted");
}

#[tokio::test]
async fn another_programs_sqlite_file_is_refused_and_left_as_it_was() {
    let dir = scratch("foreign");
    let cfg = config(&dir);
    let conn = rusqlite::Connection::open(&cfg.file).unwrap();
    conn.execute_batch("CREATE TABLE readings (v REAL); INSERT INTO readings VALUES (1.5);")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&cfg.file).unwrap();
    let e = match Store::open(&cfg, &["up"]) {
        Err(e) => e,
        Ok(_) => panic!("another program's file must not open"),
    };
    let text = e.to_string();
    assert!(text.contains(&cfg.file.display().to_string()), "{text}");
    assert!(text.contains("another program, not mqgate's"), "{text}");
    assert_eq!(std::fs::read(&cfg.file).unwrap(), before, "left as it was");
}

#[tokio::test]
async fn a_store_from_before_the_application_id_keeps_its_messages() {
    let dir = scratch("unmarked");
    let cfg = config(&dir);
    let store = Store::open(&cfg, &["up"]).unwrap();
    store
        .append((1..=3).map(|n| msg(n, QoS::AtLeastOnce)).collect())
        .await
        .unwrap();
    store.close().await;
    drop(store);
    // As mqgate wrote its stores before they were marked.
    let conn = rusqlite::Connection::open(&cfg.file).unwrap();
    conn.execute_batch("PRAGMA application_id=0").unwrap();
    drop(conn);
    let store = Store::open(&cfg, &["up"]).unwrap();
    let mut q = store.output("up").unwrap();
    assert_eq!(payloads(&next(&mut q, 10).await), ["1", "2", "3"]);
    store.close().await;
    drop(store);
    let conn = rusqlite::Connection::open(&cfg.file).unwrap();
    let id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_ne!(id, 0, "the store is marked once opened");
}

#[tokio::test]
async fn an_unreadable_store_path_is_an_error_naming_it() {
    let dir = scratch("unreadable");
    let cfg = StoreConfig {
        // A folder where the file should be.
        file: dir.path().to_path_buf(),
        ..config(&dir)
    };
    let e = match Store::open(&cfg, &["up"]) {
        Err(e) => e,
        Ok(_) => panic!("a folder is not a store"),
    };
    assert!(
        e.to_string().contains(&dir.path().display().to_string()),
        "{e}"
    );
    assert!(
        e.to_string().contains("is a folder, not a store file"),
        "{e}"
    );
}

#[tokio::test]
async fn a_full_disk_fails_the_append_with_its_cause_and_keeps_what_was_stored() {
    let dir = scratch("full");
    let cfg = config(&dir);
    let store = Store::open(&cfg, &["up"]).unwrap();
    store
        .append((1..=10).map(|n| msg(n, QoS::AtLeastOnce)).collect())
        .await
        .unwrap();
    store.tx.send(Command::LimitPages(4)).await.unwrap();
    let mut failure = None;
    for n in 11..200 {
        if let Err(e) = store.append(big(n..=n)).await {
            failure = Some(e);
            break;
        }
    }
    let e = failure.expect("the file fills up");
    assert!(matches!(e, StoreError::DiskFull { .. }), "{e:?}");
    assert!(e.to_string().contains("the disk is full"), "{e}");
    assert!(
        e.to_string().contains(&cfg.file.display().to_string()),
        "{e}"
    );
    // What was committed is still there, in order, and the store goes on.
    let mut q = store.output("up").unwrap();
    let items = next(&mut q, 10).await;
    assert_eq!(
        payloads(&items),
        ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]
    );
    let depth = StoreStats::get(&store.stats().depth);
    assert!(depth >= 10);
    store.close().await;
    let store = Store::open(&cfg, &["up"]).unwrap();
    assert_eq!(
        StoreStats::get(&store.stats().depth),
        depth,
        "nothing half-written"
    );
    store.close().await;
}

#[test]
fn packet_ids_follow_the_row_ids_and_skip_zero() {
    assert_eq!(packet_id(1), 1);
    assert_eq!(packet_id(65_534), 65_534);
    assert_eq!(packet_id(65_535), 1);
    assert_eq!(packet_id(131_068), 65_534);
    assert!((1..200_000).all(|id| packet_id(id) != CONTROL_PACKET_ID && packet_id(id) != 0));
}

#[tokio::test]
async fn forgetting_releases_makes_every_qos_2_message_start_over() {
    let dir = scratch("forget");
    let cfg = config(&dir);
    let store = Store::open(&cfg, &["up"]).unwrap();
    store
        .append((1..=3).map(|n| msg(n, QoS::ExactlyOnce)).collect())
        .await
        .unwrap();
    let mut q = store.output("up").unwrap();
    let items = next(&mut q, 3).await;
    q.released(items.iter().map(|s| s.id).collect())
        .await
        .unwrap();
    q.releaser().forget_releases().await.unwrap();
    store.close().await;
    let store = Store::open(&cfg, &["up"]).unwrap();
    let mut q = store.output("up").unwrap();
    let items = next(&mut q, 3).await;
    assert!(items.iter().all(|s| !s.released));
    store.close().await;
}

/// Rows in the store file itself (not the journal), read as another process would.
fn rows_in_file(path: &Path) -> u64 {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap()
}

/// Messages of 3,000 bytes: a few fill a store limited to a few pages.
fn big(range: std::ops::RangeInclusive<u64>) -> Vec<Message> {
    range
        .map(|n| Message {
            payload: Bytes::from(vec![b'x'; 3000]),
            ..msg(n, QoS::AtLeastOnce)
        })
        .collect()
}

/// Waits until the store's command queue holds `n` commands.
async fn queued(store: &Store, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.tx.capacity() > COMMAND_QUEUE - n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} commands queued within 5 s"
        );
        tokio::task::yield_now().await;
    }
}

fn shared(range: std::ops::RangeInclusive<u64>, qos: QoS) -> Vec<Arc<Message>> {
    range.map(|n| Arc::new(msg(n, qos))).collect()
}

#[tokio::test]
async fn write_behind_messages_acknowledged_within_the_window_never_reach_the_file() {
    let dir = scratch("behind-acked");
    let cfg = config(&dir);
    let store = Store::open(&cfg, &["up"]).unwrap();
    let mut q = store.output("up").unwrap();
    q.set_connected(true).await;
    let appended = store
        .append_shared(shared(1..=20, QoS::AtLeastOnce), Durability::WriteBehind)
        .await
        .unwrap();
    assert_eq!(appended.accepted, 20);
    assert_eq!(StoreStats::get(&store.stats().depth), 20);
    let journal = store.journal_path().expect("a journal").to_path_buf();
    assert!(journal.starts_with(dir.path()), "{}", journal.display());
    let items = next(&mut q, 20).await;
    assert!(
        items.iter().all(|s| s.persisted),
        "the output must say done"
    );
    q.done(items.iter().map(|s| s.id).collect()).await.unwrap();
    store.sync().await;
    assert_eq!(StoreStats::get(&store.stats().depth), 0);
    assert_eq!(rows_in_file(&cfg.file), 0);
    store.close().await;
    assert_eq!(rows_in_file(&cfg.file), 0);
    assert!(!journal.exists(), "an empty journal goes at a clean stop");
}

#[tokio::test]
async fn write_behind_messages_not_acknowledged_within_the_window_go_to_the_file() {
    let dir = scratch("behind-late");
    let cfg = StoreConfig {
        write_behind_ms: 40,
        ..config(&dir)
    };
    let store = Store::open(&cfg, &["up"]).unwrap();
    let mut q = store.output("up").unwrap();
    q.set_connected(true).await;
    store
        .append_shared(shared(1..=5, QoS::ExactlyOnce), Durability::WriteBehind)
        .await
        .unwrap();
    let items = next(&mut q, 5).await;
    // A PUBREC came back for the first: the mark goes with it into the file.
    q.released(vec![items[0].id]).await.unwrap();
    q.done(vec![items[1].id]).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rows_in_file(&cfg.file) < 4 {
        assert!(std::time::Instant::now() < deadline, "moved within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rows_in_file(&cfg.file), 4, "the acknowledged one stays out");
    assert_eq!(StoreStats::get(&store.stats().depth), 4);
    // Acknowledged from the file now.
    q.done(vec![items[2].id]).await.unwrap();
    store.sync().await;
    assert_eq!(rows_in_file(&cfg.file), 3);
    store.crash().await;
    let store = Store::open(&cfg, &["up"]).unwrap();
    let mut q = store.output("up").unwrap();
    let again = next(&mut q, 10).await;
    assert_eq!(payloads(&again), ["1", "4", "5"]);
    assert!(again[0].released && !again[1].released);
    store.close().await;
}

/// Waits until the store file holds `n` rows.
async fn wait_rows_in_file(path: &Path, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rows_in_file(path) != n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} rows in the file within 5 s, not {}",
            rows_in_file(path)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn write_behind_commits_a_window_at_a_time_while_an_output_is_down_and_all_when_it_goes_down()
{
    let dir = scratch("behind-down");
    let cfg = StoreConfig {
        write_behind_ms: 1000,
        ..config(&dir)
    };
    let store = Store::open(&cfg, &["up", "embedded"]).unwrap();
    let up = store.output("up").unwrap();
    let embedded = store.output("embedded").unwrap();
    embedded.set_connected(true).await;
    store
        .append_shared(shared(1..=3, QoS::AtLeastOnce), Durability::WriteBehind)
        .await
        .unwrap();
    assert_eq!(rows_in_file(&cfg.file), 0, "waits for its window");
    wait_rows_in_file(&cfg.file, 3).await;
    up.set_connected(true).await;
    store
        .append_shared(shared(4..=6, QoS::AtLeastOnce), Durability::WriteBehind)
        .await
        .unwrap();
    assert_eq!(rows_in_file(&cfg.file), 3, "both up: in the journal");
    up.set_connected(false).await;
    store.sync().await;
    assert_eq!(
        rows_in_file(&cfg.file),
        6,
        "`up` went down: all in the file"
    );
    store.close().await;
}

#[tokio::test]
async fn a_crash_loses_no_write_behind_message_and_a_power_cut_only_those_in_the_window() {
    let dir = scratch("behind-crash");
    let cfg = config(&dir);
    let store = Store::open(&cfg, &["up"]).unwrap();
    let mut q = store.output("up").unwrap();
    q.set_connected(true).await;
    store
        .append_shared(shared(1..=4, QoS::AtLeastOnce), Durability::WriteBehind)
        .await
        .unwrap();
    let items = next(&mut q, 4).await;
    q.done(vec![items[0].id]).await.unwrap();
    // Committed (an acknowledgement still in the queue at a crash comes again).
    store.sync().await;
    store.crash().await;
    assert_eq!(rows_in_file(&cfg.file), 0);
    // Killed: the journal is taken over into the file at the next start.
    let store = Store::open(&cfg, &["up"]).unwrap();
    assert_eq!(rows_in_file(&cfg.file), 3);
    let mut q = store.output("up").unwrap();
    assert_eq!(payloads(&next(&mut q, 10).await), ["2", "3", "4"]);
    q.set_connected(true).await;
    store
        .append_shared(shared(5..=6, QoS::AtLeastOnce), Durability::WriteBehind)
        .await
        .unwrap();
    // The power goes: the journal in memory with it; what was in the file stays.
    store.power_cut().await;
    let store = Store::open(&cfg, &["up"]).unwrap();
    let mut q = store.output("up").unwrap();
    assert_eq!(payloads(&next(&mut q, 10).await), ["2", "3", "4"]);
    store.close().await;
}

#[tokio::test]
async fn acknowledgements_are_written_while_appends_fail_on_a_full_disk() {
    let dir = scratch("full-acks");
    let cfg = config(&dir);
    let store = Store::open(&cfg, &["up"]).unwrap();
    store
        .append((1..=10).map(|n| msg(n, QoS::AtLeastOnce)).collect())
        .await
        .unwrap();
    let mut q = store.output("up").unwrap();
    let items = next(&mut q, 10).await;
    store.tx.send(Command::LimitPages(0)).await.unwrap();
    // The acknowledgements and an append that cannot fit, in one batch.
    let (release, hold) = std::sync::mpsc::channel();
    store.tx.send(Command::Hold(hold)).await.unwrap();
    q.done(items.iter().map(|s| s.id).collect()).await.unwrap();
    let append = tokio::spawn({
        let store = store.clone();
        async move { store.append(big(11..=40)).await }
    });
    queued(&store, 3).await;
    release.send(()).unwrap();
    let e = append.await.unwrap().expect_err("the disk is full");
    assert!(matches!(e, StoreError::DiskFull { .. }), "{e:?}");
    // The sender tries again: every later batch holds a failing append too.
    let (release, hold) = std::sync::mpsc::channel();
    store.tx.send(Command::Hold(hold)).await.unwrap();
    let again = tokio::spawn({
        let store = store.clone();
        async move { store.append(big(41..=70)).await }
    });
    queued(&store, 2).await;
    let synced = tokio::spawn({
        let store = store.clone();
        async move { store.sync().await }
    });
    queued(&store, 3).await;
    release.send(()).unwrap();
    assert!(again.await.unwrap().is_err());
    synced.await.unwrap();
    assert_eq!(StoreStats::get(&store.stats().depth), 0);
    // Counted once each, not per attempt: the refused appends not at all.
    assert_eq!(StoreStats::get(&store.stats().appended), 10);
    let error = store.stats().last_error.lock().unwrap().clone();
    assert!(error.is_some_and(|e| e.contains("the disk is full")));
    assert_eq!(rows_in_file(&cfg.file), 0, "the acknowledged rows are gone");
    // Room again: the next append goes in and the error is cleared.
    store.tx.send(Command::LimitPages(10_000)).await.unwrap();
    store.append(big(71..=72)).await.unwrap();
    assert_eq!(StoreStats::get(&store.stats().appended), 12);
    assert_eq!(*store.stats().last_error.lock().unwrap(), None);
    store.close().await;
}

#[tokio::test]
async fn counters_are_kept_across_a_reopen_and_read_by_prefix() {
    let dir = scratch("counters");
    let store = Store::open(&config(&dir), &["up"]).unwrap();
    assert!(store.counters("lorawan.fcnt.").await.unwrap().is_empty());
    store
        .set_counters(vec![
            ("lorawan.fcnt.26011BDA".into(), 7),
            ("lorawan.fcnt.26011BDB".into(), 70_000),
            ("other.x".into(), 1),
        ])
        .await;
    store
        .set_counters(vec![("lorawan.fcnt.26011BDA".into(), 8)])
        .await;
    store.close().await;
    let store = Store::open(&config(&dir), &["up"]).unwrap();
    assert_eq!(
        store.counters("lorawan.fcnt.").await.unwrap(),
        [
            ("lorawan.fcnt.26011BDA".to_string(), 8),
            ("lorawan.fcnt.26011BDB".to_string(), 70_000)
        ]
    );
    store.close().await;
}
