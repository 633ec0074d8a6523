//! Finds the recordings from real devices that some tests and benches read: the
//! folder named by `MQGATE_REAL_DATA`, or by default `../shared/data` beside the
//! workspace. When it is there, `cfg(real_data)` is set and its absolute path is
//! `MQGATE_REAL_DATA_DIR` at compile time; when it is not, the tests that need it
//! are reported as ignored, with the reason.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(real_data)");
    println!("cargo::rerun-if-env-changed=MQGATE_REAL_DATA");
    println!("cargo::rerun-if-changed=build.rs");
    // A relative setting is relative to the workspace's root.
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest.join("..");
    let dir = match std::env::var_os("MQGATE_REAL_DATA") {
        Some(dir) if !dir.is_empty() => workspace.join(dir),
        _ => workspace.join("../shared/data"),
    };
    match dir.canonicalize() {
        Ok(dir) if dir.is_dir() => {
            println!("cargo::rerun-if-changed={}", dir.display());
            println!("cargo::rustc-cfg=real_data");
            println!("cargo::rustc-env=MQGATE_REAL_DATA_DIR={}", dir.display());
        }
        _ => println!("cargo::rustc-env=MQGATE_REAL_DATA_DIR="),
    }
}
