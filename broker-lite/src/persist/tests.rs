use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_proto::codec::QoS;

use super::db::{Db, Owner, StoredMessage, StoredSession};
use super::journal::Change;
use super::*;
use crate::config::Config;
use crate::message::Message;
use test_support::Scratch;

fn client(id: &str) -> Arc<str> {
    Arc::from(id)
}

fn msg(topic: &str, payload: &str, qos: QoS, retain: bool) -> Message {
    Message::new(topic, Bytes::from(payload.to_string()), qos, retain)
}

fn open(path: &Path) -> (Db, Loaded) {
    match Db::open(path) {
        Ok(opened) => opened,
        Err(e) => panic!("cannot open {}: {e}", path.display()),
    }
}

#[test]
fn the_persistence_section_has_defaults_and_its_errors_name_field_and_line() {
    let config = Config::from_yaml_str("persistence:\n  file: state.db\n", "b.yaml").unwrap();
    assert_eq!(config.persistence, Some(PersistenceConfig::new("state.db")));
    let p = config.persistence.unwrap();
    assert_eq!((p.flush_ms, p.ack_after_commit), (100, true));
    assert_eq!(Config::default().persistence, None);

    let text = "sys_interval_secs: 0\npersistence:\n  file: \"\"\n  flush_ms: 0\n";
    let errors = Config::from_yaml_str(text, "b.yaml").unwrap_err();
    let found: Vec<_> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        found,
        [
            (Some(3), "persistence.file"),
            (Some(4), "persistence.flush_ms")
        ]
    );
    let errors =
        Config::from_yaml_str("persistence:\n  file: a\n  flush: 5\n", "b.yaml").unwrap_err();
    assert_eq!(errors[0].line, Some(3), "{}", errors[0]);
    assert!(errors[0].to_string().contains("flush"), "{}", errors[0]);
}

#[test]
fn a_relative_file_is_read_from_the_configuration_files_folder() {
    let dir = Scratch::new("broker-lite-persist");
    let yaml = dir.join("broker.yaml");
    std::fs::write(
        &yaml,
        "persistence:\n  file: data/state.db\n  flush_ms: 20\n",
    )
    .unwrap();
    let config = Config::load(&yaml).unwrap();
    let p = config.persistence.unwrap();
    assert_eq!(p.file, dir.join("data/state.db"));
    assert_eq!(p.flush_ms, 20);

    std::fs::write(&yaml, "persistence:\n  file: /var/lib/b/state.db\n").unwrap();
    let p = Config::load(&yaml).unwrap().persistence.unwrap();
    assert_eq!(p.file, PathBuf::from("/var/lib/b/state.db"));
}

#[test]
fn changes_applied_in_a_transaction_are_read_back_after_reopening() {
    let dir = Scratch::new("broker-lite-persist");
    let path = dir.join("state.db");
    let (mut db, loaded) = open(&path);
    assert!(loaded.retained.is_empty() && loaded.sessions.is_empty());
    let (a, gone) = (client("a"), client("gone"));
    let changes = vec![
        Change::Retain {
            msg: msg("r/1", "one", QoS::AtLeastOnce, true),
        },
        Change::Retain {
            msg: msg("r/2", "two", QoS::AtMostOnce, true),
        },
        Change::Unretain {
            topic: Arc::from("r/2"),
        },
        Change::SessionNew {
            client: a.clone(),
            user: Some("alice".into()),
        },
        Change::Subscribe {
            client: a.clone(),
            filter: "t/#".into(),
            qos: QoS::ExactlyOnce,
        },
        Change::Subscribe {
            client: a.clone(),
            filter: "u".into(),
            qos: QoS::AtLeastOnce,
        },
        Change::Unsubscribe {
            client: a.clone(),
            filter: "u".into(),
        },
        // 0: sent at once, acknowledged. 1: sent, PUBREC came back. 2: queued, then sent.
        // 3: queued. 4: queued, then dropped by the overflow rule.
        Change::Queued {
            client: a.clone(),
            seq: 0,
            msg: msg("t/0", "m0", QoS::AtLeastOnce, false),
            pkid: Some(1),
        },
        Change::Queued {
            client: a.clone(),
            seq: 1,
            msg: msg("t/1", "m1", QoS::ExactlyOnce, false),
            pkid: Some(2),
        },
        Change::Queued {
            client: a.clone(),
            seq: 2,
            msg: msg("t/2", "m2", QoS::AtLeastOnce, true),
            pkid: None,
        },
        Change::Queued {
            client: a.clone(),
            seq: 3,
            msg: msg("t/3", "m3", QoS::AtLeastOnce, false),
            pkid: None,
        },
        Change::Queued {
            client: a.clone(),
            seq: 4,
            msg: msg("t/4", "m4", QoS::AtLeastOnce, false),
            pkid: None,
        },
        Change::Done {
            client: a.clone(),
            seq: 0,
        },
        Change::Released {
            client: a.clone(),
            seq: 1,
        },
        Change::Sent {
            client: a.clone(),
            seq: 2,
            pkid: 3,
        },
        Change::Done {
            client: a.clone(),
            seq: 4,
        },
        Change::Qos2Held {
            client: a.clone(),
            pkid: 7,
        },
        Change::Qos2Held {
            client: a.clone(),
            pkid: 8,
        },
        Change::Qos2Released {
            client: a.clone(),
            pkid: 7,
        },
        Change::SessionNew {
            client: gone.clone(),
            user: None,
        },
        Change::Subscribe {
            client: gone.clone(),
            filter: "x".into(),
            qos: QoS::AtLeastOnce,
        },
        Change::Queued {
            client: gone.clone(),
            seq: 0,
            msg: msg("x", "lost", QoS::AtLeastOnce, false),
            pkid: None,
        },
        Change::SessionGone {
            client: gone.clone(),
        },
    ];
    assert_eq!(db.apply(changes.iter()).unwrap(), changes.len());
    drop(db);

    let (_db, loaded) = open(&path);
    assert_eq!(loaded.retained, [msg("r/1", "one", QoS::AtLeastOnce, true)]);
    let expected = StoredSession {
        client_id: "a".into(),
        owner: Owner::User(Some("alice".into())),
        subscriptions: vec![("t/#".into(), QoS::ExactlyOnce)],
        messages: vec![
            StoredMessage {
                seq: 1,
                msg: msg("t/1", "m1", QoS::ExactlyOnce, false),
                pkid: Some(2),
                released: true,
            },
            StoredMessage {
                seq: 2,
                msg: msg("t/2", "m2", QoS::AtLeastOnce, true),
                pkid: Some(3),
                released: false,
            },
            StoredMessage {
                seq: 3,
                msg: msg("t/3", "m3", QoS::AtLeastOnce, false),
                pkid: None,
                released: false,
            },
        ],
        incoming_qos2: vec![8],
    };
    assert_eq!(loaded.sessions, [expected]);
}

#[test]
fn a_damaged_file_is_refused_naming_it_and_left_unchanged() {
    let dir = Scratch::new("broker-lite-persist");
    let path = dir.join("state.db");
    let garbage = b"this is not an SQLite database, it only lies here\n".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let err = Db::open(&path).err().expect("a damaged file was accepted");
    assert!(matches!(err, PersistError::Damaged { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "the file was changed"
    );
    assert!(
        !dir.join("state.db-wal").exists(),
        "a -wal file was created"
    );

    // A healthy file with a page overwritten in the middle.
    let path = dir.join("torn.db");
    let (mut db, _) = open(&path);
    let changes: Vec<Change> = (0..400)
        .map(|i| Change::Retain {
            msg: msg(&format!("r/{i}"), &"x".repeat(300), QoS::AtLeastOnce, true),
        })
        .collect();
    db.apply(changes.iter()).unwrap();
    db.checkpoint().unwrap();
    drop(db);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.len() > 8 * 4096,
        "file too small to damage: {}",
        bytes.len()
    );
    for b in &mut bytes[4 * 4096..6 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = Db::open(&path).err().expect("a torn file was accepted");
    assert!(matches!(err, PersistError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("torn.db"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file was changed");
}

#[test]
fn another_programs_sqlite_file_is_refused() {
    let dir = Scratch::new("broker-lite-persist");
    let path = dir.join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE readings (v REAL); INSERT INTO readings VALUES (1.5);")
        .unwrap();
    drop(conn);
    let err = Db::open(&path).err().expect("a foreign file was accepted");
    assert!(err.to_string().contains("another program"), "{err}");
}

/// Rows in `retained` with this topic, read through a connection of its own.
fn retained_rows(path: &Path, topic: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT count(*) FROM retained WHERE topic = ?1",
        [topic],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn the_writer_commits_within_the_flush_interval_and_everything_at_close() {
    let dir = Scratch::new("broker-lite-persist");
    let path = dir.join("state.db");
    let config = PersistenceConfig {
        flush_ms: 50,
        ..PersistenceConfig::new(&path)
    };
    let (mut journal, _) = open_journal(&config);
    journal.retained(&msg("w/1", "one", QoS::AtMostOnce, true));
    journal.retained(&msg(
        "$SYS/broker/uptime",
        "1 seconds",
        QoS::AtMostOnce,
        true,
    ));
    journal.flush();
    let start = Instant::now();
    while retained_rows(&path, "w/1") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not committed within 5 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(retained_rows(&path, "$SYS/broker/uptime"), 0, "$SYS stored");

    journal.retained(&msg("w/2", "two", QoS::AtMostOnce, true));
    journal.close();
    assert_eq!(retained_rows(&path, "w/2"), 1, "not committed at close");
    assert!(
        std::fs::metadata(dir.join("state.db-wal")).map_or(0, |m| m.len()) == 0,
        "the WAL was not folded in at close"
    );
}

fn open_journal(config: &PersistenceConfig) -> (Journal, Loaded) {
    match super::open(config) {
        Ok(opened) => opened,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_session_keeps_its_owner_and_a_file_without_owners_is_brought_up_to_date() {
    let dir = Scratch::new("broker-lite-persist");
    let path = dir.join("state.db");
    // A file as the first schema wrote it: sessions without owners.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL);
             CREATE TABLE sessions (client_id TEXT PRIMARY KEY);
             CREATE TABLE subscriptions (client_id TEXT NOT NULL, filter TEXT NOT NULL,
                 qos INTEGER NOT NULL, PRIMARY KEY (client_id, filter)) WITHOUT ROWID;
             CREATE TABLE messages (client_id TEXT NOT NULL, seq INTEGER NOT NULL,
                 topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,
                 retain INTEGER NOT NULL, pkid INTEGER, released INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (client_id, seq));
             CREATE TABLE incoming_qos2 (client_id TEXT NOT NULL, pkid INTEGER NOT NULL,
                 PRIMARY KEY (client_id, pkid)) WITHOUT ROWID;
             INSERT INTO sessions VALUES ('old');
             INSERT INTO subscriptions VALUES ('old', 'o/#', 1);
             PRAGMA application_id=1112297521; PRAGMA user_version=1;",
        )
        .unwrap();
    }
    let (mut db, loaded) = open(&path);
    assert_eq!(loaded.sessions.len(), 1);
    let old = &loaded.sessions[0];
    assert_eq!(
        (old.client_id.as_str(), &old.owner),
        ("old", &Owner::Unknown)
    );
    assert_eq!(old.subscriptions, [("o/#".to_string(), QoS::AtLeastOnce)]);
    let changes = [
        Change::SessionOwner {
            client: client("old"),
            user: Some("carol".into()),
        },
        Change::SessionNew {
            client: client("anon"),
            user: None,
        },
    ];
    db.apply(changes.iter()).unwrap();
    drop(db);
    let (_db, loaded) = open(&path);
    let owners: Vec<_> = loaded
        .sessions
        .iter()
        .map(|s| (s.client_id.as_str(), s.owner.clone()))
        .collect();
    assert!(
        owners.contains(&("old", Owner::User(Some("carol".into())))),
        "{owners:?}"
    );
    assert!(owners.contains(&("anon", Owner::User(None))), "{owners:?}");
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
}
