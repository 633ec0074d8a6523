//! The queues of `durable: true` commands, in `commands.sqlite` in the state
//! folder: a command is written there before it counts as taken (and before an
//! upstream broker gets its PUBACK), and removed once it has its result. At start
//! each source's worker takes its rows back, in arrival order, with their arrival
//! time, so that `expire_after` still counts from when the command came.
//!
//! A file of its own rather than a table in the message store: the store's thread
//! batches thousands of messages a second and owns its file; commands are few, and
//! their worker waits for each write.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use mqtt_proto::codec::QoS;
use rusqlite::{params, Connection};

use crate::message::Command;

/// Marks the file as mqgate's command queues ("MQGC").
const APP: sqlite_file::App = sqlite_file::App {
    application_id: 0x4D51_4743,
    program: "mqgate (command queues)",
    unmarked_tables: &[],
    page_size: 1024,
};

/// The file's name in the state folder.
pub const FILE: &str = "commands.sqlite";

/// A command read back: its row, the command, and its arrival (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub row: i64,
    pub command: Command,
    pub arrived_ms: i64,
}

/// The open file; cheap to clone, one connection behind a lock.
#[derive(Debug, Clone)]
pub struct Durable {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Durable {
    /// Open (or create) `commands.sqlite` in `state_dir`; errors name the file.
    pub fn open(state_dir: &Path) -> Result<Durable, String> {
        let path = state_dir.join(FILE);
        std::fs::create_dir_all(state_dir)
            .map_err(|e| format!("{}: cannot create: {e}", state_dir.display()))?;
        let conn = sqlite_file::open(&path, &APP).map_err(|e| e.to_string())?;
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS commands (
                 row INTEGER PRIMARY KEY,
                 source TEXT NOT NULL,
                 topic TEXT NOT NULL,
                 payload BLOB NOT NULL,
                 qos INTEGER NOT NULL,
                 retain INTEGER NOT NULL,
                 arrived_ms INTEGER NOT NULL
             );",
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Durable {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, String> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// Keep a command; its row.
    pub fn insert(&self, c: &Command, arrived_ms: i64) -> Result<i64, String> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO commands (source, topic, payload, qos, retain, arrived_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &*c.source,
                    &*c.topic,
                    &c.payload[..],
                    c.qos as u8,
                    c.retain,
                    arrived_ms
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    /// The command has its result.
    pub fn remove(&self, row: i64) -> Result<(), String> {
        self.with(|conn| {
            conn.execute("DELETE FROM commands WHERE row = ?1", [row])
                .map(|_| ())
        })
    }

    /// What `source` had waiting, oldest first.
    pub fn pending(&self, source: &str) -> Result<Vec<Kept>, String> {
        self.with(|conn| {
            let mut q = conn.prepare(
                "SELECT row, topic, payload, qos, retain, arrived_ms FROM commands
                 WHERE source = ?1 ORDER BY row",
            )?;
            let rows = q.query_map([source], |r| {
                let qos: u8 = r.get(3)?;
                Ok(Kept {
                    row: r.get(0)?,
                    command: Command {
                        topic: Arc::from(r.get::<_, String>(1)?.as_str()),
                        payload: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                        qos: QoS::from_u8(qos).unwrap_or(QoS::AtLeastOnce),
                        retain: r.get(4)?,
                        source: Arc::from(source),
                    },
                    arrived_ms: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(source: &str, n: u8) -> Command {
        Command {
            topic: Arc::from(format!("cmd/{source}/{n}").as_str()),
            payload: Bytes::from(vec![n, 0, 255]),
            qos: QoS::ExactlyOnce,
            retain: false,
            source: Arc::from(source),
        }
    }

    #[test]
    fn kept_commands_come_back_per_source_in_order_until_removed_and_across_a_reopen() {
        let dir = test_support::scratch::Scratch::new("durable-commands");
        let d = Durable::open(dir.path()).expect("opens");
        let a = d.insert(&command("relay", 1), 1000).unwrap();
        let b = d.insert(&command("relay", 2), 2000).unwrap();
        d.insert(&command("other", 3), 3000).unwrap();
        d.remove(a).unwrap();
        drop(d);
        let d = Durable::open(dir.path()).expect("opens again");
        let kept = d.pending("relay").unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].row, b);
        assert_eq!(kept[0].command, command("relay", 2));
        assert_eq!(kept[0].arrived_ms, 2000);
        assert_eq!(d.pending("other").unwrap().len(), 1);
    }

    #[test]
    fn another_programs_file_is_refused_by_name() {
        let dir = test_support::scratch::Scratch::new("durable-foreign");
        let path = dir.path().join(FILE);
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA application_id=42; CREATE TABLE x (y);")
            .unwrap();
        drop(c);
        let e = Durable::open(dir.path()).expect_err("not ours");
        assert!(e.contains("commands.sqlite"), "{e}");
    }
}
