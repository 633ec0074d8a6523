//! Who may read the files: a new database, its `-wal` and its `-shm` are 0600
//! even under a umask that lets everyone read, and an existing file keeps the
//! mode its owner chose.
//!
//! The umask belongs to the whole process, so these tests live in a binary of
//! their own, and every test in it wants the same permissive one.

use std::os::unix::fs::PermissionsExt;

use rusqlite::Connection;
use test_support::files::{beside, mode};

const APP: sqlite_file::App = sqlite_file::App {
    application_id: 0x4d4f_4445,
    program: "the mode test",
    unmarked_tables: &["t"],
    page_size: 0,
};

/// Nothing masked: a file created with SQLite's default 0644 stays 0644.
fn permissive_umask() {
    // SAFETY: umask(2) only sets the process's file creation mask.
    unsafe { libc::umask(0) };
}

/// Write through `conn`, so that SQLite has its `-wal` and `-shm` open.
fn write_something(conn: &Connection) {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS t (v TEXT); INSERT INTO t VALUES ('x');")
        .unwrap();
}

#[test]
fn a_new_database_and_its_wal_and_shm_are_not_world_readable_whatever_the_umask() {
    permissive_umask();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages.db");
    let conn = sqlite_file::open(&path, &APP).unwrap();
    write_something(&conn);
    for file in [path.clone(), beside(&path, "-wal"), beside(&path, "-shm")] {
        assert_eq!(mode(&file), 0o600, "{}: {:o}", file.display(), mode(&file));
    }
    // And so are the ones SQLite makes again after a clean close removed them.
    drop(conn);
    assert!(
        !beside(&path, "-wal").exists(),
        "the WAL is still there after a clean close"
    );
    let conn = sqlite_file::open(&path, &APP).unwrap();
    write_something(&conn);
    for file in [path.clone(), beside(&path, "-wal"), beside(&path, "-shm")] {
        assert_eq!(mode(&file), 0o600, "{}: {:o}", file.display(), mode(&file));
    }
}

#[test]
fn an_existing_database_keeps_its_mode_and_its_wal_and_shm_take_it() {
    permissive_umask();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (v TEXT);")
        .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let conn = sqlite_file::open(&path, &APP).unwrap();
    write_something(&conn);
    for file in [path.clone(), beside(&path, "-wal"), beside(&path, "-shm")] {
        assert_eq!(mode(&file), 0o640, "{}: {:o}", file.display(), mode(&file));
    }
}
