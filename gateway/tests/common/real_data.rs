//! The recordings from real devices that some tests read (gpsd logs, LoRaWAN
//! device examples, Cayenne LPP vectors, Semtech packet-forwarder datagrams).
//! They come from other projects and are not in the repository: the folder is
//! `MQGATE_REAL_DATA` (by default `../shared/data` beside the workspace), found by
//! the build script. Tests that need it carry
//! `#[cfg_attr(not(real_data), ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)")]`,
//! so without the folder they are listed as ignored with that reason.

use std::path::{Path, PathBuf};

/// `rel` inside the real-data folder.
pub(crate) fn real_data(rel: &str) -> PathBuf {
    let dir = env!("MQGATE_REAL_DATA_DIR");
    assert!(
        !dir.is_empty(),
        "the recordings from real devices are missing: set MQGATE_REAL_DATA to their folder \
         (by default ../shared/data beside the workspace) and build again"
    );
    Path::new(dir).join(rel)
}
