//! The Node.js packages the tests run from `tests/peers/`, pinned in its
//! `package-lock.json` and installed with `npm ci --prefix tests/peers`.

use std::process::Command;

use crate::mqgate::workspace_root;

/// Panics, saying what to install, unless Node.js runs and `tests/peers` has
/// `package` at exactly `version`.
pub fn check_npm_package(package: &str, version: &str) {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "Node.js is missing: apt-get install nodejs npm, then npm ci --prefix tests/peers"
    );
    let manifest =
        workspace_root().join(format!("tests/peers/node_modules/{package}/package.json"));
    let found = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string));
    assert_eq!(
        found.as_deref(),
        Some(version),
        "{package} {version} is not installed in tests/peers: npm ci --prefix tests/peers"
    );
}
