//! Opening a program's own SQLite file, the same way for broker-lite's
//! persistence and mqgate's message store.
//!
//! An existing file is checked before anything writes to it (switching the
//! journal mode rewrites its header): it is opened read-only and `immutable`, so
//! that no `-wal` or `-shm` file appears beside it either, then `PRAGMA
//! quick_check` runs and its `application_id` must be the program's. A damaged
//! file, or another program's, is refused and left exactly as it was. Then the
//! file is opened for writing in WAL mode, and one without an id (a new file)
//! gets the program's. Schemas and their versions stay with each program.
//!
//! The files hold what clients were allowed to read, so a new file is created
//! with mode 0600 whatever the umask, before SQLite opens it; SQLite's unix VFS
//! gives the `-wal` and `-shm` files it creates the main file's mode. An existing
//! file keeps the mode its owner gave it.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

/// Whose files these are.
#[derive(Debug, Clone, Copy)]
pub struct App {
    /// `PRAGMA application_id` of the program's files.
    pub application_id: i32,
    /// The program's name, for messages: "not broker-lite's".
    pub program: &'static str,
    /// Tables of files written before the program marked its files: a file with
    /// no id whose tables are all among these is the program's (and is marked
    /// when opened), not another program's. Empty when every file was marked.
    pub unmarked_tables: &'static [&'static str],
    /// `PRAGMA page_size` of new files; 0 leaves SQLite's default (4096).
    pub page_size: u32,
}

/// Why a file was not opened. Each names the file; the caller words it for its users.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Not a healthy database of this program: damaged, not SQLite at all, or
    /// another program's. The file was left as it was.
    #[error("{}: {cause}", path.display())]
    Damaged { path: PathBuf, cause: String },
    /// The file cannot be opened: permissions, a read-only file system.
    #[error("{}: cannot open: {cause}", path.display())]
    CannotOpen { path: PathBuf, cause: String },
    /// SQLite kept another journal mode than WAL (`mode`).
    #[error("{}: SQLite refused WAL mode (journal_mode is {mode})", path.display())]
    NoWal { path: PathBuf, mode: String },
    /// Any other SQLite error.
    #[error("{}: {cause}", path.display())]
    Sqlite { path: PathBuf, cause: String },
}

impl Error {
    /// Sort an SQLite error about `path`: "not a (healthy) database" means
    /// damage, a refused open is `CannotOpen`, the rest is `Sqlite`.
    pub fn classify(path: &Path, e: rusqlite::Error) -> Error {
        let path = path.to_path_buf();
        let cause = e.to_string();
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                Error::Damaged { path, cause }
            }
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
                Error::CannotOpen { path, cause }
            }
            _ => Error::Sqlite { path, cause },
        }
    }
}

/// Check an existing file without writing to it: readable as a database, intact
/// (`PRAGMA quick_check`), and `app`'s. A WAL left beside it by a crash is not
/// read here (`immutable`); SQLite checks it when the file is really opened.
pub fn check(path: &Path, app: &App) -> Result<(), Error> {
    let on = |e| Error::classify(path, e);
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&uri, flags).map_err(on)?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(on)?;
    if check != "ok" {
        return Err(damaged(path, format!("integrity check: {check}")));
    }
    let id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(on)?;
    if id == app.application_id {
        return Ok(());
    }
    let foreign = || {
        damaged(
            path,
            format!("an SQLite file of another program, not {}'s", app.program),
        )
    };
    if id != 0 {
        return Err(foreign());
    }
    // No id: a new (empty) file, or one of the program's from before it marked them.
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
        .map_err(on)?;
    if tables
        .iter()
        .all(|t| app.unmarked_tables.contains(&t.as_str()))
    {
        Ok(())
    } else {
        Err(foreign())
    }
}

/// Open `path` for reading and writing in WAL mode, creating it (mode 0600)
/// when absent; an existing file is `check`ed first. A file without an
/// application id gets `app`'s. The folder must exist.
pub fn open(path: &Path, app: &App) -> Result<Connection, Error> {
    let created = create_private(path)?;
    if !created {
        check(path, app)?;
    }
    let on = |e| Error::classify(path, e);
    let conn = Connection::open(path).map_err(on)?;
    if created && app.page_size != 0 {
        // Only an empty file takes it, before anything is written.
        conn.execute_batch(&format!("PRAGMA page_size={}", app.page_size))
            .map_err(on)?;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(on)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    let id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(on)?;
    if id != app.application_id {
        conn.execute_batch(&format!("PRAGMA application_id={}", app.application_id))
            .map_err(on)?;
    }
    Ok(conn)
}

/// Delete the database at `path` with its `-wal` and `-shm` files (those
/// absent are no error). Nothing may have it open.
pub fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = fs::remove_file(name);
    }
}

/// Create `path` empty with mode 0600 (an empty file is a new database to
/// SQLite); `false` when it already exists, which is left as it is.
fn create_private(path: &Path) -> Result<bool, Error> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let file = match created {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(cannot_create(path, &e)),
    };
    // The mode given to open(2) is filtered by the umask; this is not.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| cannot_create(path, &e))?;
    Ok(true)
}

fn cannot_create(path: &Path, e: &io::Error) -> Error {
    Error::CannotOpen {
        path: path.to_path_buf(),
        cause: format!("cannot create: {e}"),
    }
}

fn damaged(path: &Path, cause: String) -> Error {
    Error::Damaged {
        path: path.to_path_buf(),
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: App = App {
        application_id: 0x5445_5354,
        program: "the test program",
        unmarked_tables: &["notes"],
        page_size: 0,
    };

    fn application_id(path: &Path) -> i32 {
        let conn = Connection::open(path).unwrap();
        conn.query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_new_file_is_created_in_wal_mode_with_the_programs_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let conn = open(&path, &APP).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        assert_eq!(application_id(&path), APP.application_id);
        // And it opens again.
        open(&path, &APP).unwrap();
    }

    #[test]
    fn a_file_with_another_application_id_is_refused_with_its_name_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("theirs.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA application_id=7; CREATE TABLE notes (n TEXT);")
            .unwrap();
        drop(conn);
        let before = std::fs::read(&path).unwrap();
        let err = open(&path, &APP).expect_err("another program's file was opened");
        assert!(matches!(err, Error::Damaged { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("theirs.db"), "{text}");
        assert!(
            text.contains("another program, not the test program's"),
            "{text}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the file was changed"
        );
    }

    #[test]
    fn an_unmarked_file_with_tables_of_another_program_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE readings (v REAL);")
            .unwrap();
        drop(conn);
        let err = open(&path, &APP).expect_err("a foreign file was opened");
        assert!(err.to_string().contains("another program"), "{err}");
        assert_eq!(application_id(&path), 0, "the file was marked");
    }

    #[test]
    fn an_unmarked_file_of_the_program_is_opened_and_marked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE notes (n TEXT); INSERT INTO notes VALUES ('kept');")
            .unwrap();
        drop(conn);
        let conn = open(&path, &APP).unwrap();
        let note: String = conn
            .query_row("SELECT n FROM notes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(note, "kept");
        drop(conn);
        assert_eq!(application_id(&path), APP.application_id);
    }

    #[test]
    fn a_corrupt_file_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("torn.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id={}; CREATE TABLE notes (n TEXT);",
            APP.application_id
        ))
        .unwrap();
        for _ in 0..200 {
            conn.execute("INSERT INTO notes VALUES (hex(randomblob(200)))", [])
                .unwrap();
        }
        drop(conn);
        // Overwrite the middle of the file (table pages) with garbage.
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 8192, "{}", bytes.len());
        for b in &mut bytes[4096..8192] {
            *b = 0xA5;
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = open(&path, &APP).expect_err("a damaged file was opened");
        assert!(matches!(err, Error::Damaged { .. }), "{err:?}");
        assert!(err.to_string().contains("torn.db"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file was changed");
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_refused_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("text.db");
        std::fs::write(
            &path,
            "not a database, only some text that is long enough ".repeat(40),
        )
        .unwrap();
        let err = open(&path, &APP).expect_err("a text file was opened");
        assert!(matches!(err, Error::Damaged { .. }), "{err:?}");
        assert!(err.to_string().contains("text.db"), "{err}");
    }
}
