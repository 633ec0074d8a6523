//! The SQLite side: schema, the checks made when the file is opened, reading the
//! state back, and applying a group of changes in one transaction. Synchronous:
//! only the writer thread (and `open`, before the broker serves anyone) calls it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use mqtt_proto::codec::QoS;
use rusqlite::{params, Connection};

use super::journal::Change;
use super::PersistError;
use crate::message::Message;

/// Marks a file as broker-lite's (`PRAGMA application_id`, "BLP1"), so that
/// another program's SQLite file is refused instead of filled with our tables.
const APP: sqlite_file::App = sqlite_file::App {
    application_id: 0x424C_5031,
    program: "broker-lite",
    unmarked_tables: &[],
    page_size: 0,
};
/// Version of the schema below (`PRAGMA user_version`). Version 1 had no owner
/// columns in `sessions`; it is brought up to date when opened.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE retained (
    topic TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL
);
-- username: the user the session was last used by (NULL: anonymous);
-- user_known = 0 for sessions stored before the owner was recorded.
CREATE TABLE sessions (
    client_id TEXT PRIMARY KEY,
    username TEXT,
    user_known INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE subscriptions (
    client_id TEXT NOT NULL,
    filter TEXT NOT NULL,
    qos INTEGER NOT NULL,
    PRIMARY KEY (client_id, filter)
) WITHOUT ROWID;
-- A session's QoS 1/2 messages: queued (pkid NULL) or in flight (pkid set;
-- released = 1 once PUBREC came back and PUBREL was sent), in order of seq.
CREATE TABLE messages (
    client_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    pkid INTEGER,
    released INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, seq)
);
-- Inbound QoS 2 packet ids routed and awaiting PUBREL.
CREATE TABLE incoming_qos2 (
    client_id TEXT NOT NULL,
    pkid INTEGER NOT NULL,
    PRIMARY KEY (client_id, pkid)
) WITHOUT ROWID;
";

/// One QoS 1/2 message of a stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredMessage {
    pub seq: u64,
    pub msg: Message,
    /// Set when the message is in flight (PUBLISH sent with this id).
    pub pkid: Option<u16>,
    /// PUBREC received, PUBREL sent: resume with PUBREL.
    pub released: bool,
}

/// Who last used a stored session: its ACL rules at start, and who may resume it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Stored by a broker-lite that did not record it.
    #[default]
    Unknown,
    /// The user name of the CONNECT (`None`: anonymous).
    User(Option<String>),
}

/// A persistent session as read from the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StoredSession {
    pub client_id: String,
    pub owner: Owner,
    pub subscriptions: Vec<(String, QoS)>,
    /// In order of `seq`.
    pub messages: Vec<StoredMessage>,
    pub incoming_qos2: Vec<u16>,
}

/// Everything read back at start.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub retained: Vec<Message>,
    pub sessions: Vec<StoredSession>,
}

pub(crate) struct Db {
    conn: Connection,
    path: PathBuf,
}

fn damaged(path: &Path, cause: impl std::fmt::Display) -> PersistError {
    PersistError::Damaged {
        path: path.to_path_buf(),
        cause: cause.to_string(),
    }
}

fn open_error(path: &Path, cause: impl std::fmt::Display) -> PersistError {
    PersistError::Open {
        path: path.to_path_buf(),
        cause: cause.to_string(),
    }
}

/// SQLite's "this is not a (healthy) database" errors mean damage; others do not.
fn classify(path: &Path, e: rusqlite::Error) -> PersistError {
    from_open(sqlite_file::Error::classify(path, e))
}

/// An error of opening the file, in broker-lite's words.
fn from_open(e: sqlite_file::Error) -> PersistError {
    match e {
        sqlite_file::Error::Damaged { path, cause } => damaged(&path, cause),
        sqlite_file::Error::NoWal { path, mode } => {
            open_error(&path, format!("cannot use WAL (got {mode})"))
        }
        sqlite_file::Error::CannotOpen { path, cause }
        | sqlite_file::Error::Sqlite { path, cause } => open_error(&path, cause),
    }
}

impl Db {
    /// Open or create the file and read the state back.
    pub(super) fn open(path: &Path) -> Result<(Db, Loaded), PersistError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                open_error(path, format!("cannot create folder {}: {e}", dir.display()))
            })?;
        }
        if path.is_dir() {
            return Err(open_error(path, "is a folder, not a file"));
        }
        if path.exists() {
            std::fs::File::open(path).map_err(|e| open_error(path, e))?;
        }
        // Checked before anything writes to it, then opened in WAL mode.
        let conn = sqlite_file::open(path, &APP).map_err(from_open)?;
        let mut db = Db {
            conn,
            path: path.to_path_buf(),
        };
        db.prepare_schema()?;
        let loaded = db.load()?;
        Ok((db, loaded))
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn prepare_schema(&mut self) -> Result<(), PersistError> {
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        // WAL with synchronous=NORMAL: a commit is in the operating system's hands
        // when it returns, which survives `kill -9` (not a power cut: see the README).
        self.conn
            // The WAL is folded into the file every 1000 pages (SQLite's default)
            // and cut back to 16 MiB after that, so it cannot grow without bound.
            .execute_batch("PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=16777216;")
            .map_err(err)?;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        match version {
            0 => {
                let tx = self.conn.transaction().map_err(err)?;
                tx.execute_batch(SCHEMA).map_err(err)?;
                tx.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION};"))
                    .map_err(err)?;
                tx.commit().map_err(err)?;
                Ok(())
            }
            1 => {
                let tx = self.conn.transaction().map_err(err)?;
                tx.execute_batch(&format!(
                    "ALTER TABLE sessions ADD COLUMN username TEXT;
                     ALTER TABLE sessions ADD COLUMN user_known INTEGER NOT NULL DEFAULT 0;
                     PRAGMA user_version={SCHEMA_VERSION};"
                ))
                .map_err(err)?;
                tx.commit().map_err(err)?;
                Ok(())
            }
            SCHEMA_VERSION => Ok(()),
            v => Err(damaged(
                &path,
                format!("schema version {v}, this broker-lite reads {SCHEMA_VERSION}"),
            )),
        }
    }

    /// Read everything back; rows of sessions that no longer exist are deleted.
    fn load(&mut self) -> Result<Loaded, PersistError> {
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        self.conn
            .execute_batch(
                "DELETE FROM subscriptions WHERE client_id NOT IN (SELECT client_id FROM sessions);
                 DELETE FROM messages WHERE client_id NOT IN (SELECT client_id FROM sessions);
                 DELETE FROM incoming_qos2 WHERE client_id NOT IN (SELECT client_id FROM sessions);",
            )
            .map_err(err)?;
        let mut loaded = Loaded::default();
        let mut stmt = self
            .conn
            .prepare("SELECT topic, payload, qos FROM retained ORDER BY topic")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(err)?;
        for row in rows {
            let (topic, payload, qos) = row.map_err(err)?;
            let qos = qos_of(&path, "retained", &topic, qos)?;
            loaded
                .retained
                .push(Message::new(&topic, Bytes::from(payload), qos, true));
        }
        drop(stmt);

        let mut sessions: BTreeMap<String, StoredSession> = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT client_id, username, user_known FROM sessions")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })
            .map_err(err)?;
        for row in rows {
            let (client_id, username, known) = row.map_err(err)?;
            let owner = if known {
                Owner::User(username)
            } else {
                Owner::Unknown
            };
            sessions.insert(
                client_id.clone(),
                StoredSession {
                    client_id,
                    owner,
                    ..StoredSession::default()
                },
            );
        }
        drop(stmt);

        let mut stmt = self
            .conn
            .prepare("SELECT client_id, filter, qos FROM subscriptions ORDER BY client_id, filter")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(err)?;
        for row in rows {
            let (client, filter, qos) = row.map_err(err)?;
            let qos = qos_of(&path, "subscriptions", &filter, qos)?;
            if let Some(s) = sessions.get_mut(&client) {
                s.subscriptions.push((filter, qos));
            }
        }
        drop(stmt);

        let mut stmt = self
            .conn
            .prepare(
                "SELECT client_id, seq, topic, payload, qos, retain, pkid, released
                 FROM messages ORDER BY client_id, seq",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, bool>(7)?,
                ))
            })
            .map_err(err)?;
        for row in rows {
            let (client, seq, topic, payload, qos, retain, pkid, released) = row.map_err(err)?;
            let qos = qos_of(&path, "messages", &topic, qos)?;
            let pkid = match pkid {
                None => None,
                Some(id) => Some(pkid_of(&path, "messages", &client, id)?),
            };
            if let Some(s) = sessions.get_mut(&client) {
                s.messages.push(StoredMessage {
                    seq: seq as u64,
                    msg: Message::new(&topic, Bytes::from(payload), qos, retain),
                    pkid,
                    released,
                });
            }
        }
        drop(stmt);

        let mut stmt = self
            .conn
            .prepare("SELECT client_id, pkid FROM incoming_qos2 ORDER BY client_id, pkid")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(err)?;
        for row in rows {
            let (client, pkid) = row.map_err(err)?;
            let pkid = pkid_of(&path, "incoming_qos2", &client, pkid)?;
            if let Some(s) = sessions.get_mut(&client) {
                s.incoming_qos2.push(pkid);
            }
        }
        drop(stmt);
        loaded.sessions = sessions.into_values().collect();
        Ok(loaded)
    }

    /// Apply `changes` in one transaction.
    pub(super) fn apply<'a>(
        &mut self,
        changes: impl Iterator<Item = &'a Change>,
    ) -> rusqlite::Result<usize> {
        let tx = self.conn.transaction()?;
        let mut applied = 0;
        for change in changes {
            apply_one(&tx, change)?;
            applied += 1;
        }
        tx.commit()?;
        Ok(applied)
    }

    /// Move the WAL into the main file and truncate it (at a graceful stop).
    pub(super) fn checkpoint(&self) -> rusqlite::Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
    }
}

fn qos_of(path: &Path, table: &str, what: &str, v: i64) -> Result<QoS, PersistError> {
    u8::try_from(v)
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| damaged(path, format!("table {table}: QoS {v} for {what:?}")))
}

fn pkid_of(path: &Path, table: &str, client: &str, v: i64) -> Result<u16, PersistError> {
    u16::try_from(v)
        .ok()
        .filter(|&id| id != 0)
        .ok_or_else(|| damaged(path, format!("table {table}: packet id {v} of {client:?}")))
}

fn apply_one(tx: &rusqlite::Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::Retain { msg } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO retained (topic, payload, qos) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&*msg.topic, &msg.payload[..], msg.qos as u8])?;
        }
        Change::Unretain { topic } => {
            tx.prepare_cached("DELETE FROM retained WHERE topic = ?1")?
                .execute([&**topic])?;
        }
        Change::SessionNew { client, user } => {
            delete_session(tx, client)?;
            tx.prepare_cached(
                "INSERT INTO sessions (client_id, username, user_known) VALUES (?1, ?2, 1)",
            )?
            .execute(params![&**client, user.as_deref()])?;
        }
        Change::SessionOwner { client, user } => {
            tx.prepare_cached(
                "UPDATE sessions SET username = ?2, user_known = 1 WHERE client_id = ?1",
            )?
            .execute(params![&**client, user.as_deref()])?;
        }
        Change::SessionGone { client } => delete_session(tx, client)?,
        Change::Subscribe {
            client,
            filter,
            qos,
        } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO subscriptions (client_id, filter, qos) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&**client, &**filter, *qos as u8])?;
        }
        Change::Unsubscribe { client, filter } => {
            tx.prepare_cached("DELETE FROM subscriptions WHERE client_id = ?1 AND filter = ?2")?
                .execute([&**client, &**filter])?;
        }
        Change::Queued {
            client,
            seq,
            msg,
            pkid,
        } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO messages
                 (client_id, seq, topic, payload, qos, retain, pkid, released)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
            )?
            .execute(params![
                &**client,
                *seq as i64,
                &*msg.topic,
                &msg.payload[..],
                msg.qos as u8,
                msg.retain,
                pkid,
            ])?;
        }
        Change::Sent { client, seq, pkid } => {
            tx.prepare_cached("UPDATE messages SET pkid = ?3 WHERE client_id = ?1 AND seq = ?2")?
                .execute(params![&**client, *seq as i64, pkid])?;
        }
        Change::Released { client, seq } => {
            tx.prepare_cached(
                "UPDATE messages SET released = 1 WHERE client_id = ?1 AND seq = ?2",
            )?
            .execute(params![&**client, *seq as i64])?;
        }
        Change::Done { client, seq } => {
            tx.prepare_cached("DELETE FROM messages WHERE client_id = ?1 AND seq = ?2")?
                .execute(params![&**client, *seq as i64])?;
        }
        Change::Qos2Held { client, pkid } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO incoming_qos2 (client_id, pkid) VALUES (?1, ?2)",
            )?
            .execute(params![&**client, pkid])?;
        }
        Change::Qos2Released { client, pkid } => {
            tx.prepare_cached("DELETE FROM incoming_qos2 WHERE client_id = ?1 AND pkid = ?2")?
                .execute(params![&**client, pkid])?;
        }
        Change::Reply { .. } | Change::LocalDone { .. } => {}
    }
    Ok(())
}

fn delete_session(tx: &rusqlite::Transaction<'_>, client: &str) -> rusqlite::Result<()> {
    for sql in [
        "DELETE FROM sessions WHERE client_id = ?1",
        "DELETE FROM subscriptions WHERE client_id = ?1",
        "DELETE FROM messages WHERE client_id = ?1",
        "DELETE FROM incoming_qos2 WHERE client_id = ?1",
    ] {
        tx.prepare_cached(sql)?.execute([client])?;
    }
    Ok(())
}
