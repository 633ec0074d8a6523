//! lora-packet (npm), a LoRaWAN implementation written elsewhere, through
//! `tests/peers/lora-packet.mjs`: JSON requests in, one JSON answer each out.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use test_support::process::run_with_input;

use crate::mqgate::workspace_root;
use crate::peers::check_npm_package;

/// The lora-packet version `tests/peers/package.json` pins.
pub const LORA_PACKET_VERSION: &str = "0.9.3";

/// Sends every request to one run of the CLI; its answers, in order. Panics,
/// saying what to install, when Node.js or lora-packet is missing.
pub fn ask(requests: &[Value]) -> Vec<Value> {
    check_npm_package("lora-packet", LORA_PACKET_VERSION);
    let mut input = String::new();
    for r in requests {
        input.push_str(&r.to_string());
        input.push('\n');
    }
    let mut cmd = Command::new("node");
    cmd.arg(workspace_root().join("tests/peers/lora-packet.mjs"));
    let out = run_with_input(
        "lora-packet",
        cmd,
        input.as_bytes(),
        Duration::from_secs(120),
    );
    assert_eq!(out.code(), 0, "lora-packet.mjs failed:\n{}", out.stderr);
    let answers: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        answers.len(),
        requests.len(),
        "one answer per request; stderr:\n{}",
        out.stderr
    );
    answers
}
