//! The SQLite side of the store: schema, opening checks and the statements the
//! worker runs. Synchronous; only the store's own thread calls it.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use mqtt_proto::codec::QoS;
use mqtt_proto::topic::TopicName;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};

use super::StoreError;
use crate::config::Synchronous;
use crate::message::Message;

/// Marks a file as mqgate's store (`PRAGMA application_id`, "MQGS"), so that
/// another program's SQLite file is refused instead of filled with our tables.
/// Stores written before the mark have only the tables below, and are marked.
const APP: sqlite_file::App = sqlite_file::App {
    application_id: 0x4D51_4753,
    program: "mqgate",
    unmarked_tables: &["meta", "outputs", "messages"],
    page_size: PAGE_SIZE,
};
/// Page size of new store files (an existing file keeps its own). Every commit
/// writes whole pages, so at a Pi's rates smaller pages write less: measured
/// (BENCHMARKS.md, "bytes written to the disk"), 1024 writes about a third of
/// what 4096 wrote per message during an outage, 512 a little less again but
/// with 25 % less throughput at saturation than 1024 and payloads over 477 bytes
/// spilling into overflow pages; 1024 keeps rows of up to ~990 bytes in one page.
const PAGE_SIZE: u32 = 1024;
/// Marks the write-behind journal ("MQGJ"): the same `messages` table, in memory.
const JOURNAL_APP: sqlite_file::App = sqlite_file::App {
    application_id: 0x4D51_474A,
    program: "mqgate (write-behind journal)",
    unmarked_tables: &[],
    page_size: 0,
};
/// The write-ahead log keeps this much room after a checkpoint instead of
/// shrinking to nothing, so that deletes (acknowledgements) and checkpoints can
/// still be written when the disk is full.
const WAL_KEEP_BYTES: i64 = 4 * 1024 * 1024;
/// Pages the write-ahead log holds at most before it is checkpointed (and
/// starts over): 8 MiB, and never more than a quarter of `min_free_bytes`, so
/// that the log cannot eat the reserve kept for it.
pub(super) fn wal_pages(min_free_bytes: u64) -> u32 {
    (min_free_bytes / 4 / 4096).clamp(16, 2000) as u32
}
/// The most while the disk is short of room: the log stays small.
pub(super) const WAL_PAGES_SHORT: u32 = 64;
/// Version of the schema below, kept in `meta`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outputs (name TEXT PRIMARY KEY, bit INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    -- one bit per output that has not finished with the message yet
    pending INTEGER NOT NULL,
    -- one bit per output whose PUBREC (QoS 2) came back: resume with PUBREL
    released INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL
);
";

/// A row read back for an output.
pub(super) struct Row {
    pub id: u64,
    pub message: Message,
    pub released: bool,
}

/// The output marks of a row: who still has to send it, whose PUBREC came back.
#[derive(Debug, Clone, Copy)]
pub(super) struct Marks {
    pub pending: u64,
    pub released: u64,
}

/// A journal row as it is moved into the file.
struct JournalRow {
    id: i64,
    created_ms: i64,
    topic: String,
    payload: Vec<u8>,
    qos: i64,
    retain: bool,
    pending: i64,
    released: i64,
    size: i64,
}

/// What `open` found in the file.
pub(super) struct Opened {
    pub db: Db,
    /// Output name → bit, for every configured output.
    pub bits: Vec<u64>,
    pub count: u64,
    pub bytes: u64,
    pub next_id: u64,
    /// Outputs that were in the file but are no longer configured (their marks were cleared).
    pub forgotten: Vec<String>,
}

pub(super) struct Db {
    conn: Connection,
    path: PathBuf,
}

/// A stored topic as it comes back from the file. Only valid names are written,
/// so a refusal here means the file was changed behind the store's back.
fn topic_name(text: String) -> rusqlite::Result<TopicName> {
    TopicName::try_from(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        cause: e.to_string(),
    }
}

/// Errors of an existing file that mean it is not (or no longer) a usable database.
fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    from_open(sqlite_file::Error::classify(path, e))
}

/// An error of opening the file, in the store's words.
fn from_open(e: sqlite_file::Error) -> StoreError {
    match e {
        sqlite_file::Error::Damaged { path, cause } => corrupt(&path, cause),
        sqlite_file::Error::CannotOpen { path, cause } => StoreError::Open { path, cause },
        sqlite_file::Error::NoWal { path, mode } => StoreError::Open {
            path,
            cause: format!("SQLite refused WAL mode (journal_mode is {mode})"),
        },
        sqlite_file::Error::Sqlite { path, cause } => StoreError::Sqlite { path, cause },
    }
}

impl Db {
    /// Open (or create) the file, check it, and register the outputs.
    pub(super) fn open(
        path: &Path,
        sync: Synchronous,
        wal_pages: u32,
        outputs: &[String],
        journal: Option<&Db>,
    ) -> Result<Opened, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                cause: format!("cannot create the folder {}: {e}", dir.display()),
            })?;
        }
        if path.is_dir() {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                cause: "this is a folder, not a store file: move it away, or point \
                        `store.file` (in `gateway.state_dir`) at a file name"
                    .into(),
            });
        }
        if path.exists() {
            // An unreadable file fails later with a vaguer message.
            std::fs::File::open(path).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                cause: e.to_string(),
            })?;
        }
        // Checked before anything writes to it (a damaged file is left exactly as
        // it was), then opened in WAL mode.
        let conn = sqlite_file::open(path, &APP).map_err(from_open)?;
        let on = |e| classify(path, e);
        let level = match sync {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous={level}; PRAGMA wal_autocheckpoint={wal_pages}; PRAGMA cache_size=-4096; \
             PRAGMA journal_size_limit={WAL_KEEP_BYTES};"
        ))
        .map_err(on)?;
        conn.execute_batch(SCHEMA).map_err(on)?;
        let version: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(on)?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(on)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(StoreError::Open {
                    path: path.to_path_buf(),
                    cause: format!(
                        "the file has schema version {other}; this mqgate reads version {SCHEMA_VERSION}"
                    ),
                })
            }
        }
        let db = Db {
            conn,
            path: path.to_path_buf(),
        };
        if let Some(journal) = journal {
            db.take_over(journal)?;
        }
        let (bits, forgotten) = db.register_outputs(outputs)?;
        let (count, bytes, max_id): (u64, u64, u64) = db
            .conn
            .query_row(
                "SELECT count(*), coalesce(sum(size), 0), coalesce(max(id), 0) FROM messages",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(|e| db.err(e))?;
        Ok(Opened {
            bits,
            count,
            bytes,
            next_id: max_id + 1,
            forgotten,
            db,
        })
    }

    /// Open (or create) the write-behind journal at `path`: the store's table in
    /// a file that lives in memory, written without syncing.
    pub(super) fn open_journal(path: &Path) -> Result<Db, StoreError> {
        let conn = sqlite_file::open(path, &JOURNAL_APP).map_err(from_open)?;
        let on = |e| classify(path, e);
        conn.execute_batch("PRAGMA synchronous=OFF; PRAGMA cache_size=-1024;")
            .map_err(on)?;
        conn.execute_batch(SCHEMA).map_err(on)?;
        Ok(Db {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Move the messages a crashed run left in the journal into this file (a
    /// message already here wins: it was moved before the crash), in one
    /// transaction, then empty the journal.
    fn take_over(&self, journal: &Db) -> Result<(), StoreError> {
        let rows: Vec<JournalRow> = {
            let mut stmt = journal
                .conn
                .prepare(
                    "SELECT id, created_ms, topic, payload, qos, retain, pending, released, size \
                     FROM messages ORDER BY id",
                )
                .map_err(|e| journal.err(e))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(JournalRow {
                        id: r.get(0)?,
                        created_ms: r.get(1)?,
                        topic: r.get(2)?,
                        payload: r.get(3)?,
                        qos: r.get(4)?,
                        retain: r.get(5)?,
                        pending: r.get(6)?,
                        released: r.get(7)?,
                        size: r.get(8)?,
                    })
                })
                .map_err(|e| journal.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| journal.err(e))?
        };
        if rows.is_empty() {
            return Ok(());
        }
        self.begin()?;
        let moved = rows.iter().try_for_each(|r| {
            self.conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO messages \
                     (id, created_ms, topic, payload, qos, retain, pending, released, size) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    r.id,
                    r.created_ms,
                    r.topic,
                    r.payload,
                    r.qos,
                    r.retain,
                    r.pending,
                    r.released,
                    r.size
                ])
                .map(|_| ())
        });
        if let Err(e) = moved.map_err(|e| self.err(e)).and_then(|()| self.commit()) {
            self.rollback();
            return Err(e);
        }
        tracing::info!(
            store = %self.path.display(),
            "{} message(s) taken over from the write-behind journal {} (left by a run that did not stop cleanly)",
            rows.len(),
            journal.path.display()
        );
        journal
            .conn
            .execute_batch("DELETE FROM messages")
            .map_err(|e| journal.err(e))
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Checkpoint the write-ahead log whenever it holds this many pages (it then
    /// starts over and reuses its room).
    pub(super) fn autocheckpoint(&self, pages: u32) {
        let _ = self.conn.query_row(
            &format!("PRAGMA wal_autocheckpoint={pages}"),
            [],
            |_| Ok(()),
        );
    }

    /// Bytes of the file's free pages (deleted rows whose room the file keeps),
    /// and of the pages in use.
    pub(super) fn pages(&self) -> Result<(u64, u64), StoreError> {
        let get = |pragma: &str| -> Result<u64, StoreError> {
            self.conn
                .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
                .map_err(|e| self.err(e))
        };
        let size = get("page_size")?;
        let free = get("freelist_count")?;
        let all = get("page_count")?;
        Ok((free * size, all.saturating_sub(free) * size))
    }

    /// Give the free pages back to the file system: the file is rewritten with
    /// what it holds, then the log is emptied.
    pub(super) fn shrink(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("VACUUM").map_err(|e| self.err(e))?;
        self.checkpoint(true)
    }

    /// Rows and bytes in the file.
    pub(super) fn totals(&self) -> Result<(u64, u64), StoreError> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM messages",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))
    }

    /// Remove rows from `id` on (appends of a batch that was rolled back).
    pub(super) fn delete_from(&self, id: u64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM messages WHERE id >= ?1", [id as i64])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Close and delete the file with its write-ahead log (the journal, empty,
    /// at a clean stop).
    pub(super) fn remove(self) {
        drop(self.conn);
        sqlite_file::remove(&self.path);
    }

    pub(super) fn err(&self, e: rusqlite::Error) -> StoreError {
        if e.sqlite_error_code() == Some(ErrorCode::DiskFull) {
            return StoreError::DiskFull {
                path: self.path.clone(),
                cause: e.to_string(),
            };
        }
        classify(&self.path, e)
    }

    /// Give every configured output a bit; clear the bits of outputs no longer configured.
    fn register_outputs(&self, outputs: &[String]) -> Result<(Vec<u64>, Vec<String>), StoreError> {
        let on = |e| self.err(e);
        let mut known: Vec<(String, u32)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT name, bit FROM outputs")
                .map_err(on)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))
                .map_err(on)?;
            rows.collect::<Result<_, _>>().map_err(on)?
        };
        let mut forgotten = Vec::new();
        known.retain(|(name, bit)| {
            if outputs.contains(name) {
                return true;
            }
            forgotten.push((name.clone(), *bit));
            false
        });
        for (name, bit) in &forgotten {
            let mask = 1i64 << bit;
            self.conn
                .execute(
                    "UPDATE messages SET pending = pending & ~?1, released = released & ~?1 \
                     WHERE pending & ?1 != 0",
                    [mask],
                )
                .map_err(on)?;
            self.conn
                .execute("DELETE FROM messages WHERE pending = 0", [])
                .map_err(on)?;
            self.conn
                .execute("DELETE FROM outputs WHERE name = ?1", [name])
                .map_err(on)?;
        }
        let mut bits = Vec::with_capacity(outputs.len());
        for name in outputs {
            let bit = match known.iter().find(|(n, _)| n == name) {
                Some((_, bit)) => *bit,
                None => {
                    let free = (0..63u32)
                        .find(|b| !known.iter().any(|(_, k)| k == b))
                        .ok_or_else(|| StoreError::Open {
                            path: self.path.clone(),
                            cause: "more than 63 outputs".into(),
                        })?;
                    self.conn
                        .execute(
                            "INSERT INTO outputs (name, bit) VALUES (?1, ?2)",
                            params![name, free],
                        )
                        .map_err(on)?;
                    known.push((name.clone(), free));
                    free
                }
            };
            bits.push(1u64 << bit);
        }
        Ok((bits, forgotten.into_iter().map(|(n, _)| n).collect()))
    }

    pub(super) fn begin(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))
    }

    pub(super) fn commit(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
    }

    pub(super) fn rollback(&self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    pub(super) fn insert(
        &self,
        id: u64,
        created_ms: i64,
        m: &Message,
        marks: Marks,
        size: u64,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO messages \
                 (id, created_ms, topic, payload, qos, retain, pending, released, size) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(|e| self.err(e))?;
        stmt.execute(params![
            id as i64,
            created_ms,
            m.topic.as_str(),
            &m.payload[..],
            m.qos as u8,
            m.retain,
            marks.pending as i64,
            marks.released as i64,
            size as i64
        ])
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Remove the row `id` (moved to the file, or evicted from the journal).
    pub(super) fn delete(&self, id: u64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM messages WHERE id = ?1")
            .map_err(|e| self.err(e))?
            .execute([id as i64])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// This output is done with `id`: the row goes when no output needs it any more.
    /// Returns the size of the deleted row, if it was deleted.
    pub(super) fn done(&self, id: u64, bit: u64) -> Result<Option<u64>, StoreError> {
        let on = |e| self.err(e);
        let deleted: Option<i64> = self
            .conn
            .prepare_cached("DELETE FROM messages WHERE id = ?1 AND pending = ?2 RETURNING size")
            .map_err(on)?
            .query_row(params![id as i64, bit as i64], |r| r.get(0))
            .optional()
            .map_err(on)?;
        if let Some(size) = deleted {
            return Ok(Some(size as u64));
        }
        self.conn
            .prepare_cached("UPDATE messages SET pending = pending & ~?2 WHERE id = ?1")
            .map_err(on)?
            .execute(params![id as i64, bit as i64])
            .map_err(on)?;
        Ok(None)
    }

    /// Set (or clear) this output's released mark on `id`.
    pub(super) fn released(&self, id: u64, bit: u64, on: bool) -> Result<(), StoreError> {
        let sql = if on {
            "UPDATE messages SET released = released | ?2 WHERE id = ?1"
        } else {
            "UPDATE messages SET released = released & ~?2 WHERE id = ?1"
        };
        self.conn
            .prepare_cached(sql)
            .map_err(|e| self.err(e))?
            .execute(params![id as i64, bit as i64])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Clear this output's released mark on every row.
    pub(super) fn clear_released(&self, bit: u64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE messages SET released = released & ~?1 WHERE released & ?1 != 0",
            )
            .map_err(|e| self.err(e))?
            .execute(params![bit as i64])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Keep a named counter in `meta` (in the open transaction).
    pub(super) fn set_counter(&self, name: &str, value: u64) -> Result<(), StoreError> {
        let key = format!("counter.{name}");
        self.conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )
            .map_err(|e| self.err(e))?
            .execute(params![key, value as i64])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The counters whose names start with `prefix`.
    pub(super) fn counters(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let on = |e| self.err(e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, value FROM meta WHERE key >= ?1 AND key < ?2 ORDER BY key")
            .map_err(on)?;
        let from = format!("counter.{prefix}");
        // Every key starting with `from` sorts below `from` followed by U+FFFF.
        let to = format!("{from}\u{ffff}");
        let rows = stmt
            .query_map(params![from, to], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(on)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(on)?;
        Ok(rows
            .into_iter()
            .map(|(k, v)| (k["counter.".len()..].to_string(), v))
            .collect())
    }

    /// Delete the oldest row; its id and size.
    pub(super) fn evict_oldest(&self) -> Result<Option<(u64, u64)>, StoreError> {
        self.conn
            .prepare_cached(
                "DELETE FROM messages WHERE id = (SELECT min(id) FROM messages) RETURNING id, size",
            )
            .map_err(|e| self.err(e))?
            .query_row([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Delete rows created before `cut_ms`, oldest first, at most `max`; their ids and sizes.
    pub(super) fn expire(&self, cut_ms: i64, max: usize) -> Result<Vec<(u64, u64)>, StoreError> {
        let on = |e| self.err(e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, created_ms FROM messages ORDER BY id LIMIT ?1")
            .map_err(on)?;
        let rows: Vec<(i64, i64)> = stmt
            .query_map([max as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(on)?
            .collect::<Result<_, _>>()
            .map_err(on)?;
        let last_old = rows.iter().take_while(|(_, t)| *t < cut_ms).last();
        let Some((through, _)) = last_old else {
            return Ok(Vec::new());
        };
        let mut del = self
            .conn
            .prepare_cached("DELETE FROM messages WHERE id <= ?1 RETURNING id, size")
            .map_err(on)?;
        let gone = del
            .query_map([*through], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })
            .map_err(on)?
            .collect::<Result<_, _>>()
            .map_err(on)?;
        Ok(gone)
    }

    /// Rows after `after` up to `through` (inclusive) that `bit` still has to send, in order.
    pub(super) fn fetch(
        &self,
        after: u64,
        through: u64,
        bit: u64,
        max: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let on = |e| self.err(e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, topic, payload, qos, retain, released & ?3 FROM messages \
                 WHERE id > ?1 AND id <= ?2 AND pending & ?3 != 0 ORDER BY id LIMIT ?4",
            )
            .map_err(on)?;
        let rows = stmt
            .query_map(
                params![after as i64, through as i64, bit as i64, max as i64],
                |r| {
                    let qos: u8 = r.get(3)?;
                    Ok(Row {
                        id: r.get::<_, i64>(0)? as u64,
                        message: Message {
                            topic: topic_name(r.get(1)?)?,
                            payload: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                            qos: QoS::from_u8(qos).unwrap_or(QoS::AtLeastOnce),
                            retain: r.get(4)?,
                        },
                        released: r.get::<_, i64>(5)? != 0,
                    })
                },
            )
            .map_err(on)?;
        rows.collect::<Result<_, _>>().map_err(on)
    }

    /// Creation time of the oldest row, if any.
    pub(super) fn oldest_ms(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached("SELECT created_ms FROM messages ORDER BY id LIMIT 1")
            .map_err(|e| self.err(e))?
            .query_row([], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Copy the write-ahead log into the file and start it over: it keeps up to
    /// `WAL_KEEP_BYTES` of room (see there), or none with `truncate` (closing).
    pub(super) fn checkpoint(&self, truncate: bool) -> Result<(), StoreError> {
        let mode = if truncate { "TRUNCATE" } else { "RESTART" };
        self.conn
            .execute_batch(&format!("PRAGMA wal_checkpoint({mode})"))
            .map_err(|e| self.err(e))
    }

    /// Tests: make the file "full" at its current size plus `pages` pages.
    #[cfg(test)]
    pub(super) fn limit_pages(&self, pages: u64) {
        let now: u64 = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        let _: u64 = self
            .conn
            .query_row(
                &format!("PRAGMA max_page_count = {}", now + pages),
                [],
                |r| r.get(0),
            )
            .unwrap();
    }
}
