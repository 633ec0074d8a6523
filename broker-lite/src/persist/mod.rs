//! Persistence: retained messages and persistent sessions (clean session = 0) kept
//! in an SQLite file, so that they survive a restart and a `kill -9`.
//!
//! The router stays the owner of the state. It records each change (retained set
//! or cleared, session created or removed, subscription added or removed, message
//! queued, sent, released or acknowledged, inbound QoS 2 id held or released) in a
//! `Journal`; at the end of each of its batches the journal hands the changes to a
//! writer thread over a bounded channel, and the writer applies them in one
//! transaction at least every `flush_ms`. At start the file is read back before
//! any connection is served.
//!
//! What a `kill -9` can lose: the changes of the last `flush_ms` that were not yet
//! committed. With `ack_after_commit` (the default) no client is told something is
//! stored before it is: PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK that
//! confirm a change of persistent state are written by the writer thread after the
//! commit, so what is lost is only what nobody was promised (a subscriber's last
//! PUBACKs, which cause a redelivery with DUP, and QoS 0 retained messages).

mod config;
mod db;
mod journal;
mod writer;

pub use config::PersistenceConfig;
pub(crate) use db::{Loaded, Owner, StoredSession};
pub(crate) use journal::{Journal, SessionLog};

use std::path::PathBuf;

/// Why the persistence file cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PersistError {
    /// The file exists but is not a healthy broker-lite database; it is left as it is.
    #[error(
        "persistence file {path}: damaged, left unchanged (move it away to start empty): {cause}"
    )]
    Damaged { path: PathBuf, cause: String },
    #[error("persistence file {path}: {cause}")]
    Open { path: PathBuf, cause: String },
}

/// Open (or create) the file, read everything back, and start the writer thread.
pub(crate) fn open(config: &PersistenceConfig) -> Result<(Journal, Loaded), PersistError> {
    let (db, loaded) = db::Db::open(&config.file)?;
    let journal = Journal::start(db, config)?;
    Ok((journal, loaded))
}

#[cfg(test)]
mod tests;
